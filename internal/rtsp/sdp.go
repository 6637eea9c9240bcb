package rtsp

import (
	"fmt"
	"strconv"
	"strings"
)

// What SDP (RFC 8866) a camera sends, read only as far as playing it needs: the media, their
// formats (rtpmap, fmtp) and control URLs. Bounded: the body is at most maxBodyBytes already.
const (
	maxMedia         = 16
	maxFormats       = 32
	maxFmtpParams    = 64
	maxFmtpValueSize = 8 << 10
)

type sdpSession struct {
	control string
	medias  []sdpMedia
}

type sdpMedia struct {
	kind    string // "video", "audio", "application", …
	proto   string // "RTP/AVP"
	formats []sdpFormat
	control string
}

type sdpFormat struct {
	pt       uint8
	encoding string // as in a=rtpmap, upper-cased ("H264", "MPEG4-GENERIC"); static ones filled in
	clock    int
	channels int
	fmtp     map[string]string // names lower-case
}

// staticFormats are the RTP/AVP static payload types (RFC 3551 table 4 and 5) that cameras
// send without a=rtpmap.
var staticFormats = map[uint8]sdpFormat{
	0: {encoding: "PCMU", clock: 8000, channels: 1}, 3: {encoding: "GSM", clock: 8000, channels: 1},
	4: {encoding: "G723", clock: 8000, channels: 1}, 8: {encoding: "PCMA", clock: 8000, channels: 1},
	9: {encoding: "G722", clock: 8000, channels: 1}, 14: {encoding: "MPA", clock: 90000},
	26: {encoding: "JPEG", clock: 90000}, 32: {encoding: "MPV", clock: 90000}, 34: {encoding: "H263", clock: 90000},
}

// parseSDP reads an SDP description.
func parseSDP(b []byte) (*sdpSession, error) {
	s := &sdpSession{}
	var cur *sdpMedia
	seenV := false
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: sdp: bad line %q", ErrProtocol, clip(line))
		}
		typ, val := line[0], line[2:]
		switch typ {
		case 'v':
			seenV = true
		case 'm':
			if len(s.medias) == maxMedia {
				return nil, fmt.Errorf("%w: sdp: more than %d media", ErrTooLarge, maxMedia)
			}
			m, err := parseMediaLine(val)
			if err != nil {
				return nil, err
			}
			s.medias = append(s.medias, m)
			cur = &s.medias[len(s.medias)-1]
		case 'a':
			name, value, _ := strings.Cut(val, ":")
			if cur == nil {
				if strings.EqualFold(name, "control") {
					s.control = strings.TrimSpace(value)
				}
				continue
			}
			if err := cur.attribute(strings.ToLower(name), value); err != nil {
				return nil, err
			}
		}
	}
	if !seenV {
		return nil, fmt.Errorf("%w: sdp: no v= line (not an SDP description)", ErrProtocol)
	}
	return s, nil
}

// parseMediaLine reads "video 0 RTP/AVP 96 97".
func parseMediaLine(v string) (sdpMedia, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return sdpMedia{}, fmt.Errorf("%w: sdp: bad m= line %q", ErrProtocol, clip(v))
	}
	m := sdpMedia{kind: strings.ToLower(f[0]), proto: f[2]}
	for _, pt := range f[3:] {
		if len(m.formats) == maxFormats {
			break
		}
		n, err := strconv.ParseUint(pt, 10, 8)
		if err != nil || n > 127 {
			continue // not RTP (application/ONVIF metadata may say "text"): no format
		}
		format := staticFormats[uint8(n)]
		format.pt = uint8(n)
		m.formats = append(m.formats, format)
	}
	return m, nil
}

func (m *sdpMedia) format(pt string) *sdpFormat {
	n, err := strconv.ParseUint(strings.TrimSpace(pt), 10, 8)
	if err != nil {
		return nil
	}
	for i := range m.formats {
		if m.formats[i].pt == uint8(n) {
			return &m.formats[i]
		}
	}
	return nil
}

func (m *sdpMedia) attribute(name, value string) error {
	switch name {
	case "control":
		m.control = strings.TrimSpace(value)
	case "rtpmap":
		// 96 H264/90000 or 97 MPEG4-GENERIC/48000/2
		pt, enc, ok := strings.Cut(strings.TrimSpace(value), " ")
		f := m.format(pt)
		if !ok || f == nil {
			return nil // a format the m= line does not list: ignore, as receivers do
		}
		parts := strings.Split(strings.TrimSpace(enc), "/")
		f.encoding = strings.ToUpper(parts[0])
		f.clock, f.channels = 0, 0
		if len(parts) > 1 {
			n, err := strconv.Atoi(parts[1])
			if err != nil || n <= 0 || n > 1<<24 {
				return fmt.Errorf("%w: sdp: bad clock rate in rtpmap %q", ErrProtocol, clip(value))
			}
			f.clock = n
		}
		if len(parts) > 2 {
			n, err := strconv.Atoi(parts[2])
			if err != nil || n <= 0 || n > 64 {
				return fmt.Errorf("%w: sdp: bad channels in rtpmap %q", ErrProtocol, clip(value))
			}
			f.channels = n
		}
	case "fmtp":
		pt, params, _ := strings.Cut(strings.TrimSpace(value), " ")
		f := m.format(pt)
		if f == nil {
			return nil
		}
		if len(params) > maxFmtpValueSize {
			return fmt.Errorf("%w: sdp: fmtp of %d bytes", ErrTooLarge, len(params))
		}
		f.fmtp = parseFmtp(params)
	}
	return nil
}

// parseFmtp splits "a=1; b=x=y" into {"a": "1", "b": "x=y"}.
func parseFmtp(s string) map[string]string {
	out := map[string]string{}
	for p := range strings.SplitSeq(s, ";") {
		if len(out) == maxFmtpParams {
			break
		}
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}
