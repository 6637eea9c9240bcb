package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// EnvPrefix starts every setting's environment variable: P2PCAST_RECORD_DIR is record-dir.
const EnvPrefix = "P2PCAST_"

// EnvName is the environment variable of flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Load reads and parses the file at path; "" is no file (nil settings).
func Load(path string) ([]Setting, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return Parse(path, b)
}

// Apply sets fs's flags from the file's settings (named file in errors), then from the
// environment (getenv); the command line, parsed after, overrides both. skip names flags
// that neither may set (the --config flag itself); ownEnv names flags whose variable the
// command reads itself (a secret's, which must come from one place only).
func Apply(fs *flag.FlagSet, file string, settings []Setting, getenv func(string) string, skip, ownEnv []string) error {
	skipped := func(name string) bool { return slices.Contains(skip, name) }
	var errs []error
	for _, s := range settings {
		f := fs.Lookup(s.Key)
		if f == nil || skipped(s.Key) {
			errs = append(errs, fmt.Errorf("%w: %s:%d: unknown key %q (the keys are the flags of `p2pcast %s --help`)", ErrKey, file, s.Line, s.Key, fs.Name()))
			continue
		}
		if err := fs.Set(s.Key, s.Value); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s:%d: %s: %v", ErrKey, file, s.Line, s.Key, err))
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if skipped(f.Name) || slices.Contains(ownEnv, f.Name) {
			return
		}
		env := EnvName(f.Name)
		v := getenv(env)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%w: environment %s: %v", ErrKey, env, err))
		}
	})
	return errors.Join(errs...)
}

// FindFlag returns the value of flag name in args (-name V, --name V, -name=V, --name=V) as
// fs would parse them, "" when absent: the configuration file must be read before the
// command line is parsed.
func FindFlag(fs *flag.FlagSet, args []string, name string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return ""
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		n, v, hasValue := strings.Cut(a, "=")
		if n == name {
			if hasValue {
				return v
			}
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		if f := fs.Lookup(n); !hasValue && f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
				i++ // the flag's value
			}
		}
	}
	return ""
}

// secretName matches the flags whose values are secrets: printed as "(redacted)".
var secretName = regexp.MustCompile(`(^|-)(key|secret|password|token)$`)

// Print writes fs's effective values as a TOML file the --config flag reads back: every flag,
// in name order, secrets redacted (and a URL's password in any value). skip names flags left
// out (--config, --print-config).
func Print(w io.Writer, fs *flag.FlagSet, skip ...string) error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "# p2pcast %s: the effective configuration (defaults, file, environment, flags).\n", fs.Name())
outer:
	for _, n := range names {
		for _, s := range skip {
			if s == n {
				continue outer
			}
		}
		f := fs.Lookup(n)
		v := f.Value.String()
		switch {
		case secretName.MatchString(n) && v != "":
			v = "(redacted)"
		default:
			v = redactURL(v)
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() && (v == "true" || v == "false") {
			fmt.Fprintf(&b, "%s = %s\n", n, v)
			continue
		}
		fmt.Fprintf(&b, "%s = %s\n", n, strconv.Quote(v))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// redactURL hides the password of a URL with one (rtsp://user:pass@camera/ …).
func redactURL(v string) string {
	if !strings.Contains(v, "://") || !strings.Contains(v, "@") {
		return v
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}
