package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// journal records what the components did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// part is a component that records its start, its run's end and its stop.
func part(j *journal, name string) Component {
	return Component{
		Name:  name,
		Start: func(context.Context) error { j.add("start %s", name); return nil },
		Run:   func(ctx context.Context) error { <-ctx.Done(); j.add("run %s ended", name); return nil },
		Stop:  func(context.Context) error { j.add("stop %s", name); return nil },
	}
}

func TestStartsInOrderStopsInReverse(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, nil, part(j, "a"), part(j, "b"), part(j, "c")) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after ctx ended, want nil", err)
	}
	got := j.get()
	if want := []string{"start a", "start b", "start c"}; !slices.Equal(got[:3], want) {
		t.Errorf("start order %v, want %v", got[:3], want)
	}
	// Each component stops whole (Stop and Run's end, in either order) before the one before it.
	for i, name := range []string{"c", "b", "a"} {
		pair := got[3+2*i : 5+2*i]
		slices.Sort(pair)
		if want := []string{"run " + name + " ended", "stop " + name}; !slices.Equal(pair, want) {
			t.Errorf("stop %d: %v, want %v (all: %v)", i, pair, want, got)
		}
	}
}

func TestFailedStartStopsTheStartedOnes(t *testing.T) {
	j := &journal{}
	boom := errors.New("boom")
	bad := Component{Name: "bad", Start: func(context.Context) error { return boom }}
	err := Run(t.Context(), nil, part(j, "a"), part(j, "b"), bad, part(j, "never"))
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	got := j.get()
	if len(got) != 6 || got[0] != "start a" || got[1] != "start b" || slices.Contains(got, "start never") {
		t.Fatalf("events %v", got)
	}
	if i, k := slices.Index(got, "stop b"), slices.Index(got, "stop a"); i < 0 || k < i {
		t.Errorf("b must stop before a: %v", got)
	}
}

func TestFailedRunStopsEverything(t *testing.T) {
	j := &journal{}
	boom := errors.New("boom")
	bad := Component{Name: "bad", Run: func(context.Context) error { time.Sleep(10 * time.Millisecond); return boom }}
	err := Run(t.Context(), nil, part(j, "a"), bad, part(j, "b"))
	if err != boom {
		t.Fatalf("Run = %v, want boom as it is", err)
	}
	got := j.get()
	if i, k := slices.Index(got, "stop b"), slices.Index(got, "stop a"); i < 0 || k < i {
		t.Errorf("b must stop before a: %v", got)
	}
}

// A Run that is done early is no failure: the others go on until ctx ends.
func TestEarlyNilReturnIsNoFailure(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	once := Component{Name: "once", Run: func(context.Context) error { return nil }}
	start := time.Now()
	if err := Run(ctx, nil, part(j, "a"), once); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Error("Run returned before ctx ended")
	}
}

// A component that ignores its context is left behind after StopWait; the rest still stop.
func TestStuckComponentIsBounded(t *testing.T) {
	j := &journal{}
	release := make(chan struct{})
	defer close(release)
	stuck := Component{Name: "stuck", StopWait: 30 * time.Millisecond,
		Run:  func(context.Context) error { <-release; return nil },
		Stop: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	if err := Run(ctx, nil, part(j, "a"), stuck); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("stopping took %s", d)
	}
	if !slices.Contains(j.get(), "stop a") {
		t.Errorf("a was not stopped: %v", j.get())
	}
}
