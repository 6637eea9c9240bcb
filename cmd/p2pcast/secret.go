package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
)

// secretFrom takes a secret (device key, token, TURN secret) from exactly one of: the flag
// named flagName, a file, or an environment variable. The file or the environment are the safe
// ways: argv is visible to every user of the machine (ps, /proc). A secret is one word on one
// line; anything else is a usage error. An empty result with no error means none was given.
func secretFrom(what, flagName, flagValue, file, env string) (string, error) {
	var sources, values []string
	if flagValue != "" {
		sources, values = append(sources, "--"+flagName), append(values, flagValue)
	}
	if file != "" {
		b, err := readSecretFile(file, 64<<10)
		if err != nil {
			return "", fmt.Errorf("%w: %s file: %v", errUsage, what, err)
		}
		sources, values = append(sources, "--"+flagName+"-file"), append(values, string(b))
	}
	if v := os.Getenv(env); v != "" {
		sources, values = append(sources, "$"+env), append(values, v)
	}
	switch len(sources) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%w: the %s is given more than once (%s): give exactly one", errUsage, what, strings.Join(sources, ", "))
	}
	secret := strings.TrimSpace(values[0])
	if secret == "" {
		return "", fmt.Errorf("%w: the %s from %s is empty", errUsage, what, sources[0])
	}
	if strings.ContainsAny(secret, " \t\r\n") {
		return "", fmt.Errorf("%w: the %s from %s has white space inside: one word, on one line", errUsage, what, sources[0])
	}
	return secret, nil
}

// readSecretFile reads a file of at most limit bytes: a secret is small, and a wrong path must
// not read a huge file.
func readSecretFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a secret", path, limit)
	}
	return b, nil
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
