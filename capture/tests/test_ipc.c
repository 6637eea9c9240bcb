/* The socket protocol (version 2) against docs/ipc.md, byte by byte. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../ipc.h"
#include "check.h"

#define V PC_IPC_VERSION

static void pack_control(uint8_t *out, uint8_t version, uint8_t type, const uint8_t *payload,
			 uint32_t length)
{
	struct pc_ipc_header hdr = {.version = version, .type = type, .length = length, .track = 1};
	pc_ipc_header_pack(&hdr, out);
	if (length)
		memcpy(out + PC_IPC_HEADER_SIZE, payload, length);
}

static void test_header_layout(void)
{
	struct pc_ipc_header hdr = {
		.version = 2,
		.type = PC_IPC_FRAME,
		.flags = 0x0201,
		.timestamp_ns = 0x0102030405060708,
		.seq = 0x0a0b0c0d,
		.length = 0x00112233,
		.track = 0xfe,
		.alternate_of = 0x07,
	};
	static const uint8_t expected[PC_IPC_HEADER_SIZE] = {
		'P',  '2',  'P',  'C',                          /* 0: magic */
		0x02,                                           /* 4: version */
		0x02,                                           /* 5: type */
		0x01, 0x02,                                     /* 6: flags, LE */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* 8: timestamp, LE */
		0x0d, 0x0c, 0x0b, 0x0a,                         /* 16: seq, LE */
		0x33, 0x22, 0x11, 0x00,                         /* 20: length, LE */
		0xfe,                                           /* 24: track */
		0x07,                                           /* 25: alternate_of (video HELLO) */
		0x00, 0x00,                                     /* 26: reserved */
	};
	uint8_t buf[PC_IPC_HEADER_SIZE];
	pc_ipc_header_pack(&hdr, buf);
	for (int i = 0; i < PC_IPC_HEADER_SIZE; i++)
		CHECK_EQ(buf[i], expected[i]);
	CHECK_EQ(buf[0], 0x50);
	CHECK_EQ(buf[1], 0x32);
	CHECK_EQ(buf[2], 0x50);
	CHECK_EQ(buf[3], 0x43);
	CHECK_EQ(PC_IPC_OFF_VERSION, 4);
	CHECK_EQ(PC_IPC_OFF_TYPE, 5);
	CHECK_EQ(PC_IPC_OFF_FLAGS, 6);
	CHECK_EQ(PC_IPC_OFF_TIMESTAMP, 8);
	CHECK_EQ(PC_IPC_OFF_SEQ, 16);
	CHECK_EQ(PC_IPC_OFF_LENGTH, 20);
	CHECK_EQ(PC_IPC_OFF_TRACK, 24);
	CHECK_EQ(PC_IPC_OFF_ALTERNATE_OF, 25);
	CHECK_EQ(PC_IPC_HEADER_SIZE, 28);
	struct pc_ipc_header back;
	CHECK_EQ(pc_ipc_header_unpack(buf, &back), PC_IPC_OK);
	CHECK_EQ(back.track, 0xfe);
	CHECK_EQ(back.alternate_of, 0x07);

	/* Reserved bytes are ignored when read. */
	buf[25] = 0xaa;
	buf[27] = 0x55;
	struct pc_ipc_header out;
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_OK);
	CHECK_EQ(out.track, 0xfe);
	CHECK_EQ(out.length, 0x00112233);
}

static void test_header_round_trip(void)
{
	struct pc_ipc_header in = {
		.version = 2,
		.type = PC_IPC_HELLO,
		.track = 17,
		.flags = 0xffff,
		.timestamp_ns = -1234567890123456789,
		.seq = 0xfffffffe,
		.length = PC_IPC_MAX_PAYLOAD,
	}, out;
	uint8_t buf[PC_IPC_HEADER_SIZE];
	pc_ipc_header_pack(&in, buf);
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_OK);
	CHECK_EQ(out.version, in.version);
	CHECK_EQ(out.type, in.type);
	CHECK_EQ(out.flags, in.flags);
	CHECK_EQ(out.timestamp_ns, in.timestamp_ns);
	CHECK_EQ(out.seq, in.seq);
	CHECK_EQ(out.length, in.length);
	CHECK_EQ(out.track, 17);
	for (int track = 0; track < 256; track += 51) {
		in.track = (uint8_t)track;
		pc_ipc_header_pack(&in, buf);
		CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_OK);
		CHECK_EQ(out.track, track);
	}
}

