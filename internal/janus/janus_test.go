package janus_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/janus"
	"github.com/p2pcast/p2pcast/internal/janus/janustest"
)

func newClient(t *testing.T, base string) *janus.Client {
	t.Helper()
	c, err := janus.NewClient(base, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPublishAndSubscribe(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t, fake.API())

	pub, err := c.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := pub.Attach(ctx, janus.VideoRoom)
	if err != nil {
		t.Fatal(err)
	}
	room := janus.Room{ID: 1234, Description: "test"}
	if err := janus.CreateRoom(ctx, h, room); err != nil {
		t.Fatal(err)
	}
	if err := janus.CreateRoom(ctx, h, room); err != nil {
		t.Fatalf("a room that exists already: %v", err)
	}
	feed, answer, err := janus.Publish(ctx, h, room.ID, "", "cam", "v=0 offer")
	if err != nil {
		t.Fatal(err)
	}
	if feed == 0 || answer != janustest.PublisherAnswer {
		t.Fatalf("publish: feed %d answer %q", feed, answer)
	}
	select {
	case ev := <-h.Events():
		if ev.Janus != "webrtcup" {
			t.Fatalf("event %q, want webrtcup", ev.Janus)
		}
	case <-ctx.Done():
		t.Fatal("no webrtcup")
	}

	sub, err := c.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := sub.Attach(ctx, janus.VideoRoom)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := janus.Subscribe(ctx, sh, room.ID, "", 999, nil); !isPlugin(err, janus.CodeNoSuchFeed) {
		t.Fatalf("subscribing to a feed that is not there: %v, want plugin error %d", err, janus.CodeNoSuchFeed)
	}
	offer, err := janus.Subscribe(ctx, sh, room.ID, "", feed, []string{"0", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if offer != janustest.SubscriberOffer {
		t.Fatalf("offer %q", offer)
	}
	if err := janus.Start(ctx, sh, "v=0 viewer answer"); err != nil {
		t.Fatal(err)
	}
	idx := 0
	if err := sh.Trickle(ctx, janus.Candidate{Candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host", SDPMid: "0", SDPMLineIndex: &idx}); err != nil {
		t.Fatal(err)
	}
	if err := sh.Trickle(ctx, janus.Candidate{Completed: true}); err != nil {
		t.Fatal(err)
	}
	again, err := janus.RestartICE(ctx, sh)
	if err != nil || !strings.Contains(again, "a=restart") {
		t.Fatalf("restart: %q, %v", again, err)
	}
	if err := sub.Keepalive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sh.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sh.Events(); ok {
		t.Fatal("a detached handle's events are not closed")
	}
	for _, s := range []*janus.Session{sub, pub} {
		if err := s.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.Done():
		default:
			t.Fatal("a destroyed session's poll goes on")
		}
	}
	if n := fake.Sessions(); n != 0 {
		t.Errorf("%d sessions left on Janus", n)
	}
	fake.Lock()
	defer fake.Unlock()
	if len(fake.Starts) != 1 || fake.Starts[0] != "v=0 viewer answer" {
		t.Errorf("starts %q", fake.Starts)
	}
	if fake.Trickles != 2 || fake.Candidates[0]["candidate"] == nil || fake.Candidates[1]["completed"] != true {
		t.Errorf("trickles %d: %v", fake.Trickles, fake.Candidates)
	}
	if len(fake.Subscriptions) != 2 {
		t.Fatalf("subscriptions %v", fake.Subscriptions)
	}
	if streams := fake.Subscriptions[1]["streams"].([]any); len(streams) != 2 {
		t.Errorf("streams %v, want one per mid", streams)
	}
	if fake.Keepalives != 1 || fake.Detaches != 1 || fake.Destroys != 2 {
		t.Errorf("keepalives %d, detaches %d, destroys %d", fake.Keepalives, fake.Detaches, fake.Destroys)
	}
}

func isPlugin(err error, code int) bool {
	var je *janus.Error
	return errors.As(err, &je) && je.Plugin && je.Code == code
}

// A session Janus forgot (it timed out) ends here too: its poll sees "no such session",
// and requests fail with Janus's error.
func TestSessionJanusForgot(t *testing.T) {
	fake := janustest.New()
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t, fake.API())
	s, err := c.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Attach(ctx, janus.VideoRoom)
	if err != nil {
		t.Fatal(err)
	}
	fake.Hangup()
	select {
	case ev := <-h.Events():
		if ev.Janus != "hangup" || ev.Reason != "test" {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no hangup")
	}
	// Another client destroys it behind our back.
	req, _ := http.NewRequest("POST", fake.API()+"/"+strconv.FormatUint(s.ID, 10), strings.NewReader(`{"janus":"destroy","transaction":"x"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("the session's poll did not end")
	}
	if !errors.Is(s.Err(), janus.ErrClosed) {
		t.Fatalf("err %v", s.Err())
	}
	if _, ok := <-h.Events(); ok {
		t.Fatal("the handle's events stay open")
	}
	var je *janus.Error
	if err := s.Keepalive(ctx); !errors.As(err, &je) || je.Code != janus.CodeNoSuchSession {
		t.Fatalf("keepalive on a forgotten session: %v", err)
	}
	if _, err := h.Request(ctx, map[string]any{"request": "start"}, nil); !errors.Is(err, janus.ErrClosed) {
		t.Fatalf("a request on a closed session: %v", err)
	}
}

func TestBadServers(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }, "bad message"},
		{"HTTP error", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusBadGateway) }, "HTTP 502"},
		{"too big", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"janus":"success","x":"` + strings.Repeat("a", janus.MaxResponse) + `"}`))
		}, "bad message"},
		{"other transaction", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"janus":"success","transaction":"nope","data":{"id":1}}`))
		}, "transaction"},
		{"API error", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"janus":"error","error":{"code":403,"reason":"Unauthorized request (wrong or missing secret/token)"}}`))
		}, "janus error 403"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.com/", http.StatusFound)
		}, "HTTP 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			_, err := newClient(t, srv.URL+"/janus").Create(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// A server that never answers costs a request at most its timeout (here the caller's).
