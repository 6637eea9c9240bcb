package hub

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/janus"
)

// Config is a hub. Run starts one from it: the fields up to ExternalTURN are Run's (where it
// listens, where it keeps its state, its TURN service); the rest also build the HTTP side alone
// with New (tests, embedding), which ignores Run's. Validate checks it without touching the
// system.
type Config struct {
	// HTTPAddr is Run's HTTP(S) listen address: the web app, /ws for viewers, /device for
	// devices.
	HTTPAddr string
	// DataDir holds the hub's keys, device registry and audit log: Run opens Store from it when
	// Store is nil, and writes the audit log to DataDir/audit.jsonl when Audit is nil.
	DataDir string
	// TLS, if set, makes Run serve HTTPS/WSS, and TURN over TLS.
	TLS *tls.Config
	// PublicIP is the IPv4 address the embedded TURN server advertises (default: HTTPAddr's
	// host, if an IPv4 address); devices may also name it in the URL they dial.
	PublicIP string
	// TURN is the embedded STUN/TURN server Run starts unless TURN.Off.
	TURN TURNConfig
	// ExternalTURN, with URLs, is a TURN server of its own (coturn) whose URLs and credentials
	// the hub hands out instead of the embedded one's.
	ExternalTURN ExternalTURN

	Store *auth.Store
	// ICE is what the hub hands devices and viewers; Run fills its URLs and secret from TURN
	// and ExternalTURN.
	ICE ICEConfig
	// Audit receives the audit log (JSON lines); nil keeps none (Run: DataDir's file).
	Audit io.Writer
	// Web is the web app served at / (nil serves nothing there).
	Web    fs.FS
	Logger *slog.Logger
	// Limits per source address (an IPv4 address or IPv6 /64); zero values take the defaults
	// of docs/hub.md, which let thousands of devices behind one carrier-grade NAT back in
	// within seconds of a restart while a flood from one address is still held.
	//
	// ConnRate and ConnBurst: new connections per second and burst (default 100, 500). A
	// connection that authenticates a device gives its token back, so the budget is spent by
	// viewers, failed and abandoned connections only.
	ConnRate, ConnBurst float64
	// AuthFailsPerMinute: failed authentications per minute from one source, any id (default
	// 60); past it the source is refused until a token refills.
	AuthFailsPerMinute float64
	// AuthFailsPerDevice: failed authentications per minute of one device id from one source
	// (default 5); past it that id is refused there, without checking its signature, while
	// other ids behind the same address go on.
	AuthFailsPerDevice float64
	// MaxHandshakesPerSource: connections at /device and /ws of one source not yet
	// authenticated (default 256); each lasts at most 10 s.
	MaxHandshakesPerSource int
	// MaxConnsPerSource: one source's open connections, which Run's listener counts (default
	// 1024). An authenticated device link leaves the count: devices are held by their keys, not
	// their address.
	MaxConnsPerSource    int
	MaxSessionsPerDevice int
	// MaxSessionsPerToken bounds one token's sessions on one device (default 64, and never
	// more than three quarters of MaxSessionsPerDevice: one token cannot take every slot).
	MaxSessionsPerToken int
	// URLs are the URLs devices reach the hub at (ws[s]://host:port): a device signs the URL it
	// dialled, and only these are accepted, so a hub the device was pointed at by mistake
	// cannot replay its answer here. Run derives them from HTTPAddr and PublicIP when there
	// are none (see hubURLs).
	URLs []string
	// OpsAllow are the client addresses that may read /metrics, /healthz and /readyz (nil:
	// DefaultOpsAllow, this machine; empty: nobody).
	OpsAllow []netip.Prefix
	// Version is the build's version, for p2pcast_build_info.
	Version string
	// Trust names reverse proxies whose X-Forwarded-For is believed.
	Trust httpguard.Trust
	// ResumeWait is how long a session whose viewer socket dropped without a bye waits for the
	// viewer to resume it from a new socket (default 15 s).
	ResumeWait time.Duration
	Now        func() time.Time
	// Admin, with its Token, serves the admin page /admin and API /api/admin/ (admin.go).
	Admin AdminConfig
	// TokenIssuer, if set, is an external issuer whose viewer tokens the hub accepts besides
	// its own (tokens.go).
	TokenIssuer TokenIssuer
	// Cluster, with a URL, makes the hub one instance of a cluster joined through NATS
	// (cluster.go, docs/cluster.md): Run and New connect to it.
	Cluster ClusterConfig
	// SFU, with its Janus URL, bridges viewers of a device past its peer-to-peer limit to
	// the SFU the device publishes to (sfu.go, docs/sfu.md).
	SFU SFUConfig
}

