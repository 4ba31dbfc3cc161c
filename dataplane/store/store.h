/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The key-value and counter store of one partition.
 *
 * A store lives entirely inside memory the caller provides (hugepages on the owner's socket
 * in the dataplane, malloc'd memory in tests) and never allocates. It has exactly one
 * writer at a time, the partition's owner; ownership may move to another thread when the
 * routing epoch changes, provided the hand-over passes a quiescent point (the store keeps
 * no per-thread state). Readers on other threads use store_get_copy_concurrent() only.
 *
 * Layout (docs/store.md has the details and the overhead arithmetic):
 *   [struct store][index: buckets of 7 tagged entries, 64 B each, in pairs][circular log]
 * Writes append to the log; when the log is full the oldest items are evicted (FIFO) and
 * items read from the oldest quarter are re-appended at the head, which approximates LRU.
 *
 * Every call takes the key's 64-bit hash (sp_key_hash() from common/keyhash.h; the low bits
 * chose the partition, the store uses the rest) and the caller's current time in seconds
 * (now_s, on a clock the caller owns). Expiry times are absolute on that clock; 0 = never.
 * The store makes no system calls.
 *
 * Functions return 0 or a negative error: -EINVAL for arguments that break the contract
 * (empty key, NULL pointers), or one of SP_ENOTFOUND, SP_EEXISTS, SP_EVERSION (CAS
 * mismatch), SP_ETOOBIG (key or value over its limit), SP_ENOTNUM (incr/decr on a value
 * that is not a number), SP_EFULL (the item could never fit in this store), SP_EBUSY
 * (concurrent read gave up after its retry bound).
 */
#ifndef SP_DATAPLANE_STORE_H
#define SP_DATAPLANE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits. Exactly at the limit is accepted; one byte more is SP_ETOOBIG. */
#define STORE_KEY_MAX   250u            /* bytes, memcached's key limit */
#define STORE_VALUE_MAX (1024u * 1024u) /* bytes; a store must also hold 2 items of this size */

/* Bytes of log header per item; key and value follow it, padded to 8 bytes. */
#define STORE_ITEM_HEADER_BYTES 24u
/* Upper bound of per-item overhead beyond key and value (header + padding + index share). */
#define STORE_ITEM_OVERHEAD_MAX 48u
/* Entries per 64-byte index bucket, and the design occupancy the index is sized for. */
#define STORE_BUCKET_SLOTS      7u
#define STORE_BUCKET_ITEMS_PLAN 4u
/* Buckets a key may be indexed in: its home bucket and the other bucket of the pair. */
#define STORE_BUCKET_CHOICES 2u

/* Alignment the memory given to store_init() must have. */
#define STORE_MEM_ALIGN 64u
/* Smallest and largest budget store_init() accepts (index entries hold 48-bit offsets). */
#define STORE_BYTES_MIN (64u * 1024u)
#define STORE_BYTES_MAX (1ull << 50)
/* store_params.item_bytes_avg when the caller passes 0. */
#define STORE_ITEM_BYTES_AVG_DEFAULT 48u

/* Bound on optimistic retries of store_get_copy_concurrent() before it returns SP_EBUSY. */
#define STORE_CONCURRENT_RETRIES_MAX 64u

/* Longest decimal text of a 64-bit counter ("18446744073709551615"). */
#define STORE_COUNTER_TEXT_MAX 20u

struct store;

struct store_params {
	/* Total budget in bytes: store header, index and log all come out of it. */
	size_t bytes;
	/* Expected key + value bytes of a typical item; sizes the index against the log.
	 * 0 = STORE_ITEM_BYTES_AVG_DEFAULT. Must be <= STORE_KEY_MAX + STORE_VALUE_MAX. */
	uint32_t item_bytes_avg;
	/*
	 * CAS versions: this store hands out cas_base + k * cas_stride for k = 1, 2, ... A
	 * node's stores share a stride (its partition count) with distinct bases (the
	 * partition, < stride), so no two items of the node ever show the same version, as in
	 * memcached. cas_stride 0 means 1 (and cas_base must then be 0).
	 */
	uint32_t cas_base;
	uint32_t cas_stride;
};

/* A key as every operation takes it. */
struct store_key {
	const void *data; /* 1..STORE_KEY_MAX bytes */
	uint32_t len;
	uint64_t hash; /* sp_key_hash(data, len) */
};

