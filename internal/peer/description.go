package peer

import (
	"fmt"
	"strings"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/p2pcast/p2pcast/internal/codec"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// description is what one session sends and receives, taken from the source when the session
// is made: the SDP offers exactly that.
type description struct {
	send []stream.Track // the first video and the first audio track, video first
	talk *stream.Track  // the sink a viewer's audio goes to; nil when it may not talk
	// renditions are the sent video track and its alternates (main first): the session
	// sends one of them at a time on its one video track.
	renditions []stream.Track
}

// sends reports whether the session sends a track of kind.
func (d description) sends(kind codec.Kind) bool {
	for _, t := range d.send {
		if t.Kind == kind {
			return true
		}
	}
	return false
}

// defaultVideo stands in for a source that has not connected yet: viewers who come first get
// the H.264 video every producer sends, and the picture when it starts.
var defaultVideo = stream.Track{ID: 1, Kind: codec.Video, Codec: codec.H264.Name, ClockRate: codec.H264.ClockRate}

// sourceWait is how long a session made while there is no source (the producer is starting,
// or restarting) waits for one, so that it offers the source's real tracks and profile rather
// than the default H.264 video (which would leave it without audio until it reconnects).
const sourceWait = 2 * time.Second

// currentSource returns the stream's description, waiting up to wait for a source to appear.
func currentSource(st *stream.Stream, wait time.Duration) (stream.Info, bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := st.Changed()
		if info, ok := st.Info(); ok {
			return info, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return stream.Info{}, false
		}
	}
}

func describe(st *stream.Stream, talk TalkSink, wait time.Duration) description {
	var d description
	info, ok := currentSource(st, wait)
	if !ok {
		info = stream.Describe("", []stream.Track{defaultVideo}, nil)
	}
	for _, kind := range []codec.Kind{codec.Video, codec.Audio} {
		if t, ok := info.First(kind); ok && codec.Lookup(t.Codec) != nil {
			d.send = append(d.send, t)
			if kind == codec.Video {
				for _, r := range info.Renditions(t.ID) {
					if r.Codec == t.Codec { // one payload type carries them all
						d.renditions = append(d.renditions, r)
					}
				}
			}
		}
	}
	if talk != nil {
		if t := talk.Sink(); codec.Lookup(t.Codec) != nil && t.Kind == codec.Audio {
			d.talk = &t
		}
	}
	return d
}

// codecAndParams is one codec as registered with a media engine.
type codecAndParams struct {
	codec  *codec.Codec
	params codec.Params
}

// codecs lists what the media engine registers: each sent track's codec as sent, and the
// talk-back codec when it differs.
func (d description) codecs() []codecAndParams {
	var out []codecAndParams
	for _, t := range d.send {
		out = append(out, codecAndParams{codec.Lookup(t.Codec), t.Params()})
	}
	if d.talk != nil {
		c := codec.Lookup(d.talk.Codec)
		dup := false
		for _, o := range out {
			dup = dup || o.codec == c
		}
		if !dup {
			out = append(out, codecAndParams{c, d.talk.Params()})
		}
	}
	return out
}

// key names the set of codecs, for the engine's cache of Pion APIs.
func (d description) key() string {
	var b strings.Builder
	for _, c := range d.codecs() {
		fmt.Fprintf(&b, "%s/%d %s|", c.codec.Name, c.params.Channels, c.codec.Fmtp(c.params))
	}
	return b.String()
}

// checkOffer refuses, with a reason a person can act on, offers the device cannot answer:
// one that takes none of what the device sends.
func (d description) checkOffer(text string) error {
	sd, err := parseSDP(text)
	if err != nil {
		return err
	}
	var reasons []string
	for _, t := range d.send {
		c := codec.Lookup(t.Codec)
		found := false
		for _, m := range sd.MediaDescriptions {
			if m.MediaName.Media != t.Kind.String() {
				continue
			}
			found = true
			if offerAccepts(m.Attributes, c, t.Params()) {
				return nil
			}
		}
		if found {
			reasons = append(reasons, fmt.Sprintf("the offer's %s accepts no %s", t.Kind, describeCodec(c, t.Params())))
		} else {
			reasons = append(reasons, fmt.Sprintf("the offer has no %s section", t.Kind))
		}
	}
	if len(reasons) == 0 {
		return fmt.Errorf("%w: the device has nothing to send", ErrBadSDP)
	}
	return fmt.Errorf("%w: %s", ErrBadSDP, strings.Join(reasons, "; "))
}

func describeCodec(c *codec.Codec, p codec.Params) string {
	switch c {
	case codec.H264:
		return "H.264 with packetization-mode=1 and profile-level-id " + codec.H264SDPProfileLevelID(p.ProfileLevelID)
	case codec.H265:
		return "H.265 (HEVC, Main profile): the camera sends H.265, which this viewer does not play; watch with a browser that decodes H.265 or with `p2pcast view`"
	}
	return c.Name
}

// offerAccepts reports whether an offered media section lists c in a form that carries p.
func offerAccepts(attrs []sdp.Attribute, c *codec.Codec, p codec.Params) bool {
	name := c.MimeType[strings.IndexByte(c.MimeType, '/')+1:]
	pts := map[string]bool{}
	for _, a := range attrs {
		if pt, enc, ok := strings.Cut(a.Value, " "); a.Key == "rtpmap" && ok {
			if n, _, _ := strings.Cut(enc, "/"); strings.EqualFold(n, name) {
				pts[pt] = true
			}
		}
	}
	if c.Accepts == nil {
		return len(pts) > 0
	}
	for _, a := range attrs {
		if a.Key != "fmtp" {
			continue
		}
		if pt, params, _ := strings.Cut(a.Value, " "); pts[pt] && c.Accepts(params, p) {
			return true
		}
	}
	return false
}

// receiveOnlyAudio rewrites the directions of an offer's audio sections as if the viewer only
// received audio (sendrecv → recvonly, sendonly → inactive). Pion answers a send-receive
// offer with send-receive whenever its own track sends, whatever direction the device set;
// for a viewer without the talk grant the answer must say send-only, so its browser never
// sends its microphone.
func receiveOnlyAudio(offer string) string {
	lines := strings.SplitAfter(offer, "\n")
	audio := false
	for i, l := range lines {
		body := strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(body, "m="):
			audio = strings.HasPrefix(body, "m=audio ")
		case audio && body == "a=sendrecv":
			lines[i] = "a=recvonly" + l[len(body):]
		case audio && body == "a=sendonly":
			lines[i] = "a=inactive" + l[len(body):]
		}
	}
	return strings.Join(lines, "")
}

// A viewer whose SDP takes no form of the video codec the device sends (a browser without
// H.265 facing an H.265 camera) gets the session without video, and a notice on the events
// channel that its page shows, rather than a black picture or a refusal of the audio too.

// NoticeVideoCodec is the code of the notice: {"type":"notice","code":"video-codec",...}.
const NoticeVideoCodec = "video-codec"

// Notice is what the device tells a viewer about its session on the events channel.
type Notice struct {
	Type    string   `json:"type"` // "notice"
	Code    string   `json:"code"`
	Codec   string   `json:"codec,omitempty"`   // the codec the device sends
	Offered []string `json:"offered,omitempty"` // the viewer's video codecs
	Message string   `json:"message"`
}

// videoRefused reports whether sd's video sections (a viewer's offer or answer) take none of
// the sent video track's codec, what the viewer listed instead, and the notice to show.
func (d description) videoRefused(sd *sdp.SessionDescription) (*Notice, bool) {
	var video *stream.Track
	for i := range d.send {
		if d.send[i].Kind == codec.Video {
			video = &d.send[i]
		}
	}
	if video == nil {
		return nil, false
	}
	c := codec.Lookup(video.Codec)
	var offered []string
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		if m.MediaName.Port.Value != 0 && offerAccepts(m.Attributes, c, video.Params()) {
			return nil, false
		}
		for _, a := range m.Attributes {
			if _, enc, ok := strings.Cut(a.Value, " "); a.Key == "rtpmap" && ok {
				n, _, _ := strings.Cut(enc, "/")
				if u := strings.ToUpper(n); u != "RTX" && u != "RED" && u != "ULPFEC" && u != "FLEXFEC-03" && !slicesContains(offered, n) {
					offered = append(offered, n)
				}
			}
		}
	}
	name := codecLabel(c)
	msg := fmt.Sprintf("The camera sends %s video, which this browser does not play over WebRTC", name)
	if len(offered) > 0 {
		msg += " (it plays " + strings.Join(offered, ", ") + ")"
	}
	msg += ": this session carries the sound only. Watch the picture in a browser that decodes " + name +
		" (Safari; Chrome or Edge with hardware decoding) or with `p2pcast view`."
	return &Notice{Type: "notice", Code: NoticeVideoCodec, Codec: c.Name, Offered: offered, Message: msg}, true
}

// withoutVideo is d without its video: for a viewer that takes no form of it.
func (d description) withoutVideo() description {
	var send []stream.Track
	for _, t := range d.send {
		if t.Kind != codec.Video {
			send = append(send, t)
		}
	}
	d.send, d.renditions = send, nil
	return d
}

// codecLabel is a codec's name as people write it.
func codecLabel(c *codec.Codec) string {
	switch c {
	case codec.H264:
		return "H.264"
	case codec.H265:
		return "H.265"
	}
	return c.Name
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
