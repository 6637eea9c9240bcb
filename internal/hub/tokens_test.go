package hub

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// listWith asks /api/devices with tok: the status and the body.
func (h *testHub) listWith(tok string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.http.URL+"/api/devices", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *testHub) jwks() (*http.Response, auth.KeySet) {
	h.t.Helper()
	resp, err := http.Get(h.http.URL + "/.well-known/jwks.json")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ks, err := auth.ParseJWKS(b, auth.LocalIssuer)
	if err != nil {
		h.t.Fatalf("%s: %v", b, err)
	}
	return resp, ks
}

// signJWT signs a claim set as an application's backend would.
func signJWT(key ed25519.PrivateKey, kid string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
}

// TestJWKSEndpoint: the hub publishes its verification keys; a rotation by another process
// on its data directory (the CLI, another hub) shows at once, old tokens keep working until
// their key is removed.
func TestJWKSEndpoint(t *testing.T) {
	h := newTestHub(t, Config{})
	resp, ks := h.jwks()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	first, _ := h.store.SigningKey()
	if len(ks) != 1 || ks[0].KID != first.KID || !ks[0].Public.Equal(first.Private.Public().(ed25519.PublicKey)) {
		t.Fatalf("keys %+v", ks)
	}
	oldTok := h.token([]string{"*"}, []auth.Grant{auth.GrantView}, time.Hour)

	cli, err := auth.OpenStore(h.store.Dir())
	if err != nil {
		t.Fatal(err)
	}
	kid, err := cli.RotateTokenKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, ks = h.jwks(); len(ks) != 2 || ks[0].KID != kid || ks[1].KID != first.KID {
		t.Fatalf("after rotating: %+v", ks)
	}
	newTok := h.token([]string{"*"}, []auth.Grant{auth.GrantView}, time.Hour)
	for name, tok := range map[string]string{"old key": oldTok, "new key": newTok} {
		if code, body := h.listWith(tok); code != 200 {
			t.Fatalf("%s: %d %s", name, code, body)
		}
	}
	if c, err := auth.Verify(ks, newTok, time.Now()); err != nil || c.KeyID != kid {
		t.Fatalf("new token against the published set: %+v, %v", c, err)
	}
	if err := cli.RemoveTokenKey(first.KID); err != nil {
		t.Fatal(err)
	}
	if code, body := h.listWith(oldTok); code != 401 || !strings.Contains(body, "unknown token key id") {
		t.Fatalf("token of a removed key: %d %s", code, body)
	}
	if _, ks = h.jwks(); len(ks) != 1 || ks[0].KID != kid {
		t.Fatalf("after removing: %+v", ks)
	}
	// A p2pt1 token says what changed.
	if code, body := h.listWith("p2pt1.eyJqdGkiOiJ0In0.c2ln"); code != 401 || !strings.Contains(body, "p2pt1 tokens are no longer accepted") {
		t.Fatalf("legacy token: %d %s", code, body)
	}
}