/* What a read returns. */
struct store_value {
	const void *data;  /* the value bytes (see each read function for how long valid) */
	uint32_t len;      /* value length in bytes */
	uint32_t flags;    /* the client's 32-bit flags, opaque to the store */
	uint32_t expire_s; /* absolute expiry on the caller's clock, 0 = never */
	uint64_t
	        cas; /* version: unique among its stores (cas_base/cas_stride), never reused, never 0 */
};

/* Storage commands, with memcached's semantics. */
enum store_mode {
	STORE_SET = 0, /* store unconditionally */
	STORE_ADD,     /* only if the key is absent, else SP_EEXISTS */
	STORE_REPLACE, /* only if the key is present, else SP_ENOTFOUND */
	STORE_CAS,     /* only if present (SP_ENOTFOUND) with cas == write.cas (SP_EVERSION) */
	STORE_APPEND,  /* add bytes after the value; keeps flags and expiry; SP_ENOTFOUND */
	STORE_PREPEND, /* add bytes before the value; keeps flags and expiry; SP_ENOTFOUND */
	STORE_MODE_COUNT,
};

/* The value side of a storage command. */
struct store_write {
	const void *value; /* may be NULL when value_len == 0 */
	uint32_t value_len;
	uint32_t flags; /* ignored by append/prepend */
	uint32_t
	        expire_s; /* absolute on the caller's clock, 0 = never; ignored by append/prepend */
	uint64_t cas;     /* STORE_CAS: the expected version; any other mode: non-zero = must match
	                    * the stored version too (binary protocol set-with-CAS) */
};

enum store_arith_op {
	STORE_INCR = 0, /* value + delta, wrapping at 2^64 */
	STORE_DECR,     /* value - delta, stopping at 0 */
};

/* An incr/decr request. memcached's text protocol uses create = false. */
struct store_arith {
	enum store_arith_op op;
	uint64_t delta;
	/* Binary-protocol variant: when the key is missing and create is true, the item is
	 * created with the decimal text of initial (delta is not applied), flags 0 and
	 * expire_s, and *value_out = initial. */
	bool create;
	uint64_t initial;
	uint32_t expire_s;
	uint64_t cas; /* non-zero: the stored version must match (SP_EVERSION) */
};

/* Operation kinds counted in store_stats.ops. */
enum store_op {
	STORE_OP_GET = 0,
	STORE_OP_SET,
	STORE_OP_ADD,
	STORE_OP_REPLACE,
	STORE_OP_CAS,
	STORE_OP_APPEND,
	STORE_OP_PREPEND,
	STORE_OP_DELETE,
	STORE_OP_INCR,
	STORE_OP_DECR,
	STORE_OP_TOUCH,
	STORE_OP_GAT,
	STORE_OP_FLUSH,
	STORE_OP_COUNT,
};

/* Per-store counters. Only the owner updates them; concurrent reads are not counted. */
struct store_stats {
	uint64_t items;           /* items in the index (expired ones count until reclaimed) */
	uint64_t bytes;           /* log bytes those items take, headers and padding included */
	uint64_t evictions;       /* live items dropped for space (log wrap or full index bucket) */
	uint64_t evictions_index; /* of which dropped because their index bucket was full */
	uint64_t expired;         /* expired or flushed items reclaimed (lazily or by eviction) */
	uint64_t reinserts;       /* items read near the log tail and moved to its head */
	uint64_t hits;            /* get/gat that found a live item */
	uint64_t misses;          /* get/gat that did not */
	uint64_t ops[STORE_OP_COUNT];
	uint64_t errors;    /* calls that returned an error other than NOTFOUND/EXISTS/VERSION */
	uint64_t log_bytes; /* capacity of the item log */
	uint64_t index_buckets;
	uint64_t cas_last; /* the last CAS version handed out */
};

/*
 * Returns how many bytes store_init() will use for these params (the budget rounded down
 * to STORE_MEM_ALIGN), or 0 when the params are unusable (budget outside STORE_BYTES_MIN ..
 * STORE_BYTES_MAX, item_bytes_avg over its limit, cas_base not below the stride). Can't fail otherwise.
 */
size_t store_memsize(const struct store_params *params);

/*
 * Builds an empty store in mem (bytes long, aligned to STORE_MEM_ALIGN). bytes must be at
 * least store_memsize(params). Returns the store, which lives at mem, or NULL with errno
 * EINVAL for bad params or memory. Never allocates. There is no destroy: the caller frees
 * mem when no thread uses the store any more.
 */
