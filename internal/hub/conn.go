package hub

import (
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/wire"
)

// Timings of both links.
const (
	pingEvery = 15 * time.Second
	pongWait  = 45 * time.Second
	writeWait = 5 * time.Second
	authWait  = 10 * time.Second
	outQueue  = 256
)

// wsConn is one WebSocket with a single writer goroutine: anyone may send, nobody blocks on a
// slow peer (past outQueue queued messages the connection is dropped).
type wsConn struct {
	conn    *websocket.Conn
	log     *slog.Logger
	out     chan []byte
	stop    chan struct{}
	once    sync.Once
	done    chan struct{} // writer finished
	failing atomic.Bool   // fail queued a closing error: finish lets the writer flush it
}

func newWSConn(c *websocket.Conn, log *slog.Logger) *wsConn {
	w := &wsConn{conn: c, log: log, out: make(chan []byte, outQueue), stop: make(chan struct{}), done: make(chan struct{})}
	c.SetReadLimit(MaxMessage)
	_ = c.SetReadDeadline(time.Now().Add(pongWait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(pongWait)) })
	go w.writeLoop()
	return w
}

// send queues v (marshalled to JSON).
func (w *wsConn) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.log.Error("encoding a hub message", "err", err)
		return
	}
	w.sendRaw(b)
}

func (w *wsConn) sendRaw(b []byte) {
	select {
	case <-w.stop:
	case w.out <- b:
	default:
		w.log.Warn("peer too slow: send queue full, closing")
		w.close()
	}
}

// fail sends an error and closes the connection once it is written: the writer takes the nil
// that follows it as the order to close.
func (w *wsConn) fail(code, msg string) {
	w.failing.Store(true)
	w.send(errorMsg{Type: wire.TypeError, Code: code, Message: msg})
	select {
	case <-w.stop:
	case w.out <- nil:
	default:
		w.close()
	}
}

// finish ends the connection when its handler returns: after a fail it first lets the writer
// flush the error (bounded by writeWait), so the peer learns why instead of seeing a bare close.
func (w *wsConn) finish() {
	if w.failing.Load() {
		select {
		case <-w.done:
		case <-time.After(writeWait):
		}
	}
	w.close()
}

func (w *wsConn) close() {
	w.once.Do(func() {
		close(w.stop)
		w.conn.Close()
	})
}

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

func (w *wsConn) writeLoop() {
	defer close(w.done)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case b := <-w.out:
			_ = w.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if b == nil {
				_ = w.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, ""))
				w.close()
				return
			}
			if err := w.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				w.close()
				return
			}
		case <-ping.C:
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				w.close()
				return
			}
		case <-w.stop:
			return
		}
	}
}
