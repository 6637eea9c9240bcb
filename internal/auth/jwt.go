package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Viewer tokens are JWTs (RFC 7519) in the JWS compact serialization (RFC
// 7515), signed with Ed25519 (alg EdDSA, RFC 8037): any stock JWT library
// makes and checks them. The header is {"alg":"EdDSA","typ":"JWT","kid":…};
// the claims are
//
//	iss      the issuer: LocalIssuer for tokens a p2pcast hub or device signs,
//	         or an external issuer the hub is configured to trust
//	aud      Audience ("p2pcast"), as a string or in an array: the token is a
//	         p2pcast viewer token, not one the same issuer made for another service
//	sub      optional label (who the token is for)
//	jti      the token id: audit log, revocation, per-token session limits
//	iat      optional (Mint sets it); nbf optional; exp required
//	devices  the device ids the token reaches, or ["*"] for all
//	grants   what it allows there: view, talk, control, files
//
// docs/security.md describes the format for an application's backend.
const (
	// Audience is the aud every viewer token must name.
	Audience = "p2pcast"
	// LocalIssuer is the iss of the tokens p2pcast signs with its own keys
	// (a hub's, a device's for its pairing links).
	LocalIssuer = "p2pcast"
	// Alg is the only JWS algorithm signed or accepted.
	Alg = "EdDSA"
	// MaxTokenLen bounds what Verify will look at, before any decoding.
	MaxTokenLen = 4096
	// MaxLifetime bounds exp-iat (exp-now without iat): a token cannot be
	// revoked other than by its id, so none may live long.
	MaxLifetime = 30 * 24 * time.Hour
	// ClockSkew is how far in the future iat and nbf may be; expiry gets no
	// slack, so a token never outlives what its issuer wrote.
	ClockSkew = 30 * time.Second
	// LegacyTokenPrefix started the tokens of p2pcast before JWTs; they are
	// refused (ErrLegacyToken).
	LegacyTokenPrefix = "p2pt1."
)

// Limits on claim and header fields, so a token stays small and safe to log.
const (
	MaxTokenIDLen  = 64
	maxSubjectLen  = 128
	maxKeyIDLen    = 128
	maxIssuerLen   = 256
	maxAudiences   = 16
	maxDevicesList = 256
	// maxUnix is 9999-12-31T23:59:59Z; later times are certainly mistakes
	// and would not survive every time formatting.
	maxUnix = 253402300799
)

// Errors of Verify besides those of auth.go.
var (
	// ErrLegacyToken: a p2pt1. token, the format before JWTs.
	ErrLegacyToken = errors.New("auth: p2pt1 tokens are no longer accepted: p2pcast tokens are JWTs now; mint a new one (p2pcast token, or the admin page)")
	// ErrUnknownKey: the token's kid names no key the verifier knows (a
	// removed or expired key, another hub's, a typo).
	ErrUnknownKey = errors.New("auth: unknown token key id")
	// ErrWrongIssuer: the iss claim is not the issuer of the key that signed it.
	ErrWrongIssuer = errors.New("auth: wrong token issuer")
	// ErrWrongAudience: the aud claim does not name Audience.
	ErrWrongAudience = errors.New("auth: token not for p2pcast")
)

// SigningKey is a private key that signs tokens, with its key id.
type SigningKey struct {
	KID     string
	Private ed25519.PrivateKey
}

// Public is the key that verifies what k signs, as issuer LocalIssuer.
func (k SigningKey) Public() VerifyKey {
	return VerifyKey{KID: k.KID, Issuer: LocalIssuer, Public: slices.Clone(k.Private.Public().(ed25519.PublicKey))}
}

// VerifyKey is a public key that verifies tokens, the id tokens name it by
// (kid) and the issuer whose tokens it signs (iss).
type VerifyKey struct {
	KID    string
	Issuer string
	Public ed25519.PublicKey
}

// KeySource finds the keys a token's kid names: usually one, none when it
// is unknown (a nil slice and a nil error). An error is the source's own
// failure (a key file unreadable).
type KeySource interface {
	TokenKeys(kid string) ([]VerifyKey, error)
}

// KeySet is a fixed list of keys; it is a KeySource.
type KeySet []VerifyKey

// TokenKeys returns the keys named kid.
func (ks KeySet) TokenKeys(kid string) ([]VerifyKey, error) {
	var out []VerifyKey
	for _, k := range ks {
		if k.KID == kid {
			out = append(out, k)
		}
	}
	return out, nil
}

// KeySources looks a kid up in each source in turn and returns the first
// source's keys for it: a hub's own keys come first, and an external issuer's
// set is not asked (nor refetched, as it is for a kid it lacks) about the
// hub's kids. A failing source fails the lookup only if no other one knows
// the kid.
type KeySources []KeySource

// TokenKeys returns the keys named kid in the first source that has any.
func (s KeySources) TokenKeys(kid string) ([]VerifyKey, error) {
	var errs []error
	for _, src := range s {
		if src == nil {
			continue
		}
		ks, err := src.TokenKeys(kid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(ks) > 0 {
			return ks, nil
		}
	}
	return nil, errors.Join(errs...)
}

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
	// ID (jti) identifies the token in the audit log and for revocation;
	// Mint fills a random one if empty. 1-64 characters of the base64url
	// alphabet (a UUID is one).
	ID string
	// Devices the token covers: device IDs, or AllDevices for all.
	Devices []string
	// Grants is what the token allows on those devices.
	Grants []Grant
	// IssuedAt defaults to now in Mint; Verify leaves it zero for a token
	// without iat. Times are kept to whole seconds.
	IssuedAt time.Time
	// NotBefore is optional: the zero time means valid from IssuedAt.
	NotBefore time.Time
	// Expires is required, after IssuedAt and at most MaxLifetime later.
	Expires time.Time
	// Subject is an optional label, e.g. who the token was made for; at
	// most 128 bytes of printable UTF-8.
	Subject string
	// Issuer (iss) and KeyID (kid) are set by Verify; Mint ignores them
	// (it signs as LocalIssuer with its key's id).
	Issuer, KeyID string
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

// jwtHeader is the JOSE header Mint writes.
type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// jwtPayload is the claim set Mint writes.
type jwtPayload struct {
	Iss     string   `json:"iss"`
	Sub     string   `json:"sub,omitempty"`
	Aud     string   `json:"aud"`
	Exp     int64    `json:"exp"`
	Nbf     int64    `json:"nbf,omitempty"`
	Iat     int64    `json:"iat"`
	Jti     string   `json:"jti"`
	Devices []string `json:"devices"`
	Grants  []Grant  `json:"grants"`
}

// window is a claim set's times in Unix seconds; 0 is absent (iat, nbf).
type window struct{ iat, nbf, exp int64 }

// checkClaims validates everything but the clock and the signer; Mint and
// Verify share it, so Mint cannot make a token Verify would refuse as
// malformed. The lifetime is measured from iat, or from now without one.
func checkClaims(c Claims, w window, now time.Time) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w token: "+format, append([]any{ErrMalformed}, args...)...)
	}
	if !validTokenID(c.ID) {
		return bad("jti must be 1-%d base64url characters", MaxTokenIDLen)
	}
	if !printable(c.Subject, maxSubjectLen) {
		return bad("sub must be at most %d bytes of printable UTF-8", maxSubjectLen)
	}
	if len(c.Devices) == 0 {
		return bad("no devices")
	}
	if len(c.Devices) > maxDevicesList {
		return bad("over %d devices", maxDevicesList)
	}
	for _, d := range c.Devices {
		if d != AllDevices && !validDeviceID(d) {
			return bad("invalid device id %s", quoteShort(d))
		}
	}
	if len(c.Grants) == 0 {
		return bad("no grants")
	}
	for _, g := range c.Grants {
		if !g.Valid() {
			return bad("unknown grant %s", quoteShort(string(g)))
		}
	}
	// Signs and ranges first, so nothing below can overflow.
	start := w.iat
	if start == 0 {
		start = max(now.Unix(), 1)
	}
	switch {
	case w.exp == 0:
		return bad("no exp")
	case w.exp < 0 || w.exp > maxUnix || w.iat < 0 || w.iat > maxUnix || w.nbf < 0 || w.nbf > maxUnix:
		return bad("iat, nbf and exp must be between 1970 and 9999")
	case w.iat != 0 && w.exp <= w.iat:
		return bad("expires before it is issued")
	case w.nbf != 0 && w.nbf >= w.exp:
		return bad("nbf must be before exp")
	case w.exp-start > int64(MaxLifetime/time.Second):
		return bad("lifetime over %v", MaxLifetime)
	}
	return nil
}