struct store *store_init(void *mem, size_t bytes, const struct store_params *params);

/* Bytes of log an item with these lengths takes (header + key + value, padded to 8). */
size_t store_item_bytes(size_t key_len, size_t value_len);

/*
 * Largest value this store can ever hold with a key of key_len bytes: the smaller of
 * STORE_VALUE_MAX and what fits in half of the log. Larger writes get SP_ETOOBIG (over
 * STORE_VALUE_MAX) or SP_EFULL (under it but too big for this store).
 */
size_t store_value_max(const struct store *s, size_t key_len);

/*
 * Looks up key. On success fills *out; out->data points into the store and stays valid
 * until the next mutating call on this store (every call except store_get_copy_concurrent,
 * store_layout_*, store_prefetch, store_stats_get and store_check; note store_get itself
 * may move a cold item to the log head, which is why it is not const). SP_ENOTFOUND when
 * absent, expired or flushed. Owner only.
 */
int store_get(struct store *s, const struct store_key *key, uint32_t now_s,
              struct store_value *out);

/*
 * Get and touch: like store_get, and sets the item's expiry to expire_s (0 = never).
 * The CAS version is unchanged (as in memcached). Owner only.
 */
int store_gat(struct store *s, const struct store_key *key, uint32_t expire_s, uint32_t now_s,
              struct store_value *out);

/*
 * Sets the expiry of a live item to expire_s (0 = never) without changing its value or CAS.
 * SP_ENOTFOUND when absent. Owner only.
 */
int store_touch(struct store *s, const struct store_key *key, uint32_t expire_s, uint32_t now_s);

/*
 * Runs a storage command (enum store_mode). On success *cas_out (if not NULL) receives the
 * item's new CAS version. May evict old items to make room. Errors: SP_ETOOBIG (key or
 * resulting value over its limit), SP_EFULL (fits the limits, never fits this store),
 * SP_EEXISTS (add), SP_ENOTFOUND (replace, cas, append, prepend), SP_EVERSION (CAS
 * mismatch). On error the store is unchanged. Owner only.
 */
int store_set(struct store *s, enum store_mode mode, const struct store_key *key,
              const struct store_write *w, uint32_t now_s, uint64_t *cas_out);

/*
 * Deletes key. cas_expected non-zero: only if the stored version equals it, else
 * SP_EVERSION. SP_ENOTFOUND when absent. Owner only.
 */
int store_delete(struct store *s, const struct store_key *key, uint64_t cas_expected,
                 uint32_t now_s);

/*
 * incr/decr with memcached's semantics: the value must read as an unsigned 64-bit decimal
 * the way memcached reads it (strtoull: leading blanks, then digits, then the end or a
 * blank), else SP_ENOTNUM. incr wraps at 2^64, decr stops at 0. When the new text is not
 * longer than the old value it is written in place and padded with trailing spaces, as
 * memcached does; when longer the value grows. Flags and expiry are kept; the CAS version
 * changes. *value_out gets the new number, *cas_out the new version (either may be NULL).
 * SP_ENOTFOUND when absent and a->create is false. Owner only.
 */
int store_arith(struct store *s, const struct store_key *key, const struct store_arith *a,
                uint32_t now_s, uint64_t *value_out, uint64_t *cas_out);

/* Shorthands for memcached's text incr/decr (no create, no CAS check). */
int store_incr(struct store *s, const struct store_key *key, uint64_t delta, uint32_t now_s,
               uint64_t *value_out);
int store_decr(struct store *s, const struct store_key *key, uint64_t delta, uint32_t now_s,
               uint64_t *value_out);

/*
 * flush_all: every item stored before at_s becomes invisible once now_s >= at_s. at_s == 0
 * or at_s <= now_s flushes now. A later call replaces a pending one. Reclaiming is lazy.
 * Can't fail. Owner only.
 */
void store_flush_all(struct store *s, uint32_t at_s, uint32_t now_s);

/*
 * Reads key from any thread while the owner keeps writing. Copies the value into buf
 * (buf_len bytes) and fills *out (out->data = buf). Never returns a torn value, never reads
 * outside the store. SP_ETOOBIG when the value is longer than buf_len (out->len then holds
 * the length needed), SP_ENOTFOUND when absent/expired/flushed, SP_EBUSY after
 * STORE_CONCURRENT_RETRIES_MAX attempts that raced with the writer. Not counted in stats,
 * and never moves items.
 */
