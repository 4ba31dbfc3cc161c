/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of libcbench: argument expansion and names as Google Benchmark makes them,
 * flag and min_time parsing, the loop's iteration count, skips and fixtures, counter and
 * aggregate math, the number and time formats, JSON escaping and a whole cbench_main run.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cbench/internal.h"
#include "common/errors.h"
#include "common/verify.h"

/* ---- a family registered by the macros, checked before the registry is reset ---- */

static void
BM_from_ctor(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
	}
}
CBENCH_REGISTER(BM_from_ctor)
{
	cbench_add_arg(b, 3);
	cbench_add_arg(b, 5);
}

static void
BM_plain(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
	}
}
CBENCH(BM_plain);

static void
test_macros_register_at_load(void **state)
{
	(void)state;
	assert_int_equal(cbench_error_count(), 0);
	assert_int_equal(cbench_family_count(), 2);
	assert_string_equal(cbench_family_at(0)->name, "BM_from_ctor");
	assert_int_equal(cbench_family_at(0)->n_argsets, 2);
	assert_string_equal(cbench_family_at(1)->name, "BM_plain");
	assert_int_equal(cbench_family_at(1)->n_argsets, 0);
}

static int
reset(void **state)
{
	(void)state;
	cbench_registry_reset();
	return 0;
}

/* ---- ranges ---- */

static void
expect_range(int64_t lo, int64_t hi, int mult, const int64_t *want, size_t n)
{
	int64_t got[160];
	int r = cbench_expand_range(lo, hi, mult, got, SP_ARRAY_SIZE(got));

	assert_int_equal(r, (int)n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(got[i], want[i]);
	}
}

static void
test_range_expansion(void **state)
{
	(void)state;
	expect_range(8, 512, 8, (const int64_t[]){8, 64, 512}, 3);
	expect_range(1, 64, 8, (const int64_t[]){1, 8, 64}, 3);
	expect_range(8, 8, 8, (const int64_t[]){8}, 1);
	expect_range(8, 9, 8, (const int64_t[]){8, 9}, 2);
	expect_range(0, 1024, 8, (const int64_t[]){0, 1, 8, 64, 512, 1024}, 6);
	expect_range(1, 1000, 8, (const int64_t[]){1, 8, 64, 512, 1000}, 5);
	expect_range(-8, 8, 2, (const int64_t[]){-8, -4, -2, -1, 0, 1, 2, 4, 8}, 9);
	expect_range(8, 256, 2, (const int64_t[]){8, 16, 32, 64, 128, 256}, 6);
	/* The whole positive int64 range stays in bounds: 2^0 .. 2^62 and the limit. */
	int64_t big[80];
	assert_int_equal(cbench_expand_range(1, INT64_MAX, 2, big, SP_ARRAY_SIZE(big)), 64);
	assert_int_equal(big[62], INT64_C(1) << 62);
	assert_int_equal(big[63], INT64_MAX);
}

static void
test_range_errors(void **state)
{
	int64_t out[4];

	(void)state;
	assert_int_equal(cbench_expand_range(9, 8, 8, out, 4), -EINVAL);
	assert_int_equal(cbench_expand_range(1, 8, 1, out, 4), -EINVAL);
	assert_int_equal(cbench_expand_range(1, 1 << 20, 2, out, 4), -SP_ETOOBIG);
	assert_int_equal(cbench_expand_range(1, 8, 8, out, 0), -SP_ETOOBIG);
}

static void
fn_noop(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
	}
}

static int
find_all(const char *filter, struct cbench_instance *out, size_t cap)
{
	char err[256] = "";
	int n = cbench_find_instances(filter, out, cap, err, sizeof(err));
	if (n < 0) {
		print_message("find_instances: %s\n", err);
	}
	return n;
}

static void
test_instance_names(void **state)
{
	struct cbench_instance in[64];
	struct cbench *b;

	(void)state;
	b = cbench_register("BM_get", fn_noop);
	cbench_add_range(b, 8, 512);
	b = cbench_register("BM_pair", fn_noop);
	cbench_add_ranges(b, (const int64_t[]){1, 10}, (const int64_t[]){8, 20}, 2);
	b = cbench_register("BM_named", fn_noop);
	cbench_set_arg_names(b, (const char *const[]){"keys", ""}, 2);
	cbench_add_args(b, (const int64_t[]){4, 7}, 2);
	cbench_set_min_time(b, 0.25);
	cbench_set_repetitions(b, 3);
	cbench_use_real_time(b);
	b = cbench_register("BM_dense", fn_noop);
	cbench_add_dense_range(b, 0, 10, 3);
	cbench_set_iterations(b, 100);
	cbench_measure_process_cpu_time(b);
	cbench_use_manual_time(b);
	assert_int_equal(cbench_error_count(), 0);

	int n = find_all(NULL, in, SP_ARRAY_SIZE(in));
	const char *want[] = {
	        "BM_get/8",
	        "BM_get/64",
	        "BM_get/512",
	        "BM_pair/1/10",
	        "BM_pair/8/10",
	        "BM_pair/1/20",
	        "BM_pair/8/20",
	        "BM_named/keys:4/7/min_time:0.250/repeats:3/real_time",
	        "BM_dense/0/iterations:100/process_time/manual_time",
	        "BM_dense/3/iterations:100/process_time/manual_time",
	        "BM_dense/6/iterations:100/process_time/manual_time",
	        "BM_dense/9/iterations:100/process_time/manual_time",
	};
	assert_int_equal(n, (int)SP_ARRAY_SIZE(want));
	for (size_t i = 0; i < SP_ARRAY_SIZE(want); i++) {
		assert_string_equal(in[i].name, want[i]);
	}
	assert_int_equal(in[2].family_index, 0);
	assert_int_equal(in[2].per_family_instance_index, 2);
	assert_int_equal(in[3].family_index, 1);
	assert_int_equal(in[11].family_index, 3);
	assert_int_equal(in[11].per_family_instance_index, 3);
}

