/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The binary protocol's half of forwarding between nodes (bpforward.h, service.h's fwd_*
 * callbacks, docs/cluster.md): requests another node owns go there in one message per
 * owning worker, their records as the client sent them; the owner runs them and sends its
 * reply datagram back whole (replies are matched by request id), or refuses the requests
 * it does not own with their records, which the entry places once more on its own map.
 */
#include "bpforward.h"

#include <string.h>

#include <rte_mbuf.h>

#include "common/errors.h"
#include "common/verify.h"
#include "dataplane/binexec/binexec.h"
#include "net/net.h"
#include "worker.h"

SP_STATIC_ASSERT(SP_BP_REQS_MAX <= 32, "a slot's pending requests are a 32-bit mask");

enum dp_fwd_rc
dp_fwd_bp_request(struct dp_worker *w, const struct route_table *t, const struct rte_mbuf *cm,
                  uint64_t dgram_id, const struct sp_bp_req *const *reqs, uint32_t n, uint16_t node,
                  uint16_t worker)
{
	const struct dp_meta *meta = dp_meta_of((struct rte_mbuf *)cm);
	const uint8_t *cframe = rte_pktmbuf_mtod(cm, const uint8_t *);
	const struct route_node *nd;
	struct sp_fwd_batch *bt;
	struct sp_bp_builder b;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	uint32_t idx, len;

	ASSERT(n >= 1 && n <= SP_FWD_REQS_MAX);
	ASSERT(node < t->node_count);
	nd = &t->nodes[node];
	if (node == t->self_index || !dp_fwd_peer_usable(nd, worker)) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return DP_FWD_NO_PEER;
	}
	len = SP_BP_DGRAM_HDR_SIZE;
	for (uint32_t k = 0; k < n; k++)
		len += reqs[k]->record_len;
	ASSERT(len <= SP_FWD_PAYLOAD_MAX); /* the caller checked the sizes */
	s = dp_fwd_slot_take(w, &idx);
	if (s == NULL)
		return DP_FWD_FULL;
	bt = dp_fwd_batch_for(w, nd->mac, nd->ipv4_be, (uint16_t)(nd->binary_port + worker),
	                      (uint16_t)(w->rt->cfg.port_base + w->index), len);
	if (bt == NULL) {
		dp_fwd_slot_release(w, s);
		return DP_FWD_FULL;
	}
	s->proto = SP_FWD_BINARY;
	s->owner_node = node;
	s->owner_ip_be = nd->ipv4_be;
	dp_fwd_slot_client(s, meta, cframe);
	s->bp_dgram_id = dgram_id;
	s->bp_count = (uint16_t)n;
	s->bp_pending = n == 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
	sp_bp_builder_init(&b, dp_fwd_batch_room(bt), len, false, dgram_id);
	for (uint32_t k = 0; k < n; k++) {
		s->bp_req_id[k] = reqs[k]->request_id;
		s->bp_opcode[k] = reqs[k]->opcode;
		/* The caller checked the sizes; the client datagram is intact. */
		VERIFY(sp_bp_add_record(&b, reqs[k]) == 0);
	}
	VERIFY(sp_bp_builder_finish(&b) == len);
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_BINARY,
	                        .entry_worker = w->index,
	                        .payload_len = (uint16_t)len,
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	dp_fwd_batch_commit(bt, &h);
	DP_STAT_ADD(w->stats, fwd_out, n);
	return DP_FWD_SENT;
}

/* The binary reply datagram in b (if it holds any) goes back to the entry in a REPLY. */
static void
bp_reply_out(struct dp_worker *w, const struct dp_fwd_in *in, struct sp_fwd_hdr *h,
             struct sp_bp_builder *b)
{
	uint32_t len = sp_bp_builder_finish(b);

	if (b->count == 0)
		return;
	/* Binary replies are matched by request id: each message is whole (index 0 of 1). */
	h->kind = SP_FWD_REPLY;
	h->status = 0;
	h->index = 0;
	h->total = 1;
	h->payload_len = (uint16_t)len;
	(void)dp_fwd_put_back(w, in, h, b->buf);
}

/*
 * The requests of reqs marked in `mask` go back to the entry, their records as they came,
 * in one REFUSED message with `status`, so it can place them again on its own map.
 */
