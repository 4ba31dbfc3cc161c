/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mcport on a real node (EAL --no-huge, net_ring, 2 workers that are not launched): the
 * test plays each worker in turn and calls dp_mc_serve() the way its loop would, so every
 * placement, hand-off, reply frame and bound is checked deterministically:
 *   single-key commands go to the owner, multi-key gets run where they arrive, reply
 *   headers answer the request, flush_all reaches the other worker, gat touches travel to
 *   their owner (at most DP_MC_TOUCH_FORWARD_MAX per datagram), the reply array holds
 *   DP_MC_REPLY_DGRAMS_MAX datagrams, the hop limit and a full ring answer busy, forged
 *   messages are refused, and stats sum both workers.
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
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "cluster/partmap.h"
#include "common/keyhash.h"
#include "bpforward.h"
#include "forward.h"
#include "mcport.h"
#include "node.h"
#include "test_eal.h"
#include "test_node.h"
#include "worker.h"

#define MC_PORT        11211u
#define CLIENT_PORT    40000u
#define PARTITIONS     16u
#define NOW_S          10u
#define REPLY_MAX      (DP_MC_REPLY_DGRAMS_MAX * SP_MC_DGRAM_BYTES_MAX)
#define FWD_TIMEOUT_MS 100u /* --forward-timeout-ms of the node under test */

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static char reply[REPLY_MAX + 1];

/* A request frame from 10.0.0.2:CLIENT_PORT to the node's memcached port, classified. */
static struct rte_mbuf *
frame(const char *payload, uint16_t request_id)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(rt.port.pool);
	size_t len = strlen(payload);
	struct net_pkt pkt;
	uint8_t *f, *ip, *udp;
	uint16_t udp_len = (uint16_t)(8 + SP_MC_FRAME_BYTES + len);

	assert_non_null(m);
	assert_true(NET_UDP_REPLY_HDRS + SP_MC_FRAME_BYTES + len <= rte_pktmbuf_tailroom(m));
	f = rte_pktmbuf_mtod(m, uint8_t *);
	ip = f + NET_ETH_HDR_LEN;
	udp = ip + NET_IPV4_HDR_LEN;
	memcpy(f, rt.port.mac.addr_bytes, 6);
	memset(f + 6, 0x02, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, NET_IPV4_HDR_LEN);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + udp_len) >> 8);
	ip[3] = (uint8_t)(20 + udp_len);
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10;
	ip[15] = 2;
	memcpy(ip + 16, &rt.cfg.ip_be, 4);
	udp[0] = (uint8_t)(CLIENT_PORT >> 8);
	udp[1] = (uint8_t)CLIENT_PORT;
	udp[2] = (uint8_t)(MC_PORT >> 8);
	udp[3] = (uint8_t)MC_PORT;
	udp[4] = (uint8_t)(udp_len >> 8);
	udp[5] = (uint8_t)udp_len;
	udp[6] = 0;
	udp[7] = 0;
	sp_mc_frame_encode(udp + 8, &(struct sp_mc_frame){.request_id = request_id, .count = 1});
	memcpy(udp + 8 + SP_MC_FRAME_BYTES, payload, len);
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + SP_MC_FRAME_BYTES + len);
	m->pkt_len = m->data_len;
	assert_int_equal(net_classify(&rt.net, f, m->data_len,
	                              NET_RX_IP_CSUM_GOOD | NET_RX_L4_CSUM_GOOD, &pkt),
	                 NET_UDP);
	dp_meta_of(m)->pkt = pkt;
	dp_meta_of(m)->hops = 0;
	dp_meta_of(m)->reqs = 0;
	dp_meta_of(m)->refused = 0;
	/* As the worker's classification gives it. */
	dp_meta_of(m)->kind = (uint8_t)dp_service_classify(&rt, m, &pkt);
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_MEMCACHED);
	return m;
}

static void
serve(uint16_t worker, struct rte_mbuf *m, struct dp_mc_result *res)
{
	dp_mc_serve(rt.w[worker], route_current(rt.route), NOW_S, m, res);
}

/* What the worker does with m when its owner's ring was full. */
static void
busy(uint16_t worker, struct rte_mbuf *m, struct dp_mc_result *res)
{
	dp_mc_busy(rt.w[worker], route_current(rt.route), NOW_S, m, res);
}

/*
 * Checks every reply frame of res (addresses and ports swapped, frame header with
 * request_id), frees them, and leaves their joined payloads in `reply`. Returns the count.
 */
static uint32_t
collect(struct dp_mc_result *res, uint16_t request_id)
{
	size_t at = 0;

	for (uint32_t i = 0; i < res->tx_count; i++) {
		struct rte_mbuf *m = res->tx[i];
		const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
		const uint8_t *udp = f + NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN;
		struct sp_mc_frame fr;
		size_t len = rte_pktmbuf_data_len(m) - NET_UDP_REPLY_HDRS - SP_MC_FRAME_BYTES;

		assert_true(rte_pktmbuf_data_len(m) <= NET_UDP_REPLY_HDRS + SP_MC_DGRAM_BYTES_MAX);
		assert_memory_equal(f + NET_ETH_HDR_LEN + 16, "\x0a\x00\x00\x02", 4);
		assert_int_equal((udp[0] << 8) | udp[1], MC_PORT);
		assert_int_equal((udp[2] << 8) | udp[3], CLIENT_PORT);
		assert_int_equal(sp_mc_frame_decode(udp + 8, SP_MC_FRAME_BYTES, &fr), 0);
		assert_int_equal(fr.request_id, request_id);
		assert_true(at + len <= REPLY_MAX);
		memcpy(reply + at, udp + 8 + SP_MC_FRAME_BYTES, len);
		at += len;
		rte_pktmbuf_free(m);
	}
	reply[at] = '\0';
	return res->tx_count;
}

/* Runs one command on the key's owner and checks its one-line answer. */
static void
run_on_owner(const char *payload, const char *key, const char *want)
{
	struct dp_mc_result res;

	serve(owner_of(key), frame(payload, 7), &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 7), 1);
	assert_string_equal(reply, want);
}

static void
totals(struct dp_mc_stats *s, struct mcexec_counters *c)
{
	dp_mc_totals(rt.mc, s, c);
}

static void
test_owner_handoff(void **state)
{
	struct dp_mc_result res;
	struct rte_mbuf *m;
	char key[32], cmd[96], want[96];

	(void)state;
	key_of(key, sizeof(key), "own", 1, 0);
	snprintf(cmd, sizeof(cmd), "set %s 3 0 2\r\nhi\r\n", key);
	m = frame(cmd, 11);
	serve(0, m, &res);
	assert_int_equal(res.tx_count, 0);
	assert_int_equal(res.handoff_count, 1);
	assert_ptr_equal(res.handoff[0], m);
	assert_int_equal(res.handoff_to[0], 1);
	assert_int_equal(dp_meta_of(m)->hops, 1);
	/* Worker 1 takes it from its ring and answers with the request's own mbuf. */
	serve(1, m, &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(res.tx_count, 1);
	assert_ptr_equal(res.tx[0], m);
	assert_int_equal(collect(&res, 11), 1);
	assert_string_equal(reply, "STORED\r\n");
	snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
	snprintf(want, sizeof(want), "VALUE %s 3 2\r\nhi\r\nEND\r\n", key);
	run_on_owner(cmd, key, want);
}

/*
 * The hop limit and a full ring mean one thing (service.h): a datagram that has moved
 * DP_HANDOFF_HOPS_MAX times and would move again, or that its owner's ring refused, is
 * answered "busy, try again" and runs nowhere (the key stays as it was).
 */
static void
test_hops_and_ring_full_answer_busy(void **state)
{
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	struct rte_mbuf *m;
	char key[32], cmd[96], want[96];

	(void)state;
	key_of(key, sizeof(key), "hop", 1, 0);
	snprintf(cmd, sizeof(cmd), "set %s 3 0 2\r\nhi\r\n", key);
	run_on_owner(cmd, key, "STORED\r\n");
	totals(&s0, &c);
	snprintf(cmd, sizeof(cmd), "delete %s\r\n", key);
	m = frame(cmd, 12);
	dp_meta_of(m)->hops = DP_HANDOFF_HOPS_MAX;
	serve(0, m, &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 12), 1);
	assert_string_equal(reply, "SERVER_ERROR busy, try again\r\n");
	/* One move short of the limit: handed to the owner as usual, its hop counted. */
	m = frame(cmd, 14);
	dp_meta_of(m)->hops = DP_HANDOFF_HOPS_MAX - 1;
	serve(0, m, &res);
	assert_int_equal(res.handoff_count, 1);
	assert_int_equal(dp_meta_of(res.handoff[0])->hops, DP_HANDOFF_HOPS_MAX);
	/* Its owner's ring was full: the same answer. */
	busy(0, res.handoff[0], &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 14), 1);
	assert_string_equal(reply, "SERVER_ERROR busy, try again\r\n");
	totals(&s1, &c);
	assert_int_equal(s1.busy - s0.busy, 2);
	assert_int_equal(s1.handoff_out - s0.handoff_out, 1);
	/* Nothing ran: the item is still there. */
	snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
	snprintf(want, sizeof(want), "VALUE %s 3 2\r\nhi\r\nEND\r\n", key);
	run_on_owner(cmd, key, want);
}

