// Package rtsp is a small RTSP 1.0 client (RFC 2326) for IP cameras: it plays one stream with
// RTP interleaved over the RTSP TCP connection and hands out whole access units (Annex-B H.264
// and H.265) and audio frames (G.711, raw AAC) with capture times on the local clock.
//
// It does what cameras need and no more: OPTIONS, DESCRIBE, SETUP per track, PLAY, keep-alive
// and TEARDOWN; Basic and Digest authentication; a small SDP parser; depacketizers for H.264
// (internal/codec's), H.265 (RFC 7798), AAC (RFC 3640) and G.711. There is no UDP transport
// (TCP passes NATs and firewalls and never reorders), no RECORD and no RTSP server.
//
// Everything a camera sends is bounded and parsed defensively (and fuzzed): a broken or hostile
// camera yields an error, never a panic or unbounded memory. The package takes no logger and no
// configuration file: Options carries all it needs, errors say what happened.
//
// Credentials never appear in errors or strings: every URL printed goes through RedactURL.
package rtsp
