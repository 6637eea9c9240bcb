/* The capture socket protocol, version 2 (docs/ipc.md): framing with a track id, one HELLO
 * per track (video, audio, audio sinks), FRAME, BYE, and the device's messages (control per
 * track, SINK_FRAME).
 *
 * This module speaks the protocol and nothing else: it takes no program config and never
 * logs. Every function reports failure through its return value (a negative errno, or a
 * pc_ipc_status), and the caller decides what to say and what to do next. */
#ifndef PC_IPC_H
#define PC_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_IPC_MAGIC "P2PC"
#define PC_IPC_MAGIC_SIZE 4
#define PC_IPC_VERSION 2
#define PC_IPC_HEADER_SIZE 28
#define PC_IPC_MAX_PAYLOAD (8u * 1024u * 1024u)
#define PC_IPC_HELLO_SIZE 20     /* fixed part of a HELLO payload (video and audio alike) */
#define PC_IPC_NAME_MAX 64       /* producer name bytes after it */
#define PC_IPC_ENCODED_TIME_SIZE 8
#define PC_IPC_MAX_TRACKS 16
/* An Opus packet is at most 1275 bytes per frame (RFC 6716): anything longer is skipped. */
#define PC_IPC_SINK_FRAME_MAX 1500

/* Byte offsets inside the 28-byte header (docs/ipc.md, "Version 2"). */
enum {
	PC_IPC_OFF_MAGIC = 0,
	PC_IPC_OFF_VERSION = 4,
	PC_IPC_OFF_TYPE = 5,
	PC_IPC_OFF_FLAGS = 6,
	PC_IPC_OFF_TIMESTAMP = 8,
	PC_IPC_OFF_SEQ = 16,
	PC_IPC_OFF_LENGTH = 20,
	PC_IPC_OFF_TRACK = 24,
	PC_IPC_OFF_ALTERNATE_OF = 25, /* a video HELLO's; reserved (0) in every other message */
	PC_IPC_OFF_RESERVED = 26,     /* 2 bytes */
};

enum pc_ipc_type {
	/* producer -> device */
	PC_IPC_HELLO = 0x01,
	PC_IPC_FRAME = 0x02, /* version 1: ACCESS_UNIT */
	PC_IPC_BYE = 0x03,
	PC_IPC_EVENT = 0x04, /* a detection event's start or end (CAP_EVENTS on the video HELLO) */
	/* device -> producer */
	PC_IPC_KEYFRAME = 0x81,
	PC_IPC_BITRATE = 0x82,
	PC_IPC_FPS = 0x83,
	PC_IPC_VIEWERS = 0x84,
	PC_IPC_SINK_FRAME = 0x85,
};

#define PC_IPC_FLAG_KEYFRAME 0x0001u    /* video FRAME flags bit 0 */
#define PC_IPC_HELLO_FLAG_LAST 0x0001u  /* the last HELLO of the connection */
#define PC_IPC_HELLO_FLAG_SINK 0x0002u  /* a track the producer plays */
#define PC_IPC_SINK_FLAG_RESUME 0x0001u /* first SINK_FRAME after a gap */
#define PC_IPC_EVENT_FLAG_END 0x0001u   /* EVENT: the event ended (else: it started) */

/* Track 0 is the connection itself (BYE); tracks are 1..255. */
#define PC_IPC_TRACK_CONNECTION 0

/* HELLO capability bits. */
#define PC_IPC_CAP_KEYFRAME 0x0001u
#define PC_IPC_CAP_BITRATE 0x0002u
#define PC_IPC_CAP_FPS 0x0004u
/* Video HELLO: the producer analyses this track's pictures and may send EVENTs about it. */
#define PC_IPC_CAP_EVENTS 0x0008u

#define PC_IPC_KIND_VIDEO 1
#define PC_IPC_KIND_AUDIO 2
#define PC_IPC_CODEC_H264 1
#define PC_IPC_CODEC_OPUS 3
#define PC_IPC_CODEC_PCMA 4
#define PC_IPC_CODEC_PCMU 5

enum pc_ipc_status {
	PC_IPC_OK = 0,
	PC_IPC_AGAIN,        /* not a whole message buffered yet */
	PC_IPC_UNKNOWN_TYPE, /* skipped: a type this producer does not know */
	PC_IPC_BAD_LENGTH,   /* skipped: a known type with the wrong payload length */
	PC_IPC_BAD_VALUE,    /* skipped: e.g. FPS with a zero numerator or denominator, track 0 */
	PC_IPC_BAD_MAGIC,    /* fatal for the connection */
	PC_IPC_BAD_VERSION,  /* fatal for the connection */
	PC_IPC_TOO_LARGE,    /* fatal for the connection: length over PC_IPC_MAX_PAYLOAD */
};

