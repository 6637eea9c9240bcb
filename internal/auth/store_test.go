package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreCreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub", "data")
	s := openTestStore(t, dir)
	if s.Dir() != dir {
		t.Fatalf("Dir() = %q", s.Dir())
	}
	if _, err := s.AddDevice("cam1"); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		checkMode(t, dir, 0o700|os.ModeDir)
		for _, f := range []string{tokenKeysFile, turnSecretFile, devicesFile} {
			checkMode(t, filepath.Join(dir, f), 0o600)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != lockFile { // only where flock exists
			names = append(names, e.Name())
		}
	}
	if want := []string{devicesFile, tokenKeysFile, turnSecretFile}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v (temp files left behind?)", names, want)
	}
	key, err := s.SigningKey()
	if err != nil || len(key.Private) != ed25519.PrivateKeySize || len(s.TURNSecret()) != 44 {
		t.Fatalf("key %d bytes, %v, TURN secret %d bytes", len(key.Private), err, len(s.TURNSecret()))
	}
	if key.KID != Thumbprint(key.Private.Public().(ed25519.PublicKey)) {
		t.Fatalf("kid %q is not the key's thumbprint", key.KID)
	}
	// Callers get copies.
	key.Private[0] ^= 1
	s.TURNSecret()[0] ^= 1
	key, _ = s.SigningKey()
	tok, err := Mint(key, testClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(s, tok, testNow); err != nil {
		t.Fatal(err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode(), want)
	}
}

func TestStorePersists(t *testing.T) {
	dir := t.TempDir()
	s1 := openTestStore(t, dir)
	key, err := s1.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.AddDevice("cam0"); err != nil {
		t.Fatal(err)
	}

	s2 := openTestStore(t, dir)
	k1, _ := s1.SigningKey()
	k2, _ := s2.SigningKey()
	if !k2.Private.Equal(k1.Private) || k2.KID != k1.KID || string(s2.TURNSecret()) != string(s1.TURNSecret()) {
		t.Fatal("secrets changed on reopen")
	}
	pub, err := s2.DevicePublicKey("cam1")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) {
		t.Fatal("public key changed on reopen")
	}
	// The key AddDevice returned logs in against the reopened store.
	c, _ := NewChallenge()
	if err := VerifyChallenge(pub, "cam1", "ws://hub:80", c, SignChallenge(key, "cam1", "ws://hub:80", c)); err != nil {
		t.Fatal(err)
	}
	if devs, err := s2.Devices(); err != nil || !slices.Equal(devs, []string{"cam0", "cam1"}) {
		t.Fatalf("Devices() = %v, %v", devs, err)
	}
	// Only public halves are on disk.
	for _, f := range []string{devicesFile, tokenKeysFile, turnSecretFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), key.Secret()[len(DeviceKeyPrefix):]) {
			t.Fatalf("%s holds the device secret", f)
		}
	}
}

