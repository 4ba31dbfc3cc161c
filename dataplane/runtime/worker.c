/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker's poll loop (worker.h). It knows frames, rings, the defer queue and the
 * routing table; what a UDP datagram means is its service's (service.h): the binary
 * protocol (bpserve.c), forwarding between nodes (forward.c) and memcached (mcport.c).
 */
#include "worker.h"

#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include "common/log.h"
#include "common/verify.h"
#include "dataplane/store/store.h"
#include "forward.h"
#include "mcport.h"
#include "prefetch.h"
#include "service.h"

#define MOD "worker"

/* How often a worker copies its stores' totals into its counters. */
#define PUBLISH_INTERVAL_MS 100u
/* Frames of a burst whose memory is requested ahead of the one being classified. */
#define PREFETCH_AHEAD 4u
/* tx_burst attempts on the way out, to send the backlog before the port stops. */
#define EXIT_TX_TRIES_MAX 64u

static uint32_t
store_now_s(const struct dp_runtime *rt)
{
	ASSERT(rt->tsc_hz > 0);
	ASSERT(rte_rdtsc() >= rt->tsc_base);
	/* Starts at 1 so that no live item ever has an absolute expiry of 0 (never). */
	return (uint32_t)((rte_rdtsc() - rt->tsc_base) / rt->tsc_hz) + 1;
}

/* Counts a frame dropped by the runtime and frees it. */
static void
drop_frame(struct dp_worker *w, struct rte_mbuf *m, enum dp_drop why)
{
	ASSERT((unsigned int)why < DP_DROP_COUNT);
	DP_STAT_INC(w->stats, dp_drop[why]);
	DP_STAT_INC(w->stats, bad_pkts);
	rte_pktmbuf_free(m);
}

/*
 * Sends as much of the TX backlog as the queue takes; what it does not take stays, in
 * order, for the next iteration. Returns how many were sent.
 */
static uint16_t
tx_flush(struct dp_worker *w)
{
	uint64_t bytes = 0;
	uint16_t sent;
	uint32_t i;

	ASSERT(w->tx_count <= DP_TX_PENDING_MAX);
	if (w->tx_count == 0)
		return 0;
	for (i = 0; i < w->tx_count; i++)
		bytes += rte_pktmbuf_pkt_len(w->tx[i]);
	sent = rte_eth_tx_burst(w->port_id, w->queue, w->tx, (uint16_t)w->tx_count);
	ASSERT(sent <= w->tx_count);
	if (sent < w->tx_count) {
		for (i = sent; i < w->tx_count; i++)
			bytes -= rte_pktmbuf_pkt_len(w->tx[i]);
		memmove(&w->tx[0], &w->tx[sent], (w->tx_count - sent) * sizeof(w->tx[0]));
		DP_STAT_INC(w->stats, tx_retries);
	}
	w->tx_count -= sent;
	DP_STAT_ADD(w->stats, tx_pkts, sent);
	DP_STAT_ADD(w->stats, tx_bytes, bytes);
	return sent;
}

/* Queues a frame for transmission; at the backlog bound it flushes, then drops (counted). */
static void
tx_queue(struct dp_worker *w, struct rte_mbuf *m)
{
	ASSERT(m != NULL);
	ASSERT(w->tx_count <= DP_TX_PENDING_MAX);
	if (w->tx_count == DP_TX_PENDING_MAX)
		tx_flush(w);
	if (w->tx_count == DP_TX_PENDING_MAX) {
		DP_STAT_INC(w->stats, tx_drops);
		rte_pktmbuf_free(m);
		return;
	}
	w->tx[w->tx_count++] = m;
}

void
dp_worker_tx(struct dp_worker *w, struct rte_mbuf *m)
{
	tx_queue(w, m);
}

void
dp_worker_handoff(struct dp_worker *w, uint16_t to, struct rte_mbuf *m)
{
	ASSERT(to < w->rt->workers);
	ASSERT(to != w->index);
	if (w->out_count[to] == DP_BURST) {
		DP_STAT_INC(w->stats, ring_full_drops);
		rte_pktmbuf_free(m);
		return;
	}
	dp_meta_of(m)->reqs = 1;
	w->out[to][w->out_count[to]++] = m;
}