static void
test_multi_get_runs_here(void **state)
{
	struct dp_mc_result res;
	char k0[32], k1[32], cmd[160], want[160];

	(void)state;
	key_of(k0, sizeof(k0), "multi", 0, 0);
	key_of(k1, sizeof(k1), "multi", 1, 0);
	snprintf(cmd, sizeof(cmd), "set %s 0 0 1\r\na\r\n", k0);
	run_on_owner(cmd, k0, "STORED\r\n");
	snprintf(cmd, sizeof(cmd), "set %s 0 0 1\r\nb\r\n", k1);
	run_on_owner(cmd, k1, "STORED\r\n");
	snprintf(cmd, sizeof(cmd), "get %s %s\r\n", k1, k0);
	serve(0, frame(cmd, 21), &res);
	assert_int_equal(res.handoff_count, 0);
	/* One response per key, as memcached sends them. */
	assert_int_equal(collect(&res, 21), 2);
	snprintf(want, sizeof(want), "VALUE %s 0 1\r\nb\r\nVALUE %s 0 1\r\na\r\nEND\r\n", k1, k0);
	assert_string_equal(reply, want);
}

static void
test_flush_all_reaches_other_worker(void **state)
{
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	char k1[32], cmd[96];

	(void)state;
	key_of(k1, sizeof(k1), "flush", 1, 0);
	snprintf(cmd, sizeof(cmd), "set %s 0 0 1\r\nz\r\n", k1);
	run_on_owner(cmd, k1, "STORED\r\n");
	totals(&s0, &c);
	serve(0, frame("flush_all\r\n", 31), &res);
	assert_int_equal(collect(&res, 31), 1);
	assert_string_equal(reply, "OK\r\n");
	totals(&s1, &c);
	assert_int_equal(s1.flush_remote - s0.flush_remote, 1);
	/* Worker 1 applies it before its next datagram (and in its loop's poll). */
	dp_mc_poll(rt.w[1], route_current(rt.route), NOW_S);
	totals(&s1, &c);
	assert_int_equal(s1.flush_applied - s0.flush_applied, 1);
	snprintf(cmd, sizeof(cmd), "get %s\r\n", k1);
	run_on_owner(cmd, k1, "END\r\n");
	/* Applied once: another poll changes nothing. */
	dp_mc_poll(rt.w[1], route_current(rt.route), NOW_S);
	totals(&s0, &c);
	assert_int_equal(s0.flush_applied, s1.flush_applied);
}

/*
 * Stores the first n keys of stem `stem` owned by worker w (key_of) with the set command
 * set_fmt (one %s for the key), and writes into cmd the command `head key0 key1 ...\r\n`.
 */
static void
stored_keys_command(char *cmd, size_t cap, const char *head, const char *stem, uint16_t w,
                    uint32_t n, const char *set_fmt)
{
	char key[32], one[96];
	size_t at = (size_t)snprintf(cmd, cap, "%s", head);

	for (uint32_t i = 0; i < n; i++) {
		key_of(key, sizeof(key), stem, w, i);
		snprintf(one, sizeof(one), set_fmt, key);
		run_on_owner(one, key, "STORED\r\n");
		at += (size_t)snprintf(cmd + at, cap - at, " %s", key);
		assert_true(at < cap);
	}
	snprintf(cmd + at, cap - at, "\r\n");
}

static void
test_gat_touch_bound(void **state)
{
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	static char cmd[8192];
	uint32_t n = DP_MC_TOUCH_FORWARD_MAX + 5;

	(void)state;
	stored_keys_command(cmd, sizeof(cmd), "gat 0", "touch", 1, n, "set %s 0 100 1\r\nt\r\n");
	totals(&s0, &c);
	serve(0, frame(cmd, 41), &res);
	assert_int_equal(res.handoff_count, DP_MC_TOUCH_FORWARD_MAX);
	assert_int_equal(collect(&res, 41), n);
	totals(&s1, &c);
	assert_int_equal(s1.touch_out - s0.touch_out, DP_MC_TOUCH_FORWARD_MAX);
	assert_int_equal(s1.touch_dropped - s0.touch_dropped, n - DP_MC_TOUCH_FORWARD_MAX);
	/* The owner applies the touches: the first key loses its expiry (0 = never). */
	for (uint32_t i = 0; i < res.handoff_count; i++) {
		struct dp_mc_result r2;

		assert_int_equal(res.handoff_to[i], 1);
		serve(1, res.handoff[i], &r2);
		assert_int_equal(r2.tx_count, 0);
		assert_int_equal(r2.handoff_count, 0);
	}
	totals(&s0, &c);
	assert_int_equal(s0.touch_in - s1.touch_in, DP_MC_TOUCH_FORWARD_MAX);
	assert_int_equal(s0.bad_message, 0);
}

static void
test_forged_message_refused(void **state)
{
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	struct rte_mbuf *m = rte_pktmbuf_alloc(rt.port.pool);

	(void)state;
	assert_non_null(m);
	memset(rte_pktmbuf_mtod(m, uint8_t *), 0x41, 64);
	m->data_len = 64;
	m->pkt_len = 64;
	memset(&dp_meta_of(m)->pkt, 0, sizeof(dp_meta_of(m)->pkt));
	dp_meta_of(m)->pkt.dst_port = MC_PORT;
	dp_meta_of(m)->pkt.payload_len = 64;
	dp_meta_of(m)->kind = DP_MSG_MC_TOUCH;
	totals(&s0, &c);
	serve(1, m, &res);
	assert_int_equal(res.tx_count, 0);
	assert_int_equal(res.handoff_count, 0);
	totals(&s1, &c);
	assert_int_equal(s1.bad_message - s0.bad_message, 1);
}

static void
test_reply_array_bound(void **state)
{
	struct dp_mc_result res;
	static char cmd[8192];
	uint32_t n = DP_MC_REPLY_DGRAMS_MAX + 1;

	(void)state;
	stored_keys_command(cmd, sizeof(cmd), "get", "bound", 0, n, "set %s 0 0 1\r\nv\r\n");
	/* n - 1 hits: one datagram each (END rides on the last) fills the array exactly. */
	{
		static char all[8192 + 2];
		char *last = strrchr(cmd, ' ');

		snprintf(all, sizeof(all), "%s\r\n", cmd);
		*last = '\0';
		strcat(cmd, "\r\n");
		serve(0, frame(cmd, 51), &res);
		assert_int_equal(collect(&res, 51), n - 1);
		assert_non_null(strstr(reply, "END\r\n"));
		serve(0, frame(all, 52), &res);
		assert_int_equal(collect(&res, 52), 1);
		assert_string_equal(reply, "SERVER_ERROR out of memory writing get response\r\n");
	}
}

/* A dry pool: a reply needing fresh mbufs sends nothing, counts it, and leaks nothing. */
static void
test_dry_pool_counted(void **state)
{
	static struct rte_mbuf *held[65536];
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	struct rte_mbuf *m;
	unsigned int in_use = rte_mempool_in_use_count(rt.port.pool);
	uint32_t n = 0;
	char k0[32], k1[32], cmd[96];

	(void)state;
	key_of(k0, sizeof(k0), "dry", 0, 0);
	key_of(k1, sizeof(k1), "dry", 0, 1);
	/* Two responses: one in the request's mbuf, one needing a fresh one. */
	snprintf(cmd, sizeof(cmd), "get %s %s\r\n", k0, k1);
	m = frame(cmd, 71);
	while (n < SP_ARRAY_SIZE(held) && (held[n] = rte_pktmbuf_alloc(rt.port.pool)) != NULL)
		n++;
	assert_true(n < SP_ARRAY_SIZE(held));
	totals(&s0, &c);
	serve(0, m, &res);
	assert_int_equal(res.tx_count, 0);
	totals(&s1, &c);
	assert_int_equal(s1.nombuf - s0.nombuf, 1);
	rte_pktmbuf_free_bulk(held, n);
	assert_int_equal(rte_mempool_in_use_count(rt.port.pool), in_use);
}

static void
test_stats_sum_and_reset(void **state)
{
	struct dp_mc_result res;
	const char *p;

	(void)state;
	serve(1, frame("stats\r\n", 61), &res);
	assert_int_equal(collect(&res, 61), 1);
	p = strstr(reply, "STAT threads 2\r\n");
	assert_non_null(p);
	/* cmd_get counts the gets run on both workers (never 0 after the tests above). */
	p = strstr(reply, "STAT cmd_get ");
	assert_non_null(p);
	assert_true(strtoull(p + 13, NULL, 10) > DP_MC_REPLY_DGRAMS_MAX);
	serve(0, frame("stats reset\r\n", 62), &res);
	assert_int_equal(collect(&res, 62), 1);
	assert_string_equal(reply, "RESET\r\n");
	serve(1, frame("stats\r\n", 63), &res);
	assert_int_equal(collect(&res, 63), 1);
	assert_non_null(strstr(reply, "STAT cmd_get 0\r\n"));
	assert_non_null(strstr(reply, "STAT cmd_set 0\r\n"));
}

