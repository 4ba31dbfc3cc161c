/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forwarding between dataplanes: the runtime half (see forward.h, dataplane/forward/fwd.h).
 * What a message means is its protocol service's (the ops table's fwd_* callbacks,
 * service.h); this file moves messages, keeps the slots and batches, and checks who sent
 * what.
 */
#include "forward.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "common/verify.h"
#include "net/net.h"
#include "service.h"
#include "worker.h"

SP_STATIC_ASSERT(NET_UDP_REPLY_HDRS + SP_BP_PAYLOAD_MAX <= RTE_MBUF_DEFAULT_DATAROOM,
                 "a forward message fits one mbuf");
static bool
mac_zero(const uint8_t *mac)
{
	static const uint8_t zero[NET_ETH_ADDR_LEN];

	return memcmp(mac, zero, NET_ETH_ADDR_LEN) == 0;
}

/* Uses net_udp_reply on a made-up request header from the peer, so every frame this node
 * sends is built by one function. */
void
dp_fwd_frame_to(struct dp_worker *w, struct rte_mbuf *m, const uint8_t *peer_mac,
                uint32_t peer_ip_be, uint16_t peer_port, uint16_t our_port, uint16_t payload_len)
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
	dp_tx_frame_ready(port, m, len);
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
	dp_fwd_frame_to(w, m, b->peer_mac, b->peer_ip_be, b->peer_port, b->our_port, b->used);
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

/* The open batch to that port is sent first when the message does not fit it; the fullest
 * batch is sent first when every entry is taken. */
struct sp_fwd_batch *
dp_fwd_batch_for(struct dp_worker *w, const uint8_t *peer_mac, uint32_t peer_ip_be,
                 uint16_t peer_port, uint16_t our_port, uint32_t payload_len)
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

uint8_t *
dp_fwd_batch_room(const struct sp_fwd_batch *b)
{
	return batch_data(b) + b->used + SP_FWD_HDR_SIZE;
}

void
dp_fwd_batch_commit(struct sp_fwd_batch *b, const struct sp_fwd_hdr *h)
{
	ASSERT(b->count < SP_FWD_BATCH_MAX);
	ASSERT(b->used + SP_FWD_HDR_SIZE + h->payload_len <= SP_BP_PAYLOAD_MAX);
	sp_fwd_encode(batch_data(b) + b->used, h);
	b->used = (uint16_t)(b->used + SP_FWD_HDR_SIZE + h->payload_len);
	b->count++;
}

bool
dp_fwd_batch_put(struct dp_worker *w, const uint8_t *peer_mac, uint32_t peer_ip_be,
                 uint16_t peer_port, uint16_t our_port, const struct sp_fwd_hdr *h,
                 const void *payload)
{
	struct sp_fwd_batch *b =
	        dp_fwd_batch_for(w, peer_mac, peer_ip_be, peer_port, our_port, h->payload_len);

	if (b == NULL)
		return false;
	memcpy(batch_data(b) + b->used + SP_FWD_HDR_SIZE, payload, h->payload_len);
	dp_fwd_batch_commit(b, h);
	return true;
}

bool
dp_fwd_is_message(const struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of((struct rte_mbuf *)m);

	return sp_fwd_is(rte_pktmbuf_mtod(m, const uint8_t *) + meta->pkt.payload_off,
	                 meta->pkt.payload_len);
}

bool
dp_fwd_peer_usable(const struct route_node *n, uint16_t worker)
{
	return n->ipv4_be != 0 && !mac_zero(n->mac) && n->binary_port != 0 &&
	       worker < n->worker_count;
}

struct sp_fwd_slot *
dp_fwd_slot_take(struct dp_worker *w, uint32_t *idx)
{
	struct sp_fwd_slot *s = sp_fwd_take(
	        &w->fwd, rte_rdtsc() + w->rt->tsc_hz * w->rt->cfg.forward_timeout_ms / 1000, idx);

	if (s == NULL)
		DP_STAT_INC(w->stats, fwd_table_full);
	return s;
}

