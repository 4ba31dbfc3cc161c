/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Store semantics, one behaviour per test: hits and misses, the storage commands, counters,
 * expiry, flush_all, limits, CAS versions, eviction and the per-item overhead bound.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "common/errors.h"
#include "store_test_util.h"
#include "tests/unit/store_fixture.h"
#include "tests/unit/test_seed.h"

#define SMALL_BYTES (256u * 1024u)
#define BIG_BYTES   (4u * 1024u * 1024u)

static int
setup_small(void **state)
{
	*state = store_fixture_new(SMALL_BYTES);
	return 0;
}

static int
teardown(void **state)
{
	store_fixture_free(*state);
	return 0;
}

static int
put(struct store *s, enum store_mode mode, const char *key, const char *value, uint32_t flags,
    uint32_t expire_s, uint64_t cas, uint32_t now_s, uint64_t *cas_out)
{
	struct store_key k = test_key_str(key);
	struct store_write w = {.value = value,
	                        .value_len = (uint32_t)strlen(value),
	                        .flags = flags,
	                        .expire_s = expire_s,
	                        .cas = cas};

	return store_set(s, mode, &k, &w, now_s, cas_out);
}

static int
set(struct store *s, const char *key, const char *value, uint32_t now_s)
{
	return put(s, STORE_SET, key, value, 0, 0, 0, now_s, NULL);
}

/* Asserts key reads back as value. */
static void
expect(struct store *s, const char *key, const char *value, uint32_t now_s)
{
	struct store_key k = test_key_str(key);
	struct store_value v;

	assert_int_equal(store_get(s, &k, now_s, &v), 0);
	assert_int_equal(v.len, strlen(value));
	assert_memory_equal(v.data, value, v.len);
}

static void
expect_missing(struct store *s, const char *key, uint32_t now_s)
{
	struct store_key k = test_key_str(key);
	struct store_value v;

	assert_int_equal(store_get(s, &k, now_s, &v), -SP_ENOTFOUND);
}

static void
test_hit_miss_overwrite(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("alpha");
	struct store_value v;
	struct store_stats st;
	uint64_t cas1, cas2;

	expect_missing(s, "alpha", 1);
	assert_int_equal(put(s, STORE_SET, "alpha", "one", 7, 0, 0, 1, &cas1), 0);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.data, "one", 3);
	assert_int_equal(v.flags, 7);
	assert_int_equal(v.cas, cas1);
	assert_int_equal(v.expire_s, 0);

	assert_int_equal(put(s, STORE_SET, "alpha", "second value", 9, 0, 0, 1, &cas2), 0);
	assert_true(cas2 > cas1);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, 12);
	assert_memory_equal(v.data, "second value", 12);
	assert_int_equal(v.flags, 9);
	expect_missing(s, "alphA", 1);

	/* Empty values are values. */
	assert_int_equal(set(s, "empty", "", 1), 0);
	expect(s, "empty", "", 1);

	store_stats_get(s, &st);
	assert_int_equal(st.items, 2);
	assert_int_equal(st.bytes, store_item_bytes(5, 12) + store_item_bytes(5, 0));
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.ops[STORE_OP_GET], 5);
	assert_int_equal(st.ops[STORE_OP_SET], 3);
	assert_int_equal(st.evictions, 0);
}

static void
test_delete(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("gone");
	uint64_t cas;

	assert_int_equal(store_delete(s, &k, 0, 1), -SP_ENOTFOUND);
	assert_int_equal(put(s, STORE_SET, "gone", "x", 0, 0, 0, 1, &cas), 0);
	assert_int_equal(store_delete(s, &k, cas + 1, 1), -SP_EVERSION);
	expect(s, "gone", "x", 1);
	assert_int_equal(store_delete(s, &k, cas, 1), 0);
	expect_missing(s, "gone", 1);
	assert_int_equal(set(s, "gone", "y", 1), 0);
	assert_int_equal(store_delete(s, &k, 0, 1), 0);
	assert_int_equal(store_delete(s, &k, 0, 1), -SP_ENOTFOUND);

	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.items, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.ops[STORE_OP_DELETE], 5);
}

static void
test_add_replace_cas(void **state)
{
	struct store *s = *state;
	uint64_t cas1, cas2, cas3;

	assert_int_equal(put(s, STORE_REPLACE, "k", "r", 0, 0, 0, 1, NULL), -SP_ENOTFOUND);
	expect_missing(s, "k", 1);
	assert_int_equal(put(s, STORE_CAS, "k", "c", 0, 0, 1, 1, NULL), -SP_ENOTFOUND);
	assert_int_equal(put(s, STORE_ADD, "k", "a", 3, 0, 0, 1, &cas1), 0);
	assert_int_equal(put(s, STORE_ADD, "k", "a2", 0, 0, 0, 1, NULL), -SP_EEXISTS);
	expect(s, "k", "a", 1);
	assert_int_equal(put(s, STORE_REPLACE, "k", "r", 4, 0, 0, 1, &cas2), 0);
	assert_true(cas2 > cas1);
	expect(s, "k", "r", 1);

	/* cas: stale version refused, current accepted, then stale again. */
	assert_int_equal(put(s, STORE_CAS, "k", "c", 0, 0, cas1, 1, NULL), -SP_EVERSION);
	assert_int_equal(put(s, STORE_CAS, "k", "c", 0, 0, 0, 1, NULL), -SP_EVERSION);
	expect(s, "k", "r", 1);
	assert_int_equal(put(s, STORE_CAS, "k", "c", 5, 0, cas2, 1, &cas3), 0);
	expect(s, "k", "c", 1);
	assert_int_equal(put(s, STORE_CAS, "k", "d", 0, 0, cas2, 1, NULL), -SP_EVERSION);

	/* Binary-protocol set with a CAS: must match, and the key must exist. */
	assert_int_equal(put(s, STORE_SET, "k", "s", 0, 0, cas2, 1, NULL), -SP_EVERSION);
	assert_int_equal(put(s, STORE_SET, "k", "s", 0, 0, cas3, 1, NULL), 0);
	assert_int_equal(put(s, STORE_SET, "nokey", "s", 0, 0, 77, 1, NULL), -SP_ENOTFOUND);
	expect(s, "k", "s", 1);

	/* add succeeds over an expired item. */
	assert_int_equal(put(s, STORE_SET, "old", "v", 0, 5, 0, 1, NULL), 0);
	assert_int_equal(put(s, STORE_ADD, "old", "new", 0, 0, 0, 5, NULL), 0);
	expect(s, "old", "new", 5);
	/* replace fails on an expired item. */
	assert_int_equal(put(s, STORE_SET, "old2", "v", 0, 5, 0, 1, NULL), 0);
	assert_int_equal(put(s, STORE_REPLACE, "old2", "new", 0, 0, 0, 6, NULL), -SP_ENOTFOUND);
}