func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := newClient(t, srv.URL+"/janus").Create(ctx); err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestNewClientRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "janus", "ftp://h/janus", "http:///janus", "http://u:p@h/janus", "http://h/janus?x=1"} {
		if _, err := janus.NewClient(u, "", nil); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{`{"janus":"ack","transaction":"t"}`, 1, false},
		{`[{"janus":"event","sender":1},{"janus":"webrtcup","sender":1}]`, 2, false},
		{`[]`, 0, false},
		{``, 0, true},
		{`{}`, 0, true},
		{`{"janus":"event","jsep":{"type":"pranswer","sdp":"v=0"}}`, 0, true},
		{`{"janus":"event","jsep":{"type":"offer","sdp":""}}`, 0, true},
		{`{"janus":1}`, 0, true},
	} {
		msgs, err := janus.Parse([]byte(tc.in))
		if (err != nil) != tc.fail || (!tc.fail && len(msgs) != tc.n) {
			t.Errorf("Parse(%s) = %d messages, %v", tc.in, len(msgs), err)
		}
	}
	msgs, _ := janus.Parse([]byte(`{"janus":"success","plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"event","error_code":426,"error":"No such room"}}}`))
	var je *janus.Error
	if err := msgs[0].Err(); !errors.As(err, &je) || !je.Plugin || je.Code != janus.CodeNoSuchRoom {
		t.Fatalf("plugin error: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"janus":"success","transaction":"t","data":{"id":1}}`,
		`[{"janus":"event","sender":1,"transaction":"t","plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"attached"}},"jsep":{"type":"offer","sdp":"v=0"}}]`,
		`{"janus":"error","error":{"code":458,"reason":"No such session"}}`,
		`{"janus":"hangup","sender":5,"reason":"DTLS alert"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := janus.Parse(b)
		if err != nil {
			return
		}
		for i := range msgs {
			if msgs[i].Janus == "" {
				t.Fatal("a message without its janus field")
			}
			if j := msgs[i].JSEP; j != nil && (j.SDP == "" || j.Type != "offer" && j.Type != "answer") {
				t.Fatalf("jsep %+v", j)
			}
			_ = msgs[i].Err()
			var v map[string]any
			_ = msgs[i].Plugin(&v)
		}
	})
}
