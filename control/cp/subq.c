/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"
#include "subq.h"

int
cp_subq_init(struct cp_subq *q, uint32_t subs_max, size_t bytes_max)
{
	if (subs_max == 0 || bytes_max == 0)
		return -EINVAL;
	*q = (struct cp_subq){0};
	q->subs = calloc(subs_max, sizeof(q->subs[0]));
	/* Pages of the area are touched only as far as the deepest backlog reaches. */
	q->area = malloc(bytes_max);
	if (q->subs == NULL || q->area == NULL) {
		free(q->subs);
		free(q->area);
		*q = (struct cp_subq){0};
		return -ENOMEM;
	}
	q->subs_max = subs_max;
	q->bytes_max = bytes_max;
	ASSERT(cp_subq_check_invariants(q));
	return 0;
}

void
cp_subq_fini(struct cp_subq *q)
{
	free(q->subs);
	free(q->area);
	*q = (struct cp_subq){0};
}

/*
 * Finds len contiguous bytes: *off where they start, *span what they hold (len, plus the
 * tail skipped when they start again at 0). Returns false when there is no room.
 */
static bool
area_fit(const struct cp_subq *q, size_t len, size_t *off, size_t *span)
{
	if (q->used == 0) {
		/* Empty: start again at 0 (cp_subq_pop reset head and tail). */
		ASSERT(q->head == 0 && q->tail == 0);
		*off = 0;
		*span = len;
		return len <= q->bytes_max;
	}
	if (q->tail > q->head) {
		/* Free: [tail, bytes_max) and [0, head). */
		if (q->bytes_max - q->tail >= len) {
			*off = q->tail;
			*span = len;
			return true;
		}
		*off = 0;
		*span = q->bytes_max - q->tail + len;
		return q->head >= len;
	}
	/* Wrapped (or full when tail == head): free is [tail, head). */
	*off = q->tail;
	*span = len;
	return q->head - q->tail >= len;
}

int
cp_subq_push(struct cp_subq *q, uint32_t kind, uint64_t arg, const void *data, uint32_t len,
             uint64_t token)
{
	ASSERT(data != NULL || len == 0);
	if (q->n == q->subs_max) {
		q->refused_subs++;
		return -SP_EFULL;
	}
	size_t off = 0, span = 0;
	if (len != 0 && !area_fit(q, len, &off, &span)) {
		q->refused_bytes++;
		return -SP_EFULL;
	}
	struct cp_sub *s = &q->subs[(q->first + q->n) % q->subs_max];
	*s = (struct cp_sub){.kind = kind, .len = len, .arg = arg, .token = token, .span = span};
	if (len != 0) {
		s->data = q->area + off;
		memcpy(s->data, data, len);
		q->tail = off + len;
		q->used += span;
		if (q->used > q->used_max)
			q->used_max = q->used;
	}
	q->n++;
	ASSERT(q->used <= q->bytes_max);
	ASSERT(q->tail <= q->bytes_max);
	return 0;
}

const struct cp_sub *
cp_subq_peek(const struct cp_subq *q, uint32_t i)
{
	if (i >= q->n)
		return NULL;
	return &q->subs[(q->first + i) % q->subs_max];
}

void
cp_subq_pop(struct cp_subq *q)
{
	VERIFY(q->n > 0);
	struct cp_sub *s = &q->subs[q->first];
	if (s->len != 0) {
		ASSERT(s->span >= s->len);
		ASSERT(q->used >= s->span);
		q->used -= s->span;
		q->head = (size_t)(s->data - q->area) + s->len;
	}
	*s = (struct cp_sub){0};
	q->first = (q->first + 1) % q->subs_max;
	q->n--;
	if (q->used == 0) {
		/* Nothing holds bytes: the next allocation starts at 0 again. */
		q->head = 0;
		q->tail = 0;
	}
	ASSERT(q->n > 0 || q->used == 0);
}

bool
cp_subq_check_invariants(const struct cp_subq *q)
{
	if (q->subs == NULL || q->area == NULL || q->n > q->subs_max || q->first >= q->subs_max)
		return false;
	if (q->used > q->bytes_max || q->head > q->bytes_max || q->tail > q->bytes_max)
		return false;
	size_t sum = 0;
	size_t expect = q->head; /* where the next allocation's data should start, or 0 */
	for (uint32_t i = 0; i < q->n; i++) {
		const struct cp_sub *s = &q->subs[(q->first + i) % q->subs_max];
		if (s->len == 0) {
			if (s->data != NULL || s->span != 0)
				return false;
			continue;
		}
		if (s->data < q->area || s->span < s->len)
			return false;
		size_t off = (size_t)(s->data - q->area);
		if (off + s->len > q->bytes_max)
			return false;
		/* Each allocation starts where the previous one ended, or at 0 after a skip. */
		if (off != expect && !(off == 0 && s->span == q->bytes_max - expect + s->len))
			return false;
		expect = off + s->len;
		sum += s->span;
	}
	if (sum != q->used)
		return false;
	return q->used != 0 || (q->head == 0 && q->tail == 0);
}
