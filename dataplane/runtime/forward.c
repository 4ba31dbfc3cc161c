/* SPDX-License-Identifier: BSD-3-Clause */
/* Forwarding between dataplanes: the runtime half (see forward.h, dataplane/forward/fwd.h). */
#include "forward.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "common/keyhash.h"
#include "dataplane/binexec/binexec.h"
#include "common/verify.h"
#include "mcport.h"
#include "net/net.h"
#include "wire/memcache.h"
#include "worker.h"

#define UNAVAILABLE_LINE "SERVER_ERROR owner unavailable"
#define WRONG_NODE_LINE  "SERVER_ERROR key is owned by another node"
#define NOT_SERVING_LINE "SERVER_ERROR not serving"
#define NOT_READY_LINE   "SERVER_ERROR not ready"
#define BUSY_LINE        "SERVER_ERROR busy, try again"
#define OOM_GET_LINE     "SERVER_ERROR out of memory writing get response"

static void gather_answer(struct dp_worker *w, const struct sp_fwd_hdr *h, struct sp_fwd_slot *s,
                          const uint8_t *payload);

SP_STATIC_ASSERT(NET_UDP_REPLY_HDRS + SP_BP_PAYLOAD_MAX <= RTE_MBUF_DEFAULT_DATAROOM,
                 "a forward message fits one mbuf");
SP_STATIC_ASSERT(SP_FWD_HDR_SIZE + SP_MC_DGRAM_BYTES_MAX <= SP_BP_PAYLOAD_MAX,
                 "a memcached reply datagram fits one forward message");
SP_STATIC_ASSERT(DP_MC_REPLY_DGRAMS_MAX <= 255, "a reply's datagrams are counted in a u8");
SP_STATIC_ASSERT(DP_FWD_PART_DGRAMS <= 255, "a part's datagrams are indexed by a u8");

static bool
mac_zero(const uint8_t *mac)
{
	static const uint8_t zero[NET_ETH_ADDR_LEN];

	return memcmp(mac, zero, NET_ETH_ADDR_LEN) == 0;
}

/* Sets m's lengths after net_udp_reply wrote a frame of len bytes into it. */
static void
frame_done(struct dp_worker *w, struct rte_mbuf *m, uint32_t len)
{
	const struct dp_port *port = &w->rt->port;

	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	m->ol_flags = port->tx_ol_flags;
	if (port->tx_ol_flags != 0) {
		m->l2_len = NET_ETH_HDR_LEN;
		m->l3_len = NET_IPV4_HDR_LEN;
	}
}

/*
 * Writes Ethernet/IPv4/UDP headers in front of the payload_len bytes already at
 * frame + NET_UDP_REPLY_HDRS: from this node (our_port) to peer_mac/peer_ip:peer_port, and
 * sets m's lengths and offload flags. Uses net_udp_reply on a made-up request header from
 * the peer, so every frame this node sends is built by one function.
 */
static void
frame_to(struct dp_worker *w, struct rte_mbuf *m, const uint8_t *peer_mac, uint32_t peer_ip_be,
         uint16_t peer_port, uint16_t our_port, uint16_t payload_len)
{
	const struct dp_port *port = &w->rt->port;
	uint8_t fake[NET_ETH_HDR_LEN];
	struct net_pkt p;
	uint32_t len;

	ASSERT(payload_len <= SP_BP_PAYLOAD_MAX);
	memset(&p, 0, sizeof(p));
	memcpy(fake, port->mac.addr_bytes, NET_ETH_ADDR_LEN);
	memcpy(fake + NET_ETH_ADDR_LEN, peer_mac, NET_ETH_ADDR_LEN);
	p.l3_off = NET_ETH_HDR_LEN;
	p.l4_off = NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN;
	p.src_ip_be = peer_ip_be;
	p.dst_ip_be = w->rt->cfg.ip_be;
	p.src_port = peer_port;
	p.dst_port = our_port;
	len = net_udp_reply(rte_pktmbuf_mtod(m, uint8_t *), fake, &p, payload_len, w->ip_id++,
	                    port->tx_flags);
	ASSERT(len == NET_UDP_REPLY_HDRS + (uint32_t)payload_len);
	frame_done(w, m, len);
}

/* ---- Batches: forward datagrams filled within one poll burst (fwd.h) ----------------- */

static uint8_t *
batch_data(const struct sp_fwd_batch *b)
{
	ASSERT(b->frame != NULL);
	return rte_pktmbuf_mtod((struct rte_mbuf *)b->frame, uint8_t *) + NET_UDP_REPLY_HDRS;
}

/* Sends batch b (one or more messages) and frees its entry. */
static void
batch_send(struct dp_worker *w, struct sp_fwd_batch *b)
{
	struct rte_mbuf *m = b->frame;

	ASSERT(m != NULL);
	ASSERT(b->count >= 1 && b->count <= SP_FWD_BATCH_MAX);
	ASSERT(b->used <= SP_BP_PAYLOAD_MAX);
	frame_to(w, m, b->peer_mac, b->peer_ip_be, b->peer_port, b->our_port, b->used);
	DP_STAT_INC(w->stats, fwd_frames_out);
	DP_STAT_ADD(w->stats, fwd_msgs_out, b->count);
	b->frame = NULL;
	dp_worker_tx(w, m);
}

void
dp_fwd_flush(struct dp_worker *w)
{
	for (uint32_t i = 0; i < SP_FWD_BATCH_PEERS; i++)
		if (w->fwd_batch[i].frame != NULL)
			batch_send(w, &w->fwd_batch[i]);
}

/*
 * The batch to peer_mac/peer_ip:peer_port from our_port with room for one more message of
 * payload_len bytes: the open one, or a new one (the open one is sent first when the
 * message does not fit it; the fullest batch is sent first when every entry is taken).
 * NULL when no mbuf was free (counted): nothing was changed but what was sent.
 */
