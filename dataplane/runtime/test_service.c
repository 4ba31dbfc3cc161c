/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The services of the worker loop (service.h) on a real node (EAL --no-huge, net_ring, 2
 * workers that are not launched; the test plays each worker in turn): which kind each
 * datagram is classified as and which service serves each kind; the binary service's
 * hand-offs carry their kind and hop count; the hop limit answers SERVER_BUSY for what
 * would move and runs what is owned; the busy answer for a full ring; registered
 * operations run through the hook on the owner only, and are refused without one; GETs
 * for another worker that gets nothing else from a datagram are read where they arrive; a
 * lone write for another worker travels with the datagram's reply (a fold); random mixed
 * datagrams answered as a model says.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "dataplane/forward/fwd.h"
#include "node.h"
#include "service.h"
#include "test_eal.h"
#include "test_node.h"
#include "tests/unit/test_seed.h"
#include "worker.h"

#define MC_PORT     11211u
#define CLIENT_PORT 40000u
#define PARTITIONS  16u
#define USER_OP     200u /* a registered operation with a key */
#define USER_OP_ANY 201u /* a registered operation without one */

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static const uint8_t client_mac[6] = {0x02, 0, 0, 0, 0, 0x33};

/* A frame from the client to the node's UDP port dport carrying payload, classified as the
 * worker would (meta filled, its kind from the services). */
static struct rte_mbuf *
udp_frame(uint16_t dport, const uint8_t *payload, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(rt.port.pool);
	struct net_udp_ends e = {
	        .src_ip_be = htonl(0x0a000002),
	        .dst_ip_be = rt.cfg.ip_be,
	        .src_port = CLIENT_PORT,
	        .dst_port = dport,
	};
	struct dp_meta *meta;
	struct net_pkt pkt;
	uint8_t *f;
	uint32_t flen;

	assert_non_null(m);
	memcpy(e.src_mac, client_mac, 6);
	memcpy(e.dst_mac, rt.port.mac.addr_bytes, 6);
	f = rte_pktmbuf_mtod(m, uint8_t *);
	memcpy(f + NET_UDP_REPLY_HDRS, payload, len);
	flen = net_udp_frame(f, &e, (uint16_t)len, 1, 0);
	m->data_len = (uint16_t)flen;
	m->pkt_len = flen;
	assert_int_equal(
	        net_classify(&rt.net, f, flen, NET_RX_IP_CSUM_GOOD | NET_RX_L4_CSUM_GOOD, &pkt),
	        NET_UDP);
	meta = dp_meta_of(m);
	meta->pkt = pkt;
	meta->hops = 0;
	meta->reqs = 0;
	meta->refused = 0;
	meta->kind = (uint8_t)dp_service_classify(&rt, m, &pkt);
	return m;
}

/* A binary request datagram (id 77) of n requests to worker 0's port. */
static struct rte_mbuf *
bp_frame(const struct sp_bp_req *reqs, uint32_t n)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;

	sp_bp_builder_init(&b, buf, sizeof(buf), false, 77);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(sp_bp_add_request(&b, &reqs[i]), 0);
	return udp_frame(rt.cfg.port_base, buf, sp_bp_builder_finish(&b));
}

static struct sp_bp_req
req_of(uint8_t op, const char *key, uint32_t id)
{
	struct sp_bp_req q = {.opcode = op, .request_id = id};

	if (key != NULL) {
		q.key = (const uint8_t *)key;
		q.key_len = (uint16_t)strlen(key);
	}
	return q;
}

#define KEY_BYTES 32u

/* Keys named after tag: k0 of worker 0, k1 and (unless NULL) k1b of worker 1, each
 * KEY_BYTES long. */
static void
worker_keys(const char *tag, char *k0, char *k1, char *k1b)
{
	key_of(k0, KEY_BYTES, tag, 0, 0);
	key_of(k1, KEY_BYTES, tag, 1, 0);
	if (k1b != NULL)
		key_of(k1b, KEY_BYTES, tag, 1, 1);
}

