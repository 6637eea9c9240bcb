package natlab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Kind is the NAT in front of a host.
type Kind int

const (
	// None puts the host directly on the public segment.
	None Kind = iota
	// FullCone maps endpoint-independently and lets anyone reach a mapped port.
	FullCone
	// PortRestricted maps endpoint-independently but only lets in replies from the exact
	// address and port the host sent to (Linux MASQUERADE).
	PortRestricted
	// Symmetric gives every destination its own random port (MASQUERADE --random-fully).
	Symmetric
	// NoUDP is a port-restricted NAT whose router drops all UDP: only TCP leaves the site.
	NoUDP
)

// Kinds returns every Kind, for table tests.
func Kinds() []Kind { return []Kind{None, FullCone, PortRestricted, Symmetric, NoUDP} }

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case FullCone:
		return "fullcone"
	case PortRestricted:
		return "cone"
	case Symmetric:
		return "symmetric"
	case NoUDP:
		return "no-udp"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// The public segment. Its addresses exist only inside the lab's namespaces.
const (
	publicNet    = "100.64.0."
	publicBits   = "/24"
	publicGW     = publicNet + "1" // the bridge's address in the public namespace
	maxPublicIP  = 254
	maxSites     = 250
	namePrefix   = "p2pc"
	killDeadline = 10 * time.Second
)

// Lab is one set of namespaces: a public segment and the hosts and sites on it. Its methods
// may be called from several goroutines, but the ones that fail the test (PublicHost, Site)
// call Fatal on the testing.TB given to New, so call them from that test's goroutine.
type Lab struct {
	t   testing.TB
	id  string // prefix of every namespace name
	dir string // files of the lab's processes (coturn's db, pid file, certificates)
	pub string // the namespace holding the bridge

	mu       sync.Mutex
	closed   bool
	closeErr error
	nextIP   int // last octet of the next public address
	nextPort int // number of the next bridge port
	nextSite int
	ns       []string    // every namespace created, in creation order
	cmds     []*exec.Cmd // every command made by Host.Command
	closers  []io.Closer // sockets opened inside the lab's namespaces
	hosts    []*Host     // public hosts and site hosts (each site host knows its router)
	coturns  []*Coturn
	lans     []*LAN
	dumped   bool
	ipPath   string
	iptPath  string
	tcPath   string // found by the first LAN
}

var (
	labSeq    atomic.Uint64
	sweepOnce sync.Once
)

// New creates a lab with an empty public segment and registers its Close with t.Cleanup. When
// the test fails, the lab's Dump is logged once, before the first of the lab's processes is
// stopped.
//
// Namespaces are named p2pc-<pid>-<n>-<role> (pid and n in base 36): the test process's id
// lets New remove what a test process killed before its cleanup (a timeout, say) left behind.
func New(t testing.TB) *Lab {
	t.Helper()
	ipPath, iptPath, reason := prerequisites()
	if reason != "" {
		if os.Getenv("P2PCAST_REQUIRE_NETNS") != "" {
			t.Fatalf("natlab: %s (P2PCAST_REQUIRE_NETNS is set, so this is an error)", reason)
		}
		t.Skip("natlab: " + reason)
	}
	sweepOnce.Do(func() {
		for _, s := range sweepStale(ipPath) {
			t.Log("natlab: " + s)
		}
	})

	l := &Lab{
		t:        t,
		id:       namePrefix + "-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.FormatUint(labSeq.Add(1), 36),
		nextIP:   2,
		nextPort: 1,
		nextSite: 1,
		ipPath:   ipPath,
		iptPath:  iptPath,
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("natlab: cleanup: %v", err)
		}
	})
	// Registered after Close, so it runs before it, while the namespaces still exist.
	t.Cleanup(func() { l.dumpIfFailed(t) })

	dir, err := os.MkdirTemp("", l.id+"-")
	if err != nil {
		t.Fatalf("natlab: %v", err)
	}
	l.dir = dir

	l.pub = l.id + "-pub"
	if err := l.addNS(l.pub); err != nil {
		t.Fatalf("natlab: public segment: %v", err)
	}
	// Forwarding on, but no default route: packets to addresses outside the lab get an ICMP
	// "network unreachable" at once instead of vanishing, so Chromium's calls out fail fast.
	if err := setSysctl(l.pub, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatalf("natlab: public segment: %v", err)
	}
	if err := l.ipBatch(l.pub,
		"link set lo up",
		"link add br0 type bridge",
		"addr add "+publicGW+publicBits+" dev br0",
		"link set br0 up",
	); err != nil {
		t.Fatalf("natlab: public segment: %v", err)
	}
	return l
}