/* Cluster mode: a single-key command for another node's partition is refused, counted. */
static void
test_other_node_refused(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(PARTITIONS);
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	char why[ROUTE_WHY_MAX];
	char key[32], cmd[96];
	uint32_t i = 0;

	(void)state;
	assert_non_null(st);
	assert_int_equal(sp_cluster_state_single(st, PARTITIONS, 1, 2, "a"), 0);
	st->member_count = 2;
	st->members[1] = st->members[0];
	st->members[1].node_id = 2;
	st->members[1].ipv4_be = inet_addr("10.1.2.3");
	st->members[1].mac[5] = 0x22;
	memcpy(st->members[1].name, "b", 2);
	/* Partitions 1, 5, 9, 13 (owned by worker 1 before) move to node 2. */
	for (uint32_t p = 1; p < PARTITIONS; p += 4)
		st->map[p].node_id = 2;
	st->epoch = 2;
	assert_int_equal(route_switch(rt.route, st, why, sizeof(why)), 0);
	for (;; i++) {
		snprintf(key, sizeof(key), "far%u", i);
		if (sp_key_partition(sp_key_hash(key, strlen(key)), PARTITIONS) % 4 == 1)
			break;
	}
	totals(&s0, &c);
	snprintf(cmd, sizeof(cmd), "incr %s 1\r\n", key);
	serve(0, frame(cmd, 81), &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 81), 1);
	assert_string_equal(reply, "SERVER_ERROR key is owned by another node\r\n");
	totals(&s1, &c);
	assert_int_equal(s1.wrong_node - s0.wrong_node, 1);
	sp_cluster_state_free(st);
}

/*
 * Swaps in (workers are not running: no grace period needed) a copy of the current table
 * whose partitions p with p % 4 == 2 are ROUTE_WORKER_NONE (all of them when all), with
 * the given unserved_status. Returns the table it replaced, to be put back.
 */
static struct route_table *
swap_unserved(bool all, uint8_t status)
{
	struct route_table *cur = atomic_load(&rt.route->current);
	size_t bytes = route_table_size(cur->partitions);
	struct route_table *u = malloc(bytes);

	assert_non_null(u);
	memcpy(u, cur, bytes);
	for (uint32_t p = 0; p < u->partitions; p++)
		if (all || p % 4 == 2)
			u->entries[p].worker = ROUTE_WORKER_NONE;
	u->unserved_status = status;
	atomic_store(&rt.route->current, u);
	return cur;
}

static void
swap_back(struct route_table *old)
{
	struct route_table *u = atomic_exchange(&rt.route->current, old);

	free(u);
}

/* Sends payload to worker 0 and checks its whole answer. */
static void
expect_answer(const char *payload, const char *want)
{
	struct dp_mc_result res;

	serve(0, frame(payload, 33), &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 33), 1);
	assert_string_equal(reply, want);
}

/*
 * Partitions nobody serves here (route.h ROUTE_UNSERVED) answer the table's status as a
 * SERVER_ERROR line, for single-key commands and for a multi-key get naming one of them
 * (never a silent miss), and never touch a store; a multi-key get naming another node's
 * key is refused the same way. Runs after test_other_node_refused (partitions 1, 5, 9, 13
 * on node 2).
 */
static void
test_unserved_answered(void **state)
{
	struct route_table *old;
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c0, c1;
	char k_none[32], k_ok[32], k_far[32], cmd[160], want[160];
	uint32_t found = 0;

	(void)state;
	k_none[0] = k_ok[0] = k_far[0] = '\0';
	for (uint32_t i = 0; i < TEST_NODE_KEY_TRIES && found != 7; i++) {
		char key[32];
		uint32_t p;

		snprintf(key, sizeof(key), "uns%u", i);
		p = sp_key_partition(sp_key_hash(key, strlen(key)), PARTITIONS);
		if (p % 4 == 2 && (found & 1) == 0) {
			strcpy(k_none, key);
			found |= 1;
		} else if (p % 4 == 0 && (found & 2) == 0) {
			strcpy(k_ok, key);
			found |= 2;
		} else if (p % 4 == 1 && (found & 4) == 0) {
			strcpy(k_far, key);
			found |= 4;
		}
	}
	assert_int_equal(found, 7);
	snprintf(cmd, sizeof(cmd), "set %s 0 0 2\r\nok\r\n", k_ok);
	run_on_owner(cmd, k_ok, "STORED\r\n");

	/* Not ready: every partition. */
	totals(&s0, &c0);
	old = swap_unserved(true, SP_BP_ST_NOT_READY);
	snprintf(cmd, sizeof(cmd), "get %s\r\n", k_ok);
	expect_answer(cmd, "SERVER_ERROR not ready\r\n");
	snprintf(cmd, sizeof(cmd), "set %s 0 0 1\r\nx\r\n", k_none);
	expect_answer(cmd, "SERVER_ERROR not ready\r\n");
	snprintf(cmd, sizeof(cmd), "get %s %s\r\n", k_ok, k_none);
	expect_answer(cmd, "SERVER_ERROR not ready\r\n");
	swap_back(old);
	totals(&s1, &c1);
	assert_int_equal(s1.unserved - s0.unserved, 3);
	assert_int_equal(c1.elsewhere_refused - c0.elsewhere_refused, 1);
	assert_int_equal(c1.get_misses - c0.get_misses, 0);
	assert_int_equal(c1.get_hits - c0.get_hits, 0);

	/* Lease lost on some partitions: the others are served as before. */
	old = swap_unserved(false, SP_BP_ST_NOT_SERVING);
	snprintf(cmd, sizeof(cmd), "delete %s\r\n", k_none);
	expect_answer(cmd, "SERVER_ERROR not serving\r\n");
	snprintf(cmd, sizeof(cmd), "gets %s %s\r\n", k_none, k_ok);
	expect_answer(cmd, "SERVER_ERROR not serving\r\n");
	snprintf(cmd, sizeof(cmd), "get %s\r\n", k_ok);
	snprintf(want, sizeof(want), "VALUE %s 0 2\r\nok\r\nEND\r\n", k_ok);
	run_on_owner(cmd, k_ok, want);
	swap_back(old);

	/* Another node's key in a multi-key get, that node unreachable (no port in the map):
	 * the whole get is an error, never a miss. */
	totals(&s0, &c0);
	snprintf(cmd, sizeof(cmd), "get %s %s\r\n", k_ok, k_far);
	{
		struct dp_mc_result res;
		struct rte_mbuf *r;
		const uint8_t *rp;
		static const char want_line[] = "SERVER_ERROR key is owned by another node\r\n";

		serve(0, frame(cmd, 34), &res);
		assert_int_equal(res.tx_count, 0);
		assert_int_equal(rt.w[0]->tx_count, 1);
		r = rt.w[0]->tx[0];
		rt.w[0]->tx_count = 0;
		rp = rte_pktmbuf_mtod(r, const uint8_t *) + NET_UDP_REPLY_HDRS;
		assert_int_equal(rte_pktmbuf_data_len(r) - NET_UDP_REPLY_HDRS,
		                 SP_MC_FRAME_BYTES + sizeof(want_line) - 1);
		assert_memory_equal(rp + SP_MC_FRAME_BYTES, want_line, sizeof(want_line) - 1);
		assert_int_equal(rp[1], 34);
		rte_pktmbuf_free(r);
	}
	totals(&s1, &c1);
	assert_int_equal(s1.gathered - s0.gathered, 1);
	assert_int_equal(c1.get_misses - c0.get_misses, 0);
}

/* ---- Forwarding (forward.h): runs after test_other_node_refused (node 2 = 10.1.2.3) -- */

#define PEER_IP   "10.1.2.3"
#define PEER_PORT 9000u

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x22};

/* A classified frame from mac/ip:sport to the node's port dport carrying payload. */
static struct rte_mbuf *
raw_frame(const uint8_t *mac, const char *ip_text, uint16_t sport, uint16_t dport,
          const uint8_t *payload, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(rt.port.pool);
	uint32_t src = inet_addr(ip_text);
	uint16_t udp_len = (uint16_t)(8 + len);
	struct net_pkt pkt;
	uint8_t *f, *ip, *udp;

	assert_non_null(m);
	f = rte_pktmbuf_mtod(m, uint8_t *);
	ip = f + NET_ETH_HDR_LEN;
	udp = ip + NET_IPV4_HDR_LEN;
	memcpy(f, rt.port.mac.addr_bytes, 6);
	memcpy(f + 6, mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, NET_IPV4_HDR_LEN);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + udp_len) >> 8);
	ip[3] = (uint8_t)(20 + udp_len);
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &rt.cfg.ip_be, 4);
	udp[0] = (uint8_t)(sport >> 8);
	udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(dport >> 8);
	udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)(udp_len >> 8);
	udp[5] = (uint8_t)udp_len;
	udp[6] = udp[7] = 0;
	memcpy(udp + 8, payload, len);
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + len);
	m->pkt_len = m->data_len;
	assert_int_equal(net_classify(&rt.net, f, m->data_len,
	                              NET_RX_IP_CSUM_GOOD | NET_RX_L4_CSUM_GOOD, &pkt),
	                 NET_UDP);
	dp_meta_of(m)->pkt = pkt;
	dp_meta_of(m)->hops = 0;
	dp_meta_of(m)->reqs = 0;
	dp_meta_of(m)->refused = 0;
	dp_meta_of(m)->kind = (uint8_t)dp_service_classify(&rt, m, &pkt);
	return m;
}

