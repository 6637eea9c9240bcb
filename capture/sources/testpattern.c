/* The test pattern: 75% colour bars, a scrolling luma ramp, a bouncing box, the frame
 * number and the capture time (UTC) in large digits, the time strip, and a white flash on
 * the first picture of each second (testpattern.h).
 *
 * Drawing "bars" is incremental: the bars are drawn once, and each frame rewrites only the
 * strip, the text box, the ramp band and the box (restoring the bars behind where it was). At
 * 1280x720 that is about a tenth of the picture.
 *
 * "busy" rewrites every pixel of every picture (that is the point: no encoder may predict it),
 * but with word-wide operations only: rows are copied out of precomputed texture tiles and get
 * 8 pixels of noise per xorshift64 step, no per-pixel rand() or floating point. */
#include "testpattern.h"

#include "../clock.h"
#include "../scale.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LUMA_BLACK 16
#define LUMA_WHITE 235
#define CHROMA_NEUTRAL 128

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

enum pattern {
	PATTERN_BARS,
	PATTERN_BUSY,
	PATTERN_STILL,
};

struct busy; /* below */

struct testpattern {
	enum pattern pattern;
	struct busy *busy;          /* PATTERN_BUSY only */
	struct pc_frame frame;      /* what next_frame() hands out */
	struct pc_frame background; /* bars only: what is behind the box (unused by busy) */
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
	/* The moving object (pc_testpattern_set_object): off, then on, from the first picture. */
	int64_t object_on_ns, object_off_ns; /* on 0: no object */
	int64_t first_capture_ns;
	bool have_first;
	struct rect object;         /* where it was drawn last */
	bool object_drawn;
};

