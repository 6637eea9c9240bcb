//go:build !device

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	p2phub "github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// Exit codes of view beyond main's 0, 1 and 2.
const (
	exitRefused     = 3 // the hub refused: unauthorized, forbidden, token expired
	exitUnavailable = 4 // device offline or busy, or the hub rate-limits this address
)

// exitError carries the exit code an error deserves; run exits with ExitCode().
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// viewerTokenEnv is the environment variable a viewer token may come from.
const viewerTokenEnv = "P2PCAST_TOKEN"

const viewHelp = `Usage: p2pcast view [flags] http://DEVICE[:PORT][/whep]
       p2pcast view [flags] ws://DEVICE[:PORT][/ws]
       p2pcast view [flags] --hub ws[s]://HOST[:PORT] --device ID --token-file FILE
  (--source ID watches one of a device's sources: http://…/whep/ID, or the watch names it)

Watch a device from the terminal and measure what arrives (frames, bitrate, loss, time to the
first frame, capture -> receive delay, the ICE pair).

  http://…  WHEP: one POST, the viewer offers (the path defaults to /whep)
  ws://…    the device's WebSocket signaling: the device offers, ICE candidates trickle
  --hub     through a rendezvous hub, with a viewer token (docs/hub.md)

The token (the hub's, or for a device with LAN auth its pairing link's #token=… or one from
` + "`p2pcast token --data DEVICEDIR`" + `) comes from exactly one of --token-file FILE, the environment
variable P2PCAST_TOKEN, or --token T. Prefer the file or the environment: a command line (and so
--token) is visible to every user of this machine (ps, /proc).

Flags:
`

const viewExitCodes = `
Exit codes:
  0  watched (at least one frame arrived)
  1  failure: no media, connection failed, no frame before --timeout
  2  usage: bad flags or arguments (a missing token with --hub, too many token sources)
  3  refused: unauthorized (no, bad, expired or revoked token), forbidden (not this device)
  4  unavailable: the device is offline or busy, or the hub rate-limits this address
`

