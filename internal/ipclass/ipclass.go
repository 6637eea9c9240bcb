// Package ipclass classifies IP addresses, so that every part of p2pcast decides "is this a
// globally routable address" the same way: the TURN server's peer filter, candidate filters and
// the docs' coturn configuration all follow the ranges here (IANA special-purpose registries,
// RFC 6890 and its updates).
//
// Addresses that embed an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4
// 2002::/16) are classified by that IPv4 address, since a relay sending to them reaches it.
package ipclass

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Class is the kind of an address.
type Class int

// The classes, from the most to the least reachable.
const (
	Global      Class = iota // routable on the public internet
	Private                  // RFC 1918 IPv4, IPv6 unique local (fc00::/7)
	Shared                   // carrier-grade NAT, 100.64.0.0/10 (RFC 6598)
	Loopback                 // 127.0.0.0/8, ::1
	LinkLocal                // 169.254.0.0/16, fe80::/10
	Multicast                // 224.0.0.0/4, ff00::/8
	Unspecified              // 0.0.0.0, ::
	Reserved                 // documentation, benchmarking, future use, protocol assignments, invalid
)

func (c Class) String() string {
	switch c {
	case Global:
		return "global"
	case Private:
		return "private"
	case Shared:
		return "shared"
	case Loopback:
		return "loopback"
	case LinkLocal:
		return "link-local"
	case Multicast:
		return "multicast"
	case Unspecified:
		return "unspecified"
	case Reserved:
		return "reserved"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

type rangeClass struct {
	prefix netip.Prefix
	class  Class
}

// The tables are small and fixed; a linear scan is as fast as anything cleverer. Order matters
// only where ranges nest (0.0.0.0 before 0.0.0.0/8).
var v4Ranges = [...]rangeClass{
	{netip.MustParsePrefix("0.0.0.0/32"), Unspecified},
	{netip.MustParsePrefix("0.0.0.0/8"), Reserved}, // "this network"
	{netip.MustParsePrefix("10.0.0.0/8"), Private},
	{netip.MustParsePrefix("100.64.0.0/10"), Shared},
	{netip.MustParsePrefix("127.0.0.0/8"), Loopback},
	{netip.MustParsePrefix("169.254.0.0/16"), LinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), Private},
	{netip.MustParsePrefix("192.0.0.0/24"), Reserved},    // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), Reserved},    // TEST-NET-1
	{netip.MustParsePrefix("192.168.0.0/16"), Private},   //
	{netip.MustParsePrefix("198.18.0.0/15"), Reserved},   // benchmarking
	{netip.MustParsePrefix("198.51.100.0/24"), Reserved}, // TEST-NET-2
	{netip.MustParsePrefix("203.0.113.0/24"), Reserved},  // TEST-NET-3
	{netip.MustParsePrefix("224.0.0.0/4"), Multicast},
	{netip.MustParsePrefix("240.0.0.0/4"), Reserved}, // future use, and 255.255.255.255
}

var v6Ranges = [...]rangeClass{
	{netip.MustParsePrefix("::/128"), Unspecified},
	{netip.MustParsePrefix("::1/128"), Loopback},
	{netip.MustParsePrefix("fc00::/7"), Private}, // unique local
	{netip.MustParsePrefix("fe80::/10"), LinkLocal},
	{netip.MustParsePrefix("ff00::/8"), Multicast},
	{netip.MustParsePrefix("2001:db8::/32"), Reserved},  // documentation
	{netip.MustParsePrefix("100::/64"), Reserved},       // discard-only
	{netip.MustParsePrefix("2001::/23"), Reserved},      // IETF protocol assignments, Teredo 2001::/32
	{netip.MustParsePrefix("64:ff9b:1::/48"), Reserved}, // local-use NAT64
	{netip.MustParsePrefix("3fff::/20"), Reserved},      // documentation
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	global6   = netip.MustParsePrefix("2000::/3")
)

// Classify returns the class of ip. Zones are ignored; the invalid (zero) Addr is Reserved.
func Classify(ip netip.Addr) Class {
	if !ip.IsValid() {
		return Reserved
	}
	ip = ip.WithZone("")
	if v4, ok := embeddedIPv4(ip); ok {
		ip = v4
	}
	if ip.Is4() {
		for _, r := range v4Ranges {
			if r.prefix.Contains(ip) {
				return r.class
			}
		}
		return Global
	}
	for _, r := range v6Ranges {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	if !global6.Contains(ip) {
		return Reserved // unassigned outside 2000::/3, and the deprecated forms (site-local, IPv4-compatible)
	}
	return Global
}

// IsGlobal reports whether ip is routable on the public internet: Classify(ip) == Global.
func IsGlobal(ip netip.Addr) bool { return Classify(ip) == Global }

// embeddedIPv4 returns the IPv4 address an IPv6 address carries, for the forms a packet sent to
// it would reach: IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48).
// An IPv4 address is returned as is.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	ip = ip.WithZone("")
	switch {
	case ip.Is4():
		return ip, true
	case ip.Is4In6():
		return ip.Unmap(), true
	case nat64.Contains(ip):
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Policy decides which peers a relay may reach.
type Policy struct {
	Allow []netip.Prefix // permitted even though not global (labs, e.g. 100.64.0.0/10 in the NAT lab)
	Deny  []netip.Prefix // always refused, even if global or allowed (e.g. the hub's own addresses)
}

// Permits reports whether a relay may reach ip: it is in no Deny prefix, and it is global or in
// an Allow prefix. An address that embeds an IPv4 address is also refused when that IPv4 address
// is denied; Allow matches the address itself only (IPv4-mapped counts as IPv4), so allowing
// 10.0.0.0/8 does not open 2002:a00::/24.
func (p Policy) Permits(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap()
	if contains(p.Deny, ip) {
		return false
	}
	if v4, ok := embeddedIPv4(ip); ok && contains(p.Deny, v4) {
		return false
	}
	return IsGlobal(ip) || contains(p.Allow, ip)
}

func contains(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		// A prefix written in IPv4-mapped form matches IPv4 addresses as IPv4.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrBadPrefix is the error of ParsePrefixes.
var ErrBadPrefix = errors.New("ipclass: bad address or prefix")

// ParsePrefixes parses comma-separated CIDR prefixes or bare addresses (a bare address is a /32
// or /128). Spaces around entries are ignored; "" is no prefixes. A prefix with host bits set
// (10.0.0.1/8) is an error rather than silently widened or narrowed: it is usually a typo.
// IPv4-mapped forms are stored as IPv4.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%w: empty entry in %q", ErrBadPrefix, s)
		}
		p, err := parsePrefix(item)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(item string) (netip.Prefix, error) {
	if !strings.Contains(item, "/") {
		ip, err := netip.ParseAddr(item)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w %q: not an IP address or CIDR prefix (want e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8)", ErrBadPrefix, item)
		}
		ip = ip.WithZone("").Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(item)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w %q: %v (want e.g. 10.0.0.0/8 or fd00::/8)", ErrBadPrefix, item, err)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%w %q: an IPv4-mapped prefix needs at least /96", ErrBadPrefix, item)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%w %q: host bits set; did you mean %s?", ErrBadPrefix, item, m)
	}
	return p, nil
}
