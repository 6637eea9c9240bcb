package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/p2pcast/p2pcast/internal/cli"
)

// netnsEnv marks a process that runs inside the private network namespace a browser benchmark
// makes (set it to 1 by hand to run in the current one).
const netnsEnv = "P2PCAST_NETNS"

// inNetns reports whether this process is the re-executed one, inside the namespace.
func inNetns() bool { return os.Getenv(netnsEnv) == "1" }

// reexecInNetns runs `p2pcast bench NAME ARGS…` again (this same binary) in a new network
// namespace with only loopback up, so that the device, Chromium and every packet between them
// stay on 127.0.0.1 and Chromium's calls to outside hosts fail at once. Its stdout and stderr
// are the inner run's.
func reexecInNetns(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "unshare", "-n", "true").CombinedOutput(); err != nil {
		why := strings.TrimSpace(string(out))
		if why == "" {
			why = err.Error()
		}
		if os.Geteuid() != 0 {
			return fmt.Errorf("%s needs root (CAP_SYS_ADMIN) for a private network namespace with only loopback up (unshare -n: %s)", name, why)
		}
		return fmt.Errorf("cannot make a private network namespace (unshare -n: %s)", why)
	}
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-n", "--", "sh", "-c",
		`ip link set lo up && exec "$0" "$@"`, exe, "bench", name}, args...)...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// unshare and sh exec: the process is the inner p2pcast, which stops cleanly on SIGTERM.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == cli.ExitUsage:
		return fmt.Errorf("%w: see above", cli.ErrUsage)
	case errors.As(err, &exit):
		return fmt.Errorf("could not measure (%v)", err)
	}
	return err
}
