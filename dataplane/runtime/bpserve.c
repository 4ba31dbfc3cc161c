/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The binary-protocol service (service.h, docs/services.md): decodes each request datagram,
 * routes every request to its partition's owner, runs what this worker owns (built-in
 * opcodes through binexec, registered ones through the user hook), hands the rest to the
 * owning workers, holds what is arriving, forwards what another node owns when the client
 * asked, and answers the rest here. A burst is served in the passes of struct dgram_ctx so
 * that the store's memory is on its way before a request runs.
 */
#include "service.h"

#include <errno.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include "common/errors.h"
#include "common/verify.h"
#include "dataplane/binexec/binexec.h"
#include "dataplane/store/store.h"
#include "bpforward.h"
#include "forward.h"
#include "prefetch.h"
#include "worker.h"

/*
 * Requests whose store memory is prefetched before the first of them runs: enough to
 * overlap the misses of a burst of single-request datagrams, few enough that the lines
 * they bring (two buckets and an item each) are still in L1 when they run. A burst of
 * batched datagrams is served in groups of about this many requests.
 */
#define PIPELINE_REQS 32u

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
	DEST_READ,        /* another local worker's GET, read here (read_shared_gets) */
};

/* Per-request destinations, and how many requests go where. */
struct dest_counts {
	uint32_t local;     /* EXECUTE, ANSWER, WRONG_NODE, UNSERVED, BUSY, READ */
	uint32_t deferred;  /* DEFER */
	uint32_t handoff;   /* HANDOFF, to any worker */
	uint32_t forward;   /* FORWARD, to any node */
	uint64_t targets;   /* bit per worker receiving a hand-off */
	uint64_t writes_to; /* bit per worker receiving a hand-off that is not a GET */
	uint32_t handed;    /* bit per request: HANDOFF */
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
	/* Bit i: request i runs on a store here (DEST_EXECUTE with a key): what the prefetch
	 * passes load for. */
	uint32_t on_store;
	/* Bit i: request i is a GET read here from another worker's store (DEST_READ). */
	uint32_t read_here;
	/* What prefetch_items() found for each request of on_store, handed to its GET so the
	 * buckets are searched once. */
	struct store_probe probe[SP_BP_REQS_MAX];
};

SP_STATIC_ASSERT(SP_BP_REQS_MAX <= 32, "dgram_ctx.on_store has a bit per request");

static void refresh_route_owner(struct dp_worker *w, const struct route_table *t);

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
 * Queues mbuf m, whose payload (payload_len bytes at NET_UDP_REPLY_HDRS) is a finished
 * reply datagram, with Ethernet/IPv4/UDP headers answering the request frame req_frame
 * (described by pkt; it may be m's own frame).
 */
static void
reply_out(struct dp_worker *w, struct rte_mbuf *m, const uint8_t *req_frame,
          const struct net_pkt *pkt, uint32_t payload_len)
{
	const struct dp_port *port = &w->rt->port;
	uint32_t frame_len;

	frame_len = net_udp_reply(rte_pktmbuf_mtod(m, uint8_t *), req_frame, pkt,
	                          (uint16_t)payload_len, w->ip_id++, port->tx_flags);
	ASSERT(frame_len == NET_UDP_REPLY_HDRS + payload_len);
	dp_tx_frame_ready(port, m, frame_len);
	DP_STAT_INC(w->stats, reply_dgrams);
	dp_worker_tx(w, m);
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
	const uint8_t *req_frame = rte_pktmbuf_mtod(d->m, const uint8_t *);
	struct rte_mbuf *m;
	uint32_t payload_len;

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
	reply_out(w, m, req_frame, &d->meta->pkt, payload_len);
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

/* dp_bp_run (service.h): a built-in opcode through binexec, a registered one through the
 * user hook. it, m and datagram_id describe a request received from a client (it and m
 * NULL for one another node forwarded): what a registered operation that answers later
 * needs. */
static inline int
bp_exec(struct dp_worker *w, const struct sp_bp_req *req, uint32_t now_s, uint64_t epoch,
        const struct sp_binexec_route *route, struct sp_bp_builder *reply, const struct dp_iter *it,
        const struct rte_mbuf *m, uint64_t datagram_id)
{
	const struct dp_runtime *rt = w->rt;
	struct store *s = NULL;

	ASSERT(req->err == SP_BP_ERR_OK);
	ASSERT(req->partition == SP_BP_PARTITION_ANY || req->partition < rt->partitions);
	if (likely((sp_bp_op(req->opcode)->props & SP_BP_OPF_USER) == 0)) {
		if (req->partition != SP_BP_PARTITION_ANY)
			s = rt->stores[req->partition];
		return sp_binexec_run(s, req, now_s, route, reply, &w->bx);
	}
	if (rt->bp_user_fn == NULL) {
		/* Registered in the table, but nothing here runs it. */
		DP_STAT_INC(w->stats, bp_err[SP_BP_ERR_BAD_OPCODE]);
		return sp_binexec_refuse(req, SP_BP_ST_BAD_REQUEST, reply, &w->bx);
	}
	const struct dp_bp_exec x = {
	        .worker = w->index,
	        .now_s = now_s,
	        .epoch = epoch,
	        .partition = req->partition,
	        .it = it,
	        .m = m,
	        .datagram_id = datagram_id,
	};
	uint32_t count_before = reply->count;
	int rc = rt->bp_user_fn(rt->bp_user_ctx, &x, req, reply);

	if (rc == -SP_EFULL) {
		VERIFY(reply->count == count_before);
		w->bx.reply_full++;
		return rc;
	}
	if (rc == 0) {
		VERIFY(reply->count == count_before + 1); /* one reply per request */
		return 0;
	}
	if (rc == DP_BP_USER_LATER && m != NULL) {
		/* Answered later by the operation itself (a gather, taskport.h). */
		VERIFY(reply->count == count_before);
		return 0;
	}
	/* The operation failed without answering: INTERNAL. */
	VERIFY(reply->count == count_before);
	return sp_binexec_refuse(req, SP_BP_ST_INTERNAL, reply, &w->bx);
}

/*
 * What answer() and serve_get() executed, added to the worker's counters once per
 * serve_local() call (tally_flush) rather than once per request: requests, GET hits and
 * misses, and the opcode counts: serve_get()'s GETs as one number, answer()'s requests as
 * runs of one opcode (a datagram of one opcode is one run).
 */
struct tally {
	uint32_t requests;
	uint32_t hits;
	uint32_t misses;
	uint32_t gets; /* GETs serve_get() ran: added to ops[SP_BP_OP_GET] */
	uint32_t run;  /* other requests of opcode run_op not yet added to ops[] */
	uint8_t run_op;
};

static inline void
tally_op(struct dp_worker *w, struct tally *t, uint8_t op)
{
	if (op != t->run_op) {
		if (t->run != 0)
			DP_STAT_ADD(w->stats, ops[t->run_op], t->run);
		t->run_op = op;
		t->run = 0;
	}
	t->run++;
}

static void
tally_flush(struct dp_worker *w, struct tally *t)
{
	if (t->requests == 0)
		return;
	DP_STAT_ADD(w->stats, requests, t->requests);
	if (t->gets != 0)
		DP_STAT_ADD(w->stats, ops[SP_BP_OP_GET], t->gets);
	if (t->run != 0)
		DP_STAT_ADD(w->stats, ops[t->run_op], t->run);
	if (t->hits != 0)
		DP_STAT_ADD(w->stats, hits, t->hits);
	if (t->misses != 0)
		DP_STAT_ADD(w->stats, misses, t->misses);
}

/*
 * Runs (or refuses with `refuse` when it is not SP_BP_ST_OK) one request, appending its
 * reply; when the reply datagram is full it is sent (in the spare mbuf) and another
 * started (bounded: a request's reply always fits an empty datagram). Returns false when
 * a full reply datagram had no mbuf to go in (counted; the request is not executed).
 */
static bool
answer(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d, uint32_t i,
       struct reply *r, enum sp_bp_status refuse, struct tally *t)
{
	struct sp_binexec_stats *bx = &w->bx;
	const struct sp_bp_req *req = &d->reqs[i];
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
		if (req->err != SP_BP_ERR_OK) {
			rc = sp_binexec_run(NULL, req, it->now_s, NULL, &r->b, bx);
		} else if (d->kind[i] == DEST_READ) {
			rc = sp_binexec_get_shared(w->rt->stores[req->partition], req, it->now_s,
			                           &r->b, bx);
			rc = rc < 0 ? rc : 0;
		} else {
			rc = bp_exec(w, req, it->now_s, it->t->epoch, &w->route, &r->b, it, d->m,
			             d->dg.datagram_id);
		}
	}
	VERIFY(rc == 0);
	if (refuse == SP_BP_ST_OK && req->err == SP_BP_ERR_OK) {
		t->requests++;
		if (req->opcode < SP_BP_OP_LAST)
			tally_op(w, t, req->opcode);
		if (req->opcode == SP_BP_OP_GET) {
			if (bx->status[SP_BP_ST_OK] != ok_before)
				t->hits++;
			else if (bx->status[SP_BP_ST_NOT_FOUND] != miss_before)
				t->misses++;
		}
	}
	return true;
}

/*
 * An owned GET (request i of d, DEST_EXECUTE): binexec's GET with the probe prefetch_items()
 * recorded, without answer()'s dispatch. Returns false when its reply does not fit the
 * datagram under construction (nothing written, nothing counted): answer() then sends that
 * datagram and runs the GET again in the next.
 */
static inline bool
serve_get(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d, uint32_t i,
          struct reply *r, struct tally *t)
{
	const struct sp_bp_req *req = &d->reqs[i];
	int st;

	ASSERT(d->kind[i] == DEST_EXECUTE && req->opcode == SP_BP_OP_GET);
	if (!r->open)
		reply_start(w, r, d->dg.datagram_id);
	st = sp_binexec_get(w->rt->stores[req->partition], req, &d->probe[i], it->now_s, &r->b,
	                    &w->bx);
	if (st < 0)
		return false;
	t->requests++;
	t->gets++;
	t->hits += st == SP_BP_ST_OK;
	t->misses += st == SP_BP_ST_NOT_FOUND;
	return true;
}

/* *q with its record, key and value pointers moved to rec, a copy of its record. */
static inline struct sp_bp_req
req_moved(const struct sp_bp_req *q, const uint8_t *rec)
{
	struct sp_bp_req out = *q;

	out.record = rec;
	if (q->key != NULL)
		out.key = rec + (q->key - q->record);
	if (q->value != NULL)
		out.value = rec + (q->value - q->record);
	return out;
}

/*
 * A lone write split out of a mixed datagram travels with the datagram's reply
 * (DP_MSG_BP_FOLD; docs/services.md): the receiving worker answers what it owns, leaves
 * that last reply datagram unsent in the request's own mbuf, and hands the mbuf to the
 * write's owner, which runs the write, adds its answer to the reply and sends it. No share
 * to build, no second reply datagram, no answer travelling back (issue 14, section 3: one
 * request split out of a datagram). The write itself, decoded and with a copy of its
 * record, sits at FOLD_OFF, past the largest reply the payload can grow to.
 */
struct fold {
	struct sp_bp_req req; /* the write; key and value point into the record after this */
	uint32_t reply_len;   /* the reply datagram waiting for the answer: payload bytes */
	uint16_t reply_count; /* and replies in it */
};

#define FOLD_OFF RTE_ALIGN_CEIL(NET_UDP_REPLY_HDRS + SP_BP_PAYLOAD_MAX, _Alignof(struct fold))

static inline struct fold *
fold_of(struct rte_mbuf *m)
{
	return (struct fold *)(rte_pktmbuf_mtod(m, uint8_t *) + FOLD_OFF);
}

/*
 * serve_local()'s last reply datagram for a fold: copied into d->m unfinished, with room
 * for the write's answer (when the datagram under construction lacks it, that one is sent
 * now and the answer starts the next). Returns false when that needed an mbuf the pool did
 * not have (counted): the write is then lost, as a share would be, and the client retries.
 */
static bool
fold_park(struct dp_worker *w, struct reply *r, struct dgram_ctx *d, struct fold *f)
{
	ASSERT(d->in_place);
	if (r->open && !sp_bp_reply_fits(&r->b, sp_bp_op(f->req.opcode)->reply_room)) {
		if (!spare_ready(w))
			return false;
		reply_send(w, r, d, false);
	}
	if (!r->open)
		reply_start(w, r, d->dg.datagram_id);
	ASSERT(sp_bp_reply_fits(&r->b, sp_bp_op(f->req.opcode)->reply_room));
	f->reply_len = r->b.len;
	f->reply_count = r->b.count;
	memcpy(rte_pktmbuf_mtod(d->m, uint8_t *) + NET_UDP_REPLY_HDRS, w->scratch, r->b.len);
	r->open = false;
	return true;
}

/*
 * Answers the requests of d that stay here (all == false: EXECUTE, ANSWER, WRONG_NODE and
 * UNSERVED ones) or every request with status `refuse` (all == true: a datagram that cannot be
 * handed on), then consumes d->m (it carries the last reply datagram, or is freed), except
 * with a fold (fold_start()): d->m then keeps that reply unsent for the write's owner
 * (fold_park()) and is left in d->m for the caller to hand on. prepare_dgram() has
 * prefetched the stores' memory.
 */
static void
serve_local(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d, bool all,
            enum sp_bp_status refuse, struct fold *fold)
{
	struct reply r = {.open = false};
	struct tally t = {.requests = 0};
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

		if (!all && d->kind[i] == DEST_EXECUTE && d->reqs[i].opcode == SP_BP_OP_GET &&
		    serve_get(w, it, d, i, &r, &t))
			continue;
		if (!all && d->kind[i] != DEST_EXECUTE && d->kind[i] != DEST_ANSWER &&
		    d->kind[i] != DEST_WRONG_NODE && d->kind[i] != DEST_UNSERVED &&
		    d->kind[i] != DEST_BUSY && d->kind[i] != DEST_READ)
			continue;
		if (!all && d->kind[i] == DEST_WRONG_NODE)
			st = SP_BP_ST_WRONG_PARTITION;
		else if (!all && d->kind[i] == DEST_BUSY)
			st = SP_BP_ST_SERVER_BUSY;
		else if (!all && d->kind[i] == DEST_UNSERVED)
			st = (enum sp_bp_status)it->t->unserved_status;
		if (!answer(w, it, d, i, &r, st, &t))
			break;
	}
	tally_flush(w, &t);
	if (fold != NULL) {
		if (fold_park(w, &r, d, fold))
			return;
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
	}
	reply_send(w, &r, d, true);
	if (d->m != NULL)
		rte_pktmbuf_free(d->m);
	d->m = NULL;
}

/*
 * Whether the one request d hands on (c.handoff == 1) can travel with d's reply as a fold:
 * a built-in write (its answer's size is bounded by the opcode table's reply_room), a
 * request mbuf that can carry its own reply, and room past FOLD_OFF for the write and its
 * record. If so, puts them there (the record copied: the reply is about to overwrite the
 * payload) and returns where; else NULL, and the write goes as a share.
 */
static struct fold *
fold_start(struct dgram_ctx *d)
{
	const struct sp_bp_req *q = &d->reqs[rte_bsf32(d->c.handed)];
	uint32_t props = sp_bp_op(q->opcode)->props;
	struct fold *f;
	uint8_t *rec;

	ASSERT(d->c.handoff == 1 && rte_is_power_of_2(d->c.handed));
	ASSERT(d->kind[rte_bsf32(d->c.handed)] == DEST_HANDOFF && q->err == SP_BP_ERR_OK);
	if ((props & (SP_BP_OPF_WRITE | SP_BP_OPF_USER)) != SP_BP_OPF_WRITE ||
	    !reusable(d->m, &d->meta->pkt) ||
	    FOLD_OFF + sizeof(*f) + q->record_len > (uint32_t)d->m->buf_len - d->m->data_off)
		return NULL;
	f = fold_of(d->m);
	rec = (uint8_t *)(f + 1);
	/* The record lies in the payload, which ends before FOLD_OFF: no overlap. */
	memcpy(rec, q->record, q->record_len);
	f->req = req_moved(q, rec);
	return f;
}

/*
 * The owner's half of a fold (mbuf m, DP_MSG_BP_FOLD): runs the write (or refuses it with
 * `refuse` when that is not SP_BP_ST_OK: the owner's ring was full), adds its answer to the
 * reply waiting in m and sends the reply. A write whose partition is arriving here waits
 * in the defer queue, reply and all, and comes back here once it has arrived (SERVER_BUSY
 * now if the queue is full). One whose partition this worker no longer runs (it moved
 * while the write was on its way) is answered SERVER_BUSY; the client retries.
 */
static void
fold_finish(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m,
            enum sp_bp_status refuse)
{
	struct dp_meta *meta = dp_meta_of(m);
	struct fold *f = fold_of(m);
	struct sp_bp_builder b = {
	        .buf = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS,
	        .cap = SP_BP_PAYLOAD_MAX,
	        .len = f->reply_len,
	        .count = f->reply_count,
	        .flags = SP_BP_F_REPLY, /* as reply_start() began it */
	};
	uint16_t target;
	int rc;

	ASSERT(meta->kind == DP_MSG_BP_FOLD);
	ASSERT(f->req.partition < w->rt->partitions && f->req.opcode < SP_BP_OP_LAST);
	if (refuse == SP_BP_ST_OK) {
		enum route_action a = route_decide(it->t, f->req.partition, w->index, &target);

		if (unlikely(a == ROUTE_DEFER) &&
		    route_defer_push(&w->defer, m, f->req.partition) == 0) {
			DP_STAT_ADD(w->stats, deferred, meta->reqs);
			return;
		}
		if (a != ROUTE_EXECUTE)
			refuse = SP_BP_ST_SERVER_BUSY;
	}
	if (refuse != SP_BP_ST_OK) {
		rc = sp_binexec_refuse(&f->req, refuse, &b, &w->bx);
	} else {
		rc = bp_exec(w, &f->req, it->now_s, it->t->epoch, &w->route, &b, it, NULL, 0);
		DP_STAT_INC(w->stats, requests);
		DP_STAT_INC(w->stats, ops[f->req.opcode]);
	}
	VERIFY(rc == 0); /* fold_park() left the room the opcode table asks */
	reply_out(w, m, rte_pktmbuf_mtod(m, const uint8_t *), &meta->pkt, sp_bp_builder_finish(&b));
}

/*
 * A share's requests travel decoded (DP_MSG_BP_SHARE): after its payload, at the first
 * boundary of this struct, the datagram header's fields and one struct sp_bp_req per
 * record, in order, their pointers into the same mbuf. The worker that serves it takes
 * them instead of decoding the records again (issue 14, section 3: the hand-off of one
 * request split out of a mixed datagram); the records stay, for what copies them on
 * (forwarding, a further hand-off) and for the busy answer. Only when they fit the mbuf's
 * room; otherwise the share is DP_MSG_BINARY and decoded where it is served.
 */
struct carried {
	struct sp_bp_dgram dg;
	struct sp_bp_req reqs[];
};

/* Where the decoded requests of a share whose payload pkt describes start in its frame. */
static inline uint32_t
carried_off(const struct net_pkt *pkt)
{
	return RTE_ALIGN_CEIL((uint32_t)pkt->payload_off + pkt->payload_len,
	                      (uint32_t) _Alignof(struct carried));
}

/* The bytes of x that equal v, as a bit per byte (bit k for byte k), exactly. */
static inline uint32_t
bytes_equal8(uint64_t x, uint8_t v)
{
	const uint64_t low7 = UINT64_C(0x7f7f7f7f7f7f7f7f);
	uint64_t z = x ^ (UINT64_C(0x0101010101010101) * v); /* 0 where equal */
	uint64_t hi = ~(((z & low7) + low7) | z | low7);     /* 0x80 in the zero bytes */

	/* Gathers the eight 0x80 flags into the top byte (each lands on its own bit). */
	return (uint32_t)(((hi >> 7) * UINT64_C(0x0102040810204080)) >> 56);
}

/* group_mask() one request at a time: what its asserts check it against. */
static uint32_t
group_mask_each(const struct dgram_ctx *d, uint8_t kind, uint16_t target)
{
	uint32_t mask = 0;

	for (uint32_t i = 0; i < d->count; i++) {
		if (d->kind[i] == kind && (kind != DEST_HANDOFF || d->target[i] == target))
			mask |= UINT32_C(1) << i;
	}
	return mask;
}

/*
 * The requests of d whose kind is `kind` (for hand-offs: and whose target is `target`), as
 * a bit per request, found eight kinds at a time: copy_group() visits only those, not every
 * request of the datagram (issue 14, section 3: one request split out of 32).
 */
static uint32_t
group_mask(const struct dgram_ctx *d, uint8_t kind, uint16_t target)
{
	uint32_t mask = 0;

	SP_STATIC_ASSERT(SP_BP_REQS_MAX == 32, "a request mask is 32 bits");
	SP_STATIC_ASSERT(sizeof(d->kind) % 8 == 0, "kinds are read eight at a time");
	ASSERT(d->count >= 1 && d->count <= SP_BP_REQS_MAX);
	for (uint32_t j = 0; j * 8 < d->count; j++) {
		uint64_t x;

		memcpy(&x, &d->kind[j * 8], sizeof(x));
		mask |= bytes_equal8(rte_le_to_cpu_64(x), kind) << (j * 8);
	}
	if (d->count < 32)
		mask &= (UINT32_C(1) << d->count) - 1; /* kinds past count are stale */
	if (kind == DEST_HANDOFF && d->c.targets != (UINT64_C(1) << target)) {
		/* More than one worker gets a share: keep this one's. */
		for (uint32_t m = mask; m != 0; m &= m - 1) {
			uint32_t i = (uint32_t)rte_bsf32(m);

			if (d->target[i] != target)
				mask &= ~(UINT32_C(1) << i);
		}
	}
	ASSERT(mask == group_mask_each(d, kind, target));
	return mask;
}

/*
 * Puts the requests of d in `group` (group_mask()), which copy_group() copied into b in
 * that order, after the payload of c as decoded requests, their pointers moved to the
 * copies of their records; false when they do not fit c's room (nothing written).
 */
