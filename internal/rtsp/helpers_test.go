package rtsp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// playingConn is a Conn in the playing state that reads the camera's side of the connection
// from stream (interleaved frames and messages): the read loop without a server.
func playingConn(t testing.TB, tracks []Track, opts Options, stream []byte) *Conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = time.Second
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	u, _ := url.Parse("rtsp://cam/s")
	c := &Conn{
		opts: opts, nc: a, fr: newFramer(bytes.NewReader(stream)), base: time.Now(),
		target: target{url: u}, byChannel: map[int]int{}, tracks: tracks,
		nextKeep: time.Now().Add(time.Hour), keepURL: "rtsp://cam/s", sessionTimeout: time.Minute,
	}
	for i := range tracks {
		c.tracks[i].Index = i
		if err := c.addTrack(2*i, 2*i+1); err != nil {
			t.Fatal(err)
		}
	}
	c.clocks = newClocks(c.tracks)
	return c
}

// readAll reads units until the stream ends, copying them.
func readAll(t testing.TB, c *Conn) []Unit {
	t.Helper()
	var out []Unit
	for {
		u, err := c.ReadUnit(t.Context())
		if err != nil {
			return out
		}
		u.Data = bytes.Clone(u.Data)
		out = append(out, u)
	}
}

func interleaved(ch int, data []byte) []byte {
	return append([]byte{'$', byte(ch), byte(len(data) >> 8), byte(len(data))}, data...)
}

type pkt struct {
	pt      uint8
	seq     uint16
	ts      uint32
	marker  bool
	ssrc    uint32
	payload []byte
}

func (p pkt) bytes() []byte {
	b := make([]byte, 12, 12+len(p.payload))
	b[0] = 0x80
	b[1] = p.pt
	if p.marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], p.seq)
	binary.BigEndian.PutUint32(b[4:], p.ts)
	binary.BigEndian.PutUint32(b[8:], p.ssrc)
	return append(b, p.payload...)
}

// stream builds interleaved RTP frames for track 0 (channel 0), numbering them from seq.
func stream(pt uint8, seq uint16, packets ...pkt) []byte {
	var out []byte
	for _, p := range packets {
		if p.seq == 0 {
			p.seq = seq
		}
		seq = p.seq + 1
		p.pt = pt
		out = append(out, interleaved(0, p.bytes())...)
	}
	return out
}

func h264Track() Track {
	return Track{Kind: codec.Video, Codec: "H264", PayloadType: 96, ClockRate: 90000, Params: map[string]string{}}
}

func annexB(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

// nalOf makes a NAL unit of size bytes with header hdr and no zero bytes.
func nalOf(hdr byte, size int) []byte {
	b := make([]byte, size)
	b[0] = hdr
	for i := 1; i < size; i++ {
		b[i] = byte(i%250 + 1)
	}
	return b
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readMessageBytes(b []byte) (*message, error) {
	return readMessage(bufio.NewReaderSize(bytes.NewReader(b), 2*maxHeaderBytes))
}