static void test_header_refusals(void)
{
	struct pc_ipc_header hdr = {.version = V, .type = PC_IPC_KEYFRAME, .track = 1}, out;
	uint8_t buf[PC_IPC_HEADER_SIZE];

	pc_ipc_header_pack(&hdr, buf);
	buf[0] = 'X';
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_BAD_MAGIC);

	/* This producer speaks version 2 only: a version 1 device is refused, as is 3. */
	hdr.version = 1;
	pc_ipc_header_pack(&hdr, buf);
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_BAD_VERSION);
	hdr.version = 3;
	pc_ipc_header_pack(&hdr, buf);
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_BAD_VERSION);

	hdr.version = V;
	hdr.length = PC_IPC_MAX_PAYLOAD + 1;
	pc_ipc_header_pack(&hdr, buf);
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_TOO_LARGE);

	CHECK(pc_ipc_status_is_fatal(PC_IPC_BAD_MAGIC));
	CHECK(pc_ipc_status_is_fatal(PC_IPC_BAD_VERSION));
	CHECK(pc_ipc_status_is_fatal(PC_IPC_TOO_LARGE));
	CHECK(!pc_ipc_status_is_fatal(PC_IPC_UNKNOWN_TYPE));
	CHECK(!pc_ipc_status_is_fatal(PC_IPC_BAD_LENGTH));
}

static void test_hello_layout(void)
{
	struct pc_ipc_hello hello = {
		.width = 1280,
		.height = 720,
		.fps_num = 30000,
		.fps_den = 1001,
		.capabilities = PC_IPC_CAP_KEYFRAME | PC_IPC_CAP_BITRATE | PC_IPC_CAP_FPS,
		.bitrate = 2000000,
		.gop = 60,
		.name = "cam",
	};
	uint8_t buf[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX];
	size_t len = pc_ipc_hello_pack(&hello, buf);
	static const uint8_t expected[] = {
		1,    1,                   /* kind video, codec H.264 */
		0x00, 0x05, 0xd0, 0x02,    /* 1280, 720 */
		0x30, 0x75, 0xe9, 0x03,    /* 30000 / 1001 */
		0x07, 0x00,                /* capabilities */
		0x80, 0x84, 0x1e, 0x00,    /* 2000000 */
		60,   0,    0,    0,       /* gop */
		'c',  'a',  'm',
	};
	CHECK_EQ(len, sizeof(expected));
	CHECK(memcmp(buf, expected, sizeof(expected)) == 0);

	char long_name[100];
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	hello.name = long_name;
	CHECK_EQ(pc_ipc_hello_pack(&hello, buf), PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX);
	hello.name = NULL;
	CHECK_EQ(pc_ipc_hello_pack(&hello, buf), PC_IPC_HELLO_SIZE);
}

static void test_audio_hello_layout(void)
{
	struct pc_ipc_audio_hello hello = {
		.codec = PC_IPC_CODEC_OPUS,
		.channels = 2,
		.sample_rate = 48000,
		.capabilities = PC_IPC_CAP_BITRATE,
		.bitrate = 32000,
		.frame_us = 20000,
		.name = "mic",
	};
	uint8_t buf[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX];
	memset(buf, 0xee, sizeof(buf));
	size_t len = pc_ipc_audio_hello_pack(&hello, buf);
	static const uint8_t expected[] = {
		2,    3,    2,    0,       /* kind audio, codec Opus, 2 channels, reserved */
		0x80, 0xbb, 0x00, 0x00,    /* 48000 */
		0,    0,                   /* reserved */
		0x02, 0x00,                /* capabilities: bitrate */
		0x00, 0x7d, 0x00, 0x00,    /* 32000 */
		0x20, 0x4e, 0x00, 0x00,    /* 20000 us */
		'm',  'i',  'c',
	};
	CHECK_EQ(len, sizeof(expected));
	CHECK(memcmp(buf, expected, sizeof(expected)) == 0);
	CHECK_EQ(PC_IPC_CODEC_PCMA, 4);
	CHECK_EQ(PC_IPC_CODEC_PCMU, 5);
	CHECK_EQ(PC_IPC_KIND_AUDIO, 2);

	hello.name = NULL;
	CHECK_EQ(pc_ipc_audio_hello_pack(&hello, buf), PC_IPC_HELLO_SIZE);
}

