// Package files serves a device's recordings on the "files" data channel (docs/files.md):
// a viewer with the files grant lists the segments and events, downloads a segment (or
// resumes one from an offset, with a SHA-256 at the end) and plays one from a time (the init
// segment and the fragments from the one holding that time, for a page's MediaSource). Client
// is the other side, for p2pcast fetch and the tests.
//
// The protocol code takes no logger: Server.Serve logs through the one peer gives it.
package files
