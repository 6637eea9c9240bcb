// Package lifecycle runs the parts of a long-running program (the hub, a device) so that every
// part has one owner: Run starts the components in order, and when the context ends or one
// of them fails it stops those it started in reverse order, one at a time, each within a bound.
// A part started later may rely on the ones before it (a server on its listener, a relay on
// its TURN server); stopping in reverse keeps that true until the end.
package lifecycle

import (
	"context"
	"log/slog"
	"time"
)

// DefaultStopWait bounds one component's stop when it names no StopWait.
const DefaultStopWait = 5 * time.Second

// Component is one part of a program. Every field but Name is optional.
type Component struct {
	Name string
	// Start prepares the component (opens a file, binds a socket) before the next one starts.
	// Its ctx is the program's. An error stops the components started before it, and Run
	// returns that error.
	Start func(ctx context.Context) error
	// Run does the component's work in a goroutine of its own until ctx, the component's own,
	// ends; it then returns nil. An error ends the program: Run returns it. Returning nil
	// earlier means the work is done; the others go on.
	Run func(ctx context.Context) error
	// Stop undoes Start. It is called when the component is to stop, once its Run's context is
	// cancelled (Run may still be returning), with a ctx that ends at StopWait.
	Stop func(ctx context.Context) error
	// StopWait bounds the component's stop, Stop and Run's return together (default
	// DefaultStopWait). Past it the component is reported and left behind, and the next one
	// stops.
	StopWait time.Duration
}

// started is a component whose Start succeeded.
type started struct {
	c      Component
	cancel context.CancelFunc // ends Run's context
	done   chan struct{}      // closed when Run has returned (at once without Run)
}

// Run starts the components in order and runs them until ctx ends or one fails, then stops
// them in reverse order. It returns the first failure (a Start's or a Run's error) as it is,
// or nil when ctx ended; errors while stopping are logged (log may be nil).
func Run(ctx context.Context, log *slog.Logger, components ...Component) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Components run under contexts of their own rather than ctx's, so that they stop one by
	// one, in reverse order, instead of all at once when ctx ends.
	base := context.WithoutCancel(ctx)
	failed := make(chan error, len(components))
	var up []*started
	stopAll := func() {
		for i := len(up) - 1; i >= 0; i-- {
			up[i].stop(log)
		}
	}
	for _, c := range components {
		if c.Start != nil {
			if err := c.Start(ctx); err != nil {
				log.Debug("component failed to start", "component", c.Name, "err", err)
				stopAll()
				return err
			}
		}
		rctx, cancel := context.WithCancel(base)
		s := &started{c: c, cancel: cancel, done: make(chan struct{})}
		if c.Run != nil {
			go func() {
				defer close(s.done)
				if err := c.Run(rctx); err != nil {
					if rctx.Err() != nil {
						log.Debug("component ended with an error while stopping", "component", c.Name, "err", err)
						return
					}
					log.Debug("component failed", "component", c.Name, "err", err)
					failed <- err
				}
			}()
		} else {
			close(s.done)
		}
		up = append(up, s)
		log.Debug("component started", "component", c.Name)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	stopAll()
	return err
}

// stop cancels the component's Run, calls its Stop and waits for both, within StopWait.
func (s *started) stop(log *slog.Logger) {
	wait := s.c.StopWait
	if wait <= 0 {
		wait = DefaultStopWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s.cancel()
		if s.c.Stop != nil {
			if err := s.c.Stop(ctx); err != nil {
				log.Warn("stopping", "component", s.c.Name, "err", err)
			}
		}
		<-s.done
	}()
	select {
	case <-finished:
		log.Debug("component stopped", "component", s.c.Name)
	case <-ctx.Done():
		log.Warn("component did not stop in time; going on", "component", s.c.Name, "wait", wait)
	}
}
