/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition store: a circular item log with a bucketed, tagged index (after MICA).
 *
 * Memory: [struct store][index buckets][log]. The log is written at head and reclaimed at
 * tail; both are byte counters that only grow (positions), and the owner also tracks their
 * offsets in the log (position % log_bytes) so that its paths never divide. An item never
 * straddles the end of the log: when it would, the rest of the lap is a pad. Index entries
 * hold a 16-bit tag and the item's offset in 8-byte units; every non-empty entry points at
 * an item in [tail, head), so offsets are unambiguous. When tail passes an item whose entry
 * still points at it, the entry is removed and the item counted as evicted (or expired).
 *
 * Concurrent readers rely on two seqlock-style rules, both "publish before you destroy":
 *  - every change to a bucket's entries, or to an item in place, happens between two
 *    increments of that bucket's version (odd while changing);
 *  - log space is reclaimed by storing the new tail and issuing a release fence before any
 *    byte of it is overwritten. A reader that saw an overwritten byte then sees the new
 *    tail after its acquire fence, and retries.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/store/store.h"

#define STORE_MAGIC      0x53504b5653544f52ull /* "SPKVSTOR" */
#define POS_UNIT_SHIFT   3u
#define POS_MASK         ((1ull << 48) - 1)
#define ENTRY_TAG_SHIFT  48u
#define LENS_KEY_MASK    0xffu
#define LENS_VALUE_SHIFT 8u
#define OFF_NONE         UINT64_MAX
/* An item read from the oldest quarter of a full log is moved to the head. */
#define REINSERT_AGE_DIV 4u
#define LOG_MIN_BYTES    4096u

struct store_bucket {
	_Atomic uint64_t version; /* odd while the owner changes the bucket or its items */
	_Atomic uint64_t slot[STORE_BUCKET_SLOTS]; /* 0 = empty, else tag << 48 | offset >> 3 */
};

/* Log header of an item; key then value follow, the whole padded to 8 bytes. */
struct store_item {
	uint32_t hash_hi; /* sp_key_hash_hi(): finds the bucket again at eviction */
	uint32_t lens;    /* key_len | value_len << 8; key_len 0 marks a pad to the lap end */
	uint32_t flags;
	uint32_t expire_s;
	uint64_t cas;
};

/*
 * What a GET reads and the two counters it bumps fill the first cache line, the one the
 * worker prefetches with the buckets: a GET that hits touches no other line of it.
 */
struct store {
	uint64_t log_bytes;
	struct store_bucket *buckets;
	uint8_t *log;
	uint32_t nbuckets;
	_Atomic uint32_t flush_at_s; /* pending flush_all time, 0 = none */
	_Atomic uint64_t flush_cas;  /* items with cas <= this are flushed */
	uint64_t head_off;           /* head % log_bytes (owner only) */
	uint64_t gets;               /* st.ops[STORE_OP_GET], counted here */
	uint64_t hits;               /* st.hits, counted here */
	uint64_t magic;
	_Atomic uint64_t head; /* log bytes ever written */
	_Atomic uint64_t tail; /* log bytes ever reclaimed */
	uint64_t tail_off;     /* tail % log_bytes (owner only) */
	_Atomic uint64_t cas_last;
	uint32_t cas_stride; /* cas_next() steps by it from cas_base (store_params) */
	uint32_t cas_base;
	struct store_stats st; /* but for ops[STORE_OP_GET] and hits (gets, hits above) */
};

SP_STATIC_ASSERT(sizeof(struct store_bucket) == 64, "a bucket is one cache line");
SP_STATIC_ASSERT(STORE_BUCKET_SLOTS == 7 && offsetof(struct store_bucket, slot) == 8,
                 "tag_matches: the version, then seven slots, as eight words");
SP_STATIC_ASSERT(offsetof(struct store, magic) == 64, "a GET's fields fill the first line");
SP_STATIC_ASSERT(sizeof(struct store_item) == STORE_ITEM_HEADER_BYTES, "item header size");
SP_STATIC_ASSERT(alignof(struct store_item) == 8, "items are 8-byte aligned");
SP_STATIC_ASSERT(STORE_ITEM_HEADER_BYTES + 7 + 64 / STORE_BUCKET_ITEMS_PLAN <=
                         STORE_ITEM_OVERHEAD_MAX,
                 "header + worst padding + index share must stay within the overhead bound");
SP_STATIC_ASSERT(STORE_VALUE_MAX < (1u << (32 - LENS_VALUE_SHIFT)), "value length fits lens");
SP_STATIC_ASSERT(STORE_KEY_MAX <= LENS_KEY_MASK, "key length fits lens");
SP_STATIC_ASSERT(STORE_OP_SET + STORE_PREPEND == STORE_OP_PREPEND, "mode maps to op");
SP_STATIC_ASSERT(STORE_BUCKET_ITEMS_PLAN < STORE_BUCKET_SLOTS, "index plan leaves headroom");
SP_STATIC_ASSERT(STORE_BUCKET_CHOICES == 2, "a key's buckets are index and index ^ 1");
SP_STATIC_ASSERT(STORE_BYTES_MAX >> POS_UNIT_SHIFT <= POS_MASK, "offsets fit an entry");

#define LD(p)    atomic_load_explicit((p), memory_order_relaxed)
#define ST(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

static inline uint64_t
align8(uint64_t n)
{
	return (n + 7u) & ~(uint64_t)7u;
}

size_t
store_item_bytes(size_t key_len, size_t value_len)
{
	return (size_t)align8(STORE_ITEM_HEADER_BYTES + (uint64_t)key_len + value_len);
}

static inline uint32_t
item_key_len(uint32_t lens)
{
	return lens & LENS_KEY_MASK;
}

static inline uint32_t
item_value_len(uint32_t lens)
{
	return lens >> LENS_VALUE_SHIFT;
}

static inline uint8_t *
item_key(struct store_item *it)
{
	return (uint8_t *)(it + 1);
}

static inline uint8_t *
item_value(struct store_item *it)
{
	return item_key(it) + item_key_len(it->lens);
}

static inline uint64_t
item_size(const struct store_item *it)
{
	return store_item_bytes(item_key_len(it->lens), item_value_len(it->lens));
}

/* Home bucket of a key from its hash's high 32 bits; its pair is the bucket index ^ 1. */
static inline uint32_t
home_in(uint32_t nbuckets, uint32_t hash_hi)
{
	return (uint32_t)(((uint64_t)hash_hi * nbuckets) >> 32);
}

static inline uint32_t
home_index(const struct store *s, uint32_t hash_hi)
{
	return home_in(s->nbuckets, hash_hi);
}

static inline uint32_t
bucket_index(const struct store *s, uint64_t hash)
{
	return home_index(s, sp_key_hash_hi(hash));
}

/*
 * Bucket choice c (0 = home, 1 = its pair) of the key whose home bucket is home, in an
 * index of nbuckets at buckets (a store's, or a store_layout's copy of where it is).
 */
static inline const struct store_bucket *
layout_bucket(const void *buckets, uint32_t nbuckets, uint32_t home, unsigned c)
{
	ASSERT(c < STORE_BUCKET_CHOICES);
	ASSERT((home ^ 1u) < nbuckets);
	(void)nbuckets;
	return (const struct store_bucket *)buckets + (home ^ c);
}

/* layout_bucket() of the store itself, for its owner to write. */
static inline struct store_bucket *
bucket_choice(const struct store *s, uint32_t home, unsigned c)
{
	return (struct store_bucket *)layout_bucket(s->buckets, s->nbuckets, home, c);
}

