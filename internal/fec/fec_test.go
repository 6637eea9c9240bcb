package fec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/rtp"
)

const (
	mediaPT  = 96
	redPT    = 123
	ulpfecPT = 122
	ssrc     = 0x1234abcd
	captureX = 1 // abs-capture-time: kept as sent
	twccX    = 3 // transport-wide-cc: the receiver zeroes it before decoding
)

// mediaPackets builds count packets the way the sender does: version 2, abs-capture-time and
// transport-wide-cc one-byte extensions, frames of up to 4 packets with the marker on the last,
// payloads of 100–1200 bytes; packet 2 has two CSRCs and packet 4 (when there is one) padding.
func mediaPackets(count int, firstSeq uint16) []*rtp.Packet {
	rng := rand.New(rand.NewPCG(uint64(count), uint64(firstSeq)))
	pkts := make([]*rtp.Packet, count)
	for i := range pkts {
		p := &rtp.Packet{Header: rtp.Header{
			Version: 2, PayloadType: mediaPT, SequenceNumber: firstSeq + uint16(i),
			Timestamp: 90000 + uint32(i/4)*3000, SSRC: ssrc, Marker: i%4 == 3 || i == count-1,
		}}
		capture := make([]byte, 8)
		binary.BigEndian.PutUint64(capture, rng.Uint64())
		twcc := binary.BigEndian.AppendUint16(nil, uint16(7000+i))
		if err := p.SetExtension(captureX, capture); err != nil {
			panic(err)
		}
		if err := p.SetExtension(twccX, twcc); err != nil {
			panic(err)
		}
		if i == 2 {
			p.CSRC = []uint32{0xcafe0001, 0xcafe0002}
		}
		if i == 4 {
			p.Padding, p.PaddingSize = true, 7
		}
		p.Payload = make([]byte, 100+rng.IntN(1101))
		for j := range p.Payload {
			p.Payload[j] = byte(rng.Uint32())
		}
		pkts[i] = p
	}
	return pkts
}

