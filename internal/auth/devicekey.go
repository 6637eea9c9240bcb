package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DeviceKeyPrefix starts the text form of a device key; the version digit
// lets a later format coexist, and the prefix makes a leaked key easy to
// recognise (and to scan for).
const DeviceKeyPrefix = "p2pk1_"

// deviceKeyTextLen is the exact length of a device key's text form.
var deviceKeyTextLen = len(DeviceKeyPrefix) + base64.RawURLEncoding.EncodedLen(ed25519.SeedSize)

// redacted is what every accidental rendering of a secret prints.
const redacted = "[redacted]"

// DeviceKey is a device's secret Ed25519 key. The zero value is no key.
//
// Printing it by any route — fmt verbs, slog, %+v of a struct holding it —
// shows "[redacted]"; Secret is the one way to get the text form, for the
// moment it is shown to the user on enrolment or written to the device's
// config. The seed sits behind a pointer because fmt prints a pointer
// nested in a struct as an address, so even a struct that holds a DeviceKey
// in an unexported field (where fmt cannot call methods) cannot leak it.
type DeviceKey struct {
	k *deviceSecret
}

type deviceSecret struct {
	priv ed25519.PrivateKey
}

// GenerateDeviceKey makes a new random device key.
func GenerateDeviceKey() (DeviceKey, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return DeviceKey{}, fmt.Errorf("auth: generating device key: %w", err)
	}
	return deviceKeyFromSeed(seed[:]), nil
}

func deviceKeyFromSeed(seed []byte) DeviceKey {
	return DeviceKey{k: &deviceSecret{priv: ed25519.NewKeyFromSeed(seed)}}
}

// ParseDeviceKey parses the text form Secret returns. It is strict: exact
// prefix, canonical unpadded base64url, no surrounding space (trim a line
// read from a file first). Errors never quote the input.
func ParseDeviceKey(s string) (DeviceKey, error) {
	if len(s) != deviceKeyTextLen {
		return DeviceKey{}, fmt.Errorf("%w: want %d characters starting %q", ErrBadDeviceKey, deviceKeyTextLen, DeviceKeyPrefix)
	}
	if s[:len(DeviceKeyPrefix)] != DeviceKeyPrefix {
		return DeviceKey{}, fmt.Errorf("%w: want prefix %q", ErrBadDeviceKey, DeviceKeyPrefix)
	}
	seed, err := decodeB64URL(s[len(DeviceKeyPrefix):])
	if err != nil || len(seed) != ed25519.SeedSize {
		return DeviceKey{}, fmt.Errorf("%w: bad base64url", ErrBadDeviceKey)
	}
	return deviceKeyFromSeed(seed), nil
}

// IsZero reports whether k holds no key.
func (k DeviceKey) IsZero() bool { return k.k == nil }

// Secret returns the key's text form, "p2pk1_" and the base64url seed.
// Call it only to hand the key to its owner; anything else should print k
// itself, which redacts.
func (k DeviceKey) Secret() string {
	if k.k == nil {
		return ""
	}
	return DeviceKeyPrefix + base64.RawURLEncoding.EncodeToString(k.k.priv.Seed())
}

// Public returns the public half, nil for the zero DeviceKey.
func (k DeviceKey) Public() ed25519.PublicKey {
	if k.k == nil {
		return nil
	}
	return k.k.priv.Public().(ed25519.PublicKey)
}

// String redacts; see Secret.
func (k DeviceKey) String() string { return redacted }

// GoString redacts, for %#v.
func (k DeviceKey) GoString() string { return redacted }

