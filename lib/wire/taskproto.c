/* SPDX-License-Identifier: BSD-3-Clause */
/* Encodings of RATELIMIT and AGGREGATE (taskproto.h). */
#include "wire/taskproto.h"

#include <errno.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "common/verify.h"

SP_STATIC_ASSERT(SP_AGG_RESULT_MAX <=
                         SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE - SP_BP_REPLY_HDR_SIZE,
                 "an aggregate result fits one reply record");
SP_STATIC_ASSERT(SP_AGG_KEY_MAX < SP_AGG_KEY_CUT, "a top key length fits 7 bits");
SP_STATIC_ASSERT(SP_AGG_TOPK_MAX <= UINT8_MAX, "n fits a byte");

static bool
rl_arg_ok(const struct sp_rl_arg *a)
{
	return a->rate_per_s >= 1 && a->rate_per_s <= SP_RL_RATE_MAX && a->burst >= 1 &&
	       a->cost >= 1 && a->cost <= a->burst;
}

int
sp_rl_arg_encode(uint8_t *out, const struct sp_rl_arg *a)
{
	ASSERT(out != NULL);
	if (!rl_arg_ok(a))
		return -EINVAL;
	sp_put_le32(out, a->rate_per_s);
	sp_put_le32(out + 4, a->burst);
	sp_put_le32(out + 8, a->cost);
	return 0;
}

int
sp_rl_arg_decode(const uint8_t *in, uint32_t len, struct sp_rl_arg *a)
{
	if (len != SP_RL_ARG_SIZE || in == NULL)
		return -SP_EMALFORMED;
	a->rate_per_s = sp_get_le32(in);
	a->burst = sp_get_le32(in + 4);
	a->cost = sp_get_le32(in + 8);
	return rl_arg_ok(a) ? 0 : -SP_EMALFORMED;
}

void
sp_rl_result_encode(uint8_t *out, const struct sp_rl_result *r)
{
	out[0] = r->allowed ? 1 : 0;
	out[1] = out[2] = out[3] = 0;
	sp_put_le32(out + 4, r->remaining);
	sp_put_le64(out + 8, r->wait_ns);
}

int
sp_rl_result_decode(const uint8_t *in, uint32_t len, struct sp_rl_result *r)
{
	if (len != SP_RL_RESULT_SIZE || in == NULL || in[0] > 1 || in[1] != 0 || in[2] != 0 ||
	    in[3] != 0)
		return -SP_EMALFORMED;
	r->allowed = in[0] == 1;
	r->remaining = sp_get_le32(in + 4);
	r->wait_ns = sp_get_le64(in + 8);
	return 0;
}

int
sp_agg_arg_encode(uint8_t *out, uint8_t k, const uint8_t *prefix, uint32_t prefix_len)
{
	ASSERT(out != NULL);
	if (k > SP_AGG_TOPK_MAX || prefix_len > SP_BP_KEY_MAX || (prefix == NULL && prefix_len))
		return -EINVAL;
	out[0] = k;
	if (prefix_len != 0)
		memcpy(out + 1, prefix, prefix_len);
	return (int)(1 + prefix_len);
}

int
sp_agg_arg_decode(const uint8_t *in, uint32_t len, uint8_t *k, const uint8_t **prefix,
                  uint32_t *prefix_len)
{
	if (len < 1 || len > SP_AGG_ARG_MAX || in == NULL || in[0] > SP_AGG_TOPK_MAX)
		return -SP_EMALFORMED;
	*k = in[0];
	*prefix = in + 1;
	*prefix_len = len - 1;
	return 0;
}

uint32_t
sp_agg_result_size(const struct sp_agg_result *r)
{
	uint32_t size = SP_AGG_HEAD_SIZE;

	ASSERT(r->n <= SP_AGG_TOPK_MAX);
	for (uint32_t i = 0; i < r->n; i++)
		size += SP_AGG_ENTRY_HEAD + r->top[i].key_len;
	return size;
}

