package viewer

import (
	"strings"
	"testing"
)

func TestSplitTCPCandidates(t *testing.T) {
	sdp := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n" +
		"a=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host\r\n" +
		"a=candidate:2 1 tcp 1671430143 10.0.0.2 9 typ host tcptype passive\r\n" +
		"a=candidate:3 1 UDP 1694498815 203.0.113.4 5000 typ srflx raddr 0.0.0.0 rport 5000\r\n" +
		"a=end-of-candidates\r\n"
	rest, tcp := splitTCPCandidates(sdp)
	if len(tcp) != 1 || tcp[0] != "candidate:2 1 tcp 1671430143 10.0.0.2 9 typ host tcptype passive" {
		t.Fatalf("tcp candidates %q", tcp)
	}
	if strings.Contains(rest, " tcp ") || !strings.Contains(rest, "candidate:1 ") || !strings.Contains(rest, "candidate:3 ") ||
		!strings.HasSuffix(rest, "a=end-of-candidates\r\n") {
		t.Fatalf("rest:\n%s", rest)
	}
}
