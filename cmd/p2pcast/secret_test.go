package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSecretFrom(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good", "p2pk1_secret\n")
	const env = "P2PCAST_TEST_SECRET"
	for _, c := range []struct {
		name, flag, file, env, want string
		usage                       bool
	}{
		{name: "none"},
		{name: "flag", flag: "abc", want: "abc"},
		{name: "file", file: good, want: "p2pk1_secret"},
		{name: "env", env: " xyz\n", want: "xyz"},
		{name: "two sources", flag: "abc", file: good, usage: true},
		{name: "flag and env", flag: "abc", env: "xyz", usage: true},
		{name: "empty file", file: file("empty", "\n\n"), usage: true},
		{name: "two lines", file: file("two", "a\nb\n"), usage: true},
		{name: "space inside", env: "a b", usage: true},
		{name: "missing file", file: filepath.Join(dir, "nope"), usage: true},
		{name: "huge file", file: file("huge", string(make([]byte, 65<<10))), usage: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(env, c.env)
			got, err := secretFrom("secret", "secret", c.flag, c.file, env)
			if c.usage {
				if !errors.Is(err, errUsage) {
					t.Fatalf("got %q, %v; want a usage error", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
