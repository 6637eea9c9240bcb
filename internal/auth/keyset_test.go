package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestThumbprint checks RFC 7638's computation against RFC 8037's example
// (appendix A.3: the Ed25519 key of A.2 has this thumbprint).
func TestThumbprint(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got, want := Thumbprint(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("Thumbprint = %s, want %s", got, want)
	}
}

// TestStoreMigratesHubKey: a store from before JWTs keeps its key, now with
// a kid; hub.key is left as it was.
func TestStoreMigratesHubKey(t *testing.T) {
	dir := t.TempDir()
	old := base64.StdEncoding.EncodeToString(hubSeed) + "\n"
	if err := os.WriteFile(filepath.Join(dir, hubKeyFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, dir)
	k, err := s.SigningKey()
	if err != nil || !k.Private.Equal(hubPriv()) || k.KID != hubKey().KID {
		t.Fatalf("migrated key %s, %v; want hub.key's with kid %s", k.KID, err, hubKey().KID)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, hubKeyFile)); string(b) != old {
		t.Fatal("hub.key changed")
	}
	// Reopening does not migrate again (a rotation stays).
	kid, err := s.RotateTokenKey()
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := openTestStore(t, dir).SigningKey(); k.KID != kid {
		t.Fatalf("after reopening the signing key is %s, want %s", k.KID, kid)
	}
}

