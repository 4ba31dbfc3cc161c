/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The runtime's bounds, end to end on net_ring (one scenario per run, chosen by argv[1]):
 *   tx    a node whose reply ring nobody drains keeps exactly DP_TX_PENDING_MAX replies
 *         waiting, drops and counts the rest, and frees its backlog when it stops;
 *   ring  with worker 1 never running, worker 0 hands it exactly DP_RING_SIZE datagrams
 *         and answers the rest SERVER_BUSY, counted as ring-full drops;
 *   reply a datagram of GETs whose replies need several datagrams is answered in full,
 *         the last reply datagram written over the request's own mbuf, the others in
 *         fresh ones; a request with IPv4 options (which cannot carry its reply in place)
 *         gets every reply datagram in a fresh mbuf; and with the node's pool drained no
 *         request of such a datagram runs unanswered;
 *   unserved  with a table whose partitions are ROUTE_WORKER_NONE (route.h), every request
 *         for them is answered the table's unserved_status (NOT_READY, NOT_SERVING) without
 *         touching a store, and the other requests of the same datagram are served.
 * All end with every mbuf back in the pool.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/keyhash.h"
#include "node.h"
#include "test_eal.h"
#include "worker.h"
#include "wire/binproto.h"

#define REPLY_RING_SLOTS 64u /* what the undrained reply ring holds */
#define REQ_RING_SLOTS   1024u
#define REQUESTS         1000u /* single-GET datagrams sent (tx) */
#define RING_REQUESTS    1500u /* single-GET datagrams for worker 1's partitions (ring) */
#define BIG_RING_SLOTS   4096u
#define SETTLE_MS_MAX    10000u
#define REPLY_KEYS       SP_BP_REQS_MAX /* GETs in one datagram (reply) */
#define REPLY_VALUE_LEN  200u           /* 32 x (24 + 200) bytes: 5 reply datagrams */
#define IP_OPT_BYTES     4u             /* one word of IPv4 options: NOP NOP NOP EOL */

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static struct rte_mempool *gen_pool;
static struct rte_ring *req_ring;
static struct rte_ring *rep_ring;

/*
 * Builds a datagram of n requests of opcode op over keys first.. (SETs carry value)
 * addressed to the node, with IP_OPT_BYTES of IPv4 options when ip_opts.
 */
