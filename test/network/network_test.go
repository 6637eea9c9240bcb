//go:build network

package network

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/wire"
)

// Device flags of the adaptive sender (issue "Watchable on real networks"), being added by other
// engineers. A test that needs one the device lacks fails at once and names it.
const (
	// flagAdaptOff turns the sender's adaptation off: TestShapedLink's control run. A device that
	// has no such flag does not adapt at all, so that run goes without it (and says so).
	flagAdaptOff = "--adapt=false"
	// flagPattern and busyPattern choose the busy test pattern: content that costs bits, where
	// today's pattern sends ~0.44 Mbit/s at --bitrate 2M and so does not fill an 800 kbit/s link.
	flagPattern = "--pattern"
	busyPattern = "busy"
	// flagSub and subSize ask for the sub rendition an adaptive device switches a viewer to
	// when its link cannot carry the main one.
	flagSub = "--sub"
	subSize = "640x360"
)

// deviceRetransmitField matches the names of the device's per-session counters of
// retransmissions in GET /api/status (the sender decides the exact name; any of these does).
var deviceRetransmitField = regexp.MustCompile(`(?i)retrans|rtx`)

var (
	// baseDeviceFlags is the stream every test watches: 720p30 at 2 Mbit/s.
	baseDeviceFlags = []string{"--size", "1280x720", "--fps", "30", "--bitrate", "2M"}
	// adaptiveFlags are added to every device expected to adapt: main and sub renditions.
	adaptiveFlags = []string{flagSub, subSize}
)

// What "watchable" means ("Done when"), and how the tests measure it.
const (
	minFPS   = 24  // frames decoded per second, on average over the window
	maxP95MS = 150 // capture → present, 95th percentile, ms
	// unconstrainedFor is how long a viewer plays unshaped to measure the rate the stream needs.
	unconstrainedFor = 8 * time.Second
	// shareOfRate: the constrained link carries this share of the unconstrained rate.
	shareOfRate = 0.4
	// settle is left out after a change: the sender's time to notice and adapt.
	settle = 5 * time.Second
	// measureFor is the window the criteria are judged on.
	measureFor = 20 * time.Second
	// controlFor is the adaptation-off window: long enough to show a freeze or a stall.
	controlFor = 10 * time.Second
	slowLink   = 800_000   // bit/s
	fastLink   = 4_000_000 // bit/s
	// recoverWithin and restoreWithin are TestBandwidthStep's deadlines.
	recoverWithin = 2 * time.Second
	restoreWithin = 10 * time.Second
	// lossShare and lossRunFor are TestRandomLoss's: 2 % random loss, at most one freeze in
	// 30 s after the settle (the issue's ≤ 1 per minute, twice as strict). The join itself is
	// logged, not held to it: a lost packet of the first keyframe sometimes freezes the
	// picture once or twice in its first seconds (docs/adaptation.md, known gaps).
	lossShare  = 0.02
	lossRunFor = 30 * time.Second
	maxFreezes = 1
)

// TestUnconstrained checks the harness on today's device: an unshaped viewer plays 1280x720 at
// the full frame rate with no freeze and a small capture → present delay. If this fails, the
// other tests measure nothing.
func TestUnconstrained(t *testing.T) {
	n := newLab(t)
	n.startDevice()
	v := n.browserViewer("viewer")
	first := v.playing(t)
	m := v.measure(t, first.at.Add(3*time.Second), 15*time.Second)
	t.Logf("%s unconstrained: %s", v.name, m)
	m.watchable(t, v.name)
	if m.minW != 1280 || m.lastH != 720 {
		errorf(t, "%s: width %.0f..%.0f, last %.0fx%.0f; want 1280x720 throughout", v.name, m.minW, m.maxW, m.lastW, m.lastH)
	}
	v.heardOf(t, 1280)
}

// unconstrained measures what the viewer's link carries, unshaped, for unconstrainedFor after
// its first frame, and returns the link's rate in bit/s.
func (n *netLab) unconstrained(v *viewer) float64 {
	n.t.Helper()
	first := v.playing(n.t)
	m := v.measure(n.t, first.at, unconstrainedFor)
	n.t.Logf("%s unconstrained: %s", v.name, m)
	if m.linkBPS <= 0 {
		fatalf(n.t, "%s: the link carried nothing in %s", v.name, unconstrainedFor)
	}
	return m.linkBPS
}

