package wayland

import (
	"reflect"
	"testing"
)

// fakeFDBase numbers the descriptors the fuzz test pretends to receive: never real ones.
const fakeFDBase = 1 << 24

type fakeFDs struct{ next, left int }

func (f *fakeFDs) takeFD() (int, bool) {
	if f.left == 0 {
		return -1, false
	}
	f.left--
	f.next++
	return fakeFDBase + f.next, true
}

// fuzzConn is a connection with no socket whose objects 1..n are every interface this
// package knows (object 1 is wl_display, with its real handler).
func fuzzConn(t *testing.T, nfds int, closed *int) *conn {
	c := &conn{objects: map[uint32]*object{}, done: make(chan struct{}),
		closeFD: func(fd int) error {
			if fd < fakeFDBase {
				t.Fatalf("closing fd %d that was never received", fd)
			}
			*closed++
			return nil
		}}
	for i, ifc := range allInterfaces {
		id := uint32(i + 1)
		h := func(_ uint32, op uint16, args []arg) {
			sig := ifc.events[op].sig
			want := 0
			for j := 0; j < len(sig); j++ {
				if sig[j] != '?' {
					want++
				}
			}
			if len(args) != want {
				t.Fatalf("%s event %d: %d args for %q", ifc.name, op, len(args), sig)
			}
			closeArgFDs(args, c.closeFD)
		}
		if id == 1 {
			h = c.handleDisplay
		}
		c.objects[id] = &object{iface: ifc, handle: h}
	}
	// A zombie: its events are decoded and dropped, fds closed.
	c.objects[uint32(len(allInterfaces)+1)] = &object{iface: ifKeyboard}
	for i := 0; i < nfds; i++ {
		c.fds = append(c.fds, fakeFDBase+i)
	}
	return c
}

func seedMessages(f *testing.F) {
	add := func(id uint32, ifc *iface, op uint16, args ...arg) {
		m, err := encodeArgs(id, op, ifc.events[op].sig, args)
		if err != nil {
			f.Fatal(err)
		}
		b, err := m.bytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(len(m.fds)))
	}
	idOf := func(ifc *iface) uint32 {
		for i, x := range allInterfaces {
			if x == ifc {
				return uint32(i + 1)
			}
		}
		return 0
	}
	add(1, ifDisplay, displayError, arg{u: 5}, arg{u: 1}, arg{s: "bad request"})
	add(1, ifDisplay, displayDeleteID, arg{u: 3})
	add(idOf(ifRegistry), ifRegistry, registryGlobal, arg{u: 1}, arg{s: "wl_seat"}, arg{u: 7})
	add(idOf(ifKeyboard), ifKeyboard, keyboardKeymap, arg{u: 1}, arg{fd: 0}, arg{u: 64000})
	add(idOf(ifKeyboard), ifKeyboard, 1, arg{u: 9}, arg{u: 12}, arg{a: []byte{1, 2, 3, 4, 5}})
	add(idOf(ifOutput), ifOutput, 0, arg{}, arg{}, arg{i: 600}, arg{i: 340}, arg{}, arg{s: "make"}, arg{s: "model"}, arg{})
	add(idOf(ifOutput), ifOutput, outputName, arg{s: "HEADLESS-1"})
	add(idOf(ifDataControlDevice), ifDataControlDevice, dcDeviceSelection, arg{null: true})
	add(idOf(ifDataControlDevice), ifDataControlDevice, dcDeviceDataOffer, arg{u: 0xff000001})
	add(idOf(ifDataControlSource), ifDataControlSource, dcSourceSend, arg{s: "text/plain"}, arg{fd: 0})
	add(uint32(len(allInterfaces)+1), ifKeyboard, keyboardKeymap, arg{u: 1}, arg{fd: 0}, arg{u: 10})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 8, 0}, uint8(0))               // wl_display.error, empty body
	f.Add([]byte{99, 0, 0, 0, 0, 0, 12, 0, 1, 2, 3, 4}, uint8(0)) // unknown object
}

// FuzzDecode feeds arbitrary bytes to the dispatcher (as if the compositor sent them, with
// some descriptors) and to the argument decoder under every event signature: neither may
// panic, every descriptor must be closed or handed to a handler, and whatever decodes must
// encode back to the same arguments.
func FuzzDecode(f *testing.F) {
	seedMessages(f)
	f.Fuzz(func(t *testing.T, data []byte, nfds uint8) {
		n := int(nfds % 40)
		closed := 0
		c := fuzzConn(t, n, &closed)
		used, err := c.dispatch(data)
		if used > len(data) || used < 0 {
			t.Fatalf("dispatch used %d of %d bytes", used, len(data))
		}
		if err == nil && c.Err() == nil && len(data)-used >= headerSize {
			if h, herr := parseHeader(data[used:]); herr == nil && h.size <= len(data)-used {
				t.Fatalf("dispatch stopped early at %d of %d without error", used, len(data))
			}
		}
		if closed+len(c.fds) > n {
			t.Fatalf("%d closed + %d queued of %d descriptors", closed, len(c.fds), n)
		}

		for _, ifc := range allInterfaces {
			for _, ev := range ifc.events {
				fds := &fakeFDs{left: 3}
				args, err := decodeArgs(ev.sig, data, fds)
				if err != nil {
					continue
				}
				m, err := encodeArgs(1, 0, ev.sig, args)
				if err != nil {
					t.Fatalf("%s.%s: re-encode: %v", ifc.name, ev.name, err)
				}
				b, err := m.bytes()
				if err != nil {
					continue // more than a message holds: the decoder had no header to obey
				}
				again, err := decodeArgs(ev.sig, b[headerSize:], &fakeFDs{left: len(m.fds)})
				if err != nil {
					t.Fatalf("%s.%s: re-decode: %v", ifc.name, ev.name, err)
				}
				for i := range again {
					again[i].fd, args[i].fd = 0, 0 // renumbered, by design
				}
				if !reflect.DeepEqual(args, again) {
					t.Fatalf("%s.%s: %+v became %+v", ifc.name, ev.name, args, again)
				}
			}
		}
	})
}
