package rtsp

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/p2pcast/p2pcast/internal/media"
)

// AAC in RTP (RFC 3640, mode AAC-hbr or AAC-lbr): an AU header section, then the access units
// back to back; one AU may also be fragmented over several packets.

var (
	errAACHeader = errors.New("aac: malformed AU header section")
	errAACFrag   = errors.New("aac: fragment without its start")
)

// auHeaderFormat is the AU header layout the fmtp declares (RFC 3640 3.2.1).
type auHeaderFormat struct {
	sizeLength, indexLength, indexDeltaLength int
	ctsDeltaLength, dtsDeltaLength            int
	randomAccess                              bool
	streamStateLength                         int
	auxSizeLength                             int
}

func newAUHeaderFormat(p map[string]string) (auHeaderFormat, error) {
	var f auHeaderFormat
	num := func(name string, maxBits int) (int, error) {
		v, ok := p[name]
		if !ok || v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxBits {
			return 0, fmt.Errorf("MPEG4-GENERIC %s=%q is out of range", name, v)
		}
		return n, nil
	}
	var err error
	for _, fld := range []struct {
		name string
		max  int
		dst  *int
	}{
		{"sizelength", 16, &f.sizeLength}, {"indexlength", 16, &f.indexLength},
		{"indexdeltalength", 16, &f.indexDeltaLength}, {"ctsdeltalength", 32, &f.ctsDeltaLength},
		{"dtsdeltalength", 32, &f.dtsDeltaLength}, {"streamstateindication", 32, &f.streamStateLength},
		{"auxiliarydatasizelength", 32, &f.auxSizeLength},
	} {
		if *fld.dst, err = num(fld.name, fld.max); err != nil {
			return f, err
		}
	}
	f.randomAccess = p["randomaccessindication"] == "1"
	if f.sizeLength == 0 {
		return f, fmt.Errorf("MPEG4-GENERIC without sizelength is not supported")
	}
	return f, nil
}

// aacDepacketizer yields raw AAC frames (no ADTS header).
type aacDepacketizer struct {
	format     auHeaderFormat
	frameTicks uint32
	frag       []byte // a fragmented AU being rebuilt
	fragSize   int
	fragTS     uint32
	broken     bool
	sizes      [maxAUsPerPacket]int
	index      [maxAUsPerPacket]uint32
}

const maxAUsPerPacket = 64

func (d *aacDepacketizer) lost() {
	if len(d.frag) > 0 || d.fragSize > 0 {
		d.broken = true
	}
}

func (d *aacDepacketizer) flush(ts uint32, out []rawUnit) []rawUnit {
	if d.fragSize > 0 { // a fragmented AU that never got its last fragment
		out = append(out, rawUnit{ts: d.fragTS, dropped: true})
	}
	d.frag, d.fragSize, d.broken = d.frag[:0], 0, false
	return out
}

func (d *aacDepacketizer) push(p []byte, ts uint32, marker bool, out []rawUnit) ([]rawUnit, error) {
	n, data, err := d.headers(p)
	if err != nil {
		out = d.flush(ts, out)
		return out, err
	}
	if d.fragSize > 0 {
		// Continuing a fragmented AU: one header giving the whole AU's size.
		if n != 1 || d.sizes[0] != d.fragSize || ts != d.fragTS {
			out = d.flush(ts, out)
		} else {
			if len(d.frag)+len(data) > d.fragSize {
				out = d.flush(ts, out)
				return out, errAACHeader
			}
			d.frag = append(d.frag, data...)
			if !marker {
				return out, nil
			}
			if d.broken || len(d.frag) != d.fragSize {
				out = d.flush(ts, out)
				return out, nil
			}
			out = append(out, rawUnit{data: d.frag, ts: ts, key: true})
			d.fragSize = 0 // d.frag is reused at the next first fragment, after this unit was read
			return out, nil
		}
	}
	if n == 1 && d.sizes[0] > len(data) {
		// The first fragment of an AU larger than a packet.
		if marker {
			return append(out, rawUnit{ts: ts, dropped: true}), errAACFrag
		}
		if d.sizes[0] > maxAU {
			return out, fmt.Errorf("%w: AAC frame of %d bytes", ErrTooLarge, d.sizes[0])
		}
		d.frag, d.fragSize, d.fragTS, d.broken = append(d.frag[:0], data...), d.sizes[0], ts, false
		return out, nil
	}
	first := d.index[0]
	for i := range n {
		size := d.sizes[i]
		if size > len(data) {
			return out, errAACHeader
		}
		if size > 0 {
			out = append(out, rawUnit{data: data[:size], ts: ts + (d.index[i]-first)*d.frameTicks, key: true})
		}
		data = data[size:]
	}
	return out, nil
}

// headers reads the AU header section into d.sizes and d.index (AU index relative to the first,
// so interleaved AUs get their own times) and returns the AU count and the AU data.
func (d *aacDepacketizer) headers(p []byte) (int, []byte, error) {
	if len(p) < 2 {
		return 0, nil, errAACHeader
	}
	bitsLen := int(p[0])<<8 | int(p[1])
	headerBytes := (bitsLen + 7) / 8
	if 2+headerBytes > len(p) {
		return 0, nil, errAACHeader
	}
	f := &d.format
	r := media.NewBitReader(p[2 : 2+headerBytes])
	n := 0
	var index uint32
	for r.Pos() < bitsLen {
		if n == maxAUsPerPacket {
			return 0, nil, errAACHeader
		}
		size, ok := r.Read(f.sizeLength)
		var idx uint32
		if n == 0 {
			idx, _ = r.Read(f.indexLength)
			index = idx
		} else {
			idx, _ = r.Read(f.indexDeltaLength)
			index += 1 + idx
		}
		if n > 0 && f.ctsDeltaLength > 0 {
			if flag, _ := r.Read(1); flag == 1 {
				r.Skip(f.ctsDeltaLength)
			}
		}
		if f.dtsDeltaLength > 0 {
			if flag, _ := r.Read(1); flag == 1 {
				r.Skip(f.dtsDeltaLength)
			}
		}
		if f.randomAccess {
			r.Skip(1)
		}
		r.Skip(f.streamStateLength)
		if !ok || r.Pos() > bitsLen {
			return 0, nil, errAACHeader
		}
		d.sizes[n], d.index[n] = int(size), index
		n++
	}
	data := p[2+headerBytes:]
	if f.auxSizeLength > 0 {
		ar := media.NewBitReader(data)
		aux, ok := ar.Read(f.auxSizeLength)
		skip := (f.auxSizeLength + int(aux) + 7) / 8
		if !ok || skip > len(data) {
			return 0, nil, errAACHeader
		}
		data = data[skip:]
	}
	if n == 0 {
		return 0, nil, errAACHeader
	}
	return n, data, nil
}
