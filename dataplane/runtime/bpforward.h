/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The binary protocol's half of forwarding between nodes (bpforward.c): sending requests
 * another node owns, and the binary service's fwd_* callbacks (service.h) that run them on
 * the owner and relay the owner's answers. The messages' format is docs/cluster.md's.
 */
#ifndef SP_DP_BPFORWARD_H
#define SP_DP_BPFORWARD_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "dataplane/forward/fwd.h"
#include "dataplane/route/route.h"
#include "forward.h"
#include "wire/binproto.h"

struct dp_worker;

/*
 * Forwards n binary-protocol requests of the client datagram in cm (meta filled; its
 * datagram id dgram_id), all owned by worker `worker` of node `node` (an index in t), in
 * one message of this burst's batch for that worker, their records copied as they arrived
 * (they fit: the caller checked record_len). The owner's reply datagrams are relayed to
 * the client; requests the owner refuses (its map moved) are placed again once on this
 * node's map; requests without a reply in time are answered UNAVAILABLE. DP_FWD_FULL also
 * when no mbuf was free. cm is only read.
 */
enum dp_fwd_rc dp_fwd_bp_request(struct dp_worker *w, const struct route_table *t,
                                 const struct rte_mbuf *cm, uint64_t dgram_id,
                                 const struct sp_bp_req *const *reqs, uint32_t n, uint16_t node,
                                 uint16_t worker);

/*
 * fwd_request: runs each forwarded request this worker owns; one this node does not own
 * (the map changed in flight) or does not serve goes back REFUSED with its record
 * (WRONG_PARTITION, or the map's unserved status), so the entry places it again once on
 * its own map; SERVER_BUSY for another local worker's. A reply too large for a forward
 * message (a value over 1400 bytes) is answered TOO_BIG (counted fwd_too_big).
 */
void dp_bp_fwd_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                       struct dp_fwd_in *in, struct sp_fwd_hdr *h, const uint8_t *payload);

/* fwd_answer: a reply datagram, relayed as it is once every reply in it matches a request
 * still waiting in s; or a refusal of some of them, placed again once on this node's map
 * (SERVER_BUSY when that cannot be done now). */
void dp_bp_fwd_answer(struct dp_worker *w, const struct route_table *t, struct dp_fwd_in *in,
                      const struct sp_fwd_hdr *h, struct sp_fwd_slot *s, const uint8_t *payload);

/* fwd_expire: every request of s still waiting is answered UNAVAILABLE, in one datagram. */
void dp_bp_fwd_expire(struct dp_worker *w, struct sp_fwd_slot *s);

#endif
