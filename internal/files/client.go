package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/event"
)

// Client speaks to a device's files channel (p2pcast fetch, the tests).
type Client struct {
	dc *webrtc.DataChannel

	mu      sync.Mutex
	next    uint32
	calls   map[uint32]*call
	hello   chan Hello
	closed  chan struct{}
	closeMu sync.Once
}

// call is one request's replies, in order.
type call struct {
	msgs chan webrtc.DataChannelMessage
	done chan struct{} // closed when the caller no longer reads msgs
}

// Errors a Client returns.
var (
	// ErrClosed: the channel closed (the device refused it, or the session ended).
	ErrClosed = errors.New("files: channel closed")
	// ErrProtocol: the device sent something this client does not understand.
	ErrProtocol = errors.New("files: protocol error")
)

// NewClient takes a files channel just created (pc.CreateDataChannel(Label, nil)), before
// it opens, so that the device's hello is not missed.
func NewClient(dc *webrtc.DataChannel) *Client {
	c := &Client{dc: dc, calls: map[uint32]*call{}, hello: make(chan Hello, 1), closed: make(chan struct{})}
	dc.OnClose(func() { c.closeMu.Do(func() { close(c.closed) }) })
	dc.OnMessage(c.onMessage)
	return c
}

// onMessage hands a reply to its call. It blocks while the call's reader is behind: Pion then
// stops reading the channel and the device's sending waits (SCTP's flow control).
func (c *Client) onMessage(m webrtc.DataChannelMessage) {
	var id uint32
	if m.IsString {
		typ, rid, err := typeOf(m.Data)
		if err != nil {
			return
		}
		if typ == TypeHello {
			var h Hello
			if json.Unmarshal(m.Data, &h) == nil {
				select {
				case c.hello <- h:
				default:
				}
			}
			return
		}
		id = rid
	} else {
		rid, _, _, err := ParseChunk(m.Data)
		if err != nil {
			return
		}
		id = rid
	}
	c.mu.Lock()
	cl := c.calls[id]
	c.mu.Unlock()
	if cl == nil {
		return // a canceled transfer's last chunks
	}
	select {
	case cl.msgs <- m:
	case <-cl.done:
	case <-c.closed:
	}
}

// Hello waits for the device's hello and checks its version.
func (c *Client) Hello(ctx context.Context) (Hello, error) {
	select {
	case h := <-c.hello:
		c.hello <- h // for the next caller
		if h.Version != Version {
			return h, fmt.Errorf("%w: the device speaks files protocol v%d, this client v%d", ErrProtocol, h.Version, Version)
		}
		return h, nil
	case <-c.closed:
		return Hello{}, fmt.Errorf("%w before the device said hello (does the token hold the files grant, and does the device record?)", ErrClosed)
	case <-ctx.Done():
		return Hello{}, ctx.Err()
	}
}

// start sends a request under a new id.
func (c *Client) start(r Request) (*call, uint32, error) {
	c.mu.Lock()
	c.next++
	if c.next == 0 {
		c.next = 1
	}
	r.ID = c.next
	cl := &call{msgs: make(chan webrtc.DataChannelMessage, 16), done: make(chan struct{})}
	c.calls[r.ID] = cl
	c.mu.Unlock()
	b, _ := json.Marshal(r)
	if err := c.dc.SendText(string(b)); err != nil {
		c.finish(r.ID, cl)
		return nil, 0, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return cl, r.ID, nil
}

func (c *Client) finish(id uint32, cl *call) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
	close(cl.done)
}

// recv waits for a call's next message.
func (c *Client) recv(ctx context.Context, cl *call) (webrtc.DataChannelMessage, error) {
	select {
	case m := <-cl.msgs:
		if m.IsString {
			if typ, _, _ := typeOf(m.Data); typ == TypeError {
				var e ErrorReply
				_ = json.Unmarshal(m.Data, &e)
				return m, e
			}
		}
		return m, nil
	case <-c.closed:
		return webrtc.DataChannelMessage{}, ErrClosed
	case <-ctx.Done():
		return webrtc.DataChannelMessage{}, ctx.Err()
	}
}

