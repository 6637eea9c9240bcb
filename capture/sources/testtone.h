/* The test tone: a 1 kHz beep of 100 ms at every whole second of CLOCK_REALTIME, silence
 * otherwise, so a listener hears the beep of the same second the test pattern flashes. */
#ifndef PC_TESTTONE_H
#define PC_TESTTONE_H

#include <stdbool.h>
#include <stdint.h>

#include "audio.h"

#define PC_TESTTONE_HZ 1000
#define PC_TESTTONE_BEEP_NS (100 * INT64_C(1000000))
#define PC_TESTTONE_AMPLITUDE 16384 /* -6 dBFS */

/* Whether the tone sounds at t_ns: t mod 1 s < 100 ms. */
bool pc_testtone_is_on(int64_t t_ns);
/* Writes samples (per channel, interleaved over channels) at rate, sample i at
 * first_ns + i / rate s exactly. The sine's phase is 0 at each whole second. */
void pc_testtone_fill(int16_t *pcm, int channels, int rate, int samples, int64_t first_ns);

#endif
