package input

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// evdevNames is, for every code the table maps, the key's name in linux/input-event-codes.h:
// written from the W3C code list and the kernel's USB mapping, apart from the table's numbers,
// so that each can check the other.
var evdevNames = map[string]string{
	"KeyA": "KEY_A", "KeyB": "KEY_B", "KeyC": "KEY_C", "KeyD": "KEY_D", "KeyE": "KEY_E",
	"KeyF": "KEY_F", "KeyG": "KEY_G", "KeyH": "KEY_H", "KeyI": "KEY_I", "KeyJ": "KEY_J",
	"KeyK": "KEY_K", "KeyL": "KEY_L", "KeyM": "KEY_M", "KeyN": "KEY_N", "KeyO": "KEY_O",
	"KeyP": "KEY_P", "KeyQ": "KEY_Q", "KeyR": "KEY_R", "KeyS": "KEY_S", "KeyT": "KEY_T",
	"KeyU": "KEY_U", "KeyV": "KEY_V", "KeyW": "KEY_W", "KeyX": "KEY_X", "KeyY": "KEY_Y",
	"KeyZ":   "KEY_Z",
	"Digit0": "KEY_0", "Digit1": "KEY_1", "Digit2": "KEY_2", "Digit3": "KEY_3", "Digit4": "KEY_4",
	"Digit5": "KEY_5", "Digit6": "KEY_6", "Digit7": "KEY_7", "Digit8": "KEY_8", "Digit9": "KEY_9",
	"Minus": "KEY_MINUS", "Equal": "KEY_EQUAL", "BracketLeft": "KEY_LEFTBRACE",
	"BracketRight": "KEY_RIGHTBRACE", "Backslash": "KEY_BACKSLASH", "Semicolon": "KEY_SEMICOLON",
	"Quote": "KEY_APOSTROPHE", "Backquote": "KEY_GRAVE", "Comma": "KEY_COMMA", "Period": "KEY_DOT",
	"Slash": "KEY_SLASH", "IntlBackslash": "KEY_102ND", "IntlRo": "KEY_RO", "IntlYen": "KEY_YEN",
	"Enter": "KEY_ENTER", "Escape": "KEY_ESC", "Backspace": "KEY_BACKSPACE", "Tab": "KEY_TAB",
	"Space": "KEY_SPACE", "CapsLock": "KEY_CAPSLOCK", "ContextMenu": "KEY_COMPOSE",
	"ControlLeft": "KEY_LEFTCTRL", "ShiftLeft": "KEY_LEFTSHIFT", "AltLeft": "KEY_LEFTALT",
	"MetaLeft": "KEY_LEFTMETA", "ControlRight": "KEY_RIGHTCTRL", "ShiftRight": "KEY_RIGHTSHIFT",
	"AltRight": "KEY_RIGHTALT", "MetaRight": "KEY_RIGHTMETA", "OSLeft": "KEY_LEFTMETA",
	"OSRight": "KEY_RIGHTMETA", "Convert": "KEY_HENKAN", "NonConvert": "KEY_MUHENKAN",
	"KanaMode": "KEY_KATAKANAHIRAGANA", "Lang1": "KEY_HANGEUL", "Lang2": "KEY_HANJA",
	"Lang3": "KEY_KATAKANA", "Lang4": "KEY_HIRAGANA", "Lang5": "KEY_ZENKAKUHANKAKU",
	"Insert": "KEY_INSERT", "Delete": "KEY_DELETE", "Home": "KEY_HOME", "End": "KEY_END",
	"PageUp": "KEY_PAGEUP", "PageDown": "KEY_PAGEDOWN", "ArrowUp": "KEY_UP", "ArrowLeft": "KEY_LEFT",
	"ArrowRight": "KEY_RIGHT", "ArrowDown": "KEY_DOWN", "Help": "KEY_HELP",
	"NumLock": "KEY_NUMLOCK", "Numpad0": "KEY_KP0", "Numpad1": "KEY_KP1", "Numpad2": "KEY_KP2",
	"Numpad3": "KEY_KP3", "Numpad4": "KEY_KP4", "Numpad5": "KEY_KP5", "Numpad6": "KEY_KP6",
	"Numpad7": "KEY_KP7", "Numpad8": "KEY_KP8", "Numpad9": "KEY_KP9", "NumpadAdd": "KEY_KPPLUS",
	"NumpadSubtract": "KEY_KPMINUS", "NumpadMultiply": "KEY_KPASTERISK", "NumpadDivide": "KEY_KPSLASH",
	"NumpadDecimal": "KEY_KPDOT", "NumpadEnter": "KEY_KPENTER", "NumpadEqual": "KEY_KPEQUAL",
	"NumpadComma": "KEY_KPCOMMA", "NumpadParenLeft": "KEY_KPLEFTPAREN", "NumpadParenRight": "KEY_KPRIGHTPAREN",
	"F1": "KEY_F1", "F2": "KEY_F2", "F3": "KEY_F3", "F4": "KEY_F4", "F5": "KEY_F5", "F6": "KEY_F6",
	"F7": "KEY_F7", "F8": "KEY_F8", "F9": "KEY_F9", "F10": "KEY_F10", "F11": "KEY_F11", "F12": "KEY_F12",
	"F13": "KEY_F13", "F14": "KEY_F14", "F15": "KEY_F15", "F16": "KEY_F16", "F17": "KEY_F17",
	"F18": "KEY_F18", "F19": "KEY_F19", "F20": "KEY_F20", "F21": "KEY_F21", "F22": "KEY_F22",
	"F23": "KEY_F23", "F24": "KEY_F24", "PrintScreen": "KEY_SYSRQ", "ScrollLock": "KEY_SCROLLLOCK",
	"Pause": "KEY_PAUSE", "Open": "KEY_OPEN", "Select": "KEY_FRONT", "Again": "KEY_AGAIN",
	"Undo": "KEY_UNDO", "Copy": "KEY_COPY", "Paste": "KEY_PASTE", "Cut": "KEY_CUT", "Find": "KEY_FIND",
	"AudioVolumeMute": "KEY_MUTE", "AudioVolumeDown": "KEY_VOLUMEDOWN", "AudioVolumeUp": "KEY_VOLUMEUP",
	"VolumeMute": "KEY_MUTE", "VolumeDown": "KEY_VOLUMEDOWN", "VolumeUp": "KEY_VOLUMEUP",
	"MediaPlayPause": "KEY_PLAYPAUSE", "MediaPlay": "KEY_PLAY", "MediaPause": "KEY_PAUSECD",
	"MediaStop": "KEY_STOPCD", "MediaTrackNext": "KEY_NEXTSONG", "MediaTrackPrevious": "KEY_PREVIOUSSONG",
	"MediaRecord": "KEY_RECORD", "MediaRewind": "KEY_REWIND", "MediaFastForward": "KEY_FASTFORWARD",
	"MediaSelect": "KEY_CONFIG", "Eject": "KEY_EJECTCD", "BrowserBack": "KEY_BACK",
	"BrowserForward": "KEY_FORWARD", "BrowserRefresh": "KEY_REFRESH", "BrowserStop": "KEY_STOP",
	"BrowserSearch": "KEY_SEARCH", "BrowserHome": "KEY_HOMEPAGE", "BrowserFavorites": "KEY_BOOKMARKS",
	"LaunchMail": "KEY_MAIL", "LaunchApp1": "KEY_COMPUTER", "LaunchApp2": "KEY_CALC",
	"LaunchControlPanel": "KEY_CONTROLPANEL", "LaunchScreenSaver": "KEY_SCREENSAVER",
	"LaunchAssistant": "KEY_ASSISTANT", "SelectTask": "KEY_APPSELECT", "ShowAllWindows": "KEY_SCALE",
	"ZoomToggle": "KEY_FULL_SCREEN", "MailReply": "KEY_REPLY", "MailForward": "KEY_FORWARDMAIL",
	"MailSend": "KEY_SEND", "KeyboardLayoutSelect": "KEY_KBD_LAYOUT_NEXT",
	"BrightnessDown": "KEY_BRIGHTNESSDOWN", "BrightnessUp": "KEY_BRIGHTNESSUP",
	"DisplayToggleIntExt": "KEY_SWITCHVIDEOMODE", "Power": "KEY_POWER", "Sleep": "KEY_SLEEP",
	"WakeUp": "KEY_WAKEUP",
}

