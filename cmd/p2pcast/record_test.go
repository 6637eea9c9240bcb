//go:build !device

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/p2pcast/p2pcast/internal/record"
)

// TestRecordStartStop: p2pcast record drives a manual-mode device's recorder peer to peer
// (status, start, stop), and a device that records nothing refuses it with exit code 3.
func TestRecordStartStop(t *testing.T) {
	url := startDeviceRecording(t, record.Options{Dir: t.TempDir(), MinFree: 1, Mode: record.ModeManual})
	status := func(args ...string) record.Status {
		t.Helper()
		code, out, errOut := runCapture(t, append([]string{"record"}, append(args, "--json", url)...)...)
		if code != exitOK {
			t.Fatalf("record %v: exit %d\n%s", args, code, errOut)
		}
		var st record.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("record %v: %v in %q", args, err, out)
		}
		return st
	}
	if st := status("status"); st.Recording || st.Mode != record.ModeManual {
		t.Fatalf("before start: %+v", st)
	}
	if st := status("start"); !st.Recording || st.Manual != "on" {
		t.Fatalf("after start: %+v", st)
	}
	if st := status("stop"); st.Recording || st.Manual != "off" {
		t.Fatalf("after stop: %+v", st)
	}
	code, out, _ := runCapture(t, "record", "status", url)
	if code != exitOK || !strings.HasPrefix(out, "not recording (mode manual, stopped by hand)") {
		t.Errorf("record status: exit %d, %q", code, out)
	}

	plain := startDeviceRecording(t, record.Options{})
	if code, _, errOut := runCapture(t, "record", "start", plain); code != exitRefused || !strings.Contains(errOut, "refused the record channel") {
		t.Errorf("a device without --record-dir: exit %d\n%s", code, errOut)
	}
	if code, _, _ := runCapture(t, "record", "begin", url); code != exitUsage {
		t.Errorf("record begin: exit %d, want %d", code, exitUsage)
	}
}
