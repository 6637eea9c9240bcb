package ipc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// The byte layout is the contract with capture/ipc.c: check it byte by byte.
func TestHeaderLayout(t *testing.T) {
	var b [HeaderSize]byte
	Header{Type: TypeFrame, Flags: FlagKeyframe, Timestamp: 0x0102030405060708, Seq: 0x0a0b0c0d, Length: 0x11223344}.Put(b[:])
	want := []byte{'P', '2', 'P', 'C', 1, 0x02, 0x01, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x0d, 0x0c, 0x0b, 0x0a, 0x44, 0x33, 0x22, 0x11}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("header bytes\n got % x\nwant % x", b, want)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := make([]byte, HeaderSize)
	Header{Type: TypeHello, Length: 20}.Put(good)
	mut := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"short", good[:10], ErrTruncated},
		{"magic", mut(func(b []byte) { b[0] = 'X' }), ErrBadMagic},
		{"version", mut(func(b []byte) { b[4] = 3 }), ErrVersion},
		{"too large", mut(func(b []byte) { b[23] = 0x01 }), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseHeader(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if h, err := ParseHeader(good); err != nil || h.Type != TypeHello || h.Length != 20 {
		t.Fatalf("good header: %+v %v", h, err)
	}
}

func TestHelloRoundTrip(t *testing.T) {
	in := Hello{Kind: KindVideo, Codec: CodecH264, Width: 1280, Height: 720, FPSNum: 30, FPSDen: 1,
		Capabilities: CapKeyframe | CapBitrate, Bitrate: 2_000_000, GOP: 60, Name: "testpattern"}
	out, err := ParseHelloPayload(in.Marshal())
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	if !out.Can(CapKeyframe) || out.Can(CapFPS) || out.FPS() != 30 {
		t.Fatalf("capabilities or fps wrong: %+v", out)
	}
	bad := []struct {
		name string
		f    func(h *Hello)
	}{
		{"kind", func(h *Hello) { h.Kind = 3 }},
		{"h265", func(h *Hello) { h.Codec = CodecH265 }},
		{"codec", func(h *Hello) { h.Codec = 9 }},
		{"width", func(h *Hello) { h.Width = 0 }},
		{"fps", func(h *Hello) { h.FPSDen = 0 }},
		{"name", func(h *Hello) { h.Name = strings.Repeat("x", MaxNameLen+1) }},
		{"utf8", func(h *Hello) { h.Name = "\xff\xfe" }},
	}
	for _, tc := range bad {
		h := in
		tc.f(&h)
		if _, err := ParseHelloPayload(h.Marshal()); !errors.Is(err, ErrBadHello) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}
	if _, err := ParseHelloPayload(make([]byte, 5)); !errors.Is(err, ErrBadHello) {
		t.Errorf("short hello: %v", err)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version1)
	hello := Hello{Kind: KindVideo, Codec: CodecH264, Width: 640, Height: 480, FPSNum: 30, FPSDen: 1}
	au := Frame{Seq: 7, Keyframe: true, Capture: 1_700_000_000_000_000_000, Encoded: 1_700_000_000_004_000_000,
		Data: []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x65, 9}}
	for _, err := range []error{w.WriteHello(hello), w.WriteFrame(au), w.RequestKeyframe(1),
		w.SetBitrate(1, 500_000), w.SetFPS(1, 60, 1), w.SetViewers(1, 3)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(&buf)
	if p, err := Detect(br); err != nil || p != Framed {
		t.Fatalf("detect: %v %v", p, err)
	}
	r := NewReader(br)
	m, err := r.Next()
	if err != nil || m.Type != TypeHello {
		t.Fatalf("hello: %+v %v", m.Header, err)
	}
	hello.Track, hello.Last = 1, true
	if h, err := ParseHello(m); err != nil || h != hello {
		t.Fatalf("hello payload: %+v %v", h, err)
	}
	m, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseFrame(m)
	if err != nil || got.Seq != 7 || !got.Keyframe || got.Capture != au.Capture || got.Encoded != au.Encoded || !bytes.Equal(got.Data, au.Data) {
		t.Fatalf("access unit: %+v %v", got, err)
	}
	wantCtl := []Control{{Type: TypeKeyframe}, {Type: TypeBitrate, Bitrate: 500_000}, {Type: TypeFPS, FPSNum: 60, FPSDen: 1}, {Type: TypeViewers, Viewers: 3}}
	for i, want := range wantCtl {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Seq != uint32(i+1) {
			t.Errorf("control %d: seq %d", i, m.Seq)
		}
		if c, err := ParseControl(m); err != nil || c.Type != want.Type || c.Bitrate != want.Bitrate || c.FPSNum != want.FPSNum || c.FPSDen != want.FPSDen || c.Viewers != want.Viewers {
			t.Errorf("control %d: %+v %v", i, c, err)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestReaderTruncated(t *testing.T) {
	var buf bytes.Buffer
	NewWriter(&buf, Version1).WriteFrame(Frame{Capture: 1, Data: []byte{0, 0, 1, 0x65, 1, 2, 3}})
	whole := buf.Bytes()
	for _, n := range []int{5, HeaderSize, len(whole) - 1} {
		if _, err := NewReader(bytes.NewReader(whole[:n])).Next(); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: %v", n, err)
		}
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Protocol
		err  error
	}{
		{"P2PC\x01", Framed, nil},
		{"\x00\x00\x00\x01\x67", AnnexB, nil},
		{"\x00\x00\x01\x67", AnnexB, nil},
		{"\x00\x00\x01", AnnexB, nil},
		{"GET / HTTP/1.1", 0, ErrUnknownStream},
		{"P2", 0, ErrTruncated},
		{"", 0, io.EOF},
	} {
		p, err := Detect(bufio.NewReader(strings.NewReader(tc.in)))
		if p != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Detect(%q) = %v, %v; want %v, %v", tc.in, p, err, tc.want, tc.err)
		}
	}
}

func TestParseFrameErrors(t *testing.T) {
	for _, m := range []Message{
		{Header: Header{Type: TypeHello}},
		{Header: Header{Type: TypeFrame, Timestamp: 1}, Payload: make([]byte, EncodedTimeSize)},
		{Header: Header{Type: TypeFrame}, Payload: make([]byte, 20)},
	} {
		if _, err := ParseFrame(m); err == nil {
			t.Errorf("accepted %+v", m.Header)
		}
	}
}

func TestParseControlErrors(t *testing.T) {
	for _, m := range []Message{
		{Header: Header{Type: TypeBitrate}, Payload: []byte{1, 2}},
		{Header: Header{Type: TypeBitrate}, Payload: []byte{0, 0, 0, 0}},
		{Header: Header{Type: TypeFPS}, Payload: []byte{30, 0, 0, 0}},
		{Header: Header{Type: TypeViewers}},
	} {
		if _, err := ParseControl(m); !errors.Is(err, ErrBadControl) {
			t.Errorf("%s: %v", m.Type, err)
		}
	}
	if c, err := ParseControl(Message{Header: Header{Type: 0xEE}}); err != nil || c.Type != 0xEE {
		t.Errorf("unknown type must pass through: %+v %v", c, err)
	}
}

func TestReaderSteadyStateAllocs(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version1)
	data := make([]byte, 4000)
	data[3] = 1
	for range 200 {
		w.WriteFrame(Frame{Capture: 1, Data: data})
	}
	r := NewReader(bytes.NewReader(buf.Bytes()))
	r.Next()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

// FuzzReader: any bytes give messages or a clean error, never a panic or an over-limit buffer.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version1)
	w.WriteHello(Hello{Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1, Name: "x"})
	w.WriteFrame(Frame{Capture: 1, Keyframe: true, Data: []byte{0, 0, 1, 0x65, 0x88}})
	w.SetFPS(1, 30, 1)
	f.Add(buf.Bytes())
	f.Add(v2Stream())
	f.Add(renditionsStream())
	f.Add(eventStream())
	f.Add([]byte("P2PC\x01\x02\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x01\x67\x42"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		if p, err := Detect(br); err != nil || p != Framed {
			return
		}
		r := NewReader(br)
		for {
			m, err := r.Next()
			if err != nil {
				return
			}
			if len(m.Payload) > MaxPayload {
				t.Fatalf("payload %d over limit", len(m.Payload))
			}
			switch m.Type {
			case TypeHello:
				if h, err := ParseHello(m); err == nil {
					if _, err := ParseHelloPayload(h.Marshal()); err != nil {
						t.Fatalf("valid hello does not round trip: %v", err)
					}
				}
			case TypeFrame:
				if au, err := ParseFrame(m); err == nil && len(au.Data) == 0 {
					t.Fatal("access unit with no data accepted")
				}
			case TypeEvent:
				if e, err := ParseEvent(m); err == nil && e.Event("").Validate() != nil {
					t.Fatal("invalid event accepted")
				}
			default:
				ParseControl(m)
			}
		}
	})
}

// v2Stream is a version 2 producer's opening: video and audio HELLOs, a sink, frames of both.
func v2Stream() []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version2)
	w.WriteHello(Hello{Track: 1, Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1})
	w.WriteHello(Hello{Track: 2, Kind: KindAudio, Codec: CodecOpus, Channels: 1, SampleRate: 48000, FrameDuration: 20000})
	w.WriteHello(Hello{Track: 3, Kind: KindAudio, Codec: CodecOpus, Channels: 1, SampleRate: 48000, FrameDuration: 20000, Sink: true, Last: true})
	w.WriteFrame(Frame{Track: 1, Capture: 1, Keyframe: true, Data: []byte{0, 0, 1, 0x65, 0x88}})
	w.WriteFrame(Frame{Track: 2, Capture: 2, Data: []byte{0xf8, 0xff, 0xfe}})
	return buf.Bytes()
}

