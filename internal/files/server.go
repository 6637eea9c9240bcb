package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/mp4"
	"github.com/p2pcast/p2pcast/internal/record"
)

// Catalog is what the channel serves: the device passes its recorder (through a small
// adapter), tests a fake or a recorder on a temporary directory.
type Catalog interface {
	// Dir is the record directory paths are relative to.
	Dir() string
	// Segments are the closed segments, oldest first (record.Recorder.Segments).
	Segments() []record.Entry
	// Writing are the segments being written (one per recorder), relative to Dir.
	Writing() []string
	// Events are the detection events kept; nil when there are none (or no detector).
	Events() []event.Event
}

// Limits bound what one viewer's channel may cost the device. Zero fields take the defaults.
type Limits struct {
	// Chunk is the most data bytes per binary message.
	Chunk int
	// HighWater is how many bytes may wait in the channel's send buffer before a transfer
	// waits for LowWater (the channel's buffered-amount-low threshold).
	HighWater, LowWater uint64
	// MaxTransfers is how many lists, gets and plays may run at once on one channel.
	MaxTransfers int
	// Rate is requests per second allowed on average, Burst at once.
	Rate  float64
	Burst int
	// MaxErrors refused requests within ErrorWindow close the channel.
	MaxErrors   int
	ErrorWindow time.Duration
}

// Defaults of Limits.
const (
	DefaultChunk = 64<<10 - ChunkHeader
	// 4 MiB in flight: more than 1 MiB keeps a loopback fetch going (29 → 34 MB/s in
	// process, docs/performance.md); a slow viewer still costs at most this much.
	DefaultHighWater    = 4 << 20
	DefaultLowWater     = 1 << 20
	DefaultMaxTransfers = 4
	DefaultRate         = 20
	DefaultBurst        = 40
	DefaultMaxErrors    = 20
	defaultErrorWindow  = 10 * time.Second
	// listPage is how many recordings (or events) one list message carries: about 30 KiB.
	listPage = 128
)

func (l *Limits) setDefaults() {
	if l.Chunk <= 0 {
		l.Chunk = DefaultChunk
	}
	if l.HighWater == 0 {
		l.HighWater = DefaultHighWater
	}
	if l.LowWater == 0 || l.LowWater >= l.HighWater {
		l.LowWater = min(DefaultLowWater, l.HighWater/2)
	}
	if l.MaxTransfers <= 0 {
		l.MaxTransfers = DefaultMaxTransfers
	}
	if l.Rate <= 0 {
		l.Rate = DefaultRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultBurst
	}
	if l.MaxErrors <= 0 {
		l.MaxErrors = DefaultMaxErrors
	}
	if l.ErrorWindow <= 0 {
		l.ErrorWindow = defaultErrorWindow
	}
}

// Server serves the files channel of every session (peer.Channel).
type Server struct {
	cat Catalog
	lim Limits
}

// NewServer serves cat within lim.
func NewServer(cat Catalog, lim Limits) *Server {
	lim.setDefaults()
	return &Server{cat: cat, lim: lim}
}

// Grant is what a viewer's token needs to open the channel (peer.Channel).
func (s *Server) Grant() auth.Grant { return auth.GrantFiles }

// Serve runs one viewer's channel until ctx ends (peer.Channel).
func (s *Server) Serve(ctx context.Context, dc *webrtc.DataChannel, msgs <-chan webrtc.DataChannelMessage, access auth.Access, log *slog.Logger) {
	if !access.Has(s.Grant()) { // peer checks it first; this is the channel's own guard
		log.Warn("files channel closed", "reason", "not granted", "token", access.TokenID)
		_ = dc.Close()
		return
	}
	var low pulse
	dc.SetBufferedAmountLowThreshold(s.lim.LowWater)
	dc.OnBufferedAmountLow(low.fire)
	if err := s.serve(ctx, dc, &low, msgs); err != nil {
		log.Warn("files channel closed", "reason", err, "token", access.TokenID)
		_ = dc.Close()
	}
}

// conn is what a session needs of a data channel (*webrtc.DataChannel; a fake in tests).
type conn interface {
	Send([]byte) error
	SendText(string) error
	BufferedAmount() uint64
}

// pulse wakes every waiter once per fire: the channel's buffered amount went low.
type pulse struct {
	mu sync.Mutex
	ch chan struct{}
}

