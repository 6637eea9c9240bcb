package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// fixedSeed gives tests a known device key.
var fixedSeed = bytes.Repeat([]byte{0x42}, ed25519.SeedSize)

func fixedDeviceKey(t testing.TB) DeviceKey {
	t.Helper()
	k, err := ParseDeviceKey(DeviceKeyPrefix + base64.RawURLEncoding.EncodeToString(fixedSeed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDeviceKeyRoundTrip(t *testing.T) {
	k, err := GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	s := k.Secret()
	if !strings.HasPrefix(s, DeviceKeyPrefix) || len(s) != len(DeviceKeyPrefix)+43 {
		t.Fatalf("Secret() = %d chars, want %s + 43", len(s), DeviceKeyPrefix)
	}
	k2, err := ParseDeviceKey(s)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Secret() != s || !k2.Public().Equal(k.Public()) {
		t.Fatal("parsed key differs")
	}
	if k.IsZero() || !(DeviceKey{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	if (DeviceKey{}).Secret() != "" || (DeviceKey{}).Public() != nil {
		t.Fatal("zero key should have no secret or public key")
	}
	// The text form is the seed, so the public key is fixed by it.
	fk := fixedDeviceKey(t)
	want := ed25519.NewKeyFromSeed(fixedSeed).Public().(ed25519.PublicKey)
	if !fk.Public().Equal(want) {
		t.Fatal("public key does not match seed")
	}
}

func TestParseDeviceKeyRejects(t *testing.T) {
	good := fixedDeviceKey(t).Secret()
	body := good[len(DeviceKeyPrefix):]
	// Last of 43 characters carries 2 padding bits; 'B' sets one of them.
	nonCanonical := good[:len(good)-1] + "B"
	if good[len(good)-1] == 'B' {
		t.Fatal("test assumes last char is not B")
	}
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"prefix only", DeviceKeyPrefix},
		{"no prefix", body},
		{"wrong prefix", "p2pk2_" + body},
		{"upper prefix", "P2PK1_" + body},
		{"token prefix", "p2pt1." + body},
		{"padded", good + "="},
		{"trailing newline", good + "\n"},
		{"leading space", " " + good},
		{"newline inside", good[:20] + "\n" + good[21:]},
		{"std alphabet +", DeviceKeyPrefix + "+" + body[1:]},
		{"std alphabet /", DeviceKeyPrefix + "/" + body[1:]},
		{"short", good[:len(good)-1]},
		{"long", good + "A"},
		{"noncanonical bits", nonCanonical},
		{"dot", good[:len(good)-1] + "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in == good {
				t.Skip("case did not change the key")
			}
			_, err := ParseDeviceKey(tt.in)
			if !errors.Is(err, ErrBadDeviceKey) {
				t.Fatalf("err = %v, want ErrBadDeviceKey", err)
			}
			if len(tt.in) > 20 && strings.Contains(err.Error(), tt.in[len(DeviceKeyPrefix):]) {
				t.Fatalf("error quotes the key: %v", err)
			}
		})
	}
}

func TestDeviceKeyRedaction(t *testing.T) {
	k := fixedDeviceKey(t)
	secret := k.Secret()
	leaks := []string{
		secret[len(DeviceKeyPrefix):],                // base64url seed
		base64.StdEncoding.EncodeToString(fixedSeed), // std base64 seed
		hex.EncodeToString(fixedSeed),                // %x
		strings.ToUpper(hex.EncodeToString(fixedSeed)),
		"66, 66, 66, 66", // %v of the byte slice
		"66 66 66 66",
		"0x42, 0x42",
		string(fixedSeed), // %s of the raw bytes
	}
	type exported struct {
		Name string
		Key  DeviceKey
	}
	type unexported struct {
		Name string // exported, so json.Marshal has something to write
		key  DeviceKey
	}
	cfgE := exported{"cam", k}
	cfgU := unexported{"cam", k}

	var outs []string
	outs = append(outs,
		fmt.Sprint(k), fmt.Sprintln(k), fmt.Sprint(&k), k.String(), k.GoString(),
		fmt.Sprintf("%v %+v %#v %s %q %x %X %d %T", k, k, k, k, k, k, k, k, k),
		fmt.Sprintf("%v %+v %#v", &k, &k, &k),
		fmt.Sprintf("%v %+v %#v %x", cfgE, cfgE, cfgE, cfgE),
		fmt.Sprintf("%v %+v %#v", cfgU, cfgU, cfgU),
		fmt.Sprintf("%v %+v %#v", &cfgU, []DeviceKey{k}, map[string]DeviceKey{"k": k}),
		fmt.Sprintf("%v", []any{k, &k, cfgU}),
	)
	var buf bytes.Buffer
	for _, h := range []slog.Handler{
		slog.NewJSONHandler(&buf, nil),
		slog.NewTextHandler(&buf, nil),
	} {
		l := slog.New(h)
		l.Info("enrolled", "key", k, "ptr", &k, slog.Any("any", k))
		l.Info("cfg", "exported", cfgE, "unexported", cfgU, "ptr", &cfgU)
		l.With("key", k).WithGroup("g").Info("x", "key", k)
	}
	outs = append(outs, buf.String())
	if js, err := json.Marshal(cfgU); err == nil {
		outs = append(outs, string(js))
	}
	if _, err := json.Marshal(cfgE); err == nil {
		t.Error("json.Marshal of a DeviceKey should fail, not write a placeholder")
	}

	for _, out := range outs {
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("output leaks %q:\n%s", leak, out)
			}
		}
	}
	for _, direct := range []string{fmt.Sprint(k), fmt.Sprintf("%#v", k), fmt.Sprintf("%x", k), fmt.Sprint(&k)} {
		if direct != redacted {
			t.Errorf("got %q, want %q", direct, redacted)
		}
	}
	if !strings.Contains(buf.String(), `"key":"[redacted]"`) || !strings.Contains(buf.String(), `key=[redacted]`) {
		t.Errorf("slog output lacks redaction marker:\n%s", buf.String())
	}
}