static struct sp_fwd_batch *
batch_for(struct dp_worker *w, const uint8_t *peer_mac, uint32_t peer_ip_be, uint16_t peer_port,
          uint16_t our_port, uint32_t payload_len)
{
	struct sp_fwd_batch *free_b = NULL, *fullest = NULL, *b;
	uint32_t need = SP_FWD_HDR_SIZE + payload_len;
	struct rte_mbuf *m;

	ASSERT(payload_len <= SP_FWD_PAYLOAD_MAX);
	for (uint32_t i = 0; i < SP_FWD_BATCH_PEERS; i++) {
		b = &w->fwd_batch[i];
		if (b->frame == NULL) {
			if (free_b == NULL)
				free_b = b;
			continue;
		}
		if (b->peer_ip_be == peer_ip_be && b->peer_port == peer_port &&
		    b->our_port == our_port &&
		    memcmp(b->peer_mac, peer_mac, NET_ETH_ADDR_LEN) == 0) {
			if (b->used + need <= SP_BP_PAYLOAD_MAX && b->count < SP_FWD_BATCH_MAX)
				return b;
			batch_send(w, b);
			free_b = b;
			break;
		}
		if (fullest == NULL || b->used > fullest->used)
			fullest = b;
	}
	if (free_b == NULL) {
		ASSERT(fullest != NULL);
		batch_send(w, fullest);
		free_b = fullest;
	}
	m = rte_pktmbuf_alloc(w->rt->port.pool);
	if (m == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return NULL;
	}
	b = free_b;
	b->frame = m;
	b->peer_ip_be = peer_ip_be;
	b->peer_port = peer_port;
	b->our_port = our_port;
	memcpy(b->peer_mac, peer_mac, NET_ETH_ADDR_LEN);
	b->used = 0;
	b->count = 0;
	return b;
}

/* Ends the message whose payload the caller wrote after its header's place in b. */
static void
batch_commit(struct sp_fwd_batch *b, const struct sp_fwd_hdr *h)
{
	ASSERT(b->count < SP_FWD_BATCH_MAX);
	ASSERT(b->used + SP_FWD_HDR_SIZE + h->payload_len <= SP_BP_PAYLOAD_MAX);
	sp_fwd_encode(batch_data(b) + b->used, h);
	b->used = (uint16_t)(b->used + SP_FWD_HDR_SIZE + h->payload_len);
	b->count++;
}

/* Appends message h, its payload copied from payload, to the batch for that peer port.
 * false when no mbuf was free (counted). */
static bool
batch_put(struct dp_worker *w, const uint8_t *peer_mac, uint32_t peer_ip_be, uint16_t peer_port,
          uint16_t our_port, const struct sp_fwd_hdr *h, const void *payload)
{
	struct sp_fwd_batch *b =
	        batch_for(w, peer_mac, peer_ip_be, peer_port, our_port, h->payload_len);

	if (b == NULL)
		return false;
	memcpy(batch_data(b) + b->used + SP_FWD_HDR_SIZE, payload, h->payload_len);
	batch_commit(b, h);
	return true;
}

bool
dp_fwd_is_message(const struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of((struct rte_mbuf *)m);

	return sp_fwd_is(rte_pktmbuf_mtod(m, const uint8_t *) + meta->pkt.payload_off,
	                 meta->pkt.payload_len);
}

enum dp_fwd_rc
dp_fwd_mc_request(struct dp_worker *w, const struct route_table *t, struct rte_mbuf *m,
                  uint16_t node, uint32_t partition)
{
	struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const struct route_node *n;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	struct sp_mc_frame f;
	uint16_t worker;
	uint32_t idx;
	uint16_t len = meta->pkt.payload_len;

	ASSERT(node < t->node_count);
	ASSERT(partition < t->partitions);
	n = &t->nodes[node];
	worker = route_owner_workers(t)[partition];
	if (node == t->self_index || n->ipv4_be == 0 || mac_zero(n->mac) || n->binary_port == 0 ||
	    worker >= n->worker_count) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return DP_FWD_NO_PEER;
	}
	if (len > SP_FWD_PAYLOAD_MAX ||
	    sp_mc_frame_decode(frame + meta->pkt.payload_off, len, &f) != 0) {
		DP_STAT_INC(w->stats, fwd_too_big);
		return DP_FWD_TOO_BIG;
	}
	s = sp_fwd_take(&w->fwd, rte_rdtsc() + w->rt->tsc_hz * w->rt->cfg.forward_timeout_ms / 1000,
	                &idx);
	if (s == NULL) {
		DP_STAT_INC(w->stats, fwd_table_full);
		return DP_FWD_FULL;
	}
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = w->index,
	                        .payload_len = len,
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	/* The client's payload is copied into this peer's batch; the client's mbuf goes. */
	if (!batch_put(w, n->mac, n->ipv4_be, (uint16_t)(n->binary_port + worker),
	               (uint16_t)(w->rt->cfg.port_base + w->index), &h,
	               frame + meta->pkt.payload_off)) {
		sp_fwd_release(&w->fwd, s);
		return DP_FWD_FULL;
	}
	s->proto = SP_FWD_MEMCACHED;
	s->owner_node = node;
	s->owner_ip_be = n->ipv4_be;
	s->client_ip_be = meta->pkt.src_ip_be;
	s->client_port = meta->pkt.src_port;
	s->local_port = meta->pkt.dst_port;
	memcpy(s->client_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	s->mc_request_id = f.request_id;
	DP_STAT_INC(w->stats, fwd_out);
	rte_pktmbuf_free(m);
	return DP_FWD_SENT;
}

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
	if (node == t->self_index || nd->ipv4_be == 0 || mac_zero(nd->mac) ||
	    nd->binary_port == 0 || worker >= nd->worker_count) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return DP_FWD_NO_PEER;
	}
	len = SP_BP_DGRAM_HDR_SIZE;
	for (uint32_t k = 0; k < n; k++)
		len += reqs[k]->record_len;
	ASSERT(len <= SP_FWD_PAYLOAD_MAX); /* the caller checked the sizes */
	s = sp_fwd_take(&w->fwd, rte_rdtsc() + w->rt->tsc_hz * w->rt->cfg.forward_timeout_ms / 1000,
	                &idx);
	if (s == NULL) {
		DP_STAT_INC(w->stats, fwd_table_full);
		return DP_FWD_FULL;
	}
	bt = batch_for(w, nd->mac, nd->ipv4_be, (uint16_t)(nd->binary_port + worker),
	               (uint16_t)(w->rt->cfg.port_base + w->index), len);
	if (bt == NULL) {
		sp_fwd_release(&w->fwd, s);
		return DP_FWD_FULL;
	}
	s->proto = SP_FWD_BINARY;
	s->owner_node = node;
	s->owner_ip_be = nd->ipv4_be;
	s->client_ip_be = meta->pkt.src_ip_be;
	s->client_port = meta->pkt.src_port;
	s->local_port = meta->pkt.dst_port;
	memcpy(s->client_mac, cframe + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	s->bp_dgram_id = dgram_id;
	s->bp_count = (uint16_t)n;
	s->bp_pending = n == 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
	sp_bp_builder_init(&b, batch_data(bt) + bt->used + SP_FWD_HDR_SIZE, len, false, dgram_id);
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
	batch_commit(bt, &h);
	DP_STAT_ADD(w->stats, fwd_out, n);
	return DP_FWD_SENT;
}

