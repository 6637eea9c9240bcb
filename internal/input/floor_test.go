package input

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// step is one event on the floor and what must follow: the controller and the requests after
// it, the change of controller it made ("" for none) and whether the controller is told of a
// request.
type step struct {
	op     string // "v1 join", "v1 leave", "v2 request", "v1 handover v2", "v1 yield", "v1 input", "+31s"
	holder string
	queue  string // ids, space-separated, oldest first
	why    string
	notify bool
	err    error
}

const idle = 30 * time.Second

func TestFloorRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first viewer takes control", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
		}},
		{"request waits and the controller is told once", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "v2 request", holder: "v1", queue: "v2", notify: true},
			{op: "v2 request", holder: "v1", queue: "v2"},
			{op: "v1 request", holder: "v1", queue: "v2"}, // the controller asking: nothing
		}},
		{"handover to a requester, and to anyone present", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "v3 join", holder: "v1"},
			{op: "v3 request", holder: "v1", queue: "v3", notify: true},
			{op: "v1 handover v3", holder: "v3", why: whyHandover},
			{op: "v3 handover v2", holder: "v2", why: whyHandover},
			{op: "v2 handover v2", holder: "v2"},
			{op: "v2 handover v9", holder: "v2", err: ErrNoViewer},
			{op: "v1 handover v1", holder: "v2", err: errNotInControl},
		}},
		{"yield passes to the oldest request, else to nobody", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "v3 join", holder: "v1"},
			{op: "v3 request", holder: "v1", queue: "v3", notify: true},
			{op: "v2 request", holder: "v1", queue: "v3 v2", notify: true},
			{op: "v1 yield", holder: "v3", queue: "v2", why: whyYield},
			{op: "v3 yield", holder: "v2", why: whyYield},
			{op: "v2 yield", holder: "", why: whyYield},
			{op: "v1 input", holder: ""},
			{op: "v1 request", holder: "v1", why: whyRequest}, // nobody in control: at once
		}},
		{"a viewer's yield withdraws its request", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "v2 request", holder: "v1", queue: "v2", notify: true},
			{op: "v2 yield", holder: "v1"},
			{op: "v1 yield", holder: "", why: whyYield},
		}},
		{"idle takeover", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "+20s", holder: "v1"},
			{op: "v1 input", holder: "v1"},
			{op: "+29s", holder: "v1"},
			{op: "v2 request", holder: "v1", queue: "v2", notify: true}, // 29 s idle: not yet
			{op: "+1s", holder: "v1", queue: "v2"},
			{op: "v2 request", holder: "v2", why: whyIdle},
			{op: "v1 input", holder: "v2"},
			{op: "+31s", holder: "v2"},
			{op: "v1 request", holder: "v1", why: whyIdle},
		}},
		{"a new controller is not idle from the start", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "+60s", holder: "v1"},
			{op: "v1 handover v2", holder: "v2", why: whyHandover},
			{op: "v1 request", holder: "v2", queue: "v1", notify: true},
		}},
		{"the controller leaving passes control to the oldest request", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "v3 join", holder: "v1"},
			{op: "v3 request", holder: "v1", queue: "v3", notify: true},
			{op: "v2 request", holder: "v1", queue: "v3 v2", notify: true},
			{op: "v3 leave", holder: "v1", queue: "v2"}, // leaving withdraws a request
			{op: "v1 leave", holder: "v2", why: whyLeft},
			{op: "v2 leave", holder: "", why: whyLeft},
			{op: "v4 join", holder: "v4", why: whyJoined},
		}},
		{"the controller leaving with nobody waiting leaves nobody in control", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "v1 leave", holder: "", why: whyLeft},
			{op: "v3 join", holder: "v3", why: whyJoined}, // a newcomer to an uncontrolled desktop
			{op: "v2 request", holder: "v3", queue: "v2", notify: true},
		}},
		{"idle takeover off", []step{
			{op: "v1 join", holder: "v1", why: whyJoined},
			{op: "v2 join", holder: "v1"},
			{op: "+1h", holder: "v1"},
			{op: "v2 request -idle", holder: "v1", queue: "v2", notify: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f floor
			now := time.Unix(1_700_000_000, 0)
			for i, s := range tc.steps {
				var (
					tr     transfer
					notify bool
					err    error
				)
				w := strings.Fields(s.op)
				if d, perr := time.ParseDuration(w[0]); perr == nil {
					now = now.Add(d)
				} else {
					who := w[0]
					switch w[1] {
					case "join":
						tr = f.join(who, now)
					case "leave":
						tr = f.leave(who, now)
					case "request":
						idleTakeover := idle
						if len(w) > 2 {
							idleTakeover = -1
						}
						tr, notify = f.request(who, now, idleTakeover)
					case "handover":
						tr, err = f.handover(who, w[2], now)
					case "yield":
						tr = f.yield(who, now)
					case "input":
						if ok := f.input(who, now); ok != (s.holder == who) {
							t.Fatalf("step %d %q: input allowed %v", i, s.op, ok)
						}
					default:
						t.Fatalf("step %d: unknown op %q", i, s.op)
					}
				}
				if !errors.Is(err, s.err) || (err == nil) != (s.err == nil) {
					t.Fatalf("step %d %q: error %v, want %v", i, s.op, err, s.err)
				}
				if f.holder != s.holder || strings.Join(f.queue, " ") != s.queue {
					t.Fatalf("step %d %q: controller %q, requests %q; want %q, %q", i, s.op, f.holder, f.queue, s.holder, s.queue)
				}
				if tr.why != s.why || notify != s.notify {
					t.Fatalf("step %d %q: change %+v, notify %v; want why %q, notify %v", i, s.op, tr, notify, s.why, s.notify)
				}
				if tr.changed() && tr.to != f.holder {
					t.Fatalf("step %d %q: change to %q but %q holds control", i, s.op, tr.to, f.holder)
				}
				for _, q := range f.queue {
					if q == f.holder || !slices.Contains(f.members, q) {
						t.Fatalf("step %d %q: request of %q, controller %q, members %q", i, s.op, q, f.holder, f.members)
					}
				}
			}
		})
	}
}
