/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a cross-worker hand-off adds to a request, on the dataplane's own code
 * (dataplane/runtime/handoff.h, lib/wire/binproto.h):
 *
 *   BM_handoff_mbuf/B   a whole single-request datagram moves: the mbuf goes through the
 *                       owner's inbound ring (multi-producer enqueue, single-consumer
 *                       dequeue) in bursts of B. Per request.
 *   BM_handoff_split/N  a model of the split: a 32-request datagram holds N requests for
 *                       another worker: a fresh mbuf is taken from the pool, the frame
 *                       headers and those N records are copied into it, it goes through
 *                       the ring, and the owner decodes it again; then it is freed. Per
 *                       handed request. Its own copy of the code, kept for comparison.
 *   BM_handoff_split_dp/N  the split on the node's own code (bpserve.c, worker.h): see
 *                       the comment before it; it reports what a handed request adds.
 *
 * Both sides run on one core here, so the figures are the CPU work a hand-off adds; on two
 * cores the ring's cache lines also move between them once per burst.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "cbench/cbench.h"
#include "cbench/cbench_eal.h"
#include "common/keyhash.h"
#include "common/log.h"
#include "common/verify.h"
#include "runtime/handoff.h"
#include "runtime/node.h"
#include "runtime/service.h"
#include "runtime/worker.h"
#include "wire/binproto.h"

#define DGRAM_REQS 32u /* requests in the mixed datagram */
#define HDRS_LEN   42u /* Ethernet + IPv4 + UDP, copied with the records */

/*
 * The split on the dataplane's own code (BM_handoff_split_dp): a node of two workers
 * (node.c, net_ring, not launched; this thread plays both, as the unit tests do), its
 * binary service serving real datagrams from its stores.
 */
#define PARTITIONS      64u
#define SPLIT_MAX       8u  /* requests handed out of one datagram, at most */
#define PORT_RING_SLOTS 64u /* each ring of the node's port (nothing reads them) */
#define CLIENT_PORT     40000u

static struct rte_mempool *pool;   /* the node's */
static struct dp_handoff *handoff; /* the node's rings */
static bool ready;
static uint8_t dgram[SP_BP_PAYLOAD_MAX];
static uint32_t dgram_len;
static struct sp_bp_req reqs[DGRAM_REQS];

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static int node_rc = 1; /* 1: not tried yet */

/* Tears the node down before the EAL goes (atexit runs this before cbench's clean-up). */
static void
node_stop(void)
{
	if (node_rc == 0 && dp_node_teardown(&rt, false) != 0)
		fprintf(stderr, "bench_handoff: the node's teardown found leaked mbufs\n");
}

/* The net_ring port the node serves on: two queue pairs over rings that nothing reads. */
static int
node_port(void)
{
	struct rte_ring *rx[2], *tx[2];

	for (int i = 0; i < 2; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bh_rx%d", i);
		rx[i] = rte_ring_create(name, PORT_RING_SLOTS, (int)rte_socket_id(), 0);
		snprintf(name, sizeof(name), "bh_tx%d", i);
		tx[i] = rte_ring_create(name, PORT_RING_SLOTS, (int)rte_socket_id(), 0);
		if (rx[i] == NULL || tx[i] == NULL)
			return -1;
	}
	return rte_eth_from_rings("bh_node", rx, 2, tx, 2, (unsigned int)rte_socket_id());
}

/* Starts the two-worker node once (on an EAL of three lcores). Returns 0 or -1. */
static int
node_start(void)
{
	struct dp_hugepages huge;
	int port;

	if (node_rc != 1)
		return node_rc;
	node_rc = -1;
	if (cbench_eal_init_lcores(3, CBENCH_EAL_NO_HUGE_MB) != 0)
		return -1;
	port = node_port();
	if (port < 0)
		return -1;
	dp_hugepages_read(&huge);
	dp_config_defaults(&rt.cfg);
	rt.cfg.ip_be = htonl(0x0a000001);
	rt.cfg.prefix_len = 24;
	rt.cfg.workers = 2;
	rt.cfg.partitions = PARTITIONS;
	rt.cfg.memory_mb = 4;
	rt.cfg.busy_poll = true;
	rt.cfg.eth_port = (uint16_t)port;
	rt.stats = worker_stats;
	sp_log_set_level(SP_LOG_WARN);
	if (dp_node_setup(&rt, &huge) != 0)
		return -1;
	node_rc = 0;
	atexit(node_stop);
	return 0;
}