/*
 * Sends worker `to` what is staged for it. What its ring cannot take is answered by its
 * service's busy (binary: SERVER_BUSY; memcached: "busy, try again"; the client retries),
 * counted as ring-full drops.
 */
static void
flush_handoffs(struct dp_worker *w, const struct dp_iter *it, uint16_t to)
{
	uint16_t reqs[DP_BURST];
	unsigned int n = w->out_count[to];
	unsigned int sent;
	unsigned int i;

	ASSERT(n <= DP_BURST);
	ASSERT(to < w->rt->workers);
	if (n == 0)
		return;
	/* Read the counts first: once enqueued, an mbuf belongs to its new owner. */
	for (i = 0; i < n; i++)
		reqs[i] = dp_meta_of(w->out[to][i])->reqs;
	sent = dp_handoff_send(&w->rt->handoff, to, w->out[to], n);
	for (i = 0; i < sent; i++)
		DP_STAT_ADD(w->stats, handoff_out, reqs[i]);
	/* Emptied first: a busy answer never stages (it answers here), but stays safe if so. */
	w->out_count[to] = 0;
	for (i = sent; i < n; i++) {
		struct rte_mbuf *m = w->out[to][i];
		const struct dp_service_ops *ops = dp_service_of_kind(dp_meta_of(m)->kind);

		DP_STAT_ADD(w->stats, ring_full_drops, reqs[i]);
		ASSERT(ops != NULL);
		if (ops != NULL && ops->busy != NULL)
			ops->busy(w, it, m);
		else
			rte_pktmbuf_free(m);
	}
}

void
dp_worker_stage(struct dp_worker *w, const struct dp_iter *it, uint16_t to, struct rte_mbuf *m)
{
	ASSERT(to < w->rt->workers);
	ASSERT(to != w->index);
	ASSERT(dp_meta_of(m)->kind != DP_MSG_NONE);
	if (w->out_count[to] == DP_BURST)
		flush_handoffs(w, it, to);
	w->out[to][w->out_count[to]++] = m;
}

void
dp_worker_defer(struct dp_worker *w, struct rte_mbuf *m, uint32_t partition)
{
	struct dp_meta *meta = dp_meta_of(m);

	ASSERT(partition < w->rt->partitions);
	ASSERT(meta->kind != DP_MSG_NONE);
	DP_STAT_ADD(w->stats, deferred, meta->reqs);
	if (route_defer_push(&w->defer, m, partition) == 0)
		return;
	if (dp_handoff_send(&w->rt->handoff, w->index, &m, 1) == 1)
		return;
	DP_STAT_ADD(w->stats, dp_drop[DP_DROP_DEFER_FULL], meta->reqs);
	DP_STAT_INC(w->stats, bad_pkts);
	rte_pktmbuf_free(m);
}

/*
 * Serves a burst of messages whose meta is filled (from the NIC after classify_frame, from
 * our ring or from the defer queue), in arrival order: each run of one kind goes to its
 * service in one call (a burst of binary datagrams is one call). Consumes every mbuf; one of
 * no known kind is dropped and counted. n >= 1: serve_burst() takes empty bursts.
 */
static void
serve_burst_frames(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **pkts,
                   unsigned int n)
{
	unsigned int i = 0;

	ASSERT(n >= 1 && n <= DP_BURST);
	while (i < n) {
		uint8_t kind = dp_meta_of(pkts[i])->kind;
		const struct dp_service_ops *ops = dp_service_of_kind(kind);
		unsigned int j = i + 1;

		while (j < n && dp_meta_of(pkts[j])->kind == kind)
			j++;
		if (likely(ops != NULL)) {
			ops->serve(w, it, &pkts[i], j - i);
		} else {
			for (; i < j; i++)
				drop_frame(w, pkts[i], DP_DROP_NO_SERVICE);
		}
		i = j;
	}
}

/*
 * serve_burst_frames() for a burst that may be empty: most are, on the defer queue and the
 * hand-off ring, and an idle iteration then makes no call.
 */
static inline void
serve_burst(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **pkts, unsigned int n)
{
	if (n > 0)
		serve_burst_frames(w, it, pkts, n);
}

/* Starts loading a received mbuf's header and its private area (dp_meta). */
static inline void
prefetch_mbuf(struct rte_mbuf *m)
{
	/* For writing: the meta and the header are written before the frame goes out. */
	dp_prefetch_for_write(m);
	dp_prefetch_for_write(rte_mbuf_to_priv(m));
}