func TestStoreDevices(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	if devs, err := s.Devices(); err != nil || len(devs) != 0 {
		t.Fatalf("new store has devices %v, %v", devs, err)
	}
	if _, err := s.AddDevice("cam1"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"add twice", func() error { _, err := s.AddDevice("cam1"); return err }, ErrDeviceExists},
		{"add bad id", func() error { _, err := s.AddDevice("../x"); return err }, ErrBadDeviceID},
		{"add star", func() error { _, err := s.AddDevice("*"); return err }, ErrBadDeviceID},
		{"lookup unknown", func() error { _, err := s.DevicePublicKey("cam9"); return err }, ErrUnknownDevice},
		{"lookup bad id", func() error { _, err := s.DevicePublicKey(""); return err }, ErrBadDeviceID},
		{"remove unknown", func() error { return s.RemoveDevice("cam9") }, ErrUnknownDevice},
		{"remove bad id", func() error { return s.RemoveDevice("a b") }, ErrBadDeviceID},
		{"remove", func() error { return s.RemoveDevice("cam1") }, nil},
		{"lookup removed", func() error { _, err := s.DevicePublicKey("cam1"); return err }, ErrUnknownDevice},
		{"remove again", func() error { return s.RemoveDevice("cam1") }, ErrUnknownDevice},
		{"re-add", func() error { _, err := s.AddDevice("cam1"); return err }, nil},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Fatalf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestStoreConcurrent adds devices from many goroutines through two Stores
// on one directory, standing in for the hub and the CLI: no enrolment may
// be lost, and a contested ID goes to exactly one caller.
func TestStoreConcurrent(t *testing.T) {
	dir := t.TempDir()
	stores := []*Store{openTestStore(t, dir), openTestStore(t, dir)}
	const per = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, errs := 0, []error{}
	for i := range 2 * per {
		s := stores[i%2]
		wg.Go(func() {
			if _, err := s.AddDevice(fmt.Sprintf("cam%02d", i)); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			_, err := s.AddDevice("contested")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrDeviceExists):
				errs = append(errs, err)
			}
			if _, err := s.Devices(); err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || wins != 1 {
		t.Fatalf("errors %v, %d winners for one ID", errs, wins)
	}
	for _, s := range stores {
		devs, err := s.Devices()
		if err != nil || len(devs) != 2*per+1 {
			t.Fatalf("Devices() = %v (%d), %v", devs, len(devs), err)
		}
	}
}

// TestStoreSeesOtherInstance is the hub running while `device-key add`
// and `device-key remove` run as separate processes.
func TestStoreSeesOtherInstance(t *testing.T) {
	dir := t.TempDir()
	hub := openTestStore(t, dir)
	if _, err := hub.DevicePublicKey("cam1"); !errors.Is(err, ErrUnknownDevice) {
		t.Fatal(err)
	}
	cli := openTestStore(t, dir)
	for i := range 5 { // back-to-back writes of equal size, within one mtime tick
		id := fmt.Sprintf("cam%d", i)
		key, err := cli.AddDevice(id)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := hub.DevicePublicKey(id)
		if err != nil || !pub.Equal(key.Public()) {
			t.Fatalf("hub does not see %s: %v", id, err)
		}
		if err := cli.RemoveDevice(id); err != nil {
			t.Fatal(err)
		}
		if _, err := hub.DevicePublicKey(id); !errors.Is(err, ErrUnknownDevice) {
			t.Fatalf("hub still sees removed %s: %v", id, err)
		}
	}
	if _, err := hub.AddDevice("cam1"); err != nil {
		t.Fatal(err)
	}
	if devs, err := cli.Devices(); err != nil || !slices.Equal(devs, []string{"cam1"}) {
		t.Fatalf("cli Devices() = %v, %v", devs, err)
	}
}

func TestStoreBadFiles(t *testing.T) {
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("corrupt hub key is kept", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, hubKeyFile, "not a key\n")
		if _, err := OpenStore(dir); err == nil {
			t.Fatal("opened with corrupt hub.key")
		}
		if b, _ := os.ReadFile(filepath.Join(dir, hubKeyFile)); string(b) != "not a key\n" {
			t.Fatal("corrupt hub.key overwritten")
		}
	})
	t.Run("short TURN secret", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, turnSecretFile, "short\n")
		if _, err := OpenStore(dir); err == nil {
			t.Fatal("opened with short turn.secret")
		}
	})
	t.Run("operator TURN secret", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, turnSecretFile, "shared-with-our-coturn-42\r\n")
		s := openTestStore(t, dir)
		if got := string(s.TURNSecret()); got != "shared-with-our-coturn-42" {
			t.Fatalf("TURNSecret() = %q", got)
		}
	})
	t.Run("corrupt registry fails closed", func(t *testing.T) {
		dir := t.TempDir()
		s := openTestStore(t, dir)
		if _, err := s.AddDevice("cam1"); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{
			`{"version":1,"devices":{"cam1":{"public_key":"AAAA"}}}`,
			`{"version":2,"devices":{}}`,
			`{"version":1,"devices":{"bad id":{"public_key":"` + strings.Repeat("A", 43) + `="}}}`,
			`{`,
		} {
			write(t, dir, devicesFile, bad)
			if _, err := s.DevicePublicKey("cam1"); err == nil || errors.Is(err, ErrUnknownDevice) {
				t.Errorf("%s: lookup err = %v, want a registry error", bad, err)
			}
			if _, err := s.Devices(); err == nil {
				t.Errorf("%s: Devices() did not fail", bad)
			}
			if _, err := s.AddDevice("cam2"); err == nil {
				t.Errorf("%s: AddDevice overwrote a corrupt registry", bad)
			}
		}
	})
	t.Run("registry deleted", func(t *testing.T) {
		dir := t.TempDir()
		s := openTestStore(t, dir)
		if _, err := s.AddDevice("cam1"); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, devicesFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DevicePublicKey("cam1"); !errors.Is(err, ErrUnknownDevice) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty dir name", func(t *testing.T) {
		if _, err := OpenStore(""); err == nil {
			t.Fatal("opened empty path")
		}
	})
}