func (p *pulse) wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		p.ch = make(chan struct{})
	}
	return p.ch
}

func (p *pulse) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil {
		close(p.ch)
		p.ch = nil
	}
}

// errTooManyErrors closes a channel whose viewer keeps sending refused requests.
var errTooManyErrors = errors.New("files: too many refused requests")

// session is one viewer's channel.
type session struct {
	s   *Server
	c   conn
	low *pulse

	mu        sync.Mutex
	transfers map[uint32]context.CancelFunc
	wg        sync.WaitGroup

	tokens   float64 // the rate limit's bucket
	lastFill time.Time
	errs     []time.Time // refusals within the error window
}

// serve reads requests until ctx ends or msgs closes; an error closes the channel.
func (s *Server) serve(ctx context.Context, c conn, low *pulse, msgs <-chan webrtc.DataChannelMessage) error {
	ctx, cancel := context.WithCancel(ctx)
	ss := &session{s: s, c: c, low: low, transfers: map[uint32]context.CancelFunc{}, tokens: float64(s.lim.Burst), lastFill: time.Now()}
	defer func() { cancel(); ss.wg.Wait() }()
	hello, _ := json.Marshal(Hello{Type: TypeHello, Version: Version, MaxChunk: s.lim.Chunk, MaxTransfers: s.lim.MaxTransfers})
	if err := c.SendText(string(hello)); err != nil {
		return nil // the channel is gone already
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			if err := ss.handle(ctx, m); err != nil {
				return err
			}
		}
	}
}

// handle takes one message: refusals are replied to and counted.
func (ss *session) handle(ctx context.Context, m webrtc.DataChannelMessage) error {
	now := time.Now()
	if !ss.allow(now) {
		var id uint32
		if r, err := parseRequest(m.Data); err == nil {
			id = r.ID
		}
		return ss.refuse(now, id, CodeRateLimited, "too many requests: slow down")
	}
	if !m.IsString {
		return ss.refuse(now, 0, CodeBadRequest, "requests are JSON text messages")
	}
	r, err := parseRequest(m.Data)
	if err != nil {
		return ss.refuse(now, 0, CodeBadRequest, err.Error())
	}
	if r.Type == TypeCancel {
		ss.mu.Lock()
		if stop := ss.transfers[r.ID]; stop != nil {
			stop()
		}
		ss.mu.Unlock()
		return nil // a transfer that already ended has nothing to cancel
	}
	ss.mu.Lock()
	_, dup := ss.transfers[r.ID]
	busy := len(ss.transfers) >= ss.s.lim.MaxTransfers
	if dup || busy {
		ss.mu.Unlock()
		if dup {
			return ss.refuse(now, r.ID, CodeBadRequest, fmt.Sprintf("request id %d is already running", r.ID))
		}
		return ss.refuse(now, r.ID, CodeBusy, fmt.Sprintf("%d transfers running (at most %d): wait or cancel one", ss.s.lim.MaxTransfers, ss.s.lim.MaxTransfers))
	}
	tctx, stop := context.WithCancel(ctx)
	ss.transfers[r.ID] = stop
	ss.wg.Add(1)
	ss.mu.Unlock()
	go func() {
		defer ss.wg.Done()
		defer func() {
			ss.mu.Lock()
			delete(ss.transfers, r.ID)
			ss.mu.Unlock()
			stop()
		}()
		var err error
		switch r.Type {
		case TypeList:
			err = ss.list(tctx, r)
		case TypeGet:
			err = ss.get(tctx, r)
		case TypePlay:
			err = ss.play(tctx, r)
		}
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return // the channel is closing: nobody to tell
		}
		er := errorReply(r.ID, err)
		if er.Code == CodeCanceled {
			er.Message = "canceled"
		}
		ss.sendJSON(er)
	}()
	return nil
}

// errUnplayable and errRange are what play and get refuse with.
var (
	errUnplayable = errors.New("files: not playable")
	errRange      = errors.New("files: outside the file")
)

// errorReply maps an error to its reply.
func errorReply(id uint32, err error) ErrorReply {
	code := CodeInternal
	switch {
	case errors.Is(err, context.Canceled):
		code = CodeCanceled
	case errors.Is(err, ErrBadPath):
		code = CodeBadPath
	case errors.Is(err, ErrNotFound):
		code = CodeNotFound
	case errors.Is(err, errRange):
		code = CodeRange
	case errors.Is(err, errUnplayable), errors.Is(err, ErrMalformed):
		code = CodeUnplayable
	}
	return ErrorReply{Type: TypeError, ID: id, Code: code, Message: err.Error()}
}