func TestChallenge(t *testing.T) {
	k := fixedDeviceKey(t)
	other, err := GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := NewChallenge()
	if c == c2 {
		t.Fatal("two challenges equal")
	}
	sig := SignChallenge(k, "cam1", "ws://hub:80", c)

	// The message is built here independently of challengeMessage.
	want := ed25519.Sign(ed25519.NewKeyFromSeed(fixedSeed), []byte("p2pcast-device-auth-v2\x00cam1\x00ws://hub:80\x00"+string(c[:])))
	if !bytes.Equal(sig, want) {
		t.Fatal("signature is not over the documented message")
	}

	trunc := sig[:len(sig)-1]
	flipped := bytes.Clone(sig)
	flipped[5] ^= 1
	tests := []struct {
		name string
		pub  ed25519.PublicKey
		id   string
		url  string
		c    Challenge
		sig  []byte
		want error
	}{
		{"ok", k.Public(), "cam1", "ws://hub:80", c, sig, nil},
		{"signed for another hub", k.Public(), "cam1", "wss://evil:443", c, sig, ErrBadSignature},
		{"NUL in URL", k.Public(), "cam1", "ws://hub:80\x00", c, sig, ErrBadSignature},
		{"signed for another id", k.Public(), "cam2", "ws://hub:80", c, sig, ErrBadSignature},
		{"id prefix", k.Public(), "cam", "ws://hub:80", c, sig, ErrBadSignature},
		{"other challenge", k.Public(), "cam1", "ws://hub:80", c2, sig, ErrBadSignature},
		{"other key", other.Public(), "cam1", "ws://hub:80", c, sig, ErrBadSignature},
		{"flipped bit", k.Public(), "cam1", "ws://hub:80", c, flipped, ErrBadSignature},
		{"truncated", k.Public(), "cam1", "ws://hub:80", c, trunc, ErrBadSignature},
		{"nil sig", k.Public(), "cam1", "ws://hub:80", c, nil, ErrBadSignature},
		{"short pub", k.Public()[:31], "cam1", "ws://hub:80", c, sig, ErrBadSignature},
		{"nil pub", nil, "cam1", "ws://hub:80", c, sig, ErrBadSignature},
		{"bad id", k.Public(), "cam1\x00", "ws://hub:80", c, sig, ErrBadDeviceID},
		{"empty id", k.Public(), "", "ws://hub:80", c, sig, ErrBadDeviceID},
		{"zero key", k.Public(), "cam1", "ws://hub:80", c, SignChallenge(DeviceKey{}, "cam1", "ws://hub:80", c), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChallenge(tt.pub, tt.id, tt.url, tt.c, tt.sig)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// Another device's key signing with this device's ID must fail too.
	if err := VerifyChallenge(k.Public(), "cam1", "ws://hub:80", c, SignChallenge(other, "cam1", "ws://hub:80", c)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key accepted: %v", err)
	}
}

func TestChallengeText(t *testing.T) {
	c, err := NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Challenge Challenge `json:"challenge"`
	}
	msg.Challenge = c
	js, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"challenge":"` + base64.RawURLEncoding.EncodeToString(c[:]) + `"}`; string(js) != want {
		t.Fatalf("JSON = %s, want %s", js, want)
	}
	msg.Challenge = Challenge{}
	if err := json.Unmarshal(js, &msg); err != nil || msg.Challenge != c {
		t.Fatalf("JSON round trip: %v", err)
	}
	s := c.String()
	for _, bad := range []string{"", s[:42], s + "A", s + "=", base64.StdEncoding.EncodeToString(c[:]), s[:10] + "\n" + s[10:], s[:42] + "."} {
		if _, err := ParseChallenge(bad); !errors.Is(err, ErrBadChallenge) {
			t.Errorf("ParseChallenge(%q) err = %v", bad, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"challenge":"AAAA"}`), &msg); !errors.Is(err, ErrBadChallenge) {
		t.Errorf("short challenge in JSON: %v", err)
	}
}

