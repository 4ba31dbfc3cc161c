/* SPDX-License-Identifier: BSD-3-Clause */
#include "sim_rng.h"

#include <stddef.h>

#include "common/verify.h"

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t
rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
sim_rng_seed(struct sim_rng *rng, uint64_t seed)
{
	uint64_t x = seed;

	ASSERT(rng != NULL);
	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
	/* splitmix64 is a bijection of distinct counters, so the state can't be all zero. */
	VERIFY((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) != 0);
}

uint64_t
sim_rng_next(struct sim_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Lemire's multiply-shift with rejection: no modulo bias, usually one draw. */
uint64_t
sim_rng_below(struct sim_rng *rng, uint64_t bound)
{
	VERIFY(bound > 0);
	unsigned __int128 m = (unsigned __int128)sim_rng_next(rng) * bound;
	uint64_t low = (uint64_t)m;

	if (low < bound) {
		uint64_t threshold = -bound % bound;

		while (low < threshold) {
			m = (unsigned __int128)sim_rng_next(rng) * bound;
			low = (uint64_t)m;
		}
	}
	uint64_t r = (uint64_t)(m >> 64);

	ASSERT(r < bound);
	return r;
}

uint64_t
sim_rng_range(struct sim_rng *rng, uint64_t lo, uint64_t hi)
{
	VERIFY(lo <= hi);
	if (lo == 0 && hi == UINT64_MAX)
		return sim_rng_next(rng);
	return lo + sim_rng_below(rng, hi - lo + 1);
}

bool
sim_rng_chance(struct sim_rng *rng, uint32_t ppm)
{
	ASSERT(ppm <= SIM_PPM);
	if (ppm == 0)
		return false;
	if (ppm >= SIM_PPM)
		return true;
	return sim_rng_below(rng, SIM_PPM) < ppm;
}

void
sim_rng_fork(struct sim_rng *parent, struct sim_rng *child)
{
	ASSERT(parent != child);
	sim_rng_seed(child, sim_rng_next(parent));
}