static void
test_append_prepend(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("list");
	struct store_value v;
	uint64_t cas1, cas2;

	assert_int_equal(put(s, STORE_APPEND, "list", "x", 0, 0, 0, 1, NULL), -SP_ENOTFOUND);
	assert_int_equal(put(s, STORE_PREPEND, "list", "x", 0, 0, 0, 1, NULL), -SP_ENOTFOUND);
	assert_int_equal(put(s, STORE_SET, "list", "mid", 42, 100, 0, 1, &cas1), 0);
	/* flags and expiry of append/prepend are ignored: the item keeps its own. */
	assert_int_equal(put(s, STORE_APPEND, "list", "-tail", 1, 5, 0, 1, &cas2), 0);
	assert_true(cas2 > cas1);
	assert_int_equal(put(s, STORE_PREPEND, "list", "head-", 2, 6, 0, 1, NULL), 0);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, strlen("head-mid-tail"));
	assert_memory_equal(v.data, "head-mid-tail", v.len);
	assert_int_equal(v.flags, 42);
	assert_int_equal(v.expire_s, 100);
	assert_int_equal(put(s, STORE_APPEND, "list", "", 0, 0, 0, 1, NULL), 0);
	expect(s, "list", "head-mid-tail", 1);
	/* append with a CAS (binary protocol) checks it. */
	assert_int_equal(put(s, STORE_APPEND, "list", "!", 0, 0, cas1, 1, NULL), -SP_EVERSION);
	expect(s, "list", "head-mid-tail", 1);
	/* Still gone after expiry. */
	expect_missing(s, "list", 100);
}

static int
incr(struct store *s, const char *key, uint64_t delta, uint64_t *out)
{
	struct store_key k = test_key_str(key);

	return store_incr(s, &k, delta, 1, out);
}

static int
decr(struct store *s, const char *key, uint64_t delta, uint64_t *out)
{
	struct store_key k = test_key_str(key);

	return store_decr(s, &k, delta, 1, out);
}

static void
test_incr_decr(void **state)
{
	struct store *s = *state;
	uint64_t v;

	assert_int_equal(incr(s, "n", 1, &v), -SP_ENOTFOUND);
	assert_int_equal(set(s, "n", "10", 1), 0);
	assert_int_equal(incr(s, "n", 5, &v), 0);
	assert_int_equal(v, 15);
	expect(s, "n", "15", 1);
	assert_int_equal(decr(s, "n", 3, &v), 0);
	assert_int_equal(v, 12);
	expect(s, "n", "12", 1);
	/* decr stops at 0. */
	assert_int_equal(decr(s, "n", 100, &v), 0);
	assert_int_equal(v, 0);
	expect(s, "n", "0 ", 1);

	/* incr wraps at 2^64. */
	assert_int_equal(set(s, "w", "18446744073709551615", 1), 0);
	assert_int_equal(incr(s, "w", 2, &v), 0);
	assert_int_equal(v, 1);
	char padded[STORE_COUNTER_TEXT_MAX + 1];
	memset(padded, ' ', STORE_COUNTER_TEXT_MAX);
	padded[0] = '1';
	padded[STORE_COUNTER_TEXT_MAX] = '\0';
	expect(s, "w", padded, 1);
	assert_int_equal(set(s, "w", "18446744073709551610", 1), 0);
	assert_int_equal(incr(s, "w", UINT64_MAX, &v), 0);
	assert_int_equal(v, 18446744073709551609ull);
}

static void
test_incr_length_change(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("len");
	struct store_value v;
	uint64_t n;

	assert_int_equal(put(s, STORE_SET, "len", "99", 31, 500, 0, 1, NULL), 0);
	/* Growing text: 99 -> 100 takes a longer value; flags and expiry stay. */
	assert_int_equal(incr(s, "len", 1, &n), 0);
	assert_int_equal(n, 100);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.data, "100", 3);
	assert_int_equal(v.flags, 31);
	assert_int_equal(v.expire_s, 500);
	uint64_t cas_before = v.cas;
	/* Shrinking text is written in place and blank-padded, as memcached does. */
	assert_int_equal(decr(s, "len", 1, &n), 0);
	assert_int_equal(n, 99);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.data, "99 ", 3);
	assert_true(v.cas > cas_before);
	/* The padded text still reads as a number. */
	assert_int_equal(incr(s, "len", 1, &n), 0);
	assert_int_equal(n, 100);
	expect(s, "len", "100", 1);
	assert_int_equal(incr(s, "len", 99900, &n), 0);
	expect(s, "len", "100000", 1);

	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.items, 1);
	assert_int_equal(st.bytes, store_item_bytes(3, 6));
}