// The version 2 header is version 1's plus the track id and alternate_of: check it byte by
// byte (capture/ipc.c).
func TestHeaderLayoutV2(t *testing.T) {
	var b [HeaderSizeV2]byte
	Header{Version: Version2, Type: TypeFrame, Flags: FlagKeyframe, Timestamp: 0x0102030405060708, Seq: 0x0a0b0c0d,
		Length: 0x11223344, Track: 7}.Put(b[:])
	want := []byte{'P', '2', 'P', 'C', 2, 0x02, 0x01, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x0d, 0x0c, 0x0b, 0x0a, 0x44, 0x33, 0x22, 0x11, 7, 0, 0, 0}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("header bytes\n got % x\nwant % x", b, want)
	}
	// A video HELLO of an alternate rendition: alternate_of at offset 25.
	Header{Version: Version2, Type: TypeHello, Length: HelloMinSize, Track: 4, AlternateOf: 1}.Put(b[:])
	if b[24] != 4 || b[25] != 1 || b[26] != 0 || b[27] != 0 {
		t.Fatalf("hello header extension % x", b[24:])
	}
	var h Header
	h.ParseHeaderExt(b[HeaderSize:])
	if h.Track != 4 || h.AlternateOf != 1 {
		t.Fatalf("parsed extension %+v", h)
	}
}

