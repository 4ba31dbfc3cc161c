/* SPDX-License-Identifier: BSD-3-Clause */
/* User-defined operations on the dataplane: states, the hook, scatter/gather (taskport.h). */
#include "taskport.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "common/log.h"
#include "common/verify.h"
#include "dataplane/tasks/aggregate.h"
#include "dataplane/tasks/ratelimit.h"
#include "handoff.h"
#include "runtime.h"
#include "worker.h"

#define MOD "tasks"

#define TASK_NS_PER_S 1000000000ull

/* Messages between the workers of one node (never on the wire): a part request from a
 * gatherer to an owner, and the owner's answer. Internal, so a plain struct, copied in and
 * out with memcpy (the payload has no alignment). */
#define TASK_MSG_MAGIC 0x4b54u /* 'T' 'K' */
enum task_msg_type {
	TASK_MSG_PART_REQ = 1,
	TASK_MSG_PART_REP = 2,
};

struct task_msg {
	uint16_t magic;
	uint8_t type;
	uint8_t opcode;
	uint8_t status; /* PART_REP */
	uint8_t pad;
	uint16_t from;       /* PART_REP: the answering worker (its part) */
	uint32_t ref;        /* the gather reference (gather.h) */
	uint32_t partitions; /* PART_REP: partitions its result covers */
	uint32_t len;        /* argument (REQ) or result (REP) bytes that follow */
};

SP_STATIC_ASSERT(NET_UDP_REPLY_HDRS + sizeof(struct task_msg) + SP_TASK_RESULT_MAX <=
                         RTE_MBUF_DEFAULT_DATAROOM,
                 "a task message fits one mbuf");
SP_STATIC_ASSERT(DP_WORKERS_MAX <= SP_TASK_REF_WORKERS, "a worker index fits a reference");
SP_STATIC_ASSERT(DP_WORKERS_MAX <= SP_TASK_PART_NODE0, "local parts are below node parts");

static struct sp_task_registry registry;
static bool registry_ready;

struct sp_task_registry *
dp_task_registry(void)
{
	if (!registry_ready) {
		sp_task_registry_init(&registry);
		registry_ready = true;
	}
	return &registry;
}

/* The owners' clock for operations: nanoseconds since start-up, from the TSC. */
static uint64_t
now_ns(const struct dp_runtime *rt)
{
	uint64_t c = rte_rdtsc() - rt->tsc_base;

	ASSERT(rt->tsc_hz > 0);
	return c / rt->tsc_hz * TASK_NS_PER_S + c % rt->tsc_hz * TASK_NS_PER_S / rt->tsc_hz;
}

/* ---- States ------------------------------------------------------------------------ */

static void *
state_alloc(size_t bytes, size_t align, uint32_t partition, void *ctx)
{
	const struct dp_runtime *rt = ctx;

	if (partition == UINT32_MAX)
		return rte_zmalloc("sp_task_states", bytes, align);
	/* On the socket of the partition's first owner, as its store (node.c). */
	int socket = (int)rte_lcore_to_socket_id(rt->lcore_of[partition % rt->workers]);
	return rte_zmalloc_socket("sp_task_state", bytes, align, socket);
}

static void
state_free(void *p, void *ctx)
{
	(void)ctx;
	rte_free(p);
}

/* ---- Frames ------------------------------------------------------------------------- */

/* Makes m a UDP frame from this node (our_port) to mac/ip:port around the payload_len bytes
 * already at NET_UDP_REPLY_HDRS, ready for dp_worker_tx. */
static void
frame_to(struct dp_worker *w, struct rte_mbuf *m, const uint8_t *mac, uint32_t ip_be, uint16_t port,
         uint16_t our_port, uint32_t payload_len)
{
	const struct dp_port *dp = &w->rt->port;
	struct net_udp_ends e = {.src_ip_be = w->rt->cfg.ip_be,
	                         .dst_ip_be = ip_be,
	                         .src_port = our_port,
	                         .dst_port = port};
	uint32_t len;

	ASSERT(payload_len <= SP_BP_PAYLOAD_MAX);
	memcpy(e.src_mac, dp->mac.addr_bytes, NET_ETH_ADDR_LEN);
	memcpy(e.dst_mac, mac, NET_ETH_ADDR_LEN);
	len = net_udp_frame(rte_pktmbuf_mtod(m, uint8_t *), &e, (uint16_t)payload_len, w->ip_id++,
	                    dp->tx_flags);
	dp_tx_frame_ready(dp, m, len);
}

/* ---- Running on the owner ------------------------------------------------------------- */

/*
 * Runs SPAN_ALL operation d on every partition worker w owns in t (not those arriving),
 * merging into acc (emptied first). *count gets how many ran. Returns the status.
 */
static uint8_t
run_own(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
        const struct sp_task_def *d, const uint8_t *arg, uint32_t arg_len, struct sp_task_out *acc,
        uint32_t *count)
{
	struct dp_tasks *tk = w->rt->tasks;
	uint64_t ns = now_ns(w->rt);

	acc->len = 0;
	*count = 0;
	for (uint32_t p = 0; p < t->partitions; p++) {
		uint16_t target;
		uint8_t st;

		if (route_decide(t, p, w->index, &target) != ROUTE_EXECUTE)
			continue;
		st = sp_task_run_span(tk->reg, d, arg, arg_len, &p, 1, w->rt->stores, ns, now_s,
		                      acc, tk->stats[w->index]);
		if (st != SP_BP_ST_OK)
			return st;
		(*count)++;
	}
	return SP_BP_ST_OK;
}