// allow takes a token from the rate limit's bucket.
func (ss *session) allow(now time.Time) bool {
	lim := ss.s.lim
	ss.tokens = min(float64(lim.Burst), ss.tokens+now.Sub(ss.lastFill).Seconds()*lim.Rate)
	ss.lastFill = now
	if ss.tokens < 1 {
		return false
	}
	ss.tokens--
	return true
}

// refuse replies with an error and counts it; too many close the channel.
func (ss *session) refuse(now time.Time, id uint32, code, msg string) error {
	ss.sendJSON(ErrorReply{Type: TypeError, ID: id, Code: code, Message: msg})
	lim := ss.s.lim
	keep := ss.errs[:0]
	for _, t := range ss.errs {
		if now.Sub(t) < lim.ErrorWindow {
			keep = append(keep, t)
		}
	}
	ss.errs = append(keep, now)
	if len(ss.errs) > lim.MaxErrors {
		return fmt.Errorf("%w: %d within %s (last: %s)", errTooManyErrors, len(ss.errs), lim.ErrorWindow, msg)
	}
	return nil
}

func (ss *session) sendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return ss.c.SendText(string(b))
}

// room waits until the channel's send buffer is under the high-water mark. The
// buffered-amount-low event is what wakes it; a slow poll covers an event that fired between
// the check and the wait.
func (ss *session) room(ctx context.Context) error {
	for ss.c.BufferedAmount() > ss.s.lim.HighWater {
		woken := ss.low.wait()
		if ss.c.BufferedAmount() <= ss.s.lim.HighWater {
			return nil
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-woken:
		case <-t.C:
		}
		t.Stop()
	}
	return ctx.Err()
}

// list sends the recordings and events in pages.
func (ss *session) list(ctx context.Context, r Request) error {
	recs := ss.recordings()
	evs := ss.s.cat.Events()
	for first := true; first || len(recs) > 0 || len(evs) > 0; first = false {
		page := ListReply{Type: TypeList, ID: r.ID, Recordings: []Recording{}}
		n := min(len(recs), listPage)
		page.Recordings, recs = append(page.Recordings, recs[:n]...), recs[n:]
		if len(recs) == 0 {
			n = min(len(evs), listPage)
			page.Events, evs = evs[:n], evs[n:]
		}
		page.More = len(recs) > 0 || len(evs) > 0
		if err := ss.room(ctx); err != nil {
			return err
		}
		if err := ss.sendJSON(page); err != nil {
			return err
		}
	}
	return nil
}

// recordings lists the catalog's segments, and those being written last.
func (ss *session) recordings() []Recording {
	segs := ss.s.cat.Segments()
	writing := ss.s.cat.Writing()
	out := make([]Recording, 0, len(segs)+len(writing))
	for _, e := range segs {
		out = append(out, Recording{Path: e.Path, Source: sourceOf(e.Path), Start: e.Start, End: e.End,
			DurationMS: e.DurationMS, Bytes: e.Bytes, Tracks: e.Tracks})
	}
	for _, w := range writing {
		if checkPath(w) != nil {
			continue
		}
		rec := Recording{Path: w, Source: sourceOf(w), Writing: true, Tracks: []string{}}
		if fi, err := os.Stat(path.Join(ss.s.cat.Dir(), w)); err == nil {
			rec.Bytes = fi.Size()
		}
		if t, err := time.Parse("20060102T150405.000Z", path.Base(w)[:20]); err == nil {
			rec.Start = t
		}
		out = append(out, rec)
	}
	return out
}

// open checks a requested path against the catalog and opens it.
func (ss *session) open(p string) (*os.File, int64, error) {
	if err := checkPath(p); err != nil {
		return nil, 0, err
	}
	known := slices.Contains(ss.s.cat.Writing(), p)
	for _, e := range ss.s.cat.Segments() {
		if known {
			break
		}
		known = e.Path == p
	}
	if !known {
		return nil, 0, fmt.Errorf("%w: %s (list shows the recordings)", ErrNotFound, p)
	}
	return openSegment(ss.s.cat.Dir(), p)
}

