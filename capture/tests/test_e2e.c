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

#include "../ipc.h"
#include "check.h"

#define TIMEOUT_MS 5000

struct device {
	char dir[64];
	char sock[128];
	char log[128];
	int listen_fd;
	pid_t producer;
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

/* Runs the producer with args (NULL-terminated), its stderr into the log file. */
static pid_t spawn(const char *log, const char *const *args, const char *stdout_path)
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
		execv(pc_check_producer, (char *const *)argv);
		_exit(127);
	}
	return pid;
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
	unlink(d->sock);
	unlink(d->log);
	rmdir(d->dir);
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

/* Checks an ACCESS_UNIT; returns its keyframe flag. */
static bool check_access_unit(const struct message *msg, int64_t *last_ts)
{
	CHECK_EQ(msg->hdr.type, PC_IPC_FRAME);
	CHECK_EQ(msg->hdr.track, 1);
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

void pc_test_e2e(void)
{
	RUN_TEST(test_e2e_frames_and_control);
	RUN_TEST(test_e2e_reconnect_and_sigterm);
	RUN_TEST(test_cli);
}
