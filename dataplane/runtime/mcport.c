/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memcached UDP protocol on the worker loop. Placement, execution and replies of one
 * datagram are in dp_mc_serve(); the worker only queues what it returns. Cross-worker work
 * uses no lock: a datagram moves whole over the owner's hand-off ring, a gat touch travels
 * as a small message mbuf on the same ring, and flush_all is posted in one atomic word per
 * worker that its owner reads before every datagram and once per loop iteration.
 */
#include "mcport.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_telemetry.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/log.h"
#include "common/verify.h"
#include "dataplane/store/store.h"
#include "forward.h"
#include "worker.h"

#define MOD "memcached"

/* Answered to "version" and in "stats" (docs/memcache.md, difference 1). */
#define DP_MC_VERSION "1.6.18-shardplane"
/* Compare-and-swap attempts when posting a flush_all to one worker's mailbox. */
#define FLUSH_POST_TRIES_MAX 64u
/* Marks a touch message from another worker (first word of its payload). */
#define TOUCH_MSG_MAGIC 0x4d43544fu /* "MCTO" */
/* Answer to a single-key command whose partition another node owns. */
#define WRONG_NODE_LINE "SERVER_ERROR key is owned by another node"
/* Answers for partitions nobody serves here (route.h, ROUTE_UNSERVED), by the table's
 * unserved_status, and for a forwarded request whose owner did not answer. */
#define NOT_SERVING_LINE "SERVER_ERROR not serving"
#define NOT_READY_LINE   "SERVER_ERROR not ready"
#define UNAVAILABLE_LINE "SERVER_ERROR owner unavailable"
/* The forward table is full: memcached has no busy reply, so an error line. */
#define BUSY_LINE "SERVER_ERROR busy, try again"
/* Another node's request too large for a forward message (docs/cluster.md, "Sizes"). */
#define TOO_BIG_FWD_LINE "SERVER_ERROR request too large to forward; send it to the key's owner"

/* A gat touch for the owner of key: the payload of a message mbuf of kind DP_MSG_MC_TOUCH
 * (its pkt.payload_off is 0: no frame headers). */
struct touch_msg {
	uint32_t magic;
	uint32_t expire_s;
	uint32_t partition;
	uint32_t key_len;
	char key[SP_MC_KEY_MAX];
};

/* One worker's memcached state; only that worker writes it, except where noted. */
struct mc_worker {
	struct mcexec_counters counters; /* written by mcexec on this worker */
	struct dp_mc_stats st;
	/* "stats reset" baseline: written by whichever worker runs the reset (atomics). */
	struct mcexec_counters base __rte_cache_aligned;
	/* Store totals of the partitions this worker owns, published for "stats". */
	uint64_t pub_items __rte_cache_aligned;
	uint64_t pub_bytes;
	uint64_t pub_evictions;
	/* flush_all mailbox: (generation << 32) | at_s, posted by other workers. */
	_Atomic uint64_t flush_box __rte_cache_aligned;
	uint32_t flush_seen; /* generation applied */
	struct dp_mc *mc;
	struct dp_worker *w;
	uint16_t index;
	uint64_t next_publish_tsc;
	/* Per-call context for the mcexec callbacks. */
	const struct route_table *t;
	struct dp_mc_result *res;
	struct dp_mc_result fwd_res;   /* res while running a forwarded datagram (unused) */
	struct dp_mc_result serve_res; /* what the service's serve and busy queue */
	uint32_t touches;
	bool no_forward; /* running a datagram its owner's ring refused: no touch messages */
	struct mcexec_env env;
	struct sp_mc_out out;
	uint16_t out_lens[DP_MC_REPLY_DGRAMS_MAX];
	uint8_t *out_buf;  /* DP_MC_REPLY_DGRAMS_MAX slots of SP_MC_DGRAM_BYTES_MAX */
	uint8_t *copy_buf; /* STORE_VALUE_MAX bytes */
};

struct dp_mc {
	struct dp_runtime *rt;
	uint32_t pid;
	uint64_t wall_base_s; /* Unix time when the stores' clock read 1 */
	uint64_t limit_maxbytes;
	_Atomic uint32_t flush_gen;
	struct mc_worker *wk[DP_WORKERS_MAX];
};

/*
 * The node's memcached state, for the telemetry command (NULL once it is gone). The
 * command runs on an EAL telemetry thread and holds tel_lock while it reads *tel_mc, so
 * dp_mc_destroy, which clears tel_mc under the lock, never frees what it is reading.
 */
static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dp_mc *tel_mc;

#define COUNTER_WORDS (sizeof(struct mcexec_counters) / sizeof(uint64_t))
#define STATS_WORDS   (sizeof(struct dp_mc_stats) / sizeof(uint64_t))
SP_STATIC_ASSERT(sizeof(struct mcexec_counters) % sizeof(uint64_t) == 0,
                 "mcexec_counters is read as an array of uint64_t");
SP_STATIC_ASSERT(sizeof(struct dp_mc_stats) % sizeof(uint64_t) == 0,
                 "dp_mc_stats is read as an array of uint64_t");
