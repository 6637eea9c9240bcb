package wayland

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The wire format (wayland.freedesktop.org, "Wire Format"): every message is a header of two
// native-endian 32-bit words — the object id, then size<<16 | opcode, the size counting the
// header — followed by its arguments, each a multiple of 4 bytes. File descriptors travel
// beside the bytes as SCM_RIGHTS and are taken in order.

const (
	headerSize = 8
	// maxMessageSize is libwayland's connection buffer: neither side sends a larger message.
	maxMessageSize = 4096
	// maxArrayLen bounds one string or array argument of an event (they fit a message anyway).
	maxArrayLen = maxMessageSize - headerSize - 4
)

// Argument kinds in a signature string, as in libwayland's own signatures; '?' before 's' or
// 'o' marks it nullable.
const (
	kindInt    = 'i'
	kindUint   = 'u'
	kindFixed  = 'f'
	kindString = 's'
	kindObject = 'o'
	kindNewID  = 'n'
	kindArray  = 'a'
	kindFD     = 'h'
)

// ErrMalformed is a message from the compositor that does not decode: the connection is
// unusable after it.
var ErrMalformed = errors.New("wayland: malformed message")

// arg is one decoded argument. Which field holds it depends on its kind: u for uint, object
// and new_id (0 = null), i for int and fixed (raw 24.8: no event used here has one), s for string, a for array, fd for fd.
type arg struct {
	u    uint32
	i    int32
	s    string
	a    []byte
	fd   int
	null bool // a nullable string or object that was null
}

// header is a decoded message header.
type header struct {
	id     uint32
	opcode uint16
	size   int // whole message, header included
}

// parseHeader reads a header from b (at least headerSize bytes) and checks its size.
func parseHeader(b []byte) (header, error) {
	w := binary.NativeEndian.Uint32(b[4:8])
	h := header{id: binary.NativeEndian.Uint32(b[0:4]), opcode: uint16(w), size: int(w >> 16)}
	if h.size < headerSize || h.size > maxMessageSize || h.size%4 != 0 {
		return h, fmt.Errorf("%w: object %d opcode %d size %d", ErrMalformed, h.id, h.opcode, h.size)
	}
	return h, nil
}

// fdSource hands out received file descriptors in order.
type fdSource interface {
	takeFD() (int, bool)
}

// decodeArgs decodes body (a message without its header) by sig. Descriptors come from fds;
// on error, the ones already taken are returned in args for the caller to close.
func decodeArgs(sig string, body []byte, fds fdSource) ([]arg, error) {
	args := make([]arg, 0, len(sig))
	nullable := false
	for i := 0; i < len(sig); i++ {
		k := sig[i]
		if k == '?' {
			nullable = true
			continue
		}
		var a arg
		a.fd = -1
		switch k {
		case kindInt, kindUint, kindFixed, kindObject, kindNewID:
			if len(body) < 4 {
				return args, fmt.Errorf("%w: short %c argument", ErrMalformed, k)
			}
			a.u = binary.NativeEndian.Uint32(body)
			a.i = int32(a.u)
			body = body[4:]
			if k == kindObject && a.u == 0 {
				if !nullable {
					return args, fmt.Errorf("%w: null object", ErrMalformed)
				}
				a.null = true
			}
			if k == kindNewID && a.u == 0 {
				return args, fmt.Errorf("%w: null new_id", ErrMalformed)
			}
		case kindString, kindArray:
			if len(body) < 4 {
				return args, fmt.Errorf("%w: short %c length", ErrMalformed, k)
			}
			n := binary.NativeEndian.Uint32(body)
			body = body[4:]
			if n > maxArrayLen || int(n) > len(body) {
				return args, fmt.Errorf("%w: %c of %d bytes in %d", ErrMalformed, k, n, len(body))
			}
			padded := int(n+3) &^ 3
			if padded > len(body) {
				return args, fmt.Errorf("%w: %c padding", ErrMalformed, k)
			}
			data := body[:n]
			body = body[padded:]
			if k == kindArray {
				a.a = append([]byte(nil), data...)
				break
			}
			if n == 0 {
				if !nullable {
					return args, fmt.Errorf("%w: null string", ErrMalformed)
				}
				a.null = true
				break
			}
			if data[n-1] != 0 {
				return args, fmt.Errorf("%w: string without terminator", ErrMalformed)
			}
			a.s = string(data[:n-1])
		case kindFD:
			fd, ok := fds.takeFD()
			if !ok {
				return args, fmt.Errorf("%w: fd argument without a descriptor", ErrMalformed)
			}
			a.fd = fd
		default:
			// Our own signature tables are wrong: not the compositor's fault, but still no panic.
			return args, fmt.Errorf("wayland: bad signature %q", sig)
		}
		nullable = false
		args = append(args, a)
	}
	if len(body) != 0 {
		return args, fmt.Errorf("%w: %d bytes after the last argument", ErrMalformed, len(body))
	}
	return args, nil
}

