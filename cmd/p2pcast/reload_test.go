package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/device"
)

// What SIGHUP does: the config file read again with the same command line (flags still win),
// the safe settings applied to the running device, the rest named as needing a restart.
func TestReloadRereadsTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "device.toml")
	write := func(text string) {
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("source = \"socket\"\nhttp = \"127.0.0.1:0\"\nbitrate = \"2M\"\nfps = 15\n[record]\ndir = \"" + dir + "\"\n")
	args := []string{"--config", file, "--fps", "20", "--socket", filepath.Join(dir, "capture.sock")}
	s, done, err := parseDevice(args, io.Discard, io.Discard, nil)
	if err != nil || done {
		t.Fatal(done, err)
	}
	if s.cfg.FPS != 20 || s.cfg.Bitrate != 2_000_000 {
		t.Fatalf("first reading: fps %d bitrate %d", s.cfg.FPS, s.cfg.Bitrate)
	}
	d, err := device.New(s.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.SetReloader(func() (device.Config, error) {
		again, _, err := parseDevice(args, io.Discard, io.Discard, nil)
		return again.cfg, err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	ready := make(chan struct{})
	done2 := make(chan error, 1)
	go func() { done2 <- d.Run(ctx, func(device.Ready) { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done2; err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-ready:
	case err := <-done2:
		t.Fatal(err)
	}
	// The same file: nothing to apply, nothing to restart.
	if applied, restart, err := d.ReloadFromFile(); err != nil || len(applied)+len(restart) != 0 {
		t.Fatalf("unchanged: applied %v, needs restart %v, %v", applied, restart, err)
	}
	write("source = \"socket\"\nhttp = \"127.0.0.1:0\"\nbitrate = \"1M\"\nfps = 15\ngop = \"3s\"\nrecord = \"events\"\nrecord-dir = \"" + dir + "\"\n")
	applied, restart, err := d.ReloadFromFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "bitrate") || !slices.Contains(applied, "record") || slices.Contains(applied, "fps") || !slices.Equal(restart, []string{"GOP"}) {
		t.Fatalf("applied %v, needs restart %v", applied, restart)
	}
	write("fps = \"many\"\n")
	if _, _, err := d.ReloadFromFile(); err == nil {
		t.Fatal("a bad file reloaded")
	}
}
