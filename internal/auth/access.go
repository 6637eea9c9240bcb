package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Access is what one session may do, as the device enforces it: the grants
// of the credential that opened it, which token that was, and when the
// session must end.
type Access struct {
	// TokenID names the token (for revocation and logs); "" for a LAN client
	// of a device without LAN auth.
	TokenID string
	Grants  []Grant
	// Deadline ends the session. It is made by adding the token's remaining
	// lifetime to time.Now(), so it carries Go's monotonic reading: a board
	// that boots without a real-time clock and steps its wall clock later
	// still ends the session on time. Zero: no end.
	Deadline time.Time
}

// FullAccess is what a LAN client holds on a device without LAN auth
// configured (a loopback bind, or --insecure-no-auth): every grant, no end.
func FullAccess() Access { return Access{Grants: slices.Clone(AllGrants)} }

// Has reports whether a holds grant g.
func (a Access) Has(g Grant) bool { return slices.Contains(a.Grants, g) }

// Expired reports whether the session must have ended by now.
func (a Access) Expired(now time.Time) bool { return !a.Deadline.IsZero() && !now.Before(a.Deadline) }

// Remaining is the time left before the deadline (0 when past it), at most
// limit; for an Access without a deadline it is limit.
func (a Access) Remaining(now time.Time, limit time.Duration) time.Duration {
	if a.Deadline.IsZero() {
		return limit
	}
	return min(max(0, a.Deadline.Sub(now)), limit)
}

// SessionClaims is how a hub tells a device what a relayed session may do:
// the token's id and grants and its remaining lifetime, in milliseconds
// rather than as a date so that the device, whose clock may be wrong, counts
// it on its own monotonic clock.
type SessionClaims struct {
	TokenID string  `json:"jti"`
	Grants  []Grant `json:"grt"`
	TTLms   int64   `json:"ttl_ms"`
}

// ClaimsFor is the SessionClaims of a verified token at time now.
func ClaimsFor(c Claims, now time.Time) SessionClaims {
	return SessionClaims{TokenID: c.ID, Grants: slices.Clone(c.Grants), TTLms: max(0, c.Expires.Sub(now).Milliseconds())}
}

// Access checks the claims (as Verify checks a token: known grants, an id
// of the token alphabet, a lifetime above zero and at most MaxLifetime) and
// returns the access they give from now on.
func (c SessionClaims) Access(now time.Time) (Access, error) {
	if !validTokenID(c.TokenID) {
		return Access{}, fmt.Errorf("%w session claims: token id must be 1-%d base64url characters", ErrMalformed, MaxTokenIDLen)
	}
	if len(c.Grants) == 0 || len(c.Grants) > len(AllGrants) {
		return Access{}, fmt.Errorf("%w session claims: %d grants", ErrMalformed, len(c.Grants))
	}
	for _, g := range c.Grants {
		if !g.Valid() {
			return Access{}, fmt.Errorf("%w session claims: unknown grant %s", ErrMalformed, quoteShort(string(g)))
		}
	}
	if c.TTLms <= 0 {
		return Access{}, fmt.Errorf("%w: session claims", ErrExpired)
	}
	if c.TTLms > MaxLifetime.Milliseconds() {
		return Access{}, fmt.Errorf("%w session claims: lifetime over %v", ErrMalformed, MaxLifetime)
	}
	return Access{TokenID: c.TokenID, Grants: slices.Clone(c.Grants), Deadline: now.Add(time.Duration(c.TTLms) * time.Millisecond)}, nil
}

// ErrRevoked: the token was revoked.
var ErrRevoked = errors.New("auth: token revoked")

// ErrWrongDevice: the token does not name this device.
var ErrWrongDevice = errors.New("auth: token does not cover this device")

// Verifier checks the tokens a device accepts on its own endpoints, offline:
// signed by a key of Keys (the device's own store, the hub's set), naming
// DeviceID (or every device), not revoked. It is Verify, the hub's check, with
// the device's own rules after it.
type Verifier struct {
	Keys     KeySource
	DeviceID string
	// Revoked, if set, reports revoked token ids.
	Revoked func(tokenID string) bool
}

// Verify checks token at wall-clock time now (a token's dates are wall-clock
// dates; there is no other way to read them) and returns the access it gives,
// with the deadline counted from now on the monotonic clock.
func (v Verifier) Verify(token string, now time.Time) (Access, error) {
	if v.Keys == nil {
		return Access{}, fmt.Errorf("%w: no token key configured", ErrUnknownKey)
	}
	c, err := Verify(v.Keys, token, now)
	if err != nil {
		return Access{}, err
	}
	if !c.covers(v.DeviceID) {
		return Access{}, fmt.Errorf("%w %s", ErrWrongDevice, quoteShort(v.DeviceID))
	}
	if v.Revoked != nil && v.Revoked(c.ID) {
		return Access{}, fmt.Errorf("%w: %s", ErrRevoked, c.ID)
	}
	return Access{TokenID: c.ID, Grants: c.Grants, Deadline: now.Add(c.Expires.Sub(now))}, nil
}

// TokenKeyPrefix starts the text form of a token verification key (public:
// it may be shown and copied to devices freely). Its kid is its Thumbprint;
// a JWK Set (KeySet.JWKS) carries a hub's every key instead.
const TokenKeyPrefix = "p2pv1_"

// FormatTokenKey is the text form of a token verification key.
func FormatTokenKey(pub ed25519.PublicKey) string {
	return TokenKeyPrefix + base64.RawURLEncoding.EncodeToString(pub)
}

// ParseTokenKey reads FormatTokenKey's output.
func ParseTokenKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), TokenKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w token key: want %s…", ErrMalformed, TokenKeyPrefix)
	}
	b, err := decodeB64URL(rest)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w token key: want %d base64url bytes", ErrMalformed, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