/* The next number of a xorshift64 sequence (state never 0). */
static uint64_t
xorshift(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static struct dp_iter
iter_now(void)
{
	struct dp_iter it = {.t = route_current(rt.route), .now_s = 10};

	return it;
}

/* Serves m as worker w's loop would (its kind's service). */
static void
serve_on(uint16_t w, struct rte_mbuf *m)
{
	struct dp_iter it = iter_now();
	const struct dp_service_ops *ops = dp_service_of_kind(dp_meta_of(m)->kind);

	assert_non_null(ops);
	ops->serve(rt.w[w], &it, &m, 1);
}

/*
 * Takes the one reply frame worker w queued, decodes its replies into out (sorted by
 * nothing: in request order) and returns how many; frees the frame.
 */
static uint32_t
take_reply(uint16_t w, struct sp_bp_reply *out, uint32_t max)
{
	struct dp_worker *wk = rt.w[w];
	struct sp_bp_dgram dg;
	struct rte_mbuf *m;
	const uint8_t *f;

	assert_int_equal(wk->tx_count, 1);
	m = wk->tx[0];
	wk->tx_count = 0;
	f = rte_pktmbuf_mtod(m, const uint8_t *);
	assert_memory_equal(f, client_mac, 6);
	assert_int_equal(sp_bp_decode_replies(f + NET_UDP_REPLY_HDRS,
	                                      rte_pktmbuf_data_len(m) - NET_UDP_REPLY_HDRS, out,
	                                      max, &dg),
	                 SP_BP_ERR_OK);
	assert_true(dg.datagram_id == 77);
	rte_pktmbuf_free(m);
	return dg.count;
}

/* A SET of key k to the len bytes at v, request id id. */
static struct sp_bp_req
set_of(const char *k, const void *v, uint32_t len, uint32_t id)
{
	struct sp_bp_req q = req_of(SP_BP_OP_SET, k, id);

	q.value = v;
	q.value_len = len;
	return q;
}

/* Stores key k = the len bytes at v on worker w, its owner, in a datagram of its own. */
static void
store_value(uint16_t w, const char *k, const void *v, uint32_t len)
{
	struct sp_bp_req set = set_of(k, v, len, 1);
	struct sp_bp_reply r[1];

	serve_on(w, bp_frame(&set, 1));
	assert_int_equal(take_reply(w, r, 1), 1);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
}

/* Takes what worker w staged for worker `to` (exactly one mbuf). */
static struct rte_mbuf *
take_staged(uint16_t w, uint16_t to)
{
	struct dp_worker *wk = rt.w[w];

	assert_int_equal(wk->out_count[to], 1);
	wk->out_count[to] = 0;
	return wk->out[to][0];
}

static void
test_kinds_and_services(void **state)
{
	(void)state;
	assert_null(dp_service_of_kind(DP_MSG_NONE));
	assert_null(dp_service_of_kind(DP_MSG_KINDS));
	assert_null(dp_service_of_kind(255));
	assert_ptr_equal(dp_service_of_kind(DP_MSG_BINARY), &dp_bp_service);
	assert_ptr_equal(dp_service_of_kind(DP_MSG_FORWARD), &dp_fwd_service);
	assert_ptr_equal(dp_service_of_kind(DP_MSG_MEMCACHED), &dp_mc_service);
	assert_ptr_equal(dp_service_of_kind(DP_MSG_MC_TOUCH), &dp_mc_service);
	for (unsigned int k = DP_MSG_NONE + 1; k < DP_MSG_KINDS; k++)
		assert_non_null(dp_service_of_kind((uint8_t)k)->serve);
	for (unsigned int id = 0; id < DP_SVC_COUNT; id++) {
		assert_non_null(dp_service_get((enum dp_service_id)id)->name);
		assert_true(dp_service_enabled(&rt, (enum dp_service_id)id));
	}
	/* The busy answers the hop limit and full rings rely on. */
	assert_non_null(dp_bp_service.busy);
	assert_non_null(dp_mc_service.busy);
}

/* forward.c reaches a message's meaning only through the ops table, by its proto byte. */
static void
test_forward_through_ops(void **state)
{
	struct dp_mc *mc = rt.mc;

	(void)state;
	assert_ptr_equal(dp_service_of_fwd_proto(&rt, SP_FWD_BINARY), &dp_bp_service);
	assert_ptr_equal(dp_service_of_fwd_proto(&rt, SP_FWD_MEMCACHED), &dp_mc_service);
	assert_null(dp_service_of_fwd_proto(&rt, 0));
	assert_null(dp_service_of_fwd_proto(&rt, 3));
	assert_null(dp_service_of_fwd_proto(&rt, 255));
	/* A service that is off claims no message: a memcached one is counted fwd_rej_kind. */
	rt.mc = NULL;
	assert_null(dp_service_of_fwd_proto(&rt, SP_FWD_MEMCACHED));
	assert_ptr_equal(dp_service_of_fwd_proto(&rt, SP_FWD_BINARY), &dp_bp_service);
	rt.mc = mc;
	/* A service forwards with all three callbacks or with none; protos are distinct. */
	for (unsigned int id = 0; id < DP_SVC_COUNT; id++) {
		const struct dp_service_ops *a = dp_service_get((enum dp_service_id)id);
		bool none = a->fwd_proto == 0;

		assert_int_equal(a->fwd_request == NULL, none);
		assert_int_equal(a->fwd_answer == NULL, none);
		assert_int_equal(a->fwd_expire == NULL, none);
		for (unsigned int j = id + 1; j < DP_SVC_COUNT && !none; j++)
			assert_int_not_equal(dp_service_get((enum dp_service_id)j)->fwd_proto,
			                     a->fwd_proto);
	}
	assert_int_equal(dp_fwd_service.fwd_proto, 0);
	assert_int_equal(dp_task_service.fwd_proto, 0);
}

static void
test_classify(void **state)
{
	struct sp_bp_req q = req_of(SP_BP_OP_GET, "k", 1);
	uint8_t fwd[64];
	uint8_t junk[20];
	struct sp_fwd_hdr h = {
	        .kind = SP_FWD_REQUEST,
	        .proto = SP_FWD_BINARY,
	        .slot = 1,
	        .tag = 1,
	        .entry_node = 1,
	        .payload_len = 8,
	};
	struct rte_mbuf *m;

	(void)state;
	m = bp_frame(&q, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BINARY);
	rte_pktmbuf_free(m);
	/* The last binary port, and one past it. */
	/* A payload that is no datagram at all: the port alone says binary. */
	memset(junk, 'x', sizeof(junk));
	m = udp_frame((uint16_t)(rt.cfg.port_base + 1), junk, sizeof(junk));
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BINARY);
	rte_pktmbuf_free(m);
	m = udp_frame((uint16_t)(rt.cfg.port_base + 2), (const uint8_t *)"x", 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_NONE);
	rte_pktmbuf_free(m);
	/* A message between nodes arrives on a binary port: told apart by its header. */
	memset(fwd, 0, sizeof(fwd));
	sp_fwd_encode(fwd, &h);
	m = udp_frame(rt.cfg.port_base, fwd, SP_FWD_HDR_SIZE + 8);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_FORWARD);
	rte_pktmbuf_free(m);
	m = udp_frame(MC_PORT, (const uint8_t *)"\0\1\0\0\0\1\0\0get a\r\n", 15);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_MEMCACHED);
	rte_pktmbuf_free(m);
	m = udp_frame(9, (const uint8_t *)"x", 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_NONE);
	rte_pktmbuf_free(m);
}

/* A whole datagram for another worker moves as it is (DP_MSG_BINARY); a mixed one's share
 * is a copy carrying its requests decoded (DP_MSG_BP_SHARE); both one more hop, and what
 * this worker owns is answered here. */