/* Starts the node (its pool and rings serve all the benchmarks here) once; a 32-GET
 * datagram to split. */
static int
setup(struct cbench_state *st)
{
	if (ready)
		return 0;
	if (node_start() != 0) {
		cbench_skip_with_error(st, "two-worker node could not start (see stderr)");
		return -1;
	}
	pool = rt.port.pool;
	handoff = &rt.handoff;
	struct sp_bp_builder b;
	sp_bp_builder_init(&b, dgram, sizeof(dgram), false, 1);
	for (uint32_t i = 0; i < DGRAM_REQS; i++) {
		char key[9];
		snprintf(key, sizeof(key), "k%07u", i);
		struct sp_bp_req r = {.opcode = SP_BP_OP_GET,
		                      .request_id = i,
		                      .key = (const uint8_t *)key,
		                      .key_len = 8};
		VERIFY(sp_bp_add_request(&b, &r) == 0);
	}
	dgram_len = sp_bp_builder_finish(&b);
	struct sp_bp_dgram d;
	VERIFY(sp_bp_decode_requests(dgram, dgram_len, PARTITIONS, reqs, DGRAM_REQS, &d) ==
	       SP_BP_ERR_OK);
	ready = true;
	return 0;
}

static void
BM_handoff_mbuf(struct cbench_state *st)
{
	unsigned int burst = (unsigned int)cbench_range(st, 0);
	struct rte_mbuf *m[DP_BURST], *got[DP_BURST];

	if (setup(st) != 0)
		return;
	if (burst < 1 || burst > DP_BURST) {
		cbench_skip_with_error(st, "burst outside 1..DP_BURST");
		return;
	}
	if (rte_pktmbuf_alloc_bulk(pool, m, burst) != 0) {
		cbench_skip_with_error(st, "mbuf pool exhausted");
		return;
	}
	while (cbench_keep_running(st)) {
		unsigned int sent = dp_handoff_send(handoff, 1, m, burst);
		unsigned int recv = dp_handoff_recv(handoff, 1, got, burst);
		VERIFY(sent == burst);
		VERIFY(recv == burst);
		cbench_do_not_optimize(got[0]);
	}
	rte_pktmbuf_free_bulk(m, burst);
	cbench_set_items_processed(st, cbench_iterations(st) * burst);
}
CBENCH_REGISTER(BM_handoff_mbuf)
{
	cbench_add_arg(b, 1);
	cbench_add_arg(b, 8);
	cbench_add_arg(b, 32);
}

static void
BM_handoff_split(struct cbench_state *st)
{
	unsigned int n = (unsigned int)cbench_range(st, 0);
	static uint8_t frame[HDRS_LEN];
	struct rte_mbuf *got[1];
	struct sp_bp_req back[DGRAM_REQS];
	struct sp_bp_dgram d;

	if (setup(st) != 0)
		return;
	if (n < 1 || n > DGRAM_REQS) {
		cbench_skip_with_error(st, "requests outside 1..32");
		return;
	}
	while (cbench_keep_running(st)) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		VERIFY(m != NULL);
		uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
		memcpy(p, frame, HDRS_LEN);
		struct sp_bp_builder b;
		sp_bp_builder_init(&b, p + HDRS_LEN, SP_BP_PAYLOAD_MAX, false, 1);
		for (unsigned int i = 0; i < n; i++)
			VERIFY(sp_bp_add_record(&b, &reqs[i]) == 0);
		uint32_t len = sp_bp_builder_finish(&b);
		m->data_len = m->pkt_len = HDRS_LEN + len;
		dp_meta_of(m)->reqs = (uint16_t)n;
		VERIFY(dp_handoff_send(handoff, 1, &m, 1) == 1);
		VERIFY(dp_handoff_recv(handoff, 1, got, 1) == 1);
		uint8_t *q = rte_pktmbuf_mtod(got[0], uint8_t *);
		VERIFY(sp_bp_decode_requests(q + HDRS_LEN, got[0]->data_len - HDRS_LEN, PARTITIONS,
		                             back, DGRAM_REQS, &d) == SP_BP_ERR_OK);
		VERIFY(d.count == n);
		rte_pktmbuf_free(got[0]);
	}
	cbench_set_items_processed(st, cbench_iterations(st) * n);
}
CBENCH_REGISTER(BM_handoff_split)
{
	cbench_add_arg(b, 1);
	cbench_add_arg(b, 8);
	cbench_add_arg(b, 16);
}

