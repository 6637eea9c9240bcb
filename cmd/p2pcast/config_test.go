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

// add-source is repeatable on the command line and an array in the file (joined with commas,
// each spec holding none); both add up.
func TestConfigFileSources(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.toml")
	conf := "add-source = [\"cam2=rtsp://cam.example/stream\", \"side=testpattern;size=640x360\"]\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "print", "device", "--config", path, "--add-source", "usb=v4l2:/dev/video2;fps=15"}, &out, &errOut); code != exitOK {
		t.Fatalf("config print: exit %d; stderr:\n%s", code, errOut.String())
	}
	want := `add-source = "cam2=rtsp://cam.example/stream,side=testpattern;size=640x360,usb=v4l2:/dev/video2;fps=15"`
	if !strings.Contains(out.String(), want+"\n") {
		t.Errorf("config print lacks %s:\n%s", want, out.String())
	}
	if code := run([]string{"device", "--add-source", "Bad=testpattern"}, &out, &errOut); code != exitUsage {
		t.Errorf("a bad source id: exit %d, want %d", code, exitUsage)
	}
}