static void
test_filter(void **state)
{
	struct cbench_instance in[16];
	char err[256];
	struct cbench *b;

	(void)state;
	b = cbench_register("BM_a", fn_noop);
	cbench_add_range(b, 1, 64);
	b = cbench_register("BM_b", fn_noop);
	cbench_add_arg(b, 8);
	b = cbench_register("BM_c", fn_noop);
	(void)b;

	/* Family indices count only families with a selected instance. */
	assert_int_equal(find_all("BM_[bc]", in, 16), 2);
	assert_string_equal(in[0].name, "BM_b/8");
	assert_int_equal(in[0].family_index, 0);
	assert_int_equal(in[1].family_index, 1);
	assert_int_equal(find_all("/8$", in, 16), 2);
	assert_int_equal(in[0].per_family_instance_index, 0);
	assert_string_equal(in[0].name, "BM_a/8");
	assert_int_equal(find_all("-BM_a", in, 16), 2);
	assert_int_equal(find_all("all", in, 16), 5);
	assert_int_equal(find_all("nothing", in, 16), 0);
	/* The caller's capacity is a bound, and a bad regex is an error with a message. */
	assert_int_equal(cbench_find_instances(".", in, 2, err, sizeof(err)), -SP_ETOOBIG);
	assert_int_equal(cbench_find_instances("BM_(", in, 16, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad regular expression"));
}

static void
test_registration_errors(void **state)
{
	struct cbench *b;
	char longname[CBENCH_NAME_MAX + 8];

	(void)state;
	b = cbench_register("BM_x", fn_noop);
	cbench_add_arg(b, 1);
	cbench_add_args(b, (const int64_t[]){1, 2}, 2); /* dimension mismatch */
	assert_int_equal(cbench_error_count(), 1);
	assert_non_null(strstr(cbench_error_at(0), "BM_x"));
	cbench_add_dense_range(b, 5, 1, 1);
	cbench_add_dense_range(b, 0, 5, 0);
	cbench_set_range_multiplier(b, 1);
	cbench_set_min_time(b, -1.0);
	cbench_set_repetitions(b, 0);
	cbench_set_iterations(b, 0);
	assert_int_equal(cbench_error_count(), 7);
	assert_null(cbench_register("BM_nofn", NULL)->fn);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_true(cbench_register(longname, fn_noop)->dead);
	assert_int_equal(cbench_error_count(), 9);
}

static void
test_instance_bound(void **state)
{
	struct cbench *b;

	(void)state;
	b = cbench_register("BM_many", fn_noop);
	cbench_add_dense_range(b, 1, CBENCH_INSTANCES_MAX, 1);
	assert_int_equal(cbench_error_count(), 0);
	assert_int_equal(b->n_argsets, CBENCH_INSTANCES_MAX);
	cbench_add_arg(b, 0);
	assert_int_equal(cbench_error_count(), 1);
	assert_int_equal(b->n_argsets, CBENCH_INSTANCES_MAX);
	b = cbench_register("BM_wide", fn_noop);
	cbench_add_dense_range(b, 0, CBENCH_INSTANCES_MAX, 1); /* one over */
	assert_int_equal(cbench_error_count(), 2);
	assert_int_equal(b->n_argsets, 0);
	cbench_add_dense_range(b, INT64_MIN, INT64_MAX, INT64_MAX); /* span past int64 */
	assert_int_equal(cbench_error_count(), 2);
	assert_int_equal(b->n_argsets, 3);
	assert_int_equal(b->argsets[0][0], INT64_MIN);
	assert_int_equal(b->argsets[1][0], -1);
	assert_int_equal(b->argsets[2][0], INT64_MAX - 1);
}

static void
test_family_bound(void **state)
{
	(void)state;
	for (int i = 0; i < CBENCH_FAMILIES_MAX; i++) {
		assert_false(cbench_register("BM_f", fn_noop)->dead);
	}
	struct cbench *dead = cbench_register("BM_over", fn_noop);
	assert_true(dead->dead);
	cbench_add_arg(dead, 1); /* accepted and ignored */
	assert_int_equal(cbench_family_count(), CBENCH_FAMILIES_MAX);
	assert_int_equal(cbench_error_count(), 1);
	assert_non_null(strstr(cbench_error_at(0), "CBENCH_FAMILIES_MAX"));
}

/* ---- flags ---- */

static int
parse(struct cbench_flags *f, char *const *env, int argc, ...)
{
	char *argv[32] = {"prog"};
	char err[256];
	va_list ap;
	int r;

	assert_true(argc < 31);
	va_start(ap, argc);
	for (int i = 1; i <= argc; i++) {
		argv[i] = va_arg(ap, char *);
	}
	va_end(ap);
	cbench_flags_default(f);
	r = cbench_flags_parse(f, argc + 1, argv, env, err, sizeof(err));
	if (r != 0) {
		print_message("flag error (expected in some cases): %s\n", err);
	}
	return r;
}

static void
test_flags_all(void **state)
{
	struct cbench_flags f;

	(void)state;
	assert_int_equal(parse(&f, NULL, 0), 0);
	assert_string_equal(f.filter, ".");
	assert_true(f.min_time_s == 0.5);
	assert_int_equal(f.repetitions, 1);
	assert_int_equal(f.format, CBENCH_FORMAT_CONSOLE);
	assert_int_equal(f.out_format, CBENCH_FORMAT_JSON);
	assert_int_equal(f.time_unit, CBENCH_NS);

	assert_int_equal(parse(&f, NULL, 12, "--benchmark_list_tests",
	                       "--benchmark_filter=BM_a|BM_b", "--benchmark_min_time=100x",
	                       "--benchmark_min_warmup_time=0.2", "--benchmark_repetitions=5",
	                       "--benchmark_report_aggregates_only=true",
	                       "--benchmark_display_aggregates_only=yes", "--benchmark_format=json",
	                       "--benchmark_out=/tmp/x.json", "--benchmark_out_format=csv",
	                       "--benchmark_context=a=1,b=two", "--benchmark_time_unit=us"),
	                 0);
	assert_true(f.list_tests);
	assert_string_equal(f.filter, "BM_a|BM_b");
	assert_int_equal(f.min_time_iterations, 100);
	assert_true(f.min_warmup_time_s == 0.2);
	assert_int_equal(f.repetitions, 5);
	assert_true(f.report_aggregates_only);
	assert_true(f.display_aggregates_only);
	assert_int_equal(f.format, CBENCH_FORMAT_JSON);
	assert_string_equal(f.out, "/tmp/x.json");
	assert_int_equal(f.out_format, CBENCH_FORMAT_CSV);
	assert_int_equal(f.n_context, 2);
	assert_string_equal(f.context[1].key, "b");
	assert_string_equal(f.context[1].value, "two");
	assert_int_equal(f.time_unit, CBENCH_US);

	assert_int_equal(
	        parse(&f, NULL, 2, "--benchmark_color=false", "--benchmark_counters_tabular"), 0);
	assert_int_equal(f.color, CBENCH_COLOR_OFF);
	assert_true(f.counters_tabular);
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_color=auto"), 0);
	assert_int_equal(f.color, CBENCH_COLOR_AUTO);

	assert_int_equal(parse(&f, NULL, 2, "--benchmark_list_tests=false", "--help"), 0);
	assert_false(f.list_tests);
	assert_true(f.help);
}

static void
test_flags_env(void **state)
{
	struct cbench_flags f;
	char *env[] = {"PATH=/bin", "BENCHMARK_FILTER=BM_env", "BENCHMARK_REPETITIONS=3",
	               "BENCHMARK_FORMAT=csv", NULL};
	char *bad_env[] = {"BENCHMARK_REPETITIONS=lots", NULL};

	(void)state;
	assert_int_equal(parse(&f, env, 0), 0);
	assert_string_equal(f.filter, "BM_env");
	assert_int_equal(f.repetitions, 3);
	assert_int_equal(f.format, CBENCH_FORMAT_CSV);
	/* The command line wins over the environment. */
	assert_int_equal(parse(&f, env, 1, "--benchmark_filter=BM_cli"), 0);
	assert_string_equal(f.filter, "BM_cli");
	assert_int_equal(parse(&f, bad_env, 0), -EINVAL);
}

static void
test_flags_bad(void **state)
{
	struct cbench_flags f;
	const char *bad[] = {
	        "--benchmark_bogus",
	        "--benchmark_filter",
	        "-benchmark_filter=x",
	        "positional",
	        "--benchmark_repetitions=0",
	        "--benchmark_repetitions=-2",
	        "--benchmark_repetitions=3x",
	        "--benchmark_repetitions=100000",
	        "--benchmark_format=xml",
	        "--benchmark_out_format=",
	        "--benchmark_out=",
	        "--benchmark_time_unit=ps",
	        "--benchmark_list_tests=maybe",
	        "--benchmark_min_time=fast",
	        "--benchmark_min_warmup_time=-1",
	        "--benchmark_context=novalue",
	        "--benchmark_context==v",
	        "--benchmark_context=a=1,a=2",
	        "--benchmark_context=a=1,",
	        "--benchmark_color=",
	        "--benchmark_color=sometimes",
	        "--benchmark_counters_tabular=2",
	};

	(void)state;
	for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse(&f, NULL, 1, bad[i]), -EINVAL);
	}
}

