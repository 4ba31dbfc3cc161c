/* SPDX-License-Identifier: BSD-3-Clause */
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
#include "dataplane/binexec/binexec.h"
#include "dataplane/store/store.h"
#include "forward.h"
#include "mcport.h"
#include "prefetch.h"

#define MOD "worker"

/* How often a worker copies its stores' totals into its counters. */
#define PUBLISH_INTERVAL_MS 100u
/*
 * Requests whose store memory is prefetched before the first of them runs: enough to
 * overlap the misses of a burst of single-request datagrams, few enough that the lines
 * they bring (two buckets and an item each) are still in L1 when they run. A burst of
 * batched datagrams is served in groups of about this many requests.
 */
#define PIPELINE_REQS 32u
/* Frames of a burst whose memory is requested ahead of the one being classified. */
#define PREFETCH_AHEAD 4u
/* tx_burst attempts on the way out, to send the backlog before the port stops. */
#define EXIT_TX_TRIES_MAX 64u

/* Where one decoded request goes. */
enum dest_kind {
	DEST_EXECUTE = 0, /* owned here: run it */
	DEST_ANSWER,      /* answer here without a store: bad request or ROUTE */
	DEST_WRONG_NODE,  /* another node owns it: answer WRONG_PARTITION */
	DEST_UNSERVED,    /* nobody serves it here: answer the table's unserved_status */
	DEST_FORWARD,     /* another node owns it and the client asked: forward it there */
	DEST_BUSY,        /* could not be forwarded now: answer SERVER_BUSY */
	DEST_FORWARDED,   /* sent to its owner node: its reply is relayed (forward.h) */
	DEST_DEFER,       /* owned here but arriving: hold it */
	DEST_HANDOFF,     /* another local worker: its ring */
};

/* Per-request destinations, and how many requests go where. */
struct dest_counts {
	uint32_t local;    /* EXECUTE, ANSWER, WRONG_NODE, UNSERVED */
	uint32_t deferred; /* DEFER */
	uint32_t handoff;  /* HANDOFF, to any worker */
	uint32_t forward;  /* FORWARD, to any node */
	uint64_t targets;  /* bit per worker receiving a hand-off */
	uint32_t first_defer_partition;
};

/*
 * One datagram being served. A burst is served in three passes over an array of these
 * (dp_worker.ctx): decode, route and prefetch the index buckets; prefetch the items; run.
 * By the third pass the store's memory is on its way for every datagram of the burst.
 */
struct dgram_ctx {
	struct rte_mbuf *m;
	struct dp_meta *meta;
	struct sp_bp_dgram dg;
	uint32_t count;
	bool in_place; /* serve_local: m can carry its own last reply datagram (reusable()) */
	struct dest_counts c;
	uint8_t kind[SP_BP_REQS_MAX];
	uint16_t target[SP_BP_REQS_MAX];
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
};

/* Per-iteration state passed down the call chain. */
struct iter {
	const struct route_table *t;
	uint32_t now_s;
	struct sp_binexec_route route;
};

static void flush_handoffs(struct dp_worker *w, const struct iter *it, uint16_t to);
static void serve_mc(struct dp_worker *w, const struct iter *it, struct rte_mbuf *m, bool here);

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
 * A reply datagram under construction. Its payload is built in the worker's scratch
 * buffer: the last reply datagram of a request datagram is then written over the request's
 * own mbuf (no allocation, and its lines are already in cache); earlier ones, when the
 * replies need several datagrams, go out in the worker's spare mbuf.
 */
struct reply {
	bool open;
	struct sp_bp_builder b;
};

/* Starts a reply datagram in the scratch buffer. */
static void
reply_start(struct dp_worker *w, struct reply *r, uint64_t datagram_id)
{
	ASSERT(!r->open);
	sp_bp_builder_init(&r->b, w->scratch, SP_BP_PAYLOAD_MAX, true, datagram_id);
	r->open = true;
}

/* Makes sure the worker holds a spare mbuf. Returns false (counted) when the pool is dry. */
static bool
spare_ready(struct dp_worker *w)
{
	ASSERT(w->rt->port.pool != NULL);
	if (w->spare != NULL)
		return true;
	w->spare = rte_pktmbuf_alloc(w->rt->port.pool);
	if (w->spare == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return false;
	}
	return true;
}

/* Whether the request mbuf m can carry its own reply: one direct, unshared segment with
 * room for the largest reply, and a request without IPv4 options (net_udp_reply in place). */
static bool
reusable(const struct rte_mbuf *m, const struct net_pkt *pkt)
{
	return RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1 && m->nb_segs == 1 &&
	       pkt->l4_off == NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN &&
	       (uint32_t)m->buf_len - m->data_off >= NET_UDP_REPLY_HDRS + SP_BP_PAYLOAD_MAX;
}

/*
 * Finishes the reply datagram in the scratch buffer and queues it, with Ethernet/IPv4/UDP
 * headers answering the request datagram d. With last == true it goes in d->m when that
 * can carry it (d->m is then consumed and set to NULL), else in the spare mbuf, which
 * spare_ready() must have provided. An empty reply is dropped.
 */
static void
reply_send(struct dp_worker *w, struct reply *r, struct dgram_ctx *d, bool last)
{
	const struct dp_port *port = &w->rt->port;
	const uint8_t *req_frame = rte_pktmbuf_mtod(d->m, const uint8_t *);
	struct rte_mbuf *m;
	uint32_t payload_len;
	uint32_t frame_len;

	if (!r->open)
		return;
	r->open = false;
	payload_len = sp_bp_builder_finish(&r->b);
	ASSERT(payload_len <= SP_BP_PAYLOAD_MAX);
	if (r->b.count == 0)
		return;
	if (last && d->in_place) {
		m = d->m;
		d->m = NULL;
	} else {
		ASSERT(w->spare != NULL);
		m = w->spare;
		w->spare = NULL;
	}
	ASSERT(rte_pktmbuf_tailroom(m) + rte_pktmbuf_data_len(m) >=
	       NET_UDP_REPLY_HDRS + payload_len);
	memcpy(rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS, w->scratch, payload_len);
	frame_len = net_udp_reply(rte_pktmbuf_mtod(m, uint8_t *), req_frame, &d->meta->pkt,
	                          (uint16_t)payload_len, w->ip_id++, port->tx_flags);
	ASSERT(frame_len == NET_UDP_REPLY_HDRS + payload_len);
	m->data_len = (uint16_t)frame_len;
	m->pkt_len = frame_len;
	m->ol_flags = port->tx_ol_flags;
	if (port->tx_ol_flags != 0) {
		m->l2_len = NET_ETH_HDR_LEN;
		m->l3_len = NET_IPV4_HDR_LEN;
	}
	DP_STAT_INC(w->stats, reply_dgrams);
	tx_queue(w, m);
}

/* Where table t says partition p lives: node index `node` (< t->node_count). */
static void
redirect_of(const struct route_table *t, uint32_t p, uint16_t node, struct sp_bp_redirect *rd)
{
	const struct route_node *n = &t->nodes[node];
	uint16_t worker = route_owner_workers(t)[p];

	ASSERT(node < t->node_count);
	ASSERT(p < t->partitions);
	rd->epoch = t->epoch;
	rd->node_id = n->node_id;
	rd->ipv4_be = n->ipv4_be;
	rd->port = (uint16_t)(n->binary_port + worker);
	rd->worker = worker;
	rd->partition = p;
}

/*
 * Runs (or refuses with `refuse` when it is not SP_BP_ST_OK) one request, appending its
 * reply; when the reply datagram is full it is sent (in the spare mbuf) and another
 * started (bounded: a request's reply always fits an empty datagram). Returns false when
 * a full reply datagram had no mbuf to go in (counted; the request is not executed).
 */
static bool
answer(struct dp_worker *w, const struct iter *it, struct dgram_ctx *d, uint32_t i, struct reply *r,
       enum sp_bp_status refuse)
{
	struct sp_binexec_stats *bx = &w->bx;
	const struct sp_bp_req *req = &d->reqs[i];
	struct store *s = NULL;
	uint32_t attempt;
	uint64_t ok_before = bx->status[SP_BP_ST_OK];
	uint64_t miss_before = bx->status[SP_BP_ST_NOT_FOUND];
	int rc = -SP_EFULL;

	ASSERT(i < d->count);
	/* Two attempts: the second one with an empty datagram, where every reply fits. */
	for (attempt = 0; attempt < 2 && rc == -SP_EFULL; attempt++) {
		if (attempt > 0) {
			/* Sent before the next request runs, so a dry pool loses no reply. */
			if (!spare_ready(w))
				return false;
			reply_send(w, r, d, false);
			/* The next datagram needs an mbuf of its own too when d->m cannot
			 * carry it: secured now, before anything else runs. */
			if (!d->in_place && !spare_ready(w))
				return false;
		}
		if (!r->open)
			reply_start(w, r, d->dg.datagram_id);
		if (refuse == SP_BP_ST_WRONG_PARTITION && d->kind[i] == DEST_WRONG_NODE) {
			struct sp_bp_redirect rd;

			redirect_of(it->t, req->partition, d->target[i], &rd);
			rc = sp_binexec_redirect(req, &rd, &r->b, bx);
			continue;
		}
		if (refuse != SP_BP_ST_OK) {
			rc = sp_binexec_refuse(req, refuse, &r->b, bx);
			continue;
		}
		if (req->err == SP_BP_ERR_OK && req->partition != SP_BP_PARTITION_ANY)
			s = w->rt->stores[req->partition];
		rc = sp_binexec_run(s, req, it->now_s, &it->route, &r->b, bx);
	}
	VERIFY(rc == 0);
	if (refuse == SP_BP_ST_OK && req->err == SP_BP_ERR_OK) {
		DP_STAT_INC(w->stats, requests);
		if (req->opcode < SP_BP_OP_LAST)
			DP_STAT_INC(w->stats, ops[req->opcode]);
		if (req->opcode == SP_BP_OP_GET) {
			if (bx->status[SP_BP_ST_OK] != ok_before)
				DP_STAT_INC(w->stats, hits);
			else if (bx->status[SP_BP_ST_NOT_FOUND] != miss_before)
				DP_STAT_INC(w->stats, misses);
		}
	}
	return true;
}

/*
 * Answers the requests of d that stay here (all == false: EXECUTE, ANSWER, WRONG_NODE and
 * UNSERVED ones) or every request with status `refuse` (all == true: a datagram that cannot be
 * handed on), then consumes d->m (it carries the last reply datagram, or is freed).
 * prepare_dgram() has prefetched the stores' memory.
 */
static void
serve_local(struct dp_worker *w, const struct iter *it, struct dgram_ctx *d, bool all,
            enum sp_bp_status refuse)
{
	struct reply r = {.open = false};
	uint32_t i;

	ASSERT(d->count <= SP_BP_REQS_MAX);
	ASSERT(d->meta != NULL);
	d->in_place = reusable(d->m, &d->meta->pkt);
	if (!d->in_place && !spare_ready(w)) {
		/* Nothing runs without an mbuf for its reply (counted); the client retries. */
		rte_pktmbuf_free(d->m);
		d->m = NULL;
		return;
	}
	for (i = 0; i < d->count; i++) {
		enum sp_bp_status st = refuse;

		if (!all && d->kind[i] != DEST_EXECUTE && d->kind[i] != DEST_ANSWER &&
		    d->kind[i] != DEST_WRONG_NODE && d->kind[i] != DEST_UNSERVED &&
		    d->kind[i] != DEST_BUSY)
			continue;
		if (!all && d->kind[i] == DEST_WRONG_NODE)
			st = SP_BP_ST_WRONG_PARTITION;
		else if (!all && d->kind[i] == DEST_BUSY)
			st = SP_BP_ST_SERVER_BUSY;
		else if (!all && d->kind[i] == DEST_UNSERVED)
			st = (enum sp_bp_status)it->t->unserved_status;
		if (!answer(w, it, d, i, &r, st))
			break;
	}
	reply_send(w, &r, d, true);
	if (d->m != NULL)
		rte_pktmbuf_free(d->m);
	d->m = NULL;
}

/*
 * Builds a new mbuf holding the requests of d whose kind is `kind` (and, for hand-offs,
 * whose target is `target`): the request's Ethernet header, then a fresh IPv4/UDP-free
 * datagram at the reply offset (only addresses and ports are needed to answer it, and
 * they travel in the meta). Returns NULL (counted) when the pool is dry.
 */
static struct rte_mbuf *
copy_group(struct dp_worker *w, const struct dgram_ctx *d, uint8_t kind, uint16_t target)
{
	struct sp_bp_builder b;
	struct rte_mbuf *c;
	struct dp_meta *cm;
	uint32_t len;
	uint32_t i;
	uint16_t n = 0;

	ASSERT(kind == DEST_DEFER || kind == DEST_HANDOFF);
	c = rte_pktmbuf_alloc(w->rt->port.pool);
	if (c == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return NULL;
	}
	memcpy(rte_pktmbuf_mtod(c, uint8_t *), rte_pktmbuf_mtod(d->m, uint8_t *), NET_ETH_HDR_LEN);
	sp_bp_builder_init(&b, rte_pktmbuf_mtod(c, uint8_t *) + NET_UDP_REPLY_HDRS,
	                   SP_BP_PAYLOAD_MAX, false, d->dg.datagram_id);
	for (i = 0; i < d->count; i++) {
		if (d->kind[i] != kind || (kind == DEST_HANDOFF && d->target[i] != target))
			continue;
		/* The record as it arrived (d->m is still intact): no re-encoding. A subset
		 * of a datagram that fitted always fits; bad requests are never copied. */
		VERIFY(sp_bp_add_record(&b, &d->reqs[i]) == 0);
		n++;
	}
	len = sp_bp_builder_finish(&b);
	ASSERT(n > 0);
	c->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + len);
	c->pkt_len = c->data_len;
	cm = dp_meta_of(c);
	cm->pkt = d->meta->pkt;
	cm->pkt.l3_off = NET_ETH_HDR_LEN;
	cm->pkt.l4_off = NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN;
	cm->pkt.payload_off = NET_UDP_REPLY_HDRS;
	cm->pkt.payload_len = (uint16_t)len;
	cm->reqs = n;
	cm->hops = (uint8_t)(d->meta->hops + 1);
	DP_STAT_INC(w->stats, handoff_copies);
	return c;
}

/* Stages mbuf m (carrying m's meta->reqs requests) for worker `to`'s ring. */
static void
stage_handoff(struct dp_worker *w, const struct iter *it, uint16_t to, struct rte_mbuf *m)
{
	ASSERT(to < w->rt->workers);
	ASSERT(to != w->index);
	if (w->out_count[to] == DP_BURST)
		flush_handoffs(w, it, to);
	w->out[to][w->out_count[to]++] = m;
}

/* Holds mbuf m until its partition has arrived; falls back to our own ring, then drops. */
static void
defer_dgram(struct dp_worker *w, struct rte_mbuf *m, uint32_t partition)
{
	struct dp_meta *meta = dp_meta_of(m);

	ASSERT(partition < w->rt->partitions);
	DP_STAT_ADD(w->stats, deferred, meta->reqs);
	if (route_defer_push(&w->defer, m, partition) == 0)
		return;
	if (dp_handoff_send(&w->rt->handoff, w->index, &m, 1) == 1)
		return;
	DP_STAT_ADD(w->stats, dp_drop[DP_DROP_DEFER_FULL], meta->reqs);
	DP_STAT_INC(w->stats, bad_pkts);
	rte_pktmbuf_free(m);
}

/* Decodes the datagram in d->m into d. Returns false (counted, frame freed) when bad. */
static bool
decode(struct dp_worker *w, struct dgram_ctx *d)
{
	const uint8_t *payload;
	enum sp_bp_err err;

	d->meta = dp_meta_of(d->m);
	ASSERT(d->meta->pkt.payload_off + d->meta->pkt.payload_len <= rte_pktmbuf_data_len(d->m));
	payload = rte_pktmbuf_mtod(d->m, const uint8_t *) + d->meta->pkt.payload_off;
	err = sp_bp_decode_requests(payload, d->meta->pkt.payload_len, w->rt->partitions, d->reqs,
	                            SP_BP_REQS_MAX, &d->dg);
	if (err != SP_BP_ERR_OK) {
		ASSERT((unsigned int)err < SP_BP_ERR_COUNT);
		DP_STAT_INC(w->stats, bp_err[err]);
		DP_STAT_INC(w->stats, bad_pkts);
		rte_pktmbuf_free(d->m);
		return false;
	}
	d->count = d->dg.count;
	ASSERT(d->count >= 1 && d->count <= SP_BP_REQS_MAX);
	DP_STAT_INC(w->stats, dgrams);
	return true;
}

/* Decides where each request of d goes, from the routing table of this iteration. */
static void
route_requests(struct dp_worker *w, const struct iter *it, struct dgram_ctx *d,
               struct dest_counts *c)
{
	uint32_t i;

	ASSERT(it->t->partitions == w->rt->partitions);
	memset(c, 0, sizeof(*c));
	for (i = 0; i < d->count; i++) {
		const struct sp_bp_req *req = &d->reqs[i];
		uint16_t target = 0;

		d->target[i] = 0;
		if (req->err != SP_BP_ERR_OK) {
			ASSERT(req->err < SP_BP_ERR_COUNT);
			DP_STAT_INC(w->stats, bp_err[req->err]);
			d->kind[i] = DEST_ANSWER;
			c->local++;
			continue;
		}
		if (req->partition == SP_BP_PARTITION_ANY) {
			/* ROUTE: answered here, or refused like a partition nobody serves. */
			d->kind[i] = w->route_ok ? DEST_ANSWER : DEST_UNSERVED;
			c->local++;
			continue;
		}
		switch (route_decide(it->t, req->partition, w->index, &target)) {
		case ROUTE_EXECUTE:
			d->kind[i] = DEST_EXECUTE;
			c->local++;
			break;
		case ROUTE_REMOTE:
			d->target[i] = target; /* the owner's node index */
			if ((d->dg.flags & SP_BP_F_FORWARD) != 0 && !d->meta->refused) {
				d->kind[i] = DEST_FORWARD;
				c->forward++;
				break;
			}
			d->kind[i] = DEST_WRONG_NODE;
			DP_STAT_INC(w->stats, wrong_node);
			c->local++;
			break;
		case ROUTE_UNSERVED:
			d->kind[i] = DEST_UNSERVED;
			DP_STAT_INC(w->stats, unserved);
			c->local++;
			break;
		case ROUTE_DEFER:
			d->kind[i] = DEST_DEFER;
			if (c->deferred++ == 0)
				c->first_defer_partition = req->partition;
			break;
		case ROUTE_HANDOFF:
		default:
			ASSERT(target < w->rt->workers);
			d->kind[i] = DEST_HANDOFF;
			d->target[i] = target;
			c->targets |= UINT64_C(1) << target;
			c->handoff++;
			break;
		}
	}
	ASSERT(c->local + c->deferred + c->handoff + c->forward == d->count);
}

/*
 * Sends the FORWARD requests of d to their owners, one message per owning node and worker
 * (more when they do not fit one), their records copied as they arrived; those that cannot
 * go now become BUSY (table full) or WRONG_NODE (owner unreachable) and are answered here.
 */
static void
forward_requests(struct dp_worker *w, const struct iter *it, struct dgram_ctx *d)
{
	struct dest_counts *c = &d->c;
	const struct sp_bp_req *grp[SP_BP_REQS_MAX];
	uint8_t idx[SP_BP_REQS_MAX];
	const uint16_t *ow = route_owner_workers(it->t);

	ASSERT(c->forward > 0);
	for (uint32_t i = 0; i < d->count; i++) {
		uint32_t n = 0, size = SP_BP_DGRAM_HDR_SIZE;
		uint16_t node = d->target[i];
		uint16_t worker;
		enum dp_fwd_rc rc;

		if (d->kind[i] != DEST_FORWARD)
			continue;
		worker = ow[d->reqs[i].partition];
		for (uint32_t j = i; j < d->count; j++) {
			const struct sp_bp_req *q = &d->reqs[j];

			if (d->kind[j] != DEST_FORWARD || d->target[j] != node ||
			    ow[q->partition] != worker || size + q->record_len > SP_FWD_PAYLOAD_MAX)
				continue;
			size += q->record_len;
			grp[n] = q;
			idx[n++] = (uint8_t)j;
			d->kind[j] = DEST_ANSWER; /* placeholder: settled below */
		}
		ASSERT(n >= 1);
		rc = dp_fwd_bp_request(w, it->t, d->m, d->dg.datagram_id, grp, n, node, worker);
		for (uint32_t k = 0; k < n; k++) {
			if (rc == DP_FWD_SENT) {
				d->kind[idx[k]] = DEST_FORWARDED;
				continue;
			}
			d->kind[idx[k]] = rc == DP_FWD_FULL ? DEST_BUSY : DEST_WRONG_NODE;
			c->local++;
		}
		c->forward -= n;
	}
	ASSERT(c->forward == 0);
}

/* Whether request i of d runs here on a store (what the prefetch passes load for). */
static inline bool
runs_on_store(const struct dgram_ctx *d, uint32_t i)
{
	return d->kind[i] == DEST_EXECUTE && sp_bp_op_has_key(d->reqs[i].opcode);
}

/*
 * First pass over a binary-protocol datagram in d->m: decodes and routes it, and starts
 * loading the index buckets of the requests this worker will run. Returns false when the
 * datagram was bad (counted, freed).
 */
static bool
prepare_dgram(struct dp_worker *w, const struct iter *it, struct dgram_ctx *d)
{
	uint32_t i;

	if (!decode(w, d))
		return false;
	route_requests(w, it, d, &d->c);
	for (i = 0; i < d->count; i++) {
		const struct sp_bp_req *req = &d->reqs[i];

		if (!runs_on_store(d, i))
			continue;
		/* From the compact layout array: no wait for the store's descriptor, which
		 * is only needed when the request runs. */
		store_layout_prefetch(&w->rt->layouts[req->partition], req->hash);
		rte_prefetch0(w->rt->stores[req->partition]);
	}
	return true;
}

/* Second pass: the buckets are (nearly) in cache; start loading the items they point at. */
static void
prefetch_items(struct dp_worker *w, const struct dgram_ctx *d)
{
	uint32_t i;

	for (i = 0; i < d->count; i++) {
		const struct sp_bp_req *req = &d->reqs[i];

		if (runs_on_store(d, i))
			store_layout_prefetch_item(&w->rt->layouts[req->partition], req->hash,
			                           req->key_len);
	}
}

/*
 * Last pass over a prepared datagram: executes and answers what this worker owns, hands
 * the rest to its owners, and consumes d->m (sent on, deferred or freed).
 */
static void
finish_dgram(struct dp_worker *w, const struct iter *it, struct dgram_ctx *d)
{
	struct dest_counts *c = &d->c;
	struct rte_mbuf *m = d->m;
	struct rte_mbuf *copy;
	uint16_t to;

	if (c->local == d->count) {
		serve_local(w, it, d, false, SP_BP_ST_OK);
		return;
	}
	if (d->meta->hops >= DP_HANDOFF_HOPS_MAX) {
		/* Ownership kept moving under this datagram: let the client retry. */
		DP_STAT_ADD(w->stats, dp_drop[DP_DROP_HANDOFF_HOPS], d->count);
		serve_local(w, it, d, true, SP_BP_ST_SERVER_BUSY);
		return;
	}
	if (c->forward > 0) {
		/* Before anything reuses d->m: the records are copied from it. */
		uint32_t sent;

		forward_requests(w, it, d);
		sent = d->count - c->local - c->deferred - c->handoff;
		if (sent == d->count) {
			rte_pktmbuf_free(m);
			return;
		}
		if (c->local == d->count - sent && c->deferred == 0 && c->handoff == 0) {
			serve_local(w, it, d, false, SP_BP_ST_OK);
			return;
		}
	}
	if (c->deferred == d->count || (c->handoff == d->count && rte_is_power_of_2(c->targets))) {
		/* The whole datagram goes one way: move the frame itself. */
		d->meta->hops++;
		d->meta->reqs = (uint16_t)d->count;
		if (c->deferred == d->count) {
			defer_dgram(w, m, c->first_defer_partition);
		} else {
			to = (uint16_t)rte_bsf64(c->targets);
			DP_STAT_INC(w->stats, handoff_out_mbufs);
			stage_handoff(w, it, to, m);
		}
		return;
	}
	for (to = 0; c->targets != 0 && to < w->rt->workers; to++) {
		if ((c->targets & (UINT64_C(1) << to)) == 0)
			continue;
		copy = copy_group(w, d, DEST_HANDOFF, to);
		if (copy != NULL) {
			DP_STAT_INC(w->stats, handoff_out_mbufs);
			stage_handoff(w, it, to, copy);
		}
	}
	if (c->deferred > 0) {
		copy = copy_group(w, d, DEST_DEFER, 0);
		if (copy != NULL)
			defer_dgram(w, copy, c->first_defer_partition);
	}
	if (c->local > 0)
		serve_local(w, it, d, false, SP_BP_ST_OK);
	else
		rte_pktmbuf_free(m);
}

/* The second and third passes over the first k prepared datagrams of w->ctx. */
static void
serve_prepared(struct dp_worker *w, const struct iter *it, unsigned int k)
{
	unsigned int i;

	ASSERT(k <= DP_BURST);
	for (i = 0; i < k; i++)
		prefetch_items(w, &w->ctx[i]);
	for (i = 0; i < k; i++)
		finish_dgram(w, it, &w->ctx[i]);
}

/*
 * Serves a burst of datagrams whose meta is filled (from the NIC after classify_frame, from
 * our ring or from the defer queue), in arrival order: binary ones in the passes of
 * dgram_ctx, a group at a time; a memcached one after the binary ones before it are done.
 * Consumes every mbuf. n >= 1: serve_burst() takes empty bursts.
 */
static void
serve_burst_frames(struct dp_worker *w, const struct iter *it, struct rte_mbuf **pkts,
                   unsigned int n)
{
	unsigned int reqs = 0;
	unsigned int k = 0;
	unsigned int i;

	ASSERT(n >= 1 && n <= DP_BURST);
	for (i = 0; i < n; i++) {
		struct dgram_ctx *d = &w->ctx[k];

		if (dp_mc_owns_mbuf(w->rt, pkts[i])) {
			serve_prepared(w, it, k);
			k = 0;
			reqs = 0;
			serve_mc(w, it, pkts[i], false);
			continue;
		}
		if (dp_fwd_is_message(pkts[i])) {
			/* Another node's forwarded request, or an owner's answer to ours. */
			serve_prepared(w, it, k);
			k = 0;
			reqs = 0;
			dp_fwd_input(w, it->t, it->now_s, pkts[i]);
			continue;
		}
		d->m = pkts[i];
		if (!prepare_dgram(w, it, d))
			continue;
		k++;
		reqs += d->count;
		/* Enough requests in flight: finish these before their lines leave L1. */
		if (reqs >= PIPELINE_REQS || i + 1 == n) {
			serve_prepared(w, it, k);
			k = 0;
			reqs = 0;
		}
	}
	serve_prepared(w, it, k);
}

/*
 * serve_burst_frames() for a burst that may be empty: most are, on the defer queue and the
 * hand-off ring, and an idle iteration then makes no call.
 */
static inline void
serve_burst(struct dp_worker *w, const struct iter *it, struct rte_mbuf **pkts, unsigned int n)
{
	if (n > 0)
		serve_burst_frames(w, it, pkts, n);
}

/*
 * Sends worker `to` what is staged for it. Datagrams its ring cannot take are answered
 * SERVER_BUSY from here (the client retries), counted as ring-full drops.
 */
static void
flush_handoffs(struct dp_worker *w, const struct iter *it, uint16_t to)
{
	struct dgram_ctx d;
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
	for (i = sent; i < n; i++) {
		d.m = w->out[to][i];
		DP_STAT_ADD(w->stats, ring_full_drops, reqs[i]);
		if (dp_mc_owns_mbuf(w->rt, d.m)) {
			/* memcached has no busy reply: run it here (mcport.h). */
			serve_mc(w, it, d.m, true);
			continue;
		}
		if (!decode(w, &d))
			continue;
		serve_local(w, it, &d, true, SP_BP_ST_SERVER_BUSY);
	}
	w->out_count[to] = 0;
}

/* A memcached datagram or message (mcport.h): queues its replies, stages its hand-offs. */
static void
serve_mc(struct dp_worker *w, const struct iter *it, struct rte_mbuf *m, bool here)
{
	struct dp_mc_result res;
	uint32_t i;

	dp_mc_serve(w, it->t, it->now_s, m, here, &res);
	ASSERT(res.tx_count <= DP_MC_REPLY_DGRAMS_MAX);
	ASSERT(res.handoff_count <= DP_MC_HANDOFFS_MAX);
	/* Staging from inside flush_handoffs (here) would reenter it. */
	ASSERT(!here || res.handoff_count == 0);
	for (i = 0; i < res.tx_count; i++)
		tx_queue(w, res.tx[i]);
	for (i = 0; i < res.handoff_count; i++)
		stage_handoff(w, it, res.handoff_to[i], res.handoff[i]);
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
 * The service a UDP destination port selects: the binary protocol on port_base..
 * port_base+workers-1. This is the one dispatch point by port; the memcached protocol
 * (--memcached-port) plugs in here.
 */
static bool
is_binary_port(const struct dp_runtime *rt, uint16_t dst_port)
{
	return dst_port >= rt->cfg.port_base &&
	       (uint32_t)(dst_port - rt->cfg.port_base) < rt->workers;
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
		if (!is_binary_port(rt, pkt.dst_port) && !dp_mc_is_port(rt, pkt.dst_port)) {
			drop_frame(w, m, DP_DROP_NO_SERVICE);
			return false;
		}
		dp_meta_of(m)->pkt = pkt;
		dp_meta_of(m)->hops = 0;
		dp_meta_of(m)->reqs = 0;
		dp_meta_of(m)->refused = 0;
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
 * Rebuilds what a ROUTE reply carries (every node, and partition -> node and worker) when
 * the table changed. The node's own record falls back to its configuration for what a
 * single-node table does not know (address, ports). A table with an unserved partition
 * (route.h ROUTE_WORKER_NONE: no map yet, no lease, removed) or an entry that does not name
 * a valid node and worker leaves route_ok false: ROUTE is answered unserved_status.
 */
static void
refresh_route_owner(struct dp_worker *w, struct iter *it)
{
	const struct route_table *t = it->t;
	const struct dp_config *cfg = &w->rt->cfg;
	uint32_t p;

	ASSERT(t != NULL);
	ASSERT(t->node_count <= SP_MEMBERS_MAX);
	if (w->route_owner_table != t || w->route_owner_publication != t->publication) {
		const uint16_t *ow = route_owner_workers(t);
		bool ok = t->node_count >= 1 && t->node_count <= SP_BP_ROUTE_NODES_MAX;

		for (uint32_t n = 0; n < t->node_count; n++) {
			struct sp_bp_route_node *rn = &w->route_nodes[n];

			rn->node_id = t->nodes[n].node_id;
			rn->ipv4_be = t->nodes[n].ipv4_be;
			rn->binary_port = t->nodes[n].binary_port;
			rn->memcached_port = t->nodes[n].memcached_port;
			rn->worker_count = t->nodes[n].worker_count;
			if (n == t->self_index) {
				if (rn->ipv4_be == 0)
					rn->ipv4_be = cfg->ip_be;
				if (rn->binary_port == 0)
					rn->binary_port = cfg->port_base;
				if (rn->memcached_port == 0)
					rn->memcached_port = cfg->memcached_port;
			}
			ok = ok && rn->worker_count >= 1 &&
			     rn->worker_count <= SP_BP_ROUTE_WORKERS_MAX;
		}
		for (p = 0; p < t->partitions; p++) {
			struct route_entry e = route_lookup(t, p);

			/* A node that serves nothing here (no map yet, lease lost) sends the
			 * client elsewhere rather than hand out a map it does not act on. */
			ok = ok && e.worker != ROUTE_WORKER_NONE && e.node < t->node_count &&
			     ow[p] < w->route_nodes[e.node].worker_count;
			w->route_owner[p] = sp_bp_route_entry(e.node, ow[p]);
		}
		w->route_ok = ok;
		w->route_owner_table = t;
		w->route_owner_publication = t->publication;
	}
	it->route.epoch = t->epoch;
	it->route.partitions = t->partitions;
	it->route.node_count = t->node_count;
	it->route.self = t->self_index;
	it->route.nodes = w->route_nodes;
	it->route.owner = w->route_owner;
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
	struct iter it;
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
	refresh_route_owner(w, &it);

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

	if (rt->mc != NULL)
		dp_mc_poll(w, it.t, it.now_s);
	dp_fwd_poll(w);
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

	dp_fwd_drain(w);
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
	w->ctx = rte_zmalloc_socket("sp_worker_ctx", DP_BURST * sizeof(w->ctx[0]),
	                            RTE_CACHE_LINE_SIZE, socket);
	if (w->ctx == NULL) {
		SP_LOG_ERR(MOD, "worker %u: cannot allocate %zu bytes of burst state", index,
		           DP_BURST * sizeof(w->ctx[0]));
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
