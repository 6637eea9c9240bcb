//go:build deb

package deb

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxExposure is the worst `systemd-analyze security` exposure a unit may score (0 is the
// best, 10 the worst; systemd calls up to 2 "OK", and a default unit scores 9.6).
const maxExposure = 2.5

// deviceBudget is the board's size budget for the device binary (issue 12: docs/board.md).
const deviceBudget = 10_000_000

// sysroot holds the armhf loader and libc for qemu-arm-static (libc6-armhf-cross).
const sysroot = "/usr/arm-linux-gnueabihf"

func TestPackages(t *testing.T) {
	dir, version := os.Getenv("P2PCAST_DEB_DIR"), os.Getenv("P2PCAST_DEB_VERSION")
	if dir == "" || version == "" {
		t.Skip("P2PCAST_DEB_DIR and P2PCAST_DEB_VERSION are unset: run make test-deb")
	}
	for _, tc := range []struct {
		arch  string
		units []string
	}{{"amd64", []string{"p2pcast-device", "p2pcast-hub"}}, {"armhf", []string{"p2pcast-device"}}} {
		t.Run(tc.arch, func(t *testing.T) {
			deb := filepath.Join(dir, "p2pcast_"+version+"_"+tc.arch+".deb")
			root := scratchRoot(t, filepath.Join(dir, "root-"+tc.arch))
			run(t, "dpkg", "--root="+root, "--force-depends", "--force-script-chrootless", "--force-architecture", "-i", deb)
			if got := run(t, "dpkg", "--root="+root, "-s", "p2pcast"); !strings.Contains(got, "Status: install ok installed") ||
				!strings.Contains(got, "Version: "+version) {
				t.Fatalf("dpkg -s after the install:\n%s", got)
			}
			info := run(t, "dpkg-deb", "-I", deb)
			if !regexp.MustCompile(`Depends: .*libc6`).MatchString(info) || !strings.Contains(info, "Architecture: "+tc.arch) {
				t.Errorf("control:\n%s", info)
			}

			bin := filepath.Join(root, "usr/bin")
			var prefix []string
			if tc.arch == "armhf" {
				qemu, err := exec.LookPath("qemu-arm-static")
				if err != nil {
					t.Fatalf("qemu-arm-static: %v (scripts/install-cross-deps.sh)", err)
				}
				prefix = []string{qemu, "-L", sysroot}
				fi, err := os.Stat(filepath.Join(bin, "p2pcast"))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("armhf device binary: %d bytes (budget %d)", fi.Size(), deviceBudget)
				if fi.Size() > deviceBudget {
					// make bench-footprint holds the budget's measurement (docs/performance.md).
					t.Logf("the armhf p2pcast is %d bytes, over the board's budget of %d", fi.Size(), deviceBudget)
				}
			}
			if got := run(t, append(prefix, filepath.Join(bin, "p2pcast"), "version")...); !strings.HasPrefix(got, "p2pcast "+version) {
				t.Errorf("p2pcast version: %q, want %q", got, "p2pcast "+version)
			}
			// The producer starts (its libraries are there) and says what it is.
			if got := runAny(t, append(prefix, filepath.Join(bin, "p2pcast-capture"), "--help")...); !strings.Contains(got, "--source") {
				t.Errorf("p2pcast-capture --help:\n%s", got)
			}
			for _, u := range tc.units {
				unit := "/lib/systemd/system/" + u + ".service"
				if out := runAny(t, "systemd-analyze", "verify", "--root="+root, unit); strings.TrimSpace(out) != "" {
					t.Errorf("systemd-analyze verify %s:\n%s", u, out)
				}
				out := runAny(t, "systemd-analyze", "security", "--offline=yes", "--root="+root, u+".service")
				m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("systemd-analyze security %s:\n%s", u, out)
				}
				if e, _ := strconv.ParseFloat(m[1], 64); e > maxExposure {
					t.Errorf("%s: exposure %.1f, want at most %.1f:\n%s", u, e, maxExposure, out)
				} else {
					t.Logf("%s: exposure %.1f", u, e)
				}
			}
			// The shipped settings are valid: the installed program reads them back.
			conf := filepath.Join(root, "etc/p2pcast/device.toml")
			if got := run(t, append(prefix, filepath.Join(bin, "p2pcast"), "config", "print", "device", "--config", conf)...); !strings.Contains(got, `data = "/var/lib/p2pcast-device"`) {
				t.Errorf("config print of the shipped device.toml:\n%s", got)
			}
			if tc.arch == "amd64" {
				conf := filepath.Join(root, "etc/p2pcast/hub.toml")
				if got := run(t, filepath.Join(bin, "p2pcast"), "config", "print", "hub", "--config", conf); !strings.Contains(got, `data = "/var/lib/p2pcast-hub"`) {
					t.Errorf("config print of the shipped hub.toml:\n%s", got)
				}
			}
		})
	}
}

// scratchRoot prepares (or reuses) a root dpkg can install into, with the host's systemd
// units (targets and slices) that a unit's verification resolves.
func scratchRoot(t *testing.T, root string) string {
	t.Helper()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	if _, err := os.Stat(status); os.IsNotExist(err) {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/system")); os.IsNotExist(err) {
		run(t, "cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	}
	return root
}

// run runs a command and fails the test if it fails; it returns stdout and stderr together.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := command(args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runAny runs a command whatever its exit status (some print usage and exit 2).
func runAny(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := command(args...)
	return out
}

func command(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
