package rtsp

import (
	"bytes"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
)

var (
	sps264 = []byte{0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40}
	pps264 = []byte{0x68, 0xce, 0x3c, 0x80}
)

func fuA(nal []byte, parts int) [][]byte {
	body := nal[1:]
	var out [][]byte
	step := (len(body) + parts - 1) / parts
	for i := 0; len(body) > 0; i++ {
		n := min(step, len(body))
		hdr := nal[0] & 0x1f
		if i == 0 {
			hdr |= 0x80
		}
		if n == len(body) {
			hdr |= 0x40
		}
		out = append(out, append([]byte{nal[0]&0xe0 | 28, hdr}, body[:n]...))
		body = body[n:]
	}
	return out
}

func stapA(nals ...[]byte) []byte {
	b := []byte{24}
	for _, n := range nals {
		b = append(b, byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

func TestH264Units(t *testing.T) {
	idr, p1, p2 := nalOf(0x65, 3000), nalOf(0x41, 500), nalOf(0x41, 400)
	frags := fuA(idr, 3)
	s := stream(96, 100,
		pkt{ts: 1000, payload: stapA(sps264, pps264)},
		pkt{ts: 1000, payload: frags[0]}, pkt{ts: 1000, payload: frags[1]}, pkt{ts: 1000, payload: frags[2], marker: true},
		pkt{ts: 4000, payload: p1, marker: true},
		pkt{ts: 7000, payload: p2, marker: true},
	)
	c := playingConn(t, []Track{h264Track()}, Options{}, s)
	units := readAll(t, c)
	if len(units) != 3 {
		t.Fatalf("%d units, want 3", len(units))
	}
	if want := annexB(sps264, pps264, idr); !bytes.Equal(units[0].Data, want) || !units[0].Keyframe {
		t.Errorf("first unit: %d bytes keyframe=%v, want the IDR with its parameter sets (%d bytes)", len(units[0].Data), units[0].Keyframe, len(want))
	}
	if !bytes.Equal(units[1].Data, annexB(p1)) || units[1].Keyframe || units[1].RTPTime != 4000 {
		t.Errorf("second unit wrong: keyframe=%v rtp=%d", units[1].Keyframe, units[1].RTPTime)
	}
	if d := units[2].Time.Sub(units[1].Time); d < 0 {
		t.Errorf("capture time went back by %v", -d)
	}
	if st := c.Stats().Tracks[0]; st.Units != 3 || st.Lost != 0 || st.Dropped != 0 || st.Packets != 6 {
		t.Errorf("stats %+v", st)
	}
}

// A lost middle fragment drops its unit, counts it, and the units after it until the next
// keyframe.
func TestH264LostFragment(t *testing.T) {
	idr, p1, idr2 := nalOf(0x65, 3000), nalOf(0x41, 500), nalOf(0x65, 800)
	frags := fuA(nalOf(0x41, 3000), 3)
	s := stream(96, 10,
		pkt{ts: 1000, payload: stapA(sps264, pps264, idr), marker: true},
		pkt{ts: 4000, payload: frags[0]}, pkt{seq: 13, ts: 4000, payload: frags[2], marker: true}, // 12 lost
		pkt{ts: 7000, payload: p1, marker: true},
		pkt{ts: 10000, payload: idr2, marker: true},
	)
	c := playingConn(t, []Track{h264Track()}, Options{}, s)
	units := readAll(t, c)
	if len(units) != 2 || !units[0].Keyframe || !units[1].Keyframe || units[1].RTPTime != 10000 {
		t.Fatalf("got %d units, want the two keyframes", len(units))
	}
	// The SDP had no parameter sets, the stream did: the second IDR gets them.
	if want := annexB(sps264, pps264, idr2); !bytes.Equal(units[1].Data, want) {
		t.Errorf("second IDR lacks the stream's parameter sets")
	}
	if st := c.Stats().Tracks[0]; st.Lost != 1 || st.Dropped != 2 || st.Units != 2 {
		t.Errorf("stats %+v, want 1 lost, 2 dropped (the broken unit, the P after it)", st)
	}

	// KeepDependent delivers the P unit after the loss.
	c = playingConn(t, []Track{h264Track()}, Options{KeepDependent: true}, s)
	if units := readAll(t, c); len(units) != 3 {
		t.Errorf("KeepDependent: %d units, want 3", len(units))
	}
}

// A camera that does not set the marker bit: the timestamp change ends the unit (this also
// guards the empty STAP-A flush of codec.H264Depacketizer).
func TestH264FlushByTimestamp(t *testing.T) {
	idr, p1, p2 := nalOf(0x65, 2000), nalOf(0x41, 300), nalOf(0x41, 200)
	frags := fuA(idr, 2)
	s := stream(96, 1,
		pkt{ts: 1000, payload: stapA(sps264, pps264)}, pkt{ts: 1000, payload: frags[0]}, pkt{ts: 1000, payload: frags[1]},
		pkt{ts: 4000, payload: p1},
		pkt{ts: 7000, payload: p2, marker: true},
	)
	units := readAll(t, playingConn(t, []Track{h264Track()}, Options{}, s))
	if len(units) != 3 {
		t.Fatalf("%d units, want 3", len(units))
	}
	for i, want := range [][]byte{annexB(sps264, pps264, idr), annexB(p1), annexB(p2)} {
		if !bytes.Equal(units[i].Data, want) {
			t.Errorf("unit %d: %d bytes, want %d", i, len(units[i].Data), len(want))
		}
	}
	if units[0].RTPTime != 1000 || units[1].RTPTime != 4000 {
		t.Errorf("RTP times %d %d", units[0].RTPTime, units[1].RTPTime)
	}
}

// Parameter sets only in the SDP go in front of every IDR, after an access unit delimiter.
func TestH264ParamSetsFromSDP(t *testing.T) {
	tr := h264Track()
	tr.ParamSets = [][]byte{sps264, pps264}
	aud, idr := []byte{0x09, 0xf0}, nalOf(0x65, 100)
	s := stream(96, 1,
		pkt{ts: 1000, payload: stapA(aud, idr), marker: true},
		pkt{ts: 4000, payload: nalOf(0x41, 50), marker: true},
	)
	units := readAll(t, playingConn(t, []Track{tr}, Options{}, s))
	if len(units) != 2 {
		t.Fatalf("%d units", len(units))
	}
	if want := annexB(aud, sps264, pps264, idr); !bytes.Equal(units[0].Data, want) {
		t.Errorf("IDR unit % x, want % x", units[0].Data[:20], want[:20])
	}
	if bytes.Contains(units[1].Data, sps264) {
		t.Error("parameter sets put in front of a P unit")
	}
}

func TestH264UnitsBeforeFirstKeyframeDropped(t *testing.T) {
	s := stream(96, 1,
		pkt{ts: 1000, payload: nalOf(0x41, 50), marker: true},
		pkt{ts: 4000, payload: stapA(sps264, pps264, nalOf(0x65, 60)), marker: true},
	)
	c := playingConn(t, []Track{h264Track()}, Options{}, s)
	if units := readAll(t, c); len(units) != 1 || !units[0].Keyframe {
		t.Fatalf("want only the keyframe, got %d units", len(units))
	}
	if st := c.Stats().Tracks[0]; st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func h265Track() Track {
	return Track{Kind: codec.Video, Codec: "H265", PayloadType: 96, ClockRate: 90000, Params: map[string]string{}}
}

func h265NAL(typ byte, size int) []byte {
	b := nalOf(typ<<1, size)
	b[1] = 1 // layer 0, TID 1
	return b
}

func TestH265Units(t *testing.T) {
	vps, sps, pps := h265NAL(32, 20), h265NAL(33, 30), h265NAL(34, 8)
	idr := h265NAL(19, 4000) // IDR_W_RADL
	trail := h265NAL(1, 300)
	ap := []byte{48 << 1, 1}
	for _, n := range [][]byte{vps, sps, pps} {
		ap = append(ap, byte(len(n)>>8), byte(len(n)))
		ap = append(ap, n...)
	}
	fu := func(nal []byte, start, end bool, body []byte) []byte {
		h := nal[0] >> 1 & 0x3f
		if start {
			h |= 0x80
		}
		if end {
			h |= 0x40
		}
		return append([]byte{49 << 1, nal[1], h}, body...)
	}
	body := idr[2:]
	s := stream(96, 7,
		pkt{ts: 90, payload: ap},
		pkt{ts: 90, payload: fu(idr, true, false, body[:1500])},
		pkt{ts: 90, payload: fu(idr, false, false, body[1500:3000])},
		pkt{ts: 90, payload: fu(idr, false, true, body[3000:]), marker: true},
		pkt{ts: 3090, payload: trail, marker: true},
	)
	c := playingConn(t, []Track{h265Track()}, Options{}, s)
	units := readAll(t, c)
	if len(units) != 2 {
		t.Fatalf("%d units, want 2", len(units))
	}
	if want := annexB(vps, sps, pps, idr); !bytes.Equal(units[0].Data, want) || !units[0].Keyframe {
		t.Errorf("keyframe unit differs (%d bytes, want %d)", len(units[0].Data), len(want))
	}
	if !bytes.Equal(units[1].Data, annexB(trail)) || units[1].Keyframe {
		t.Error("second unit differs")
	}

	// Parameter sets from the SDP go in front of an IDR that comes alone; a lost fragment
	// drops the unit.
	tr := h265Track()
	tr.ParamSets = [][]byte{vps, sps, pps}
	s = stream(96, 1,
		pkt{ts: 90, payload: fu(idr, true, false, body[:1500])},
		pkt{seq: 3, ts: 90, payload: fu(idr, false, true, body[3000:]), marker: true},
		pkt{ts: 3090, payload: idr, marker: true},
	)
	c = playingConn(t, []Track{tr}, Options{}, s)
	units = readAll(t, c)
	if len(units) != 1 || !bytes.Equal(units[0].Data, annexB(vps, sps, pps, idr)) {
		t.Fatalf("want the whole IDR with the SDP's parameter sets, got %d units", len(units))
	}
	if st := c.Stats().Tracks[0]; st.Lost != 1 || st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func aacTrack() Track {
	return Track{Kind: codec.Audio, Codec: "AAC", PayloadType: 97, ClockRate: 48000, Channels: 2, FrameTicks: 1024,
		Params: map[string]string{"mode": "AAC-hbr", "sizelength": "13", "indexlength": "3", "indexdeltalength": "3"}}
}

// aacPayload builds an AAC-hbr payload: 16-bit header bits, 13+3-bit headers, the AUs. size
// overrides the first header's size (for fragments).
func aacPayload(size int, aus ...[]byte) []byte {
	b := []byte{0, byte(16 * len(aus))}
	for i, au := range aus {
		n := len(au)
		if i == 0 && size > 0 {
			n = size
		}
		b = append(b, byte(n>>5), byte(n<<3))
	}
	for _, au := range aus {
		b = append(b, au...)
	}
	return b
}

func TestAACUnits(t *testing.T) {
	a1, a2, a3 := nalOf(0x21, 300), nalOf(0x21, 280), nalOf(0x21, 2500)
	s := stream(97, 50,
		pkt{ts: 48000, payload: aacPayload(0, a1, a2), marker: true},
		pkt{ts: 50048, payload: aacPayload(len(a3), a3[:1200])},
		pkt{ts: 50048, payload: aacPayload(len(a3), a3[1200:]), marker: true},
	)
	units := readAll(t, playingConn(t, []Track{aacTrack()}, Options{}, s))
	if len(units) != 3 {
		t.Fatalf("%d units, want 3", len(units))
	}
	for i, w := range []struct {
		data []byte
		ts   uint32
	}{{a1, 48000}, {a2, 49024}, {a3, 50048}} {
		if !bytes.Equal(units[i].Data, w.data) || units[i].RTPTime != w.ts || !units[i].Keyframe {
			t.Errorf("unit %d: %d bytes at %d, want %d at %d", i, len(units[i].Data), units[i].RTPTime, len(w.data), w.ts)
		}
	}
	if d := units[1].Time.Sub(units[0].Time); d.Microseconds() != 21333 {
		t.Errorf("two AUs of one packet are %v apart, want 21.333ms", d)
	}

	// A lost fragment drops its AU.
	s = stream(97, 1,
		pkt{ts: 0, payload: aacPayload(len(a3), a3[:1200])},
		pkt{seq: 3, ts: 0, payload: aacPayload(len(a3), a3[2400:]), marker: true},
		pkt{ts: 2048, payload: aacPayload(0, a1), marker: true},
	)
	c := playingConn(t, []Track{aacTrack()}, Options{}, s)
	units = readAll(t, c)
	if len(units) != 1 || !bytes.Equal(units[0].Data, a1) {
		t.Fatalf("got %d units, want only the whole one", len(units))
	}
	if st := c.Stats().Tracks[0]; st.Lost != 1 || st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestG711Units(t *testing.T) {
	tr := Track{Kind: codec.Audio, Codec: "PCMA", PayloadType: 8, ClockRate: 8000, Channels: 1}
	f1, f2 := bytes.Repeat([]byte{0xd5}, 160), bytes.Repeat([]byte{0x55}, 160)
	s := stream(8, 1, pkt{ts: 0, payload: f1, marker: true}, pkt{ts: 160, payload: f2})
	units := readAll(t, playingConn(t, []Track{tr}, Options{}, s))
	if len(units) != 2 || !bytes.Equal(units[0].Data, f1) || !bytes.Equal(units[1].Data, f2) {
		t.Fatalf("got %d units", len(units))
	}
	// Replayed at once, the frames cannot have been captured 20 ms apart: a unit is never
	// captured after it arrived.
	if d := units[1].Time.Sub(units[0].Time); d < 0 || d > 20*time.Millisecond || units[1].Time.After(time.Now()) {
		t.Errorf("frames %v apart", d)
	}
}

func TestWrongPayloadTypeAndJunkCounted(t *testing.T) {
	s := stream(8, 1, pkt{ts: 0, payload: []byte{1}})
	s = append(s, interleaved(0, []byte{0x40, 0, 0})...) // not RTP v2
	s = append(s, interleaved(9, []byte{1, 2, 3})...)    // no such channel
	tr := Track{Kind: codec.Audio, Codec: "PCMU", PayloadType: 0, ClockRate: 8000}
	c := playingConn(t, []Track{tr}, Options{}, s)
	if units := readAll(t, c); len(units) != 0 {
		t.Fatalf("%d units", len(units))
	}
	if st := c.Stats().Tracks[0]; st.BadPackets != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Replays what GStreamer's RTSP server sent after PLAY (captured from the rtsptest server):
// every unit is whole, nothing lost.
func TestReplayCapturedStreams(t *testing.T) {
	for _, name := range []string{"gst-h264-pcma", "gst-h265-aac"} {
		t.Run(name, func(t *testing.T) {
			desc := readTestdata(t, name+".describe")
			m, err := readMessageBytes(desc)
			if err != nil {
				t.Fatal(err)
			}
			sdp, err := parseSDP(m.body)
			if err != nil {
				t.Fatal(err)
			}
			tracks, skipped := buildTracks(sdp, "rtsp://127.0.0.1/test/")
			if len(tracks) != 2 || len(skipped) != 0 {
				t.Fatalf("tracks %v skipped %v", tracks, skipped)
			}
			c := playingConn(t, tracks, Options{}, readTestdata(t, name+".stream"))
			units := readAll(t, c)
			perTrack := map[int]int{}
			keys := 0
			for _, u := range units {
				perTrack[u.Track]++
				if tracks[u.Track].Kind == codec.Video && u.Keyframe {
					keys++
				}
			}
			st := c.Stats()
			t.Logf("units per track %v, stats %+v", perTrack, st)
			if perTrack[0] < 20 || perTrack[1] < 20 || keys < 1 {
				t.Errorf("units per track %v, %d keyframes", perTrack, keys)
			}
			for i, ts := range st.Tracks {
				if ts.Lost != 0 || ts.Dropped != 0 || ts.BadPackets != 0 {
					t.Errorf("track %d: %+v", i, ts)
				}
			}
		})
	}
}
