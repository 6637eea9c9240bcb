// Package mp4 writes and indexes fragmented MP4 (ISO/IEC 14496-12) files of the kind the
// recorder and `p2pcast view --out` produce: one `ftyp` and a `moov` that describes the
// tracks but holds no samples (its sample tables are empty and `mvex` announces fragments),
// then a run of `moof`+`mdat` fragments, each written whole with one Write call.
//
// That layout is what makes a recording crash-safe: nothing is patched after the fact, no
// size or duration in the header depends on what comes later, so a process killed at any
// moment leaves a file that plays up to its last complete fragment; ReadFragments tells where
// the complete fragments end so a recovery can cut the torn tail.
//
// Tracks carry H.264 or H.265 (Annex-B access units, stored length-prefixed), Opus, AAC or
// G.711. Samples are copied into buffers the Writer reuses, so steady-state writing
// allocates nothing per sample.
//
// The package is a protocol package: no logger, no configuration, no global state. Errors
// are sentinels (errors.Is), wrapped with detail where they are raised.
package mp4
