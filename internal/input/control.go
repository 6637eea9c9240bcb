package input

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// Error and refusal limits per viewer (docs/input.md).
const (
	maxErrors   = 20 // more than this many errors within errorWindow close the channel
	errorWindow = 10 * time.Second
	quiet       = time.Second // at most one refusal reply, and one log line of each kind, per viewer per second
)

// Control serves the "control" data channel of every session of the device: one value per
// desktop, so it is where "who is in control" lives. Only the controller's input reaches the
// Injector; the others watch, ask for control and are told who has it.
//
// One mutex orders everything: checking who is in control and injecting the input happen
// together, so a key pressed by a controller losing control cannot reach the desktop after
// the hand-over released it.
type Control struct {
	inj Injector
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	closed  bool
	floor   floor
	members map[string]*member
	seq     uint64
	// keys and buttons the controller holds down, as the desktop was told: repeats are
	// dropped, and a release works even when the injector's ReleaseAll fails.
	keys, buttons map[uint32]bool
	clip          string // the desktop's clipboard, as last reported
	echo          string // the text the controller put on the clipboard: its report is not sent back
	handovers     uint64
	injectErrs    uint64
	injectWarned  time.Time

	done chan struct{}
	wg   sync.WaitGroup
}

// NewControl makes the Control of one desktop. It owns inj: Close closes it.
func NewControl(inj Injector, cfg Config, log *slog.Logger) *Control {
	return newControl(inj, cfg, log, time.Now)
}

func newControl(inj Injector, cfg Config, log *slog.Logger, now func() time.Time) *Control {
	c := &Control{
		inj: inj, cfg: cfg.withDefaults(), log: log, now: now,
		members: map[string]*member{}, keys: map[uint32]bool{}, buttons: map[uint32]bool{},
		done: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.forwardClipboard(inj.Clipboard())
	return c
}

// Close ends control: it releases whatever the controller held, stops forwarding the
// clipboard and closes the injector. Channels still open get ErrClosed on their next message.
func (c *Control) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	if c.floor.holder != "" {
		c.releaseAll()
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	c.wg.Wait()
	return c.inj.Close()
}

// Status is the channel's state for the device's status API.
type Status struct {
	Controller   string         `json:"controller"` // viewer id; "" when nobody is in control
	Viewers      []ViewerStatus `json:"viewers"`
	Requests     []string       `json:"requests"`  // viewers waiting for control, oldest first
	Handovers    uint64         `json:"handovers"` // changes of controller
	InjectErrors uint64         `json:"inject_errors"`
}

// ViewerStatus is one viewer on the channel.
type ViewerStatus struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	TokenID string    `json:"token_id,omitempty"`
	Since   time.Time `json:"since"`
	Dropped uint64    `json:"dropped"` // messages over the rate limit
	Errors  uint64    `json:"errors"`  // messages answered with an error
	Refused uint64    `json:"refused"` // input sent while not in control
	Unsent  uint64    `json:"unsent"`  // replies that could not be sent
}

// Status reports who is in control and who is on the channel.
func (c *Control) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{
		Controller: c.floor.holder, Requests: slices.Clone(c.floor.queue),
		Handovers: c.handovers, InjectErrors: c.injectErrs,
	}
	if s.Requests == nil {
		s.Requests = []string{}
	}
	s.Viewers = make([]ViewerStatus, 0, len(c.floor.members))
	for _, id := range c.floor.members {
		m := c.members[id]
		s.Viewers = append(s.Viewers, ViewerStatus{
			ID: m.id, Name: m.name, TokenID: m.token, Since: m.since,
			Dropped: m.dropped, Errors: m.errors, Refused: m.refused, Unsent: m.unsent,
		})
	}
	return s
}

// member is one viewer's open channel.
type member struct {
	c     *Control
	id    string
	name  string // what pages show: the token id, or "local", and the id
	token string
	since time.Time
	send  func([]byte) error // must not block: replies are sent under Control's lock
	log   *slog.Logger

	// Only the member's own (sequential) handle touches the bucket.
	tokens float64
	filled time.Time

	// Under Control's lock.
	left                       bool
	errs                       []time.Time // times of the errors within errorWindow
	refusedAt, droppedAt       time.Time   // last refusal replied / drop logged
	refusedQuiet, droppedQuiet uint64      // since then
	dropped, errors, refused   uint64
	unsent                     uint64
}

// join adds a viewer whose channel just opened; send delivers a message to it and must not
// block (it is called with Control's lock held). The viewer gets the state at once, and
// control if nobody has it.
func (c *Control) join(access auth.Access, send func([]byte) error, log *slog.Logger) (*member, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if len(c.members) >= c.cfg.MaxViewers {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyViewers, c.cfg.MaxViewers)
	}
	now := c.now()
	c.seq++
	id := "v" + strconv.FormatUint(c.seq, 10)
	label := access.TokenID
	if label == "" {
		label = "local"
	}
	m := &member{
		c: c, id: id, name: label + " (" + id + ")", token: access.TokenID, since: now, send: send,
		log: log.With("viewer", id, "token", label), tokens: c.burst(), filled: now,
	}
	c.members[id] = m
	rev := c.floor.rev
	c.settle(c.floor.join(id, now), rev)
	return m, nil
}

