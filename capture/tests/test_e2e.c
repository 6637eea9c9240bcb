/* End to end: the built p2pcast-capture against a fake device on a Unix socket in a temp
 * dir. Every wait has a timeout, and a producer left behind is killed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <math.h>
#include <stdio.h>

#include "../encoders/opus.h"
#include "../ipc.h"
#include "../sources/testpattern.h"
#include "check.h"

#define TIMEOUT_MS 5000

struct device {
	char dir[64];
	char sock[128];
	char log[128];
	int listen_fd;
	pid_t producer;
	char files[6][160]; /* more files in dir, removed with it */
	int n_files;
};

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static bool device_init(struct device *d)
{
	memset(d, 0, sizeof(*d));
	d->listen_fd = -1;
	d->producer = -1;
	strcpy(d->dir, "/tmp/p2pcast-capture-test-XXXXXX");
	if (!mkdtemp(d->dir))
		return false;
	snprintf(d->sock, sizeof(d->sock), "%s/capture.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/producer.log", d->dir);
	return true;
}

static bool device_listen(struct device *d)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	strcpy(addr.sun_path, d->sock);
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return d->listen_fd >= 0 && bind(d->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	       listen(d->listen_fd, 4) == 0;
}

/* Runs the producer with args (NULL-terminated), its stderr into the log file, alsa-lib
 * pointed at alsa_config when not NULL. */
static pid_t spawn_env(const char *log, const char *const *args, const char *stdout_path,
		       const char *alsa_config)
{
	const char *argv[32] = {pc_check_producer};
	int argc = 1;
	for (; args[argc - 1] && argc < 31; argc++)
		argv[argc] = args[argc - 1];
	argv[argc] = NULL;

	pid_t pid = fork();
	if (pid == 0) {
		int err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int out = open(stdout_path ? stdout_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (err < 0 || out < 0 || dup2(err, STDERR_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL); /* the producer sets up its own */
		if (alsa_config)
			setenv("ALSA_CONFIG_PATH", alsa_config, 1);
		execv(pc_check_producer, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static pid_t spawn(const char *log, const char *const *args, const char *stdout_path)
{
	return spawn_env(log, args, stdout_path, NULL);
}

/* Waits for pid; kills it after timeout_ms. Returns the wait status, or -1 on timeout. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	int status;
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void device_destroy(struct device *d)
{
	if (d->producer > 0 && waitpid(d->producer, NULL, WNOHANG) == 0) {
		kill(d->producer, SIGKILL);
		waitpid(d->producer, NULL, 0);
	}
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	/* Show what the producer said when something went wrong. */
	if (pc_check.current_failures) {
		FILE *f = fopen(d->log, "r");
		char line[512];
		fprintf(stderr, "    --- producer log ---\n");
		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "    %s", line);
		if (f)
			fclose(f);
	}
	for (int i = 0; i < d->n_files; i++)
		unlink(d->files[i]);
	unlink(d->sock);
	unlink(d->log);
	rmdir(d->dir);
}

/* The path of name in the device's temp dir, removed by device_destroy(). */
static const char *device_file(struct device *d, const char *name)
{
	if (d->n_files == (int)(sizeof(d->files) / sizeof(d->files[0])))
		return "/nonexistent";
	char dir[sizeof(d->dir)];
	memcpy(dir, d->dir, sizeof(dir)); /* a separate source, for -Werror=restrict */
	char *path = d->files[d->n_files++];
	snprintf(path, sizeof(d->files[0]), "%s/%s", dir, name);
	return path;
}

static int accept_timeout(int listen_fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
	if (poll(&pfd, 1, timeout_ms) != 1)
		return -1;
	return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

/* 1 when n bytes were read, 0 on EOF before the first byte, -1 on error/timeout/short read. */
static int read_full(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, timeout_ms) != 1)
			return -1;
		ssize_t r = read(fd, buf + got, n - got);
		if (r == 0)
			return got == 0 ? 0 : -1;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return got == 0 && errno == ECONNRESET ? 0 : -1;
		}
		got += (size_t)r;
	}
	return 1;
}

struct message {
	struct pc_ipc_header hdr;
	uint8_t *payload; /* malloc'd, owned by the caller */
};

/* 1 with a message, 0 on EOF, -1 on anything else. */
static int read_message(int fd, struct message *msg)
{
	uint8_t header[PC_IPC_HEADER_SIZE];
	memset(msg, 0, sizeof(*msg));
	int r = read_full(fd, header, sizeof(header), TIMEOUT_MS);
	if (r <= 0)
		return r;
	if (pc_ipc_header_unpack(header, &msg->hdr) != PC_IPC_OK)
		return -1;
	msg->payload = malloc(msg->hdr.length + 1);
	if (!msg->payload)
		return -1;
	if (msg->hdr.length && read_full(fd, msg->payload, msg->hdr.length, TIMEOUT_MS) != 1) {
		free(msg->payload);
		msg->payload = NULL;
		return -1;
	}
	return 1;
}

static void send_message(int fd, uint8_t version, uint8_t type, uint8_t track, uint16_t flags,
			 const uint8_t *payload, uint32_t len)
{
	uint8_t buf[PC_IPC_HEADER_SIZE + 2048];
	struct pc_ipc_header hdr = {.version = version, .type = type, .length = len, .track = track,
				    .flags = flags};
	if (len > sizeof(buf) - PC_IPC_HEADER_SIZE) {
		CHECK(!"message too long for send_message");
		return;
	}
	pc_ipc_header_pack(&hdr, buf);
	if (len)
		memcpy(buf + PC_IPC_HEADER_SIZE, payload, len);
	CHECK_EQ(write(fd, buf, PC_IPC_HEADER_SIZE + len), PC_IPC_HEADER_SIZE + (int)len);
}

/* A control message for the video track. */
static void send_control(int fd, uint8_t version, uint8_t type, const uint8_t *payload, uint32_t len)
{
	send_message(fd, version, type, 1, 0, payload, len);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static int64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return (int64_t)v;
}

