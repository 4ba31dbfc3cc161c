/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A seed must replay exactly: the same options give the same run, counter for counter,
 * and different seeds give different runs. Without this a printed failing seed would
 * be worthless. SP_TEST_SEED picks the seed (default 7); it is printed.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim_cluster.h"

static uint64_t
test_seed(void)
{
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : 7;

	printf("sim-replay: seed %" PRIu64 " (replay with SP_TEST_SEED=%" PRIu64 ")\n", seed, seed);
	return seed;
}

static void
assert_same_run(const struct sim_result *a, const struct sim_result *b)
{
	assert_int_equal(a->violated, b->violated);
	assert_int_equal(a->ticks, b->ticks);
	assert_int_equal(a->events, b->events);
	assert_int_equal(a->checks, b->checks);
	assert_int_equal(a->msgs_delivered, b->msgs_delivered);
	assert_int_equal(a->crashes, b->crashes);
	assert_int_equal(a->writes_acked, b->writes_acked);
	assert_int_equal(a->reads_ok, b->reads_ok);
	assert_int_equal(a->conf_changes, b->conf_changes);
	assert_int_equal(a->compactions, b->compactions);
	assert_string_equal(a->property, b->property);
}

static void
test_same_seed_same_run(void **state)
{
	(void)state;
	uint64_t seed = test_seed();

	for (unsigned nodes = 3; nodes <= 7; nodes += 2) {
		struct sim_opts o = {.seed = seed, .nodes = nodes, .steps = 600};
		struct sim_result a, b;

		assert_int_equal(sim_run(&o, &a), 0);
		assert_int_equal(sim_run(&o, &b), 0);
		assert_same_run(&a, &b);
		assert_false(a.violated);
		/* The run did something: events, deliveries and client traffic. */
		assert_true(a.events > 1000);
		assert_true(a.msgs_delivered > 100);
	}
}

static void
test_different_seeds_differ(void **state)
{
	(void)state;
	struct sim_opts o = {.seed = 1, .nodes = 3, .steps = 600};
	struct sim_result a, b;

	assert_int_equal(sim_run(&o, &a), 0);
	o.seed = 2;
	assert_int_equal(sim_run(&o, &b), 0);
	assert_true(a.events != b.events || a.msgs_delivered != b.msgs_delivered);
}

static void
test_bad_options_refused(void **state)
{
	(void)state;
	struct sim_result r;
	struct sim_opts o = {.seed = 1, .nodes = 2, .steps = 10};

	assert_int_equal(sim_run(&o, &r), -EINVAL);
	o.nodes = SIM_VOTERS_MAX + 1;
	assert_int_equal(sim_run(&o, &r), -EINVAL);
	o.nodes = 3;
	o.steps = 0;
	assert_int_equal(sim_run(&o, &r), -EINVAL);
	o.steps = SIM_STEPS_MAX + 1;
	assert_int_equal(sim_run(&o, &r), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_same_seed_same_run),
	        cmocka_unit_test(test_different_seeds_differ),
	        cmocka_unit_test(test_bad_options_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
