/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane's side of registered operations (taskport.h) on a real node (EAL
 * --no-huge, net_ring, 2 workers that are not launched; the test plays each worker):
 * RATELIMIT handed to its owner and run there; AGGREGATE scattered to the other worker
 * over the ring (DP_MSG_TASK), gathered and answered once; the same with the other worker
 * never answering: PARTIAL at the deadline with exactly the gatherer's share, and the late
 * answer dropped as stale; AGGREGATE_KEYS with each key run on its owner; a reply
 * datagram from an address that is no member dropped and counted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "node.h"
#include "service.h"
#include "taskport.h"
#include "test_eal.h"
#include "test_node.h"
#include "worker.h"

#define CLIENT_PORT 40000u
#define PARTITIONS  16u
#define TIMEOUT_MS  100u /* --forward-timeout-ms: CLUSTER gathers wait this long */

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static const uint8_t client_mac[6] = {0x02, 0, 0, 0, 0, 0x44};

/* A frame from src_ip to the node's port dport, classified as a worker would. */
static struct rte_mbuf *
udp_frame_from(uint32_t src_ip_be, uint16_t dport, const uint8_t *payload, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(rt.port.pool);
	struct net_udp_ends e = {
	        .src_ip_be = src_ip_be,
	        .dst_ip_be = rt.cfg.ip_be,
	        .src_port = CLIENT_PORT,
	        .dst_port = dport,
	};
	struct dp_meta *meta;
	struct net_pkt pkt;

	assert_non_null(m);
	memcpy(e.src_mac, client_mac, 6);
	memcpy(e.dst_mac, rt.port.mac.addr_bytes, 6);
	memcpy(rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS, payload, len);
	uint32_t flen = net_udp_frame(rte_pktmbuf_mtod(m, uint8_t *), &e, (uint16_t)len, 1, 0);
	m->data_len = (uint16_t)flen;
	m->pkt_len = flen;
	assert_int_equal(net_classify(&rt.net, rte_pktmbuf_mtod(m, uint8_t *), flen, 0, &pkt),
	                 NET_UDP);
	meta = dp_meta_of(m);
	memset(meta, 0, sizeof(*meta));
	meta->pkt = pkt;
	meta->kind = (uint8_t)dp_service_classify(&rt, m, &pkt);
	return m;
}

/* One request (id 7, datagram 77) to worker 0's port. */
static struct rte_mbuf *
req_frame(const struct sp_bp_req *q)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;

	sp_bp_builder_init(&b, buf, sizeof(buf), false, 77);
	assert_int_equal(sp_bp_add_request(&b, q), 0);
	return udp_frame_from(htonl(0x0a000002), rt.cfg.port_base, buf, sp_bp_builder_finish(&b));
}

static void
serve_on(uint16_t w, struct rte_mbuf *m)
{
	struct dp_iter it = {.t = route_current(rt.route), .now_s = 10};
	const struct dp_service_ops *ops = dp_service_of_kind(dp_meta_of(m)->kind);

	assert_non_null(ops);
	ops->serve(rt.w[w], &it, &m, 1);
}

static void
poll_on(uint16_t w)
{
	struct dp_iter it = {.t = route_current(rt.route), .now_s = 10};

	dp_task_service.poll(rt.w[w], &it);
}

/* Takes the one reply of the one frame worker w queued (into r; value copied to val). */
static void
take_reply(uint16_t w, struct sp_bp_reply *r, uint8_t *val, uint32_t cap)
{
	struct dp_worker *wk = rt.w[w];
	struct sp_bp_dgram dg;
	struct sp_bp_reply out[1];
	const uint8_t *f;

	assert_int_equal(wk->tx_count, 1);
	struct rte_mbuf *m = wk->tx[0];
	wk->tx_count = 0;
	f = rte_pktmbuf_mtod(m, const uint8_t *);
	assert_memory_equal(f, client_mac, 6);
	assert_int_equal(sp_bp_decode_replies(f + NET_UDP_REPLY_HDRS,
	                                      rte_pktmbuf_data_len(m) - NET_UDP_REPLY_HDRS, out, 1,
	                                      &dg),
	                 SP_BP_ERR_OK);
	assert_true(dg.datagram_id == 77);
	*r = out[0];
	assert_true(r->value_len <= cap);
	if (r->value_len != 0)
		memcpy(val, r->value, r->value_len);
	r->value = val;
	rte_pktmbuf_free(m);
}

static struct rte_mbuf *
take_staged(uint16_t w, uint16_t to)
{
	struct dp_worker *wk = rt.w[w];

	assert_int_equal(wk->out_count[to], 1);
	wk->out_count[to] = 0;
	return wk->out[to][0];
}