static void
bp_refuse_out(struct dp_worker *w, const struct dp_fwd_in *in, struct sp_fwd_hdr *h,
              const struct sp_bp_req *reqs, uint32_t count, uint32_t mask, uint8_t status,
              uint64_t dgram_id)
{
	struct sp_fwd_batch *bt;
	struct sp_bp_builder b;
	uint32_t len = SP_BP_DGRAM_HDR_SIZE;

	if (mask == 0)
		return;
	for (uint32_t i = 0; i < count; i++)
		if ((mask & (UINT32_C(1) << i)) != 0)
			len += reqs[i].record_len;
	/* They came in one message, so they fit in one. */
	VERIFY(len <= SP_FWD_PAYLOAD_MAX);
	bt = dp_fwd_back_batch(w, in, len);
	if (bt == NULL)
		return; /* the entry answers them UNAVAILABLE when its time runs out */
	sp_bp_builder_init(&b, dp_fwd_batch_room(bt), len, false, dgram_id);
	for (uint32_t i = 0; i < count; i++)
		if ((mask & (UINT32_C(1) << i)) != 0)
			VERIFY(sp_bp_add_record(&b, &reqs[i]) == 0);
	VERIFY(sp_bp_builder_finish(&b) == len);
	h->kind = SP_FWD_REFUSED;
	h->status = status;
	h->index = 0;
	h->total = 0;
	h->payload_len = (uint16_t)len;
	dp_fwd_batch_commit(bt, h);
	DP_STAT_ADD(w->stats, fwd_refused, __builtin_popcount(mask));
}

/*
 * Owner side, binary protocol: runs each forwarded request this worker owns; one this node
 * does not own (the map changed in flight) or does not serve goes back REFUSED with its
 * record, so the entry places it again once on its own map (one hop: never forwarded
 * again from here); SERVER_BUSY for another local worker's. A reply too large for a
 * forward message (a value over 1400 bytes) is answered TOO_BIG (counted fwd_too_big).
 * The reply datagrams go back in REPLY messages, batched with the rest for that entry.
 */
void
dp_bp_fwd_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                  struct dp_fwd_in *in, struct sp_fwd_hdr *h, const uint8_t *payload)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_builder b;
	struct sp_bp_dgram dg;
	uint32_t ran = 0, remote = 0, unserved = 0;

	if (sp_bp_decode_requests(payload, h->payload_len, t->partitions, reqs, SP_BP_REQS_MAX,
	                          &dg) != SP_BP_ERR_OK) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		return;
	}
	SP_STATIC_ASSERT(SP_BP_REQS_MAX <= 32, "refusals are a 32-bit mask");
	h->epoch = t->epoch; /* what goes back names this node's map */
	sp_bp_builder_init(&b, w->scratch, SP_FWD_PAYLOAD_MAX, true, dg.datagram_id);
	for (uint32_t i = 0; i < dg.count; i++) {
		const struct sp_bp_req *q = &reqs[i];
		int rc = -SP_EFULL;

		for (int attempt = 0; attempt < 2 && rc == -SP_EFULL; attempt++) {
			uint16_t to = 0;

			if (attempt > 0) {
				bp_reply_out(w, in, h, &b);
				sp_bp_builder_init(&b, w->scratch, SP_FWD_PAYLOAD_MAX, true,
				                   dg.datagram_id);
			}
			if (q->err != SP_BP_ERR_OK || q->partition == SP_BP_PARTITION_ANY) {
				rc = sp_binexec_refuse(
				        q,
				        q->err != SP_BP_ERR_OK ? q->status : SP_BP_ST_BAD_REQUEST,
				        &b, &w->bx);
				continue;
			}
			switch (route_decide(t, q->partition, w->index, &to)) {
			case ROUTE_EXECUTE:
				rc = dp_bp_run(w, q, now_s, t->epoch, NULL, &b);
				ran += rc == 0;
				break;
			case ROUTE_REMOTE:
				remote |= UINT32_C(1) << i;
				rc = 0;
				break;
			case ROUTE_UNSERVED:
				unserved |= UINT32_C(1) << i;
				rc = 0;
				break;
			default: /* another worker of this node, or arriving: not run here */
				rc = sp_binexec_refuse(q, SP_BP_ST_SERVER_BUSY, &b, &w->bx);
				break;
			}
		}
		if (rc == -SP_EFULL) {
			/* Alone in a message and still too large: only a GET's value can be
			 * (mutations check their room before they run). */
			DP_STAT_INC(w->stats, fwd_too_big);
			VERIFY(sp_binexec_refuse(q, SP_BP_ST_TOO_BIG, &b, &w->bx) == 0);
		}
	}
	bp_reply_out(w, in, h, &b);
	bp_refuse_out(w, in, h, reqs, dg.count, remote, SP_BP_ST_WRONG_PARTITION, dg.datagram_id);
	bp_refuse_out(w, in, h, reqs, dg.count, unserved, t->unserved_status, dg.datagram_id);
	DP_STAT_ADD(w->stats, fwd_in, ran);
	DP_STAT_ADD(w->stats, requests, ran);
}

