package codec

import "github.com/pion/webrtc/v4"

// RTP header extensions the device writes when a receiver negotiates them, and receivers read.
const (
	// AbsCaptureTimeURI: when each frame was captured, on the capture clock.
	AbsCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
	// PlayoutDelayURI: how long a receiver may buffer video before rendering.
	PlayoutDelayURI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
	// TransportCCURI: a sequence number across every packet of a connection, which receivers
	// acknowledge with arrival times (transport-cc feedback) for send-side bandwidth estimation.
	TransportCCURI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)

// Parameters is the codec as Pion registers it, describing a track with p.
func (c *Codec) Parameters(p Params) webrtc.RTPCodecParameters {
	fb := make([]webrtc.RTCPFeedback, len(c.Feedback))
	for i, f := range c.Feedback {
		fb[i] = webrtc.RTCPFeedback{Type: f.Type, Parameter: f.Parameter}
	}
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.MimeType, ClockRate: c.ClockRate,
			Channels: c.SDPChannels, SDPFmtpLine: c.Fmtp(p), RTCPFeedback: fb},
		PayloadType: webrtc.PayloadType(c.PayloadType),
	}
}

// RTPKind is the kind as Pion names it.
func (k Kind) RTPKind() webrtc.RTPCodecType {
	if k == Audio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}
