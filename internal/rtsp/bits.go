package rtsp

// bitReader reads big-endian bit fields (AU headers, AudioSpecificConfig, H.265 SPS).
type bitReader struct {
	b   []byte
	pos int // in bits
}

func (r *bitReader) left() int { return len(r.b)*8 - r.pos }

// read returns the next n (≤ 32) bits; ok is false past the end.
func (r *bitReader) read(n int) (v uint32, ok bool) {
	if n > 32 || n > r.left() {
		r.pos = len(r.b) * 8
		return 0, false
	}
	for range n {
		v = v<<1 | uint32(r.b[r.pos>>3]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v, true
}

func (r *bitReader) skip(n int) bool {
	if n < 0 || n > r.left() {
		r.pos = len(r.b) * 8
		return false
	}
	r.pos += n
	return true
}

// ue reads an unsigned Exp-Golomb code (H.265 7.2).
func (r *bitReader) ue() (uint32, bool) {
	zeros := 0
	for {
		b, ok := r.read(1)
		if !ok || zeros > 31 {
			return 0, false
		}
		if b == 1 {
			break
		}
		zeros++
	}
	v, ok := r.read(zeros)
	return (1<<zeros - 1) + v, ok
}
