package peer

import (
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// An offer as this machine's headless Chromium makes it: video without H.265.
const chromiumLikeOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"

func h265Description(audio bool) description {
	d := description{send: []stream.Track{{ID: 1, Kind: codec.Video, Codec: codec.H265.Name, ClockRate: 90000}}}
	d.renditions = d.send[:1]
	if audio {
		d.send = append(d.send, stream.Track{ID: 2, Kind: codec.Audio, Codec: codec.Opus.Name, ClockRate: 48000, Channels: 2})
	}
	return d
}

// TestVideoRefused: an H.265 camera and a viewer without H.265: the session goes on with the
// audio, and the notice names the codec and what the viewer offered; without audio the
// refusal itself says why.
func TestVideoRefused(t *testing.T) {
	sd, err := parseSDP(chromiumLikeOffer)
	if err != nil {
		t.Fatal(err)
	}
	d := h265Description(true)
	n, refused := d.videoRefused(sd)
	if !refused || n.Code != NoticeVideoCodec || n.Codec != "H265" || strings.Join(n.Offered, ",") != "VP8,H264" {
		t.Fatalf("notice %+v, refused %v", n, refused)
	}
	if !strings.Contains(n.Message, "H.265") || !strings.Contains(n.Message, "sound only") {
		t.Fatalf("message: %s", n.Message)
	}
	audioOnly := d.withoutVideo()
	if len(audioOnly.send) != 1 || audioOnly.send[0].Kind != codec.Audio || audioOnly.renditions != nil {
		t.Fatalf("without video: %+v", audioOnly)
	}
	if err := audioOnly.checkOffer(chromiumLikeOffer); err != nil {
		t.Fatalf("audio-only session refused: %v", err)
	}
	err = h265Description(false).checkOffer(chromiumLikeOffer)
	if err == nil || !strings.Contains(err.Error(), "the camera sends H.265") {
		t.Fatalf("video-only H.265 to a viewer without it: %v", err)
	}
	// A viewer that offers H.265 Main takes it.
	withH265 := strings.Replace(chromiumLikeOffer, "a=rtpmap:96 VP8/90000", "a=rtpmap:96 H265/90000\r\na=fmtp:96 level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST", 1)
	sd, _ = parseSDP(withH265)
	if n, refused := d.videoRefused(sd); refused {
		t.Fatalf("an H.265 viewer refused: %+v", n)
	}
	// An H.264 device never refuses an H.264 viewer.
	d.send[0].Codec = codec.H264.Name
	sd, _ = parseSDP(chromiumLikeOffer)
	if _, refused := d.videoRefused(sd); refused {
		t.Fatal("H.264 refused")
	}
}