/* Tag from hash bits 16..31: independent of the partition bits (P <= 2^16) and of hash_hi. */
static inline uint64_t
hash_tag(uint64_t hash)
{
	uint64_t tag = (hash >> 16) & 0xffffu;

	return tag != 0 ? tag : 1;
}

static inline uint64_t
entry_make(uint64_t tag, uint64_t off)
{
	ASSERT(tag != 0);
	ASSERT((off & 7u) == 0);
	return tag << ENTRY_TAG_SHIFT | (off >> POS_UNIT_SHIFT);
}

static inline uint64_t
entry_tag(uint64_t e)
{
	return e >> ENTRY_TAG_SHIFT;
}

/* Offset in the log of the item entry e points at. */
static inline uint64_t
entry_off(uint64_t e)
{
	return (e & POS_MASK) << POS_UNIT_SHIFT;
}

static inline struct store_item *
item_at(const struct store *s, uint64_t off)
{
	ASSERT(off < s->log_bytes);
	return (struct store_item *)(s->log + off);
}

/* Bytes written since the item at off was: in 1..log_bytes for a live item. */
static inline uint64_t
item_age(const struct store *s, uint64_t off)
{
	return s->head_off > off ? s->head_off - off : s->head_off + s->log_bytes - off;
}

/*
 * Position of the item at off, given a tail (position) and its offset: the position in
 * [tail, tail + log_bytes) with that offset. Used by readers and the checker.
 */
static inline uint64_t
off_to_pos(uint64_t off, uint64_t tail, uint64_t tail_off, uint64_t log_bytes)
{
	return tail + (off >= tail_off ? off - tail_off : off + log_bytes - tail_off);
}

static void
bucket_write_begin(struct store_bucket *b)
{
	uint64_t v = LD(&b->version);

	ASSERT((v & 1u) == 0);
	ST(&b->version, v + 1);
	atomic_thread_fence(memory_order_release);
}

static void
bucket_write_end(struct store_bucket *b)
{
	uint64_t v = LD(&b->version);

	ASSERT((v & 1u) == 1);
	atomic_store_explicit(&b->version, v + 1, memory_order_release);
}

/* Applies a pending flush_all whose time has come. Can't fail. */
static void
flush_apply(struct store *s, uint32_t now_s)
{
	uint32_t at_s = LD(&s->flush_at_s);

	if (at_s == 0 || now_s < at_s)
		return;
	ST(&s->flush_cas, LD(&s->cas_last));
	atomic_store_explicit(&s->flush_at_s, 0, memory_order_release);
	ASSERT(LD(&s->flush_cas) <= LD(&s->cas_last));
}

static inline bool
item_dead(const struct store *s, const struct store_item *it, uint32_t now_s)
{
	if (it->expire_s != 0 && it->expire_s <= now_s)
		return true;
	return it->cas <= LD(&s->flush_cas);
}

static inline uint64_t
cas_next(struct store *s)
{
	uint64_t cas = LD(&s->cas_last) + s->cas_stride;

	ASSERT(cas > LD(&s->cas_last));
	ST(&s->cas_last, cas);
	return cas;
}

/* Where an item sits in the index. */
struct loc {
	struct store_bucket *b;
	unsigned slot;
	uint64_t off;
	struct store_item *it;
	bool open; /* b's version is odd: item_append reclaimed the item being replaced */
};

/* Compares key bytes, 8 at a time: keys are short and memcmp's call costs more. */
static inline bool
key_equal(const uint8_t *a, const void *b_, uint32_t len)
{
	const uint8_t *b = b_;
	uint32_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return false;
	}
	for (; i < len; i++) {
		if (a[i] != b[i])
			return false;
	}
	return true;
}

#if defined(__SSE2__)
/*
 * The bucket's eight words (the version, then the slots) in four vectors, compared with
 * tag t (in every 16-bit lane) as 16-bit lanes: a word whose tag (top 16 bits) matches has
 * a negative high half. The high halves are gathered into eight 16-bit lanes, one per
 * word, all ones where the word's tag matches. Plain vector loads: owner only (or a
 * prefetch, which tolerates a torn read).
 */
static inline __m128i
tag_lanes(const struct store_bucket *b, __m128i t)
{
	const __m128i *w = (const __m128i *)(const void *)b;
	__m128 c0 = _mm_castsi128_ps(_mm_cmpeq_epi16(_mm_load_si128(w), t));
	__m128 c1 = _mm_castsi128_ps(_mm_cmpeq_epi16(_mm_load_si128(w + 1), t));
	__m128 c2 = _mm_castsi128_ps(_mm_cmpeq_epi16(_mm_load_si128(w + 2), t));
	__m128 c3 = _mm_castsi128_ps(_mm_cmpeq_epi16(_mm_load_si128(w + 3), t));

	return _mm_packs_epi32(_mm_castps_si128(_mm_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1))),
	                       _mm_castps_si128(_mm_shuffle_ps(c2, c3, _MM_SHUFFLE(3, 1, 3, 1))));
}
#endif

/*
 * Bit i set when slot i of b holds an entry tagged tag. Computed without a branch per
 * slot (where a match sits is random, so those branches mispredict); empty slots (0)
 * never match because no tag is 0. Owner only (or a prefetch, which tolerates a torn
 * read).
 */
static inline unsigned
tag_matches(const struct store_bucket *b, uint64_t tag)
{
	unsigned mask;

	ASSERT(tag != 0);
#if defined(__SSE2__)
	__m128i hi = tag_lanes(b, _mm_set1_epi16((short)tag));

	/* One sign bit per word; the version's (bit 0) is dropped. */
	mask = ((unsigned)_mm_movemask_epi8(_mm_packs_epi16(hi, hi)) & 0xffu) >> 1;
#else
	mask = 0;
	for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++)
		mask |= (unsigned)(entry_tag(LD(&b->slot[i])) == tag) << i;
#endif
	ASSERT(mask < (1u << STORE_BUCKET_SLOTS));
	return mask;
}

/* tag_matches of a bucket pair at once: bits 0-6 for b0's slots, 7-13 for b1's. */
static inline unsigned
tag_matches_pair(const struct store_bucket *b0, const struct store_bucket *b1, uint64_t tag)
{
	ASSERT(tag != 0);
#if defined(__SSE2__)
	__m128i t = _mm_set1_epi16((short)tag);
	/* Sign bits: b0's version at bit 0, its slots at 1-7; b1's version at 8, slots 9-15. */
	unsigned m =
	        (unsigned)_mm_movemask_epi8(_mm_packs_epi16(tag_lanes(b0, t), tag_lanes(b1, t)));

	return (m >> 1 & 0x7fu) | (m >> 2 & 0x7fu << STORE_BUCKET_SLOTS);
#else
	return tag_matches(b0, tag) | tag_matches(b1, tag) << STORE_BUCKET_SLOTS;
#endif
}

/* Finds key's index entry, live or not. Returns true and fills *loc when present. */
static bool
lookup(const struct store *s, const struct store_key *key, struct loc *loc)
{
	uint32_t home = bucket_index(s, key->hash);
	uint64_t tag = hash_tag(key->hash);

	for (unsigned c = 0; c < STORE_BUCKET_CHOICES; c++) {
		struct store_bucket *b = bucket_choice(s, home, c);
		for (unsigned m = tag_matches(b, tag); m != 0; m &= m - 1) {
			unsigned i = (unsigned)__builtin_ctz(m);
			uint64_t e = LD(&b->slot[i]);

			ASSERT(e != 0);
			uint64_t off = entry_off(e);
			struct store_item *it = item_at(s, off);

			ASSERT(item_key_len(it->lens) != 0);
			if (item_key_len(it->lens) != key->len ||
			    !key_equal(item_key(it), key->data, key->len))
				continue;
			loc->b = b;
			loc->slot = i;
			loc->off = off;
			loc->it = it;
			loc->open = false;
			return true;
		}
	}
	return false;
}

