package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func nal(hdr byte, size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	b[0] = hdr
	for i := 1; i < size; i++ {
		b[i] = byte(r.IntN(255) + 1) // no zero bytes: no accidental start codes
	}
	return b
}

func annexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

func TestPacketizeRoundTrip(t *testing.T) {
	sps, pps := nal(0x67, 12, 1), nal(0x68, 4, 2)
	aud, filler := []byte{0x09, 0xf0}, nal(0x0c, 10, 3)
	for _, tc := range []struct {
		name    string
		in      [][]byte
		want    [][]byte
		packets int
	}{
		{"idr with parameter sets", [][]byte{aud, sps, pps, nal(0x65, 5000, 4)}, [][]byte{sps, pps, nal(0x65, 5000, 4)}, 1 + 5},
		{"small p slice", [][]byte{nal(0x41, 300, 5)}, [][]byte{nal(0x41, 300, 5)}, 1},
		{"exactly mtu", [][]byte{nal(0x41, 1200, 6)}, [][]byte{nal(0x41, 1200, 6)}, 1},
		{"mtu plus one", [][]byte{nal(0x41, 1201, 7)}, [][]byte{nal(0x41, 1201, 7)}, 2},
		{"slices and filler", [][]byte{nal(0x65, 100, 8), filler, nal(0x65, 3000, 9)}, [][]byte{nal(0x65, 100, 8), nal(0x65, 3000, 9)}, 1 + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Payloads
			PacketizeH264(annexB(tc.in...), DefaultMTU, &p)
			if p.Len() != tc.packets {
				t.Fatalf("%d packets, want %d", p.Len(), tc.packets)
			}
			var d H264Depacketizer
			var got []byte
			for i := range p.Len() {
				pl := p.At(i)
				if len(pl) > DefaultMTU {
					t.Fatalf("payload %d is %d bytes", i, len(pl))
				}
				au, err := d.Push(pl, i == p.Len()-1)
				if err != nil {
					t.Fatal(err)
				}
				if au != nil {
					got = bytes.Clone(au)
				}
			}
			if want := annexB(tc.want...); !bytes.Equal(got, want) {
				t.Fatalf("round trip differs: got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

func TestParameterSetsShareOneSTAPA(t *testing.T) {
	var p Payloads
	PacketizeH264(annexB(nal(0x67, 12, 1), nal(0x68, 4, 2), nal(0x65, 50, 3)), DefaultMTU, &p)
	if p.Len() != 2 || p.At(0)[0]&0x1f != 24 {
		t.Fatalf("want STAP-A then the slice, got %d payloads, first type %d", p.Len(), p.At(0)[0]&0x1f)
	}
	if nri := p.At(0)[0] & 0x60; nri != 0x60 {
		t.Fatalf("STAP-A NRI %#x, want the highest (0x60)", nri)
	}
}

func TestDepacketizerLoss(t *testing.T) {
	var p Payloads
	PacketizeH264(annexB(nal(0x65, 4000, 1)), DefaultMTU, &p)
	var d H264Depacketizer
	d.Push(p.At(0), false)
	d.Lost() // packet 1 never came
	for i := 2; i < p.Len(); i++ {
		au, _ := d.Push(p.At(i), i == p.Len()-1)
		if au != nil {
			t.Fatal("a unit with a lost fragment was returned")
		}
	}
	// The next unit comes through whole.
	PacketizeH264(annexB(nal(0x41, 500, 2)), DefaultMTU, &p)
	if au, err := d.Push(p.At(0), true); err != nil || !bytes.Equal(au, annexB(nal(0x41, 500, 2))) {
		t.Fatalf("next unit: %v", err)
	}
}

func TestDepacketizerErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShortPayload},
		{"stap-a size past end", []byte{24, 0, 9, 0x67}, ErrBadSTAPA},
		{"stap-a zero size", []byte{24, 0, 0}, ErrBadSTAPA},
		{"fu-a middle first", []byte{28, 0x05, 1, 2}, ErrFUOrder},
		{"fu-a short", []byte{28}, ErrShortPayload},
		{"stap-b", []byte{25, 0, 0}, ErrUnsupported},
	} {
		var d H264Depacketizer
		if _, err := d.Push(tc.in, true); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestPacketizeAllocs(t *testing.T) {
	au := annexB(nal(0x67, 12, 1), nal(0x68, 4, 2), nal(0x65, 30000, 3))
	var p Payloads
	PacketizeH264(au, DefaultMTU, &p)
	if n := testing.AllocsPerRun(100, func() { PacketizeH264(au, DefaultMTU, &p) }); n != 0 {
		t.Fatalf("%v allocations per access unit", n)
	}
}

func FuzzH264Depacketizer(f *testing.F) {
	var p Payloads
	PacketizeH264(annexB(nal(0x67, 12, 1), nal(0x68, 4, 2), nal(0x65, 3000, 3)), DefaultMTU, &p)
	for i := range p.Len() {
		f.Add(p.At(i))
	}
	f.Add([]byte{24, 0, 2, 0x67})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := H264Depacketizer{MaxAU: 1 << 16}
		for range 3 {
			au, _ := d.Push(in, true)
			if len(au) > 1<<16 {
				t.Fatalf("unit of %d bytes over the limit", len(au))
			}
			if au != nil && !bytes.HasPrefix(au, startCode) {
				t.Fatal("unit does not start with a start code")
			}
		}
	})
}

func FuzzPacketizeH264(f *testing.F) {
	f.Add(annexB(nal(0x67, 12, 1), nal(0x68, 4, 2), nal(0x65, 3000, 3)))
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		var p Payloads
		PacketizeH264(in, 100, &p)
		for i := range p.Len() {
			if len(p.At(i)) > 100 || len(p.At(i)) == 0 {
				t.Fatalf("payload %d has %d bytes", i, len(p.At(i)))
			}
		}
	})
}

func BenchmarkPacketize720pKeyframe(b *testing.B) {
	au := annexB(nal(0x67, 12, 1), nal(0x68, 4, 2), nal(0x65, 60000, 3))
	var p Payloads
	b.SetBytes(int64(len(au)))
	b.ReportAllocs()
	for b.Loop() {
		PacketizeH264(au, DefaultMTU, &p)
	}
}
