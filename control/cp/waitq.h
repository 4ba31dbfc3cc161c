/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The writes waiting for their entry to be applied, smallest log index first: a binary
 * min-heap of (index, token), sized at start. When entry i is applied the API pops what
 * waits for an index <= i, instead of scanning every pending slot for every applied entry.
 * A token may be stale (its request timed out meanwhile): the API checks it when popping.
 */
#ifndef SP_CP_WAITQ_H
#define SP_CP_WAITQ_H

#include <stdbool.h>
#include <stdint.h>

struct cp_wait {
	uint64_t index; /* the log index the write's entry was given */
	uint64_t token; /* the pending request (api.c's token) */
};

struct cp_waitq {
	struct cp_wait *heap; /* heap[0] the smallest index */
	uint32_t n;
	uint32_t cap;
};

/* Room for cap waits. Returns 0, -EINVAL (cap 0) or -ENOMEM. */
int cp_waitq_init(struct cp_waitq *q, uint32_t cap);
void cp_waitq_fini(struct cp_waitq *q);

/* Adds (index, token), index and token not 0. Returns 0 or -SP_EFULL (q unchanged). */
int cp_waitq_push(struct cp_waitq *q, uint64_t index, uint64_t token);

/* The smallest index waiting, or 0 when nothing waits. Can't fail. */
uint64_t cp_waitq_min(const struct cp_waitq *q);

/* Takes the wait with the smallest index. Returns false when nothing waits. */
bool cp_waitq_pop(struct cp_waitq *q, struct cp_wait *out);

/*
 * Keeps only the waits keep() says are still wanted (the heap is rebuilt). Returns how
 * many were dropped. For a full queue holding stale tokens.
 */
uint32_t cp_waitq_filter(struct cp_waitq *q, bool (*keep)(void *arg, const struct cp_wait *w),
                         void *arg);

/* Checks the heap order and the counts. For asserts and tests. */
bool cp_waitq_check_invariants(const struct cp_waitq *q);

#endif
