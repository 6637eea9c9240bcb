package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// hubSeed gives tests (and the fuzz seeds) a known token key.
var hubSeed = bytes.Repeat([]byte{0x07}, ed25519.SeedSize)

// testNow is the clock token tests and fuzzers run at: 2030-01-01T00:00:00Z.
var testNow = time.Unix(1893456000, 0).UTC()

func hubPriv() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(hubSeed) }

func hubPub() ed25519.PublicKey { return hubPriv().Public().(ed25519.PublicKey) }

func hubKey() SigningKey { return SigningKey{KID: Thumbprint(hubPub()), Private: hubPriv()} }

// hubKeys verifies hubKey's tokens.
func hubKeys() KeySet { return KeySet{hubKey().Public()} }

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signRaw makes a token of an arbitrary header and claim set, to test what
// Verify does with JSON that Mint would never produce.
func signRaw(key ed25519.PrivateKey, header, claims string) string {
	signed := b64(header) + "." + b64(claims)
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
}

// stdHeader is the header Mint writes for hubKey.
func stdHeader() string { return `{"alg":"EdDSA","typ":"JWT","kid":"` + hubKey().KID + `"}` }

func testClaims() Claims {
	return Claims{
		ID:       "tok1",
		Devices:  []string{"cam1", "cam2"},
		Grants:   []Grant{GrantView, GrantTalk},
		IssuedAt: testNow.Add(-time.Hour),
		Expires:  testNow.Add(time.Hour),
		Subject:  "alice's phone",
	}
}