/*
 * SPAN_KEYS operation d on the keys of list kl that worker w owns in t (not those arriving
 * or elsewhere), merging into acc (emptied first). *count gets how many ran.
 */
static uint8_t
run_own_keys(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
             const struct sp_task_def *d, const struct sp_task_keys *kl, struct sp_task_out *acc,
             uint32_t *count)
{
	struct dp_tasks *tk = w->rt->tasks;
	uint64_t ns = now_ns(w->rt);

	acc->len = 0;
	*count = 0;
	for (uint32_t j = 0; j < kl->count; j++) {
		uint64_t h = sp_key_hash(kl->key[j], kl->key_len[j]);
		uint32_t p = sp_key_partition(h, t->partitions);
		uint16_t target;
		uint8_t st;

		if (route_decide(t, p, w->index, &target) != ROUTE_EXECUTE)
			continue;
		st = sp_task_run_one(tk->reg, d, kl->key[j], kl->key_len[j], h, p, kl->arg,
		                     kl->arg_len, w->rt->stores[p], ns, now_s, acc,
		                     tk->stats[w->index]);
		if (st != SP_BP_ST_OK)
			return st;
		(*count)++;
	}
	return SP_BP_ST_OK;
}

/* A part of a spanning operation on this worker: every partition it owns (SPAN_ALL) or the
 * keys of the list in arg it owns (SPAN_KEYS). */
static uint8_t
run_part(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
         const struct sp_task_def *d, const uint8_t *arg, uint32_t arg_len, struct sp_task_out *acc,
         uint32_t *count)
{
	struct sp_task_keys kl;

	if (d->span == SP_TASK_SPAN_ALL)
		return run_own(w, t, now_s, d, arg, arg_len, acc, count);
	ASSERT(d->span == SP_TASK_SPAN_KEYS);
	acc->len = 0;
	*count = 0;
	if (sp_task_keys_decode(arg, arg_len, &kl) != 0)
		return SP_BP_ST_BAD_REQUEST;
	return run_own_keys(w, t, now_s, d, &kl, acc, count);
}

/* ---- Answers ------------------------------------------------------------------------- */

/* Counts a gathered answer of opcode with status st. */
static void
count_answer(struct dp_worker *w, uint8_t opcode, uint8_t st)
{
	struct dp_tasks *tk = w->rt->tasks;
	const struct sp_task_def *d = sp_task_find(tk->reg, opcode);

	ASSERT(st < SP_BP_ST_LAST);
	tk->counters[w->index].partial += st == SP_BP_ST_PARTIAL;
	if (d != NULL)
		tk->stats[w->index][sp_task_index(tk->reg, d)].status[st]++;
}

/* Sends g's answer to its origin (a client, or a gathering node) and counts it. */
static void
answer_origin(struct dp_worker *w, struct sp_task_gather *g)
{
	struct dp_task_counters *cn = &w->rt->tasks->counters[w->index];
	struct sp_bp_builder b;
	uint32_t flags;
	uint8_t st = sp_task_gather_answer(g, &flags);
	uint32_t vlen = st == SP_BP_ST_OK || st == SP_BP_ST_PARTIAL ? g->acc.len : 0;
	struct rte_mbuf *m;
	uint8_t *v;

	count_answer(w, g->opcode, st);
	m = rte_pktmbuf_alloc(w->rt->port.pool);
	if (m == NULL) {
		cn->answers_lost++;
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return;
	}
	sp_bp_builder_init(&b, rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS,
	                   SP_BP_PAYLOAD_MAX, true, g->origin.datagram_id);
	v = sp_bp_add_reply(&b, g->origin.request_id, g->opcode, st, 0, flags, vlen);
	VERIFY(v != NULL); /* result_max fits an empty datagram (task.h) */
	if (vlen != 0)
		memcpy(v, g->acc.buf, vlen);
	frame_to(w, m, g->origin.mac, g->origin.ip_be, g->origin.port, g->origin.local_port,
	         sp_bp_builder_finish(&b));
	dp_worker_tx(w, m);
}

/* Answers and frees g when no part is pending. */
static void
maybe_finish(struct dp_worker *w, struct sp_task_gather *g)
{
	if (g == NULL || !sp_task_gather_done(g))
		return;
	answer_origin(w, g);
	sp_task_gather_release(&w->rt->tasks->gathers[w->index], g);
}

/* ---- Scatter ---------------------------------------------------------------------------- */

/* A fresh mbuf holding an internal message (meta kind DP_MSG_TASK), or NULL (counted). */
static struct rte_mbuf *
msg_new(struct dp_worker *w, const struct task_msg *h, const uint8_t *data)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->rt->port.pool);
	uint8_t *p;

	if (m == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return NULL;
	}
	p = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS;
	memcpy(p, h, sizeof(*h));
	if (h->len != 0)
		memcpy(p + sizeof(*h), data, h->len);
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + sizeof(*h) + h->len);
	m->pkt_len = m->data_len;
	struct dp_meta *meta = dp_meta_of(m);
	memset(meta, 0, sizeof(*meta));
	meta->pkt.payload_off = NET_UDP_REPLY_HDRS;
	meta->pkt.payload_len = (uint16_t)(sizeof(*h) + h->len);
	meta->kind = DP_MSG_TASK;
	meta->hops = 1;
	return m;
}