static void test_control_parse(void)
{
	struct pc_ipc_header hdr = {.version = V, .track = 1};
	struct pc_ipc_control msg;
	const uint8_t four[4] = {0x40, 0x42, 0x0f, 0x00}; /* 1000000 LE; FPS 0x4240/0x000f */

	hdr.type = PC_IPC_KEYFRAME;
	hdr.length = 0;
	CHECK_EQ(pc_ipc_control_parse(&hdr, NULL, &msg), PC_IPC_OK);
	hdr.length = 1;
	CHECK_EQ(pc_ipc_control_parse(&hdr, four, &msg), PC_IPC_BAD_LENGTH);

	hdr.type = PC_IPC_BITRATE;
	hdr.length = 4;
	CHECK_EQ(pc_ipc_control_parse(&hdr, four, &msg), PC_IPC_OK);
	CHECK_EQ(msg.u.bitrate, 1000000);
	hdr.length = 2;
	CHECK_EQ(pc_ipc_control_parse(&hdr, four, &msg), PC_IPC_BAD_LENGTH);
	hdr.length = 4;
	const uint8_t zero[4] = {0};
	CHECK_EQ(pc_ipc_control_parse(&hdr, zero, &msg), PC_IPC_BAD_VALUE);

	hdr.type = PC_IPC_FPS;
	const uint8_t fps[4] = {25, 0, 1, 0};
	CHECK_EQ(pc_ipc_control_parse(&hdr, fps, &msg), PC_IPC_OK);
	CHECK_EQ(msg.u.fps.num, 25);
	CHECK_EQ(msg.u.fps.den, 1);
	const uint8_t fps_zero_den[4] = {25, 0, 0, 0};
	CHECK_EQ(pc_ipc_control_parse(&hdr, fps_zero_den, &msg), PC_IPC_BAD_VALUE);

	hdr.type = PC_IPC_VIEWERS;
	const uint8_t viewers[4] = {3, 0, 0, 0};
	CHECK_EQ(pc_ipc_control_parse(&hdr, viewers, &msg), PC_IPC_OK);
	CHECK_EQ(msg.u.viewers, 3);
	hdr.length = 5;
	CHECK_EQ(pc_ipc_control_parse(&hdr, four, &msg), PC_IPC_BAD_LENGTH);

	hdr.type = 0x86; /* INPUT: reserved, not parsed yet */
	hdr.length = 0;
	CHECK_EQ(pc_ipc_control_parse(&hdr, NULL, &msg), PC_IPC_UNKNOWN_TYPE);
	hdr.type = PC_IPC_FRAME; /* the producer's own types are not control messages */
	CHECK_EQ(pc_ipc_control_parse(&hdr, NULL, &msg), PC_IPC_UNKNOWN_TYPE);

	/* The track comes through; track 0 is the connection, never a control's target. */
	hdr.type = PC_IPC_VIEWERS;
	hdr.length = 4;
	hdr.track = 3;
	CHECK_EQ(pc_ipc_control_parse(&hdr, viewers, &msg), PC_IPC_OK);
	CHECK_EQ(msg.hdr.track, 3);
	hdr.track = 0;
	CHECK_EQ(pc_ipc_control_parse(&hdr, viewers, &msg), PC_IPC_BAD_VALUE);
	hdr.type = PC_IPC_KEYFRAME;
	hdr.length = 0;
	CHECK_EQ(pc_ipc_control_parse(&hdr, NULL, &msg), PC_IPC_BAD_VALUE);
}

