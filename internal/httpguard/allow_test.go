package httpguard

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestOnlyFrom(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	proxy := Trust{Proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}}
	h := OnlyFrom(loop, proxy, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for _, tc := range []struct {
		name, remote, xff string
		want              int
	}{
		{"loopback", "127.0.0.1:5000", "", 200},
		{"loopback v6", "[::1]:5000", "", 200},
		{"mapped loopback", "[::ffff:127.0.0.1]:5000", "", 200},
		{"LAN", "192.168.1.5:5000", "", 403},
		{"through a local proxy not trusted", "127.0.0.1:5000", "203.0.113.9", 403},
		{"through a trusted proxy, remote client", "10.0.0.1:5000", "203.0.113.9", 403},
		{"through a trusted proxy, local client", "10.0.0.1:5000", "127.0.0.1", 200},
		{"garbage remote", "nonsense", "", 403},
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
}
