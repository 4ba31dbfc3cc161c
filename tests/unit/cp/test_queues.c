/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The two queues between the control plane's modules (control/cp/outq.c, subq.c): the
 * outcome queue node.c fills for the API, and the submission area that holds what node.c
 * is given while a ready is written to disk.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../test_seed.h"
#include "common/errors.h"
#include "outq.h"
#include "subq.h"
#include "waitq.h"

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
test_outq_order_and_bound(void **state)
{
	(void)state;
	struct cp_outq q;
	struct cp_outcome o;
	assert_int_equal(cp_outq_init(&q, 3), -EINVAL); /* not a power of two */
	assert_int_equal(cp_outq_init(&q, 1), -EINVAL);
	assert_int_equal(cp_outq_init(&q, 8), 0);
	assert_int_equal(cp_outq_room(&q), 8);
	assert_false(cp_outq_pop(&q, &o));
	/* Three rounds around the ring: order kept, room exact, depth_max the deepest. */
	uint64_t next_in = 1, next_out = 1;
	for (int round = 0; round < 3; round++) {
		while (cp_outq_room(&q) > 0) {
			struct cp_outcome in = {
			        .kind = CP_OUT_APPLIED, .index = next_in++, .term = 2};
			cp_outq_push(&q, &in);
		}
		assert_int_equal(cp_outq_depth(&q), 8);
		assert_true(cp_outq_check_invariants(&q));
		for (int k = 0; k < 5; k++) {
			assert_true(cp_outq_pop(&q, &o));
			assert_int_equal(o.kind, CP_OUT_APPLIED);
			assert_int_equal(o.index, next_out++);
		}
		assert_int_equal(cp_outq_room(&q), 5);
	}
	while (cp_outq_pop(&q, &o))
		assert_int_equal(o.index, next_out++);
	assert_int_equal(next_out, next_in);
	assert_int_equal(q.pushed, q.popped);
	assert_int_equal(q.depth_max, 8);
	assert_true(cp_outq_check_invariants(&q));
	cp_outq_fini(&q);
}

/* What a producer does at a full queue: it asks for room and waits; nothing is lost. */
static void
test_outq_kinds_roundtrip(void **state)
{
	(void)state;
	struct cp_outq q;
	struct cp_outcome o;
	assert_int_equal(cp_outq_init(&q, 4), 0);
	struct cp_outcome in[3] = {
	        {.kind = CP_OUT_SUBMITTED, .status = 0, .token = 77, .index = 10, .term = 3},
	        {.kind = CP_OUT_READ_READY, .status = -SP_ENOTLEADER, .ctx = 9, .index = 12},
	        {.kind = CP_OUT_APPLIED, .status = -SP_EEXISTS, .index = 10, .term = 3},
	};
	for (int i = 0; i < 3; i++)
		cp_outq_push(&q, &in[i]);
	assert_int_equal(cp_outq_room(&q), 1);
	for (int i = 0; i < 3; i++) {
		assert_true(cp_outq_pop(&q, &o));
		assert_memory_equal(&o, &in[i], sizeof(o));
	}
	assert_false(cp_outq_pop(&q, &o));
	cp_outq_fini(&q);
}

static void
fill(uint8_t *p, uint32_t len, uint64_t tag)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(tag * 131u + i);
}

static void
check(const uint8_t *p, uint32_t len, uint64_t tag)
{
	for (uint32_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(tag * 131u + i))
			fail_msg("submission %llu: byte %u corrupted", (unsigned long long)tag, i);
}

