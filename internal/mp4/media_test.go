package mp4

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/p2pcast/p2pcast/internal/media"
)

// Test inputs are made at test time with ffmpeg (installed by scripts/install-deps.sh), so
// the repository holds no media; each helper skips the test when ffmpeg is missing.

// toolTimeout bounds every ffmpeg and ffprobe run.
const toolTimeout = 60 * time.Second

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

// run runs a tool with a timeout and returns its stdout; stderr goes into the error.
func run(t testing.TB, name string, args ...string) ([]byte, error) {
	t.Helper()
	needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, errors.New(err.Error() + ": " + stderr.String())
	}
	if stderr.Len() > 0 {
		return out, errors.New("stderr: " + stderr.String())
	}
	return out, nil
}

// ffmpegFile runs ffmpeg with args writing to a file named name in a temp dir and returns
// the file's bytes.
func ffmpegFile(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	args = append([]string{"-v", "error", "-nostdin", "-y"}, append(args, path)...)
	if _, err := run(t, "ffmpeg", args...); err != nil {
		t.Fatalf("ffmpeg %v: %v", args, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// videoAUs makes frames of testsrc2 at fps with a keyframe every gop frames and returns the
// access units (Annex-B) and which are keyframes. codec is "h264" or "hevc".
func videoAUs(t testing.TB, codec string, frames, fps, gop int) (aus [][]byte, keys []bool) {
	t.Helper()
	src := "testsrc2=size=640x360:rate=" + strconv.Itoa(fps)
	var args []string
	switch codec {
	case "h264":
		args = []string{"-f", "lavfi", "-i", src, "-frames:v", strconv.Itoa(frames), "-c:v", "libx264",
			"-profile:v", "baseline", "-bf", "0", "-g", strconv.Itoa(gop), "-sc_threshold", "0", "-f", "h264"}
	case "h264-high":
		args = []string{"-f", "lavfi", "-i", src, "-frames:v", strconv.Itoa(frames), "-c:v", "libx264",
			"-profile:v", "high", "-bf", "0", "-g", strconv.Itoa(gop), "-f", "h264"}
	case "h264-intra":
		// Every frame a large keyframe (the crash test wants big writes).
		args = []string{"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=" + strconv.Itoa(fps), "-frames:v", strconv.Itoa(frames),
			"-c:v", "libx264", "-g", "1", "-crf", "5", "-f", "h264"}
	case "hevc":
		// AUDs make the access units easy to cut here (internal/media splits H.264 only).
		args = []string{"-f", "lavfi", "-i", src, "-frames:v", strconv.Itoa(frames), "-c:v", "libx265",
			"-x265-params", "log-level=error:bframes=0:keyint=" + strconv.Itoa(gop) + ":min-keyint=" + strconv.Itoa(gop) + ":scenecut=0",
			"-bsf:v", "hevc_metadata=aud=insert", "-f", "hevc"}
	}
	stream := ffmpegFile(t, "video."+codec, args...)
	if codec != "hevc" {
		r := media.NewAUReader(bytes.NewReader(stream), 0)
		for {
			au, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			aus = append(aus, bytes.Clone(au))
			keys = append(keys, media.IsKeyframe(au))
		}
	} else {
		// Cut before every AUD (type 35).
		var cur []byte
		for nal, rest, ok := media.NextNAL(stream); ok; nal, rest, ok = media.NextNAL(rest) {
			if nalType(H265, nal) == hevcAUD && cur != nil {
				aus = append(aus, cur)
				cur = nil
			}
			cur = append(append(cur, 0, 0, 0, 1), nal...)
		}
		aus = append(aus, cur)
		for _, au := range aus {
			key := false
			for nal, rest, ok := media.NextNAL(au); ok; nal, rest, ok = media.NextNAL(rest) {
				if t := nalType(H265, nal); t >= hevcIRAPFirst && t <= hevcIRAPLast {
					key = true
				}
			}
			keys = append(keys, key)
		}
	}
	if len(aus) != frames {
		t.Fatalf("%s: %d access units, want %d", codec, len(aus), frames)
	}
	return aus, keys
}

// opusPackets encodes seconds of a sine to Opus in Ogg and returns the packets, their
// durations in 48 kHz samples and the pre-skip.
func opusPackets(t testing.TB, seconds float64, channels int) (packets [][]byte, samples []int, preSkip uint16) {
	t.Helper()
	ogg := ffmpegFile(t, "audio.opus", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+strconv.FormatFloat(seconds, 'f', -1, 64),
		"-ac", strconv.Itoa(channels), "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-f", "ogg")
	all := oggPackets(t, ogg)
	if len(all) < 3 || !bytes.HasPrefix(all[0], []byte("OpusHead")) {
		t.Fatalf("no OpusHead in the Ogg stream")
	}
	preSkip = binary.LittleEndian.Uint16(all[0][10:12])
	for _, p := range all[2:] { // after OpusHead and OpusTags
		packets = append(packets, p)
		samples = append(samples, opusSamples(p))
	}
	return packets, samples, preSkip
}

// oggPackets reads the packets of a single-stream Ogg file (RFC 3533): each page's segment
// table gives lacing values; a packet ends at a segment shorter than 255.
func oggPackets(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var packets [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			t.Fatalf("bad Ogg page")
		}
		nseg := int(b[26])
		table := b[27 : 27+nseg]
		body := b[27+nseg:]
		for _, l := range table {
			cur = append(cur, body[:l]...)
			body = body[l:]
			if l < 255 {
				packets = append(packets, cur)
				cur = nil
			}
		}
		b = body
	}
	return packets
}

// aacFrames encodes seconds of a sine to AAC in ADTS and returns the raw frames and the
// AudioSpecificConfig.
func aacFrames(t testing.TB, seconds float64, rate int) (frames [][]byte, asc []byte) {
	t.Helper()
	adts := ffmpegFile(t, "audio.aac", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate="+strconv.Itoa(rate)+":duration="+strconv.FormatFloat(seconds, 'f', -1, 64),
		"-c:a", "aac", "-b:a", "64k", "-f", "adts")
	for len(adts) > 0 {
		if len(adts) < 7 || adts[0] != 0xff || adts[1]&0xf0 != 0xf0 {
			t.Fatalf("bad ADTS header")
		}
		hdr := 7
		if adts[1]&1 == 0 {
			hdr = 9 // CRC present
		}
		size := int(adts[3]&3)<<11 | int(adts[4])<<3 | int(adts[5])>>5
		if asc == nil {
			profile := adts[2] >> 6
			sf := adts[2] >> 2 & 0xf
			ch := (adts[2]&1)<<2 | adts[3]>>6
			v := uint16(profile+1)<<11 | uint16(sf)<<7 | uint16(ch)<<3
			asc = []byte{byte(v >> 8), byte(v)}
		}
		frames = append(frames, bytes.Clone(adts[hdr:size]))
		adts = adts[size:]
	}
	return frames, asc
}

// g711Packets encodes seconds of a sine to 8 kHz A-law or µ-law and cuts it into 20 ms
// packets.
func g711Packets(t testing.TB, seconds float64, format string) [][]byte {
	t.Helper()
	raw := ffmpegFile(t, "audio."+format, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration="+strconv.FormatFloat(seconds, 'f', -1, 64),
		"-c:a", "pcm_"+format, "-f", format)
	var packets [][]byte
	for len(raw) > 0 {
		n := min(160, len(raw))
		packets = append(packets, raw[:n])
		raw = raw[n:]
	}
	return packets
}

// probe is the part of ffprobe's JSON the tests read.
type probe struct {
	Streams []struct {
		CodecName     string `json:"codec_name"`
		CodecType     string `json:"codec_type"`
		Width         int    `json:"width"`
		Height        int    `json:"height"`
		SampleRate    string `json:"sample_rate"`
		Channels      int    `json:"channels"`
		Duration      string `json:"duration"`
		NbReadFrames  string `json:"nb_read_frames"`
		NbReadPackets string `json:"nb_read_packets"`
		StartTime     string `json:"start_time"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
		Size     string `json:"size"`
	} `json:"format"`
}

// ffprobe runs ffprobe -count_frames on path.
func ffprobe(t testing.TB, path string) (probe, error) {
	t.Helper()
	out, err := run(t, "ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", path)
	var p probe
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(out, &p)
}

func atof(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
