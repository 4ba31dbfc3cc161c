/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Binary-protocol codec micro-benchmarks (lib/wire/binproto), per datagram of N requests:
 *   BM_bp_decode_get/<N>     validate + decode N GETs (8-byte keys), key hash + partition
 *   BM_bp_decode_set/<N>     the same for SETs with 8-byte values
 *   BM_bp_encode_get/<N>     client side: build a datagram of N GETs
 *   BM_bp_reply_get/<N>      server side: append N replies with 8-byte values
 *   BM_bp_decode_replies/<N> client side: decode a reply datagram of N replies
 *   BM_bp_reencode_get/<N>   re-encode N decoded GETs into a new datagram (hand-off)
 *   BM_bp_forward_get/<N>    the same with sp_bp_add_record (copy the records as they came)
 * items_per_second counts requests (or replies); the `datagrams` counter is per second.
 * Each iteration uses the next of BENCH_DGRAMS prepared datagrams (distinct keys).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cbench/cbench.h"
#include "common/verify.h"
#include "wire/binproto.h"

#define BENCH_DGRAMS     64u /* prepared datagrams cycled through; a power of two */
#define BENCH_KEY_LEN    8u
#define BENCH_VALUE_LEN  8u
#define BENCH_PARTITIONS 1024u /* as a node would decode with; a power of two */
#define BENCH_SEED       0x5eed0123456789abull

SP_STATIC_ASSERT((BENCH_DGRAMS & (BENCH_DGRAMS - 1)) == 0, "BENCH_DGRAMS is a power of two");

struct prepared {
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint32_t len;
};

static struct prepared dgrams[BENCH_DGRAMS];
static uint8_t keys[BENCH_DGRAMS][SP_BP_REQS_MAX][BENCH_KEY_LEN];
static uint64_t rng_state = BENCH_SEED;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Fills keys with fixed pseudo-random bytes, the same on every run. Can't fail. */
static void
make_keys(void)
{
	rng_state = BENCH_SEED;
	for (uint32_t d = 0; d < BENCH_DGRAMS; d++) {
		for (uint32_t i = 0; i < SP_BP_REQS_MAX; i++) {
			uint64_t v = rng();
			memcpy(keys[d][i], &v, BENCH_KEY_LEN);
		}
	}
}

/*
 * Checks N against what one datagram can hold for opcode op (value_len bytes each);
 * skips the run with a message when it does not fit. Returns N, or 0 when skipped.
 */
static uint32_t
check_n(struct cbench_state *st, uint8_t op, uint32_t value_len)
{
	int64_t n = cbench_range(st, 0);
	struct sp_bp_req q = {.opcode = op, .key_len = BENCH_KEY_LEN, .value_len = value_len};
	uint64_t size = SP_BP_DGRAM_HDR_SIZE + (uint64_t)n * sp_bp_request_size(&q);
	char msg[128];

	if (n < 1 || n > (int64_t)SP_BP_REQS_MAX || size > SP_BP_PAYLOAD_MAX) {
		snprintf(msg, sizeof(msg), "%lld %s requests do not fit one datagram", (long long)n,
		         sp_bp_op_name(op));
		cbench_skip_with_error(st, msg);
		return 0;
	}
	return (uint32_t)n;
}

/* Encodes BENCH_DGRAMS request datagrams of n requests of opcode op. */
static void
prepare_requests(uint8_t op, uint32_t n)
{
	static const uint8_t value[BENCH_VALUE_LEN] = "01234567";

	make_keys();
	for (uint32_t d = 0; d < BENCH_DGRAMS; d++) {
		struct sp_bp_builder b;
		sp_bp_builder_init(&b, dgrams[d].buf, sizeof(dgrams[d].buf), false, d);
		for (uint32_t i = 0; i < n; i++) {
			struct sp_bp_req q = {.opcode = op,
			                      .request_id = i,
			                      .key = keys[d][i],
			                      .key_len = BENCH_KEY_LEN};
			if (op == SP_BP_OP_SET) {
				q.value = value;
				q.value_len = BENCH_VALUE_LEN;
			}
			VERIFY(sp_bp_add_request(&b, &q) == 0);
		}
		dgrams[d].len = sp_bp_builder_finish(&b);
	}
}

static void
report(struct cbench_state *st, uint32_t n)
{
	cbench_set_items_processed(st, cbench_iterations(st) * n);
	cbench_counter(st, "datagrams", (double)cbench_iterations(st), CBENCH_COUNTER_RATE);
}

static void
decode_requests(struct cbench_state *st, uint8_t op, uint32_t value_len)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint32_t n = check_n(st, op, value_len);
	uint32_t i = 0;

	if (n == 0)
		return;
	prepare_requests(op, n);
	while (cbench_keep_running(st)) {
		const struct prepared *p = &dgrams[i++ & (BENCH_DGRAMS - 1)];
		enum sp_bp_err e =
		        sp_bp_decode_requests(p->buf, p->len, BENCH_PARTITIONS, reqs, n, &d);
		CBENCH_DO_NOT_OPTIMIZE(e);
		cbench_do_not_optimize(reqs);
	}
	VERIFY(sp_bp_decode_requests(dgrams[0].buf, dgrams[0].len, BENCH_PARTITIONS, reqs, n, &d) ==
	       SP_BP_ERR_OK);
	VERIFY(d.count == n);
	report(st, n);
}

static void
BM_bp_decode_get(struct cbench_state *st)
{
	decode_requests(st, SP_BP_OP_GET, 0);
}

static void
BM_bp_decode_set(struct cbench_state *st)
{
	decode_requests(st, SP_BP_OP_SET, BENCH_VALUE_LEN);
}