/* Removes the entry at loc and accounts for the item leaving. */
static void
unlink_loc(struct store *s, const struct loc *loc)
{
	uint64_t size = item_size(loc->it);

	ASSERT(s->st.items > 0);
	ASSERT(s->st.bytes >= size);
	bucket_write_begin(loc->b);
	ST(&loc->b->slot[loc->slot], 0);
	bucket_write_end(loc->b);
	s->st.items--;
	s->st.bytes -= size;
}

/*
 * Whether the item at loc is live. An expired or flushed one is unlinked and counted (lazy
 * expiry).
 */
static inline bool
live_at(struct store *s, const struct loc *loc, uint32_t now_s)
{
	if (!item_dead(s, loc->it, now_s))
		return true;
	unlink_loc(s, loc);
	s->st.expired++;
	return false;
}

/* Finds the live item of key (live_at). Returns true with *loc filled when one exists. */
static bool
find_live(struct store *s, const struct store_key *key, uint32_t now_s, struct loc *loc)
{
	return lookup(s, key, loc) && live_at(s, loc, now_s);
}

/*
 * Reclaims the log record at the tail (an item or the pad to the lap end) and returns its
 * length. An item whose index entry still points at it is unlinked and counted as evicted
 * or, if it was dead anyway, expired; the item at skip_off is being replaced by the caller
 * and keeps its entry.
 */
static uint64_t
evict_one(struct store *s, uint64_t skip_off, uint32_t now_s)
{
	uint64_t off = s->tail_off;
	uint64_t rest = s->log_bytes - off;

	ASSERT(off < s->log_bytes);
	ASSERT(skip_off == OFF_NONE || skip_off < s->log_bytes);

	if (rest < STORE_ITEM_HEADER_BYTES)
		return rest;
	struct store_item *it = item_at(s, off);
	if (item_key_len(it->lens) == 0)
		return rest;

	uint64_t size = item_size(it);
	VERIFY(size <= rest);
	if (off == skip_off)
		return size;

	uint32_t home = home_index(s, it->hash_hi);
	for (unsigned c = 0; c < STORE_BUCKET_CHOICES; c++) {
		struct store_bucket *b = bucket_choice(s, home, c);
		for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++) {
			uint64_t e = LD(&b->slot[i]);

			if (e == 0 || entry_off(e) != off)
				continue;
			struct loc loc = {.b = b, .slot = i, .off = off, .it = it};
			bool dead = item_dead(s, it, now_s);
			unlink_loc(s, &loc);
			if (dead)
				s->st.expired++;
			else
				s->st.evictions++;
			return size;
		}
	}
	return size;
}

/* Advances an offset by n bytes, wrapping at the end of the log. */
static inline uint64_t
off_advance(const struct store *s, uint64_t off, uint64_t n)
{
	uint64_t next = off + n;

	ASSERT(next <= s->log_bytes);
	return next == s->log_bytes ? 0 : next;
}

/* The bytes of a new value: pre, then old (already in the log), then post. */
struct vparts {
	const void *pre;
	uint32_t pre_len;
	const uint8_t *old; /* points into the log; may be reclaimed by this very write */
	uint32_t old_len;
	const void *post;
	uint32_t post_len;
};

/*
 * Appends an item at the log head, evicting from the tail as needed, and returns its
 * offset. The caller has checked that it fits (item bytes <= log_bytes / 2) and links it
 * into the index afterwards. The old bytes are moved first, so they survive even when the
 * reclaimed space overlaps them. replacing (NULL for a new key) is the item this one
 * replaces: it keeps its entry, and if the tail passes it its bucket is left open (odd
 * version) until relink_loc() points the entry at the new item, so concurrent readers
 * retry rather than miss the key. Can't fail.
 */
static uint64_t
item_append(struct store *s, const struct store_key *key, const struct vparts *v, uint32_t flags,
            uint32_t expire_s, uint64_t cas, struct loc *replacing, uint32_t now_s)
{
	uint64_t skip_off = replacing != NULL ? replacing->off : OFF_NONE;
	uint64_t value_len = (uint64_t)v->pre_len + v->old_len + v->post_len;
	uint64_t n = store_item_bytes(key->len, value_len);
	uint64_t L = s->log_bytes;
	uint64_t head = LD(&s->head);
	uint64_t pad_off = s->head_off;
	uint64_t pad = pad_off + n > L ? L - pad_off : 0;
	uint64_t end = head + pad + n;

	ASSERT(n <= L / 2);
	ASSERT(value_len <= STORE_VALUE_MAX);
	if (end > L && LD(&s->tail) < end - L) {
		uint64_t tail = LD(&s->tail);
		bool skip_passed = false;
		while (tail < end - L) {
			skip_passed |= s->tail_off == skip_off;
			uint64_t adv = evict_one(s, skip_off, now_s);
			ASSERT(adv > 0);
			tail += adv;
			s->tail_off = off_advance(s, s->tail_off, adv);
		}
		if (skip_passed) {
			bucket_write_begin(replacing->b);
			replacing->open = true;
		}
		ST(&s->tail, tail);
		atomic_thread_fence(memory_order_release);
	}

	uint64_t off = pad != 0 ? 0 : pad_off;
	struct store_item *it = item_at(s, off);
	uint8_t *val = (uint8_t *)(it + 1) + key->len;
	if (v->old_len > 0)
		memmove(val + v->pre_len, v->old, v->old_len);
	if (v->pre_len > 0)
		memcpy(val, v->pre, v->pre_len);
	if (v->post_len > 0)
		memcpy(val + v->pre_len + v->old_len, v->post, v->post_len);
	memcpy(it + 1, key->data, key->len);
	it->hash_hi = sp_key_hash_hi(key->hash);
	it->lens = key->len | (uint32_t)value_len << LENS_VALUE_SHIFT;
	it->flags = flags;
	it->expire_s = expire_s;
	it->cas = cas;
	if (pad >= STORE_ITEM_HEADER_BYTES)
		memset(item_at(s, pad_off), 0, sizeof(struct store_item));
	s->head_off = off_advance(s, off, n);
	atomic_store_explicit(&s->head, end, memory_order_release);
	return off;
}

/* Points the entry at loc (same key) to the item at off, closing the bucket if open. */
static void
relink_loc(struct store *s, struct loc *loc, uint64_t off, uint64_t hash)
{
	if (!loc->open)
		bucket_write_begin(loc->b);
	ST(&loc->b->slot[loc->slot], entry_make(hash_tag(hash), off));
	bucket_write_end(loc->b);
	loc->open = false;
	loc->off = off;
	loc->it = item_at(s, off);
}

/*
 * Links a new item (key absent from the index) at off: into a free slot of its home bucket,
 * else of the pair bucket. When both are full the entry of the oldest item in them is
 * dropped and counted (a lossy index, as in MICA).
 */
static void
link_new(struct store *s, const struct store_key *key, uint64_t off, uint32_t now_s,
         struct loc *loc)
{
	uint32_t home = bucket_index(s, key->hash);
	struct store_bucket *victim_b = NULL;
	unsigned victim = 0;
	uint64_t victim_age = 0;

