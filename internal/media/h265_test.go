package media

import (
	"encoding/base64"
	"errors"
	"testing"
)

// x265's SPS of a 1920x1080 4:4:4 picture (range extensions profile: profile_idc 4; 1088 coded
// lines, cropped by the conformance window),
// from an RTSP camera's sprop-sps.
var x265SPS, _ = base64.StdEncoding.DecodeString("QgEBBAgAAAMAnggAAAMAAHiQAHgQAhyyys0kmV4C3AgIABAAAAMAEAAAAwGQgA==")

func TestParseH265SPS(t *testing.T) {
	s, err := ParseH265SPS(x265SPS)
	if err != nil {
		t.Fatal(err)
	}
	if s.Width != 1920 || s.Height != 1080 || s.ChromaFormat != 3 || s.BitDepthLumaMinus8 != 0 || s.PTL[0] != 0x04 {
		t.Errorf("%+v", s)
	}
	for _, bad := range [][]byte{nil, {0x42, 0x01}, {0x42, 0x01, 0x01}, {0x40, 0x01, 0x0c}, x265SPS[:10]} {
		if _, err := ParseH265SPS(bad); !errors.Is(err, ErrBadSPS) {
			t.Errorf("% x: %v, want ErrBadSPS", bad, err)
		}
	}
}

func FuzzParseH265SPS(f *testing.F) {
	f.Add(x265SPS)
	f.Fuzz(func(t *testing.T, nal []byte) {
		s, err := ParseH265SPS(nal)
		if err == nil && (s.Width <= 0 || s.Height <= 0 || s.Width > maxDimension || s.Height > maxDimension) {
			t.Fatalf("accepted %+v", s)
		}
	})
}
