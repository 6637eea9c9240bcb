// Package e2e holds end-to-end tests with real parts: the built p2pcast and p2pcast-capture
// binaries and Debian's headless Chromium. They carry the e2e build tag; `make test-e2e` builds
// them and runs them inside a private network namespace with only loopback up, so every packet
// stays on 127.0.0.1.
package e2e
