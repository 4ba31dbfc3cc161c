/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Families and their argument sets. Registration runs in constructors, before main and
 * before anything can report, so mistakes are recorded and reported by cbench_main.
 */
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbench/internal.h"
#include "common/errors.h"
#include "common/verify.h"

static struct cbench *families[CBENCH_FAMILIES_MAX];
static size_t n_families;
static struct cbench dead_family = {.name = "(overflow)", .dead = true};
static char errors[CBENCH_ERRORS_MAX][CBENCH_ERROR_MAX];
static size_t n_errors; /* may exceed CBENCH_ERRORS_MAX: the rest are counted only */

void
cbench_error(const char *fmt, ...)
{
	va_list ap;

	if (n_errors < CBENCH_ERRORS_MAX) {
		va_start(ap, fmt);
		vsnprintf(errors[n_errors], sizeof(errors[n_errors]), fmt, ap);
		va_end(ap);
	}
	n_errors++;
}

size_t
cbench_error_count(void)
{
	return n_errors;
}

const char *
cbench_error_at(size_t i)
{
	ASSERT(i < n_errors);
	return i < CBENCH_ERRORS_MAX ? errors[i] : "(more errors)";
}

struct cbench *
cbench_family_at(size_t i)
{
	ASSERT(i < n_families);
	return families[i];
}

size_t
cbench_family_count(void)
{
	return n_families;
}

void
cbench_registry_reset(void)
{
	for (size_t i = 0; i < n_families; i++) {
		free(families[i]->argsets);
		free(families[i]);
		families[i] = NULL;
	}
	n_families = 0;
	n_errors = 0;
}

/*
 * Registers a family. Returns the dead handle (and records why) when the name is
 * missing or too long, fn is NULL, memory is short or the table is full.
 */
struct cbench *
cbench_register(const char *name, cbench_fn fn)
{
	struct cbench *b;

	if (name == NULL || name[0] == '\0' || fn == NULL) {
		cbench_error("cbench_register: a benchmark needs a name and a function");
		return &dead_family;
	}
	if (strlen(name) >= CBENCH_NAME_MAX) {
		cbench_error("%.40s...: name longer than %d bytes", name, CBENCH_NAME_MAX - 1);
		return &dead_family;
	}
	if (n_families == CBENCH_FAMILIES_MAX) {
		cbench_error("%s: more than %d benchmark families (CBENCH_FAMILIES_MAX)", name,
		             CBENCH_FAMILIES_MAX);
		return &dead_family;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		cbench_error("%s: out of memory registering", name);
		return &dead_family;
	}
	memcpy(b->name, name, strlen(name) + 1);
	b->fn = fn;
	b->multiplier = CBENCH_RANGE_MULTIPLIER;
	b->min_warmup_time_s = -1.0;
	families[n_families++] = b;
	ASSERT(n_families <= CBENCH_FAMILIES_MAX);
	return b;
}

/*
 * Appends one argument set of n values. Records an error when the dimension differs
 * from the family's first set, n is out of range or the family is full.
 */
static void
add_argset(struct cbench *b, const int64_t *values, size_t n)
{
	ASSERT(b != NULL);
	if (b->dead) {
		return;
	}
	if (n == 0 || n > CBENCH_ARGS_MAX) {
		cbench_error("%s: %zu arguments; allowed 1..%d (CBENCH_ARGS_MAX)", b->name, n,
		             CBENCH_ARGS_MAX);
		return;
	}
	if (b->n_args != 0 && n != b->n_args) {
		cbench_error(
		        "%s: argument sets of %zu and %zu values; all must have the same count",
		        b->name, b->n_args, n);
		return;
	}
	if (b->n_argsets == CBENCH_INSTANCES_MAX) {
		cbench_error("%s: more than %d instances (CBENCH_INSTANCES_MAX)", b->name,
		             CBENCH_INSTANCES_MAX);
		return;
	}
	if (b->n_argsets == b->cap_argsets) {
		size_t cap = b->cap_argsets == 0 ? 8 : b->cap_argsets * 2;
		void *p;

		cap = SP_MIN(cap, (size_t)CBENCH_INSTANCES_MAX);
		p = realloc(b->argsets, cap * sizeof(*b->argsets));
		if (p == NULL) {
			cbench_error("%s: out of memory adding arguments", b->name);
			return;
		}
		b->argsets = p;
		b->cap_argsets = cap;
	}
	b->n_args = n;
	memset(b->argsets[b->n_argsets], 0, sizeof(b->argsets[b->n_argsets]));
	memcpy(b->argsets[b->n_argsets], values, n * sizeof(values[0]));
	b->n_argsets++;
	ASSERT(b->n_argsets <= b->cap_argsets);
}

