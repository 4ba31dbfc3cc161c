/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memcached UDP protocol on the worker loop (--memcached-port): placement of each
 * datagram (mcexec_route), execution with mcexec_udp on the chosen worker, reply frames,
 * flush_all on every partition, gat touches for keys owned elsewhere, and "stats" over all
 * workers. docs/memcache.md ("Placement on the dataplane") describes the rules.
 *
 * It is a service of the worker loop (service.h, dp_mc_service): datagrams to the
 * memcached port get kind DP_MSG_MEMCACHED, touches between workers DP_MSG_MC_TOUCH; its
 * serve calls dp_mc_serve() for each (from the NIC, the ring or the defer queue) and
 * queues what the result says (reply frames, hand-offs); its busy calls dp_mc_busy(); its
 * poll dp_mc_poll(). Nothing here allocates after dp_mc_create, locks, or makes a system
 * call per packet.
 */
#ifndef SP_DP_MCPORT_H
#define SP_DP_MCPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_mbuf.h>

#include "dataplane/memcache/mcexec.h"
#include "dataplane/route/route.h"
#include "forward.h"
#include "handoff.h"
#include "runtime.h"
#include "service.h"

struct dp_worker;

/*
 * Reply datagrams one request may produce (memcached sends one response per key of a get,
 * each in its own datagrams): a get of up to 128 keys, or of ~176 KB of values.
 */
#define DP_MC_REPLY_DGRAMS_MAX 128u
/* gat/gats touches one datagram may forward to other workers (one message each). */
#define DP_MC_TOUCH_FORWARD_MAX 32u
/* Hand-offs one dp_mc_serve call may ask for: the datagram itself, or its touches. */
#define DP_MC_HANDOFFS_MAX DP_MC_TOUCH_FORWARD_MAX
/* How often a worker publishes its stores' item, byte and eviction totals for "stats". */
#define DP_MC_PUBLISH_INTERVAL_MS 100u

/* What the runtime counts per worker besides mcexec's own counters. */
struct dp_mc_stats {
	uint64_t datagrams_in;  /* datagrams placed here (one handed on counts twice) */
	uint64_t run_owner;     /* executed here as the key's owner */
	uint64_t run_multi;     /* multi-key gets executed here */
	uint64_t run_any;       /* keyless or bad datagrams executed here */
	uint64_t busy;          /* answered "busy, try again": the owner's ring was full, or
	                         * the hop limit or the defer queue was reached (service.h) */
	uint64_t handoff_out;   /* datagrams handed to their owner's ring */
	uint64_t deferred;      /* datagrams held while their partition arrives */
	uint64_t wrong_node;    /* keys owned by another node: answered SERVER_ERROR */
	uint64_t unserved;      /* keys nobody serves here (no map, no lease): SERVER_ERROR */
	uint64_t forwarded;     /* single-key datagrams forwarded to their owner node */
	uint64_t forward_busy;  /* not forwarded: the in-flight table was full */
	uint64_t gathered;      /* multi-key gets scattered to other nodes and gathered */
	uint64_t reply_dgrams;  /* reply datagrams queued for TX */
	uint64_t nombuf;        /* replies or messages lost: the mbuf pool was dry */
	uint64_t touch_out;     /* gat touch messages sent to other workers */
	uint64_t touch_in;      /* touches applied for other workers */
	uint64_t touch_dropped; /* touches lost: over the bound, no mbuf, ring full */
	uint64_t flush_remote;  /* flush_all requests posted to the other workers */
	uint64_t flush_applied; /* flush_all requests from others applied here */
	uint64_t bad_message;   /* internal messages that failed their checks */
};

/* What dp_mc_serve asks the worker to do. */
struct dp_mc_result {
	uint32_t tx_count;
	struct rte_mbuf *tx[DP_MC_REPLY_DGRAMS_MAX]; /* queue for TX, in order */
	uint32_t handoff_count;
	struct rte_mbuf *handoff[DP_MC_HANDOFFS_MAX]; /* stage for worker handoff_to[i] */
	uint16_t handoff_to[DP_MC_HANDOFFS_MAX];
};

struct dp_mc;

/*
 * Builds the memcached state of every worker of rt (rt->workers, stores, route, pool and
 * tsc_base must be set): per-worker output arrays and copy buffers on the worker's socket.
 * Returns NULL (logged) when memory is short.
 */
struct dp_mc *dp_mc_create(struct dp_runtime *rt);

