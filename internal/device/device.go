// Package device runs a p2pcast device: it takes H.264 from a producer on a Unix socket
// (starting and supervising p2pcast-capture for the test pattern), fans it out to viewers over
// WebRTC, and serves the viewer page, WHEP and WebSocket signaling over HTTP.
package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/stream"
	"github.com/p2pcast/p2pcast/web"
)

// Device is one running device.
type Device struct {
	cfg    Config
	log    *slog.Logger
	stream *stream.Stream
	engine *peer.Engine

	hub    *hub.Link      // nil without a hub
	iceTCP net.Listener   // nil when ICE over TCP is off
	iceUDP net.PacketConn // nil: a UDP socket per session

	mu       sync.Mutex
	sessions map[*peer.Session]struct{}
}

// New prepares a device; Run starts it.
func New(cfg Config, log *slog.Logger) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Loopback candidates serve viewers on the same machine (and tests); a device that only
	// a hub reaches would just give remote viewers more dead pairs to check.
	pcfg := peer.Config{IncludeLoopback: !cfg.NoLAN, MaxSessions: cfg.MaxViewers, Logger: log, ICEServers: cfg.ICEServers}
	if cfg.PlayoutDelay >= 0 {
		pcfg.PlayoutDelay = &peer.PlayoutDelay{Min: cfg.PlayoutDelay, Max: cfg.PlayoutDelay}
	}
	pcfg.PublicIPs = cfg.PublicIPs
	if cfg.ICEUDPPort > 0 {
		c, err := net.ListenPacket("udp", ":"+strconv.Itoa(cfg.ICEUDPPort))
		if err != nil {
			return nil, fmt.Errorf("ICE UDP socket: %w", err)
		}
		pcfg.ICEUDP = c
	}
	if cfg.ICETCPPort >= 0 {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.ICETCPPort))
		if err != nil {
			if pcfg.ICEUDP != nil {
				pcfg.ICEUDP.Close()
			}
			return nil, fmt.Errorf("ICE TCP listener: %w", err)
		}
		pcfg.ICETCP = l
	}
	engine, err := peer.NewEngine(pcfg)
	if err != nil {
		if pcfg.ICETCP != nil {
			pcfg.ICETCP.Close()
		}
		if pcfg.ICEUDP != nil {
			pcfg.ICEUDP.Close()
		}
		return nil, err
	}
	return &Device{cfg: cfg, log: log, engine: engine, iceTCP: pcfg.ICETCP, iceUDP: pcfg.ICEUDP,
		stream:   stream.New(stream.Config{Logger: log}),
		sessions: map[*peer.Session]struct{}{}}, nil
}

// Stream is the device's stream (tests, benchmarks).
func (d *Device) Stream() *stream.Stream { return d.stream }

// Ready tells where a started device listens.
type Ready struct {
	URL        string // the viewer page ("" with NoLAN)
	SocketPath string
}

