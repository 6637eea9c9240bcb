package codec

import (
	"sort"

	"github.com/p2pcast/p2pcast/internal/media"
)

// The codecs the device carries, by Name. Adding one is one entry here and its
// packetizer.
var registry = map[string]*Codec{}

func register(c *Codec) *Codec {
	if _, dup := registry[c.Name]; dup {
		panic("codec: " + c.Name + " registered twice")
	}
	registry[c.Name] = c
	return c
}

// transportCC asks receivers for transport-wide congestion control feedback: every codec's
// packets count toward the one estimate of the viewer's path.
var transportCC = Feedback{"transport-cc", ""}

// The registered codecs.
var (
	H264 = register(&Codec{
		Name: "H264", Kind: Video, MimeType: "video/H264", ClockRate: 90000, PayloadType: 102,
		Feedback:  []Feedback{{"nack", ""}, {"nack", "pli"}, {"ccm", "fir"}, transportCC},
		Fmtp:      h264Fmtp,
		Accepts:   h264Accepts,
		Packetize: PacketizeH264,
		Keyframe:  media.IsKeyframe,
	})
	// H265 goes only to receivers whose SDP takes it: few browsers decode it (internal/peer).
	H265 = register(&Codec{
		Name: "H265", Kind: Video, MimeType: "video/H265", ClockRate: 90000, PayloadType: 104,
		Feedback:  []Feedback{{"nack", ""}, {"nack", "pli"}, {"ccm", "fir"}, transportCC},
		Fmtp:      h265Fmtp,
		Accepts:   h265Accepts,
		Packetize: PacketizeH265,
		Keyframe:  H265Keyframe,
	})
	Opus = register(&Codec{
		Name: "opus", Kind: Audio, MimeType: "audio/opus", ClockRate: 48000, SDPChannels: 2, PayloadType: 111,
		Feedback:  []Feedback{transportCC},
		Fmtp:      opusFmtp,
		Packetize: wholeFrame,
	})
	PCMA = register(&Codec{
		Name: "PCMA", Kind: Audio, MimeType: "audio/PCMA", ClockRate: 8000, SDPChannels: 1, PayloadType: 8,
		Feedback: []Feedback{transportCC}, Fmtp: noFmtp, Packetize: wholeFrame,
	})
	PCMU = register(&Codec{
		Name: "PCMU", Kind: Audio, MimeType: "audio/PCMU", ClockRate: 8000, SDPChannels: 1, PayloadType: 0,
		Feedback: []Feedback{transportCC}, Fmtp: noFmtp, Packetize: wholeFrame,
	})
)

// Lookup returns the codec named name, or nil.
func Lookup(name string) *Codec { return registry[name] }

// Names lists the registered codecs, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
