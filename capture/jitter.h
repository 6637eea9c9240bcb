/* The talk-back jitter buffer: SINK_FRAME packets in as they arrive, one decision per 20 ms
 * output frame out (decode a packet, conceal a lost one, or play silence).
 *
 * No locking and no clock of its own: the caller holds a lock around push/pop and passes
 * the time, which makes the policy testable frame by frame. */
#ifndef PC_JITTER_H
#define PC_JITTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"

#define PC_JITTER_SLOTS 16
/* A burst starts playing once this many packets wait (40 ms), or the first has waited
 * PC_JITTER_START_WAIT_NS (a short burst still plays). */
#define PC_JITTER_TARGET 2
#define PC_JITTER_START_WAIT_NS (40 * INT64_C(1000000))
/* More than this many waiting (160 ms): the oldest are dropped down to the target, so the
 * delay cannot grow without bound when the device sends faster than we play. */
#define PC_JITTER_MAX_DEPTH 8
/* Consecutive missing frames concealed by the decoder (60 ms); after that, silence until the
 * next burst. */
#define PC_JITTER_CONCEAL_MAX 3

struct pc_jitter_packet {
	uint16_t size;
	bool resume;
	int64_t arrival_ns;
	uint8_t data[PC_IPC_SINK_FRAME_MAX];
};

enum pc_jitter_state {
	PC_JITTER_IDLE,      /* nothing to play: silence */
	PC_JITTER_BUFFERING, /* a burst began: waiting for the target depth */
	PC_JITTER_PLAYING,
};

enum pc_jitter_action {
	PC_JITTER_SILENCE,
	PC_JITTER_DECODE,  /* decode *out */
	PC_JITTER_CONCEAL, /* a packet is late or lost: let the decoder conceal it */
};

struct pc_jitter {
	struct pc_jitter_packet slots[PC_JITTER_SLOTS];
	unsigned head;  /* oldest */
	unsigned count;
	enum pc_jitter_state state;
	int missing;    /* consecutive frames concealed */
	bool reset_decoder;
	uint64_t dropped; /* packets dropped (overflow, or flushed by RESUME), for the log */
};

void pc_jitter_init(struct pc_jitter *jb);
/* Queues one packet (size 1..PC_IPC_SINK_FRAME_MAX). RESUME drops what is still queued and
 * starts a new burst with a fresh decoder. */
void pc_jitter_push(struct pc_jitter *jb, const uint8_t *data, size_t size, bool resume,
		    int64_t arrival_ns);
/* Decides the next output frame at now_ns. On PC_JITTER_DECODE the packet is copied to *out.
 * *reset_decoder is set when the decoder must forget the previous stream first. */
enum pc_jitter_action pc_jitter_pop(struct pc_jitter *jb, int64_t now_ns,
				    struct pc_jitter_packet *out, bool *reset_decoder);

#endif
