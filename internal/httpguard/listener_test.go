package httpguard

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// limited is a LimitListener on loopback whose accepted connections arrive on a channel.
type limited struct {
	addr     string
	accepted chan net.Conn
	refused  chan string
}

func newLimited(t *testing.T, max int, exempt []netip.Prefix) *limited {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lt := &limited{addr: raw.Addr().String(), accepted: make(chan net.Conn, 16), refused: make(chan string, 16)}
	l := LimitListener(raw, max, exempt, func(s string) { lt.refused <- s })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			lt.accepted <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(lt.accepted)
		for c := range lt.accepted {
			c.Close()
		}
	})
	return lt
}

// dial connects from the local address from (127.0.0.x) and returns the client's end.
func (lt *limited) dial(t *testing.T, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", lt.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// admitted waits for the server's end of the next accepted connection.
func (lt *limited) admitted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-lt.accepted:
		return c
	case s := <-lt.refused:
		t.Fatalf("connection from %s refused", s)
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
	}
	return nil
}

// refusedFrom waits for a refusal and checks the client sees its connection closed.
func (lt *limited) refusedFrom(t *testing.T, client net.Conn, source string) {
	t.Helper()
	select {
	case s := <-lt.refused:
		if s != source {
			t.Fatalf("refused source %q, want %q", s, source)
		}
	case c := <-lt.accepted:
		t.Fatalf("connection from %v accepted over the limit", c.RemoteAddr())
	case <-time.After(5 * time.Second):
		t.Fatal("no refusal")
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("refused client reads %v, want the connection closed", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestLimitListener(t *testing.T) {
	lt := newLimited(t, 2, []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")})

	lt.dial(t, "127.0.0.1")
	lt.admitted(t)
	lt.dial(t, "127.0.0.1")
	a2 := lt.admitted(t)

	// The third from 127.0.0.1 is closed at once, while 127.0.0.2 still gets in.
	third := lt.dial(t, "127.0.0.1")
	lt.refusedFrom(t, third, "127.0.0.1")
	lt.dial(t, "127.0.0.2")
	lt.admitted(t)

	// Closing one (twice: the slot is given back once) frees exactly one slot.
	a2.Close()
	a2.Close()
	lt.dial(t, "127.0.0.1")
	lt.admitted(t)
	again := lt.dial(t, "127.0.0.1")
	lt.refusedFrom(t, again, "127.0.0.1")

	// An exempt source (a trusted proxy) is not limited.
	for range 4 {
		lt.dial(t, "127.0.0.3")
		lt.admitted(t)
	}
}

// TestLimitListenerHTTP: behind an http.Server, a client hanging up frees its slot once the
// server has closed its end (awaited through ConnState, which runs after the close).
func TestLimitListenerHTTP(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 4)
	closed := make(chan struct{}, 4)
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		nil, timeouts{readHeader: 5 * time.Second, read: 5 * time.Second, idle: 5 * time.Second})
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	l := LimitListener(raw, 1, nil, func(s string) { refused <- s })
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()

	get := func(c *http.Client) error {
		res, err := c.Get("http://" + raw.Addr().String() + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body) // so the connection stays open for reuse
			res.Body.Close()
		}
		return err
	}
	first := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	if err := get(first); err != nil {
		t.Fatal(err)
	}
	second := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	if err := get(second); err == nil {
		t.Fatal("a second connection got through with max 1")
	}
	if s := <-refused; s != "127.0.0.1" {
		t.Fatalf("refused %q", s)
	}
	first.CloseIdleConnections()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never closed the first connection")
	}
	if err := get(second); err != nil {
		t.Fatalf("after the first hung up: %v", err)
	}
	second.CloseIdleConnections()
}

// TestUnlimit: a connection taken out of the count (an authenticated device link) frees its
// slot at once, and its close later gives nothing back twice; a TLS connection is unwrapped.
func TestUnlimit(t *testing.T) {
	lt := newLimited(t, 1, nil)
	lt.dial(t, "127.0.0.1")
	a := lt.admitted(t)
	Unlimit(tls.Server(a, &tls.Config{})) // as the HTTPS server hands it over
	lt.dial(t, "127.0.0.1")
	b := lt.admitted(t)
	a.Close() // its slot was given back already: b still holds the only one
	third := lt.dial(t, "127.0.0.1")
	lt.refusedFrom(t, third, "127.0.0.1")
	Unlimit(b)
	Unlimit(b)
	b.Close()
	lt.dial(t, "127.0.0.1")
	lt.admitted(t)
	Unlimit(nil) // and anything else is left alone
}
