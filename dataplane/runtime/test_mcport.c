/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mcport on a real node (EAL --no-huge, net_ring, 2 workers that are not launched): the
 * test plays each worker in turn and calls dp_mc_serve() the way its loop would, so every
 * placement, hand-off, reply frame and bound is checked deterministically:
 *   single-key commands go to the owner, multi-key gets run where they arrive, reply
 *   headers answer the request, flush_all reaches the other worker, gat touches travel to
 *   their owner (at most DP_MC_TOUCH_FORWARD_MAX per datagram), the reply array holds
 *   DP_MC_REPLY_DGRAMS_MAX datagrams, the hop bound and the ring-full fallback run a
 *   datagram where it is, forged messages are refused, and stats sum both workers.
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

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "cluster/partmap.h"
#include "common/keyhash.h"
#include "mcport.h"
#include "node.h"
#include "test_eal.h"
#include "worker.h"

#define MC_PORT     11211u
#define CLIENT_PORT 40000u
#define PARTITIONS  16u
#define NOW_S       10u
#define REPLY_MAX   (DP_MC_REPLY_DGRAMS_MAX * SP_MC_DGRAM_BYTES_MAX)
#define KEY_TRIES   100000u

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static char reply[REPLY_MAX + 1];

/* The worker the default routing table gives key (partition p -> worker p % 2). */
static uint16_t
owner_of(const char *key)
{
	return (uint16_t)(sp_key_partition(sp_key_hash(key, strlen(key)), PARTITIONS) % 2);
}

/* Writes into buf the n-th key ("<stem><i>") owned by worker w. */
static void
key_of(char *buf, size_t len, const char *stem, uint16_t w, uint32_t n)
{
	uint32_t found = 0;

	for (uint32_t i = 0; i < KEY_TRIES; i++) {
		snprintf(buf, len, "%s%u", stem, i);
		if (owner_of(buf) == w && found++ == n)
			return;
	}
	fail_msg("no key %u of worker %u", n, w);
}

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
	return m;
}

