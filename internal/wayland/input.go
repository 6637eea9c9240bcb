package wayland

import (
	"math"
	"slices"
	"unicode/utf8"
)

// lockInput takes the input lock if the desktop can still take input.
func (d *Desktop) lockInput() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if err := d.c.Err(); err != nil {
		d.mu.Unlock()
		return err
	}
	return nil
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// MoveAbs moves the pointer to (x, y), fractions 0..1 of the output's width and height
// (clamped). The virtual pointer is mapped to the output, so the compositor scales the
// fractions onto it whatever its mode.
func (d *Desktop) MoveAbs(x, y float64) error {
	if !finite(x, y) {
		return ErrBadValue
	}
	x, y = min(max(x, 0), 1), min(max(y, 0), 1)
	if err := d.lockInput(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	return d.c.send(
		newMessage(d.pointer, vpMotionAbsolute).uint(now()).
			uint(uint32(math.Round(x*absExtent))).uint(uint32(math.Round(y*absExtent))).
			uint(absExtent).uint(absExtent),
		newMessage(d.pointer, vpFrame))
}

// Button presses or releases an evdev button (BTN_LEFT 0x110 .. BTN_TASK 0x117). A press of a
// held button, or a release of a free one, changes nothing and sends nothing.
func (d *Desktop) Button(code uint32, down bool) error {
	if code < btnFirst || code > btnLast {
		return ErrBadCode
	}
	if err := d.lockInput(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if d.heldButtons[code] == down {
		return nil
	}
	state := uint32(buttonStateReleased)
	if down {
		state = buttonStatePressed
	}
	if err := d.c.send(newMessage(d.pointer, vpButton).uint(now()).uint(code).uint(state),
		newMessage(d.pointer, vpFrame)); err != nil {
		return err
	}
	if down {
		d.heldButtons[code] = true
	} else {
		delete(d.heldButtons, code)
	}
	return nil
}

// Scroll scrolls by dx, dy in wl_pointer axis units (15 per wheel notch) with the wheel's
// v120 values (120 per notch; 0 for continuous scrolling).
//
// The virtual-pointer protocol has no high-resolution (v120) event, only axis_discrete with
// whole steps. So v120 accumulates per axis: each event sends its axis value as given, as
// axis_discrete carrying the whole notches accumulated so far when there is at least one,
// or as a plain axis event when there is only a fraction. A wheel reporting 30 per event
// thus sends four axis values of 3.75 and one step on the fourth. A change of direction
// drops the fraction. Events without v120 are sent as continuous (source "continuous").
//
// axis_source follows each axis event: wlroots (0.15, sway 1.7) stores the source on the axis
// of the latest axis request and clears it at frame, so a source sent first would label the
// previous axis. Within one frame the order means nothing to the protocol.
func (d *Desktop) Scroll(dx, dy float64, v120x, v120y int32) error {
	if !finite(dx, dy) {
		return ErrBadValue
	}
	if dx == 0 && dy == 0 && v120x == 0 && v120y == 0 {
		return nil
	}
	if err := d.lockInput(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	source := uint32(axisSourceContinuous)
	if v120x != 0 || v120y != 0 {
		source = axisSourceWheel
	}
	t := now()
	var msgs []*message
	acc := d.scrollAcc
	for _, a := range []struct {
		axis  uint32
		value float64
		v120  int32
	}{{axisVertical, dy, v120y}, {axisHorizontal, dx, v120x}} {
		if a.value == 0 && a.v120 == 0 {
			continue
		}
		if a.value == 0 {
			a.value = float64(a.v120) * 15 / 120
		}
		if a.v120 == 0 {
			acc[a.axis] = 0
			msgs = append(msgs, newMessage(d.pointer, vpAxis).uint(t).uint(a.axis).fixed(a.value),
				newMessage(d.pointer, vpAxisSource).uint(source))
			continue
		}
		if (acc[a.axis] < 0) != (a.v120 < 0) {
			acc[a.axis] = 0
		}
		acc[a.axis] += a.v120
		steps := acc[a.axis] / 120
		acc[a.axis] -= steps * 120
		if steps == 0 {
			msgs = append(msgs, newMessage(d.pointer, vpAxis).uint(t).uint(a.axis).fixed(a.value))
		} else {
			msgs = append(msgs, newMessage(d.pointer, vpAxisDiscrete).uint(t).uint(a.axis).fixed(a.value).int(steps))
		}
		msgs = append(msgs, newMessage(d.pointer, vpAxisSource).uint(source))
	}
	msgs = append(msgs, newMessage(d.pointer, vpFrame))
	if err := d.c.send(msgs...); err != nil {
		return err
	}
	d.scrollAcc = acc
	return nil
}

// Key presses or releases an evdev key (KEY_A = 30, ...) on the keyboard with the desktop's
// keymap. A press of a held key, or a release of a free one, sends nothing: clients repeat
// held keys themselves.
//
// The virtual keyboard does not compute modifiers (wlroots applies its key events without
// updating the modifier state), so after a modifier key changes them Key sends the modifier
// masks itself: Shift, Control, Alt, Super, AltGr held down are "depressed"; Caps Lock and
// Num Lock toggle "locked" on each press. Which key sets which real modifier comes from the
// keymap (see parseKeymap); group (layout switching) stays 0.
func (d *Desktop) Key(code uint32, down bool) error {
	if code == 0 || code > keyMax {
		return ErrBadCode
	}
	if err := d.lockInput(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if d.heldKeys[code] == down {
		return nil
	}
	state := uint32(keyStateReleased)
	if down {
		state = keyStatePressed
	}
	msgs := []*message{newMessage(d.keyboard, vkKey).uint(now()).uint(code).uint(state)}
	locked := d.locked
	if mk, ok := d.mods[code]; ok && mk.lock && down {
		locked ^= mk.mask
	}
	var depressed uint32
	for held := range d.heldKeys {
		if held != code {
			depressed |= d.depressedBy(held)
		}
	}
	if down {
		depressed |= d.depressedBy(code)
	}
	if [2]uint32{depressed, locked} != d.sentMods {
		msgs = append(msgs, newMessage(d.keyboard, vkModifiers).uint(depressed).uint(0).uint(locked).uint(0))
	}
	if err := d.c.send(msgs...); err != nil {
		return err
	}
	if down {
		d.heldKeys[code] = true
	} else {
		delete(d.heldKeys, code)
	}
	d.locked, d.sentMods = locked, [2]uint32{depressed, locked}
	return nil
}

func (d *Desktop) depressedBy(code uint32) uint32 {
	if mk, ok := d.mods[code]; ok && !mk.lock {
		return mk.mask
	}
	return 0
}

// ReleaseAll releases every held key and button and clears the modifiers, locks included:
// for focus loss, a hand-over of control and a disconnect.
func (d *Desktop) ReleaseAll() error {
	if err := d.lockInput(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	msgs := d.releaseAllLocked()
	if len(msgs) == 0 {
		return nil
	}
	return d.c.send(msgs...)
}

// releaseAllLocked returns the requests that release everything and resets the state as if
// they were sent (a failed send kills the connection, which makes the state moot).
func (d *Desktop) releaseAllLocked() []*message {
	t := now()
	var msgs []*message
	keys := make([]uint32, 0, len(d.heldKeys))
	for k := range d.heldKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		msgs = append(msgs, newMessage(d.keyboard, vkKey).uint(t).uint(k).uint(keyStateReleased))
	}
	if d.sentMods != [2]uint32{} {
		msgs = append(msgs, newMessage(d.keyboard, vkModifiers).uint(0).uint(0).uint(0).uint(0))
	}
	buttons := make([]uint32, 0, len(d.heldButtons))
	for b := range d.heldButtons {
		buttons = append(buttons, b)
	}
	slices.Sort(buttons)
	for _, b := range buttons {
		msgs = append(msgs, newMessage(d.pointer, vpButton).uint(t).uint(b).uint(buttonStateReleased))
	}
	if len(buttons) > 0 {
		msgs = append(msgs, newMessage(d.pointer, vpFrame))
	}
	clear(d.heldKeys)
	clear(d.heldButtons)
	d.locked, d.sentMods, d.scrollAcc = 0, [2]uint32{}, [2]int32{}
	return msgs
}

// Type enters text, any Unicode, whatever the desktop's layout: a second virtual keyboard
// gets a keymap made for the text (one key per distinct character) and presses and releases
// each key in turn. "\n", "\r" and "\r\n" are Return, "\t" Tab; other control characters
// are refused (ErrUntypable) before anything is typed. At most MaxTypeRunes runes per call.
//
// The compositor's seat uses the keymap of the keyboard used last, so clients see the
// desktop's keymap again from the next Key on.
func (d *Desktop) Type(text string) error {
	if utf8.RuneCountInString(text) > MaxTypeRunes {
		return ErrTooLarge
	}
	var syms []string
	prevCR := false
	for _, r := range text {
		if r == '\n' && prevCR {
			prevCR = false
			continue
		}
		prevCR = r == '\r'
		name, err := keysymName(r)
		if err != nil {
			return err
		}
		syms = append(syms, name)
	}
	if len(syms) == 0 {
		return nil
	}
	if err := d.lockInput(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if d.typer == 0 {
		id, err := d.c.newObject(ifVirtualKeyboard, 1, nil)
		if err != nil {
			return err
		}
		if err := d.c.send(newMessage(d.vkMgr, vkManagerCreate).uint(d.seat).uint(id)); err != nil {
			return err
		}
		d.typer = id
	}
	for start := 0; start < len(syms); {
		// As much of the text as fits one keymap.
		index := map[string]uint32{}
		var keys []string
		end := start
		for ; end < len(syms); end++ {
			if _, ok := index[syms[end]]; !ok {
				if len(keys) == maxTypingKeys {
					break
				}
				index[syms[end]] = uint32(len(keys)) + 1 // evdev code; XKB keycode is +8
				keys = append(keys, syms[end])
			}
		}
		if err := d.setKeymap(d.typer, typingKeymap(keys)); err != nil {
			return err
		}
		for i := start; i < end; i += typeBatch {
			t := now()
			var msgs []*message
			for _, s := range syms[i:min(i+typeBatch, end)] {
				code := index[s]
				msgs = append(msgs,
					newMessage(d.typer, vkKey).uint(t).uint(code).uint(keyStatePressed),
					newMessage(d.typer, vkKey).uint(t).uint(code).uint(keyStateReleased))
			}
			if err := d.c.send(msgs...); err != nil {
				return err
			}
			if err := d.c.roundtrip(callTimeout); err != nil {
				return err
			}
		}
		start = end
	}
	return nil
}
