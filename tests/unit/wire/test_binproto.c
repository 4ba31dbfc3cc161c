/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Codec tests for the binary protocol: round trips for every opcode, every malformed
 * datagram class with its reason (the light decoder, sp_bp_decode_ids, agreeing), per-request errors, builders at their exact limits,
 * ROUTE pages, and a randomized round trip (seed printed; replay with SP_TEST_SEED).
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
#include "wire/binproto.h"

#define PARTS 16u

/* ---- A raw datagram writer independent of the codec's builders ------------------------- */

struct raw {
	uint8_t buf[SP_BP_PAYLOAD_MAX * 2];
	size_t len;
};

static void
raw_put(struct raw *r, uint64_t v, unsigned bytes)
{
	assert_true(r->len + bytes <= sizeof(r->buf));
	for (unsigned i = 0; i < bytes; i++)
		r->buf[r->len++] = (uint8_t)(v >> (8 * i));
}

static void
raw_header(struct raw *r, uint16_t magic, uint8_t version, uint8_t flags, uint16_t count)
{
	r->len = 0;
	raw_put(r, magic, 2);
	raw_put(r, version, 1);
	raw_put(r, flags, 1);
	raw_put(r, count, 2);
	raw_put(r, 0, 2);
	raw_put(r, 0x1122334455667788ull, 8);
}

static void
raw_req(struct raw *r, uint8_t op, uint16_t key_len, uint32_t id, uint32_t value_len, uint64_t cas)
{
	raw_put(r, op, 1);
	raw_put(r, 0, 1);
	raw_put(r, key_len, 2);
	raw_put(r, id, 4);
	raw_put(r, value_len, 4);
	raw_put(r, 0, 4); /* flags */
	raw_put(r, 0, 4); /* expiry */
	raw_put(r, 0, 4); /* reserved */
	raw_put(r, cas, 8);
}

static void
raw_bytes(struct raw *r, uint8_t byte, size_t n)
{
	assert_true(r->len + n <= sizeof(r->buf));
	memset(r->buf + r->len, byte, n);
	r->len += n;
}

