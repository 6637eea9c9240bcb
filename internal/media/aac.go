package media

import (
	"errors"
	"fmt"
)

// ErrBadAudioConfig is what ParseAudioSpecificConfig's errors wrap.
var ErrBadAudioConfig = errors.New("media: bad AAC AudioSpecificConfig")

// AudioSpecificConfig is what playing, transcoding or recording AAC needs from an
// AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
type AudioSpecificConfig struct {
	// ObjectType is the core's audio object type (2: AAC-LC); with explicit SBR or PS
	// signalling (HE-AAC), the core's, and SampleRate the core's.
	ObjectType   int
	SampleRate   int
	Channels     int // 0: given by a program config element
	FrameSamples int // 1024, or 960 with frameLengthFlag
}

var aacSampleRates = [...]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// ParseAudioSpecificConfig reads an AudioSpecificConfig. It never panics.
func ParseAudioSpecificConfig(b []byte) (AudioSpecificConfig, error) {
	var c AudioSpecificConfig
	r := NewBitReader(b)
	objectType := func() int {
		t, _ := r.Read(5)
		if t == 31 {
			ext, _ := r.Read(6)
			t = 32 + ext
		}
		return int(t)
	}
	rate := func() (int, bool) {
		i, ok := r.Read(4)
		if i == 15 {
			v, ok := r.Read(24)
			return int(v), ok
		}
		if !ok || int(i) >= len(aacSampleRates) {
			return 0, false
		}
		return aacSampleRates[i], true
	}
	c.ObjectType = objectType()
	var ok bool
	if c.SampleRate, ok = rate(); !ok || c.SampleRate == 0 {
		return c, fmt.Errorf("%w: bad sampling frequency", ErrBadAudioConfig)
	}
	ch, ok := r.Read(4)
	if !ok {
		return c, fmt.Errorf("%w: too short", ErrBadAudioConfig)
	}
	c.Channels = int(ch)
	if ch == 7 {
		c.Channels = 8 // channel configuration 7 is 7.1
	}
	if c.ObjectType == 5 || c.ObjectType == 29 { // explicit SBR/PS: the core follows
		if _, ok := rate(); !ok {
			return c, fmt.Errorf("%w: bad extension frequency", ErrBadAudioConfig)
		}
		c.ObjectType = objectType()
	}
	c.FrameSamples = 1024
	switch c.ObjectType {
	case 1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23: // GASpecificConfig: frameLengthFlag
		if f, ok := r.Read(1); ok && f == 1 {
			c.FrameSamples = 960
		}
	}
	if c.ObjectType == 0 {
		return c, fmt.Errorf("%w: object type 0", ErrBadAudioConfig)
	}
	return c, nil
}
