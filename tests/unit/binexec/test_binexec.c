/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * binexec on a real store: every opcode and every status it can produce, with requests
 * going through the codec both ways (encode, decode, execute, decode the reply).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/binexec/binexec.h"
#include "dataplane/store/store.h"
#include "tests/unit/store_fixture.h"
#include "wire/binproto.h"

#define STORE_BYTES (1u << 20)
#define NOW_S       1000u

struct fixture {
	struct store *store;
	struct sp_binexec_stats stats;
	uint16_t owner[1024]; /* sp_bp_route_entry(node, worker) */
	struct sp_bp_route_node nodes[2];
	struct sp_binexec_route route;
	/* The last reply, decoded; its value points into reply_buf. */
	uint8_t reply_buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_reply reply;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->store = store_fixture_new(STORE_BYTES);
	/* Two nodes: even partitions on node 0 (4 workers), odd ones on node 1 (2 workers). */
	f->nodes[0] = (struct sp_bp_route_node){
	        .node_id = 1, .ipv4_be = 0x0100000au, .binary_port = 7000, .worker_count = 4};
	f->nodes[1] = (struct sp_bp_route_node){
	        .node_id = 2, .ipv4_be = 0x0200000au, .binary_port = 7100, .worker_count = 2};
	for (unsigned i = 0; i < SP_ARRAY_SIZE(f->owner); i++)
		f->owner[i] =
		        sp_bp_route_entry((uint16_t)(i % 2), (uint16_t)(i / 2 % (4 - 2 * (i % 2))));
	f->route = (struct sp_binexec_route){.epoch = 3,
	                                     .partitions = 1024,
	                                     .node_count = 2,
	                                     .self = 0,
	                                     .nodes = f->nodes,
	                                     .owner = f->owner};
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_fixture_free(f->store);
	free(f);
	return 0;
}

/* Encodes q, decodes it as the dataplane would, and returns the decoded descriptor. */
static struct sp_bp_req
through_codec(const struct sp_bp_req *q, uint8_t *buf)
{
	struct sp_bp_builder b;
	struct sp_bp_req out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	sp_bp_builder_init(&b, buf, SP_BP_PAYLOAD_MAX, false, 1);
	assert_int_equal(sp_bp_add_request(&b, q), 0);
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_requests(buf, len, 1024, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_OK);
	assert_int_equal(d.count, 1);
	return out[0];
}

/* Runs one request at time now_s; returns the reply status (reply kept in f->reply). */
static uint8_t
run_at(struct fixture *f, const struct sp_bp_req *q, uint32_t now_s)
{
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req r = through_codec(q, reqbuf);
	struct sp_bp_builder b;
	struct sp_bp_dgram d;

	sp_bp_builder_init(&b, f->reply_buf, sizeof(f->reply_buf), true, 1);
	assert_int_equal(sp_binexec_run(f->store, &r, now_s, &f->route, &b, &f->stats), 0);
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_replies(f->reply_buf, len, &f->reply, 1, &d), SP_BP_ERR_OK);
	assert_int_equal(f->reply.request_id, q->request_id);
	assert_int_equal(f->reply.opcode, q->opcode);
	return f->reply.status;
}

static uint8_t
run(struct fixture *f, const struct sp_bp_req *q)
{
	return run_at(f, q, NOW_S);
}

static struct sp_bp_req
req(uint8_t op, const char *key, const char *value)
{
	static uint32_t next_id = 1;
	struct sp_bp_req q = {.opcode = op, .request_id = next_id++};

	q.key = (const uint8_t *)key;
	q.key_len = (uint16_t)strlen(key);
	if (value != NULL) {
		q.value = (const uint8_t *)value;
		q.value_len = (uint32_t)strlen(value);
	}
	return q;
}

static uint64_t
reply_u64(const struct fixture *f)
{
	uint64_t v = 0;

	assert_int_equal(f->reply.value_len, SP_BP_COUNTER_REPLY_SIZE);
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)f->reply.value[i] << (8 * i);
	return v;
}

