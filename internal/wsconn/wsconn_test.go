package wsconn

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pair connects a client to a server whose side is handed to serve; it returns the client.
func pair(t *testing.T, serve func(ws *websocket.Conn)) *websocket.Conn {
	t.Helper()
	up := websocket.Upgrader{}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		serve(ws)
	}))
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	return c
}

// Many goroutines send at once: one writer, nothing lost, each sender's order kept (gorilla
// panics on a concurrent write, and the race detector would see one).
func TestManySendersOneWriter(t *testing.T) {
	const senders, each = 8, 50
	c := pair(t, func(ws *websocket.Conn) {
		w := New(ws, Options{Queue: senders * each})
		var wg sync.WaitGroup
		for s := range senders {
			wg.Go(func() {
				for i := range each {
					if i%2 == 0 {
						w.Send(fmt.Appendf(nil, "%d %d", s, i))
					} else if err := w.Write(fmt.Appendf(nil, "%d %d", s, i)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		w.CloseAfter(websocket.CloseNormalClosure, "")
		w.Finish(5 * time.Second)
	})
	next := make([]int, senders)
	for range senders * each {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var s, i int
		if _, err := fmt.Sscanf(string(b), "%d %d", &s, &i); err != nil {
			t.Fatal(err)
		}
		if i != next[s] {
			t.Fatalf("sender %d: message %d, want %d", s, i, next[s])
		}
		next[s]++
	}
}

// CloseAfter flushes what was queued before it, then the close frame; nothing after it goes out.
func TestCloseAfterFlushesThenCloses(t *testing.T) {
	c := pair(t, func(ws *websocket.Conn) {
		w := New(ws, Options{})
		w.Send([]byte("one"))
		w.SendJSON(map[string]string{"type": "error"})
		w.CloseAfter(websocket.ClosePolicyViolation, "go away")
		if w.Send([]byte("late")) {
			t.Error("a message after CloseAfter was queued")
		}
		w.Finish(5 * time.Second)
	})
	for _, want := range []string{"one", `{"type":"error"}`} {
		if _, b, err := c.ReadMessage(); err != nil || string(b) != want {
			t.Fatalf("read %q, %v; want %q", b, err, want)
		}
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "go away" {
		t.Fatalf("end %v, want close 1008 go away", err)
	}
}

// Code 0 closes the socket after the last message without a close frame.
func TestCloseAfterWithoutFrame(t *testing.T) {
	c := pair(t, func(ws *websocket.Conn) {
		w := New(ws, Options{})
		w.Send([]byte("last"))
		w.CloseAfter(0, "")
		<-w.Done()
		w.Close()
	})
	if _, b, err := c.ReadMessage(); err != nil || string(b) != "last" {
		t.Fatalf("read %q, %v", b, err)
	}
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseAbnormalClosure) {
		t.Fatalf("end %v, want an abnormal closure (no close frame)", err)
	}
}

// Finish without CloseAfter does not wait; Write after Close fails with ErrClosed.
func TestFinishAndWriteAfterClose(t *testing.T) {
	pair(t, func(ws *websocket.Conn) {
		w := New(ws, Options{})
		start := time.Now()
		w.Finish(time.Minute)
		if d := time.Since(start); d > time.Second {
			t.Errorf("Finish without CloseAfter took %s", d)
		}
		if err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close: %v, want ErrClosed", err)
		}
		if w.Send([]byte("x")) {
			t.Error("Send after Close queued")
		}
		select {
		case <-w.Done():
		default:
			t.Error("Done is open after Close")
		}
	})
}

// A peer that reads nothing fills the queue: the connection is dropped, senders never block.
func TestFullQueueDropsThePeer(t *testing.T) {
	big := make([]byte, 256<<10)
	pair(t, func(ws *websocket.Conn) {
		w := New(ws, Options{Queue: 2, WriteWait: 10 * time.Second})
		deadline := time.Now().Add(10 * time.Second)
		for w.Send(big) {
			if time.Now().After(deadline) {
				t.Fatal("the queue never filled")
			}
		}
		select {
		case <-w.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a full queue did not close the connection")
		}
		w.Close()
	})
}

// Pings go out, and each pong extends the read deadline: a peer that answers stays.
func TestPingsKeepAnAnsweringPeer(t *testing.T) {
	var pings atomic.Int32
	readErr := make(chan error, 1)
	c := pair(t, func(ws *websocket.Conn) {
		w := New(ws, Options{PingEvery: 20 * time.Millisecond, PongWait: 100 * time.Millisecond})
		defer w.Close()
		_, _, err := ws.ReadMessage() // only pongs come, until the client's message
		readErr <- err
	})
	c.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		time.Sleep(400 * time.Millisecond) // 4 × PongWait
		_ = c.WriteMessage(websocket.TextMessage, []byte("still here"))
	}()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _, _ = c.ReadMessage() // runs the ping handler until the deadline
	if err := <-readErr; err != nil {
		t.Fatalf("the server's read ended: %v (pongs did not extend its deadline)", err)
	}
	if n := pings.Load(); n < 5 {
		t.Errorf("%d pings in 400 ms, want about 20", n)
	}
}
