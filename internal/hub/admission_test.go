package hub

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// ---- the limiter and the gauge ----

func TestLimiterRefundGivesATokenBack(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1, 3, func() time.Time { return now })
	for range 3 {
		if !l.allow("a") {
			t.Fatal("refused within the burst")
		}
	}
	if l.allow("a") {
		t.Fatal("allowed past the burst")
	}
	// Authenticated devices give their tokens back: the next one passes at once.
	l.refund("a")
	if !l.allow("a") {
		t.Fatal("a refunded token was not there")
	}
	// A refund never lifts a bucket above its burst.
	now = now.Add(time.Hour)
	for range 5 {
		l.refund("a")
	}
	for range 3 {
		if !l.allow("a") {
			t.Fatal("refused within the burst")
		}
	}
	if l.allow("a") {
		t.Fatal("refunds raised the bucket past its burst")
	}
	// Other addresses have their own buckets; refunding an unknown one does nothing.
	l.refund("b")
	if !l.allow("b") {
		t.Fatal("a fresh address refused")
	}
}

func TestGaugeBoundsEachSourceApart(t *testing.T) {
	g := newGauge(2)
	for range 2 {
		if !g.acquire("a") {
			t.Fatal("refused under the bound")
		}
	}
	if g.acquire("a") {
		t.Fatal("a third handshake of one source allowed")
	}
	if !g.acquire("b") {
		t.Fatal("another source refused")
	}
	g.release("a")
	if !g.acquire("a") {
		t.Fatal("a released slot was not given again")
	}
	g.release("a")
	g.release("a")
	g.release("b")
	if len(g.open) != 0 {
		t.Fatalf("sources at zero kept: %v", g.open)
	}
	g.setMax(1)
	if !g.acquire("a") {
		t.Fatal("refused under the new bound")
	}
	if g.acquire("a") {
		t.Fatal("setMax not applied")
	}
}

// ---- the reconnection backoff ----

// seq is a random source that returns its values in turn (then the last one again).
func seq(v ...float64) func() float64 {
	i := 0
	return func() float64 {
		x := v[min(i, len(v)-1)]
		i++
		return x
	}
}

func TestBackoffDoublesItsWindowWithFullJitter(t *testing.T) {
	// With the draw at its top the waits are the windows: 1, 2, 4, 8, 16 s, then 30 s on.
	b := backoff{rand: seq(0.999999)}
	var got []time.Duration
	for range 8 {
		got = append(got, b.next(0, fmt.Errorf("refused")).Round(10*time.Millisecond))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("windows %v, want %v", got, want)
		}
	}
	// The draw scales the window (full jitter), down to the floor.
	b = backoff{rand: seq(0.5, 0.25, 0)}
	if d := b.next(0, nil); d != 500*time.Millisecond {
		t.Fatalf("half of the first window: %v", d)
	}
	if d := b.next(0, nil); d != 500*time.Millisecond {
		t.Fatalf("a quarter of the second: %v", d)
	}
	if d := b.next(0, nil); d != backoffFloor {
		t.Fatalf("a zero draw: %v, want the floor %v", d, backoffFloor)
	}
	// Many failures in a row do not overflow the window.
	b = backoff{rand: seq(0.999999), n: 1000}
	if d := b.next(0, nil); d <= 29*time.Second || d > backoffMax {
		t.Fatalf("after 1000 failures: %v", d)
	}
}

func TestBackoffStartsOverAfterAStableLink(t *testing.T) {
	b := backoff{rand: seq(0.999999)}
	for range 4 {
		b.next(0, nil)
	}
	// A link that stayed up a minute was healthy: the next wait is from the first window.
	if d := b.next(backoffStable, nil).Round(10 * time.Millisecond); d != time.Second {
		t.Fatalf("after a stable link: %v", d)
	}
	// One that broke sooner goes on where the schedule was.
	if d := b.next(backoffStable-time.Second, nil).Round(10 * time.Millisecond); d != 2*time.Second {
		t.Fatalf("after a short link: %v", d)
	}
}