static void
test_incr_not_numeric(void **state)
{
	struct store *s = *state;
	/* As Debian's memcached answers them: blanks alone are not a number. */
	static const char *const bad[] = {"abc", "",    "12a",  "-1", "x1", "18446744073709551616",
	                                  "+",   "--1", "0x10", " ",  "  ", "\r\n"};
	static const struct {
		const char *text;
		uint64_t value;
	} good[] = {
	        {" 7", 7}, {"7 ", 7},     {"7\r\n", 7},   {"+7", 7},
	        {"-0", 0}, {"00012", 12}, {"12 abc", 12},
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(set(s, "nn", bad[i], 1), 0);
		assert_int_equal(incr(s, "nn", 1, &v), -SP_ENOTNUM);
		assert_int_equal(decr(s, "nn", 1, &v), -SP_ENOTNUM);
		expect(s, "nn", bad[i], 1);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(set(s, "ok", good[i].text, 1), 0);
		assert_int_equal(incr(s, "ok", 1, &v), 0);
		assert_int_equal(v, good[i].value + 1);
	}
	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.errors, 2 * (sizeof(bad) / sizeof(bad[0])));
}

static void
test_binary_incr_with_initial(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("ctr");
	struct store_arith a = {
	        .op = STORE_INCR, .delta = 5, .create = true, .initial = 40, .expire_s = 30};
	struct store_value v;
	uint64_t n, cas1, cas2;

	/* Missing: created with the initial value, delta not applied. */
	assert_int_equal(store_arith(s, &k, &a, 1, &n, &cas1), 0);
	assert_int_equal(n, 40);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.data, "40", 2);
	assert_int_equal(v.flags, 0);
	assert_int_equal(v.expire_s, 30);
	assert_int_equal(v.cas, cas1);
	/* Present: delta applied. */
	assert_int_equal(store_arith(s, &k, &a, 1, &n, &cas2), 0);
	assert_int_equal(n, 45);
	assert_true(cas2 > cas1);
	/* CAS check. */
	a.cas = cas1;
	assert_int_equal(store_arith(s, &k, &a, 1, &n, NULL), -SP_EVERSION);
	a.cas = cas2;
	a.op = STORE_DECR;
	a.delta = 50;
	assert_int_equal(store_arith(s, &k, &a, 1, &n, NULL), 0);
	assert_int_equal(n, 0);
	/* Expiry from the create is honoured. */
	assert_int_equal(store_get(s, &k, 30, &v), -SP_ENOTFOUND);
	a.cas = 0;
	a.op = STORE_DECR;
	a.initial = UINT64_MAX;
	a.expire_s = 0;
	assert_int_equal(store_arith(s, &k, &a, 31, &n, NULL), 0);
	assert_int_equal(n, UINT64_MAX);
	expect(s, "ctr", "18446744073709551615", 31);
	/* Without create a missing key is a miss. */
	struct store_key k2 = test_key_str("ctr2");
	a.create = false;
	assert_int_equal(store_arith(s, &k2, &a, 31, &n, NULL), -SP_ENOTFOUND);
	a.op = (enum store_arith_op)9;
	assert_int_equal(store_arith(s, &k, &a, 31, &n, NULL), -EINVAL);
}

static void
test_expiry_touch_gat(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("ttl");
	struct store_value v;
	struct store_stats st;

	assert_int_equal(put(s, STORE_SET, "ttl", "v", 0, 100, 0, 50, NULL), 0);
	expect(s, "ttl", "v", 99);
	expect_missing(s, "ttl", 100);
	store_stats_get(s, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.items, 0);

	/* touch extends. */
	assert_int_equal(put(s, STORE_SET, "ttl", "v", 0, 110, 0, 100, NULL), 0);
	assert_int_equal(store_touch(s, &k, 200, 105), 0);
	expect(s, "ttl", "v", 150);
	expect_missing(s, "ttl", 200);
	assert_int_equal(store_touch(s, &k, 300, 201), -SP_ENOTFOUND);

	/* gat returns the value and sets the new expiry; CAS unchanged. */
	uint64_t cas;
	assert_int_equal(put(s, STORE_SET, "ttl", "w", 0, 210, 0, 201, &cas), 0);
	assert_int_equal(store_gat(s, &k, 0, 205, &v), 0);
	assert_int_equal(v.len, 1);
	assert_int_equal(v.expire_s, 0);
	assert_int_equal(v.cas, cas);
	expect(s, "ttl", "w", 5000);
	assert_int_equal(store_gat(s, &k, 6000, 5000, &v), 0);
	expect_missing(s, "ttl", 6000);
	assert_int_equal(store_gat(s, &k, 7000, 6000, &v), -SP_ENOTFOUND);

	/* An expiry in the past expires at once. */
	assert_int_equal(put(s, STORE_SET, "past", "v", 0, 10, 0, 20, NULL), 0);
	expect_missing(s, "past", 20);
}

static void
test_flush_all(void **state)
{
	struct store *s = *state;

	assert_int_equal(set(s, "a", "1", 10), 0);
	assert_int_equal(set(s, "b", "2", 10), 0);
	store_flush_all(s, 0, 10);
	expect_missing(s, "a", 10);
	expect_missing(s, "b", 10);
	/* Items stored after the flush are visible. */
	assert_int_equal(set(s, "a", "3", 10), 0);
	expect(s, "a", "3", 10);

	/* Delayed: nothing changes before the time, everything older goes at it. */
	store_flush_all(s, 20, 11);
	assert_int_equal(set(s, "c", "4", 15), 0);
	expect(s, "a", "3", 19);
	expect(s, "c", "4", 19);
	assert_int_equal(set(s, "d", "5", 20), 0); /* first call at the time applies it */
	expect_missing(s, "a", 20);
	expect_missing(s, "c", 21);
	expect(s, "d", "5", 21);

	/* A pending flush whose time has passed is final even if no call came in between. */
	assert_int_equal(set(s, "e", "6", 22), 0);
	store_flush_all(s, 30, 22);
	store_flush_all(s, 60, 31);
	expect_missing(s, "e", 31);
	assert_int_equal(set(s, "d", "5", 31), 0);

	/* A later call replaces a pending one. */
	store_flush_all(s, 70, 32);
	store_flush_all(s, 80, 33);
	expect(s, "d", "5", 75);
	expect_missing(s, "d", 80);

	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.ops[STORE_OP_FLUSH], 6);
	assert_int_equal(st.items, 0);
	assert_int_equal(st.expired, 7);
}

