package device

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pcast/p2pcast/internal/adapt"
	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/httpguard"
	"github.com/p2pcast/p2pcast/internal/record"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/web"
)

// ErrReload: a reload was refused (the new configuration is not valid); nothing changed.
var ErrReload = errors.New("device: reload refused")

// manageState is what Reload changes and the management API (/manage, /api/manage/...) reads.
type manageState struct {
	live atomic.Pointer[liveSettings]
	lan  atomic.Pointer[lanGate] // the LAN gate in force (with Config.LANAuth)
	logs *logRing

	mu  sync.Mutex // serializes reloads
	cfg Config     // the configuration last reloaded (Config as given to New at first)
	// reloader rebuilds the configuration from the file and environment (SetReloader).
	reloader func() (Config, error)

	// ceilingsChanged: a reload changed the encoder's ceilings; ceilingsTold is the stream
	// generation (its Changed channel) whose producer was told (the adapter's goroutine only).
	ceilingsChanged atomic.Bool
	ceilingsTold    <-chan struct{}
	// restartProducer restarts the device's own producer with the settings in force (a
	// reload of its motion settings).
	restartProducer chan struct{}
}

// liveSettings are the settings a reload changes without a restart. Readers take a snapshot
// (settings); Reload stores a new one whole.
type liveSettings struct {
	Bitrate      Bitrate
	FPS          int
	AllowOrigins []string
	AllowHosts   []string
	OpsAllow     []netip.Prefix // nil: DefaultOpsAllow
	MaxViewers   int
	MaxPerSource int
	HubKeys      []ed25519.PublicKey
	HubKeyFile   string
	Record       record.Options
	Motion       Motion
}

func liveFrom(c Config) *liveSettings {
	var keys []ed25519.PublicKey
	var keyFile string
	if c.LANAuth != nil {
		keys, keyFile = c.LANAuth.HubKeys, c.LANAuth.HubKeyFile
	}
	return &liveSettings{Bitrate: c.Bitrate, FPS: c.FPS, AllowOrigins: c.AllowOrigins, AllowHosts: c.AllowHosts,
		OpsAllow: c.OpsAllow, MaxViewers: c.MaxViewers, MaxPerSource: c.MaxPerSource, HubKeys: keys, HubKeyFile: keyFile, Record: c.Record, Motion: c.Motion}
}

// settings is the reloadable settings' current snapshot.
func (d *Device) settings() *liveSettings { return d.manage.live.Load() }

func (l *liveSettings) opsAllow() []netip.Prefix {
	if l.OpsAllow == nil {
		return DefaultOpsAllow
	}
	return l.OpsAllow
}

// caps are the per-source session cap (at most three quarters of the viewers, as
// Config.perSource) and the viewer cap in force.
func (l *liveSettings) caps() (perSource, viewers int) {
	return max(1, min(l.MaxPerSource, l.MaxViewers*3/4)), l.MaxViewers
}

// initManage sets up what New's Device needs for reloads and the management API.
func (d *Device) initManage(cfg Config, logs *logRing) {
	d.manage.logs = logs
	d.manage.cfg = cfg
	d.manage.restartProducer = make(chan struct{}, 1)
	d.manage.live.Store(liveFrom(cfg))
}

// swapGate is the LAN gate whose keys a reload replaces.
type swapGate struct{ p *atomic.Pointer[lanGate] }

func (g swapGate) Required() bool                        { return true }
func (g swapGate) Admit(tok string) (auth.Access, error) { return g.p.Load().Admit(tok) }

// reloadableGate makes g the LAN gate in force and returns the gate that follows reloads.
func (d *Device) reloadableGate(g lanGate) signal.Gate {
	d.manage.lan.Store(&g)
	return swapGate{&d.manage.lan}
}

// rebuilt is a handler made from the live settings, made again after each reload (lazily,
// on the first request that sees the new settings).
type rebuilt struct {
	d     *Device
	build func(*liveSettings) http.Handler
	cur   atomic.Pointer[builtFor]
}

type builtFor struct {
	l *liveSettings
	h http.Handler
}

func (d *Device) guarded(build func(*liveSettings) http.Handler) http.Handler {
	return &rebuilt{d: d, build: build}
}

