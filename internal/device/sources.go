package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
	"github.com/p2pcast/p2pcast/internal/lifecycle"
	"github.com/p2pcast/p2pcast/internal/metrics"
	"github.com/p2pcast/p2pcast/internal/record"
	"github.com/p2pcast/p2pcast/internal/signal"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// DefaultSourceID is the default source's id when Config.SourceID is "".
const DefaultSourceID = "main"

// sourceIDPattern is what a source id may be: it appears in URLs (/whep/ID, ?source=ID) and
// in recording paths (DIR/ID/), so nothing that needs escaping.
var sourceIDPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// ErrSourceSpec: an --add-source value that does not parse.
var ErrSourceSpec = errors.New("source spec")

// SourceConfig is one more source of the device (--add-source): what it captures and the
// settings it does not inherit from the device's (Config.Size, FPS, Bitrate).
type SourceConfig struct {
	ID string
	// Source is as Config.Source: testpattern, wayland, v4l2, socket, or an rtsp:// URL.
	Source string
	// Camera is the v4l2 source's device ("": /dev/video0).
	Camera string
	// SocketPath is the socket source's capture socket ("": Config.SocketPath with "-ID"
	// before its extension, or a private temporary path).
	SocketPath string
	// Size, FPS and Bitrate override the device's when set.
	Size    Size
	FPS     int
	Bitrate Bitrate
}

// String is the spec as --add-source takes it.
func (s SourceConfig) String() string {
	spec := s.Source
	switch {
	case s.Source == "v4l2" && s.Camera != "":
		spec = "v4l2:" + s.Camera
	case s.Source == "socket" && s.SocketPath != "":
		spec = "socket:" + s.SocketPath
	}
	out := s.ID + "=" + spec
	if s.Size.W != 0 {
		out += ";size=" + s.Size.String()
	}
	if s.FPS != 0 {
		out += ";fps=" + strconv.Itoa(s.FPS)
	}
	if s.Bitrate != 0 {
		out += ";bitrate=" + s.Bitrate.String()
	}
	return out
}

// ParseSourceConfig parses one "ID=SPEC[;size=WxH][;fps=N][;bitrate=B]": SPEC as --source
// takes it, or v4l2:/dev/videoN (a camera), or socket:/path (its capture socket).
func ParseSourceConfig(v string) (SourceConfig, error) {
	id, rest, ok := strings.Cut(strings.TrimSpace(v), "=")
	if !ok {
		return SourceConfig{}, fmt.Errorf("%w %q: want ID=SPEC, e.g. cam2=rtsp://camera/stream or desk=wayland", ErrSourceSpec, v)
	}
	if !sourceIDPattern.MatchString(id) {
		return SourceConfig{}, fmt.Errorf("%w %q: the id %q: want 1 to 32 of a-z, 0-9 and -", ErrSourceSpec, v, id)
	}
	parts := strings.Split(rest, ";")
	s := SourceConfig{ID: id, Source: parts[0]}
	switch {
	case strings.HasPrefix(s.Source, "v4l2:"):
		s.Source, s.Camera = "v4l2", strings.TrimPrefix(s.Source, "v4l2:")
	case strings.HasPrefix(s.Source, "socket:"):
		s.Source, s.SocketPath = "socket", strings.TrimPrefix(s.Source, "socket:")
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		var err error
		switch k {
		case "size":
			err = s.Size.Set(val)
		case "fps":
			s.FPS, err = strconv.Atoi(val)
			if err == nil && (s.FPS < 1 || s.FPS > 240) {
				err = fmt.Errorf("fps %d: want 1 to 240", s.FPS)
			}
		case "bitrate":
			err = s.Bitrate.Set(val)
		default:
			err = fmt.Errorf("unknown setting %q (want size, fps or bitrate)", k)
		}
		if err != nil {
			return SourceConfig{}, fmt.Errorf("%w %q: %v", ErrSourceSpec, v, err)
		}
	}
	return s, nil
}

// SourceList is the repeatable --add-source flag (flag.Value). One value may hold several
// specs joined by commas: that is how the config file gives an array
// (add-source = ["cam2=rtsp://…", "desk=wayland"]). A spec therefore holds no comma.
type SourceList []SourceConfig

func (l *SourceList) String() string {
	if l == nil {
		return ""
	}
	out := make([]string, len(*l))
	for i, s := range *l {
		out[i] = s.String()
	}
	return strings.Join(out, ",")
}

