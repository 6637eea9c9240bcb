package signal

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
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

	sess  Session       // owned by the read loop
	quiet chan struct{} // closed before the read loop itself ends sess: no bye for that
	bad   int
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
	defer func() {
		c.endSession()
		c.conn.Close()
		<-writerDone
	}()

	c.conn.SetReadLimit(MaxMessage)
	_ = c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	c.send(helloMsg{Type: TypeHello, Version: 1, ICEServers: c.h.backend.ICEServers(), Stream: c.h.backend.StreamInfo()})

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
		if kind != websocket.TextMessage {
			c.fail(CodeBadMessage, "binary frames are not signaling messages")
		} else if in, err := ParseInbound(data); err != nil {
			c.fail(CodeBadMessage, err.Error())
		} else {
			c.handle(in)
		}
		if c.bad > maxBadMessages {
			// The writer closes the connection once the fatal error is out; closing it here
			// first would lose the one message that says why.
			c.send(errorMsg{Type: TypeError, Code: CodeFatal, Message: "too many bad messages"})
			select {
			case <-writerDone:
			case <-time.After(writeWait):
			}
			return
		}
	}
}

func (c *wsConn) fail(code, msg string) {
	c.bad++
	c.send(errorMsg{Type: TypeError, Code: code, Message: msg})
}

// endSession closes the current session on the viewer's behalf, so no bye is sent for it.
func (c *wsConn) endSession() {
	if c.sess != nil {
		close(c.quiet)
		c.sess.Close()
		c.sess = nil
	}
}

// newSession replaces the current session (a second watch/offer restarts the viewer).
func (c *wsConn) newSession() bool {
	c.endSession()
	s, err := c.h.backend.NewSession(func(cand *webrtc.ICECandidateInit) {
		c.send(candidateMsg{Type: TypeCandidate, Candidate: cand})
	})
	if err != nil {
		c.fail(errorCode(err), err.Error())
		return false
	}
	quiet := make(chan struct{})
	c.sess, c.quiet = s, quiet
	// A session that ends by itself (ICE failed) is reported, so the page restarts it.
	go func() {
		select {
		case <-s.Done():
			select {
			case <-quiet:
			default:
				c.send(byeMsg{Type: TypeBye, Reason: "session ended"})
			}
		case <-c.stop:
		}
	}()
	return true
}

func (c *wsConn) handle(in Inbound) {
	switch in.Type {
	case TypeWatch:
		if !c.newSession() {
			return
		}
		offer, err := c.sess.Offer()
		if err != nil {
			c.fail(errorCode(err), err.Error())
			return
		}
		c.send(sdpMsg{Type: TypeOffer, SDP: offer})
	case TypeOffer:
		if !c.newSession() {
			return
		}
		answer, err := c.sess.Answer(in.SDP)
		if err != nil {
			c.fail(errorCode(err), err.Error())
			c.endSession()
			return
		}
		c.send(sdpMsg{Type: TypeAnswer, SDP: answer})
	case TypeAnswer, TypeCandidate:
		if c.sess == nil {
			c.fail(CodeNoSession, in.Type+" before a session exists")
			return
		}
		var err error
		if in.Type == TypeAnswer {
			err = c.sess.SetAnswer(in.SDP)
		} else {
			err = c.sess.AddCandidate(in.Candidate)
		}
		if err != nil {
			c.fail(errorCode(err), err.Error())
		}
	case TypeBye:
		c.endSession()
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
