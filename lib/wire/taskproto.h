/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The encodings of the two registered operations Shardplane ships (docs/tasks.md):
 * RATELIMIT, a per-key token bucket, and AGGREGATE, the count, sum and top-K of the
 * counters under a key prefix across every partition. Their requests are binary-protocol
 * requests with a task opcode (binproto.h); these functions encode and decode the request
 * value (the argument) and the reply value (the result). Pure, allocation-free, shared by
 * the dataplane and lib/client. All integers little-endian, unaligned.
 */
#ifndef SP_WIRE_TASKPROTO_H
#define SP_WIRE_TASKPROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "wire/binproto.h"

/* Opcodes of the shipped operations (in the registered range; wire-stable). */
#define SP_TASK_OP_RATELIMIT SP_BP_OP_USER_FIRST
#define SP_TASK_OP_AGGREGATE (SP_BP_OP_USER_FIRST + 1)
/* AGGREGATE over a list of keys instead of a prefix (argument: a key list, then k u8). */
#define SP_TASK_OP_AGGREGATE_KEYS (SP_BP_OP_USER_FIRST + 2)

/*
 * Request flags of an operation that spans partitions: how far it reaches. CLUSTER (0):
 * every partition of every node; NODE: the partitions of the node that received it;
 * WORKER: the partitions of the worker that runs it (what a gathering worker asks of each
 * local owner). Other values are answered BAD_REQUEST. A reply's flags carry how many
 * partitions it covers.
 */
#define SP_BP_TASK_SCOPE_CLUSTER 0u
#define SP_BP_TASK_SCOPE_NODE    1u
#define SP_BP_TASK_SCOPE_WORKER  2u
#define SP_BP_TASK_SCOPE_MAX     SP_BP_TASK_SCOPE_WORKER

/*
 * Adds RATELIMIT, AGGREGATE and AGGREGATE_KEYS to this process's opcode table (sp_bp_op_register), as the
 * dataplane's registry describes them, so that a client can encode and decode them.
 * Idempotent: an entry already there with the same description is kept. Returns 0, or
 * -EEXIST when one of the opcodes is registered as something else.
 */
int sp_taskproto_register(void);

/* ---- Key lists -------------------------------------------------------------------------
 * The argument of an operation that spans a list of keys (task.h SP_TASK_SPAN_KEYS): u8
 * count (1..SP_TASK_KEYS_MAX), then count keys, each u8 key_len (1..SP_BP_KEY_MAX) and its
 * bytes, then the operation's own argument (the rest). A key may appear once. Each key runs
 * on its partition's owner; a reply's flags count the keys answered.
 */
#define SP_TASK_KEYS_MAX 32u

struct sp_task_keys {
	uint32_t count;
	const uint8_t *key[SP_TASK_KEYS_MAX]; /* into the buffer decoded */
	uint8_t key_len[SP_TASK_KEYS_MAX];
	const uint8_t *arg; /* the operation's own argument */
	uint32_t arg_len;
};

/*
 * Encodes keys[0..n) (lengths lens) and the operation's argument into out (cap bytes).
 * Returns the length, -EINVAL (n 0 or over SP_TASK_KEYS_MAX, an empty or repeated key),
 * -SP_ETOOBIG (a key over SP_BP_KEY_MAX) or -SP_EFULL (does not fit cap).
 */
int sp_task_keys_encode(uint8_t *out, uint32_t cap, const uint8_t *const *keys, const uint8_t *lens,
                        uint32_t n, const uint8_t *arg, uint32_t arg_len);
/* Decodes a key list; -SP_EMALFORMED for a count of 0 or over the bound, a key that runs
 * past the end, an empty, repeated or too long (over SP_BP_KEY_MAX) key. */
int sp_task_keys_decode(const uint8_t *in, uint32_t len, struct sp_task_keys *out);

/* ---- RATELIMIT --------------------------------------------------------------------------
 * Key: the limited thing (1..250 bytes). Argument (12 bytes): rate u32 (tokens added per
 * second, >= 1), burst u32 (bucket size in tokens, >= 1), cost u32 (tokens this request
 * takes, 1..burst). Result (16 bytes): allowed u8, 3 reserved bytes, remaining u32 (whole
 * tokens left after the request), wait_ns u64 (how long until the bucket holds `cost`
 * tokens again: 0 when it does now; for a denied request, when to retry).
 */
#define SP_RL_ARG_SIZE    12u
#define SP_RL_RESULT_SIZE 16u
#define SP_RL_RATE_MAX    1000000000u /* one token a nanosecond */

struct sp_rl_arg {
	uint32_t rate_per_s;
	uint32_t burst;
	uint32_t cost;
};

struct sp_rl_result {
	bool allowed;
	uint32_t remaining;
	uint64_t wait_ns;
};