// newTokenID is a random token id. One beginning with "-" is drawn again: `p2pcast token
// revoke ID` takes it on a command line, where it would read as a flag.
func newTokenID() (string, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("auth: generating token id: %w", err)
		}
		if id := base64.RawURLEncoding.EncodeToString(b[:]); !strings.HasPrefix(id, "-") {
			return id, nil
		}
	}
}

// Mint signs c as LocalIssuer with key. A zero IssuedAt becomes now and an
// empty ID a random one; the claims must otherwise be what Verify accepts
// (ErrMalformed if not), so a minted token always verifies in its window.
func Mint(key SigningKey, c Claims) (string, error) {
	if len(key.Private) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("auth: token key is %d bytes, want %d", len(key.Private), ed25519.PrivateKeySize)
	}
	if !validKeyID(key.KID) {
		return "", fmt.Errorf("%w token key id %s", ErrMalformed, quoteShort(key.KID))
	}
	if c.ID == "" {
		id, err := newTokenID()
		if err != nil {
			return "", err
		}
		c.ID = id
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	w := window{iat: c.IssuedAt.Unix(), exp: c.Expires.Unix()}
	if c.Expires.IsZero() {
		w.exp = 0
	}
	if !c.NotBefore.IsZero() {
		w.nbf = c.NotBefore.Unix()
	}
	if err := checkClaims(c, w, c.IssuedAt); err != nil {
		return "", err
	}
	h, err := json.Marshal(jwtHeader{Alg: Alg, Typ: "JWT", Kid: key.KID})
	if err != nil {
		return "", fmt.Errorf("auth: encoding token: %w", err)
	}
	p, err := json.Marshal(jwtPayload{Iss: LocalIssuer, Sub: c.Subject, Aud: Audience, Exp: w.exp, Nbf: w.nbf, Iat: w.iat,
		Jti: c.ID, Devices: c.Devices, Grants: c.Grants})
	if err != nil {
		return "", fmt.Errorf("auth: encoding token: %w", err)
	}
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	tok := signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key.Private, []byte(signed)))
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("%w: %d bytes, max %d; list fewer devices", ErrTooLong, len(tok), MaxTokenLen)
	}
	return tok, nil
}

