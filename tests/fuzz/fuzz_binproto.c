/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the binary protocol's request decoder.
 *
 * Arbitrary bytes go to sp_bp_decode_requests(). A rejected datagram must carry a
 * datagram-level reason. An accepted one must satisfy the decoder's contract (every pointer
 * inside the input, lengths within limits, hash and partition right), must re-encode with
 * the client builder into a datagram that decodes to the same requests, and is then fz_executed
 * with binexec against a small store; every reply datagram produced must decode, carry the
 * replies in request order, and the store must keep its invariants. The same bytes also go
 * to the reply and ROUTE decoders, which must not crash.
 *
 *   CC=clang meson setup /tmp/build-fuzz -Dfuzz=true && ninja -C /tmp/build-fuzz
 *   /tmp/build-fuzz/tests/fuzz/fuzz_binproto -max_total_time=60
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/binexec/binexec.h"
#include "dataplane/store/store.h"
#include "wire/binproto.h"

/*
 * Only this file is compiled with -fsanitize=fuzzer, so the code under test is compiled
 * into it to get coverage feedback. Its definitions satisfy every reference, so the
 * archive copies in binproto_dep/binexec_dep are never pulled in by the linker.
 */
#include "../../dataplane/binexec/binexec.c"
#include "../../lib/wire/binproto.c"

#define PARTITIONS  8u
#define WORKERS     3u
#define STORE_BYTES (256u * 1024u)
/* A full store check walks the whole store: do it every this many executed datagrams. */
#define CHECK_EVERY 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *fz_store;
static uint16_t fz_owner[PARTITIONS];
static struct sp_bp_route_node fz_node;
static struct sp_binexec_route fz_route;
static uint32_t fz_now_s = 1000;
static uint64_t fz_executed;

static void
fz_init_once(void)
{
	static void *mem;
	struct store_params p = {.bytes = STORE_BYTES};

	if (fz_store != NULL)
		return;
	mem = aligned_alloc(STORE_MEM_ALIGN, STORE_BYTES);
	VERIFY(mem != NULL);
	fz_store = store_init(mem, STORE_BYTES, &p);
	VERIFY(fz_store != NULL);
	for (unsigned i = 0; i < PARTITIONS; i++)
		fz_owner[i] = sp_bp_route_entry(0, (uint16_t)(i % WORKERS));
	fz_node = (struct sp_bp_route_node){
	        .node_id = 1, .ipv4_be = 0x0100007fu, .binary_port = 9000, .worker_count = WORKERS};
	fz_route = (struct sp_binexec_route){.epoch = 1,
	                                     .partitions = PARTITIONS,
	                                     .node_count = 1,
	                                     .self = 0,
	                                     .nodes = &fz_node,
	                                     .owner = fz_owner};
}

static bool
fz_inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
	return p >= data && n <= size && (size_t)(p - data) <= size - n;
}

/* The decoder's contract for one request of an accepted datagram. */
static void
fz_check_request(const struct sp_bp_req *r, const uint8_t *data, size_t size)
{
	VERIFY(r->err < SP_BP_ERR_COUNT);
	if (r->err != SP_BP_ERR_OK) {
		VERIFY(r->err >= SP_BP_ERR_FIRST_REQ);
		VERIFY(r->status == SP_BP_ST_BAD_REQUEST || r->status == SP_BP_ST_TOO_BIG);
		VERIFY(r->partition == SP_BP_PARTITION_ANY);
		return;
	}
	VERIFY(r->opcode >= SP_BP_OP_GET);
	VERIFY(r->opcode < SP_BP_OP_LAST);
	if (sp_bp_op_has_key(r->opcode)) {
		VERIFY(r->key_len >= 1);
		VERIFY(r->key_len <= SP_BP_KEY_MAX);
		VERIFY(fz_inside(r->key, r->key_len, data, size));
		VERIFY(r->hash == sp_key_hash(r->key, r->key_len));
		VERIFY(r->partition == sp_key_partition(r->hash, PARTITIONS));
	} else {
		VERIFY(r->key_len == 0);
		VERIFY(r->partition == SP_BP_PARTITION_ANY);
	}
	VERIFY(r->value_len <= SP_BP_VALUE_MAX);
	if (r->value_len != 0)
		VERIFY(fz_inside(r->value, r->value_len, data, size));
}

