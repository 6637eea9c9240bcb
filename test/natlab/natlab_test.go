package natlab_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/p2pcast/p2pcast/test/natlab"
)

func TestKindString(t *testing.T) {
	want := map[natlab.Kind]string{
		natlab.None: "none", natlab.FullCone: "fullcone", natlab.PortRestricted: "cone",
		natlab.Symmetric: "symmetric", natlab.NoUDP: "no-udp",
	}
	if len(natlab.Kinds()) != len(want) {
		t.Fatalf("Kinds() = %v", natlab.Kinds())
	}
	for _, k := range natlab.Kinds() {
		if k.String() != want[k] {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), want[k])
		}
	}
}

// discovery is what turnutils_natdiscovery reported.
type discovery struct {
	mapping   string // "No NAT", "Endpoint Independent", "Address Dependent", "Address and Port Dependent"
	filtering string // "Endpoint Independent", ...; empty when no answer came
	reflexive []string
	local     []string
	out       string
	elapsed   time.Duration
}

var (
	reMapping   = regexp.MustCompile(`NAT with (.+) Mapping!`)
	reFiltering = regexp.MustCompile(`NAT with (.+) Filtering!`)
	reReflexive = regexp.MustCompile(`UDP reflexive addr: (\S+)`)
	reLocal     = regexp.MustCompile(`Local addr: : (\S+)`)
)

// natDiscovery runs RFC 5780 mapping and filtering discovery from h against coturn. The tool
// waits forever on filtered answers, hence timeout; it also exits 0 when nothing answered, so
// the verdict comes from its output.
func natDiscovery(ctx context.Context, h *natlab.Host, c *natlab.Coturn) (discovery, error) {
	start := time.Now()
	out, err := h.Run(ctx, "timeout", "20", "turnutils_natdiscovery", "-m", "-f", "-L", h.IP.String(), c.IP.String())
	d := discovery{out: string(out), elapsed: time.Since(start)}
	if err != nil {
		return d, err
	}
	if strings.Contains(d.out, "No NAT!") {
		d.mapping = "No NAT"
	} else if m := reMapping.FindStringSubmatch(d.out); m != nil {
		d.mapping = m[1]
	}
	if m := reFiltering.FindStringSubmatch(d.out); m != nil {
		d.filtering = m[1]
	}
	for _, m := range reReflexive.FindAllStringSubmatch(d.out, -1) {
		d.reflexive = append(d.reflexive, m[1])
	}
	for _, m := range reLocal.FindAllStringSubmatch(d.out, -1) {
		d.local = append(d.local, m[1])
	}
	return d, nil
}

// TestNATDiscovery proves each Kind behaves as its name says, by RFC 5780 discovery against a
// coturn with two public addresses, plus a STUN Binding over TCP.
func TestNATDiscovery(t *testing.T) {
	requireTools(t, "turnserver", "turnutils_natdiscovery")
	lab := natlab.New(t)
	stunHost := lab.PublicHost("stun")
	sites := map[natlab.Kind]*natlab.Host{}
	for _, k := range natlab.Kinds() {
		sites[k] = lab.Site("site-"+k.String(), k)
	}
	c := lab.StartCoturn(t, stunHost, natlab.CoturnOptions{RFC5780: true})

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// Filtered probes each wait out a timeout in the tool; run all kinds at once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[natlab.Kind]discovery{}
	errs := map[natlab.Kind]error{}
	for k, h := range sites {
		wg.Go(func() {
			d, err := natDiscovery(ctx, h, c)
			mu.Lock()
			results[k], errs[k] = d, err
			mu.Unlock()
		})
	}
	wg.Wait()

	for _, k := range natlab.Kinds() {
		t.Run(k.String(), func(t *testing.T) {
			h, d := sites[k], results[k]
			if errs[k] != nil {
				t.Fatal(errs[k])
			}
			t.Logf("%s: mapping %q, filtering %q, reflexive %v (%v)", h, d.mapping, d.filtering, d.reflexive, d.elapsed.Round(time.Millisecond))
			want := map[natlab.Kind][2]string{
				natlab.None:           {"No NAT", "Endpoint Independent"},
				natlab.FullCone:       {"Endpoint Independent", "Endpoint Independent"},
				natlab.PortRestricted: {"Endpoint Independent", "Address and Port Dependent"},
				natlab.Symmetric:      {"Address and Port Dependent", "Address and Port Dependent"},
				natlab.NoUDP:          {"", ""},
			}[k]
			if d.mapping != want[0] || d.filtering != want[1] {
				t.Errorf("mapping %q, filtering %q; want %q, %q\n%s", d.mapping, d.filtering, want[0], want[1], d.out)
			}
			if k == natlab.NoUDP {
				if len(d.reflexive) != 0 {
					t.Errorf("UDP got through a no-UDP site: %v\n%s", d.reflexive, d.out)
				}
			} else {
				if len(d.reflexive) < 2 {
					t.Fatalf("too few answers\n%s", d.out)
				}
				for i, r := range d.reflexive {
					ip, port, _ := net.SplitHostPort(r)
					if ip != h.PublicIP().String() {
						t.Errorf("reflexive address %s, want the site's public address %s", r, h.PublicIP())
					}
					if k == natlab.None && i < len(d.local) && !strings.HasSuffix(d.local[i], ":"+port) {
						t.Errorf("reflexive %s differs from local %s on the public segment", r, d.local[i])
					}
				}
			}
			// TCP leaves every site, through the NAT.
			mapped, local, err := stunOverTCP(ctx, h, c.Addr())
			if err != nil {
				t.Fatalf("STUN over TCP: %v", err)
			}
			if !mapped.IP.Equal(h.PublicIP()) {
				t.Errorf("STUN over TCP mapped %v, want the public address %v", mapped, h.PublicIP())
			}
			if k == natlab.None && mapped.Port != local.Port {
				t.Errorf("STUN over TCP mapped %v from local %v without a NAT", mapped, local)
			}
		})
	}
}

