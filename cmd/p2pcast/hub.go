package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/ipclass"
	"github.com/p2pcast/p2pcast/internal/turnserver"
	"github.com/p2pcast/p2pcast/web"
)

// defaultDataDir is where the hub keeps its keys unless --data says otherwise.
func defaultDataDir() string { return stateDir("hub") }

// stateDir is p2pcast's state directory for role (hub, device): $XDG_STATE_HOME/p2pcast/ROLE,
// or ~/.local/state/p2pcast/ROLE.
func stateDir(role string) string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "p2pcast", role)
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "p2pcast", role)
	}
	return "p2pcast-" + role
}

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := hub.Config{Web: web.Files}
	fs := newFlags("hub", "hub [flags]", stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8443", "HTTP(S) listen address: web app, /ws for viewers, /device for devices")
	fs.StringVar(&cfg.DataDir, "data", defaultDataDir(), "directory of the hub's keys, device registry and audit log")
	fs.StringVar(&cfg.PublicIP, "public-ip", "", "IP address the embedded TURN server advertises (default: the --http host, if an IP)")
	fs.IntVar(&cfg.TURN.Port, "turn-port", 3478, "UDP and TCP port of the embedded TURN server (TLS: 5349 with --tls-cert)")
	fs.Func("turn-allow-peers", "private peers the embedded TURN server may relay to: comma-separated `CIDRS` or addresses, for labs and private deployments (e.g. 100.64.0.0/10). By default it relays to global addresses only, so TURN credentials cannot reach the hub's networks; the hub's own addresses stay refused", func(v string) (err error) {
		cfg.TURN.AllowPeers, err = ipclass.ParsePrefixes(v)
		return err
	})
	fs.BoolVar(&cfg.TURN.TCPAllocations, "turn-tcp-allocations", false, "let TURN clients open TCP relays (RFC 6062): WebRTC does not need them, and they let a client open TCP connections from the hub's address")
	cfg.TURN.MaxAllocationsPerUser = turnserver.DefaultMaxAllocationsPerUser
	fs.Func("turn-max-allocations", fmt.Sprintf("`N` live TURN allocations per user at most, a device link or a viewer session; a device needs one per relayed viewer (default %d)", cfg.TURN.MaxAllocationsPerUser), func(v string) (err error) {
		cfg.TURN.MaxAllocationsPerUser, err = strconv.Atoi(v)
		if err == nil && cfg.TURN.MaxAllocationsPerUser < 1 {
			err = errors.New("want 1 or more")
		}
		return err
	})
	turnUserBW := device.Bitrate(turnserver.DefaultUserBandwidth)
	fs.Var(&turnUserBW, "turn-user-bandwidth", "relay bandwidth of one TURN user, each direction, in `bits/s` (k and M suffixes): one credential cannot fill the hub's link; excess packets are dropped")
	turnURLs := fs.String("turn-url", "", "external TURN server URL(s), comma-separated, e.g. turn:turn.example.com:3478 (coturn)")
	turnSecretFlag := fs.String("turn-secret", "", "shared secret of the external TURN server (coturn static-auth-secret); visible in ps: prefer --turn-secret-file or P2PCAST_TURN_SECRET")
	turnSecretFile := fs.String("turn-secret-file", "", "file holding the external TURN server's shared secret")
	fs.BoolVar(&cfg.TURN.Off, "no-embedded-turn", false, "do not run the embedded TURN server (use --turn-url)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM): serve HTTPS/WSS, and TURN over TLS")
	tlsKey := fs.String("tls-key", "", "TLS private key (PEM)")
	trustProxy := fs.String("trust-proxy", "", "reverse proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For is believed; the client is the rightmost hop not listed")
	publicURLs := fs.String("url", "", "URL(s) devices reach this hub at, comma-separated (default: ws[s]://HOST:PORT of --http and --public-ip; set it behind a proxy or a DNS name, e.g. wss://hub.example.com)")
	fs.IntVar(&cfg.MaxSessionsPerToken, "max-sessions-per-token", 64, "most sessions one token holds on one device (at most 3/4 of the device's 200)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	}
	var err error
	if cfg.ExternalTURN.Secret, err = secretFrom("TURN secret", "turn-secret", *turnSecretFlag, *turnSecretFile, "P2PCAST_TURN_SECRET"); err != nil {
		return err
	}
	cfg.TURN.UserBandwidth = int64(turnUserBW)
	cfg.ExternalTURN.URLs = splitAll(*turnURLs)
	cfg.URLs = splitAll(*publicURLs)
	if *trustProxy != "" {
		if cfg.Trust.Proxies, err = ipclass.ParsePrefixes(*trustProxy); err != nil {
			return fmt.Errorf("%w: --trust-proxy: %v", errUsage, err)
		}
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("%w: TLS: %v", errUsage, err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.Logger = newLogger(stderr, *verbose)
	return hub.Run(ctx, cfg, func(r hub.Ready) { fmt.Fprintln(stdout, r.URL) })
}

// splitAll splits a comma-separated flag, keeping empty items, which Validate then refuses.
func splitAll(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.Split(s, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "revoke":
			return runTokenRevoke(args[1:], stdout, stderr)
		case "key":
			return runTokenKey(args[1:], stdout, stderr)
		}
	}
	fs := newFlags("token", "token --data DIR --device ID[,ID…|*] --grant view[,talk,control,files] --ttl 1h\n"+
		"       p2pcast token revoke ID|TOKEN --data DIR   (end its sessions; refuse it from now on)\n"+
		"       p2pcast token key --data DIR               (print the key that verifies these tokens, for device --hub-token-key)", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's data directory (its signing key)")
	devices := fs.String("device", "", "device id(s) the token may reach, comma-separated, or * for all")
	grants := fs.String("grant", "view", "rights: view, talk, control, files (comma-separated)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (at most 720h)")
	subject := fs.String("subject", "", "label for the audit log (who the token is for)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *devices == "" {
		return fmt.Errorf("%w: --device is required", errUsage)
	}
	g, err := auth.ParseGrants(*grants)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *ttl <= 0 || *ttl > auth.MaxLifetime {
		return fmt.Errorf("%w: --ttl %s: want more than 0 and at most %s", errUsage, *ttl, auth.MaxLifetime)
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	now := time.Now()
	var ids []string
	for _, d := range strings.Split(*devices, ",") {
		ids = append(ids, strings.TrimSpace(d))
	}
	tok, err := auth.Mint(store.TokenKey(), auth.Claims{Devices: ids, Grants: g, IssuedAt: now, Expires: now.Add(*ttl), Subject: *subject})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(stderr, "token for %s, grants %s, expires %s\n", *devices, *grants, now.Add(*ttl).UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, tok)
	return nil
}

func runDeviceKey(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("device-key", "device-key add|remove ID --data DIR  |  device-key list --data DIR", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's data directory")
	if len(args) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: want add, remove or list", errUsage)
	}
	sub, rest := args[0], args[1:]
	if sub == "-h" || sub == "--help" {
		fs.Usage()
		return flag.ErrHelp
	}
	positional, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	switch sub {
	case "add", "remove":
		if len(positional) != 1 {
			return fmt.Errorf("%w: device-key %s takes one device id", errUsage, sub)
		}
		id := positional[0]
		if sub == "remove" {
			if err := store.RemoveDevice(id); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "device %s removed\n", id)
			return nil
		}
		key, err := store.AddDevice(id)
		if errors.Is(err, auth.ErrBadDeviceID) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "device %s enrolled. Its secret key follows, shown this once: give it to the device\n"+
			"(p2pcast device --hub URL --id %s --key-file FILE); the hub keeps only the public half.\n", id, id)
		fmt.Fprintln(stdout, key.Secret())
		return nil
	case "list":
		ids, err := store.Devices()
		if err != nil {
			return err
		}
		for _, id := range ids {
			fmt.Fprintln(stdout, id)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown device-key command %q (add, remove, list)", errUsage, sub)
}

// runTokenRevoke adds a token to the store's revocation list. The hub (and a device, for its
// own LAN tokens) rereads the list every second, ends the token's sessions and refuses it.
func runTokenRevoke(args []string, _ io.Writer, stderr io.Writer) error {
	fs := newFlags("token revoke", "token revoke ID|TOKEN --data DIR", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's (or device's) data directory")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("%w: token revoke takes one token id (the audit log's token_id) or the token itself", errUsage)
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	id, until := positional[0], time.Now().Add(auth.MaxLifetime)
	if strings.HasPrefix(id, auth.TokenPrefix) {
		// The token itself: its id, and its expiry (after which the list may forget it).
		c, err := auth.Verify(store.TokenPublicKey(), id, time.Now())
		if errors.Is(err, auth.ErrExpired) {
			fmt.Fprintln(stderr, "that token has expired already: nothing to revoke")
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v (a token not valid yet is revoked by its id, the audit log's token_id)", errUsage, err)
		}
		id, until = c.ID, c.Expires
	}
	if err := store.Revoke(id, until); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(stderr, "token %s revoked; its sessions end within seconds\n", id)
	return nil
}

// runTokenKey prints the public key that verifies the store's tokens: a device given it
// (--hub-token-key) checks the hub's tokens offline on its own endpoints.
func runTokenKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token key", "token key --data DIR", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's (or device's) data directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, auth.FormatTokenKey(store.TokenPublicKey()))
	return nil
}
