package device

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/p2pcast/p2pcast/internal/h264rtp"
	"github.com/p2pcast/p2pcast/internal/ipc"
	"github.com/p2pcast/p2pcast/internal/media"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// helloWait bounds how long a new producer may take to say who it is.
const helloWait = 5 * time.Second

// errNotH264 is raised for an access unit with no H.264 NAL unit in it.
var errNotH264 = errors.New("device: access unit holds no H.264 NAL unit")

// ingest accepts producers on the capture socket and publishes their frames. One producer feeds
// the stream at a time: a new connection replaces the current one.
type ingest struct {
	st  *stream.Stream
	log *slog.Logger

	mu      sync.Mutex
	current net.Conn
}

// serve accepts producers until ctx ends or the listener fails.
func (in *ingest) serve(ctx context.Context, l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		l.Close()
		in.mu.Lock()
		if in.current != nil {
			in.current.Close()
		}
		in.mu.Unlock()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil {
				in.log.Error("capture socket accept failed", "err", err)
			}
			return
		}
		in.mu.Lock()
		if in.current != nil {
			in.log.Info("new producer replaces the current one")
			in.current.Close()
		}
		in.current = conn
		in.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := in.handle(conn)
			in.mu.Lock()
			if in.current == conn {
				in.current = nil
			}
			in.mu.Unlock()
			conn.Close()
			switch {
			case err == nil || errors.Is(err, io.EOF):
				in.log.Info("producer disconnected")
			case errors.Is(err, net.ErrClosed):
			default:
				in.log.Warn("producer dropped", "reason", err)
			}
		}()
	}
}

// handle reads one producer connection to its end. The returned error says why it was dropped.
func (in *ingest) handle(conn net.Conn) error {
	br := bufio.NewReaderSize(conn, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(helloWait))
	proto, err := ipc.Detect(br)
	if err != nil {
		return err
	}
	if proto == ipc.AnnexB {
		_ = conn.SetReadDeadline(time.Time{})
		return in.annexB(br)
	}
	return in.framed(conn, br)
}

// producer lets the stream ask a framed producer for keyframes.
type producer struct{ w *ipc.Writer }

func (p producer) RequestKeyframe() error { return p.w.RequestKeyframe() }

func (in *ingest) framed(conn net.Conn, br *bufio.Reader) error {
	r := ipc.NewReader(br)
	m, err := r.Next()
	if err != nil {
		return err
	}
	if m.Type != ipc.TypeHello {
		return fmt.Errorf("%w: got %s", ipc.ErrExpectedHello, m.Type)
	}
	hello, err := ipc.ParseHello(m.Payload)
	if err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Time{})
	in.log.Info("producer connected", "name", hello.Name, "size", fmt.Sprintf("%dx%d", hello.Width, hello.Height),
		"fps", hello.FPS(), "bitrate", hello.Bitrate)
	w := ipc.NewWriter(conn)
	detach := in.st.Attach(stream.Info{Codec: "H264", Width: int(hello.Width), Height: int(hello.Height),
		FPS: hello.FPS(), Name: hello.Name, CanKeyframe: hello.Can(ipc.CapKeyframe)}, producer{w})
	defer detach()
	for {
		m, err := r.Next()
		if err != nil {
			return err
		}
		switch m.Type {
		case ipc.TypeAccessUnit:
			au, err := ipc.ParseAccessUnit(m)
			if err != nil {
				return err
			}
			if err := in.publish(au.Data, au.Seq, au.Capture, au.Encoded); err != nil {
				return err
			}
		case ipc.TypeBye:
			return nil
		default:
			return fmt.Errorf("%w: %s from a producer", ipc.ErrUnexpectedType, m.Type)
		}
	}
}

// annexB ingests a plain H.264 stream: no timestamps (frames are stamped on arrival) and no
// way to ask for keyframes (joins replay the GOP).
func (in *ingest) annexB(br *bufio.Reader) error {
	r := media.NewAUReader(br, ipc.MaxPayload)
	var detach func()
	defer func() {
		if detach != nil {
			detach()
		}
	}()
	for seq := uint32(0); ; seq++ {
		au, err := r.Next()
		if err != nil {
			return err
		}
		if detach == nil {
			info, ok := spsInfo(au)
			if !ok {
				continue // nothing is decodable before the first SPS
			}
			in.log.Info("plain Annex-B producer connected", "size", fmt.Sprintf("%dx%d", info.Width, info.Height))
			detach = in.st.Attach(info, nil)
		}
		if err := in.publish(au, seq, time.Now().UnixNano(), 0); err != nil {
			return err
		}
	}
}

// spsInfo describes the stream from the SPS in au, if it holds one.
func spsInfo(au []byte) (stream.Info, bool) {
	for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
		if media.TypeOf(nal) != media.NALSPS {
			continue
		}
		sps, err := media.ParseSPS(nal)
		if err != nil {
			return stream.Info{}, false
		}
		return stream.Info{Codec: "H264", Width: sps.Width, Height: sps.Height, FPS: sps.FPS, Name: "annexb"}, true
	}
	return stream.Info{}, false
}

// publish packetizes an access unit once and hands it to every viewer.
func (in *ingest) publish(data []byte, seq uint32, capture, encoded int64) error {
	f := stream.NewFrame()
	f.Seq, f.Capture, f.Encoded, f.Received = seq, capture, encoded, time.Now().UnixNano()
	f.Data = append(f.Data, data...)
	// The bitstream decides what a keyframe is: a flag that lies would stall every new viewer.
	f.Keyframe = media.IsKeyframe(f.Data)
	h264rtp.Packetize(f.Data, h264rtp.DefaultMTU, &f.Payloads)
	if f.Payloads.Len() == 0 {
		f.Release()
		return errNotH264
	}
	in.st.Publish(f)
	return nil
}
