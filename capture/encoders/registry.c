/* The encoder registry and the falling-back slot (registry.h). */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../log.h"

#ifndef PC_HAVE_RKMPI
#define PC_HAVE_RKMPI 0
#endif

/* This build's encoders, in the default order: hardware first, x264 last. */
static const struct pc_encoder_ops *const builtin[] = {
#if PC_HAVE_RKMPI
	&pc_rkmpi_encoder,
#endif
	&pc_v4l2m2m_encoder,
	&pc_x264_encoder,
};

#define N_BUILTIN (sizeof(builtin) / sizeof(builtin[0]))

const struct pc_encoder_ops *pc_encoder_find(const char *name)
{
	for (size_t i = 0; i < N_BUILTIN; i++)
		if (strcmp(builtin[i]->name, name) == 0)
			return builtin[i];
	return NULL;
}

const char *pc_encoder_names(void)
{
	return PC_HAVE_RKMPI ? "rkmpi, v4l2m2m, x264" : "v4l2m2m, x264";
}

void pc_encoder_list_default(struct pc_encoder_list *list)
{
	*list = (struct pc_encoder_list){0};
	for (size_t i = 0; i < N_BUILTIN; i++)
		list->choice[list->n++].ops = builtin[i];
}

int pc_encoder_list_parse(struct pc_encoder_list *list, const char *spec, char *err, size_t err_size)
{
	*list = (struct pc_encoder_list){0};
	if (strlen(spec) >= sizeof(list->spec)) {
		snprintf(err, err_size, "the list is longer than %zu bytes", sizeof(list->spec) - 1);
		return -EINVAL;
	}
	strcpy(list->spec, spec);
	char *save = NULL;
	/* strtok_r would skip empty entries: they are refused, so split by hand. */
	for (char *entry = list->spec; entry; entry = save) {
		save = strchr(entry, ',');
		if (save)
			*save++ = '\0';
		char *device = strchr(entry, ':');
		if (device)
			*device++ = '\0';
		if (!*entry) {
			snprintf(err, err_size, "an empty entry in '%s'", spec);
			return -EINVAL;
		}
		const struct pc_encoder_ops *ops = pc_encoder_find(entry);
		if (!ops) {
			snprintf(err, err_size, "unknown encoder '%s' (available in this build: %s)", entry,
				 pc_encoder_names());
			return -EINVAL;
		}
		if (device && (!*device || ops == &pc_x264_encoder)) {
			snprintf(err, err_size, "%s: %s", entry,
				 *device ? "takes no device" : "an empty device after the colon");
			return -EINVAL;
		}
		for (int i = 0; i < list->n; i++) {
			if (list->choice[i].ops == ops) {
				snprintf(err, err_size, "%s is named twice", entry);
				return -EINVAL;
			}
		}
		if (list->n == PC_ENCODER_LIST_MAX) {
			snprintf(err, err_size, "more than %d encoders", PC_ENCODER_LIST_MAX);
			return -EINVAL;
		}
		list->choice[list->n++] = (struct pc_encoder_choice){.ops = ops, .device = device};
	}
	return 0;
}

/* Initialises list entries from first on until one takes slot->config; each one that does not
 * is logged with its reason and what comes next. */
static int init_from(struct pc_encoder_slot *slot, int first, char *err, size_t err_size)
{
	int ret = -ENOENT;
	snprintf(err, err_size, "no encoder in the list");
	for (int i = first; i < slot->list->n; i++) {
		const struct pc_encoder_choice *c = &slot->list->choice[i];
		struct pc_encoder_config config = slot->config;
		config.device = c->device;
		void *state = NULL;
		ret = c->ops->init(&state, &config, err, err_size);
		if (ret == 0) {
			slot->index = i;
			slot->ops = c->ops;
			slot->state = state;
			return 0;
		}
		/* The encoders' reasons start with their names. */
		if (i + 1 < slot->list->n)
			pc_log("%s stream: %s: trying %s", slot->label, err, slot->list->choice[i + 1].ops->name);
	}
	slot->index = -1;
	slot->ops = NULL;
	slot->state = NULL;
	return ret;
}

int pc_encoder_slot_init(struct pc_encoder_slot *slot, const struct pc_encoder_list *list, const char *label,
			 const struct pc_encoder_config *config, char *err, size_t err_size)
{
	*slot = (struct pc_encoder_slot){.list = list, .label = label, .config = *config, .index = -1};
	return init_from(slot, 0, err, err_size);
}

int pc_encoder_slot_encode(struct pc_encoder_slot *slot, const struct pc_frame *frame, bool force_idr,
			   struct pc_encoded *out)
{
	if (!slot->ops)
		return -1;
	*out = (struct pc_encoded){0}; /* late stays 0 for encoders that do not set it */
	if (slot->ops->encode(slot->state, frame, force_idr, out) == 0)
		return 0;

	/* The encoder said why (its own line); this one says what happens next. */
	const char *failed = slot->ops->name;
	int next = slot->index + 1;
	slot->ops->destroy(slot->state);
	slot->state = NULL;
	slot->ops = NULL;
	if (next >= slot->list->n) {
		pc_log("%s stream: %s failed while encoding and no encoder is left in the list", slot->label, failed);
		return -1;
	}
	pc_log("%s stream: %s failed while encoding: falling back to %s, starting with an IDR", slot->label, failed,
	       slot->list->choice[next].ops->name);
	char err[256];
	if (init_from(slot, next, err, sizeof(err)) < 0) {
		pc_log("%s stream: %s; no encoder is left in the list", slot->label, err);
		return -1;
	}
	slot->fallbacks++;
	pc_log("%s stream: now encoded by %s", slot->label, slot->ops->name);
	/* The new encoder's first picture is an IDR anyway; asked for all the same. The same
	 * picture again: none is lost. A new encoder that fails at once falls back further. */
	return pc_encoder_slot_encode(slot, frame, true, out);
}

int pc_encoder_slot_set_bitrate(struct pc_encoder_slot *slot, uint32_t bitrate, uint32_t *applied)
{
	if (!slot->ops)
		return -ENODEV;
	int ret = slot->ops->set_bitrate(slot->state, bitrate, applied);
	if (ret == 0)
		slot->config.bitrate = *applied;
	return ret;
}

int pc_encoder_slot_set_fps(struct pc_encoder_slot *slot, uint32_t num, uint32_t den)
{
	if (!slot->ops)
		return -ENODEV;
	int ret = slot->ops->set_fps(slot->state, num, den);
	if (ret == 0) {
		slot->config.fps_num = num;
		slot->config.fps_den = den;
	}
	return ret;
}

const char *pc_encoder_slot_name(const struct pc_encoder_slot *slot)
{
	return slot->ops ? slot->ops->name : "none";
}

void pc_encoder_slot_destroy(struct pc_encoder_slot *slot)
{
	if (slot->ops)
		slot->ops->destroy(slot->state);
	slot->ops = NULL;
	slot->state = NULL;
	slot->index = -1;
}