static void
test_handoff_carries_kind(void **state)
{
	char k0[KEY_BYTES], k1[KEY_BYTES], k1b[KEY_BYTES];
	struct sp_bp_req q[3];
	struct sp_bp_reply r[4];
	struct rte_mbuf *m, *s;

	(void)state;
	worker_keys("h", k0, k1, k1b);
	q[0] = req_of(SP_BP_OP_GET, k1, 1);
	q[1] = req_of(SP_BP_OP_GET, k1b, 2);
	m = bp_frame(q, 2);
	serve_on(0, m);
	s = take_staged(0, 1);
	assert_ptr_equal(s, m);
	assert_int_equal(dp_meta_of(s)->kind, DP_MSG_BINARY);
	assert_int_equal(dp_meta_of(s)->hops, 1);
	assert_int_equal(dp_meta_of(s)->reqs, 2);
	assert_int_equal(rt.w[0]->tx_count, 0);
	/* The owner runs it: both misses, in one reply. */
	serve_on(1, s);
	assert_int_equal(take_reply(1, r, 4), 2);
	assert_int_equal(r[0].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[1].status, SP_BP_ST_NOT_FOUND);

	/* A write for worker 1 makes its requests a share (its GET after the DELETE, in
	 * order; GETs alone would be read here, test_gets_read_where_they_arrive). */
	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = req_of(SP_BP_OP_DELETE, k1, 2);
	q[2] = req_of(SP_BP_OP_GET, k1b, 3);
	m = bp_frame(q, 3);
	dp_meta_of(m)->refused = 1;
	serve_on(0, m);
	s = take_staged(0, 1);
	assert_ptr_not_equal(s, m);
	assert_int_equal(dp_meta_of(s)->kind, DP_MSG_BP_SHARE);
	assert_int_equal(dp_meta_of(s)->hops, 1);
	assert_int_equal(dp_meta_of(s)->reqs, 2);
	assert_int_equal(dp_meta_of(s)->refused, 1);
	assert_int_equal(take_reply(0, r, 4), 1);
	assert_int_equal(r[0].request_id, 1);
	/* The share carries its requests decoded: its owner does not read the datagram's
	 * header again (a magic no decoder accepts changes nothing), and runs both. */
	{
		uint64_t bad = worker_stats[1].bad_pkts;
		uint8_t *payload = rte_pktmbuf_mtod(s, uint8_t *) + dp_meta_of(s)->pkt.payload_off;

		payload[0] ^= 0xff;
		serve_on(1, s);
		assert_int_equal(worker_stats[1].bad_pkts, bad);
	}
	assert_int_equal(take_reply(1, r, 4), 2);
	assert_int_equal(r[0].request_id, 2);
	assert_int_equal(r[0].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[1].request_id, 3);
	assert_int_equal(r[1].status, SP_BP_ST_NOT_FOUND);

	/* A share whose decoded requests do not fit its mbuf after the payload (20 of 88
	 * bytes each) goes as records only, decoded by its owner. */
	{
		char keys[21][32];
		struct sp_bp_req many[21];
		struct sp_bp_reply rr[24];

		key_of(keys[0], sizeof(keys[0]), "h", 0, 0);
		many[0] = req_of(SP_BP_OP_GET, keys[0], 1);
		for (uint32_t i = 1; i < 21; i++) {
			key_of(keys[i], sizeof(keys[i]), "hm", 1, i);
			many[i] = req_of(i == 1 ? SP_BP_OP_DELETE : SP_BP_OP_GET, keys[i], 1 + i);
		}
		/* The client asked for forwarding: its share says so too. */
		{
			uint8_t buf[SP_BP_PAYLOAD_MAX];
			struct sp_bp_builder b;

			sp_bp_builder_init(&b, buf, sizeof(buf), false, 77);
			sp_bp_builder_set_flags(&b, SP_BP_F_FORWARD);
			for (uint32_t i = 0; i < 21; i++)
				assert_int_equal(sp_bp_add_request(&b, &many[i]), 0);
			m = udp_frame(rt.cfg.port_base, buf, sp_bp_builder_finish(&b));
		}
		serve_on(0, m);
		s = take_staged(0, 1);
		assert_int_equal(dp_meta_of(s)->kind, DP_MSG_BINARY);
		assert_int_equal(dp_meta_of(s)->reqs, 20);
		{
			struct sp_bp_dgram dg;
			struct sp_bp_req got[SP_BP_REQS_MAX];

			assert_int_equal(
			        sp_bp_decode_requests(rte_pktmbuf_mtod(s, uint8_t *) +
			                                      dp_meta_of(s)->pkt.payload_off,
			                              dp_meta_of(s)->pkt.payload_len, 0, got,
			                              SP_BP_REQS_MAX, &dg),
			        SP_BP_ERR_OK);
			assert_int_equal(dg.flags & SP_BP_F_FORWARD, SP_BP_F_FORWARD);
			assert_int_equal(dg.count, 20);
		}
		assert_int_equal(take_reply(0, rr, 24), 1);
		serve_on(1, s);
		assert_int_equal(take_reply(1, rr, 24), 20);
		for (uint32_t i = 0; i < 20; i++)
			assert_int_equal(rr[i].request_id, 2 + i);
	}
}

#define BIG_GETS  20u
#define BIG_VALUE 400u

/* A reply taken off a worker's queue, its value copied (the frame is freed). */
struct got {
	struct sp_bp_reply r; /* r.value points at value below */
	uint8_t value[BIG_VALUE];
};

/*
 * Takes every reply frame worker w queued (datagram 77), in order: their replies into
 * out[0 ..], at most max, values copied. Returns how many; *frames (when not NULL) gets how
 * many frames held them. Frees the frames.
 */
static uint32_t
take_replies(uint16_t w, struct got *out, uint32_t max, uint32_t *frames)
{
	struct dp_worker *wk = rt.w[w];
	uint32_t n = 0;

	for (uint32_t f = 0; f < wk->tx_count; f++) {
		struct rte_mbuf *m = wk->tx[f];
		const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *) + NET_UDP_REPLY_HDRS;
		struct sp_bp_reply r[SP_BP_REQS_MAX];
		struct sp_bp_dgram dg;

		assert_int_equal(sp_bp_decode_replies(p,
		                                      rte_pktmbuf_data_len(m) - NET_UDP_REPLY_HDRS,
		                                      r, SP_BP_REQS_MAX, &dg),
		                 SP_BP_ERR_OK);
		assert_true(dg.datagram_id == 77);
		for (uint32_t j = 0; j < dg.count; j++) {
			assert_true(n < max);
			assert_true(r[j].value_len <= BIG_VALUE);
			out[n].r = r[j];
			if (r[j].value_len > 0)
				memcpy(out[n].value, r[j].value, r[j].value_len);
			out[n].r.value = out[n].value;
			n++;
		}
		rte_pktmbuf_free(m);
	}
	if (frames != NULL)
		*frames = wk->tx_count;
	wk->tx_count = 0;
	return n;
}

/*
 * Owned GETs whose replies need several datagrams (20 values of 400 bytes: about six) go
 * the GET path (serve_get) until a reply does not fit, then answer() sends the datagram and
 * runs that GET again in the next: every request is answered exactly once, in order, hits
 * with their values and misses as NOT_FOUND, and the worker counts each GET once.
 */
static void
test_gets_over_several_reply_datagrams(void **state)
{
	char keys[BIG_GETS][32];
	uint8_t value[BIG_VALUE];
	struct sp_bp_req q[BIG_GETS];
	struct got got[BIG_GETS];
	struct dp_worker_stats before = worker_stats[0];
	uint32_t frames;

	(void)state;
	for (uint32_t i = 0; i < BIG_GETS; i++) {
		key_of(keys[i], sizeof(keys[i]), "big", 0, i);
		if (i % 4 == 3)
			continue; /* every fourth a miss */
		memset(value, 'a' + (int)(i % 26), sizeof(value));
		store_value(0, keys[i], value, sizeof(value));
	}
	before = worker_stats[0];
	for (uint32_t i = 0; i < BIG_GETS; i++)
		q[i] = req_of(SP_BP_OP_GET, keys[i], i);
	serve_on(0, bp_frame(q, BIG_GETS));
	assert_int_equal(take_replies(0, got, BIG_GETS, &frames), BIG_GETS);
	assert_true(frames >= 5);
	for (uint32_t i = 0; i < BIG_GETS; i++) {
		const struct sp_bp_reply *g = &got[i].r;

		assert_int_equal(g->request_id, i);
		assert_int_equal(g->opcode, SP_BP_OP_GET);
		if (i % 4 == 3) {
			assert_int_equal(g->status, SP_BP_ST_NOT_FOUND);
			assert_int_equal(g->value_len, 0);
			continue;
		}
		assert_int_equal(g->status, SP_BP_ST_OK);
		assert_int_equal(g->value_len, BIG_VALUE);
		memset(value, 'a' + (int)(i % 26), sizeof(value));
		assert_memory_equal(g->value, value, BIG_VALUE);
	}
	assert_true(worker_stats[0].requests == before.requests + BIG_GETS);
	assert_true(worker_stats[0].ops[SP_BP_OP_GET] == before.ops[SP_BP_OP_GET] + BIG_GETS);
	assert_true(worker_stats[0].hits == before.hits + BIG_GETS - BIG_GETS / 4);
	assert_true(worker_stats[0].misses == before.misses + BIG_GETS / 4);
	assert_true(worker_stats[0].reply_dgrams == before.reply_dgrams + frames);
}

