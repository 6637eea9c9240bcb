package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/mp4"
)

// IndexName is the index's file name in the recording directory.
const IndexName = "index.jsonl"

// Entry is one closed segment in the index (one JSON line).
type Entry struct {
	Path       string    `json:"path"` // relative to the recording directory, with /
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS int64     `json:"duration_ms"`
	Bytes      int64     `json:"bytes"`
	Tracks     []string  `json:"tracks"` // codecs, in the file's track order
	// Trigger is why it was recorded: "continuous", "event" or "manual".
	Trigger string `json:"trigger,omitempty"`
	// Events are the IDs of the detection events open while it was recorded.
	Events []string `json:"events,omitempty"`
}

// nameRE matches a segment's file name: its UTC start time and a sequence number.
var nameRE = regexp.MustCompile(`^(\d{8}T\d{6}\.\d{3}Z)_(\d{4,})\.mp4$`)

const nameTime = "20060102T150405.000Z"

// segmentPath is a segment's path relative to the directory.
func segmentPath(start time.Time, seq int) string {
	u := start.UTC()
	return fmt.Sprintf("%s/%s_%04d.mp4", u.Format("2006/01/02"), u.Format(nameTime), seq)
}

// parseName returns the start time a segment's name carries.
func parseName(rel string) (time.Time, bool) {
	m := nameRE.FindStringSubmatch(filepath.Base(rel))
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(nameTime, m[1])
	return t, err == nil
}

// readIndex reads dir's index; torn reports a last line cut short or unparsable (a crash
// mid-append), which the caller rewrites.
func readIndex(dir string) (entries []Entry, torn bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, IndexName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("record: index: %w", err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		torn = true
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Path == "" {
			torn = true
			continue
		}
		entries = append(entries, e)
	}
	return entries, torn, nil
}

// listSegments returns the segment files under dir, relative paths, oldest first.
func listSegments(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !nameRE.MatchString(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record: listing segments: %w", err)
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	return out, nil
}

// recoverSegment truncates a segment's torn tail in place (never renaming it) and describes
// what is left. ok is false when nothing playable is left (no complete header).
func recoverSegment(dir, rel string) (e Entry, truncated, ok bool, err error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Entry{}, false, false, fmt.Errorf("record: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Entry{}, false, false, fmt.Errorf("record: %w", err)
	}
	size := fi.Size()
	frags, rerr := mp4.ReadFragments(f, size)
	var tail *mp4.TailError
	switch {
	case errors.As(rerr, &tail):
		if tail.Offset == 0 {
			return Entry{}, false, false, nil
		}
		if err := f.Truncate(tail.Offset); err != nil {
			return Entry{}, false, false, fmt.Errorf("record: truncating %s: %w", rel, err)
		}
		if err := f.Sync(); err != nil {
			return Entry{}, false, false, fmt.Errorf("record: %w", err)
		}
		size, truncated = tail.Offset, true
	case rerr != nil:
		return Entry{}, false, false, nil // not ours to repair
	}
	start, _ := parseName(rel)
	e = Entry{Path: rel, Start: start, End: start, Bytes: size, Tracks: []string{}}
	var end time.Duration
	for _, fr := range frags {
		for _, t := range fr.Tracks {
			end = max(end, t.End())
		}
	}
	if tracks, err := fileTracks(f, size); err == nil {
		e.Tracks = tracks
	}
	e.End = start.Add(end)
	e.DurationMS = end.Milliseconds()
	return e, truncated, true, nil
}

// writeIndex replaces dir's index with entries atomically (a temporary file renamed over it).
func writeIndex(dir string, entries []Entry) error {
	var buf bytes.Buffer
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := writeFileAtomic(filepath.Join(dir, IndexName), buf.Bytes()); err != nil {
		return fmt.Errorf("record: index: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: a temporary file beside it, synced, renamed
// over it (an index or events file is never seen half written).
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// appendIndex appends one entry with one write.
func appendIndex(dir string, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, IndexName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("record: index: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record: index: %w", err)
	}
	return nil
}

// reconcile makes the index list exactly the segments on disk: entries whose file is gone
// are dropped, files the index lacks (the segment a crash interrupted, or a lost index) are
// recovered and added. It returns the entries, oldest first.
func reconcile(dir string) ([]Entry, error) {
	entries, torn, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	files, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	onDisk := make(map[string]bool, len(files))
	for _, f := range files {
		onDisk[f] = true
	}
	dirty := torn
	known := make(map[string]bool, len(entries))
	kept := entries[:0]
	for _, e := range entries {
		if !onDisk[e.Path] || known[e.Path] {
			dirty = true
			continue
		}
		known[e.Path] = true
		kept = append(kept, e)
	}
	entries = kept
	for _, rel := range files {
		if known[rel] {
			continue
		}
		e, _, ok, err := recoverSegment(dir, rel)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Not even a header: nothing to play. Deleting is not renaming, and keeps the
			// index exact.
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
				return nil, fmt.Errorf("record: %w", err)
			}
			continue
		}
		entries = append(entries, e)
		dirty = true
	}
	slices.SortStableFunc(entries, func(a, b Entry) int { return strings.Compare(filepath.Base(a.Path), filepath.Base(b.Path)) })
	if dirty {
		if err := writeIndex(dir, entries); err != nil {
			return nil, err
		}
	}
	return entries, nil
}