void
cbench_add_arg(struct cbench *b, int64_t value)
{
	add_argset(b, &value, 1);
}

void
cbench_add_args(struct cbench *b, const int64_t *values, size_t n)
{
	if (values == NULL) {
		cbench_error("%s: cbench_add_args with NULL values", b->name);
		return;
	}
	add_argset(b, values, n);
}

/* Powers of mult in [lo, hi], lo >= 1, appended to out. Returns the new count or -1. */
static int
add_powers(int64_t lo, int64_t hi, int mult, int64_t *out, size_t n, size_t cap)
{
	ASSERT(lo >= 1);
	ASSERT(mult >= 2);
	for (int64_t i = 1; i <= hi; i *= mult) {
		if (i >= lo) {
			if (n == cap) {
				return -1;
			}
			out[n++] = i;
		}
		if (i > INT64_MAX / mult) {
			break;
		}
	}
	return (int)n;
}

/*
 * Google Benchmark's AddRange: lo, the powers of mult strictly between lo and hi (their
 * negations for the negative part, and 0 when the range crosses it), then hi.
 */
int
cbench_expand_range(int64_t lo, int64_t hi, int mult, int64_t *out, size_t cap)
{
	size_t n = 0;
	int r;

	if (lo > hi || mult < 2 || lo == INT64_MIN) {
		return -EINVAL;
	}
	if (cap == 0) {
		return -SP_ETOOBIG;
	}
	out[n++] = lo;
	if (lo == hi) {
		return 1;
	}
	if (lo + 1 == hi) {
		if (n == cap) {
			return -SP_ETOOBIG;
		}
		out[n++] = hi;
		return (int)n;
	}
	int64_t lo_inner = lo + 1;
	int64_t hi_inner = hi - 1;
	if (lo_inner < 0) {
		/* Powers in [-min(hi_inner,-1), -lo_inner], negated and in ascending order. */
		int64_t neg_hi = -lo_inner;
		int64_t neg_lo = -SP_MIN(hi_inner, (int64_t)-1);
		size_t start = n;

		r = add_powers(neg_lo, neg_hi, mult, out, n, cap);
		if (r < 0) {
			return -SP_ETOOBIG;
		}
		n = (size_t)r;
		for (size_t i = start; i < n; i++) {
			out[i] = -out[i];
		}
		for (size_t i = start, j = n - 1; i < j; i++, j--) {
			int64_t t = out[i];
			out[i] = out[j];
			out[j] = t;
		}
	}
	if (lo < 0 && hi >= 0) {
		if (n == cap) {
			return -SP_ETOOBIG;
		}
		out[n++] = 0;
	}
	if (hi_inner > 0) {
		r = add_powers(SP_MAX(lo_inner, (int64_t)1), hi_inner, mult, out, n, cap);
		if (r < 0) {
			return -SP_ETOOBIG;
		}
		n = (size_t)r;
	}
	if (out[n - 1] != hi) {
		if (n == cap) {
			return -SP_ETOOBIG;
		}
		out[n++] = hi;
	}
	ASSERT(n <= cap);
	return (int)n;
}

/* Values of one Range() dimension: enough for any int64 range with multiplier 2. */
#define RANGE_VALUES_MAX 130

void
cbench_add_range(struct cbench *b, int64_t lo, int64_t hi)
{
	cbench_add_ranges(b, &lo, &hi, 1);
}

/*
 * The product of the dimensions' ranges, the first dimension varying fastest, as
 * Google Benchmark's ArgsProduct.
 */
