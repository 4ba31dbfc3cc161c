/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>

#include "common/errors.h"
#include "common/verify.h"
#include "waitq.h"

int
cp_waitq_init(struct cp_waitq *q, uint32_t cap)
{
	if (cap == 0)
		return -EINVAL;
	*q = (struct cp_waitq){0};
	q->heap = calloc(cap, sizeof(q->heap[0]));
	if (q->heap == NULL)
		return -ENOMEM;
	q->cap = cap;
	return 0;
}

void
cp_waitq_fini(struct cp_waitq *q)
{
	free(q->heap);
	*q = (struct cp_waitq){0};
}

static void
sift_up(struct cp_waitq *q, uint32_t i)
{
	struct cp_wait w = q->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (q->heap[parent].index <= w.index)
			break;
		q->heap[i] = q->heap[parent];
		i = parent;
	}
	q->heap[i] = w;
}

static void
sift_down(struct cp_waitq *q, uint32_t i)
{
	struct cp_wait w = q->heap[i];
	for (;;) {
		uint32_t child = 2 * i + 1;
		if (child >= q->n)
			break;
		if (child + 1 < q->n && q->heap[child + 1].index < q->heap[child].index)
			child++;
		if (w.index <= q->heap[child].index)
			break;
		q->heap[i] = q->heap[child];
		i = child;
	}
	q->heap[i] = w;
}

int
cp_waitq_push(struct cp_waitq *q, uint64_t index, uint64_t token)
{
	ASSERT(index != 0);
	ASSERT(token != 0);
	if (q->n == q->cap)
		return -SP_EFULL;
	q->heap[q->n] = (struct cp_wait){index, token};
	sift_up(q, q->n);
	q->n++;
	ASSERT(q->heap[0].index <= index);
	return 0;
}

uint64_t
cp_waitq_min(const struct cp_waitq *q)
{
	return q->n ? q->heap[0].index : 0;
}

bool
cp_waitq_pop(struct cp_waitq *q, struct cp_wait *out)
{
	if (q->n == 0)
		return false;
	*out = q->heap[0];
	q->n--;
	if (q->n > 0) {
		q->heap[0] = q->heap[q->n];
		sift_down(q, 0);
	}
	ASSERT(q->n == 0 || q->heap[0].index >= out->index);
	return true;
}

uint32_t
cp_waitq_filter(struct cp_waitq *q, bool (*keep)(void *arg, const struct cp_wait *w), void *arg)
{
	uint32_t kept = 0, before = q->n;
	for (uint32_t i = 0; i < q->n; i++)
		if (keep(arg, &q->heap[i]))
			q->heap[kept++] = q->heap[i];
	q->n = kept;
	for (uint32_t i = kept / 2; i-- > 0;)
		sift_down(q, i);
	ASSERT(cp_waitq_check_invariants(q));
	return before - kept;
}

bool
cp_waitq_check_invariants(const struct cp_waitq *q)
{
	if (q->heap == NULL || q->n > q->cap)
		return false;
	for (uint32_t i = 1; i < q->n; i++) {
		if (q->heap[(i - 1) / 2].index > q->heap[i].index)
			return false;
		if (q->heap[i].index == 0 || q->heap[i].token == 0)
			return false;
	}
	return q->n == 0 || (q->heap[0].index != 0 && q->heap[0].token != 0);
}