static void
test_key_limits(void **state)
{
	struct store *s = *state;
	char key[STORE_KEY_MAX + 1];
	struct store_value v;

	memset(key, 'k', sizeof(key));
	struct store_key at = test_key(key, STORE_KEY_MAX);
	struct store_key over = test_key(key, STORE_KEY_MAX + 1);
	struct store_write w = {.value = "v", .value_len = 1};
	uint64_t n;

	assert_int_equal(store_set(s, STORE_SET, &at, &w, 1, NULL), 0);
	assert_int_equal(store_get(s, &at, 1, &v), 0);
	assert_int_equal(store_set(s, STORE_SET, &over, &w, 1, NULL), -SP_ETOOBIG);
	assert_int_equal(store_get(s, &over, 1, &v), -SP_ETOOBIG);
	assert_int_equal(store_delete(s, &over, 0, 1), -SP_ETOOBIG);
	assert_int_equal(store_incr(s, &over, 1, 1, &n), -SP_ETOOBIG);
	assert_int_equal(store_touch(s, &over, 1, 1), -SP_ETOOBIG);

	struct store_key empty = test_key(key, 0);
	assert_int_equal(store_set(s, STORE_SET, &empty, &w, 1, NULL), -EINVAL);
	assert_int_equal(store_get(s, NULL, 1, &v), -EINVAL);
	assert_int_equal(store_set(s, STORE_SET, &at, NULL, 1, NULL), -EINVAL);
	struct store_write wnull = {.value = NULL, .value_len = 3};
	assert_int_equal(store_set(s, STORE_SET, &at, &wnull, 1, NULL), -EINVAL);
	assert_int_equal(store_set(s, STORE_MODE_COUNT, &at, &w, 1, NULL), -EINVAL);
	assert_int_equal(store_get_copy_concurrent(s, &over, 1, key, sizeof(key), &v), -SP_ETOOBIG);

	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.errors, 10);
}

static void
test_value_limits(void **state)
{
	(void)state;
	struct store *s = test_store_new(BIG_BYTES, 0);
	assert_non_null(s);
	uint8_t *buf = malloc(STORE_VALUE_MAX + 1);
	assert_non_null(buf);
	for (size_t i = 0; i <= STORE_VALUE_MAX; i++)
		buf[i] = (uint8_t)(i * 7);
	struct store_key k = test_key_str("big");
	struct store_write w = {.value = buf, .value_len = STORE_VALUE_MAX};
	struct store_value v;

	assert_int_equal(store_value_max(s, 3), STORE_VALUE_MAX);
	assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, STORE_VALUE_MAX);
	assert_memory_equal(v.data, buf, STORE_VALUE_MAX);
	/* append past the limit is refused and leaves the value alone. */
	struct store_write one = {.value = "x", .value_len = 1};
	assert_int_equal(store_set(s, STORE_APPEND, &k, &one, 1, NULL), -SP_ETOOBIG);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_int_equal(v.len, STORE_VALUE_MAX);
	w.value_len = STORE_VALUE_MAX + 1;
	assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), -SP_ETOOBIG);
	assert_int_equal(store_check(s), 0);
	free(s);

	/* A small store holds up to half its log; more is SP_EFULL, not SP_ETOOBIG. */
	s = test_store_new(SMALL_BYTES, 0);
	assert_non_null(s);
	size_t max = store_value_max(s, 3);
	assert_true(max < STORE_VALUE_MAX);
	assert_true(max > SMALL_BYTES / 4);
	w.value_len = (uint32_t)max;
	assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_memory_equal(v.data, buf, max);
	w.value_len = (uint32_t)max + 1;
	assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), -SP_EFULL);
	assert_int_equal(store_set(s, STORE_APPEND, &k, &one, 1, NULL), -SP_EFULL);
	/* Repeated maximum writes wrap the log and keep working. */
	w.value_len = (uint32_t)max;
	for (int i = 0; i < 10; i++) {
		buf[0] = (uint8_t)i;
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		assert_int_equal(store_get(s, &k, 1, &v), 0);
		assert_int_equal(((const uint8_t *)v.data)[0], i);
		assert_int_equal(store_check(s), 0);
	}
	free(buf);
	free(s);
}

static void
test_cas_unique(void **state)
{
	struct store *s = *state;
	uint64_t last = 0;
	char key[16];

	/* Every successful change, on any key and of any kind, gets a new, larger version. */
	for (int i = 0; i < 2000; i++) {
		uint64_t cas;
		snprintf(key, sizeof(key), "c%d", i % 37);
		struct store_key k = test_key_str(key);
		struct store_write w = {.value = "5", .value_len = 1};
		struct store_arith a = {.op = STORE_INCR, .delta = 1};
		struct store_value v;
		switch (i % 4) {
		case 0:
		case 1:
			assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, &cas), 0);
			break;
		case 2:
			assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
			assert_int_equal(store_set(s, STORE_APPEND, &k, &w, 1, &cas), 0);
			break;
		default:
			assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
			assert_int_equal(store_arith(s, &k, &a, 1, NULL, &cas), 0);
			assert_int_equal(store_get(s, &k, 1, &v), 0);
			assert_int_equal(v.cas, cas);
			break;
		}
		assert_true(cas > last);
		last = cas;
	}
	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.cas_last, last);
	/* Deleting and re-adding never reuses a version. */
	struct store_key k = test_key_str("c1");
	uint64_t cas;
	assert_int_equal(store_delete(s, &k, 0, 1), 0);
	assert_int_equal(put(s, STORE_ADD, "c1", "z", 0, 0, 0, 1, &cas), 0);
	assert_true(cas > last);
}

/* Fills a store until it evicts; returns how many keys were written. */
static int
fill_until_evicting(struct store *s, int keys_max, int value_len)
{
	char key[16];
	char value[256];
	struct store_stats st;

	memset(value, 'v', sizeof(value));
	for (int i = 0; i < keys_max; i++) {
		snprintf(key, sizeof(key), "f%07d", i);
		struct store_key k = test_key_str(key);
		struct store_write w = {.value = value, .value_len = (uint32_t)value_len};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		store_stats_get(s, &st);
		if (st.evictions - st.evictions_index > 0)
			return i + 1;
	}
	return keys_max;
}

