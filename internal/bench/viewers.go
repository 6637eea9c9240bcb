package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// viewersReport is the one JSON line `bench viewers --json` prints.
type viewersReport struct {
	Viewers         int         `json:"viewers"`
	JoinIntervalMS  float64     `json:"join_interval_ms"`
	Succeeded       int         `json:"succeeded"`
	Size            string      `json:"size"`
	FPS             int         `json:"fps"`
	Bitrate         string      `json:"bitrate"`
	LossPctMax      float64     `json:"loss_pct_max"`
	LostPackets     uint64      `json:"lost_packets"`
	FPSMin          float64     `json:"fps_min"`
	FPSMedian       float64     `json:"fps_median"`
	FirstKeyframeMS Percentiles `json:"first_keyframe_ms"`
	// DeviceFirstSentMS is the device's own share: session created (POST read) → first keyframe
	// written. The rest of first_keyframe_ms is the viewers' side, all in this one process.
	DeviceFirstSentMS Percentiles `json:"device_first_sent_ms"`
	DeviceCPUPct      float64     `json:"device_cpu_pct,omitempty"`
	// DeviceUSPerPacket is the device's CPU time per packet it sent (media, retransmissions and
	// probes), over a steady window once every viewer has joined.
	DeviceUSPerPacket float64 `json:"device_us_per_packet,omitempty"`
	DevicePacketsPerS float64 `json:"device_packets_per_s,omitempty"`
	// DeviceDirectPct is the share of those packets that went below Pion's stack (a shared
	// UDP port's sessions: internal/srtpdirect).
	DeviceDirectPct float64    `json:"device_direct_pct,omitempty"`
	DeviceRSSMiB    float64    `json:"device_rss_mib,omitempty"`
	Load            [3]float64 `json:"load"`
	Errors          []string   `json:"errors,omitempty"`
}