/* Takes the one frame worker w queued for TX (its forward batches sent first, as at the
 * end of a burst); checks its destination; returns it. */
static struct rte_mbuf *
take_tx(uint16_t w, const char *dst_ip, uint16_t dst_port, uint16_t src_port)
{
	struct dp_worker *wk = rt.w[w];
	struct rte_mbuf *m;
	const uint8_t *f;
	uint32_t dst = inet_addr(dst_ip);

	dp_fwd_flush(wk);
	assert_int_equal(wk->tx_count, 1);
	m = wk->tx[0];
	wk->tx_count = 0;
	f = rte_pktmbuf_mtod(m, const uint8_t *);
	assert_memory_equal(f + NET_ETH_HDR_LEN + 16, &dst, 4);
	assert_memory_equal(f + NET_ETH_HDR_LEN + 12, &rt.cfg.ip_be, 4);
	assert_int_equal((f[36] << 8) | f[37], dst_port);
	assert_int_equal((f[34] << 8) | f[35], src_port);
	return m;
}

static uint64_t
wstat(size_t offset)
{
	struct dp_worker_stats sum;

	dp_stats_sum(rt.stats, rt.workers, &sum);
	return *(const uint64_t *)((const char *)&sum + offset);
}

#define WSTAT(f) wstat(offsetof(struct dp_worker_stats, f))

/* A key of node 2 (partition % 4 == 1 after test_other_node_refused). */
static void
far_key(char *buf, size_t len, uint32_t n)
{
	uint32_t found = 0;

	for (uint32_t i = 0; i < TEST_NODE_KEY_TRIES; i++) {
		snprintf(buf, len, "fw%u", i);
		if (sp_key_partition(sp_key_hash(buf, strlen(buf)), PARTITIONS) % 4 == 1 &&
		    found++ == n)
			return;
	}
	fail();
}

/*
 * Entry side: a single-key command for node 2's key goes out to node 2's owning worker
 * in a forward message; node 2's reply is relayed to the client from the memcached port;
 * a second copy, a reply from a non-member, or from node 2's address with another MAC are
 * dropped and counted; an unanswered one times out into "owner unavailable"; a refused
 * one is placed again once, then answered.
 */
static void
test_forward_entry(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(PARTITIONS);
	char why[ROUTE_WHY_MAX];
	struct dp_mc_result res;
	struct sp_fwd_hdr h;
	char key[32], cmd[96];
	uint8_t msg[SP_BP_PAYLOAD_MAX];
	struct rte_mbuf *m, *fm;
	const uint8_t *p;

	(void)state;
	/* The two-node map again, now with node 2's port and MAC (forwarding needs both). */
	assert_int_equal(sp_cluster_state_single(st, PARTITIONS, 1, 2, "a"), 0);
	st->member_count = 2;
	st->members[1] = st->members[0];
	st->members[1].node_id = 2;
	st->members[1].ipv4_be = inet_addr(PEER_IP);
	st->members[1].binary_port = PEER_PORT;
	memcpy(st->members[1].mac, peer_mac, 6);
	memcpy(st->members[1].name, "b", 2);
	for (uint32_t q = 1; q < PARTITIONS; q += 4)
		st->map[q].node_id = 2;
	st->epoch = 9;
	assert_int_equal(route_switch(rt.route, st, why, sizeof(why)), 0);
	sp_cluster_state_free(st);
	far_key(key, sizeof(key), 0);
	uint32_t part = sp_key_partition(sp_key_hash(key, strlen(key)), PARTITIONS);
	uint16_t ow = route_owner_workers(route_current(rt.route))[part];

	/* Out: a REQUEST to 10.1.2.3:9000+worker from worker 0's binary port. */
	snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
	serve(0, frame(cmd, 41), &res);
	assert_int_equal(res.tx_count, 0);
	assert_int_equal(res.handoff_count, 0);
	fm = take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	assert_int_equal(h.kind, SP_FWD_REQUEST);
	assert_int_equal(h.proto, SP_FWD_MEMCACHED);
	assert_int_equal(h.entry_worker, 0);
	assert_int_equal(h.entry_node, 1);
	assert_true(h.epoch == 9);
	assert_int_equal(h.payload_len, SP_MC_FRAME_BYTES + strlen(cmd));
	assert_memory_equal(p + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, cmd, strlen(cmd));
	assert_int_equal(rt.w[0]->fwd.live, 1);
	rte_pktmbuf_free(fm);

	/* Back: node 2's reply datagram, relayed as it is to the client. */
	static const char value[] = "VALUE x 0 1\r\nv\r\nEND\r\n";
	h.kind = SP_FWD_REPLY;
	h.index = 0;
	h.total = 1;
	h.payload_len = (uint16_t)(SP_MC_FRAME_BYTES + sizeof(value) - 1);
	sp_fwd_encode(msg, &h);
	sp_mc_frame_encode(msg + SP_FWD_HDR_SIZE,
	                   &(struct sp_mc_frame){.request_id = 41, .seq = 0, .count = 1});
	memcpy(msg + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, value, sizeof(value) - 1);
	size_t msg_len = SP_FWD_HDR_SIZE + h.payload_len;
	uint64_t relayed = WSTAT(fwd_relayed);
	m = raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	              msg_len);
	assert_true(dp_fwd_is_message(m));
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S, m);
	fm = take_tx(0, "10.0.0.2", CLIENT_PORT, MC_PORT);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, h.payload_len);
	assert_memory_equal(p, msg + SP_FWD_HDR_SIZE, h.payload_len);
	rte_pktmbuf_free(fm);
	assert_int_equal(WSTAT(fwd_relayed), relayed + 1);
	assert_int_equal(rt.w[0]->fwd.live, 0);

	/* The same reply again (its slot is gone), from a stranger, from a wrong MAC. */
	uint64_t rej_slot = WSTAT(fwd_rej_slot), rej_member = WSTAT(fwd_rej_member);
	uint64_t rej_mac = WSTAT(fwd_rej_mac);
	static const uint8_t other_mac[6] = {0x02, 0, 0, 0, 0, 0x99};
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, PEER_PORT, rt.cfg.port_base, msg, msg_len));
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, "10.9.9.9", PEER_PORT, rt.cfg.port_base, msg, msg_len));
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(other_mac, PEER_IP, PEER_PORT, rt.cfg.port_base, msg, msg_len));
	assert_int_equal(rt.w[0]->tx_count, 0);
	assert_int_equal(WSTAT(fwd_rej_slot), rej_slot + 1);
	assert_int_equal(WSTAT(fwd_rej_member), rej_member + 1);
	assert_int_equal(WSTAT(fwd_rej_mac), rej_mac + 1);

	/* No answer: "owner unavailable" after the forward timeout, not before. */
	uint64_t timeouts = WSTAT(fwd_timeouts);
	serve(0, frame(cmd, 42), &res);
	rte_pktmbuf_free(take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base));
	dp_fwd_poll(rt.w[0]);
	assert_int_equal(rt.w[0]->tx_count, 0);
	rte_delay_ms(FWD_TIMEOUT_MS + 20);
	dp_fwd_poll(rt.w[0]);
	fm = take_tx(0, "10.0.0.2", CLIENT_PORT, MC_PORT);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_memory_equal(p + SP_MC_FRAME_BYTES, "SERVER_ERROR owner unavailable\r\n", 32);
	assert_int_equal(p[1], 42);
	rte_pktmbuf_free(fm);
	assert_int_equal(WSTAT(fwd_timeouts), timeouts + 1);

	/* Refused (the map changed under it): placed again once on our ring, then answered
	 * with an error since our map still says node 2, never forwarded a second time. */
	serve(0, frame(cmd, 43), &res);
	fm = take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	h.kind = SP_FWD_REFUSED;
	h.status = SP_BP_ST_WRONG_PARTITION;
	h.index = h.total = 0;
	sp_fwd_encode(msg, &h);
	memcpy(msg + SP_FWD_HDR_SIZE, p + SP_FWD_HDR_SIZE, h.payload_len);
	msg_len = SP_FWD_HDR_SIZE + h.payload_len;
	rte_pktmbuf_free(fm);
	uint64_t retried = WSTAT(fwd_retried);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, PEER_PORT, rt.cfg.port_base, msg, msg_len));
	assert_int_equal(WSTAT(fwd_retried), retried + 1);
	assert_int_equal(rt.w[0]->tx_count, 0);
	struct rte_mbuf *back[4];
	assert_int_equal(dp_handoff_recv(&rt.handoff, 0, back, 4), 1);
	assert_int_equal(dp_meta_of(back[0])->refused, 1);
	serve(0, back[0], &res);
	assert_int_equal(rt.w[0]->tx_count, 0);
	assert_int_equal(collect(&res, 43), 1);
	assert_string_equal(reply, "SERVER_ERROR key is owned by another node\r\n");
	assert_int_equal(rt.w[0]->fwd.live, 0);

	/* A set of node 2's key too large for a forward message (1441 bytes of payload):
	 * answered here with the reason, nothing sent to node 2. */
	static char big[1500];
	int head = snprintf(big, sizeof(big), "set %s 0 0 %d\r\n", key, 0);
	size_t vlen = SP_FWD_PAYLOAD_MAX + 1 - SP_MC_FRAME_BYTES - (size_t)head - 2 - 3;
	head = snprintf(big, sizeof(big), "set %s 0 0 %zu\r\n", key, vlen);
	memset(big + head, 'z', vlen);
	memcpy(big + head + vlen, "\r\n", 3);
	assert_int_equal(SP_MC_FRAME_BYTES + strlen(big), SP_FWD_PAYLOAD_MAX + 1);
	uint64_t too_big = WSTAT(fwd_too_big);
	serve(0, frame(big, 44), &res);
	assert_int_equal(WSTAT(fwd_too_big), too_big + 1);
	dp_fwd_flush(rt.w[0]);
	assert_int_equal(rt.w[0]->tx_count, 0);
	assert_int_equal(collect(&res, 44), 1);
	assert_string_equal(
	        reply, "SERVER_ERROR request too large to forward; send it to the key's owner\r\n");
}

