package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/p2pcast/p2pcast/internal/viewer"
)

func runView(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("view", "view [flags] http://DEVICE[:PORT][/whep]", stderr)
	out := fs.String("out", "", "write H.264 Annex-B to FILE, or - for stdout")
	duration := fs.Duration("duration", 0, "stop this long after the first frame (0: until interrupted)")
	frames := fs.Int("frames", 0, "stop after this many frames")
	stats := fs.String("stats", "", "'json': print one JSON line of results at the end (stderr when --out -)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one device URL, e.g. http://127.0.0.1:8080/whep", errUsage)
	}
	if *stats != "" && *stats != "json" {
		return fmt.Errorf("%w: --stats takes only json", errUsage)
	}
	target := fs.Arg(0)
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		return fmt.Errorf("%w: %q is not an http(s) URL", errUsage, target)
	}
	if !strings.HasSuffix(target, "/whep") {
		target = strings.TrimSuffix(target, "/") + "/whep"
	}
	opts := viewer.Options{WHEPURL: target, Duration: *duration, Frames: *frames, Logger: newLogger(stderr, *verbose)}
	statsOut := stdout
	switch *out {
	case "":
	case "-":
		opts.Out, statsOut = stdout, stderr
	default:
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.Out = f
	}
	res, err := viewer.Watch(ctx, opts)
	if *stats == "json" {
		b, _ := json.Marshal(res)
		fmt.Fprintln(statsOut, string(b))
	} else if err == nil {
		fmt.Fprintf(stderr, "%d frames (%d keyframes), %dx%d, %.1f fps, %.2f Mbit/s, loss %.2f%%, first frame after %.0f ms, pair %s/%s/%s\n",
			res.Frames, res.Keyframes, res.Width, res.Height, res.FPS, float64(res.BitrateBPS)/1e6, res.LossPct, res.TTFFMS,
			res.Pair.LocalType, res.Pair.RemoteType, res.Pair.Protocol)
	}
	if err != nil && ctx.Err() != nil && res.Frames > 0 {
		return nil // interrupted after watching: a normal end
	}
	return err
}