/*
 * Answers `status`, in one datagram, every request of binary slot s marked in mask (in
 * an mbuf from `in`, or a fresh one when in is NULL).
 */
static void
answer_bp_status(struct dp_worker *w, struct dp_fwd_in *in, const struct sp_fwd_slot *s,
                 uint32_t mask, enum sp_bp_status status)
{
	struct rte_mbuf *m =
	        in != NULL ? dp_fwd_out_mbuf(w, in) : rte_pktmbuf_alloc(w->rt->port.pool);
	struct sp_bp_builder b;
	uint32_t len;

	if (m == NULL) {
		if (in == NULL)
			DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return;
	}
	sp_bp_builder_init(&b, rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS,
	                   SP_BP_PAYLOAD_MAX, true, s->bp_dgram_id);
	for (uint32_t k = 0; k < s->bp_count; k++)
		if ((mask & (UINT32_C(1) << k)) != 0)
			VERIFY(sp_bp_add_reply(&b, s->bp_req_id[k], s->bp_opcode[k], status, 0, 0,
			                       0) != NULL);
	len = sp_bp_builder_finish(&b);
	dp_fwd_frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	                (uint16_t)len);
	dp_worker_tx(w, m);
}

/*
 * The bits of s's pending requests that the n requests or replies with these ids answer,
 * each id taking one pending request; false when one of them matches none.
 */
static bool
match_pending(const struct sp_fwd_slot *s, const uint32_t *ids, uint32_t n, uint32_t *mask)
{
	uint32_t clear = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t k = 0;

		while (k < s->bp_count && (s->bp_req_id[k] != ids[i] ||
		                           (s->bp_pending & ~clear & (UINT32_C(1) << k)) == 0))
			k++;
		if (k == s->bp_count)
			return false;
		clear |= UINT32_C(1) << k;
	}
	*mask = clear;
	return true;
}

/*
 * Entry side, binary protocol: one reply datagram of the owner, relayed to the client as
 * it is once every reply in it matches a request still waiting in s; or the owner's
 * refusal of some of them, placed again once on this node's map (retry_refused; SERVER_BUSY
 * when that cannot be done now).
 */
void
dp_bp_fwd_answer(struct dp_worker *w, const struct route_table *t, struct dp_fwd_in *in,
                 const struct sp_fwd_hdr *h, struct sp_fwd_slot *s, const uint8_t *payload)
{
	uint32_t ids[SP_BP_REQS_MAX];
	struct sp_bp_dgram dg;
	uint32_t clear = 0;

	if (h->kind == SP_FWD_REFUSED) {
		struct sp_bp_req reqs[SP_BP_REQS_MAX];

		if (sp_bp_decode_requests(payload, h->payload_len, t->partitions, reqs,
		                          SP_BP_REQS_MAX, &dg) != SP_BP_ERR_OK ||
		    dg.datagram_id != s->bp_dgram_id || (dg.flags & SP_BP_F_REPLY) != 0) {
			DP_STAT_INC(w->stats, fwd_rej_malformed);
			return;
		}
		for (uint32_t i = 0; i < dg.count; i++)
			ids[i] = reqs[i].request_id;
	} else {
		struct sp_bp_reply reps[SP_BP_REQS_MAX];

		if (sp_bp_decode_replies(payload, h->payload_len, reps, SP_BP_REQS_MAX, &dg) !=
		            SP_BP_ERR_OK ||
		    dg.datagram_id != s->bp_dgram_id) {
			DP_STAT_INC(w->stats, fwd_rej_malformed);
			return;
		}
		for (uint32_t i = 0; i < dg.count; i++)
			ids[i] = reps[i].request_id;
	}
	if (!match_pending(s, ids, dg.count, &clear)) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		return;
	}
	s->bp_pending &= ~clear;
	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_ADD(w->stats, fwd_refused, dg.count);
		if (!dp_fwd_retry_refused(w, in, h, s, payload, DP_MSG_BINARY))
			answer_bp_status(w, in, s, clear, SP_BP_ST_SERVER_BUSY);
	} else {
		dp_fwd_relay(w, in, s, payload, h->payload_len);
	}
	if (s->bp_pending == 0)
		dp_fwd_slot_release(w, s);
}

void
dp_bp_fwd_expire(struct dp_worker *w, struct sp_fwd_slot *s)
{
	ASSERT(s->proto == SP_FWD_BINARY);
	ASSERT(s->bp_pending != 0);
	answer_bp_status(w, NULL, s, s->bp_pending, SP_BP_ST_UNAVAILABLE);
	dp_fwd_slot_release(w, s);
}
