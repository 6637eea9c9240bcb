package wayland

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrMissingProtocol is a compositor without a protocol a Desktop needs.
	ErrMissingProtocol = errors.New("wayland: compositor lacks a protocol")
	// ErrNoOutput is an output name the compositor does not have.
	ErrNoOutput = errors.New("wayland: no such output")
	// ErrBadCode is a key or button code outside the range this package injects.
	ErrBadCode = errors.New("wayland: bad key or button code")
	// ErrTooLarge is text over the limit of Type or SetClipboard.
	ErrTooLarge = errors.New("wayland: text too large")
	// ErrBadValue is a NaN or infinite coordinate or scroll amount.
	ErrBadValue = errors.New("wayland: bad value")
)

const (
	// callTimeout bounds each roundtrip to the compositor.
	callTimeout = 5 * time.Second
	// maxKeymapSize bounds the seat keymap we read (a full layout is about 64 KiB).
	maxKeymapSize = 1 << 20
	// MaxTypeRunes is the longest text one Type call takes.
	MaxTypeRunes = 4096
	// keyMax is KEY_MAX of linux/input-event-codes.h.
	keyMax = 0x2ff
	// absExtent is the virtual pointer's coordinate range for MoveAbs: fine enough for
	// sub-pixel placement on any real output.
	absExtent = 1 << 16
	// typeBatch is how many characters Type sends before waiting for the compositor: it
	// paces the events the compositor queues for the focused client.
	typeBatch = 64
	// maxTypingKeys is how many distinct characters one typing keymap holds: keycodes stay
	// below 255, where X11 clients (Xwayland) can see them.
	maxTypingKeys = 200
)

// Button codes accepted by Button: BTN_LEFT .. BTN_TASK.
const (
	btnFirst = 0x110
	btnLast  = 0x117
)

// Desktop injects pointer and keyboard input into a wlroots compositor (sway) and shares its
// clipboard, speaking the Wayland protocol itself: one virtual pointer mapped to the captured
// output, one virtual keyboard carrying the desktop's own keymap for Key, a second one with
// generated keymaps for Type, and a data-control device for the clipboard. Its methods are
// safe for concurrent use.
type Desktop struct {
	c *conn

	seat         uint32
	seatVer      uint32
	output       uint32
	outputName   string
	vkMgr        uint32
	vpMgr        uint32
	pointer      uint32
	keyboard     uint32
	clip         *clipboard
	keymapSource string // "seat" or "default"

	mu          sync.Mutex // the input state below, and the order of input requests
	closed      bool
	mods        map[uint32]modKey
	heldKeys    map[uint32]bool
	heldButtons map[uint32]bool
	locked      uint32    // real modifiers locked by Caps/Num Lock presses
	sentMods    [2]uint32 // depressed, locked as last sent
	scrollAcc   [2]int32  // v120 not yet sent as discrete steps, per axis
	typer       uint32    // the typing keyboard, 0 until Type is first used
}

type global struct {
	name    uint32
	iface   string
	version uint32
}

type outputInfo struct {
	id   uint32
	name string
}

// Open connects to the compositor at display (a socket name in $XDG_RUNTIME_DIR or an
// absolute path; "" means $WAYLAND_DISPLAY) and prepares input on output (a name such as
// "HEADLESS-1" or "DP-1"; "" means the first output). The seat's keymap, if it has a
// keyboard, becomes the keymap of Key; otherwise a US layout does.
func Open(display, output string) (*Desktop, error) {
	c, err := dial(display)
	if err != nil {
		return nil, err
	}
	d := &Desktop{c: c, heldKeys: map[uint32]bool{}, heldButtons: map[uint32]bool{}}
	if err := d.init(output); err != nil {
		c.close()
		if d.clip != nil {
			d.clip.close()
		}
		return nil, err
	}
	return d, nil
}