SP_STATIC_ASSERT(sizeof(struct touch_msg) + NET_UDP_REPLY_HDRS <= RTE_MBUF_DEFAULT_DATAROOM,
                 "a touch message fits one mbuf");
SP_STATIC_ASSERT(NET_UDP_REPLY_HDRS + SP_MC_DGRAM_BYTES_MAX <= RTE_MBUF_DEFAULT_DATAROOM,
                 "a reply datagram fits one mbuf");

/* Relaxed load of word i of a counter block written by another worker. */
static uint64_t
word_load(const void *block, size_t i)
{
	return __atomic_load_n((const uint64_t *)block + i, __ATOMIC_RELAXED);
}

/* The calling worker owns partition p outright in table t (not arriving, not remote). */
static bool
owns(const struct mc_worker *wk, const struct route_table *t, uint32_t p)
{
	uint16_t target = 0;

	ASSERT(t != NULL);
	ASSERT(p < t->partitions);
	return route_decide(t, p, wk->index, &target) == ROUTE_EXECUTE;
}

/* The memcached line for a binary-protocol cluster status (NOT_SERVING, NOT_READY,
 * UNAVAILABLE); any other status reads as not serving. Never NULL. */
static const char *
status_line(uint8_t status)
{
	switch (status) {
	case SP_BP_ST_NOT_READY:
		return NOT_READY_LINE;
	case SP_BP_ST_UNAVAILABLE:
		return UNAVAILABLE_LINE;
	case SP_BP_ST_NOT_SERVING:
	default:
		return NOT_SERVING_LINE;
	}
}

/* mcexec_env.elsewhere: NULL when partition p is on this node, else the line to answer. */
static const char *
elsewhere_cb(void *ctx, uint32_t partition)
{
	struct mc_worker *wk = ctx;
	uint16_t target = 0;

	ASSERT(wk->t != NULL);
	VERIFY(partition < wk->t->partitions);
	switch (route_decide(wk->t, partition, wk->index, &target)) {
	case ROUTE_REMOTE:
		DP_STAT_INC(&wk->st, wrong_node);
		return WRONG_NODE_LINE;
	case ROUTE_UNSERVED:
		DP_STAT_INC(&wk->st, unserved);
		return status_line(wk->t->unserved_status);
	default:
		return NULL;
	}
}

/* mcexec_env.part: the partition's store, and whether this worker may write it. */
static struct store *
part_cb(void *ctx, uint32_t partition, bool *owned)
{
	struct mc_worker *wk = ctx;

	VERIFY(partition < wk->mc->rt->partitions);
	ASSERT(wk->t != NULL);
	*owned = owns(wk, wk->t, partition);
	return wk->mc->rt->stores[partition];
}

/*
 * Posts flush_all(at_s) to every other worker's mailbox; a newer post replaces an older
 * one that was not applied yet (store_flush_all has the same rule). Can't fail: a mailbox
 * that keeps changing under FLUSH_POST_TRIES_MAX attempts already holds a newer flush.
 */
static void
flush_remote_cb(void *ctx, uint32_t at_s)
{
	struct mc_worker *wk = ctx;
	struct dp_mc *mc = wk->mc;
	uint32_t gen = atomic_fetch_add(&mc->flush_gen, 1) + 1;
	uint64_t want = ((uint64_t)gen << 32) | at_s;

	ASSERT(gen != 0);
	for (uint32_t i = 0; i < mc->rt->workers; i++) {
		struct mc_worker *o = mc->wk[i];
		uint64_t cur;

		if (i == wk->index)
			continue;
		cur = atomic_load(&o->flush_box);
		for (uint32_t tries = 0; tries < FLUSH_POST_TRIES_MAX; tries++) {
			if ((uint32_t)(cur >> 32) >= gen)
				break;
			if (atomic_compare_exchange_weak(&o->flush_box, &cur, want))
				break;
		}
	}
	DP_STAT_INC(&wk->st, flush_remote);
}

/* Applies a flush_all posted by another worker to the partitions this worker owns. */
static void
apply_flush(struct mc_worker *wk, const struct route_table *t, uint32_t now_s)
{
	uint64_t box = atomic_load_explicit(&wk->flush_box, memory_order_acquire);
	uint32_t gen = (uint32_t)(box >> 32);

	ASSERT(now_s >= 1);
	if (gen == wk->flush_seen)
		return;
	wk->flush_seen = gen;
	for (uint32_t p = 0; p < t->partitions; p++) {
		if (owns(wk, t, p))
			store_flush_all(wk->mc->rt->stores[p], (uint32_t)box, now_s);
	}
	DP_STAT_INC(&wk->st, flush_applied);
}

/*
 * mcexec_env.touch_remote: sends the owner of partition a touch message. Counted and
 * skipped at DP_MC_TOUCH_FORWARD_MAX per datagram, when the pool is dry, or when the
 * partition has no local owner to hand to.
 */
