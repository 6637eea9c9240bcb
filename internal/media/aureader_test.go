package media

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// splitAll reads every access unit of stream, copying each, and fails the
// test on any error other than the final io.EOF.
func splitAll(tb testing.TB, stream []byte, maxAU int) [][]byte {
	tb.Helper()
	units, err := readUnits(bytes.NewReader(stream), maxAU)
	if err != nil {
		tb.Fatalf("AUReader: %v after %d units", err, len(units))
	}
	return units
}

func readUnits(r io.Reader, maxAU int) ([][]byte, error) {
	ar := NewAUReader(r, maxAU)
	var units [][]byte
	for {
		au, err := ar.Next()
		if err == io.EOF {
			return units, nil
		}
		if err != nil {
			return units, err
		}
		units = append(units, bytes.Clone(au))
	}
}

// chunkReader returns the data in pieces of random size, the way a pipe
// from a child process delivers it.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(c.max))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// loopReader repeats data forever without allocating, for steady-state
// allocation checks and benchmarks.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// checkUnits asserts the properties every access unit of a real stream has:
// 4-byte start codes, exactly one primary picture (one slice with
// first_mb_in_slice 0), parameter sets only ahead of the picture, and an
// AUD first when the stream has them.
func checkUnits(t *testing.T, s testStream, units [][]byte) {
	t.Helper()
	if len(units) != s.frames {
		t.Fatalf("%d access units, want %d", len(units), s.frames)
	}
	for i, au := range units {
		if !bytes.HasPrefix(au, []byte{0, 0, 0, 1}) {
			t.Errorf("unit %d does not begin with 00 00 00 01", i)
		}
		nals := allNALs(au)
		if n := bytes.Count(au, []byte{0, 0, 0, 1}); n != len(nals) {
			t.Errorf("unit %d: %d four-byte start codes for %d NAL units", i, n, len(nals))
		}
		pictures, slices := 0, 0
		for _, nal := range nals {
			typ := TypeOf(nal)
			if typ.IsVCL() {
				slices++
				if nal[1]&0x80 != 0 {
					pictures++
				}
			} else if slices > 0 && typ != NALEndSeq && typ != NALEndStream && typ != NALFiller {
				t.Errorf("unit %d: %v after the picture", i, typ)
			}
		}
		if pictures != 1 || slices != s.slices {
			t.Errorf("unit %d: %d pictures in %d slices, want 1 in %d", i, pictures, slices, s.slices)
		}
		if s.aud && TypeOf(nals[0]) != NALAUD {
			t.Errorf("unit %d starts with %v, want AUD", i, TypeOf(nals[0]))
		}
		if IsKeyframe(au) != (i == 0) {
			t.Errorf("unit %d: IsKeyframe = %v", i, IsKeyframe(au))
		}
	}
}

// sameNALs checks that splitting into access units neither lost, added nor
// altered a NAL unit.
func sameNALs(t *testing.T, stream []byte, units [][]byte) {
	t.Helper()
	want := allNALs(stream)
	var got [][]byte
	for _, au := range units {
		got = append(got, allNALs(au)...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d NAL units after splitting, %d before", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("NAL unit %d differs after splitting", i)
		}
	}
}

func TestAUReaderStreams(t *testing.T) {
	for _, s := range testStreams {
		data := readTestdata(t, s.file)
		t.Run(s.file+"/whole", func(t *testing.T) {
			units := splitAll(t, data, 0)
			checkUnits(t, s, units)
			sameNALs(t, data, units)
		})
		t.Run(s.file+"/bytewise", func(t *testing.T) {
			units, err := readUnits(iotest.OneByteReader(bytes.NewReader(data)), 0)
			if err != nil {
				t.Fatal(err)
			}
			checkUnits(t, s, units)
			sameNALs(t, data, units)
		})
		t.Run(s.file+"/chunks", func(t *testing.T) {
			for seed := range uint64(20) {
				cr := &chunkReader{data: data, rng: rand.New(rand.NewPCG(seed, 7)), max: 1 + int(seed)*97}
				units, err := readUnits(cr, 0)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				checkUnits(t, s, units)
				sameNALs(t, data, units)
			}
		})
		t.Run(s.file+"/dataerr", func(t *testing.T) {
			// Readers may return the last bytes together with io.EOF.
			units, err := readUnits(iotest.DataErrReader(bytes.NewReader(data)), 0)
			if err != nil {
				t.Fatal(err)
			}
			checkUnits(t, s, units)
		})
		t.Run(s.file+"/smallbuffer", func(t *testing.T) {
			// A limit just above the largest unit forces the input buffer
			// to start small and grow.
			units := splitAll(t, data, 0)
			largest := 0
			for _, u := range units {
				largest = max(largest, len(u))
			}
			got := splitAll(t, data, largest)
			checkUnits(t, s, got)
			if _, err := readUnits(bytes.NewReader(data), largest-1); !errors.Is(err, ErrAUTooLarge) {
				t.Errorf("maxAU %d: err = %v, want ErrAUTooLarge", largest-1, err)
			}
		})
	}
}

