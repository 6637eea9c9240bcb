package input

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want message
		err  error
	}{
		{`{"type":"move","x":0.5,"y":0.25}`, message{typ: TypeMove, x: 0.5, y: 0.25}, nil},
		{`{"type":"move","x":-3,"y":1.5,"extra":{"a":[1]}}`, message{typ: TypeMove, x: 0, y: 1}, nil}, // clamped; unknown fields ignored
		{`{"x":1,"y":0,"type":"move"}`, message{typ: TypeMove, x: 1}, nil},                            // any field order
		{`{"type":"move","x":0.5}`, message{}, ErrMalformed},
		{`{"type":"move","x":1e999,"y":0}`, message{}, ErrMalformed}, // no Inf in JSON
		{`{"type":"move","x":"0.5","y":0}`, message{}, ErrMalformed},
		{`{"type":"button","button":0,"down":true}`, message{typ: TypeButton, button: 0, evdev: 0x110, down: true}, nil},
		{`{"type":"button","button":2,"down":false}`, message{typ: TypeButton, button: 2, evdev: 0x111}, nil},
		{`{"type":"button","button":4,"down":true}`, message{typ: TypeButton, button: 4, evdev: 0x114, down: true}, nil},
		{`{"type":"button","button":5,"down":true}`, message{}, ErrRange},
		{`{"type":"button","button":-1,"down":true}`, message{}, ErrRange},
		{`{"type":"button","button":0}`, message{}, ErrMalformed},
		{`{"type":"wheel","v120x":0,"v120y":120}`, message{typ: TypeWheel, v120y: 120}, nil},
		{`{"type":"wheel","v120y":-40}`, message{typ: TypeWheel, v120y: -40}, nil},
		{`{"type":"wheel","v120x":12000,"v120y":-12000}`, message{typ: TypeWheel, v120x: 12000, v120y: -12000}, nil},
		{`{"type":"wheel","v120y":12001}`, message{}, ErrRange},
		{`{"type":"wheel","v120y":1.5}`, message{}, ErrMalformed},
		{`{"type":"key","code":"KeyA","down":true}`, message{typ: TypeKey, code: "KeyA", evdev: 30, down: true}, nil},
		{`{"type":"key","code":"Fn","down":true}`, message{}, ErrUnknownKey},
		{`{"type":"key","down":true}`, message{}, ErrMalformed},
		{`{"type":"text","text":"héllo"}`, message{typ: TypeText, text: "héllo"}, nil},
		{`{"type":"text","text":"` + strings.Repeat("é", MaxText) + `"}`, message{typ: TypeText, text: strings.Repeat("é", MaxText)}, nil},
		{`{"type":"text","text":"` + strings.Repeat("é", MaxText+1) + `"}`, message{}, ErrRange},
		{`{"type":"text"}`, message{}, ErrMalformed},
		{`{"type":"clipboard","text":"<b>&</b>"}`, message{typ: TypeClipboard, text: "<b>&</b>"}, nil},
		{`{"type":"clipboard","text":"` + strings.Repeat("x", MaxClipboard+1) + `"}`, message{}, ErrRange},
		{`{"type":"release"}`, message{typ: TypeRelease}, nil},
		{`{"type":"request"}`, message{typ: TypeRequest}, nil},
		{`{"type":"yield"}`, message{typ: TypeYield}, nil},
		{`{"type":"handover","to":"v2"}`, message{typ: TypeHandover, to: "v2"}, nil},
		{`{"type":"handover","to":""}`, message{}, ErrMalformed},
		{`{"type":"state"}`, message{}, ErrUnknownType}, // the device's, not the viewer's
		{`{"type":"jump"}`, message{}, ErrUnknownType},
		{`{}`, message{}, ErrMalformed},
		{`[1,2]`, message{}, ErrMalformed},
		{`not json`, message{}, ErrMalformed},
		{`{"type":"move","x":0,"y":0}` + strings.Repeat(" ", MaxMessage), message{}, ErrTooLarge},
	} {
		got, err := parseMessage([]byte(tc.in))
		name := tc.in
		if len(name) > 60 {
			name = name[:60] + "…"
		}
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: error %v, want %v", name, err, tc.err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}

// The error reply names what was wrong, and does not echo a long value whole.
func TestParseMessageErrorsNameTheValue(t *testing.T) {
	_, err := parseMessage([]byte(`{"type":"key","code":"Hyper","down":true}`))
	if err == nil || !strings.Contains(err.Error(), `"Hyper"`) {
		t.Errorf("unknown key: %v", err)
	}
	_, err = parseMessage([]byte(`{"type":"key","code":"` + strings.Repeat("k", 1000) + `","down":true}`))
	if err == nil || len(err.Error()) > 120 {
		t.Errorf("a long unknown code is echoed whole: %d bytes", len(err.Error()))
	}
}

// FuzzMessage: parseMessage never panics; what it accepts is in range, and written back as a
// viewer would send it, reads the same.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"move","x":0.5,"y":0.25}`,
		`{"type":"button","button":3,"down":true}`,
		`{"type":"wheel","v120x":-15,"v120y":120}`,
		`{"type":"key","code":"IntlBackslash","down":false}`,
		`{"type":"text","text":"h\u00e9llo \ud83d\ude00"}`,
		`{"type":"clipboard","text":"a\nb"}`,
		`{"type":"handover","to":"v2"}`,
		`{"type":"request"}`, `{"type":"yield"}`, `{"type":"release"}`,
		`{"type":"move","x":1e308,"y":-1e-308}`,
		`{"type":"key","code":"KeyA","down":true,"type":"wheel"}`,
		`{"TYPE":"move","X":0.1,"Y":0.2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			for _, want := range []error{ErrTooLarge, ErrMalformed, ErrUnknownType, ErrRange, ErrUnknownKey} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("undocumented error %v", err)
		}
		switch m.typ {
		case TypeMove:
			if !(m.x >= 0 && m.x <= 1 && m.y >= 0 && m.y <= 1) {
				t.Fatalf("move out of range: %+v", m)
			}
		case TypeButton:
			if m.evdev < 0x110 || m.evdev > 0x114 {
				t.Fatalf("button %+v", m)
			}
		case TypeKey:
			if k, ok := keyCodes[m.code]; !ok || k != m.evdev {
				t.Fatalf("key %+v", m)
			}
		case TypeWheel:
			if m.v120x < -MaxWheel || m.v120x > MaxWheel || m.v120y < -MaxWheel || m.v120y > MaxWheel {
				t.Fatalf("wheel %+v", m)
			}
		case TypeText:
			if utf8.RuneCountInString(m.text) > MaxText {
				t.Fatalf("text of %d runes", utf8.RuneCountInString(m.text))
			}
		case TypeClipboard:
			if len(m.text) > MaxClipboard {
				t.Fatalf("clipboard of %d bytes", len(m.text))
			}
		case TypeHandover:
			if m.to == "" {
				t.Fatal("handover to nobody")
			}
		case TypeRequest, TypeYield, TypeRelease:
		default:
			t.Fatalf("accepted type %q", m.typ)
		}
		// Without the size limit: escapes may make the written form the longer.
		again, err := decodeMessage(m.marshal())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %+v → %s → %+v, %v", m, m.marshal(), again, err)
		}
	})
}
