package fec

import "testing"

// FuzzRecover feeds Recover arbitrary FEC payloads and received packets: it must not panic, and
// what it returns must fit dst and be a version-2 RTP packet. The received packets are slices
// of blob chosen by sequence number; the one at drop (mod 48) from SN base is missing.
func FuzzRecover(f *testing.F) {
	pkts := [][]byte{rawPacket(0x80, 0x60, 1, 1, 1, 2, 3), rawPacket(0x90, 0xe0, 2, 9, 0xbe, 0xde, 0, 1, 0x31, 7, 7, 0, 4), rawPacket(0x80, 0x60, 3, 1, 5, 6)}
	enc := NewEncoder()
	enc.Start(1)
	for _, p := range pkts {
		if err := enc.Add(p[:12], p[12:]); err != nil {
			f.Fatal(err)
		}
	}
	buf := make([]byte, MaxPayloadLen)
	fec := buf[:enc.FEC(0, buf)]
	f.Add(fec, append(append(append([]byte{}, pkts[0]...), pkts[1]...), pkts[2]...), uint32(ssrc), uint8(1))
	f.Add([]byte{0x40, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, make([]byte, 40), uint32(0), uint8(47))
	f.Fuzz(func(t *testing.T, fec, blob []byte, ssrc uint32, drop uint8) {
		h, err := ParseHeader(fec)
		if err != nil {
			return
		}
		have := func(seq uint16) []byte {
			i := int(seq - h.SNBase)
			if i == int(drop%MaxGroup) || len(blob) == 0 {
				return nil
			}
			from := i * 7 % len(blob)
			return blob[from : from+(i*13+int(drop))%(len(blob)-from+1)]
		}
		dst := make([]byte, int(drop)*8)
		seq, n, err := Recover(fec, ssrc, have, dst)
		if err != nil {
			return
		}
		if n < rtpHeaderLen || n > len(dst) || dst[0]>>6 != 2 || int(seq-h.SNBase) >= MaxGroup {
			t.Fatalf("Recover returned %d, %d for a %d-byte dst: % x", seq, n, len(dst), dst[:min(n, len(dst))])
		}
	})
}
