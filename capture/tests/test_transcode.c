/* AAC -> Opus (transcode.c): a sine encoded to AAC with libavcodec's own AAC encoder (what a
 * camera would send: raw units and their AudioSpecificConfig), transcoded, then decoded with
 * libopus: frame count, 20 ms steps stamped from the units' times, the sine's frequency. And the
 * --transcode program itself, through its pipes. */
#if PC_HAVE_TRANSCODE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>

#include "../encoders/opus.h"
#include "../ipc.h"
#include "../transcode.h"
#include "check.h"

#define T0_NS 1000000000000LL /* the first unit's capture time */
#define MAX_UNITS 512
#define MAX_OUT 512

/* An AAC stream made here: its config and units (raw, with their first sample's index). */
struct aac_stream {
	uint8_t asc[64];
	int asc_size;
	int rate, channels;
	int units;
	uint8_t *data[MAX_UNITS];
	int size[MAX_UNITS];
	int64_t pts[MAX_UNITS];
};

static void aac_stream_free(struct aac_stream *s)
{
	for (int i = 0; i < s->units; i++)
		free(s->data[i]);
}

static void take_packets(AVCodecContext *enc, AVPacket *pkt, struct aac_stream *s)
{
	while (avcodec_receive_packet(enc, pkt) == 0) {
		if (s->units < MAX_UNITS) {
			s->data[s->units] = malloc((size_t)pkt->size);
			memcpy(s->data[s->units], pkt->data, (size_t)pkt->size);
			s->size[s->units] = pkt->size;
			s->pts[s->units] = pkt->pts;
			s->units++;
		}
		av_packet_unref(pkt);
	}
}

/* Encodes seconds of a hz sine at rate with channels into s. 0 on success. */
static int make_aac(struct aac_stream *s, int rate, int channels, double hz, double seconds)
{
	memset(s, 0, sizeof(*s));
	const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
	if (!codec)
		return -1;
	AVCodecContext *enc = avcodec_alloc_context3(codec);
	AVFrame *frame = av_frame_alloc();
	AVPacket *pkt = av_packet_alloc();
	int ret = -1;
	enc->sample_rate = rate;
	enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
	av_channel_layout_default(&enc->ch_layout, channels);
	enc->bit_rate = 64000 * channels;
	enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER; /* the AudioSpecificConfig in extradata */
	if (avcodec_open2(enc, codec, NULL) < 0)
		goto out;
	memcpy(s->asc, enc->extradata, (size_t)enc->extradata_size);
	s->asc_size = enc->extradata_size;
	s->rate = rate;
	s->channels = channels;
	int total = (int)(seconds * rate);
	for (int done = 0; done < total; done += enc->frame_size) {
		frame->nb_samples = enc->frame_size;
		frame->format = enc->sample_fmt;
		frame->sample_rate = rate;
		av_channel_layout_copy(&frame->ch_layout, &enc->ch_layout);
		if (av_frame_get_buffer(frame, 0) < 0)
			goto out;
		for (int c = 0; c < channels; c++) {
			float *p = (float *)frame->data[c];
			for (int i = 0; i < frame->nb_samples; i++)
				p[i] = 0.5f * (float)sin(2 * M_PI * hz * (done + i) / rate);
		}
		frame->pts = done;
		if (avcodec_send_frame(enc, frame) < 0)
			goto out;
		av_frame_unref(frame);
		take_packets(enc, pkt, s);
	}
	avcodec_send_frame(enc, NULL);
	take_packets(enc, pkt, s);
	ret = 0;
out:
	av_packet_free(&pkt);
	av_frame_free(&frame);
	avcodec_free_context(&enc);
	return ret;
}

struct collected {
	int n;
	int64_t at[MAX_OUT];
	uint8_t *pkt[MAX_OUT];
	int size[MAX_OUT];
};

static int collect(void *opaque, const uint8_t *packet, size_t size, int64_t capture_ns)
{
	struct collected *c = opaque;
	if (c->n == MAX_OUT)
		return 0;
	c->pkt[c->n] = malloc(size);
	memcpy(c->pkt[c->n], packet, size);
	c->size[c->n] = (int)size;
	c->at[c->n] = capture_ns;
	c->n++;
	return 0;
}

static void collected_free(struct collected *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->pkt[i]);
}

