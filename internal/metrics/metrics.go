// Package metrics writes the Prometheus text exposition format (version 0.0.4) by hand: the
// device build must stay small (a client library would cost it more than the whole budget
// allows), and every value is read from state the device and hub already keep, at scrape
// time, so the media path does no extra work for metrics.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Type is a metric family's type.
type Type string

// The types this package writes.
const (
	Counter Type = "counter"
	Gauge   Type = "gauge"
)

// Writer writes metric families; each family is written whole (its HELP and TYPE, then
// its samples) by one call. Errors stick: the first one is returned by Err.
type Writer struct {
	w    *bufio.Writer
	seen map[string]bool
	err  error
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w), seen: map[string]bool{}} }

// Sample is one value of a family, with its label pairs (name, value, name, value, …).
type Sample struct {
	Labels []string
	Value  float64
}

// Family writes a family. A name written twice, a bad metric or label name, or an odd
// label list is a programming error: it panics, so tests catch it.
func (w *Writer) Family(name string, typ Type, help string, samples ...Sample) {
	if !validName(name, true) || w.seen[name] {
		panic(fmt.Sprintf("metrics: bad or repeated metric name %q", name))
	}
	w.seen[name] = true
	w.printf("# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
	for _, s := range samples {
		if len(s.Labels)%2 != 0 {
			panic(fmt.Sprintf("metrics: %s: odd label list %q", name, s.Labels))
		}
		w.printf("%s", name)
		if len(s.Labels) > 0 {
			w.printf("{")
			for i := 0; i < len(s.Labels); i += 2 {
				if !validName(s.Labels[i], false) {
					panic(fmt.Sprintf("metrics: %s: bad label name %q", name, s.Labels[i]))
				}
				if i > 0 {
					w.printf(",")
				}
				w.printf("%s=\"%s\"", s.Labels[i], escapeLabel(s.Labels[i+1]))
			}
			w.printf("}")
		}
		w.printf(" %s\n", formatValue(s.Value))
	}
}

// One writes a family of one unlabelled sample.
func (w *Writer) One(name string, typ Type, help string, v float64) {
	w.Family(name, typ, help, Sample{Value: v})
}

// Flush writes out what is buffered and returns the first error.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

func (w *Writer) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
	}
}

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the families collect writes.
func Handler(collect func(*Writer)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", ContentType)
		rw.Header().Set("Cache-Control", "no-store")
		w := NewWriter(rw)
		collect(w)
		_ = w.Flush()
	})
}

// Paths are the operator's endpoints Ops serves.
var Paths = []string{"/metrics", "/healthz", "/readyz"}

// Ops serves the operator's endpoints of a device or hub: /metrics (collect), /healthz (the
// process answers) and /readyz (503 with notReady's reason while it is not "").
func Ops(collect func(*Writer), notReady func() string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(collect))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if why := notReady(); why != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(why + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

func validName(s string, metric bool) bool {
	if s == "" || (!metric && strings.HasPrefix(s, "__")) {
		return false
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') || (metric && c == ':')
		if !ok {
			return false
		}
	}
	return true
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Count returns samples counting keys' occurrences, one label (name) per distinct key, in
// key order: sessions by state, pairs by type.
func Count(label string, keys []string) []Sample {
	n := map[string]int{}
	for _, k := range keys {
		n[k]++
	}
	names := make([]string, 0, len(n))
	for k := range n {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]Sample, 0, len(names))
	for _, k := range names {
		out = append(out, Sample{Labels: []string{label, k}, Value: float64(n[k])})
	}
	return out
}
