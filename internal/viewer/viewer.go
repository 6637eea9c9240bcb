// Package viewer is a WebRTC receiver for p2pcast devices: it negotiates over WHEP, rebuilds
// H.264 access units, and measures what a viewer experiences (frames, RTP sequence gaps, time
// to the first keyframe, the ICE pair). `p2pcast view`, the load benchmark and the end-to-end
// tests use it.
package viewer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/h264rtp"
	"github.com/p2pcast/p2pcast/internal/media"
)

// Options configure one viewing.
type Options struct {
	// WHEPURL is the device's WHEP endpoint, e.g. http://127.0.0.1:8080/whep.
	WHEPURL string
	// Out receives the access units in Annex-B; may be nil.
	Out io.Writer
	// Duration counts from the first frame; 0 watches until ctx ends.
	Duration time.Duration
	// Frames stops after this many frames; 0 means no limit.
	Frames int
	// OnFrame, if set, sees every complete frame (Annex-B, valid during the call).
	OnFrame func(au []byte, keyframe bool, rtpTime uint32)
	Logger  *slog.Logger
	Client  *http.Client
}

// Pair is the selected ICE candidate pair.
type Pair struct {
	LocalType  string `json:"local_type"`
	RemoteType string `json:"remote_type"`
	Protocol   string `json:"protocol"`
}

// Result is what a viewing measured.
type Result struct {
	Frames     int     `json:"frames"`
	Keyframes  int     `json:"keyframes"`
	Bytes      int64   `json:"bytes"`
	BitrateBPS int64   `json:"bitrate_bps"`
	FPS        float64 `json:"fps"`
	Packets    uint64  `json:"packets"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	// TTFFMS is start → first complete frame; FirstKeyframeMS is the POST → first keyframe.
	TTFFMS          float64 `json:"ttff_ms"`
	FirstKeyframeMS float64 `json:"first_keyframe_ms"`
	Width           int     `json:"width"`
	Height          int     `json:"height"`
	Pair            Pair    `json:"pair"`
	DurationS       float64 `json:"duration_s"`
}

// ErrNoMedia is returned when the session ended before any frame arrived.
var ErrNoMedia = errors.New("viewer: no frame received")

func newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack", Parameter: "pli"}}},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // devices send IP candidates
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Watch views a device until the duration, the frame count or ctx ends it.
func Watch(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	api, err := newAPI()
	if err != nil {
		return Result{}, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return Result{}, err
	}
	defer pc.Close()
	tr, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	if err != nil {
		return Result{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc := &receiver{o: o, start: start, done: cancel}
	trackDone := make(chan struct{})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		defer close(trackDone)
		rc.read(ctx, t, func() Pair { return selectedPair(tr) })
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			cancel()
		}
	})

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return Result{}, err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return Result{}, err
	}
	// Host candidates gather in milliseconds; waiting gives WHEP a complete offer.
	select {
	case <-webrtc.GatheringCompletePromise(pc):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	rc.posted = time.Now()
	answer, location, err := post(ctx, o.Client, o.WHEPURL, pc.LocalDescription().SDP)
	if err != nil {
		return Result{}, err
	}
	defer deleteSession(o.Client, location)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return Result{}, fmt.Errorf("applying the answer: %w", err)
	}
	<-ctx.Done()
	pc.Close()
	select {
	case <-trackDone:
	case <-time.After(2 * time.Second):
	}
	res := rc.result()
	if res.Frames == 0 {
		return res, ErrNoMedia
	}
	return res, nil
}

func post(ctx context.Context, client *http.Client, whepURL, offer string) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, whepURL, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("WHEP POST: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
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

func selectedPair(tr *webrtc.RTPTransceiver) Pair {
	t := tr.Receiver().Transport()
	if t == nil {
		return Pair{}
	}
	p, err := t.ICETransport().GetSelectedCandidatePair()
	if err != nil || p == nil {
		return Pair{}
	}
	return Pair{LocalType: p.Local.Typ.String(), RemoteType: p.Remote.Typ.String(), Protocol: p.Local.Protocol.String()}
}

// receiver counts what arrives on the track.
type receiver struct {
	o      Options
	start  time.Time
	posted time.Time
	done   func()

	mu       sync.Mutex
	res      Result
	first    time.Time
	last     time.Time
	firstSeq uint32
	highSeq  uint32 // extended highest sequence number
	haveSeq  bool
}

func (rc *receiver) read(ctx context.Context, t *webrtc.TrackRemote, pair func() Pair) {
	var d h264rtp.Depacketizer
	var pkt rtp.Packet
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		now := time.Now()
		rc.mu.Lock()
		rc.res.Packets++
		if rc.countSeq(pkt.SequenceNumber) {
			d.Lost()
		}
		rc.mu.Unlock()
		au, _ := d.Push(pkt.Payload, pkt.Marker)
		if au == nil {
			continue
		}
		key := media.IsKeyframe(au)
		rc.mu.Lock()
		if rc.res.Frames == 0 && !key {
			rc.mu.Unlock()
			continue // undecodable until the first keyframe
		}
		if rc.res.Frames == 0 {
			rc.first = now
			rc.res.TTFFMS = ms(now.Sub(rc.start))
			rc.res.FirstKeyframeMS = ms(now.Sub(rc.posted))
			rc.res.Pair = pair()
		}
		if key {
			rc.res.Keyframes++
			if rc.res.Width == 0 {
				rc.res.Width, rc.res.Height = frameSize(au)
			}
		}
		rc.res.Frames++
		rc.res.Bytes += int64(len(au))
		rc.last = now
		frames := rc.res.Frames
		rc.mu.Unlock()
		if rc.o.Out != nil {
			if _, err := rc.o.Out.Write(au); err != nil {
				rc.o.Logger.Error("writing output", "err", err)
				rc.done()
				return
			}
		}
		if rc.o.OnFrame != nil {
			rc.o.OnFrame(au, key, pkt.Timestamp)
		}
		if (rc.o.Frames > 0 && frames >= rc.o.Frames) || (rc.o.Duration > 0 && now.Sub(rc.first) >= rc.o.Duration) {
			rc.done()
			return
		}
	}
}

// countSeq tracks the extended sequence number (RFC 3550 A.1) and reports a gap.
func (rc *receiver) countSeq(seq uint16) (gap bool) {
	if !rc.haveSeq {
		rc.haveSeq, rc.firstSeq, rc.highSeq = true, uint32(seq), uint32(seq)
		return false
	}
	delta := int16(seq - uint16(rc.highSeq))
	if delta <= 0 {
		return false // reordered or retransmitted
	}
	rc.highSeq += uint32(delta)
	return delta > 1
}

func (rc *receiver) result() Result {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	r := rc.res
	if rc.haveSeq {
		expected := uint64(rc.highSeq-rc.firstSeq) + 1
		if expected > r.Packets {
			r.Lost = expected - r.Packets
		}
		r.LossPct = 100 * float64(r.Lost) / float64(expected)
	}
	if r.Frames > 1 {
		span := rc.last.Sub(rc.first)
		r.DurationS = span.Seconds()
		if span > 0 {
			r.FPS = float64(r.Frames-1) / span.Seconds()
			r.BitrateBPS = int64(float64(r.Bytes*8) / span.Seconds())
		}
	}
	return r
}

func frameSize(au []byte) (int, int) {
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if media.TypeOf(nal) == media.NALSPS {
			if sps, err := media.ParseSPS(nal); err == nil {
				return sps.Width, sps.Height
			}
		}
	}
	return 0, 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
