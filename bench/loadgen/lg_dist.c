/* SPDX-License-Identifier: BSD-3-Clause */
#include "lg_dist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/verify.h"

void
lg_rng_seed(struct lg_rng *r, uint64_t seed)
{
	/* One splitmix64 step spreads small seeds over all 64 bits. */
	uint64_t z = seed + 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	r->s = z != 0 ? z : 0x2545F4914F6CDD1Dull;
	ASSERT(r->s != 0);
}

int
lg_zipf_init(struct lg_zipf *z, uint32_t keys, double s)
{
	VERIFY(keys >= 2);
	VERIFY(s > 0.0);
	memset(z, 0, sizeof(*z));
	z->table = malloc(((size_t)LG_ZIPF_TABLE_SIZE + 1) * sizeof(z->table[0]));
	if (z->table == NULL)
		return -ENOMEM;
	z->keys = keys;
	z->s = s;

	double total = 0.0;
	for (uint32_t k = 0; k < keys; k++)
		total += pow((double)k + 1.0, -s);

	/* Walk the CDF once, filling every table entry whose threshold it passes. */
	double cdf = 0.0;
	uint32_t j = 0;
	for (uint32_t k = 0; k < keys && j < LG_ZIPF_TABLE_SIZE; k++) {
		double next = cdf + pow((double)k + 1.0, -s) / total;
		while (j < LG_ZIPF_TABLE_SIZE && (double)j / LG_ZIPF_TABLE_SIZE < next) {
			z->table[j] = k;
			j++;
		}
		cdf = next;
	}
	/* Rounding can leave the last thresholds unreached: they belong to the last rank. */
	for (; j < LG_ZIPF_TABLE_SIZE; j++)
		z->table[j] = keys - 1;
	z->table[LG_ZIPF_TABLE_SIZE] = keys;
	ASSERT(z->table[0] == 0);
	ASSERT(z->table[LG_ZIPF_TABLE_SIZE - 1] < keys);
	return 0;
}

void
lg_zipf_free(struct lg_zipf *z)
{
	free(z->table);
	z->table = NULL;
}

void
lg_key_name(uint8_t *out, uint32_t key_size, uint32_t index)
{
	ASSERT(key_size >= 2);
	out[0] = 'k';
	for (uint32_t i = key_size - 1; i >= 1; i--) {
		out[i] = (uint8_t)('0' + index % 10);
		index /= 10;
	}
	ASSERT(index == 0); /* the name had room for every digit */
}
