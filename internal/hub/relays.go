package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// The relay fleet: several external TURN servers (coturn instances, docs/hub.md "Several
// coturn instances"). ICE allocates a relay on every TURN server it is given, so handing a
// session every instance's URLs would cost one allocation per instance on both ends; each
// session (a viewer's, a device link's) gets one instance instead: a healthy one, the one
// holding the fewest of this hub's sessions now, and the same one for as long as it stays
// healthy (a resumed session keeps its relay). Health is a STUN binding request to each
// instance every relayCheckEvery: relayMissesDown misses in a row take an instance out, one
// answer puts it back. With every instance down the hub hands out all of them: a relay that
// answers no health check may still relay, and no relay at all is certain failure behind a
// symmetric NAT.

const (
	relayCheckEvery   = 5 * time.Second
	relayCheckTimeout = 2 * time.Second
	relayMissesDown   = 2
)

// relayInstance is one TURN server: the URLs of one host.
type relayInstance struct {
	host       string   // host[:port] of its first URL: instances are told apart by host
	stun, turn []string // its URLs
	probe      string   // "udp" or "tcp" address the health check sends a STUN binding request to; "" unchecked (TLS only)
	probeNet   string

	// under relayFleet.mu
	up     bool
	misses int
	leases int    // sessions holding it now
	handed uint64 // sessions given it so far
}

// relayFleet picks a relay for each session. Safe for concurrent use.
type relayFleet struct {
	log   *slog.Logger
	check func(ctx context.Context, network, addr string) error // a STUN binding request; tests replace it

	mu        sync.Mutex
	instances []*relayInstance
	leases    map[string]*relayInstance // session name → the instance it holds
	allDown   bool                      // logged once per outage
}

// newRelayFleet groups stun and turn URLs by host. It returns nil for fewer than two hosts:
// one relay is handed out whole, as before.
func newRelayFleet(stunURLs, turnURLs []string, log *slog.Logger) *relayFleet {
	f := &relayFleet{log: log, check: stunBinding, leases: map[string]*relayInstance{}}
	byHost := map[string]*relayInstance{}
	instance := func(u string) *relayInstance {
		host := relayHost(u)
		in := byHost[host]
		if in == nil {
			in = &relayInstance{host: host, up: true}
			byHost[host] = in
			f.instances = append(f.instances, in)
		}
		return in
	}
	for _, u := range turnURLs {
		in := instance(u)
		in.turn = append(in.turn, u)
		if in.probe == "" || in.probeNet == "tcp" {
			if network, addr, ok := probeTarget(u); ok && (in.probe == "" || network == "udp") {
				in.probeNet, in.probe = network, addr
			}
		}
	}
	for _, u := range stunURLs {
		if in := byHost[relayHost(u)]; in != nil {
			in.stun = append(in.stun, u)
		}
	}
	if len(f.instances) < 2 {
		return nil
	}
	return f
}

// relayHost is the host a TURN or STUN URL names, without its port: a coturn instance's UDP,
// TCP and TLS listeners are one instance.
func relayHost(u string) string {
	_, rest, _ := strings.Cut(u, ":")
	rest, _, _ = strings.Cut(rest, "?")
	if h, _, err := net.SplitHostPort(rest); err == nil {
		return h
	}
	return strings.Trim(rest, "[]")
}

// probeTarget is where a health check reaches a turn: URL (its listener speaks STUN), if it
// can: turns: (TLS) is not checked.
func probeTarget(u string) (network, addr string, ok bool) {
	scheme, rest, _ := strings.Cut(u, ":")
	if scheme != "turn" {
		return "", "", false
	}
	hostPort, query, _ := strings.Cut(rest, "?")
	q, _ := url.ParseQuery(query)
	network = "udp"
	if q.Get("transport") == "tcp" {
		network = "tcp"
	}
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		hostPort = net.JoinHostPort(strings.Trim(hostPort, "[]"), "3478")
	}
	return network, hostPort, true
}

// pick returns the URLs session name is to use, and holds an instance for it until release.
func (f *relayFleet) pick(name string) (stunURLs, turnURLs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.leases[name]; in != nil {
		if in.up {
			return in.stun, in.turn
		}
		in.leases--
		delete(f.leases, name)
	}
	var best *relayInstance
	for _, in := range f.instances {
		if in.up && (best == nil || in.leases < best.leases || in.leases == best.leases && in.handed < best.handed) {
			best = in
		}
	}
	if best == nil {
		// Nothing answers the health checks: hand every relay rather than none.
		for _, in := range f.instances {
			stunURLs = append(stunURLs, in.stun...)
			turnURLs = append(turnURLs, in.turn...)
		}
		return stunURLs, turnURLs
	}
	best.leases++
	best.handed++
	f.leases[name] = best
	return best.stun, best.turn
}

// release ends session name's hold on its relay.
func (f *relayFleet) release(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.leases[name]; in != nil {
		in.leases--
		delete(f.leases, name)
	}
}

// run checks every instance every relayCheckEvery until ctx ends.
func (f *relayFleet) run(ctx context.Context) {
	t := time.NewTicker(relayCheckEvery)
	defer t.Stop()
	for {
		f.checkAll(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// checkAll checks every instance at once and applies the results.
func (f *relayFleet) checkAll(ctx context.Context) {
	f.mu.Lock()
	instances := slices.Clone(f.instances)
	f.mu.Unlock()
	errs := make([]error, len(instances))
	var wg sync.WaitGroup
	for i, in := range instances {
		if in.probe == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, relayCheckTimeout)
			defer cancel()
			errs[i] = f.check(cctx, in.probeNet, in.probe)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, in := range instances {
		switch {
		case errs[i] == nil && !in.up:
			in.up, in.misses = true, 0
			f.log.Info("TURN relay answers again", "relay", in.host)
		case errs[i] == nil:
			in.misses = 0
		case in.up:
			in.misses++
			if in.misses >= relayMissesDown {
				in.up = false
				f.log.Warn("TURN relay does not answer: new sessions go to the others", "relay", in.host, "err", errs[i])
			}
		}
	}
	down := !slices.ContainsFunc(f.instances, func(in *relayInstance) bool { return in.up })
	if down && !f.allDown {
		f.log.Error("no TURN relay answers its health check: every relay is handed out")
	}
	f.allDown = down
}

// relayState is one instance as /metrics shows it.
type relayState struct {
	host     string
	up       bool
	sessions int
}

func (f *relayFleet) states() []relayState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]relayState, len(f.instances))
	for i, in := range f.instances {
		out[i] = relayState{host: in.host, up: in.up, sessions: in.leases}
	}
	return out
}

var errNotSTUN = errors.New("the answer is not a STUN binding success")

// stunBinding sends one STUN binding request to addr over network (udp or tcp) and waits for
// its success response until ctx ends.
func stunBinding(ctx context.Context, network, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		if _, err := conn.Write(req.Raw); err != nil {
			return err
		}
		if network == "udp" {
			// UDP loses requests: resend every half second until the deadline.
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		}
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if network == "udp" && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				continue
			}
			if ctx.Err() != nil {
				return fmt.Errorf("no answer: %w", ctx.Err())
			}
			return err
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := res.Decode(); err != nil {
			return fmt.Errorf("%w: %v", errNotSTUN, err)
		}
		if res.TransactionID != req.TransactionID || res.Type != stun.BindingSuccess {
			return errNotSTUN
		}
		return nil
	}
}
