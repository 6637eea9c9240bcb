package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/ipclass"

	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/record"
)

// deviceSetup is what `p2pcast device`'s command line, config file and environment say.
type deviceSetup struct {
	cfg     device.Config
	verbose bool
	pprof   string
	pairing pairingLink
}

func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, done, err := parseDevice(args, stdout, stderr, nil)
	if done || err != nil {
		return err
	}
	cfg, pairing := s.cfg, s.pairing
	log := newLogger(stderr, s.verbose)
	if cfg.InsecureNoAuth {
		log.Warn("INSECURE: --insecure-no-auth: anyone who reaches " + cfg.HTTPAddr + " may watch, and later talk and control, with no token")
	}
	if s.pprof != "" {
		if err := servePprof(ctx, s.pprof, log); err != nil {
			return err
		}
	}
	d, err := device.New(cfg, log)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	// SIGHUP and the management page's "reload from file" read the file and the environment
	// again with the same command line (docs/manage.md); the key store stays the one opened.
	d.SetReloader(func() (device.Config, error) {
		var store *auth.Store
		if cfg.LANAuth != nil {
			store = cfg.LANAuth.Store
		}
		again, _, err := parseDevice(args, io.Discard, io.Discard, store)
		return again.cfg, err
	})
	reloadOnHangup(ctx, d.ReloadFromFile, log)
	return d.Run(ctx, func(r device.Ready) {
		log.Info("capture socket", "path", r.SocketPath)
		if r.OpsURL != "" {
			log.Info("metrics and health", "url", r.OpsURL+"metrics")
		}
		if r.URL == "" {
			return
		}
		if pairing.store == nil {
			fmt.Fprintln(stdout, r.URL)
			return
		}
		if err := pairing.print(stdout, r.URL); err != nil {
			log.Error("pairing link", "err", err)
		}
	})
}

// reloadOnHangup reloads on each SIGHUP until ctx ends. SIGHUP is taken before it returns, so
// a caller that says it is ready afterwards loses none: one sent before would be lost (under
// nohup, which ignores it) or end the process (Go's default), and a test that signalled right
// after the hub printed its URL once saw its reload never happen.
func reloadOnHangup(ctx context.Context, reload func() (applied, needsRestart []string, err error), log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload logs what it applied and what needs a restart.
				if _, _, err := reload(); err != nil {
					log.Error("reload on SIGHUP", "err", err)
				}
			}
		}
	}()
}