/* Sends a NODE-scope request for g to node n of t. Returns false (counted) when it cannot. */
static bool
send_node_part(struct dp_worker *w, const struct route_table *t, uint32_t n, uint8_t opcode,
               uint32_t ref, const uint8_t *value, uint32_t value_len)
{
	const struct route_node *nd = &t->nodes[n];
	static const uint8_t zero[NET_ETH_ADDR_LEN];
	struct sp_bp_builder b;
	struct rte_mbuf *m;

	if (nd->ipv4_be == 0 || nd->binary_port == 0 || nd->worker_count == 0 ||
	    memcmp(nd->mac, zero, sizeof(zero)) == 0)
		return false;
	m = rte_pktmbuf_alloc(w->rt->port.pool);
	if (m == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return false;
	}
	struct sp_bp_req q = {.opcode = opcode,
	                      .request_id = ref,
	                      .flags = SP_BP_TASK_SCOPE_NODE,
	                      .value = value,
	                      .value_len = value_len};
	sp_bp_builder_init(&b, rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS,
	                   SP_BP_PAYLOAD_MAX, false, ref);
	VERIFY(sp_bp_add_request(&b, &q) == 0); /* value_len <= SP_BP_VALUE_MAX */
	/* Spread over the peer's workers: the one with our index, modulo its count. */
	frame_to(w, m, nd->mac, nd->ipv4_be,
	         (uint16_t)(nd->binary_port + w->index % nd->worker_count),
	         (uint16_t)(w->rt->cfg.port_base + w->index), sp_bp_builder_finish(&b));
	dp_worker_tx(w, m);
	return true;
}

/* Whether a reply of result_max more bytes fits reply; counts when it does not. */
static bool
room_for(struct dp_worker *w, struct sp_bp_builder *reply, uint32_t bytes)
{
	if (sp_bp_reply_fits(reply, bytes))
		return true;
	w->bx.reply_full++;
	return false;
}

static int
answer_plain(struct sp_bp_builder *reply, const struct sp_bp_req *req, uint8_t st, uint32_t flags,
             const uint8_t *value, uint32_t len)
{
	uint8_t *v = sp_bp_add_reply(reply, req->request_id, req->opcode, st, 0, flags, len);

	if (v == NULL)
		return -SP_EFULL;
	if (len != 0)
		memcpy(v, value, len);
	return 0;
}

/*
 * Takes a gather of `parts` for request req (argument arg) on worker w, due within the
 * forward timeout (half of it for a node-scope gather), and records whom to answer: the
 * client of the datagram x is serving. NULL (counted in gathers_busy) when the worker's
 * gather table is full.
 */
static struct sp_task_gather *
gather_start(struct dp_worker *w, const struct dp_bp_exec *x, const struct sp_bp_req *req,
             const uint8_t *arg, uint32_t arg_len, uint32_t parts, bool cluster, uint32_t *idx)
{
	struct dp_runtime *rt = w->rt;
	struct dp_tasks *tk = rt->tasks;
	struct dp_task_counters *cn = &tk->counters[w->index];
	uint64_t wait = rt->tsc_hz * rt->cfg.forward_timeout_ms / (cluster ? 1000u : 2000u);
	struct sp_task_gather *g = sp_task_gather_take(&tk->gathers[w->index], req->opcode, arg,
	                                               arg_len, parts, rte_rdtsc() + wait, idx);

	if (g == NULL) {
		cn->gathers_busy++;
		return NULL;
	}
	cn->gathers++;
	const struct dp_meta *meta = dp_meta_of((struct rte_mbuf *)x->m);
	g->origin = (struct sp_task_origin){.datagram_id = x->datagram_id,
	                                    .request_id = req->request_id,
	                                    .ip_be = meta->pkt.src_ip_be,
	                                    .port = meta->pkt.src_port,
	                                    .local_port = meta->pkt.dst_port};
	memcpy(g->origin.mac, rte_pktmbuf_mtod(x->m, const uint8_t *) + NET_ETH_ADDR_LEN,
	       NET_ETH_ADDR_LEN);
	return g;
}

/*
 * Folds the receiving worker's own part (status st over count partitions or keys, result
 * acc) into gather ref. Returns DP_BP_USER_LATER while other parts are due; when it was the
 * last (nobody else had anything), answers in the reply being built (room checked by the
 * caller), releases the gather and returns 0.
 */
static int
gather_own_part(struct dp_worker *w, const struct sp_bp_req *req, uint32_t ref, uint8_t st,
                uint32_t count, const struct sp_task_out *acc, struct sp_bp_builder *reply)
{
	struct dp_tasks *tk = w->rt->tasks;
	struct sp_task_gather *g = sp_task_gather_part(&tk->gathers[w->index], tk->reg, ref,
	                                               w->index, st, count, acc->buf, acc->len);
	uint32_t flags;

	VERIFY(g != NULL);
	if (!sp_task_gather_done(g))
		return DP_BP_USER_LATER;
	st = sp_task_gather_answer(g, &flags);
	count_answer(w, g->opcode, st);
	int rc = answer_plain(reply, req, st, flags, g->acc.buf,
	                      st == SP_BP_ST_OK || st == SP_BP_ST_PARTIAL ? g->acc.len : 0);
	VERIFY(rc == 0);
	sp_task_gather_release(&tk->gathers[w->index], g);
	return 0;
}

