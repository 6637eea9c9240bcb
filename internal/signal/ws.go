package signal

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/wire"
	"github.com/p2pcast/p2pcast/internal/wsconn"
)

// Timings and limits of the WebSocket protocol (docs/signaling.md).
const (
	pingEvery      = 15 * time.Second
	pongWait       = 45 * time.Second
	writeWait      = 5 * time.Second
	maxBadMessages = 20
	outQueue       = 64
	// authWait bounds how long a device that requires a token waits for the viewer's auth.
	authWait = 10 * time.Second
)

// WebSocket serves the JSON signaling protocol with trickle ICE.
type WebSocket struct {
	backend  Backend
	opts     Options
	log      *slog.Logger
	ctx      context.Context
	upgrader websocket.Upgrader
}

// NewWebSocket serves signaling for backend until ctx ends, when it says bye to every viewer.
// When opts.Gate requires a token, the viewer's first message must be
// {"type":"auth","token":"…"}; hello follows only once the token is accepted.
func NewWebSocket(ctx context.Context, backend Backend, opts Options) *WebSocket {
	opts = opts.withDefaults()
	// A nil CheckOrigin accepts only same-origin pages: another site must not be able to open a
	// viewer session with a visitor's browser.
	return &WebSocket{backend: backend, opts: opts, log: opts.Logger, ctx: ctx,
		upgrader: websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: opts.CheckOrigin}}
}

// ServeHTTP upgrades the request and runs one viewer's signaling until either side ends it.
func (h *WebSocket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	log := h.log.With("remote", r.RemoteAddr)
	c := &wsConn{h: h, conn: conn, stop: make(chan struct{}), log: log, source: h.opts.Source(r),
		ws: wsconn.New(conn, wsconn.Options{Queue: outQueue, WriteWait: writeWait, PingEvery: pingEvery, PongWait: pongWait, Logger: log})}
	c.run()
}

type wsConn struct {
	h      *WebSocket
	conn   *websocket.Conn // the read side
	ws     *wsconn.Conn    // the write side
	log    *slog.Logger
	stop   chan struct{} // closed when the connection ends
	source string
}

// send queues a message; a viewer too slow to take 64 queued messages is dropped. A fatal or
// last error closes the socket once it is out (with no close frame: the page reads the error).
func (c *wsConn) send(m any) {
	c.ws.SendJSON(m)
	if e, ok := m.(errorMsg); ok && (e.Code == wire.CodeFatal || e.last) {
		c.ws.CloseAfter(0, "")
	}
}

func (c *wsConn) run() {
	defer close(c.stop)
	c.conn.SetReadLimit(MaxMessage)
	gate := c.h.opts.Gate
	var access auth.Access
	if gate.Required() {
		_ = c.conn.SetReadDeadline(time.Now().Add(authWait))
		var err error
		if access, err = c.authenticate(gate); err != nil {
			c.log.Info("viewer refused", "err", err)
			c.send(errorMsg{Type: wire.TypeError, Code: errorCode(err), Message: err.Error(), last: true})
			// The one message that says why goes out before the socket closes.
			c.ws.Finish(writeWait)
			return
		}
	} else {
		access, _ = gate.Admit("")
	}
	d := NewDialog(c.h.backend, Viewer{Access: access, Source: c.source}, c.send, c.stop)
	defer func() {
		d.Close()
		c.ws.Close()
	}()
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	if !access.Deadline.IsZero() {
		// The token's end ends the socket too, so the viewer is told why instead of being
		// refused session after session.
		t := time.AfterFunc(time.Until(access.Deadline), func() {
			c.send(errorMsg{Type: wire.TypeError, Code: wire.CodeExpired, Message: "the token expired", last: true})
		})
		defer t.Stop()
	}
	d.Hello()

	// Shutdown: say bye, then unblock the read.
	go func() {
		select {
		case <-c.h.ctx.Done():
			c.send(byeMsg{Type: wire.TypeBye, Reason: "device shutting down"})
			time.AfterFunc(time.Second, c.ws.Close)
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
			fatal = d.Fail(wire.CodeBadMessage, "binary frames are not signaling messages")
		} else {
			fatal = d.Handle(data)
		}
		if fatal {
			// The writer closes the connection once the fatal error is out; closing it here
			// first would lose the one message that says why.
			c.ws.Finish(writeWait)
			return
		}
	}
}

// authenticate reads the viewer's first message, which must be auth with a token the gate admits.
func (c *wsConn) authenticate(gate Gate) (auth.Access, error) {
	kind, data, err := c.conn.ReadMessage()
	if err != nil {
		return auth.Access{}, fmt.Errorf("%w: no auth message: %v", ErrUnauthorized, err)
	}
	var in Inbound
	if kind == websocket.TextMessage {
		in, err = ParseInbound(data)
	}
	if kind != websocket.TextMessage || err != nil || in.Type != wire.TypeAuth {
		return auth.Access{}, fmt.Errorf(`%w: this device needs a token: send {"type":"auth","token":"…"} first`, ErrUnauthorized)
	}
	return gate.Admit(in.Token)
}