static void test_sink_frame_parse(void)
{
	struct pc_ipc_header hdr = {.version = V, .type = PC_IPC_SINK_FRAME, .track = 3,
				    .flags = PC_IPC_SINK_FLAG_RESUME, .seq = 9};
	static struct pc_ipc_control msg;
	static uint8_t packet[PC_IPC_SINK_FRAME_MAX + 1];
	for (size_t i = 0; i < sizeof(packet); i++)
		packet[i] = (uint8_t)(i * 7);

	hdr.length = 61;
	CHECK_EQ(pc_ipc_control_parse(&hdr, packet, &msg), PC_IPC_OK);
	CHECK_EQ(msg.hdr.track, 3);
	CHECK_EQ(msg.hdr.flags, PC_IPC_SINK_FLAG_RESUME);
	CHECK_EQ(msg.hdr.seq, 9);
	CHECK_EQ(msg.u.sink.size, 61);
	CHECK(memcmp(msg.u.sink.data, packet, 61) == 0);

	hdr.length = PC_IPC_SINK_FRAME_MAX;
	CHECK_EQ(pc_ipc_control_parse(&hdr, packet, &msg), PC_IPC_OK);
	CHECK_EQ(msg.u.sink.size, PC_IPC_SINK_FRAME_MAX);
	CHECK(memcmp(msg.u.sink.data, packet, PC_IPC_SINK_FRAME_MAX) == 0);

	hdr.length = PC_IPC_SINK_FRAME_MAX + 1;
	CHECK_EQ(pc_ipc_control_parse(&hdr, packet, &msg), PC_IPC_BAD_LENGTH);
	hdr.length = 0;
	CHECK_EQ(pc_ipc_control_parse(&hdr, packet, &msg), PC_IPC_BAD_LENGTH);
}

/* SINK_FRAMEs through the reader: whole, split, and one too large (skipped, not buffered). */
static void test_reader_sink_frames(void)
{
	static struct pc_ipc_reader reader;
	static struct pc_ipc_control msg;
	enum { SMALL = 100, BIG = 4000 };
	static uint8_t stream[3 * PC_IPC_HEADER_SIZE + SMALL + BIG + PC_IPC_SINK_FRAME_MAX];
	size_t len = 0;

	struct pc_ipc_header hdr = {.version = V, .type = PC_IPC_SINK_FRAME, .track = 2,
				    .length = SMALL, .flags = PC_IPC_SINK_FLAG_RESUME};
	pc_ipc_header_pack(&hdr, stream + len);
	len += PC_IPC_HEADER_SIZE;
	memset(stream + len, 0x11, SMALL);
	len += SMALL;
	hdr.length = BIG; /* over PC_IPC_SINK_FRAME_MAX and over the reader's whole buffer */
	hdr.flags = 0;
	pc_ipc_header_pack(&hdr, stream + len);
	len += PC_IPC_HEADER_SIZE;
	memset(stream + len, 0x22, BIG);
	len += BIG;
	hdr.length = PC_IPC_SINK_FRAME_MAX;
	pc_ipc_header_pack(&hdr, stream + len);
	len += PC_IPC_HEADER_SIZE;
	memset(stream + len, 0x33, PC_IPC_SINK_FRAME_MAX);
	len += PC_IPC_SINK_FRAME_MAX;

	pc_ipc_reader_reset(&reader);
	int ok = 0, skipped = 0;
	size_t off = 0;
	while (off < len) {
		size_t chunk = len - off < 333 ? len - off : 333;
		off += pc_ipc_reader_push(&reader, stream + off, chunk);
		enum pc_ipc_status status;
		while ((status = pc_ipc_reader_next(&reader, &msg)) != PC_IPC_AGAIN) {
			CHECK_EQ(msg.hdr.type, PC_IPC_SINK_FRAME);
			CHECK_EQ(msg.hdr.track, 2);
			if (status == PC_IPC_BAD_LENGTH) {
				skipped++;
				CHECK_EQ(msg.hdr.length, BIG);
			} else if (status == PC_IPC_OK) {
				ok++;
				if (ok == 1) {
					CHECK_EQ(msg.u.sink.size, SMALL);
					CHECK_EQ(msg.u.sink.data[SMALL - 1], 0x11);
					CHECK_EQ(msg.hdr.flags, PC_IPC_SINK_FLAG_RESUME);
				} else {
					CHECK_EQ(msg.u.sink.size, PC_IPC_SINK_FRAME_MAX);
					CHECK_EQ(msg.u.sink.data[0], 0x33);
					CHECK_EQ(msg.u.sink.data[PC_IPC_SINK_FRAME_MAX - 1], 0x33);
				}
			} else {
				CHECK(!"unexpected status");
			}
		}
		CHECK(reader.len <= sizeof(reader.buf));
	}
	CHECK_EQ(ok, 2);
	CHECK_EQ(skipped, 1);
	CHECK(PC_IPC_READER_BUF >= PC_IPC_HEADER_SIZE + PC_IPC_SINK_FRAME_MAX);
}

