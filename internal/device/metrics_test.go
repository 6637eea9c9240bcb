package device

import (
	"bufio"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/metrics/metricstest"
)

// scrape GETs path from the device and returns the status and body.
func scrape(t *testing.T, r Ready, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.OpsURL + strings.TrimPrefix(path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// sample finds an exposition line's value ("name" or "name{labels}").
func sample(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestMetricsAndHealth: /readyz says not ready until a producer attaches; /metrics counts a
// viewer's session, what was sent to it (counters that do not fall when it leaves) and a
// refused request; the exposition passes promtool; an address outside --ops-allow is refused.
func TestMetricsAndHealth(t *testing.T) {
	r, _ := startDevice(t)
	if code, _ := scrape(t, r, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := scrape(t, r, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no source") {
		t.Fatalf("/readyz before a producer: %d %q", code, body)
	}
	servesFrames(t, r) // a producer, and a viewer of 10 frames who then leaves
	if code, _ := scrape(t, r, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with a producer: %d", code)
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body = scrape(t, r, "/metrics")
		if v, _ := sample(body, "p2pcast_viewers"); v == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the session's end is noted asynchronously
	}
	for series, check := range map[string]func(float64) bool{
		`p2pcast_build_info{version="",role="device"}`: func(v float64) bool { return v == 1 },
		"p2pcast_producer_attached":                    func(v float64) bool { return v == 1 },
		"p2pcast_viewers":                              func(v float64) bool { return v == 0 },
		"p2pcast_sessions_total":                       func(v float64) bool { return v == 1 },
		"p2pcast_sent_packets_total":                   func(v float64) bool { return v >= 10 },
		"p2pcast_sent_bytes_total":                     func(v float64) bool { return v > 10_000 },
		"p2pcast_stream_keyframes_total":               func(v float64) bool { return v >= 1 },
		`p2pcast_refused_total{cause="busy"}`:          func(v float64) bool { return v == 0 },
	} {
		if v, ok := sample(body, series); !ok || !check(v) {
			t.Errorf("%s = %v (present %v)", series, v, ok)
		}
	}
	metricstest.Promtool(t, body)

	// With LAN auth: a request without a token is refused and counted.
	lan, _, _ := lanDevice(t)
	resp, err := http.Get(lan.URL + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, body := scrape(t, lan, "/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/api/status without a token: %d", resp.StatusCode)
	} else if v, _ := sample(body, `p2pcast_refused_total{cause="token"}`); v != 1 {
		t.Errorf("refused for want of a token: %v, want 1", v)
	}

	closed, _ := startDevice(t, func(c *Config) { c.OpsAllow = []netip.Prefix{} })
	for _, p := range opsPaths {
		if code, _ := scrape(t, closed, p); code != http.StatusForbidden {
			t.Errorf("%s from an address not allowed: %d, want 403", p, code)
		}
	}
}