/* A path's request frames, built once and copied into a fresh mbuf before each run. */
struct dp_frame {
	uint8_t bytes[NET_UDP_REPLY_HDRS + SP_BP_PAYLOAD_MAX];
	uint32_t len;
	uint16_t worker; /* whose port it was sent to, and who serves it */
};

/* The worker that owns key `key` in the node's table now. */
static uint16_t
owner_of(const char *key)
{
	const struct route_table *t = route_current(rt.route);
	uint32_t p = sp_key_partition(sp_key_hash(key, strlen(key)), t->partitions);
	uint16_t target = 0;

	if (route_decide(t, p, 0, &target) == ROUTE_EXECUTE)
		return 0;
	return target;
}

/* Writes the n-th key ("k<i>", 8 bytes) worker w owns into key[9]. */
static void
key_of(char key[9], uint16_t w, uint32_t n)
{
	uint32_t found = 0;

	for (uint32_t i = 0; i < 10000000u; i++) {
		snprintf(key, 9, "k%07u", i);
		if (owner_of(key) == w && found++ == n)
			return;
	}
	VERIFY(!"no key for worker");
}

/* A client's datagram to worker w's port: the requests rq[0 .. n - 1]. */
static void
frame_of(struct dp_frame *f, uint16_t w, const struct sp_bp_req *rq, uint32_t n, uint64_t id)
{
	struct net_udp_ends e = {
	        .src_ip_be = htonl(0x0a000002),
	        .dst_ip_be = rt.cfg.ip_be,
	        .src_port = CLIENT_PORT,
	        .dst_port = (uint16_t)(rt.cfg.port_base + w),
	        .src_mac = {0x02, 0, 0, 0, 0, 0x33},
	};
	struct sp_bp_builder b;
	uint32_t len;

	memcpy(e.dst_mac, rt.port.mac.addr_bytes, NET_ETH_ADDR_LEN);
	sp_bp_builder_init(&b, f->bytes + NET_UDP_REPLY_HDRS, SP_BP_PAYLOAD_MAX, false, id);
	for (uint32_t i = 0; i < n; i++)
		VERIFY(sp_bp_add_request(&b, &rq[i]) == 0);
	len = sp_bp_builder_finish(&b);
	f->len = net_udp_frame(f->bytes, &e, (uint16_t)len, 1, 0);
	f->worker = w;
}

/* f in a fresh mbuf, classified as worker f->worker's loop would (the loop's part, not timed). */
static struct rte_mbuf *
mbuf_of(const struct dp_frame *f)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(rt.port.pool);
	struct dp_meta *meta;

	VERIFY(m != NULL);
	memcpy(rte_pktmbuf_mtod(m, uint8_t *), f->bytes, f->len);
	m->data_len = (uint16_t)f->len;
	m->pkt_len = f->len;
	meta = dp_meta_of(m);
	VERIFY(net_classify(&rt.net, rte_pktmbuf_mtod(m, uint8_t *), f->len,
	                    NET_RX_IP_CSUM_GOOD | NET_RX_L4_CSUM_GOOD, &meta->pkt) == NET_UDP);
	meta->hops = 0;
	meta->reqs = 0;
	meta->refused = 0;
	meta->kind = (uint8_t)dp_service_classify(&rt, m, &meta->pkt);
	VERIFY(meta->kind == DP_MSG_BINARY);
	return m;
}

/* Frees the reply frames worker w queued (what the PMD does once they are sent); how many. */
static uint32_t
drop_replies(uint16_t w)
{
	struct dp_worker *wk = rt.w[w];
	uint32_t n = wk->tx_count;

	rte_pktmbuf_free_bulk(wk->tx, n);
	wk->tx_count = 0;
	return n;
}

/* The one reply frame worker w queued, taken off its queue. */
static struct rte_mbuf *
take_reply(uint16_t w)
{
	struct dp_worker *wk = rt.w[w];

	VERIFY(wk->tx_count == 1);
	wk->tx_count = 0;
	return wk->tx[0];
}

/*
 * Serves m on worker w as its loop does, then what w handed to worker 1 on worker 1: w's
 * staged mbufs go through worker 1's ring (as flush_handoffs sends them) and worker 1
 * serves what its ring gives (as the loop does: its kind's service). Returns how many
 * mbufs went through the ring.
 */
