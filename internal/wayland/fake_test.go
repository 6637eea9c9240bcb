package wayland

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeCompositor is just enough of a compositor to test Open against faults no real one
// makes: it answers get_registry with its globals and sync with done, and reply may send
// anything else first.
type fakeCompositor struct {
	globals []global
	// reply, if set, is written instead of the registry's globals.
	reply []byte
}

func (f fakeCompositor) start(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wayland-fake")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		f.serve(c)
	}()
	return path
}

func (f fakeCompositor) serve(c *net.UnixConn) {
	hdr := make([]byte, headerSize)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		h, err := parseHeader(hdr)
		if err != nil {
			return
		}
		body := make([]byte, h.size-headerSize)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		var out []*message
		switch {
		case h.id == 1 && h.opcode == displayGetRegistry && f.reply != nil:
			if _, err := c.Write(f.reply); err != nil {
				return
			}
		case h.id == 1 && h.opcode == displayGetRegistry:
			reg := binary.NativeEndian.Uint32(body)
			for _, g := range f.globals {
				out = append(out, newMessage(reg, registryGlobal).uint(g.name).string(g.iface).uint(g.version))
			}
		case h.id == 1 && h.opcode == displaySync:
			cb := binary.NativeEndian.Uint32(body)
			out = append(out, newMessage(cb, 0).uint(0), newMessage(1, displayDeleteID).uint(cb))
		}
		for _, m := range out {
			b, _ := m.bytes()
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
}

func TestOpenWithoutWlroots(t *testing.T) {
	path := fakeCompositor{globals: []global{
		{1, "wl_seat", 7}, {2, "wl_output", 4}, {3, "zwp_virtual_keyboard_manager_v1", 1},
	}}.start(t)
	_, err := Open(path, "")
	if !errors.Is(err, ErrMissingProtocol) ||
		!strings.Contains(err.Error(), "compositor has no zwlr_virtual_pointer_manager_v1: not a wlroots compositor") {
		t.Errorf("Open: %v, want ErrMissingProtocol naming the virtual pointer", err)
	}
}

func TestOpenMalformed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply []byte
		want  error
	}{
		{"size below header", []byte{1, 0, 0, 0, 0, 0, 4, 0}, ErrMalformed},
		{"string past the end", func() []byte {
			b, _ := newMessage(2, registryGlobal).uint(1).uint(1000).bytes()
			return b
		}(), ErrMalformed},
		{"arguments missing", func() []byte {
			b, _ := newMessage(2, registryGlobal).uint(1).bytes() // no interface, no version
			return b
		}(), ErrMalformed},
		{"display error", func() []byte {
			b, _ := newMessage(1, displayError).uint(2).uint(7).string("go away").bytes()
			return b
		}(), ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := fakeCompositor{reply: tc.reply}.start(t)
			_, err := Open(path, "")
			if !errors.Is(err, tc.want) {
				t.Errorf("Open: %v, want %v", err, tc.want)
			}
			var pe *ProtocolError
			if errors.As(err, &pe) && (pe.Interface != "wl_registry" || pe.Code != 7 || pe.Message != "go away") {
				t.Errorf("protocol error %+v", pe)
			}
		})
	}
}