// prerequisites returns the paths of ip and iptables, or why the lab cannot run here.
func prerequisites() (ipPath, iptPath, reason string) {
	if os.Geteuid() != 0 {
		return "", "", "network namespaces need root (run the test as root)"
	}
	ipPath, err := lookTool("ip")
	if err != nil {
		return "", "", "iproute2's ip not found (scripts/install-deps.sh installs it)"
	}
	iptPath, err = lookTool("iptables-restore")
	if err != nil {
		return "", "", "iptables not found (scripts/install-deps.sh installs it)"
	}
	return ipPath, iptPath, ""
}

// lookTool finds a tool on PATH or in the sbin directories a non-login root shell may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// ID is the prefix of every namespace name of this lab.
func (l *Lab) ID() string { return l.id }

// Dir is a directory for the lab's files; it is removed by Close after every process is gone.
func (l *Lab) Dir() string { return l.dir }

// Namespaces lists the names of the lab's namespaces.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ns...)
}

// PublicHost adds a host on the public segment with the next free public address (the first
// one gets 100.64.0.2).
func (l *Lab) PublicHost(name string) *Host {
	l.t.Helper()
	h, err := l.publicHost(name)
	if err != nil {
		l.t.Fatalf("natlab: public host %q: %v", name, err)
	}
	return h
}

// Site adds a private network behind a router of the given kind and returns the machine in it
// (10.0.N.2, default route via the router at 10.0.N.1). The router's WAN side gets the next
// free public address; the returned Host's Router field is the router. For None the host sits
// directly on the public segment, as from PublicHost.
func (l *Lab) Site(name string, kind Kind) *Host {
	l.t.Helper()
	var h *Host
	var err error
	switch kind {
	case None:
		h, err = l.publicHost(name)
	case FullCone, PortRestricted, Symmetric, NoUDP:
		h, err = l.site(name, kind)
	default:
		err = fmt.Errorf("unknown kind %v", kind)
	}
	if err != nil {
		l.t.Fatalf("natlab: site %q (%v): %v", name, kind, err)
	}
	return h
}

