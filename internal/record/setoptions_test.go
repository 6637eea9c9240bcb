package record

import (
	"errors"
	"testing"
	"time"
)

// SetOptions changes the mode while the recorder runs (what it records now follows), and
// refuses a new directory or bad values.
func TestSetOptions(t *testing.T) {
	_, r, stop := triggered(t, t.TempDir(), Options{Mode: ModeContinuous})
	defer stop()
	if st := r.Status(); !st.Recording || st.Mode != ModeContinuous {
		t.Fatalf("before: %+v", st)
	}
	if err := r.SetOptions(Options{Mode: ModeManual, PostRoll: 7 * time.Second, Segment: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if st.Recording || st.Mode != ModeManual {
		t.Fatalf("after: %+v", st)
	}
	if o := r.Options(); o.PostRoll != 7*time.Second || o.Segment != 10*time.Second || o.MaxAge != DefaultMaxAge {
		t.Fatalf("options: %+v", o)
	}
	if err := r.SetOptions(Options{Dir: t.TempDir()}); !errors.Is(err, ErrOptionsFixed) {
		t.Fatalf("new dir: %v", err)
	}
	if err := r.SetOptions(Options{PreRoll: time.Hour}); !errors.Is(err, ErrOptions) {
		t.Fatalf("bad pre-roll: %v", err)
	}
}
