package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/cli"
)

// relayReport is one TURN server's line of `bench relay --json`.
type relayReport struct {
	Server      string  `json:"server"` // "embedded" or "coturn"
	Allocations int     `json:"allocations"`
	PacketsPerS float64 `json:"packets_per_s"` // relayed peer → client, as the clients received them
	Size        int     `json:"size"`
	LossPct     float64 `json:"loss_pct"`
	// USPerPacket is the server's CPU time per relayed packet, its idle CPU left out.
	USPerPacket float64    `json:"us_per_packet"`
	CPUPct      float64    `json:"cpu_pct"`
	IdleCPUPct  float64    `json:"idle_cpu_pct"`
	RSSMiB      float64    `json:"rss_mib"`
	Load        [3]float64 `json:"load"`
	Error       string     `json:"error,omitempty"`
}

// relayPeerIP is where the benchmark's peer (the "device" side of a relayed session) sends
// from: another loopback address than the server's, because a TURN server refuses to relay to
// its own addresses.
var relayPeerIP = net.IPv4(127, 0, 0, 2)

// relay measures a TURN server's CPU per relayed packet: N allocations on one server, a peer
// that sends media-sized packets to each relayed address at a steady rate, and the server's
// CPU time from /proc over the steady window. The server runs pinned to its own CPUs; the
// clients and the peer run in this process. It compares the embedded server (`p2pcast hub`)
// with Debian's coturn on the same load.
func relay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("bench relay", "bench relay [flags]", stderr)
	servers := fs.String("server", "embedded,coturn", "TURN servers to measure, comma-separated: embedded (p2pcast hub), coturn (Debian's turnserver)")
	allocations := fs.Int("allocations", 50, "relayed sessions (TURN allocations, one client socket each)")
	pps := fs.Int("pps", 200, "packets a second the peer sends through each allocation")
	size := fs.Int("size", 1100, "packet size in bytes (a video RTP packet's)")
	duration := fs.Duration("duration", 10*time.Second, "measuring window, after a 2 s warm-up")
	cpus := fs.String("server-cpus", "0", "pin the TURN server to these CPUs (taskset list; empty: not pinned)")
	asJSON := fs.Bool("json", false, "print one JSON line per server, last on stdout")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *allocations < 1 || *pps < 1 || *size < 20 || *size > 1400 || *duration < time.Second {
		return fmt.Errorf("%w: want --allocations ≥ 1, --pps ≥ 1, --size 20..1400 and --duration ≥ 1s", cli.ErrUsage)
	}
	var reps []relayReport
	for _, name := range strings.Split(*servers, ",") {
		name = strings.TrimSpace(name)
		if name != "embedded" && name != "coturn" {
			return fmt.Errorf("%w: --server %q: want embedded or coturn", cli.ErrUsage, name)
		}
		fmt.Fprintf(stderr, "bench relay: %s: %d allocations × %d packets/s of %d bytes for %s\n", name, *allocations, *pps, *size, *duration)
		rep, err := relayOne(ctx, name, relayLoad{allocations: *allocations, pps: *pps, size: *size, duration: *duration, cpus: *cpus}, stderr)
		if err != nil {
			rep.Error = err.Error()
			fmt.Fprintf(stderr, "bench relay: %s: %v\n", name, err)
		} else {
			fmt.Fprintf(stderr, "bench relay: %s: %.2f µs per relayed packet (%.0f packets/s, loss %.3f %%, server CPU %.1f %%, idle %.2f %%, RSS %.1f MiB)\n",
				name, rep.USPerPacket, rep.PacketsPerS, rep.LossPct, rep.CPUPct, rep.IdleCPUPct, rep.RSSMiB)
		}
		reps = append(reps, rep)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	failed := false
	for _, r := range reps {
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		} else {
			fmt.Fprintf(stdout, "%-9s %8.2f µs/packet  %8.0f packets/s  loss %.3f %%  %s\n", r.Server, r.USPerPacket, r.PacketsPerS, r.LossPct, r.Error)
		}
		failed = failed || r.Error != ""
	}
	if failed {
		return errors.New("bench relay: a server could not be measured")
	}
	return nil
}

type relayLoad struct {
	allocations, pps, size int
	duration               time.Duration
	cpus                   string
}

// turnProc is a TURN server the benchmark started.
type turnProc struct {
	cmd    *exec.Cmd
	addr   string // host:port of its UDP listener
	secret []byte // TURN REST shared secret
	dir    string
	tail   *tailWriter
}

func (p *turnProc) stop() {
	stopProcess(p.cmd, 5*time.Second)
	os.RemoveAll(p.dir)
}