static void
test_min_time_parse(void **state)
{
	double s = -1.0;
	uint64_t it = 99;

	(void)state;
	assert_int_equal(cbench_parse_min_time("0.5s", &s, &it), 0);
	assert_true(s == 0.5);
	assert_int_equal(it, 0);
	assert_int_equal(cbench_parse_min_time("2", &s, &it), 0);
	assert_true(s == 2.0);
	assert_int_equal(cbench_parse_min_time("1e-3s", &s, &it), 0);
	assert_true(s == 1e-3);
	assert_int_equal(cbench_parse_min_time("100x", &s, &it), 0);
	assert_int_equal(it, 100);
	assert_int_equal(cbench_parse_min_time("1000000000x", &s, &it), 0);

	const char *bad[] = {"",     "s",   "x",   "0x", "-1",  "-1s",         "1.5x", "abc",
	                     "10xs", "inf", "nan", " 1", "1 s", "1000000001x", "+5x",  "1ss"};
	for (size_t i = 0; i < SP_ARRAY_SIZE(bad); i++) {
		assert_int_equal(cbench_parse_min_time(bad[i], &s, &it), -EINVAL);
	}
	assert_int_equal(cbench_parse_min_time(NULL, &s, &it), -EINVAL);
}

/* ---- running ---- */

static uint64_t bodies;
static int setups;
static int teardowns;

static void
fn_count(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
		bodies++;
	}
	cbench_set_items_processed(st, cbench_iterations(st) * 4);
}

static struct cbench_instance
only_instance(void)
{
	struct cbench_instance in[2];

	assert_int_equal(find_all(NULL, in, 2), 1);
	return in[0];
}

static void
test_loop_runs_requested_iterations(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[3];
	struct cbench_instance inst;

	(void)state;
	cbench_register("BM_count", fn_count);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=100x"), 0);
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_int_equal(bodies, 100);
	assert_int_equal(res[0].iterations, 100);
	assert_int_equal(res[0].skipped, CBENCH_SKIP_NONE);
	assert_int_equal(res[0].n_counters, 1);
	assert_string_equal(res[0].counters[0].name, "items_per_second");
	assert_true(res[0].counters[0].value > 0.0);

	/* Repetitions rerun the same count. */
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 3), 0);
	assert_int_equal(bodies, 300);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(res[i].iterations, 100);
		assert_int_equal(res[i].repetition_index, i);
		assert_int_equal(res[i].repetitions, 3);
	}
}

