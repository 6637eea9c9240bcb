package ipclass

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzClassify checks the invariants every caller relies on: a mapped IPv4 address and a zone
// never change the class, and the empty policy permits exactly the global addresses.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "2002:c0a8:101::1", "fe80::1", "2606:4700::1", "::"} {
		b := netip.MustParseAddr(s).As16()
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ip netip.Addr
		switch len(raw) {
		case 4:
			ip = netip.AddrFrom4([4]byte(raw))
		case 16:
			ip = netip.AddrFrom16([16]byte(raw))
		default:
			return
		}
		c := Classify(ip)
		if c < Global || c > Reserved {
			t.Fatalf("%s: class %d out of range", ip, c)
		}
		if ip.Is4() {
			if m := Classify(netip.AddrFrom16(ip.As16())); m != c {
				t.Fatalf("%s is %v but mapped it is %v", ip, c, m)
			}
		} else if z := Classify(ip.WithZone("eth0")); z != c {
			t.Fatalf("%s is %v but with a zone %v", ip, c, z)
		}
		if (Policy{}).Permits(ip) != (c == Global) {
			t.Fatalf("%s (%v): empty policy disagrees with IsGlobal", ip, c)
		}
		if (Policy{Deny: []netip.Prefix{netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())}}).Permits(ip) {
			t.Fatalf("%s permitted although denied", ip)
		}
	})
}

// FuzzParsePrefixes checks that parsing never panics and that what it returns parses back to
// itself.
func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "100.64.0.0/10, 192.0.2.7", "::ffff:10.0.0.0/104", "fe80::1%eth0", "10.0.0.1/8", ",", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePrefixes(s)
		if err != nil {
			return
		}
		var parts []string
		for _, p := range got {
			if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("%q: returned %v", s, p)
			}
			parts = append(parts, p.String())
		}
		again, err := ParsePrefixes(strings.Join(parts, ","))
		if err != nil || len(again) != len(got) {
			t.Fatalf("%q: %v does not parse back: %v %v", s, got, again, err)
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("%q: %v parsed back as %v", s, got[i], again[i])
			}
		}
	})
}