func (rb *rebuilt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := rb.d.settings()
	b := rb.cur.Load()
	if b == nil || b.l != l {
		b = &builtFor{l: l, h: rb.build(l)}
		rb.cur.Store(b)
	}
	b.h.ServeHTTP(w, r)
}

// checkOrigin is the WebSocket origin check with the allowed origins in force.
func (d *Device) checkOrigin(r *http.Request) bool {
	return httpguard.CheckOrigin(d.settings().AllowOrigins)(r)
}

// SetReloader gives the device a way to rebuild its configuration from the file and the
// environment (the command line it started with): the management page's "reload from file".
func (d *Device) SetReloader(f func() (Config, error)) {
	d.manage.mu.Lock()
	d.manage.reloader = f
	d.manage.mu.Unlock()
}

// ReloadFromFile rebuilds the configuration with the reloader and reloads it.
func (d *Device) ReloadFromFile() (applied, needsRestart []string, err error) {
	d.manage.mu.Lock()
	f := d.manage.reloader
	d.manage.mu.Unlock()
	if f == nil {
		return nil, nil, fmt.Errorf("%w: this device was not started from a command line that can be read again", ErrReload)
	}
	cfg, err := f()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrReload, err)
	}
	return d.Reload(cfg)
}

// reloadable are the settings Reload applies, by the name it reports them under: the
// encoder's ceilings, the recording policy, the access lists and caps.
var reloadable = []string{"Bitrate", "FPS", "AllowOrigins", "AllowHosts", "OpsAllow", "MaxViewers", "MaxPerSource", "Record", "LANAuth", "Motion"}

