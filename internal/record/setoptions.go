package record

import (
	"errors"
	"fmt"
)

// ErrOptionsFixed: SetOptions was asked to change what only a new Recorder can (its directory).
var ErrOptionsFixed = errors.New("record: the directory cannot change while recording")

// options is a snapshot of the options SetOptions may change.
func (r *Recorder) options() Options {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opts
}

// Options returns the options in force (defaults filled in).
func (r *Recorder) Options() Options { return r.options() }

// SetOptions changes the recording policy while the recorder runs: mode, pre- and post-roll,
// segment length, retention (MaxAge, MaxSize, MinFree). The segment being written is kept;
// a new length cuts at the next keyframe past it, a new retention applies at the next check.
// Dir and SyncEvery stay as they were (a zero SyncEvery or Dir keeps the current one).
func (r *Recorder) SetOptions(o Options) error {
	cur := r.options()
	if o.Dir == "" {
		o.Dir = cur.Dir
	}
	if o.Dir != cur.Dir {
		return fmt.Errorf("%w: %s", ErrOptionsFixed, o.Dir)
	}
	o.SyncEvery = cur.SyncEvery
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	changed := r.opts.Mode != o.Mode
	// Field by field: Dir and SyncEvery are read without the lock.
	r.opts.Segment, r.opts.MaxAge, r.opts.MaxSize, r.opts.MinFree = o.Segment, o.MaxAge, o.MaxSize, o.MinFree
	r.opts.Mode, r.opts.PreRoll, r.opts.PostRoll = o.Mode, o.PreRoll, o.PostRoll
	r.status.Mode = o.Mode
	r.mu.Unlock()
	if changed {
		r.log.Info("record: mode changed", "mode", o.Mode)
	}
	r.poke()
	return nil
}
