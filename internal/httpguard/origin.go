package httpguard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Hosts refuses (403, plain-text reason naming --allow-host) a request whose Host is not
// localhost (or *.localhost), an IP literal (v4, or [v6]), or one of names (case-insensitive;
// a leading "*." matches subdomains). This defeats DNS rebinding.
//
// A rebinding page is same-origin with a name the attacker controls, which now resolves to the
// device: its requests pass every origin check but still carry that name in Host.
func Hosts(names []string, next http.Handler) http.Handler {
	allowed := make([]string, 0, len(names))
	for _, n := range names {
		if n = normalHost(n); n != "" {
			allowed = append(allowed, n)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, allowed) {
			http.Error(w, fmt.Sprintf("host %q is not served here: start p2pcast with --allow-host %s to serve it",
				r.Host, hostOnly(r.Host)), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func hostAllowed(host string, allowed []string) bool {
	if strings.HasPrefix(host, "[") {
		// Only an IPv6 literal is bracketed.
		h := hostOnly(host)
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	h := normalHost(host)
	if h == "" || strings.Contains(h, ":") {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Is4()
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true // browsers resolve these to loopback themselves (RFC 6761)
	}
	for _, n := range allowed {
		if sub, ok := strings.CutPrefix(n, "*."); ok {
			if strings.HasSuffix(h, "."+sub) {
				return true
			}
		} else if h == n {
			return true
		}
	}
	return false
}

// hostOnly drops the port and the brackets of an IPv6 literal.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// normalHost is a host name without port, in lower case, without the root's trailing dot.
func normalHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(hostOnly(strings.TrimSpace(s))), ".")
}

// CORS grants cross-origin access only to the listed origins (exact scheme://host[:port]
// match; "*" only if listed explicitly): it reflects the origin with Vary: Origin, answers
// preflights (methods/headers given), and gives other origins no CORS headers at all
// (preflights from them get 403).
//
// A plain OPTIONS (no Access-Control-Request-Method) is not a preflight and goes to next.
func CORS(origins []string, methods, headers, expose string, next http.Handler) http.Handler {
	allowed := normalOrigins(origins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer varies by Origin, those without one too: a cache must not hand a
		// request with an Origin the answer made for one without.
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		ok := originListed(origin, allowed)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			if methods != "" {
				h.Set("Access-Control-Allow-Methods", methods)
			}
			if headers != "" {
				h.Set("Access-Control-Allow-Headers", headers)
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			if expose != "" {
				h.Set("Access-Control-Expose-Headers", expose)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// CheckOrigin is for websocket.Upgrader.CheckOrigin: no Origin (not a browser), the same
// origin as the Host, or a listed origin.
func CheckOrigin(origins []string) func(*http.Request) bool {
	allowed := normalOrigins(origins)
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
			return true
		}
		return originListed(origin, allowed)
	}
}

// normalOrigins lowers the case and drops a trailing slash: browsers send origins serialized
// that way, people write them with either.
func normalOrigins(origins []string) []string {
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		if o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/"); o != "" {
			out = append(out, o)
		}
	}
	return out
}

func originListed(origin string, allowed []string) bool {
	// "null" (sandboxed frames, file: pages) is never an origin anyone meant to grant.
	if origin == "null" {
		return slices.Contains(allowed, "null")
	}
	return slices.Contains(allowed, "*") || slices.Contains(allowed, strings.ToLower(origin))
}
