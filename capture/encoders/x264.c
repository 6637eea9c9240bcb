/* H.264 with libx264: constrained baseline, no B-frames, no lookahead, a short VBV.
 * Everything is chosen for latency: each picture comes out of encode() as soon as it goes
 * in, and the VBV bounds a picture's size so it crosses the link in a few frame times.
 *
 * Rate control is "capped CRF": constant quality (PC_X264_CRF) held under the target bitrate
 * by the VBV. The target is a ceiling that follows a BITRATE at once, both ways: hard content
 * (the busy test pattern, a real scene in motion) runs at it, easy content below it. x264's
 * CBR (ABR with a VBV as fast as the bitrate) was used before, but after a raise it climbs to
 * the new rate over a second or more (its bit budget is a decaying sum, about 16 pictures
 * long, that reconfig does not reset): measured 2 Mbit/s -> 500k -> 2M with the busy pattern at
 * 720p30, the first second after the raise came to 1.36 Mbit/s; capped CRF gives 1.92. */
#include "encoder.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdint.h> /* x264.h needs the stdint types declared first */
#include <x264.h>

/* VBV buffer, in frames' worth of bits at the target bitrate. Small enough that a picture,
 * keyframes included, cannot be much bigger than a few frames' share of the link; large
 * enough that an IDR does not have to be starved into mush. */
#define PC_X264_VBV_FRAMES 4

/* The quality when the bitrate allows it: x264's "visually transparent" end (its default is
 * 23). Only easy pictures get there below the target; it bounds what they cost. */
#define PC_X264_CRF 18

/* x264 counts in kbit/s; below this a picture cannot say much anyway. */
#define PC_X264_MIN_BITRATE 10000u

/* ---- H.264 levels ---- */

static const struct pc_h264_level levels[] = {
	/* idc, MaxMBPS, MaxFS, MaxDpbMbs, MaxBR */
	{10, 1485, 99, 396, 64},
	{11, 3000, 396, 900, 192},
	{12, 6000, 396, 2376, 384},
	{13, 11880, 396, 2376, 768},
	{20, 11880, 396, 2376, 2000},
	{21, 19800, 792, 4752, 4000},
	{22, 20250, 1620, 8100, 4000},
	{30, 40500, 1620, 8100, 10000},
	{31, 108000, 3600, 18000, 14000},
	{32, 216000, 5120, 20480, 20000},
	{40, 245760, 8192, 32768, 20000},
	{41, 245760, 8192, 32768, 50000},
	{42, 522240, 8704, 34816, 50000},
	{50, 589824, 22080, 110400, 135000},
	{51, 983040, 36864, 184320, 240000},
	{52, 2073600, 36864, 184320, 240000},
};

static uint32_t mbs_of(int pixels)
{
	return (uint32_t)(pixels + 15) / 16;
}

const struct pc_h264_level *pc_h264_level_find(int width, int height, uint32_t fps_num,
					       uint32_t fps_den, uint32_t bitrate)
{
	if (width <= 0 || height <= 0 || fps_num == 0 || fps_den == 0)
		return NULL;
	uint64_t w_mbs = mbs_of(width), h_mbs = mbs_of(height);
	uint64_t frame_mbs = w_mbs * h_mbs;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		const struct pc_h264_level *l = &levels[i];
		/* A.3.1: neither side may exceed sqrt(8 * MaxFS) macroblocks. */
		if (frame_mbs > l->max_fs || w_mbs * w_mbs > 8ull * l->max_fs ||
		    h_mbs * h_mbs > 8ull * l->max_fs)
			continue;
		/* MaxMBPS, with the frame rate kept as a fraction. */
		if (frame_mbs * fps_num > (uint64_t)l->max_mbps * fps_den)
			continue;
		if (bitrate && bitrate > (uint64_t)l->max_br_kbit * 1000)
			continue;
		return l;
	}
	return NULL;
}

/* ---- encoder ---- */

struct pc_x264 {
	x264_t *handle;
	x264_param_t param;            /* as the encoder reported it after open */
	const struct pc_h264_level *level;
	uint32_t frame_mbs;
	uint32_t fps_num, fps_den;     /* the rate the encoder was opened with */
	uint32_t cur_fps_num, cur_fps_den; /* the rate pictures actually come at */
	uint32_t bitrate;              /* real target, bit/s */
	int64_t pts;
	bool screen;                   /* a deep VBV: pictures of a screen come in bursts */
	int width, height;             /* named in log lines: a producer may run two encoders */
	atomic_uint vbv_underflows;
};

