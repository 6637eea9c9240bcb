//go:build !device

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/cli"
	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/hub"
	"github.com/p2pcast/p2pcast/internal/ipclass"
	"github.com/p2pcast/p2pcast/internal/turnserver"
	"github.com/p2pcast/p2pcast/web"
)

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, done, err := parseHub(args, stdout, stderr)
	if done || err != nil {
		return err
	}
	cfg := s.cfg
	cfg.Logger = newLogger(stderr, s.verbose)
	if s.adminCreated {
		// Where, never what: the log may be shipped elsewhere.
		cfg.Logger.Info("admin credential created: read it from the file", "file", s.adminFile)
	}
	return hub.Run(ctx, cfg, func(r hub.Ready) {
		// SIGHUP reads the file and the environment again with the same command line; it is
		// taken before the URL says the hub is ready.
		reloadOnHangup(ctx, func() ([]string, []string, error) {
			again, _, err := parseHub(args, io.Discard, io.Discard)
			if err != nil {
				return nil, nil, err
			}
			return r.Reload(again.cfg)
		}, cfg.Logger)
		fmt.Fprintln(stdout, r.URL)
	})
}

// hubSetup is what `p2pcast hub`'s command line, config file and environment say.
type hubSetup struct {
	cfg          hub.Config
	verbose      bool
	adminFile    string
	adminCreated bool
}

