/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * White-box tests of the store: this file includes store.c to reach its internals. It
 * checks the concurrent reader's retry bound, the log position arithmetic across the
 * 48-bit wrap of index entries, pads at the end of a lap, that store_check() notices
 * damage, and that tag_matches() (vector form on x86) agrees with its definition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dataplane/store/store.c"
#include "store_test_util.h"

static void
test_concurrent_retry_bound(void **state)
{
	(void)state;
	struct store *s = test_store_new(STORE_BYTES_MIN, 0);
	struct store_key k = test_key_str("busy");
	struct store_write w = {.value = "v", .value_len = 1};
	struct store_value v;
	char buf[8];

	assert_non_null(s);
	assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
	struct store_bucket *b = &s->buckets[bucket_index(s, k.hash)];

	/* A writer that never finishes: the reader gives up after its bound. */
	bucket_write_begin(b);
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), -SP_EBUSY);
	assert_int_equal(LD(&b->version) & 1u, 1);
	bucket_write_end(b);
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), 0);

	/* An entry behind the tail (space being reclaimed) is never read as a value. */
	uint64_t tail = LD(&s->tail);
	ST(&s->tail, LD(&s->head));
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), -SP_EBUSY);
	ST(&s->tail, tail);
	assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), 0);
	assert_int_equal(store_check(s), 0);
	free(s);
}

/*
 * Replacing an item that the same write's eviction reclaims: between the reclaim and the
 * new entry the bucket stays odd, so a concurrent reader retries instead of missing the
 * key; after the relink it reads the new value.
 */
static void
test_replace_reclaimed_item(void **state)
{
	(void)state;
	struct store *s = test_store_new(STORE_BYTES_MIN, 16);
	struct store_key a = test_key_str("first");
	struct store_write w = {.value = "old-value", .value_len = 9};
	struct store_value v;
	char buf[16], key[16];

	assert_non_null(s);
	assert_int_equal(store_set(s, STORE_SET, &a, &w, 1, NULL), 0);
	uint64_t n = store_item_bytes(a.len, 9);
	/* Fill the first lap up to less than one more item, with items of the same size. */
	for (int i = 0; LD(&s->head) + n <= s->log_bytes; i++) {
		snprintf(key, sizeof(key), "f%d", i);
		struct store_key k = test_key_str(key);
		/* Keep fillers out of the first key's bucket pair: no full bucket may drop it. */
		if ((bucket_index(s, k.hash) | 1u) == (bucket_index(s, a.hash) | 1u))
			k.hash ^= 1ull << 63;
		struct store_write fw = {.value = "0123456789abcdef",
		                         .value_len =
		                                 (uint32_t)(n - STORE_ITEM_HEADER_BYTES - k.len)};
		assert_int_equal(store_set(s, STORE_SET, &k, &fw, 1, NULL), 0);
	}
	assert_int_equal(LD(&s->tail), 0);

	struct loc loc;
	assert_true(lookup(s, &a, &loc));
	assert_int_equal(loc.off, 0);
	struct vparts vp = {.post = "new-value", .post_len = 9};
	uint64_t cas = cas_next(s);
	uint64_t off = item_append(s, &a, &vp, 0, 0, cas, &loc, 1);
	assert_true(loc.open);
	assert_true(LD(&s->tail) > 0);
	assert_int_equal(LD(&loc.b->version) & 1u, 1);
	assert_int_equal(store_get_copy_concurrent(s, &a, 1, buf, sizeof(buf), &v), -SP_EBUSY);
	relink_loc(s, &loc, off, a.hash);
	assert_false(loc.open);
	assert_int_equal(store_get_copy_concurrent(s, &a, 1, buf, sizeof(buf), &v), 0);
	assert_int_equal(v.len, 9);
	assert_memory_equal(buf, "new-value", 9);
	assert_int_equal(v.cas, cas);
	assert_int_equal(store_check(s), 0);
	free(s);
}

