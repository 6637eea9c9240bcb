package natlab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A LAN is a routed network without NAT, for tests of how media copes with a viewer's link
// rather than with NATs: a router namespace with one veth link to each host, every host on a
// /24 of its own (10.(100+n).K.2, the router at .1 on the link named lK). Each link's router
// side, the host's downlink, can be shaped (Link.Shape: a tbf rate limit with a bounded queue)
// and can lose UDP at random (Link.Loss), and both can change while media flows.
//
// Why routed links instead of one bridge: the shaper and the loss rule must act on one host's
// traffic only, after the router has decided where a packet goes. A routed link has its own
// egress queue on the router (tc) and its own FORWARD path (iptables); on a bridge, iptables
// would only see bridged packets through br_netfilter, a kernel module this machine lacks.
//
// A LAN's hosts reach each other and nothing else: the router has no default route, so a
// packet for the outside world gets an ICMP "network unreachable" at once (Chromium's start-up
// requests fail fast). Everything lives in the lab's namespaces and goes with Lab.Close.
type LAN struct {
	// Router is the router namespace, for Run; it has no process of its own, and no IP of its
	// own either (nil): it is .1 on each link's /24.
	Router *Host

	lab *Lab
	n   int // the LAN's number in the lab, from 1

	mu    sync.Mutex
	next  int // number of the next link, from 1
	links []*Link
}

// lanBase is added to a LAN's number to make its addresses' second octet: 10.101.K.0/24 for
// the first LAN's links, out of the way of the sites (10.0.N.0/24).
const (
	lanBase = 100
	maxLANs = 150
	// maxLinks is one less than the octet allows: each link is a /24 of its own.
	maxLinks = 254
)

// LAN adds a routed network with no host yet (see [LAN.Add]).
func (l *Lab) LAN(name string) *LAN {
	l.t.Helper()
	n, err := l.lan(name)
	if err != nil {
		l.t.Fatalf("natlab: LAN %q: %v", name, err)
	}
	return n
}