/* Decodes the Opus frames and measures the sine's frequency in the middle of them. */
static double decoded_hz(const struct collected *c, int channels, double *rms)
{
	struct pc_opus_decoder *dec = NULL;
	char err[128];
	if (pc_opus_decoder_init(&dec, channels, err, sizeof(err)) < 0)
		return -1;
	size_t cap = (size_t)c->n * PC_OPUS_FRAME_SAMPLES;
	int16_t *mono = calloc(cap, sizeof(int16_t));
	int16_t pcm[PC_OPUS_FRAME_SAMPLES * 2];
	size_t len = 0;
	for (int i = 0; i < c->n; i++) {
		int n = pc_opus_decode(dec, c->pkt[i], (size_t)c->size[i], pcm, PC_OPUS_FRAME_SAMPLES);
		for (int k = 0; k < n && len < cap; k++)
			mono[len++] = pcm[k * channels];
	}
	double hz = pc_test_zero_crossing_hz(mono, len / 4, len * 3 / 4, PC_OPUS_RATE);
	*rms = pc_test_rms(mono, len / 4, len * 3 / 4);
	free(mono);
	pc_opus_decoder_destroy(dec);
	return hz;
}

/* Transcodes s, its units stamped from T0_NS at their pts, and checks what came out. */
static void check_transcode(struct aac_stream *s, int want_channels, double hz)
{
	struct pc_transcode *tc = NULL;
	char err[256] = "";
	struct collected c = {0};
	int ret = pc_transcode_init(&tc, s->asc, (size_t)s->asc_size, 0, err, sizeof(err));
	CHECK_EQ(ret, 0);
	if (ret < 0) {
		fprintf(stderr, "    %s\n", err);
		return;
	}
	CHECK_EQ(pc_transcode_channels(tc), want_channels);
	for (int i = 0; i < s->units; i++) {
		int64_t at = T0_NS + s->pts[i] * 1000000000LL / s->rate;
		CHECK_EQ(pc_transcode_push(tc, s->data[i], (size_t)s->size[i], at, collect, &c, err,
					   sizeof(err)),
			 0);
	}
	CHECK_EQ(pc_transcode_bad_units(tc), 0);
	/* Every whole 20 ms of the decoded units came out (the last partial frame stays queued). */
	int64_t samples = (int64_t)s->units * 1024;
	int want = (int)(samples * PC_OPUS_RATE / s->rate / PC_OPUS_FRAME_SAMPLES);
	CHECK(c.n >= want - 1 && c.n <= want);
	/* Stamped from the units: the first frame at the first unit's time less the resampler's
	 * delay and the Opus look-ahead (6.5 ms; a few ms in all), then 20 ms apart, to within a
	 * few microseconds of rounding (nothing accumulates). */
	int64_t first = T0_NS + s->pts[0] * 1000000000LL / s->rate;
	CHECK(c.n > 0 && c.at[0] <= first && c.at[0] > first - 10000000);
	int64_t worst = 0;
	for (int i = 1; i < c.n; i++) {
		int64_t step = c.at[i] - c.at[i - 1] - 20000000;
		worst = step < 0 ? (-step > worst ? -step : worst) : (step > worst ? step : worst);
	}
	CHECK(worst < 50000);
	if (c.n > 0) {
		int64_t drift = c.at[c.n - 1] - (c.at[0] + (int64_t)(c.n - 1) * 20000000);
		CHECK(drift < 100000 && drift > -100000);
	}
	double rms = 0;
	double got = decoded_hz(&c, want_channels, &rms);
	CHECK(fabs(got - hz) < hz * 0.02);
	CHECK(rms > 3000); /* 0.5 full scale is ~11600 RMS: well above silence */
	if (fabs(got - hz) >= hz * 0.02 || worst >= 50000)
		fprintf(stderr, "    %d frames (want %d), %.1f Hz, rms %.0f, worst step error %lld ns\n",
			c.n, want, got, rms, (long long)worst);
	/* A unit the decoder refuses is skipped, not fatal. */
	uint8_t junk[7] = {0xff, 0xf1, 0, 0, 0, 0, 0};
	CHECK_EQ(pc_transcode_push(tc, junk, sizeof(junk), first, collect, &c, err, sizeof(err)), 0);
	collected_free(&c);
	pc_transcode_destroy(tc);
}

static void test_transcode_stereo_48k(void)
{
	struct aac_stream s;
	CHECK_EQ(make_aac(&s, 48000, 2, 1000, 2.0), 0);
	CHECK(s.units > 80);
	check_transcode(&s, 2, 1000);
	aac_stream_free(&s);
}

static void test_transcode_mono_44k1(void)
{
	struct aac_stream s;
	CHECK_EQ(make_aac(&s, 44100, 1, 440, 2.0), 0);
	check_transcode(&s, 1, 440);
	aac_stream_free(&s);
}

