package peer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// EventsChannel carries the device's reports to the viewer (wire.TypeNetwork). The device
// opens it when it makes the offer (which gives the offer a data section, so the viewer can
// open its channels without renegotiating); a viewer that offers opens it itself.
const EventsChannel = wire.EventsChannel

// Channel serves one named data channel that viewers open (input and clipboard on "control",
// recordings on "files"): a new one is an entry in Config.Channels, nothing in the session.
type Channel interface {
	// Grant is what a viewer's token needs to open the channel.
	Grant() auth.Grant
	// Serve runs one viewer's channel, once it is open, until ctx ends (the session or the
	// channel closed). The viewer's messages come in order on msgs, those sent before Serve
	// started included: a handler set by Serve itself would miss a message sent the moment
	// the channel opened. Serve sends on dc.
	Serve(ctx context.Context, dc *webrtc.DataChannel, msgs <-chan webrtc.DataChannelMessage, access auth.Access, log *slog.Logger)
}

// channelBacklog is how many messages a channel holds for a Serve that is behind; a viewer
// sending faster than that has its channel closed rather than the device buffering without
// bound.
const channelBacklog = 64

// onDataChannel gives a channel the viewer opened to its handler, if the viewer's grants
// allow it; other channels are closed and logged.
func (s *Session) onDataChannel(dc *webrtc.DataChannel) {
	label := dc.Label()
	if label == EventsChannel {
		s.adoptEvents(dc) // a viewer that offered opened it
		return
	}
	ch := s.e.cfg.Channels[label]
	switch {
	case ch == nil:
		s.log.Warn("data channel refused: unknown", "label", label)
		_ = dc.Close()
		return
	case s.channels != nil && !slices.Contains(s.channels, label):
		s.log.Warn("data channel refused: not served to this session", "label", label)
		_ = dc.Close()
		return
	case !s.access.Has(ch.Grant()):
		s.log.Warn("data channel refused: not granted", "label", label, "grant", ch.Grant(), "token", s.access.TokenID)
		_ = dc.Close()
		return
	}
	log := s.log.With("channel", label)
	// The handlers are set here, before Pion starts reading the channel: a message that
	// arrives before Serve runs is queued, not dropped.
	ctx, cancel := context.WithCancel(s.ctx)
	msgs := make(chan webrtc.DataChannelMessage, channelBacklog)
	onMessage := func(m webrtc.DataChannelMessage) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		default:
			log.Warn("data channel closed: messages faster than they are served", "backlog", channelBacklog)
			cancel()
			_ = dc.Close()
		}
	}
	dc.OnClose(cancel)
	dc.OnOpen(func() {
		if ctx.Err() != nil {
			return
		}
		readChannel(dc, onMessage, cancel)
		log.Info("data channel open")
		go func() {
			defer cancel()
			ch.Serve(ctx, dc, msgs, s.access, log)
		}()
	})
}

// Data channels are detached (NewEngine: SettingEngine.DetachDataChannels) and read here:
// Pion's own read loop holds a 64 kB buffer for every channel of every viewer, this one a
// buffer as large as the largest message the viewer has sent (docs/performance.md
// "Footprint"). The messages, their order and the close are the same.
const (
	channelReadFirst = 1 << 10
	// channelReadMax is the largest message taken, and the max-message-size the device's
	// SDP announces (NewEngine; Pion's default was 1 GiB): a larger one closes the channel,
	// as in Pion's read loop. Viewers send small messages (input, requests).
	channelReadMax = 1 << 20
)

// readChannel reads dc, once open, until it closes: each message goes to onMessage (nil:
// read and dropped), then onClose runs once.
func readChannel(dc *webrtc.DataChannel, onMessage func(webrtc.DataChannelMessage), onClose func()) {
	rw, err := dc.Detach()
	if err != nil {
		onClose()
		return
	}
	go func() {
		defer onClose()
		buf := make([]byte, channelReadFirst)
		for {
			n, isString, err := rw.ReadDataChannel(buf)
			if errors.Is(err, io.ErrShortBuffer) && len(buf) < channelReadMax {
				buf = make([]byte, 2*len(buf)) // the message waits for a larger buffer
				continue
			}
			if err != nil {
				_ = rw.Close()
				return
			}
			if onMessage != nil {
				onMessage(webrtc.DataChannelMessage{IsString: isString, Data: append([]byte(nil), buf[:n]...)})
			}
		}
	}()
}
