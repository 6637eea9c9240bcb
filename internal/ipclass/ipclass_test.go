package ipclass

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want Class
	}{
		// IPv4
		{"8.8.8.8", Global}, {"1.1.1.1", Global}, {"100.63.255.255", Global}, {"100.128.0.0", Global},
		{"172.15.255.255", Global}, {"172.32.0.0", Global}, {"192.0.1.1", Global}, {"198.17.255.255", Global},
		{"198.20.0.0", Global}, {"223.255.255.255", Global}, {"192.88.99.1", Global},
		{"10.0.0.1", Private}, {"10.255.255.255", Private}, {"172.16.0.1", Private}, {"172.31.255.255", Private},
		{"192.168.1.1", Private},
		{"100.64.0.1", Shared}, {"100.127.255.255", Shared},
		{"127.0.0.1", Loopback}, {"127.255.255.254", Loopback},
		{"169.254.1.1", LinkLocal},
		{"224.0.0.251", Multicast}, {"239.255.255.250", Multicast},
		{"0.0.0.0", Unspecified},
		{"0.1.2.3", Reserved}, {"192.0.0.9", Reserved}, {"192.0.2.1", Reserved}, {"198.18.0.1", Reserved},
		{"198.19.255.255", Reserved}, {"198.51.100.7", Reserved}, {"203.0.113.9", Reserved},
		{"240.0.0.1", Reserved}, {"255.255.255.255", Reserved},
		// IPv6
		{"2606:4700:4700::1111", Global}, {"2a00:1450:4001::1", Global}, {"2001:200::1", Global},
		{"::1", Loopback}, {"::", Unspecified},
		{"fc00::1", Private}, {"fd12:3456::1", Private},
		{"fe80::1", LinkLocal}, {"fe80::1%eth0", LinkLocal}, {"febf::1", LinkLocal},
		{"ff02::1", Multicast}, {"ff0e::1", Multicast},
		{"2001:db8::1", Reserved}, {"100::1", Reserved}, {"2001::1", Reserved}, {"2001:0:4136:e378::1", Reserved},
		{"2001:1ff::1", Reserved}, {"64:ff9b:1::1", Reserved}, {"3fff::1", Reserved}, {"3fff:fff::1", Reserved},
		{"fec0::1", Reserved}, {"4000::1", Reserved}, {"::2", Reserved}, {"::10.0.0.1", Reserved},
		// Embedded IPv4 is classified by its IPv4.
		{"::ffff:10.0.0.1", Private}, {"::ffff:127.0.0.1", Loopback}, {"::ffff:8.8.8.8", Global},
		{"::ffff:100.64.0.1", Shared}, {"::ffff:0.0.0.0", Unspecified},
		{"64:ff9b::10.0.0.1", Private}, {"64:ff9b::8.8.8.8", Global}, {"64:ff9b::127.0.0.1", Loopback},
		{"2002:a00:1::1", Private}, {"2002:7f00:1::", Loopback}, {"2002:808:808::1", Global},
		{"2002:c000:204::1", Reserved}, {"2002:a9fe:101::1", LinkLocal},
	} {
		ip := netip.MustParseAddr(c.ip)
		if got := Classify(ip); got != c.want {
			t.Errorf("Classify(%s) = %v, want %v", c.ip, got, c.want)
		}
		if got := IsGlobal(ip); got != (c.want == Global) {
			t.Errorf("IsGlobal(%s) = %v", c.ip, got)
		}
	}
	if got := Classify(netip.Addr{}); got != Reserved {
		t.Errorf("Classify(zero) = %v, want reserved", got)
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{
		Global: "global", Private: "private", Shared: "shared", Loopback: "loopback", LinkLocal: "link-local",
		Multicast: "multicast", Unspecified: "unspecified", Reserved: "reserved", Class(42): "Class(42)",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", int(c), got, want)
		}
	}
}