/* One well-formed GET "k" datagram, the base most malformed cases start from. */
static void
raw_one_get(struct raw *r)
{
	raw_header(r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
	raw_req(r, SP_BP_OP_GET, 1, 7, 0, 0);
	raw_bytes(r, 'k', 1);
}

/*
 * Decodes r with the full decoder and checks that the light one (sp_bp_decode_ids) agrees:
 * the same datagram-level verdict, and the same ids and opcodes when it is OK.
 */
static enum sp_bp_err
decode_both(const uint8_t *buf, size_t len, struct sp_bp_req *reqs, struct sp_bp_dgram *d)
{
	struct sp_bp_req ids[SP_BP_REQS_MAX];
	struct sp_bp_dgram d2;
	enum sp_bp_err err = sp_bp_decode_requests(buf, len, PARTS, reqs, SP_BP_REQS_MAX, d);

	assert_int_equal(sp_bp_decode_ids(buf, len, ids, SP_BP_REQS_MAX, &d2), err);
	if (err != SP_BP_ERR_OK)
		return err;
	assert_int_equal(d2.count, d->count);
	assert_true(d2.datagram_id == d->datagram_id);
	assert_int_equal(d2.flags, d->flags);
	for (uint32_t i = 0; i < d->count; i++) {
		assert_int_equal(ids[i].opcode, reqs[i].opcode);
		assert_int_equal(ids[i].request_id, reqs[i].request_id);
		assert_int_equal(ids[i].err, SP_BP_ERR_OK);
		assert_int_equal(ids[i].key_len, 0);
		assert_null(ids[i].key);
	}
	return err;
}

static enum sp_bp_err
decode(const struct raw *r, struct sp_bp_req *reqs, struct sp_bp_dgram *d)
{
	return decode_both(r->buf, r->len, reqs, d);
}

/* ---- Round trips ------------------------------------------------------------------------ */

static struct sp_bp_req
mkreq(uint8_t op, const char *key, const char *value)
{
	struct sp_bp_req q = {.opcode = op, .request_id = 1000u + op};

	if (key != NULL) {
		q.key = (const uint8_t *)key;
		q.key_len = (uint16_t)strlen(key);
	}
	if (value != NULL) {
		q.value = (const uint8_t *)value;
		q.value_len = (uint32_t)strlen(value);
	}
	return q;
}

static void
check_same(const struct sp_bp_req *in, const struct sp_bp_req *out)
{
	assert_int_equal(out->err, SP_BP_ERR_OK);
	assert_int_equal(out->opcode, in->opcode);
	assert_int_equal(out->request_id, in->request_id);
	assert_int_equal(out->key_len, in->key_len);
	if (in->key_len != 0) {
		assert_memory_equal(out->key, in->key, in->key_len);
		assert_true(out->hash == sp_key_hash(in->key, in->key_len));
		assert_int_equal(out->partition, sp_key_partition(out->hash, PARTS));
	} else {
		assert_int_equal(out->partition, SP_BP_PARTITION_ANY);
	}
}

static void
test_roundtrip_every_op(void **state)
{
	(void)state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_req in[9];
	struct sp_bp_req out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	in[0] = mkreq(SP_BP_OP_GET, "alpha", NULL);
	in[1] = mkreq(SP_BP_OP_SET, "beta", "value-b");
	in[1].flags = 0xdeadbeef;
	in[1].expiry_s = 60;
	in[1].cas = 42;
	in[2] = mkreq(SP_BP_OP_ADD, "gamma", "");
	in[3] = mkreq(SP_BP_OP_REPLACE, "delta", "v");
	in[3].cas = 9;
	in[4] = mkreq(SP_BP_OP_DELETE, "epsilon", NULL);
	in[4].cas = 77;
	in[5] = mkreq(SP_BP_OP_INCR, "ctr", NULL);
	in[5].delta = 5;
	in[5].create = 1;
	in[5].initial = 100;
	in[6] = mkreq(SP_BP_OP_DECR, "ctr", NULL);
	in[6].delta = UINT64_MAX;
	in[7] = mkreq(SP_BP_OP_ROUTE, NULL, NULL);
	in[8] = mkreq(SP_BP_OP_ROUTE, NULL, NULL);
	in[8].route_first = 512;

	sp_bp_builder_init(&b, buf, sizeof(buf), false, 99);
	for (size_t i = 0; i < SP_ARRAY_SIZE(in); i++)
		assert_int_equal(sp_bp_add_request(&b, &in[i]), 0);
	uint32_t len = sp_bp_builder_finish(&b);

	assert_int_equal(sp_bp_decode_requests(buf, len, PARTS, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_OK);
	assert_int_equal(d.count, SP_ARRAY_SIZE(in));
	assert_true(d.datagram_id == 99);
	assert_int_equal(d.flags, 0);
	for (size_t i = 0; i < SP_ARRAY_SIZE(in); i++)
		check_same(&in[i], &out[i]);

	assert_int_equal(out[1].value_len, 7);
	assert_memory_equal(out[1].value, "value-b", 7);
	assert_int_equal(out[1].flags, 0xdeadbeef);
	assert_int_equal(out[1].expiry_s, 60);
	assert_true(out[1].cas == 42);
	assert_int_equal(out[2].value_len, 0);
	assert_null(out[2].value);
	assert_true(out[3].cas == 9);
	assert_true(out[4].cas == 77);
	assert_true(out[5].delta == 5);
	assert_int_equal(out[5].create, 1);
	assert_true(out[5].initial == 100);
	assert_int_equal(out[5].value_len, 0);
	assert_true(out[6].delta == UINT64_MAX);
	assert_int_equal(out[6].create, 0);
	assert_int_equal(out[7].route_first, 0);
	assert_int_equal(out[8].route_first, 512);

	/* Unpartitioned decoding: the hash is still computed, the partition is 0. */
	assert_int_equal(sp_bp_decode_requests(buf, len, 0, out, SP_BP_REQS_MAX, &d), SP_BP_ERR_OK);
	assert_int_equal(out[0].partition, 0);
	assert_true(out[0].hash == sp_key_hash("alpha", 5));
	assert_int_equal(out[7].partition, SP_BP_PARTITION_ANY);
}

static void
test_reply_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_reply out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	sp_bp_builder_init(&b, buf, sizeof(buf), true, 5);
	uint8_t *v = sp_bp_add_reply(&b, 1, SP_BP_OP_GET, SP_BP_ST_OK, 33, 0xabc, 3);
	assert_non_null(v);
	memcpy(v, "xyz", 3);
	assert_non_null(sp_bp_add_reply(&b, 2, SP_BP_OP_SET, SP_BP_ST_CAS_MISMATCH, 0, 0, 0));
	assert_non_null(sp_bp_add_reply(&b, 3, 0xee, SP_BP_ST_BAD_REQUEST, 0, 0, 0));
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(len, SP_BP_DGRAM_HDR_SIZE + 3 * SP_BP_REPLY_HDR_SIZE + 3);

	assert_int_equal(sp_bp_decode_replies(buf, len, out, SP_BP_REQS_MAX, &d), SP_BP_ERR_OK);
	assert_int_equal(d.count, 3);
	assert_true(d.datagram_id == 5);
	assert_int_equal(d.flags, SP_BP_F_REPLY);
	assert_int_equal(out[0].request_id, 1);
	assert_int_equal(out[0].status, SP_BP_ST_OK);
	assert_true(out[0].cas == 33);
	assert_int_equal(out[0].flags, 0xabc);
	assert_int_equal(out[0].value_len, 3);
	assert_memory_equal(out[0].value, "xyz", 3);
	assert_int_equal(out[1].status, SP_BP_ST_CAS_MISMATCH);
	assert_null(out[1].value);
	assert_int_equal(out[2].opcode, 0); /* invalid opcodes are echoed as 0 */

	/* A reply datagram is not a request datagram and vice versa. */
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	assert_int_equal(sp_bp_decode_requests(buf, len, PARTS, reqs, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_BAD_FLAGS);
	struct raw r;
	raw_one_get(&r);
	assert_int_equal(sp_bp_decode_replies(r.buf, r.len, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_BAD_FLAGS);
}

/* ---- Malformed datagrams ---------------------------------------------------------------- */

static void
test_malformed_header_classes(void **state)
{
	(void)state;
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	struct raw r;

	raw_one_get(&r);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OK);

	/* Truncated header: every length below 16. */
	for (size_t n = 0; n < SP_BP_DGRAM_HDR_SIZE; n++) {
		assert_int_equal(sp_bp_decode_requests(r.buf, n, PARTS, reqs, SP_BP_REQS_MAX, &d),
		                 SP_BP_ERR_SHORT_HEADER);
	}
	assert_int_equal(sp_bp_decode_requests(NULL, 0, PARTS, reqs, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_SHORT_HEADER);

	raw_header(&r, 0x5054, SP_BP_VERSION, 0, 1);
	raw_req(&r, SP_BP_OP_GET, 1, 7, 0, 0);
	raw_bytes(&r, 'k', 1);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_BAD_MAGIC);

	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION + 1, 0, 1);
	raw_req(&r, SP_BP_OP_GET, 1, 7, 0, 0);
	raw_bytes(&r, 'k', 1);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_BAD_VERSION);

	/* Version 1 (before ROUTE named the nodes) is refused, not misread. */
	raw_header(&r, SP_BP_MAGIC, 1, 0, 1);
	raw_req(&r, SP_BP_OP_GET, 1, 7, 0, 0);
	raw_bytes(&r, 'k', 1);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_BAD_VERSION);

	/* FORWARD is a request flag: accepted there, refused on a reply. */
	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, SP_BP_F_FORWARD, 1);
	raw_req(&r, SP_BP_OP_GET, 1, 7, 0, 0);
	raw_bytes(&r, 'k', 1);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OK);
	assert_int_equal(d.flags, SP_BP_F_FORWARD);
	{
		uint8_t rb[64];
		struct sp_bp_builder rbld;
		struct sp_bp_reply rep;
		struct sp_bp_dgram rd;

		sp_bp_builder_init(&rbld, rb, sizeof(rb), true, 1);
		assert_non_null(sp_bp_add_reply(&rbld, 1, SP_BP_OP_GET, SP_BP_ST_OK, 0, 0, 0));
		uint32_t rl = sp_bp_builder_finish(&rbld);
		rb[3] |= SP_BP_F_FORWARD;
		assert_int_equal(sp_bp_decode_replies(rb, rl, &rep, 1, &rd), SP_BP_ERR_BAD_FLAGS);
		/* The builder sets it on requests. */
		sp_bp_builder_init(&rbld, rb, sizeof(rb), false, 1);
		sp_bp_builder_set_flags(&rbld, SP_BP_F_FORWARD);
		assert_int_equal(rb[3], SP_BP_F_FORWARD);
	}

	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0x80, 1);
	raw_req(&r, SP_BP_OP_GET, 1, 7, 0, 0);
	raw_bytes(&r, 'k', 1);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_BAD_FLAGS);

	raw_one_get(&r);
	r.buf[6] = 1; /* reserved */
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_BAD_RESERVED);

	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 0);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_COUNT_ZERO);

	/* Count over the protocol limit, and over the caller's array. */
	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, SP_BP_REQS_MAX + 1);
	for (unsigned i = 0; i < SP_BP_REQS_MAX + 1; i++) {
		raw_req(&r, SP_BP_OP_GET, 1, i, 0, 0);
		raw_bytes(&r, 'k', 1);
	}
	assert_true(r.len <= SP_BP_PAYLOAD_MAX); /* so the count is what fails */
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_COUNT_OVER);
	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 3);
	assert_int_equal(sp_bp_decode_requests(r.buf, r.len, PARTS, reqs, 2, &d),
	                 SP_BP_ERR_COUNT_OVER);

	/* Longer than the payload limit. */
	raw_one_get(&r);
	r.len = SP_BP_PAYLOAD_MAX + 1;
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_TOO_LONG);
}

static void
test_malformed_record_classes(void **state)
{
	(void)state;
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	struct raw r;

	/* Truncated request header: every cut inside it. */
	raw_one_get(&r);
	for (size_t n = SP_BP_DGRAM_HDR_SIZE; n < SP_BP_DGRAM_HDR_SIZE + SP_BP_REQ_HDR_SIZE; n++) {
		assert_int_equal(decode_both(r.buf, n, reqs, &d), SP_BP_ERR_TRUNC_RECORD);
	}
	/* Second record missing entirely. */
	raw_one_get(&r);
	r.buf[4] = 2;
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_TRUNC_RECORD);

	/* Key bytes cut off: the key length overflows the datagram. */
	raw_one_get(&r);
	r.len--;
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OVERFLOW);

	/* A key length far past the end. */
	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
	raw_req(&r, SP_BP_OP_GET, UINT16_MAX, 1, 0, 0);
	raw_bytes(&r, 'k', 10);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OVERFLOW);

	/* A value that fits the limit but not the datagram. */
	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
	raw_req(&r, SP_BP_OP_SET, 1, 1, SP_BP_VALUE_MAX, 0);
	raw_bytes(&r, 'k', 1);
	raw_bytes(&r, 'v', 100);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OVERFLOW);

	/* Value over the protocol's limit (including values that would wrap a u32 sum). */
	uint32_t big[] = {SP_BP_VALUE_MAX + 1, UINT32_MAX, UINT32_MAX - 1};
	for (size_t i = 0; i < SP_ARRAY_SIZE(big); i++) {
		raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
		raw_req(&r, SP_BP_OP_SET, 1, 1, big[i], 0);
		raw_bytes(&r, 'k', 1);
		assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_VALUE_TOO_BIG);
	}

	/* Trailing bytes after the last record. */
	raw_one_get(&r);
	raw_bytes(&r, 0, 1);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_TRAILING);
}

