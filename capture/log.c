#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void pc_log(const char *fmt, ...)
{
	char line[512];
	va_list args;
	va_start(args, fmt);
	vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);
	fprintf(stderr, PC_PROG ": %s\n", line);
}
