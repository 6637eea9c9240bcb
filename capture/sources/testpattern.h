/* The synthetic test pattern, and the time strip a browser reads back to measure latency. */
#ifndef PC_TESTPATTERN_H
#define PC_TESTPATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include "source.h"

extern const struct pc_source_ops pc_testpattern_source;

/* What the test pattern draws (pc_source_config.pattern; NULL is "bars"):
 *   bars  75% colour bars, a scrolling ramp and a bouncing box: cheap to draw and easy to
 *         compress (an encoder spends well under 1 Mbit/s on it at 720p30).
 *   busy  hard to compress: a textured tile scrolled fast across the picture, a box of it
 *         moving the other way, fresh noise on every pixel of every picture, and a new texture
 *         and palette every PC_TESTPATTERN_SCENE_NS (a scene cut, at 1.5 s past every third
 *         second, between two flashes). Its luma stays at or below
 *         PC_TESTPATTERN_BUSY_LUMA_MAX outside the overlays.
 *   still the bars and nothing else: not a pixel changes (a scene for motion detection,
 *         docs/motion.md, with the object below).
 * Bars and busy carry the same overlays: the time strip, the clock and frame number, and the
 * flash. */
#define PC_TESTPATTERN_PATTERNS "bars, busy, still"
#define PC_TESTPATTERN_SCENE_NS INT64_C(3000000000)
#define PC_TESTPATTERN_BUSY_LUMA_MAX 125
/* Whether name is one of PC_TESTPATTERN_PATTERNS. */
bool pc_testpattern_pattern_known(const char *name);
/* The busy pattern's scene (texture and palette) at capture_ns. */
int64_t pc_testpattern_scene(int64_t capture_ns);

/* Time strip: a row of 64 blocks of B x B pixels at the top-left of the picture. Bits, MSB
 * first: 0..47 = low 48 bits of the capture time in microseconds since the Unix epoch,
 * 48..63 = CRC-16/CCITT-FALSE of those 48 bits as 6 bytes, big-endian. 1 is luma 235, 0 is
 * luma 16, chroma is neutral (128). */
#define PC_TIMESTRIP_BITS 64
#define PC_TIMESTRIP_LUMA_ONE 235
#define PC_TIMESTRIP_LUMA_ZERO 16

/* The flash: the first picture whose capture time is at or after each whole second of
 * CLOCK_REALTIME (its second differs from the previous picture's; never the very first
 * picture) shows a white block (luma 235, neutral chroma) over rect *r: full width, from
 * below the clock text to the bottom, about three quarters of the picture. The time strip
 * and the clock text stay readable. --audio-in testtone beeps at the same whole seconds. */
#define PC_TESTPATTERN_FLASH_LUMA 235
struct pc_testpattern_rect {
	int x, y, w, h;
};
void pc_testpattern_flash_rect(int width, int height, struct pc_testpattern_rect *r);
/* Whether a picture at capture_ns flashes after one at prev_capture_ns. */
bool pc_testpattern_flashes(int64_t prev_capture_ns, int64_t capture_ns);

/* The moving object (--pattern-object on=2s,off=3s): a white box with a black middle, an
 * eighth of the width by a sixth of the height, a quarter of the way down, moving across at
 * half the picture's width a second and bouncing at the edges. It shows on a schedule counted
 * from the first picture: hidden for off_ns, then shown for on_ns, and again (off first, so a
 * detector has a still picture to compare with before it first appears). */
/* Turns the object on for a testpattern source's state (on_ns 0: off). */
void pc_testpattern_set_object(void *state, int64_t on_ns, int64_t off_ns);
/* Where the object is elapsed_ns after the first picture: false when hidden then. */
bool pc_testpattern_object_at(int width, int height, int64_t on_ns, int64_t off_ns, int64_t elapsed_ns,
			      struct pc_testpattern_rect *r);

/* B = min(32, max(8, (width / 64) rounded down to a multiple of 8)). */
int pc_timestrip_block_size(int width);
/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xffff, no reflection, no final xor. */
uint16_t pc_timestrip_crc16(const uint8_t *data, size_t len);
/* The 64-bit word the strip shows for capture time capture_us. */
uint64_t pc_timestrip_encode(uint64_t capture_us);
/* Inverse of pc_timestrip_encode: false when the CRC does not match. */
bool pc_timestrip_decode(uint64_t word, uint64_t *capture_us);
/* Paints the strip into frame. Blocks past the right edge are clipped (only pictures
 * narrower than 64 * 8 = 512 pixels lose blocks). */
void pc_timestrip_draw(struct pc_frame *frame, uint64_t capture_us);

#endif
