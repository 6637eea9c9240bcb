// Package sway starts a headless sway compositor for Go tests: a real Wayland desktop that
// input, clipboard and capture tests can drive and observe.
//
// sway refuses to run as root, so it runs as uid 65534 (nobody) through setpriv, in a fresh
// 0700 XDG_RUNTIME_DIR owned by that uid; root test processes can still use its sockets.
// Everything a Session starts is killed by PID and every directory it made is removed by
// t.Cleanup.
package sway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The unprivileged user sway and its clients run as.
const nobody = 65534

// startTimeout bounds how long Start waits for sway's sockets and first output.
const startTimeout = 10 * time.Second

// Option changes how Start configures sway.
type Option func(*options)

type options struct {
	width, height int
	config        []string
}

// WithResolution sets HEADLESS-1's mode (1280x720 by default).
func WithResolution(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// WithConfig appends lines to the generated sway config.
func WithConfig(lines ...string) Option {
	return func(o *options) { o.config = append(o.config, lines...) }
}

// Session is one running headless sway.
type Session struct {
	t       testing.TB
	runtime string // XDG_RUNTIME_DIR, 0700, owned by nobody
	work    string // a scratch directory clients may write to
	display string // WAYLAND_DISPLAY (a name inside runtime)
	ipc     string // SWAYSOCK
	cmd     *exec.Cmd
	log     *syncBuffer

	mu      sync.Mutex
	clients []*Client
}

// Start starts a headless sway for the test, or skips the test when that is impossible here
// (not root, or sway/setpriv missing). It fails the test if sway does not come up.
func Start(t testing.TB, opts ...Option) *Session {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sway tests need root (sway runs as uid 65534 through setpriv)")
	}
	for _, bin := range []string{"sway", "swaymsg", "setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (scripts/install-deps.sh installs it): %v", bin, err)
		}
	}
	o := options{width: 1280, height: 720}
	for _, opt := range opts {
		opt(&o)
	}

	s := &Session{t: t, log: &syncBuffer{}}
	// Not t.TempDir: its parent directory is 0700 root, which uid 65534 cannot traverse.
	var err error
	if s.runtime, err = privateDir("sway-run-"); err != nil {
		t.Fatalf("sway: runtime dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(s.runtime) })
	if s.work, err = privateDir("sway-work-"); err != nil {
		t.Fatalf("sway: work dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(s.work) })

	config := []string{
		fmt.Sprintf("output HEADLESS-1 resolution %dx%d position 0 0", o.width, o.height),
		"xwayland disable",
		"default_border none",
		"focus_follows_mouse no",
	}
	config = append(config, o.config...)
	configPath := filepath.Join(s.work, "config")
	if err := writeOwned(configPath, []byte(strings.Join(config, "\n")+"\n")); err != nil {
		t.Fatalf("sway: config: %v", err)
	}

	s.cmd = exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"sway", "-c", configPath)
	s.cmd.Env = append(baseEnv(s.runtime, s.work),
		"WLR_BACKENDS=headless", "WLR_LIBINPUT_NO_DEVICES=1", "WLR_RENDERER=pixman",
		"WLR_HEADLESS_OUTPUTS=1")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("sway: start: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() { s.stop(exited) })

	if err := s.waitReady(exited); err != nil {
		t.Fatalf("sway: %v\nsway log:\n%s", err, s.log.String())
	}
	t.Logf("sway: headless %dx%d up in %v (WAYLAND_DISPLAY=%s)", o.width, o.height,
		time.Since(began).Round(time.Millisecond), s.display)
	return s
}

// waitReady polls for the Wayland and IPC sockets and then for HEADLESS-1 over IPC: sway
// offers no readiness notification.
func (s *Session) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return errors.New("sway exited during start-up")
		default:
		}
		if s.display == "" {
			if m, _ := filepath.Glob(filepath.Join(s.runtime, "wayland-*")); len(m) > 0 {
				for _, p := range m {
					if !strings.HasSuffix(p, ".lock") {
						s.display = filepath.Base(p)
					}
				}
			}
		}
		if s.ipc == "" {
			if m, _ := filepath.Glob(filepath.Join(s.runtime, "sway-ipc.*.sock")); len(m) > 0 {
				s.ipc = m[0]
			}
		}
		if s.display != "" && s.ipc != "" {
			if out, err := s.Msg("-t", "get_outputs"); err == nil && strings.Contains(out, "HEADLESS-1") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (display %q, ipc %q)", startTimeout, s.display, s.ipc)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the clients, then sway, each by PID (its process group, which setpriv keeps).
func (s *Session) stop(exited <-chan struct{}) {
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	for _, c := range clients {
		c.Stop()
	}
	terminate(s.cmd.Process.Pid, exited)
	if s.t.Failed() {
		s.t.Logf("sway log:\n%s", s.log.String())
	}
}

// Env is what a client needs to reach this session: WAYLAND_DISPLAY, XDG_RUNTIME_DIR and
// SWAYSOCK, as KEY=value strings.
func (s *Session) Env() []string {
	return []string{
		"WAYLAND_DISPLAY=" + s.display,
		"XDG_RUNTIME_DIR=" + s.runtime,
		"SWAYSOCK=" + s.ipc,
	}
}

// Display is the absolute path of the Wayland socket.
func (s *Session) Display() string { return filepath.Join(s.runtime, s.display) }

// Dir is a scratch directory owned by uid 65534: files clients write go here.
func (s *Session) Dir() string { return s.work }

// PID is sway's process id (for CPU accounting, say).
func (s *Session) PID() int { return s.cmd.Process.Pid }

// Log is sway's output so far.
func (s *Session) Log() string { return s.log.String() }

// Msg runs swaymsg with args against this session and returns its output.
func (s *Session) Msg(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swaymsg", append([]string{"-s", s.ipc}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swaymsg %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Run starts a client (foot, weston-eventdemo, ...) as uid 65534 inside the session. Its
// output is captured; it is killed when the test ends, if it has not exited by then.
func (s *Session) Run(name string, args ...string) *Client {
	s.t.Helper()
	c := &Client{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534",
		"--clear-groups", "--", name}, args...)...)
	c.cmd.Env = append(baseEnv(s.runtime, s.work), s.Env()...)
	c.cmd.Dir = s.work
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		s.t.Fatalf("sway: run %s: %v", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

// Client is a program started by Run.
type Client struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error
}

// PID is the client's process id.
func (c *Client) PID() int { return c.cmd.Process.Pid }

// Output is what the client printed so far (stdout and stderr).
func (c *Client) Output() string { return c.out.String() }

// Exited is closed when the client has exited.
func (c *Client) Exited() <-chan struct{} { return c.exited }

// WaitOutput polls the client's output until cond holds, the client exits or timeout passes.
// Output has no event to wait on, so polling with a deadline it is.
func (c *Client) WaitOutput(timeout time.Duration, cond func(out string) bool) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		out := c.Output()
		if cond(out) {
			return out, true
		}
		select {
		case <-c.exited:
			out = c.Output()
			return out, cond(out)
		default:
		}
		if time.Now().After(deadline) {
			return out, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop kills the client by PID (its process group) and waits for it.
func (c *Client) Stop() { terminate(c.cmd.Process.Pid, c.exited) }

// terminate sends SIGTERM to the process group led by pid, then SIGKILL if it has not exited
// within a second, and waits for exited.
func terminate(pid int, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(time.Second):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-exited
}

// baseEnv is a clean environment for sway and its clients: nothing of the test's own
// WAYLAND_DISPLAY or DISPLAY leaks in (sway would nest itself in them).
func baseEnv(runtime, home string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return []string{
		"PATH=" + path,
		"HOME=" + home,
		"XDG_RUNTIME_DIR=" + runtime,
		"LANG=C.UTF-8", // foot refuses a non-UTF-8 locale
		"LC_ALL=C.UTF-8",
	}
}

// privateDir makes a fresh 0700 directory under the system temp dir, owned by nobody.
func privateDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return os.Chown(path, nobody, nobody)
}

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (s *Session) runtimeDir() string { return s.runtime }