static void
test_eviction_when_full(void **state)
{
	struct store *s = *state;
	struct store_stats st;
	char key[16];
	const int total = 20000;

	int first = fill_until_evicting(s, total, 100);
	assert_true(first < total);
	/* Keep writing: the store keeps working, counts evictions, stays consistent. */
	char value[100];
	memset(value, 'w', sizeof(value));
	for (int i = first; i < total; i++) {
		snprintf(key, sizeof(key), "f%07d", i);
		struct store_key k = test_key_str(key);
		struct store_write w = {.value = value, .value_len = sizeof(value)};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
	}
	assert_int_equal(store_check(s), 0);
	store_stats_get(s, &st);
	assert_true(st.evictions > (uint64_t)(total - first) / 2);
	assert_true(st.bytes <= st.log_bytes);
	/* Items written plus removed equals items present plus evicted. */
	assert_int_equal(st.items + st.evictions, (uint64_t)total);
	/* The newest items are there, the oldest gone. */
	expect_missing(s, "f0000000", 1);
	snprintf(key, sizeof(key), "f%07d", total - 1);
	struct store_key last = test_key_str(key);
	struct store_value v;
	assert_int_equal(store_get(s, &last, 1, &v), 0);
	assert_int_equal(v.len, sizeof(value));
	assert_memory_equal(v.data, value, sizeof(value));
}

/*
 * Hot and cold keys over a store two thirds the size of the data: keys read between
 * writes survive eviction far better than keys never read again.
 */
static void
test_eviction_keeps_recently_read(void **state)
{
	struct store *s = *state;
	char key[16];
	char value[64];
	const int hot = 200;
	const int rounds = 120;
	int cold_next = 0;
	struct store_value v;

	memset(value, 'h', sizeof(value));
	for (int i = 0; i < hot; i++) {
		snprintf(key, sizeof(key), "hot%d", i);
		struct store_key k = test_key_str(key);
		struct store_write w = {.value = value, .value_len = sizeof(value)};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
	}
	for (int r = 0; r < rounds; r++) {
		/* Each round turns about a tenth of the log over. */
		for (int j = 0; j < 200; j++, cold_next++) {
			snprintf(key, sizeof(key), "cold%d", cold_next);
			struct store_key k = test_key_str(key);
			struct store_write w = {.value = value, .value_len = sizeof(value)};
			assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		}
		for (int i = 0; i < hot; i++) {
			snprintf(key, sizeof(key), "hot%d", i);
			struct store_key k = test_key_str(key);
			(void)store_get(s, &k, 1, &v);
		}
	}
	int hot_alive = 0;
	for (int i = 0; i < hot; i++) {
		snprintf(key, sizeof(key), "hot%d", i);
		struct store_key k = test_key_str(key);
		struct store_value hv;
		hot_alive += store_get(s, &k, 1, &hv) == 0;
	}
	/* Cold items of the first half of the run are certainly gone. */
	int cold_alive = 0;
	for (int i = 0; i < cold_next / 2; i++) {
		snprintf(key, sizeof(key), "cold%d", i);
		struct store_key k = test_key_str(key);
		struct store_value cv;
		cold_alive += store_get(s, &k, 1, &cv) == 0;
	}
	struct store_stats st;
	store_stats_get(s, &st);
	printf("eviction: %d/%d hot alive, %d/%d old cold alive, index drops %" PRIu64
	       ", reinserts %" PRIu64 " evictions %" PRIu64 "\n",
	       hot_alive, hot, cold_alive, cold_next / 2, st.evictions_index, st.reinserts,
	       st.evictions);
	assert_true(st.reinserts > 0);
	assert_true(st.evictions > (uint64_t)cold_next / 2);
	/* Any miss left would come from the lossy index (a full pair drops its oldest entry). */
	assert_true(hot_alive >= hot * 19 / 20);
	assert_int_equal(cold_alive, 0);
}

/*
 * Keys that share a bucket pair: the index keeps STORE_BUCKET_CHOICES x STORE_BUCKET_SLOTS
 * of them, then drops the oldest.
 */
static void
test_index_bucket_full(void **state)
{
	struct store *s = *state;
	enum { CAP = STORE_BUCKET_CHOICES * STORE_BUCKET_SLOTS, KEYS = CAP + 2 };
	char key[KEYS][8];
	struct store_value v;
	struct store_stats st;

	for (unsigned i = 0; i < KEYS; i++) {
		snprintf(key[i], sizeof(key[i]), "b%u", i);
		/* Same high bits (buckets) and same tag: only the key bytes tell them apart. */
		struct store_key k = {.data = key[i],
		                      .len = (uint32_t)strlen(key[i]),
		                      .hash = 0x1234567800abcdefull};
		struct store_write w = {.value = key[i], .value_len = k.len};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		/* Until the pair is full every key stays readable. */
		for (unsigned j = 0; j <= i && i < CAP; j++) {
			struct store_key kj = {.data = key[j],
			                       .len = (uint32_t)strlen(key[j]),
			                       .hash = 0x1234567800abcdefull};
			assert_int_equal(store_get(s, &kj, 1, &v), 0);
			assert_int_equal(v.len, kj.len);
			assert_memory_equal(v.data, key[j], v.len);
		}
	}
	store_stats_get(s, &st);
	assert_int_equal(st.evictions_index, 2);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.items, CAP);
	for (unsigned i = 0; i < KEYS; i++) {
		struct store_key k = {.data = key[i],
		                      .len = (uint32_t)strlen(key[i]),
		                      .hash = 0x1234567800abcdefull};
		assert_int_equal(store_get(s, &k, 1, &v), i < 2 ? -SP_ENOTFOUND : 0);
	}
}

/*
 * Per-item overhead: the static bound, and the measured one. A store sized for items of
 * 16 bytes (8-byte key and value) filled until the log wraps holds items whose total
 * budget, divided by their count, exceeds key + value by at most STORE_ITEM_OVERHEAD_MAX.
 */