func (d *Desktop) init(output string) error {
	c := d.c
	var gmu sync.Mutex
	var globals []global
	reg, err := c.newObject(ifRegistry, 1, func(_ uint32, op uint16, args []arg) {
		if op == registryGlobal {
			gmu.Lock()
			globals = append(globals, global{name: args[0].u, iface: args[1].s, version: args[2].u})
			gmu.Unlock()
		}
	})
	if err != nil {
		return err
	}
	if err := c.send(newMessage(1, displayGetRegistry).uint(reg)); err != nil {
		return err
	}
	if err := c.roundtrip(callTimeout); err != nil {
		return fmt.Errorf("wayland: registry: %w", err)
	}
	gmu.Lock()
	defer gmu.Unlock()
	find := func(name string) *global {
		for i := range globals {
			if globals[i].iface == name {
				return &globals[i]
			}
		}
		return nil
	}
	missing := func(name, why string) error {
		return fmt.Errorf("%w: compositor has no %s: %s", ErrMissingProtocol, name, why)
	}
	bind := func(g *global, ifc *iface, maxVersion uint32, h handler) (uint32, uint32, error) {
		v := min(g.version, maxVersion)
		id, err := c.newObject(ifc, v, h)
		if err != nil {
			return 0, 0, err
		}
		m := newMessage(reg, registryBind).uint(g.name).string(g.iface).uint(v).uint(id)
		return id, v, c.send(m)
	}

	gSeat := find("wl_seat")
	gVP := find("zwlr_virtual_pointer_manager_v1")
	gVK := find("zwp_virtual_keyboard_manager_v1")
	switch {
	case gSeat == nil:
		return missing("wl_seat", "no input seat")
	case gVP == nil:
		return missing("zwlr_virtual_pointer_manager_v1", "not a wlroots compositor")
	case gVK == nil:
		return missing("zwp_virtual_keyboard_manager_v1", "not a wlroots compositor")
	}

	// Seat and outputs.
	var caps uint32
	var omu sync.Mutex
	if d.seat, d.seatVer, err = bind(gSeat, ifSeat, 7, func(_ uint32, op uint16, args []arg) {
		if op == seatCapabilities {
			omu.Lock()
			caps = args[0].u
			omu.Unlock()
		}
	}); err != nil {
		return err
	}
	var outputs []*outputInfo
	needNames := false
	for i := range globals {
		if globals[i].iface != "wl_output" {
			continue
		}
		o := &outputInfo{}
		var v uint32
		if o.id, v, err = bind(&globals[i], ifOutput, 4, func(_ uint32, op uint16, args []arg) {
			if op == outputName {
				omu.Lock()
				o.name = args[0].s
				omu.Unlock()
			}
		}); err != nil {
			return err
		}
		needNames = needNames || v < 4
		outputs = append(outputs, o)
	}
	if len(outputs) == 0 {
		return fmt.Errorf("%w: compositor has no wl_output", ErrNoOutput)
	}
	if err := c.roundtrip(callTimeout); err != nil {
		return fmt.Errorf("wayland: seat and outputs: %w", err)
	}
	if needNames {
		if err := d.nameOutputs(find("zxdg_output_manager_v1"), bind, outputs, &omu); err != nil {
			return err
		}
	}
	omu.Lock()
	var names []string
	for _, o := range outputs {
		names = append(names, o.name)
		if d.output == 0 && (output == "" || o.name == output) {
			d.output, d.outputName = o.id, o.name
		}
	}
	seatCaps := caps
	omu.Unlock()
	if d.output == 0 {
		return fmt.Errorf("%w: %q (the compositor has %s)", ErrNoOutput, output, strings.Join(names, ", "))
	}

	// The keymap for Key: the seat's, when it has a whole one.
	text, err := d.seatKeymap(seatCaps)
	if err != nil {
		return err
	}
	d.keymapSource = "seat"
	info, perr := parseKeymap(text)
	if text == "" || perr != nil || !usableSeatKeymap(info) {
		d.keymapSource = "default"
		text = defaultKeymap
		if info, perr = parseKeymap(text); perr != nil {
			return perr
		}
	}
	d.mods = info.mods

	// Virtual devices: created once and kept (clients take ~300 ms to start using a new
	// pointer).
	if d.vkMgr, _, err = bind(gVK, ifVirtualKeyboardMgr, 1, nil); err != nil {
		return err
	}
	if d.keyboard, err = d.newVirtualKeyboard(text); err != nil {
		return err
	}
	vpVer := uint32(0)
	if d.vpMgr, vpVer, err = bind(gVP, ifVirtualPointerManager, 2, nil); err != nil {
		return err
	}
	if d.pointer, err = c.newObject(ifVirtualPointer, 1, nil); err != nil {
		return err
	}
	var create *message
	if vpVer >= 2 {
		// Mapped to the output: absolute motion covers that output only.
		create = newMessage(d.vpMgr, vpManagerCreateWithOutput).uint(d.seat).uint(d.output).uint(d.pointer)
	} else {
		create = newMessage(d.vpMgr, vpManagerCreate).uint(d.seat).uint(d.pointer)
	}
	if err := c.send(create); err != nil {
		return err
	}

	// The clipboard is optional: input works without it.
	d.clip = newClipboard(c)
	if g := find("zwlr_data_control_manager_v1"); g != nil {
		if err := d.clip.start(func(h handler) (uint32, error) {
			id, _, err := bind(g, ifDataControlManager, 1, h)
			return id, err
		}, d.seat); err != nil {
			return err
		}
	}
	if err := c.roundtrip(callTimeout); err != nil {
		return fmt.Errorf("wayland: creating virtual devices: %w", err)
	}
	return nil
}

