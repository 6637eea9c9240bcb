package viewer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/media"
)

// testDevice is an in-process device (socket source) fed by a Go producer playing a real H.264
// stream at 30 fps, with capture times of now, answering keyframe requests with the IDR.
type testDevice struct {
	base string // http://127.0.0.1:PORT
}

func (d testDevice) whep() string { return d.base + "/whep" }
func (d testDevice) ws() string   { return "ws" + strings.TrimPrefix(d.base, "http") + "/ws" }

func startDevice(t *testing.T) testDevice { t.Helper(); return startDeviceWith(t, nil) }

// startDeviceWith starts a test device whose config edit changes first.
func startDeviceWith(t *testing.T, edit func(*device.Config)) testDevice {
	t.Helper()
	d, _ := runDevice(t, edit)
	return d
}

// runDevice starts a test device (config edited by edit, if not nil) and returns it with a
// stop that ends it (also at the test's end; stopping twice is harmless).
func runDevice(t *testing.T, edit func(*device.Config)) (testDevice, func()) {
	t.Helper()
	cfg := device.Defaults()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Source = "socket"
	cfg.SocketPath = filepath.Join(t.TempDir(), "capture.sock")
	if edit != nil {
		edit(&cfg)
	}
	d, err := device.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan device.Ready, 1)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(r device.Ready) { ready <- r }) }()
	var r device.Ready
	select {
	case r = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("device did not start: %v", err)
	}
	stopProducers := []func(){produce(t, r.SocketPath)}
	for _, p := range r.SocketPaths { // the other sources'
		stopProducers = append(stopProducers, produce(t, p))
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, s := range stopProducers {
				s()
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("device run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return testDevice{base: strings.TrimSuffix(r.URL, "/")}, stop
}

// produce plays internal/media's 3-frame 720p baseline stream in a loop on the device socket.
func produce(t *testing.T, sock string) (stop func()) {
	t.Helper()
	b, err := os.ReadFile("../media/testdata/baseline_720p.h264")
	if err != nil {
		t.Fatal(err)
	}
	r := media.NewAUReader(bytes.NewReader(b), 0)
	var aus [][]byte
	for {
		au, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		aus = append(aus, append([]byte(nil), au...))
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	w := ipc.NewWriter(c, ipc.Version1)
	if err := w.WriteHello(ipc.Hello{Kind: ipc.KindVideo, Codec: ipc.CodecH264, Width: 1280, Height: 720,
		FPSNum: 30, FPSDen: 1, Capabilities: ipc.CapKeyframe, Name: "viewer-test"}); err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	keyframe := make(chan struct{}, 1)
	wg.Go(func() {
		rd := ipc.NewReader(c)
		for {
			m, err := rd.Next()
			if err != nil {
				return
			}
			if m.Type == ipc.TypeKeyframe {
				select {
				case keyframe <- struct{}{}:
				default:
				}
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(33 * time.Millisecond) // the producer's frame clock
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-keyframe:
				i = 0
			case <-tick.C:
			}
			now := time.Now().UnixNano()
			if err := w.WriteFrame(ipc.Frame{Seq: uint32(i), Capture: now, Encoded: now, Data: aus[i%len(aus)]}); err != nil {
				return
			}
		}
	})
	return func() {
		close(quit)
		c.Close()
		wg.Wait()
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}
