package peer

import (
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/stream"
)

// TestRecoveryOff: each way of repairing loss can be turned off for a measurement, and then the
// device's offer does not offer it (receivers would ask for what is never sent).
func TestRecoveryOff(t *testing.T) {
	st := stream.New(stream.Config{})
	st.Attach(stream.Describe("t", []stream.Track{testVideo}, nil), nil)
	for _, tc := range []struct {
		name      string
		r         Recovery
		nack, fec bool
	}{
		{"both", Recovery{}, true, true},
		{"no NACK", Recovery{NoNACK: true}, false, true},
		{"no FEC", Recovery{NoFEC: true}, true, false},
		{"none", Recovery{NoNACK: true, NoFEC: true}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(Config{IncludeLoopback: true, Recovery: tc.r})
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.NewSession(st, SessionOptions{Access: auth.FullAccess()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			offer, err := s.Offer()
			if err != nil {
				t.Fatal(err)
			}
			nack, pli := false, false
			for _, l := range strings.Split(offer, "\r\n") {
				if strings.HasPrefix(l, "a=rtcp-fb:") {
					f := strings.Fields(l)
					nack = nack || len(f) == 2 && f[1] == "nack"
					pli = pli || len(f) == 3 && f[1] == "nack" && f[2] == "pli"
				}
			}
			fec := strings.Contains(offer, "red/90000") && strings.Contains(offer, "ulpfec/90000")
			if nack != tc.nack || fec != tc.fec || !pli {
				t.Errorf("offer has nack %v (want %v), red+ulpfec %v (want %v), nack pli %v (want true)", nack, tc.nack, fec, tc.fec, pli)
			}
		})
	}
}
