// Package config reads p2pcast's configuration file and applies it, with the environment, to
// a command's flags: every flag has a key of the same name, so the file, the environment and
// the command line say the same things in three ways, and one Validate checks the result.
//
// Precedence, lowest first: the flag's default, the file (--config FILE), the environment
// (P2PCAST_ and the key in upper case, dashes as underscores), the command line.
//
// The file is TOML, the part of it a configuration needs (docs/config.md): comments, bare or
// quoted keys, [section] tables (a key in [record] named dir is the flag record-dir), basic
// and literal strings, integers, floats, booleans, and one-line arrays of those (given to the
// flag joined with commas). Anything else is an error naming its line. It is parsed here, not
// with a TOML library: the device build has no room for one, and the subset is small.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax is what a malformed file's error wraps; ErrKey an unknown or repeated key, or a
// value its flag refuses.
var (
	ErrSyntax = errors.New("config: syntax error")
	ErrKey    = errors.New("config: bad setting")
)

// Limits on what a file may hold (it is read before anything is validated).
const (
	MaxFileSize = 1 << 20
	maxLineLen  = 64 << 10
)

// Setting is one key = value of a file, with where it was.
type Setting struct {
	Key   string // the flag's name: section and key joined with dashes
	Value string // as the flag takes it: strings unquoted, arrays joined with commas
	Line  int
}

// Parse reads a file's settings in order. name is the file's name for errors.
func Parse(name string, data []byte) ([]Setting, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrSyntax, name, len(data), MaxFileSize)
	}
	var out []Setting
	seen := map[string]int{}
	section := ""
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s:%d: %s", ErrSyntax, name, n, fmt.Sprintf(format, args...))
		}
		if len(raw) > maxLineLen {
			return nil, fail("line longer than %d bytes", maxLineLen)
		}
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			if strings.HasPrefix(line, "[[") {
				return nil, fail("arrays of tables ([[…]]) are not used by p2pcast")
			}
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fail("a table header without its ]")
			}
			if rest := strings.TrimSpace(line[end+1:]); rest != "" && rest[0] != '#' {
				return nil, fail("unexpected %q after the table header", rest)
			}
			parts, err := keyPath(line[1:end])
			if err != nil {
				return nil, fail("%v", err)
			}
			section = strings.Join(parts, "-")
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			return nil, fail("want key = value")
		}
		parts, err := keyPath(line[:eq])
		if err != nil {
			return nil, fail("%v", err)
		}
		key := strings.Join(parts, "-")
		if section != "" {
			key = section + "-" + key
		}
		value, rest, err := parseValue(strings.TrimSpace(line[eq+1:]))
		if err != nil {
			return nil, fail("%s: %v", key, err)
		}
		if rest = strings.TrimSpace(rest); rest != "" && rest[0] != '#' {
			return nil, fail("%s: unexpected %q after the value", key, rest)
		}
		if first, ok := seen[key]; ok {
			return nil, fmt.Errorf("%w: %s:%d: %s is already set on line %d", ErrKey, name, n, key, first)
		}
		seen[key] = n
		out = append(out, Setting{Key: key, Value: value, Line: n})
	}
	return out, nil
}

// keyEnd is the index of the = that ends a line's key (quoted keys may hold one), or -1.
func keyEnd(line string) int {
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// keyPath splits a dotted key (each part bare or quoted) into its parts.
func keyPath(s string) ([]string, error) {
	var parts []string
	s = strings.TrimSpace(s)
	for {
		var part string
		switch {
		case s == "":
			return nil, errors.New("an empty key")
		case s[0] == '"' || s[0] == '\'':
			v, rest, err := parseString(s)
			if err != nil {
				return nil, err
			}
			part, s = v, strings.TrimSpace(rest)
		default:
			end := 0
			for end < len(s) && bareKeyChar(s[end]) {
				end++
			}
			if end == 0 {
				return nil, fmt.Errorf("%q is not a key (letters, digits, - and _, or quoted)", s)
			}
			part, s = s[:end], strings.TrimSpace(s[end:])
		}
		if part == "" {
			return nil, errors.New("an empty key")
		}
		parts = append(parts, part)
		if s == "" {
			return parts, nil
		}
		if s[0] != '.' {
			return nil, fmt.Errorf("unexpected %q in a key", s)
		}
		s = strings.TrimSpace(s[1:])
	}
}

func bareKeyChar(c byte) bool {
	return c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// parseValue reads one value from the start of s and returns it as a flag takes it, with
// what follows it.
func parseValue(s string) (string, string, error) {
	switch {
	case s == "":
		return "", "", errors.New("no value")
	case s[0] == '"' || s[0] == '\'':
		if strings.HasPrefix(s, `"""`) || strings.HasPrefix(s, "'''") {
			return "", "", errors.New("multi-line strings are not used by p2pcast")
		}
		return parseString(s)
	case s[0] == '[':
		var items []string
		s = strings.TrimSpace(s[1:])
		for {
			if s == "" {
				return "", "", errors.New("an array without its ] (arrays are on one line)")
			}
			if s[0] == ']' {
				return strings.Join(items, ","), s[1:], nil
			}
			if s[0] == '[' {
				return "", "", errors.New("arrays of arrays are not used by p2pcast")
			}
			v, rest, err := parseValue(s)
			if err != nil {
				return "", "", err
			}
			if strings.Contains(v, ",") {
				return "", "", fmt.Errorf("an array item with a comma (%q): flags take lists comma-separated", v)
			}
			items = append(items, v)
			s = strings.TrimSpace(rest)
			if s != "" && s[0] == ',' {
				s = strings.TrimSpace(s[1:])
			} else if s == "" || s[0] != ']' {
				return "", "", errors.New("want , or ] in an array")
			}
		}
	case s[0] == '{':
		return "", "", errors.New("inline tables are not used by p2pcast: use a [section]")
	}
	end := 0
	for end < len(s) && s[end] != ',' && s[end] != ']' && s[end] != '#' && s[end] != ' ' && s[end] != '\t' {
		end++
	}
	word, rest := s[:end], s[end:]
	switch word {
	case "true", "false":
		return word, rest, nil
	}
	digits := strings.ReplaceAll(word, "_", "")
	if _, err := strconv.ParseInt(digits, 0, 64); err == nil {
		return digits, rest, nil
	}
	if _, err := strconv.ParseFloat(digits, 64); err == nil && !strings.ContainsAny(digits, "xXpP") {
		return digits, rest, nil
	}
	return "", "", fmt.Errorf("%q is not a value (strings are quoted: %q)", word, word)
}

// parseString reads a basic ("…", with escapes) or literal ('…') string from the start of s.
func parseString(s string) (string, string, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), s[i+1:], nil
		case c < 0x20 && c != '\t', c == 0x7f:
			return "", "", errors.New("a control character in a string")
		case c == '\\' && q == '"':
			if i+1 >= len(s) {
				return "", "", errors.New("a string ends in a backslash")
			}
			i++
			switch e := s[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'f':
				b.WriteByte('\f')
			case 'r':
				b.WriteByte('\r')
			case '"', '\\':
				b.WriteByte(e)
			case 'u', 'U':
				n := 4
				if e == 'U' {
					n = 8
				}
				if i+n >= len(s) {
					return "", "", errors.New("a short \\u escape")
				}
				r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
				if err != nil || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff) {
					return "", "", fmt.Errorf("a bad escape \\%c%s", e, s[i+1:i+1+n])
				}
				b.WriteRune(rune(r))
				i += n
			default:
				return "", "", fmt.Errorf("an unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("a string without its closing quote")
}