func TestStoreRotateTokenKey(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	other := openTestStore(t, dir) // another hub on this directory, or the CLI
	first, _ := s.SigningKey()
	oldTok, err := Mint(first, Claims{Devices: []string{"cam1"}, Grants: []Grant{GrantView}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	kid, err := other.RotateTokenKey()
	if err != nil || kid == first.KID || !validKeyID(kid) {
		t.Fatalf("rotate: %q, %v", kid, err)
	}
	// The first store sees the rotation at once: it signs with the new key
	// and verifies with both.
	second, err := s.SigningKey()
	if err != nil || second.KID != kid {
		t.Fatalf("signing key %s, %v; want %s", second.KID, err, kid)
	}
	newTok, _ := Mint(second, Claims{Devices: []string{"cam1"}, Grants: []Grant{GrantView}, Expires: time.Now().Add(time.Hour)})
	for _, tok := range []string{oldTok, newTok} {
		if _, err := Verify(s, tok, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := s.VerifyKeys(time.Now())
	if err != nil || len(ks) != 2 || ks[0].KID != kid || ks[1].KID != first.KID {
		t.Fatalf("verify keys %+v, %v: want the new key first", ks, err)
	}
	list, _ := s.TokenKeyList()
	if len(list) != 2 || list[0].Signing || !list[1].Signing || list[0].Retired.IsZero() || !list[1].Retired.IsZero() {
		t.Fatalf("list %+v", list)
	}
	// The signing key cannot be removed; an old one can, and its tokens go.
	if err := s.RemoveTokenKey(kid); !errors.Is(err, ErrSigningKey) {
		t.Fatalf("removing the signing key: %v", err)
	}
	if err := s.RemoveTokenKey("nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("removing an unknown key: %v", err)
	}
	if err := other.RemoveTokenKey(first.KID); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(s, oldTok, time.Now()); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a removed key: %v", err)
	}
	if _, err := Verify(s, newTok, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Long after a rotation the replaced key verifies nothing, and the next
	// rotation drops it from the file.
	later := time.Now().Add(MaxLifetime + time.Hour)
	kid3, _ := s.RotateTokenKey()
	if ks, _ := s.VerifyKeys(later); len(ks) != 1 || ks[0].KID != kid3 {
		t.Fatalf("keys a month later: %+v", ks)
	}
}

func TestStoreBadTokenKeys(t *testing.T) {
	good := func() tokenKeysJSON {
		return tokenKeysJSON{Version: 1, Keys: []tokenKeyEntry{{KID: hubKey().KID, Seed: base64.StdEncoding.EncodeToString(hubSeed), Created: testNow}}}
	}
	for name, edit := range map[string]func(*tokenKeysJSON){
		"version 2": func(f *tokenKeysJSON) { f.Version = 2 },
		"no keys":   func(f *tokenKeysJSON) { f.Keys = nil },
		"bad seed":  func(f *tokenKeysJSON) { f.Keys[0].Seed = "AAAA" },
		"wrong kid": func(f *tokenKeysJSON) { f.Keys[0].KID = "mine" },
		"twice":     func(f *tokenKeysJSON) { f.Keys = append(f.Keys, f.Keys[0]) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := good()
			edit(&f)
			b, _ := json.Marshal(f)
			if err := os.WriteFile(filepath.Join(dir, tokenKeysFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenStore(dir); err == nil {
				t.Fatal("opened")
			}
			if after, _ := os.ReadFile(filepath.Join(dir, tokenKeysFile)); string(after) != string(b) {
				t.Fatal("the key file was rewritten")
			}
		})
	}
}

func TestJWKSRoundTrip(t *testing.T) {
	_, p2, _ := ed25519.GenerateKey(nil)
	ks := KeySet{hubKey().Public(), {KID: "k2", Issuer: LocalIssuer, Public: p2.Public().(ed25519.PublicKey)}}
	raw := ks.JWKS()
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Keys) != 2 {
		t.Fatalf("%s: %v", raw, err)
	}
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(hubPub()), "kid": hubKey().KID, "use": "sig", "alg": "EdDSA"}
	for k, v := range want {
		if doc.Keys[0][k] != v {
			t.Fatalf("key 0: %s = %q, want %q", k, doc.Keys[0][k], v)
		}
	}
	back, err := ParseJWKS(raw, "iss")
	if err != nil || len(back) != 2 || back[1].KID != "k2" || !back[0].Public.Equal(hubPub()) || back[0].Issuer != "iss" {
		t.Fatalf("ParseJWKS = %+v, %v", back, err)
	}
	if s := string(raw); strings.Contains(s, `"d"`) || strings.Contains(s, base64.RawURLEncoding.EncodeToString(hubSeed)) {
		t.Fatalf("JWKS holds a private key: %s", s)
	}
}

func TestParseJWKS(t *testing.T) {
	x := base64.RawURLEncoding.EncodeToString(hubPub())
	okp := `{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a"}`
	rsa := `{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","alg":"RS256"}`
	for _, tc := range []struct {
		name, in string
		keys     int
	}{
		{"one", `{"keys":[` + okp + `]}`, 1},
		{"skips RSA and other uses", `{"keys":[` + rsa + `,` + okp + `,` + strings.Replace(okp, `"kid":"a"`, `"kid":"b","use":"enc"`, 1) + `]}`, 1},
		{"skips an X25519 key", `{"keys":[` + okp + `,` + strings.Replace(okp, `Ed25519","x"`, `X25519","x"`, 1) + `]}`, 1},
		{"skips a key without kid", `{"keys":[` + okp + `,` + strings.Replace(okp, `,"kid":"a"`, ``, 1) + `]}`, 1},
		{"extra members", `{"keys":[` + strings.Replace(okp, `"kid":"a"`, `"kid":"a","key_ops":["verify"],"x5t":"zz"`, 1) + `],"other":1}`, 1},
		{"only RSA", `{"keys":[` + rsa + `]}`, 0},
		{"empty", `{"keys":[]}`, 0},
		{"no keys member", `{}`, 0},
		{"private key", `{"keys":[` + strings.Replace(okp, `"kid":"a"`, `"kid":"a","d":"`+x+`"`, 1) + `]}`, 0},
		{"kid twice", `{"keys":[` + okp + `,` + okp + `]}`, 0},
		{"short x", `{"keys":[` + strings.Replace(okp, x, x[:40], 1) + `]}`, 0},
		{"duplicate member", `{"keys":[` + strings.Replace(okp, `"kid":"a"`, `"kid":"a","kid":"b"`, 1) + `]}`, 0},
		{"not JSON", `keys`, 0},
		{"oversize", `{"keys":[` + okp + `],"pad":"` + strings.Repeat("x", MaxJWKSSize) + `"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := ParseJWKS([]byte(tc.in), "iss")
			if tc.keys == 0 {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || len(ks) != tc.keys {
				t.Fatalf("%d keys, %v; want %d", len(ks), err, tc.keys)
			}
		})
	}
}

func TestParseKeyText(t *testing.T) {
	ks, err := ParseKeyText([]byte(FormatTokenKey(hubPub())+"\n"), LocalIssuer)
	if err != nil || len(ks) != 1 || ks[0].KID != hubKey().KID {
		t.Fatalf("p2pv1 key: %+v, %v", ks, err)
	}
	if _, err := Verify(ks, mustMint(t, testClaims()), testNow); err != nil {
		t.Fatal(err)
	}
	if ks, err := ParseKeyText(hubKeys().JWKS(), LocalIssuer); err != nil || len(ks) != 1 {
		t.Fatalf("JWKS: %+v, %v", ks, err)
	}
	if _, err := ParseKeyText([]byte("hello"), LocalIssuer); err == nil {
		t.Fatal("accepted text that is no key")
	}
}

// TestIDsNeverLookLikeFlags: key ids and token ids go on command lines (token remove-key,
// token revoke), where one beginning with "-" reads as a flag; one in 64 random ones would.
func TestIDsNeverLookLikeFlags(t *testing.T) {
	for range 1000 {
		k, err := generateStoredKey(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k.KID, "-") {
			t.Fatalf("key id %s begins with -", k.KID)
		}
	}
	for range 2000 {
		c := testClaims()
		c.ID = "" // a random one
		c, err := Verify(hubKeys(), mustMint(t, c), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(c.ID, "-") {
			t.Fatalf("token id %s begins with -", c.ID)
		}
	}
}