/*
 * Index entries keep offsets; positions (head, tail) are 64-bit counters that readers map
 * offsets back onto. Start the counters just before 2^51 and far from a lap boundary and
 * write through many laps: every lookup and the checker must agree on both sides.
 */
static void
test_position_wrap(void **state)
{
	(void)state;
	struct store *s = test_store_new(STORE_BYTES_MIN, 0);
	char key[16], value[64];
	struct store_value v;

	assert_non_null(s);
	uint64_t start = ((POS_MASK + 1) << POS_UNIT_SHIFT) - 8u * 1024u;
	ST(&s->head, start);
	ST(&s->tail, start);
	s->head_off = start % s->log_bytes;
	s->tail_off = s->head_off;
	char buf[sizeof(value)];
	for (int i = 0; i < 4000; i++) {
		snprintf(key, sizeof(key), "w%d", i % 50);
		memset(value, 'a' + i % 26, sizeof(value));
		struct store_key k = test_key_str(key);
		struct store_write w = {.value = value, .value_len = (uint32_t)(i % sizeof(value))};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		assert_int_equal(store_get(s, &k, 1, &v), 0);
		assert_int_equal(v.len, w.value_len);
		assert_memory_equal(v.data, value, v.len);
		assert_int_equal(store_get_copy_concurrent(s, &k, 1, buf, sizeof(buf), &v), 0);
		assert_int_equal(v.len, w.value_len);
		assert_memory_equal(buf, value, v.len);
		if (i % 64 == 0)
			assert_int_equal(store_check(s), 0);
	}
	assert_true(LD(&s->head) > (POS_MASK + 1) << POS_UNIT_SHIFT);
	assert_true(LD(&s->head) - start > 2 * s->log_bytes);
	assert_int_equal(off_to_pos(16, 1000, 8, 64), 1008);
	assert_int_equal(off_to_pos(0, 1000, 8, 64), 1056);
	assert_int_equal(store_check(s), 0);
	free(s);
}

/* Items that do not fit the rest of a lap start the next one; the gap is a pad. */
static void
test_lap_end_pads(void **state)
{
	(void)state;
	struct store *s = test_store_new(STORE_BYTES_MIN, 0);
	static uint8_t value[8192];
	struct store_value v = {0};
	char key[16];

	assert_non_null(s);
	memset(value, 'p', sizeof(value));
	/* Sizes chosen so that laps end with gaps both under and over a header. */
	for (unsigned i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "p%u", i);
		struct store_key k = test_key_str(key);
		uint32_t len = 1000 + (i * 4099u) % 7000u;
		struct store_write w = {.value = value, .value_len = len};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
		uint64_t pos_end = LD(&s->head) % s->log_bytes;
		assert_true(pos_end <= s->log_bytes);
		assert_int_equal(store_get(s, &k, 1, &v), 0);
		assert_int_equal(v.len, len);
		assert_int_equal(store_check(s), 0);
	}
	/* Every item sits whole inside the log. */
	struct store_key k = test_key_str("p199");
	assert_int_equal(store_get(s, &k, 1, &v), 0);
	assert_true((const uint8_t *)v.data + v.len <= s->log + s->log_bytes);
	free(s);
}