static unsigned int
serve_path(struct rte_mbuf *m, uint16_t w, const struct dp_iter *it)
{
	struct dp_worker *wk = rt.w[w];
	struct rte_mbuf *got[DP_BURST];
	unsigned int n = 0;

	dp_service_of_kind(dp_meta_of(m)->kind)->serve(wk, it, &m, 1);
	if (w == 0 && wk->out_count[1] > 0) {
		n = dp_handoff_send(&rt.handoff, 1, wk->out[1], wk->out_count[1]);
		VERIFY(n == wk->out_count[1]);
		wk->out_count[1] = 0;
		VERIFY(dp_handoff_recv(&rt.handoff, 1, got, DP_BURST) == n);
		for (unsigned int i = 0; i < n; i++)
			dp_service_of_kind(dp_meta_of(got[i])->kind)
			        ->serve(rt.w[1], it, &got[i], 1);
	}
	return n;
}

/* Checks that reply frame m answers `count` requests of datagram id, all OK, GETs with
 * values of value_len bytes; frees it. */
static void
check_reply(struct rte_mbuf *m, uint32_t count, uint64_t id, uint32_t value_len)
{
	struct sp_bp_reply r[SP_BP_REQS_MAX];
	struct sp_bp_dgram dg;
	const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);

	VERIFY(sp_bp_decode_replies(f + NET_UDP_REPLY_HDRS,
	                            rte_pktmbuf_data_len(m) - NET_UDP_REPLY_HDRS, r, SP_BP_REQS_MAX,
	                            &dg) == SP_BP_ERR_OK);
	VERIFY(dg.datagram_id == id);
	VERIFY(dg.count == count);
	for (uint32_t i = 0; i < count; i++) {
		VERIFY(r[i].status == SP_BP_ST_OK);
		VERIFY(r[i].value_len == (r[i].opcode == SP_BP_OP_GET ? value_len : 0));
	}
	rte_pktmbuf_free(m);
}

/*
 * Serves f once on its worker (with what it hands to worker 1) and checks the reply frames:
 * on_w0 answers from worker 0 with values of len_w0 bytes, on_w1 from worker 1 with values
 * of len_w1 bytes (GETs; other answers carry none); when worker 0 hands a fold, worker 1
 * sends the one reply, with all of them. Returns the kind of what was handed
 * (DP_MSG_NONE when nothing was).
 */
static uint8_t
check_path(const struct dp_frame *f, uint32_t on_w0, uint32_t len_w0, uint32_t on_w1,
           uint32_t len_w1, uint64_t id)
{
	uint8_t kind = DP_MSG_NONE;
	struct dp_iter it = {.t = route_current(rt.route), .now_s = 10};
	struct rte_mbuf *m = mbuf_of(f);
	struct dp_worker *w0 = rt.w[0];

	dp_service_of_kind(dp_meta_of(m)->kind)->serve(rt.w[f->worker], &it, &m, 1);
	if (on_w1 > 0 && f->worker == 0 && dp_meta_of(w0->out[1][0])->kind == DP_MSG_BP_FOLD) {
		/* The fold's one request is a write: the reply's GETs are worker 0's. */
		on_w1 += on_w0;
		len_w1 = len_w0;
		on_w0 = 0;
	}
	if (on_w0 > 0) {
		check_reply(take_reply(0), on_w0, id, len_w0);
	}
	if (on_w1 > 0 && f->worker == 0) {
		VERIFY(w0->out_count[1] == 1);
		kind = dp_meta_of(w0->out[1][0])->kind;
		VERIFY(dp_handoff_send(&rt.handoff, 1, w0->out[1], 1) == 1);
		w0->out_count[1] = 0;
		VERIFY(dp_handoff_recv(&rt.handoff, 1, &m, 1) == 1);
		dp_service_of_kind(dp_meta_of(m)->kind)->serve(rt.w[1], &it, &m, 1);
	}
	VERIFY(w0->out_count[1] == 0);
	if (on_w1 > 0) {
		check_reply(take_reply(1), on_w1, id, len_w1);
	}
	VERIFY(rt.w[0]->tx_count == 0);
	VERIFY(rt.w[1]->tx_count == 0);
	return kind;
}

