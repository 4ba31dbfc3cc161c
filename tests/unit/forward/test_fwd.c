/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forward messages (every field round-trips; each malformed field is refused; no read past
 * the buffer) and the in-flight table (bounded: full is refused and counted; releases in
 * any order; the oldest live slot times out first; stale tags never match). A random run
 * against a model prints its seed (replay with SP_TEST_SEED=N).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/errors.h"
#include "dataplane/forward/fwd.h"

static struct sp_fwd_hdr
sample(void)
{
	return (struct sp_fwd_hdr){.kind = SP_FWD_REPLY,
	                           .proto = SP_FWD_MEMCACHED,
	                           .entry_worker = 3,
	                           .payload_len = 5,
	                           .index = 1,
	                           .total = 3,
	                           .slot = 200,
	                           .tag = 0x01020304,
	                           .entry_node = 77,
	                           .epoch = 0x1122334455667788ull};
}

static void
test_header_roundtrip_and_refusals(void **state)
{
	uint8_t buf[SP_FWD_HDR_SIZE + 5] = {0};
	struct sp_fwd_hdr in = sample(), out;

	(void)state;
	sp_fwd_encode(buf, &in);
	assert_true(sp_fwd_is(buf, sizeof(buf)));
	assert_int_equal(sp_fwd_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.kind, in.kind);
	assert_int_equal(out.proto, in.proto);
	assert_int_equal(out.status, 0);
	assert_int_equal(out.entry_worker, 3);
	assert_int_equal(out.payload_len, 5);
	assert_int_equal(out.index, 1);
	assert_int_equal(out.total, 3);
	assert_int_equal(out.slot, 200);
	assert_int_equal(out.tag, 0x01020304);
	assert_int_equal(out.entry_node, 77);
	assert_true(out.epoch == in.epoch);
	assert_int_equal(buf[0], 'N');
	assert_int_equal(buf[1], 'F');
	/* Every shorter or longer length disagrees with payload_len. */
	for (size_t n = 0; n < sizeof(buf); n++)
		assert_int_equal(sp_fwd_decode(buf, n, &out), -SP_EMALFORMED);
	/* One field at a time. */
	struct {
		size_t off;
		uint8_t v;
	} bad[] = {{0, 'X'}, {2, 1},  {3, 0},  {3, 4},  {4, 0},  {4, 3},  {5, 1},
	           {8, 0},   {9, 1},  {12, 0}, {13, 0}, {14, 0}, {15, 0}, {28, 3},
	           {29, 0},  {24, 0}, {25, 0}, {26, 0}, {27, 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t copy[sizeof(buf)];

		memcpy(copy, buf, sizeof(buf));
		if (bad[i].off == 8) { /* slot past the table: 256 */
			copy[8] = 0;
			copy[9] = 1;
		} else if (bad[i].off >= 12 && bad[i].off <= 15) { /* tag 0 */
			memset(copy + 12, 0, 4);
		} else if (bad[i].off >= 24 && bad[i].off <= 27) { /* entry node 0 */
			memset(copy + 24, 0, 4);
		} else {
			copy[bad[i].off] = bad[i].v;
		}
		assert_int_equal(sp_fwd_decode(copy, sizeof(copy), &out), -SP_EMALFORMED);
	}
	/* REFUSED needs an error status; others none. */
	in.kind = SP_FWD_REFUSED;
	in.status = SP_BP_ST_WRONG_PARTITION;
	sp_fwd_encode(buf, &in);
	assert_int_equal(sp_fwd_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.status, SP_BP_ST_WRONG_PARTITION);
	in.status = SP_BP_ST_OK;
	sp_fwd_encode(buf, &in);
	assert_int_equal(sp_fwd_decode(buf, sizeof(buf), &out), -SP_EMALFORMED);
	in.status = SP_BP_ST_LAST;
	sp_fwd_encode(buf, &in);
	assert_int_equal(sp_fwd_decode(buf, sizeof(buf), &out), -SP_EMALFORMED);
	/* index and total belong to REPLY only: written as 0 on the others, refused if set. */
	in.status = SP_BP_ST_NOT_SERVING;
	sp_fwd_encode(buf, &in);
	assert_int_equal(buf[28], 0);
	assert_int_equal(buf[29], 0);
	buf[29] = 1;
	assert_int_equal(sp_fwd_decode(buf, sizeof(buf), &out), -SP_EMALFORMED);
	assert_false(sp_fwd_is(buf, SP_FWD_HDR_SIZE - 1));
	assert_int_equal(sp_fwd_decode(NULL, 0, &out), -SP_EMALFORMED);
}

/* Appends a message of kind REQUEST (slot i, payload i+1 bytes of value i) at buf + *at. */
static void
put_msg(uint8_t *buf, size_t *at, uint32_t i)
{
	struct sp_fwd_hdr h = sample();

	h.kind = SP_FWD_REQUEST;
	h.index = h.total = 0;
	h.slot = i % SP_FWD_SLOTS;
	h.payload_len = (uint16_t)(i % 40 + 1);
	sp_fwd_encode(buf + *at, &h);
	memset(buf + *at + SP_FWD_HDR_SIZE, (int)i, h.payload_len);
	*at += SP_FWD_HDR_SIZE + h.payload_len;
}

/*
 * A datagram of several messages: each comes back in order with its payload; the end is
 * reported once; a cut-short last message, trailing bytes that are no message, a bad
 * header in the middle, an empty datagram and message SP_FWD_BATCH_MAX + 1 are refused
 * (after the good messages before them); sp_fwd_decode wants exactly one message.
 */
static void
test_batch_walk_and_refusals(void **state)
{
	uint8_t buf[4096];
	struct sp_fwd_hdr h;
	size_t len = 0, off;
	uint32_t count, seen;
	int rc;

	(void)state;
	for (uint32_t i = 0; i < 5; i++)
		put_msg(buf, &len, i);
	off = 0;
	count = 0;
	seen = 0;
	while ((rc = sp_fwd_next(buf, len, &off, &count, &h)) == 1) {
		const uint8_t *p = buf + off - h.payload_len;

		assert_int_equal(h.slot, seen);
		assert_int_equal(h.payload_len, seen % 40 + 1);
		for (uint32_t k = 0; k < h.payload_len; k++)
			assert_int_equal(p[k], seen);
		seen++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(seen, 5);
	assert_int_equal(count, 5);
	assert_int_equal(off, len);
	/* A batch is not one message. */
	assert_int_equal(sp_fwd_decode(buf, len, &h), -SP_EMALFORMED);
	/* Every cut of the last message (and trailing garbage) stops the walk there. */
	for (size_t cut = 1; cut < len; cut++) {
		off = 0;
		count = 0;
		while ((rc = sp_fwd_next(buf, len - cut, &off, &count, &h)) == 1)
			assert_true(off <= len - cut);
		if (rc == 0) /* the cut fell on a message boundary */
			assert_int_equal(off, len - cut);
		else
			assert_int_equal(rc, -SP_EMALFORMED);
	}
	buf[len] = 'N';
	off = 0;
	count = 0;
	while ((rc = sp_fwd_next(buf, len + 1, &off, &count, &h)) == 1)
		;
	assert_int_equal(rc, -SP_EMALFORMED);
	assert_int_equal(count, 5);
	/* A bad third header: two messages, then refused. */
	size_t third = 2 * SP_FWD_HDR_SIZE + 1 + 2;
	buf[third + 3] = 9; /* kind */
	off = 0;
	count = 0;
	assert_int_equal(sp_fwd_next(buf, len, &off, &count, &h), 1);
	assert_int_equal(sp_fwd_next(buf, len, &off, &count, &h), 1);
	assert_int_equal(off, third);
	assert_int_equal(sp_fwd_next(buf, len, &off, &count, &h), -SP_EMALFORMED);
	/* Nothing at all is no datagram. */
	off = 0;
	count = 0;
	assert_int_equal(sp_fwd_next(buf, 0, &off, &count, &h), -SP_EMALFORMED);
	/* The bound on messages per datagram. */
	len = 0;
	for (uint32_t i = 0; i < SP_FWD_BATCH_MAX + 1; i++)
		put_msg(buf, &len, 0);
	assert_true(len <= sizeof(buf));
	off = 0;
	count = 0;
	seen = 0;
	while ((rc = sp_fwd_next(buf, len, &off, &count, &h)) == 1)
		seen++;
	assert_int_equal(seen, SP_FWD_BATCH_MAX);
	assert_int_equal(rc, -SP_EMALFORMED);
}

static void
test_table_bound_order_and_tags(void **state)
{
	static struct sp_fwd_table t;
	struct sp_fwd_slot *s[SP_FWD_SLOTS];
	uint32_t idx[SP_FWD_SLOTS];
	uint32_t tags[SP_FWD_SLOTS];
	uint32_t i;

	(void)state;
	sp_fwd_table_init(&t);
	assert_true(sp_fwd_table_valid(&t));
	assert_null(sp_fwd_expired(&t, UINT64_MAX));
	for (i = 0; i < SP_FWD_SLOTS; i++) {
		s[i] = sp_fwd_take(&t, 100 + i, &idx[i]);
		assert_non_null(s[i]);
		tags[i] = s[i]->tag;
		assert_int_not_equal(tags[i], 0);
	}
	assert_true(sp_fwd_table_valid(&t));
	assert_null(sp_fwd_take(&t, 1, &i));
	assert_int_equal(t.full, 1);
	/* Released out of order: the head does not move, so it stays full. */
	sp_fwd_release(&t, s[5]);
	assert_null(sp_fwd_find(&t, idx[5], tags[5]));
	uint32_t j;
	assert_null(sp_fwd_take(&t, 1, &j));
	assert_int_equal(t.full, 2);
	/* The oldest times out first, and only when due. */
	assert_null(sp_fwd_expired(&t, 99));
	assert_ptr_equal(sp_fwd_expired(&t, 100), s[0]);
	sp_fwd_release(&t, s[0]);
	assert_ptr_equal(sp_fwd_expired(&t, 1000), s[1]);
	/* Now one slot is free again; its new tag differs from the old one. */
	struct sp_fwd_slot *n = sp_fwd_take(&t, 5000, &j);
	assert_non_null(n);
	assert_int_equal(j, idx[0]);
	assert_int_not_equal(n->tag, tags[0]);
	assert_null(sp_fwd_find(&t, idx[0], tags[0]));
	assert_ptr_equal(sp_fwd_find(&t, idx[0], n->tag), n);
	assert_null(sp_fwd_find(&t, SP_FWD_SLOTS, n->tag));
	assert_null(sp_fwd_find(&t, idx[0], 0));
	assert_true(sp_fwd_table_valid(&t));
	/* Release everything, oldest first through sp_fwd_oldest. */
	uint32_t released = 0;
	struct sp_fwd_slot *o;
	while ((o = sp_fwd_oldest(&t)) != NULL && released <= SP_FWD_SLOTS) {
		sp_fwd_release(&t, o);
		released++;
	}
	assert_int_equal(released, SP_FWD_SLOTS - 1);
	assert_int_equal(t.live, 0);
	assert_true(sp_fwd_table_valid(&t));
}

/* Random takes, finds, releases and expiries against a model of live slots. */
static void
test_table_random(void **state)
{
	static struct sp_fwd_table t;
	static uint32_t model_tag[SP_FWD_SLOTS];
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
	uint64_t x = seed * 2654435761u + 1;
	uint64_t now = 0;

	(void)state;
	printf("test_table_random: SP_TEST_SEED=%" PRIu64 "\n", seed);
	sp_fwd_table_init(&t);
	memset(model_tag, 0, sizeof(model_tag));
	for (uint32_t step = 0; step < 200000; step++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint32_t op = (uint32_t)(x % 4);
		uint32_t i = (uint32_t)((x >> 8) % SP_FWD_SLOTS);

		now++;
		if (op == 0 || op == 1) {
			uint32_t at;
			struct sp_fwd_slot *s = sp_fwd_take(&t, now + 50, &at);

			if (s != NULL) {
				assert_int_equal(model_tag[at], 0);
				model_tag[at] = s->tag;
			}
		} else if (op == 2 && model_tag[i] != 0) {
			struct sp_fwd_slot *s = sp_fwd_find(&t, i, model_tag[i]);

			assert_non_null(s);
			assert_null(sp_fwd_find(&t, i, model_tag[i] + 1));
			sp_fwd_release(&t, s);
			model_tag[i] = 0;
		} else {
			struct sp_fwd_slot *s = sp_fwd_expired(&t, now);

			if (s != NULL) {
				uint32_t at = (uint32_t)(s - t.slots);

				assert_true(s->deadline <= now);
				assert_int_equal(model_tag[at], s->tag);
				sp_fwd_release(&t, s);
				model_tag[at] = 0;
			}
		}
		if (step % 1000 == 0)
			assert_true(sp_fwd_table_valid(&t));
	}
	uint32_t live = 0;
	for (uint32_t i = 0; i < SP_FWD_SLOTS; i++)
		live += model_tag[i] != 0;
	assert_int_equal(live, t.live);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_header_roundtrip_and_refusals),
	        cmocka_unit_test(test_batch_walk_and_refusals),
	        cmocka_unit_test(test_table_bound_order_and_tags),
	        cmocka_unit_test(test_table_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
