package device

import (
	"slices"
	"strings"
	"testing"
)

// --pattern, --sub and --sub-bitrate: checked like --size and --bitrate, passed to the test
// pattern's producer as they are.
func TestPictureOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		err    string // "" = valid
		args   []string
	}{
		{"defaults", func(c *Config) {}, "", []string{"--pattern", "bars"}},
		{"busy", func(c *Config) { c.Pattern = "busy" }, "", []string{"--pattern", "busy"}},
		{"unset pattern", func(c *Config) { c.Pattern = "" }, "", nil},
		{"sub", func(c *Config) { c.Sub = Size{640, 360} }, "", []string{"--pattern", "bars", "--sub", "640x360"}},
		{"sub and bitrate", func(c *Config) { c.Sub, c.SubBitrate = Size{640, 360}, 300_000 },
			"", []string{"--pattern", "bars", "--sub", "640x360", "--sub-bitrate", "300000"}},
		{"unknown pattern", func(c *Config) { c.Pattern = "plaid" }, `pattern "plaid"`, nil},
		{"sub as large", func(c *Config) { c.Sub = Size{1280, 720} }, "must be smaller", nil},
		{"sub taller", func(c *Config) { c.Sub = Size{640, 1080} }, "must be smaller", nil},
		{"sub-bitrate alone", func(c *Config) { c.SubBitrate = 300_000 }, "needs sub", nil},
		{"socket source", func(c *Config) { c.Source, c.Pattern, c.Sub = "socket", "busy", Size{640, 360} }, "only the test pattern", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.change(&c)
			err := c.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				if got := c.pictureArgs(); !slices.Equal(got, tc.args) {
					t.Fatalf("args %q, want %q", got, tc.args)
				}
				d := &Device{cfg: c}
				if all := d.captureArgs("/s"); !slices.Equal(all[len(all)-len(tc.args):], tc.args) {
					t.Fatalf("producer args %q do not end with %q", all, tc.args)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error saying %q", err, tc.err)
			}
		})
	}
	var s Size
	if s.Set("641x360") == nil {
		t.Error("odd sub size accepted")
	}
}

// TestCameraSources: the v4l2 source's producer reads the camera asked for; a camera device
// goes only with it; an RTSP camera's URL is a source, shown without its password.
func TestCameraSources(t *testing.T) {
	c := Defaults()
	c.Source, c.Camera, c.Pattern = "v4l2", "/dev/video2", ""
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	args := (&Device{cfg: c}).captureArgs("/s")
	if i := slices.Index(args, "--device"); i < 0 || args[i+1] != "/dev/video2" || !slices.Contains(args, "v4l2") {
		t.Errorf("producer args %q: want --source v4l2 --device /dev/video2", args)
	}
	c = Defaults()
	c.Camera = "/dev/video2"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "only the v4l2 source") {
		t.Errorf("a camera with the test pattern: %v", err)
	}
	c = Defaults()
	c.Source, c.Pattern = "rtsp://admin:hunter2@cam.local/s", "busy"
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "only the test pattern") {
		t.Errorf("an RTSP source with a pattern: %v (want a refusal without the password)", err)
	}
}