static void
touch_remote_cb(void *ctx, uint32_t partition, const char *key, uint32_t key_len, uint32_t expire_s)
{
	struct mc_worker *wk = ctx;
	struct dp_mc_result *res = wk->res;
	struct rte_mbuf *m;
	struct dp_meta *meta;
	struct touch_msg *msg;
	uint16_t to = 0;

	ASSERT(key_len > 0);
	ASSERT(key_len <= SP_MC_KEY_MAX);
	if (wk->no_forward || wk->touches >= DP_MC_TOUCH_FORWARD_MAX ||
	    res->handoff_count >= DP_MC_HANDOFFS_MAX ||
	    route_decide(wk->t, partition, wk->index, &to) != ROUTE_HANDOFF) {
		DP_STAT_INC(&wk->st, touch_dropped);
		return;
	}
	m = rte_pktmbuf_alloc(wk->mc->rt->port.pool);
	if (m == NULL) {
		DP_STAT_INC(&wk->st, nombuf);
		DP_STAT_INC(&wk->st, touch_dropped);
		return;
	}
	msg = rte_pktmbuf_mtod(m, struct touch_msg *);
	msg->magic = TOUCH_MSG_MAGIC;
	msg->expire_s = expire_s;
	msg->partition = partition;
	msg->key_len = key_len;
	memcpy(msg->key, key, key_len);
	m->data_len = (uint16_t)(offsetof(struct touch_msg, key) + key_len);
	m->pkt_len = m->data_len;
	meta = dp_meta_of(m);
	memset(&meta->pkt, 0, sizeof(meta->pkt));
	meta->pkt.dst_port = wk->mc->rt->cfg.memcached_port;
	meta->pkt.payload_len = m->data_len;
	meta->reqs = 1;
	meta->hops = 0;
	meta->refused = 0;
	meta->kind = DP_MSG_MC_TOUCH;
	wk->touches++;
	res->handoff[res->handoff_count] = m;
	res->handoff_to[res->handoff_count] = to;
	res->handoff_count++;
	DP_STAT_INC(&wk->st, touch_out);
}

/* Refreshes this worker's published store totals from the stores it owns. */
static void
publish(struct mc_worker *wk, const struct route_table *t)
{
	uint64_t items = 0, bytes = 0, evictions = 0;
	struct store_stats ss;

	ASSERT(t != NULL);
	ASSERT(t->partitions == wk->mc->rt->partitions);
	for (uint32_t p = 0; p < t->partitions; p++) {
		if (!owns(wk, t, p))
			continue;
		store_stats_get(wk->mc->rt->stores[p], &ss);
		items += ss.items;
		bytes += ss.bytes;
		evictions += ss.evictions;
	}
	__atomic_store_n(&wk->pub_items, items, __ATOMIC_RELAXED);
	__atomic_store_n(&wk->pub_bytes, bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&wk->pub_evictions, evictions, __ATOMIC_RELAXED);
}

/* mcexec_env.stats: the general stats, summed over every worker since the last reset. */
static void
stats_cb(void *ctx, struct mcexec_stats *out)
{
	struct mc_worker *wk = ctx;
	struct dp_mc *mc = wk->mc;
	uint64_t *tot = (uint64_t *)&out->totals;

	ASSERT(out != NULL);
	ASSERT(wk->env.now_s >= 1);
	publish(wk, wk->t);
	out->pid = mc->pid;
	out->uptime_s = wk->env.now_s - 1;
	out->time_s = wk->env.wall_s;
	out->curr_connections = mc->rt->workers;
	out->threads = mc->rt->workers;
	out->limit_maxbytes = mc->limit_maxbytes;
	out->curr_items = out->bytes = out->evictions = 0;
	memset(&out->totals, 0, sizeof(out->totals));
	for (uint32_t i = 0; i < mc->rt->workers; i++) {
		const struct mc_worker *o = mc->wk[i];

		out->curr_items += __atomic_load_n(&o->pub_items, __ATOMIC_RELAXED);
		out->bytes += __atomic_load_n(&o->pub_bytes, __ATOMIC_RELAXED);
		out->evictions += __atomic_load_n(&o->pub_evictions, __ATOMIC_RELAXED);
		for (size_t k = 0; k < COUNTER_WORDS; k++)
			tot[k] += word_load(&o->counters, k) - word_load(&o->base, k);
	}
}

/* mcexec_env.stats_reset: every worker's counters read as zero from now on. */
static void
stats_reset_cb(void *ctx)
{
	struct mc_worker *wk = ctx;
	struct dp_mc *mc = wk->mc;

	ASSERT(mc != NULL);
	ASSERT(mc->rt->workers > 0);
	for (uint32_t i = 0; i < mc->rt->workers; i++) {
		struct mc_worker *o = mc->wk[i];

		for (size_t k = 0; k < COUNTER_WORDS; k++)
			__atomic_store_n((uint64_t *)&o->base + k, word_load(&o->counters, k),
			                 __ATOMIC_RELAXED);
	}
}

/* A named uint64_t of a counter block, for telemetry. */
struct named {
	const char *name;
	size_t offset;
};

#define RT_FIELD(f)                                 \
	{                                           \
#f, offsetof(struct dp_mc_stats, f) \
	}