/*
 * Starts loading the first two lines of a frame (headers and a short request). Reading
 * the data address waits for the mbuf header: prefetch_mbuf() it well before.
 */
static inline void
prefetch_data(struct rte_mbuf *m)
{
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);

	/* For writing: the reply is written over the request (serve_local). */
	dp_prefetch_for_write(data);
	dp_prefetch_for_write(data + RTE_CACHE_LINE_SIZE);
}

/*
 * Classifies one received frame. Answers ARP and ICMP, drops what is bad (counted) and
 * returns false; returns true for a UDP datagram to one of our services, its meta filled,
 * for serve_burst().
 */
static bool
classify_frame(struct dp_worker *w, struct rte_mbuf *m)
{
	struct dp_runtime *rt = w->rt;
	struct net_pkt pkt;
	struct dp_meta *meta;
	enum dp_msg_kind kind;
	enum net_verdict v;
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);

	DP_STAT_INC(w->stats, rx_pkts);
	DP_STAT_ADD(w->stats, rx_bytes, rte_pktmbuf_pkt_len(m));
	if (m->nb_segs != 1) {
		/* Frames over one mbuf are over the MTU we serve; nothing valid is that big. */
		drop_frame(w, m, DP_DROP_SEGMENTED);
		return false;
	}
	v = net_classify(&rt->net, frame, rte_pktmbuf_data_len(m), dp_rx_csum_flags(m), &pkt);
	switch (v) {
	case NET_REPLY:
		if (frame[12] == 0x08 && frame[13] == 0x06)
			DP_STAT_INC(w->stats, arp_replies);
		else
			DP_STAT_INC(w->stats, icmp_replies);
		m->ol_flags = 0;
		tx_queue(w, m);
		return false;
	case NET_FRAGMENT:
		drop_frame(w, m, DP_DROP_FRAGMENT);
		return false;
	case NET_UDP:
		kind = dp_service_classify(rt, m, &pkt);
		if (kind == DP_MSG_NONE) {
			drop_frame(w, m, DP_DROP_NO_SERVICE);
			return false;
		}
		meta = dp_meta_of(m);
		meta->pkt = pkt;
		meta->hops = 0;
		meta->reqs = 0;
		meta->refused = 0;
		meta->kind = (uint8_t)kind;
		return true;
	case NET_DROP:
	default:
		ASSERT(pkt.drop < NET_DROP_REASON_COUNT);
		DP_STAT_INC(w->stats, net_drop[pkt.drop]);
		DP_STAT_INC(w->stats, bad_pkts);
		rte_pktmbuf_free(m);
		return false;
	}
}

/*
 * Copies the totals of the stores this worker owns, and the executor's replies by status,
 * into its counters (every PUBLISH_INTERVAL_MS, not per packet).
 */
static void
publish_store_totals(struct dp_worker *w, const struct route_table *t)
{
	struct store_stats ss;
	uint64_t evictions = 0;
	uint64_t items = 0;
	uint32_t p;

	ASSERT(t != NULL);
	ASSERT(t->partitions == w->rt->partitions);
	for (p = 0; p < t->partitions; p++) {
		struct route_entry e = route_lookup(t, p);
		if (e.worker != w->index || (e.flags & ROUTE_F_PENDING) != 0)
			continue;
		store_stats_get(w->rt->stores[p], &ss);
		evictions += ss.evictions;
		items += ss.items;
	}
	__atomic_store_n(&w->stats->store_evictions, evictions, __ATOMIC_RELAXED);
	__atomic_store_n(&w->stats->store_items, items, __ATOMIC_RELAXED);
	for (p = 0; p < SP_BP_ST_LAST; p++)
		__atomic_store_n(&w->stats->status[p], w->bx.status[p], __ATOMIC_RELAXED);
}