func (l *Lab) lan(name string) (*LAN, error) {
	tc, err := lookTool("tc")
	if err != nil {
		return nil, errors.New("iproute2's tc not found (scripts/install-deps.sh installs it)")
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	if len(l.lans) >= maxLANs {
		l.mu.Unlock()
		return nil, fmt.Errorf("no more than %d LANs per lab", maxLANs)
	}
	n := len(l.lans) + 1
	router := &Host{Name: name + "-router", NS: fmt.Sprintf("%s-l%d", l.id, n), Kind: None, lab: l, dev: "lo"}
	lan := &LAN{Router: router, lab: l, n: n, next: 1}
	l.lans = append(l.lans, lan)
	l.tcPath = tc
	l.mu.Unlock()

	if err := l.addNS(router.NS); err != nil {
		return nil, err
	}
	if err := setSysctl(router.NS, "net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	// Policy ACCEPT: nothing is filtered; the links' rules only count and, with Loss, drop.
	if err := l.iptablesRestore(router.NS, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"); err != nil {
		return nil, err
	}
	if err := l.ipBatch(router.NS, "link set dev lo up"); err != nil {
		return nil, err
	}
	return lan, nil
}

// Link is one host's connection to a LAN's router. Its methods may be called from any
// goroutine, also while media flows.
type Link struct {
	// Host is the machine at the end of the link (10.(100+n).K.2, default route via .1).
	Host *Host
	// Dev is the router's side of the link (lK): where the host's downlink is shaped.
	Dev string

	lan *LAN

	mu   sync.Mutex
	rate int64   // Shape's rate, bit/s; 0 when unshaped
	loss float64 // Loss's probability; 0 when lossless
	// Counters of the shapers and loss rules Shape and Loss have replaced, so that Counters
	// keeps counting across changes (tc and iptables start from zero with a new qdisc or rule).
	qdiscBase Qdisc
	lossBase  Count
}

// Add connects a new host to the LAN and returns its link, unshaped and lossless.
func (n *LAN) Add(name string) *Link {
	n.lab.t.Helper()
	k, err := n.add(name)
	if err != nil {
		n.lab.t.Fatalf("natlab: LAN host %q: %v", name, err)
	}
	return k
}

func (n *LAN) add(name string) (*Link, error) {
	l := n.lab
	n.mu.Lock()
	if n.next > maxLinks {
		n.mu.Unlock()
		return nil, fmt.Errorf("no more than %d hosts per LAN", maxLinks)
	}
	k := n.next
	n.next++
	n.mu.Unlock()

	sub := fmt.Sprintf("10.%d.%d.", lanBase+n.n, k)
	h := &Host{Name: name, NS: fmt.Sprintf("%s-l%dh%d", l.id, n.n, k), IP: net.ParseIP(sub + "2").To4(), Kind: None, lab: l, dev: "eth0"}
	link := &Link{Host: h, Dev: "l" + strconv.Itoa(k), lan: n}
	if err := l.addNS(h.NS); err != nil {
		return nil, err
	}
	// The counting rules go in before the link is up, so they see every packet. UDP toward the
	// host passes through a chain of its own, where Loss puts its rule: replacing that rule
	// leaves the counters of the jump (all UDP offered to the link) alone.
	chain := link.lossChain()
	rules := "*filter\n:" + chain + " - [0:0]\n" +
		"-A FORWARD -o " + link.Dev + " -p udp -j " + chain + "\n" +
		"-A FORWARD -o " + link.Dev + " -p tcp\n" +
		"COMMIT\n"
	if err := l.iptablesRestore(n.Router.NS, rules, "--noflush"); err != nil {
		return nil, err
	}
	if err := l.ipBatch(n.Router.NS,
		"link add name "+link.Dev+" type veth peer name eth0 netns "+h.NS,
		"addr add "+sub+"1/24 dev "+link.Dev,
		"link set dev "+link.Dev+" up",
	); err != nil {
		return nil, err
	}
	if err := l.ipBatch(h.NS,
		"link set dev lo up",
		"addr add "+h.IP.String()+"/24 dev eth0",
		"link set dev eth0 up",
		"route add default via "+sub+"1",
	); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.links = append(n.links, link)
	n.mu.Unlock()
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return link, nil
}

func (k *Link) lossChain() string { return k.Dev + "-loss" }

// TBFLatency bounds how long a packet may wait in a shaped link's queue: tbf's queue holds
// rate × 400 ms plus the burst, and drops what does not fit. 400 ms is a generous consumer
// router's buffer: a sender that overshoots sees its packets delayed first (which a
// delay-based estimator can notice) and lost only after that.
const TBFLatency = 400 * time.Millisecond

// Burst is the token bucket Shape gives a rate (bit/s), in bytes: 32 ms worth of the rate, and at
// least 4 KiB.
//
// Why: the bucket must hold at least one whole packet (1514 bytes on the wire), or tbf never
// sends packets larger than it; 4 KiB leaves room for a second one, so the rate is met without
// depending on timer granularity. Above that, the bucket is how far the link lets a sender
// burst at line speed: 32 ms of the rate lets a paced sender through untouched, while a 720p
// keyframe sent in one go (tens of KB) queues as it would behind a real access link. A bigger
// bucket would hide a sender's bursts from the test; a smaller one would make a 4 Mbit/s link
// deliver less than 4 Mbit/s.
func Burst(rate int64) int64 {
	return max(rate/250, 4096)
}

// Shape limits the host's downlink (the router's egress on the link) to rate bit/s with
// `tc qdisc replace dev lK root tbf rate R burst Burst(R) latency 400ms`; 0 removes the limit.
// It applies to everything toward the host, signaling (TCP) included, as a slow access link
// would.
func (k *Link) Shape(rate int64) error {
	if rate < 0 {
		return fmt.Errorf("shape %s: negative rate %d", k.Host.Name, rate)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	before, err := k.qdisc()
	if err != nil {
		return err
	}
	l := k.lan.lab
	args := []string{"qdisc", "replace", "dev", k.Dev, "root", "tbf", "rate", strconv.FormatInt(rate, 10) + "bit",
		"burst", strconv.FormatInt(Burst(rate), 10), "latency", strconv.FormatInt(TBFLatency.Milliseconds(), 10) + "ms"}
	if rate == 0 {
		if k.rate == 0 {
			return nil
		}
		args = []string{"qdisc", "del", "dev", k.Dev, "root"}
	}
	if out, err := exec.Command(l.ipPath, append([]string{"netns", "exec", k.lan.Router.NS, l.tcPath}, args...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("tc %s in %s: %v: %s", strings.Join(args, " "), k.lan.Router.NS, err, bytes.TrimSpace(out))
	}
	after, err := k.qdisc()
	if err != nil {
		return err
	}
	// tc keeps the counters when it changes a tbf's parameters, and starts from zero with a
	// new qdisc (or none): then carry the old ones over.
	if after.Kind != before.Kind || after.Packets < before.Packets {
		k.qdiscBase.Bytes += before.Bytes
		k.qdiscBase.Packets += before.Packets
		k.qdiscBase.Drops += before.Drops
		k.qdiscBase.Overlimits += before.Overlimits
	}
	k.rate = rate
	return nil
}

// Loss makes the router drop UDP toward the host at random with probability p (iptables
// `-m statistic --mode random --probability p -j DROP` in the link's FORWARD path); 0 removes it.
//
// Only UDP, that is media (RTP, RTCP, STUN; ICE over TCP aside): TCP carries the signaling, which
// would retransmit its way through and only add delay to joins and renegotiations. Keeping it
// lossless makes a test measure how the media path recovers (NACK, FEC, keyframes), not how
// long a WebSocket takes to deliver an offer.
func (k *Link) Loss(p float64) error {
	if p < 0 || p >= 1 {
		return fmt.Errorf("loss %s: probability %g not in [0, 1)", k.Host.Name, p)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c, err := k.iptablesCounts()
	if err != nil {
		return err
	}
	chain := k.lossChain()
	rules := "*filter\n-F " + chain + "\n"
	if p > 0 {
		rules += "-A " + chain + " -m statistic --mode random --probability " + strconv.FormatFloat(p, 'g', -1, 64) + " -j DROP\n"
	}
	rules += "COMMIT\n"
	if err := k.lan.lab.iptablesRestore(k.lan.Router.NS, rules, "--noflush"); err != nil {
		return err
	}
	k.lossBase.Packets += c.lost.Packets
	k.lossBase.Bytes += c.lost.Bytes
	k.loss = p
	return nil
}

// Rate is the link's current shaping rate in bit/s (0: unshaped).
func (k *Link) Rate() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rate
}

// LossProbability is the link's current random UDP loss (0: none).
func (k *Link) LossProbability() float64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loss
}

// Count is a packet and byte counter.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Qdisc is what `tc -s qdisc show` reports of the link's root qdisc: "tbf" when shaped,
// "noqueue" (which counts nothing) when not. Bytes and Packets are what it sent.
type Qdisc struct {
	Kind       string `json:"kind"`
	Bytes      uint64 `json:"bytes"`
	Packets    uint64 `json:"packets"`
	Drops      uint64 `json:"drops"`
	Overlimits uint64 `json:"overlimits"`
	Backlog    uint64 `json:"backlog"` // bytes queued now
	Qlen       uint64 `json:"qlen"`    // packets queued now
}

// LinkCounters is what happened on a link toward its host since it was made. All counters
// but Qdisc.Backlog and Qdisc.Qlen only grow, across Shape and Loss changes too.
type LinkCounters struct {
	// Tx is what the router's side of the link transmitted: everything the host received,
	// after the shaper (the kernel's interface counters, /proc/net/dev).
	Tx Count `json:"tx"`
	// UDP and TCP are what the router forwarded toward the host before the loss rule and the
	// shaper: the media and the signaling on offer (IP packets, headers included).
	UDP Count `json:"udp"`
	TCP Count `json:"tcp"`
	// Lost is the UDP the loss rule dropped.
	Lost Count `json:"lost"`
	// Qdisc is the shaper's own view: what it sent and what it dropped for want of room in
	// its queue.
	Qdisc Qdisc `json:"qdisc"`
}

// Counters reads the link's counters: iptables' and tc's in the router, and the interface's.
func (k *Link) Counters() (LinkCounters, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var c LinkCounters
	ipt, err := k.iptablesCounts()
	if err != nil {
		return c, err
	}
	c.UDP, c.TCP = ipt.udp, ipt.tcp
	c.Lost = Count{Packets: k.lossBase.Packets + ipt.lost.Packets, Bytes: k.lossBase.Bytes + ipt.lost.Bytes}
	q, err := k.qdisc()
	if err != nil {
		return c, err
	}
	q.Bytes += k.qdiscBase.Bytes
	q.Packets += k.qdiscBase.Packets
	q.Drops += k.qdiscBase.Drops
	q.Overlimits += k.qdiscBase.Overlimits
	c.Qdisc = q
	c.Tx, err = k.txCount()
	return c, err
}

type iptCounts struct{ udp, tcp, lost Count }

// reIPTSave matches a rule of `iptables-save -c`: [packets:bytes] -A CHAIN spec.
var reIPTSave = regexp.MustCompile(`^\[(\d+):(\d+)\] -A (\S+) (.*)$`)

func (k *Link) iptablesCounts() (iptCounts, error) {
	var c iptCounts
	l := k.lan.lab
	out, err := exec.Command(l.ipPath, "netns", "exec", k.lan.Router.NS, l.iptSavePath(), "-c", "-t", "filter").Output()
	if err != nil {
		return c, fmt.Errorf("iptables-save in %s: %w", k.lan.Router.NS, err)
	}
	oDev := "-o " + k.Dev + " "
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := reIPTSave.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pk, _ := strconv.ParseUint(m[1], 10, 64)
		by, _ := strconv.ParseUint(m[2], 10, 64)
		chain, spec := m[3], m[4]+" "
		switch {
		case chain == "FORWARD" && strings.Contains(spec, oDev) && strings.Contains(spec, "-p udp "):
			c.udp = Count{pk, by}
			found++
		case chain == "FORWARD" && strings.Contains(spec, oDev) && strings.Contains(spec, "-p tcp "):
			c.tcp = Count{pk, by}
			found++
		case chain == k.lossChain() && strings.Contains(spec, "-j DROP"):
			c.lost = Count{pk, by}
		}
	}
	if found != 2 {
		return c, fmt.Errorf("the counting rules of link %s are missing in %s:\n%s", k.Dev, k.lan.Router.NS, out)
	}
	return c, nil
}

func (k *Link) qdisc() (Qdisc, error) {
	l := k.lan.lab
	out, err := exec.Command(l.ipPath, "netns", "exec", k.lan.Router.NS, l.tcPath, "-s", "-j", "qdisc", "show", "dev", k.Dev).Output()
	if err != nil {
		return Qdisc{}, fmt.Errorf("tc -s qdisc show dev %s in %s: %w", k.Dev, k.lan.Router.NS, err)
	}
	var qs []struct {
		Qdisc
		Root bool `json:"root"`
	}
	if err := json.Unmarshal(out, &qs); err != nil {
		return Qdisc{}, fmt.Errorf("tc -s -j qdisc show dev %s: %w: %s", k.Dev, err, out)
	}
	for _, q := range qs {
		if q.Root {
			return q.Qdisc, nil
		}
	}
	return Qdisc{}, fmt.Errorf("no root qdisc on %s: %s", k.Dev, out)
}

// txCount reads the router's side of the link from /proc/net/dev, from a thread inside the
// router's namespace (no process to start, once a second per link).
func (k *Link) txCount() (Count, error) {
	var c Count
	err := inNS(k.lan.Router.NS, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(name) != k.Dev {
				continue
			}
			// Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
			f := strings.Fields(rest)
			if len(f) < 10 {
				break
			}
			c.Bytes, _ = strconv.ParseUint(f[8], 10, 64)
			c.Packets, _ = strconv.ParseUint(f[9], 10, 64)
			return nil
		}
		return fmt.Errorf("%s not in /proc/net/dev", k.Dev)
	})
	if err != nil {
		return c, fmt.Errorf("link %s counters in %s: %w", k.Dev, k.lan.Router.NS, err)
	}
	return c, nil
}

// dump adds the LAN's shapers and counting rules to a Dump.
func (n *LAN) dump(ctx context.Context, b *strings.Builder) {
	n.mu.Lock()
	links := append([]*Link(nil), n.links...)
	n.mu.Unlock()
	fmt.Fprintf(b, "== LAN router %s (%s)\n", n.Router.Name, n.Router.NS)
	for _, k := range links {
		fmt.Fprintf(b, "link %s → %s (%s), shaped %d bit/s, loss %g\n", k.Dev, k.Host.Name, k.Host.IP, k.Rate(), k.LossProbability())
	}
	n.lab.dumpCmd(ctx, b, n.Router.NS, "tc", "-s", "qdisc", "show")
	n.lab.dumpCmd(ctx, b, n.Router.NS, "iptables-save", "-c", "-t", "filter")
}