static void test_reader_truncated_and_split(void)
{
	struct pc_ipc_reader reader;
	struct pc_ipc_control msg;
	uint8_t stream[2 * PC_IPC_HEADER_SIZE + 4];
	const uint8_t bitrate[4] = {0x00, 0x09, 0x3d, 0x00}; /* 4000000 */

	pack_control(stream, V, PC_IPC_KEYFRAME, NULL, 0);
	pack_control(stream + PC_IPC_HEADER_SIZE, V, PC_IPC_BITRATE, bitrate, 4);
	pc_ipc_reader_reset(&reader);

	/* One byte at a time: nothing until a message is complete. */
	int seen = 0;
	for (size_t i = 0; i < sizeof(stream); i++) {
		CHECK_EQ(pc_ipc_reader_push(&reader, stream + i, 1), 1);
		enum pc_ipc_status status = pc_ipc_reader_next(&reader, &msg);
		if (i == PC_IPC_HEADER_SIZE - 1) {
			CHECK_EQ(status, PC_IPC_OK);
			CHECK_EQ(msg.hdr.type, PC_IPC_KEYFRAME);
			seen++;
		} else if (i == sizeof(stream) - 1) {
			CHECK_EQ(status, PC_IPC_OK);
			CHECK_EQ(msg.hdr.type, PC_IPC_BITRATE);
			CHECK_EQ(msg.u.bitrate, 4000000);
			seen++;
		} else {
			CHECK_EQ(status, PC_IPC_AGAIN);
		}
	}
	CHECK_EQ(seen, 2);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_AGAIN);
}

static void test_reader_bad_messages(void)
{
	struct pc_ipc_reader reader;
	struct pc_ipc_control msg;
	uint8_t buf[PC_IPC_HEADER_SIZE + 4];

	/* Wrong version and bad magic are fatal. */
	pc_ipc_reader_reset(&reader);
	pack_control(buf, 1, PC_IPC_KEYFRAME, NULL, 0);
	pc_ipc_reader_push(&reader, buf, PC_IPC_HEADER_SIZE);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_BAD_VERSION);

	pc_ipc_reader_reset(&reader);
	const char *http = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
	pc_ipc_reader_push(&reader, (const uint8_t *)http, strlen(http));
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_BAD_MAGIC);

	/* A known type with a wrong length is skipped, and the stream goes on. */
	pc_ipc_reader_reset(&reader);
	const uint8_t two[2] = {1, 2};
	pack_control(buf, V, PC_IPC_BITRATE, two, 2);
	pc_ipc_reader_push(&reader, buf, PC_IPC_HEADER_SIZE + 2);
	pack_control(buf, V, PC_IPC_KEYFRAME, NULL, 0);
	pc_ipc_reader_push(&reader, buf, PC_IPC_HEADER_SIZE);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_BAD_LENGTH);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_OK);
	CHECK_EQ(msg.hdr.type, PC_IPC_KEYFRAME);

	/* An unknown type with a payload far larger than the reader's buffer is reported at
	 * once, dropped as it arrives, and the message after it is read. */
	pc_ipc_reader_reset(&reader);
	enum { BIG = 5000 };
	static uint8_t big[PC_IPC_HEADER_SIZE + BIG + PC_IPC_HEADER_SIZE];
	struct pc_ipc_header hdr = {.version = V, .type = 0x99, .length = BIG, .track = 1};
	pc_ipc_header_pack(&hdr, big);
	memset(big + PC_IPC_HEADER_SIZE, 0xab, BIG);
	pack_control(big + PC_IPC_HEADER_SIZE + BIG, V, PC_IPC_KEYFRAME, NULL, 0);
	int unknown = 0, keyframes = 0, again = 0;
	size_t off = 0;
	while (off < sizeof(big)) {
		size_t chunk = sizeof(big) - off < 300 ? sizeof(big) - off : 300;
		off += pc_ipc_reader_push(&reader, big + off, chunk);
		enum pc_ipc_status status;
		while ((status = pc_ipc_reader_next(&reader, &msg)) != PC_IPC_AGAIN) {
			if (status == PC_IPC_UNKNOWN_TYPE) {
				unknown++;
				CHECK_EQ(msg.hdr.type, 0x99);
				CHECK_EQ(msg.hdr.length, BIG);
			} else if (status == PC_IPC_OK && msg.hdr.type == PC_IPC_KEYFRAME) {
				keyframes++;
			} else {
				CHECK(!"unexpected status");
			}
		}
		again++;
	}
	CHECK_EQ(unknown, 1);
	CHECK_EQ(keyframes, 1);
	CHECK(again > 1);
}

