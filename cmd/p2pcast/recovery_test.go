package main

import (
	"errors"
	"testing"

	"github.com/p2pcast/p2pcast/internal/peer"
)

func TestParseRecovery(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want peer.Recovery
		bad  bool
	}{
		{in: "nack,fec"}, {in: "fec,nack"}, {in: " nack , fec "},
		{in: "nack", want: peer.Recovery{NoFEC: true}},
		{in: "fec", want: peer.Recovery{NoNACK: true}},
		{in: "none", want: peer.Recovery{NoNACK: true, NoFEC: true}},
		{in: "", bad: true}, {in: "rtx", bad: true}, {in: "nack,none", bad: true},
	} {
		got, err := parseRecovery(tc.in)
		if tc.bad {
			if !errors.Is(err, errUsage) {
				t.Errorf("%q: err %v, want a usage error", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
