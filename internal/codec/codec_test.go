package codec

import (
	"bytes"
	"testing"
)

func TestH264SDPProfileLevelID(t *testing.T) {
	for raw, want := range map[string]string{
		"42c01f": "42e01f", // x264 baseline: constraint_set0+1 is constrained baseline
		"42e01f": "42e01f",
		"42001e": "42001e", // baseline without constraint_set1
		"4d0028": "4d0028",
		"4d4028": "4d0028", // main's constraint_set1 does not change the profile offered
		"640028": "640028",
		"640c1f": "640c1f", // constrained high
		"f4001f": "42e01f", // High 4:4:4: no browser decodes it; unknown → the default
		"":       "42e01f",
		"zz":     "42e01f",
	} {
		if got := H264SDPProfileLevelID(raw); got != want {
			t.Errorf("%q → %q, want %q", raw, got, want)
		}
	}
}

func TestH264Accepts(t *testing.T) {
	fmtp := func(plid string) string {
		return "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + plid
	}
	for _, tc := range []struct {
		theirs, ours string
		want         bool
	}{
		{fmtp("42e01f"), "42c01f", true},
		{fmtp("64001f"), "42c01f", true}, // a High decoder decodes constrained baseline
		{fmtp("42e01f"), "640028", false},
		{fmtp("64001f"), "4d0028", true},
		{fmtp("4d001f"), "640028", false},
		{fmtp("42001f"), "42001f", true},
		{"packetization-mode=0;profile-level-id=42e01f", "42e01f", false},
		{"packetization-mode=1", "42e01f", false},
	} {
		if got := h264Accepts(tc.theirs, Params{ProfileLevelID: tc.ours}); got != tc.want {
			t.Errorf("their %q, our %s: %v, want %v", tc.theirs, tc.ours, got, tc.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	for _, name := range []string{"H264", "H265", "opus", "PCMA", "PCMU"} {
		c := Lookup(name)
		if c == nil || c.Name != name || c.Packetize == nil || c.Fmtp == nil || c.ClockRate == 0 {
			t.Fatalf("%s: %+v", name, c)
		}
	}
	if got := Opus.Fmtp(Params{Channels: 2}); got != "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1" {
		t.Fatalf("stereo opus fmtp %q", got)
	}
	p := Opus.Parameters(Params{Channels: 1})
	if p.MimeType != "audio/opus" || p.ClockRate != 48000 || p.Channels != 2 || p.PayloadType != 111 {
		t.Fatalf("opus parameters %+v", p)
	}
}

// Audio frames travel whole, one per packet, copied into the shared payload buffer.
func TestWholeFramePacketizer(t *testing.T) {
	var out Payloads
	frame := []byte{0xf8, 1, 2, 3}
	Opus.Packetize(frame, DefaultMTU, &out)
	if out.Len() != 1 || !bytes.Equal(out.At(0), frame) {
		t.Fatalf("payloads %+v", out)
	}
	frame[1] = 9
	if out.At(0)[1] != 1 {
		t.Fatal("the payload aliases the frame")
	}
	PCMU.Packetize(nil, DefaultMTU, &out)
	if out.Len() != 0 {
		t.Fatal("an empty frame made a payload")
	}
}
