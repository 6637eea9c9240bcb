// Package input lets viewers drive the device's desktop over the session's "control" data
// channel (docs/input.md): it parses the viewers' messages, decides who is in control (one
// viewer at a time, for every session of the device), maps browser keys and buttons to evdev
// codes and hands the controller's input to an Injector. The desktop itself is behind that
// interface (internal/wayland, a portal later), so everything here runs without one.
package input

import (
	"errors"
	"fmt"
	"time"
)

// Injector is what the desktop must do for the viewer in control.
type Injector interface {
	MoveAbs(x, y float64) error                      // fractions 0..1 of the captured output
	Button(code uint32, down bool) error             // evdev: BTN_LEFT 0x110, BTN_RIGHT 0x111, BTN_MIDDLE 0x112, BTN_SIDE 0x113, BTN_EXTRA 0x114
	Scroll(dx, dy float64, v120x, v120y int32) error // dx,dy in wl_pointer axis units (15 per notch); v120: 120 per notch
	Key(code uint32, down bool) error                // evdev key code, interpreted with the desktop's keymap
	Type(text string) error                          // text entry, independent of keymaps (≤ 4096 runes)
	SetClipboard(text string) error
	Clipboard() <-chan string // the desktop's clipboard text when it changes
	ReleaseAll() error        // release every held key and button, clear modifiers
	Close() error
}

// Protocol limits (docs/input.md).
const (
	// Version is the protocol version the device reports in every state message.
	Version = 1
	// MaxMessage bounds one viewer message; larger ones are answered with an error and dropped.
	MaxMessage = 64 << 10
	// MaxText bounds a text message, in runes.
	MaxText = 4096
	// MaxClipboard bounds clipboard text either way, in bytes: under the 64 KiB a data
	// channel message may carry, with room for the JSON around it.
	MaxClipboard = 60000
	// MaxWheel bounds each axis of one wheel message: 100 notches.
	MaxWheel = 100 * 120
	// axisPerNotch is how far one wheel notch scrolls in wl_pointer axis units.
	axisPerNotch = 15
)

// Defaults of Config.
const (
	DefaultIdleTakeover = 30 * time.Second
	DefaultMaxViewers   = 32
	DefaultRate         = 2000
)

// Errors bad viewer messages and refused channels are reported with; the reply's text says
// which field or key was wrong.
var (
	ErrMalformed   = errors.New("input: malformed message")
	ErrUnknownType = errors.New("input: unknown message type")
	ErrRange       = errors.New("input: value out of range")
	ErrUnknownKey  = errors.New("input: unknown key code")
	ErrTooLarge    = errors.New("input: message too large")
	ErrNoViewer    = errors.New("input: no such viewer")
	// ErrTooManyErrors closes a channel: more than maxErrors errors in errorWindow.
	ErrTooManyErrors = errors.New("input: too many bad messages")
	// ErrTooManyViewers refuses a channel beyond Config.MaxViewers.
	ErrTooManyViewers = errors.New("input: too many viewers on the control channel")
	// ErrClosed refuses channels and input once the Control is closed.
	ErrClosed = errors.New("input: control closed")
	errBinary = fmt.Errorf("%w: a binary message, want JSON text", ErrMalformed)
	// errNotInControl is the reason input from a viewer not in control is refused.
	errNotInControl = errors.New("not in control")
	// errBackedUp drops a reply to a viewer that does not read its channel.
	errBackedUp = errors.New("input: viewer's channel backed up")
)

// Config tunes a Control. The zero value is the documented defaults.
type Config struct {
	// IdleTakeover: a request takes control at once from a controller that has sent no input
	// for this long. 0: DefaultIdleTakeover; negative: never (a request only asks).
	IdleTakeover time.Duration
	// MaxViewers is how many viewers may have the channel open at once. 0: DefaultMaxViewers.
	MaxViewers int
	// Rate is how many messages a second one viewer may send (a bucket of Rate/4, refilled at
	// Rate); the excess is dropped and counted. 0: DefaultRate.
	Rate int
}

func (c Config) withDefaults() Config {
	if c.IdleTakeover == 0 {
		c.IdleTakeover = DefaultIdleTakeover
	}
	if c.MaxViewers <= 0 {
		c.MaxViewers = DefaultMaxViewers
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	return c
}