static void test_send_and_framing(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);

	const uint8_t au[] = {0, 0, 0, 1, 0x65, 0x88, 0x84};
	CHECK_EQ(pc_ipc_send_frame(sv[0], 1, 7, PC_IPC_FLAG_KEYFRAME, 1700000000123456789,
				   1700000000223456789, au, sizeof(au)),
		 0);
	uint8_t buf[128];
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE + 8 + (int)sizeof(au));
	struct pc_ipc_header hdr;
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.version, 2);
	CHECK_EQ(hdr.type, PC_IPC_FRAME);
	CHECK_EQ(hdr.track, 1);
	CHECK_EQ(hdr.flags, PC_IPC_FLAG_KEYFRAME);
	CHECK_EQ(hdr.seq, 7);
	CHECK_EQ(hdr.timestamp_ns, 1700000000123456789);
	CHECK_EQ(hdr.length, 8 + sizeof(au));
	int64_t encoded = 0;
	for (int i = 7; i >= 0; i--)
		encoded = (encoded << 8) | buf[PC_IPC_HEADER_SIZE + i];
	CHECK_EQ(encoded, 1700000000223456789);
	CHECK(memcmp(buf + PC_IPC_HEADER_SIZE + 8, au, sizeof(au)) == 0);

	CHECK_EQ(pc_ipc_send_frame(sv[0], 1, 8, 0, 1, 2, au, 0), -EMSGSIZE);
	CHECK_EQ(pc_ipc_send_frame(sv[0], 0, 8, 0, 1, 2, au, sizeof(au)), -EINVAL);

	/* An audio frame on track 2: flags 0, the packet after the encoded time. */
	const uint8_t opus[] = {0xfc, 0xff, 0xfe};
	CHECK_EQ(pc_ipc_send_frame(sv[0], 2, 3, 0, 1700000000020000000, 1700000000021000000, opus,
				   sizeof(opus)),
		 0);
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE + 8 + (int)sizeof(opus));
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.type, PC_IPC_FRAME);
	CHECK_EQ(hdr.track, 2);
	CHECK_EQ(hdr.flags, 0);
	CHECK_EQ(hdr.seq, 3);
	CHECK_EQ(hdr.timestamp_ns, 1700000000020000000);
	CHECK(memcmp(buf + PC_IPC_HEADER_SIZE + 8, opus, sizeof(opus)) == 0);

	/* HELLOs: track and flags in the header, seq 0, the payload after. */
	struct pc_ipc_audio_hello sink = {.codec = PC_IPC_CODEC_OPUS, .channels = 1,
					  .sample_rate = 48000, .frame_us = 20000};
	CHECK_EQ(pc_ipc_send_audio_hello(sv[0], 3, PC_IPC_HELLO_FLAG_LAST | PC_IPC_HELLO_FLAG_SINK,
					 &sink),
		 0);
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE + PC_IPC_HELLO_SIZE);
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.type, PC_IPC_HELLO);
	CHECK_EQ(hdr.track, 3);
	CHECK_EQ(hdr.flags, 3);
	CHECK_EQ(hdr.seq, 0);
	CHECK_EQ(buf[PC_IPC_HEADER_SIZE], PC_IPC_KIND_AUDIO);
	struct pc_ipc_hello video = {.width = 16, .height = 16, .fps_num = 1, .fps_den = 1};
	CHECK_EQ(pc_ipc_send_hello(sv[0], 1, 0, &video), 0);
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE + PC_IPC_HELLO_SIZE);
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.track, 1);
	CHECK_EQ(hdr.flags, 0);
	CHECK_EQ(hdr.alternate_of, 0);
	CHECK_EQ(buf[PC_IPC_HEADER_SIZE], PC_IPC_KIND_VIDEO);
	/* An alternate rendition: the main track's id in header byte 25. */
	video.alternate_of = 1;
	CHECK_EQ(pc_ipc_send_hello(sv[0], 4, PC_IPC_HELLO_FLAG_LAST, &video), 0);
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE + PC_IPC_HELLO_SIZE);
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.track, 4);
	CHECK_EQ(buf[PC_IPC_OFF_ALTERNATE_OF], 1);
	CHECK_EQ(hdr.alternate_of, 1);
	CHECK_EQ(buf[26], 0);
	CHECK_EQ(buf[27], 0);

	CHECK_EQ(pc_ipc_send_bye(sv[0], 9), 0);
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE);
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.type, PC_IPC_BYE);
	CHECK_EQ(hdr.track, 0);
	CHECK_EQ(hdr.length, 0);

	/* A vanished peer is an error code, not a SIGPIPE. */
	close(sv[1]);
	CHECK_EQ(pc_ipc_send_bye(sv[0], 10), -EPIPE);
	close(sv[0]);
}