// leave removes the viewer: its channel closed. Control it held passes on.
func (m *member) leave() {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.left {
		return
	}
	m.left = true
	rev := c.floor.rev
	t := c.floor.leave(m.id, c.now())
	if !c.closed {
		c.settle(t, rev)
	}
	delete(c.members, m.id)
}

// handle acts on one text message from the viewer. Messages of one viewer must be handled
// one at a time, in order. A non-nil error means the channel must close.
func (m *member) handle(b []byte) error { return m.receive(b, true) }

// handleBinary answers a binary message: the protocol is JSON text.
func (m *member) handleBinary(b []byte) error { return m.receive(b, false) }

func (m *member) receive(b []byte, text bool) error {
	c := m.c
	now := c.now()
	if !m.take(now) {
		c.mu.Lock()
		defer c.mu.Unlock()
		m.dropped++
		if now.Sub(m.droppedAt) >= quiet {
			m.log.Warn("control: messages over the rate limit dropped", "rate", c.cfg.Rate, "dropped", m.droppedQuiet+1, "total", m.dropped)
			m.droppedAt, m.droppedQuiet = now, 0
		} else {
			m.droppedQuiet++
		}
		return nil
	}
	var msg message
	perr := errBinary
	if text {
		msg, perr = parseMessage(b) // outside the lock: the costly part, and it reads only b
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || m.left {
		return ErrClosed
	}
	if perr != nil {
		return m.fail(now, perr)
	}
	rev := c.floor.rev
	switch msg.typ {
	case TypeRequest:
		t, notify := c.floor.request(m.id, now, c.cfg.IdleTakeover)
		if notify {
			c.sendTo(c.members[c.floor.holder], requestMsg{Type: TypeRequest, From: m.id})
		}
		c.settle(t, rev)
	case TypeHandover:
		t, err := c.floor.handover(m.id, msg.to, now)
		switch {
		case errors.Is(err, errNotInControl):
			m.refuse(now)
		case err != nil:
			return m.fail(now, err)
		}
		c.settle(t, rev)
	case TypeYield:
		c.settle(c.floor.yield(m.id, now), rev)
	case TypeRelease:
		// Pages send it on blur whether or not they are in control: no refusal.
		if c.floor.input(m.id, now) {
			c.releaseAll()
		}
	default:
		if !c.floor.input(m.id, now) {
			m.refuse(now)
			return nil
		}
		c.inject(msg)
	}
	return nil
}

// take spends one token of the viewer's bucket.
func (m *member) take(now time.Time) bool {
	rate := float64(m.c.cfg.Rate)
	if dt := now.Sub(m.filled); dt > 0 {
		m.tokens = min(m.c.burst(), m.tokens+dt.Seconds()*rate)
		m.filled = now
	}
	if m.tokens < 1 {
		return false
	}
	m.tokens--
	return true
}

func (c *Control) burst() float64 { return max(1, float64(c.cfg.Rate)/4) }

// fail answers a bad message and closes the channel of a viewer that sends too many.
func (m *member) fail(now time.Time, err error) error {
	m.errors++
	m.c.sendTo(m, errorMsg{Type: TypeError, Error: err.Error()})
	m.log.Debug("control: bad message", "err", err)
	m.errs = append(m.errs, now)
	i := 0
	for i < len(m.errs) && now.Sub(m.errs[i]) >= errorWindow {
		i++
	}
	m.errs = m.errs[i:]
	if len(m.errs) > maxErrors {
		return fmt.Errorf("%w: %d in %v", ErrTooManyErrors, len(m.errs), errorWindow)
	}
	return nil
}

// refuse tells a viewer not in control that its input went nowhere, once a second.
func (m *member) refuse(now time.Time) {
	m.refused++
	if !m.refusedAt.IsZero() && now.Sub(m.refusedAt) < quiet {
		m.refusedQuiet++
		return
	}
	m.c.sendTo(m, reasonMsg{Type: TypeRefused, Reason: errNotInControl.Error()})
	m.log.Info("control: input refused: not in control", "refused", m.refusedQuiet+1, "total", m.refused)
	m.refusedAt, m.refusedQuiet = now, 0
}

// inject gives the controller's input to the desktop.
func (c *Control) inject(msg message) {
	var err error
	switch msg.typ {
	case TypeMove:
		err = c.inj.MoveAbs(msg.x, msg.y)
	case TypeButton:
		if !press(c.buttons, msg.evdev, msg.down) {
			return
		}
		err = c.inj.Button(msg.evdev, msg.down)
	case TypeKey:
		if !press(c.keys, msg.evdev, msg.down) {
			return // auto-repeat, or a key pressed before this viewer had control
		}
		err = c.inj.Key(msg.evdev, msg.down)
	case TypeWheel:
		if msg.v120x == 0 && msg.v120y == 0 {
			return
		}
		err = c.inj.Scroll(float64(msg.v120x)*axisPerNotch/120, float64(msg.v120y)*axisPerNotch/120, msg.v120x, msg.v120y)
	case TypeText:
		if msg.text == "" {
			return
		}
		err = c.inj.Type(msg.text)
	case TypeClipboard:
		c.echo = msg.text
		err = c.inj.SetClipboard(msg.text)
	}
	if err != nil {
		c.injectFailed(msg.typ, err)
	}
}

// press records a key or button going down or up, reporting whether that is a change the
// desktop must be told of.
func press(held map[uint32]bool, code uint32, down bool) bool {
	if held[code] == down {
		return false
	}
	if down {
		held[code] = true
	} else {
		delete(held, code)
	}
	return true
}

// releaseAll lets go of everything the controller held. If the injector cannot, each key
// and button known to be down is released one by one.
func (c *Control) releaseAll() {
	if err := c.inj.ReleaseAll(); err != nil {
		c.injectFailed("release", err)
		for _, k := range slices.Sorted(maps.Keys(c.keys)) {
			_ = c.inj.Key(k, false)
		}
		for _, b := range slices.Sorted(maps.Keys(c.buttons)) {
			_ = c.inj.Button(b, false)
		}
	}
	clear(c.keys)
	clear(c.buttons)
}

func (c *Control) injectFailed(what string, err error) {
	c.injectErrs++
	if now := c.now(); now.Sub(c.injectWarned) >= quiet {
		c.log.Warn("control: the desktop refused input", "input", what, "err", err, "total", c.injectErrs)
		c.injectWarned = now
	}
}

// settle follows a rule's outcome: on a change of controller, the desktop lets go of
// everything first (no key carried over to the next controller) and the change is logged;
// then, if anything changed, every viewer gets the new state; a new controller gets the
// desktop's clipboard.
func (c *Control) settle(t transfer, rev uint64) {
	if t.changed() {
		c.releaseAll()
		c.echo = ""
		c.handovers++
		c.log.Info("control handed over", "from", c.nameOf(t.from), "to", c.nameOf(t.to), "why", t.why)
	}
	if c.floor.rev != rev {
		c.broadcast()
	}
	if t.changed() && t.to != "" && c.clip != "" {
		c.sendTo(c.members[t.to], clipboardMsg{Type: TypeClipboard, Text: c.clip})
	}
}

func (c *Control) nameOf(id string) string {
	if m := c.members[id]; m != nil {
		return m.name
	}
	return "nobody"
}

// broadcast sends the state to every viewer on the channel.
func (c *Control) broadcast() {
	now := c.now()
	st := stateMsg{
		Type: TypeState, V: Version, Controller: c.floor.holder,
		Viewers: make([]viewerInfo, 0, len(c.floor.members)), Requests: slices.Clone(c.floor.queue),
	}
	if st.Requests == nil {
		st.Requests = []string{}
	}
	for _, id := range c.floor.members {
		m := c.members[id]
		st.Viewers = append(st.Viewers, viewerInfo{ID: id, Name: m.name, Since: m.since.UnixMilli()})
	}
	if c.floor.holder != "" {
		st.IdleMs = now.Sub(c.floor.active).Milliseconds()
	}
	if c.cfg.IdleTakeover > 0 {
		st.IdleTakeoverMs = c.cfg.IdleTakeover.Milliseconds()
	}
	for _, id := range c.floor.members {
		st.You = id
		c.sendTo(c.members[id], st)
	}
}

// sendTo sends one message to a viewer, counting what cannot be sent.
func (c *Control) sendTo(m *member, v any) {
	if m == nil {
		return
	}
	if err := m.send(encode(v)); err != nil {
		m.unsent++
	}
}

// forwardClipboard gives the desktop's clipboard to the controller as it changes.
func (c *Control) forwardClipboard(clip <-chan string) {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case text, ok := <-clip:
			if !ok {
				return
			}
			c.desktopClipboard(text)
		}
	}
}

func (c *Control) desktopClipboard(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(text) > MaxClipboard || len(encode(clipboardMsg{Type: TypeClipboard, Text: text})) > MaxMessage {
		// Cut, it would not be the clipboard any more; whole, it would not fit a message
		// (escapes may make the message the longer).
		c.log.Info("control: the desktop's clipboard is too large to forward", "bytes", len(text), "max", MaxClipboard)
		c.clip = ""
		return
	}
	c.clip = text
	if text == c.echo {
		c.echo = "" // the controller's own text coming back
		return
	}
	c.sendTo(c.members[c.floor.holder], clipboardMsg{Type: TypeClipboard, Text: text})
}