/*
 * A SPAN_ALL request on the worker that received it. WORKER scope: answered at once with
 * the worker's own partitions. CLUSTER and NODE: gathered; answered at once when nothing
 * else owns partitions, else later (DP_BP_USER_LATER).
 */
static int
span_request(struct dp_worker *w, const struct dp_bp_exec *x, const struct sp_bp_req *req,
             const struct sp_task_def *d, struct sp_bp_builder *reply)
{
	struct dp_runtime *rt = w->rt;
	struct dp_tasks *tk = rt->tasks;
	struct dp_task_counters *cn = &tk->counters[w->index];
	struct sp_task_out acc = {.buf = tk->part_buf[w->index], .cap = SP_TASK_RESULT_MAX};
	uint32_t count, idx;
	uint8_t st;

	if (!room_for(w, reply, d->result_max))
		return -SP_EFULL;
	if (x->it == NULL || x->m == NULL) /* forwarded: never a request without a key */
		return answer_plain(reply, req, SP_BP_ST_BAD_REQUEST, 0, NULL, 0);
	const struct route_table *t = x->it->t;
	if (req->flags == SP_BP_TASK_SCOPE_WORKER) {
		st = run_own(w, t, x->now_s, d, req->value, req->value_len, &acc, &count);
		return answer_plain(reply, req, st, st == SP_BP_ST_OK ? count : 0, acc.buf,
		                    st == SP_BP_ST_OK ? acc.len : 0);
	}
	if (req->value_len > SP_TASK_GATHER_ARG_MAX)
		return answer_plain(reply, req, SP_BP_ST_TOO_BIG, 0, NULL, 0);

	/* Who owns what: per local worker and per other node. */
	uint32_t per_worker[DP_WORKERS_MAX] = {0};
	uint32_t per_node[SP_MEMBERS_MAX] = {0};
	uint32_t local = 0;
	for (uint32_t p = 0; p < t->partitions; p++) {
		struct route_entry e = route_lookup(t, p);
		if (e.worker < ROUTE_WORKER_NONE) {
			per_worker[e.worker]++;
			local++;
		} else if (e.worker == ROUTE_WORKER_REMOTE && e.node < SP_MEMBERS_MAX) {
			per_node[e.node]++;
		}
	}
	bool cluster = req->flags == SP_BP_TASK_SCOPE_CLUSTER;
	struct sp_task_gather *g = gather_start(w, x, req, req->value, req->value_len,
	                                        cluster ? t->partitions : local, cluster, &idx);
	if (g == NULL)
		return answer_plain(reply, req, SP_BP_ST_SERVER_BUSY, 0, NULL, 0);
	uint32_t ref = sp_task_ref(idx, w->index, g->tag);

	/* Scatter: the other local owners over the rings, the other nodes over the wire. */
	sp_task_gather_expect(g, w->index);
	for (uint16_t o = 0; o < rt->workers; o++) {
		struct task_msg h = {.magic = TASK_MSG_MAGIC,
		                     .type = TASK_MSG_PART_REQ,
		                     .opcode = req->opcode,
		                     .ref = ref,
		                     .len = req->value_len};
		struct rte_mbuf *m;

		if (o == w->index || per_worker[o] == 0)
			continue;
		m = msg_new(w, &h, req->value);
		if (m == NULL) {
			cn->parts_lost++; /* its partitions stay missing: PARTIAL */
			continue;
		}
		sp_task_gather_expect(g, o);
		cn->parts_sent++;
		dp_worker_stage(w, x->it, o, m);
	}
	for (uint32_t n = 0; cluster && n < t->node_count && n < SP_MEMBERS_MAX; n++) {
		if (n == t->self_index || per_node[n] == 0)
			continue;
		if (!send_node_part(w, t, n, req->opcode, ref, g->arg, g->arg_len)) {
			cn->parts_lost++;
			continue;
		}
		sp_task_gather_expect(g, SP_TASK_PART_NODE0 + n);
		cn->parts_sent++;
	}
	/* Our own share, folded in like any other part. */
	st = run_own(w, t, x->now_s, d, req->value, req->value_len, &acc, &count);
	return gather_own_part(w, req, ref, st, count, &acc, reply);
}

/* Where each key of a list goes. */
enum key_dest {
	KEY_HERE = 0, /* this worker owns its partition */
	KEY_WORKER,   /* another local worker */
	KEY_NODE,     /* another node (CLUSTER scope) */
	KEY_MISSING,  /* arriving, unserved, or outside the scope: never answered */
};

/*
 * A SPAN_KEYS request on the worker that received it: each key goes to its owner (this
 * worker, another one over the ring, another node for CLUSTER), in one part per owner
 * carrying that owner's keys; gathered as span_request does, keys counted instead of
 * partitions.
 */
