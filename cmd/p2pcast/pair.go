package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// pairingLink prints, when the device starts, a link that carries a LAN token in its fragment
// (#token=…, which browsers never send to a server) and the same link as a QR code for a phone.
type pairingLink struct {
	store  *auth.Store
	id     string
	grants []auth.Grant
	ttl    time.Duration
}

func (p pairingLink) print(w io.Writer, pageURL string) error {
	u, err := url.Parse(pageURL)
	if err != nil {
		return err
	}
	// A device listening on every address is paired through the address a phone on the LAN
	// can reach, not 0.0.0.0.
	if host, port, err := net.SplitHostPort(u.Host); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			u.Host = net.JoinHostPort(lanAddress(), port)
		}
	}
	now := time.Now()
	tok, err := p.store.MintToken(auth.Claims{Devices: []string{p.id}, Grants: p.grants,
		IssuedAt: now, Expires: now.Add(p.ttl), Subject: "pairing link"})
	if err != nil {
		return err
	}
	plain := u.String()
	u.Fragment = "token=" + tok
	link := u.String()
	qr, err := qrcode.New(link, qrcode.Low)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\nPairing link (grants %v, valid until %s; anyone with it may watch, keep it private):\n%s\n",
		plain, p.grants, now.Add(p.ttl).Format(time.RFC3339), qr.ToSmallString(false))
	fmt.Fprintln(w, link)
	return nil
}

// lanAddress is the device's first non-loopback IPv4 address (what a phone on the same network
// reaches), or 127.0.0.1.
func lanAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
