package portal

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// Input limits and constants.
const (
	// MaxText bounds one Type call, in runes (internal/input's limit too).
	MaxText = 4096
	// notch is one wheel notch in v120 units.
	notch = 120
	// typeWindow is how many keysym calls Type keeps in flight: the bus keeps their order,
	// and waiting for each reply would make a long text crawl.
	typeWindow = 32
	// Keysyms for the control characters Type understands, and the base for Unicode ones.
	keysymReturn  = 0xff0d
	keysymTab     = 0xff09
	keysymUnicode = 0x01000000
)

// Axis numbers of NotifyPointerAxisDiscrete.
const (
	axisVertical   uint32 = 0
	axisHorizontal uint32 = 1
)

// inputState is what the session has pressed, so ReleaseAll can undo it. Its mutex also
// keeps one caller's events in order.
type inputState struct {
	mu      sync.Mutex
	keys    map[uint32]struct{}
	buttons map[uint32]struct{}
	accX    int32 // wheel motion short of a whole notch, in v120
	accY    int32
}

func state(down bool) uint32 {
	if down {
		return 1
	}
	return 0
}

// canUse says why input of a device type cannot be injected, if it cannot.
func (s *Session) canUse(dev uint32, what string) error {
	if s.isClosed() {
		return ErrClosed
	}
	if !s.remote || s.devices&dev == 0 {
		return fmt.Errorf("%w (no %s)", ErrNoInput, what)
	}
	return nil
}

// notify makes one RemoteDesktop Notify* call for this session.
func (s *Session) notify(method string, args ...any) error {
	return s.call(context.Background(), ifaceRemoteDesktop+"."+method, append([]any{s.handle, map[string]dbus.Variant{}}, args...))
}

// MoveAbs moves the pointer to (x, y), fractions 0..1 of the captured stream, in the
// stream's logical coordinates.
func (s *Session) MoveAbs(x, y float64) error {
	if err := s.canUse(DevicePointer, "pointer"); err != nil {
		return err
	}
	if math.IsNaN(x) || math.IsNaN(y) {
		return fmt.Errorf("portal: MoveAbs(%v, %v): not a position", x, y)
	}
	st := s.streams[0]
	if st.Width <= 0 || st.Height <= 0 {
		return fmt.Errorf("portal: the portal did not give the stream's size, so an absolute position cannot be placed: %w",
			errors.ErrUnsupported)
	}
	x, y = min(max(x, 0), 1), min(max(y, 0), 1)
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	return s.notify("NotifyPointerMotionAbsolute", st.NodeID, x*float64(st.Width), y*float64(st.Height))
}

// Button presses or releases an evdev button (BTN_LEFT 0x110...).
func (s *Session) Button(code uint32, down bool) error {
	if err := s.canUse(DevicePointer, "pointer"); err != nil {
		return err
	}
	if code > math.MaxInt32 {
		return fmt.Errorf("portal: button %d out of range", code)
	}
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	track(&s.in.buttons, code, down)
	return s.notify("NotifyPointerButton", int32(code), state(down))
}

// Key presses or releases an evdev key code; the desktop's keymap gives it meaning.
func (s *Session) Key(code uint32, down bool) error {
	if err := s.canUse(DeviceKeyboard, "keyboard"); err != nil {
		return err
	}
	if code > math.MaxInt32 {
		return fmt.Errorf("portal: key %d out of range", code)
	}
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	track(&s.in.keys, code, down)
	return s.notify("NotifyKeyboardKeycode", int32(code), state(down))
}

// track records a press (kept even if the call fails: releasing an unpressed key is
// harmless, a stuck one is not).
func track(held *map[uint32]struct{}, code uint32, down bool) {
	if *held == nil {
		*held = make(map[uint32]struct{})
	}
	if down {
		(*held)[code] = struct{}{}
	} else {
		delete(*held, code)
	}
}