func TestBackoffAfterARestartIsSoonAndSpread(t *testing.T) {
	restart := fmt.Errorf("%w: the hub is restarting", errRestarting)
	for _, r := range []float64{0, 0.5, 0.999999} {
		b := backoff{rand: seq(r), n: 7} // deep in the schedule: a restart starts it over
		d := b.next(10*time.Second, restart)
		want := restartMin + time.Duration(r*float64(restartSpread))
		if d != want {
			t.Fatalf("draw %v: %v, want %v", r, d, want)
		}
		// The hub did not come back yet: the schedule goes on from its start.
		if d := b.next(0, nil); d > backoffMin {
			t.Fatalf("after the restart wait: %v", d)
		}
	}
	// The hub names the spread (it grows with its devices); a long one is capped.
	for _, c := range []struct{ named, want time.Duration }{
		{time.Second, time.Second}, {10 * time.Second, 10 * time.Second}, {time.Hour, backoffMax}, {0, restartSpread},
	} {
		b := backoff{rand: seq(0.999999)}
		if d := b.next(0, restartError{spread: c.named}); d < restartMin+c.want-time.Millisecond || d > restartMin+c.want {
			t.Fatalf("named spread %v: waited %v, want up to %v", c.named, d, restartMin+c.want)
		}
	}
	for _, c := range []struct {
		devices int
		want    time.Duration
	}{{0, time.Second}, {1000, time.Second}, {10_000, 5 * time.Second}, {1_000_000, backoffMax}} {
		if got := restartSpreadFor(c.devices); got != c.want {
			t.Fatalf("spread for %d devices: %v, want %v", c.devices, got, c.want)
		}
	}
	// Spread evenly: 1000 devices told at once are not all back in the same 100 ms.
	b := backoff{rand: newRand(1)}
	slots := map[time.Duration]int{}
	for range 1000 {
		slots[b.next(0, restart)/(100*time.Millisecond)]++
		b.n = 0
	}
	for s, n := range slots {
		if n > 60 {
			t.Fatalf("%d of 1000 in the 100 ms from %v", n, s*100*time.Millisecond)
		}
	}
}

// newRand is a deterministic uniform source (a linear congruential generator).
func newRand(seed uint64) func() float64 {
	x := seed
	return func() float64 {
		x = x*6364136223846793005 + 1442695040888963407
		return float64(x>>11) / (1 << 53)
	}
}

// ---- many devices behind one address ----

// swapHandler serves the handler in force, so a test can put a new hub behind the same URL.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}
func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

