//go:build deb

// Package deb tests the Debian packages `make deb` builds (packaging/, scripts/build-deb.sh):
// each is installed into a scratch root with `dpkg --root` (kept between runs under
// bin/deb/root-ARCH; the host's systemd units are copied in so units can be verified), its
// binaries run (the armhf ones under qemu-arm-static), and its units pass
// `systemd-analyze verify` and score as well sandboxed by `systemd-analyze security`. No systemd
// runs as PID 1 here, so the units are verified, not started.
//
// Run with `make test-deb`.
package deb