/* The video HELLO: track 1; flags LAST when it is the only track. */
static void check_hello_flags(const struct message *msg, const char *name, uint16_t flags)
{
	CHECK_EQ(msg->hdr.type, PC_IPC_HELLO);
	CHECK_EQ(msg->hdr.version, 2);
	CHECK_EQ(msg->hdr.track, 1);
	CHECK_EQ(msg->hdr.flags, flags);
	CHECK_EQ(msg->hdr.length, PC_IPC_HELLO_SIZE + strlen(name));
	if (!msg->payload || msg->hdr.length < PC_IPC_HELLO_SIZE)
		return;
	const uint8_t *p = msg->payload;
	CHECK_EQ(p[0], 1);                 /* video */
	CHECK_EQ(p[1], 1);                 /* H.264 */
	CHECK_EQ(le16(p + 2), 320);
	CHECK_EQ(le16(p + 4), 240);
	CHECK_EQ(le16(p + 6), 30);
	CHECK_EQ(le16(p + 8), 1);
	CHECK_EQ(le16(p + 10), 7);         /* keyframe | bitrate | fps */
	CHECK_EQ(le32(p + 12), 2000000);
	CHECK_EQ(le32(p + 16), 60);        /* 2 s at 30 fps */
	CHECK(memcmp(p + PC_IPC_HELLO_SIZE, name, strlen(name)) == 0);
}

static void check_hello(const struct message *msg, const char *name)
{
	check_hello_flags(msg, name, PC_IPC_HELLO_FLAG_LAST);
}

static bool has_idr(const uint8_t *au, size_t size)
{
	int types[64];
	size_t offsets[64];
	int n = pc_test_nal_units(au, size, types, offsets, 64);
	for (int i = 0; i < n; i++)
		if (types[i] == 5)
			return true;
	return false;
}

/* Checks a video FRAME on track; returns its keyframe flag. */
static bool check_access_unit_on(const struct message *msg, uint8_t track, int64_t *last_ts)
{
	CHECK_EQ(msg->hdr.type, PC_IPC_FRAME);
	CHECK_EQ(msg->hdr.track, track);
	CHECK(msg->hdr.length > PC_IPC_ENCODED_TIME_SIZE + 4);
	if (!msg->payload || msg->hdr.type != PC_IPC_FRAME ||
	    msg->hdr.length <= PC_IPC_ENCODED_TIME_SIZE + 4)
		return false;
	int64_t now = realtime_ns();
	int64_t ts = msg->hdr.timestamp_ns;
	int64_t encoded = le64(msg->payload);
	CHECK(ts > *last_ts);
	CHECK(ts <= now && now - ts < INT64_C(5000000000));
	CHECK(encoded >= ts && encoded <= now);
	*last_ts = ts;

	const uint8_t *au = msg->payload + PC_IPC_ENCODED_TIME_SIZE;
	size_t size = msg->hdr.length - PC_IPC_ENCODED_TIME_SIZE;
	CHECK((au[0] == 0 && au[1] == 0 && au[2] == 1) ||
	      (au[0] == 0 && au[1] == 0 && au[2] == 0 && au[3] == 1));
	bool keyframe = msg->hdr.flags & PC_IPC_FLAG_KEYFRAME;
	CHECK_EQ(keyframe, has_idr(au, size));
	return keyframe;
}

/* Checks an ACCESS_UNIT of the video track (1). */
static bool check_access_unit(const struct message *msg, int64_t *last_ts)
{
	return check_access_unit_on(msg, 1, last_ts);
}

