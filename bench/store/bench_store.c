/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition store micro-benchmarks, 8-byte keys and 8-byte values, at table sizes of 1K,
 * 64K, 1M and 16M items (the last only when the machine has the memory):
 *   BM_store_get_hit/<items>           store_get of a present key
 *   BM_store_get_hit_prefetch/<items>  the same, prefetching as a batch would: the bucket
 *                                      2 x BENCH_PREFETCH_AHEAD requests ahead, the item
 *                                      BENCH_PREFETCH_AHEAD ahead
 *   BM_store_get_miss/<items>          store_get of an absent key
 *   BM_store_set/<items>               store_set overwriting a present key (steady state:
 *                                      the log wraps and reclaims dead versions)
 *   BM_store_get_concurrent/<items>    store_get_copy_concurrent of a present key
 * One iteration is one operation, so time per iteration is ns/op. Keys are drawn from a
 * fixed pseudo-random ring of BENCH_PROBES keys spread over the whole table, so the
 * table's cache and TLB misses are part of the figure. Tables live in anonymous memory
 * advised for transparent huge pages, as the dataplane's live in hugepages.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cbench/cbench.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/store/store.h"

#define BENCH_KEY_LEN        8
#define BENCH_VALUE_LEN      8
#define BENCH_PROBES         65536u /* keys cycled through; a power of two */
#define BENCH_PROBE_TRIES    8u     /* draws per probe slot before giving up on a hit */
#define BENCH_BYTES_PER_ITEM 112u   /* budget: twice the 56 B an 8+8 item needs */
#define BENCH_MEM_HEADROOM   2u     /* skip a size unless MemAvailable >= this x budget */
#define BENCH_HUGE_ALIGN     (2u * 1024u * 1024u)
#define BENCH_PREFETCH_AHEAD 8u
#define BENCH_NOW_S          1u
#define BENCH_SEED           0x5eed5eed5eed5eedull
#define BENCH_KEY_MUL        0x9e3779b97f4a7c15ull /* odd: i -> key is a bijection */
#define BENCH_ITEMS_MAX      (16ll * 1024 * 1024)

/* The table being measured; rebuilt only when the size changes. */
struct bench_table {
	struct store *s;
	void *map;
	size_t map_bytes;
	int64_t items;
	uint64_t hit_key[BENCH_PROBES];
	uint64_t hit_hash[BENCH_PROBES];
	uint64_t miss_key[BENCH_PROBES];
	uint64_t miss_hash[BENCH_PROBES];
};

static struct bench_table table;

static inline uint64_t
key_of(uint64_t i)
{
	return i * BENCH_KEY_MUL;
}

static inline uint64_t
next_rand(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545F4914F6CDD1Dull;
}

static void
table_free(void)
{
	if (table.map != NULL)
		munmap(table.map, table.map_bytes);
	table.map = NULL;
	table.s = NULL;
	table.items = 0;
}

/* Bytes the kernel says it can hand out now, from /proc/meminfo; 0 when unknown. */
static uint64_t
mem_available_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	uint64_t kib = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib * 1024u;
}

/* Picks the probe rings: present keys (checked) and absent ones. */
static int
table_probes(void)
{
	uint64_t x = BENCH_SEED;
	struct store_value v;

	for (uint32_t p = 0; p < BENCH_PROBES; p++) {
		uint32_t tries = 0;
		for (; tries < BENCH_PROBE_TRIES; tries++) {
			uint64_t k = key_of(next_rand(&x) % (uint64_t)table.items);
			struct store_key key = {.data = &k,
			                        .len = BENCH_KEY_LEN,
			                        .hash = sp_key_hash(&k, BENCH_KEY_LEN)};
			if (store_get(table.s, &key, BENCH_NOW_S, &v) != 0)
				continue; /* dropped by a full index bucket */
			table.hit_key[p] = k;
			table.hit_hash[p] = key.hash;
			break;
		}
		if (tries == BENCH_PROBE_TRIES)
			return -SP_ENOTFOUND;
		uint64_t m = key_of((uint64_t)table.items + next_rand(&x) % (1ull << 40));
		table.miss_key[p] = m;
		table.miss_hash[p] = sp_key_hash(&m, BENCH_KEY_LEN);
	}
	return 0;
}

