package input

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"
)

// Message types, the "type" field of every message on the channel (docs/input.md).
const (
	// Viewer → device.
	TypeMove      = "move"
	TypeButton    = "button"
	TypeWheel     = "wheel"
	TypeKey       = "key"
	TypeText      = "text"
	TypeRelease   = "release"
	TypeClipboard = "clipboard" // both ways
	TypeRequest   = "request"   // both ways: viewer asks; device tells the controller who asked
	TypeHandover  = "handover"
	TypeYield     = "yield"
	// Device → viewer.
	TypeState   = "state"
	TypeRefused = "refused"
	TypeError   = "error"
)

// wireIn is every field a viewer message may carry (unknown ones are ignored). Pointers tell a
// missing field from a zero one; a field of the wrong JSON type makes the message malformed.
type wireIn struct {
	Type   string   `json:"type"`
	X      *float64 `json:"x,omitempty"`
	Y      *float64 `json:"y,omitempty"`
	Button *int     `json:"button,omitempty"`
	Down   *bool    `json:"down,omitempty"`
	V120X  *int64   `json:"v120x,omitempty"`
	V120Y  *int64   `json:"v120y,omitempty"`
	Code   *string  `json:"code,omitempty"`
	Text   *string  `json:"text,omitempty"`
	To     *string  `json:"to,omitempty"`
}

// message is a viewer message that passed every check: values in range, keys and buttons
// mapped to evdev.
type message struct {
	typ    string
	x, y   float64 // move: 0..1
	button int     // button: the browser's number
	evdev  uint32  // button, key: the evdev code
	down   bool    // button, key
	v120x  int32   // wheel
	v120y  int32
	code   string // key: KeyboardEvent.code
	text   string // text, clipboard
	to     string // handover
}

// parseMessage reads one viewer message. Its errors wrap ErrTooLarge, ErrMalformed,
// ErrUnknownType, ErrRange or ErrUnknownKey and say what was wrong, for the error reply.
func parseMessage(b []byte) (message, error) {
	if len(b) > MaxMessage {
		return message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxMessage)
	}
	return decodeMessage(b)
}

// decodeMessage is parseMessage without the size limit.
func decodeMessage(b []byte) (message, error) {
	var w wireIn
	if err := json.Unmarshal(b, &w); err != nil {
		return message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	m := message{typ: w.Type}
	switch w.Type {
	case TypeMove:
		if w.X == nil || w.Y == nil {
			return message{}, fmt.Errorf("%w: move needs x and y", ErrMalformed)
		}
		if !finite(*w.X) || !finite(*w.Y) {
			return message{}, fmt.Errorf("%w: x and y must be finite", ErrRange)
		}
		m.x, m.y = clamp01(*w.X), clamp01(*w.Y)
	case TypeButton:
		if w.Button == nil || w.Down == nil {
			return message{}, fmt.Errorf("%w: button needs button and down", ErrMalformed)
		}
		if *w.Button < 0 || *w.Button >= len(buttonCodes) {
			return message{}, fmt.Errorf("%w: button %d, want 0-%d", ErrRange, *w.Button, len(buttonCodes)-1)
		}
		m.button, m.evdev, m.down = *w.Button, buttonCodes[*w.Button], *w.Down
	case TypeWheel:
		for _, v := range []*int64{w.V120X, w.V120Y} {
			if v != nil && (*v < -MaxWheel || *v > MaxWheel) {
				return message{}, fmt.Errorf("%w: wheel %d, at most ±%d", ErrRange, *v, MaxWheel)
			}
		}
		if w.V120X != nil {
			m.v120x = int32(*w.V120X)
		}
		if w.V120Y != nil {
			m.v120y = int32(*w.V120Y)
		}
	case TypeKey:
		if w.Code == nil || w.Down == nil {
			return message{}, fmt.Errorf("%w: key needs code and down", ErrMalformed)
		}
		k, ok := keyCode(*w.Code)
		if !ok {
			return message{}, fmt.Errorf("%w %.64q", ErrUnknownKey, *w.Code)
		}
		m.code, m.evdev, m.down = *w.Code, k, *w.Down
	case TypeText:
		if w.Text == nil {
			return message{}, fmt.Errorf("%w: text needs text", ErrMalformed)
		}
		if n := utf8.RuneCountInString(*w.Text); n > MaxText {
			return message{}, fmt.Errorf("%w: text of %d characters, at most %d", ErrRange, n, MaxText)
		}
		m.text = *w.Text
	case TypeClipboard:
		if w.Text == nil {
			return message{}, fmt.Errorf("%w: clipboard needs text", ErrMalformed)
		}
		if len(*w.Text) > MaxClipboard {
			return message{}, fmt.Errorf("%w: clipboard of %d bytes, at most %d", ErrRange, len(*w.Text), MaxClipboard)
		}
		m.text = *w.Text
	case TypeHandover:
		if w.To == nil || *w.To == "" {
			return message{}, fmt.Errorf("%w: handover needs to", ErrMalformed)
		}
		m.to = *w.To
	case TypeRelease, TypeRequest, TypeYield:
	case "":
		return message{}, fmt.Errorf("%w: no type", ErrMalformed)
	default:
		return message{}, fmt.Errorf("%w %.32q", ErrUnknownType, w.Type)
	}
	return m, nil
}

// marshal writes m as a viewer would send it: what tests and the fuzzer's round trip use.
func (m message) marshal() []byte {
	w := wireIn{Type: m.typ}
	switch m.typ {
	case TypeMove:
		w.X, w.Y = &m.x, &m.y
	case TypeButton:
		w.Button, w.Down = &m.button, &m.down
	case TypeWheel:
		x, y := int64(m.v120x), int64(m.v120y)
		w.V120X, w.V120Y = &x, &y
	case TypeKey:
		w.Code, w.Down = &m.code, &m.down
	case TypeText, TypeClipboard:
		w.Text = &m.text
	case TypeHandover:
		w.To = &m.to
	}
	return encode(w)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func clamp01(f float64) float64 { return min(max(f, 0), 1) }

// Device → viewer messages.

// stateMsg tells every viewer on the channel who is in control, who is there and who waits.
type stateMsg struct {
	Type       string       `json:"type"`
	V          int          `json:"v"`
	You        string       `json:"you"`
	Controller string       `json:"controller"` // "" when nobody is in control
	Viewers    []viewerInfo `json:"viewers"`
	Requests   []string     `json:"requests"`
	// IdleMs is how long the controller has sent no input (0 without one); a request takes
	// control at once when it reaches IdleTakeoverMs (absent: never).
	IdleMs         int64 `json:"idle_ms"`
	IdleTakeoverMs int64 `json:"idle_takeover_ms,omitempty"`
}

type viewerInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Since int64  `json:"since"` // when it opened the channel, Unix milliseconds
}

type requestMsg struct {
	Type string `json:"type"`
	From string `json:"from"`
}

type reasonMsg struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

type errorMsg struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

type clipboardMsg struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// encode marshals a message: plain structs of strings, numbers and bools, so it cannot fail.
// HTML is not escaped: the text goes to a page's script, not into its markup.
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
