package device

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/web"
)

// maxConnsPerSource bounds open HTTP connections (page, WHEP, signaling sockets) from one
// address or IPv6 /64: enough for a LAN's viewers behind one NAT and for `bench viewers`, far
// from what exhausts the device.
const maxConnsPerSource = 256

// handler is the device's own HTTP surface, with the protections of internal/httpguard: a Host
// allowlist (DNS rebinding), CORS only for listed origins, security headers (CSP), and the
// viewer gate on every endpoint that reveals or does anything.
func (d *Device) handler(ctx context.Context) http.Handler {
	ops := d.opsHandler()
	if d.cfg.lanOff() {
		// A device only a hub reaches serves nothing to viewers here: just the operator's
		// endpoints (to the addresses allowed to read them) and the management page.
		mux := http.NewServeMux()
		for _, p := range opsPaths {
			mux.Handle("GET "+p, ops)
		}
		d.registerManage(mux)
		return d.guarded(func(l *liveSettings) http.Handler { return httpguard.Hosts(l.AllowHosts, httpguard.Headers(mux)) })
	}
	opts := signal.Options{Gate: d.gate, CheckOrigin: d.checkOrigin, Logger: d.log}
	whep := signal.NewWHEP(backend{d: d}, "/whep", opts)
	mux := http.NewServeMux()
	whep.Register(mux)
	mux.Handle("GET /ws", signal.NewWebSocket(ctx, backend{d: d}, opts))
	mux.HandleFunc("GET /api/status", d.status)
	mux.HandleFunc("GET /api/frames", d.frames)
	for _, p := range opsPaths {
		mux.Handle("GET "+p, ops)
	}
	mux.HandleFunc("GET /api/events", d.eventsAPI)
	d.registerManage(mux) // manage.go
	mux.Handle("GET /", http.FileServerFS(web.Files))
	// The lists reload (manage.go): the guards are made again when they change.
	return d.guarded(func(l *liveSettings) http.Handler {
		var h http.Handler = mux
		if len(l.AllowOrigins) > 0 {
			h = httpguard.CORS(l.AllowOrigins, signal.CORSMethods, signal.CORSHeaders, signal.CORSExpose, h)
		}
		return httpguard.Hosts(l.AllowHosts, httpguard.Headers(h))
	})
}

// allowed admits an HTTP API request by its bearer token and checks it holds grant g,
// answering the refusal itself.
func (d *Device) allowed(w http.ResponseWriter, r *http.Request, g auth.Grant) bool {
	a, err := d.gate.Admit(signal.BearerToken(r))
	if err == nil && !a.Has(g) {
		err = fmt.Errorf("%w: this needs the %s grant", signal.ErrForbidden, g)
		d.counters.refused(err)
	}
	if err != nil {
		code := http.StatusForbidden
		if errors.Is(err, signal.ErrUnauthorized) {
			code = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Bearer realm="p2pcast"`)
		}
		http.Error(w, err.Error(), code)
		return false
	}
	return true
}

// lanGate admits LAN viewers by token: a viewer token (a JWT), verified offline, by the same
// auth.Verify as the hub's, against the device's own keys and the hub's, naming this device,
// not revoked.
type lanGate struct {
	v auth.Verifier
}

// The keys are the device's own store's (its pairing links; reread when they rotate), the
// hub's key given on the command line, and the hub's key set in a file.
func newLANGate(c *LANAuth, revoked func(string) bool) lanGate {
	var keys auth.KeySources
	if c.Store != nil {
		keys = append(keys, c.Store)
	}
	if len(c.HubKeys) > 0 {
		var set auth.KeySet
		for _, k := range c.HubKeys {
			set = append(set, auth.VerifyKey{KID: auth.Thumbprint(k), Issuer: auth.LocalIssuer, Public: slices.Clone(k)})
		}
		keys = append(keys, set)
	}
	if c.HubKeyFile != "" {
		keys = append(keys, &auth.KeyFile{Path: c.HubKeyFile, Issuer: auth.LocalIssuer})
	}
	return lanGate{v: auth.Verifier{Keys: keys, DeviceID: c.ID, Revoked: revoked}}
}

func (lanGate) Required() bool { return true }

func (g lanGate) Admit(token string) (auth.Access, error) {
	if token == "" {
		return auth.Access{}, fmt.Errorf("%w: this device needs a token (open its pairing link, or use `p2pcast token`)", signal.ErrUnauthorized)
	}
	a, err := g.v.Verify(token, time.Now())
	switch {
	case err == nil:
		return a, nil
	case errors.Is(err, auth.ErrWrongDevice):
		return auth.Access{}, fmt.Errorf("%w: %v", signal.ErrForbidden, err)
	default:
		return auth.Access{}, fmt.Errorf("%w: %v", signal.ErrUnauthorized, err)
	}
}

// revocations are the token ids the device refuses: the hub's list (replaced whole at each
// update) and the device's own store's (LAN tokens it signed).
type revocations struct {
	hub, local map[string]bool
}

func (d *Device) isRevoked(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked.hub[id] || d.revoked.local[id]
}

// setHubRevoked takes the hub's list and ends the sessions of tokens on it.
func (d *Device) setHubRevoked(ids []string) { d.setRevoked(&d.revoked.hub, slices.Values(ids)) }

// setRevoked replaces one of the lists (under d.mu) and ends the sessions of tokens on it.
func (d *Device) setRevoked(list *map[string]bool, ids iter.Seq[string]) {
	m := map[string]bool{}
	for id := range ids {
		m[id] = true
	}
	d.mu.Lock()
	*list = m
	d.mu.Unlock()
	d.endRevoked()
}

// localRevokedPoll is how often the device rereads its own store's revocation list (written
// by `p2pcast token revoke --data DIR` in another process).
const localRevokedPoll = time.Second

func (d *Device) watchLocalRevocations(ctx context.Context) {
	t := time.NewTicker(localRevokedPoll)
	defer t.Stop()
	for {
		if list, err := d.cfg.LANAuth.Store.Revoked(time.Now()); err != nil {
			d.log.Warn("revocation list", "err", err)
		} else {
			d.setRevoked(&d.revoked.local, maps.Keys(list)) // a pass over the sessions: no need to diff
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// endRevoked ends every session whose token is revoked.
func (d *Device) endRevoked() {
	d.mu.Lock()
	var end []*peer.Session
	for s := range d.sessions {
		if id := s.Access().TokenID; id != "" && (d.revoked.hub[id] || d.revoked.local[id]) {
			end = append(end, s)
		}
	}
	d.mu.Unlock()
	for _, s := range end {
		s.End(peer.ReasonRevoked)
	}
}