// TestAUReaderConcatenated joins streams with 3-byte start codes and
// trailing zeros between them, as a restarted encoder on the same pipe does.
func TestAUReaderConcatenated(t *testing.T) {
	var stream []byte
	frames := 0
	for _, s := range testStreams {
		data := readTestdata(t, s.file)
		for nal, rest, ok := NextNAL(data); ok; nal, rest, ok = NextNAL(rest) {
			stream = append(stream, 0, 0, 1)
			stream = append(stream, nal...)
			stream = append(stream, 0, 0) // trailing_zero_8bits
		}
		frames += s.frames
	}
	units := splitAll(t, stream, 0)
	if len(units) != frames {
		t.Errorf("%d units, want %d", len(units), frames)
	}
	sameNALs(t, stream, units)
	for i, u := range units {
		if bytes.HasSuffix(u, []byte{0}) {
			t.Errorf("unit %d keeps trailing zeros", i)
		}
	}
}

func TestAUReaderSynthetic(t *testing.T) {
	const (
		sps   = "00 00 00 01 67 42 c0 1f"
		pps   = "00 00 00 01 68 ce 3c 80"
		aud   = "00 00 00 01 09 f0"
		sei   = "00 00 00 01 06 05 01 80"
		idr   = "00 00 00 01 65 88 84" // first_mb_in_slice 0
		idr2  = "00 00 00 01 65 21 84" // first_mb_in_slice > 0: same picture
		p     = "00 00 00 01 41 9a 02"
		p2    = "00 00 00 01 41 4a 02"
		eos   = "00 00 00 01 0a"
		pfx   = "00 00 00 01 0e 80"
		fill  = "00 00 00 01 0c ff ff 80"
		short = "00 00 00 01 41" // slice with no payload: cannot start a picture
	)
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"single picture", sps + pps + idr, []string{sps + pps + idr}},
		{"two pictures", sps + pps + idr + p, []string{sps + pps + idr, p}},
		{"slices of one picture", idr + idr2 + idr2 + p + p2 + p2, []string{idr + idr2 + idr2, p + p2 + p2}},
		{"AUD starts", idr + aud + p2, []string{idr, aud + p2}},
		{"SEI starts", idr + sei + p, []string{idr, sei + p}},
		{"PPS starts", idr + pps + p2, []string{idr, pps + p2}},
		{"prefix starts", idr + pfx + p2, []string{idr, pfx + p2}},
		{"filler stays", idr + fill + p, []string{idr + fill, p}},
		{"end of sequence stays", idr + eos + sps + idr, []string{idr + eos, sps + idr}},
		{"parameter sets before first picture", sps + sps + pps + pps + p, []string{sps + sps + pps + pps + p}},
		{"trailing parameter sets", idr + sps + pps, []string{idr, sps + pps}},
		{"header-only slice", idr + short + p, []string{idr + short, p}},
		{"leading zeros", "00 00 00 00 00 00" + idr + p, []string{idr, p}},
		{"three-byte codes", "00 00 01 65 88 84 00 00 01 41 9a 02", []string{idr, p}},
		{"trailing zeros", idr + "00 00 00 00" + p + "00 00", []string{idr, p}},
		{"empty NAL units", "00 00 01 00 00 01" + idr + "00 00 01", []string{idr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
				units, err := readUnits(r, 0)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, u := range units {
					got = append(got, spaced(u))
				}
				var want []string
				for _, w := range tc.want {
					want = append(want, spaced(unhex(t, w)))
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("got units\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}

func TestAUReaderEOF(t *testing.T) {
	data := readTestdata(t, "main_360p.h264")
	ar := NewAUReader(bytes.NewReader(data), 0)
	n := 0
	for {
		au, err := ar.Next()
		if err == io.EOF {
			if au != nil {
				t.Error("io.EOF came with data")
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 4 {
		t.Errorf("%d units, want 4 (the last one is returned at EOF)", n)
	}
	for range 3 {
		if _, err := ar.Next(); err != io.EOF {
			t.Errorf("after the end: %v, want io.EOF again", err)
		}
	}
	// An empty stream, and one of only leading zeros, end cleanly.
	for _, in := range [][]byte{nil, {0, 0, 0}} {
		if _, err := NewAUReader(bytes.NewReader(in), 0).Next(); err != io.EOF && !errors.Is(err, ErrNotAnnexB) {
			t.Errorf("Next on % x: %v", in, err)
		}
	}
	if _, err := NewAUReader(bytes.NewReader(nil), 0).Next(); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
}

func TestAUReaderNotAnnexB(t *testing.T) {
	for _, in := range []string{
		"00 00 00 18 66 74 79 70 69 73 6f 6d", // an MP4 ftyp box
		"47 40 00 10 00 00 b0 0d",             // an MPEG-TS packet
		"00 00 02 65 88",
		"00 01 65 88",
		"65 88 84 00 00 01 65",
		"00 00", // zeros and nothing else is not a stream
	} {
		_, err := NewAUReader(bytes.NewReader(unhex(t, in)), 0).Next()
		if !errors.Is(err, ErrNotAnnexB) {
			t.Errorf("Next(%s) = %v, want ErrNotAnnexB", in, err)
		}
	}
}

func TestAUReaderTooLarge(t *testing.T) {
	data := readTestdata(t, "baseline_720p.h264")
	ar := NewAUReader(bytes.NewReader(data), 1000)
	_, err := ar.Next()
	if !errors.Is(err, ErrAUTooLarge) {
		t.Fatalf("err = %v, want ErrAUTooLarge", err)
	}
	// Sticky: a broken stream stays broken.
	if _, err2 := ar.Next(); !errors.Is(err2, ErrAUTooLarge) {
		t.Errorf("second call: %v, want ErrAUTooLarge again", err2)
	}
	// A single NAL unit that never ends must not be buffered without
	// bound: the reader gives up after about maxAU bytes, not at EOF.
	cr := &countingReader{r: io.MultiReader(bytes.NewReader([]byte{0, 0, 1, 0x65}), &loopReader{data: []byte{0xff, 0xee, 0x00}})}
	_, err = NewAUReader(cr, 4096).Next()
	if !errors.Is(err, ErrAUTooLarge) {
		t.Fatalf("endless NAL unit: %v, want ErrAUTooLarge", err)
	}
	if cr.n > 4*4096 {
		t.Errorf("read %d bytes of a NAL unit that cannot fit in 4096", cr.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestAUReaderHugeLimit makes sure a limit near MaxInt does not overflow
// the buffer sizing.
func TestAUReaderHugeLimit(t *testing.T) {
	s := testStreams[2]
	units, err := readUnits(bytes.NewReader(readTestdata(t, s.file)), math.MaxInt)
	if err != nil {
		t.Fatal(err)
	}
	checkUnits(t, s, units)
}

func TestAUReaderReadError(t *testing.T) {
	data := readTestdata(t, "main_360p.h264")
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(boom))
	_, err := readUnits(r, 0)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want the reader's error", err)
	}
	if _, err := NewAUReader(emptyReader{}, 0).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("reader stuck at 0, nil: %v, want io.ErrNoProgress", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestAUReaderAllocs(t *testing.T) {
	for _, name := range []string{"baseline_720p.h264", "main_360p_aud.h264", "slices_360p.h264"} {
		ar := NewAUReader(iotest.HalfReader(&loopReader{data: readTestdata(t, name)}), 0)
		for range 50 { // warm up: let the buffers reach their working size
			if _, err := ar.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if a := testing.AllocsPerRun(200, func() {
			if _, err := ar.Next(); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: Next allocates %v times per unit in steady state", name, a)
		}
	}
}

func BenchmarkAUReader(b *testing.B) {
	for _, name := range []string{"baseline_720p.h264", "high_1080p.h264", "slices_360p.h264"} {
		b.Run(name, func(b *testing.B) {
			data := readTestdata(b, name)
			units := len(splitAll(b, data, 0))
			ar := NewAUReader(&loopReader{data: data}, 0)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				for range units {
					if _, err := ar.Next(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func FuzzAUReader(f *testing.F) {
	for _, s := range testStreams {
		data := readTestdata(f, s.file)
		f.Add(data, uint16(0), uint8(0))
		f.Add(data[:min(len(data), 700)], uint16(600), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxAU uint16, chunk uint8) {
		limit := int(maxAU)
		if limit == 0 {
			limit = DefaultMaxAU
		}
		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			r = &chunkReader{data: data, rng: rand.New(rand.NewPCG(uint64(chunk), 1)), max: int(chunk)}
		}
		ar := NewAUReader(r, int(maxAU))
		var nals [][]byte
		total := 0
		var err error
		for i := 0; ; i++ {
			if i > len(data) {
				t.Fatal("more access units than input bytes")
			}
			var au []byte
			au, err = ar.Next()
			if err != nil {
				break
			}
			if !bytes.HasPrefix(au, []byte{0, 0, 0, 1}) {
				t.Fatalf("unit % x does not begin with a start code", au[:min(len(au), 8)])
			}
			if len(au) > limit {
				t.Fatalf("unit of %d bytes exceeds maxAU %d", len(au), limit)
			}
			seenVCL := false
			for nal, rest, ok := NextNAL(au); ok; nal, rest, ok = NextNAL(rest) {
				typ := TypeOf(nal)
				if seenVCL && startsAU(typ, nal) {
					t.Fatalf("%v inside a unit after its picture began", typ)
				}
				seenVCL = seenVCL || typ.IsVCL()
				total += len(nal)
				nals = append(nals, bytes.Clone(nal))
			}
			if total > len(data) {
				t.Fatal("units hold more NAL bytes than the input")
			}
		}
		switch {
		case err == io.EOF:
			// Nothing was lost, added or changed.
			want := allNALs(data)
			if len(want) != len(nals) {
				t.Fatalf("%d NAL units split, %d in input", len(nals), len(want))
			}
			for i := range want {
				if !bytes.Equal(want[i], nals[i]) {
					t.Fatalf("NAL unit %d changed", i)
				}
			}
		case errors.Is(err, ErrNotAnnexB), errors.Is(err, ErrAUTooLarge):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
