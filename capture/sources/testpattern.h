/* The synthetic test pattern, and the time strip a browser reads back to measure latency. */
#ifndef PC_TESTPATTERN_H
#define PC_TESTPATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include "source.h"

extern const struct pc_source_ops pc_testpattern_source;

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
