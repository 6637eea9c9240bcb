package device

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/pion/webrtc/v4"

	"sync/atomic"

	"github.com/p2pcast/p2pcast/internal/auth"

	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/lifecycle"
	"github.com/p2pcast/p2pcast/internal/record"
)

// RecordChannel is the data channel that starts and stops recording (the control grant):
// docs/recording.md, "Starting and stopping".
const RecordChannel = "record"

// recordComponent is the lifecycle component "record": with Config.Record.Dir it records
// the stream (internal/record: continuously, on events or on demand) while the device runs;
// stopping it closes the current segment properly.
func (d *Device) recordComponent() (lifecycle.Component, bool) {
	if d.cfg.Record.Dir == "" {
		return lifecycle.Component{}, false
	}
	return lifecycle.Component{
		Name: "record",
		Start: func(context.Context) error {
			r, err := record.New(d.stream, d.cfg.Record, d.log)
			if err != nil {
				return err
			}
			d.mu.Lock()
			d.recorder = r
			d.mu.Unlock()
			d.files.rec.Store(r)
			return nil
		},
		Run: func(ctx context.Context) error {
			r := d.activeRecorder()
			// Every detection event goes to the recorder: kept in its events file, listed by
			// the segments it spans, and with --record events what starts and ends recording.
			sub := d.events.Subscribe(64)
			defer sub.Close()
			go func() {
				for e := range sub.Events() {
					r.Event(e)
				}
			}()
			return r.Run(ctx)
		},
	}, true
}

// activeRecorder is the recorder, nil before it starts or when the device does not record.
func (d *Device) activeRecorder() *record.Recorder {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recorder
}

// recordStatus is the recorder's status, nil when the device does not record.
func (d *Device) recordStatus() *record.Status {
	r := d.activeRecorder()
	if r == nil {
		return nil
	}
	st := r.Status()
	return &st
}

// recordChannel serves RecordChannel: {"type":"start"}, {"type":"stop"} and
// {"type":"status"} from the viewer, each answered with {"type":"status","status":{…}}
// (record.Status); the status is also sent when the channel opens.
type recordChannel struct{ d *Device }

// recordRequestMax bounds a request message; recordBadMax bad ones close the channel.
const (
	recordRequestMax = 256
	recordBadMax     = 16
)

func (c *recordChannel) Grant() auth.Grant { return auth.GrantControl }

func (c *recordChannel) Serve(ctx context.Context, dc *webrtc.DataChannel, msgs <-chan webrtc.DataChannelMessage, access auth.Access, log *slog.Logger) {
	if !access.Has(c.Grant()) {
		_ = dc.Close()
		return
	}
	reply := func(errText string) {
		var st record.Status
		if r := c.d.activeRecorder(); r != nil {
			st = r.Status()
		} else if errText == "" {
			errText = "the recorder has not started"
		}
		b, _ := json.Marshal(struct {
			Type   string        `json:"type"`
			Status record.Status `json:"status"`
			Error  string        `json:"error,omitempty"`
		}{"status", st, errText})
		if dc.BufferedAmount() < 64<<10 {
			_ = dc.SendText(string(b))
		}
	}
	reply("")
	bad := 0
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			var req struct {
				Type string `json:"type"`
			}
			errText := ""
			switch {
			case len(m.Data) > recordRequestMax || json.Unmarshal(m.Data, &req) != nil:
				errText = "malformed request"
			case req.Type != "start" && req.Type != "stop" && req.Type != "status":
				errText = "unknown request type (want start, stop or status)"
			}
			if errText != "" {
				if bad++; bad > recordBadMax {
					log.Warn("record channel closed: too many bad requests", "token", access.TokenID)
					_ = dc.Close()
					return
				}
				reply(errText)
				continue
			}
			if r := c.d.activeRecorder(); r != nil {
				switch req.Type {
				case "start":
					log.Info("record: start asked", "token", access.TokenID)
					r.Start()
				case "stop":
					log.Info("record: stop asked", "token", access.TokenID)
					r.Stop()
				}
			}
			reply("")
		}
	}
}

// recordCatalog is what the files channel serves (internal/files.Catalog): the recorder's
// directory and index, once the recorder has started; nothing before.
type recordCatalog struct {
	dir string
	rec atomic.Pointer[record.Recorder]
}

func (c *recordCatalog) Dir() string { return c.dir }

func (c *recordCatalog) Segments() []record.Entry {
	if r := c.rec.Load(); r != nil {
		return r.Segments()
	}
	return nil
}

func (c *recordCatalog) Writing() string {
	if r := c.rec.Load(); r != nil {
		return r.Status().Current
	}
	return ""
}

func (c *recordCatalog) Events() []event.Event {
	if r := c.rec.Load(); r != nil {
		return r.Events()
	}
	return nil
}
