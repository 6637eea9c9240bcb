package portal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/p2pcast/p2pcast/internal/portal/portaltest"
)

// streamT and pair encode as the portal's (ua{sv}) and (ii).
type streamT struct {
	Node  uint32
	Props map[string]dbus.Variant
}

type pair struct{ A, B int32 }

// responseBytes encodes a Response signal carrying results, as the portal sends it.
func responseBytes(t testing.TB, results map[string]dbus.Variant) []byte {
	t.Helper()
	msg := &dbus.Message{
		Type: dbus.TypeSignal,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/portal/desktop/request/1_1/t")),
			dbus.FieldInterface: dbus.MakeVariant(ifaceRequest),
			dbus.FieldMember:    dbus.MakeVariant("Response"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(uint32(0), results)),
		},
		Body: []any{uint32(0), results},
	}
	var b bytes.Buffer
	if err := msg.EncodeTo(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// parseResponse decodes a Response signal from the wire and reads Start's results from it:
// the path untrusted bytes take through the client.
func parseResponse(b []byte) (startResult, error) {
	msg, err := dbus.DecodeMessage(bytes.NewReader(b))
	if err != nil {
		return startResult{}, err
	}
	if len(msg.Body) != 2 {
		return startResult{}, errors.New("not a Response")
	}
	res, ok := msg.Body[1].(map[string]dbus.Variant)
	if !ok {
		return startResult{}, errors.New("not a Response")
	}
	return parseStart(res)
}

func TestParseStart(t *testing.T) {
	res := map[string]dbus.Variant{
		"streams": dbus.MakeVariant([]streamT{{7, map[string]dbus.Variant{
			"size":        dbus.MakeVariant(pair{1280, 720}),
			"position":    dbus.MakeVariant(pair{1920, 0}),
			"source_type": dbus.MakeVariant(uint32(1)),
			"id":          dbus.MakeVariant("x"),
		}}}),
		"devices":           dbus.MakeVariant(uint32(3)),
		"clipboard_enabled": dbus.MakeVariant(true),
		"restore_token":     dbus.MakeVariant("tok"),
		"unknown":           dbus.MakeVariant(int32(42)),
	}
	got, err := parseResponse(responseBytes(t, res))
	if err != nil {
		t.Fatal(err)
	}
	want := startResult{
		streams:   []Stream{{NodeID: 7, Width: 1280, Height: 720, X: 1920, SourceType: 1}},
		devices:   3,
		clipboard: true,
		token:     "tok",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	// Optional keys may be missing or of the wrong type; a malformed stream is an error.
	lenient := map[string]dbus.Variant{
		"streams": dbus.MakeVariant([]streamT{{7, map[string]dbus.Variant{
			"size": dbus.MakeVariant("big"), "position": dbus.MakeVariant([]int32{1, 2}),
		}}}),
		"devices": dbus.MakeVariant("all"),
	}
	if got, err := parseResponse(responseBytes(t, lenient)); err != nil ||
		!reflect.DeepEqual(got, startResult{streams: []Stream{{NodeID: 7}}}) {
		t.Errorf("lenient parse: %+v, %v", got, err)
	}
	for _, bad := range []any{[]uint32{7, 8}, "streams", []struct{ A, B, C uint32 }{{1, 2, 3}}} {
		if _, err := parseResponse(responseBytes(t, map[string]dbus.Variant{"streams": dbus.MakeVariant(bad)})); err == nil {
			t.Errorf("streams %T accepted", bad)
		}
	}
}

// FuzzParseStart feeds Response signals of any shape from the wire: the portal's answer must
// never panic the device. Seeds: testdata/fuzz/FuzzParseStart and the cases below.
func FuzzParseStart(f *testing.F) {
	f.Add(responseBytes(f, map[string]dbus.Variant{
		"streams": dbus.MakeVariant([]streamT{{42, map[string]dbus.Variant{
			"size": dbus.MakeVariant(pair{1920, 1080}), "position": dbus.MakeVariant(pair{0, 0}),
			"source_type": dbus.MakeVariant(uint32(1)),
		}}}),
		"devices":       dbus.MakeVariant(uint32(3)),
		"restore_token": dbus.MakeVariant("token"),
	}))
	f.Add(responseBytes(f, map[string]dbus.Variant{"streams": dbus.MakeVariant([]streamT{})}))
	f.Add(responseBytes(f, map[string]dbus.Variant{"streams": dbus.MakeVariant([]uint32{1})}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResponse(b)
		if err != nil {
			return
		}
		for _, s := range r.streams {
			if s.Width < 0 || s.Height < 0 || (s.Width == 0) != (s.Height == 0) {
				t.Fatalf("stream size %dx%d", s.Width, s.Height)
			}
		}
	})
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "token")
	if tok, err := loadToken(path); err != nil || tok != (savedToken{}) {
		t.Fatalf("missing file: %+v, %v", tok, err)
	}
	want := savedToken{Interface: ifaceRemoteDesktop, Token: "abc"}
	if err := saveToken(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := loadToken(path); err != nil || got != want {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	if err := saveToken(path, savedToken{Interface: ifaceScreenCast, Token: "def"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadToken(path); err == nil {
		t.Error("a corrupt token file loaded")
	}
	if err := removeToken(path); err != nil {
		t.Fatal(err)
	}
	if err := removeToken(path); err != nil {
		t.Errorf("removing a missing token: %v", err)
	}
}

func TestCorruptTokenFileAsksAgain(t *testing.T) {
	bus, p := start(t, portaltest.Desktop())
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := dial(t, bus, Options{TokenFile: path})
	noOption(t, p.Calls("SelectDevices")[0], "restore_token")
	if s.TokenErr() != nil {
		t.Errorf("TokenErr %v after a new token was saved", s.TokenErr())
	}
	if got, _ := loadToken(path); got.Token != "token-1" {
		t.Errorf("token %+v", got)
	}
}
