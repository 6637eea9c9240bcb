package media

import "errors"

// errShort is the reader's sticky error; callers turn it into a wrapped
// ErrBadSPS with context.
var errShort = errors.New("truncated")

// errExpGolomb reports an Exp-Golomb code longer than 32 bits, which no
// legitimate syntax element in an SPS needs.
var errExpGolomb = errors.New("Exp-Golomb code too long")

// rbspReader reads bits from a NAL unit payload, removing emulation
// prevention bytes (00 00 03) on the fly. Doing it on the fly instead of
// unescaping into a copy keeps parsing allocation-free and means the reader
// can never index past the input. Errors are sticky so that a parser can
// read a run of fields and check err once.
type rbspReader struct {
	b     []byte
	pos   int  // next byte of b to load
	zeros int  // consecutive zero bytes just loaded, for EPB detection
	cur   byte // bits not yet consumed, left-aligned
	n     uint // number of valid bits in cur
	err   error
}

func (r *rbspReader) loadByte() bool {
	if r.pos < len(r.b) && r.zeros >= 2 && r.b[r.pos] == 3 {
		// emulation_prevention_three_byte: not part of the RBSP.
		r.pos++
		r.zeros = 0
	}
	if r.pos >= len(r.b) {
		r.err = errShort
		return false
	}
	c := r.b[r.pos]
	r.pos++
	if c == 0 {
		r.zeros++
	} else {
		r.zeros = 0
	}
	r.cur, r.n = c, 8
	return true
}

func (r *rbspReader) bit() uint32 {
	if r.err != nil {
		return 0
	}
	if r.n == 0 && !r.loadByte() {
		return 0
	}
	v := uint32(r.cur >> 7)
	r.cur <<= 1
	r.n--
	return v
}

// bits reads n ≤ 32 bits, most significant first.
func (r *rbspReader) bits(n int) uint32 {
	var v uint32
	for range n {
		v = v<<1 | r.bit()
	}
	return v
}

func (r *rbspReader) flag() bool { return r.bit() == 1 }

// ue reads an unsigned Exp-Golomb code (ue(v), 9.1).
func (r *rbspReader) ue() uint32 {
	lz := 0
	for r.bit() == 0 {
		if r.err != nil {
			return 0
		}
		lz++
		if lz > 31 {
			r.err = errExpGolomb
			return 0
		}
	}
	if lz == 0 {
		return 0
	}
	// (1<<lz)-1 + info fits in uint32 for lz ≤ 31.
	return (1<<lz - 1) + r.bits(lz)
}

// se reads a signed Exp-Golomb code (se(v), 9.1.1).
func (r *rbspReader) se() int32 {
	k := r.ue()
	if k&1 == 1 {
		return int32((k + 1) / 2)
	}
	return -int32(k / 2)
}

// UnescapeRBSP returns a NAL unit's payload without its emulation prevention bytes
// (00 00 03 → 00 00), as a copy: for parsers that read a parameter set once (H.265's, in
// internal/mp4 and internal/rtsp) and want plain bytes.
func UnescapeRBSP(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}
