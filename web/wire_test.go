package web

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/wire"
)

// The page speaks the same protocol as the Go side: every message type it sends or switches
// on, and every error code it acts on, is one internal/wire names (a renamed constant there
// would otherwise break the page silently).
func TestPageUsesTheWireNames(t *testing.T) {
	b, err := fs.ReadFile(Files, "player.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	check := func(what string, known []string, re *regexp.Regexp, text string) int {
		n := 0
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			n++
			if !slices.Contains(known, m[1]) {
				t.Errorf("player.js uses %s %q, which internal/wire does not name", what, m[1])
			}
		}
		return n
	}
	// Messages it sends: { type: 'x', … } (RTCSessionDescription literals use the same words).
	if n := check("message type", wire.Types(), regexp.MustCompile(`\{\s*type:\s*'(\w+)'`), src); n < 6 {
		t.Fatalf("found only %d message types sent: has the page changed shape?", n)
	}
	// Messages it handles: the cases of #onMessage's switch.
	start := strings.Index(src, "#onMessage(data) {")
	end := strings.Index(src[start:], "default:")
	if start < 0 || end < 0 {
		t.Fatal("no #onMessage switch in player.js")
	}
	if n := check("message type", wire.Types(), regexp.MustCompile(`case '(\w+)':`), src[start:start+end]); n < 5 {
		t.Fatalf("found only %d handled message types", n)
	}
	// Codes it acts on: HUB_FATAL, HUB_REASONS' keys, comparisons.
	fatal := regexp.MustCompile(`(?s)HUB_FATAL = new Set\(\[(.*?)\]\)`).FindStringSubmatch(src)
	reasons := regexp.MustCompile(`(?s)HUB_REASONS = \{(.*?)\};`).FindStringSubmatch(src)
	if fatal == nil || reasons == nil {
		t.Fatal("no HUB_FATAL or HUB_REASONS in player.js")
	}
	check("error code", wire.Codes(), regexp.MustCompile(`'(\w+)'`), fatal[1])
	check("error code", wire.Codes(), regexp.MustCompile(`(?m)^\s*(\w+):`), reasons[1])
	check("error code", wire.Codes(), regexp.MustCompile(`code [!=]== '(\w+)'`), src)
	// The events channel: its label, and the report type it reads.
	label := regexp.MustCompile(`const EVENTS_CHANNEL = '(\w+)'`).FindStringSubmatch(src)
	if label == nil || label[1] != wire.EventsChannel {
		t.Errorf("player.js's EVENTS_CHANNEL is %v, want %q", label, wire.EventsChannel)
	}
	if n := check("message type", wire.Types(), regexp.MustCompile(`m\?\.type !== '(\w+)'`), src); n != 1 {
		t.Errorf("found %d checks of an events message's type, want 1", n)
	}
}