/* One loop iteration. Returns true when it found any work. */
static bool
iterate(struct dp_worker *w)
{
	struct dp_runtime *rt = w->rt;
	struct rte_mbuf *pkts[DP_BURST];
	void *deferred[DP_BURST];
	struct dp_iter it;
	unsigned int n;
	unsigned int i;
	unsigned int k;
	bool worked = false;
	uint16_t to;

	if (unlikely(atomic_load_explicit(&rt->port_paused, memory_order_acquire))) {
		/* The main lcore is attaching the port again (dp_node_watch_port). */
		route_quiescent(rt->route, w->index);
		return false;
	}
	it.t = route_current(rt->route);
	it.now_s = store_now_s(rt);

	n = route_defer_take(&w->defer, it.t, deferred, DP_BURST);
	for (i = 0; i < n; i++) {
		pkts[i] = deferred[i];
		prefetch_mbuf(pkts[i]);
	}
	serve_burst(w, &it, pkts, n);
	worked |= n > 0;

	n = rte_eth_rx_burst(w->port_id, w->queue, pkts, DP_BURST);
	for (i = 0; i < n; i++)
		prefetch_mbuf(pkts[i]);
	for (i = 0; i < n && i < PREFETCH_AHEAD; i++)
		prefetch_data(pkts[i]);
	for (i = 0, k = 0; i < n; i++) {
		if (i + PREFETCH_AHEAD < n)
			prefetch_data(pkts[i + PREFETCH_AHEAD]);
		if (classify_frame(w, pkts[i]))
			pkts[k++] = pkts[i];
	}
	serve_burst(w, &it, pkts, k);
	worked |= n > 0;

	n = dp_handoff_recv(&rt->handoff, w->index, pkts, DP_BURST);
	DP_STAT_ADD(w->stats, handoff_in_mbufs, n);
	for (i = 0; i < n; i++)
		prefetch_mbuf(pkts[i]);
	serve_burst(w, &it, pkts, n);
	worked |= n > 0;

	for (i = 0; i < DP_SVC_COUNT; i++) {
		const struct dp_service_ops *ops = dp_service_get((enum dp_service_id)i);

		if (ops->poll != NULL && dp_service_enabled(rt, (enum dp_service_id)i))
			ops->poll(w, &it);
	}
	for (to = 0; to < rt->workers; to++)
		flush_handoffs(w, &it, to);
	worked |= tx_flush(w) > 0;

	if (rte_rdtsc() >= w->next_publish_tsc) {
		publish_store_totals(w, it.t);
		w->next_publish_tsc = rte_rdtsc() + rt->tsc_hz * PUBLISH_INTERVAL_MS / 1000;
	}
	route_quiescent(rt->route, w->index);
	DP_STAT_INC(w->stats, loops);
	return worked;
}

/* Sends what it can of the backlog, then frees everything this worker still holds. */
static void
drain_on_exit(struct dp_worker *w)
{
	void *deferred[DP_BURST];
	unsigned int tries;
	uint16_t to;

	for (unsigned int i = 0; i < DP_SVC_COUNT; i++) {
		const struct dp_service_ops *ops = dp_service_get((enum dp_service_id)i);

		if (ops->drain != NULL && dp_service_enabled(w->rt, (enum dp_service_id)i))
			ops->drain(w);
	}
	for (tries = 0; tries < EXIT_TX_TRIES_MAX && w->tx_count > 0; tries++)
		tx_flush(w);
	if (w->tx_count > 0) {
		DP_STAT_ADD(w->stats, tx_drops, w->tx_count);
		rte_pktmbuf_free_bulk(w->tx, w->tx_count);
		w->tx_count = 0;
	}
	for (to = 0; to < w->rt->workers; to++) {
		if (w->out_count[to] > 0)
			rte_pktmbuf_free_bulk(w->out[to], w->out_count[to]);
		w->out_count[to] = 0;
	}
	/* The process is ending: the deferred datagrams are given back unanswered. */
	for (tries = 0; tries <= ROUTE_DEFER_MAX / DP_BURST && w->defer.count > 0; tries++) {
		unsigned int n = route_defer_drain(&w->defer, deferred, DP_BURST);

		DP_STAT_ADD(w->stats, dp_drop[DP_DROP_SHUTDOWN], n);
		rte_pktmbuf_free_bulk((struct rte_mbuf **)deferred, n);
	}
	ASSERT(w->defer.count == 0);
	rte_pktmbuf_free(w->spare);
	w->spare = NULL;
}

