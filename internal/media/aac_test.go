package media

import (
	"errors"
	"testing"
)

func TestAudioSpecificConfig(t *testing.T) {
	for cfg, want := range map[string]AudioSpecificConfig{
		"\x11\x90":         {ObjectType: 2, SampleRate: 48000, Channels: 2, FrameSamples: 1024},
		"\x14\x0c":         {ObjectType: 2, SampleRate: 16000, Channels: 1, FrameSamples: 960},
		"\x2b\x92\x08\x00": {ObjectType: 2, SampleRate: 22050, Channels: 2, FrameSamples: 1024}, // HE-AAC (SBR), core 22.05 kHz
		"\x12\x38":         {ObjectType: 2, SampleRate: 44100, Channels: 8, FrameSamples: 1024}, // 7.1
	} {
		got, err := ParseAudioSpecificConfig([]byte(cfg))
		if err != nil || got != want {
			t.Errorf("% x: %+v %v, want %+v", cfg, got, err, want)
		}
	}
	for _, bad := range [][]byte{nil, {0x17}, {0x07, 0x90}, {0x00, 0x10}} {
		if _, err := ParseAudioSpecificConfig(bad); !errors.Is(err, ErrBadAudioConfig) {
			t.Errorf("% x: %v, want ErrBadAudioConfig", bad, err)
		}
	}
}

func FuzzAudioSpecificConfig(f *testing.F) {
	f.Add([]byte{0x11, 0x90})
	f.Add([]byte{0x2b, 0x92, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseAudioSpecificConfig(b); err == nil && (c.SampleRate <= 0 || c.ObjectType == 0) {
			t.Fatalf("%+v", c)
		}
	})
}
