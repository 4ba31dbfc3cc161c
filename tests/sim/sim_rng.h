/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The simulator's only source of randomness: xoshiro256** seeded through splitmix64.
 * Every user receives a generator explicitly, so one seed replays a whole run exactly.
 */
#ifndef SP_SIM_RNG_H
#define SP_SIM_RNG_H

#include <stdbool.h>
#include <stdint.h>

#define SIM_PPM 1000000u /* "per million": the unit of every probability in the simulator */

struct sim_rng {
	uint64_t s[4];
};

/* Seeds rng from a 64-bit seed; every seed (0 included) gives a valid state. */
void sim_rng_seed(struct sim_rng *rng, uint64_t seed);

/* The next 64 random bits. */
uint64_t sim_rng_next(struct sim_rng *rng);

/* Uniform in [0, bound); bound must be > 0. Unbiased (rejection on the low product). */
uint64_t sim_rng_below(struct sim_rng *rng, uint64_t bound);

/* Uniform in [lo, hi], lo <= hi. */
uint64_t sim_rng_range(struct sim_rng *rng, uint64_t lo, uint64_t hi);

/* True with probability ppm / SIM_PPM; ppm 0 never draws, so it never perturbs the stream. */
bool sim_rng_chance(struct sim_rng *rng, uint32_t ppm);

/* A child generator for a sub-system, derived from (and advancing) the parent. */
void sim_rng_fork(struct sim_rng *parent, struct sim_rng *child);

#endif
