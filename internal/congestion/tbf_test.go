package congestion

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// Token-bucket bottlenecks, as the network lab shapes a viewer with Linux
// `tc qdisc tbf rate R burst 4096 latency 400ms`: the bucket lets 4 KB through at line
// rate, then packets wait in a 400 ms drop-tail queue. Two things went wrong there: a
// viewer starting far above the link kept its estimate there for seconds (the first
// keyframe fills the queue at once, and a full queue has a constant delay), and probes
// small enough to ride the bucket's burst "succeeded" far above the link.
//
// The estimator does not meet these yet: a change that did (a standing queue counted as
// overuse, probes of at least 12 KB judged on their later half) passed them here but left
// the real lab worse (an 800 kbit/s link used at 190 kbit/s, an estimate collapsed after a
// 4 → 0.8 Mbit/s step), so it was taken back. They run with P2PCAST_TBF=1 as the bar for the
// next attempt: the simulator misses something the lab has (docs/adaptation.md, known gaps).

// knownTBFGap skips the token-bucket scenarios unless asked for.
func knownTBFGap(t *testing.T) {
	t.Helper()
	if os.Getenv("P2PCAST_TBF") == "" {
		t.Skip("known gap (docs/adaptation.md): run with P2PCAST_TBF=1")
	}
}

const (
	tbfBurst   = 4096
	tbfLatency = 400 * time.Millisecond
)

func tbfScenario(rate, app int, d time.Duration) scenario {
	return scenario{
		capacity:  []step{{0, rate}},
		app:       []step{{0, app}},
		queue:     tbfLimit(rate, tbfLatency, tbfBurst),
		burst:     tbfBurst,
		keyframe:  15_000,
		padProbes: true,
		cfg:       Config{Min: 50_000}, // as the device's
		duration:  d,
	}
}

// TestTokenBucketStart: the session starts at 1.5 Mbit/s on a link that takes far less.
// Within 1.5 s the target must be near the link, and after that the queue must stay short
// and the loss small.
func TestTokenBucketStart(t *testing.T) {
	knownTBFGap(t)
	for _, c := range []struct{ rate, app int }{
		{175_000, 400_000},
		{800_000, unlimited},
		{4_000_000, unlimited},
	} {
		t.Run(fmt.Sprintf("%dk", c.rate/1000), func(t *testing.T) {
			const d = 30 * time.Second
			sc := tbfScenario(c.rate, c.app, d)
			if c.rate >= 4_000_000 {
				sc.cfg.Start = 8_000_000 // start above the link here too
			}
			s := runSim(t, sc)
			s.logTrace(t, 0, 4*time.Second, 100*time.Millisecond)
			s.logTrace(t, 4*time.Second, d, time.Second)
			at := s.targetAt(1500 * time.Millisecond)
			loss := s.lossRate(3*time.Second, d)
			p50, p95, top := s.queueDelays(3*time.Second, d)
			var sum, n int
			for _, x := range s.samples {
				if x.at >= 3*time.Second {
					sum += x.target
					n++
				}
			}
			mean := float64(sum) / float64(n) / float64(c.rate)
			t.Logf("tbf %d kbit/s: target at 1.5 s %.2f× the link; 3–30 s: mean target %.2f×, loss %.1f%%, queue p50 %v p95 %v max %v; probes accepted at %v",
				c.rate/1000, float64(at)/float64(c.rate), mean, 100*loss, p50.Round(time.Millisecond),
				p95.Round(time.Millisecond), top.Round(time.Millisecond), s.accepted)
			if float64(at) > 1.2*float64(c.rate) {
				t.Errorf("target %.2f× the link at 1.5 s, want ≤ 1.2×", float64(at)/float64(c.rate))
			}
			if loss > 0.03 {
				t.Errorf("loss %.1f%% over 3–30 s, want < 3%%", 100*loss)
			}
			if p95 > 150*time.Millisecond {
				t.Errorf("queue delay p95 %v over 3–30 s, want < 150 ms", p95)
			}
			if mean < 0.6 {
				t.Errorf("mean target %.2f× the link: the path is wasted", mean)
			}
		})
	}
}

