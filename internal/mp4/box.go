package mp4

import (
	"encoding/binary"
	"math"
)

// boxBuf builds boxes by appending to a byte slice that the Writer reuses. Container sizes
// are patched inside the buffer when a box is closed, before anything reaches the
// io.Writer: the file never sees a size that changes later.
type boxBuf struct{ b []byte }

func (w *boxBuf) u8(v uint8)               { w.b = append(w.b, v) }
func (w *boxBuf) u16(v uint16)             { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *boxBuf) u32(v uint32)             { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *boxBuf) u64(v uint64)             { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *boxBuf) bytes(v []byte)           { w.b = append(w.b, v...) }
func (w *boxBuf) str(v string)             { w.b = append(w.b, v...) }
func (w *boxBuf) zeros(n int)              { w.b = append(w.b, make([]byte, n)...) }
func (w *boxBuf) fixed16(v int)            { w.u32(uint32(v) << 16) } // 16.16 fixed point
func (w *boxBuf) patch32(at int, v uint32) { binary.BigEndian.PutUint32(w.b[at:], v) }

// open starts a box of type typ (four characters) and returns its offset for close.
func (w *boxBuf) open(typ string) int {
	at := len(w.b)
	w.u32(0)
	w.str(typ)
	return at
}

// openFull starts a full box (version and flags follow the type).
func (w *boxBuf) openFull(typ string, version uint8, flags uint32) int {
	at := w.open(typ)
	w.u32(uint32(version)<<24 | flags&0xffffff)
	return at
}

// close writes the size of the box opened at at. Boxes built in a boxBuf (moov, moof) are
// bounded far below 4 GiB by the Writer's limits, so a 32-bit size always fits.
func (w *boxBuf) close(at int) {
	w.patch32(at, uint32(len(w.b)-at))
}

// appendBoxHeader appends the header of a box of type typ whose payload is payload bytes
// long, using the 64-bit largesize form only when the 32-bit size cannot hold it. It is how
// mdat headers are written: the payload size is known before the header goes out.
func appendBoxHeader(b []byte, typ string, payload uint64) []byte {
	if payload+8 <= math.MaxUint32 {
		b = binary.BigEndian.AppendUint32(b, uint32(payload+8))
		return append(b, typ...)
	}
	b = binary.BigEndian.AppendUint32(b, 1)
	b = append(b, typ...)
	return binary.BigEndian.AppendUint64(b, payload+16)
}

// boxHeaderSize is the size of the header appendBoxHeader writes for payload.
func boxHeaderSize(payload uint64) int {
	if payload+8 <= math.MaxUint32 {
		return 8
	}
	return 16
}
