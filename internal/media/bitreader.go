package media

// BitReader reads big-endian bit fields from plain bytes: an AAC AudioSpecificConfig, the AU
// headers of RFC 3640. (Parameter sets, which carry emulation prevention bytes, are read by
// rbspReader.) Past the end every read fails and the position stays at the end.
type BitReader struct {
	b   []byte
	pos int // in bits
}

// NewBitReader reads b from its first bit.
func NewBitReader(b []byte) *BitReader { return &BitReader{b: b} }

// Pos is the number of bits read or skipped.
func (r *BitReader) Pos() int { return r.pos }

// Left is the number of bits not read yet.
func (r *BitReader) Left() int { return len(r.b)*8 - r.pos }

// Read returns the next n (≤ 32) bits; ok is false past the end.
func (r *BitReader) Read(n int) (v uint32, ok bool) {
	if n < 0 || n > 32 || n > r.Left() {
		r.pos = len(r.b) * 8
		return 0, false
	}
	for range n {
		v = v<<1 | uint32(r.b[r.pos>>3]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v, true
}

// Skip passes over n bits; false past the end.
func (r *BitReader) Skip(n int) bool {
	if n < 0 || n > r.Left() {
		r.pos = len(r.b) * 8
		return false
	}
	r.pos += n
	return true
}
