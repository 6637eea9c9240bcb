// Package sway gives a Go test a headless sway compositor (internal/sway): a real Wayland
// desktop that input, clipboard and capture tests drive and observe, stopped when the test
// ends. Tests skip where it cannot run (not root, sway not installed).
package sway

import (
	"context"
	"errors"
	"testing"
	"time"

	isway "github.com/p2pcast/p2pcast/internal/sway"
)

// Option changes how Start configures sway.
type Option func(*isway.Options)

// WithResolution sets HEADLESS-1's mode (1280x720 by default).
func WithResolution(width, height int) Option {
	return func(o *isway.Options) { o.Width, o.Height = width, height }
}

// WithConfig appends lines to the generated sway config.
func WithConfig(lines ...string) Option {
	return func(o *isway.Options) { o.Config = append(o.Config, lines...) }
}

// Session is one running headless sway of a test.
type Session struct {
	*isway.Session
	t testing.TB
}

// Client is a program started by Run.
type Client = isway.Client

// Start starts a headless sway for the test, or skips the test when that is impossible here.
// It fails the test if sway does not come up; t.Cleanup stops it and what it ran.
func Start(t testing.TB, opts ...Option) *Session {
	t.Helper()
	var o isway.Options
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	s, err := isway.Start(ctx, o)
	if errors.Is(err, isway.ErrNotRoot) || errors.Is(err, isway.ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sway log:\n%s", s.Log())
		}
		s.Close()
	})
	t.Logf("sway: headless up in %v (%s)", time.Since(began).Round(time.Millisecond), s.Display())
	return &Session{Session: s, t: t}
}

// Run starts a client as uid 65534 inside the session; it fails the test if it cannot start.
func (s *Session) Run(name string, args ...string) *Client {
	s.t.Helper()
	c, err := s.Session.Run(name, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}
