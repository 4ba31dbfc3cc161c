/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RATELIMIT: a per-key token bucket, built on the task API (task.h); encoding in
 * wire/taskproto.h, guide in docs/tasks.md.
 *
 * Each partition's state is a set-associative table of buckets (SP_RL_WAYS per set). A
 * bucket holds its key's 64-bit hash (XXH3, as for routing: the key itself is not kept, so
 * two keys of one partition with the same 64-bit hash share a bucket, which at 2^-64 per
 * pair is accepted), its tokens in nano-tokens (exact integer arithmetic: a token is
 * 10^9 nano-tokens and a rate of R tokens/s adds R nano-tokens per nanosecond, so no
 * rounding ever happens) and the time it was last refilled.
 *
 * A key seen for the first time starts with a full bucket. When its set has no free way,
 * a bucket that is full by now is replaced: that loses nothing, since a full bucket and a
 * new one behave the same. Only when every bucket of the set is still refilling is the
 * least recently used one replaced; its key then starts full again (more permissive than
 * exact), counted in sp_rl_stats.evicted_refilling. Size the table (buckets per partition)
 * for the number of keys active within a refill time.
 */
#ifndef SP_DATAPLANE_TASK_RATELIMIT_H
#define SP_DATAPLANE_TASK_RATELIMIT_H

#include <stdint.h>

#include "dataplane/tasks/task.h"
#include "wire/taskproto.h"

#define SP_RL_WAYS        8u
#define SP_RL_BUCKET_SIZE 32u
#define SP_RL_BUCKETS_MIN SP_RL_WAYS
#define SP_RL_BUCKETS_MAX \
	(SP_TASK_STATE_MAX / SP_RL_BUCKET_SIZE / 2) /* a power of two, with the header */
#define SP_RL_BUCKETS_DEFAULT 1024u

/* Counters of one partition's table (read with sp_rl_stats_get, owner only). */
struct sp_rl_stats {
	uint64_t allowed, denied;
	uint64_t created;           /* keys that got a new bucket */
	uint64_t evicted_full;      /* buckets replaced while full (lossless) */
	uint64_t evicted_refilling; /* buckets replaced while refilling (the key restarts full) */
};

/*
 * Registers RATELIMIT (opcode SP_TASK_OP_RATELIMIT) with buckets_per_partition buckets in
 * each partition's state (a power of two, SP_RL_BUCKETS_MIN..SP_RL_BUCKETS_MAX). Returns
 * 0, -EINVAL (bad size) or sp_task_register's errors.
 */
int sp_ratelimit_register(struct sp_task_registry *r, uint32_t buckets_per_partition, char *why,
                          size_t why_len);

/* The bytes of state one partition takes for buckets buckets. */
uint32_t sp_rl_state_size(uint32_t buckets);

/*
 * The token bucket step on one partition's state (what exec runs): key hash, argument,
 * now. Exposed for tests and the benchmark. Can't fail given a checked argument.
 */
void sp_rl_take(void *state, uint32_t state_size, uint64_t hash, const struct sp_rl_arg *a,
                uint64_t now_ns, struct sp_rl_result *out);

/* Copies one partition's counters. */
void sp_rl_stats_get(const void *state, struct sp_rl_stats *out);

/* Checks a partition's table (bucket tokens within burst, no hash twice in a set). */
bool sp_rl_valid(const void *state, uint32_t state_size);

#endif