// renditionsStream is a version 2 producer with a main video track, a sub rendition of it (an
// alternate), and audio; frames of both renditions with one capture time.
func renditionsStream() []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version2)
	w.WriteHello(Hello{Track: 1, Kind: KindVideo, Codec: CodecH264, Width: 4, Height: 4, FPSNum: 30, FPSDen: 1})
	w.WriteHello(Hello{Track: 2, Kind: KindAudio, Codec: CodecOpus, Channels: 1, SampleRate: 48000, FrameDuration: 20000})
	w.WriteHello(Hello{Track: 3, Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 30, FPSDen: 1, AlternateOf: 1, Last: true})
	w.WriteFrame(Frame{Track: 1, Capture: 1, Keyframe: true, Data: []byte{0, 0, 1, 0x65, 0x88}})
	w.WriteFrame(Frame{Track: 3, Capture: 1, Keyframe: true, Data: []byte{0, 0, 1, 0x65, 0x84}})
	return buf.Bytes()
}

func TestRenditionsRoundTrip(t *testing.T) {
	r := NewReader(bytes.NewReader(renditionsStream()))
	var hellos []Hello
	for range 3 {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHello(m)
		if err != nil {
			t.Fatal(err)
		}
		hellos = append(hellos, h)
	}
	if hellos[0].AlternateOf != 0 || hellos[1].AlternateOf != 0 {
		t.Errorf("main and audio are no alternates: %+v %+v", hellos[0], hellos[1])
	}
	if h := hellos[2]; h.Track != 3 || h.AlternateOf != 1 || h.Width != 2 || !h.Last {
		t.Errorf("sub rendition hello %+v", h)
	}
	for _, track := range []uint8{1, 3} {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f, err := ParseFrame(m); err != nil || f.Track != track || f.Capture != 1 || m.AlternateOf != 0 {
			t.Errorf("frame %+v %v (alternate_of %d)", f, err, m.AlternateOf)
		}
	}
}

