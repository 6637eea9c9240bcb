/* The socket protocol against docs/ipc.md, byte by byte. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../ipc.h"
#include "check.h"

static void pack_control(uint8_t *out, uint8_t version, uint8_t type, const uint8_t *payload,
			 uint32_t length)
{
	struct pc_ipc_header hdr = {.version = version, .type = type, .length = length};
	pc_ipc_header_pack(&hdr, out);
	if (length)
		memcpy(out + PC_IPC_HEADER_SIZE, payload, length);
}

static void test_header_layout(void)
{
	struct pc_ipc_header hdr = {
		.version = 1,
		.type = PC_IPC_ACCESS_UNIT,
		.flags = 0x0201,
		.timestamp_ns = 0x0102030405060708,
		.seq = 0x0a0b0c0d,
		.length = 0x00112233,
	};
	static const uint8_t expected[PC_IPC_HEADER_SIZE] = {
		'P',  '2',  'P',  'C',                          /* 0: magic */
		0x01,                                           /* 4: version */
		0x02,                                           /* 5: type */
		0x01, 0x02,                                     /* 6: flags, LE */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* 8: timestamp, LE */
		0x0d, 0x0c, 0x0b, 0x0a,                         /* 16: seq, LE */
		0x33, 0x22, 0x11, 0x00,                         /* 20: length, LE */
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
}

static void test_header_round_trip(void)
{
	struct pc_ipc_header in = {
		.version = 1,
		.type = PC_IPC_HELLO,
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
}

static void test_header_refusals(void)
{
	struct pc_ipc_header hdr = {.version = 1, .type = PC_IPC_KEYFRAME}, out;
	uint8_t buf[PC_IPC_HEADER_SIZE];

	pc_ipc_header_pack(&hdr, buf);
	buf[0] = 'X';
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_BAD_MAGIC);

	hdr.version = 2;
	pc_ipc_header_pack(&hdr, buf);
	CHECK_EQ(pc_ipc_header_unpack(buf, &out), PC_IPC_BAD_VERSION);

	hdr.version = 1;
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

static void test_control_parse(void)
{
	struct pc_ipc_header hdr = {.version = 1};
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

	hdr.type = 0x85;
	hdr.length = 0;
	CHECK_EQ(pc_ipc_control_parse(&hdr, NULL, &msg), PC_IPC_UNKNOWN_TYPE);
	hdr.type = PC_IPC_ACCESS_UNIT; /* the producer's own types are not control messages */
	CHECK_EQ(pc_ipc_control_parse(&hdr, NULL, &msg), PC_IPC_UNKNOWN_TYPE);
}

static void test_reader_truncated_and_split(void)
{
	struct pc_ipc_reader reader;
	struct pc_ipc_control msg;
	uint8_t stream[2 * PC_IPC_HEADER_SIZE + 4];
	const uint8_t bitrate[4] = {0x00, 0x09, 0x3d, 0x00}; /* 4000000 */

	pack_control(stream, 1, PC_IPC_KEYFRAME, NULL, 0);
	pack_control(stream + PC_IPC_HEADER_SIZE, 1, PC_IPC_BITRATE, bitrate, 4);
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
	pack_control(buf, 2, PC_IPC_KEYFRAME, NULL, 0);
	pc_ipc_reader_push(&reader, buf, PC_IPC_HEADER_SIZE);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_BAD_VERSION);

	pc_ipc_reader_reset(&reader);
	pc_ipc_reader_push(&reader, (const uint8_t *)"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_BAD_MAGIC);

	/* A known type with a wrong length is skipped, and the stream goes on. */
	pc_ipc_reader_reset(&reader);
	const uint8_t two[2] = {1, 2};
	pack_control(buf, 1, PC_IPC_BITRATE, two, 2);
	pc_ipc_reader_push(&reader, buf, PC_IPC_HEADER_SIZE + 2);
	pack_control(buf, 1, PC_IPC_KEYFRAME, NULL, 0);
	pc_ipc_reader_push(&reader, buf, PC_IPC_HEADER_SIZE);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_BAD_LENGTH);
	CHECK_EQ(pc_ipc_reader_next(&reader, &msg), PC_IPC_OK);
	CHECK_EQ(msg.hdr.type, PC_IPC_KEYFRAME);

	/* An unknown type with a payload far larger than the reader's buffer is reported at
	 * once, dropped as it arrives, and the message after it is read. */
	pc_ipc_reader_reset(&reader);
	enum { BIG = 5000 };
	static uint8_t big[PC_IPC_HEADER_SIZE + BIG + PC_IPC_HEADER_SIZE];
	struct pc_ipc_header hdr = {.version = 1, .type = 0x99, .length = BIG};
	pc_ipc_header_pack(&hdr, big);
	memset(big + PC_IPC_HEADER_SIZE, 0xab, BIG);
	pack_control(big + PC_IPC_HEADER_SIZE + BIG, 1, PC_IPC_KEYFRAME, NULL, 0);
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
	CHECK_EQ(pc_ipc_send_access_unit(sv[0], 7, 1700000000123456789, 1700000000223456789, true,
					 au, sizeof(au)),
		 0);
	uint8_t buf[64];
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE + 8 + (int)sizeof(au));
	struct pc_ipc_header hdr;
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.type, PC_IPC_ACCESS_UNIT);
	CHECK_EQ(hdr.flags, PC_IPC_FLAG_KEYFRAME);
	CHECK_EQ(hdr.seq, 7);
	CHECK_EQ(hdr.timestamp_ns, 1700000000123456789);
	CHECK_EQ(hdr.length, 8 + sizeof(au));
	int64_t encoded = 0;
	for (int i = 7; i >= 0; i--)
		encoded = (encoded << 8) | buf[PC_IPC_HEADER_SIZE + i];
	CHECK_EQ(encoded, 1700000000223456789);
	CHECK(memcmp(buf + PC_IPC_HEADER_SIZE + 8, au, sizeof(au)) == 0);

	CHECK_EQ(pc_ipc_send_access_unit(sv[0], 8, 1, 2, false, au, 0), -EMSGSIZE);

	CHECK_EQ(pc_ipc_send_bye(sv[0], 9), 0);
	CHECK_EQ(read(sv[1], buf, sizeof(buf)), PC_IPC_HEADER_SIZE);
	CHECK_EQ(pc_ipc_header_unpack(buf, &hdr), PC_IPC_OK);
	CHECK_EQ(hdr.type, PC_IPC_BYE);
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
	RUN_TEST(test_control_parse);
	RUN_TEST(test_reader_truncated_and_split);
	RUN_TEST(test_reader_bad_messages);
	RUN_TEST(test_send_and_framing);
	RUN_TEST(test_connect_errors);
	RUN_TEST(test_backoff);
}