static void
test_get_set_hit_miss(void **state)
{
	struct fixture *f = *state;
	struct sp_bp_req q = req(SP_BP_OP_GET, "k1", NULL);

	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);
	q = req(SP_BP_OP_SET, "k1", "hello");
	q.flags = 0xfeed;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	uint64_t cas = f->reply.cas;
	assert_true(cas != 0);

	q = req(SP_BP_OP_GET, "k1", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_int_equal(f->reply.value_len, 5);
	assert_memory_equal(f->reply.value, "hello", 5);
	assert_int_equal(f->reply.flags, 0xfeed);
	assert_true(f->reply.cas == cas);

	/* Overwrite, and an empty value. */
	q = req(SP_BP_OP_SET, "k1", "");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(f->reply.cas != cas);
	q = req(SP_BP_OP_GET, "k1", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_int_equal(f->reply.value_len, 0);
	assert_true(f->stats.ops[SP_BP_OP_GET] == 3);
	assert_true(f->stats.status[SP_BP_ST_NOT_FOUND] == 1);
}

static void
test_add_replace(void **state)
{
	struct fixture *f = *state;
	struct sp_bp_req q = req(SP_BP_OP_REPLACE, "r", "x");

	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);
	q = req(SP_BP_OP_ADD, "r", "first");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q = req(SP_BP_OP_ADD, "r", "second");
	assert_int_equal(run(f, &q), SP_BP_ST_EXISTS);
	q = req(SP_BP_OP_REPLACE, "r", "third");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q = req(SP_BP_OP_GET, "r", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_memory_equal(f->reply.value, "third", 5);
}

static void
test_cas_set_and_delete(void **state)
{
	struct fixture *f = *state;
	struct sp_bp_req q = req(SP_BP_OP_SET, "c", "v1");

	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	uint64_t cas = f->reply.cas;

	q = req(SP_BP_OP_SET, "c", "v2");
	q.cas = cas + 100;
	assert_int_equal(run(f, &q), SP_BP_ST_CAS_MISMATCH);
	q.cas = cas;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	uint64_t cas2 = f->reply.cas;
	assert_true(cas2 != cas);

	q = req(SP_BP_OP_REPLACE, "c", "v3");
	q.cas = cas; /* stale */
	assert_int_equal(run(f, &q), SP_BP_ST_CAS_MISMATCH);

	q = req(SP_BP_OP_DELETE, "c", NULL);
	q.cas = cas;
	assert_int_equal(run(f, &q), SP_BP_ST_CAS_MISMATCH);
	q.cas = cas2;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q.cas = 0;
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);
	q = req(SP_BP_OP_GET, "c", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);

	/* CAS on a missing key: there is no version to match. */
	q = req(SP_BP_OP_SET, "missing", "v");
	q.cas = 12345;
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);
}

static void
test_incr_decr(void **state)
{
	struct fixture *f = *state;
	struct sp_bp_req q = req(SP_BP_OP_INCR, "n", NULL);

	q.delta = 1;
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);
	q.create = 1;
	q.initial = 10;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(reply_u64(f) == 10); /* created with initial; delta not applied */
	q.delta = 5;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(reply_u64(f) == 15);
	assert_true(f->reply.cas != 0);

	q = req(SP_BP_OP_DECR, "n", NULL);
	q.delta = 20;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(reply_u64(f) == 0); /* decr stops at zero */

	q = req(SP_BP_OP_INCR, "n", NULL);
	q.delta = UINT64_MAX;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(reply_u64(f) == UINT64_MAX);
	q.delta = 2;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(reply_u64(f) == 1); /* incr wraps */

	/* Counters are stored as decimal text. */
	q = req(SP_BP_OP_GET, "n", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_true(f->reply.value_len >= 1);
	assert_int_equal(f->reply.value[0], '1');

	q = req(SP_BP_OP_SET, "word", "abc");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q = req(SP_BP_OP_INCR, "word", NULL);
	q.delta = 1;
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_NUMBER);
	q = req(SP_BP_OP_DECR, "word", NULL);
	q.delta = 1;
	q.create = 1;
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_NUMBER);
}

static void
test_expiry(void **state)
{
	struct fixture *f = *state;
	struct sp_bp_req q = req(SP_BP_OP_SET, "e", "v");

	q.expiry_s = 10;
	assert_int_equal(run_at(f, &q, NOW_S), SP_BP_ST_OK);
	q = req(SP_BP_OP_GET, "e", NULL);
	assert_int_equal(run_at(f, &q, NOW_S + 9), SP_BP_ST_OK);
	assert_int_equal(run_at(f, &q, NOW_S + 11), SP_BP_ST_NOT_FOUND);

	/* A huge relative expiry saturates instead of wrapping into the past. */
	q = req(SP_BP_OP_SET, "far", "v");
	q.expiry_s = UINT32_MAX;
	assert_int_equal(run_at(f, &q, NOW_S), SP_BP_ST_OK);
	q = req(SP_BP_OP_GET, "far", NULL);
	assert_int_equal(run_at(f, &q, NOW_S + 1000000), SP_BP_ST_OK);
}

