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
