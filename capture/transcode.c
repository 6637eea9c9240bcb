#include "transcode.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "encoders/opus.h"
#include "ipc.h"
#include "log.h"

#define NS_PER_S 1000000000LL
/* Samples queued for the encoder at most: a second at 48 kHz, far more than one AAC unit
 * (2048 samples at most with SBR) resampled. */
#define FIFO_SAMPLES PC_OPUS_RATE

struct pc_transcode {
	AVCodecContext *dec;
	AVPacket *pkt;
	AVFrame *frame;
	SwrContext *swr;
	/* What swr was made for: it is made again when the decoder's output changes (HE-AAC's
	 * SBR shows its real rate only in the first decoded frame). */
	int swr_rate, swr_format, swr_channels;
	struct pc_opus_encoder *enc;
	int channels; /* Opus channels */
	uint32_t bitrate;
	int64_t lookahead_ns;
	/* 48 kHz interleaved samples waiting for a whole Opus frame, and the capture time of the
	 * first of them (valid when fifo_len > 0). */
	int16_t fifo[FIFO_SAMPLES * 2];
	int fifo_len;
	int64_t fifo_ns;
	int16_t conv[FIFO_SAMPLES * 2];
	uint64_t bad_units;
};

static void averr(char *err, size_t err_size, const char *what, int ret)
{
	char msg[AV_ERROR_MAX_STRING_SIZE] = "";
	av_strerror(ret, msg, sizeof(msg));
	snprintf(err, err_size, "%s: %s", what, msg);
}

int pc_transcode_parse_hex(const char *hex, uint8_t *out, size_t out_size)
{
	size_t n = strlen(hex);
	if (n == 0 || n % 2 != 0 || n / 2 > out_size)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		char pair[3] = {hex[2 * i], hex[2 * i + 1], 0};
		char *end;
		v = (unsigned)strtoul(pair, &end, 16);
		if (*end != 0 || pair[0] == '+' || pair[0] == '-' || pair[0] == ' ')
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return (int)(n / 2);
}

