package natlab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// CoturnOptions configures StartCoturn.
type CoturnOptions struct {
	// Realm defaults to "p2pcast.test".
	Realm string
	// RFC5780 gives the host a second public address and makes coturn listen on both, which
	// is what it needs to answer NAT behaviour discovery (CHANGE-REQUEST, OTHER-ADDRESS).
	RFC5780 bool
	// TLS adds a TLS listener on 5349 with a self-signed certificate for the host's address.
	TLS bool
	// Args are appended to turnserver's command line.
	Args []string
}

// Coturn is a running Debian turnserver.
type Coturn struct {
	Host  *Host
	IP    net.IP // where it listens and relays
	AltIP net.IP // its second address with RFC5780, else nil
	Proc  *Proc
	// CertPEM is the self-signed certificate of the TLS listener, nil without TLS.
	CertPEM []byte

	secret string
	realm  string
}

const (
	coturnPort    = 3478
	coturnTLSPort = 5349
	coturnReady   = 10 * time.Second
)

// StartCoturn runs Debian's turnserver in host (which must be on the public segment): STUN
// and TURN on UDP and TCP 3478 of the host's address, REST-API credentials from a random
// shared secret, no configuration read from /etc, no CLI, peers in 10.0.0.0/8 denied (coturn
// 4.6.1 tears down an allocation after sends to private candidates fail). It returns once
// coturn answers on every listener and stops it at t's cleanup.
func (l *Lab) StartCoturn(t testing.TB, host *Host, opts CoturnOptions) *Coturn {
	t.Helper()
	c, err := l.startCoturn(t, host, opts)
	if err != nil {
		t.Fatalf("natlab: coturn in %s: %v", host.NS, err)
	}
	return c
}

func (l *Lab) startCoturn(t testing.TB, host *Host, opts CoturnOptions) (*Coturn, error) {
	if host.Router != nil {
		return nil, fmt.Errorf("host %q is behind a NAT; coturn belongs on the public segment", host.Name)
	}
	bin, err := lookTool("turnserver")
	if err != nil {
		return nil, errors.New("turnserver not found (Debian package coturn; scripts/install-deps.sh installs it)")
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	c := &Coturn{Host: host, IP: host.IP, secret: hex.EncodeToString(secret), realm: opts.Realm}
	if c.realm == "" {
		c.realm = "p2pcast.test"
	}
	l.mu.Lock()
	l.coturns = append(l.coturns, c)
	n := len(l.coturns)
	l.mu.Unlock()
	dir := filepath.Join(l.dir, "coturn-"+strconv.Itoa(n))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}

	args := []string{
		"-c", "/dev/null", // never /etc/turnserver.conf
		"--no-cli",
		"--log-file=stdout",
		"--pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"--userdb=" + filepath.Join(dir, "turndb"),
		"--listening-port=" + strconv.Itoa(coturnPort),
		"--listening-ip=" + host.IP.String(),
		"--relay-ip=" + host.IP.String(),
		"--use-auth-secret",
		"--static-auth-secret=" + c.secret,
		"--realm=" + c.realm,
		"--denied-peer-ip=10.0.0.0-10.255.255.255",
		"--no-multicast-peers",
		"--no-dtls",
	}
	if opts.RFC5780 {
		if c.AltIP, err = l.addPublicIP(host); err != nil {
			return nil, err
		}
		args = append(args, "--listening-ip="+c.AltIP.String())
	}
	if opts.TLS {
		certFile, keyFile, certPEM, err := selfSigned(dir, host.IP)
		if err != nil {
			return nil, err
		}
		c.CertPEM = certPEM
		args = append(args, "--tls-listening-port="+strconv.Itoa(coturnTLSPort), "--cert="+certFile, "--pkey="+keyFile)
	} else {
		args = append(args, "--no-tls")
	}
	args = append(args, opts.Args...)

	c.Proc = host.Start(t, bin, args...)
	if err := c.waitReady(opts.TLS); err != nil {
		c.Proc.Stop()
		return nil, fmt.Errorf("%v\n%s %v\noutput:\n%s", err, bin, args, c.Proc.Output())
	}
	return c, nil
}

