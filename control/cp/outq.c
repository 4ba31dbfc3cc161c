/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>

#include "common/verify.h"
#include "outq.h"

static bool
outcome_ok(const struct cp_outcome *o)
{
	if (o->kind == 0 || o->kind >= CP_OUT_KIND_END)
		return false;
	if (o->status > 0)
		return false;
	return o->kind != CP_OUT_SUBMITTED || o->token != 0;
}

int
cp_outq_init(struct cp_outq *q, uint32_t cap)
{
	if (cap < 2 || (cap & (cap - 1)) != 0)
		return -EINVAL;
	*q = (struct cp_outq){0};
	q->ring = calloc(cap, sizeof(q->ring[0]));
	if (q->ring == NULL)
		return -ENOMEM;
	q->cap = cap;
	ASSERT(cp_outq_check_invariants(q));
	return 0;
}

void
cp_outq_fini(struct cp_outq *q)
{
	free(q->ring);
	*q = (struct cp_outq){0};
}

uint32_t
cp_outq_depth(const struct cp_outq *q)
{
	uint32_t n = q->tail - q->head;
	ASSERT(n <= q->cap);
	return n;
}

uint32_t
cp_outq_room(const struct cp_outq *q)
{
	return q->cap - cp_outq_depth(q);
}

void
cp_outq_push(struct cp_outq *q, const struct cp_outcome *o)
{
	VERIFY(cp_outq_room(q) > 0); /* the producer asks for room first */
	ASSERT(outcome_ok(o));
	q->ring[q->tail & (q->cap - 1)] = *o;
	q->tail++;
	q->pushed++;
	uint32_t depth = cp_outq_depth(q);
	if (depth > q->depth_max)
		q->depth_max = depth;
}

bool
cp_outq_pop(struct cp_outq *q, struct cp_outcome *o)
{
	if (q->head == q->tail)
		return false;
	*o = q->ring[q->head & (q->cap - 1)];
	q->head++;
	q->popped++;
	ASSERT(outcome_ok(o));
	ASSERT(q->popped <= q->pushed);
	return true;
}

bool
cp_outq_check_invariants(const struct cp_outq *q)
{
	if (q->ring == NULL || q->cap < 2 || (q->cap & (q->cap - 1)) != 0)
		return false;
	uint32_t depth = q->tail - q->head;
	if (depth > q->cap)
		return false;
	if (q->pushed - q->popped != depth)
		return false;
	if (depth > q->depth_max)
		return false;
	for (uint32_t i = q->head; i != q->tail; i++)
		if (!outcome_ok(&q->ring[i & (q->cap - 1)]))
			return false;
	return true;
}
