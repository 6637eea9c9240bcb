//go:build !device

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/record"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

const recordHelp = `usage: p2pcast record start|stop|status [flags] http://DEVICE:PORT/
       p2pcast record start|stop|status [flags] --hub ws[s]://HOST[:PORT] --device ID --token-file F

Starts or stops recording on a device with --record-dir, or shows its recorder's state
(docs/recording.md): start records until stop, whatever the device's --record mode; stop
closes the segment and pauses until start (with --record events, until the next event).
It goes peer to peer, on the device's "record" data channel; the token needs the control
grant.

Flags:
`

func runRecord(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("record", "record start|stop|status [flags] SOURCE", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), recordHelp)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print the recorder's status as JSON")
	verbose := fs.Bool("v", false, "debug logs")
	sf := defineSessionFlags(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) == 0 || (positional[0] != "start" && positional[0] != "stop" && positional[0] != "status") {
		return fmt.Errorf("%w: want record start, stop or status", errUsage)
	}
	action := positional[0]
	opts, rest, err := sf.options(positional[1:], newLogger(stderr, *verbose))
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	s, err := viewer.OpenData(ctx, opts, *sf.timeout)
	if err != nil {
		return viewExit(err)
	}
	defer s.Close()
	st, err := recordRequest(ctx, s, action, *sf.timeout)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	state := "not recording"
	if st.Recording {
		state = "recording"
	}
	fmt.Fprintf(stdout, "%s (mode %s", state, st.Mode)
	if st.Manual != "" {
		fmt.Fprintf(stdout, ", %s by hand", map[string]string{"on": "started", "off": "stopped"}[st.Manual])
	}
	fmt.Fprintf(stdout, "): %d segments, %s kept", st.Segments, record.Bytes(st.Bytes))
	if st.Current != "" {
		fmt.Fprintf(stdout, "; writing %s", st.Current)
	}
	if st.Paused != "" {
		fmt.Fprintf(stdout, "; paused: %s", st.Paused)
	}
	fmt.Fprintln(stdout)
	return nil
}

// errRecordRefused: the device closed the record channel (no --record-dir, or a token
// without the control grant).
var errRecordRefused = errors.New("the device refused the record channel: it records nothing (no --record-dir), or the token lacks the control grant")

// recordRequest opens the record channel, sends action and returns the status the device
// answers it with.
func recordRequest(ctx context.Context, s *viewer.DataSession, action string, timeout time.Duration) (record.Status, error) {
	dc, err := s.PeerConnection().CreateDataChannel(device.RecordChannel, nil)
	if err != nil {
		return record.Status{}, err
	}
	type reply struct {
		Type   string        `json:"type"`
		Status record.Status `json:"status"`
		Error  string        `json:"error"`
	}
	replies := make(chan reply, 4)
	closed := make(chan struct{})
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var r reply
		if json.Unmarshal(m.Data, &r) == nil && r.Type == "status" {
			select {
			case replies <- r:
			default:
			}
		}
	})
	dc.OnClose(func() { close(closed) })
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	next := func() (reply, error) {
		select {
		case r := <-replies:
			return r, nil
		case <-closed:
			return reply{}, &exitError{code: exitRefused, err: errRecordRefused}
		case <-ctx.Done():
			return reply{}, fmt.Errorf("no answer on the record channel: %w", ctx.Err())
		}
	}
	first, err := next() // sent when the channel opens
	if err != nil {
		return record.Status{}, err
	}
	if action == "status" {
		return first.Status, nil
	}
	if err := dc.SendText(`{"type":"` + action + `"}`); err != nil {
		return record.Status{}, err
	}
	r, err := next()
	if err != nil {
		return record.Status{}, err
	}
	if r.Error != "" {
		return r.Status, fmt.Errorf("the device: %s", r.Error)
	}
	return r.Status, nil
}