/* cycles_per_item is reported only with items processed, and only on an invariant TSC. */
static void
test_cycles_per_item(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance in[2];
	struct cbench *b;

	(void)state;
	b = cbench_register("BM_count", fn_count); /* sets items processed */
	cbench_set_cycles_per_item(b);
	b = cbench_register("BM_noitems", fn_noop);
	cbench_set_cycles_per_item(b);
	assert_int_equal(find_all(NULL, in, 2), 2);
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=1000x"), 0);
	assert_int_equal(cbench_run_instance(&in[0], &f, res, 1), 0);
	if (cbench_tsc_invariant()) {
		assert_int_equal(res[0].n_counters, 2);
		assert_string_equal(res[0].counters[0].name, "cycles_per_item");
		assert_true(res[0].counters[0].value > 0.0);
	} else {
		assert_int_equal(res[0].n_counters, 1);
	}
	assert_string_equal(res[0].counters[res[0].n_counters - 1].name, "items_per_second");
	assert_int_equal(cbench_run_instance(&in[1], &f, res, 1), 0);
	assert_int_equal(res[0].n_counters, 0);
}

static void
test_family_iterations_win(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance inst;

	(void)state;
	cbench_set_iterations(cbench_register("BM_count", fn_count), 7);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=100x"), 0);
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_int_equal(bodies, 7);
	assert_int_equal(res[0].iterations, 7);
}

static void
test_iterations_grow_to_min_time(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance inst;

	(void)state;
	cbench_register("BM_count", fn_count);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=0.02s"), 0);
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	/* The reported trial lasted min_time; earlier trials ran 1, 10, 100, ... */
	assert_true(res[0].cpu_s >= 0.02 || res[0].real_s >= 0.1);
	assert_true(res[0].iterations > 1);
	assert_true(bodies > res[0].iterations);
}

static void
fn_skip_before(struct cbench_state *st)
{
	cbench_skip_with_error(st, "no device");
	while (cbench_keep_running(st)) {
		bodies++;
	}
}

static uint64_t iterations_seen;

static void
fn_skip_inside(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
		if (++bodies == 3) {
			cbench_skip_with_error(st, "failed at 3");
		}
	}
	iterations_seen = cbench_iterations(st);
}

static void
fn_no_loop(struct cbench_state *st)
{
	(void)st;
}

static void
fn_skip_message(struct cbench_state *st)
{
	cbench_skip_with_message(st, "not on this machine");
	assert_true(cbench_skipped(st));
}

static void
run_one(const char *name, cbench_fn fn, struct cbench_result *res)
{
	struct cbench_flags f;
	struct cbench_instance inst;

	cbench_registry_reset();
	cbench_register(name, fn);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=10x"), 0);
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
}

static void
test_skips(void **state)
{
	struct cbench_result res;

	(void)state;
	run_one("BM_skip_before", fn_skip_before, &res);
	assert_int_equal(bodies, 0);
	assert_int_equal(res.skipped, CBENCH_SKIP_ERROR);
	assert_string_equal(res.message, "no device");
	assert_true(res.real_s == 0.0);

	run_one("BM_skip_inside", fn_skip_inside, &res);
	assert_int_equal(bodies, 3);
	assert_int_equal(iterations_seen, 3);
	assert_int_equal(res.skipped, CBENCH_SKIP_ERROR);
	assert_string_equal(res.message, "failed at 3");

	run_one("BM_no_loop", fn_no_loop, &res);
	assert_int_equal(res.skipped, CBENCH_SKIP_ERROR);
	assert_non_null(strstr(res.message, "did not run its loop"));

	run_one("BM_skip_message", fn_skip_message, &res);
	assert_int_equal(res.skipped, CBENCH_SKIP_MESSAGE);
	assert_string_equal(res.message, "not on this machine");
}

static void
fx_setup(struct cbench_state *st)
{
	setups++;
	cbench_set_user(st, &setups);
}

static void
fx_teardown(struct cbench_state *st)
{
	assert_ptr_equal(cbench_user(st), &setups);
	teardowns++;
}

static void
fn_fixture(struct cbench_state *st)
{
	assert_ptr_equal(cbench_user(st), &setups);
	assert_int_equal(cbench_range(st, 0), 42);
	while (cbench_keep_running(st)) {
		cbench_pause_timing(st);
		cbench_resume_timing(st);
	}
	cbench_set_label(st, "fixture");
	cbench_counter(st, "per_iter", 10.0, CBENCH_COUNTER_AVG_ITERATIONS);
}

static void
test_fixture_and_pause(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[2];
	struct cbench_instance inst;
	struct cbench *b;

	(void)state;
	b = cbench_register("BM_fixture", fn_fixture);
	cbench_add_arg(b, 42);
	cbench_set_fixture(b, fx_setup, fx_teardown);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=5x"), 0);
	setups = teardowns = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 2), 0);
	assert_int_equal(setups, 2);
	assert_int_equal(teardowns, 2);
	assert_string_equal(res[1].label, "fixture");
	assert_true(res[1].counters[0].value == 2.0);
}

static void
fn_many_counters(struct cbench_state *st)
{
	char name[32];

	while (cbench_keep_running(st)) {
	}
	for (int i = 0; i <= CBENCH_COUNTERS_MAX; i++) {
		snprintf(name, sizeof(name), "c%02d", i);
		cbench_counter(st, name, i, 0);
	}
}

static void
test_counter_bound(void **state)
{
	struct cbench_result res;

	(void)state;
	run_one("BM_many_counters", fn_many_counters, &res);
	assert_int_equal(res.skipped, CBENCH_SKIP_ERROR);
	assert_non_null(strstr(res.message, "more than"));
}

