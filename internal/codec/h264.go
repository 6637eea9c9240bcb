package codec

// H.264 in RTP (RFC 6184): a packetizer that runs once per access unit for all viewers (single
// NAL unit, STAP-A for parameter sets, FU-A for large NAL units), a depacketizer that rebuilds
// Annex-B access units for receivers, and the SDP description of the stream actually sent.

import (
	"errors"

	"github.com/p2pcast/p2pcast/internal/media"
)

const maxAggregated = 8

// PacketizeH264 splits an Annex-B access unit into RTP payloads of at most mtu bytes, replacing
// what out held. Parameter sets travel together in one STAP-A; access unit delimiters and filler
// data are dropped (RFC 6184 5.1 allows it, and receivers do not need them).
func PacketizeH264(au []byte, mtu int, out *Payloads) {
	out.Reset()
	var agg [maxAggregated][]byte
	n, aggSize := 0, 1
	flush := func() {
		switch n {
		case 0:
			return
		case 1:
			out.Buf = append(out.Buf, agg[0]...)
		default:
			var f, nri byte
			for _, nal := range agg[:n] {
				f |= nal[0] & 0x80 // F is set if any aggregated unit has it
				nri = max(nri, nal[0]&0x60)
			}
			hdr := f | nri | 24
			out.Buf = append(out.Buf, hdr)
			for _, nal := range agg[:n] {
				out.Buf = append(out.Buf, byte(len(nal)>>8), byte(len(nal)))
				out.Buf = append(out.Buf, nal...)
			}
		}
		out.end()
		n, aggSize = 0, 1
	}
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if len(nal) == 0 {
			continue
		}
		switch t := media.TypeOf(nal); {
		case t == media.NALAUD || t == media.NALFiller:
			continue
		case (t == media.NALSPS || t == media.NALPPS) && 2+len(nal) < mtu:
			if n == maxAggregated || aggSize+2+len(nal) > mtu {
				flush()
			}
			agg[n] = nal
			n++
			aggSize += 2 + len(nal)
			continue
		}
		flush()
		if len(nal) <= mtu {
			out.Buf = append(out.Buf, nal...)
			out.end()
			continue
		}
		indicator := nal[0]&0xe0 | 28
		kind := nal[0] & 0x1f
		body := nal[1:]
		for first := true; len(body) > 0; first = false {
			chunk := body[:min(len(body), mtu-2)]
			body = body[len(chunk):]
			hdr := kind
			if first {
				hdr |= 0x80
			}
			if len(body) == 0 {
				hdr |= 0x40
			}
			out.Buf = append(out.Buf, indicator, hdr)
			out.Buf = append(out.Buf, chunk...)
			out.end()
		}
	}
	flush()
}

// Errors a Depacketizer reports for a payload it had to drop.
var (
	ErrShortPayload = errors.New("codec: h264: payload too short")
	ErrBadSTAPA     = errors.New("codec: h264: malformed STAP-A")
	ErrFUOrder      = errors.New("codec: h264: FU-A fragment without its start")
	ErrUnsupported  = errors.New("codec: h264: unsupported packetization type")
	ErrTooLarge     = errors.New("codec: h264: access unit larger than the limit")
)

var startCode = []byte{0, 0, 0, 1}

// H264Depacketizer rebuilds Annex-B access units from RTP payloads in sequence order.
type H264Depacketizer struct {
	// MaxAU bounds an access unit (default 8 MiB).
	MaxAU   int
	au      []byte
	inFU    bool
	broken  bool // part of the current unit was lost
	pending []byte
}

// Lost tells the depacketizer that packets were lost: the unit being built is dropped.
func (d *H264Depacketizer) Lost() { d.broken, d.inFU = true, false }

// Push adds one payload. When marker is set (the last packet of an access unit) it returns the
// complete unit in Annex-B, valid until the next Push, or nil if part of it was lost.
func (d *H264Depacketizer) Push(payload []byte, marker bool) ([]byte, error) {
	if d.MaxAU == 0 {
		d.MaxAU = 8 << 20
	}
	if d.pending != nil {
		d.au, d.pending = d.au[:0], nil
	}
	err := d.push(payload)
	if err != nil {
		d.Lost()
	}
	if len(d.au) > d.MaxAU {
		d.Lost()
		d.au = d.au[:0]
		err = ErrTooLarge
	}
	if !marker {
		return nil, err
	}
	au, broken := d.au, d.broken
	d.pending, d.broken, d.inFU = au, false, false
	if broken || len(au) == 0 {
		return nil, err
	}
	return au, err
}