void
cbench_add_ranges(struct cbench *b, const int64_t *lo, const int64_t *hi, size_t n)
{
	static int64_t vals[CBENCH_ARGS_MAX][RANGE_VALUES_MAX];
	size_t count[CBENCH_ARGS_MAX];
	size_t idx[CBENCH_ARGS_MAX] = {0};
	size_t total = 1;

	if (b->dead) {
		return;
	}
	if (lo == NULL || hi == NULL || n == 0 || n > CBENCH_ARGS_MAX) {
		cbench_error("%s: ranges need 1..%d dimensions", b->name, CBENCH_ARGS_MAX);
		return;
	}
	for (size_t d = 0; d < n; d++) {
		int r = cbench_expand_range(lo[d], hi[d], b->multiplier, vals[d], RANGE_VALUES_MAX);
		if (r < 0) {
			cbench_error("%s: bad range [%" PRId64 ", %" PRId64 "] (multiplier %d): %s",
			             b->name, lo[d], hi[d], b->multiplier, sp_strerror(r));
			return;
		}
		count[d] = (size_t)r;
		total *= count[d];
		if (total > CBENCH_INSTANCES_MAX) {
			cbench_error("%s: ranges make more than %d instances", b->name,
			             CBENCH_INSTANCES_MAX);
			return;
		}
	}
	for (size_t i = 0; i < total; i++) {
		int64_t set[CBENCH_ARGS_MAX];
		size_t d = 0;

		for (size_t k = 0; k < n; k++) {
			set[k] = vals[k][idx[k]];
		}
		add_argset(b, set, n);
		do {
			idx[d] = (idx[d] + 1) % count[d];
		} while (idx[d++] == 0 && d < n);
	}
}

void
cbench_add_dense_range(struct cbench *b, int64_t lo, int64_t hi, int64_t step)
{
	if (b->dead) {
		return;
	}
	if (lo > hi || step <= 0) {
		cbench_error("%s: bad dense range [%" PRId64 ", %" PRId64 "] step %" PRId64
		             "; need lo <= hi and step > 0",
		             b->name, lo, hi, step);
		return;
	}
	/* Unsigned differences: the span of two int64 values may not fit an int64. */
	uint64_t count = ((uint64_t)hi - (uint64_t)lo) / (uint64_t)step + 1;
	if (count > CBENCH_INSTANCES_MAX) {
		cbench_error("%s: dense range makes more than %d instances", b->name,
		             CBENCH_INSTANCES_MAX);
		return;
	}
	for (uint64_t i = 0; i < count; i++) {
		int64_t v = (int64_t)((uint64_t)lo + i * (uint64_t)step);
		add_argset(b, &v, 1);
	}
}

void
cbench_set_range_multiplier(struct cbench *b, int multiplier)
{
	if (multiplier < 2) {
		cbench_error("%s: range multiplier %d; must be >= 2", b->name, multiplier);
		return;
	}
	b->multiplier = multiplier;
}

void
cbench_set_arg_names(struct cbench *b, const char *const *names, size_t n)
{
	if (names == NULL || n > CBENCH_ARGS_MAX) {
		cbench_error("%s: %zu argument names; allowed 0..%d", b->name, n, CBENCH_ARGS_MAX);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		b->arg_names[i] = names[i];
	}
	b->n_arg_names = n;
}

void
cbench_set_unit(struct cbench *b, enum cbench_unit unit)
{
	if (unit < CBENCH_UNIT_DEFAULT || unit > CBENCH_S) {
		cbench_error("%s: unknown time unit %d", b->name, (int)unit);
		return;
	}
	b->unit = unit;
}

void
cbench_set_min_time(struct cbench *b, double seconds)
{
	if (!(seconds > 0.0)) {
		cbench_error("%s: min time %g s; must be > 0", b->name, seconds);
		return;
	}
	b->min_time_s = seconds;
}

void
cbench_set_min_warmup_time(struct cbench *b, double seconds)
{
	if (!(seconds >= 0.0)) {
		cbench_error("%s: min warm-up time %g s; must be >= 0", b->name, seconds);
		return;
	}
	b->min_warmup_time_s = seconds;
}

