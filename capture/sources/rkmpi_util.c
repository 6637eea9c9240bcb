/* The rkmpi source's plain parts (rkmpi_vi.h): built in every build, so the tests check them
 * without the vendor SDK. */
#include "rkmpi_vi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SIDE 64
#define DEFAULT_BITRATE 2000000u

int pc_rkmpi_vi_settings(const struct pc_source_config *config, const struct pc_rkmpi_vi_options *options,
			 struct pc_rkmpi_vi_settings *out, char *err, size_t err_size)
{
	static const struct pc_rkmpi_vi_options none = {0};
	const struct pc_rkmpi_vi_options *o = options ? options : &none;
	*out = (struct pc_rkmpi_vi_settings){
		.width = {config->width ? config->width : PC_RKMPI_DEFAULT_WIDTH, o->sub_width},
		.height = {config->height ? config->height : PC_RKMPI_DEFAULT_HEIGHT, o->sub_height},
		.sensor_fps = o->sensor_fps ? o->sensor_fps : PC_RKMPI_DEFAULT_SENSOR_FPS,
		.fps_num = config->fps_num ? config->fps_num : 30,
		.fps_den = config->fps_den ? config->fps_den : 1,
		.iq_dir = o->iq_dir ? o->iq_dir : PC_RKMPI_DEFAULT_IQ_DIR,
	};
	out->bitrate[PC_RKMPI_MAIN] = o->bitrate ? o->bitrate : DEFAULT_BITRATE;
	out->bitrate[PC_RKMPI_SUB] = o->sub_bitrate ? o->sub_bitrate
				     : out->bitrate[PC_RKMPI_MAIN] / 4 > PC_RKMPI_MIN_BITRATE ? out->bitrate[PC_RKMPI_MAIN] / 4
											   : PC_RKMPI_MIN_BITRATE;
	if (!*out->iq_dir) {
		snprintf(err, err_size, "rkmpi: an empty IQ file directory");
		return -EINVAL;
	}
	if (out->sensor_fps > PC_RKMPI_MAX_SENSOR_FPS) {
		snprintf(err, err_size, "rkmpi: a sensor rate of %u is beyond %u", out->sensor_fps, PC_RKMPI_MAX_SENSOR_FPS);
		return -EINVAL;
	}
	for (int r = 0; r < PC_RKMPI_RENDITIONS; r++) {
		int w = out->width[r], h = out->height[r];
		if (r == PC_RKMPI_SUB && !w && !h)
			break;
		if (w % 2 || h % 2 || w < MIN_SIDE || h < MIN_SIDE) {
			snprintf(err, err_size, "rkmpi: %s stream %dx%d: width and height must be even and at least %d",
				 r == PC_RKMPI_MAIN ? "main" : "sub", w, h, MIN_SIDE);
			return -EINVAL;
		}
	}
	int sw = out->width[PC_RKMPI_SUB], sh = out->height[PC_RKMPI_SUB];
	if (sw && (sw > out->width[PC_RKMPI_MAIN] || sh > out->height[PC_RKMPI_MAIN] ||
		   (sw == out->width[PC_RKMPI_MAIN] && sh == out->height[PC_RKMPI_MAIN]))) {
		snprintf(err, err_size, "rkmpi: the sub stream (%dx%d) must be smaller than the main one (%dx%d)", sw, sh,
			 out->width[PC_RKMPI_MAIN], out->height[PC_RKMPI_MAIN]);
		return -EINVAL;
	}
	/* The VENC only drops pictures: a rate above the sensor's is the sensor's, and a GOP given
	 * for the asked rate keeps its duration. */
	uint32_t asked_num = out->fps_num, asked_den = out->fps_den;
	if ((uint64_t)out->fps_num > (uint64_t)out->sensor_fps * out->fps_den) {
		out->fps_num = out->sensor_fps;
		out->fps_den = 1;
		out->fps_capped = true;
	}
	if (o->gop) {
		uint64_t gop = (uint64_t)o->gop * out->fps_num * asked_den / ((uint64_t)out->fps_den * asked_num);
		out->gop = gop > 0 ? (uint32_t)gop : 1;
	} else {
		uint64_t two_seconds = (2ull * out->fps_num + out->fps_den / 2) / out->fps_den;
		out->gop = two_seconds > 0 ? (uint32_t)two_seconds : 1;
	}
	return 0;
}

bool pc_rkmpi_parse_sensor_fps(const char *s, uint32_t *fps)
{
	uint32_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint32_t)(*s - '0');
		if (v > PC_RKMPI_MAX_SENSOR_FPS)
			return false;
	}
	if (v == 0)
		return false;
	*fps = v;
	return true;
}