// closeArgFDs closes the descriptors held by args (events nobody will handle).
func closeArgFDs(args []arg, closeFD func(int) error) {
	for _, a := range args {
		if a.fd >= 0 {
			_ = closeFD(a.fd)
		}
	}
}

// message builds one request. Its descriptors are sent with the bytes; the caller keeps
// ownership of them (the kernel duplicates them on send).
type message struct {
	buf []byte
	fds []int
	err error
}

func newMessage(id uint32, opcode uint16) *message {
	m := &message{buf: make([]byte, headerSize, 64)}
	binary.NativeEndian.PutUint32(m.buf[0:4], id)
	binary.NativeEndian.PutUint32(m.buf[4:8], uint32(opcode))
	return m
}

func (m *message) uint(v uint32) *message {
	m.buf = binary.NativeEndian.AppendUint32(m.buf, v)
	return m
}

func (m *message) int(v int32) *message { return m.uint(uint32(v)) }

// fixed appends v as 24.8 fixed point, saturated to its range.
func (m *message) fixed(v float64) *message {
	f := math.Round(v * 256)
	switch {
	case math.IsNaN(f):
		f = 0
	case f > math.MaxInt32:
		f = math.MaxInt32
	case f < math.MinInt32:
		f = math.MinInt32
	}
	return m.int(int32(f))
}

func (m *message) string(s string) *message {
	m.uint(uint32(len(s) + 1))
	m.buf = append(m.buf, s...)
	m.buf = append(m.buf, 0)
	m.pad()
	return m
}

func (m *message) array(b []byte) *message {
	m.uint(uint32(len(b)))
	m.buf = append(m.buf, b...)
	m.pad()
	return m
}

func (m *message) fd(fd int) *message {
	m.fds = append(m.fds, fd)
	return m
}

func (m *message) pad() {
	for len(m.buf)%4 != 0 {
		m.buf = append(m.buf, 0)
	}
}

// bytes finishes the message: it writes the size into the header.
func (m *message) bytes() ([]byte, error) {
	if len(m.buf) > maxMessageSize {
		return nil, fmt.Errorf("wayland: request of %d bytes exceeds %d", len(m.buf), maxMessageSize)
	}
	w := binary.NativeEndian.Uint32(m.buf[4:8])
	binary.NativeEndian.PutUint32(m.buf[4:8], uint32(len(m.buf))<<16|w&0xffff)
	return m.buf, nil
}

// encodeArgs builds a message from decoded args by sig: the inverse of decodeArgs, used by
// the fuzz test and by test doubles of the compositor.
func encodeArgs(id uint32, opcode uint16, sig string, args []arg) (*message, error) {
	m := newMessage(id, opcode)
	n := 0
	for i := 0; i < len(sig); i++ {
		k := sig[i]
		if k == '?' {
			continue
		}
		if n >= len(args) {
			return nil, fmt.Errorf("wayland: %d args for signature %q", len(args), sig)
		}
		a := args[n]
		n++
		switch k {
		case kindInt, kindFixed:
			m.int(a.i)
		case kindUint, kindObject, kindNewID:
			m.uint(a.u)
		case kindString:
			if a.null {
				m.uint(0)
			} else {
				m.string(a.s)
			}
		case kindArray:
			m.array(a.a)
		case kindFD:
			m.fd(a.fd)
		default:
			return nil, fmt.Errorf("wayland: bad signature %q", sig)
		}
	}
	return m, nil
}
