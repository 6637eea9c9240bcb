package device

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/lifecycle"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/webhook"
	"github.com/p2pcast/p2pcast/internal/wire"
)

// Detection events (docs/motion.md): the producer's EVENTs and detector processes' JSON lines
// are published on the device's event.Bus; every viewer's events channel, GET /api/events and
// the webhook read it.

// eventsKeep is how many recent events the device keeps for readers that come later.
const eventsKeep = 100

// Limits on what a producer or a detector process may hold open, and say.
const (
	maxOpenEvents     = 32
	maxDetectorLine   = 4 << 10
	maxDetectorConns  = 4
	forwardRetryFirst = 50 * time.Millisecond
	forwardRetryMax   = time.Second
)

// errBadDetector: a detector process sent a line that is not an event, or too much.
var errBadDetector = errors.New("device: bad detector input")

// Motion is motion detection in the device's own producer (p2pcast-capture --motion).
type Motion struct {
	Enabled bool
	// Sensitivity is 1 (large, strong changes only) to 100 (the slightest); 0 is the
	// producer's default (50).
	Sensitivity int
	// Mask holds regions to ignore, "x,y,w,h;..." in shares of the picture.
	Mask string
	// MinDuration of motion starts an event, Hold without motion ends it; 0: the producer's
	// defaults (500 ms, 2 s).
	MinDuration, Hold time.Duration
	// FPS is how many pictures a second are analysed at most; 0: the producer's default (10).
	FPS int
}

// Webhook is where events are POSTed.
type Webhook struct {
	URL string
	// Insecure allows http:// to a host that is not loopback.
	Insecure bool
}

var (
	maskRe   = regexp.MustCompile(`^[0-9.]+,[0-9.]+,[0-9.]+,[0-9.]+(;[0-9.]+,[0-9.]+,[0-9.]+,[0-9.]+)*$`)
	objectRe = regexp.MustCompile(`^(on|off)=[0-9]+(\.[0-9]+)?(ms|s),(on|off)=[0-9]+(\.[0-9]+)?(ms|s)$`)
)