static void
test_subq_bounds(void **state)
{
	(void)state;
	struct cp_subq q;
	uint8_t buf[1024];
	assert_int_equal(cp_subq_init(&q, 0, 100), -EINVAL);
	assert_int_equal(cp_subq_init(&q, 4, 1000), 0);
	/* The whole area in one submission fits an empty area. */
	fill(buf, 1000, 1);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 1000, 1), 0);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 1, 2), -SP_EFULL);
	assert_int_equal(q.refused_bytes, 1);
	/* A submission without bytes takes only a descriptor. */
	assert_int_equal(cp_subq_push(&q, 2, 5, NULL, 0, 3), 0);
	check(cp_subq_peek(&q, 0)->data, 1000, 1);
	assert_null(cp_subq_peek(&q, 1)->data);
	assert_int_equal(cp_subq_peek(&q, 1)->arg, 5);
	assert_null(cp_subq_peek(&q, 2));
	cp_subq_pop(&q);
	assert_int_equal(q.used, 0);
	/* Descriptors are a bound of their own. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(cp_subq_push(&q, 1, 0, buf, 10, 10 + i), 0);
	assert_int_equal(cp_subq_push(&q, 1, 0, NULL, 0, 20), -SP_EFULL);
	assert_int_equal(q.refused_subs, 1);
	/* One over the area is never taken, not even by an empty area. */
	while (q.n)
		cp_subq_pop(&q);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 1000, 1), 0);
	cp_subq_pop(&q);
	uint8_t *big = calloc(1, 1001);
	assert_non_null(big);
	assert_int_equal(cp_subq_push(&q, 1, 0, big, 1001, 1), -SP_EFULL);
	assert_int_equal(q.refused_bytes, 2);
	free(big);
	assert_true(cp_subq_check_invariants(&q));
	cp_subq_fini(&q);
}

/* An allocation that does not fit before the end starts again at 0; the tail it skips is
 * given back with it. */
static void
test_subq_wrap(void **state)
{
	(void)state;
	struct cp_subq q;
	uint8_t buf[100];
	assert_int_equal(cp_subq_init(&q, 8, 100), 0);
	fill(buf, 40, 1);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 40, 1), 0); /* [0, 40) */
	fill(buf, 40, 2);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 40, 2), 0); /* [40, 80) */
	cp_subq_pop(&q);                                         /* head 40 */
	fill(buf, 30, 3);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 30, 3), 0); /* skips [80, 100): [0, 30) */
	assert_int_equal(cp_subq_peek(&q, 1)->data - q.area, 0);
	assert_int_equal(cp_subq_peek(&q, 1)->span, 50);
	assert_int_equal(q.used, 90);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 11, 4), -SP_EFULL); /* [30, 40) is 10 */
	fill(buf, 10, 4);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 10, 4), 0); /* [30, 40): full */
	assert_int_equal(q.used, 100);
	assert_int_equal(cp_subq_push(&q, 1, 0, buf, 1, 5), -SP_EFULL);
	assert_true(cp_subq_check_invariants(&q));
	check(cp_subq_peek(&q, 0)->data, 40, 2);
	check(cp_subq_peek(&q, 1)->data, 30, 3);
	check(cp_subq_peek(&q, 2)->data, 10, 4);
	cp_subq_pop(&q);
	assert_int_equal(q.used, 60);
	cp_subq_pop(&q);
	cp_subq_pop(&q);
	assert_int_equal(q.used, 0);
	assert_int_equal(q.head, 0);
	assert_int_equal(q.tail, 0);
	assert_true(cp_subq_check_invariants(&q));
	cp_subq_fini(&q);
}

/* Random pushes and pops against a model: every byte comes back as it went in, in order;
 * a refusal happens only when the model agrees there is no room. */
