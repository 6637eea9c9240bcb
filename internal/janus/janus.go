// Package janus is a small client of the Janus WebRTC server's HTTP API (the "REST" transport,
// https://janus.conf.meetecho.com/docs/rest.html), for what p2pcast asks of an SFU: sessions,
// plugin handles, plugin messages with their JSEP, trickled candidates, keep-alives and the
// events Janus pushes back over long polls. Every request has a timeout and every answer a
// size limit; Parse, which reads what Janus sends, is fuzzed.
//
// A Session owns one goroutine, its long poll, which routes each event to the handle that
// sent it (or to the request waiting for it, by transaction) and keeps the session alive;
// Keepalive sends the explicit keep-alive as well, for a poll stuck behind a proxy.
package janus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of what is read from Janus and how long a request may take.
const (
	// MaxResponse bounds one HTTP answer (an SDP with its candidates is a few KiB; a poll
	// brings at most maxEvents events).
	MaxResponse = 1 << 20
	// RequestTimeout bounds one request that Janus answers at once.
	RequestTimeout = 10 * time.Second
	// pollWait is how long Janus holds a long poll open (30 s) plus a margin.
	pollWait = 40 * time.Second
	// maxEvents is how many events one poll brings at most.
	maxEvents = 10
	// KeepaliveEvery is below Janus's default session timeout (60 s) with room to spare.
	KeepaliveEvery = 25 * time.Second
)

// Errors.
var (
	// ErrBadMessage: Janus sent something that is not one of its messages.
	ErrBadMessage = errors.New("janus: bad message")
	// ErrClosed: the session or handle is gone (destroyed, timed out, or Janus went away).
	ErrClosed = errors.New("janus: session closed")
)

// Error is an error Janus reported: of its API ("janus":"error"), or of a plugin
// (plugindata with error_code).
type Error struct {
	Code   int
	Reason string
	Plugin bool
}

