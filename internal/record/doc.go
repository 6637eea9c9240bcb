// Package record records the device's stream on its own disk: continuous fragmented-MP4
// segments (internal/mp4) cut at keyframes, written under their final names, fsync'd per
// fragment, recovered in place after a crash, listed in an append-only index (index.jsonl)
// and kept within an age, a total size and a free-space floor. The recorder is one more
// reader of the stream, with its own bounded queue: a slow disk drops frames to the next
// keyframe, never blocks the viewers.
package record
