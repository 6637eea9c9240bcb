package hub

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// ClusterConfig joins the hub to other instances through a NATS server (docs/cluster.md).
type ClusterConfig struct {
	// URL of the NATS server: nats://HOST:4222 or tls://HOST:4222, several comma-separated;
	// empty: a single hub, and nothing of this file runs.
	URL string
	// Instance names this hub in the cluster: 1-64 letters, digits, '-' or '_' (default: the
	// first label of the host name). Two running instances cannot share one.
	Instance string
	// NATS credentials, all optional, never logged: a user and password, a token, an NKey
	// seed file or a credentials (JWT) file.
	User, Password string
	Token          string
	NKeySeedFile   string
	CredsFile      string
	// CAFile trusts a private CA for tls:// servers.
	CAFile string
}

// Enabled says whether the hub is an instance of a cluster.
func (c ClusterConfig) Enabled() bool { return c.URL != "" }

// instance is the instance id, the host name's first label by default.
func (c ClusterConfig) instance() string {
	if c.Instance != "" {
		return c.Instance
	}
	h, err := os.Hostname()
	if err != nil {
		return "hub"
	}
	h, _, _ = strings.Cut(h, ".")
	out := []byte{}
	for i := 0; i < len(h) && len(out) < 64; i++ {
		if validInstanceChar(h[i]) {
			out = append(out, h[i])
		} else {
			out = append(out, '-')
		}
	}
	if len(out) == 0 {
		return "hub"
	}
	return string(out)
}

// validate checks the settings (Config.Validate names the flags).
func (c ClusterConfig) validate() error {
	if !c.Enabled() {
		if c.Instance != "" || c.User != "" || c.Password != "" || c.Token != "" || c.NKeySeedFile != "" || c.CredsFile != "" || c.CAFile != "" {
			return errors.New("--cluster-* settings without --cluster")
		}
		return nil
	}
	var errs []error
	for _, u := range strings.Split(c.URL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" {
			errs = append(errs, fmt.Errorf("--cluster %q: want nats://HOST:PORT or tls://HOST:PORT", redactURL(u)))
		}
	}
	if c.Instance != "" && !validInstance(c.Instance) {
		errs = append(errs, fmt.Errorf("--cluster-instance %q: 1-64 letters, digits, '-' or '_'", c.Instance))
	}
	n := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.NKeySeedFile != "", c.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("NATS credentials: give one of a user and password, a token, an NKey seed file or a credentials file"))
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("--cluster-user and its password (--cluster-password-file or P2PCAST_CLUSTER_PASSWORD) go together"))
	}
	return errors.Join(errs...)
}

func validInstanceChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// validInstance: instance ids and refs are single subject tokens.
func validInstance(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !validInstanceChar(s[i]) {
			return false
		}
	}
	return true
}

// redactURL hides a URL's password, for logs and errors.
func redactURL(u string) string {
	if p, err := url.Parse(strings.TrimSpace(u)); err == nil {
		return p.Redacted()
	}
	return "(unparsable URL)"
}

// auditName is the audit file in the data directory: one per instance in a cluster, whose
// instances may share the directory (two processes would rotate one file under each other).
func auditName(c ClusterConfig) string {
	if !c.Enabled() {
		return "audit.jsonl"
	}
	return "audit-" + c.instance() + ".jsonl"
}