// aliases are the codes that share a key with another: older browsers' names.
var aliases = map[string]string{
	"OSLeft": "MetaLeft", "OSRight": "MetaRight",
	"VolumeMute": "AudioVolumeMute", "VolumeDown": "AudioVolumeDown", "VolumeUp": "AudioVolumeUp",
}

// Spot checks of every group, written from input-event-codes.h: they hold without the header.
func TestKeyCodesSpotChecks(t *testing.T) {
	for _, tc := range []struct {
		code string
		want uint32
	}{
		{"KeyA", 30}, {"KeyQ", 16}, {"KeyZ", 44}, {"KeyM", 50}, // letters (QWERTY positions)
		{"Digit1", 2}, {"Digit0", 11}, // digits
		{"Minus", 12}, {"Backquote", 41}, {"Slash", 53}, {"Quote", 40}, // punctuation
		{"IntlBackslash", 86}, {"IntlRo", 89}, {"IntlYen", 124}, // international
		{"Enter", 28}, {"Escape", 1}, {"Backspace", 14}, {"Tab", 15}, {"Space", 57}, // editing
		{"ShiftLeft", 42}, {"ShiftRight", 54}, {"ControlLeft", 29}, {"ControlRight", 97},
		{"AltLeft", 56}, {"AltRight", 100}, {"MetaLeft", 125}, {"MetaRight", 126}, {"OSLeft", 125}, // modifiers
		{"CapsLock", 58}, {"NumLock", 69}, {"ScrollLock", 70}, // locks
		{"F1", 59}, {"F10", 68}, {"F11", 87}, {"F12", 88}, {"F13", 183}, {"F24", 194}, // function keys
		{"ArrowUp", 103}, {"ArrowDown", 108}, {"Home", 102}, {"PageDown", 109}, {"Insert", 110}, {"Delete", 111}, // navigation
		{"Numpad0", 82}, {"Numpad7", 71}, {"NumpadEnter", 96}, {"NumpadDecimal", 83}, {"NumpadDivide", 98}, // numpad
		{"PrintScreen", 99}, {"Pause", 119}, {"ContextMenu", 127}, // system
		{"Lang1", 122}, {"Lang2", 123}, {"Convert", 92}, {"KanaMode", 93}, // languages
		{"AudioVolumeMute", 113}, {"AudioVolumeUp", 115}, {"MediaPlayPause", 164}, {"MediaTrackNext", 163}, // media
		{"BrowserBack", 158}, {"LaunchApp2", 140}, // browser and applications
	} {
		if got, ok := keyCode(tc.code); !ok || got != tc.want {
			t.Errorf("%s = %d, %v; want %d", tc.code, got, ok, tc.want)
		}
	}
	for _, code := range []string{"", "Fn", "FnLock", "NumpadClear", "keya", "KeyA ", "Unidentified"} {
		if k, ok := keyCode(code); ok {
			t.Errorf("%q maps to %d; want unknown", code, k)
		}
	}
}

