/* p2pcast-capture: draws (or captures) pictures, encodes them to H.264 and hands each
 * access unit to the p2pcast device over its Unix socket (docs/ipc.md, version 2), or writes
 * the raw Annex-B stream to a file. With --sub it also sends a second, smaller rendition of
 * the same pictures (its own track, an alternate of the main one); with --audio-in an Opus
 * audio track, and with --audio-out it plays what viewers say (talk-back).
 *
 * The main thread owns the connection and paces video. The loop per picture: wait for the
 * tick (handling the device's messages meanwhile, SINK_FRAMEs handed to the audio-out
 * thread), read the clock, draw, encode and send the main rendition, then downscale, encode
 * and send the sub one (both stamped with the one capture time). The audio threads
 * (audio.c) keep their own 20 ms pace and send under the same lock as video.
 *
 * A damage-driven source (a screen: --source wayland or pipewire) paces itself instead: the
 * loop waits for its next picture and encodes it when it comes, at most --fps a second (the
 * newest of those that came meanwhile); with nothing new it sends the last picture again only as
 * a keep-alive (--keepalive-ms) or when the device asks for a keyframe (at once). A picture of
 * another size re-creates the encoders at that size, starting with an IDR.
 *
 * Each rendition's encoder is the first of --encoder-priority that starts (encoders/registry.h:
 * the hardware ones, then x264); one that fails while running hands over to the next in the list
 * with the same picture as an IDR, and the stream goes on (docs/encoders.md).
 *
 * A camera (--source v4l2) is such a source too, each of its frames being news. One that gives
 * H.264 itself is passed through: its access units go out as they come, none held back, repeated
 * or re-encoded; keyframe and bitrate requests are passed on to it (when it takes them). So is
 * the RV1106's camera (--source rkmpi, a build with RKMPI=1), whose hardware encoder also makes
 * the sub rendition with --sub: the source hands out the access units of both, each sent on its
 * rendition's track, and each rendition's requests go to its own encoder channel. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audio.h"
#include "clock.h"
#include "encoders/encoder.h"
#include "encoders/opus.h"
#include "encoders/registry.h"
#include "ipc.h"
#include "log.h"
#include "motion.h"
#include "scale.h"
#include "sources/audio.h"
#include "sources/pipewire.h"
#include "sources/rkmpi_vi.h"
#include "sources/source.h"
#include "sources/testpattern.h"
#include "sources/v4l2.h"
#include "sources/wayland.h"
#if PC_HAVE_TRANSCODE
#include "transcode.h"
#endif

#define PROG PC_PROG

#define EXIT_USAGE 2

#define NS_PER_SEC PC_NS_PER_SEC
#define NS_PER_MS PC_NS_PER_MS

/* A connection that lasted this long was a good one: the next reconnect starts the backoff
 * from the beginning. Shorter ones (a device that accepts and drops us) keep backing off. */
#define HEALTHY_CONNECTION_NS (1 * NS_PER_SEC)
/* Late-frame reports are grouped so a loaded machine does not flood the log. */
#define LATE_REPORT_INTERVAL_NS (5 * NS_PER_SEC)

#define MIN_BITRATE 10000u
#define MIN_SIDE 16
#define DEFAULT_KEEPALIVE_MS 1000u
/* After a change, the same picture is sent again REFINES times, REFINE_MS apart (see
 * run_damage_driven). */
#define REFINES 3
#define REFINE_MS 100
/* How long a damage-driven source may take to give its first picture. */
#define FIRST_PICTURE_TIMEOUT_MS 5000
#define MAX_THREADS 128
#define DEFAULT_AUDIO_BITRATE 32000u

/* Track ids on the connection: video is 1, then audio in, then the talk-back sink, then the
 * sub rendition (so audio keeps the ids it had before there was a sub stream). */
#define TRACK_VIDEO 1

/* Renditions of the video: the main one, and the sub one with --sub. */
#define RENDITION_MAIN 0
#define RENDITION_SUB 1
#define MAX_RENDITIONS 2
/* How late an encoder's AU may be and still get its own picture's capture time. */
#define CAPTURE_RING 16

/* ---- configuration ---- */

struct pc_capture_config {
	const char *socket_path;
	const char *annexb_out; /* "-" is stdout */
	const char *source;
	const char *pattern;    /* the test pattern's: bars, busy */
	int width;
	int height;
	bool size_set;          /* --size given (a screen is otherwise taken at its own size) */
	const char *output;     /* wayland: the output's name, NULL = the first */
	bool cursor;            /* wayland, pipewire: draw the pointer in */
	int pipewire_fd;        /* pipewire: an inherited PipeWire remote, -1 = the default daemon */
	uint32_t pipewire_node; /* pipewire: the stream's node id, UINT32_MAX = not given */
	const char *device;     /* v4l2: the camera, NULL = /dev/video0 */
	const char *v4l2_format; /* v4l2: yuyv, nv12, mjpeg, h264 or auto (NULL) */
	const char *iq_dir;     /* rkmpi: the ISP's IQ files, NULL = /etc/iqfiles */
	uint32_t sensor_fps;    /* rkmpi: the sensor's own rate, 0 = 30 */
	uint32_t keepalive_ms;  /* damage-driven sources: the last picture again after this long */
	uint32_t fps_num;
	uint32_t fps_den;
	uint32_t bitrate;
	uint32_t gop;           /* 0 until defaulted to 2 s of pictures */
	int sub_width;          /* --sub: 0 = no sub rendition */
	int sub_height;
	uint32_t sub_bitrate;   /* 0 until defaulted to bitrate / 4 */
	const char *preset;
	int threads;
	/* --encoder-priority / --encoder: tried in order for each rendition, at start and when the
	 * running one fails (docs/encoders.md). */
	struct pc_encoder_list encoders;
	bool encoders_set;
	uint64_t frames;        /* 0 = run until signalled */
	const char *name;       /* NULL = the source's name */
	const char *audio_in;   /* NULL, "testtone", or an ALSA PCM */
	const char *audio_out;  /* NULL, or an ALSA PCM */
	uint32_t audio_bitrate;
	int audio_channels;
	bool motion;            /* --motion: detect motion, send EVENTs */
	bool motion_tuned;      /* a --motion-* option was given */
	struct pc_motion_config motion_config;
	int64_t object_on_ns;   /* --pattern-object: 0 = no object */
	int64_t object_off_ns;
};

/* A build may leave the desktop sources out (the Makefile's WAYLAND=0 PIPEWIRE=0: the board). */
#ifndef PC_HAVE_WAYLAND
#define PC_HAVE_WAYLAND 1
#endif
#ifndef PC_HAVE_PIPEWIRE
#define PC_HAVE_PIPEWIRE 1
#endif
#if PC_HAVE_WAYLAND
#define PC_WAYLAND_NAME ", wayland"
#else
#define PC_WAYLAND_NAME ""
#endif
#if PC_HAVE_PIPEWIRE
#define PC_PIPEWIRE_NAME ", pipewire"
#else
#define PC_PIPEWIRE_NAME ""
#endif
#ifndef PC_HAVE_V4L2
#define PC_HAVE_V4L2 1
#endif
#if PC_HAVE_V4L2
#define PC_V4L2_NAME ", v4l2"
#else
#define PC_V4L2_NAME ""
#endif
/* The RV1106's camera through the vendor media API: only with the Makefile's RKMPI=1. */
#ifndef PC_HAVE_RKMPI
#define PC_HAVE_RKMPI 0
#endif
#if PC_HAVE_RKMPI
#define PC_RKMPI_NAME ", rkmpi"
#else
#define PC_RKMPI_NAME ""
#endif

static const struct pc_source_ops *const sources[] = {
	&pc_testpattern_source,
#if PC_HAVE_WAYLAND
	&pc_wayland_source,
#endif
#if PC_HAVE_PIPEWIRE
	&pc_pipewire_source,
#endif
#if PC_HAVE_V4L2
	&pc_v4l2_source,
#endif
#if PC_HAVE_RKMPI
	&pc_rkmpi_vi_source,
#endif
};

static bool damage_driven(const struct pc_source_ops *ops)
{
	return ops->take != NULL;
}

/* A screen (or a camera, whose driver has the last word on the size): sized by its first picture,
 * or --size (for a camera: asked for). */
static bool screen_source(const char *name)
{
	return strcmp(name, "wayland") == 0 || strcmp(name, "pipewire") == 0 || strcmp(name, "v4l2") == 0;
}

static const struct pc_source_ops *find_source(const char *name)
{
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++)
		if (strcmp(sources[i]->name, name) == 0)
			return sources[i];
	return NULL;
}

static void print_usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " (--socket PATH | --annexb-out FILE) [options]\n"
		"\n"
		"Encodes a picture source to H.264 and sends it to the p2pcast device.\n"
		"\n"
		"  --socket PATH       the device's capture socket (framed protocol, docs/ipc.md)\n"
		"  --annexb-out FILE   write the raw Annex-B stream to FILE instead ('-' = stdout)\n"
		"  --source NAME       picture source: testpattern (default), wayland (an output of a\n"
		"                      wlroots compositor such as sway, via wlr-screencopy; needs\n"
		"                      WAYLAND_DISPLAY and XDG_RUNTIME_DIR) or pipewire (a PipeWire\n"
		"                      screen-cast stream, as the desktop portal of GNOME and KDE\n"
		"                      hands one out: --pipewire-node, --pipewire-fd) or v4l2 (a\n"
		"                      camera: --device, --v4l2-format) or rkmpi (the RV1106's\n"
		"                      camera and hardware encoder; builds with RKMPI=1)\n"
		"  --pattern NAME      what the test pattern draws: bars (default; easy to compress)\n"
		"                      or busy (noise, fast motion and a scene cut every 3 s: an\n"
		"                      encoder spends its whole bitrate on it) or still (the bars\n"
		"                      alone, nothing moving: a scene for --pattern-object)\n"
		"  --size WxH          picture size, even numbers (default 1280x720; a screen: its\n"
		"                      own size, an odd side cropped by one pixel, or with --size\n"
		"                      the screen scaled to fit WxH, aspect kept)\n"
		"  --fps N[/D]         frame rate (default 30)\n"
		"  --bitrate RATE      target bit/s, SI suffixes allowed: 2M, 500k (default 2M)\n"
		"  --gop FRAMES        pictures from one IDR to the next (default 2 s worth)\n"
		"  --preset NAME       x264 preset (default ultrafast)\n"
		"  --threads N         encoder threads, 0 = auto (default 0)\n"
		"  --encoder-priority LIST  video encoders to try in order, comma-separated, each\n"
		"                      NAME or NAME:DEVICE (v4l2m2m:/dev/video11): the first that\n"
		"                      starts is used, the next takes over when it fails while\n"
		"                      running (default: the hardware ones, then x264; this build:\n"
		"                      %s)\n"
		"  --encoder NAME[:DEVICE]  this encoder only (no fallback)\n"
		"  --frames N          stop after N pictures\n"
		"  --name NAME         producer name sent in HELLO, at most 64 bytes (default: source name)\n"
		"  --pattern-object on=DUR,off=DUR\n"
		"                      the test pattern: a box moving across, hidden for off, shown for\n"
		"                      on, again and again from the first picture (DUR: 2s, 500ms)\n"
		"\n"
		"Motion events (docs/motion.md; raw pictures only, not a camera's own H.264):\n"
		"  --motion            analyse the pictures before encoding and send motion EVENTs\n"
		"  --motion-sensitivity N  1 (large, strong changes only) .. 100 (the slightest);\n"
		"                      default 50\n"
		"  --motion-mask X,Y,W,H[;X,Y,W,H...]  regions to ignore, in shares of the picture\n"
		"                      (0..1), e.g. 0,0,1,0.1 for the top tenth\n"
		"  --motion-min-duration DUR  motion this long starts an event (default 500ms)\n"
		"  --motion-hold DUR   no motion this long ends it (default 2s)\n"
		"  --motion-fps N      pictures analysed a second, at most (1..60, default 10)\n"
		"\n"
		"Screen capture (--source wayland or pipewire): pictures are encoded when the screen\n"
		"changes, at most --fps a second; --frames counts every picture sent, keep-alives\n"
		"included.\n"
		"  --output NAME       wayland: the output to capture, e.g. HEADLESS-1 or DP-1 (default:\n"
		"                      the first)\n"
		"  --pipewire-node ID  pipewire: the stream's node id (the portal's ScreenCast.Start\n"
		"                      gives it); needed\n"
		"  --pipewire-fd FD    pipewire: an inherited connection to the PipeWire daemon (the\n"
		"                      portal's ScreenCast.OpenPipeWireRemote); default: the daemon of\n"
		"                      $XDG_RUNTIME_DIR (pipewire-0)\n"
		"  --no-cursor         leave the pointer out of the picture (default: drawn in; pipewire:\n"
		"                      the cursor metadata is not drawn, an embedded cursor stays)\n"
		"  --keepalive-ms N    on a still screen, send the last picture again every N ms so\n"
		"                      viewers' streams stay alive (default 1000, at least 10)\n"
		"\n"
		"Camera (--source v4l2; docs/capture-v4l2.md): --size and --fps are asked of the\n"
		"camera, which may give the nearest it has (default 1280x720 at 30).\n"
		"  --device PATH       the V4L2 capture device (default /dev/video0)\n"
		"  --v4l2-format F     yuyv, nv12, mjpeg (decoded and encoded here), h264 (the\n"
		"                      camera's own, passed through as it is: --bitrate and keyframe\n"
		"                      requests go to the camera when it takes them; no --sub) or\n"
		"                      auto (default: h264 at the asked size, else nv12, yuyv, mjpeg)\n"
		"\n"
		"RV1106 camera (--source rkmpi; docs/capture.md): the ISP scales to --size (default\n"
		"1280x720) and the hardware encoder encodes at --bitrate, --fps at most the sensor's;\n"
		"--sub is the ISP's second output, encoded by a second channel. Keyframe and bitrate\n"
		"requests go to the encoder. No --motion (the pictures are never in memory).\n"
		"  --iq-dir DIR        the ISP's tuning files (default /etc/iqfiles)\n"
		"  --sensor-fps N      the sensor's own frame rate (default 30; 1..120)\n"
		"\n"
		"Sub stream (only with --socket):\n"
		"  --sub WxH           also send each picture downscaled to WxH (even, at most the\n"
		"                      picture size), encoded on its own as a second video track,\n"
		"                      an alternate of the main one (default: none); when a\n"
		"                      screen changes size, the sub stream keeps its share of it\n"
		"  --sub-bitrate RATE  the sub stream's target bit/s (default: a quarter of --bitrate)\n"
		"\n"
		"Audio (only with --socket; --annexb-out ignores these):\n"
		"  --audio-in SOURCE   send an Opus audio track: testtone (a 1 kHz beep of 100 ms at\n"
		"                      every whole second, in step with the test pattern's flash) or\n"
		"                      an ALSA capture PCM (default, hw:0, plughw:1,0, a name from\n"
		"                      an asoundrc...)\n"
		"  --audio-out PCM     play viewers' talk-back on this ALSA playback PCM\n"
		"  --audio-bitrate R   Opus bit/s, 6k to 510k (default 32k)\n"
		"  --audio-channels N  1 or 2 (default 1)\n"
		"\n"
		"  --help              show this help\n",
		pc_encoder_names());
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	char line[512];
	va_list args;
	va_start(args, fmt);
	vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	fprintf(stderr, PROG ": %s\n" PROG ": try --help\n", line);
	return -1;
}

