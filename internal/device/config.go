package device

import (
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/peer"
	"github.com/p2pcast/p2pcast/internal/record"
	"github.com/p2pcast/p2pcast/internal/rtsp"
)

// Size is a picture size that parses "WxH".
type Size struct{ W, H int }

func (s Size) String() string { return fmt.Sprintf("%dx%d", s.W, s.H) }

// Set parses "1280x720"; both sides even (4:2:0) and at most 8192.
func (s *Size) Set(v string) error {
	w, h, ok := strings.Cut(strings.ToLower(v), "x")
	if !ok {
		return fmt.Errorf("size %q: want WxH, e.g. 1280x720", v)
	}
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if err1 != nil || err2 != nil || wi < 16 || hi < 16 || wi > 8192 || hi > 8192 || wi%2 != 0 || hi%2 != 0 {
		return fmt.Errorf("size %q: want even width and height between 16 and 8192", v)
	}
	s.W, s.H = wi, hi
	return nil
}

// Bitrate is bits per second that parses SI suffixes: 2M = 2,000,000, 500k = 500,000.
type Bitrate int64

func (b Bitrate) String() string {
	switch {
	case b >= 1e6 && b%1e6 == 0:
		return fmt.Sprintf("%dM", b/1e6)
	case b >= 1e3 && b%1e3 == 0:
		return fmt.Sprintf("%dk", b/1e3)
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set parses "2M", "1.5M", "500k" or "2000000".
func (b *Bitrate) Set(v string) error {
	mult := 1.0
	num := v
	switch {
	case strings.HasSuffix(v, "M"), strings.HasSuffix(v, "m"):
		mult, num = 1e6, v[:len(v)-1]
	case strings.HasSuffix(v, "k"), strings.HasSuffix(v, "K"):
		mult, num = 1e3, v[:len(v)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f*mult < 10e3 || f*mult > 100e6 {
		return fmt.Errorf("bitrate %q: want 10k to 100M, e.g. 2M or 500k", v)
	}
	*b = Bitrate(f * mult)
	return nil
}

// Config is what a device needs; Validate checks it.
type Config struct {
	HTTPAddr   string
	SocketPath string // "" = a private temporary path
	// Source is what runs the producer: "testpattern" (p2pcast-capture draws the test
	// pattern), "wayland" (p2pcast-capture captures the Wayland desktop of WAYLAND_DISPLAY, and
	// viewers with the control grant drive it: Channels gets "control") or "socket" (the device
	// runs nothing and waits for any producer on its socket), "v4l2" (p2pcast-capture reads a
	// V4L2 camera, Camera: raw pictures encoded, a camera's own H.264 passed through), or an
	// RTSP camera's URL
	// ("rtsp://[user:pass@]host[:port]/path": the device plays it and republishes its tracks).
	Source string
	// SourceID is the id of the default source (Source): "" is DefaultSourceID. Viewers that
	// name no source watch it.
	SourceID string
	// Sources are the device's other sources (--add-source; docs/sources.md), each with its
	// own stream, producer or camera, adaptation and recordings (Record.Dir/<id>/, and then the
	// default's too).
	Sources []SourceConfig
	// Camera is the v4l2 source's device ("": /dev/video0).
	Camera string
	// EncoderPriority is the producer's --encoder-priority: its video encoders to try in order,
	// e.g. "rkmpi,v4l2m2m,x264" ("": the producer's default, hardware first, x264 last).
	EncoderPriority string
	// RTSPUser and RTSPPassword, when RTSPUser is set, replace the credentials of an RTSP
	// Source's URL (a password kept out of the command line: --rtsp-password-file).
	RTSPUser, RTSPPassword string
	// Size is the picture size; with the wayland source the zero Size streams the output at
	// its own size (and follows it when it changes).
	Size    Size
	FPS     int
	Bitrate Bitrate
	GOP     time.Duration
	// Output is the Wayland output the wayland source captures and points into ("": the first;
	// the wlroots backend only: the portal asks the user).
	Output string
	// DesktopBackend forces the wayland source's backend: DesktopWlroots or DesktopPortal; ""
	// picks wlroots where the compositor offers wlr-screencopy, else the portal.
	DesktopBackend string
	// DataDir is where the device keeps state (the portal's restore token); "" keeps none.
	DataDir string
	// Channels are the data channels viewers may open besides the device's own "events", by
	// label (peer.Channel: the grant each needs, and its handler). The wayland source adds
	// "control" when the device runs.
	Channels map[string]peer.Channel
	// CapturePath is the p2pcast-capture binary ("" = look next to this binary, then PATH).
	CapturePath string
	// AudioIn, for the test pattern's producer: "testtone" (a beep each second, in step with a
	// flash in the picture) or an ALSA capture device; "" sends no audio.
	AudioIn string
	// AudioOut is the ALSA playback device for talk-back; "" takes none (viewers cannot talk).
	AudioOut string
	// Pattern is what the test pattern's producer draws: "bars" (easy to compress: well under
	// the bitrate) or "busy" (noise, fast motion, a scene cut every 3 s: the encoder spends the
	// whole bitrate, to stress a link). "" is bars.
	Pattern string
	// Sub, when set, makes the test pattern's producer also send each picture downscaled to
	// this size, encoded on its own as a second video track (an alternate rendition of the
	// main one); the zero Size sends none.
	Sub Size
	// SubBitrate is the sub rendition's target bitrate; 0 is a quarter of Bitrate.
	SubBitrate Bitrate
	// PlayoutDelay is sent to receivers as min = max; negative disables the extension.
	PlayoutDelay time.Duration
	MaxViewers   int
	// P2PViewers, above 0, is the peer-to-peer audience: past it, a viewer through a hub
	// that bridges to an SFU (and whose token only views) is served by the SFU, to which the
	// device then publishes once (docs/sfu.md). 0: no limit of its own (the uplink estimate
	// still sends viewers there).
	P2PViewers int
	// SFU, with its Janus URL, is where the device publishes for its audience past P2PViewers.
	SFU SFU
	// Hub, when its URL is set, keeps the device connected to a rendezvous hub. Without
	// LANAuth (or InsecureNoAuth) it turns the LAN endpoints off: they would bypass tokens.
	Hub HubConfig
	// NoLAN turns off the viewer endpoints on HTTPAddr (page, WHEP, WebSocket); only the hub
	// then reaches the device.
	NoLAN bool
	// ICEServers are STUN/TURN servers for LAN mode; with a hub, the hub's replace them.
	ICEServers []webrtc.ICEServer
	// ICETCPPort is the TCP port for ICE over TCP (0: any free port; negative: off), so viewers
	// whose network drops UDP can still connect directly.
	ICETCPPort int
	// ICEUDPPort, when above 0, makes every session share one UDP socket on that port (a
	// firewall rule or a port forward for one port); 0 gives each session its own.
	ICEUDPPort int
	// PublicIPs are addresses a port forward or 1:1 NAT reaches the device on, offered to
	// viewers beside its own addresses.
	PublicIPs []string

	// LANAuth, when set, makes viewers on the device's own endpoints present a token (hub
	// format), verified offline; nil leaves them open, which Validate allows only on a
	// loopback address or with InsecureNoAuth.
	LANAuth *LANAuth
	// InsecureNoAuth lets anyone who reaches HTTPAddr watch (and later talk and control).
	InsecureNoAuth bool
	// AllowOrigins are the pages of other origins that may use WHEP and /ws (CORS); none by
	// default. AllowHosts are host names the device answers to besides localhost and IP
	// literals (a DNS-rebinding page reaches it under its own name, which is refused).
	AllowOrigins, AllowHosts []string
	// MaxPerSource bounds the sessions of one source: an address (an IPv6 /64) on the LAN, a
	// token through a hub. It is capped at three quarters of MaxViewers, so one source can
	// never take every slot.
	MaxPerSource int
	// NegotiateTimeout and ConnectTimeout override how long a session may take to negotiate and
	// to connect before it is ended (0: peer's defaults, 10 s and 30 s).
	NegotiateTimeout, ConnectTimeout time.Duration
	// Recovery turns NACK retransmission or forward error correction off, to measure what each
	// buys (both on in the zero value).
	Recovery peer.Recovery
	// Adapt runs the adaptation policy (internal/adapt): viewers switched between renditions,
	// encoders slowed down to what viewers' paths take. Off, the encoders run as configured
	// and every viewer gets the main stream (pacing and retransmission stay).
	Adapt bool
	// OpsAllow are the client addresses that may read /metrics, /healthz and /readyz (nil:
	// DefaultOpsAllow, this machine; empty: nobody).
	OpsAllow []netip.Prefix
	// Version is the build's version, for p2pcast_build_info.
	Version string
	// Record, with its Dir set, records the stream continuously on the device's disk
	// (internal/record; docs/recording.md).
	Record record.Options
	// Motion turns on motion detection in the device's own producer (docs/motion.md).
	Motion Motion
	// PatternObject, for the test pattern: a moving object shown on a schedule,
	// "on=2s,off=3s" ("" none): a scene for motion detection.
	PatternObject string
	// Webhook, with its URL set, POSTs every event's start and end there (internal/webhook).
	Webhook Webhook
	// DetectorSocket, when set, is a Unix socket where local detector processes write events
	// as JSON lines (docs/motion.md).
	DetectorSocket string
}

// LANAuth is how the device checks tokens on its own endpoints.
type LANAuth struct {
	// Store is the device's own key store (--data): its key signs pairing links and
	// `p2pcast token --data DIR` tokens, and its revocation list counts. May be nil when only
	// the hub's tokens are accepted.
	Store *auth.Store
	// HubKeys verify tokens minted by a hub (`p2pcast token key --data HUBDIR`: its signing
	// key when it was printed; a rotation at the hub needs the new one).
	HubKeys []ed25519.PublicKey
	// HubKeyFile, if set, is a file of keys that verify the hub's tokens: its JWK Set
	// (`p2pcast token jwks --data HUBDIR`, or its /.well-known/jwks.json saved), reread when it
	// changes, so copying the hub's set there after a rotation is enough.
	HubKeyFile string
	// ID is the device id LAN tokens must name (or "*"): the hub id when there is one.
	ID string
}

// HubConfig is the device's identity at its hub.
type HubConfig struct {
	URL string
	ID  string
	Key auth.DeviceKey
	// TLS configures a wss:// hub connection (e.g. a private CA); nil uses the system's roots.
	TLS *tls.Config
	// Insecure allows ws:// (no TLS) to a hub at a globally routable address; private, shared
	// and loopback addresses are allowed without it (a LAN, a lab).
	Insecure bool
}

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{HTTPAddr: "127.0.0.1:8080", Source: "testpattern", Pattern: "bars", Size: Size{1280, 720}, FPS: 30,
		Bitrate: 2_000_000, GOP: 2 * time.Second, MaxViewers: 200, MaxPerSource: 64, Adapt: true}
}

// DefaultLANID is the device id LAN tokens name when the device has no hub id.
const DefaultLANID = "local"

// loopbackOnly reports whether addr (host:port) listens only on loopback addresses.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	var errs []error
	if !slices.Contains(Sources, c.Source) && !isRTSP(c.Source) {
		errs = append(errs, fmt.Errorf("source %q: want %s, or an rtsp:// URL", c.Source, strings.Join(Sources, ", ")))
	}
	if c.Camera != "" && c.Source != "v4l2" {
		errs = append(errs, errors.New("camera: only the v4l2 source reads a camera device"))
	}
	if c.RTSPUser != "" && !isRTSP(c.Source) {
		errs = append(errs, errors.New("RTSP credentials: the source is not an rtsp:// URL"))
	}
	if c.Output != "" && c.Source != "wayland" {
		errs = append(errs, errors.New("output: only the wayland source captures an output"))
	}
	if c.DesktopBackend != DesktopAuto && (c.Source != "wayland" || !slices.Contains(DesktopBackends, c.DesktopBackend)) {
		errs = append(errs, fmt.Errorf("desktop %q: want %s with the wayland source", c.DesktopBackend, strings.Join(DesktopBackends, " or ")))
	}
	if c.FPS < 1 || c.FPS > 240 {
		errs = append(errs, fmt.Errorf("fps %d: want 1 to 240", c.FPS))
	}
	if c.GOP < 100*time.Millisecond || c.GOP > time.Minute {
		errs = append(errs, fmt.Errorf("gop %s: want 100ms to 1m", c.GOP))
	}
	for _, a := range []struct{ flag, v string }{{"audio-in", c.AudioIn}, {"audio-out", c.AudioOut}} {
		if a.v == "" {
			continue
		}
		if !c.ownProducer() {
			errs = append(errs, fmt.Errorf("%s: a socket producer or a camera sends its own tracks: audio options are for the device's own producer", a.flag))
		}
		if strings.HasPrefix(a.v, "-") || len(a.v) > 256 {
			errs = append(errs, fmt.Errorf("%s %q: not an ALSA device name", a.flag, a.v))
		}
	}
	if c.Size.W == 0 && c.Source != "wayland" {
		errs = append(errs, errors.New("size is not set"))
	}
	errs = append(errs, c.validatePicture()...)
	if c.Hub.URL != "" {
		if err := auth.ValidateDeviceID(c.Hub.ID); err != nil {
			errs = append(errs, fmt.Errorf("hub device id: %w", err))
		}
		if c.Hub.Key.IsZero() {
			errs = append(errs, errors.New("hub: a device key is required (--key-file, P2PCAST_KEY or --key)"))
		}
	}
	if c.NoLAN && c.Hub.URL == "" {
		errs = append(errs, errors.New("no LAN endpoints and no hub: nobody could watch"))
	}
	if !c.NoLAN && c.Hub.URL == "" && c.LANAuth == nil && !c.InsecureNoAuth && !loopbackOnly(c.HTTPAddr) {
		errs = append(errs, fmt.Errorf("%w: listening on %s lets anyone who reaches it watch: pair viewers (--pair), accept hub tokens (--hub-jwks, --hub-token-key), "+
			"listen on 127.0.0.1, or give --insecure-no-auth", ErrNoAuth, c.HTTPAddr))
	}
	if c.LANAuth != nil && c.LANAuth.Store == nil && len(c.LANAuth.HubKeys) == 0 && c.LANAuth.HubKeyFile == "" {
		errs = append(errs, errors.New("LAN auth without a key: give --data (pairing), --hub-jwks or --hub-token-key"))
	}
	if c.MaxPerSource < 1 {
		errs = append(errs, fmt.Errorf("max sessions per source %d: want at least 1", c.MaxPerSource))
	}
	if c.ICEUDPPort < 0 || c.ICEUDPPort > 65535 {
		errs = append(errs, fmt.Errorf("ICE UDP port %d: want 1 to 65535, or 0 for a socket per session", c.ICEUDPPort))
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("public IP %q is not an IP address", ip))
		}
	}
	if c.ICETCPPort > 65535 {
		errs = append(errs, fmt.Errorf("ICE TCP port %d: want 0 to 65535, or negative for off", c.ICETCPPort))
	}
	if c.MaxViewers < 1 {
		errs = append(errs, fmt.Errorf("max viewers %d: want at least 1", c.MaxViewers))
	}
	errs = append(errs, c.validateSFU()...)
	if c.Record.Dir != "" {
		if err := c.Record.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.validateEvents()...)
	if len(errs) == 0 && (c.SourceID != "" || len(c.Sources) > 0) {
		errs = append(errs, c.validateSources()...)
	}
	return errors.Join(errs...)
}

