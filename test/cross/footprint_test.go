//go:build cross

package cross

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/test/testbin"
)

// The board's budgets (issue 12; docs/performance.md "Footprint").
const (
	sizeBudget      = 10_000_000 // bytes, the stripped armv7 device build
	idleBudget      = 12 << 20   // RSS, producer connected, no viewer
	fourBudget      = 24 << 20   // RSS with 4 viewers of 720p30 at 2 Mbit/s
	perViewerBudget = 512 << 10  // RSS per added viewer
)

// memConfigs are the runtime settings measured: the device build's own (GOGC=25 and a
// 40 MiB limit unless the environment says otherwise: commands_device.go, docs/board.md), and
// Go's defaults for comparison.
var memConfigs = []struct{ name, env string }{
	{"device", ""},
	{"go-defaults", "GOGC=100 GOMEMLIMIT=off"},
}

// footprintRuns is how many times each configuration is measured; the medians are reported
// (the machine is shared and noisy). P2PCAST_FOOTPRINT_RUNS overrides it.
const footprintRuns = 3

// TestFootprint prints the board's footprint: the armv7 binary's size and what is big in it,
// and the device build's memory (measured natively: under qemu the emulator's own memory
// would count) with the producer connected and 0, 1, 4 and 8 viewers. `make bench-footprint`
// runs it; it prints, and fails only when it cannot measure.
func TestFootprint(t *testing.T) {
	if os.Getenv("P2PCAST_FOOTPRINT") != "1" {
		t.Skip("a benchmark: make bench-footprint")
	}
	host := testbin.Dir(t)
	tags := os.Getenv("P2PCAST_DEVICE_TAGS")
	if tags == "" {
		tags = "device,nethttpomithttp2"
	}
	t.Logf("machine: %s, %d CPUs, %s; device build tags %s", cpuModel(), runtime.NumCPU(), runtime.Version(), tags)

	armBin := filepath.Join(host, "linux-arm", "p2pcast")
	st, err := os.Stat(armBin)
	if err != nil {
		t.Fatalf("%v (run make cross)", err)
	}
	t.Logf("size: %s (armv7, stripped): %d bytes (%.2f MiB), budget %d: %s",
		armBin, st.Size(), float64(st.Size())/(1<<20), sizeBudget, verdict(st.Size() <= sizeBudget))
	t.Log("largest packages of the armv7 device build (symbol bytes; the binary adds ~60 % for its pc tables):\n" +
		packageSizes(t, tags, 20))

	dev := filepath.Join(t.TempDir(), "p2pcast-device")
	build(t, "", tags, dev, "-ldflags=-s -w")
	runs := footprintRuns
	if n, err := strconv.Atoi(os.Getenv("P2PCAST_FOOTPRINT_RUNS")); err == nil && n > 0 {
		runs = n
	}
	for _, c := range memConfigs {
		t.Run(c.name, func(t *testing.T) {
			var ms []memory
			for i := range runs {
				m := measureMemory(t, host, dev, c.env)
				t.Logf("run %d: %s", i+1, m)
				ms = append(ms, m)
			}
			reportMemory(t, c.env, ms)
		})
	}
}

// memory is one run's device RSS at each step, the per-viewer slope and the device's CPU.
type memory struct {
	idle, one, four, eight rss
	perViewer              float64 // bytes per added viewer: the least-squares slope over 1, 4, 8
	cpu                    float64 // % of a core from 1 to 8 viewers
}

func (m memory) String() string {
	return fmt.Sprintf("idle %.1f, 1 viewer %.1f, 4 viewers %.1f, 8 viewers %.1f MiB (max RSS); %.2f MiB per viewer; CPU %.1f %%",
		mib(m.idle.max), mib(m.one.max), mib(m.four.max), mib(m.eight.max), m.perViewer/(1<<20), m.cpu)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	var mx, my float64
	for i := range xs {
		mx += xs[i] / float64(len(xs))
		my += ys[i] / float64(len(ys))
	}
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	return num / den
}

