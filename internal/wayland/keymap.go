package wayland

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// defaultKeymap is the evdev/pc105/us keymap, compiled once with
// `xkbcli compile-keymap --rules evdev --model pc105 --layout us` (libxkbcommon-tools 1.5):
// what keys mean when the seat has no keyboard to take the layout from (headless sway).
//
//go:embed keymap_us.xkb
var defaultKeymap string

// evdevOffset is the distance between an evdev key code and its XKB keycode.
const evdevOffset = 8

// XKB's real modifiers have fixed indices in every keymap libxkbcommon compiles (Shift=0,
// Lock=1, Control=2, Mod1..Mod5=3..7), and the masks a virtual keyboard's modifiers request
// carries are masks of those. What differs between keymaps is which key sets which real
// modifier: that is what modKeys reads from the keymap text.
const (
	modShift = 1 << iota
	modLock
	modControl
	mod1
	mod2
	mod3
	mod4
	mod5
)

// modKey is what a modifier key does while held (mask in depressed) or on each press (mask
// toggled in locked, for Caps Lock and Num Lock).
type modKey struct {
	mask uint32
	lock bool
}

// modRole is a modifier keysym's job, independent of which real modifier a keymap gives it.
type modRole int

const (
	roleNone modRole = iota
	roleShift
	roleCapsLock
	roleControl
	roleAlt
	roleNumLock
	roleSuper
	roleLevel3
	roleLevel5
)

var roleOfKeysym = map[string]modRole{
	"Shift_L": roleShift, "Shift_R": roleShift,
	"Caps_Lock": roleCapsLock, "Shift_Lock": roleCapsLock,
	"Control_L": roleControl, "Control_R": roleControl,
	"Alt_L": roleAlt, "Alt_R": roleAlt, "Meta_L": roleAlt, "Meta_R": roleAlt,
	"Num_Lock": roleNumLock,
	"Super_L":  roleSuper, "Super_R": roleSuper, "Hyper_L": roleSuper, "Hyper_R": roleSuper,
	"ISO_Level3_Shift": roleLevel3, "Mode_switch": roleLevel3,
	"ISO_Level5_Shift": roleLevel5,
}

// defaultRoleMask is the usual real modifier of each role, for keymaps whose modifier_map
// says nothing about it.
var defaultRoleMask = map[modRole]uint32{
	roleShift: modShift, roleCapsLock: modLock, roleControl: modControl, roleAlt: mod1,
	roleNumLock: mod2, roleLevel5: mod3, roleSuper: mod4, roleLevel3: mod5,
}

var realModMask = map[string]uint32{
	"shift": modShift, "lock": modLock, "control": modControl,
	"mod1": mod1, "mod2": mod2, "mod3": mod3, "mod4": mod4, "mod5": mod5,
}

var (
	reKeycode  = regexp.MustCompile(`<([^<>\s]+)>\s*=\s*(\d+)\s*;`)
	reAlias    = regexp.MustCompile(`alias\s*<([^<>\s]+)>\s*=\s*<([^<>\s]+)>\s*;`)
	reKey      = regexp.MustCompile(`key\s*<([^<>\s]+)>\s*\{([^{}]*)\}`)
	reActions  = regexp.MustCompile(`actions\s*\[[^\]]*\]\s*=\s*\[[^\]]*\]`)
	reSymbols  = regexp.MustCompile(`symbols\s*\[[^\]]*\]\s*=\s*\[([^\]]*)\]`)
	reFirstSet = regexp.MustCompile(`\[([^\]]*)\]`)
	reModMap   = regexp.MustCompile(`modifier_map\s+(\w+)\s*\{([^}]*)\}`)
	reSection  = regexp.MustCompile(`xkb_(keycodes|symbols)\s*("[^"]*")?\s*\{`)
)

// errKeymap is a keymap text this package cannot read the modifier keys of.
var errKeymap = errors.New("wayland: keymap not understood")

// keymapInfo is what the keyboard code needs from a keymap: which evdev codes are modifier
// keys and what they do, and how many keys it maps (to reject a keymap made for typing).
type keymapInfo struct {
	mods  map[uint32]modKey
	keys  int
	shift bool // it has a Shift key
}

