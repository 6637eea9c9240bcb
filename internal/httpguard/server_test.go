package httpguard

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serve runs srv on a loopback listener until the test ends.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		srv.Close() // hijacked connections are the handler's; the rest go now
		<-done
	})
	return l.Addr().String()
}

func TestNewServerDefaults(t *testing.T) {
	s := NewServer(http.NotFoundHandler(), nil)
	if s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != 10*time.Second || s.IdleTimeout != time.Minute ||
		s.MaxHeaderBytes != 64<<10 || s.WriteTimeout != 0 || s.ErrorLog == nil {
		t.Fatalf("server limits: %+v", s)
	}
}

// TestSlowlorisCut: a client that trickles its request, 1 byte at a time, is cut off once the
// read timeout has passed, however steadily it sends.
func TestSlowlorisCut(t *testing.T) {
	const read = time.Second
	tests := []struct {
		name    string
		head    string // sent at once
		trickle string // then one byte per tick
	}{
		{"body", "POST /whep HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\n", strings.Repeat("v", 1000)},
		{"headers", "GET / HTTP/1.1\r\n", strings.Repeat("X-A: b\r\n", 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			})
			addr := serve(t, newServer(h, nil, timeouts{readHeader: read / 2, read: read, idle: read}))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // the test's own bound
			start := time.Now()
			if _, err := io.WriteString(c, tt.head); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(read / 5)
				defer tick.Stop()
				for i := range len(tt.trickle) {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte{tt.trickle[i]}); err != nil {
						return
					}
				}
			}()
			_, err = io.Copy(io.Discard, c) // returns when the server closes the connection
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still open after %v", took)
			}
			if took > 2*read {
				t.Fatalf("cut after %v, want about %v", took, read)
			}
			t.Logf("cut after %v", took)
		})
	}
}

// TestWebSocketOutlivesReadTimeout: a WebSocket served by the server keeps working long after
// ReadTimeout, since gorilla clears the server's deadlines when it hijacks the connection.
func TestWebSocketOutlivesReadTimeout(t *testing.T) {
	const read = 300 * time.Millisecond
	up := websocket.Upgrader{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	})
	addr := serve(t, newServer(h, nil, timeouts{readHeader: read, read: read, idle: read}))
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Quiet spells longer than every server timeout, then a round trip each.
	for i := range 3 {
		time.Sleep(2 * read)
		if err := c.WriteMessage(websocket.TextMessage, []byte{'a' + byte(i)}); err != nil {
			t.Fatalf("write after %v: %v", time.Duration(i+1)*2*read, err)
		}
		_, msg, err := c.ReadMessage()
		if err != nil || string(msg) != string([]byte{'a' + byte(i)}) {
			t.Fatalf("echo after %v: %q, %v", time.Duration(i+1)*2*read, msg, err)
		}
	}
}

// TestSlowAnswerWithinReadTimeout: a handler that takes a while after reading the body (a WHEP
// answer waiting for ICE candidates) answers with its request context alive.
func TestSlowAnswerWithinReadTimeout(t *testing.T) {
	const read = time.Second
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(read / 2):
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "answer")
	})
	addr := serve(t, newServer(h, nil, timeouts{readHeader: read, read: read, idle: read}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nsdp"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || string(body) != "answer" {
		t.Fatalf("got %d %q", res.StatusCode, body)
	}
}
