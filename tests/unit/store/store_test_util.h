/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers shared by the store's unit tests. */
#ifndef SP_TESTS_STORE_UTIL_H
#define SP_TESTS_STORE_UTIL_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/keyhash.h"
#include "dataplane/store/store.h"

/* Builds a store of bytes on malloc'd memory (free() the returned pointer). */
static inline struct store *
test_store_new(size_t bytes, uint32_t item_bytes_avg)
{
	struct store_params p = {.bytes = bytes, .item_bytes_avg = item_bytes_avg};
	size_t need = store_memsize(&p);

	if (need == 0)
		return NULL;
	void *mem = aligned_alloc(STORE_MEM_ALIGN, need);
	if (mem == NULL)
		return NULL;
	struct store *s = store_init(mem, need, &p);
	if (s == NULL)
		free(mem);
	return s;
}

/* A key over a caller-owned buffer, hashed with the system's key hash. */
static inline struct store_key
test_key(const void *data, size_t len)
{
	struct store_key k = {.data = data, .len = (uint32_t)len, .hash = sp_key_hash(data, len)};

	return k;
}

static inline struct store_key
test_key_str(const char *s)
{
	return test_key(s, strlen(s));
}

/* Seed from SP_TEST_SEED, else from the clock; printed so a failure can be replayed. */
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

/* splitmix64: small, seedable, good enough for test data. */
static inline uint64_t
test_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif
