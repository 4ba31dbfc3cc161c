/* SPDX-License-Identifier: BSD-3-Clause */
/* The seed of a random unit test: SP_TEST_SEED when set, else from the clock; printed so
 * that a failure can be replayed. */
#ifndef SP_TEST_SEED_H
#define SP_TEST_SEED_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t
test_seed(const char *test_name)
{
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed;

	if (env != NULL && *env != '\0') {
		seed = strtoull(env, NULL, 0);
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
	}
	printf("%s: seed %" PRIu64 " (replay: SP_TEST_SEED=%" PRIu64 ")\n", test_name, seed, seed);
	fflush(stdout);
	return seed;
}

#endif