func (l *Lab) publicHost(name string) (*Host, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	ip, err := l.allocIPLocked()
	port := l.nextPort
	l.nextPort++
	ns := fmt.Sprintf("%s-h%d", l.id, port)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	h := &Host{Name: name, NS: ns, IP: ip, Kind: None, lab: l, dev: "eth0"}
	if err := l.addNS(ns); err != nil {
		return nil, err
	}
	if err := l.attach(port, ns, "eth0"); err != nil {
		return nil, err
	}
	if err := l.ipBatch(ns,
		"link set lo up",
		"addr add "+ip.String()+publicBits+" dev eth0",
		"link set eth0 up",
		"route add default via "+publicGW,
	); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

func (l *Lab) site(name string, kind Kind) (*Host, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	if l.nextSite > maxSites {
		l.mu.Unlock()
		return nil, fmt.Errorf("no more than %d sites per lab", maxSites)
	}
	wanIP, err := l.allocIPLocked()
	n := l.nextSite
	l.nextSite++
	port := l.nextPort
	l.nextPort++
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}

	lanNet := fmt.Sprintf("10.0.%d.", n)
	router := &Host{Name: name + "-router", NS: fmt.Sprintf("%s-r%d", l.id, n), IP: wanIP, Kind: None, lab: l, dev: "wan"}
	h := &Host{Name: name, NS: fmt.Sprintf("%s-s%d", l.id, n), IP: net.ParseIP(lanNet + "2").To4(), Kind: kind, Router: router, lab: l, dev: "eth0"}
	for _, ns := range []string{router.NS, h.NS} {
		if err := l.addNS(ns); err != nil {
			return nil, err
		}
	}
	if err := setSysctl(router.NS, "net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	// The rules go in before any link is up, so no packet ever crosses a router without them.
	if err := l.iptablesRestore(router.NS, routerRules(kind, h.IP)); err != nil {
		return nil, err
	}
	if err := l.attach(port, router.NS, "wan"); err != nil {
		return nil, err
	}
	if err := l.ipBatch(router.NS,
		"link set lo up",
		"addr add "+wanIP.String()+publicBits+" dev wan",
		"link set wan up",
		"route add default via "+publicGW,
		"link add lan type veth peer name eth0 netns "+h.NS,
		"addr add "+lanNet+"1/24 dev lan",
		"link set lan up",
	); err != nil {
		return nil, err
	}
	if err := l.ipBatch(h.NS,
		"link set lo up",
		"addr add "+h.IP.String()+"/24 dev eth0",
		"link set eth0 up",
		"route add default via "+lanNet+"1",
	); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

// routerRules is the router's iptables-restore input: the recipes measured in the platform
// notes ("NAT traversal lab in network namespaces").
func routerRules(kind Kind, host net.IP) string {
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	if kind == FullCone {
		// Any UDP arriving at the WAN goes to the host, on the same port MASQUERADE kept.
		b.WriteString("-A PREROUTING -i wan -p udp -j DNAT --to-destination " + host.String() + "\n")
	}
	if kind == Symmetric {
		b.WriteString("-A POSTROUTING -o wan -j MASQUERADE --random-fully\n")
	} else {
		b.WriteString("-A POSTROUTING -o wan -j MASQUERADE\n")
	}
	b.WriteString("COMMIT\n")
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	// A peer's packet arriving before the host has sent anything would otherwise leave an
	// UNREPLIED conntrack entry on the router that takes the port; MASQUERADE then picks
	// another one and a cone NAT behaves like a symmetric one.
	b.WriteString("-A INPUT -i wan -m conntrack --ctstate NEW -j DROP\n")
	if kind == NoUDP {
		b.WriteString("-A FORWARD -p udp -j DROP\n")
		b.WriteString("-A OUTPUT -p udp -j DROP\n")
	}
	b.WriteString("-A FORWARD -i lan -o wan -j ACCEPT\n")
	b.WriteString("-A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT\n")
	b.WriteString("COMMIT\n")
	return b.String()
}

func (l *Lab) allocIPLocked() (net.IP, error) {
	if l.nextIP > maxPublicIP {
		return nil, fmt.Errorf("public segment full (%d addresses)", maxPublicIP-1)
	}
	ip := net.ParseIP(publicNet + strconv.Itoa(l.nextIP)).To4()
	l.nextIP++
	return ip, nil
}

// addPublicIP gives a public host one more address on the segment.
func (l *Lab) addPublicIP(h *Host) (net.IP, error) {
	if h.Router != nil || h.dev != "eth0" || !strings.HasPrefix(h.IP.String(), publicNet) {
		return nil, fmt.Errorf("host %q is not on the public segment", h.Name)
	}
	l.mu.Lock()
	ip, err := l.allocIPLocked()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := l.ipBatch(h.NS, "addr add "+ip.String()+publicBits+" dev eth0"); err != nil {
		return nil, err
	}
	return ip, nil
}

// addNS creates a namespace; it is recorded first so Close removes it even if setup fails.
func (l *Lab) addNS(name string) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("lab is closed")
	}
	l.ns = append(l.ns, name)
	l.mu.Unlock()
	if out, err := exec.Command(l.ipPath, "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	// Links created in the namespace from now on get no IPv6 at all: the lab is IPv4 only,
	// and Chromium would otherwise offer link-local candidates that bypass the NATs.
	return setSysctl(name, "net/ipv6/conf/default/disable_ipv6", "1")
}

// attach connects a new veth to the bridge; its other end, ifname, appears directly in ns, so
// no link ever exists in the machine's own namespace.
func (l *Lab) attach(port int, ns, ifname string) error {
	v := "v" + strconv.Itoa(port)
	return l.ipBatch(l.pub,
		"link add "+v+" type veth peer name "+ifname+" netns "+ns,
		"link set "+v+" master br0 up",
	)
}

// ipBatch runs ip commands inside ns, in one process.
func (l *Lab) ipBatch(ns string, cmds ...string) error {
	cmd := exec.Command(l.ipPath, "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s -batch with\n\t%s\nfailed: %v: %s", ns, strings.Join(cmds, "\n\t"), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) iptablesRestore(ns, rules string, args ...string) error {
	cmd := exec.Command(l.ipPath, append([]string{"netns", "exec", ns, l.iptPath}, args...)...)
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore in %s with\n%s\nfailed: %v: %s", ns, rules, err, bytes.TrimSpace(out))
	}
	return nil
}

// iptSavePath is iptables-save, which lives beside iptables-restore.
func (l *Lab) iptSavePath() string {
	return filepath.Join(filepath.Dir(l.iptPath), "iptables-save")
}

// setSysctl writes a sysctl of one namespace from a thread that has joined it (/proc/sys/net
// shows the calling thread's namespace), which saves starting a process.
func setSysctl(ns, key, value string) error {
	return inNS(ns, func() error {
		if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", strings.ReplaceAll(key, "/", "."), value, ns, err)
		}
		return nil
	})
}

