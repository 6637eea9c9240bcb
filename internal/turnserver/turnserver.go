// Package turnserver runs the hub's embedded STUN/TURN server (RFC 8656) on pion/turn: UDP and
// TCP on one port, TLS on another when a certificate is given. Clients authenticate with
// short-lived TURN REST credentials (the scheme coturn's use-auth-secret checks), so the hub
// can hand them out without keeping per-user state.
package turnserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
)

// Config describes the server.
type Config struct {
	// PublicIP is the address clients and peers reach the relay on: relayed candidates carry it.
	PublicIP net.IP
	// ListenIP is where the sockets bind (default: all addresses).
	ListenIP net.IP
	// Port for UDP and TCP (default 3478); TLSPort for TLS (default 5349).
	Port, TLSPort int
	// TLS, when set, adds a TURN-over-TLS listener.
	TLS *tls.Config
	// Realm of the long-term credentials (default "p2pcast").
	Realm string
	// Verify returns the password for a TURN REST username, or an error (expired, malformed).
	Verify func(username string) (password string, err error)
	// AllowPeer decides which peer addresses a client may relay to; nil uses DefaultAllowPeer.
	AllowPeer func(ip net.IP) bool
	Logger    *slog.Logger
}

// DefaultAllowPeer refuses relaying to addresses that are never a remote peer: loopback,
// unspecified, link-local and multicast. Without it a TURN client could reach services on the
// hub's own host through the relay.
func DefaultAllowPeer(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast())
}

// Server is a running TURN server.
type Server struct {
	srv        *turn.Server
	udpAddr    *net.UDPAddr
	tcpAddr    *net.TCPAddr
	tlsAddr    *net.TCPAddr
	authFailed atomic.Uint64
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.PublicIP == nil {
		return nil, errors.New("turnserver: a public IP is required")
	}
	if cfg.Verify == nil {
		return nil, errors.New("turnserver: a credential check is required")
	}
	if cfg.Port == 0 {
		cfg.Port = 3478
	}
	if cfg.TLSPort == 0 {
		cfg.TLSPort = 5349
	}
	if cfg.Realm == "" {
		cfg.Realm = "p2pcast"
	}
	if cfg.AllowPeer == nil {
		cfg.AllowPeer = DefaultAllowPeer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	listenIP := "0.0.0.0"
	if cfg.ListenIP != nil {
		listenIP = cfg.ListenIP.String()
	}
	s := &Server{}
	relay := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.PublicIP, Address: listenIP}
	}
	permit := func(_ net.Addr, peer net.IP) bool { return cfg.AllowPeer(peer) }

	udp, err := net.ListenPacket("udp4", net.JoinHostPort(listenIP, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("turnserver: UDP: %w", err)
	}
	s.udpAddr = udp.LocalAddr().(*net.UDPAddr)
	// TCP on the port UDP got (they are separate namespaces, so it is usually free).
	tcp, err := net.Listen("tcp4", net.JoinHostPort(listenIP, strconv.Itoa(s.udpAddr.Port)))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("turnserver: TCP: %w", err)
	}
	s.tcpAddr = tcp.Addr().(*net.TCPAddr)
	listeners := []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: relay(), PermissionHandler: permit}}
	if cfg.TLS != nil {
		tl, err := tls.Listen("tcp4", net.JoinHostPort(listenIP, strconv.Itoa(cfg.TLSPort)), cfg.TLS)
		if err != nil {
			udp.Close()
			tcp.Close()
			return nil, fmt.Errorf("turnserver: TLS: %w", err)
		}
		s.tlsAddr = tl.Addr().(*net.TCPAddr)
		listeners = append(listeners, turn.ListenerConfig{Listener: tl, RelayAddressGenerator: relay(), PermissionHandler: permit})
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
			return ra.Username, turn.GenerateAuthKey(ra.Username, cfg.Realm, password), true
		},
		PacketConnConfigs:  []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: relay(), PermissionHandler: permit}},
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

// UDPAddr, TCPAddr and TLSAddr are where the server listens (TLSAddr nil without TLS).
func (s *Server) UDPAddr() *net.UDPAddr { return s.udpAddr }
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcpAddr }
func (s *Server) TLSAddr() *net.TCPAddr { return s.tlsAddr }

// AuthFailures counts refused credentials.
func (s *Server) AuthFailures() uint64 { return s.authFailed.Load() }

// AllocationCount is the number of live allocations.
func (s *Server) AllocationCount() int { return s.srv.AllocationCount() }

// Close stops the server and ends every allocation.
func (s *Server) Close() error { return s.srv.Close() }

// quietLogs drops pion/turn's own logging: refusals reach the hub's log through Verify.
type quietLogs struct{}

func (quietLogs) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("turn", logging.LogLevelDisabled, discard{})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
