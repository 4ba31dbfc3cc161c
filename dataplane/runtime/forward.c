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

/* Whether m can be rewritten in place into a frame of NET_UDP_REPLY_HDRS + len bytes. */
static bool
rewritable(const struct rte_mbuf *m, uint32_t len)
{
	return RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1 && m->nb_segs == 1 &&
	       (uint32_t)m->buf_len - m->data_off >= NET_UDP_REPLY_HDRS + len;
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
	if (len > SP_FWD_PAYLOAD_MAX || !rewritable(m, SP_FWD_HDR_SIZE + len) ||
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
	s->proto = SP_FWD_MEMCACHED;
	s->owner_node = node;
	s->owner_ip_be = n->ipv4_be;
	s->client_ip_be = meta->pkt.src_ip_be;
	s->client_port = meta->pkt.src_port;
	s->local_port = meta->pkt.dst_port;
	memcpy(s->client_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	s->mc_request_id = f.request_id;
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = w->index,
	                        .payload_len = len,
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	/* The client's payload moves behind the message header; then the headers to the
	 * owner are written in front. Same mbuf: nothing allocated. */
	memmove(frame + NET_UDP_REPLY_HDRS + SP_FWD_HDR_SIZE, frame + meta->pkt.payload_off, len);
	sp_fwd_encode(frame + NET_UDP_REPLY_HDRS, &h);
	frame_to(w, m, n->mac, n->ipv4_be, (uint16_t)(n->binary_port + worker),
	         (uint16_t)(w->rt->cfg.port_base + w->index), (uint16_t)(SP_FWD_HDR_SIZE + len));
	DP_STAT_INC(w->stats, fwd_out);
	dp_worker_tx(w, m);
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
	struct sp_bp_builder b;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	struct rte_mbuf *m;
	uint8_t *payload;
	uint32_t idx, len;

	ASSERT(n >= 1 && n <= SP_FWD_REQS_MAX);
	ASSERT(node < t->node_count);
	nd = &t->nodes[node];
	if (node == t->self_index || nd->ipv4_be == 0 || mac_zero(nd->mac) ||
	    nd->binary_port == 0 || worker >= nd->worker_count) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return DP_FWD_NO_PEER;
	}
	m = rte_pktmbuf_alloc(w->rt->port.pool);
	if (m == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return DP_FWD_FULL;
	}
	s = sp_fwd_take(&w->fwd, rte_rdtsc() + w->rt->tsc_hz * w->rt->cfg.forward_timeout_ms / 1000,
	                &idx);
	if (s == NULL) {
		DP_STAT_INC(w->stats, fwd_table_full);
		rte_pktmbuf_free(m);
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
	payload = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS;
	sp_bp_builder_init(&b, payload + SP_FWD_HDR_SIZE, SP_FWD_PAYLOAD_MAX, false, dgram_id);
	for (uint32_t k = 0; k < n; k++) {
		s->bp_req_id[k] = reqs[k]->request_id;
		s->bp_opcode[k] = reqs[k]->opcode;
		/* The caller checked the sizes; the client datagram is intact. */
		VERIFY(sp_bp_add_record(&b, reqs[k]) == 0);
	}
	len = sp_bp_builder_finish(&b);
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_BINARY,
	                        .entry_worker = w->index,
	                        .payload_len = (uint16_t)len,
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	sp_fwd_encode(payload, &h);
	frame_to(w, m, nd->mac, nd->ipv4_be, (uint16_t)(nd->binary_port + worker),
	         (uint16_t)(w->rt->cfg.port_base + w->index), (uint16_t)(SP_FWD_HDR_SIZE + len));
	DP_STAT_ADD(w->stats, fwd_out, n);
	dp_worker_tx(w, m);
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

/* Puts the reply datagram in b (if any) into a fresh mbuf, after room for the headers. */
static bool
bp_flush(struct dp_worker *w, struct sp_bp_builder *b, struct rte_mbuf **out, uint32_t *nout)
{
	struct rte_mbuf *r;
	uint32_t len = sp_bp_builder_finish(b);

	if (b->count == 0)
		return true;
	if (*nout == SP_FWD_REQS_MAX)
		return false;
	r = rte_pktmbuf_alloc(w->rt->port.pool);
	if (r == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return false;
	}
	memcpy(rte_pktmbuf_mtod(r, uint8_t *) + NET_UDP_REPLY_HDRS + SP_FWD_HDR_SIZE, b->buf, len);
	r->data_len = (uint16_t)len; /* the payload length until the headers are written */
	out[(*nout)++] = r;
	return true;
}

/*
 * Owner side, binary protocol: runs each forwarded request this worker owns; others get
 * the answer this node gives (WRONG_PARTITION naming the owner, NOT_SERVING...,
 * SERVER_BUSY for another local worker's): one hop, never forwarded again. The reply
 * datagrams go back in REPLY messages, in order. Consumes m.
 */
static void
serve_bp_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                 struct rte_mbuf *m, struct sp_fwd_hdr *h, const uint8_t *payload)
{
	const struct dp_meta *meta = dp_meta_of(m);
	const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct rte_mbuf *out[SP_FWD_REQS_MAX];
	struct sp_bp_builder b;
	struct sp_bp_dgram dg;
	uint32_t nout = 0, ran = 0;
	bool ok = true;

	if (sp_bp_decode_requests(payload, h->payload_len, t->partitions, reqs, SP_BP_REQS_MAX,
	                          &dg) != SP_BP_ERR_OK ||
	    meta->pkt.l4_off != NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		rte_pktmbuf_free(m);
		return;
	}
	sp_bp_builder_init(&b, w->scratch, SP_FWD_PAYLOAD_MAX, true, dg.datagram_id);
	for (uint32_t i = 0; i < dg.count && ok; i++) {
		const struct sp_bp_req *q = &reqs[i];
		int rc = -SP_EFULL;

		for (int attempt = 0; attempt < 2 && rc == -SP_EFULL; attempt++) {
			uint16_t to = 0;

			if (attempt > 0) {
				ok = bp_flush(w, &b, out, &nout);
				if (!ok)
					break;
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
				rc = sp_binexec_run(w->rt->stores[q->partition], q, now_s, NULL, &b,
				                    &w->bx);
				ran += rc == 0;
				break;
			case ROUTE_REMOTE: {
				const struct route_node *n = &t->nodes[to];
				uint16_t ow = route_owner_workers(t)[q->partition];
				struct sp_bp_redirect rd = {.epoch = t->epoch,
				                            .node_id = n->node_id,
				                            .ipv4_be = n->ipv4_be,
				                            .port = (uint16_t)(n->binary_port + ow),
				                            .worker = ow,
				                            .partition = q->partition};
				rc = sp_binexec_redirect(q, &rd, &b, &w->bx);
				break;
			}
			case ROUTE_UNSERVED:
				rc = sp_binexec_refuse(q, (enum sp_bp_status)t->unserved_status, &b,
				                       &w->bx);
				break;
			default: /* another worker of this node, or arriving: not run here */
				rc = sp_binexec_refuse(q, SP_BP_ST_SERVER_BUSY, &b, &w->bx);
				break;
			}
		}
		VERIFY(!ok || rc == 0);
	}
	if (ok)
		ok = bp_flush(w, &b, out, &nout);
	DP_STAT_ADD(w->stats, fwd_in, ran);
	DP_STAT_ADD(w->stats, requests, ran);
	/* Headers now that the count is known; a reply that lost a datagram is sent as far as
	 * it goes (the entry answers the rest UNAVAILABLE when its time runs out). */
	h->kind = SP_FWD_REPLY;
	h->epoch = t->epoch;
	h->total = (uint8_t)nout;
	for (uint32_t k = 0; k < nout; k++) {
		struct rte_mbuf *r = out[k];
		uint8_t *rf = rte_pktmbuf_mtod(r, uint8_t *);
		uint16_t len = r->data_len;

		h->index = (uint8_t)k;
		h->payload_len = len;
		sp_fwd_encode(rf + NET_UDP_REPLY_HDRS, h);
		frame_done(w, r,
		           net_udp_reply(rf, frame, &meta->pkt, (uint16_t)(SP_FWD_HDR_SIZE + len),
		                         w->ip_id++, w->rt->port.tx_flags));
		dp_worker_tx(w, r);
	}
	rte_pktmbuf_free(m);
}

/*
 * Owner side: runs a forwarded memcached request that arrived in m (header h, payload at
 * `payload`) and sends each reply datagram back to the entry worker in its own message;
 * a key this node does not serve is refused (one hop: never forwarded again). Consumes m.
 */
static void
serve_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct rte_mbuf *m,
              struct sp_fwd_hdr *h, const uint8_t *payload)
{
	const struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_mbuf *out[DP_MC_REPLY_DGRAMS_MAX];
	uint32_t partition = 0;
	uint16_t to = 0;
	uint32_t n, i;

	if (h->proto == SP_FWD_BINARY) {
		serve_bp_request(w, t, now_s, m, h, payload);
		return;
	}
	if (h->proto != SP_FWD_MEMCACHED || h->payload_len <= SP_MC_FRAME_BYTES ||
	    meta->pkt.l4_off != NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN || w->rt->mc == NULL) {
		DP_STAT_INC(w->stats, fwd_rej_kind);
		rte_pktmbuf_free(m);
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
			sp_fwd_encode(frame + NET_UDP_REPLY_HDRS, h);
			frame_done(w, m,
			           net_udp_reply(frame, frame, &meta->pkt,
			                         (uint16_t)(SP_FWD_HDR_SIZE + h->payload_len),
			                         w->ip_id++, w->rt->port.tx_flags));
			DP_STAT_INC(w->stats, fwd_refused);
			dp_worker_tx(w, m);
			return;
		}
	}
	DP_STAT_INC(w->stats, fwd_in);
	n = dp_mc_run_forwarded(w, t, now_s, payload, h->payload_len);
	h->kind = SP_FWD_REPLY;
	h->epoch = t->epoch;
	h->total = (uint8_t)n;
	/* Replies 1..n-1 in fresh mbufs built from m's headers, then reply 0 in m itself;
	 * sent in order, each naming its place so the entry can put them back in order. */
	for (i = n; i-- > 0;) {
		uint16_t len = 0;
		const uint8_t *dgram = dp_mc_out_dgram(w, i, &len);
		struct rte_mbuf *r = i == 0 ? m : rte_pktmbuf_alloc(w->rt->port.pool);
		uint8_t *rf;

		out[i] = r;
		if (r == NULL) {
			DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
			continue;
		}
		rf = rte_pktmbuf_mtod(r, uint8_t *);
		ASSERT(len <= SP_MC_DGRAM_BYTES_MAX);
		h->payload_len = len;
		h->index = (uint8_t)i;
		memcpy(rf + NET_UDP_REPLY_HDRS + SP_FWD_HDR_SIZE, dgram, len);
		sp_fwd_encode(rf + NET_UDP_REPLY_HDRS, h);
		frame_done(w, r,
		           net_udp_reply(rf, frame, &meta->pkt, (uint16_t)(SP_FWD_HDR_SIZE + len),
		                         w->ip_id++, w->rt->port.tx_flags));
	}
	for (i = 0; i < n; i++)
		if (out[i] != NULL)
			dp_worker_tx(w, out[i]);
	if (n == 0)
		rte_pktmbuf_free(m); /* noreply: nothing goes back; the entry times out quietly */
}