/* Re-encodes the valid requests and checks they decode to the same descriptors. */
static void
fz_check_reencode(const struct sp_bp_req *reqs, uint32_t n)
{
	static uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req again[SP_BP_REQS_MAX];
	struct sp_bp_builder b;
	struct sp_bp_dgram d;
	uint32_t kept = 0;

	sp_bp_builder_init(&b, buf, sizeof(buf), false, 42);
	for (uint32_t i = 0; i < n; i++) {
		if (reqs[i].err != SP_BP_ERR_OK)
			continue;
		/* Never larger than the original record, so it always fits. */
		VERIFY(sp_bp_add_request(&b, &reqs[i]) == 0);
		kept++;
	}
	if (kept == 0)
		return;
	uint32_t len = sp_bp_builder_finish(&b);

	/* Forwarding the records as they arrived gives the same bytes as the originals. */
	static uint8_t raw[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder rb;
	sp_bp_builder_init(&rb, raw, sizeof(raw), false, 42);
	for (uint32_t i = 0; i < n; i++) {
		if (reqs[i].err != SP_BP_ERR_OK) {
			VERIFY(sp_bp_add_record(&rb, &reqs[i]) == -EINVAL);
			continue;
		}
		uint32_t at = rb.len;
		VERIFY(sp_bp_add_record(&rb, &reqs[i]) == 0);
		VERIFY(rb.len - at == reqs[i].record_len);
		VERIFY(memcmp(raw + at, reqs[i].record, reqs[i].record_len) == 0);
	}
	uint32_t raw_len = sp_bp_builder_finish(&rb);
	VERIFY(sp_bp_decode_requests(raw, raw_len, PARTITIONS, again, SP_BP_REQS_MAX, &d) ==
	       SP_BP_ERR_OK);
	VERIFY(d.count == kept);
	VERIFY(sp_bp_decode_requests(buf, len, PARTITIONS, again, SP_BP_REQS_MAX, &d) ==
	       SP_BP_ERR_OK);
	VERIFY(d.count == kept);
	VERIFY(d.datagram_id == 42);
	for (uint32_t i = 0, j = 0; i < n; i++) {
		const struct sp_bp_req *a = &reqs[i];
		if (a->err != SP_BP_ERR_OK)
			continue;
		const struct sp_bp_req *c = &again[j++];
		VERIFY(c->err == SP_BP_ERR_OK);
		VERIFY(c->opcode == a->opcode);
		VERIFY(c->request_id == a->request_id);
		VERIFY(c->key_len == a->key_len);
		VERIFY(a->key_len == 0 || memcmp(c->key, a->key, a->key_len) == 0);
		VERIFY(c->hash == a->hash);
		VERIFY(c->value_len == a->value_len);
		VERIFY(a->value_len == 0 || memcmp(c->value, a->value, a->value_len) == 0);
		VERIFY(c->cas == a->cas);
		VERIFY(c->flags == a->flags);
		VERIFY(c->expiry_s == a->expiry_s);
		VERIFY(c->delta == a->delta);
		VERIFY(c->initial == a->initial);
		VERIFY(c->create == a->create);
		VERIFY(c->route_first == a->route_first);
	}
}

/* Decodes a finished reply datagram and checks it answers reqs[first..first+count). */
static void
fz_check_replies(struct sp_bp_builder *b, const struct sp_bp_req *reqs, uint32_t first)
{
	struct sp_bp_reply rep[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint32_t len = sp_bp_builder_finish(b);

	if (b->count == 0)
		return;
	VERIFY(len <= SP_BP_PAYLOAD_MAX);
	VERIFY(sp_bp_decode_replies(b->buf, len, rep, SP_BP_REQS_MAX, &d) == SP_BP_ERR_OK);
	VERIFY(d.count == b->count);
	for (uint32_t i = 0; i < d.count; i++) {
		const struct sp_bp_req *q = &reqs[first + i];
		VERIFY(rep[i].request_id == q->request_id);
		VERIFY(rep[i].status < SP_BP_ST_LAST);
		VERIFY(rep[i].status != SP_BP_ST_INTERNAL);
		if (q->err != SP_BP_ERR_OK)
			VERIFY(rep[i].status == q->status);
		if (q->opcode == SP_BP_OP_INCR || q->opcode == SP_BP_OP_DECR) {
			if (q->err == SP_BP_ERR_OK && rep[i].status == SP_BP_ST_OK)
				VERIFY(rep[i].value_len == SP_BP_COUNTER_REPLY_SIZE);
		}
		if (q->opcode == SP_BP_OP_ROUTE && rep[i].status == SP_BP_ST_OK) {
			struct sp_bp_route page;
			VERIFY(sp_bp_route_decode(rep[i].value, rep[i].value_len, &page) == 0);
			VERIFY(page.first == q->route_first);
		}
	}
}

static void
fz_execute(const struct sp_bp_req *reqs, uint32_t n, uint64_t datagram_id)
{
	static uint8_t out[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	uint32_t first = 0;

	sp_bp_builder_init(&b, out, sizeof(out), true, datagram_id);
	for (uint32_t i = 0; i < n; i++) {
		int rc = sp_binexec_run(fz_store, &reqs[i], fz_now_s, &fz_route, &b, NULL);
		if (rc == -SP_EFULL) {
			/* "Send" this datagram and retry in an empty one: it must fit there. */
			VERIFY(b.count > 0);
			fz_check_replies(&b, reqs, first);
			first = i;
			sp_bp_builder_init(&b, out, sizeof(out), true, datagram_id);
			rc = sp_binexec_run(fz_store, &reqs[i], fz_now_s, &fz_route, &b, NULL);
		}
		VERIFY(rc == 0);
	}
	fz_check_replies(&b, reqs, first);
	if (++fz_executed % CHECK_EVERY == 0)
		VERIFY(store_check(fz_store) == 0);
	fz_now_s++;
}

/* Decodes data as a request datagram and, when valid, checks and executes it. */
static void
fz_run(const uint8_t *data, size_t size)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;

	enum sp_bp_err e = sp_bp_decode_requests(data, size, PARTITIONS, reqs, SP_BP_REQS_MAX, &d);
	if (e != SP_BP_ERR_OK) {
		VERIFY(e < SP_BP_ERR_FIRST_REQ);
		return;
	}
	VERIFY(d.count >= 1);
	VERIFY(d.count <= SP_BP_REQS_MAX);
	VERIFY(size >= SP_BP_DGRAM_HDR_SIZE + (size_t)d.count * SP_BP_REQ_HDR_SIZE);
	for (uint32_t i = 0; i < d.count; i++)
		fz_check_request(&reqs[i], data, size);
	fz_check_reencode(reqs, d.count);
	fz_execute(reqs, d.count, d.datagram_id);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t framed[SP_BP_PAYLOAD_MAX];
	struct sp_bp_reply reps[SP_BP_REQS_MAX];
	struct sp_bp_route page;
	struct sp_bp_dgram d;

	fz_init_once();

	/* The other decoders must survive the same bytes. */
	enum sp_bp_err re = sp_bp_decode_replies(data, size, reps, SP_BP_REQS_MAX, &d);
	VERIFY(re < SP_BP_ERR_COUNT);
	if (size <= UINT32_MAX && sp_bp_route_decode(data, (uint32_t)size, &page) == 0) {
		VERIFY(page.count <= sp_bp_route_page_max(page.node_count));
		for (uint32_t i = 0; i < page.count; i++) {
			struct sp_bp_route_node nd;
			uint16_t node, worker;

			sp_bp_route_entry_get(&page, i, &node, &worker);
			VERIFY(node < page.node_count);
			sp_bp_route_node_get(&page, node, &nd);
			VERIFY(worker < nd.worker_count);
		}
	}
	{
		struct sp_bp_redirect rd;
		int rr = size <= UINT32_MAX ? sp_bp_redirect_decode(data, (uint32_t)size, &rd) : -1;

		VERIFY(rr <= 1);
		VERIFY(rr != 1 || (rd.node_id != 0 && rd.port != 0));
	}

	/* The bytes as they came. */
	fz_run(data, size);

	/*
	 * The same bytes behind a valid header whose count comes from the first byte, so that
	 * short runs without a corpus get past the header into the records and the executor.
	 */
	if (size >= 1 && size - 1 <= sizeof(framed) - SP_BP_DGRAM_HDR_SIZE) {
		struct sp_bp_builder b;
		uint16_t count = (uint16_t)(1 + data[0] % SP_BP_REQS_MAX);

		sp_bp_builder_init(&b, framed, sizeof(framed), false, data[0]);
		framed[4] = (uint8_t)count;
		framed[5] = (uint8_t)(count >> 8);
		memcpy(framed + SP_BP_DGRAM_HDR_SIZE, data + 1, size - 1);
		fz_run(framed, SP_BP_DGRAM_HDR_SIZE + size - 1);
	}
	return 0;
}
