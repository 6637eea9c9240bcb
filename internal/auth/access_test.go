package auth

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAccess(t *testing.T) {
	deadline := testNow.Add(time.Minute)
	a := Access{TokenID: "tok1", Grants: []Grant{GrantView, GrantTalk}, Deadline: deadline}

	for _, g := range AllGrants {
		if want := g == GrantView || g == GrantTalk; a.Has(g) != want {
			t.Errorf("Has(%s) = %v", g, !want)
		}
		if !FullAccess().Has(g) {
			t.Errorf("FullAccess lacks %s", g)
		}
		if (Access{}).Has(g) {
			t.Errorf("the zero Access has %s", g)
		}
	}
	if !FullAccess().Deadline.IsZero() || FullAccess().TokenID != "" {
		t.Errorf("FullAccess %+v, want no deadline and no token", FullAccess())
	}

	for _, tc := range []struct {
		name      string
		a         Access
		now       time.Time
		limit     time.Duration
		expired   bool
		remaining time.Duration
	}{
		{"well before", a, testNow, time.Hour, false, time.Minute},
		{"limit is sooner", a, testNow, time.Second, false, time.Second},
		{"just before", a, deadline.Add(-time.Nanosecond), time.Hour, false, time.Nanosecond},
		{"at the deadline", a, deadline, time.Hour, true, 0},
		{"after it", a, deadline.Add(time.Hour), time.Hour, true, 0},
		{"no deadline", Access{Grants: a.Grants}, testNow.Add(100 * 365 * 24 * time.Hour), time.Hour, false, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Expired(tc.now); got != tc.expired {
				t.Errorf("Expired = %v", got)
			}
			if got := tc.a.Remaining(tc.now, tc.limit); got != tc.remaining {
				t.Errorf("Remaining = %v, want %v", got, tc.remaining)
			}
		})
	}
}

func TestSessionClaimsAccess(t *testing.T) {
	view := []Grant{GrantView}
	ok := SessionClaims{TokenID: "tok1", Grants: []Grant{GrantView, GrantTalk}, TTLms: 90_000}
	a, err := ok.Access(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if a.TokenID != "tok1" || !slices.Equal(a.Grants, ok.Grants) || !a.Deadline.Equal(testNow.Add(90*time.Second)) {
		t.Fatalf("access %+v", a)
	}
	ok.Grants[0] = GrantFiles // the access holds its own copy
	if !a.Has(GrantView) {
		t.Fatal("the access shares the claims' grants")
	}

	for _, tc := range []struct {
		name string
		c    SessionClaims
		want error
	}{
		{"longest lifetime", SessionClaims{TokenID: "tok1", Grants: view, TTLms: MaxLifetime.Milliseconds()}, nil},
		{"every grant", SessionClaims{TokenID: strings.Repeat("a", 64), Grants: AllGrants, TTLms: 1}, nil},
		{"unknown grant", SessionClaims{TokenID: "tok1", Grants: []Grant{GrantView, "admin"}, TTLms: 1000}, ErrMalformed},
		{"empty grant", SessionClaims{TokenID: "tok1", Grants: []Grant{""}, TTLms: 1000}, ErrMalformed},
		{"no grants", SessionClaims{TokenID: "tok1", TTLms: 1000}, ErrMalformed},
		{"more grants than exist", SessionClaims{TokenID: "tok1", Grants: append(slices.Clone(AllGrants), GrantView), TTLms: 1000}, ErrMalformed},
		{"no token id", SessionClaims{Grants: view, TTLms: 1000}, ErrMalformed},
		{"token id too long", SessionClaims{TokenID: strings.Repeat("a", 65), Grants: view, TTLms: 1000}, ErrMalformed},
		{"token id with a dot", SessionClaims{TokenID: "tok.1", Grants: view, TTLms: 1000}, ErrMalformed},
		{"token id with a NUL", SessionClaims{TokenID: "tok\x00", Grants: view, TTLms: 1000}, ErrMalformed},
		{"token id not ASCII", SessionClaims{TokenID: "tök", Grants: view, TTLms: 1000}, ErrMalformed},
		{"ttl 0", SessionClaims{TokenID: "tok1", Grants: view, TTLms: 0}, ErrExpired},
		{"negative ttl", SessionClaims{TokenID: "tok1", Grants: view, TTLms: -1}, ErrExpired},
		{"ttl over MaxLifetime", SessionClaims{TokenID: "tok1", Grants: view, TTLms: MaxLifetime.Milliseconds() + 1}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.c.Access(testNow)
			if !errors.Is(err, tc.want) || (tc.want != nil) != (err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && !a.Deadline.Equal(testNow.Add(time.Duration(tc.c.TTLms)*time.Millisecond)) {
				t.Fatalf("deadline %v", a.Deadline)
			}
		})
	}

	// What the hub sends for a token gives the device the token's own expiry back.
	c := testClaims()
	a, err = ClaimsFor(c, testNow).Access(testNow)
	if err != nil || !a.Deadline.Equal(c.Expires) || a.TokenID != c.ID || !slices.Equal(a.Grants, c.Grants) {
		t.Fatalf("ClaimsFor round trip: %+v, %v", a, err)
	}
	// A token past its expiry gives claims the device refuses.
	if _, err := ClaimsFor(c, c.Expires.Add(time.Second)).Access(testNow); !errors.Is(err, ErrExpired) {
		t.Fatalf("claims of an expired token: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	lanKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x09}, ed25519.SeedSize))
	lanPub := lanKey.Public().(ed25519.PublicKey)
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x0b}, ed25519.SeedSize))
	mint := func(key ed25519.PrivateKey, edit func(*Claims)) string {
		c := testClaims() // tok1: cam1, cam2; view, talk; expires testNow+1h
		if edit != nil {
			edit(&c)
		}
		tok, err := Mint(SigningKey{KID: Thumbprint(key.Public().(ed25519.PublicKey)), Private: key}, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v := Verifier{Keys: KeySet{hubKey().Public(), {KID: Thumbprint(lanPub), Issuer: LocalIssuer, Public: lanPub}}, DeviceID: "cam1",
		Revoked: func(id string) bool { return id == "revoked" }}

	for _, tc := range []struct {
		name  string
		v     Verifier
		token string
		want  error
	}{
		{"hub key", v, mint(hubPriv(), nil), nil},
		{"LAN key", v, mint(lanKey, nil), nil},
		{"every device", v, mint(lanKey, func(c *Claims) { c.Devices = []string{AllDevices} }), nil},
		{"no revocation list", Verifier{Keys: v.Keys, DeviceID: "cam1"}, mint(hubPriv(), func(c *Claims) { c.ID = "revoked" }), nil},
		{"another device", v, mint(hubPriv(), func(c *Claims) { c.Devices = []string{"cam9"} }), ErrWrongDevice},
		{"verifier without a device id", Verifier{Keys: v.Keys}, mint(hubPriv(), func(c *Claims) { c.Devices = []string{AllDevices} }), ErrWrongDevice},
		{"revoked", v, mint(lanKey, func(c *Claims) { c.ID = "revoked" }), ErrRevoked},
		// Signed by the second key.
		{"expired", v, mint(lanKey, func(c *Claims) { c.IssuedAt, c.Expires = testNow.Add(-2*time.Hour), testNow }), ErrExpired},
		{"not yet valid", v, mint(hubPriv(), func(c *Claims) { c.NotBefore = testNow.Add(time.Hour); c.Expires = testNow.Add(2 * time.Hour) }), ErrNotYetValid},
		{"forged", v, mint(otherKey, nil), ErrUnknownKey},
		{"forged with the hub's kid", v, func() string {
			tok, _ := Mint(SigningKey{KID: hubKey().KID, Private: otherKey}, testClaims())
			return tok
		}(), ErrBadSignature},
		{"no keys", Verifier{DeviceID: "cam1"}, mint(hubPriv(), nil), ErrUnknownKey},
		{"garbage", v, "xx.yy.zz", ErrMalformed},
		{"legacy", v, "p2pt1.xx.yy", ErrLegacyToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.v.Verify(tc.token, testNow)
			if !errors.Is(err, tc.want) || (tc.want != nil) != (err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if a.Deadline.IsZero() || !a.Deadline.Equal(testClaims().Expires) || !slices.Equal(a.Grants, []Grant{GrantView, GrantTalk}) || a.TokenID == "" {
				t.Fatalf("access %+v", a)
			}
		})
	}

	// The deadline is counted from now: with a monotonic now, on the monotonic clock.
	now := time.Now()
	tok := mint(hubPriv(), func(c *Claims) { c.IssuedAt, c.Expires = now, now.Add(time.Hour) })
	a, err := v.Verify(tok, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.Deadline.String(), " m=") {
		t.Fatalf("deadline %v has no monotonic reading", a.Deadline)
	}
}

func TestTokenKey(t *testing.T) {
	pub := hubPub()
	s := FormatTokenKey(pub)
	if !strings.HasPrefix(s, TokenKeyPrefix) || len(s) != len(TokenKeyPrefix)+43 {
		t.Fatalf("FormatTokenKey = %q", s)
	}
	for _, in := range []string{s, " " + s + "\n"} { // as pasted from a file
		got, err := ParseTokenKey(in)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParseTokenKey(%q) = %x, %v", in, got, err)
		}
	}
	body := strings.TrimPrefix(s, TokenKeyPrefix)
	for name, in := range map[string]string{
		"empty":          "",
		"prefix only":    TokenKeyPrefix,
		"no prefix":      body,
		"other prefix":   "p2pv2_" + body,
		"device key":     DeviceKeyPrefix + body,
		"short":          TokenKeyPrefix + body[:42],
		"31 bytes":       FormatTokenKey(pub[:31]),
		"33 bytes":       FormatTokenKey(append(slices.Clone(pub), 0)),
		"padded":         s + "=",
		"std alphabet":   TokenKeyPrefix + strings.NewReplacer("-", "+", "_", "/").Replace(body) + "+",
		"inner space":    TokenKeyPrefix + body[:20] + " " + body[20:],
		"padding bit":    TokenKeyPrefix + setPaddingBit(body),
		"two keys":       s + s,
		"private key":    FormatTokenKey(ed25519.PublicKey(hubPriv())),
		"NUL in the key": s[:10] + "\x00" + s[11:],
	} {
		if _, err := ParseTokenKey(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseTokenKey(%q) = %v, want ErrMalformed", name, in, err)
		}
	}
}
