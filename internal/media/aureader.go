package media

import (
	"fmt"
	"io"
)

// DefaultMaxAU is the access unit size limit NewAUReader uses when given
// maxAU ≤ 0. An 8 MiB picture is far beyond any sane live bitrate (a 4K
// intra frame at high quality is a few MiB) while still bounding memory.
const DefaultMaxAU = 8 << 20

// initialReadBuf is the first input buffer size; it grows on demand up to
// about maxAU, so a low-bitrate stream does not pin megabytes.
const initialReadBuf = 64 << 10

// maxEmptyReads mirrors bufio: an io.Reader that keeps returning 0, nil is
// broken, and looping on it forever would hang the source.
const maxEmptyReads = 100

// AUReader splits a plain Annex-B byte stream into access units, for
// producers that send no framing (an ffmpeg or hardware encoder pipe).
//
// Boundaries follow H.264 7.4.1.2.3: an AUD, SPS, PPS, SEI or types 14..18
// after a VCL NAL of the current unit starts a new one, and so does a VCL
// NAL whose first_mb_in_slice is 0 (first bit after the header is 1 in
// ue(v) coding) after a VCL NAL. The full 7.4.1.2.4 comparison of slice
// headers is not done: it needs the PPS and SPS of every slice, and the
// first_mb_in_slice rule is exact for every encoder that does not use
// arbitrary slice order, which no live encoder p2pcast drives does.
//
// A unit is returned only once the next one has started (or at EOF), so
// the reader adds one frame of latency; producers that can mark frame ends
// themselves (AUD insertion) do not reduce it, because an AUD also only
// arrives with the next frame.
//
// An AUReader is not safe for concurrent use. Errors other than io.EOF are
// sticky: once the stream is found broken, every later call reports it,
// because resynchronising silently would hand half-frames to viewers.
type AUReader struct {
	r     io.Reader
	maxAU int

	buf []byte // input; buf[pos:end] is not yet consumed
	pos int    // first byte of the current NAL unit (just after its start code)
	end int
	// scan is where the search for the start code ending the current NAL
	// unit resumes, so that data read in several chunks is scanned once.
	scan    int
	eof     bool
	started bool // the initial start code has been found

	// A NAL unit found but not yet consumed because it begins the next
	// access unit: buf[peekStart:peekEnd], with the next one at peekNext.
	peeked                      bool
	peekStart, peekEnd, peekNxt int

	au  []byte // the access unit being built, reused between calls
	err error  // sticky error
}

// NewAUReader reads from r; an access unit larger than maxAU bytes (counting
// the 4-byte start codes of the returned form) is an error (ErrAUTooLarge).
// maxAU ≤ 0 selects DefaultMaxAU.
func NewAUReader(r io.Reader, maxAU int) *AUReader {
	if maxAU <= 0 {
		maxAU = DefaultMaxAU
	}
	return &AUReader{r: r, maxAU: maxAU}
}

// Next returns the next access unit as Annex-B (each NAL unit with a 4-byte
// start code 00 00 00 01, trailing zero bytes removed), valid until the next
// call. It returns io.EOF at a clean end, after the last unit; ErrNotAnnexB
// if the stream does not begin with a start code (leading zero bytes are
// allowed, as B.1 permits); ErrAUTooLarge, wrapped, for a unit over the
// limit; or the underlying reader's error. In steady state it does not
// allocate: the input and output buffers are reused.
//
// NAL units ahead of a picture (parameter sets, SEI, AUD) are grouped with
// it; a stream that ends in such NAL units after its last picture yields
// them as a final unit of their own rather than dropping them.
func (r *AUReader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	au, err := r.next()
	if err != nil && err != io.EOF {
		r.err = err
	}
	return au, err
}

func (r *AUReader) next() ([]byte, error) {
	if !r.started {
		if err := r.findFirstStartCode(); err != nil {
			return nil, err
		}
	}
	r.au = r.au[:0]
	hasVCL := false
	for {
		start, stop, ok, err := r.peek()
		if err != nil {
			return nil, err
		}
		if !ok {
			if len(r.au) == 0 {
				return nil, io.EOF
			}
			return r.unit(), nil
		}
		nal := r.buf[start:stop]
		t := TypeOf(nal)
		if hasVCL && startsAU(t, nal) {
			// Leave the NAL unit peeked; it opens the next call's unit.
			return r.unit(), nil
		}
		if len(r.au)+4+len(nal) > r.maxAU {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrAUTooLarge, r.maxAU)
		}
		// Always a four-byte start code: every consumer (MP4 muxers
		// converting to length prefixes, WebRTC packetizers, browsers)
		// handles it without surprise, whatever the producer wrote.
		r.au = append(r.au, 0, 0, 0, 1)
		r.au = append(r.au, nal...)
		if t.IsVCL() {
			hasVCL = true
		}
		r.consume()
	}
}

