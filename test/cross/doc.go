//go:build cross

// Package cross tests the board's build (make cross: bin/linux-arm, docs/board.md) without the
// board: the armv7 device and producer run under qemu-arm-static on this machine and stream the
// test pattern and tone to `p2pcast view` on the host, which must decode what arrives.
//
// qemu-user runs one ARM program; it cannot start another ARM program unless binfmt_misc sends
// ARM executables to it, which a machine may not have. So the device waits on its socket
// (--source socket) and the test starts the producer itself, as the device would.
//
// Run with `make test-cross`, or `go test -tags cross ./test/cross/...` after `make build cross`.
package cross