/*
 * The member of t that sent m: its index, or -1 (counted) when the source address is no
 * member's dataplane (or is this node), or its MAC is not the member's.
 */
static int
source_member(struct dp_worker *w, const struct route_table *t, const struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of((struct rte_mbuf *)m);
	const uint8_t *src_mac = rte_pktmbuf_mtod(m, const uint8_t *) + NET_ETH_ADDR_LEN;

	for (uint32_t i = 0; i < t->node_count; i++) {
		const struct route_node *n = &t->nodes[i];

		if (i == t->self_index || n->ipv4_be == 0 || n->ipv4_be != meta->pkt.src_ip_be)
			continue;
		if (mac_zero(n->mac) || memcmp(n->mac, src_mac, NET_ETH_ADDR_LEN) != 0) {
			DP_STAT_INC(w->stats, fwd_rej_mac);
			return -1;
		}
		return (int)i;
	}
	DP_STAT_INC(w->stats, fwd_rej_member);
	return -1;
}

/* A memcached reply of one line for the client of slot s, in mbuf m (rewritable). */
static void
answer_mc_line(struct dp_worker *w, const struct sp_fwd_slot *s, struct rte_mbuf *m,
               const char *line)
{
	uint8_t *payload = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS;
	size_t n = strlen(line);

	ASSERT(SP_MC_FRAME_BYTES + n + 2 <= SP_MC_DGRAM_BYTES_MAX);
	sp_mc_frame_encode(payload, &(struct sp_mc_frame){
	                                    .request_id = s->mc_request_id, .seq = 0, .count = 1});
	memcpy(payload + SP_MC_FRAME_BYTES, line, n);
	memcpy(payload + SP_MC_FRAME_BYTES + n, "\r\n", 2);
	frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	         (uint16_t)(SP_MC_FRAME_BYTES + n + 2));
	dp_worker_tx(w, m);
}

static const char *
refusal_line(uint8_t status)
{
	switch (status) {
	case SP_BP_ST_NOT_SERVING:
		return NOT_SERVING_LINE;
	case SP_BP_ST_NOT_READY:
		return NOT_READY_LINE;
	case SP_BP_ST_UNAVAILABLE:
		return UNAVAILABLE_LINE;
	default:
		return WRONG_NODE_LINE;
	}
}

/*
 * A forward datagram being read: who sent it, and its mbuf until the answer to one of its
 * messages takes it over (only the last message's answer may: earlier payloads live in it).
 */
struct in_frame {
	struct rte_mbuf *m; /* NULL once taken */
	bool last;          /* the message being served is the datagram's last */
	uint8_t src_mac[NET_ETH_ADDR_LEN];
	uint32_t src_ip_be;
	uint16_t src_port; /* host order, as the rest */
	uint16_t dst_port;
};

/* An mbuf for an answer to the message being served: the datagram's own when it is the
 * last message, else a fresh one. NULL when none was free (counted). */
static struct rte_mbuf *
out_mbuf(struct dp_worker *w, struct in_frame *in)
{
	struct rte_mbuf *m;

	if (in->last && in->m != NULL) {
		m = in->m;
		in->m = NULL;
		return m;
	}
	m = rte_pktmbuf_alloc(w->rt->port.pool);
	if (m == NULL)
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
	return m;
}

/* Appends a message to the batch going back to the sender of `in`. */
static bool
put_back(struct dp_worker *w, const struct in_frame *in, const struct sp_fwd_hdr *h,
         const void *payload)
{
	return batch_put(w, in->src_mac, in->src_ip_be, in->src_port, in->dst_port, h, payload);
}

/* The binary reply datagram in b (if it holds any) goes back to the entry in a REPLY. */
static void
bp_reply_out(struct dp_worker *w, const struct in_frame *in, struct sp_fwd_hdr *h,
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
	(void)put_back(w, in, h, b->buf);
}

/*
 * The requests of reqs marked in `mask` go back to the entry, their records as they came,
 * in one REFUSED message with `status`, so it can place them again on its own map.
 */
static void
bp_refuse_out(struct dp_worker *w, const struct in_frame *in, struct sp_fwd_hdr *h,
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
	bt = batch_for(w, in->src_mac, in->src_ip_be, in->src_port, in->dst_port, len);
	if (bt == NULL)
		return; /* the entry answers them UNAVAILABLE when its time runs out */
	sp_bp_builder_init(&b, batch_data(bt) + bt->used + SP_FWD_HDR_SIZE, len, false, dgram_id);
	for (uint32_t i = 0; i < count; i++)
		if ((mask & (UINT32_C(1) << i)) != 0)
			VERIFY(sp_bp_add_record(&b, &reqs[i]) == 0);
	VERIFY(sp_bp_builder_finish(&b) == len);
	h->kind = SP_FWD_REFUSED;
	h->status = status;
	h->index = 0;
	h->total = 0;
	h->payload_len = (uint16_t)len;
	batch_commit(bt, h);
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
static void
serve_bp_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                 const struct in_frame *in, struct sp_fwd_hdr *h, const uint8_t *payload)
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
 * Owner side: runs a forwarded memcached request (header h, payload at `payload`) and puts
 * each reply datagram in a REPLY for the entry worker, batched; a key this node does not
 * serve is refused with the request in it (one hop: never forwarded again).
 */
static void
serve_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
              const struct in_frame *in, struct sp_fwd_hdr *h, const uint8_t *payload)
{
	uint32_t partition = 0;
	uint16_t to = 0;
	uint32_t n;

	if (h->proto == SP_FWD_BINARY) {
		serve_bp_request(w, t, now_s, in, h, payload);
		return;
	}
	if (h->proto != SP_FWD_MEMCACHED || h->payload_len <= SP_MC_FRAME_BYTES ||
	    w->rt->mc == NULL) {
		DP_STAT_INC(w->stats, fwd_rej_kind);
		return;
	}
	if (mcexec_route(payload + SP_MC_FRAME_BYTES, h->payload_len - SP_MC_FRAME_BYTES,
	                 t->partitions, &partition) == MCEXEC_ROUTE_OWNER) {
		enum route_action a = route_decide(t, partition, w->index, &to);

		if (a == ROUTE_REMOTE || a == ROUTE_UNSERVED) {
			/* The request goes back with the refusal, so the entry node can try
			 * once more on a newer map without having kept a copy. */
			h->kind = SP_FWD_REFUSED;
			h->status =
			        a == ROUTE_REMOTE ? SP_BP_ST_WRONG_PARTITION : t->unserved_status;
			h->epoch = t->epoch;
			DP_STAT_INC(w->stats, fwd_refused);
			(void)put_back(w, in, h, payload);
			return;
		}
	}
	DP_STAT_INC(w->stats, fwd_in);
	n = dp_mc_run_forwarded(w, t, now_s, payload, h->payload_len);
	h->kind = SP_FWD_REPLY;
	h->epoch = t->epoch;
	h->total = (uint8_t)n;
	/* In order, each naming its place so the entry can put them back in order; noreply
	 * sends nothing back and the entry times out quietly. */
	for (uint32_t i = 0; i < n; i++) {
		uint16_t len = 0;
		const uint8_t *dgram = dp_mc_out_dgram(w, i, &len);

		ASSERT(len <= SP_MC_DGRAM_BYTES_MAX);
		h->payload_len = len;
		h->index = (uint8_t)i;
		if (!put_back(w, in, h, dgram))
			break;
	}
}

/*
 * Entry side, the owner refused (its map says someone else, or nobody here, serves it):
 * rebuilds the client's datagram (payload: the refused request, memcached or binary) in
 * an mbuf, as if it had just arrived, and puts it on this worker's own ring, so it is
 * placed again on this worker's map, which may be newer: run here if this node now owns
 * it; marked refused, it is never forwarded a second time, so otherwise the client gets
 * the error this node gives (memcached "SERVER_ERROR key is owned by another node",
 * binary WRONG_PARTITION naming the owner). Returns false (nothing sent) when no mbuf
 * was free or the ring is full.
 */
static bool
retry_refused(struct dp_worker *w, struct in_frame *in, const struct sp_fwd_hdr *h,
              const struct sp_fwd_slot *s, const uint8_t *payload)
{
	struct rte_mbuf *m = out_mbuf(w, in);
	struct dp_meta *meta;
	uint8_t *frame;

	if (m == NULL)
		return false;
	meta = dp_meta_of(m);
	frame = rte_pktmbuf_mtod(m, uint8_t *);
	memmove(frame + NET_UDP_REPLY_HDRS, payload, h->payload_len);
	memcpy(frame, w->rt->port.mac.addr_bytes, NET_ETH_ADDR_LEN);
	memcpy(frame + NET_ETH_ADDR_LEN, s->client_mac, NET_ETH_ADDR_LEN);
	memset(&meta->pkt, 0, sizeof(meta->pkt));
	meta->pkt.l3_off = NET_ETH_HDR_LEN;
	meta->pkt.l4_off = NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN;
	meta->pkt.payload_off = NET_UDP_REPLY_HDRS;
	meta->pkt.payload_len = h->payload_len;
	meta->pkt.src_ip_be = s->client_ip_be;
	meta->pkt.dst_ip_be = w->rt->cfg.ip_be;
	meta->pkt.src_port = s->client_port;
	meta->pkt.dst_port = s->local_port;
	meta->hops = 0;
	meta->reqs = 1;
	meta->refused = 1;
	meta->kind = s->proto == SP_FWD_BINARY ? DP_MSG_BINARY : DP_MSG_MEMCACHED;
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + h->payload_len);
	m->pkt_len = m->data_len;
	if (dp_handoff_send(&w->rt->handoff, w->index, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		return false;
	}
	DP_STAT_INC(w->stats, fwd_retried);
	return true;
}

/*
 * Answers `status`, in one datagram, every request of binary slot s marked in mask (in
 * an mbuf from `in`, or a fresh one when in is NULL).
 */
static void
answer_bp_status(struct dp_worker *w, struct in_frame *in, const struct sp_fwd_slot *s,
                 uint32_t mask, enum sp_bp_status status)
{
	struct rte_mbuf *m = in != NULL ? out_mbuf(w, in) : rte_pktmbuf_alloc(w->rt->port.pool);
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
	frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
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
static void
serve_bp_answer(struct dp_worker *w, struct in_frame *in, const struct route_table *t,
                const struct sp_fwd_hdr *h, struct sp_fwd_slot *s, const uint8_t *payload)
{
	uint32_t ids[SP_BP_REQS_MAX];
	struct sp_bp_dgram dg;
	struct rte_mbuf *m;
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
		if (!retry_refused(w, in, h, s, payload))
			answer_bp_status(w, in, s, clear, SP_BP_ST_SERVER_BUSY);
	} else {
		m = out_mbuf(w, in);
		if (m != NULL) {
			uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);

			memmove(frame + NET_UDP_REPLY_HDRS, payload, h->payload_len);
			frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port,
			         s->local_port, h->payload_len);
			DP_STAT_INC(w->stats, fwd_relayed);
			dp_worker_tx(w, m);
		}
	}
	if (s->bp_pending == 0)
		sp_fwd_release(&w->fwd, s);
}

