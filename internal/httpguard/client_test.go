package httpguard

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	proxies := Trust{Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	tests := []struct {
		name   string
		remote string
		xff    []string
		trust  Trust
		want   string
	}{
		{"direct, no trust", "198.51.100.7:4000", []string{"6.6.6.6"}, Trust{}, "198.51.100.7"},
		{"untrusted peer's header ignored", "198.51.100.7:4000", []string{"6.6.6.6"}, proxies, "198.51.100.7"},
		{"trusted peer, no header", "10.0.0.1:4000", nil, proxies, "10.0.0.1"},
		{"spoofed leftmost ignored", "10.0.0.1:4000", []string{"6.6.6.6, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"multi-hop through trusted proxies", "10.0.0.1:4000", []string{"6.6.6.6, 198.51.100.7, 10.0.0.2, 10.9.9.9"}, proxies, "198.51.100.7"},
		{"several headers are one list", "10.0.0.1:4000", []string{"6.6.6.6", "198.51.100.7, 10.0.0.3"}, proxies, "198.51.100.7"},
		{"every hop trusted", "10.0.0.1:4000", []string{"10.0.0.5"}, proxies, "10.0.0.5"},
		{"garbage at the right stops at the peer", "10.0.0.1:4000", []string{"198.51.100.7, garbage"}, proxies, "10.0.0.1"},
		{"garbage in the middle", "10.0.0.1:4000", []string{"6.6.6.6, unknown, 10.0.0.2"}, proxies, "10.0.0.2"},
		{"empty entry", "10.0.0.1:4000", []string{"198.51.100.7,,10.0.0.2"}, proxies, "10.0.0.2"},
		{"hop with a port", "10.0.0.1:4000", []string{"198.51.100.7:5555"}, proxies, "198.51.100.7"},
		{"IPv6 hop with a port", "10.0.0.1:4000", []string{"[2001:db8::7]:5555"}, proxies, "2001:db8::7"},
		{"IPv6 proxy", "[fd00::1]:4000", []string{"2001:db8::7"}, proxies, "2001:db8::7"},
		{"mapped peer and hop unmapped", "[::ffff:10.0.0.1]:4000", []string{"::ffff:198.51.100.7"}, proxies, "198.51.100.7"},
		{"zone dropped", "[fe80::1%eth0]:4000", nil, Trust{}, "fe80::1"},
		{"zone dropped in a hop", "10.0.0.1:4000", []string{"fe80::9%eth0"}, proxies, "fe80::9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tt.trust); got != netip.MustParseAddr(tt.want) {
				t.Errorf("ClientIP = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestSourceKey(t *testing.T) {
	key := func(s string) string { return SourceKey(netip.MustParseAddr(s)) }
	tests := []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"2001:db8:1:2::1%eth0", "2001:db8:1:2::2", true},
		{"198.51.100.7", "198.51.100.8", false},
		{"::ffff:198.51.100.7", "198.51.100.7", true},
	}
	for _, tt := range tests {
		if got := key(tt.a) == key(tt.b); got != tt.same {
			t.Errorf("SourceKey(%s)=%q, SourceKey(%s)=%q: same %v, want %v", tt.a, key(tt.a), tt.b, key(tt.b), got, tt.same)
		}
	}
	if got := key("2001:db8:1:2::1"); got != "2001:db8:1:2::/64" {
		t.Errorf("IPv6 key %q", got)
	}
	if got := key("198.51.100.7"); got != "198.51.100.7" {
		t.Errorf("IPv4 key %q", got)
	}
	if got := SourceKey(netip.Addr{}); got != "" {
		t.Errorf("zero Addr key %q", got)
	}
}
