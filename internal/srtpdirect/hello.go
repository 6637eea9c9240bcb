package srtpdirect

import "encoding/binary"

// DTLS 1.2 wire constants (RFC 6347 §4.1, §4.2.2; RFC 5246 §7.4.1; RFC 5764 §4.1.1).
const (
	contentHandshake   = 22
	recordHeaderLen    = 13
	handshakeHeaderLen = 12
	typeClientHello    = 1
	typeServerHello    = 2
	randomLen          = 32
	extensionUseSRTP   = 14
)

// hello is what a DTLS ClientHello or ServerHello says that the keys depend on: its random,
// and for a ServerHello the cipher suite (its PRF hash) and the SRTP protection profile.
type hello struct {
	server  bool
	random  [randomLen]byte
	suite   uint16
	profile uint16 // 0: the ServerHello named none
}

// findHello returns the first ClientHello or ServerHello in a datagram of DTLS records.
// Hellos travel in epoch 0, in clear. A fragmented ServerHello is not read (WebRTC's are a
// hundred bytes or so); nor is anything it cannot parse whole: the caller then simply has no
// keys of its own for that handshake.
func findHello(b []byte) (hello, bool) {
	for len(b) >= recordHeaderLen {
		n := int(binary.BigEndian.Uint16(b[11:13]))
		if len(b) < recordHeaderLen+n {
			return hello{}, false
		}
		body := b[recordHeaderLen : recordHeaderLen+n]
		epoch := binary.BigEndian.Uint16(b[3:5])
		if b[0] == contentHandshake && epoch == 0 {
			if h, ok := parseHandshake(body); ok {
				return h, true
			}
		}
		b = b[recordHeaderLen+n:]
	}
	return hello{}, false
}

// parseHandshake reads a ClientHello's random, or a ServerHello's random, cipher suite and
// use_srtp profile, from one record's handshake message.
func parseHandshake(b []byte) (hello, bool) {
	if len(b) < handshakeHeaderLen {
		return hello{}, false
	}
	typ := b[0]
	length := uint24(b[1:4])
	offset, fragment := uint24(b[6:9]), uint24(b[9:12])
	body := b[handshakeHeaderLen:]
	if offset != 0 || fragment > len(body) || (typ != typeClientHello && typ != typeServerHello) {
		return hello{}, false
	}
	body = body[:fragment]
	var h hello
	if len(body) < 2+randomLen {
		return hello{}, false
	}
	copy(h.random[:], body[2:2+randomLen])
	if typ == typeClientHello {
		return h, true
	}
	// A ServerHello is read whole: the extensions are at its end.
	if fragment != length {
		return hello{}, false
	}
	h.server = true
	rest := body[2+randomLen:]
	if len(rest) < 1 || len(rest) < 1+int(rest[0])+3 {
		return hello{}, false
	}
	rest = rest[1+int(rest[0]):]
	h.suite = binary.BigEndian.Uint16(rest[0:2])
	rest = rest[3:] // the suite and the compression method
	if len(rest) < 2 {
		return h, true // no extensions: no use_srtp
	}
	ext := int(binary.BigEndian.Uint16(rest[0:2]))
	if len(rest) < 2+ext {
		return hello{}, false
	}
	rest = rest[2 : 2+ext]
	for len(rest) >= 4 {
		typ, n := binary.BigEndian.Uint16(rest[0:2]), int(binary.BigEndian.Uint16(rest[2:4]))
		if len(rest) < 4+n {
			return hello{}, false
		}
		data := rest[4 : 4+n]
		if typ == extensionUseSRTP {
			// A list of profiles (the server names exactly one), then the MKI.
			if len(data) < 4 || binary.BigEndian.Uint16(data[0:2]) != 2 {
				return hello{}, false
			}
			h.profile = binary.BigEndian.Uint16(data[2:4])
		}
		rest = rest[4+n:]
	}
	return h, true
}

func uint24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }
