package device

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// A camera's AAC becomes Opus in the producer (browsers take no AAC over WebRTC):
// `p2pcast-capture --transcode aac --aac-config HEX`, one per RTSP connection, reads the AAC
// units as FRAME messages on its stdin and writes an Opus HELLO and FRAMEs on its stdout
// (docs/rtsp.md, "AAC to Opus"). Pipes rather than the capture socket: the Opus track belongs to
// the camera's source (one description with the camera's video), the capture socket takes one
// producer at a time, and the device owns the child's lifetime (it ends with the connection:
// stdin closed; and with the device: the parent-death signal).

// Errors of the transcoder.
var (
	errTranscoder = errors.New("device: AAC transcoder")
)

// transcodeStop bounds how long a transcoder may take to finish after its input closed.
const transcodeStop = 2 * time.Second

// transcoder is one running `p2pcast-capture --transcode aac`.
type transcoder struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	w     *ipc.Writer
	r     *ipc.Reader
	track stream.Track // what its HELLO announced (ID set by the caller)
	seq   uint32
	log   *slog.Logger

	closeOnce sync.Once
	exited    chan struct{}
	waitErr   error
}

// startTranscoder starts the transcoder for an AAC track with AudioSpecificConfig asc and
// reads its HELLO.
func startTranscoder(path string, asc []byte, log *slog.Logger) (*transcoder, error) {
	cmd := exec.Command(path, "--transcode", "aac", "--aac-config", hex.EncodeToString(asc))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errTranscoder, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errTranscoder, err)
	}
	cmd.Stderr = os.Stderr // the producer logs, as the device's own producer does
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %v", errTranscoder, err)
	}
	t := &transcoder{cmd: cmd, in: in, w: ipc.NewWriter(in, ipc.Version2), log: log, exited: make(chan struct{})}
	go func() {
		t.waitErr = cmd.Wait()
		close(t.exited)
	}()
	br := bufio.NewReaderSize(out, 16<<10)
	if _, err := ipc.Detect(br); err != nil {
		t.close()
		return nil, fmt.Errorf("%w: no HELLO: %v", errTranscoder, err)
	}
	t.r = ipc.NewReader(br)
	src, err := readHellos(t.r)
	if err != nil || len(src.tracks) != 1 || src.tracks[0].Codec != codec.Opus.Name {
		t.close()
		return nil, fmt.Errorf("%w: bad HELLO: %v", errTranscoder, err)
	}
	t.track = src.tracks[0]
	return t, nil
}

// write sends one AAC unit captured at capture.
func (t *transcoder) write(au []byte, capture int64) error {
	err := t.w.WriteFrame(ipc.Frame{Track: 1, Seq: t.seq, Capture: capture, Data: au})
	t.seq++
	if err != nil {
		return fmt.Errorf("%w: %v", errTranscoder, err)
	}
	return nil
}

// read returns the next Opus frame (Data aliases the reader's buffer until the next read).
func (t *transcoder) read() (ipc.Frame, error) {
	m, err := t.r.Next()
	if err != nil {
		return ipc.Frame{}, err
	}
	return ipc.ParseFrame(m)
}

// close ends the transcoder: its input closes, and it is killed if it has not exited soon
// after. It returns once the process is gone.
func (t *transcoder) close() {
	t.closeOnce.Do(func() {
		t.in.Close()
		select {
		case <-t.exited:
		case <-time.After(transcodeStop):
			_ = t.cmd.Process.Kill()
			<-t.exited
		}
		if t.waitErr != nil {
			t.log.Debug("transcoder exited", "err", t.waitErr)
		}
	})
}
