package hub

import (
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/wire"
	"github.com/p2pcast/p2pcast/internal/wsconn"
)

// Timings of both links.
const (
	pingEvery = 15 * time.Second
	pongWait  = 45 * time.Second
	writeWait = 5 * time.Second
	authWait  = 10 * time.Second
	outQueue  = 256
)

// wsConn is one link's WebSocket: anyone may send (the wsconn.Conn writes, and drops a peer
// that lets outQueue messages pile up); one goroutine reads.
type wsConn struct {
	*wsconn.Conn
	conn *websocket.Conn // the read side
}

func newWSConn(c *websocket.Conn, log *slog.Logger) *wsConn {
	c.SetReadLimit(MaxMessage)
	w := wsconn.New(c, wsconn.Options{Queue: outQueue, WriteWait: writeWait, PingEvery: pingEvery, PongWait: pongWait, Logger: log})
	return &wsConn{Conn: w, conn: c}
}

// fail sends an error and closes the connection once it is written, with a close frame.
func (w *wsConn) fail(code, msg string) {
	w.SendJSON(errorMsg{Type: wire.TypeError, Code: code, Message: msg})
	w.CloseAfter(websocket.ClosePolicyViolation, "")
}

// finish ends the connection when its handler returns: after a fail it first lets the writer
// flush the error (bounded by writeWait), so the peer learns why instead of seeing a bare close.
func (w *wsConn) finish() { w.Finish(writeWait) }

// read returns the next text message; binary frames carry nothing in this protocol.
func (w *wsConn) read() ([]byte, error) {
	kind, data, err := w.conn.ReadMessage()
	if err != nil {
		return nil, err
	}
	if kind != websocket.TextMessage {
		return nil, errBinary
	}
	return data, nil
}

// every calls f every d, from a timer (no goroutine waits for it), until the function it
// returns is called.
func every(d time.Duration, f func()) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(d, func() {
		f()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(d)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// writeBuffers are the links' WebSocket write buffers, lent for a write at a time.
var writeBuffers = &sync.Pool{}