// Format redacts for every verb, so %x, %q or %+v cannot reach the seed.
func (k DeviceKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue redacts in slog, whatever the handler.
func (k DeviceKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText refuses, so a DeviceKey put in a JSON or YAML document by
// mistake fails loudly instead of writing the secret or a useless
// placeholder; store Secret() explicitly.
func (k DeviceKey) MarshalText() ([]byte, error) {
	return nil, fmt.Errorf("auth: refusing to marshal a device key; store Secret() explicitly")
}

var (
	_ fmt.Stringer   = DeviceKey{}
	_ fmt.GoStringer = DeviceKey{}
	_ fmt.Formatter  = DeviceKey{}
	_ slog.LogValuer = DeviceKey{}
)

// ChallengeSize is the number of random bytes in a Challenge.
const ChallengeSize = 32

// Challenge is a random nonce the hub sends a device to sign. The hub must
// accept each one once and only for a short while; that bookkeeping is the
// hub's, since only it knows its sessions. Its text form (String,
// MarshalText) is unpadded base64url, so it travels in JSON as a string.
type Challenge [ChallengeSize]byte

// NewChallenge makes a random challenge.
func NewChallenge() (Challenge, error) {
	var c Challenge
	if _, err := rand.Read(c[:]); err != nil {
		return Challenge{}, fmt.Errorf("auth: generating challenge: %w", err)
	}
	return c, nil
}

// ParseChallenge parses the text form of a challenge.
func ParseChallenge(s string) (Challenge, error) {
	var c Challenge
	b, err := decodeB64URL(s)
	if err != nil || len(b) != ChallengeSize {
		return Challenge{}, fmt.Errorf("%w: want %d bytes of unpadded base64url", ErrBadChallenge, ChallengeSize)
	}
	copy(c[:], b)
	return c, nil
}

// String returns the unpadded base64url form; a challenge is not secret.
func (c Challenge) String() string { return base64.RawURLEncoding.EncodeToString(c[:]) }

// MarshalText implements encoding.TextMarshaler.
func (c Challenge) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Challenge) UnmarshalText(b []byte) error {
	p, err := ParseChallenge(string(b))
	if err != nil {
		return err
	}
	*c = p
	return nil
}

// challengeDomain separates device-auth signatures from anything else the
// same key might ever sign. v2 binds the hub URL the device dialled.
const challengeDomain = "p2pcast-device-auth-v2\x00"

// challengeMessage is what a device signs: domain, device ID, NUL, the hub
// URL it dialled (CanonicalHubURL), NUL, challenge. Binding the ID means a
// signature made as one device cannot be replayed to log in as another that
// shares the key; binding the URL means a hub the device was tricked into
// dialling cannot pass the device's signature on to the real hub (which
// accepts only its own URLs); the fixed-size challenge at the end keeps the
// encoding unambiguous (neither the ID nor a canonical URL holds a NUL).
func challengeMessage(deviceID, hubURL string, c Challenge) []byte {
	m := make([]byte, 0, len(challengeDomain)+len(deviceID)+len(hubURL)+2+ChallengeSize)
	m = append(m, challengeDomain...)
	m = append(m, deviceID...)
	m = append(m, 0)
	m = append(m, hubURL...)
	m = append(m, 0)
	return append(m, c[:]...)
}

// SignChallenge signs challenge c as device deviceID for the hub at hubURL
// (canonical form, see CanonicalHubURL). It returns nil for the zero
// DeviceKey, which VerifyChallenge rejects.
func SignChallenge(k DeviceKey, deviceID, hubURL string, c Challenge) []byte {
	if k.k == nil {
		return nil
	}
	return ed25519.Sign(k.k.priv, challengeMessage(deviceID, hubURL, c))
}

// VerifyChallenge checks that sig is deviceID's signature of c for hubURL
// under pub. It returns ErrBadDeviceID for an invalid ID and ErrBadSignature
// for any signature that does not verify, including one of the wrong length
// or one made for another hub URL.
func VerifyChallenge(pub ed25519.PublicKey, deviceID, hubURL string, c Challenge, sig []byte) error {
	if err := ValidateDeviceID(deviceID); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize {
		// ed25519.Verify panics on a short key; a bad registry entry must not crash the hub.
		return fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadSignature, len(pub), ed25519.PublicKeySize)
	}
	if strings.IndexByte(hubURL, 0) >= 0 {
		return fmt.Errorf("%w: hub URL holds a NUL", ErrBadSignature)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, challengeMessage(deviceID, hubURL, c), sig) {
		return fmt.Errorf("%w: device %s challenge", ErrBadSignature, quoteShort(deviceID))
	}
	return nil
}

// CanonicalHubURL is the form of a hub URL a device signs and a hub
// compares: scheme (ws or wss) and host in lower case, the port always
// written, no user info, path, query or fragment. "wss://Hub.example.com/device"
// becomes "wss://hub.example.com:443".
func CanonicalHubURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w hub URL: %v", ErrMalformed, err)
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch scheme {
	case "ws", "http":
		scheme = "ws"
		if port == "" {
			port = "80"
		}
	case "wss", "https":
		scheme = "wss"
		if port == "" {
			port = "443"
		}
	default:
		return "", fmt.Errorf("%w hub URL %s: want ws:// or wss://", ErrMalformed, quoteShort(raw))
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		// An IPv6 literal: in its one canonical spelling.
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.Zone() != "" {
			host = ""
		} else {
			host = ip.String()
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		host = ""
	} else {
		port = strconv.Itoa(n) // "080" is port 80 too
	}
	if host == "" || u.User != nil || strings.ContainsAny(host, "\x00/[]@ ") {
		return "", fmt.Errorf("%w hub URL %s: want ws[s]://HOST[:PORT]", ErrMalformed, quoteShort(raw))
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// DeviceIDPattern documents the device IDs ValidateDeviceID accepts. IDs
// appear in file names, URLs and logs, hence the narrow alphabet.
const DeviceIDPattern = `^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`

// ValidateDeviceID returns ErrBadDeviceID unless id matches DeviceIDPattern.
func ValidateDeviceID(id string) error {
	if !validDeviceID(id) {
		return fmt.Errorf("%w %s: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrBadDeviceID, quoteShort(id))
	}
	return nil
}

func validDeviceID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// decodeB64URL decodes unpadded base64url and accepts only the canonical
// encoding: the decoder alone would skip CR/LF and, without Strict, ignore
// nonzero trailing bits, letting many strings mean the same bytes.
func decodeB64URL(s string) ([]byte, error) {
	if !isB64URL(s) {
		return nil, fmt.Errorf("%w: bad base64url character", ErrMalformed)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return b, nil
}

// quoteShort quotes untrusted input for an error message, cut short so a
// huge value from the network cannot bloat logs.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