// jwksServer serves ks as an issuer's JWK Set on a loopback http URL, counting fetches.
func jwksServer(t *testing.T, ks auth.KeySet) (string, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { n.Add(1); _, _ = w.Write(ks.JWKS()) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks.json", &n
}

// TestExternalIssuer: a backend's tokens, signed with the key its JWKS publishes, are accepted
// under the same rules as the hub's own.
func TestExternalIssuer(t *testing.T) {
	const iss = "https://app.example"
	_, key, _ := ed25519.GenerateKey(nil)
	url, fetches := jwksServer(t, auth.KeySet{{KID: "app-1", Issuer: iss, Public: key.Public().(ed25519.PublicKey)}})
	h := newTestHub(t, Config{TokenIssuer: TokenIssuer{Issuer: iss, JWKSURL: url}})
	now := time.Now().Unix()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": iss, "aud": "p2pcast", "sub": "user 42", "jti": "6f1c2a8e-0b7d-4c1e-9a55-2f3c4d5e6f70",
			"iat": now, "exp": now + 600, "devices": []string{"*"}, "grants": []string{"view"}}
		if edit != nil {
			edit(c)
		}
		return c
	}
	good := signJWT(key, "app-1", claims(nil))
	if code, body := h.listWith(good); code != 200 {
		t.Fatalf("backend token: %d %s", code, body)
	}
	for name, tc := range map[string]struct {
		tok, want string
	}{
		"wrong kid":     {signJWT(key, "app-2", claims(nil)), "unknown token key id"},
		"expired":       {signJWT(key, "app-1", claims(func(c map[string]any) { c["iat"], c["exp"] = now-7200, now-3600 })), "expired"},
		"wrong iss":     {signJWT(key, "app-1", claims(func(c map[string]any) { c["iss"] = "p2pcast" })), "wrong token issuer"},
		"wrong aud":     {signJWT(key, "app-1", claims(func(c map[string]any) { c["aud"] = "billing" })), "not for p2pcast"},
		"no exp":        {signJWT(key, "app-1", claims(func(c map[string]any) { delete(c, "exp") })), "no exp"},
		"too long":      {signJWT(key, "app-1", claims(func(c map[string]any) { c["exp"] = now + 31*24*3600 })), "lifetime over"},
		"hub kid forge": {signJWT(key, func() string { k, _ := h.store.SigningKey(); return k.KID }(), claims(nil)), "bad signature"},
	} {
		if code, body := h.listWith(tc.tok); code != 401 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want 401 %q", name, code, body, tc.want)
		}
	}
	// The hub's own tokens are checked with its own keys: they cause no fetch of the issuer's.
	before := fetches.Load()
	for range 5 {
		if code, body := h.listWith(h.token([]string{"*"}, []auth.Grant{auth.GrantView}, time.Hour)); code != 200 {
			t.Fatalf("hub token: %d %s", code, body)
		}
	}
	if n := fetches.Load(); n != before || n > 3 {
		t.Fatalf("%d fetches of the issuer's set, %d before the hub's tokens", n, before)
	}
	// Revoked by its jti, like the hub's own.
	if err := h.store.Revoke("6f1c2a8e-0b7d-4c1e-9a55-2f3c4d5e6f70", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.refreshRevoked(); err != nil {
		t.Fatal(err)
	}
	if code, body := h.listWith(good); code != 401 || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked backend token: %d %s", code, body)
	}
}

func TestTokenIssuerConfig(t *testing.T) {
	for _, tc := range []struct {
		ti   TokenIssuer
		want string
	}{
		{TokenIssuer{Issuer: "https://app.example"}, "go together"},
		{TokenIssuer{JWKSURL: "https://app.example/jwks.json"}, "go together"},
		{TokenIssuer{Issuer: "p2pcast", JWKSURL: "https://app.example/jwks.json"}, "--token-issuer"},
		{TokenIssuer{Issuer: "app", JWKSURL: "http://app.example/jwks.json"}, "loopback"},
	} {
		cfg := Config{TURN: TURNConfig{Off: true}, ExternalTURN: ExternalTURN{URLs: []string{"turn:t"}, Secret: "s"}, TokenIssuer: tc.ti}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.ti, err, tc.want)
		}
	}
}

// pythonJWT is Debian's python3 with PyJWT (python3-jwt), or "" with the reason it is not.
// The python3 on PATH may be another (pyenv) without it.
func pythonJWT(t *testing.T) string {
	const py = "/usr/bin/python3"
	out, err := exec.Command(py, "-c", "import jwt, cryptography; print(jwt.__version__)").CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import jwt (Debian package python3-jwt; scripts/install-deps.sh installs it): %v %s", py, err, bytes.TrimSpace(out))
		if os.Getenv("P2PCAST_REQUIRE_TOOLS") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Logf("PyJWT %s", bytes.TrimSpace(out))
	return py
}