func relayOne(ctx context.Context, name string, load relayLoad, stderr io.Writer) (relayReport, error) {
	rep := relayReport{Server: name, Allocations: load.allocations, Size: load.size}
	srv, err := startTURN(ctx, name, load.cpus)
	if err != nil {
		return rep, err
	}
	defer srv.stop()
	pid := srv.cmd.Process.Pid

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: relayPeerIP})
	if err != nil {
		return rep, fmt.Errorf("the peer's socket on %s: %w (is %s on the loopback interface?)", relayPeerIP, err, relayPeerIP)
	}
	defer peer.Close()

	sessions, err := allocateAll(ctx, srv, load.allocations, peer)
	for _, s := range sessions {
		defer s.close()
	}
	if err != nil {
		return rep, fmt.Errorf("%w\nserver output:\n%s", err, srv.tail)
	}

	// Idle: the server holds the allocations (refreshes, timers) but relays nothing.
	cpu0, t0 := procCPU(pid), time.Now()
	if !sleepCtx(ctx, 2*time.Second) {
		return rep, ctx.Err()
	}
	idle := (procCPU(pid) - cpu0) / time.Since(t0).Seconds()
	rep.IdleCPUPct = 100 * idle

	stop := make(chan struct{})
	var sent atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendSteady(peer, sessions, load, stop, &sent)
	}()
	if !sleepCtx(ctx, 2*time.Second) { // warm-up
		close(stop)
		wg.Wait()
		return rep, ctx.Err()
	}
	recv0, sent0 := received(sessions), sent.Load()
	cpu1, t1 := procCPU(pid), time.Now()
	ok := sleepCtx(ctx, load.duration)
	cpu2, t2 := procCPU(pid), time.Now()
	recv1, sent1 := received(sessions), sent.Load()
	close(stop)
	wg.Wait()
	if !ok {
		return rep, ctx.Err()
	}
	dt := t2.Sub(t1).Seconds()
	relayed := float64(recv1 - recv0)
	rep.PacketsPerS = relayed / dt
	rep.CPUPct = 100 * (cpu2 - cpu1) / dt
	rep.RSSMiB = procRSSMiB(pid)
	rep.Load = loadAvg()
	if s := float64(sent1 - sent0); s > 0 {
		rep.LossPct = max(0, 100*(s-relayed)/s)
	}
	if relayed == 0 {
		return rep, fmt.Errorf("nothing was relayed\nserver output:\n%s", srv.tail)
	}
	rep.USPerPacket = 1e6 * max(0, cpu2-cpu1-idle*dt) / relayed
	return rep, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startTURN runs the named server on 127.0.0.1 at a free port and waits until it answers a
// STUN binding request.
func startTURN(ctx context.Context, name, cpus string) (*turnProc, error) {
	dir, err := os.MkdirTemp("", "p2pcast-bench-relay-")
	if err != nil {
		return nil, err
	}
	port, err := freeUDPPort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &turnProc{dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), tail: &tailWriter{max: 4 << 10}}
	var argv []string
	switch name {
	case "embedded":
		exe, err := os.Executable()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		// The hub makes its TURN secret in its data directory; the benchmark reads it there.
		argv = []string{exe, "hub", "--data", dir, "--http", "127.0.0.1:0", "--public-ip", "127.0.0.1",
			"--turn-port", strconv.Itoa(port), "--turn-allow-peers", relayPeerIP.String() + "/32"}
	case "coturn":
		bin, err := exec.LookPath("turnserver")
		if err != nil {
			os.RemoveAll(dir)
			return nil, errors.New("turnserver not found (Debian package coturn; scripts/install-deps.sh installs it)")
		}
		secret := make([]byte, 16)
		_, _ = rand.Read(secret)
		p.secret = []byte(hex.EncodeToString(secret))
		// As test/natlab runs it: no configuration from /etc, no CLI, REST credentials; peers
		// on loopback allowed (they are this benchmark's peer).
		argv = []string{bin, "-c", "/dev/null", "--no-cli", "--log-file=stdout", "--simple-log",
			"--pidfile=" + filepath.Join(dir, "turnserver.pid"), "--userdb=" + filepath.Join(dir, "turndb"),
			"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port=" + strconv.Itoa(port),
			"--use-auth-secret", "--static-auth-secret=" + string(p.secret), "--realm=p2pcast",
			"--allow-loopback-peers", "--no-multicast-peers", "--no-tls", "--no-dtls", "--no-tcp-relay"}
	}
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.tail, p.tail
	// The server must not outlive a benchmark that is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if name == "embedded" && p.secret == nil {
			if b, err := os.ReadFile(filepath.Join(dir, "turn.secret")); err == nil && len(b) > 0 {
				p.secret = []byte(strings.TrimRight(string(b), "\r\n"))
			}
		}
		if p.secret != nil && stunAnswers(p.addr) {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s did not answer on %s within 10 s\n%s", name, p.addr, p.tail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeUDPPort finds a port free for UDP and TCP alike (both servers listen on both).
func freeUDPPort() (int, error) {
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", ":"+strconv.Itoa(port))
		c.Close()
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free for both UDP and TCP")
}

// stunAnswers sends one STUN binding request to addr.
func stunAnswers(addr string) bool {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return false
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		RTO: 100 * time.Millisecond, LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		return false
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		return false
	}
	_, err = c.SendBindingRequest()
	return err == nil
}

