/* AAC -> Opus for an RTSP camera's audio (p2pcast-capture --transcode aac): browsers take no
 * AAC over WebRTC. libavcodec's native AAC decoder, libswresample to 48 kHz (mono stays mono,
 * anything wider is mixed to stereo), the producer's Opus encoder in 20 ms frames.
 *
 * Timing: every Opus frame carries the capture time of its first sample, taken from the AAC
 * units' capture times (never from a count of samples since the start, so nothing drifts):
 * the resampler's delay is taken off, and the Opus look-ahead as the producer always does. */
#ifndef PC_TRANSCODE_H
#define PC_TRANSCODE_H

#include <stddef.h>
#include <stdint.h>

/* The largest AAC access unit taken (6144 bits per channel, 8 channels, with room). */
#define PC_TRANSCODE_MAX_AU 65536u

struct pc_transcode;

/* Called for each Opus frame made: the packet, its capture time (ns, the AAC units' clock). A
 * non-zero return stops pc_transcode_push() and is returned by it. */
typedef int (*pc_transcode_emit_fn)(void *opaque, const uint8_t *packet, size_t size,
				    int64_t capture_ns);

/* asc is the AudioSpecificConfig (the SDP's config=); bitrate of the Opus track in bit/s, 0
 * for the default (32 kbit/s a channel). 0, or a negative errno with err set. */
int pc_transcode_init(struct pc_transcode **tc, const uint8_t *asc, size_t asc_size,
		      uint32_t bitrate, char *err, size_t err_size);
/* Decodes one raw AAC access unit (no ADTS) whose first sample was captured at capture_ns,
 * and emits every Opus frame that completes. A unit the decoder refuses is skipped (returns
 * 0: one bad unit must not stop the audio); a negative errno with err set when the
 * transcoder cannot go on. */
int pc_transcode_push(struct pc_transcode *tc, const uint8_t *au, size_t size, int64_t capture_ns,
		      pc_transcode_emit_fn emit, void *opaque, char *err, size_t err_size);
/* Opus channels (1 or 2): known from init on. */
int pc_transcode_channels(const struct pc_transcode *tc);
uint32_t pc_transcode_bitrate(const struct pc_transcode *tc);
/* Units the decoder refused so far. */
uint64_t pc_transcode_bad_units(const struct pc_transcode *tc);
void pc_transcode_destroy(struct pc_transcode *tc);

/* Parses hex ("1190") into out; the byte count, or -EINVAL. */
int pc_transcode_parse_hex(const char *hex, uint8_t *out, size_t out_size);

/* The --transcode aac program: reads the device's FRAME messages (docs/rtsp.md, "AAC to Opus")
 * from in_fd, writes a HELLO (Opus, track 1, last) and then the Opus FRAMEs to out_fd, until
 * in_fd ends (0) or something fails (a negative errno, logged). */
int pc_transcode_run(int in_fd, int out_fd, const uint8_t *asc, size_t asc_size, uint32_t bitrate);

/* p2pcast-capture --transcode aac --aac-config HEX [--bitrate BPS]: the device's child, on
 * stdin and stdout; ends with the device (stdin closed, or the parent's death). The exit code. */
int pc_transcode_main(int argc, char **argv);

#endif
