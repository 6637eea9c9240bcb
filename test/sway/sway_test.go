package sway

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	var runtime, work string
	var swayPID, clientPID int
	t.Run("session", func(t *testing.T) {
		s := Start(t, WithResolution(800, 600))
		runtime, work = s.runtimeDir(), s.Dir()
		swayPID = s.cmd.Process.Pid

		fi, err := os.Stat(runtime)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o700 || st.Uid != nobody {
			t.Errorf("runtime dir mode %v uid %d, want 0700 uid %d", fi.Mode().Perm(), st.Uid, nobody)
		}
		if _, err := os.Stat(s.Display()); err != nil {
			t.Errorf("wayland socket: %v", err)
		}
		env := strings.Join(s.Env(), " ")
		for _, k := range []string{"WAYLAND_DISPLAY=wayland-", "XDG_RUNTIME_DIR=/", "SWAYSOCK=/"} {
			if !strings.Contains(env, k) {
				t.Errorf("Env() = %q, lacks %q", env, k)
			}
		}

		out, err := s.Msg("-t", "get_outputs")
		if err != nil {
			t.Fatal(err)
		}
		var outputs []struct {
			Name        string
			CurrentMode struct{ Width, Height int } `json:"current_mode"`
		}
		if err := json.Unmarshal([]byte(out), &outputs); err != nil {
			t.Fatalf("get_outputs: %v", err)
		}
		if len(outputs) != 1 || outputs[0].Name != "HEADLESS-1" || outputs[0].CurrentMode.Width != 800 || outputs[0].CurrentMode.Height != 600 {
			t.Errorf("outputs %+v, want HEADLESS-1 at 800x600", outputs)
		}

		c := s.Run("sh", "-c", "id -u; echo $WAYLAND_DISPLAY; exec sleep 60")
		clientPID = c.PID()
		got, ok := c.WaitOutput(5*time.Second, func(out string) bool {
			return strings.Count(out, "\n") >= 2
		})
		if !ok {
			t.Fatalf("client printed %q", got)
		}
		if lines := strings.Fields(got); len(lines) != 2 || lines[0] != "65534" || !strings.HasPrefix(lines[1], "wayland-") {
			t.Errorf("client printed %q, want uid 65534 and its WAYLAND_DISPLAY", got)
		}
	})
	if runtime == "" {
		return // skipped
	}
	for _, dir := range []string{runtime, work} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", dir, err)
		}
	}
	for _, pid := range []int{swayPID, clientPID} {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after cleanup", pid)
		}
	}
}