int pc_transcode_init(struct pc_transcode **out, const uint8_t *asc, size_t asc_size,
		      uint32_t bitrate, char *err, size_t err_size)
{
	int ret;
	struct pc_transcode *tc = calloc(1, sizeof(*tc));
	if (!tc) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	const AVCodec *aac = avcodec_find_decoder(AV_CODEC_ID_AAC);
	if (!aac) {
		snprintf(err, err_size, "libavcodec has no AAC decoder");
		ret = -ENOSYS;
		goto error;
	}
	tc->dec = avcodec_alloc_context3(aac);
	tc->pkt = av_packet_alloc();
	tc->frame = av_frame_alloc();
	if (!tc->dec || !tc->pkt || !tc->frame) {
		snprintf(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto error;
	}
	if (asc_size == 0 || asc_size > 64) {
		snprintf(err, err_size, "AudioSpecificConfig of %zu bytes", asc_size);
		ret = -EINVAL;
		goto error;
	}
	tc->dec->extradata = av_mallocz(asc_size + AV_INPUT_BUFFER_PADDING_SIZE);
	if (!tc->dec->extradata) {
		snprintf(err, err_size, "out of memory");
		ret = -ENOMEM;
		goto error;
	}
	memcpy(tc->dec->extradata, asc, asc_size);
	tc->dec->extradata_size = (int)asc_size;
	tc->dec->request_sample_fmt = AV_SAMPLE_FMT_FLTP;
	ret = avcodec_open2(tc->dec, aac, NULL);
	if (ret < 0) {
		averr(err, err_size, "AAC decoder (is the AudioSpecificConfig right?)", ret);
		ret = -EINVAL;
		goto error;
	}
	tc->channels = tc->dec->ch_layout.nb_channels == 1 ? 1 : 2;
	tc->bitrate = bitrate ? bitrate : 32000u * (uint32_t)tc->channels;
	ret = pc_opus_encoder_init(&tc->enc, tc->channels, tc->bitrate, err, err_size);
	if (ret < 0)
		goto error;
	tc->lookahead_ns = pc_opus_encoder_lookahead_ns(tc->enc);
	*out = tc;
	return 0;
error:
	pc_transcode_destroy(tc);
	return ret;
}

/* (Re)makes the resampler for the decoder's output as frame has it. */
static int ensure_swr(struct pc_transcode *tc, const AVFrame *frame, char *err, size_t err_size)
{
	int channels = frame->ch_layout.nb_channels;
	if (tc->swr && tc->swr_rate == frame->sample_rate && tc->swr_format == frame->format &&
	    tc->swr_channels == channels)
		return 0;
	swr_free(&tc->swr);
	/* The queued samples came through the old resampler: they stay, stamped as they are. */
	AVChannelLayout out_layout;
	av_channel_layout_default(&out_layout, tc->channels);
	AVChannelLayout in_layout;
	if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
		av_channel_layout_default(&in_layout, channels);
	else
		av_channel_layout_copy(&in_layout, &frame->ch_layout);
	int ret = swr_alloc_set_opts2(&tc->swr, &out_layout, AV_SAMPLE_FMT_S16, PC_OPUS_RATE,
				      &in_layout, frame->format, frame->sample_rate, 0, NULL);
	av_channel_layout_uninit(&in_layout);
	if (ret >= 0)
		ret = swr_init(tc->swr);
	if (ret < 0) {
		averr(err, err_size, "resampler", ret);
		swr_free(&tc->swr);
		return -EINVAL;
	}
	tc->swr_rate = frame->sample_rate;
	tc->swr_format = frame->format;
	tc->swr_channels = channels;
	return 0;
}

/* Encodes every whole 20 ms frame the queue holds. */
static int drain(struct pc_transcode *tc, pc_transcode_emit_fn emit, void *opaque, char *err,
		 size_t err_size)
{
	uint8_t packet[PC_OPUS_MAX_PACKET];
	int done = 0;
	int ret = 0;
	while (tc->fifo_len - done >= PC_OPUS_FRAME_SAMPLES) {
		int size = pc_opus_encode(tc->enc, tc->fifo + (size_t)done * (size_t)tc->channels,
					  packet, sizeof(packet));
		if (size < 0) {
			snprintf(err, err_size, "Opus encoder failed");
			ret = -EIO;
			break;
		}
		/* Stamped earlier by the look-ahead: a decoder's output starts that much before
		 * the first sample put in (encoders/opus.h). */
		int64_t at = tc->fifo_ns + (int64_t)done * NS_PER_S / PC_OPUS_RATE - tc->lookahead_ns;
		done += PC_OPUS_FRAME_SAMPLES;
		ret = emit(opaque, packet, (size_t)size, at);
		if (ret != 0)
			break;
	}
	if (done > 0) {
		tc->fifo_ns += (int64_t)done * NS_PER_S / PC_OPUS_RATE;
		tc->fifo_len -= done;
		memmove(tc->fifo, tc->fifo + (size_t)done * (size_t)tc->channels,
			(size_t)tc->fifo_len * (size_t)tc->channels * sizeof(int16_t));
	}
	return ret;
}

/* Resamples one decoded frame into the queue. */
static int queue_frame(struct pc_transcode *tc, const AVFrame *frame, int64_t frame_ns,
		       char *err, size_t err_size)
{
	int ret = ensure_swr(tc, frame, err, err_size);
	if (ret < 0)
		return ret;
	/* The next sample out of the resampler is this much older than the next one put in. */
	int64_t delay = swr_get_delay(tc->swr, PC_OPUS_RATE);
	int64_t out_ns = frame_ns - delay * NS_PER_S / PC_OPUS_RATE;
	uint8_t *outp[1] = {(uint8_t *)tc->conv};
	int n = swr_convert(tc->swr, outp, FIFO_SAMPLES, (const uint8_t **)frame->extended_data,
			    frame->nb_samples);
	if (n < 0) {
		averr(err, err_size, "resampler", n);
		return -EIO;
	}
	if (n == 0)
		return 0;
	/* The queue is stamped again from every unit: its frames follow the units' times (no
	 * drift from counting samples), to within a sample of rounding. A gap (lost units) moves
	 * the queued samples with the new time: they are few, and the alternative is a hole. */
	tc->fifo_ns = out_ns - (int64_t)tc->fifo_len * NS_PER_S / PC_OPUS_RATE;
	if (tc->fifo_len + n > FIFO_SAMPLES) {
		/* Cannot happen with AAC's unit sizes; a guard against a decoder gone wild. */
		snprintf(err, err_size, "transcoder queue overflow");
		return -EOVERFLOW;
	}
	memcpy(tc->fifo + (size_t)tc->fifo_len * (size_t)tc->channels, tc->conv,
	       (size_t)n * (size_t)tc->channels * sizeof(int16_t));
	tc->fifo_len += n;
	return 0;
}

int pc_transcode_push(struct pc_transcode *tc, const uint8_t *au, size_t size, int64_t capture_ns,
		      pc_transcode_emit_fn emit, void *opaque, char *err, size_t err_size)
{
	if (size == 0 || size > PC_TRANSCODE_MAX_AU)
		return 0;
	int ret = av_new_packet(tc->pkt, (int)size);
	if (ret < 0) {
		averr(err, err_size, "packet", ret);
		return -ENOMEM;
	}
	memcpy(tc->pkt->data, au, size);
	ret = avcodec_send_packet(tc->dec, tc->pkt);
	av_packet_unref(tc->pkt);
	if (ret < 0) {
		tc->bad_units++;
		return 0;
	}
	/* The AAC decoder gives one frame per unit, for the unit's own samples. */
	int64_t frame_ns = capture_ns;
	for (;;) {
		ret = avcodec_receive_frame(tc->dec, tc->frame);
		if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
			return 0;
		if (ret < 0) {
			tc->bad_units++;
			return 0;
		}
		ret = queue_frame(tc, tc->frame, frame_ns, err, err_size);
		if (tc->frame->sample_rate > 0)
			frame_ns += (int64_t)tc->frame->nb_samples * NS_PER_S / tc->frame->sample_rate;
		av_frame_unref(tc->frame);
		if (ret == 0)
			ret = drain(tc, emit, opaque, err, err_size);
		if (ret != 0)
			return ret;
	}
}

int pc_transcode_channels(const struct pc_transcode *tc) { return tc->channels; }
uint32_t pc_transcode_bitrate(const struct pc_transcode *tc) { return tc->bitrate; }
uint64_t pc_transcode_bad_units(const struct pc_transcode *tc) { return tc->bad_units; }

void pc_transcode_destroy(struct pc_transcode *tc)
{
	if (!tc)
		return;
	if (tc->enc)
		pc_opus_encoder_destroy(tc->enc);
	swr_free(&tc->swr);
	av_frame_free(&tc->frame);
	av_packet_free(&tc->pkt);
	avcodec_free_context(&tc->dec);
	free(tc);
}

/* ---- the --transcode program: FRAMEs in, HELLO and FRAMEs out ---- */

/* Writes all of iov to fd (a pipe or a socket): 0, or -errno. */
static int write_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t n = writev(fd, iov, iovcnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int read_full(int fd, uint8_t *buf, size_t size)
{
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return got == 0 ? 0 : -EPIPE; /* EOF: clean only between messages */
		got += (size_t)n;
	}
	return 1;
}

struct run_out {
	int fd;
	uint32_t seq;
};

static int emit_frame(void *opaque, const uint8_t *packet, size_t size, int64_t capture_ns)
{
	struct run_out *o = opaque;
	uint8_t header[PC_IPC_HEADER_SIZE];
	uint8_t encoded[PC_IPC_ENCODED_TIME_SIZE] = {0}; /* unknown: 0 */
	struct pc_ipc_header hdr = {.version = PC_IPC_VERSION, .type = PC_IPC_FRAME,
				    .timestamp_ns = capture_ns, .seq = o->seq++,
				    .length = (uint32_t)(sizeof(encoded) + size), .track = 1};
	pc_ipc_header_pack(&hdr, header);
	struct iovec iov[3] = {{header, sizeof(header)}, {encoded, sizeof(encoded)},
			       {(void *)packet, size}};
	int ret = write_all(o->fd, iov, 3);
	if (ret < 0)
		pc_log("transcode: write: %s", strerror(-ret));
	return ret;
}

int pc_transcode_run(int in_fd, int out_fd, const uint8_t *asc, size_t asc_size, uint32_t bitrate)
{
	char err[256] = "";
	struct pc_transcode *tc = NULL;
	uint8_t *payload = NULL;
	int ret = pc_transcode_init(&tc, asc, asc_size, bitrate, err, sizeof(err));
	if (ret < 0) {
		pc_log("transcode: %s", err);
		return ret;
	}
	payload = malloc(PC_TRANSCODE_MAX_AU + PC_IPC_ENCODED_TIME_SIZE);
	if (!payload) {
		ret = -ENOMEM;
		pc_log("transcode: out of memory");
		goto out;
	}
	struct pc_ipc_audio_hello hello = {.codec = PC_IPC_CODEC_OPUS,
					   .channels = (uint8_t)tc->channels,
					   .sample_rate = PC_OPUS_RATE,
					   .bitrate = tc->bitrate,
					   .frame_us = PC_OPUS_FRAME_US,
					   .name = "aac-opus"};
	uint8_t hello_payload[PC_IPC_HELLO_SIZE + PC_IPC_NAME_MAX];
	size_t hello_size = pc_ipc_audio_hello_pack(&hello, hello_payload);
	uint8_t header[PC_IPC_HEADER_SIZE];
	struct pc_ipc_header hdr = {.version = PC_IPC_VERSION, .type = PC_IPC_HELLO,
				    .flags = PC_IPC_HELLO_FLAG_LAST, .length = (uint32_t)hello_size,
				    .track = 1};
	pc_ipc_header_pack(&hdr, header);
	struct iovec iov[2] = {{header, sizeof(header)}, {hello_payload, hello_size}};
	ret = write_all(out_fd, iov, 2);
	if (ret < 0) {
		pc_log("transcode: write HELLO: %s", strerror(-ret));
		goto out;
	}
	pc_log("transcode: AAC (%d channels) to Opus (%d channels, %u bit/s)",
	       tc->dec->ch_layout.nb_channels, tc->channels, tc->bitrate);
	struct run_out o = {.fd = out_fd};
	for (;;) {
		ret = read_full(in_fd, header, sizeof(header));
		if (ret == 0)
			break; /* the device closed our input: done */
		if (ret < 0) {
			pc_log("transcode: read: %s", strerror(-ret));
			goto out;
		}
		enum pc_ipc_status st = pc_ipc_header_unpack(header, &hdr);
		if (st != PC_IPC_OK) {
			pc_log("transcode: bad input: %s", pc_ipc_status_str(st));
			ret = -EPROTO;
			goto out;
		}
		if (hdr.length > PC_TRANSCODE_MAX_AU + PC_IPC_ENCODED_TIME_SIZE) {
			pc_log("transcode: input message of %u bytes", hdr.length);
			ret = -EPROTO;
			goto out;
		}
		if (hdr.length > 0) {
			ret = read_full(in_fd, payload, hdr.length);
			if (ret <= 0) {
				pc_log("transcode: read: %s", ret == 0 ? "end of input" : strerror(-ret));
				ret = ret == 0 ? -EPIPE : ret;
				goto out;
			}
		}
		if (hdr.type == PC_IPC_BYE)
			break;
		if (hdr.type != PC_IPC_FRAME || hdr.length <= PC_IPC_ENCODED_TIME_SIZE)
			continue; /* nothing else is sent to a transcoder: skipped */
		ret = pc_transcode_push(tc, payload + PC_IPC_ENCODED_TIME_SIZE,
					hdr.length - PC_IPC_ENCODED_TIME_SIZE, hdr.timestamp_ns,
					emit_frame, &o, err, sizeof(err));
		if (ret < 0) {
			if (err[0])
				pc_log("transcode: %s", err);
			goto out;
		}
	}
	ret = 0;
out:
	if (tc && tc->bad_units)
		pc_log("transcode: %llu AAC units refused by the decoder",
		       (unsigned long long)tc->bad_units);
	free(payload);
	pc_transcode_destroy(tc);
	return ret;
}

int pc_transcode_main(int argc, char **argv)
{
	const char *kind = NULL, *config = NULL;
	uint32_t bitrate = 0;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(arg, "--transcode") == 0 && val) {
			kind = val;
		} else if (strcmp(arg, "--aac-config") == 0 && val) {
			config = val;
		} else if (strcmp(arg, "--bitrate") == 0 && val) {
			char *end;
			unsigned long v = strtoul(val, &end, 10);
			if (*end != 0 || v < PC_OPUS_MIN_BITRATE || v > PC_OPUS_MAX_BITRATE) {
				pc_log("--bitrate: %s is not in %u..%u", val, PC_OPUS_MIN_BITRATE,
				       PC_OPUS_MAX_BITRATE);
				return 2;
			}
			bitrate = (uint32_t)v;
		} else {
			pc_log("usage: %s --transcode aac --aac-config HEX [--bitrate BPS] "
			       "(FRAMEs of AAC on stdin, Opus FRAMEs on stdout: docs/rtsp.md)",
			       PC_PROG);
			return 2;
		}
		i++;
	}
	uint8_t asc[64];
	int asc_size = config ? pc_transcode_parse_hex(config, asc, sizeof(asc)) : -EINVAL;
	if (!kind || strcmp(kind, "aac") != 0 || asc_size < 0) {
		pc_log("--transcode aac needs --aac-config HEX (the SDP's config=)");
		return 2;
	}
	/* The device's child: gone with the device even if it could not close our input. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
		pc_log("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() == 1)
		return 1; /* the parent died before prctl */
	signal(SIGPIPE, SIG_IGN); /* a closed output is EPIPE from write */
	av_log_set_level(AV_LOG_ERROR);
	return pc_transcode_run(STDIN_FILENO, STDOUT_FILENO, asc, (size_t)asc_size, bitrate) < 0;
}
