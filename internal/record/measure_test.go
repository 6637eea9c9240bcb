package record

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/stream"
)

// TestMeasureCost (RECORD_MEASURE=1) records a 30 fps, 2 Mbit/s stream with Opus in real
// time for 20 s and reports the process's CPU (the feeder's share included) and the heap
// the recorder holds: docs/performance.md, Recording.
func TestMeasureCost(t *testing.T) {
	if os.Getenv("RECORD_MEASURE") == "" {
		t.Skip("RECORD_MEASURE=1 measures the recorder's cost (20 s)")
	}
	aus, keys := videoAUs(t, 60, 60)
	st := stream.New(stream.Config{})
	st.Attach(testInfo, nil)
	r, err := New(st, Options{Dir: t.TempDir(), Segment: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	pad := bytes.Repeat([]byte{0x55}, 8000) // 8.3 kB a frame: 2 Mbit/s at 30 fps
	for i := 0; time.Since(start) < 20*time.Second; i++ {
		f := stream.NewFrame()
		f.Track, f.Keyframe, f.Capture = 1, keys[i%len(aus)], time.Now().UnixNano()
		f.Data = append(append(append(append(f.Data, aus[i%len(aus)]...), 0, 0, 0, 1, 6, 5), bytes.Repeat([]byte{0xff}, 31)...), 95)
		f.Data = append(append(f.Data, pad...), 0x80)
		st.Publish(f)
		for j := 0; j < 2 && (i*2+j)%3 != 2; j++ { // 50 packets a second
			a := stream.NewFrame()
			a.Track, a.Keyframe, a.Capture = 2, true, time.Now().UnixNano()
			a.Data = append(a.Data, opusPacket...)
			st.Publish(a)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / 30)))
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	elapsed := time.Since(start)
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime)+syscall.TimevalToNsec(ru1.Stime)) -
		time.Duration(syscall.TimevalToNsec(ru0.Utime)+syscall.TimevalToNsec(ru0.Stime))
	s := r.Status()
	t.Logf("%.1f s recorded: CPU %.2f %% of a core (feeder included); heap in use %+.2f MiB, sys %+.2f MiB; %d segments, dropped %d",
		elapsed.Seconds(), 100*cpu.Seconds()/elapsed.Seconds(), float64(int64(during.HeapInuse)-int64(before.HeapInuse))/(1<<20),
		float64(int64(during.Sys)-int64(before.Sys))/(1<<20), s.Segments, s.Dropped)
}
