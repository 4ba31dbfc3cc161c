/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Google Benchmark's flags, by the same names and with the same meaning. Each flag can
 * also come from the environment as its upper-case name (BENCHMARK_FILTER=...); the
 * command line wins. Anything not recognised is an error.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cbench/internal.h"
#include "common/verify.h"

void
cbench_flags_default(struct cbench_flags *f)
{
	memset(f, 0, sizeof(*f));
	f->filter = ".";
	f->min_time_s = CBENCH_MIN_TIME_S;
	f->repetitions = 1;
	f->format = CBENCH_FORMAT_CONSOLE;
	f->out_format = CBENCH_FORMAT_JSON;
	f->time_unit = CBENCH_NS;
}

/* Parses a finite, non-negative decimal number that fills all of text. */
static int
parse_seconds(const char *text, size_t len, double *out)
{
	char buf[64];
	char *end;
	double v;

	if (len == 0 || len >= sizeof(buf)) {
		return -EINVAL;
	}
	/* strtod would also take spaces, signs, hex, "inf" and "nan": none is a time. */
	if (!((text[0] >= '0' && text[0] <= '9') || text[0] == '.')) {
		return -EINVAL;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (errno != 0 || end != buf + len || !isfinite(v) || v < 0.0) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int
cbench_parse_min_time(const char *text, double *seconds, uint64_t *iterations)
{
	size_t len;

	ASSERT(seconds != NULL);
	ASSERT(iterations != NULL);
	if (text == NULL || (len = strlen(text)) == 0) {
		return -EINVAL;
	}
	if (text[len - 1] == 'x') {
		char *end;
		unsigned long long n;

		if (text[0] < '0' || text[0] > '9') {
			return -EINVAL;
		}
		errno = 0;
		n = strtoull(text, &end, 10);
		if (errno != 0 || end != text + len - 1 || n == 0 || n > CBENCH_ITERATIONS_MAX) {
			return -EINVAL;
		}
		*iterations = n;
		*seconds = 0.0;
		return 0;
	}
	if (text[len - 1] == 's') {
		len--;
	}
	if (parse_seconds(text, len, seconds) != 0) {
		return -EINVAL;
	}
	*iterations = 0;
	return 0;
}

/* Google Benchmark accepts these spellings of a boolean; anything else is an error. */
static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"", "true", "yes", "on", "1", "t", "y"};
	static const char *const no[] = {"false", "no", "off", "0", "f", "n"};

	for (size_t i = 0; i < SP_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
	}
	for (size_t i = 0; i < SP_ARRAY_SIZE(no); i++) {
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int
parse_format(const char *v, enum cbench_format *out)
{
	if (strcmp(v, "console") == 0) {
		*out = CBENCH_FORMAT_CONSOLE;
	} else if (strcmp(v, "json") == 0) {
		*out = CBENCH_FORMAT_JSON;
	} else if (strcmp(v, "csv") == 0) {
		*out = CBENCH_FORMAT_CSV;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int
parse_color(const char *v, enum cbench_color *out)
{
	bool on;

	if (strcmp(v, "auto") == 0) {
		*out = CBENCH_COLOR_AUTO;
		return 0;
	}
	if (v[0] == '\0' || parse_bool(v, &on) != 0) {
		return -EINVAL;
	}
	*out = on ? CBENCH_COLOR_ON : CBENCH_COLOR_OFF;
	return 0;
}

static int
parse_unit(const char *v, enum cbench_unit *out)
{
	static const struct {
		const char *name;
		enum cbench_unit unit;
	} units[] = {{"ns", CBENCH_NS}, {"us", CBENCH_US}, {"ms", CBENCH_MS}, {"s", CBENCH_S}};

	for (size_t i = 0; i < SP_ARRAY_SIZE(units); i++) {
		if (strcmp(v, units[i].name) == 0) {
			*out = units[i].unit;
			return 0;
		}
	}
	return -EINVAL;
}

static int
parse_repetitions(const char *v, int *out)
{
	char *end;
	long n;

	if (v[0] < '0' || v[0] > '9') {
		return -EINVAL;
	}
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > CBENCH_REPETITIONS_MAX) {
		return -EINVAL;
	}
	*out = (int)n;
	return 0;
}

/* Copies s[0..len) into dst (cap bytes) if it fits and is not empty. */
static int
copy_text(char *dst, size_t cap, const char *s, size_t len)
{
	if (len == 0 || len >= cap) {
		return -EINVAL;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/*
 * "k1=v1,k2=v2": every pair needs a non-empty key and a '='; a key given twice is an
 * error, as in Google Benchmark. Replaces the earlier context.
 */
static int
parse_context(const char *v, struct cbench_flags *f)
{
	const char *p = v;

	f->n_context = 0;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		const char *eq;
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		struct cbench_context_kv *kv;

		eq = memchr(p, '=', len);
		if (eq == NULL || eq == p || f->n_context == CBENCH_CONTEXT_MAX) {
			return -EINVAL;
		}
		kv = &f->context[f->n_context];
		if (copy_text(kv->key, sizeof(kv->key), p, (size_t)(eq - p)) != 0) {
			return -EINVAL;
		}
		kv->value[0] = '\0';
		if ((size_t)(eq + 1 - p) < len && copy_text(kv->value, sizeof(kv->value), eq + 1,
		                                            len - (size_t)(eq + 1 - p)) != 0) {
			return -EINVAL;
		}
		for (size_t i = 0; i < f->n_context; i++) {
			if (strcmp(f->context[i].key, kv->key) == 0) {
				return -EINVAL;
			}
		}
		f->n_context++;
		if (end == NULL) {
			break;
		}
		p = end + 1;
		if (*p == '\0') {
			return -EINVAL;
		}
	}
	ASSERT(f->n_context <= CBENCH_CONTEXT_MAX);
	return 0;
}

enum flag_id {
	F_LIST_TESTS,
	F_FILTER,
	F_MIN_TIME,
	F_MIN_WARMUP_TIME,
	F_REPETITIONS,
	F_REPORT_AGGREGATES_ONLY,
	F_DISPLAY_AGGREGATES_ONLY,
	F_FORMAT,
	F_OUT,
	F_OUT_FORMAT,
	F_CONTEXT,
	F_TIME_UNIT,
	F_COLOR,
	F_COUNTERS_TABULAR,
};

static const struct {
	const char *name;
	const char *env;
	enum flag_id id;
	bool boolean;
} flag_table[] = {
        {"benchmark_list_tests", "BENCHMARK_LIST_TESTS", F_LIST_TESTS, true},
        {"benchmark_filter", "BENCHMARK_FILTER", F_FILTER, false},
        {"benchmark_min_time", "BENCHMARK_MIN_TIME", F_MIN_TIME, false},
        {"benchmark_min_warmup_time", "BENCHMARK_MIN_WARMUP_TIME", F_MIN_WARMUP_TIME, false},
        {"benchmark_repetitions", "BENCHMARK_REPETITIONS", F_REPETITIONS, false},
        {"benchmark_report_aggregates_only", "BENCHMARK_REPORT_AGGREGATES_ONLY",
         F_REPORT_AGGREGATES_ONLY, true},
        {"benchmark_display_aggregates_only", "BENCHMARK_DISPLAY_AGGREGATES_ONLY",
         F_DISPLAY_AGGREGATES_ONLY, true},
        {"benchmark_format", "BENCHMARK_FORMAT", F_FORMAT, false},
        {"benchmark_out", "BENCHMARK_OUT", F_OUT, false},
        {"benchmark_out_format", "BENCHMARK_OUT_FORMAT", F_OUT_FORMAT, false},
        {"benchmark_context", "BENCHMARK_CONTEXT", F_CONTEXT, false},
        {"benchmark_time_unit", "BENCHMARK_TIME_UNIT", F_TIME_UNIT, false},
        {"benchmark_color", "BENCHMARK_COLOR", F_COLOR, false},
        {"benchmark_counters_tabular", "BENCHMARK_COUNTERS_TABULAR", F_COUNTERS_TABULAR, true},
};

/* Applies one flag's value (v is "" for a bare boolean flag). Returns 0 or -EINVAL. */
static int
apply(struct cbench_flags *f, enum flag_id id, const char *v)
{
	switch (id) {
	case F_LIST_TESTS:
		return parse_bool(v, &f->list_tests);
	case F_FILTER:
		f->filter = v;
		return 0;
	case F_MIN_TIME:
		return cbench_parse_min_time(v, &f->min_time_s, &f->min_time_iterations);
	case F_MIN_WARMUP_TIME: {
		size_t len = strlen(v);
		if (len > 0 && v[len - 1] == 's') {
			len--;
		}
		return parse_seconds(v, len, &f->min_warmup_time_s);
	}
	case F_REPETITIONS:
		return parse_repetitions(v, &f->repetitions);
	case F_REPORT_AGGREGATES_ONLY:
		return parse_bool(v, &f->report_aggregates_only);
	case F_DISPLAY_AGGREGATES_ONLY:
		return parse_bool(v, &f->display_aggregates_only);
	case F_FORMAT:
		return parse_format(v, &f->format);
	case F_OUT:
		if (v[0] == '\0') {
			return -EINVAL;
		}
		f->out = v;
		return 0;
	case F_OUT_FORMAT:
		return parse_format(v, &f->out_format);
	case F_CONTEXT:
		return parse_context(v, f);
	case F_TIME_UNIT:
		return parse_unit(v, &f->time_unit);
	case F_COLOR:
		return parse_color(v, &f->color);
	case F_COUNTERS_TABULAR:
		return parse_bool(v, &f->counters_tabular);
	}
	return -EINVAL;
}

/* Looks "--name[=value]" up; returns the table index or -1, and sets *value. */
static int
lookup(const char *arg, const char **value)
{
	const char *name;
	size_t len;

	if (strncmp(arg, "--", 2) != 0) {
		return -1;
	}
	name = arg + 2;
	len = strcspn(name, "=");
	for (size_t i = 0; i < SP_ARRAY_SIZE(flag_table); i++) {
		if (strlen(flag_table[i].name) == len &&
		    strncmp(flag_table[i].name, name, len) == 0) {
			if (name[len] == '=') {
				*value = name + len + 1;
			} else if (flag_table[i].boolean) {
				*value = "";
			} else {
				*value = NULL; /* a value flag without its value */
			}
			return (int)i;
		}
	}
	return -1;
}

int
cbench_flags_parse(struct cbench_flags *f, int argc, char **argv, char *const *env, char *err,
                   size_t err_len)
{
	ASSERT(f != NULL);
	ASSERT(argc >= 0);
	for (size_t e = 0; env != NULL && env[e] != NULL; e++) {
		for (size_t i = 0; i < SP_ARRAY_SIZE(flag_table); i++) {
			size_t len = strlen(flag_table[i].env);
			if (strncmp(env[e], flag_table[i].env, len) != 0 || env[e][len] != '=') {
				continue;
			}
			if (apply(f, flag_table[i].id, env[e] + len + 1) != 0) {
				snprintf(err, err_len,
				         "bad value in the environment: %s; see --help", env[e]);
				return -EINVAL;
			}
		}
	}
	for (int a = 1; a < argc; a++) {
		const char *value = NULL;
		int i;

		if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
			f->help = true;
			continue;
		}
		i = lookup(argv[a], &value);
		if (i < 0) {
			snprintf(err, err_len, "unrecognized command-line flag: %s", argv[a]);
			return -EINVAL;
		}
		if (value == NULL) {
			snprintf(err, err_len, "--%s needs a value: --%s=<value>",
			         flag_table[i].name, flag_table[i].name);
			return -EINVAL;
		}
		if (apply(f, flag_table[i].id, value) != 0) {
			snprintf(err, err_len, "bad value for --%s: '%s'; see --help",
			         flag_table[i].name, value);
			return -EINVAL;
		}
	}
	return 0;
}

void
cbench_usage(FILE *out, const char *prog)
{
	fprintf(out,
	        "usage: %s [flags]\n"
	        "  [--benchmark_list_tests={true|false}]\n"
	        "  [--benchmark_filter=<regex>]          POSIX extended; '-' first negates\n"
	        "  [--benchmark_min_time=<N>s|<N>x]      seconds per benchmark, or iterations\n"
	        "  [--benchmark_min_warmup_time=<N>s]\n"
	        "  [--benchmark_repetitions=<num_repetitions>]\n"
	        "  [--benchmark_report_aggregates_only={true|false}]\n"
	        "  [--benchmark_display_aggregates_only={true|false}]\n"
	        "  [--benchmark_format=<console|json|csv>]\n"
	        "  [--benchmark_out=<filename>]\n"
	        "  [--benchmark_out_format=<json|console|csv>]\n"
	        "  [--benchmark_context=<key>=<value>,...]\n"
	        "  [--benchmark_time_unit={ns|us|ms|s}]\n"
	        "  [--benchmark_color={auto|true|false}]\n"
	        "  [--benchmark_counters_tabular={true|false}]\n"
	        "Each flag may also be set in the environment by its upper-case name,\n"
	        "e.g. BENCHMARK_FILTER=BM_get; the command line wins.\n",
	        prog);
}
