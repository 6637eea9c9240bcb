package hub

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/p2pcast/p2pcast/internal/httpguard"
)

// ErrReload: a reload was refused (the new configuration is not valid); nothing changed.
var ErrReload = errors.New("hub: reload refused")

// hubLive are the settings Reload changes while devices and viewers stay connected. Readers
// take the snapshot in force; Reload stores a new one whole.
type hubLive struct {
	trust       httpguard.Trust
	opsAllow    []netip.Prefix // nil: DefaultOpsAllow
	adminAllow  []netip.Prefix // nil: DefaultOpsAllow
	adminSum    [32]byte       // SHA-256 of the admin credential
	maxPerToken int
	// the limits as given (before defaults), to tell what changed
	connRate, connBurst, authFails, deviceFails float64
	handshakes                                  int
}

func liveOf(cfg Config) *hubLive {
	return &hubLive{trust: cfg.Trust, opsAllow: cfg.OpsAllow, adminAllow: cfg.Admin.Allow, adminSum: sha256.Sum256([]byte(cfg.Admin.Token)),
		maxPerToken: cfg.MaxSessionsPerToken, connRate: cfg.ConnRate, connBurst: cfg.ConnBurst, authFails: cfg.AuthFailsPerMinute,
		deviceFails: cfg.AuthFailsPerDevice, handshakes: cfg.MaxHandshakesPerSource}
}

// Defaults of the per-source limits (Config): thousands of devices behind one carrier-grade NAT
// come back within seconds of a restart (docs/hub.md, "Abuse").
const (
	DefaultConnRate               = 100
	DefaultConnBurst              = 500
	DefaultAuthFailsPerMinute     = 60
	DefaultAuthFailsPerDevice     = 5
	DefaultMaxHandshakesPerSource = 256
	DefaultMaxConnsPerSource      = 1024
)

// limitDefaults fills in the limits' defaults, for New and for a configuration read again
// (which then compares with the running one value for value).
func limitDefaults(cfg Config, perDevice int) Config {
	if cfg.ConnRate <= 0 {
		cfg.ConnRate = DefaultConnRate
		if cfg.ConnBurst <= 0 {
			cfg.ConnBurst = DefaultConnBurst
		}
	}
	if cfg.ConnBurst < 1 {
		cfg.ConnBurst = max(1, cfg.ConnRate)
	}
	if cfg.AuthFailsPerMinute <= 0 {
		cfg.AuthFailsPerMinute = DefaultAuthFailsPerMinute
	}
	if cfg.AuthFailsPerDevice <= 0 {
		cfg.AuthFailsPerDevice = DefaultAuthFailsPerDevice
	}
	if cfg.MaxHandshakesPerSource <= 0 {
		cfg.MaxHandshakesPerSource = DefaultMaxHandshakesPerSource
	}
	if cfg.MaxConnsPerSource <= 0 {
		cfg.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if cfg.MaxSessionsPerToken <= 0 {
		cfg.MaxSessionsPerToken = 64
	}
	cfg.MaxSessionsPerToken = max(1, min(cfg.MaxSessionsPerToken, perDevice*3/4))
	return cfg
}

func orDefault(p []netip.Prefix) []netip.Prefix {
	if p == nil {
		return DefaultOpsAllow
	}
	return p
}

// settings is the snapshot in force.
func (s *Server) settings() *hubLive { return s.live.Load() }

// onlyFrom serves next to the addresses allow picks from the settings in force, behind the
// trusted proxies in force.
func (s *Server) onlyFrom(allow func(*hubLive) []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := s.settings()
		httpguard.OnlyFrom(orDefault(allow(l)), l.trust, next).ServeHTTP(w, r)
	})
}

// setRate changes a limiter's rate and burst; buckets keep their tokens (capped at burst).
func (l *limiter) setRate(rate, burst float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate, l.burst = rate, burst
	for _, b := range l.buckets {
		b.tokens = min(b.tokens, burst)
	}
}

