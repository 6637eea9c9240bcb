package device

import (
	"errors"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/metrics"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/signal"
)

// pairKey is one kind of ICE candidate pair, for p2pcast_sessions_by_pair.
type pairKey struct{ Local, Remote, Protocol string }

// counters are the device's running totals that outlive a session (read by /metrics).
type counters struct {
	sessions atomic.Uint64 // sessions made
	// What ended sessions sent: live sessions' counters are added at scrape time, so the
	// totals never go down when a viewer leaves. A session leaves the live set and adds its
	// totals here under Device.mu, and a scrape reads both under it (sessionsAndEnded): a
	// scrape between the two steps read 0 for a device whose only viewer had just left,
	// which Prometheus takes for a counter reset (TestMetricsAndHealth, one CI run).
	bytes, packets, retransmitted atomic.Uint64
	refusedToken                  atomic.Uint64 // LAN requests without a valid token
	refusedGrant                  atomic.Uint64 // valid tokens lacking the grant
	refusedBusy                   atomic.Uint64 // sessions refused by a cap (viewers, per source)
	refusedRevoked                atomic.Uint64 // sessions refused for a revoked token
}

// sent is what sessions sent, in the counters' units.
type sent struct{ bytes, packets, retransmitted uint64 }

// sessionsAndEnded is the live sessions' stats and what ended sessions sent, read together:
// no session is in both or in neither.
func (d *Device) sessionsAndEnded() ([]peer.Stats, sent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.counters
	return d.sessionStatsLocked(), sent{c.bytes.Load(), c.packets.Load(), c.retransmitted.Load()}
}

// ended adds an ended session's totals (under Device.mu, as it leaves d.sessions).
func (c *counters) ended(st peer.Stats) {
	c.bytes.Add(st.Bytes)
	c.packets.Add(st.Packets)
	var resent uint64
	for _, t := range st.Tracks {
		resent += t.Retransmitted
	}
	c.retransmitted.Add(resent)
}

// refused counts a refusal by its cause.
func (c *counters) refused(err error) {
	switch {
	case errors.Is(err, signal.ErrUnauthorized):
		c.refusedToken.Add(1)
	case errors.Is(err, signal.ErrForbidden), errors.Is(err, peer.ErrForbidden):
		c.refusedGrant.Add(1)
	case errors.Is(err, peer.ErrBusy):
		c.refusedBusy.Add(1)
	}
}

// countingGate counts the gate's refusals.
type countingGate struct {
	signal.Gate
	c *counters
}

func (g countingGate) Admit(token string) (auth.Access, error) {
	a, err := g.Gate.Admit(token)
	if err != nil {
		g.c.refused(err)
	}
	return a, err
}

// DefaultOpsAllow is who may read /metrics, /healthz and /readyz by default: this machine.
var DefaultOpsAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// opsHandler serves the operator's endpoints (docs/operations.md) to the addresses in
// Config.OpsAllow; others get 403 without a word about what is there.
func (d *Device) opsHandler() http.Handler {
	ops := metrics.Ops(d.writeMetrics, d.notReady)
	// --ops-allow reloads (manage.go).
	return d.guarded(func(l *liveSettings) http.Handler { return httpguard.OnlyFrom(l.opsAllow(), httpguard.Trust{}, ops) })
}

// opsPaths are the paths opsHandler serves.
var opsPaths = metrics.Paths

// notReady says why the device cannot serve viewers now ("" when it can): no source yet, or
// its hub link is down (with a hub).
func (d *Device) notReady() string {
	if _, ok := d.stream.Info(); !ok {
		return "no source: the producer or camera has not described its stream"
	}
	if d.cfg.Hub.URL != "" && (d.hub == nil || !d.hub.Connected()) {
		return "not connected to the hub"
	}
	return ""
}