static bool
carry_decoded(const struct dgram_ctx *d, struct rte_mbuf *c, const struct sp_bp_builder *b,
              uint32_t group)
{
	uint8_t *frame = rte_pktmbuf_mtod(c, uint8_t *);
	const uint8_t *rec = b->buf + SP_BP_DGRAM_HDR_SIZE;
	const struct dp_meta *cm = dp_meta_of(c);
	uint32_t off = carried_off(&cm->pkt);
	struct carried *cr;
	uint16_t k = 0;

	ASSERT(b->buf == frame + cm->pkt.payload_off);
	ASSERT((uint32_t)__builtin_popcount(group) == b->count);
	if (off + sizeof(*cr) + (size_t)b->count * sizeof(cr->reqs[0]) >
	    (size_t)c->buf_len - c->data_off)
		return false;
	cr = (struct carried *)(frame + off);
	cr->dg = (struct sp_bp_dgram){
	        .datagram_id = d->dg.datagram_id, .count = b->count, .flags = b->flags};
	for (uint32_t m = group; m != 0; m &= m - 1) {
		const struct sp_bp_req *q = &d->reqs[rte_bsf32(m)];

		cr->reqs[k++] = req_moved(q, rec);
		rec += q->record_len;
	}
	ASSERT(k == b->count);
	ASSERT(rec == b->buf + b->len);
	return true;
}

/*
 * Builds a new mbuf holding the requests of d whose kind is `kind` (and, for hand-offs,
 * whose target is `target`): the request's Ethernet header, then a fresh IPv4/UDP-free
 * datagram at the reply offset (only addresses and ports are needed to answer it, and
 * they travel in the meta), and its requests decoded when they fit (carry_decoded:
 * DP_MSG_BP_SHARE, else DP_MSG_BINARY). Returns NULL (counted) when the pool is dry.
 */
static struct rte_mbuf *
copy_group(struct dp_worker *w, const struct dgram_ctx *d, uint8_t kind, uint16_t target)
{
	uint32_t group = group_mask(d, kind, target);
	struct sp_bp_builder b;
	struct rte_mbuf *c;
	struct dp_meta *cm;
	uint32_t len;

	ASSERT(kind == DEST_DEFER || kind == DEST_HANDOFF);
	ASSERT(group != 0);
	c = rte_pktmbuf_alloc(w->rt->port.pool);
	if (c == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return NULL;
	}
	memcpy(rte_pktmbuf_mtod(c, uint8_t *), rte_pktmbuf_mtod(d->m, uint8_t *), NET_ETH_HDR_LEN);
	sp_bp_builder_init(&b, rte_pktmbuf_mtod(c, uint8_t *) + NET_UDP_REPLY_HDRS,
	                   SP_BP_PAYLOAD_MAX, false, d->dg.datagram_id);
	/* The client's forward flag stays with its requests: an owner whose partition has
	 * moved to another node in the meantime forwards them instead of refusing. */
	if ((d->dg.flags & SP_BP_F_FORWARD) != 0)
		sp_bp_builder_set_flags(&b, SP_BP_F_FORWARD);
	for (uint32_t m = group; m != 0; m &= m - 1) {
		/* The record as it arrived (d->m is still intact): no re-encoding. A subset
		 * of a datagram that fitted always fits; bad requests are never copied. */
		VERIFY(sp_bp_add_record(&b, &d->reqs[rte_bsf32(m)]) == 0);
	}
	len = sp_bp_builder_finish(&b);
	ASSERT(b.count == (uint32_t)__builtin_popcount(group));
	c->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + len);
	c->pkt_len = c->data_len;
	cm = dp_meta_of(c);
	cm->pkt = d->meta->pkt;
	cm->pkt.l3_off = NET_ETH_HDR_LEN;
	cm->pkt.l4_off = NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN;
	cm->pkt.payload_off = NET_UDP_REPLY_HDRS;
	cm->pkt.payload_len = (uint16_t)len;
	cm->reqs = (uint16_t)b.count;
	cm->hops = (uint8_t)(d->meta->hops + 1);
	cm->refused = d->meta->refused;
	cm->kind = carry_decoded(d, c, &b, group) ? DP_MSG_BP_SHARE : DP_MSG_BINARY;
	DP_STAT_INC(w->stats, handoff_copies);
	return c;
}