// Run serves until ctx ends. ready, if not nil, is called once everything listens.
func (d *Device) Run(ctx context.Context, ready func(Ready)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sockPath := d.cfg.SocketPath
	if sockPath == "" {
		dir, err := os.MkdirTemp("", "p2pcast-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		sockPath = filepath.Join(dir, "capture.sock")
	}
	sock, err := listenUnix(sockPath)
	if err != nil {
		return err
	}
	defer os.Remove(sockPath)

	var hl net.Listener
	var srv *http.Server
	if !d.cfg.NoLAN {
		if hl, err = net.Listen("tcp", d.cfg.HTTPAddr); err != nil {
			sock.Close()
			return fmt.Errorf("http listen: %w", err)
		}
		whep := signal.NewWHEP(backend{d}, "/whep", d.log)
		mux := http.NewServeMux()
		whep.Register(mux)
		mux.Handle("GET /ws", signal.NewWebSocket(ctx, backend{d}, d.log))
		mux.HandleFunc("GET /api/status", d.status)
		mux.HandleFunc("GET /api/frames", d.frames)
		mux.Handle("GET /", http.FileServerFS(web.Files))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	}

	var wg sync.WaitGroup
	wg.Go(func() { (&ingest{st: d.stream, log: d.log}).serve(ctx, sock) })
	if srv != nil {
		wg.Go(func() {
			if err := srv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http server", "err", err)
				cancel()
			}
		})
	}
	if d.cfg.Hub.URL != "" {
		dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment, TLSClientConfig: d.cfg.Hub.TLS}
		link, err := hub.NewLink(hub.LinkConfig{
			URL: d.cfg.Hub.URL, ID: d.cfg.Hub.ID, Key: d.cfg.Hub.Key, Backend: backend{d},
			OnICEServers: d.engine.SetICEServers, StreamChanged: d.stream.Changed, Logger: d.log,
			Dialer: dialer,
		})
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		d.hub = link
		wg.Go(func() {
			if err := link.Run(ctx); err != nil {
				d.log.Error("hub link", "err", err)
				cancel()
			}
		})
	}
	if d.cfg.Source == "testpattern" {
		path := d.cfg.CapturePath
		if path == "" {
			if path, err = FindCapture(); err != nil {
				cancel()
				wg.Wait()
				return err
			}
		}
		sup := &supervisor{path: path, log: d.log, args: []string{
			"--socket", sockPath, "--source", "testpattern", "--size", d.cfg.Size.String(),
			"--fps", strconv.Itoa(d.cfg.FPS), "--bitrate", strconv.FormatInt(int64(d.cfg.Bitrate), 10),
			"--gop", strconv.Itoa(d.cfg.gopFrames()),
		}}
		wg.Go(func() { sup.run(ctx) })
	}
	if ready != nil {
		r := Ready{SocketPath: sockPath}
		if hl != nil {
			r.URL = "http://" + hl.Addr().String() + "/"
		}
		ready(r)
	}

	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	if srv != nil {
		_ = srv.Shutdown(shutdownCtx) // waits for signaling sockets' bye, bounded
	}
	d.closeSessions()
	if d.iceTCP != nil {
		d.iceTCP.Close()
	}
	if d.iceUDP != nil {
		d.iceUDP.Close()
	}
	wg.Wait()
	return nil
}

// listenUnix listens on path, replacing a stale socket file left by a crashed device but never
// one that another device is still serving.
func listenUnix(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("capture socket %s is in use by another device", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("capture socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (d *Device) closeSessions() {
	d.mu.Lock()
	all := make([]*peer.Session, 0, len(d.sessions))
	for s := range d.sessions {
		all = append(all, s)
	}
	d.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

// backend adapts the device to what signaling needs.
type backend struct{ d *Device }

func (b backend) NewSession(onCandidate func(*webrtc.ICECandidateInit)) (signal.Session, error) {
	s, err := b.d.engine.NewSession(b.d.stream, onCandidate)
	if err != nil {
		return nil, err
	}
	b.d.mu.Lock()
	b.d.sessions[s] = struct{}{}
	b.d.mu.Unlock()
	go func() {
		<-s.Done()
		b.d.mu.Lock()
		delete(b.d.sessions, s)
		b.d.mu.Unlock()
	}()
	return s, nil
}

func (b backend) ICEServers() []webrtc.ICEServer { return b.d.engine.ICEServers() }

func (b backend) StreamInfo() any {
	if info, ok := b.d.stream.Info(); ok {
		return info
	}
	return nil
}

// Status is what GET /api/status returns.
type Status struct {
	Hub      *HubStatus   `json:"hub,omitempty"`
	Stream   *stream.Info `json:"stream"`
	Stats    stream.Stats `json:"stats"`
	Sessions []peer.Stats `json:"sessions"`
}

func (d *Device) status(w http.ResponseWriter, _ *http.Request) {
	st := Status{Stats: d.stream.Stats(), Sessions: []peer.Stats{}}
	if d.hub != nil {
		st.Hub = &HubStatus{URL: d.cfg.Hub.URL, ID: d.cfg.Hub.ID, Connected: d.hub.Connected()}
	}
	if info, ok := d.stream.Info(); ok {
		st.Stream = &info
	}
	d.mu.Lock()
	for s := range d.sessions {
		st.Sessions = append(st.Sessions, s.Stats())
	}
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// frames serves the recent frames' times (GET /api/frames): what `p2pcast bench latency` joins
// with the page's per-frame readings to split capture → present into stages.
func (d *Device) frames(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Frames []stream.FrameTimes `json:"frames"`
	}{d.stream.Timeline()})
}

// HubStatus tells whether the device is connected to its hub.
type HubStatus struct {
	URL       string `json:"url"`
	ID        string `json:"id"`
	Connected bool   `json:"connected"`
}
