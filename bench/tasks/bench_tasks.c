/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The two shipped registered operations (docs/tasks.md), on one core, without the network:
 *   BM_ratelimit_take/<keys>     sp_rl_take: one token-bucket decision on a partition's
 *                                table holding <keys> active keys (the clock moves 1 us a
 *                                call); ns per decision
 *   BM_ratelimit_run/<keys>      sp_task_run_key: what the owner does per RATELIMIT
 *                                request (admission, argument decode, the bucket, the
 *                                reply record appended to a datagram); ns per request
 *   BM_aggregate_scan/<items>    exec of AGGREGATE on one partition store of <items>
 *                                counters (all under the prefix, top 5 kept); reported as
 *                                items per second (ns per counter scanned)
 *   BM_aggregate_merge           merge of two 16-entry partial results (decode, merge,
 *                                encode), what a gatherer does per part answer; ns per merge
 * Keys are 16-byte strings; the key ring is pseudo-random and fixed (seeded).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbench/cbench.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/store/store.h"
#include "dataplane/tasks/aggregate.h"
#include "dataplane/tasks/ratelimit.h"
#include "dataplane/tasks/task.h"

#define KEY_LEN     16
#define KEYS_MAX    65536u
#define RL_BUCKETS  (64u * 1024u)
#define STORE_BYTES (64u << 20)
#define NOW_S       1u

static char keys[KEYS_MAX][KEY_LEN + 1];
static uint64_t hashes[KEYS_MAX];

static void
keys_make(void)
{
	uint64_t x = 0x5eed5eed5eed5eedull;

	if (keys[0][0] != '\0')
		return;
	for (uint32_t i = 0; i < KEYS_MAX; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		snprintf(keys[i], sizeof(keys[i]), "k:%014" PRIx64,
		         (uint64_t)((x * 0x2545F4914F6CDD1Dull) >> 8));
		hashes[i] = sp_key_hash(keys[i], KEY_LEN);
	}
}

static void
BM_ratelimit_take(struct cbench_state *st)
{
	uint32_t nkeys = (uint32_t)cbench_range(st, 0);
	uint32_t size = sp_rl_state_size(RL_BUCKETS);
	void *state = aligned_alloc(64, size);
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct sp_rl_arg a = {.rate_per_s = 100000, .burst = 100, .cost = 1};
	struct sp_rl_result res;
	uint64_t now = 0, allowed = 0;
	uint32_t i = 0;

	VERIFY(state != NULL && r != NULL);
	keys_make();
	memset(state, 0, size);
	sp_task_registry_init(r);
	VERIFY(sp_ratelimit_register(r, RL_BUCKETS, NULL, 0) == 0);
	VERIFY(sp_task_find(r, SP_TASK_OP_RATELIMIT)->init(state, size, 0, NULL) == 0);
	while (cbench_keep_running(st)) {
		sp_rl_take(state, size, hashes[i], &a, now, &res);
		allowed += res.allowed;
		now += 1000;
		i = i + 1 == nkeys ? 0 : i + 1;
	}
	CBENCH_DO_NOT_OPTIMIZE(allowed);
	cbench_set_items_processed(st, cbench_iterations(st));
	sp_task_registry_fini(r);
	free(r);
	free(state);
}
CBENCH_REGISTER(BM_ratelimit_take)
{
	static const char *const names[] = {"keys"};
	cbench_add_arg(b, 256);
	cbench_add_arg(b, 65536);
	cbench_set_arg_names(b, names, 1);
}

static void
BM_ratelimit_run(struct cbench_state *st)
{
	uint32_t nkeys = (uint32_t)cbench_range(st, 0);
	struct sp_task_registry *r = malloc(sizeof(*r));
	uint8_t arg[SP_RL_ARG_SIZE], out[SP_BP_PAYLOAD_MAX];
	struct sp_rl_arg a = {.rate_per_s = 100000, .burst = 100, .cost = 1};
	struct sp_bp_req *reqs = calloc(nkeys, sizeof(*reqs));
	struct sp_bp_builder b;
	uint32_t i = 0;
	uint64_t now = 0;

	VERIFY(r != NULL && reqs != NULL);
	keys_make();
	sp_task_registry_init(r);
	VERIFY(sp_ratelimit_register(r, RL_BUCKETS, NULL, 0) == 0);
	VERIFY(sp_task_start(r, 1, sp_task_heap_alloc, sp_task_heap_free, NULL, NULL, 0) == 0);
	VERIFY(sp_rl_arg_encode(arg, &a) == 0);
	for (uint32_t k = 0; k < nkeys; k++)
		reqs[k] = (struct sp_bp_req){.opcode = SP_TASK_OP_RATELIMIT,
		                             .request_id = k,
		                             .key = (const uint8_t *)keys[k],
		                             .key_len = KEY_LEN,
		                             .hash = hashes[k],
		                             .value = arg,
		                             .value_len = sizeof(arg),
		                             .partition = 0};
	sp_bp_builder_init(&b, out, sizeof(out), true, 1);
	while (cbench_keep_running(st)) {
		if (sp_task_run_key(r, &reqs[i], NULL, now, NOW_S, &b, NULL) != 0) {
			sp_bp_builder_init(&b, out, sizeof(out), true, 1); /* a full datagram */
			VERIFY(sp_task_run_key(r, &reqs[i], NULL, now, NOW_S, &b, NULL) == 0);
		}
		now += 1000;
		i = i + 1 == nkeys ? 0 : i + 1;
	}
	cbench_set_items_processed(st, cbench_iterations(st));
	sp_task_stop(r, sp_task_heap_free, NULL);
	sp_task_registry_fini(r);
	free(reqs);
	free(r);
}
CBENCH_REGISTER(BM_ratelimit_run)
{
	static const char *const names[] = {"keys"};
	cbench_add_arg(b, 256);
	cbench_add_arg(b, 65536);
	cbench_set_arg_names(b, names, 1);
}

static void
BM_aggregate_scan(struct cbench_state *st)
{
	uint32_t items = (uint32_t)cbench_range(st, 0);
	struct store_params p = {.bytes = STORE_BYTES};
	size_t need = store_memsize(&p);
	void *mem = aligned_alloc(STORE_MEM_ALIGN, need);
	struct store *s;
	struct sp_agg_result acc;

	VERIFY(mem != NULL);
	keys_make();
	s = store_init(mem, need, &p);
	VERIFY(s != NULL);
	for (uint32_t i = 0; i < items; i++) {
		struct store_key k = {.data = keys[i], .len = KEY_LEN, .hash = hashes[i]};
		struct store_arith ar = {
		        .op = STORE_INCR, .delta = i, .create = true, .initial = i};
		VERIFY(store_arith(s, &k, &ar, NOW_S, NULL, NULL) == 0);
	}
	while (cbench_keep_running(st)) {
		memset(&acc, 0, offsetof(struct sp_agg_result, top));
		sp_agg_scan(s, (const uint8_t *)"k:", 2, 5, NOW_S, &acc);
		VERIFY(acc.count == items);
	}
	cbench_set_items_processed(st, cbench_iterations(st) * items);
	free(mem);
}
CBENCH_REGISTER(BM_aggregate_scan)
{
	static const char *const names[] = {"items"};
	cbench_add_arg(b, 1024);
	cbench_add_arg(b, 65536);
	cbench_set_arg_names(b, names, 1);
}

static void
BM_aggregate_merge(struct cbench_state *st)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct sp_agg_result x = {0}, y = {0};
	uint8_t px[SP_AGG_RESULT_MAX], py[SP_AGG_RESULT_MAX], abuf[SP_AGG_RESULT_MAX];
	uint8_t arg[SP_AGG_ARG_MAX];
	int arg_len;

	VERIFY(r != NULL);
	keys_make();
	sp_task_registry_init(r);
	VERIFY(sp_aggregate_register(r, NULL, 0) == 0);
	const struct sp_task_def *d = sp_task_find(r, SP_TASK_OP_AGGREGATE);
	for (uint32_t i = 0; i < 2 * SP_AGG_TOPK_MAX; i++) {
		struct sp_agg_entry e = {.value = 1000 + i * 7 % 31, .key_len = KEY_LEN};
		memcpy(e.key, keys[i], KEY_LEN);
		sp_agg_top_insert(i % 2 ? &x : &y, SP_AGG_TOPK_MAX, &e);
	}
	uint32_t lx = sp_agg_result_encode(px, &x), ly = sp_agg_result_encode(py, &y);
	arg_len = sp_agg_arg_encode(arg, SP_AGG_TOPK_MAX, (const uint8_t *)"k:", 2);
	while (cbench_keep_running(st)) {
		struct sp_task_out acc = {.buf = abuf, .cap = sizeof(abuf), .len = 0};
		VERIFY(d->merge(&acc, px, lx, arg, (uint32_t)arg_len, NULL) == SP_BP_ST_OK);
		VERIFY(d->merge(&acc, py, ly, arg, (uint32_t)arg_len, NULL) == SP_BP_ST_OK);
		CBENCH_DO_NOT_OPTIMIZE(acc.len);
	}
	/* Two merges an iteration; the first only copies. */
	cbench_set_items_processed(st, cbench_iterations(st));
	sp_task_registry_fini(r);
	free(r);
}
CBENCH(BM_aggregate_merge);
