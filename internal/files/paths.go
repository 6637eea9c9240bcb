package files

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
)

// segmentRE is what a recording's path looks like (docs/recording.md): YYYY/MM/DD/ and the
// segment's start time and sequence number, under its source's id on a device of several
// sources (docs/sources.md: DIR/<id>/YYYY/…; the id as internal/device checks it). Anything
// else in the directory (the index, a stray file) is not served.
var segmentRE = regexp.MustCompile(`^(?:([a-z0-9-]{1,32})/)?\d{4}/\d{2}/\d{2}/\d{8}T\d{6}\.\d{3}Z_\d{4,}\.mp4$`)

// sourceOf is the source id a checked path starts with, "" for none (a device of one source).
func sourceOf(p string) string {
	if m := segmentRE.FindStringSubmatch(p); m != nil {
		return m[1]
	}
	return ""
}

// Errors checkPath and openSegment wrap.
var (
	ErrBadPath  = errors.New("files: bad path")
	ErrNotFound = errors.New("files: not a recording")
)

// checkPath refuses, before any file system access, a path that is not a segment's relative
// name: absolute, with .. or . or empty elements, backslashes, or not a segment's name.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty", ErrBadPath)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: absolute path %q (paths are relative to the record directory, as list gives them)", ErrBadPath, p)
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("%w: backslash or NUL in %q", ErrBadPath, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%w: %q is not a clean path", ErrBadPath, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "." {
			return fmt.Errorf("%w: %q leaves the record directory", ErrBadPath, p)
		}
	}
	if !segmentRE.MatchString(p) {
		return fmt.Errorf("%w: %q is not a recording's name ([ID/]YYYY/MM/DD/<start>_<seq>.mp4)", ErrBadPath, p)
	}
	return nil
}

// openSegment opens a checked path under dir through an os.Root, which refuses symlinks
// (and .. in them) leading out of dir; the file must be a regular file.
func openSegment(dir, p string) (*os.File, int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: record directory: %v", ErrNotFound, err)
	}
	defer root.Close()
	// A symlink inside the directory is not what the recorder writes either: refuse any.
	fi, err := root.Lstat(p)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrBadPath, p)
	}
	f, err := root.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrNotFound, p, err)
	}
	fi, err = f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrBadPath, p)
	}
	return f, fi.Size(), nil
}
