/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forwarding between dataplanes (docs/cluster.md, "Forwarding"): a memcached request whose
 * key another node owns is sent, in the same mbuf, to the owning worker of that node
 * (dataplane/forward/fwd.h messages); the owner runs it and sends its reply datagrams
 * back; this worker relays each to the client from its own address and port. One hop: the
 * owner never forwards again, it refuses. A fixed table of requests in flight per worker
 * (SP_FWD_SLOTS) with a timeout (DP_FWD_TIMEOUT_MS): full is answered at once, a timeout
 * answers the client "SERVER_ERROR owner unavailable". Messages are accepted only from the
 * dataplane address and MAC of a current member and sent only to members; everything else
 * is dropped and counted by reason. No allocation beyond the mbuf pool, no lock, no system
 * call.
 */
#ifndef SP_DP_FORWARD_H
#define SP_DP_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "dataplane/forward/fwd.h"
#include "dataplane/route/route.h"

struct dp_worker;

/* How long an entry worker waits for the owner's reply. */
#define DP_FWD_TIMEOUT_MS 250u
/* Slots answered per loop iteration when they time out (the rest wait one iteration). */
#define DP_FWD_EXPIRE_PER_POLL 32u

/* What dp_fwd_mc_request did. */
enum dp_fwd_rc {
	DP_FWD_SENT = 0, /* forwarded; the mbuf is gone */
	DP_FWD_FULL,     /* the in-flight table is full (counted): answer busy */
	DP_FWD_NO_PEER,  /* the owner has no usable address or MAC (counted) */
	DP_FWD_TOO_BIG,  /* the request does not fit one message (counted) */
};

/* Whether m (a UDP datagram to a binary port, meta filled) is a forward message. */
bool dp_fwd_is_message(const struct rte_mbuf *m);

/*
 * Serves a forward message that arrived on worker w: a REQUEST (runs it as the owner and
 * sends the replies back, or refuses), a REPLY (relays it to the client) or a REFUSED
 * (answers the client with the error). Consumes m. Never fails: what is wrong is counted.
 */
void dp_fwd_input(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                  struct rte_mbuf *m);

/*
 * Forwards the memcached datagram in m (meta filled) to the worker of node `node` (an
 * index in t) that owns `partition`. DP_FWD_SENT consumes m; otherwise m is untouched.
 */
enum dp_fwd_rc dp_fwd_mc_request(struct dp_worker *w, const struct route_table *t,
                                 struct rte_mbuf *m, uint16_t node, uint32_t partition);

/* Once per loop iteration: answers the requests whose owner did not reply in time. */
void dp_fwd_poll(struct dp_worker *w);

/* At exit: forgets every request in flight (counted as timeouts; nothing is held). */
void dp_fwd_drain(struct dp_worker *w);

#endif