/* INCR with create on the key's owner: counter = value. */
static void
set_counter(const char *key, uint64_t value)
{
	struct sp_bp_req q = {.opcode = SP_BP_OP_INCR,
	                      .request_id = 7,
	                      .key = (const uint8_t *)key,
	                      .key_len = (uint16_t)strlen(key),
	                      .delta = 0,
	                      .initial = value,
	                      .create = true};
	struct sp_bp_reply r;
	uint8_t v[16];
	uint16_t o = owner_of(key);

	serve_on(0, req_frame(&q));
	if (o != 0)
		serve_on(o, take_staged(0, o));
	take_reply(o, &r, v, sizeof(v));
	assert_int_equal(r.status, SP_BP_ST_OK);
}

static struct sp_bp_req
agg_req(uint8_t *arg, const char *prefix, uint8_t k)
{
	int n = sp_agg_arg_encode(arg, k, (const uint8_t *)prefix, (uint32_t)strlen(prefix));
	struct sp_bp_req q = {.opcode = SP_TASK_OP_AGGREGATE,
	                      .request_id = 7,
	                      .value = arg,
	                      .value_len = (uint32_t)n,
	                      .flags = SP_BP_TASK_SCOPE_CLUSTER};

	assert_true(n > 0);
	return q;
}

static void
test_ratelimit_on_owner(void **state)
{
	char k1[32];
	uint8_t arg[SP_RL_ARG_SIZE], v[SP_RL_RESULT_SIZE];
	struct sp_rl_arg a = {.rate_per_s = 1, .burst = 2, .cost = 1};
	struct sp_rl_result res;
	struct sp_bp_reply r;

	(void)state;
	key_of(k1, sizeof(k1), "rl", 1, 0);
	assert_int_equal(sp_rl_arg_encode(arg, &a), 0);
	struct sp_bp_req q = {.opcode = SP_TASK_OP_RATELIMIT,
	                      .request_id = 7,
	                      .key = (const uint8_t *)k1,
	                      .key_len = (uint16_t)strlen(k1),
	                      .value = arg,
	                      .value_len = sizeof(arg)};
	for (int i = 0; i < 3; i++) {
		serve_on(0, req_frame(&q));
		assert_int_equal(rt.w[0]->tx_count, 0); /* not run on worker 0 */
		struct rte_mbuf *m = take_staged(0, 1);
		assert_int_equal(dp_meta_of(m)->kind, DP_MSG_BINARY);
		serve_on(1, m);
		take_reply(1, &r, v, sizeof(v));
		assert_int_equal(r.status, SP_BP_ST_OK);
		assert_int_equal(sp_rl_result_decode(v, r.value_len, &res), 0);
		assert_int_equal(res.allowed, i < 2);
	}
	assert_true(res.wait_ns > 0 && res.wait_ns <= 1000000000ull);
}

static void
test_aggregate_scatter_gather(void **state)
{
	char key[32];
	uint8_t arg[SP_AGG_ARG_MAX], v[SP_AGG_RESULT_MAX];
	struct sp_agg_result res;
	struct sp_bp_reply r;
	uint64_t sum = 0;

	(void)state;
	for (uint16_t w = 0; w < 2; w++)
		for (uint32_t n = 0; n < 3; n++) {
			key_of(key, sizeof(key), "ag:", w, n);
			set_counter(key, 100u * w + n + 1);
			sum += 100u * w + n + 1;
		}
	struct sp_bp_req q = agg_req(arg, "ag:", 2);
	serve_on(0, req_frame(&q));
	assert_int_equal(rt.w[0]->tx_count, 0); /* waits for worker 1 */
	struct rte_mbuf *part = take_staged(0, 1);
	assert_int_equal(dp_meta_of(part)->kind, DP_MSG_TASK);
	serve_on(1, part);
	assert_int_equal(rt.w[1]->tx_count, 0);
	struct rte_mbuf *answer = take_staged(1, 0);
	assert_int_equal(dp_meta_of(answer)->kind, DP_MSG_TASK);
	serve_on(0, answer);
	take_reply(0, &r, v, sizeof(v));
	assert_int_equal(r.status, SP_BP_ST_OK);
	assert_int_equal(r.flags, PARTITIONS);
	assert_int_equal(sp_agg_result_decode(v, r.value_len, &res), 0);
	assert_int_equal(res.count, 6);
	assert_int_equal(res.sum_lo, sum);
	assert_int_equal(res.n, 2);
	assert_int_equal(res.top[0].value, 103);
	assert_int_equal(res.top[1].value, 102);
}