/*
 * Owner side: node 2 forwards a command for a key this node owns: it runs here and the
 * reply goes back to node 2 in a REPLY naming node 2's slot; one for a key this node does
 * not own is refused with the request in it; one whose sender is not the node it claims is
 * dropped.
 */
static void
test_forward_owner(void **state)
{
	struct sp_fwd_hdr h = {.kind = SP_FWD_REQUEST,
	                       .proto = SP_FWD_MEMCACHED,
	                       .entry_worker = 3,
	                       .slot = 17,
	                       .tag = 99,
	                       .entry_node = 2,
	                       .epoch = 9};
	uint8_t msg[SP_BP_PAYLOAD_MAX];
	struct sp_fwd_hdr got;
	char near[32], far[32], cmd[96];
	struct rte_mbuf *fm;
	const uint8_t *p;
	size_t n;

	(void)state;
	key_of(near, sizeof(near), "own", 0, 0);
	far_key(far, sizeof(far), 1);
	/* A set of our key, run here, answered back to node 2. */
	snprintf(cmd, sizeof(cmd), "set %s 0 0 2\r\nhi\r\n", near);
	n = strlen(cmd);
	h.payload_len = (uint16_t)(SP_MC_FRAME_BYTES + n);
	sp_fwd_encode(msg, &h);
	sp_mc_frame_encode(msg + SP_FWD_HDR_SIZE,
	                   &(struct sp_mc_frame){.request_id = 5, .seq = 0, .count = 1});
	memcpy(msg + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, cmd, n);
	uint64_t in = WSTAT(fwd_in);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, 9003, rt.cfg.port_base, msg,
	                       SP_FWD_HDR_SIZE + h.payload_len));
	fm = take_tx(0, PEER_IP, 9003, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &got), 0);
	assert_int_equal(got.kind, SP_FWD_REPLY);
	assert_int_equal(got.index, 0);
	assert_int_equal(got.total, 1);
	assert_int_equal(got.slot, 17);
	assert_int_equal(got.tag, 99);
	assert_int_equal(got.entry_worker, 3);
	assert_int_equal(got.payload_len, SP_MC_FRAME_BYTES + 8);
	assert_memory_equal(p + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, "STORED\r\n", 8);
	assert_int_equal(p[SP_FWD_HDR_SIZE + 1], 5); /* the client's request id */
	rte_pktmbuf_free(fm);
	assert_int_equal(WSTAT(fwd_in), in + 1);

	/* Node 2's own key comes back refused, request included. */
	snprintf(cmd, sizeof(cmd), "get %s\r\n", far);
	n = strlen(cmd);
	h.payload_len = (uint16_t)(SP_MC_FRAME_BYTES + n);
	sp_fwd_encode(msg, &h);
	memcpy(msg + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, cmd, n);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, 9003, rt.cfg.port_base, msg,
	                       SP_FWD_HDR_SIZE + h.payload_len));
	fm = take_tx(0, PEER_IP, 9003, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &got), 0);
	assert_int_equal(got.kind, SP_FWD_REFUSED);
	assert_int_equal(got.status, SP_BP_ST_WRONG_PARTITION);
	assert_memory_equal(p + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, cmd, n);
	rte_pktmbuf_free(fm);

	/* A sender claiming to be node 7: dropped, nothing runs. */
	h.entry_node = 7;
	sp_fwd_encode(msg, &h);
	uint64_t rej = WSTAT(fwd_rej_member);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, 9003, rt.cfg.port_base, msg,
	                       SP_FWD_HDR_SIZE + h.payload_len));
	assert_int_equal(rt.w[0]->tx_count, 0);
	assert_int_equal(WSTAT(fwd_rej_member), rej + 1);
}

/* Joins the data of every frame worker w queued for the client (frame headers dropped). */
static size_t
take_client_text(uint16_t w, uint16_t request_id, char *out, size_t cap)
{
	struct dp_worker *wk = rt.w[w];
	size_t at = 0;

	for (uint32_t i = 0; i < wk->tx_count; i++) {
		struct rte_mbuf *m = wk->tx[i];
		const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
		size_t n = rte_pktmbuf_data_len(m) - NET_UDP_REPLY_HDRS - SP_MC_FRAME_BYTES;

		assert_int_equal((f[36] << 8) | f[37], CLIENT_PORT);
		assert_int_equal((f[34] << 8) | f[35], MC_PORT);
		assert_int_equal((f[42] << 8) | f[43], request_id);
		assert_true(at + n < cap);
		memcpy(out + at, f + NET_UDP_REPLY_HDRS + SP_MC_FRAME_BYTES, n);
		at += n;
		rte_pktmbuf_free(m);
	}
	wk->tx_count = 0;
	out[at] = '\0';
	return at;
}

/*
 * A multi-key get naming keys of this node and of node 2: node 2 gets one request for its
 * keys only; the answer goes to the client in the request's key order once node 2's reply
 * is in (a repeated key, a miss); without node 2's reply, "owner unavailable" after the
 * timeout, never a partial answer. Runs after test_forward_entry (node 2 reachable).
 */
static void
test_gather_multi_get(void **state)
{
	char near[32], far[32], far2[32], cmd[160], want[256], text[1024];
	uint8_t msg[SP_BP_PAYLOAD_MAX];
	struct dp_mc_result res;
	struct sp_fwd_hdr h;
	struct rte_mbuf *fm;
	const uint8_t *p;

	(void)state;
	key_of(near, sizeof(near), "gnear", 0, 0);
	far_key(far, sizeof(far), 3);
	far_key(far2, sizeof(far2), 4);
	snprintf(cmd, sizeof(cmd), "set %s 3 0 2\r\nnv\r\n", near);
	run_on_owner(cmd, near, "STORED\r\n");
	snprintf(cmd, sizeof(cmd), "get %s %s missing0 %s %s\r\n", far, near, far2, near);
	serve(0, frame(cmd, 51), &res);
	assert_int_equal(res.tx_count, 0);
	/* One request to node 2, for its keys in order; the gather waits. */
	uint16_t ow = route_owner_workers(route_current(
	        rt.route))[sp_key_partition(sp_key_hash(far, strlen(far)), PARTITIONS)];
	fm = take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	snprintf(want, sizeof(want), "get %s %s\r\n", far, far2);
	assert_int_equal(h.payload_len, SP_MC_FRAME_BYTES + strlen(want));
	assert_memory_equal(p + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, want, strlen(want));
	rte_pktmbuf_free(fm);
	/* Node 2 answers in two datagrams, sent out of order. */
	char r0[128], r1[128];
	snprintf(r0, sizeof(r0), "VALUE %s 7 1\r\nx\r\n", far);
	snprintf(r1, sizeof(r1), "END\r\n"); /* far2 missed */
	for (int pass = 1; pass >= 0; pass--) {
		const char *body = pass == 0 ? r0 : r1;
		size_t n = strlen(body);

		h.kind = SP_FWD_REPLY;
		h.index = (uint8_t)pass;
		h.total = 2;
		h.payload_len = (uint16_t)(SP_MC_FRAME_BYTES + n);
		sp_fwd_encode(msg, &h);
		sp_mc_frame_encode(msg + SP_FWD_HDR_SIZE,
		                   &(struct sp_mc_frame){.request_id = 51, .seq = 0, .count = 1});
		memcpy(msg + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, body, n);
		dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
		             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow),
		                       rt.cfg.port_base, msg, SP_FWD_HDR_SIZE + h.payload_len));
		if (pass == 1)
			assert_int_equal(rt.w[0]->tx_count, 0); /* not before the last part */
	}
	take_client_text(0, 51, text, sizeof(text));
	snprintf(want, sizeof(want),
	         "VALUE %s 7 1\r\nx\r\nVALUE %s 3 2\r\nnv\r\nVALUE %s 3 2\r\nnv\r\nEND\r\n", far,
	         near, near);
	assert_string_equal(text, want);
	assert_int_equal(rt.w[0]->fwd.live, 0);

	/* Node 2 silent: one error line after the timeout, and nothing before. */
	snprintf(cmd, sizeof(cmd), "gets %s %s\r\n", near, far);
	serve(0, frame(cmd, 52), &res);
	rte_pktmbuf_free(take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base));
	dp_fwd_poll(rt.w[0]);
	assert_int_equal(rt.w[0]->tx_count, 0);
	rte_delay_ms(FWD_TIMEOUT_MS + 20);
	dp_fwd_poll(rt.w[0]);
	take_client_text(0, 52, text, sizeof(text));
	assert_string_equal(text, "SERVER_ERROR owner unavailable\r\n");
	assert_int_equal(rt.w[0]->fwd.live, 0);
}

