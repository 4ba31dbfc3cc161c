/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Key choice for the load generator: a fast seeded random stream, uniform and zipf key
 * ranks, and key names. Pure (no DPDK); the zipf table is built once at start-up so that
 * drawing a key costs a table read and a multiply, never a pow() or a search.
 */
#ifndef SP_BENCH_LG_DIST_H
#define SP_BENCH_LG_DIST_H

#include <stdint.h>

/*
 * Entries of the zipf inverse-CDF table. Entry j holds the first rank whose cumulative
 * probability reaches j / LG_ZIPF_TABLE_SIZE; a draw picks an entry, then a rank between it
 * and the next uniformly, so the head is exact and the tail (where one entry spans many
 * ranks of nearly equal probability) is approximated within a step of 1 / 2^20.
 */
#define LG_ZIPF_TABLE_BITS 20u
#define LG_ZIPF_TABLE_SIZE (1u << LG_ZIPF_TABLE_BITS)

/* xorshift64* state; never zero. */
struct lg_rng {
	uint64_t s;
};

struct lg_zipf {
	uint32_t *table; /* LG_ZIPF_TABLE_SIZE + 1 entries; the last is keys */
	uint32_t keys;
	double s;
};

/* Seeds the stream (seed 0 is mapped to a fixed non-zero state). Can't fail. */
void lg_rng_seed(struct lg_rng *r, uint64_t seed);

static inline uint64_t
lg_rng_next(struct lg_rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* A uniform integer in 0 .. n-1 (n >= 1), by multiply-high: no division. */
static inline uint32_t
lg_rng_below(struct lg_rng *r, uint32_t n)
{
	return (uint32_t)(((lg_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/*
 * Builds the table for ranks 0 .. keys-1 with P(rank k) proportional to 1/(k+1)^s. keys
 * must be at least 2. Allocates the table (start-up only). Returns 0 or -ENOMEM.
 */
int lg_zipf_init(struct lg_zipf *z, uint32_t keys, double s);
void lg_zipf_free(struct lg_zipf *z);

/* Draws a rank in 0 .. keys-1; rank 0 is the most popular. */
static inline uint32_t
lg_zipf_draw(const struct lg_zipf *z, struct lg_rng *r)
{
	uint64_t x = lg_rng_next(r);
	uint32_t j = (uint32_t)(x >> (64 - LG_ZIPF_TABLE_BITS));
	uint32_t lo = z->table[j];
	uint32_t span = z->table[j + 1] - lo;

	if (span <= 1)
		return lo;
	return lo + (uint32_t)(((x & 0xffffffffull) * span) >> 32);
}

/*
 * Writes the name of key index into out: 'k' then the index in decimal, zero-padded to
 * exactly key_size bytes (no NUL). key_size must hold 'k' and every digit. Can't fail.
 */
void lg_key_name(uint8_t *out, uint32_t key_size, uint32_t index);

#endif