// Verify checks token (a compact JWS JWT) with the keys of keys at time now
// and returns its claims. In order: the length (before any decoding); the
// three parts; the header (alg EdDSA and nothing else, typ JWT if present, a
// kid, no crit); the key the kid names; the signature; and only then the
// claim set, so unauthenticated input reaches no more than the header's
// decoder. JSON objects with a repeated member name are refused (parsers
// disagree on which one wins), names are matched exactly, and claims of the
// wrong type are refused; unknown claims and header parameters are ignored,
// as RFC 7519 says.
//
// Errors wrap ErrTooLong, ErrLegacyToken, ErrMalformed, ErrUnknownKey,
// ErrBadSignature, ErrWrongIssuer, ErrWrongAudience, ErrNotYetValid or
// ErrExpired, or are the key source's own. The expiry is required and gets no
// clock skew: now >= exp is ErrExpired. iat and nbf may be up to ClockSkew
// ahead.
func Verify(keys KeySource, token string, now time.Time) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: %d bytes, max %d", ErrTooLong, len(token), MaxTokenLen)
	}
	if strings.HasPrefix(token, LegacyTokenPrefix) {
		return Claims{}, ErrLegacyToken
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w token: want a JWT, 3 dot-separated parts; got %d", ErrMalformed, len(parts))
	}
	hjs, err := decodeB64URL(parts[0])
	if err != nil {
		return Claims{}, fmt.Errorf("%w token: header: %v", ErrMalformed, err)
	}
	kid, err := parseHeader(hjs)
	if err != nil {
		return Claims{}, err
	}
	sig, err := decodeB64URL(parts[2])
	if err != nil {
		return Claims{}, fmt.Errorf("%w token: signature: %v", ErrMalformed, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w token: signature is %d bytes, want %d", ErrMalformed, len(sig), ed25519.SignatureSize)
	}
	if !isB64URL(parts[1]) {
		return Claims{}, fmt.Errorf("%w token: payload: bad base64url character", ErrMalformed)
	}
	candidates, err := keys.TokenKeys(kid)
	if err != nil {
		return Claims{}, fmt.Errorf("auth: token keys: %w", err)
	}
	if len(candidates) == 0 {
		return Claims{}, fmt.Errorf("%w %s", ErrUnknownKey, quoteShort(kid))
	}
	signed := []byte(token[:len(parts[0])+1+len(parts[1])])
	var key *VerifyKey
	for i, k := range candidates {
		if len(k.Public) == ed25519.PublicKeySize && ed25519.Verify(k.Public, signed, sig) {
			key = &candidates[i]
			break
		}
	}
	if key == nil {
		return Claims{}, fmt.Errorf("%w: token (key %s)", ErrBadSignature, quoteShort(kid))
	}

	// Authenticated from here on.
	pjs, err := decodeB64URL(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("%w token: payload: %v", ErrMalformed, err)
	}
	c, w, aud, err := parseClaims(pjs)
	if err != nil {
		return Claims{}, err
	}
	c.KeyID = kid
	if c.Issuer != key.Issuer {
		return Claims{}, fmt.Errorf("%w: iss %s, but key %s signs for %s", ErrWrongIssuer, quoteShort(c.Issuer), quoteShort(kid), quoteShort(key.Issuer))
	}
	if !slices.Contains(aud, Audience) {
		return Claims{}, fmt.Errorf("%w: aud must name %q", ErrWrongAudience, Audience)
	}
	if err := checkClaims(c, w, now); err != nil {
		return Claims{}, err
	}
	if !c.NotBefore.IsZero() && now.Add(ClockSkew).Before(c.NotBefore) {
		return Claims{}, fmt.Errorf("%w: token valid from %v", ErrNotYetValid, c.NotBefore)
	}
	if !c.IssuedAt.IsZero() && now.Add(ClockSkew).Before(c.IssuedAt) {
		return Claims{}, fmt.Errorf("%w: token issued at %v", ErrNotYetValid, c.IssuedAt)
	}
	if !now.Before(c.Expires) {
		return Claims{}, fmt.Errorf("%w: token expired at %v", ErrExpired, c.Expires)
	}
	return c, nil
}