static void pc_x264_log(void *opaque, int level, const char *fmt, va_list args)
{
	struct pc_x264 *st = opaque;
	/* A picture a little over the VBV (reactive VBV, no lookahead) happens now and then on
	 * noise at a low bitrate; harmless, but not worth a line every time: the first, then
	 * every 100th. */
	if (level == X264_LOG_WARNING && strstr(fmt, "VBV underflow")) {
		unsigned n = atomic_fetch_add(&st->vbv_underflows, 1) + 1;
		if (n > 1 && n % 100 != 0)
			return;
		fprintf(stderr, "p2pcast-capture: x264 %dx%d: VBV underflow #%u (a picture over its budget): ",
			st->width, st->height, n);
		vfprintf(stderr, fmt, args);
		return;
	}
	const char *what = level == X264_LOG_ERROR ? "error" : level == X264_LOG_WARNING ? "warning" : "info";
	fprintf(stderr, "p2pcast-capture: x264 %dx%d %s: ", st->width, st->height, what);
	vfprintf(stderr, fmt, args); /* x264's messages end with a newline */
}

/* x264 budgets bits per picture assuming the rate it was opened with; reconfig cannot
 * change that rate (x264 copies neither i_fps_num nor i_fps_den there). So after a frame
 * rate change the bitrate it is given is scaled by opened/current rate: per picture the
 * budget is then right, and so is the bitrate on the wire. The VBV stays PC_X264_VBV_FRAMES
 * pictures deep. */
static void rate_params(const struct pc_x264 *st, int *bitrate_kbit, int *vbv_kbit)
{
	double opened_fps = (double)st->fps_num / st->fps_den;
	double current_fps = (double)st->cur_fps_num / st->cur_fps_den;
	double kbit = st->bitrate / 1000.0 * opened_fps / current_fps;
	double vbv = st->screen ? kbit * PC_ENCODER_SCREEN_BUFFER_MS / 1000.0 : kbit * PC_X264_VBV_FRAMES / opened_fps;
	/* A very low current rate scales without bound: keep the numbers in an int. */
	const double max_kbit = 1e8;
	*bitrate_kbit = kbit < 1 ? 1 : kbit > max_kbit ? (int)max_kbit : (int)kbit;
	*vbv_kbit = vbv < 1 ? 1 : vbv > max_kbit ? (int)max_kbit : (int)vbv;
}

static int pc_x264_init(void **state, const struct pc_encoder_config *config, char *err, size_t err_size)
{
	int ret = -EINVAL;
	struct pc_x264 *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, err_size, "x264: out of memory");
		return -ENOMEM;
	}
	x264_param_t *p = &st->param;

	st->level = pc_h264_level_find(config->width, config->height, config->fps_num,
				       config->fps_den, config->bitrate);
	if (!st->level) {
		snprintf(err, err_size,
			 "x264: %dx%d at %u/%u fps and %u bit/s is beyond H.264 level 5.2",
			 config->width, config->height, config->fps_num, config->fps_den,
			 config->bitrate);
		goto error;
	}
	st->frame_mbs = mbs_of(config->width) * mbs_of(config->height);
	st->fps_num = st->cur_fps_num = config->fps_num;
	st->fps_den = st->cur_fps_den = config->fps_den;
	st->bitrate = config->bitrate;
	st->width = config->width;
	st->height = config->height;
	st->screen = config->screen;
	atomic_init(&st->vbv_underflows, 0);

	/* Checked here so a typo gets our message, not x264's unprefixed one. */
	bool known_preset = false;
	for (int i = 0; x264_preset_names[i]; i++)
		known_preset |= strcmp(x264_preset_names[i], config->preset) == 0;
	if (!known_preset || x264_param_default_preset(p, config->preset, "zerolatency") < 0) {
		snprintf(err, err_size, "x264: unknown preset '%s' (ultrafast, superfast, veryfast, faster, fast, medium, ...)",
			 config->preset);
		goto error;
	}
	p->pf_log = pc_x264_log;
	p->p_log_private = st;
	p->i_log_level = X264_LOG_WARNING;
	p->i_csp = X264_CSP_I420;
	p->i_width = config->width;
	p->i_height = config->height;
	p->i_threads = config->threads; /* 0 is X264_THREADS_AUTO */
	p->b_sliced_threads = 1;        /* zerolatency sets it; frame threads would add delay */
	p->i_level_idc = st->level->idc;

	/* Timestamps are frame numbers, so the timebase is one frame. */
	p->b_vfr_input = 0;
	p->i_fps_num = config->fps_num;
	p->i_fps_den = config->fps_den;
	p->i_timebase_num = config->fps_den;
	p->i_timebase_den = config->fps_num;

	/* IDRs exactly every gop pictures or on request, never on scene cuts: the device and
	 * the viewers rely on the GOP length announced in HELLO. x264 clamps keyint_min to
	 * keyint_max / 2 + 1, which no longer matters without scenecut. */
	p->i_keyint_max = (int)config->gop;
	p->i_keyint_min = (int)config->gop;
	p->i_scenecut_threshold = 0;
	p->i_bframe = 0;
	p->b_intra_refresh = config->intra_refresh;

	/* One self-contained access unit per picture: SPS/PPS before every IDR, start codes,
	 * and no AUD (the framing already delimits access units). */
	p->b_repeat_headers = 1;
	p->b_annexb = 1;
	p->b_aud = 0;

	/* Capped CRF (above): the VBV, only a few frames deep, holds the rate under the target
	 * closely enough for a congestion-controlled link. */
	p->rc.i_rc_method = X264_RC_CRF;
	p->rc.f_rf_constant = PC_X264_CRF;
	rate_params(st, &p->rc.i_bitrate, &p->rc.i_vbv_buffer_size);
	p->rc.i_vbv_max_bitrate = p->rc.i_bitrate;

	/* Reference frames must fit the level's decoded picture buffer (matters for presets
	 * slower than ultrafast). */
	int max_refs = (int)(st->level->max_dpb_mbs / st->frame_mbs);
	if (max_refs > 16)
		max_refs = 16;
	if (p->i_frame_reference > max_refs)
		p->i_frame_reference = max_refs;

	if (x264_param_apply_profile(p, "baseline") < 0) {
		snprintf(err, err_size, "x264: cannot apply the baseline profile");
		goto error;
	}

	st->handle = x264_encoder_open(p);
	if (!st->handle) {
		ret = -EIO;
		snprintf(err, err_size, "x264: x264_encoder_open failed for %dx%d (see x264's message above)",
			 config->width, config->height);
		goto error;
	}
	/* Keep the encoder's own view of the parameters: reconfig starts from it. */
	x264_encoder_parameters(st->handle, p);
	*state = st;
	return 0;