static void test_connect_errors(void)
{
	CHECK_EQ(pc_ipc_connect("/nonexistent/p2pcast.sock"), -ENOENT);
	char long_path[200];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	CHECK_EQ(pc_ipc_connect(long_path), -ENAMETOOLONG);
}

static void test_backoff(void)
{
	struct pc_ipc_backoff backoff;
	pc_ipc_backoff_init(&backoff, 12345);
	uint32_t base = PC_IPC_BACKOFF_MIN_MS;
	for (int i = 0; i < 12; i++) {
		uint32_t delay = pc_ipc_backoff_next_ms(&backoff);
		CHECK(delay >= base / 2 && delay <= base);
		base = base * 2 > PC_IPC_BACKOFF_MAX_MS ? PC_IPC_BACKOFF_MAX_MS : base * 2;
	}
	CHECK_EQ(backoff.base_ms, PC_IPC_BACKOFF_MAX_MS);

	/* Jitter: at the cap the delays still differ from one attempt to the next. */
	uint32_t first = pc_ipc_backoff_next_ms(&backoff);
	int different = 0;
	for (int i = 0; i < 20; i++)
		different += pc_ipc_backoff_next_ms(&backoff) != first;
	CHECK(different > 0);

	pc_ipc_backoff_reset(&backoff);
	CHECK(pc_ipc_backoff_next_ms(&backoff) <= PC_IPC_BACKOFF_MIN_MS);
}

void pc_test_ipc(void)
{
	RUN_TEST(test_header_layout);
	RUN_TEST(test_header_round_trip);
	RUN_TEST(test_header_refusals);
	RUN_TEST(test_hello_layout);
	RUN_TEST(test_audio_hello_layout);
	RUN_TEST(test_control_parse);
	RUN_TEST(test_sink_frame_parse);
	RUN_TEST(test_reader_sink_frames);
	RUN_TEST(test_reader_truncated_and_split);
	RUN_TEST(test_reader_bad_messages);
	RUN_TEST(test_send_and_framing);
	RUN_TEST(test_connect_errors);
	RUN_TEST(test_backoff);
}
