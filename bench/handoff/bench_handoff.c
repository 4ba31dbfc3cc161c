/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a cross-worker hand-off adds to a request, on the dataplane's own code
 * (dataplane/runtime/handoff.h, lib/wire/binproto.h):
 *
 *   BM_handoff_mbuf/B   a whole single-request datagram moves: the mbuf goes through the
 *                       owner's inbound ring (multi-producer enqueue, single-consumer
 *                       dequeue) in bursts of B. Per request.
 *   BM_handoff_split/N  a 32-request datagram holds N requests for another worker: a
 *                       fresh mbuf is taken from the pool, the frame headers and those N
 *                       records are copied into it, it goes through the ring, and the
 *                       owner decodes it again; then it is freed. Per handed request.
 *
 * Both sides run on one core here, so the figures are the CPU work a hand-off adds; on two
 * cores the ring's cache lines also move between them once per burst.
 */
#include <string.h>

#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "cbench/cbench.h"
#include "cbench/cbench_eal.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "runtime/handoff.h"
#include "wire/binproto.h"

#define POOL_MBUFS 4095u
#define DGRAM_REQS 32u /* requests in the mixed datagram */
#define PARTITIONS 64u
#define HDRS_LEN   42u /* Ethernet + IPv4 + UDP, copied with the records */

static struct rte_mempool *pool;
static struct dp_handoff handoff;
static bool ready;
static uint8_t dgram[SP_BP_PAYLOAD_MAX];
static uint32_t dgram_len;
static struct sp_bp_req reqs[DGRAM_REQS];

/* Starts the EAL, the pool and two workers' rings once; a 32-GET datagram to split. */
static int
setup(struct cbench_state *st)
{
	if (ready)
		return 0;
	if (cbench_eal_init() != 0) {
		cbench_skip_with_error(st, "DPDK EAL init failed (see stderr)");
		return -1;
	}
	pool = rte_pktmbuf_pool_create("bh_pool", POOL_MBUFS, 256, DP_META_PRIV_SIZE,
	                               RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	int sockets[2] = {(int)rte_socket_id(), (int)rte_socket_id()};
	if (pool == NULL || dp_handoff_create(&handoff, 2, sockets) != 0) {
		cbench_skip_with_error(st, "mbuf pool or hand-off rings could not be created");
		return -1;
	}
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
		unsigned int sent = dp_handoff_send(&handoff, 1, m, burst);
		unsigned int recv = dp_handoff_recv(&handoff, 1, got, burst);
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
		VERIFY(dp_handoff_send(&handoff, 1, &m, 1) == 1);
		VERIFY(dp_handoff_recv(&handoff, 1, got, 1) == 1);
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
