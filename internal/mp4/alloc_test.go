package mp4

import (
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// source feeds a Writer one second of 30 fps video and 20 ms Opus packets at a time, as a
// device would, so that every call includes a fragment cut.
type source struct {
	w            *Writer
	frame, audio int
	key, delta   []byte
}

func newSource(t testing.TB, auSize int) *source {
	w := newTestWriter(t, io.Discard, Options{},
		Track{Codec: H264, ParameterSets: [][]byte{testSPS, testPPS}}, Track{Codec: Opus})
	return &source{w: w, key: noisyAU(true, auSize*4), delta: noisyAU(false, auSize)}
}

// noisyAU is an access unit whose slice data looks like compressed video to the Annex-B
// scanner: random bytes (with 0x01 about every 256), emulation prevention applied.
func noisyAU(key bool, size int) []byte {
	au := syntheticAU(key, 0)
	r := rand.New(rand.NewPCG(1, uint64(size)))
	for range size {
		c := byte(r.Uint32())
		if n := len(au); c <= 3 && au[n-1] == 0 && au[n-2] == 0 {
			au = append(au, 3)
		}
		au = append(au, c)
	}
	if au[len(au)-1] == 0 {
		au[len(au)-1] = 0x80
	}
	return au
}

// second writes the next second of samples.
func (s *source) second(t testing.TB) {
	end := time.Duration(s.frame/30+1) * time.Second
	for {
		vt, at := frameTime(s.frame), time.Duration(s.audio)*20*time.Millisecond
		if vt >= end && at >= end {
			return
		}
		var err error
		if vt <= at {
			key := s.frame%30 == 0
			au := s.delta
			if key {
				au = s.key
			}
			err = s.w.WriteSample(0, Sample{Data: au, Time: vt, Keyframe: key})
			s.frame++
		} else {
			err = s.w.WriteSample(1, Sample{Data: opusPacket, Time: at})
			s.audio++
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSteadyStateAllocs: once the buffers have grown, writing samples and cutting fragments
// allocates nothing.
func TestSteadyStateAllocs(t *testing.T) {
	s := newSource(t, 4000)
	for range 3 {
		s.second(t) // grow the buffers
	}
	frags := s.w.Stats().Fragments
	allocs := testing.AllocsPerRun(20, func() { s.second(t) })
	if allocs != 0 {
		t.Errorf("%v allocations per second of media (80 samples, one fragment), want 0", allocs)
	}
	if got := s.w.Stats().Fragments - frags; got < 20 {
		t.Errorf("%d fragments written during the measurement, want one a second", got)
	}
}

// BenchmarkWriteSample reports the cost per sample (mixed: 30 video frames and 50 Opus
// packets a second; delta frames of 4 or 40 kB, keyframes 4 times that) and the throughput
// in MB/s of sample data.
func BenchmarkWriteSample(b *testing.B) {
	for _, size := range []int{4000, 40000} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			s := newSource(b, size)
			s.second(b)
			perSecond := int64(29*len(s.delta) + len(s.key) + 50*len(opusPacket))
			b.SetBytes(perSecond / 80) // per sample, on average
			b.ReportAllocs()
			b.ResetTimer()
			samples := 0
			for samples < b.N {
				s.second(b)
				samples += 80
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
		})
	}
}
