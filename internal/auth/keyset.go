package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// tokenKeysFile holds the store's token signing keys, oldest first: the
// newest signs, all verify until they are removed or MaxLifetime after the
// next one replaced them (every token they signed has expired by then).
//
//	{"version":1,"keys":[{"kid":"<RFC 7638 thumbprint>","seed":"<base64 Ed25519 seed>","created":"<RFC 3339>"}]}
//
// A store made before JWTs has only hub.key: OpenStore turns it into the
// first key of this file and leaves hub.key alone (unused from then on).
const tokenKeysFile = "token-keys.json"

const tokenKeysVersion = 1

// maxTokenKeys bounds the set: rotating daily stays far below it.
const maxTokenKeys = 50

type tokenKeysJSON struct {
	Version int             `json:"version"`
	Keys    []tokenKeyEntry `json:"keys"`
}

type tokenKeyEntry struct {
	KID     string    `json:"kid"`
	Seed    string    `json:"seed"`
	Created time.Time `json:"created"`
}

// storedKey is one signing key of the store.
type storedKey struct {
	SigningKey
	created time.Time
}

// retiredLongAgo reports whether key i of keys, replaced by key i+1, can
// have no unexpired token left at now.
func retiredLongAgo(keys []storedKey, i int, now time.Time) bool {
	return i+1 < len(keys) && now.Sub(keys[i+1].created) > MaxLifetime+ClockSkew
}

func newStoredKey(seed []byte, created time.Time) storedKey {
	priv := ed25519.NewKeyFromSeed(seed)
	return storedKey{SigningKey: SigningKey{KID: Thumbprint(priv.Public().(ed25519.PublicKey)), Private: priv},
		created: created.UTC().Truncate(time.Second)}
}

// generateStoredKey makes a new signing key. One whose key id (its thumbprint) would begin
// with "-" is drawn again: people pass key ids on command lines, where such an id reads as a
// flag.
func generateStoredKey(now time.Time) (storedKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	for {
		if _, err := rand.Read(seed); err != nil {
			return storedKey{}, fmt.Errorf("auth: generating token key: %w", err)
		}
		if k := newStoredKey(seed, now); !strings.HasPrefix(k.KID, "-") {
			return k, nil
		}
	}
}

func encodeTokenKeys(keys []storedKey) ([]byte, error) {
	f := tokenKeysJSON{Version: tokenKeysVersion, Keys: []tokenKeyEntry{}}
	for _, k := range keys {
		f.Keys = append(f.Keys, tokenKeyEntry{KID: k.KID, Seed: base64.StdEncoding.EncodeToString(k.Private.Seed()), Created: k.created})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("auth: encoding %s: %w", tokenKeysFile, err)
	}
	return append(b, '\n'), nil
}