void
cbench_set_iterations(struct cbench *b, uint64_t iterations)
{
	if (iterations == 0 || iterations > CBENCH_ITERATIONS_MAX) {
		cbench_error("%s: %" PRIu64 " iterations; allowed 1..%llu", b->name, iterations,
		             CBENCH_ITERATIONS_MAX);
		return;
	}
	b->iterations = iterations;
}

void
cbench_set_repetitions(struct cbench *b, int repetitions)
{
	if (repetitions < 1 || repetitions > CBENCH_REPETITIONS_MAX) {
		cbench_error("%s: %d repetitions; allowed 1..%d", b->name, repetitions,
		             CBENCH_REPETITIONS_MAX);
		return;
	}
	b->repetitions = repetitions;
}

void
cbench_use_real_time(struct cbench *b)
{
	b->real_time = true;
}

void
cbench_use_manual_time(struct cbench *b)
{
	b->manual_time = true;
}

void
cbench_measure_process_cpu_time(struct cbench *b)
{
	b->process_cpu_time = true;
}

void
cbench_set_cycles_per_item(struct cbench *b)
{
	b->cycles_per_item = true;
}

/* Appends one thread count; records an error past the bounds. */
void
cbench_add_threads(struct cbench *b, int threads)
{
	if (b->dead) {
		return;
	}
	if (threads < 1 || threads > CBENCH_THREADS_MAX) {
		cbench_error("%s: %d threads; allowed 1..%d (CBENCH_THREADS_MAX)", b->name, threads,
		             CBENCH_THREADS_MAX);
		return;
	}
	if (b->n_thread_counts == CBENCH_THREAD_COUNTS_MAX) {
		cbench_error("%s: more than %d thread counts (CBENCH_THREAD_COUNTS_MAX)", b->name,
		             CBENCH_THREAD_COUNTS_MAX);
		return;
	}
	b->thread_counts[b->n_thread_counts++] = threads;
	ASSERT(b->n_thread_counts <= CBENCH_THREAD_COUNTS_MAX);
}

/* Google Benchmark's ThreadRange: Range(lo, hi) with multiplier 2. */
void
cbench_add_thread_range(struct cbench *b, int lo, int hi)
{
	int64_t counts[CBENCH_THREAD_COUNTS_MAX];
	int n = cbench_expand_range(lo, hi, 2, counts, CBENCH_THREAD_COUNTS_MAX);

	if (lo < 1 || n < 0) {
		cbench_error("%s: bad thread range [%d, %d]", b->name, lo, hi);
		return;
	}
	for (int i = 0; i < n; i++) {
		cbench_add_threads(b, (int)counts[i]);
	}
}

void
cbench_set_fixture(struct cbench *b, cbench_fn setup, cbench_fn teardown)
{
	b->setup = setup;
	b->teardown = teardown;
}

/* Appends "/" (unless first) and the formatted part; returns -SP_ETOOBIG on overflow. */
static int
name_part(char *buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int w;

	ASSERT(*len < CBENCH_NAME_MAX);
	if (*len != 0) {
		if (*len + 1 >= CBENCH_NAME_MAX) {
			return -SP_ETOOBIG;
		}
		buf[(*len)++] = '/';
		buf[*len] = '\0';
	}
	va_start(ap, fmt);
	w = vsnprintf(buf + *len, CBENCH_NAME_MAX - *len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= CBENCH_NAME_MAX - *len) {
		return -SP_ETOOBIG;
	}
	*len += (size_t)w;
	return 0;
}

