package rtsp

import (
	"errors"
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/codec"
)

func TestSDPGStreamer(t *testing.T) {
	m, _ := readMessageBytes(readTestdata(t, "gst-h265-aac.describe"))
	s, err := parseSDP(m.body)
	if err != nil {
		t.Fatal(err)
	}
	tracks, skipped := buildTracks(s, "rtsp://127.0.0.1:18555/test/")
	if len(tracks) != 2 || len(skipped) != 0 || s.control != "*" {
		t.Fatalf("tracks %+v skipped %v control %q", tracks, skipped, s.control)
	}
	v, a := tracks[0], tracks[1]
	if v.Codec != "H265" || v.Kind != codec.Video || v.ClockRate != 90000 || v.Width != 320 || v.Height != 240 || len(v.ParamSets) != 3 ||
		v.Control != "rtsp://127.0.0.1:18555/test/stream=0" {
		t.Errorf("video %+v", v)
	}
	if a.Codec != "AAC" || a.Kind != codec.Audio || a.ClockRate != 48000 || a.SampleRate != 48000 || a.Channels != 2 || a.FrameTicks != 1024 ||
		a.Index != 1 || string(a.Config) != "\x11\x90\x56\xe5\x00" {
		t.Errorf("audio %+v", a)
	}
}

// A camera's SDP (the shape Hikvision and Dahua send) with media this client skips.
const cameraSDP = `v=0
o=- 1109162014219182 1109162014219192 IN IP4 x.y.z.w
s=Media Presentation
e=NONE
b=AS:5050
t=0 0
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast
m=video 0 RTP/AVP 96
b=AS:5000
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAoAAADAAgAAAMBlCA=,aO48gA==
a=Media_header:MEDIAINFO=494D4B48010100000400000100000000000000000000000000000000000000000000000000000000;
m=audio 0 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast
m=audio 0 RTP/AVP 98
a=rtpmap:98 MP4A-LATM/16000
a=control:trackID=3
m=video 0 RTP/AVP 26
a=control:trackID=4
m=video 0 RTP/AVP 97
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=2
a=control:trackID=5
m=application 0 RTP/AVP 107
a=rtpmap:107 vnd.onvif.metadata/90000
a=control:trackID=6
m=audio 0 RTP/AVP 99
a=rtpmap:99 mpeg4-generic/16000/1
a=fmtp:99 streamtype=5; mode=CELP-cbr; config=1408
a=control:trackID=7
`

func TestSDPCamera(t *testing.T) {
	s, err := parseSDP([]byte(strings.ReplaceAll(cameraSDP, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	tracks, skipped := buildTracks(s, "rtsp://192.168.1.64:554/Streaming/Channels/101")
	if len(tracks) != 2 {
		t.Fatalf("tracks %+v", tracks)
	}
	v := tracks[0]
	if v.Codec != "H264" || v.Width != 1920 || v.Height != 1080 || v.ProfileLevelID != "4d002a" || len(v.ParamSets) != 2 ||
		v.Control != "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast" {
		t.Errorf("video %+v", v)
	}
	if a := tracks[1]; a.Codec != "PCMU" || a.ClockRate != 8000 || a.Channels != 1 || a.PayloadType != 0 {
		t.Errorf("audio %+v", a)
	}
	want := []string{"MP4A-LATM", "JPEG", "packetization-mode=2", "metadata", "CELP-cbr"}
	if len(skipped) != len(want) {
		t.Fatalf("skipped %v", skipped)
	}
	for i, w := range want {
		if !strings.Contains(strings.ToLower(skipped[i].String()), strings.ToLower(w)) {
			t.Errorf("skipped[%d] = %q, want it to mention %q", i, skipped[i], w)
		}
	}
}

func TestSDPErrors(t *testing.T) {
	for name, in := range map[string]string{
		"html":       "<html>nope</html>",
		"no version": "m=video 0 RTP/AVP 96\n",
		"bad clock":  "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/abc\n",
		"bad m line": "v=0\nm=video\n",
	} {
		if _, err := parseSDP([]byte(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
	many := "v=0\n" + strings.Repeat("m=video 0 RTP/AVP 96\n", maxMedia+1)
	if _, err := parseSDP([]byte(many)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("many media: %v", err)
	}
}

func TestH265SPSSize(t *testing.T) {
	// x265's SPS of a 1920x1080 picture: 1088 coded lines, cropped by the conformance window.
	sps := decodeSprop("QgEBBAgAAAMAnggAAAMAAHiQAHgQAhyyys0kmV4C3AgIABAAAAMAEAAAAwGQgA==")
	w, h, err := parseH265SPS(sps[0])
	if err != nil || w != 1920 || h != 1080 {
		t.Errorf("%dx%d %v", w, h, err)
	}
	if _, _, err := parseH265SPS([]byte{0x42, 0x01, 0x01}); err == nil {
		t.Error("truncated SPS accepted")
	}
}

func TestParseRTPAndReports(t *testing.T) {
	b := []byte{0xb1, 0xe0, 0, 7, 0, 0, 1, 0, 0, 0, 0, 9, // V=2 P X CC=1, M, PT 96
		0, 0, 0, 5, // CSRC
		0xbe, 0xde, 0, 1, 1, 2, 3, 4, // extension, one word
		0xaa, 0xbb, 0, 0, 3} // payload, 3 bytes of padding
	p, err := parseRTP(b)
	if err != nil || !p.marker || p.pt != 96 || p.seq != 7 || p.ts != 256 || p.ssrc != 9 || string(p.payload) != "\xaa\xbb" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range [][]byte{b[:11], {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99}} {
		if _, err := parseRTP(bad); err == nil {
			t.Errorf("% x accepted", bad)
		}
	}
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 1}
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 9, 0xe0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 0, 0, 0, 2}
	srs, err := parseSenderReports(append(rr, sr...), nil)
	if err != nil || len(srs) != 1 || srs[0].ssrc != 9 || srs[0].ntp != 0xe000000080000000 || srs[0].rtp != 0x1000 {
		t.Fatalf("%+v %v", srs, err)
	}
}
