package files

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/event"
)

// Label is the data channel's label.
const Label = "files"

// Version is the protocol version the device announces in hello.
const Version = 1

// Request types (viewer → device) and reply types (device → viewer); docs/files.md.
const (
	TypeList   = "list"
	TypeGet    = "get"
	TypePlay   = "play"
	TypeCancel = "cancel"

	TypeHello = "hello"
	TypeEnd   = "end"
	TypeError = "error"
)

// Error codes of an error reply.
const (
	CodeBadRequest  = "bad_request"  // not a request this device understands
	CodeBadPath     = "bad_path"     // absolute, .., not a segment's name
	CodeNotFound    = "not_found"    // not a recording (now)
	CodeRange       = "range"        // offset or length outside the file
	CodeBusy        = "busy"         // too many transfers at once
	CodeRateLimited = "rate_limited" // too many requests
	CodeCanceled    = "canceled"     // the viewer canceled it
	CodeUnplayable  = "unplayable"   // no fragment to play (or none at that time)
	CodeInternal    = "internal"     // the device failed (a read error)
)

// Limits on a request: it comes from a viewer.
const (
	MaxRequestBytes = 1024
	MaxPathBytes    = 200
)

// Errors parseRequest wraps.
var (
	ErrTooLarge    = errors.New("files: request too large")
	ErrMalformed   = errors.New("files: malformed request")
	ErrUnknownType = errors.New("files: unknown request type")
	ErrRange       = errors.New("files: value out of range")
)

// Request is one viewer request: a JSON text message.
type Request struct {
	Type string `json:"type"`
	// ID is the viewer's number for the request (1..2³²-1), echoed in every reply to it and
	// in each chunk's header; cancel names the transfer to cancel by it.
	ID     uint32 `json:"id"`
	Path   string `json:"path,omitempty"`
	Offset int64  `json:"offset,omitempty"` // get: first byte
	Length int64  `json:"length,omitempty"` // get: bytes; 0 to the end
	TimeMS int64  `json:"time_ms,omitempty"`
}

// parseRequest decodes and checks one request message.
func parseRequest(b []byte) (Request, error) {
	if len(b) > MaxRequestBytes {
		return Request{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(b), MaxRequestBytes)
	}
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.ID == 0 {
		return Request{}, fmt.Errorf("%w: no id", ErrMalformed)
	}
	switch r.Type {
	case TypeList, TypeCancel:
	case TypeGet, TypePlay:
		if r.Path == "" {
			return Request{}, fmt.Errorf("%w: %s without a path", ErrMalformed, r.Type)
		}
	case "":
		return Request{}, fmt.Errorf("%w: no type", ErrMalformed)
	default:
		return Request{}, fmt.Errorf("%w %q", ErrUnknownType, r.Type)
	}
	switch {
	case len(r.Path) > MaxPathBytes:
		return Request{}, fmt.Errorf("%w: path of %d bytes (at most %d)", ErrRange, len(r.Path), MaxPathBytes)
	case r.Offset < 0 || r.Length < 0 || r.TimeMS < 0:
		return Request{}, fmt.Errorf("%w: negative offset, length or time", ErrRange)
	case r.Offset > 1<<50 || r.Length > 1<<50 || r.TimeMS > 1<<40:
		return Request{}, fmt.Errorf("%w: offset, length or time too large", ErrRange)
	}
	return r, nil
}

// Hello is the device's first message on the channel.
type Hello struct {
	Type    string `json:"type"`
	Version int    `json:"v"`
	// MaxChunk is the most data bytes a chunk carries; MaxTransfers how many gets and
	// plays may run at once on the channel.
	MaxChunk     int `json:"max_chunk"`
	MaxTransfers int `json:"max_transfers"`
}

// Recording is one segment in a list reply.
type Recording struct {
	Path string `json:"path"` // relative to the record directory, as get takes it
	// Source is the id of the source it recorded, on a device of several sources (its
	// path starts with it); "" on a device of one.
	Source     string    `json:"source,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"` // zero while it is being written
	DurationMS int64     `json:"duration_ms"`
	Bytes      int64     `json:"bytes"`
	Tracks     []string  `json:"tracks"`
	Writing    bool      `json:"writing,omitempty"`
}

// ListReply is one page of the list: several for a long list, More set on all but the last;
// the events come with the last.
type ListReply struct {
	Type       string        `json:"type"`
	ID         uint32        `json:"id"`
	Recordings []Recording   `json:"recordings"`
	Events     []event.Event `json:"events,omitempty"`
	More       bool          `json:"more,omitempty"`
}

// GetReply starts a get's transfer: chunks follow, then End.
type GetReply struct {
	Type   string `json:"type"`
	ID     uint32 `json:"id"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`   // the file's size now
	Offset int64  `json:"offset"` // the first byte sent
	Length int64  `json:"length"` // bytes that will be sent
}

// PlayReply starts a play: chunks of the init segment (from offset 0), then of the fragments
// from the one that holds the time asked (from its offset), then End.
type PlayReply struct {
	Type string `json:"type"`
	ID   uint32 `json:"id"`
	Path string `json:"path"`
	// MIME is the MediaSource type, e.g. video/mp4; codecs="avc1.42c01f,opus".
	MIME string `json:"mime"`
	// StartMS is the media time of the first fragment sent (a keyframe at or before the time
	// asked); DurationMS the media time where the file's last complete fragment ends.
	StartMS    int64 `json:"start_ms"`
	DurationMS int64 `json:"duration_ms"`
	InitBytes  int64 `json:"init_bytes"`
	Length     int64 `json:"length"` // bytes that will be sent, init segment included
}

// End ends a transfer that sent all it said it would.
type End struct {
	Type  string `json:"type"`
	ID    uint32 `json:"id"`
	Bytes int64  `json:"bytes"` // data bytes sent
	// SHA256 (get only) is the hex SHA-256 of the file's bytes from 0 to the last one sent
	// — of the whole file when the get went to its end, whatever its offset.
	SHA256 string `json:"sha256,omitempty"`
}

// ErrorReply refuses a request or ends a transfer early. ID is 0 when the request could
// not be read.
type ErrorReply struct {
	Type    string `json:"type"`
	ID      uint32 `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e ErrorReply) Error() string { return fmt.Sprintf("files: %s: %s", e.Code, e.Message) }

// ChunkHeader is the size of a chunk's header: the transfer's id (4 bytes) and the file
// offset of its first data byte (8 bytes), big-endian, before the data.
const ChunkHeader = 12

// putChunkHeader writes a chunk's header into b[:ChunkHeader].
func putChunkHeader(b []byte, id uint32, off int64) {
	binary.BigEndian.PutUint32(b[0:4], id)
	binary.BigEndian.PutUint64(b[4:12], uint64(off))
}

// ParseChunk splits a binary message into its transfer id, file offset and data.
func ParseChunk(b []byte) (id uint32, off int64, data []byte, err error) {
	if len(b) < ChunkHeader {
		return 0, 0, nil, fmt.Errorf("%w: chunk of %d bytes", ErrMalformed, len(b))
	}
	o := binary.BigEndian.Uint64(b[4:12])
	if o > 1<<62 {
		return 0, 0, nil, fmt.Errorf("%w: chunk offset %d", ErrRange, o)
	}
	return binary.BigEndian.Uint32(b[0:4]), int64(o), b[ChunkHeader:], nil
}

// typeOf reads a reply's type, for a client dispatching replies.
func typeOf(b []byte) (typ string, id uint32, err error) {
	var h struct {
		Type string `json:"type"`
		ID   uint32 `json:"id"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return strings.TrimSpace(h.Type), h.ID, nil
}
