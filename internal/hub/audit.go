package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strconv"
	"sync"
	"time"
)

// Audit events (docs/hub.md).
const (
	EventDeviceConnected    = "device_connected"
	EventDeviceDisconnected = "device_disconnected"
	EventAuthFailed         = "auth_failed"
	EventSessionStarted     = "session_started"
	EventSessionResumed     = "session_resumed"
	EventSessionEnded       = "session_ended"
	EventRefused            = "refused"
)

// AuditEntry is one line of the audit log. It never holds a token or a key: tokens are
// named by their id.
//
// Refusals are aggregated: the first of a window for one (event, remote, reason) is written at
// once, and the others of that window make one summary line when it closes, with Count (how many
// refusals that line stands for, not counting the one written before) and the First and Last of
// them. Device and TokenID are on a summary only when all its refusals had the same.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Remote  string    `json:"remote,omitempty"`
	Device  string    `json:"device,omitempty"`
	TokenID string    `json:"token_id,omitempty"`
	Session string    `json:"session,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Count   int       `json:"count,omitempty"`
	First   time.Time `json:"first,omitzero"`
	Last    time.Time `json:"last,omitzero"`
}

// Aggregation defaults.
const (
	auditWindow = time.Minute
	// auditMaxKeys bounds the (event, remote, reason) keys of one window; past it refusals are
	// counted under remote "*", so a flood from many addresses cannot grow the table either.
	auditMaxKeys = 10_000
	// auditMaxReason bounds a reason's length: it may quote what a client sent.
	auditMaxReason = 300
)

// audit writes JSON lines; one write per entry, so concurrent writers never interleave. The zero
// value of every field but w and now takes its default.
type audit struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
	// window is how long refusals of one key are counted after the first (0: auditWindow).
	window time.Duration
	// maxKeys bounds the keys of a window (0: auditMaxKeys).
	maxKeys int
	// afterFunc starts the window's timer (nil: time.AfterFunc); tests drive it by hand.
	afterFunc func(time.Duration, func()) (stop func() bool)

	// counts are every event logged, by name, whether written or aggregated (for /metrics).
	counts map[string]uint64

	pending map[refusalKey]*refusals // the open window's keys; nil when none is open
	stop    func() bool              // the open window's timer
	closed  bool
}

type refusalKey struct{ event, remote, reason string }

// refusals is one key's tally in a window, past its first refusal (which was written).
type refusals struct {
	entry       AuditEntry // the first refusal; Device and TokenID cleared if the rest differ
	count       int
	first, last time.Time
}

func (a *audit) log(e AuditEntry) {
	a.mu.Lock()
	if a.counts == nil {
		a.counts = map[string]uint64{}
	}
	a.counts[e.Event]++
	a.mu.Unlock()
	if a.w == nil {
		return
	}
	e.Time = a.now().UTC()
	if len(e.Reason) > auditMaxReason {
		e.Reason = e.Reason[:auditMaxReason]
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if (e.Event == EventRefused || e.Event == EventAuthFailed) && !a.closed && a.counted(e) {
		return
	}
	a.write(e)
}

// eventCounts returns how many of each event were logged.
func (a *audit) eventCounts() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.counts)
}

// counted adds e to its key's tally if the key was seen in the open window, and opens a window
// if none is; false means e is the first of its key and is to be written.
func (a *audit) counted(e AuditEntry) bool {
	if a.pending == nil {
		a.pending = map[refusalKey]*refusals{}
		window := a.window
		if window <= 0 {
			window = auditWindow
		}
		after := a.afterFunc
		if after == nil {
			after = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
		}
		a.stop = after(window, a.flush)
	}
	k := refusalKey{e.Event, e.Remote, e.Reason}
	limit := a.maxKeys
	if limit <= 0 {
		limit = auditMaxKeys
	}
	tally := e
	if _, ok := a.pending[k]; !ok && len(a.pending) >= limit {
		// The tally under "*" keeps neither the sources nor the reasons it mixes.
		k = refusalKey{event: e.Event, remote: "*"}
		tally.Remote, tally.Reason, tally.Device, tally.TokenID = "*", "", "", ""
	}
	r, ok := a.pending[k]
	if !ok {
		a.pending[k] = &refusals{entry: tally}
		return false
	}
	if r.count == 0 {
		r.first = e.Time
	}
	r.count++
	r.last = e.Time
	if r.entry.Device != e.Device {
		r.entry.Device = ""
	}
	if r.entry.TokenID != e.TokenID {
		r.entry.TokenID = ""
	}
	return true
}

// flush closes the open window: a summary line for each key refused more than once in it.
func (a *audit) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
}

func (a *audit) flushLocked() {
	now := a.now().UTC()
	for _, r := range a.pending {
		if r.count == 0 {
			continue
		}
		e := r.entry
		e.Time, e.Session, e.Count, e.First, e.Last = now, "", r.count, r.first, r.last
		a.write(e)
	}
	a.pending, a.stop = nil, nil
}

func (a *audit) write(e AuditEntry) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	_, _ = a.w.Write(append(b, '\n'))
}

// Close writes the summaries of the open window and stops its timer; refusals logged after it
// are written one by one.
func (a *audit) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil {
		a.stop()
	}
	a.flushLocked()
	a.closed = true
}

// ErrAuditRotation is returned for rotation limits that cannot work.
var ErrAuditRotation = errors.New("audit file: maxBytes must be positive and keep not negative")

// OpenAuditFile opens path for the audit log: append-only JSON lines, mode 0600, rotated when a
// write would take it past maxBytes (path → path.1 → … → path.keep, the oldest dropped). A single
// Write is never split across files, so every line stays whole; one larger than maxBytes gets a
// file of its own.
func OpenAuditFile(path string, maxBytes int64, keep int) (io.WriteCloser, error) {
	if maxBytes <= 0 || keep < 0 {
		return nil, fmt.Errorf("%w: %d bytes, keep %d", ErrAuditRotation, maxBytes, keep)
	}
	f := &auditFile{path: path, max: maxBytes, keep: keep}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

type auditFile struct {
	path string
	max  int64
	keep int

	mu   sync.Mutex
	f    *os.File
	size int64
}

func (f *auditFile) open() error {
	file, err := os.OpenFile(f.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// A file made by hand, or by an older version, may be readable by others: the log names
	// token ids and client addresses.
	if err := file.Chmod(0o600); err != nil {
		file.Close()
		return err
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return err
	}
	f.f, f.size = file, st.Size()
	return nil
}

func (f *auditFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return 0, os.ErrClosed
	}
	if f.size > 0 && f.size+int64(len(p)) > f.max {
		// A file that cannot rotate grows past its limit rather than lose the record.
		if err := f.rotate(); err != nil {
			if err := f.open(); err != nil {
				return 0, err
			}
		}
	}
	n, err := f.f.Write(p)
	f.size += int64(n)
	return n, err
}

// rotate shifts the files by one and starts an empty path.
func (f *auditFile) rotate() error {
	err := f.f.Close()
	f.f = nil
	if err != nil {
		return err
	}
	if f.keep == 0 {
		if err := os.Remove(f.path); err != nil {
			return err
		}
		return f.open()
	}
	name := func(i int) string { return f.path + "." + strconv.Itoa(i) }
	for i := f.keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(f.path, name(1)); err != nil {
		return err
	}
	return f.open()
}

func (f *auditFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}