/*
 * Binary protocol forwarding (the FORWARD flag), both sides on worker 0 with the two-node
 * map of test_forward_entry: as the entry, two GETs of node 2's keys go out in one
 * message, node 2's reply datagram is relayed as it is to the client's port, and a request
 * left without a reply is answered UNAVAILABLE after the timeout; as the owner, node 2's
 * message is run here (a key of ours) or refused per request (WRONG_PARTITION naming the
 * owner, for node 2's own key), and the replies go back in one REPLY.
 */
static void
test_forward_binary(void **state)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX], msg[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req q[3], dec[SP_BP_REQS_MAX];
	struct sp_bp_reply reps[SP_BP_REQS_MAX];
	const struct sp_bp_req *grp[2];
	char far0[32], far1[32], near[32];
	struct sp_bp_builder b;
	struct sp_bp_dgram dg;
	struct sp_fwd_hdr h;
	struct rte_mbuf *cm, *fm;
	const uint8_t *p;
	uint32_t len;

	(void)state;
	far_key(far0, sizeof(far0), 5);
	far_key(far1, sizeof(far1), 6);
	key_of(near, sizeof(near), "bnear", 0, 0);
	uint32_t part = sp_key_partition(sp_key_hash(far0, strlen(far0)), PARTITIONS);
	uint16_t ow = route_owner_workers(route_current(rt.route))[part];
	uint32_t part1 = sp_key_partition(sp_key_hash(far1, strlen(far1)), PARTITIONS);
	assert_int_equal(route_owner_workers(route_current(rt.route))[part1], ow);

	/* The client's datagram: two GETs of node 2's keys, FORWARD set. */
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 777);
	sp_bp_builder_set_flags(&b, SP_BP_F_FORWARD);
	memset(q, 0, sizeof(q));
	q[0] = (struct sp_bp_req){.opcode = SP_BP_OP_GET,
	                          .request_id = 10,
	                          .key = (const uint8_t *)far0,
	                          .key_len = (uint16_t)strlen(far0)};
	q[1] = (struct sp_bp_req){.opcode = SP_BP_OP_GET,
	                          .request_id = 11,
	                          .key = (const uint8_t *)far1,
	                          .key_len = (uint16_t)strlen(far1)};
	assert_int_equal(sp_bp_add_request(&b, &q[0]), 0);
	assert_int_equal(sp_bp_add_request(&b, &q[1]), 0);
	len = sp_bp_builder_finish(&b);
	cm = raw_frame((const uint8_t[6]){0x02, 2, 2, 2, 2, 2}, "10.0.0.2", CLIENT_PORT,
	               rt.cfg.port_base, buf, len);
	assert_int_equal(sp_bp_decode_requests(rte_pktmbuf_mtod(cm, uint8_t *) + NET_UDP_REPLY_HDRS,
	                                       len, PARTITIONS, dec, SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	grp[0] = &dec[0];
	grp[1] = &dec[1];
	assert_int_equal(
	        dp_fwd_bp_request(rt.w[0], route_current(rt.route), cm, 777, grp, 2, 1, ow),
	        DP_FWD_SENT);
	rte_pktmbuf_free(cm);
	fm = take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	assert_int_equal(h.proto, SP_FWD_BINARY);
	assert_int_equal(sp_bp_decode_requests(p + SP_FWD_HDR_SIZE, h.payload_len, PARTITIONS, dec,
	                                       SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	assert_int_equal(dg.count, 2);
	assert_true(dg.datagram_id == 777);
	assert_int_equal(dec[1].request_id, 11);
	rte_pktmbuf_free(fm);

	/* Node 2 answers request 10 only: relayed as it is; 11 times out into UNAVAILABLE. */
	sp_bp_builder_init(&b, msg + SP_FWD_HDR_SIZE, SP_FWD_PAYLOAD_MAX, true, 777);
	uint8_t *v = sp_bp_add_reply(&b, 10, SP_BP_OP_GET, SP_BP_ST_OK, 5, 0, 3);
	memcpy(v, "abc", 3);
	h.kind = SP_FWD_REPLY;
	h.index = 0;
	h.total = 1;
	h.payload_len = (uint16_t)sp_bp_builder_finish(&b);
	sp_fwd_encode(msg, &h);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	                       SP_FWD_HDR_SIZE + h.payload_len));
	fm = take_tx(0, "10.0.0.2", CLIENT_PORT, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_bp_decode_replies(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS,
	                                      reps, SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	assert_int_equal(dg.count, 1);
	assert_int_equal(reps[0].request_id, 10);
	assert_memory_equal(reps[0].value, "abc", 3);
	rte_pktmbuf_free(fm);
	assert_int_equal(rt.w[0]->fwd.live, 1);
	rte_delay_ms(FWD_TIMEOUT_MS + 20);
	dp_fwd_poll(rt.w[0]);
	fm = take_tx(0, "10.0.0.2", CLIENT_PORT, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_bp_decode_replies(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS,
	                                      reps, SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	assert_int_equal(dg.count, 1);
	assert_int_equal(reps[0].request_id, 11);
	assert_int_equal(reps[0].status, SP_BP_ST_UNAVAILABLE);
	rte_pktmbuf_free(fm);
	assert_int_equal(rt.w[0]->fwd.live, 0);

	/* Owner side: node 2 forwards a SET of our key and a GET of its own. */
	sp_bp_builder_init(&b, msg + SP_FWD_HDR_SIZE, SP_FWD_PAYLOAD_MAX, false, 99);
	q[2] = (struct sp_bp_req){.opcode = SP_BP_OP_SET,
	                          .request_id = 20,
	                          .key = (const uint8_t *)near,
	                          .key_len = (uint16_t)strlen(near),
	                          .value = (const uint8_t *)"xy",
	                          .value_len = 2};
	assert_int_equal(sp_bp_add_request(&b, &q[2]), 0);
	q[0].request_id = 21;
	assert_int_equal(sp_bp_add_request(&b, &q[0]), 0);
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_BINARY,
	                        .entry_worker = 0,
	                        .slot = 3,
	                        .tag = 4,
	                        .entry_node = 2,
	                        .epoch = 9,
	                        .payload_len = (uint16_t)sp_bp_builder_finish(&b)};
	sp_fwd_encode(msg, &h);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, 9001, rt.cfg.port_base, msg,
	                       SP_FWD_HDR_SIZE + h.payload_len));
	/* Back in one datagram: a REPLY for the SET, then the GET REFUSED, its record in it. */
	fm = take_tx(0, PEER_IP, 9001, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	size_t off = 0, flen = rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS;
	uint32_t count = 0;
	assert_int_equal(sp_fwd_next(p, flen, &off, &count, &h), 1);
	assert_int_equal(h.kind, SP_FWD_REPLY);
	assert_int_equal(h.total, 1);
	assert_int_equal(h.slot, 3);
	assert_int_equal(sp_bp_decode_replies(p + off - h.payload_len, h.payload_len, reps,
	                                      SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	assert_int_equal(dg.count, 1);
	assert_int_equal(reps[0].request_id, 20);
	assert_int_equal(reps[0].status, SP_BP_ST_OK);
	assert_int_equal(sp_fwd_next(p, flen, &off, &count, &h), 1);
	assert_int_equal(h.kind, SP_FWD_REFUSED);
	assert_int_equal(h.status, SP_BP_ST_WRONG_PARTITION);
	assert_int_equal(h.slot, 3);
	assert_int_equal(sp_bp_decode_requests(p + off - h.payload_len, h.payload_len, PARTITIONS,
	                                       dec, SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	assert_int_equal(dg.count, 1);
	assert_true(dg.datagram_id == 99);
	assert_int_equal(dec[0].request_id, 21);
	assert_int_equal(dec[0].key_len, strlen(far0));
	assert_int_equal(sp_fwd_next(p, flen, &off, &count, &h), 0);
	rte_pktmbuf_free(fm);
}

/*
 * Entry side of a binary refusal: node 2 answers one of two forwarded GETs and refuses the
 * other (its map moved): the answered one is relayed, the refused one is placed again once
 * on this worker's ring as the client's datagram (refused: never forwarded again) and the
 * slot is done; a refusal naming a request that is not waiting is dropped as malformed.
 */
static void
test_forward_binary_refused(void **state)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX], msg[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req q[2], dec[SP_BP_REQS_MAX];
	const struct sp_bp_req *grp[2];
	char far0[32], far1[32];
	struct sp_bp_builder b;
	struct sp_bp_dgram dg;
	struct sp_fwd_hdr h, h1;
	struct rte_mbuf *cm, *fm, *back[4];
	const uint8_t *p;
	size_t mlen = 0;
	uint32_t len;

	(void)state;
	far_key(far0, sizeof(far0), 5);
	far_key(far1, sizeof(far1), 6);
	uint16_t ow = route_owner_workers(route_current(
	        rt.route))[sp_key_partition(sp_key_hash(far0, strlen(far0)), PARTITIONS)];
	sp_bp_builder_init(&b, buf, sizeof(buf), false, 888);
	sp_bp_builder_set_flags(&b, SP_BP_F_FORWARD);
	q[0] = (struct sp_bp_req){.opcode = SP_BP_OP_GET,
	                          .request_id = 30,
	                          .key = (const uint8_t *)far0,
	                          .key_len = (uint16_t)strlen(far0)};
	q[1] = (struct sp_bp_req){.opcode = SP_BP_OP_GET,
	                          .request_id = 31,
	                          .key = (const uint8_t *)far1,
	                          .key_len = (uint16_t)strlen(far1)};
	assert_int_equal(sp_bp_add_request(&b, &q[0]), 0);
	assert_int_equal(sp_bp_add_request(&b, &q[1]), 0);
	len = sp_bp_builder_finish(&b);
	cm = raw_frame((const uint8_t[6]){0x02, 2, 2, 2, 2, 2}, "10.0.0.2", CLIENT_PORT,
	               rt.cfg.port_base, buf, len);
	assert_int_equal(sp_bp_decode_requests(rte_pktmbuf_mtod(cm, uint8_t *) + NET_UDP_REPLY_HDRS,
	                                       len, PARTITIONS, dec, SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	grp[0] = &dec[0];
	grp[1] = &dec[1];
	assert_int_equal(
	        dp_fwd_bp_request(rt.w[0], route_current(rt.route), cm, 888, grp, 2, 1, ow),
	        DP_FWD_SENT);
	rte_pktmbuf_free(cm);
	fm = take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	assert_int_equal(sp_bp_decode_requests(p + SP_FWD_HDR_SIZE, h.payload_len, PARTITIONS, dec,
	                                       SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	/* Node 2's answer, one datagram of two messages: 30 found, 31 refused. */
	h1 = h;
	h1.kind = SP_FWD_REPLY;
	h1.index = 0;
	h1.total = 1;
	sp_bp_builder_init(&b, msg + SP_FWD_HDR_SIZE, SP_FWD_PAYLOAD_MAX, true, 888);
	memcpy(sp_bp_add_reply(&b, 30, SP_BP_OP_GET, SP_BP_ST_OK, 1, 0, 2), "ok", 2);
	h1.payload_len = (uint16_t)sp_bp_builder_finish(&b);
	sp_fwd_encode(msg, &h1);
	mlen = SP_FWD_HDR_SIZE + h1.payload_len;
	h1.kind = SP_FWD_REFUSED;
	h1.status = SP_BP_ST_WRONG_PARTITION;
	h1.total = 0;
	sp_bp_builder_init(&b, msg + mlen + SP_FWD_HDR_SIZE, SP_FWD_PAYLOAD_MAX, false, 888);
	assert_int_equal(sp_bp_add_record(&b, &dec[1]), 0);
	h1.payload_len = (uint16_t)sp_bp_builder_finish(&b);
	sp_fwd_encode(msg + mlen, &h1);
	mlen += SP_FWD_HDR_SIZE + h1.payload_len;
	rte_pktmbuf_free(fm);
	uint64_t retried = WSTAT(fwd_retried), relayed = WSTAT(fwd_relayed);
	uint64_t frames_in = WSTAT(fwd_frames_in);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	                       mlen));
	assert_int_equal(WSTAT(fwd_frames_in), frames_in + 1);
	assert_int_equal(WSTAT(fwd_relayed), relayed + 1);
	assert_int_equal(WSTAT(fwd_retried), retried + 1);
	assert_int_equal(rt.w[0]->fwd.live, 0);
	fm = take_tx(0, "10.0.0.2", CLIENT_PORT, rt.cfg.port_base);
	rte_pktmbuf_free(fm);
	assert_int_equal(dp_handoff_recv(&rt.handoff, 0, back, 4), 1);
	assert_int_equal(dp_meta_of(back[0])->refused, 1);
	assert_int_equal(dp_meta_of(back[0])->pkt.src_port, CLIENT_PORT);
	assert_int_equal(dp_meta_of(back[0])->pkt.dst_port, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(back[0], const uint8_t *) + dp_meta_of(back[0])->pkt.payload_off;
	assert_int_equal(sp_bp_decode_requests(p, dp_meta_of(back[0])->pkt.payload_len, PARTITIONS,
	                                       dec, SP_BP_REQS_MAX, &dg),
	                 SP_BP_ERR_OK);
	assert_int_equal(dg.count, 1);
	assert_true(dg.datagram_id == 888);
	assert_int_equal(dec[0].request_id, 31);
	rte_pktmbuf_free(back[0]);
	/* The same datagram again: its slot is gone. */
	uint64_t rej_slot = WSTAT(fwd_rej_slot);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	                       mlen));
	assert_int_equal(WSTAT(fwd_rej_slot), rej_slot + 2);
	assert_int_equal(rt.w[0]->tx_count, 0);

	/* Owner side: a forwarded GET of a value too large for a forward message (1410 bytes:
	 * a client datagram carries up to 1432) is answered TOO_BIG, not dropped. */
	static uint8_t big[1410];
	char near[32];
	uint64_t cas = 0;
	key_of(near, sizeof(near), "bigv", 0, 0);
	uint32_t np = sp_key_partition(sp_key_hash(near, strlen(near)), PARTITIONS);
	struct store_key sk = {.data = near,
	                       .len = (uint32_t)strlen(near),
	                       .hash = sp_key_hash(near, strlen(near))};
	memset(big, 'b', sizeof(big));
	assert_int_equal(store_set(rt.stores[np], STORE_SET, &sk,
	                           &(struct store_write){.value = big, .value_len = sizeof(big)},
	                           NOW_S, &cas),
	                 0);
	q[0] = (struct sp_bp_req){.opcode = SP_BP_OP_GET,
	                          .request_id = 40,
	                          .key = (const uint8_t *)near,
	                          .key_len = (uint16_t)strlen(near)};
	sp_bp_builder_init(&b, msg + SP_FWD_HDR_SIZE, SP_FWD_PAYLOAD_MAX, false, 41);
	assert_int_equal(sp_bp_add_request(&b, &q[0]), 0);
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_BINARY,
	                        .entry_worker = 0,
	                        .slot = 5,
	                        .tag = 6,
	                        .entry_node = 2,
	                        .epoch = 9,
	                        .payload_len = (uint16_t)sp_bp_builder_finish(&b)};
	sp_fwd_encode(msg, &h);
	uint64_t too_big = WSTAT(fwd_too_big);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, 9001, rt.cfg.port_base, msg,
	                       SP_FWD_HDR_SIZE + h.payload_len));
	assert_int_equal(WSTAT(fwd_too_big), too_big + 1);
	fm = take_tx(0, PEER_IP, 9001, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	assert_int_equal(h.kind, SP_FWD_REPLY);
	struct sp_bp_reply reps[SP_BP_REQS_MAX];
	assert_int_equal(
	        sp_bp_decode_replies(p + SP_FWD_HDR_SIZE, h.payload_len, reps, SP_BP_REQS_MAX, &dg),
	        SP_BP_ERR_OK);
	assert_int_equal(dg.count, 1);
	assert_int_equal(reps[0].request_id, 40);
	assert_int_equal(reps[0].status, SP_BP_ST_TOO_BIG);
	rte_pktmbuf_free(fm);
}

/*
 * Batching: three memcached GETs of node 2's keys (one owning worker) served in one burst
 * leave in one datagram of three REQUEST messages, each its client's request as it came;
 * node 2's three replies, one datagram back in another order, reach each client with its
 * own request id and value. Forged datagrams: a good message then a bad header (the first
 * stands, the rest is dropped, counted once), an answer for another worker's slot inside a
 * batch (fwd_rej_slot), SP_FWD_BATCH_MAX + 1 messages (malformed after the bound).
 */
static void
test_forward_batch(void **state)
{
	static const char *values[3] = {"one", "two2", "three"};
	uint8_t msg[SP_BP_PAYLOAD_MAX];
	struct dp_mc_result res;
	struct sp_fwd_hdr h, got[3];
	char key[3][32], cmd[128], text[256];
	uint32_t count = 0, parts[3];
	struct rte_mbuf *fm;
	const uint8_t *p;
	size_t off = 0, flen, mlen = 0;
	uint16_t ow = 0;

	(void)state;
	/* Three keys of node 2 whose partitions one worker owns. */
	for (uint32_t i = 0, k = 0; k < 3; i++) {
		far_key(key[k], sizeof(key[k]), 10 + i);
		parts[k] = sp_key_partition(sp_key_hash(key[k], strlen(key[k])), PARTITIONS);
		uint16_t o = route_owner_workers(route_current(rt.route))[parts[k]];
		if (k == 0)
			ow = o;
		if (o == ow)
			k++;
	}
	uint64_t frames = WSTAT(fwd_frames_out), msgs = WSTAT(fwd_msgs_out);
	for (uint32_t k = 0; k < 3; k++) {
		snprintf(cmd, sizeof(cmd), "get %s\r\n", key[k]);
		serve(0, frame(cmd, (uint16_t)(61 + k)), &res);
		assert_int_equal(res.tx_count, 0);
	}
	assert_int_equal(rt.w[0]->tx_count, 0); /* batched until the burst ends */
	assert_int_equal(rt.w[0]->fwd.live, 3);
	fm = take_tx(0, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base);
	assert_int_equal(WSTAT(fwd_frames_out), frames + 1);
	assert_int_equal(WSTAT(fwd_msgs_out), msgs + 3);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	flen = rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS;
	for (uint32_t k = 0; k < 3; k++) {
		assert_int_equal(sp_fwd_next(p, flen, &off, &count, &got[k]), 1);
		assert_int_equal(got[k].kind, SP_FWD_REQUEST);
		snprintf(cmd, sizeof(cmd), "get %s\r\n", key[k]);
		assert_int_equal(got[k].payload_len, SP_MC_FRAME_BYTES + strlen(cmd));
		assert_memory_equal(p + off - strlen(cmd), cmd, strlen(cmd));
		assert_int_equal(p[off - got[k].payload_len + 1], 61 + k);
	}
	assert_int_equal(sp_fwd_next(p, flen, &off, &count, &h), 0);
	rte_pktmbuf_free(fm);
	/* The replies, 2, 0, 1, in one datagram. */
	for (uint32_t j = 0; j < 3; j++) {
		uint32_t k = (j + 2) % 3;
		int n = snprintf(text, sizeof(text), "VALUE %s 0 %zu\r\n%s\r\nEND\r\n", key[k],
		                 strlen(values[k]), values[k]);

		h = got[k];
		h.kind = SP_FWD_REPLY;
		h.index = 0;
		h.total = 1;
		h.payload_len = (uint16_t)(SP_MC_FRAME_BYTES + (size_t)n);
		sp_fwd_encode(msg + mlen, &h);
		sp_mc_frame_encode(
		        msg + mlen + SP_FWD_HDR_SIZE,
		        &(struct sp_mc_frame){.request_id = (uint16_t)(61 + k), .count = 1});
		memcpy(msg + mlen + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, text, (size_t)n);
		mlen += SP_FWD_HDR_SIZE + h.payload_len;
	}
	uint64_t relayed = WSTAT(fwd_relayed);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	                       mlen));
	assert_int_equal(WSTAT(fwd_relayed), relayed + 3);
	assert_int_equal(rt.w[0]->fwd.live, 0);
	assert_int_equal(rt.w[0]->tx_count, 3);
	for (uint32_t j = 0; j < 3; j++) {
		struct rte_mbuf *m = rt.w[0]->tx[j];
		const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
		uint32_t k = (j + 2) % 3;
		int n = snprintf(text, sizeof(text), "VALUE %s 0 %zu\r\n%s\r\nEND\r\n", key[k],
		                 strlen(values[k]), values[k]);

		assert_int_equal((f[36] << 8) | f[37], CLIENT_PORT);
		assert_int_equal((f[34] << 8) | f[35], MC_PORT);
		assert_int_equal((f[42] << 8) | f[43], 61 + k);
		assert_int_equal(rte_pktmbuf_data_len(m),
		                 NET_UDP_REPLY_HDRS + SP_MC_FRAME_BYTES + (size_t)n);
		assert_memory_equal(f + NET_UDP_REPLY_HDRS + SP_MC_FRAME_BYTES, text, (size_t)n);
		rte_pktmbuf_free(m);
	}
	rt.w[0]->tx_count = 0;

	/* Forged: one good request of ours, then a header with a bad kind. */
	char near[32];
	key_of(near, sizeof(near), "bnear", 0, 1);
	snprintf(cmd, sizeof(cmd), "get %s\r\n", near);
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = 0,
	                        .slot = 9,
	                        .tag = 9,
	                        .entry_node = 2,
	                        .epoch = 9,
	                        .payload_len = (uint16_t)(SP_MC_FRAME_BYTES + strlen(cmd))};
	sp_fwd_encode(msg, &h);
	sp_mc_frame_encode(msg + SP_FWD_HDR_SIZE,
	                   &(struct sp_mc_frame){.request_id = 7, .count = 1});
	memcpy(msg + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES, cmd, strlen(cmd));
	mlen = SP_FWD_HDR_SIZE + h.payload_len;
	sp_fwd_encode(msg + mlen, &h);
	msg[mlen + 3] = 7; /* kind */
	memcpy(msg + mlen + SP_FWD_HDR_SIZE, msg + SP_FWD_HDR_SIZE, h.payload_len);
	uint64_t mal = WSTAT(fwd_rej_malformed), in = WSTAT(fwd_in);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, 9005, rt.cfg.port_base, msg, 2 * mlen));
	assert_int_equal(WSTAT(fwd_rej_malformed), mal + 1);
	assert_int_equal(WSTAT(fwd_in), in + 1);
	fm = take_tx(0, PEER_IP, 9005, rt.cfg.port_base);
	p = rte_pktmbuf_mtod(fm, const uint8_t *) + NET_UDP_REPLY_HDRS;
	assert_int_equal(sp_fwd_decode(p, rte_pktmbuf_data_len(fm) - NET_UDP_REPLY_HDRS, &h), 0);
	assert_int_equal(h.kind, SP_FWD_REPLY);
	assert_int_equal(h.slot, 9);
	rte_pktmbuf_free(fm);

	/* Forged: the bound: SP_FWD_BATCH_MAX + 1 bare REFUSED messages for slots of ours
	 * (none in flight): each past the bound is not even looked at. */
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REFUSED,
	                        .proto = SP_FWD_MEMCACHED,
	                        .status = SP_BP_ST_WRONG_PARTITION,
	                        .entry_worker = 0,
	                        .slot = 1,
	                        .tag = 1,
	                        .entry_node = 2,
	                        .epoch = 9};
	SP_STATIC_ASSERT((SP_FWD_BATCH_MAX + 1) * SP_FWD_HDR_SIZE <= SP_BP_PAYLOAD_MAX,
	                 "the bound is reachable in one datagram");
	for (uint32_t i = 0; i <= SP_FWD_BATCH_MAX; i++)
		sp_fwd_encode(msg + i * SP_FWD_HDR_SIZE, &h);
	uint64_t rej_slot = WSTAT(fwd_rej_slot);
	mal = WSTAT(fwd_rej_malformed);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	                       (SP_FWD_BATCH_MAX + 1) * SP_FWD_HDR_SIZE));
	assert_int_equal(WSTAT(fwd_rej_slot), rej_slot + SP_FWD_BATCH_MAX);
	assert_int_equal(WSTAT(fwd_rej_malformed), mal + 1);
	/* Forged: inside a batch for worker 0, an answer naming worker 1's slot. */
	h.entry_worker = 1;
	sp_fwd_encode(msg + SP_FWD_HDR_SIZE, &h);
	rej_slot = WSTAT(fwd_rej_slot);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow), rt.cfg.port_base, msg,
	                       2 * SP_FWD_HDR_SIZE));
	assert_int_equal(WSTAT(fwd_rej_slot), rej_slot + 2);
	assert_int_equal(rt.w[0]->tx_count, 0);

	/* A datagram sent to worker 1's port that reached worker 0's queue is handed to worker
	 * 1 whole, whatever its messages; one to a port past the workers is dropped. */
	assert_true(rt.workers >= 2);
	uint16_t staged = rt.w[0]->out_count[1];
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow),
	                       (uint16_t)(rt.cfg.port_base + 1), msg, 2 * SP_FWD_HDR_SIZE));
	assert_int_equal(rt.w[0]->out_count[1], staged + 1);
	rte_pktmbuf_free(rt.w[0]->out[1][staged]);
	rt.w[0]->out_count[1] = staged;
	rej_slot = WSTAT(fwd_rej_slot);
	dp_fwd_input(rt.w[0], route_current(rt.route), NOW_S,
	             raw_frame(peer_mac, PEER_IP, (uint16_t)(PEER_PORT + ow),
	                       (uint16_t)(rt.cfg.port_base + rt.workers), msg,
	                       2 * SP_FWD_HDR_SIZE));
	assert_int_equal(WSTAT(fwd_rej_slot), rej_slot + 1);
	assert_int_equal(rt.w[0]->tx_count, 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_owner_handoff),
	        cmocka_unit_test(test_hops_and_ring_full_answer_busy),
	        cmocka_unit_test(test_multi_get_runs_here),
	        cmocka_unit_test(test_flush_all_reaches_other_worker),
	        cmocka_unit_test(test_gat_touch_bound),
	        cmocka_unit_test(test_forged_message_refused),
	        cmocka_unit_test(test_reply_array_bound),
	        cmocka_unit_test(test_dry_pool_counted),
	        cmocka_unit_test(test_stats_sum_and_reset),
	        cmocka_unit_test(test_other_node_refused),
	        cmocka_unit_test(test_unserved_answered),
	        cmocka_unit_test(test_forward_entry),
	        cmocka_unit_test(test_forward_owner),
	        cmocka_unit_test(test_gather_multi_get),
	        cmocka_unit_test(test_forward_binary),
	        cmocka_unit_test(test_forward_binary_refused),
	        cmocka_unit_test(test_forward_batch),
	};
	(void)argc;
	if (test_eal_start("test_mcport", argv[0]) != 0)
		return 1;
	if (test_node_config("tm_node", PARTITIONS, &rt.cfg) != 0)
		return 1;
	rt.cfg.memcached_port = MC_PORT;
	rt.cfg.forward_timeout_ms = FWD_TIMEOUT_MS;
	rt.stats = worker_stats;
	return test_node_run("test_mcport", &rt, tests, SP_ARRAY_SIZE(tests), test_node_has_mc);
}
