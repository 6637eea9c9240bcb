package adapt

import (
	"testing"
	"time"
)

var (
	main720 = Rendition{Track: 1, Width: 1280, Height: 720, FPS: 30, Bitrate: 2_000_000, CanBitrate: true, CanFPS: true}
	sub360  = Rendition{Track: 4, Width: 640, Height: 360, FPS: 30, Bitrate: 500_000, CanBitrate: true, CanFPS: true}
)

// run feeds the policy rounds every 500 ms for d, applying its switches, with estimates from
// est(viewer, t); it returns the viewers as they end and every event.
func run(t *testing.T, p *Policy, start time.Time, d time.Duration, rs []Rendition, vs []Viewer, est func(id string, at time.Duration) int) ([]Viewer, []Event) {
	t.Helper()
	var events []Event
	for at := time.Duration(0); at <= d; at += 500 * time.Millisecond {
		for i := range vs {
			vs[i].Estimate = est(vs[i].ID, at)
		}
		dec := p.Decide(start.Add(at), rs, vs)
		for i := range vs {
			if to, ok := dec.Switches[vs[i].ID]; ok {
				vs[i].Rendition = to
			}
		}
		for _, e := range dec.Events {
			t.Logf("%5.1fs %s", at.Seconds(), e)
		}
		events = append(events, dec.Events...)
	}
	return vs, events
}

func encoder(p *Policy, track uint8) Encoder {
	for _, e := range p.Encoders() {
		if e.Track == track {
			return e
		}
	}
	return Encoder{}
}

func TestOneViewerLowersTheEncoderInsteadOfSwitching(t *testing.T) {
	p := New(Config{})
	t0 := time.Unix(1000, 0)
	vs := []Viewer{{ID: "a", Rendition: 1, Audio: true}}
	vs, _ = run(t, p, t0, 5*time.Second, []Rendition{main720, sub360}, vs, func(string, time.Duration) int { return 800_000 })
	if vs[0].Rendition != 1 {
		t.Fatalf("the only viewer moved to the sub stream; the main encoder should slow down instead")
	}
	e := encoder(p, 1)
	if want := usableAt30(800_000); e.Bitrate != want || e.FPS != 30 {
		t.Fatalf("main encoder %+v, want %d bit/s at 30 fps", e, want)
	}
	// The network recovers: the bitrate climbs back to the configured rate, in steps.
	run(t, p, t0.Add(6*time.Second), 5*time.Second, []Rendition{main720, sub360}, vs, func(string, time.Duration) int { return 4_000_000 })
	if e := encoder(p, 1); e.Bitrate != 2_000_000 {
		t.Fatalf("main encoder %+v after recovery, want 2 Mbit/s", e)
	}
}

func TestSlowViewerTakesTheSubStream(t *testing.T) {
	p := New(Config{})
	t0 := time.Unix(1000, 0)
	vs := []Viewer{{ID: "fast", Rendition: 1}, {ID: "slow", Rendition: 1}}
	slow := 800_000
	est := func(id string, _ time.Duration) int {
		if id == "fast" {
			return 20_000_000
		}
		return slow
	}
	vs, _ = run(t, p, t0, 3*time.Second, []Rendition{main720, sub360}, vs, est)
	if vs[0].Rendition != 1 || vs[1].Rendition != 4 {
		t.Fatalf("renditions %+v: the fast viewer keeps main, the slow one takes sub", vs)
	}
	if e := encoder(p, 1); e.Bitrate != 2_000_000 || e.FPS != 30 {
		t.Fatalf("main encoder %+v: the fast viewer holds it at full rate", e)
	}
	if e := encoder(p, 4); e.Bitrate != 500_000 {
		t.Fatalf("sub encoder %+v: the slow viewer takes its full rate", e)
	}
	// The slow viewer's link recovers: it returns to main after UpHold, not before.
	slow = 4_000_000
	vs, events := run(t, p, t0.Add(4*time.Second), 2*time.Second, []Rendition{main720, sub360}, vs, est)
	if vs[1].Rendition != 4 || len(events) != 0 {
		t.Fatalf("switched up within 2 s: %+v %v", vs, events)
	}
	vs, _ = run(t, p, t0.Add(7*time.Second), 2*time.Second, []Rendition{main720, sub360}, vs, est)
	if vs[1].Rendition != 1 {
		t.Fatalf("did not return to main: %+v", vs)
	}
}

