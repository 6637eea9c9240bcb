/* Motion detection: see motion.h and docs/motion.md.
 *
 * Why the previous analysed picture and not a slowly updated background: a background that
 * learns slowly keeps a ghost of whatever left the scene (an object that walked away shows as
 * "motion" where it stood until the background forgets it: seconds), which would stretch every
 * event's end by that long and make its duration say little. Against the picture analysed
 * 100 ms before, a change shows while things move and stops the moment they stop; a slow
 * change of light stays under the threshold between two pictures, and a sudden one (a lamp
 * switched on) is one picture of change, shorter than the minimum duration. What it misses is
 * something moving less than about a cell's worth of contrast in 100 ms (a slow crawl far
 * away): --motion-fps lower (a longer gap) catches slower things.
 *
 * Cost: one pass over the luma per analysed picture (a box average by an integer factor down
 * to about 320 pixels wide), then 320x180 byte differences: no floating point per pixel, no
 * allocation after init. */
#include "motion.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

#define CELLS (PC_MOTION_GRID_W * PC_MOTION_GRID_H)
/* The small picture is about this wide (an integer factor of the picture's width). */
#define SMALL_TARGET_W 320

struct pc_motion {
	struct pc_motion_config config;
	int64_t period_ns;

	/* The picture size the buffers are for (0 before the first). */
	int width, height;
	int factor;             /* box size: the picture is factor x factor pixels per small pixel */
	int small_w, small_h;
	uint8_t *cur, *prev;    /* small pictures, small_w x small_h */
	uint32_t *acc;          /* one row of box sums */
	bool have_prev;
	int cx[PC_MOTION_GRID_W + 1], cy[PC_MOTION_GRID_H + 1]; /* cell bounds in small pixels */
	bool masked[CELLS];
	int unmasked;
	int min_cells;
	/* sad * 4 > threshold4 * pixels: the threshold in quarter luma levels. */
	int threshold4;

	int64_t next_due;       /* capture time of the next picture to analyse */
	bool due_set;
	int64_t last_offered_ns; /* capture time of the last picture offered, analysed or not */

	/* The event state. */
	bool active;            /* an event is open */
	bool candidate;         /* motion seen, not yet long enough for an event */
	int64_t start_ns;       /* first picture with motion of the candidate or event */
	int64_t last_motion_ns;
	uint32_t id;
	double peak;            /* largest share of unmasked cells changed at once */
	bool seen[CELLS];       /* cells changed at any time during the candidate or event */
	int last_changed;

	uint64_t analysed;
	int64_t busy_ns;
};

void pc_motion_config_defaults(struct pc_motion_config *config)
{
	*config = (struct pc_motion_config){
		.sensitivity = PC_MOTION_DEFAULT_SENSITIVITY,
		.fps = PC_MOTION_DEFAULT_FPS,
		.min_duration_ns = PC_MOTION_DEFAULT_MIN_DURATION_MS * PC_NS_PER_MS,
		.hold_ns = PC_MOTION_DEFAULT_HOLD_MS * PC_NS_PER_MS,
	};
}

/* A share: digits with an optional fraction, 0..1. */
static bool parse_share(const char *s, const char **end, double *out)
{
	const char *p = s;
	double v = 0, scale = 1;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++) {
			scale /= 10;
			v += (*p - '0') * scale;
		}
	}
	if (v > 1)
		return false;
	*end = p;
	*out = v;
	return true;
}

bool pc_motion_parse_mask(const char *s, struct pc_motion_config *config)
{
	struct pc_motion_box boxes[PC_MOTION_MAX_MASKS];
	int n = 0;
	const char *p = s;
	if (!*p)
		return false;
	for (;;) {
		if (n == PC_MOTION_MAX_MASKS)
			return false;
		double v[4];
		for (int i = 0; i < 4; i++) {
			if (!parse_share(p, &p, &v[i]))
				return false;
			if (i < 3 && *p++ != ',')
				return false;
		}
		if (v[2] <= 0 || v[3] <= 0 || v[0] + v[2] > 1.0000001 || v[1] + v[3] > 1.0000001)
			return false;
		boxes[n++] = (struct pc_motion_box){v[0], v[1], v[2], v[3]};
		if (*p == '\0')
			break;
		if (*p++ != ';')
			return false;
	}
	memcpy(config->masks, boxes, sizeof(boxes[0]) * (size_t)n);
	config->n_masks = n;
	return true;
}