// parseKeymap reads the modifier keys of an XKB keymap text: its keycodes, the first keysym
// of each key (level 1 of group 1) and its modifier_map. It is minimal on purpose: the
// compositor compiles the real thing; this only has to know which evdev codes set which real
// modifiers, so that the virtual keyboard can report them.
func parseKeymap(text string) (keymapInfo, error) {
	info := keymapInfo{mods: map[uint32]modKey{}}
	keycodesText, symbolsText := section(text, "keycodes"), section(text, "symbols")
	if keycodesText == "" || symbolsText == "" {
		return info, fmt.Errorf("%w: no xkb_keycodes or xkb_symbols section", errKeymap)
	}
	codes := map[string]uint32{}
	for _, m := range reKeycode.FindAllStringSubmatch(keycodesText, -1) {
		n, err := strconv.ParseUint(m[2], 10, 32)
		if err != nil || n < evdevOffset {
			continue
		}
		codes[m[1]] = uint32(n)
	}
	for _, m := range reAlias.FindAllStringSubmatch(keycodesText, -1) {
		if code, ok := codes[m[2]]; ok {
			codes[m[1]] = code
		}
	}
	if len(codes) == 0 {
		return info, fmt.Errorf("%w: no keycodes", errKeymap)
	}

	// Level-1 keysym of each key.
	first := map[string]string{}
	for _, m := range reKey.FindAllStringSubmatch(symbolsText, -1) {
		body := reActions.ReplaceAllString(m[2], "")
		set := reSymbols.FindStringSubmatch(body)
		if set == nil {
			set = reFirstSet.FindStringSubmatch(body)
		}
		if set == nil {
			continue
		}
		sym := strings.TrimSpace(strings.SplitN(set[1], ",", 2)[0])
		if sym != "" {
			first[m[1]] = sym
			info.keys++
		}
	}

	// modifier_map: per key name, and per role (a key or keysym listed there tells which
	// real modifier its role has in this keymap).
	keyMask := map[string]uint32{}
	roleMask := map[modRole]uint32{}
	for _, m := range reModMap.FindAllStringSubmatch(symbolsText, -1) {
		mask, ok := realModMask[strings.ToLower(m[1])]
		if !ok {
			continue
		}
		for _, entry := range strings.Split(m[2], ",") {
			entry = strings.TrimSpace(entry)
			var role modRole
			if strings.HasPrefix(entry, "<") && strings.HasSuffix(entry, ">") {
				name := entry[1 : len(entry)-1]
				keyMask[name] |= mask
				role = roleOfKeysym[first[name]]
			} else {
				role = roleOfKeysym[entry]
			}
			if role != roleNone && roleMask[role] == 0 {
				roleMask[role] = mask
			}
		}
	}

	for name, sym := range first {
		role := roleOfKeysym[sym]
		code, ok := codes[name]
		if role == roleNone || !ok {
			continue
		}
		mask := keyMask[name]
		if mask == 0 {
			mask = roleMask[role]
		}
		if mask == 0 {
			mask = defaultRoleMask[role]
		}
		info.mods[code-evdevOffset] = modKey{mask: mask, lock: role == roleCapsLock || role == roleNumLock}
		if role == roleShift {
			info.shift = true
		}
	}
	return info, nil
}

// section returns the body of the first xkb_<name> section of text (brace-matched).
func section(text, name string) string {
	for _, loc := range reSection.FindAllStringSubmatchIndex(text, -1) {
		if text[loc[2]:loc[3]] != name {
			continue
		}
		depth := 1
		for i := loc[1]; i < len(text); i++ {
			switch text[i] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					return text[loc[1]:i]
				}
			}
		}
		return ""
	}
	return ""
}

// usableSeatKeymap says whether a keymap the seat reported is a whole layout. The seat's
// keymap is that of the keyboard used last, which may be another client's virtual keyboard
// made for typing a few characters (ours, wtype's): such a keymap would make evdev codes
// mean nothing, so it is not adopted.
func usableSeatKeymap(info keymapInfo) bool {
	return info.keys >= 48 && info.shift
}

// ErrUntypable is text with a control character that has no key (only \n, \r, \t, \b,
// ESC and DEL have one).
var ErrUntypable = errors.New("wayland: character cannot be typed")

// keysymName names the keysym that produces r, for a keymap's symbols section.
func keysymName(r rune) (string, error) {
	switch r {
	case '\n', '\r':
		return "Return", nil
	case '\t':
		return "Tab", nil
	case '\b':
		return "BackSpace", nil
	case 0x1b:
		return "Escape", nil
	case 0x7f:
		return "Delete", nil
	}
	if r < 0x20 || (r >= 0x80 && r < 0xa0) || r > utf8.MaxRune {
		return "", fmt.Errorf("%w: %U", ErrUntypable, r)
	}
	// "Uxxxx" is libxkbcommon's name for Unicode keysyms: below U+0100 it is the Latin-1
	// keysym (value = code point), above it 0x01000000 + code point.
	return fmt.Sprintf("U%04X", r), nil
}

// typingKeymap is a keymap with one key per keysym in syms, keycodes from 9 (evdev 1) up,
// as wtype makes them: self-contained (no includes), one level, no modifiers.
func typingKeymap(syms []string) string {
	var b strings.Builder
	b.WriteString("xkb_keymap {\nxkb_keycodes \"p2pcast\" {\n\tminimum = 8;\n")
	fmt.Fprintf(&b, "\tmaximum = %d;\n", evdevOffset+1+len(syms))
	for i := range syms {
		fmt.Fprintf(&b, "\t<K%d> = %d;\n", i+1, evdevOffset+1+i)
	}
	b.WriteString("};\nxkb_types \"p2pcast\" {\n\ttype \"ONE_LEVEL\" {\n\t\tmodifiers = none;\n" +
		"\t\tlevel_name[Level1] = \"Any\";\n\t};\n};\n" +
		"xkb_compatibility \"p2pcast\" {\n};\nxkb_symbols \"p2pcast\" {\n")
	for i, s := range syms {
		fmt.Fprintf(&b, "\tkey <K%d> { [ %s ] };\n", i+1, s)
	}
	b.WriteString("};\n};\n")
	return b.String()
}