/* Frees what dp_mc_create built (after the workers stopped). NULL is allowed. */
void dp_mc_destroy(struct dp_mc *mc);

/* Whether a UDP destination port is the memcached port. */
static inline bool
dp_mc_is_port(const struct dp_runtime *rt, uint16_t dst_port)
{
	return rt->mc != NULL && dst_port == rt->cfg.memcached_port;
}

/*
 * Serves mbuf m (kind DP_MSG_MEMCACHED: a datagram; DP_MSG_MC_TOUCH: a touch from another
 * worker) on worker w with the routing table t and the stores' clock now_s: places it
 * (here, handed to its owner, deferred, forwarded to the owner node), runs it and fills res
 * with the reply frames and hand-offs. A datagram that has moved DP_HANDOFF_HOPS_MAX times
 * and would move again is answered "SERVER_ERROR busy, try again" (the hop limit,
 * service.h). Consumes m (reused as a reply, handed on, deferred or freed). Never fails:
 * what cannot be done is counted.
 */
void dp_mc_serve(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                 struct rte_mbuf *m, struct dp_mc_result *res);

/*
 * The busy answer for m, whose owner's ring was full: a datagram is answered "SERVER_ERROR
 * busy, try again" (res gets its frame), a touch is dropped (counted). Consumes m.
 */
void dp_mc_busy(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                struct rte_mbuf *m, struct dp_mc_result *res);

/*
 * Once per loop iteration: applies a flush_all another worker posted, and publishes the
 * stores' totals every DP_MC_PUBLISH_INTERVAL_MS. Can't fail.
 */
void dp_mc_poll(struct dp_worker *w, const struct route_table *t, uint32_t now_s);

/* Sums the runtime counters and mcexec's counters of every worker (relaxed reads). */
void dp_mc_totals(const struct dp_mc *mc, struct dp_mc_stats *rt_out,
                  struct mcexec_counters *mc_out);

/*
 * Runs a memcached datagram another node forwarded (udp: frame header + commands) on
 * worker w, as if it had arrived here; never hands anything to another worker. Returns
 * the number of reply datagrams, each read with dp_mc_out_dgram() until the next call.
 * Returns 0 when the memcached protocol is off here.
 */
uint32_t dp_mc_run_forwarded(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                             const uint8_t *udp, size_t len);

/* Worker w's memcached reply writer, emptied and started for request_id (its datagrams
 * are read with dp_mc_out_dgram until the next use). */
struct sp_mc_out *dp_mc_writer(struct dp_worker *w, uint16_t request_id);

/* Reply datagram i (< what dp_mc_run_forwarded returned) and its length. */
const uint8_t *dp_mc_out_dgram(struct dp_worker *w, uint32_t i, uint16_t *len);

/* Prints the memcached lines of the exit report. Can't fail. */
void dp_mc_print(FILE *out, const struct dp_mc *mc);

/* ---- Forwarding between nodes, the memcached half (mcforward.c, forward.h) ---------- */

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

/*
 * Forwards the memcached datagram in m (meta filled) to the worker of node `node` (an
 * index in t) that owns `partition`, in this burst's batch for it. DP_FWD_SENT consumes
 * m; otherwise m is untouched (DP_FWD_FULL also when no mbuf was free).
 */
enum dp_fwd_rc dp_fwd_mc_request(struct dp_worker *w, const struct route_table *t,
                                 struct rte_mbuf *m, uint16_t node, uint32_t partition);

/* The memcached service's fwd_* callbacks (service.h): fwd_request runs a forwarded
 * datagram as the owner and sends each reply datagram back numbered, or refuses it with
 * the request in it when the key is not this node's now; fwd_answer relays the owner's
 * datagrams (or a gather part's) and places a refused request again once; fwd_expire
 * answers "SERVER_ERROR owner unavailable" unless part of the reply was relayed. */
void dp_mc_fwd_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                       struct dp_fwd_in *in, struct sp_fwd_hdr *h, const uint8_t *payload);
void dp_mc_fwd_answer(struct dp_worker *w, const struct route_table *t, struct dp_fwd_in *in,
                      const struct sp_fwd_hdr *h, struct sp_fwd_slot *s, const uint8_t *payload);
void dp_mc_fwd_expire(struct dp_worker *w, struct sp_fwd_slot *s);
/* The service's drain: forgets the gets being gathered (their slots are the forwarding's). */
void dp_mc_fwd_drain(struct dp_worker *w);

#endif