static const struct named rt_fields[] = {
        RT_FIELD(datagrams_in),  RT_FIELD(run_owner),     RT_FIELD(run_multi),
        RT_FIELD(run_any),       RT_FIELD(busy),          RT_FIELD(handoff_out),
        RT_FIELD(deferred),      RT_FIELD(wrong_node),    RT_FIELD(unserved),
        RT_FIELD(forwarded),     RT_FIELD(forward_busy),  RT_FIELD(gathered),
        RT_FIELD(reply_dgrams),  RT_FIELD(nombuf),        RT_FIELD(touch_out),
        RT_FIELD(touch_in),      RT_FIELD(touch_dropped), RT_FIELD(flush_remote),
        RT_FIELD(flush_applied), RT_FIELD(bad_message),
};
SP_STATIC_ASSERT(SP_ARRAY_SIZE(rt_fields) == STATS_WORDS, "every dp_mc_stats field is named");

#define MC_FIELD(f)                                     \
	{                                               \
#f, offsetof(struct mcexec_counters, f) \
	}
static const struct named mc_fields[] = {
        MC_FIELD(datagrams),
        MC_FIELD(dropped_frame),
        MC_FIELD(commands),
        MC_FIELD(truncated),
        MC_FIELD(error_replies),
        MC_FIELD(out_full),
        MC_FIELD(cross_partition),
        MC_FIELD(gat_remote_untouched),
        MC_FIELD(gat_remote_forwarded),
        MC_FIELD(concurrent_busy),
        MC_FIELD(elsewhere_refused),
        MC_FIELD(bytes_read),
        MC_FIELD(bytes_written),
        MC_FIELD(cmd_get),
        MC_FIELD(cmd_set),
        MC_FIELD(cmd_flush),
        MC_FIELD(cmd_touch),
        MC_FIELD(get_hits),
        MC_FIELD(get_misses),
        MC_FIELD(delete_hits),
        MC_FIELD(delete_misses),
        MC_FIELD(incr_hits),
        MC_FIELD(incr_misses),
        MC_FIELD(decr_hits),
        MC_FIELD(decr_misses),
        MC_FIELD(cas_hits),
        MC_FIELD(cas_misses),
        MC_FIELD(cas_badval),
        MC_FIELD(touch_hits),
        MC_FIELD(touch_misses),
        MC_FIELD(store_too_large),
        MC_FIELD(store_no_memory),
        MC_FIELD(total_items),
};
SP_STATIC_ASSERT(SP_ARRAY_SIZE(mc_fields) == COUNTER_WORDS, "every mcexec_counters field is named");

/* Telemetry "/shardplane/memcached": every counter summed over the workers since start. */
static int
tel_memcached(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_mc *mc;
	struct dp_mc_stats s;
	struct mcexec_counters c;
	uint16_t port = 0;

	(void)cmd;
	(void)params;
	VERIFY(pthread_mutex_lock(&tel_lock) == 0);
	mc = tel_mc;
	if (mc != NULL) {
		dp_mc_totals(mc, &s, &c);
		port = mc->rt->cfg.memcached_port;
	}
	VERIFY(pthread_mutex_unlock(&tel_lock) == 0);
	if (mc == NULL)
		return -ENODEV;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "port", port);
	for (size_t i = 0; i < SP_ARRAY_SIZE(rt_fields); i++)
		rte_tel_data_add_dict_u64(
		        d, rt_fields[i].name,
		        *(const uint64_t *)((const char *)&s + rt_fields[i].offset));
	for (size_t i = 0; i < SP_ARRAY_SIZE(mc_fields); i++)
		rte_tel_data_add_dict_u64(
		        d, mc_fields[i].name,
		        *(const uint64_t *)((const char *)&c + mc_fields[i].offset));
	return 0;
}