func marshal(t testing.TB, p *rtp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send protects pkts with n FEC packets and returns what goes on the wire: every media packet
// in RED, then the FEC packets in RED, numbered on from the last media packet.
func send(t testing.TB, enc *Encoder, pkts []*rtp.Packet, n int) [][]byte {
	t.Helper()
	enc.Start(n)
	var wire [][]byte
	for _, p := range pkts {
		raw := marshal(t, p)
		hl := p.Header.MarshalSize()
		if err := enc.Add(raw[:hl], raw[hl:]); err != nil {
			t.Fatalf("Add(%d): %v", p.SequenceNumber, err)
		}
		red := *p
		red.PayloadType = redPT
		red.Payload = make([]byte, REDHeaderLen+len(p.Payload))
		PutRED(red.Payload, mediaPT)
		copy(red.Payload[REDHeaderLen:], p.Payload)
		wire = append(wire, marshal(t, &red))
	}
	if enc.Len() != len(pkts) {
		t.Fatalf("Len = %d, want %d", enc.Len(), len(pkts))
	}
	last := pkts[len(pkts)-1].Header
	buf := make([]byte, MaxPayloadLen)
	for k := range n {
		m := enc.FEC(k, buf)
		if m == 0 {
			continue
		}
		payload := make([]byte, REDHeaderLen+m)
		PutRED(payload, ulpfecPT)
		copy(payload[REDHeaderLen:], buf[:m])
		fec := &rtp.Packet{Header: last, Payload: payload}
		fec.PayloadType, fec.Marker = redPT, false
		fec.Padding, fec.PaddingSize = false, 0
		fec.SequenceNumber = last.SequenceNumber + 1 + uint16(k)
		wire = append(wire, marshal(t, fec))
	}
	return wire
}

// zeroMutable is what libwebrtc's ZeroMutableExtensions does to a received packet, done with
// pion rather than this package's parser.
func zeroMutable(t testing.TB, pkt []byte) []byte {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(slices.Clone(pkt)); err != nil {
		t.Fatal(err)
	}
	if x := p.GetExtension(twccX); x != nil {
		if err := p.SetExtension(twccX, make([]byte, len(x))); err != nil {
			t.Fatal(err)
		}
	}
	return marshal(t, &p)
}

// receiver models libwebrtc's UlpfecReceiver: it unwraps RED, keeps media packets as it
// protects them and FEC payloads, and recovers until nothing more comes back.
type receiver struct {
	media map[uint16][]byte
	fecs  [][]byte
}

func receive(t testing.TB, wire [][]byte, lost func(i int) bool) *receiver {
	t.Helper()
	r := &receiver{media: map[uint16][]byte{}}
	for i, pkt := range wire {
		if lost(i) {
			continue
		}
		var h rtp.Header
		hl, err := h.Unmarshal(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if h.PayloadType != redPT || pkt[hl]&0x80 != 0 {
			t.Fatalf("packet %d: PT %d, RED byte %#x", i, h.PayloadType, pkt[hl])
		}
		if pkt[hl]&0x7f == ulpfecPT {
			r.fecs = append(r.fecs, pkt[hl+REDHeaderLen:]) // FEC packets carry no padding
			continue
		}
		media := append(slices.Clone(pkt[:hl]), pkt[hl+REDHeaderLen:]...)
		media[1] = media[1]&0x80 | pkt[hl]&0x7f
		r.media[h.SequenceNumber] = zeroMutable(t, media)
	}
	buf := make([]byte, 1500)
	for progress := true; progress; {
		progress = false
		for _, fec := range r.fecs {
			seq, n, err := Recover(fec, ssrc, func(s uint16) []byte { return r.media[s] }, buf)
			if errors.Is(err, ErrNotOneMissing) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			r.media[seq] = slices.Clone(buf[:n])
			progress = true
		}
	}
	return r
}

// checkAll asserts that the receiver holds every packet, byte for byte as sent less RED (and
// with transport-wide-cc zeroed, as libwebrtc's recovered packets have it).
func (r *receiver) checkAll(t testing.TB, pkts []*rtp.Packet) {
	t.Helper()
	for _, p := range pkts {
		got, want := r.media[p.SequenceNumber], zeroMutable(t, marshal(t, p))
		if !bytes.Equal(got, want) {
			t.Fatalf("packet %d: got %d bytes, want %d (first difference at %d)", p.SequenceNumber, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRoundTrip drops each packet in turn, and bursts of up to n consecutive packets, and checks
// that the FEC packets bring every one back.
func TestRoundTrip(t *testing.T) {
	enc := NewEncoder()
	enc.ZeroExtension(twccX)
	for _, tc := range []struct {
		count    int
		firstSeq uint16
	}{{10, 1000}, {12, 65530}, {MaxGroup, 40000}} {
		pkts := mediaPackets(tc.count, tc.firstSeq)
		for n := 1; n <= 3; n++ {
			wire := send(t, enc, pkts, n)
			if len(wire) != tc.count+n {
				t.Fatalf("%d packets on the wire, want %d", len(wire), tc.count+n)
			}
			for burst := 1; burst <= n; burst++ {
				for first := 0; first+burst <= tc.count; first++ {
					r := receive(t, wire, func(i int) bool { return i >= first && i < first+burst })
					r.checkAll(t, pkts)
				}
			}
			// One more loss than FEC packets in a burst is beyond them.
			r := receive(t, wire, func(i int) bool { return i < n+1 })
			if _, ok := r.media[tc.firstSeq]; ok {
				t.Fatalf("n = %d: a burst of %d recovered", n, n+1)
			}
		}
	}
}

// TestExtensionsMustBeZeroed: without ZeroExtension, a packet recovered by a receiver that zeroes
// transport-wide-cc is wrong.
func TestExtensionsMustBeZeroed(t *testing.T) {
	pkts := mediaPackets(6, 10)
	wire := send(t, NewEncoder(), pkts, 1)
	r := receive(t, wire, func(i int) bool { return i == 3 })
	if bytes.Equal(r.media[13], zeroMutable(t, marshal(t, pkts[3]))) {
		t.Fatal("recovered correctly though the encoder protected the transport-wide-cc bytes")
	}
}

// rawPacket is an RTP packet written out by hand.
func rawPacket(b0, b1 byte, seq uint16, ts uint32, rest ...byte) []byte {
	p := []byte{b0, b1, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0xab, 0xcd}
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	return append(p, rest...)
}

func encode(t *testing.T, n int, pkts ...[]byte) *Encoder {
	t.Helper()
	enc := NewEncoder()
	enc.Start(n)
	for _, p := range pkts {
		if err := enc.Add(p[:12], p[12:]); err != nil {
			t.Fatal(err)
		}
	}
	return enc
}

func fecPayload(t *testing.T, enc *Encoder, k int) []byte {
	t.Helper()
	buf := make([]byte, MaxPayloadLen)
	return buf[:enc.FEC(k, buf)]
}

// TestShortMaskLayout checks one FEC payload byte by byte against RFC 5109 §7.3–7.4.
func TestShortMaskLayout(t *testing.T) {
	enc := encode(t, 1,
		rawPacket(0x80, 0x60, 1000, 0x11223344, 0x01, 0x02, 0x03),
		rawPacket(0x81, 0x60, 1001, 0x11223344, 0xaa, 0xbb, 0xcc, 0xdd, 0x10, 0x20), // one CSRC
		rawPacket(0x80, 0xe0, 1002, 0x11223345, 0xff),                               // marker
	)
	want := []byte{
		0x01,       // E 0, L 0, P 0, X 0, CC 0^1^0
		0xe0,       // M 0^0^1, PT 96^96^96
		0x03, 0xe8, // SN base 1000
		0x11, 0x22, 0x33, 0x45, // TS recovery
		0x00, 0x04, // length recovery 3^6^1
		0x00, 0x06, // protection length: the longest, 6
		0xe0, 0x00, // mask: 1000, 1001, 1002
		0x01 ^ 0xaa ^ 0xff, 0x02 ^ 0xbb, 0x03 ^ 0xcc, 0xdd, 0x10, 0x20, // zero-extended XOR
	}
	if got := fecPayload(t, enc, 0); !bytes.Equal(got, want) {
		t.Fatalf("FEC payload\n got % x\nwant % x", got, want)
	}
	h, err := ParseHeader(want)
	if err != nil {
		t.Fatal(err)
	}
	if wantH := (Header{HeaderRecovery: [2]byte{0x01, 0xe0}, SNBase: 1000, TSRecovery: 0x11223345, LengthRecovery: 4, ProtectionLen: 6, Mask: 0b111}); h != wantH {
		t.Fatalf("ParseHeader = %+v, want %+v", h, wantH)
	}
}

// TestLongMaskLayout: 48 packets need the L bit and a 48-bit mask.
func TestLongMaskLayout(t *testing.T) {
	var pkts [][]byte
	for i := range MaxGroup {
		b1 := byte(0x60)
		if i == MaxGroup-1 {
			b1 = 0xe0
		}
		pkts = append(pkts, rawPacket(0x80, b1, 500+uint16(i), 0x01020304, byte(i)))
	}
	want := []byte{
		0x40,       // E 0, L 1, P X CC 0
		0x80,       // M: one marker; PT: 96 XORed 48 times
		0x01, 0xf4, // SN base 500
		0, 0, 0, 0, // 48 equal timestamps
		0, 0, // 48 equal lengths
		0x00, 0x01, // protection length 1
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // all 48
		0x00, // 0 ^ 1 ^ … ^ 47
	}
	if got := fecPayload(t, encode(t, 1, pkts...), 0); !bytes.Equal(got, want) {
		t.Fatalf("FEC payload\n got % x\nwant % x", got, want)
	}

	// Three interleaved FEC packets: each covers every third packet from its own SN base.
	enc := encode(t, 3, pkts...)
	for k := range 3 {
		got := fecPayload(t, enc, k)
		if got[0]&0x40 == 0 || binary.BigEndian.Uint16(got[2:]) != 500+uint16(k) {
			t.Fatalf("FEC %d: first byte %#x, SN base %d", k, got[0], binary.BigEndian.Uint16(got[2:]))
		}
		if mask := got[12:18]; !bytes.Equal(mask, []byte{0x92, 0x49, 0x24, 0x92, 0x49, 0x24}) {
			t.Fatalf("FEC %d: mask % x", k, mask)
		}
	}

	// 16 packets fit the short mask, 17 do not.
	if got := fecPayload(t, encode(t, 1, pkts[:16]...), 0); got[0]&0x40 != 0 || !bytes.Equal(got[12:14], []byte{0xff, 0xff}) || len(got) != 14+1 {
		t.Fatalf("16 packets: % x", got)
	}
	if got := fecPayload(t, encode(t, 1, pkts[:17]...), 0); got[0]&0x40 == 0 || !bytes.Equal(got[12:18], []byte{0xff, 0xff, 0x80, 0, 0, 0}) {
		t.Fatalf("17 packets: % x", got)
	}
}

func TestSequenceWrap(t *testing.T) {
	var pkts [][]byte
	for i := range 4 {
		pkts = append(pkts, rawPacket(0x80, 0x60, 65534+uint16(i), 1, byte(i)))
	}
	enc := encode(t, 2, pkts...)
	for k, want := range []uint16{65534, 65535} {
		if got := binary.BigEndian.Uint16(fecPayload(t, enc, k)[2:]); got != want {
			t.Fatalf("FEC %d: SN base %d, want %d", k, got, want)
		}
	}
	// Packet 1 (65535) is lost; FEC 1 covers it and packet 3 (1).
	dst := make([]byte, 100)
	seq, n, err := Recover(fecPayload(t, enc, 1), ssrc, func(s uint16) []byte {
		if s == 1 {
			return pkts[3]
		}
		return nil
	}, dst)
	if err != nil || seq != 65535 || !bytes.Equal(dst[:n], pkts[1]) {
		t.Fatalf("Recover: %d, % x, %v", seq, dst[:n], err)
	}
}

func TestAddRefuses(t *testing.T) {
	enc := NewEncoder()
	enc.ZeroExtension(twccX)
	p := func(seq uint16) []byte { return rawPacket(0x80, 0x60, seq, 1, 1, 2, 3) }
	for i := range MaxGroup {
		if err := enc.Add(p(7 + uint16(i))[:12], p(0)[12:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Add(p(7 + MaxGroup)[:12], nil); !errors.Is(err, ErrGroupFull) {
		t.Fatalf("49th packet: %v", err)
	}

	enc.Start(1)
	enc.Add(p(7)[:12], nil)
	otherSSRC := p(8)
	otherSSRC[11]++
	withExt := rawPacket(0x90, 0x60, 8, 1, 0xbe, 0xde, 0, 2, 0x31) // the extension block runs past the header
	for _, tc := range []struct {
		header, payload []byte
		want            error
	}{
		{p(9)[:12], nil, ErrNotNext},
		{p(7)[:12], nil, ErrNotNext},
		{otherSSRC[:12], nil, ErrNotNext},
		{p(8)[:11], nil, ErrShort},
		{withExt, nil, ErrShort},
		{p(8)[:12], make([]byte, MaxPacketLen-11), ErrTooLong},
	} {
		if err := enc.Add(tc.header, tc.payload); !errors.Is(err, tc.want) {
			t.Fatalf("Add(% x): %v, want %v", tc.header, err, tc.want)
		}
	}
	if enc.Len() != 1 {
		t.Fatalf("refused packets changed the group: Len %d", enc.Len())
	}
	if err := enc.Add(p(8)[:12], make([]byte, MaxPacketLen-12)); err != nil {
		t.Fatalf("a packet of MaxPacketLen: %v", err)
	}
	if n := enc.FEC(0, make([]byte, MaxPayloadLen)); n != MaxPayloadLen-4 { // short mask
		t.Fatalf("FEC of a MaxPacketLen packet: %d bytes", n)
	}
}

func TestFECCoversNothing(t *testing.T) {
	var zero Encoder
	if zero.FEC(0, nil) != 0 {
		t.Fatal("FEC of an empty group")
	}
	enc := encode(t, 3, rawPacket(0x80, 0x60, 1, 1, 9))
	if enc.FEC(1, nil) != 0 || enc.FEC(3, nil) != 0 || enc.FEC(-1, nil) != 0 {
		t.Fatal("FEC for a k that covers no packet")
	}
	// The zero value protects with one FEC packet.
	if err := zero.Add(rawPacket(0x80, 0x60, 1, 1)[:12], []byte{9}); err != nil {
		t.Fatal(err)
	}
	if got, want := fecPayload(t, &zero, 0), fecPayload(t, encode(t, 1, rawPacket(0x80, 0x60, 1, 1, 9)), 0); !bytes.Equal(got, want) {
		t.Fatalf("zero value: % x, want % x", got, want)
	}
}

func TestZeroExtensions(t *testing.T) {
	var ids extensionSet
	ids.add(3)
	ids.add(200)
	for _, tc := range []struct {
		name      string
		ext, want []byte // from the profile on
		ok        bool
	}{
		{"one-byte", []byte{0xbe, 0xde, 0, 2, 0x10, 9, 0, 0x31, 7, 7, 0x21, 5, 0, 0}, []byte{0xbe, 0xde, 0, 2, 0x10, 9, 0, 0x31, 0, 0, 0x21, 5, 0, 0}, true},
		{"one-byte stops at 15", []byte{0xbe, 0xde, 0, 1, 0xf0, 0x30, 1, 0}, []byte{0xbe, 0xde, 0, 1, 0xf0, 0x30, 1, 0}, true},
		{"two-byte", []byte{0x10, 0x00, 0, 2, 3, 2, 7, 7, 0, 200, 1, 9}, []byte{0x10, 0x00, 0, 2, 3, 2, 0, 0, 0, 200, 1, 0}, true},
		{"other profile", []byte{0x12, 0x34, 0, 1, 0x31, 7, 7, 0}, []byte{0x12, 0x34, 0, 1, 0x31, 7, 7, 0}, true},
		{"element past the block", []byte{0xbe, 0xde, 0, 1, 0x10, 1, 0x33, 7}, []byte{0xbe, 0xde, 0, 1, 0x10, 1, 0x33, 7}, true},
		{"block past the header", []byte{0xbe, 0xde, 0, 2, 0x31, 7, 7, 0}, nil, false},
	} {
		h := rawPacket(0x90, 0x60, 1, 1, tc.ext...)
		if ok := zeroExtensions(h, &ids); ok != tc.ok || ok && !bytes.Equal(h[12:], tc.want) {
			t.Errorf("%s: %v, % x; want %v, % x", tc.name, ok, h[12:], tc.ok, tc.want)
		}
	}
}

func TestRecoverErrors(t *testing.T) {
	pkts := [][]byte{rawPacket(0x80, 0x60, 1, 1, 1, 2, 3), rawPacket(0x80, 0x60, 2, 1, 4), rawPacket(0x80, 0x60, 3, 1, 5, 6)}
	fec := fecPayload(t, encode(t, 1, pkts...), 0)
	haveAllBut := func(lost ...uint16) func(uint16) []byte {
		return func(s uint16) []byte {
			if slices.Contains(lost, s) {
				return nil
			}
			return pkts[s-1]
		}
	}
	dst := make([]byte, 100)
	for _, tc := range []struct {
		name string
		fec  []byte
		have func(uint16) []byte
		dst  []byte
		want error
	}{
		{"short header", fec[:13], haveAllBut(1), dst, ErrShort},
		{"long mask cut", append([]byte{0x40}, fec[1:16]...), haveAllBut(1), dst, ErrShort},
		{"protected bytes cut", fec[:len(fec)-1], haveAllBut(1), dst, ErrShort},
		{"E bit", append([]byte{0x80}, fec[1:]...), haveAllBut(1), dst, ErrUnsupported},
		{"none missing", fec, haveAllBut(), dst, ErrNotOneMissing},
		{"two missing", fec, haveAllBut(1, 2), dst, ErrNotOneMissing},
		{"received runt", fec, func(s uint16) []byte { return [][]byte{nil, pkts[1][:11], pkts[2]}[s-1] }, dst, ErrShort},
		{"dst short", fec, haveAllBut(1), dst[:14], ErrShortBuffer},
		{"longer than protected", append(slices.Clone(fec[:8]), append([]byte{1, 0}, fec[10:]...)...), haveAllBut(1), dst, ErrLength},
	} {
		if _, _, err := Recover(tc.fec, ssrc, tc.have, tc.dst); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	seq, n, err := Recover(fec, 0x1234abcd, haveAllBut(1), dst)
	if err != nil || seq != 1 || !bytes.Equal(dst[:n], pkts[0]) {
		t.Fatalf("Recover: %d, % x, %v", seq, dst[:n], err)
	}
}

// TestNoAllocations: the send path, zeroed extensions included, does not allocate.
func TestNoAllocations(t *testing.T) {
	enc := NewEncoder()
	enc.ZeroExtension(twccX)
	pkts := mediaPackets(30, 100)
	headers, payloads := make([][]byte, len(pkts)), make([][]byte, len(pkts))
	for i, p := range pkts {
		raw := marshal(t, p)
		headers[i], payloads[i] = raw[:p.Header.MarshalSize()], raw[p.Header.MarshalSize():]
	}
	buf := make([]byte, MaxPayloadLen)
	allocs := testing.AllocsPerRun(100, func() {
		enc.Start(3)
		for i := range headers {
			if enc.Add(headers[i], payloads[i]) != nil {
				panic("Add")
			}
		}
		for k := range 3 {
			enc.FEC(k, buf)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per group", allocs)
	}
}
