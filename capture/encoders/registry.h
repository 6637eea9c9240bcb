/* The encoder registry: the video encoders of this build by name, a priority list of them, and
 * the encoder of one rendition that falls back down that list (docs/encoders.md).
 *
 * A list such as "rkmpi,v4l2m2m,x264" is tried in order at init with the rendition's real config:
 * the first encoder that initialises is used, and each skipped one is logged in one line with
 * its reason. When the running encoder fails later (encode() returns an error: a hardware
 * encoder's device vanished, its driver gave up), the slot logs it, destroys it and initialises
 * the next one in the list with the current bitrate and rate, and encodes the same picture with
 * it as an IDR: the stream goes on, the receiver takes the new SPS from that IDR.
 *
 * The list of built-in encoders is constant; tests build their own lists (of fakes). */
#ifndef PC_ENCODER_REGISTRY_H
#define PC_ENCODER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encoder.h"

/* At most this many entries in a priority list. */
#define PC_ENCODER_LIST_MAX 8

struct pc_encoder_choice {
	const struct pc_encoder_ops *ops;
	const char *device; /* "v4l2m2m:/dev/video11": the part after the colon; NULL = search */
};

struct pc_encoder_list {
	struct pc_encoder_choice choice[PC_ENCODER_LIST_MAX];
	int n;
	char spec[256]; /* the parsed list's text: the devices point into it */
};

/* The encoder named name among this build's, or NULL. */
const struct pc_encoder_ops *pc_encoder_find(const char *name);

/* The names of this build's encoders, comma-separated, in the default order. */
const char *pc_encoder_names(void);

/* The default list: every hardware encoder built in (rkmpi, v4l2m2m), x264 last. */
void pc_encoder_list_default(struct pc_encoder_list *list);

/* Parses "NAME[:DEVICE],NAME..." (e.g. "v4l2m2m:/dev/video11,x264") into list. 0, or -EINVAL
 * with err saying what is wrong (an unknown name, one named twice, an empty entry, too many,
 * too long). */
int pc_encoder_list_parse(struct pc_encoder_list *list, const char *spec, char *err, size_t err_size);

/* One rendition's encoder and what it falls back to. */
struct pc_encoder_slot {
	const struct pc_encoder_list *list;
	const char *label;                /* "main", "sub": in log lines */
	struct pc_encoder_config config;  /* the current one: bitrate and rate follow the setters */
	int index;                        /* list entry running, -1 = none */
	const struct pc_encoder_ops *ops; /* list->choice[index].ops */
	void *state;
	uint64_t fallbacks;               /* runtime fallbacks so far */
};

/* Initialises the first encoder of list that takes config (from entry first on). 0, or the last
 * encoder's negative errno with err holding its reason when none does. label and list must
 * outlive the slot. */
int pc_encoder_slot_init(struct pc_encoder_slot *slot, const struct pc_encoder_list *list, const char *label,
			 const struct pc_encoder_config *config, char *err, size_t err_size);

/* Encodes frame with the running encoder; when it fails, falls back down the list (above) and
 * encodes frame again as an IDR with the next. 0, or -1 when no encoder is left. */
int pc_encoder_slot_encode(struct pc_encoder_slot *slot, const struct pc_frame *frame, bool force_idr,
			   struct pc_encoded *out);

/* The running encoder's set_bitrate and set_fps; what they set is kept for a fallback. */
int pc_encoder_slot_set_bitrate(struct pc_encoder_slot *slot, uint32_t bitrate, uint32_t *applied);
int pc_encoder_slot_set_fps(struct pc_encoder_slot *slot, uint32_t num, uint32_t den);

/* The running encoder's name ("none" when there is none). */
const char *pc_encoder_slot_name(const struct pc_encoder_slot *slot);

void pc_encoder_slot_destroy(struct pc_encoder_slot *slot);

#endif
