package signal

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Timings and limits of the WebSocket protocol (docs/signaling.md).
const (
	pingEvery      = 15 * time.Second
	pongWait       = 45 * time.Second
	writeWait      = 5 * time.Second
	maxBadMessages = 20
	outQueue       = 64
)

// WebSocket serves the JSON signaling protocol with trickle ICE.
type WebSocket struct {
	backend  Backend
	log      *slog.Logger
	ctx      context.Context
	upgrader websocket.Upgrader
}

// NewWebSocket serves signaling for backend until ctx ends, when it says bye to every viewer.
func NewWebSocket(ctx context.Context, backend Backend, log *slog.Logger) *WebSocket {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The default CheckOrigin accepts only same-origin pages: another site must not be able to
	// open a viewer session with a visitor's browser.
	return &WebSocket{backend: backend, log: log, ctx: ctx,
		upgrader: websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}}
}

// ServeHTTP upgrades the request and runs one viewer's signaling until either side ends it.
func (h *WebSocket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &wsConn{h: h, conn: conn, out: make(chan any, outQueue), stop: make(chan struct{}),
		log: h.log.With("remote", r.RemoteAddr)}
	c.run()
}

type wsConn struct {
	h    *WebSocket
	conn *websocket.Conn
	log  *slog.Logger
	out  chan any
	stop chan struct{} // closed when the connection ends
}

// send queues a message; a viewer too slow to take 64 queued messages is dropped.
func (c *wsConn) send(m any) {
	select {
	case c.out <- m:
	case <-c.stop:
	default:
		c.log.Warn("signaling queue full, closing")
		c.conn.Close()
	}
}

func (c *wsConn) run() {
	defer close(c.stop)
	writerDone := make(chan struct{})
	go c.writeLoop(writerDone)
	d := NewDialog(c.h.backend, c.send, c.stop)
	defer func() {
		d.Close()
		c.conn.Close()
		<-writerDone
	}()

	c.conn.SetReadLimit(MaxMessage)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	d.Hello()

	// Shutdown: say bye, then unblock the read.
	go func() {
		select {
		case <-c.h.ctx.Done():
			c.send(byeMsg{Type: TypeBye, Reason: "device shutting down"})
			time.AfterFunc(time.Second, func() { c.conn.Close() })
		case <-c.stop:
		}
	}()

	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.log.Debug("signaling read ended", "err", err)
			}
			return
		}
		var fatal bool
		if kind != websocket.TextMessage {
			fatal = d.Fail(CodeBadMessage, "binary frames are not signaling messages")
		} else {
			fatal = d.Handle(data)
		}
		if fatal {
			// The writer closes the connection once the fatal error is out; closing it here
			// first would lose the one message that says why.
			select {
			case <-writerDone:
			case <-time.After(writeWait):
			}
			return
		}
	}
}

func (c *wsConn) writeLoop(done chan struct{}) {
	defer close(done)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case m := <-c.out:
			b, err := json.Marshal(m)
			if err != nil {
				c.log.Error("encoding signaling message", "err", err)
				continue
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				c.conn.Close()
				return
			}
			if e, ok := m.(errorMsg); ok && e.Code == CodeFatal {
				c.conn.Close()
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.conn.Close()
				return
			}
		case <-c.stop:
			return
		}
	}
}
