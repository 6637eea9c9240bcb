package record

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrOptions: the recording options are not usable.
var ErrOptions = errors.New("record: bad options")

// Defaults of Options.
const (
	DefaultSegment = 60 * time.Second
	DefaultMaxAge  = 7 * 24 * time.Hour
	DefaultMaxSize = Bytes(2e9)
	DefaultMinFree = Bytes(512e6)
)

// Options configure a Recorder; zero values take the defaults.
type Options struct {
	// Dir holds the segments (Dir/YYYY/MM/DD/<start>_<seq>.mp4) and index.jsonl.
	Dir string
	// Segment is a segment's length: it is cut at the first keyframe after it.
	Segment time.Duration
	// MaxAge and MaxSize bound what is kept: older segments, and the oldest beyond MaxSize in
	// total, are deleted.
	MaxAge  time.Duration
	MaxSize Bytes
	// MinFree is the free-space floor of Dir's file system: below it the oldest segments are
	// deleted, and if that is not enough recording pauses.
	MinFree Bytes
	// Mode is when to record (default ModeContinuous); PreRoll is how much before an event
	// ModeEvents records (at least: from the keyframe before; default DefaultPreRoll), and
	// PostRoll how long it goes on after the event ends (default DefaultPostRoll).
	Mode              Mode
	PreRoll, PostRoll time.Duration
	// SyncEvery fsyncs a segment after this many fragments (default 1: every fragment, ~1 s;
	// see docs/recording.md for the cost).
	SyncEvery int
}

func (o *Options) setDefaults() {
	if o.Segment <= 0 {
		o.Segment = DefaultSegment
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MinFree <= 0 {
		o.MinFree = DefaultMinFree
	}
	if o.Mode == "" {
		o.Mode = ModeContinuous
	}
	if o.PostRoll <= 0 {
		o.PostRoll = DefaultPostRoll
	}
	if o.PreRoll <= 0 {
		o.PreRoll = DefaultPreRoll
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = 1
	}
}

// Validate reports what is wrong with o: Dir must be (or be creatable as) a writable
// directory and the durations and sizes sane. Zero values stand for the defaults.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("no directory"))
	} else if err := writable(o.Dir); err != nil {
		errs = append(errs, err)
	}
	if o.Segment != 0 && (o.Segment < time.Second || o.Segment > 24*time.Hour) {
		errs = append(errs, fmt.Errorf("segment %s: want 1s to 24h", o.Segment))
	}
	if o.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max age %s: negative", o.MaxAge))
	}
	if o.MaxSize != 0 && o.MaxSize < 1<<20 {
		errs = append(errs, fmt.Errorf("max size %s: want at least 1MB", o.MaxSize))
	}
	if o.Mode != "" {
		if err := new(Mode).Set(string(o.Mode)); err != nil {
			errs = append(errs, err)
		}
	}
	if o.PostRoll < 0 || o.PostRoll > time.Hour {
		errs = append(errs, fmt.Errorf("post-roll %s: want 0 to 1h", o.PostRoll))
	}
	if o.PreRoll < 0 || o.PreRoll > time.Minute {
		errs = append(errs, fmt.Errorf("pre-roll %s: want 0 to 1m", o.PreRoll))
	}
	if o.MinFree < 0 {
		errs = append(errs, fmt.Errorf("min free %s: negative", o.MinFree))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	return nil
}

// writable makes dir if needed and checks that a file can be created in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("directory not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Bytes is a size in bytes that parses as a flag: 512MB, 2GB, 1.5G (SI: 1 GB = 10⁹ bytes;
// KiB, MiB, GiB binary), or a plain number.
type Bytes int64

func (b Bytes) String() string {
	switch {
	case b >= 1e9 && b%1e7 == 0:
		return strconv.FormatFloat(float64(b)/1e9, 'f', -1, 64) + "GB"
	case b >= 1e6 && b%1e4 == 0:
		return strconv.FormatFloat(float64(b)/1e6, 'f', -1, 64) + "MB"
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Set parses v.
func (b *Bytes) Set(v string) error {
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return fmt.Errorf("size %q: want a number of bytes such as 512MB or 2GB", v)
	}
	*b = Bytes(f * mult)
	return nil
}

// Age is a duration that parses as a flag with days too: 7d, 36h, 90m.
type Age time.Duration

func (a Age) String() string {
	d := time.Duration(a)
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Set parses v.
func (a *Age) Set(v string) error {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || f < 0 || f > 1e5 {
			return fmt.Errorf("age %q: want e.g. 7d or 36h", v)
		}
		*a = Age(f * float64(24*time.Hour))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("age %q: want e.g. 7d or 36h", v)
	}
	*a = Age(d)
	return nil
}