uint32_t
sp_agg_result_encode(uint8_t *out, const struct sp_agg_result *r)
{
	uint32_t off = SP_AGG_HEAD_SIZE;

	VERIFY(r->n <= SP_AGG_TOPK_MAX);
	sp_put_le64(out, r->count);
	sp_put_le64(out + 8, r->sum_lo);
	sp_put_le64(out + 16, r->sum_hi);
	sp_put_le64(out + 24, r->skipped);
	out[32] = r->n;
	for (uint32_t i = 0; i < r->n; i++) {
		const struct sp_agg_entry *e = &r->top[i];

		VERIFY(e->key_len <= SP_AGG_KEY_MAX);
		ASSERT(i == 0 || !sp_agg_entry_before(e, &r->top[i - 1]));
		sp_put_le64(out + off, e->value);
		out[off + 8] = (uint8_t)(e->key_len | (e->cut ? SP_AGG_KEY_CUT : 0));
		memcpy(out + off + 9, e->key, e->key_len);
		off += SP_AGG_ENTRY_HEAD + e->key_len;
	}
	ASSERT(off == sp_agg_result_size(r));
	ASSERT(off <= SP_AGG_RESULT_MAX);
	return off;
}

int
sp_agg_result_decode(const uint8_t *in, uint32_t len, struct sp_agg_result *r)
{
	uint32_t off = SP_AGG_HEAD_SIZE;

	if (in == NULL || len < SP_AGG_HEAD_SIZE || len > SP_AGG_RESULT_MAX)
		return -SP_EMALFORMED;
	r->count = sp_get_le64(in);
	r->sum_lo = sp_get_le64(in + 8);
	r->sum_hi = sp_get_le64(in + 16);
	r->skipped = sp_get_le64(in + 24);
	r->n = in[32];
	if (r->n > SP_AGG_TOPK_MAX)
		return -SP_EMALFORMED;
	for (uint32_t i = 0; i < r->n; i++) {
		struct sp_agg_entry *e = &r->top[i];

		if (len - off < SP_AGG_ENTRY_HEAD)
			return -SP_EMALFORMED;
		e->value = sp_get_le64(in + off);
		e->key_len = in[off + 8] & (uint8_t)~SP_AGG_KEY_CUT;
		e->cut = (in[off + 8] & SP_AGG_KEY_CUT) != 0;
		off += SP_AGG_ENTRY_HEAD;
		if (e->key_len > SP_AGG_KEY_MAX || len - off < e->key_len)
			return -SP_EMALFORMED;
		memcpy(e->key, in + off, e->key_len);
		off += e->key_len;
		if (i > 0 && !sp_agg_entry_before(&r->top[i - 1], e))
			return -SP_EMALFORMED; /* out of order, or the same entry twice */
	}
	return off == len ? 0 : -SP_EMALFORMED;
}

/* What the dataplane's registry registers (task.c wire_props, the definitions' result_max). */
static int
register_one(uint8_t op, const char *name, uint8_t props, uint16_t room)
{
	const struct sp_bp_op_info *oi = sp_bp_op(op);

	if ((oi->props & SP_BP_OPF_VALID) == 0)
		return sp_bp_op_register(op, name, props, SP_BP_VALUE_BYTES, room);
	if (oi->props != (SP_BP_OPF_VALID | SP_BP_OPF_USER | props) ||
	    oi->value != SP_BP_VALUE_BYTES || oi->reply_room != room || strcmp(oi->name, name) != 0)
		return -EEXIST;
	return 0;
}

int
sp_taskproto_register(void)
{
	int rc = register_one(SP_TASK_OP_RATELIMIT, "ratelimit", SP_BP_OPF_KEY | SP_BP_OPF_WRITE,
	                      SP_RL_RESULT_SIZE);
	if (rc == 0)
		rc = register_one(SP_TASK_OP_AGGREGATE, "aggregate", SP_BP_OPF_FLAGS,
		                  SP_AGG_RESULT_MAX);
	if (rc == 0)
		rc = register_one(SP_TASK_OP_AGGREGATE_KEYS, "aggregate_keys", SP_BP_OPF_FLAGS,
		                  SP_AGG_RESULT_MAX);
	return rc;
}

