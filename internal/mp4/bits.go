package mp4

import "errors"

// errShort is the bit reader's sticky error, wrapped by the parsers into ErrParameterSets.
var errShort = errors.New("truncated")

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
