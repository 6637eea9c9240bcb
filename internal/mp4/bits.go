package mp4

import "errors"

// errShort is the bit reader's sticky error, wrapped by the parsers into ErrParameterSets.
var errShort = errors.New("truncated")

// rbsp returns a NAL unit's payload without its emulation prevention bytes (00 00 03 → 00 00).
// Parameter sets are parsed once per file, so a copy is fine here.
func rbsp(nal []byte) []byte {
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

// bitReader reads bits from an RBSP, most significant first; errors are sticky so that a
// parser can read a run of fields and check err once.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

func (r *bitReader) bit() uint32 {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b)*8 {
		r.err = errShort
		return 0
	}
	v := uint32(r.b[r.pos/8]>>(7-r.pos%8)) & 1
	r.pos++
	return v
}

// bits reads n ≤ 32 bits.
func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for range n {
		v = v<<1 | r.bit()
	}
	return v
}

func (r *bitReader) skip(n int) {
	if r.err == nil && r.pos+n > len(r.b)*8 {
		r.err = errShort
	}
	r.pos += n
}

func (r *bitReader) flag() bool { return r.bit() == 1 }

// ue reads an unsigned Exp-Golomb code (H.264/H.265 9.1).
func (r *bitReader) ue() uint32 {
	lz := 0
	for r.bit() == 0 {
		if r.err != nil {
			return 0
		}
		if lz++; lz > 31 {
			r.err = errShort
			return 0
		}
	}
	if lz == 0 {
		return 0
	}
	return (1<<lz - 1) + r.bits(lz)
}
