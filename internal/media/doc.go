// Package media holds the H.264 bitstream knowledge that every p2pcast
// source and the recorder share: finding NAL units in Annex-B data, naming
// their types, reading the few sequence parameter set fields that signalling
// and recording need, telling keyframes apart, and cutting an unframed
// Annex-B byte stream (as ffmpeg writes it to a pipe) into access units.
// (Choosing a level is the encoder's: the one level table is in
// capture/encoders/x264.c.)
//
// Keeping this in one place means that a browser source, an RTSP camera and
// an ffmpeg pipe all agree on what a keyframe is and where a frame ends, and
// that a bug in that reasoning is fixed once.
//
// The package keeps no mutable global state, does not log and has no
// configuration, so it is safe to use from any goroutine. The functions meant
// for per-frame or per-packet use (TypeOf, NextNAL, HasStartCode, IsKeyframe
// and AUReader.Next in steady state) do not allocate, because they sit on the
// media hot path of every viewer.
//
// Everything here is defensive about its input: data comes from cameras,
// browsers and child processes that p2pcast does not control, so malformed
// bytes produce errors (or are skipped), never panics.
package media
