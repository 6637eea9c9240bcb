package codec

import (
	"bytes"
	"errors"
	"testing"
)

// h265NAL makes a NAL unit of type t with a body of n bytes (no emulation: bytes 0x11…).
func h265NAL(t byte, n int) []byte {
	nal := []byte{t << 1, 1}
	for i := range n {
		nal = append(nal, byte(0x11+i%200))
	}
	return nal
}

func TestH265RoundTrip(t *testing.T) {
	vps, sps, pps := h265NAL(32, 20), h265NAL(33, 40), h265NAL(34, 8)
	idr := h265NAL(19, 5000) // IDR_W_RADL, cut into fragments
	aud := []byte{35 << 1, 1, 0x50}
	au := annexB(aud, vps, sps, pps, idr, h265NAL(1, 100))
	if !H265Keyframe(au) || H265Keyframe(annexB(h265NAL(1, 100))) {
		t.Fatal("keyframe detection")
	}
	var p Payloads
	PacketizeH265(au, 1200, &p)
	// AP(VPS+SPS+PPS), 5 FUs, one single NAL unit: the AUD is dropped.
	if p.Len() != 7 {
		t.Fatalf("%d payloads", p.Len())
	}
	if H265Type(p.At(0)) != h265AP || H265Type(p.At(1)) != h265FU || H265Type(p.At(6)) != 1 {
		t.Fatalf("payload types %d %d %d", H265Type(p.At(0)), H265Type(p.At(1)), H265Type(p.At(6)))
	}
	for i := range p.Len() {
		if len(p.At(i)) > 1200 {
			t.Fatalf("payload %d: %d bytes", i, len(p.At(i)))
		}
	}
	var d H265Depacketizer
	var got []byte
	for i := range p.Len() {
		out, err := d.Push(p.At(i), i == p.Len()-1)
		if err != nil {
			t.Fatal(err)
		}
		got = out
	}
	if want := annexB(vps, sps, pps, idr, h265NAL(1, 100)); !bytes.Equal(got, want) {
		t.Fatalf("round trip: %d bytes, want %d", len(got), len(want))
	}
}

func TestH265DepacketizerLoss(t *testing.T) {
	var p Payloads
	PacketizeH265(annexB(h265NAL(19, 3000)), 1200, &p)
	var d H265Depacketizer
	if _, err := d.Push(p.At(1), false); !errors.Is(err, ErrH265FU) {
		t.Fatalf("middle fragment first: %v", err)
	}
	if out, _ := d.Push(p.At(2), true); out != nil {
		t.Fatal("a broken unit was delivered")
	}
	for i := range p.Len() {
		out, err := d.Push(p.At(i), i == p.Len()-1)
		if err != nil || (i == p.Len()-1 && out == nil) {
			t.Fatalf("payload %d: %v", i, err)
		}
	}
	if _, err := d.Push([]byte{48 << 1, 1, 0, 9, 1}, true); !errors.Is(err, ErrH265AP) {
		t.Fatalf("short AP: %v", err)
	}
}

func TestH265Accepts(t *testing.T) {
	for fmtp, want := range map[string]bool{
		"": true,
		"level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST": true,
		"level-id=180;profile-id=1":                         true, // level is not compared
		"profile-id=2":                                      false,
		"profile-id=1;tier-flag=1":                          false,
		"profile-id=1;tx-mode=MRST":                         false,
	} {
		if got := h265Accepts(fmtp, Params{}); got != want {
			t.Errorf("%q: %v, want %v", fmtp, got, want)
		}
	}
}

func FuzzH265Depacketizer(f *testing.F) {
	f.Add([]byte{48 << 1, 1, 0, 3, 64, 1, 2}, []byte{49 << 1, 1, 0x93, 1, 2})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var d H265Depacketizer
		_, _ = d.Push(a, false)
		out, _ := d.Push(b, true)
		var p Payloads
		PacketizeH265(out, 100, &p)
	})
}
