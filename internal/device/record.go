package device

import (
	"context"

	"github.com/p2pcast/p2pcast/internal/lifecycle"
	"github.com/p2pcast/p2pcast/internal/record"
)

// recordComponent is the lifecycle component "record": with Config.Record.Dir it records
// the stream continuously (internal/record) while the device runs; stopping it closes the
// current segment properly.
func (d *Device) recordComponent() (lifecycle.Component, bool) {
	if d.cfg.Record.Dir == "" {
		return lifecycle.Component{}, false
	}
	return lifecycle.Component{
		Name: "record",
		Start: func(context.Context) error {
			r, err := record.New(d.stream, d.cfg.Record, d.log)
			if err != nil {
				return err
			}
			d.mu.Lock()
			d.recorder = r
			d.mu.Unlock()
			return nil
		},
		Run: func(ctx context.Context) error {
			d.mu.Lock()
			r := d.recorder
			d.mu.Unlock()
			return r.Run(ctx)
		},
	}, true
}

// recordStatus is the recorder's status, nil when the device does not record.
func (d *Device) recordStatus() *record.Status {
	d.mu.Lock()
	r := d.recorder
	d.mu.Unlock()
	if r == nil {
		return nil
	}
	st := r.Status()
	return &st
}
