package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

const testTURNSecret = "north-wind-secret-0123456789"

func TestTURNCredential(t *testing.T) {
	user, pass := TURNCredential([]byte(testTURNSecret), "alice", time.Hour, testNow.Add(time.Second/2))
	if user != "1893459600:alice" {
		t.Fatalf("username = %q", user)
	}
	// Hand-checked with:
	//   printf %s 1893459600:alice | openssl dgst -sha1 -hmac north-wind-secret-0123456789 -binary | base64
	if pass != "2HnrmBRO9dojyd4jii6Jkd+Cyuk=" {
		t.Fatalf("password = %q", pass)
	}
	if u, _ := TURNCredential([]byte(testTURNSecret), "", time.Hour, testNow); u != "1893459600" {
		t.Fatalf("unnamed username = %q", u)
	}
}

// TestTURNMatchesOpenSSL recomputes credentials with openssl, a separate
// HMAC-SHA1 implementation, the way coturn documents checking them.
func TestTURNMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	for _, name := range []string{"alice", "viewer:with:colons", "ünï"} {
		for _, secret := range []string{testTURNSecret, "c2hvcnQ=but-long-enough"} {
			user, pass := TURNCredential([]byte(secret), name, 10*time.Minute, testNow)
			cmd := exec.Command(openssl, "dgst", "-sha1", "-hmac", secret, "-binary")
			cmd.Stdin = strings.NewReader(user)
			out, err := cmd.Output()
			if err != nil {
				t.Skipf("openssl dgst: %v", err)
			}
			if want := base64.StdEncoding.EncodeToString(out); pass != want {
				t.Errorf("%q: password %q, openssl says %q", user, pass, want)
			}
		}
	}
}

// TestTURNMatchesPion checks against the TURN server the hub embeds: what
// pion/turn generates we verify, and the key our VerifyTURN leads to is
// the key pion's own TURN REST handler derives.
func TestTURNMatchesPion(t *testing.T) {
	user, pass, err := turn.GenerateLongTermTURNRESTCredentials(testTURNSecret, "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyTURN([]byte(testTURNSecret), user, time.Now())
	if err != nil || got != pass {
		t.Fatalf("VerifyTURN(pion credential) = %q, %v; want %q", got, err, pass)
	}
	ourUser, ourPass := TURNCredential([]byte(testTURNSecret), "carol", time.Hour, time.Now())
	_, key, ok := turn.LongTermTURNRESTAuthHandler(testTURNSecret, nil)(&turn.RequestAttributes{Username: ourUser, Realm: "p2pcast"})
	if !ok || !bytes.Equal(key, turn.GenerateAuthKey(ourUser, "p2pcast", ourPass)) {
		t.Fatal("pion derives a different key for our credential")
	}
}

func TestVerifyTURN(t *testing.T) {
	secret := []byte(testTURNSecret)
	user, pass := TURNCredential(secret, "alice", time.Hour, testNow)
	exp := testNow.Add(time.Hour)
	tests := []struct {
		name   string
		secret []byte
		user   string
		now    time.Time
		want   error
	}{
		{"ok", secret, user, testNow, nil},
		{"expiry second", secret, user, exp.Add(999 * time.Millisecond), nil},
		{"expired", secret, user, exp.Add(time.Second), ErrExpired},
		{"bare timestamp", secret, "1893459600", testNow, nil},
		{"empty name", secret, "1893459600:", testNow, nil},
		{"empty", secret, "", testNow, ErrMalformed},
		{"no timestamp", secret, ":alice", testNow, ErrMalformed},
		{"name first", secret, "alice:1893459600", testNow, ErrMalformed},
		{"negative", secret, "-1893459600:alice", testNow, ErrMalformed},
		{"plus sign", secret, "+1893459600:alice", testNow, ErrMalformed},
		{"space", secret, " 1893459600:alice", testNow, ErrMalformed},
		{"hex", secret, "0x70DC5A50:alice", testNow, ErrMalformed},
		{"overflow", secret, "99999999999999999999:alice", testNow, ErrMalformed},
		{"too long", secret, "1893459600:" + strings.Repeat("a", 503), testNow, ErrMalformed},
		{"longest", secret, "1893459600:" + strings.Repeat("a", 502), testNow, nil},
		{"empty secret", nil, user, testNow, nil}, // plain error, checked below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyTURN(tt.secret, tt.user, tt.now)
			if tt.name == "empty secret" {
				if err == nil {
					t.Fatal("empty secret accepted")
				}
				return
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) || got != "" {
					t.Fatalf("= %q, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, want := TURNCredential(tt.secret, "", 0, time.Now()); tt.user == user && got != pass {
				t.Fatalf("password %q, want %q (%s)", got, pass, want)
			}
		})
	}
	// The password depends on the whole username and on the secret.
	p1, _ := VerifyTURN(secret, "1893459600:alice", testNow)
	p2, _ := VerifyTURN(secret, "1893459600:alicf", testNow)
	p3, _ := VerifyTURN([]byte("another-secret-0123456"), "1893459600:alice", testNow)
	if p1 == p2 || p1 == p3 {
		t.Fatal("password does not depend on name or secret")
	}
	if _, err := strconv.Atoi(strings.SplitN(user, ":", 2)[0]); err != nil {
		t.Fatal(err)
	}
}
