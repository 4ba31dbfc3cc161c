/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/verify.h"

#define SP_LOG_LINE_MAX 1024

static enum sp_log_level sp_log_level_max = SP_LOG_INFO;

static const char *const sp_log_level_names[] = {"error", "warn", "info", "debug"};

void
sp_log_set_level(enum sp_log_level level)
{
	sp_log_level_max = level;
}

enum sp_log_level
sp_log_get_level(void)
{
	return sp_log_level_max;
}

int
sp_log_parse_level(const char *text, enum sp_log_level *level)
{
	for (size_t i = 0; i < SP_ARRAY_SIZE(sp_log_level_names); i++) {
		if (strcmp(text, sp_log_level_names[i]) == 0) {
			*level = (enum sp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void
sp_vlog(enum sp_log_level level, const char *module, const char *fmt, va_list ap)
{
	char line[SP_LOG_LINE_MAX];
	struct timespec ts;
	int n;

	if (level > sp_log_level_max)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(line, sizeof(line), "ts=%lld.%03ld level=%s mod=%s ", (long long)ts.tv_sec,
	             ts.tv_nsec / 1000000, sp_log_level_names[level], module);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2; /* truncated: keep the newline */
	line[n++] = '\n';
	/* One write per line keeps lines from different threads whole. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void
sp_log(enum sp_log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sp_vlog(level, module, fmt, ap);
	va_end(ap);
}

void
sp_verify_failed(const char *expr, const char *file, int line, const char *func)
{
	sp_log(SP_LOG_ERROR, "verify", "assertion failed: %s at %s:%d in %s()", expr, file, line,
	       func);
	abort();
}

bool
sp_log_limit_hit(struct sp_log_limit *l, uint64_t now_ns)
{
	if (l->window_start_ns == 0 || now_ns - l->window_start_ns >= SP_LOG_LIMIT_WINDOW_NS) {
		l->window_start_ns = now_ns;
		l->logged = false;
	}
	if (!l->logged) {
		l->logged = true;
		return true;
	}
	l->suppressed++;
	return false;
}

uint64_t
sp_log_limit_flush(struct sp_log_limit *l, uint64_t now_ns)
{
	if (l->suppressed == 0 || now_ns - l->window_start_ns < SP_LOG_LIMIT_WINDOW_NS)
		return 0;
	uint64_t n = l->suppressed;
	l->suppressed = 0;
	return n;
}