/* Whether key (len bytes) is among the first n of k. */
static bool
key_seen(const struct sp_task_keys *k, uint32_t n, const uint8_t *key, uint8_t len)
{
	for (uint32_t i = 0; i < n; i++)
		if (k->key_len[i] == len && memcmp(k->key[i], key, len) == 0)
			return true;
	return false;
}

int
sp_task_keys_encode(uint8_t *out, uint32_t cap, const uint8_t *const *keys, const uint8_t *lens,
                    uint32_t n, const uint8_t *arg, uint32_t arg_len)
{
	struct sp_task_keys seen = {.count = 0};
	uint32_t off = 1;

	ASSERT(out != NULL);
	if (n == 0 || n > SP_TASK_KEYS_MAX || (arg == NULL && arg_len != 0))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] == 0 || keys[i] == NULL || key_seen(&seen, i, keys[i], lens[i]))
			return -EINVAL;
		if (lens[i] > SP_BP_KEY_MAX)
			return -SP_ETOOBIG;
		seen.key[i] = keys[i];
		seen.key_len[i] = lens[i];
		if (cap < off + 1u + lens[i])
			return -SP_EFULL;
		out[off] = lens[i];
		memcpy(out + off + 1, keys[i], lens[i]);
		off += 1u + lens[i];
	}
	if (cap < off + arg_len)
		return -SP_EFULL;
	if (arg_len != 0)
		memcpy(out + off, arg, arg_len);
	out[0] = (uint8_t)n;
	return (int)(off + arg_len);
}

int
sp_task_keys_decode(const uint8_t *in, uint32_t len, struct sp_task_keys *out)
{
	uint32_t off = 1;

	if (in == NULL || len < 1 || in[0] == 0 || in[0] > SP_TASK_KEYS_MAX)
		return -SP_EMALFORMED;
	out->count = in[0];
	for (uint32_t i = 0; i < out->count; i++) {
		if (len - off < 1 || in[off] == 0 || in[off] > SP_BP_KEY_MAX ||
		    len - off - 1 < in[off] || key_seen(out, i, in + off + 1, in[off]))
			return -SP_EMALFORMED;
		out->key_len[i] = in[off];
		out->key[i] = in + off + 1;
		off += 1u + in[off];
	}
	out->arg = in + off;
	out->arg_len = len - off;
	return 0;
}

bool
sp_agg_entry_before(const struct sp_agg_entry *a, const struct sp_agg_entry *b)
{
	if (a->value != b->value)
		return a->value > b->value;
	uint32_t n = SP_MIN(a->key_len, b->key_len);
	int c = memcmp(a->key, b->key, n);
	if (c != 0)
		return c < 0;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len;
	return !a->cut && b->cut;
}

void
sp_agg_top_insert(struct sp_agg_result *r, uint8_t k, const struct sp_agg_entry *e)
{
	uint32_t at;

	ASSERT(k <= SP_AGG_TOPK_MAX);
	ASSERT(r->n <= k);
	for (at = r->n; at > 0 && sp_agg_entry_before(e, &r->top[at - 1]); at--)
		;
	if (at >= k)
		return;
	uint32_t last = r->n < k ? r->n : (uint32_t)k - 1; /* the slot the tail moves into */
	memmove(&r->top[at + 1], &r->top[at], (last - at) * sizeof(r->top[0]));
	r->top[at] = *e;
	if (r->n < k)
		r->n++;
}

void
sp_agg_result_merge(struct sp_agg_result *a, const struct sp_agg_result *b, uint8_t k)
{
	uint64_t lo = a->sum_lo + b->sum_lo;

	a->sum_hi += b->sum_hi + (lo < a->sum_lo ? 1 : 0);
	a->sum_lo = lo;
	a->count += b->count;
	a->skipped += b->skipped;
	for (uint32_t i = 0; i < b->n; i++)
		sp_agg_top_insert(a, k, &b->top[i]);
}