// TestShapedLink: behind a link of 40 % of the rate the stream takes unconstrained, an adaptive
// device's viewer plays without a freeze at ≥ 24 fps with capture → present p95 ≤ 150 ms; the
// same device with adaptation off does not (the control: the link really constrains).
func TestShapedLink(t *testing.T) {
	t.Run("adaptive", func(t *testing.T) {
		n := newLab(t)
		n.startDevice(adaptiveFlags...)
		v := n.browserViewer("viewer")
		rate := int64(shareOfRate * n.unconstrained(v))
		at := n.shape(v.link, rate)
		m := v.measure(t, at.Add(settle), measureFor)
		t.Logf("%s behind %s, in the first %s after shaping (not held to the target): %s", v.name, kbit(float64(rate)), settle, v.between(t, at, at.Add(settle)))
		t.Logf("%s behind %s, from %s after shaping: %s", v.name, kbit(float64(rate)), settle, m)
		n.logStatus("at the end")
		m.watchable(t, v.name)
	})
	t.Run("adaptation-off", func(t *testing.T) {
		n := newLab(t)
		var flags []string
		if n.deviceFlags()["adapt"] {
			flags = []string{flagAdaptOff}
		} else {
			t.Logf("p2pcast device has no --adapt flag yet: it does not adapt, so it runs as it is")
		}
		n.startDevice(flags...)
		v := n.browserViewer("viewer")
		rate := int64(shareOfRate * n.unconstrained(v))
		at := n.shape(v.link, rate)
		m := v.measure(t, at.Add(settle), controlFor)
		t.Logf("%s behind %s without adaptation, from %s after shaping: %s", v.name, kbit(float64(rate)), settle, m)
		n.logStatus("at the end")
		if m.d.freezes == 0 && m.fps >= minFPS {
			errorf(t, "%s played without adaptation behind %s (%.1f fps, no freeze): the shaped link does not constrain the stream, so the adaptive run proves nothing", v.name, kbit(float64(rate)), m.fps)
		}
	})
}

// TestShapedBusy: the busy pattern through 800 kbit/s plays as TestShapedLink's adaptive run.
func TestShapedBusy(t *testing.T) {
	n := newLab(t)
	n.startDevice(append(slices.Clone(adaptiveFlags), flagPattern, busyPattern)...)
	v := n.browserViewer("viewer")
	n.unconstrained(v) // for the log: what the busy pattern takes
	at := n.shape(v.link, slowLink)
	m := v.measure(t, at.Add(settle), measureFor)
	t.Logf("%s behind %s, from %s after shaping: %s", v.name, kbit(slowLink), settle, m)
	n.logStatus("at the end")
	m.watchable(t, v.name)
}

// TestTwoViewers: one device, two Chromium viewers, one behind 800 kbit/s from the start: the
// unconstrained one keeps 1280x720 at ≥ 24 fps without a freeze; the constrained one plays a
// smaller picture (the sub rendition) at ≥ 24 fps without a freeze. One slow viewer must not
// cost the others their picture.
func TestTwoViewers(t *testing.T) {
	n := newLab(t)
	n.startDevice(append(slices.Clone(adaptiveFlags), flagPattern, busyPattern)...)
	fast := n.browserViewer("fast")
	slowLinkOf := n.lan.Add("slow")
	n.shape(slowLinkOf, slowLink)
	slow := n.openPage(slowLinkOf)
	fast.playing(t)
	first := slow.playing(t)
	from := first.at.Add(settle)
	mf := fast.measure(t, from, measureFor)
	ms := slow.measure(t, from, measureFor)
	t.Logf("fast, unconstrained: %s", mf)
	t.Logf("slow, behind %s: %s", kbit(slowLink), ms)
	n.logStatus("at the end")

	if mf.d.freezes > 0 {
		errorf(t, "fast: %.0f freezes, want none", mf.d.freezes)
	}
	if mf.fps < minFPS {
		errorf(t, "fast: %.1f fps, want at least %d", mf.fps, minFPS)
	}
	if mf.minW != 1280 || mf.maxW != 1280 || mf.lastH != 720 {
		errorf(t, "fast: width %.0f..%.0f (last %.0fx%.0f), want 1280x720 throughout", mf.minW, mf.maxW, mf.lastW, mf.lastH)
	}
	if ms.d.freezes > 0 {
		errorf(t, "slow: %.0f freezes, want none", ms.d.freezes)
	}
	if ms.fps < minFPS {
		errorf(t, "slow: %.1f fps, want at least %d", ms.fps, minFPS)
	}
	if ms.maxW >= 1280 || ms.minW <= 0 {
		errorf(t, "slow: width %.0f..%.0f, want a smaller picture than 1280 wide (the %s sub rendition) throughout", ms.minW, ms.maxW, subSize)
	}
	fast.heardOf(t, 1280)
	if !slices.ContainsFunc(slow.heardOf(t, 0), func(d wire.Decision) bool { return d.What == "switch" }) {
		errorf(t, "slow: the page was told of no switch to the sub rendition")
	}
}

