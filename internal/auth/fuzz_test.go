package auth

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// FuzzVerify feeds Verify the input as a token, as a claim set signed with
// the test hub key under the standard header, and as a header over a good
// claim set, so the fuzzer reaches the checks behind the signature. Verify
// must never panic, must fail only with the documented errors, and whatever
// it accepts must verify again identically, follow the claim rules, and mint
// again into a token with the same claims.
func FuzzVerify(f *testing.F) {
	f.Add(mustMint(f, testClaims()))
	f.Add(`{"iss":"p2pcast","aud":"p2pcast","jti":"t","devices":["cam1"],"grants":["view"],"iat":1893452400,"exp":1893459600}`)
	f.Add(`{"iss":"p2pcast","aud":["x","p2pcast"],"jti":"t","sub":"x","devices":["*"],"grants":["view","files"],"nbf":1893456000,"exp":1893459600.5}`)
	f.Add(`{"alg":"EdDSA","typ":"JWT","kid":"` + hubKey().KID + `"}`)
	f.Add(`{"alg":"HS256","kid":"` + hubKey().KID + `","crit":["b64"]}`)
	f.Add("eyJ..")
	f.Add("p2pt1.e30.")
	key, keys := hubKey(), hubKeys()
	goodClaims := `{"iss":"p2pcast","aud":"p2pcast","jti":"t","devices":["cam1"],"grants":["view"],"iat":1893452400,"exp":1893459600}`
	f.Fuzz(func(t *testing.T, in string) {
		check := func(token string) {
			c, err := Verify(keys, token, testNow)
			if err != nil {
				if !isDocumented(err) {
					t.Fatalf("undocumented error %v", err)
				}
				return
			}
			c2, err := Verify(keys, token, testNow)
			if err != nil || !reflect.DeepEqual(c, c2) {
				t.Fatalf("second Verify differs: %+v vs %+v, %v", c, c2, err)
			}
			if len(c.Devices) == 0 || len(c.Grants) == 0 || !testNow.Before(c.Expires) || c.Issuer != LocalIssuer || c.KeyID != key.KID ||
				!validTokenID(c.ID) || c.Expires.Sub(testNow) > MaxLifetime {
				t.Fatalf("accepted claims break the rules: %+v", c)
			}
			if c.IssuedAt.IsZero() {
				return // Mint sets iat: not the same claims
			}
			again, err := Mint(key, c)
			if err != nil {
				t.Fatalf("accepted claims do not mint: %v", err)
			}
			c3, err := Verify(keys, again, testNow)
			if err != nil || !reflect.DeepEqual(c, c3) {
				t.Fatalf("re-minted token differs: %+v vs %+v, %v", c, c3, err)
			}
		}
		check(in)
		check(signRaw(key.Private, stdHeader(), in))
		check(signRaw(key.Private, in, goodClaims))
	})
}