static void
test_bad_requests_and_refusals(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_dgram d;

	/* A request the decoder marked bad is answered with its status, store untouched. */
	struct sp_bp_req bad = {.opcode = SP_BP_OP_SET,
	                        .request_id = 77,
	                        .err = SP_BP_ERR_KEY_TOO_LONG,
	                        .status = SP_BP_ST_TOO_BIG};
	struct store_stats before;
	struct store_stats after;
	store_stats_get(f->store, &before);
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	assert_int_equal(sp_binexec_run(f->store, &bad, NOW_S, &f->route, &b, &f->stats), 0);
	assert_int_equal(sp_binexec_refuse(&bad, SP_BP_ST_SERVER_BUSY, &b, &f->stats), 0);
	uint32_t len = sp_bp_builder_finish(&b);
	store_stats_get(f->store, &after);
	assert_true(before.ops[STORE_OP_SET] == after.ops[STORE_OP_SET]);
	struct sp_bp_reply reps[2];
	assert_int_equal(sp_bp_decode_replies(buf, len, reps, 2, &d), SP_BP_ERR_OK);
	assert_int_equal(reps[0].status, SP_BP_ST_TOO_BIG);
	assert_int_equal(reps[0].request_id, 77);
	assert_int_equal(reps[1].status, SP_BP_ST_SERVER_BUSY);
	assert_true(f->stats.status[SP_BP_ST_SERVER_BUSY] == 1);

	/* Status mapping of every store error. */
	assert_int_equal(sp_binexec_status(0), SP_BP_ST_OK);
	assert_int_equal(sp_binexec_status(-SP_ENOTFOUND), SP_BP_ST_NOT_FOUND);
	assert_int_equal(sp_binexec_status(-SP_EEXISTS), SP_BP_ST_EXISTS);
	assert_int_equal(sp_binexec_status(-SP_EVERSION), SP_BP_ST_CAS_MISMATCH);
	assert_int_equal(sp_binexec_status(-SP_ETOOBIG), SP_BP_ST_TOO_BIG);
	assert_int_equal(sp_binexec_status(-SP_EFULL), SP_BP_ST_TOO_BIG);
	assert_int_equal(sp_binexec_status(-SP_ENOTNUM), SP_BP_ST_NOT_NUMBER);
	assert_int_equal(sp_binexec_status(-EINVAL), SP_BP_ST_BAD_REQUEST);
	assert_int_equal(sp_binexec_status(-SP_EBUSY), SP_BP_ST_SERVER_BUSY);
	assert_int_equal(sp_binexec_status(-SP_ECORRUPT), SP_BP_ST_INTERNAL);
}

static void
test_reply_full_has_no_side_effects(void **state)
{
	struct fixture *f = *state;
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX];
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;

	/* A builder with room for exactly one value-less reply. */
	sp_bp_builder_init(&b, buf, SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE, true, 1);
	struct sp_bp_req q = req(SP_BP_OP_SET, "full", "v");
	struct sp_bp_req r = through_codec(&q, reqbuf);
	assert_int_equal(sp_binexec_run(f->store, &r, NOW_S, &f->route, &b, &f->stats), 0);
	assert_int_equal(b.len, b.cap);
	q = req(SP_BP_OP_SET, "full2", "v");
	r = through_codec(&q, reqbuf);
	assert_int_equal(sp_binexec_run(f->store, &r, NOW_S, &f->route, &b, &f->stats), -SP_EFULL);
	q = req(SP_BP_OP_GET, "full2", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND); /* the refused set did not happen */

	/* incr needs 8 value bytes: refused before it changes the counter. */
	sp_bp_builder_init(&b, buf, SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + 7, true, 1);
	q = req(SP_BP_OP_INCR, "ctr", NULL);
	q.delta = 1;
	q.create = 1;
	r = through_codec(&q, reqbuf);
	assert_int_equal(sp_binexec_run(f->store, &r, NOW_S, &f->route, &b, &f->stats), -SP_EFULL);
	q = req(SP_BP_OP_GET, "ctr", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_NOT_FOUND);

	/* A get whose value does not fit what is left. */
	q = req(SP_BP_OP_SET, "g", "0123456789");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	sp_bp_builder_init(&b, buf, SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + 9, true, 1);
	q = req(SP_BP_OP_GET, "g", NULL);
	r = through_codec(&q, reqbuf);
	assert_int_equal(sp_binexec_run(f->store, &r, NOW_S, &f->route, &b, &f->stats), -SP_EFULL);
	assert_int_equal(b.count, 0);
	assert_true(f->stats.reply_full == 3);
}

