package auth

import (
	"bytes"
	"crypto/ed25519"
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

func hubKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(hubSeed) }

func hubPub() ed25519.PublicKey { return hubKey().Public().(ed25519.PublicKey) }

// signRaw makes a token around an arbitrary payload, to test what Verify
// does with JSON that Mint would never produce.
func signRaw(key ed25519.PrivateKey, js string) string {
	signed := TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(js))
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
}

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
	if !strings.HasPrefix(tok, TokenPrefix) || strings.Count(tok, ".") != 2 {
		t.Fatalf("token %q has the wrong shape", tok)
	}
	got, err := Verify(hubPub(), tok, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := c
	want.IssuedAt, want.NotBefore, want.Expires = want.IssuedAt.UTC(), want.NotBefore.UTC(), want.Expires.Truncate(time.Second).UTC()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claims\n got %+v\nwant %+v", got, want)
	}
	// Minting the verified claims again gives the same token: one encoding.
	if again := mustMint(t, got); again != tok {
		t.Fatalf("re-minted token differs")
	}
}

func TestMintDefaults(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	c := Claims{Devices: []string{"*"}, Grants: []Grant{GrantView}, Expires: time.Now().Add(time.Hour)}
	tok1, tok2 := mustMint(t, c), mustMint(t, c)
	got, err := Verify(hubPub(), tok1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ID) < 16 || got.IssuedAt.Before(before) || got.IssuedAt.After(time.Now()) || !got.NotBefore.IsZero() {
		t.Fatalf("defaults: %+v", got)
	}
	got2, _ := Verify(hubPub(), tok2, time.Now())
	if got.ID == got2.ID {
		t.Fatal("two tokens share a random ID")
	}
}