// alternate_of must name an earlier video HELLO's track that is not an alternate itself; the
// reader refuses anything else, as the HELLO passes.
func TestBadAlternates(t *testing.T) {
	video := func(track, alt uint8) Hello {
		return Hello{Track: track, Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1, AlternateOf: alt}
	}
	audio := Hello{Track: 2, Kind: KindAudio, Codec: CodecOpus, Channels: 1, SampleRate: 48000, FrameDuration: 20000}
	for _, tc := range []struct {
		name   string
		hellos []Hello
	}{
		{"unknown track", []Hello{video(1, 0), video(2, 9)}},
		{"forward reference", []Hello{video(1, 3), video(3, 0)}},
		{"itself", []Hello{video(1, 0), video(2, 2)}},
		{"an audio track", []Hello{video(1, 0), audio, video(3, 2)}},
		{"an alternate", []Hello{video(1, 0), video(2, 1), video(3, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf, Version2)
			for _, h := range tc.hellos {
				w.WriteHello(h)
			}
			r := NewReader(&buf)
			var err error
			for range tc.hellos {
				if _, err = r.Next(); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrBadAlternate) || !errors.Is(err, ErrBadHello) {
				t.Fatalf("got %v, want ErrBadAlternate and ErrBadHello", err)
			}
		})
	}

	// Byte 25 of an audio HELLO is reserved: ignored, not an error.
	var buf bytes.Buffer
	w := NewWriter(&buf, Version2)
	w.WriteHello(video(1, 0))
	p := audio.Marshal()
	w.Write(Header{Type: TypeHello, Track: 2, AlternateOf: 1}, p)
	r := NewReader(&buf)
	for range 2 {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h, err := ParseHello(m); err != nil || h.AlternateOf != 0 {
			t.Fatalf("%+v %v", h, err)
		}
	}
}

func TestV2RoundTrip(t *testing.T) {
	r := NewReader(bytes.NewReader(v2Stream()))
	var hellos []Hello
	for range 3 {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHello(m)
		if err != nil {
			t.Fatal(err)
		}
		hellos = append(hellos, h)
	}
	if r.Version() != Version2 {
		t.Fatalf("version %d", r.Version())
	}
	if h := hellos[0]; h.Track != 1 || h.Kind != KindVideo || h.Last || h.Sink {
		t.Errorf("video hello %+v", h)
	}
	if h := hellos[1]; h.Track != 2 || h.Kind != KindAudio || h.Codec != CodecOpus || h.SampleRate != 48000 || h.Channels != 1 || h.FrameDuration != 20000 || h.Last {
		t.Errorf("audio hello %+v", h)
	}
	if h := hellos[2]; h.Track != 3 || !h.Sink || !h.Last {
		t.Errorf("sink hello %+v", h)
	}
	for _, want := range []Frame{{Track: 1, Seq: 0, Keyframe: true, Capture: 1}, {Track: 2, Seq: 0, Capture: 2}} {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseFrame(m)
		if err != nil || f.Track != want.Track || f.Keyframe != want.Keyframe || f.Capture != want.Capture {
			t.Errorf("frame %+v %v, want %+v", f, err, want)
		}
	}
}

