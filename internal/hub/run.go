package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/ipclass"
	"github.com/p2pcast/p2pcast/internal/lifecycle"
	"github.com/p2pcast/p2pcast/internal/turnserver"
)

// Ready tells where a started hub listens.
type Ready struct {
	URL string // http[s]://HOST:PORT/ of the listener
	// Reload applies a configuration read again (SIGHUP): Server.Reload (reload.go).
	Reload func(Config) (applied, needsRestart []string, err error)
}

// Audit file rotation: 10 MiB a file, 5 kept. Refusals are aggregated per source and minute,
// so this holds weeks.
const (
	auditFileMax  = 10 << 20
	auditFileKeep = 5
)

// shutdownWait bounds the HTTP server's graceful shutdown.
const shutdownWait = 2 * time.Second

// Run validates cfg and runs a hub until ctx ends or one of its components (see the package
// doc) fails; ready, if not nil, is called once it listens.
func Run(ctx context.Context, cfg Config, ready func(Ready)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	r := &runner{cfg: cfg}
	if r.cfg.Logger == nil {
		r.cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if r.cfg.Store == nil {
		store, err := auth.OpenStore(cfg.DataDir)
		if err != nil {
			return err
		}
		r.cfg.Store = store
	}
	components := []lifecycle.Component{
		{Name: "audit log", Start: r.openAudit, Stop: r.closeAudit},
		{Name: "embedded TURN", Start: r.startTURN, Stop: r.stopTURN},
		{Name: "cluster", Start: r.joinCluster, Stop: r.leaveCluster},
		{Name: "HTTP server", Start: r.listen, Run: r.serve, Stop: r.shutdown, StopWait: shutdownWait + time.Second},
		{Name: "revocation watcher", Run: func(ctx context.Context) error { r.srv.watchRevoked(ctx); return nil }},
		{Name: "relay health", Run: func(ctx context.Context) error { r.srv.checkRelays(ctx); <-ctx.Done(); return nil }},
		{Name: "announcement", Start: func(context.Context) error {
			r.cfg.Logger.Info("hub listening", "data", cfg.DataDir)
			if ready != nil {
				ready(Ready{URL: r.url, Reload: r.srv.Reload})
			}
			return nil
		}},
	}
	return lifecycle.Run(ctx, r.cfg.Logger, components...)
}

// runner holds what Run's components share, each part set by the component that owns it.
type runner struct {
	cfg   Config
	audit interface{ Close() error } // the audit file Run opened
	turn  *turnserver.Server
	l     net.Listener
	srv   *Server
	hs    *http.Server
	url   string
	// cluster is the hub's NATS membership (nil for a single hub): connected before the
	// relay exists, started by listen, left after the relay has stopped.
	cluster *cluster
}

func (r *runner) joinCluster(context.Context) error {
	if !r.cfg.Cluster.Enabled() {
		return nil
	}
	c, err := connectCluster(r.cfg.Cluster, r.cfg.Logger)
	if err != nil {
		return err
	}
	r.cluster = c
	return nil
}

func (r *runner) leaveCluster(context.Context) error {
	if r.cluster != nil {
		r.cluster.close()
	}
	return nil
}

func (r *runner) openAudit(context.Context) error {
	if r.cfg.Audit != nil {
		return nil
	}
	f, err := OpenAuditFile(filepath.Join(r.cfg.DataDir, auditName(r.cfg.Cluster)), auditFileMax, auditFileKeep)
	if err != nil {
		return err
	}
	r.cfg.Audit, r.audit = f, f
	return nil
}

func (r *runner) closeAudit(context.Context) error {
	if r.audit == nil {
		return nil
	}
	return r.audit.Close()
}

// startTURN starts the embedded TURN server and sets what the hub hands out: its URLs, or
// the external server's.
func (r *runner) startTURN(context.Context) error {
	ice := &r.cfg.ICE
	if !r.cfg.TURN.Off {
		ip, err := advertisedIP(r.cfg.PublicIP, r.cfg.HTTPAddr)
		if err != nil {
			return err
		}
		secret := r.cfg.Store.TURNSecret()
		t := r.cfg.TURN
		ts, err := turnserver.Start(turnserver.Config{
			PublicIP: ip, Port: t.Port, TLS: r.cfg.TLS, Logger: r.cfg.Logger,
			Verify:         func(user string) (string, error) { return auth.VerifyTURN(secret, user, time.Now()) },
			Peers:          ipclass.Policy{Allow: t.AllowPeers},
			TCPAllocations: t.TCPAllocations, MaxAllocationsPerUser: t.MaxAllocationsPerUser, UserBandwidth: t.UserBandwidth,
		})
		if err != nil {
			return err
		}
		r.turn = ts
		hostPort := net.JoinHostPort(ip.String(), strconv.Itoa(ts.UDPAddr().Port))
		ice.STUN = []string{"stun:" + hostPort}
		ice.TURN = []string{"turn:" + hostPort + "?transport=udp", "turn:" + hostPort + "?transport=tcp"}
		if a := ts.TLSAddr(); a != nil {
			ice.TURN = append(ice.TURN, "turns:"+net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))+"?transport=tcp")
		}
		ice.Secret = secret
		r.cfg.Logger.Info("embedded TURN", "udp+tcp", hostPort)
	}
	if ext := r.cfg.ExternalTURN; len(ext.URLs) > 0 {
		// External TURN replaces the embedded one's URLs; its secret is its own.
		ice.STUN, ice.TURN = nil, nil
		for _, u := range ext.URLs {
			ice.TURN = append(ice.TURN, expandTURN(u)...)
			if host, ok := strings.CutPrefix(u, "turn:"); ok {
				host, _, _ = strings.Cut(host, "?")
				ice.STUN = appendNew(ice.STUN, "stun:"+host)
			}
		}
		ice.Secret = []byte(ext.Secret)
	}
	return nil
}

