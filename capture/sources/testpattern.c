/* The test pattern: 75% colour bars, a scrolling luma ramp, a bouncing box, the frame
 * number and the capture time (UTC) in large digits, the time strip, and a white flash on
 * the first picture of each second (testpattern.h).
 *
 * Drawing is incremental: the bars are drawn once, and each frame rewrites only the strip,
 * the text box, the ramp band and the box (restoring the bars behind where it was). At
 * 1280x720 that is about a tenth of the picture. */
#include "testpattern.h"

#include "../clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LUMA_BLACK 16
#define LUMA_WHITE 235
#define CHROMA_NEUTRAL 128

/* Strides padded for the encoder's SIMD loads. */
#define STRIDE_ALIGN 64

/* ---- time strip ---- */

int pc_timestrip_block_size(int width)
{
	int block = (width / 64) / 8 * 8;
	if (block < 8)
		block = 8;
	if (block > 32)
		block = 32;
	return block;
}

uint16_t pc_timestrip_crc16(const uint8_t *data, size_t len)
{
	uint16_t crc = 0xffff;
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(data[i] << 8);
		for (int bit = 0; bit < 8; bit++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static uint16_t crc_of_48(uint64_t value)
{
	uint8_t bytes[6];
	for (int i = 0; i < 6; i++)
		bytes[i] = (uint8_t)(value >> (8 * (5 - i)));
	return pc_timestrip_crc16(bytes, sizeof(bytes));
}

uint64_t pc_timestrip_encode(uint64_t capture_us)
{
	uint64_t low48 = capture_us & 0xffffffffffffull;
	return (low48 << 16) | crc_of_48(low48);
}

bool pc_timestrip_decode(uint64_t word, uint64_t *capture_us)
{
	uint64_t low48 = word >> 16;
	if ((uint16_t)word != crc_of_48(low48))
		return false;
	*capture_us = low48;
	return true;
}

/* ---- drawing primitives, all clipped to the picture ---- */

struct rect {
	int x, y, w, h;
};

static bool clip(const struct pc_frame *frame, struct rect *r)
{
	if (r->x < 0) {
		r->w += r->x;
		r->x = 0;
	}
	if (r->y < 0) {
		r->h += r->y;
		r->y = 0;
	}
	if (r->x + r->w > frame->width)
		r->w = frame->width - r->x;
	if (r->y + r->h > frame->height)
		r->h = frame->height - r->y;
	return r->w > 0 && r->h > 0;
}

static void fill_luma(struct pc_frame *frame, struct rect r, uint8_t y)
{
	if (!clip(frame, &r))
		return;
	for (int row = r.y; row < r.y + r.h; row++)
		memset(frame->plane[0] + (size_t)row * frame->stride[0] + r.x, y, (size_t)r.w);
}

/* Chroma covers 2x2 luma pixels: the rect is widened to even bounds. */
static void fill_chroma(struct pc_frame *frame, struct rect r, uint8_t u, uint8_t v)
{
	if (!clip(frame, &r))
		return;
	int x0 = r.x / 2, y0 = r.y / 2;
	int x1 = (r.x + r.w + 1) / 2, y1 = (r.y + r.h + 1) / 2;
	for (int row = y0; row < y1; row++) {
		memset(frame->plane[1] + (size_t)row * frame->stride[1] + x0, u, (size_t)(x1 - x0));
		memset(frame->plane[2] + (size_t)row * frame->stride[2] + x0, v, (size_t)(x1 - x0));
	}
}

static void fill_rect(struct pc_frame *frame, struct rect r, uint8_t y, uint8_t u, uint8_t v)
{
	fill_luma(frame, r, y);
	fill_chroma(frame, r, u, v);
}

/* Copies rect r (even bounds) of all three planes from src to dst. */
static void copy_rect(struct pc_frame *dst, const struct pc_frame *src, struct rect r)
{
	if (!clip(dst, &r))
		return;
	for (int row = r.y; row < r.y + r.h; row++)
		memcpy(dst->plane[0] + (size_t)row * dst->stride[0] + r.x,
		       src->plane[0] + (size_t)row * src->stride[0] + r.x, (size_t)r.w);
	for (int p = 1; p < 3; p++)
		for (int row = r.y / 2; row < (r.y + r.h + 1) / 2; row++)
			memcpy(dst->plane[p] + (size_t)row * dst->stride[p] + r.x / 2,
			       src->plane[p] + (size_t)row * src->stride[p] + r.x / 2,
			       (size_t)((r.w + 1) / 2));
}

void pc_timestrip_draw(struct pc_frame *frame, uint64_t capture_us)
{
	int block = pc_timestrip_block_size(frame->width);
	uint64_t word = pc_timestrip_encode(capture_us);
	for (int i = 0; i < PC_TIMESTRIP_BITS && i * block < frame->width; i++) {
		bool one = (word >> (PC_TIMESTRIP_BITS - 1 - i)) & 1;
		struct rect r = {i * block, 0, block, block};
		fill_rect(frame, r, one ? PC_TIMESTRIP_LUMA_ONE : PC_TIMESTRIP_LUMA_ZERO,
			  CHROMA_NEUTRAL, CHROMA_NEUTRAL);
	}
}

/* ---- a 5x7 bitmap font, just the characters the pattern prints ---- */

#define GLYPH_W 5
#define GLYPH_H 7
#define CELL_W (GLYPH_W + 1) /* one column of spacing */

struct glyph {
	char ch;
	uint8_t rows[GLYPH_H]; /* bit 4 is the leftmost column */
};

static const struct glyph font[] = {
	{'0', {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}},
	{'1', {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}},
	{'2', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}},
	{'3', {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}},
	{'4', {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}},
	{'5', {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}},
	{'6', {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}},
	{'7', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
	{'8', {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}},
	{'9', {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}},
	{':', {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}},
	{'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}},
	{'#', {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}},
	{'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
	{'T', {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
	{'C', {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}},
};

static const struct glyph *glyph_for(char ch)
{
	for (size_t i = 0; i < sizeof(font) / sizeof(font[0]); i++)
		if (font[i].ch == ch)
			return &font[i];
	return NULL; /* drawn as a space */
}

/* Draws text in white on the (already dark) background, each font pixel scale x scale. */
static void draw_text(struct pc_frame *frame, int x, int y, int scale, const char *text)
{
	for (; *text; text++, x += CELL_W * scale) {
		const struct glyph *g = glyph_for(*text);
		if (!g)
			continue;
		for (int row = 0; row < GLYPH_H; row++)
			for (int col = 0; col < GLYPH_W; col++)
				if (g->rows[row] & (0x10 >> col)) {
					struct rect r = {x + col * scale, y + row * scale, scale, scale};
					fill_luma(frame, r, LUMA_WHITE);
				}
	}
}

/* ---- the pattern ---- */

/* BT.601 limited-range 75% colour bars: white, yellow, cyan, green, magenta, red, blue. */
static const uint8_t bars_yuv[7][3] = {
	{180, 128, 128}, {162, 44, 142}, {131, 156, 44}, {112, 72, 58},
	{84, 184, 198},  {65, 100, 212}, {35, 212, 114},
};

#define TEXT_CHARS 16 /* "HH:MM:SS.mmm UTC" is the longest line */
#define TEXT_LINES 2
#define RAMP_PERIOD 256

struct testpattern {
	struct pc_frame frame;      /* what next_frame() hands out */
	struct pc_frame background; /* bars only: what is behind the box */
	uint8_t *frame_mem;
	uint8_t *background_mem;
	uint8_t *ramp;              /* one luma row of the ramp, RAMP_PERIOD pixels too long */
	struct rect text;           /* dark box holding the two lines */
	int text_scale;
	struct rect band;           /* scrolling ramp */
	int band_step;              /* pixels per frame */
	struct rect box;            /* current position of the bouncing box */
	int box_step;
	bool box_drawn;
	struct rect flash;
	bool flashed;               /* the last picture had the flash: restore what it covered */
	bool have_prev;
	int64_t prev_capture_ns;
};

static int even(int v)
{
	return v & ~1;
}

static uint8_t *frame_alloc(struct pc_frame *frame, int width, int height)
{
	int luma_stride = (width + STRIDE_ALIGN - 1) / STRIDE_ALIGN * STRIDE_ALIGN;
	int chroma_stride = luma_stride / 2;
	size_t luma_size = (size_t)luma_stride * (size_t)height;
	size_t chroma_size = (size_t)chroma_stride * (size_t)(height / 2);
	uint8_t *mem = aligned_alloc(STRIDE_ALIGN, luma_size + 2 * chroma_size + STRIDE_ALIGN);
	if (!mem)
		return NULL;
	frame->width = width;
	frame->height = height;
	frame->plane[0] = mem;
	frame->plane[1] = mem + luma_size;
	frame->plane[2] = mem + luma_size + chroma_size;
	frame->stride[0] = luma_stride;
	frame->stride[1] = chroma_stride;
	frame->stride[2] = chroma_stride;
	return mem;
}

static void draw_bars(struct pc_frame *frame)
{
	for (int i = 0; i < 7; i++) {
		int x0 = even(i * frame->width / 7);
		int x1 = i == 6 ? frame->width : even((i + 1) * frame->width / 7);
		struct rect r = {x0, 0, x1 - x0, frame->height};
		fill_rect(frame, r, bars_yuv[i][0], bars_yuv[i][1], bars_yuv[i][2]);
	}
}

static struct rect flash_rect(int width, int height, struct rect text, int block)
{
	int y = even(text.y + text.h + block);
	if (y > height - 2)
		y = even(height / 2); /* tiny pictures: still a visible block */
	return (struct rect){0, y, width, height - y};
}

/* Places the moving parts below the strip so they never touch rows [0, B). */
static void layout(struct testpattern *tp, int width, int height)
{
	int block = pc_timestrip_block_size(width);

	tp->text_scale = height / 90 > 1 ? height / 90 : 1;
	int s = tp->text_scale;
	/* Padding of s around the text, 2s between lines; sizes rounded up to even. */
	tp->text = (struct rect){
		.x = block,
		.y = 2 * block,
		.w = even(s + TEXT_CHARS * CELL_W * s + 1),
		.h = even(TEXT_LINES * (GLYPH_H + 2) * s + 1),
	};

	tp->band = (struct rect){0, even(height / 2), width, even(height / 10) ? even(height / 10) : 2};
	tp->band_step = even(width / 320) ? even(width / 320) : 2;

	int box = even(height / 6) ? even(height / 6) : 2;
	tp->box = (struct rect){0, even(height * 3 / 4), box, box};
	tp->box_step = even(width / 160) ? even(width / 160) : 2;
	tp->flash = flash_rect(width, height, tp->text, block);
}

void pc_testpattern_flash_rect(int width, int height, struct pc_testpattern_rect *r)
{
	struct testpattern tp;
	layout(&tp, width, height);
	*r = (struct pc_testpattern_rect){tp.flash.x, tp.flash.y, tp.flash.w, tp.flash.h};
}

bool pc_testpattern_flashes(int64_t prev_capture_ns, int64_t capture_ns)
{
	return pc_floor_div(capture_ns, PC_NS_PER_SEC) != pc_floor_div(prev_capture_ns, PC_NS_PER_SEC);
}

static int testpattern_init(void **state, const struct pc_source_config *config, char *err,
			    size_t err_size)
{
	struct testpattern *tp = NULL;
	int width = config->width, height = config->height;

	if (width < 16 || height < 16 || width % 2 || height % 2) {
		snprintf(err, err_size, "testpattern: size %dx%d: width and height must be even and at least 16",
			 width, height);
		return -EINVAL;
	}
	tp = calloc(1, sizeof(*tp));
	if (!tp)
		goto nomem;
	if (!(tp->frame_mem = frame_alloc(&tp->frame, width, height)))
		goto nomem;
	if (!(tp->background_mem = frame_alloc(&tp->background, width, height)))
		goto nomem;
	if (!(tp->ramp = malloc((size_t)width + RAMP_PERIOD)))
		goto nomem;

	layout(tp, width, height);
	for (int x = 0; x < width + RAMP_PERIOD; x++)
		tp->ramp[x] = (uint8_t)(LUMA_BLACK + (x % RAMP_PERIOD) * (LUMA_WHITE - LUMA_BLACK) /
							(RAMP_PERIOD - 1));

	/* Static parts, drawn once: bars everywhere, neutral chroma under the parts that
	 * change only in luma. */
	draw_bars(&tp->background);
	copy_rect(&tp->frame, &tp->background, (struct rect){0, 0, width, height});
	fill_chroma(&tp->frame, tp->text, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
	fill_chroma(&tp->frame, tp->band, CHROMA_NEUTRAL, CHROMA_NEUTRAL);

	*state = tp;
	return 0;

nomem:
	snprintf(err, err_size, "testpattern: out of memory for %dx%d", width, height);
	if (tp) {
		free(tp->ramp);
		free(tp->background_mem);
		free(tp->frame_mem);
		free(tp);
	}
	return -ENOMEM;
}

static void draw_clock(struct testpattern *tp, uint32_t seq, int64_t capture_ns)
{
	time_t sec = (time_t)(capture_ns / 1000000000);
	int ms = (int)(capture_ns / 1000000 % 1000);
	struct tm tm;
	char line[2][TEXT_CHARS + 8];

	gmtime_r(&sec, &tm);
	snprintf(line[0], sizeof(line[0]), "%02d:%02d:%02d.%03d UTC", tm.tm_hour, tm.tm_min,
		 tm.tm_sec, ms);
	snprintf(line[1], sizeof(line[1]), "#%06u", (unsigned)seq);

	int s = tp->text_scale;
	fill_luma(&tp->frame, tp->text, LUMA_BLACK);
	for (int i = 0; i < TEXT_LINES; i++)
		draw_text(&tp->frame, tp->text.x + s, tp->text.y + s + i * (GLYPH_H + 2) * s, s,
			  line[i]);
}

static void draw_band(struct testpattern *tp, uint32_t seq)
{
	struct rect r = tp->band;
	if (!clip(&tp->frame, &r))
		return;
	const uint8_t *src = tp->ramp + (RAMP_PERIOD - (seq * (uint32_t)tp->band_step) % RAMP_PERIOD);
	for (int row = r.y; row < r.y + r.h; row++)
		memcpy(tp->frame.plane[0] + (size_t)row * tp->frame.stride[0], src, (size_t)r.w);
}

static void draw_box(struct testpattern *tp, uint32_t seq)
{
	struct rect *box = &tp->box;
	if (tp->box_drawn)
		copy_rect(&tp->frame, &tp->background, *box);

	/* Bounces between the edges: a triangle wave over the free width. */
	int travel = tp->frame.width - box->w;
	if (travel > 0) {
		uint64_t pos = (uint64_t)seq * (uint64_t)tp->box_step % (2 * (uint64_t)travel);
		box->x = even((int)(pos < (uint64_t)travel ? pos : 2 * (uint64_t)travel - pos));
	}
	fill_rect(&tp->frame, *box, LUMA_WHITE, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
	struct rect inner = {box->x + box->w / 4, box->y + box->h / 4, even(box->w / 2),
			     even(box->h / 2)};
	fill_rect(&tp->frame, inner, LUMA_BLACK, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
	tp->box_drawn = true;
}

static const struct pc_frame *testpattern_next_frame(void *state, uint32_t seq, int64_t capture_ns)
{
	struct testpattern *tp = state;
	bool flash = tp->have_prev && pc_testpattern_flashes(tp->prev_capture_ns, capture_ns);
	tp->have_prev = true;
	tp->prev_capture_ns = capture_ns;

	if (tp->flashed) {
		/* Bars back under the flash, and the neutral chroma the ramp band draws on. */
		copy_rect(&tp->frame, &tp->background, tp->flash);
		fill_chroma(&tp->frame, tp->band, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
		tp->flashed = false;
	}
	draw_band(tp, seq);
	draw_box(tp, seq);
	draw_clock(tp, seq, capture_ns);
	pc_timestrip_draw(&tp->frame, (uint64_t)(capture_ns / 1000));
	if (flash) {
		fill_rect(&tp->frame, tp->flash, PC_TESTPATTERN_FLASH_LUMA, CHROMA_NEUTRAL,
			  CHROMA_NEUTRAL);
		tp->flashed = true;
	}
	return &tp->frame;
}

static void testpattern_destroy(void *state)
{
	struct testpattern *tp = state;
	if (!tp)
		return;
	free(tp->ramp);
	free(tp->background_mem);
	free(tp->frame_mem);
	free(tp);
}

const struct pc_source_ops pc_testpattern_source = {
	.name = "testpattern",
	.init = testpattern_init,
	.next_frame = testpattern_next_frame,
	.destroy = testpattern_destroy,
};