bool pc_motion_parse_duration(const char *s, size_t len, int64_t *ns)
{
	int64_t whole = 0, frac = 0, frac_scale = 1;
	size_t i = 0;
	if (i == len || s[i] < '0' || s[i] > '9')
		return false;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		whole = whole * 10 + (s[i] - '0');
		if (whole > 86400000)
			return false;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i == len || s[i] < '0' || s[i] > '9')
			return false;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			if (frac_scale >= 1000000)
				return false;
			frac = frac * 10 + (s[i] - '0');
			frac_scale *= 10;
		}
	}
	int64_t unit;
	if (len - i == 2 && strncmp(s + i, "ms", 2) == 0)
		unit = PC_NS_PER_MS;
	else if (len - i == 1 && s[i] == 's')
		unit = PC_NS_PER_SEC;
	else
		return false;
	*ns = whole * unit + frac * unit / frac_scale;
	return true;
}
int pc_motion_init(struct pc_motion **out
, const struct pc_motion_config *config)
{
	if (config->sensitivity < 1 || config->sensitivity > 100 || config->fps < 1 || config->fps > 60 ||
	    config->min_duration_ns < 0 || config->hold_ns < 0 || config->n_masks < 0 ||
	    config->n_masks > PC_MOTION_MAX_MASKS)
		return -EINVAL;
	struct pc_motion *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->config = *config;
	m->period_ns = PC_NS_PER_SEC / config->fps;
	/* 100 -> 2 levels of mean difference per cell, 50 -> 14.5, 1 -> 26.75. */
	m->threshold4 = 8 + (100 - config->sensitivity);
	*out = m;
	return 0;
}

void pc_motion_destroy(struct pc_motion *m)
{
	if (!m)
		return;
	free(m->cur);
	free(m->prev);
	free(m->acc);
	free(m);
}

static bool in_box(const struct pc_motion_box *b, double x, double y)
{
	return x >= b->x && x < b->x + b->w && y >= b->y && y < b->y + b->h;
}

/* Buffers and the grid for pictures of width x height. 0 or -ENOMEM. */
static int resize(struct pc_motion *m, int width, int height)
{
	int factor = width / SMALL_TARGET_W > 1 ? width / SMALL_TARGET_W : 1;
	int sw = width / factor, sh = height / factor;
	uint8_t *cur = malloc((size_t)sw * (size_t)sh), *prev = malloc((size_t)sw * (size_t)sh);
	uint32_t *acc = malloc(sizeof(uint32_t) * (size_t)sw);
	if (!cur || !prev || !acc) {
		free(cur);
		free(prev);
		free(acc);
		return -ENOMEM;
	}
	free(m->cur);
	free(m->prev);
	free(m->acc);
	m->cur = cur;
	m->prev = prev;
	m->acc = acc;
	m->width = width;
	m->height = height;
	m->factor = factor;
	m->small_w = sw;
	m->small_h = sh;
	m->have_prev = false;
	for (int i = 0; i <= PC_MOTION_GRID_W; i++)
		m->cx[i] = i * sw / PC_MOTION_GRID_W;
	for (int i = 0; i <= PC_MOTION_GRID_H; i++)
		m->cy[i] = i * sh / PC_MOTION_GRID_H;
	m->unmasked = 0;
	for (int gy = 0; gy < PC_MOTION_GRID_H; gy++) {
		for (int gx = 0; gx < PC_MOTION_GRID_W; gx++) {
			double x = (gx + 0.5) / PC_MOTION_GRID_W, y = (gy + 0.5) / PC_MOTION_GRID_H;
			bool masked = false;
			for (int k = 0; k < m->config.n_masks; k++)
				masked |= in_box(&m->config.masks[k], x, y);
			m->masked[gy * PC_MOTION_GRID_W + gx] = masked;
			m->unmasked += !masked;
		}
	}
	/* 100 -> 0.2 % of the cells, 50 -> 1.7 %, 1 -> 3.2 % (at least one). */
	int per_mille_x10 = 20 + (100 - m->config.sensitivity) * 3;
	m->min_cells = (m->unmasked * per_mille_x10 + 9999) / 10000;
	if (m->min_cells < 1)
		m->min_cells = 1;
	return 0;
}

