package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// MaxClipboard bounds clipboard text either way, in bytes.
const MaxClipboard = 1 << 20

// Text MIME types, the preferred first.
const (
	mimeUTF8  = "text/plain;charset=utf-8"
	mimePlain = "text/plain"
)

// clipEvent is a Clipboard signal for this session, handled by the clipboard worker.
type clipEvent struct {
	name string
	body []any
}

// SetClipboard makes text the desktop's clipboard: the session announces it owns text and
// hands it over whenever an application pastes. It needs the portal's Clipboard interface
// and the user's consent; without them the error wraps errors.ErrUnsupported.
func (s *Session) SetClipboard(text string) error {
	if s.isClosed() {
		return ErrClosed
	}
	if !s.clipboard {
		return ErrNoClipboard
	}
	if len(text) > MaxClipboard {
		return fmt.Errorf("portal: clipboard text of %d bytes, more than %d", len(text), MaxClipboard)
	}
	s.mu.Lock()
	s.offer, s.offering = text, true
	s.mu.Unlock()
	return s.call(context.Background(), ifaceClipboard+".SetSelection", []any{s.handle,
		map[string]dbus.Variant{"mime_types": dbus.MakeVariant([]string{mimeUTF8, mimePlain})}})
}

// Clipboard delivers the desktop's clipboard text when another application sets it. Only the
// newest text waits if the reader is slow. It never sends when the clipboard is unsupported,
// and is not closed: select on Closed as well.
func (s *Session) Clipboard() <-chan string { return s.clip }

// clipWorker answers the portal's clipboard signals one at a time, off the dispatcher.
func (s *Session) clipWorker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case ev := <-s.clipEvents:
			switch ev.name {
			case ifaceClipboard + ".SelectionTransfer":
				s.transfer(ev.body)
			case ifaceClipboard + ".SelectionOwnerChanged":
				s.ownerChanged(ev.body)
			}
		}
	}
}

// transfer writes our text to an application that pastes it: SelectionTransfer(o, s mime,
// u serial) → SelectionWrite → write, close → SelectionWriteDone.
func (s *Session) transfer(body []any) {
	if len(body) != 3 {
		return
	}
	mime, ok1 := body[1].(string)
	serial, ok2 := body[2].(uint32)
	if !ok1 || !ok2 {
		return
	}
	s.mu.Lock()
	text, offering := s.offer, s.offering
	s.mu.Unlock()
	ok := offering && (mime == mimeUTF8 || mime == mimePlain)
	if ok {
		ok = s.writeSelection(serial, text) == nil
	}
	_ = s.call(s.workerCtx(), ifaceClipboard+".SelectionWriteDone", []any{s.handle, serial, ok})
}

func (s *Session) writeSelection(serial uint32, text string) error {
	var fd dbus.UnixFD
	if err := s.call(s.workerCtx(), ifaceClipboard+".SelectionWrite", []any{s.handle, serial}, &fd); err != nil {
		return err
	}
	f := pollable(fd, "clipboard-write")
	defer f.Close()
	_ = f.SetWriteDeadline(time.Now().Add(s.opts.CallTimeout))
	_, err := io.WriteString(f, text)
	return err
}

// ownerChanged reads the text another application put on the clipboard:
// SelectionOwnerChanged(o, {mime_types, session_is_owner}) → SelectionRead → read.
func (s *Session) ownerChanged(body []any) {
	if len(body) != 2 {
		return
	}
	opts, ok := body[1].(map[string]dbus.Variant)
	if !ok {
		return
	}
	if own, _ := opts["session_is_owner"].Value().(bool); own {
		return // our own SetClipboard coming back
	}
	s.mu.Lock()
	s.offering = false
	s.mu.Unlock()
	mimes, _ := opts["mime_types"].Value().([]string)
	mime := ""
	for _, m := range []string{mimeUTF8, mimePlain} {
		if slices.Contains(mimes, m) {
			mime = m
			break
		}
	}
	if mime == "" {
		return // not text
	}
	text, err := s.readSelection(mime)
	if err != nil {
		return // nothing to deliver; the next change may succeed
	}
	select {
	case s.clip <- text:
	default: // keep only the newest: this worker is the only sender
		select {
		case <-s.clip:
		default:
		}
		select {
		case s.clip <- text:
		default:
		}
	}
}

func (s *Session) readSelection(mime string) (string, error) {
	var fd dbus.UnixFD
	if err := s.call(s.workerCtx(), ifaceClipboard+".SelectionRead", []any{s.handle, mime}, &fd); err != nil {
		return "", err
	}
	f := pollable(fd, "clipboard-read")
	defer f.Close()
	_ = f.SetReadDeadline(time.Now().Add(s.opts.CallTimeout))
	b, err := io.ReadAll(io.LimitReader(f, MaxClipboard+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxClipboard {
		return "", errors.New("portal: clipboard text too large")
	}
	return string(b), nil
}

// pollable wraps a received fd so that deadlines bound its reads and writes (a pipe made
// non-blocking joins Go's poller).
func pollable(fd dbus.UnixFD, name string) *os.File {
	syscall.CloseOnExec(int(fd))
	_ = syscall.SetNonblock(int(fd), true)
	return os.NewFile(uintptr(fd), name)
}

// workerCtx is cancelled when the session shuts down, so a clipboard call does not hold it up.
func (s *Session) workerCtx() context.Context { return s.ctx }