static void
test_counter_finish_and_predict(void **state)
{
	(void)state;
	assert_true(cbench_counter_finish(100.0, CBENCH_COUNTER_RATE, 10, 2.0, 1) == 50.0);
	assert_true(cbench_counter_finish(100.0, CBENCH_COUNTER_AVG_ITERATIONS, 10, 2.0, 1) ==
	            10.0);
	assert_true(cbench_counter_finish(3.0, CBENCH_COUNTER_ITER_INVARIANT, 10, 2.0, 1) == 30.0);
	assert_true(cbench_counter_finish(100.0, CBENCH_COUNTER_RATE | CBENCH_COUNTER_INVERT, 10,
	                                  2.0, 1) == 0.02);
	assert_true(cbench_counter_finish(8.0, CBENCH_COUNTER_AVG_THREADS, 10, 2.0, 4) == 2.0);
	assert_true(cbench_counter_finish(5.0, CBENCH_COUNTER_DEFAULT, 10, 2.0, 1) == 5.0);

	/* Insignificant trials grow tenfold; significant ones aim at 1.4 x min_time. */
	assert_int_equal(cbench_predict_iterations(1, 1e-9, 0.5), 10);
	assert_int_equal(cbench_predict_iterations(1000, 0.1, 0.5), 7000);
	assert_int_equal(cbench_predict_iterations(1, 0.6, 0.5), 2);
	assert_int_equal(cbench_predict_iterations(500000000, 0.01, 0.5), CBENCH_ITERATIONS_MAX);
}

static void
fn_manual(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
		cbench_set_iteration_time(st, 1e-3);
	}
}

static void
test_manual_time_and_unit(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance inst;

	(void)state;
	cbench_use_manual_time(cbench_register("BM_manual", fn_manual));
	inst = only_instance();
	assert_int_equal(
	        parse(&f, NULL, 2, "--benchmark_min_time=100x", "--benchmark_time_unit=ms"), 0);
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_true(fabs(res[0].real_s - 0.1) < 1e-9);
	assert_int_equal(res[0].unit, CBENCH_MS);
	/* Without a fixed count, manual time decides: 1 ms per iteration, 0.05 s minimum. */
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=0.05"), 0);
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_true(res[0].real_s >= 0.05);
	assert_true(res[0].iterations >= 50);
}

static void
fn_manual_count(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
		bodies++;
		cbench_set_iteration_time(st, 1e-3);
	}
}

/*
 * With manual time (1 ms per iteration) the growth is exact: the warm-up (0.01 s) runs
 * trials of 1 and 10 iterations; the measurement (0.05 s) starts from 10 and predicts
 * 10 * 0.05 * 1.4 / 0.01 = 70. Without the warm-up it runs 1, 10, 70.
 */
static void
test_warmup_runs_first(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance inst;

	(void)state;
	cbench_use_manual_time(cbench_register("BM_manual_count", fn_manual_count));
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=0.05"), 0);
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_int_equal(res[0].iterations, 70);
	assert_int_equal(bodies, 1 + 10 + 70);
	assert_int_equal(
	        parse(&f, NULL, 2, "--benchmark_min_time=0.05", "--benchmark_min_warmup_time=0.01"),
	        0);
	bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_int_equal(res[0].iterations, 70);
	assert_int_equal(bodies, 1 + 10 + 10 + 70);
}

static void
test_context_bound(void **state)
{
	struct cbench_flags f;
	char arg[CBENCH_CONTEXT_MAX * 8 + 64];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(arg + n, sizeof(arg) - n, "--benchmark_context=");
	for (int i = 0; i < CBENCH_CONTEXT_MAX; i++) {
		n += (size_t)snprintf(arg + n, sizeof(arg) - n, "%sk%d=v", i ? "," : "", i);
	}
	assert_int_equal(parse(&f, NULL, 1, arg), 0);
	assert_int_equal(f.n_context, CBENCH_CONTEXT_MAX);
	snprintf(arg + n, sizeof(arg) - n, ",over=1");
	assert_int_equal(parse(&f, NULL, 1, arg), -EINVAL);
}

static void
test_instance_name_bound(void **state)
{
	struct cbench_instance in[4];
	char err[128];
	char name[CBENCH_NAME_MAX - 4];
	struct cbench *b;

	(void)state;
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	b = cbench_register(name, fn_noop);
	cbench_add_arg(b, 123456); /* the family name fits, the instance name does not */
	assert_int_equal(cbench_error_count(), 0);
	assert_int_equal(cbench_find_instances(NULL, in, 4, err, sizeof(err)), -SP_ETOOBIG);
	assert_non_null(strstr(err, "longer than"));
}

static void
fn_bad_range(struct cbench_state *st)
{
	(void)cbench_range(st, 1); /* the instance has one argument */
	while (cbench_keep_running(st)) {
	}
}

/* Asking for a missing argument is a bug in the benchmark: the process aborts. */
static void
test_range_out_of_bounds_aborts(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance inst;
	int status = 0;
	pid_t pid;

	(void)state;
	cbench_add_arg(cbench_register("BM_bad_range", fn_bad_range), 5);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=1x"), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		(void)cbench_run_instance(&inst, &f, res, 1);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* ---- threads ---- */

static _Atomic uint64_t thread_bodies;
static _Atomic unsigned thread_seen; /* bit i: thread i ran */

static void
fn_threads(struct cbench_state *st)
{
	int idx = cbench_thread_index(st);

	assert_true(idx >= 0);
	assert_true(idx < cbench_threads(st));
	thread_seen |= 1u << idx;
	while (cbench_keep_running(st)) {
		thread_bodies++;
	}
	cbench_counter(st, "one", 1.0, CBENCH_COUNTER_DEFAULT);
	cbench_counter(st, "avg", 1.0, CBENCH_COUNTER_AVG_THREADS);
	cbench_set_items_processed(st, cbench_iterations(st));
}

static void
test_thread_names(void **state)
{
	struct cbench_instance in[16];
	struct cbench *b;

	(void)state;
	b = cbench_register("BM_t", fn_threads);
	cbench_add_arg(b, 7);
	cbench_add_arg(b, 9);
	cbench_add_threads(b, 1);
	cbench_add_thread_range(b, 2, 6);
	assert_int_equal(cbench_error_count(), 0);
	assert_int_equal(find_all(NULL, in, 16), 8);
	assert_string_equal(in[0].name, "BM_t/7/threads:1");
	assert_string_equal(in[1].name, "BM_t/7/threads:2");
	assert_string_equal(in[2].name, "BM_t/7/threads:4");
	assert_string_equal(in[3].name, "BM_t/7/threads:6");
	assert_string_equal(in[4].name, "BM_t/9/threads:1");
	assert_int_equal(in[3].threads, 6);
	assert_int_equal(in[7].per_family_instance_index, 7);
	cbench_add_threads(b, 0);
	cbench_add_threads(b, CBENCH_THREADS_MAX + 1);
	cbench_add_thread_range(b, 4, 2);
	assert_int_equal(cbench_error_count(), 3);
	for (int i = (int)b->n_thread_counts; i < CBENCH_THREAD_COUNTS_MAX; i++) {
		cbench_add_threads(b, 1);
	}
	assert_int_equal(cbench_error_count(), 3);
	cbench_add_threads(b, 1);
	assert_int_equal(cbench_error_count(), 4);
}

static void
test_threads_run_together(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[2];
	struct cbench_instance inst;

	(void)state;
	cbench_add_threads(cbench_register("BM_t", fn_threads), 4);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=100x"), 0);
	thread_bodies = 0;
	thread_seen = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 2), 0);
	assert_int_equal(thread_bodies, 2 * 4 * 100);
	assert_int_equal(thread_seen, 0xf);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(res[i].skipped, CBENCH_SKIP_NONE);
		assert_int_equal(res[i].threads, 4);
		assert_int_equal(res[i].iterations, 400); /* over all threads, as GB */
		assert_string_equal(res[i].counters[0].name, "avg");
		assert_true(res[i].counters[0].value == 1.0); /* 4 summed, / 4 threads */
		assert_string_equal(res[i].counters[2].name, "one");
		assert_true(res[i].counters[2].value == 4.0);
	}
}

