package mp4

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"strconv"
	"testing"
)

// TestCodecsPlay writes each codec's track beside H.264 video and checks that ffprobe names
// it, counts every sample and that ffmpeg decodes the file without complaint.
func TestCodecsPlay(t *testing.T) {
	const fps = 25
	aus, keys := videoAUs(t, "h264", 75, fps, 25)
	video := videoInput(H264, aus, keys, fps)
	cases := []struct {
		name  string
		codec string // what ffprobe calls it
		rate  int
		make  func(t *testing.T) input
	}{
		{"aac", "aac", 44100, func(t *testing.T) input {
			frames, asc := aacFrames(t, 3, 44100)
			n := make([]int, len(frames))
			for i := range n {
				n[i] = 1024
			}
			return audioInput(Track{Codec: AAC, AudioSpecificConfig: asc}, frames, n, 44100)
		}},
		{"pcma", "pcm_alaw", 8000, func(t *testing.T) input {
			p := g711Packets(t, 3, "alaw")
			return audioInput(Track{Codec: PCMA}, p, lengths(p), 8000)
		}},
		{"pcmu", "pcm_mulaw", 8000, func(t *testing.T) input {
			p := g711Packets(t, 3, "mulaw")
			return audioInput(Track{Codec: PCMU}, p, lengths(p), 8000)
		}},
		{"opus-mono", "opus", 48000, func(t *testing.T) input {
			p, n, skip := opusPackets(t, 3, 1)
			return audioInput(Track{Codec: Opus, Channels: 1, PreSkip: skip}, p, n, 48000)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			audio := c.make(t)
			path, _ := writeFile(t, Options{}, video, audio)
			p, err := ffprobe(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Streams) != 2 {
				t.Fatalf("%d streams, want 2", len(p.Streams))
			}
			a := p.Streams[1]
			if a.CodecName != c.codec || a.SampleRate != strconv.Itoa(c.rate) {
				t.Errorf("audio %s at %s Hz, want %s at %d", a.CodecName, a.SampleRate, c.codec, c.rate)
			}
			if a.NbReadFrames != strconv.Itoa(len(audio.samples)) {
				t.Errorf("audio frames %s, want %d", a.NbReadFrames, len(audio.samples))
			}
			if d := atof(t, a.Duration); math.Abs(d-3) > 0.05 {
				t.Errorf("audio duration %v s, want 3", d)
			}
			if p.Streams[0].NbReadFrames != strconv.Itoa(len(aus)) {
				t.Errorf("video frames %s, want %d", p.Streams[0].NbReadFrames, len(aus))
			}
			decodes(t, path)
		})
	}
}

func lengths(packets [][]byte) []int {
	n := make([]int, len(packets))
	for i, p := range packets {
		n[i] = len(p)
	}
	return n
}

// TestH265Plays writes H.265 (hvc1 + hvcC from the first keyframe's parameter sets).
func TestH265Plays(t *testing.T) {
	const frames, fps = 60, 30
	aus, keys := videoAUs(t, "hevc", frames, fps, 30)
	path, stats := writeFile(t, Options{}, videoInput(H265, aus, keys, fps))
	p, err := ffprobe(t, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", stats)
	v := p.Streams[0]
	if v.CodecName != "hevc" || v.Width != 640 || v.Height != 360 {
		t.Errorf("video %s %dx%d, want hevc 640x360", v.CodecName, v.Width, v.Height)
	}
	if v.NbReadFrames != strconv.Itoa(frames) {
		t.Errorf("video frames %s, want %d", v.NbReadFrames, frames)
	}
	if d := atof(t, v.Duration); math.Abs(d-2) > 1.0/fps {
		t.Errorf("duration %v, want 2 s", d)
	}
	decodes(t, path)
}

// TestH264HighPlays: High profile adds chroma format and bit depths to avcC.
func TestH264HighPlays(t *testing.T) {
	aus, keys := videoAUs(t, "h264-high", 30, 30, 30)
	path, _ := writeFile(t, Options{}, videoInput(H264, aus, keys, 30))
	p, err := ffprobe(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if v := p.Streams[0]; v.CodecName != "h264" || v.NbReadFrames != "30" {
		t.Errorf("video %s, %s frames; want h264, 30", v.CodecName, v.NbReadFrames)
	}
	decodes(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("avcC"))
	size := int(binary.BigEndian.Uint32(b[i-4:]))
	if ext := b[i-4+size-4 : i-4+size]; b[i+5] != 100 || !bytes.Equal(ext, []byte{0xfd, 0xf8, 0xf8, 0}) {
		t.Errorf("avcC profile %d, extension % x; want 100, fd f8 f8 00 (4:2:0, 8 bits)", b[i+5], ext)
	}
}
