package bench

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/p2pcast/p2pcast/internal/cli"
)

func TestLatencyStagesJoinOnCaptureTime(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	const c0 = 1_763_712_345_678_901
	samples := []pageSample{
		// Joined exactly: capture 0, encoded +3 ms, sent +3.5 ms, received +4 ms, presented +6 ms.
		{CaptureUS: c0, PresentMS: 6, Display60MS: 10, DecodeMS: 1, JitterMS: f(1), ReceiveEpochMS: f(c0/1000.0 + 4)},
		// The device's µs is one off the strip's.
		{CaptureUS: c0 + 33_334, PresentMS: 7, Display60MS: 11, DecodeMS: 2, JitterMS: f(0), ReceiveEpochMS: f((c0+33_334)/1000.0 + 5)},
		// Unknown to the device: page stages only.
		{CaptureUS: c0 + 66_667, PresentMS: 8, Display60MS: 12, DecodeMS: 3},
	}
	frames := map[int64]frameTimes{
		c0:          {CaptureUS: c0, EncodedUS: c0 + 3000, ReceivedUS: c0 + 3100, SentUS: c0 + 3500},
		c0 + 33_333: {CaptureUS: c0 + 33_333, EncodedUS: c0 + 33_333 + 2000, SentUS: 0}, // nobody watching yet
	}
	rep := &latencyReport{StagesMS: map[string]Percentiles{}}
	b := &latencyBench{pageBench: pageBench{log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	b.stages(rep, samples, frames)

	if rep.PresentMS.Samples != 3 || rep.PresentMS.P50 != 7 || rep.Display60MS.Max != 12 {
		t.Errorf("present %+v, display %+v", rep.PresentMS, rep.Display60MS)
	}
	want := map[string]Percentiles{
		"capture_to_encoded": {P50: 3, P95: 3, P99: 3, Max: 3, Samples: 2}, // 3 and 2 ms, sorted: 2, 3
		"encoded_to_sent":    {P50: 0.5, P95: 0.5, P99: 0.5, Max: 0.5, Samples: 1},
		"sent_to_received":   {P50: 0.5, P95: 0.5, P99: 0.5, Max: 0.5, Samples: 1},
		"jitter_buffer":      {P50: 1, P95: 1, P99: 1, Max: 1, Samples: 2},
		"decode":             {P50: 2, P95: 3, P99: 3, Max: 3, Samples: 3},
	}
	for name, w := range want {
		if got := roundPercentiles(rep.StagesMS[name]); got != w {
			t.Errorf("%s = %+v, want %+v", name, got, w)
		}
	}
	if len(rep.StagesMS) != len(want) {
		t.Errorf("stages %v", rep.StagesMS)
	}

	// Without the device's frames only the page's stages remain.
	rep = &latencyReport{StagesMS: map[string]Percentiles{}}
	b.stages(rep, samples, nil)
	if len(rep.StagesMS) != 2 || rep.StagesMS["decode"].Samples != 3 || rep.StagesMS["jitter_buffer"].Samples != 2 {
		t.Errorf("without /api/frames: stages %v", rep.StagesMS)
	}
}

func TestTailWriterKeepsTheEnd(t *testing.T) {
	w := &tailWriter{max: 8}
	_, _ = io.WriteString(w, "hello ")
	_, _ = io.WriteString(w, "world, again")
	if got := w.String(); got != "d, again" {
		t.Errorf("tail = %q, want %q", got, "d, again")
	}
}

func TestRunRefusesUnknownBenchmarks(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"latency", "extra"}, {"latency", "--size", "100x100"}, {"viewers", "--bogus"}} {
		if err := Run(t.Context(), args, io.Discard, io.Discard); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("Run(%q) = %v, want a usage error", args, err)
		}
	}
}
