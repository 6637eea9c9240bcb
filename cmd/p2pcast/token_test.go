package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// p2pcast token mints JWTs; rotate-key, keys, jwks and remove-key manage the key set; revoke
// takes a JWT, and names the change for a p2pt1 token.
func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	cmd := func(args ...string) (string, string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(append(args, "--data", dir), &out, &errOut)
		return strings.TrimSpace(out.String()), errOut.String(), code
	}
	tok, stderr, code := cmd("token", "--device", "cam1", "--grant", "view,talk", "--ttl", "10m", "--subject", "bob")
	if code != exitOK || strings.Count(tok, ".") != 2 || !strings.HasPrefix(tok, "eyJ") {
		t.Fatalf("token: exit %d, %q, %s", code, tok, stderr)
	}
	store, err := auth.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.Verify(store, tok, time.Now())
	if err != nil || c.Subject != "bob" || !c.Allows("cam1", auth.GrantTalk) || c.Issuer != auth.LocalIssuer {
		t.Fatalf("minted %+v, %v", c, err)
	}
	first := c.KeyID

	jwks, _, code := cmd("token", "jwks")
	ks, err := auth.ParseJWKS([]byte(jwks), auth.LocalIssuer)
	if code != exitOK || err != nil || len(ks) != 1 || ks[0].KID != first {
		t.Fatalf("jwks: exit %d, %s, %v", code, jwks, err)
	}
	kid, _, code := cmd("token", "rotate-key")
	if code != exitOK || kid == first || kid == "" {
		t.Fatalf("rotate-key: exit %d, %q", code, kid)
	}
	list, _, _ := cmd("token", "keys")
	if lines := strings.Split(list, "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], first+"  ") || !strings.Contains(lines[0], "verifies until") ||
		!strings.HasPrefix(lines[1], kid+"  ") || !strings.HasSuffix(lines[1], "signing") {
		t.Fatalf("keys:\n%s", list)
	}
	tok2, _, _ := cmd("token", "--device", "*")
	if c, err := auth.Verify(store, tok2, time.Now()); err != nil || c.KeyID != kid {
		t.Fatalf("token after rotate-key: %+v, %v", c, err)
	}
	if _, stderr, code := cmd("token", "remove-key", kid); code != exitUsage || !strings.Contains(stderr, "signing key") {
		t.Fatalf("remove-key of the signing key: exit %d, %s", code, stderr)
	}
	// A key id may begin with "-" (one in 64 does): it is a key id, not a flag.
	if _, stderr, code := cmd("token", "remove-key", "-"+strings.Repeat("A", 42)); code != exitUsage || !strings.Contains(stderr, "unknown") {
		t.Fatalf("remove-key of an unknown key id beginning with -: exit %d, %s", code, stderr)
	}
	if _, stderr, code := cmd("token", "remove-key", first); code != exitOK {
		t.Fatalf("remove-key: exit %d, %s", code, stderr)
	}
	if _, err := auth.Verify(store, tok, time.Now()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("token of the removed key: %v", err)
	}
	if _, stderr, code := cmd("token", "revoke", tok2); code != exitOK || !strings.Contains(stderr, "revoked") {
		t.Fatalf("revoke: exit %d, %s", code, stderr)
	}
	c2, _ := auth.Verify(store, tok2, time.Now())
	if rev, _ := store.Revoked(time.Now()); rev[c2.ID].IsZero() {
		t.Fatalf("revoked list %v lacks %s", rev, c2.ID)
	}
	if _, stderr, code := cmd("token", "revoke", "p2pt1.eyJ9.c2ln"); code != exitUsage || !strings.Contains(stderr, "no longer accepted") {
		t.Fatalf("revoke of a p2pt1 token: exit %d, %s", code, stderr)
	}
	// A device's --hub-jwks file must hold keys.
	bad := filepath.Join(dir, "not-keys.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"device", "--http", "127.0.0.1:0", "--hub-jwks", bad}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "--hub-jwks") {
		t.Fatalf("device --hub-jwks with no keys: exit %d, %s", code, errOut.String())
	}
}
