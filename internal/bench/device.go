package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2pcast/p2pcast/internal/device"
)

// deviceOptions says how to start the benchmark's device on 127.0.0.1: a test pattern unless
// extra names another source.
type deviceOptions struct {
	size    string // WxH; "": the source's own (a desktop's output)
	fps     int
	bitrate string // "": the device's default
	// extra are more `p2pcast device` flags (viewer limits, playout delay…).
	extra []string
	// env is added to the device's environment (a desktop's WAYLAND_DISPLAY).
	env []string
	// cpus pins the device to these CPUs (taskset's list: "0", "0-1"); "" leaves it free.
	cpus string
	// log gets the command line at debug level; with verbose the device's logs go to stderr.
	log     *slog.Logger
	verbose bool
	stderr  io.Writer
}

// benchDevice is a `p2pcast device` a benchmark started.
type benchDevice struct {
	cmd *exec.Cmd
	url string // the viewer page, ending in /
}

// startDevice runs `p2pcast device` (this same binary) with a test pattern and waits until its
// stream has a picture. Its last logs come with any error; stop ends it.
func startDevice(ctx context.Context, o deviceOptions) (*benchDevice, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"device", "--http", "127.0.0.1:0", "--fps", fmt.Sprint(o.fps)}
	if o.size != "" {
		args = append(args, "--size", o.size)
	}
	if o.bitrate != "" {
		args = append(args, "--bitrate", o.bitrate)
	}
	args = append(args, o.extra...)
	cmd := exec.Command(exe, args...)
	if o.cpus != "" {
		// taskset execs the device: the PID measured is the device's.
		cmd = exec.Command("taskset", append([]string{"-c", o.cpus, exe}, args...)...)
	}
	if o.env != nil {
		cmd.Env = append(os.Environ(), o.env...)
	}
	tail := &tailWriter{max: 4 << 10}
	cmd.Stderr = tail
	if o.verbose {
		cmd.Stderr = io.MultiWriter(o.stderr, tail)
	}
	// The device must not outlive a benchmark that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if o.log != nil {
		o.log.Debug("starting the device", "cmd", filepath.Base(exe)+" "+strings.Join(args, " "))
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &benchDevice{cmd: cmd}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("the device did not start: %v\n%s", err, tail)
	}
	d.url = strings.TrimSpace(line)
	if err := waitForPicture(ctx, d.statusURL()); err != nil {
		d.stop()
		return nil, fmt.Errorf("%w\n%s", err, tail)
	}
	return d, nil
}

func (d *benchDevice) pid() int { return d.cmd.Process.Pid }

func (d *benchDevice) statusURL() string { return d.url + "api/status" }

// stop ends the device: SIGTERM, and SIGKILL after 5 s.
func (d *benchDevice) stop() { stopProcess(d.cmd, 5*time.Second) }

// waitForPicture polls the device's status until its stream has produced frames.
func waitForPicture(ctx context.Context, statusURL string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := fetchStatus(ctx, statusURL); err == nil && st.Stats.Keyframes > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("device at %s produced no picture in 10 s", statusURL)
}

func fetchStatus(ctx context.Context, url string) (device.Status, error) {
	var st device.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = slices.Delete(t.buf, 0, over)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
