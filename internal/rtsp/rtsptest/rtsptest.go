// Package rtsptest runs a real RTSP server for tests: GStreamer's RTSP server (Debian's
// gir1.2-gst-rtsp-server-1.0 with python3-gi) serving a live test pattern and a tone, as a
// camera would. Tests skip, saying why, where Python's GObject bindings or the GStreamer
// elements are missing.
package rtsptest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed server.py
var serverScript []byte

// Options describe the camera to stand in for.
type Options struct {
	// Video is "h264" (the default when Audio is empty too), "h265" or "" for none.
	Video string
	// Audio is "pcma", "aac" or "" for none.
	Audio string
	// User and Password, when User is set, protect the stream: Basic, or Digest if Digest.
	User, Password string
	Digest         bool
	// Picture: 320x240 at 30 fps by default, a keyframe every GOP pictures (default 30),
	// at KBitrate kbit/s (default 1000).
	Width, Height, FPS, GOP, KBitrate int
	// Pattern is videotestsrc's (default "smpte"; "ball" moves).
	Pattern string
	// SessionTimeout in seconds the server announces (0: its default, 60).
	SessionTimeout int
	// Path of the stream (default "/test").
	Path string
}

// Server is a running RTSP server.
type Server struct {
	// URL of the stream, without credentials.
	URL string
	// Port it listens on, on 127.0.0.1; it keeps it across Restart.
	Port int

	t      testing.TB
	python string
	dir    string
	config []byte
	cmd    *exec.Cmd
	// waitExit delivers cmd.Wait's result: one goroutine waits for the process while it runs.
	waitExit chan error
	log      string
}

// startTimeout bounds the server's start until it answers OPTIONS.
const startTimeout = 20 * time.Second

// Start runs a server for the test; it is stopped (by PID) when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Video == "" && o.Audio == "" {
		o.Video = "h264"
	}
	o.Width, o.Height, o.FPS = or(o.Width, 320), or(o.Height, 240), or(o.FPS, 30)
	o.GOP, o.KBitrate = or(o.GOP, 30), or(o.KBitrate, 1000)
	if o.Pattern == "" {
		o.Pattern = "smpte"
	}
	if o.Path == "" {
		o.Path = "/test"
	}
	python, err := findPython()
	if err != nil {
		t.Skipf("rtsptest: no RTSP server: %v (install python3-gi gir1.2-gst-rtsp-server-1.0)", err)
	}
	s := &Server{t: t, python: python, dir: t.TempDir()}
	script := filepath.Join(s.dir, "server.py")
	if err := os.WriteFile(script, serverScript, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Port = freePort(t)
	s.config, err = json.Marshal(map[string]any{
		"port": s.Port, "path": o.Path, "video": o.Video, "audio": o.Audio,
		"user": o.User, "password": o.Password, "digest": o.Digest,
		"width": o.Width, "height": o.Height, "fps": o.FPS, "gop": o.GOP, "kbps": o.KBitrate,
		"pattern": o.Pattern, "session_timeout": o.SessionTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, script, "--check", string(s.config)).CombinedOutput(); err != nil {
		t.Skipf("rtsptest: the server cannot serve %s+%s here: %s%v (install gstreamer1.0-plugins-{base,good,ugly,bad}, gstreamer1.0-libav)",
			o.Video, o.Audio, out, err)
	}
	s.URL = fmt.Sprintf("rtsp://127.0.0.1:%d%s", s.Port, o.Path)
	t.Cleanup(s.Stop)
	s.start()
	return s
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// findPython finds a python3 that has GObject introspection and the RTSP server's typelib
// (Debian's /usr/bin/python3 first: a pyenv or venv python on PATH lacks python3-gi).
func findPython() (string, error) {
	var tried []string
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		out, err := exec.Command(p, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); gi.require_version('GstRtsp', '1.0'); from gi.repository import GstRtspServer, GstRtsp").CombinedOutput()
		if err == nil {
			return p, nil
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		tried = append(tried, p+": "+lines[len(lines)-1])
	}
	if len(tried) == 0 {
		return "", errors.New("no python3")
	}
	return "", errors.New(strings.Join(tried, "; "))
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URLWithAuth is URL with the server's credentials in it.
func (s *Server) URLWithAuth(user, password string) string {
	return strings.Replace(s.URL, "rtsp://", "rtsp://"+user+":"+password+"@", 1)
}

// PID of the server process (0 when stopped).
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) start() {
	s.t.Helper()
	s.log = filepath.Join(s.dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(s.log)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.python, filepath.Join(s.dir, "server.py"), string(s.config))
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cmd, s.waitExit = cmd, exited
	deadline := time.Now().Add(startTimeout)
	for {
		if answersOptions(s.Port) {
			return
		}
		select {
		case err := <-exited:
			s.cmd, s.waitExit = nil, nil
			s.t.Fatalf("rtsptest: server exited at start (%v): %s", err, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("rtsptest: server did not answer OPTIONS within %v: %s", startTimeout, s.Log())
		}
	}
}

// answersOptions reports whether an RTSP server answers OPTIONS on port (any status: with
// authentication on, a 401 is an answer).
func answersOptions(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "OPTIONS rtsp://127.0.0.1:%d/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", port); err != nil {
		return false
	}
	buf := make([]byte, 9)
	n, _ := c.Read(buf)
	return string(buf[:n]) == "RTSP/1.0 "
}

// Log returns what the server printed.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// Stop kills the server (by PID) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	if s.waitExit != nil {
		<-s.waitExit
	}
	s.cmd, s.waitExit = nil, nil
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause stops the server process (SIGSTOP): a camera that stops sending but keeps the
// connection open. Resume continues it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd != nil {
		if err := s.cmd.Process.Signal(sig); err != nil {
			s.t.Errorf("rtsptest: signal %v: %v", sig, err)
		}
	}
}
