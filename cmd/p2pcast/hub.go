package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/device"
	"github.com/p2pcast/p2pcast/internal/httpguard"
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
	trustProxy := fs.String("trust-proxy", "", "reverse proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For is believed; the client is the rightmost hop not listed")
	publicURLs := fs.String("url", "", "URL(s) devices reach this hub at, comma-separated (default: ws[s]://HOST:PORT of --http and --public-ip; set it behind a proxy or a DNS name, e.g. wss://hub.example.com)")
	perToken := fs.Int("max-sessions-per-token", 64, "most sessions one token holds on one device (at most 3/4 of the device's 200)")
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
	// 10 MiB a file, 5 kept: refusals are aggregated per source and minute, so this holds weeks.
	auditFile, err := hub.OpenAuditFile(filepath.Join(*dataDir, "audit.jsonl"), 10<<20, 5)
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

	var trust httpguard.Trust
	if *trustProxy != "" {
		if trust.Proxies, err = ipclass.ParsePrefixes(*trustProxy); err != nil {
			return fmt.Errorf("%w: --trust-proxy: %v", errUsage, err)
		}
	}
	l, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer l.Close()
	urls, err := hubURLs(*publicURLs, l.Addr().(*net.TCPAddr), *httpAddr, *publicIP, tlsConf != nil)
	if err != nil {
		return err
	}
	srv, err := hub.New(hub.Config{Store: store, ICE: ice, Audit: auditFile, Web: web.Files, Logger: log, Trust: trust,
		URLs: urls, MaxSessionsPerToken: *perToken})
	if err != nil {
		return err
	}
	log.Info("devices authenticate for", "urls", strings.Join(urls, " "))
	hl := httpguard.LimitListener(l, maxConnsPerSource, trust.Proxies, nil)
	hs := httpguard.NewServer(httpguard.Headers(srv.Handler()), log)
	hs.TLSConfig = tlsConf
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(hl, "", "")
		} else {
			errc <- hs.Serve(hl)
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

// maxConnsPerSource bounds the open HTTP connections (sockets included) of one address or IPv6
// /64 at the hub: a household's viewers behind one NAT fit, a socket flood from one place does not.
const maxConnsPerSource = 256

// hubURLs are the URLs devices may have dialled to reach this hub (what their signed challenge
// answers must name): the given ones, or ws[s]://HOST:PORT for the --http host (every local
// address when it listens on all of them, and "localhost" on loopback) and --public-ip.
func hubURLs(given string, bound *net.TCPAddr, httpAddr, publicIP string, tls bool) ([]string, error) {
	var out []string
	add := func(u string) error {
		c, err := auth.CanonicalHubURL(u)
		if err != nil {
			return err
		}
		out = appendNew(out, c)
		return nil
	}
	if given != "" {
		for _, u := range strings.Split(given, ",") {
			if err := add(strings.TrimSpace(u)); err != nil {
				return nil, fmt.Errorf("%w: --url: %v", errUsage, err)
			}
		}
		return out, nil
	}
	scheme := "ws://"
	if tls {
		scheme = "wss://"
	}
	port := strconv.Itoa(bound.Port)
	hostOf := func(ip net.IP) string { return net.JoinHostPort(ip.String(), port) }
	var ips []net.IP
	if host, _, _ := net.SplitHostPort(httpAddr); host != "" && !bound.IP.IsUnspecified() {
		if ip := net.ParseIP(host); ip == nil {
			_ = add(scheme + net.JoinHostPort(host, port)) // a name given to --http
		}
		ips = append(ips, bound.IP)
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	if ip := net.ParseIP(publicIP); ip != nil {
		ips = append(ips, ip)
	}
	for _, ip := range ips {
		if ip.IsLinkLocalUnicast() {
			continue
		}
		if ip.IsLoopback() {
			_ = add(scheme + net.JoinHostPort("localhost", port))
		}
		_ = add(scheme + hostOf(ip))
	}
	return out, nil
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
