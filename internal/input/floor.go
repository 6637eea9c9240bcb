package input

import (
	"fmt"
	"slices"
	"time"
)

// Why control changed hands, for the log.
const (
	whyJoined   = "joined with nobody in control"
	whyRequest  = "requested with nobody in control"
	whyIdle     = "requested from an idle controller"
	whyHandover = "handed over"
	whyYield    = "controller yielded"
	whyLeft     = "controller left"
)

// floor holds the rules of control, apart from any I/O so that a table can test them: who
// is on the channel, who is in control, who waits for it. Its methods return the change of
// controller they make, if any; the caller releases the desktop's keys and tells everyone.
//
// The rules (docs/input.md):
//   - A viewer who joins while nobody is in control takes it: someone alone with the page
//     can click at once.
//   - A request takes control at once when nobody has it, or when the controller has sent no
//     input for IdleTakeover; otherwise it waits in line and the controller is told (once).
//   - The controller may hand control to any viewer on the channel, or yield it.
//   - When the controller yields or leaves, control passes to the oldest request, else to
//     nobody.
//   - A viewer's yield withdraws its request; leaving withdraws it too.
type floor struct {
	members []string // ids in the order they joined
	holder  string   // "" when nobody is in control
	active  time.Time
	queue   []string // pending requests, oldest first
	rev     uint64   // counts every change of the above, so callers know when to tell
}

// transfer is a change of controller; the zero value is none.
type transfer struct{ from, to, why string }

func (t transfer) changed() bool { return t.why != "" }

func (f *floor) join(id string, now time.Time) transfer {
	f.members = append(f.members, id)
	f.rev++
	if f.holder == "" {
		return f.give(id, now, whyJoined)
	}
	return transfer{}
}

func (f *floor) leave(id string, now time.Time) transfer {
	i := slices.Index(f.members, id)
	if i < 0 {
		return transfer{}
	}
	f.members = slices.Delete(f.members, i, i+1)
	f.withdraw(id)
	f.rev++
	if f.holder == id {
		return f.next(now, whyLeft)
	}
	return transfer{}
}

// request returns the transfer it makes, or notify when the controller must be told that id
// now waits.
func (f *floor) request(id string, now time.Time, idle time.Duration) (t transfer, notify bool) {
	switch {
	case f.holder == id || !slices.Contains(f.members, id):
		return transfer{}, false
	case f.holder == "":
		return f.give(id, now, whyRequest), false
	case idle > 0 && now.Sub(f.active) >= idle:
		return f.give(id, now, whyIdle), false
	case slices.Contains(f.queue, id):
		return transfer{}, false // already told
	}
	f.queue = append(f.queue, id)
	f.rev++
	return transfer{}, true
}

// handover gives control from id, who must hold it, to another viewer on the channel.
func (f *floor) handover(id, to string, now time.Time) (transfer, error) {
	switch {
	case f.holder != id:
		return transfer{}, errNotInControl
	case !slices.Contains(f.members, to):
		return transfer{}, fmt.Errorf("%w %.64q", ErrNoViewer, to)
	case to == id:
		return transfer{}, nil
	}
	return f.give(to, now, whyHandover), nil
}

// yield gives control up, to the oldest request; from a viewer not in control, it withdraws
// that viewer's request.
func (f *floor) yield(id string, now time.Time) transfer {
	if f.holder != id {
		if f.withdraw(id) {
			f.rev++
		}
		return transfer{}
	}
	return f.next(now, whyYield)
}

// input reports whether id may send input now, and counts it as the controller's activity.
func (f *floor) input(id string, now time.Time) bool {
	if f.holder != id || id == "" {
		return false
	}
	f.active = now
	return true
}

// next passes control to the oldest request, or to nobody.
func (f *floor) next(now time.Time, why string) transfer {
	if len(f.queue) == 0 {
		return f.give("", now, why)
	}
	return f.give(f.queue[0], now, why)
}

func (f *floor) give(to string, now time.Time, why string) transfer {
	t := transfer{from: f.holder, to: to, why: why}
	f.holder, f.active = to, now
	f.withdraw(to)
	f.rev++
	return t
}

// withdraw removes id's request, reporting whether it had one.
func (f *floor) withdraw(id string) bool {
	i := slices.Index(f.queue, id)
	if i < 0 {
		return false
	}
	f.queue = slices.Delete(f.queue, i, i+1)
	return true
}