// nameOutputs learns output names through xdg-output, for compositors whose wl_output is
// older than v4 (which has the name event).
func (d *Desktop) nameOutputs(g *global, bind func(*global, *iface, uint32, handler) (uint32, uint32, error),
	outputs []*outputInfo, omu *sync.Mutex) error {
	if g == nil || g.version < 2 {
		return fmt.Errorf("%w: compositor has neither wl_output v4 nor zxdg_output_manager_v1 v2: output names unknown",
			ErrMissingProtocol)
	}
	mgr, _, err := bind(g, ifXdgOutputManager, 3, nil)
	if err != nil {
		return err
	}
	var msgs []*message
	var xdgs []uint32
	for _, o := range outputs {
		if o.name != "" {
			continue
		}
		id, err := d.c.newObject(ifXdgOutput, 3, func(_ uint32, op uint16, args []arg) {
			if op == xdgOutputName {
				omu.Lock()
				o.name = args[0].s
				omu.Unlock()
			}
		})
		if err != nil {
			return err
		}
		xdgs = append(xdgs, id)
		msgs = append(msgs, newMessage(mgr, xdgOutputManagerGetXdgOutput).uint(id).uint(o.id))
	}
	if err := d.c.send(msgs...); err != nil {
		return err
	}
	if err := d.c.roundtrip(callTimeout); err != nil {
		return fmt.Errorf("wayland: output names: %w", err)
	}
	msgs = msgs[:0]
	for _, id := range xdgs {
		msgs = append(msgs, newMessage(id, xdgOutputDestroy))
		d.c.destroyed(id)
	}
	msgs = append(msgs, newMessage(mgr, xdgOutputManagerDestroy))
	d.c.destroyed(mgr)
	return d.c.send(msgs...)
}

// seatKeymap reads the keymap the seat's keyboard reports, "" if it has none. Headless sway
// has no keyboard until a virtual one appears, so this usually finds none there.
func (d *Desktop) seatKeymap(caps uint32) (string, error) {
	if caps&seatCapabilityKeyboard == 0 {
		return "", nil
	}
	var kmu sync.Mutex
	var text string
	var readErr error
	kb, err := d.c.newObject(ifKeyboard, d.seatVer, func(_ uint32, op uint16, args []arg) {
		if op != keyboardKeymap {
			return
		}
		fd, format, size := args[1].fd, args[0].u, args[2].u
		defer unix.Close(fd)
		if format != keymapFormatXKBv1 {
			return
		}
		t, err := readKeymapFD(fd, size)
		kmu.Lock()
		text, readErr = t, err
		kmu.Unlock()
	})
	if err != nil {
		return "", err
	}
	if err := d.c.send(newMessage(d.seat, seatGetKeyboard).uint(kb)); err != nil {
		return "", err
	}
	if err := d.c.roundtrip(callTimeout); err != nil {
		return "", fmt.Errorf("wayland: seat keymap: %w", err)
	}
	// Done with it: its key events are not ours to read.
	d.c.destroyed(kb)
	if d.seatVer >= 3 {
		if err := d.c.send(newMessage(kb, keyboardRelease)); err != nil {
			return "", err
		}
	}
	kmu.Lock()
	defer kmu.Unlock()
	if readErr != nil {
		return "", nil // an unreadable keymap is as good as none: the default serves
	}
	return text, nil
}