// waitReady polls every listener until it answers, or fails at the deadline or when
// turnserver exits.
func (c *Coturn) waitReady(withTLS bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), coturnReady)
	defer cancel()
	checks := []func(context.Context) error{
		func(ctx context.Context) error { return c.stunUDP(ctx, c.IP) },
		func(ctx context.Context) error { return c.tcpOpen(ctx, coturnPort) },
	}
	if c.AltIP != nil {
		checks = append(checks, func(ctx context.Context) error { return c.stunUDP(ctx, c.AltIP) })
	}
	if withTLS {
		checks = append(checks, c.tlsHandshake)
	}
	for _, check := range checks {
		for {
			err := check(ctx)
			if err == nil {
				break
			}
			select {
			case <-c.Proc.Done():
				return fmt.Errorf("turnserver exited (%v) before it was ready", c.Proc.Err())
			case <-ctx.Done():
				return fmt.Errorf("turnserver not ready after %v: %v", coturnReady, err)
			// Refused connections come back at once: retry a little later.
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// stunUDP sends a STUN Binding request from inside the host and waits briefly for the answer.
func (c *Coturn) stunUDP(ctx context.Context, ip net.IP) error {
	conn, err := c.Host.dial(ctx, "udp4", net.JoinHostPort(ip.String(), strconv.Itoa(coturnPort)))
	if err != nil {
		return err
	}
	defer conn.Close()
	var req [20]byte
	binary.BigEndian.PutUint16(req[0:], 0x0001) // Binding request, no attributes
	binary.BigEndian.PutUint32(req[4:], 0x2112A442)
	rand.Read(req[8:])
	if _, err := conn.Write(req[:]); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		if n >= 20 && binary.BigEndian.Uint16(buf) == 0x0101 && string(buf[8:20]) == string(req[8:]) {
			return nil
		}
	}
}

func (c *Coturn) tcpOpen(ctx context.Context, port int) error {
	conn, err := c.Host.dial(ctx, "tcp4", net.JoinHostPort(c.IP.String(), strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *Coturn) tlsHandshake(ctx context.Context) error {
	conn, err := c.Host.dial(ctx, "tcp4", net.JoinHostPort(c.IP.String(), strconv.Itoa(coturnTLSPort)))
	if err != nil {
		return err
	}
	defer conn.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CertPEM)
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: c.IP.String()})
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return tc.HandshakeContext(hctx)
}

// URLs are the ICE server URLs: TURN over UDP and TCP, STUN, and TURN over TLS if enabled.
func (c *Coturn) URLs() []string {
	hp := net.JoinHostPort(c.IP.String(), strconv.Itoa(coturnPort))
	urls := []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp", "stun:" + hp}
	if c.CertPEM != nil {
		urls = append(urls, "turns:"+net.JoinHostPort(c.IP.String(), strconv.Itoa(coturnTLSPort))+"?transport=tcp")
	}
	return urls
}

// Addr is host:port of the plain STUN/TURN listener.
func (c *Coturn) Addr() string { return net.JoinHostPort(c.IP.String(), strconv.Itoa(coturnPort)) }

// Secret is the shared secret of coturn's TURN REST API credentials (use-auth-secret).
func (c *Coturn) Secret() string { return c.secret }

// Realm is coturn's realm.
func (c *Coturn) Realm() string { return c.realm }

// Credentials makes a TURN REST API username and password valid for ttl, as a server holding
// the secret would hand them to a browser.
func (c *Coturn) Credentials(user string, ttl time.Duration) (username, password string) {
	username = strconv.FormatInt(time.Now().Add(ttl).Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(c.secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Log is turnserver's output so far.
func (c *Coturn) Log() string { return c.Proc.Output() }

// selfSigned writes a certificate and key for ip into dir.
func selfSigned(dir string, ip net.IP) (certFile, keyFile string, certPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: ip.String()},
		IPAddresses:           []net.IP{ip},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, certPEM, nil
}
