package wayland

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrClosed is returned by calls on a connection that was closed or lost.
	ErrClosed = errors.New("wayland: connection closed")
	// ErrProtocol is what every *ProtocolError unwraps to.
	ErrProtocol = errors.New("wayland: protocol error")
	// ErrTimeout is a compositor that did not answer a roundtrip in time.
	ErrTimeout = errors.New("wayland: compositor did not answer in time")
	// ErrNoDisplay is a missing WAYLAND_DISPLAY/XDG_RUNTIME_DIR.
	ErrNoDisplay = errors.New("wayland: no display")
)

// ProtocolError is a wl_display.error event: the compositor found a fatal fault in one of
// our requests and closed the connection.
type ProtocolError struct {
	ObjectID  uint32
	Interface string // "" if the object was unknown to us
	Code      uint32
	Message   string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("wayland: protocol error on %s@%d, code %d: %s", e.Interface, e.ObjectID, e.Code, e.Message)
}

func (e *ProtocolError) Unwrap() error { return ErrProtocol }

const (
	// writeTimeout bounds a request's write: a compositor that stops reading kills the
	// connection instead of blocking the caller for ever.
	writeTimeout = 5 * time.Second
	// maxQueuedFDs bounds descriptors received but not yet claimed by a message.
	maxQueuedFDs = 256
	// clientIDMax is the last id a client may allocate; server ids start after it.
	clientIDMax = 0xfeffffff
	// maxObjects bounds the object table (ours and the compositor's).
	maxObjects = 1 << 16
	// readBufSize holds several maximal messages.
	readBufSize = 4 * maxMessageSize
)

// handler receives the events of object id, on the connection's reader goroutine. It must not
// block; it may send requests.
type handler func(id uint32, opcode uint16, args []arg)

// object is a live protocol object. One without a handler has been destroyed by us (or
// needs none): events still in flight for it are decoded, for their fds, and dropped.
type object struct {
	iface   *iface
	handle  handler
	version uint32
}

// conn is one connection to a compositor. A single reader goroutine owns the socket's reads
// and dispatches events; requests may be sent from any goroutine.
type conn struct {
	uc *net.UnixConn

	wmu sync.Mutex // one request (or batch) on the wire at a time

	mu      sync.Mutex
	objects map[uint32]*object
	free    []uint32 // client ids released by delete_id, reused first
	nextID  uint32
	err     error // first fatal error; set once

	done    chan struct{}   // closed when the reader has stopped
	fds     []int           // received, not yet claimed (reader only)
	closeFD func(int) error // unix.Close; the fuzz test counts instead
}

// dial connects to display: an absolute socket path, or a name in $XDG_RUNTIME_DIR; ""
// means $WAYLAND_DISPLAY, then "wayland-0".
func dial(display string) (*conn, error) {
	if display == "" {
		display = os.Getenv("WAYLAND_DISPLAY")
	}
	if display == "" {
		display = "wayland-0"
	}
	path := display
	if !filepath.IsAbs(path) {
		dir := os.Getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			return nil, fmt.Errorf("%w: XDG_RUNTIME_DIR is not set for display %q", ErrNoDisplay, display)
		}
		path = filepath.Join(dir, display)
	}
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDisplay, err)
	}
	c := &conn{
		uc:      uc,
		objects: map[uint32]*object{},
		nextID:  2,
		done:    make(chan struct{}),
		closeFD: unix.Close,
	}
	c.objects[1] = &object{iface: ifDisplay, handle: c.handleDisplay, version: 1}
	go c.readLoop()
	return c, nil
}

// Err is the connection's fatal error, nil while it works.
func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail records err as the connection's fatal error (the first one wins) and shuts the socket,
// which stops the reader.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	if c.uc != nil {
		_ = c.uc.Close()
	}
}

// close ends the connection and waits for the reader.
func (c *conn) close() {
	c.fail(ErrClosed)
	<-c.done
}

// newObject allocates a client id for an object of ifc and registers h for its events.
func (c *conn) newObject(ifc *iface, version uint32, h handler) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	var id uint32
	if n := len(c.free); n > 0 {
		id, c.free = c.free[n-1], c.free[:n-1]
	} else {
		if c.nextID > clientIDMax || len(c.objects) >= maxObjects {
			return 0, errors.New("wayland: out of object ids")
		}
		id = c.nextID
		c.nextID++
	}
	c.objects[id] = &object{iface: ifc, handle: h, version: version}
	return id, nil
}

// destroyed marks id as destroyed by a request we sent: its events are dropped from now on.
// A client id is freed when the compositor confirms with delete_id; a server id stays known
// (a zombie) until the compositor reuses it.
func (c *conn) destroyed(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.objects[id]; o != nil {
		o.handle = nil
	}
}

