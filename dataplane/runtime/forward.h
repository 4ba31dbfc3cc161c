/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forwarding between dataplanes (docs/cluster.md, "Forwarding"): a memcached request whose
 * key another node owns is sent to the owning worker of that node (dataplane/forward/fwd.h
 * messages), batched with the other messages this worker sends that port in the same poll
 * burst (one datagram, sent at the end of the burst by dp_fwd_poll); the owner runs it and
 * sends its reply datagrams back, batched the same way; this worker relays each to the
 * client from its own address and port. One hop: the owner never forwards again, it
 * refuses, and the entry places the request once more on its own map. A fixed table of requests in flight per worker
 * (SP_FWD_SLOTS) with a timeout (--forward-timeout-ms): full is answered at once, a timeout
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

/* Slots answered per loop iteration when they time out (the rest wait one iteration). */
#define DP_FWD_EXPIRE_PER_POLL 32u

/* A memcached multi-key get whose keys live on several nodes is scattered (one request per
 * node, this node's part run here) and gathered back in key order. Bounds: */
#define DP_FWD_GATHERS      4u           /* gets being gathered per worker */
#define DP_FWD_GATHER_KEYS  64u          /* keys of one gathered get */
#define DP_FWD_GATHER_PARTS 8u           /* nodes one gathered get may span */
#define DP_FWD_PART_DGRAMS  32u          /* reply datagrams of one part */
#define DP_FWD_GATHER_BYTES (64u * 1024) /* reply bytes of all parts of one get */

struct dp_fwd_part {
	uint16_t node;   /* index in the routing table */
	uint16_t expect; /* datagrams of its reply (0: none arrived yet) */
	uint16_t got;
	uint8_t done;
	uint8_t slot_live; /* a forward slot waits for it */
	uint32_t slot, tag;
	uint32_t chunk_off[DP_FWD_PART_DGRAMS]; /* by seq: where its data sits in raw */
	uint16_t chunk_len[DP_FWD_PART_DGRAMS];
};

/* One multi-key get being gathered. */
struct dp_fwd_gather {
	uint8_t live;
	uint8_t kind; /* enum sp_mc_kind: get, gets, gat, gats */
	uint8_t nparts;
	uint8_t parts_done;
	const char *fail_line; /* NULL, or the SERVER_ERROR line the whole get answers */
	uint32_t client_ip_be;
	uint16_t client_port, local_port;
	uint8_t client_mac[6];
	uint16_t request_id;
	int32_t exptime;
	uint16_t nkeys;
	uint16_t key_off[DP_FWD_GATHER_KEYS]; /* into keytext */
	uint8_t key_len[DP_FWD_GATHER_KEYS];
	uint8_t key_part[DP_FWD_GATHER_KEYS];
	uint32_t val_off[DP_FWD_GATHER_KEYS]; /* the key's VALUE block in raw, or UINT32_MAX */
	uint32_t val_len[DP_FWD_GATHER_KEYS];
	struct dp_fwd_part parts[DP_FWD_GATHER_PARTS];
	uint32_t raw_used;
	char keytext[SP_BP_PAYLOAD_MAX];
	uint8_t raw[DP_FWD_GATHER_BYTES];
};

/*
 * A memcached datagram in m (meta filled) that is one get/gets/gat/gats naming keys of
 * other nodes: scatters it (consumes m) and returns true; the answer goes to the client
 * when every part is in, in the request's key order, or one SERVER_ERROR line when a part
 * failed or timed out. Returns false, m untouched, for anything else (several commands,
 * no other node's key, a partition nobody serves, over the bounds): run it as before.
 */
bool dp_fwd_mc_gather(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                      struct rte_mbuf *m);

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
 * Serves a forward datagram that arrived on worker w, each of its messages in turn: a
 * REQUEST (runs it as the owner and batches the replies back, or refuses), a REPLY
 * (relays it to the client) or a REFUSED (places the request again once on this node's
 * map, or answers the client with the error). Consumes m. Never fails: what is wrong is
 * counted (a malformed message drops the rest of its datagram).
 */
void dp_fwd_input(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                  struct rte_mbuf *m);

/*
 * Forwards the memcached datagram in m (meta filled) to the worker of node `node` (an
 * index in t) that owns `partition`, in this burst's batch for it. DP_FWD_SENT consumes
 * m; otherwise m is untouched (DP_FWD_FULL also when no mbuf was free).
 */
enum dp_fwd_rc dp_fwd_mc_request(struct dp_worker *w, const struct route_table *t,
                                 struct rte_mbuf *m, uint16_t node, uint32_t partition);

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

/* Sends every forward datagram being filled (the end of a poll burst). Never fails: no
 * allocation, what the TX backlog cannot take is counted there. */
void dp_fwd_flush(struct dp_worker *w);

/* Once per loop iteration, after the bursts: dp_fwd_flush(), then answers the requests
 * whose owner did not reply in time. */
void dp_fwd_poll(struct dp_worker *w);

/* At exit: forgets every request in flight (counted as timeouts) and drops the batches
 * being filled; nothing is held afterwards. */
void dp_fwd_drain(struct dp_worker *w);

#endif
