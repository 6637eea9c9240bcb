// Package janustest is a fake Janus server for tests: the parts of its HTTP API
// (https://janus.conf.meetecho.com/docs/rest.html) and VideoRoom plugin that p2pcast uses —
// sessions, handles, create/joinandconfigure/join/start/configure, trickle, keep-alives, long
// polls — with canned SDP, and counters of what it was asked.
package janustest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Canned SDP the fake answers with.
const (
	PublisherAnswer = "v=0\r\no=janus answer\r\n"
	SubscriberOffer = "v=0\r\no=janus offer\r\n"
)

// Server is a fake Janus. Its fields are read under Lock.
type Server struct {
	*httptest.Server
	// PollWait is how long a long poll waits for an event (Janus: 30 s).
	PollWait time.Duration

	mu       sync.Mutex
	next     uint64
	sessions map[uint64]*session
	rooms    map[uint64]map[uint64]bool // room → its published feeds
	// Counters and the last things received.
	Keepalives, Trickles, Detaches, Destroys int
	Candidates                               []map[string]any
	Starts                                   []string // the subscribers' answers
	Subscriptions                            []map[string]any
	Publishes                                []string // the publishers' offers
}

type session struct {
	handles map[uint64]bool
	events  chan map[string]any
}

// New starts a fake Janus at URL()+"/janus".
func New() *Server {
	s := &Server{PollWait: 200 * time.Millisecond, next: 1000, sessions: map[uint64]*session{}, rooms: map[uint64]map[uint64]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// API is the root of the fake's API, as a client is configured with it.
func (s *Server) API() string { return s.URL + "/janus" }

// AddFeed publishes feed in room, as a publisher elsewhere would have.
func (s *Server) AddFeed(room, feed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[room] == nil {
		s.rooms[room] = map[uint64]bool{}
	}
	s.rooms[room][feed] = true
}

// Sessions is how many sessions live.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Hangup makes Janus hang up every handle of every session (as when a PeerConnection fails).
func (s *Server) Hangup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		for h := range ss.handles {
			ss.events <- map[string]any{"janus": "hangup", "sender": h, "reason": "test"}
		}
	}
}

// Lock and Unlock guard the counters.
func (s *Server) Lock()   { s.mu.Lock() }
func (s *Server) Unlock() { s.mu.Unlock() }