// median is the median of what f takes from each run.
func median[T cmp.Ordered](ms []memory, f func(memory) T) T {
	v := make([]T, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// reportMemory prints the medians of the runs against the budgets.
func reportMemory(t *testing.T, env string, ms []memory) {
	label := env
	if label == "" {
		label = "the device build's own settings (GOGC=25, GOMEMLIMIT=40MiB)"
	}
	maxOf := func(f func(memory) rss) func(memory) int64 { return func(m memory) int64 { return f(m).max } }
	anonOf := func(f func(memory) rss) func(memory) int64 { return func(m memory) int64 { return f(m).anon } }
	line := func(name string, f func(memory) rss) string {
		return fmt.Sprintf("%-26s max %5.1f MiB (anonymous %4.1f MiB, the rest the binary's pages)",
			name, mib(median(ms, maxOf(f))), mib(median(ms, anonOf(f))))
	}
	idle := median(ms, maxOf(func(m memory) rss { return m.idle }))
	four := median(ms, maxOf(func(m memory) rss { return m.four }))
	per := median(ms, func(m memory) float64 { return m.perViewer })
	t.Logf("device RSS, %s, median of %d runs:", label, len(ms))
	t.Logf("  %s  budget 12 MiB: %s", line("idle, producer connected:", func(m memory) rss { return m.idle }), verdict(idle <= idleBudget))
	t.Logf("  %s", line("1 viewer:", func(m memory) rss { return m.one }))
	t.Logf("  %s  budget 24 MiB: %s", line("4 viewers:", func(m memory) rss { return m.four }), verdict(four <= fourBudget))
	t.Logf("  %s", line("8 viewers:", func(m memory) rss { return m.eight }))
	t.Logf("  per added viewer (slope over 1, 4, 8): %.2f MiB  budget 0.5 MiB: %s", per/(1<<20), verdict(per <= perViewerBudget))
	t.Logf("  device CPU from 1 to 8 viewers: %.1f %% of a core", median(ms, func(m memory) float64 { return m.cpu }))
}

// measureMemory runs the device build with env (KEY=VALUE …), a 720p30 2 Mbit/s producer and
// `p2pcast view` clients on loopback (retransmission on: they negotiate NACK), and returns
// the device's RSS at each step.
func measureMemory(t *testing.T, host, dev, env string) memory {
	sock := filepath.Join(t.TempDir(), "capture.sock")
	args := []string{"device", "--http", "127.0.0.1:0", "--source", "socket", "--socket", sock}
	// P2PCAST_FOOTPRINT_DEVICE_ARGS adds device flags, to measure what a feature costs (e.g.
	// --ice-tcp-port -1: no ICE over TCP).
	args = append(args, strings.Fields(os.Getenv("P2PCAST_FOOTPRINT_DEVICE_ARGS"))...)
	cmd := exec.Command(dev, args...)
	cmd.Env = append(os.Environ(), strings.Fields(env)...)
	cmd.Stderr = io.Discard
	d := start(t, "device", cmd)
	// Each run's processes end with it (the test's cleanup would keep them running, and
	// loading the machine, through the next runs): viewers first, the device last.
	procs := []*proc{d}
	defer func() {
		for _, p := range slices.Backward(procs) {
			p.stop()
		}
	}()
	url := firstLine(t, d.stdout, 20*time.Second)
	// The busy pattern makes the encoder spend its whole bitrate (the bars need a fifth of it).
	producer := exec.Command(filepath.Join(host, "p2pcast-capture"), "--socket", sock,
		"--size", "1280x720", "--fps", "30", "--bitrate", "2M", "--pattern", "busy", "--audio-in", "testtone")
	producer.Stderr = io.Discard
	procs = append(procs, start(t, "producer", producer))
	pid := d.cmd.Process.Pid

	settle := 5 * time.Second
	time.Sleep(settle) // no event says "settled": the runtime's heap and the first GOP fill up
	idle := sample(t, pid, 5*time.Second)
	cpu0, at0 := cpuTime(t, pid), time.Now()
	var viewers int
	add := func(n int) {
		for range n {
			viewers++
			v := exec.Command(filepath.Join(host, "p2pcast"), "view", url)
			v.Stderr = io.Discard
			procs = append(procs, start(t, fmt.Sprintf("viewer %d", viewers), v))
		}
		waitSessions(t, url, viewers)
		time.Sleep(settle)
	}
	add(1)
	one := sample(t, pid, 5*time.Second)
	add(3)
	four := sample(t, pid, 5*time.Second)
	add(4)
	eight := sample(t, pid, 5*time.Second)
	cpu := (cpuTime(t, pid) - cpu0).Seconds() / time.Since(at0).Seconds() * 100
	return memory{
		idle: idle, one: one, four: four, eight: eight, cpu: cpu,
		perViewer: slope([]float64{1, 4, 8}, []float64{float64(one.max), float64(four.max), float64(eight.max)}),
	}
}

// rss is a series of resident-set samples of one process.
type rss struct{ max, mean, anon int64 }

func (r rss) String() string {
	return fmt.Sprintf("max %5.1f MiB, mean %5.1f MiB (anonymous %4.1f MiB, the rest the binary's pages)",
		float64(r.max)/(1<<20), float64(r.mean)/(1<<20), float64(r.anon)/(1<<20))
}

// sample reads pid's VmRSS every 100 ms for d.
func sample(t *testing.T, pid int, d time.Duration) rss {
	t.Helper()
	var r rss
	var n, sum int64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		total, anon := statusRSS(t, pid)
		sum += total
		n++
		if total > r.max {
			r.max, r.anon = total, anon
		}
	}
	r.mean = sum / n
	return r
}

// statusRSS is pid's resident set and its anonymous part, in bytes (/proc/PID/status).
func statusRSS(t *testing.T, pid int) (total, anon int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("the device is gone: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			total = kb << 10
		case "RssAnon:":
			anon = kb << 10
		}
	}
	return total, anon
}