// stunOverTCP sends a Binding request over TCP from h and returns the mapped address.
func stunOverTCP(ctx context.Context, h *natlab.Host, addr string) (mapped, local *net.TCPAddr, err error) {
	conn, err := h.Dial(ctx, "tcp4", addr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := conn.Write(req.Raw); err != nil {
		return nil, nil, err
	}
	res, err := readSTUN(conn)
	if err != nil {
		return nil, nil, err
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(res); err != nil {
		return nil, nil, err
	}
	return &net.TCPAddr{IP: xor.IP, Port: xor.Port}, conn.LocalAddr().(*net.TCPAddr), nil
}

// readSTUN reads one STUN message from a stream: a 20-byte header, then its stated length.
func readSTUN(r io.Reader) (*stun.Message, error) {
	hdr := make([]byte, 20)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[2:4]))
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	m := &stun.Message{Raw: append(hdr, body...)}
	return m, m.Decode()
}

// bindUDP asks the STUN server at addr through conn for conn's mapped address.
func bindUDP(conn net.PacketConn, addr string) (*net.UDPAddr, error) {
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if _, err := conn.WriteTo(req.Raw, to); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return nil, fmt.Errorf("STUN Binding to %s: %w", addr, err)
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil || m.TransactionID != req.TransactionID {
			continue
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(m); err != nil {
			return nil, err
		}
		return &net.UDPAddr{IP: xor.IP, Port: xor.Port}, nil
	}
}

// receive waits up to d for a datagram on conn; ok is false when none came.
func receive(t *testing.T, conn net.PacketConn, d time.Duration) (payload string, from *net.UDPAddr, ok bool) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	n, addr, err := conn.ReadFrom(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "", nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), addr.(*net.UDPAddr), true
}

