package wayland

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// MaxClipboard is the largest clipboard text set or delivered, in bytes.
	MaxClipboard = 1 << 20
	// transferTimeout bounds one clipboard transfer through a pipe, either way.
	transferTimeout = 3 * time.Second
	// maxOfferMimes bounds the MIME types remembered per offer.
	maxOfferMimes = 64
)

// textMimes are the text types offered, and accepted in this order of preference.
var textMimes = []string{"text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "TEXT", "STRING"}

// clipboard is the data-control side of a Desktop. Its event handlers run on the
// connection's reader; transfers run in goroutines it owns.
type clipboard struct {
	c      *conn
	mgr    uint32
	device uint32
	// marker is a private MIME type on our own sources: a selection offering it is ours and
	// is not reported back.
	marker string

	mu        sync.Mutex
	sources   map[uint32]string   // our live sources and their text
	offers    map[uint32][]string // offers introduced and not destroyed, with their types
	current   uint32              // the offer of the current selection
	seq       uint64              // selections seen; a transfer delivers only if still the latest
	transfers map[*os.File]struct{}
	finished  bool
	closed    bool
	out       chan string
	wg        sync.WaitGroup
}

func newClipboard(c *conn) *clipboard {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &clipboard{
		c:         c,
		marker:    "application/x-p2pcast-owner;id=" + hex.EncodeToString(b[:]),
		sources:   map[uint32]string{},
		offers:    map[uint32][]string{},
		transfers: map[*os.File]struct{}{},
		out:       make(chan string, 1),
	}
}

// start binds the manager (through bind) and creates the seat's data-control device.
func (cb *clipboard) start(bind func(handler) (uint32, error), seat uint32) error {
	var err error
	if cb.mgr, err = bind(nil); err != nil {
		return err
	}
	if cb.device, err = cb.c.newObject(ifDataControlDevice, 1, cb.handleDevice); err != nil {
		return err
	}
	return cb.c.send(newMessage(cb.mgr, dcManagerGetDevice).uint(cb.device).uint(seat))
}

// Clipboard delivers the desktop's clipboard text each time another client sets it (and
// the current text when the Desktop opens, if there is one). Only the latest undelivered
// text is kept. The channel is closed by Close.
func (d *Desktop) Clipboard() <-chan string { return d.clip.out }

// SetClipboard makes text the desktop's selection (the clipboard), offered as UTF-8 text
// under the usual text types. At most MaxClipboard bytes.
func (d *Desktop) SetClipboard(text string) error {
	if len(text) > MaxClipboard {
		return ErrTooLarge
	}
	cb := d.clip
	if cb.mgr == 0 {
		return fmt.Errorf("%w: compositor has no zwlr_data_control_manager_v1: no clipboard access", ErrMissingProtocol)
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.closed || cb.finished {
		return ErrClosed
	}
	src, err := cb.c.newObject(ifDataControlSource, 1, cb.handleSource)
	if err != nil {
		return err
	}
	cb.sources[src] = text
	msgs := []*message{newMessage(cb.mgr, dcManagerCreateSource).uint(src)}
	for _, mime := range append([]string{cb.marker}, textMimes...) {
		msgs = append(msgs, newMessage(src, dcSourceOffer).string(mime))
	}
	msgs = append(msgs, newMessage(cb.device, dcDeviceSetSelection).uint(src))
	if err := cb.c.send(msgs...); err != nil {
		delete(cb.sources, src)
		return err
	}
	return nil
}

// handleSource answers our sources' events: send (write the text into the fd) and
// cancelled (another selection replaced ours).
func (cb *clipboard) handleSource(src uint32, op uint16, args []arg) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	text, live := cb.sources[src]
	switch op {
	case dcSourceSend:
		fd := args[1].fd
		if !live || cb.closed {
			_ = unix.Close(fd)
			return
		}
		if args[0].s == cb.marker {
			text = "" // the marker only says whose it is
		}
		cb.transfer(fd, func(f *os.File) error {
			_, err := io.WriteString(f, text)
			return err
		})
	case dcSourceCancelled:
		if live {
			delete(cb.sources, src)
			cb.c.destroyed(src)
			_ = cb.c.send(newMessage(src, dcSourceDestroy))
		}
	}
}

// handleDevice follows the seat's selection: each new offer is read in the background,
// unless it is ours.
func (cb *clipboard) handleDevice(_ uint32, op uint16, args []arg) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.finished {
		// The device is gone, or its destroy is on its way (Close): an event the reader
		// dispatched before that must not act on objects Close destroys (a second destroy of
		// the current offer is a protocol error).
		return
	}
	switch op {
	case dcDeviceDataOffer:
		id := args[0].u
		if len(cb.offers) >= maxObjects/2 {
			cb.c.fail(fmt.Errorf("%w: too many data offers", ErrMalformed))
			return
		}
		if err := cb.c.serverObject(id, ifDataControlOffer, cb.handleOffer); err != nil {
			cb.c.fail(err)
			return
		}
		cb.offers[id] = nil
	case dcDeviceSelection, dcDevicePrimary:
		id := args[0].u
		if op == dcDevicePrimary {
			// Not asked for (version 1 is bound), but harmless: forget the offer.
			cb.dropOffer(id)
			return
		}
		if cb.current != 0 && cb.current != id {
			cb.dropOffer(cb.current)
		}
		cb.current = id
		cb.seq++
		mimes, known := cb.offers[id]
		if id == 0 || !known || slices.Contains(mimes, cb.marker) || cb.closed {
			return
		}
		mime := ""
		for _, m := range textMimes {
			if slices.Contains(mimes, m) {
				mime = m
				break
			}
		}
		if mime == "" {
			return // not text
		}
		cb.receive(id, mime, cb.seq)
	case dcDeviceFinished:
		cb.finished = true
		cb.c.destroyed(cb.device)
		_ = cb.c.send(newMessage(cb.device, dcDeviceDestroy))
	}
}

