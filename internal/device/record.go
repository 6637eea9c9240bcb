package device

import (
	"context"
	"sync/atomic"

	"github.com/p2pcast/p2pcast/internal/event"
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
			d.files.rec.Store(r)
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

// recordCatalog is what the files channel serves (internal/files.Catalog): the recorder's
// directory and index, once the recorder has started; nothing before.
type recordCatalog struct {
	dir string
	rec atomic.Pointer[record.Recorder]
}

func (c *recordCatalog) Dir() string { return c.dir }

func (c *recordCatalog) Segments() []record.Entry {
	if r := c.rec.Load(); r != nil {
		return r.Segments()
	}
	return nil
}

func (c *recordCatalog) Writing() string {
	if r := c.rec.Load(); r != nil {
		return r.Status().Current
	}
	return ""
}

// Events are none yet: the recorder's Events() will be returned here.
func (c *recordCatalog) Events() []event.Event { return nil }