uint32_t pc_rkmpi_kbps(uint32_t bitrate, uint32_t max_bitrate)
{
	uint64_t max = (uint64_t)PC_RKMPI_MAX_KBPS * 1000;
	if (max_bitrate && max_bitrate < max)
		max = max_bitrate;
	uint64_t b = bitrate < PC_RKMPI_MIN_BITRATE ? PC_RKMPI_MIN_BITRATE : bitrate;
	if (b > max)
		b = max;
	/* Rounded down when that would pass the limit. */
	uint64_t kbps = (b + 500) / 1000;
	if (kbps * 1000 > max)
		kbps = max / 1000;
	return (uint32_t)kbps;
}

bool pc_rkmpi_capture_ns(uint64_t pts_us, int64_t now_mono_ns, int64_t now_real_ns, int64_t *out)
{
	*out = now_real_ns;
	if (pts_us == 0 || pts_us > (uint64_t)INT64_MAX / 1000)
		return false;
	int64_t age = now_mono_ns - (int64_t)pts_us * 1000;
	if (age > PC_RKMPI_MAX_PTS_AGE_NS)
		return false;
	/* A microsecond PTS may round past the nanosecond "now"; anything further ahead is another
	 * clock. */
	if (age < -PC_RKMPI_MAX_PTS_AHEAD_NS)
		return false;
	if (age > 0)
		*out = now_real_ns - age;
	return true;
}

bool pc_rkmpi_has_idr(const uint8_t *au, size_t size)
{
	for (size_t i = 0; i + 3 < size; i++)
		if (au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 && (au[i + 3] & 0x1f) == 5)
			return true;
	return false;
}

static void drop_all(struct pc_rkmpi_queue *q)
{
	q->dropped += q->count;
	q->head = 0;
	q->count = 0;
	for (int r = 0; r < PC_RKMPI_RENDITIONS; r++)
		q->wait_idr[r] = true;
}

int pc_rkmpi_queue_push(struct pc_rkmpi_queue *q, int rendition, const struct pc_rkmpi_chunk *chunks, int n_chunks,
			bool keyframe, int64_t capture_ns)
{
	int result = PC_RKMPI_QUEUED;
	if (rendition < 0 || rendition >= PC_RKMPI_RENDITIONS)
		return -EINVAL;
	if (q->count == PC_RKMPI_QUEUE_LEN) {
		q->overflows++;
		drop_all(q);
		result = PC_RKMPI_OVERFLOW;
	}
	if (q->wait_idr[rendition]) {
		if (!keyframe) {
			q->dropped++;
			return result == PC_RKMPI_OVERFLOW ? result : PC_RKMPI_SKIPPED;
		}
		q->wait_idr[rendition] = false;
	}
	size_t size = 0;
	for (int i = 0; i < n_chunks; i++)
		size += chunks[i].size;
	struct pc_rkmpi_au *au = &q->slot[(q->head + q->count) % PC_RKMPI_QUEUE_LEN];
	if (size > au->cap) {
		uint8_t *p = realloc(au->data, size);
		if (!p) {
			q->dropped++;
			q->wait_idr[rendition] = true;
			return -ENOMEM;
		}
		au->data = p;
		au->cap = size;
	}
	size_t at = 0;
	for (int i = 0; i < n_chunks; i++) {
		if (chunks[i].size)
			memcpy(au->data + at, chunks[i].data, chunks[i].size);
		at += chunks[i].size;
	}
	au->size = size;
	au->capture_ns = capture_ns;
	au->keyframe = keyframe;
	au->rendition = rendition;
	q->count++;
	return result;
}

bool pc_rkmpi_queue_pop(struct pc_rkmpi_queue *q, struct pc_rkmpi_au *taken)
{
	if (!q->count)
		return false;
	struct pc_rkmpi_au *au = &q->slot[q->head];
	struct pc_rkmpi_au spare = *taken;
	*taken = *au;
	/* The slot keeps the taken one's old buffer for a later access unit. */
	*au = (struct pc_rkmpi_au){.data = spare.data, .cap = spare.cap};
	q->head = (q->head + 1) % PC_RKMPI_QUEUE_LEN;
	q->count--;
	return true;
}

void pc_rkmpi_queue_free(struct pc_rkmpi_queue *q, struct pc_rkmpi_au *taken)
{
	for (int i = 0; i < PC_RKMPI_QUEUE_LEN; i++) {
		free(q->slot[i].data);
		q->slot[i] = (struct pc_rkmpi_au){0};
	}
	q->head = q->count = 0;
	if (taken) {
		free(taken->data);
		*taken = (struct pc_rkmpi_au){0};
	}
}
