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

#include "../test_seed.h"
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
