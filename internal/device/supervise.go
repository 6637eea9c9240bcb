package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Restart backoff for the producer: quick at first so a crash costs little picture, capped so a
// producer that cannot start does not spin.
const (
	restartMin    = 100 * time.Millisecond
	restartMax    = 5 * time.Second
	healthyAfter  = 10 * time.Second // a run this long resets the backoff
	stopGrace     = 3 * time.Second
	captureBinary = "p2pcast-capture"
)

// FindCapture locates p2pcast-capture: next to the running binary first (bin/ after make build),
// then on PATH.
func FindCapture() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), captureBinary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(captureBinary)
	if err != nil {
		return "", fmt.Errorf("%s not found next to this binary or on PATH (run `make build`, or pass --capture)", captureBinary)
	}
	return p, nil
}

// supervisor keeps one producer process running until ctx ends.
type supervisor struct {
	path string
	args []string
	log  *slog.Logger
	// files, when set, gives the descriptors each start passes on (fd 3 on): fresh ones each
	// time, closed here once the process has them.
	files func() ([]*os.File, error)
	// started is told each process start (tests); may be nil.
	started func(pid int)
	// argsNow, when set, gives each start's arguments instead of args, and restart ends the
	// running process so the next start takes them at once (a reload: manage.go).
	argsNow func() []string
	restart <-chan struct{}
}

// errRestarted: the producer was stopped to start again with new arguments.
var errRestarted = errors.New("restarted with new settings")

func (s *supervisor) run(ctx context.Context) {
	backoff := restartMin
	for ctx.Err() == nil {
		began := time.Now()
		err := s.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > healthyAfter || errors.Is(err, errRestarted) {
			backoff = restartMin
		}
		if errors.Is(err, errRestarted) {
			s.log.Info("producer restarting with new settings")
			continue
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jittered
		s.log.Warn("producer exited, restarting", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, restartMax)
	}
}

// once runs the producer until it exits or ctx ends (then SIGTERM, and SIGKILL after a grace).
func (s *supervisor) once(ctx context.Context) error {
	args := s.args
	if s.argsNow != nil {
		args = s.argsNow()
	}
	cmd := exec.Command(s.path, args...)
	cmd.Stdout = os.Stderr // the producer logs; the device's stdout is for the URL
	cmd.Stderr = os.Stderr
	// Its own process group, and killed if the device dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if s.files != nil {
		files, err := s.files()
		if err != nil {
			return err
		}
		cmd.ExtraFiles = files
		defer func() {
			for _, f := range files {
				f.Close() // the producer has its own copy
			}
		}()
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.log.Info("producer started", "pid", cmd.Process.Pid, "cmd", s.path)
	if s.started != nil {
		s.started(cmd.Process.Pid)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return err
	case <-s.restart:
		stopProcess(cmd, exited)
		return errRestarted
	case <-ctx.Done():
		return stopProcess(cmd, exited)
	}
}

// stopProcess ends cmd: SIGTERM, and SIGKILL after stopGrace.
func stopProcess(cmd *exec.Cmd, exited <-chan error) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(stopGrace):
		_ = cmd.Process.Kill()
		return <-exited
	}
}
