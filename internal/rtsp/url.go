package rtsp

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// RedactURL returns u with its password replaced by "xxxxx", for printing. Everything up to the
// last '@' after "://" (or from the start, without a scheme) counts as userinfo, as for Dial,
// so a password holding '@', ':' or '/' is hidden whole; when in doubt it hides too much, never
// too little. A string without a password comes back unchanged.
func RedactURL(u string) string {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	rest := u[start:]
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return u
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 {
		return u
	}
	return u[:start] + rest[:colon+1] + "xxxxx" + rest[at:]
}

// target is a parsed camera URL: the URL requests carry (no userinfo) and the credentials.
type target struct {
	url      *url.URL
	user     string
	password string
	hasUser  bool
}

// parseURL splits rawURL into the request URL and its credentials. The userinfo ends at the
// last '@' (cameras' passwords often hold unescaped '@' or ':'); an '@' in the path must be
// written %40. Errors never quote the userinfo.
func parseURL(rawURL string) (target, error) {
	var t target
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return t, fmt.Errorf("%w: no scheme (want rtsp://)", ErrBadURL)
	}
	if !strings.EqualFold(scheme, "rtsp") {
		return t, fmt.Errorf("%w: scheme %q: only rtsp:// is supported", ErrBadURL, scheme)
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		info := rest[:at]
		rest = rest[at+1:]
		user, pass, _ := strings.Cut(info, ":")
		t.user, t.password, t.hasUser = unescape(user), unescape(pass), true
	}
	// What is left has no credentials, so url.Parse's errors may quote it.
	u, err := url.Parse("rtsp://" + rest)
	if err != nil {
		return t, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if u.Hostname() == "" {
		return t, fmt.Errorf("%w: no host", ErrBadURL)
	}
	u.Fragment, u.RawFragment = "", ""
	t.url = u
	return t, nil
}

func unescape(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}

// hostPort is where to connect: the URL's host with RTSP's default port 554.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "554"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// stripUserinfo removes credentials from an absolute URL a camera sent back (some echo them
// in Content-Base).
func stripUserinfo(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		return s[:i+3] + rest[at+1:]
	}
	return s
}

// isAbsolute reports whether s is an absolute rtsp URL.
func isAbsolute(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 || i > 8 {
		return false
	}
	return strings.EqualFold(s[:i], "rtsp") || strings.EqualFold(s[:i], "rtsps")
}

// resolveControl resolves a control attribute against the base URL the way cameras expect
// (and ffmpeg, live555, gortsplib do), not RFC 3986's way: "*" or empty is the base itself, an
// absolute URL stands alone, anything else is appended to the base with exactly one '/'
// between them, even after a query ("rtsp://cam/s?ch=1" + "trackID=1" →
// "rtsp://cam/s?ch=1/trackID=1": some cameras need exactly that); a control starting with '?'
// is appended as it is.
func resolveControl(base, control string) string {
	control = strings.TrimSpace(control)
	switch {
	case control == "" || control == "*":
		return base
	case isAbsolute(control):
		return stripUserinfo(control)
	case control[0] == '?':
		return base + control
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(control, "/")
}

// resolveBase turns a Content-Base or Content-Location header into an absolute base URL; a
// relative one is resolved against the request URL.
func resolveBase(req *url.URL, header string) string {
	header = strings.TrimSpace(header)
	if header == "" {
		return req.String()
	}
	if isAbsolute(header) {
		return stripUserinfo(header)
	}
	ref, err := url.Parse(header)
	if err != nil {
		return req.String()
	}
	return req.ResolveReference(ref).String()
}
