//go:build network

// Package network tests adaptive streaming on links that are slow, that change, and that lose
// packets: a device and its viewers (headless Chromium, `p2pcast view`) on a routed LAN in
// network namespaces (test/natlab's LAN), each viewer's downlink shaped with tbf and made lossy
// with iptables while the stream plays. The tests sample every viewer's WebRTC stats once a
// second, print them as a table, and assert what the issue "Watchable on real networks" asks
// ("Done when"). docs/network-lab.md describes the lab, the table and how to run one test.
//
// Run with `make test-network` (root). The device flags the tests expect are constants at the
// top of network_test.go.
package network
