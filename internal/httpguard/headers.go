package httpguard

import "net/http"

// csp is what Headers sends: the pages load their scripts, styles and media
// from their own origin only and can be framed by no one, so an injected markup fragment runs
// nothing and the page cannot be clickjacked.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"

// Headers sets security headers on every response: Content-Security-Policy (default-src 'self';
// script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:;
// connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'),
// X-Frame-Options DENY, X-Content-Type-Options nosniff, Referrer-Policy no-referrer.
func Headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// Hub viewer links carry a token in the fragment, which Referer never holds; the page's
		// query (device id) is still nobody else's business.
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
