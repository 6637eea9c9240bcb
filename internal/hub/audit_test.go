package hub

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/logtest"
)

// manualClock is the audit's clock and window timer, moved by the test.
type manualClock struct {
	mu      sync.Mutex
	t       time.Time
	pending func() // the window's timer, if one is set
	after   time.Duration
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) afterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != nil {
		panic("a second window timer while one is pending")
	}
	c.pending, c.after = f, d
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		ok := c.pending != nil
		c.pending = nil
		return ok
	}
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fire runs the window's timer as time.AfterFunc would, on time.
func (c *manualClock) fire(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	f := c.pending
	c.pending = nil
	c.mu.Unlock()
	if f == nil {
		t.Fatal("no window timer is set")
	}
	f()
}

func newTestAudit() (*audit, *manualClock, *logtest.Buffer) {
	clock := &manualClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	buf := &logtest.Buffer{}
	return &audit{w: buf, now: clock.now, afterFunc: clock.afterFunc}, clock, buf
}

func TestAuditAggregatesRefusals(t *testing.T) {
	a, clock, buf := newTestAudit()
	start := clock.now()
	for range 10_000 {
		a.log(AuditEntry{Event: EventRefused, Remote: "198.51.100.7", Reason: "too many connections"})
		clock.advance(time.Millisecond)
	}
	if got := auditEntries(buf); len(got) != 1 || got[0].Count != 0 || !got[0].Time.Equal(start) {
		t.Fatalf("before the window closes: %+v, want the first refusal alone", got)
	}
	if clock.after != time.Minute {
		t.Errorf("window %v, want a minute", clock.after)
	}
	clock.fire(t)
	got := auditEntries(buf)
	if len(got) != 2 {
		t.Fatalf("%d lines for 10000 refusals, want 2", len(got))
	}
	s := got[1]
	if s.Event != EventRefused || s.Remote != "198.51.100.7" || s.Reason != "too many connections" || s.Count != 9_999 ||
		!s.First.Equal(start.Add(time.Millisecond)) || !s.Last.Equal(start.Add(9_999*time.Millisecond)) {
		t.Fatalf("summary %+v", s)
	}
	// The next window starts afresh: its first refusal is written at once.
	a.log(AuditEntry{Event: EventRefused, Remote: "198.51.100.7", Reason: "too many connections"})
	if got := auditEntries(buf); len(got) != 3 || got[2].Count != 0 {
		t.Fatalf("first refusal of the next window: %+v", got)
	}
}

func TestAuditKeepsSourcesApart(t *testing.T) {
	a, clock, buf := newTestAudit()
	for i := range 30 {
		a.log(AuditEntry{Event: EventRefused, Remote: "198.51.100.7", Reason: "too many connections"})
		if i%3 == 0 {
			a.log(AuditEntry{Event: EventRefused, Remote: "2001:db8:1:2::/64", Reason: "too many connections"})
			a.log(AuditEntry{Event: EventAuthFailed, Remote: "198.51.100.7", Device: "cam1", Reason: "bad token"})
		}
	}
	// Other events are never held back.
	a.log(AuditEntry{Event: EventSessionStarted, Remote: "198.51.100.7", Device: "cam1", Session: "s1"})
	a.log(AuditEntry{Event: EventSessionStarted, Remote: "198.51.100.7", Device: "cam1", Session: "s1"})
	if n := len(auditEntries(buf)); n != 5 {
		t.Fatalf("%d lines before the window closes, want 3 first refusals and 2 sessions", n)
	}
	clock.fire(t)
	counts := map[string]int{}
	for _, e := range auditEntries(buf)[5:] {
		counts[e.Event+" "+e.Remote] = e.Count
		if e.Event == EventAuthFailed && e.Device != "cam1" {
			t.Errorf("summary lost the device all its refusals named: %+v", e)
		}
	}
	want := map[string]int{"refused 198.51.100.7": 29, "refused 2001:db8:1:2::/64": 9, "auth_failed 198.51.100.7": 9}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("summaries %v, want %v", counts, want)
	}
}