static void
test_item_overhead(void **state)
{
	(void)state;
	const size_t budget = 8u * 1024u * 1024u;
	struct store *s = test_store_new(budget, 16);
	struct store_stats st;
	char key[9], value[9];

	assert_non_null(s);
	assert_true(store_item_bytes(8, 8) - 16 <= STORE_ITEM_OVERHEAD_MAX);
	assert_true(STORE_ITEM_HEADER_BYTES + 7 + 64 / STORE_BUCKET_ITEMS_PLAN <=
	            STORE_ITEM_OVERHEAD_MAX);
	uint64_t written = 0;
	for (uint64_t i = 0; i < budget / 16; i++) {
		/* i < 2^32 here (budget / 16 items): 8 hex digits each. */
		snprintf(key, sizeof(key), "%08" PRIx32, (uint32_t)i);
		snprintf(value, sizeof(value), "%08" PRIx32, (uint32_t)~i);
		struct store_key k = test_key(key, 8);
		struct store_write w = {.value = value, .value_len = 8};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		written++;
		store_stats_get(s, &st);
		if (st.evictions > st.evictions_index)
			break;
	}
	store_stats_get(s, &st);
	double per_item = (double)budget / (double)st.items;
	printf("overhead: %" PRIu64 " items of 16 B in %zu B: %.1f B/item, %.1f B overhead; "
	       "index drops %" PRIu64 "\n",
	       st.items, budget, per_item, per_item - 16, st.evictions_index);
	assert_true(per_item - 16 <= STORE_ITEM_OVERHEAD_MAX);
	/* The lossy index drops few items at the planned occupancy (under 1%). */
	assert_true(st.evictions_index * 100 < written);
	assert_int_equal(store_check(s), 0);
	free(s);
}

static void
test_init_validation(void **state)
{
	(void)state;
	struct store_params p = {.bytes = STORE_BYTES_MIN - 1};
	void *mem = aligned_alloc(STORE_MEM_ALIGN, STORE_BYTES_MIN * 2);

	assert_non_null(mem);
	assert_int_equal(store_memsize(&p), 0);
	assert_int_equal(store_memsize(NULL), 0);
	errno = 0;
	assert_null(store_init(mem, STORE_BYTES_MIN * 2, &p));
	assert_int_equal(errno, EINVAL);
	p.bytes = STORE_BYTES_MIN + 10;
	assert_int_equal(store_memsize(&p), STORE_BYTES_MIN);
	assert_null(store_init((uint8_t *)mem + 8, STORE_BYTES_MIN, &p));
	assert_null(store_init(mem, STORE_BYTES_MIN - 64, &p));
	assert_null(store_init(NULL, STORE_BYTES_MIN, &p));
	p.item_bytes_avg = STORE_KEY_MAX + STORE_VALUE_MAX + 1;
	assert_int_equal(store_memsize(&p), 0);
	struct store_params huge = {.bytes = STORE_BYTES_MAX + 1};
	assert_int_equal(store_memsize(&huge), 0);
	huge.bytes = STORE_BYTES_MAX;
	assert_int_equal(store_memsize(&huge), STORE_BYTES_MAX);
	/* Items averaging the maximum still give a usable store. */
	p.item_bytes_avg = STORE_KEY_MAX + STORE_VALUE_MAX;
	struct store *s = store_init(mem, STORE_BYTES_MIN, &p);
	assert_non_null(s);
	assert_int_equal(set(s, "k", "v", 1), 0);
	expect(s, "k", "v", 1);
	assert_int_equal(store_check(s), 0);
	assert_string_equal(store_op_name(STORE_OP_GAT), "gat");
	assert_string_equal(store_op_name(STORE_OP_COUNT), "unknown");
	for (int op = 0; op < STORE_OP_COUNT; op++)
		assert_string_not_equal(store_op_name((enum store_op)op), "unknown");
	free(mem);
}

static void
test_copy_concurrent_single_thread(void **state)
{
	struct store *s = *state;
	struct store_key k = test_key_str("cc");
	struct store_value v;
	char buf[8];
	uint64_t cas;

	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), -SP_ENOTFOUND);
	assert_int_equal(put(s, STORE_SET, "cc", "12345678", 3, 10, 0, 1, &cas), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), 0);
	assert_ptr_equal(v.data, buf);
	assert_int_equal(v.len, 8);
	assert_memory_equal(buf, "12345678", 8);
	assert_int_equal(v.flags, 3);
	assert_int_equal(v.cas, cas);
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, 7, &v), -SP_ETOOBIG);
	assert_int_equal(v.len, 8);
	assert_int_equal(store_get_copy_concurrent(s, &k, 10, buf, sizeof(buf), &v), -SP_ENOTFOUND);
	store_flush_all(s, 5, 1);
	assert_int_equal(store_get_copy_concurrent(s, &k, 4, buf, sizeof(buf), &v), 0);
	assert_int_equal(store_get_copy_concurrent(s, &k, 5, buf, sizeof(buf), &v), -SP_ENOTFOUND);
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, NULL, 8, &v), -EINVAL);
}

/*
 * The prefetch hooks, on the store or on its layout, read only: results, stats and
 * invariants are unchanged by them. The layout says what the stats say of the index and log.
 */
static void
test_prefetch_hooks(void **state)
{
	struct store *s = *state;
	struct store_stats before, after;
	struct store_layout l;
	char key[16];

	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "pf%d", i);
		assert_int_equal(set(s, key, key, 1), 0);
	}
	store_stats_get(s, &before);
	store_layout_get(s, &l);
	assert_non_null(l.buckets);
	assert_non_null(l.log);
	assert_int_equal(l.log_bytes, before.log_bytes);
	assert_int_equal(l.nbuckets, before.index_buckets);
	assert_true((const uint8_t *)l.buckets < l.log);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "pf%d", i);
		struct store_key k = test_key_str(key);
		store_prefetch(s, k.hash);
		store_layout_prefetch(&l, k.hash);
		store_layout_prefetch_item(&l, k.hash, k.len);
		store_layout_prefetch_item(&l, ~k.hash, STORE_KEY_MAX);
	}
	store_stats_get(s, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "pf%d", i);
		expect(s, key, key, 1);
	}
}

