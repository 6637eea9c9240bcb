package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
)

const testAdmin = "p2pa1_test-admin-credential-0123456789"

func adminHub(t *testing.T, cfg Config) *testHub {
	t.Helper()
	cfg.Admin = AdminConfig{Token: testAdmin}
	return newTestHub(t, cfg)
}

func (h *testHub) admin(method, path, cred, ctype, body string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.http.URL+path, strings.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin API: the credential required, JSON POSTs only, enroll (the key once), mint (a token
// that works, with its QR code), revoke (the token refused after), remove; each audit-logged
// without a secret.
func TestAdminAPI(t *testing.T) {
	h := adminHub(t, Config{})
	const js = "application/json"
	for _, c := range []struct {
		name, method, path, cred, ctype, body string
		want                                  int
	}{
		{"no credential", "GET", "/api/admin/devices", "", "", "", http.StatusUnauthorized},
		{"wrong credential", "GET", "/api/admin/devices", testAdmin + "x", "", "", http.StatusUnauthorized},
		{"a viewer token", "GET", "/api/admin/devices", h.token([]string{"*"}, []auth.Grant{auth.GrantView}, time.Minute), "", "", http.StatusUnauthorized},
		{"form", "POST", "/api/admin/devices", testAdmin, "application/x-www-form-urlencoded", "id=cam1", http.StatusUnsupportedMediaType},
		{"unknown field", "POST", "/api/admin/devices", testAdmin, js, `{"id":"cam1","key":"x"}`, http.StatusBadRequest},
		{"too big", "POST", "/api/admin/devices", testAdmin, js, `{"id":"` + strings.Repeat("a", 10000) + `"}`, http.StatusRequestEntityTooLarge},
		{"bad id", "POST", "/api/admin/devices", testAdmin, js, `{"id":"../x"}`, http.StatusBadRequest},
		{"bad ttl", "POST", "/api/admin/tokens", testAdmin, js, `{"devices":["cam1"],"grants":["view"],"ttl":"9999h"}`, http.StatusBadRequest},
		{"bad grant", "POST", "/api/admin/tokens", testAdmin, js, `{"devices":["cam1"],"grants":["root"],"ttl":"1h"}`, http.StatusBadRequest},
	} {
		if code, body := h.admin(c.method, c.path, c.cred, c.ctype, c.body); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	code, body := h.admin("POST", "/api/admin/devices", testAdmin, js, `{"id":"cam1"}`)
	var enrolled struct{ ID, Key string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &enrolled) != nil || !strings.HasPrefix(enrolled.Key, "p2pk") {
		t.Fatalf("enroll: %d %s", code, body)
	}
	if _, err := auth.ParseDeviceKey(enrolled.Key); err != nil {
		t.Fatalf("enrolled key: %v", err)
	}
	code, body = h.admin("GET", "/api/admin/devices", testAdmin, "", "")
	if code != http.StatusOK || !strings.Contains(body, `"id":"cam1","enrolled":true,"online":false`) {
		t.Fatalf("devices: %d %s", code, body)
	}
	code, body = h.admin("POST", "/api/admin/tokens", testAdmin, js, `{"devices":["cam1"],"grants":["view"],"ttl":"1h","subject":"phone"}`)
	var minted AdminMinted
	if code != http.StatusOK || json.Unmarshal([]byte(body), &minted) != nil {
		t.Fatalf("mint: %d %s", code, body)
	}
	if !strings.HasPrefix(minted.QR, "data:image/png;base64,") || !strings.Contains(minted.Link, "/?device=cam1#token="+minted.Token) {
		t.Fatalf("minted: link %s qr %.40s", minted.Link, minted.QR)
	}
	claims, err := auth.Verify(h.store, minted.Token, time.Now())
	if err != nil || claims.ID != minted.ID || !claims.Allows("cam1", auth.GrantView) {
		t.Fatalf("minted token: %+v %v", claims, err)
	}
	list := func(tok string) int {
		req, _ := http.NewRequest("GET", h.http.URL+"/api/devices", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := list(minted.Token); c != http.StatusOK {
		t.Fatalf("the minted token on /api/devices: %d", c)
	}
	if code, body := h.admin("POST", "/api/admin/tokens/revoke", testAdmin, js, `{"id":"`+minted.ID+`"}`); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if c := list(minted.Token); c != http.StatusUnauthorized {
		t.Fatalf("the revoked token on /api/devices: %d", c)
	}
	if code, body := h.admin("DELETE", "/api/admin/devices/cam1", testAdmin, "", ""); code != http.StatusOK {
		t.Fatalf("remove: %d %s", code, body)
	}
	if ids, _ := h.store.Devices(); len(ids) != 0 {
		t.Fatalf("devices after remove: %v", ids)
	}
	audit := h.audit.String()
	for _, ev := range []string{EventAdminDeviceAdded, EventAdminTokenMinted, EventAdminTokenRevoked, EventAdminDeviceRemoved, EventAuthFailed} {
		if !strings.Contains(audit, `"event":"`+ev+`"`) {
			t.Errorf("audit log lacks %s:\n%s", ev, audit)
		}
	}
	for _, secret := range []string{testAdmin, minted.Token, enrolled.Key} {
		if strings.Contains(audit, secret) || strings.Contains(h.logs.String(), secret) {
			t.Errorf("a secret in the audit log or the log")
		}
	}
}

// Failed admin authentications spend the source's budget: past it even the right credential
// waits.
func TestAdminFailuresRateLimited(t *testing.T) {
	h := adminHub(t, Config{ConnRate: 1000, ConnBurst: 1000, AuthFailsPerMinute: 3})
	for range 3 {
		if code, _ := h.admin("GET", "/api/admin/devices", "guess", "", ""); code != http.StatusUnauthorized {
			t.Fatalf("a wrong credential: %d", code)
		}
	}
	if code, _ := h.admin("GET", "/api/admin/devices", testAdmin, "", ""); code != http.StatusTooManyRequests {
		t.Fatalf("after the failures: %d", code)
	}
}

// The admin API answers only its allowed addresses, and not at all without a credential.
func TestAdminOnlyFromAndOff(t *testing.T) {
	h := newTestHub(t, Config{Admin: AdminConfig{Token: testAdmin, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	if code, _ := h.admin("GET", "/api/admin/devices", testAdmin, "", ""); code != http.StatusForbidden {
		t.Fatalf("from loopback, allow 10/8: %d", code)
	}
	off := newTestHub(t, Config{})
	if code, _ := off.admin("GET", "/api/admin/devices", testAdmin, "", ""); code != http.StatusNotFound {
		t.Fatalf("without a credential configured: %d", code)
	}
}

// The audit view reads the audit file's tail, filtered.
func TestAdminAudit(t *testing.T) {
	dir := t.TempDir()
	var lines bytes.Buffer
	for _, e := range []AuditEntry{{Event: EventDeviceConnected, Device: "cam1"}, {Event: EventAuthFailed, Device: "cam2"}, {Event: EventDeviceConnected, Device: "cam2"}} {
		b, _ := json.Marshal(e)
		lines.Write(append(b, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "audit.jsonl"), lines.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := adminHub(t, Config{DataDir: dir})
	code, body := h.admin("GET", "/api/admin/audit?device=cam2&event="+EventDeviceConnected, testAdmin, "", "")
	var out struct{ Entries []AuditEntry }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || len(out.Entries) != 1 || out.Entries[0].Device != "cam2" {
		t.Fatalf("audit: %d %s", code, body)
	}
}

// LoadAdminToken makes a credential once (0600), reads it back, and refuses a weak or
// world-readable file.
func TestLoadAdminToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin", "token")
	tok, created, err := LoadAdminToken(path)
	if err != nil || !created || !strings.HasPrefix(tok, AdminTokenPrefix) {
		t.Fatal(tok, created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	again, created, err := LoadAdminToken(path)
	if err != nil || created || again != tok {
		t.Fatal(again, created, err)
	}
	weak := filepath.Join(t.TempDir(), "weak")
	_ = os.WriteFile(weak, []byte("short\n"), 0o600)
	if _, _, err := LoadAdminToken(weak); !errors.Is(err, ErrAdminToken) {
		t.Fatalf("weak: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	_ = os.WriteFile(open, []byte(strings.Repeat("x", 40)), 0o644)
	if _, _, err := LoadAdminToken(open); !errors.Is(err, ErrAdminToken) {
		t.Fatalf("world-readable: %v", err)
	}
}

// Reload applies the safe settings to the running hub (a rotated admin credential, the
// admin and operator address lists, the rate limits) and names the rest as needing a restart.
func TestReload(t *testing.T) {
	cfg := Config{Admin: AdminConfig{Token: testAdmin}, PublicIP: "127.0.0.1", ConnRate: 1000, ConnBurst: 1000, AuthFailsPerMinute: 1000}
	h := newTestHub(t, cfg)
	cfg.URLs = []string{h.ws}
	if code, _ := h.admin("GET", "/metrics", "", "", ""); code != http.StatusOK {
		t.Fatalf("/metrics before: %d", code)
	}
	next := cfg
	next.Admin.Token = testAdmin + "-rotated"
	next.OpsAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	next.HTTPAddr = "127.0.0.1:9"
	applied, restart, err := h.srv.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []string{"ops-allow", "admin-token-file"}) || !slices.Equal(restart, []string{"http"}) {
		t.Fatalf("applied %v, needs restart %v", applied, restart)
	}
	if code, _ := h.admin("GET", "/api/admin/devices", testAdmin, "", ""); code != http.StatusUnauthorized {
		t.Fatalf("the old credential after the reload: %d", code)
	}
	if code, _ := h.admin("GET", "/api/admin/devices", next.Admin.Token, "", ""); code != http.StatusOK {
		t.Fatalf("the new credential after the reload: %d", code)
	}
	if code, _ := h.admin("GET", "/metrics", "", "", ""); code != http.StatusForbidden {
		t.Fatalf("/metrics from loopback, ops-allow 10/8: %d", code)
	}
	// The limits: a lower authentication budget applies to the next failure.
	next.AuthFailsPerMinute = 1
	if applied, _, err := h.srv.Reload(next); err != nil || !slices.Equal(applied, []string{"auth-fails"}) {
		t.Fatalf("limits reload: %v %v", applied, err)
	}
	h.admin("GET", "/api/admin/devices", "guess", "", "")
	if code, _ := h.admin("GET", "/api/admin/devices", next.Admin.Token, "", ""); code != http.StatusTooManyRequests {
		t.Fatalf("after one failure with a budget of 1: %d", code)
	}
	bad := next
	bad.URLs = []string{"not a url"}
	if _, _, err := h.srv.Reload(bad); !errors.Is(err, ErrReload) {
		t.Fatalf("bad reload: %v", err)
	}
}