/*
 * Entry side, the owner refused (its map says someone else, or nobody here, serves the
 * key): rebuilds the client's datagram in m, as if it had just arrived, and puts it on this
 * worker's own ring, so it is placed again on this worker's map, which may be newer (run
 * here, or forwarded to the new owner). Marked refused, it is never forwarded a second
 * time. Releases s. Returns false (nothing done) when the ring is full.
 */
static bool
retry_refused(struct dp_worker *w, struct rte_mbuf *m, const struct sp_fwd_hdr *h,
              struct sp_fwd_slot *s, const uint8_t *payload)
{
	struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_mbuf *one = m;

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
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + h->payload_len);
	m->pkt_len = m->data_len;
	if (dp_handoff_send(&w->rt->handoff, w->index, &one, 1) != 1)
		return false;
	DP_STAT_INC(w->stats, fwd_retried);
	sp_fwd_release(&w->fwd, s);
	return true;
}

/*
 * Entry side, binary protocol: one reply datagram of the owner, relayed to the client as it
 * is once every reply in it matches a request still waiting in s. Consumes m.
 */
static void
serve_bp_answer(struct dp_worker *w, struct rte_mbuf *m, const struct sp_fwd_hdr *h,
                struct sp_fwd_slot *s, const uint8_t *payload)
{
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct sp_bp_reply reps[SP_BP_REQS_MAX];
	struct sp_bp_dgram dg;
	uint32_t clear = 0;

