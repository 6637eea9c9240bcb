package rtsp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
)

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultReadTimeout = 5 * time.Second
	defaultSession     = 60 * time.Second // RFC 2326 12.37
	maxTeardownWait    = 2 * time.Second
)

// Options tune a Conn. The zero value works.
type Options struct {
	// Username and Password, when Username is set, replace the URL's userinfo.
	Username, Password string
	// Timeout bounds each request and its answer, and connecting (default 10 s).
	Timeout time.Duration
	// ReadTimeout: ReadUnit fails with ErrTimeout when the camera sent nothing for this long
	// (default 5 s).
	ReadTimeout time.Duration
	// Select chooses the tracks to play among those the client can play; nil plays all.
	Select func(Track) bool
	// KeepDependent delivers the video units that follow a loss (or precede the first
	// keyframe). By default they are dropped until the next keyframe: they would decode
	// into a broken picture, and a camera over RTSP cannot be asked for a keyframe.
	KeepDependent bool
	// UserAgent sent with every request (default "p2pcast").
	UserAgent string
}

// Unit is one access unit (video, Annex-B) or audio frame.
type Unit struct {
	Track int // Track.Index
	// Data is valid until the next ReadUnit.
	Data []byte
	// Keyframe: a decoder can start here (H.264 IDR, H.265 IRAP; every audio frame). A
	// keyframe unit carries its parameter sets.
	Keyframe bool
	// Time is the capture time on the local clock (it carries a monotonic reading).
	Time    time.Time
	RTPTime uint32
}

// TrackStats counts what happened on one track.
type TrackStats struct {
	Packets    uint64 // RTP packets received
	Bytes      uint64 // their payload bytes
	Lost       uint64 // packets missing from the sequence
	Units      uint64 // units delivered
	Dropped    uint64 // units dropped: incomplete (loss or malformed packets) or waiting for a keyframe
	BadPackets uint64 // malformed packets, or packets of another payload type
}

// Stats counts what happened on a Conn.
type Stats struct {
	Tracks          []TrackStats
	SenderReports   uint64
	KeepAlives      uint64 // keep-alive requests sent
	KeepAliveFailed uint64 // keep-alives answered with an error status
}

type trackCounters struct {
	packets, bytes, lost, units, dropped, bad atomic.Uint64
}

// trackState is a played track's runtime state.
type trackState struct {
	rtpChannel, rtcpChannel int
	dep                     depacketizer
	video                   bool
	started                 bool
	seq                     uint16
	ssrc                    uint32
	lastTS                  uint32
	lastMarker              bool
	waitKey                 bool
	n                       trackCounters
}

// deferredPacket is a packet whose processing waits until the unit its arrival completed has
// been read (the unit lives in the depacketizer the packet goes to next).
type deferredPacket struct {
	track int
	pkt   rtpPacket
	valid bool
}

// Conn is one playing RTSP session. ReadUnit is for one goroutine at a time; Close and
// Stats may be called from any.
type Conn struct {
	opts    Options
	nc      net.Conn
	fr      *framer
	target  target
	auth    authenticator
	wbuf    bytes.Buffer
	cseq    int
	base    time.Time
	session string
	// Keep-alive.
	sessionTimeout time.Duration
	keepMethod     string
	keepURL        string
	nextKeep       time.Time
	keepCSeq       int
	keepAlives     atomic.Uint64
	keepFailed     atomic.Uint64
	reports        atomic.Uint64

	tracks    []Track
	skipped   []Skipped
	state     []*trackState
	byChannel map[int]int // interleaved channel → track index (RTP even, RTCP odd)
	clocks    *clocks
	raw       []rawUnit
	pending   []Unit
	next      int // the next pending unit
	deferred  deferredPacket
	srs       []senderReport
	lastSet   time.Time // when the read deadline was last pushed forward
	arrival   int64     // of the packet being handled, ns since base

	err error // the error that ended reading, returned again

	readMu      sync.Mutex // held by ReadUnit; Close waits for it
	mu          sync.Mutex // guards closed, interrupted and deadline changes
	closed      bool
	interrupted bool
}