func TestMintRejects(t *testing.T) {
	long := testClaims()
	for i := range 300 {
		long.Devices = append(long.Devices, fmt.Sprintf("camera-number-%03d", i))
	}
	tests := []struct {
		name   string
		key    ed25519.PrivateKey
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
		{"short key", hubKey()[:32], func(*Claims) {}, nil},
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

func TestVerifyRejects(t *testing.T) {
	good := mustMint(t, testClaims())
	parts := strings.Split(good, ".")
	otherPub, other, _ := ed25519.GenerateKey(nil)

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	const okBody = `"dev":["cam1"],"grt":["view"],"iat":1893452400`
	raw := func(body string) string { return signRaw(hubKey(), `{"jti":"t"`+body+`}`) }

	tests := []struct {
		name  string
		pub   ed25519.PublicKey
		token string
		now   time.Time
		want  error
	}{
		{"ok", hubPub(), good, testNow, nil},
		{"ok raw", hubPub(), raw(`,` + okBody + `,"exp":1893459600`), testNow, nil},
		{"tampered payload", hubPub(), parts[0] + "." + flip(parts[1], 10) + "." + parts[2], testNow, ErrBadSignature},
		{"tampered signature", hubPub(), parts[0] + "." + parts[1] + "." + flip(parts[2], 10), testNow, ErrBadSignature},
		{"wrong key", otherPub, good, testNow, ErrBadSignature},
		{"short key", hubPub()[:16], good, testNow, ErrBadSignature},
		{"signed by other key", hubPub(), func() string { tok, _ := Mint(other, testClaims()); return tok }(), testNow, ErrBadSignature},
		{"other prefix", hubPub(), "p2pt2." + parts[1] + "." + parts[2], testNow, ErrMalformed},
		{"upper prefix", hubPub(), "P2PT1." + parts[1] + "." + parts[2], testNow, ErrMalformed},
		{"no prefix", hubPub(), parts[1] + "." + parts[2], testNow, ErrMalformed},
		{"empty", hubPub(), "", testNow, ErrMalformed},
		{"two parts", hubPub(), parts[0] + "." + parts[1], testNow, ErrMalformed},
		{"four parts", hubPub(), good + ".x", testNow, ErrMalformed},
		{"trailing dot", hubPub(), good + ".", testNow, ErrMalformed},
		{"padded payload", hubPub(), parts[0] + "." + parts[1] + "==." + parts[2], testNow, ErrMalformed},
		{"newline in payload", hubPub(), parts[0] + "." + parts[1][:5] + "\n" + parts[1][5:] + "." + parts[2], testNow, ErrMalformed},
		{"std base64 sig", hubPub(), parts[0] + "." + parts[1] + "." + base64.StdEncoding.EncodeToString([]byte(parts[2])), testNow, ErrMalformed},
		{"short sig", hubPub(), parts[0] + "." + parts[1] + "." + parts[2][:40], testNow, ErrMalformed},
		{"noncanonical sig bits", hubPub(), parts[0] + "." + parts[1] + "." + setPaddingBit(parts[2]), testNow, ErrMalformed},
		{"noncanonical payload bits", hubPub(), signRaw(hubKey(), "ab")[:len(TokenPrefix)+2] + "J." + parts[2], testNow, ErrMalformed}, // "YWI" is "ab"
		{"too long", hubPub(), good + strings.Repeat("A", MaxTokenLen), testNow, ErrTooLong},
		{"too long garbage", hubPub(), strings.Repeat("x", MaxTokenLen+1), testNow, ErrTooLong},
		{"expired", hubPub(), good, testNow.Add(time.Hour), ErrExpired},
		{"expired long ago", hubPub(), good, testNow.Add(1000 * time.Hour), ErrExpired},
		{"last second", hubPub(), good, testNow.Add(time.Hour - time.Nanosecond), nil},
		{"issued in future", hubPub(), good, testNow.Add(-time.Hour - ClockSkew - time.Second), ErrNotYetValid},
		{"issued within skew", hubPub(), good, testNow.Add(-time.Hour - ClockSkew), nil},
		{"nbf in future", hubPub(), raw(`,` + okBody + `,"nbf":1893456100,"exp":1893459600`), testNow, ErrNotYetValid},
		{"nbf within skew", hubPub(), raw(`,` + okBody + `,"nbf":1893456030,"exp":1893459600`), testNow, nil},
		{"unknown field", hubPub(), raw(`,` + okBody + `,"exp":1893459600,"adm":true`), testNow, ErrMalformed},
		{"missing exp", hubPub(), raw(`,` + okBody), testNow, ErrMalformed},
		{"zero exp", hubPub(), raw(`,` + okBody + `,"exp":0`), testNow, ErrMalformed},
		{"float exp", hubPub(), raw(`,` + okBody + `,"exp":1.8934596e9`), testNow, ErrMalformed},
		{"string exp", hubPub(), raw(`,` + okBody + `,"exp":"1893459600"`), testNow, ErrMalformed},
		{"lifetime over 30d", hubPub(), raw(`,` + okBody + `,"exp":1896044401`), testNow, ErrMalformed},
		{"lifetime 30d", hubPub(), raw(`,` + okBody + `,"exp":1896044400`), testNow, nil},
		{"overflowing lifetime", hubPub(), raw(`,"dev":["cam1"],"grt":["view"],"iat":-9223372036854775807,"exp":9223372036854775807`), testNow, ErrMalformed},
		{"negative nbf", hubPub(), raw(`,` + okBody + `,"nbf":-1,"exp":1893459600`), testNow, ErrMalformed},
		{"no devices", hubPub(), raw(`,"dev":[],"grt":["view"],"iat":1893452400,"exp":1893459600`), testNow, ErrMalformed},
		{"null devices", hubPub(), raw(`,"dev":null,"grt":["view"],"iat":1893452400,"exp":1893459600`), testNow, ErrMalformed},
		{"no grants", hubPub(), raw(`,"dev":["cam1"],"grt":[],"iat":1893452400,"exp":1893459600`), testNow, ErrMalformed},
		{"unknown grant", hubPub(), raw(`,"dev":["cam1"],"grt":["root"],"iat":1893452400,"exp":1893459600`), testNow, ErrMalformed},
		{"bad device", hubPub(), raw(`,"dev":["../etc"],"grt":["view"],"iat":1893452400,"exp":1893459600`), testNow, ErrMalformed},
		{"empty id", hubPub(), signRaw(hubKey(), `{"jti":"",`+okBody+`,"exp":1893459600}`), testNow, ErrMalformed},
		{"reordered", hubPub(), signRaw(hubKey(), `{"dev":["cam1"],"jti":"t","grt":["view"],"iat":1893452400,"exp":1893459600}`), testNow, ErrMalformed},
		{"whitespace", hubPub(), signRaw(hubKey(), `{"jti": "t",`+okBody+`,"exp":1893459600}`), testNow, ErrMalformed},
		{"duplicate key", hubPub(), raw(`,` + okBody + `,"exp":1893459600,"exp":1893459600`), testNow, ErrMalformed},
		{"case folded key", hubPub(), raw(`,` + okBody + `,"EXP":1893459600`), testNow, ErrMalformed},
		{"escaped string", hubPub(), signRaw(hubKey(), `{"jti":"\u0074",`+okBody+`,"exp":1893459600}`), testNow, ErrMalformed},
		{"trailing data", hubPub(), signRaw(hubKey(), `{"jti":"t",`+okBody+`,"exp":1893459600}{}`), testNow, ErrMalformed},
		{"trailing space", hubPub(), signRaw(hubKey(), `{"jti":"t",`+okBody+`,"exp":1893459600} `), testNow, ErrMalformed},
		{"array payload", hubPub(), signRaw(hubKey(), `[]`), testNow, ErrMalformed},
		{"empty payload", hubPub(), signRaw(hubKey(), ``), testNow, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.pub, tt.token, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				if len(c.Devices) == 0 || len(c.Grants) == 0 {
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
}

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
