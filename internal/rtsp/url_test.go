package rtsp

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://admin:secret@cam/s":         "rtsp://admin:xxxxx@cam/s",
		"rtsp://admin:p@ss:w/rd@cam:554/s":  "rtsp://admin:xxxxx@cam:554/s",
		"rtsp://admin@cam/s":                "rtsp://admin@cam/s",
		"rtsp://cam/s":                      "rtsp://cam/s",
		"not a url with pass:word@x":        "not a url with pass:xxxxx@x",
		"cam:554/s":                         "cam:554/s",
		"rtsp://u:%40x@10.0.0.2/a?b=1":      "rtsp://u:xxxxx@10.0.0.2/a?b=1",
		"RTSP://user:pw@[::1]:8554/live":    "RTSP://user:xxxxx@[::1]:8554/live",
		"rtsp://a:b@cam/path@with@ats?x=@1": "rtsp://a:xxxxx@1",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseURL(t *testing.T) {
	tg, err := parseURL("rtsp://admin:p@ss:w@192.168.1.10/Streaming/Channels/101?transportmode=unicast")
	if err != nil {
		t.Fatal(err)
	}
	if tg.user != "admin" || tg.password != "p@ss:w" || tg.url.String() != "rtsp://192.168.1.10/Streaming/Channels/101?transportmode=unicast" {
		t.Errorf("got %q %q %q", tg.user, tg.password, tg.url)
	}
	if hostPort(tg.url) != "192.168.1.10:554" {
		t.Errorf("hostPort %s", hostPort(tg.url))
	}
	tg, err = parseURL("rtsp://u%3Ax:p%40w@cam:8554/s")
	if err != nil || tg.user != "u:x" || tg.password != "p@w" || hostPort(tg.url) != "cam:8554" {
		t.Errorf("escaped userinfo: %q %q %v", tg.user, tg.password, err)
	}
	for _, bad := range []string{"http://u:topsecret@cam/s", "rtsp://u:topsecret@/s", "u:topsecret@cam", "rtsp://u:topsecret@cam:99999999x/"} {
		_, err := parseURL(bad)
		if err == nil {
			t.Errorf("parseURL(%q) accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
}

func TestResolveControl(t *testing.T) {
	for _, c := range []struct{ base, control, want string }{
		{"rtsp://cam/test/", "stream=0", "rtsp://cam/test/stream=0"},
		{"rtsp://cam/test", "trackID=1", "rtsp://cam/test/trackID=1"},
		{"rtsp://cam/test/", "/trackID=1", "rtsp://cam/test/trackID=1"},
		{"rtsp://cam/test", "*", "rtsp://cam/test"},
		{"rtsp://cam/test", "", "rtsp://cam/test"},
		{"rtsp://cam/test", "rtsp://other:554/x/track1", "rtsp://other:554/x/track1"},
		{"rtsp://cam/test", "RTSP://u:p@other/x", "RTSP://other/x"},
		{"rtsp://cam/cam/realmonitor?channel=1&subtype=0", "trackID=0", "rtsp://cam/cam/realmonitor?channel=1&subtype=0/trackID=0"},
		{"rtsp://cam/s", "?ctype=video", "rtsp://cam/s?ctype=video"},
	} {
		if got := resolveControl(c.base, c.control); got != c.want {
			t.Errorf("resolveControl(%q, %q) = %q, want %q", c.base, c.control, got, c.want)
		}
	}
	tg, _ := parseURL("rtsp://cam:554/live/main")
	for header, want := range map[string]string{
		"":                          "rtsp://cam:554/live/main",
		"rtsp://cam:554/live/main/": "rtsp://cam:554/live/main/",
		"rtsp://admin:pw@cam/live/": "rtsp://cam/live/",
		"/other/":                   "rtsp://cam:554/other/",
		"main/":                     "rtsp://cam:554/live/main/",
	} {
		if got := resolveBase(tg.url, header); got != want {
			t.Errorf("resolveBase(%q) = %q, want %q", header, got, want)
		}
	}
}
