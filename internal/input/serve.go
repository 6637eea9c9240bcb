package input

import (
	"context"
	"log/slog"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// Label is the data channel's label.
const Label = "control"

// maxBuffered is how much may wait in a viewer's channel before replies to it are dropped
// (and counted): a page that stops reading must not make the device buffer without bound,
// nor block the others (replies are sent under Control's lock). About 300 states of 32 viewers.
const maxBuffered = 1 << 20

// Grant is what a viewer's token needs to open the channel (peer.Channel).
func (c *Control) Grant() auth.Grant { return auth.GrantControl }

// Serve runs one viewer's control channel until ctx ends (peer.Channel): the viewer joins,
// its messages are handled in order, and it leaves when the channel or session ends, which
// passes on control it held. A viewer beyond the limit, or one sending too many bad
// messages, has its channel closed.
func (c *Control) Serve(ctx context.Context, dc *webrtc.DataChannel, msgs <-chan webrtc.DataChannelMessage, access auth.Access, log *slog.Logger) {
	send := func(b []byte) error {
		if dc.BufferedAmount() > maxBuffered {
			return errBackedUp
		}
		return dc.SendText(string(b))
	}
	if !access.Has(c.Grant()) { // peer checks it first; this is the channel's own guard
		log.Warn("control channel closed", "reason", "not granted", "token", access.TokenID)
		_ = dc.Close()
		return
	}
	m, err := c.join(access, send, log)
	if err != nil {
		log.Warn("control channel closed", "reason", err, "token", access.TokenID)
		_ = dc.Close()
		return
	}
	defer m.leave()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			if msg.IsString {
				err = m.handle(msg.Data)
			} else {
				err = m.handleBinary(msg.Data)
			}
			if err != nil {
				log.Warn("control channel closed", "reason", err, "viewer", m.id, "token", access.TokenID)
				_ = dc.Close()
				return
			}
		}
	}
}