/* Stages mbuf m (carrying m's meta->reqs requests) for worker `to`'s ring. */
/* Decodes the datagram in d->m into d. Returns false (counted, frame freed) when bad. */
static bool
decode(struct dp_worker *w, struct dgram_ctx *d)
{
	const uint8_t *payload;
	enum sp_bp_err err;

	d->meta = dp_meta_of(d->m);
	ASSERT(d->meta->pkt.payload_off + d->meta->pkt.payload_len <= rte_pktmbuf_data_len(d->m));
	if (d->meta->kind == DP_MSG_BP_SHARE) {
		/* Another worker decoded it and carried the result (carry_decoded). */
		const struct carried *cr =
		        (const struct carried *)(rte_pktmbuf_mtod(d->m, const uint8_t *) +
		                                 carried_off(&d->meta->pkt));

		d->dg = cr->dg;
		ASSERT(d->dg.count >= 1 && d->dg.count <= SP_BP_REQS_MAX);
		if (d->dg.count == 1)
			d->reqs[0] = cr->reqs[0]; /* the usual share: inline, not a call */
		else
			memcpy(d->reqs, cr->reqs, d->dg.count * sizeof(d->reqs[0]));
		d->count = d->dg.count;
		DP_STAT_INC(w->stats, dgrams);
		return true;
	}
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

/* Whether every request of d goes to one other worker: the frame itself moves there. */
static inline bool
handed_whole(const struct dgram_ctx *d, const struct dest_counts *c)
{
	return c->handoff == d->count && rte_is_power_of_2(c->targets);
}

/*
 * In a datagram that is not handed on whole, the GETs for another local worker whose share
 * would hold nothing but GETs are read here from that worker's store (DEST_READ,
 * sp_binexec_get_shared: the store lets any thread read while its owner writes), as
 * memcached's multi-key gets are (docs/memcache.md): no share to build, no ring, no second
 * reply datagram for them. A worker that also gets a write from this datagram gets its
 * GETs too, so that they run after that write, in the datagram's order. Their buckets
 * start loading now; the item prefetch pass loads their items (d->read_here).
 */
static void
read_shared_gets(struct dp_worker *w, struct dgram_ctx *d, struct dest_counts *c)
{
	uint64_t readable = c->targets & ~c->writes_to;
	uint32_t reads = 0;

	if (readable == 0)
		return;
	for (uint32_t m = c->handed; m != 0; m &= m - 1) {
		uint32_t i = (uint32_t)rte_bsf32(m);
		const struct sp_bp_req *req = &d->reqs[i];

		ASSERT(d->kind[i] == DEST_HANDOFF);
		if ((readable & UINT64_C(1) << d->target[i]) == 0)
			continue;
		ASSERT(req->opcode == SP_BP_OP_GET);
		d->kind[i] = DEST_READ;
		d->read_here |= UINT32_C(1) << i;
		c->handed &= ~(UINT32_C(1) << i);
		reads++;
		store_layout_prefetch(&w->rt->layouts[req->partition], req->hash);
	}
	c->handoff -= reads;
	c->local += reads;
	c->targets &= ~readable;
	DP_STAT_ADD(w->stats, read_shared, reads);
	ASSERT((c->handoff == 0) == (c->targets == 0));
}

/*
 * Decides where each request of d goes, from the routing table of this iteration, and
 * starts loading the index buckets of those that run on a store here (d->on_store).
 */
static void
route_requests(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d,
               struct dest_counts *c)
{
	uint32_t i;

	ASSERT(it->t->partitions == w->rt->partitions);
	memset(c, 0, sizeof(*c));
	d->on_store = 0;
	d->read_here = 0;
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
			if (sp_bp_op_has_key(req->opcode)) {
				/* It runs on a store here: its index buckets start loading now,
				 * from the compact layout array (no wait for the store's
				 * descriptor, which is only needed when the request runs). */
				d->on_store |= UINT32_C(1) << i;
				store_layout_prefetch(&w->rt->layouts[req->partition], req->hash);
				rte_prefetch0(w->rt->stores[req->partition]);
			}
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
			c->writes_to |= (uint64_t)(req->opcode != SP_BP_OP_GET) << target;
			c->handed |= UINT32_C(1) << i;
			c->handoff++;
			break;
		}
	}
	ASSERT(c->local + c->deferred + c->handoff + c->forward == d->count);
	if (c->handoff > 0 && !handed_whole(d, c))
		read_shared_gets(w, d, c);
}

/*
 * Sends the FORWARD requests of d to their owners, one message per owning node and worker
 * (more when they do not fit one), their records copied as they arrived; those that cannot
 * go now become BUSY (table full) or WRONG_NODE (owner unreachable) and are answered here.
 */
static void
forward_requests(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d)
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

/*
 * First pass over a binary-protocol datagram in d->m: decodes and routes it, which starts
 * loading the index buckets of the requests this worker will run. Returns false when the
 * datagram was bad (counted, freed).
 */
static bool
prepare_dgram(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d)
{
	if (!decode(w, d))
		return false;
	route_requests(w, it, d, &d->c);
	return true;
}

/*
 * Second pass: the buckets are (nearly) in cache; start loading the items they point at,
 * and keep where they were (d->probe) for the requests' GETs.
 */
static void
prefetch_items(struct dp_worker *w, struct dgram_ctx *d)
{
	for (uint32_t m = d->on_store; m != 0; m &= m - 1) {
		uint32_t i = (uint32_t)rte_bsf32(m);
		const struct sp_bp_req *req = &d->reqs[i];

		store_layout_probe(&w->rt->layouts[req->partition], req->hash, req->key_len,
		                   &d->probe[i]);
	}
	for (uint32_t m = d->read_here; m != 0; m &= m - 1) {
		const struct sp_bp_req *req = &d->reqs[rte_bsf32(m)];

		store_layout_prefetch_item(&w->rt->layouts[req->partition], req->hash,
		                           req->key_len);
	}
}

/*
 * The hop limit (service.h): d has moved between workers DP_HANDOFF_HOPS_MAX times, so its
 * requests that would move again (hand-off or defer) are answered SERVER_BUSY here, counted
 * as hop drops; the client retries. What this worker owns still runs.
 */
static void
hop_limit(struct dp_worker *w, struct dgram_ctx *d)
{
	struct dest_counts *c = &d->c;

	ASSERT(d->meta->hops >= DP_HANDOFF_HOPS_MAX);
	DP_STAT_ADD(w->stats, dp_drop[DP_DROP_HANDOFF_HOPS], c->handoff + c->deferred);
	for (uint32_t i = 0; i < d->count; i++) {
		if (d->kind[i] == DEST_HANDOFF || d->kind[i] == DEST_DEFER)
			d->kind[i] = DEST_BUSY;
	}
	c->local += c->handoff + c->deferred;
	c->handoff = 0;
	c->deferred = 0;
	c->targets = 0;
	ASSERT(c->local + c->forward == d->count);
}

/*
 * Last pass over a prepared datagram: executes and answers what this worker owns, hands
 * the rest to its owners, and consumes d->m (sent on, deferred or freed).
 */