// Dial connects to the camera at rawURL (rtsp://[user:pass@]host[:port]/path), and
// negotiates and starts playing every track it can play (OPTIONS, DESCRIBE, SETUP, PLAY).
// ctx bounds the whole negotiation; each request is bounded by Options.Timeout too.
func Dial(ctx context.Context, rawURL string, opts Options) (*Conn, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "p2pcast"
	}
	c := &Conn{opts: opts, target: t, base: time.Now(), byChannel: map[int]int{}}
	c.auth.user, c.auth.password = t.user, t.password
	if opts.Username != "" {
		c.auth.user, c.auth.password = opts.Username, opts.Password
	}
	dctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", hostPort(t.url))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("rtsp: connect to %s: %w", t.url.Host, err)
	}
	c.nc, c.fr = nc, newFramer(nc)
	stop := context.AfterFunc(ctx, c.interrupt)
	err = c.negotiate(ctx)
	if !stop() || err != nil {
		_ = nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rtsp: %s: %w", c.target.url, ctx.Err())
		}
		return nil, err
	}
	c.mu.Lock()
	c.interrupted = false
	_ = nc.SetDeadline(time.Time{})
	c.mu.Unlock()
	return c, nil
}

func (c *Conn) negotiate(ctx context.Context) error {
	u := c.target.url.String()
	res, err := c.do(ctx, request{method: "OPTIONS", url: u})
	switch {
	case errors.Is(err, ErrStatus): // some cameras refuse OPTIONS; DESCRIBE tells
	case err != nil:
		return err
	default:
		c.keepMethod = "OPTIONS"
		for m := range strings.SplitSeq(res.header.get("Public"), ",") {
			if strings.EqualFold(strings.TrimSpace(m), "GET_PARAMETER") {
				c.keepMethod = "GET_PARAMETER"
			}
		}
	}
	if c.keepMethod == "" {
		c.keepMethod = "OPTIONS"
	}

	res, err = c.do(ctx, request{method: "DESCRIBE", url: u, header: header{{"Accept", "application/sdp"}}})
	if err != nil {
		return err
	}
	if ct := res.header.get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/sdp") {
		return fmt.Errorf("%w: DESCRIBE answered with %q, not SDP", ErrProtocol, clip(ct))
	}
	sdp, err := parseSDP(res.body)
	if err != nil {
		return err
	}
	baseHeader := res.header.get("Content-Base")
	if baseHeader == "" {
		baseHeader = res.header.get("Content-Location")
	}
	base := resolveBase(c.target.url, baseHeader)
	all, skipped := buildTracks(sdp, base)
	c.skipped = skipped
	for _, t := range all {
		if c.opts.Select == nil || c.opts.Select(t) {
			t.Index = len(c.tracks)
			c.tracks = append(c.tracks, t)
		}
	}
	if len(c.tracks) == 0 {
		var why []string
		for _, s := range skipped {
			why = append(why, s.String())
		}
		if len(all) > 0 {
			why = append(why, "none selected")
		}
		return fmt.Errorf("%w in %s: %s", ErrNoTracks, c.target.url, strings.Join(why, "; "))
	}

	for i := range c.tracks {
		t := &c.tracks[i]
		transport := fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*i, 2*i+1)
		h := header{{"Transport", transport}}
		if c.session != "" {
			h = append(h, [2]string{"Session", c.session})
		}
		res, err := c.do(ctx, request{method: "SETUP", url: t.Control, header: h})
		if err != nil {
			var se *StatusError
			if errors.As(err, &se) && se.Code == 461 {
				return fmt.Errorf("%w (the camera refuses RTP over TCP; this client has no UDP)", err)
			}
			return err
		}
		if err := c.setSession(res.header.get("Session")); err != nil {
			return err
		}
		rtpCh, rtcpCh, err := interleavedChannels(res.header.get("Transport"), 2*i)
		if err != nil {
			return err
		}
		if err := c.addTrack(rtpCh, rtcpCh); err != nil {
			return err
		}
	}
	c.clocks = newClocks(c.tracks)

	aggregate := base
	if sdp.control != "" {
		aggregate = resolveControl(base, sdp.control)
	}
	c.keepURL = aggregate
	if _, err := c.do(ctx, request{method: "PLAY", url: aggregate, header: header{{"Session", c.session}, {"Range", "npt=0.000-"}}}); err != nil {
		return err
	}
	c.nextKeep = time.Now().Add(c.sessionTimeout / 2)
	return nil
}

// addTrack sets up the runtime state of the next track, played on these channels.
func (c *Conn) addTrack(rtpCh, rtcpCh int) error {
	for _, ch := range []int{rtpCh, rtcpCh} {
		if _, dup := c.byChannel[ch]; dup {
			return fmt.Errorf("%w: the camera gave two tracks channel %d", ErrProtocol, ch)
		}
	}
	i := len(c.state)
	t := &c.tracks[i]
	c.byChannel[rtpCh], c.byChannel[rtcpCh] = i, i
	st := &trackState{rtpChannel: rtpCh, rtcpChannel: rtcpCh, dep: newDepacketizer(t), video: t.Kind == codec.Video}
	st.waitKey = st.video && !c.opts.KeepDependent
	c.state = append(c.state, st)
	return nil
}