	if (h->kind != SP_FWD_REPLY ||
	    sp_bp_decode_replies(payload, h->payload_len, reps, SP_BP_REQS_MAX, &dg) !=
	            SP_BP_ERR_OK ||
	    dg.datagram_id != s->bp_dgram_id) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		rte_pktmbuf_free(m);
		return;
	}
	for (uint32_t i = 0; i < dg.count; i++) {
		uint32_t k = 0;

		while (k < s->bp_count && (s->bp_req_id[k] != reps[i].request_id ||
		                           (s->bp_pending & ~clear & (UINT32_C(1) << k)) == 0))
			k++;
		if (k == s->bp_count) {
			DP_STAT_INC(w->stats, fwd_rej_malformed);
			rte_pktmbuf_free(m);
			return;
		}
		clear |= UINT32_C(1) << k;
	}
	s->bp_pending &= ~clear;
	memmove(frame + NET_UDP_REPLY_HDRS, payload, h->payload_len);
	frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	         h->payload_len);
	DP_STAT_INC(w->stats, fwd_relayed);
	dp_worker_tx(w, m);
	if (s->bp_pending == 0)
		sp_fwd_release(&w->fwd, s);
}

/* Entry side: a REPLY or REFUSED for slot s from its owner, in m. Consumes m. */
static void
serve_answer(struct dp_worker *w, struct rte_mbuf *m, const struct sp_fwd_hdr *h,
             struct sp_fwd_slot *s, const uint8_t *payload)
{
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct sp_mc_frame f;