/* Writes a (checked: rate 1..SP_RL_RATE_MAX, burst >= 1, cost 1..burst) into out
 * (SP_RL_ARG_SIZE bytes). Returns 0 or -EINVAL (nothing written). */
int sp_rl_arg_encode(uint8_t *out, const struct sp_rl_arg *a);
/* Reads an argument; -SP_EMALFORMED for a wrong size or a value outside the ranges above. */
int sp_rl_arg_decode(const uint8_t *in, uint32_t len, struct sp_rl_arg *a);
void sp_rl_result_encode(uint8_t *out, const struct sp_rl_result *r);
/* Reads a result; -SP_EMALFORMED for a wrong size, allowed > 1 or reserved bytes set. */
int sp_rl_result_decode(const uint8_t *in, uint32_t len, struct sp_rl_result *r);

/* ---- AGGREGATE --------------------------------------------------------------------------
 * No key. Argument: k u8 (0..SP_AGG_TOPK_MAX: how many of the largest counters to list),
 * then the key prefix (0..250 bytes; empty: every key). Result: count u64 (counters under
 * the prefix), sum_lo u64 and sum_hi u64 (their 128-bit sum), skipped u64 (values under the
 * prefix that are not counters), n u8 (<= k), then n entries, largest value first (ties:
 * key bytes ascending): value u64, key_len u8 (bits 0-6: key bytes that follow, at most
 * SP_AGG_KEY_MAX; bit 7: the key was longer and is cut there), key bytes.
 * Request flags choose the scope: SP_BP_TASK_SCOPE_CLUSTER (every node), _NODE (the node
 * asked). A PARTIAL reply's flags count the partitions included.
 */
#define SP_AGG_TOPK_MAX   16u
#define SP_AGG_KEY_MAX    48u
#define SP_AGG_HEAD_SIZE  33u
#define SP_AGG_ENTRY_HEAD 9u
#define SP_AGG_RESULT_MAX \
	(SP_AGG_HEAD_SIZE + SP_AGG_TOPK_MAX * (SP_AGG_ENTRY_HEAD + SP_AGG_KEY_MAX))
#define SP_AGG_ARG_MAX (1u + SP_BP_KEY_MAX)
#define SP_AGG_KEY_CUT 0x80u

struct sp_agg_entry {
	uint64_t value;
	uint8_t key_len; /* bytes in key, <= SP_AGG_KEY_MAX */
	bool cut;        /* the real key is longer */
	uint8_t key[SP_AGG_KEY_MAX];
};

struct sp_agg_result {
	uint64_t count;
	uint64_t sum_lo, sum_hi;
	uint64_t skipped;
	uint8_t n;
	struct sp_agg_entry top[SP_AGG_TOPK_MAX];
};

/* Writes k and the prefix into out (1 + prefix_len bytes) and returns the length, or
 * -EINVAL for k over SP_AGG_TOPK_MAX or a prefix over SP_BP_KEY_MAX. */
int sp_agg_arg_encode(uint8_t *out, uint8_t k, const uint8_t *prefix, uint32_t prefix_len);
/* Reads an argument; -SP_EMALFORMED for an empty one, k over the bound or a long prefix. */
int sp_agg_arg_decode(const uint8_t *in, uint32_t len, uint8_t *k, const uint8_t **prefix,
                      uint32_t *prefix_len);
/* Bytes r takes encoded. */
uint32_t sp_agg_result_size(const struct sp_agg_result *r);
/* Encodes r into out (sp_agg_result_size(r) bytes; <= SP_AGG_RESULT_MAX) and returns the
 * length. r must be well-formed (checked). */
uint32_t sp_agg_result_encode(uint8_t *out, const struct sp_agg_result *r);
/* Reads a result: -SP_EMALFORMED for a short or long buffer, n over SP_AGG_TOPK_MAX, an
 * entry key over SP_AGG_KEY_MAX, or entries out of order. */
int sp_agg_result_decode(const uint8_t *in, uint32_t len, struct sp_agg_result *r);

/* The top-K order: true when a goes before b (larger value; ties: key bytes, then uncut
 * before cut). */
bool sp_agg_entry_before(const struct sp_agg_entry *a, const struct sp_agg_entry *b);

/*
 * Adds entry e to the top list of r, keeping it sorted and at most k long. Can't fail;
 * an entry that does not make the top k is dropped.
 */
void sp_agg_top_insert(struct sp_agg_result *r, uint8_t k, const struct sp_agg_entry *e);

/* Folds b into a (sums, counts, top k). Associative and commutative. Can't fail. */
void sp_agg_result_merge(struct sp_agg_result *a, const struct sp_agg_result *b, uint8_t k);

#endif
