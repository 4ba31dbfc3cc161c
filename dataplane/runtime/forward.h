/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forwarding between dataplanes (docs/cluster.md, "Forwarding"): a request whose key another
 * node owns is sent to the owning worker of that node (dataplane/forward/fwd.h
 * messages), batched with the other messages this worker sends that port in the same poll
 * burst (one datagram, sent at the end of the burst by dp_fwd_poll); the owner runs it and
 * sends its reply datagrams back, batched the same way; this worker relays each to the
 * client from its own address and port. One hop: the owner never forwards again, it
 * refuses, and the entry places the request once more on its own map. A fixed table of
 * requests in flight per worker (SP_FWD_SLOTS) with a timeout (--forward-timeout-ms): full
 * is answered at once, a timeout by the request's service. Messages are accepted only from
 * the dataplane address and MAC of a current member and sent only to members; everything
 * else is dropped and counted by reason. No allocation beyond the mbuf pool, no lock, no
 * system call.
 *
 * This file knows no protocol: what a message's payload means is the service's whose
 * fwd_proto the message names (service.h, the fwd_* callbacks; bpforward.c for the binary
 * protocol, mcforward.c for memcached), which use the helpers at the end of this header.
 */
#ifndef SP_DP_FORWARD_H
#define SP_DP_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "dataplane/forward/fwd.h"
#include "dataplane/route/route.h"
#include "service.h"

struct dp_meta;
struct dp_worker;

/* Slots answered per loop iteration when they time out (the rest wait one iteration). */
#define DP_FWD_EXPIRE_PER_POLL 32u

/* What a protocol's request sender (dp_fwd_bp_request, dp_fwd_mc_request) did. */
enum dp_fwd_rc {
	DP_FWD_SENT = 0, /* forwarded; the mbuf is gone */
	DP_FWD_FULL,     /* the in-flight table is full (counted): answer busy */
	DP_FWD_NO_PEER,  /* the owner has no usable address or MAC (counted) */
	DP_FWD_TOO_BIG,  /* the request does not fit one message (counted) */
};

/* Whether m (a UDP datagram to a binary port, meta filled) is a forward message. */
bool dp_fwd_is_message(const struct rte_mbuf *m);

/*
 * Serves a forward datagram that arrived on worker w, each of its messages in turn, by the
 * service whose fwd_proto it names: a REQUEST (fwd_request: run as the owner, replies
 * batched back, or refused), a REPLY or REFUSED (fwd_answer, once it matches a slot of
 * this worker held by the same owner). Consumes m. Never fails: what is wrong is counted
 * (a malformed message drops the rest of its datagram; a proto no enabled service claims,
 * fwd_rej_kind).
 */
void dp_fwd_input(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                  struct rte_mbuf *m);

/* Sends every forward datagram being filled (the end of a poll burst). Never fails: no
 * allocation, what the TX backlog cannot take is counted there. */
void dp_fwd_flush(struct dp_worker *w);

/* Once per loop iteration, after the bursts: dp_fwd_flush(), then answers the requests
 * whose owner did not reply in time. */
void dp_fwd_poll(struct dp_worker *w);

/* At exit: forgets every request in flight (counted as timeouts) and drops the batches
 * being filled; nothing is held afterwards. */
void dp_fwd_drain(struct dp_worker *w);

/* ---- For the protocol services' fwd_* callbacks (service.h) -------------------------- */

/*
 * A forward datagram being read: who sent it, and its mbuf until the answer to one of its
 * messages takes it over (only the last message's answer may: earlier payloads live in it).
 */
struct dp_fwd_in {
	struct rte_mbuf *m; /* NULL once taken */
	bool last;          /* the message being served is the datagram's last */
	uint8_t src_mac[6];
	uint32_t src_ip_be;
	uint16_t src_port; /* host order, as the rest */
	uint16_t dst_port;
};

/* Whether node n can be sent messages for its worker `worker` (an address, a MAC and a
 * binary port in the map, and that worker exists). */
bool dp_fwd_peer_usable(const struct route_node *n, uint16_t worker);