/* Digits only: no sign, no spaces, no hex, fits max. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	if (!*s)
		return false;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* "2000000", "2M", "1.5M", "500k": decimal SI multipliers. */
static bool parse_bitrate(const char *s, uint32_t *out)
{
	uint64_t whole = 0, frac = 0, frac_scale = 1, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > UINT32_MAX)
			return false;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (frac_scale >= 1000000000)
				return false;
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_scale *= 10;
		}
	}
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1000;
		p++;
		break;
	case 'M':
		mult = 1000000;
		p++;
		break;
	case 'G':
		mult = 1000000000;
		p++;
		break;
	default:
		return false;
	}
	if (*p)
		return false;
	uint64_t v = whole * mult + frac * mult / frac_scale;
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool parse_size(const char *s, int *width, int *height)
{
	char w[16], h[16];
	const char *x = strchr(s, 'x');
	if (!x || (size_t)(x - s) >= sizeof(w) || strlen(x + 1) >= sizeof(h))
		return false;
	memcpy(w, s, (size_t)(x - s));
	w[x - s] = '\0';
	strcpy(h, x + 1);
	uint64_t wv, hv;
	if (!parse_uint(w, UINT16_MAX, &wv) || !parse_uint(h, UINT16_MAX, &hv))
		return false;
	*width = (int)wv;
	*height = (int)hv;
	return true;
}

static bool parse_fps(const char *s, uint32_t *num, uint32_t *den)
{
	char buf[32];
	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	uint64_t n, d = 1;
	if (slash) {
		*slash = '\0';
		if (!parse_uint(slash + 1, UINT16_MAX, &d))
			return false;
	}
	if (!parse_uint(buf, UINT16_MAX, &n) || n == 0 || d == 0)
		return false;
	*num = (uint32_t)n;
	*den = (uint32_t)d;
	return true;
}

/* "on=DUR,off=DUR", in either order (on > 0, off >= 0). */
static bool parse_object(const char *s, int64_t *on_ns, int64_t *off_ns)
{
	int64_t on = -1, off = -1;
	while (*s) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		int64_t *dst;
		size_t key;
		if (len > 3 && strncmp(s, "on=", 3) == 0) {
			dst = &on;
			key = 3;
		} else if (len > 4 && strncmp(s, "off=", 4) == 0) {
			dst = &off;
			key = 4;
		} else {
			return false;
		}
		if (*dst >= 0 || !pc_motion_parse_duration(s + key, len - key, dst) || *dst > 3600 * NS_PER_SEC)
			return false;
		s += len;
		if (*s == ',' && !*++s)
			return false;
	}
	if (on <= 0 || off < 0)
		return false;
	*on_ns = on;
	*off_ns = off;
	return true;
}

enum {
	OPT_SOCKET = 256,
	OPT_ANNEXB_OUT,
	OPT_SOURCE,
	OPT_PATTERN,
	OPT_SIZE,
	OPT_FPS,
	OPT_BITRATE,
	OPT_GOP,
	OPT_PRESET,
	OPT_THREADS,
	OPT_FRAMES,
	OPT_NAME,
	OPT_SUB,
	OPT_SUB_BITRATE,
	OPT_AUDIO_IN,
	OPT_AUDIO_OUT,
	OPT_AUDIO_BITRATE,
	OPT_AUDIO_CHANNELS,
	OPT_OUTPUT,
	OPT_NO_CURSOR,
	OPT_KEEPALIVE_MS,
	OPT_PIPEWIRE_FD,
	OPT_PIPEWIRE_NODE,
	OPT_DEVICE,
	OPT_V4L2_FORMAT,
	OPT_IQ_DIR,
	OPT_SENSOR_FPS,
	OPT_ENCODER,
	OPT_ENCODER_PRIORITY,
	OPT_PATTERN_OBJECT,
	OPT_MOTION,
	OPT_MOTION_SENSITIVITY,
	OPT_MOTION_MASK,
	OPT_MOTION_MIN_DURATION,
	OPT_MOTION_HOLD,
	OPT_MOTION_FPS,
	OPT_HELP,
};

