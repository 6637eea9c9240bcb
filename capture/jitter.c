/* See jitter.h. */
#include "jitter.h"

#include <string.h>

void pc_jitter_init(struct pc_jitter *jb)
{
	jb->head = 0;
	jb->count = 0;
	jb->state = PC_JITTER_IDLE;
	jb->missing = 0;
	jb->reset_decoder = true;
	jb->dropped = 0;
}

static void drop_oldest(struct pc_jitter *jb)
{
	jb->head = (jb->head + 1) % PC_JITTER_SLOTS;
	jb->count--;
	jb->dropped++;
}

void pc_jitter_push(struct pc_jitter *jb, const uint8_t *data, size_t size, bool resume,
		    int64_t arrival_ns)
{
	if (size == 0 || size > PC_IPC_SINK_FRAME_MAX)
		return;
	if (resume) {
		while (jb->count > 0)
			drop_oldest(jb);
		jb->state = PC_JITTER_BUFFERING;
		jb->reset_decoder = true;
	} else if (jb->state == PC_JITTER_IDLE) {
		jb->state = PC_JITTER_BUFFERING;
	}
	if (jb->count == PC_JITTER_SLOTS)
		drop_oldest(jb);
	struct pc_jitter_packet *p = &jb->slots[(jb->head + jb->count) % PC_JITTER_SLOTS];
	p->size = (uint16_t)size;
	p->resume = resume;
	p->arrival_ns = arrival_ns;
	memcpy(p->data, data, size);
	jb->count++;
}

enum pc_jitter_action pc_jitter_pop(struct pc_jitter *jb, int64_t now_ns,
				    struct pc_jitter_packet *out, bool *reset_decoder)
{
	*reset_decoder = false;
	if (jb->state == PC_JITTER_IDLE)
		return PC_JITTER_SILENCE;
	if (jb->state == PC_JITTER_BUFFERING) {
		if (jb->count == 0) {
			jb->state = PC_JITTER_IDLE;
			return PC_JITTER_SILENCE;
		}
		if (jb->count < PC_JITTER_TARGET &&
		    now_ns - jb->slots[jb->head].arrival_ns < PC_JITTER_START_WAIT_NS)
			return PC_JITTER_SILENCE;
		jb->state = PC_JITTER_PLAYING;
		jb->missing = 0;
	}

	if (jb->count > PC_JITTER_MAX_DEPTH)
		while (jb->count > PC_JITTER_TARGET)
			drop_oldest(jb);
	if (jb->count == 0) {
		if (++jb->missing <= PC_JITTER_CONCEAL_MAX)
			return PC_JITTER_CONCEAL;
		/* The burst is over: silence, and the next one starts from a clean decoder. */
		jb->state = PC_JITTER_IDLE;
		jb->reset_decoder = true;
		return PC_JITTER_SILENCE;
	}
	*out = jb->slots[jb->head];
	jb->head = (jb->head + 1) % PC_JITTER_SLOTS;
	jb->count--;
	jb->missing = 0;
	*reset_decoder = jb->reset_decoder;
	jb->reset_decoder = false;
	return PC_JITTER_DECODE;
}
