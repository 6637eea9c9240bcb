package hub

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/signal"
)

// AdminConfig is the hub's admin page (/admin) and API (/api/admin/...): off without a Token.
type AdminConfig struct {
	// Token is the admin credential, sent as "Authorization: Bearer TOKEN" (LoadAdminToken).
	Token string
	// Allow are the client addresses that may use it (nil: DefaultOpsAllow, this machine;
	// behind Config.Trust's proxies, the forwarded client).
	Allow []netip.Prefix
}

// AdminTokenPrefix starts every admin credential LoadAdminToken makes.
const AdminTokenPrefix = "p2pa1_"

// ErrAdminToken: the admin credential file is unusable.
var ErrAdminToken = errors.New("hub: admin credential")

// minAdminToken is the shortest admin credential accepted from a file an operator wrote.
const minAdminToken = 24

// LoadAdminToken reads the admin credential from path, making one (32 random bytes, file mode
// 0600) when the file does not exist; created says so, and the caller tells the operator
// where it is (never what it is).
func LoadAdminToken(path string) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		token = AdminTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", false, fmt.Errorf("%w: %w", ErrAdminToken, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", false, fmt.Errorf("%w: %w", ErrAdminToken, err)
		}
		_, err = f.WriteString(token + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", false, fmt.Errorf("%w: %w", ErrAdminToken, err)
		}
		return token, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrAdminToken, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", false, fmt.Errorf("%w: %s is readable by others (mode %v): chmod 600 it", ErrAdminToken, path, fi.Mode().Perm())
	}
	token = strings.TrimSpace(string(b))
	if len(token) < minAdminToken || strings.ContainsAny(token, " \t\r\n") {
		return "", false, fmt.Errorf("%w: %s: want one line of at least %d characters", ErrAdminToken, path, minAdminToken)
	}
	return token, false, nil
}

// Audit events of the admin API.
const (
	EventAdminDeviceAdded   = "admin_device_added"
	EventAdminDeviceRemoved = "admin_device_removed"
	EventAdminTokenMinted   = "admin_token_minted"
	EventAdminTokenRevoked  = "admin_token_revoked"
)

// Admin API limits.
const (
	adminBodyMax  = 8 << 10
	adminAuditMax = 1000
	// adminAuditRead is how much of the audit file's end the audit view reads.
	adminAuditRead = 1 << 20
)

// registerAdmin adds the admin page and API to mux (docs/manage.md). Without a credential
// they answer 404: the hub has no admin.
func (s *Server) registerAdmin(mux *http.ServeMux) {
	if s.cfg.Admin.Token == "" {
		return
	}
	// The allowed addresses, the trusted proxies and the credential reload (reload.go).
	allow := func(l *hubLive) []netip.Prefix { return l.adminAllow }
	guard := func(h http.HandlerFunc) http.Handler {
		return s.onlyFrom(allow, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.adminAllowed(w, r, s.settings().adminSum) {
				h(w, r)
			}
		}))
	}
	if s.cfg.Web != nil {
		page := func(name string) http.Handler {
			return s.onlyFrom(allow, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeFileFS(w, r, s.cfg.Web, name)
			}))
		}
		mux.Handle("GET /admin", page("admin.html"))
		mux.Handle("GET /admin.js", page("admin.js"))
	}
	mux.Handle("GET /api/admin/devices", guard(s.adminDevices))
	mux.Handle("POST /api/admin/devices", guard(adminPost(s.adminEnroll)))
	mux.Handle("DELETE /api/admin/devices/{id}", guard(s.adminRemove))
	mux.Handle("POST /api/admin/tokens", guard(adminPost(s.adminMint)))
	mux.Handle("POST /api/admin/tokens/revoke", guard(adminPost(s.adminRevoke)))
	mux.Handle("GET /api/admin/audit", guard(s.adminAudit))
}

// adminAllowed checks the admin credential in constant time (of hashes: the lengths leak
// nothing either), with failures counted against the source's authentication budget and
// audit-logged.
func (s *Server) adminAllowed(w http.ResponseWriter, r *http.Request, want [32]byte) bool {
	remote := s.remoteAddr(r)
	if s.fails.exhausted(remote) {
		s.audit.log(AuditEntry{Event: EventRefused, Remote: remote, Reason: "admin: too many failed authentications"})
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many failed authentications", http.StatusTooManyRequests)
		return false
	}
	got := sha256.Sum256([]byte(signal.BearerToken(r)))
	if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
		return true
	}
	s.authFailed(remote, "", "", "admin credential refused")
	w.Header().Set("WWW-Authenticate", `Bearer realm="p2pcast-admin"`)
	http.Error(w, "the admin credential is required (p2pcast hub --admin-token-file)", http.StatusUnauthorized)
	return false
}