func mustMint(t testing.TB, c Claims) string {
	t.Helper()
	tok, err := Mint(hubKey(), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMintVerifyRoundTrip(t *testing.T) {
	c := testClaims()
	c.NotBefore = testNow.Add(-time.Minute)
	c.Expires = c.Expires.Add(500 * time.Millisecond) // kept to whole seconds
	tok := mustMint(t, c)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || !strings.HasPrefix(tok, "eyJ") {
		t.Fatalf("token %q has the wrong shape", tok)
	}
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(h) != stdHeader() {
		t.Fatalf("header %s", h)
	}
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if want := `{"iss":"p2pcast","sub":"alice's phone","aud":"p2pcast","exp":1893459600,"nbf":1893455940,"iat":1893452400,` +
		`"jti":"tok1","devices":["cam1","cam2"],"grants":["view","talk"]}`; string(p) != want {
		t.Fatalf("claims\n got %s\nwant %s", p, want)
	}
	got, err := Verify(hubKeys(), tok, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.IssuedAt, want.NotBefore, want.Expires = want.IssuedAt.UTC(), want.NotBefore.UTC(), want.Expires.Truncate(time.Second).UTC()
	want.Issuer, want.KeyID = LocalIssuer, hubKey().KID
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claims\n got %+v\nwant %+v", got, want)
	}
	// Minting the verified claims again gives the same token.
	if again := mustMint(t, got); again != tok {
		t.Fatalf("re-minted token differs")
	}
}

func TestMintDefaults(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	c := Claims{Devices: []string{"*"}, Grants: []Grant{GrantView}, Expires: time.Now().Add(time.Hour)}
	tok1, tok2 := mustMint(t, c), mustMint(t, c)
	got, err := Verify(hubKeys(), tok1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ID) < 16 || got.IssuedAt.Before(before) || got.IssuedAt.After(time.Now()) || !got.NotBefore.IsZero() {
		t.Fatalf("defaults: %+v", got)
	}
	got2, _ := Verify(hubKeys(), tok2, time.Now())
	if got.ID == got2.ID {
		t.Fatal("two tokens share a random ID")
	}
}

func TestMintRejects(t *testing.T) {
	long := testClaims()
	for i := range 200 {
		long.Devices = append(long.Devices, fmt.Sprintf("camera-number-%03d", i))
	}
	short := hubKey()
	short.Private = short.Private[:32]
	noKID := hubKey()
	noKID.KID = ""
	tests := []struct {
		name   string
		key    SigningKey
		change func(*Claims)
		want   error
	}{
		{"no expiry", hubKey(), func(c *Claims) { c.Expires = time.Time{} }, ErrMalformed},
		{"expires before issued", hubKey(), func(c *Claims) { c.Expires = c.IssuedAt }, ErrMalformed},
		{"too long lived", hubKey(), func(c *Claims) { c.Expires = c.IssuedAt.Add(MaxLifetime + time.Second) }, ErrMalformed},
		{"nbf after exp", hubKey(), func(c *Claims) { c.NotBefore = c.Expires }, ErrMalformed},
		{"no devices", hubKey(), func(c *Claims) { c.Devices = nil }, ErrMalformed},
		{"bad device", hubKey(), func(c *Claims) { c.Devices = []string{"cam 1"} }, ErrMalformed},
		{"no grants", hubKey(), func(c *Claims) { c.Grants = nil }, ErrMalformed},
		{"unknown grant", hubKey(), func(c *Claims) { c.Grants = []Grant{"admin"} }, ErrMalformed},
		{"bad id", hubKey(), func(c *Claims) { c.ID = "a.b" }, ErrMalformed},
		{"long id", hubKey(), func(c *Claims) { c.ID = strings.Repeat("a", 65) }, ErrMalformed},
		{"control char subject", hubKey(), func(c *Claims) { c.Subject = "bob\nINFO fake log line" }, ErrMalformed},
		{"invalid utf8 subject", hubKey(), func(c *Claims) { c.Subject = "\xff" }, ErrMalformed},
		{"long subject", hubKey(), func(c *Claims) { c.Subject = strings.Repeat("x", 129) }, ErrMalformed},
		{"before 1970", hubKey(), func(c *Claims) { c.IssuedAt = time.Unix(-10, 0); c.Expires = time.Unix(10, 0) }, ErrMalformed},
		{"too many devices", hubKey(), func(c *Claims) { *c = long }, ErrTooLong},
		{"short key", short, func(*Claims) {}, nil},
		{"no kid", noKID, func(*Claims) {}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testClaims()
			tt.change(&c)
			_, err := Mint(tt.key, c)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// hs256 signs header.claims with HMAC-SHA256, key the given bytes: the
// classic alg confusion, with the (public) Ed25519 key as the HMAC secret.
func hs256(key []byte, header, claims string) string {
	signed := b64(header) + "." + b64(claims)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyRejects(t *testing.T) {
	good := mustMint(t, testClaims())
	parts := strings.Split(good, ".")
	_, other, _ := ed25519.GenerateKey(nil)
	otherKey := SigningKey{KID: hubKey().KID, Private: other} // same kid, another key

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	const okBody = `"iss":"p2pcast","aud":"p2pcast","jti":"t","devices":["cam1"],"grants":["view"],"iat":1893452400`
	raw := func(body string) string { return signRaw(hubPriv(), stdHeader(), `{`+body+`}`) }
	hdr := func(header string) string {
		return signRaw(hubPriv(), header, `{`+okBody+`,"exp":1893459600}`)
	}
	kid := hubKey().KID
	pemPub := []byte("-----BEGIN PUBLIC KEY-----\n" + base64.StdEncoding.EncodeToString(append([]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, hubPub()...)) + "\n-----END PUBLIC KEY-----\n")
	legacy := "p2pt1." + b64(`{"jti":"t","dev":["cam1"],"grt":["view"],"iat":1893452400,"exp":1893459600}`)

	tests := []struct {
		name  string
		keys  KeySource
		token string
		now   time.Time
		want  error
	}{
		{"ok", hubKeys(), good, testNow, nil},
		{"ok raw", hubKeys(), raw(okBody + `,"exp":1893459600`), testNow, nil},
		{"ok without typ", hubKeys(), hdr(`{"alg":"EdDSA","kid":"` + kid + `"}`), testNow, nil},
		{"ok lower-case typ, unknown header", hubKeys(), hdr(`{"kid":"` + kid + `","typ":"jwt","alg":"EdDSA","x-app":1}`), testNow, nil},
		{"ok aud array", hubKeys(), raw(strings.Replace(okBody, `"aud":"p2pcast"`, `"aud":["other","p2pcast"]`, 1) + `,"exp":1893459600`), testNow, nil},
		{"ok no iat", hubKeys(), raw(strings.Replace(okBody, `,"iat":1893452400`, ``, 1) + `,"exp":1893459600`), testNow, nil},
		{"ok fractional exp", hubKeys(), raw(okBody + `,"exp":1893459600.75`), testNow, nil},
		{"ok unknown claim", hubKeys(), raw(okBody + `,"exp":1893459600,"role":{"a":1,"a":2}`), testNow, nil},
		{"ok whitespace, reordered", hubKeys(), raw(` "exp" : 1893459600 , ` + okBody + ` `), testNow, nil},
		{"ok escaped string", hubKeys(), raw(strings.Replace(okBody, `"jti":"t"`, `"jti":"\u0074"`, 1) + `,"exp":1893459600`), testNow, nil},

		{"legacy p2pt1 token", hubKeys(), legacy + "." + b64("sig"), testNow, ErrLegacyToken},
		{"wrong kid", hubKeys(), hdr(`{"alg":"EdDSA","typ":"JWT","kid":"not-a-key"}`), testNow, ErrUnknownKey},
		{"no keys", KeySet{}, good, testNow, ErrUnknownKey},
		{"no kid", hubKeys(), hdr(`{"alg":"EdDSA","typ":"JWT"}`), testNow, ErrMalformed},
		{"empty kid", hubKeys(), hdr(`{"alg":"EdDSA","kid":""}`), testNow, ErrMalformed},
		{"number kid", hubKeys(), hdr(`{"alg":"EdDSA","kid":7}`), testNow, ErrMalformed},
		{"alg none", hubKeys(), b64(`{"alg":"none","typ":"JWT","kid":"`+kid+`"}`) + "." + b64(`{`+okBody+`,"exp":1893459600}`) + ".", testNow, ErrMalformed},
		{"alg none with sig", hubKeys(), hdr(`{"alg":"none","kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"alg HS256, public key as secret", hubKeys(), hs256(hubPub(), `{"alg":"HS256","typ":"JWT","kid":"`+kid+`"}`, `{`+okBody+`,"exp":1893459600}`), testNow, ErrMalformed},
		{"alg HS256, PEM public key as secret", hubKeys(), hs256(pemPub, `{"alg":"HS256","typ":"JWT","kid":"`+kid+`"}`, `{`+okBody+`,"exp":1893459600}`), testNow, ErrMalformed},
		{"alg RS256", hubKeys(), hdr(`{"alg":"RS256","kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"alg Ed25519", hubKeys(), hdr(`{"alg":"Ed25519","kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"alg lower case", hubKeys(), hdr(`{"alg":"eddsa","kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"no alg", hubKeys(), hdr(`{"kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"two algs", hubKeys(), hdr(`{"alg":"EdDSA","alg":"none","kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"crit", hubKeys(), hdr(`{"alg":"EdDSA","kid":"` + kid + `","crit":["exp"],"exp":1}`), testNow, ErrMalformed},
		{"crit b64", hubKeys(), hdr(`{"alg":"EdDSA","kid":"` + kid + `","crit":["b64"],"b64":false}`), testNow, ErrMalformed},
		{"typ other", hubKeys(), hdr(`{"alg":"EdDSA","typ":"at+jwt","kid":"` + kid + `"}`), testNow, ErrMalformed},
		{"header not an object", hubKeys(), hdr(`["EdDSA"]`), testNow, ErrMalformed},
		{"header trailing data", hubKeys(), hdr(stdHeader() + `{}`), testNow, ErrMalformed},
		{"tampered claims", hubKeys(), parts[0] + "." + flip(parts[1], 10) + "." + parts[2], testNow, ErrBadSignature},
		{"tampered header", hubKeys(), b64(`{"alg":"EdDSA","typ":"JWT","kid":"`+kid+`","x":1}`) + "." + parts[1] + "." + parts[2], testNow, ErrBadSignature},
		{"tampered signature", hubKeys(), parts[0] + "." + parts[1] + "." + flip(parts[2], 10), testNow, ErrBadSignature},
		{"bad signature, same kid", hubKeys(), func() string { tok, _ := Mint(otherKey, testClaims()); return tok }(), testNow, ErrBadSignature},
		{"short key in the set", KeySet{{KID: kid, Issuer: LocalIssuer, Public: hubPub()[:16]}}, good, testNow, ErrBadSignature},
		{"empty", hubKeys(), "", testNow, ErrMalformed},
		{"two parts", hubKeys(), parts[0] + "." + parts[1], testNow, ErrMalformed},
		{"four parts", hubKeys(), good + ".x", testNow, ErrMalformed},
		{"trailing dot", hubKeys(), good + ".", testNow, ErrMalformed},
		{"padded claims", hubKeys(), parts[0] + "." + parts[1] + "==." + parts[2], testNow, ErrMalformed},
		{"newline in claims", hubKeys(), parts[0] + "." + parts[1][:5] + "\n" + parts[1][5:] + "." + parts[2], testNow, ErrMalformed},
		{"std base64 sig", hubKeys(), parts[0] + "." + parts[1] + "." + base64.StdEncoding.EncodeToString([]byte(parts[2])), testNow, ErrMalformed},
		{"short sig", hubKeys(), parts[0] + "." + parts[1] + "." + parts[2][:40], testNow, ErrMalformed},
		{"noncanonical sig bits", hubKeys(), parts[0] + "." + parts[1] + "." + setPaddingBit(parts[2]), testNow, ErrMalformed},
		{"too long", hubKeys(), good + strings.Repeat("A", MaxTokenLen), testNow, ErrTooLong},
		{"too long garbage", hubKeys(), strings.Repeat("x", MaxTokenLen+1), testNow, ErrTooLong},
		{"expired", hubKeys(), good, testNow.Add(time.Hour), ErrExpired},
		{"expired long ago", hubKeys(), good, testNow.Add(1000 * time.Hour), ErrExpired},
		{"last second", hubKeys(), good, testNow.Add(time.Hour - time.Nanosecond), nil},
		{"issued in future", hubKeys(), good, testNow.Add(-time.Hour - ClockSkew - time.Second), ErrNotYetValid},
		{"issued within skew", hubKeys(), good, testNow.Add(-time.Hour - ClockSkew), nil},
		{"nbf in future", hubKeys(), raw(okBody + `,"nbf":1893456100,"exp":1893459600`), testNow, ErrNotYetValid},
		{"nbf within skew", hubKeys(), raw(okBody + `,"nbf":1893456030,"exp":1893459600`), testNow, nil},
		{"missing exp", hubKeys(), raw(okBody), testNow, ErrMalformed},
		{"zero exp", hubKeys(), raw(okBody + `,"exp":0`), testNow, ErrMalformed},
		{"null exp", hubKeys(), raw(okBody + `,"exp":null`), testNow, ErrMalformed},
		{"string exp", hubKeys(), raw(okBody + `,"exp":"1893459600"`), testNow, ErrMalformed},
		{"huge exp", hubKeys(), raw(okBody + `,"exp":1e400`), testNow, ErrMalformed},
		{"lifetime over 30d", hubKeys(), raw(okBody + `,"exp":1896044401`), testNow, ErrMalformed},
		{"lifetime 30d", hubKeys(), raw(okBody + `,"exp":1896044400`), testNow, nil},
		{"no iat, over 30d from now", hubKeys(), raw(strings.Replace(okBody, `,"iat":1893452400`, ``, 1) + `,"exp":1896048001`), testNow, ErrMalformed},
		{"overflowing lifetime", hubKeys(), raw(strings.Replace(okBody, `"iat":1893452400`, `"iat":-9223372036854775807`, 1) + `,"exp":9223372036854775807`), testNow, ErrMalformed},
		{"negative nbf", hubKeys(), raw(okBody + `,"nbf":-1,"exp":1893459600`), testNow, ErrMalformed},
		{"duplicate exp", hubKeys(), raw(okBody + `,"exp":1893459600,"exp":1999999999`), testNow, ErrMalformed},
		{"duplicate grants", hubKeys(), raw(okBody + `,"exp":1893459600,"grants":["control"]`), testNow, ErrMalformed},
		{"duplicate via escape", hubKeys(), raw(okBody + `,"exp":1893459600,"\u0065xp":1999999999`), testNow, ErrMalformed},
		{"case-folded exp only", hubKeys(), raw(okBody + `,"EXP":1893459600`), testNow, ErrMalformed},
		{"case-folded grants ignored", hubKeys(), raw(okBody + `,"exp":1893459600,"Grants":["control"]`), testNow, nil},
		{"no iss", hubKeys(), raw(strings.Replace(okBody, `"iss":"p2pcast",`, ``, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"wrong iss", hubKeys(), raw(strings.Replace(okBody, `"iss":"p2pcast"`, `"iss":"https://evil.example"`, 1) + `,"exp":1893459600`), testNow, ErrWrongIssuer},
		{"no aud", hubKeys(), raw(strings.Replace(okBody, `"aud":"p2pcast",`, ``, 1) + `,"exp":1893459600`), testNow, ErrWrongAudience},
		{"wrong aud", hubKeys(), raw(strings.Replace(okBody, `"aud":"p2pcast"`, `"aud":"billing"`, 1) + `,"exp":1893459600`), testNow, ErrWrongAudience},
		{"aud object", hubKeys(), raw(strings.Replace(okBody, `"aud":"p2pcast"`, `"aud":{"p2pcast":1}`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"no jti", hubKeys(), raw(strings.Replace(okBody, `"jti":"t",`, ``, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"number jti", hubKeys(), raw(strings.Replace(okBody, `"jti":"t"`, `"jti":7`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"no devices", hubKeys(), raw(strings.Replace(okBody, `["cam1"]`, `[]`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"null devices", hubKeys(), raw(strings.Replace(okBody, `["cam1"]`, `null`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"string devices", hubKeys(), raw(strings.Replace(okBody, `["cam1"]`, `"cam1"`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"null device", hubKeys(), raw(strings.Replace(okBody, `["cam1"]`, `[null]`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"bad device", hubKeys(), raw(strings.Replace(okBody, `["cam1"]`, `["../etc"]`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"no grants", hubKeys(), raw(strings.Replace(okBody, `["view"]`, `[]`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"unknown grant", hubKeys(), raw(strings.Replace(okBody, `["view"]`, `["root"]`, 1) + `,"exp":1893459600`), testNow, ErrMalformed},
		{"trailing data", hubKeys(), raw(okBody + `,"exp":1893459600}{`), testNow, ErrMalformed},
		{"array claims", hubKeys(), signRaw(hubPriv(), stdHeader(), `[]`), testNow, ErrMalformed},
		{"empty claims", hubKeys(), signRaw(hubPriv(), stdHeader(), ``), testNow, ErrMalformed},
		{"invalid UTF-8 claims", hubKeys(), signRaw(hubPriv(), stdHeader(), "{\"sub\":\"\xff\","+okBody+`,"exp":1893459600}`), testNow, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.keys, tt.token, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				if len(c.Devices) == 0 || len(c.Grants) == 0 || c.Issuer != LocalIssuer || c.KeyID != kid {
					t.Fatalf("accepted without devices or grants: %+v", c)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c.ID != "" || c.Devices != nil {
				t.Fatalf("claims returned with error: %+v", c)
			}
			if strings.Contains(err.Error(), parts[2]) {
				t.Fatalf("error quotes the token: %v", err)
			}
		})
	}
	if !strings.Contains(ErrLegacyToken.Error(), "p2pcast token") {
		t.Errorf("the legacy token message does not say what to do: %v", ErrLegacyToken)
	}
}

// TestVerifyIssuers: the key that verifies decides the issuer the token must
// name; a kid is looked up in the sources in order.
func TestVerifyIssuers(t *testing.T) {
	_, extPriv, _ := ed25519.GenerateKey(nil)
	ext := VerifyKey{KID: "app-1", Issuer: "https://app.example", Public: extPriv.Public().(ed25519.PublicKey)}
	keys := KeySources{hubKeys(), KeySet{ext}}
	extHeader := `{"alg":"EdDSA","kid":"app-1"}`
	body := `"aud":"p2pcast","jti":"t","devices":["cam1"],"grants":["view"],"iat":1893452400,"exp":1893459600`
	extTok := signRaw(extPriv, extHeader, `{"iss":"https://app.example",`+body+`}`)
	if c, err := Verify(keys, extTok, testNow); err != nil || c.Issuer != "https://app.example" || c.KeyID != "app-1" {
		t.Fatalf("external token: %+v, %v", c, err)
	}
	if c, err := Verify(keys, mustMint(t, testClaims()), testNow); err != nil || c.Issuer != LocalIssuer {
		t.Fatalf("own token: %+v, %v", c, err)
	}
	// The external issuer's key cannot sign for p2pcast, nor the hub's for it.
	if _, err := Verify(keys, signRaw(extPriv, extHeader, `{"iss":"p2pcast",`+body+`}`), testNow); !errors.Is(err, ErrWrongIssuer) {
		t.Fatalf("external key as p2pcast: %v", err)
	}
	if _, err := Verify(keys, signRaw(hubPriv(), stdHeader(), `{"iss":"https://app.example",`+body+`}`), testNow); !errors.Is(err, ErrWrongIssuer) {
		t.Fatalf("hub key as the external issuer: %v", err)
	}
	// An external key under the hub's kid is never tried: the hub's key is.
	collide := KeySources{hubKeys(), KeySet{{KID: hubKey().KID, Issuer: ext.Issuer, Public: ext.Public}}}
	if _, err := Verify(collide, signRaw(extPriv, stdHeader(), `{"iss":"https://app.example",`+body+`}`), testNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("external key under the hub's kid: %v", err)
	}
	// A failing source does not hide another's key.
	if _, err := Verify(KeySources{failing{}, hubKeys()}, mustMint(t, testClaims()), testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(KeySources{failing{}}, mustMint(t, testClaims()), testNow); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("failing source: %v", err)
	}
	if _, err := Verify(KeySources{hubKeys(), KeySet{ext}}, signRaw(extPriv, `{"alg":"EdDSA","kid":"nope"}`, `{}`), testNow); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid: %v", err)
	}
}

type failing struct{}

func (failing) TokenKeys(string) ([]VerifyKey, error) { return nil, errors.New("key file unreadable") }

// setPaddingBit sets the lowest unused bit of unpadded base64url s, which a
// lenient decoder ignores: same bytes, different text.
func setPaddingBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(s)%4 == 0 {
		panic("no padding bits")
	}
	v := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[v|1])
}

func TestAllows(t *testing.T) {
	c := testClaims() // cam1, cam2; view, talk
	all := testClaims()
	all.Devices = []string{AllDevices}
	all.Grants = []Grant{GrantView}
	tests := []struct {
		c      Claims
		device string
		g      Grant
		want   bool
	}{
		{c, "cam1", GrantView, true},
		{c, "cam2", GrantTalk, true},
		{c, "cam3", GrantView, false},    // another device
		{c, "cam1", GrantControl, false}, // grant not given
		{c, "cam1", GrantFiles, false},
		{c, "CAM1", GrantView, false}, // IDs are case-sensitive
		{c, "", GrantView, false},
		{c, "*", GrantView, false},
		{c, "cam1", "", false},
		{all, "anything", GrantView, true},
		{all, "anything", GrantTalk, false},
		{all, "*", GrantView, false}, // "*" is not a device
		{all, "bad id", GrantView, false},
		{Claims{}, "cam1", GrantView, false},
	}
	for _, tt := range tests {
		if got := tt.c.Allows(tt.device, tt.g); got != tt.want {
			t.Errorf("%v.Allows(%q, %q) = %v, want %v", tt.c.Devices, tt.device, tt.g, got, tt.want)
		}
	}
	devs := []string{"cam0", "cam1", "cam2", "cam3"}
	if got := c.VisibleDevices(devs); !slices.Equal(got, []string{"cam1", "cam2"}) {
		t.Errorf("VisibleDevices = %v", got)
	}
	if got := all.VisibleDevices(devs); !slices.Equal(got, devs) {
		t.Errorf("VisibleDevices(*) = %v", got)
	}
	if got := (Claims{}).VisibleDevices(devs); got == nil || len(got) != 0 {
		t.Errorf("VisibleDevices of nothing = %#v, want empty", got)
	}
}

func TestParseGrants(t *testing.T) {
	tests := []struct {
		in   string
		want []Grant
	}{
		{"view", []Grant{GrantView}},
		{"view,control", []Grant{GrantView, GrantControl}},
		{" view , talk,files ", []Grant{GrantView, GrantTalk, GrantFiles}},
		{"view,view", []Grant{GrantView}},
		{"", nil},
		{"view,", nil},
		{",view", nil},
		{"View", nil},
		{"view;talk", nil},
		{"admin", nil},
		{"*", nil},
	}
	for _, tt := range tests {
		got, err := ParseGrants(tt.in)
		if tt.want == nil {
			if !errors.Is(err, ErrUnknownGrant) {
				t.Errorf("ParseGrants(%q) = %v, %v; want ErrUnknownGrant", tt.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseGrants(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
