package rtsp

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/media"
)

// Track describes one track the Conn plays: enough for a stream.Track and a decoder.
type Track struct {
	// Index is the track's position in Conn.Tracks, and Unit.Track of its units.
	Index int
	Kind  codec.Kind
	// Codec is "H264", "H265", "PCMA", "PCMU", "AAC" or "opus" (codec.Lookup names where the
	// registry has the codec).
	Codec       string
	PayloadType uint8
	// ClockRate of the track's RTP timestamps, Hz.
	ClockRate int
	// Params are the a=fmtp parameters, names lower-case.
	Params map[string]string
	// Control is the track's URL (SETUP's), without credentials.
	Control string

	// Video, from the parameter sets in the SDP; zero when the SDP has none (read the first
	// keyframe's SPS then: every keyframe unit carries its parameter sets).
	Width, Height  int
	FPS            float64
	ProfileLevelID string // H.264
	// ParamSets are the SDP's parameter sets (H.264: SPS, PPS; H.265: VPS, SPS, PPS) without
	// start codes.
	ParamSets [][]byte

	// Audio.
	Channels   int
	SampleRate int
	// FrameTicks is one frame's duration in RTP clock ticks where the codec fixes it (AAC:
	// 1024 or 960 samples); 0 where the packetization decides (G.711, Opus).
	FrameTicks int
	// Config is AAC's AudioSpecificConfig.
	Config []byte
}

// Skipped is a medium of the stream this client does not play, and why.
type Skipped struct {
	Kind     string // SDP media type: "video", "audio", "application"
	Encoding string // rtpmap encoding, if any
	Reason   string
}

func (s Skipped) String() string {
	if s.Encoding == "" {
		return s.Kind + ": " + s.Reason
	}
	return s.Kind + " " + s.Encoding + ": " + s.Reason
}

// Bound on parameter sets from SDP.
const maxParamSets = 8

// buildTracks picks, for every medium, the first format this client plays; the others are
// skipped with a reason.
func buildTracks(s *sdpSession, base string) ([]Track, []Skipped) {
	var tracks []Track
	var skipped []Skipped
	for _, m := range s.medias {
		if !strings.HasPrefix(m.proto, "RTP/AVP") {
			skipped = append(skipped, Skipped{Kind: m.kind, Reason: "transport " + m.proto + " is not RTP/AVP"})
			continue
		}
		var reasons []string
		found := false
		for _, f := range m.formats {
			t, err := trackFor(m.kind, f)
			if err != nil {
				reasons = append(reasons, err.Error())
				continue
			}
			t.Index, t.Control = len(tracks), resolveControl(base, m.control)
			tracks = append(tracks, t)
			found = true
			break
		}
		if !found {
			sk := Skipped{Kind: m.kind, Reason: strings.Join(reasons, "; ")}
			if len(m.formats) > 0 {
				sk.Encoding = m.formats[0].encoding
			}
			if sk.Reason == "" {
				sk.Reason = "no RTP format"
			}
			skipped = append(skipped, sk)
		}
	}
	return tracks, skipped
}

