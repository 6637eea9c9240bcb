package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLaunchOpenEval(t *testing.T) {
	if _, err := os.Stat(DefaultExecPath); err != nil {
		t.Skipf("no Chromium at %s", DefaultExecPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Launch(ctx, Options{Width: 640, Height: 360})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	p, err := b.Open(ctx, `data:text/html,<title>t</title><script>window.answer = {n: 42, s: "ok"}</script>`)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	got, err := Eval[answer](ctx, p, `window.answer`)
	if err != nil || got != (answer{42, "ok"}) {
		t.Fatalf("Eval = %+v, %v; want {42 ok}", got, err)
	}
	// Promises are awaited.
	n, err := Eval[int](ctx, p, `new Promise((r) => setTimeout(() => r(7), 10))`)
	if err != nil || n != 7 {
		t.Fatalf("Eval(promise) = %v, %v; want 7", n, err)
	}
	// A window as big as asked.
	w, err := Eval[int](ctx, p, `window.innerWidth`)
	if err != nil || w != 640 {
		t.Errorf("innerWidth = %v, %v; want 640", w, err)
	}
	// An expired context ends the call, not the tab.
	expired, cancelExpired := context.WithCancel(ctx)
	cancelExpired()
	if _, err := Eval[int](expired, p, `1`); err == nil {
		t.Error("Eval with a cancelled context succeeded")
	}
	if n, err := Eval[int](ctx, p, `1 + 1`); err != nil || n != 2 {
		t.Errorf("after a cancelled call: Eval = %v, %v; want 2", n, err)
	}
	// An exception is an error.
	if _, err := Eval[int](ctx, p, `(() => { throw new Error("boom") })()`); err == nil {
		t.Error("a throwing expression gave no error")
	}
	p.Close()

	// Bad flags are refused before anything starts.
	if _, err := Launch(ctx, Options{Flags: map[string]any{"window-position": 3}}); err == nil {
		t.Error("Launch accepted an int flag")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLaunchInNetns: with Netns the browser runs inside that network namespace (its processes are
// there) and is driven as usual.
func TestLaunchInNetns(t *testing.T) {
	if _, err := os.Stat(DefaultExecPath); err != nil {
		t.Skipf("no Chromium at %s", DefaultExecPath)
	}
	ip, err := lookSbin("ip")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("network namespaces need root and iproute2's ip")
	}
	ns := fmt.Sprintf("p2pcast-browser-test-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	if out, err := exec.Command(ip, "-n", ns, "link", "set", "dev", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Launch(ctx, Options{Width: 640, Height: 360, Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.Open(ctx, `data:text/html,<title>t</title>`)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Eval[int](ctx, p, `6 * 7`); err != nil || n != 42 {
		t.Fatalf("Eval = %v, %v; want 42", n, err)
	}
	out, err := exec.Command(ip, "netns", "pids", ns).Output()
	if err != nil || len(strings.Fields(string(out))) == 0 {
		t.Errorf("no process in namespace %s while the browser runs (%v)", ns, err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