static void
test_value_too_big_for_any_reply(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[4000];
	struct store_key k = {.data = "big", .len = 3, .hash = sp_key_hash("big", 3)};
	struct store_write w = {.value = big, .value_len = sizeof(big)};

	/* Another protocol (memcached text) may store values a datagram cannot carry. */
	memset(big, 'b', sizeof(big));
	assert_int_equal(store_set(f->store, STORE_SET, &k, &w, NOW_S, NULL), 0);
	struct sp_bp_req q = req(SP_BP_OP_GET, "big", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_TOO_BIG);
	assert_int_equal(f->reply.value_len, 0);
}

/*
 * The runtime's GET path (sp_binexec_get, with the probe the worker took a burst ahead, or
 * none) answers byte for byte what sp_binexec_run answers, for a hit, a miss, an empty
 * value and a value no datagram carries, with a probe that still holds and one made stale
 * by an overwrite; a reply that does not fit is -SP_EFULL with nothing written.
 */
static void
test_get_path_matches_run(void **state)
{
	struct fixture *f = *state;
	static uint8_t big[4000];
	const char *keys[] = {"hit", "miss", "empty", "big", "stale"};
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX];
	uint8_t a[SP_BP_PAYLOAD_MAX], b[SP_BP_PAYLOAD_MAX];
	struct store_layout l;

	memset(big, 'b', sizeof(big));
	struct sp_bp_req q = req(SP_BP_OP_SET, "hit", "value");
	q.flags = 77;
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q = req(SP_BP_OP_SET, "empty", "");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q = req(SP_BP_OP_SET, "stale", "old");
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	struct store_key bk = {.data = "big", .len = 3, .hash = sp_key_hash("big", 3)};
	struct store_write w = {.value = big, .value_len = sizeof(big)};
	assert_int_equal(store_set(f->store, STORE_SET, &bk, &w, NOW_S, NULL), 0);
	store_layout_get(f->store, &l);

	for (unsigned i = 0; i < SP_ARRAY_SIZE(keys); i++) {
		for (unsigned with_probe = 0; with_probe < 2; with_probe++) {
			struct sp_bp_builder ba, bb;
			struct store_probe p;

			q = req(SP_BP_OP_GET, keys[i], NULL);
			struct sp_bp_req r = through_codec(&q, reqbuf);
			store_layout_probe(&l, r.hash, r.key_len, &p);
			if (strcmp(keys[i], "stale") == 0) {
				/* Overwritten after the probe, before the get. */
				struct sp_bp_req set = req(SP_BP_OP_SET, "stale", "new value");
				assert_int_equal(run(f, &set), SP_BP_ST_OK);
			}
			sp_bp_builder_init(&ba, a, sizeof(a), true, 9);
			sp_bp_builder_init(&bb, b, sizeof(b), true, 9);
			struct sp_binexec_stats before = f->stats;
			int st = sp_binexec_get(f->store, &r, with_probe ? &p : NULL, NOW_S, &ba,
			                        &f->stats);
			assert_true(st >= 0);
			assert_true(f->stats.ops[SP_BP_OP_GET] == before.ops[SP_BP_OP_GET] + 1);
			assert_true(f->stats.status[st] == before.status[st] + 1);
			assert_int_equal(
			        sp_binexec_run(f->store, &r, NOW_S, &f->route, &bb, &f->stats), 0);
			uint32_t la = sp_bp_builder_finish(&ba);
			assert_int_equal(la, sp_bp_builder_finish(&bb));
			assert_memory_equal(a, b, la);
			/* And read as another worker reads it (no store counter moves). */
			sp_bp_builder_init(&bb, b, sizeof(b), true, 9);
			assert_int_equal(sp_binexec_get_shared(f->store, &r, NOW_S, &bb, &f->stats),
			                 st);
			assert_int_equal(sp_bp_builder_finish(&bb), la);
			assert_memory_equal(a, b, la);
			assert_int_equal(
			        sp_bp_decode_replies(a, la, &f->reply, 1, &(struct sp_bp_dgram){0}),
			        SP_BP_ERR_OK);
			assert_int_equal(f->reply.status, st);
		}
	}
	q = req(SP_BP_OP_GET, "hit", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	q = req(SP_BP_OP_GET, "stale", NULL);
	assert_int_equal(run(f, &q), SP_BP_ST_OK);
	assert_memory_equal(f->reply.value, "new value", 9);

	/* What is left of the builder holds a value-less reply but not this value. */
	struct sp_bp_builder small;
	uint64_t full = f->stats.reply_full;
	uint64_t gets = f->stats.ops[SP_BP_OP_GET];
	sp_bp_builder_init(&small, a, SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + 4, true, 1);
	q = req(SP_BP_OP_GET, "hit", NULL);
	struct sp_bp_req r = through_codec(&q, reqbuf);
	assert_int_equal(sp_binexec_get(f->store, &r, NULL, NOW_S, &small, &f->stats), -SP_EFULL);
	assert_int_equal(small.count, 0);
	assert_int_equal(small.len, SP_BP_DGRAM_HDR_SIZE);
	assert_true(f->stats.reply_full == full + 1);
	assert_true(f->stats.ops[SP_BP_OP_GET] == gets);
	/* The shared read: the same, its value never written past the builder's end. */
	a[small.cap] = 0x5a;
	assert_int_equal(sp_binexec_get_shared(f->store, &r, NOW_S, &small, &f->stats), -SP_EFULL);
	assert_int_equal(small.count, 0);
	assert_int_equal(small.len, SP_BP_DGRAM_HDR_SIZE);
	assert_int_equal(a[small.cap], 0x5a);
	assert_true(f->stats.reply_full == full + 2);
	q = req(SP_BP_OP_GET, "miss", NULL);
	r = through_codec(&q, reqbuf);
	assert_int_equal(sp_binexec_get(f->store, &r, NULL, NOW_S, &small, &f->stats),
	                 SP_BP_ST_NOT_FOUND);
	/* 4 bytes left: not even a miss fits any more. */
	assert_int_equal(sp_binexec_get_shared(f->store, &r, NOW_S, &small, &f->stats), -SP_EFULL);
	assert_int_equal(small.count, 1);
}