/* Returns 0, 1 when --help was handled, -1 on a usage error (already reported). */
static int parse_args(int argc, char **argv, struct pc_capture_config *config)
{
	static const struct option options[] = {
		{"socket", required_argument, NULL, OPT_SOCKET},
		{"annexb-out", required_argument, NULL, OPT_ANNEXB_OUT},
		{"source", required_argument, NULL, OPT_SOURCE},
		{"pattern", required_argument, NULL, OPT_PATTERN},
		{"size", required_argument, NULL, OPT_SIZE},
		{"fps", required_argument, NULL, OPT_FPS},
		{"bitrate", required_argument, NULL, OPT_BITRATE},
		{"gop", required_argument, NULL, OPT_GOP},
		{"preset", required_argument, NULL, OPT_PRESET},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"frames", required_argument, NULL, OPT_FRAMES},
		{"name", required_argument, NULL, OPT_NAME},
		{"sub", required_argument, NULL, OPT_SUB},
		{"sub-bitrate", required_argument, NULL, OPT_SUB_BITRATE},
		{"audio-in", required_argument, NULL, OPT_AUDIO_IN},
		{"audio-out", required_argument, NULL, OPT_AUDIO_OUT},
		{"audio-bitrate", required_argument, NULL, OPT_AUDIO_BITRATE},
		{"audio-channels", required_argument, NULL, OPT_AUDIO_CHANNELS},
		{"output", required_argument, NULL, OPT_OUTPUT},
		{"no-cursor", no_argument, NULL, OPT_NO_CURSOR},
		{"keepalive-ms", required_argument, NULL, OPT_KEEPALIVE_MS},
		{"pipewire-fd", required_argument, NULL, OPT_PIPEWIRE_FD},
		{"pipewire-node", required_argument, NULL, OPT_PIPEWIRE_NODE},
		{"device", required_argument, NULL, OPT_DEVICE},
		{"v4l2-format", required_argument, NULL, OPT_V4L2_FORMAT},
		{"iq-dir", required_argument, NULL, OPT_IQ_DIR},
		{"sensor-fps", required_argument, NULL, OPT_SENSOR_FPS},
		{"encoder", required_argument, NULL, OPT_ENCODER},
		{"encoder-priority", required_argument, NULL, OPT_ENCODER_PRIORITY},
		{"pattern-object", required_argument, NULL, OPT_PATTERN_OBJECT},
		{"motion", no_argument, NULL, OPT_MOTION},
		{"motion-sensitivity", required_argument, NULL, OPT_MOTION_SENSITIVITY},
		{"motion-mask", required_argument, NULL, OPT_MOTION_MASK},
		{"motion-min-duration", required_argument, NULL, OPT_MOTION_MIN_DURATION},
		{"motion-hold", required_argument, NULL, OPT_MOTION_HOLD},
		{"motion-fps", required_argument, NULL, OPT_MOTION_FPS},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	*config = (struct pc_capture_config){
		.source = "testpattern",
		.pattern = "bars",
		.width = 1280,
		.height = 720,
		.fps_num = 30,
		.fps_den = 1,
		.bitrate = 2000000,
		.preset = "ultrafast",
		.audio_bitrate = DEFAULT_AUDIO_BITRATE,
		.audio_channels = 1,
		.cursor = true,
		.keepalive_ms = DEFAULT_KEEPALIVE_MS,
		.pipewire_fd = -1,
		.pipewire_node = UINT32_MAX,
	};
	pc_motion_config_defaults(&config->motion_config);

	opterr = 0; /* we word the errors ourselves */
	int opt;
	uint64_t v;
	while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
		switch (opt) {
		case OPT_SOCKET:
			config->socket_path = optarg;
			break;
		case OPT_ANNEXB_OUT:
			config->annexb_out = optarg;
			break;
		case OPT_SOURCE:
			if (!find_source(optarg))
				return usage_error("--source: unknown source '%s' (available in this build: testpattern" PC_WAYLAND_NAME PC_PIPEWIRE_NAME PC_V4L2_NAME PC_RKMPI_NAME ")",
				                    optarg);
			config->source = optarg;
			break;
		case OPT_PATTERN:
			if (!pc_testpattern_pattern_known(optarg))
				return usage_error("--pattern: unknown pattern '%s' (available: " PC_TESTPATTERN_PATTERNS ")",
						   optarg);
			config->pattern = optarg;
			break;
		case OPT_SIZE:
			if (!parse_size(optarg, &config->width, &config->height))
				return usage_error("--size: expected WxH such as 1280x720, got '%s'", optarg);
			if (config->width % 2 || config->height % 2 || config->width < 16 || config->height < 16)
				return usage_error("--size: %dx%d: width and height must be even and at least 16",
						   config->width, config->height);
			config->size_set = true;
			break;
		case OPT_FPS:
			if (!parse_fps(optarg, &config->fps_num, &config->fps_den))
				return usage_error("--fps: expected N or N/D (1..65535), got '%s'", optarg);
			break;
		case OPT_BITRATE:
			if (!parse_bitrate(optarg, &config->bitrate) || config->bitrate < MIN_BITRATE)
				return usage_error("--bitrate: expected a rate of at least 10k bit/s such as 2M, 500k or 2000000, got '%s'",
						   optarg);
			break;
		case OPT_GOP:
			if (!parse_uint(optarg, INT32_MAX, &v) || v == 0)
				return usage_error("--gop: expected a number of frames >= 1, got '%s'", optarg);
			config->gop = (uint32_t)v;
			break;
		case OPT_PRESET:
			config->preset = optarg;
			break;
		case OPT_THREADS:
			if (!parse_uint(optarg, MAX_THREADS, &v))
				return usage_error("--threads: expected 0..%d, got '%s'", MAX_THREADS, optarg);
			config->threads = (int)v;
			break;
		case OPT_FRAMES:
			if (!parse_uint(optarg, UINT32_MAX, &v) || v == 0)
				return usage_error("--frames: expected a count >= 1, got '%s'", optarg);
			config->frames = v;
			break;
		case OPT_NAME:
			if (strlen(optarg) > PC_IPC_NAME_MAX)
				return usage_error("--name: at most %d bytes", PC_IPC_NAME_MAX);
			config->name = optarg;
			break;
		case OPT_SUB:
			if (!parse_size(optarg, &config->sub_width, &config->sub_height))
				return usage_error("--sub: expected WxH such as 640x360, got '%s'", optarg);
			if (config->sub_width % 2 || config->sub_height % 2 || config->sub_width < 16 ||
			    config->sub_height < 16)
				return usage_error("--sub: %dx%d: width and height must be even and at least 16",
						   config->sub_width, config->sub_height);
			break;
		case OPT_SUB_BITRATE:
			if (!parse_bitrate(optarg, &config->sub_bitrate) || config->sub_bitrate < MIN_BITRATE)
				return usage_error("--sub-bitrate: expected a rate of at least 10k bit/s such as 500k, got '%s'",
						   optarg);
			break;
		case OPT_AUDIO_IN:
			if (!*optarg)
				return usage_error("--audio-in: expected testtone or an ALSA PCM name such as default or hw:0");
			config->audio_in = optarg;
			break;
		case OPT_AUDIO_OUT:
			if (!*optarg)
				return usage_error("--audio-out: expected an ALSA PCM name such as default or hw:0");
			config->audio_out = optarg;
			break;
		case OPT_AUDIO_BITRATE:
			if (!parse_bitrate(optarg, &config->audio_bitrate) ||
			    config->audio_bitrate < PC_OPUS_MIN_BITRATE ||
			    config->audio_bitrate > PC_OPUS_MAX_BITRATE)
				return usage_error("--audio-bitrate: expected 6k to 510k bit/s such as 32k or 64000, got '%s'",
						   optarg);
			break;
		case OPT_AUDIO_CHANNELS:
			if (strcmp(optarg, "1") != 0 && strcmp(optarg, "2") != 0)
				return usage_error("--audio-channels: expected 1 or 2, got '%s'", optarg);
			config->audio_channels = optarg[0] - '0';
			break;
		case OPT_OUTPUT:
			if (!*optarg)
				return usage_error("--output: expected an output name such as HEADLESS-1 or DP-1");
			config->output = optarg;
			break;
		case OPT_NO_CURSOR:
			config->cursor = false;
			break;
		case OPT_KEEPALIVE_MS:
			if (!parse_uint(optarg, 3600000, &v) || v < 10)
				return usage_error("--keepalive-ms: expected 10..3600000 milliseconds, got '%s'", optarg);
			config->keepalive_ms = (uint32_t)v;
			break;
		case OPT_PIPEWIRE_FD:
			if (!parse_uint(optarg, INT32_MAX, &v) || v < 3)
				return usage_error("--pipewire-fd: expected an inherited descriptor number (3 or more), got '%s'",
						   optarg);
			config->pipewire_fd = (int)v;
			break;
		case OPT_PIPEWIRE_NODE:
			if (!parse_uint(optarg, UINT32_MAX - 1, &v))
				return usage_error("--pipewire-node: expected a node id such as 42, got '%s'", optarg);
			config->pipewire_node = (uint32_t)v;
			break;
		case OPT_DEVICE:
			if (!*optarg)
				return usage_error("--device: expected a V4L2 device such as /dev/video0");
			config->device = optarg;
			break;
		case OPT_V4L2_FORMAT: {
			const char *f = optarg;
			if (strcmp(f, "auto") && strcmp(f, "yuyv") && strcmp(f, "nv12") && strcmp(f, "mjpeg") &&
			    strcmp(f, "h264"))
				return usage_error("--v4l2-format: expected yuyv, nv12, mjpeg, h264 or auto, got '%s'", f);
			config->v4l2_format = f;
			break;
		}
		case OPT_IQ_DIR:
			if (!*optarg)
				return usage_error("--iq-dir: expected the directory of the ISP's IQ files such as /etc/iqfiles");
			config->iq_dir = optarg;
			break;
		case OPT_SENSOR_FPS:
			if (!pc_rkmpi_parse_sensor_fps(optarg, &config->sensor_fps))
				return usage_error("--sensor-fps: expected the sensor's frame rate, 1..%u, got '%s'",
						   PC_RKMPI_MAX_SENSOR_FPS, optarg);
			break;
		case OPT_ENCODER:
		case OPT_ENCODER_PRIORITY: {
			const char *name = opt == OPT_ENCODER ? "--encoder" : "--encoder-priority";
			char why[256];
			if (config->encoders_set)
				return usage_error("%s: give one of --encoder and --encoder-priority, once", name);
			if (opt == OPT_ENCODER && strchr(optarg, ','))
				return usage_error("--encoder takes one name (a list is --encoder-priority)");
			if (pc_encoder_list_parse(&config->encoders, optarg, why, sizeof(why)) < 0)
				return usage_error("%s: %s", name, why);
			config->encoders_set = true;
			break;
		}
		case OPT_PATTERN_OBJECT:
			if (!parse_object(optarg, &config->object_on_ns, &config->object_off_ns))
				return usage_error("--pattern-object: expected on=DUR,off=DUR such as on=2s,off=3s, got '%s'",
						   optarg);
			break;
		case OPT_MOTION:
			config->motion = true;
			break;
		case OPT_MOTION_SENSITIVITY:
			if (!parse_uint(optarg, 100, &v) || v < 1)
				return usage_error("--motion-sensitivity: expected 1..100, got '%s'", optarg);
			config->motion_config.sensitivity = (int)v;
			config->motion_tuned = true;
			break;
		case OPT_MOTION_MASK:
			if (!pc_motion_parse_mask(optarg, &config->motion_config))
				return usage_error("--motion-mask: expected up to %d boxes x,y,w,h in shares of the picture (0..1) separated by ';', got '%s'",
						   PC_MOTION_MAX_MASKS, optarg);
			config->motion_tuned = true;
			break;
		case OPT_MOTION_MIN_DURATION:
		case OPT_MOTION_HOLD: {
			int64_t ns;
			if (!pc_motion_parse_duration(optarg, strlen(optarg), &ns) || ns > 3600 * NS_PER_SEC)
				return usage_error("%s: expected a duration up to 1h such as 500ms or 2s, got '%s'",
						   opt == OPT_MOTION_HOLD ? "--motion-hold" : "--motion-min-duration", optarg);
			if (opt == OPT_MOTION_HOLD)
				config->motion_config.hold_ns = ns;
			else
				config->motion_config.min_duration_ns = ns;
			config->motion_tuned = true;
			break;
		}
		case OPT_MOTION_FPS:
			if (!parse_uint(optarg, 60, &v) || v < 1)
				return usage_error("--motion-fps: expected 1..60, got '%s'", optarg);
			config->motion_config.fps = (uint32_t)v;
			config->motion_tuned = true;
			break;
		case OPT_HELP:
			print_usage(stdout);
			return 1;
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!config->encoders_set)
		pc_encoder_list_default(&config->encoders);
	if (!config->socket_path == !config->annexb_out)
		return usage_error("give exactly one of --socket PATH and --annexb-out FILE");
	if (config->gop == 0) {
		uint64_t two_seconds = (2ull * config->fps_num + config->fps_den / 2) / config->fps_den;
		config->gop = two_seconds > 0 ? (uint32_t)two_seconds : 1;
	}
	/* A screen's own size is known once it gives its first picture: checked then. */
	bool size_known = !screen_source(config->source) || config->size_set;
	if (size_known && !pc_h264_level_find(config->width, config->height, config->fps_num, config->fps_den,
					      config->bitrate))
		return usage_error("%dx%d at %u/%u fps and %u bit/s is beyond H.264 level 5.2",
				   config->width, config->height, config->fps_num, config->fps_den,
				   config->bitrate);
	if (config->sub_bitrate && !config->sub_width)
		return usage_error("--sub-bitrate needs --sub WxH");
	if (config->motion_tuned && !config->motion)
		return usage_error("the --motion-* options need --motion");
	if (config->object_on_ns && strcmp(config->source, "testpattern") != 0)
		return usage_error("--pattern-object is for --source testpattern");
	if (strcmp(config->source, "wayland") != 0 && config->output)
		return usage_error("--output is for --source wayland");
	bool pipewire = strcmp(config->source, "pipewire") == 0;
	if (!pipewire && (config->pipewire_fd >= 0 || config->pipewire_node != UINT32_MAX))
		return usage_error("--pipewire-fd and --pipewire-node are for --source pipewire");
	if (pipewire && config->pipewire_node == UINT32_MAX)
		return usage_error("--source pipewire needs --pipewire-node ID (the portal's stream node)");
	if (strcmp(config->source, "v4l2") != 0 && (config->device || config->v4l2_format))
		return usage_error("--device and --v4l2-format are for --source v4l2");
	if (strcmp(config->source, "rkmpi") != 0 && (config->iq_dir || config->sensor_fps))
		return usage_error("--iq-dir and --sensor-fps are for --source rkmpi");
	if (config->v4l2_format && strcmp(config->v4l2_format, "h264") == 0 && config->sub_width)
		return usage_error("--sub: the camera's H.264 is passed through, not decoded: no sub stream from it");
	if (config->sub_width) {
		/* A smaller rendition of the same pictures: downscaling only. */
		if (size_known && (config->sub_width > config->width || config->sub_height > config->height ||
				   (config->sub_width == config->width && config->sub_height == config->height)))
			return usage_error("--sub %dx%d: must be smaller than the picture (%dx%d)",
					   config->sub_width, config->sub_height, config->width,
					   config->height);
		if (!config->sub_bitrate)
			config->sub_bitrate = config->bitrate / 4 > MIN_BITRATE ? config->bitrate / 4 : MIN_BITRATE;
		if (!pc_h264_level_find(config->sub_width, config->sub_height, config->fps_num,
					config->fps_den, config->sub_bitrate))
			return usage_error("--sub %dx%d at %u/%u fps and %u bit/s is beyond H.264 level 5.2",
					   config->sub_width, config->sub_height, config->fps_num,
					   config->fps_den, config->sub_bitrate);
	}
	return 0;
}

/* ---- runtime state ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int signo)
{
	stop_signal = signo;
}

/* One encoding of the pictures, on its own video track. */
struct pc_rendition {
	const char *label;         /* "main" or "sub", in log lines */
	uint8_t track;
	uint8_t alternate_of;      /* the main rendition's track for the sub, else 0 */
	int width, height;
	struct pc_encoder_slot enc; /* its encoder, falling back down config->encoders */
	bool has_enc;
	struct pc_frame frame;     /* sub: the downscaled picture (main: the source's own) */
	/* What the device may change. */
	uint32_t bitrate;
	uint32_t viewers;          /* UINT32_MAX until the device says */
	bool force_idr;
	bool idle;                 /* pictures were skipped for want of viewers */
	bool idle_idr_asked;       /* a source's own sub stream, back from idle: its IDR was asked for */
	uint32_t seq;              /* frames sent on the track, from 0 for each run */
	uint64_t encoded, keyframes, skipped;
	int64_t scale_ns_total, encode_ns_total;
	/* The capture times of the last pictures given to the encoder: an AU that comes back late
	 * (pc_encoded's late) is stamped with its own picture's. */
	int64_t capture_ring[CAPTURE_RING];
	uint64_t pictures;
};