static int even(int v)
{
	return v & ~1;
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

/* ---- the moving object ---- */

bool pc_testpattern_object_at(int width, int height, int64_t on_ns, int64_t off_ns, int64_t elapsed_ns,
			      struct pc_testpattern_rect *r)
{
	if (on_ns <= 0 || elapsed_ns < 0)
		return false;
	int64_t phase = elapsed_ns % (on_ns + off_ns);
	if (phase < off_ns)
		return false;
	int w = even(width / 8) ? even(width / 8) : 2, h = even(height / 6) ? even(height / 6) : 2;
	int travel = width - w;
	int x = 0;
	if (travel > 0) {
		/* Half the picture's width a second, bouncing between the edges. */
		int64_t pos = elapsed_ns / PC_NS_PER_MS * (width / 2) / 1000 % (2 * (int64_t)travel);
		x = even((int)(pos < travel ? pos : 2 * travel - pos));
	}
	*r = (struct pc_testpattern_rect){x, even(height / 4), w, h};
	return true;
}

/* Restores what the object covered (from the background: bars and still) and draws it where
 * the schedule says, if it shows now. */
static void draw_object(struct testpattern *tp, int64_t capture_ns)
{
	if (tp->object_on_ns <= 0)
		return;
	if (!tp->have_first) {
		tp->have_first = true;
		tp->first_capture_ns = capture_ns;
	}
	if (tp->object_drawn && tp->pattern != PATTERN_BUSY)
		copy_rect(&tp->frame, &tp->background, tp->object);
	tp->object_drawn = false;
	struct pc_testpattern_rect r;
	if (!pc_testpattern_object_at(tp->frame.width, tp->frame.height, tp->object_on_ns, tp->object_off_ns,
				      capture_ns - tp->first_capture_ns, &r))
		return;
	tp->object = (struct rect){r.x, r.y, r.w, r.h};
	fill_rect(&tp->frame, tp->object, LUMA_WHITE, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
	struct rect inner = {r.x + r.w / 4, r.y + r.h / 4, even(r.w / 2), even(r.h / 2)};
	fill_rect(&tp->frame, inner, LUMA_BLACK, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
	tp->object_drawn = true;
}

void pc_testpattern_set_object(void *state, int64_t on_ns, int64_t off_ns)
{
	struct testpattern *tp = state;
	tp->object_on_ns = on_ns;
	tp->object_off_ns = off_ns;
}

/* ---- the busy pattern ---- */

/* A luma tile is BUSY_TILE pixels square, a chroma tile half that; powers of two, so scrolled
 * offsets wrap with a mask and value noise tiles seamlessly. */
#define BUSY_TILE 512
#define BUSY_CTILE (BUSY_TILE / 2)
#define BUSY_SCENES 4
/* Texture luma tops out here, leaving room for the noise below without a carry between the
 * bytes of a word: 110 + 15 = PC_TESTPATTERN_BUSY_LUMA_MAX, under diag.js's flash threshold
 * (135), so only the flash is ever bright where it looks for it. */
#define BUSY_TEXTURE_LUMA_MAX 110
#define BUSY_LUMA_NOISE UINT64_C(0x0f0f0f0f0f0f0f0f)   /* 0..15 per pixel */
#define BUSY_CHROMA_NOISE UINT64_C(0x0707070707070707) /* 0..7 per sample */
#define BUSY_CHROMA_MIN 24
#define BUSY_CHROMA_MAX 232 /* + 7 of noise stays a byte, and within limited range */

/* Per scene: the texture's make-up, the palette (chroma centre) and the motion. Fast: 300 to
 * 400 pixels a second at 30 fps, a new direction each scene. */
struct busy_scene {
	int coarse_cell, fine_cell;   /* value noise lattice, pixels */
	int coarse, fine, stripes;    /* luma weights, summing to BUSY_TEXTURE_LUMA_MAX - 16 */
	int stripe_kx, stripe_ky, stripe_shift;
	uint8_t u, v;
	int dx, dy;                   /* background motion, pixels per picture */
};

static const struct busy_scene busy_scenes[BUSY_SCENES] = {
	{64, 4, 44, 34, 16, 3, 1, 4, 96, 168, 11, 3},
	{32, 8, 30, 28, 36, 1, 2, 3, 170, 96, -7, 9},
	{128, 2, 50, 44, 0, 0, 0, 0, 88, 88, 13, -5},
	{16, 4, 24, 30, 40, 2, -3, 5, 168, 168, -9, -8},
};

struct busy {
	uint8_t *mem;
	uint8_t *luma[BUSY_SCENES];      /* BUSY_TILE x BUSY_TILE */
	uint8_t *chroma[BUSY_SCENES][2]; /* BUSY_CTILE x BUSY_CTILE, U then V */
	uint64_t rng;                    /* xorshift64 state, never 0 */
	struct rect box;                 /* the box moving against the background */
	int box_step;
};

static inline uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/* Periodic value noise: a random lattice value every cell pixels, bilinear in between, over a
 * size x size tile that wraps (size a multiple of cell). Only at init: per pixel is fine. */
static int value_noise(uint8_t *out, int size, int cell, uint64_t *rng)
{
	int n = size / cell;
	uint8_t *lattice = malloc((size_t)n * (size_t)n);
	if (!lattice)
		return -ENOMEM;
	for (int i = 0; i < n * n; i++)
		lattice[i] = (uint8_t)xorshift64(rng);
	for (int y = 0; y < size; y++) {
		int ly = y / cell, fy = y % cell;
		const uint8_t *r0 = lattice + (size_t)ly * n, *r1 = lattice + (size_t)((ly + 1) % n) * n;
		for (int x = 0; x < size; x++) {
			int lx = x / cell, lx1 = (lx + 1) % n, fx = x % cell;
			int top = r0[lx] * (cell - fx) + r0[lx1] * fx;
			int bottom = r1[lx] * (cell - fx) + r1[lx1] * fx;
			out[(size_t)y * size + x] = (uint8_t)((top * (cell - fy) + bottom * fy) / (cell * cell));
		}
	}
	free(lattice);
	return 0;
}

static uint8_t clamp_u8(int v, int lo, int hi)
{
	return (uint8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* Scene s's tiles: coarse and fine value noise and hard-edged stripes in luma (edges are what
 * motion search has to get exactly right), smooth colour around the scene's palette. */
static int busy_make_scene(struct busy *b, int s, uint64_t *rng)
{
	const struct busy_scene *sc = &busy_scenes[s];
	size_t luma_size = (size_t)BUSY_TILE * BUSY_TILE, chroma_size = (size_t)BUSY_CTILE * BUSY_CTILE;
	uint8_t *coarse = malloc(luma_size), *fine = malloc(luma_size);
	int ret = -ENOMEM;
	if (!coarse || !fine)
		goto out;
	if ((ret = value_noise(coarse, BUSY_TILE, sc->coarse_cell, rng)) < 0 ||
	    (ret = value_noise(fine, BUSY_TILE, sc->fine_cell, rng)) < 0)
		goto out;
	for (int y = 0; y < BUSY_TILE; y++)
		for (int x = 0; x < BUSY_TILE; x++) {
			size_t i = (size_t)y * BUSY_TILE + x;
			/* The offset keeps the sum positive; a multiple of the stripe period, so the
			 * tile still wraps seamlessly. */
			unsigned along = (unsigned)(x * sc->stripe_kx + y * sc->stripe_ky + 8 * BUSY_TILE);
			int stripe = sc->stripes ? (int)((along >> sc->stripe_shift) & 1) : 0;
			int v = LUMA_BLACK + (coarse[i] * sc->coarse + fine[i] * sc->fine) / 255 + stripe * sc->stripes;
			b->luma[s][i] = clamp_u8(v, LUMA_BLACK, BUSY_TEXTURE_LUMA_MAX);
		}
	/* Chroma: two more noise fields (the coarse buffer's first quarter is enough room). */
	for (int p = 0; p < 2; p++) {
		uint8_t centre = p == 0 ? sc->u : sc->v;
		if ((ret = value_noise(coarse, BUSY_CTILE, 32, rng)) < 0)
			goto out;
		for (size_t i = 0; i < chroma_size; i++)
			b->chroma[s][p][i] = clamp_u8(centre + (coarse[i] - 128) * 5 / 8, BUSY_CHROMA_MIN,
						      BUSY_CHROMA_MAX);
	}
	ret = 0;
out:
	free(coarse);
	free(fine);
	return ret;
}

static void busy_destroy(struct busy *b)
{
	if (!b)
		return;
	free(b->mem);
	free(b);
}

static int busy_init(struct busy **out, int width, int height)
{
	size_t luma_size = (size_t)BUSY_TILE * BUSY_TILE, chroma_size = (size_t)BUSY_CTILE * BUSY_CTILE;
	struct busy *b = calloc(1, sizeof(*b));
	int ret = -ENOMEM;
	if (!b)
		goto error;
	b->mem = malloc(BUSY_SCENES * (luma_size + 2 * chroma_size));
	if (!b->mem)
		goto error;
	/* A fixed seed: the same textures on every run (and in tests); the noise differs per
	 * picture anyway. */
	uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
	for (int s = 0; s < BUSY_SCENES; s++) {
		uint8_t *base = b->mem + (size_t)s * (luma_size + 2 * chroma_size);
		b->luma[s] = base;
		b->chroma[s][0] = base + luma_size;
		b->chroma[s][1] = base + luma_size + chroma_size;
		if ((ret = busy_make_scene(b, s, &rng)) < 0)
			goto error;
	}
	b->rng = UINT64_C(0x2545f4914f6cdd1d);
	int side = even(height / 3) ? even(height / 3) : 2;
	b->box = (struct rect){0, even(height / 2 - side / 2), side, side};
	b->box_step = even(width / 50) ? even(width / 50) : 2; /* crosses a 720p picture in ~1.5 s */
	*out = b;
	return 0;

error:
	busy_destroy(b);
	return ret;
}

int64_t pc_testpattern_scene(int64_t capture_ns)
{
	/* Cuts at 1.5 s past every third second: half-way between two flashes, so the two big
	 * pictures never coincide. */
	return pc_floor_div(capture_ns + PC_TESTPATTERN_SCENE_NS / 2, PC_TESTPATTERN_SCENE_NS);
}

/* dst[0, n) = src[0, n) + noise, 8 pixels per xorshift64 step. The bytes of src leave room
 * for the noise, so a word-wide add never carries from one pixel into the next. */
static void add_noise(uint8_t *dst, const uint8_t *src, int n, uint64_t mask, uint64_t *rng)
{
	int i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, src + i, sizeof(w)); /* unaligned loads: one instruction where allowed */
		w += xorshift64(rng) & mask;
		memcpy(dst + i, &w, sizeof(w));
	}
	if (i < n) {
		uint64_t r = xorshift64(rng) & mask;
		for (; i < n; i++, r >>= 8)
			dst[i] = (uint8_t)(src[i] + (uint8_t)r);
	}
}

/* n pixels of a tile row (tile_w a power of two) from column x on, wrapping, plus noise. */
static void busy_row(uint8_t *dst, const uint8_t *tile_row, int tile_w, int x, int n, uint64_t mask,
		     uint64_t *rng)
{
	x = (int)((unsigned)x & (unsigned)(tile_w - 1)); /* x may be negative */
	while (n > 0) {
		int len = tile_w - x < n ? tile_w - x : n;
		add_noise(dst, tile_row + x, len, mask, rng);
		dst += len;
		n -= len;
		x = 0;
	}
}

/* Rect r of frame from scene s's tiles, the tile's origin at (ox, oy) of the picture. */
static void busy_fill(struct busy *b, struct pc_frame *frame, int s, struct rect r, int ox, int oy)
{
	if (!clip(frame, &r))
		return;
	for (int y = r.y; y < r.y + r.h; y++)
		busy_row(frame->plane[0] + (size_t)y * frame->stride[0] + r.x,
			 b->luma[s] + (size_t)((unsigned)(y - oy) & (BUSY_TILE - 1)) * BUSY_TILE, BUSY_TILE, r.x - ox,
			 r.w, BUSY_LUMA_NOISE, &b->rng);
	/* Chroma at half the offset: the colour moves with the texture. */
	int cx0 = r.x / 2, cx1 = (r.x + r.w + 1) / 2, cy0 = r.y / 2, cy1 = (r.y + r.h + 1) / 2;
	for (int p = 0; p < 2; p++)
		for (int y = cy0; y < cy1; y++)
			busy_row(frame->plane[1 + p] + (size_t)y * frame->stride[1 + p] + cx0,
				 b->chroma[s][p] + (size_t)((unsigned)(y - oy / 2) & (BUSY_CTILE - 1)) * BUSY_CTILE,
				 BUSY_CTILE, cx0 - ox / 2, cx1 - cx0, BUSY_CHROMA_NOISE, &b->rng);
}

static void draw_busy(struct testpattern *tp, uint32_t seq, int64_t capture_ns)
{
	struct busy *b = tp->busy;
	int64_t scene = pc_testpattern_scene(capture_ns);
	int s = (int)pc_floor_mod(scene, BUSY_SCENES);
	const struct busy_scene *sc = &busy_scenes[s];
	struct pc_frame *frame = &tp->frame;

	/* The background scrolls with the scene's motion; offsets wrap within the tile anyway, so
	 * the uint32 product may wrap too. */
	int ox = (int)((seq * (uint32_t)sc->dx) & (BUSY_TILE - 1));
	int oy = (int)((seq * (uint32_t)sc->dy) & (BUSY_TILE - 1));
	busy_fill(b, frame, s, (struct rect){0, 0, frame->width, frame->height}, ox, oy);

	/* The box: the same texture moving the other way, three times as fast, bouncing between
	 * the edges. */
	struct rect *box = &b->box;
	int travel = frame->width - box->w;
	if (travel > 0) {
		uint64_t pos = (uint64_t)seq * (uint64_t)b->box_step % (2 * (uint64_t)travel);
		box->x = even((int)(pos < (uint64_t)travel ? pos : 2 * (uint64_t)travel - pos));
	}
	busy_fill(b, frame, s, *box, -3 * ox, -3 * oy);

	/* The clock's box keeps neutral chroma under white text (the bars draw it once). */
	fill_chroma(frame, tp->text, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
}

bool pc_testpattern_pattern_known(const char *name)
{
	return !name || strcmp(name, "bars") == 0 || strcmp(name, "busy") == 0 || strcmp(name, "still") == 0;
}

/* ---- the source ---- */

static int testpattern_init(void **state, const struct pc_source_config *config, char *err,
			    size_t err_size)
{
	struct testpattern *tp = NULL;
	int width = config->width, height = config->height;
	int ret = -ENOMEM;

	if (width < 16 || height < 16 || width % 2 || height % 2) {
		snprintf(err, err_size, "testpattern: size %dx%d: width and height must be even and at least 16",
			 width, height);
		return -EINVAL;
	}
	if (!pc_testpattern_pattern_known(config->pattern)) {
		snprintf(err, err_size, "testpattern: unknown pattern '%s' (available: " PC_TESTPATTERN_PATTERNS ")",
			 config->pattern);
		return -EINVAL;
	}
	tp = calloc(1, sizeof(*tp));
	if (!tp)
		goto error;
	tp->pattern = PATTERN_BARS;
	if (config->pattern && strcmp(config->pattern, "busy") == 0)
		tp->pattern = PATTERN_BUSY;
	else if (config->pattern && strcmp(config->pattern, "still") == 0)
		tp->pattern = PATTERN_STILL;
	if (pc_frame_alloc(&tp->frame, width, height) < 0)
		goto error;
	layout(tp, width, height);

	if (tp->pattern == PATTERN_BUSY) {
		/* Every picture is drawn whole: no background, ramp or box state. */
		if ((ret = busy_init(&tp->busy, width, height)) < 0)
			goto error;
		*state = tp;
		return 0;
	}

	if (pc_frame_alloc(&tp->background, width, height) < 0)
		goto error;
	if (tp->pattern == PATTERN_STILL) {
		/* The bars, drawn once; only the object (if any) ever changes. */
		draw_bars(&tp->background);
		copy_rect(&tp->frame, &tp->background, (struct rect){0, 0, width, height});
		*state = tp;
		return 0;
	}
	if (!(tp->ramp = malloc((size_t)width + RAMP_PERIOD)))
		goto error;
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

error:
	snprintf(err, err_size, "testpattern: out of memory for %dx%d", width, height);
	if (tp) {
		busy_destroy(tp->busy);
		free(tp->ramp);
		pc_frame_free(&tp->background);
		pc_frame_free(&tp->frame);
		free(tp);
	}
	return ret;
}

static const struct pc_frame *testpattern_next_frame(void *state, uint32_t seq, int64_t capture_ns)
{
	struct testpattern *tp = state;
	bool flash = tp->have_prev && pc_testpattern_flashes(tp->prev_capture_ns, capture_ns);
	tp->have_prev = true;
	tp->prev_capture_ns = capture_ns;

	if (tp->pattern == PATTERN_STILL) {
		draw_object(tp, capture_ns);
		return &tp->frame;
	}
	if (tp->pattern == PATTERN_BUSY) {
		draw_busy(tp, seq, capture_ns);
	} else {
		if (tp->flashed) {
			/* Bars back under the flash, and the neutral chroma the ramp band draws on. */
			copy_rect(&tp->frame, &tp->background, tp->flash);
			fill_chroma(&tp->frame, tp->band, CHROMA_NEUTRAL, CHROMA_NEUTRAL);
			tp->flashed = false;
		}
		draw_band(tp, seq);
		draw_box(tp, seq);
	}
	draw_object(tp, capture_ns);
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
	busy_destroy(tp->busy);
	free(tp->ramp);
	pc_frame_free(&tp->background);
	pc_frame_free(&tp->frame);
	free(tp);
}

const struct pc_source_ops pc_testpattern_source = {
	.name = "testpattern",
	.init = testpattern_init,
	.next_frame = testpattern_next_frame,
	.destroy = testpattern_destroy,
};