/* A bad request inside a well-framed datagram is marked, and its neighbours are served. */
static void
check_bad_request(uint8_t op, uint16_t key_len, uint32_t value_len, uint64_t cas,
                  enum sp_bp_err want, enum sp_bp_status status)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	struct raw r;

	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 3);
	raw_req(&r, SP_BP_OP_GET, 1, 1, 0, 0);
	raw_bytes(&r, 'a', 1);
	raw_req(&r, op, key_len, 2, value_len, cas);
	raw_bytes(&r, 'k', key_len);
	raw_bytes(&r, 'v', value_len);
	raw_req(&r, SP_BP_OP_GET, 1, 3, 0, 0);
	raw_bytes(&r, 'c', 1);

	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OK);
	assert_int_equal(d.count, 3);
	assert_int_equal(reqs[0].err, SP_BP_ERR_OK);
	assert_int_equal(reqs[2].err, SP_BP_ERR_OK);
	assert_int_equal(reqs[2].key[0], 'c');
	assert_int_equal(reqs[1].err, want);
	assert_int_equal(reqs[1].status, status);
	assert_int_equal(reqs[1].request_id, 2);
	if (want != SP_BP_ERR_OK)
		assert_int_equal(reqs[1].partition, SP_BP_PARTITION_ANY);
	else
		assert_int_equal(reqs[1].partition, sp_key_partition(reqs[1].hash, PARTS));
}

static void
test_bad_requests_in_valid_datagram(void **state)
{
	(void)state;
	check_bad_request(SP_BP_OP_GET, 0, 0, 0, SP_BP_ERR_KEY_EMPTY, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_SET, 0, 4, 0, SP_BP_ERR_KEY_EMPTY, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_GET, SP_BP_KEY_MAX + 1, 0, 0, SP_BP_ERR_KEY_TOO_LONG,
	                  SP_BP_ST_TOO_BIG);
	check_bad_request(0, 1, 0, 0, SP_BP_ERR_BAD_OPCODE, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_LAST, 1, 0, 0, SP_BP_ERR_BAD_OPCODE, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_GET, 1, 3, 0, SP_BP_ERR_BAD_VALUE_LEN, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_DELETE, 1, 1, 0, SP_BP_ERR_BAD_VALUE_LEN, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_INCR, 1, 4, 0, SP_BP_ERR_BAD_VALUE_LEN, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_DECR, 1, 0, 0, SP_BP_ERR_BAD_VALUE_LEN, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_INCR, 1, 8, 5, SP_BP_ERR_BAD_REQ_FIELD, SP_BP_ST_BAD_REQUEST);
	{
		/* flags on incr/decr: a created counter has flags 0, so non-zero is refused. */
		struct sp_bp_req reqs[SP_BP_REQS_MAX];
		struct sp_bp_dgram d;
		struct raw r;
		raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
		raw_req(&r, SP_BP_OP_DECR, 1, 1, 8, 0);
		raw_bytes(&r, 'k', 1);
		raw_bytes(&r, 0, 8);
		r.buf[SP_BP_DGRAM_HDR_SIZE + 12] = 1; /* flags */
		assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OK);
		assert_int_equal(reqs[0].err, SP_BP_ERR_BAD_REQ_FIELD);
	}
	check_bad_request(SP_BP_OP_GET, 1, 0, 5, SP_BP_ERR_BAD_REQ_FIELD, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_ADD, 1, 0, 5, SP_BP_ERR_BAD_REQ_FIELD, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_ROUTE, 1, 0, 0, SP_BP_ERR_BAD_REQ_FIELD, SP_BP_ST_BAD_REQUEST);
	check_bad_request(SP_BP_OP_ROUTE, 0, 2, 0, SP_BP_ERR_BAD_VALUE_LEN, SP_BP_ST_BAD_REQUEST);

	/* The longest key is accepted; a reserved request byte is refused. */
	check_bad_request(SP_BP_OP_GET, 1, 0, 0, SP_BP_ERR_OK, SP_BP_ST_OK);
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	struct raw r;
	raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
	raw_req(&r, SP_BP_OP_GET, SP_BP_KEY_MAX, 1, 0, 0);
	raw_bytes(&r, 'k', SP_BP_KEY_MAX);
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OK);
	assert_int_equal(reqs[0].err, SP_BP_ERR_OK);
	r.buf[SP_BP_DGRAM_HDR_SIZE + 1] = 1;
	assert_int_equal(decode(&r, reqs, &d), SP_BP_ERR_OK);
	assert_int_equal(reqs[0].err, SP_BP_ERR_BAD_REQ_FIELD);
}