static void
fn_threads_fail(struct cbench_state *st)
{
	if (cbench_thread_index(st) == 1) {
		return; /* never runs its loop */
	}
	if (cbench_thread_index(st) == 2) {
		cbench_skip_with_error(st, "thread 2 failed");
	}
	while (cbench_keep_running(st)) {
		thread_bodies++;
	}
}

/* A thread that fails or never loops must not leave the others waiting at the barrier. */
static void
test_threads_fail_without_deadlock(void **state)
{
	struct cbench_flags f;
	struct cbench_result res[1];
	struct cbench_instance inst;

	(void)state;
	cbench_add_threads(cbench_register("BM_tf", fn_threads_fail), 3);
	inst = only_instance();
	assert_int_equal(parse(&f, NULL, 1, "--benchmark_min_time=50x"), 0);
	thread_bodies = 0;
	assert_int_equal(cbench_run_instance(&inst, &f, res, 1), 0);
	assert_int_equal(thread_bodies, 50);
	assert_int_equal(res[0].skipped, CBENCH_SKIP_ERROR);
	assert_non_null(strstr(res[0].message, "did not run its loop"));
}

/* ---- aggregates ---- */

static void
test_stats(void **state)
{
	double v[] = {2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0};
	double odd[] = {9.0, 1.0, 5.0};

	(void)state;
	assert_true(cbench_stat_mean(v, 8) == 5.0);
	assert_true(cbench_stat_median(v, 8) == 4.5);
	assert_true(cbench_stat_median(odd, 3) == 5.0);
	assert_true(odd[0] == 9.0); /* the input is not reordered */
	assert_true(fabs(cbench_stat_stddev(v, 8) - sqrt(32.0 / 7.0)) < 1e-12);
	assert_true(fabs(cbench_stat_cv(v, 8) - sqrt(32.0 / 7.0) / 5.0) < 1e-12);
	assert_true(cbench_stat_stddev(v, 1) == 0.0);
	assert_true(cbench_stat_mean(v, 0) == 0.0);
}

static void
test_aggregates(void **state)
{
	struct cbench_instance inst = {.n_args = 0};
	struct cbench_result runs[3];
	struct cbench_result agg[4];

	(void)state;
	snprintf(inst.name, sizeof(inst.name), "BM_agg/4");
	memset(runs, 0, sizeof(runs));
	for (int i = 0; i < 3; i++) {
		runs[i].inst = &inst;
		runs[i].iterations = 1000;
		runs[i].repetitions = 3;
		runs[i].threads = 1;
		runs[i].real_s = 1.0 + i; /* 1, 2, 3 s for 1000 iterations */
		runs[i].cpu_s = 2.0;
		runs[i].n_counters = 1;
		snprintf(runs[i].counters[0].name, CBENCH_COUNTER_NAME_MAX, "items_per_second");
		runs[i].counters[0].value = 100.0 * (i + 1);
		runs[i].counters[0].flags = CBENCH_COUNTER_RATE;
		snprintf(runs[i].label, sizeof(runs[i].label), "same");
	}
	assert_int_equal(cbench_aggregates(runs, 3, agg), 4);
	assert_string_equal(agg[0].name, "BM_agg/4_mean");
	assert_string_equal(agg[3].name, "BM_agg/4_cv");
	assert_int_equal(agg[0].iterations, 3);
	/* Rescaled by repetitions/iterations, so per-"iteration" is the per-iteration mean. */
	assert_true(fabs(agg[0].real_s / agg[0].iterations - 2.0 / 1000) < 1e-15);
	assert_true(fabs(agg[1].real_s * 1000 / 3 - 2.0) < 1e-12);
	assert_true(fabs(agg[2].real_s * 1000 / 3 - 1.0) < 1e-12);
	assert_true(agg[3].aggregate_percent);
	assert_true(fabs(agg[3].real_s - 0.5) < 1e-12);
	assert_true(agg[3].cpu_s == 0.0);
	assert_true(agg[0].counters[0].value == 200.0);
	assert_string_equal(agg[2].label, "same");

	/* Runs that failed are left out; fewer than two good runs make no aggregates. */
	runs[1].skipped = CBENCH_SKIP_ERROR;
	assert_int_equal(cbench_aggregates(runs, 3, agg), 4);
	assert_true(agg[0].counters[0].value == 200.0);
	runs[2].skipped = CBENCH_SKIP_ERROR;
	assert_int_equal(cbench_aggregates(runs, 3, agg), 0);
	assert_int_equal(cbench_aggregates(runs, 1, agg), 0);
}

