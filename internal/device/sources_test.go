package device

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/viewer"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// watchSize watches with o until 10 frames arrived and returns the decoded picture size.
func watchSize(t *testing.T, o viewer.Options) (int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o.Frames = 10
	res, err := viewer.Watch(ctx, o)
	if err != nil {
		t.Fatalf("viewer (source %q): %v", o.Source, err)
	}
	if res.Frames < 10 {
		t.Fatalf("viewer (source %q) got %+v", o.Source, res)
	}
	return res.Width, res.Height
}

// A device with two sources of different sizes (socket sources, each fed by a Go producer)
// serves each to the viewers that ask for it, over WHEP (/whep, /whep/ID), WebSocket (watch
// with source) and a hub; an unknown source is refused with a clear error.
func TestSources(t *testing.T) {
	store, hubURL, key, _ := hubFor(t, "cam1")
	r, d := startDevice(t, func(c *Config) {
		c.Sources = []SourceConfig{{ID: "side", Source: "socket"}}
		c.Hub = HubConfig{URL: hubURL, ID: "cam1", Key: key}
		c.InsecureNoAuth = true // the LAN endpoints too (loopback)
	})
	if got := r.SocketPaths["side"]; got != strings.TrimSuffix(r.SocketPath, ".sock")+"-side.sock" {
		t.Fatalf("side's socket %q (default's %q)", got, r.SocketPath)
	}
	defer feed(t, r.SocketPath)()
	c, w := producerConnSized(t, r.SocketPaths["side"], 640, 360)
	defer feedAUs(t, c, w, annexBFile(t, filepath.Join("..", "media", "testdata", "main_360p.h264")))()
	d.waitHub(t)

	whep := strings.TrimSuffix(r.URL, "/") + "/whep"
	for _, tc := range []struct {
		name string
		o    viewer.Options
		w, h int
	}{
		{"whep default", viewer.Options{WHEPURL: whep}, 1280, 720},
		{"whep main by id", viewer.Options{WHEPURL: whep + "/main"}, 1280, 720},
		{"whep side", viewer.Options{WHEPURL: viewer.WHEPSourceURL(whep, "side")}, 640, 360},
		{"ws default", viewer.Options{WSURL: wsURL(r)}, 1280, 720},
		{"ws side", viewer.Options{WSURL: wsURL(r), Source: "side"}, 640, 360},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, h := watchSize(t, tc.o); w != tc.w || h != tc.h {
				t.Fatalf("got %dx%d, want %dx%d", w, h, tc.w, tc.h)
			}
		})
	}

	t.Run("hub", func(t *testing.T) {
		tok, err := store.MintToken(auth.Claims{Devices: []string{"cam1"}, Grants: []auth.Grant{auth.GrantView},
			IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if w, h := watchSize(t, viewer.Options{HubURL: hubURL, Device: "cam1", Token: tok, Source: "side"}); w != 640 || h != 360 {
			t.Fatalf("through the hub, side: %dx%d", w, h)
		}
		if w, h := watchSize(t, viewer.Options{HubURL: hubURL, Device: "cam1", Token: tok}); w != 1280 || h != 720 {
			t.Fatalf("through the hub, default: %dx%d", w, h)
		}
		// The hub's device list names both sources, with their pictures.
		req, _ := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(hubURL, "ws")+"/api/devices", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Devices []struct {
				ID      string `json:"id"`
				Sources []struct {
					ID     string `json:"id"`
					Stream struct {
						Width int `json:"width"`
					} `json:"stream"`
				} `json:"sources"`
			} `json:"devices"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Devices) != 1 {
			t.Fatalf("/api/devices: %+v (%v)", list, err)
		}
		src := list.Devices[0].Sources
		if len(src) != 2 || src[0].ID != "main" || src[1].ID != "side" || src[0].Stream.Width != 1280 || src[1].Stream.Width != 640 {
			t.Fatalf("/api/devices sources: %+v", src)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		resp, err := http.Post(whep+"/nope", "application/sdp", strings.NewReader(offerSDP(t)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("WHEP to an unknown source: %s", resp.Status)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := viewer.Watch(ctx, viewer.Options{WHEPURL: whep + "/nope", Frames: 1}); !errors.Is(err, viewer.ErrUnknownSource) {
			t.Fatalf("WHEP viewer of an unknown source: %v", err)
		}
		_, err = viewer.Watch(ctx, viewer.Options{WSURL: wsURL(r), Source: "nope", Frames: 1})
		var se *viewer.SignalError
		if !errors.As(err, &se) || se.Code != wire.CodeUnknownSource {
			t.Fatalf("watch of an unknown source: %v", err)
		}
	})

	t.Run("status", func(t *testing.T) {
		resp, err := http.Get(r.URL + "api/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		if len(st.Sources) != 2 || st.Sources[1].ID != "side" || st.Sources[1].Stream == nil || st.Sources[1].Stream.Width != 640 ||
			st.Sources[1].Stats.Frames == 0 {
			t.Fatalf("/api/status sources: %+v", st.Sources)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		code, body := scrape(t, r, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		for _, series := range []string{`p2pcast_source_attached{source="side"}`, `p2pcast_source_frames_total{source="main"}`} {
			if v, ok := sample(body, series); !ok || v == 0 {
				t.Errorf("%s: %v %v", series, v, ok)
			}
		}
	})

	t.Run("hello", func(t *testing.T) {
		c, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var hello struct {
			Type    string `json:"type"`
			Sources []struct {
				ID, Description string
				Default         bool
			} `json:"sources"`
		}
		if err := c.ReadJSON(&hello); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range hello.Sources {
			ids = append(ids, s.ID)
		}
		if hello.Type != wire.TypeHello || !slices.Equal(ids, []string{"main", "side"}) || !hello.Sources[0].Default ||
			hello.Sources[1].Description != "socket" {
			t.Fatalf("hello: %+v", hello)
		}
	})
}

// A single-source device's hello lists no sources (as before), and its events keep no source.
func TestSingleSourceHelloUnchanged(t *testing.T) {
	r, _ := startDevice(t)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(r), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hello map[string]json.RawMessage
	if err := c.ReadJSON(&hello); err != nil {
		t.Fatal(err)
	}
	if _, ok := hello["sources"]; ok {
		t.Fatalf("single-source hello lists sources: %s", hello["sources"])
	}
}

func TestSourceSpecs(t *testing.T) {
	var l SourceList
	if err := l.Set("cam2=rtsp://cam/stream,desk=wayland;fps=30"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("side=testpattern;size=640x360;bitrate=500k"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("usb=v4l2:/dev/video2"); err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "cam2=rtsp://cam/stream,desk=wayland;fps=30,side=testpattern;size=640x360;bitrate=500k,usb=v4l2:/dev/video2"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if l[3].Camera != "/dev/video2" || l[2].Size != (Size{640, 360}) || l[2].Bitrate != 500_000 {
		t.Fatalf("parsed %+v", l)
	}
	for _, bad := range []string{"noequals", "Bad=testpattern", "x=testpattern;size=1", "x=testpattern;colour=red", "x=testpattern;fps=0"} {
		var l SourceList
		if err := l.Set(bad); !errors.Is(err, ErrSourceSpec) {
			t.Errorf("%q: %v", bad, err)
		}
	}

	cfg := Defaults()
	cfg.Sources = []SourceConfig{{ID: "side", Source: "testpattern", Size: Size{640, 360}}, {ID: "side", Source: "socket"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"side" given twice`) {
		t.Errorf("duplicate ids: %v", err)
	}
	cfg.Sources = []SourceConfig{{ID: "main", Source: "socket"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"main" given twice`) {
		t.Errorf("an extra source with the default's id: %v", err)
	}
	cfg.Sources = []SourceConfig{{ID: "x", Source: "floppy"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "source x:") {
		t.Errorf("a bad extra source: %v", err)
	}
	cfg.Source = "wayland"
	cfg.Sources = []SourceConfig{{ID: "desk2", Source: "wayland"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "at most one wayland") {
		t.Errorf("two desktops: %v", err)
	}

	// Beside a desktop (its own size), another source takes the usual size.
	cfg = Defaults()
	cfg.Source, cfg.Size = "wayland", Size{}
	cfg.Sources = []SourceConfig{{ID: "cam", Source: "testpattern"}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("a test pattern beside a desktop: %v", err)
	}
	if fcs := cfg.feedConfigs(); fcs[0].Size.W != 0 || fcs[1].Size != Defaults().Size {
		t.Errorf("sizes %v %v", fcs[0].Size, fcs[1].Size)
	}

	// An extra source's producer gets its own size and rates, the rest inherited.
	cfg = Defaults()
	cfg.AudioIn = "testtone"
	cfg.Record.Dir = "/rec"
	fcs := (func() Config {
		cfg.Sources = []SourceConfig{{ID: "side", Source: "testpattern", Size: Size{640, 360}, FPS: 15}}
		return cfg
	})().feedConfigs()
	args := strings.Join(producerArgs(fcs[1], nil, "/s"), " ")
	if !strings.Contains(args, "--size 640x360 --fps 15 --bitrate 2000000") || strings.Contains(args, "audio") {
		t.Errorf("side's producer: %s", args)
	}
	if fcs[0].Record.Dir != "/rec/main" || fcs[1].Record.Dir != "/rec/side" {
		t.Errorf("record dirs %q %q", fcs[0].Record.Dir, fcs[1].Record.Dir)
	}
	cfg.Sources = nil
	if fcs := cfg.feedConfigs(); len(fcs) != 1 || fcs[0].Record.Dir != "/rec" {
		t.Errorf("a single source records in DIR itself: %+v", fcs)
	}
}
