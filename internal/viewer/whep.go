package viewer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/peer"
)

// whepSignaler negotiates with one WHEP POST (draft-ietf-wish-whep): the viewer offers with
// all its candidates, the answer holds the device's.
type whepSignaler struct {
	url    string
	token  string // bearer token for a device with LAN auth ("" for none)
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	location string // the session resource, deleted on close
	closed   bool
}

func (s *whepSignaler) kind() string { return "whep" }
func (s *whepSignaler) note() error  { return nil }

func (s *whepSignaler) connect(context.Context) ([]webrtc.ICEServer, error) { return nil, nil }

func (s *whepSignaler) session(ctx context.Context, pc *webrtc.PeerConnection, requested func()) error {
	// Video and audio: a device without audio answers with the audio section rejected.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	// Host candidates gather in milliseconds; waiting gives WHEP a complete offer.
	select {
	case <-webrtc.GatheringCompletePromise(pc):
	case <-ctx.Done():
		return nil
	}
	requested()
	answer, location, err := post(ctx, s.client, s.url, s.token, pc.LocalDescription().SDP)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.mu.Lock()
	s.location = location
	s.mu.Unlock()
	s.log.Debug("WHEP session", "location", location)
	// The viewer controls ICE here and nominates the first pair that works: the device's TCP
	// candidates are added a moment after the rest (as the device trickles them on its own
	// path), or a TCP connect could beat the UDP checks on an open network; and not at all
	// when UDP is up by then, as the device drops them on its own path.
	answer, tcp := splitTCPCandidates(answer)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("applying the answer: %w", err)
	}
	if len(tcp) > 0 {
		t := time.AfterFunc(peer.TCPCandidateDelay, func() {
			if !tcpStillUseful(pc.ICEConnectionState()) {
				s.log.Debug("connected over UDP: the device's TCP candidates are left out", "candidates", len(tcp))
				return
			}
			for _, c := range tcp {
				if err := pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
					s.log.Debug("TCP candidate refused", "candidate", c, "err", err)
				}
			}
		})
		defer t.Stop()
	}
	<-ctx.Done()
	return nil
}

// tcpStillUseful tells whether TCP candidates may still matter in ICE state st: a pair once
// selected stays selected (Pion does not renominate), so candidates added after that would
// only open TCP connections that carry nothing, a reader and buffers on both sides.
func tcpStillUseful(st webrtc.ICEConnectionState) bool {
	return st != webrtc.ICEConnectionStateConnected && st != webrtc.ICEConnectionStateCompleted
}

// splitTCPCandidates takes the TCP candidate lines out of an SDP, returning them without "a=".
func splitTCPCandidates(sdp string) (rest string, tcp []string) {
	lines := strings.SplitAfter(sdp, "\n")
	var b strings.Builder
	for _, l := range lines {
		trimmed := strings.TrimRight(l, "\r\n")
		if c, ok := strings.CutPrefix(trimmed, "a="); ok && strings.HasPrefix(c, "candidate:") {
			if f := strings.Fields(c); len(f) > 2 && strings.EqualFold(f[2], "tcp") {
				tcp = append(tcp, c)
				continue
			}
		}
		b.WriteString(l)
	}
	return b.String(), tcp
}

func (s *whepSignaler) close() {
	s.mu.Lock()
	location, closed := s.location, s.closed
	s.closed = true
	s.mu.Unlock()
	if location != "" && !closed {
		deleteSession(s.client, location)
	}
}

func post(ctx context.Context, client *http.Client, whepURL, token, offer string) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, whepURL, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("WHEP POST: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		if se := httpRefusal(resp.StatusCode, string(bytes.TrimSpace(body))); se != nil {
			return "", "", fmt.Errorf("WHEP POST %s: %w", whepURL, se)
		}
		return "", "", fmt.Errorf("WHEP POST: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	loc, err := resp.Location()
	if err != nil {
		return "", "", fmt.Errorf("WHEP answer without Location: %w", err)
	}
	return string(body), loc.String(), nil
}

func deleteSession(client *http.Client, location string) {
	if _, err := url.Parse(location); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return
	}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
}
