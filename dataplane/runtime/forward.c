/* SPDX-License-Identifier: BSD-3-Clause */
/* Forwarding between dataplanes: the runtime half (see forward.h, dataplane/forward/fwd.h). */
#include "forward.h"

#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "common/verify.h"
#include "mcport.h"
#include "net/net.h"
#include "wire/memcache.h"
#include "worker.h"

#define UNAVAILABLE_LINE "SERVER_ERROR owner unavailable"
#define WRONG_NODE_LINE  "SERVER_ERROR key is owned by another node"
#define NOT_SERVING_LINE "SERVER_ERROR not serving"
#define NOT_READY_LINE   "SERVER_ERROR not ready"

SP_STATIC_ASSERT(NET_UDP_REPLY_HDRS + SP_BP_PAYLOAD_MAX <= RTE_MBUF_DEFAULT_DATAROOM,
                 "a forward message fits one mbuf");
SP_STATIC_ASSERT(SP_FWD_HDR_SIZE + SP_MC_DGRAM_BYTES_MAX <= SP_BP_PAYLOAD_MAX,
                 "a memcached reply datagram fits one forward message");

static bool
mac_zero(const uint8_t *mac)
{
	static const uint8_t zero[NET_ETH_ADDR_LEN];

	return memcmp(mac, zero, NET_ETH_ADDR_LEN) == 0;
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
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	m->ol_flags = port->tx_ol_flags;
	if (port->tx_ol_flags != 0) {
		m->l2_len = NET_ETH_HDR_LEN;
		m->l3_len = NET_IPV4_HDR_LEN;
	}
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
	s = sp_fwd_take(&w->fwd, rte_rdtsc() + w->rt->tsc_hz * DP_FWD_TIMEOUT_MS / 1000, &idx);
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
	uint32_t partition = 0;
	uint16_t to = 0;
	uint32_t n, i;

	if (h->proto != SP_FWD_MEMCACHED || h->payload_len <= SP_MC_FRAME_BYTES ||
	    meta->pkt.l4_off != NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN) {
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
	/* Replies 1..n-1 in fresh mbufs (built from m's headers), reply 0 in m itself. */
	for (i = n; i-- > 0;) {
		uint16_t len = 0;
		const uint8_t *dgram = dp_mc_out_dgram(w, i, &len);
		struct rte_mbuf *r = i == 0 ? m : rte_pktmbuf_alloc(w->rt->port.pool);
		uint8_t *rf;

		if (r == NULL) {
			DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
			continue;
		}
		rf = rte_pktmbuf_mtod(r, uint8_t *);
		ASSERT(len <= SP_MC_DGRAM_BYTES_MAX);
		h->payload_len = len;
		memcpy(rf + NET_UDP_REPLY_HDRS + SP_FWD_HDR_SIZE, dgram, len);
		sp_fwd_encode(rf + NET_UDP_REPLY_HDRS, h);
		frame_done(w, r,
		           net_udp_reply(rf, frame, &meta->pkt, (uint16_t)(SP_FWD_HDR_SIZE + len),
		                         w->ip_id++, w->rt->port.tx_flags));
		dp_worker_tx(w, r);
	}
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

/* Entry side: a REPLY or REFUSED for slot s from its owner, in m. Consumes m. */
static void
serve_answer(struct dp_worker *w, struct rte_mbuf *m, const struct sp_fwd_hdr *h,
             struct sp_fwd_slot *s, const uint8_t *payload)
{
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct sp_mc_frame f;

	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_INC(w->stats, fwd_refused);
		if (h->payload_len > SP_MC_FRAME_BYTES && retry_refused(w, m, h, s, payload))
			return;
		answer_mc_line(w, s, m, refusal_line(h->status));
		sp_fwd_release(&w->fwd, s);
		return;
	}
	if (sp_mc_frame_decode(payload, h->payload_len, &f) != 0 || f.count == 0 ||
	    f.request_id != s->mc_request_id) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		rte_pktmbuf_free(m);
		return;
	}
	if (s->mc_expect == 0)
		s->mc_expect = f.count;
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
	serve_answer(w, m, &h, s, udp + SP_FWD_HDR_SIZE);
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
}