static void
build_dgram(struct rte_mbuf *m, uint8_t op, uint32_t first, uint32_t n, const uint8_t *value,
            uint32_t value_len, bool ip_opts)
{
	uint32_t hlen = 20 + (ip_opts ? IP_OPT_BYTES : 0);
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t *ip = f + 14;
	uint8_t *udp = ip + hlen;
	uint32_t keys[SP_BP_REQS_MAX];
	struct sp_bp_builder b;
	struct sp_bp_req req;
	uint32_t len;

	assert_true(n <= SP_BP_REQS_MAX);
	sp_bp_builder_init(&b, udp + 8, SP_BP_PAYLOAD_MAX - IP_OPT_BYTES, false, first);
	for (uint32_t i = 0; i < n; i++) {
		keys[i] = first + i;
		memset(&req, 0, sizeof(req));
		req.opcode = op;
		req.request_id = i;
		req.key = (const uint8_t *)&keys[i];
		req.key_len = sizeof(keys[i]);
		if (op == SP_BP_OP_SET) {
			req.value = value;
			req.value_len = value_len;
		}
		assert_int_equal(sp_bp_add_request(&b, &req), 0);
	}
	len = sp_bp_builder_finish(&b);
	memcpy(f, rt.port.mac.addr_bytes, 6);
	memset(f + 6, 0x02, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, hlen);
	ip[0] = (uint8_t)(0x40 | hlen / 4);
	ip[2] = (uint8_t)((hlen + 8 + len) >> 8);
	ip[3] = (uint8_t)(hlen + 8 + len);
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10;
	ip[15] = 2;
	memcpy(ip + 16, &rt.cfg.ip_be, 4);
	if (ip_opts)
		memset(ip + 20, 1, IP_OPT_BYTES - 1); /* NOPs, then EOL (0) */
	udp[0] = 0x9c;
	udp[2] = (uint8_t)(rt.cfg.port_base >> 8);
	udp[3] = (uint8_t)rt.cfg.port_base;
	udp[4] = (uint8_t)((8 + len) >> 8);
	udp[5] = (uint8_t)(8 + len);
	m->data_len = (uint16_t)(14 + hlen + 8 + len);
	m->pkt_len = m->data_len;
	m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

/* Builds a GET datagram for key i addressed to the node. */
static void
build_get(struct rte_mbuf *m, uint32_t i)
{
	build_dgram(m, SP_BP_OP_GET, i, 1, NULL, 0, false);
}

static uint64_t
total(size_t offset)
{
	struct dp_worker_stats sum;

	dp_stats_sum(rt.stats, rt.workers, &sum);
	return *(const uint64_t *)((const char *)&sum + offset);
}

#define NO_COUNTER     SIZE_MAX
#define SETTLE_STEP_MS 10u

/*
 * Waits, up to SETTLE_MS_MAX, until the counter at offset a plus the one at offset b
 * (NO_COUNTER: none) reach target, summed over the workers. Returns that sum.
 */
static uint64_t
wait_total(size_t a, size_t b, uint64_t target)
{
	uint64_t waited_ms = 0;
	uint64_t sum;

	for (;;) {
		sum = total(a) + (b == NO_COUNTER ? 0 : total(b));
		if (sum >= target || waited_ms >= SETTLE_MS_MAX)
			return sum;
		rte_delay_ms(SETTLE_STEP_MS);
		waited_ms += SETTLE_STEP_MS;
	}
}

static void
test_tx_backlog_bound(void **state)
{
	struct rte_mbuf *m;
	uint32_t i;

	(void)state;
	for (i = 0; i < REQUESTS; i++) {
		m = rte_pktmbuf_alloc(gen_pool);
		assert_non_null(m);
		build_get(m, i);
		assert_int_equal(rte_ring_enqueue(req_ring, m), 0);
	}
	/* Every request is answered or dropped: replies = ring + backlog + drops. */
	wait_total(offsetof(struct dp_worker_stats, requests), NO_COUNTER, REQUESTS);
	rte_delay_ms(50);
	assert_int_equal(total(offsetof(struct dp_worker_stats, requests)), REQUESTS);
	assert_int_equal(total(offsetof(struct dp_worker_stats, reply_dgrams)), REQUESTS);
	assert_int_equal(total(offsetof(struct dp_worker_stats, tx_pkts)), REPLY_RING_SLOTS);
	assert_int_equal(total(offsetof(struct dp_worker_stats, tx_drops)),
	                 REQUESTS - REPLY_RING_SLOTS - DP_TX_PENDING_MAX);
	assert_int_equal(rte_ring_count(rep_ring), REPLY_RING_SLOTS);
	/* Stop the worker: it gives up on its backlog after its bounded retries. */
	atomic_store(&rt.stop, true);
	rte_eal_mp_wait_lcore();
	assert_int_equal(total(offsetof(struct dp_worker_stats, tx_drops)),
	                 REQUESTS - REPLY_RING_SLOTS);
	while (rte_ring_dequeue(rep_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	assert_int_equal(dp_node_teardown(&rt, true), 0);
	assert_int_equal(rte_mempool_in_use_count(gen_pool), 0);
}

/* Key numbers whose partition worker 1 owns (p % 2 == 1 in the default map). */
static uint32_t
key_of_worker1(uint32_t *next)
{
	for (;;) {
		uint32_t k = (*next)++;

		if (sp_key_partition(sp_key_hash(&k, sizeof(k)), rt.partitions) % 2 == 1)
			return k;
	}
}

static void
test_ring_bound(void **state)
{
	struct rte_mbuf *m;
	uint32_t next = 0;
	uint32_t i;

	(void)state;
	for (i = 0; i < RING_REQUESTS; i++) {
		m = rte_pktmbuf_alloc(gen_pool);
		assert_non_null(m);
		build_get(m, key_of_worker1(&next));
		while (rte_ring_enqueue(req_ring, m) != 0)
			rte_delay_us_block(100);
	}
	wait_total(offsetof(struct dp_worker_stats, handoff_out),
	           offsetof(struct dp_worker_stats, ring_full_drops), RING_REQUESTS);
	rte_delay_ms(50);
	assert_int_equal(total(offsetof(struct dp_worker_stats, handoff_out)), DP_RING_SIZE);
	assert_int_equal(total(offsetof(struct dp_worker_stats, ring_full_drops)),
	                 RING_REQUESTS - DP_RING_SIZE);
	/* Nothing was executed: every request was handed over or refused. */
	assert_int_equal(total(offsetof(struct dp_worker_stats, requests)), 0);
	assert_int_equal(rte_ring_count(rep_ring), RING_REQUESTS - DP_RING_SIZE);
	atomic_store(&rt.stop, true);
	rte_eal_mp_wait_lcore();
	while (rte_ring_dequeue(rep_ring, (void **)&m) == 0) {
		struct sp_bp_reply reply;
		struct sp_bp_dgram dg;

		assert_int_equal(sp_bp_decode_replies(rte_pktmbuf_mtod(m, uint8_t *) + 42,
		                                      rte_pktmbuf_data_len(m) - 42, &reply, 1, &dg),
		                 SP_BP_ERR_OK);
		assert_int_equal(reply.status, SP_BP_ST_SERVER_BUSY);
		rte_pktmbuf_free(m);
	}
	/* The 1024 datagrams still in worker 1's ring are freed by the teardown. */
	assert_int_equal(dp_node_teardown(&rt, true), 0);
	assert_int_equal(rte_mempool_in_use_count(gen_pool), 0);
}

/* Waits (bounded) until the node has executed `requests` requests in all. */
static void
wait_requests(uint64_t requests)
{
	wait_total(offsetof(struct dp_worker_stats, requests), NO_COUNTER, requests);
	rte_delay_ms(20);
	assert_int_equal(total(offsetof(struct dp_worker_stats, requests)), requests);
}

/*
 * Takes the reply datagrams waiting on the reply ring; checks each reply is OK and carries
 * the value, marks its request id in *seen, frees the mbufs. Returns how many datagrams,
 * and how many of them came back in a request mbuf (from gen_pool).
 */
static uint32_t
take_replies(const uint8_t *value, uint64_t *seen, uint32_t *in_request_mbuf)
{
	struct rte_mbuf *m;
	uint32_t dgrams = 0;

	*in_request_mbuf = 0;
	while (rte_ring_dequeue(rep_ring, (void **)&m) == 0) {
		struct sp_bp_reply replies[SP_BP_REQS_MAX];
		struct sp_bp_dgram dg;

		assert_int_equal(sp_bp_decode_replies(rte_pktmbuf_mtod(m, uint8_t *) + 42,
		                                      rte_pktmbuf_data_len(m) - 42, replies,
		                                      SP_BP_REQS_MAX, &dg),
		                 SP_BP_ERR_OK);
		for (uint32_t r = 0; r < dg.count; r++) {
			assert_int_equal(replies[r].status, SP_BP_ST_OK);
			assert_int_equal(replies[r].value_len, REPLY_VALUE_LEN);
			assert_memory_equal(replies[r].value, value, REPLY_VALUE_LEN);
			assert_true(replies[r].request_id < REPLY_KEYS);
			assert_false(*seen & (UINT64_C(1) << replies[r].request_id));
			*seen |= UINT64_C(1) << replies[r].request_id;
		}
		*in_request_mbuf += m->pool == gen_pool;
		dgrams++;
		rte_pktmbuf_free(m);
	}
	return dgrams;
}

static void
test_multi_datagram_replies(void **state)
{
	uint8_t value[REPLY_VALUE_LEN];
	struct rte_mbuf *m;
	struct rte_mbuf *held[8192];
	uint64_t all = (UINT64_C(1) << REPLY_KEYS) - 1;
	uint64_t seen = 0;
	uint64_t executed = 0;
	uint32_t in_req = 0;
	uint32_t dgrams;
	uint32_t nheld = 0;
	uint32_t i;

	(void)state;
	for (i = 0; i < sizeof(value); i++)
		value[i] = (uint8_t)(i * 7 + 1);
	/* Store the keys, 4 to a datagram, and drop those replies. */
	for (i = 0; i < REPLY_KEYS; i += 4) {
		m = rte_pktmbuf_alloc(gen_pool);
		assert_non_null(m);
		build_dgram(m, SP_BP_OP_SET, i, 4, value, sizeof(value), false);
		assert_int_equal(rte_ring_enqueue(req_ring, m), 0);
	}
	executed += REPLY_KEYS;
	wait_requests(executed);
	while (rte_ring_dequeue(rep_ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);

	/*
	 * The node's pool drained before the worker ever took from it (so its lcore cache is
	 * empty): the first reply datagram goes in the request's mbuf, the second finds no
	 * mbuf, so the requests after the first datagram's worth do not run. Whatever ran is
	 * answered.
	 */
	while (nheld < SP_ARRAY_SIZE(held) && (m = rte_pktmbuf_alloc(rt.port.pool)) != NULL)
		held[nheld++] = m;
	assert_true(nheld < SP_ARRAY_SIZE(held));
	seen = 0;
	m = rte_pktmbuf_alloc(gen_pool);
	assert_non_null(m);
	build_dgram(m, SP_BP_OP_GET, 0, REPLY_KEYS, NULL, 0, false);
	assert_int_equal(rte_ring_enqueue(req_ring, m), 0);
	{
		uint64_t nomb = offsetof(struct dp_worker_stats, dp_drop) +
		                DP_DROP_NOMBUF * sizeof(uint64_t);

		assert_true(wait_total(nomb, NO_COUNTER, 1) > 0);
	}
	rte_delay_ms(20);
	take_replies(value, &seen, &in_req);
	/* Every executed request was answered, and no more than were answered ran. */
	assert_int_equal(total(offsetof(struct dp_worker_stats, requests)) - executed,
	                 (uint64_t)__builtin_popcountll(seen));
	assert_true(seen != 0);
	assert_true(seen != all);
	executed = total(offsetof(struct dp_worker_stats, requests));
	rte_pktmbuf_free_bulk(held, nheld);

	/*
	 * A plain request: several reply datagrams, the last one in the request's mbuf. With
	 * IPv4 options the request's mbuf cannot carry a reply: all in fresh ones.
	 */
	for (int opts = 0; opts < 2; opts++) {
		seen = 0;
		m = rte_pktmbuf_alloc(gen_pool);
		assert_non_null(m);
		build_dgram(m, SP_BP_OP_GET, 0, REPLY_KEYS, NULL, 0, opts == 1);
		assert_int_equal(rte_ring_enqueue(req_ring, m), 0);
		executed += REPLY_KEYS;
		wait_requests(executed);
		dgrams = take_replies(value, &seen, &in_req);
		assert_int_equal(seen, all);
		assert_true(dgrams >= 2);
		assert_int_equal(in_req, opts == 1 ? 0 : 1);
	}

	atomic_store(&rt.stop, true);
	rte_eal_mp_wait_lcore();
	assert_int_equal(dp_node_teardown(&rt, true), 0);
	assert_int_equal(rte_mempool_in_use_count(gen_pool), 0);
}

/*
 * Publishes (under the running worker: RCU-safe, the old table is kept) a copy of the
 * current table whose even partitions, or all when all, are ROUTE_WORKER_NONE with the
 * given unserved_status. Returns the replaced table.
 */
static struct route_table *
publish_unserved(bool all, uint8_t status)
{
	struct route_table *cur = atomic_load(&rt.route->current);
	size_t bytes = route_table_size(cur->partitions);
	struct route_table *u = malloc(bytes);

	assert_non_null(u);
	memcpy(u, cur, bytes);
	for (uint32_t p = 0; p < u->partitions; p++)
		if (all || p % 2 == 0)
			u->entries[p].worker = ROUTE_WORKER_NONE;
	u->unserved_status = status;
	atomic_store(&rt.route->current, u);
	/* As route_switch does: once the worker has passed a quiescent state, it uses u. */
	rte_rcu_qsbr_synchronize(rt.route->qsbr, RTE_QSBR_THRID_INVALID);
	return cur;
}

/* Puts old back and frees the test's table once the worker has left it. */
static void
unpublish(struct route_table *old)
{
	struct route_table *u = atomic_exchange(&rt.route->current, old);

	rte_rcu_qsbr_synchronize(rt.route->qsbr, RTE_QSBR_THRID_INVALID);
	free(u);
}

/* The owner each WRONG_PARTITION reply of the last exchange() named, by request id. */
static struct sp_bp_redirect redirects[SP_BP_REQS_MAX];

/*
 * Sends one datagram of SET (value "v") or GET requests over keys 0..n-1, waits for all
 * n replies and writes each request's status into status[request_id].
 */
static void
exchange(uint8_t op, uint32_t n, uint8_t *status)
{
	static const uint8_t v[1] = {'v'};
	struct rte_mbuf *m = rte_pktmbuf_alloc(gen_pool);
	uint32_t got = 0;
	uint32_t waited_ms = 0;

	assert_non_null(m);
	build_dgram(m, op, 0, n, v, sizeof(v), false);
	memset(status, 0xff, n);
	assert_int_equal(rte_ring_enqueue(req_ring, m), 0);
	while (got < n && waited_ms < SETTLE_MS_MAX) {
		struct sp_bp_reply replies[SP_BP_REQS_MAX];
		struct sp_bp_dgram dg;

		if (rte_ring_dequeue(rep_ring, (void **)&m) != 0) {
			rte_delay_ms(1);
			waited_ms++;
			continue;
		}
		assert_int_equal(sp_bp_decode_replies(rte_pktmbuf_mtod(m, uint8_t *) + 42,
		                                      rte_pktmbuf_data_len(m) - 42, replies,
		                                      SP_BP_REQS_MAX, &dg),
		                 SP_BP_ERR_OK);
		for (uint32_t r = 0; r < dg.count; r++) {
			assert_true(replies[r].request_id < n);
			assert_int_equal(status[replies[r].request_id], 0xff);
			status[replies[r].request_id] = replies[r].status;
			if (replies[r].status == SP_BP_ST_WRONG_PARTITION)
				assert_int_equal(sp_bp_redirect_decode(
				                         replies[r].value, replies[r].value_len,
				                         &redirects[replies[r].request_id]),
				                 1);
			got++;
		}
		rte_pktmbuf_free(m);
	}
	assert_int_equal(got, n);
}

static void
test_unserved_statuses(void **state)
{
	uint8_t status[SP_BP_REQS_MAX];
	struct route_table *old;
	uint32_t n = 16;
	uint64_t executed;
	uint32_t served = 0;

	(void)state;
	exchange(SP_BP_OP_SET, n, status);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(status[i], SP_BP_ST_OK);
	executed = total(offsetof(struct dp_worker_stats, requests));

	/* No map yet: nothing runs, everything says so. */
	old = publish_unserved(true, SP_BP_ST_NOT_READY);
	exchange(SP_BP_OP_GET, n, status);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(status[i], SP_BP_ST_NOT_READY);
	assert_int_equal(total(offsetof(struct dp_worker_stats, requests)), executed);
	assert_int_equal(total(offsetof(struct dp_worker_stats, unserved)), n);
	unpublish(old);

	/* Lease lost on the even partitions: the odd ones are served in the same datagram. */
	old = publish_unserved(false, SP_BP_ST_NOT_SERVING);
	exchange(SP_BP_OP_GET, n, status);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t p = sp_key_partition(sp_key_hash(&k, sizeof(k)), rt.partitions);

		if (p % 2 == 0) {
			assert_int_equal(status[k], SP_BP_ST_NOT_SERVING);
		} else {
			assert_int_equal(status[k], SP_BP_ST_OK);
			served++;
		}
	}
	assert_true(served > 0 && served < n);
	assert_int_equal(total(offsetof(struct dp_worker_stats, requests)), executed + served);
	unpublish(old);

	/* Odd partitions on another node: WRONG_PARTITION naming it, its port and epoch. */
	{
		struct route_table *cur = atomic_load(&rt.route->current);
		struct route_table *u = malloc(route_table_size(cur->partitions));
		uint16_t *ow;

		assert_non_null(u);
		memcpy(u, cur, route_table_size(cur->partitions));
		ow = (uint16_t *)(void *)&u->entries[u->partitions];
		u->epoch = 77;
		u->node_count = 2;
		u->nodes[1] = (struct route_node){.node_id = 2,
		                                  .ipv4_be = htonl(0x0a090909),
		                                  .binary_port = 7000,
		                                  .worker_count = 3};
		for (uint32_t p = 1; p < u->partitions; p += 2) {
			u->entries[p].worker = ROUTE_WORKER_REMOTE;
			u->entries[p].node = 1;
			ow[p] = (uint16_t)(p % 3);
		}
		atomic_store(&rt.route->current, u);
		rte_rcu_qsbr_synchronize(rt.route->qsbr, RTE_QSBR_THRID_INVALID);
		old = cur;
	}
	exchange(SP_BP_OP_GET, n, status);
	served = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t p = sp_key_partition(sp_key_hash(&k, sizeof(k)), rt.partitions);

		if (p % 2 == 0) {
			assert_int_equal(status[k], SP_BP_ST_OK);
			continue;
		}
		served++;
		assert_int_equal(status[k], SP_BP_ST_WRONG_PARTITION);
		assert_true(redirects[k].epoch == 77);
		assert_int_equal(redirects[k].node_id, 2);
		assert_int_equal(redirects[k].ipv4_be, htonl(0x0a090909));
		assert_int_equal(redirects[k].port, 7000 + p % 3);
		assert_int_equal(redirects[k].worker, p % 3);
		assert_int_equal(redirects[k].partition, p);
	}
	assert_true(served > 0);
	assert_int_equal(total(offsetof(struct dp_worker_stats, wrong_node)), served);
	unpublish(old);

	atomic_store(&rt.stop, true);
	rte_eal_mp_wait_lcore();
	assert_int_equal(dp_node_teardown(&rt, true), 0);
	assert_int_equal(rte_mempool_in_use_count(gen_pool), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tx_tests[] = {
	        cmocka_unit_test(test_tx_backlog_bound),
	};
	const struct CMUnitTest ring_tests[] = {
	        cmocka_unit_test(test_ring_bound),
	};
	const struct CMUnitTest reply_tests[] = {
	        cmocka_unit_test(test_multi_datagram_replies),
	};
	const struct CMUnitTest unserved_tests[] = {
	        cmocka_unit_test(test_unserved_statuses),
	};
	struct dp_hugepages huge;
	bool ring = argc > 1 && strcmp(argv[1], "ring") == 0;
	bool reply = argc > 1 && strcmp(argv[1], "reply") == 0;
	bool unserved = argc > 1 && strcmp(argv[1], "unserved") == 0;
	int node_port;
	int rc;
	memset(&huge, 0, sizeof(huge));
	if (test_eal_start("test_bounds", argv[0]) != 0)
		return 1;
	req_ring = rte_ring_create("tb_req", REQ_RING_SLOTS, 0, RING_F_EXACT_SZ);
	rep_ring = rte_ring_create("tb_rep", ring ? BIG_RING_SLOTS : REPLY_RING_SLOTS, 0,
	                           RING_F_EXACT_SZ);
	/* Room for dp_meta: on net_ring the node serves the generator's own mbufs. */
	gen_pool = rte_pktmbuf_pool_create("tb_gen", 2 * RING_REQUESTS, 0, DP_META_PRIV_SIZE,
	                                   RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (req_ring == NULL || rep_ring == NULL || gen_pool == NULL)
		return 1;
	{
		/* ring: a second queue pair for worker 1 (which never runs); nothing uses it. */
		struct rte_ring *rx[2] = {req_ring, rte_ring_create("tb_req1", 64, 0, 0)};
		struct rte_ring *tx[2] = {rep_ring, rte_ring_create("tb_rep1", 64, 0, 0)};

		if (rx[1] == NULL || tx[1] == NULL)
			return 1;
		node_port = rte_eth_from_rings("tb_node", rx, ring ? 2 : 1, tx, ring ? 2 : 1, 0);
	}
	if (node_port < 0)
		return 1;
	dp_config_defaults(&rt.cfg);
	rt.cfg.ip_be = htonl(0x0a000001);
	rt.cfg.prefix_len = 24;
	rt.cfg.workers = ring ? 2 : 1;
	rt.cfg.partitions = 16;
	rt.cfg.memory_mb = 4;
	rt.cfg.busy_poll = true;
	rt.cfg.eth_port = (uint16_t)node_port;
	rt.stats = worker_stats;
	if (dp_node_setup(&rt, &huge) != 0) {
		fprintf(stderr, "test_bounds: node set-up failed\n");
		return 1;
	}
	/* ring: only worker 0 runs, so worker 1's inbound ring is never drained. */
	rc = ring ? rte_eal_remote_launch(dp_worker_main, rt.w[0], rt.lcore_of[0])
	          : dp_node_launch(&rt);
	if (rc != 0) {
		fprintf(stderr, "test_bounds: launch failed\n");
		return 1;
	}
	if (ring)
		rc = cmocka_run_group_tests(ring_tests, NULL, NULL);
	else if (reply)
		rc = cmocka_run_group_tests(reply_tests, NULL, NULL);
	else if (unserved)
		rc = cmocka_run_group_tests(unserved_tests, NULL, NULL);
	else
		rc = cmocka_run_group_tests(tx_tests, NULL, NULL);
	/* A failed test may have left the workers running. */
	atomic_store(&rt.stop, true);
	rte_eal_mp_wait_lcore();
	rte_mempool_free(gen_pool);
	rte_ring_free(req_ring);
	rte_ring_free(rep_ring);
	test_eal_stop();
	return rc;
}