/*
 * In a mixed datagram, the GETs for a worker that gets nothing else from it are read where
 * they arrive, from that worker's store: nothing is staged, one reply datagram answers
 * them all in order with the values the owner stored, and they are counted as read_shared.
 * A worker that also gets a write gets its GETs too, in order after it; a datagram wholly
 * for one worker still moves whole.
 */
static void
test_gets_read_where_they_arrive(void **state)
{
	char k0[KEY_BYTES], k1[KEY_BYTES], k1b[KEY_BYTES];
	struct sp_bp_req q[4];
	struct sp_bp_reply r[4];
	struct rte_mbuf *m, *s;
	uint64_t reads = worker_stats[0].read_shared;
	uint64_t copies = worker_stats[0].handoff_copies;

	(void)state;
	worker_keys("rw", k0, k1, k1b);
	/* Worker 1 stores k1 = "one" (a datagram wholly its own, sent to its own port). */
	store_value(1, k1, "one", 3);

	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = req_of(SP_BP_OP_GET, k1, 2);
	q[2] = req_of(SP_BP_OP_GET, k1b, 3);
	serve_on(0, bp_frame(q, 3));
	assert_int_equal(rt.w[0]->out_count[1], 0);
	assert_int_equal(take_reply(0, r, 4), 3);
	assert_int_equal(r[0].request_id, 1);
	assert_int_equal(r[0].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[1].request_id, 2);
	assert_int_equal(r[1].status, SP_BP_ST_OK);
	assert_int_equal(r[1].value_len, 3);
	assert_memory_equal(r[1].value, "one", 3);
	assert_int_equal(r[2].request_id, 3);
	assert_int_equal(r[2].status, SP_BP_ST_NOT_FOUND);
	assert_true(worker_stats[0].read_shared == reads + 2);
	assert_true(worker_stats[0].handoff_copies == copies);

	/* A SET for worker 1 in the datagram: its GETs go with it, after it. */
	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = set_of(k1, "two", 3, 2);
	q[2] = req_of(SP_BP_OP_GET, k1, 3);
	serve_on(0, bp_frame(q, 3));
	s = take_staged(0, 1);
	assert_int_equal(dp_meta_of(s)->reqs, 2);
	assert_int_equal(take_reply(0, r, 4), 1);
	serve_on(1, s);
	assert_int_equal(take_reply(1, r, 4), 2);
	assert_int_equal(r[0].request_id, 2);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
	assert_int_equal(r[1].request_id, 3);
	assert_int_equal(r[1].status, SP_BP_ST_OK);
	assert_memory_equal(r[1].value, "two", 3);
	assert_true(worker_stats[0].read_shared == reads + 2);

	/* GETs all for worker 1: the datagram moves whole. */
	q[0] = req_of(SP_BP_OP_GET, k1, 1);
	q[1] = req_of(SP_BP_OP_GET, k1b, 2);
	m = bp_frame(q, 2);
	serve_on(0, m);
	s = take_staged(0, 1);
	assert_ptr_equal(s, m);
	serve_on(1, s);
	assert_int_equal(take_reply(1, r, 4), 2);
	assert_memory_equal(r[0].value, "two", 3);
	assert_true(worker_stats[0].read_shared == reads + 2);
}

#define READ_BIG 6u

/*
 * GETs read where they arrive whose replies do not fit one datagram: the read that does not
 * fit what is left is run again in the next reply datagram (answer()'s second attempt),
 * every request answered exactly once, in order, with the owner's values.
 */
static void
test_reads_over_several_reply_datagrams(void **state)
{
	char k0[32], k1[READ_BIG][32];
	uint8_t value[BIG_VALUE];
	struct sp_bp_req q[READ_BIG + 1];
	struct got got[READ_BIG + 1];
	uint64_t reads = worker_stats[0].read_shared;
	uint32_t frames;

	(void)state;
	key_of(k0, sizeof(k0), "rb", 0, 0);
	for (uint32_t i = 0; i < READ_BIG; i++) {
		key_of(k1[i], sizeof(k1[i]), "rb", 1, i);
		memset(value, 'A' + (int)i, sizeof(value));
		store_value(1, k1[i], value, sizeof(value));
	}
	q[0] = req_of(SP_BP_OP_GET, k0, 0);
	for (uint32_t i = 0; i < READ_BIG; i++)
		q[1 + i] = req_of(SP_BP_OP_GET, k1[i], 1 + i);
	serve_on(0, bp_frame(q, READ_BIG + 1));
	assert_int_equal(rt.w[0]->out_count[1], 0);
	assert_int_equal(take_replies(0, got, READ_BIG + 1, &frames), READ_BIG + 1);
	assert_true(frames >= 2);
	for (uint32_t i = 0; i <= READ_BIG; i++) {
		const struct sp_bp_reply *g = &got[i].r;

		assert_int_equal(g->request_id, i);
		if (i == 0) {
			assert_int_equal(g->status, SP_BP_ST_NOT_FOUND);
			continue;
		}
		assert_int_equal(g->status, SP_BP_ST_OK);
		assert_int_equal(g->value_len, BIG_VALUE);
		memset(value, 'A' + (int)(i - 1), sizeof(value));
		assert_memory_equal(g->value, value, BIG_VALUE);
	}
	assert_true(worker_stats[0].read_shared == reads + READ_BIG);
}