// sourceLabel is Source as it may be shown: a camera URL without its password.
func (c Config) sourceLabel() string {
	if isRTSP(c.Source) {
		return rtsp.RedactURL(c.Source)
	}
	return c.Source
}

// ownProducer reports whether the device runs p2pcast-capture itself.
func (c Config) ownProducer() bool {
	return c.Source == "testpattern" || c.Source == "wayland" || c.Source == "v4l2"
}

// Sources are the values of Config.Source besides RTSP URLs.
var Sources = []string{"testpattern", "wayland", "v4l2", "socket"}

// Patterns are the test pattern producer's --pattern values.
var Patterns = []string{"bars", "busy", "still"}

// validatePicture checks what only the test pattern's producer takes: its pattern and the sub
// rendition (a downscale: smaller than Size, never larger in either dimension).
func (c Config) validatePicture() []error {
	var errs []error
	if c.Pattern != "" && !slices.Contains(Patterns, c.Pattern) {
		errs = append(errs, fmt.Errorf("pattern %q: want %s", c.Pattern, strings.Join(Patterns, " or ")))
	}
	if c.Source != "testpattern" {
		for _, o := range []struct {
			flag string
			set  bool
		}{{"pattern", c.Pattern != "" && c.Pattern != "bars"}, {"sub", c.Sub.W != 0}, {"sub-bitrate", c.SubBitrate != 0}} {
			if o.set {
				errs = append(errs, fmt.Errorf("%s: only the test pattern's producer takes it (not the %s source)", o.flag, c.sourceLabel()))
			}
		}
	}
	if c.SubBitrate != 0 && c.Sub.W == 0 {
		errs = append(errs, errors.New("sub-bitrate: needs sub (the sub rendition's size)"))
	}
	if c.Sub.W != 0 && c.Size.W != 0 && (c.Sub.W > c.Size.W || c.Sub.H > c.Size.H || c.Sub == c.Size) {
		errs = append(errs, fmt.Errorf("sub %s: must be smaller than size %s (a downscaled rendition)", c.Sub, c.Size))
	}
	return errs
}

