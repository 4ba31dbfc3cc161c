/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging: one line per event on stderr, "ts=<unix.ms> level=<lvl> mod=<module> msg..."
 * so that lines are greppable and parseable. Thread-safe (one write(2) per line).
 */
#ifndef SP_COMMON_LOG_H
#define SP_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum sp_log_level {
	SP_LOG_ERROR = 0,
	SP_LOG_WARN,
	SP_LOG_INFO,
	SP_LOG_DEBUG,
};

/* Sets the most verbose level printed; the default is SP_LOG_INFO. */
void sp_log_set_level(enum sp_log_level level);
enum sp_log_level sp_log_get_level(void);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -EINVAL on any other text. */
int sp_log_parse_level(const char *text, enum sp_log_level *level);

void sp_log(enum sp_log_level level, const char *module, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void sp_vlog(enum sp_log_level level, const char *module, const char *fmt, va_list ap);

#define SP_LOG_ERR(mod, ...)   sp_log(SP_LOG_ERROR, mod, __VA_ARGS__)
#define SP_LOG_WARN(mod, ...)  sp_log(SP_LOG_WARN, mod, __VA_ARGS__)
#define SP_LOG_INFO(mod, ...)  sp_log(SP_LOG_INFO, mod, __VA_ARGS__)
#define SP_LOG_DEBUG(mod, ...) sp_log(SP_LOG_DEBUG, mod, __VA_ARGS__)

/*
 * A limiter for a line that an outside party can make us print at will (a refused
 * connection, a bad frame): the first event of each SP_LOG_LIMIT_WINDOW_NS window is
 * logged, the rest are counted, and the count is reported once the window is over:
 *
 *   if (sp_log_limit_hit(&lim, now))
 *           SP_LOG_WARN(MOD, "refused a connection from %s: %s", addr, why);
 *   ... and from a periodic tick:
 *   uint64_t n = sp_log_limit_flush(&lim, now);
 *   if (n)
 *           SP_LOG_WARN(MOD, "refused %llu more connections in the last second", n);
 *
 * Not thread-safe: one limiter per thread. Zero-initialised is ready to use.
 */
#define SP_LOG_LIMIT_WINDOW_NS 1000000000ull

struct sp_log_limit {
	uint64_t window_start_ns;
	uint64_t suppressed; /* events counted but not logged */
	bool logged;         /* the current window's line was printed */
};

/* Counts one event at now_ns; true when it is to be logged. */
bool sp_log_limit_hit(struct sp_log_limit *l, uint64_t now_ns);

/* When a window with suppressed events is over: returns how many, and clears them;
 * otherwise 0. */
uint64_t sp_log_limit_flush(struct sp_log_limit *l, uint64_t now_ns);

#endif
