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
	"sync"
	"time"
	"unicode"
)

// Files in a Store's directory. All are written whole to a temporary file
// and renamed into place, so a reader never sees half a file.
const (
	hubKeyFile     = "hub.key"      // base64 Ed25519 seed: before token-keys.json (keyset.go), read once to migrate
	turnSecretFile = "turn.secret"  // TURN REST shared secret, base64 text
	devicesFile    = "devices.json" // device ID -> public key, enrolment time
	lockFile       = "lock"         // flock'd around writes; never has content
)

// Store holds the hub's secrets and its device registry in a directory.
//
// It is safe for concurrent use, and for use by several processes at once
// (the hub serving while `p2pcast device-key add` enrols a device): writes
// hold an exclusive file lock around read-modify-write, and lookups re-read
// devices.json, so an enrolment or removal by another process counts from
// the next lookup on.
type Store struct {
	dir        string
	turnSecret []byte

	mu      sync.Mutex // guards the caches, and orders this process's writers
	raw     []byte     // devices.json as last read or written
	devices map[string]device
	keysRaw []byte // token-keys.json as last read or written
	keys    []storedKey
	// seen is devices.json's identity (inode, size, times) when raw was last read, and when
	// that was: an unchanged identity, seen well after the file's last change, means unchanged
	// content, and saves reading the whole registry at every lookup (10,000 devices make it a
	// megabyte, read at each device's authentication).
	seen   os.FileInfo
	seenAt time.Time
}

type device struct {
	pub      ed25519.PublicKey
	enrolled time.Time
}

// registryFile is devices.json.
type registryFile struct {
	Version int                      `json:"version"`
	Devices map[string]registryEntry `json:"devices"`
}

type registryEntry struct {
	PublicKey string    `json:"public_key"` // standard base64 of the 32-byte Ed25519 public key
	Enrolled  time.Time `json:"enrolled"`
}

const registryVersion = 1

