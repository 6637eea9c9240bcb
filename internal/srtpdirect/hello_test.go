package srtpdirect

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"testing"
)

// record wraps a handshake message in a DTLS 1.2 record of epoch 0.
func record(typ byte, body []byte) []byte {
	msg := []byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body)), 0, 0, 0, 0, 0, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	msg = append(msg, body...)
	r := []byte{contentHandshake, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(r[11:], uint16(len(msg)))
	return append(r, msg...)
}

func serverHello(random [32]byte, suite, profile uint16) []byte {
	b := append([]byte{0xfe, 0xfd}, random[:]...)
	b = append(b, 0)                                   // no session id
	b = binary.BigEndian.AppendUint16(b, suite)        // cipher suite
	b = append(b, 0)                                   // compression
	ext := []byte{0x00, 0x17, 0, 0}                    // extended_master_secret
	ext = append(ext, 0, extensionUseSRTP, 0, 5, 0, 2) // use_srtp: one profile, no MKI
	ext = binary.BigEndian.AppendUint16(ext, profile)
	ext = append(ext, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ext)))
	return append(b, ext...)
}

func clientHello(random [32]byte) []byte {
	b := append([]byte{0xfe, 0xfd}, random[:]...)
	return append(b, 0, 0, 0, 2, 0xc0, 0x2b, 1, 0, 0, 0)
}

func TestFindHello(t *testing.T) {
	var r [32]byte
	copy(r[:], "the server's random, 32 bytes..")
	// A server's flight: the ServerHello after another record in the same datagram.
	other := []byte{21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0}
	h, ok := findHello(append(other, record(typeServerHello, serverHello(r, 0xc02b, 7))...))
	if !ok || !h.server || h.random != r || h.suite != 0xc02b || h.profile != 7 {
		t.Fatalf("server hello: %+v %v", h, ok)
	}
	h, ok = findHello(record(typeClientHello, clientHello(r)))
	if !ok || h.server || h.random != r {
		t.Fatalf("client hello: %+v %v", h, ok)
	}
	for name, b := range map[string][]byte{
		"truncated record":  record(typeServerHello, serverHello(r, 0xc02b, 7))[:40],
		"epoch 1":           func() []byte { b := record(typeClientHello, clientHello(r)); b[4] = 1; return b }(),
		"certificate":       record(11, make([]byte, 40)),
		"short hello":       record(typeClientHello, make([]byte, 20)),
		"application data":  {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0},
		"srtp list of four": record(typeServerHello, bytes.Replace(serverHello(r, 0xc02b, 7), []byte{0, 2, 0, 7}, []byte{0, 4, 0, 7}, 1)),
	} {
		if h, ok := findHello(b); ok {
			t.Errorf("%s: found %+v", name, h)
		}
	}
}

func TestParseKeyLog(t *testing.T) {
	var r [32]byte
	r[0], r[31] = 1, 2
	master := bytes.Repeat([]byte{0xab}, 48)
	line := fmt.Sprintf("CLIENT_RANDOM %x %x\n", r, master)
	got, m, err := parseKeyLog([]byte(line))
	if err != nil || got != r || !bytes.Equal(m, master) {
		t.Fatalf("%x %x %v", got, m, err)
	}
	for _, bad := range []string{"", "CLIENT_RANDOM", "SERVER_HANDSHAKE_TRAFFIC_SECRET " + hex.EncodeToString(r[:]) + " " + hex.EncodeToString(master),
		"CLIENT_RANDOM zz" + line[16:], "CLIENT_RANDOM " + hex.EncodeToString(r[:]) + " " + hex.EncodeToString(master[:47])} {
		if _, _, err := parseKeyLog([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// Any datagram: no panic, and a hello found is the record's own bytes.
func FuzzFindHello(f *testing.F) {
	var r [32]byte
	f.Add(record(typeServerHello, serverHello(r, 0xc02b, 7)))
	f.Add(record(typeClientHello, clientHello(r)))
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 2, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 40})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := findHello(b)
		if ok && !bytes.Contains(b, h.random[:]) {
			t.Fatalf("random %x not in the datagram", h.random)
		}
	})
}

// Any line: no panic, and what parses formats back to the same line.
func FuzzParseKeyLog(f *testing.F) {
	f.Add([]byte(fmt.Sprintf("CLIENT_RANDOM %x %x\n", [32]byte{}, make([]byte, 48))))
	f.Add([]byte("CLIENT_RANDOM 00 00"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, m, err := parseKeyLog(line)
		if err != nil {
			return
		}
		again := fmt.Sprintf("CLIENT_RANDOM %x %x", r, m)
		if !bytes.EqualFold(bytes.Join(bytes.Fields(line), []byte(" ")), []byte(again)) {
			t.Fatalf("%q parsed as %q", line, again)
		}
	})
}
