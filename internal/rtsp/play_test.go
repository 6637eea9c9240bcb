package rtsp_test

import (
	"context"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/rtsp"
	"github.com/p2pcast/p2pcast/internal/rtsp/rtsptest"
)

func TestSmoke(t *testing.T) {
	srv := rtsptest.Start(t, rtsptest.Options{Video: "h264", Audio: "pcma"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rtsp.Dial(ctx, srv.URL, rtsp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("tracks %+v skipped %v", c.Tracks(), c.Skipped())
	for i := 0; i < 100; i++ {
		u, err := c.ReadUnit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("track %d len %d key %v time %v rtp %d", u.Track, len(u.Data), u.Keyframe, u.Time.Format("15:04:05.000"), u.RTPTime)
	}
	t.Logf("%+v", c.Stats())
}