static void
serve(uint16_t worker, struct rte_mbuf *m, bool here, struct dp_mc_result *res)
{
	dp_mc_serve(rt.w[worker], route_current(rt.route), NOW_S, m, here, res);
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

	serve(owner_of(key), frame(payload, 7), false, &res);
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
	serve(0, m, false, &res);
	assert_int_equal(res.tx_count, 0);
	assert_int_equal(res.handoff_count, 1);
	assert_ptr_equal(res.handoff[0], m);
	assert_int_equal(res.handoff_to[0], 1);
	assert_int_equal(dp_meta_of(m)->hops, 1);
	/* Worker 1 takes it from its ring and answers with the request's own mbuf. */
	serve(1, m, false, &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(res.tx_count, 1);
	assert_ptr_equal(res.tx[0], m);
	assert_int_equal(collect(&res, 11), 1);
	assert_string_equal(reply, "STORED\r\n");
	snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
	snprintf(want, sizeof(want), "VALUE %s 3 2\r\nhi\r\nEND\r\n", key);
	run_on_owner(cmd, key, want);
}

static void
test_hops_and_ring_full_run_here(void **state)
{
	struct dp_mc_stats s0, s1;
	struct mcexec_counters c;
	struct dp_mc_result res;
	struct rte_mbuf *m;
	char key[32], cmd[96];

	(void)state;
	key_of(key, sizeof(key), "hop", 1, 0);
	totals(&s0, &c);
	snprintf(cmd, sizeof(cmd), "delete %s\r\n", key);
	m = frame(cmd, 12);
	dp_meta_of(m)->hops = DP_HANDOFF_HOPS_MAX;
	serve(0, m, false, &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 12), 1);
	assert_string_equal(reply,
	                    "SERVER_ERROR key is owned by another core; send one command per "
	                    "datagram\r\n");
	/* A read runs exactly where it lands (concurrent read of worker 1's store). */
	snprintf(cmd, sizeof(cmd), "get %s\r\n", key);
	serve(0, frame(cmd, 13), true, &res);
	assert_int_equal(res.handoff_count, 0);
	assert_int_equal(collect(&res, 13), 1);
	assert_string_equal(reply, "END\r\n");
	totals(&s1, &c);
	assert_int_equal(s1.run_fallback - s0.run_fallback, 2);
	assert_int_equal(s1.handoff_out, s0.handoff_out);
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
	serve(0, frame(cmd, 21), false, &res);
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
	serve(0, frame("flush_all\r\n", 31), false, &res);
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
	serve(0, frame(cmd, 41), false, &res);
	assert_int_equal(res.handoff_count, DP_MC_TOUCH_FORWARD_MAX);
	assert_int_equal(collect(&res, 41), n);
	totals(&s1, &c);
	assert_int_equal(s1.touch_out - s0.touch_out, DP_MC_TOUCH_FORWARD_MAX);
	assert_int_equal(s1.touch_dropped - s0.touch_dropped, n - DP_MC_TOUCH_FORWARD_MAX);
	/* The owner applies the touches: the first key loses its expiry (0 = never). */
	for (uint32_t i = 0; i < res.handoff_count; i++) {
		struct dp_mc_result r2;

		assert_int_equal(res.handoff_to[i], 1);
		serve(1, res.handoff[i], false, &r2);
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
	assert_true(dp_mc_owns_mbuf(&rt, m));
	totals(&s0, &c);
	serve(1, m, false, &res);
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
		serve(0, frame(cmd, 51), false, &res);
		assert_int_equal(collect(&res, 51), n - 1);
		assert_non_null(strstr(reply, "END\r\n"));
		serve(0, frame(all, 52), false, &res);
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
	serve(0, m, false, &res);
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
	serve(1, frame("stats\r\n", 61), false, &res);
	assert_int_equal(collect(&res, 61), 1);
	p = strstr(reply, "STAT threads 2\r\n");
	assert_non_null(p);
	/* cmd_get counts the gets run on both workers (never 0 after the tests above). */
	p = strstr(reply, "STAT cmd_get ");
	assert_non_null(p);
	assert_true(strtoull(p + 13, NULL, 10) > DP_MC_REPLY_DGRAMS_MAX);
	serve(0, frame("stats reset\r\n", 62), false, &res);
	assert_int_equal(collect(&res, 62), 1);
	assert_string_equal(reply, "RESET\r\n");
	serve(1, frame("stats\r\n", 63), false, &res);
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
	serve(0, frame(cmd, 81), false, &res);
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

	serve(0, frame(payload, 33), false, &res);
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
	for (uint32_t i = 0; i < KEY_TRIES && found != 7; i++) {
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

	/* Another node's key in a multi-key get: an error, not a miss. */
	totals(&s0, &c0);
	snprintf(cmd, sizeof(cmd), "get %s %s\r\n", k_ok, k_far);
	expect_answer(cmd, "SERVER_ERROR key is owned by another node\r\n");
	totals(&s1, &c1);
	assert_int_equal(s1.wrong_node - s0.wrong_node, 1);
	assert_int_equal(c1.get_misses - c0.get_misses, 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_owner_handoff),
	        cmocka_unit_test(test_hops_and_ring_full_run_here),
	        cmocka_unit_test(test_multi_get_runs_here),
	        cmocka_unit_test(test_flush_all_reaches_other_worker),
	        cmocka_unit_test(test_gat_touch_bound),
	        cmocka_unit_test(test_forged_message_refused),
	        cmocka_unit_test(test_reply_array_bound),
	        cmocka_unit_test(test_dry_pool_counted),
	        cmocka_unit_test(test_stats_sum_and_reset),
	        cmocka_unit_test(test_other_node_refused),
	        cmocka_unit_test(test_unserved_answered),
	};
	struct rte_ring *rx[2], *tx[2];
	struct dp_hugepages huge;
	int node_port;
	int rc;

	(void)argc;
	memset(&huge, 0, sizeof(huge));
	if (test_eal_start("test_mcport", argv[0]) != 0)
		return 1;
	for (int i = 0; i < 2; i++) {
		char name[32];

		snprintf(name, sizeof(name), "tm_rx%d", i);
		rx[i] = rte_ring_create(name, 64, 0, 0);
		snprintf(name, sizeof(name), "tm_tx%d", i);
		tx[i] = rte_ring_create(name, 64, 0, 0);
		if (rx[i] == NULL || tx[i] == NULL)
			return 1;
	}
	node_port = rte_eth_from_rings("tm_node", rx, 2, tx, 2, 0);
	if (node_port < 0)
		return 1;
	dp_config_defaults(&rt.cfg);
	rt.cfg.ip_be = htonl(0x0a000001);
	rt.cfg.prefix_len = 24;
	rt.cfg.workers = 2;
	rt.cfg.partitions = PARTITIONS;
	rt.cfg.memory_mb = 4;
	rt.cfg.busy_poll = true;
	rt.cfg.memcached_port = MC_PORT;
	rt.cfg.eth_port = (uint16_t)node_port;
	rt.stats = worker_stats;
	if (dp_node_setup(&rt, &huge) != 0 || rt.mc == NULL) {
		fprintf(stderr, "test_mcport: node set-up failed\n");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (dp_node_teardown(&rt, false) != 0)
		rc = 1;
	test_eal_stop();
	return rc;
}
