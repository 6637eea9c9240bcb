package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Token format: TokenPrefix, base64url(JSON payload), ".", base64url(Ed25519
// signature over everything before that last dot). The prefix carries the
// version and is signed, so a token cannot be reinterpreted under another
// format.
const (
	TokenPrefix = "p2pt1."
	// MaxTokenLen bounds what Verify will look at, before any decoding.
	MaxTokenLen = 4096
	// MaxLifetime bounds Expires-IssuedAt: tokens cannot be revoked short of
	// rotating the hub key, so none may live long.
	MaxLifetime = 30 * 24 * time.Hour
	// ClockSkew is how far in the future iat and nbf may be; expiry gets no
	// slack, so a token never outlives what its issuer wrote.
	ClockSkew = 30 * time.Second
)

// Limits on claim fields, so a token stays small and safe to log.
const (
	MaxTokenIDLen = 64
	maxSubjectLen = 128
	// maxUnix is 9999-12-31T23:59:59Z; later times are certainly mistakes
	// and would not survive every time formatting.
	maxUnix = 253402300799
)

// Grant is one thing a viewer token allows on a device.
type Grant string

// Grants a token can carry.
const (
	GrantView    Grant = "view"    // watch the stream
	GrantTalk    Grant = "talk"    // send audio to the device
	GrantControl Grant = "control" // drive a desktop, change device settings, read the status API
	GrantFiles   Grant = "files"   // list and fetch recordings
)

// AllGrants lists every known grant.
var AllGrants = []Grant{GrantView, GrantTalk, GrantControl, GrantFiles}

// Valid reports whether g is a known grant.
func (g Grant) Valid() bool { return slices.Contains(AllGrants, g) }

// ParseGrants parses a comma-separated list such as "view,control".
// Spaces around names are ignored and duplicates dropped; unknown or empty
// names are ErrUnknownGrant, as is an empty list.
func ParseGrants(s string) ([]Grant, error) {
	var out []Grant
	for name := range strings.SplitSeq(s, ",") {
		g := Grant(strings.TrimSpace(name))
		if !g.Valid() {
			return nil, fmt.Errorf("%w %s: want a comma-separated list of %s", ErrUnknownGrant, quoteShort(string(g)), grantList())
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

func grantList() string {
	names := make([]string, len(AllGrants))
	for i, g := range AllGrants {
		names[i] = string(g)
	}
	return strings.Join(names, ", ")
}

// AllDevices in Claims.Devices makes a token cover every device.
const AllDevices = "*"

// Claims is what a viewer token says.
type Claims struct {
	// ID identifies the token in the audit log; Mint fills a random one if
	// empty. 1-64 characters of the base64url alphabet.
	ID string
	// Devices the token covers: device IDs, or AllDevices for all.
	Devices []string
	// Grants is what the token allows on those devices.
	Grants []Grant
	// IssuedAt defaults to now in Mint. Times are kept to whole seconds.
	IssuedAt time.Time
	// NotBefore is optional: the zero time means valid from IssuedAt.
	NotBefore time.Time
	// Expires is required, after IssuedAt and at most MaxLifetime later.
	Expires time.Time
	// Subject is an optional label, e.g. who the token was made for; at
	// most 128 bytes of printable UTF-8.
	Subject string
}

// Allows reports whether the claims grant g on device deviceID. It does not
// look at the clock: Verify did, and a hub that keeps a session open past
// Expires must recheck that itself.
func (c Claims) Allows(deviceID string, g Grant) bool {
	return c.covers(deviceID) && slices.Contains(c.Grants, g)
}

// VisibleDevices returns the members of all that the claims cover, in
// order: what a viewer holding the token may know exists.
func (c Claims) VisibleDevices(all []string) []string {
	out := []string{}
	for _, id := range all {
		if c.covers(id) {
			out = append(out, id)
		}
	}
	return out
}

func (c Claims) covers(deviceID string) bool {
	if !validDeviceID(deviceID) {
		return false // never let "*" or garbage from a request match
	}
	return slices.Contains(c.Devices, deviceID) || slices.Contains(c.Devices, AllDevices)
}

// payload is the signed JSON. Short names keep tokens short in URLs.
type payload struct {
	ID        string   `json:"jti"`
	Subject   string   `json:"sub,omitempty"`
	Devices   []string `json:"dev"`
	Grants    []Grant  `json:"grt"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	Expires   int64    `json:"exp"`
}

func (c Claims) payload() payload {
	p := payload{
		ID:       c.ID,
		Subject:  c.Subject,
		Devices:  c.Devices,
		Grants:   c.Grants,
		IssuedAt: c.IssuedAt.Unix(),
		Expires:  c.Expires.Unix(),
	}
	if c.IssuedAt.IsZero() {
		p.IssuedAt = 0
	}
	if c.Expires.IsZero() {
		p.Expires = 0
	}
	if !c.NotBefore.IsZero() {
		p.NotBefore = c.NotBefore.Unix()
	}
	return p
}

func (p payload) claims() Claims {
	c := Claims{
		ID:       p.ID,
		Subject:  p.Subject,
		Devices:  slices.Clone(p.Devices),
		Grants:   slices.Clone(p.Grants),
		IssuedAt: time.Unix(p.IssuedAt, 0).UTC(),
		Expires:  time.Unix(p.Expires, 0).UTC(),
	}
	if p.NotBefore != 0 {
		c.NotBefore = time.Unix(p.NotBefore, 0).UTC()
	}
	return c
}

// check validates everything but the clock; Mint and Verify share it, so
// Mint cannot make a token Verify would refuse as malformed.
func (p payload) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w token: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if !validTokenID(p.ID) {
		return bad("id must be 1-%d base64url characters", MaxTokenIDLen)
	}
	if len(p.Subject) > maxSubjectLen || !utf8.ValidString(p.Subject) ||
		strings.ContainsFunc(p.Subject, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return bad("subject must be at most %d bytes of printable UTF-8", maxSubjectLen)
	}
	if len(p.Devices) == 0 {
		return bad("no devices")
	}
	for _, d := range p.Devices {
		if d != AllDevices && !validDeviceID(d) {
			return bad("invalid device id %s", quoteShort(d))
		}
	}
	if len(p.Grants) == 0 {
		return bad("no grants")
	}
	for _, g := range p.Grants {
		if !g.Valid() {
			return bad("unknown grant %s", quoteShort(string(g)))
		}
	}
	// Check signs and ranges before subtracting so nothing can overflow.
	switch {
	case p.Expires == 0:
		return bad("no expiry")
	case p.IssuedAt <= 0 || p.IssuedAt > maxUnix || p.Expires <= 0 || p.Expires > maxUnix:
		return bad("iat and exp must be between 1970 and 9999")
	case p.Expires <= p.IssuedAt:
		return bad("expires before it is issued")
	case p.Expires-p.IssuedAt > int64(MaxLifetime/time.Second):
		return bad("lifetime over %v", MaxLifetime)
	case p.NotBefore < 0 || p.NotBefore >= p.Expires:
		return bad("nbf must be before exp")
	}
	return nil
}

// Mint signs c with the hub's token key. A zero IssuedAt becomes now and an
// empty ID a random one; the claims must otherwise be what Verify accepts
// (ErrMalformed if not), so a minted token always verifies in its window.
func Mint(key ed25519.PrivateKey, c Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("auth: token key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if c.ID == "" {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return "", fmt.Errorf("auth: generating token id: %w", err)
		}
		c.ID = base64.RawURLEncoding.EncodeToString(id[:])
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	p := c.payload()
	if err := p.check(); err != nil {
		return "", err
	}
	js, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("auth: encoding token: %w", err)
	}
	signed := TokenPrefix + base64.RawURLEncoding.EncodeToString(js)
	tok := signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("%w: %d bytes, max %d; list fewer devices", ErrTooLong, len(tok), MaxTokenLen)
	}
	return tok, nil
}

// Verify checks token against the hub's public key at time now and
// returns its claims. It checks length, then form, then the signature, and
// only then parses the JSON, so unauthenticated input never reaches the
// JSON decoder. The payload must be exactly what Mint would produce for
// the claims it carries: no unknown, duplicate or reordered fields.
//
// Errors wrap ErrTooLong, ErrMalformed, ErrBadSignature, ErrNotYetValid or
// ErrExpired. The expiry is required and gets no clock skew: now >= Expires
// is ErrExpired. IssuedAt and NotBefore may be up to ClockSkew ahead.
func Verify(pub ed25519.PublicKey, token string, now time.Time) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: %d bytes, max %d", ErrTooLong, len(token), MaxTokenLen)
	}
	if !strings.HasPrefix(token, TokenPrefix) {
		return Claims{}, fmt.Errorf("%w token: want prefix %q", ErrMalformed, TokenPrefix)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w token: want 3 dot-separated parts, got %d", ErrMalformed, len(parts))
	}
	js, err := decodeB64URL(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("%w token: payload: %v", ErrMalformed, err)
	}
	sig, err := decodeB64URL(parts[2])
	if err != nil {
		return Claims{}, fmt.Errorf("%w token: signature: %v", ErrMalformed, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w token: signature is %d bytes, want %d", ErrMalformed, len(sig), ed25519.SignatureSize)
	}
	if len(pub) != ed25519.PublicKeySize {
		return Claims{}, fmt.Errorf("%w: token public key is %d bytes, want %d", ErrBadSignature, len(pub), ed25519.PublicKeySize)
	}
	signed := token[:len(TokenPrefix)+len(parts[1])]
	if !ed25519.Verify(pub, []byte(signed), sig) {
		return Claims{}, fmt.Errorf("%w: token", ErrBadSignature)
	}

	var p payload
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Claims{}, fmt.Errorf("%w token: payload: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Claims{}, fmt.Errorf("%w token: trailing data after payload", ErrMalformed)
	}
	if err := p.check(); err != nil {
		return Claims{}, err
	}
	// One encoding per claim set: encoding/json alone would accept
	// duplicate keys, case-folded names and explicit zero fields.
	if canon, err := json.Marshal(p); err != nil || !bytes.Equal(canon, js) {
		return Claims{}, fmt.Errorf("%w token: payload not in canonical form", ErrMalformed)
	}

	c := p.claims()
	if !c.NotBefore.IsZero() && now.Add(ClockSkew).Before(c.NotBefore) {
		return Claims{}, fmt.Errorf("%w: token valid from %v", ErrNotYetValid, c.NotBefore)
	}
	if now.Add(ClockSkew).Before(c.IssuedAt) {
		return Claims{}, fmt.Errorf("%w: token issued at %v", ErrNotYetValid, c.IssuedAt)
	}
	if !now.Before(c.Expires) {
		return Claims{}, fmt.Errorf("%w: token expired at %v", ErrExpired, c.Expires)
	}
	return c, nil
}

// validTokenID reports whether id is a token id: 1-MaxTokenIDLen base64url characters.
func validTokenID(id string) bool {
	return id != "" && len(id) <= MaxTokenIDLen && isB64URL(id)
}

func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