// cancel asks the device to stop a transfer (best effort: the channel may be gone).
func (c *Client) cancel(id uint32) {
	b, _ := json.Marshal(Request{Type: TypeCancel, ID: id})
	_ = c.dc.SendText(string(b))
}

// List returns the device's recordings and events.
func (c *Client) List(ctx context.Context) ([]Recording, []event.Event, error) {
	cl, id, err := c.start(Request{Type: TypeList})
	if err != nil {
		return nil, nil, err
	}
	defer c.finish(id, cl)
	var recs []Recording
	var evs []event.Event
	for {
		m, err := c.recv(ctx, cl)
		if err != nil {
			return nil, nil, err
		}
		var page ListReply
		if !m.IsString || json.Unmarshal(m.Data, &page) != nil || page.Type != TypeList {
			return nil, nil, fmt.Errorf("%w: expected a list reply", ErrProtocol)
		}
		recs = append(recs, page.Recordings...)
		evs = append(evs, page.Events...)
		if !page.More {
			return recs, evs, nil
		}
	}
}

// GetResult is what a completed get told.
type GetResult struct {
	Size   int64  // the file's size on the device when the get started
	Offset int64  // the first byte received
	Bytes  int64  // bytes received
	SHA256 string // the device's hash of the file's bytes 0 … Offset+Bytes
}

// Get fetches path from offset to its end into w (which continues a local copy of the
// first offset bytes). prefix, when not nil, has already hashed those bytes: the result is
// checked against the device's hash, and a mismatch is an error wrapping ErrChecksum.
// progress, when set, sees the bytes received so far and the total expected.
func (c *Client) Get(ctx context.Context, path string, offset int64, w io.Writer, prefix hash.Hash, progress func(done, total int64)) (GetResult, error) {
	cl, id, err := c.start(Request{Type: TypeGet, Path: path, Offset: offset})
	if err != nil {
		return GetResult{}, err
	}
	defer c.finish(id, cl)
	m, err := c.recv(ctx, cl)
	if err != nil {
		return GetResult{}, err
	}
	var head GetReply
	if !m.IsString || json.Unmarshal(m.Data, &head) != nil || head.Type != TypeGet {
		return GetResult{}, fmt.Errorf("%w: expected a get reply", ErrProtocol)
	}
	res := GetResult{Size: head.Size, Offset: head.Offset}
	h := prefix
	if h == nil {
		h = sha256.New()
	}
	pos := head.Offset
	for {
		m, err := c.recv(ctx, cl)
		if err != nil {
			if ctx.Err() != nil {
				c.cancel(id)
			}
			return res, err
		}
		if m.IsString {
			var end End
			if json.Unmarshal(m.Data, &end) != nil || end.Type != TypeEnd {
				return res, fmt.Errorf("%w: expected a chunk or end", ErrProtocol)
			}
			if end.Bytes != res.Bytes || res.Bytes != head.Length {
				return res, fmt.Errorf("%w: the device says %d bytes, %d arrived (%d announced)", ErrProtocol, end.Bytes, res.Bytes, head.Length)
			}
			res.SHA256 = end.SHA256
			if prefix != nil {
				if got := hex.EncodeToString(h.Sum(nil)); got != end.SHA256 {
					return res, fmt.Errorf("%w: the device's SHA-256 of bytes 0..%d is %s, the local copy's %s", ErrChecksum, pos, end.SHA256, got)
				}
			}
			return res, nil
		}
		_, off, data, err := ParseChunk(m.Data)
		if err != nil || off != pos {
			return res, fmt.Errorf("%w: a chunk at %d where %d was next", ErrProtocol, off, pos)
		}
		if _, err := w.Write(data); err != nil {
			c.cancel(id)
			return res, fmt.Errorf("files: writing: %w", err)
		}
		h.Write(data)
		pos += int64(len(data))
		res.Bytes += int64(len(data))
		if progress != nil {
			progress(res.Bytes, head.Length)
		}
	}
}

// ErrChecksum is a fetched file whose SHA-256 is not the device's.
var ErrChecksum = errors.New("files: checksum mismatch")
