/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small libcbench program for the compatibility tests; compat_bench.cc is the same
 * program written against Google Benchmark, and the two JSON outputs are compared.
 */
#include <stdint.h>
#include <string.h>

#include "cbench/cbench.h"

#define SUM_VALUES_MAX 512

/* Sums n integers: short, steady work whose cost grows with the argument. */
static void
BM_sum(struct cbench_state *st)
{
	static uint64_t values[SUM_VALUES_MAX];
	int64_t n = cbench_range(st, 0);

	if (n < 1 || n > SUM_VALUES_MAX) {
		cbench_skip_with_error(st, "argument out of range");
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		values[i] = (uint64_t)i * 2654435761u;
	}
	while (cbench_keep_running(st)) {
		uint64_t sum = 0;
		for (int64_t i = 0; i < n; i++) {
			sum += values[i];
		}
		CBENCH_DO_NOT_OPTIMIZE(sum);
	}
	cbench_set_items_processed(st, cbench_iterations(st) * (uint64_t)n);
	cbench_set_bytes_processed(st, cbench_iterations(st) * (uint64_t)n * sizeof(values[0]));
	cbench_counter(st, "elements", (double)n, CBENCH_COUNTER_DEFAULT);
	cbench_set_label(st, "sum");
}
CBENCH_REGISTER(BM_sum)
{
	cbench_add_range(b, 8, 512);
}

/* Copies a buffer, with a slice of untimed work inside the loop. */
static void
BM_copy_paused(struct cbench_state *st)
{
	char src[256];
	char dst[256];

	memset(src, 'x', sizeof(src));
	while (cbench_keep_running(st)) {
		cbench_pause_timing(st);
		src[0] = (char)cbench_iterations(st);
		cbench_resume_timing(st);
		memcpy(dst, src, sizeof(dst));
		cbench_do_not_optimize(dst);
		cbench_clobber_memory();
	}
}
CBENCH(BM_copy_paused);

/* Always fails before its loop: checks how an error is reported. */
static void
BM_fails(struct cbench_state *st)
{
	cbench_skip_with_error(st, "expected \"failure\"");
	while (cbench_keep_running(st)) {
	}
}
CBENCH(BM_fails);

/* Named arguments over a two-dimensional range with multiplier 4. */
static void
BM_args(struct cbench_state *st)
{
	uint64_t acc = 0;

	while (cbench_keep_running(st)) {
		acc += (uint64_t)(cbench_range(st, 0) * cbench_range(st, 1));
		CBENCH_DO_NOT_OPTIMIZE(acc);
	}
	cbench_counter(st, "per_iter", (double)cbench_iterations(st),
	               CBENCH_COUNTER_AVG_ITERATIONS);
	cbench_counter(st, "secs_per_op", 1.0,
	               CBENCH_COUNTER_ITER_INVARIANT | CBENCH_COUNTER_RATE | CBENCH_COUNTER_INVERT);
}
CBENCH_REGISTER(BM_args)
{
	static const char *const names[] = {"keys", "vsize"};

	cbench_set_arg_names(b, names, 2);
	cbench_set_range_multiplier(b, 4);
	cbench_add_ranges(b, (const int64_t[]){1, 16}, (const int64_t[]){8, 64}, 2);
}

/* Options that change the name: unit, real and process time, a fixed count. */
static void
BM_options(struct cbench_state *st)
{
	uint64_t acc = 0;

	while (cbench_keep_running(st)) {
		CBENCH_DO_NOT_OPTIMIZE(acc);
	}
}
CBENCH_REGISTER(BM_options)
{
	cbench_add_dense_range(b, 0, 6, 3);
	cbench_set_unit(b, CBENCH_US);
	cbench_use_real_time(b);
	cbench_measure_process_cpu_time(b);
	cbench_set_iterations(b, 1000);
}

/* Manual timing with its own minimum time. */
static void
BM_manual(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
		cbench_set_iteration_time(st, 1e-6);
	}
}
CBENCH_REGISTER(BM_manual)
{
	cbench_use_manual_time(b);
	cbench_set_min_time(b, 0.01);
}

/* Two threads at once; each counts its own iterations. */
static void
BM_threads(struct cbench_state *st)
{
	uint64_t acc = 0;

	while (cbench_keep_running(st)) {
		CBENCH_DO_NOT_OPTIMIZE(acc);
	}
	cbench_counter(st, "per_thread", 1.0, CBENCH_COUNTER_AVG_THREADS);
	cbench_set_items_processed(st, cbench_iterations(st));
}
CBENCH_REGISTER(BM_threads)
{
	cbench_add_threads(b, 2);
}
