// Package ipclass: TEMPORARY stub with the agreed API, replaced by helper-turn's package.
package ipclass

import "net/netip"

func IsGlobal(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !netip.MustParsePrefix("100.64.0.0/10").Contains(ip)
}

func ParsePrefixes(s string) ([]netip.Prefix, error) { return nil, nil }