// Scroll scrolls by (dx, dy) in wl_pointer axis units, or by v120ths of a wheel notch. An axis
// with wheel motion scrolls by whole notches (NotifyPointerAxisDiscrete; the remainder waits
// for the next event), an axis without it scrolls smoothly (NotifyPointerAxis, finished):
// never both for one axis, as a compositor would scroll twice (mutter emulates smooth
// scrolling from discrete steps).
func (s *Session) Scroll(dx, dy float64, v120x, v120y int32) error {
	if err := s.canUse(DevicePointer, "pointer"); err != nil {
		return err
	}
	if math.IsNaN(dx) || math.IsNaN(dy) || math.IsInf(dx, 0) || math.IsInf(dy, 0) {
		return fmt.Errorf("portal: Scroll(%v, %v): not a distance", dx, dy)
	}
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	var smoothX, smoothY float64
	var errs []error
	if v120y != 0 {
		if steps := notches(&s.in.accY, v120y); steps != 0 {
			errs = append(errs, s.notify("NotifyPointerAxisDiscrete", axisVertical, steps))
		}
	} else {
		smoothY = dy
	}
	if v120x != 0 {
		if steps := notches(&s.in.accX, v120x); steps != 0 {
			errs = append(errs, s.notify("NotifyPointerAxisDiscrete", axisHorizontal, steps))
		}
	} else {
		smoothX = dx
	}
	if smoothX != 0 || smoothY != 0 {
		err := s.call(context.Background(), ifaceRemoteDesktop+".NotifyPointerAxis",
			[]any{s.handle, map[string]dbus.Variant{"finish": dbus.MakeVariant(true)}, smoothX, smoothY})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// notches adds v120 to the remainder in acc and takes out the whole notches. A change of
// direction drops the remainder, which belonged to the other way.
func notches(acc *int32, v120 int32) int32 {
	if (*acc > 0 && v120 < 0) || (*acc < 0 && v120 > 0) {
		*acc = 0
	}
	sum := int64(*acc) + int64(v120)
	steps := sum / notch
	*acc = int32(sum - steps*notch)
	return int32(steps)
}

// Type enters text whatever the keymap, as keysyms pressed and released: Latin-1 as itself,
// other characters as Unicode keysyms, newline as Return and tab as Tab; other control
// characters (a carriage return among them) are skipped.
func (s *Session) Type(text string) error {
	if err := s.canUse(DeviceKeyboard, "keyboard"); err != nil {
		return err
	}
	if !utf8.ValidString(text) {
		return errors.New("portal: Type: the text is not UTF-8")
	}
	if n := utf8.RuneCountInString(text); n > MaxText {
		return fmt.Errorf("portal: Type: %d characters, more than %d at once", n, MaxText)
	}
	var calls [][]any
	for _, r := range text {
		sym, ok := keysym(r)
		if !ok {
			continue
		}
		for _, st := range []uint32{1, 0} {
			calls = append(calls, []any{s.handle, map[string]dbus.Variant{}, int32(sym), st})
		}
	}
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	return s.pipeline(ifaceRemoteDesktop+".NotifyKeyboardKeysym", calls)
}

// keysym maps a character to the X keysym that types it.
func keysym(r rune) (uint32, bool) {
	switch {
	case r == '\n':
		return keysymReturn, true
	case r == '\t':
		return keysymTab, true
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return 0, false
	case r <= 0xff:
		return uint32(r), true
	}
	return keysymUnicode + uint32(r), true
}

// pipeline makes the calls in order, typeWindow at a time, each window bounded by
// CallTimeout. A window holds whole press/release pairs, so an error leaves nothing held.
func (s *Session) pipeline(method string, calls [][]any) error {
	obj := s.conn.Object(busName, objectPath)
	for start := 0; start < len(calls); start += typeWindow {
		end := min(start+typeWindow, len(calls))
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
		done := make(chan *dbus.Call, end-start)
		for _, args := range calls[start:end] {
			obj.GoWithContext(ctx, method, 0, done, args...)
		}
		var err error
		for range end - start {
			if c := <-done; c.Err != nil && err == nil {
				err = c.Err
			}
		}
		cancel()
		if err != nil {
			return s.callError(context.Background(), method, err)
		}
	}
	return nil
}

// ReleaseAll releases every key and button this session holds pressed. On a closed session
// the portal has released them already.
func (s *Session) ReleaseAll() error {
	s.in.mu.Lock()
	defer s.in.mu.Unlock()
	keys := slices.Sorted(maps.Keys(s.in.keys))
	buttons := slices.Sorted(maps.Keys(s.in.buttons))
	clear(s.in.keys)
	clear(s.in.buttons)
	s.in.accX, s.in.accY = 0, 0
	if s.isClosed() || !s.remote {
		return nil
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, s.notify("NotifyKeyboardKeycode", int32(k), uint32(0)))
	}
	for _, b := range buttons {
		errs = append(errs, s.notify("NotifyPointerButton", int32(b), uint32(0)))
	}
	return errors.Join(errs...)
}