static void
test_subq_random(void **state)
{
	(void)state;
	rng_state = test_seed("test_subq_random") | 1;
	enum { SUBS = 64, BYTES = 4096, STEPS = 200000 };
	struct cp_subq q;
	uint8_t buf[BYTES];
	uint64_t next_tag = 1, next_pop = 1;
	uint64_t refused = 0;
	assert_int_equal(cp_subq_init(&q, SUBS, BYTES), 0);
	for (int step = 0; step < STEPS; step++) {
		if (rnd() % 100 < 55) {
			uint32_t len = (uint32_t)(rnd() % 5 == 0 ? 0 : rnd() % (BYTES / 3) + 1);
			fill(buf, len, next_tag);
			uint32_t before = q.n;
			int err = cp_subq_push(&q, (uint32_t)(next_tag & 7), next_tag, buf, len,
			                       next_tag);
			if (err == 0) {
				next_tag++;
			} else {
				assert_int_equal(err, -SP_EFULL);
				assert_int_equal(q.n, before);
				/* Refused only when truly out of descriptors or bytes. */
				assert_true(
				        q.n == SUBS || len > BYTES - q.used ||
				        (q.tail > q.head && BYTES - q.tail < len && q.head < len) ||
				        (q.tail <= q.head && q.head - q.tail < len));
				refused++;
			}
		} else if (q.n) {
			const struct cp_sub *s = cp_subq_peek(&q, 0);
			assert_int_equal(s->token, next_pop);
			assert_int_equal(s->arg, next_pop);
			check(s->data, s->len, next_pop);
			cp_subq_pop(&q);
			next_pop++;
		}
		if (step % 97 == 0)
			assert_true(cp_subq_check_invariants(&q));
	}
	printf("test_subq_random: %llu taken, %llu refused, %zu bytes at most\n",
	       (unsigned long long)(next_tag - 1), (unsigned long long)refused, q.used_max);
	assert_true(refused > 0);
	assert_true(q.refused_bytes + q.refused_subs == refused);
	cp_subq_fini(&q);
}

/* Keeps odd tokens. */
static bool
keep_odd(void *arg, const struct cp_wait *w)
{
	(void)arg;
	return (w->token & 1) != 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The writes' wait heap: smallest index first whatever the order of pushes, a bound that
 * refuses, and a filter that keeps the heap in order. Random against a sorted model. */
static void
test_waitq_random(void **state)
{
	(void)state;
	rng_state = test_seed("test_waitq_random") | 1;
	enum { CAP = 256, STEPS = 100000 };
	struct cp_waitq q;
	struct cp_wait w;
	uint64_t model[CAP];
	uint32_t n = 0;
	assert_int_equal(cp_waitq_init(&q, 0), -EINVAL);
	assert_int_equal(cp_waitq_init(&q, CAP), 0);
	assert_int_equal(cp_waitq_min(&q), 0);
	assert_false(cp_waitq_pop(&q, &w));
	for (int step = 0; step < STEPS; step++) {
		if (rnd() % 100 < 55) {
			/* Indices mostly ascending, as a leader hands them out, some repeated or
			 * lower (a log cut after a leader change). */
			uint64_t index = 1000 + (uint64_t)step / 2 - rnd() % 8;
			int err = cp_waitq_push(&q, index, index * 2 + 1);
			if (n == CAP) {
				assert_int_equal(err, -SP_EFULL);
				assert_int_equal(q.n, CAP);
			} else {
				assert_int_equal(err, 0);
				model[n++] = index;
			}
		} else if (n > 0) {
			qsort(model, n, sizeof(model[0]), cmp_u64);
			assert_int_equal(cp_waitq_min(&q), model[0]);
			assert_true(cp_waitq_pop(&q, &w));
			assert_int_equal(w.index, model[0]);
			assert_int_equal(w.token, w.index * 2 + 1);
			memmove(model, model + 1, (n - 1) * sizeof(model[0]));
			n--;
		}
		if (step % 101 == 0)
			assert_true(cp_waitq_check_invariants(&q));
	}
	assert_int_equal(q.n, n);
	cp_waitq_fini(&q);

	/* The filter drops what keep refuses and leaves a heap. */
	assert_int_equal(cp_waitq_init(&q, 64), 0);
	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(cp_waitq_push(&q, 64 - i, 100 + i), 0);
	assert_int_equal(cp_waitq_push(&q, 1, 1), -SP_EFULL);
	assert_int_equal(cp_waitq_filter(&q, keep_odd, NULL), 32);
	assert_int_equal(q.n, 32);
	assert_true(cp_waitq_check_invariants(&q));
	uint64_t last = 0;
	while (cp_waitq_pop(&q, &w)) {
		assert_true(w.token & 1);
		assert_true(w.index >= last);
		last = w.index;
	}
	cp_waitq_fini(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_outq_order_and_bound),
	        cmocka_unit_test(test_outq_kinds_roundtrip),
	        cmocka_unit_test(test_subq_bounds),
	        cmocka_unit_test(test_subq_wrap),
	        cmocka_unit_test(test_subq_random),
	        cmocka_unit_test(test_waitq_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