func (l *Lab) track(cmd *exec.Cmd) {
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
}

func (l *Lab) trackCloser(c io.Closer) {
	l.mu.Lock()
	closed := l.closed
	if !closed {
		l.closers = append(l.closers, c)
	}
	l.mu.Unlock()
	if closed {
		c.Close()
	}
}

// Close kills every process started in the lab (the process group of each command started
// through it, then anything still inside its namespaces), closes the sockets it opened and
// deletes its namespaces and files. It is idempotent and returns the first call's result.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.closeErr
	}
	l.closed = true
	cmds, closers, nss := l.cmds, l.closers, l.ns
	l.mu.Unlock()

	var errs []error
	for _, cmd := range cmds {
		if err := killGroup(cmd.Process, syscall.SIGKILL); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range closers {
		c.Close()
	}
	// A process may have left its group (Chromium's helpers call setsid): whatever still runs
	// in one of the lab's namespaces was started there by the lab, so it goes too.
	if err := killInNamespaces(nss, killDeadline); err != nil {
		errs = append(errs, err)
	}
	if len(nss) > 0 {
		var lines []string
		for i := len(nss) - 1; i >= 0; i-- {
			lines = append(lines, "netns del "+nss[i])
		}
		cmd := exec.Command(l.ipPath, "-force", "-batch", "-")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil && !allMissing(nss) {
			errs = append(errs, fmt.Errorf("deleting namespaces: %v: %s", err, bytes.TrimSpace(out)))
		}
	}
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	l.mu.Lock()
	l.closeErr = err
	l.mu.Unlock()
	return err
}

// allMissing reports whether none of the namespaces exists any more (then a failed delete of
// one that never got created does not matter).
func allMissing(nss []string) bool {
	for _, ns := range nss {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			return false
		}
	}
	return true
}

