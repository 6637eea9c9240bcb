package files

import (
	"bytes"
	"errors"
	"testing"

	"github.com/p2pcast/p2pcast/internal/mp4"
)

// FuzzRequest: whatever a viewer sends, parseRequest returns a request within the limits or
// one of its documented errors; a path it lets through is then refused or accepted by
// checkPath without touching the file system.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"list","id":1}`,
		`{"type":"get","id":2,"path":"2026/12/05/20261205T105300.123Z_0001.mp4","offset":1048576}`,
		`{"type":"get","id":3,"path":"2026/12/05/20261205T105300.123Z_0001.mp4","offset":10,"length":100}`,
		`{"type":"play","id":4,"path":"2026/12/05/20261205T105300.123Z_0001.mp4","time_ms":5500}`,
		`{"type":"get","id":8,"path":"cam-2/2026/12/05/20261205T105300.123Z_0001.mp4"}`,
		`{"type":"get","id":9,"path":"a/b/2026/12/05/20261205T105300.123Z_0001.mp4"}`,
		`{"type":"cancel","id":2}`,
		`{"type":"get","id":5,"path":"../../etc/passwd"}`,
		`{"type":"get","id":6,"path":"/etc/passwd"}`,
		`{"type":"get","id":7,"path":"2026/12/05/..\\..\\x.mp4"}`,
		`{"type":"get","id":4294967296}`,
		`{"type":"get","id":1,"offset":-1,"path":"a"}`,
		`{"type":"get","id":1,"offset":1e300,"path":"a"}`,
		`{"TYPE":"LIST","ID":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			for _, want := range []error{ErrTooLarge, ErrMalformed, ErrUnknownType, ErrRange} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("undocumented error %v", err)
		}
		if r.ID == 0 || len(r.Path) > MaxPathBytes || r.Offset < 0 || r.Length < 0 || r.TimeMS < 0 {
			t.Fatalf("out of limits: %+v", r)
		}
		if err := checkPath(r.Path); err == nil && !segmentRE.MatchString(r.Path) {
			t.Fatalf("checkPath let %q through", r.Path)
		}
	})
}

// FuzzMIMEType: the init segment comes from a file on the device's disk, but a torn or
// hostile one must not crash the device.
func FuzzMIMEType(f *testing.F) {
	clip := testMP4(f)
	frags, err := mp4.ReadFragments(bytes.NewReader(clip), int64(len(clip)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(clip[:frags[0].Offset])
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'v'})
	f.Add([]byte{0, 0, 0, 1, 'm', 'o', 'o', 'v', 0, 0, 0, 0, 0, 0, 0, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = mimeType(b)
	})
}