/* True for the statuses after which the byte stream cannot be trusted any more. */
bool pc_ipc_status_is_fatal(enum pc_ipc_status status);
const char *pc_ipc_status_str(enum pc_ipc_status status);

struct pc_ipc_header {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	int64_t timestamp_ns;
	uint32_t seq;
	uint32_t length;
	uint8_t track;
	/* Video HELLO only: the track id of the main rendition this track is an alternate of
	 * (a smaller rendition of the same pictures), 0 = none. 0 in every other message. */
	uint8_t alternate_of;
};

/* Explicit little-endian packing, independent of host byte order and struct layout. */
void pc_ipc_header_pack(const struct pc_ipc_header *hdr, uint8_t out[PC_IPC_HEADER_SIZE]);
/* Checks magic, version and the payload limit; fills *hdr as far as it could be read. The
 * reserved bytes are ignored (alternate_of is read as it is, whatever the type). */
enum pc_ipc_status pc_ipc_header_unpack(const uint8_t in[PC_IPC_HEADER_SIZE],
					struct pc_ipc_header *hdr);

/* Video HELLO payload (kind 1, H.264). */
struct pc_ipc_hello {
	uint16_t width;
	uint16_t height;
	uint16_t fps_num;
	uint16_t fps_den;
	uint16_t capabilities;
	uint32_t bitrate;
	uint32_t gop;
	const char *name; /* may be NULL; truncated to PC_IPC_NAME_MAX bytes */
	/* The main rendition's track id when this track is an alternate (a second, smaller
	 * encoding of the same pictures): sent in the header (PC_IPC_OFF_ALTERNATE_OF), and the
	 * main track's HELLO must go first. 0 = not an alternate. */
	uint8_t alternate_of;
};

/* Writes the video HELLO payload, returns its length (20 + name bytes). */
size_t pc_ipc_hello_pack(const struct pc_ipc_hello *hello,
			 uint8_t out[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX]);

/* Audio HELLO payload (kind 2). */
struct pc_ipc_audio_hello {
	uint8_t codec;    /* PC_IPC_CODEC_OPUS, _PCMA, _PCMU */
	uint8_t channels; /* 1 or 2 */
	uint32_t sample_rate;
	uint16_t capabilities; /* PC_IPC_CAP_BITRATE or 0 */
	uint32_t bitrate;      /* bit/s, 0 = unknown */
	uint32_t frame_us;     /* frame duration */
	const char *name;      /* may be NULL; truncated to PC_IPC_NAME_MAX bytes */
};

/* Writes the audio HELLO payload, returns its length (20 + name bytes). */
size_t pc_ipc_audio_hello_pack(const struct pc_ipc_audio_hello *hello,
			       uint8_t out[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX]);

/* EVENT payload: 24 bytes, then 8 per region (docs/ipc.md). */
#define PC_IPC_EVENT_SIZE 24
#define PC_IPC_EVENT_REGION_SIZE 8
#define PC_IPC_EVENT_MAX_REGIONS 16
#define PC_IPC_EVENT_KIND_MOTION 1
#define PC_IPC_SHARE_ONE 65535u /* shares (score, regions) in 1/65535ths */

struct pc_ipc_event {
	uint32_t id;        /* the producer's, from 1; not 0 */
	uint8_t kind;       /* PC_IPC_EVENT_KIND_MOTION */
	bool end;           /* flags bit 0 */
	uint16_t score;     /* 0..PC_IPC_SHARE_ONE */
	int64_t start_ns;   /* CLOCK_REALTIME */
	int64_t end_ns;     /* 0 unless end; then at least start_ns */
	uint8_t n_regions;  /* at most PC_IPC_EVENT_MAX_REGIONS */
	struct {
		uint16_t x, y, w, h; /* x + w and y + h at most PC_IPC_SHARE_ONE */
	} regions[PC_IPC_EVENT_MAX_REGIONS];
};

/* Writes the EVENT payload, returns its length (24 + 8 per region). */
size_t pc_ipc_event_pack(const struct pc_ipc_event *ev,
			 uint8_t out[PC_IPC_EVENT_SIZE + PC_IPC_EVENT_MAX_REGIONS * PC_IPC_EVENT_REGION_SIZE]);

/* A parsed device -> producer message. */
struct pc_ipc_control {
	struct pc_ipc_header hdr;
	union {
		uint32_t bitrate; /* PC_IPC_BITRATE, bit/s */
		struct {
			uint16_t num, den;
		} fps;            /* PC_IPC_FPS */
		uint32_t viewers; /* PC_IPC_VIEWERS */
		struct {
			uint16_t size;
			uint8_t data[PC_IPC_SINK_FRAME_MAX];
		} sink;           /* PC_IPC_SINK_FRAME: one packet, copied (no allocation) */
	} u;
};