// setSession reads a Session header ("id;timeout=60").
func (c *Conn) setSession(v string) error {
	id, params, _ := strings.Cut(v, ";")
	id = strings.TrimSpace(id)
	if id == "" {
		if c.session == "" {
			return fmt.Errorf("%w: SETUP answered without a session", ErrProtocol)
		}
		return nil
	}
	if len(id) > 256 {
		return fmt.Errorf("%w: session id of %d bytes", ErrTooLarge, len(id))
	}
	c.session = id
	c.sessionTimeout = defaultSession
	for p := range strings.SplitSeq(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "timeout") {
			if n, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && n > 0 && n < 86400 {
				c.sessionTimeout = time.Duration(n) * time.Second
			}
		}
	}
	return nil
}

// interleavedChannels reads the channels a SETUP answer's Transport header gives ("…;
// interleaved=0-1"); asked is what was asked for, used when the camera does not say.
func interleavedChannels(transport string, asked int) (int, int, error) {
	for p := range strings.SplitSeq(transport, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(k, "interleaved") {
			continue
		}
		a, b, ok := strings.Cut(v, "-")
		x, err1 := strconv.Atoi(strings.TrimSpace(a))
		y := x + 1
		var err2 error
		if ok {
			y, err2 = strconv.Atoi(strings.TrimSpace(b))
		}
		if err1 != nil || err2 != nil || x < 0 || x > 255 || y < 0 || y > 255 || x == y {
			return 0, 0, fmt.Errorf("%w: bad interleaved channels in Transport %q", ErrProtocol, clip(transport))
		}
		return x, y, nil
	}
	if transport != "" && !strings.Contains(strings.ToUpper(transport), "TCP") {
		return 0, 0, fmt.Errorf("%w: the camera answered SETUP with transport %q, not TCP", ErrProtocol, clip(transport))
	}
	return asked, asked + 1, nil
}

// do sends a request and reads its answer (during negotiation: frames before it are
// dropped). A 401 is answered once with credentials; a second one is ErrUnauthorized.
func (c *Conn) do(ctx context.Context, q request) (*message, error) {
	retried := false
	for {
		deadline := time.Now().Add(c.opts.Timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.setDeadline(deadline)
		cseq, err := c.send(q)
		if err != nil {
			return nil, c.ioErr(q.method, err)
		}
		res, err := c.await(cseq)
		if err != nil {
			return nil, c.ioErr(q.method, err)
		}
		if res.code == 401 {
			if retried || c.auth.user == "" {
				why := "no credentials"
				if c.auth.user != "" {
					why = "credentials refused"
				}
				return nil, fmt.Errorf("%w: %s %s: %s", ErrUnauthorized, q.method, RedactURL(q.url), why)
			}
			cs := parseChallenges(res.header.all("WWW-Authenticate"))
			if !c.auth.accept(cs) {
				return nil, fmt.Errorf("%w: %s %s: no supported scheme among: %s", ErrUnauthorized, q.method, RedactURL(q.url), schemes(cs))
			}
			retried = true
			continue
		}
		if res.code < 200 || res.code > 299 {
			return nil, &StatusError{Method: q.method, URL: RedactURL(q.url), Code: res.code, Reason: clip(res.reason)}
		}
		return res, nil
	}
}

// send writes a request; it returns its CSeq.
func (c *Conn) send(q request) (int, error) {
	c.cseq++
	if a := c.auth.header(q.method, q.url); a != "" {
		q.header = append(q.header[:len(q.header):len(q.header)], [2]string{"Authorization", a})
	}
	q.encode(&c.wbuf, c.cseq, c.opts.UserAgent)
	_, err := c.nc.Write(c.wbuf.Bytes())
	return c.cseq, err
}

// await reads until the response to cseq (a response without CSeq counts too: some cameras
// forget it).
func (c *Conn) await(cseq int) (*message, error) {
	for {
		it, err := c.fr.next()
		if err != nil {
			return nil, err
		}
		if it.msg != nil && it.msg.response {
			if n := it.msg.cseq(); n == cseq || n < 0 {
				return it.msg, nil
			}
		}
	}
}

func (c *Conn) ioErr(method string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s %s: no answer", ErrTimeout, method, c.target.url)
	}
	if errors.Is(err, ErrServerClosed) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("%s %s: %w", method, c.target.url, err)
	}
	return fmt.Errorf("rtsp: %s %s: %w", method, c.target.url, err)
}