func (s *Server) id() uint64 { s.next++; return s.next }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func janusError(tx string, code int, reason string) map[string]any {
	return map[string]any{"janus": "error", "transaction": tx, "error": map[string]any{"code": code, "reason": reason}}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/janus"), "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	var ids []uint64
	for _, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			http.Error(w, "bad path", http.StatusNotFound)
			return
		}
		ids = append(ids, v)
	}
	if r.Method == http.MethodGet {
		if len(ids) != 1 {
			http.Error(w, "bad path", http.StatusNotFound)
			return
		}
		s.poll(w, r, ids[0])
		return
	}
	var req struct {
		Janus       string          `json:"janus"`
		Transaction string          `json:"transaction"`
		Plugin      string          `json:"plugin"`
		Body        json.RawMessage `json:"body"`
		JSEP        *struct {
			Type, SDP string
		} `json:"jsep"`
		Candidate map[string]any `json:"candidate"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Transaction == "" {
		writeJSON(w, janusError(req.Transaction, 454, "invalid JSON or no transaction"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ss *session
	if len(ids) > 0 {
		if ss = s.sessions[ids[0]]; ss == nil {
			writeJSON(w, janusError(req.Transaction, 458, "No such session "+parts[0]))
			return
		}
	}
	if len(ids) > 1 && !ss.handles[ids[1]] {
		writeJSON(w, janusError(req.Transaction, 459, "No such handle "+parts[1]))
		return
	}
	ack := map[string]any{"janus": "ack", "transaction": req.Transaction}
	switch {
	case len(ids) == 0 && req.Janus == "create":
		id := s.id()
		s.sessions[id] = &session{handles: map[uint64]bool{}, events: make(chan map[string]any, 64)}
		writeJSON(w, map[string]any{"janus": "success", "transaction": req.Transaction, "data": map[string]any{"id": id}})
	case len(ids) == 1 && req.Janus == "attach":
		if req.Plugin != "janus.plugin.videoroom" {
			writeJSON(w, janusError(req.Transaction, 460, "No such plugin"))
			return
		}
		id := s.id()
		ss.handles[id] = true
		writeJSON(w, map[string]any{"janus": "success", "transaction": req.Transaction, "data": map[string]any{"id": id}})
	case len(ids) == 1 && req.Janus == "keepalive":
		s.Keepalives++
		writeJSON(w, ack)
	case len(ids) == 1 && req.Janus == "destroy":
		s.Destroys++
		delete(s.sessions, ids[0])
		writeJSON(w, map[string]any{"janus": "success", "transaction": req.Transaction})
	case len(ids) == 2 && req.Janus == "detach":
		s.Detaches++
		delete(ss.handles, ids[1])
		writeJSON(w, map[string]any{"janus": "success", "transaction": req.Transaction})
	case len(ids) == 2 && req.Janus == "trickle":
		s.Trickles++
		s.Candidates = append(s.Candidates, req.Candidate)
		writeJSON(w, ack)
	case len(ids) == 2 && req.Janus == "message":
		var jsep *struct{ Type, SDP string }
		if req.JSEP != nil {
			jsep = &struct{ Type, SDP string }{req.JSEP.Type, req.JSEP.SDP}
		}
		s.message(w, ss, ids[1], req.Transaction, req.Body, jsep)
	default:
		writeJSON(w, janusError(req.Transaction, 453, "Unknown request "+req.Janus))
	}
}

// message is the VideoRoom plugin.
func (s *Server) message(w http.ResponseWriter, ss *session, handle uint64, tx string, raw json.RawMessage, jsep *struct{ Type, SDP string }) {
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	num := func(k string) uint64 {
		f, _ := body[k].(float64)
		return uint64(f)
	}
	plugin := func(data map[string]any) map[string]any {
		return map[string]any{"plugin": "janus.plugin.videoroom", "data": data}
	}
	event := func(data map[string]any, jsepType, sdp string) {
		ev := map[string]any{"janus": "event", "sender": handle, "transaction": tx, "plugindata": plugin(data)}
		if jsepType != "" {
			ev["jsep"] = map[string]any{"type": jsepType, "sdp": sdp}
		}
		ss.events <- ev
	}
	fail := func(code int, msg string) {
		event(map[string]any{"videoroom": "event", "error_code": code, "error": msg}, "", "")
	}
	room := num("room")
	switch body["request"] {
	case "create":
		data := map[string]any{"videoroom": "created", "room": room}
		if s.rooms[room] != nil {
			data = map[string]any{"videoroom": "event", "error_code": 427, "error": fmt.Sprintf("Room %d already exists", room)}
		} else {
			s.rooms[room] = map[uint64]bool{}
		}
		writeJSON(w, map[string]any{"janus": "success", "transaction": tx, "sender": handle, "plugindata": plugin(data)})
		return
	}
	writeJSON(w, map[string]any{"janus": "ack", "transaction": tx})
	switch body["request"] {
	case "joinandconfigure":
		if s.rooms[room] == nil {
			fail(426, "No such room")
			return
		}
		if jsep == nil || jsep.Type != "offer" {
			fail(429, "Missing offer")
			return
		}
		s.Publishes = append(s.Publishes, jsep.SDP)
		feed := s.id()
		s.rooms[room][feed] = true
		event(map[string]any{"videoroom": "joined", "room": room, "id": feed}, "answer", PublisherAnswer)
		ss.events <- map[string]any{"janus": "webrtcup", "sender": handle}
	case "join":
		s.Subscriptions = append(s.Subscriptions, body)
		streams, _ := body["streams"].([]any)
		if len(streams) == 0 {
			fail(429, "Missing streams")
			return
		}
		for _, st := range streams {
			m, _ := st.(map[string]any)
			f, _ := m["feed"].(float64)
			if !s.rooms[room][uint64(f)] {
				fail(428, "No such feed")
				return
			}
		}
		event(map[string]any{"videoroom": "attached", "room": room}, "offer", SubscriberOffer)
	case "start":
		if jsep == nil || jsep.Type != "answer" {
			fail(429, "Missing answer")
			return
		}
		s.Starts = append(s.Starts, jsep.SDP)
		event(map[string]any{"videoroom": "event", "started": "ok"}, "", "")
	case "configure":
		if r, _ := body["restart"].(bool); r {
			event(map[string]any{"videoroom": "event", "configured": "ok"}, "offer", SubscriberOffer+"a=restart\r\n")
			return
		}
		event(map[string]any{"videoroom": "event", "configured": "ok"}, "", "")
	default:
		fail(423, "Unknown request")
	}
}

// poll is a long poll: the events queued, up to maxev, or a keepalive after PollWait.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, id uint64) {
	s.mu.Lock()
	ss := s.sessions[id]
	wait := s.PollWait
	s.mu.Unlock()
	if ss == nil {
		writeJSON(w, janusError("", 458, "No such session"))
		return
	}
	maxev, _ := strconv.Atoi(r.URL.Query().Get("maxev"))
	var out []map[string]any
	select {
	case ev := <-ss.events:
		out = append(out, ev)
	case <-time.After(wait):
		out = append(out, map[string]any{"janus": "keepalive"})
	case <-r.Context().Done():
		return
	}
	for len(out) < max(1, maxev) {
		select {
		case ev := <-ss.events:
			out = append(out, ev)
			continue
		default:
		}
		break
	}
	if maxev == 0 {
		writeJSON(w, out[0])
		return
	}
	writeJSON(w, out)
}