func (e *Error) Error() string {
	if e.Plugin {
		return fmt.Sprintf("janus plugin error %d: %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("janus error %d: %s", e.Code, e.Reason)
}

// Codes Janus and its VideoRoom plugin answer with that callers act on.
const (
	CodeNoSuchSession    = 458
	CodeNoSuchHandle     = 459
	CodeRoomExists       = 427 // JANUS_VIDEOROOM_ERROR_ROOM_EXISTS
	CodeNoSuchRoom       = 426 // JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM
	CodeNoSuchFeed       = 428 // JANUS_VIDEOROOM_ERROR_NO_SUCH_FEED
	CodeAlreadyJoined    = 425 // JANUS_VIDEOROOM_ERROR_ALREADY_JOINED
	CodeUnauthorizedRoom = 433 // JANUS_VIDEOROOM_ERROR_UNAUTHORIZED
)

// JSEP is an SDP offer or answer as Janus carries it.
type JSEP struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// Candidate is a trickled ICE candidate (as RTCIceCandidateInit); Completed ends them.
type Candidate struct {
	Candidate     string `json:"candidate,omitempty"`
	SDPMid        string `json:"sdpMid,omitempty"`
	SDPMLineIndex *int   `json:"sdpMLineIndex,omitempty"`
	Completed     bool   `json:"completed,omitempty"`
}

// Message is one message from Janus: an answer to a request or an event.
type Message struct {
	Janus       string `json:"janus"` // success, ack, error, event, webrtcup, media, hangup, slowlink, detached, keepalive, timeout
	Transaction string `json:"transaction,omitempty"`
	SessionID   uint64 `json:"session_id,omitempty"`
	Sender      uint64 `json:"sender,omitempty"` // the handle an event is about
	Data        struct {
		ID uint64 `json:"id"`
	} `json:"data"`
	Error *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"error,omitempty"`
	PluginData *struct {
		Plugin string          `json:"plugin"`
		Data   json.RawMessage `json:"data"`
	} `json:"plugindata,omitempty"`
	JSEP   *JSEP  `json:"jsep,omitempty"`
	Reason string `json:"reason,omitempty"` // hangup
}

// Err is the message's error: Janus's, or its plugin's; nil for none.
func (m *Message) Err() error {
	if m.Janus == "error" {
		if m.Error == nil {
			return &Error{Reason: "error without details"}
		}
		return &Error{Code: m.Error.Code, Reason: m.Error.Reason}
	}
	if m.PluginData != nil {
		var pe struct {
			Code  int    `json:"error_code"`
			Error string `json:"error"`
		}
		if json.Unmarshal(m.PluginData.Data, &pe) == nil && (pe.Code != 0 || pe.Error != "") {
			return &Error{Code: pe.Code, Reason: pe.Error, Plugin: true}
		}
	}
	return nil
}

// Plugin decodes the plugin's data into v.
func (m *Message) Plugin(v any) error {
	if m.PluginData == nil || len(m.PluginData.Data) == 0 {
		return fmt.Errorf("%w: %q without plugin data", ErrBadMessage, m.Janus)
	}
	if err := json.Unmarshal(m.PluginData.Data, v); err != nil {
		return fmt.Errorf("%w: plugin data: %v", ErrBadMessage, err)
	}
	return nil
}

// Parse decodes what Janus sent: one message, or an array of them (a long poll with maxev).
func Parse(b []byte) ([]Message, error) {
	b = bytes.TrimSpace(b)
	if len(b) > MaxResponse {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadMessage, len(b))
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadMessage)
	}
	var out []Message
	if b[0] == '[' {
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		if len(out) > 100 {
			return nil, fmt.Errorf("%w: %d events in one answer", ErrBadMessage, len(out))
		}
	} else {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		out = []Message{m}
	}
	for i := range out {
		m := &out[i]
		if m.Janus == "" {
			return nil, fmt.Errorf("%w: no \"janus\" field", ErrBadMessage)
		}
		if m.JSEP != nil && (m.JSEP.Type != "offer" && m.JSEP.Type != "answer" || m.JSEP.SDP == "") {
			return nil, fmt.Errorf("%w: jsep of type %q", ErrBadMessage, m.JSEP.Type)
		}
	}
	return out, nil
}

// Client speaks to one Janus server.
type Client struct {
	base      string // e.g. http://10.0.0.1:8088/janus
	apiSecret string
	http      *http.Client
}

// NewClient checks base, Janus's HTTP API root (http[s]://HOST:PORT/janus). apiSecret is
// Janus's api_secret ("" when it has none). hc nil is a client without redirects.
func NewClient(base, apiSecret string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("janus URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("janus URL %q: want http[s]://HOST[:PORT]/janus", base)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("janus URL %q: no user, query or fragment", base)
	}
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), apiSecret: apiSecret, http: hc}, nil
}

func newTransaction() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// post sends req to path and returns Janus's answer (the one message of a POST).
func (c *Client) post(ctx context.Context, path string, req map[string]any) (*Message, error) {
	if c.apiSecret != "" {
		req["apisecret"] = c.apiSecret
	}
	tx, _ := req["transaction"].(string)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	msgs, err := c.do(r)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("%w: %d messages in answer to %v", ErrBadMessage, len(msgs), req["janus"])
	}
	m := &msgs[0]
	// An error Janus raises before reading the request (a bad secret) may name no transaction.
	if m.Janus == "error" && (m.Transaction == "" || m.Transaction == tx) {
		return m, m.Err()
	}
	if tx != "" && m.Transaction != tx {
		return nil, fmt.Errorf("%w: answer for transaction %q, not %q", ErrBadMessage, m.Transaction, tx)
	}
	return m, nil
}

func (c *Client) do(r *http.Request) ([]Message, error) {
	resp, err := c.http.Do(r)
	if err != nil {
		return nil, fmt.Errorf("janus: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("janus: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("janus: HTTP %d: %.200s", resp.StatusCode, b)
	}
	return Parse(b)
}

// Create makes a session and starts its long poll, which lives until Destroy or ctx ends.
func (c *Client) Create(ctx context.Context) (*Session, error) {
	m, err := c.post(ctx, "", map[string]any{"janus": "create", "transaction": newTransaction()})
	if err != nil {
		return nil, err
	}
	if m.Janus != "success" || m.Data.ID == 0 {
		return nil, fmt.Errorf("%w: create answered %q", ErrBadMessage, m.Janus)
	}
	pctx, cancel := context.WithCancel(context.Background())
	s := &Session{c: c, ID: m.Data.ID, cancel: cancel, done: make(chan struct{}),
		handles: map[uint64]*Handle{}, waiting: map[string]chan *Message{}}
	go s.poll(pctx)
	return s, nil
}

// Session is one Janus session: its handles and its long poll.
type Session struct {
	c      *Client
	ID     uint64
	cancel context.CancelFunc
	done   chan struct{} // closed when the poll ends: the session is gone

	mu      sync.Mutex
	handles map[uint64]*Handle
	waiting map[string]chan *Message // transaction → the request waiting for its event
	err     error                    // why the poll ended
}

func (s *Session) path() string { return "/" + strconv.FormatUint(s.ID, 10) }

// Done is closed when the session has ended (Destroy, or Janus forgot it); Err says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it lives).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// poll long-polls the session's events until ctx ends or Janus forgets the session.
func (s *Session) poll(ctx context.Context) {
	defer close(s.done)
	fails := 0
	for {
		msgs, err := s.pollOnce(ctx)
		if ctx.Err() != nil {
			s.end(ErrClosed)
			return
		}
		if err != nil {
			var je *Error
			if errors.As(err, &je) && je.Code == CodeNoSuchSession {
				s.end(fmt.Errorf("%w: %v", ErrClosed, err))
				return
			}
			// Janus restarting or a network hiccup: retry a few times, then give up (the
			// session has timed out on Janus's side by then).
			if fails++; fails > 5 {
				s.end(fmt.Errorf("%w: %v", ErrClosed, err))
				return
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				s.end(ErrClosed)
				return
			}
			continue
		}
		fails = 0
		for i := range msgs {
			s.route(&msgs[i])
		}
	}
}

func (s *Session) pollOnce(ctx context.Context) ([]Message, error) {
	ctx, cancel := context.WithTimeout(ctx, pollWait)
	defer cancel()
	q := "?maxev=" + strconv.Itoa(maxEvents)
	if s.c.apiSecret != "" {
		q += "&apisecret=" + url.QueryEscape(s.c.apiSecret)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, s.c.base+s.path()+q, nil)
	if err != nil {
		return nil, err
	}
	msgs, err := s.c.do(r)
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if msgs[i].Janus == "error" {
			return nil, msgs[i].Err()
		}
	}
	return msgs, nil
}

// route hands an event to the request waiting for its transaction, else to its handle.
func (s *Session) route(m *Message) {
	if m.Janus == "keepalive" {
		return
	}
	s.mu.Lock()
	if m.Transaction != "" && m.Janus == "event" {
		if ch := s.waiting[m.Transaction]; ch != nil {
			delete(s.waiting, m.Transaction)
			s.mu.Unlock()
			ch <- m
			return
		}
	}
	h := s.handles[m.Sender]
	s.mu.Unlock()
	if h == nil {
		return
	}
	if m.Janus == "detached" {
		h.closeEvents()
		return
	}
	select {
	case h.events <- *m:
	default: // a reader that does not keep up loses events rather than stalling the poll
	}
}

func (s *Session) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	hs := make([]*Handle, 0, len(s.handles))
	for _, h := range s.handles {
		hs = append(hs, h)
	}
	s.handles = map[uint64]*Handle{}
	s.mu.Unlock()
	for _, h := range hs {
		h.closeEvents()
	}
}

// Keepalive tells Janus the session is still wanted.
func (s *Session) Keepalive(ctx context.Context) error {
	_, err := s.c.post(ctx, s.path(), map[string]any{"janus": "keepalive", "transaction": newTransaction()})
	return err
}

// KeepAlive sends a keep-alive every KeepaliveEvery until ctx ends or the session does.
func (s *Session) KeepAlive(ctx context.Context) {
	t := time.NewTicker(KeepaliveEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = s.Keepalive(ctx) // a missed one is made up by the poll and the next
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// Attach makes a handle on plugin (e.g. "janus.plugin.videoroom").
func (s *Session) Attach(ctx context.Context, plugin string) (*Handle, error) {
	m, err := s.c.post(ctx, s.path(), map[string]any{"janus": "attach", "plugin": plugin, "transaction": newTransaction()})
	if err != nil {
		return nil, err
	}
	if m.Janus != "success" || m.Data.ID == 0 {
		return nil, fmt.Errorf("%w: attach answered %q", ErrBadMessage, m.Janus)
	}
	h := &Handle{s: s, ID: m.Data.ID, events: make(chan Message, 16)}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.err
	}
	s.handles[h.ID] = h
	s.mu.Unlock()
	return h, nil
}

// Destroy ends the session on Janus and its poll here.
func (s *Session) Destroy(ctx context.Context) error {
	_, err := s.c.post(ctx, s.path(), map[string]any{"janus": "destroy", "transaction": newTransaction()})
	s.cancel()
	<-s.done
	return err
}

// Handle is one plugin handle of a session.
type Handle struct {
	s      *Session
	ID     uint64
	events chan Message // what Janus says of the handle unasked: webrtcup, media, hangup, slowlink, plugin events

	once sync.Once
}

// Events are what Janus says of the handle unasked (webrtcup, media, hangup, slowlink, and
// plugin events no request waits for); closed when the handle or its session is gone.
func (h *Handle) Events() <-chan Message { return h.events }

func (h *Handle) closeEvents() { h.once.Do(func() { close(h.events) }) }

func (h *Handle) path() string { return h.s.path() + "/" + strconv.FormatUint(h.ID, 10) }

// Request sends a plugin message (body, with jsep if not nil) and returns the plugin's answer:
// the "success" of a synchronous request, or for an asynchronous one (Janus says "ack") the
// event that answers it, waited for until ctx ends. A plugin's error is returned as *Error.
func (h *Handle) Request(ctx context.Context, body any, jsep *JSEP) (*Message, error) {
	tx := newTransaction()
	ch := make(chan *Message, 1)
	h.s.mu.Lock()
	if h.s.err != nil {
		h.s.mu.Unlock()
		return nil, h.s.err
	}
	h.s.waiting[tx] = ch
	h.s.mu.Unlock()
	forget := func() {
		h.s.mu.Lock()
		delete(h.s.waiting, tx)
		h.s.mu.Unlock()
	}
	req := map[string]any{"janus": "message", "transaction": tx, "body": body}
	if jsep != nil {
		req["jsep"] = jsep
	}
	m, err := h.s.c.post(ctx, h.path(), req)
	if err != nil {
		forget()
		return nil, err
	}
	switch m.Janus {
	case "success":
		forget()
		return m, m.Err()
	case "ack":
	default:
		forget()
		return nil, fmt.Errorf("%w: message answered %q", ErrBadMessage, m.Janus)
	}
	select {
	case ev := <-ch:
		return ev, ev.Err()
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	case <-h.s.done:
		forget()
		return nil, h.s.Err()
	}
}

// Trickle sends one candidate (or, with c.Completed, the end of them).
func (h *Handle) Trickle(ctx context.Context, c Candidate) error {
	req := map[string]any{"janus": "trickle", "transaction": newTransaction()}
	if c.Completed {
		req["candidate"] = map[string]bool{"completed": true}
	} else {
		req["candidate"] = c
	}
	_, err := h.s.c.post(ctx, h.path(), req)
	return err
}

// Detach ends the handle (and its PeerConnection on Janus).
func (h *Handle) Detach(ctx context.Context) error {
	_, err := h.s.c.post(ctx, h.path(), map[string]any{"janus": "detach", "transaction": newTransaction()})
	h.s.mu.Lock()
	delete(h.s.handles, h.ID)
	h.s.mu.Unlock()
	h.closeEvents()
	return err
}
