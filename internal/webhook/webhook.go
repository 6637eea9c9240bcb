// Package webhook POSTs the device's events (internal/event) to a URL: each event's JSON, at
// its start and at its end, from a bounded queue, with a timeout per attempt and retries with
// backoff. Only https:// is used unless the URL is on a loopback address or the caller allows
// plain http (Config.Insecure); a redirect may not leave the URL's host. Secrets in the URL
// (a password, the query) never appear in what it logs or returns.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
)

// Defaults of Config's zero values.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultQueue    = 64
	DefaultAttempts = 4
	DefaultBackoff  = 500 * time.Millisecond
	maxBackoff      = 30 * time.Second
	maxRedirects    = 3
)

// Errors New and deliveries report.
var (
	ErrURL      = errors.New("webhook: bad URL")
	ErrInsecure = errors.New("webhook: plain http to a host that is not loopback")
	ErrRedirect = errors.New("webhook: redirect refused")
	ErrStatus   = errors.New("webhook: the server answered with an error")
)

// Config says where and how to deliver.
type Config struct {
	URL string
	// Insecure allows http:// to a host that is not a loopback address (events in clear text).
	Insecure bool
	// Timeout bounds one attempt (connect, send, answer); 0 is DefaultTimeout.
	Timeout time.Duration
	// Queue is how many events may wait; more are dropped (counted). 0 is DefaultQueue.
	Queue int
	// Attempts per event, the first included; 0 is DefaultAttempts.
	Attempts int
	// Backoff is the wait before the first retry, doubled for each next one (at most 30 s);
	// 0 is DefaultBackoff.
	Backoff time.Duration
	// Transport, when set, replaces the default one (tests).
	Transport http.RoundTripper
}

// Stats counts what happened to the events handed to Send.
type Stats struct {
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`  // every attempt failed, or the server refused it for good
	Dropped   uint64 `json:"dropped"` // the queue was full
	Retries   uint64 `json:"retries"`
}

// Sender delivers events one at a time, in order.
type Sender struct {
	cfg      Config
	u        *url.URL
	redacted string
	client   *http.Client
	log      *slog.Logger
	queue    chan event.Event

	delivered, failed, dropped, retries atomic.Uint64
}

// New checks cfg and prepares a Sender; Run delivers.
func New(cfg Config, log *slog.Logger) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url's errors quote the whole URL: say what is wrong without it.
		return nil, fmt.Errorf("%w: does not parse", ErrURL)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: %s: want https:// (or http://)", ErrURL, Redact(u))
	case u.Host == "":
		return nil, fmt.Errorf("%w: %s: no host", ErrURL, Redact(u))
	case u.Scheme == "http" && !cfg.Insecure && !loopback(u.Hostname()):
		return nil, fmt.Errorf("%w: %s (use https://, or allow it explicitly)", ErrInsecure, Redact(u))
	}
	cfg.Timeout = cmpOr(cfg.Timeout, DefaultTimeout)
	cfg.Queue = cmpOr(cfg.Queue, DefaultQueue)
	cfg.Attempts = cmpOr(cfg.Attempts, DefaultAttempts)
	cfg.Backoff = cmpOr(cfg.Backoff, DefaultBackoff)
	s := &Sender{cfg: cfg, u: u, redacted: Redact(u), log: log, queue: make(chan event.Event, cfg.Queue)}
	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = http.ProxyFromEnvironment
		transport = t
	}
	s.client = &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: s.checkRedirect}
	return s, nil
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Redact is u without its secrets: the password and the query replaced, the user kept.
func Redact(u *url.URL) string {
	r := *u
	if _, ok := r.User.Password(); ok {
		r.User = url.UserPassword(r.User.Username(), "xxxxx")
	}
	if r.RawQuery != "" {
		r.RawQuery = "xxxxx"
	}
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}

// URL is the target as it may be logged.
func (s *Sender) URL() string { return s.redacted }

// checkRedirect follows a redirect only to the same scheme and host: an event's JSON (and the
// URL's credentials) must not be handed elsewhere.
func (s *Sender) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d", ErrRedirect, maxRedirects)
	}
	if req.URL.Scheme != s.u.Scheme || !strings.EqualFold(req.URL.Host, s.u.Host) {
		return fmt.Errorf("%w: to another host or scheme", ErrRedirect)
	}
	return nil
}

// Send queues e for delivery without blocking; false when the queue is full (dropped).
func (s *Sender) Send(e event.Event) bool {
	select {
	case s.queue <- e:
		return true
	default:
		s.dropped.Add(1)
		s.log.Warn("webhook queue full: event dropped", "id", e.ID, "url", s.redacted, "queue", s.cfg.Queue)
		return false
	}
}

// Stats counts deliveries so far.
func (s *Sender) Stats() Stats {
	return Stats{Delivered: s.delivered.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load(), Retries: s.retries.Load()}
}

// Run delivers queued events until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.queue:
			s.deliver(ctx, e)
		}
	}
}

// deliver tries one event up to Attempts times.
func (s *Sender) deliver(ctx context.Context, e event.Event) {
	body, err := json.Marshal(e)
	if err != nil {
		s.failed.Add(1)
		s.log.Error("webhook: event does not encode", "id", e.ID, "err", err)
		return
	}
	wait := s.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := s.post(ctx, body)
		if err == nil {
			s.delivered.Add(1)
			s.log.Debug("webhook delivered", "id", e.ID, "end", !e.Open(), "attempt", attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !retryable(err) || attempt >= s.cfg.Attempts {
			s.failed.Add(1)
			s.log.Warn("webhook delivery failed", "id", e.ID, "url", s.redacted, "attempts", attempt, "err", err)
			return
		}
		s.retries.Add(1)
		s.log.Debug("webhook attempt failed; retrying", "id", e.ID, "attempt", attempt, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

// statusError is a non-2xx answer.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("%v: HTTP %d", ErrStatus, e.code) }
func (e statusError) Unwrap() error { return ErrStatus }

// retryable: a failure to reach the server or a timeout, a 5xx, 408 or 429; not another 4xx
// (the request itself is wrong) nor a refused redirect.
func retryable(err error) bool {
	var se statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusRequestTimeout || se.code == http.StatusTooManyRequests
	}
	return !errors.Is(err, ErrRedirect)
}

func (s *Sender) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %s", ErrURL, s.redacted)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "p2pcast-device")
	resp, err := s.client.Do(req)
	if err != nil {
		// The client's errors carry the URL, query and all: put the redacted one there.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = s.redacted
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return statusError{resp.StatusCode}
	}
	return nil
}