// parseHeader checks a JOSE header and returns its kid.
func parseHeader(js []byte) (string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w token header: "+format, append([]any{ErrMalformed}, args...)...)
	}
	h, err := decodeObject(js)
	if err != nil {
		return "", bad("%v", err)
	}
	if _, ok := h["crit"]; ok {
		// RFC 7515 4.1.11: extensions the recipient must understand; p2pcast understands none.
		return "", bad("crit extensions are not supported")
	}
	var alg string
	if err := stringMember(h, "alg", &alg); err != nil || alg == "" {
		return "", bad("alg missing or not a string")
	}
	if alg != Alg {
		return "", bad("alg %s refused: only %s (Ed25519) tokens are accepted", quoteShort(alg), Alg)
	}
	if _, ok := h["typ"]; ok {
		var typ string
		if err := stringMember(h, "typ", &typ); err != nil || !strings.EqualFold(typ, "JWT") {
			return "", bad("typ must be JWT")
		}
	}
	var kid string
	if err := stringMember(h, "kid", &kid); err != nil || kid == "" {
		return "", bad("kid missing or not a string: a token must name its key")
	}
	if !validKeyID(kid) {
		return "", bad("kid must be 1-%d printable characters", maxKeyIDLen)
	}
	return kid, nil
}

// parseClaims reads a claim set: the claims, its times, and its audiences.
func parseClaims(js []byte) (Claims, window, []string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w token: "+format, append([]any{ErrMalformed}, args...)...)
	}
	m, err := decodeObject(js)
	if err != nil {
		return Claims{}, window{}, nil, bad("claims: %v", err)
	}
	var c Claims
	if err := stringMember(m, "iss", &c.Issuer); err != nil || c.Issuer == "" || !printable(c.Issuer, maxIssuerLen) {
		return Claims{}, window{}, nil, bad("iss missing or not a short printable string")
	}
	if err := stringMember(m, "jti", &c.ID); err != nil {
		return Claims{}, window{}, nil, bad("jti is not a string")
	}
	if err := stringMember(m, "sub", &c.Subject); err != nil {
		return Claims{}, window{}, nil, bad("sub is not a string")
	}
	var aud []string
	if raw, ok := m["aud"]; ok {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			aud = []string{one}
		} else if err := json.Unmarshal(raw, &aud); err != nil || aud == nil {
			return Claims{}, window{}, nil, bad("aud is neither a string nor an array of strings")
		}
		if len(aud) > maxAudiences {
			return Claims{}, window{}, nil, bad("over %d audiences", maxAudiences)
		}
	}
	if err := listMember(m, "devices", &c.Devices); err != nil {
		return Claims{}, window{}, nil, bad("devices is not an array of strings")
	}
	if err := listMember(m, "grants", &c.Grants); err != nil {
		return Claims{}, window{}, nil, bad("grants is not an array of strings")
	}
	var w window
	for _, t := range []struct {
		name string
		v    *int64
	}{{"iat", &w.iat}, {"nbf", &w.nbf}, {"exp", &w.exp}} {
		raw, ok := m[t.name]
		if !ok {
			continue
		}
		if *t.v, err = numericDate(raw); err != nil {
			return Claims{}, window{}, nil, bad("%s: %v", t.name, err)
		}
	}
	if w.iat != 0 {
		c.IssuedAt = time.Unix(w.iat, 0).UTC()
	}
	if w.nbf != 0 {
		c.NotBefore = time.Unix(w.nbf, 0).UTC()
	}
	if w.exp != 0 {
		c.Expires = time.Unix(w.exp, 0).UTC()
	}
	return c, w, aud, nil
}

