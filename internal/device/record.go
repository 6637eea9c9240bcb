package device

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"

	"github.com/pion/webrtc/v4"

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
//
// On a multi-source device each source has its own recorder, in DIR/<id>/, and gets the
// events of its source (and those that name none, the default's).
func (d *Device) recordComponent(f *srcFeed) (lifecycle.Component, bool) {
	if f.cfg.Record.Dir == "" {
		return lifecycle.Component{}, false
	}
	return lifecycle.Component{
		Name: "record",
		Start: func(context.Context) error {
			r, err := record.New(f.stream, f.cfg.Record, f.log)
			if err != nil {
				return err
			}
			f.recorder.Store(r)
			return nil
		},
		Run: func(ctx context.Context) error {
			r := f.recorder.Load()
			// Every detection event goes to the recorder: kept in its events file, listed by
			// the segments it spans, and with --record events what starts and ends recording.
			sub := d.events.Subscribe(64)
			defer sub.Close()
			mine := func(e event.Event) bool {
				return !d.cfg.multiSource() || e.Source == f.id || (e.Source == "" && f == d.feeds[0])
			}
			go func() {
				for e := range sub.Events() {
					if mine(e) {
						r.Event(e)
					}
				}
			}()
			return r.Run(ctx)
		},
	}, true
}

// activeRecorder is the default source's recorder, nil before it starts or when the device
// does not record.
func (d *Device) activeRecorder() *record.Recorder {
	return d.feeds[0].recorder.Load()
}

// recorders are the sources' recorders that have started.
func (d *Device) recorders() []*record.Recorder {
	var out []*record.Recorder
	for _, f := range d.feeds {
		if r := f.recorder.Load(); r != nil {
			out = append(out, r)
		}
	}
	return out
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
			// Start and stop concern every source's recorder; the status is the default's.
			for _, r := range c.d.recorders() {
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

// recordCatalog is what the files channel serves (internal/files.Catalog): the recorders of
// every source that records, once started. With one source the recorder writes in Record.Dir
// and its paths are served as they are; with several each writes in Record.Dir/<id>/ and its
// paths are served under that id, as on disk, so one list holds every camera's recordings.
type recordCatalog struct {
	dir string
	d   *Device // set by New, before any session
}

// catalogPart is one source's recorder and the prefix of its paths.
type catalogPart struct {
	prefix string
	r      *record.Recorder
}

func (c *recordCatalog) parts() []catalogPart {
	if c.d == nil {
		return nil
	}
	var out []catalogPart
	for _, f := range c.d.feeds {
		if r := f.recorder.Load(); r != nil {
			p := ""
			if c.d.cfg.multiSource() {
				p = f.id + "/"
			}
			out = append(out, catalogPart{p, r})
		}
	}
	return out
}

func (c *recordCatalog) Dir() string { return c.dir }

// Segments are every source's, oldest first.
func (c *recordCatalog) Segments() []record.Entry {
	var out []record.Entry
	for _, p := range c.parts() {
		for _, e := range p.r.Segments() {
			e.Path = p.prefix + e.Path
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b record.Entry) int { return a.Start.Compare(b.Start) })
	return out
}

func (c *recordCatalog) Writing() []string {
	var out []string
	for _, p := range c.parts() {
		if w := p.r.Status().Current; w != "" {
			out = append(out, p.prefix+w)
		}
	}
	return out
}

// Events are every source's (each recorder keeps its own source's), oldest first.
func (c *recordCatalog) Events() []event.Event {
	var out []event.Event
	for _, p := range c.parts() {
		out = append(out, p.r.Events()...)
	}
	slices.SortStableFunc(out, func(a, b event.Event) int { return a.Start.Compare(b.Start) })
	return out
}