func TestV2DeviceToProducer(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version2)
	w.RequestKeyframe(1)
	w.SetViewers(2, 0)
	w.WriteSinkFrame(3, 42, true, []byte{0xf8, 1, 2})
	r := NewReader(&buf)
	for _, want := range []Control{{Type: TypeKeyframe, Track: 1}, {Type: TypeViewers, Track: 2}, {Type: TypeSinkFrame, Track: 3, Resume: true, Data: []byte{0xf8, 1, 2}}} {
		m, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseControl(m)
		if err != nil || c.Type != want.Type || c.Track != want.Track || c.Resume != want.Resume || !bytes.Equal(c.Data, want.Data) {
			t.Errorf("control %+v %v, want %+v", c, err, want)
		}
		if c.Type == TypeSinkFrame && m.Timestamp != 42 {
			t.Errorf("sink frame timestamp %d", m.Timestamp)
		}
	}
}

func TestMixedVersionsRefused(t *testing.T) {
	var buf bytes.Buffer
	NewWriter(&buf, Version2).WriteBye()
	NewWriter(&buf, Version1).WriteBye()
	r := NewReader(&buf)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrVersion) {
		t.Fatalf("a version 1 message on a version 2 connection: %v", err)
	}
}

func TestAudioHelloChecks(t *testing.T) {
	opus := Hello{Kind: KindAudio, Codec: CodecOpus, Channels: 2, SampleRate: 48000, FrameDuration: 20000, Bitrate: 32000, Name: "mic"}
	if h, err := ParseHelloPayload(opus.Marshal()); err != nil || h != opus {
		t.Fatalf("opus: %+v %v", h, err)
	}
	pcma := Hello{Kind: KindAudio, Codec: CodecPCMA, Channels: 1, SampleRate: 8000, FrameDuration: 20000}
	if _, err := ParseHelloPayload(pcma.Marshal()); err != nil {
		t.Fatalf("pcma: %v", err)
	}
	for name, f := range map[string]func(h *Hello){
		"opus rate":     func(h *Hello) { h.SampleRate = 44100 },
		"opus channels": func(h *Hello) { h.Channels = 3 },
		"opus duration": func(h *Hello) { h.FrameDuration = 1000 },
		"video codec":   func(h *Hello) { h.Codec = CodecH264 },
	} {
		h := opus
		f(&h)
		if _, err := ParseHelloPayload(h.Marshal()); !errors.Is(err, ErrBadHello) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Only audio tracks can be sinks, and track 0 is the connection's.
	var buf bytes.Buffer
	w := NewWriter(&buf, Version2)
	w.WriteHello(Hello{Track: 1, Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1, Sink: true})
	w.WriteHello(Hello{Track: 0, Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1})
	r := NewReader(&buf)
	for range 2 {
		m, _ := r.Next()
		if _, err := ParseHello(m); err == nil {
			t.Errorf("accepted %+v", m.Header)
		}
	}
}

// The EVENT layout is the contract with capture/ipc.c's pc_ipc_event_pack (its test checks the
// same bytes).
func TestEventLayout(t *testing.T) {
	e := Event{Track: 1, ID: 0x01020304, Kind: EventKindMotion, End: true, Score: 0x8000,
		Start: 0x1112131415161718, EndTime: 0x2122232425262728, Regions: []EventRegion{{1, 2, 3, 4}}}
	want := []byte{0x04, 0x03, 0x02, 0x01, 0x01, 0x01, 0x00, 0x80,
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
		0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x00}
	if got := e.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("EVENT bytes\n got % x\nwant % x", got, want)
	}
}