// numericDate reads an RFC 7519 NumericDate: a JSON number of seconds,
// possibly with a fraction (dropped: an exp rounds down, never later). Zero
// and negative dates are refused (0 stands for "absent" here).
func numericDate(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || !json.Valid(raw) || bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
		return 0, errors.New("not a number")
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 1 || f > maxUnix {
		return 0, errors.New("must be a date between 1970 and 9999")
	}
	return int64(math.Floor(f)), nil
}

// decodeObject decodes one JSON object into its members, refusing a
// repeated member name (which parsers resolve differently: the first, the
// last, an error) and anything after the object.
func decodeObject(js []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(js) {
		return nil, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %s repeated", quoteShort(name))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		m[name] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// stringMember sets *v to member name if present; it must be a JSON string.
func stringMember(m map[string]json.RawMessage, name string, v *string) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	if !bytes.HasPrefix(raw, []byte(`"`)) {
		return errors.New("not a string")
	}
	return json.Unmarshal(raw, v)
}

// listMember sets *v to member name if present; it must be an array of strings.
func listMember[T ~string](m map[string]json.RawMessage, name string, v *[]T) error {
	raw, ok := m[name]
	if !ok {
		return nil
	}
	if !bytes.HasPrefix(raw, []byte(`[`)) {
		return errors.New("not an array")
	}
	return json.Unmarshal(raw, v) // a null or number element fails: not a string
}

// validTokenID reports whether id is a token id: 1-MaxTokenIDLen base64url characters.
func validTokenID(id string) bool {
	return id != "" && len(id) <= MaxTokenIDLen && isB64URL(id)
}

// validKeyID reports whether kid is one p2pcast accepts: 1-128 printable ASCII characters.
func validKeyID(kid string) bool {
	if kid == "" || len(kid) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if kid[i] < 0x21 || kid[i] > 0x7e {
			return false
		}
	}
	return true
}

// printable reports whether s is at most n bytes of printable UTF-8.
func printable(s string, n int) bool {
	return len(s) <= n && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
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
