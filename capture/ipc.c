/* The capture socket protocol, version 2. See ipc.h and docs/ipc.md. */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* One keyframe of a 1080p stream at a few Mbit/s is a few hundred KiB: with 1 MiB it goes
 * out in one call. The kernel caps the value at net.core.wmem_max, which is fine: the send
 * then just blocks a little longer while the device reads. */
#define PC_IPC_SNDBUF (1024 * 1024)
/* A device that stops reading for this long is treated as gone. */
#define PC_IPC_SEND_TIMEOUT_MS 2000

/* ---- little-endian helpers: byte by byte, whatever the host order ---- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* ---- statuses ---- */

bool pc_ipc_status_is_fatal(enum pc_ipc_status status)
{
	return status == PC_IPC_BAD_MAGIC || status == PC_IPC_BAD_VERSION ||
	       status == PC_IPC_TOO_LARGE;
}

const char *pc_ipc_status_str(enum pc_ipc_status status)
{
	switch (status) {
	case PC_IPC_OK:
		return "ok";
	case PC_IPC_AGAIN:
		return "incomplete message";
	case PC_IPC_UNKNOWN_TYPE:
		return "unknown message type";
	case PC_IPC_BAD_LENGTH:
		return "wrong payload length for the type";
	case PC_IPC_BAD_VALUE:
		return "invalid value";
	case PC_IPC_BAD_MAGIC:
		return "bad magic (not P2PC)";
	case PC_IPC_BAD_VERSION:
		return "unsupported protocol version";
	case PC_IPC_TOO_LARGE:
		return "payload over 8 MiB";
	}
	return "unknown status";
}

/* ---- header ---- */

void pc_ipc_header_pack(const struct pc_ipc_header *hdr, uint8_t out[PC_IPC_HEADER_SIZE])
{
	memcpy(out + PC_IPC_OFF_MAGIC, PC_IPC_MAGIC, PC_IPC_MAGIC_SIZE);
	out[PC_IPC_OFF_VERSION] = hdr->version;
	out[PC_IPC_OFF_TYPE] = hdr->type;
	put_le16(out + PC_IPC_OFF_FLAGS, hdr->flags);
	put_le64(out + PC_IPC_OFF_TIMESTAMP, (uint64_t)hdr->timestamp_ns);
	put_le32(out + PC_IPC_OFF_SEQ, hdr->seq);
	put_le32(out + PC_IPC_OFF_LENGTH, hdr->length);
	out[PC_IPC_OFF_TRACK] = hdr->track;
	out[PC_IPC_OFF_ALTERNATE_OF] = hdr->alternate_of;
	memset(out + PC_IPC_OFF_RESERVED, 0, PC_IPC_HEADER_SIZE - PC_IPC_OFF_RESERVED);
}

enum pc_ipc_status pc_ipc_header_unpack(const uint8_t in[PC_IPC_HEADER_SIZE],
					struct pc_ipc_header *hdr)
{
	memset(hdr, 0, sizeof(*hdr));
	if (memcmp(in + PC_IPC_OFF_MAGIC, PC_IPC_MAGIC, PC_IPC_MAGIC_SIZE) != 0)
		return PC_IPC_BAD_MAGIC;
	hdr->version = in[PC_IPC_OFF_VERSION];
	hdr->type = in[PC_IPC_OFF_TYPE];
	hdr->flags = get_le16(in + PC_IPC_OFF_FLAGS);
	hdr->timestamp_ns = (int64_t)get_le64(in + PC_IPC_OFF_TIMESTAMP);
	hdr->seq = get_le32(in + PC_IPC_OFF_SEQ);
	hdr->length = get_le32(in + PC_IPC_OFF_LENGTH);
	hdr->track = in[PC_IPC_OFF_TRACK];
	hdr->alternate_of = in[PC_IPC_OFF_ALTERNATE_OF];
	if (hdr->version != PC_IPC_VERSION)
		return PC_IPC_BAD_VERSION;
	if (hdr->length > PC_IPC_MAX_PAYLOAD)
		return PC_IPC_TOO_LARGE;
	return PC_IPC_OK;
}

/* ---- HELLO ---- */

/* The optional name after the fixed part; returns its length. */
static size_t pack_name(uint8_t *out, const char *name)
{
	size_t len = name ? strnlen(name, PC_IPC_NAME_MAX) : 0;
	memcpy(out + PC_IPC_HELLO_SIZE, name ? name : "", len);
	return len;
}