func (d *H264Depacketizer) push(p []byte) error {
	if len(p) < 1 {
		return ErrShortPayload
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		d.inFU = false
		d.au = append(append(d.au, startCode...), p...)
	case t == 24:
		d.inFU = false
		for b := p[1:]; len(b) > 0; {
			if len(b) < 2 {
				return ErrBadSTAPA
			}
			size := int(b[0])<<8 | int(b[1])
			if size == 0 || len(b) < 2+size {
				return ErrBadSTAPA
			}
			d.au = append(append(d.au, startCode...), b[2:2+size]...)
			b = b[2+size:]
		}
	case t == 28:
		if len(p) < 3 {
			return ErrShortPayload
		}
		start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
		if start {
			d.au = append(append(d.au, startCode...), p[0]&0xe0|p[1]&0x1f)
			d.inFU = true
		} else if !d.inFU {
			return ErrFUOrder
		}
		d.au = append(d.au, p[2:]...)
		if end {
			d.inFU = false
		}
	default:
		return ErrUnsupported
	}
	return nil
}

// DefaultH264ProfileLevelID is offered before the stream's first SPS says otherwise:
// constrained baseline, level 3.1, what every browser decodes.
const DefaultH264ProfileLevelID = "42e01f"

// h264Fmtp describes the stream as sent. level-asymmetry-allowed lets the viewer's decoder
// level differ from the stream's.
func h264Fmtp(p Params) string {
	return "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + H264SDPProfileLevelID(p.ProfileLevelID)
}

// H.264 profiles as SDP negotiates them (RFC 6184 8.1, table 5): a profile_idc and the
// constraint flags that matter.
type h264Profile uint8

const (
	profileUnknown h264Profile = iota
	profileConstrainedBaseline
	profileBaseline
	profileMain
	profileConstrainedHigh
	profileHigh
)

// parseH264Profile reads the profile of a profile-level-id (6 hex digits).
func parseH264Profile(plid string) (profile h264Profile, level uint8, ok bool) {
	var b [3]byte
	if len(plid) != 6 {
		return profileUnknown, 0, false
	}
	for i := range b {
		hi, ok1 := unhex(plid[2*i])
		lo, ok2 := unhex(plid[2*i+1])
		if !ok1 || !ok2 {
			return profileUnknown, 0, false
		}
		b[i] = hi<<4 | lo
	}
	idc, flags := b[0], b[1]
	// The level part (level 1b's constraint_set3 included) is not negotiated here:
	// level-asymmetry-allowed.
	set0, set1 := flags&0x80 != 0, flags&0x40 != 0
	set4, set5 := flags&0x08 != 0, flags&0x04 != 0
	switch {
	case idc == 0x42 && set1, idc == 0x4d && set0, idc == 0x58 && set0 && set1:
		profile = profileConstrainedBaseline
	case idc == 0x42:
		profile = profileBaseline
	case idc == 0x4d:
		profile = profileMain
	case idc == 0x64 && set4 && set5:
		profile = profileConstrainedHigh
	case idc == 0x64:
		profile = profileHigh
	default:
		return profileUnknown, b[2], false
	}
	return profile, b[2], true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// sdpProfilePrefix is each profile as browsers spell it in profile-level-id.
var sdpProfilePrefix = map[h264Profile]string{
	profileConstrainedBaseline: "42e0", profileBaseline: "4200", profileMain: "4d00",
	profileConstrainedHigh: "640c", profileHigh: "6400",
}

// H264SDPProfileLevelID is the profile-level-id to put in SDP for a stream whose SPS says
// raw: the profile spelled the way browsers spell it (a baseline stream from x264 says
// "42c0…", browsers offer "42e0…"; Pion and some receivers compare the bytes), with the
// stream's own level. Unknown or empty gives DefaultH264ProfileLevelID.
func H264SDPProfileLevelID(raw string) string {
	profile, level, ok := parseH264Profile(raw)
	if !ok {
		return DefaultH264ProfileLevelID
	}
	prefix := sdpProfilePrefix[profile]
	const hexDigits = "0123456789abcdef"
	return prefix + string([]byte{hexDigits[level>>4], hexDigits[level&0xf]})
}

// h264Accepts: the receiver takes packetization mode 1 and a profile that decodes ours (every
// decoder of a higher profile decodes constrained baseline; High decodes Main).
func h264Accepts(fmtp string, p Params) bool {
	if fmtpParam(fmtp, "packetization-mode") != "1" {
		return false
	}
	theirs, _, ok := parseH264Profile(fmtpParam(fmtp, "profile-level-id"))
	if !ok {
		return false
	}
	ours, _, ok := parseH264Profile(H264SDPProfileLevelID(p.ProfileLevelID))
	if !ok {
		return false
	}
	switch ours {
	case profileConstrainedBaseline:
		return true
	case profileBaseline:
		return theirs == profileBaseline
	case profileMain:
		return theirs == profileMain || theirs == profileHigh
	case profileConstrainedHigh:
		return theirs == profileConstrainedHigh || theirs == profileHigh
	case profileHigh:
		return theirs == profileHigh
	}
	return false
}