/* The datagrams of BM_handoff_split_dp/n/op, built once per n and op. */
struct split_frames {
	uint32_t n;
	uint8_t op;            /* the opcode of the n requests for worker 1: GET or SET */
	struct dp_frame local; /* split, with worker 0's keys where it has worker 1's */
	struct dp_frame split; /* 32 GETs of worker 0's keys but n: op on worker 1's keys */
	struct dp_frame rest;  /* the 32 - n of split that worker 0 owns */
	struct dp_frame own;   /* the n of split that worker 1 owns, to worker 1's port */
	uint8_t handed_kind;   /* what the share of split travels as (DP_MSG_NONE: no share) */
};

static struct split_frames frames;

/* Request i of a GET (or SET) datagram on key k; values are 8 bytes. */
static struct sp_bp_req
req_of(uint8_t op, const char *k, uint32_t id)
{
	static const uint8_t value[8] = "value-00";
	struct sp_bp_req q = {
	        .opcode = op, .request_id = id, .key = (const uint8_t *)k, .key_len = 8};

	if (op == SP_BP_OP_SET) {
		q.value = value;
		q.value_len = sizeof(value);
	}
	return q;
}

/* Whether request i of the split datagram of n is one worker 1 owns (spread evenly). */
static bool
handed(uint32_t i, uint32_t n)
{
	uint32_t step = DGRAM_REQS / n;

	return i % step == step / 2 && i / step < n;
}

/*
 * Builds the datagrams for n handed requests, stores their keys (SET, on their owners)
 * and checks each path's replies once: every GET a hit, each answered once.
 */
static void
split_frames_make(uint32_t n, uint8_t op)
{
	static char k0[DGRAM_REQS][9], k1[SPLIT_MAX][9];
	struct sp_bp_req local[DGRAM_REQS], split[DGRAM_REQS], rest[DGRAM_REQS];
	struct sp_bp_req own[SPLIT_MAX], set0[DGRAM_REQS], set1[SPLIT_MAX];
	uint32_t r = 0, o = 0, j0 = 0;
	/* A GET's reply carries the 8-byte value, a SET's none. */
	uint32_t len1 = op == SP_BP_OP_GET ? 8 : 0;

	ASSERT(n >= 1 && n <= SPLIT_MAX);
	ASSERT(op == SP_BP_OP_GET || op == SP_BP_OP_SET);
	for (uint32_t i = 0; i < DGRAM_REQS; i++) {
		key_of(k0[i], 0, i);
		set0[i] = req_of(SP_BP_OP_SET, k0[i], i);
	}
	for (uint32_t i = 0; i < SPLIT_MAX; i++) {
		key_of(k1[i], 1, i);
		set1[i] = req_of(SP_BP_OP_SET, k1[i], i);
	}
	for (uint32_t i = 0; i < DGRAM_REQS; i++) {
		if (handed(i, n)) {
			split[i] = req_of(op, k1[o], i);
			own[o++] = split[i];
			/* The same opcode on a key worker 0 owns that split does not use. */
			local[i] = req_of(op, k0[DGRAM_REQS - o], i);
		} else {
			split[i] = req_of(SP_BP_OP_GET, k0[j0++], i);
			rest[r++] = split[i];
			local[i] = split[i];
		}
	}
	VERIFY(o == n);
	VERIFY(r == DGRAM_REQS - n);
	frames.n = n;
	frames.op = op;
	/* 32 SETs of 8-byte keys and values do not fit one datagram: two of 16. */
	frame_of(&frames.local, 0, set0, DGRAM_REQS / 2, 1);
	VERIFY(check_path(&frames.local, DGRAM_REQS / 2, 0, 0, 0, 1) == DP_MSG_NONE);
	frame_of(&frames.local, 0, set0 + DGRAM_REQS / 2, DGRAM_REQS / 2, 1);
	VERIFY(check_path(&frames.local, DGRAM_REQS / 2, 0, 0, 0, 1) == DP_MSG_NONE);
	frame_of(&frames.own, 1, set1, SPLIT_MAX, 2);
	VERIFY(check_path(&frames.own, 0, 0, SPLIT_MAX, 0, 2) == DP_MSG_NONE);
	frame_of(&frames.local, 0, local, DGRAM_REQS, 3);
	frame_of(&frames.split, 0, split, DGRAM_REQS, 4);
	frame_of(&frames.rest, 0, rest, DGRAM_REQS - n, 5);
	frame_of(&frames.own, 1, own, n, 6);
	VERIFY(check_path(&frames.local, DGRAM_REQS, 8, 0, 0, 3) == DP_MSG_NONE);
	if (op == SP_BP_OP_GET) {
		/* Worker 1's GETs alone: read on worker 0 (DEST_READ), one reply, no share. */
		frames.handed_kind = check_path(&frames.split, DGRAM_REQS, 8, 0, 0, 4);
		VERIFY(frames.handed_kind == DP_MSG_NONE);
	} else {
		frames.handed_kind = check_path(&frames.split, DGRAM_REQS - n, 8, n, len1, 4);
		/* One write: a fold; more: a share. */
		VERIFY(frames.handed_kind == (n == 1 ? DP_MSG_BP_FOLD : DP_MSG_BP_SHARE));
	}
	VERIFY(check_path(&frames.rest, DGRAM_REQS - n, 8, 0, 0, 5) == DP_MSG_NONE);
	VERIFY(check_path(&frames.own, 0, 0, n, len1, 6) == DP_MSG_NONE);
}

