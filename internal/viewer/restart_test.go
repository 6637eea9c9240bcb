package viewer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/p2pcast/p2pcast/internal/logtest"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// restartingHub relays one viewer to a real device's /ws, like fakeHub, but goes away at the
// worst moment for the viewer: right after the viewer's answer, before the device has it. So
// the viewer's peer connection is certainly not connected yet when it learns that the hub is
// gone (the device cannot start ICE or DTLS without the answer). The device still gets the
// answer (its own link to the real hub would survive, as would the session on it), and its
// socket stays open until the test ends.
type restartingHub struct {
	srv    *httptest.Server
	device string
	notice bool          // send {"type":"error","code":"shutdown"} before closing
	done   chan struct{} // closed at the end of the test
}

func newRestartingHub(t *testing.T, d testDevice, notice bool) *restartingHub {
	t.Helper()
	h := &restartingHub{device: d.ws(), notice: notice, done: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(h.done) }) // before srv.Close: cleanups run last-in first-out
	return h
}

func (h *restartingHub) serve(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	if _, _, err := c.ReadMessage(); err != nil { // auth
		return
	}
	dc, _, err := websocket.DefaultDialer.Dial(h.device, nil)
	if err != nil {
		return
	}
	defer dc.Close()
	var wmu sync.Mutex // one writer to the viewer at a time (gorilla)
	write := func(data []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return c.WriteMessage(websocket.TextMessage, data)
	}
	// The device's UDP candidates reach the viewer before the hub goes away (in the offer or
	// trickled): with them its checks reach the device, which learns the viewer's address
	// from them (peer-reflexive), and ICE needs no more signaling.
	udp := make(chan struct{})
	go func() {
		seen := false
		for {
			_, data, err := dc.ReadMessage()
			if err != nil {
				return
			}
			if write(data) != nil {
				continue // the viewer's socket is gone; keep draining the device
			}
			if !seen && strings.Contains(strings.ToLower(string(data)), " udp ") {
				seen = true
				close(udp)
			}
		}
	}()
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		var m typeMsg
		_ = json.Unmarshal(data, &m)
		if m.Type == "answer" {
			select {
			case <-udp:
			case <-h.done:
				return
			}
			if h.notice {
				b, _ := json.Marshal(map[string]string{"type": "error", "code": wire.CodeShutdown, "message": "the hub is restarting"})
				_ = write(b)
			}
			c.Close() // the hub process is gone: no close frame
			if dc.WriteMessage(websocket.TextMessage, data) != nil {
				return
			}
			<-h.done
			return
		}
		if dc.WriteMessage(websocket.TextMessage, data) != nil {
			return
		}
	}
}

// A hub restart while the viewer's connection is still coming up does not end the watch:
// once the offer is answered the media needs no signaling (TestHubRestart in test/nat met
// this: `p2pcast view` exited with "the hub is restarting").
func TestHubGoesAwayBeforeConnected(t *testing.T) {
	d := startDevice(t)
	for _, tc := range []struct {
		name   string
		notice bool
	}{{"shutdown then close", true}, {"socket closed", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRestartingHub(t, d, tc.notice)
			var logs logtest.Buffer
			res, err := Watch(testContext(t), Options{HubURL: "ws" + strings.TrimPrefix(h.srv.URL, "http"), Device: "cam1",
				Token: testToken, Frames: 10, Logger: logs.Logger()})
			if err != nil {
				t.Fatalf("watch: %v\n%s", err, logs.String())
			}
			checkWatched(t, res, 10, "hub")
			if !contains(logs.String(), "signaling lost") {
				t.Errorf("the hub did not go away before the media came up:\n%s", logs.String())
			}
		})
	}
}
