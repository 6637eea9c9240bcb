package device

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
)

// logLines is how many recent log lines the management page can show.
const logLines = 500

// logRing keeps the last lines the device logged, formatted as the text handler does, for
// GET /api/manage/logs. Bounded: the oldest line goes when a new one comes.
type logRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
	seq   uint64 // lines ever added
}

func newLogRing(n int) *logRing { return &logRing{lines: make([]string, n)} }

func (l *logRing) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines[l.next] = s
	l.next = (l.next + 1) % len(l.lines)
	l.full = l.full || l.next == 0
	l.seq++
}

// tail returns up to n of the newest lines, oldest first.
func (l *logRing) tail(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []string
	if l.full {
		all = append(append(all, l.lines[l.next:]...), l.lines[:l.next]...)
	} else {
		all = append(all, l.lines[:l.next]...)
	}
	if n > 0 && len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// teeHandler passes each record on to next and also writes it into the ring, at Info and
// above whatever next's level: the page shows what an operator reads in the journal.
type teeHandler struct {
	next slog.Handler
	ring *logRing
	text slog.Handler
	buf  *syncBuffer
}

// syncBuffer is the text handler's output: one record at a time, then taken into the ring.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) { return b.b.Write(p) }

// secretKeys are attribute keys whose values never reach the ring (the page is remote).
var secretKeys = []string{"key", "secret", "password", "passwd", "credential", "authorization"}

func redactSecrets(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return slog.String(a.Key, "[redacted]")
		}
	}
	return a
}

func (l *logRing) handler(next slog.Handler) slog.Handler {
	buf := &syncBuffer{}
	return &teeHandler{next: next, ring: l, buf: buf,
		text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: redactSecrets})}
}

func (h *teeHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return h.next.Enabled(ctx, lv) || lv >= slog.LevelInfo
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		h.buf.mu.Lock()
		h.buf.b.Reset()
		if h.text.Handle(ctx, r) == nil {
			h.ring.add(strings.TrimRight(h.buf.b.String(), "\n"))
		}
		h.buf.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{next: h.next.WithAttrs(as), ring: h.ring, buf: h.buf, text: h.text.WithAttrs(as)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{next: h.next.WithGroup(name), ring: h.ring, buf: h.buf, text: h.text.WithGroup(name)}
}
