package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"

	"github.com/p2pcast/p2pcast/internal/device"
)

func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := device.Defaults()
	fs := newFlags("device", "device [flags]", stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP listen address (viewer page, /whep, /ws)")
	fs.StringVar(&cfg.SocketPath, "socket", "", "capture socket path (default: a private temporary path, printed at start)")
	fs.StringVar(&cfg.Source, "source", cfg.Source, "testpattern (runs p2pcast-capture) or socket (wait for any producer)")
	fs.Var(&cfg.Size, "size", "picture size WxH")
	fs.IntVar(&cfg.FPS, "fps", cfg.FPS, "frames per second")
	fs.Var(&cfg.Bitrate, "bitrate", "target bitrate, SI units (2M = 2,000,000 bit/s)")
	fs.DurationVar(&cfg.GOP, "gop", cfg.GOP, "time between scheduled keyframes")
	fs.StringVar(&cfg.CapturePath, "capture", "", "p2pcast-capture binary (default: next to this binary, then PATH)")
	fs.DurationVar(&cfg.PlayoutDelay, "playout-delay", 0, "playout delay asked of viewers (min = max); negative: don't send the extension")
	fs.IntVar(&cfg.MaxViewers, "max-viewers", cfg.MaxViewers, "most viewers at once")
	fs.StringVar(&cfg.Hub.URL, "hub", "", "join a rendezvous hub, ws[s]://HOST:PORT (viewers anywhere reach the device through it)")
	fs.StringVar(&cfg.Hub.ID, "id", "", "this device's id at the hub")
	hubCA := fs.String("hub-ca", "", "PEM certificate(s) to trust for a wss:// hub besides the system's (private CA, self-signed)")
	keyFlag := fs.String("key", "", "device secret key (p2pk1_…); visible in ps: prefer --key-file or P2PCAST_KEY")
	keyFile := fs.String("key-file", "", "file holding the device secret key")
	fs.IntVar(&cfg.ICETCPPort, "ice-tcp-port", 0, "TCP port for ICE over TCP, for viewers whose network drops UDP (0: any free port; -1: off)")
	fs.IntVar(&cfg.ICEUDPPort, "ice-udp-port", 0, "one UDP port for every viewer's media (to open in a firewall or forward on a router); 0: a port per viewer")
	publicIP := fs.String("public-ip", "", "address(es) a port forward or 1:1 NAT reaches this device on, comma-separated (offered to viewers)")
	fs.BoolVar(&cfg.NoLAN, "no-lan", false, "with --hub: serve no viewer endpoints on --http")
	stun := fs.String("stun", "", "STUN server(s) for LAN mode, comma-separated (stun:HOST:PORT); a hub supplies its own")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off by default")
	verbose := fs.Bool("v", false, "debug logs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	key, err := secretFrom("device key", "key", *keyFlag, *keyFile, "P2PCAST_KEY")
	if err != nil {
		return err
	}
	if key != "" {
		if cfg.Hub.Key, err = auth.ParseDeviceKey(key); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if cfg.Hub.TLS, err = tlsTrusting(*hubCA); err != nil {
		return err
	}
	if *publicIP != "" {
		cfg.PublicIPs = strings.Split(*publicIP, ",")
	}
	if *stun != "" {
		cfg.ICEServers = []webrtc.ICEServer{{URLs: strings.Split(*stun, ",")}}
	}
	log := newLogger(stderr, *verbose)
	if *pprofAddr != "" {
		if err := servePprof(ctx, *pprofAddr, log); err != nil {
			return err
		}
	}
	d, err := device.New(cfg, log)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return d.Run(ctx, func(r device.Ready) {
		log.Info("capture socket", "path", r.SocketPath)
		if r.URL != "" {
			fmt.Fprintln(stdout, r.URL)
		}
	})
}

// servePprof serves the profiler on its own listener, apart from the viewer-facing server, so it
// is never exposed by accident with --http 0.0.0.0.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listen: %w", err)
	}
	// Waits matter as much as CPU here (handshakes, queues): record where goroutines block.
	runtime.SetBlockProfileRate(int(time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server", "err", err)
		}
	}()
	log.Info("profiler", "url", "http://"+l.Addr().String()+"/debug/pprof/")
	return nil
}
