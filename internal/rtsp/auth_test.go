package rtsp

import (
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	cs := parseChallenges([]string{
		`Digest realm="IP Camera(C6214)", nonce="a9c5a1b2", stale="FALSE", qop="auth,auth-int", algorithm=MD5`,
		`Basic realm="x\"y"`,
		`Digest realm="a", nonce="n1", algorithm=SHA-256, Basic realm="b"`,
	})
	if len(cs) != 4 {
		t.Fatalf("%d challenges: %+v", len(cs), cs)
	}
	if cs[0].scheme != "digest" || cs[0].params["realm"] != "IP Camera(C6214)" || cs[0].params["qop"] != "auth,auth-int" || cs[0].params["algorithm"] != "MD5" {
		t.Errorf("first: %+v", cs[0])
	}
	if cs[1].scheme != "basic" || cs[1].params["realm"] != `x"y` {
		t.Errorf("second: %+v", cs[1])
	}
	if cs[2].params["algorithm"] != "SHA-256" || cs[3].scheme != "basic" || cs[3].params["realm"] != "b" {
		t.Errorf("third and fourth: %+v %+v", cs[2], cs[3])
	}
}

func TestDigestVectors(t *testing.T) {
	// RFC 2617 3.5.
	if got := digestResponse("", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
		"dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth"); got != "6629fae49393a05397450978507c4ef1" {
		t.Errorf("RFC 2617: %s", got)
	}
	// RFC 7616 3.9.1, MD5 and SHA-256.
	nonce, cnonce := "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
	if got := digestResponse("MD5", "Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html", nonce, "00000001", cnonce, "auth"); got != "8ca523f5e9506fed4657c9700eebdbec" {
		t.Errorf("RFC 7616 MD5: %s", got)
	}
	if got := digestResponse("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html", nonce, "00000001", cnonce, "auth"); got != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Errorf("RFC 7616 SHA-256: %s", got)
	}
}

func TestAuthenticator(t *testing.T) {
	a := authenticator{user: "admin", password: "pw", cnonce: func() string { return "c0ffee" }}
	if !a.accept(parseChallenges([]string{`Basic realm="r"`, `Digest realm="r", nonce="n", qop="auth", opaque="o"`})) || a.scheme != "digest" || !a.qop {
		t.Fatalf("digest with qop not preferred: %+v", a)
	}
	h := a.header("DESCRIBE", "rtsp://cam/s")
	want := `Digest username="admin", realm="r", nonce="n", uri="rtsp://cam/s", response="` +
		digestResponse("", "admin", "r", "pw", "DESCRIBE", "rtsp://cam/s", "n", "00000001", "c0ffee", "auth") +
		`", opaque="o", qop=auth, nc=00000001, cnonce="c0ffee"`
	if h != want {
		t.Errorf("header\n%s\nwant\n%s", h, want)
	}
	if h2 := a.header("SETUP", "rtsp://cam/s/1"); !contains(h2, "nc=00000002") {
		t.Errorf("nonce count not counting: %s", h2)
	}
	// Without qop (RFC 2069 style, as GStreamer and many cameras send).
	b := authenticator{user: "u", password: "p"}
	b.accept(parseChallenges([]string{`Digest realm="GStreamer RTSP Server", nonce="e03802240fd3d555"`}))
	if h := b.header("OPTIONS", "rtsp://c/"); contains(h, "qop") || contains(h, "cnonce") || !contains(h, digestResponse("", "u", "GStreamer RTSP Server", "p", "OPTIONS", "rtsp://c/", "e03802240fd3d555", "", "", "")) {
		t.Errorf("no-qop header: %s", h)
	}
	// SHA-256 preferred to MD5; auth-int alone not answerable; Basic as a last resort.
	c := authenticator{user: "u", password: "p"}
	c.accept(parseChallenges([]string{`Digest realm="r", nonce="1", algorithm=MD5`, `Digest realm="r", nonce="2", algorithm=SHA-256`}))
	if c.algorithm != "SHA-256" || c.nonce != "2" {
		t.Errorf("picked %q", c.algorithm)
	}
	d := authenticator{user: "u", password: "p"}
	if d.accept(parseChallenges([]string{`Digest realm="r", nonce="1", qop="auth-int"`, `Negotiate`})) {
		t.Error("accepted auth-int only")
	}
	if !d.accept(parseChallenges([]string{`Basic realm="r"`})) || d.header("PLAY", "x") != "Basic dTpw" {
		t.Errorf("basic: %q", d.header("PLAY", "x"))
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