func TestValidateDeviceID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"cam1", true},
		{"Front-Door_2.cam", true},
		{"0", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"-cam", false},
		{".cam", false},
		{"_cam", false},
		{"cam 1", false},
		{"cam/1", false},
		{"cam:1", false},
		{"*", false},
		{"cam\x00", false},
		{"kamera-ü", false},
		{"..", false},
	}
	for _, tt := range tests {
		err := ValidateDeviceID(tt.id)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadDeviceID)) {
			t.Errorf("ValidateDeviceID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestCanonicalHubURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wss://Hub.example.com/device", "wss://hub.example.com:443"},
		{"WSS://HUB.EXAMPLE.COM:443", "wss://hub.example.com:443"},
		{"wss://hub.example.com:8443/device?x=1#frag", "wss://hub.example.com:8443"},
		{"ws://hub", "ws://hub:80"},
		{"ws://hub:80/", "ws://hub:80"},
		{"ws://hub:8080/a/b", "ws://hub:8080"},
		{"http://hub", "ws://hub:80"},
		{"https://hub", "wss://hub:443"},
		{"ws://127.0.0.1:9000/device", "ws://127.0.0.1:9000"},
		{"ws://[::1]", "ws://[::1]:80"},
		{"wss://[2001:DB8::1]:8443/device", "wss://[2001:db8::1]:8443"},
	} {
		got, err := CanonicalHubURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalHubURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		// Canonical forms are fixed points.
		if again, err := CanonicalHubURL(got); err != nil || again != got {
			t.Errorf("CanonicalHubURL(%q) = %q, %v", got, again, err)
		}
	}
	for _, in := range []string{
		"", "hub", "hub:8080", "//hub", "/device",
		"ftp://hub", "file:///etc/passwd", "tcp://hub:80", "wsx://hub",
		"ws://user@hub", "wss://user:secret@hub:443", "ws://:80", "ws:///device", "wss://",
		"ws://hub:port", "ws://hub\x00:80", "ws://hub:80\n",
	} {
		if got, err := CanonicalHubURL(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("CanonicalHubURL(%q) = %q, %v; want ErrMalformed", in, got, err)
		}
	}
}

// TestChallengeAcrossURLs: a signature counts for the one hub URL it was made for, whichever
// spelling of it the device was given.
func TestChallengeAcrossURLs(t *testing.T) {
	k := fixedDeviceKey(t)
	c, err := NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	hubs := []string{"ws://hub:80", "wss://hub:443", "ws://hub:8080", "wss://hub2:443", "wss://[::1]:443"}
	for _, signed := range hubs {
		sig := SignChallenge(k, "cam1", signed, c)
		for _, checked := range hubs {
			err := VerifyChallenge(k.Public(), "cam1", checked, c, sig)
			if want := signed == checked; (err == nil) != want || (err != nil && !errors.Is(err, ErrBadSignature)) {
				t.Errorf("signed for %s, checked for %s: %v", signed, checked, err)
			}
		}
	}
	// Spellings of one hub sign alike once canonical.
	a, _ := CanonicalHubURL("wss://HUB/device")
	b, _ := CanonicalHubURL("https://hub:443")
	if err := VerifyChallenge(k.Public(), "cam1", b, c, SignChallenge(k, "cam1", a, c)); err != nil {
		t.Fatalf("%s vs %s: %v", a, b, err)
	}
}
