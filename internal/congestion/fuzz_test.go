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

// FuzzFeedback feeds arbitrary bytes to an estimator that has sent packets 0–299: whatever
// the report says, nothing panics and the state stays sane. The seed corpus is in
// testdata/fuzz/FuzzFeedback (written by TestWriteFuzzCorpus).
func FuzzFeedback(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e := NewEstimator(Config{})
		stream(e, 0, 300, t0)
		feed(t, e, received(0, 100, 0, 0), t0.Add(150*time.Millisecond))
		for i := range 2 {
			_ = e.Feedback(data, t0.Add(time.Duration(200+i)*time.Millisecond))
		}
		e.Probe(t0.Add(time.Second))
		stream(e, 300, 10, t0.Add(time.Second))
		checkSane(t, e)
	})
}

// FuzzFeedbackParse reads arbitrary bytes in place and with pion/rtcp: both accept the same
// packets, and read the same statuses and arrival deltas from them, in the same order. The
// seed corpus is FuzzFeedback's.
func FuzzFeedbackParse(f *testing.F) {
	for _, raw := range seedFeedbacks(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fb, err := parseFeedback(data)
		var ref rtcp.TransportLayerCC
		rerr := ref.Unmarshal(data)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("in place: %v; pion/rtcp: %v", err, rerr)
		}
		if err != nil {
			return
		}
		if fb.base != ref.BaseSequenceNumber || fb.count != int(ref.PacketStatusCount) || fb.ref != ref.ReferenceTime {
			t.Fatalf("base %d count %d ref %d; pion/rtcp %d %d %d", fb.base, fb.count, fb.ref, ref.BaseSequenceNumber, ref.PacketStatusCount, ref.ReferenceTime)
		}
		want := pionStatuses(&ref)
		st := fb.statuses()
		for i := 0; ; i++ {
			sym, delta, ok := st.next()
			if !ok {
				if i != len(want) {
					t.Fatalf("%d statuses, pion/rtcp %d", i, len(want))
				}
				break
			}
			if i >= len(want) || want[i] != [2]int64{int64(sym), delta} {
				t.Fatalf("status %d: %d %d µs; pion/rtcp %v", i, sym, delta, want[i:])
			}
		}
	})
}

// pionStatuses lists the statuses of a pion/rtcp-parsed report as the estimator reads them
// (the first PacketStatusCount, in chunk order), each with its receive delta in µs.
func pionStatuses(fb *rtcp.TransportLayerCC) [][2]int64 {
	var out [][2]int64
	di := 0
	add := func(sym uint16) {
		var d int64
		if sym == rtcp.TypeTCCPacketReceivedSmallDelta || sym == rtcp.TypeTCCPacketReceivedLargeDelta {
			d = fb.RecvDeltas[di].Delta
			di++
		}
		out = append(out, [2]int64{int64(sym), d})
	}
	count := int(fb.PacketStatusCount)
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range min(int(c.RunLength), count-len(out)) {
				add(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range c.SymbolList {
				if len(out) < count {
					add(sym)
				}
			}
		}
	}
	return out
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