// Set adds the sources of v.
func (l *SourceList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		s, err := ParseSourceConfig(item)
		if err != nil {
			return err
		}
		*l = append(*l, s)
	}
	return nil
}

// defaultID is the default source's id.
func (c Config) defaultID() string {
	if c.SourceID == "" {
		return DefaultSourceID
	}
	return c.SourceID
}

// multiSource reports whether the device serves more than its default source.
func (c Config) multiSource() bool { return len(c.Sources) > 0 }

// forSource is the device's Config as source s sees it: its capture and rates, the rest
// inherited. What only one source can have (the audio devices, the RTSP credentials given
// apart from the URL, the sub rendition sized for the default) stays with the default.
func (c Config) forSource(s SourceConfig) Config {
	out := c
	out.Sources = nil
	out.SourceID = s.ID
	out.Source, out.Camera = s.Source, s.Camera
	out.RTSPUser, out.RTSPPassword = "", ""
	out.AudioIn, out.AudioOut = "", ""
	out.Sub, out.SubBitrate = Size{}, 0
	if s.Size.W != 0 {
		out.Size = s.Size
	} else if out.Size.W == 0 {
		out.Size = Defaults().Size // beside a desktop default (its own size), the usual one
	}
	if s.FPS != 0 {
		out.FPS = s.FPS
	}
	if s.Bitrate != 0 {
		out.Bitrate = s.Bitrate
	}
	if s.Source != "testpattern" {
		out.Pattern, out.PatternObject = "", ""
	}
	if !out.ownProducer() {
		out.Motion = Motion{}
	}
	if s.Source != "wayland" {
		out.Output, out.DesktopBackend = "", DesktopAuto
	} else if s.Size.W == 0 {
		out.Size = Size{} // a desktop streams at its own size unless told
	}
	out.SocketPath = s.SocketPath
	if out.SocketPath == "" && c.SocketPath != "" {
		ext := filepath.Ext(c.SocketPath)
		out.SocketPath = strings.TrimSuffix(c.SocketPath, ext) + "-" + s.ID + ext
	}
	if c.Record.Dir != "" {
		out.Record.Dir = filepath.Join(c.Record.Dir, s.ID)
	}
	return out
}

// feedConfigs are the Config of each source, the default first. A single-source device's is
// its Config as it is (recordings straight in Record.Dir, as before sources existed).
func (c Config) feedConfigs() []Config {
	first := c
	first.Sources = nil
	if !c.multiSource() {
		return []Config{first}
	}
	if c.Record.Dir != "" {
		first.Record.Dir = filepath.Join(c.Record.Dir, c.defaultID())
	}
	out := []Config{first}
	for _, s := range c.Sources {
		out = append(out, c.forSource(s))
	}
	return out
}

// validateSources checks the ids (well formed, each once) and each extra source's settings.
func (c Config) validateSources() []error {
	var errs []error
	if c.SourceID != "" && !sourceIDPattern.MatchString(c.SourceID) {
		errs = append(errs, fmt.Errorf("source id %q: want 1 to 32 of a-z, 0-9 and -", c.SourceID))
	}
	seen := map[string]bool{c.defaultID(): true}
	desktops := 0
	if c.Source == "wayland" {
		desktops++
	}
	for _, s := range c.Sources {
		if !sourceIDPattern.MatchString(s.ID) {
			errs = append(errs, fmt.Errorf("source id %q: want 1 to 32 of a-z, 0-9 and -", s.ID))
		}
		if seen[s.ID] {
			errs = append(errs, fmt.Errorf("source id %q given twice", s.ID))
		}
		seen[s.ID] = true
		if s.Source == "wayland" {
			desktops++
		}
		if s.SocketPath != "" && s.Source != "socket" {
			errs = append(errs, fmt.Errorf("source %s: a socket path is for the socket source", s.ID))
		}
		if err := c.forSource(s).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", s.ID, err))
		}
	}
	if desktops > 1 {
		// One desktop, one control channel: which desktop a viewer drove would be ambiguous.
		errs = append(errs, errors.New("sources: at most one wayland source per device"))
	}
	return errs
}

// srcFeed is one source of the device: its stream and what fills it (a producer on its capture
// socket, a camera, a desktop), its adaptation and its recorder.
type srcFeed struct {
	id  string
	cfg Config // the device's Config as this source sees it (forSource)
	log *slog.Logger

	stream  *stream.Stream
	ingest  *ingest
	talk    *talkFloor
	adapter *adapter
	desktop *desktop // the wayland source's backend, or nil
	// sockPath is an extra source's capture socket, set when it listens (the default's is
	// Run's).
	sockPath string
	recorder atomic.Pointer[record.Recorder] // with Record.Dir, once started
}