	for (unsigned c = 0; c < STORE_BUCKET_CHOICES; c++) {
		struct store_bucket *b = bucket_choice(s, home, c);
		for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++) {
			uint64_t e = LD(&b->slot[i]);

			if (e == 0) {
				loc->b = b;
				loc->slot = i;
				goto link;
			}
			uint64_t age = item_age(s, entry_off(e));
			if (age >= victim_age) {
				victim_age = age;
				victim_b = b;
				victim = i;
			}
		}
	}
	VERIFY(victim_b != NULL);
	uint64_t voff = entry_off(LD(&victim_b->slot[victim]));
	struct loc vloc = {.b = victim_b, .slot = victim, .off = voff, .it = item_at(s, voff)};
	bool dead = item_dead(s, vloc.it, now_s);

	unlink_loc(s, &vloc);
	if (dead) {
		s->st.expired++;
	} else {
		s->st.evictions++;
		s->st.evictions_index++;
	}
	loc->b = victim_b;
	loc->slot = victim;
link:
	loc->open = false;
	relink_loc(s, loc, off, key->hash);
	s->st.items++;
	s->st.bytes += item_size(loc->it);
	ASSERT(loc->slot < STORE_BUCKET_SLOTS);
	ASSERT(s->st.bytes <= s->log_bytes);
}

/*
 * Moves a live item read from the oldest quarter of a full log to the head, so that
 * items in use survive FIFO eviction. Same value, flags, expiry and CAS. Can't fail.
 */
static void
maybe_reinsert(struct store *s, const struct store_key *key, struct loc *loc, uint32_t now_s)
{
	if (item_age(s, loc->off) <= s->log_bytes - s->log_bytes / REINSERT_AGE_DIV)
		return;
	struct store_item *it = loc->it;
	uint64_t cas = it->cas;
	struct vparts v = {.old = item_value(it), .old_len = item_value_len(it->lens)};
	uint64_t off = item_append(s, key, &v, it->flags, it->expire_s, cas, loc, now_s);

	relink_loc(s, loc, off, key->hash);
	s->st.reinserts++;
	ASSERT(loc->it->cas == cas);
}

static int
key_check(const struct store_key *key)
{
	if (key == NULL || key->data == NULL || key->len == 0)
		return -EINVAL;
	if (key->len > STORE_KEY_MAX)
		return -SP_ETOOBIG;
	return 0;
}

/* Counts an argument or limit error and passes it through. */
static int
count_error(struct store *s, int rc)
{
	ASSERT(rc < 0);
	if (rc != -SP_ENOTFOUND && rc != -SP_EEXISTS && rc != -SP_EVERSION)
		s->st.errors++;
	return rc;
}

static void
value_out(const struct store_item *it, struct store_value *out)
{
	out->data = (const uint8_t *)(it + 1) + item_key_len(it->lens);
	out->len = item_value_len(it->lens);
	out->flags = it->flags;
	out->expire_s = it->expire_s;
	out->cas = it->cas;
}

size_t
store_memsize(const struct store_params *params)
{
	if (params == NULL || params->bytes < STORE_BYTES_MIN || params->bytes > STORE_BYTES_MAX)
		return 0;
	if (params->item_bytes_avg > STORE_KEY_MAX + STORE_VALUE_MAX)
		return 0;
	if (params->cas_base >= SP_MAX(params->cas_stride, 1u))
		return 0;
	return params->bytes & ~(size_t)(STORE_MEM_ALIGN - 1);
}

