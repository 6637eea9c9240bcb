//go:build !device

package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/files"
	p2phub "github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/viewer"
)

// Exit codes of fetch beyond view's.
const (
	exitChecksum = 5 // the fetched file's SHA-256 is not the device's
	exitNotFound = 6 // the device has no such recording, or refused the path
)

const fetchHelp = `Usage: p2pcast fetch [flags] http://DEVICE[:PORT]/ REMOTE-PATH --out FILE
       p2pcast fetch [flags] http://DEVICE[:PORT]/ --list [--json]
       p2pcast fetch [flags] --hub ws[s]://HOST[:PORT] --device ID --token-file F REMOTE-PATH --out FILE

Fetch a recording from a device (p2pcast device --record-dir) over a WebRTC data channel,
peer to peer: a session without media, the device's "files" channel (docs/files.md). The token
needs the view and files grants.

REMOTE-PATH is relative to the device's record directory, as --list prints it (e.g.
2026/12/05/20261205T105300.123Z_0001.mp4).

The file arrives in FILE.part (with FILE.part.json saying what it is); at the end its SHA-256 is
checked against the device's, and FILE.part becomes FILE. An interrupted fetch (Ctrl-C, a lost
connection, a kill) leaves FILE.part: the same command again resumes from its size (the bytes
already there are hashed and checked with the rest). A mismatch removes FILE.part.

The token comes from exactly one of --token-file FILE, $P2PCAST_TOKEN, or --token T (visible to
other users of this machine: prefer the others).

Flags:
`

const fetchExitCodes = `
Exit codes:
  0  fetched and verified (or listed)
  1  failure: no connection, the transfer broke off (run again to resume), a local write failed
  2  usage: bad flags or arguments, FILE exists (use --force)
  3  refused: unauthorized or forbidden token, or the device closed the files channel (no files
     grant, or it does not record)
  4  unavailable: the device is offline or busy, or the hub rate-limits this address
  5  checksum mismatch: the file is not the device's (FILE.part removed)
  6  not found: no such recording on the device, or a path it refuses
`

// partMeta is FILE.part.json: what FILE.part is a prefix of.
type partMeta struct {
	Path  string `json:"path"` // REMOTE-PATH
	Size  int64  `json:"size"` // the file's size on the device when the fetch started
	Start string `json:"start"`
}

func runFetch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fetch", "fetch [flags] SOURCE REMOTE-PATH --out FILE", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), fetchHelp)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), fetchExitCodes)
	}
	out := fs.String("out", "", "write the recording to `FILE`")
	list := fs.Bool("list", false, "list the device's recordings (and events) instead")
	asJSON := fs.Bool("json", false, "with --list: one JSON object {recordings, events}")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	verbose := fs.Bool("v", false, "debug logs")
	sf := defineSessionFlags(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	opts, positional, err := sf.options(positional, newLogger(stderr, *verbose))
	if err != nil {
		return err
	}
	timeout := sf.timeout
	var remote string
	switch {
	case *list && len(positional) == 0:
	case *list:
		return fmt.Errorf("%w: --list takes no REMOTE-PATH", errUsage)
	case len(positional) != 1:
		return fmt.Errorf("%w: want one REMOTE-PATH (see --list)", errUsage)
	case *out == "":
		return fmt.Errorf("%w: --out FILE is required", errUsage)
	default:
		remote = positional[0]
	}
	if *asJSON && !*list {
		return fmt.Errorf("%w: --json goes with --list", errUsage)
	}
	if !*list && !*force {
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%w: %s exists (--force overwrites it)", errUsage, *out)
		}
	}

	s, err := viewer.OpenData(ctx, opts, *timeout)
	if err != nil {
		return viewExit(err)
	}
	defer s.Close()
	dc, err := s.PeerConnection().CreateDataChannel(files.Label, nil)
	if err != nil {
		return err
	}
	c := files.NewClient(dc)
	hctx, hcancel := context.WithTimeout(ctx, *timeout)
	_, err = c.Hello(hctx)
	hcancel()
	if err != nil {
		if errors.Is(err, files.ErrClosed) {
			return &exitError{code: exitRefused, err: err}
		}
		return err
	}
	if *list {
		return printList(ctx, c, stdout, *asJSON)
	}
	return fetchFile(ctx, c, remote, *out, stderr)
}

