package device

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/viewer"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Every viewer hears of its path on the events channel, whichever side offered: the
// device's estimate from the viewer's transport-wide feedback, and the rendition it gets.
func TestViewersHearOfTheirPath(t *testing.T) {
	r, d := startDevice(t)
	v2Producer(t, r.SocketPath, helloVideo)
	waitTracks(t, d, 1)
	for _, tc := range []struct{ name, whep, ws string }{
		{"viewer offers (WHEP)", strings.TrimSuffix(r.URL, "/") + "/whep", ""},
		{"device offers (WebSocket)", "", "ws" + strings.TrimPrefix(strings.TrimSuffix(r.URL, "/"), "http") + "/ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := viewer.Watch(ctx, viewer.Options{WHEPURL: tc.whep, WSURL: tc.ws, Duration: 2500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			n := res.Network
			if n == nil {
				t.Fatalf("no network report in %.1f s (%d frames)", res.DurationS, res.Frames)
			}
			t.Logf("report: %+v", *n)
			if n.Type != wire.TypeNetwork || n.Rendition.Track != helloVideo.Track || n.Rendition.Width != int(helloVideo.Width) {
				t.Errorf("report %+v, want the rendition of track %d, %d wide", *n, helloVideo.Track, helloVideo.Width)
			}
			if n.EstimateBPS <= 0 {
				t.Errorf("estimate %d: the viewer's transport-wide feedback did not reach the device", n.EstimateBPS)
			}
		})
	}
}