struct dp_mc *
dp_mc_create(struct dp_runtime *rt)
{
	struct dp_mc *mc;

	ASSERT(rt->workers > 0);
	ASSERT(rt->workers <= DP_WORKERS_MAX);
	mc = rte_zmalloc("sp_mc", sizeof(*mc), RTE_CACHE_LINE_SIZE);
	if (mc == NULL)
		goto fail;
	mc->rt = rt;
	mc->pid = (uint32_t)getpid();
	mc->wall_base_s = sp_wall_s() - (rte_rdtsc() - rt->tsc_base) / rt->tsc_hz;
	mc->limit_maxbytes = (uint64_t)rt->cfg.memory_mb * rt->workers << 20;
	for (uint32_t i = 0; i < rt->workers; i++) {
		int socket = (int)rte_lcore_to_socket_id(rt->lcore_of[i]);
		struct mc_worker *wk;

		wk = rte_zmalloc_socket("sp_mc_worker", sizeof(*wk), RTE_CACHE_LINE_SIZE, socket);
		if (wk == NULL)
			goto fail;
		mc->wk[i] = wk;
		wk->out_buf = rte_malloc_socket("sp_mc_out",
		                                DP_MC_REPLY_DGRAMS_MAX * SP_MC_DGRAM_BYTES_MAX,
		                                RTE_CACHE_LINE_SIZE, socket);
		wk->copy_buf = rte_malloc_socket("sp_mc_copy", STORE_VALUE_MAX, RTE_CACHE_LINE_SIZE,
		                                 socket);
		if (wk->out_buf == NULL || wk->copy_buf == NULL)
			goto fail;
		wk->mc = mc;
		wk->w = rt->w[i];
		wk->index = (uint16_t)i;
		wk->env.partitions = rt->partitions;
		wk->env.part = part_cb;
		wk->env.flush_remote = flush_remote_cb;
		wk->env.touch_remote = touch_remote_cb;
		wk->env.elsewhere = elsewhere_cb;
		wk->env.stats = stats_cb;
		wk->env.stats_reset = stats_reset_cb;
		wk->env.ctx = wk;
		wk->env.version = DP_MC_VERSION;
		wk->env.counters = &wk->counters;
		wk->env.copy_buf = wk->copy_buf;
		wk->env.copy_buf_len = STORE_VALUE_MAX;
		sp_mc_out_init(&wk->out, wk->out_buf, wk->out_lens, DP_MC_REPLY_DGRAMS_MAX, 0);
	}
	VERIFY(pthread_mutex_lock(&tel_lock) == 0);
	tel_mc = mc;
	VERIFY(pthread_mutex_unlock(&tel_lock) == 0);
	/* Registered once per process; a second node in the same process reuses it. */
	(void)rte_telemetry_register_cmd("/shardplane/memcached", tel_memcached,
	                                 "memcached protocol counters, summed over workers");
	SP_LOG_INFO(MOD, "udp port %u: %u workers, %u reply datagrams (%u KiB) per worker",
	            rt->cfg.memcached_port, rt->workers, DP_MC_REPLY_DGRAMS_MAX,
	            DP_MC_REPLY_DGRAMS_MAX * SP_MC_DGRAM_BYTES_MAX >> 10);
	return mc;
fail:
	SP_LOG_ERR(MOD,
	           "cannot allocate the memcached state (%u KiB per worker); give EAL more "
	           "memory (-m) or drop --memcached-port",
	           (DP_MC_REPLY_DGRAMS_MAX * SP_MC_DGRAM_BYTES_MAX + STORE_VALUE_MAX) >> 10);
	dp_mc_destroy(mc);
	return NULL;
}

void
dp_mc_destroy(struct dp_mc *mc)
{
	if (mc == NULL)
		return;
	/* Waits for a telemetry command in progress; another node's state stays served. */
	VERIFY(pthread_mutex_lock(&tel_lock) == 0);
	if (tel_mc == mc)
		tel_mc = NULL;
	VERIFY(pthread_mutex_unlock(&tel_lock) == 0);
	for (uint32_t i = 0; i < DP_WORKERS_MAX; i++) {
		if (mc->wk[i] == NULL)
			continue;
		rte_free(mc->wk[i]->out_buf);
		rte_free(mc->wk[i]->copy_buf);
		rte_free(mc->wk[i]);
	}
	rte_free(mc);
}

/* Makes mbuf r (at least data room for it) the frame of reply datagram i of wk->out. */
static void
build_reply(struct mc_worker *wk, struct rte_mbuf *r, uint32_t i, const uint8_t *req_frame,
            const struct net_pkt *pkt)
{
	const struct dp_port *port = &wk->mc->rt->port;
	uint16_t len = wk->out.lens[i];
	uint32_t frame_len;

	ASSERT(i < wk->out.n);
	ASSERT(len <= SP_MC_DGRAM_BYTES_MAX);
	memcpy(rte_pktmbuf_mtod(r, uint8_t *) + NET_UDP_REPLY_HDRS, sp_mc_out_dgram(&wk->out, i),
	       len);
	frame_len = net_udp_reply(rte_pktmbuf_mtod(r, uint8_t *), req_frame, pkt, len,
	                          wk->w->ip_id++, port->tx_flags);
	ASSERT(frame_len == NET_UDP_REPLY_HDRS + (uint32_t)len);
	dp_tx_frame_ready(port, r, frame_len);
}

/*
 * Turns the n datagrams of wk->out into frames answering request frame m: replies 1..n-1
 * in fresh mbufs, reply 0 in m itself when its headers have the reply's layout. Without
 * mbufs for all of them nothing is sent (a partial response is useless) and m is freed.
 */
static void
send_replies(struct mc_worker *wk, struct rte_mbuf *m, uint32_t n, struct dp_mc_result *res)
{
	struct dp_meta *meta = dp_meta_of(m);
	const uint8_t *req = rte_pktmbuf_mtod(m, const uint8_t *);
	bool in_place = meta->pkt.l4_off == NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN;
	uint32_t first = in_place ? 1 : 0;

	ASSERT(n <= DP_MC_REPLY_DGRAMS_MAX);
	ASSERT(res->tx_count == 0);
	if (n == 0) {
		rte_pktmbuf_free(m);
		return;
	}
	if (n > first &&
	    rte_pktmbuf_alloc_bulk(wk->mc->rt->port.pool, &res->tx[first], n - first) != 0) {
		DP_STAT_INC(&wk->st, nombuf);
		rte_pktmbuf_free(m);
		return;
	}
	for (uint32_t i = first; i < n; i++)
		build_reply(wk, res->tx[i], i, req, &meta->pkt);
	if (in_place) {
		build_reply(wk, m, 0, req, &meta->pkt);
		res->tx[0] = m;
	} else {
		rte_pktmbuf_free(m);
	}
	res->tx_count = n;
	DP_STAT_ADD(&wk->st, reply_dgrams, n);
}

