package files

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/mp4"
	"github.com/p2pcast/p2pcast/internal/record"
)

// fakeCatalog is a Catalog over a directory the test fills.
type fakeCatalog struct {
	dir     string
	mu      sync.Mutex
	entries []record.Entry
	writing string
	events  []event.Event
}

func (c *fakeCatalog) Dir() string { return c.dir }
func (c *fakeCatalog) Segments() []record.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]record.Entry(nil), c.entries...)
}
func (c *fakeCatalog) Writing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing == "" {
		return nil
	}
	return []string{c.writing}
}
func (c *fakeCatalog) Events() []event.Event { return c.events }

func (c *fakeCatalog) add(t testing.TB, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(c.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.entries = append(c.entries, record.Entry{Path: rel, Start: time.Date(2026, 12, 5, 10, 53, 0, 0, time.UTC), Bytes: int64(len(data)), Tracks: []string{"H264"}})
	c.mu.Unlock()
}

// testMP4 is the testdata clip (10 s, 15 fps, a keyframe a second) as a fragmented MP4
// written by internal/mp4, as the recorder writes its segments.
func testMP4(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open("testdata/testsrc_10s.h264")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	w, err := mp4.NewWriter(&out, []mp4.Track{{Codec: mp4.H264, SampleDuration: time.Second / 15}}, mp4.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := media.NewAUReader(f, 0)
	for i := 0; ; i++ {
		au, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteSample(0, mp4.Sample{Data: au, Time: time.Duration(i) * time.Second / 15, Keyframe: media.IsKeyframe(au)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// pair connects a viewer's PeerConnection to a device's on loopback and serves the device
// side's files channel with srv; it returns the viewer's client.
func pair(t testing.TB, srv *Server) (*Client, *webrtc.PeerConnection) {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	dev, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	view, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = view.Close()
		_ = dev.Close()
		wg.Wait()
	})
	dev.OnDataChannel(func(dc *webrtc.DataChannel) {
		msgs := make(chan webrtc.DataChannelMessage, 64)
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case msgs <- m:
			case <-ctx.Done():
			}
		})
		dc.OnOpen(func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.Serve(ctx, dc, msgs, auth.FullAccess(), discard())
			}()
		})
	})
	dc, err := view.CreateDataChannel(Label, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(dc)
	offer, err := view.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(view)
	if err := view.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := dev.SetRemoteDescription(*view.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := dev.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done = webrtc.GatheringCompletePromise(dev)
	if err := dev.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := view.SetRemoteDescription(*dev.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	if _, err := c.Hello(hctx); err != nil {
		t.Fatal(err)
	}
	return c, view
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// raw sends r and collects its replies until end or error: the text replies decoded as
// generic maps, the chunks' data concatenated.
func raw(t testing.TB, c *Client, r Request) (replies []map[string]any, data []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, id, err := c.start(r)
	if err != nil {
		return nil, nil, err
	}
	defer c.finish(id, cl)
	for {
		m, err := c.recv(ctx, cl)
		if err != nil {
			return replies, data, err
		}
		if !m.IsString {
			_, _, d, err := ParseChunk(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, d...)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		replies = append(replies, v)
		if v["type"] == TypeEnd || (v["type"] == TypeList && v["more"] != true) {
			return replies, data, nil
		}
	}
}

type webrtcMessage = webrtc.DataChannelMessage
