package wayland

import (
	"fmt"
	"sync"
)

// Globals lists the interfaces the compositor at display offers ("" means $WAYLAND_DISPLAY),
// each with its version: what a caller needs to pick a backend (wlr-screencopy present: a
// wlroots compositor; absent: the portal).
func Globals(display string) (map[string]uint32, error) {
	c, err := dial(display)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var mu sync.Mutex
	out := map[string]uint32{}
	reg, err := c.newObject(ifRegistry, 1, func(_ uint32, op uint16, args []arg) {
		if op == registryGlobal {
			mu.Lock()
			out[args[1].s] = max(out[args[1].s], args[2].u)
			mu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	if err := c.send(newMessage(1, displayGetRegistry).uint(reg)); err != nil {
		return nil, err
	}
	if err := c.roundtrip(callTimeout); err != nil {
		return nil, fmt.Errorf("wayland: registry: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return out, nil
}