/* Answers a single-key datagram this node does not serve with one line (no CRLF), in m. */
static void
answer_line(struct mc_worker *wk, struct rte_mbuf *m, const uint8_t *udp, size_t len,
            const char *line, struct dp_mc_result *res)
{
	struct sp_mc_frame f;

	ASSERT(len >= SP_MC_FRAME_BYTES);
	ASSERT(line != NULL);
	VERIFY(sp_mc_frame_decode(udp, len, &f) == 0);
	wk->counters.error_replies++;
	sp_mc_out_init(&wk->out, wk->out_buf, wk->out_lens, DP_MC_REPLY_DGRAMS_MAX, f.request_id);
	VERIFY(sp_mc_out_line(&wk->out, line, strlen(line)) == 0);
	sp_mc_out_flush(&wk->out);
	send_replies(wk, m, wk->out.n, res);
}

/* Applies a touch message from another worker; consumes m. */
static void
serve_touch(struct mc_worker *wk, struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of(m);
	const struct touch_msg *msg = rte_pktmbuf_mtod(m, const struct touch_msg *);
	uint32_t len = meta->pkt.payload_len;

	ASSERT(meta->kind == DP_MSG_MC_TOUCH);
	if (meta->pkt.payload_off != 0 || len < offsetof(struct touch_msg, key) ||
	    len != rte_pktmbuf_data_len(m) || msg->magic != TOUCH_MSG_MAGIC || msg->key_len == 0 ||
	    msg->key_len > SP_MC_KEY_MAX || len != offsetof(struct touch_msg, key) + msg->key_len) {
		DP_STAT_INC(&wk->st, bad_message);
		rte_pktmbuf_free(m);
		return;
	}
	/* -EINVAL: the partition moved away again; the touch is lost like a dropped one. */
	if (mcexec_touch_local(&wk->env, msg->key, msg->key_len, msg->expire_s) == -EINVAL)
		DP_STAT_INC(&wk->st, touch_dropped);
	else
		DP_STAT_INC(&wk->st, touch_in);
	rte_pktmbuf_free(m);
}

/* Sets up worker wk's per-call context for serving with table t at now_s into res. */
static void
call_begin(struct mc_worker *wk, const struct route_table *t, uint32_t now_s,
           struct dp_mc_result *res)
{
	struct dp_mc *mc = wk->mc;

	ASSERT(t->partitions == mc->rt->partitions);
	res->tx_count = 0;
	res->handoff_count = 0;
	wk->t = t;
	wk->res = res;
	wk->touches = 0;
	wk->no_forward = false;
	wk->env.now_s = now_s;
	wk->env.wall_s = mc->wall_base_s + now_s - 1;
	apply_flush(wk, t, now_s);
}

void
dp_mc_serve(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct rte_mbuf *m,
            struct dp_mc_result *res)
{
	struct dp_mc *mc = w->rt->mc;
	struct mc_worker *wk = mc->wk[w->index];
	struct dp_meta *meta = dp_meta_of(m);
	const uint8_t *udp = rte_pktmbuf_mtod(m, const uint8_t *) + meta->pkt.payload_off;
	size_t len = meta->pkt.payload_len;
	enum mcexec_route_kind kind = MCEXEC_ROUTE_ANY;
	uint32_t partition = 0;
	uint16_t to = 0;
	uint32_t n;