/* At the hop limit what would move is answered SERVER_BUSY; what is owned here runs. */
static void
test_hop_limit(void **state)
{
	char k0[KEY_BYTES], k1[KEY_BYTES];
	struct sp_bp_req q[2];
	struct sp_bp_reply r[4];
	struct rte_mbuf *m;
	uint64_t hops_before = worker_stats[0].dp_drop[DP_DROP_HANDOFF_HOPS];

	(void)state;
	worker_keys("hl", k0, k1, NULL);
	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = req_of(SP_BP_OP_DELETE, k1, 2); /* a write: it moves (a GET would be read here) */
	m = bp_frame(q, 2);
	dp_meta_of(m)->hops = DP_HANDOFF_HOPS_MAX;
	serve_on(0, m);
	assert_int_equal(rt.w[0]->out_count[1], 0);
	assert_int_equal(take_reply(0, r, 4), 2);
	assert_int_equal(r[0].request_id, 1);
	assert_int_equal(r[0].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[1].request_id, 2);
	assert_int_equal(r[1].status, SP_BP_ST_SERVER_BUSY);
	assert_int_equal(worker_stats[0].dp_drop[DP_DROP_HANDOFF_HOPS] - hops_before, 1);

	/* One hop short of it: the write still moves, with the reply (a fold). */
	m = bp_frame(q, 2);
	dp_meta_of(m)->hops = DP_HANDOFF_HOPS_MAX - 1;
	serve_on(0, m);
	m = take_staged(0, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_FOLD);
	assert_int_equal(dp_meta_of(m)->hops, DP_HANDOFF_HOPS_MAX);
	assert_int_equal(rt.w[0]->tx_count, 0);
	/* Its owner's ring was full: the write is answered SERVER_BUSY in that reply, sent
	 * here, without decoding anything again (dgrams counts full decodes). */
	{
		struct dp_iter it = iter_now();
		uint64_t dgrams = worker_stats[0].dgrams;

		dp_bp_service.busy(rt.w[0], &it, m);
		assert_int_equal(worker_stats[0].dgrams, dgrams);
	}
	assert_int_equal(take_reply(0, r, 4), 2);
	assert_int_equal(r[0].request_id, 1);
	assert_int_equal(r[0].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[1].request_id, 2);
	assert_int_equal(r[1].status, SP_BP_ST_SERVER_BUSY);

	/* With two writes for worker 1 it is a share, and its busy answer holds both. */
	{
		struct sp_bp_req q3[3] = {q[0], q[1], req_of(SP_BP_OP_DELETE, k1, 3)};
		struct dp_iter it = iter_now();
		uint64_t dgrams;

		m = bp_frame(q3, 3);
		dp_meta_of(m)->hops = DP_HANDOFF_HOPS_MAX - 1;
		serve_on(0, m);
		m = take_staged(0, 1);
		assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_SHARE);
		assert_int_equal(take_reply(0, r, 4), 1);
		dgrams = worker_stats[0].dgrams;
		dp_bp_service.busy(rt.w[0], &it, m);
		assert_int_equal(worker_stats[0].dgrams, dgrams);
	}
	assert_int_equal(take_reply(0, r, 4), 2);
	assert_int_equal(r[0].request_id, 2);
	assert_int_equal(r[0].status, SP_BP_ST_SERVER_BUSY);
	assert_int_equal(r[1].request_id, 3);
	assert_int_equal(r[1].status, SP_BP_ST_SERVER_BUSY);
}

/*
 * A lone write for another worker travels with the datagram's reply (DP_MSG_BP_FOLD): the
 * owner runs it and sends the one reply, the receiving worker's answers first. When the
 * reply under construction has no room left for the write's answer, that datagram goes out
 * from the receiving worker and the answer starts the next. A write whose partition the
 * worker serving the fold does not run is answered SERVER_BUSY in it; one whose partition
 * is arriving there waits in its defer queue and is finished once it has arrived; a write
 * whose record does not fit the fold's room, or two requests for the owner, go as a share.
 */
static void
test_lone_write_folds(void **state)
{
	static char big[1409];
	char k0[KEY_BYTES], k1[KEY_BYTES], k1b[KEY_BYTES];
	struct sp_bp_req q[3];
	struct sp_bp_reply r[4];
	struct rte_mbuf *m;
	uint64_t folds = worker_stats[0].handoff_folds;
	uint32_t folded = 0;
	uint64_t copies = worker_stats[0].handoff_copies;
	uint64_t requests1 = worker_stats[1].requests;

	(void)state;
	worker_keys("fo", k0, k1, k1b);
	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = set_of(k1, "folded", 6, 2);
	q[2] = req_of(SP_BP_OP_GET, k0, 3);
	serve_on(0, bp_frame(q, 3));
	m = take_staged(0, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_FOLD);
	assert_int_equal(dp_meta_of(m)->reqs, 1);
	assert_int_equal(dp_meta_of(m)->hops, 1);
	assert_int_equal(rt.w[0]->tx_count, 0);
	folded++;
	assert_true(worker_stats[0].handoff_folds == folds + folded);
	assert_true(worker_stats[0].handoff_copies == copies);
	serve_on(1, m);
	assert_int_equal(take_reply(1, r, 4), 3);
	assert_int_equal(r[0].request_id, 1);
	assert_int_equal(r[0].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[1].request_id, 3);
	assert_int_equal(r[1].status, SP_BP_ST_NOT_FOUND);
	assert_int_equal(r[2].request_id, 2);
	assert_int_equal(r[2].opcode, SP_BP_OP_SET);
	assert_int_equal(r[2].status, SP_BP_ST_OK);
	assert_true(worker_stats[1].requests == requests1 + 1);
	/* It was written on its owner: a GET read where it arrives finds it. */
	q[1] = req_of(SP_BP_OP_GET, k1, 2);
	serve_on(0, bp_frame(q, 2));
	assert_int_equal(take_reply(0, r, 4), 2);
	assert_int_equal(r[1].status, SP_BP_ST_OK);
	assert_int_equal(r[1].value_len, 6);
	assert_memory_equal(r[1].value, "folded", 6);

	/* At the reply's limit: a GET of 1,408 bytes leaves the SET's 24-byte answer exactly
	 * the room it needs (16 + 24 + 1408 + 24 = 1472): one reply from the owner. One byte
	 * more and the receiving worker sends the GET's reply itself; the owner sends the
	 * answer alone. */
	for (uint32_t len = 1408; len <= 1409; len++) {
		memset(big, 'b', len);
		store_value(0, k0, big, len);
		q[0] = req_of(SP_BP_OP_GET, k0, 1);
		q[1] = set_of(k1, "limit", 5, 2);
		serve_on(0, bp_frame(q, 2));
		assert_int_equal(rt.w[0]->tx_count, len == 1408 ? 0 : 1);
		if (len == 1409) {
			assert_int_equal(take_reply(0, r, 4), 1);
			assert_int_equal(r[0].value_len, len);
		}
		m = take_staged(0, 1);
		assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_FOLD);
		folded++;
		serve_on(1, m);
		assert_int_equal(take_reply(1, r, 4), len == 1408 ? 2 : 1);
		if (len == 1408) {
			assert_int_equal(r[0].request_id, 1);
			assert_int_equal(r[0].value_len, len);
		}
		assert_int_equal(r[len == 1408 ? 1 : 0].request_id, 2);
		assert_int_equal(r[len == 1408 ? 1 : 0].status, SP_BP_ST_OK);
	}

	/* Served by a worker that does not run the write's partition: SERVER_BUSY, in the
	 * reply, which still goes out. */
	q[0] = req_of(SP_BP_OP_DELETE, k0, 1);
	q[1] = set_of(k1, "again", 5, 2);
	serve_on(0, bp_frame(q, 2));
	m = take_staged(0, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_FOLD);
	folded++;
	requests1 = worker_stats[1].requests;
	serve_on(0, m);
	assert_int_equal(take_reply(0, r, 4), 2);
	assert_int_equal(r[0].request_id, 1);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
	assert_int_equal(r[1].request_id, 2);
	assert_int_equal(r[1].status, SP_BP_ST_SERVER_BUSY);
	assert_true(worker_stats[1].requests == requests1);

	/* Its partition arriving on worker 1: the fold waits in worker 1's defer queue and
	 * is finished once the partition has arrived. */
	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = set_of(k1, "held", 4, 2);
	serve_on(0, bp_frame(q, 2));
	m = take_staged(0, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_FOLD);
	folded++;
	{
		const struct route_table *cur = route_current(rt.route);
		size_t size = route_table_size(cur->partitions);
		struct route_table *arriving = malloc(size);
		struct dp_iter it = iter_now();
		uint32_t p1 = sp_key_partition(sp_key_hash(k1, strlen(k1)), PARTITIONS);
		uint64_t deferred = worker_stats[1].deferred;
		void *held[2];

		assert_non_null(arriving);
		memcpy(arriving, cur, size);
		arriving->entries[p1].flags |= ROUTE_F_PENDING;
		it.t = arriving;
		dp_bp_service.serve(rt.w[1], &it, &m, 1);
		assert_true(worker_stats[1].deferred == deferred + 1);
		assert_int_equal(rt.w[1]->tx_count, 0);
		assert_int_equal(route_defer_take(&rt.w[1]->defer, arriving, held, 2), 0);
		assert_int_equal(route_defer_take(&rt.w[1]->defer, cur, held, 2), 1);
		free(arriving);
		m = held[0];
	}
	serve_on(1, m);
	assert_int_equal(take_reply(1, r, 4), 2);
	assert_int_equal(r[0].request_id, 1);
	assert_int_equal(r[1].request_id, 2);
	assert_int_equal(r[1].status, SP_BP_ST_OK);

	/* At the fold's room: the SET's record must fit past FOLD_OFF. Growing its value a
	 * byte at a time, it folds up to one length and goes as a share from the next on
	 * (about 400 bytes with this pool's 2,048-byte data room); the longest folded value
	 * is stored whole. */
	{
		uint32_t last_fold = 0, first_share = 0;

		q[0] = req_of(SP_BP_OP_DELETE, k0, 1);
		for (uint32_t len = 300; len <= 500; len++) {
			uint8_t kind;

			memset(big, 'c', len);
			q[1] = set_of(k1, big, len, 2);
			serve_on(0, bp_frame(q, 2));
			m = take_staged(0, 1);
			kind = dp_meta_of(m)->kind;
			if (kind == DP_MSG_BP_FOLD) {
				assert_int_equal(first_share, 0); /* no fold after a share */
				last_fold = len;
				folded++;
			} else {
				assert_int_equal(kind, DP_MSG_BP_SHARE);
				if (first_share == 0)
					first_share = len;
				assert_int_equal(take_reply(0, r, 4), 1);
			}
			serve_on(1, m);
			assert_int_equal(take_reply(1, r, 4), kind == DP_MSG_BP_FOLD ? 2 : 1);
		}
		assert_true(last_fold > 300 && first_share == last_fold + 1);
		memset(big, 'c', last_fold);
		q[0] = set_of(k1, big, last_fold, 2);
		q[1] = req_of(SP_BP_OP_GET, k0, 1);
		serve_on(0, bp_frame(q, 2));
		serve_on(1, take_staged(0, 1));
		assert_int_equal(take_reply(1, r, 4), 2);
		folded++;
		q[0] = req_of(SP_BP_OP_GET, k1, 3);
		serve_on(0, bp_frame(q, 1));
		serve_on(1, take_staged(0, 1));
		assert_int_equal(take_reply(1, r, 4), 1);
		assert_int_equal(r[0].status, SP_BP_ST_OK);
		assert_int_equal(r[0].value_len, last_fold);
		assert_memory_equal(r[0].value, big, last_fold);
	}

	/* A datagram of 32, the most: 31 answers here and the write's in one reply. */
	{
		struct sp_bp_req q32[SP_BP_REQS_MAX];
		struct sp_bp_reply r32[SP_BP_REQS_MAX];

		for (uint32_t i = 0; i < SP_BP_REQS_MAX - 1; i++)
			q32[i] = req_of(SP_BP_OP_GET, k0, 100 + i);
		q32[SP_BP_REQS_MAX - 1] = set_of(k1, "last", 4, 200);
		serve_on(0, bp_frame(q32, SP_BP_REQS_MAX));
		m = take_staged(0, 1);
		assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_FOLD);
		folded++;
		serve_on(1, m);
		assert_int_equal(take_reply(1, r32, SP_BP_REQS_MAX), SP_BP_REQS_MAX);
		assert_int_equal(r32[SP_BP_REQS_MAX - 1].request_id, 200);
		assert_int_equal(r32[SP_BP_REQS_MAX - 1].status, SP_BP_ST_OK);
	}

	/* Two requests for worker 1: a share. */
	q[0] = req_of(SP_BP_OP_GET, k0, 1);
	q[1] = req_of(SP_BP_OP_DELETE, k1, 2);
	q[2] = req_of(SP_BP_OP_DELETE, k1b, 3);
	serve_on(0, bp_frame(q, 3));
	m = take_staged(0, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BP_SHARE);
	assert_int_equal(take_reply(0, r, 4), 1);
	serve_on(1, m);
	assert_int_equal(take_reply(1, r, 4), 2);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
	assert_int_equal(r[1].status, SP_BP_ST_NOT_FOUND);
	assert_true(worker_stats[0].handoff_folds == folds + folded);
}

/* What the hook saw. */
static struct {
	uint32_t calls;
	uint16_t worker;
	uint32_t partition;
	int rc; /* what it returns after answering (0), or instead of answering */
} hook;

static int
user_hook(void *ctx, const struct dp_bp_exec *x, const struct sp_bp_req *req,
          struct sp_bp_builder *reply)
{
	uint8_t *v;

	assert_ptr_equal(ctx, &hook);
	hook.calls++;
	hook.worker = x->worker;
	hook.partition = x->partition;
	if (hook.rc != 0)
		return hook.rc;
	if (!sp_bp_reply_fits(reply, 8))
		return -SP_EFULL;
	v = sp_bp_add_reply(reply, req->request_id, req->opcode, SP_BP_ST_OK, 0, 0, 8);
	memcpy(v, "answered", 8);
	return 0;
}