func decodeTokenKeys(raw []byte) ([]storedKey, error) {
	var f tokenKeysJSON
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("auth: parsing %s: %w", tokenKeysFile, err)
	}
	if f.Version != tokenKeysVersion {
		return nil, fmt.Errorf("auth: %s: version %d, want %d", tokenKeysFile, f.Version, tokenKeysVersion)
	}
	if len(f.Keys) == 0 || len(f.Keys) > maxTokenKeys {
		return nil, fmt.Errorf("auth: %s: %d keys, want 1-%d", tokenKeysFile, len(f.Keys), maxTokenKeys)
	}
	var keys []storedKey
	for i, e := range f.Keys {
		seed, err := base64.StdEncoding.Strict().DecodeString(e.Seed)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("auth: %s: key %d: seed is not the base64 of a %d-byte Ed25519 seed", tokenKeysFile, i, ed25519.SeedSize)
		}
		k := newStoredKey(seed, e.Created)
		if e.KID != k.KID {
			// The kid is derived, never chosen: a mismatch is a hand edit gone wrong.
			return nil, fmt.Errorf("auth: %s: key %d: kid %s is not its key's thumbprint %s", tokenKeysFile, i, quoteShort(e.KID), k.KID)
		}
		if slices.ContainsFunc(keys, func(o storedKey) bool { return o.KID == k.KID }) {
			return nil, fmt.Errorf("auth: %s: key %s twice", tokenKeysFile, k.KID)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// openTokenKeys makes sure tokenKeysFile exists: from hub.key if there is
// one (the kid its thumbprint), else a new key. Caller holds the file lock.
func (s *Store) openTokenKeys() error {
	_, err := s.loadOrCreate(tokenKeysFile, func() ([]byte, error) {
		old, err := os.ReadFile(filepath.Join(s.dir, hubKeyFile))
		var k storedKey
		switch {
		case err == nil:
			priv, err := parseHubKey(old)
			if err != nil {
				return nil, err
			}
			k = newStoredKey(priv.Seed(), time.Now())
		case errors.Is(err, fs.ErrNotExist):
			if k, err = generateStoredKey(time.Now()); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
		return encodeTokenKeys([]storedKey{k})
	})
	return err
}

// tokenKeys rereads tokenKeysFile, reparsing only when its bytes changed,
// so a rotation by another process (or another hub on this directory)
// counts from the next call on. Caller holds s.mu.
func (s *Store) tokenKeys() ([]storedKey, error) {
	raw, err := os.ReadFile(filepath.Join(s.dir, tokenKeysFile))
	if err != nil {
		return nil, fmt.Errorf("auth: reading token keys: %w", err)
	}
	if s.keys != nil && bytes.Equal(raw, s.keysRaw) {
		return s.keys, nil
	}
	keys, err := decodeTokenKeys(raw)
	if err != nil {
		return nil, err
	}
	s.keysRaw, s.keys = raw, keys
	return keys, nil
}

// SigningKey returns (a copy of) the key that signs tokens now: the newest.
func (s *Store) SigningKey() (SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := s.tokenKeys()
	if err != nil {
		return SigningKey{}, err
	}
	k := keys[len(keys)-1].SigningKey
	return SigningKey{KID: k.KID, Private: slices.Clone(k.Private)}, nil
}

// VerifyKeys returns the keys that verify the store's tokens at now, newest
// first: the signing key and the ones it replaced less than MaxLifetime ago.
func (s *Store) VerifyKeys(now time.Time) (KeySet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := s.tokenKeys()
	if err != nil {
		return nil, err
	}
	var ks KeySet
	for i := len(keys) - 1; i >= 0; i-- {
		if !retiredLongAgo(keys, i, now) {
			ks = append(ks, keys[i].Public())
		}
	}
	return ks, nil
}

// TokenKeys makes the store a KeySource: its keys that verify now.
func (s *Store) TokenKeys(kid string) ([]VerifyKey, error) {
	ks, err := s.VerifyKeys(time.Now())
	if err != nil {
		return nil, err
	}
	return ks.TokenKeys(kid)
}

// RotateTokenKey adds a new signing key; the others keep verifying the
// tokens they signed until RemoveTokenKey, or until MaxLifetime has passed
// (when rotating drops them from the file). It returns the new key's id.
func (s *Store) RotateTokenKey() (string, error) {
	var kid string
	err := s.updateTokenKeys(func(keys []storedKey, now time.Time) ([]storedKey, error) {
		var next []storedKey
		for i := range keys {
			if !retiredLongAgo(keys, i, now) {
				next = append(next, keys[i])
			}
		}
		if len(next) >= maxTokenKeys {
			return nil, fmt.Errorf("auth: %s holds %d keys already: remove old ones (p2pcast token remove-key)", tokenKeysFile, len(next))
		}
		k, err := generateStoredKey(now)
		if err != nil {
			return nil, err
		}
		if !k.created.After(next[len(next)-1].created) {
			// Keep created strictly increasing: it orders retirements.
			k.created = next[len(next)-1].created.Add(time.Second)
		}
		kid = k.KID
		return append(next, k), nil
	})
	return kid, err
}

// ErrSigningKey: RemoveTokenKey was asked to remove the key that signs now.
var ErrSigningKey = errors.New("auth: that is the signing key: rotate first (p2pcast token rotate-key), then remove it")

// RemoveTokenKey removes a key that no longer signs: every token it signed
// is refused from then on (ErrUnknownKey). ErrUnknownKey if there is no such
// key; ErrSigningKey for the newest.
func (s *Store) RemoveTokenKey(kid string) error {
	return s.updateTokenKeys(func(keys []storedKey, _ time.Time) ([]storedKey, error) {
		i := slices.IndexFunc(keys, func(k storedKey) bool { return k.KID == kid })
		switch {
		case i < 0:
			return nil, fmt.Errorf("%w %s", ErrUnknownKey, quoteShort(kid))
		case i == len(keys)-1:
			return nil, ErrSigningKey
		}
		return slices.Delete(slices.Clone(keys), i, i+1), nil
	})
}

// TokenKeyInfo describes one of the store's keys, for listing.
type TokenKeyInfo struct {
	KID     string
	Created time.Time
	// Signing: the key that signs new tokens; Retired: when the next key
	// replaced it (zero for the signing key). A key verifies until
	// Retired+MaxLifetime.
	Signing bool
	Retired time.Time
}

// TokenKeyList lists the store's keys, oldest first.
func (s *Store) TokenKeyList() ([]TokenKeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := s.tokenKeys()
	if err != nil {
		return nil, err
	}
	out := make([]TokenKeyInfo, len(keys))
	for i, k := range keys {
		out[i] = TokenKeyInfo{KID: k.KID, Created: k.created, Signing: i == len(keys)-1}
		if i+1 < len(keys) {
			out[i].Retired = keys[i+1].created
		}
	}
	return out, nil
}

// updateTokenKeys applies change to the key set as it is on disk now, under
// both locks, and writes the result.
func (s *Store) updateTokenKeys(change func([]storedKey, time.Time) ([]storedKey, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locked(func() error {
		keys, err := s.tokenKeys()
		if err != nil {
			return err
		}
		next, err := change(keys, time.Now())
		if err != nil {
			return err
		}
		raw, err := encodeTokenKeys(next)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(s.dir, tokenKeysFile), raw); err != nil {
			return err
		}
		s.keysRaw, s.keys = raw, next
		return nil
	})
}

// MintToken signs c with the store's signing key (Mint).
func (s *Store) MintToken(c Claims) (string, error) {
	key, err := s.SigningKey()
	if err != nil {
		return "", err
	}
	return Mint(key, c)
}