int
dp_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	struct dp_runtime *rt = w->rt;
	uint32_t sleep_us = 0;
	int rc;

	ASSERT(w != NULL);
	ASSERT(rt != NULL);
	rc = route_worker_register(rt->route, w->index);
	if (rc != 0) {
		SP_LOG_ERR(MOD, "worker %u: cannot register with the routing table: %s", w->index,
		           sp_strerror(rc));
		return rc;
	}
	SP_LOG_INFO(MOD, "worker %u: lcore %u, queue %u, port %u", w->index, rte_lcore_id(),
	            w->queue, rt->cfg.port_base + w->index);
	while (!atomic_load_explicit(&rt->stop, memory_order_relaxed)) {
		uint64_t t0 = rte_rdtsc();
		bool worked = iterate(w);

		if (worked)
			DP_STAT_ADD(w->stats, busy_cycles, rte_rdtsc() - t0);

		switch (dp_idle_step(&w->idle, worked, &sleep_us)) {
		case DP_IDLE_POLL:
			break;
		case DP_IDLE_PAUSE:
			for (unsigned int i = 0; i < DP_IDLE_PAUSES; i++)
				rte_pause();
			break;
		case DP_IDLE_SLEEP:
			/* Offline while asleep, so table switches do not wait for us. */
			route_worker_offline(rt->route, w->index);
			DP_STAT_INC(w->stats, idle_sleeps);
			rte_delay_us_sleep(sleep_us);
			route_worker_online(rt->route, w->index);
			break;
		}
	}
	drain_on_exit(w);
	route_worker_unregister(rt->route, w->index);
	SP_LOG_INFO(MOD, "worker %u: stopped", w->index);
	return 0;
}

struct dp_worker *
dp_worker_create(struct dp_runtime *rt, uint16_t index)
{
	unsigned int lcore = rt->lcore_of[index];
	int socket = (int)rte_lcore_to_socket_id(lcore);
	struct dp_worker *w;

	ASSERT(index < rt->workers);
	ASSERT(rt->stats != NULL);
	w = rte_zmalloc_socket("sp_worker", sizeof(*w), RTE_CACHE_LINE_SIZE, socket);
	if (w == NULL) {
		SP_LOG_ERR(MOD, "worker %u: cannot allocate %zu bytes on socket %d", index,
		           sizeof(*w), socket);
		return NULL;
	}
	w->route_owner =
	        rte_zmalloc_socket("sp_route_owner", rt->partitions * sizeof(w->route_owner[0]),
	                           RTE_CACHE_LINE_SIZE, socket);
	if (w->route_owner == NULL) {
		SP_LOG_ERR(MOD, "worker %u: cannot allocate its route page", index);
		rte_free(w);
		return NULL;
	}
	w->ctx = rte_zmalloc_socket("sp_worker_ctx", DP_BURST * dp_bp_burst_state_bytes(),
	                            RTE_CACHE_LINE_SIZE, socket);
	if (w->ctx == NULL) {
		SP_LOG_ERR(MOD, "worker %u: cannot allocate %zu bytes of burst state", index,
		           DP_BURST * dp_bp_burst_state_bytes());
		rte_free(w->route_owner);
		rte_free(w);
		return NULL;
	}
	w->gathers = rte_zmalloc_socket("sp_fwd_gathers", DP_FWD_GATHERS * sizeof(w->gathers[0]),
	                                RTE_CACHE_LINE_SIZE, socket);
	if (w->gathers == NULL) {
		SP_LOG_ERR(MOD, "worker %u: cannot allocate %zu bytes of multi-get gathering",
		           index, DP_FWD_GATHERS * sizeof(w->gathers[0]));
		rte_free(w->ctx);
		rte_free(w->route_owner);
		rte_free(w);
		return NULL;
	}
	w->rt = rt;
	w->stats = &rt->stats[index];
	w->index = index;
	w->queue = index;
	w->port_id = rt->port.port_id;
	dp_idle_init(&w->idle, rt->cfg.busy_poll);
	route_defer_init(&w->defer);
	sp_fwd_table_init(&w->fwd);
	return w;
}

void
dp_worker_free(struct dp_worker *w)
{
	if (w == NULL)
		return;
	ASSERT(w->tx_count == 0);
	ASSERT(w->defer.count == 0);
	ASSERT(w->spare == NULL);
	rte_free(w->gathers);
	rte_free(w->ctx);
	rte_free(w->route_owner);
	rte_free(w);
}

void
dp_worker_set_port(struct dp_worker *w, uint16_t port_id)
{
	ASSERT(atomic_load(&w->rt->port_paused));
	w->port_id = port_id;
}