// feedByID is the source named id ("" is the default), or nil.
func (d *Device) feedByID(id string) *srcFeed {
	if id == "" {
		return d.feeds[0]
	}
	for _, f := range d.feeds {
		if f.id == id {
			return f
		}
	}
	return nil
}

// Sources describes the device's sources, the default first.
func (d *Device) Sources() []signal.SourceInfo {
	out := make([]signal.SourceInfo, 0, len(d.feeds))
	for i, f := range d.feeds {
		si := signal.SourceInfo{ID: f.id, Description: f.cfg.sourceLabel(), Default: i == 0}
		if info, ok := f.stream.Info(); ok {
			si.Stream = &info
		}
		out = append(out, si)
	}
	return out
}

// sourceIDs lists the sources' ids, for errors.
func (d *Device) sourceIDs() string {
	ids := make([]string, len(d.feeds))
	for i, f := range d.feeds {
		ids[i] = f.id
	}
	return strings.Join(ids, ", ")
}

// SourceStream is the stream of the source named id ("" the default), nil if there is none.
func (d *Device) SourceStream(id string) *stream.Stream {
	if f := d.feedByID(id); f != nil {
		return f.stream
	}
	return nil
}

// anyChanged is a channel closed at the next change of any source's picture: what the hub
// is told again.
func (d *Device) anyChanged() <-chan struct{} {
	if len(d.feeds) == 1 {
		return d.stream.Changed()
	}
	out := make(chan struct{})
	var once sync.Once
	for _, f := range d.feeds {
		ch := f.stream.Changed()
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(out) })
			case <-out:
			}
		}()
	}
	return out
}

// publisherFor tags a source's events with its id (on a multi-source device: a single
// source's events keep no source, as before) and publishes them.
func (d *Device) publisherFor(id string) func(event.Event) {
	if !d.cfg.multiSource() {
		return d.publishEvent
	}
	return func(e event.Event) {
		e.Source = id
		d.publishEvent(e)
	}
}

// feedSocketPath is a source's capture socket: where its producer connects (the socket
// source's external producer, the device's own p2pcast-capture). tempDir is the device's
// private directory for the sources that name none.
func feedSocketPath(f *srcFeed, tempDir string) string {
	if f.cfg.SocketPath != "" {
		return f.cfg.SocketPath
	}
	return filepath.Join(tempDir, "capture-"+f.id+".sock")
}

// captureComponent is an extra source's capture socket ("capture-ID"), where its producer
// connects; the default's is Run's "capture".
func (d *Device) captureComponent(f *srcFeed, tempDir *string) lifecycle.Component {
	var sock net.Listener
	return lifecycle.Component{
		Name: "capture-" + f.id,
		Start: func(context.Context) (err error) {
			if f.cfg.SocketPath == "" && *tempDir == "" {
				if *tempDir, err = os.MkdirTemp("", "p2pcast-"); err != nil {
					return err
				}
			}
			f.sockPath = feedSocketPath(f, *tempDir)
			sock, err = listenUnix(f.sockPath)
			return err
		},
		Run:  func(ctx context.Context) error { f.ingest.serve(ctx, sock); return nil },
		Stop: func(context.Context) error { os.Remove(f.sockPath); return nil },
	}
}