func (cb *clipboard) handleOffer(id uint32, op uint16, args []arg) {
	if op != dcOfferOffer {
		return
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if mimes, ok := cb.offers[id]; ok && len(mimes) < maxOfferMimes {
		cb.offers[id] = append(mimes, args[0].s)
	}
}

// dropOffer destroys an offer we no longer need. cb.mu is held.
func (cb *clipboard) dropOffer(id uint32) {
	if _, ok := cb.offers[id]; !ok {
		return
	}
	delete(cb.offers, id)
	cb.c.destroyed(id)
	_ = cb.c.send(newMessage(id, dcOfferDestroy))
}

// receive asks the offer's source to write its text into a pipe and reads it in the
// background. cb.mu is held.
func (cb *clipboard) receive(offer uint32, mime string, seq uint64) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return
	}
	err := cb.c.send(newMessage(offer, dcOfferReceive).string(mime).fd(p[1]))
	_ = unix.Close(p[1]) // the source holds its own copy now
	if err != nil {
		_ = unix.Close(p[0])
		return
	}
	cb.transfer(p[0], func(f *os.File) error {
		data, err := io.ReadAll(io.LimitReader(f, MaxClipboard+1))
		if err != nil {
			return err
		}
		if len(data) > MaxClipboard {
			return ErrTooLarge // dropped whole rather than cut
		}
		cb.mu.Lock()
		defer cb.mu.Unlock()
		if seq == cb.seq && !cb.closed {
			cb.deliver(strings.ToValidUTF8(string(data), "\uFFFD"))
		}
		return nil
	})
}

// deliver hands text to the channel, replacing an undelivered older text. cb.mu is held, so
// after one receive the channel has room and the send cannot block.
func (cb *clipboard) deliver(text string) {
	select {
	case cb.out <- text:
	default:
		select {
		case <-cb.out:
		default:
		}
		cb.out <- text
	}
}

// transfer runs work on fd (one end of a pipe) in a goroutine, bounded by transferTimeout and
// cut short by close. cb.mu is held.
func (cb *clipboard) transfer(fd int, work func(*os.File) error) {
	// Non-blocking, so that the runtime poller serves it and deadlines work.
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "clipboard-pipe")
	_ = f.SetDeadline(time.Now().Add(transferTimeout))
	cb.transfers[f] = struct{}{}
	cb.wg.Add(1)
	go func() {
		defer cb.wg.Done()
		_ = work(f)
		cb.mu.Lock()
		delete(cb.transfers, f)
		cb.mu.Unlock()
		_ = f.Close()
	}()
}

// destroyMessages are the requests that tear down the clipboard's objects, for Close.
func (cb *clipboard) destroyMessages() []*message {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	var msgs []*message
	if cb.mgr == 0 {
		return nil // not started, or already torn down
	}
	// Each is marked destroyed before the request goes out: wlroots answers the device's
	// destroy with a finished event, which must not be answered with a second destroy.
	// The maps are emptied with it: nothing else may destroy the same objects again.
	for src := range cb.sources {
		cb.c.destroyed(src)
		msgs = append(msgs, newMessage(src, dcSourceDestroy))
	}
	clear(cb.sources)
	for id := range cb.offers {
		cb.c.destroyed(id)
		msgs = append(msgs, newMessage(id, dcOfferDestroy))
	}
	clear(cb.offers)
	cb.current = 0
	if !cb.finished {
		cb.finished = true
		cb.c.destroyed(cb.device)
		msgs = append(msgs, newMessage(cb.device, dcDeviceDestroy))
	}
	cb.c.destroyed(cb.mgr)
	msgs = append(msgs, newMessage(cb.mgr, dcManagerDestroy))
	cb.mgr = 0
	return msgs
}

// close stops the transfers, waits for their goroutines and closes the channel.
func (cb *clipboard) close() {
	cb.mu.Lock()
	if cb.closed {
		cb.mu.Unlock()
		return
	}
	cb.closed = true
	for f := range cb.transfers {
		_ = f.SetDeadline(time.Now())
	}
	cb.mu.Unlock()
	cb.wg.Wait()
	close(cb.out)
}