static void
BM_bp_encode_get(struct cbench_state *st)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint32_t n = check_n(st, SP_BP_OP_GET, 0);
	uint32_t d = 0;

	if (n == 0)
		return;
	make_keys();
	while (cbench_keep_running(st)) {
		struct sp_bp_builder b;
		const uint32_t k = d++ & (BENCH_DGRAMS - 1);
		sp_bp_builder_init(&b, buf, sizeof(buf), false, k);
		for (uint32_t i = 0; i < n; i++) {
			struct sp_bp_req q = {.opcode = SP_BP_OP_GET,
			                      .request_id = i,
			                      .key = keys[k][i],
			                      .key_len = BENCH_KEY_LEN};
			int rc = sp_bp_add_request(&b, &q);
			CBENCH_DO_NOT_OPTIMIZE(rc);
		}
		uint32_t len = sp_bp_builder_finish(&b);
		CBENCH_DO_NOT_OPTIMIZE(len);
		cbench_do_not_optimize(buf);
	}
	report(st, n);
}

/* Builds a reply datagram of n replies with 8-byte values into buf; returns its length. */
static uint32_t
build_replies(uint8_t *buf, uint32_t n, uint64_t id)
{
	struct sp_bp_builder b;

	sp_bp_builder_init(&b, buf, SP_BP_PAYLOAD_MAX, true, id);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *v = sp_bp_add_reply(&b, i, SP_BP_OP_GET, SP_BP_ST_OK, id + i, 0,
		                             BENCH_VALUE_LEN);
		if (v != NULL)
			memcpy(v, "76543210", BENCH_VALUE_LEN);
	}
	return sp_bp_builder_finish(&b);
}

static void
BM_bp_reply_get(struct cbench_state *st)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint32_t n = check_n(st, SP_BP_OP_GET, 0);
	uint64_t id = 0;

	if (n == 0)
		return;
	while (cbench_keep_running(st)) {
		uint32_t len = build_replies(buf, n, id++);
		CBENCH_DO_NOT_OPTIMIZE(len);
		cbench_do_not_optimize(buf);
	}
	VERIFY(build_replies(buf, n, 0) ==
	       SP_BP_DGRAM_HDR_SIZE + n * (SP_BP_REPLY_HDR_SIZE + BENCH_VALUE_LEN));
	report(st, n);
}

static void
BM_bp_decode_replies(struct cbench_state *st)
{
	struct sp_bp_reply out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint32_t n = check_n(st, SP_BP_OP_GET, 0);
	uint32_t i = 0;

	if (n == 0)
		return;
	for (uint32_t k = 0; k < BENCH_DGRAMS; k++)
		dgrams[k].len = build_replies(dgrams[k].buf, n, k);
	while (cbench_keep_running(st)) {
		const struct prepared *p = &dgrams[i++ & (BENCH_DGRAMS - 1)];
		enum sp_bp_err e = sp_bp_decode_replies(p->buf, p->len, out, n, &d);
		CBENCH_DO_NOT_OPTIMIZE(e);
		cbench_do_not_optimize(out);
	}
	VERIFY(sp_bp_decode_replies(dgrams[0].buf, dgrams[0].len, out, n, &d) == SP_BP_ERR_OK);
	report(st, n);
}

/* Moves the n decoded requests of datagram 0 into a new datagram, by record or encoding. */
static void
forward(struct cbench_state *st, bool by_record)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint32_t n = check_n(st, SP_BP_OP_GET, 0);

	if (n == 0)
		return;
	prepare_requests(SP_BP_OP_GET, n);
	VERIFY(sp_bp_decode_requests(dgrams[0].buf, dgrams[0].len, BENCH_PARTITIONS, reqs, n, &d) ==
	       SP_BP_ERR_OK);
	while (cbench_keep_running(st)) {
		struct sp_bp_builder b;
		sp_bp_builder_init(&b, buf, sizeof(buf), false, 1);
		for (uint32_t i = 0; i < n; i++) {
			int rc = by_record ? sp_bp_add_record(&b, &reqs[i])
			                   : sp_bp_add_request(&b, &reqs[i]);
			CBENCH_DO_NOT_OPTIMIZE(rc);
		}
		uint32_t len = sp_bp_builder_finish(&b);
		CBENCH_DO_NOT_OPTIMIZE(len);
		cbench_do_not_optimize(buf);
	}
	report(st, n);
}

static void
BM_bp_reencode_get(struct cbench_state *st)
{
	forward(st, false);
}

static void
BM_bp_forward_get(struct cbench_state *st)
{
	forward(st, true);
}

/* Datagram sizes: one request, a typical batch, and the most one datagram carries. */
static void
per_datagram_args(struct cbench *b)
{
	cbench_add_arg(b, 1);
	cbench_add_arg(b, 8);
	cbench_add_arg(b, SP_BP_REQS_MAX);
}

CBENCH_REGISTER(BM_bp_decode_get)
{
	per_datagram_args(b);
}

CBENCH_REGISTER(BM_bp_decode_set)
{
	/* 30 SETs of 8-byte keys and values fill a 1472-byte datagram. */
	cbench_add_arg(b, 1);
	cbench_add_arg(b, 8);
	cbench_add_arg(b, 30);
}

CBENCH_REGISTER(BM_bp_encode_get)
{
	per_datagram_args(b);
}

CBENCH_REGISTER(BM_bp_reply_get)
{
	per_datagram_args(b);
}

CBENCH_REGISTER(BM_bp_decode_replies)
{
	per_datagram_args(b);
}

CBENCH_REGISTER(BM_bp_reencode_get)
{
	per_datagram_args(b);
}

CBENCH_REGISTER(BM_bp_forward_get)
{
	per_datagram_args(b);
}