struct pc_capture {
	const struct pc_capture_config *config;

	const struct pc_source_ops *source_ops;
	void *source;
	/* rend[RENDITION_MAIN] always; rend[RENDITION_SUB] with --sub, fed by the scaler (or by the
	 * source itself: source_sub). */
	struct pc_rendition rend[MAX_RENDITIONS];
	int n_rend;
	struct pc_scaler scaler;

	/* Output: the device connection (-1 while disconnected) or the Annex-B file. Only the
	 * main thread opens and closes it; every send, and the close, hold send_lock so the
	 * audio thread's frames never interleave with a picture or hit a closed fd. */
	int fd;
	bool to_device;
	pthread_mutex_t send_lock;
	atomic_bool connected;     /* fd is set and its HELLOs went out */
	atomic_bool send_failed;   /* an audio send failed: the main thread reconnects */
	struct pc_ipc_reader reader;
	struct pc_ipc_backoff backoff;
	int64_t connected_at;      /* CLOCK_MONOTONIC */
	int64_t reconnect_at;      /* CLOCK_MONOTONIC, 0 = now */
	int connect_failures;      /* in the current streak */
	int last_connect_error;

	/* What the device may change (the rest is per rendition). */
	uint32_t fps_num, fps_den;

	/* The main rendition's picture size: --size, or a screen's own (which may change). */
	int width, height;
	int first_width, first_height; /* the first picture's: --sub is a fraction of it */

	/* Damage-driven sources: the last picture taken (the source's: valid until its next
	 * take()), and when it went out. */
	const struct pc_frame *picture;
	int64_t picture_ns;        /* its capture time, CLOCK_REALTIME */
	bool picture_sent;
	/* Of the last picture sent, per rendition (only a source's own sub stream has its own):
	 * kept increasing. */
	int64_t last_capture_ns[MAX_RENDITIONS];
	/* A source of encoded pictures (a camera's H.264): its access units are sent as they are,
	 * no encoder runs (rend[] keeps only tracks and counters). */
	bool passthrough;
	const uint8_t *au;         /* the last one taken: the source's, valid until its next take() */
	size_t au_size;
	bool au_keyframe;
	int au_rendition;          /* RENDITION_MAIN, or RENDITION_SUB from a source_sub source */
	/* The source encodes the sub rendition too (rkmpi with --sub): its access units come with
	 * the main one's, and no scaler or encoder runs for it. */
	bool source_sub;
	int64_t last_sent;         /* CLOCK_MONOTONIC */
	int64_t keepalive_ns;
	int refines_left;          /* repeats still due REFINE_MS apart after the last change */
	uint64_t new_pictures, repeats, resizes;
	double damaged_fraction;   /* summed over new pictures */

	/* Pacing, CLOCK_MONOTONIC. */
	int64_t period_ns;
	int64_t next_tick;
	uint64_t late_slots;       /* frame slots skipped since the last report */
	int64_t late_reported_at;

	/* Audio: tracks after video, 0 when absent. */
	struct pc_audio_in *audio_in;
	struct pc_audio_out *audio_out;
	uint8_t audio_in_track;
	uint8_t audio_out_track;
	uint32_t audio_viewers;
	uint64_t ignored;          /* messages for tracks or kinds that are not ours */

	uint32_t seq;              /* picture number, from 0 for each run */
	int64_t draw_ns_total;

	/* --motion: the detector (NULL without it, or once a source turned out to give encoded
	 * pictures), and the EVENTs sent on the current connection. */
	struct pc_motion *motion;
	uint32_t events_sent;
	uint64_t events;
};

static int64_t period_of(uint32_t fps_num, uint32_t fps_den)
{
	return (int64_t)fps_den * NS_PER_SEC / fps_num;
}