/* store_get_probed of key with a probe taken now (the worker probes a burst ahead). */
static int
probed_get(struct store *s, const struct store_key *k, const struct store_probe *p, uint32_t now_s,
           struct store_value *v)
{
	return store_get_probed(s, k, p, now_s, v);
}

static void
probe_of(const struct store *s, const struct store_key *k, struct store_probe *p)
{
	struct store_layout l;

	store_layout_get(s, &l);
	store_layout_probe(&l, k->hash, k->len, p);
}

/*
 * A probe is a hint the get checks: it finds the item when nothing changed, and when the
 * store changed between probe and get (overwrite, delete, expiry, a key inserted after a
 * probe that found nothing, a different key of the same hash) the get answers what
 * store_get answers, with the same counters.
 */
static void
test_probe_checked(void **state)
{
	struct store *s = *state;
	struct store_key a = test_key_str("probe-a");
	struct store_key late = test_key_str("probe-late");
	struct store_probe p, q;
	struct store_value v;
	struct store_stats st;

	assert_int_equal(set(s, "probe-a", "one", 1), 0);
	probe_of(s, &a, &p);
	assert_non_null(p.slot);
	assert_int_equal(probed_get(s, &a, &p, 1, &v), 0);
	assert_int_equal(v.len, 3);
	assert_memory_equal(v.data, "one", 3);
	assert_int_equal(probed_get(s, &a, NULL, 1, &v), 0); /* NULL: a plain store_get */

	/* Overwritten after the probe: the new item, not the old one. */
	assert_int_equal(set(s, "probe-a", "second", 1), 0);
	assert_int_equal(probed_get(s, &a, &p, 1, &v), 0);
	assert_int_equal(v.len, 6);
	assert_memory_equal(v.data, "second", 6);

	/* Deleted after the probe. */
	probe_of(s, &a, &p);
	assert_int_equal(store_delete(s, &a, 0, 1), 0);
	assert_int_equal(probed_get(s, &a, &p, 1, &v), -SP_ENOTFOUND);

	/* Probed while missing, inserted before the get. */
	probe_of(s, &late, &q);
	assert_null(q.slot);
	assert_int_equal(set(s, "probe-late", "here", 1), 0);
	assert_int_equal(probed_get(s, &late, &q, 1, &v), 0);
	assert_memory_equal(v.data, "here", 4);

	/* Another key with the same hash takes the probe's entry to an item that is not its. */
	struct store_key twin = {.data = "probe-twin", .len = 10, .hash = late.hash};
	probe_of(s, &late, &q);
	assert_non_null(q.slot);
	assert_int_equal(probed_get(s, &twin, &q, 1, &v), -SP_ENOTFOUND);

	/* Expired between probe and get: unlinked and counted as store_get does. */
	assert_int_equal(put(s, STORE_SET, "probe-a", "brief", 0, 5, 0, 1, NULL), 0);
	probe_of(s, &a, &p);
	store_stats_get(s, &st);
	uint64_t expired = st.expired;
	assert_int_equal(probed_get(s, &a, &p, 5, &v), -SP_ENOTFOUND);
	store_stats_get(s, &st);
	assert_int_equal(st.expired, expired + 1);
	assert_int_equal(st.items, 1);

	/* Bad arguments are refused as store_get refuses them, probe or not. */
	assert_int_equal(probed_get(s, &late, &q, 1, NULL), -EINVAL);
	struct store_key empty = {.data = "x", .len = 0, .hash = late.hash};
	assert_int_equal(probed_get(s, &empty, &q, 1, &v), -EINVAL);

	store_stats_get(s, &st);
	assert_int_equal(st.ops[STORE_OP_GET], 9);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 3);
	assert_int_equal(store_check(s), 0);
}

#define PROBE_KEYS  48u
#define PROBE_BURST 16u

/*
 * As a worker serves a burst: every request of a burst is probed first, then the burst
 * runs in order (sets, deletes, appends and gets over few keys, so a get's probe is often
 * stale by the time it runs). Gets through their probes answer what a model of the store
 * holds; the store's invariants hold throughout.
 */
static void
test_probe_bursts_against_model(void **state)
{
	struct store *s = *state;
	uint64_t rng = test_seed("test_probe_bursts_against_model");
	char model[PROBE_KEYS][24];
	bool present[PROBE_KEYS] = {false};

	for (uint32_t round = 0; round < 400; round++) {
		uint32_t key_of[PROBE_BURST], op_of[PROBE_BURST];
		char names[PROBE_BURST][16];
		struct store_key keys[PROBE_BURST];
		struct store_probe probes[PROBE_BURST];

		for (uint32_t i = 0; i < PROBE_BURST; i++) {
			key_of[i] = (uint32_t)(test_rand(&rng) % PROBE_KEYS);
			op_of[i] = (uint32_t)(test_rand(&rng) %
			                      8); /* 0-3 get, 4-5 set, 6 append, 7 delete */
			snprintf(names[i], sizeof(names[i]), "pk%u", key_of[i]);
			keys[i] = test_key_str(names[i]);
			probe_of(s, &keys[i], &probes[i]);
		}
		for (uint32_t i = 0; i < PROBE_BURST; i++) {
			uint32_t k = key_of[i];
			struct store_value v;
			char val[24];
			int rc;

			switch (op_of[i]) {
			case 4:
			case 5:
				snprintf(val, sizeof(val), "v%u.%u", round, i);
				assert_int_equal(set(s, names[i], val, 1), 0);
				strcpy(model[k], val);
				present[k] = true;
				break;
			case 6:
				rc = put(s, STORE_APPEND, names[i], "+", 0, 0, 0, 1, NULL);
				if (!present[k]) {
					assert_int_equal(rc, -SP_ENOTFOUND);
				} else {
					assert_int_equal(rc, 0);
					if (strlen(model[k]) + 1 < sizeof(model[k]))
						strcat(model[k], "+");
					else /* keep the model's values short: reset */
						assert_int_equal(
						        set(s, names[i], strcpy(model[k], "r"), 1),
						        0);
				}
				break;
			case 7:
				rc = store_delete(s, &keys[i], 0, 1);
				assert_int_equal(rc, present[k] ? 0 : -SP_ENOTFOUND);
				present[k] = false;
				break;
			default:
				rc = store_get_probed(s, &keys[i], &probes[i], 1, &v);
				if (!present[k]) {
					assert_int_equal(rc, -SP_ENOTFOUND);
					break;
				}
				assert_int_equal(rc, 0);
				assert_int_equal(v.len, strlen(model[k]));
				assert_memory_equal(v.data, model[k], v.len);
				break;
			}
		}
		if (round % 50 == 49)
			assert_int_equal(store_check(s), 0);
	}
}