func TestStoreRegistryFormat(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	key, err := s.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, devicesFile))
	if err != nil {
		t.Fatal(err)
	}
	pubB64 := b64std(key.Public())
	if !strings.Contains(string(b), `"version": 1`) || !strings.Contains(string(b), `"public_key": "`+pubB64+`"`) {
		t.Fatalf("devices.json:\n%s", b)
	}
	// An enrolment time a human can read, to the second.
	if !strings.Contains(string(b), time.Now().UTC().Format("2006-01-02T")) {
		t.Fatalf("no enrolment date in:\n%s", b)
	}
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestStoreRevoke(t *testing.T) {
	dir := t.TempDir()
	hub := openTestStore(t, dir)
	if list, err := hub.Revoked(time.Now()); err != nil || len(list) != 0 {
		t.Fatalf("fresh store: %v, %v", list, err)
	}
	// `p2pcast token revoke` runs as another process: the hub's Store sees it at once.
	cli := openTestStore(t, dir)
	now := time.Now()
	until := now.Add(time.Hour).Truncate(time.Second)
	if err := cli.Revoke("tok1", until); err != nil {
		t.Fatal(err)
	}
	list, err := hub.Revoked(now)
	if err != nil || !list["tok1"].Equal(until) || len(list) != 1 {
		t.Fatalf("the hub's store sees %v, %v", list, err)
	}
	if runtime.GOOS != "windows" {
		checkMode(t, filepath.Join(dir, revokedFile), 0o600)
	}
	// Past its time an entry no longer counts...
	if list, _ := hub.Revoked(until.Add(time.Second)); len(list) != 0 {
		t.Fatalf("after its time: %v", list)
	}
	// ...and the next write drops it from the file.
	if err := cli.Revoke("old", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if list, _ := hub.Revoked(now.Add(-time.Hour)); len(list) != 2 { // still written
		t.Fatalf("before the write: %v", list)
	}
	if err := hub.Revoke("tok2", until); err != nil {
		t.Fatal(err)
	}
	list, err = cli.Revoked(now.Add(-time.Hour))
	if _, ok := list["old"]; err != nil || ok || len(list) != 2 {
		t.Fatalf("after the write: %v, %v; want tok1 and tok2", list, err)
	}

	for _, id := range []string{"", "tok.1", "tok 1", "tök", "tok\x00", strings.Repeat("a", 65)} {
		if err := hub.Revoke(id, until); !errors.Is(err, ErrMalformed) {
			t.Errorf("Revoke(%q) = %v, want ErrMalformed", id, err)
		}
	}
	if err := hub.Revoke(strings.Repeat("a", 64), until); err != nil {
		t.Errorf("longest id: %v", err)
	}

	// A list that does not parse is an error, not an empty list: revocations must not vanish.
	for _, bad := range []string{"", "{", `{"version":2,"revoked":{}}`, `{"revoked":{"a":"2030-01-01T00:00:00Z"}}`, `{"version":1,"revoked":{"a":"soon"}}`} {
		if err := os.WriteFile(filepath.Join(dir, revokedFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := hub.Revoked(now); err == nil {
			t.Errorf("Revoked accepted %q", bad)
		}
		if err := hub.Revoke("tok3", until); err == nil {
			t.Errorf("Revoke overwrote %q", bad)
		}
	}
}

func TestStoreEnrollDevices(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	ids := []string{"cam-1", "cam-2", "cam-3"}
	keys, err := s.EnrollDevices(ids)
	if err != nil || len(keys) != 3 {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
	other := openTestStore(t, dir) // another process sees them all
	for i, id := range ids {
		pub, err := other.DevicePublicKey(id)
		if err != nil || !pub.Equal(keys[i].Public()) {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// Enrolled again: a new key, the old one no longer matches.
	again, err := s.EnrollDevices(ids[:1])
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := other.DevicePublicKey("cam-1"); !pub.Equal(again[0].Public()) || pub.Equal(keys[0].Public()) {
		t.Fatal("cam-1 kept its old key")
	}
	if _, err := s.EnrollDevices([]string{"ok", "bad id"}); !errors.Is(err, ErrBadDeviceID) {
		t.Fatalf("a bad id: %v", err)
	}
	if devs, _ := other.Devices(); !slices.Equal(devs, ids) {
		t.Fatalf("devices %v after a refused enrolment", devs)
	}
}

// TestStoreSeesChangesToAnOldRegistry: lookups skip rereading a registry unchanged since well
// before they last read it, yet see a change made after that, whether the file was replaced
// (as the store writes it) or rewritten in place with the same size.
func TestStoreSeesChangesToAnOldRegistry(t *testing.T) {
	dir := t.TempDir()
	hub := openTestStore(t, dir)
	cli := openTestStore(t, dir)
	k1, err := cli.AddDevice("cam1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, devicesFile)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second lookup comes from the cache
		if pub, err := hub.DevicePublicKey("cam1"); err != nil || !pub.Equal(k1.Public()) {
			t.Fatalf("cam1: %v", err)
		}
	}
	// Replaced by another process.
	k2, err := cli.AddDevice("cam2")
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := hub.DevicePublicKey("cam2"); err != nil || !pub.Equal(k2.Public()) {
		t.Fatalf("cam2 after a replacement: %v", err)
	}
	// Rewritten in place, same size, by hand: cam2 gets another key.
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.DevicePublicKey("cam2"); err != nil {
		t.Fatal(err)
	}
	k3, _ := GenerateDeviceKey()
	raw, _ := os.ReadFile(path)
	edited := strings.Replace(string(raw), base64.StdEncoding.EncodeToString(k2.Public()), base64.StdEncoding.EncodeToString(k3.Public()), 1)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(edited), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if pub, err := hub.DevicePublicKey("cam2"); err != nil || !pub.Equal(k3.Public()) {
		t.Fatalf("cam2 after an edit in place: %v", err)
	}
}
