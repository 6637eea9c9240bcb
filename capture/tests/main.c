/* Runs every suite; the last line is "N passed, M failed" (tests, not checks). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

/* No test may hang the build: the whole run is cut off after this long. */
#define PC_TESTS_TIMEOUT_S 120

struct pc_check_totals pc_check;
const char *pc_check_producer;

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH-TO-p2pcast-capture\n", argv[0]);
		return 2;
	}
	pc_check_producer = argv[1];
	/* The end-to-end tests write to sockets a producer may have closed. */
	signal(SIGPIPE, SIG_IGN);
	alarm(PC_TESTS_TIMEOUT_S);

	pc_test_ipc();
	pc_test_level();
	pc_test_timestrip();
	pc_test_encoder();
	pc_test_audio();
	pc_test_e2e();

	printf("%d passed, %d failed\n", pc_check.tests_passed, pc_check.tests_failed);
	return pc_check.tests_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