// Each key has one code; only the documented aliases share one.
func TestKeyCodesNoDuplicates(t *testing.T) {
	seen := map[uint32]string{}
	for code, k := range keyCodes {
		if _, ok := aliases[code]; ok {
			if keyCodes[aliases[code]] != k {
				t.Errorf("alias %s = %d, %s = %d", code, k, aliases[code], keyCodes[aliases[code]])
			}
			continue
		}
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s both map to %d", code, other, k)
		}
		seen[k] = code
		if k == 0 || k >= 0x100 && k < 0x160 || k > 0x2ff {
			t.Errorf("%s maps to %#x: not a keyboard key", code, k)
		}
	}
	if len(keyCodes) != len(evdevNames) {
		t.Errorf("the table has %d codes, the names list %d", len(keyCodes), len(evdevNames))
	}
}

// Every number in the table is the value linux/input-event-codes.h gives the key's name.
func TestKeyCodesMatchTheKernelHeader(t *testing.T) {
	const header = "/usr/include/linux/input-event-codes.h"
	f, err := os.Open(header)
	if err != nil {
		t.Skipf("no kernel header to check against (the spot checks still ran): %v", err)
	}
	defer f.Close()
	def := regexp.MustCompile(`^#define\s+((?:KEY|BTN)_\w+)\s+(\w+)`)
	values := map[string]uint32{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := def.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if v, err := strconv.ParseUint(m[2], 0, 32); err == nil {
			values[m[1]] = uint32(v)
		} else if v, ok := values[m[2]]; ok { // #define KEY_A KEY_B
			values[m[1]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for code, name := range evdevNames {
		want, ok := values[name]
		if !ok {
			t.Errorf("%s: %s is not in %s", code, name, header)
			continue
		}
		if got, ok := keyCodes[code]; !ok || got != want {
			t.Errorf("%s = %d, %v; %s is %d", code, got, ok, name, want)
		}
	}
	for i, name := range []string{"BTN_LEFT", "BTN_MIDDLE", "BTN_RIGHT", "BTN_SIDE", "BTN_EXTRA"} {
		if buttonCodes[i] != values[name] {
			t.Errorf("button %d = %#x; %s is %#x", i, buttonCodes[i], name, values[name])
		}
	}
}