static void
test_check_detects_damage(void **state)
{
	(void)state;
	struct store *s = test_store_new(STORE_BYTES_MIN, 0);
	struct store_key k = test_key_str("dmg");
	struct store_write w = {.value = "value", .value_len = 5};

	assert_non_null(s);
	assert_int_equal(store_set(s, STORE_SET, &k, &w, 1, NULL), 0);
	assert_int_equal(store_check(s), 0);

	/* Stats that disagree with the log. */
	s->st.items++;
	assert_int_equal(store_check(s), -SP_ECORRUPT);
	s->st.items--;
	assert_int_equal(store_check(s), 0);

	/* An entry moved to a bucket outside its pair. */
	struct store_bucket *b = &s->buckets[bucket_index(s, k.hash)];
	struct store_bucket *other = &s->buckets[(bucket_index(s, k.hash) + 2) % s->nbuckets];
	uint64_t e = LD(&b->slot[0]);
	assert_int_not_equal(e, 0);
	ST(&other->slot[0], e);
	assert_int_equal(store_check(s), -SP_ECORRUPT);
	ST(&other->slot[0], 0);

	/* The same key indexed twice: a second copy in the log, linked into a free slot. */
	struct vparts copy = {.post = "value", .post_len = 5};
	uint64_t twin_off = item_append(s, &k, &copy, 0, 0, cas_next(s), NULL, 1);
	unsigned twin = 1;
	while (LD(&b->slot[twin]) != 0)
		twin++;
	ST(&b->slot[twin], entry_make(hash_tag(k.hash), twin_off));
	s->st.items++;
	s->st.bytes += item_size(item_at(s, twin_off));
	assert_int_equal(store_check(s), -SP_ECORRUPT);
	ST(&b->slot[twin], 0);
	s->st.items--;
	s->st.bytes -= item_size(item_at(s, twin_off));
	assert_int_equal(store_check(s), 0);

	/* A bucket left mid-write. */
	bucket_write_begin(b);
	assert_int_equal(store_check(s), -SP_ECORRUPT);
	bucket_write_end(b);

	/* A value length beyond the lap. */
	struct store_item *it = item_at(s, entry_off(e));
	uint32_t lens = it->lens;
	it->lens = 3 | (uint32_t)STORE_VALUE_MAX << LENS_VALUE_SHIFT;
	assert_int_equal(store_check(s), -SP_ECORRUPT);
	it->lens = lens;
	assert_int_equal(store_check(s), 0);
	free(s);
}

/*
 * tag_matches() against its definition (bit i: slot i's top 16 bits equal the tag), over
 * random buckets built to mislead it: empty slots, the tag in other 16-bit lanes of a
 * slot, tags with the top bit set (negative as 16-bit lanes), a version whose high bits
 * look like the tag, and several matching slots.
 */
static void
test_tag_matches_definition(void **state)
{
	(void)state;
	uint64_t rng = test_seed("test_tag_matches_definition");
	struct store_bucket b __attribute__((aligned(64)));

	for (unsigned round = 0; round < 200000; round++) {
		uint64_t tag = test_rand(&rng) & 0xffffu;
		unsigned want = 0;

		if (tag == 0)
			tag = (round & 1) ? 0xffffu : 0x8000u;
		/* The version is not a slot: its high bits may look like anything. */
		ST(&b.version, (round & 3) == 0 ? tag << ENTRY_TAG_SHIFT : test_rand(&rng));
		for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++) {
			uint64_t r = test_rand(&rng);
			uint64_t e;

			switch (r % 5) {
			case 0:
				e = 0;
				break;
			case 1: /* matching tag */
				e = tag << ENTRY_TAG_SHIFT | (r >> 16 & POS_MASK);
				break;
			case 2: /* the tag in every other lane, not the top one */
				e = (tag ^ 1u) << ENTRY_TAG_SHIFT | tag << 32 | tag << 16 | tag;
				break;
			default:
				e = r;
				break;
			}
			ST(&b.slot[i], e);
			if (e != 0 && entry_tag(e) == tag)
				want |= 1u << i;
		}
		if (tag_matches(&b, tag) != want) {
			fail_msg("round %u: tag %#" PRIx64 ", mask %#x, want %#x", round, tag,
			         tag_matches(&b, tag), want);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_concurrent_retry_bound),
	        cmocka_unit_test(test_replace_reclaimed_item),
	        cmocka_unit_test(test_position_wrap),
	        cmocka_unit_test(test_lap_end_pads),
	        cmocka_unit_test(test_check_detects_damage),
	        cmocka_unit_test(test_tag_matches_definition),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