error:
	free(st);
	return ret;
}

static int pc_x264_encode(void *state, const struct pc_frame *frame, bool force_idr, struct pc_encoded *out)
{
	struct pc_x264 *st = state;
	x264_picture_t pic_in, pic_out;
	x264_nal_t *nals = NULL;
	int nal_count = 0;

	x264_picture_init(&pic_in);
	pic_in.img.i_csp = X264_CSP_I420;
	pic_in.img.i_plane = 3;
	for (int i = 0; i < 3; i++) {
		pic_in.img.plane[i] = frame->plane[i]; /* read only: x264 copies the picture in */
		pic_in.img.i_stride[i] = frame->stride[i];
	}
	pic_in.i_pts = st->pts++;
	pic_in.i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;

	int size = x264_encoder_encode(st->handle, &nals, &nal_count, &pic_in, &pic_out);
	if (size < 0)
		return -1;

	out->data = size > 0 ? nals[0].p_payload : NULL; /* x264 keeps the NAL units contiguous */
	out->size = (size_t)size;
	out->keyframe = false;
	for (int i = 0; i < nal_count; i++)
		if (nals[i].i_type == NAL_SLICE_IDR)
			out->keyframe = true;
	return 0;
}

static int reconfig_rate(struct pc_x264 *st)
{
	x264_param_t p = st->param;
	rate_params(st, &p.rc.i_bitrate, &p.rc.i_vbv_buffer_size);
	p.rc.i_vbv_max_bitrate = p.rc.i_bitrate;
	if (x264_encoder_reconfig(st->handle, &p) < 0)
		return -EINVAL;
	st->param = p;
	return 0;
}

static int pc_x264_set_bitrate(void *state, uint32_t bitrate, uint32_t *applied)
{
	struct pc_x264 *st = state;
	uint32_t level_max = st->level->max_br_kbit * 1000;
	uint32_t old = st->bitrate;

	st->bitrate = bitrate > level_max ? level_max : bitrate < PC_X264_MIN_BITRATE ? PC_X264_MIN_BITRATE : bitrate;
	if (reconfig_rate(st) < 0) {
		st->bitrate = old;
		return -EINVAL;
	}
	*applied = st->bitrate;
	return 0;
}

static int pc_x264_set_fps(void *state, uint32_t num, uint32_t den)
{
	struct pc_x264 *st = state;
	if (!num || !den)
		return -EINVAL;
	if ((uint64_t)st->frame_mbs * num > (uint64_t)st->level->max_mbps * den)
		return -ERANGE;

	uint32_t old_num = st->cur_fps_num, old_den = st->cur_fps_den;
	st->cur_fps_num = num;
	st->cur_fps_den = den;
	if (reconfig_rate(st) < 0) {
		st->cur_fps_num = old_num;
		st->cur_fps_den = old_den;
		return -EINVAL;
	}
	return 0;
}

static void pc_x264_destroy(void *state)
{
	struct pc_x264 *st = state;
	if (!st)
		return;
	if (st->handle)
		x264_encoder_close(st->handle);
	free(st);
}

const struct pc_encoder_ops pc_x264_encoder = {
	.name = "x264",
	.init = pc_x264_init,
	.encode = pc_x264_encode,
	.set_bitrate = pc_x264_set_bitrate,
	.set_fps = pc_x264_set_fps,
	.destroy = pc_x264_destroy,
};
