package metrics

import (
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExposition(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler(func(w *Writer) {
		w.One("p2pcast_up", Gauge, "1 while the process runs.", 1)
		w.Family("p2pcast_sessions", Gauge, "Sessions by state.\nSecond line with a \\.",
			Sample{Labels: []string{"state", "connected"}, Value: 2},
			Sample{Labels: []string{"state", `we"ird\n`}, Value: 1})
		w.One("p2pcast_bytes_total", Counter, "Bytes sent.", 1.5e10)
		w.One("p2pcast_nan", Gauge, "Not a number.", math.NaN())
	}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	want := `# HELP p2pcast_up 1 while the process runs.
# TYPE p2pcast_up gauge
p2pcast_up 1
# HELP p2pcast_sessions Sessions by state.\nSecond line with a \\.
# TYPE p2pcast_sessions gauge
p2pcast_sessions{state="connected"} 2
p2pcast_sessions{state="we\"ird\\n"} 1
# HELP p2pcast_bytes_total Bytes sent.
# TYPE p2pcast_bytes_total counter
p2pcast_bytes_total 1.5e+10
# HELP p2pcast_nan Not a number.
# TYPE p2pcast_nan gauge
p2pcast_nan NaN
`
	if string(body) != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("content type %q", ct)
	}
}

func TestProgrammingErrorsPanic(t *testing.T) {
	for name, f := range map[string]func(*Writer){
		"repeated":   func(w *Writer) { w.One("a", Gauge, "", 1); w.One("a", Gauge, "", 1) },
		"bad name":   func(w *Writer) { w.One("1a", Gauge, "", 1) },
		"bad label":  func(w *Writer) { w.Family("a", Gauge, "", Sample{Labels: []string{"a-b", "x"}}) },
		"odd labels": func(w *Writer) { w.Family("a", Gauge, "", Sample{Labels: []string{"a"}}) },
		"reserved":   func(w *Writer) { w.Family("a", Gauge, "", Sample{Labels: []string{"__a", "x"}}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(NewWriter(io.Discard))
		}()
	}
}

func TestCount(t *testing.T) {
	got := Count("pair", []string{"host", "relay", "host", "srflx"})
	var b strings.Builder
	for _, s := range got {
		b.WriteString(s.Labels[1] + "=" + formatValue(s.Value) + " ")
	}
	if b.String() != "host=2 relay=1 srflx=1 " {
		t.Errorf("count: %s", b.String())
	}
}