// parseHub builds the hub's configuration from args, the config file and the environment.
func parseHub(args []string, stdout, stderr io.Writer) (s hubSetup, done bool, err error) {
	cfg := hub.Config{Web: web.Files}
	fs := newFlags("hub", "hub [flags]", stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8443", "HTTP(S) listen address: web app, /ws for viewers, /device for devices")
	opsAllow := fs.String("ops-allow", defaultOpsAllow, opsAllowUsage)
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
	// Admission per source address (docs/hub.md, "Abuse"): generous enough for thousands of
	// devices behind one carrier-grade NAT, which are admitted by their keys.
	fs.Float64Var(&cfg.ConnRate, "conn-rate", hub.DefaultConnRate, "new connections per second per source address (an IPv4 address or IPv6 /64); a connection that authenticates a device gives its share back, so viewers, failed and abandoned connections spend it")
	fs.Float64Var(&cfg.ConnBurst, "conn-burst", hub.DefaultConnBurst, "burst of --conn-rate")
	fs.Float64Var(&cfg.AuthFailsPerMinute, "auth-fails-per-minute", hub.DefaultAuthFailsPerMinute, "failed authentications per minute per source address, any device id or token; past it the address is refused until the budget refills")
	fs.Float64Var(&cfg.AuthFailsPerDevice, "auth-fails-per-device", hub.DefaultAuthFailsPerDevice, "failed authentications per minute of one device id from one source address; past it that id is refused there, the others behind the address are not")
	fs.IntVar(&cfg.MaxHandshakesPerSource, "max-handshakes-per-source", hub.DefaultMaxHandshakesPerSource, "device and viewer connections of one source address not authenticated yet (each has 10 s)")
	fs.IntVar(&cfg.MaxConnsPerSource, "max-conns-per-source", hub.DefaultMaxConnsPerSource, "open connections of one source address (pages, viewers, handshakes); authenticated device links are not counted (needs a restart)")
	adminTokenFile := fs.String("admin-token-file", "", "serve the admin page /admin (devices, tokens, audit log) to holders of the credential in this `FILE`; a missing file is created with a new one (mode 0600): read it there. Off by default")
	adminAllow := fs.String("admin-allow", defaultOpsAllow, "client `ADDRESSES` (CIDRs or addresses, comma-separated) that may use /admin and /api/admin/ with the credential")
	fs.StringVar(&cfg.TokenIssuer.Issuer, "token-issuer", "", "accept viewer tokens from this external `ISSUER` too (their iss, e.g. https://app.example.com): an application's backend signs them (EdDSA) with a key it publishes at --token-issuer-jwks")
	fs.StringVar(&cfg.TokenIssuer.JWKSURL, "token-issuer-jwks", "", "the JWK Set `URL` of --token-issuer's keys (https, or http to a loopback address); fetched at start, every 15 minutes and when a token names a new kid")
	fs.StringVar(&cfg.Cluster.URL, "cluster", "", "join a hub cluster through this NATS server: nats://HOST:4222 or tls://HOST:4222, several comma-separated (docs/cluster.md). Off by default: a single hub needs nothing")
	fs.StringVar(&cfg.Cluster.Instance, "cluster-instance", "", "this hub's `NAME` in the cluster, unique among the running instances (default: the host name's first label)")
	fs.StringVar(&cfg.Cluster.User, "cluster-user", "", "NATS user; its password comes from --cluster-password-file or P2PCAST_CLUSTER_PASSWORD")
	clusterPasswordFile := fs.String("cluster-password-file", "", "`FILE` holding the NATS user's password")
	clusterTokenFile := fs.String("cluster-token-file", "", "`FILE` holding a NATS token (or P2PCAST_CLUSTER_TOKEN)")
	fs.StringVar(&cfg.Cluster.NKeySeedFile, "cluster-nkey-file", "", "NATS NKey seed `FILE`")
	fs.StringVar(&cfg.Cluster.CredsFile, "cluster-creds-file", "", "NATS credentials `FILE` (user JWT and NKey seed)")
	fs.StringVar(&cfg.Cluster.CAFile, "cluster-ca-file", "", "CA certificate `FILE` (PEM) trusted for a tls:// NATS server")
	fs.StringVar(&cfg.SFU.Janus, "sfu-janus", "", "bridge viewers of a device past its peer-to-peer limit (device --p2p-viewers) to this Janus server, whose VideoRoom the device publishes to: its HTTP API `URL`, e.g. http://10.0.0.5:8088/janus; only the hub talks to it (docs/sfu.md)")
	sfuSecretFile := fs.String("sfu-janus-secret-file", "", "file holding the Janus server's api_secret, if it has one (or $P2PCAST_SFU_JANUS_SECRET)")
	verbose := fs.Bool("v", false, "debug logs")
	if done, err := cli.ParseConfigured(fs, args, stdout, "turn-secret"); done || err != nil {
		return s, done, err
	}
	if fs.NArg() > 0 {
		return s, false, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg.Version = version
	if cfg.OpsAllow, err = parseOpsAllow(*opsAllow); err != nil {
		return s, false, fmt.Errorf("%w: --ops-allow: %v", errUsage, err)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return s, false, fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	}
	if cfg.ExternalTURN.Secret, err = secretFrom("TURN secret", "turn-secret", *turnSecretFlag, *turnSecretFile, "P2PCAST_TURN_SECRET"); err != nil {
		return s, false, err
	}
	if cfg.Cluster.Password, err = secretFrom("NATS password", "cluster-password", "", *clusterPasswordFile, "P2PCAST_CLUSTER_PASSWORD"); err != nil {
		return s, false, err
	}
	if cfg.Cluster.Token, err = secretFrom("NATS token", "cluster-token", "", *clusterTokenFile, "P2PCAST_CLUSTER_TOKEN"); err != nil {
		return s, false, err
	}
	if cfg.SFU.APISecret, err = secretFrom("Janus API secret", "sfu-janus-secret", "", *sfuSecretFile, "P2PCAST_SFU_JANUS_SECRET"); err != nil {
		return s, false, err
	}
	cfg.TURN.UserBandwidth = int64(turnUserBW)
	cfg.ExternalTURN.URLs = splitAll(*turnURLs)
	cfg.URLs = splitAll(*publicURLs)
	if *trustProxy != "" {
		if cfg.Trust.Proxies, err = ipclass.ParsePrefixes(*trustProxy); err != nil {
			return s, false, fmt.Errorf("%w: --trust-proxy: %v", errUsage, err)
		}
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return s, false, fmt.Errorf("%w: TLS: %v", errUsage, err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := cfg.Validate(); err != nil {
		return s, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	if *adminTokenFile != "" {
		if cfg.Admin.Allow, err = parseOpsAllow(*adminAllow); err != nil {
			return s, false, fmt.Errorf("%w: --admin-allow: %v", errUsage, err)
		}
		if cfg.Admin.Token, s.adminCreated, err = hub.LoadAdminToken(*adminTokenFile); err != nil {
			return s, false, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	s.cfg, s.verbose, s.adminFile = cfg, *verbose, *adminTokenFile
	return s, false, nil
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