static int
keys_request(struct dp_worker *w, const struct dp_bp_exec *x, const struct sp_bp_req *req,
             const struct sp_task_def *d, struct sp_bp_builder *reply)
{
	struct dp_runtime *rt = w->rt;
	struct dp_tasks *tk = rt->tasks;
	struct dp_task_counters *cn = &tk->counters[w->index];
	struct sp_task_out acc = {.buf = tk->part_buf[w->index], .cap = SP_TASK_RESULT_MAX};
	struct sp_task_keys kl;
	uint8_t kind[SP_TASK_KEYS_MAX];
	uint16_t target[SP_TASK_KEYS_MAX];
	uint32_t count, idx;
	uint8_t st;

	if (!room_for(w, reply, d->result_max))
		return -SP_EFULL;
	if (x->it == NULL || x->m == NULL ||
	    sp_task_keys_decode(req->value, req->value_len, &kl) != 0)
		return answer_plain(reply, req, SP_BP_ST_BAD_REQUEST, 0, NULL, 0);
	if (kl.arg_len > SP_TASK_GATHER_ARG_MAX)
		return answer_plain(reply, req, SP_BP_ST_TOO_BIG, 0, NULL, 0);
	const struct route_table *t = x->it->t;
	bool cluster = req->flags == SP_BP_TASK_SCOPE_CLUSTER;
	uint64_t workers_used = 0, nodes_used = 0;
	for (uint32_t j = 0; j < kl.count; j++) {
		uint32_t p = sp_key_partition(sp_key_hash(kl.key[j], kl.key_len[j]), t->partitions);
		uint16_t to = 0;

		target[j] = 0;
		switch (route_decide(t, p, w->index, &to)) {
		case ROUTE_EXECUTE:
			kind[j] = KEY_HERE;
			break;
		case ROUTE_HANDOFF:
			kind[j] = req->flags == SP_BP_TASK_SCOPE_WORKER ? KEY_MISSING : KEY_WORKER;
			target[j] = to;
			break;
		case ROUTE_REMOTE:
			kind[j] = cluster && to < SP_MEMBERS_MAX ? KEY_NODE : KEY_MISSING;
			target[j] = to;
			break;
		default: /* arriving here, or served by nobody */
			kind[j] = KEY_MISSING;
			break;
		}
		if (kind[j] == KEY_WORKER)
			workers_used |= UINT64_C(1) << to;
		if (kind[j] == KEY_NODE)
			nodes_used |= UINT64_C(1) << to;
	}
	SP_STATIC_ASSERT(DP_WORKERS_MAX <= 64 && SP_MEMBERS_MAX <= 64, "owners fit a bit set");
	if (req->flags == SP_BP_TASK_SCOPE_WORKER) {
		st = run_own_keys(w, t, x->now_s, d, &kl, &acc, &count);
		if (st != SP_BP_ST_OK)
			return answer_plain(reply, req, st, 0, NULL, 0);
		return answer_plain(reply, req, count == kl.count ? SP_BP_ST_OK : SP_BP_ST_PARTIAL,
		                    count, acc.buf, acc.len);
	}
	struct sp_task_gather *g =
	        gather_start(w, x, req, kl.arg, kl.arg_len, kl.count, cluster, &idx);
	if (g == NULL)
		return answer_plain(reply, req, SP_BP_ST_SERVER_BUSY, 0, NULL, 0);
	uint32_t ref = sp_task_ref(idx, w->index, g->tag);

	/* One part per owner, carrying that owner's keys (and the operation's argument). */
	sp_task_gather_expect(g, w->index);
	for (uint32_t pass = 0; pass < 2; pass++) {
		uint64_t used = pass == 0 ? workers_used : nodes_used;
		uint8_t want = pass == 0 ? KEY_WORKER : KEY_NODE;

		while (used != 0) {
			uint16_t o = (uint16_t)__builtin_ctzll(used);
			const uint8_t *sub[SP_TASK_KEYS_MAX];
			uint8_t sub_len[SP_TASK_KEYS_MAX];
			uint8_t value[SP_BP_VALUE_MAX];
			uint32_t n = 0;

			used &= used - 1;
			for (uint32_t j = 0; j < kl.count; j++) {
				if (kind[j] != want || target[j] != o)
					continue;
				sub[n] = kl.key[j];
				sub_len[n++] = kl.key_len[j];
			}
			/* A subset of a list that fitted one value fits one too. */
			int len = sp_task_keys_encode(value, sizeof(value), sub, sub_len, n, kl.arg,
			                              kl.arg_len);
			VERIFY(len > 0);
			if (pass == 0) {
				struct task_msg h = {.magic = TASK_MSG_MAGIC,
				                     .type = TASK_MSG_PART_REQ,
				                     .opcode = req->opcode,
				                     .ref = ref,
				                     .len = (uint32_t)len};
				struct rte_mbuf *m = msg_new(w, &h, value);
				if (m == NULL) {
					cn->parts_lost++;
					continue;
				}
				sp_task_gather_expect(g, o);
				dp_worker_stage(w, x->it, o, m);
			} else {
				if (o == t->self_index || !send_node_part(w, t, o, req->opcode, ref,
				                                          value, (uint32_t)len)) {
					cn->parts_lost++;
					continue;
				}
				sp_task_gather_expect(g, SP_TASK_PART_NODE0 + o);
			}
			cn->parts_sent++;
		}
	}
	st = run_own_keys(w, t, x->now_s, d, &kl, &acc, &count);
	return gather_own_part(w, req, ref, st, count, &acc, reply);
}

