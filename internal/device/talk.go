package device

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// floorHold is how long a viewer keeps the floor after its last talk-back packet: one voice at
// a time reaches the speaker (two mixed Opus streams fed to one decoder are noise).
const floorHold = 500 * time.Millisecond

var errFloorTaken = errors.New("device: another viewer is talking")

// talkFloor is the device's talk-back sink: it lets one viewer at a time talk and sends what it
// says to the producer's audio sink (the speaker).
type talkFloor struct {
	st     *stream.Stream
	ingest *ingest
	log    *slog.Logger

	mu    sync.Mutex
	owner string    // the session talking
	last  time.Time // its last packet
}

// Sink is the current producer's audio sink (a zero Track when it has none).
func (t *talkFloor) Sink() stream.Track {
	info, ok := t.st.Info()
	if !ok {
		return stream.Track{}
	}
	sink, _ := info.Sink(codec.Audio)
	return sink
}

// TalkFrame passes one frame from session to the speaker if it holds, or can take, the floor.
func (t *talkFloor) TalkFrame(session string, payload []byte, resume bool) error {
	now := time.Now()
	t.mu.Lock()
	if t.owner != session {
		if t.owner != "" && now.Sub(t.last) < floorHold {
			t.mu.Unlock()
			return errFloorTaken
		}
		t.log.Info("talk-back: viewer has the floor", "session", session)
		t.owner = session
		resume = true // a new voice: the producer resets its decoder
	}
	t.last = now
	t.mu.Unlock()
	return t.ingest.sinkFrame(payload, resume)
}
