/* SPDX-License-Identifier: BSD-3-Clause */
#include "lg_hist.h"

#include <math.h>
#include <string.h>

#include "common/verify.h"

void
lg_hist_reset(struct lg_hist *h)
{
	ASSERT(h != NULL);
	memset(h, 0, sizeof(*h));
}

uint64_t
lg_hist_bucket_low(uint32_t i)
{
	ASSERT(i < LG_HIST_BUCKETS);
	if (i < LG_HIST_LINEAR_MAX)
		return i;
	uint32_t k = i - LG_HIST_LINEAR_MAX;
	uint32_t msb = k / (1u << LG_HIST_SUB_BITS) + LG_HIST_SUB_BITS + 1u;
	uint64_t sub = k % (1u << LG_HIST_SUB_BITS);
	uint64_t low = ((1ull << LG_HIST_SUB_BITS) | sub) << (msb - LG_HIST_SUB_BITS);
	ASSERT(lg_hist_index(low) == i);
	return low;
}

uint64_t
lg_hist_quantile(const struct lg_hist *h, double q)
{
	ASSERT(q > 0.0);
	ASSERT(q <= 1.0);
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	if (rank >= h->count)
		return h->max_ns; /* the largest value is known exactly */
	uint64_t seen = 0;
	for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen < rank)
			continue;
		uint64_t low = lg_hist_bucket_low(i);
		uint64_t high = i + 1 < LG_HIST_BUCKETS ? lg_hist_bucket_low(i + 1) : low + 1;
		uint64_t mid = low + (high - low - 1) / 2;
		return SP_MIN(mid, h->max_ns);
	}
	sp_verify_failed("bucket counts add up to count", __FILE__, __LINE__, __func__);
}

void
lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
	ASSERT(dst != src);
	for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
	dst->clamped += src->clamped;
	dst->max_ns = SP_MAX(dst->max_ns, src->max_ns);
}