void
dp_fwd_slot_client(struct sp_fwd_slot *s, const struct dp_meta *meta, const uint8_t *frame)
{
	s->client_ip_be = meta->pkt.src_ip_be;
	s->client_port = meta->pkt.src_port;
	s->local_port = meta->pkt.dst_port;
	memcpy(s->client_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
}

void
dp_fwd_slot_release(struct dp_worker *w, struct sp_fwd_slot *s)
{
	sp_fwd_release(&w->fwd, s);
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

struct rte_mbuf *
dp_fwd_out_mbuf(struct dp_worker *w, struct dp_fwd_in *in)
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

bool
dp_fwd_put_back(struct dp_worker *w, const struct dp_fwd_in *in, const struct sp_fwd_hdr *h,
                const void *payload)
{
	return dp_fwd_batch_put(w, in->src_mac, in->src_ip_be, in->src_port, in->dst_port, h,
	                        payload);
}

struct sp_fwd_batch *
dp_fwd_back_batch(struct dp_worker *w, const struct dp_fwd_in *in, uint32_t payload_len)
{
	return dp_fwd_batch_for(w, in->src_mac, in->src_ip_be, in->src_port, in->dst_port,
	                        payload_len);
}

void
dp_fwd_relay(struct dp_worker *w, struct dp_fwd_in *in, const struct sp_fwd_slot *s,
             const uint8_t *payload, uint16_t payload_len)
{
	struct rte_mbuf *m = dp_fwd_out_mbuf(w, in);
	uint8_t *frame;

	if (m == NULL)
		return;
	frame = rte_pktmbuf_mtod(m, uint8_t *);
	/* memmove: when m is the forward datagram itself, payload lies in it. */
	memmove(frame + NET_UDP_REPLY_HDRS, payload, payload_len);
	dp_fwd_frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	                payload_len);
	DP_STAT_INC(w->stats, fwd_relayed);
	dp_worker_tx(w, m);
}

bool
dp_fwd_retry_refused(struct dp_worker *w, struct dp_fwd_in *in, const struct sp_fwd_hdr *h,
                     const struct sp_fwd_slot *s, const uint8_t *payload, enum dp_msg_kind kind)
{
	struct rte_mbuf *m;

	ASSERT(kind != DP_MSG_NONE && kind < DP_MSG_KINDS);
	m = dp_fwd_out_mbuf(w, in);
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
	meta->kind = (uint8_t)kind;
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
 * One message of a datagram from member `member` (an index in t), to the service whose
 * protocol it names: a REQUEST to its fwd_request (this worker owns it), a REPLY or
 * REFUSED to its fwd_answer once it matches a slot of this worker that the same owner
 * holds.
 */
static void
serve_message(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
              struct dp_fwd_in *in, int member, struct sp_fwd_hdr *h, const uint8_t *payload)
{
	const struct dp_service_ops *ops;
	struct sp_fwd_slot *s;

	if (h->kind == SP_FWD_REQUEST) {
		if (t->nodes[member].node_id != h->entry_node) {
			DP_STAT_INC(w->stats, fwd_rej_member);
			return;
		}
		ops = dp_service_of_fwd_proto(w->rt, h->proto);
		if (ops == NULL) {
			DP_STAT_INC(w->stats, fwd_rej_kind);
			return;
		}
		ops->fwd_request(w, t, now_s, in, h, payload);
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
	/* A slot is only taken by a service that is on (it sent the request). */
	ops = dp_service_of_fwd_proto(w->rt, s->proto);
	ASSERT(ops != NULL);
	ops->fwd_answer(w, t, in, h, s, payload);
}

void
dp_fwd_input(struct dp_worker *w, const struct route_table *t, uint32_t now_s, struct rte_mbuf *m)
{
	const struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const uint8_t *udp = frame + meta->pkt.payload_off;
	size_t len = meta->pkt.payload_len, off = 0;
	struct dp_fwd_in in;
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

void
dp_fwd_poll(struct dp_worker *w)
{
	uint64_t now = rte_rdtsc();
	const struct dp_service_ops *ops;
	struct sp_fwd_slot *s;

	/* The burst is over: what it batched leaves now. */
	dp_fwd_flush(w);
	for (uint32_t k = 0; k < DP_FWD_EXPIRE_PER_POLL; k++) {
		s = sp_fwd_expired(&w->fwd, now);
		if (s == NULL)
			return;
		DP_STAT_INC(w->stats, fwd_timeouts);
		ops = dp_service_of_fwd_proto(w->rt, s->proto);
		ASSERT(ops != NULL);
		ops->fwd_expire(w, s); /* releases s */
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
}
