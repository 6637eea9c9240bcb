package wayland

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestParseKeymap(t *testing.T) {
	de, err := os.ReadFile("testdata/keymap_de.xkb")
	if err != nil {
		t.Fatal(err)
	}
	const (
		keyLeftCtrl   = 29
		keyLeftShift  = 42
		keyRightShift = 54
		keyLeftAlt    = 56
		keyCapsLock   = 58
		keyNumLock    = 69
		keyRightCtrl  = 97
		keyRightAlt   = 100
		keyLeftMeta   = 125
		keyA          = 30
	)
	for _, tc := range []struct {
		name string
		text string
		want map[uint32]modKey
	}{
		{"us", defaultKeymap, map[uint32]modKey{
			keyLeftShift: {mask: modShift}, keyRightShift: {mask: modShift},
			keyCapsLock: {mask: modLock, lock: true}, keyNumLock: {mask: mod2, lock: true},
			keyLeftCtrl: {mask: modControl}, keyRightCtrl: {mask: modControl},
			keyLeftAlt: {mask: mod1}, keyRightAlt: {mask: mod1}, keyLeftMeta: {mask: mod4},
		}},
		// German: right Alt is AltGr (ISO_Level3_Shift), which the keymap puts on Mod5.
		{"de", string(de), map[uint32]modKey{
			keyLeftShift: {mask: modShift}, keyCapsLock: {mask: modLock, lock: true},
			keyLeftAlt: {mask: mod1}, keyRightAlt: {mask: mod5}, keyLeftMeta: {mask: mod4},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := parseKeymap(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			for code, want := range tc.want {
				if got := info.mods[code]; got != want {
					t.Errorf("key %d: %+v, want %+v", code, got, want)
				}
			}
			if _, ok := info.mods[keyA]; ok {
				t.Errorf("KEY_A taken for a modifier")
			}
			if !usableSeatKeymap(info) {
				t.Errorf("a full layout judged unusable: %d keys, shift %v", info.keys, info.shift)
			}
		})
	}
}

func TestTypingKeymap(t *testing.T) {
	var syms []string
	for _, r := range "aé✓\n\t€" {
		s, err := keysymName(r)
		if err != nil {
			t.Fatal(err)
		}
		syms = append(syms, s)
	}
	text := typingKeymap(syms)
	info, err := parseKeymap(text)
	if err != nil {
		t.Fatal(err)
	}
	if usableSeatKeymap(info) {
		t.Error("a typing keymap judged a usable seat keymap")
	}
	if _, err := keysymName(0x07); err == nil {
		t.Error("BEL has a keysym")
	}
	// libxkbcommon must compile it; xkbcli is only on machines with libxkbcommon-tools (the
	// sway tests upload it for real).
	if _, err := exec.LookPath("xkbcli"); err != nil {
		t.Skip("xkbcli not installed")
	}
	cmd := exec.Command("xkbcli", "compile-keymap", "--from-xkb")
	cmd.Stdin = strings.NewReader(text)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// xkbcli 1.5 inverts its exit status with --from-xkb: judge by what it prints.
	out, _ := cmd.Output()
	if !strings.HasPrefix(string(out), "xkb_keymap") || stderr.Len() > 0 {
		t.Fatalf("xkbcli rejects the typing keymap:\n%s\n%s", stderr.String(), text)
	}
	for _, want := range []string{"eacute", "U2713", "Return", "Tab", "U20AC"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("compiled keymap lacks %s:\n%s", want, out)
		}
	}
}
