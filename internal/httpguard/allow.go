package httpguard

import (
	"net/http"
	"net/netip"
)

// OnlyFrom serves next to clients whose address (ClientIP under t) is in allow, and answers
// 403 to the others. A request that came through a proxy not in t (it carries
// X-Forwarded-For or Forwarded) is refused whatever its direct peer: a reverse proxy on the
// same machine would otherwise make every client it forwards look like loopback.
func OnlyFrom(allow []netip.Prefix, t Trust, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !From(r, allow, t) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// From reports whether r comes from a client in allow, by OnlyFrom's rule.
func From(r *http.Request, allow []netip.Prefix, t Trust) bool {
	direct := parseHop(r.RemoteAddr)
	forwarded := r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != ""
	return direct.IsValid() && (!forwarded || t.trusted(direct)) && inAny(allow, ClientIP(r, t))
}
