package mp4

import (
	"errors"
	"fmt"
	"time"
)

// Errors about tracks and samples. WriteSample's errors about one sample (ErrSample,
// ErrParameterSets) leave the Writer usable; a failed Write to the file is sticky.
var (
	// ErrNoTracks: a Writer needs at least one track.
	ErrNoTracks = errors.New("mp4: no tracks")
	// ErrCodec: a track's codec is not one this package writes.
	ErrCodec = errors.New("mp4: unsupported codec")
	// ErrTrack: a track's description is incomplete or out of range.
	ErrTrack = errors.New("mp4: bad track")
	// ErrParameterSets: H.264/H.265 parameter sets are missing or do not parse.
	ErrParameterSets = errors.New("mp4: bad parameter sets")
	// ErrSample: a sample is empty, too large, not Annex-B, or for a track that does not exist.
	ErrSample = errors.New("mp4: bad sample")
)

// Codec names a track's codec. The names are those of internal/codec ("H264", "opus",
// "PCMA", "PCMU"), so a stream.Track's Codec converts directly, plus "H265" and "AAC".
type Codec string

// The codecs a Writer can store.
const (
	H264 Codec = "H264" // sample entry avc1 + avcC
	H265 Codec = "H265" // sample entry hvc1 + hvcC
	Opus Codec = "opus" // sample entry Opus + dOps
	AAC  Codec = "AAC"  // sample entry mp4a + esds
	PCMA Codec = "PCMA" // G.711 A-law, sample entry alaw
	PCMU Codec = "PCMU" // G.711 µ-law, sample entry ulaw
)

// IsVideo reports whether c is a video codec.
func (c Codec) IsVideo() bool { return c == H264 || c == H265 }

// Track describes one track of a file. Zero fields take the defaults noted.
type Track struct {
	Codec Codec
	// Timescale is the track's media clock, ticks per second. Default: 90000 for video,
	// 48000 for Opus, the sample rate otherwise.
	Timescale uint32

	// Video: the picture size (default: from the SPS) and the parameter sets as NAL units
	// without start codes (H.264: SPS and PPS; H.265: VPS, SPS and PPS). Without parameter
	// sets the Writer takes them from the track's first keyframe, and writes the file's
	// header only then.
	Width, Height int
	ParameterSets [][]byte

	// Audio. SampleRate: G.711 default 8000, AAC default from AudioSpecificConfig, Opus: the
	// input sample rate noted in dOps (default 48000; Opus always decodes at 48000).
	// Channels: default 1 for G.711, 2 for Opus, from AudioSpecificConfig for AAC.
	SampleRate int
	Channels   int
	// PreSkip is Opus's pre-skip in 48 kHz samples (dOps), the encoder delay a player drops
	// at the start; 0 for a stream joined in the middle.
	PreSkip uint16
	// AudioSpecificConfig is AAC's decoder configuration (ISO/IEC 14496-3 1.6.2.1); required
	// for AAC.
	AudioSpecificConfig []byte

	// SampleDuration is the nominal duration of one sample: the duration Close gives a video
	// track's last sample when the track has only one (otherwise the previous sample's
	// duration is used). Default 1/30 s. Audio durations at Close come from the packet
	// itself (Opus TOC, 1024 samples for AAC, one byte per sample for G.711).
	SampleDuration time.Duration
}

// maxDimension bounds a picture side (level 6.2 is 8192x4320).
const maxDimension = 16384

// normalize fills the defaults and checks t.
func (t Track) normalize() (Track, error) {
	switch t.Codec {
	case H264, H265:
		if t.Timescale == 0 {
			t.Timescale = 90000
		}
		if t.Width < 0 || t.Height < 0 || t.Width > maxDimension || t.Height > maxDimension {
			return t, fmt.Errorf("%w: %s picture size %dx%d", ErrTrack, t.Codec, t.Width, t.Height)
		}
	case Opus:
		if t.Timescale == 0 {
			t.Timescale = 48000
		}
		if t.SampleRate == 0 {
			t.SampleRate = 48000
		}
		if t.Channels == 0 {
			t.Channels = 2
		}
		if t.Channels > 2 {
			// Channel mapping family 0 (mono or stereo) is what every live source sends.
			return t, fmt.Errorf("%w: opus with %d channels", ErrTrack, t.Channels)
		}
	case AAC:
		asc, err := parseASC(t.AudioSpecificConfig)
		if err != nil {
			return t, err
		}
		if t.SampleRate == 0 {
			t.SampleRate = asc.SampleRate
		}
		if t.Channels == 0 {
			t.Channels = asc.Channels
		}
		if t.Timescale == 0 {
			t.Timescale = uint32(t.SampleRate)
		}
	case PCMA, PCMU:
		if t.SampleRate == 0 {
			t.SampleRate = 8000
		}
		if t.Channels == 0 {
			t.Channels = 1
		}
		if t.Timescale == 0 {
			t.Timescale = uint32(t.SampleRate)
		}
	default:
		return t, fmt.Errorf("%w: %q", ErrCodec, t.Codec)
	}
	if !t.Codec.IsVideo() && (t.SampleRate <= 0 || t.SampleRate > 1<<20 || t.Channels <= 0 || t.Channels > 8) {
		return t, fmt.Errorf("%w: %s at %d Hz, %d channels", ErrTrack, t.Codec, t.SampleRate, t.Channels)
	}
	if t.SampleDuration < 0 || t.SampleDuration > time.Minute {
		return t, fmt.Errorf("%w: sample duration %v", ErrTrack, t.SampleDuration)
	}
	if t.SampleDuration == 0 {
		t.SampleDuration = time.Second / 30
	}
	return t, nil
}