/* A free slot, its deadline --forward-timeout-ms from now, its index in *idx; NULL when
 * the table is full (counted fwd_table_full). */
struct sp_fwd_slot *dp_fwd_slot_take(struct dp_worker *w, uint32_t *idx);
void dp_fwd_slot_release(struct dp_worker *w, struct sp_fwd_slot *s);

/* Records in s whom to answer: the client of the request frame `frame` (meta its meta),
 * its address, port and MAC, and the local port it was sent to. */
void dp_fwd_slot_client(struct sp_fwd_slot *s, const struct dp_meta *meta, const uint8_t *frame);

/*
 * The batch to peer_mac/peer_ip:peer_port from our_port with room for one more message of
 * payload_len bytes (<= SP_FWD_PAYLOAD_MAX); NULL when no mbuf was free (counted). The
 * caller writes the payload at dp_fwd_batch_room() and ends it with dp_fwd_batch_commit().
 */
struct sp_fwd_batch *dp_fwd_batch_for(struct dp_worker *w, const uint8_t *peer_mac,
                                      uint32_t peer_ip_be, uint16_t peer_port, uint16_t our_port,
                                      uint32_t payload_len);
uint8_t *dp_fwd_batch_room(const struct sp_fwd_batch *b);
/* Ends the message (header h, its payload_len bytes written at the room) in b. */
void dp_fwd_batch_commit(struct sp_fwd_batch *b, const struct sp_fwd_hdr *h);
/* Appends message h, its payload copied from payload, to the batch for that peer port.
 * false when no mbuf was free (counted). */
bool dp_fwd_batch_put(struct dp_worker *w, const uint8_t *peer_mac, uint32_t peer_ip_be,
                      uint16_t peer_port, uint16_t our_port, const struct sp_fwd_hdr *h,
                      const void *payload);

/* The same, to the sender of `in` (the batch going back to it). */
bool dp_fwd_put_back(struct dp_worker *w, const struct dp_fwd_in *in, const struct sp_fwd_hdr *h,
                     const void *payload);
struct sp_fwd_batch *dp_fwd_back_batch(struct dp_worker *w, const struct dp_fwd_in *in,
                                       uint32_t payload_len);

/*
 * Writes Ethernet/IPv4/UDP headers in front of the payload_len bytes already at
 * frame + NET_UDP_REPLY_HDRS: from this node (our_port) to peer_mac/peer_ip:peer_port, and
 * sets m's lengths and offload flags. Can't fail.
 */
void dp_fwd_frame_to(struct dp_worker *w, struct rte_mbuf *m, const uint8_t *peer_mac,
                     uint32_t peer_ip_be, uint16_t peer_port, uint16_t our_port,
                     uint16_t payload_len);

/* An mbuf for an answer to the message being served: the datagram's own when it is the
 * last message, else a fresh one. NULL when none was free (counted). */
struct rte_mbuf *dp_fwd_out_mbuf(struct dp_worker *w, struct dp_fwd_in *in);

/* Sends payload (an owner's reply datagram, as it is) to slot s's client from this node's
 * address and port (counted fwd_relayed); dropped, counted, when no mbuf was free. */
void dp_fwd_relay(struct dp_worker *w, struct dp_fwd_in *in, const struct sp_fwd_slot *s,
                  const uint8_t *payload, uint16_t payload_len);

/*
 * Entry side, the owner refused (its map says someone else, or nobody here, serves it):
 * rebuilds the client's datagram (payload: the refused request, as its service encodes
 * it) in an mbuf of that kind, as if it had just arrived, and puts it on this worker's own
 * ring, so it is placed again on this worker's map, which may be newer: run here if this
 * node now owns it; marked refused, it is never forwarded a second time, so otherwise the
 * client gets the error this node gives. Returns false (nothing sent) when no mbuf was
 * free or the ring is full (counted fwd_retried when sent).
 */
bool dp_fwd_retry_refused(struct dp_worker *w, struct dp_fwd_in *in, const struct sp_fwd_hdr *h,
                          const struct sp_fwd_slot *s, const uint8_t *payload,
                          enum dp_msg_kind kind);

#endif