// TestBandwidthStep: 4 Mbit/s → 0.8 Mbit/s mid-stream: from 2 s after the drop, no new freeze
// and ≥ 24 fps (frames must flow again: freezeCount only counts a freeze once it has ended);
// back to 4 Mbit/s: the picture is 1280 wide again within 10 s.
func TestBandwidthStep(t *testing.T) {
	n := newLab(t)
	n.startDevice(append(slices.Clone(adaptiveFlags), flagPattern, busyPattern)...)
	link := n.lan.Add("viewer")
	n.shape(link, fastLink)
	v := n.openPage(link)
	first := v.playing(t)
	before := v.measure(t, first.at, unconstrainedFor)
	t.Logf("at %s: %s", kbit(fastLink), before)

	drop := n.shape(link, slowLink)
	after := v.measure(t, drop.Add(recoverWithin), measureFor/2)
	t.Logf("at %s, from %s after the drop: %s", kbit(slowLink), recoverWithin, after)
	if after.maxW >= 1280 {
		t.Logf("the picture stayed 1280 wide at %s (no switch to the sub rendition): the restore check below shows nothing", kbit(slowLink))
	}
	if after.d.freezes > 0 {
		errorf(t, "%.0f freezes from %s after the drop on, want none", after.d.freezes, recoverWithin)
	}
	if after.fps < minFPS {
		errorf(t, "%.1f fps from %s after the drop on, want at least %d", after.fps, recoverWithin, minFPS)
	}

	up := n.shape(link, fastLink)
	s, ok := v.rec.waitFor(restoreWithin+sampleEvery, func(s sample) bool { return s.at.After(up) && s.pageOK && s.width >= 1280 })
	switch {
	case !ok:
		errorf(t, "back at %s: the picture is %.0fx%.0f %s after, want 1280 wide within %s", kbit(fastLink), s.width, s.height, time.Since(up).Round(time.Second), restoreWithin)
	case s.at.Sub(up) > restoreWithin+sampleEvery/2:
		// A sample is taken once a second: half a period of slack for where it fell.
		errorf(t, "back at %s: 1280 wide only after %s, want within %s", kbit(fastLink), s.at.Sub(up).Round(100*time.Millisecond), restoreWithin)
	default:
		t.Logf("back at %s: 1280 wide %s after the change", kbit(fastLink), s.at.Sub(up).Round(100*time.Millisecond))
	}
	n.logStatus("at the end")
}

// TestRandomLoss: 2 % random loss of the media toward the viewer, from before it joins: at most
// one freeze in the 30 s after the settle, and the recovery used shows: Chromium sent NACKs,
// the device sent FEC and counts retransmissions for the session. Loss needs no rendition switch, so the device
// runs with the base flags only.
func TestRandomLoss(t *testing.T) {
	n := newLab(t)
	n.startDevice()
	link := n.lan.Add("viewer")
	n.loss(link, lossShare)
	v := n.openPage(link)
	first := v.playing(t)
	join := v.measure(t, first.at, settle)
	m := v.measure(t, first.at.Add(settle), lossRunFor)
	t.Logf("%s with %.0f %% loss, joining (first %s): %s", v.name, 100*lossShare, settle, join)
	t.Logf("%s with %.0f %% loss, from %s after its first frame: %s", v.name, 100*lossShare, settle, m)
	st, err := n.logStatus("after the run")
	if err != nil {
		t.Fatal(err)
	}

	if m.d.freezes > maxFreezes {
		errorf(t, "%s: %.0f freezes in %.0f s, want at most %d", v.name, m.d.freezes, m.seconds, maxFreezes)
	}
	if m.link.Lost.Packets == 0 {
		errorf(t, "the link lost nothing: the loss rule did not act")
	}
	if m.d.nacks == 0 && m.d.fec == 0 {
		errorf(t, "%s: no NACK sent and no FEC received: no recovery visible in getStats", v.name)
	}
	// The viewer negotiated the retransmission stream (RTX) and receives on it. Chromium counts
	// repairs and probes there alike, so this shows the stream works, not how much it repaired
	// (the device's counters below do; TestRetransmissionsGoOnTheirOwnStream checks a repair
	// byte for byte).
	if m.d.nacks > 0 && m.d.rtx == 0 {
		errorf(t, "%s: %.0f NACKs sent and no packet received on the retransmission stream", v.name, m.d.nacks)
	}
	// Loss turns forward error correction on, and the device tells the page how many FEC
	// packets it sent. (Chromium rebuilds packets from ULPFEC but counts it in no getStats
	// field for video: fecPacketsReceived stays 0. That it repairs is shown by running without
	// NACK answers: docs/performance.md.)
	t.Logf("%s: %.0f NACKs sent, %.0f packets received on the retransmission stream (repairs and probes); Chromium's FEC counters %.0f received, %.0f discarded", v.name, m.d.nacks, m.d.rtx, m.d.fec, m.d.fecDiscarded)
	if nv := v.network(t); nv.Report == nil || nv.Report.FEC == 0 {
		errorf(t, "%s: the device reported no FEC packets sent at %.0f %% loss (%+v)", v.name, 100*lossShare, nv.Report)
	} else {
		t.Logf("%s: the device sent %d FEC packets, resent %d", v.name, nv.Report.FEC, nv.Report.Retransmitted)
	}
	fields := map[string]float64{}
	for i, s := range st.Sessions {
		counterFields(s, fmt.Sprintf("sessions[%d]", i), deviceRetransmitField, fields)
	}
	var resent float64
	for _, f := range fields {
		resent += f
	}
	t.Logf("device retransmission counters: %v", fields)
	if resent == 0 {
		errorf(t, "the device's status shows no retransmissions for its sessions (no counter matching %s, or all 0)", deviceRetransmitField)
	}
}

