package rtsp_test

import (
	"context"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/rtsp"
	"github.com/p2pcast/p2pcast/internal/rtsp/rtsptest"
)

// TestMeasure reports the time from Dial to the first keyframe unit and the client's CPU for
// a 720p30 H.264 + PCMA stream. It takes ~20 s and a core for the encoder: run it with
// P2PCAST_RTSP_MEASURE=1.
func TestMeasure(t *testing.T) {
	if os.Getenv("P2PCAST_RTSP_MEASURE") == "" {
		t.Skip("set P2PCAST_RTSP_MEASURE=1 to measure")
	}
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "pcma", Width: 1280, Height: 720, FPS: 30, KBitrate: 2000, Pattern: "snow"})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var firstKey []time.Duration
	for range 7 {
		start := time.Now()
		c, err := rtsp.Dial(ctx, srv.URL, rtsp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			u, err := c.ReadUnit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if u.Track == 0 && u.Keyframe {
				break
			}
		}
		firstKey = append(firstKey, time.Since(start))
		c.Close()
	}
	slices.Sort(firstKey)
	t.Logf("Dial → first keyframe unit over 7 runs: min %v, median %v, max %v", firstKey[0], firstKey[3], firstKey[6])

	c, err := rtsp.Dial(ctx, srv.URL, rtsp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 60 { // settle
		if _, err := c.ReadUnit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before, cpu0 := c.Stats(), cpuTime(t)
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if _, err := c.ReadUnit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wall, cpu := time.Since(start), cpuTime(t)-cpu0
	after := c.Stats()
	var packets, bytes, units uint64
	for i := range after.Tracks {
		packets += after.Tracks[i].Packets - before.Tracks[i].Packets
		bytes += after.Tracks[i].Bytes - before.Tracks[i].Bytes
		units += after.Tracks[i].Units - before.Tracks[i].Units
	}
	t.Logf("720p30 H.264 (%.1f Mbit/s) + PCMA: client CPU %.2f%% of a core (%v per s), %.1f µs per packet (%d packets, %d units in %v)",
		float64(bytes)*8/wall.Seconds()/1e6, 100*cpu.Seconds()/wall.Seconds(), time.Duration(float64(cpu)/wall.Seconds()),
		float64(cpu.Microseconds())/float64(packets), packets, units, wall.Round(time.Millisecond))
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