size_t pc_ipc_hello_pack(const struct pc_ipc_hello *hello,
			 uint8_t out[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX])
{
	out[0] = PC_IPC_KIND_VIDEO;
	out[1] = PC_IPC_CODEC_H264;
	put_le16(out + 2, hello->width);
	put_le16(out + 4, hello->height);
	put_le16(out + 6, hello->fps_num);
	put_le16(out + 8, hello->fps_den);
	put_le16(out + 10, hello->capabilities);
	put_le32(out + 12, hello->bitrate);
	put_le32(out + 16, hello->gop);

	return PC_IPC_HELLO_SIZE + pack_name(out, hello->name);
}

size_t pc_ipc_audio_hello_pack(const struct pc_ipc_audio_hello *hello,
			       uint8_t out[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX])
{
	memset(out, 0, PC_IPC_HELLO_SIZE); /* the reserved fields */
	out[0] = PC_IPC_KIND_AUDIO;
	out[1] = hello->codec;
	out[2] = hello->channels;
	put_le32(out + 4, hello->sample_rate);
	put_le16(out + 10, hello->capabilities);
	put_le32(out + 12, hello->bitrate);
	put_le32(out + 16, hello->frame_us);
	return PC_IPC_HELLO_SIZE + pack_name(out, hello->name);
}

/* ---- control messages ---- */

static bool is_control_type(uint8_t type)
{
	return type == PC_IPC_KEYFRAME || type == PC_IPC_BITRATE || type == PC_IPC_FPS ||
	       type == PC_IPC_VIEWERS || type == PC_IPC_SINK_FRAME;
}

/* The largest payload the reader buffers for a type; longer ones are skipped. */
static uint32_t payload_max(uint8_t type)
{
	return type == PC_IPC_SINK_FRAME ? PC_IPC_SINK_FRAME_MAX : PC_IPC_CONTROL_PAYLOAD_MAX;
}

/* Clears the header and the small fields; the sink packet area is only written when used,
 * so reading a message costs no 1.5 KiB memset. */
static void control_clear(struct pc_ipc_control *out, const struct pc_ipc_header *hdr)
{
	out->hdr = *hdr;
	memset(&out->u, 0, sizeof(out->u.bitrate)); /* as large as fps, viewers and sink.size */
}

enum pc_ipc_status pc_ipc_control_parse(const struct pc_ipc_header *hdr, const uint8_t *payload,
					struct pc_ipc_control *out)
{
	control_clear(out, hdr);

	if (!is_control_type(hdr->type))
		return PC_IPC_UNKNOWN_TYPE;
	if (hdr->track == PC_IPC_TRACK_CONNECTION)
		return PC_IPC_BAD_VALUE; /* every device -> producer message is about a track */

	switch (hdr->type) {
	case PC_IPC_KEYFRAME:
		return hdr->length == 0 ? PC_IPC_OK : PC_IPC_BAD_LENGTH;
	case PC_IPC_BITRATE:
		if (hdr->length != 4)
			return PC_IPC_BAD_LENGTH;
		out->u.bitrate = get_le32(payload);
		return out->u.bitrate ? PC_IPC_OK : PC_IPC_BAD_VALUE;
	case PC_IPC_FPS:
		if (hdr->length != 4)
			return PC_IPC_BAD_LENGTH;
		out->u.fps.num = get_le16(payload);
		out->u.fps.den = get_le16(payload + 2);
		return out->u.fps.num && out->u.fps.den ? PC_IPC_OK : PC_IPC_BAD_VALUE;
	case PC_IPC_VIEWERS:
		if (hdr->length != 4)
			return PC_IPC_BAD_LENGTH;
		out->u.viewers = get_le32(payload);
		return PC_IPC_OK;
	case PC_IPC_SINK_FRAME:
		if (hdr->length == 0 || hdr->length > PC_IPC_SINK_FRAME_MAX)
			return PC_IPC_BAD_LENGTH;
		out->u.sink.size = (uint16_t)hdr->length;
		memcpy(out->u.sink.data, payload, hdr->length);
		return PC_IPC_OK;
	default:
		return PC_IPC_UNKNOWN_TYPE;
	}
}

void pc_ipc_reader_reset(struct pc_ipc_reader *reader)
{
	reader->len = 0;
	reader->skip = 0;
}

size_t pc_ipc_reader_push(struct pc_ipc_reader *reader, const uint8_t *data, size_t len)
{
	size_t room = sizeof(reader->buf) - reader->len;
	size_t n = len < room ? len : room;
	memcpy(reader->buf + reader->len, data, n);
	reader->len += n;
	return n;
}

