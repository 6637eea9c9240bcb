package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad configuration file stops the command with exit code 2 and names the key and line;
// config print shows what the device would run with, its key redacted.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("http = \"127.0.0.1:0\"\n[record]\ndirr = \"/tmp/x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"device", "--config", bad}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut.String())
	}
	if !strings.Contains(errOut.String(), `bad.toml:3: unknown key "record-dirr"`) {
		t.Errorf("stderr does not name the key and line:\n%s", errOut.String())
	}

	good := filepath.Join(dir, "device.toml")
	if err := os.WriteFile(good, []byte("fps = 15\nkey = \"p2pk_do_not_print\"\n[record]\ndir = \""+dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	t.Setenv("P2PCAST_BITRATE", "1M")
	if code := run([]string{"config", "print", "device", "--config", good, "--fps", "20"}, &out, &errOut); code != exitOK {
		t.Fatalf("config print: exit %d; stderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{`fps = "20"`, `record-dir = "` + dir + `"`, `key = "(redacted)"`, `bitrate = "1M"`} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("config print lacks %s:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "do_not_print") {
		t.Errorf("config print shows the key:\n%s", out.String())
	}
}
