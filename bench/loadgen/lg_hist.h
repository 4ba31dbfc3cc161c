/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Latency histogram with log-linear buckets (as HdrHistogram does it): exact below
 * LG_HIST_LINEAR_MAX ns, then 2^LG_HIST_SUB_BITS buckets per power of two, so a reported
 * percentile is within 1 / 2^LG_HIST_SUB_BITS (3.1 %) of the true value. Recording is a
 * count-leading-zeros and an increment: fit for the per-reply path. Pure, no allocation.
 */
#ifndef SP_BENCH_LG_HIST_H
#define SP_BENCH_LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS   5u
#define LG_HIST_LINEAR_MAX (2u << LG_HIST_SUB_BITS) /* 64: values below are exact */
#define LG_HIST_MAX_BITS   40u                      /* values clamp to 2^40 ns (18 min) */
#define LG_HIST_BUCKETS \
	(LG_HIST_LINEAR_MAX + (LG_HIST_MAX_BITS - LG_HIST_SUB_BITS - 1u) * (1u << LG_HIST_SUB_BITS))

struct lg_hist {
	uint64_t count;
	uint64_t max_ns;
	uint64_t sum_ns;
	uint64_t clamped; /* values at or over 2^LG_HIST_MAX_BITS, recorded in the last bucket */
	uint64_t bucket[LG_HIST_BUCKETS];
};

void lg_hist_reset(struct lg_hist *h);

/* Bucket index of value_ns (clamped to the last bucket). */
static inline uint32_t
lg_hist_index(uint64_t value_ns)
{
	if (value_ns < LG_HIST_LINEAR_MAX)
		return (uint32_t)value_ns;
	if (value_ns >> LG_HIST_MAX_BITS)
		return LG_HIST_BUCKETS - 1;
	uint32_t msb = 63u - (uint32_t)__builtin_clzll(value_ns); /* >= SUB_BITS + 1 */
	uint32_t shift = msb - LG_HIST_SUB_BITS;
	uint32_t sub = (uint32_t)(value_ns >> shift) & ((1u << LG_HIST_SUB_BITS) - 1u);
	return LG_HIST_LINEAR_MAX + (msb - LG_HIST_SUB_BITS - 1u) * (1u << LG_HIST_SUB_BITS) + sub;
}

static inline void
lg_hist_record(struct lg_hist *h, uint64_t value_ns)
{
	uint32_t i = lg_hist_index(value_ns);

	h->bucket[i]++;
	h->count++;
	h->sum_ns += value_ns;
	if (value_ns > h->max_ns)
		h->max_ns = value_ns;
	if (value_ns >> LG_HIST_MAX_BITS)
		h->clamped++;
}

/* Smallest value that falls in bucket i. */
uint64_t lg_hist_bucket_low(uint32_t i);

/*
 * The q-quantile (0 < q <= 1) in ns: the middle of the bucket holding the value of rank
 * ceil(q * count), never above max_ns; the top rank gives max_ns itself. Returns 0 for an
 * empty histogram.
 */
uint64_t lg_hist_quantile(const struct lg_hist *h, double q);

/* Adds every count of src into dst. */
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);

#endif