// validateEvents checks the motion, pattern object, webhook and detector settings.
func (c Config) validateEvents() []error {
	var errs []error
	m := c.Motion
	tuned := m.Sensitivity != 0 || m.Mask != "" || m.MinDuration != 0 || m.Hold != 0 || m.FPS != 0
	switch {
	case m.Enabled && !c.ownProducer():
		errs = append(errs, fmt.Errorf("motion: detection runs in the device's own producer (testpattern, wayland, v4l2), not for the %s source "+
			"(a socket producer detects itself: p2pcast-capture --motion; an RTSP camera's pictures arrive encoded)", c.sourceLabel()))
	case tuned && !m.Enabled:
		errs = append(errs, errors.New("motion-sensitivity, -mask, -min-duration, -hold, -fps: need motion"))
	}
	if m.Sensitivity < 0 || m.Sensitivity > 100 {
		errs = append(errs, fmt.Errorf("motion sensitivity %d: want 1 to 100", m.Sensitivity))
	}
	if m.FPS < 0 || m.FPS > 60 {
		errs = append(errs, fmt.Errorf("motion fps %d: want 1 to 60", m.FPS))
	}
	for _, d := range []time.Duration{m.MinDuration, m.Hold} {
		if d < 0 || d > time.Hour {
			errs = append(errs, fmt.Errorf("motion duration %s: want 0 to 1h", d))
		}
	}
	if m.Mask != "" {
		if err := checkMask(m.Mask); err != nil {
			errs = append(errs, err)
		}
	}
	if c.PatternObject != "" {
		if c.Source != "testpattern" {
			errs = append(errs, errors.New("pattern-object: only the test pattern draws one"))
		} else if !objectRe.MatchString(c.PatternObject) || !strings.Contains(c.PatternObject, "on=") || !strings.Contains(c.PatternObject, "off=") {
			errs = append(errs, fmt.Errorf("pattern-object %q: want on=DUR,off=DUR such as on=2s,off=3s", c.PatternObject))
		}
	}
	if c.Webhook.URL == "" && c.Webhook.Insecure {
		errs = append(errs, errors.New("webhook-insecure: needs webhook"))
	}
	if c.Webhook.URL != "" {
		if _, err := webhook.New(webhook.Config{URL: c.Webhook.URL, Insecure: c.Webhook.Insecure}, slog.New(slog.DiscardHandler)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checkMask checks a motion mask as the producer will (capture/motion.c).
func checkMask(mask string) error {
	if !maskRe.MatchString(mask) || strings.Count(mask, ";") >= 16 {
		return fmt.Errorf("motion mask %q: want up to 16 boxes x,y,w,h in shares of the picture, separated by ';'", mask)
	}
	for box := range strings.SplitSeq(mask, ";") {
		var v [4]float64
		for i, f := range strings.Split(box, ",") {
			x, err := strconv.ParseFloat(f, 64)
			if err != nil || x < 0 || x > 1 {
				return fmt.Errorf("motion mask %q: %q is not a share (0 to 1)", mask, f)
			}
			v[i] = x
		}
		if v[2] <= 0 || v[3] <= 0 || v[0]+v[2] > 1.0000001 || v[1]+v[3] > 1.0000001 {
			return fmt.Errorf("motion mask %q: box %s is empty or leaves the picture", mask, box)
		}
	}
	return nil
}

// motionArgs are the producer's arguments for Motion and PatternObject.
func (c Config) motionArgs() []string {
	var args []string
	if c.PatternObject != "" {
		args = append(args, "--pattern-object", c.PatternObject)
	}
	m := c.Motion
	if !m.Enabled {
		return args
	}
	args = append(args, "--motion")
	if m.Sensitivity != 0 {
		args = append(args, "--motion-sensitivity", strconv.Itoa(m.Sensitivity))
	}
	if m.Mask != "" {
		args = append(args, "--motion-mask", m.Mask)
	}
	if m.MinDuration != 0 {
		args = append(args, "--motion-min-duration", strconv.FormatInt(m.MinDuration.Milliseconds(), 10)+"ms")
	}
	if m.Hold != 0 {
		args = append(args, "--motion-hold", strconv.FormatInt(m.Hold.Milliseconds(), 10)+"ms")
	}
	if m.FPS != 0 {
		args = append(args, "--motion-fps", strconv.Itoa(m.FPS))
	}
	return args
}

// Events is the device's event bus: the recorder and tests subscribe to it.
func (d *Device) Events() *event.Bus { return d.events }

// publishEvent hands one event edge to every reader.
func (d *Device) publishEvent(e event.Event) {
	if e.Open() {
		d.log.Info("event started", "id", e.ID, "kind", e.Kind, "detector", e.Detector, "score", e.Score)
	} else {
		d.log.Info("event ended", "id", e.ID, "kind", e.Kind, "detector", e.Detector, "duration", e.End.Sub(e.Start).Round(time.Millisecond), "score", e.Score)
	}
	d.events.Publish(e)
	if d.webhook != nil {
		d.webhook.Send(e)
	}
}

// producerEvents takes one producer connection's EVENTs and ends, when the connection does,
// the events it left open.
type producerEvents struct {
	src     *source
	publish func(event.Event) // nil: dropped
	open    map[string]event.Event
}

func (p *producerEvents) take(m ipc.Message) error {
	pe, err := ipc.ParseEvent(m)
	if err != nil {
		return err
	}
	if !p.src.events[pe.Track] {
		return fmt.Errorf("%w: EVENT about track %d, whose HELLO did not announce events", ipc.ErrBadEvent, pe.Track)
	}
	e := pe.Event("")
	if p.open == nil {
		p.open = map[string]event.Event{}
	}
	if e.Open() {
		if _, known := p.open[e.ID]; !known && len(p.open) >= maxOpenEvents {
			return fmt.Errorf("%w: more than %d events open at once", ipc.ErrBadEvent, maxOpenEvents)
		}
		p.open[e.ID] = e
	} else {
		delete(p.open, e.ID)
	}
	if p.publish != nil {
		p.publish(e)
	}
	return nil
}

// endOpen ends the open events now: their producer is gone.
func (p *producerEvents) endOpen() {
	for _, e := range p.open {
		e.End = time.Now().UTC()
		if e.End.Before(e.Start) {
			e.End = e.Start
		}
		if p.publish != nil {
			p.publish(e)
		}
	}
	p.open = nil
}

// eventsAPI serves the recent events (GET /api/events), oldest first, each as last published.
func (d *Device) eventsAPI(w http.ResponseWriter, r *http.Request) {
	if !d.allowed(w, r, auth.GrantView) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Events []event.Event `json:"events"`
	}{d.events.Recent()})
}

// forwardEvents sends a session's viewer the recent events once its events channel is open,
// then each new edge, until the session ends. A message the channel does not take (not open
// yet, or its buffer full) is tried again with backoff; an end replaces its start while both
// wait, and at most eventsKeep wait.
func (d *Device) forwardEvents(s *peer.Session) {
	sub := d.events.Subscribe(eventsKeep)
	defer sub.Close()
	pending := d.events.Recent() // after subscribing: none is missed (a repeat only replaces)
	wait := forwardRetryFirst
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		for len(pending) > 0 {
			b, err := json.Marshal(wire.Event{Type: wire.TypeEvent, Event: pending[0]})
			if err == nil && !s.SendEvent(b) {
				break
			}
			pending, wait = pending[1:], forwardRetryFirst
		}
		var again <-chan time.Time
		if len(pending) > 0 {
			if retry == nil {
				retry = time.NewTimer(wait)
			} else {
				retry.Reset(wait)
			}
			again, wait = retry.C, min(2*wait, forwardRetryMax)
		}
		select {
		case <-s.Done():
			return
		case e, ok := <-sub.Events():
			if !ok {
				return
			}
			pending = queueEvent(pending, e)
		case <-again:
		}
	}
}