// send writes one or more requests in a single sendmsg (descriptors included).
func (c *conn) send(msgs ...*message) error {
	var buf []byte
	var fds []int
	for _, m := range msgs {
		if m.err != nil {
			return m.err
		}
		b, err := m.bytes()
		if err != nil {
			return err
		}
		buf = append(buf, b...)
		fds = append(fds, m.fds...)
	}
	if err := c.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.uc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return c.writeFailed(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, _, err := c.uc.WriteMsgUnix(buf, oob, nil)
	if err == nil && n < len(buf) {
		// A stream socket may take part of it; the descriptors went with the first byte.
		_, err = c.uc.Write(buf[n:])
	}
	if err != nil {
		return c.writeFailed(err)
	}
	return nil
}

func (c *conn) writeFailed(err error) error {
	if e := c.Err(); e != nil {
		return e // the reader saw why first (a protocol error, usually)
	}
	c.fail(fmt.Errorf("%w: write: %v", ErrClosed, err))
	return c.Err()
}

// roundtrip sends wl_display.sync and waits for its done event: every request sent before it
// has been handled by the compositor, and every event it sent before has been dispatched.
func (c *conn) roundtrip(timeout time.Duration) error {
	done := make(chan struct{})
	id, err := c.newObject(ifCallback, 1, func(uint32, uint16, []arg) { close(done) })
	if err != nil {
		return err
	}
	if err := c.send(newMessage(1, displaySync).uint(id)); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-c.done:
		return c.Err()
	case <-t.C:
		return ErrTimeout
	}
}

// handleDisplay handles wl_display's events (object 1).
func (c *conn) handleDisplay(_ uint32, opcode uint16, args []arg) {
	switch opcode {
	case displayError:
		pe := &ProtocolError{ObjectID: args[0].u, Code: args[1].u, Message: args[2].s}
		c.mu.Lock()
		if o := c.objects[pe.ObjectID]; o != nil {
			pe.Interface = o.iface.name
		}
		c.mu.Unlock()
		c.fail(pe)
	case displayDeleteID:
		id := args[0].u
		c.mu.Lock()
		if _, ok := c.objects[id]; ok && id > 1 && id <= clientIDMax {
			delete(c.objects, id)
			c.free = append(c.free, id)
		}
		c.mu.Unlock()
	}
}

// takeFD implements fdSource for the decoder, from the received queue.
func (c *conn) takeFD() (int, bool) {
	if len(c.fds) == 0 {
		return -1, false
	}
	fd := c.fds[0]
	c.fds = c.fds[1:]
	return fd, true
}

// readLoop reads and dispatches events until the socket fails or is closed.
func (c *conn) readLoop() {
	defer func() {
		for _, fd := range c.fds {
			_ = c.closeFD(fd)
		}
		c.fds = nil
		close(c.done)
	}()
	buf := make([]byte, readBufSize)
	oob := make([]byte, unix.CmsgSpace(4*maxFDsPerRead))
	have := 0
	for {
		n, oobn, _, _, err := c.uc.ReadMsgUnix(buf[have:], oob)
		if oobn > 0 {
			if ferr := c.queueFDs(oob[:oobn]); ferr != nil {
				c.fail(ferr)
				return
			}
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: read: %v", ErrClosed, err))
			return
		}
		if n == 0 {
			c.fail(fmt.Errorf("%w: compositor hung up", ErrClosed))
			return
		}
		have += n
		used, err := c.dispatch(buf[:have])
		if err != nil {
			c.fail(err)
			return
		}
		have = copy(buf, buf[used:have])
	}
}

// maxFDsPerRead is libwayland's limit per sendmsg (MAX_FDS_OUT), with room to spare.
const maxFDsPerRead = 32

// queueFDs appends the descriptors of the control messages in oob.
func (c *conn) queueFDs(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("%w: control message: %v", ErrMalformed, err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if len(c.fds) >= maxQueuedFDs {
				_ = c.closeFD(fd)
				return fmt.Errorf("%w: more than %d unclaimed descriptors", ErrMalformed, maxQueuedFDs)
			}
			unix.CloseOnExec(fd)
			c.fds = append(c.fds, fd)
		}
	}
	return nil
}

// dispatch handles the complete messages at the start of b and returns how many bytes they
// took.
func (c *conn) dispatch(b []byte) (int, error) {
	used := 0
	for len(b)-used >= headerSize {
		h, err := parseHeader(b[used:])
		if err != nil {
			return used, err
		}
		if len(b)-used < h.size {
			break
		}
		if c.Err() != nil {
			return used, c.Err()
		}
		body := b[used+headerSize : used+h.size]
		used += h.size
		if err := c.dispatchOne(h, body); err != nil {
			return used, err
		}
	}
	return used, nil
}

func (c *conn) dispatchOne(h header, body []byte) error {
	c.mu.Lock()
	o := c.objects[h.id]
	c.mu.Unlock()
	if o == nil {
		// An object we never knew, or a server one we forgot: libwayland drops these too.
		return nil
	}
	if int(h.opcode) >= len(o.iface.events) {
		return fmt.Errorf("%w: %s@%d has no event %d", ErrMalformed, o.iface.name, h.id, h.opcode)
	}
	ev := o.iface.events[h.opcode]
	args, err := decodeArgs(ev.sig, body, c)
	if err != nil {
		closeArgFDs(args, c.closeFD)
		return fmt.Errorf("%s.%s: %w", o.iface.name, ev.name, err)
	}
	c.mu.Lock()
	handle := o.handle
	c.mu.Unlock()
	if handle == nil {
		closeArgFDs(args, c.closeFD)
		return nil
	}
	handle(h.id, h.opcode, args)
	return nil
}

// serverObject registers an object the compositor created (a new_id in an event).
func (c *conn) serverObject(id uint32, ifc *iface, h handler) error {
	if id <= clientIDMax {
		return fmt.Errorf("%w: compositor created object %d in the client's id range", ErrMalformed, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.objects) >= maxObjects {
		return fmt.Errorf("%w: too many objects", ErrMalformed)
	}
	c.objects[id] = &object{iface: ifc, handle: h, version: 1}
	return nil
}