// OpenStore opens the store in dir, creating dir (mode 0700) and, on first
// use, the token signing keys and TURN secret (mode 0600). Existing files
// that do not parse are an error, never overwritten: they hold keys.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("auth: store directory not set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: creating store: %w", err)
	}
	s := &Store{dir: dir}
	// Under the lock so two processes starting on a fresh directory agree
	// on one key instead of the second overwriting the first.
	err := s.locked(func() error {
		if err := s.openTokenKeys(); err != nil {
			return err
		}
		secret, err := s.loadOrCreate(turnSecretFile, func() ([]byte, error) {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			return []byte(base64.StdEncoding.EncodeToString(b) + "\n"), nil
		})
		if err != nil {
			return err
		}
		if s.turnSecret, err = parseTURNSecret(secret); err != nil {
			return err
		}
		if _, err := s.loadOrCreate(devicesFile, func() ([]byte, error) {
			return encodeRegistry(nil)
		}); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.refresh(); err != nil {
		return nil, err
	}
	if _, err := s.tokenKeys(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// TURNSecret returns (a copy of) the TURN REST shared secret: the text of
// turn.secret without its line ending. That text, not its base64 decoding,
// is the HMAC key, so the same file content works as coturn's
// static-auth-secret.
func (s *Store) TURNSecret() []byte { return slices.Clone(s.turnSecret) }

// AddDevice enrols a new device and returns its secret key, which is not
// stored anywhere: show it to the user once. ErrDeviceExists if id is
// enrolled already; remove it first to issue a new key.
func (s *Store) AddDevice(id string) (DeviceKey, error) {
	if err := ValidateDeviceID(id); err != nil {
		return DeviceKey{}, err
	}
	key, err := GenerateDeviceKey()
	if err != nil {
		return DeviceKey{}, err
	}
	err = s.update(func(devs map[string]device) error {
		if _, ok := devs[id]; ok {
			return fmt.Errorf("%w: %q", ErrDeviceExists, id)
		}
		devs[id] = device{pub: key.Public(), enrolled: time.Now().UTC().Truncate(time.Second)}
		return nil
	})
	if err != nil {
		return DeviceKey{}, err
	}
	return key, nil
}

// EnrollDevices enrols many devices in one write of the registry (load tests: AddDevice
// rewrites it whole for each) and returns their secret keys, in the order of ids. Ids enrolled
// already get new keys; the old ones stop working.
func (s *Store) EnrollDevices(ids []string) ([]DeviceKey, error) {
	keys := make([]DeviceKey, len(ids))
	for i, id := range ids {
		if err := ValidateDeviceID(id); err != nil {
			return nil, err
		}
		k, err := GenerateDeviceKey()
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	now := time.Now().UTC().Truncate(time.Second)
	err := s.update(func(devs map[string]device) error {
		for i, id := range ids {
			devs[id] = device{pub: keys[i].Public(), enrolled: now}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// RemoveDevice unenrols a device; ErrUnknownDevice if it is not enrolled.
func (s *Store) RemoveDevice(id string) error {
	if err := ValidateDeviceID(id); err != nil {
		return err
	}
	return s.update(func(devs map[string]device) error {
		if _, ok := devs[id]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownDevice, id)
		}
		delete(devs, id)
		return nil
	})
}

// DevicePublicKey returns an enrolled device's public key, reading
// devices.json afresh so that changes by other processes count at once.
// ErrBadDeviceID or ErrUnknownDevice if there is no such device; an
// unreadable registry is an error too, never an empty one.
func (s *Store) DevicePublicKey(id string) (ed25519.PublicKey, error) {
	if err := ValidateDeviceID(id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	devs, err := s.refresh()
	if err != nil {
		return nil, err
	}
	d, ok := devs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, id)
	}
	return slices.Clone(d.pub), nil
}

// Devices returns the enrolled device IDs, sorted. It errs rather than
// return a partial or stale list when devices.json cannot be read.
func (s *Store) Devices() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	devs, err := s.refresh()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(devs))
	for id := range devs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// refresh re-reads devices.json, reparsing only if its bytes changed.
// Comparing content rather than mtime and size cannot miss a change made
// within one timestamp tick. The file is small and lookups are per
// connection, so reading it each time costs nothing that matters.
// Caller holds s.mu.
func (s *Store) refresh() (map[string]device, error) {
	path := filepath.Join(s.dir, devicesFile)
	fi, statErr := os.Stat(path)
	if s.devices != nil && statErr == nil && s.seen != nil && sameVersion(fi, s.seen) &&
		s.seenAt.Sub(fi.ModTime()) > racyWindow {
		return s.devices, nil
	}
	now := time.Now()
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = nil, nil // removed by hand: no devices
	}
	if err != nil {
		return nil, fmt.Errorf("auth: reading device registry: %w", err)
	}
	if s.devices != nil && bytes.Equal(raw, s.raw) {
		s.seen, s.seenAt = fileInfoOrNil(fi, statErr), now
		return s.devices, nil
	}
	devs, err := decodeRegistry(raw)
	if err != nil {
		return nil, err
	}
	s.raw, s.devices = raw, devs
	s.seen, s.seenAt = fileInfoOrNil(fi, statErr), now
	return devs, nil
}

// racyWindow: a file read within this long of its last change may change again with the same
// size and timestamp (a coarse clock, an editor writing in place), so it is read whole again
// until it has been left alone that long; a change after that has a later timestamp.
const racyWindow = 2 * time.Second

// sameVersion reports whether a and b describe the same version of a file: the same inode
// (writers replace devices.json by renaming a new file over it), size and modification time.
func sameVersion(a, b os.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

func fileInfoOrNil(fi os.FileInfo, err error) os.FileInfo {
	if err != nil {
		return nil
	}
	return fi
}

// update applies change to the registry as it is on disk now, under both
// locks, and writes the result. change may return an error to abort.
func (s *Store) update(change func(map[string]device) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locked(func() error {
		devs, err := s.refresh()
		if err != nil {
			return err
		}
		next := make(map[string]device, len(devs)+1)
		for id, d := range devs {
			next[id] = d
		}
		if err := change(next); err != nil {
			return err
		}
		raw, err := encodeRegistry(next)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(s.dir, devicesFile), raw); err != nil {
			return err
		}
		s.raw, s.devices = raw, next
		return nil
	})
}

func decodeRegistry(raw []byte) (map[string]device, error) {
	devs := map[string]device{}
	if len(raw) == 0 {
		return devs, nil
	}
	var f registryFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("auth: parsing %s: %w", devicesFile, err)
	}
	if f.Version != registryVersion {
		return nil, fmt.Errorf("auth: %s: version %d, want %d", devicesFile, f.Version, registryVersion)
	}
	for id, e := range f.Devices {
		if !validDeviceID(id) {
			return nil, fmt.Errorf("auth: %s: %w %s", devicesFile, ErrBadDeviceID, quoteShort(id))
		}
		pub, err := base64.StdEncoding.Strict().DecodeString(e.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: %s: device %q: bad public_key", devicesFile, id)
		}
		devs[id] = device{pub: pub, enrolled: e.Enrolled}
	}
	return devs, nil
}

func encodeRegistry(devs map[string]device) ([]byte, error) {
	f := registryFile{Version: registryVersion, Devices: map[string]registryEntry{}}
	for id, d := range devs {
		f.Devices[id] = registryEntry{PublicKey: base64.StdEncoding.EncodeToString(d.pub), Enrolled: d.enrolled}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("auth: encoding %s: %w", devicesFile, err)
	}
	return append(b, '\n'), nil
}

func parseHubKey(b []byte) (ed25519.PrivateKey, error) {
	seed, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("auth: %s: want the base64 of a %d-byte Ed25519 seed", hubKeyFile, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// parseTURNSecret accepts any single word of at least 16 printable
// characters, so an operator may put in the secret an existing coturn uses.
func parseTURNSecret(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if len(s) < 16 || strings.ContainsFunc(s, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsGraphic(r) || unicode.IsSpace(r) }) {
		return nil, fmt.Errorf("auth: %s: want one line of at least 16 printable ASCII characters, no spaces", turnSecretFile)
	}
	return []byte(s), nil
}

// loadOrCreate returns the content of name, first writing create()'s output
// if the file does not exist. Caller holds the file lock.
func (s *Store) loadOrCreate(name string, create func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(s.dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if b, err = create(); err != nil {
		return nil, fmt.Errorf("auth: creating %s: %w", name, err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return nil, err
	}
	return b, nil
}

// locked runs fn holding the store's inter-process lock.
func (s *Store) locked(fn func() error) error {
	unlock, err := lockFileExclusive(filepath.Join(s.dir, lockFile))
	if err != nil {
		return fmt.Errorf("auth: locking store: %w", err)
	}
	defer unlock()
	return fn()
}

// writeFileAtomic replaces path with data, mode 0600: temp file in the same
// directory, fsync, rename, fsync the directory. A crash leaves the old or
// the new file, never a torn one, and a secret is never briefly readable
// by others.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes files 0600 already; say so rather than rely on it.
	if err = f.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("auth: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("auth: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("auth: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("auth: writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// Make the rename itself durable; not every platform can sync a directory.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// revokedFile lists revoked token ids with the time each stops mattering
// (the token's own expiry): {"version":1,"revoked":{"<jti>":"<RFC 3339>"}}.
const revokedFile = "revoked.json"

type revokedList struct {
	Version int                  `json:"version"`
	Revoked map[string]time.Time `json:"revoked"`
}

// MaxRevoked bounds the list, and so what a hub sends its devices (all of it): tokens live
// at most MaxLifetime, so entries leave it by themselves; a list this long means something is
// wrong.
const MaxRevoked = 10_000

// Revoke adds token id to the revocation list until until (the token's
// expiry; after it the token is refused anyway). Entries past their time
// are dropped on each write.
func (s *Store) Revoke(id string, until time.Time) error {
	if !validTokenID(id) {
		return fmt.Errorf("%w token id: want 1-%d base64url characters", ErrMalformed, MaxTokenIDLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locked(func() error {
		list, err := s.readRevoked()
		if err != nil {
			return err
		}
		now := time.Now()
		for k, t := range list {
			if now.After(t) {
				delete(list, k)
			}
		}
		if len(list) >= MaxRevoked {
			return fmt.Errorf("auth: %s holds %d entries already: mint shorter-lived tokens", revokedFile, len(list))
		}
		list[id] = until.UTC().Truncate(time.Second)
		b, err := json.MarshalIndent(revokedList{Version: 1, Revoked: list}, "", "  ")
		if err != nil {
			return err
		}
		return writeFileAtomic(filepath.Join(s.dir, revokedFile), append(b, '\n'))
	})
}

// Revoked returns the revoked token ids that still matter at now, reading
// revoked.json afresh so that a revocation by another process (`p2pcast
// token revoke`) counts at once.
func (s *Store) Revoked(now time.Time) (map[string]time.Time, error) {
	list, err := s.readRevoked()
	if err != nil {
		return nil, err
	}
	for k, t := range list {
		if now.After(t) {
			delete(list, k)
		}
	}
	return list, nil
}

func (s *Store) readRevoked() (map[string]time.Time, error) {
	raw, err := os.ReadFile(filepath.Join(s.dir, revokedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: reading %s: %w", revokedFile, err)
	}
	var f revokedList
	if err := json.Unmarshal(raw, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("auth: %s: not a version 1 revocation list", revokedFile)
	}
	if f.Revoked == nil {
		f.Revoked = map[string]time.Time{}
	}
	return f.Revoked, nil
}