/*
 * TSC cycles a path takes to serve frame f, and frame g after it when g is not NULL (with
 * what they hand on), and free their replies, in one timed region: each region costs a
 * fenced TSC read pair (50-75 cycles here), which the two-datagram path must pay once, as
 * the others do. Not inlined, nor its three callers below: under callgrind each path's
 * instructions are the inclusive count of its function (docs/benchmarks.md).
 */
static __rte_noinline uint64_t
path_cycles(const struct dp_frame *f, const struct dp_frame *g, const struct dp_iter *it,
            unsigned int handed_mbufs, unsigned int reply_frames)
{
	struct rte_mbuf *m = mbuf_of(f);
	struct rte_mbuf *m2 = g != NULL ? mbuf_of(g) : NULL;
	uint64_t t0 = rte_rdtsc_precise();
	unsigned int n = serve_path(m, f->worker, it);

	if (m2 != NULL)
		n += serve_path(m2, g->worker, it);
	uint32_t replies = drop_replies(0) + drop_replies(1);
	uint64_t t1 = rte_rdtsc_precise();

	VERIFY(n == handed_mbufs);
	VERIFY(replies == reply_frames);
	return t1 - t0;
}

static __rte_noinline uint64_t
split_dp_local(const struct dp_iter *it)
{
	return path_cycles(&frames.local, NULL, it, 0, 1);
}

static __rte_noinline uint64_t
split_dp_split(const struct dp_iter *it)
{
	/* A share's owner sends a reply of its own; a fold's sends the one reply. */
	bool handed = frames.handed_kind != DP_MSG_NONE;

	return path_cycles(&frames.split, NULL, it, handed ? 1 : 0,
	                   handed && frames.handed_kind != DP_MSG_BP_FOLD ? 2 : 1);
}

static __rte_noinline uint64_t
split_dp_two(const struct dp_iter *it)
{
	return path_cycles(&frames.rest, &frames.own, it, 0, 2);
}

/*
 * Per-iteration differences between two paths, in TSC cycles, as a histogram of one-cycle
 * bins over [-DIFF_LOW, DIFF_HIGH) (the rest counted at the ends): its median is what an
 * interrupt or a preemption in one path of one iteration does not move, as a mean is.
 */
#define DIFF_LOW  4096
#define DIFF_HIGH 12288

struct diff_hist {
	uint64_t count;
	uint32_t bins[DIFF_LOW + DIFF_HIGH];
};

static struct diff_hist diff_added, diff_two;

static void
diff_add(struct diff_hist *h, int64_t d)
{
	int64_t bin = d < -DIFF_LOW ? -DIFF_LOW : d >= DIFF_HIGH ? DIFF_HIGH - 1 : d;

	h->bins[bin + DIFF_LOW]++;
	h->count++;
}

/* The median of h in cycles (the lower one of an even count); 0 when empty. */
static double
diff_median(const struct diff_hist *h)
{
	uint64_t seen = 0;

	for (int64_t b = 0; b < DIFF_LOW + DIFF_HIGH; b++) {
		seen += h->bins[b];
		if (seen * 2 >= h->count && seen > 0)
			return (double)(b - DIFF_LOW);
	}
	return 0;
}