/* Entry side: a REPLY or REFUSED for slot s from its owner. */
static void
serve_answer(struct dp_worker *w, struct in_frame *in, const struct route_table *t,
             const struct sp_fwd_hdr *h, struct sp_fwd_slot *s, const uint8_t *payload)
{
	struct sp_mc_frame f;
	struct rte_mbuf *m;

	if (s->proto == SP_FWD_BINARY) {
		serve_bp_answer(w, in, t, h, s, payload);
		return;
	}
	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_INC(w->stats, fwd_refused);
		if (h->payload_len <= SP_MC_FRAME_BYTES || !retry_refused(w, in, h, s, payload)) {
			m = out_mbuf(w, in);
			if (m != NULL)
				answer_mc_line(w, s, m, refusal_line(h->status));
		}
		sp_fwd_release(&w->fwd, s);
		return;
	}
	if (sp_mc_frame_decode(payload, h->payload_len, &f) != 0 ||
	    f.request_id != s->mc_request_id || (s->mc_expect != 0 && s->mc_expect != h->total)) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		return;
	}
	s->mc_expect = h->total;
	/* The owner's reply datagram, as it is, from this node's address and port. */
	m = out_mbuf(w, in);
	if (m != NULL) {
		uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);

		memmove(frame + NET_UDP_REPLY_HDRS, payload, h->payload_len);
		frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
		         h->payload_len);
		DP_STAT_INC(w->stats, fwd_relayed);
		dp_worker_tx(w, m);
	}
	if (++s->mc_got >= s->mc_expect)
		sp_fwd_release(&w->fwd, s);
}

/* One message of a datagram from member `member` (an index in t). */
static void
serve_message(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct in_frame *in,
              int member, struct sp_fwd_hdr *h, const uint8_t *payload)
{
	struct sp_fwd_slot *s;

	if (h->kind == SP_FWD_REQUEST) {
		if (t->nodes[member].node_id != h->entry_node) {
			DP_STAT_INC(w->stats, fwd_rej_member);
			return;
		}
		serve_request(w, t, now_s, in, h, payload);
		return;
	}
	s = h->entry_worker == w->index ? sp_fwd_find(&w->fwd, h->slot, h->tag) : NULL;
	if (s == NULL || s->proto != h->proto) {
		DP_STAT_INC(w->stats, fwd_rej_slot);
		return;
	}
	if (s->owner_ip_be != in->src_ip_be) {
		DP_STAT_INC(w->stats, fwd_rej_source);
		return;
	}
	if (s->gather != 0) {
		gather_answer(w, h, s, payload);
		return;
	}
	serve_answer(w, in, t, h, s, payload);
}

