package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/mp4"
)

const (
	segA = "2026/12/05/20261205T105300.123Z_0001.mp4"
	segB = "2026/12/05/20261205T105400.123Z_0002.mp4"
	segW = "2026/12/05/20261205T105500.123Z_0003.mp4"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestListGetAndResume(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	clip := testMP4(t)
	big := randomBytes(t, 3<<20+12345)
	cat.add(t, segA, clip)
	cat.add(t, segB, big)
	if err := os.WriteFile(filepath.Join(cat.dir, filepath.FromSlash(segW)), clip[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	cat.writing = segW
	start := time.Date(2026, 12, 5, 10, 53, 30, 0, time.UTC)
	cat.events = []event.Event{{ID: "e1", Kind: "motion", Detector: "motion", Start: start, End: start.Add(3 * time.Second)}}
	c, _ := pair(t, NewServer(cat, Limits{}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	recs, evs, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Path != segA || recs[1].Path != segB || recs[1].Bytes != int64(len(big)) {
		t.Fatalf("list: %+v", recs)
	}
	if w := recs[2]; w.Path != segW || !w.Writing || w.Bytes != 1000 || !w.Start.Equal(time.Date(2026, 12, 5, 10, 55, 0, 123e6, time.UTC)) {
		t.Fatalf("the segment being written: %+v", w)
	}
	if len(evs) != 1 || evs[0].ID != "e1" {
		t.Fatalf("events: %+v", evs)
	}

	for _, want := range [][]byte{clip, big} {
		p := segA
		if len(want) == len(big) {
			p = segB
		}
		var got bytes.Buffer
		res, err := c.Get(ctx, p, 0, &got, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) || res.SHA256 != sum(want) || res.Size != int64(len(want)) {
			t.Fatalf("get %s: %d bytes, sha %s; want %d, %s", p, got.Len(), res.SHA256, len(want), sum(want))
		}
	}

	// Resume: the first part is here, the rest comes from its offset and the hash covers both.
	have := 1<<20 + 7
	h := sha256.New()
	h.Write(big[:have])
	var rest bytes.Buffer
	res, err := c.Get(ctx, segB, int64(have), &rest, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != int64(have) || !bytes.Equal(append(big[:have:have], rest.Bytes()...), big) || res.SHA256 != sum(big) {
		t.Fatalf("resume: offset %d, %d bytes", res.Offset, rest.Len())
	}
	// A local prefix that is not the device's is caught at the end.
	bad := sha256.New()
	bad.Write(make([]byte, have))
	if _, err := c.Get(ctx, segB, int64(have), new(bytes.Buffer), bad, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a wrong prefix: %v, want ErrChecksum", err)
	}
	// A range: the hash is of the prefix up to its end.
	replies, data, err := raw(t, c, Request{Type: TypeGet, Path: segB, Offset: 100, Length: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, big[100:5100]) || replies[len(replies)-1]["sha256"] != sum(big[:5100]) {
		t.Fatalf("range: %d bytes, %v", len(data), replies[len(replies)-1])
	}
	// The segment being written: what it holds now.
	var w bytes.Buffer
	if _, err := c.Get(ctx, segW, 0, &w, nil, nil); err != nil || w.Len() != 1000 {
		t.Fatalf("get the segment being written: %d bytes, %v", w.Len(), err)
	}
}

// TestSeveralSources: a device of several sources lists each source's recordings under its
// id (DIR/<id>/YYYY/…, as on disk), gets them by that path, and refuses ids that are not
// one path element of an id's characters.
func TestSeveralSources(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	main, cam := randomBytes(t, 70_000), randomBytes(t, 90_000)
	cat.add(t, "main/"+segA, main)
	cat.add(t, "cam-2/"+segB, cam)
	if err := os.WriteFile(filepath.Join(cat.dir, "cam-2", filepath.FromSlash(segW)), cam[:500], 0o644); err != nil {
		t.Fatal(err)
	}
	cat.writing = "cam-2/" + segW
	c, _ := pair(t, NewServer(cat, Limits{MaxErrors: 100}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, _, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Source != "main" || recs[1].Source != "cam-2" || recs[1].Path != "cam-2/"+segB ||
		recs[2].Source != "cam-2" || !recs[2].Writing || recs[2].Bytes != 500 {
		t.Fatalf("list: %+v", recs)
	}
	for p, want := range map[string][]byte{"main/" + segA: main, "cam-2/" + segB: cam, "cam-2/" + segW: cam[:500]} {
		var got bytes.Buffer
		res, err := c.Get(ctx, p, 0, &got, nil, nil)
		if err != nil || !bytes.Equal(got.Bytes(), want) || res.SHA256 != sum(want) {
			t.Fatalf("get %s: %d bytes, %v", p, got.Len(), err)
		}
	}
	for p, code := range map[string]string{
		segA:                                 CodeNotFound, // not the listed path: the prefix is part of it
		"cam-2/" + segA:                      CodeNotFound, // another source's name
		"Cam-2/" + segB:                      CodeBadPath,
		"a/cam-2/" + segB:                    CodeBadPath,
		"../cam-2/" + segB:                   CodeBadPath,
		"./cam-2/" + segB:                    CodeBadPath,
		strings.Repeat("c", 33) + "/" + segB: CodeBadPath,
		"cam 2/" + segB:                      CodeBadPath,
	} {
		_, data, err := raw(t, c, Request{Type: TypeGet, Path: p})
		var er ErrorReply
		if !errors.As(err, &er) || er.Code != code || len(data) != 0 {
			t.Errorf("get %q: %v (%d bytes); want %s", p, err, len(data), code)
		}
	}
}

func TestRefusals(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	cat.add(t, segA, []byte("not much"))
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink with a segment's name leading out of the directory, listed all the same, and
	// a day directory that is a symlink out.
	if err := os.Symlink(secret, filepath.Join(cat.dir, filepath.FromSlash(segB))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(cat.dir, "2026/12/06")); err != nil {
		t.Fatal(err)
	}
	viaDir := "2026/12/06/20261206T000000.000Z_0001.mp4"
	if err := os.WriteFile(filepath.Join(outside, "20261206T000000.000Z_0001.mp4"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	cat.entries = append(cat.entries, cat.entries[0], cat.entries[0])
	cat.entries[1].Path, cat.entries[2].Path = segB, viaDir
	if err := os.WriteFile(filepath.Join(cat.dir, "index.jsonl"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := pair(t, NewServer(cat, Limits{MaxErrors: 100}))
	for _, tc := range []struct {
		r    Request
		code string
	}{
		{Request{Type: TypeGet, Path: "/etc/passwd"}, CodeBadPath},
		{Request{Type: TypeGet, Path: "../" + segA}, CodeBadPath},
		{Request{Type: TypeGet, Path: "2026/12/05/../../../etc/passwd"}, CodeBadPath},
		{Request{Type: TypeGet, Path: "2026/12/05/./20261205T105300.123Z_0001.mp4"}, CodeBadPath},
		{Request{Type: TypeGet, Path: "2026//12/05/20261205T105300.123Z_0001.mp4"}, CodeBadPath},
		{Request{Type: TypeGet, Path: "index.jsonl"}, CodeBadPath},
		{Request{Type: TypeGet, Path: "2026/12/05/20261205T105300.123Z_0009.mp4"}, CodeNotFound},
		{Request{Type: TypeGet, Path: segB}, CodeBadPath},    // a symlink
		{Request{Type: TypeGet, Path: viaDir}, CodeNotFound}, // through a symlinked directory out of the root
		{Request{Type: TypeGet, Path: segA, Offset: 100}, CodeRange},
		{Request{Type: TypeGet, Path: segA, Offset: 2, Length: 100}, CodeRange},
		{Request{Type: TypePlay, Path: segA}, CodeUnplayable},
		{Request{Type: "delete", Path: segA}, CodeBadRequest},
		{Request{Type: TypeGet}, CodeBadRequest},
		{Request{Type: TypeGet, Path: strings.Repeat("a/", 150)}, CodeBadRequest},
	} {
		var replies []map[string]any
		var data []byte
		var err error
		if tc.code == CodeBadRequest {
			// Unreadable requests are answered with id 0: read the channel's next reply.
			replies, data, err = raw0(t, c, tc.r)
		} else {
			replies, data, err = raw(t, c, tc.r)
		}
		var er ErrorReply
		if !errors.As(err, &er) || er.Code != tc.code || len(data) != 0 {
			t.Errorf("%+v: %v, %v (%d bytes); want %s", tc.r, replies, err, len(data), tc.code)
		}
	}
}

// raw0 sends r as it is (id included) and waits for the reply with id 0.
func raw0(t testing.TB, c *Client, r Request) ([]map[string]any, []byte, error) {
	t.Helper()
	c.mu.Lock()
	cl := &call{msgs: make(chan webrtcMessage, 16), done: make(chan struct{})}
	c.calls[0] = cl
	c.mu.Unlock()
	defer c.finish(0, cl)
	b := []byte(`{"type":"` + r.Type + `","id":99,"path":"` + r.Path + `"}`)
	if r.Type == TypeGet && r.Path == "" {
		b = []byte(`{"type":"get","id":99}`)
	}
	if err := c.dc.SendText(string(b)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.recv(ctx, cl)
	return nil, nil, err
}

func TestPlayFromATime(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	clip := testMP4(t)
	cat.add(t, segA, clip)
	c, _ := pair(t, NewServer(cat, Limits{}))
	frags, err := mp4.ReadFragments(bytes.NewReader(clip), int64(len(clip)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at, want int64 // ms
	}{{0, 0}, {5500, 5000}, {9999, 9000}, {60000, 9000}} {
		replies, data, err := raw(t, c, Request{Type: TypePlay, Path: segA, TimeMS: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		head := replies[0]
		if head["type"] != TypePlay || head["mime"] != `video/mp4; codecs="avc1.4d400c"` || int64(head["start_ms"].(float64)) != tc.want ||
			int64(head["duration_ms"].(float64)) != 10000 {
			t.Fatalf("play at %d ms: %v", tc.at, head)
		}
		// The bytes are the init segment and the fragments from the one picked: a file of
		// its own that the reader takes, starting at the time wanted.
		got, err := mp4.ReadFragments(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("play at %d ms: %v", tc.at, err)
		}
		if got[0].Tracks[0].Start().Milliseconds() != tc.want || !got[0].Tracks[0].FirstSync || got[len(got)-1].Tracks[0].End() != frags[len(frags)-1].Tracks[0].End() {
			t.Fatalf("play at %d ms: first fragment %+v", tc.at, got[0])
		}
		if int64(len(data)) != int64(head["length"].(float64)) {
			t.Fatalf("play: %d bytes, %v announced", len(data), head["length"])
		}
	}
}

// fakeConn is a channel whose send buffer drains at the test's pace.
type fakeConn struct {
	mu       sync.Mutex
	buffered uint64
	max      uint64
	texts    []string
	low      *pulse
	lowAt    uint64
}

func (f *fakeConn) Send(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buffered += uint64(len(b))
	f.max = max(f.max, f.buffered)
	return nil
}

func (f *fakeConn) SendText(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.texts = append(f.texts, s)
	return nil
}

func (f *fakeConn) BufferedAmount() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buffered
}

// drain takes n bytes out of the buffer, firing the low event as a data channel does.
func (f *fakeConn) drain(n uint64) {
	f.mu.Lock()
	was := f.buffered
	f.buffered -= min(n, f.buffered)
	fire := was > f.lowAt && f.buffered <= f.lowAt
	f.mu.Unlock()
	if fire {
		f.low.fire()
	}
}

func (f *fakeConn) replies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.texts...)
}

func text(s string) webrtcMessage { return webrtcMessage{IsString: true, Data: []byte(s)} }

// TestSlowReaderBoundsTheBuffer: a viewer that reads slowly holds the device's send buffer
// at the high-water mark plus a chunk, not at the file's size.
func TestSlowReaderBoundsTheBuffer(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	cat.add(t, segA, randomBytes(t, 8<<20))
	lim := Limits{HighWater: 256 << 10, LowWater: 64 << 10}
	srv := NewServer(cat, lim)
	fc := &fakeConn{low: &pulse{}, lowAt: srv.lim.LowWater}
	msgs := make(chan webrtcMessage, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, fc, fc.low, msgs) }()
	msgs <- text(`{"type":"get","id":1,"path":"` + segA + `"}`)
	for !strings.Contains(strings.Join(fc.replies(), ""), `"type":"end"`) {
		if ctx.Err() != nil {
			t.Fatal("the transfer did not end")
		}
		fc.drain(16 << 10) // a slow reader: 16 KiB at a time
		time.Sleep(100 * time.Microsecond)
	}
	if bound := srv.lim.HighWater + uint64(ChunkHeader+srv.lim.Chunk); fc.max > bound {
		t.Fatalf("the send buffer reached %d bytes (bound %d)", fc.max, bound)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSlowReaderMemory: over a real channel, a reader slower than the device keeps the
// device's memory flat: what waits is bounded by the high-water mark (and SCTP's window), so
// the live heap late in the transfer is what it was early on, not a share of the file.
func TestSlowReaderMemory(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	data := randomBytes(t, 24<<20)
	cat.add(t, segA, data)
	c, _ := pair(t, NewServer(cat, Limits{}))
	var early, late uint64
	got, writes := 0, 0
	w := writerFunc(func(b []byte) (int, error) {
		time.Sleep(time.Millisecond) // slower than the device
		got += len(b)
		if writes++; writes%16 == 0 {
			// The live heap, not the garbage the collector has not reached yet: HeapAlloc
			// after a collection (HeapInuse counts whole spans, and swung by 5 MiB between
			// runs under -race: a false failure in CI).
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			switch {
			case got < len(data)/4:
				early = max(early, m.HeapAlloc)
			case got > len(data)/2:
				late = max(late, m.HeapAlloc)
			}
		}
		return len(b), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Get(ctx, segA, 0, w, nil, nil)
	if err != nil || res.SHA256 != sum(data) {
		t.Fatal(err)
	}
	grew := int64(late) - int64(early)
	t.Logf("live heap: %.1f MiB in the first quarter, %.1f MiB in the second half of a %d MiB transfer",
		float64(early)/(1<<20), float64(late)/(1<<20), len(data)>>20)
	if grew > 4<<20 {
		t.Fatalf("the heap grew by %d bytes while a slow reader fetched %d bytes", grew, len(data))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestLimits(t *testing.T) {
	cat := &fakeCatalog{dir: t.TempDir()}
	cat.add(t, segA, randomBytes(t, 1<<20))
	srv := NewServer(cat, Limits{MaxTransfers: 2, HighWater: 1, Rate: 1, Burst: 6, MaxErrors: 5, ErrorWindow: time.Minute})
	fc := &fakeConn{low: &pulse{}}
	msgs := make(chan webrtcMessage, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, fc, fc.low, msgs) }()
	// Nobody drains: the first two gets stall on the buffer, the third is busy.
	for id := 1; id <= 3; id++ {
		msgs <- text(`{"type":"get","id":` + string(rune('0'+id)) + `,"path":"` + segA + `"}`)
	}
	waitFor(t, fc, `"id":3,"code":"busy"`)
	msgs <- text(`{"type":"cancel","id":1}`)
	waitFor(t, fc, `"id":1,"code":"canceled"`)
	msgs <- text(strings.Repeat(" ", MaxRequestBytes+1))
	waitFor(t, fc, `request too large`)
	// Burst 6 taken (3 gets, cancel, the long one, this): now rate-limited, then too many refusals.
	msgs <- text(`{"type":"list","id":7}`)
	for i := 0; i < 5; i++ {
		msgs <- text(`{"type":"list","id":8}`)
	}
	waitFor(t, fc, `"id":8,"code":"rate_limited"`)
	select {
	case err := <-done:
		if !errors.Is(err, errTooManyErrors) {
			t.Fatalf("serve ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("too many refusals did not close the channel")
	}
}

func waitFor(t *testing.T, fc *fakeConn, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.Join(fc.replies(), "\n"), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no reply with %s in %q", s, fc.replies())
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkGet fetches a 32 MiB file over a loopback channel, device and viewer in this
// process (the CLI's figure, two processes, is in docs/performance.md).
func BenchmarkGet(b *testing.B) {
	cat := &fakeCatalog{dir: b.TempDir()}
	cat.add(b, segA, randomBytes(b, 32<<20))
	c, _ := pair(b, NewServer(cat, Limits{}))
	b.SetBytes(32 << 20)
	for b.Loop() {
		if _, err := c.Get(context.Background(), segA, 0, io.Discard, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