	if (s->proto == SP_FWD_BINARY) {
		serve_bp_answer(w, m, h, s, payload);
		return;
	}
	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_INC(w->stats, fwd_refused);
		if (h->payload_len > SP_MC_FRAME_BYTES && retry_refused(w, m, h, s, payload))
			return;
		answer_mc_line(w, s, m, refusal_line(h->status));
		sp_fwd_release(&w->fwd, s);
		return;
	}
	if (sp_mc_frame_decode(payload, h->payload_len, &f) != 0 ||
	    f.request_id != s->mc_request_id || (s->mc_expect != 0 && s->mc_expect != h->total)) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		rte_pktmbuf_free(m);
		return;
	}
	s->mc_expect = h->total;
	/* The owner's reply datagram, as it is, from this node's address and port. */
	memmove(frame + NET_UDP_REPLY_HDRS, payload, h->payload_len);
	frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	         h->payload_len);
	DP_STAT_INC(w->stats, fwd_relayed);
	dp_worker_tx(w, m);
	if (++s->mc_got >= s->mc_expect)
		sp_fwd_release(&w->fwd, s);
}

void
dp_fwd_input(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const uint8_t *udp = frame + meta->pkt.payload_off;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	int member;

	if (sp_fwd_decode(udp, meta->pkt.payload_len, &h) != 0) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		rte_pktmbuf_free(m);
		return;
	}
	member = source_member(w, t, m);
	if (member < 0) {
		rte_pktmbuf_free(m);
		return;
	}
	if (h.kind == SP_FWD_REQUEST) {
		if (t->nodes[member].node_id != h.entry_node) {
			DP_STAT_INC(w->stats, fwd_rej_member);
			rte_pktmbuf_free(m);
			return;
		}
		serve_request(w, t, now_s, m, &h, udp + SP_FWD_HDR_SIZE);
		return;
	}
	if (h.entry_worker != w->index) {
		/* The reply reached another queue than its slot's worker: hand it over. */
		if (h.entry_worker < w->rt->workers) {
			dp_worker_handoff(w, h.entry_worker, m);
			return;
		}
		DP_STAT_INC(w->stats, fwd_rej_slot);
		rte_pktmbuf_free(m);
		return;
	}
	s = sp_fwd_find(&w->fwd, h.slot, h.tag);
	if (s == NULL || s->proto != h.proto) {
		DP_STAT_INC(w->stats, fwd_rej_slot);
		rte_pktmbuf_free(m);
		return;
	}
	if (s->owner_ip_be != meta->pkt.src_ip_be) {
		DP_STAT_INC(w->stats, fwd_rej_source);
		rte_pktmbuf_free(m);
		return;
	}
	if (s->gather != 0) {
		gather_answer(w, &h, s, udp + SP_FWD_HDR_SIZE);
		rte_pktmbuf_free(m);
		return;
	}
	serve_answer(w, m, &h, s, udp + SP_FWD_HDR_SIZE);
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
	struct rte_mbuf *m;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	uint8_t *payload, *text;
	size_t len;
	uint32_t idx;
	int wrote;

	if (n->ipv4_be == 0 || mac_zero(n->mac) || n->binary_port == 0 ||
	    worker >= n->worker_count) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return WRONG_NODE_LINE;
	}
	m = rte_pktmbuf_alloc(w->rt->port.pool);
	if (m == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return BUSY_LINE;
	}
	payload = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS;
	text = payload + SP_FWD_HDR_SIZE + SP_MC_FRAME_BYTES;
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
		rte_pktmbuf_free(m);
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
	sp_mc_frame_encode(
	        payload + SP_FWD_HDR_SIZE,
	        &(struct sp_mc_frame){.request_id = g->request_id, .seq = 0, .count = 1});
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = w->index,
	                        .payload_len = (uint16_t)(SP_MC_FRAME_BYTES + len),
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	sp_fwd_encode(payload, &h);
	frame_to(w, m, n->mac, n->ipv4_be, (uint16_t)(n->binary_port + worker),
	         (uint16_t)(w->rt->cfg.port_base + w->index),
	         (uint16_t)(SP_FWD_HDR_SIZE + h.payload_len));
	DP_STAT_INC(w->stats, fwd_out);
	dp_worker_tx(w, m);
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