func TestPolicyPermits(t *testing.T) {
	lab := Policy{
		Allow: mustPrefixes(t, "100.64.0.0/10, 10.1.0.0/16, fd00::/8"),
		Deny:  mustPrefixes(t, "100.64.0.2, 8.8.4.4, 2001:4860::/32"),
	}
	for _, c := range []struct {
		p    Policy
		ip   string
		want bool
	}{
		{Policy{}, "8.8.8.8", true},
		{Policy{}, "2606:4700::1", true},
		{Policy{}, "10.0.0.1", false},
		{Policy{}, "100.64.0.1", false},
		{Policy{}, "127.0.0.1", false},
		{Policy{}, "::ffff:10.0.0.1", false},
		{Policy{}, "::ffff:8.8.8.8", true},
		{Policy{}, "fe80::1%eth0", false},
		{lab, "100.64.0.3", true},            // allowed segment
		{lab, "::ffff:100.64.0.3", true},     // the same address, mapped
		{lab, "100.64.0.2", false},           // denied inside the allowed segment
		{lab, "::ffff:100.64.0.2", false},    // ... also when mapped
		{lab, "10.1.2.3", true},              //
		{lab, "10.2.0.1", false},             // private, not allowed
		{lab, "8.8.4.4", false},              // global but denied
		{lab, "64:ff9b::8.8.4.4", false},     // denied IPv4 through NAT64
		{lab, "2002:808:404::1", false},      // denied IPv4 through 6to4
		{lab, "64:ff9b::100.64.0.3", false},  // Allow matches the address itself only
		{lab, "fd00::5", true},               //
		{lab, "2001:4860:4860::8888", false}, // denied IPv6 range
		{lab, "8.8.8.8", true},               //
		{Policy{Allow: mustPrefixes(t, "::ffff:10.0.0.0/104")}, "10.0.0.1", true}, // mapped prefix, written by hand
		{Policy{Allow: mustPrefixes(t, "0.0.0.0/0")}, "invalid", false},
	} {
		var ip netip.Addr
		if c.ip != "invalid" {
			ip = netip.MustParseAddr(c.ip)
		}
		if got := c.p.Permits(ip); got != c.want {
			t.Errorf("%+v.Permits(%s) = %v, want %v", c.p, c.ip, got, c.want)
		}
	}
}

func TestPolicyMappedPrefixLiteral(t *testing.T) {
	// A Prefix built directly (not through ParsePrefixes) in mapped form still matches.
	p := Policy{Deny: []netip.Prefix{netip.MustParsePrefix("::ffff:8.8.8.0/120")}}
	if p.Permits(netip.MustParseAddr("8.8.8.8")) {
		t.Error("mapped deny prefix did not match the IPv4 address")
	}
}

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePrefixes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // prefixes joined by ","; "" for none
		err  string // substring of the error
	}{
		{in: "", want: ""},
		{in: "  ", want: ""},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "100.64.0.0/10, 192.0.2.7 ,fd00::/8", want: "100.64.0.0/10,192.0.2.7/32,fd00::/8"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "fe80::1%eth0", want: "fe80::1/128"},
		{in: "10.0.0.1/8", err: "did you mean 10.0.0.0/8"},
		{in: "10.0.0.0/33", err: "10.0.0.0/33"},
		{in: "10.0.0.300", err: "not an IP address"},
		{in: "example.com", err: "not an IP address"},
		{in: "10.0.0.0/8,,192.168.0.0/16", err: "empty entry"},
		{in: "10.0.0.0/8,", err: "empty entry"},
		{in: "::ffff:10.0.0.0/64", err: "at least /96"},
	} {
		got, err := ParsePrefixes(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrBadPrefix) {
				t.Errorf("ParsePrefixes(%q): %v, want an ErrBadPrefix containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePrefixes(%q): %v", c.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, ",") != c.want {
			t.Errorf("ParsePrefixes(%q) = %v, want %s", c.in, s, c.want)
		}
	}
}
