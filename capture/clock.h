/* Clock helpers shared by the video loop and the audio threads. */
#ifndef PC_CLOCK_H
#define PC_CLOCK_H

#include <stdint.h>
#include <time.h>

#define PC_NS_PER_SEC INT64_C(1000000000)
#define PC_NS_PER_MS INT64_C(1000000)

static inline int64_t pc_clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * PC_NS_PER_SEC + ts.tv_nsec;
}

static inline struct timespec pc_ns_to_timespec(int64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / PC_NS_PER_SEC),
				 .tv_nsec = (long)(ns % PC_NS_PER_SEC)};
}

/* Floor division and modulo for times that may be negative. */
static inline int64_t pc_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int64_t pc_floor_mod(int64_t a, int64_t b)
{
	return a - pc_floor_div(a, b) * b;
}

#endif