// Reload applies what of cfg can change while viewers watch, and lists the rest that differs
// from the running configuration as needing a restart (logged too). Sessions are kept:
//
//	Bitrate, FPS             the main encoder's ceilings: the producer is told at once, the
//	                         adaptation policy starts again under the new ceilings
//	Record (policy)          mode, pre/post-roll, segment, retention (not the directory)
//	AllowOrigins, AllowHosts CORS, WebSocket origins and the Host allowlist
//	OpsAllow                 who reads /metrics, /healthz, /readyz (and uses /manage tokenless)
//	MaxViewers, MaxPerSource caps on new sessions (MaxViewers up to the value started with)
//	LANAuth.HubKeys,         the hub keys LAN tokens are verified with (the file's content
//	LANAuth.HubKeyFile       is reread by itself)
//
// An invalid cfg changes nothing and returns an error wrapping ErrReload.
func (d *Device) Reload(cfg Config) (applied, needsRestart []string, err error) {
	// The channels are the device's own (New adds some): a configuration read again has none.
	cfg.Channels = d.cfg.Channels
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrReload, err)
	}
	d.manage.mu.Lock()
	defer d.manage.mu.Unlock()
	old := d.manage.cfg
	next := *d.settings()
	set := func(name string, changed bool, apply func()) {
		if changed {
			applied = append(applied, name)
			apply()
		}
	}
	set("bitrate", cfg.Bitrate != old.Bitrate, func() { next.Bitrate = cfg.Bitrate })
	set("fps", cfg.FPS != old.FPS, func() { next.FPS = cfg.FPS })
	set("allow-origin", !slices.Equal(cfg.AllowOrigins, old.AllowOrigins), func() { next.AllowOrigins = cfg.AllowOrigins })
	set("allow-host", !slices.Equal(cfg.AllowHosts, old.AllowHosts), func() { next.AllowHosts = cfg.AllowHosts })
	set("ops-allow", !slices.Equal(cfg.OpsAllow, old.OpsAllow) || (cfg.OpsAllow == nil) != (old.OpsAllow == nil),
		func() { next.OpsAllow = cfg.OpsAllow })
	set("max-per-source", cfg.MaxPerSource != old.MaxPerSource, func() { next.MaxPerSource = cfg.MaxPerSource })
	if cfg.MaxViewers > d.cfg.MaxViewers {
		// The engine's own cap was set at start.
		needsRestart = append(needsRestart, "max-viewers (above "+strconv.Itoa(d.cfg.MaxViewers)+")")
	} else {
		set("max-viewers", cfg.MaxViewers != old.MaxViewers, func() { next.MaxViewers = cfg.MaxViewers })
	}
	// The recording policy: only with the recorder that runs (same directory).
	if cfg.Record.Dir != d.cfg.Record.Dir || cfg.Record.SyncEvery != d.cfg.Record.SyncEvery {
		needsRestart = append(needsRestart, "record-dir")
	} else if r := d.activeRecorder(); r != nil && recordPolicyChanged(cfg.Record, old.Record) {
		if err := r.SetOptions(cfg.Record); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrReload, err)
		}
		applied = append(applied, "record")
		next.Record = cfg.Record
	}
	switch {
	case (cfg.LANAuth == nil) != (d.cfg.LANAuth == nil) ||
		(cfg.LANAuth != nil && (cfg.LANAuth.ID != d.cfg.LANAuth.ID || (cfg.LANAuth.Store == nil) != (d.cfg.LANAuth.Store == nil))):
		needsRestart = append(needsRestart, "lan-auth")
	case cfg.LANAuth != nil && (!slices.EqualFunc(cfg.LANAuth.HubKeys, next.HubKeys, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) ||
		cfg.LANAuth.HubKeyFile != next.HubKeyFile):
		if !slices.EqualFunc(cfg.LANAuth.HubKeys, next.HubKeys, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
			applied = append(applied, "hub-token-key")
		}
		if cfg.LANAuth.HubKeyFile != next.HubKeyFile {
			applied = append(applied, "hub-jwks")
		}
		next.HubKeys, next.HubKeyFile = slices.Clone(cfg.LANAuth.HubKeys), cfg.LANAuth.HubKeyFile
		g := newLANGate(&LANAuth{Store: d.cfg.LANAuth.Store, HubKeys: next.HubKeys, HubKeyFile: next.HubKeyFile, ID: d.cfg.LANAuth.ID}, d.isRevoked)
		d.manage.lan.Store(&g)
	}
	// Motion settings are the producer's flags: its own producer restarts with them (viewers
	// keep their sessions: a producer restart is invisible to them), any other source's
	// settings cannot be (Validate refuses motion there).
	restartProducer := false
	if cfg.Motion != old.Motion {
		applied = append(applied, "motion")
		next.Motion, restartProducer = cfg.Motion, true
	}
	needsRestart = append(needsRestart, restartDiff(d.cfg, cfg)...)
	d.manage.live.Store(&next)
	if restartProducer && d.cfg.ownProducer() {
		select {
		case d.manage.restartProducer <- struct{}{}:
		default: // one is pending: it reads the settings stored above
		}
	}
	if slices.Contains(applied, "bitrate") || slices.Contains(applied, "fps") {
		d.adapter.newCeilings()
	}
	d.manage.cfg = cfg
	d.log.Info("configuration reloaded", "applied", applied, "needs a restart", needsRestart)
	return applied, needsRestart, nil
}

func recordPolicyChanged(a, b record.Options) bool {
	return a.Mode != b.Mode || a.PreRoll != b.PreRoll || a.PostRoll != b.PostRoll || a.Segment != b.Segment ||
		a.MaxAge != b.MaxAge || a.MaxSize != b.MaxSize || a.MinFree != b.MinFree
}