func runView(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("view", "view [flags] URL", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), viewHelp)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), viewExitCodes)
	}
	out := fs.String("out", "", "write what arrives to `FILE`, or - for stdout (see --format)")
	format := fs.String("format", "", "--out's format: mp4 (fragmented MP4, video and audio; playable while it grows) or annexb (H.264 only); default: mp4 for a FILE ending in .mp4, else annexb")
	duration := fs.Duration("duration", 0, "stop this long after the first frame (0: until interrupted)")
	frames := fs.Int("frames", 0, "stop after this many frames")
	stats := fs.String("stats", "", "'json': print one JSON line of results at the end (stderr when --out -)")
	timeout := fs.Duration("timeout", 20*time.Second, "give up when no frame has arrived this long after starting (0: never)")
	relay := fs.Bool("relay", false, "use TURN relay candidates only (the TURN servers come from the device's or hub's hello)")
	reconnect := fs.Bool("reconnect", false, "when the session ends (the device restarted, the path failed), start a new one and keep writing --out, until interrupted or --duration/--frames; without it the watch ends with its session (a hub restarting does not end it: the media goes on peer to peer)")
	hub := fs.String("hub", "", "watch through the hub at `URL` (ws[s]://HOST[:PORT], path /ws by default)")
	deviceID := fs.String("device", "", "the device `ID` to watch through the hub")
	source := fs.String("source", "", "the device's source `ID` to watch (a device with several: cameras, a desktop; default: its default source)")
	token := fs.String("token", "", "the `TOKEN` of the hub, or of a device with LAN auth (visible to other users in the process list: prefer --token-file or $"+viewerTokenEnv+")")
	tokenFile := fs.String("token-file", "", "read the token from `FILE`")
	insecureHub := fs.Bool("insecure-hub", false, "allow ws:// (no TLS) to a hub at a public address")
	caFile := fs.String("ca", "", "PEM certificate(s) to trust for https:// and wss:// besides the system's (private CA, self-signed)")
	verbose := fs.Bool("v", false, "debug logs")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *stats != "" && *stats != "json" {
		return fmt.Errorf("%w: --stats takes only json", errUsage)
	}
	if *frames < 0 || *duration < 0 || *timeout < 0 {
		return fmt.Errorf("%w: --frames, --duration and --timeout cannot be negative", errUsage)
	}

	if *source != "" && !signal.ValidSourceID(*source) {
		return fmt.Errorf("%w: --source %q: want 1 to 32 of a-z, 0-9 and -", errUsage, *source)
	}
	opts := viewer.Options{Source: *source, Duration: *duration, Frames: *frames, FirstFrameTimeout: *timeout, RelayOnly: *relay, Reconnect: *reconnect,
		Logger: newLogger(stderr, *verbose)}
	if opts.TLS, err = tlsTrusting(*caFile); err != nil {
		return err
	}
	if *hub != "" {
		if len(positional) != 0 {
			return fmt.Errorf("%w: give either a device URL or --hub, not both", errUsage)
		}
		if *deviceID == "" {
			return fmt.Errorf("%w: --hub needs --device ID", errUsage)
		}
		if !isURLWithScheme(*hub, "ws", "wss", "http", "https") {
			return fmt.Errorf("%w: --hub %q: want ws://HOST[:PORT] or wss://HOST[:PORT]", errUsage, *hub)
		}
		if u, _ := url.Parse(*hub); u.User != nil || u.RawQuery != "" {
			return fmt.Errorf("%w: --hub takes no credentials or query: the token goes in --token-file or $%s", errUsage, viewerTokenEnv)
		}
		t, err := secretFrom("token", "token", *token, *tokenFile, viewerTokenEnv)
		if err != nil {
			return err
		}
		if t == "" {
			return fmt.Errorf("%w: --hub needs a token: --token-file FILE or $%s (or --token, visible to other users)", errUsage, viewerTokenEnv)
		}
		opts.HubURL, opts.Device, opts.Token = *hub, *deviceID, t
		if u, _ := url.Parse(*hub); (strings.EqualFold(u.Scheme, "ws") || strings.EqualFold(u.Scheme, "http")) && !*insecureHub {
			// Without TLS the token would cross the internet in clear: only a hub on a private,
			// shared or loopback address is reached over plain ws://.
			opts.NetDial = p2phub.PlainDialer(nil)
		}
	} else {
		if *deviceID != "" || *insecureHub {
			return fmt.Errorf("%w: --device and --insecure-hub go with --hub", errUsage)
		}
		// A device with LAN auth wants a token too (its pairing link's, or `p2pcast token`'s).
		if opts.Token, err = secretFrom("token", "token", *token, *tokenFile, viewerTokenEnv); err != nil {
			return err
		}
		if len(positional) != 1 {
			return fmt.Errorf("%w: want one device URL (http://DEVICE:PORT or ws://DEVICE:PORT/ws) or --hub", errUsage)
		}
		target := positional[0]
		switch {
		case isURLWithScheme(target, "http", "https"):
			if !strings.HasSuffix(target, "/whep") {
				target = strings.TrimSuffix(target, "/") + "/whep"
			}
			opts.WHEPURL = viewer.WHEPSourceURL(target, *source)
		case isURLWithScheme(target, "ws", "wss"):
			opts.WSURL = target
		default:
			return fmt.Errorf("%w: %q is not an http(s):// (WHEP) or ws(s):// (WebSocket) URL", errUsage, target)
		}
	}

	switch *format {
	case "":
		opts.Format = viewer.FormatAnnexB
		if strings.HasSuffix(strings.ToLower(*out), ".mp4") {
			opts.Format = viewer.FormatMP4
		}
	case viewer.FormatAnnexB, viewer.FormatMP4:
		opts.Format = *format
	default:
		return fmt.Errorf("%w: --format %q: want mp4 or annexb", errUsage, *format)
	}
	statsOut := stdout
	switch *out {
	case "":
	case "-":
		opts.Out, statsOut = stdout, stderr
	default:
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.Out = f
	}
	// On a terminal, a live line of what arrives (stderr: stdout may carry the stream).
	live := *stats != "json" && isTerminal(stderr)
	if live {
		var prev viewer.Result
		var prevAt time.Time
		opts.Progress = func(r viewer.Result) {
			now := time.Now()
			fps, bps := r.FPS, float64(r.BitrateBPS)
			if !prevAt.IsZero() {
				if dt := now.Sub(prevAt).Seconds(); dt > 0 {
					fps, bps = float64(r.Frames-prev.Frames)/dt, float64(r.Bytes-prev.Bytes)*8/dt
				}
			}
			prev, prevAt = r, now
			net := ""
			if n := r.Network; n != nil {
				net = fmt.Sprintf("  rtt %.0f ms  est %.2f Mbit/s  %dx%d", n.RTTMS, float64(n.EstimateBPS)/1e6, n.Rendition.Width, n.Rendition.Height)
			}
			fmt.Fprintf(stderr, "\r\x1b[K%d frames  %.1f fps  %.2f Mbit/s  loss %.2f %%  capture→receive %.1f ms%s",
				r.Frames, fps, bps/1e6, r.LossPct, r.CaptureToReceiveMS, net)
		}
	}
	res, err := viewer.Watch(ctx, opts)
	if live {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if *stats == "json" {
		b, _ := json.Marshal(res)
		fmt.Fprintln(statsOut, string(b))
	} else if err == nil {
		delay := ""
		if res.AbsCaptureTime {
			delay = fmt.Sprintf(", capture -> receive %.1f ms", res.CaptureToReceiveMS)
		}
		fmt.Fprintf(stderr, "%d frames (%d keyframes), %dx%d, %.1f fps, %.2f Mbit/s, loss %.2f%%, first frame after %.0f ms%s, pair %s/%s/%s (%s)\n",
			res.Frames, res.Keyframes, res.Width, res.Height, res.FPS, float64(res.BitrateBPS)/1e6, res.LossPct, res.TTFFMS, delay,
			res.Pair.LocalType, res.Pair.RemoteType, res.Pair.Protocol, res.Signaling)
		if a := res.Audio; a != nil {
			fmt.Fprintf(stderr, "audio: %s, %d packets, %.1f kbit/s, lost %d, capture -> receive %.1f ms\n",
				a.Codec, a.Packets, float64(a.BitrateBPS)/1e3, a.Lost, a.CaptureToReceiveMS)
		}
	}
	if err != nil && ctx.Err() != nil && res.Frames > 0 {
		return nil // interrupted after watching: a normal end
	}
	return viewExit(err)
}

// viewExit gives refusals their exit codes; other errors keep main's (1).
func viewExit(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, viewer.ErrRefused):
		return &exitError{code: exitRefused, err: err}
	case errors.Is(err, viewer.ErrUnavailable):
		return &exitError{code: exitUnavailable, err: err}
	}
	return err
}

func isURLWithScheme(raw string, schemes ...string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	for _, s := range schemes {
		if strings.EqualFold(u.Scheme, s) {
			return true
		}
	}
	return false
}

// isTerminal reports whether w is a terminal (a live status line is then worth printing).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