// TestTokenBucketProbes: in steady state on a token bucket, probes must not be taken for
// more than the link carries, whether the sender could use more (probing to recover) or
// sends little (probing while application-limited).
func TestTokenBucketProbes(t *testing.T) {
	knownTBFGap(t)
	for _, c := range []struct {
		rate, app int
		start     int
		known     string // why this case still fails, if it does
	}{
		// Open: a probe at twice a target just below the link (P ≈ 1.2–1.5× the link) is
		// mostly carried by the bucket's 4 KB even over 12 KB, and is taken for ~1.2–1.3×;
		// the overuse that follows builds a ~300 ms queue before the trendline sees it.
		{175_000, 400_000, 150_000, "probe accepted at ~1.3× the link, queue p95 ~290 ms"},
		{175_000, 100_000, 150_000, ""},
		{800_000, unlimited, 700_000, ""},
		{800_000, 400_000, 700_000, ""},
		{4_000_000, unlimited, 3_500_000, ""},
		{4_000_000, 2_000_000, 3_500_000, ""},
	} {
		t.Run(fmt.Sprintf("%dk/app%dk", c.rate/1000, min(c.app, 99_999_000)/1000), func(t *testing.T) {
			const d = 30 * time.Second
			sc := tbfScenario(c.rate, c.app, d)
			sc.keyframe = 0
			sc.cfg.Start = c.start
			s := runSim(t, sc)
			s.logTrace(t, 0, d, 500*time.Millisecond)
			p95 := s.targetP95(0, d)
			_, q95, top := s.queueDelays(0, d)
			hi := 0
			for _, a := range s.accepted {
				hi = max(hi, a)
			}
			st := s.e.Stats()
			t.Logf("tbf %d kbit/s, app %d kbit/s: target p95 %.2f× the link, highest probe %.2f× (%d of %d accepted), queue p95 %v max %v, loss %.1f%%",
				c.rate/1000, c.app/1000, float64(p95)/float64(c.rate), float64(hi)/float64(c.rate),
				st.ProbesSucceeded, st.ProbesSent, q95.Round(time.Millisecond), top.Round(time.Millisecond), 100*s.lossRate(0, d))
			if c.known != "" {
				t.Skipf("known open issue: %s", c.known)
			}
			if float64(hi) > 1.3*float64(c.rate) {
				t.Errorf("a probe set the target to %.2f× the link", float64(hi)/float64(c.rate))
			}
			if float64(p95) > 1.3*float64(c.rate) {
				t.Errorf("target p95 %.2f× the link, want ≤ 1.3×", float64(p95)/float64(c.rate))
			}
		})
	}
}

// TestTokenBucketRecoveryFromASlowLink: 30 s behind a 180 kbit/s bucket, then 4 Mbit/s. The
// target must be back above 1 Mbit/s within 8 s of the link's return, without probes taken
// for more than the slow link carries while it lasted. Today it takes ~24 s: below ~490
// kbit/s a probe is 4 padding packets and cannot be judged, and the hold below the capacity
// measured at the drop keeps the target for 30 s (docs/adaptation.md, "Back from a very slow
// link"); a judgeable small probe rides the bucket's burst instead.
func TestTokenBucketRecoveryFromASlowLink(t *testing.T) {
	knownTBFGap(t)
	const (
		low  = 180_000
		drop = 10 * time.Second
		up   = 40 * time.Second
	)
	sc := tbfScenario(low, unlimited, 70*time.Second)
	sc.capacity = []step{{0, 4_000_000}, {drop, low}, {up, 4_000_000}}
	s := runSim(t, sc)
	s.logTrace(t, up-2*time.Second, up+10*time.Second, 500*time.Millisecond)
	back := s.firstAt(up, func(x sample) bool { return x.target >= 1_000_000 })
	p95 := s.targetP95(drop+5*time.Second, up)
	_, q95, _ := s.queueDelays(drop+5*time.Second, up)
	t.Logf("4 → 0.18 → 4 Mbit/s: target ≥ 1 Mbit/s %v after the link returned; while slow, target p95 %.2f× the link, queue p95 %v",
		back-up, float64(p95)/low, q95.Round(time.Millisecond))
	if back < 0 || back-up > 8*time.Second {
		t.Errorf("target ≥ 1 Mbit/s %v after the link returned, want within 8 s", back-up)
	}
	if float64(p95) > 1.3*low {
		t.Errorf("target p95 %.2f× the slow link, want ≤ 1.3×", float64(p95)/low)
	}
}