/* Answers UNAVAILABLE, in one datagram, every request of binary slot s without a reply. */
static void
answer_bp_unavailable(struct dp_worker *w, const struct sp_fwd_slot *s)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->rt->port.pool);
	struct sp_bp_builder b;
	uint32_t len;

	if (m == NULL) {
		DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
		return;
	}
	sp_bp_builder_init(&b, rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS,
	                   SP_BP_PAYLOAD_MAX, true, s->bp_dgram_id);
	for (uint32_t k = 0; k < s->bp_count; k++)
		if ((s->bp_pending & (UINT32_C(1) << k)) != 0)
			VERIFY(sp_bp_add_reply(&b, s->bp_req_id[k], s->bp_opcode[k],
			                       SP_BP_ST_UNAVAILABLE, 0, 0, 0) != NULL);
	len = sp_bp_builder_finish(&b);
	frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	         (uint16_t)len);
	dp_worker_tx(w, m);
}

void
dp_fwd_poll(struct dp_worker *w)
{
	uint64_t now = rte_rdtsc();
	struct sp_fwd_slot *s;

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
			answer_bp_unavailable(w, s);
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

	for (uint32_t k = 0; k < SP_FWD_SLOTS && (s = sp_fwd_oldest(&w->fwd)) != NULL; k++) {
		DP_STAT_INC(w->stats, fwd_timeouts);
		sp_fwd_release(&w->fwd, s);
	}
	ASSERT(w->fwd.live == 0);
	for (uint32_t gi = 0; gi < DP_FWD_GATHERS; gi++)
		w->gathers[gi].live = 0;
}
