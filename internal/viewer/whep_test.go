package viewer

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/device"
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

// TestWHEPLeavesTCPOutOnceUDPIsUp: a WHEP viewer connected over UDP within TCPCandidateDelay
// never connects to the device's ICE-TCP port (the pair cannot change any more), where it
// used to open a connection to each TCP candidate, held by both sides for the session.
func TestWHEPLeavesTCPOutOnceUDPIsUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // the device listens on it (on every address) from here
	d := startDeviceWith(t, func(c *device.Config) { c.ICETCPPort = port })
	// Counted at the 30th frame (1 s of video, well past the delay at which the candidates
	// would be added), while the session still runs.
	frames, during := 0, -1
	res, err := Watch(testContext(t), Options{WHEPURL: d.whep(), Frames: 45, OnFrame: func([]byte, bool, uint32) {
		if frames++; frames == 30 {
			during = establishedTo(t, port)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pair.Protocol != "udp" || during < 0 {
		t.Fatalf("pair %+v, %d frames: not a UDP session of 30 frames", res.Pair, frames)
	}
	if during != 0 {
		t.Errorf("%d TCP connections to the device's ICE-TCP port %d after the UDP pair was up", during, port)
	}
}

// establishedTo counts this machine's established TCP connections to local port (both ends
// of a loopback connection are on this machine: the device's side is counted).
func establishedTo(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "01" { // 01: ESTABLISHED
				continue
			}
			local := fields[1]
			if p, err := strconv.ParseUint(local[strings.LastIndexByte(local, ':')+1:], 16, 16); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}