type adminError struct {
	code int
	msg  string
}

func (e adminError) Error() string { return e.msg }

func writeAdminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// adminPost checks a POST's form before f: JSON only (a cross-site form cannot send it
// without a CORS preflight, which the hub never grants), small, and decodes it strictly.
func adminPost[T any](f func(*http.Request, T) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			http.Error(w, "want Content-Type: application/json", http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, adminBodyMax))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		var req T
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "malformed request: "+err.Error(), http.StatusBadRequest)
			return
		}
		out, err := f(r, req)
		if err != nil {
			code := http.StatusBadRequest
			var ae adminError
			if errors.As(err, &ae) {
				code = ae.code
			}
			writeAdminJSON(w, code, struct {
				Error string `json:"error"`
			}{err.Error()})
			return
		}
		writeAdminJSON(w, http.StatusOK, out)
	}
}

// AdminDevice is one device in GET /api/admin/devices.
type AdminDevice struct {
	ID       string          `json:"id"`
	Enrolled bool            `json:"enrolled"`
	Online   bool            `json:"online"`
	Sessions int             `json:"sessions"`
	Stream   json.RawMessage `json:"stream,omitempty"`
	// Instance is the hub instance the device is linked to, in a cluster (docs/cluster.md).
	Instance string `json:"instance,omitempty"`
}

func (s *Server) adminDevices(w http.ResponseWriter, _ *http.Request) {
	enrolled, err := s.cfg.Store.Devices()
	if err != nil {
		http.Error(w, "device registry unreadable", http.StatusInternalServerError)
		return
	}
	out := []AdminDevice{}
	s.mu.Lock()
	for _, id := range enrolled {
		info := AdminDevice{ID: id, Enrolled: true}
		if d := s.devices[id]; d != nil {
			info.Online = true
			d.mu.Lock()
			info.Stream, info.Sessions = d.stream, len(d.sessions)
			d.mu.Unlock()
		}
		out = append(out, info)
	}
	s.mu.Unlock()
	if s.cluster != nil {
		s.cluster.fillAdminDevices(out)
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Devices []AdminDevice `json:"devices"`
	}{out})
}

func (s *Server) adminEnroll(r *http.Request, req struct {
	ID string `json:"id"`
}) (any, error) {
	key, err := s.cfg.Store.AddDevice(req.ID)
	if err != nil {
		return nil, err
	}
	s.audit.log(AuditEntry{Event: EventAdminDeviceAdded, Remote: s.remoteAddr(r), Device: req.ID})
	s.log.Info("admin: device enrolled", "device", req.ID)
	// The key is shown this once, as `p2pcast device-key add` prints it.
	return struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}{req.ID, key.Secret()}, nil
}

func (s *Server) adminRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.cfg.Store.RemoveDevice(id); err != nil {
		writeAdminJSON(w, http.StatusNotFound, struct {
			Error string `json:"error"`
		}{err.Error()})
		return
	}
	s.audit.log(AuditEntry{Event: EventAdminDeviceRemoved, Remote: s.remoteAddr(r), Device: id})
	s.log.Info("admin: device removed", "device", id)
	// A removed device's link ends: its key no longer opens one.
	s.mu.Lock()
	d := s.devices[id]
	s.mu.Unlock()
	if d != nil {
		d.ws.Close()
	}
	writeAdminJSON(w, http.StatusOK, struct {
		Removed string `json:"removed"`
	}{id})
}

// AdminMint is POST /api/admin/tokens.
type AdminMint struct {
	Devices []string `json:"devices"`
	Grants  []string `json:"grants"`
	TTL     string   `json:"ttl"` // a Go duration, at most auth.MaxLifetime
	Subject string   `json:"subject"`
	// Link is the page the QR code opens (the hub's address as a phone reaches it): the token
	// goes in its fragment. Default: the hub's first URL, as http(s).
	Link string `json:"link"`
}

// AdminMinted is what minting returns: the token (shown once), its id, the link that carries
// it and that link as a QR code (a PNG data URL).
type AdminMinted struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
	Link    string    `json:"link"`
	QR      string    `json:"qr"`
}