// parseDevice builds the device's configuration from args, the config file and the
// environment. store, when not nil, is the key store already open (a reload).
func parseDevice(args []string, stdout, stderr io.Writer, store *auth.Store) (s deviceSetup, done bool, err error) {
	cfg := device.Defaults()
	fs := newFlags("device", "device [flags]", stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP listen address (viewer page, /whep, /ws; /metrics, /healthz and /readyz, also with --no-lan)")
	opsAllow := fs.String("ops-allow", defaultOpsAllow, opsAllowUsage)
	fs.StringVar(&cfg.SocketPath, "socket", "", "capture socket path (default: a private temporary path, printed at start)")
	fs.StringVar(&cfg.Source, "source", cfg.Source, "testpattern (p2pcast-capture draws a test pattern), wayland (p2pcast-capture streams the Wayland desktop of $WAYLAND_DISPLAY; viewers with the control grant drive it), v4l2 (a USB or CSI camera: --camera), socket (wait for any producer), or an IP camera's rtsp://[user[:pass]@]host[:port]/path")
	fs.StringVar(&cfg.SourceID, "source-id", device.DefaultSourceID, "the id of the --source (viewers name it with ?source=ID, /whep/ID, view --source ID; a device with one source needs none)")
	addSources := (*device.SourceList)(&cfg.Sources)
	fs.Var(addSources, "add-source", "one more source, repeatable: ID=SPEC[;size=WxH][;fps=N][;bitrate=B], SPEC as --source takes it, or v4l2:/dev/videoN, socket[:PATH]; e.g. cam2=rtsp://cam/stream, desk=wayland, side=testpattern;size=640x360 (docs/sources.md)")
	fs.StringVar(&cfg.EncoderPriority, "encoder-priority", "", "the producer's video encoders to try in order, comma-separated, e.g. rkmpi,v4l2m2m,x264 or v4l2m2m:/dev/video11,x264 (default: the hardware encoders it was built with, then x264; docs/encoders.md)")
	fs.StringVar(&cfg.Camera, "camera", "", "with --source v4l2: the camera device (default /dev/video0); its H.264, if it has it at --size, is passed through, else raw pictures are encoded")
	rtspPasswordFile := fs.String("rtsp-password-file", "", "with an rtsp:// source: read the camera's password from this file (the URL names the user; a password in the URL is visible in ps)")
	fs.StringVar(&cfg.Output, "output", "", "with --source wayland: the output to capture, e.g. HDMI-A-1 (default: the first; the portal asks the user instead)")
	fs.StringVar(&cfg.DesktopBackend, "desktop", "", "with --source wayland: wlroots (wlr-screencopy, virtual pointer and keyboard) or portal (GNOME, KDE: xdg-desktop-portal and PipeWire); default: wlroots where the compositor offers wlr-screencopy, else portal")
	fs.Var(&cfg.Size, "size", "picture size WxH (default 1280x720; with --source wayland, the output's own size)")
	fs.IntVar(&cfg.FPS, "fps", cfg.FPS, "frames per second (with --source wayland, at most this many: the default there is 60)")
	fs.Var(&cfg.Bitrate, "bitrate", "target bitrate, SI units (2M = 2,000,000 bit/s)")
	fs.DurationVar(&cfg.GOP, "gop", cfg.GOP, "time between scheduled keyframes")
	fs.StringVar(&cfg.Pattern, "pattern", cfg.Pattern, "test pattern: bars (easy to compress), busy (noise, fast motion, scene cuts: the encoder spends the whole bitrate) or still (the bars alone: a scene for --pattern-object)")
	fs.StringVar(&cfg.PatternObject, "pattern-object", "", "test pattern: a box moving across, hidden for off then shown for on, again and again: on=DUR,off=DUR such as on=2s,off=3s (a motion scene)")
	fs.BoolVar(&cfg.Motion.Enabled, "motion", false, "detect motion in the producer (raw pictures: test pattern, desktop, a camera's raw formats) and publish events (docs/motion.md)")
	fs.IntVar(&cfg.Motion.Sensitivity, "motion-sensitivity", 0, "with --motion: 1 (large, strong changes only) to 100 (the slightest) (default 50)")
	fs.StringVar(&cfg.Motion.Mask, "motion-mask", "", "with --motion: regions to ignore, x,y,w,h;x,y,w,h in shares of the picture (0 to 1)")
	fs.DurationVar(&cfg.Motion.MinDuration, "motion-min-duration", 0, "with --motion: motion this long starts an event (default 500ms)")
	fs.DurationVar(&cfg.Motion.Hold, "motion-hold", 0, "with --motion: no motion this long ends an event (default 2s)")
	fs.IntVar(&cfg.Motion.FPS, "motion-fps", 0, "with --motion: pictures analysed a second, at most (default 10)")
	fs.StringVar(&cfg.Webhook.URL, "webhook", "", "POST each event's JSON (at its start and at its end) to this URL: https://, or http:// on loopback")
	fs.BoolVar(&cfg.Webhook.Insecure, "webhook-insecure", false, "allow an http:// --webhook on a host that is not loopback (events in clear text)")
	fs.StringVar(&cfg.DetectorSocket, "detector-socket", "", "listen on this Unix socket (0600) for events from local detector processes, one JSON event a line (docs/motion.md)")
	fs.Var(&cfg.Sub, "sub", "also send each picture downscaled to WxH (e.g. 640x360) as a second video track, an alternate rendition (default: none)")
	fs.Var(&cfg.SubBitrate, "sub-bitrate", "the sub rendition's target bitrate, SI units (default: a quarter of --bitrate)")
	fs.StringVar(&cfg.CapturePath, "capture", "", "p2pcast-capture binary (default: next to this binary, then PATH)")
	fs.StringVar(&cfg.AudioIn, "audio-in", "", "send audio: testtone (a beep each second, with a flash in the picture) or an ALSA capture device (default: no audio)")
	fs.StringVar(&cfg.AudioOut, "audio-out", "", "play viewers' talk-back on this ALSA playback device (default: viewers cannot talk)")
	fs.DurationVar(&cfg.PlayoutDelay, "playout-delay", 0, "playout delay asked of viewers (min = max); negative: don't send the extension")
	fs.IntVar(&cfg.MaxViewers, "max-viewers", cfg.MaxViewers, "most viewers at once")
	fs.IntVar(&cfg.P2PViewers, "p2p-viewers", 0, "with --sfu-janus: serve at most `N` viewers peer to peer; the hub's viewers past them (view-only tokens) watch through the SFU, which the device publishes to once (docs/sfu.md; 0: no limit but the uplink estimate)")
	fs.StringVar(&cfg.SFU.Janus, "sfu-janus", "", "publish to this Janus server's VideoRoom for viewers past --p2p-viewers: its HTTP API `URL`, e.g. http://10.0.0.5:8088/janus (the hub must bridge to the same Janus: its --sfu-janus)")
	sfuSecretFile := fs.String("sfu-janus-secret-file", "", "file holding the Janus server's api_secret, if it has one (or $P2PCAST_SFU_JANUS_SECRET)")
	fs.DurationVar(&cfg.SFU.Linger, "sfu-linger", 30*time.Second, "keep publishing to the SFU this long after its last viewer left")
	fs.StringVar(&cfg.Hub.URL, "hub", "", "join a rendezvous hub, ws[s]://HOST:PORT (viewers anywhere reach the device through it)")
	fs.StringVar(&cfg.Hub.ID, "id", "", "this device's id at the hub")
	hubCA := fs.String("hub-ca", "", "PEM certificate(s) to trust for a wss:// hub besides the system's (private CA, self-signed)")
	keyFlag := fs.String("key", "", "device secret key (p2pk1_…); visible in ps: prefer --key-file or P2PCAST_KEY")
	keyFile := fs.String("key-file", "", "file holding the device secret key")
	fs.IntVar(&cfg.ICETCPPort, "ice-tcp-port", 0, "TCP port for ICE over TCP, for viewers whose network drops UDP (0: any free port; -1: off)")
	recovery := fs.String("loss-recovery", "nack,fec", "how lost packets are repaired: nack (retransmission), fec (RED/ULPFEC by measured loss), both, or none: turning one off measures what it buys")
	fs.BoolVar(&cfg.Adapt, "adapt", cfg.Adapt, "adapt to each viewer's network: switch viewers between main and sub streams, lower the encoder's bitrate and frame rate when every viewer is limited")
	fs.IntVar(&cfg.ICEUDPPort, "ice-udp-port", 0, "one UDP port for every viewer's media (to open in a firewall or forward on a router; its sends are batched and its SRTP written below Pion, the cheapest way to serve many viewers); 0: a port per viewer")
	publicIP := fs.String("public-ip", "", "address(es) a port forward or 1:1 NAT reaches this device on, comma-separated (offered to viewers)")
	fs.BoolVar(&cfg.NoLAN, "no-lan", false, "with --hub: serve no viewer endpoints on --http (implied by --hub unless LAN auth is set up)")
	dataDir := fs.String("data", "", "the device's data directory: its key for LAN tokens (pairing links, `p2pcast token --data DIR`) and their revocation list (default "+defaultDeviceDataDir()+" with --pair or --lan-auth)")
	pair := fs.Bool("pair", false, "require tokens on the LAN endpoints, and print a pairing link (and its QR code) that carries one")
	pairGrant := fs.String("pair-grant", "view", "what the pairing link's token grants: view, talk, control, files (comma-separated)")
	pairTTL := fs.Duration("pair-ttl", 24*time.Hour, "how long the pairing link's token lasts (at most 720h)")
	lanAuth := fs.Bool("lan-auth", false, "require tokens on the LAN endpoints (signed by --data's key, or the hub's with --hub-token-key or --hub-jwks), without printing a pairing link")
	hubTokenKey := fs.String("hub-token-key", "", "accept the hub's tokens on the LAN endpoints, verified offline with this key (`p2pcast token key --data HUBDIR`: p2pv1_…; the hub's signing key until it rotates, see --hub-jwks)")
	hubJWKS := fs.String("hub-jwks", "", "accept the hub's tokens on the LAN endpoints, verified offline with the keys in this `FILE`: the hub's JWK Set (`p2pcast token jwks --data HUBDIR`, or its /.well-known/jwks.json saved), reread when it changes")
	fs.BoolVar(&cfg.InsecureNoAuth, "insecure-no-auth", false, "serve the LAN endpoints to anyone who reaches --http, with every right (only on a network you trust entirely)")
	allowOrigin := fs.String("allow-origin", "", "origins (scheme://host[:port], comma-separated) whose pages may use /whep and /ws; none by default")
	allowHost := fs.String("allow-host", "", "host names this device answers to besides localhost and IP addresses (comma-separated; *.example.com for subdomains)")
	fs.IntVar(&cfg.MaxPerSource, "max-per-source", cfg.MaxPerSource, "most sessions from one address (IPv6: one /64) or one token")
	fs.BoolVar(&cfg.Hub.Insecure, "insecure-hub", false, "allow ws:// (no TLS) to a hub at a public address")
	stun := fs.String("stun", "", "STUN server(s) for LAN mode, comma-separated (stun:HOST:PORT); a hub supplies its own")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off by default")
	fs.StringVar(&cfg.Record.Dir, "record-dir", "", "record into this directory: fragmented MP4 segments YYYY/MM/DD/<start>_<seq>.mp4, index.jsonl and events.jsonl (default: no recording)")
	cfg.Record.Mode = record.ModeContinuous
	fs.Var(&cfg.Record.Mode, "record", "with --record-dir, when to record: continuous, events (while a detection event lasts, from --record-pre-roll before it to --record-post-roll after) or manual (between start and stop on the \"record\" channel); start and stop work in every mode")
	fs.DurationVar(&cfg.Record.PreRoll, "record-pre-roll", record.DefaultPreRoll, "with --record events, how much before an event is known its recording starts (from the keyframe before; held in memory while waiting)")
	fs.DurationVar(&cfg.Record.PostRoll, "record-post-roll", record.DefaultPostRoll, "with --record events, how long recording goes on after an event ends")
	fs.DurationVar(&cfg.Record.Segment, "record-segment", record.DefaultSegment, "a recording segment's length (cut at the first keyframe after it)")
	recordMaxAge := record.Age(record.DefaultMaxAge)
	fs.Var(&recordMaxAge, "record-max-age", "delete recordings older than this (e.g. 7d, 36h)")
	cfg.Record.MaxSize, cfg.Record.MinFree = record.DefaultMaxSize, record.DefaultMinFree
	fs.Var(&cfg.Record.MaxSize, "record-max-size", "keep at most this much recorded (oldest deleted first; SI units: 2GB)")
	fs.Var(&cfg.Record.MinFree, "record-min-free", "keep this much of the disk free: delete the oldest recordings, then pause recording")
	verbose := fs.Bool("v", false, "debug logs")
	if done, err := cli.ParseConfigured(fs, args, stdout, "key"); done || err != nil {
		return s, done, err
	}
	if fs.NArg() > 0 {
		return s, false, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg.Record.MaxAge = time.Duration(recordMaxAge)
	cfg.Version = version
	if cfg.OpsAllow, err = parseOpsAllow(*opsAllow); err != nil {
		return s, false, fmt.Errorf("%w: --ops-allow: %v", errUsage, err)
	}
	if cfg.Source == "wayland" {
		// A desktop streams at its own size, and smoothly, unless told otherwise.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["size"] {
			cfg.Size = device.Size{}
		}
		if !set["fps"] {
			cfg.FPS = 60
		}
	}
	if cfg.Source == "wayland" || slices.ContainsFunc(cfg.Sources, func(s device.SourceConfig) bool { return s.Source == "wayland" }) {
		// The portal's restore token lives there: a restart does not ask the user again.
		cfg.DataDir = *dataDir
		if cfg.DataDir == "" {
			cfg.DataDir = defaultDeviceDataDir()
		}
	}
	if cfg.Recovery, err = parseRecovery(*recovery); err != nil {
		return s, false, err
	}
	if *rtspPasswordFile != "" {
		if cfg.RTSPUser, cfg.RTSPPassword, err = rtspCredentials(cfg.Source, *rtspPasswordFile); err != nil {
			return s, false, err
		}
	}
	if cfg.SFU.APISecret, err = secretFrom("Janus API secret", "sfu-janus-secret", "", *sfuSecretFile, "P2PCAST_SFU_JANUS_SECRET"); err != nil {
		return s, false, err
	}
	key, err := secretFrom("device key", "key", *keyFlag, *keyFile, "P2PCAST_KEY")
	if err != nil {
		return s, false, err
	}
	if key != "" {
		if cfg.Hub.Key, err = auth.ParseDeviceKey(key); err != nil {
			return s, false, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if cfg.Hub.TLS, err = tlsTrusting(*hubCA); err != nil {
		return s, false, err
	}
	if *publicIP != "" {
		cfg.PublicIPs = strings.Split(*publicIP, ",")
	}
	if *stun != "" {
		cfg.ICEServers = []webrtc.ICEServer{{URLs: strings.Split(*stun, ",")}}
	}
	cfg.AllowOrigins, cfg.AllowHosts = splitList(*allowOrigin), splitList(*allowHost)
	if *pair || *lanAuth || *hubTokenKey != "" || *hubJWKS != "" {
		la := &device.LANAuth{ID: cfg.Hub.ID}
		if la.ID == "" {
			la.ID = device.DefaultLANID
		}
		if *hubTokenKey != "" {
			k, err := auth.ParseTokenKey(*hubTokenKey)
			if err != nil {
				return s, false, fmt.Errorf("%w: --hub-token-key: %v", errUsage, err)
			}
			la.HubKeys = append(la.HubKeys, k)
		}
		if *hubJWKS != "" {
			// Read now so that a wrong file stops the start; the gate rereads it as it changes.
			if _, err := (&auth.KeyFile{Path: *hubJWKS, Issuer: auth.LocalIssuer}).Load(); err != nil {
				return s, false, fmt.Errorf("%w: --hub-jwks: %v", errUsage, err)
			}
			la.HubKeyFile = *hubJWKS
		}
		if *pair || *lanAuth || *dataDir != "" {
			dir := *dataDir
			if dir == "" {
				dir = defaultDeviceDataDir()
			}
			if store == nil {
				if store, err = auth.OpenStore(dir); err != nil {
					return s, false, err
				}
			}
			la.Store = store
		}
		cfg.LANAuth = la
	}
	var pairing pairingLink
	if *pair {
		if pairing.grants, err = auth.ParseGrants(*pairGrant); err != nil {
			return s, false, fmt.Errorf("%w: --pair-grant: %v", errUsage, err)
		}
		if *pairTTL <= 0 || *pairTTL > auth.MaxLifetime {
			return s, false, fmt.Errorf("%w: --pair-ttl %s: want more than 0 and at most %s", errUsage, *pairTTL, auth.MaxLifetime)
		}
		pairing.store, pairing.ttl, pairing.id = store, *pairTTL, cfg.LANAuth.ID
	}
	return deviceSetup{cfg: cfg, verbose: *verbose, pprof: *pprofAddr, pairing: pairing}, false, nil
}

// The operator's endpoints (/metrics, /healthz, /readyz) answer this machine by default.
const (
	defaultOpsAllow = "127.0.0.0/8,::1"
	opsAllowUsage   = "client `ADDRESSES` (CIDRs or addresses, comma-separated; none for nobody) that may read /metrics, /healthz and /readyz"
)

// parseOpsAllow parses --ops-allow: none is an empty list (nobody), not the default.
func parseOpsAllow(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "none" {
		return []netip.Prefix{}, nil
	}
	p, err := ipclass.ParsePrefixes(s)
	if p == nil && err == nil {
		p = []netip.Prefix{}
	}
	return p, err
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// defaultDeviceDataDir is where a device keeps its LAN token key unless --data says otherwise.
func defaultDeviceDataDir() string { return stateDir("device") }

// parseRecovery reads --loss-recovery: a comma-separated list of nack and fec, or none.
func parseRecovery(v string) (peer.Recovery, error) {
	r := peer.Recovery{NoNACK: true, NoFEC: true}
	if v == "none" {
		return r, nil
	}
	for _, w := range strings.Split(v, ",") {
		switch strings.TrimSpace(w) {
		case "nack":
			r.NoNACK = false
		case "fec":
			r.NoFEC = false
		default:
			return r, fmt.Errorf("%w: --loss-recovery %q: want nack, fec, nack,fec or none", errUsage, v)
		}
	}
	return r, nil
}

// rtspCredentials reads --rtsp-password-file for the camera at source, whose URL names the user.
func rtspCredentials(source, file string) (user, password string, err error) {
	u, err := url.Parse(source)
	if err != nil || !strings.EqualFold(u.Scheme, "rtsp") || u.User == nil || u.User.Username() == "" {
		return "", "", fmt.Errorf("%w: --rtsp-password-file needs --source rtsp://USER@HOST/…", errUsage)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("%w: --rtsp-password-file: %v", errUsage, err)
	}
	password = strings.TrimRight(string(b), "\r\n")
	if password == "" {
		return "", "", fmt.Errorf("%w: --rtsp-password-file %s is empty", errUsage, file)
	}
	return u.User.Username(), password, nil
}