static void
finish_dgram(struct dp_worker *w, const struct dp_iter *it, struct dgram_ctx *d)
{
	struct dest_counts *c = &d->c;
	struct rte_mbuf *m = d->m;
	struct rte_mbuf *copy;
	struct fold *fold;
	uint16_t to;

	if (c->local == d->count) {
		serve_local(w, it, d, false, SP_BP_ST_OK, NULL);
		return;
	}
	if (d->meta->hops >= DP_HANDOFF_HOPS_MAX && c->handoff + c->deferred > 0)
		hop_limit(w, d);
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
			serve_local(w, it, d, false, SP_BP_ST_OK, NULL);
			return;
		}
	}
	if (c->deferred == d->count || handed_whole(d, c)) {
		/* The whole datagram goes one way: move the frame itself. */
		d->meta->hops++;
		d->meta->reqs = (uint16_t)d->count;
		if (c->deferred == d->count) {
			dp_worker_defer(w, m, c->first_defer_partition);
		} else {
			to = (uint16_t)rte_bsf64(c->targets);
			DP_STAT_INC(w->stats, handoff_out_mbufs);
			dp_worker_stage(w, it, to, m);
		}
		return;
	}
	/* A lone write goes on with the reply (fold_start()); other hand-offs as shares. */
	fold = c->handoff == 1 ? fold_start(d) : NULL;
	for (to = 0; fold == NULL && c->targets != 0 && to < w->rt->workers; to++) {
		if ((c->targets & (UINT64_C(1) << to)) == 0)
			continue;
		copy = copy_group(w, d, DEST_HANDOFF, to);
		if (copy != NULL) {
			DP_STAT_INC(w->stats, handoff_out_mbufs);
			dp_worker_stage(w, it, to, copy);
		}
	}
	if (c->deferred > 0) {
		/* Copied while the payload is intact (serve_local() writes the reply over it). */
		copy = copy_group(w, d, DEST_DEFER, 0);
		if (copy != NULL)
			dp_worker_defer(w, copy, c->first_defer_partition);
	}
	if (c->local == 0 && fold == NULL) {
		rte_pktmbuf_free(m);
		return;
	}
	serve_local(w, it, d, false, SP_BP_ST_OK, fold);
	if (fold == NULL || d->m == NULL)
		return;
	/* The reply waits in m for the write's owner. */
	to = (uint16_t)rte_bsf64(c->targets);
	d->meta->kind = DP_MSG_BP_FOLD;
	d->meta->hops++;
	d->meta->reqs = 1;
	d->m = NULL;
	DP_STAT_INC(w->stats, handoff_folds);
	DP_STAT_INC(w->stats, handoff_out_mbufs);
	dp_worker_stage(w, it, to, m);
}

/* The second and third passes over the first k prepared datagrams of w->ctx. */
static void
serve_prepared(struct dp_worker *w, const struct dp_iter *it, unsigned int k)
{
	unsigned int i;

	ASSERT(k <= DP_BURST);
	for (i = 0; i < k; i++)
		prefetch_items(w, &w->ctx[i]);
	for (i = 0; i < k; i++)
		finish_dgram(w, it, &w->ctx[i]);
}

static void bp_serve(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **pkts,
                     unsigned int n);

/*
 * bp_serve() for a burst that starts with folds (the worker loop hands a service runs of one
 * kind, so usually all of it): each is finished without the passes' set-up; what follows
 * the folds, if anything, goes to bp_serve().
 */
static __rte_noinline void
serve_folds(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **pkts, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n && dp_meta_of(pkts[i])->kind == DP_MSG_BP_FOLD; i++)
		fold_finish(w, it, pkts[i], SP_BP_ST_OK);
	if (i < n)
		bp_serve(w, it, pkts + i, n - i);
}

/*
 * The service's serve (service.h): n >= 1 binary-protocol request datagrams (meta filled,
 * kind DP_MSG_BINARY), shares of them (DP_MSG_BP_SHARE) or folds (DP_MSG_BP_FOLD), from the
 * NIC, the worker's ring or its defer queue, in arrival order, in the passes of dgram_ctx a
 * group of about PIPELINE_REQS requests at a time. Consumes every mbuf.
 */
static void
bp_serve(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **pkts, unsigned int n)
{
	unsigned int reqs = 0;
	unsigned int k = 0;
	unsigned int i;

	ASSERT(n >= 1 && n <= DP_BURST);
	if (dp_meta_of(pkts[0])->kind == DP_MSG_BP_FOLD) {
		serve_folds(w, it, pkts, n);
		return;
	}
	refresh_route_owner(w, it->t);
	for (i = 0; i < n; i++) {
		struct dgram_ctx *d = &w->ctx[k];

		if (dp_meta_of(pkts[i])->kind == DP_MSG_BP_FOLD) {
			/* After what arrived before it, in order (a burst is one kind, so
			 * usually nothing did). */
			if (k > 0)
				serve_prepared(w, it, k);
			k = 0;
			reqs = 0;
			serve_folds(w, it, &pkts[i], 1);
			continue;
		}
		ASSERT(dp_meta_of(pkts[i])->kind == DP_MSG_BINARY ||
		       dp_meta_of(pkts[i])->kind == DP_MSG_BP_SHARE);
		d->m = pkts[i];
		if (!prepare_dgram(w, it, d))
			continue;
		k++;
		reqs += d->count;
		/* Enough requests in flight: finish these before their lines leave L1. */
		if (reqs >= PIPELINE_REQS) {
			serve_prepared(w, it, k);
			k = 0;
			reqs = 0;
		}
	}
	if (k > 0)
		serve_prepared(w, it, k);
}