struct store *
store_init(void *mem, size_t bytes, const struct store_params *params)
{
	size_t total = store_memsize(params);

	if (mem == NULL || total == 0 || bytes < total ||
	    ((uintptr_t)mem & (STORE_MEM_ALIGN - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	uint64_t avg =
	        params->item_bytes_avg ? params->item_bytes_avg : STORE_ITEM_BYTES_AVG_DEFAULT;
	uint64_t hdr =
	        (sizeof(struct store) + STORE_MEM_ALIGN - 1) & ~(uint64_t)(STORE_MEM_ALIGN - 1);
	uint64_t per_item =
	        store_item_bytes(0, avg) + sizeof(struct store_bucket) / STORE_BUCKET_ITEMS_PLAN;
	uint64_t items_plan = (total - hdr) / per_item;
	uint64_t nbuckets =
	        SP_MAX((items_plan + STORE_BUCKET_ITEMS_PLAN - 1) / STORE_BUCKET_ITEMS_PLAN, 1u);
	/* Buckets come in pairs (a key's home and index ^ 1). */
	nbuckets = (nbuckets + 1) & ~(uint64_t)1;
	if (nbuckets > UINT32_MAX ||
	    hdr + nbuckets * sizeof(struct store_bucket) + LOG_MIN_BYTES > total) {
		errno = EINVAL;
		return NULL;
	}

	struct store *s = mem;
	memset(s, 0, hdr + nbuckets * sizeof(struct store_bucket));
	s->magic = STORE_MAGIC;
	s->nbuckets = (uint32_t)nbuckets;
	s->buckets = (struct store_bucket *)((uint8_t *)mem + hdr);
	s->log = (uint8_t *)(s->buckets + nbuckets);
	s->log_bytes = (total - hdr - nbuckets * sizeof(struct store_bucket)) & ~(uint64_t)15;
	s->st.log_bytes = s->log_bytes;
	s->st.index_buckets = nbuckets;
	s->cas_stride = SP_MAX(params->cas_stride, 1u);
	s->cas_base = params->cas_base;
	/* Nothing is older than the first version, so nothing starts flushed. */
	ST(&s->cas_last, params->cas_base);
	ST(&s->flush_cas, params->cas_base);
	ASSERT(s->log + s->log_bytes <= (uint8_t *)mem + total);
	ASSERT(((uintptr_t)s->log & (STORE_MEM_ALIGN - 1)) == 0);
	return s;
}

size_t
store_value_max(const struct store *s, size_t key_len)
{
	uint64_t room = s->log_bytes / 2;

	ASSERT(s->magic == STORE_MAGIC);
	if (key_len > STORE_KEY_MAX || room < STORE_ITEM_HEADER_BYTES + key_len)
		return 0;
	return (size_t)SP_MIN(room - STORE_ITEM_HEADER_BYTES - key_len, (uint64_t)STORE_VALUE_MAX);
}

/* 0 when a value of value_len fits both the limit and this store. */
static int
value_fits(const struct store *s, const struct store_key *key, uint64_t value_len)
{
	ASSERT(key->len <= STORE_KEY_MAX);
	if (value_len > STORE_VALUE_MAX)
		return -SP_ETOOBIG;
	if (store_item_bytes(key->len, value_len) > s->log_bytes / 2)
		return -SP_EFULL;
	return 0;
}

/*
 * Whether the probe's entry still leads to key: its slot holds the same entry (so the item
 * it points at is live in the log, unlinked only with its entry) and that item's key is
 * key. Fills *loc when it does. The entry's tag matched the key's at the probe.
 */
static inline bool
probe_holds(const struct store *s, const struct store_key *key, const struct store_probe *p,
            struct loc *loc)
{
	if (p->slot == NULL || LD((const _Atomic uint64_t *)p->slot) != p->entry)
		return false;
	uint64_t off = entry_off(p->entry);
	struct store_item *it = item_at(s, off);
	/* Buckets are cache lines, aligned to theirs (STORE_MEM_ALIGN): the slot's line is
	 * its bucket. */
	struct store_bucket *b =
	        (struct store_bucket *)((uintptr_t)p->slot & ~(uintptr_t)(sizeof(*b) - 1));

	ASSERT(b >= s->buckets && b < s->buckets + s->nbuckets);
	ASSERT(entry_tag(p->entry) == hash_tag(key->hash));
	if (item_key_len(it->lens) != key->len || !key_equal(item_key(it), key->data, key->len))
		return false;
	loc->b = b;
	loc->slot = (unsigned)((const _Atomic uint64_t *)p->slot - b->slot);
	loc->off = off;
	loc->it = it;
	loc->open = false;
	ASSERT(loc->slot < STORE_BUCKET_SLOTS);
	return true;
}

/*
 * The start every keyed read, touch and delete shares: counts the operation, refuses a bad
 * key (or bad_arg) as a counted error, applies a due flush_all and looks the key up (first
 * where probe, when not NULL, says it was). Returns 1 with *loc when the key is live, 0
 * when it is not, or a negative counted error.
 */
static inline int
op_lookup(struct store *s, enum store_op op, const struct store_key *key, bool bad_arg,
          uint32_t now_s, const struct store_probe *probe, struct loc *loc)
{
	int rc = key_check(key);

	ASSERT(s->magic == STORE_MAGIC);
	if (op == STORE_OP_GET)
		s->gets++;
	else
		s->st.ops[op]++;
	if (rc != 0 || bad_arg)
		return count_error(s, rc != 0 ? rc : -EINVAL);
	flush_apply(s, now_s);
	if (probe != NULL && probe_holds(s, key, probe, loc))
		return live_at(s, loc, now_s) ? 1 : 0;
	return find_live(s, key, now_s, loc) ? 1 : 0;
}

int
store_get_probed(struct store *s, const struct store_key *key, const struct store_probe *probe,
                 uint32_t now_s, struct store_value *out)
{
	struct loc loc;
	int rc = op_lookup(s, STORE_OP_GET, key, out == NULL, now_s, probe, &loc);

	if (rc < 0)
		return rc;
	if (rc == 0) {
		s->st.misses++;
		return -SP_ENOTFOUND;
	}
	s->hits++;
	maybe_reinsert(s, key, &loc, now_s);
	value_out(loc.it, out);
	return 0;
}

int
store_get(struct store *s, const struct store_key *key, uint32_t now_s, struct store_value *out)
{
	return store_get_probed(s, key, NULL, now_s, out);
}

/* Sets the expiry of the live item at loc in place. */
static void
expire_set(struct loc *loc, uint32_t expire_s)
{
	bucket_write_begin(loc->b);
	loc->it->expire_s = expire_s;
	bucket_write_end(loc->b);
	ASSERT(loc->it->expire_s == expire_s);
}

int
store_gat(struct store *s, const struct store_key *key, uint32_t expire_s, uint32_t now_s,
          struct store_value *out)
{
	struct loc loc;
	int rc = op_lookup(s, STORE_OP_GAT, key, out == NULL, now_s, NULL, &loc);

	if (rc < 0)
		return rc;
	if (rc == 0) {
		s->st.misses++;
		return -SP_ENOTFOUND;
	}
	s->hits++;
	expire_set(&loc, expire_s);
	maybe_reinsert(s, key, &loc, now_s);
	value_out(loc.it, out);
	return 0;
}

int
store_touch(struct store *s, const struct store_key *key, uint32_t expire_s, uint32_t now_s)
{
	struct loc loc;
	int rc = op_lookup(s, STORE_OP_TOUCH, key, false, now_s, NULL, &loc);

	if (rc <= 0)
		return rc < 0 ? rc : -SP_ENOTFOUND;
	expire_set(&loc, expire_s);
	return 0;
}

/* Checks a storage command against the current item (found or not). 0 when it may go on. */
static int
set_precheck(enum store_mode mode, const struct store_write *w, bool found, uint64_t cas_now)
{
	switch (mode) {
	case STORE_ADD:
		if (found)
			return -SP_EEXISTS;
		break;
	case STORE_REPLACE:
	case STORE_APPEND:
	case STORE_PREPEND:
	case STORE_CAS:
		if (!found)
			return -SP_ENOTFOUND;
		break;
	case STORE_SET:
	case STORE_MODE_COUNT:
		break;
	}
	if (mode == STORE_CAS && w->cas != cas_now)
		return -SP_EVERSION;
	if (w->cas != 0 && !found)
		return -SP_ENOTFOUND;
	if (w->cas != 0 && w->cas != cas_now)
		return -SP_EVERSION;
	return 0;
}

int
store_set(struct store *s, enum store_mode mode, const struct store_key *key,
          const struct store_write *w, uint32_t now_s, uint64_t *cas_out)
{
	struct loc loc;
	int rc = key_check(key);

	ASSERT(s->magic == STORE_MAGIC);
	if ((unsigned)mode >= STORE_MODE_COUNT)
		return count_error(s, -EINVAL);
	s->st.ops[STORE_OP_SET + mode]++;
	if (rc != 0)
		return count_error(s, rc);
	if (w == NULL || (w->value == NULL && w->value_len != 0))
		return count_error(s, -EINVAL);
	bool concat = mode == STORE_APPEND || mode == STORE_PREPEND;
	if (!concat && (rc = value_fits(s, key, w->value_len)) != 0)
		return count_error(s, rc);
	flush_apply(s, now_s);
	bool found = find_live(s, key, now_s, &loc);
	rc = set_precheck(mode, w, found, found ? loc.it->cas : 0);
	if (rc != 0)
		return count_error(s, rc);

	struct vparts v = {0};
	uint32_t flags = w->flags;
	uint32_t expire_s = w->expire_s;
	if (concat) {
		uint32_t old_len = item_value_len(loc.it->lens);
		if ((rc = value_fits(s, key, (uint64_t)old_len + w->value_len)) != 0)
			return count_error(s, rc);
		v.old = item_value(loc.it);
		v.old_len = old_len;
		flags = loc.it->flags;
		expire_s = loc.it->expire_s;
	}
	if (mode == STORE_PREPEND) {
		v.pre = w->value;
		v.pre_len = w->value_len;
	} else {
		v.post = w->value;
		v.post_len = w->value_len;
	}

	uint64_t cas = cas_next(s);
	uint64_t old_size = found ? item_size(loc.it) : 0;
	uint64_t off = item_append(s, key, &v, flags, expire_s, cas, found ? &loc : NULL, now_s);
	if (found) {
		relink_loc(s, &loc, off, key->hash);
		s->st.bytes = s->st.bytes - old_size + item_size(loc.it);
	} else {
		link_new(s, key, off, now_s, &loc);
	}
	ASSERT(loc.it->cas == cas);
	if (cas_out != NULL)
		*cas_out = cas;
	return 0;
}

int
store_delete(struct store *s, const struct store_key *key, uint64_t cas_expected, uint32_t now_s)
{
	struct loc loc;
	int rc = op_lookup(s, STORE_OP_DELETE, key, false, now_s, NULL, &loc);

	if (rc <= 0)
		return rc < 0 ? rc : -SP_ENOTFOUND;
	if (cas_expected != 0 && cas_expected != loc.it->cas)
		return -SP_EVERSION;
	unlink_loc(s, &loc);
	ASSERT(LD(&loc.b->slot[loc.slot]) == 0);
	return 0;
}

static inline bool
is_blank(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * Reads a counter the way memcached does (strtoull base 10, then: the end or a blank must
 * follow; a '-' sign is refused when the result would be negative as a signed number).
 * Returns 0 with *out set, or -SP_ENOTNUM.
 */
static int
counter_parse(const uint8_t *p, uint32_t len, uint64_t *out)
{
	uint32_t i = 0;
	bool neg = false;
	uint64_t v = 0;

	ASSERT(p != NULL);
	if (len == 0)
		return -SP_ENOTNUM;
	while (i < len && is_blank(p[i]))
		i++;
	if (i < len && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	uint32_t digits = i;
	for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
		uint64_t d = (uint64_t)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -SP_ENOTNUM;
		v = v * 10 + d;
	}
	if (i == digits)
		return -SP_ENOTNUM; /* no digits: memcached's strtoull check fails too */
	if (i < len && !is_blank(p[i]))
		return -SP_ENOTNUM;
	if (neg) {
		v = (uint64_t)0 - v;
		if ((int64_t)v < 0)
			return -SP_ENOTNUM;
	}
	*out = v;
	return 0;
}

/* Writes v in decimal to buf (STORE_COUNTER_TEXT_MAX bytes) and returns the length. */
static uint32_t
counter_text(uint64_t v, uint8_t *buf)
{
	uint8_t rev[STORE_COUNTER_TEXT_MAX];
	uint32_t n = 0;

	do {
		rev[n++] = (uint8_t)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	ASSERT(n <= STORE_COUNTER_TEXT_MAX);
	for (uint32_t i = 0; i < n; i++)
		buf[i] = rev[n - 1 - i];
	return n;
}

/* Creates key's counter from a->initial (binary-protocol incr/decr on a missing key). */
static void
arith_create(struct store *s, const struct store_key *key, const struct store_arith *a,
             uint32_t now_s, struct loc *loc)
{
	uint8_t text[STORE_COUNTER_TEXT_MAX];
	struct vparts vp = {.pre = text, .pre_len = counter_text(a->initial, text)};
	uint64_t cas = cas_next(s);
	uint64_t off = item_append(s, key, &vp, 0, a->expire_s, cas, NULL, now_s);

	link_new(s, key, off, now_s, loc);
	ASSERT(loc->it->cas == cas);
	ASSERT(item_value_len(loc->it->lens) == vp.pre_len);
}

/* Stores counter v as the new value of the live item at loc, with a new CAS version. */
static void
arith_update(struct store *s, const struct store_key *key, uint64_t v, uint32_t now_s,
             struct loc *loc)
{
	uint8_t text[STORE_COUNTER_TEXT_MAX];
	uint32_t n = counter_text(v, text);
	uint32_t old_len = item_value_len(loc->it->lens);
	uint64_t cas = cas_next(s);

	if (n <= old_len) {
		/* memcached rewrites in place and blanks the rest. */
		bucket_write_begin(loc->b);
		memcpy(item_value(loc->it), text, n);
		memset(item_value(loc->it) + n, ' ', old_len - n);
		loc->it->cas = cas;
		bucket_write_end(loc->b);
	} else {
		struct vparts vp = {.pre = text, .pre_len = n};
		uint64_t old_size = item_size(loc->it);
		uint64_t off = item_append(s, key, &vp, loc->it->flags, loc->it->expire_s, cas, loc,
		                           now_s);
		relink_loc(s, loc, off, key->hash);
		s->st.bytes = s->st.bytes - old_size + item_size(loc->it);
	}
	ASSERT(loc->it->cas == cas);
}

int
store_arith(struct store *s, const struct store_key *key, const struct store_arith *a,
            uint32_t now_s, uint64_t *value_out, uint64_t *cas_out)
{
	struct loc loc;
	uint64_t v;
	int rc = key_check(key);

	ASSERT(s->magic == STORE_MAGIC);
	if (a == NULL || (a->op != STORE_INCR && a->op != STORE_DECR))
		return count_error(s, -EINVAL);
	s->st.ops[a->op == STORE_INCR ? STORE_OP_INCR : STORE_OP_DECR]++;
	if (rc != 0)
		return count_error(s, rc);
	flush_apply(s, now_s);

	if (!find_live(s, key, now_s, &loc)) {
		if (!a->create)
			return -SP_ENOTFOUND;
		v = a->initial;
		arith_create(s, key, a, now_s, &loc);
	} else {
		if (a->cas != 0 && a->cas != loc.it->cas)
			return -SP_EVERSION;
		rc = counter_parse(item_value(loc.it), item_value_len(loc.it->lens), &v);
		if (rc != 0)
			return count_error(s, rc);
		if (a->op == STORE_INCR)
			v += a->delta;
		else
			v = a->delta > v ? 0 : v - a->delta;
		arith_update(s, key, v, now_s, &loc);
	}
	ASSERT(loc.it->cas == LD(&s->cas_last));
	if (value_out != NULL)
		*value_out = v;
	if (cas_out != NULL)
		*cas_out = loc.it->cas;
	return 0;
}

int
store_incr(struct store *s, const struct store_key *key, uint64_t delta, uint32_t now_s,
           uint64_t *value_out)
{
	struct store_arith a = {.op = STORE_INCR, .delta = delta};

	return store_arith(s, key, &a, now_s, value_out, NULL);
}

int
store_decr(struct store *s, const struct store_key *key, uint64_t delta, uint32_t now_s,
           uint64_t *value_out)
{
	struct store_arith a = {.op = STORE_DECR, .delta = delta};

	return store_arith(s, key, &a, now_s, value_out, NULL);
}

void
store_flush_all(struct store *s, uint32_t at_s, uint32_t now_s)
{
	ASSERT(s->magic == STORE_MAGIC);
	s->st.ops[STORE_OP_FLUSH]++;
	/* A pending flush whose time has come is final before a new one replaces it. */
	flush_apply(s, now_s);
	if (at_s == 0 || at_s <= now_s) {
		ST(&s->flush_cas, LD(&s->cas_last));
		atomic_store_explicit(&s->flush_at_s, 0, memory_order_release);
	} else {
		atomic_store_explicit(&s->flush_at_s, at_s, memory_order_release);
	}
	ASSERT(LD(&s->flush_cas) <= LD(&s->cas_last));
}

/*
 * Copies len bytes that the owner may be overwriting, with relaxed atomic loads of the
 * aligned 8-byte words that hold them. The log is 64-byte aligned and a multiple of 16
 * bytes long, so those words never leave it.
 */
static void
racy_copy(void *dst, const uint8_t *src, size_t len)
{
	uintptr_t begin = (uintptr_t)src;
	uintptr_t end = begin + len;
	uint8_t *d = dst;

	for (uintptr_t w = begin & ~(uintptr_t)7; w < end; w += 8) {
		uint64_t word = __atomic_load_n((const uint64_t *)w, __ATOMIC_RELAXED);
		size_t lo = w < begin ? begin - w : 0;
		size_t hi = SP_MIN((uintptr_t)8, end - w);

		if (lo == 0 && hi == 8) {
			memcpy(d, &word, 8); /* a whole word: one store, no call */
			d += 8;
			continue;
		}
		for (size_t k = lo; k < hi; k++)
			*d++ = ((const uint8_t *)&word)[k];
	}
	ASSERT(d == (uint8_t *)dst + len);
}

/* One optimistic attempt's view of the matching item. */
struct snap {
	bool found;
	uint32_t value_len;
	uint32_t flags;
	uint32_t expire_s;
	uint64_t cas;
};

/*
 * Scans bucket b for key without writing anything. Returns 0 with *sn filled when found
 * (sn->found starts false), or -SP_EBUSY when what it read cannot be consistent (the
 * caller validates and retries). Lowers *pos_min to the lowest log position it read from.
 */
static int
scan_racy(const struct store *s, const struct store_bucket *b, const struct store_key *key,
          void *buf, size_t buf_len, struct snap *sn, uint64_t *pos_min)
{
	uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
	uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
	uint64_t tag = hash_tag(key->hash);
	uint8_t kbuf[STORE_KEY_MAX];
	uint64_t L = s->log_bytes;
	uint64_t tail_off = tail % L;

	ASSERT(buf != NULL || buf_len == 0);
	ASSERT(!sn->found);
	for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++) {
		uint64_t e = LD(&b->slot[i]);

		if (e == 0 || entry_tag(e) != tag)
			continue;
		uint64_t phys = entry_off(e);
		if (phys >= L)
			return -SP_EBUSY;
		uint64_t pos = off_to_pos(phys, tail, tail_off, L);
		if (pos >= head)
			return -SP_EBUSY;
		*pos_min = SP_MIN(*pos_min, pos);
		if (L - phys < STORE_ITEM_HEADER_BYTES)
			return -SP_EBUSY;
		struct store_item *it = (struct store_item *)(s->log + phys);
		uint32_t lens = __atomic_load_n(&it->lens, __ATOMIC_RELAXED);
		uint32_t klen = item_key_len(lens);
		uint32_t vlen = item_value_len(lens);
		if (store_item_bytes(klen, vlen) > L - phys)
			return -SP_EBUSY;
		if (klen != key->len)
			continue;
		const uint8_t *kp = (const uint8_t *)(it + 1);
		racy_copy(kbuf, kp, klen);
		if (memcmp(kbuf, key->data, klen) != 0)
			continue;
		sn->found = true;
		sn->value_len = vlen;
		sn->flags = __atomic_load_n(&it->flags, __ATOMIC_RELAXED);
		sn->expire_s = __atomic_load_n(&it->expire_s, __ATOMIC_RELAXED);
		sn->cas = __atomic_load_n(&it->cas, __ATOMIC_RELAXED);
		if (vlen <= buf_len)
			racy_copy(buf, kp + klen, vlen);
		return 0;
	}
	return 0;
}

int
store_get_copy_concurrent(const struct store *s, const struct store_key *key, uint32_t now_s,
                          void *buf, size_t buf_len, struct store_value *out)
{
	int rc = key_check(key);

	ASSERT(s->magic == STORE_MAGIC);
	if (rc != 0)
		return rc;
	if (out == NULL || (buf == NULL && buf_len != 0))
		return -EINVAL;
	uint32_t home = bucket_index(s, key->hash);
	const struct store_bucket *b[STORE_BUCKET_CHOICES];
	uint64_t v0[STORE_BUCKET_CHOICES];

	for (unsigned c = 0; c < STORE_BUCKET_CHOICES; c++)
		b[c] = bucket_choice(s, home, c);
	for (unsigned attempt = 0; attempt < STORE_CONCURRENT_RETRIES_MAX; attempt++) {
		bool odd = false;
		for (unsigned c = 0; c < STORE_BUCKET_CHOICES; c++) {
			v0[c] = atomic_load_explicit(&b[c]->version, memory_order_acquire);
			odd |= (v0[c] & 1u) != 0;
		}
		if (odd) {
			cpu_relax();
			continue;
		}
		uint32_t flush_at_s = atomic_load_explicit(&s->flush_at_s, memory_order_acquire);
		uint64_t flush_cas = atomic_load_explicit(&s->flush_cas, memory_order_acquire);
		if (flush_at_s != 0 && now_s >= flush_at_s)
			flush_cas = atomic_load_explicit(&s->cas_last, memory_order_acquire);

		struct snap sn = {.found = false};
		uint64_t pos_min = UINT64_MAX;
		int scan = 0;
		for (unsigned c = 0; c < STORE_BUCKET_CHOICES && scan == 0 && !sn.found; c++)
			scan = scan_racy(s, b[c], key, buf, buf_len, &sn, &pos_min);

		atomic_thread_fence(memory_order_acquire);
		bool changed = false;
		for (unsigned c = 0; c < STORE_BUCKET_CHOICES; c++)
			changed |= LD(&b[c]->version) != v0[c];
		uint64_t tail = LD(&s->tail);
		if (scan != 0 || changed || (pos_min != UINT64_MAX && pos_min < tail)) {
			cpu_relax();
			continue;
		}
		if (!sn.found || (sn.expire_s != 0 && sn.expire_s <= now_s) || sn.cas <= flush_cas)
			return -SP_ENOTFOUND;
		out->data = buf;
		out->len = sn.value_len;
		out->flags = sn.flags;
		out->expire_s = sn.expire_s;
		out->cas = sn.cas;
		return sn.value_len <= buf_len ? 0 : -SP_ETOOBIG;
	}
	return -SP_EBUSY;
}

/* The bucket pair of hash. */
void
store_layout_prefetch(const struct store_layout *l, uint64_t hash)
{
	uint32_t home = home_in(l->nbuckets, sp_key_hash_hi(hash));

	__builtin_prefetch(layout_bucket(l->buckets, l->nbuckets, home, 0), 0, 3);
	__builtin_prefetch(layout_bucket(l->buckets, l->nbuckets, home, 1), 0, 3);
}

/*
 * The item of hash's bucket pair whose tag matches first (home before pair): the header's
 * line and the line where the value starts behind a key of key_len bytes (the same line
 * again when it does not straddle). No branch depends on the data: whether the item sits
 * in the home bucket or its pair, and whether it straddles two lines, are random, and
 * mispredicting them costs more than the prefetch saves on a table in cache. A second match
 * (a 16-bit tag collision) is not prefetched; with none, the item of the pair's last slot
 * is (or the log's first line when that slot is empty): a wasted prefetch, never a fault,
 * as no prefetch faults. *slot and *entry get the slot and its entry; returns whether it
 * matched.
 */
static inline __attribute__((always_inline)) bool
probe_item(const struct store_layout *l, uint64_t hash, uint32_t key_len, const void **slot,
           uint64_t *entry)
{
	uint32_t home = home_in(l->nbuckets, sp_key_hash_hi(hash));
	unsigned m =
	        tag_matches_pair(layout_bucket(l->buckets, l->nbuckets, home, 0),
	                         layout_bucket(l->buckets, l->nbuckets, home, 1), hash_tag(hash));
	/* j: the first match over home's slots then its pair's; the pair's last when none. */
	unsigned j = (unsigned)__builtin_ctz(m | 1u << (2 * STORE_BUCKET_SLOTS - 1));
	unsigned in_pair = (unsigned)(j >= STORE_BUCKET_SLOTS);
	const struct store_bucket *b = layout_bucket(l->buckets, l->nbuckets, home, in_pair);
	const _Atomic uint64_t *sp = &b->slot[j - in_pair * STORE_BUCKET_SLOTS];
	uint64_t e = LD(sp);
	/* Within the log: an entry's item never straddles the log's end (a torn read, by a
	 * caller that is not the owner, would at worst prefetch a useless line). */
	const uint8_t *item = l->log + entry_off(e);

	__builtin_prefetch(item, 0, 3);
	__builtin_prefetch(item + STORE_ITEM_HEADER_BYTES + key_len, 0, 3);
	*slot = (const void *)sp;
	*entry = e;
	return m != 0;
}

void
store_layout_prefetch_item(const struct store_layout *l, uint64_t hash, uint32_t key_len)
{
	const void *slot;
	uint64_t entry;

	(void)probe_item(l, hash, key_len, &slot, &entry);
}

void
store_layout_probe(const struct store_layout *l, uint64_t hash, uint32_t key_len,
                   struct store_probe *out)
{
	const void *slot;
	uint64_t entry;
	bool hit = probe_item(l, hash, key_len, &slot, &entry);

	out->slot = hit ? slot : NULL;
	out->entry = entry;
}

void
store_layout_get(const struct store *s, struct store_layout *out)
{
	ASSERT(s->magic == STORE_MAGIC);
	out->buckets = s->buckets;
	out->log = s->log;
	out->log_bytes = s->log_bytes;
	out->nbuckets = s->nbuckets;
	ASSERT(out->nbuckets >= 2);
}

void
store_prefetch(const struct store *s, uint64_t hash)
{
	struct store_layout l;

	store_layout_get(s, &l);
	store_layout_prefetch(&l, hash);
}

void
store_stats_get(const struct store *s, struct store_stats *out)
{
	ASSERT(s->magic == STORE_MAGIC);
	*out = s->st;
	out->ops[STORE_OP_GET] = s->gets;
	out->hits = s->hits;
	out->cas_last = LD(&s->cas_last);
	ASSERT(out->items <= out->ops[STORE_OP_SET] + out->ops[STORE_OP_ADD] +
	                             out->ops[STORE_OP_INCR] + out->ops[STORE_OP_DECR]);
}

/* True when an entry of bucket b points at off. */
static bool
indexed_at(const struct store_bucket *b, uint64_t off)
{
	for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++) {
		uint64_t e = LD(&b->slot[i]);
		if (e != 0 && entry_off(e) == off)
			return true;
	}
	return false;
}

/* True when an entry of b before slot i points at an item with the same key as slot i's. */
static bool
slots_hold_twin(const struct store *s, const struct store_bucket *b, unsigned n,
                const struct store_item *it)
{
	for (unsigned j = 0; j < n; j++) {
		uint64_t e = LD(&b->slot[j]);
		if (e == 0)
			continue;
		struct store_item *other = item_at(s, entry_off(e));
		if (other->lens == it->lens &&
		    key_equal(item_key(other), item_key((struct store_item *)it),
		              item_key_len(it->lens)))
			return true;
	}
	return false;
}

/*
 * True when the key of slot i of bucket bi is also indexed earlier in its bucket pair
 * (the even bucket's slots come first).
 */
static bool
bucket_has_twin(const struct store *s, uint32_t bi, unsigned i)
{
	const struct store_bucket *b = &s->buckets[bi];
	struct store_item *it = item_at(s, entry_off(LD(&b->slot[i])));

	ASSERT(i < STORE_BUCKET_SLOTS);
	ASSERT(bi < s->nbuckets);
	if (slots_hold_twin(s, b, i, it))
		return true;
	return (bi & 1u) != 0 && slots_hold_twin(s, &s->buckets[bi ^ 1u], STORE_BUCKET_SLOTS, it);
}

int
store_check(const struct store *s)
{
	uint64_t head = LD(&s->head);
	uint64_t tail = LD(&s->tail);
	uint64_t L = s->log_bytes;
	uint64_t items = 0;
	uint64_t bytes = 0;

	if (s->magic != STORE_MAGIC || tail > head || head - tail > L)
		return -SP_ECORRUPT;
	if (s->head_off != head % L || s->tail_off != tail % L)
		return -SP_ECORRUPT;
	/* Every record in [tail, head) is whole, and the indexed ones add up to the stats. */
	for (uint64_t pos = tail; pos < head;) {
		uint64_t phys = pos % L;
		uint64_t rest = L - phys;
		struct store_item *it = (struct store_item *)(s->log + phys);

		if (rest < STORE_ITEM_HEADER_BYTES || item_key_len(it->lens) == 0) {
			pos += rest;
			continue;
		}
		uint64_t size = item_size(it);
		if (size > rest || item_value_len(it->lens) > STORE_VALUE_MAX)
			return -SP_ECORRUPT;
		uint32_t home = home_index(s, it->hash_hi);
		if (indexed_at(bucket_choice(s, home, 0), phys) ||
		    indexed_at(bucket_choice(s, home, 1), phys)) {
			items++;
			bytes += size;
			if (it->cas <= s->cas_base || it->cas > LD(&s->cas_last) ||
			    (it->cas - s->cas_base) % s->cas_stride != 0)
				return -SP_ECORRUPT;
		}
		pos += size;
	}
	if (items != s->st.items || bytes != s->st.bytes)
		return -SP_ECORRUPT;
	/* Every entry points into the live log at an item that hashes to its bucket. */
	uint64_t entries = 0;
	for (uint32_t bi = 0; bi < s->nbuckets; bi++) {
		const struct store_bucket *b = &s->buckets[bi];
		if (LD(&b->version) & 1u)
			return -SP_ECORRUPT;
		for (unsigned i = 0; i < STORE_BUCKET_SLOTS; i++) {
			uint64_t e = LD(&b->slot[i]);
			if (e == 0)
				continue;
			uint64_t off = entry_off(e);
			if (off >= L || off_to_pos(off, tail, s->tail_off, L) >= head)
				return -SP_ECORRUPT;
			const struct store_item *it = item_at(s, off);
			if (item_key_len(it->lens) == 0)
				return -SP_ECORRUPT;
			if ((home_index(s, it->hash_hi) | 1u) != (bi | 1u))
				return -SP_ECORRUPT;
			if (bucket_has_twin(s, bi, i))
				return -SP_ECORRUPT;
			entries++;
		}
	}
	return entries == items ? 0 : -SP_ECORRUPT;
}

int
store_counter_parse(const uint8_t *p, uint32_t len, uint64_t *out)
{
	ASSERT(out != NULL);
	if (p == NULL)
		return -SP_ENOTNUM;
	return counter_parse(p, len, out);
}

int
store_scan(const struct store *s, const uint8_t *prefix, uint32_t prefix_len, uint32_t now_s,
           store_scan_fn fn, void *arg)
{
	uint64_t head = LD(&s->head);
	uint64_t tail = LD(&s->tail);
	uint64_t L = s->log_bytes;

	ASSERT(fn != NULL);
	ASSERT(prefix != NULL || prefix_len == 0);
	ASSERT(tail <= head);
	/* A pending flush_all whose time has come hides what it covers, as lookups do. */
	uint32_t at_s = LD(&s->flush_at_s);
	uint64_t flushed = at_s != 0 && now_s >= at_s ? LD(&s->cas_last) : LD(&s->flush_cas);

	for (uint64_t pos = tail; pos < head;) {
		uint64_t phys = pos % L;
		uint64_t rest = L - phys;
		struct store_item *it = (struct store_item *)(s->log + phys);

		if (rest < STORE_ITEM_HEADER_BYTES || item_key_len(it->lens) == 0) {
			pos += rest; /* the pad at the end of a lap */
			continue;
		}
		uint64_t size = item_size(it);
		VERIFY(size <= rest);
		pos += size;
		uint32_t key_len = item_key_len(it->lens);
		if (key_len < prefix_len ||
		    (prefix_len != 0 && memcmp(item_key(it), prefix, prefix_len) != 0))
			continue;
		if ((it->expire_s != 0 && it->expire_s <= now_s) || it->cas <= flushed)
			continue;
		/* Superseded and deleted items stay in the log until reclaimed: only the one
		 * an index entry points at is the key's current item. */
		uint32_t home = home_index(s, it->hash_hi);
		if (!indexed_at(bucket_choice(s, home, 0), phys) &&
		    !indexed_at(bucket_choice(s, home, 1), phys))
			continue;
		struct store_key k = {.data = item_key(it), .len = key_len, .hash = 0};
		struct store_value v;
		value_out(it, &v);
		int rc = fn(arg, &k, &v);
		if (rc != 0)
			return rc;
	}
	return 0;
}

const char *
store_op_name(enum store_op op)
{
	static const char *const names[STORE_OP_COUNT] = {
	        [STORE_OP_GET] = "get",         [STORE_OP_SET] = "set",
	        [STORE_OP_ADD] = "add",         [STORE_OP_REPLACE] = "replace",
	        [STORE_OP_CAS] = "cas",         [STORE_OP_APPEND] = "append",
	        [STORE_OP_PREPEND] = "prepend", [STORE_OP_DELETE] = "delete",
	        [STORE_OP_INCR] = "incr",       [STORE_OP_DECR] = "decr",
	        [STORE_OP_TOUCH] = "touch",     [STORE_OP_GAT] = "gat",
	        [STORE_OP_FLUSH] = "flush_all",
	};

	if ((unsigned)op >= STORE_OP_COUNT)
		return "unknown";
	return names[op];
}
