package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// JWK Sets (RFC 7517) of Ed25519 keys (RFC 8037: kty OKP, crv Ed25519).

// MaxJWKSSize bounds a JWK Set read from a file or fetched from an issuer.
const MaxJWKSSize = 64 << 10

// maxJWKSKeys bounds the keys of a set.
const maxJWKSKeys = 64

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key,
// base64url SHA-256 of {"crv":"Ed25519","kty":"OKP","x":…}: the kid p2pcast
// gives its own keys.
func Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// jwk is one key of a set, as p2pcast writes it.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS is the public JWK Set of ks: what a hub serves at
// /.well-known/jwks.json, and what `p2pcast token jwks` prints.
func (ks KeySet) JWKS() []byte {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range ks {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.KID, Use: "sig", Alg: Alg})
	}
	b, _ := json.MarshalIndent(set, "", "  ") // strings only: cannot fail
	return append(b, '\n')
}

// ParseJWKS reads a JWK Set whose keys sign for issuer. It keeps the Ed25519
// signing keys (kty OKP, crv Ed25519, use sig or absent, alg EdDSA or absent,
// with a kid) and skips the others, which an issuer's set may hold for other
// relying parties (RSA, EC keys). It refuses a set over MaxJWKSSize, one with
// a private key in it, two usable keys with one kid, or no usable key at all.
func ParseJWKS(raw []byte, issuer string) (KeySet, error) {
	if len(raw) > MaxJWKSSize {
		return nil, fmt.Errorf("%w JWK set: over %d bytes", ErrMalformed, MaxJWKSSize)
	}
	top, err := decodeObject(bytes.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%w JWK set: %v", ErrMalformed, err)
	}
	var keys []json.RawMessage
	if err := json.Unmarshal(top["keys"], &keys); err != nil || keys == nil {
		return nil, fmt.Errorf("%w JWK set: want {\"keys\":[…]}", ErrMalformed)
	}
	if len(keys) > maxJWKSKeys {
		return nil, fmt.Errorf("%w JWK set: over %d keys", ErrMalformed, maxJWKSKeys)
	}
	var ks KeySet
	skipped := 0
	for i, raw := range keys {
		m, err := decodeObject(raw)
		if err != nil {
			return nil, fmt.Errorf("%w JWK set: key %d: %v", ErrMalformed, i, err)
		}
		var kty, crv, x, kid, use, alg string
		for _, f := range []struct {
			name string
			v    *string
		}{{"kty", &kty}, {"crv", &crv}, {"x", &x}, {"kid", &kid}, {"use", &use}, {"alg", &alg}} {
			if err := stringMember(m, f.name, f.v); err != nil {
				return nil, fmt.Errorf("%w JWK set: key %d: %s is not a string", ErrMalformed, i, f.name)
			}
		}
		if _, ok := m["d"]; ok {
			return nil, fmt.Errorf("%w JWK set: key %d holds a private key (d): publish only public keys", ErrMalformed, i)
		}
		if kty != "OKP" || crv != "Ed25519" || (use != "" && use != "sig") || (alg != "" && alg != Alg) || !validKeyID(kid) {
			skipped++
			continue
		}
		pub, err := decodeB64URL(x)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w JWK set: key %s: x is not a base64url Ed25519 public key", ErrMalformed, quoteShort(kid))
		}
		if slices.ContainsFunc(ks, func(k VerifyKey) bool { return k.KID == kid }) {
			return nil, fmt.Errorf("%w JWK set: kid %s twice", ErrMalformed, quoteShort(kid))
		}
		ks = append(ks, VerifyKey{KID: kid, Issuer: issuer, Public: pub})
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%w JWK set: no Ed25519 signing key with a kid (%d other keys skipped)", ErrMalformed, skipped)
	}
	return ks, nil
}

// ParseKeyText reads a verification key given as text: a JWK Set (JSON), or
// a single key in FormatTokenKey's form (p2pv1_…, whose kid is its
// thumbprint). Both sign for issuer.
func ParseKeyText(text []byte, issuer string) (KeySet, error) {
	t := bytes.TrimSpace(text)
	if strings.HasPrefix(string(t), TokenKeyPrefix) {
		pub, err := ParseTokenKey(string(t))
		if err != nil {
			return nil, err
		}
		return KeySet{{KID: Thumbprint(pub), Issuer: issuer, Public: pub}}, nil
	}
	if len(t) > 0 && t[0] == '{' {
		return ParseJWKS(t, issuer)
	}
	return nil, errors.New("auth: want a JWK set ({\"keys\":[…]}) or a p2pv1_ key")
}

// KeyFile is a KeySource reading its keys from a file, in any form
// ParseKeyText reads (a JWK Set, or a p2pv1_ key), reread at most once a
// second so that a hub's rotated set, copied over it, counts without a
// restart. A file that stops parsing leaves the last good keys in force.
type KeyFile struct {
	Path   string
	Issuer string

	mu    sync.Mutex
	raw   []byte
	keys  KeySet
	read  time.Time
	err   error
	clock func() time.Time // tests
}

// keyFileReread is how often a KeyFile looks at its file again.
const keyFileReread = time.Second

// Load reads the file now; an error says what is wrong with it.
func (f *KeyFile) Load() (KeySet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reload(f.now())
	if f.keys == nil {
		return nil, f.err
	}
	return f.keys, f.err
}

func (f *KeyFile) now() time.Time {
	if f.clock != nil {
		return f.clock()
	}
	return time.Now()
}

// reload rereads the file, keeping the last good keys on failure. Caller holds f.mu.
func (f *KeyFile) reload(now time.Time) {
	f.read = now
	raw, err := readLimited(f.Path, MaxJWKSSize)
	if err == nil && f.keys != nil && bytes.Equal(raw, f.raw) {
		f.err = nil
		return
	}
	var ks KeySet
	if err == nil {
		ks, err = ParseKeyText(raw, f.Issuer)
	}
	if err != nil {
		f.err = fmt.Errorf("auth: token keys %s: %w", f.Path, err)
		return
	}
	f.raw, f.keys, f.err = raw, ks, nil
}

// TokenKeys returns the file's keys named kid.
func (f *KeyFile) TokenKeys(kid string) ([]VerifyKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := f.now(); f.keys == nil || now.Sub(f.read) >= keyFileReread || now.Before(f.read) {
		f.reload(now)
	}
	if f.keys == nil {
		return nil, f.err
	}
	return f.keys.TokenKeys(kid)
}

func readLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("over %d bytes", limit)
	}
	return b, nil
}
