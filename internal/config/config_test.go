package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	in := `# p2pcast device
http = "0.0.0.0:8080"   # all addresses
bitrate = 2_000_000
adapt = true
ratio = 0.5
'quoted key' = 'C:\literal'
"esc" = "tab\there \"q\" \u00e9"
allow-origin = ["https://a.example", 'https://b.example',]

[record]
dir = "/var/lib/rec"
max.size = "2GB"
[ "hub" . tls ]
ca = ""
`
	got, err := Parse("dev.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{"http", "0.0.0.0:8080", 2}, {"bitrate", "2000000", 3}, {"adapt", "true", 4}, {"ratio", "0.5", 5},
		{"quoted key", `C:\literal`, 6}, {"esc", "tab\there \"q\" é", 7},
		{"allow-origin", "https://a.example,https://b.example", 8},
		{"record-dir", "/var/lib/rec", 11}, {"record-max-size", "2GB", 12}, {"hub-tls-ca", "", 14},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("setting %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a = 1\nb = \n", "f.toml:2: b: no value"},
		{"a = bare", `f.toml:1: a: "bare" is not a value`},
		{"a = \"open", "f.toml:1: a: a string without its closing quote"},
		{"[rec\na = 1", "f.toml:1: a table header without its ]"},
		{"[[x]]", "f.toml:1: arrays of tables"},
		{"a = 1 2", `f.toml:1: a: unexpected "2" after the value`},
		{"a = [1, [2]]", "f.toml:1: a: arrays of arrays"},
		{"a = {x = 1}", "f.toml:1: a: inline tables"},
		{"just words", "f.toml:1: want key = value"},
		{"a = 1\na = 2", "f.toml:2: a is already set on line 1"},
		{`a = "\q"`, `f.toml:1: a: an unknown escape \q`},
		{"a = \"\x01\"", "f.toml:1: a: a control character"},
		{`a = """x"""`, "f.toml:1: a: multi-line strings"},
		{"a = [\"x,y\"]", "f.toml:1: a: an array item with a comma"},
	} {
		_, err := Parse("f.toml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
		if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrKey) {
			t.Errorf("%q: %v wraps neither ErrSyntax nor ErrKey", tc.in, err)
		}
	}
}

// The file sets, the environment overrides it, the command line overrides both; unknown keys
// and refused values are errors naming the file and line.
func TestApplyPrecedence(t *testing.T) {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	http := fs.String("http", "127.0.0.1:8080", "")
	fps := fs.Int("fps", 30, "")
	seg := fs.Duration("record-segment", time.Minute, "")
	adapt := fs.Bool("adapt", true, "")
	key := fs.String("key", "", "")
	settings, err := Parse("d.toml", []byte("http = \"0.0.0.0:80\"\nfps = 10\nadapt = false\n[record]\nsegment = \"5s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"P2PCAST_FPS": "20", "P2PCAST_KEY": "from-env"}
	if err := Apply(fs, "d.toml", settings, func(k string) string { return env[k] }, nil, []string{"key"}); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--http", "10.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	if *http != "10.0.0.1:8080" || *fps != 20 || *seg != 5*time.Second || *adapt || *key != "" {
		t.Errorf("http %s fps %d segment %s adapt %v key %q", *http, *fps, *seg, *adapt, *key)
	}

	bad, _ := Parse("d.toml", []byte("fps = \"many\"\nnope = 1\n"))
	err = Apply(fs, "d.toml", bad, func(string) string { return "" }, nil, nil)
	for _, want := range []string{`d.toml:1: fps: parse error`, `d.toml:2: unknown key "nope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err := Apply(fs, "", nil, func(k string) string { return map[string]string{"P2PCAST_FPS": "x"}[k] }, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "environment P2PCAST_FPS") {
		t.Errorf("a bad environment value: %v", err)
	}
}

func TestPrintRedactsAndReadsBack(t *testing.T) {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.String("turn-secret", "s3cret", "")
	fs.String("source", "rtsp://admin:hunter2@cam/stream", "")
	fs.Bool("adapt", true, "")
	fs.String("config", "x.toml", "")
	var b bytes.Buffer
	if err := Print(&b, fs, "config"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "s3cret") || strings.Contains(out, "hunter2") || strings.Contains(out, "config =") {
		t.Fatalf("printed:\n%s", out)
	}
	settings, err := Parse("printed", b.Bytes())
	if err != nil || len(settings) != 3 {
		t.Fatalf("the printed file reads back as %+v, %v:\n%s", settings, err, out)
	}
}

func TestFindFlag(t *testing.T) {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.Int("fps", 30, "")
	fs.Bool("adapt", true, "")
	fs.String("config", "", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", "a.toml"}, "a.toml"}, {[]string{"-config=b.toml"}, "b.toml"},
		{[]string{"--fps", "5", "--config=c"}, "c"}, {[]string{"--fps", "5"}, ""}, {[]string{"--", "--config", "x"}, ""},
		{[]string{"--adapt", "--config", "d"}, "d"}, {[]string{"--fps", "--config", "--config", "e"}, "e"},
	} {
		if got := FindFlag(fs, tc.args, "config"); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("a = 1\n[b]\nc = \"d\"\ne = [1, 'x']\n"))
	f.Add([]byte(`"k.x" . y = "\u00e9\U0001F600"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		settings, err := Parse("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrKey) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		for _, s := range settings {
			if s.Key == "" || s.Line < 1 {
				t.Fatalf("bad setting %+v", s)
			}
		}
	})
}