// killGroup signals the process group led by p, unless p has already been waited for (then
// its id may belong to someone else).
func killGroup(p *os.Process, sig syscall.Signal) error {
	if p == nil {
		return nil
	}
	if err := p.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill -%d -%d: %w", sig, p.Pid, err)
	}
	return nil
}

// killInNamespaces SIGKILLs every process living in one of the namespaces and waits until
// none is left.
func killInNamespaces(nss []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := pidsInNamespaces(nss)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still alive in the lab's namespaces after %v: %v", timeout, pids)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		// A killed process leaves its namespace when the kernel has torn it down, a moment
		// after the signal; there is no event to wait for, so poll briefly.
		time.Sleep(5 * time.Millisecond)
	}
}

// pidsInNamespaces lists the processes whose network namespace is one of nss (what
// `ip netns pids` does, for several namespaces in one pass over /proc).
func pidsInNamespaces(nss []string) []int {
	inodes := map[uint64]bool{}
	for _, ns := range nss {
		var st syscall.Stat_t
		if syscall.Stat("/run/netns/"+ns, &st) == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		// Zombies have no namespaces any more, so they are not listed (and hold nothing).
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && inodes[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// dumpIfFailed logs the lab's Dump to t if t has failed, once per lab: the lab's own
// cleanups call it before they stop anything.
func (l *Lab) dumpIfFailed(t testing.TB) {
	if !t.Failed() {
		return
	}
	l.mu.Lock()
	done := l.dumped || l.closed
	l.dumped = true
	l.mu.Unlock()
	if !done {
		t.Logf("natlab: state of lab %s at failure:\n%s", l.id, l.Dump())
	}
}

// staleOwner returns the id of the process that made a lab namespace or directory name, if
// name has the lab's exact form (so nobody else's names match) and that process is gone.
func staleOwner(name string, last *regexp.Regexp) (int, bool) {
	f := strings.Split(name, "-")
	if len(f) != 4 || f[0] != namePrefix || !last.MatchString(f[3]) {
		return 0, false
	}
	pid, err := strconv.ParseInt(f[1], 36, 32)
	if err != nil || int(pid) == os.Getpid() {
		return 0, false
	}
	if _, err := strconv.ParseUint(f[2], 36, 64); err != nil {
		return 0, false
	}
	return int(pid), errors.Is(syscall.Kill(int(pid), 0), syscall.ESRCH)
}

var (
	reRole   = regexp.MustCompile(`^(pub|[hrs][0-9]+|l[0-9]+(h[0-9]+)?)$`)
	reTmpDir = regexp.MustCompile(`^[0-9]+$`)
)

// sweepStale deletes namespaces and directories left by labs whose test process died without
// cleaning up, and kills what still runs in those namespaces. A live process's labs are never
// touched.
func sweepStale(ipPath string) []string {
	var stale, log []string
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if _, ok := staleOwner(e.Name(), reRole); ok {
				stale = append(stale, e.Name())
			}
		}
	}
	if len(stale) > 0 {
		if err := killInNamespaces(stale, killDeadline); err != nil {
			log = append(log, err.Error())
		}
		for _, ns := range stale {
			if out, err := exec.Command(ipPath, "netns", "del", ns).CombinedOutput(); err != nil {
				log = append(log, fmt.Sprintf("removing stale namespace %s: %v: %s", ns, err, bytes.TrimSpace(out)))
			} else {
				log = append(log, "removed stale namespace "+ns+" (its test process is gone)")
			}
		}
	}
	if entries, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range entries {
			if _, ok := staleOwner(e.Name(), reTmpDir); ok && e.IsDir() {
				dir := filepath.Join(os.TempDir(), e.Name())
				if err := os.RemoveAll(dir); err != nil {
					log = append(log, err.Error())
				} else {
					log = append(log, "removed stale directory "+dir)
				}
			}
		}
	}
	return log
}