/* Google Benchmark's BenchmarkName: function, args, min_time, ..., time kind. */
int
cbench_instance_name(struct cbench_instance *inst)
{
	const struct cbench *b = inst->family;
	char *buf = inst->name;
	size_t len = 0;
	int r = 0;

	ASSERT(b != NULL);
	buf[0] = '\0';
	r |= name_part(buf, &len, "%s", b->name);
	for (size_t i = 0; i < inst->n_args; i++) {
		const char *an = i < b->n_arg_names ? b->arg_names[i] : NULL;
		if (an != NULL && an[0] != '\0') {
			r |= name_part(buf, &len, "%s:%" PRId64, an, inst->args[i]);
		} else {
			r |= name_part(buf, &len, "%" PRId64, inst->args[i]);
		}
	}
	if (b->min_time_s > 0.0) {
		r |= name_part(buf, &len, "min_time:%0.3f", b->min_time_s);
	}
	if (b->min_warmup_time_s > 0.0) {
		r |= name_part(buf, &len, "min_warmup_time:%0.3f", b->min_warmup_time_s);
	}
	if (b->iterations != 0) {
		r |= name_part(buf, &len, "iterations:%" PRIu64, b->iterations);
	}
	if (b->repetitions != 0) {
		r |= name_part(buf, &len, "repeats:%d", b->repetitions);
	}
	if (b->process_cpu_time) {
		r |= name_part(buf, &len, "process_time");
	}
	if (b->manual_time) {
		r |= name_part(buf, &len, "manual_time");
	} else if (b->real_time) {
		r |= name_part(buf, &len, "real_time");
	}
	if (b->n_thread_counts > 0) {
		r |= name_part(buf, &len, "threads:%d", inst->threads);
	}
	ASSERT(len < CBENCH_NAME_MAX);
	return r != 0 ? -SP_ETOOBIG : 0;
}

size_t
cbench_instance_total(void)
{
	size_t total = 0;

	for (size_t i = 0; i < n_families; i++) {
		size_t sets = families[i]->n_argsets == 0 ? 1 : families[i]->n_argsets;
		size_t counts =
		        families[i]->n_thread_counts == 0 ? 1 : families[i]->n_thread_counts;
		total += sets * counts;
	}
	return total;
}

/* Matches the filter's compiled regex, inverted for a negative filter. */
static bool
selected(const regex_t *re, bool negative, const char *name)
{
	bool match = regexec(re, name, 0, NULL, 0) == 0;
	return negative ? !match : match;
}

int
cbench_find_instances(const char *filter, struct cbench_instance *out, size_t cap, char *err,
                      size_t err_len)
{
	regex_t re;
	bool negative = false;
	const char *spec = filter;
	size_t n = 0;
	int next_family = 0;
	int rc;

	if (spec == NULL || spec[0] == '\0' || strcmp(spec, "all") == 0) {
		spec = ".";
	}
	if (spec[0] == '-') {
		negative = true;
		spec++;
	}
	rc = regcomp(&re, spec, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char why[128];
		regerror(rc, &re, why, sizeof(why));
		snprintf(err, err_len, "--benchmark_filter=%s: bad regular expression: %s", filter,
		         why);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_families; i++) {
		const struct cbench *b = families[i];
		size_t sets = b->n_argsets == 0 ? 1 : b->n_argsets;
		size_t counts = b->n_thread_counts == 0 ? 1 : b->n_thread_counts;
		int per_family = 0;

		for (size_t k = 0; k < sets * counts; k++) {
			struct cbench_instance inst = {
			        .family = b,
			        .args = b->n_argsets == 0 ? NULL : b->argsets[k / counts],
			        .n_args = b->n_argsets == 0 ? 0 : b->n_args,
			        .threads =
			                b->n_thread_counts == 0 ? 1 : b->thread_counts[k % counts],
			        .family_index = next_family,
			        .per_family_instance_index = per_family,
			};
			if (cbench_instance_name(&inst) != 0) {
				snprintf(err, err_len,
				         "an instance name of %.64s is longer than %d bytes",
				         b->name, CBENCH_NAME_MAX - 1);
				regfree(&re);
				return -SP_ETOOBIG;
			}
			if (!selected(&re, negative, inst.name)) {
				continue;
			}
			if (n == cap) {
				snprintf(err, err_len, "more than %zu benchmark instances", cap);
				regfree(&re);
				return -SP_ETOOBIG;
			}
			out[n++] = inst;
			per_family++;
		}
		if (per_family > 0) {
			next_family++;
		}
	}
	regfree(&re);
	ASSERT(n <= cap);
	return (int)n;
}