// restartDiff names the settings that differ between the running configuration and cfg
// and that only a restart applies.
func restartDiff(running, cfg Config) []string {
	var out []string
	rv, cv := reflect.ValueOf(running), reflect.ValueOf(cfg)
	for i := range rv.NumField() {
		name := rv.Type().Field(i).Name
		switch name {
		case "Channels", "Version", "Hub", "ICEServers":
			continue // the device's own; compared below
		}
		if slices.Contains(reloadable, name) {
			continue
		}
		if !reflect.DeepEqual(rv.Field(i).Interface(), cv.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	// A TLS configuration is made again at each reading: compare what names the hub.
	if running.Hub.URL != cfg.Hub.URL || running.Hub.ID != cfg.Hub.ID || running.Hub.Insecure != cfg.Hub.Insecure ||
		running.Hub.Key.IsZero() != cfg.Hub.Key.IsZero() || (!cfg.Hub.Key.IsZero() && !running.Hub.Key.Public().Equal(cfg.Hub.Key.Public())) {
		out = append(out, "Hub")
	}
	if !reflect.DeepEqual(running.ICEServers, cfg.ICEServers) && (len(running.ICEServers) > 0 || len(cfg.ICEServers) > 0) {
		out = append(out, "ICEServers")
	}
	return out
}

// liveCaptureArgs are the producer's arguments with the settings in force: its rates and
// motion settings as reloaded (captureArgs' values replaced, the rest as started).
func (d *Device) liveCaptureArgs(sockPath string) []string {
	args := d.captureArgs(sockPath)
	l := d.settings()
	now := d.cfg
	now.FPS, now.Bitrate, now.Motion = l.FPS, l.Bitrate, l.Motion
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--fps":
			args[i+1] = strconv.Itoa(now.FPS)
		case "--bitrate":
			args[i+1] = strconv.FormatInt(int64(now.Bitrate), 10)
		case "--gop":
			args[i+1] = strconv.Itoa(now.gopFrames())
		}
	}
	switch started, live := d.cfg.motionArgs(), now.motionArgs(); {
	case slices.Equal(started, live):
	case len(started) == 0:
		args = append(args, live...) // the producer's options take any order
	default:
		for i := range len(args) - len(started) + 1 {
			if slices.Equal(args[i:i+len(started)], started) {
				args = slices.Concat(args[:i], live, args[i+len(started):])
				break
			}
		}
	}
	return args
}

// newCeilings makes the adaptation policy start again under the new ceilings, and the
// producer hear of them, at the next round.
func (a *adapter) newCeilings() { a.d.manage.ceilingsChanged.Store(true) }

// withCeilings applies the reloaded ceilings to the main rendition (the producer announced
// the rates it was started with) and tells its encoder of them once per producer. It runs
// in the adapter's goroutine.
func (a *adapter) withCeilings(main uint8, renditions []adapt.Rendition) []adapt.Rendition {
	l, m := a.d.settings(), &a.d.manage
	if l.Bitrate == a.d.cfg.Bitrate && l.FPS == a.d.cfg.FPS && !m.ceilingsChanged.Load() {
		return renditions
	}
	if m.ceilingsChanged.Swap(false) {
		a.policy = adapt.New(adapt.Config{})
		m.ceilingsTold = nil
	}
	if gen := a.d.stream.Changed(); gen != m.ceilingsTold {
		// Once per producer: a restarted one starts at its command line's rates.
		m.ceilingsTold = gen
		a.d.stream.SetBitrate(main, int(l.Bitrate))
		a.d.stream.SetFPS(main, float64(l.FPS))
		a.d.log.Info("encoder ceilings", "track", main, "bitrate", l.Bitrate, "fps", l.FPS)
	}
	for i := range renditions {
		if renditions[i].Track == main {
			renditions[i].Bitrate, renditions[i].FPS = int(l.Bitrate), float64(l.FPS)
		}
	}
	return renditions
}

// The management API's limits.
const (
	manageBodyMax = 16 << 10
	manageLogsMax = logLines
)

// registerManage adds the management page and its API to mux (docs/manage.md).
func (d *Device) registerManage(mux *http.ServeMux) {
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.ServeFileFS(w, r, web.Files, name) }
	}
	mux.HandleFunc("GET /manage", page("manage.html"))
	for _, f := range []string{"manage.js", "manage.css"} {
		mux.HandleFunc("GET /"+f, page(f))
	}
	mux.HandleFunc("GET /api/manage/settings", d.manageGet(func() any { return d.manageSettings() }))
	mux.HandleFunc("GET /api/manage/viewers", d.manageGet(func() any { return d.manageViewers() }))
	mux.HandleFunc("GET /api/manage/logs", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n <= 0 || n > manageLogsMax {
			n = 100
		}
		d.manageGet(func() any { return struct{ Lines []string }{d.manage.logs.tail(n)} })(w, r)
	})
	mux.HandleFunc("POST /api/manage/settings", d.managePost(d.manageEdit))
	mux.HandleFunc("POST /api/manage/reload", d.managePost(func(json.RawMessage) (any, error) {
		applied, restart, err := d.ReloadFromFile()
		return reloadResult{Applied: applied, NeedsRestart: restart}, err
	}))
	mux.HandleFunc("POST /api/manage/record", d.managePost(d.manageRecord))
}