	ASSERT(meta->pkt.payload_off + len <= rte_pktmbuf_data_len(m));
	call_begin(wk, t, now_s, res);
	if (meta->kind == DP_MSG_MC_TOUCH) {
		serve_touch(wk, m);
		return;
	}
	ASSERT(meta->kind == DP_MSG_MEMCACHED);
	DP_STAT_INC(&wk->st, datagrams_in);
	if (len > SP_MC_FRAME_BYTES)
		kind = mcexec_route(udp + SP_MC_FRAME_BYTES, len - SP_MC_FRAME_BYTES,
		                    w->rt->partitions, &partition);
	if (kind == MCEXEC_ROUTE_OWNER) {
		enum route_action a = route_decide(t, partition, w->index, &to);

		switch (a) {
		case ROUTE_EXECUTE:
			DP_STAT_INC(&wk->st, run_owner);
			break;
		case ROUTE_REMOTE:
			/* To the owner node; its reply is relayed from here (forward.h). A
			 * datagram an owner already refused is not forwarded twice. */
			if (meta->refused) {
				DP_STAT_INC(&wk->st, wrong_node);
				answer_line(wk, m, udp, len, WRONG_NODE_LINE, res);
				return;
			}
			switch (dp_fwd_mc_request(w, t, m, to, partition)) {
			case DP_FWD_SENT:
				DP_STAT_INC(&wk->st, forwarded);
				return;
			case DP_FWD_FULL:
				DP_STAT_INC(&wk->st, forward_busy);
				answer_line(wk, m, udp, len, BUSY_LINE, res);
				return;
			case DP_FWD_TOO_BIG:
				DP_STAT_INC(&wk->st, wrong_node);
				answer_line(wk, m, udp, len, TOO_BIG_FWD_LINE, res);
				return;
			default:
				DP_STAT_INC(&wk->st, wrong_node);
				answer_line(wk, m, udp, len, WRONG_NODE_LINE, res);
				return;
			}
		case ROUTE_UNSERVED:
			DP_STAT_INC(&wk->st, unserved);
			answer_line(wk, m, udp, len, status_line(t->unserved_status), res);
			return;
		case ROUTE_DEFER:
		case ROUTE_HANDOFF:
		default:
			if (meta->hops >= DP_HANDOFF_HOPS_MAX) {
				/* The hop limit (service.h): ownership kept moving. */
				DP_STAT_INC(&wk->st, busy);
				answer_line(wk, m, udp, len, BUSY_LINE, res);
				return;
			}
			meta->hops++;
			meta->reqs = 1;
			if (a == ROUTE_DEFER) {
				if (route_defer_push(&w->defer, m, partition) == 0) {
					DP_STAT_INC(&wk->st, deferred);
					return;
				}
				/* The defer queue is full: busy, as for a full ring. */
				DP_STAT_INC(&wk->st, busy);
				answer_line(wk, m, udp, len, BUSY_LINE, res);
				return;
			}
			res->handoff[0] = m;
			res->handoff_to[0] = to;
			res->handoff_count = 1;
			DP_STAT_INC(&wk->st, handoff_out);
			return;
		}
	} else if (kind == MCEXEC_ROUTE_MULTI && t->serves_nothing) {
		/* No map, no lease or removed: not even keys of several partitions. */
		DP_STAT_INC(&wk->st, unserved);
		answer_line(wk, m, udp, len, status_line(t->unserved_status), res);
		return;
	} else if (kind == MCEXEC_ROUTE_MULTI) {
		/* Keys of other nodes: scattered to them and gathered in key order. */
		if (dp_fwd_mc_gather(w, t, now_s, m)) {
			DP_STAT_INC(&wk->st, gathered);
			return;
		}
		DP_STAT_INC(&wk->st, run_multi);
	} else {
		DP_STAT_INC(&wk->st, run_any);
	}
	n = mcexec_udp(&wk->env, udp, len, &wk->out);
	send_replies(wk, m, n, res);
}

void
dp_mc_busy(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct rte_mbuf *m,
           struct dp_mc_result *res)
{
	struct mc_worker *wk = w->rt->mc->wk[w->index];
	const struct dp_meta *meta = dp_meta_of(m);

	call_begin(wk, t, now_s, res);
	if (meta->kind == DP_MSG_MC_TOUCH) {
		/* A touch its owner's ring refused is lost like any dropped touch. */
		DP_STAT_INC(&wk->st, touch_dropped);
		rte_pktmbuf_free(m);
		return;
	}
	ASSERT(meta->kind == DP_MSG_MEMCACHED);
	ASSERT(meta->pkt.payload_len > SP_MC_FRAME_BYTES); /* it was placed by its key */
	DP_STAT_INC(&wk->st, busy);
	answer_line(wk, m, rte_pktmbuf_mtod(m, const uint8_t *) + meta->pkt.payload_off,
	            meta->pkt.payload_len, BUSY_LINE, res);
}

void
dp_mc_poll(struct dp_worker *w, const struct route_table *t, uint32_t now_s)
{
	struct mc_worker *wk = w->rt->mc->wk[w->index];

	ASSERT(wk != NULL);
	ASSERT(wk->w == w);
	apply_flush(wk, t, now_s);
	if (rte_rdtsc() >= wk->next_publish_tsc) {
		publish(wk, t);
		wk->next_publish_tsc =
		        rte_rdtsc() + w->rt->tsc_hz * DP_MC_PUBLISH_INTERVAL_MS / 1000;
	}
}

uint32_t
dp_mc_run_forwarded(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                    const uint8_t *udp, size_t len)
{
	struct dp_mc *mc = w->rt->mc;
	struct mc_worker *wk;

	if (mc == NULL)
		return 0;
	wk = mc->wk[w->index];
	ASSERT(wk->w == w);
	wk->t = t;
	wk->res = &wk->fwd_res;
	wk->fwd_res.tx_count = 0;
	wk->fwd_res.handoff_count = 0;
	wk->touches = 0;
	wk->no_forward = true; /* gat touches of other workers' keys are not sent on */
	wk->env.now_s = now_s;
	wk->env.wall_s = mc->wall_base_s + now_s - 1;
	apply_flush(wk, t, now_s);
	DP_STAT_INC(&wk->st, datagrams_in);
	return mcexec_udp(&wk->env, udp, len, &wk->out);
}

struct sp_mc_out *
dp_mc_writer(struct dp_worker *w, uint16_t request_id)
{
	struct mc_worker *wk = w->rt->mc->wk[w->index];

	sp_mc_out_init(&wk->out, wk->out_buf, wk->out_lens, DP_MC_REPLY_DGRAMS_MAX, request_id);
	return &wk->out;
}