// Reload applies what of cfg is safe to change with devices and viewers connected, and names
// the rest that differs as needing a restart (logged too):
//
//	Trust (--trust-proxy), OpsAllow, Admin.Allow, Admin.Token (a rotated credential file)
//	ConnRate, ConnBurst, AuthFailsPerMinute, AuthFailsPerDevice, MaxHandshakesPerSource,
//	MaxSessionsPerToken
//
// The admin page itself (on or off) needs a restart. An invalid cfg changes nothing.
func (s *Server) Reload(cfg Config) (applied, needsRestart []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrReload, err)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.settings()
	next := *old
	nl := liveOf(limitDefaults(cfg, s.cfg.MaxSessionsPerDevice))
	set := func(name string, changed bool, apply func()) {
		if changed {
			applied = append(applied, name)
			apply()
		}
	}
	set("trust-proxy", !slices.Equal(nl.trust.Proxies, old.trust.Proxies), func() { next.trust = nl.trust })
	set("ops-allow", !slices.Equal(nl.opsAllow, old.opsAllow) || (nl.opsAllow == nil) != (old.opsAllow == nil), func() { next.opsAllow = nl.opsAllow })
	set("admin-allow", !slices.Equal(nl.adminAllow, old.adminAllow) || (nl.adminAllow == nil) != (old.adminAllow == nil), func() { next.adminAllow = nl.adminAllow })
	if (cfg.Admin.Token == "") != (s.cfg.Admin.Token == "") {
		needsRestart = append(needsRestart, "admin-token-file")
	} else {
		set("admin-token-file", nl.adminSum != old.adminSum, func() { next.adminSum = nl.adminSum })
	}
	set("max-sessions-per-token", nl.maxPerToken != old.maxPerToken, func() { next.maxPerToken = nl.maxPerToken })
	set("conn-rate", nl.connRate != old.connRate || nl.connBurst != old.connBurst, func() {
		next.connRate, next.connBurst = nl.connRate, nl.connBurst
		s.conns.setRate(nl.connRate, nl.connBurst)
	})
	set("auth-fails", nl.authFails != old.authFails, func() {
		next.authFails = nl.authFails
		s.fails.setRate(nl.authFails/60, nl.authFails)
	})
	set("auth-fails-per-device", nl.deviceFails != old.deviceFails, func() {
		next.deviceFails = nl.deviceFails
		s.deviceFails.setRate(nl.deviceFails/60, nl.deviceFails)
	})
	set("max-handshakes-per-source", nl.handshakes != old.handshakes, func() {
		next.handshakes = nl.handshakes
		s.handshakes.setMax(nl.handshakes)
	})
	r := s.cfg
	for _, c := range []struct {
		name    string
		changed bool
	}{
		{"http", cfg.HTTPAddr != r.HTTPAddr},
		{"data", cfg.DataDir != r.DataDir},
		{"tls-cert", (cfg.TLS == nil) != (r.TLS == nil)},
		{"public-ip", cfg.PublicIP != r.PublicIP},
		{"turn", cfg.TURN.Off != r.TURN.Off || cfg.TURN.Port != r.TURN.Port || cfg.TURN.TCPAllocations != r.TURN.TCPAllocations ||
			cfg.TURN.MaxAllocationsPerUser != r.TURN.MaxAllocationsPerUser || cfg.TURN.UserBandwidth != r.TURN.UserBandwidth ||
			!slices.Equal(cfg.TURN.AllowPeers, r.TURN.AllowPeers)},
		{"turn-url", !slices.Equal(cfg.ExternalTURN.URLs, r.ExternalTURN.URLs) || cfg.ExternalTURN.Secret != r.ExternalTURN.Secret},
		{"url", len(cfg.URLs) > 0 && !slices.Equal(cfg.URLs, r.URLs)},
		{"token-issuer", cfg.TokenIssuer != r.TokenIssuer},
		{"max-conns-per-source", limitDefaults(cfg, r.MaxSessionsPerDevice).MaxConnsPerSource != r.MaxConnsPerSource},
		{"cluster", cfg.Cluster != r.Cluster},
	} {
		if c.changed {
			needsRestart = append(needsRestart, c.name)
		}
	}
	s.live.Store(&next)
	s.log.Info("configuration reloaded", "applied", applied, "needs a restart", needsRestart)
	return applied, needsRestart, nil
}
