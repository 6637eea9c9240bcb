// Package turnserver runs the hub's embedded STUN/TURN server (RFC 8656) on pion/turn: UDP and
// TCP on one port, TLS on another when a certificate is given. Clients authenticate with
// short-lived TURN REST credentials (the scheme coturn's use-auth-secret checks), so the hub
// can hand them out without keeping per-user state.
//
// A relay is an open door into whatever network the hub sits in, so the server confines it:
// peers must pass an ipclass.Policy (global addresses only by default, never the hub itself),
// RFC 6062 TCP relays are off unless asked for, and each user (the name of a TURN REST username,
// `<expiry>:<name>`) has an allocation quota and a relay bandwidth limit.
package turnserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/p2pcast/p2pcast/internal/ipclass"
)

// Defaults of the quotas.
const (
	// DefaultMaxAllocationsPerUser is high because a device relays to each of its viewers under
	// one username.
	DefaultMaxAllocationsPerUser = 64
	// DefaultUserBandwidth (bits/s, each direction) carries a few high-bitrate streams.
	DefaultUserBandwidth = 50_000_000
)

// Errors.
var (
	ErrConfig            = errors.New("turnserver: bad config")
	ErrPeerRefused       = errors.New("turnserver: peer refused by the relay policy")
	ErrTCPAllocationsOff = errors.New("turnserver: TCP allocations (RFC 6062) are off")
	ErrAllocationQuota   = errors.New("turnserver: allocation quota reached")
)

// Config describes the server.
type Config struct {
	// PublicIP is the address clients and peers reach the relay on: relayed candidates carry it.
	PublicIP net.IP
	// ListenIP is where the sockets bind (default: all addresses).
	ListenIP net.IP
	// Port for UDP and TCP (default 3478; negative: any free port, the same for both);
	// TLSPort for TLS (default 5349; negative: any free port).
	Port, TLSPort int
	// TLS, when set, adds a TURN-over-TLS listener.
	TLS *tls.Config
	// Realm of the long-term credentials (default "p2pcast").
	Realm string
	// Verify returns the password for a TURN REST username, or an error (expired, malformed).
	Verify func(username string) (password string, err error)
	// Peers decides which peers a client may relay to (CreatePermission, ChannelBind, Connect,
	// and every relayed packet). The zero value permits global addresses only. The hub's own
	// addresses (PublicIP, ListenIP, every address of the host's interfaces, 0.0.0.0 and ::)
	// are always added to Deny, so a relay never reaches the hub, even where Allow opens its
	// segment.
	Peers ipclass.Policy
	// TCPAllocations turns on RFC 6062 TCP relays (off: TCP allocations and Connect are refused).
	// WebRTC never needs them; they let a client open TCP connections from the hub.
	TCPAllocations bool
	// MaxAllocationsPerUser limits the live allocations of one user (default
	// DefaultMaxAllocationsPerUser).
	MaxAllocationsPerUser int
	// UserBandwidth limits what one user's relays carry, in bits/s, each direction separately
	// (default DefaultUserBandwidth). Excess UDP packets are dropped, not queued; TCP relays are
	// slowed instead.
	UserBandwidth int64
	Logger        *slog.Logger

	onRelease func(name string) // tests: a user's allocation was released
}

