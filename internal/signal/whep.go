package signal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// gatherTimeout bounds how long a WHEP answer waits for the device's candidates. Host candidates
// take milliseconds; STUN ones are bounded by Pion's own gather timeout.
const gatherTimeout = 3 * time.Second

// WHEP serves draft-ietf-wish-whep at a base path: POST base, PATCH and DELETE base/{id}.
type WHEP struct {
	backend Backend
	base    string
	opts    Options
	log     *slog.Logger

	mu       sync.Mutex
	sessions map[string]Session
}

// NewWHEP serves WHEP for backend under base (e.g. "/whep"). A viewer proves its access with
// "Authorization: Bearer <token>" on the POST when opts.Gate requires it; the resource URL it
// gets back (an unguessable id) then stands for the session.
func NewWHEP(backend Backend, base string, opts Options) *WHEP {
	opts = opts.withDefaults()
	return &WHEP{backend: backend, base: strings.TrimSuffix(base, "/"), opts: opts, log: opts.Logger, sessions: map[string]Session{}}
}

// Register adds the WHEP routes to mux.
func (h *WHEP) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+h.base, h.post)
	// base/{source}: a multi-source device's other sources (base alone is the default).
	mux.HandleFunc("POST "+h.base+"/{source}", h.post)
	mux.HandleFunc("OPTIONS "+h.base, h.options)
	mux.HandleFunc("OPTIONS "+h.base+"/{id}", h.options)
	mux.HandleFunc("PATCH "+h.base+"/{id}", h.patch)
	mux.HandleFunc("DELETE "+h.base+"/{id}", h.delete)
}

// CORS headers of WHEP, for a device configured to let other origins' pages use it
// (--allow-origin); without that list no origin but the device's own gets a grant.
const (
	CORSMethods = "POST, PATCH, DELETE, OPTIONS"
	CORSHeaders = "Content-Type, If-Match, Authorization"
	CORSExpose  = "Location, ETag, Accept-Patch, Link"
)

func (h *WHEP) options(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

// readBody enforces the content type and the size limit, answering the error itself.
func readBody(w http.ResponseWriter, r *http.Request, contentType string) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != contentType {
		http.Error(w, "Content-Type must be "+contentType, http.StatusUnsupportedMediaType)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("body over %d bytes", MaxMessage), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		}
		return nil, false
	}
	return body, true
}

func (h *WHEP) post(w http.ResponseWriter, r *http.Request) {
	access, err := h.opts.Gate.Admit(BearerToken(r))
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="p2pcast"`)
		}
		h.log.Info("whep refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	sourceID := r.PathValue("source")
	if sourceID != "" && !ValidSourceID(sourceID) {
		http.Error(w, ErrUnknownSource.Error(), http.StatusNotFound)
		return
	}
	offer, ok := readBody(w, r, "application/sdp")
	if !ok {
		return
	}
	s, err := h.backend.NewSession(Request{Access: access, Source: h.opts.Source(r), SourceID: sourceID})
	if err != nil {
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	if _, err := s.Answer(string(offer)); err != nil {
		s.Close()
		h.log.Info("whep offer refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	select {
	case <-s.GatheringDone():
	case <-time.After(gatherTimeout):
	case <-r.Context().Done():
		s.Close()
		return
	}
	id := s.ID()
	h.mu.Lock()
	h.sessions[id] = s
	h.mu.Unlock()
	go func() {
		<-s.Done()
		h.mu.Lock()
		delete(h.sessions, id)
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", h.base+"/"+id)
	w.Header().Set("ETag", `"`+id+`"`)
	w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, s.LocalDescription())
}

func (h *WHEP) session(w http.ResponseWriter, r *http.Request) (Session, bool) {
	h.mu.Lock()
	s, ok := h.sessions[r.PathValue("id")]
	h.mu.Unlock()
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
	}
	return s, ok
}

func (h *WHEP) patch(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	frag, ok := readBody(w, r, "application/trickle-ice-sdpfrag")
	if !ok {
		return
	}
	cands, err := ParseSDPFrag(string(frag))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for i := range cands {
		if err := s.AddCandidate(&cands[i]); err != nil {
			http.Error(w, err.Error(), httpStatus(err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *WHEP) delete(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	s.Close()
	w.WriteHeader(http.StatusOK)
}

// ParseSDPFrag reads the candidates of a trickle-ICE SDP fragment (RFC 8840): a=candidate lines,
// each applying to the most recent a=mid. Other lines are ignored.
func ParseSDPFrag(frag string) ([]webrtc.ICECandidateInit, error) {
	var out []webrtc.ICECandidateInit
	var mid *string
	var ufrag *string
	sc := bufio.NewScanner(strings.NewReader(frag))
	sc.Buffer(make([]byte, 0, 4096), MaxMessage)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "a=mid:"):
			m := strings.TrimPrefix(line, "a=mid:")
			mid = &m
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			u := strings.TrimPrefix(line, "a=ice-ufrag:")
			ufrag = &u
		case strings.HasPrefix(line, "a=candidate:"):
			c := strings.TrimPrefix(line, "a=")
			if len(c) > maxCandidate || len(strings.Fields(c)) < 8 {
				return nil, fmt.Errorf("%w: malformed candidate line %q", ErrBadMessage, truncate(line, 80))
			}
			var idx uint16
			out = append(out, webrtc.ICECandidateInit{Candidate: c, SDPMid: mid, SDPMLineIndex: &idx, UsernameFragment: ufrag})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
