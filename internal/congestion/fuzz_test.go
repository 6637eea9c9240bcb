package congestion

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// FuzzFeedback feeds arbitrary bytes, parsed by rtcp.Unmarshal, to an estimator that has
// sent packets 0–299: whatever the report says, nothing panics and the state stays sane.
// The seed corpus is in testdata/fuzz/FuzzFeedback (written by TestWriteFuzzCorpus).
func FuzzFeedback(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts, err := rtcp.Unmarshal(data)
		if err != nil {
			return
		}
		e := NewEstimator(Config{})
		stream(e, 0, 300, t0)
		e.Feedback(received(0, 100, 0, 0), t0.Add(150*time.Millisecond))
		for i, p := range pkts {
			if fb, ok := p.(*rtcp.TransportLayerCC); ok {
				e.Feedback(fb, t0.Add(time.Duration(200+i)*time.Millisecond))
				e.Feedback(fb, t0.Add(time.Duration(200+i)*time.Millisecond))
			}
		}
		e.Probe(t0.Add(time.Second))
		stream(e, 300, 10, t0.Add(time.Second))
		checkSane(t, e)
	})
}

// seedFeedbacks are the corpus: real encodings of typical and odd reports.
func seedFeedbacks(t testing.TB) map[string][]byte {
	vec2 := &rtcp.TransportLayerCC{
		BaseSequenceNumber: 100, PacketStatusCount: 7, ReferenceTime: 3,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit,
			SymbolList: []uint16{1, 2, 0, 1, 2, 0, 1}}},
		RecvDeltas: []*rtcp.RecvDelta{
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250},
			{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: -2500},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 63750},
			{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: 8191750},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 0},
		},
	}
	seeds := map[string]*rtcp.TransportLayerCC{
		"received":        received(100, 100, 0, 1),
		"loss_pattern":    {BaseSequenceNumber: 0, PacketStatusCount: 40, PacketChunks: encodeChunks(symbols(40, 5)), RecvDeltas: received(0, 32, 0, 0).RecvDeltas},
		"only_lost":       lost(0, 300),
		"far_future":      received(40000, 20, 1, 2),
		"wrap":            received(65530, 20, 0xFFFFFF, 3),
		"two_bit_vector":  vec2,
		"reference_jump":  received(200, 50, 1<<23, 4),
		"count_too_large": {BaseSequenceNumber: 0, PacketStatusCount: 65535, PacketChunks: encodeChunks(symbols(14, 3)), RecvDeltas: received(0, 10, 0, 0).RecvDeltas},
	}
	out := make(map[string][]byte, len(seeds))
	for name, fb := range seeds {
		out[name] = marshalTWCC(t, fb)
	}
	return out
}

// TestWriteFuzzCorpus rewrites the seed corpus when CONGESTION_WRITE_CORPUS=1; otherwise
// it checks that each seed still parses as a TWCC report.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzFeedback")
	for name, raw := range seedFeedbacks(t) {
		if _, err := rtcp.Unmarshal(raw); err != nil && name != "count_too_large" {
			t.Errorf("seed %s does not parse: %v", name, err)
		}
		if os.Getenv("CONGESTION_WRITE_CORPUS") != "1" {
			continue
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(raw)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
