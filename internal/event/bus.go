package event

import (
	"slices"
	"sync"
)

// Bus hands each published event to every subscriber. Publish never blocks: a subscriber
// whose buffer is full misses the event (counted), so one stuck reader cannot stall a
// detector or the other readers. The last Keep events are kept for readers that join late
// (a viewer opening the page sees what happened before it came).
type Bus struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	recent []Event // oldest first; an event's end replaces its start
	keep   int
}

// Subscription is one reader's feed.
type Subscription struct {
	bus    *Bus
	ch     chan Event
	missed uint64
	closed bool
}

// NewBus keeps the last keep events for Recent (0: none).
func NewBus(keep int) *Bus {
	return &Bus{subs: make(map[*Subscription]struct{}), keep: keep}
}

// Publish hands e to every subscriber and keeps it in Recent.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keep > 0 {
		if i := slices.IndexFunc(b.recent, func(r Event) bool { return r.ID == e.ID }); i >= 0 {
			b.recent[i] = e
		} else {
			if len(b.recent) == b.keep {
				b.recent = slices.Delete(b.recent, 0, 1)
			}
			b.recent = append(b.recent, e)
		}
	}
	for s := range b.subs {
		select {
		case s.ch <- e:
		default:
			s.missed++
		}
	}
}

// Recent returns the kept events, oldest first, each as last published.
func (b *Bus) Recent() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.recent)
}

// Subscribe starts a feed buffering up to buffer events (at least 1).
func (b *Bus) Subscribe(buffer int) *Subscription {
	s := &Subscription{bus: b, ch: make(chan Event, max(buffer, 1))}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Events is the feed; it is closed by Close.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Missed counts the events this subscriber's full buffer made it miss.
func (s *Subscription) Missed() uint64 {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.missed
}

// Close ends the feed. Safe to call more than once.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	delete(s.bus.subs, s)
	close(s.ch)
}