// get sends a file's bytes [offset, offset+length) and the SHA-256 of [0, offset+length).
func (ss *session) get(ctx context.Context, r Request) error {
	f, size, err := ss.open(r.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if r.Offset > size {
		return fmt.Errorf("%w: offset %d beyond the file's %d bytes", errRange, r.Offset, size)
	}
	length := size - r.Offset
	if r.Length > 0 {
		if r.Length > length {
			return fmt.Errorf("%w: %d bytes from %d beyond the file's %d bytes", errRange, r.Length, r.Offset, size)
		}
		length = r.Length
	}
	if err := ss.sendJSON(GetReply{Type: TypeGet, ID: r.ID, Path: r.Path, Size: size, Offset: r.Offset, Length: length}); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, r.Offset)); err != nil {
		return fmt.Errorf("files: reading %s: %w", r.Path, err)
	}
	sent, err := ss.send(ctx, r.ID, f, r.Offset, r.Offset+length, h)
	if err != nil {
		return err
	}
	return ss.sendJSON(End{Type: TypeEnd, ID: r.ID, Bytes: sent, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// send sends f's bytes [from, to) in chunks, hashing them into h when it is not nil.
func (ss *session) send(ctx context.Context, id uint32, f io.ReaderAt, from, to int64, h io.Writer) (int64, error) {
	buf := make([]byte, ChunkHeader+ss.s.lim.Chunk)
	var sent int64
	for pos := from; pos < to; {
		n := int(min(int64(ss.s.lim.Chunk), to-pos))
		data := buf[ChunkHeader : ChunkHeader+n]
		if _, err := f.ReadAt(data, pos); err != nil {
			return sent, fmt.Errorf("files: reading at %d: %w", pos, err)
		}
		if h != nil {
			h.Write(data)
		}
		if err := ss.room(ctx); err != nil {
			return sent, err
		}
		putChunkHeader(buf, id, pos)
		if err := ss.c.Send(buf[:ChunkHeader+n]); err != nil {
			return sent, err
		}
		pos += int64(n)
		sent += int64(n)
	}
	return sent, nil
}

// play sends the init segment, then the fragments from the last one starting at a keyframe
// at or before the time asked, to the file's last complete fragment.
func (ss *session) play(ctx context.Context, r Request) error {
	f, size, err := ss.open(r.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	frags, err := mp4.ReadFragments(f, size)
	var tail *mp4.TailError
	if err != nil && !(errors.As(err, &tail) && len(frags) > 0) { // a segment being written ends inside a fragment
		return fmt.Errorf("%w: %v", errUnplayable, err)
	}
	if len(frags) == 0 {
		return fmt.Errorf("%w: %s has no complete fragment yet", errUnplayable, r.Path)
	}
	init := make([]byte, frags[0].Offset)
	if _, err := f.ReadAt(init, 0); err != nil {
		return fmt.Errorf("files: reading %s: %w", r.Path, err)
	}
	mime, err := mimeType(init)
	if err != nil {
		return err
	}
	at := time.Duration(r.TimeMS) * time.Millisecond
	pick := -1
	for i, fr := range frags {
		if len(fr.Tracks) == 0 || !fr.Tracks[0].FirstSync {
			continue
		}
		if pick < 0 || fr.Tracks[0].Start() <= at {
			pick = i
		}
		if fr.Tracks[0].Start() > at {
			break
		}
	}
	if pick < 0 {
		return fmt.Errorf("%w: no fragment of %s starts with a keyframe", errUnplayable, r.Path)
	}
	last := frags[len(frags)-1]
	end := last.Offset + last.Size
	from := frags[pick].Offset
	reply := PlayReply{Type: TypePlay, ID: r.ID, Path: r.Path, MIME: mime,
		StartMS:    frags[pick].Tracks[0].Start().Milliseconds(),
		DurationMS: last.Tracks[0].End().Milliseconds(),
		InitBytes:  int64(len(init)), Length: int64(len(init)) + end - from}
	if err := ss.sendJSON(reply); err != nil {
		return err
	}
	n1, err := ss.send(ctx, r.ID, f, 0, int64(len(init)), nil)
	if err != nil {
		return err
	}
	n2, err := ss.send(ctx, r.ID, f, from, end, nil)
	if err != nil {
		return err
	}
	return ss.sendJSON(End{Type: TypeEnd, ID: r.ID, Bytes: n1 + n2})
}