// readKeymapFD reads a keymap of size bytes (NUL-terminated) from fd.
func readKeymapFD(fd int, size uint32) (string, error) {
	if size == 0 || size > maxKeymapSize {
		return "", fmt.Errorf("wayland: keymap of %d bytes", size)
	}
	buf := make([]byte, size)
	for off := 0; off < len(buf); {
		n, err := unix.Pread(fd, buf[off:], int64(off))
		if err != nil {
			return "", err
		}
		if n == 0 {
			buf = buf[:off]
			break
		}
		off += n
	}
	if i := slices.Index(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return string(buf), nil
}

// keymapFile puts a keymap into a sealed memfd, NUL-terminated as the compositor expects.
func keymapFile(text string) (fd int, size uint32, err error) {
	fd, err = unix.MemfdCreate("p2pcast-keymap", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, 0, fmt.Errorf("wayland: memfd: %w", err)
	}
	data := append([]byte(text), 0)
	for off := 0; off < len(data); {
		n, err := unix.Write(fd, data[off:])
		if err != nil {
			unix.Close(fd)
			return -1, 0, fmt.Errorf("wayland: keymap write: %w", err)
		}
		off += n
	}
	// The compositor maps it: it must not shrink under it.
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL)
	return fd, uint32(len(data)), nil
}

// newVirtualKeyboard creates a virtual keyboard carrying the keymap text.
func (d *Desktop) newVirtualKeyboard(text string) (uint32, error) {
	id, err := d.c.newObject(ifVirtualKeyboard, 1, nil)
	if err != nil {
		return 0, err
	}
	if err := d.c.send(newMessage(d.vkMgr, vkManagerCreate).uint(d.seat).uint(id)); err != nil {
		return 0, err
	}
	return id, d.setKeymap(id, text)
}

// setKeymap uploads text as the keymap of virtual keyboard id.
func (d *Desktop) setKeymap(id uint32, text string) error {
	fd, size, err := keymapFile(text)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return d.c.send(newMessage(id, vkKeymap).uint(keymapFormatXKBv1).fd(fd).uint(size))
}

// OutputName is the name of the output pointer motion maps onto.
func (d *Desktop) OutputName() string { return d.outputName }

// KeymapSource says where Key's keymap came from: "seat" (the desktop's keyboard) or
// "default" (the embedded US layout).
func (d *Desktop) KeymapSource() string { return d.keymapSource }

// Err is the connection's fatal error (a *ProtocolError, or ErrClosed when the compositor
// went away), nil while it works.
func (d *Desktop) Err() error { return d.c.Err() }

// Done is closed when the connection ends: Close, a protocol error, or the compositor
// going away (then Err says which).
func (d *Desktop) Done() <-chan struct{} { return d.c.done }

// now is a protocol timestamp: milliseconds of the monotonic clock, wrapping as evdev's do.
func now() uint32 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint32(ts.Sec*1000 + ts.Nsec/1e6)
}

// Close releases whatever is held, destroys the virtual devices and disconnects. The
// clipboard channel is closed once its goroutines have stopped.
func (d *Desktop) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var err error
	if d.c.Err() == nil {
		msgs := d.releaseAllLocked()
		msgs = append(msgs, newMessage(d.pointer, vpDestroy), newMessage(d.keyboard, vkDestroy))
		if d.typer != 0 {
			msgs = append(msgs, newMessage(d.typer, vkDestroy))
		}
		msgs = append(msgs, newMessage(d.vpMgr, vpManagerDestroy))
		for _, id := range []uint32{d.pointer, d.keyboard, d.typer, d.vpMgr} {
			d.c.destroyed(id)
		}
		msgs = append(msgs, d.clip.destroyMessages()...)
		if err = d.c.send(msgs...); err == nil {
			// Let the compositor act on the releases before the hang-up.
			err = d.c.roundtrip(time.Second)
		}
	}
	d.mu.Unlock()
	d.c.close()
	d.clip.close()
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return err
}
