/* Runs every suite; the last line is "N passed, M failed" (tests, not checks). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* No test may hang the build: the whole run is cut off after this long. */
#define PC_TESTS_TIMEOUT_S 120

/* test_wayland.c's, test_pipewire.c's and test_v4l2.c's suites (declared here: check.h lists the older ones). */
void pc_test_wayland(void);
void pc_test_pipewire(void);
void pc_test_v4l2(void);
void pc_test_encoders(void); /* test_encoders.c */
void pc_test_transcode(void); /* test_transcode.c */
void pc_test_motion(void); /* test_motion.c */
void pc_test_rkmpi(void); /* test_rkmpi.c */

struct pc_check_totals pc_check;
const char *pc_check_producer;

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-p2pcast-capture [SUITE...]\n", argv[0]);
		return 2;
	}
	pc_check_producer = argv[1];
	/* The end-to-end tests write to sockets a producer may have closed. */
	signal(SIGPIPE, SIG_IGN);
	alarm(PC_TESTS_TIMEOUT_S);

	/* Every suite, or only those named (ipc, level, timestrip, ...): for a quick run while
	 * working on one part. */
	static const struct {
		const char *name;
		void (*run)(void);
	} suites[] = {
		{"ipc", pc_test_ipc},
		{"level", pc_test_level},
		{"timestrip", pc_test_timestrip},
		{"scale", pc_test_scale},
		{"motion", pc_test_motion},
		{"encoder", pc_test_encoder},
		{"audio", pc_test_audio},
		{"e2e", pc_test_e2e},
		{"wayland", pc_test_wayland},
		{"pipewire", pc_test_pipewire},
		{"v4l2", pc_test_v4l2},
		{"encoders", pc_test_encoders},
		{"transcode", pc_test_transcode},
		{"rkmpi", pc_test_rkmpi},
	};
	int unknown = 0;
	for (int a = 2; a < argc; a++) {
		bool found = false;
		for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
			found |= strcmp(argv[a], suites[i].name) == 0;
		if (!found) {
			fprintf(stderr, "no suite named %s\n", argv[a]);
			unknown++;
		}
	}
	if (unknown)
		return 2;
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		bool wanted = argc == 2;
		for (int a = 2; a < argc; a++)
			wanted |= strcmp(argv[a], suites[i].name) == 0;
		if (wanted)
			suites[i].run();
	}

	printf("%d passed, %d failed\n", pc_check.tests_passed, pc_check.tests_failed);
	return pc_check.tests_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