// sessionFlags are how a command without media (fetch, record) reaches a device: its LAN URL
// or a hub, and a token.
type sessionFlags struct {
	timeout                         *time.Duration
	relay, insecureHub              *bool
	hub, deviceID, token, tokenFile *string
	caFile                          *string
}

func defineSessionFlags(fs *flag.FlagSet) *sessionFlags {
	return &sessionFlags{
		timeout:     fs.Duration("timeout", 20*time.Second, "give up when the session is not up this long after starting"),
		relay:       fs.Bool("relay", false, "use TURN relay candidates only"),
		hub:         fs.String("hub", "", "reach the device through the hub at `URL` (ws[s]://HOST[:PORT])"),
		deviceID:    fs.String("device", "", "the device `ID` behind the hub"),
		token:       fs.String("token", "", "the `TOKEN` (visible to other users: prefer --token-file or $"+viewerTokenEnv+")"),
		tokenFile:   fs.String("token-file", "", "read the token from `FILE`"),
		insecureHub: fs.Bool("insecure-hub", false, "allow ws:// (no TLS) to a hub at a public address"),
		caFile:      fs.String("ca", "", "PEM certificate(s) to trust for https:// and wss:// besides the system's"),
	}
}

// options are the viewer options the flags name; without --hub the first positional argument
// is the device's URL, and the rest are returned.
func (f *sessionFlags) options(positional []string, log *slog.Logger) (viewer.Options, []string, error) {
	opts := viewer.Options{RelayOnly: *f.relay, Logger: log}
	var err error
	if opts.TLS, err = tlsTrusting(*f.caFile); err != nil {
		return opts, nil, err
	}
	if opts.Token, err = secretFrom("token", "token", *f.token, *f.tokenFile, viewerTokenEnv); err != nil {
		return opts, nil, err
	}
	if *f.hub != "" {
		if *f.deviceID == "" {
			return opts, nil, fmt.Errorf("%w: --hub needs --device ID", errUsage)
		}
		if !isURLWithScheme(*f.hub, "ws", "wss", "http", "https") {
			return opts, nil, fmt.Errorf("%w: --hub %q: want ws://HOST[:PORT] or wss://HOST[:PORT]", errUsage, *f.hub)
		}
		if opts.Token == "" {
			return opts, nil, fmt.Errorf("%w: --hub needs a token: --token-file FILE or $%s", errUsage, viewerTokenEnv)
		}
		opts.HubURL, opts.Device = *f.hub, *f.deviceID
		if u, _ := url.Parse(*f.hub); (strings.EqualFold(u.Scheme, "ws") || strings.EqualFold(u.Scheme, "http")) && !*f.insecureHub {
			opts.NetDial = p2phub.PlainDialer(nil) // see view: no token in clear over the internet
		}
		return opts, positional, nil
	}
	if *f.deviceID != "" || *f.insecureHub {
		return opts, nil, fmt.Errorf("%w: --device and --insecure-hub go with --hub", errUsage)
	}
	if len(positional) == 0 {
		return opts, nil, fmt.Errorf("%w: want a device URL (http://DEVICE:PORT/) or --hub", errUsage)
	}
	if opts.WSURL, err = deviceWS(positional[0]); err != nil {
		return opts, nil, err
	}
	return opts, positional[1:], nil
}