// TestManyDevicesBehindOneAddressRelinkAfterARestart: 250 devices from one address (127.0.0.1)
// link with the default limits, none refused; the hub restarts (its Close tells them so, then a
// new one serves the same URL) and every device is linked again within the restart spread.
// Before: 10 connections a second per address, burst 20, and a 256-socket cap counting device
// links too.
func TestManyDevicesBehindOneAddressRelinkAfterARestart(t *testing.T) {
	const n = 250
	store, err := auth.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("cam-%03d", i)
	}
	keys, err := store.EnrollDevices(ids)
	if err != nil {
		t.Fatal(err)
	}
	sw := &swapHandler{}
	ts := httptest.NewServer(sw)
	defer ts.Close()
	url := "ws" + strings.TrimPrefix(ts.URL, "http")
	audit := &logtest.Buffer{}
	newHub := func() *Server {
		s, err := New(Config{Store: store, URLs: []string{url}, Audit: audit}) // the default limits
		if err != nil {
			t.Fatal(err)
		}
		sw.set(s.Handler())
		return s
	}
	first := newHub()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	links := make([]*Link, n)
	for i := range links {
		l, err := NewLink(LinkConfig{URL: url, ID: ids[i], Key: keys[i], Backend: &fakeBackend{}})
		if err != nil {
			t.Fatal(err)
		}
		links[i] = l
		wg.Go(func() { _ = l.Run(ctx) })
	}
	waitAll := func(what string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			up := 0
			for _, l := range links {
				if l.Connected() {
					up++
				}
			}
			if up == n {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("%s: %d of %d devices linked after %s", what, up, n, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAll("at the start", 15*time.Second)
	for _, e := range auditEntries(audit) {
		if e.Event == EventRefused || e.Event == EventAuthFailed {
			t.Fatalf("a device was refused: %+v", e)
		}
	}

	// The restart: the old hub says so and closes every link; the new one serves the same URL.
	start := time.Now()
	first.Close()
	for _, l := range links {
		for l.Connected() && time.Since(start) < 5*time.Second {
			time.Sleep(time.Millisecond)
		}
	}
	second := newHub()
	defer second.Close()
	waitAll("after the restart", restartMin+restartSpreadFor(n)+5*time.Second)
	t.Logf("%d devices behind one address linked again %.2f s after the restart", n, time.Since(start).Seconds())
}

// ---- failed authentications: per device id, and per address ----

// deviceAttempt authenticates as id with key (a zero key signs garbage) and returns the HTTP
// status of a refused handshake (0 if the socket opened) and the hub's answer code ("" for a
// welcome).
func deviceAttempt(t *testing.T, h *testHub, id string, key auth.DeviceKey) (status int, code string) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(h.ws+"/device", nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode, ""
	}
	defer c.Close()
	var ch challengeMsg
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.ReadJSON(&ch); err != nil || ch.Type != wire.TypeChallenge {
		t.Fatalf("challenge %+v: %v", ch, err)
	}
	nonce := ch.Nonce
	canonical, _ := auth.CanonicalHubURL(h.ws)
	sig := make([]byte, 64)
	if !key.IsZero() {
		sig = auth.SignChallenge(key, id, canonical, nonce)
	}
	_ = c.WriteJSON(authMsg{Type: wire.TypeAuth, ID: id, URL: canonical, Sig: base64.RawURLEncoding.EncodeToString(sig)})
	m := readMsg(t, c)
	if m.Type == wire.TypeWelcome {
		return 0, ""
	}
	return 0, m.Code
}

func TestFailedAuthenticationsCountPerDeviceIDAndPerAddress(t *testing.T) {
	h := newTestHub(t, Config{ConnRate: 1000, ConnBurst: 1000, AuthFailsPerMinute: 10, AuthFailsPerDevice: 3})
	good, err := h.store.AddDevice("good")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.AddDevice("broken"); err != nil {
		t.Fatal(err)
	}
	// A device with the wrong key, behind the same address as a good one: its id is refused
	// after 3 failures, without its signature being checked…
	for i := range 3 {
		if _, code := deviceAttempt(t, h, "broken", auth.DeviceKey{}); code != wire.CodeUnauthorized {
			t.Fatalf("failure %d: %q", i+1, code)
		}
	}
	if _, code := deviceAttempt(t, h, "broken", auth.DeviceKey{}); code != wire.CodeRateLimited {
		t.Fatalf("the 4th failure of one id: %q, want %s", code, wire.CodeRateLimited)
	}
	// …while the good one behind the same address links as ever.
	if status, code := deviceAttempt(t, h, "good", good); status != 0 || code != "" {
		t.Fatalf("the good device: %d %q", status, code)
	}
	// A flood of made-up ids from the address (3 failures counted so far, 10 allowed) is
	// stopped by the address's own budget: then nothing from it is served, a good key neither.
	for i := range 7 {
		if _, code := deviceAttempt(t, h, fmt.Sprintf("fake-%d", i), auth.DeviceKey{}); code != wire.CodeUnauthorized {
			t.Fatalf("made-up id %d: %q", i, code)
		}
	}
	if status, _ := deviceAttempt(t, h, "fake-x", auth.DeviceKey{}); status != http.StatusTooManyRequests {
		t.Fatalf("past the address's budget: %d, want 429", status)
	}
	if status, _ := deviceAttempt(t, h, "good", good); status != http.StatusTooManyRequests {
		t.Fatalf("the good device during the flood: %d, want 429", status)
	}
	waitAudit(t, h.audit, EventRefused)
}

// A device that authenticates gives its connection token back: with a budget of 2 connections
// an address links many devices, while failing connections still spend it.
func TestAuthenticatedDevicesDoNotSpendTheConnectionBudget(t *testing.T) {
	h := newTestHub(t, Config{ConnRate: 0.001, ConnBurst: 2, AuthFailsPerMinute: 1000, AuthFailsPerDevice: 1000})
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = fmt.Sprintf("cam%d", i)
	}
	keys, err := h.store.EnrollDevices(ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if status, code := deviceAttempt(t, h, id, keys[i]); status != 0 || code != "" {
			t.Fatalf("device %d: %d %q", i, status, code)
		}
	}
	for range 2 {
		deviceAttempt(t, h, "cam0", auth.DeviceKey{})
	}
	if status, _ := deviceAttempt(t, h, "cam1", keys[1]); status != http.StatusTooManyRequests {
		t.Fatalf("after two failed connections: %d, want 429", status)
	}
}

