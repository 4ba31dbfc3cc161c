/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The runtime's bounds, end to end on net_ring (one scenario per run, chosen by argv[1]):
 *   tx    a node whose reply ring nobody drains keeps exactly DP_TX_PENDING_MAX replies
 *         waiting, drops and counts the rest, and frees its backlog when it stops;
 *   ring  with worker 1 never running, worker 0 hands it exactly DP_RING_SIZE datagrams
 *         and answers the rest SERVER_BUSY, counted as ring-full drops.
 * Both end with every mbuf back in the pool.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
#include "worker.h"
#include "wire/binproto.h"

#define REPLY_RING_SLOTS 64u /* what the undrained reply ring holds */
#define REQ_RING_SLOTS   1024u
#define REQUESTS         1000u /* single-GET datagrams sent (tx) */
#define RING_REQUESTS    1500u /* single-GET datagrams for worker 1's partitions (ring) */
#define BIG_RING_SLOTS   4096u
#define SETTLE_MS_MAX    10000u

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static struct rte_mempool *gen_pool;
static struct rte_ring *req_ring;
static struct rte_ring *rep_ring;

/* Builds a GET datagram for key i addressed to the node. */
static void
build_get(struct rte_mbuf *m, uint32_t i)
{
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t *ip = f + 14;
	uint8_t *udp = ip + 20;
	struct sp_bp_builder b;
	struct sp_bp_req req;
	uint32_t len;

	memset(&req, 0, sizeof(req));
	req.opcode = SP_BP_OP_GET;
	req.key = (const uint8_t *)&i;
	req.key_len = sizeof(i);
	sp_bp_builder_init(&b, udp + 8, SP_BP_PAYLOAD_MAX, false, i);
	assert_int_equal(sp_bp_add_request(&b, &req), 0);
	len = sp_bp_builder_finish(&b);
	memcpy(f, rt.port.mac.addr_bytes, 6);
	memset(f + 6, 0x02, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((28 + len) >> 8);
	ip[3] = (uint8_t)(28 + len);
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10;
	ip[15] = 2;
	memcpy(ip + 16, &rt.cfg.ip_be, 4);
	udp[0] = 0x9c;
	udp[2] = (uint8_t)(rt.cfg.port_base >> 8);
	udp[3] = (uint8_t)rt.cfg.port_base;
	udp[4] = (uint8_t)((8 + len) >> 8);
	udp[5] = (uint8_t)(8 + len);
	udp[6] = 0;
	udp[7] = 0;
	m->data_len = (uint16_t)(42 + len);
	m->pkt_len = m->data_len;
	/* As a NIC's checksum offload would report; the IPv4 checksum is not computed here. */
	m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
}

static uint64_t
total(size_t offset)
{
	struct dp_worker_stats sum;

	dp_stats_sum(rt.stats, rt.workers, &sum);
	return *(const uint64_t *)((const char *)&sum + offset);
}

static void
test_tx_backlog_bound(void **state)
{
	struct rte_mbuf *m;
	uint64_t waited_ms = 0;
	uint32_t i;

	(void)state;
	for (i = 0; i < REQUESTS; i++) {
		m = rte_pktmbuf_alloc(gen_pool);
		assert_non_null(m);
		build_get(m, i);
		assert_int_equal(rte_ring_enqueue(req_ring, m), 0);
	}
	/* Every request is answered or dropped: replies = ring + backlog + drops. */
	while (total(offsetof(struct dp_worker_stats, requests)) < REQUESTS &&
	       waited_ms < SETTLE_MS_MAX) {
		rte_delay_ms(10);
		waited_ms += 10;
	}
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
	uint64_t waited_ms = 0;
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
	while (total(offsetof(struct dp_worker_stats, handoff_out)) +
	                       total(offsetof(struct dp_worker_stats, ring_full_drops)) <
	               RING_REQUESTS &&
	       waited_ms < SETTLE_MS_MAX) {
		rte_delay_ms(10);
		waited_ms += 10;
	}
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

int
main(int argc, char **argv)
{
	char prefix[64];
	char *eal_argv[] = {argv[0],
	                    (char *)"--no-huge",
	                    (char *)"-m",
	                    (char *)"256",
	                    (char *)"--no-pci",
	                    (char *)"--lcores",
	                    (char *)"0@0,1@0,2@0",
	                    (char *)"--no-telemetry",
	                    (char *)"--log-level",
	                    (char *)"error",
	                    (char *)"--file-prefix",
	                    prefix};
	const struct CMUnitTest tx_tests[] = {
	        cmocka_unit_test(test_tx_backlog_bound),
	};
	const struct CMUnitTest ring_tests[] = {
	        cmocka_unit_test(test_ring_bound),
	};
	struct dp_hugepages huge;
	bool ring = argc > 1 && strcmp(argv[1], "ring") == 0;
	int node_port;
	int rc;
	snprintf(prefix, sizeof(prefix), "sp_test_bounds_%d", (int)getpid());
	memset(&huge, 0, sizeof(huge));
	if (rte_eal_init((int)SP_ARRAY_SIZE(eal_argv), eal_argv) < 0) {
		fprintf(stderr, "test_bounds: EAL start-up failed\n");
		return 1;
	}
	sp_log_set_level(SP_LOG_WARN);
	req_ring = rte_ring_create("tb_req", REQ_RING_SLOTS, 0, RING_F_EXACT_SZ);
	rep_ring = rte_ring_create("tb_rep", ring ? BIG_RING_SLOTS : REPLY_RING_SLOTS, 0,
	                           RING_F_EXACT_SZ);
	gen_pool = rte_pktmbuf_pool_create("tb_gen", 2 * RING_REQUESTS, 0, 0,
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
	rc = ring ? cmocka_run_group_tests(ring_tests, NULL, NULL)
	          : cmocka_run_group_tests(tx_tests, NULL, NULL);
	rte_mempool_free(gen_pool);
	rte_ring_free(req_ring);
	rte_ring_free(rep_ring);
	rte_eal_cleanup();
	return rc;
}