// Tracks describes the tracks being played; Unit.Track indexes it.
func (c *Conn) Tracks() []Track { return c.tracks }

// Skipped lists the media of the stream not played, with the reason.
func (c *Conn) Skipped() []Skipped { return c.skipped }

// String names the stream (without credentials).
func (c *Conn) String() string { return c.target.url.String() }

// Stats returns the counters so far.
func (c *Conn) Stats() Stats {
	s := Stats{
		SenderReports: c.reports.Load(), KeepAlives: c.keepAlives.Load(), KeepAliveFailed: c.keepFailed.Load(),
		Tracks: make([]TrackStats, len(c.state)),
	}
	for i, st := range c.state {
		s.Tracks[i] = TrackStats{
			Packets: st.n.packets.Load(), Bytes: st.n.bytes.Load(), Lost: st.n.lost.Load(),
			Units: st.n.units.Load(), Dropped: st.n.dropped.Load(), BadPackets: st.n.bad.Load(),
		}
	}
	return s
}

// ReadUnit returns the next unit of any track. It fails with ErrTimeout when the camera sent
// nothing for Options.ReadTimeout, ErrServerClosed when it hung up, ErrClosed after Close,
// or ctx's error. After an error the Conn is of no further use but to Close.
func (c *Conn) ReadUnit(ctx context.Context) (Unit, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.mu.Lock()
	closed := c.closed
	c.interrupted = false
	c.mu.Unlock()
	if closed {
		return Unit{}, ErrClosed
	}
	if c.err != nil {
		return Unit{}, c.err
	}
	if err := ctx.Err(); err != nil {
		return Unit{}, err
	}
	c.lastSet = time.Time{}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.interrupt)
		defer stop()
	}
	for {
		if c.next < len(c.pending) {
			u := c.pending[c.next]
			c.next++
			return u, nil
		}
		c.pending, c.next = c.pending[:0], 0
		if c.deferred.valid {
			c.deferred.valid = false
			c.handleRTP(c.deferred.track, c.deferred.pkt, true)
			continue
		}
		now := time.Now()
		if err := c.keepAlive(now); err != nil {
			c.err = c.readErr(ctx, err)
			return Unit{}, c.err
		}
		if now.Sub(c.lastSet) > c.opts.ReadTimeout/10 {
			c.mu.Lock()
			if !c.interrupted && !c.closed {
				_ = c.nc.SetReadDeadline(now.Add(c.opts.ReadTimeout))
				c.lastSet = now
			}
			c.mu.Unlock()
		}
		it, err := c.fr.next()
		if err != nil {
			// A read cut short leaves the framing unknown: the error sticks.
			c.err = c.readErr(ctx, err)
			return Unit{}, c.err
		}
		c.dispatch(it)
	}
}

// interrupt makes a blocked read or write return at once.
func (c *Conn) interrupt() {
	c.mu.Lock()
	c.interrupted = true
	_ = c.nc.SetDeadline(time.Unix(1, 0))
	c.mu.Unlock()
}

// setDeadline sets the connection's deadline unless an interrupt or Close came first.
func (c *Conn) setDeadline(t time.Time) {
	c.mu.Lock()
	if !c.interrupted && !c.closed {
		_ = c.nc.SetDeadline(t)
	}
	c.mu.Unlock()
}

func (c *Conn) readErr(ctx context.Context, err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: nothing from %s for %v", ErrTimeout, c.target.url, c.opts.ReadTimeout)
	}
	return fmt.Errorf("rtsp: reading %s: %w", c.target.url, err)
}

// keepAlive sends a keep-alive request when one is due; its answer is read among the frames.
func (c *Conn) keepAlive(now time.Time) error {
	if now.Before(c.nextKeep) {
		return nil
	}
	c.nextKeep = now.Add(c.sessionTimeout / 2)
	c.mu.Lock()
	if !c.interrupted && !c.closed {
		_ = c.nc.SetWriteDeadline(now.Add(c.opts.Timeout))
	}
	c.mu.Unlock()
	cseq, err := c.send(request{method: c.keepMethod, url: c.keepURL, header: header{{"Session", c.session}}})
	if err != nil {
		return err
	}
	c.keepCSeq = cseq
	c.keepAlives.Add(1)
	return nil
}