// runPython runs script with args, returning its stdout lines.
func runPython(t *testing.T, py, script string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestPyJWTInterop: tokens made with a stock JWT library, PyJWT, are accepted by the hub,
// both with the hub's key and with an external issuer's; a wrong kid or an expired one is
// refused; and PyJWT verifies a token the hub minted against the JWKS the hub publishes.
func TestPyJWTInterop(t *testing.T) {
	py := pythonJWT(t)
	dir := t.TempDir()
	// An external issuer's key, made by Python: its JWK Set, and tokens it signed.
	appOut := runPython(t, py, `
import json, sys, time, jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
key = Ed25519PrivateKey.generate()
jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="backend-1", use="sig", alg="EdDSA")
print(json.dumps({"keys": [jwk]}))
now = int(time.time())
print(jwt.encode({"iss": "https://app.example", "aud": "p2pcast", "sub": "user 42", "jti": "py-app-1",
                  "iat": now, "exp": now + 600, "devices": ["*"], "grants": ["view"]},
                 key, algorithm="EdDSA", headers={"kid": "backend-1"}))
`)
	if len(appOut) != 2 {
		t.Fatalf("python printed %q", appOut)
	}
	appJWKS := []byte(appOut[0])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(appJWKS) }))
	defer srv.Close()
	h := newTestHub(t, Config{TokenIssuer: TokenIssuer{Issuer: "https://app.example", JWKSURL: srv.URL + "/jwks.json"}})

	// The hub's private key, exported as the PKCS #8 PEM any JWT library reads.
	key, err := h.store.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key.Private)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "hub.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	hubOut := runPython(t, py, `
import sys, time, jwt
pem, kid = open(sys.argv[1], "rb").read(), sys.argv[2]
now = int(time.time())
claims = {"iss": "p2pcast", "aud": "p2pcast", "jti": "py-hub-1", "iat": now, "exp": now + 600,
          "devices": ["cam1", "cam2"], "grants": ["view", "talk"], "sub": "minted by PyJWT"}
print(jwt.encode(claims, pem, algorithm="EdDSA", headers={"kid": kid}))
print(jwt.encode(claims, pem, algorithm="EdDSA", headers={"kid": "not-the-hub-kid"}))
print(jwt.encode(dict(claims, iat=now - 7200, exp=now - 3600), pem, algorithm="EdDSA", headers={"kid": kid}))
`, pemFile, key.KID)
	if len(hubOut) != 3 {
		t.Fatalf("python printed %q", hubOut)
	}
	c, err := h.srv.verifyToken(hubOut[0])
	if err != nil || c.ID != "py-hub-1" || c.Subject != "minted by PyJWT" || c.KeyID != key.KID || !c.Allows("cam2", auth.GrantTalk) {
		t.Fatalf("PyJWT token with the hub's key: %+v, %v", c, err)
	}
	for name, tc := range map[string]struct{ tok, want string }{
		"hub key":     {hubOut[0], ""},
		"wrong kid":   {hubOut[1], "unknown token key id"},
		"expired":     {hubOut[2], "expired"},
		"app backend": {appOut[1], ""},
	} {
		code, body := h.listWith(tc.tok)
		if tc.want == "" && code != 200 || tc.want != "" && (code != 401 || !strings.Contains(body, tc.want)) {
			t.Errorf("%s: %d %s; want %q", name, code, body, tc.want)
		}
	}

	// The other way: PyJWT checks the hub's token with the keys at /.well-known/jwks.json.
	tok := h.token([]string{"cam1"}, []auth.Grant{auth.GrantView, auth.GrantFiles}, time.Hour)
	verified := runPython(t, py, `
import json, sys, jwt
client = jwt.PyJWKClient(sys.argv[1])
key = client.get_signing_key_from_jwt(sys.argv[2])
print(json.dumps(jwt.decode(sys.argv[2], key.key, algorithms=["EdDSA"], audience="p2pcast", issuer="p2pcast")))
print(key.key_id)
`, h.http.URL+"/.well-known/jwks.json", tok)
	var got struct {
		Jti     string   `json:"jti"`
		Devices []string `json:"devices"`
		Grants  []string `json:"grants"`
	}
	hc, _ := auth.Verify(h.store, tok, time.Now())
	if err := json.Unmarshal([]byte(verified[0]), &got); err != nil || got.Jti != hc.ID || len(got.Devices) != 1 || got.Grants[1] != "files" || verified[1] != key.KID {
		t.Fatalf("PyJWT decoded %q (%v)", verified, err)
	}
}
