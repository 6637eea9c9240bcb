package rtsp

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// Every parser of what a camera sends is fuzzed; seeds are in testdata/fuzz (captured from
// GStreamer's RTSP server, and camera-shaped SDP) and below.

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"))
	f.Add([]byte("RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\nContent-Length: 3\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMessageBytes(b)
		if err == nil && (len(m.body) > maxBodyBytes || len(m.header) > maxHeaders) {
			t.Fatalf("bounds exceeded: %d body bytes, %d headers", len(m.body), len(m.header))
		}
	})
}

func FuzzFramer(f *testing.F) {
	f.Add(append(interleaved(0, []byte{0x80, 96, 0, 1}), "RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFramer(bytes.NewReader(b))
		for range 1000 {
			it, err := fr.next()
			if err != nil {
				return
			}
			if it.msg == nil && (it.channel < 0 || it.channel > 255 || len(it.data) > 0xffff) {
				t.Fatalf("bad frame: channel %d, %d bytes", it.channel, len(it.data))
			}
		}
	})
}

func FuzzSDP(f *testing.F) {
	f.Add([]byte(cameraSDP))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSDP(b)
		if err != nil {
			return
		}
		tracks, _ := buildTracks(s, "rtsp://cam/s/")
		for i := range tracks {
			_ = newDepacketizer(&tracks[i])
			if tracks[i].Width < 0 || tracks[i].Height < 0 || tracks[i].Width > 16384 || tracks[i].Height > 16384 {
				t.Fatalf("size %dx%d", tracks[i].Width, tracks[i].Height)
			}
		}
	})
}

func FuzzChallenges(f *testing.F) {
	f.Add(`Digest realm="r", nonce="n", qop="auth", algorithm=MD5, Basic realm="x"`)
	f.Fuzz(func(t *testing.T, s string) {
		cs := parseChallenges([]string{s})
		if len(cs) > maxChallenges {
			t.Fatalf("%d challenges", len(cs))
		}
		a := authenticator{user: "u", password: "p"}
		if a.accept(cs) {
			_ = a.header("DESCRIBE", "rtsp://cam/s")
		}
	})
}

func FuzzURL(f *testing.F) {
	f.Add("rtsp://admin:p@ss@cam:554/Streaming/Channels/101")
	f.Add("rtsp://u:%zz@[::1/x")
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := parseURL(s)
		// The password (as written) never shows in an error or a redacted URL.
		_, rest, ok := strings.Cut(s, "://")
		if !ok {
			rest = s
		}
		at := strings.LastIndexByte(rest, '@')
		if at < 0 {
			return
		}
		_, pw, hasPW := strings.Cut(rest[:at], ":")
		if !hasPW || len(pw) < 6 || strings.Count(s, pw) != 1 || !strings.ContainsAny(pw, "0123456789") ||
			strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r > '~' || r == '"' || r == '\\' }) {
			// No password, or one that cannot be told apart from the rest of the URL or the
			// errors' own text (which has no digits), or from quoting's escapes.
			return
		}
		if strings.Contains(RedactURL(s), pw) {
			t.Fatalf("RedactURL(%q) shows the password", s)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Fatalf("error %q shows the password", err)
		}
		if err == nil && strings.Contains(tg.url.String(), pw) {
			t.Fatalf("request URL %q shows the password", tg.url)
		}
	})
}

func FuzzRTP(f *testing.F) {
	f.Add(pkt{pt: 96, seq: 1, ts: 2, marker: true, ssrc: 3, payload: []byte{0x65, 1}}.bytes())
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 9, 0xe0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := parseRTP(b); err == nil && len(p.payload) > len(b)-12 {
			t.Fatalf("payload of %d bytes from %d", len(p.payload), len(b))
		}
		if srs, _ := parseSenderReports(b, nil); len(srs) > maxReports {
			t.Fatalf("%d reports", len(srs))
		}
	})
}

// fuzzTracks are the tracks FuzzDepacketize and FuzzConn play.
func fuzzTracks() []Track {
	h264 := h264Track()
	h264.ParamSets = [][]byte{sps264, pps264}
	return []Track{h264, h265Track(), aacTrack(), {Kind: codec.Audio, Codec: "PCMA", PayloadType: 8, ClockRate: 8000}}
}

// FuzzDepacketize feeds one track's depacketizer packets built from the input: each is a
// control byte (bit 0 marker, bit 1 new timestamp, bit 2 a lost packet before it, bit 3 a new
// SSRC), a length byte and the payload.
func FuzzDepacketize(f *testing.F) {
	idr := nalOf(0x65, 600)
	frags := fuA(idr, 2)
	seed := []byte{}
	for i, p := range [][]byte{stapA(sps264, pps264), frags[0], frags[1]} {
		ctl := byte(0)
		if i == 2 {
			ctl = 1
		}
		for len(p) > 0 {
			n := min(len(p), 255)
			seed = append(seed, ctl, byte(n))
			seed = append(seed, p[:n]...)
			p = p[n:]
		}
	}
	f.Add(uint8(0), seed)
	f.Add(uint8(2), append([]byte{1, 6}, aacPayload(0, []byte{1, 2})...))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		tracks := fuzzTracks()
		tr := tracks[int(which)%len(tracks)]
		var s []byte
		seq, ts, ssrc := uint16(100), uint32(1000), uint32(7)
		for len(b) >= 2 {
			ctl, n := b[0], int(b[1])
			b = b[2:]
			n = min(n, len(b))
			if ctl&2 != 0 {
				ts += 3000
			}
			if ctl&4 != 0 {
				seq++
			}
			if ctl&8 != 0 {
				ssrc++
			}
			p := pkt{pt: tr.PayloadType, seq: seq, ts: ts, marker: ctl&1 != 0, ssrc: ssrc, payload: b[:n]}
			s = append(s, interleaved(0, p.bytes())...)
			b = b[n:]
			seq++
		}
		c := playingConn(t, []Track{tr}, Options{}, s)
		checkUnits(t, c, tr)
	})
}

func checkUnits(t *testing.T, c *Conn, tracks ...Track) {
	last := map[int]time.Time{}
	for range 100000 {
		u, err := c.ReadUnit(t.Context())
		if err != nil {
			return
		}
		if len(u.Data) == 0 || len(u.Data) > maxAU+1024 {
			t.Fatalf("unit of %d bytes", len(u.Data))
		}
		if u.Time.Before(last[u.Track]) {
			t.Fatalf("track %d: time went back", u.Track)
		}
		last[u.Track] = u.Time
	}
}

// FuzzConn reads an arbitrary camera stream (frames and messages) with every codec playing.
func FuzzConn(f *testing.F) {
	f.Add(stream(96, 1, pkt{ts: 1, payload: stapA(sps264, pps264, nalOf(0x65, 100)), marker: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		tracks := fuzzTracks()
		c := playingConn(t, tracks, Options{}, b)
		checkUnits(t, c, tracks...)
	})
}

func FuzzH265SPS(f *testing.F) {
	f.Add(decodeSprop("QgEBBAgAAAMAnggAAAMAAHiQAHgQAhyyys0kmV4C3AgIABAAAAMAEAAAAwGQgA==")[0])
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, h, err := parseH265SPS(b); err == nil && (w <= 0 || h <= 0 || w > 16384 || h > 16384) {
			t.Fatalf("%dx%d", w, h)
		}
	})
}
