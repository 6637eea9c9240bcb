// Package httpguard holds the protections every p2pcast HTTP server applies: timeouts, client
// addresses behind trusted proxies, per-source connection limits, Host and Origin checks, and
// security headers.
package httpguard

import (
	"log/slog"
	"net/http"
	"time"
)

// timeouts of NewServer; a field set so tests can shorten them.
type timeouts struct {
	readHeader, read, idle time.Duration
}

// NewServer's limits.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// NewServer returns an http.Server with timeouts that hold under abuse: ReadHeaderTimeout 5s,
// ReadTimeout 10s (a whole request, body included, must arrive within 10 s), IdleTimeout 60s,
// MaxHeaderBytes 64 KiB, and its ErrorLog sent to log at debug level.
//
// There is no WriteTimeout: a hijacked WebSocket sets its own deadlines (gorilla clears the
// server's), and answers are small. A handler still running ReadTimeout after its request began
// sees r.Context() cancelled (net/http's read deadline fires), so handlers must answer within it.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return newServer(h, log, timeouts{readHeader: readHeaderTimeout, read: readTimeout, idle: idleTimeout})
}

func newServer(h http.Handler, log *slog.Logger, t timeouts) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshake errors and the like come from clients: noise at info level.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