// TestViewCLI: `p2pcast view --stats json` behind 40 % of what it takes unconstrained decodes
// frames; what it reports (the estimate, once the sender has one) is printed.
func TestViewCLI(t *testing.T) {
	n := newLab(t)
	n.startDevice(adaptiveFlags...)
	v := n.cliViewer("cli")
	free, line, end := n.runCLI(v, unconstrainedFor)
	m := v.between(t, end.Add(-unconstrainedFor), end)
	t.Logf("p2pcast view unconstrained: %d frames %dx%d, %.1f fps, %s; link %s; stats %s", free.Frames, free.Width, free.Height, free.FPS, kbit(free.BitrateBPS), kbit(m.linkBPS), line)
	rate := int64(shareOfRate * m.linkBPS)
	if rate <= 0 {
		fatalf(t, "the link carried nothing while p2pcast view ran")
	}
	// Its transport-wide feedback gives the device an estimate, reported back to it.
	if free.Network == nil || free.Network.EstimateBPS <= 0 {
		errorf(t, "p2pcast view --stats json: device report %+v, want one with a bandwidth estimate", free.Network)
	}
	n.shape(v.link, rate)
	r, line, _ := n.runCLI(v, measureFor)
	t.Logf("p2pcast view behind %s: %d frames %dx%d, %.1f fps, %s, lost %.0f; stats %s", kbit(float64(rate)), r.Frames, r.Width, r.Height, r.FPS, kbit(r.BitrateBPS), r.Lost, line)
	if r.Frames == 0 {
		errorf(t, "p2pcast view decoded no frame behind %s", kbit(float64(rate)))
	}
}

// TestLossRecoveryCompared measures what each way of repairing loss buys: the same 2 % random
// loss as TestRandomLoss, with the device's --loss-recovery set to both, FEC only, NACK only and
// none in turn (docs/performance.md, "Forward error correction"). It holds only what no noisy
// run can turn around: repairing by FEC alone plays better than not repairing at all.
func TestLossRecoveryCompared(t *testing.T) {
	rows := []struct {
		name, recovery string
		m              metrics
	}{{name: "NACK and FEC", recovery: "nack,fec"}, {name: "FEC only", recovery: "fec"}, {name: "NACK only", recovery: "nack"}, {name: "none", recovery: "none"}}
	for i := range rows {
		r := &rows[i]
		t.Run(strings.ReplaceAll(r.name, " ", "_"), func(t *testing.T) {
			n := newLab(t)
			n.startDevice("--loss-recovery", r.recovery)
			link := n.lan.Add("viewer")
			n.loss(link, lossShare)
			v := n.openPage(link)
			first := v.playing(t)
			r.m = v.measure(t, first.at.Add(settle), lossRunFor)
			t.Logf("%s: %s", r.name, r.m)
		})
	}
	t.Logf("2 %% random loss, %s after the first frame + %s settle, by --loss-recovery:", lossRunFor, settle)
	t.Logf("%-13s %6s %9s %9s %6s %8s", "recovery", "fps", "worst s", "freezes", "frozen", "nacks")
	for _, r := range rows {
		t.Logf("%-13s %6.1f %9.1f %9.0f %5.1fs %8.0f", r.name, r.m.fps, r.m.minFPS, r.m.d.freezes, r.m.d.freezeS, r.m.d.nacks)
	}
	fecOnly, none := rows[1].m, rows[3].m
	if fecOnly.d.freezeS >= none.d.freezeS && fecOnly.fps <= none.fps {
		errorf(t, "FEC alone played no better than no repair: %.1f fps, %.1f s frozen against %.1f fps, %.1f s", fecOnly.fps, fecOnly.d.freezeS, none.fps, none.d.freezeS)
	}
}
