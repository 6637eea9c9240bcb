package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/rtsp"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// An RTSP camera as the device's source (--source rtsp://…): the device plays the camera's
// stream over RTSP (internal/rtsp, TCP interleaved) and republishes its tracks to viewers, with
// the GOP cache for fast start (a camera over RTSP cannot be asked for a keyframe).

// Reconnection: quick, and capped low, so that playback resumes within a few seconds of the
// camera's return (a DESCRIBE a second to a camera that is down costs nothing).
const (
	rtspRetryMin = 250 * time.Millisecond
	rtspRetryMax = time.Second
)

// isRTSP reports whether a --source names an RTSP camera.
func isRTSP(source string) bool { return strings.HasPrefix(strings.ToLower(source), "rtsp://") }

// rtspCodecs are the camera codecs republished as they are. H.265 goes only to viewers whose
// SDP takes it (internal/peer); AAC is transcoded to Opus (rtspTranscoded).
var rtspCodecs = map[string]bool{codec.H264.Name: true, codec.H265.Name: true, codec.PCMA.Name: true, codec.PCMU.Name: true, codec.Opus.Name: true}

// rtspTranscoded are the camera codecs the producer transcodes (transcode.go).
var rtspTranscoded = map[string]bool{"AAC": true}

// runRTSP plays the camera until ctx ends, reconnecting whenever it is lost.
func (d *Device) runRTSP(ctx context.Context, f *srcFeed) {
	log := f.log.With("camera", rtsp.RedactURL(f.cfg.Source))
	wait := rtspRetryMin
	for ctx.Err() == nil {
		began := time.Now()
		err := d.playRTSP(ctx, f, log)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > healthyAfter {
			wait = rtspRetryMin
		}
		level := slog.LevelWarn
		if errors.Is(err, rtsp.ErrUnauthorized) {
			level = slog.LevelError // a wrong password will not heal by itself: say so loudly
		}
		log.Log(ctx, level, "camera lost, reconnecting", "err", err, "in", wait)
		select {
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, rtspRetryMax)
	}
}

// playRTSP plays one connection to the camera: its tracks become the stream's. An AAC track
// gets a transcoder of its own, started and ended with the connection.
func (d *Device) playRTSP(ctx context.Context, f *srcFeed, log *slog.Logger) error {
	c, err := rtsp.Dial(ctx, f.cfg.Source, rtsp.Options{
		Username: f.cfg.RTSPUser, Password: f.cfg.RTSPPassword,
		Select: func(t rtsp.Track) bool { return rtspCodecs[t.Codec] || rtspTranscoded[t.Codec] },
	})
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range c.Skipped() {
		log.Warn("camera track not republished", "track", s.String())
	}
	src := &source{name: "rtsp", spsSeen: map[uint8]bool{}}
	ids := map[int]int{}            // rtsp track index → src.tracks index
	coders := map[int]*transcoder{} // rtsp track index → its transcoder
	defer func() {
		for _, tc := range coders {
			tc.close()
		}
	}()
	for _, t := range c.Tracks() {
		var st stream.Track
		switch {
		case rtspCodecs[t.Codec]:
			st = stream.Track{ID: uint8(t.Index + 1), Kind: t.Kind, Codec: t.Codec, ClockRate: uint32(t.ClockRate)}
			switch t.Kind {
			case codec.Video:
				st.Width, st.Height, st.FPS = t.Width, t.Height, t.FPS
			case codec.Audio:
				st.Channels = max(t.Channels, 1)
				st.FrameMS = 20
			}
		case rtspTranscoded[t.Codec] && len(coders) == 0:
			tc, err := d.startTranscoder(t.Config, log)
			if err != nil {
				log.Warn("camera track not republished: browsers take no "+t.Codec+" over WebRTC, and it could not be transcoded", "track", t.Index, "err", err)
				continue
			}
			coders[t.Index] = tc
			st = tc.track
			st.ID = uint8(t.Index + 1)
			log.Info("camera audio transcoded to Opus", "track", t.Index, "from", t.Codec, "rate", t.SampleRate, "channels", t.Channels)
		default:
			log.Warn("camera track not republished: browsers take no "+t.Codec+" over WebRTC", "track", t.Index)
			continue
		}
		ids[t.Index] = len(src.tracks)
		src.tracks = append(src.tracks, st)
	}
	if len(src.tracks) == 0 {
		return fmt.Errorf("%w: the camera sends nothing a browser plays", rtsp.ErrNoTracks)
	}
	pub := &publisher{st: f.stream, src: src, onAttach: func() {
		for _, t := range src.tracks {
			log.Info("camera track", "track", t.ID, "kind", t.Kind, "codec", t.Codec, "size", fmt.Sprintf("%dx%d", t.Width, t.Height))
		}
	}}
	defer pub.close()
	// The camera's units and the transcoders' frames are published from two goroutines.
	var pubMu sync.Mutex
	publish := func(i int, data []byte, seq uint32, capture int64) error {
		pubMu.Lock()
		defer pubMu.Unlock()
		err := pub.publish(&src.tracks[i], data, seq, capture, 0)
		if errors.Is(err, errNoFrame) {
			return nil
		}
		return err
	}
	pubMu.Lock()
	if src.complete() {
		pub.attach()
	}
	pubMu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		for _, tc := range coders {
			tc.close() // its reader then sees the end of its output
		}
		wg.Wait()
	}()
	for idx, tc := range coders {
		i := ids[idx]
		wg.Go(func() {
			for seq := uint32(0); ; seq++ {
				f, err := tc.read()
				if err == nil {
					err = publish(i, f.Data, seq, f.Capture)
				}
				if err != nil {
					if ctx.Err() == nil {
						// The connection restarts, and its transcoder with it.
						cancel(fmt.Errorf("%w: %v", errTranscoder, err))
					}
					return
				}
			}
		})
	}
	seqs := make([]uint32, len(src.tracks))
	for {
		u, err := c.ReadUnit(ctx)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return err
		}
		i, ok := ids[u.Track]
		if !ok {
			continue
		}
		if tc := coders[u.Track]; tc != nil {
			if err := tc.write(u.Data, u.Time.UnixNano()); err != nil {
				return err
			}
			continue
		}
		if err := publish(i, u.Data, seqs[i], u.Time.UnixNano()); err != nil {
			return err
		}
		seqs[i]++
	}
}

// startTranscoder starts the producer's AAC → Opus transcoder for a track with config asc.
func (d *Device) startTranscoder(asc []byte, log *slog.Logger) (*transcoder, error) {
	path := d.cfg.CapturePath
	if path == "" {
		var err error
		if path, err = FindCapture(); err != nil {
			return nil, err
		}
	}
	return startTranscoder(path, asc, log)
}
