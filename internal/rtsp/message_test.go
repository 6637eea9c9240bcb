package rtsp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReadMessage(t *testing.T) {
	m, err := readMessageBytes(readTestdata(t, "gst-h264-pcma.describe"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.response || m.code != 200 || m.cseq() != 2 || m.header.get("content-base") != "rtsp://127.0.0.1:18555/test/" || len(m.body) != 696 {
		t.Errorf("got %+v", m)
	}
	m, err = readMessageBytes([]byte("RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nWWW-Authenticate: Basic realm=\"r\"\r\n\r\n"))
	if err != nil || m.code != 401 || m.reason != "Unauthorized" || len(m.header.all("www-authenticate")) != 2 {
		t.Errorf("401: %+v %v", m, err)
	}
	// A request from the server.
	m, err = readMessageBytes([]byte("SET_PARAMETER rtsp://c/ RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nabcd"))
	if err != nil || m.response || m.method != "SET_PARAMETER" || string(m.body) != "abcd" {
		t.Errorf("request: %+v %v", m, err)
	}
}

func TestReadMessageBounds(t *testing.T) {
	for name, c := range map[string]struct {
		in   string
		want error
	}{
		"huge header":  {"RTSP/1.0 200 OK\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", ErrTooLarge},
		"many headers": {"RTSP/1.0 200 OK\r\n" + strings.Repeat("X: 1\r\n", 200) + "\r\n", ErrTooLarge},
		"huge body":    {"RTSP/1.0 200 OK\r\nContent-Length: 70000\r\n\r\n", ErrTooLarge},
		"bad length":   {"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", ErrProtocol},
		"bad status":   {"RTSP/1.0 abc OK\r\n\r\n", ErrProtocol},
		"bad header":   {"RTSP/1.0 200 OK\r\nno colon\r\n\r\n", ErrProtocol},
		"short body":   {"RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc", ErrServerClosed},
		"cut":          {"RTSP/1.0 200 OK\r\nCSeq: 1", ErrServerClosed},
	} {
		if _, err := readMessageBytes([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestFramer(t *testing.T) {
	var in []byte
	in = append(in, interleaved(0, []byte{1, 2, 3})...)
	in = append(in, "\r\nRTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 2\r\n\r\nok"...)
	in = append(in, interleaved(3, make([]byte, 65535))...)
	in = append(in, interleaved(1, nil)...)
	in = append(in, 0x17)
	f := newFramer(bytes.NewReader(in))
	it, err := f.next()
	if err != nil || it.channel != 0 || !bytes.Equal(it.data, []byte{1, 2, 3}) {
		t.Fatalf("frame 1: %+v %v", it, err)
	}
	it, err = f.next()
	if err != nil || it.msg == nil || it.msg.cseq() != 5 || string(it.msg.body) != "ok" {
		t.Fatalf("message: %+v %v", it, err)
	}
	it, err = f.next()
	if err != nil || it.channel != 3 || len(it.data) != 65535 {
		t.Fatalf("largest frame: %d bytes, %v", len(it.data), err)
	}
	it, err = f.next()
	if err != nil || it.channel != 1 || len(it.data) != 0 {
		t.Fatalf("empty frame: %+v %v", it, err)
	}
	if _, err = f.next(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("junk: %v", err)
	}
	if _, err := newFramer(bytes.NewReader([]byte{'$', 0, 0, 9, 1})).next(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("cut frame: %v", err)
	}
}

func TestRequestEncode(t *testing.T) {
	var b bytes.Buffer
	q := request{method: "SETUP", url: "rtsp://cam/s/trackID=1", header: header{{"Transport", "RTP/AVP/TCP;unicast;interleaved=2-3"}}}
	q.encode(&b, 4, "p2pcast")
	want := "SETUP rtsp://cam/s/trackID=1 RTSP/1.0\r\nCSeq: 4\r\nUser-Agent: p2pcast\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n"
	if b.String() != want {
		t.Errorf("got %q", b.String())
	}
}

func TestTransportAndSession(t *testing.T) {
	for tr, want := range map[string][2]int{
		"RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1234": {0, 1},
		"RTP/AVP/TCP;interleaved=4-5":                   {4, 5},
		"RTP/AVP/TCP;unicast;interleaved=6":             {6, 7},
		"":                                              {2, 3},
	} {
		a, b, err := interleavedChannels(tr, 2)
		if err != nil || a != want[0] || b != want[1] {
			t.Errorf("%q: %d-%d %v", tr, a, b, err)
		}
	}
	for _, bad := range []string{"RTP/AVP;unicast;client_port=5000-5001", "RTP/AVP/TCP;interleaved=x-1", "RTP/AVP/TCP;interleaved=300-301", "RTP/AVP/TCP;interleaved=1-1"} {
		if _, _, err := interleavedChannels(bad, 0); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var c Conn
	if err := c.setSession("  12345678;timeout=30"); err != nil || c.session != "12345678" || c.sessionTimeout.Seconds() != 30 {
		t.Errorf("session %q %v %v", c.session, c.sessionTimeout, err)
	}
	if err := c.setSession("ABC"); err != nil || c.session != "ABC" || c.sessionTimeout.Seconds() != 60 {
		t.Errorf("session %q %v %v", c.session, c.sessionTimeout, err)
	}
	if err := (&Conn{}).setSession(""); !errors.Is(err, ErrProtocol) {
		t.Errorf("no session: %v", err)
	}
}