void
dp_fwd_input(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const uint8_t *udp = frame + meta->pkt.payload_off;
	size_t len = meta->pkt.payload_len, off = 0;
	struct in_frame in;
	struct sp_fwd_hdr h;
	uint32_t count = 0, to;
	int member, rc;

	if (sp_fwd_next(udp, len, &off, &count, &h) != 1 ||
	    meta->pkt.l4_off != NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		rte_pktmbuf_free(m);
		return;
	}
	member = source_member(w, t, m);
	if (member < 0) {
		rte_pktmbuf_free(m);
		return;
	}
	/* A forward datagram is for the worker whose port it was sent to: requests for the
	 * partitions that worker owns, answers for its slots (a batch mixes both). One that
	 * reached another queue (RSS, af_packet fanout) is handed over whole. */
	to = (uint32_t)meta->pkt.dst_port - w->rt->cfg.port_base;
	if (meta->pkt.dst_port < w->rt->cfg.port_base || to >= w->rt->workers) {
		DP_STAT_INC(w->stats, fwd_rej_slot);
		rte_pktmbuf_free(m);
		return;
	}
	if (to != w->index) {
		dp_worker_handoff(w, (uint16_t)to, m);
		return;
	}
	DP_STAT_INC(w->stats, fwd_frames_in);
	in.m = m;
	memcpy(in.src_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	in.src_ip_be = meta->pkt.src_ip_be;
	in.src_port = meta->pkt.src_port;
	in.dst_port = meta->pkt.dst_port;
	/* Each message in turn; a bad one drops it and the rest of the datagram (counted
	 * once), those before it stand. */
	do {
		in.last = off == len;
		serve_message(w, t, now_s, &in, member, &h, udp + off - h.payload_len);
		rc = sp_fwd_next(udp, len, &off, &count, &h);
	} while (rc == 1);
	if (rc != 0)
		DP_STAT_INC(w->stats, fwd_rej_malformed);
	if (in.m != NULL)
		rte_pktmbuf_free(in.m);
}

/* ---- Multi-key gets across nodes: scatter, gather in key order ------------------------ */

static const char *
get_verb(uint8_t kind)
{
	switch (kind) {
	case SP_MC_GETS:
		return "gets";
	case SP_MC_GAT:
		return "gat";
	case SP_MC_GATS:
		return "gats";
	default:
		return "get";
	}
}

/* Marks part pi of g done (releasing its forward slot) and records why it failed. */
static void
part_done(struct dp_worker *w, struct dp_fwd_gather *g, uint8_t pi, const char *fail_line)
{
	struct dp_fwd_part *p = &g->parts[pi];

	ASSERT(pi < g->nparts);
	if (p->done)
		return;
	if (p->slot_live) {
		struct sp_fwd_slot *s = sp_fwd_find(&w->fwd, p->slot, p->tag);

		if (s != NULL)
			sp_fwd_release(&w->fwd, s);
		p->slot_live = 0;
	}
	if (fail_line != NULL && g->fail_line == NULL)
		g->fail_line = fail_line;
	p->done = 1;
	g->parts_done++;
	ASSERT(g->parts_done <= g->nparts);
}

/*
 * Stores reply datagram `index` of `total` of part p (its memcached frame header dropped:
 * the part's text is its datagrams' data in index order). false when it is malformed, a
 * duplicate or over the bounds.
 */
static bool
gather_chunk(struct dp_fwd_gather *g, struct dp_fwd_part *p, const uint8_t *dgram, uint16_t len,
             uint8_t index, uint8_t total)
{
	struct sp_mc_frame f;
	uint32_t dlen;

	if (sp_mc_frame_decode(dgram, len, &f) != 0 || f.request_id != g->request_id ||
	    total == 0 || total > DP_FWD_PART_DGRAMS || index >= total)
		return false;
	if (p->expect == 0)
		p->expect = total;
	if (p->expect != total || p->chunk_off[index] != UINT32_MAX)
		return false;
	dlen = (uint32_t)len - SP_MC_FRAME_BYTES;
	if (g->raw_used + dlen > DP_FWD_GATHER_BYTES)
		return false;
	memcpy(g->raw + g->raw_used, dgram + SP_MC_FRAME_BYTES, dlen);
	p->chunk_off[index] = g->raw_used;
	p->chunk_len[index] = (uint16_t)dlen;
	g->raw_used += dlen;
	p->got++;
	return true;
}

/* Reads the decimal at s[0, n); false when it is not one. */
static bool
read_dec(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/*
 * Part pi has all its datagrams: lays its text out in order (in place when it is one
 * datagram) and matches each VALUE block to the part's next key of that name, in key
 * order. Returns false when the reply is not VALUE blocks and END (an error line, say).
 */
static bool
gather_parse(struct dp_fwd_gather *g, uint8_t pi)
{
	struct dp_fwd_part *p = &g->parts[pi];
	const char *text;
	size_t len = 0, at = 0;
	uint16_t k = 0;

	ASSERT(p->got == p->expect);
	for (uint16_t i = 0; i < p->expect; i++)
		len += p->chunk_len[i];
	if (p->expect == 1) {
		text = (const char *)g->raw + p->chunk_off[0];
	} else {
		if (g->raw_used + len > DP_FWD_GATHER_BYTES)
			return false;
		text = (const char *)g->raw + g->raw_used;
		for (uint16_t i = 0; i < p->expect; i++) {
			memcpy(g->raw + g->raw_used, g->raw + p->chunk_off[i], p->chunk_len[i]);
			g->raw_used += p->chunk_len[i];
		}
	}
	while (at < len) {
		const char *line = text + at;
		const char *eol = memchr(line, '\r', len - at);
		size_t line_len, key_len;
		const char *key, *sp;
		uint32_t bytes;

		if (eol == NULL || (size_t)(eol - text) + 1 >= len || eol[1] != '\n')
			return false;
		line_len = (size_t)(eol - line);
		if (line_len == 3 && memcmp(line, "END", 3) == 0)
			return at + 5 == len;
		if (line_len < 6 || memcmp(line, "VALUE ", 6) != 0)
			return false;
		key = line + 6;
		sp = memchr(key, ' ', line_len - 6);
		if (sp == NULL)
			return false;
		key_len = (size_t)(sp - key);
		/* flags, then bytes, then maybe cas */
		const char *flags_end = memchr(sp + 1, ' ', (size_t)(eol - sp - 1));
		if (flags_end == NULL)
			return false;
		const char *bytes_end = memchr(flags_end + 1, ' ', (size_t)(eol - flags_end - 1));
		if (bytes_end == NULL)
			bytes_end = eol;
		if (!read_dec(flags_end + 1, (size_t)(bytes_end - flags_end - 1), &bytes))
			return false;
		size_t block = line_len + 2 + bytes + 2;
		if (at + block > len || text[at + block - 2] != '\r' ||
		    text[at + block - 1] != '\n')
			return false;
		while (k < g->nkeys && (g->key_part[k] != pi || g->key_len[k] != key_len ||
		                        memcmp(g->keytext + g->key_off[k], key, key_len) != 0))
			k++;
		if (k == g->nkeys)
			return false;
		g->val_off[k] = (uint32_t)((const uint8_t *)line - g->raw);
		g->val_len[k] = (uint32_t)block;
		k++;
		at += block;
	}
	return false;
}

/* Every part is in: answers the client in key order (or the failure line); frees g. */
static void
gather_finish(struct dp_worker *w, struct dp_fwd_gather *g)
{
	struct sp_mc_out *out = dp_mc_writer(w, g->request_id);

	ASSERT(g->parts_done == g->nparts);
	if (g->fail_line != NULL) {
		VERIFY(sp_mc_out_line(out, g->fail_line, strlen(g->fail_line)) == 0);
	} else {
		for (uint16_t i = 0; i < g->nkeys; i++) {
			struct sp_mc_seg segs[2];
			unsigned n = 0;

			if (g->val_off[i] != UINT32_MAX)
				segs[n++] =
				        (struct sp_mc_seg){g->raw + g->val_off[i], g->val_len[i]};
			if (i + 1 == g->nkeys)
				segs[n++] = (struct sp_mc_seg){"END\r\n", 5};
			if (sp_mc_out_resp(out, segs, n) != 0) {
				/* As memcached out of response objects: drop what is queued. */
				sp_mc_out_cull(out);
				VERIFY(sp_mc_out_line(out, OOM_GET_LINE, strlen(OOM_GET_LINE)) ==
				       0);
				break;
			}
		}
	}
	sp_mc_out_flush(out);
	for (uint32_t i = 0; i < out->n; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(w->rt->port.pool);

		if (m == NULL) {
			DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
			break;
		}
		memcpy(rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS, sp_mc_out_dgram(out, i),
		       out->lens[i]);
		frame_to(w, m, g->client_mac, g->client_ip_be, g->client_port, g->local_port,
		         out->lens[i]);
		DP_STAT_INC(w->stats, fwd_relayed);
		dp_worker_tx(w, m);
	}
	g->live = 0;
}

/* A forward slot of a gather part got an answer (REPLY datagram or REFUSED). */
static void
gather_answer(struct dp_worker *w, const struct sp_fwd_hdr *h, struct sp_fwd_slot *s,
              const uint8_t *payload)
{
	struct dp_fwd_gather *g = &w->gathers[s->gather - 1];
	uint8_t pi = s->part;
	struct dp_fwd_part *p;

	ASSERT(g->live);
	ASSERT(pi < g->nparts);
	p = &g->parts[pi];
	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_INC(w->stats, fwd_refused);
		part_done(w, g, pi, refusal_line(h->status));
	} else if (!gather_chunk(g, p, payload, h->payload_len, h->index, h->total)) {
		part_done(w, g, pi, OOM_GET_LINE);
	} else if (p->got == p->expect) {
		part_done(w, g, pi, gather_parse(g, pi) ? NULL : UNAVAILABLE_LINE);
	}
	if (g->parts_done == g->nparts)
		gather_finish(w, g);
}

/*
 * Starts the request of part pi (a remote node) of g. Returns NULL when it was sent, else
 * the line the whole get answers: the owner cannot be reached (no address, MAC or port in
 * the map), or no slot or mbuf was free (busy).
 */
static const char *
gather_send(struct dp_worker *w, const struct route_table *t, struct dp_fwd_gather *g, uint8_t gi,
            uint8_t pi, uint32_t first_partition)
{
	struct dp_fwd_part *p = &g->parts[pi];
	const struct route_node *n = &t->nodes[p->node];
	uint16_t worker = route_owner_workers(t)[first_partition];
	uint8_t *payload = w->scratch; /* free: nothing is being built in this burst step */
	uint8_t *text = payload + SP_MC_FRAME_BYTES;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	size_t len;
	uint32_t idx;
	int wrote;

	if (n->ipv4_be == 0 || mac_zero(n->mac) || n->binary_port == 0 ||
	    worker >= n->worker_count) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return WRONG_NODE_LINE;
	}
	SP_STATIC_ASSERT(sizeof(w->scratch) >= SP_FWD_PAYLOAD_MAX, "a message payload fits");
	if (g->kind == SP_MC_GAT || g->kind == SP_MC_GATS)
		wrote = snprintf((char *)text, SP_FWD_PAYLOAD_MAX - SP_MC_FRAME_BYTES, "%s %d",
		                 get_verb(g->kind), (int)g->exptime);
	else
		wrote = snprintf((char *)text, SP_FWD_PAYLOAD_MAX - SP_MC_FRAME_BYTES, "%s",
		                 get_verb(g->kind));
	VERIFY(wrote > 0);
	len = (size_t)wrote;
	for (uint16_t k = 0; k < g->nkeys; k++) {
		if (g->key_part[k] != pi)
			continue;
		/* The keys came in one datagram, so they fit in one again. */
		VERIFY(len + 1 + g->key_len[k] + 2 <= SP_FWD_PAYLOAD_MAX - SP_MC_FRAME_BYTES);
		text[len++] = ' ';
		memcpy(text + len, g->keytext + g->key_off[k], g->key_len[k]);
		len += g->key_len[k];
	}
	text[len++] = '\r';
	text[len++] = '\n';
	s = sp_fwd_take(&w->fwd, rte_rdtsc() + w->rt->tsc_hz * w->rt->cfg.forward_timeout_ms / 1000,
	                &idx);
	if (s == NULL) {
		DP_STAT_INC(w->stats, fwd_table_full);
		return BUSY_LINE;
	}
	sp_mc_frame_encode(
	        payload, &(struct sp_mc_frame){.request_id = g->request_id, .seq = 0, .count = 1});
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = w->index,
	                        .payload_len = (uint16_t)(SP_MC_FRAME_BYTES + len),
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	if (!batch_put(w, n->mac, n->ipv4_be, (uint16_t)(n->binary_port + worker),
	               (uint16_t)(w->rt->cfg.port_base + w->index), &h, payload)) {
		sp_fwd_release(&w->fwd, s);
		return BUSY_LINE;
	}
	s->proto = SP_FWD_MEMCACHED;
	s->owner_node = p->node;
	s->owner_ip_be = n->ipv4_be;
	s->gather = (uint8_t)(gi + 1);
	s->part = pi;
	s->mc_request_id = g->request_id;
	p->slot = idx;
	p->tag = s->tag;
	p->slot_live = 1;
	DP_STAT_INC(w->stats, fwd_out);
	return NULL;
}

