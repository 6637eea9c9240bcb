package device

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/udpbatch"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// startDevice runs a socket-source device (no producer of its own) for the test's lifetime.
func startDevice(t *testing.T, options ...func(*Config)) (Ready, *Device) {
	t.Helper()
	cfg := Defaults()
	cfg.Source = "socket"
	for _, o := range options {
		o(&cfg)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.SocketPath = filepath.Join(t.TempDir(), "capture.sock")
	var logOut io.Writer = io.Discard
	if os.Getenv("P2PCAST_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(r Ready) { ready <- r }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("device run: %v", err)
		}
	})
	select {
	case r := <-ready:
		return r, d
	case err := <-done:
		t.Fatalf("device did not start: %v", err)
	}
	return Ready{}, nil
}

// testStreamPath is the stream testStream reads.
var testStreamPath = "../media/testdata/baseline_720p.h264"

// testStream is a real H.264 stream (x264, 1280x720 baseline, 3 frames) from internal/media.
func testStream(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile(testStreamPath)
	if err != nil {
		t.Fatal(err)
	}
	r := media.NewAUReader(strings.NewReader(string(b)), 0)
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
	return aus
}

// producerConn is a framed producer written in Go, speaking docs/ipc.md.
func producerConn(t *testing.T, sock string) (net.Conn, *ipc.Writer) {
	t.Helper()
	return producerConnSized(t, sock, 1280, 720)
}

// producerConnSized is producerConn announcing a w×h picture.
func producerConnSized(t *testing.T, sock string, width, height int) (net.Conn, *ipc.Writer) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := ipc.NewWriter(c, ipc.Version1)
	if err := w.WriteHello(ipc.Hello{Kind: ipc.KindVideo, Codec: ipc.CodecH264, Width: uint16(width), Height: uint16(height),
		FPSNum: 30, FPSDen: 1, Capabilities: ipc.CapKeyframe, Name: "go-test"}); err != nil {
		t.Fatal(err)
	}
	return c, w
}

// waitClosed waits until the device closes the connection, and returns what it sent first.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("device did not drop the connection")
		}
	}
}

// feed plays the test stream into the device's socket at 30 fps, answering KEYFRAME requests
// with the IDR, until the test ends or the returned stop is called.
func feed(t *testing.T, sock string) (stop func()) {
	t.Helper()
	c, w := producerConn(t, sock)
	return feedAUs(t, c, w, testStream(t))
}

// feedAUs plays aus (the first an IDR) on a producer connection at 30 fps, from the IDR again
// at each KEYFRAME request, until the test ends or the returned stop is called.
func feedAUs(t *testing.T, c net.Conn, w *ipc.Writer, aus [][]byte) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		keyframe := make(chan struct{}, 1)
		go func() {
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
		}()
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
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
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done) }) }
	t.Cleanup(stop)
	return stop
}

// servesFrames proves the device still works: a Go producer feeds it and a WHEP viewer sees
// frames, the first one a keyframe requested by its join.
func servesFrames(t *testing.T, r Ready) {
	t.Helper()
	defer feed(t, r.SocketPath)()
	watchFrames(t, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep"})
}

// watchFrames watches with o until 10 frames of the 1280x720 test stream arrived.
func watchFrames(t *testing.T, o viewer.Options) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o.Frames = 10
	res, err := viewer.Watch(ctx, o)
	if err != nil {
		t.Fatalf("viewer: %v", err)
	}
	if res.Frames < 10 || res.Width != 1280 || res.Height != 720 {
		t.Fatalf("viewer got %+v", res)
	}
}

func TestBadSocketInputDropsOnlyThatConnection(t *testing.T) {
	r, d := startDevice(t)
	hdr := func(h ipc.Header) []byte { b := make([]byte, ipc.HeaderSize); h.Put(b); return b }
	helloAnd := func(extra ...[]byte) []byte {
		b := hdr(ipc.Header{Type: ipc.TypeHello, Length: ipc.HelloMinSize})
		b = append(b, ipc.Hello{Kind: 1, Codec: 1, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1}.Marshal()...)
		for _, e := range extra {
			b = append(b, e...)
		}
		return b
	}
	cases := map[string][]byte{
		"http request":        []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"wrong version":       append([]byte("P2PC\x07"), make([]byte, 40)...),
		"oversized":           hdr(ipc.Header{Type: ipc.TypeFrame, Length: ipc.MaxPayload + 1}),
		"access unit first":   hdr(ipc.Header{Type: ipc.TypeFrame, Timestamp: 1, Length: 0}),
		"bad hello":           append(hdr(ipc.Header{Type: ipc.TypeHello, Length: 4}), 9, 9, 9, 9),
		"garbage after hello": helloAnd([]byte("this is not a header at all, no")),
		"not h264":            helloAnd(hdr(ipc.Header{Type: ipc.TypeFrame, Timestamp: 1, Length: 12}), make([]byte, 12)),
		"truncated":           helloAnd(hdr(ipc.Header{Type: ipc.TypeFrame, Timestamp: 1, Length: 1000}), []byte{1, 2, 3}),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("unix", r.SocketPath)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
			if name == "truncated" {
				c.(*net.UnixConn).CloseWrite()
			}
			waitClosed(t, c)
		})
	}
	// 50 MB of random bytes, streamed.
	c, err := net.Dial("unix", r.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.CopyN(c, rand.Reader, 50<<20) // the device may close before we are done
		c.(*net.UnixConn).CloseWrite()
	}()
	waitClosed(t, c)
	c.Close()
	if st := d.stream.Stats(); st.Frames != 0 {
		t.Fatalf("garbage published %d frames", st.Frames)
	}
	servesFrames(t, r)
}

