package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
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
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "p2pcast", "hub")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "p2pcast", "hub")
	}
	return "p2pcast-hub"
}

func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("hub", "hub [flags]", stderr)
	httpAddr := fs.String("http", "127.0.0.1:8443", "HTTP(S) listen address: web app, /ws for viewers, /device for devices")
	dataDir := fs.String("data", defaultDataDir(), "directory of the hub's keys, device registry and audit log")
	publicIP := fs.String("public-ip", "", "IP address the embedded TURN server advertises (default: the --http host, if an IP)")
	turnPort := fs.Int("turn-port", 3478, "UDP and TCP port of the embedded TURN server (TLS: 5349 with --tls-cert)")
	var turnAllow []netip.Prefix
	fs.Func("turn-allow-peers", "private peers the embedded TURN server may relay to: comma-separated `CIDRS` or addresses, for labs and private deployments (e.g. 100.64.0.0/10). By default it relays to global addresses only, so TURN credentials cannot reach the hub's networks; the hub's own addresses stay refused", func(v string) (err error) {
		turnAllow, err = ipclass.ParsePrefixes(v)
		return err
	})
	turnTCP := fs.Bool("turn-tcp-allocations", false, "let TURN clients open TCP relays (RFC 6062): WebRTC does not need them, and they let a client open TCP connections from the hub's address")
	turnMaxAllocs := turnserver.DefaultMaxAllocationsPerUser
	fs.Func("turn-max-allocations", fmt.Sprintf("`N` live TURN allocations per user at most, a device link or a viewer session; a device needs one per relayed viewer (default %d)", turnMaxAllocs), func(v string) (err error) {
		turnMaxAllocs, err = strconv.Atoi(v)
		if err == nil && turnMaxAllocs < 1 {
			err = errors.New("want 1 or more")
		}
		return err
	})
	turnUserBW := device.Bitrate(turnserver.DefaultUserBandwidth)
	fs.Var(&turnUserBW, "turn-user-bandwidth", "relay bandwidth of one TURN user, each direction, in `bits/s` (k and M suffixes): one credential cannot fill the hub's link; excess packets are dropped")
	turnURLs := fs.String("turn-url", "", "external TURN server URL(s), comma-separated, e.g. turn:turn.example.com:3478 (coturn)")
	turnSecretFlag := fs.String("turn-secret", "", "shared secret of the external TURN server (coturn static-auth-secret); visible in ps: prefer --turn-secret-file or P2PCAST_TURN_SECRET")
	turnSecretFile := fs.String("turn-secret-file", "", "file holding the external TURN server's shared secret")
	noEmbedded := fs.Bool("no-embedded-turn", false, "do not run the embedded TURN server (use --turn-url)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM): serve HTTPS/WSS, and TURN over TLS")
	tlsKey := fs.String("tls-key", "", "TLS private key (PEM)")
	trustProxy := fs.Bool("trust-proxy", false, "take client addresses from X-Forwarded-For (only behind a reverse proxy)")
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
	turnSecret, err := secretFrom("TURN secret", "turn-secret", *turnSecretFlag, *turnSecretFile, "P2PCAST_TURN_SECRET")
	if err != nil {
		return err
	}
	if *turnURLs != "" && turnSecret == "" {
		return fmt.Errorf("%w: --turn-url needs the server's shared secret (--turn-secret-file, P2PCAST_TURN_SECRET or --turn-secret)", errUsage)
	}
	if *noEmbedded && *turnURLs == "" {
		return fmt.Errorf("%w: --no-embedded-turn without --turn-url leaves viewers behind strict NATs with no relay", errUsage)
	}
	log := newLogger(stderr, *verbose)

	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	auditFile, err := os.OpenFile(filepath.Join(*dataDir, "audit.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer auditFile.Close()

	var tlsConf *tls.Config
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("%w: TLS: %v", errUsage, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	ice := hub.ICEConfig{}
	if !*noEmbedded {
		ip, err := advertisedIP(*publicIP, *httpAddr)
		if err != nil {
			return err
		}
		secret := store.TURNSecret()
		ts, err := turnserver.Start(turnserver.Config{
			PublicIP: ip, Port: *turnPort, TLS: tlsConf, Logger: log,
			Verify:         func(user string) (string, error) { return auth.VerifyTURN(secret, user, time.Now()) },
			Peers:          ipclass.Policy{Allow: turnAllow},
			TCPAllocations: *turnTCP, MaxAllocationsPerUser: turnMaxAllocs, UserBandwidth: int64(turnUserBW),
		})
		if err != nil {
			return err
		}
		defer ts.Close()
		hostPort := net.JoinHostPort(ip.String(), strconv.Itoa(ts.UDPAddr().Port))
		ice.STUN = []string{"stun:" + hostPort}
		ice.TURN = []string{"turn:" + hostPort + "?transport=udp", "turn:" + hostPort + "?transport=tcp"}
		if a := ts.TLSAddr(); a != nil {
			ice.TURN = append(ice.TURN, "turns:"+net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))+"?transport=tcp")
		}
		ice.Secret = secret
		log.Info("embedded TURN", "udp+tcp", hostPort)
	}
	if *turnURLs != "" {
		// External TURN replaces the embedded one's URLs; its secret is its own.
		ice.STUN, ice.TURN = nil, nil
		for _, u := range strings.Split(*turnURLs, ",") {
			u = strings.TrimSpace(u)
			if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				return fmt.Errorf("%w: --turn-url %q is not a turn or turns URL", errUsage, u)
			}
			ice.TURN = append(ice.TURN, expandTURN(u)...)
			if host, ok := strings.CutPrefix(u, "turn:"); ok {
				host, _, _ = strings.Cut(host, "?")
				ice.STUN = appendNew(ice.STUN, "stun:"+host)
			}
		}
		ice.Secret = []byte(turnSecret)
	}

	srv, err := hub.New(hub.Config{Store: store, ICE: ice, Audit: auditFile, Web: web.Files, Logger: log, TrustForwardedHeaders: *trustProxy})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10, TLSConfig: tlsConf}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(l, "", "")
		} else {
			errc <- hs.Serve(l)
		}
	}()
	log.Info("hub listening", "data", *dataDir)
	fmt.Fprintf(stdout, "%s://%s/\n", scheme, l.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.Close()
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutdown)
	return nil
}

// advertisedIP is the address the embedded TURN server gives out in relayed candidates.
func advertisedIP(publicIP, httpAddr string) (net.IP, error) {
	if publicIP != "" {
		ip := net.ParseIP(publicIP)
		if ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("%w: --public-ip %q: want an IPv4 address", errUsage, publicIP)
		}
		return ip, nil
	}
	host, _, err := net.SplitHostPort(httpAddr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.To4() != nil && !ip.IsUnspecified() {
		return ip, nil
	}
	return nil, fmt.Errorf("%w: the embedded TURN server needs --public-ip (the address viewers and devices reach this host on)", errUsage)
}

// expandTURN offers both transports for a TURN URL that names none, so clients whose network
// drops UDP still reach the relay over TCP.
func expandTURN(u string) []string {
	if strings.Contains(u, "?transport=") || strings.HasPrefix(u, "turns:") {
		return []string{u}
	}
	return []string{u + "?transport=udp", u + "?transport=tcp"}
}

func appendNew(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", "token --data DIR --device ID[,ID…|*] --grant view[,talk,control,files] --ttl 1h", stderr)
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
