package sway

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartRunClose: sway comes up with the asked mode, runs a client in the session, and Close
// leaves no process and no directory behind.
func TestStartRunClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{Width: 800, Height: 600})
	if errors.Is(err, ErrNotRoot) || errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range []string{s.runtime, s.work} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || st.Uid != Nobody {
			t.Errorf("%s: mode %v uid %d; want 0700 uid %d", d, fi.Mode().Perm(), st.Uid, Nobody)
		}
	}
	if _, err := os.Stat(s.Display()); err != nil {
		t.Errorf("wayland socket: %v", err)
	}
	out, err := s.Msg("-t", "get_outputs")
	if err != nil || !strings.Contains(out, `"width": 800`) || !strings.Contains(out, `"height": 600`) {
		t.Fatalf("get_outputs: %v\n%s", err, out)
	}
	c, err := s.Run("sh", "-c", `echo "$WAYLAND_DISPLAY $(id -u)"; exec sleep 60`)
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := c.WaitOutput(5*time.Second, func(o string) bool { return strings.Contains(o, "\n") }); !ok || !strings.Contains(out, "wayland-") || !strings.Contains(out, " 65534") {
		t.Fatalf("client output %q; want its WAYLAND_DISPLAY and uid 65534", out)
	}
	dirs, pids := []string{s.runtime, s.work}, []int{s.PID(), c.PID()}
	s.Close()
	select {
	case <-c.Exited():
	default:
		t.Error("the client outlived Close")
	}
	select {
	case <-s.exited:
	default:
		t.Error("sway outlived Close")
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", d, err)
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after Close", pid)
		}
	}
	s.Close() // twice is fine
}
