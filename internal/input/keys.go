package input

// keyCodes maps a browser's KeyboardEvent.code (W3C "UI Events KeyboardEvent code Values":
// the physical key, whatever the viewer's layout) to the Linux evdev code a USB keyboard's key
// in that place produces (linux/input-event-codes.h, as the kernel's hid-input maps each USB
// usage; Chromium's dom_code_data.inc records the same pairs). The desktop then reads the code
// through its own keymap, as it would a keyboard plugged into it. Codes no Linux keyboard
// produces (Fn, NumpadClear, the numpad memory keys, ...) are left out: they are refused.
var keyCodes = map[string]uint32{
	// Writing system keys.
	"KeyA": 30, "KeyB": 48, "KeyC": 46, "KeyD": 32, "KeyE": 18, "KeyF": 33, "KeyG": 34,
	"KeyH": 35, "KeyI": 23, "KeyJ": 36, "KeyK": 37, "KeyL": 38, "KeyM": 50, "KeyN": 49,
	"KeyO": 24, "KeyP": 25, "KeyQ": 16, "KeyR": 19, "KeyS": 31, "KeyT": 20, "KeyU": 22,
	"KeyV": 47, "KeyW": 17, "KeyX": 45, "KeyY": 21, "KeyZ": 44,
	"Digit1": 2, "Digit2": 3, "Digit3": 4, "Digit4": 5, "Digit5": 6,
	"Digit6": 7, "Digit7": 8, "Digit8": 9, "Digit9": 10, "Digit0": 11,
	"Minus":         12,  // KEY_MINUS
	"Equal":         13,  // KEY_EQUAL
	"BracketLeft":   26,  // KEY_LEFTBRACE
	"BracketRight":  27,  // KEY_RIGHTBRACE
	"Backslash":     43,  // KEY_BACKSLASH (and the ISO "#~" key, which reports the same code)
	"Semicolon":     39,  // KEY_SEMICOLON
	"Quote":         40,  // KEY_APOSTROPHE
	"Backquote":     41,  // KEY_GRAVE
	"Comma":         51,  // KEY_COMMA
	"Period":        52,  // KEY_DOT
	"Slash":         53,  // KEY_SLASH
	"IntlBackslash": 86,  // KEY_102ND: the ISO key beside the left Shift
	"IntlRo":        89,  // KEY_RO
	"IntlYen":       124, // KEY_YEN

	// Functional keys.
	"Enter":       28,  // KEY_ENTER
	"Escape":      1,   // KEY_ESC
	"Backspace":   14,  // KEY_BACKSPACE
	"Tab":         15,  // KEY_TAB
	"Space":       57,  // KEY_SPACE
	"CapsLock":    58,  // KEY_CAPSLOCK
	"ContextMenu": 127, // KEY_COMPOSE: the kernel's name for the Menu/Application key
	"ControlLeft": 29, "ShiftLeft": 42, "AltLeft": 56, "MetaLeft": 125,
	"ControlRight": 97, "ShiftRight": 54, "AltRight": 100, "MetaRight": 126,
	"OSLeft": 125, "OSRight": 126, // Firefox before 118 named the Meta keys so
	"Convert":    92,  // KEY_HENKAN
	"NonConvert": 94,  // KEY_MUHENKAN
	"KanaMode":   93,  // KEY_KATAKANAHIRAGANA
	"Lang1":      122, // KEY_HANGEUL (Korean Han/Yeong, Apple's Kana)
	"Lang2":      123, // KEY_HANJA (Korean Hanja, Apple's Eisu)
	"Lang3":      90,  // KEY_KATAKANA
	"Lang4":      91,  // KEY_HIRAGANA
	"Lang5":      85,  // KEY_ZENKAKUHANKAKU

	// Control pad and arrows.
	"Insert": 110, "Delete": 111, "Home": 102, "End": 107, "PageUp": 104, "PageDown": 109,
	"ArrowUp": 103, "ArrowLeft": 105, "ArrowRight": 106, "ArrowDown": 108,
	"Help": 138, // KEY_HELP

	// Numpad.
	"NumLock": 69, "Numpad0": 82, "Numpad1": 79, "Numpad2": 80, "Numpad3": 81, "Numpad4": 75,
	"Numpad5": 76, "Numpad6": 77, "Numpad7": 71, "Numpad8": 72, "Numpad9": 73,
	"NumpadAdd":        78,  // KEY_KPPLUS
	"NumpadSubtract":   74,  // KEY_KPMINUS
	"NumpadMultiply":   55,  // KEY_KPASTERISK
	"NumpadDivide":     98,  // KEY_KPSLASH
	"NumpadDecimal":    83,  // KEY_KPDOT
	"NumpadEnter":      96,  // KEY_KPENTER
	"NumpadEqual":      117, // KEY_KPEQUAL
	"NumpadComma":      121, // KEY_KPCOMMA
	"NumpadParenLeft":  179, // KEY_KPLEFTPAREN
	"NumpadParenRight": 180, // KEY_KPRIGHTPAREN

	// Function section.
	"F1": 59, "F2": 60, "F3": 61, "F4": 62, "F5": 63, "F6": 64, "F7": 65, "F8": 66,
	"F9": 67, "F10": 68, "F11": 87, "F12": 88,
	"F13": 183, "F14": 184, "F15": 185, "F16": 186, "F17": 187, "F18": 188,
	"F19": 189, "F20": 190, "F21": 191, "F22": 192, "F23": 193, "F24": 194,
	"PrintScreen": 99,  // KEY_SYSRQ
	"ScrollLock":  70,  // KEY_SCROLLLOCK
	"Pause":       119, // KEY_PAUSE

	// Editing keys of some keyboards (USB 0x74-0x7e), mapped as the kernel maps them.
	"Open":   134, // KEY_OPEN
	"Select": 132, // KEY_FRONT
	"Again":  129, // KEY_AGAIN
	"Undo":   131, // KEY_UNDO
	"Copy":   133, // KEY_COPY
	"Paste":  135, // KEY_PASTE
	"Cut":    137, // KEY_CUT
	"Find":   136, // KEY_FIND

	// Media, volume, browser and application keys.
	"AudioVolumeMute": 113, "AudioVolumeDown": 114, "AudioVolumeUp": 115,
	"VolumeMute": 113, "VolumeDown": 114, "VolumeUp": 115, // older Firefox names
	"MediaPlayPause":       164, // KEY_PLAYPAUSE
	"MediaPlay":            207, // KEY_PLAY
	"MediaPause":           201, // KEY_PAUSECD
	"MediaStop":            166, // KEY_STOPCD
	"MediaTrackNext":       163, // KEY_NEXTSONG
	"MediaTrackPrevious":   165, // KEY_PREVIOUSSONG
	"MediaRecord":          167, // KEY_RECORD
	"MediaRewind":          168, // KEY_REWIND
	"MediaFastForward":     208, // KEY_FASTFORWARD
	"MediaSelect":          171, // KEY_CONFIG
	"Eject":                161, // KEY_EJECTCD
	"BrowserBack":          158, // KEY_BACK
	"BrowserForward":       159, // KEY_FORWARD
	"BrowserRefresh":       173, // KEY_REFRESH
	"BrowserStop":          128, // KEY_STOP
	"BrowserSearch":        217, // KEY_SEARCH
	"BrowserHome":          172, // KEY_HOMEPAGE
	"BrowserFavorites":     156, // KEY_BOOKMARKS
	"LaunchMail":           155, // KEY_MAIL
	"LaunchApp1":           157, // KEY_COMPUTER
	"LaunchApp2":           140, // KEY_CALC
	"LaunchControlPanel":   579, // KEY_CONTROLPANEL
	"LaunchScreenSaver":    581, // KEY_SCREENSAVER
	"LaunchAssistant":      583, // KEY_ASSISTANT
	"SelectTask":           580, // KEY_APPSELECT
	"ShowAllWindows":       120, // KEY_SCALE
	"ZoomToggle":           372, // KEY_FULL_SCREEN
	"MailReply":            232, // KEY_REPLY
	"MailForward":          233, // KEY_FORWARDMAIL
	"MailSend":             231, // KEY_SEND
	"KeyboardLayoutSelect": 584, // KEY_KBD_LAYOUT_NEXT
	"BrightnessDown":       224, // KEY_BRIGHTNESSDOWN
	"BrightnessUp":         225, // KEY_BRIGHTNESSUP
	"DisplayToggleIntExt":  227, // KEY_SWITCHVIDEOMODE
	// The system keys go to the desktop like any other: what they do there is its
	// compositor's choice, as for a keyboard plugged into it.
	"Power":  116, // KEY_POWER
	"Sleep":  142, // KEY_SLEEP
	"WakeUp": 143, // KEY_WAKEUP
}

// keyCode is the evdev code of a KeyboardEvent.code.
func keyCode(code string) (uint32, bool) {
	k, ok := keyCodes[code]
	return k, ok
}

// buttonCodes maps MouseEvent.button (0 main, 1 auxiliary, 2 secondary, 3 back, 4 forward) to
// evdev buttons.
var buttonCodes = [...]uint32{
	0: 0x110, // BTN_LEFT
	1: 0x112, // BTN_MIDDLE
	2: 0x111, // BTN_RIGHT
	3: 0x113, // BTN_SIDE: "back"
	4: 0x114, // BTN_EXTRA: "forward"
}
