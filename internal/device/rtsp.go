package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
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

// rtspCodecs are the camera codecs republished as they are: what WebRTC browsers take.
var rtspCodecs = map[string]bool{codec.H264.Name: true, codec.PCMA.Name: true, codec.PCMU.Name: true, codec.Opus.Name: true}

// runRTSP plays the camera until ctx ends, reconnecting whenever it is lost.
func (d *Device) runRTSP(ctx context.Context) {
	log := d.log.With("camera", rtsp.RedactURL(d.cfg.Source))
	wait := rtspRetryMin
	for ctx.Err() == nil {
		began := time.Now()
		err := d.playRTSP(ctx, log)
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

// playRTSP plays one connection to the camera: its tracks become the stream's.
func (d *Device) playRTSP(ctx context.Context, log *slog.Logger) error {
	c, err := rtsp.Dial(ctx, d.cfg.Source, rtsp.Options{
		Username: d.cfg.RTSPUser, Password: d.cfg.RTSPPassword,
		Select: func(t rtsp.Track) bool { return rtspCodecs[t.Codec] },
	})
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range c.Skipped() {
		log.Warn("camera track not republished", "track", s.String())
	}
	src := &source{name: "rtsp", spsSeen: map[uint8]bool{}}
	ids := map[int]int{} // rtsp track index → src.tracks index
	for _, t := range c.Tracks() {
		if !rtspCodecs[t.Codec] {
			log.Warn("camera track not republished: browsers take no "+t.Codec+" over WebRTC", "track", t.Index)
			continue
		}
		st := stream.Track{ID: uint8(t.Index + 1), Kind: t.Kind, Codec: t.Codec, ClockRate: uint32(t.ClockRate)}
		switch t.Kind {
		case codec.Video:
			st.Width, st.Height, st.FPS = t.Width, t.Height, t.FPS
		case codec.Audio:
			st.Channels = max(t.Channels, 1)
			st.FrameMS = 20
		}
		ids[t.Index] = len(src.tracks)
		src.tracks = append(src.tracks, st)
	}
	if len(src.tracks) == 0 {
		return fmt.Errorf("%w: the camera sends nothing a browser plays", rtsp.ErrNoTracks)
	}
	pub := &publisher{st: d.stream, src: src, onAttach: func() {
		for _, t := range src.tracks {
			log.Info("camera track", "track", t.ID, "kind", t.Kind, "codec", t.Codec, "size", fmt.Sprintf("%dx%d", t.Width, t.Height))
		}
	}}
	defer pub.close()
	if src.complete() {
		pub.attach()
	}
	seqs := make([]uint32, len(src.tracks))
	for {
		u, err := c.ReadUnit(ctx)
		if err != nil {
			return err
		}
		i, ok := ids[u.Track]
		if !ok {
			continue
		}
		t := &src.tracks[i]
		if err := pub.publish(t, u.Data, seqs[i], u.Time.UnixNano(), 0); err != nil && !errors.Is(err, errNoFrame) {
			return err
		}
		seqs[i]++
	}
}