func TestHandshakesInProgressAreBoundedPerAddress(t *testing.T) {
	h := newTestHub(t, Config{ConnRate: 1000, ConnBurst: 1000, AuthFailsPerMinute: 1000, MaxHandshakesPerSource: 3})
	var open []*websocket.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range 3 {
		c, _, err := websocket.DefaultDialer.Dial(h.ws+"/device", nil)
		if err != nil {
			t.Fatal(err)
		}
		readMsg(t, c) // the challenge: the handshake is in progress, unanswered
		open = append(open, c)
	}
	_, resp, err := websocket.DefaultDialer.Dial(h.ws+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a 4th handshake: %v %v", err, resp)
	}
	// One ends (the socket goes away): its slot is free again.
	open[0].Close()
	open = open[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, err := websocket.DefaultDialer.Dial(h.ws+"/device", nil)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot was never freed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- the knobs ----

func TestAdmissionLimitsAreValidatedAndReloaded(t *testing.T) {
	base := Config{PublicIP: "127.0.0.1", ConnRate: 1000, ConnBurst: 1000, AuthFailsPerMinute: 1000}
	for name, change := range map[string]func(*Config){
		"--conn-rate":                 func(c *Config) { c.ConnRate = -1 },
		"--conn-burst":                func(c *Config) { c.ConnBurst = 0.5 },
		"--auth-fails-per-device":     func(c *Config) { c.AuthFailsPerDevice = math.NaN() },
		"--max-handshakes-per-source": func(c *Config) { c.MaxHandshakesPerSource = -3 },
		"--max-conns-per-source":      func(c *Config) { c.MaxConnsPerSource = -1 },
	} {
		c := base
		change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	// The defaults fill what is left at zero.
	d := limitDefaults(Config{}, 200)
	if d.ConnRate != DefaultConnRate || d.ConnBurst != DefaultConnBurst || d.AuthFailsPerMinute != DefaultAuthFailsPerMinute ||
		d.AuthFailsPerDevice != DefaultAuthFailsPerDevice || d.MaxHandshakesPerSource != DefaultMaxHandshakesPerSource ||
		d.MaxConnsPerSource != DefaultMaxConnsPerSource {
		t.Fatalf("defaults %+v", d)
	}

	h := newTestHub(t, base)
	next := base
	next.URLs = []string{h.ws}
	next.AuthFailsPerDevice = 1
	// 2, not 1: the first attempt's handshake may still be closing on the hub's side when the
	// second dials (the second was then refused with 429 before its id was looked at, one run
	// in many).
	next.MaxHandshakesPerSource = 2
	next.MaxConnsPerSource = 10
	applied, restart, err := h.srv.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []string{"auth-fails-per-device", "max-handshakes-per-source"}) || !slices.Equal(restart, []string{"max-conns-per-source"}) {
		t.Fatalf("applied %v, needs restart %v", applied, restart)
	}
	// One failure of an id is its budget now.
	if _, err := h.store.AddDevice("cam"); err != nil {
		t.Fatal(err)
	}
	deviceAttempt(t, h, "cam", auth.DeviceKey{})
	if status, code := deviceAttempt(t, h, "cam", auth.DeviceKey{}); code != wire.CodeRateLimited {
		t.Fatalf("after one failure with a budget of 1: HTTP status %d, code %q; want %q", status, code, wire.CodeRateLimited)
	}
}
