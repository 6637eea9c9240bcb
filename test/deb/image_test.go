//go:build deb

package deb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHubImage: the hub's image (make image) runs as nobody, its binary is the version built,
// and the hub it starts answers /healthz and /readyz. buildah runs it with chroot isolation
// in a storage directory of the test's own (no daemon is needed, and nothing is left behind).
func TestHubImage(t *testing.T) {
	archive := os.Getenv("P2PCAST_IMAGE")
	if archive == "" {
		t.Skip("P2PCAST_IMAGE is unset: run make test-deb")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Fatalf("buildah: %v (scripts/install-deps.sh installs it)", err)
	}
	store := t.TempDir()
	b := func(args ...string) []string {
		return append([]string{"buildah", "--root", store + "/root", "--runroot", store + "/run", "--storage-driver", "vfs"}, args...)
	}
	t.Cleanup(func() { _, _ = command(b("rm", "-a")...); _, _ = command(b("rmi", "-a", "-f")...) })
	ctr := strings.TrimSpace(run(t, b("from", "-q", "oci-archive:"+archive)...))

	var cfg struct {
		OCIv1 struct {
			Config struct {
				User       string   `json:"User"`
				Entrypoint []string `json:"Entrypoint"`
			} `json:"config"`
		} `json:"OCIv1"`
	}
	if err := json.Unmarshal([]byte(run(t, b("inspect", "--type", "container", ctr)...)), &cfg); err != nil {
		t.Fatal(err)
	}
	if c := cfg.OCIv1.Config; c.User != "65534:65534" || strings.Join(c.Entrypoint, " ") != "/p2pcast hub --data /data --http 0.0.0.0:8443" {
		t.Errorf("image config: user %q entrypoint %q", c.User, c.Entrypoint)
	}
	if got := run(t, b("run", "--isolation", "chroot", ctr, "--", "/p2pcast", "version")...); !strings.HasPrefix(got, "p2pcast "+os.Getenv("P2PCAST_DEB_VERSION")) {
		t.Errorf("p2pcast version in the image: %q", got)
	}

	// The hub, as the image's user, on a free loopback port (the container shares the
	// host's network with chroot isolation).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	turnPort := strconv.Itoa(u.LocalAddr().(*net.UDPAddr).Port)
	u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := b("run", "--isolation", "chroot", ctr, "--", "/p2pcast", "hub", "--data", "/data", "--http", addr, "--turn-port", turnPort)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	for _, path := range []string{"healthz", "readyz"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			body, err := get(fmt.Sprintf("http://%s/%s", addr, path))
			if err == nil {
				t.Logf("/%s: %s", path, strings.TrimSpace(body))
				break
			}
			select {
			case <-exited:
				t.Fatalf("the hub in the image exited:\n%s", logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("/%s from the hub in the image: %v\n%s", path, err, logs.String())
			}
			time.Sleep(100 * time.Millisecond) // the hub starting: no event to wait on from outside
		}
	}
	if ps := run(t, "ps", "-o", "user=", "-C", "p2pcast"); !strings.Contains(ps, "nobody") {
		t.Errorf("the hub's process runs as %q, want nobody", ps)
	}
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), err
}