/* The binary service's hook (service.h dp_bp_user_fn) for every registered opcode. */
static int
task_hook(void *ctx, const struct dp_bp_exec *x, const struct sp_bp_req *req,
          struct sp_bp_builder *reply)
{
	struct dp_runtime *rt = ctx;
	struct dp_tasks *tk = rt->tasks;
	struct dp_worker *w = rt->w[x->worker];
	const struct sp_task_def *d = sp_task_find(tk->reg, req->opcode);
	uint8_t st = d != NULL ? sp_task_admit(tk->reg, req) : SP_BP_ST_BAD_REQUEST;

	ASSERT(x->worker < rt->workers);
	if (st != SP_BP_ST_OK) {
		if (d != NULL)
			tk->stats[w->index][sp_task_index(tk->reg, d)].status[st]++;
		return answer_plain(reply, req, st, 0, NULL, 0);
	}
	if (d->span == SP_TASK_SPAN_KEY) {
		ASSERT(x->partition == req->partition);
		return sp_task_run_key(tk->reg, req, rt->stores[req->partition], now_ns(rt),
		                       x->now_s, reply, tk->stats[w->index]);
	}
	if (d->span == SP_TASK_SPAN_KEYS)
		return keys_request(w, x, req, d, reply);
	return span_request(w, x, req, d, reply);
}

/* ---- The tasks service ---------------------------------------------------------------- */

/* A part request from a local gatherer: run it here, answer over the gatherer's ring. */
static void
serve_part_req(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m,
               const struct task_msg *h, const uint8_t *arg)
{
	struct dp_tasks *tk = w->rt->tasks;
	const struct sp_task_def *d = sp_task_find(tk->reg, h->opcode);
	struct sp_task_out acc = {.buf = tk->part_buf[w->index], .cap = SP_TASK_RESULT_MAX};
	uint32_t count = 0, index, tag;
	uint16_t to;
	uint8_t st = SP_BP_ST_BAD_REQUEST;

	sp_task_ref_split(h->ref, &index, &to, &tag);
	if (to >= w->rt->workers || to == w->index) {
		tk->counters[w->index].answers_bad++;
		rte_pktmbuf_free(m);
		return;
	}
	if (d != NULL && d->span != SP_TASK_SPAN_KEY)
		st = run_part(w, it->t, it->now_s, d, arg, h->len, &acc, &count);
	tk->counters[w->index].parts_run++;
	struct task_msg r = {.magic = TASK_MSG_MAGIC,
	                     .type = TASK_MSG_PART_REP,
	                     .opcode = h->opcode,
	                     .status = st,
	                     .from = w->index,
	                     .ref = h->ref,
	                     .partitions = st == SP_BP_ST_OK ? count : 0,
	                     .len = st == SP_BP_ST_OK ? acc.len : 0};
	/* The request's own mbuf carries the answer back. */
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS;
	memcpy(p, &r, sizeof(r));
	if (r.len != 0)
		memcpy(p + sizeof(r), acc.buf, r.len);
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + sizeof(r) + r.len);
	m->pkt_len = m->data_len;
	dp_meta_of(m)->pkt.payload_off = NET_UDP_REPLY_HDRS;
	dp_meta_of(m)->pkt.payload_len = (uint16_t)(sizeof(r) + r.len);
	dp_meta_of(m)->hops++;
	dp_worker_stage(w, it, to, m);
}

/* A local owner's answer to one of our gathers. */
static void
serve_part_rep(struct dp_worker *w, const struct task_msg *h, const uint8_t *result)
{
	struct dp_tasks *tk = w->rt->tasks;
	struct dp_task_counters *cn = &tk->counters[w->index];
	struct sp_task_gather *g;

	if (h->from >= w->rt->workers) {
		cn->answers_bad++;
		return;
	}
	g = sp_task_gather_part(&tk->gathers[w->index], tk->reg, h->ref, h->from, h->status,
	                        h->partitions, result, h->len);
	if (g == NULL) {
		cn->answers_stale++;
		return;
	}
	cn->answers_in++;
	maybe_finish(w, g);
}

/* The member of t that sent m (its index), or -1 when it is no other member. */
static int
source_node(const struct route_table *t, const struct rte_mbuf *m, const struct net_pkt *pkt)
{
	const uint8_t *src_mac = rte_pktmbuf_mtod(m, const uint8_t *) + NET_ETH_ADDR_LEN;

	for (uint32_t n = 0; n < t->node_count && n < SP_MEMBERS_MAX; n++)
		if (n != t->self_index && t->nodes[n].ipv4_be == pkt->src_ip_be &&
		    memcmp(t->nodes[n].mac, src_mac, NET_ETH_ADDR_LEN) == 0)
			return (int)n;
	return -1;
}