static void test_e2e_frames_and_control(void)
{
	struct device d;
	CHECK(device_init(&d) && device_listen(&d));
	const char *args[] = {"--socket", d.sock, "--size", "320x240", "--fps", "30",
			      "--frames", "10", "--name", "e2e", NULL};
	d.producer = spawn(d.log, args, NULL);

	int fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;

	struct message msg;
	CHECK_EQ(read_message(fd, &msg), 1);
	check_hello(&msg, "e2e");
	free(msg.payload);

	int64_t last_ts = 0;
	int keyframes_after_request = 0;
	for (uint32_t i = 0; i < 10; i++) {
		int r = read_message(fd, &msg);
		CHECK_EQ(r, 1);
		if (r != 1)
			goto out_fd;
		CHECK_EQ(msg.hdr.seq, i);
		bool keyframe = check_access_unit(&msg, &last_ts);
		free(msg.payload);
		if (i == 0)
			CHECK(keyframe);
		else if (i <= 2)
			CHECK(!keyframe);
		else
			keyframes_after_request += keyframe;
		if (i == 2) {
			/* Noise first: all of it must be ignored without dropping the connection. */
			const uint8_t one_viewer[4] = {1, 0, 0, 0};
			const uint8_t junk[100] = {0};
			const uint8_t short_bitrate[2] = {1, 2};
			const uint8_t bitrate[4] = {0x40, 0x42, 0x0f, 0x00};
			send_control(fd, 2, PC_IPC_VIEWERS, one_viewer, 4);
			send_control(fd, 2, 0x90, junk, sizeof(junk));
			send_control(fd, 2, PC_IPC_BITRATE, short_bitrate, 2);
			send_control(fd, 2, PC_IPC_BITRATE, bitrate, 4);
			send_control(fd, 2, PC_IPC_KEYFRAME, NULL, 0);
			/* Not ours: a track we never announced, and a SINK_FRAME without a sink. */
			send_message(fd, 2, PC_IPC_KEYFRAME, 9, 0, NULL, 0);
			send_message(fd, 2, PC_IPC_SINK_FRAME, 3, 1, junk, sizeof(junk));
		}
	}
	CHECK_EQ(keyframes_after_request, 1);

	CHECK_EQ(read_message(fd, &msg), 1);
	CHECK_EQ(msg.hdr.type, PC_IPC_BYE);
	CHECK_EQ(msg.hdr.length, 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 0); /* then the connection closes */

	int status = wait_exit(d.producer, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
out_fd:
	close(fd);
out:
	device_destroy(&d);
}

/* Reads access units until one arrives, returning its seq (or -1). */
static long first_access_unit(int fd, bool *keyframe)
{
	struct message msg;
	int64_t last_ts = 0;
	if (read_message(fd, &msg) != 1)
		return -1;
	long seq = msg.hdr.seq;
	*keyframe = check_access_unit(&msg, &last_ts);
	free(msg.payload);
	return seq;
}

/* Drains messages until the producer closes the connection; false on a timeout. */
static bool read_until_eof(int fd)
{
	for (int i = 0; i < 1000; i++) {
		struct message msg;
		int r = read_message(fd, &msg);
		free(msg.payload);
		if (r == 0)
			return true;
		if (r < 0)
			return false;
	}
	return false;
}

static void test_e2e_reconnect_and_sigterm(void)
{
	struct device d;
	struct message msg;
	bool keyframe = false;
	int fd = -1;
	CHECK(device_init(&d));

	/* The producer starts before the device and keeps trying. */
	const char *args[] = {"--socket", d.sock, "--size", "320x240", "--fps", "30", NULL};
	d.producer = spawn(d.log, args, NULL);
	sleep_ms(300);
	CHECK(device_listen(&d));

	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	CHECK_EQ(read_message(fd, &msg), 1);
	check_hello(&msg, "testpattern");
	free(msg.payload);
	long seq = -1;
	for (int i = 0; i < 3; i++)
		seq = first_access_unit(fd, &keyframe);
	CHECK_EQ(seq, 2);

	/* The device restarts: the producer reconnects, says HELLO, starts with an IDR, and
	 * keeps counting frames. */
	close(fd);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	CHECK_EQ(read_message(fd, &msg), 1);
	CHECK_EQ(msg.hdr.type, PC_IPC_HELLO);
	free(msg.payload);
	long after = first_access_unit(fd, &keyframe);
	CHECK(after > seq);
	CHECK(keyframe);

	/* A device speaking another version: the producer drops the connection and comes back. */
	send_control(fd, 1, PC_IPC_KEYFRAME, NULL, 0);
	CHECK(read_until_eof(fd));
	close(fd);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	CHECK_EQ(read_message(fd, &msg), 1);
	CHECK_EQ(msg.hdr.type, PC_IPC_HELLO);
	free(msg.payload);
	CHECK(first_access_unit(fd, &keyframe) > after);
	CHECK(keyframe);

	/* SIGTERM: BYE, close, exit 0. */
	kill(d.producer, SIGTERM);
	int r;
	while ((r = read_message(fd, &msg)) == 1 && msg.hdr.type == PC_IPC_FRAME)
		free(msg.payload);
	CHECK_EQ(r, 1);
	CHECK_EQ(msg.hdr.type, PC_IPC_BYE);
	CHECK_EQ(msg.hdr.track, 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 0);
	int status = wait_exit(d.producer, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);

out:
	if (fd >= 0)
		close(fd);
	device_destroy(&d);
}

static int run_cli(struct device *d, const char *const *args, const char *stdout_path)
{
	pid_t pid = spawn(d->log, args, stdout_path);
	int status = wait_exit(pid, TIMEOUT_MS);
	return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli(void)
{
	struct device d;
	CHECK(device_init(&d));
	char out[160], h264[160];
	snprintf(out, sizeof(out), "%s/stdout", d.dir);
	snprintf(h264, sizeof(h264), "%s/out.h264", d.dir);

	CHECK_EQ(run_cli(&d, (const char *[]){"--help", NULL}, out), 0);
	struct stat st;
	CHECK(stat(out, &st) == 0 && st.st_size > 100);

	static const char *const bad[][8] = {
		{"--bogus", NULL},
		{"--socket", NULL},
		{NULL},
		{"--socket", "/x", "--annexb-out", "/y", NULL},
		{"--socket", "/x", "--size", "321x240", NULL},
		{"--socket", "/x", "--size", "1280", NULL},
		{"--socket", "/x", "--fps", "0", NULL},
		{"--socket", "/x", "--bitrate", "2X", NULL},
		{"--socket", "/x", "--bitrate", "-5", NULL},
		{"--socket", "/x", "--gop", "0", NULL},
		{"--socket", "/x", "--size", "7680x4320", NULL},
		{"--socket", "/x", "--preset", "warpspeed", NULL},
		{"--socket", "/x", "--source", "webcam", NULL},
		{"--socket", "/x", "stray", NULL},
		{"--socket", "/x", "--audio-in", "", NULL},
		{"--socket", "/x", "--audio-out", "", NULL},
		{"--socket", "/x", "--audio-bitrate", "5k", NULL},
		{"--socket", "/x", "--audio-bitrate", "600k", NULL},
		{"--socket", "/x", "--audio-bitrate", "fast", NULL},
		{"--socket", "/x", "--audio-channels", "0", NULL},
		{"--socket", "/x", "--audio-channels", "3", NULL},
		{"--socket", "/x", "--audio-in", NULL},
		{"--socket", "/x", "--pattern", "plaid", NULL},
		{"--socket", "/x", "--sub", "1280x720", NULL},
		{"--socket", "/x", "--sub", "640x1080", NULL},
		{"--socket", "/x", "--sub", "15x16", NULL},
		{"--socket", "/x", "--sub", "640", NULL},
		{"--socket", "/x", "--sub-bitrate", "300k", NULL},
		{"--socket", "/x", "--sub", "640x360", "--sub-bitrate", "1k", NULL},
		/* The rkmpi source's options, with another source; the source itself, in a build
		 * without RKMPI=1 (the tests'). */
		{"--socket", "/x", "--iq-dir", "/etc/iqfiles", NULL},
		{"--socket", "/x", "--sensor-fps", "30", NULL},
		{"--socket", "/x", "--sensor-fps", "0", NULL},
		{"--socket", "/x", "--source", "rkmpi", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int code = run_cli(&d, bad[i], NULL);
		if (code != 2)
			fprintf(stderr, "    case %zu (%s %s ...)\n", i, bad[i][0] ? bad[i][0] : "",
				bad[i][0] && bad[i][1] ? bad[i][1] : "");
		CHECK_EQ(code, 2);
	}

	const char *args[] = {"--annexb-out", h264, "--size", "320x240", "--fps", "60",
			      "--bitrate", "500k", "--frames", "5", NULL};
	CHECK_EQ(run_cli(&d, args, NULL), 0);
	uint8_t buf[4096];
	int fd = open(h264, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	if (fd >= 0)
		close(fd);
	CHECK(n > 4 && buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 1);
	CHECK(n > 4 && has_idr(buf, (size_t)n));
	unlink(out);
	unlink(h264);
	device_destroy(&d);
}

/* ---- audio ---- */

static bool log_has(const char *log, const char *text)
{
	FILE *f = fopen(log, "r");
	char line[512];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	if (f)
		fclose(f);
	return found;
}

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
/* libopus's look-ahead at 48 kHz (2.5 ms + 4 ms of delay compensation), which the producer
 * takes off audio timestamps (pc_opus_encoder_lookahead_ns). */
#define OPUS_LOOKAHEAD_NS (312 * SEC / 48000)
#define AUDIO_RATE 48000
#define AUDIO_FRAME PC_OPUS_FRAME_SAMPLES

/* An asoundrc for alsa's file plugin over the null device (no sound hardware here): "mic"
 * captures from dir/mic.raw, "spk" plays into dir/spk.raw. */
static const char *write_alsa_config(struct device *d, const char **mic, const char **spk)
{
	const char *conf = device_file(d, "asound.conf");
	*mic = device_file(d, "mic.raw");
	*spk = device_file(d, "spk.raw");
	FILE *f = fopen(conf, "w");
	if (!f)
		return NULL;
	fprintf(f,
		"pcm.mic { type file; slave.pcm { type null }; file \"/dev/null\"; infile \"%s\"; format \"raw\" }\n"
		"pcm.spk { type file; slave.pcm { type null }; file \"%s\"; format \"raw\" }\n",
		*mic, *spk);
	fclose(f);
	return conf;
}

/* Writes seconds of a sine at hz (S16LE mono 48 kHz, half scale). */
static bool write_sine(const char *path, double hz, int seconds)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return false;
	for (long i = 0; i < (long)AUDIO_RATE * seconds; i++) {
		int16_t v = (int16_t)lrint(16000 * sin(2 * M_PI * hz * (double)i / AUDIO_RATE));
		uint8_t b[2] = {(uint8_t)v, (uint8_t)((uint16_t)v >> 8)};
		fwrite(b, 1, 2, f);
	}
	return fclose(f) == 0;
}

static void check_audio_hello(const struct message *msg, uint8_t track, uint16_t flags,
			      uint8_t channels, uint16_t caps, uint32_t bitrate, const char *name)
{
	CHECK_EQ(msg->hdr.type, PC_IPC_HELLO);
	CHECK_EQ(msg->hdr.version, 2);
	CHECK_EQ(msg->hdr.track, track);
	CHECK_EQ(msg->hdr.flags, flags);
	CHECK_EQ(msg->hdr.length, PC_IPC_HELLO_SIZE + strlen(name));
	if (!msg->payload || msg->hdr.length < PC_IPC_HELLO_SIZE)
		return;
	const uint8_t *p = msg->payload;
	CHECK_EQ(p[0], 2); /* audio */
	CHECK_EQ(p[1], 3); /* Opus */
	CHECK_EQ(p[2], channels);
	CHECK_EQ(p[3], 0);
	CHECK_EQ(le32(p + 4), 48000);
	CHECK_EQ(le16(p + 8), 0);
	CHECK_EQ(le16(p + 10), caps);
	CHECK_EQ(le32(p + 12), bitrate);
	CHECK_EQ(le32(p + 16), 20000);
	CHECK(memcmp(p + PC_IPC_HELLO_SIZE, name, strlen(name)) == 0);
}

/* Audio frames as the fake device collects them: decoded, placed by timestamp. */
struct audio_log {
	struct pc_opus_decoder *dec;
	int64_t first_ts, last_ts;
	uint32_t last_seq;
	int frames;
	bool by_seq;      /* place decoded frames by seq (contiguous), not by timestamp */
	int exact_steps;  /* consecutive timestamps exactly 20 ms apart */
	int aligned;      /* timestamps on a 20 ms boundary */
	int64_t worst_arrival_ns; /* arrival - end of the frame's audio */
	int16_t pcm[200 * AUDIO_FRAME];
};

static void audio_log_add(struct audio_log *a, const struct message *msg)
{
	CHECK_EQ(msg->hdr.flags, 0);
	CHECK(msg->hdr.length > PC_IPC_ENCODED_TIME_SIZE);
	if (!msg->payload || msg->hdr.length <= PC_IPC_ENCODED_TIME_SIZE)
		return;
	int64_t ts = msg->hdr.timestamp_ns, now = realtime_ns();
	int64_t encoded = le64(msg->payload);
	CHECK(encoded >= ts + 20 * MS && encoded <= now);
	if (now - (ts + 20 * MS) > a->worst_arrival_ns)
		a->worst_arrival_ns = now - (ts + 20 * MS);
	if (a->frames == 0) {
		a->first_ts = ts;
	} else {
		CHECK_EQ(msg->hdr.seq, a->last_seq + 1);
		CHECK(ts > a->last_ts);
		a->exact_steps += ts - a->last_ts == 20 * MS;
	}
	/* Stamped at the decoded frame's start: the 20 ms boundary less Opus's look-ahead. */
	a->aligned += (ts + OPUS_LOOKAHEAD_NS) % (20 * MS) == 0;
	a->last_ts = ts;
	a->last_seq = msg->hdr.seq;
	a->frames++;

	int64_t slot = a->by_seq ? a->frames - 1 : (ts - a->first_ts + 10 * MS) / (20 * MS);
	if (slot < 0 || slot >= 200)
		return;
	int n = pc_opus_decode(a->dec, msg->payload + PC_IPC_ENCODED_TIME_SIZE,
			       msg->hdr.length - PC_IPC_ENCODED_TIME_SIZE, a->pcm + slot * AUDIO_FRAME,
			       AUDIO_FRAME);
	CHECK_EQ(n, AUDIO_FRAME);
}

/* Mean luma of the flash area of each picture of an H.264 file, decoded by ffmpeg. Returns
 * the number of pictures (at most max), or -1 without ffmpeg. */
static int flash_levels(const char *h264, int width, int height, double *levels, int max)
{
	if (system("command -v ffmpeg >/dev/null 2>&1") != 0)
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "ffmpeg -nostdin -v error -f h264 -i '%s' -f rawvideo -pix_fmt gray - 2>/dev/null", h264);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	struct pc_testpattern_rect r;
	pc_testpattern_flash_rect(width, height, &r);
	size_t size = (size_t)width * (size_t)height;
	uint8_t *gray = malloc(size);
	int n = 0;
	while (gray && n < max && fread(gray, 1, size, p) == size) {
		double sum = 0;
		/* The middle of the area: clear of the encoder's edge blur. */
		int x0 = r.x + r.w / 4, x1 = r.x + 3 * r.w / 4, y0 = r.y + r.h / 4, y1 = r.y + 3 * r.h / 4;
		for (int y = y0; y < y1; y++)
			for (int x = x0; x < x1; x++)
				sum += gray[(size_t)y * (size_t)width + (size_t)x];
		levels[n++] = sum / ((double)(x1 - x0) * (y1 - y0));
	}
	free(gray);
	pclose(p);
	return n;
}

static void test_e2e_testtone_and_flash(void)
{
	struct device d;
	struct message msg;
	static struct audio_log audio;
	enum { MAX_PICTURES = 150 };
	int64_t video_ts[MAX_PICTURES];
	int pictures = 0;
	char err[256];
	int fd = -1;
	FILE *video = NULL;

	memset(&audio, 0, sizeof(audio));
	CHECK(device_init(&d) && device_listen(&d));
	CHECK_EQ(pc_opus_decoder_init(&audio.dec, 1, err, sizeof(err)), 0);
	const char *h264 = device_file(&d, "video.h264");
	video = fopen(h264, "wb");
	CHECK(video != NULL);
	const char *args[] = {"--socket", d.sock, "--size", "320x240", "--fps", "30",
			      "--audio-in", "testtone", "--name", "tt", NULL};
	d.producer = spawn(d.log, args, NULL);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0 || !video || !audio.dec)
		goto out;

	/* Video first, then audio with LAST. */
	CHECK_EQ(read_message(fd, &msg), 1);
	check_hello_flags(&msg, "tt", 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 1);
	check_audio_hello(&msg, 2, PC_IPC_HELLO_FLAG_LAST, 1, PC_IPC_CAP_BITRATE, 32000, "testtone");
	free(msg.payload);

	int64_t start = realtime_ns();
	while (realtime_ns() - start < 2300 * MS) {
		if (read_message(fd, &msg) != 1) {
			CHECK(!"the producer stopped sending");
			goto out;
		}
		CHECK_EQ(msg.hdr.type, PC_IPC_FRAME);
		if (msg.hdr.track == 1 && pictures < MAX_PICTURES && msg.hdr.length > 8) {
			video_ts[pictures++] = msg.hdr.timestamp_ns;
			fwrite(msg.payload + 8, 1, msg.hdr.length - 8, video);
		} else if (msg.hdr.track == 2) {
			audio_log_add(&audio, &msg);
		} else {
			CHECK(msg.hdr.track == 1);
		}
		free(msg.payload);
	}
	fclose(video);
	video = NULL;

	/* Audio: every 20 ms, stamped exactly 20 ms apart on 20 ms boundaries (less the look-ahead),
	 * in time. */
	fprintf(stderr, "    %d audio frames in 2.3 s, %d pictures; audio arrived at most %.1f ms after its last sample\n",
		audio.frames, pictures, (double)audio.worst_arrival_ns / 1e6);
	CHECK(audio.frames >= 100 && audio.frames <= 120);
	CHECK_EQ(audio.exact_steps, audio.frames - 1);
	CHECK_EQ(audio.aligned, audio.frames);
	CHECK(audio.worst_arrival_ns < 200 * MS);

	/* The beep of each whole second starts in the frame stamped at that second. */
	int beeps = 0;
	for (int64_t s = (audio.first_ts / SEC + 1) * SEC; s + 200 * MS <= audio.last_ts; s += SEC) {
		size_t at = (size_t)((s - audio.first_ts) / (20 * MS)) * AUDIO_FRAME;
		if (at < 3 * AUDIO_FRAME)
			continue;
		beeps++;
		CHECK(pc_test_rms(audio.pcm, at - 2 * AUDIO_FRAME, at) < 300);  /* silence before */
		CHECK(pc_test_rms(audio.pcm, at + 480, at + 4800) > 8000);      /* the beep */
		CHECK(pc_test_rms(audio.pcm, at + 6000, at + 9600) < 300);      /* over after 100 ms */
		double hz = pc_test_zero_crossing_hz(audio.pcm, at + 480, at + 4800, AUDIO_RATE);
		CHECK(fabs(hz - 1000) < 15);
	}
	CHECK(beeps >= 1);

	/* Video: the picture flashes exactly when it is the first at or after a whole second. */
	static double levels[MAX_PICTURES];
	int decoded = flash_levels(h264, 320, 240, levels, MAX_PICTURES);
	if (decoded < 0) {
		fprintf(stderr, "    ffmpeg not found: flash check skipped\n");
	} else {
		CHECK_EQ(decoded, pictures);
		int flashes = 0;
		for (int i = 1; i < decoded && i < pictures; i++) {
			bool expect = pc_testpattern_flashes(video_ts[i - 1], video_ts[i]);
			flashes += expect;
			if (expect != (levels[i] > 200))
				fprintf(stderr, "    picture %d at %lld: flash area %.0f\n", i,
					(long long)video_ts[i], levels[i]);
			CHECK_EQ(expect, levels[i] > 200);
		}
		CHECK(flashes >= 2);
		CHECK(levels[0] < 200);
	}

	/* The device restarts: both HELLOs again. */
	close(fd);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	CHECK_EQ(read_message(fd, &msg), 1);
	check_hello_flags(&msg, "tt", 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 1);
	check_audio_hello(&msg, 2, PC_IPC_HELLO_FLAG_LAST, 1, PC_IPC_CAP_BITRATE, 32000, "testtone");
	free(msg.payload);

	/* A bitrate for the audio track goes to Opus (and shows in the log). */
	const uint8_t bitrate[4] = {0x80, 0xbb, 0x00, 0x00}; /* 48000 */
	send_message(fd, 2, PC_IPC_BITRATE, 2, 0, bitrate, 4);

	kill(d.producer, SIGTERM);
	int r;
	while ((r = read_message(fd, &msg)) == 1 && msg.hdr.type == PC_IPC_FRAME)
		free(msg.payload);
	CHECK_EQ(r, 1);
	CHECK_EQ(msg.hdr.type, PC_IPC_BYE);
	free(msg.payload);
	int status = wait_exit(d.producer, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
out:
	if (video)
		fclose(video);
	if (fd >= 0)
		close(fd);
	pc_opus_decoder_destroy(audio.dec);
	device_destroy(&d);
}

static void test_e2e_alsa_mic(void)
{
	struct device d;
	struct message msg;
	static struct audio_log audio;
	const char *mic, *spk;
	char err[256];
	int fd = -1;

	memset(&audio, 0, sizeof(audio));
	/* Samples from a device are contiguous even where the clock was re-anchored (a busy
	 * machine's late wake-ups look like drift on alsa's null device). */
	audio.by_seq = true;
	CHECK(device_init(&d) && device_listen(&d));
	const char *conf = write_alsa_config(&d, &mic, &spk);
	CHECK(conf && write_sine(mic, 660, 5)); /* longer than the test: past its end alsa repeats stale data */
	CHECK_EQ(pc_opus_decoder_init(&audio.dec, 1, err, sizeof(err)), 0);
	if (!conf || !audio.dec)
		goto out;

	/* A device that does not exist: a one-line error naming it, exit 1. */
	const char *bad[] = {"--socket", d.sock, "--audio-in", "nosuchmic", NULL};
	pid_t pid = spawn_env(d.log, bad, NULL, conf);
	int status = wait_exit(pid, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
	CHECK(log_has(d.log, "cannot open ALSA capture device 'nosuchmic': Unknown PCM nosuchmic"));

	const char *args[] = {"--socket", d.sock, "--size", "320x240", "--fps", "30",
			      "--audio-in", "mic", "--audio-bitrate", "64k", NULL};
	d.producer = spawn_env(d.log, args, NULL, conf);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	CHECK_EQ(read_message(fd, &msg), 1);
	check_hello_flags(&msg, "testpattern", 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 1);
	check_audio_hello(&msg, 2, PC_IPC_HELLO_FLAG_LAST, 1, PC_IPC_CAP_BITRATE, 64000, "mic");
	free(msg.payload);

	int64_t start = realtime_ns();
	while (realtime_ns() - start < 1200 * MS) {
		if (read_message(fd, &msg) != 1) {
			CHECK(!"the producer stopped sending");
			goto out;
		}
		if (msg.hdr.type == PC_IPC_FRAME && msg.hdr.track == 2)
			audio_log_add(&audio, &msg);
		free(msg.payload);
	}
	/* Paced on the clock though alsa's null device returns at once. */
	fprintf(stderr, "    %d audio frames in 1.2 s from alsa, %d of %d steps exactly 20 ms\n",
		audio.frames, audio.exact_steps, audio.frames - 1);
	CHECK(audio.frames >= 50 && audio.frames <= 62);
	CHECK(audio.exact_steps >= (audio.frames - 1) * 9 / 10);
	size_t end = (size_t)audio.frames * AUDIO_FRAME;
	double hz = pc_test_zero_crossing_hz(audio.pcm, 5 * AUDIO_FRAME, end, AUDIO_RATE);
	fprintf(stderr, "    decoded %.1f Hz from a 660 Hz microphone\n", hz);
	CHECK(fabs(hz - 660) < 10);
	CHECK(pc_test_rms(audio.pcm, 5 * AUDIO_FRAME, end) > 5000);

	kill(d.producer, SIGTERM);
	CHECK(read_until_eof(fd));
	status = wait_exit(d.producer, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
out:
	if (fd >= 0)
		close(fd);
	pc_opus_decoder_destroy(audio.dec);
	device_destroy(&d);
}

/* The "audio-out: started at <ns> on spk" line; 0 until it is in the log. */
static int64_t audio_out_started_at(const char *log)
{
	FILE *f = fopen(log, "r");
	char line[512];
	long long ns = 0;
	while (f && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "audio-out: started at ");
		if (p && sscanf(p, "audio-out: started at %lld on spk", &ns) == 1)
			break;
	}
	if (f)
		fclose(f);
	return ns;
}

/* Rough frequency by sox over samples [from, from + count) of a raw file; 0 without sox. */
static double sox_rough_frequency(const char *raw, long from, long count)
{
	if (system("command -v sox >/dev/null 2>&1") != 0)
		return 0;
	char cmd[512], line[256];
	snprintf(cmd, sizeof(cmd),
		 "sox -t raw -r 48000 -e signed -b 16 -c 1 '%s' -n trim %lds %lds stat 2>&1", raw, from,
		 count);
	FILE *p = popen(cmd, "r");
	double hz = -1;
	while (p && fgets(line, sizeof(line), p))
		if (strncmp(line, "Rough   frequency:", 18) == 0)
			hz = atof(line + 18);
	if (p)
		pclose(p);
	return hz;
}

static void test_e2e_alsa_talkback(void)
{
	struct device d;
	struct message msg;
	const char *mic, *spk;
	char err[256];
	int fd = -1;
	struct pc_opus_encoder *enc = NULL;
	int16_t *out = NULL;

	CHECK(device_init(&d) && device_listen(&d));
	const char *conf = write_alsa_config(&d, &mic, &spk);
	CHECK(conf != NULL);
	CHECK_EQ(pc_opus_encoder_init(&enc, 1, 32000, err, sizeof(err)), 0);
	if (!conf || !enc)
		goto out;

	/* A device that does not exist: a one-line error naming it, exit 1. */
	const char *bad[] = {"--socket", d.sock, "--audio-out", "nosuchspk", NULL};
	pid_t pid = spawn_env(d.log, bad, NULL, conf);
	int bad_status = wait_exit(pid, TIMEOUT_MS);
	CHECK(bad_status != -1 && WIFEXITED(bad_status) && WEXITSTATUS(bad_status) == 1);
	CHECK(log_has(d.log, "cannot open ALSA playback device 'nosuchspk': Unknown PCM nosuchspk"));

	const char *args[] = {"--socket", d.sock, "--size", "320x240", "--fps", "30",
			      "--audio-out", "spk", NULL};
	d.producer = spawn_env(d.log, args, NULL, conf);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;
	CHECK_EQ(read_message(fd, &msg), 1);
	check_hello_flags(&msg, "testpattern", 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 1);
	/* The sink: track 2 when there is no audio in, mono Opus, no bitrate to set. */
	check_audio_hello(&msg, 2, PC_IPC_HELLO_FLAG_LAST | PC_IPC_HELLO_FLAG_SINK, 1, 0, 0, "spk");
	free(msg.payload);

	int64_t t0 = 0;
	for (int i = 0; i < 200 && !(t0 = audio_out_started_at(d.log)); i++)
		sleep_ms(10);
	CHECK(t0 > 0);
	if (!t0)
		goto out;
	sleep_ms(200);

	/* One second of 440 Hz, one SINK_FRAME per 20 ms, RESUME on the first. */
	int64_t first_sent = 0, next = realtime_ns();
	for (int f = 0; f < 50; f++) {
		int16_t pcm[AUDIO_FRAME];
		uint8_t packet[PC_OPUS_MAX_PACKET];
		for (int i = 0; i < AUDIO_FRAME; i++)
			pcm[i] = (int16_t)lrint(16000 * sin(2 * M_PI * 440 * (double)(f * AUDIO_FRAME + i) / AUDIO_RATE));
		int n = pc_opus_encode(enc, pcm, packet, sizeof(packet));
		CHECK(n > 0);
		while (realtime_ns() < next)
			sleep_ms(1);
		if (f == 0)
			first_sent = realtime_ns();
		send_message(fd, 2, PC_IPC_SINK_FRAME, 2, f == 0 ? PC_IPC_SINK_FLAG_RESUME : 0, packet,
			     (uint32_t)n);
		next += 20 * MS;
		/* Keep the producer's pictures flowing meanwhile. */
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		while (poll(&pfd, 1, 0) == 1 && read_message(fd, &msg) == 1)
			free(msg.payload);
	}
	sleep_ms(300);
	int64_t stopped = realtime_ns();
	kill(d.producer, SIGTERM);
	CHECK(read_until_eof(fd));
	int status = wait_exit(d.producer, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* The output file: silence, then the tone where its time says, then silence again. */
	FILE *f = fopen(spk, "rb");
	CHECK(f != NULL);
	if (!f)
		goto out;
	out = malloc(10 * AUDIO_RATE * sizeof(*out));
	size_t samples = out ? fread(out, sizeof(*out), 10 * AUDIO_RATE, f) : 0;
	fclose(f);
	int64_t expected = (stopped - t0) * AUDIO_RATE / SEC;
	fprintf(stderr, "    talk-back: %zu samples written, %lld expected from the clock\n", samples,
		(long long)expected);
	CHECK((int64_t)samples > expected - AUDIO_RATE / 10 && (int64_t)samples < expected + AUDIO_RATE / 5);

	size_t onset = 0, last = 0;
	for (size_t i = 0; i < samples; i++)
		if (out[i] > 3000 || out[i] < -3000) {
			if (!onset)
				onset = i;
			last = i;
		}
	CHECK(onset > 0);
	if (!onset)
		goto out;
	int64_t onset_ns = t0 + (int64_t)onset * SEC / AUDIO_RATE;
	fprintf(stderr, "    talk-back: first SINK_FRAME sent at +0, heard at %+.1f ms, for %.0f ms\n",
		(double)(onset_ns - first_sent) / 1e6, (double)(last - onset) * 1000 / AUDIO_RATE);
	CHECK(onset_ns >= first_sent && onset_ns - first_sent < 200 * MS);
	CHECK(last - onset > AUDIO_RATE * 9 / 10 && last - onset < AUDIO_RATE * 11 / 10);
	double hz = pc_test_zero_crossing_hz(out, onset + 4800, onset + 43200, AUDIO_RATE);
	CHECK(fabs(hz - 440) < 5);
	double sox_hz = sox_rough_frequency(spk, (long)onset + 4800, 38400);
	if (sox_hz == 0)
		fprintf(stderr, "    sox not found: its check skipped\n");
	else
		CHECK(fabs(sox_hz - 440) < 20);
	CHECK(pc_test_rms(out, 0, onset > 4800 ? onset - 4800 : 0) < 100);
out:
	free(out);
	if (fd >= 0)
		close(fd);
	pc_opus_encoder_destroy(enc);
	device_destroy(&d);
}


/* ---- the sub stream ---- */

/* Pictures of the sub stream as ffmpeg decodes them: how many, at w x h. -1 without ffmpeg. */
static int decoded_pictures(const char *h264, int width, int height)
{
	if (system("command -v ffmpeg >/dev/null 2>&1") != 0)
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "ffmpeg -nostdin -v error -f h264 -i '%s' -f rawvideo -pix_fmt gray - 2>/dev/null", h264);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t size = (size_t)width * (size_t)height;
	uint8_t *gray = malloc(size);
	int n = 0;
	while (gray && fread(gray, 1, size, p) == size)
		n++;
	free(gray);
	pclose(p);
	return n;
}

static void check_video_hello(const struct message *msg, uint8_t track, uint16_t flags, int width,
			      int height, uint32_t bitrate, uint8_t alternate_of)
{
	CHECK_EQ(msg->hdr.type, PC_IPC_HELLO);
	CHECK_EQ(msg->hdr.track, track);
	CHECK_EQ(msg->hdr.flags, flags);
	CHECK_EQ(msg->hdr.alternate_of, alternate_of);
	CHECK(msg->hdr.length >= PC_IPC_HELLO_SIZE);
	if (!msg->payload || msg->hdr.length < PC_IPC_HELLO_SIZE)
		return;
	const uint8_t *p = msg->payload;
	CHECK_EQ(p[0], 1);
	CHECK_EQ(p[1], 1);
	CHECK_EQ(le16(p + 2), width);
	CHECK_EQ(le16(p + 4), height);
	CHECK_EQ(le16(p + 6), 30);
	CHECK_EQ(le16(p + 10), 7);
	CHECK_EQ(le32(p + 12), bitrate);
	CHECK_EQ(le32(p + 16), 1000);
}

/* --sub: a second video track (the next free id, an alternate of track 1) with the main
 * stream's capture times; KEYFRAME and BITRATE per track; VIEWERS 0 stops its encoding and
 * VIEWERS 1 resumes it with an IDR; FPS on it changes the capture rate of both. */
static void test_e2e_sub_stream(void)
{
	struct device d;
	struct message msg;
	int fd = -1;
	FILE *sub_out = NULL;
	CHECK(device_init(&d) && device_listen(&d));
	const char *h264 = device_file(&d, "sub.h264");
	sub_out = fopen(h264, "wb");
	const char *args[] = {"--socket", d.sock, "--size", "640x360", "--fps", "30", "--gop", "1000",
			      "--pattern", "busy", "--sub", "320x180", "--name", "sub", NULL};
	d.producer = spawn(d.log, args, NULL);
	fd = accept_timeout(d.listen_fd, TIMEOUT_MS);
	CHECK(fd >= 0 && sub_out != NULL);
	if (fd < 0 || !sub_out)
		goto out;

	/* The main HELLO, then the sub's (LAST), naming track 1 in header byte 25. */
	CHECK_EQ(read_message(fd, &msg), 1);
	check_video_hello(&msg, 1, 0, 640, 360, 2000000, 0);
	free(msg.payload);
	CHECK_EQ(read_message(fd, &msg), 1);
	check_video_hello(&msg, 2, PC_IPC_HELLO_FLAG_LAST, 320, 180, 500000, 1);
	free(msg.payload);

	/* Each picture on both tracks, main first, the same capture time; both start with an IDR;
	 * each track counts its own frames. */
	int64_t last_main = 0, last_sub = 0;
	int sub_frames = 0;
	for (uint32_t i = 0; i < 10; i++) {
		CHECK_EQ(read_message(fd, &msg), 1);
		CHECK_EQ(msg.hdr.track, 1);
		CHECK_EQ(msg.hdr.seq, i);
		int64_t ts = msg.hdr.timestamp_ns;
		bool key = check_access_unit_on(&msg, 1, &last_main);
		CHECK_EQ(key, i == 0);
		free(msg.payload);
		CHECK_EQ(read_message(fd, &msg), 1);
		CHECK_EQ(msg.hdr.track, 2);
		CHECK_EQ(msg.hdr.seq, i);
		CHECK_EQ(msg.hdr.timestamp_ns, ts);
		key = check_access_unit_on(&msg, 2, &last_sub);
		CHECK_EQ(key, i == 0);
		if (msg.payload && msg.hdr.length > 8) {
			fwrite(msg.payload + 8, 1, msg.hdr.length - 8, sub_out);
			sub_frames++;
		}
		free(msg.payload);
	}

	/* KEYFRAME on the sub track: an IDR there, not on the main track. */
	send_message(fd, 2, PC_IPC_KEYFRAME, 2, 0, NULL, 0);
	const uint8_t bitrate[4] = {0x40, 0x0d, 0x03, 0x00}; /* 200000 */
	send_message(fd, 2, PC_IPC_BITRATE, 2, 0, bitrate, 4);
	int main_keys = 0, sub_keys = 0;
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(read_message(fd, &msg), 1);
		if (msg.hdr.track == 1)
			main_keys += check_access_unit_on(&msg, 1, &last_main);
		else if (msg.hdr.track == 2) {
			sub_keys += check_access_unit_on(&msg, 2, &last_sub);
			if (msg.payload && msg.hdr.length > 8) {
				fwrite(msg.payload + 8, 1, msg.hdr.length - 8, sub_out);
				sub_frames++;
			}
		}
		free(msg.payload);
	}
	CHECK_EQ(main_keys, 0);
	CHECK_EQ(sub_keys, 1);

	/* VIEWERS 0 on the sub track: it stops (a picture or two in flight may still come);
	 * the main one goes on. */
	const uint8_t none[4] = {0, 0, 0, 0}, one[4] = {1, 0, 0, 0};
	send_message(fd, 2, PC_IPC_VIEWERS, 2, 0, none, 4);
	int late_sub = 0, main_frames = 0;
	for (int i = 0; i < 30; i++) {
		CHECK_EQ(read_message(fd, &msg), 1);
		if (msg.hdr.track == 2) {
			late_sub++;
			CHECK(main_frames <= 2);
		} else {
			main_frames++;
		}
		free(msg.payload);
	}
	CHECK(late_sub <= 2);

	/* VIEWERS 1: the sub stream comes back with an IDR, at a main picture's capture time. */
	send_message(fd, 2, PC_IPC_VIEWERS, 2, 0, one, 4);
	int64_t main_ts = 0;
	bool resumed = false;
	for (int i = 0; i < 10 && !resumed; i++) {
		if (read_message(fd, &msg) != 1)
			break;
		if (msg.hdr.track == 1) {
			main_ts = msg.hdr.timestamp_ns;
		} else if (msg.hdr.track == 2) {
			resumed = true;
			CHECK_EQ(msg.hdr.timestamp_ns, main_ts); /* the picture just sent on track 1 */
			CHECK(check_access_unit_on(&msg, 2, &last_sub));
		}
		free(msg.payload);
	}
	CHECK(resumed);

	/* FPS on the sub track: both tracks at 15 per second from then on. */
	const uint8_t fps15[4] = {15, 0, 1, 0};
	send_message(fd, 2, PC_IPC_FPS, 2, 0, fps15, 4);
	int64_t first[3] = {0, 0, 0}, last[3] = {0, 0, 0};
	int count[3] = {0, 0, 0};
	for (int i = 0; i < 24; i++) {
		CHECK_EQ(read_message(fd, &msg), 1);
		uint8_t t = msg.hdr.track <= 2 ? msg.hdr.track : 0;
		if (i >= 4 && t) { /* past what was in flight */
			if (!count[t])
				first[t] = msg.hdr.timestamp_ns;
			last[t] = msg.hdr.timestamp_ns;
			count[t]++;
		}
		free(msg.payload);
	}
	for (int t = 1; t <= 2; t++) {
		CHECK(count[t] >= 8);
		if (count[t] >= 2) {
			double period_ms = (double)(last[t] - first[t]) / (count[t] - 1) / 1e6;
			CHECK(period_ms > 60 && period_ms < 75);
		}
	}

	kill(d.producer, SIGTERM);
	int r;
	while ((r = read_message(fd, &msg)) == 1 && msg.hdr.type == PC_IPC_FRAME)
		free(msg.payload);
	CHECK_EQ(r, 1);
	CHECK_EQ(msg.hdr.type, PC_IPC_BYE);
	free(msg.payload);
	int status = wait_exit(d.producer, TIMEOUT_MS);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(log_has(d.log, "sub bitrate 200000 bit/s"));
	CHECK(log_has(d.log, "0 sub viewers"));
	CHECK(log_has(d.log, "frame rate 15/1"));
	CHECK(log_has(d.log, "skipped without viewers"));

	/* What went out on track 2 decodes as a 320x180 stream. */
	fclose(sub_out);
	sub_out = NULL;
	int decoded = decoded_pictures(h264, 320, 180);
	if (decoded < 0)
		fprintf(stderr, "    ffmpeg not found: sub stream decode check skipped\n");
	else
		CHECK_EQ(decoded, sub_frames);
out:
	if (sub_out)
		fclose(sub_out);
	if (fd >= 0)
		close(fd);
	device_destroy(&d);
}

void pc_test_e2e(void)
{
	RUN_TEST(test_e2e_frames_and_control);
	RUN_TEST(test_e2e_reconnect_and_sigterm);
	RUN_TEST(test_cli);
	RUN_TEST(test_e2e_testtone_and_flash);
	RUN_TEST(test_e2e_alsa_mic);
	RUN_TEST(test_e2e_alsa_talkback);
	RUN_TEST(test_e2e_sub_stream);
}