// freeUDPPort is a UDP port no socket holds now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestSharedUDPPortAndPublicIP(t *testing.T) {
	port := freeUDPPort(t)
	r, _ := startDevice(t, func(c *Config) {
		c.ICEUDPPort = port
		c.PublicIPs = []string{"203.0.113.7"}
	})
	// The answer's UDP candidates all use the one port, and the public address is offered.
	resp, err := http.Post(strings.TrimSuffix(r.URL, "/")+"/whep", "application/sdp", strings.NewReader(offerSDP(t)))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	udp, public := 0, false
	for _, line := range strings.Split(string(answer), "\n") {
		if !strings.HasPrefix(line, "a=candidate:") || !strings.Contains(strings.ToLower(line), " udp ") {
			continue
		}
		udp++
		f := strings.Fields(line)
		if f[5] != strconv.Itoa(port) {
			t.Errorf("candidate on port %s, want %d: %s", f[5], port, line)
		}
		public = public || f[4] == "203.0.113.7"
	}
	if udp == 0 || !public {
		t.Fatalf("answer has %d UDP candidates, public address offered: %v\n%s", udp, public, answer)
	}
	servesFrames(t, r) // and media flows through the shared socket
}

// On the shared socket a viewer's media goes below Pion (internal/srtpdirect) once its first
// report proves the derived keys: the viewer decodes two seconds of it, most of its packets
// went that way, and its reports were read there.
func TestSharedUDPPortSendsBelowPion(t *testing.T) {
	port := freeUDPPort(t)
	r, d := startDevice(t, func(c *Config) { c.ICEUDPPort = port })
	defer feed(t, r.SocketPath)()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep", Frames: 60})
	if err != nil {
		t.Fatalf("viewer: %v", err)
	}
	if res.Frames < 60 || res.Width != 1280 {
		t.Fatalf("viewer got %+v", res)
	}
	direct, udp := d.engine.DirectStats(), d.iceUDP.(*udpbatch.Conn).Stats()
	t.Logf("direct %+v of %d packets on the socket", direct, udp.Packets)
	if direct == nil || direct.Verified != 1 || direct.Failed != 0 || direct.Reports == 0 || direct.Packets*2 < udp.Packets {
		t.Fatalf("direct %+v of %d packets on the socket", direct, udp.Packets)
	}
}

// playAnnexB writes aus to the capture socket as a plain Annex-B producer, one every 33 ms (the
// producer's frame clock), until the test ends.
func playAnnexB(t *testing.T, sock string, aus [][]byte) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); c.Close() })
	go func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(33 * time.Millisecond):
			}
			if _, err := c.Write(aus[i%len(aus)]); err != nil {
				return
			}
		}
	}()
}

func TestPlainAnnexBProducer(t *testing.T) {
	r, _ := startDevice(t)
	aus := testStream(t)
	playAnnexB(t, r.SocketPath, aus)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: strings.TrimSuffix(r.URL, "/") + "/whep", Frames: 6})
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 1280 || res.Keyframes < 1 {
		t.Fatalf("plain Annex-B viewer got %+v", res)
	}
}

func TestMalformedSignalingGetsClearErrors(t *testing.T) {
	r, _ := startDevice(t)
	whep := strings.TrimSuffix(r.URL, "/") + "/whep"
	for _, tc := range []struct {
		name, ctype, body string
		want              int
	}{
		{"not sdp", "application/sdp", "hello", http.StatusBadRequest},
		{"no video", "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", http.StatusBadRequest},
		{"wrong type", "text/plain", "v=0", http.StatusUnsupportedMediaType},
		{"too large", "application/sdp", strings.Repeat("a", 70<<10), http.StatusRequestEntityTooLarge},
	} {
		resp, err := http.Post(whep, tc.ctype, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || len(body) == 0 {
			t.Errorf("%s: %d %q, want %d with a reason", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, whep+"/nope", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE of an unknown session: %v %v", resp.StatusCode, err)
	}
}

func TestConfigValidate(t *testing.T) {
	var s Size
	for _, bad := range []string{"1280", "0x720", "1281x720", "axb", "99999x2"} {
		if s.Set(bad) == nil {
			t.Errorf("size %q accepted", bad)
		}
	}
	var b Bitrate
	for in, want := range map[string]Bitrate{"2M": 2_000_000, "500k": 500_000, "1.5M": 1_500_000, "300000": 300_000} {
		if err := b.Set(in); err != nil || b != want {
			t.Errorf("bitrate %q = %d, %v", in, b, err)
		}
	}
	if b.Set("2G") == nil || b.Set("fast") == nil {
		t.Error("bad bitrate accepted")
	}
	cfg := Defaults()
	cfg.Source = "camera"
	cfg.FPS = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "source") || !strings.Contains(err.Error(), "fps") {
		t.Errorf("validate: %v", err)
	}
}

// offerSDP is a real recvonly video offer from a Pion peer connection.
func offerSDP(t *testing.T) string {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}