func (s *Server) adminMint(r *http.Request, req AdminMint) (any, error) {
	grants, err := auth.ParseGrants(strings.Join(req.Grants, ","))
	if err != nil {
		return nil, err
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl <= 0 || ttl > auth.MaxLifetime {
		return nil, fmt.Errorf("ttl %q: want more than 0 and at most %s", req.TTL, auth.MaxLifetime)
	}
	if len(req.Devices) == 0 {
		return nil, errors.New("devices: name at least one (or *)")
	}
	now := s.cfg.Now()
	c := auth.Claims{Devices: req.Devices, Grants: grants, IssuedAt: now, Expires: now.Add(ttl), Subject: req.Subject}
	tok, err := s.cfg.Store.MintToken(c)
	if err != nil {
		return nil, err
	}
	claims, err := auth.Verify(s.cfg.Store, tok, now)
	if err != nil {
		return nil, err
	}
	link, err := s.pageLink(req.Link, req.Devices)
	if err != nil {
		return nil, err
	}
	link += "#token=" + tok
	png, err := qrcode.Encode(link, qrcode.Low, 320)
	if err != nil {
		return nil, err
	}
	s.audit.log(AuditEntry{Event: EventAdminTokenMinted, Remote: s.remoteAddr(r), Device: strings.Join(req.Devices, ","),
		TokenID: claims.ID, Reason: "grants " + strings.Join(req.Grants, ",") + ", ttl " + ttl.String()})
	s.log.Info("admin: token minted", "token", claims.ID, "devices", req.Devices, "grants", req.Grants, "ttl", ttl)
	return AdminMinted{Token: tok, ID: claims.ID, Expires: claims.Expires, Link: link,
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)}, nil
}

// pageLink is the viewer page a minted token opens: base (or the hub's first URL) with
// ?device=ID when the token names one device.
func (s *Server) pageLink(base string, devices []string) (string, error) {
	if base == "" {
		for u := range s.urls {
			if base == "" || u < base {
				base = u
			}
		}
		base = strings.Replace(strings.Replace(base, "wss://", "https://", 1), "ws://", "http://", 1)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("link %q: want http(s)://host[:port]/", base)
	}
	u.Path, u.RawQuery, u.Fragment = "/", "", ""
	if len(devices) == 1 && devices[0] != "*" {
		u.RawQuery = "device=" + url.QueryEscape(devices[0])
	}
	return u.String(), nil
}

func (s *Server) adminRevoke(r *http.Request, req struct {
	ID string `json:"id"`
}) (any, error) {
	id := strings.TrimSpace(req.ID)
	if looksLikeToken(id) {
		// The token itself: revoked by its id.
		c, err := s.verifyToken(id)
		if err != nil && !errors.Is(err, auth.ErrExpired) {
			return nil, err
		}
		id = c.ID
	}
	if id == "" || len(id) > auth.MaxTokenIDLen {
		return nil, errors.New("id: a token id (the audit log's token_id) or the token")
	}
	if err := s.cfg.Store.Revoke(id, s.cfg.Now().Add(auth.MaxLifetime)); err != nil {
		return nil, err
	}
	if err := s.refreshRevoked(); err != nil {
		s.log.Warn("revocation list", "err", err)
	}
	s.audit.log(AuditEntry{Event: EventAdminTokenRevoked, Remote: s.remoteAddr(r), TokenID: id})
	s.log.Info("admin: token revoked", "token", id)
	return struct {
		Revoked string `json:"revoked"`
	}{id}, nil
}

// adminAudit serves the audit log's newest entries (?n=, at most adminAuditMax), newest
// last, filtered by ?event=, ?device=, ?token= (exact) and ?q= (a substring of the line).
func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	if n <= 0 || n > adminAuditMax {
		n = 200
	}
	if s.cfg.DataDir == "" {
		writeAdminJSON(w, http.StatusOK, struct {
			Entries []AuditEntry `json:"entries"`
		}{[]AuditEntry{}})
		return
	}
	s.audit.flush() // aggregated refusals so far
	entries, err := readAuditTail(filepath.Join(s.cfg.DataDir, auditName(s.cfg.Cluster)), adminAuditRead)
	if err != nil {
		http.Error(w, "audit log unreadable", http.StatusInternalServerError)
		return
	}
	out := []AuditEntry{}
	for _, e := range slices.Backward(entries) {
		if (q.Get("event") != "" && e.Event != q.Get("event")) || (q.Get("device") != "" && e.Device != q.Get("device")) ||
			(q.Get("token") != "" && e.TokenID != q.Get("token")) {
			continue
		}
		if sub := q.Get("q"); sub != "" {
			b, _ := json.Marshal(e)
			if !strings.Contains(string(b), sub) {
				continue
			}
		}
		out = append(out, e)
		if len(out) == n {
			break
		}
	}
	slices.Reverse(out)
	writeAdminJSON(w, http.StatusOK, struct {
		Entries []AuditEntry `json:"entries"`
	}{out})
}

// readAuditTail reads the entries of the last limit bytes of the audit file (a first, partial
// line skipped).
func readAuditTail(path string, limit int64) ([]AuditEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start := max(0, fi.Size()-limit)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []AuditEntry
	first := start > 0
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		var e AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}
