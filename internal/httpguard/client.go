package httpguard

import (
	"net/http"
	"net/netip"
	"strings"
)

// Trust says which direct peers are reverse proxies whose X-Forwarded-For is believed.
type Trust struct{ Proxies []netip.Prefix }

func (t Trust) trusted(a netip.Addr) bool { return inAny(t.Proxies, a) }

func inAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		// A prefix written as ::ffff:10.0.0.0/104 still names IPv4 peers, which arrive unmapped.
		if p.Contains(a) || (p.Addr().Is4In6() && p.Contains(netip.AddrFrom16(a.As16()))) {
			return true
		}
	}
	return false
}

// ClientIP is the request's client address: the direct peer, unless it is a trusted proxy;
// then X-Forwarded-For (all such headers, comma lists) is read from the RIGHT, skipping trusted
// proxies, and the first untrusted hop is the client. Malformed entries stop the walk (the last
// hop seen is the client). IPv4-mapped IPv6 is unmapped; zones dropped.
//
// Only the right end of the list can be believed: each trusted proxy appends the address it saw,
// while everything to the left came from the client and may be anything. The zero Addr means
// RemoteAddr was not an address (never for a TCP server).
func ClientIP(r *http.Request, t Trust) netip.Addr {
	client := parseHop(r.RemoteAddr)
	if !client.IsValid() || !t.trusted(client) {
		return client
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(hops[i])
		if !a.IsValid() {
			break
		}
		client = a
		if !t.trusted(a) {
			break
		}
	}
	return client
}

// parseHop reads one address: bare, or with a port as some proxies write it (and as RemoteAddr
// is). An invalid Addr means it is malformed.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}

// SourceKey is what per-source limits count by: an IPv4 address, or the /64 of an IPv6 one.
// One IPv6 subscriber is routinely given a whole /64, so counting single addresses would let
// one source act as 2^64. The zero Addr gives "".
func SourceKey(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}