// relaySession is one allocation: the client that holds it, its relayed address and what it
// received through it.
type relaySession struct {
	conn    net.PacketConn // the client's socket
	client  *turn.Client
	relay   net.PacketConn
	addr    *net.UDPAddr // the relayed address the peer sends to
	packets atomic.Uint64
}

func (s *relaySession) close() {
	if s.relay != nil {
		s.relay.Close()
	}
	if s.client != nil {
		s.client.Close()
	}
	s.conn.Close()
}

// allocateAll makes n allocations, each with its own username (a user's bandwidth quota must
// not be what is measured), and checks that each relays: the client sends one packet to the
// peer through its relay, which also installs the permission and channel binding that the
// peer's packets need.
func allocateAll(ctx context.Context, srv *turnProc, n int, peer *net.UDPConn) ([]*relaySession, error) {
	var sessions []*relaySession
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelError
	for i := range n {
		if ctx.Err() != nil {
			return sessions, ctx.Err()
		}
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return sessions, err
		}
		s := &relaySession{conn: conn}
		sessions = append(sessions, s)
		user, pass := auth.TURNCredential(srv.secret, fmt.Sprintf("bench-%d", i), time.Hour, time.Now())
		s.client, err = turn.NewClient(&turn.ClientConfig{STUNServerAddr: srv.addr, TURNServerAddr: srv.addr, Conn: conn,
			Username: user, Password: pass, LoggerFactory: quiet})
		if err != nil {
			return sessions, err
		}
		if err := s.client.Listen(); err != nil {
			return sessions, err
		}
		if s.relay, err = s.client.Allocate(); err != nil {
			return sessions, fmt.Errorf("allocation %d: %w", i+1, err)
		}
		s.addr = s.relay.LocalAddr().(*net.UDPAddr)
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := s.relay.ReadFrom(buf); err != nil {
					return
				}
				s.packets.Add(1)
			}
		}()
	}
	// One packet from each client to the peer: the server relays it only with a permission.
	peerAddr := peer.LocalAddr()
	seen := map[string]bool{}
	buf := make([]byte, 1500)
	for attempt := 0; attempt < 5 && len(seen) < n; attempt++ {
		for _, s := range sessions {
			if !seen[s.addr.String()] {
				if _, err := s.relay.WriteTo([]byte("hello"), peerAddr); err != nil {
					return sessions, fmt.Errorf("through %s: %w", s.addr, err)
				}
			}
		}
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		for len(seen) < n {
			_, from, err := peer.ReadFromUDP(buf)
			if err != nil {
				break
			}
			seen[from.String()] = true
		}
	}
	_ = peer.SetReadDeadline(time.Time{})
	if len(seen) < n {
		return sessions, fmt.Errorf("%d of %d allocations relayed the client's first packet to the peer", len(seen), n)
	}
	return sessions, nil
}

// sendSteady sends from the peer to every relayed address in turn, pps packets a second to
// each, in 1 ms rounds, until stop.
func sendSteady(peer *net.UDPConn, sessions []*relaySession, load relayLoad, stop <-chan struct{}, sent *atomic.Uint64) {
	payload := make([]byte, load.size)
	perSecond := float64(load.pps * len(sessions))
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	next := 0
	var done uint64
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := uint64(time.Since(start).Seconds() * perSecond)
		for ; done < due; done++ {
			s := sessions[next]
			next = (next + 1) % len(sessions)
			if _, err := peer.WriteToUDP(payload, s.addr); err == nil {
				sent.Add(1)
			}
		}
	}
}

func received(sessions []*relaySession) uint64 {
	var n uint64
	for _, s := range sessions {
		n += s.packets.Load()
	}
	return n
}
