package viewer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/files"
	"github.com/p2pcast/p2pcast/internal/record"
)

// TestFilesOfSeveralSources: on a device of two sources one files channel lists both
// sources' recordings, each under its id as on disk (DIR/<id>/…), and fetches either.
func TestFilesOfSeveralSources(t *testing.T) {
	dir := t.TempDir()
	d := startDeviceWith(t, func(c *device.Config) {
		c.Sources = []device.SourceConfig{{ID: "side", Source: "socket"}}
		c.Record = record.Options{Dir: dir, Segment: time.Second, MinFree: 1}
	})
	ctx := testContext(t)
	s, err := OpenData(ctx, Options{WSURL: d.ws(), Source: "side"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := filesClient(ctx, t, s)
	closed := map[string]files.Recording{} // the first closed segment of each source
	for len(closed) < 2 {
		recs, _, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if !strings.HasPrefix(r.Path, r.Source+"/") || (r.Source != "main" && r.Source != "side") {
				t.Fatalf("a recording of source %q at %q", r.Source, r.Path)
			}
			if _, ok := closed[r.Source]; !ok && !r.Writing {
				closed[r.Source] = r
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not a closed segment of each source: %+v", recs)
		case <-time.After(200 * time.Millisecond): // no event tells a segment closed
		}
	}
	for _, r := range closed {
		var got bytes.Buffer
		if _, err := c.Get(ctx, r.Path, 0, &got, nil, nil); err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(r.Path)))
		if err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s: fetched %d bytes, the file has %d (%v)", r.Path, got.Len(), len(want), err)
		}
	}
}

// TestOpenDataFetchesARecording: a data session gets no media, and its files channel lists
// the device's recordings and fetches one byte for byte.
func TestOpenDataFetchesARecording(t *testing.T) {
	dir := t.TempDir()
	d := startDeviceWith(t, func(c *device.Config) {
		c.Record = record.Options{Dir: dir, Segment: time.Second, MinFree: 1}
	})
	ctx := testContext(t)
	s, err := OpenData(ctx, Options{WSURL: d.ws()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tracks := make(chan *webrtc.TrackRemote, 4)
	s.PeerConnection().OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	c := filesClient(ctx, t, s)
	var recs []files.Recording
	for {
		if recs, _, err = c.List(ctx); err != nil {
			t.Fatal(err)
		}
		if len(recs) > 0 && !recs[0].Writing {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no closed segment: %+v", recs)
		case <-time.After(200 * time.Millisecond): // no event tells a segment closed
		}
	}
	var got bytes.Buffer
	res, err := c.Get(ctx, recs[0].Path, 0, &got, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(recs[0].Path)))
	if err != nil || !bytes.Equal(got.Bytes(), want) || res.Size != int64(len(want)) {
		t.Fatalf("fetched %d bytes, the file has %d (%v)", got.Len(), len(want), err)
	}
	select {
	case tr := <-tracks:
		t.Fatalf("a data session received a %s track", tr.Kind())
	default:
	}
	for _, st := range s.PeerConnection().GetStats() {
		if in, ok := st.(webrtc.InboundRTPStreamStats); ok && in.PacketsReceived > 0 {
			t.Fatalf("media arrived: %+v", in)
		}
	}
}

// filesClient opens the files channel on s and waits for its hello.
func filesClient(ctx context.Context, t *testing.T, s *DataSession) *files.Client {
	t.Helper()
	dc, err := s.PeerConnection().CreateDataChannel(files.Label, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := files.NewClient(dc)
	if _, err := c.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}