static void
test_malformed_replies(void **state)
{
	(void)state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_reply out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	assert_non_null(sp_bp_add_reply(&b, 1, SP_BP_OP_GET, SP_BP_ST_OK, 0, 0, 4));
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_replies(buf, len, out, SP_BP_REQS_MAX, &d), SP_BP_ERR_OK);
	for (uint32_t n = SP_BP_DGRAM_HDR_SIZE; n < len; n++) {
		enum sp_bp_err e = sp_bp_decode_replies(buf, n, out, SP_BP_REQS_MAX, &d);
		assert_int_equal(e, n < SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE
		                            ? SP_BP_ERR_TRUNC_RECORD
		                            : SP_BP_ERR_OVERFLOW);
	}
	uint8_t *st = buf + SP_BP_DGRAM_HDR_SIZE + 4;
	*st = SP_BP_ST_LAST;
	assert_int_equal(sp_bp_decode_replies(buf, len, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_BAD_OPCODE);
	*st = SP_BP_ST_OK;
	st[1] = SP_BP_OP_LAST;
	assert_int_equal(sp_bp_decode_replies(buf, len, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_BAD_OPCODE);
	st[1] = SP_BP_OP_GET;
	st[2] = 1;
	assert_int_equal(sp_bp_decode_replies(buf, len, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_BAD_RESERVED);
	st[2] = 0;
	buf[len] = 0;
	assert_int_equal(sp_bp_decode_replies(buf, len + 1, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_TRAILING);
}

/* ---- Builders at their limits ------------------------------------------------------------ */

static void
test_request_builder_limits(void **state)
{
	(void)state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint8_t value[SP_BP_VALUE_MAX + 1];
	char key[SP_BP_KEY_MAX + 2];
	struct sp_bp_builder b;

	memset(value, 'v', sizeof(value));
	memset(key, 'k', sizeof(key));
	key[SP_BP_KEY_MAX + 1] = '\0';

	/* Limits on one request. */
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 1);
	struct sp_bp_req q = mkreq(SP_BP_OP_SET, "k", NULL);
	q.value = value;
	q.value_len = SP_BP_VALUE_MAX + 1;
	assert_int_equal(sp_bp_add_request(&b, &q), -SP_ETOOBIG);
	q = mkreq(SP_BP_OP_GET, key, NULL);
	assert_int_equal(sp_bp_add_request(&b, &q), -SP_ETOOBIG);
	q = mkreq(SP_BP_OP_GET, NULL, NULL);
	assert_int_equal(sp_bp_add_request(&b, &q), -EINVAL);
	q = mkreq(SP_BP_OP_ROUTE, "k", NULL);
	assert_int_equal(sp_bp_add_request(&b, &q), -EINVAL);
	q = mkreq(0, "k", NULL);
	assert_int_equal(sp_bp_add_request(&b, &q), -EINVAL);
	assert_int_equal(b.count, 0);

	/* The largest value with a one-byte key exactly fills a datagram. */
	q = mkreq(SP_BP_OP_SET, "k", NULL);
	q.value = value;
	q.value_len = SP_BP_VALUE_MAX;
	assert_int_equal(sp_bp_add_request(&b, &q), 0);
	assert_int_equal(sp_bp_builder_finish(&b), SP_BP_PAYLOAD_MAX);
	q.value_len = 0;
	assert_int_equal(sp_bp_add_request(&b, &q), -SP_EFULL);
	struct sp_bp_req out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	assert_int_equal(
	        sp_bp_decode_requests(buf, SP_BP_PAYLOAD_MAX, PARTS, out, SP_BP_REQS_MAX, &d),
	        SP_BP_ERR_OK);
	assert_int_equal(out[0].value_len, SP_BP_VALUE_MAX);

	/* Exactly SP_BP_REQS_MAX requests, then EFULL though bytes remain. */
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 2);
	q = mkreq(SP_BP_OP_GET, "k", NULL);
	for (unsigned i = 0; i < SP_BP_REQS_MAX; i++)
		assert_int_equal(sp_bp_add_request(&b, &q), 0);
	assert_true(b.len + sp_bp_request_size(&q) <= b.cap);
	assert_int_equal(sp_bp_add_request(&b, &q), -SP_EFULL);
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_requests(buf, len, PARTS, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_OK);
	assert_int_equal(d.count, SP_BP_REQS_MAX);

	/* A small cap: the request that would cross it by one byte is refused. */
	sp_bp_builder_init(&b, buf, SP_BP_DGRAM_HDR_SIZE + SP_BP_REQ_HDR_SIZE + 4, false, 3);
	q = mkreq(SP_BP_OP_GET, "12345", NULL);
	assert_int_equal(sp_bp_add_request(&b, &q), -SP_EFULL);
	q = mkreq(SP_BP_OP_GET, "1234", NULL);
	assert_int_equal(sp_bp_add_request(&b, &q), 0);
	assert_int_equal(b.len, b.cap);
}

static void
test_reply_builder_exact_capacity(void **state)
{
	(void)state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_reply out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	/* One reply that leaves exactly zero bytes. */
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	uint32_t room = SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE - SP_BP_REPLY_HDR_SIZE;
	assert_false(sp_bp_reply_fits(&b, room + 1));
	assert_null(sp_bp_add_reply(&b, 1, SP_BP_OP_GET, SP_BP_ST_OK, 0, 0, room + 1));
	assert_int_equal(b.len, SP_BP_DGRAM_HDR_SIZE);
	assert_true(sp_bp_reply_fits(&b, room));
	uint8_t *v = sp_bp_add_reply(&b, 1, SP_BP_OP_GET, SP_BP_ST_OK, 0, 0, room);
	assert_non_null(v);
	memset(v, 'x', room);
	assert_int_equal(b.len, b.cap);
	assert_false(sp_bp_reply_fits(&b, 0));
	assert_null(sp_bp_add_reply(&b, 2, SP_BP_OP_SET, SP_BP_ST_OK, 0, 0, 0));
	assert_int_equal(sp_bp_builder_finish(&b), SP_BP_PAYLOAD_MAX);
	assert_int_equal(sp_bp_decode_replies(buf, b.len, out, SP_BP_REQS_MAX, &d), SP_BP_ERR_OK);
	assert_int_equal(out[0].value_len, room);

	/* The largest value always fits in an empty reply datagram. */
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	assert_true(sp_bp_reply_fits(&b, SP_BP_VALUE_MAX));

	/* The count bound: SP_BP_REQS_MAX empty replies, then no more. */
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	for (unsigned i = 0; i < SP_BP_REQS_MAX; i++)
		assert_non_null(sp_bp_add_reply(&b, i, SP_BP_OP_DELETE, SP_BP_ST_OK, 0, 0, 0));
	assert_false(sp_bp_reply_fits(&b, 0));
	assert_null(sp_bp_add_reply(&b, 99, SP_BP_OP_DELETE, SP_BP_ST_OK, 0, 0, 0));
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(len, SP_BP_DGRAM_HDR_SIZE + SP_BP_REQS_MAX * SP_BP_REPLY_HDR_SIZE);
	assert_int_equal(sp_bp_decode_replies(buf, len, out, SP_BP_REQS_MAX, &d), SP_BP_ERR_OK);
	assert_int_equal(out[SP_BP_REQS_MAX - 1].request_id, SP_BP_REQS_MAX - 1);
}

/* ---- ROUTE pages ------------------------------------------------------------------------ */

/* Three nodes with 2, 3 and 1 workers: partition i -> node i % 3, worker i % workers. */
static const struct sp_bp_route_node test_nodes[3] = {
        {.node_id = 11,
         .ipv4_be = 0x0100000au,
         .binary_port = 9000,
         .memcached_port = 11211,
         .worker_count = 2},
        {.node_id = 12,
         .ipv4_be = 0x0200000au,
         .binary_port = 9100,
         .memcached_port = 0,
         .worker_count = 3},
        {.node_id = 13,
         .ipv4_be = 0x0300000au,
         .binary_port = 9200,
         .memcached_port = 11213,
         .worker_count = 1},
};

static void
test_route_pages(void **state)
{
	(void)state;
	static uint16_t owner[1024];
	uint8_t value[SP_BP_PAYLOAD_MAX];
	struct sp_bp_route in = {.epoch = 7, .partitions = 1024, .node_count = 3, .self = 1};
	struct sp_bp_route got;
	struct sp_bp_route_node nd;
	uint32_t pages = 0;

	for (unsigned i = 0; i < SP_ARRAY_SIZE(owner); i++)
		owner[i] = sp_bp_route_entry((uint16_t)(i % 3),
		                             (uint16_t)(i % test_nodes[i % 3].worker_count));
	assert_int_equal(sp_bp_route_page_max(3), SP_BP_ROUTE_PAGE_MAX);
	for (uint32_t first = 0; first < in.partitions; first += in.count, pages++) {
		in.first = first;
		in.count = SP_MIN(sp_bp_route_page_max(3), in.partitions - first);
		sp_bp_route_encode(value, &in, test_nodes, owner);
		uint32_t len = sp_bp_route_value_size(3, in.count);
		assert_int_equal(len, 24 + 3 * 16 + 2 * in.count);
		assert_int_equal(sp_bp_route_decode(value, len, &got), 0);
		assert_true(got.epoch == 7);
		assert_int_equal(got.partitions, 1024);
		assert_int_equal(got.node_count, 3);
		assert_int_equal(got.self, 1);
		assert_int_equal(got.first, first);
		assert_int_equal(got.count, in.count);
		for (uint32_t n = 0; n < 3; n++) {
			sp_bp_route_node_get(&got, n, &nd);
			assert_memory_equal(&nd, &test_nodes[n], sizeof(nd));
		}
		for (uint32_t i = 0; i < got.count; i++) {
			uint16_t node, worker;

			sp_bp_route_entry_get(&got, i, &node, &worker);
			assert_int_equal(sp_bp_route_entry(node, worker), owner[first + i]);
		}
		assert_int_equal(sp_bp_route_decode(value, len - 1, &got), -SP_EMALFORMED);
		assert_int_equal(sp_bp_route_decode(value, len + 1, &got), -SP_EMALFORMED);
	}
	assert_int_equal(pages, 2);
	/* Many nodes leave room for fewer entries; a page of the largest map still fits. */
	assert_true(sp_bp_route_page_max(SP_BP_ROUTE_NODES_MAX) >= 64);
	assert_true(sp_bp_route_page_max(SP_BP_ROUTE_NODES_MAX) < SP_BP_ROUTE_PAGE_MAX);
	assert_true(SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE +
	                    sp_bp_route_value_size(SP_BP_ROUTE_NODES_MAX,
	                                           sp_bp_route_page_max(SP_BP_ROUTE_NODES_MAX)) <=
	            SP_BP_PAYLOAD_MAX);

	/* Malformed pages, one field at a time. */
	in.first = 0;
	in.count = 4;
	uint32_t len = sp_bp_route_value_size(3, 4);
	uint8_t *nodes = value + SP_BP_ROUTE_HEAD_SIZE;
	uint8_t *entries = nodes + 3 * SP_BP_ROUTE_NODE_SIZE;
#define REENCODE() sp_bp_route_encode(value, &in, test_nodes, owner)
	REENCODE();
	assert_int_equal(sp_bp_route_decode(value, len, &got), 0);
	assert_int_equal(sp_bp_route_decode(value, SP_BP_ROUTE_HEAD_SIZE - 1, &got),
	                 -SP_EMALFORMED);
	value[0] = 3; /* P not a power of two */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	value[4] = 0xff; /* first = 1023 + count 4 > P */
	value[5] = 0x03;
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	value[8] = 0; /* an empty page */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	value[12] = 0; /* no nodes */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	value[12] = SP_BP_ROUTE_NODES_MAX + 1;
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	value[14] = 3; /* self past the nodes */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	nodes[12] = 0; /* node 0 with no workers */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	nodes[14] = 1; /* node reserved field */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	entries[0] = 3; /* entry names node 3 of 3 */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	REENCODE();
	entries[2 * 2 + 1] = 1; /* partition 2 -> node 2 (1 worker), worker 1 */
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	/* P at its limit is accepted, twice the limit is not. */
	REENCODE();
	uint32_t p_max = SP_BP_PARTITIONS_MAX;
	memcpy(value, &p_max, 4);
	assert_int_equal(sp_bp_route_decode(value, len, &got), 0);
	assert_int_equal(got.partitions, SP_BP_PARTITIONS_MAX);
	p_max *= 2;
	memcpy(value, &p_max, 4);
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
	/* A page over the entries its node count allows. */
	REENCODE();
	uint32_t count_over = SP_BP_ROUTE_PAGE_MAX + 1;
	memcpy(value + 8, &count_over, 4);
	assert_int_equal(sp_bp_route_decode(value, len, &got), -SP_EMALFORMED);
#undef REENCODE
}

/* A WRONG_PARTITION value round-trips; empty means "owner unknown"; junk is refused. */
static void
test_redirect(void **state)
{
	(void)state;
	struct sp_bp_redirect in = {.epoch = 42,
	                            .node_id = 3,
	                            .ipv4_be = 0x0300000au,
	                            .port = 9002,
	                            .worker = 2,
	                            .partition = 61};
	struct sp_bp_redirect out;
	uint8_t v[SP_BP_REDIRECT_SIZE + 1];

	sp_bp_redirect_encode(v, &in);
	assert_int_equal(sp_bp_redirect_decode(v, SP_BP_REDIRECT_SIZE, &out), 1);
	assert_true(out.epoch == 42);
	assert_int_equal(out.node_id, 3);
	assert_int_equal(out.ipv4_be, 0x0300000au);
	assert_int_equal(out.port, 9002);
	assert_int_equal(out.worker, 2);
	assert_int_equal(out.partition, 61);
	assert_memory_equal(v + 12, "\x0a\x00\x00\x03", 4); /* the address as on the wire */
	assert_int_equal(sp_bp_redirect_decode(NULL, 0, &out), 0);
	assert_int_equal(sp_bp_redirect_decode(v, SP_BP_REDIRECT_SIZE - 1, &out), -SP_EMALFORMED);
	assert_int_equal(sp_bp_redirect_decode(v, SP_BP_REDIRECT_SIZE + 1, &out), -SP_EMALFORMED);
	v[8] = v[9] = v[10] = v[11] = 0; /* node 0 */
	assert_int_equal(sp_bp_redirect_decode(v, SP_BP_REDIRECT_SIZE, &out), -SP_EMALFORMED);
	sp_bp_redirect_encode(v, &in);
	v[16] = v[17] = 0; /* port 0 */
	assert_int_equal(sp_bp_redirect_decode(v, SP_BP_REDIRECT_SIZE, &out), -SP_EMALFORMED);
}

/* ---- Randomized round trip and truncation ---------------------------------------------- */

static uint64_t rng_state;

static uint64_t
rng(void)
{
	/* splitmix64: small, seedable, good enough to pick test shapes. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#define RANDOM_ROUNDS 3000u

static void
random_request(struct sp_bp_req *q, uint8_t *keybuf, uint8_t *valbuf)
{
	memset(q, 0, sizeof(*q));
	q->opcode = (uint8_t)(SP_BP_OP_GET + rng() % (SP_BP_OP_LAST - SP_BP_OP_GET));
	q->request_id = (uint32_t)rng();
	if (sp_bp_op_has_key(q->opcode)) {
		q->key_len = (uint16_t)(1 + rng() % (rng() % 4 == 0 ? SP_BP_KEY_MAX : 16));
		for (unsigned i = 0; i < q->key_len; i++)
			keybuf[i] = (uint8_t)rng();
		q->key = keybuf;
	}
	if (q->opcode == SP_BP_OP_SET || q->opcode == SP_BP_OP_ADD ||
	    q->opcode == SP_BP_OP_REPLACE) {
		q->value_len = (uint32_t)(rng() % (rng() % 8 == 0 ? 1000 : 64));
		for (unsigned i = 0; i < q->value_len; i++)
			valbuf[i] = (uint8_t)rng();
		q->value = valbuf;
		q->flags = (uint32_t)rng();
		q->expiry_s = (uint32_t)rng();
		if (q->opcode != SP_BP_OP_ADD)
			q->cas = rng();
	}
	if (q->opcode == SP_BP_OP_DELETE)
		q->cas = rng();
	if (q->opcode == SP_BP_OP_INCR || q->opcode == SP_BP_OP_DECR) {
		q->delta = rng();
		q->create = (uint8_t)(rng() & 1);
		q->initial = q->create ? rng() : 0;
	}
	if (q->opcode == SP_BP_OP_ROUTE)
		q->route_first = (uint32_t)(rng() % 4) * SP_BP_ROUTE_PAGE_MAX;
}

static void
test_random_roundtrip(void **state)
{
	(void)state;
	/* One slot past the limit: the request that finds a full datagram is built there. */
	static uint8_t keys[SP_BP_REQS_MAX + 1][SP_BP_KEY_MAX];
	static uint8_t vals[SP_BP_REQS_MAX + 1][1000];
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req in[SP_BP_REQS_MAX + 1];
	struct sp_bp_req out[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (sp_mono_ns() ^ (uint64_t)getpid());

	printf("test_random_roundtrip: SP_TEST_SEED=%" PRIu64 "\n", seed);
	rng_state = seed;
	for (unsigned round = 0; round < RANDOM_ROUNDS; round++) {
		struct sp_bp_builder b;
		unsigned n = 0;

		sp_bp_builder_init(&b, buf, sizeof(buf), false, round);
		for (;;) {
			random_request(&in[n], keys[n], vals[n]);
			int rc = sp_bp_add_request(&b, &in[n]);
			if (rc == -SP_EFULL)
				break;
			assert_int_equal(rc, 0);
			assert_true(n < SP_BP_REQS_MAX);
			n++;
			if (rng() % 16 == 0)
				break;
		}
		if (n == 0)
			continue;
		uint32_t len = sp_bp_builder_finish(&b);
		assert_int_equal(decode_both(buf, len, out, &d), SP_BP_ERR_OK);
		assert_int_equal(d.count, n);
		for (unsigned i = 0; i < n; i++) {
			check_same(&in[i], &out[i]);
			assert_int_equal(out[i].value_len,
			                 in[i].opcode == SP_BP_OP_SET ||
			                                 in[i].opcode == SP_BP_OP_ADD ||
			                                 in[i].opcode == SP_BP_OP_REPLACE
			                         ? in[i].value_len
			                         : 0);
			if (out[i].value_len != 0)
				assert_memory_equal(out[i].value, in[i].value, in[i].value_len);
			assert_true(out[i].cas == in[i].cas);
			assert_int_equal(out[i].flags, in[i].flags);
			assert_int_equal(out[i].expiry_s, in[i].expiry_s);
			assert_true(out[i].delta == in[i].delta);
			assert_true(out[i].initial == in[i].initial);
			assert_int_equal(out[i].create, in[i].create);
			assert_int_equal(out[i].route_first, in[i].route_first);
		}
		/* Every strict prefix is rejected, and never reads past its end (ASan). */
		uint32_t cut = (uint32_t)(rng() % len);
		assert_int_not_equal(
		        sp_bp_decode_requests(buf, cut, PARTS, out, SP_BP_REQS_MAX, &d),
		        SP_BP_ERR_OK);
		/* A flipped bit never crashes; the result is either a reason or a datagram. */
		uint32_t at = (uint32_t)(rng() % len);
		buf[at] ^= (uint8_t)(1u << (rng() % 8));
		enum sp_bp_err e = sp_bp_decode_requests(buf, len, PARTS, out, SP_BP_REQS_MAX, &d);
		assert_true(e < SP_BP_ERR_FIRST_REQ);
		for (unsigned i = 0; e == SP_BP_ERR_OK && i < d.count; i++) {
			assert_true(out[i].err < SP_BP_ERR_COUNT);
			if (out[i].err != SP_BP_ERR_OK)
				continue;
			assert_true(out[i].key == NULL || out[i].key >= buf);
			assert_true(out[i].key == NULL || out[i].key + out[i].key_len <= buf + len);
			assert_true(out[i].value == NULL ||
			            out[i].value + out[i].value_len <= buf + len);
		}
	}
}

/* Requests forwarded as they arrived: same bytes, same decoded descriptors. */
static void
test_add_record(void **state)
{
	(void)state;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint8_t fwd[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_req in[5];
	struct sp_bp_req out[SP_BP_REQS_MAX];
	struct sp_bp_req again[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	in[0] = mkreq(SP_BP_OP_SET, "a", "value");
	in[1] = mkreq(SP_BP_OP_INCR, "b", NULL);
	in[1].create = 1;
	in[1].initial = 9;
	in[2] = mkreq(SP_BP_OP_ROUTE, NULL, NULL);
	in[2].route_first = 512;
	in[3] = mkreq(SP_BP_OP_GET, "c", NULL);
	in[4] = mkreq(SP_BP_OP_DELETE, "d", NULL);
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 3);
	for (size_t i = 0; i < SP_ARRAY_SIZE(in); i++)
		assert_int_equal(sp_bp_add_request(&b, &in[i]), 0);
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_requests(buf, len, PARTS, out, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_OK);

	/* Every request forwarded as-is reproduces the datagram byte for byte. */
	sp_bp_builder_init(&b, fwd, sizeof(fwd), false, 3);
	for (size_t i = 0; i < SP_ARRAY_SIZE(in); i++) {
		assert_ptr_equal(out[i].record, buf + (i == 0 ? SP_BP_DGRAM_HDR_SIZE
		                                              : (size_t)(out[i - 1].record - buf) +
		                                                        out[i - 1].record_len));
		assert_int_equal(out[i].record_len, sp_bp_request_size(&in[i]));
		assert_int_equal(sp_bp_add_record(&b, &out[i]), 0);
	}
	assert_int_equal(sp_bp_builder_finish(&b), len);
	assert_memory_equal(fwd, buf, len);

	/* A subset decodes to the same descriptors (pointing into the new datagram). */
	sp_bp_builder_init(&b, fwd, sizeof(fwd), false, 4);
	assert_int_equal(sp_bp_add_record(&b, &out[1]), 0);
	assert_int_equal(sp_bp_add_record(&b, &out[3]), 0);
	uint32_t flen = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_requests(fwd, flen, PARTS, again, SP_BP_REQS_MAX, &d),
	                 SP_BP_ERR_OK);
	assert_int_equal(d.count, 2);
	check_same(&out[1], &again[0]);
	assert_true(again[0].initial == 9);
	check_same(&out[3], &again[1]);

	/* Hand-built descriptors are encoded; bad ones refused; capacity respected. */
	struct sp_bp_req hand = mkreq(SP_BP_OP_GET, "zz", NULL);
	sp_bp_builder_init(&b, fwd, SP_BP_DGRAM_HDR_SIZE + sp_bp_request_size(&hand), false, 5);
	assert_int_equal(sp_bp_add_record(&b, &hand), 0);
	assert_int_equal(b.len, b.cap);
	assert_int_equal(sp_bp_add_record(&b, &out[3]), -SP_EFULL);
	struct sp_bp_req bad = out[3];
	bad.err = SP_BP_ERR_KEY_EMPTY;
	assert_int_equal(sp_bp_add_record(&b, &bad), -EINVAL);
}

/* The byte-exact example in docs/protocol.md. */
static void
test_documented_example(void **state)
{
	(void)state;
	static const uint8_t want_req[] = {
	        0x53, 0x50, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	        0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
	        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x62};
	static const uint8_t want_reply[] = {0x53, 0x50, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x01,
	                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00,
	                                     0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x00,
	                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	                                     0x03, 0x00, 0x00, 0x00, 0x78, 0x79, 0x7a};
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_req q = mkreq(SP_BP_OP_GET, "ab", NULL);

	q.request_id = 7;
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 1);
	assert_int_equal(sp_bp_add_request(&b, &q), 0);
	assert_int_equal(sp_bp_builder_finish(&b), sizeof(want_req));
	assert_memory_equal(buf, want_req, sizeof(want_req));

	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	uint8_t *v = sp_bp_add_reply(&b, 7, SP_BP_OP_GET, SP_BP_ST_OK, 5, 0, 3);
	assert_non_null(v);
	memcpy(v, "xyz", 3);
	assert_int_equal(sp_bp_builder_finish(&b), sizeof(want_reply));
	assert_memory_equal(buf, want_reply, sizeof(want_reply));
}

static void
test_names(void **state)
{
	(void)state;
	for (int e = 0; e < SP_BP_ERR_COUNT; e++)
		assert_string_not_equal(sp_bp_err_name((enum sp_bp_err)e), "unknown");
	for (int s = 0; s < SP_BP_ST_LAST; s++)
		assert_string_not_equal(sp_bp_status_name((enum sp_bp_status)s), "unknown");
	for (int o = SP_BP_OP_GET; o < SP_BP_OP_LAST; o++)
		assert_string_not_equal(sp_bp_op_name((enum sp_bp_op)o), "unknown");
	assert_string_equal(sp_bp_err_name(SP_BP_ERR_COUNT), "unknown");
	assert_string_equal(sp_bp_status_name(SP_BP_ST_LAST), "unknown");
	/* Wire values of the cluster statuses, and their names. */
	assert_int_equal(SP_BP_ST_NOT_SERVING, 11);
	assert_int_equal(SP_BP_ST_NOT_READY, 12);
	assert_int_equal(SP_BP_ST_UNAVAILABLE, 13);
	assert_string_equal(sp_bp_status_name(SP_BP_ST_NOT_SERVING), "not_serving");
	assert_string_equal(sp_bp_status_name(SP_BP_ST_NOT_READY), "not_ready");
	assert_string_equal(sp_bp_status_name(SP_BP_ST_UNAVAILABLE), "unavailable");
	assert_string_equal(sp_bp_op_name(0), "unknown");
}

/* ---- The opcode table --------------------------------------------------------------------- */

/* What docs/protocol.md says of each built-in opcode, written out independently. */
struct op_expect {
	uint8_t op;
	const char *name;
	bool key, write, flags, expiry, cas;
	enum sp_bp_value_rule value;
	uint16_t room;
};

static const struct op_expect op_expected[] = {
        {SP_BP_OP_GET, "get", true, false, false, false, false, SP_BP_VALUE_NONE, 0},
        {SP_BP_OP_SET, "set", true, true, true, true, true, SP_BP_VALUE_BYTES, 0},
        {SP_BP_OP_ADD, "add", true, true, true, true, false, SP_BP_VALUE_BYTES, 0},
        {SP_BP_OP_REPLACE, "replace", true, true, true, true, true, SP_BP_VALUE_BYTES, 0},
        {SP_BP_OP_DELETE, "delete", true, true, false, false, true, SP_BP_VALUE_NONE, 0},
        {SP_BP_OP_INCR, "incr", true, true, false, true, false, SP_BP_VALUE_COUNTER, 8},
        {SP_BP_OP_DECR, "decr", true, true, false, true, false, SP_BP_VALUE_COUNTER, 8},
        {SP_BP_OP_ROUTE, "route", false, false, false, false, false, SP_BP_VALUE_PAGE, 0},
};

static void
test_op_table_properties(void **state)
{
	(void)state;
	assert_int_equal(SP_ARRAY_SIZE(op_expected), SP_BP_OP_LAST - 1);
	for (size_t i = 0; i < SP_ARRAY_SIZE(op_expected); i++) {
		const struct op_expect *e = &op_expected[i];
		const struct sp_bp_op_info *oi = sp_bp_op(e->op);

		assert_int_equal(e->op, i + 1);
		assert_string_equal(sp_bp_op_name((enum sp_bp_op)e->op), e->name);
		assert_true(oi->props & SP_BP_OPF_VALID);
		assert_false(oi->props & SP_BP_OPF_USER);
		assert_int_equal(!!(oi->props & SP_BP_OPF_KEY), e->key);
		assert_int_equal(sp_bp_op_has_key(e->op), e->key);
		assert_int_equal(!!(oi->props & SP_BP_OPF_WRITE), e->write);
		assert_int_equal(!!(oi->props & SP_BP_OPF_FLAGS), e->flags);
		assert_int_equal(!!(oi->props & SP_BP_OPF_EXPIRY), e->expiry);
		assert_int_equal(!!(oi->props & SP_BP_OPF_CAS), e->cas);
		assert_int_equal(oi->value, e->value);
		assert_int_equal(oi->reply_room, e->room);
	}
	/* Every other opcode is unknown: no key, no name, refused by both sides. */
	for (unsigned op = 0; op < SP_BP_OP_COUNT; op++) {
		if (op >= SP_BP_OP_GET && op < SP_BP_OP_LAST)
			continue;
		assert_int_equal(sp_bp_op((uint8_t)op)->props, 0);
		assert_false(sp_bp_op_has_key((uint8_t)op));
		assert_string_equal(sp_bp_op_name((enum sp_bp_op)op), "unknown");
	}
}

/* A request with every field set, for opcode op (key and value when the table has them). */
static struct sp_bp_req
full_req(uint8_t op)
{
	const struct sp_bp_op_info *oi = sp_bp_op(op);
	struct sp_bp_req q = {
	        .opcode = op,
	        .request_id = 0xa0000000u + op,
	        .flags = 0x11223344u,
	        .expiry_s = 77,
	        .cas = 0x0102030405060708ull,
	        .delta = 9,
	        .initial = 3,
	        .create = 1,
	        .route_first = 4,
	        .key = (const uint8_t *)"opkey",
	        .key_len = 5,
	        .value = (const uint8_t *)"opvalue",
	        .value_len = 7,
	};

	if ((oi->props & SP_BP_OPF_KEY) == 0) {
		q.key = NULL;
		q.key_len = 0;
	}
	return q;
}

/*
 * For every valid opcode, the encoder writes exactly the fields the table gives it, and
 * the decoder reads them back; a field the table does not give it, set on the wire, is
 * refused by the decoder (BAD_REQ_FIELD), and so are a key on a keyless opcode and a
 * value where none belongs (BAD_VALUE_LEN).
 */
static void
check_encoder_decoder_agree(uint8_t op)
{
	const struct sp_bp_op_info *oi = sp_bp_op(op);
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req in = full_req(op), out[2];
	struct sp_bp_builder b;
	struct sp_bp_dgram dg;
	uint32_t len;

	sp_bp_builder_init(&b, buf, sizeof(buf), false, 5);
	assert_int_equal(sp_bp_add_request(&b, &in), 0);
	len = sp_bp_builder_finish(&b);
	assert_int_equal(len, SP_BP_DGRAM_HDR_SIZE + sp_bp_request_size(&in));
	assert_int_equal(sp_bp_decode_requests(buf, len, PARTS, out, 2, &dg), SP_BP_ERR_OK);
	check_same(&in, &out[0]);
	assert_int_equal(out[0].flags, (oi->props & SP_BP_OPF_FLAGS) ? in.flags : 0);
	assert_int_equal(out[0].expiry_s, (oi->props & SP_BP_OPF_EXPIRY) ? in.expiry_s : 0);
	assert_true(out[0].cas == ((oi->props & SP_BP_OPF_CAS) ? in.cas : 0));
	switch (oi->value) {
	case SP_BP_VALUE_BYTES:
		assert_int_equal(out[0].value_len, in.value_len);
		assert_memory_equal(out[0].value, in.value, in.value_len);
		break;
	case SP_BP_VALUE_COUNTER:
		assert_int_equal(out[0].value_len, 0);
		assert_true(out[0].delta == in.delta);
		assert_true(out[0].initial == in.initial);
		assert_int_equal(out[0].create, 1);
		break;
	case SP_BP_VALUE_PAGE:
		assert_int_equal(out[0].value_len, 0);
		assert_int_equal(out[0].route_first, in.route_first);
		break;
	default:
		assert_int_equal(out[0].value_len, 0);
		assert_null(out[0].value);
		break;
	}

	/* The header fields the table leaves out, each set alone on the wire. */
	static const struct {
		uint8_t bit;
		size_t off, width;
	} fields[] = {
	        {SP_BP_OPF_FLAGS, 12, 4},
	        {SP_BP_OPF_EXPIRY, 16, 4},
	        {SP_BP_OPF_CAS, 24, 8},
	};
	for (size_t f = 0; f < SP_ARRAY_SIZE(fields); f++) {
		uint8_t bad[SP_BP_PAYLOAD_MAX];

		memcpy(bad, buf, len);
		memset(bad + SP_BP_DGRAM_HDR_SIZE + fields[f].off, 0x5a, fields[f].width);
		assert_int_equal(sp_bp_decode_requests(bad, len, PARTS, out, 2, &dg), SP_BP_ERR_OK);
		if (oi->props & fields[f].bit) {
			assert_int_equal(out[0].err, SP_BP_ERR_OK);
		} else {
			assert_int_equal(out[0].err, SP_BP_ERR_BAD_REQ_FIELD);
			assert_int_equal(out[0].status, SP_BP_ST_BAD_REQUEST);
			assert_int_equal(out[0].partition, SP_BP_PARTITION_ANY);
		}
	}

	/* A key where none belongs, and a value length outside the rule. */
	{
		struct raw r;

		raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
		if (oi->props & SP_BP_OPF_KEY) {
			raw_req(&r, op, 0, 1, 0, 0);
			assert_int_equal(decode(&r, out, &dg), SP_BP_ERR_OK);
			assert_int_equal(out[0].err, SP_BP_ERR_KEY_EMPTY);
		} else {
			raw_req(&r, op, 1, 1, 0, 0);
			raw_bytes(&r, 'k', 1);
			assert_int_equal(decode(&r, out, &dg), SP_BP_ERR_OK);
			assert_int_equal(out[0].err, SP_BP_ERR_BAD_REQ_FIELD);
		}
		raw_header(&r, SP_BP_MAGIC, SP_BP_VERSION, 0, 1);
		raw_req(&r, op, (oi->props & SP_BP_OPF_KEY) ? 1 : 0, 1, 3, 0);
		raw_bytes(&r, 'k', (oi->props & SP_BP_OPF_KEY) ? 1 : 0);
		raw_bytes(&r, 'v', 3);
		assert_int_equal(decode(&r, out, &dg), SP_BP_ERR_OK);
		assert_int_equal(out[0].err, oi->value == SP_BP_VALUE_BYTES
		                                     ? SP_BP_ERR_OK
		                                     : SP_BP_ERR_BAD_VALUE_LEN);
	}
}

static void
test_op_table_encoder_decoder_agree(void **state)
{
	(void)state;
	for (uint8_t op = SP_BP_OP_GET; op < SP_BP_OP_LAST; op++)
		check_encoder_decoder_agree(op);
}

static void
test_op_register(void **state)
{
	const uint8_t u = SP_BP_OP_USER_FIRST + 3;
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_req in, out[2];
	struct sp_bp_dgram dg;

	(void)state;
	/* Refused: built-in range, no name, unknown or reserved properties, counters, rules
	 * the built-in checks also refuse, a reply room over a datagram. */
	assert_int_equal(sp_bp_op_register(SP_BP_OP_GET, "x", SP_BP_OPF_KEY, SP_BP_VALUE_NONE, 0),
	                 -EINVAL);
	assert_int_equal(sp_bp_op_register(SP_BP_OP_USER_FIRST - 1, "x", 0, SP_BP_VALUE_NONE, 0),
	                 -EINVAL);
	assert_int_equal(sp_bp_op_register(u, NULL, 0, SP_BP_VALUE_NONE, 0), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "", 0, SP_BP_VALUE_NONE, 0), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "x", SP_BP_OPF_USER, SP_BP_VALUE_NONE, 0), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "x", SP_BP_OPF_VALID, SP_BP_VALUE_NONE, 0), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "x", 0x80, SP_BP_VALUE_NONE, 0), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "x", SP_BP_OPF_KEY, SP_BP_VALUE_COUNTER, 8), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "x", 0, SP_BP_VALUE_PAGE, 0), -EINVAL);
	assert_int_equal(sp_bp_op_register(u, "x", SP_BP_OPF_CAS, SP_BP_VALUE_NONE, 0), -EINVAL);
	assert_int_equal(
	        sp_bp_op_register(u, "x", SP_BP_OPF_KEY | SP_BP_OPF_FLAGS, SP_BP_VALUE_NONE, 0),
	        -EINVAL);
	assert_int_equal(
	        sp_bp_op_register(u, "x", SP_BP_OPF_KEY | SP_BP_OPF_EXPIRY, SP_BP_VALUE_BYTES, 0),
	        -EINVAL);
	assert_int_equal(
	        sp_bp_op_register(u, "x", SP_BP_OPF_KEY, SP_BP_VALUE_BYTES, SP_BP_VALUE_MAX + 1),
	        -EINVAL);
	assert_int_equal(sp_bp_op(u)->props, 0);
	assert_int_equal(sp_bp_op_unregister(u), -ENOENT);
	assert_int_equal(sp_bp_op_unregister(SP_BP_OP_GET), -ENOENT);

	/* Unknown until registered: the encoder refuses it, the decoder answers BAD_OPCODE. */
	in = full_req(u);
	in.key = (const uint8_t *)"bucket";
	in.key_len = 6;
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 9);
	assert_int_equal(sp_bp_add_request(&b, &in), -EINVAL);

	assert_int_equal(sp_bp_op_register(u, "ratelimit",
	                                   SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_EXPIRY,
	                                   SP_BP_VALUE_BYTES, 16),
	                 0);
	assert_int_equal(sp_bp_op_register(u, "again", SP_BP_OPF_KEY, SP_BP_VALUE_NONE, 0),
	                 -EEXIST);
	assert_int_equal(sp_bp_op(u)->props, SP_BP_OPF_VALID | SP_BP_OPF_USER | SP_BP_OPF_KEY |
	                                             SP_BP_OPF_WRITE | SP_BP_OPF_EXPIRY);
	assert_int_equal(sp_bp_op(u)->reply_room, 16);
	assert_string_equal(sp_bp_op_name((enum sp_bp_op)u), "ratelimit");
	assert_true(sp_bp_op_has_key(u));
	check_encoder_decoder_agree(u);

	/* Keyed: routed to its partition like a built-in; the reply echoes its opcode. */
	assert_int_equal(sp_bp_add_request(&b, &in), 0);
	{
		uint32_t len = sp_bp_builder_finish(&b);

		assert_int_equal(sp_bp_decode_requests(buf, len, PARTS, out, 2, &dg), SP_BP_ERR_OK);
		check_same(&in, &out[0]);
		assert_int_equal(out[0].expiry_s, in.expiry_s);
		assert_int_equal(out[0].flags, 0);
	}
	{
		uint8_t rbuf[SP_BP_PAYLOAD_MAX];
		struct sp_bp_reply rep;
		uint32_t len;

		sp_bp_builder_init(&b, rbuf, sizeof(rbuf), true, 9);
		assert_non_null(sp_bp_add_reply(&b, 1, u, SP_BP_ST_OK, 0, 0, 0));
		len = sp_bp_builder_finish(&b);
		assert_int_equal(sp_bp_decode_replies(rbuf, len, &rep, 1, &dg), SP_BP_ERR_OK);
		assert_int_equal(rep.opcode, u);
	}

	/* A keyless registered operation: no partition, any worker answers. */
	assert_int_equal(sp_bp_op_register(u + 1, "sum", 0, SP_BP_VALUE_BYTES, 0), 0);
	check_encoder_decoder_agree((uint8_t)(u + 1));

	assert_int_equal(sp_bp_op_unregister(u), 0);
	assert_int_equal(sp_bp_op_unregister((uint8_t)(u + 1)), 0);
	assert_int_equal(sp_bp_op(u)->props, 0);
	assert_string_equal(sp_bp_op_name((enum sp_bp_op)u), "unknown");
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 9);
	assert_int_equal(sp_bp_add_request(&b, &in), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_roundtrip_every_op),
	        cmocka_unit_test(test_reply_roundtrip),
	        cmocka_unit_test(test_malformed_header_classes),
	        cmocka_unit_test(test_malformed_record_classes),
	        cmocka_unit_test(test_bad_requests_in_valid_datagram),
	        cmocka_unit_test(test_malformed_replies),
	        cmocka_unit_test(test_request_builder_limits),
	        cmocka_unit_test(test_reply_builder_exact_capacity),
	        cmocka_unit_test(test_route_pages),
	        cmocka_unit_test(test_redirect),
	        cmocka_unit_test(test_random_roundtrip),
	        cmocka_unit_test(test_add_record),
	        cmocka_unit_test(test_documented_example),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_op_table_properties),
	        cmocka_unit_test(test_op_table_encoder_decoder_agree),
	        cmocka_unit_test(test_op_register),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