// pictureArgs are the test pattern producer's arguments for Pattern and the sub rendition.
func (c Config) pictureArgs() []string {
	var args []string
	if c.Pattern != "" {
		args = append(args, "--pattern", c.Pattern)
	}
	if c.Sub.W != 0 {
		args = append(args, "--sub", c.Sub.String())
		if c.SubBitrate != 0 {
			args = append(args, "--sub-bitrate", strconv.FormatInt(int64(c.SubBitrate), 10))
		}
	}
	return args
}

// ErrNoAuth: the device would serve viewers beyond this machine with no authentication.
var ErrNoAuth = errors.New("no viewer authentication")

// lanOff reports whether the LAN endpoints are off: asked for, or implied by a hub without LAN
// auth (they would let anyone on the network around the hub's tokens).
func (c Config) lanOff() bool {
	return c.NoLAN || (c.Hub.URL != "" && c.LANAuth == nil && !c.InsecureNoAuth)
}

// perSource is the per-source session cap actually applied.
func (c Config) perSource() int { return max(1, min(c.MaxPerSource, c.MaxViewers*3/4)) }

// gopFrames converts the GOP duration to frames for the producer.
func (c Config) gopFrames() int { return max(1, int(c.GOP.Seconds()*float64(c.FPS)+0.5)) }
