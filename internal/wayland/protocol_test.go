package wayland

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"
	"testing"
)

type xmlProtocol struct {
	Interfaces []struct {
		Name     string       `xml:"name,attr"`
		Requests []xmlMessage `xml:"request"`
		Events   []xmlMessage `xml:"event"`
		Enums    []struct {
			Name    string `xml:"name,attr"`
			Entries []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"entry"`
		} `xml:"enum"`
	} `xml:"interface"`
}

type xmlMessage struct {
	Name string `xml:"name,attr"`
	Args []struct {
		Type      string `xml:"type,attr"`
		AllowNull string `xml:"allow-null,attr"`
	} `xml:"arg"`
}

var xmlKind = map[string]string{
	"int": "i", "uint": "u", "fixed": "f", "string": "s", "object": "o", "new_id": "n",
	"array": "a", "fd": "h",
}

func (m xmlMessage) signature() string {
	var b strings.Builder
	for _, a := range m.Args {
		if a.AllowNull == "true" {
			b.WriteByte('?')
		}
		b.WriteString(xmlKind[a.Type])
	}
	return b.String()
}

// TestProtocolTables checks the event signatures, request opcodes and enum values used here
// against the protocol XML installed with libwayland-dev and wayland-protocols (the wlroots
// protocols are not installed: their tables were checked by hand against wlroots' XML).
func TestProtocolTables(t *testing.T) {
	files := []string{
		"/usr/share/wayland/wayland.xml",
		"/usr/share/wayland-protocols/unstable/xdg-output/xdg-output-unstable-v1.xml",
	}
	type message struct {
		opcode int
		sig    string
	}
	requests := map[string]message{}
	events := map[string]message{}
	enums := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("protocol XML not installed: %v", err)
		}
		var p xmlProtocol
		if err := xml.Unmarshal(data, &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, ifc := range p.Interfaces {
			for i, r := range ifc.Requests {
				requests[ifc.Name+"."+r.Name] = message{i, r.signature()}
			}
			for i, e := range ifc.Events {
				events[ifc.Name+"."+e.Name] = message{i, e.signature()}
			}
			for _, e := range ifc.Enums {
				for _, v := range e.Entries {
					enums[ifc.Name+"."+e.Name+"."+v.Name] = v.Value
				}
			}
		}
	}
	checked := 0
	for _, ifc := range allInterfaces {
		for op, ev := range ifc.events {
			want, ok := events[ifc.name+"."+ev.name]
			if !ok {
				continue
			}
			checked++
			if want.opcode != op || want.sig != ev.sig {
				t.Errorf("%s.%s: opcode %d sig %q, XML says %d %q", ifc.name, ev.name, op, ev.sig, want.opcode, want.sig)
			}
		}
	}
	if checked < 15 {
		t.Errorf("only %d events checked", checked)
	}
	for name, op := range map[string]int{
		"wl_display.sync": displaySync, "wl_display.get_registry": displayGetRegistry,
		"wl_registry.bind": registryBind, "wl_seat.get_keyboard": seatGetKeyboard,
		"wl_keyboard.release": keyboardRelease, "wl_output.release": outputRelease,
		"zxdg_output_manager_v1.destroy":        xdgOutputManagerDestroy,
		"zxdg_output_manager_v1.get_xdg_output": xdgOutputManagerGetXdgOutput,
		"zxdg_output_v1.destroy":                xdgOutputDestroy,
	} {
		if want, ok := requests[name]; !ok || want.opcode != op {
			t.Errorf("request %s: opcode %d, XML says %d (found %v)", name, op, want.opcode, ok)
		}
	}
	for name, v := range map[string]int{
		"wl_seat.capability.keyboard":       seatCapabilityKeyboard,
		"wl_keyboard.keymap_format.xkb_v1":  keymapFormatXKBv1,
		"wl_keyboard.key_state.released":    keyStateReleased,
		"wl_keyboard.key_state.pressed":     keyStatePressed,
		"wl_pointer.button_state.released":  buttonStateReleased,
		"wl_pointer.button_state.pressed":   buttonStatePressed,
		"wl_pointer.axis.vertical_scroll":   axisVertical,
		"wl_pointer.axis.horizontal_scroll": axisHorizontal,
		"wl_pointer.axis_source.wheel":      axisSourceWheel,
		"wl_pointer.axis_source.continuous": axisSourceContinuous,
		"wl_output.mode.current":            outputModeCurrent,
	} {
		got := enums[name]
		var want int
		if _, err := fmt.Sscan(got, &want); err != nil || want != v {
			t.Errorf("enum %s = %d, XML says %q", name, v, got)
		}
	}
}
