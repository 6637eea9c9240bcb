//go:build !device

package main

import (
	"bytes"
	"strings"
	"testing"
)

// The hub's external issuer is two config keys (flags); both or neither.
func TestHubTokenIssuerFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "print", "hub", "--public-ip", "192.0.2.1", "--token-issuer", "https://app.example",
		"--token-issuer-jwks", "https://app.example/jwks.json"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{`token-issuer = "https://app.example"`, `token-issuer-jwks = "https://app.example/jwks.json"`} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("config print lacks %s:\n%s", want, out.String())
		}
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"hub", "--public-ip", "192.0.2.1", "--token-issuer", "https://app.example"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "go together") {
		t.Fatalf("issuer without JWKS: exit %d: %s", code, errOut.String())
	}
}