/* Runs this node's part pi of g here, as a get of its keys, and takes its reply. */
static void
gather_local(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
             struct dp_fwd_gather *g, uint8_t pi)
{
	uint8_t *buf = w->scratch;
	size_t len = SP_MC_FRAME_BYTES;
	uint32_t n;
	int wrote;

	sp_mc_frame_encode(buf, &(struct sp_mc_frame){.request_id = g->request_id, .count = 1});
	if (g->kind == SP_MC_GAT || g->kind == SP_MC_GATS)
		wrote = snprintf((char *)buf + len, SP_BP_PAYLOAD_MAX - len, "%s %d",
		                 get_verb(g->kind), (int)g->exptime);
	else
		wrote = snprintf((char *)buf + len, SP_BP_PAYLOAD_MAX - len, "%s",
		                 get_verb(g->kind));
	VERIFY(wrote > 0);
	len += (size_t)wrote;
	for (uint16_t k = 0; k < g->nkeys; k++) {
		if (g->key_part[k] != pi)
			continue;
		VERIFY(len + 1 + g->key_len[k] + 2 <= SP_BP_PAYLOAD_MAX);
		buf[len++] = ' ';
		memcpy(buf + len, g->keytext + g->key_off[k], g->key_len[k]);
		len += g->key_len[k];
	}
	buf[len++] = '\r';
	buf[len++] = '\n';
	n = dp_mc_run_forwarded(w, t, now_s, buf, len);
	for (uint32_t i = 0; i < n && n <= DP_FWD_PART_DGRAMS; i++) {
		uint16_t dlen = 0;
		const uint8_t *d = dp_mc_out_dgram(w, i, &dlen);

		if (!gather_chunk(g, &g->parts[pi], d, dlen, (uint8_t)i, (uint8_t)n)) {
			part_done(w, g, pi, OOM_GET_LINE);
			return;
		}
	}
	part_done(w, g, pi,
	          n > 0 && g->parts[pi].got == g->parts[pi].expect && gather_parse(g, pi)
	                  ? NULL
	                  : OOM_GET_LINE);
}

