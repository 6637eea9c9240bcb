package turnserver

import (
	"net"
	"testing"
	"time"
)

// BenchmarkRelayToClient measures the server's path for a relayed session's media: a packet
// from the peer to the relayed address, out to the client as ChannelData, with up to 16 in
// flight. The client, the peer and the server share the process, so ns/op is the whole loop;
// `-cpuprofile` shows the server's part, and `p2pcast bench relay` measures the server alone,
// beside coturn.
func BenchmarkRelayToClient(b *testing.B) {
	// A user's bandwidth quota drops what exceeds it: the benchmark measures the path, not the quota.
	s := start(b, Config{Peers: loopbackLab, UserBandwidth: 1 << 40})
	user, pass := credential("bench")
	c := client(b, s, user, pass)
	relay := allocate(b, c)
	peer, err := net.ListenPacket("udp4", peerIP+":0")
	if err != nil {
		b.Skipf("no second loopback address here: %v", err)
	}
	b.Cleanup(func() { peer.Close() })
	// The client's first packet installs the permission and the channel.
	if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1500)
	if _, _, err := peer.ReadFrom(buf); err != nil {
		b.Fatal(err)
	}
	const window = 16
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	go func() {
		rbuf := make([]byte, 1500)
		for {
			if _, _, err := relay.ReadFrom(rbuf); err != nil {
				return
			}
			tokens <- struct{}{}
		}
	}()
	payload := make([]byte, 1100)
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for range b.N {
		select {
		case <-tokens:
		case <-time.After(time.Second):
			b.Fatal("a relayed packet did not arrive within 1 s")
		}
		if _, err := peer.WriteTo(payload, relay.LocalAddr()); err != nil {
			b.Fatal(err)
		}
	}
}
