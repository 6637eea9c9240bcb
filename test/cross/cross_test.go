//go:build cross

package cross

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/viewer"
	"github.com/p2pcast/p2pcast/test/testbin"
)

// What the test streams: small enough that x264 keeps up under emulation (see docs/board.md).
const (
	width, height = 320, 240
	fps           = 15
	frames        = 45 // 3 s: at least one keyframe (the GOP is 2 s), audio all along
)

// sysroot is where Debian's cross packages put the armhf loader and libc
// (libc6-armhf-cross); the producer's other libraries come from the multiarch armhf packages
// (/usr/lib/arm-linux-gnueabihf, through the host's ld.so.cache).
const sysroot = "/usr/arm-linux-gnueabihf"

func TestDeviceUnderQEMU(t *testing.T) {
	qemu := requireQEMU(t)
	host := testbin.Dir(t)
	arm := filepath.Join(host, "linux-arm")
	device, producer := filepath.Join(arm, "p2pcast"), filepath.Join(arm, "p2pcast-capture")
	for _, bin := range []string{device, producer} {
		requireARM(t, bin)
	}

	// A device build: version says so, and the hub is not in it.
	out, err := exec.Command(qemu, "-L", sysroot, device, "version").Output()
	if err != nil || !strings.Contains(string(out), "device build") {
		t.Fatalf("%s version: %q, %v: want a device build (-tags device)", device, out, err)
	}
	if err := exec.Command(qemu, "-L", sysroot, device, "hub").Run(); exitCode(err) != 2 {
		t.Fatalf("%s hub: %v: want exit 2 (unknown command) in a device build", device, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "capture.sock")
	dev := start(t, "device", exec.Command(qemu, "-L", sysroot, device, "device",
		"--http", "127.0.0.1:0", "--source", "socket", "--socket", sock))
	url := firstLine(t, dev.stdout, 60*time.Second)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("device printed %q, want its http://127.0.0.1:PORT/ URL", url)
	}

	cmd := exec.Command(qemu, "-L", sysroot, producer, "--socket", sock, "--size", strconv.Itoa(width)+"x"+strconv.Itoa(height), "--fps", strconv.Itoa(fps),
		"--audio-in", "testtone")
	// The loader comes from the sysroot: its own libc must come from there too, not the
	// multiarch one the cache names (a loader and a libc of two builds crash at start).
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+sysroot+"/lib")
	start(t, "producer", cmd)

	began := time.Now()
	view := exec.CommandContext(ctx, filepath.Join(host, "p2pcast"), "view", "--frames", strconv.Itoa(frames),
		"--stats", "json", "--timeout", "60s", url)
	var stdout bytes.Buffer
	view.Stdout, view.Stderr = &stdout, os.Stderr
	if err := view.Run(); err != nil {
		t.Fatalf("p2pcast view %s: %v (stdout %q)", url, err, stdout.String())
	}
	var res viewer.Result
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("view's stats %q: %v", stdout.String(), err)
	}
	t.Logf("under qemu: %d frames (%d keyframes) %dx%d at %.1f fps, %.2f Mbit/s, first frame after %.0f ms, loss %.2f%%, "+
		"capture -> receive %.1f ms, view took %s", res.Frames, res.Keyframes, res.Width, res.Height, res.FPS,
		float64(res.BitrateBPS)/1e6, res.TTFFMS, res.LossPct, res.CaptureToReceiveMS, time.Since(began).Round(time.Millisecond))

	if res.Frames < frames {
		t.Errorf("frames = %d, want %d", res.Frames, frames)
	}
	if res.Keyframes < 1 {
		t.Errorf("keyframes = %d, want at least 1", res.Keyframes)
	}
	if res.Width != width || res.Height != height {
		t.Errorf("decoded size %dx%d, want %dx%d (the producer's --size)", res.Width, res.Height, width, height)
	}
	if res.Audio == nil || res.Audio.Codec != "opus" || res.Audio.Packets == 0 {
		t.Errorf("audio = %+v, want the test tone's Opus packets", res.Audio)
	}
	// The events channel (a data channel over SCTP/DTLS) works on ARM too: the device reports
	// the viewer's path on it.
	if res.Network == nil {
		t.Errorf("no network report: the device's events channel sent nothing")
	}
}

// requireQEMU returns qemu-arm-static's path; without it the test is skipped, or fails when
// make runs it (P2PCAST_REQUIRE_CROSS=1: scripts/install-cross-deps.sh installs it).
func requireQEMU(t *testing.T) string {
	t.Helper()
	qemu, err := exec.LookPath("qemu-arm-static")
	if err == nil {
		if _, err = os.Stat(filepath.Join(sysroot, "lib", "ld-linux-armhf.so.3")); err != nil {
			err = errors.New("no armhf loader in " + sysroot + " (libc6-armhf-cross)")
		}
	}
	if err != nil {
		if os.Getenv("P2PCAST_REQUIRE_CROSS") == "1" {
			t.Fatalf("the cross tools: %v (scripts/install-cross-deps.sh)", err)
		}
		t.Skipf("the cross tools are not installed (%v): run make test-cross", err)
	}
	return qemu
}

// requireARM fails unless bin is a 32-bit ARM executable (make cross builds it).
func requireARM(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%v (run make cross)", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_ARM || f.Class != elf.ELFCLASS32 {
		t.Fatalf("%s is %s %s, want 32-bit ARM", bin, f.Class, f.Machine)
	}
}

// proc is a process the test started, stopped (by its PID) when the test ends.
type proc struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
}

func start(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr // the device's and the producer's logs, for a failure
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &proc{cmd: cmd, stdout: bufio.NewReader(out)}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// firstLine reads one line from r within d.
func firstLine(t *testing.T, r *bufio.Reader, d time.Duration) string {
	t.Helper()
	type line struct {
		s   string
		err error
	}
	ch := make(chan line, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- line{strings.TrimSpace(s), err}
	}()
	select {
	case l := <-ch:
		if l.err != nil {
			t.Fatalf("the device printed no URL: %v", l.err)
		}
		return l.s
	case <-time.After(d):
		t.Fatalf("the device printed no URL within %s", d)
	}
	return ""
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