func TestAuditBoundsKeys(t *testing.T) {
	a, clock, buf := newTestAudit()
	a.maxKeys = 10
	for i := range 1000 {
		a.log(AuditEntry{Event: EventRefused, Remote: fmt.Sprintf("198.51.100.%d", i%250), Reason: fmt.Sprintf("reason %d", i)})
	}
	if n := len(a.pending); n > 11 {
		t.Fatalf("%d keys tracked with a bound of 10", n)
	}
	clock.fire(t)
	total := 0
	for _, e := range auditEntries(buf) {
		total += max(1, e.Count)
	}
	if total != 1000 {
		t.Fatalf("lines stand for %d refusals, want 1000", total)
	}
	if n := len(auditEntries(buf)); n > 12 {
		t.Fatalf("%d lines, want at most 10 firsts, 1 overflow first and its summary", n)
	}
}

func TestAuditCloseWritesSummaries(t *testing.T) {
	a, clock, buf := newTestAudit()
	for range 3 {
		a.log(AuditEntry{Event: EventAuthFailed, Remote: "198.51.100.7", Reason: "bad token"})
	}
	a.Close()
	if clock.pending != nil {
		t.Fatal("Close left the window timer running")
	}
	got := auditEntries(buf)
	if len(got) != 2 || got[1].Count != 2 {
		t.Fatalf("after Close: %+v", got)
	}
	a.log(AuditEntry{Event: EventAuthFailed, Remote: "198.51.100.7", Reason: "bad token"})
	if n := len(auditEntries(buf)); n != 3 {
		t.Fatalf("a refusal after Close: %d lines, want it written", n)
	}
}

func TestAuditFileRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	const maxBytes, keep = 1000, 3
	w, err := OpenAuditFile(path, maxBytes, keep)
	if err != nil {
		t.Fatal(err)
	}
	a := &audit{w: w, now: time.Now}
	const n = 500
	for i := range n {
		a.log(AuditEntry{Event: EventSessionStarted, Remote: "198.51.100.7", Session: fmt.Sprintf("s%04d", i), Reason: strings.Repeat("x", i%50)})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != keep+1 {
		t.Fatalf("files %v, want %s and %d rotated", files, path, keep)
	}
	last := n
	// Newest first: the current file, then .1, .2, .3; sessions count down across them.
	for i, name := range []string{path, path + ".1", path + ".2", path + ".3"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
		if st.Size() > maxBytes {
			t.Errorf("%s is %d bytes, over %d", name, st.Size(), maxBytes)
		}
		data, _ := os.ReadFile(name)
		var ids []int
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var e AuditEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: a broken line %q: %v", name, sc.Text(), err)
			}
			var id int
			fmt.Sscanf(e.Session, "s%d", &id)
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			t.Fatalf("%s is empty", name)
		}
		if i > 0 && ids[len(ids)-1] != last-1 {
			t.Errorf("%s ends at session %d, want %d: a line was lost between files", name, ids[len(ids)-1], last-1)
		}
		for j := 1; j < len(ids); j++ {
			if ids[j] != ids[j-1]+1 {
				t.Errorf("%s: session %d follows %d", name, ids[j], ids[j-1])
			}
		}
		last = ids[0]
	}
}

func TestAuditFileAppendsAndChecksLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("{\"old\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := OpenAuditFile(path, 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("{\"new\":1}\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(data) != "{\"old\":1}\n{\"new\":1}\n" || st.Mode().Perm() != 0o600 {
		t.Fatalf("reopened file: %q, mode %v", data, st.Mode().Perm())
	}
	if _, err := w.Write([]byte("x\n")); err == nil {
		t.Error("write after Close succeeded")
	}
	for _, c := range []struct {
		max  int64
		keep int
	}{{0, 1}, {-1, 1}, {100, -1}} {
		if _, err := OpenAuditFile(path, c.max, c.keep); !errors.Is(err, ErrAuditRotation) {
			t.Errorf("OpenAuditFile(%d, %d): %v, want ErrAuditRotation", c.max, c.keep, err)
		}
	}
}
