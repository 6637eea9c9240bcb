package fec

import "testing"

// BenchmarkAddAndFEC protects a frame's worth of packets: 30 packets of 1200 bytes (28-byte
// headers with two extensions, one zeroed) with 3 FEC packets, as the send path does per frame.
func BenchmarkAddAndFEC(b *testing.B) {
	const count, size, fecs = 30, 1200, 3
	enc := NewEncoder()
	enc.ZeroExtension(twccX)
	pkts := mediaPackets(count, 100)
	headers, payloads := make([][]byte, count), make([][]byte, count)
	for i, p := range pkts {
		p.CSRC, p.Padding, p.PaddingSize = nil, false, 0
		hl := p.Header.MarshalSize()
		p.Payload = make([]byte, size-hl)
		raw := marshal(b, p)
		headers[i], payloads[i] = raw[:hl], raw[hl:]
	}
	buf := make([]byte, MaxPayloadLen)
	b.SetBytes(count * size)
	b.ReportAllocs()
	for b.Loop() {
		enc.Start(fecs)
		for i := range headers {
			if err := enc.Add(headers[i], payloads[i]); err != nil {
				b.Fatal(err)
			}
		}
		for k := range fecs {
			enc.FEC(k, buf)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*count), "ns/packet")
}