int store_get_copy_concurrent(const struct store *s, const struct store_key *key, uint32_t now_s,
                              void *buf, size_t buf_len, struct store_value *out);

/*
 * Where a store keeps its index and its log: all the prefetch stages read. A store never
 * moves them, so a caller copies them once (store_layout_get) and prefetches from the copy,
 * without waiting for the store's own descriptor; a caller that spreads a batch over many
 * stores keeps the copies in one compact array.
 */
struct store_layout {
	const void *buckets;
	const uint8_t *log;
	uint64_t log_bytes;
	uint32_t nbuckets;
};

void store_layout_get(const struct store *s, struct store_layout *out);

/* First prefetch stage: the index buckets (the pair) of hash, for a later request. */
void store_layout_prefetch(const struct store_layout *l, uint64_t hash);

/* store_layout_prefetch for a caller that holds only the store (it reads the descriptor). */
void store_prefetch(const struct store *s, uint64_t hash);

/*
 * Second prefetch stage: reads the buckets of hash (prefetched a few requests earlier with
 * store_layout_prefetch) and prefetches the first item whose tag matches (home bucket
 * before its pair): the line of the item's header and the line where its value starts
 * behind a key of key_len bytes (a small item straddles two lines half of the time). A
 * second match, a 16-bit tag collision, is not prefetched. Batch as MICA does: bucket for
 * request i + 2d, item for request i + d, execute request i. Can't fail; never writes.
 */
void store_layout_prefetch_item(const struct store_layout *l, uint64_t hash, uint32_t key_len);

/*
 * What store_layout_probe found: the index slot whose tag matched first and the entry it
 * held then. A hint, not a result: store_get_probed checks it (the slot must still hold
 * the same entry, the item's key must be the key) and looks the key up in full when it
 * does not hold, so the store may change freely between the probe and the get.
 */
struct store_probe {
	const void *slot; /* the matching slot; NULL when no tag matched */
	uint64_t entry;   /* its content at the probe */
};

/*
 * store_layout_prefetch_item, and records in *out what it found, so that the owner's
 * store_get_probed of the same key does not search the buckets again. Owner only (the
 * recorded entry is then never torn). Can't fail; never writes to the store.
 */
void store_layout_probe(const struct store_layout *l, uint64_t hash, uint32_t key_len,
                        struct store_probe *out);

/*
 * store_get with the hint that store_layout_probe recorded for key on this store (probe
 * may be NULL: a plain store_get). Same results, counters and item moves as store_get;
 * only cheaper when the hint holds. Owner only.
 */
int store_get_probed(struct store *s, const struct store_key *key, const struct store_probe *probe,
                     uint32_t now_s, struct store_value *out);

/* Copies the counters into *out. Owner only (other threads may read torn counters). */
void store_stats_get(const struct store *s, struct store_stats *out);

/*
 * Checks the store's invariants: walks the whole log and index. Returns 0, or SP_ECORRUPT
 * naming nothing more; for tests and debug builds (it is O(size)). Owner only.
 */
int store_check(const struct store *s);

/*
 * Calls fn(arg, &key, &value) for every live item (not expired, not flushed) whose key
 * starts with the prefix_len bytes of prefix (prefix_len 0: every item), oldest first; fn
 * returns 0 to go on or anything else to stop, which store_scan then returns. key->data and
 * value->data point into the store and stay valid only during the call; fn must not call
 * the store. Returns 0 after the last item. O(log size): for aggregates, not for the
 * per-request path of GET/SET. Never changes the store, counts nothing. Owner only.
 */
typedef int (*store_scan_fn)(void *arg, const struct store_key *key,
                             const struct store_value *value);
int store_scan(const struct store *s, const uint8_t *prefix, uint32_t prefix_len, uint32_t now_s,
               store_scan_fn fn, void *arg);

/*
 * Reads value bytes as a counter exactly as store_arith does (memcached's rules: leading
 * blanks, decimal digits, then the end or a blank). Returns 0 with *out set, or -SP_ENOTNUM.
 */
int store_counter_parse(const uint8_t *p, uint32_t len, uint64_t *out);

/* Name of an operation kind for stats output ("get", "set", ...). Never NULL. */
const char *store_op_name(enum store_op op);

#endif