/* Parses one complete message from the device (header already unpacked). Every type needs
 * a track (not 0); SINK_FRAME needs 1..PC_IPC_SINK_FRAME_MAX payload bytes. */
enum pc_ipc_status pc_ipc_control_parse(const struct pc_ipc_header *hdr, const uint8_t *payload,
					struct pc_ipc_control *out);

/* Incremental reader for the device -> producer direction. Control payloads are a few
 * bytes and a SINK_FRAME at most PC_IPC_SINK_FRAME_MAX; a longer payload (an unknown type, or
 * a bad length) is reported and then skipped without being buffered, so a large message
 * cannot make the producer allocate. */
#define PC_IPC_CONTROL_PAYLOAD_MAX 64
#define PC_IPC_READER_BUF 2048 /* one header + the largest SINK_FRAME, with room to spare */

struct pc_ipc_reader {
	uint8_t buf[PC_IPC_READER_BUF];
	size_t len;
	uint32_t skip; /* payload bytes still to drop */
};

void pc_ipc_reader_reset(struct pc_ipc_reader *reader);
/* Appends bytes; returns how many were taken (less than len when the buffer is full:
 * call pc_ipc_reader_next() to drain it, then push the rest). */
size_t pc_ipc_reader_push(struct pc_ipc_reader *reader, const uint8_t *data, size_t len);
/* Reads whatever the socket has without blocking. Returns bytes read (> 0), 0 on orderly
 * shutdown, -EAGAIN when nothing is pending, or another -errno. */
long pc_ipc_reader_fill(struct pc_ipc_reader *reader, int fd);
/* Extracts the next message. PC_IPC_OK fills *out; the skipped statuses fill out->hdr so the
 * caller can log it; PC_IPC_AGAIN means more bytes are needed. After a fatal status the
 * reader must be reset together with the connection. */
enum pc_ipc_status pc_ipc_reader_next(struct pc_ipc_reader *reader, struct pc_ipc_control *out);

/* Connects to the device's Unix stream socket. Returns the fd or -errno. The fd is blocking
 * with a send timeout (so a stalled device cannot freeze the producer forever) and a large
 * send buffer (so a keyframe fits). */
int pc_ipc_connect(const char *path);

/* Send helpers: 0, or -errno (a timeout is -ETIMEDOUT). Any failure, even a partial write,
 * leaves the stream out of step: the caller must close the connection. SIGPIPE is never
 * raised (MSG_NOSIGNAL). */
/* HELLO for track with flags (PC_IPC_HELLO_FLAG_*); seq is 0. */
int pc_ipc_send_hello(int fd, uint8_t track, uint16_t flags, const struct pc_ipc_hello *hello);
int pc_ipc_send_audio_hello(int fd, uint8_t track, uint16_t flags,
			    const struct pc_ipc_audio_hello *hello);
/* FRAME on track: capture_ns is the header timestamp, encoded_ns the 8-byte prefix, then
 * data (an Annex-B access unit, an Opus packet...) as it is, without a copy. */
int pc_ipc_send_frame(int fd, uint8_t track, uint32_t seq, uint16_t flags, int64_t capture_ns,
		      int64_t encoded_ns, const uint8_t *data, size_t size);
/* EVENT about a video track (its HELLO had PC_IPC_CAP_EVENTS); the header's timestamp is the
 * edge's time (the start, or the end). -EINVAL for a malformed event. */
int pc_ipc_send_event(int fd, uint8_t track, uint32_t seq, const struct pc_ipc_event *ev);
/* BYE on track 0. */
int pc_ipc_send_bye(int fd, uint32_t seq);

/* Reconnection delays: 50 ms doubling to 2 s, each with "equal jitter" (half fixed, half
 * random) so that several producers restarted together do not retry in lockstep. */
#define PC_IPC_BACKOFF_MIN_MS 50u
#define PC_IPC_BACKOFF_MAX_MS 2000u

struct pc_ipc_backoff {
	uint32_t base_ms;
	uint32_t rng; /* xorshift32 state, never 0 */
};

void pc_ipc_backoff_init(struct pc_ipc_backoff *backoff, uint32_t seed);
void pc_ipc_backoff_reset(struct pc_ipc_backoff *backoff);
/* Returns the delay to wait before the next attempt and advances the base delay. */
uint32_t pc_ipc_backoff_next_ms(struct pc_ipc_backoff *backoff);

#endif
