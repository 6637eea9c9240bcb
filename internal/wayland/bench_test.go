package wayland

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/sway"
)

// cpuTicks is a process's user+system CPU time in clock ticks (1/100 s), from /proc.
func cpuTicks(b *testing.B, pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and stime are 14 and 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// benchInput runs op b.N times against a headless sway with a weston-eventdemo window (so
// that events reach a client) and reports sway's CPU per op beside the client's own.
func benchInput(b *testing.B, op func(d *Desktop, i int) error) {
	s := sway.Start(b)
	d, err := Open(s.Display(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	s.Run("weston-eventdemo", "-b")
	deadline := time.Now().Add(10 * time.Second)
	for _, window := focusedApp(s); !window; _, window = focusedApp(s) { // mapped: no event says so
		if time.Now().After(deadline) {
			b.Fatal("weston-eventdemo did not map")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := cpuTicks(b, s.PID())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(d, i); err != nil {
			b.Fatal(err)
		}
		if i%256 == 255 {
			if err := d.c.roundtrip(callTimeout); err != nil { // keep sway's backlog bounded
				b.Fatal(err)
			}
		}
	}
	if err := d.c.roundtrip(callTimeout); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTicks(b, s.PID())-start)*1e7/float64(b.N), "sway-ns/op")
}

func BenchmarkMoveAbs(b *testing.B) {
	benchInput(b, func(d *Desktop, i int) error { return d.MoveAbs(float64(i%1000)/1000, 0.5) })
}

func BenchmarkKey(b *testing.B) {
	benchInput(b, func(d *Desktop, i int) error { return d.Key(keyA, i%2 == 0) })
}
