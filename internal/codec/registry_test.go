package codec

import "testing"

// The device offers every codec with its own payload type, and each video codec's
// retransmissions (RFC 4588) with the next one: no two may meet, nor meet RED and ULPFEC
// (116, 117, internal/peer).
func TestPayloadTypesDoNotCollide(t *testing.T) {
	taken := map[uint8]string{116: "RED", 117: "ULPFEC"}
	take := func(pt uint8, what string) {
		if other, ok := taken[pt]; ok {
			t.Errorf("payload type %d is both %s and %s", pt, other, what)
		}
		taken[pt] = what
	}
	for name, c := range registry {
		take(c.PayloadType, name)
		if c.Kind == Video {
			take(c.PayloadType+1, name+" retransmissions")
		}
	}
}