func TestEventRoundTripAndValidation(t *testing.T) {
	start := int64(1764936000123000000)
	good := Event{Track: 1, ID: 7, Kind: EventKindMotion, Score: ShareOne / 4, Start: start,
		Regions: []EventRegion{{0, ShareOne / 4, ShareOne, ShareOne / 6}}}
	msg := func(e Event, edit func(m *Message)) Message {
		var buf bytes.Buffer
		w := NewWriter(&buf, Version2)
		if err := w.WriteEvent(e); err != nil {
			t.Fatal(err)
		}
		m, err := NewReader(&buf).Next()
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(&m)
		}
		return m
	}
	got, err := ParseEvent(msg(good, nil))
	if err != nil || got.ID != 7 || got.End || got.Start != start || len(got.Regions) != 1 || got.Regions[0] != good.Regions[0] {
		t.Fatalf("start: %+v, %v", got, err)
	}
	ev := got.Event("")
	if ev.ID != "motion-1764936000123-7" || ev.Kind != "motion" || !ev.Open() || math.Abs(ev.Score-0.25) > 1e-3 ||
		ev.Regions[0].W != 1 || !ev.Start.Equal(time.Unix(0, start)) {
		t.Fatalf("as an event: %+v", ev)
	}
	end := good
	end.End, end.EndTime = true, start+2e9
	got, err = ParseEvent(msg(end, nil))
	if err != nil || got.Event("").ID != ev.ID || got.Event("").End.Sub(ev.Start) != 2*time.Second {
		t.Fatalf("end: %+v, %v", got, err)
	}

	for _, tc := range []struct {
		name string
		e    Event
		edit func(m *Message)
	}{
		{"id 0", func() Event { e := good; e.ID = 0; return e }(), nil},
		{"kind", func() Event { e := good; e.Kind = 2; return e }(), nil},
		{"no start", func() Event { e := good; e.Start = 0; return e }(), nil},
		{"ends before it starts", func() Event { e := end; e.EndTime = start - 1; return e }(), nil},
		{"start with an end", good, func(m *Message) { binary.LittleEndian.PutUint64(m.Payload[16:], 5) }},
		{"region outside", func() Event { e := good; e.Regions = []EventRegion{{ShareOne / 2, 0, ShareOne/2 + 2, 1}}; return e }(), nil},
		{"count over size", good, func(m *Message) { m.Payload[5] = 2 }},
		{"count under size", good, func(m *Message) { m.Payload[5] = 0 }},
		{"too many regions", func() Event { e := good; e.Regions = make([]EventRegion, MaxEventRegions+1); return e }(), nil},
		{"short", good, func(m *Message) { m.Payload = m.Payload[:EventSize-1] }},
		{"track 0", good, func(m *Message) { m.Track = 0 }},
		{"version 1", good, func(m *Message) { m.Version = Version1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseEvent(msg(tc.e, tc.edit)); !errors.Is(err, ErrBadEvent) {
				t.Fatalf("accepted or wrong error: %v", err)
			}
		})
	}
}

// FuzzEvent: any EVENT payload is refused with ErrBadEvent or gives an event that validates
// and round-trips.
func FuzzEvent(f *testing.F) {
	f.Add(Event{Track: 1, ID: 1, Kind: EventKindMotion, Start: 1, Score: 9}.Marshal(), uint16(0))
	f.Add(Event{Track: 1, ID: 2, Kind: EventKindMotion, End: true, Start: 1, EndTime: 5,
		Regions: []EventRegion{{1, 2, 3, 4}, {0, 0, ShareOne, ShareOne}}}.Marshal(), FlagEnd)
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, payload []byte, flags uint16) {
		m := Message{Header: Header{Version: Version2, Type: TypeEvent, Track: 1, Flags: flags}, Payload: payload}
		e, err := ParseEvent(m)
		if err != nil {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("error not ErrBadEvent: %v", err)
			}
			return
		}
		if err := e.Event("").Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		if again := e.Marshal(); len(again) != len(payload) {
			t.Fatalf("round trip: %d bytes from %d", len(again), len(payload))
		}
	})
}

// eventStream is a version 2 producer that detects motion: its video HELLO says so, then an
// event's start and end.
func eventStream() []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf, Version2)
	w.WriteHello(Hello{Track: 1, Kind: KindVideo, Codec: CodecH264, Width: 2, Height: 2, FPSNum: 1, FPSDen: 1, Capabilities: CapEvents, Last: true})
	w.WriteFrame(Frame{Track: 1, Capture: 1, Keyframe: true, Data: []byte{0, 0, 1, 0x65, 0x88}})
	w.WriteEvent(Event{Track: 1, ID: 1, Kind: EventKindMotion, Start: 1, Regions: []EventRegion{{0, 0, 10, 10}}})
	w.WriteEvent(Event{Track: 1, ID: 1, Kind: EventKindMotion, End: true, Start: 1, EndTime: 2})
	return buf.Bytes()
}
