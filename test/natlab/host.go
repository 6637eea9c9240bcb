package natlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Host is one machine of the lab: a network namespace with one interface and a default route.
type Host struct {
	Name string // as given to PublicHost or Site
	NS   string // network namespace name, for `ip netns exec`
	IP   net.IP // its address: public for public hosts, 10.0.N.2 behind a NAT
	Kind Kind   // the NAT in front of it; None on the public segment
	// Router is the NAT router in front of a site host (its IP is the site's public address);
	// nil on the public segment.
	Router *Host

	lab *Lab
	dev string // the interface carrying IP
}

// PublicIP is the address the public segment sees the host's packets come from: its own, or
// its router's.
func (h *Host) PublicIP() net.IP {
	if h.Router != nil {
		return h.Router.IP
	}
	return h.IP
}

func (h *Host) String() string { return fmt.Sprintf("%s (%s, %s, %v)", h.Name, h.NS, h.IP, h.Kind) }

// Command returns a command that runs name inside the host (through `ip netns exec`) in a
// process group of its own. The lab kills that group when it closes, and cancelling ctx kills
// it too, so helpers of the command go with it.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.lab.ipPath, append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process, syscall.SIGKILL) }
	// A helper that escaped the group may hold the output pipes open; do not let Wait hang
	// on it once the command itself has exited.
	cmd.WaitDelay = 2 * time.Second
	h.lab.track(cmd)
	return cmd
}

// Run runs a command in the host and returns its combined output. The error names the
// command and the host and carries the output.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := h.Command(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w\n%s", strings.Join(append([]string{name}, args...), " "), h.NS, err, out)
	}
	return out, nil
}

// Start starts a long-running command in the host, collecting its output, and registers
// a Stop of it with t.Cleanup: cleanups run last-in first-out, so the process ends before a
// t.TempDir made earlier (its working files, say) is removed. It fails t if the command
// cannot start. For environment variables, start `env K=V name ...`.
func (h *Host) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	p := &Proc{host: h, done: make(chan struct{}), out: newOutput()}
	p.Cmd = h.Command(context.Background(), name, args...)
	p.Cmd.Stdout = p.out
	p.Cmd.Stderr = p.out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("natlab: starting %s in %s: %v", name, h.NS, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		h.lab.dumpIfFailed(t)
		p.Stop()
	})
	return p
}

// Proc is a command started with Host.Start.
type Proc struct {
	Cmd  *exec.Cmd
	host *Host
	out  *output
	done chan struct{}
	err  error
}

// Done is closed when the process has exited and its output is collected.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err waits for the process to exit and returns the result of its Wait.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Output is everything the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid is the process id (and process group id).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// WaitOutput waits until the output matches the regular expression and returns the match and
// its submatches. It fails if ctx ends or the process exits first.
func (p *Proc) WaitOutput(ctx context.Context, pattern string) ([]string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	for {
		text, changed := p.out.snapshot()
		if m := re.FindStringSubmatch(text); m != nil {
			return m, nil
		}
		select {
		case <-changed:
		case <-p.done:
			// The last writes may have come with the exit.
			if m := re.FindStringSubmatch(p.out.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s in %s exited (%v) before printing %q; output:\n%s", p.Cmd.Args[4], p.host.NS, p.err, pattern, p.out.String())
		case <-ctx.Done():
			return nil, fmt.Errorf("%s in %s did not print %q: %w; output:\n%s", p.Cmd.Args[4], p.host.NS, pattern, ctx.Err(), p.out.String())
		}
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL if it has not exited within 3 s. It
// returns once the process is reaped.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	killGroup(p.Cmd.Process, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		killGroup(p.Cmd.Process, syscall.SIGKILL)
		<-p.done
	}
}

// output collects a process's output and tells waiters when it grows.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String(), o.changed
}

// ListenPacket opens a packet socket inside the host (like net.ListenPacket there). The lab
// closes it when it closes.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := inNS(h.NS, func() (err error) {
		c, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, address, h.NS, err)
	}
	h.lab.trackCloser(c)
	return c, nil
}

// Listen opens a stream listener inside the host. The lab closes it when it closes.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(h.NS, func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, address, h.NS, err)
	}
	h.lab.trackCloser(ln)
	return ln, nil
}

// Dial connects from inside the host. The lab closes the connection when it closes.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := h.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	h.lab.trackCloser(c)
	return c, nil
}

// dial is Dial for connections the lab's own code closes.
func (h *Host) dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNS(h.NS, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, address, h.NS, err)
	}
	return c, nil
}

// inNS runs f on an OS thread that has joined the named network namespace. Sockets keep the
// namespace they were created in, so f may return them for use anywhere. The thread goes
// back to its own namespace afterwards; if that fails it stays locked, and the runtime
// discards it when the goroutine ends, so no other goroutine ever runs in the wrong namespace.
// (The runtime cannot discard the process's main thread, so restoring is not optional: a main
// thread left in a lab namespace would make the whole test process look like it lives there.)
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
