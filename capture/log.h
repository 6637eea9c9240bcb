/* One-line logs on stderr, shared by the main loop and the audio threads (stdio locks the
 * stream, so lines from different threads never interleave). */
#ifndef PC_LOG_H
#define PC_LOG_H

#define PC_PROG "p2pcast-capture"

__attribute__((format(printf, 1, 2))) void pc_log(const char *fmt, ...);

#endif