const uint8_t *
dp_mc_out_dgram(struct dp_worker *w, uint32_t i, uint16_t *len)
{
	struct mc_worker *wk = w->rt->mc->wk[w->index];

	ASSERT(i < wk->out.n);
	*len = wk->out.lens[i];
	return sp_mc_out_dgram(&wk->out, i);
}

void
dp_mc_totals(const struct dp_mc *mc, struct dp_mc_stats *rt_out, struct mcexec_counters *mc_out)
{
	uint64_t *st = (uint64_t *)rt_out;
	uint64_t *c = (uint64_t *)mc_out;

	ASSERT(mc != NULL);
	ASSERT(mc->rt->workers > 0);
	memset(rt_out, 0, sizeof(*rt_out));
	memset(mc_out, 0, sizeof(*mc_out));
	for (uint32_t i = 0; i < mc->rt->workers; i++) {
		for (size_t k = 0; k < STATS_WORDS; k++)
			st[k] += word_load(&mc->wk[i]->st, k);
		for (size_t k = 0; k < COUNTER_WORDS; k++)
			c[k] += word_load(&mc->wk[i]->counters, k);
	}
}

void
dp_mc_print(FILE *out, const struct dp_mc *mc)
{
	struct dp_mc_stats s;
	struct mcexec_counters c;

	if (mc == NULL)
		return;
	dp_mc_totals(mc, &s, &c);
	fprintf(out,
	        "memcached: datagrams %" PRIu64 " commands %" PRIu64 " replies %" PRIu64
	        " errors %" PRIu64 " dropped_frame %" PRIu64 " truncated %" PRIu64
	        " out_full %" PRIu64 " cross_partition %" PRIu64 " concurrent_busy %" PRIu64 "\n",
	        c.datagrams, c.commands, s.reply_dgrams, c.error_replies, c.dropped_frame,
	        c.truncated, c.out_full, c.cross_partition, c.concurrent_busy);
	fprintf(out,
	        "memcached placement: owner %" PRIu64 " multi %" PRIu64 " any %" PRIu64
	        " busy %" PRIu64 " handoff_out %" PRIu64 " deferred %" PRIu64 " wrong_node %" PRIu64
	        " unserved %" PRIu64 " nombuf %" PRIu64 " touch_out %" PRIu64 " touch_in %" PRIu64
	        " touch_dropped %" PRIu64 " flush_remote %" PRIu64 " flush_applied %" PRIu64
	        " bad_message %" PRIu64 "\n",
	        s.run_owner, s.run_multi, s.run_any, s.busy, s.handoff_out, s.deferred,
	        s.wrong_node, s.unserved, s.nombuf, s.touch_out, s.touch_in, s.touch_dropped,
	        s.flush_remote, s.flush_applied, s.bad_message);
}

/* ---- The memcached service (service.h) ------------------------------------------------ */

static enum dp_msg_kind
mc_classify(const struct dp_runtime *rt, const struct rte_mbuf *m, const struct net_pkt *pkt)
{
	(void)m;
	return dp_mc_is_port(rt, pkt->dst_port) ? DP_MSG_MEMCACHED : DP_MSG_NONE;
}

/* Queues what one dp_mc_serve or dp_mc_busy call asks for. */
static void
mc_apply(struct dp_worker *w, const struct dp_iter *it, const struct dp_mc_result *res)
{
	ASSERT(res->tx_count <= DP_MC_REPLY_DGRAMS_MAX);
	ASSERT(res->handoff_count <= DP_MC_HANDOFFS_MAX);
	for (uint32_t i = 0; i < res->tx_count; i++)
		dp_worker_tx(w, res->tx[i]);
	for (uint32_t i = 0; i < res->handoff_count; i++)
		dp_worker_stage(w, it, res->handoff_to[i], res->handoff[i]);
}

static void
mc_serve(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **m, unsigned int n)
{
	struct dp_mc_result *res = &w->rt->mc->wk[w->index]->serve_res;

	ASSERT(n >= 1 && n <= DP_BURST);
	for (unsigned int i = 0; i < n; i++) {
		dp_mc_serve(w, it->t, it->now_s, m[i], res);
		mc_apply(w, it, res);
	}
}

static void
mc_busy(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m)
{
	struct dp_mc_result *res = &w->rt->mc->wk[w->index]->serve_res;

	dp_mc_busy(w, it->t, it->now_s, m, res);
	/* A busy answer never hands anything on (flush_handoffs is running). */
	ASSERT(res->handoff_count == 0);
	mc_apply(w, it, res);
}

static void
mc_poll(struct dp_worker *w, const struct dp_iter *it)
{
	dp_mc_poll(w, it->t, it->now_s);
}

static void
mc_print(FILE *out, const struct dp_runtime *rt)
{
	dp_mc_print(out, rt->mc);
}

const struct dp_service_ops dp_mc_service = {
        .name = "memcached",
        .classify = mc_classify,
        .serve = mc_serve,
        .busy = mc_busy,
        .poll = mc_poll,
        .drain = dp_mc_fwd_drain,
        .print = mc_print,
        .fwd_proto = SP_FWD_MEMCACHED,
        .fwd_request = dp_mc_fwd_request,
        .fwd_answer = dp_mc_fwd_answer,
        .fwd_expire = dp_mc_fwd_expire,
};
