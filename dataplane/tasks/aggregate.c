/* SPDX-License-Identifier: BSD-3-Clause */
/* AGGREGATE: counters under a prefix, summed and ranked across partitions (aggregate.h). */
#include "dataplane/tasks/aggregate.h"

#include <stddef.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"

struct scan_ctx {
	struct sp_agg_result *acc;
	uint8_t k;
};

static int
scan_one(void *arg, const struct store_key *key, const struct store_value *value)
{
	struct scan_ctx *c = arg;
	struct sp_agg_result *r = c->acc;
	uint64_t v;

	if (store_counter_parse(value->data, value->len, &v) != 0) {
		r->skipped++;
		return 0;
	}
	r->count++;
	uint64_t lo = r->sum_lo + v;
	r->sum_hi += lo < r->sum_lo ? 1 : 0;
	r->sum_lo = lo;
	if (c->k == 0)
		return 0;
	struct sp_agg_entry e = {.value = v};
	e.key_len = (uint8_t)SP_MIN(key->len, SP_AGG_KEY_MAX);
	e.cut = key->len > SP_AGG_KEY_MAX;
	memcpy(e.key, key->data, e.key_len);
	sp_agg_top_insert(r, c->k, &e);
	return 0;
}

void
sp_agg_scan(struct store *s, const uint8_t *prefix, uint32_t prefix_len, uint8_t k, uint32_t now_s,
            struct sp_agg_result *acc)
{
	struct scan_ctx c = {.acc = acc, .k = k};

	ASSERT(k <= SP_AGG_TOPK_MAX);
	ASSERT(acc->n <= k);
	if (s == NULL)
		return;
	VERIFY(store_scan(s, prefix, prefix_len, now_s, scan_one, &c) == 0);
}

static uint8_t
agg_check(const uint8_t *arg, uint32_t arg_len, void *user)
{
	const uint8_t *prefix;
	uint32_t prefix_len;
	uint8_t k;

	(void)user;
	return sp_agg_arg_decode(arg, arg_len, &k, &prefix, &prefix_len) == 0
	               ? SP_BP_ST_OK
	               : SP_BP_ST_BAD_REQUEST;
}

static uint8_t
agg_exec(const struct sp_task_call *call, struct sp_task_out *out, void *user)
{
	struct sp_agg_result r;
	const uint8_t *prefix;
	uint32_t prefix_len;
	uint8_t k;

	(void)user;
	if (sp_agg_arg_decode(call->arg, call->arg_len, &k, &prefix, &prefix_len) != 0)
		return SP_BP_ST_BAD_REQUEST;
	memset(&r, 0, offsetof(struct sp_agg_result, top));
	sp_agg_scan(call->store, prefix, prefix_len, k, call->now_s, &r);
	VERIFY(out->cap >= sp_agg_result_size(&r));
	out->len = sp_agg_result_encode(out->buf, &r);
	return SP_BP_ST_OK;
}

static uint8_t
agg_merge(struct sp_task_out *acc, const uint8_t *part, uint32_t part_len, const uint8_t *arg,
          uint32_t arg_len, void *user)
{
	struct sp_agg_result a, b;
	const uint8_t *prefix;
	uint32_t prefix_len;
	uint8_t k;

	(void)user;
	if (sp_agg_arg_decode(arg, arg_len, &k, &prefix, &prefix_len) != 0 ||
	    sp_agg_result_decode(part, part_len, &b) != 0 || b.n > k)
		return SP_BP_ST_BAD_REQUEST;
	if (acc->len == 0) {
		memcpy(acc->buf, part, part_len);
		acc->len = part_len;
		return SP_BP_ST_OK;
	}
	VERIFY(sp_agg_result_decode(acc->buf, acc->len, &a) == 0); /* written by us */
	sp_agg_result_merge(&a, &b, k);
	VERIFY(acc->cap >= sp_agg_result_size(&a));
	acc->len = sp_agg_result_encode(acc->buf, &a);
	return SP_BP_ST_OK;
}

/* AGGREGATE_KEYS: the argument after the key list is k alone (an aggregate argument with
 * an empty prefix). */
static uint8_t
aggk_check(const uint8_t *arg, uint32_t arg_len, void *user)
{
	(void)user;
	return arg_len == 1 && arg[0] <= SP_AGG_TOPK_MAX ? SP_BP_ST_OK : SP_BP_ST_BAD_REQUEST;
}

/* One key: a counter (count 1, its value, a top entry), a value that is not one (skipped),
 * or nothing when the key is absent. */
static uint8_t
aggk_exec(const struct sp_task_call *call, struct sp_task_out *out, void *user)
{
	struct sp_agg_result r;
	struct store_value v;
	uint64_t n;

	(void)user;
	if (aggk_check(call->arg, call->arg_len, NULL) != SP_BP_ST_OK)
		return SP_BP_ST_BAD_REQUEST;
	memset(&r, 0, offsetof(struct sp_agg_result, top));
	struct store_key k = {.data = call->key, .len = call->key_len, .hash = call->hash};
	if (call->store != NULL && store_get(call->store, &k, call->now_s, &v) == 0) {
		if (store_counter_parse(v.data, v.len, &n) != 0) {
			r.skipped = 1;
		} else {
			r.count = 1;
			r.sum_lo = n;
			if (call->arg[0] > 0) {
				struct sp_agg_entry e = {.value = n};
				e.key_len = (uint8_t)SP_MIN(call->key_len, SP_AGG_KEY_MAX);
				e.cut = call->key_len > SP_AGG_KEY_MAX;
				memcpy(e.key, call->key, e.key_len);
				sp_agg_top_insert(&r, call->arg[0], &e);
			}
		}
	}
	out->len = sp_agg_result_encode(out->buf, &r);
	return SP_BP_ST_OK;
}

int
sp_aggregate_register(struct sp_task_registry *r, char *why, size_t why_len)
{
	struct sp_task_def d = {
	        .name = "aggregate",
	        .opcode = SP_TASK_OP_AGGREGATE,
	        .span = SP_TASK_SPAN_ALL,
	        .state_size = 0,
	        .result_max = SP_AGG_RESULT_MAX,
	        .arg_max = SP_AGG_ARG_MAX,
	        .check = agg_check,
	        .exec = agg_exec,
	        .merge = agg_merge,
	};
	int rc = sp_task_register(r, &d, why, why_len);
	if (rc != 0)
		return rc;
	struct sp_task_def dk = {
	        .name = "aggregate_keys",
	        .opcode = SP_TASK_OP_AGGREGATE_KEYS,
	        .span = SP_TASK_SPAN_KEYS,
	        .state_size = 0,
	        .result_max = SP_AGG_RESULT_MAX,
	        .arg_max = 1,
	        .check = aggk_check,
	        .exec = aggk_exec,
	        .merge = agg_merge,
	};
	return sp_task_register(r, &dk, why, why_len);
}
