//go:build device

package device

import (
	"context"
	"fmt"
	"log/slog"
)

// openDesktop: the device build (-tags device, the board's binary) has no desktop to share: the
// Wayland client, the portal's D-Bus client and their input drivers stay out of it.
func openDesktop(_ context.Context, _ Config, _ *slog.Logger) (*desktop, error) {
	return nil, fmt.Errorf("--source wayland: %w (-tags device)", ErrNoDesktop)
}