long pc_ipc_reader_fill(struct pc_ipc_reader *reader, int fd)
{
	size_t room = sizeof(reader->buf) - reader->len;
	if (room == 0)
		return -ENOBUFS; /* the caller forgot to drain with pc_ipc_reader_next() */
	for (;;) {
		ssize_t n = recv(fd, reader->buf + reader->len, room, MSG_DONTWAIT);
		if (n >= 0) {
			reader->len += (size_t)n;
			return (long)n;
		}
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static void reader_consume(struct pc_ipc_reader *reader, size_t n)
{
	memmove(reader->buf, reader->buf + n, reader->len - n);
	reader->len -= n;
}

static void reader_drop_skipped(struct pc_ipc_reader *reader)
{
	size_t n = reader->skip < reader->len ? reader->skip : reader->len;
	reader_consume(reader, n);
	reader->skip -= (uint32_t)n;
}

enum pc_ipc_status pc_ipc_reader_next(struct pc_ipc_reader *reader, struct pc_ipc_control *out)
{
	reader_drop_skipped(reader);
	if (reader->skip > 0 || reader->len < PC_IPC_HEADER_SIZE)
		return PC_IPC_AGAIN;

	struct pc_ipc_header hdr;
	enum pc_ipc_status status = pc_ipc_header_unpack(reader->buf, &hdr);
	if (status != PC_IPC_OK) {
		control_clear(out, &hdr);
		return status;
	}

	if (hdr.length > payload_max(hdr.type)) {
		/* Too long for any message of its type: report it now, drop the payload as it
		 * comes. */
		control_clear(out, &hdr);
		reader_consume(reader, PC_IPC_HEADER_SIZE);
		reader->skip = hdr.length;
		reader_drop_skipped(reader);
		return is_control_type(hdr.type) ? PC_IPC_BAD_LENGTH : PC_IPC_UNKNOWN_TYPE;
	}

	size_t total = PC_IPC_HEADER_SIZE + hdr.length;
	if (reader->len < total)
		return PC_IPC_AGAIN;
	status = pc_ipc_control_parse(&hdr, reader->buf + PC_IPC_HEADER_SIZE, out);
	reader_consume(reader, total);
	return status;
}

/* ---- connection ---- */

int pc_ipc_connect(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t path_len = strlen(path);
	if (path_len == 0)
		return -EINVAL;
	if (path_len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, path_len + 1);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	/* Both are best effort: the protocol works without them, only less smoothly. */
	int sndbuf = PC_IPC_SNDBUF;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	struct timeval timeout = {
		.tv_sec = PC_IPC_SEND_TIMEOUT_MS / 1000,
		.tv_usec = (PC_IPC_SEND_TIMEOUT_MS % 1000) * 1000,
	};
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));

	if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/* Scatter-gather send of the whole message: sendmsg() is writev() plus flags, and the
 * flag we need is MSG_NOSIGNAL. The iovecs are advanced in place on partial writes. */
static int send_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
		ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT; /* SO_SNDTIMEO expired */
			return -errno;
		}
		size_t left = (size_t)sent;
		while (iovcnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static void make_header(uint8_t out[PC_IPC_HEADER_SIZE], uint8_t type, uint8_t track,
			uint16_t flags, int64_t timestamp_ns, uint32_t seq, uint32_t length)
{
	struct pc_ipc_header hdr = {
		.version = PC_IPC_VERSION,
		.track = track,
		.type = type,
		.flags = flags,
		.timestamp_ns = timestamp_ns,
		.seq = seq,
		.length = length,
	};
	pc_ipc_header_pack(&hdr, out);
}

static int send_hello_payload(int fd, uint8_t track, uint16_t flags, uint8_t alternate_of,
			      const uint8_t *payload, size_t len)
{
	uint8_t header[PC_IPC_HEADER_SIZE];
	struct pc_ipc_header hdr = {
		.version = PC_IPC_VERSION,
		.type = PC_IPC_HELLO,
		.flags = flags,
		.length = (uint32_t)len,
		.track = track,
		.alternate_of = alternate_of,
	};
	pc_ipc_header_pack(&hdr, header);
	struct iovec iov[2] = {{header, sizeof(header)}, {(void *)payload, len}};
	return send_all(fd, iov, 2);
}

int pc_ipc_send_hello(int fd, uint8_t track, uint16_t flags, const struct pc_ipc_hello *hello)
{
	uint8_t payload[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX];
	size_t len = pc_ipc_hello_pack(hello, payload);
	return send_hello_payload(fd, track, flags, hello->alternate_of, payload, len);
}

int pc_ipc_send_audio_hello(int fd, uint8_t track, uint16_t flags,
			    const struct pc_ipc_audio_hello *hello)
{
	uint8_t payload[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX];
	size_t len = pc_ipc_audio_hello_pack(hello, payload);
	return send_hello_payload(fd, track, flags, 0, payload, len);
}

int pc_ipc_send_frame(int fd, uint8_t track, uint32_t seq, uint16_t flags, int64_t capture_ns,
		      int64_t encoded_ns, const uint8_t *data, size_t size)
{
	if (size == 0 || size > PC_IPC_MAX_PAYLOAD - PC_IPC_ENCODED_TIME_SIZE)
		return -EMSGSIZE;
	if (track == PC_IPC_TRACK_CONNECTION)
		return -EINVAL;
	uint8_t header[PC_IPC_HEADER_SIZE];
	uint8_t encoded_time[PC_IPC_ENCODED_TIME_SIZE];
	make_header(header, PC_IPC_FRAME, track, flags, capture_ns, seq,
		    (uint32_t)(PC_IPC_ENCODED_TIME_SIZE + size));
	put_le64(encoded_time, (uint64_t)encoded_ns);
	/* The encoder's buffer goes out as it is: no copy of the picture. */
	struct iovec iov[3] = {
		{header, sizeof(header)},
		{encoded_time, sizeof(encoded_time)},
		{(void *)data, size},
	};
	return send_all(fd, iov, 3);
}

size_t pc_ipc_event_pack(const struct pc_ipc_event *ev,
			 uint8_t out[PC_IPC_EVENT_SIZE + PC_IPC_EVENT_MAX_REGIONS * PC_IPC_EVENT_REGION_SIZE])
{
	uint8_t n = ev->n_regions > PC_IPC_EVENT_MAX_REGIONS ? PC_IPC_EVENT_MAX_REGIONS : ev->n_regions;
	put_le32(out, ev->id);
	out[4] = ev->kind;
	out[5] = n;
	put_le16(out + 6, ev->score);
	put_le64(out + 8, (uint64_t)ev->start_ns);
	put_le64(out + 16, (uint64_t)(ev->end ? ev->end_ns : 0));
	for (int i = 0; i < n; i++) {
		uint8_t *r = out + PC_IPC_EVENT_SIZE + i * PC_IPC_EVENT_REGION_SIZE;
		put_le16(r, ev->regions[i].x);
		put_le16(r + 2, ev->regions[i].y);
		put_le16(r + 4, ev->regions[i].w);
		put_le16(r + 6, ev->regions[i].h);
	}
	return PC_IPC_EVENT_SIZE + (size_t)n * PC_IPC_EVENT_REGION_SIZE;
}

int pc_ipc_send_event(int fd, uint8_t track, uint32_t seq, const struct pc_ipc_event *ev)
{
	if (track == PC_IPC_TRACK_CONNECTION || ev->id == 0 || ev->n_regions > PC_IPC_EVENT_MAX_REGIONS ||
	    ev->start_ns <= 0 || (ev->end && ev->end_ns < ev->start_ns))
		return -EINVAL;
	uint8_t payload[PC_IPC_EVENT_SIZE + PC_IPC_EVENT_MAX_REGIONS * PC_IPC_EVENT_REGION_SIZE];
	size_t len = pc_ipc_event_pack(ev, payload);
	uint8_t header[PC_IPC_HEADER_SIZE];
	make_header(header, PC_IPC_EVENT, track, ev->end ? PC_IPC_EVENT_FLAG_END : 0,
		    ev->end ? ev->end_ns : ev->start_ns, seq, (uint32_t)len);
	struct iovec iov[2] = {{header, sizeof(header)}, {payload, len}};
	return send_all(fd, iov, 2);
}

int pc_ipc_send_bye(int fd, uint32_t seq)
{
	uint8_t header[PC_IPC_HEADER_SIZE];
	make_header(header, PC_IPC_BYE, PC_IPC_TRACK_CONNECTION, 0, 0, seq, 0);
	struct iovec iov[1] = {{header, sizeof(header)}};
	return send_all(fd, iov, 1);
}

/* ---- reconnection backoff ---- */

void pc_ipc_backoff_init(struct pc_ipc_backoff *backoff, uint32_t seed)
{
	backoff->rng = seed ? seed : 0x9e3779b9u;
	pc_ipc_backoff_reset(backoff);
}

void pc_ipc_backoff_reset(struct pc_ipc_backoff *backoff)
{
	backoff->base_ms = PC_IPC_BACKOFF_MIN_MS;
}

static uint32_t xorshift32(uint32_t *state)
{
	uint32_t x = *state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

uint32_t pc_ipc_backoff_next_ms(struct pc_ipc_backoff *backoff)
{
	uint32_t base = backoff->base_ms;
	uint32_t half = base / 2;
	uint32_t delay = half + xorshift32(&backoff->rng) % (base - half + 1);
	backoff->base_ms = base * 2 > PC_IPC_BACKOFF_MAX_MS ? PC_IPC_BACKOFF_MAX_MS : base * 2;
	return delay;
}
