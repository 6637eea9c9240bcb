package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
)

var testEvent = event.Event{ID: "motion-1-1", Kind: "motion", Detector: "motion",
	Start: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), Score: 0.5}

// start runs s until the test ends.
func start(t *testing.T, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitStats polls s's counters until cond holds, or fails after 5 s.
func waitStats(t *testing.T, s *Sender, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v never got there", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDeliversStartAndEnd(t *testing.T) {
	var mu sync.Mutex
	var got []event.Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e event.Event
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&e) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/hook"}, quietLog()) // http on loopback: allowed
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	end := testEvent
	end.End = end.Start.Add(2 * time.Second)
	s.Send(testEvent)
	s.Send(end)
	waitStats(t, s, func(st Stats) bool { return st.Delivered == 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].ID != testEvent.ID || !got[0].Open() || got[1].End.Sub(got[1].Start) != 2*time.Second {
		t.Fatalf("server got %+v", got)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, Backoff: 10 * time.Millisecond}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	s.Send(testEvent)
	st := waitStats(t, s, func(st Stats) bool { return st.Delivered == 1 })
	if st.Retries != 2 || calls.Load() != 3 {
		t.Fatalf("stats %+v after %d calls, want 2 retries and 3 calls", st, calls.Load())
	}

	// A 4xx is the request's fault: no retry.
	calls.Store(100)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	})
	s.Send(testEvent)
	waitStats(t, s, func(st Stats) bool { return st.Failed == 1 })
	if calls.Load() != 101 {
		t.Fatalf("%d calls for a 400, want 1", calls.Load()-100)
	}
}

func TestTimeoutThenRetry(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // the first attempt hangs until the client gives up
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	s, err := New(Config{URL: srv.URL, Timeout: 100 * time.Millisecond, Backoff: time.Millisecond}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	began := time.Now()
	s.Send(testEvent)
	st := waitStats(t, s, func(st Stats) bool { return st.Delivered == 1 })
	if st.Retries != 1 || time.Since(began) < 100*time.Millisecond {
		t.Fatalf("stats %+v after %s: want one retry after a timeout", st, time.Since(began))
	}
}

// Neither a password nor the query reaches the log or an error.
func TestSecretsNeverLogged(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	u := strings.Replace(srv.URL, "http://", "http://alice:hunter2@", 1) + "/hook?token=s3cret#frag"
	s, err := New(Config{URL: u, Queue: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.URL(), "hunter2") || strings.Contains(s.URL(), "s3cret") || !strings.Contains(s.URL(), "alice") {
		t.Fatalf("URL() = %s", s.URL())
	}
	start(t, s)
	s.Send(testEvent)
	waitStats(t, s, func(st Stats) bool { return st.Failed == 1 })

	// A server that cannot be reached: the client's own error names the URL.
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := strings.Replace(down.URL, "http://", "http://alice:hunter2@", 1) + "/?token=s3cret"
	down.Close()
	s2, err := New(Config{URL: downURL, Attempts: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	start(t, s2)
	s2.Send(testEvent)
	waitStats(t, s2, func(st Stats) bool { return st.Failed == 1 })
	if _, err := New(Config{URL: "https://bob:pw0rd@example.com/%zz?k=s3cret"}, log); err == nil || strings.Contains(err.Error(), "pw0rd") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a bad URL's error: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if !strings.Contains(out, "webhook delivery failed") {
		t.Fatalf("no failure logged:\n%s", out)
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Fatalf("%q in the log:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRedirectToAnotherHostRefused(t *testing.T) {
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/here", http.StatusTemporaryRedirect) // same host: followed
			return
		}
		if r.URL.Path == "/here" {
			return
		}
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL + "/away"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	err = s.post(context.Background(), []byte("{}"))
	if !errors.Is(err, ErrRedirect) || hits.Load() != 0 {
		t.Fatalf("redirect elsewhere: %v, other host hit %d times", err, hits.Load())
	}
	s, _ = New(Config{URL: srv.URL + "/moved"}, quietLog())
	if err := s.post(context.Background(), []byte("{}")); err != nil {
		t.Fatalf("redirect on the same host: %v", err)
	}
}

func TestURLChecks(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		want     error
	}{
		{"https://example.com/hook", false, nil},
		{"http://127.0.0.1:9/hook", false, nil},
		{"http://localhost/hook", false, nil},
		{"http://[::1]/hook", false, nil},
		{"http://example.com/hook", false, ErrInsecure},
		{"http://192.168.1.10/hook", false, ErrInsecure},
		{"http://192.168.1.10/hook", true, nil},
		{"ftp://example.com/", false, ErrURL},
		{"https:///nohost", false, ErrURL},
	} {
		_, err := New(Config{URL: tc.url, Insecure: tc.insecure}, quietLog())
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s (insecure %v): %v, want %v", tc.url, tc.insecure, err, tc.want)
		}
	}
}

func TestQueueBounded(t *testing.T) {
	s, err := New(Config{URL: "https://example.com/", Queue: 2}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	// Not running: the queue fills.
	for range 5 {
		s.Send(testEvent)
	}
	if st := s.Stats(); st.Dropped != 3 {
		t.Fatalf("dropped %d of 5 with a queue of 2, want 3", st.Dropped)
	}
}