/* Another node's answer (a binary reply datagram) to one of this node's gathers. */
static void
serve_node_answer(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m)
{
	struct dp_tasks *tk = w->rt->tasks;
	struct dp_task_counters *cn = &tk->counters[w->index];
	struct dp_meta *meta = dp_meta_of(m);
	struct sp_bp_reply r[1];
	struct sp_bp_dgram dg;
	uint32_t index, tag;
	uint16_t to;
	int n = source_node(it->t, m, &meta->pkt);

	if (n < 0) {
		/* Not from another member, so no answer to a gather of ours: a bad answer here,
		 * and a request datagram with the REPLY flag set to the binary protocol, counted
		 * as its decoder counts one (bad_bp_bad_flags). */
		cn->answers_bad++;
		DP_STAT_INC(w->stats, bp_err[SP_BP_ERR_BAD_FLAGS]);
		DP_STAT_INC(w->stats, bad_pkts);
		rte_pktmbuf_free(m);
		return;
	}
	if (sp_bp_decode_replies(rte_pktmbuf_mtod(m, const uint8_t *) + meta->pkt.payload_off,
	                         meta->pkt.payload_len, r, 1, &dg) != SP_BP_ERR_OK ||
	    (sp_bp_op(r[0].opcode)->props & SP_BP_OPF_USER) == 0) {
		cn->answers_bad++;
		rte_pktmbuf_free(m);
		return;
	}
	sp_task_ref_split(r[0].request_id, &index, &to, &tag);
	if (to != w->index) {
		/* Received on another worker's queue: to the gatherer, once. */
		if (to >= w->rt->workers || meta->hops >= DP_HANDOFF_HOPS_MAX) {
			cn->answers_bad++;
			rte_pktmbuf_free(m);
			return;
		}
		meta->hops++;
		dp_worker_stage(w, it, to, m);
		return;
	}
	struct sp_task_gather *g = sp_task_gather_part(
	        &tk->gathers[w->index], tk->reg, r[0].request_id, SP_TASK_PART_NODE0 + (uint32_t)n,
	        r[0].status, r[0].flags, r[0].value, r[0].value_len);
	if (g == NULL)
		cn->answers_stale++;
	else
		cn->answers_in++;
	maybe_finish(w, g);
	rte_pktmbuf_free(m);
}

static enum dp_msg_kind
task_classify(const struct dp_runtime *rt, const struct rte_mbuf *m, const struct net_pkt *pkt)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *) + pkt->payload_off;

	if (rt->tasks == NULL || pkt->dst_port < rt->cfg.port_base ||
	    (uint32_t)(pkt->dst_port - rt->cfg.port_base) >= rt->workers)
		return DP_MSG_NONE;
	/* A binary-protocol reply datagram: only ever an answer to a gather of ours. */
	if (pkt->payload_len < SP_BP_DGRAM_HDR_SIZE || p[0] != (SP_BP_MAGIC & 0xffu) ||
	    p[1] != (SP_BP_MAGIC >> 8) || (p[3] & SP_BP_F_REPLY) == 0)
		return DP_MSG_NONE;
	return DP_MSG_TASK;
}

static void
task_serve(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **ms, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *m = ms[i];
		const struct dp_meta *meta = dp_meta_of(m);
		const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *) + meta->pkt.payload_off;
		struct task_msg h;

		ASSERT(meta->kind == DP_MSG_TASK);
		if (meta->pkt.payload_len < sizeof(h) || p[0] != (TASK_MSG_MAGIC & 0xffu) ||
		    p[1] != (TASK_MSG_MAGIC >> 8)) {
			serve_node_answer(w, it, m);
			continue;
		}
		memcpy(&h, p, sizeof(h));
		VERIFY(sizeof(h) + h.len == meta->pkt.payload_len); /* made by msg_new */
		if (h.type == TASK_MSG_PART_REQ) {
			serve_part_req(w, it, m, &h, p + sizeof(h));
			continue;
		}
		serve_part_rep(w, &h, p + sizeof(h));
		rte_pktmbuf_free(m);
	}
}

/* A ring refused one of our messages: its part stays missing (the gather ends PARTIAL). */
static void
task_busy(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m)
{
	(void)it;
	w->rt->tasks->counters[w->index].parts_lost++;
	rte_pktmbuf_free(m);
}

static void
task_poll(struct dp_worker *w, const struct dp_iter *it)
{
	struct dp_tasks *tk = w->rt->tasks;
	struct sp_task_gathers *gs;
	struct sp_task_gather *g;
	uint64_t now;

	(void)it;
	if (tk == NULL)
		return;
	gs = &tk->gathers[w->index];
	if (gs->live == 0)
		return;
	now = rte_rdtsc();
	for (uint32_t k = 0; k < SP_TASK_GATHERS && (g = sp_task_gather_expired(gs, now)) != NULL;
	     k++) {
		tk->counters[w->index].timeouts++;
		answer_origin(w, g);
		sp_task_gather_release(gs, g);
	}
}

static void
task_drain(struct dp_worker *w)
{
	struct dp_tasks *tk = w->rt->tasks;

	if (tk == NULL)
		return;
	for (uint32_t i = 0; i < SP_TASK_GATHERS; i++) {
		struct sp_task_gather *g = &tk->gathers[w->index].slots[i];
		if (g->tag != 0) {
			tk->counters[w->index].timeouts++;
			sp_task_gather_release(&tk->gathers[w->index], g);
		}
	}
}

