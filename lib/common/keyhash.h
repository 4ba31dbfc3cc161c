/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one key hash of the system. Clients, the dataplane and the control plane must agree
 * on it, so everything goes through these two functions.
 *   partition = sp_key_partition(hash, P)  uses the low bits;
 *   tables inside a partition use the high 32 bits (sp_key_hash_hi) so the two are
 *   independent.
 * XXH3 (Debian's libxxhash) is fast on short keys and has good dispersion.
 */
#ifndef SP_COMMON_KEYHASH_H
#define SP_COMMON_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
/* GCC 12 at -O3 misreads XXH3's short-key loads after inlining as out of bounds. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <xxhash.h>
#pragma GCC diagnostic pop

static inline uint64_t
sp_key_hash(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

/* partitions must be a power of two. */
static inline uint32_t
sp_key_partition(uint64_t hash, uint32_t partitions)
{
	return (uint32_t)hash & (partitions - 1);
}

static inline uint32_t
sp_key_hash_hi(uint64_t hash)
{
	return (uint32_t)(hash >> 32);
}

#endif