// TestHolePunching checks mapping and filtering again without coturn's help: a second public
// host, a peer, probes the site's mapping the way an ICE agent would.
func TestHolePunching(t *testing.T) {
	requireTools(t, "turnserver")
	lab := natlab.New(t)
	c := lab.StartCoturn(t, lab.PublicHost("stun"), natlab.CoturnOptions{})
	peerHost := lab.PublicHost("peer")
	kinds := []natlab.Kind{natlab.None, natlab.FullCone, natlab.PortRestricted, natlab.Symmetric}
	sites := map[natlab.Kind]*natlab.Host{}
	for _, k := range kinds {
		sites[k] = lab.Site("site-"+k.String(), k)
	}
	for _, k := range kinds {
		t.Run(k.String(), func(t *testing.T) {
			h := sites[k]
			conn, err := h.ListenPacket("udp4", h.IP.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			peer, err := peerHost.ListenPacket("udp4", peerHost.IP.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()

			mapped, err := bindUDP(conn, c.Addr())
			if err != nil {
				t.Fatal(err)
			}
			if !mapped.IP.Equal(h.PublicIP()) {
				t.Fatalf("mapped %v, want the public address %v", mapped, h.PublicIP())
			}
			// Unsolicited: the peer has not been sent anything yet.
			peer.WriteTo([]byte("unsolicited"), mapped)
			_, _, got := receive(t, conn, 300*time.Millisecond)
			wantOpen := k == natlab.None || k == natlab.FullCone
			if got != wantOpen {
				t.Errorf("unsolicited datagram from another host to the mapping %v arrived: %v, want %v", mapped, got, wantOpen)
			}

			conn.WriteTo([]byte("hello"), peer.LocalAddr())
			msg, from, ok := receive(t, peer, 2*time.Second)
			if !ok || msg != "hello" {
				t.Fatalf("peer got nothing from the site (%q)", msg)
			}
			sameMapping := from.IP.Equal(mapped.IP) && from.Port == mapped.Port
			if sameMapping == (k == natlab.Symmetric) {
				t.Errorf("the peer saw %v, the STUN server %v: same mapping %v, want %v", from, mapped, sameMapping, k != natlab.Symmetric)
			}
			// The answer to the address the peer saw always gets in.
			peer.WriteTo([]byte("reply"), from)
			if msg, _, ok := receive(t, conn, 2*time.Second); !ok || msg != "reply" {
				t.Errorf("the site did not get the peer's reply (%q)", msg)
			}
		})
	}
}

// TestEarlyInboundKeepsMapping is the regression test for the router's INPUT NEW drop: a
// peer's packet that reaches a cone NAT before the host has sent anything must not take the
// port, or the NAT turns symmetric for that peer and hole punching fails. The control site
// has the rule removed and must show the failure, proving the test can see it.
func TestEarlyInboundKeepsMapping(t *testing.T) {
	lab := natlab.New(t)
	peerHost := lab.PublicHost("peer")
	guarded := lab.Site("guarded", natlab.PortRestricted)
	control := lab.Site("control", natlab.PortRestricted)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := control.Router.Run(ctx, "iptables", "-D", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h        *natlab.Host
		wantKept bool
	}{{guarded, true}, {control, false}} {
		t.Run(tc.h.Name, func(t *testing.T) {
			conn, err := tc.h.ListenPacket("udp4", tc.h.IP.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			peer, err := peerHost.ListenPacket("udp4", peerHost.IP.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			port := conn.LocalAddr().(*net.UDPAddr).Port
			expected := &net.UDPAddr{IP: tc.h.PublicIP(), Port: port} // MASQUERADE keeps a free port

			peer.WriteTo([]byte("early"), expected)
			if _, _, got := receive(t, conn, 200*time.Millisecond); got {
				t.Fatal("an unsolicited datagram crossed a port-restricted NAT")
			}
			conn.WriteTo([]byte("hello"), peer.LocalAddr())
			_, from, ok := receive(t, peer, 2*time.Second)
			if !ok {
				t.Fatal("peer got nothing from the site")
			}
			if kept := from.Port == port; kept != tc.wantKept {
				t.Errorf("the site's packet came from %v, local port %d: mapping kept %v, want %v", from, port, kept, tc.wantKept)
			}
			peer.WriteTo([]byte("reply"), from)
			if _, _, ok := receive(t, conn, 2*time.Second); !ok {
				t.Error("the peer's reply did not reach the site")
			}
		})
	}
}

// TestTURN relays through coturn from behind a symmetric NAT over UDP, from a no-UDP site
// over TCP and TLS, and checks the private range is denied as a peer.
func TestTURN(t *testing.T) {
	requireTools(t, "turnserver")
	lab := natlab.New(t)
	c := lab.StartCoturn(t, lab.PublicHost("turn"), natlab.CoturnOptions{TLS: true})
	peerHost := lab.PublicHost("peer")
	sym := lab.Site("symmetric", natlab.Symmetric)
	noUDP := lab.Site("no-udp", natlab.NoUDP)

	wantURLs := []string{
		"turn:" + c.Addr() + "?transport=udp", "turn:" + c.Addr() + "?transport=tcp", "stun:" + c.Addr(),
		"turns:" + c.IP.String() + ":5349?transport=tcp",
	}
	if got := c.URLs(); strings.Join(got, " ") != strings.Join(wantURLs, " ") {
		t.Errorf("URLs() = %v, want %v", got, wantURLs)
	}
	if len(c.Secret()) < 16 {
		t.Errorf("Secret() = %q, too short", c.Secret())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name      string
		h         *natlab.Host
		transport string
	}{{"udp-from-symmetric", sym, "udp"}, {"tcp-from-no-udp", noUDP, "tcp"}, {"tls-from-no-udp", noUDP, "tls"}} {
		t.Run(tc.name, func(t *testing.T) {
			var base net.PacketConn
			switch tc.transport {
			case "udp":
				conn, err := tc.h.ListenPacket("udp4", tc.h.IP.String()+":0")
				if err != nil {
					t.Fatal(err)
				}
				base = conn
			case "tcp":
				conn, err := tc.h.Dial(ctx, "tcp4", c.Addr())
				if err != nil {
					t.Fatal(err)
				}
				base = turn.NewSTUNConn(conn)
			case "tls":
				conn, err := tc.h.Dial(ctx, "tcp4", net.JoinHostPort(c.IP.String(), "5349"))
				if err != nil {
					t.Fatal(err)
				}
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(c.CertPEM)
				base = turn.NewSTUNConn(tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: c.IP.String()}))
			}
			defer base.Close()
			user, pass := c.Credentials("natlab", time.Hour)
			client, err := turn.NewClient(&turn.ClientConfig{
				STUNServerAddr: c.Addr(), TURNServerAddr: c.Addr(),
				Username: user, Password: pass, Realm: c.Realm(), Conn: base,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if err := client.Listen(); err != nil {
				t.Fatal(err)
			}
			relay, err := client.Allocate()
			if err != nil {
				t.Fatalf("Allocate over %s: %v\ncoturn:\n%s", tc.transport, err, c.Log())
			}
			defer relay.Close()
			relayed := relay.LocalAddr().(*net.UDPAddr)
			if !relayed.IP.Equal(c.IP) {
				t.Errorf("relayed address %v, want coturn's %v", relayed, c.IP)
			}

			peer, err := peerHost.ListenPacket("udp4", peerHost.IP.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			// Payloads longer than 4 bytes: pion/turn v5.1.0's STUNConn holds back a TCP
			// ChannelData frame shorter than 9 bytes until the next one arrives.
			if _, err := relay.WriteTo([]byte("ping from the site"), peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			msg, from, ok := receive(t, peer, 3*time.Second)
			if !ok || msg != "ping from the site" {
				t.Fatalf("peer got %q (ok %v) through the relay", msg, ok)
			}
			if from.String() != relayed.String() {
				t.Errorf("peer got the relayed packet from %v, want %v", from, relayed)
			}
			peer.WriteTo([]byte("pong from the peer"), from)
			relay.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 100)
			n, _, err := relay.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "pong from the peer" {
				t.Fatalf("reading the peer's answer through the relay: %q, %v\n%s", buf[:n], err, c.Log())
			}

			// Trap 2 of the notes: peers in 10.0.0.0/8 are denied.
			err = client.CreatePermission(&net.UDPAddr{IP: net.IPv4(10, 0, 1, 2), Port: 4000})
			if err == nil {
				t.Error("coturn allowed a peer in 10.0.0.0/8")
			}
		})
	}
}

// TestCleanup runs a lab with processes that try to outlive it, some escaping their process
// group, and checks that closing it leaves no namespace, process or socket behind, and
// nothing in the machine's own namespace.
func TestCleanup(t *testing.T) {
	requireTools(t, "turnserver")
	var names []string
	var pids []int
	var ran, skipped bool
	t.Run("lab", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		lab := natlab.New(t)
		pub := lab.PublicHost("pub")
		site := lab.Site("site", natlab.Symmetric)
		lab.StartCoturn(t, pub, natlab.CoturnOptions{RFC5780: true})
		// One process the test forgets about, one that escapes its group with setsid, one
		// whose child does.
		forgotten := site.Command(context.Background(), "sleep", "1000")
		if err := forgotten.Start(); err != nil {
			t.Fatal(err)
		}
		escaper := pub.Start(t, "sh", "-c", "setsid sleep 1001 & echo started; sleep 1002")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := escaper.WaitOutput(ctx, "started"); err != nil {
			t.Fatal(err)
		}
		if _, err := site.Run(ctx, "sh", "-c", "setsid -f sleep 1003 >/dev/null 2>&1"); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.ListenPacket("udp4", pub.IP.String()+":0"); err != nil {
			t.Fatal(err)
		}
		names = lab.Namespaces()
		pids = pidsOf(t, names)
		if len(pids) < 5 {
			t.Fatalf("expected at least 5 processes in the lab, found %v", pids)
		}
		if !strings.Contains(lab.Dump(), "MASQUERADE --random-fully") {
			t.Error("Dump lacks the symmetric router's rules")
		}
		if err := lab.Close(); err != nil {
			t.Fatal(err)
		}
		ran = true
		// Close is idempotent; New's cleanup calls it again.
		if err := lab.Close(); err != nil {
			t.Fatal(err)
		}
		forgotten.Wait()
	})
	if skipped {
		t.Skip("the lab was skipped")
	}
	if !ran {
		t.Fatal("the lab did not get to close")
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, ns := range names {
		if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ns) + `\b`).Match(out) {
			t.Errorf("namespace %s survived", ns)
		}
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d survived", pid)
		}
	}
	out, err = exec.Command("ip", "-4", "addr").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr: %v: %s", err, out)
	}
	if strings.Contains(string(out), "100.64.0.") {
		t.Errorf("the machine's own namespace has a lab address:\n%s", out)
	}
}

// pidsOf lists the processes inside the namespaces, via ip netns pids.
func pidsOf(t *testing.T, names []string) []int {
	var pids []int
	for _, ns := range names {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			t.Fatalf("ip netns pids %s: %v", ns, err)
		}
		for _, f := range strings.Fields(string(out)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("ip netns pids %s: %q", ns, out)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// requireTools skips (or, with P2PCAST_REQUIRE_NETNS set, fails) when a Debian tool is missing.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			msg := name + " not installed (Debian package coturn; scripts/install-deps.sh installs it)"
			if os.Getenv("P2PCAST_REQUIRE_NETNS") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// TestTopology checks the addresses and routes promised by the API, that the lab is IPv4
// only, and that addresses outside the lab are refused at once (an ICMP "network unreachable"
// from the public segment) rather than timing out, so programs' calls out fail fast.
func TestTopology(t *testing.T) {
	lab := natlab.New(t)
	pub := lab.PublicHost("pub")
	site := lab.Site("site", natlab.PortRestricted)
	direct := lab.Site("direct", natlab.None)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if pub.IP.String() != "100.64.0.2" || site.Router.IP.String() != "100.64.0.3" || direct.IP.String() != "100.64.0.4" {
		t.Errorf("public addresses %v, %v, %v; want 100.64.0.2, .3, .4 in order of creation", pub.IP, site.Router.IP, direct.IP)
	}
	if site.IP.String() != "10.0.1.2" || !site.PublicIP().Equal(site.Router.IP) || site.Kind != natlab.PortRestricted {
		t.Errorf("site %v", site)
	}
	if direct.Router != nil || direct.Kind != natlab.None || !direct.PublicIP().Equal(direct.IP) {
		t.Errorf("a None site should be a public host: %v", direct)
	}
	for _, tc := range []struct {
		h     *natlab.Host
		route string
	}{{pub, "default via 100.64.0.1"}, {site, "default via 10.0.1.1"}, {site.Router, "default via 100.64.0.1"}} {
		out, err := tc.h.Run(ctx, "ip", "route")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), tc.route) {
			t.Errorf("routes of %s:\n%s\nwant %q", tc.h.Name, out, tc.route)
		}
		out, err = tc.h.Run(ctx, "ip", "-o", "addr")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^1: lo +inet 127\.0\.0\.1/8`).Match(out) {
			t.Errorf("lo of %s is not up:\n%s", tc.h.Name, out)
		}
		if strings.Contains(string(out), "inet6 fe80") {
			t.Errorf("%s has link-local IPv6 addresses:\n%s", tc.h.Name, out)
		}
	}

	for _, h := range []*natlab.Host{pub, site} {
		t.Run("outside-from-"+h.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			conn, err := h.Dial(ctx, "tcp4", "192.0.2.1:80") // TEST-NET-1, never in the lab
			if err == nil {
				conn.Close()
				t.Fatal("connected to an address outside the lab")
			}
			if ctx.Err() != nil || time.Since(start) > time.Second {
				t.Errorf("took %v to fail (%v), want an immediate refusal", time.Since(start), err)
			}
		})
	}
}
