/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging: one line per event on stderr, "ts=<unix.ms> level=<lvl> mod=<module> msg..."
 * so that lines are greppable and parseable. Thread-safe (one write(2) per line).
 */
#ifndef SP_COMMON_LOG_H
#define SP_COMMON_LOG_H

#include <stdarg.h>

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

#endif
