package files

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// mimeType derives the MediaSource type of a file from its init segment (ftyp+moov): one
// codec per track, from its sample entry (avcC's profile and level for H.264, hvcC's for
// H.265). A track MediaSource cannot take (G.711) makes it an error: the page says so.
func mimeType(init []byte) (string, error) {
	moov, ok := findBox(init, "moov")
	if !ok {
		return "", fmt.Errorf("%w: no moov", ErrMalformed)
	}
	var codecs []string
	for rest := moov; ; {
		trak, after, ok := nextBox(rest, "trak")
		if !ok {
			break
		}
		rest = after
		stsd, ok := findPath(trak, "mdia", "minf", "stbl", "stsd")
		if !ok || len(stsd) < 8+8 {
			return "", fmt.Errorf("%w: a track without stsd", ErrMalformed)
		}
		entry := stsd[8:] // version/flags, entry_count
		size := int(binary.BigEndian.Uint32(entry))
		if size < 8 || size > len(entry) {
			return "", fmt.Errorf("%w: stsd entry", ErrMalformed)
		}
		typ, body := string(entry[4:8]), entry[8:size]
		c, err := codecOf(typ, body)
		if err != nil {
			return "", err
		}
		codecs = append(codecs, c)
	}
	if len(codecs) == 0 {
		return "", fmt.Errorf("%w: no track", ErrMalformed)
	}
	return `video/mp4; codecs="` + strings.Join(codecs, ",") + `"`, nil
}

// visualEntry and audioEntry are the bytes of a sample entry before its child boxes
// (ISO 14496-12 VisualSampleEntry, AudioSampleEntry), after the box header.
const (
	visualEntry = 78
	audioEntry  = 28
)

func codecOf(typ string, body []byte) (string, error) {
	switch typ {
	case "avc1", "avc3":
		if len(body) < visualEntry {
			break
		}
		c, ok := findBox(body[visualEntry:], "avcC")
		if !ok || len(c) < 4 {
			break
		}
		return fmt.Sprintf("%s.%02x%02x%02x", typ, c[1], c[2], c[3]), nil
	case "hvc1", "hev1":
		if len(body) < visualEntry {
			break
		}
		c, ok := findBox(body[visualEntry:], "hvcC")
		if !ok || len(c) < 13 {
			break
		}
		return hevcCodec(typ, c), nil
	case "Opus":
		return "opus", nil
	case "mp4a":
		return "mp4a.40.2", nil // the recorder's AAC is AAC-LC
	case "alaw", "ulaw":
		return "", fmt.Errorf("%w: G.711 audio (%s) does not play in a browser's MediaSource", errUnplayable, typ)
	default:
		return "", fmt.Errorf("%w: a %q track", errUnplayable, typ)
	}
	return "", fmt.Errorf("%w: %s sample entry", ErrMalformed, typ)
}

// hevcCodec is RFC 6381/ISO 14496-15 E.3's hvc1.P.C.TL.B for an hvcC.
func hevcCodec(typ string, c []byte) string {
	space := c[1] >> 6
	tier := c[1] >> 5 & 1
	profile := c[1] & 0x1f
	compat := binary.BigEndian.Uint32(c[2:6])
	var rev uint32 // the compatibility flags in reverse bit order
	for i := 0; i < 32; i++ {
		rev |= (compat >> i & 1) << (31 - i)
	}
	level := c[12]
	var b strings.Builder
	b.WriteString(typ + ".")
	if space > 0 {
		b.WriteByte("ABC"[space-1])
	}
	fmt.Fprintf(&b, "%d.%x.%c%d", profile, rev, "LH"[tier], level)
	cons := c[6:12]
	n := len(cons)
	for n > 0 && cons[n-1] == 0 {
		n--
	}
	for _, x := range cons[:n] {
		fmt.Fprintf(&b, ".%x", x)
	}
	return b.String()
}

// nextBox finds the next box of type typ among the boxes in b: its payload and what follows.
func nextBox(b []byte, typ string) (payload, rest []byte, ok bool) {
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		hdr := uint64(8)
		if size == 1 {
			if len(b) < 16 {
				return nil, nil, false
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size == 0 {
			size = uint64(len(b))
		}
		if size < hdr || size > uint64(len(b)) {
			return nil, nil, false
		}
		if string(b[4:8]) == typ {
			return b[hdr:size], b[size:], true
		}
		b = b[size:]
	}
	return nil, nil, false
}

func findBox(b []byte, typ string) ([]byte, bool) {
	p, _, ok := nextBox(b, typ)
	return p, ok
}

func findPath(b []byte, types ...string) ([]byte, bool) {
	for _, t := range types {
		var ok bool
		if b, ok = findBox(b, t); !ok {
			return nil, false
		}
	}
	return b, true
}
