package device

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// nextEvent waits for the next event on sub.
func nextEvent(t *testing.T, sub *event.Subscription) event.Event {
	t.Helper()
	select {
	case e := <-sub.Events():
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return event.Event{}
}

// A producer's EVENTs reach the bus, GET /api/events and the webhook; the event it leaves
// open when it goes is ended by the device.
func TestProducerEvents(t *testing.T) {
	var mu sync.Mutex
	var hooked []event.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e event.Event
		if json.NewDecoder(r.Body).Decode(&e) == nil {
			mu.Lock()
			hooked = append(hooked, e)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	r, d := startDevice(t, func(c *Config) { c.Webhook.URL = hook.URL + "/events?key=secret" })
	sub := d.Events().Subscribe(16)
	defer sub.Close()

	c, err := net.Dial("unix", r.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := ipc.NewWriter(c, ipc.Version2)
	hello := helloVideo
	hello.Capabilities |= ipc.CapEvents
	hello.Last = true
	start := time.Now().UnixNano()
	first := ipc.Event{Track: 1, ID: 1, Kind: ipc.EventKindMotion, Start: start, Score: ipc.ShareOne / 2,
		Regions: []ipc.EventRegion{{X: 0, Y: ipc.ShareOne / 4, W: ipc.ShareOne / 2, H: ipc.ShareOne / 6}}}
	ended := first
	ended.End, ended.EndTime = true, start+2e9
	second := ipc.Event{Track: 1, ID: 2, Kind: ipc.EventKindMotion, Start: start + 5e9}
	for _, err := range []error{w.WriteHello(hello), w.WriteEvent(first), w.WriteEvent(ended), w.WriteEvent(second)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	e1 := nextEvent(t, sub)
	if e1.ID != first.Event("").ID || !e1.Open() || e1.Kind != "motion" || len(e1.Regions) != 1 {
		t.Fatalf("first edge: %+v", e1)
	}
	if e := nextEvent(t, sub); e.ID != e1.ID || e.End.Sub(e.Start) != 2*time.Second {
		t.Fatalf("its end: %+v", e)
	}
	if e := nextEvent(t, sub); !e.Open() || e.ID == e1.ID {
		t.Fatalf("second start: %+v", e)
	}
	c.Close() // the second is still open
	if e := nextEvent(t, sub); e.Open() || e.ID != second.Event("").ID {
		t.Fatalf("the open event not ended at disconnect: %+v", e)
	}

	resp, err := http.Get(r.URL + "api/events")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Events []event.Event }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || len(got.Events) != 2 || got.Events[0].Open() || got.Events[1].Open() {
		t.Fatalf("/api/events: %+v (%v)", got, err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(hooked)
		mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d posts, want 4 (two starts, two ends)", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sender counts a delivery once the answer is in: poll the status for it.
	for {
		var st Status
		resp, err := http.Get(r.URL + "api/status")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.Webhook != nil && st.Webhook.Delivered == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/status webhook: %+v (%v), want 4 delivered", st.Webhook, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An EVENT about a track whose HELLO did not announce events, or a malformed one, drops the
// producer.
func TestBadProducerEvents(t *testing.T) {
	r, _ := startDevice(t)
	for _, tc := range []struct {
		name string
		cap  uint16
		ev   ipc.Event
	}{
		{"no capability", 0, ipc.Event{Track: 1, ID: 1, Kind: ipc.EventKindMotion, Start: 1}},
		{"unknown kind", ipc.CapEvents, ipc.Event{Track: 1, ID: 1, Kind: 9, Start: 1}},
		{"id 0", ipc.CapEvents, ipc.Event{Track: 1, Kind: ipc.EventKindMotion, Start: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", r.SocketPath)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			w := ipc.NewWriter(c, ipc.Version2)
			hello := helloVideo
			hello.Capabilities |= tc.cap
			hello.Last = true
			if err := w.WriteHello(hello); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteEvent(tc.ev); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, c)
		})
	}
}

// Detector processes write events as JSON lines on the detector socket (0600); a bad line or
// an overlong one drops that detector; its open events end when it goes.
func TestDetectorSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "detectors.sock")
	_, d := startDevice(t, func(c *Config) { c.DetectorSocket = sock })
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("detector socket: %v, mode %v", err, fi.Mode())
	}
	sub := d.Events().Subscribe(16)
	defer sub.Close()
	dial := func() net.Conn {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	lines := []string{
		`{"id":"person-1","kind":"person","detector":"rknn","start":"2026-12-05T12:00:00Z","score":0.9,"regions":[{"x":0.1,"y":0.1,"w":0.2,"h":0.5}]}`,
		`{"id":"person-1","kind":"person","detector":"rknn","start":"2026-12-05T12:00:00Z","end":"2026-12-05T12:00:03Z","score":0.9}`,
		`{"id":"car-7","kind":"car","start":"2026-12-05T12:00:04Z"}`,
	}
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, sub); e.ID != "person-1" || !e.Open() || e.Detector != "rknn" || e.Score != 0.9 {
		t.Fatalf("start: %+v", e)
	}
	if e := nextEvent(t, sub); e.End.Sub(start) != 3*time.Second {
		t.Fatalf("end: %+v", e)
	}
	if e := nextEvent(t, sub); e.ID != "car-7" || e.Detector != "external" || !e.Open() {
		t.Fatalf("third: %+v", e)
	}
	c.Close()
	if e := nextEvent(t, sub); e.ID != "car-7" || e.Open() {
		t.Fatalf("open event not ended when its detector left: %+v", e)
	}

	for name, line := range map[string]string{
		"not json":       "hello\n",
		"invalid event":  `{"id":"x","kind":"motion","start":"2026-12-05T12:00:00Z","score":7}` + "\n",
		"unknown field":  `{"id":"x","kind":"motion","start":"2026-12-05T12:00:00Z","evil":1}` + "\n",
		"line too long":  `{"id":"` + strings.Repeat("x", maxDetectorLine) + "\n",
		"ends too early": `{"id":"x","kind":"motion","start":"2026-12-05T12:00:00Z","end":"2026-12-05T11:00:00Z"}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := dial()
			if _, err := c.Write([]byte(line)); err != nil && !errors.Is(err, net.ErrClosed) {
				t.Logf("write: %v", err)
			}
			waitClosed(t, c)
		})
	}
	select {
	case e := <-sub.Events():
		t.Fatalf("a bad line published %+v", e)
	default:
	}
}

// A viewer's events channel gets the recent events when it opens, then each new edge.
func TestViewerGetsEvents(t *testing.T) {
	r, d := startDevice(t)
	defer feed(t, r.SocketPath)()
	t0 := time.Now().UTC()
	before := event.Event{ID: "motion-1-1", Kind: "motion", Detector: "motion", Start: t0, End: t0.Add(time.Second)}
	d.publishEvent(before)

	pc, _ := clientPC(t, webrtc.RTPTransceiverDirectionRecvonly, false)
	dc, err := pc.CreateDataChannel(wire.EventsChannel, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan wire.Event, 16)
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var e wire.Event
		if json.Unmarshal(m.Data, &e) == nil && e.Type == wire.TypeEvent {
			got <- e
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer := whepAnswer(t, r, "", pc.LocalDescription().SDP)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	recv := func() wire.Event {
		select {
		case e := <-got:
			return e
		case <-time.After(15 * time.Second):
			t.Fatal("no event on the viewer's channel")
		}
		return wire.Event{}
	}
	if e := recv(); e.Event.ID != before.ID || e.Event.Open() {
		t.Fatalf("recent event: %+v", e)
	}
	after := event.Event{ID: "motion-2-2", Kind: "motion", Detector: "motion", Start: t0.Add(2 * time.Second)}
	d.publishEvent(after)
	if e := recv(); e.Event.ID != after.ID || !e.Event.Open() {
		t.Fatalf("new event: %+v", e)
	}
}

func TestMotionConfig(t *testing.T) {
	cfg := Defaults()
	cfg.Motion = Motion{Enabled: true, Sensitivity: 70, Mask: "0,0,1,0.1;0.5,0.5,0.5,0.5", MinDuration: 300 * time.Millisecond, Hold: time.Second, FPS: 5}
	cfg.PatternObject = "on=2s,off=3s"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := "--pattern-object on=2s,off=3s --motion --motion-sensitivity 70 --motion-mask 0,0,1,0.1;0.5,0.5,0.5,0.5 --motion-min-duration 300ms --motion-hold 1000ms --motion-fps 5"
	if got := strings.Join(cfg.motionArgs(), " "); got != want {
		t.Fatalf("args %q\nwant %q", got, want)
	}
	for name, f := range map[string]func(c *Config){
		"socket source":     func(c *Config) { c.Source = "socket" },
		"sensitivity":       func(c *Config) { c.Motion.Sensitivity = 101 },
		"mask outside":      func(c *Config) { c.Motion.Mask = "0.6,0,0.5,1" },
		"mask shape":        func(c *Config) { c.Motion.Mask = "0,0,1" },
		"tuned without":     func(c *Config) { c.Motion.Enabled = false },
		"object syntax":     func(c *Config) { c.PatternObject = "on=2" },
		"webhook http":      func(c *Config) { c.Webhook.URL = "http://192.0.2.1/hook" },
		"insecure, no hook": func(c *Config) { c.Webhook.Insecure = true },
	} {
		c := cfg
		f(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := cfg
	c.Webhook = Webhook{URL: "http://192.0.2.1/hook", Insecure: true}
	if err := c.Validate(); err != nil {
		t.Errorf("webhook-insecure refused: %v", err)
	}
}

// GET /api/events needs the view grant, as the page that shows them does.
func TestEventsAPINeedsView(t *testing.T) {
	r, _, store := lanDevice(t)
	view, _ := mint(t, store, "cam1", time.Hour, auth.GrantView)
	talkOnly, _ := mint(t, store, "cam1", time.Hour, auth.GrantTalk)
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {talkOnly, http.StatusForbidden}, {view, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, r.URL+"api/events", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %.12q: %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
}