func TestNoFlapping(t *testing.T) {
	p := New(Config{})
	t0 := time.Unix(1000, 0)
	vs := []Viewer{{ID: "fast", Rendition: 1}, {ID: "b", Rendition: 1}}
	// b's estimate swings: it can take main for a while, then not; each failed step up
	// makes the next wait twice as long.
	est := func(id string, at time.Duration) int {
		if id == "fast" {
			return 20_000_000
		}
		if (at/(4*time.Second))%2 == 0 {
			return 800_000
		}
		return 4_000_000
	}
	_, events := run(t, p, t0, 60*time.Second, []Rendition{main720, sub360}, vs, est)
	switches := 0
	for _, e := range events {
		if e.What == "switch" {
			switches++
		}
	}
	// Without backoff: a switch down and up every 8 s (15 in a minute).
	if switches > 8 {
		t.Fatalf("%d switches in a minute", switches)
	}
	if vs := p.viewers["b"]; vs.upHold <= p.cfg.UpHold {
		t.Fatalf("up hold %v did not grow after failed steps up", vs.upHold)
	}
}

// TestUpIsARealStep: a lone viewer that fell to the sub stream behind 800 kbit/s does not
// go back to main while main would run at little more than the sub's full rate (behind a
// token bucket the estimate swings around such a threshold, and each switch is a keyframe of
// the larger picture); it does once main would get twice the sub's rate.
func TestUpIsARealStep(t *testing.T) {
	p := New(Config{})
	t0 := time.Unix(1000, 0)
	vs := []Viewer{{ID: "a", Rendition: 4}}
	est := 800_000
	vs, events := run(t, p, t0, 30*time.Second, []Rendition{main720, sub360}, vs, func(string, time.Duration) int { return est })
	if vs[0].Rendition != 4 || len(events) > 1 {
		t.Fatalf("at 800 kbit/s: rendition %d, events %v; want the sub stream and no switch", vs[0].Rendition, events)
	}
	if u := p.usable(Viewer{Estimate: est}); u < int(float64(p.floorOf(main720))*p.cfg.UpMargin) {
		t.Fatalf("usable %d: the test needs an estimate above main's floor × UpMargin", u)
	}
	est = 1_600_000
	vs, _ = run(t, p, t0.Add(31*time.Second), 5*time.Second, []Rendition{main720, sub360}, vs, func(string, time.Duration) int { return est })
	if vs[0].Rendition != 1 {
		t.Fatalf("at 1.6 Mbit/s: rendition %d, want main", vs[0].Rendition)
	}
}

func TestFarBelowSwitchesAtOnce(t *testing.T) {
	p := New(Config{})
	vs := []Viewer{{ID: "a", Rendition: 1, Estimate: 250_000, Audio: true}}
	d := p.Decide(time.Unix(1000, 0), []Rendition{main720, sub360}, vs)
	if d.Switches["a"] != 4 {
		t.Fatalf("decision %+v: 250 kbit/s cannot carry main even at its floor", d)
	}
	if e := encoder(p, 4); e.Bitrate != usableAt30(250_000) {
		t.Fatalf("sub encoder %+v", e)
	}
}