// unit returns the finished access unit with its capacity clipped, so a
// caller appending to it gets a copy instead of writing into the buffer
// the next call reuses.
func (r *AUReader) unit() []byte { return r.au[:len(r.au):len(r.au)] }

// startsAU reports whether a NAL unit of type t, seen after a VCL NAL unit
// of the current access unit, begins a new one (7.4.1.2.3).
func startsAU(t NALType, nal []byte) bool {
	switch {
	case t == NALAUD || t == NALSPS || t == NALPPS || t == NALSEI:
		return true
	case t >= NALPrefix && t <= NALReserved18:
		return true
	case t.IsVCL():
		// first_mb_in_slice is the first slice header field; ue(v) codes 0
		// as a single 1 bit. The byte after the header is never an
		// emulation prevention byte, so no unescaping is needed.
		return len(nal) > 1 && nal[1]&0x80 != 0
	}
	return false
}

// findFirstStartCode skips leading_zero_8bits and checks that the stream
// really begins with a start code, so that feeding an MP4 or MPEG-TS file
// by mistake fails at once instead of producing garbage frames.
func (r *AUReader) findFirstStartCode() error {
	zeros := 0
	seen := false // any byte at all, to tell an empty stream from a bad one
	for {
		for r.pos < r.end {
			seen = true
			c := r.buf[r.pos]
			r.pos++
			switch {
			case c == 0:
				zeros++
			case c == 1 && zeros >= 2:
				r.started = true
				r.scan = r.pos
				return nil
			default:
				return ErrNotAnnexB
			}
		}
		if r.eof {
			if !seen {
				return io.EOF // nothing at all: a clean, empty stream
			}
			return ErrNotAnnexB
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
}

// peek locates the current NAL unit, reading more input until the start
// code that ends it (or EOF) is seen. Empty NAL units are skipped, as
// NextNAL does, so both agree on what a stream contains. ok is false at the
// end of the stream.
func (r *AUReader) peek() (start, stop int, ok bool, err error) {
	for {
		if r.peeked {
			return r.peekStart, r.peekEnd, true, nil
		}
		from := max(r.scan, r.pos+2)
		j := -1
		if from < r.end {
			// findStartCode wants the position the zeros may start at.
			if k := findStartCode(r.buf[:r.end], from-2); k >= 0 {
				j = k
			}
		}
		var next int
		switch {
		case j >= 0:
			stop, next = j-2, j+1
		case r.eof:
			stop, next = r.end, r.end
		default:
			r.scan = max(r.end, r.pos+2)
			// Only the unfinished NAL unit is buffered, so if it alone
			// exceeds the limit (allowing for the zeros of a start code
			// that has not fully arrived) no access unit can hold it.
			if r.end-r.pos-3 > r.maxAU { // written so that maxAU near MaxInt cannot overflow
				return 0, 0, false, fmt.Errorf("%w: NAL unit of more than %d bytes", ErrAUTooLarge, r.maxAU)
			}
			if err := r.fill(); err != nil {
				return 0, 0, false, err
			}
			continue
		}
		stop = r.pos + len(trimZeros(r.buf[r.pos:stop]))
		if stop == r.pos {
			// Empty NAL unit: skip it, or stop at the end of the stream.
			if next == r.end && r.eof {
				r.pos = next
				return 0, 0, false, nil
			}
			r.pos, r.scan = next, next
			continue
		}
		r.peeked = true
		r.peekStart, r.peekEnd, r.peekNxt = r.pos, stop, next
		return r.peekStart, r.peekEnd, true, nil
	}
}

// consume moves past the peeked NAL unit.
func (r *AUReader) consume() {
	r.pos, r.scan = r.peekNxt, r.peekNxt
	r.peeked = false
}

// fill reads more input, first sliding the unconsumed bytes to the front
// and growing the buffer only when it is full of a single unfinished NAL
// unit. Reads go straight into the reused buffer, so steady state does not
// allocate.
func (r *AUReader) fill() error {
	if r.buf == nil {
		size := initialReadBuf
		if r.maxAU < size-16 {
			size = r.maxAU + 16
		}
		r.buf = make([]byte, size)
	}
	if r.pos > 0 && r.end == len(r.buf) || r.pos > len(r.buf)/2 {
		// Nothing before pos is needed any more: the start code of the
		// current NAL unit has been consumed. No peek is outstanding here,
		// because peek only reads when it has not found one.
		n := copy(r.buf, r.buf[r.pos:r.end])
		r.scan -= r.pos
		r.end = n
		r.pos = 0
	}
	if r.end == len(r.buf) {
		grown := make([]byte, 2*len(r.buf))
		copy(grown, r.buf[:r.end])
		r.buf = grown
	}
	for range maxEmptyReads {
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if err == io.EOF {
			r.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}