// deviceWS turns a device's base URL into its WebSocket signaling endpoint.
func deviceWS(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%w: %q is not a device URL (http://DEVICE:PORT/)", errUsage, raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("%w: %q: want http(s)://DEVICE:PORT/ (or its ws(s):// signaling URL)", errUsage, raw)
	}
	if u.User != nil || u.RawQuery != "" {
		return "", fmt.Errorf("%w: the device URL takes no credentials or query: the token goes in --token-file or $%s", errUsage, viewerTokenEnv)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	return u.String(), nil
}

func printList(ctx context.Context, c *files.Client, stdout io.Writer, asJSON bool) error {
	recs, evs, err := c.List(ctx)
	if err != nil {
		return fetchExit(err)
	}
	if asJSON {
		if recs == nil {
			recs = []files.Recording{}
		}
		if evs == nil {
			evs = []event.Event{}
		}
		b, _ := json.Marshal(struct {
			Recordings []files.Recording `json:"recordings"`
			Events     []event.Event     `json:"events"`
		}{recs, evs})
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tSTART (UTC)\tDURATION\tBYTES\tTRACKS\t")
	for _, r := range recs {
		dur := (time.Duration(r.DurationMS) * time.Millisecond).String()
		if r.Writing {
			dur = "(recording)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", r.Path, r.Start.UTC().Format("2006-01-02 15:04:05.000"), dur, r.Bytes, strings.Join(r.Tracks, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range evs {
		end := "(open)"
		if !e.End.IsZero() {
			end = e.End.UTC().Format("15:04:05.000")
		}
		fmt.Fprintf(stdout, "event %s %s %s → %s\n", e.ID, e.Kind, e.Start.UTC().Format("2006-01-02 15:04:05.000"), end)
	}
	return nil
}

// fetchFile fetches remote into out through out.part, resuming a part left by an earlier run.
func fetchFile(ctx context.Context, c *files.Client, remote, out string, stderr io.Writer) error {
	part, metaPath := out+".part", out+".part.json"
	var have int64
	if b, err := os.ReadFile(metaPath); err == nil {
		var m partMeta
		if json.Unmarshal(b, &m) == nil && m.Path == remote {
			if fi, err := os.Stat(part); err == nil {
				have = fi.Size()
			}
		}
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(have); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
		return fmt.Errorf("reading %s: %w", part, err)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	meta, _ := json.Marshal(partMeta{Path: remote, Start: time.Now().UTC().Format(time.RFC3339)})
	if err := os.WriteFile(metaPath, meta, 0o644); err != nil {
		return err
	}
	if have > 0 {
		fmt.Fprintf(stderr, "resuming %s from byte %d\n", part, have)
	}
	var progress func(done, total int64)
	started := time.Now()
	if isTerminal(stderr) {
		last := time.Time{}
		progress = func(done, total int64) {
			now := time.Now()
			if now.Sub(last) < 200*time.Millisecond && done < total {
				return
			}
			last = now
			rate := float64(done) / max(now.Sub(started).Seconds(), 1e-3)
			fmt.Fprintf(stderr, "\r\x1b[K%s  %.1f / %.1f MB  %.1f MB/s", remote, float64(have+done)/1e6, float64(have+total)/1e6, rate/1e6)
		}
	}
	res, err := c.Get(ctx, remote, have, f, h, progress)
	if progress != nil {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if err != nil {
		if errors.Is(err, files.ErrChecksum) {
			f.Close()
			os.Remove(part)
			os.Remove(metaPath)
			return &exitError{code: exitChecksum, err: fmt.Errorf("%s: %w; removed %s, run again to fetch from the start", remote, err, part)}
		}
		if have+res.Bytes == 0 { // nothing to resume: leave nothing behind
			f.Close()
			os.Remove(part)
			os.Remove(metaPath)
		}
		if ctx.Err() != nil || errors.Is(err, files.ErrClosed) {
			return fmt.Errorf("%s: interrupted after %d bytes (%v): run the same command again to resume from %s", remote, have+res.Bytes, err, part)
		}
		return fetchExit(err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(part, out); err != nil {
		return err
	}
	os.Remove(metaPath)
	secs := time.Since(started).Seconds()
	fmt.Fprintf(stderr, "%s: %d bytes (%d fetched in %.2f s, %.1f MB/s), sha256 %s verified\n",
		out, res.Offset+res.Bytes, res.Bytes, secs, float64(res.Bytes)/1e6/max(secs, 1e-3), res.SHA256)
	return nil
}

// fetchExit gives the device's refusals their exit codes.
func fetchExit(err error) error {
	var er files.ErrorReply
	if errors.As(err, &er) {
		switch er.Code {
		case files.CodeNotFound, files.CodeBadPath:
			return &exitError{code: exitNotFound, err: err}
		case files.CodeBusy, files.CodeRateLimited:
			return &exitError{code: exitUnavailable, err: err}
		}
	}
	return err
}
