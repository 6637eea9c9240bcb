// Package logtest is a log sink for tests: a buffer that a device's, hub's or process's
// goroutines may write while the test reads it (the race detector flags an unlocked read).
package logtest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Buffer collects what is written to it from any goroutine.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger logs to b as text, debug level included.
func (b *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