static void
task_print(FILE *out, const struct dp_runtime *rt)
{
	const struct dp_tasks *tk = rt->tasks;
	struct dp_task_counters s = {0};

	if (tk == NULL)
		return;
	for (uint32_t i = 0; i < tk->workers; i++) {
		const struct dp_task_counters *c = &tk->counters[i];
		s.gathers += c->gathers;
		s.gathers_busy += c->gathers_busy;
		s.parts_sent += c->parts_sent;
		s.parts_lost += c->parts_lost;
		s.parts_run += c->parts_run;
		s.answers_in += c->answers_in;
		s.answers_stale += c->answers_stale;
		s.answers_bad += c->answers_bad;
		s.timeouts += c->timeouts;
		s.partial += c->partial;
		s.answers_lost += c->answers_lost;
	}
	fprintf(out,
	        "tasks: gathers=%" PRIu64 " busy=%" PRIu64 " parts_sent=%" PRIu64
	        " parts_lost=%" PRIu64 " parts_run=%" PRIu64 " answers_in=%" PRIu64
	        " stale=%" PRIu64 " bad=%" PRIu64 " timeouts=%" PRIu64 " partial=%" PRIu64
	        " answers_lost=%" PRIu64 "\n",
	        s.gathers, s.gathers_busy, s.parts_sent, s.parts_lost, s.parts_run, s.answers_in,
	        s.answers_stale, s.answers_bad, s.timeouts, s.partial, s.answers_lost);
	for (uint32_t i = 0; i < tk->reg->count; i++) {
		uint64_t runs = 0, ok = 0, partial = 0, other = 0;
		for (uint32_t wi = 0; wi < tk->workers; wi++) {
			const struct sp_task_stats *st = &tk->stats[wi][i];
			runs += st->runs;
			ok += st->status[SP_BP_ST_OK];
			partial += st->status[SP_BP_ST_PARTIAL];
			for (uint32_t k = 0; k < SP_BP_ST_LAST; k++)
				other += k != SP_BP_ST_OK && k != SP_BP_ST_PARTIAL ? st->status[k]
				                                                   : 0;
		}
		/* runs: exec calls (one per partition for a spanning operation); the others
		 * count answers. */
		fprintf(out,
		        "task %s: runs=%" PRIu64 " ok=%" PRIu64 " partial=%" PRIu64
		        " errors=%" PRIu64 "\n",
		        tk->reg->defs[i].name, runs, ok, partial, other);
	}
}

const struct dp_service_ops dp_task_service = {
        .name = "tasks",
        .classify = task_classify,
        .serve = task_serve,
        .busy = task_busy,
        .poll = task_poll,
        .drain = task_drain,
        .print = task_print,
};

/* ---- Set-up ------------------------------------------------------------------------------ */

int
dp_tasks_setup(struct dp_runtime *rt)
{
	struct sp_task_registry *reg = dp_task_registry();
	char why[256] = "";
	struct dp_tasks *tk;
	int rc;

	ASSERT(rt->tasks == NULL);
	if (sp_task_find(reg, SP_TASK_OP_RATELIMIT) == NULL) {
		rc = sp_ratelimit_register(reg, rt->cfg.ratelimit_buckets, why, sizeof(why));
		if (rc == 0)
			rc = sp_aggregate_register(reg, why, sizeof(why));
		if (rc != 0) {
			SP_LOG_ERR(MOD, "%s", why);
			return rc;
		}
	}
	tk = rte_zmalloc("sp_tasks", sizeof(*tk), RTE_CACHE_LINE_SIZE);
	if (tk == NULL)
		return -ENOMEM;
	rt->tasks = tk;
	tk->reg = reg;
	tk->workers = rt->workers;
	tk->stats = rte_zmalloc("sp_task_stats", rt->workers * sizeof(tk->stats[0]),
	                        RTE_CACHE_LINE_SIZE);
	tk->gathers = rte_zmalloc("sp_task_gathers", rt->workers * sizeof(tk->gathers[0]),
	                          RTE_CACHE_LINE_SIZE);
	tk->counters = rte_zmalloc("sp_task_counters", rt->workers * sizeof(tk->counters[0]),
	                           RTE_CACHE_LINE_SIZE);
	tk->part_buf = rte_zmalloc("sp_task_parts", rt->workers * sizeof(tk->part_buf[0]),
	                           RTE_CACHE_LINE_SIZE);
	if (tk->stats == NULL || tk->gathers == NULL || tk->counters == NULL ||
	    tk->part_buf == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < rt->workers; i++)
		sp_task_gathers_init(&tk->gathers[i]);
	rc = sp_task_start(reg, rt->partitions, state_alloc, state_free, rt, why, sizeof(why));
	if (rc != 0) {
		SP_LOG_ERR(MOD, "%s", why);
		return rc;
	}
	size_t bytes = 0;
	for (uint32_t i = 0; i < reg->count; i++)
		bytes += (size_t)reg->defs[i].state_size * rt->partitions;
	SP_LOG_INFO(MOD, "%u operations registered; states: %zu KiB over %u partitions", reg->count,
	            bytes >> 10, rt->partitions);
	dp_bp_set_user_hook(rt, task_hook, rt);
	return 0;
}

void
dp_tasks_teardown(struct dp_runtime *rt)
{
	struct dp_tasks *tk = rt->tasks;

	if (tk == NULL)
		return;
	dp_bp_set_user_hook(rt, NULL, NULL);
	if (tk->reg->started)
		sp_task_stop(tk->reg, state_free, rt);
	rte_free(tk->stats);
	rte_free(tk->gathers);
	rte_free(tk->counters);
	rte_free(tk->part_buf);
	rte_free(tk);
	rt->tasks = NULL;
}