/* A redirect answers WRONG_PARTITION with the owner, without touching the store. */
static void
test_redirect_reply(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_req q = {.opcode = SP_BP_OP_SET,
	                      .request_id = 9,
	                      .key = (const uint8_t *)"k",
	                      .key_len = 1,
	                      .value = (const uint8_t *)"v",
	                      .value_len = 1};
	struct sp_bp_redirect rd = {.epoch = 5,
	                            .node_id = 2,
	                            .ipv4_be = 0x0200000au,
	                            .port = 7101,
	                            .worker = 1,
	                            .partition = 17};
	struct sp_bp_redirect got;
	struct sp_bp_reply rep;
	struct sp_bp_dgram d;
	uint64_t wrong = f->stats.status[SP_BP_ST_WRONG_PARTITION];

	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	assert_int_equal(sp_binexec_redirect(&q, &rd, &b, &f->stats), 0);
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_replies(buf, len, &rep, 1, &d), SP_BP_ERR_OK);
	assert_int_equal(rep.status, SP_BP_ST_WRONG_PARTITION);
	assert_int_equal(rep.request_id, 9);
	assert_int_equal(sp_bp_redirect_decode(rep.value, rep.value_len, &got), 1);
	assert_memory_equal(&got, &rd, sizeof(got));
	assert_int_equal(f->stats.status[SP_BP_ST_WRONG_PARTITION], wrong + 1);
	/* Nothing was stored. */
	struct store_key k = {.data = "k", .len = 1, .hash = sp_key_hash("k", 1)};
	struct store_value v;
	assert_int_equal(store_get(f->store, &k, NOW_S, &v), -SP_ENOTFOUND);
	/* No room: nothing written. */
	sp_bp_builder_init(&b, buf, SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + 4, true, 1);
	assert_int_equal(sp_binexec_redirect(&q, &rd, &b, &f->stats), -SP_EFULL);
	assert_int_equal(b.count, 0);
}

static void
test_route_pages(void **state)
{
	struct fixture *f = *state;
	struct sp_bp_req q = {.opcode = SP_BP_OP_ROUTE, .request_id = 5};
	struct sp_bp_route page;

	uint32_t seen = 0;
	for (uint32_t first = 0; first < f->route.partitions; first += page.count) {
		q.route_first = first;
		assert_int_equal(run(f, &q), SP_BP_ST_OK);
		assert_int_equal(sp_bp_route_decode(f->reply.value, f->reply.value_len, &page), 0);
		assert_int_equal(page.first, first);
		assert_int_equal(page.partitions, 1024);
		assert_int_equal(page.node_count, 2);
		assert_int_equal(page.self, 0);
		assert_true(page.epoch == 3);
		assert_true(page.count > 0);
		for (uint32_t n = 0; n < 2; n++) {
			struct sp_bp_route_node nd;

			sp_bp_route_node_get(&page, n, &nd);
			assert_memory_equal(&nd, &f->nodes[n], sizeof(nd));
		}
		for (uint32_t i = 0; i < page.count; i++) {
			uint16_t node, worker;

			sp_bp_route_entry_get(&page, i, &node, &worker);
			assert_int_equal(sp_bp_route_entry(node, worker), f->owner[first + i]);
		}
		seen += page.count;
	}
	assert_int_equal(seen, 1024);

	q.route_first = 1024;
	assert_int_equal(run(f, &q), SP_BP_ST_BAD_REQUEST);

	/* Without a routing table the node cannot answer ROUTE. */
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX];
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	q.route_first = 0;
	struct sp_bp_req r = through_codec(&q, reqbuf);
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	assert_int_equal(sp_binexec_run(NULL, &r, NOW_S, NULL, &b, NULL), 0);
	struct sp_bp_reply rep;
	struct sp_bp_dgram d;
	assert_int_equal(sp_bp_decode_replies(buf, sp_bp_builder_finish(&b), &rep, 1, &d),
	                 SP_BP_ERR_OK);
	assert_int_equal(rep.status, SP_BP_ST_INTERNAL);
}

/* ---- Randomized against a model --------------------------------------------------------- */

#define MODEL_KEYS   24u
#define MODEL_STEPS  20000u
#define MODEL_VALUES 32u /* bytes of a text value at most */

struct model_item {
	bool present;
	bool number; /* the value is a counter (decimal text) */
	uint64_t counter;
	char text[MODEL_VALUES + 1];
	uint64_t cas;
};

static uint64_t model_rng;

static uint64_t
model_next(void)
{
	model_rng ^= model_rng << 13;
	model_rng ^= model_rng >> 7;
	model_rng ^= model_rng << 17;
	return model_rng;
}

/* Checks a GET reply against the model item. */
static void
model_check_get(const struct fixture *f, const struct model_item *m)
{
	if (!m->present) {
		assert_int_equal(f->reply.status, SP_BP_ST_NOT_FOUND);
		return;
	}
	assert_int_equal(f->reply.status, SP_BP_ST_OK);
	assert_true(f->reply.cas == m->cas);
	char got[64];
	assert_true(f->reply.value_len < sizeof(got));
	memcpy(got, f->reply.value, f->reply.value_len);
	got[f->reply.value_len] = '\0';
	if (m->number)
		assert_true(strtoull(got, NULL, 10) == m->counter);
	else
		assert_string_equal(got, m->text);
}

static void
test_random_against_model(void **state)
{
	struct fixture *f = *state;
	static struct model_item model[MODEL_KEYS];
	char keys[MODEL_KEYS][16];
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (sp_mono_ns() ^ (uint64_t)getpid());

	printf("test_random_against_model (binexec): SP_TEST_SEED=%" PRIu64 "\n", seed);
	model_rng = seed | 1;
	memset(model, 0, sizeof(model));
	for (unsigned k = 0; k < MODEL_KEYS; k++)
		snprintf(keys[k], sizeof(keys[k]), "m%u", k);

	for (unsigned step = 0; step < MODEL_STEPS; step++) {
		unsigned k = (unsigned)(model_next() % MODEL_KEYS);
		struct model_item *m = &model[k];
		uint64_t x = model_next();
		char text[MODEL_VALUES + 1];
		struct sp_bp_req q;
		uint8_t st;

		snprintf(text, sizeof(text), "t%" PRIx64, x >> 20);
		switch (x % 8) {
		case 0:
			q = req(SP_BP_OP_GET, keys[k], NULL);
			run(f, &q);
			model_check_get(f, m);
			break;
		case 1:
		case 2: { /* set, add or replace, sometimes CAS-conditional, text or number */
			static const uint8_t ops[] = {SP_BP_OP_SET, SP_BP_OP_ADD, SP_BP_OP_REPLACE};
			uint8_t op = ops[(x >> 4) % 3];
			bool numeric = (x >> 6) % 2 == 0;
			uint64_t number = (x >> 8) % 100000;
			if (numeric)
				snprintf(text, sizeof(text), "%" PRIu64, number);
			q = req(op, keys[k], text);
			uint64_t cas_mode = (x >> 24) % 3; /* 0 none, 1 right, 2 wrong */
			if (op != SP_BP_OP_ADD && cas_mode == 1)
				q.cas = m->present ? m->cas : 1;
			if (op != SP_BP_OP_ADD && cas_mode == 2)
				q.cas = m->cas + 1000000;
			st = run(f, &q);
			uint8_t want = SP_BP_ST_OK;
			if (op == SP_BP_OP_ADD && m->present)
				want = SP_BP_ST_EXISTS;
			else if (op == SP_BP_OP_REPLACE && !m->present)
				want = SP_BP_ST_NOT_FOUND;
			else if (q.cas != 0 && !m->present)
				want = SP_BP_ST_NOT_FOUND;
			else if (q.cas != 0 && q.cas != m->cas)
				want = SP_BP_ST_CAS_MISMATCH;
			assert_int_equal(st, want);
			if (st == SP_BP_ST_OK) {
				assert_true(f->reply.cas > m->cas);
				m->present = true;
				m->number = numeric;
				m->counter = number;
				snprintf(m->text, sizeof(m->text), "%s", text);
				m->cas = f->reply.cas;
			}
			break;
		}
		case 3: { /* delete, sometimes CAS-conditional */
			q = req(SP_BP_OP_DELETE, keys[k], NULL);
			if ((x >> 4) % 2 == 0 && m->present)
				q.cas = (x >> 5) % 2 == 0 ? m->cas : m->cas + 7;
			st = run(f, &q);
			if (!m->present)
				assert_int_equal(st, SP_BP_ST_NOT_FOUND);
			else if (q.cas != 0 && q.cas != m->cas)
				assert_int_equal(st, SP_BP_ST_CAS_MISMATCH);
			else
				assert_int_equal(st, SP_BP_ST_OK);
			if (st == SP_BP_ST_OK)
				m->present = false;
			break;
		}
		default: { /* incr or decr, sometimes creating */
			bool incr = (x >> 4) % 2 == 0;
			q = req(incr ? SP_BP_OP_INCR : SP_BP_OP_DECR, keys[k], NULL);
			q.delta = (x >> 8) % 50;
			q.create = (x >> 5) % 2 == 0;
			q.initial = (x >> 16) % 1000;
			st = run(f, &q);
			if (!m->present && !q.create) {
				assert_int_equal(st, SP_BP_ST_NOT_FOUND);
			} else if (!m->present) {
				assert_int_equal(st, SP_BP_ST_OK);
				m->present = true;
				m->number = true;
				m->counter = q.initial;
			} else if (!m->number) {
				assert_int_equal(st, SP_BP_ST_NOT_NUMBER);
			} else {
				assert_int_equal(st, SP_BP_ST_OK);
				if (incr)
					m->counter += q.delta;
				else
					m->counter =
					        m->counter > q.delta ? m->counter - q.delta : 0;
			}
			if (st == SP_BP_ST_OK) {
				assert_true(reply_u64(f) == m->counter);
				assert_true(f->reply.cas > m->cas);
				m->cas = f->reply.cas;
			}
			break;
		}
		}
	}
	for (unsigned k = 0; k < MODEL_KEYS; k++) {
		struct sp_bp_req q = req(SP_BP_OP_GET, keys[k], NULL);
		run(f, &q);
		model_check_get(f, &model[k]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_get_set_hit_miss, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_add_replace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cas_set_and_delete, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_incr_decr, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_requests_and_refusals, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reply_full_has_no_side_effects, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_value_too_big_for_any_reply, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_get_path_matches_run, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_route_pages, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_redirect_reply, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