// Server is a running TURN server.
type Server struct {
	srv      *turn.Server
	udpAddr  *net.UDPAddr
	tcpAddr  *net.TCPAddr
	tlsAddr  *net.TCPAddr
	listenIP net.IP
	peers    ipclass.Policy
	tcp      bool
	users    *users
	relays   relayTable
	log      *slog.Logger

	authFailed, peerRefused, allocRefused, bwDropped atomic.Uint64
	// relayedUp and relayedDown count the bytes relayed client → peer and peer → client.
	relayedUp, relayedDown atomic.Uint64
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.PublicIP == nil {
		return nil, fmt.Errorf("%w: a public IP is required", ErrConfig)
	}
	if cfg.Verify == nil {
		return nil, fmt.Errorf("%w: a credential check is required", ErrConfig)
	}
	if cfg.MaxAllocationsPerUser < 0 || cfg.UserBandwidth < 0 {
		return nil, fmt.Errorf("%w: negative quota", ErrConfig)
	}
	if cfg.Port == 0 {
		cfg.Port = 3478
	}
	if cfg.TLSPort == 0 {
		cfg.TLSPort = 5349
	}
	if cfg.TLSPort < 0 {
		cfg.TLSPort = 0
	}
	if cfg.Realm == "" {
		cfg.Realm = "p2pcast"
	}
	if cfg.MaxAllocationsPerUser == 0 {
		cfg.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if cfg.UserBandwidth == 0 {
		cfg.UserBandwidth = DefaultUserBandwidth
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	listenIP := net.IPv4zero
	if cfg.ListenIP != nil {
		listenIP = cfg.ListenIP
	}
	own, err := hubAddresses(cfg.PublicIP, listenIP)
	if err != nil {
		return nil, err
	}
	s := &Server{
		listenIP: listenIP,
		peers: ipclass.Policy{
			Allow: slices.Clone(cfg.Peers.Allow),
			Deny:  append(slices.Clone(cfg.Peers.Deny), own...),
		},
		tcp:   cfg.TCPAllocations,
		users: newUsers(cfg.MaxAllocationsPerUser, cfg.UserBandwidth, time.Now, cfg.onRelease),
		log:   cfg.Logger,
	}
	relay := func() turn.RelayAddressGenerator {
		return &relayGen{inner: &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.PublicIP, Address: listenIP.String()}, s: s}
	}

	udp, tcp, err := listenPair(listenIP.String(), cfg.Port)
	if err != nil {
		return nil, err
	}
	s.udpAddr = udp.LocalAddr().(*net.UDPAddr)
	s.tcpAddr = tcp.Addr().(*net.TCPAddr)
	listeners := []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: relay(), PermissionHandler: s.permit}}
	if cfg.TLS != nil {
		tl, err := tls.Listen("tcp4", net.JoinHostPort(listenIP.String(), strconv.Itoa(cfg.TLSPort)), cfg.TLS)
		if err != nil {
			udp.Close()
			tcp.Close()
			return nil, fmt.Errorf("turnserver: TLS: %w", err)
		}
		s.tlsAddr = tl.Addr().(*net.TCPAddr)
		listeners = append(listeners, turn.ListenerConfig{Listener: tl, RelayAddressGenerator: relay(), PermissionHandler: s.permit})
	}

	log := cfg.Logger
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: cfg.Realm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			password, err := cfg.Verify(ra.Username)
			if err != nil {
				s.authFailed.Add(1)
				log.Info("turn credential refused", "remote", ra.SrcAddr.String(), "err", err)
				return "", nil, false
			}
			// The user ID pion/turn hands to the quota and relay hooks is the whole username;
			// users.name takes the name out of it.
			return ra.Username, turn.GenerateAuthKey(ra.Username, cfg.Realm, password), true
		},
		// The quota check answers 486 (Allocation Quota Reached); relayGen enforces the same
		// quota again where the allocation is made, so concurrent requests cannot slip past it.
		QuotaHandler: func(userID, _ string, src net.Addr) bool {
			if s.users.allocations(userID) < cfg.MaxAllocationsPerUser {
				return true
			}
			s.allocRefused.Add(1)
			log.Info("turn allocation refused: quota reached", "remote", src.String(), "user", userName(userID), "max", cfg.MaxAllocationsPerUser)
			return false
		},
		// Permissions tell the UDP relay sockets whose packets to charge to their user.
		EventHandler: turn.EventHandler{
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.relays.permission(relay, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.relays.permission(relay, peer, false)
			},
		},
		PacketConnConfigs:  []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: relay(), PermissionHandler: s.permit}},
		ListenerConfigs:    listeners,
		LoggerFactory:      quietLogs{},
		AllocationLifetime: 10 * time.Minute,
	})
	if err != nil {
		udp.Close()
		for _, l := range listeners {
			l.Listener.Close()
		}
		return nil, fmt.Errorf("turnserver: %w", err)
	}
	s.srv = srv
	return s, nil
}