/* The luma, box-averaged by factor into m->cur. */
static void downscale(struct pc_motion *m, const struct pc_frame *frame)
{
	const int f = m->factor, sw = m->small_w;
	const int area = f * f;
	for (int sy = 0; sy < m->small_h; sy++) {
		memset(m->acc, 0, sizeof(uint32_t) * (size_t)sw);
		for (int r = 0; r < f; r++) {
			const uint8_t *row = frame->plane[0] + (size_t)(sy * f + r) * (size_t)frame->stride[0];
			if (f == 4) {
				/* The common case (1280 wide): a fixed inner count the compiler unrolls. */
				for (int sx = 0; sx < sw; sx++)
					m->acc[sx] += (uint32_t)(row[4 * sx] + row[4 * sx + 1] + row[4 * sx + 2] + row[4 * sx + 3]);
			} else {
				for (int sx = 0; sx < sw; sx++) {
					unsigned s = 0;
					for (int k = 0; k < f; k++)
						s += row[sx * f + k];
					m->acc[sx] += s;
				}
			}
		}
		uint8_t *out = m->cur + (size_t)sy * (size_t)sw;
		for (int sx = 0; sx < sw; sx++)
			out[sx] = (uint8_t)((m->acc[sx] + (uint32_t)area / 2) / (uint32_t)area);
	}
}

/* Marks changed cells of cur against prev; returns how many unmasked ones changed. */
static int compare(struct pc_motion *m, bool changed[CELLS])
{
	int n = 0;
	for (int gy = 0; gy < PC_MOTION_GRID_H; gy++) {
		for (int gx = 0; gx < PC_MOTION_GRID_W; gx++) {
			int i = gy * PC_MOTION_GRID_W + gx;
			changed[i] = false;
			if (m->masked[i])
				continue;
			int x0 = m->cx[gx], x1 = m->cx[gx + 1], y0 = m->cy[gy], y1 = m->cy[gy + 1];
			int pixels = (x1 - x0) * (y1 - y0);
			if (pixels == 0)
				continue;
			uint32_t sad = 0;
			for (int y = y0; y < y1; y++) {
				const uint8_t *a = m->cur + (size_t)y * (size_t)m->small_w;
				const uint8_t *b = m->prev + (size_t)y * (size_t)m->small_w;
				for (int x = x0; x < x1; x++)
					sad += (uint32_t)abs(a[x] - b[x]);
			}
			if ((uint64_t)sad * 4 > (uint64_t)m->threshold4 * (uint64_t)pixels) {
				changed[i] = true;
				n++;
			}
		}
	}
	return n;
}

struct cell_box {
	int x0, y0, x1, y1; /* inclusive, in cells */
};

/* Boxes of the 8-connected groups of seen cells, as shares; all of them in one box when there
 * are more than PC_MOTION_MAX_REGIONS groups. */
static void regions(const struct pc_motion *m, struct pc_motion_event *ev)
{
	bool visited[CELLS] = {false};
	int stack[CELLS];
	int all_x0 = PC_MOTION_GRID_W, all_y0 = PC_MOTION_GRID_H, all_x1 = -1, all_y1 = -1;
	int groups = 0;
	struct cell_box box[PC_MOTION_MAX_REGIONS];

	for (int start = 0; start < CELLS; start++) {
		if (!m->seen[start] || visited[start])
			continue;
		int x0 = PC_MOTION_GRID_W, y0 = PC_MOTION_GRID_H, x1 = -1, y1 = -1;
		int top = 0;
		stack[top++] = start;
		visited[start] = true;
		while (top > 0) {
			int c = stack[--top];
			int cx = c % PC_MOTION_GRID_W, cy = c / PC_MOTION_GRID_W;
			x0 = cx < x0 ? cx : x0;
			x1 = cx > x1 ? cx : x1;
			y0 = cy < y0 ? cy : y0;
			y1 = cy > y1 ? cy : y1;
			for (int dy = -1; dy <= 1; dy++) {
				for (int dx = -1; dx <= 1; dx++) {
					int nx = cx + dx, ny = cy + dy;
					if (nx < 0 || ny < 0 || nx >= PC_MOTION_GRID_W || ny >= PC_MOTION_GRID_H)
						continue;
					int nc = ny * PC_MOTION_GRID_W + nx;
					if (m->seen[nc] && !visited[nc]) {
						visited[nc] = true;
						stack[top++] = nc;
					}
				}
			}
		}
		if (groups < PC_MOTION_MAX_REGIONS)
			box[groups] = (struct cell_box){x0, y0, x1, y1};
		groups++;
		all_x0 = x0 < all_x0 ? x0 : all_x0;
		all_y0 = y0 < all_y0 ? y0 : all_y0;
		all_x1 = x1 > all_x1 ? x1 : all_x1;
		all_y1 = y1 > all_y1 ? y1 : all_y1;
	}
	if (groups > PC_MOTION_MAX_REGIONS) {
		box[0] = (struct cell_box){all_x0, all_y0, all_x1, all_y1};
		groups = 1;
	}
	ev->n_regions = groups;
	for (int i = 0; i < groups; i++) {
		ev->regions[i] = (struct pc_motion_box){
			.x = (double)m->cx[box[i].x0] / m->small_w,
			.y = (double)m->cy[box[i].y0] / m->small_h,
			.w = (double)(m->cx[box[i].x1 + 1] - m->cx[box[i].x0]) / m->small_w,
			.h = (double)(m->cy[box[i].y1 + 1] - m->cy[box[i].y0]) / m->small_h,
		};
	}
}

