package hub

import (
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/p2pcast/p2pcast/internal/metrics"
	"github.com/p2pcast/p2pcast/internal/turnserver"
)

// DefaultOpsAllow is who may read the hub's /metrics, /healthz and /readyz by default: this
// machine.
var DefaultOpsAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// opsPaths are the operator's endpoints (docs/operations.md).
var opsPaths = metrics.Paths

// turnRef is the embedded TURN server, once Run started it (nil: none, or not yet).
type turnRef struct {
	p atomic.Pointer[turnserver.Server]
}

// opsHandler serves /metrics, /healthz and /readyz to Config.OpsAllow.
func (s *Server) opsHandler() http.Handler {
	return s.onlyFrom(func(l *hubLive) []netip.Prefix { return l.opsAllow }, metrics.Ops(s.writeMetrics, s.notReady)) // reloadable (reload.go)
}

// notReady says why the hub cannot serve now ("" when it can).
func (s *Server) notReady() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return "shutting down"
	}
	return ""
}

// writeMetrics writes the hub's metrics (the names are listed in docs/operations.md).
func (s *Server) writeMetrics(w *metrics.Writer) {
	const g, c = metrics.Gauge, metrics.Counter
	w.Family("p2pcast_build_info", g, "The running build: 1, labelled with its version and role.",
		metrics.Sample{Labels: []string{"version", s.cfg.Version, "role", "hub"}, Value: 1})
	s.mu.Lock()
	devices := len(s.devices)
	conns := make([]*deviceConn, 0, devices)
	for _, d := range s.devices {
		conns = append(conns, d)
	}
	s.mu.Unlock()
	sessions := 0
	for _, d := range conns {
		d.mu.Lock()
		sessions += len(d.sessions)
		d.mu.Unlock()
	}
	w.One("p2pcast_hub_devices_online", g, "Devices connected to the hub.", float64(devices))
	w.One("p2pcast_hub_viewer_sessions", g, "Viewer sessions whose signaling the hub relays now.", float64(sessions))
	if s.cluster != nil {
		s.cluster.writeMetrics(w)
	}
	counts := s.audit.eventCounts()
	events := []metrics.Sample{}
	for _, e := range []string{EventDeviceConnected, EventDeviceDisconnected, EventAuthFailed, EventSessionStarted, EventSessionResumed, EventSessionEnded, EventRefused} {
		events = append(events, metrics.Sample{Labels: []string{"event", e}, Value: float64(counts[e])})
	}
	w.Family("p2pcast_hub_events_total", c, "Audit-log events by kind (refusals and failed authentications counted one by one, though the log aggregates them).", events...)
	if s.relays != nil {
		var up, held []metrics.Sample
		for _, r := range s.relays.states() {
			v := 0.0
			if r.up {
				v = 1
			}
			up = append(up, metrics.Sample{Labels: []string{"relay", r.host}, Value: v})
			held = append(held, metrics.Sample{Labels: []string{"relay", r.host}, Value: float64(r.sessions)})
		}
		w.Family("p2pcast_hub_relay_up", g, "External TURN relays: 1 if the last health checks answered.", up...)
		w.Family("p2pcast_hub_relay_sessions", g, "Sessions (viewers, device links) of this hub holding each external TURN relay.", held...)
	}
	if t := s.turn.p.Load(); t != nil {
		up, down := t.Relayed()
		w.One("p2pcast_turn_allocations", g, "Live TURN allocations of the embedded server.", float64(t.Allocations()))
		w.Family("p2pcast_turn_relayed_bytes_total", c, "Bytes the embedded TURN server relayed, by direction.",
			metrics.Sample{Labels: []string{"direction", "client_to_peer"}, Value: float64(up)},
			metrics.Sample{Labels: []string{"direction", "peer_to_client"}, Value: float64(down)})
		w.One("p2pcast_turn_auth_failures_total", c, "TURN requests with bad or expired credentials.", float64(t.AuthFailures()))
		w.Family("p2pcast_turn_refused_total", c, "TURN requests refused, by cause.",
			metrics.Sample{Labels: []string{"cause", "peer"}, Value: float64(t.PeerRefusals())},
			metrics.Sample{Labels: []string{"cause", "allocation"}, Value: float64(t.AllocationRefusals())})
		w.One("p2pcast_turn_bandwidth_drops_total", c, "Relayed packets dropped over a user's bandwidth limit.", float64(t.BandwidthDrops()))
	}
}