// manageAllowed admits a management request: a bearer token with the control grant (LAN
// auth on), or with no token a client address the operator's endpoints answer (--ops-allow,
// this machine by default). It answers the refusal itself.
func (d *Device) manageAllowed(w http.ResponseWriter, r *http.Request) bool {
	if signal.BearerToken(r) != "" && d.gate.Required() {
		return d.allowed(w, r, auth.GrantControl)
	}
	// As the operator's endpoints: a proxied request is refused whatever its direct peer (a
	// reverse proxy on this machine would make every client look local).
	if httpguard.From(r, d.settings().opsAllow(), httpguard.Trust{}) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="p2pcast"`)
	http.Error(w, "the management API needs a token with the control grant, or a client address --ops-allow lists", http.StatusUnauthorized)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (d *Device) manageGet(f func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.manageAllowed(w, r) {
			writeJSON(w, http.StatusOK, f())
		}
	}
}

// managePost checks a POST before f sees its body: authorized, JSON (a form or a text/plain
// request from another site's page cannot be one without a CORS preflight), from this
// origin or an allowed one when the browser says, and small.
func (d *Device) managePost(f func(json.RawMessage) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.manageAllowed(w, r) {
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			http.Error(w, "want Content-Type: application/json", http.StatusUnsupportedMediaType)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host &&
			!httpguard.CheckOrigin(d.settings().AllowOrigins)(r) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, manageBodyMax))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if len(body) == 0 {
			body = []byte("{}")
		}
		if !json.Valid(body) {
			http.Error(w, "malformed JSON", http.StatusBadRequest)
			return
		}
		out, err := f(body)
		if err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, errNoRecorder) {
				code = http.StatusConflict
			}
			writeJSON(w, code, struct {
				Error string `json:"error"`
			}{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// ManageSettings is GET /api/manage/settings: the settings in force, those a reload changes
// and those shown for information.
type ManageSettings struct {
	Stream struct {
		Source     string `json:"source"`
		Size       string `json:"size"`
		FPS        int    `json:"fps"`
		Bitrate    int64  `json:"bitrate"`
		GOP        string `json:"gop"`
		Sub        string `json:"sub,omitempty"`
		SubBitrate int64  `json:"sub_bitrate,omitempty"`
		Adapt      bool   `json:"adapt"`
	} `json:"stream"`
	Record *ManageRecord `json:"record,omitempty"`
	Motion struct {
		// Editable: only for the device's own producer (restarted with them).
		Editable    bool   `json:"editable"`
		Enabled     bool   `json:"enabled"`
		Sensitivity int    `json:"sensitivity"`
		Mask        string `json:"mask"`
		MinDuration string `json:"min_duration"`
		Hold        string `json:"hold"`
		FPS         int    `json:"fps"`
	} `json:"motion"`
	Access struct {
		AllowOrigins []string `json:"allow_origins"`
		AllowHosts   []string `json:"allow_hosts"`
		OpsAllow     []string `json:"ops_allow"`
		MaxViewers   int      `json:"max_viewers"`
		MaxPerSource int      `json:"max_per_source"`
		LANAuth      bool     `json:"lan_auth"`
	} `json:"access"`
	// CanReloadFile says whether "reload from file" is available.
	CanReloadFile bool `json:"can_reload_file"`
}

// ManageRecord is the recording policy in ManageSettings.
type ManageRecord struct {
	Dir      string `json:"dir"`
	Mode     string `json:"mode"`
	PreRoll  string `json:"pre_roll"`
	PostRoll string `json:"post_roll"`
	Segment  string `json:"segment"`
	MaxAge   string `json:"max_age"`
	MaxSize  string `json:"max_size"`
	MinFree  string `json:"min_free"`
}

func (d *Device) manageSettings() ManageSettings {
	l := d.settings()
	var s ManageSettings
	s.Stream.Source, s.Stream.FPS, s.Stream.Bitrate, s.Stream.GOP = d.cfg.sourceLabel(), l.FPS, int64(l.Bitrate), d.cfg.GOP.String()
	s.Stream.Size = d.cfg.Size.String()
	if d.cfg.Size.W == 0 {
		s.Stream.Size = "the output's"
	}
	if d.cfg.Sub.W != 0 {
		s.Stream.Sub, s.Stream.SubBitrate = d.cfg.Sub.String(), int64(d.cfg.SubBitrate)
	}
	s.Stream.Adapt = d.cfg.Adapt
	if r := d.activeRecorder(); r != nil {
		o := r.Options()
		s.Record = &ManageRecord{Dir: o.Dir, Mode: string(o.Mode), PreRoll: o.PreRoll.String(), PostRoll: o.PostRoll.String(),
			Segment: o.Segment.String(), MaxAge: record.Age(o.MaxAge).String(), MaxSize: o.MaxSize.String(), MinFree: o.MinFree.String()}
	}
	m := l.Motion
	s.Motion.Editable = d.cfg.ownProducer()
	s.Motion.Enabled, s.Motion.Sensitivity, s.Motion.Mask, s.Motion.FPS = m.Enabled, m.Sensitivity, m.Mask, m.FPS
	s.Motion.MinDuration, s.Motion.Hold = m.MinDuration.String(), m.Hold.String()
	s.Access.AllowOrigins, s.Access.AllowHosts = nonNil(l.AllowOrigins), nonNil(l.AllowHosts)
	s.Access.OpsAllow = []string{}
	for _, p := range l.opsAllow() {
		s.Access.OpsAllow = append(s.Access.OpsAllow, p.String())
	}
	s.Access.MaxViewers, s.Access.MaxPerSource, s.Access.LANAuth = l.MaxViewers, l.MaxPerSource, d.cfg.LANAuth != nil
	d.manage.mu.Lock()
	s.CanReloadFile = d.manage.reloader != nil
	d.manage.mu.Unlock()
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ManageViewer is one viewer in GET /api/manage/viewers.
type ManageViewer struct {
	ID          string  `json:"id"`
	TokenID     string  `json:"token_id,omitempty"`
	State       string  `json:"state"`
	Rendition   uint8   `json:"rendition"`
	RTTMS       float64 `json:"rtt_ms"`
	EstimateBPS int     `json:"estimate_bps"`
	Bytes       uint64  `json:"bytes"`
	// Pair is the ICE candidate pair: "host → srflx (udp)" (empty before one is selected).
	Pair string `json:"pair,omitempty"`
	// InControl: this viewer drives the desktop (the wayland source).
	InControl bool `json:"in_control,omitempty"`
}

func (d *Device) manageViewers() []ManageViewer {
	controller := ""
	if d.control != nil {
		controller = d.control.Status().Controller
	}
	d.mu.Lock()
	sessions := make([]ManageViewer, 0, len(d.sessions))
	for s := range d.sessions {
		st := s.Stats()
		v := ManageViewer{ID: s.ID(), TokenID: s.Access().TokenID, State: st.State, Rendition: st.Rendition, Bytes: st.Bytes,
			InControl: controller != "" && controller == s.ID()}
		if n := st.Network; n != nil {
			v.RTTMS, v.EstimateBPS = n.RTTMS, n.EstimateBPS
		}
		if p := st.Pair; p != nil {
			v.Pair = p.Local + " → " + p.Remote + " (" + p.Protocol + ")"
		}
		sessions = append(sessions, v)
	}
	d.mu.Unlock()
	slices.SortFunc(sessions, func(a, b ManageViewer) int { return strings.Compare(a.ID, b.ID) })
	return sessions
}

// ManageEdit is POST /api/manage/settings: the fields given change, through Reload.
// Durations are Go durations ("5s"); bitrate takes SI suffixes ("2M").
type ManageEdit struct {
	Bitrate      *string `json:"bitrate"`
	FPS          *int    `json:"fps"`
	MaxViewers   *int    `json:"max_viewers"`
	MaxPerSource *int    `json:"max_per_source"`
	RecordMode   *string `json:"record_mode"`
	PreRoll      *string `json:"record_pre_roll"`
	PostRoll     *string `json:"record_post_roll"`
	Segment      *string `json:"record_segment"`
	MaxAge       *string `json:"record_max_age"`
	MaxSize      *string `json:"record_max_size"`
	MinFree      *string `json:"record_min_free"`
	// The motion settings restart the device's own producer (viewers stay connected).
	MotionEnabled     *bool   `json:"motion"`
	MotionSensitivity *int    `json:"motion_sensitivity"`
	MotionMask        *string `json:"motion_mask"`
	MotionMinDuration *string `json:"motion_min_duration"`
	MotionHold        *string `json:"motion_hold"`
	MotionFPS         *int    `json:"motion_fps"`
}

type reloadResult struct {
	Applied      []string `json:"applied"`
	NeedsRestart []string `json:"needs_restart"`
}

var errNoRecorder = errors.New("this device does not record (no --record-dir)")

func (d *Device) manageEdit(body json.RawMessage) (any, error) {
	var e ManageEdit
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	d.manage.mu.Lock()
	cfg := d.manage.cfg
	d.manage.mu.Unlock()
	var errs []error
	if e.Bitrate != nil {
		errs = append(errs, cfg.Bitrate.Set(*e.Bitrate))
	}
	if e.FPS != nil {
		cfg.FPS = *e.FPS
	}
	if e.MaxViewers != nil {
		cfg.MaxViewers = *e.MaxViewers
	}
	if e.MaxPerSource != nil {
		cfg.MaxPerSource = *e.MaxPerSource
	}
	rec := e.RecordMode != nil || e.PreRoll != nil || e.PostRoll != nil || e.Segment != nil || e.MaxAge != nil || e.MaxSize != nil || e.MinFree != nil
	if rec && d.activeRecorder() == nil {
		return nil, errNoRecorder
	}
	if e.RecordMode != nil {
		errs = append(errs, cfg.Record.Mode.Set(*e.RecordMode))
	}
	for _, f := range []struct {
		v   *string
		dst *time.Duration
	}{{e.PreRoll, &cfg.Record.PreRoll}, {e.PostRoll, &cfg.Record.PostRoll}, {e.Segment, &cfg.Record.Segment}} {
		if f.v != nil {
			v, err := time.ParseDuration(*f.v)
			*f.dst = v
			errs = append(errs, err)
		}
	}
	if e.MaxAge != nil {
		var a record.Age
		errs = append(errs, a.Set(*e.MaxAge))
		cfg.Record.MaxAge = time.Duration(a)
	}
	if e.MaxSize != nil {
		errs = append(errs, cfg.Record.MaxSize.Set(*e.MaxSize))
	}
	if e.MinFree != nil {
		errs = append(errs, cfg.Record.MinFree.Set(*e.MinFree))
	}
	if e.MotionEnabled != nil {
		cfg.Motion.Enabled = *e.MotionEnabled
	}
	if e.MotionSensitivity != nil {
		cfg.Motion.Sensitivity = *e.MotionSensitivity
	}
	if e.MotionMask != nil {
		cfg.Motion.Mask = *e.MotionMask
	}
	if e.MotionFPS != nil {
		cfg.Motion.FPS = *e.MotionFPS
	}
	for _, f := range []struct {
		v   *string
		dst *time.Duration
	}{{e.MotionMinDuration, &cfg.Motion.MinDuration}, {e.MotionHold, &cfg.Motion.Hold}} {
		if f.v != nil {
			v, err := time.ParseDuration(*f.v)
			*f.dst = v
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	applied, restart, err := d.Reload(cfg)
	if err != nil {
		return nil, err
	}
	return reloadResult{Applied: nonNil(applied), NeedsRestart: nonNil(restart)}, nil
}

func (d *Device) manageRecord(body json.RawMessage) (any, error) {
	var req struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	r := d.activeRecorder()
	if r == nil {
		return nil, errNoRecorder
	}
	switch req.Action {
	case "start":
		r.Start()
	case "stop":
		r.Stop()
	default:
		return nil, errors.New(`action: want "start" or "stop"`)
	}
	d.log.Info("record: " + req.Action + " asked on the management page")
	return r.Status(), nil
}