bool
dp_fwd_mc_gather(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                 struct rte_mbuf *m)
{
	struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const uint8_t *udp = frame + meta->pkt.payload_off;
	size_t len = meta->pkt.payload_len;
	uint32_t first_part[DP_FWD_GATHER_PARTS];
	struct dp_fwd_gather *g = NULL;
	struct sp_mc_frame f;
	struct sp_mc_cmd cmd;
	uint32_t pos = 0, key_len;
	const char *key;
	size_t used = 0;
	bool remote = false;
	uint8_t gi;

	if (len <= SP_MC_FRAME_BYTES || sp_mc_frame_decode(udp, len, &f) != 0 ||
	    !sp_mc_frame_acceptable(&f, len - SP_MC_FRAME_BYTES))
		return false;
	if (sp_mc_parse(udp + SP_MC_FRAME_BYTES, len - SP_MC_FRAME_BYTES, SP_MC_VALUE_MAX, &cmd,
	                &used) != 0 ||
	    used != len - SP_MC_FRAME_BYTES || !sp_mc_kind_is_get(cmd.kind) || cmd.key_count == 0 ||
	    cmd.key_count > DP_FWD_GATHER_KEYS)
		return false;
	while (sp_mc_next_key(&cmd, &pos, &key, &key_len)) {
		uint32_t p = sp_key_partition(sp_key_hash(key, key_len), t->partitions);
		uint16_t to = 0;
		enum route_action a = route_decide(t, p, w->index, &to);

		if (a == ROUTE_UNSERVED)
			return false;
		remote = remote || a == ROUTE_REMOTE;
	}
	if (!remote)
		return false;
	for (gi = 0; gi < DP_FWD_GATHERS; gi++) {
		if (!w->gathers[gi].live) {
			g = &w->gathers[gi];
			break;
		}
	}
	if (g == NULL) {
		DP_STAT_INC(w->stats, fwd_table_full);
		{
			struct sp_fwd_slot tmp = {.client_ip_be = meta->pkt.src_ip_be,
			                          .client_port = meta->pkt.src_port,
			                          .local_port = meta->pkt.dst_port,
			                          .mc_request_id = f.request_id};
			memcpy(tmp.client_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
			answer_mc_line(w, &tmp, m, BUSY_LINE);
		}
		return true;
	}
	memset(g, 0, offsetof(struct dp_fwd_gather, keytext));
	g->live = 1;
	g->kind = (uint8_t)cmd.kind;
	g->exptime = cmd.exptime;
	g->request_id = f.request_id;
	g->client_ip_be = meta->pkt.src_ip_be;
	g->client_port = meta->pkt.src_port;
	g->local_port = meta->pkt.dst_port;
	memcpy(g->client_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	ASSERT(cmd.keys_len <= sizeof(g->keytext));
	memcpy(g->keytext, cmd.keys, cmd.keys_len);
	pos = 0;
	while (sp_mc_next_key(&cmd, &pos, &key, &key_len)) {
		uint32_t p = sp_key_partition(sp_key_hash(key, key_len), t->partitions);
		uint16_t to = 0;
		uint16_t node = route_decide(t, p, w->index, &to) == ROUTE_REMOTE
		                        ? to
		                        : (uint16_t)t->self_index;
		uint8_t pi;
		uint16_t k = g->nkeys++;

		for (pi = 0; pi < g->nparts && g->parts[pi].node != node; pi++)
			;
		if (pi == g->nparts) {
			if (g->nparts == DP_FWD_GATHER_PARTS) {
				g->live = 0;
				return false; /* more nodes than a gather spans: refused as before */
			}
			g->parts[pi].node = node;
			memset(g->parts[pi].chunk_off, 0xff, sizeof(g->parts[pi].chunk_off));
			first_part[pi] = p;
			g->nparts++;
		}
		g->key_off[k] = (uint16_t)(key - cmd.keys);
		g->key_len[k] = (uint8_t)key_len;
		g->key_part[k] = pi;
		g->val_off[k] = UINT32_MAX;
	}
	ASSERT(g->nkeys == cmd.key_count);
	/* The client's datagram is no longer needed: what it asked is in g. */
	rte_pktmbuf_free(m);
	for (uint8_t pi = 0; pi < g->nparts; pi++) {
		if (g->parts[pi].node == t->self_index)
			continue;
		const char *fail = gather_send(w, t, g, gi, pi, first_part[pi]);

		if (fail != NULL)
			part_done(w, g, pi, fail);
	}
	for (uint8_t pi = 0; pi < g->nparts; pi++) {
		if (g->parts[pi].node == t->self_index)
			gather_local(w, t, now_s, g, pi);
	}
	if (g->parts_done == g->nparts)
		gather_finish(w, g);
	return true;
}

void
dp_fwd_poll(struct dp_worker *w)
{
	uint64_t now = rte_rdtsc();
	struct sp_fwd_slot *s;

	/* The burst is over: what it batched leaves now. */
	dp_fwd_flush(w);
	for (uint32_t k = 0; k < DP_FWD_EXPIRE_PER_POLL; k++) {
		struct rte_mbuf *m;

		s = sp_fwd_expired(&w->fwd, now);
		if (s == NULL)
			return;
		DP_STAT_INC(w->stats, fwd_timeouts);
		if (s->gather != 0) {
			struct dp_fwd_gather *g = &w->gathers[s->gather - 1];

			part_done(w, g, s->part, UNAVAILABLE_LINE); /* releases s */
			if (g->parts_done == g->nparts)
				gather_finish(w, g);
			continue;
		}
		if (s->proto == SP_FWD_BINARY) {
			answer_bp_status(w, NULL, s, s->bp_pending, SP_BP_ST_UNAVAILABLE);
			sp_fwd_release(&w->fwd, s);
			continue;
		}
		/* A response already partly relayed cannot be mended: the client times out. */
		if (s->mc_got == 0) {
			m = rte_pktmbuf_alloc(w->rt->port.pool);
			if (m != NULL)
				answer_mc_line(w, s, m, UNAVAILABLE_LINE);
			else
				DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		}
		sp_fwd_release(&w->fwd, s);
	}
}

void
dp_fwd_drain(struct dp_worker *w)
{
	struct sp_fwd_slot *s;

	for (uint32_t i = 0; i < SP_FWD_BATCH_PEERS; i++) {
		if (w->fwd_batch[i].frame != NULL)
			rte_pktmbuf_free(w->fwd_batch[i].frame);
		w->fwd_batch[i].frame = NULL;
	}
	for (uint32_t k = 0; k < SP_FWD_SLOTS && (s = sp_fwd_oldest(&w->fwd)) != NULL; k++) {
		DP_STAT_INC(w->stats, fwd_timeouts);
		sp_fwd_release(&w->fwd, s);
	}
	ASSERT(w->fwd.live == 0);
	for (uint32_t gi = 0; gi < DP_FWD_GATHERS; gi++)
		w->gathers[gi].live = 0;
}