// writeMetrics writes the device's metrics (the names are listed in docs/operations.md).
func (d *Device) writeMetrics(w *metrics.Writer) {
	const g, c = metrics.Gauge, metrics.Counter
	w.Family("p2pcast_build_info", g, "The running build: 1, labelled with its version and role.",
		metrics.Sample{Labels: []string{"version", d.cfg.Version, "role", "device"}, Value: 1})
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	_, attached := d.stream.Info()
	w.One("p2pcast_producer_attached", g, "1 while a producer or camera feeds the stream.", b(attached))
	if d.cfg.Hub.URL != "" {
		w.One("p2pcast_hub_connected", g, "1 while the device is connected to its hub.", b(d.hub != nil && d.hub.Connected()))
	}
	if d.sfu != nil {
		st := d.sfu.Status()
		w.One("p2pcast_sfu_publishing", g, "1 while the device publishes to the SFU (docs/sfu.md).", b(st.Publishing))
		w.One("p2pcast_sfu_viewers", g, "Viewers the SFU serves for the device now (past --p2p-viewers).", float64(st.Viewers))
	}

	sessions, ended := d.sessionsAndEnded()
	states := make([]string, 0, len(sessions))
	var pairs []metrics.Sample
	pairCount := map[pairKey]int{}
	var bytes, packets, resent uint64
	var rttMax, lossMax float64
	var paced int
	for _, s := range sessions {
		states = append(states, s.State)
		if p := s.Pair; p != nil {
			pairCount[pairKey{p.Local, p.Remote, p.Protocol}]++
		}
		bytes += s.Bytes
		packets += s.Packets
		for _, t := range s.Tracks {
			resent += t.Retransmitted
		}
		if n := s.Network; n != nil {
			rttMax, lossMax = max(rttMax, n.RTTMS/1000), max(lossMax, n.Loss)
			if n.Paced {
				paced++
			}
		}
	}
	w.One("p2pcast_viewers", g, "Viewer sessions open now.", float64(len(sessions)))
	w.Family("p2pcast_sessions", g, "Viewer sessions by WebRTC connection state.", metrics.Count("state", states)...)
	for _, k := range slices.SortedFunc(maps.Keys(pairCount), func(a, b pairKey) int {
		return strings.Compare(a.Local+a.Remote+a.Protocol, b.Local+b.Remote+b.Protocol)
	}) {
		pairs = append(pairs, metrics.Sample{Labels: []string{"local", k.Local, "remote", k.Remote, "protocol", k.Protocol}, Value: float64(pairCount[k])})
	}
	w.Family("p2pcast_sessions_by_pair", g, "Connected viewer sessions by ICE candidate pair: the local and remote candidate types (host, srflx, prflx, relay) and the transport.", pairs...)
	w.One("p2pcast_sessions_total", c, "Viewer sessions made since the device started.", float64(d.counters.sessions.Load()))
	w.One("p2pcast_sent_bytes_total", c, "RTP payload and header bytes sent to viewers.", float64(ended.bytes+bytes))
	w.One("p2pcast_sent_packets_total", c, "RTP packets sent to viewers.", float64(ended.packets+packets))
	w.One("p2pcast_retransmitted_packets_total", c, "Packets sent again after a viewer's NACK.", float64(ended.retransmitted+resent))
	w.One("p2pcast_viewer_rtt_max_seconds", g, "The longest round-trip time among viewers (from their receiver reports).", rttMax)
	w.One("p2pcast_viewer_loss_max_ratio", g, "The highest fraction lost among viewers' last video reports.", lossMax)
	w.One("p2pcast_viewers_paced", g, "Viewers whose bandwidth is estimated from transport-wide feedback.", float64(paced))
	w.Family("p2pcast_refused_total", c, "Requests and sessions refused, by cause.",
		metrics.Sample{Labels: []string{"cause", "token"}, Value: float64(d.counters.refusedToken.Load())},
		metrics.Sample{Labels: []string{"cause", "grant"}, Value: float64(d.counters.refusedGrant.Load())},
		metrics.Sample{Labels: []string{"cause", "busy"}, Value: float64(d.counters.refusedBusy.Load())},
		metrics.Sample{Labels: []string{"cause", "revoked"}, Value: float64(d.counters.refusedRevoked.Load())})

	st := d.stream.Stats()
	var frames, fbytes, late []metrics.Sample
	var arrival []metrics.Sample
	for _, t := range st.Tracks {
		l := []string{"track", strconv.Itoa(int(t.ID)), "kind", string(t.Kind), "codec", t.Codec}
		frames = append(frames, metrics.Sample{Labels: l, Value: float64(t.Frames)})
		fbytes = append(fbytes, metrics.Sample{Labels: l, Value: float64(t.Bytes)})
		late = append(late, metrics.Sample{Labels: l, Value: float64(t.LateFrames)})
		arrival = append(arrival, metrics.Sample{Labels: l, Value: t.MaxArrivalMS / 1000})
	}
	w.Family("p2pcast_stream_frames_total", c, "Frames the source published, per track (of the current source: a new source starts again at 0).", frames...)
	w.Family("p2pcast_stream_bytes_total", c, "Bytes the source published, per track.", fbytes...)
	w.Family("p2pcast_stream_late_frames_total", c, "Frames that reached the device late after their capture, per track: a stalling producer.", late...)
	w.Family("p2pcast_stream_max_arrival_seconds", g, "The longest a frame took from capture to the device, per track.", arrival...)
	w.One("p2pcast_stream_keyframes_total", c, "Keyframes the source published.", float64(st.Keyframes))
	w.One("p2pcast_keyframe_requests_total", c, "Keyframe requests sent to the producer (joins, viewers' PLI and FIR, drops).", float64(st.KeyframesAsked))
	w.One("p2pcast_viewer_dropped_frames_total", c, "Frames not queued to a viewer whose queue was full.", float64(st.DroppedForViewers))
	w.One("p2pcast_stream_readers", g, "Readers of the stream (viewers, the recorder).", float64(st.Subscribers))

	if d.cfg.multiSource() {
		d.writeSourceMetrics(w)
	}

	if rs := d.recordStatus(); rs != nil {
		w.One("p2pcast_record_recording", g, "1 while the device records.", b(rs.Recording))
		w.One("p2pcast_record_paused", g, "1 while recording is paused (the disk is below its free-space floor).", b(rs.Paused != ""))
		w.One("p2pcast_record_segments", g, "Closed recording segments kept.", float64(rs.Segments))
		w.One("p2pcast_record_bytes", g, "Bytes of the closed segments kept.", float64(rs.Bytes))
		w.One("p2pcast_record_free_bytes", g, "Free space of the recording directory's file system at the last check.", float64(rs.Free))
		w.One("p2pcast_record_frames_total", c, "Frames the recorder took off the stream.", float64(rs.Frames))
		w.One("p2pcast_record_dropped_total", c, "Frames the recorder missed (a slow disk) or its writer refused.", float64(rs.Dropped))
		w.One("p2pcast_record_open_events", g, "Detection events going on.", float64(rs.OpenEvents))
	}
}