// cpuTime is the user and system time pid has used (/proc/PID/stat, in clock ticks of 10 ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces: the fields counted from its closing parenthesis.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// waitSessions polls the device's status until n sessions are connected: it has no event to
// wait on from outside.
func waitSessions(t *testing.T, url string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(strings.TrimSuffix(url, "/") + "/api/status")
		if err == nil {
			var st struct {
				Sessions []json.RawMessage `json:"sessions"`
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && len(st.Sessions) >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers did not connect within 30 s (last error %v)", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// build builds ./cmd/p2pcast with tags into out, for goarch ("" = this machine's).
func build(t *testing.T, goarch, tags, out string, flags ...string) {
	t.Helper()
	args := append([]string{"build", "-tags", tags, "-trimpath", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, "./cmd/p2pcast")...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+goarch, "GOARM=7")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// packageSizes builds the armv7 device binary with its symbols and sums their sizes by
// package, leaving out what takes no room in the file (bss): the n largest, one a line, then
// the sections.
func packageSizes(t *testing.T, tags string, n int) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "p2pcast-arm-symbols")
	build(t, "arm", tags, bin)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	var total int64
	pkgOf := regexp.MustCompile(`^((?:[^/]*/)*[^.]*)`)
	for _, s := range syms {
		if int(s.Section) >= len(f.Sections) || f.Sections[s.Section].Type == elf.SHT_NOBITS {
			continue
		}
		sums[pkgOf.FindString(s.Name)] += int64(s.Size)
		total += int64(s.Size)
	}
	pkgs := slices.Collect(maps.Keys(sums))
	slices.SortFunc(pkgs, func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
	var sb strings.Builder
	for _, p := range pkgs[:min(n, len(pkgs))] {
		fmt.Fprintf(&sb, "  %9d  %s\n", sums[p], p)
	}
	fmt.Fprintf(&sb, "  %9d  all %d packages' symbols\n  sections:", total, len(pkgs))
	for _, name := range []string{".text", ".rodata", ".gopclntab", ".noptrdata", ".data"} {
		if sec := f.Section(name); sec != nil {
			fmt.Fprintf(&sb, " %s %d", name, sec.Size)
		}
	}
	return sb.String()
}

func verdict(ok bool) string {
	if ok {
		return "within"
	}
	return "OVER"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
