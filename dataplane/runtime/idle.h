/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Idle back-off of a worker loop, as a small state machine so it is unit-tested without
 * EAL. While iterations find no work the worker first keeps polling, then pauses the
 * core between polls, then sleeps, for longer and longer up to a bound; any work resets
 * it. With busy_poll it always polls.
 */
#ifndef SP_DP_IDLE_H
#define SP_DP_IDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/verify.h"

/* Empty iterations of pure polling before pausing. */
#define DP_IDLE_SPIN_ITERS 2048u
/* Empty iterations (after the spin phase) with rte_pause() before sleeping. */
#define DP_IDLE_PAUSE_ITERS 8192u
/* Pauses per paused iteration. */
#define DP_IDLE_PAUSES 16u
/* First sleep, and the longest: sleeps double from one to the other. */
#define DP_IDLE_SLEEP_US_MIN 8u
#define DP_IDLE_SLEEP_US_MAX 512u

enum dp_idle_action {
	DP_IDLE_POLL = 0, /* go straight on */
	DP_IDLE_PAUSE,    /* rte_pause() DP_IDLE_PAUSES times */
	DP_IDLE_SLEEP,    /* sleep sleep_us */
};

struct dp_idle {
	uint32_t empty_iters;
	uint32_t sleep_us;
	bool busy_poll;
};

static inline void
dp_idle_init(struct dp_idle *idle, bool busy_poll)
{
	ASSERT(idle != NULL);
	idle->empty_iters = 0;
	idle->sleep_us = DP_IDLE_SLEEP_US_MIN;
	idle->busy_poll = busy_poll;
	ASSERT(idle->sleep_us <= DP_IDLE_SLEEP_US_MAX);
}

/*
 * Records one loop iteration (worked: it received, dequeued or sent something) and
 * returns what to do before the next one; for DP_IDLE_SLEEP, *sleep_us says how long
 * (never above DP_IDLE_SLEEP_US_MAX). Can't fail.
 */
static inline enum dp_idle_action
dp_idle_step(struct dp_idle *idle, bool worked, uint32_t *sleep_us)
{
	ASSERT(idle != NULL);
	ASSERT(sleep_us != NULL);
	if (worked || idle->busy_poll) {
		idle->empty_iters = 0;
		idle->sleep_us = DP_IDLE_SLEEP_US_MIN;
		return DP_IDLE_POLL;
	}
	if (idle->empty_iters < DP_IDLE_SPIN_ITERS + DP_IDLE_PAUSE_ITERS)
		idle->empty_iters++;
	if (idle->empty_iters <= DP_IDLE_SPIN_ITERS)
		return DP_IDLE_POLL;
	if (idle->empty_iters < DP_IDLE_SPIN_ITERS + DP_IDLE_PAUSE_ITERS)
		return DP_IDLE_PAUSE;
	*sleep_us = idle->sleep_us;
	if (idle->sleep_us < DP_IDLE_SLEEP_US_MAX)
		idle->sleep_us = SP_MIN(idle->sleep_us * 2, DP_IDLE_SLEEP_US_MAX);
	ASSERT(*sleep_us <= DP_IDLE_SLEEP_US_MAX);
	return DP_IDLE_SLEEP;
}

#endif
