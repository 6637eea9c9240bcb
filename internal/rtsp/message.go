package rtsp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Bounds on what a camera may send.
const (
	maxHeaderBytes = 16 << 10 // a message's start line and headers
	maxBodyBytes   = 64 << 10 // a message body (the SDP)
	maxHeaders     = 128
	maxStraySkip   = 64 // CR/LF and spaces tolerated between messages
)

// header holds a message's header fields in order; names compare case-insensitively and may
// repeat (WWW-Authenticate).
type header [][2]string

func (h header) get(name string) string {
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

func (h header) all(name string) []string {
	var out []string
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			out = append(out, kv[1])
		}
	}
	return out
}

// message is one RTSP message read from the camera: a response, or (rarely) a request the
// server sends to the client.
type message struct {
	response bool
	code     int    // response
	reason   string // response
	method   string // request
	header   header
	body     []byte
}

func (m *message) cseq() int {
	n, err := strconv.Atoi(strings.TrimSpace(m.header.get("CSeq")))
	if err != nil {
		return -1
	}
	return n
}

// readMessage reads one RTSP message whose first byte is next in r. The start line and headers
// are bounded by maxHeaderBytes, the body by maxBodyBytes; r's buffer must be larger than
// maxHeaderBytes.
func readMessage(r *bufio.Reader) (*message, error) {
	var m message
	total := 0
	first := true
	for {
		line, err := r.ReadSlice('\n')
		total += len(line)
		if errors.Is(err, bufio.ErrBufferFull) || total > maxHeaderBytes {
			return nil, fmt.Errorf("%w: message header over %d bytes", ErrTooLarge, maxHeaderBytes)
		}
		if err != nil {
			return nil, readErr(err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if first {
			first = false
			if err := m.parseStartLine(s); err != nil {
				return nil, err
			}
			continue
		}
		if s == "" {
			break
		}
		if len(m.header) == maxHeaders {
			return nil, fmt.Errorf("%w: more than %d header fields", ErrTooLarge, maxHeaders)
		}
		name, value, ok := strings.Cut(s, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("%w: bad header line %q", ErrProtocol, clip(s))
		}
		m.header = append(m.header, [2]string{name, strings.TrimSpace(value)})
	}
	if cl := m.header.get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(strings.TrimSpace(cl))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: bad Content-Length %q", ErrProtocol, clip(cl))
		}
		if n > maxBodyBytes {
			return nil, fmt.Errorf("%w: body of %d bytes (limit %d)", ErrTooLarge, n, maxBodyBytes)
		}
		m.body = make([]byte, n)
		if _, err := io.ReadFull(r, m.body); err != nil {
			return nil, readErr(err)
		}
	}
	return &m, nil
}

func (m *message) parseStartLine(s string) error {
	if rest, ok := strings.CutPrefix(s, "RTSP/"); ok {
		// RTSP/1.0 200 OK
		_, status, ok := strings.Cut(rest, " ")
		if !ok {
			return fmt.Errorf("%w: bad status line %q", ErrProtocol, clip(s))
		}
		code, reason, _ := strings.Cut(strings.TrimLeft(status, " "), " ")
		n, err := strconv.Atoi(code)
		if err != nil || n < 100 || n > 999 {
			return fmt.Errorf("%w: bad status line %q", ErrProtocol, clip(s))
		}
		m.response, m.code, m.reason = true, n, strings.TrimSpace(reason)
		return nil
	}
	// A request from the server: METHOD uri RTSP/1.0.
	f := strings.Fields(s)
	if len(f) != 3 || !strings.HasPrefix(f[2], "RTSP/") {
		return fmt.Errorf("%w: bad start line %q", ErrProtocol, clip(s))
	}
	m.method = f[0]
	return nil
}

// clip shortens camera text quoted in errors.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// readErr turns an I/O error while reading from the camera into this package's errors.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w (%w)", ErrServerClosed, err)
	}
	return err
}

// item is what the camera sends next on the connection: an interleaved frame (channel, data)
// or an RTSP message.
type item struct {
	channel int
	data    []byte // valid until the next read
	msg     *message
}

// framer reads interleaved frames ("$", channel, 16-bit length, data; RFC 2326 10.12) and RTSP
// messages from one connection. A frame is at most 65535 bytes by construction.
type framer struct {
	r   *bufio.Reader
	buf []byte
}

func newFramer(r io.Reader) *framer {
	return &framer{r: bufio.NewReaderSize(r, 2*maxHeaderBytes), buf: make([]byte, 0xffff)}
}

// next reads the next item.
func (f *framer) next() (item, error) {
	for skipped := 0; ; skipped++ {
		b, err := f.r.Peek(1)
		if err != nil {
			return item{}, readErr(err)
		}
		switch c := b[0]; {
		case c == '$':
			var hdr [4]byte
			if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
				return item{}, readErr(err)
			}
			n := int(hdr[2])<<8 | int(hdr[3])
			data := f.buf[:n]
			if _, err := io.ReadFull(f.r, data); err != nil {
				return item{}, readErr(err)
			}
			return item{channel: int(hdr[1]), data: data}, nil
		case c >= 'A' && c <= 'Z':
			m, err := readMessage(f.r)
			if err != nil {
				return item{}, err
			}
			return item{channel: -1, msg: m}, nil
		case (c == '\r' || c == '\n' || c == ' ') && skipped < maxStraySkip:
			_, _ = f.r.ReadByte()
		default:
			return item{}, fmt.Errorf("%w: unexpected byte %#02x between messages", ErrProtocol, c)
		}
	}
}

// request is one RTSP request to send.
type request struct {
	method string
	url    string // without userinfo
	header header
}

// encode writes the request with its CSeq (and extra headers) into b.
func (q *request) encode(b *bytes.Buffer, cseq int, userAgent string) {
	b.Reset()
	b.WriteString(q.method)
	b.WriteByte(' ')
	b.WriteString(q.url)
	b.WriteString(" RTSP/1.0\r\nCSeq: ")
	b.WriteString(strconv.Itoa(cseq))
	b.WriteString("\r\n")
	if userAgent != "" {
		b.WriteString("User-Agent: " + userAgent + "\r\n")
	}
	for _, kv := range q.header {
		b.WriteString(kv[0])
		b.WriteString(": ")
		b.WriteString(kv[1])
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
}