#define NODE_STORES 5u
#define NODE_KEYS   64u

/*
 * A node's stores share a CAS stride (the partition count) with distinct bases, so the
 * versions its items show are unique node-wide, as memcached's are: over random sets,
 * appends, increments, CAS writes, deletes and a flush_all spread over five stores, no
 * two live items of any store ever show the same version, every version of a store is its
 * base plus a multiple of the stride, and each store's versions keep rising.
 */
static void
test_cas_unique_across_stores(void **state)
{
	(void)state;
	uint64_t rng = test_seed("test_cas_unique_across_stores");
	struct store *st[NODE_STORES];
	uint64_t last[NODE_STORES] = {0};
	uint64_t
	        shown[NODE_KEYS]; /* the version key k (in store k % NODE_STORES) shows, 0 = none */

	struct store_params bad = {.bytes = SMALL_BYTES, .cas_base = 3, .cas_stride = 3};
	assert_int_equal(store_memsize(&bad), 0);
	bad.cas_stride = 0; /* stride 0 means 1: only base 0 */
	assert_int_equal(store_memsize(&bad), 0);
	bad.cas_base = 0;
	assert_int_not_equal(store_memsize(&bad), 0);

	for (uint32_t i = 0; i < NODE_STORES; i++) {
		struct store_params p = {
		        .bytes = SMALL_BYTES, .cas_base = i, .cas_stride = NODE_STORES};
		void *mem = aligned_alloc(STORE_MEM_ALIGN, store_memsize(&p));

		assert_non_null(mem);
		st[i] = store_init(mem, store_memsize(&p), &p);
		assert_non_null(st[i]);
	}
	memset(shown, 0, sizeof(shown));
	for (uint32_t round = 0; round < 4000; round++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t k = (uint32_t)(rng >> 33) % NODE_KEYS;
		uint32_t op = (uint32_t)(rng >> 20) % 6;
		struct store *s = st[k % NODE_STORES];
		char key[16];
		uint64_t cas = 0;
		int rc;

		snprintf(key, sizeof(key), "k%u", k);
		struct store_key sk = test_key_str(key);
		switch (op) {
		case 0:
			rc = put(s, STORE_SET, key, "1", 0, 0, 0, 1, &cas);
			break;
		case 1:
			rc = put(s, STORE_APPEND, key, "2", 0, 0, 0, 1, &cas);
			break;
		case 2:
			rc = store_arith(s, &sk,
			                 &(struct store_arith){.op = STORE_INCR, .delta = 1}, 1,
			                 NULL, &cas);
			break;
		case 3:
			rc = put(s, STORE_CAS, key, "3", 0, 0, shown[k], 1, &cas);
			break;
		case 4:
			rc = store_delete(s, &sk, 0, 1);
			if (rc == 0)
				shown[k] = 0;
			continue;
		default:
			if (round % 1000 == 999) {
				store_flush_all(s, 0, 1);
				for (uint32_t j = k % NODE_STORES; j < NODE_KEYS; j += NODE_STORES)
					shown[j] = 0;
			}
			continue;
		}
		if (rc != 0)
			continue;
		uint32_t si = k % NODE_STORES;
		assert_true(cas > last[si]);
		assert_int_equal(cas % NODE_STORES, si);
		last[si] = cas;
		shown[k] = cas;
		for (uint32_t j = 0; j < NODE_KEYS; j++)
			assert_true(j == k || shown[j] != cas);
	}
	/* Every live item reads back with the version the model holds. */
	for (uint32_t k = 0; k < NODE_KEYS; k++) {
		char key[16];
		struct store_value v;

		snprintf(key, sizeof(key), "k%u", k);
		struct store_key sk = test_key_str(key);
		int rc = store_get(st[k % NODE_STORES], &sk, 1, &v);
		if (shown[k] == 0) {
			assert_int_equal(rc, -SP_ENOTFOUND);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(v.cas, shown[k]);
		}
	}
	for (uint32_t i = 0; i < NODE_STORES; i++) {
		assert_int_equal(store_check(st[i]), 0);
		free(st[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_hit_miss_overwrite, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_delete, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_add_replace_cas, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_append_prepend, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_incr_decr, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_incr_length_change, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_incr_not_numeric, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_binary_incr_with_initial, setup_small,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_expiry_touch_gat, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_flush_all, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_key_limits, setup_small, teardown),
	        cmocka_unit_test(test_value_limits),
	        cmocka_unit_test_setup_teardown(test_cas_unique, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_eviction_when_full, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_eviction_keeps_recently_read, setup_small,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_index_bucket_full, setup_small, teardown),
	        cmocka_unit_test(test_item_overhead),
	        cmocka_unit_test(test_init_validation),
	        cmocka_unit_test(test_cas_unique_across_stores),
	        cmocka_unit_test_setup_teardown(test_copy_concurrent_single_thread, setup_small,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_prefetch_hooks, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_probe_checked, setup_small, teardown),
	        cmocka_unit_test_setup_teardown(test_probe_bursts_against_model, setup_small,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