/* Sleeps until deadline (CLOCK_MONOTONIC); returns early on a stop signal. */
static void sleep_until(int64_t deadline)
{
	struct timespec ts = pc_ns_to_timespec(deadline);
	while (!stop_signal && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* ---- device connection ---- */

static void disconnect_device(struct pc_capture *cap)
{
	if (cap->fd < 0)
		return;
	pthread_mutex_lock(&cap->send_lock);
	atomic_store(&cap->connected, false);
	close(cap->fd);
	cap->fd = -1;
	pthread_mutex_unlock(&cap->send_lock);
	atomic_store(&cap->send_failed, false);

	int64_t now = pc_clock_ns(CLOCK_MONOTONIC);
	if (now - cap->connected_at >= HEALTHY_CONNECTION_NS)
		pc_ipc_backoff_reset(&cap->backoff);
	cap->reconnect_at = now + (int64_t)pc_ipc_backoff_next_ms(&cap->backoff) * NS_PER_MS;
}

static int send_video_hello(struct pc_capture *cap, int fd, const struct pc_rendition *r, uint8_t last)
{
	const struct pc_capture_config *config = cap->config;
	struct pc_ipc_hello hello = {
		.width = (uint16_t)r->width,
		.height = (uint16_t)r->height,
		.fps_num = (uint16_t)cap->fps_num,
		.fps_den = (uint16_t)cap->fps_den,
		.capabilities = PC_IPC_CAP_KEYFRAME | PC_IPC_CAP_BITRATE | PC_IPC_CAP_FPS |
				(cap->motion && r->alternate_of == 0 ? PC_IPC_CAP_EVENTS : 0),
		.bitrate = r->bitrate,
		.gop = config->gop,
		.name = config->name ? config->name : cap->source_ops->name,
		.alternate_of = r->alternate_of,
	};
	return pc_ipc_send_hello(fd, r->track, last == r->track ? PC_IPC_HELLO_FLAG_LAST : 0, &hello);
}

/* One HELLO per track in track order, LAST on the final one: video (1), audio in (2), the
 * sink (3, or 2 without audio in), the sub rendition (the next id). The main video's HELLO
 * comes before the sub's, which names it as the track it is an alternate of. */
static int send_hellos(struct pc_capture *cap, int fd)
{
	const struct pc_capture_config *config = cap->config;
	uint8_t last = cap->n_rend > 1 ? cap->rend[RENDITION_SUB].track
		       : cap->audio_out_track ? cap->audio_out_track
		       : cap->audio_in_track ? cap->audio_in_track
					     : TRACK_VIDEO;
	int err = send_video_hello(cap, fd, &cap->rend[RENDITION_MAIN], last);
	if (err == 0 && cap->audio_in_track) {
		struct pc_ipc_audio_hello audio = {
			.codec = PC_IPC_CODEC_OPUS,
			.channels = (uint8_t)config->audio_channels,
			.sample_rate = PC_OPUS_RATE,
			.capabilities = PC_IPC_CAP_BITRATE,
			.bitrate = pc_audio_in_bitrate(cap->audio_in),
			.frame_us = PC_OPUS_FRAME_US,
			.name = config->audio_in,
		};
		err = pc_ipc_send_audio_hello(fd, cap->audio_in_track,
					      last == cap->audio_in_track ? PC_IPC_HELLO_FLAG_LAST : 0,
					      &audio);
	}
	if (err == 0 && cap->audio_out_track) {
		/* What viewers send back: Opus mono 20 ms, whatever the device's channels. */
		struct pc_ipc_audio_hello sink = {
			.codec = PC_IPC_CODEC_OPUS,
			.channels = 1,
			.sample_rate = PC_OPUS_RATE,
			.frame_us = PC_OPUS_FRAME_US,
			.name = config->audio_out,
		};
		err = pc_ipc_send_audio_hello(fd, cap->audio_out_track,
					      PC_IPC_HELLO_FLAG_SINK |
						      (last == cap->audio_out_track ? PC_IPC_HELLO_FLAG_LAST : 0),
					      &sink);
	}
	if (err == 0 && cap->n_rend > 1)
		err = send_video_hello(cap, fd, &cap->rend[RENDITION_SUB], last);
	return err;
}

/* One attempt (after the backoff delay); 0 when connected and greeted. */
static int connect_device(struct pc_capture *cap)
{
	const char *path = cap->config->socket_path;

	if (cap->reconnect_at)
		sleep_until(cap->reconnect_at);
	if (stop_signal)
		return -1;

	int fd = pc_ipc_connect(path);
	if (fd < 0) {
		/* Report the first failure of a streak, and changes of reason, not every retry. */
		if (cap->connect_failures == 0 || -fd != cap->last_connect_error)
			pc_log("connect %s: %s; retrying with backoff", path, strerror(-fd));
		cap->connect_failures++;
		cap->last_connect_error = -fd;
		cap->reconnect_at = pc_clock_ns(CLOCK_MONOTONIC) +
				    (int64_t)pc_ipc_backoff_next_ms(&cap->backoff) * NS_PER_MS;
		return -1;
	}

	cap->connected_at = pc_clock_ns(CLOCK_MONOTONIC);
	cap->events_sent = 0;
	pc_ipc_reader_reset(&cap->reader);
	/* The HELLOs go out before the audio thread can see the fd: no FRAME precedes them. */
	int err = send_hellos(cap, fd);
	pthread_mutex_lock(&cap->send_lock);
	cap->fd = fd;
	atomic_store(&cap->connected, err == 0);
	pthread_mutex_unlock(&cap->send_lock);
	if (err < 0) {
		pc_log("send HELLO to %s: %s; reconnecting", path, strerror(-err));
		disconnect_device(cap);
		return -1;
	}
	if (cap->connect_failures > 0)
		pc_log("connected to %s after %d failed attempts", path, cap->connect_failures);
	else
		pc_log("connected to %s", path);
	cap->connect_failures = 0;
	cap->last_connect_error = 0;
	/* Whoever listens now has seen nothing yet: start with a picture it can decode. And
	 * what the last device said about viewers no longer holds: encode every rendition until
	 * this one says. */
	for (int i = 0; i < cap->n_rend; i++) {
		cap->rend[i].force_idr = true;
		cap->rend[i].viewers = UINT32_MAX;
	}
	cap->next_tick = pc_clock_ns(CLOCK_MONOTONIC);
	return 0;
}

/* ---- control messages ---- */

/* Messages we ignore are logged, but a device sending 50 talk-back frames a second to a
 * track we do not have must not flood the log: the first 10, then every 1000th. */
static bool log_ignored(struct pc_capture *cap)
{
	cap->ignored++;
	return cap->ignored <= 10 || cap->ignored % 1000 == 0;
}

/* The audio track's messages: BITRATE and VIEWERS apply, the rest are not for audio. */
static void apply_audio_in_control(struct pc_capture *cap, const struct pc_ipc_control *msg)
{
	uint32_t applied;

	switch (msg->hdr.type) {
	case PC_IPC_BITRATE:
		applied = pc_audio_in_set_bitrate(cap->audio_in, msg->u.bitrate);
		if (applied != msg->u.bitrate)
			pc_log("audio bitrate %u bit/s (%u requested: clamped to Opus's range)", applied,
			       msg->u.bitrate);
		else
			pc_log("audio bitrate %u bit/s", applied);
		break;
	case PC_IPC_VIEWERS:
		if (msg->u.viewers != cap->audio_viewers)
			pc_log("%u audio listener%s", msg->u.viewers, msg->u.viewers == 1 ? "" : "s");
		cap->audio_viewers = msg->u.viewers;
		break;
	default:
		if (log_ignored(cap))
			pc_log("ignoring a message of type 0x%02x for the audio track %u (%" PRIu64 " ignored so far)",
			       msg->hdr.type, msg->hdr.track, cap->ignored);
		break;
	}
}

/* The rendition on a track, or NULL. */
static struct pc_rendition *rendition_of(struct pc_capture *cap, uint8_t track)
{
	for (int i = 0; i < cap->n_rend; i++)
		if (cap->rend[i].track == track)
			return &cap->rend[i];
	return NULL;
}

/* FPS on any video track changes the capture rate, so every rendition's encoder: all of them
 * or none (a sub stream's lower level may refuse a rate the main one takes). */
static void apply_fps(struct pc_capture *cap, uint16_t num, uint16_t den)
{
	int err = 0, done = 0;
	if (cap->passthrough) {
		pc_log("FPS %u/%u ignored: the camera's own H.264 is passed through at its rate", num, den);
		return;
	}
	for (; done < cap->n_rend; done++) {
		err = pc_encoder_slot_set_fps(&cap->rend[done].enc, num, den);
		if (err < 0)
			break;
	}
	if (err < 0) {
		for (int i = 0; i < done; i++)
			pc_encoder_slot_set_fps(&cap->rend[i].enc, cap->fps_num, cap->fps_den);
		if (err == -ERANGE)
			pc_log("FPS %u/%u refused: beyond the H.264 level of the %s stream", num, den,
			       cap->rend[done].label);
		else
			pc_log("FPS %u/%u refused by the %s encoder: %s", num, den, cap->rend[done].label,
			       strerror(-err));
		return;
	}
	int64_t old_period = cap->period_ns;
	cap->fps_num = num;
	cap->fps_den = den;
	cap->period_ns = period_of(cap->fps_num, cap->fps_den);
	cap->next_tick += cap->period_ns - old_period;
	pc_log("frame rate %u/%u", cap->fps_num, cap->fps_den);
}

/* A video track's messages: KEYFRAME, BITRATE and VIEWERS for its rendition, FPS for all. */
static void apply_video_control(struct pc_capture *cap, struct pc_rendition *r,
				const struct pc_ipc_control *msg)
{
	int err;
	uint32_t applied;
	/* The main rendition's lines read as they always did; the sub's say so. */
	const char *what = r->alternate_of ? "sub " : "";

	switch (msg->hdr.type) {
	case PC_IPC_KEYFRAME:
		r->force_idr = true;
		break;
	case PC_IPC_BITRATE:
		if (cap->passthrough) {
			/* The camera encodes: it may take a bitrate (or keep its own, and say so once),
			 * each rendition's on its own encoder. */
			int (*set)(void *, uint32_t) = r->alternate_of ? cap->source_ops->set_bitrate_sub
								       : cap->source_ops->set_bitrate;
			err = set ? set(cap->source, msg->u.bitrate) : -ENOTSUP;
			if (err == 0) {
				pc_log("%sbitrate %u bit/s (asked of the camera)", what, msg->u.bitrate);
				r->bitrate = msg->u.bitrate;
			}
			break;
		}
		err = pc_encoder_slot_set_bitrate(&r->enc, msg->u.bitrate, &applied);
		if (err < 0)
			pc_log("%sBITRATE %u refused by the encoder: %s", what, msg->u.bitrate, strerror(-err));
		else if (applied != msg->u.bitrate)
			pc_log("%sbitrate %u bit/s (%u requested: clamped to the encoder's range for this H.264 level)",
			       what, applied, msg->u.bitrate);
		else
			pc_log("%sbitrate %u bit/s", what, applied);
		if (err == 0)
			r->bitrate = applied;
		break;
	case PC_IPC_FPS:
		apply_fps(cap, msg->u.fps.num, msg->u.fps.den);
		break;
	case PC_IPC_VIEWERS:
		if (msg->u.viewers != r->viewers)
			pc_log("%u %sviewer%s%s", msg->u.viewers, what, msg->u.viewers == 1 ? "" : "s",
			       r->alternate_of && msg->u.viewers == 0 ? ": not encoding the sub stream" : "");
		r->viewers = msg->u.viewers;
		break;
	}
}

static void apply_control(struct pc_capture *cap, const struct pc_ipc_control *msg)
{

	if (cap->audio_out_track && msg->hdr.track == cap->audio_out_track &&
	    msg->hdr.type == PC_IPC_SINK_FRAME) {
		pc_audio_out_push(cap->audio_out, msg->u.sink.data, msg->u.sink.size,
				  msg->hdr.flags & PC_IPC_SINK_FLAG_RESUME, pc_clock_ns(CLOCK_REALTIME));
		return;
	}
	if (cap->audio_in_track && msg->hdr.track == cap->audio_in_track) {
		apply_audio_in_control(cap, msg);
		return;
	}
	struct pc_rendition *r = rendition_of(cap, msg->hdr.track);
	if (!r || msg->hdr.type == PC_IPC_SINK_FRAME) {
		if (log_ignored(cap))
			pc_log("ignoring a message of type 0x%02x for track %u: not a track of ours, or not for its kind (%" PRIu64 " ignored so far)",
			       msg->hdr.type, msg->hdr.track, cap->ignored);
		return;
	}
	apply_video_control(cap, r, msg);
}

/* Reads and applies whatever the device sent. -1 when the connection has to go. */
static int handle_device_input(struct pc_capture *cap)
{
	for (;;) {
		long n = pc_ipc_reader_fill(&cap->reader, cap->fd);
		if (n == -EAGAIN)
			return 0;
		if (n == 0) {
			pc_log("the device closed the connection; reconnecting");
			return -1;
		}
		if (n < 0) {
			pc_log("read from the device: %s; reconnecting", strerror((int)-n));
			return -1;
		}

		struct pc_ipc_control msg;
		enum pc_ipc_status status;
		while ((status = pc_ipc_reader_next(&cap->reader, &msg)) != PC_IPC_AGAIN) {
			if (pc_ipc_status_is_fatal(status)) {
				pc_log("the device sent a bad message (%s); reconnecting",
				       pc_ipc_status_str(status));
				return -1;
			}
			if (status != PC_IPC_OK) {
				if (log_ignored(cap))
					pc_log("ignoring a message of type 0x%02x for track %u, %u payload bytes: %s",
					       msg.hdr.type, msg.hdr.track, msg.hdr.length,
					       pc_ipc_status_str(status));
				continue;
			}
			apply_control(cap, &msg);
		}
	}
}

/* Waits for the next tick, serving the device meanwhile. -1 when the connection dropped. */
static int wait_for_tick(struct pc_capture *cap)
{
	while (!stop_signal) {
		if (cap->to_device && atomic_load(&cap->send_failed))
			return -1; /* the audio thread lost the connection (and said why) */
		int64_t remaining = cap->next_tick - pc_clock_ns(CLOCK_MONOTONIC);
		if (remaining <= 0)
			return 0;
		if (cap->to_device && remaining >= NS_PER_MS) {
			/* poll() counts in whole milliseconds: round down, never past the tick. */
			struct pollfd pfd = {.fd = cap->fd, .events = POLLIN};
			int n = poll(&pfd, 1, (int)(remaining / NS_PER_MS));
			if (n < 0 && errno != EINTR) {
				pc_log("poll: %s", strerror(errno));
				return -1;
			}
			if (atomic_load(&cap->send_failed))
				return -1;
			if (n > 0 && handle_device_input(cap) < 0)
				return -1;
			continue;
		}
		/* The last stretch (or no device): sleep to the exact tick. */
		sleep_until(cap->next_tick);
	}
	return 0;
}

/* ---- one picture ---- */

static int write_all(int fd, const uint8_t *data, size_t size)
{
	while (size > 0) {
		ssize_t n = write(fd, data, size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		size -= (size_t)n;
	}
	return 0;
}

/* Encodes picture frame for rendition r and sends it (writes it, for the main one to a file).
 * -1 on a fatal error (the encoder failed, the output file failed). */
static int encode_and_send(struct pc_capture *cap, struct pc_rendition *r, const struct pc_frame *frame,
			   int64_t capture_ns)
{
	int64_t encode_start = pc_clock_ns(CLOCK_MONOTONIC);
	struct pc_encoded au;
	/* After pictures skipped for want of viewers, start again where a decoder can. */
	bool idr = r->force_idr || r->idle;
	if (cap->passthrough)
		au = (struct pc_encoded){.data = cap->au, .size = cap->au_size, .keyframe = cap->au_keyframe};
	else if (pc_encoder_slot_encode(&r->enc, frame, idr, &au) < 0) {
		/* The slot said why, and that no encoder was left to fall back to. */
		pc_log("encoding picture %u of the %s stream failed", cap->seq, r->label);
		return -1;
	}
	if (!cap->passthrough) {
		r->capture_ring[r->pictures % CAPTURE_RING] = capture_ns;
		if (au.late && au.late < CAPTURE_RING && au.late <= r->pictures)
			capture_ns = r->capture_ring[(r->pictures - au.late) % CAPTURE_RING];
		r->pictures++;
	}
	int64_t encoded_ns = pc_clock_ns(CLOCK_REALTIME);
	r->encode_ns_total += pc_clock_ns(CLOCK_MONOTONIC) - encode_start;
	r->encoded++;
	r->force_idr = false;
	r->idle = false;

	uint32_t seq = r->seq++;
	if (au.size == 0)
		return 0; /* held back by the encoder: nothing to send for this picture */
	if (au.keyframe)
		r->keyframes++;

	if (!cap->to_device) {
		int err = write_all(cap->fd, au.data, au.size);
		if (err < 0) {
			pc_log("write %s: %s", cap->config->annexb_out, strerror(-err));
			return -1;
		}
		return 0;
	}
	if (cap->fd < 0)
		return 0; /* the main rendition's send failed just now */
	if (atomic_load(&cap->send_failed)) {
		disconnect_device(cap); /* the audio thread already said why */
		return 0;
	}
	pthread_mutex_lock(&cap->send_lock);
	int err = pc_ipc_send_frame(cap->fd, r->track, seq, au.keyframe ? PC_IPC_FLAG_KEYFRAME : 0,
				    capture_ns, encoded_ns, au.data, au.size);
	pthread_mutex_unlock(&cap->send_lock);
	if (err < 0) {
		pc_log("send to the device: %s; reconnecting", strerror(-err));
		disconnect_device(cap);
	}
	return 0;
}

/* Whether rendition r is encoded with the next picture (the sub one is not without viewers,
 * nor while disconnected). */
static bool rendition_active(const struct pc_capture *cap, const struct pc_rendition *r)
{
	return r == &cap->rend[RENDITION_MAIN] || (r->viewers != 0 && !(cap->to_device && cap->fd < 0));
}

/* An access unit of a source's own sub stream (source_sub): sent on the sub track while someone
 * watches it, dropped while nobody does; back from that, its first one sent is an IDR (asked of
 * the source, the ones before it dropped), as an encoder's would be. */
static int send_source_sub(struct pc_capture *cap, int64_t capture_ns)
{
	if (cap->n_rend <= RENDITION_SUB)
		return 0; /* before the renditions start (the first picture is the main one's) */
	struct pc_rendition *r = &cap->rend[RENDITION_SUB];
	if (!rendition_active(cap, r)) {
		r->skipped++;
		r->idle = true;
		r->idle_idr_asked = false;
		return 0;
	}
	if (r->idle && !cap->au_keyframe) {
		r->skipped++;
		if (!r->idle_idr_asked && cap->source_ops->request_keyframe_sub)
			cap->source_ops->request_keyframe_sub(cap->source);
		r->idle_idr_asked = true;
		return 0;
	}
	return encode_and_send(cap, r, NULL, capture_ns);
}

/* One picture, encoded for each rendition, both stamped with its capture time. The main stream
 * goes out first: the sub one must not delay it. -1 on a fatal error. (A source that encodes
 * both hands out each rendition's access units apart: send_source_sub.) */
static int encode_picture(struct pc_capture *cap, const struct pc_frame *frame, int64_t capture_ns)
{
	if (cap->passthrough && cap->au_rendition != RENDITION_MAIN)
		return send_source_sub(cap, capture_ns);
	if (encode_and_send(cap, &cap->rend[RENDITION_MAIN], frame, capture_ns) < 0)
		return -1;

	for (int i = RENDITION_MAIN + 1; i < cap->n_rend && !cap->source_sub; i++) {
		struct pc_rendition *r = &cap->rend[i];
		if (!rendition_active(cap, r)) {
			/* Nobody watches it: save the CPU. The next one it encodes is an IDR. */
			r->skipped++;
			r->idle = true;
			continue;
		}
		int64_t scale_start = pc_clock_ns(CLOCK_MONOTONIC);
		pc_scaler_run(&cap->scaler, frame, &r->frame);
		r->scale_ns_total += pc_clock_ns(CLOCK_MONOTONIC) - scale_start;
		if (encode_and_send(cap, r, &r->frame, capture_ns) < 0)
			return -1;
	}
	cap->seq++;
	return 0;
}

/* ---- motion ---- */

static uint16_t share16(double v)
{
	if (!(v > 0))
		return 0;
	if (v >= 1)
		return PC_IPC_SHARE_ONE;
	return (uint16_t)(v * PC_IPC_SHARE_ONE + 0.5);
}

/* Logs an event's edge and sends it to the device (when connected: an edge that finds no
 * device is lost; the device ends the events a lost producer left open). */
static void send_motion_event(struct pc_capture *cap, const struct pc_motion_event *ev)
{
	struct pc_ipc_event msg = {
		.id = ev->id,
		.kind = PC_IPC_EVENT_KIND_MOTION,
		.end = ev->end,
		.score = share16(ev->score),
		.start_ns = ev->start_ns,
		.end_ns = ev->end_ns,
		.n_regions = (uint8_t)ev->n_regions,
	};
	_Static_assert(PC_MOTION_MAX_REGIONS <= PC_IPC_EVENT_MAX_REGIONS, "a detector's regions fit an EVENT");
	for (int i = 0; i < ev->n_regions && i < PC_MOTION_MAX_REGIONS; i++) {
		/* Rounded ends, so that x + w stays within the picture. */
		uint16_t x0 = share16(ev->regions[i].x), y0 = share16(ev->regions[i].y);
		uint16_t x1 = share16(ev->regions[i].x + ev->regions[i].w), y1 = share16(ev->regions[i].y + ev->regions[i].h);
		msg.regions[i].x = x0;
		msg.regions[i].y = y0;
		msg.regions[i].w = (uint16_t)(x1 - x0);
		msg.regions[i].h = (uint16_t)(y1 - y0);
	}
	if (ev->end)
		pc_log("motion event %u ended after %.1f s (score %.2f, %d region%s)", ev->id,
		       (double)(ev->end_ns - ev->start_ns) / 1e9, ev->score, ev->n_regions, ev->n_regions == 1 ? "" : "s");
	else
		pc_log("motion event %u started (score %.2f)", ev->id, ev->score);
	cap->events++;
	if (!cap->to_device || cap->fd < 0 || !atomic_load(&cap->connected))
		return;
	pthread_mutex_lock(&cap->send_lock);
	int err = pc_ipc_send_event(cap->fd, TRACK_VIDEO, cap->events_sent++, &msg);
	pthread_mutex_unlock(&cap->send_lock);
	if (err < 0) {
		pc_log("send EVENT to the device: %s; reconnecting", strerror(-err));
		disconnect_device(cap);
	}
}

/* Offers a new picture to the motion detector (before it is encoded). */
static void analyse_picture(struct pc_capture *cap, const struct pc_frame *frame, int64_t capture_ns)
{
	struct pc_motion_event ev;
	if (cap->motion && pc_motion_feed(cap->motion, frame, capture_ns, &ev))
		send_motion_event(cap, &ev);
}

/* One picture of a fixed-tick source: drawn now, then encoded. -1 on a fatal error. */
static int capture_and_send(struct pc_capture *cap)
{
	int64_t capture_ns = pc_clock_ns(CLOCK_REALTIME);
	int64_t draw_start = pc_clock_ns(CLOCK_MONOTONIC);
	const struct pc_frame *frame = cap->source_ops->next_frame(cap->source, cap->seq, capture_ns);
	if (!frame) {
		pc_log("the %s source gave no picture", cap->source_ops->name);
		return -1;
	}
	cap->draw_ns_total += pc_clock_ns(CLOCK_MONOTONIC) - draw_start;
	analyse_picture(cap, frame, capture_ns);
	return encode_picture(cap, frame, capture_ns);
}

/* Schedules the next tick; when more than a frame late, drops the missed slots rather than
 * catching up with a burst of stale pictures. */
static void advance_tick(struct pc_capture *cap)
{
	int64_t now = pc_clock_ns(CLOCK_MONOTONIC);
	cap->next_tick += cap->period_ns;
	if (now - cap->next_tick > cap->period_ns) {
		cap->late_slots += (uint64_t)((now - cap->next_tick) / cap->period_ns);
		cap->next_tick = now;
	}
	if (cap->late_slots && now - cap->late_reported_at >= LATE_REPORT_INTERVAL_NS) {
		pc_log("running late: skipped %" PRIu64 " frame slots", cap->late_slots);
		cap->late_slots = 0;
		cap->late_reported_at = now;
	}
}

static int run(struct pc_capture *cap)
{
	cap->next_tick = pc_clock_ns(CLOCK_MONOTONIC);
	while (!stop_signal) {
		if (cap->to_device && cap->fd < 0 && connect_device(cap) < 0)
			continue; /* nothing is encoded while nobody listens */
		if (wait_for_tick(cap) < 0) {
			disconnect_device(cap);
			continue;
		}
		if (stop_signal)
			break;
		if (capture_and_send(cap) < 0)
			return -1;
		if (cap->config->frames && cap->seq >= cap->config->frames)
			break;
		advance_tick(cap);
	}
	return 0;
}

/* ---- damage-driven sources ---- */

static int restart_renditions(struct pc_capture *cap, int width, int height);

/* Takes the source's newest picture if it has one (a new size re-creates the encoders): 1 when
 * it did, 0 when nothing changed, -1 when the source failed (it said why) or the encoders
 * cannot take the new size. */
static int take_picture(struct pc_capture *cap)
{
	struct pc_source_picture pic = {0}; /* sources that predate au leave it alone */
	char err[256] = "";
	int64_t start = pc_clock_ns(CLOCK_MONOTONIC);
	int ret = cap->source_ops->take(cap->source, &pic, err, sizeof(err));
	if (ret < 0) {
		pc_log("%s", err);
		return -1;
	}
	if (ret == 0)
		return 0;
	cap->draw_ns_total += pc_clock_ns(CLOCK_MONOTONIC) - start;
	if (pic.au) {
		if (cap->motion) {
			pc_log("motion events are not available: the %s source gives encoded pictures (passed through, not decoded); --motion ignored",
			       cap->source_ops->name);
			pc_motion_destroy(cap->motion);
			cap->motion = NULL;
		}
		cap->passthrough = true;
		cap->au = pic.au;
		cap->au_size = pic.au_size;
		cap->au_keyframe = pic.keyframe;
		cap->au_rendition = pic.rendition == RENDITION_SUB && cap->source_sub ? RENDITION_SUB : RENDITION_MAIN;
	}
	if (pic.au && cap->au_rendition != RENDITION_MAIN) {
		/* The source's own sub stream: its size is its own, the main picture's stays. */
	} else if (cap->n_rend == 0 || cap->passthrough) {
		cap->width = pic.frame->width;
		cap->height = pic.frame->height;
	} else if (pic.frame->width != cap->width || pic.frame->height != cap->height) {
		pc_log("%s: the picture is now %dx%d (was %dx%d): new encoders, starting with an IDR",
		       cap->source_ops->name, pic.frame->width, pic.frame->height, cap->width, cap->height);
		if (restart_renditions(cap, pic.frame->width, pic.frame->height) < 0)
			return -1;
		cap->resizes++;
	}
	cap->picture = pic.frame;
	cap->picture_ns = pic.capture_ns;
	cap->picture_sent = false;
	if (!cap->passthrough)
		analyse_picture(cap, pic.frame, pic.capture_ns);
	cap->new_pictures++;
	cap->damaged_fraction += (double)pic.damage.w * pic.damage.h /
				 ((double)pic.frame->width * pic.frame->height);
	return 1;
}

/* Encodes the last picture taken: a new one stamped with its capture time, a repeat (keep-alive,
 * keyframe request) with the time now, when the screen still showed it. */
static int send_last_picture(struct pc_capture *cap)
{
	int64_t capture_ns = cap->picture_sent ? pc_clock_ns(CLOCK_REALTIME) : cap->picture_ns;
	/* A source's own sub stream keeps its own order: its pictures are the main one's, taken
	 * through another encoder, and may come a little before or after them. */
	int64_t *last = &cap->last_capture_ns[cap->passthrough ? cap->au_rendition : RENDITION_MAIN];
	if (capture_ns <= *last)
		capture_ns = *last + 1;
	if (cap->picture_sent) {
		cap->repeats++;
		if (cap->refines_left > 0)
			cap->refines_left--;
	} else {
		cap->refines_left = REFINES;
	}
	cap->picture_sent = true;
	*last = capture_ns;
	cap->last_sent = pc_clock_ns(CLOCK_MONOTONIC);
	return encode_picture(cap, cap->picture, capture_ns);
}

/* A rendition that will be encoded wants an IDR (the device asked, or it just connected). A
 * camera that encodes is asked for one instead (when it can be): its next access units go out as
 * they come. */
static bool idr_wanted(struct pc_capture *cap)
{
	if (cap->passthrough) {
		for (int i = 0; i < cap->n_rend; i++) {
			if (!cap->rend[i].force_idr)
				continue;
			cap->rend[i].force_idr = false;
			/* Each rendition's own encoder (a source's sub stream has one of its own). */
			int (*request)(void *) = i == RENDITION_SUB ? cap->source_ops->request_keyframe_sub
								    : cap->source_ops->request_keyframe;
			if (request)
				request(cap->source);
		}
		return false;
	}
	for (int i = 0; i < cap->n_rend; i++)
		if (cap->rend[i].force_idr && rendition_active(cap, &cap->rend[i]))
			return true;
	return false;
}

/* The first picture, which sets the size the encoders start at. 0, or -1 (said why). */
static int wait_first_picture(struct pc_capture *cap)
{
	int fd = cap->source_ops->wait_fd(cap->source);
	int64_t deadline = pc_clock_ns(CLOCK_MONOTONIC) + FIRST_PICTURE_TIMEOUT_MS * NS_PER_MS;
	while (!stop_signal) {
		int ret = take_picture(cap);
		if (ret != 0)
			return ret > 0 ? 0 : -1;
		int64_t remaining = deadline - pc_clock_ns(CLOCK_MONOTONIC);
		if (remaining <= 0) {
			pc_log("%s: no picture within %d ms", cap->source_ops->name, FIRST_PICTURE_TIMEOUT_MS);
			return -1;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)((remaining + NS_PER_MS - 1) / NS_PER_MS)) < 0 && errno != EINTR) {
			pc_log("poll: %s", strerror(errno));
			return -1;
		}
	}
	return -1;
}

/* Milliseconds for poll() until deadline (CLOCK_MONOTONIC), rounded up: never early, so the
 * loop does not spin through the last fraction of a millisecond. */
static int poll_timeout(int64_t deadline, int64_t now)
{
	if (deadline <= now)
		return 0;
	int64_t ms = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The loop for a source that says when it has a new picture. Per turn, the first that holds:
 * - a rendition wants an IDR: the newest picture goes out at once (keyframes wait for nothing);
 * - a picture not sent yet (the first) and the frame interval is over: it goes out;
 * - the frame interval is over: wait for the source (its next picture goes out as soon as it
 *   comes), the device, or the keep-alive, whichever is first;
 * - else wait for the device until the interval is over; pictures the source makes meanwhile
 *   are coalesced there, and only the newest is taken.
 * Nothing is encoded while the screen is still, but the keep-alive. */
static int run_damage_driven(struct pc_capture *cap)
{
	int source_fd = cap->source_ops->wait_fd(cap->source);
	while (!stop_signal) {
		/* A still screen gives no pictures: the detector counts the time without any as still
		 * (the loop turns at least every keep-alive), so an event ends after its hold. */
		struct pc_motion_event ev;
		if (cap->motion && pc_motion_idle(cap->motion, pc_clock_ns(CLOCK_REALTIME), &ev))
			send_motion_event(cap, &ev);
		if (cap->to_device && cap->fd < 0 && connect_device(cap) < 0)
			continue; /* nothing is encoded while nobody listens */
		if (cap->to_device && atomic_load(&cap->send_failed)) {
			disconnect_device(cap); /* the audio thread said why */
			continue;
		}
		int64_t now = pc_clock_ns(CLOCK_MONOTONIC);
		/* Every access unit of a camera's own H.264 goes out as it comes: none may wait (its
		 * buffers would fill and the driver drop some) or be coalesced. */
		int64_t next_allowed = cap->passthrough ? 0 : cap->last_sent + cap->period_ns;
		/* A change is followed by REFINES repeats of its picture, REFINE_MS apart: a large
		 * change (a new window) may have been encoded coarsely within its budget, and the
		 * repeats bring it to full quality while the screen is still. Then the keep-alive. */
		int64_t quiet_ns = cap->keepalive_ns;
		if (cap->refines_left > 0 && REFINE_MS * NS_PER_MS < quiet_ns)
			quiet_ns = REFINE_MS * NS_PER_MS;
		int64_t keepalive_at = cap->last_sent + quiet_ns;
		if (keepalive_at < next_allowed)
			keepalive_at = next_allowed;

		bool send = false;
		if (idr_wanted(cap)) {
			if (take_picture(cap) < 0)
				return -1;
			send = true;
		} else if (!cap->picture_sent && now >= next_allowed) {
			send = true;
		} else {
			bool watch_source = now >= next_allowed;
			struct pollfd pfd[2];
			int n_fds = 0, device_i = -1, source_i = -1;
			if (cap->to_device) {
				device_i = n_fds;
				pfd[n_fds++] = (struct pollfd){.fd = cap->fd, .events = POLLIN};
			}
			if (watch_source) {
				source_i = n_fds;
				pfd[n_fds++] = (struct pollfd){.fd = source_fd, .events = POLLIN};
			}
			int n = poll(pfd, (nfds_t)n_fds, poll_timeout(watch_source ? keepalive_at : next_allowed, now));
			if (n < 0 && errno != EINTR) {
				pc_log("poll: %s", strerror(errno));
				return -1;
			}
			if (n > 0 && device_i >= 0 && pfd[device_i].revents && handle_device_input(cap) < 0) {
				disconnect_device(cap);
				continue;
			}
			if (n > 0 && source_i >= 0 && pfd[source_i].revents) {
				int ret = take_picture(cap);
				if (ret < 0)
					return -1;
				send = ret > 0;
			}
			/* The keep-alive: the same picture again (never an access unit: a decoder takes
			 * each one once). */
			if (!send && watch_source && !cap->passthrough && pc_clock_ns(CLOCK_MONOTONIC) >= keepalive_at)
				send = true;
		}
		if (!send || stop_signal)
			continue;
		if (send_last_picture(cap) < 0)
			return -1;
		if (cap->config->frames && cap->seq >= cap->config->frames)
			break;
	}
	return 0;
}

/* ---- the audio threads' way to the device ---- */

static bool link_connected(void *ctx)
{
	struct pc_capture *cap = ctx;
	return atomic_load(&cap->connected);
}

static void link_send_frame(void *ctx, uint8_t track, uint32_t seq, int64_t capture_ns,
			    int64_t encoded_ns, const uint8_t *data, size_t size)
{
	struct pc_capture *cap = ctx;
	pthread_mutex_lock(&cap->send_lock);
	if (!atomic_load(&cap->connected) || cap->fd < 0) {
		pthread_mutex_unlock(&cap->send_lock);
		return;
	}
	int err = pc_ipc_send_frame(cap->fd, track, seq, 0, capture_ns, encoded_ns, data, size);
	if (err < 0) {
		/* The main thread owns the connection: stop sending on it, wake its poll()
		 * (shutdown makes the fd readable), and let it reconnect. */
		atomic_store(&cap->connected, false);
		atomic_store(&cap->send_failed, true);
		shutdown(cap->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&cap->send_lock);
	if (err < 0)
		pc_log("send audio to the device: %s; reconnecting", strerror(-err));
}

static int start_audio(struct pc_capture *cap, char *err, size_t err_size)
{
	const struct pc_capture_config *config = cap->config;
	uint8_t next_track = TRACK_VIDEO + 1;
	int ret;

	if (config->audio_in) {
		bool tone = strcmp(config->audio_in, "testtone") == 0;
		struct pc_audio_in_config in = {
			.ops = tone ? &pc_testtone_source : &pc_alsa_source,
			.device = tone ? NULL : config->audio_in,
			.label = config->audio_in,
			.channels = config->audio_channels,
			.bitrate = config->audio_bitrate,
			.track = next_track,
		};
		struct pc_audio_link link = {
			.ctx = cap,
			.connected = link_connected,
			.send_frame = link_send_frame,
		};
		ret = pc_audio_in_start(&cap->audio_in, &in, &link, err, err_size);
		if (ret < 0)
			return ret;
		cap->audio_in_track = next_track++;
		pc_log("audio in: %s, Opus %d channel%s at %u bit/s, 20 ms frames -> track %u",
		       config->audio_in, config->audio_channels, config->audio_channels == 1 ? "" : "s",
		       config->audio_bitrate, cap->audio_in_track);
	}
	if (config->audio_out) {
		ret = pc_audio_out_start(&cap->audio_out, config->audio_out, err, err_size);
		if (ret < 0)
			return ret;
		cap->audio_out_track = next_track;
		pc_log("audio out: talk-back (sink track %u) on %s", cap->audio_out_track,
		       config->audio_out);
	}
	return 0;
}

/* ---- setup and teardown ---- */

static void stop_renditions(struct pc_capture *cap)
{
	for (int i = 0; i < MAX_RENDITIONS; i++) {
		struct pc_rendition *r = &cap->rend[i];
		if (r->has_enc)
			pc_encoder_slot_destroy(&r->enc);
		r->has_enc = false;
		if (i != RENDITION_MAIN)
			pc_frame_free(&r->frame);
	}
	pc_scaler_destroy(&cap->scaler);
	cap->n_rend = 0;
}

static int even_at_least(int64_t v, int min)
{
	int e = (int)(v & ~(int64_t)1);
	return e < min ? min : e;
}

/* The sub rendition's size for a main picture of cap->width x cap->height: --sub's share of the
 * first picture, per side, so it keeps its place when a screen changes size (even, at least
 * MIN_SIDE). */
static void sub_size(const struct pc_capture *cap, int *width, int *height)
{
	const struct pc_capture_config *config = cap->config;
	if (cap->width == cap->first_width && cap->height == cap->first_height) {
		*width = config->sub_width;
		*height = config->sub_height;
		return;
	}
	*width = even_at_least((int64_t)config->sub_width * cap->width / cap->first_width, MIN_SIDE);
	*height = even_at_least((int64_t)config->sub_height * cap->height / cap->first_height, MIN_SIDE);
}

/* The main rendition's encoder at cap->width x cap->height, and with --sub (to a device) the
 * sub one's, its scaler and its picture. carry, when not NULL, holds the renditions these
 * replace (a new picture size): their tracks, sequence numbers, what the device set (bitrate,
 * viewers) and counters go on. 0, or a negative errno with err set. */
static int start_renditions(struct pc_capture *cap, const struct pc_rendition *carry, int n_carry, char *err,
			    size_t err_size)
{
	const struct pc_capture_config *config = cap->config;
	bool sub = config->sub_width && cap->to_device;
	int ret;

	if (config->sub_width && !cap->to_device && !carry)
		pc_log("note: --annexb-out carries one stream: --sub is ignored");
	for (int i = 0; i < (sub ? 2 : 1); i++) {
		struct pc_rendition *r = &cap->rend[i];
		bool is_sub = i == RENDITION_SUB;
		*r = (struct pc_rendition){
			.label = is_sub ? "sub" : "main",
			.track = TRACK_VIDEO, /* the sub's is set once the audio tracks have theirs */
			.alternate_of = is_sub ? TRACK_VIDEO : 0,
			.width = cap->width,
			.height = cap->height,
			.bitrate = is_sub ? config->sub_bitrate : config->bitrate,
			.viewers = UINT32_MAX, /* unknown until the device says */
		};
		if (is_sub)
			sub_size(cap, &r->width, &r->height);
		if (carry && i < n_carry) {
			const struct pc_rendition *c = &carry[i];
			r->track = c->track;
			r->bitrate = c->bitrate;
			r->viewers = c->viewers;
			r->idle = c->idle;
			r->seq = c->seq;
			r->encoded = c->encoded;
			r->keyframes = c->keyframes;
			r->skipped = c->skipped;
			r->scale_ns_total = c->scale_ns_total;
			r->encode_ns_total = c->encode_ns_total;
		}
		/* Same profile, GOP, preset and threads; the level is found for its own size. */
		struct pc_encoder_config encoder_config = {
			.width = r->width,
			.height = r->height,
			.fps_num = cap->fps_num,
			.fps_den = cap->fps_den,
			.bitrate = r->bitrate,
			.gop = config->gop,
			.preset = config->preset,
			.threads = config->threads,
			/* The sub stream serves slow paths: no periodic keyframe bursts. */
			.intra_refresh = is_sub,
			/* A screen's pictures come in bursts after still moments; a camera's come
			 * steadily and keep the ordinary few-pictures VBV. */
			.screen = cap->source_ops->wait_fd != NULL && strcmp(cap->source_ops->name, "v4l2") != 0,
		};
		if (cap->passthrough) {
			/* The camera encodes, its sub stream too when it makes one (source_sub): nothing
			 * to scale or encode here, the renditions keep tracks and counters. */
			cap->n_rend = i + 1;
			if (!cap->source_sub)
				break;
			continue;
		}
		ret = pc_encoder_slot_init(&r->enc, &config->encoders, r->label, &encoder_config, err, err_size);
		if (ret < 0)
			goto error;
		r->has_enc = true;
		if (!carry || i >= n_carry || strcmp(pc_encoder_slot_name(&r->enc), pc_encoder_slot_name(&carry[i].enc)) != 0)
			pc_log("%s stream: encoded by %s", r->label, pc_encoder_slot_name(&r->enc));
		cap->n_rend = i + 1;
		if (!is_sub)
			continue;
		if (pc_frame_alloc(&r->frame, r->width, r->height) < 0 ||
		    pc_scaler_init(&cap->scaler, cap->width, cap->height, r->width, r->height) < 0) {
			ret = -ENOMEM;
			snprintf(err, err_size, "out of memory for the %dx%d sub stream", r->width, r->height);
			goto error;
		}
	}
	return 0;

error:
	stop_renditions(cap);
	return ret;
}

/* New encoders for pictures of width x height (a screen changed its mode): each starts with an
 * IDR carrying the new SPS, from which the device learns the size. -1 when they cannot. */
static int restart_renditions(struct pc_capture *cap, int width, int height)
{
	struct pc_rendition old[MAX_RENDITIONS];
	int n_old = cap->n_rend;
	char err[256] = "";

	memcpy(old, cap->rend, sizeof(old));
	stop_renditions(cap); /* old keeps only what carries over: no pointers are used */
	cap->width = width;
	cap->height = height;
	if (start_renditions(cap, old, n_old, err, sizeof(err)) < 0) {
		pc_log("%dx%d: %s", width, height, err);
		return -1;
	}
	if (cap->n_rend > 1)
		pc_log("sub stream now %dx%d", cap->rend[RENDITION_SUB].width, cap->rend[RENDITION_SUB].height);
	return 0;
}

static int install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: poll() and the sleeps must return so the loop sees the flag. */
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	/* A vanished device must be an EPIPE, never a kill (MSG_NOSIGNAL covers the socket;
	 * this covers --annexb-out into a pipe). */
	struct sigaction ignore = {.sa_handler = SIG_IGN};
	sigemptyset(&ignore.sa_mask);
	return sigaction(SIGPIPE, &ignore, NULL);
}

static int open_annexb_out(const char *path)
{
	if (strcmp(path, "-") == 0)
		return STDOUT_FILENO;
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

int main(int argc, char **argv)
{
	struct pc_capture_config config;
	struct pc_capture cap = {.fd = -1};
	char err[256] = "";
	int exit_code = EXIT_FAILURE;
	bool screen = false; /* a damage-driven source */
	int ret;

#if PC_HAVE_TRANSCODE
	/* A program of its own (transcode.h): the device's AAC -> Opus child for RTSP cameras. */
	if (argc > 1 && strcmp(argv[1], "--transcode") == 0)
		return pc_transcode_main(argc, argv);
#endif
	ret = parse_args(argc, argv, &config);
	if (ret != 0)
		return ret > 0 ? EXIT_SUCCESS : EXIT_USAGE;

	cap.config = &config;
	cap.fps_num = config.fps_num;
	cap.fps_den = config.fps_den;
	cap.period_ns = period_of(config.fps_num, config.fps_den);
	cap.to_device = config.socket_path != NULL;
	cap.audio_viewers = UINT32_MAX;
	pthread_mutex_init(&cap.send_lock, NULL);
	atomic_init(&cap.connected, false);
	atomic_init(&cap.send_failed, false);
	pc_ipc_backoff_init(&cap.backoff, (uint32_t)getpid() ^ (uint32_t)pc_clock_ns(CLOCK_REALTIME));

	if (install_signals() < 0) {
		pc_log("sigaction: %s", strerror(errno));
		goto out;
	}

	cap.source_ops = find_source(config.source);
	screen = damage_driven(cap.source_ops);
	struct pc_source_config source_config = {
		/* A screen comes at its own size unless --size says otherwise. */
		.width = screen && !config.size_set ? 0 : config.width,
		.height = screen && !config.size_set ? 0 : config.height,
		.fps_num = config.fps_num,
		.fps_den = config.fps_den,
		.pattern = config.pattern,
	};
#if PC_HAVE_WAYLAND
	if (cap.source_ops == &pc_wayland_source) {
		struct pc_wayland_options options = {.output = config.output, .cursor = config.cursor};
		ret = pc_wayland_init(&cap.source, &source_config, &options, err, sizeof(err));
	} else
#endif
#if PC_HAVE_PIPEWIRE
	if (cap.source_ops == &pc_pipewire_source) {
		struct pc_pipewire_options options = {
			.fd = config.pipewire_fd,
			.node = config.pipewire_node,
			.cursor = config.cursor,
		};
		ret = pc_pipewire_init(&cap.source, &source_config, &options, err, sizeof(err));
	} else
#endif
#if PC_HAVE_V4L2
	if (cap.source_ops == &pc_v4l2_source) {
		struct pc_v4l2_options options = {.device = config.device};
		if (config.v4l2_format)
			pc_v4l2_format_parse(config.v4l2_format, &options.format);
		ret = pc_v4l2_init(&cap.source, &source_config, &options, err, sizeof(err));
	} else
#endif
#if PC_HAVE_RKMPI
	if (cap.source_ops == &pc_rkmpi_vi_source) {
		/* The ISP scales to exactly the asked size (--size or its default): no size of its own
		 * to wait for. */
		struct pc_source_config sized = source_config;
		sized.width = config.width;
		sized.height = config.height;
		/* The sub rendition is the camera's too: a second VENC channel on the ISP's self path. */
		struct pc_rkmpi_vi_options options = {
			.iq_dir = config.iq_dir,
			.sensor_fps = config.sensor_fps,
			.bitrate = config.bitrate,
			.gop = config.gop,
			.sub_width = cap.to_device ? config.sub_width : 0,
			.sub_height = cap.to_device ? config.sub_height : 0,
			.sub_bitrate = config.sub_bitrate,
		};
		cap.source_sub = options.sub_width != 0;
		ret = pc_rkmpi_vi_init(&cap.source, &sized, &options, err, sizeof(err));
	} else
#endif
	{
		ret = cap.source_ops->init(&cap.source, &source_config, err, sizeof(err));
	}
	if (ret < 0) {
		pc_log("%s", err);
		exit_code = ret == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
		goto out;
	}
	if (config.object_on_ns)
		pc_testpattern_set_object(cap.source, config.object_on_ns, config.object_off_ns);
	if (config.motion) {
		ret = pc_motion_init(&cap.motion, &config.motion_config);
		if (ret < 0) {
			pc_log("motion detector: %s", strerror(-ret));
			goto out;
		}
		pc_log("motion: sensitivity %d, %u pictures a second analysed, events after %.2f s of motion, ended after %.2f s without, %d mask%s",
		       config.motion_config.sensitivity, config.motion_config.fps,
		       (double)config.motion_config.min_duration_ns / 1e9, (double)config.motion_config.hold_ns / 1e9,
		       config.motion_config.n_masks, config.motion_config.n_masks == 1 ? "" : "s");
	}
	cap.width = config.width;
	cap.height = config.height;
	cap.keepalive_ns = (int64_t)config.keepalive_ms * NS_PER_MS;
	if (screen) {
		/* Its first picture says the size to start at. */
		if (wait_first_picture(&cap) < 0)
			goto out;
		if (!pc_h264_level_find(cap.width, cap.height, config.fps_num, config.fps_den, config.bitrate)) {
			pc_log("%s: %dx%d at %u/%u fps and %u bit/s is beyond H.264 level 5.2 (--size WxH scales it down)",
			       config.source, cap.width, cap.height, config.fps_num, config.fps_den, config.bitrate);
			goto out;
		}
		if (config.sub_width && cap.passthrough && !cap.source_sub) {
			pc_log("--sub: the camera's H.264 is passed through, not decoded: no sub stream from it (--v4l2-format nv12, yuyv or mjpeg)");
			exit_code = EXIT_USAGE;
			goto out;
		}
		if (config.sub_width && (config.sub_width > cap.width || config.sub_height > cap.height ||
					 (config.sub_width == cap.width && config.sub_height == cap.height))) {
			pc_log("--sub %dx%d: must be smaller than the picture (%dx%d)", config.sub_width,
			       config.sub_height, cap.width, cap.height);
			exit_code = EXIT_USAGE;
			goto out;
		}
		/* The first picture may go out at once. */
		cap.last_sent = pc_clock_ns(CLOCK_MONOTONIC) - cap.period_ns;
	}
	cap.first_width = cap.width;
	cap.first_height = cap.height;

	ret = start_renditions(&cap, NULL, 0, err, sizeof(err));
	if (ret < 0) {
		pc_log("%s", err);
		exit_code = ret == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
		goto out;
	}
	if (!screen && config.width < 64 * pc_timestrip_block_size(config.width))
		pc_log("note: %d pixels is narrower than the time strip (%d): its last blocks are cut off",
		       config.width, 64 * pc_timestrip_block_size(config.width));

	if (!cap.to_device) {
		cap.fd = open_annexb_out(config.annexb_out);
		if (cap.fd < 0) {
			pc_log("open %s: %s", config.annexb_out, strerror(errno));
			goto out;
		}
	}

	if (screen)
		pc_log("%s %dx%d (%s) at most %u/%u fps, keep-alive every %u ms, %u bit/s, GOP %u, preset %s -> %s",
		       config.source, cap.width, cap.height, config.size_set ? "fitted into --size" : "its own size",
		       config.fps_num, config.fps_den, config.keepalive_ms, config.bitrate, config.gop, config.preset,
		       cap.to_device ? config.socket_path : config.annexb_out);
	else
		pc_log("%s (%s) %dx%d at %u/%u fps, %u bit/s, GOP %u, preset %s -> %s", config.source,
		       config.pattern, config.width, config.height, config.fps_num, config.fps_den, config.bitrate,
		       config.gop, config.preset, cap.to_device ? config.socket_path : config.annexb_out);

	if (!cap.to_device && (config.audio_in || config.audio_out)) {
		pc_log("note: --annexb-out carries video only: the audio options are ignored");
	} else if (cap.to_device) {
		ret = start_audio(&cap, err, sizeof(err));
		if (ret < 0) {
			pc_log("%s", err);
			goto out;
		}
	}
	if (cap.n_rend > 1) {
		/* The next free id, after the audio tracks: theirs stay what they were. */
		struct pc_rendition *sub = &cap.rend[RENDITION_SUB];
		sub->track = (uint8_t)((cap.audio_out_track ? cap.audio_out_track
					: cap.audio_in_track ? cap.audio_in_track
							     : TRACK_VIDEO) + 1);
		pc_log("sub stream: %dx%d (%s from %dx%d) at %u bit/s -> track %u, an alternate of track %u",
		       sub->width, sub->height,
		       cap.source_sub ? "the source's own encoding" : cap.scaler.plane[0].box ? "2x2 box" : "bilinear",
		       cap.width, cap.height, sub->bitrate, sub->track, sub->alternate_of);
	}

	if ((screen ? run_damage_driven(&cap) : run(&cap)) < 0)
		goto out;
	exit_code = EXIT_SUCCESS;

out:
	/* Audio stops first: after the BYE nothing else may go out. */
	pc_audio_in_stop(cap.audio_in);
	pc_audio_out_stop(cap.audio_out);
	if (cap.motion) {
		struct pc_motion_event ev;
		if (pc_motion_flush(cap.motion, &ev))
			send_motion_event(&cap, &ev);
		uint64_t n = pc_motion_analysed(cap.motion);
		pc_log("motion: %" PRIu64 " pictures analysed, %.3f ms each on average, %" PRIu64 " event edges",
		       n, n ? (double)pc_motion_busy_ns(cap.motion) / (double)n / 1e6 : 0.0, cap.events);
	}
	if (cap.fd >= 0 && cap.to_device) {
		ret = pc_ipc_send_bye(cap.fd, cap.seq);
		if (ret < 0)
			pc_log("send BYE: %s", strerror(-ret));
	}
	if (cap.fd >= 0 && cap.fd != STDOUT_FILENO && close(cap.fd) < 0 && !cap.to_device) {
		pc_log("close %s: %s", config.annexb_out, strerror(errno));
		exit_code = EXIT_FAILURE;
	}
	if (cap.seq > 0 && screen)
		pc_log("%s: %" PRIu64 " new pictures (%.1f%% of the pixels changed on average, converted in %.2f ms), %" PRIu64 " sent again (keep-alive, keyframe request), %" PRIu64 " size changes",
		       config.source, cap.new_pictures,
		       cap.new_pictures ? 100.0 * cap.damaged_fraction / (double)cap.new_pictures : 0.0,
		       cap.new_pictures ? (double)cap.draw_ns_total / (double)cap.new_pictures / 1e6 : 0.0, cap.repeats,
		       cap.resizes);
	if (cap.seq > 0)
		pc_log("stopped%s after %u pictures (%" PRIu64 " keyframes), draw %.2f ms and encode %.2f ms per picture on average",
		       stop_signal ? " by signal" : "", cap.seq, cap.rend[RENDITION_MAIN].keyframes,
		       (double)cap.draw_ns_total / cap.seq / 1e6,
		       (double)cap.rend[RENDITION_MAIN].encode_ns_total / cap.seq / 1e6);
	if (cap.n_rend > 1 && cap.seq > 0) {
		const struct pc_rendition *sub = &cap.rend[RENDITION_SUB];
		uint64_t n = sub->encoded ? sub->encoded : 1;
		pc_log("sub stream: %" PRIu64 " pictures encoded (%" PRIu64 " keyframes), %" PRIu64 " skipped without viewers; scale %.2f ms and encode %.2f ms per encoded picture on average",
		       sub->encoded, sub->keyframes, sub->skipped, (double)sub->scale_ns_total / (double)n / 1e6,
		       (double)sub->encode_ns_total / (double)n / 1e6);
	}
	stop_renditions(&cap);
	pc_motion_destroy(cap.motion);
	if (cap.source)
		cap.source_ops->destroy(cap.source);
	pthread_mutex_destroy(&cap.send_lock);
	return exit_code;
}