func isDocumented(err error) bool {
	for _, e := range []error{ErrTooLong, ErrLegacyToken, ErrMalformed, ErrUnknownKey, ErrBadSignature, ErrWrongIssuer, ErrWrongAudience, ErrNotYetValid, ErrExpired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// FuzzParseDeviceKey: never panics; what parses round-trips through
// Secret, signs, and never prints.
func FuzzParseDeviceKey(f *testing.F) {
	f.Add(fixedDeviceKey(f).Secret())
	f.Add(DeviceKeyPrefix)
	f.Add(DeviceKeyPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseDeviceKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadDeviceKey) || !k.IsZero() {
				t.Fatalf("err %v, key zero %v", err, k.IsZero())
			}
			return
		}
		if k.Secret() != s {
			t.Fatalf("Secret() %q != input %q", k.Secret(), s)
		}
		if out := fmt.Sprintf("%v%+v%#v%s%x", k, k, k, k, k); out != redacted+redacted+redacted+redacted+redacted {
			t.Fatalf("printed %q", out)
		}
		var c Challenge
		if err := VerifyChallenge(k.Public(), "cam1", "ws://hub:80", c, SignChallenge(k, "cam1", "ws://hub:80", c)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCanonicalHubURL: whatever it accepts is canonical (a fixed point), names ws or wss with a
// port, and holds no NUL (it is one field of the signed challenge message).
func FuzzCanonicalHubURL(f *testing.F) {
	for _, s := range []string{"wss://Hub.example.com/device", "ws://127.0.0.1:8443", "ws://[::1]:80/x?y#z",
		"https://h", "ws://u:p@h", "ws://h:99999", "ws://%00", "ws:///"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := CanonicalHubURL(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		again, err := CanonicalHubURL(c)
		if err != nil || again != c {
			t.Fatalf("%q → %q → %q, %v: not a fixed point", in, c, again, err)
		}
		if strings.IndexByte(c, 0) >= 0 || !(strings.HasPrefix(c, "ws://") || strings.HasPrefix(c, "wss://")) {
			t.Fatalf("%q → %q", in, c)
		}
	})
}

// FuzzSessionClaims: claims from the wire (the hub's session envelope) either give an Access
// that holds only known grants and ends within MaxLifetime, or a documented error.
func FuzzSessionClaims(f *testing.F) {
	f.Add(`{"jti":"abc","grt":["view","talk"],"ttl_ms":60000}`)
	f.Add(`{"jti":"","grt":[],"ttl_ms":0}`)
	f.Add(`{"jti":"a","grt":["view","view","view","view","view"],"ttl_ms":1}`)
	f.Add(`{"jti":"a","grt":["root"],"ttl_ms":-5}`)
	f.Fuzz(func(t *testing.T, in string) {
		var c SessionClaims
		if json.Unmarshal([]byte(in), &c) != nil {
			return
		}
		a, err := c.Access(testNow)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrExpired) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		for _, g := range a.Grants {
			if !g.Valid() {
				t.Fatalf("unknown grant %q accepted", g)
			}
		}
		if !a.Deadline.After(testNow) || a.Deadline.Sub(testNow) > MaxLifetime || a.TokenID == "" {
			t.Fatalf("access %+v from %s", a, in)
		}
	})
}

// FuzzParseTokenKey: accepted keys are 32 bytes and print back as the input (trimmed).
func FuzzParseTokenKey(f *testing.F) {
	f.Add(FormatTokenKey(hubPub()))
	f.Add("p2pv1_")
	f.Add("p2pv1_" + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseTokenKey(in)
		if err != nil {
			return
		}
		if len(k) != ed25519.PublicKeySize || FormatTokenKey(k) != strings.TrimSpace(in) {
			t.Fatalf("%q → %x", in, k)
		}
	})
}

// FuzzParseJWKS: a JWK Set (a file, an issuer's response) either gives Ed25519 keys with
// kids, distinct, that the set p2pcast writes for them gives back, or a documented error.
func FuzzParseJWKS(f *testing.F) {
	f.Add(string(hubKeys().JWKS()))
	f.Add(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a","d":"x"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a","use":"sig"}]}`)
	f.Add(`{"keys":[{"kty":"OKP","kty":"RSA"}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		ks, err := ParseJWKS([]byte(in), "iss")
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if len(ks) == 0 {
			t.Fatal("no keys and no error")
		}
		seen := map[string]bool{}
		for _, k := range ks {
			if len(k.Public) != ed25519.PublicKeySize || !validKeyID(k.KID) || seen[k.KID] || k.Issuer != "iss" {
				t.Fatalf("key %+v", k)
			}
			seen[k.KID] = true
		}
		again, err := ParseJWKS(ks.JWKS(), "iss")
		if err != nil || !reflect.DeepEqual(again, ks) {
			t.Fatalf("round trip: %+v vs %+v, %v", again, ks, err)
		}
	})
}