/*
 * The service's busy answer: a datagram (or share of one) whose owner's ring was full. Every
 * request in it was bound for that owner and decoded well formed here before: each is
 * answered SERVER_BUSY (the client retries), read with the light decoder (request ids and
 * opcodes; no second hashing or checking).
 */
static void
bp_busy(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m)
{
	struct dgram_ctx busy; /* on the stack, as the burst's contexts may be in use */
	struct dgram_ctx *d = &busy;
	const uint8_t *payload;
	enum sp_bp_err err;

	if (dp_meta_of(m)->kind == DP_MSG_BP_FOLD) {
		/* The write is answered SERVER_BUSY in the reply it came with. */
		fold_finish(w, it, m, SP_BP_ST_SERVER_BUSY);
		return;
	}
	d->m = m;
	d->meta = dp_meta_of(m);
	ASSERT(d->meta->kind == DP_MSG_BINARY || d->meta->kind == DP_MSG_BP_SHARE);
	ASSERT(d->meta->pkt.payload_off + d->meta->pkt.payload_len <= rte_pktmbuf_data_len(m));
	payload = rte_pktmbuf_mtod(m, const uint8_t *) + d->meta->pkt.payload_off;
	err = sp_bp_decode_ids(payload, d->meta->pkt.payload_len, d->reqs, SP_BP_REQS_MAX, &d->dg);
	if (err != SP_BP_ERR_OK) {
		/* Not reached: it decoded before. Counted like any bad datagram. */
		ASSERT((unsigned int)err < SP_BP_ERR_COUNT);
		DP_STAT_INC(w->stats, bp_err[err]);
		DP_STAT_INC(w->stats, bad_pkts);
		rte_pktmbuf_free(m);
		return;
	}
	d->count = d->dg.count;
	serve_local(w, it, d, true, SP_BP_ST_SERVER_BUSY, NULL);
}

/*
 * The service's classify: the binary protocol is served on port_base .. port_base +
 * workers - 1, where messages between nodes (forward.h) also arrive.
 */
static enum dp_msg_kind
bp_classify(const struct dp_runtime *rt, const struct rte_mbuf *m, const struct net_pkt *pkt)
{
	if (pkt->dst_port < rt->cfg.port_base ||
	    (uint32_t)(pkt->dst_port - rt->cfg.port_base) >= rt->workers)
		return DP_MSG_NONE;
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *) + pkt->payload_off;
	if (sp_fwd_is(p, pkt->payload_len))
		return DP_MSG_FORWARD;
	/* A reply datagram is no request: another node's answer to a gather (taskport.h),
	 * classified by the tasks service. */
	if (pkt->payload_len >= SP_BP_DGRAM_HDR_SIZE && (p[3] & SP_BP_F_REPLY) != 0 &&
	    dp_service_enabled(rt, DP_SVC_TASKS))
		return DP_MSG_NONE;
	return DP_MSG_BINARY;
}

const struct dp_service_ops dp_bp_service = {
        .name = "binary",
        .classify = bp_classify,
        .serve = bp_serve,
        .busy = bp_busy,
        .fwd_proto = SP_FWD_BINARY,
        .fwd_request = dp_bp_fwd_request,
        .fwd_answer = dp_bp_fwd_answer,
        .fwd_expire = dp_bp_fwd_expire,
};

size_t
dp_bp_burst_state_bytes(void)
{
	return sizeof(struct dgram_ctx);
}

void
dp_bp_set_user_hook(struct dp_runtime *rt, dp_bp_user_fn fn, void *ctx)
{
	ASSERT(rt != NULL);
	rt->bp_user_fn = fn;
	rt->bp_user_ctx = ctx;
}

int
dp_bp_run(struct dp_worker *w, const struct sp_bp_req *req, uint32_t now_s, uint64_t epoch,
          const struct sp_binexec_route *route, struct sp_bp_builder *reply)
{
	return bp_exec(w, req, now_s, epoch, route, reply, NULL, NULL, 0);
}

/*
 * Rebuilds what a ROUTE reply carries (every node, and partition -> node and worker) when
 * the table changed. The node's own record falls back to its configuration for what a
 * single-node table does not know (address, ports). A table with an unserved partition
 * (route.h ROUTE_WORKER_NONE: no map yet, no lease, removed) or an entry that does not name
 * a valid node and worker leaves route_ok false: ROUTE is answered unserved_status.
 */
static void
refresh_route_owner(struct dp_worker *w, const struct route_table *t)
{
	const struct dp_config *cfg = &w->rt->cfg;
	uint32_t p;

	ASSERT(t != NULL);
	ASSERT(t->node_count <= SP_MEMBERS_MAX);
	if (likely(w->route_owner_table == t && w->route_owner_publication == t->publication))
		return;
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
		ok = ok && rn->worker_count >= 1 && rn->worker_count <= SP_BP_ROUTE_WORKERS_MAX;
	}
	for (p = 0; p < t->partitions; p++) {
		struct route_entry e = route_lookup(t, p);

		/* A node that serves nothing here (no map yet, lease lost) sends the client
		 * elsewhere rather than hand out a map it does not act on. */
		ok = ok && e.worker != ROUTE_WORKER_NONE && e.node < t->node_count &&
		     ow[p] < w->route_nodes[e.node].worker_count;
		w->route_owner[p] = sp_bp_route_entry(e.node, ow[p]);
	}
	w->route_ok = ok;
	w->route_owner_table = t;
	w->route_owner_publication = t->publication;
	w->route.epoch = t->epoch;
	w->route.partitions = t->partitions;
	w->route.node_count = t->node_count;
	w->route.self = t->self_index;
	w->route.nodes = w->route_nodes;
	w->route.owner = w->route_owner;
}