func (r *runner) stopTURN(context.Context) error {
	if r.turn == nil {
		return nil
	}
	return r.turn.Close()
}

// listen binds HTTPAddr, settles the URLs devices may sign and builds the relay and its server.
func (r *runner) listen(context.Context) error {
	l, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	cfg := r.cfg
	cfg.URLs = hubURLs(cfg.URLs, l.Addr().(*net.TCPAddr), cfg.HTTPAddr, cfg.PublicIP, cfg.TLS != nil)
	srv, err := newServer(cfg)
	if err != nil {
		l.Close()
		return err
	}
	cfg.Logger.Info("devices authenticate for", "urls", strings.Join(cfg.URLs, " "))
	srv.turn.p.Store(r.turn)
	if r.cluster != nil {
		if err := r.cluster.start(srv); err != nil {
			l.Close()
			return err
		}
	}
	r.l, r.srv = l, srv
	r.hs = httpguard.NewServer(httpguard.Headers(srv.Handler()), cfg.Logger)
	r.hs.TLSConfig = cfg.TLS
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	r.url = fmt.Sprintf("%s://%s/", scheme, l.Addr())
	return nil
}

func (r *runner) serve(context.Context) error {
	// Config.MaxConnsPerSource bounds the open HTTP connections (sockets included) of one address
	// or IPv6 /64: viewers behind one NAT fit, a socket flood from one place does not. Device
	// links leave the count once authenticated (Server.admitted).
	hl := httpguard.LimitListener(r.l, r.srv.cfg.MaxConnsPerSource, r.cfg.Trust.Proxies, nil)
	var err error
	if r.cfg.TLS != nil {
		err = r.hs.ServeTLS(hl, "", "")
	} else {
		err = r.hs.Serve(hl)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdown ends the device links and viewer sessions (the relay's Close), then the server.
func (r *runner) shutdown(ctx context.Context) error {
	r.srv.Close()
	sctx, cancel := context.WithTimeout(ctx, shutdownWait)
	defer cancel()
	_ = r.hs.Shutdown(sctx)
	_ = r.l.Close() // in case Serve never took it
	return nil
}

// hubURLs are the URLs devices may have dialled to reach this hub (what their signed challenge
// answers must name): the given ones (Validate checked them), or ws[s]://HOST:PORT for the
// listen address's host (every local address when it listens on all of them, and "localhost"
// on loopback) and the public IP.
func hubURLs(given []string, bound *net.TCPAddr, httpAddr, publicIP string, tls bool) []string {
	var out []string
	add := func(u string) {
		if c, err := auth.CanonicalHubURL(u); err == nil {
			out = appendNew(out, c)
		}
	}
	if len(given) > 0 {
		for _, u := range given {
			add(u)
		}
		return out
	}
	scheme := "ws://"
	if tls {
		scheme = "wss://"
	}
	port := strconv.Itoa(bound.Port)
	var ips []net.IP
	if host, _, _ := net.SplitHostPort(httpAddr); host != "" && !bound.IP.IsUnspecified() {
		if ip := net.ParseIP(host); ip == nil {
			add(scheme + net.JoinHostPort(host, port)) // a name given as the listen address
		}
		ips = append(ips, bound.IP)
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	if ip := net.ParseIP(publicIP); ip != nil {
		ips = append(ips, ip)
	}
	for _, ip := range ips {
		if ip.IsLinkLocalUnicast() {
			continue
		}
		if ip.IsLoopback() {
			add(scheme + net.JoinHostPort("localhost", port))
		}
		add(scheme + net.JoinHostPort(ip.String(), port))
	}
	return out
}

// expandTURN offers both transports for a TURN URL that names none, so clients whose network
// drops UDP still reach the relay over TCP.
func expandTURN(u string) []string {
	if strings.Contains(u, "?transport=") || strings.HasPrefix(u, "turns:") {
		return []string{u}
	}
	return []string{u + "?transport=udp", u + "?transport=tcp"}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
