package stream

import (
	"sort"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// Track describes one track of a source: what a session needs to offer it in SDP and a reader
// to make sense of its frames.
type Track struct {
	// ID is the producer's track id (1 for a version 1 or plain Annex-B producer's video).
	ID        uint8      `json:"id"`
	Kind      codec.Kind `json:"kind"`
	Codec     string     `json:"codec"` // a codec.Lookup name: "H264", "opus", "PCMA", "PCMU"
	ClockRate uint32     `json:"clock_rate"`
	// Video.
	Width  int     `json:"width,omitempty"`
	Height int     `json:"height,omitempty"`
	FPS    float64 `json:"fps,omitempty"`
	// ProfileLevelID is H.264's, from the stream's SPS (the SDP offers what is really sent).
	ProfileLevelID string `json:"profile_level_id,omitempty"`
	// Audio.
	Channels int     `json:"channels,omitempty"`
	FrameMS  float64 `json:"frame_ms,omitempty"` // one frame's duration
	// AlternateOf is, for a video track that is another rendition of the same picture (a sub
	// stream), the id of the main rendition's track; 0 for a main or only rendition.
	AlternateOf uint8 `json:"alternate_of,omitempty"`
	// Bitrate is what the producer announced it encodes at (0: unknown).
	Bitrate int `json:"bitrate,omitempty"`
	// CanKeyframe: the producer can be asked for a keyframe on this track; CanBitrate and
	// CanFPS: for a bitrate or a frame rate.
	CanKeyframe bool `json:"-"`
	CanBitrate  bool `json:"-"`
	CanFPS      bool `json:"-"`
}

// Params are the track's codec parameters for SDP.
func (t Track) Params() codec.Params {
	return codec.Params{ProfileLevelID: t.ProfileLevelID, Channels: t.Channels}
}

// Info describes the current source: the tracks it sends and the sinks it plays.
type Info struct {
	// The first video track's description, repeated at the top for readers that know one
	// picture (the signaling hello's "stream" had only these fields before tracks).
	Codec  string  `json:"codec,omitempty"`
	Width  int     `json:"width,omitempty"`
	Height int     `json:"height,omitempty"`
	FPS    float64 `json:"fps,omitempty"`
	Name   string  `json:"name,omitempty"`
	// Tracks the source sends, in the producer's order.
	Tracks []Track `json:"tracks"`
	// Sinks are tracks the producer plays: what viewers may send back (talk-back audio).
	Sinks []Track `json:"sinks,omitempty"`
	// Channels are the labels of the data channels the device serves besides "events" (a
	// desktop's "control"): a page opens those its grants allow. Set by the device, not the
	// source.
	Channels []string `json:"channels,omitempty"`
}

// Describe makes the Info of a source named name.
func Describe(name string, tracks, sinks []Track) Info {
	info := Info{Name: name, Tracks: tracks, Sinks: sinks}
	if v, ok := info.First(codec.Video); ok {
		info.Codec, info.Width, info.Height, info.FPS = v.Codec, v.Width, v.Height, v.FPS
	}
	return info
}

// First returns the source's first track of kind that is not an alternate: the one viewers
// get.
func (i Info) First(kind codec.Kind) (Track, bool) {
	for _, t := range i.Tracks {
		if t.Kind == kind && t.AlternateOf == 0 {
			return t, true
		}
	}
	return Track{}, false
}

// Renditions returns the track main and its alternates, main first, then by falling
// bitrate (the order a viewer steps down through).
func (i Info) Renditions(main uint8) []Track {
	var out []Track
	for _, t := range i.Tracks {
		if t.ID == main {
			out = append([]Track{t}, out...)
		} else if t.AlternateOf == main {
			out = append(out, t)
		}
	}
	if len(out) > 2 {
		rest := out[1:]
		sort.SliceStable(rest, func(a, b int) bool { return rest[a].Bitrate > rest[b].Bitrate })
	}
	return out
}

// Sink returns the producer's first sink of kind.
func (i Info) Sink(kind codec.Kind) (Track, bool) {
	for _, t := range i.Sinks {
		if t.Kind == kind {
			return t, true
		}
	}
	return Track{}, false
}

// Track returns the track with id.
func (i Info) Track(id uint8) (Track, bool) {
	for _, t := range i.Tracks {
		if t.ID == id {
			return t, true
		}
	}
	return Track{}, false
}

// trackSet is a set of track ids.
type trackSet [4]uint64

func (s *trackSet) add(id uint8)      { s[id>>6] |= 1 << (id & 63) }
func (s *trackSet) remove(id uint8)   { s[id>>6] &^= 1 << (id & 63) }
func (s *trackSet) has(id uint8) bool { return s[id>>6]&(1<<(id&63)) != 0 }
func (s *trackSet) fill()             { *s = trackSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)} }
func setOf(ids ...uint8) (s trackSet) {
	for _, id := range ids {
		s.add(id)
	}
	return s
}