// feedComponents are what runs a source: its camera or producer, the desktop's control, its
// adaptation and its recorder. The default's keep the names a single-source device has always
// had; an extra source's end in "-ID". defaultSock is the default's capture socket.
func (d *Device) feedComponents(f *srcFeed, defaultSock func() string) []lifecycle.Component {
	name, sockPath := func(n string) string { return n + "-" + f.id }, func() string { return f.sockPath }
	if f == d.feeds[0] {
		name, sockPath = func(n string) string { return n }, defaultSock
	}
	var cs []lifecycle.Component
	if isRTSP(f.cfg.Source) {
		cs = append(cs, lifecycle.Component{
			Name: name("camera"),
			Run:  func(ctx context.Context) error { d.runRTSP(ctx, f); return nil },
		})
	}
	if f.cfg.ownProducer() {
		var sup *supervisor
		cs = append(cs, lifecycle.Component{
			Name: name("producer"),
			Start: func(context.Context) error {
				path := d.cfg.CapturePath
				if path == "" {
					var err error
					if path, err = FindCapture(); err != nil {
						return err
					}
				}
				sup = &supervisor{path: path, log: f.log, args: producerArgs(f.cfg, f.desktop, sockPath())}
				if f == d.feeds[0] {
					// The default source's producer follows a reload (manage.go).
					sup.argsNow, sup.restart = func() []string { return d.liveCaptureArgs(sockPath()) }, d.manage.restartProducer
				}
				if f.desktop != nil {
					sup.files = f.desktop.files
				}
				return nil
			},
			Run:      func(ctx context.Context) error { sup.run(ctx); return nil },
			StopWait: stopGrace + time.Second,
		})
	}
	if f.desktop != nil {
		// Stopped before the sessions end: the viewer in control is released first.
		cs = append(cs, lifecycle.Component{
			Name: "control",
			// A desktop that went away ends the device: the producer could only fail again.
			Run: func(ctx context.Context) error {
				if f.desktop.gone == nil {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-f.desktop.gone:
					return f.desktop.lost()
				}
			},
			Stop: func(context.Context) error {
				if d.control != nil {
					_ = d.control.Close()
				}
				f.desktop.close()
				return nil
			},
		})
	}
	cs = append(cs, lifecycle.Component{
		Name: name("adapt"),
		Run:  func(ctx context.Context) error { f.adapter.run(ctx); return nil },
	})
	if c, ok := d.recordComponent(f); ok {
		c.Name = name(c.Name)
		cs = append(cs, c)
	}
	return cs
}

// sourceStatus describes each source for /api/status.
func (d *Device) sourceStatus() []SourceStatus {
	viewers := map[*srcFeed]int{}
	d.mu.Lock()
	for _, f := range d.sessions {
		viewers[f]++
	}
	d.mu.Unlock()
	out := make([]SourceStatus, 0, len(d.feeds))
	for _, f := range d.feeds {
		ss := SourceStatus{ID: f.id, Description: f.cfg.sourceLabel(), Stats: f.stream.Stats(), Viewers: viewers[f],
			Adapt: f.adapter.status()}
		if info, ok := f.stream.Info(); ok {
			ss.Stream = &info
		}
		if r := f.recorder.Load(); r != nil {
			rs := r.Status()
			ss.Record = &rs
		}
		out = append(out, ss)
	}
	return out
}

// channelsOf are the data channels a source's viewers are told of: the device's, but "control"
// only on the desktop's source (the page opens what is listed; a viewer of a camera has no
// desktop to drive there).
func (d *Device) channelsOf(f *srcFeed) []string {
	out := slices.Sorted(maps.Keys(d.cfg.Channels))
	if d.desktop != nil && f.desktop == nil {
		out = slices.DeleteFunc(out, func(l string) bool { return l == ControlChannel })
	}
	return out
}

// writeSourceMetrics writes a multi-source device's per-source series, labelled with the
// source's id (the unlabelled stream and record series above are the default source's).
func (d *Device) writeSourceMetrics(w *metrics.Writer) {
	var attached, viewers, frames, keyframes, segments []metrics.Sample
	for _, ss := range d.sourceStatus() {
		l := []string{"source", ss.ID}
		on := 0.0
		if ss.Stream != nil {
			on = 1
		}
		attached = append(attached, metrics.Sample{Labels: l, Value: on})
		viewers = append(viewers, metrics.Sample{Labels: l, Value: float64(ss.Viewers)})
		frames = append(frames, metrics.Sample{Labels: l, Value: float64(ss.Stats.Frames)})
		keyframes = append(keyframes, metrics.Sample{Labels: l, Value: float64(ss.Stats.Keyframes)})
		if ss.Record != nil {
			segments = append(segments, metrics.Sample{Labels: l, Value: float64(ss.Record.Segments)})
		}
	}
	const g, c = metrics.Gauge, metrics.Counter
	w.Family("p2pcast_source_attached", g, "1 while a producer or camera feeds the source.", attached...)
	w.Family("p2pcast_source_viewers", g, "Viewer sessions of the source open now.", viewers...)
	w.Family("p2pcast_source_frames_total", c, "Frames the source published, all tracks (a new producer starts again at 0).", frames...)
	w.Family("p2pcast_source_keyframes_total", c, "Keyframes the source published.", keyframes...)
	if len(segments) > 0 {
		w.Family("p2pcast_source_record_segments", g, "Closed recording segments of the source kept.", segments...)
	}
}