/*
 * BM_handoff_split_dp/n/op: the node's own code serves a datagram of 32 requests of which
 * n belong to worker 1, on worker 0; the 32 - n are GETs. op 1: the n are SETs, a write,
 * so they are handed over: worker 0 decodes, routes, runs its 32 - n; one SET goes as a
 * fold (worker 0 leaves its reply unsent in the request's mbuf, worker 1 runs the SET,
 * adds its answer and sends the one reply), several as a share (worker 0 builds and
 * stages it, worker 1 takes the carried requests, runs them and sends its own reply
 * datagram); either way through worker 1's ring. op 0: the n are GETs, and
 * worker 0 reads them from worker 1's store (DEST_READ): one reply datagram, no share.
 * Every reply frame is freed, as the PMD frees it once sent. The time reported is that
 * path, per datagram. Each iteration
 * also serves, interleaved so that the host's drift moves all alike:
 *   local     the same datagram all worker 0 owns (op on keys of worker 0's in the n
 *             places), so that the difference is the hand-off alone, not op against GET;
 *   two       the two datagrams a partition-aware client sends instead: the 32 - n to
 *             worker 0, the n to worker 1 (each with its own reply datagram).
 * Counters, ns: split, local, two (per datagram path, means); added_per_req, the median
 * over iterations of (split - local) / n: what the hand-off adds to a handed request (a
 * share's second reply datagram included); beyond_two_per_req, the median of
 * (split - two) / n: what it costs beyond the client sending the request in a datagram of
 * its own (both sides then send two reply datagrams); *_mean, the same from the means.
 * Building the request frames in their mbufs (the NIC's part) is not timed; the clock
 * reads (rte_rdtsc_precise) are in every path's time and cancel in the differences.
 */
static void
BM_handoff_split_dp(struct cbench_state *st)
{
	uint32_t n = (uint32_t)cbench_range(st, 0);
	uint8_t op = cbench_range(st, 1) == 0 ? SP_BP_OP_GET : SP_BP_OP_SET;
	uint64_t local = 0, split = 0, two = 0;
	double ns_per_cycle;

	if (n < 1 || n > SPLIT_MAX) {
		cbench_skip_with_error(st, "handed requests outside 1..8");
		return;
	}
	if (node_start() != 0) {
		cbench_skip_with_error(st, "two-worker node could not start (see stderr)");
		return;
	}
	if (frames.n != n || frames.op != op)
		split_frames_make(n, op);
	ns_per_cycle = 1e9 / (double)rte_get_tsc_hz();
	memset(&diff_added, 0, sizeof(diff_added));
	memset(&diff_two, 0, sizeof(diff_two));
	while (cbench_keep_running(st)) {
		struct dp_iter it = {.t = route_current(rt.route), .now_s = 10};
		uint64_t c_local = split_dp_local(&it);
		uint64_t c_split = split_dp_split(&it);
		uint64_t c_two = split_dp_two(&it);

		local += c_local;
		split += c_split;
		two += c_two;
		diff_add(&diff_added, (int64_t)c_split - (int64_t)c_local);
		diff_add(&diff_two, (int64_t)c_split - (int64_t)c_two);
		cbench_set_iteration_time(st, (double)c_split * ns_per_cycle * 1e-9);
	}
	uint64_t iters = cbench_iterations(st);
	if (iters == 0)
		return;
	cbench_counter(st, "split_ns", (double)split * ns_per_cycle / (double)iters, 0);
	cbench_counter(st, "local_ns", (double)local * ns_per_cycle / (double)iters, 0);
	cbench_counter(st, "two_ns", (double)two * ns_per_cycle / (double)iters, 0);
	cbench_counter(st, "added_per_req", diff_median(&diff_added) * ns_per_cycle / n, 0);
	cbench_counter(st, "beyond_two_per_req", diff_median(&diff_two) * ns_per_cycle / n, 0);
	cbench_counter(st, "added_mean",
	               ((double)split - (double)local) * ns_per_cycle / (double)iters / n, 0);
	cbench_counter(st, "beyond_two_mean",
	               ((double)split - (double)two) * ns_per_cycle / (double)iters / n, 0);
	cbench_set_label(st, frames.handed_kind == DP_MSG_NONE       ? "GETs read where they arrive"
	                     : frames.handed_kind == DP_MSG_BP_FOLD  ? "write folded into the reply"
	                     : frames.handed_kind == DP_MSG_BP_SHARE ? "share carries decoded"
	                                                             : "share decoded again");
}
CBENCH_REGISTER(BM_handoff_split_dp)
{
	static const int64_t args[][2] = {{1, 0}, {8, 0}, {1, 1}, {8, 1}};

	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++)
		cbench_add_args(b, args[i], 2);
	cbench_use_manual_time(b);
}