/* ---- formats ---- */

static void
expect_escape(const char *in, const char *want)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	cbench_json_escape(fp, in);
	fclose(fp);
	assert_string_equal(buf, want);
	free(buf);
}

static void
test_json_escape(void **state)
{
	(void)state;
	expect_escape("plain BM_get/8", "plain BM_get/8");
	expect_escape("a\"b\\c", "a\\\"b\\\\c");
	expect_escape("\b\f\n\r\t", "\\b\\f\\n\\r\\t");
	expect_escape("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
	expect_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	expect_escape("bad \xff end", "bad \\ufffd end");
	expect_escape("cut \xc3", "cut \\ufffd");
	expect_escape("overlong \xc0\xaf", "overlong \\ufffd\\ufffd");
	expect_escape("surrogate \xed\xa0\x80", "surrogate \\ufffd\\ufffd\\ufffd");
}

static void
expect_human(double v, bool iec, const char *want)
{
	char buf[64];

	cbench_human_number(buf, sizeof(buf), v, iec);
	assert_string_equal(buf, want);
}

static void
test_number_formats(void **state)
{
	char buf[64];

	(void)state;
	/* Values checked against Google Benchmark 1.7's console output. */
	expect_human(1.2533521645722697e+09, false, "1.25335G");
	expect_human(1045.15e6, false, "1045.15M");
	expect_human(8.62078 * 1024 * 1024 * 1024, true, "8.62078G");
	expect_human(2048.0, true, "2K");
	expect_human(1e-9 * 3.436, false, "3.436n");
	expect_human(219.591, false, "219.591");
	expect_human(8.0, false, "8");
	expect_human(0.002, false, "2m");
	expect_human(0.001, false, "1000u"); /* GB shows up to 1.1 with the smaller prefix */
	expect_human(0.0, false, "0");
	expect_human(-2500.0, false, "-2.5k");
	cbench_format_time(buf, sizeof(buf), 0.882);
	assert_string_equal(buf, "     0.882");
	cbench_format_time(buf, sizeof(buf), 5.91);
	assert_string_equal(buf, "      5.91");
	cbench_format_time(buf, sizeof(buf), 23.9);
	assert_string_equal(buf, "      23.9");
	cbench_format_time(buf, sizeof(buf), 218.0);
	assert_string_equal(buf, "       218");
	cbench_format_time(buf, sizeof(buf), 2e10);
	assert_string_equal(buf, "2.0000e+10");
	assert_string_equal(cbench_unit_name(CBENCH_US), "us");
	assert_true(cbench_unit_multiplier(CBENCH_MS) == 1e3);
}

/* A synthetic run: 1000 iterations in 2 ms real, 1 ms CPU, one rate counter. */
static void
fake_result(struct cbench_result *r, const struct cbench_instance *inst)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", inst->name);
	r->inst = inst;
	r->repetitions = 1;
	r->threads = 1;
	r->iterations = 1000;
	r->real_s = 2e-3;
	r->cpu_s = 1e-3;
	r->unit = CBENCH_NS;
	r->n_counters = 1;
	snprintf(r->counters[0].name, CBENCH_COUNTER_NAME_MAX, "items_per_second");
	r->counters[0].value = 2.5e6;
	r->counters[0].flags = CBENCH_COUNTER_RATE;
	snprintf(r->label, sizeof(r->label), "a \"label\"");
}

static char *
render(enum cbench_format format, bool tabular, const struct cbench_result *runs, size_t n)
{
	struct cbench_reporter rep;
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	cbench_report_begin(&rep, fp, format, 12);
	cbench_report_console_options(&rep, false, tabular);
	cbench_report_runs(&rep, runs, n);
	cbench_report_end(&rep);
	fclose(fp);
	return buf;
}

static void
test_report_layouts(void **state)
{
	struct cbench_instance inst = {.family_index = 2, .per_family_instance_index = 1};
	struct cbench_result runs[2];
	char *text;

	(void)state;
	snprintf(inst.name, sizeof(inst.name), "BM_fmt/8");
	fake_result(&runs[0], &inst);
	fake_result(&runs[1], &inst);
	runs[1].skipped = CBENCH_SKIP_ERROR;
	snprintf(runs[1].message, sizeof(runs[1].message), "broke");

	text = render(CBENCH_FORMAT_CONSOLE, false, runs, 2);
	/* Name column 12 wide, then GB's " %13s %15s %12s" header; 71 dashes. */
	assert_string_equal(
	        text, "-----------------------------------------------------------------------\n"
	              "Benchmark             Time             CPU   Iterations UserCounters...\n"
	              "-----------------------------------------------------------------------\n"
	              "BM_fmt/8           2000 ns         1000 ns         1000 "
	              "items_per_second=2.5M/s a \"label\"\n"
	              "BM_fmt/8     ERROR OCCURRED: 'broke'\n");
	free(text);

	text = render(CBENCH_FORMAT_CONSOLE, true, runs, 1);
	assert_non_null(strstr(text, "Iterations items_per_second\n"));
	assert_non_null(strstr(text, "      1000           2.5M/s a"));
	free(text);

	text = render(CBENCH_FORMAT_CSV, false, runs, 2);
	assert_string_equal(text, "name,iterations,real_time,cpu_time,time_unit,bytes_per_second,"
	                          "items_per_second,label,error_occurred,error_message\n"
	                          "\"BM_fmt/8\",1000,2000,1000,ns,,2.5e+06,\"a \"\"label\"\"\",,\n"
	                          "\"BM_fmt/8\",,,,,,,,true,\"broke\"\n");
	free(text);

	text = render(CBENCH_FORMAT_JSON, false, runs, 1);
	assert_non_null(strstr(text, "      \"name\": \"BM_fmt/8\",\n"
	                             "      \"family_index\": 2,\n"
	                             "      \"per_family_instance_index\": 1,\n"));
	assert_non_null(strstr(text, "      \"real_time\": 2.0000000000000000e+03,\n"));
	assert_non_null(strstr(text, "      \"items_per_second\": 2.5000000000000000e+06,\n"
	                             "      \"label\": \"a \\\"label\\\"\"\n    }"));
	free(text);
}