// TURNConfig is the embedded STUN/TURN server (internal/turnserver); zero values take its
// defaults.
type TURNConfig struct {
	// Off: no embedded server (ExternalTURN is then required).
	Off bool
	// Port of UDP and TCP (0: 3478; negative: any free port); TLS, with Config.TLS, is on 5349.
	Port int
	// AllowPeers are private peers it may relay to besides global addresses (labs, private
	// deployments); the hub's own addresses stay refused.
	AllowPeers []netip.Prefix
	// TCPAllocations lets clients open TCP relays (RFC 6062).
	TCPAllocations bool
	// MaxAllocationsPerUser bounds a device link's or viewer session's live allocations.
	MaxAllocationsPerUser int
	// UserBandwidth bounds one user's relays, in bits/s each direction.
	UserBandwidth int64
}

// ExternalTURN is a TURN server the hub does not run (coturn with use-auth-secret).
type ExternalTURN struct {
	// URLs are turn: or turns: URLs; one that names no transport is offered over UDP and TCP.
	URLs []string
	// Secret is the server's shared secret (coturn static-auth-secret).
	Secret string
}

// Validate checks what Run needs: a relay for viewers behind strict NATs, an address to
// advertise for the embedded TURN server, well-formed URLs. Its messages name the command's
// flags, which is where a hub's configuration comes from.
func (c Config) Validate() error {
	var errs []error
	if c.SFU.Janus != "" {
		if _, err := janus.NewClient(c.SFU.Janus, "", nil); err != nil {
			errs = append(errs, fmt.Errorf("--sfu-janus: %w", err))
		}
	}
	if len(c.ExternalTURN.URLs) > 0 && c.ExternalTURN.Secret == "" {
		errs = append(errs, errors.New("--turn-url needs the server's shared secret (--turn-secret-file, P2PCAST_TURN_SECRET or --turn-secret)"))
	}
	if c.TURN.Off && len(c.ExternalTURN.URLs) == 0 {
		errs = append(errs, errors.New("--no-embedded-turn without --turn-url leaves viewers behind strict NATs with no relay"))
	}
	if !c.TURN.Off {
		if _, err := advertisedIP(c.PublicIP, c.HTTPAddr); err != nil {
			errs = append(errs, err)
		}
		if c.TURN.MaxAllocationsPerUser < 0 || c.TURN.UserBandwidth < 0 {
			errs = append(errs, fmt.Errorf("TURN quotas %d allocations, %d bit/s: want 0 (the default) or more",
				c.TURN.MaxAllocationsPerUser, c.TURN.UserBandwidth))
		}
	}
	for _, l := range []struct {
		flag string
		v    float64
	}{{"--conn-rate", c.ConnRate}, {"--conn-burst", c.ConnBurst}, {"--auth-fails-per-minute", c.AuthFailsPerMinute},
		{"--auth-fails-per-device", c.AuthFailsPerDevice}, {"--max-handshakes-per-source", float64(c.MaxHandshakesPerSource)},
		{"--max-conns-per-source", float64(c.MaxConnsPerSource)}} {
		if l.v < 0 || math.IsNaN(l.v) || math.IsInf(l.v, 0) {
			errs = append(errs, fmt.Errorf("%s %v: want 0 (the default) or more", l.flag, l.v))
		}
	}
	if c.ConnBurst > 0 && c.ConnBurst < 1 {
		errs = append(errs, fmt.Errorf("--conn-burst %v: want 1 or more (0: the default)", c.ConnBurst))
	}
	for _, u := range c.ExternalTURN.URLs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			errs = append(errs, fmt.Errorf("--turn-url %q is not a turn or turns URL", u))
		}
	}
	for _, u := range c.URLs {
		if _, err := auth.CanonicalHubURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--url: %v", err))
		}
	}
	if err := c.TokenIssuer.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Cluster.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// advertisedIP is the address the embedded TURN server gives out in relayed candidates.
func advertisedIP(publicIP, httpAddr string) (net.IP, error) {
	if publicIP != "" {
		ip := net.ParseIP(publicIP)
		if ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("--public-ip %q: want an IPv4 address", publicIP)
		}
		return ip, nil
	}
	host, _, err := net.SplitHostPort(httpAddr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.To4() != nil && !ip.IsUnspecified() {
		return ip, nil
	}
	return nil, errors.New("the embedded TURN server needs --public-ip (the address viewers and devices reach this host on)")
}