// hubAddresses are the addresses that reach this host: the relay must never send to them.
func hubAddresses(publicIP, listenIP net.IP) ([]netip.Prefix, error) {
	ips := []net.IP{publicIP, listenIP, net.IPv4zero, net.IPv6unspecified}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("turnserver: the host's addresses (to keep the relay off them): %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	var out []netip.Prefix
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		a = a.Unmap()
		if p := netip.PrefixFrom(a, a.BitLen()); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// permit is pion/turn's PermissionHandler: it runs for CreatePermission, ChannelBind and
// Connect (RFC 6062) alike.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, _ := netip.AddrFromSlice(peer)
	if s.peers.Permits(ip) {
		return true
	}
	s.refusePeer(client, ip, "permission")
	return false
}

func (s *Server) refusePeer(client net.Addr, peer netip.Addr, what string) {
	s.peerRefused.Add(1)
	remote := ""
	if client != nil {
		remote = client.String()
	}
	s.log.Info("turn peer refused", "remote", remote, "peer", peer.String(), "class", ipclass.Classify(peer).String(), "request", what)
}

// UDPAddr, TCPAddr and TLSAddr are where the server listens (TLSAddr nil without TLS).
func (s *Server) UDPAddr() *net.UDPAddr { return s.udpAddr }
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcpAddr }
func (s *Server) TLSAddr() *net.TCPAddr { return s.tlsAddr }

// Peers is the policy in force: Config.Peers with the hub's own addresses added to Deny.
func (s *Server) Peers() ipclass.Policy { return s.peers }

// AuthFailures counts refused credentials.
func (s *Server) AuthFailures() uint64 { return s.authFailed.Load() }

// PeerRefusals counts permissions, channel binds, connects and packets refused by the policy.
func (s *Server) PeerRefusals() uint64 { return s.peerRefused.Load() }

// AllocationRefusals counts allocations refused for the quota, and TCP allocations and
// connects refused while TCP allocations are off.
func (s *Server) AllocationRefusals() uint64 { return s.allocRefused.Load() }

// BandwidthDrops counts relayed UDP packets dropped by the per-user bandwidth limit.
func (s *Server) BandwidthDrops() uint64 { return s.bwDropped.Load() }

// Relayed returns the bytes relayed so far, client → peer and peer → client.
func (s *Server) Relayed() (up, down uint64) { return s.relayedUp.Load(), s.relayedDown.Load() }

// Allocations returns the live allocations (UDP relays and TCP relay listeners).
func (s *Server) Allocations() int { return s.users.total() }

// AllocationCount is the number of live allocations.
func (s *Server) AllocationCount() int { return s.srv.AllocationCount() }

// Close stops the server and ends every allocation.
func (s *Server) Close() error { return s.srv.Close() }

// quietLogs drops pion/turn's own logging: refusals reach the hub's log through the hooks here.
type quietLogs struct{}

func (quietLogs) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("turn", logging.LogLevelDisabled, discard{})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// listenPair listens on UDP and TCP on the same port (clients are given one port for both). A
// negative port asks for any free one: the UDP port the system picks may be taken on TCP (they
// are separate namespaces, so it rarely is), and then another is tried.
func listenPair(ip string, port int) (net.PacketConn, net.Listener, error) {
	tries := 1
	if port < 0 {
		port, tries = 0, 20
	}
	var err error
	for range tries {
		var udp net.PacketConn
		if udp, err = net.ListenPacket("udp4", net.JoinHostPort(ip, strconv.Itoa(port))); err != nil {
			return nil, nil, fmt.Errorf("turnserver: UDP: %w", err)
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		var tcp net.Listener
		if tcp, err = net.Listen("tcp4", net.JoinHostPort(ip, strconv.Itoa(got))); err == nil {
			return udp, tcp, nil
		}
		udp.Close()
	}
	return nil, nil, fmt.Errorf("turnserver: TCP: %w", err)
}