static void
test_owner_times_out(void **state)
{
	uint8_t arg[SP_AGG_ARG_MAX], v[SP_AGG_RESULT_MAX];
	struct sp_agg_result res;
	struct sp_bp_reply r;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(TIMEOUT_MS + 5) * 1000000L};

	(void)state;
	uint64_t stale = rt.tasks->gathers[0].stale;
	struct sp_bp_req q = agg_req(arg, "ag:", 0);
	uint64_t t0 = rte_rdtsc();
	serve_on(0, req_frame(&q));
	struct rte_mbuf *part = take_staged(0, 1); /* worker 1 is "hung": it runs it late */
	poll_on(0);
	/* Not before the deadline (when this thread was not descheduled past it). */
	if ((rte_rdtsc() - t0) * 1000 / rte_get_tsc_hz() < TIMEOUT_MS)
		assert_int_equal(rt.w[0]->tx_count, 0);
	nanosleep(&ts, NULL);
	poll_on(0);
	take_reply(0, &r, v, sizeof(v));
	assert_int_equal(r.status, SP_BP_ST_PARTIAL);
	assert_int_equal(r.flags, PARTITIONS / 2); /* worker 0's partitions */
	assert_int_equal(sp_agg_result_decode(v, r.value_len, &res), 0);
	assert_int_equal(res.count, 3);
	assert_int_equal(res.sum_lo, 1 + 2 + 3);
	assert_int_equal(rt.tasks->gathers[0].live, 0);
	/* Worker 1 wakes up: its answer finds no gather and is dropped. */
	serve_on(1, part);
	serve_on(0, take_staged(1, 0));
	assert_int_equal(rt.w[0]->tx_count, 0);
	assert_int_equal(rt.tasks->gathers[0].stale, stale + 1);
}

static void
test_aggregate_keys(void **state)
{
	char ka[32], kb[32], kc[32];
	uint8_t arg[SP_BP_VALUE_MAX], v[SP_AGG_RESULT_MAX], k = 1;
	struct sp_agg_result res;
	struct sp_bp_reply r;

	(void)state;
	key_of(ka, sizeof(ka), "ag:", 0, 0); /* 1 */
	key_of(kb, sizeof(kb), "ag:", 1, 2); /* 103 */
	key_of(kc, sizeof(kc), "none", 1, 0);
	const uint8_t *keys[3] = {(const uint8_t *)ka, (const uint8_t *)kb, (const uint8_t *)kc};
	uint8_t lens[3] = {(uint8_t)strlen(ka), (uint8_t)strlen(kb), (uint8_t)strlen(kc)};
	int n = sp_task_keys_encode(arg, sizeof(arg), keys, lens, 3, &k, 1);
	struct sp_bp_req q = {.opcode = SP_TASK_OP_AGGREGATE_KEYS,
	                      .request_id = 7,
	                      .value = arg,
	                      .value_len = (uint32_t)n};
	serve_on(0, req_frame(&q));
	struct rte_mbuf *part = take_staged(0, 1);
	/* Worker 1's part carries only its two keys. */
	const uint8_t *p =
	        rte_pktmbuf_mtod(part, const uint8_t *) + dp_meta_of(part)->pkt.payload_off;
	assert_int_equal(p[20], 2);
	serve_on(1, part);
	serve_on(0, take_staged(1, 0));
	take_reply(0, &r, v, sizeof(v));
	assert_int_equal(r.status, SP_BP_ST_OK);
	assert_int_equal(r.flags, 3); /* keys answered */
	assert_int_equal(sp_agg_result_decode(v, r.value_len, &res), 0);
	assert_int_equal(res.count, 2);
	assert_int_equal(res.sum_lo, 104);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.top[0].value, 103);
}

static void
test_answer_from_stranger(void **state)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	uint64_t bad = 0;

	(void)state;
	for (uint32_t i = 0; i < rt.workers; i++)
		bad += rt.tasks->counters[i].answers_bad;
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	assert_non_null(sp_bp_add_reply(&b, sp_task_ref(0, 0, 1), SP_TASK_OP_AGGREGATE, SP_BP_ST_OK,
	                                0, 16, 0));
	struct rte_mbuf *m =
	        udp_frame_from(htonl(0x0a000009), rt.cfg.port_base, buf, sp_bp_builder_finish(&b));
	assert_int_equal(dp_meta_of(m)->kind, DP_MSG_TASK); /* a reply datagram: the tasks' */
	serve_on(0, m);
	uint64_t after = 0;
	for (uint32_t i = 0; i < rt.workers; i++)
		after += rt.tasks->counters[i].answers_bad;
	assert_int_equal(after, bad + 1);
	assert_int_equal(rt.w[0]->tx_count, 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ratelimit_on_owner),
	        cmocka_unit_test(test_aggregate_scatter_gather),
	        cmocka_unit_test(test_owner_times_out),
	        cmocka_unit_test(test_aggregate_keys),
	        cmocka_unit_test(test_answer_from_stranger),
	};
	(void)argc;
	if (test_eal_start("test_taskport", argv[0]) != 0)
		return 1;
	if (test_node_config("tt_node", PARTITIONS, &rt.cfg) != 0)
		return 1;
	rt.cfg.forward_timeout_ms = TIMEOUT_MS;
	rt.cfg.ratelimit_buckets = 64;
	rt.stats = worker_stats;
	return test_node_run("test_taskport", &rt, tests, SP_ARRAY_SIZE(tests),
	                     test_node_has_tasks);
}