// queueEvent adds e to the events waiting for a viewer: over its start if that still waits.
func queueEvent(pending []event.Event, e event.Event) []event.Event {
	for i := range pending {
		if pending[i].ID == e.ID {
			pending[i] = e
			return pending
		}
	}
	if len(pending) >= eventsKeep {
		pending = pending[1:]
	}
	return append(pending, e)
}

// eventComponents are the lifecycle components of events: the webhook's deliveries and the
// detector socket.
func (d *Device) eventComponents() []lifecycle.Component {
	var cs []lifecycle.Component
	if d.webhook != nil {
		cs = append(cs, lifecycle.Component{
			Name:  "webhook",
			Start: func(context.Context) error { d.log.Info("events go to a webhook", "url", d.webhook.URL()); return nil },
			Run:   func(ctx context.Context) error { d.webhook.Run(ctx); return nil },
		})
	}
	if path := d.cfg.DetectorSocket; path != "" {
		var l net.Listener
		cs = append(cs, lifecycle.Component{
			Name: "detectors",
			Start: func(context.Context) (err error) {
				l, err = listenUnix(path) // 0600: only this user's processes
				if err != nil {
					return fmt.Errorf("detector socket: %w", err)
				}
				return nil
			},
			Run:  func(ctx context.Context) error { d.serveDetectors(ctx, l); return nil },
			Stop: func(context.Context) error { os.Remove(path); return nil },
		})
	}
	return cs
}

// serveDetectors accepts detector processes until ctx ends: each writes events as JSON lines
// (event.Event), validated, at most maxDetectorLine bytes each.
func (d *Device) serveDetectors(ctx context.Context, l net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("detector socket accept failed", "err", err)
			}
			return
		}
		mu.Lock()
		full := len(conns) >= maxDetectorConns
		if !full {
			conns[c] = struct{}{}
		}
		mu.Unlock()
		if full {
			d.log.Warn("detector refused: too many connected", "limit", maxDetectorConns)
			c.Close()
			continue
		}
		wg.Go(func() {
			err := d.readDetector(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
			if err != nil && ctx.Err() == nil {
				d.log.Warn("detector dropped", "reason", err)
			}
		})
	}
}

// readDetector publishes one detector process's events until it disconnects (ending the events
// it left open) or says something wrong.
func (d *Device) readDetector(c net.Conn) error {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 1024), maxDetectorLine)
	open := map[string]event.Event{}
	defer func() {
		for _, e := range open {
			e.End = time.Now().UTC()
			if e.End.Before(e.Start) {
				e.End = e.Start
			}
			d.publishEvent(e)
		}
	}()
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var e event.Event
		dec := json.NewDecoder(strings.NewReader(string(line)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("%w: not an event: %v", errBadDetector, err)
		}
		if e.Detector == "" {
			e.Detector = "external"
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("%w: %w", errBadDetector, err)
		}
		if e.Open() {
			if _, known := open[e.ID]; !known && len(open) >= maxOpenEvents {
				return fmt.Errorf("%w: more than %d events open at once", errBadDetector, maxOpenEvents)
			}
			open[e.ID] = e
		} else {
			delete(open, e.ID)
		}
		d.publishEvent(e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: a line over %d bytes", errBadDetector, maxDetectorLine)
		}
		return err
	}
	return nil
}