// dispatch handles one item read while playing.
func (c *Conn) dispatch(it item) {
	if it.msg != nil {
		if it.msg.response && it.msg.cseq() == c.keepCSeq && (it.msg.code < 200 || it.msg.code > 299) {
			c.keepFailed.Add(1)
			if c.keepMethod == "GET_PARAMETER" && (it.msg.code == 405 || it.msg.code == 501 || it.msg.code == 551) {
				c.keepMethod = "OPTIONS" // not implemented after all
			}
		}
		return // requests from the server are not answered: cameras do not send any that matter
	}
	i, ok := c.byChannel[it.channel]
	if !ok {
		return
	}
	st := c.state[i]
	if it.channel == st.rtcpChannel {
		var err error
		c.srs, err = parseSenderReports(it.data, c.srs[:0])
		if err != nil {
			return
		}
		for _, sr := range c.srs {
			if st.started && sr.ssrc == st.ssrc {
				c.clocks.tracks[i].senderReport(sr.ntp, sr.rtp)
				c.reports.Add(1)
			}
		}
		return
	}
	pkt, err := parseRTP(it.data)
	if err != nil || pkt.pt != c.tracks[i].PayloadType {
		st.n.bad.Add(1)
		return
	}
	c.arrival = time.Since(c.base).Nanoseconds()
	c.clocks.observe(i, pkt.ts, c.arrival)
	c.handleRTP(i, pkt, false)
}

// handleRTP runs one packet through its track's depacketizer; completed units go to pending.
// resumed is set for a deferred packet (already counted and checked).
func (c *Conn) handleRTP(i int, pkt rtpPacket, resumed bool) {
	st := c.state[i]
	if !resumed {
		st.n.packets.Add(1)
		st.n.bytes.Add(uint64(len(pkt.payload)))
		if st.started {
			gap := pkt.seq - st.seq - 1
			switch {
			case pkt.seq == st.seq || gap >= 0x8000:
				return // a duplicate or an old packet (TCP does not reorder: the camera resent)
			case pkt.ssrc != st.ssrc:
				// A new source (the camera restarted its stream): start over.
				st.dep.lost()
				if st.video && !c.opts.KeepDependent {
					st.waitKey = true
				}
			case gap > 0:
				st.n.lost.Add(uint64(gap))
				st.dep.lost()
				if st.video && !c.opts.KeepDependent {
					st.waitKey = true
				}
			}
		}
		st.started, st.seq, st.ssrc = true, pkt.seq, pkt.ssrc
		// A unit whose last packet lacked the marker ends when the timestamp changes.
		if !st.lastMarker && pkt.ts != st.lastTS {
			c.raw = st.dep.flush(st.lastTS, c.raw[:0])
			if c.deliver(i, st) {
				c.deferred = deferredPacket{track: i, pkt: pkt, valid: true}
				return
			}
		}
	}
	st.lastTS, st.lastMarker = pkt.ts, pkt.marker
	var err error
	c.raw, err = st.dep.push(pkt.payload, pkt.ts, pkt.marker, c.raw[:0])
	if err != nil {
		st.n.bad.Add(1)
	}
	c.deliver(i, st)
}

// deliver turns c.raw into pending units; it reports whether there are any.
func (c *Conn) deliver(i int, st *trackState) bool {
	// Several audio frames of one packet: the last was captured before the packet arrived.
	if len(c.raw) > 1 {
		c.clocks.observe(i, c.raw[len(c.raw)-1].ts, c.arrival)
	}
	for _, r := range c.raw {
		if r.dropped {
			st.n.dropped.Add(1)
			if st.video && !c.opts.KeepDependent {
				st.waitKey = true
			}
			continue
		}
		if st.waitKey {
			if !r.key {
				st.n.dropped.Add(1)
				continue
			}
			st.waitKey = false
		}
		st.n.units.Add(1)
		c.pending = append(c.pending, Unit{
			Track: i, Data: r.data, Keyframe: r.key, RTPTime: r.ts,
			Time: c.base.Add(time.Duration(c.clocks.capture(i, r.ts))),
		})
	}
	return len(c.pending) > c.next
}

// Close ends the session: TEARDOWN (waiting at most Options.Timeout, and 2 s, for its
// answer), then the connection. A ReadUnit in progress returns ErrClosed. Close is
// idempotent.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
	c.readMu.Lock() // ReadUnit has returned
	defer c.readMu.Unlock()
	_ = c.nc.SetDeadline(time.Now().Add(min(c.opts.Timeout, maxTeardownWait)))
	if cseq, err := c.send(request{method: "TEARDOWN", url: c.keepURL, header: header{{"Session", c.session}}}); err == nil {
		_, _ = c.await(cseq)
	}
	return c.nc.Close()
}