/*
 * Makes the table hold items keys, building it if needed. Returns false after skipping
 * the run with a message when the machine lacks the memory or the build fails.
 */
static bool
table_ready(struct cbench_state *st)
{
	int64_t items = cbench_range(st, 0);
	char msg[CBENCH_LABEL_MAX];

	if (items == table.items && table.s != NULL)
		return true;
	table_free();
	if (items <= 0 || items > BENCH_ITEMS_MAX) {
		snprintf(msg, sizeof(msg), "table size %" PRId64 " outside 1..%lld", items,
		         BENCH_ITEMS_MAX);
		cbench_skip_with_error(st, msg);
		return false;
	}
	struct store_params p = {
	        .bytes = SP_MAX((uint64_t)items * BENCH_BYTES_PER_ITEM, (uint64_t)STORE_BYTES_MIN),
	        .item_bytes_avg = BENCH_KEY_LEN + BENCH_VALUE_LEN};
	size_t need = store_memsize(&p);
	uint64_t avail = mem_available_bytes();
	if (avail != 0 && avail < (uint64_t)need * BENCH_MEM_HEADROOM) {
		snprintf(msg, sizeof(msg),
		         "%" PRId64 " items need %zu MiB, MemAvailable is %" PRIu64 " MiB", items,
		         need >> 20, avail >> 20);
		cbench_skip_with_message(st, msg);
		return false;
	}
	table.map_bytes = need + BENCH_HUGE_ALIGN;
	table.map = mmap(NULL, table.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                 -1, 0);
	if (table.map == MAP_FAILED) {
		table.map = NULL;
		cbench_skip_with_error(st, "mmap of the table failed");
		return false;
	}
	uintptr_t base =
	        ((uintptr_t)table.map + BENCH_HUGE_ALIGN - 1) & ~(uintptr_t)(BENCH_HUGE_ALIGN - 1);
	(void)madvise((void *)base, need, MADV_HUGEPAGE);
	table.s = store_init((void *)base, need, &p);
	if (table.s == NULL) {
		table_free();
		cbench_skip_with_error(st, "store_init refused the table parameters");
		return false;
	}
	for (int64_t i = 0; i < items; i++) {
		uint64_t k = key_of((uint64_t)i);
		uint64_t val = (uint64_t)i;
		struct store_key key = {
		        .data = &k, .len = BENCH_KEY_LEN, .hash = sp_key_hash(&k, BENCH_KEY_LEN)};
		struct store_write w = {.value = &val, .value_len = BENCH_VALUE_LEN};
		if (store_set(table.s, STORE_SET, &key, &w, BENCH_NOW_S, NULL) != 0) {
			table_free();
			cbench_skip_with_error(st, "filling the table failed");
			return false;
		}
	}
	table.items = items;
	if (table_probes() != 0) {
		table_free();
		cbench_skip_with_error(st, "too many keys missing after the fill");
		return false;
	}
	return true;
}

/* Labels the run with the table's shape. */
static void
report(struct cbench_state *st)
{
	struct store_stats s;
	char label[CBENCH_LABEL_MAX];

	store_stats_get(table.s, &s);
	snprintf(label, sizeof(label), "items=%" PRIu64 " index_drops=%" PRIu64, s.items,
	         s.evictions_index);
	cbench_set_label(st, label);
	cbench_set_items_processed(st, cbench_iterations(st));
}

static void
BM_store_get_hit(struct cbench_state *st)
{
	struct store_value v;
	uint32_t i = 0;

	if (!table_ready(st))
		return;
	while (cbench_keep_running(st)) {
		struct store_key key = {
		        .data = &table.hit_key[i], .len = BENCH_KEY_LEN, .hash = table.hit_hash[i]};
		int rc = store_get(table.s, &key, BENCH_NOW_S, &v);
		CBENCH_DO_NOT_OPTIMIZE(rc);
		cbench_do_not_optimize(v.data);
		i = (i + 1) & (BENCH_PROBES - 1);
	}
	report(st);
}

static void
BM_store_get_hit_prefetch(struct cbench_state *st)
{
	struct store_layout layout;
	struct store_value v;
	uint32_t i = 0;

	if (!table_ready(st))
		return;
	store_layout_get(table.s, &layout);
	while (cbench_keep_running(st)) {
		uint32_t ahead = (i + BENCH_PREFETCH_AHEAD) & (BENCH_PROBES - 1);
		uint32_t ahead2 = (i + 2 * BENCH_PREFETCH_AHEAD) & (BENCH_PROBES - 1);
		store_layout_prefetch(&layout, table.hit_hash[ahead2]);
		store_layout_prefetch_item(&layout, table.hit_hash[ahead], BENCH_KEY_LEN);
		struct store_key key = {
		        .data = &table.hit_key[i], .len = BENCH_KEY_LEN, .hash = table.hit_hash[i]};
		int rc = store_get(table.s, &key, BENCH_NOW_S, &v);
		CBENCH_DO_NOT_OPTIMIZE(rc);
		cbench_do_not_optimize(v.data);
		i = (i + 1) & (BENCH_PROBES - 1);
	}
	report(st);
}

static void
BM_store_get_miss(struct cbench_state *st)
{
	struct store_value v;
	uint32_t i = 0;

	if (!table_ready(st))
		return;
	while (cbench_keep_running(st)) {
		struct store_key key = {.data = &table.miss_key[i],
		                        .len = BENCH_KEY_LEN,
		                        .hash = table.miss_hash[i]};
		int rc = store_get(table.s, &key, BENCH_NOW_S, &v);
		CBENCH_DO_NOT_OPTIMIZE(rc);
		i = (i + 1) & (BENCH_PROBES - 1);
	}
	report(st);
}

static void
BM_store_set(struct cbench_state *st)
{
	uint64_t val = 0;
	uint32_t i = 0;

	if (!table_ready(st))
		return;
	while (cbench_keep_running(st)) {
		struct store_key key = {
		        .data = &table.hit_key[i], .len = BENCH_KEY_LEN, .hash = table.hit_hash[i]};
		struct store_write w = {.value = &val, .value_len = BENCH_VALUE_LEN};
		int rc = store_set(table.s, STORE_SET, &key, &w, BENCH_NOW_S, NULL);
		CBENCH_DO_NOT_OPTIMIZE(rc);
		val++;
		i = (i + 1) & (BENCH_PROBES - 1);
	}
	report(st);
}

static void
BM_store_get_concurrent(struct cbench_state *st)
{
	struct store_value v;
	uint64_t buf;
	uint32_t i = 0;

	if (!table_ready(st))
		return;
	while (cbench_keep_running(st)) {
		struct store_key key = {
		        .data = &table.hit_key[i], .len = BENCH_KEY_LEN, .hash = table.hit_hash[i]};
		int rc = store_get_copy_concurrent(table.s, &key, BENCH_NOW_S, &buf, sizeof(buf),
		                                   &v);
		CBENCH_DO_NOT_OPTIMIZE(rc);
		CBENCH_DO_NOT_OPTIMIZE(buf);
		i = (i + 1) & (BENCH_PROBES - 1);
	}
	report(st);
}

/* 1K, 64K, 1M, 16M items. */
static void
table_sizes(struct cbench *b)
{
	static const char *const names[] = {"items"};

	cbench_add_arg(b, 1024);
	cbench_add_arg(b, 64 * 1024);
	cbench_add_arg(b, 1024 * 1024);
	cbench_add_arg(b, BENCH_ITEMS_MAX);
	cbench_set_arg_names(b, names, 1);
}

CBENCH_REGISTER(BM_store_get_hit)
{
	table_sizes(b);
}

CBENCH_REGISTER(BM_store_get_hit_prefetch)
{
	table_sizes(b);
}

CBENCH_REGISTER(BM_store_get_miss)
{
	table_sizes(b);
}

CBENCH_REGISTER(BM_store_set)
{
	table_sizes(b);
}

CBENCH_REGISTER(BM_store_get_concurrent)
{
	table_sizes(b);
}