/* ---- the whole program ---- */

static void
fn_main(struct cbench_state *st)
{
	while (cbench_keep_running(st)) {
		bodies++;
	}
	cbench_set_bytes_processed(st, cbench_iterations(st));
	cbench_set_label(st, "tab\there");
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	static char buf[1 << 16];
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void
test_main_writes_json_file(void **state)
{
	char path[] = "/tmp/cbench-test-XXXXXX";
	char out_flag[64];
	int fd = mkstemp(path);
	char *doc;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	snprintf(out_flag, sizeof(out_flag), "--benchmark_out=%s", path);
	cbench_add_arg(cbench_register("BM_main", fn_main), 16);
	cbench_register("BM_other", fn_main);
	char *argv[] = {"test_cbench",
	                "--benchmark_filter=BM_main",
	                "--benchmark_min_time=50x",
	                "--benchmark_repetitions=2",
	                "--benchmark_format=csv",
	                "--benchmark_context=suite=unit",
	                out_flag,
	                NULL};
	bodies = 0;
	assert_int_equal(cbench_main(7, argv), 0);
	assert_int_equal(bodies, 100);
	doc = slurp(path);
	assert_non_null(strstr(doc, "\"json_schema_version\": 1,"));
	assert_non_null(strstr(doc, "\"suite\": \"unit\""));
	assert_non_null(strstr(doc, "\"name\": \"BM_main/16_cv\""));
	assert_non_null(strstr(doc, "\"aggregate_unit\": \"percentage\""));
	assert_non_null(strstr(doc, "\"label\": \"tab\\there\""));
	assert_non_null(strstr(doc, "\"iterations\": 50,"));
	assert_null(strstr(doc, "BM_other"));
	assert_non_null(strstr(doc, "\n  ]\n}\n"));

	/* --benchmark_report_aggregates_only: the file holds only the aggregates. */
	char *agg_only[] = {"test_cbench",
	                    "--benchmark_filter=BM_main",
	                    "--benchmark_min_time=10x",
	                    "--benchmark_repetitions=3",
	                    "--benchmark_report_aggregates_only=true",
	                    "--benchmark_format=json",
	                    out_flag,
	                    NULL};
	assert_int_equal(cbench_main(7, agg_only), 0);
	doc = slurp(path);
	assert_null(strstr(doc, "\"run_type\": \"iteration\""));
	assert_non_null(strstr(doc, "\"name\": \"BM_main/16_median\""));
	unlink(path);

	/* Bad flags, a missing output directory and a filter matching nothing fail. */
	char *bad[] = {"test_cbench", "--benchmark_nope", NULL};
	assert_int_equal(cbench_main(2, bad), 1);
	char *nodir[] = {"test_cbench", "--benchmark_out=/nonexistent/dir/x.json", NULL};
	assert_int_equal(cbench_main(2, nodir), 1);
	char *none[] = {"test_cbench", "--benchmark_filter=^$", NULL};
	assert_int_equal(cbench_main(2, none), 1);
	char *list[] = {"test_cbench", "--benchmark_list_tests", NULL};
	assert_int_equal(cbench_main(2, list), 0);
	/* A registration error stops the run before anything runs. */
	cbench_set_repetitions(cbench_register("BM_bad", fn_main), -1);
	bodies = 0;
	char *run[] = {"test_cbench", "--benchmark_min_time=1x", NULL};
	assert_int_equal(cbench_main(2, run), 1);
	assert_int_equal(bodies, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_macros_register_at_load),
	        cmocka_unit_test_setup(test_range_expansion, reset),
	        cmocka_unit_test_setup(test_range_errors, reset),
	        cmocka_unit_test_setup(test_instance_names, reset),
	        cmocka_unit_test_setup(test_filter, reset),
	        cmocka_unit_test_setup(test_registration_errors, reset),
	        cmocka_unit_test_setup(test_instance_bound, reset),
	        cmocka_unit_test_setup(test_family_bound, reset),
	        cmocka_unit_test_setup(test_flags_all, reset),
	        cmocka_unit_test_setup(test_flags_env, reset),
	        cmocka_unit_test_setup(test_flags_bad, reset),
	        cmocka_unit_test_setup(test_min_time_parse, reset),
	        cmocka_unit_test_setup(test_loop_runs_requested_iterations, reset),
	        cmocka_unit_test_setup(test_family_iterations_win, reset),
	        cmocka_unit_test_setup(test_cycles_per_item, reset),
	        cmocka_unit_test_setup(test_iterations_grow_to_min_time, reset),
	        cmocka_unit_test_setup(test_skips, reset),
	        cmocka_unit_test_setup(test_thread_names, reset),
	        cmocka_unit_test_setup(test_threads_run_together, reset),
	        cmocka_unit_test_setup(test_threads_fail_without_deadlock, reset),
	        cmocka_unit_test_setup(test_range_out_of_bounds_aborts, reset),
	        cmocka_unit_test_setup(test_manual_time_and_unit, reset),
	        cmocka_unit_test_setup(test_warmup_runs_first, reset),
	        cmocka_unit_test_setup(test_context_bound, reset),
	        cmocka_unit_test_setup(test_instance_name_bound, reset),
	        cmocka_unit_test_setup(test_fixture_and_pause, reset),
	        cmocka_unit_test_setup(test_counter_bound, reset),
	        cmocka_unit_test_setup(test_counter_finish_and_predict, reset),
	        cmocka_unit_test_setup(test_stats, reset),
	        cmocka_unit_test_setup(test_aggregates, reset),
	        cmocka_unit_test_setup(test_json_escape, reset),
	        cmocka_unit_test_setup(test_number_formats, reset),
	        cmocka_unit_test_setup(test_report_layouts, reset),
	        cmocka_unit_test_setup_teardown(test_main_writes_json_file, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