// trackFor describes a track for one format, or says why it cannot be played.
func trackFor(kind string, f sdpFormat) (Track, error) {
	t := Track{PayloadType: f.pt, ClockRate: f.clock, Params: f.fmtp, Channels: f.channels}
	if t.Params == nil {
		t.Params = map[string]string{}
	}
	enc := f.encoding
	if enc == "" {
		return t, fmt.Errorf("payload type %d has no rtpmap", f.pt)
	}
	switch {
	case kind == "video" && enc == "H264":
		t.Kind, t.Codec = codec.Video, "H264"
		if pm := t.Params["packetization-mode"]; pm != "" && pm != "0" && pm != "1" {
			return t, fmt.Errorf("H264 packetization-mode=%s (interleaved) is not supported", pm)
		}
		t.ParamSets = decodeSprop(t.Params["sprop-parameter-sets"])
		for _, ps := range t.ParamSets {
			if media.TypeOf(ps) == media.NALSPS {
				if sps, err := media.ParseSPS(ps); err == nil {
					t.Width, t.Height, t.FPS, t.ProfileLevelID = sps.Width, sps.Height, sps.FPS, sps.ProfileLevelID()
				}
			}
		}
		if t.ProfileLevelID == "" {
			t.ProfileLevelID = t.Params["profile-level-id"]
		}
	case kind == "video" && enc == "H265":
		t.Kind, t.Codec = codec.Video, "H265"
		if d := t.Params["sprop-max-don-diff"]; d != "" && d != "0" {
			return t, fmt.Errorf("H265 with decoding order numbers (sprop-max-don-diff=%s) is not supported", d)
		}
		for _, k := range []string{"sprop-vps", "sprop-sps", "sprop-pps"} {
			t.ParamSets = append(t.ParamSets, decodeSprop(t.Params[k])...)
		}
		for _, ps := range t.ParamSets {
			if h265Type(ps) == h265SPS {
				if w, h, err := parseH265SPS(ps); err == nil {
					t.Width, t.Height = w, h
				}
			}
		}
	case kind == "audio" && (enc == "PCMA" || enc == "PCMU"):
		t.Kind, t.Codec = codec.Audio, enc
		t.SampleRate = t.ClockRate
	case kind == "audio" && enc == "OPUS":
		t.Kind, t.Codec, t.SampleRate = codec.Audio, "opus", 48000
		if t.Channels == 0 {
			t.Channels = 2
		}
	case kind == "audio" && enc == "MPEG4-GENERIC":
		if err := describeAAC(&t); err != nil {
			return t, err
		}
	default:
		return t, fmt.Errorf("%s/%d is not supported", enc, f.clock)
	}
	if t.ClockRate == 0 {
		return t, fmt.Errorf("%s has no clock rate", enc)
	}
	if t.Kind == codec.Audio && t.Channels == 0 {
		t.Channels = 1
	}
	return t, nil
}

// decodeSprop decodes a comma-separated list of base64 parameter sets, skipping bad ones.
func decodeSprop(s string) [][]byte {
	var out [][]byte
	for p := range strings.SplitSeq(s, ",") {
		if len(out) == maxParamSets {
			break
		}
		p = strings.TrimSpace(p)
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(p, "="))
		}
		if err == nil && len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// describeAAC reads RFC 3640's parameters (mode, AU header sizes, config).
func describeAAC(t *Track) error {
	mode := strings.ToLower(t.Params["mode"])
	if mode != "aac-hbr" && mode != "aac-lbr" {
		return fmt.Errorf("MPEG4-GENERIC mode=%q is not supported (AAC-hbr and AAC-lbr are)", t.Params["mode"])
	}
	if _, err := newAUHeaderFormat(t.Params); err != nil {
		return err
	}
	cfg, err := hex.DecodeString(t.Params["config"])
	if err != nil || len(cfg) == 0 {
		return fmt.Errorf("MPEG4-GENERIC without a valid config (AudioSpecificConfig)")
	}
	asc, err := media.ParseAudioSpecificConfig(cfg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	t.Kind, t.Codec, t.Config = codec.Audio, "AAC", cfg
	t.SampleRate, t.FrameTicks = asc.SampleRate, asc.FrameSamples
	if t.ClockRate > 0 && asc.SampleRate > 0 && t.ClockRate != asc.SampleRate {
		t.FrameTicks = int(int64(asc.FrameSamples) * int64(t.ClockRate) / int64(asc.SampleRate))
	}
	if asc.Channels > 0 {
		t.Channels = asc.Channels
	}
	if cd, err := strconv.Atoi(t.Params["constantduration"]); err == nil && cd > 0 && cd < 1<<20 {
		t.FrameTicks = cd
	}
	return nil
}