func TestFrameRateStepsDownWithoutASubStream(t *testing.T) {
	p := New(Config{})
	vs := []Viewer{{ID: "a", Rendition: 1, Estimate: 280_000, Audio: true}}
	p.Decide(time.Unix(1000, 0), []Rendition{main720}, vs)
	e := encoder(p, 1)
	// 720p30 needs 221 kbit/s for full rate at 0.008 bit/pixel; 171 kbit/s holds 20 fps.
	if e.Bitrate != usableAt30(280_000) || e.FPS != 20 {
		t.Fatalf("encoder %+v, want %d bit/s at 20 fps", e, usableAt30(280_000))
	}
	vs[0].Estimate = 4_000_000
	for i := range 10 {
		p.Decide(time.Unix(1001+int64(i), 0), []Rendition{main720}, vs)
	}
	if e := encoder(p, 1); e.Bitrate != 2_000_000 || e.FPS != 30 {
		t.Fatalf("encoder %+v after recovery", e)
	}
}

func TestViewerWithoutEstimateHoldsFullRate(t *testing.T) {
	p := New(Config{})
	vs := []Viewer{{ID: "legacy", Rendition: 1}, {ID: "slow", Rendition: 1, Estimate: 600_000}}
	for i := range 4 {
		d := p.Decide(time.Unix(1000+int64(i), 0), []Rendition{main720, sub360}, vs)
		for id, to := range d.Switches {
			for j := range vs {
				if vs[j].ID == id {
					vs[j].Rendition = to
				}
			}
		}
	}
	if vs[0].Rendition != 1 || vs[1].Rendition != 4 {
		t.Fatalf("%+v", vs)
	}
	if e := encoder(p, 1); e.Bitrate != 2_000_000 {
		t.Fatalf("main %+v", e)
	}
}

func TestFixedEncoderIsLeftAlone(t *testing.T) {
	p := New(Config{})
	fixed := main720
	fixed.CanBitrate, fixed.CanFPS = false, false
	d := p.Decide(time.Unix(1000, 0), []Rendition{fixed}, []Viewer{{ID: "a", Rendition: 1, Estimate: 300_000}})
	if len(d.Encoders) != 0 || len(d.Switches) != 0 {
		t.Fatalf("%+v", d)
	}
}

// usableAt30 is a viewer's usable video rate with audio at 30 fps, by the documented rule:
// 85 % of the estimate, less 40 kbit/s of audio and each packet's 70 bytes of headers.
func usableAt30(estimate int) int {
	u := float64(estimate)*0.85 - 40_000
	return int((u - 30*70*8) / (1 + 70.0/1200))
}

// TestRaiseFollowsAHeldEstimate: a jump of the estimate (a probe fooled by a bottleneck's
// burst allowance) that is gone a round later does not raise the encoder; a cut is at once.
func TestRaiseFollowsAHeldEstimate(t *testing.T) {
	p := New(Config{})
	t0 := time.Unix(1000, 0)
	vs := []Viewer{{ID: "a", Rendition: 1}}
	est := func(_ string, at time.Duration) int {
		if at == 3*time.Second {
			return 4_000_000 // one round's spike
		}
		return 1_000_000
	}
	run(t, p, t0, 6*time.Second, []Rendition{main720}, vs, est)
	if e, want := encoder(p, 1), usableAt30(1_000_000)+40_000*1000/1058; e.Bitrate > want {
		t.Fatalf("encoder %+v followed a one-round spike (want at most %d)", e, want)
	}
}

// A viewer sent forward error correction leaves its encoder that much less room.
func TestProtectionLeavesLessForVideo(t *testing.T) {
	p := New(Config{})
	t0 := time.Unix(1000, 0)
	vs := []Viewer{{ID: "a", Rendition: 1, Audio: true, Protection: 0.25}}
	run(t, p, t0, 3*time.Second, []Rendition{main720, sub360}, vs, func(string, time.Duration) int { return 800_000 })
	if e, want := encoder(p, 1), int(float64(usableAt30(800_000))/1.25); e.Bitrate != want {
		t.Fatalf("main encoder %+v with 25 %% FEC, want %d bit/s", e, want)
	}
}
