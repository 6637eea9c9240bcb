package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// FuzzVerify feeds Verify both the input as a token and the input as a
// payload signed with the test hub key, so the fuzzer reaches the JSON
// checks behind the signature. Verify must never panic, must fail only
// with the documented errors, and whatever it accepts must verify again
// identically and be exactly the token Mint makes from its claims.
func FuzzVerify(f *testing.F) {
	f.Add(mustMint(f, testClaims()))
	f.Add(`{"jti":"t","dev":["cam1"],"grt":["view"],"iat":1893452400,"exp":1893459600}`)
	f.Add(`{"jti":"t","sub":"x","dev":["*"],"grt":["view","files"],"iat":1893452400,"nbf":1893456000,"exp":1893459600}`)
	f.Add("p2pt1..")
	f.Add("p2pt1.e30.")
	key, pub := hubKey(), hubPub()
	f.Fuzz(func(t *testing.T, in string) {
		check := func(token string) {
			c, err := Verify(pub, token, testNow)
			if err != nil {
				if !isDocumented(err) {
					t.Fatalf("undocumented error %v", err)
				}
				return
			}
			c2, err := Verify(pub, token, testNow)
			if err != nil || !reflect.DeepEqual(c, c2) {
				t.Fatalf("second Verify differs: %+v vs %+v, %v", c, c2, err)
			}
			again, err := Mint(key, c)
			if err != nil {
				t.Fatalf("accepted claims do not mint: %v", err)
			}
			if again != token {
				t.Fatalf("accepted token is not what Mint makes:\n got %q\nmint %q", token, again)
			}
			if len(c.Devices) == 0 || len(c.Grants) == 0 || !testNow.Before(c.Expires) {
				t.Fatalf("accepted claims break the rules: %+v", c)
			}
		}
		check(in)
		signed := TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(in))
		check(signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed))))
	})
}

func isDocumented(err error) bool {
	for _, e := range []error{ErrTooLong, ErrMalformed, ErrBadSignature, ErrNotYetValid, ErrExpired} {
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
