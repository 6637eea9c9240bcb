package peer

import (
	"context"
	"log/slog"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// EventsChannel is the data channel the device opens itself when it makes the offer, so the
// offer has a data section and the viewer can open its channels without renegotiating.
const EventsChannel = "events"

// Channel serves one named data channel that viewers open (input and clipboard on "control",
// recordings on "files"): a new one is an entry in Config.Channels, nothing in the session.
type Channel interface {
	// Grant is what a viewer's token needs to open the channel.
	Grant() auth.Grant
	// Serve runs one viewer's channel, once it is open, until ctx ends (the session closed) or
	// the channel closes. The channel's handlers are Serve's to set.
	Serve(ctx context.Context, dc *webrtc.DataChannel, access auth.Access, log *slog.Logger)
}

// onDataChannel gives a channel the viewer opened to its handler, if the viewer's grants
// allow it; other channels are closed and logged.
func (s *Session) onDataChannel(dc *webrtc.DataChannel) {
	label := dc.Label()
	if label == EventsChannel {
		return
	}
	ch := s.e.cfg.Channels[label]
	switch {
	case ch == nil:
		s.log.Warn("data channel refused: unknown", "label", label)
		_ = dc.Close()
		return
	case !s.access.Has(ch.Grant()):
		s.log.Warn("data channel refused: not granted", "label", label, "grant", ch.Grant(), "token", s.access.TokenID)
		_ = dc.Close()
		return
	}
	log := s.log.With("channel", label)
	dc.OnOpen(func() {
		select {
		case <-s.done:
			return
		default:
		}
		log.Info("data channel open")
		go ch.Serve(s.ctx, dc, s.access, log)
	})
}
