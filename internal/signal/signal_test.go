package signal

import (
	"errors"
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/wire"
)

func TestParseInbound(t *testing.T) {
	good := map[string]Inbound{
		`{"type":"watch"}`:                      {Type: wire.TypeWatch},
		`{"type":"bye","extra":1}`:              {Type: wire.TypeBye},
		`{"type":"offer","sdp":"v=0"}`:          {Type: wire.TypeOffer, SDP: "v=0"},
		`{"type":"candidate","candidate":null}`: {Type: wire.TypeCandidate},
	}
	for in, want := range good {
		got, err := ParseInbound([]byte(in))
		if err != nil || got.Type != want.Type || got.SDP != want.SDP || (got.Candidate == nil) != (want.Candidate == nil) {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	c, err := ParseInbound([]byte(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}}`))
	if err != nil || c.Candidate == nil || *c.Candidate.SDPMid != "0" {
		t.Fatalf("candidate: %+v %v", c, err)
	}
	for _, bad := range []string{
		``, `[]`, `{}`, `{"type":""}`, `{"type":"dance"}`, `{"type":"offer"}`, `{"type":"answer","sdp":""}`,
		`{"type":"candidate"}`, `{"type":"candidate","candidate":"x"}`, `{"type":1}`, `not json`,
	} {
		if _, err := ParseInbound([]byte(bad)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%q accepted or wrong error: %v", bad, err)
		}
	}
	if _, err := ParseInbound(make([]byte, MaxMessage+1)); !errors.Is(err, ErrBadMessage) {
		t.Error("oversized message accepted")
	}
}

// A watch or offer may name a source; a malformed id is refused, and restart or bye carry none.
func TestParseInboundSource(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"watch","source":"cam-2"}`:         "cam-2",
		`{"type":"offer","sdp":"v=0","source":"x"}`: "x",
		`{"type":"watch","source":""}`:              "",
		`{"type":"restart","source":"cam2"}`:        "",
	} {
		got, err := ParseInbound([]byte(in))
		if err != nil || got.SourceID != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{`{"type":"watch","source":"Cam"}`, `{"type":"watch","source":"a/b"}`,
		`{"type":"watch","source":"` + strings.Repeat("a", 33) + `"}`, `{"type":"watch","source":7}`} {
		if _, err := ParseInbound([]byte(bad)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s accepted or wrong error: %v", bad, err)
		}
	}
}

func TestParseSDPFrag(t *testing.T) {
	frag := "a=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
	c, err := ParseSDPFrag(frag)
	if err != nil || len(c) != 1 || *c[0].SDPMid != "0" || *c[0].UsernameFragment != "abcd" ||
		c[0].Candidate != "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseSDPFrag("a=candidate:short\r\n"); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("malformed candidate: %v", err)
	}
}

func FuzzParseInbound(f *testing.F) {
	for _, s := range []string{`{"type":"watch"}`, `{"type":"offer","sdp":"v=0\r\n"}`,
		`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"candidate","candidate":null}`, `{"type":"auth","token":"p2pt1.x.y"}`, `{"type":"watch","source":"cam2"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseInbound(in)
		if err != nil {
			return
		}
		if m.SourceID != "" && !ValidSourceID(m.SourceID) {
			t.Fatalf("source %q accepted", m.SourceID)
		}
		switch m.Type {
		case wire.TypeWatch, wire.TypeBye, wire.TypeCandidate, wire.TypeRestart, wire.TypeAuth:
		case wire.TypeOffer, wire.TypeAnswer:
			if m.SDP == "" {
				t.Fatal("offer/answer without SDP accepted")
			}
		default:
			t.Fatalf("unknown type %q accepted", m.Type)
		}
	})
}

func FuzzParseSDPFrag(f *testing.F) {
	f.Add("a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		cs, err := ParseSDPFrag(in)
		if err != nil {
			return
		}
		for _, c := range cs {
			if len(c.Candidate) > maxCandidate {
				t.Fatal("oversized candidate accepted")
			}
		}
	})
}