static void
test_registered_operation(void **state)
{
	char k0[KEY_BYTES], k1[KEY_BYTES];
	struct sp_bp_req q[2];
	struct sp_bp_reply r[4];
	struct rte_mbuf *m;

	(void)state;
	worker_keys("u", k0, k1, NULL);
	assert_int_equal(sp_bp_op_register(USER_OP, "user", SP_BP_OPF_KEY | SP_BP_OPF_WRITE,
	                                   SP_BP_VALUE_BYTES, 8),
	                 0);
	assert_int_equal(sp_bp_op_register(USER_OP_ANY, "user_any", 0, SP_BP_VALUE_NONE, 0), 0);

	/* Without a hook: BAD_REQUEST. */
	q[0] = req_of(USER_OP, k0, 1);
	serve_on(0, bp_frame(q, 1));
	assert_int_equal(take_reply(0, r, 4), 1);
	assert_int_equal(r[0].status, SP_BP_ST_BAD_REQUEST);
	assert_int_equal(r[0].opcode, USER_OP);

	dp_bp_set_user_hook(&rt, user_hook, &hook);
	memset(&hook, 0, sizeof(hook));
	/* On the owner: the hook runs it, with the request's partition. */
	serve_on(0, bp_frame(q, 1));
	assert_int_equal(hook.calls, 1);
	assert_int_equal(hook.worker, 0);
	assert_int_equal(hook.partition, sp_key_partition(sp_key_hash(k0, strlen(k0)), PARTITIONS));
	assert_int_equal(take_reply(0, r, 4), 1);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
	assert_int_equal(r[0].value_len, 8);
	assert_memory_equal(r[0].value, "answered", 8);
	/* Not on another worker: handed to the owner, which runs it. */
	q[0] = req_of(USER_OP, k1, 2);
	serve_on(0, bp_frame(q, 1));
	assert_int_equal(hook.calls, 1);
	m = take_staged(0, 1);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BINARY);
	serve_on(1, m);
	assert_int_equal(hook.calls, 2);
	assert_int_equal(hook.worker, 1);
	assert_int_equal(take_reply(1, r, 4), 1);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
	/* Without a key: the receiving worker answers, no partition. */
	q[0] = req_of(USER_OP_ANY, NULL, 3);
	serve_on(1, bp_frame(q, 1));
	assert_int_equal(hook.calls, 3);
	assert_int_equal(hook.worker, 1);
	assert_int_equal(hook.partition, SP_BP_PARTITION_ANY);
	assert_int_equal(take_reply(1, r, 4), 1);
	assert_int_equal(r[0].status, SP_BP_ST_OK);
	/* A hook that fails without answering: INTERNAL; the other request still runs. */
	hook.rc = -EIO;
	q[0] = req_of(USER_OP, k0, 4);
	q[1] = req_of(SP_BP_OP_GET, k0, 5);
	serve_on(0, bp_frame(q, 2));
	assert_int_equal(take_reply(0, r, 4), 2);
	assert_int_equal(r[0].status, SP_BP_ST_INTERNAL);
	assert_int_equal(r[1].status, SP_BP_ST_NOT_FOUND);

	dp_bp_set_user_hook(&rt, NULL, NULL);
	assert_int_equal(sp_bp_op_unregister(USER_OP), 0);
	assert_int_equal(sp_bp_op_unregister(USER_OP_ANY), 0);
}

/* Rounds of test_share_takes_its_requests, and the most requests its shares hold. */
#define SHARE_ROUNDS 200u
#define SHARE_MAX    8u

/*
 * A mixed datagram's share holds exactly the requests of its owner, in order, wherever
 * they sit (copy_group finds them eight at a time, and a datagram's count need not be a
 * multiple of eight): random datagrams of 2 to 32 GETs, a random part of them worker 1's;
 * worker 0 answers the others, worker 1 the share's, each in request order. When worker 1
 * gets one request (the write) it goes as a fold: worker 1 sends the one reply, worker
 * 0's answers first, in order, then the write's.
 */
static void
test_share_takes_its_requests(void **state)
{
	static char keys[2][SP_BP_REQS_MAX][32];
	uint64_t rng = test_seed("test_share_takes_its_requests") | 1;
	struct sp_bp_reply r[SP_BP_REQS_MAX];

	(void)state;
	for (uint16_t w = 0; w < 2; w++) {
		for (uint32_t i = 0; i < SP_BP_REQS_MAX; i++)
			key_of(keys[w][i], sizeof(keys[w][i]), "sh", w, i);
	}
	for (uint32_t round = 0; round < SHARE_ROUNDS; round++) {
		struct sp_bp_req q[SP_BP_REQS_MAX];
		uint32_t count, mine = 0, theirs = 0, got;
		uint32_t owned_by_1 = 0; /* bit per request */
		struct rte_mbuf *s;

		xorshift(&rng);
		count = 2 + (uint32_t)(rng % (SP_BP_REQS_MAX - 1));
		/* Mixed: 1 to SHARE_MAX requests for worker 1 (so that they travel decoded),
		 * at least one for worker 0. */
		for (uint32_t k = 0; k <= (uint32_t)(rng >> 8) % SHARE_MAX; k++)
			owned_by_1 |= UINT32_C(1) << (uint32_t)((rng >> (16 + 5 * k)) % count);
		if (owned_by_1 == (uint32_t)((UINT64_C(1) << count) - 1))
			owned_by_1 &= ~(UINT32_C(1) << (uint32_t)((rng >> 56) % count));
		/* Worker 1's first request is a DELETE, the rest GETs: with a write among
		 * them they all travel as its share, in order (GETs alone would be read on
		 * worker 0, test_gets_read_where_they_arrive). Every key is missing. */
		for (uint32_t i = 0; i < count; i++) {
			uint16_t w = (owned_by_1 >> i) & 1;
			bool first_of_1 = w == 1 && (owned_by_1 & ((UINT32_C(1) << i) - 1)) == 0;

			q[i] = req_of(first_of_1 ? SP_BP_OP_DELETE : SP_BP_OP_GET, keys[w][i],
			              1000 + i);
		}
		serve_on(0, bp_frame(q, count));
		s = take_staged(0, 1);
		assert_int_equal(dp_meta_of(s)->reqs, __builtin_popcount(owned_by_1));
		if (rte_is_power_of_2(owned_by_1)) {
			assert_int_equal(dp_meta_of(s)->kind, DP_MSG_BP_FOLD);
			assert_int_equal(rt.w[0]->tx_count, 0);
			serve_on(1, s);
			got = take_reply(1, r, SP_BP_REQS_MAX);
			assert_int_equal(got, count);
			for (uint32_t i = 0; i < count; i++) {
				if ((owned_by_1 >> i) & 1)
					continue;
				assert_int_equal(r[mine++].request_id, 1000 + i);
			}
			assert_int_equal(r[mine].request_id, 1000 + rte_bsf32(owned_by_1));
			assert_int_equal(r[mine].status, SP_BP_ST_NOT_FOUND);
			continue;
		}
		assert_int_equal(dp_meta_of(s)->kind, DP_MSG_BP_SHARE);
		got = take_reply(0, r, SP_BP_REQS_MAX);
		for (uint32_t i = 0; i < count; i++) {
			if ((owned_by_1 >> i) & 1)
				continue;
			assert_true(mine < got);
			assert_int_equal(r[mine++].request_id, 1000 + i);
		}
		assert_int_equal(mine, got);
		serve_on(1, s);
		got = take_reply(1, r, SP_BP_REQS_MAX);
		for (uint32_t i = 0; i < count; i++) {
			if (((owned_by_1 >> i) & 1) == 0)
				continue;
			assert_true(theirs < got);
			assert_int_equal(r[theirs].status, SP_BP_ST_NOT_FOUND);
			assert_int_equal(r[theirs++].request_id, 1000 + i);
		}
		assert_int_equal(theirs, got);
	}
}