static void fill_event(const struct pc_motion *m, bool end, int64_t end_ns, struct pc_motion_event *ev)
{
	*ev = (struct pc_motion_event){
		.id = m->id,
		.end = end,
		.start_ns = m->start_ns,
		.end_ns = end ? end_ns : 0,
		.score = m->peak,
	};
	regions(m, ev);
}

/* The state machine on one analysed picture; 1 when an edge was emitted. */
static int step(struct pc_motion *m, int changed_cells, const bool changed[CELLS], int64_t capture_ns,
		struct pc_motion_event *ev)
{
	bool motion = m->unmasked > 0 && changed_cells >= m->min_cells;
	if (motion) {
		if (!m->active && !m->candidate) {
			m->candidate = true;
			m->start_ns = capture_ns;
			m->peak = 0;
			memset(m->seen, 0, sizeof(m->seen));
		}
		m->last_motion_ns = capture_ns;
		double share = (double)changed_cells / m->unmasked;
		if (share > m->peak)
			m->peak = share;
		for (int i = 0; i < CELLS; i++)
			m->seen[i] |= changed[i];
		if (m->candidate && capture_ns - m->start_ns >= m->config.min_duration_ns) {
			m->candidate = false;
			m->active = true;
			m->id++;
			fill_event(m, false, 0, ev);
			return 1;
		}
		return 0;
	}
	if (m->candidate) {
		m->candidate = false; /* too short: a flicker, not an event */
		return 0;
	}
	if (m->active && capture_ns - m->last_motion_ns >= m->config.hold_ns) {
		m->active = false;
		fill_event(m, true, m->last_motion_ns, ev);
		return 1;
	}
	return 0;
}

int pc_motion_feed(struct pc_motion *m, const struct pc_frame *frame, int64_t capture_ns,
		   struct pc_motion_event *ev)
{
	m->last_offered_ns = capture_ns;
	if (m->due_set && capture_ns < m->next_due)
		return 0;
	/* A quarter period of slack: at 30 fps and 10 analysed a second, every third picture
	 * even when the ticks jitter. */
	m->next_due = capture_ns + m->period_ns - m->period_ns / 4;
	m->due_set = true;

	int64_t start = pc_clock_ns(CLOCK_MONOTONIC);
	int ret = 0;
	if (frame->width != m->width || frame->height != m->height) {
		if (resize(m, frame->width, frame->height) < 0)
			return 0; /* out of memory: this picture is not analysed; the next one tries again */
	}
	downscale(m, frame);
	if (m->have_prev) {
		bool changed[CELLS];
		int n = compare(m, changed);
		m->last_changed = n;
		ret = step(m, n, changed, capture_ns, ev);
	}
	uint8_t *t = m->prev;
	m->prev = m->cur;
	m->cur = t;
	m->have_prev = true;
	m->analysed++;
	m->busy_ns += pc_clock_ns(CLOCK_MONOTONIC) - start;
	return ret;
}

int pc_motion_idle(struct pc_motion *m, int64_t now_ns, struct pc_motion_event *ev)
{
	/* Only when no picture came for a whole period: pictures that do come are analysed. */
	if (!m->due_set || now_ns < m->next_due || !m->have_prev || now_ns - m->last_offered_ns < m->period_ns)
		return 0;
	m->next_due = now_ns + m->period_ns - m->period_ns / 4;
	bool changed[CELLS] = {false};
	m->last_changed = 0;
	return step(m, 0, changed, now_ns, ev);
}

int pc_motion_flush(struct pc_motion *m, struct pc_motion_event *ev)
{
	m->candidate = false;
	if (!m->active)
		return 0;
	m->active = false;
	fill_event(m, true, m->last_motion_ns, ev);
	return 1;
}

uint64_t pc_motion_analysed(const struct pc_motion *m)
{
	return m->analysed;
}

int64_t pc_motion_busy_ns(const struct pc_motion *m)
{
	return m->busy_ns;
}

int pc_motion_last_changed(const struct pc_motion *m)
{
	return m->last_changed;
}

int pc_motion_min_cells(const struct pc_motion *m)
{
	return m->min_cells;
}