static void test_transcode_bad_config(void)
{
	struct pc_transcode *tc = NULL;
	char err[256] = "";
	uint8_t bad[2] = {0xf8, 0x00}; /* audio object type 31 escape, nothing after */
	CHECK(pc_transcode_init(&tc, bad, sizeof(bad), 0, err, sizeof(err)) < 0);
	CHECK(err[0] != 0);
	uint8_t out[4];
	CHECK_EQ(pc_transcode_parse_hex("1190", out, sizeof(out)), 2);
	CHECK(out[0] == 0x11 && out[1] == 0x90);
	CHECK_EQ(pc_transcode_parse_hex("119", out, sizeof(out)), -EINVAL);
	CHECK_EQ(pc_transcode_parse_hex("zz", out, sizeof(out)), -EINVAL);
	CHECK_EQ(pc_transcode_parse_hex("0011223344", out, sizeof(out)), -EINVAL);
}

static int write_frame(int fd, uint32_t seq, int64_t at, const uint8_t *data, size_t size)
{
	uint8_t header[PC_IPC_HEADER_SIZE];
	uint8_t enc[PC_IPC_ENCODED_TIME_SIZE] = {0};
	struct pc_ipc_header hdr = {.version = PC_IPC_VERSION, .type = PC_IPC_FRAME,
				    .timestamp_ns = at, .seq = seq,
				    .length = (uint32_t)(sizeof(enc) + size), .track = 1};
	pc_ipc_header_pack(&hdr, header);
	if (write(fd, header, sizeof(header)) != (ssize_t)sizeof(header) ||
	    write(fd, enc, sizeof(enc)) != (ssize_t)sizeof(enc) ||
	    write(fd, data, size) != (ssize_t)size)
		return -1;
	return 0;
}

/* The program: HELLO (Opus, stereo, last), then FRAMEs on track 1; exits 0 at EOF. */
static void test_transcode_program(void)
{
	struct aac_stream s;
	CHECK_EQ(make_aac(&s, 48000, 2, 1000, 1.0), 0);
	char hex[2 * sizeof(s.asc) + 1] = "";
	for (int i = 0; i < s.asc_size; i++)
		sprintf(hex + 2 * i, "%02x", s.asc[i]);
	int in[2], out[2];
	CHECK_EQ(pipe(in), 0);
	CHECK_EQ(pipe(out), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(pc_check_producer, pc_check_producer, "--transcode", "aac", "--aac-config", hex,
		      (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	/* Everything fits the pipe buffers: 1 s of AAC in, 1 s of Opus out. */
	for (int i = 0; i < s.units; i++)
		CHECK_EQ(write_frame(in[1], (uint32_t)i, T0_NS + s.pts[i] * 1000000000LL / 48000,
				     s.data[i], (size_t)s.size[i]),
			 0);
	close(in[1]);
	uint8_t buf[1 << 16];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(out[0], buf + len, sizeof(buf) - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	struct pc_ipc_header hdr;
	size_t off = 0;
	int frames = 0;
	bool hello = false;
	int64_t last = 0;
	while (off + PC_IPC_HEADER_SIZE <= len) {
		CHECK_EQ(pc_ipc_header_unpack(buf + off, &hdr), PC_IPC_OK);
		if (hdr.type == PC_IPC_HELLO) {
			hello = frames == 0 && (hdr.flags & PC_IPC_HELLO_FLAG_LAST) && hdr.track == 1;
			const uint8_t *p = buf + off + PC_IPC_HEADER_SIZE;
			CHECK_EQ(p[0], PC_IPC_KIND_AUDIO);
		} else {
			CHECK_EQ(hdr.type, PC_IPC_FRAME);
			CHECK(frames == 0 || hdr.timestamp_ns - last == 20000000 ||
			      llabs(hdr.timestamp_ns - last - 20000000) < 50000);
			last = hdr.timestamp_ns;
			frames++;
		}
		off += PC_IPC_HEADER_SIZE + hdr.length;
	}
	CHECK(hello);
	CHECK(frames >= 48 && frames <= 51);
	aac_stream_free(&s);
}

void pc_test_transcode(void)
{
	fprintf(stderr, "transcode:\n");
	RUN_TEST(test_transcode_stereo_48k);
	RUN_TEST(test_transcode_mono_44k1);
	RUN_TEST(test_transcode_bad_config);
	RUN_TEST(test_transcode_program);
}
#else
void pc_test_transcode(void);
void pc_test_transcode(void) {}
#endif
