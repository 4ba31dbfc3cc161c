/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Worker-to-worker hand-off. Every worker has one inbound rte_ring (multi-producer,
 * single-consumer, DP_RING_SIZE mbufs). The unit handed over is an mbuf holding a request
 * datagram whose requests all belong to the receiving worker: the original frame when the
 * whole datagram is for it, or a copy made for its share of a mixed datagram, or a message
 * one service sends its own kind on another worker. The mbuf's private area (struct
 * dp_meta) says what kind of message it is, where the datagram sits and how often it moved.
 */
#ifndef SP_DP_HANDOFF_H
#define SP_DP_HANDOFF_H

#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "bounds.h"
#include "common/verify.h"
#include "config.h"
#include "net/net.h"

/* Kept in each mbuf's private area (the pool is created with room for it). */
struct dp_meta {
	struct net_pkt pkt; /* offsets and addresses of the request datagram in the frame */
	uint16_t reqs;      /* requests in the datagram, for counting drops */
	uint8_t hops;       /* moves between workers so far (hand-offs and defers) */
	uint8_t refused;    /* forwarded once and refused by the owner: never forward again */
	/* What the mbuf holds (enum dp_msg_kind, service.h): set where the mbuf is classified
	 * or made, read by every worker that serves it; never guessed from ports or offsets. */
	uint8_t kind;
};

/*
 * Private-area size to give rte_pktmbuf_pool_create: whole cache lines, so that a frame
 * (at the default headroom behind the header and this area) starts on a line boundary. A
 * short request frame then spans two lines rather than three; with 32 bytes here, a
 * 105-byte single-GET frame reached a third line that nothing prefetched.
 */
#define DP_META_PRIV_SIZE RTE_ALIGN_CEIL(sizeof(struct dp_meta), RTE_CACHE_LINE_SIZE)
SP_STATIC_ASSERT((sizeof(struct rte_mbuf) + DP_META_PRIV_SIZE + RTE_PKTMBUF_HEADROOM) %
                                 RTE_CACHE_LINE_SIZE ==
                         0,
                 "a received frame starts on a cache line");

static inline struct dp_meta *
dp_meta_of(struct rte_mbuf *m)
{
	return (struct dp_meta *)rte_mbuf_to_priv(m);
}

struct dp_handoff {
	unsigned int workers;
	struct rte_ring *rings[DP_WORKERS_MAX];
};

/*
 * Creates one inbound ring per worker on socket_of[i]'s socket. Returns 0, or a negative
 * errno (logged) with nothing left allocated.
 */
int dp_handoff_create(struct dp_handoff *h, unsigned int workers, const int *socket_of);

/*
 * Frees every mbuf still queued, then the rings; returns how many mbufs it freed. Call
 * once the workers have stopped. Safe on a partly created set.
 */
unsigned int dp_handoff_destroy(struct dp_handoff *h);

/*
 * Hot path: offers n mbufs to worker `to`'s ring (burst, any producer). Returns how many
 * it took (a prefix of mbufs); the caller owns and counts the rest.
 */
static inline unsigned int
dp_handoff_send(struct dp_handoff *h, unsigned int to, struct rte_mbuf **mbufs, unsigned int n)
{
	ASSERT(to < h->workers);
	ASSERT(n <= DP_BURST);
	return rte_ring_mp_enqueue_burst(h->rings[to], (void **)mbufs, n, NULL);
}

/* Hot path: takes up to n (<= DP_BURST) mbufs from worker self's ring (its only consumer). */
static inline unsigned int
dp_handoff_recv(struct dp_handoff *h, unsigned int self, struct rte_mbuf **mbufs, unsigned int n)
{
	ASSERT(self < h->workers);
	ASSERT(n <= DP_BURST);
	return rte_ring_sc_dequeue_burst(h->rings[self], (void **)mbufs, n, NULL);
}

#endif
