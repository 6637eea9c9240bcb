// Package bench holds p2pcast's benchmarks, run as `p2pcast bench NAME [flags]`: viewers (many
// WHEP viewers load one device), latency (capture → present in headless Chromium, by stage,
// and time to first frame), avsync (audio/video sync as headless Chromium presents it) and relay
// (a TURN server's CPU per relayed packet, embedded vs coturn). Each starts its own device from the running binary
// (`p2pcast device`), prints its figures on stderr (and a table or one JSON line last on
// stdout), and returns cli.ErrUsage for bad flags. devices (devices.go) is the hub's: it starts
// `p2pcast hub` instead and plays thousands of devices from one process. Browser benchmarks re-execute the running binary
// in a private network namespace with only loopback (see reexecInNetns), so that nothing leaves
// the machine; the parts they share (startDevice, launchBrowser, openPage) live here for the next
// one.
package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/p2pcast/p2pcast/internal/cli"
)

// Run runs the benchmark args[0] with the flags that follow. It returns flag.ErrHelp after
// printing a help text.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "viewers":
			return viewers(ctx, args[1:], stdout, stderr)
		case "latency":
			return latency(ctx, args[1:], stdout, stderr)
		case "avsync":
			return avsync(ctx, args[1:], stdout, stderr)
		case "input":
			return inputBenchmark(ctx, args[1:], stdout, stderr)
		case "relay":
			return relay(ctx, args[1:], stdout, stderr)
		case "devices":
			return devicesBench(ctx, args[1:], stdout, stderr)
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, usage)
			return flag.ErrHelp
		}
	}
	return fmt.Errorf("%w: want 'bench viewers', 'bench latency', 'bench avsync', 'bench input', 'bench relay' or 'bench devices' (see 'p2pcast bench --help')", cli.ErrUsage)
}

const usage = `Usage: p2pcast bench <benchmark> [flags]

Benchmarks:
  viewers  load-test a device with many WHEP viewers
  latency  capture → present latency in headless Chromium, by stage, and time to first frame
           (runs in a private network namespace with only loopback: needs root)
  avsync   audio/video sync (test tone beep vs test pattern flash) as headless Chromium
           presents it (private network namespace too: needs root)
  input    a key pressed in headless Chromium → the changed pixels presented there, on a
           Wayland desktop it starts (headless sway); a static desktop's CPU, a changing
           one's frame rate (private network namespace: needs root)
  relay    a TURN server's CPU per relayed packet: the embedded one (p2pcast hub) beside
           Debian's coturn, on the same load of allocations on loopback
  devices  many device links from one address (as behind a carrier-grade NAT) to a hub it
           starts: the hub's memory per link, and how long until all link again after a
           restart

Run 'p2pcast bench <benchmark> --help' for its flags.
`

// Percentiles summarises samples.
type Percentiles struct {
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
}

// sorted returns a sorted copy of v and its nearest-rank percentile (v must not be empty).
func sorted(v []float64) (s []float64, at func(p float64) float64) {
	s = slices.Clone(v)
	slices.Sort(s)
	return s, func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s)-1)+0.5))] }
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	s, at := sorted(v)
	return Percentiles{P50: at(0.5), P95: at(0.95), P99: at(0.99), Max: s[len(s)-1], Samples: len(s)}
}

// roundPercentiles keeps two decimals (10 µs): the clocks are not finer than that.
func roundPercentiles(p Percentiles) Percentiles {
	r := func(v float64) float64 { return math.Round(v*100) / 100 }
	p.P50, p.P95, p.P99, p.Max = r(p.P50), r(p.P95), r(p.P99), r(p.Max)
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