func viewers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("bench viewers", "bench viewers [flags]", stderr)
	n := fs.Int("viewers", 50, "concurrent WHEP viewers")
	duration := fs.Duration("duration", 10*time.Second, "how long each viewer watches after its first frame")
	url := fs.String("url", "", "WHEP URL of a running device (default: start one with the test pattern)")
	size := fs.String("size", "1280x720", "test pattern size, when starting a device")
	fps := fs.Int("fps", 30, "test pattern fps, when starting a device")
	bitrate := fs.String("bitrate", "2M", "test pattern bitrate, when starting a device")
	joinEvery := fs.Duration("join-interval", 0, "time between two viewers' joins (0: all at once)")
	asJSON := fs.Bool("json", false, "print exactly one JSON line, last on stdout")
	udpPort := fs.Int("ice-udp-port", 0, "the device shares one UDP port for every viewer, when starting a device (0: a port per viewer)")
	cpus := fs.String("device-cpus", "", "pin the device to these CPUs (taskset list, e.g. 0), when starting a device")
	pattern := fs.String("pattern", "", "test pattern (bars, busy), when starting a device (default: the device's)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	rep := viewersReport{Viewers: *n, Size: *size, FPS: *fps, Bitrate: *bitrate, JoinIntervalMS: float64(joinEvery.Milliseconds())}
	var devPID int
	if *url == "" {
		// Every bench viewer comes from 127.0.0.1: one source, which may hold at most three
		// quarters of the device's slots.
		extra := []string{"--max-viewers", fmt.Sprint(max(*n+10, *n*4/3+1)), "--max-per-source", fmt.Sprint(*n)}
		if *udpPort > 0 {
			extra = append(extra, "--ice-udp-port", fmt.Sprint(*udpPort))
		}
		if *pattern != "" {
			extra = append(extra, "--pattern", *pattern)
		}
		dev, err := startDevice(ctx, deviceOptions{size: *size, fps: *fps, bitrate: *bitrate, extra: extra, cpus: *cpus})
		if err != nil {
			return err
		}
		defer dev.stop()
		*url = dev.url + "whep"
		devPID = dev.pid()
	}
	fmt.Fprintf(stderr, "bench viewers: %d viewers of %s for %s\n", *n, *url, *duration)
	cpu0, t0 := procCPU(devPID), time.Now()
	results := make([]viewer.Result, *n)
	errs := make([]error, *n)
	var wg sync.WaitGroup
	for i := range *n {
		if i > 0 && *joinEvery > 0 {
			select {
			case <-time.After(*joinEvery):
			case <-ctx.Done():
			}
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, *duration+20*time.Second)
			defer cancel()
			results[i], errs[i] = viewer.Watch(cctx, viewer.Options{WHEPURL: *url, Duration: *duration})
		})
	}
	// From a quarter to three quarters of the watch, every viewer is watching: the device's
	// CPU per packet over that window, and its view of each join.
	var deviceFirst []float64
	statusURL := strings.TrimSuffix(*url, "whep") + "api/status"
	var cpuA, pktA, directA float64
	var tA time.Time
	select {
	case <-time.After(*duration / 4):
		if st, err := fetchStatus(ctx, statusURL); err == nil {
			cpuA, pktA, directA, tA = procCPU(devPID), sentPackets(st), directPackets(st), time.Now()
		}
	case <-ctx.Done():
	}
	select {
	case <-time.After(*duration / 2):
		if st, err := fetchStatus(ctx, statusURL); err == nil {
			for _, s := range st.Sessions {
				if s.FirstSentMS > 0 {
					deviceFirst = append(deviceFirst, s.FirstSentMS)
				}
			}
			if pkts := sentPackets(st) - pktA; devPID != 0 && !tA.IsZero() && pkts > 0 {
				rep.DeviceUSPerPacket = 1e6 * (procCPU(devPID) - cpuA) / pkts
				rep.DevicePacketsPerS = pkts / time.Since(tA).Seconds()
				rep.DeviceDirectPct = 100 * (directPackets(st) - directA) / pkts
			}
		}
	case <-ctx.Done():
	}
	wg.Wait()
	rep.DeviceFirstSentMS = percentiles(deviceFirst)
	if devPID != 0 {
		rep.DeviceCPUPct = 100 * (procCPU(devPID) - cpu0) / time.Since(t0).Seconds()
		rep.DeviceRSSMiB = procRSSMiB(devPID)
	}
	var fpsAll, firstKey []float64
	rep.FPSMin = 1e9
	rep.Errors = distinctErrors(errs)
	for i, r := range results {
		if errs[i] != nil {
			continue
		}
		rep.Succeeded++
		rep.LossPctMax = max(rep.LossPctMax, r.LossPct)
		rep.LostPackets += r.Lost
		rep.FPSMin = min(rep.FPSMin, r.FPS)
		fpsAll = append(fpsAll, r.FPS)
		firstKey = append(firstKey, r.FirstKeyframeMS)
	}
	if rep.Succeeded == 0 {
		rep.FPSMin = 0
	}
	rep.FPSMedian = percentiles(fpsAll).P50
	rep.FirstKeyframeMS = percentiles(firstKey)
	rep.Load = loadAvg()
	fmt.Fprintf(stderr, "%d/%d viewers ok; loss max %.3f%% (%d packets); fps min %.1f median %.1f; first keyframe after POST p50 %.0f p95 %.0f max %.0f ms (device's share p50 %.0f p95 %.0f); device CPU %.0f%% (%.2f µs per packet at %.0f packets/s, %.0f%% below Pion), RSS %.0f MiB; load %.2f\n",
		rep.Succeeded, rep.Viewers, rep.LossPctMax, rep.LostPackets, rep.FPSMin, rep.FPSMedian,
		rep.FirstKeyframeMS.P50, rep.FirstKeyframeMS.P95, rep.FirstKeyframeMS.Max,
		rep.DeviceFirstSentMS.P50, rep.DeviceFirstSentMS.P95, rep.DeviceCPUPct, rep.DeviceUSPerPacket, rep.DevicePacketsPerS, rep.DeviceDirectPct, rep.DeviceRSSMiB, rep.Load[0])
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
	}
	if rep.Succeeded == 0 {
		return fmt.Errorf("no viewer received anything")
	}
	return nil
}

// sentPackets is every packet the device's sessions have sent: media and retransmissions
// (probes count as retransmissions' kin: copies of sent packets).
func sentPackets(st device.Status) float64 {
	var n uint64
	for _, s := range st.Sessions {
		n += s.Packets
		if s.Network != nil {
			n += s.Network.Retransmitted + s.Network.ProbePackets
		}
	}
	return float64(n)
}

// directPackets is how many SRTP packets the device wrote below Pion's stack.
func directPackets(st device.Status) float64 {
	if st.Direct == nil {
		return 0
	}
	return float64(st.Direct.Packets)
}

// distinctErrors lists each error message once, in order of first appearance, with how many
// viewers hit it: 300 viewers refused alike make one line, not 300.
func distinctErrors(errs []error) []string {
	var order []string
	count := map[string]int{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		msg := err.Error()
		if count[msg] == 0 {
			order = append(order, msg)
		}
		count[msg]++
	}
	out := make([]string, len(order))
	for i, msg := range order {
		out[i] = msg
		if n := count[msg]; n > 1 {
			out[i] = fmt.Sprintf("%d viewers: %s", n, msg)
		}
	}
	return out
}
