// Package wsconn owns the write side of a gorilla WebSocket, which allows one writer at a time.
// A Conn's one goroutine writes what any number of others queue: each write under a deadline,
// pings when asked (each pong then extends the read deadline), and a close that flushes what
// was queued before it. A peer too slow to take its queue is dropped rather than let memory
// grow or senders block. The read side stays with the caller, as gorilla allows one reader
// besides the writer. The hub's links, the device's /ws signaling and the CLI viewer use it.
package wsconn

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of Options.
const (
	DefaultQueue     = 64
	DefaultWriteWait = 5 * time.Second
)

// ErrClosed is Write's error when the connection closed before the message was written.
var ErrClosed = errors.New("wsconn: connection closed")

// Options tune a Conn; the zero value takes the defaults and sends no pings.
type Options struct {
	// Queue bounds the messages waiting to be written (default DefaultQueue). Filling it closes
	// the connection.
	Queue int
	// WriteWait bounds each write (default DefaultWriteWait).
	WriteWait time.Duration
	// PingEvery, if set, sends a ping that often. The read deadline is then set to PongWait
	// (default 3 × PingEvery) and each pong extends it, so a peer silent that long is dropped;
	// the caller may shorten it meanwhile (an authentication phase).
	PingEvery, PongWait time.Duration
	// Logger receives why a connection was dropped (nil: none).
	Logger *slog.Logger
}

// Conn is the write side of one WebSocket. Its methods may be called from any goroutine.
type Conn struct {
	ws   *websocket.Conn
	opts Options
	log  *slog.Logger

	// The queue: a slice that holds only what waits (an idle connection holds none: a hub
	// keeps thousands of idle device links), and a signal to the writer.
	mu         sync.Mutex
	pending    []item
	wake       chan struct{} // one buffered token: pending has something
	closing    atomic.Bool   // CloseAfter was called: nothing more is queued
	done       chan struct{} // closed when the socket is
	closeOnce  sync.Once
	writerDone chan struct{}
}

// item is one entry of the queue: a text message, or the end of the connection.
type item struct {
	msg   []byte
	done  chan error // Write waits for the result here (buffered)
	close bool       // end the connection: a close frame (code, reason) unless code is 0
	code  int
	why   string
}

// New takes over writing to ws and starts the writer.
func New(ws *websocket.Conn, o Options) *Conn {
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.WriteWait <= 0 {
		o.WriteWait = DefaultWriteWait
	}
	if o.PingEvery > 0 && o.PongWait <= 0 {
		o.PongWait = 3 * o.PingEvery
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{ws: ws, opts: o, log: log, wake: make(chan struct{}, 1), done: make(chan struct{}), writerDone: make(chan struct{})}
	if o.PingEvery > 0 {
		_ = ws.SetReadDeadline(time.Now().Add(o.PongWait))
		ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(o.PongWait)) })
	}
	go c.writeLoop()
	return c
}

// Send queues a text message. It reports whether it was queued: not once the connection is
// closed or closing, nor when the queue is full, which closes the connection.
func (c *Conn) Send(msg []byte) bool {
	if c.closing.Load() {
		return false
	}
	return c.enqueue(item{msg: msg})
}

// SendJSON queues v, encoded as JSON, as a text message.
func (c *Conn) SendJSON(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		c.log.Error("encoding a message", "err", err)
		return false
	}
	return c.Send(b)
}

// Write queues a text message and waits until it is written: its error is the write's, or
// ErrClosed.
func (c *Conn) Write(msg []byte) error {
	done := make(chan error, 1)
	if c.closing.Load() || !c.enqueue(item{msg: msg, done: done}) {
		return ErrClosed
	}
	select {
	case err := <-done:
		return err
	case <-c.writerDone:
		// The writer may have answered just before it stopped.
		select {
		case err := <-done:
			return err
		default:
			return ErrClosed
		}
	}
}

// WriteJSON writes v, encoded as JSON, as a text message (see Write).
func (c *Conn) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Write(b)
}

// CloseAfter ends the connection once everything queued before it is written: the writer sends
// a close frame with code and reason (code 0: none, the socket just closes) and closes the
// socket. Messages sent after it are dropped; only the first call counts.
func (c *Conn) CloseAfter(code int, reason string) {
	if c.closing.Swap(true) {
		return
	}
	c.enqueue(item{close: true, code: code, why: reason})
}

// Finish closes the connection; after CloseAfter it first lets the writer flush, for at most
// wait, so the peer gets the last messages (why it is being closed) rather than a bare close.
func (c *Conn) Finish(wait time.Duration) {
	if c.closing.Load() {
		select {
		case <-c.writerDone:
		case <-time.After(wait):
		}
	}
	c.Close()
}

// Close closes the socket at once, dropping what is queued, and waits for the writer to stop.
// It may be called more than once.
func (c *Conn) Close() {
	c.shutdown()
	<-c.writerDone
}

// Done is closed once the socket is closed: by Close, after CloseAfter, or when a write failed
// or the queue filled.
func (c *Conn) Done() <-chan struct{} { return c.done }

// shutdown closes the socket, which also ends a write in progress.
func (c *Conn) shutdown() {
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func (c *Conn) enqueue(it item) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	c.mu.Lock()
	if len(c.pending) >= c.opts.Queue {
		c.mu.Unlock()
		c.log.Warn("peer too slow: send queue full, closing")
		c.shutdown()
		return false
	}
	c.pending = append(c.pending, it)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer has been told already
	}
	return true
}

// next takes the first item queued; ok is false when there is none.
func (c *Conn) next() (it item, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return item{}, false
	}
	it = c.pending[0]
	c.pending[0] = item{}
	c.pending = c.pending[1:]
	if len(c.pending) == 0 {
		c.pending = nil // an idle connection keeps no buffer
	}
	return it, true
}

func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	var ping <-chan time.Time
	if c.opts.PingEvery > 0 {
		t := time.NewTicker(c.opts.PingEvery)
		defer t.Stop()
		ping = t.C
	}
	for {
		select {
		case <-c.wake:
			for {
				it, ok := c.next()
				if !ok {
					break
				}
				var err error
				_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteWait))
				switch {
				case !it.close:
					err = c.ws.WriteMessage(websocket.TextMessage, it.msg)
				case it.code != 0:
					_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(it.code, it.why))
				}
				if it.done != nil {
					it.done <- err
				}
				if err != nil || it.close {
					c.shutdown()
					return
				}
				select {
				case <-c.done:
					return
				default:
				}
			}
		case <-ping:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.WriteWait)); err != nil {
				c.shutdown()
				return
			}
		case <-c.done:
			return
		}
	}
}
