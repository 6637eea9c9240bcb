package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// secretFrom takes a secret (device key, token) from exactly one of: a flag value, a file, or an
// environment variable. The file or the environment are the safe ways: argv is visible to every
// user of the machine (ps, /proc). An empty result with no error means none was given.
func secretFrom(what, flagValue, file, env string) (string, error) {
	var sources []string
	secret := ""
	if flagValue != "" {
		sources, secret = append(sources, "flag"), flagValue
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%w: %s file: %v", errUsage, what, err)
		}
		// The last non-empty line, so a file may carry a comment above the secret.
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		sources, secret = append(sources, "file"), strings.TrimSpace(lines[len(lines)-1])
	}
	if v := os.Getenv(env); v != "" {
		sources, secret = append(sources, env), strings.TrimSpace(v)
	}
	if len(sources) > 1 {
		return "", fmt.Errorf("%w: %s given more than once (%s): give exactly one", errUsage, what, strings.Join(sources, ", "))
	}
	return secret, nil
}

// tlsTrusting returns a TLS configuration that trusts the PEM certificates in caFile besides
// the system's roots (a hub or device with a private CA or a self-signed certificate); nil when
// caFile is empty.
func tlsTrusting(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %v", errUsage, err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", errUsage, caFile)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}
