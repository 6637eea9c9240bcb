// Package sway runs a headless sway compositor: a real Wayland desktop, with no screen, that
// `p2pcast bench input` and the desktop tests stream, drive and observe.
//
// sway refuses to run as root, so it runs as uid 65534 (nobody) through setpriv, in a fresh
// 0700 XDG_RUNTIME_DIR owned by that uid; root processes can still use its sockets. Clients
// started with Run run as the same user in the session. Close kills everything the Session
// started, by process group, and removes the directories it made.
package sway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Nobody is the unprivileged user sway and its clients run as.
const Nobody = 65534

// startTimeout bounds how long Start waits for sway's sockets and its output.
const startTimeout = 10 * time.Second

// Errors of Start.
var (
	ErrNotRoot      = errors.New("sway: a headless sway is started as uid 65534 through setpriv, which needs root")
	ErrNotInstalled = errors.New("sway: not installed (scripts/install-deps.sh installs sway)")
)

// Options say how to start sway.
type Options struct {
	// Width and Height are HEADLESS-1's mode (1280x720 when zero).
	Width, Height int
	// Config lines are appended to the generated config.
	Config []string
	// Log, when set, also gets sway's output.
	Log io.Writer
}

// Session is one running headless sway.
type Session struct {
	runtime string // XDG_RUNTIME_DIR, 0700, owned by nobody
	work    string // a scratch directory clients may write to
	display string // WAYLAND_DISPLAY (a name inside runtime)
	ipc     string // SWAYSOCK
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *syncBuffer

	mu      sync.Mutex
	clients []*Client
	closed  bool
}

// Start starts a headless sway and waits until its output is up. ErrNotRoot and
// ErrNotInstalled say why it cannot run here at all.
func Start(ctx context.Context, o Options) (s *Session, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	for _, bin := range []string{"sway", "swaymsg", "setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNotInstalled, bin, err)
		}
	}
	if o.Width == 0 || o.Height == 0 {
		o.Width, o.Height = 1280, 720
	}
	s = &Session{log: &syncBuffer{}, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// Not under a root-only 0700 parent: uid 65534 must reach them.
	if s.runtime, err = privateDir("sway-run-"); err != nil {
		return s, fmt.Errorf("sway: runtime dir: %w", err)
	}
	if s.work, err = privateDir("sway-work-"); err != nil {
		return s, fmt.Errorf("sway: work dir: %w", err)
	}
	config := append([]string{
		fmt.Sprintf("output HEADLESS-1 resolution %dx%d position 0 0", o.Width, o.Height),
		"xwayland disable",
		"default_border none",
		"focus_follows_mouse no",
	}, o.Config...)
	configPath := filepath.Join(s.work, "config")
	if err := writeOwned(configPath, []byte(strings.Join(config, "\n")+"\n")); err != nil {
		return s, fmt.Errorf("sway: config: %w", err)
	}
	s.cmd = exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "sway", "-c", configPath)
	s.cmd.Env = append(baseEnv(s.runtime, s.work),
		"WLR_BACKENDS=headless", "WLR_LIBINPUT_NO_DEVICES=1", "WLR_RENDERER=pixman", "WLR_HEADLESS_OUTPUTS=1")
	var out io.Writer = s.log
	if o.Log != nil {
		out = io.MultiWriter(s.log, o.Log)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	// Its own process group, so Close ends whatever it spawned too; and never outliving us.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return s, fmt.Errorf("sway: start: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx); err != nil {
		return s, fmt.Errorf("sway: %w\nsway log:\n%s", err, s.Log())
	}
	return s, nil
}

// waitReady polls for the Wayland and IPC sockets, then for HEADLESS-1 over IPC: sway has no
// readiness notification.
func (s *Session) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			return errors.New("sway exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if s.display == "" {
			m, _ := filepath.Glob(filepath.Join(s.runtime, "wayland-*"))
			for _, p := range m {
				if !strings.HasSuffix(p, ".lock") {
					s.display = filepath.Base(p)
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
		time.Sleep(10 * time.Millisecond) // polling: sway announces nothing
	}
}

// Close kills the clients, then sway, each by process group, and removes the session's
// directories. It is safe to call twice.
func (s *Session) Close() {
	s.mu.Lock()
	clients := s.clients
	s.clients, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range clients {
		c.Stop()
	}
	if s.cmd != nil {
		terminate(s.cmd.Process.Pid, s.exited)
	}
	for _, d := range []string{s.runtime, s.work} {
		if d != "" {
			_ = os.RemoveAll(d)
		}
	}
}

// Env is what a client needs to reach this session: WAYLAND_DISPLAY, XDG_RUNTIME_DIR and
// SWAYSOCK, as KEY=value strings.
func (s *Session) Env() []string {
	return []string{"WAYLAND_DISPLAY=" + s.display, "XDG_RUNTIME_DIR=" + s.runtime, "SWAYSOCK=" + s.ipc}
}

// PID is sway's process id (its CPU time, in benchmarks).
func (s *Session) PID() int { return s.cmd.Process.Pid }

// Display is the absolute path of the Wayland socket.
func (s *Session) Display() string { return filepath.Join(s.runtime, s.display) }

// Dir is a scratch directory owned by uid 65534: files clients write go here.
func (s *Session) Dir() string { return s.work }

// Log is sway's output so far.
func (s *Session) Log() string { return s.log.String() }

// Msg runs swaymsg with args against this session and returns its output.
func (s *Session) Msg(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "swaymsg", append([]string{"-s", s.ipc}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swaymsg %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Run starts a client (foot, weston-eventdemo, …) as uid 65534 inside the session. Its output
// is kept (Output); Close kills it if it has not exited by then.
func (s *Session) Run(name string, args ...string) (*Client, error) {
	c := &Client{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", name}, args...)...)
	c.cmd.Env = append(baseEnv(s.runtime, s.work), s.Env()...)
	c.cmd.Dir = s.work
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("sway: session closed")
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sway: run %s: %w", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	s.clients = append(s.clients, c)
	return c, nil
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

// Stop kills the client by process group and waits for it.
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

// baseEnv is a clean environment for sway and its clients: nothing of our own WAYLAND_DISPLAY
// or DISPLAY leaks in (sway would nest itself in them).
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
	if err := os.Chown(dir, Nobody, Nobody); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return os.Chown(path, Nobody, Nobody)
}

// syncBuffer is a bytes.Buffer safe for a process writing while another goroutine reads.
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