/* Rounds of test_mixed_writes_against_model, and its keys per worker. */
#define MODEL_ROUNDS 300u
#define MODEL_KEYS   6u

/*
 * Random datagrams of GETs, SETs and DELETEs over a few keys of each worker, all sent to
 * worker 0: whatever goes where (served here, read here, handed whole, a share, a fold),
 * every request is answered once, and each answer is what a model that applies the
 * datagram's requests in order says (a key's requests run in the datagram's order, on one
 * worker). Seeded (SP_TEST_SEED replays).
 */
static void
test_mixed_writes_against_model(void **state)
{
	static char keys[2 * MODEL_KEYS][32];
	struct {
		bool present;
		uint32_t len;
		uint8_t value[48];
	} model[2 * MODEL_KEYS];
	uint64_t rng = test_seed("test_mixed_writes_against_model") | 1;
	uint64_t folds = worker_stats[0].handoff_folds;
	uint64_t copies = worker_stats[0].handoff_copies;
	uint32_t id = 5000;

	(void)state;
	memset(model, 0, sizeof(model));
	for (uint32_t k = 0; k < 2 * MODEL_KEYS; k++) {
		key_of(keys[k], sizeof(keys[k]), "mdl", (uint16_t)(k / MODEL_KEYS), k % MODEL_KEYS);
		/* Start from nothing: whatever an earlier run of this program left. */
		struct sp_bp_req del = req_of(SP_BP_OP_DELETE, keys[k], 1);
		struct sp_bp_reply r[1];

		serve_on(0, bp_frame(&del, 1));
		if (k >= MODEL_KEYS)
			serve_on(1, take_staged(0, 1));
		assert_int_equal(take_reply((uint16_t)(k / MODEL_KEYS), r, 1), 1);
	}
	for (uint32_t round = 0; round < MODEL_ROUNDS; round++) {
		struct sp_bp_req q[8];
		uint8_t values[8][48];
		struct got got[16];
		const struct sp_bp_reply *seen[8];
		uint32_t key[8]; /* the model's key of each request */
		uint32_t count, n, base = id;

		count = 2 + (uint32_t)(xorshift(&rng) % 7);
		memset(seen, 0, sizeof(seen));
		for (uint32_t i = 0; i < count; i++) {
			uint64_t x = xorshift(&rng);
			uint32_t k = (uint32_t)(x % (2 * MODEL_KEYS));
			uint32_t what = (uint32_t)(x >> 16) % 8; /* GET 3, SET 3, DELETE 2 */

			key[i] = k;
			if (what < 3) {
				q[i] = req_of(SP_BP_OP_GET, keys[k], id++);
			} else if (what < 6) {
				int len = snprintf((char *)values[i], sizeof(values[i]),
				                   "v%u.%u.%" PRIu64, round, i, (x >> 32) & 0xfff);
				q[i] = set_of(keys[k], values[i], (uint32_t)len, id++);
			} else {
				q[i] = req_of(SP_BP_OP_DELETE, keys[k], id++);
			}
		}
		serve_on(0, bp_frame(q, count));
		if (rt.w[0]->out_count[1] > 0)
			serve_on(1, take_staged(0, 1));
		assert_int_equal(rt.w[0]->out_count[1], 0);
		assert_int_equal(rt.w[1]->out_count[0], 0);
		/* Every request answered exactly once, by either worker. */
		n = take_replies(0, got, 16, NULL);
		n += take_replies(1, got + n, 16 - n, NULL);
		assert_int_equal(n, count);
		for (uint32_t j = 0; j < n; j++) {
			uint32_t at = got[j].r.request_id - base;

			assert_true(got[j].r.request_id >= base && at < count);
			assert_null(seen[at]);
			seen[at] = &got[j].r;
		}
		for (uint32_t i = 0; i < count; i++) {
			uint32_t k = key[i];

			assert_int_equal(seen[i]->opcode, q[i].opcode);
			if (q[i].opcode == SP_BP_OP_GET) {
				if (!model[k].present) {
					assert_int_equal(seen[i]->status, SP_BP_ST_NOT_FOUND);
					continue;
				}
				assert_int_equal(seen[i]->status, SP_BP_ST_OK);
				assert_int_equal(seen[i]->value_len, model[k].len);
				assert_memory_equal(seen[i]->value, model[k].value, model[k].len);
			} else if (q[i].opcode == SP_BP_OP_SET) {
				assert_int_equal(seen[i]->status, SP_BP_ST_OK);
				model[k].present = true;
				model[k].len = q[i].value_len;
				memcpy(model[k].value, q[i].value, q[i].value_len);
			} else {
				assert_int_equal(seen[i]->status, model[k].present
				                                          ? SP_BP_ST_OK
				                                          : SP_BP_ST_NOT_FOUND);
				model[k].present = false;
			}
		}
	}
	/* The rounds went every way, folds and shares among them. */
	assert_true(worker_stats[0].handoff_folds > folds);
	assert_true(worker_stats[0].handoff_copies > copies);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_kinds_and_services),
	        cmocka_unit_test(test_classify),
	        cmocka_unit_test(test_forward_through_ops),
	        cmocka_unit_test(test_handoff_carries_kind),
	        cmocka_unit_test(test_gets_over_several_reply_datagrams),
	        cmocka_unit_test(test_gets_read_where_they_arrive),
	        cmocka_unit_test(test_reads_over_several_reply_datagrams),
	        cmocka_unit_test(test_share_takes_its_requests),
	        cmocka_unit_test(test_hop_limit),
	        cmocka_unit_test(test_lone_write_folds),
	        cmocka_unit_test(test_mixed_writes_against_model),
	        cmocka_unit_test(test_registered_operation),
	};
	(void)argc;
	if (test_eal_start("test_service", argv[0]) != 0)
		return 1;
	if (test_node_config("ts_node", PARTITIONS, &rt.cfg) != 0)
		return 1;
	rt.cfg.memcached_port = MC_PORT;
	rt.stats = worker_stats;
	return test_node_run("test_service", &rt, tests, SP_ARRAY_SIZE(tests), test_node_has_mc);
}
