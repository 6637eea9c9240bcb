package auth

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckJWKSURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://issuer.example/.well-known/jwks.json": true,
		"https://issuer.example:8443/keys":             true,
		"http://127.0.0.1:9000/jwks.json":              true,
		"http://[::1]:9000/jwks.json":                  true,
		"http://localhost/jwks.json":                   true,
		"http://issuer.example/jwks.json":              false,
		"http://10.0.0.1/jwks.json":                    false,
		"ftp://issuer.example/jwks.json":               false,
		"https://user:pw@issuer.example/jwks.json":     false,
		"https:///jwks.json":                           false,
		"/jwks.json":                                   false,
		"":                                             false,
	} {
		if err := CheckJWKSURL(u); (err == nil) != ok {
			t.Errorf("CheckJWKSURL(%q) = %v, want ok %v", u, err, ok)
		}
	}
	for iss, ok := range map[string]bool{"https://app.example": true, "backend": true, "": false, LocalIssuer: false, "a\nb": false} {
		if err := CheckIssuer(iss); (err == nil) != ok {
			t.Errorf("CheckIssuer(%q) = %v, want ok %v", iss, err, ok)
		}
	}
}

// fakeIssuer serves a JWK Set that the test changes, counting fetches.
type fakeIssuer struct {
	mu      sync.Mutex
	body    string
	status  int
	fetches int
}

func (f *fakeIssuer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	_, _ = w.Write([]byte(f.body))
}

func (f *fakeIssuer) set(body string, status int) {
	f.mu.Lock()
	f.body, f.status = body, status
	f.mu.Unlock()
}

func (f *fakeIssuer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

func TestRemoteJWKS(t *testing.T) {
	const iss = "https://app.example"
	k1 := SigningKey{KID: "k1", Private: ed25519.NewKeyFromSeed(make([]byte, 32))}
	_, p2, _ := ed25519.GenerateKey(nil)
	k2 := SigningKey{KID: "k2", Private: p2}
	asIssuer := func(k SigningKey) VerifyKey { v := k.Public(); v.Issuer = iss; return v }
	f := &fakeIssuer{body: string(KeySet{asIssuer(k1)}.JWKS())}
	srv := httptest.NewServer(f)
	defer srv.Close()

	r, err := NewRemoteJWKS(iss, srv.URL+"/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1893456000, 0)
	r.Now = func() time.Time { return now }
	var errs []error
	r.OnError = func(err error) { errs = append(errs, err) }

	tok := func(k SigningKey) string {
		return signRaw(k.Private, `{"alg":"EdDSA","kid":"`+k.KID+`"}`,
			`{"iss":"`+iss+`","aud":"p2pcast","jti":"t","devices":["cam1"],"grants":["view"],"iat":1893452400,"exp":1893459600}`)
	}
	if c, err := Verify(r, tok(k1), testNow); err != nil || c.Issuer != iss {
		t.Fatalf("first token: %+v, %v", c, err)
	}
	if f.count() != 1 {
		t.Fatalf("%d fetches, want 1", f.count())
	}
	// The issuer rotates: the unknown kid fetches the set again at once.
	f.set(string(KeySet{asIssuer(k1), asIssuer(k2)}.JWKS()), 0)
	now = now.Add(time.Minute)
	if _, err := Verify(r, tok(k2), testNow); err != nil {
		t.Fatal(err)
	}
	if f.count() != 2 {
		t.Fatalf("%d fetches, want 2", f.count())
	}
	// Made-up kids do not hammer the issuer: one fetch per MinRefetch.
	now = now.Add(time.Minute)
	for range 20 {
		if _, err := Verify(r, tok(SigningKey{KID: "made-up", Private: p2}), testNow); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if f.count() != 3 {
		t.Fatalf("%d fetches, want 3", f.count())
	}
	// A failing issuer leaves the last good set in force, and says so. (The issuer's clock, r.Now,
	// moves on; tokens are checked at testNow.)
	f.set("", http.StatusInternalServerError)
	now = now.Add(time.Hour) // stale: refetched, fails
	if _, err := Verify(r, tok(k2), testNow); err != nil {
		t.Fatalf("with the issuer down: %v", err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "500") {
		t.Fatalf("errors %v", errs)
	}
	// A set that no longer parses does too.
	f.set(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k1"}]}`, 0)
	now = now.Add(time.Hour)
	if _, err := Verify(r, tok(k1), testNow); err != nil {
		t.Fatalf("with a broken set: %v", err)
	}
	// A key the issuer removed is refused once the set is refetched.
	f.set(string(KeySet{asIssuer(k2)}.JWKS()), 0)
	now = now.Add(time.Hour)
	if _, err := Verify(r, tok(k1), testNow); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("removed key: %v", err)
	}
	// Its keys sign for its issuer only.
	p2pTok := signRaw(k2.Private, `{"alg":"EdDSA","kid":"k2"}`,
		`{"iss":"p2pcast","aud":"p2pcast","jti":"t","devices":["cam1"],"grants":["view"],"iat":1893452400,"exp":1893459600}`)
	if _, err := Verify(r, p2pTok, time.Unix(1893456000, 0)); !errors.Is(err, ErrWrongIssuer) {
		t.Fatalf("issuer key claiming p2pcast: %v", err)
	}
}

func TestRemoteJWKSNeverFetched(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat(" ", MaxJWKSSize+10))) // oversize
	}))
	defer srv.Close()
	r, err := NewRemoteJWKS("iss", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(r, mustMint(t, testClaims()), testNow); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("with no set fetched: %v", err)
	}
	// Redirects go only where a JWKS URL may be.
	redir := httptest.NewServer(http.RedirectHandler("http://192.0.2.1/jwks.json", http.StatusFound))
	defer redir.Close()
	r, _ = NewRemoteJWKS("iss", redir.URL)
	if err := r.Refresh(t.Context()); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("redirect to plain http: %v", err)
	}
}
