package device

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"github.com/p2pcast/p2pcast/internal/input"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/wayland"
)

// ControlChannel is the data channel a desktop's viewers drive it on (docs/input.md).
const ControlChannel = "control"

// openDesktop prepares the wayland source's input: the viewer in control drives the desktop of
// $WAYLAND_DISPLAY (the output the producer captures) through the compositor's virtual pointer
// and keyboard. A compositor that offers no such protocols (not a wlroots one) still streams:
// its viewers watch and nobody controls.
func openDesktop(cfg Config, log *slog.Logger) (*input.Control, error) {
	desk, err := wayland.Open("", cfg.Output)
	switch {
	case errors.Is(err, wayland.ErrMissingProtocol):
		log.Warn("the desktop cannot be driven from viewers: streaming it view-only", "err", err)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("the Wayland desktop: %w", err)
	}
	log.Info("desktop control ready", "output", desk.OutputName(), "keymap", desk.KeymapSource())
	return input.NewControl(desk, input.Config{}, log.With("channel", ControlChannel)), nil
}

// withChannel is channels with one more, leaving the caller's map as it was.
func withChannel(channels map[string]peer.Channel, label string, ch peer.Channel) map[string]peer.Channel {
	out := maps.Clone(channels)
	if out == nil {
		out = map[string]peer.Channel{}
	}
	out[label] = ch
	return out
}
