// Package httpguard: TEMPORARY stub with the agreed API, replaced by helper-guard's package.
package httpguard

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
)

func NewServer(h http.Handler, log *slog.Logger) *http.Server { return &http.Server{Handler: h} }

type Trust struct{ Proxies []netip.Prefix }

func ClientIP(r *http.Request, t Trust) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr().Unmap()
}
func SourceKey(ip netip.Addr) string { return ip.String() }
func LimitListener(l net.Listener, max int, exempt []netip.Prefix, onRefuse func(source string)) net.Listener {
	return l
}
func Hosts(names []string, next http.Handler) http.Handler { return next }
func CORS(origins []string, methods, headers, expose string, next http.Handler) http.Handler {
	return next
}
func CheckOrigin(origins []string) func(*http.Request) bool { return nil }
func Headers(next http.Handler) http.Handler                { return next }
