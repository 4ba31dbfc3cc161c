/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Services on the worker loop (docs/services.md). The worker (worker.c) receives frames,
 * answers ARP and ICMP, and drives the loop; everything a UDP datagram means belongs to a
 * service, reached through one ops table:
 *
 *   classify  which of its message kinds a received datagram is (or none);
 *   serve     a burst of its messages on this worker: run what it owns, hand the rest on
 *             (dp_worker_stage, dp_worker_defer), forward to other nodes (forward.h);
 *   busy      the answer for a message that cannot move on (the owner's ring was full,
 *             or the hop limit below was reached);
 *   poll      once per loop iteration (mailboxes, timeouts, publishing counters);
 *   drain     when the loop ends (forget what is in flight);
 *   print     its lines of the exit report;
 *   fwd_*     its half of forwarding between nodes, for a service whose requests another
 *             node may own (forward.h moves the messages, the service says what they mean).
 *
 * The built-in services are the binary protocol (bpserve.c), the memcached protocol
 * (mcport.c) and the cluster's forwarding between nodes (forward.c). Every mbuf that
 * travels between workers carries the kind of message it holds in its meta
 * (dp_meta.kind), set once where the mbuf is made or classified; the loop dispatches by
 * that kind, never by guessing from ports or offsets.
 *
 * The hop limit. A message is moved between workers (handed to the owner's ring, or held
 * in the defer queue while its partition arrives) at most DP_HANDOFF_HOPS_MAX times; a
 * message that has moved that often and would move again is answered with its service's
 * busy answer instead (binary protocol: SERVER_BUSY for each request that would move;
 * memcached: "SERVER_ERROR busy, try again"), as is a message the owner's ring refused.
 * The client retries; nothing runs on a worker that does not own its partition.
 *
 * Registered operations (dataplane/tasks, docs/tasks.md): binary-protocol opcodes from
 * SP_BP_OP_USER_FIRST are described by the opcode table (wire/binproto.h,
 * sp_bp_op_register) and executed by the hook set with dp_bp_set_user_hook(): the binary
 * service decodes, routes, hands off, defers and forwards them exactly as the built-in
 * operations, and calls the hook on the partition's owner (on the receiving worker for an
 * operation without a key). The hook runs on the owner's lcore with exclusive access to
 * that partition's state; it must not block, lock or allocate.
 *
 * Nothing here allocates, locks or makes a system call per packet.
 */
#ifndef SP_DP_SERVICE_H
#define SP_DP_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_mbuf.h>

#include "dataplane/binexec/binexec.h"
#include "dataplane/route/route.h"
#include "net/net.h"
#include "wire/binproto.h"

struct dp_fwd_in;
struct dp_runtime;
struct dp_worker;
struct sp_fwd_hdr;
struct sp_fwd_slot;

/* What an mbuf holds, kept in its meta (handoff.h, dp_meta.kind). Values are internal. */
enum dp_msg_kind {
	DP_MSG_NONE = 0,  /* nothing classified it: never served (a bug; counted, dropped) */
	DP_MSG_BINARY,    /* a binary-protocol request datagram, or one worker's share of one */
	DP_MSG_FORWARD,   /* a message between nodes (dataplane/forward/fwd.h) */
	DP_MSG_MEMCACHED, /* a memcached UDP datagram */
	DP_MSG_MC_TOUCH,  /* a gat touch for the owner of a key, from another worker */
	DP_MSG_TASK,      /* a registered operation's part request or answer (taskport.h) */
	DP_MSG_BP_SHARE,  /* one worker's share of a binary datagram, its requests decoded */
	DP_MSG_BP_FOLD,   /* a lone write for this worker with the datagram's reply (bpserve.c) */
	DP_MSG_KINDS,
};

/* The built-in services, in the order the worker offers them a datagram to classify. */
enum dp_service_id {
	DP_SVC_BINARY = 0,
	DP_SVC_FORWARD,
	DP_SVC_MEMCACHED,
	DP_SVC_TASKS, /* after BINARY, which leaves reply datagrams (part answers) to it */
	DP_SVC_COUNT,
};

/* What one loop iteration knows; services read it, never keep it past the call. */
struct dp_iter {
	const struct route_table *t; /* the routing table of this iteration */
	uint32_t now_s;              /* the stores' clock (seconds, from 1) */
};

struct dp_service_ops {
	const char *name;
	/*
	 * The kind of the UDP datagram in m (meta->pkt filled, meta->kind not yet) when it is
	 * one of this service's, else DP_MSG_NONE. Reads only the headers pkt describes and
	 * the first bytes of the payload. Can't fail.
	 */
	enum dp_msg_kind (*classify)(const struct dp_runtime *rt, const struct rte_mbuf *m,
	                             const struct net_pkt *pkt);
	/*
	 * Serves n >= 1 mbufs whose kind belongs to this service (from the NIC, the worker's
	 * ring or its defer queue, in arrival order). Consumes every mbuf: replied in, handed
	 * on, deferred, forwarded or freed; what fails is counted, nothing is returned.
	 */
	void (*serve)(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **m,
	              unsigned int n);
	/*
	 * Answers m (one of this service's kinds) without running it: the owner's ring was
	 * full. Consumes m. NULL: the service's messages are dropped (counted) instead.
	 */
	void (*busy)(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf *m);
	/* Once per loop iteration, after the bursts. NULL: nothing to do. Can't fail. */
	void (*poll)(struct dp_worker *w, const struct dp_iter *it);
	/* When the loop ends: forgets what is in flight (counted). NULL: nothing held. */
	void (*drain)(struct dp_worker *w);
	/* Its lines of the exit report. NULL: none. */
	void (*print)(FILE *out, const struct dp_runtime *rt);

	/*
	 * Forwarding between nodes (forward.h, docs/cluster.md): the protocol its messages
	 * carry (enum sp_fwd_proto, in every header), 0 when it forwards nothing (then the
	 * three callbacks are NULL). The node-to-node format is the forwarding's; what a
	 * payload means is the service's.
	 */
	uint8_t fwd_proto;
	/*
	 * Owner side: runs the forwarded REQUEST h (payload_len bytes at payload, from the
	 * sender of in; this worker is the one it was sent to) and puts its reply messages,
	 * or a REFUSED carrying the request back when this node does not own it now, in the
	 * batch going back to in's sender (dp_fwd_put_back). Never forwards it again. What is
	 * malformed is counted and dropped.
	 */
	void (*fwd_request)(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
	                    struct dp_fwd_in *in, struct sp_fwd_hdr *h, const uint8_t *payload);
	/*
	 * Entry side: a REPLY or REFUSED h for slot s (this service's, held by this worker,
	 * from its owner): relays the reply to the client (dp_fwd_relay), or places the
	 * refused request again (dp_fwd_retry_refused) or answers it; releases s when nothing
	 * more is awaited.
	 */
	void (*fwd_answer)(struct dp_worker *w, const struct route_table *t, struct dp_fwd_in *in,
	                   const struct sp_fwd_hdr *h, struct sp_fwd_slot *s,
	                   const uint8_t *payload);
	/* Entry side: slot s's owner did not answer in time (counted): answers the client
	 * what the service answers then, and releases s. Can't fail. */
	void (*fwd_expire)(struct dp_worker *w, struct sp_fwd_slot *s);
};

/* The built-in services (bpserve.c, service.c over forward.c, mcport.c). */
extern const struct dp_service_ops dp_bp_service;
extern const struct dp_service_ops dp_fwd_service;
extern const struct dp_service_ops dp_mc_service;
extern const struct dp_service_ops dp_task_service; /* taskport.c */

/* Kind -> service, and the services by id: read through the functions below. */
extern const struct dp_service_ops *const dp__service_of_kind[DP_MSG_KINDS];
extern const struct dp_service_ops *const dp__services[DP_SVC_COUNT];

/* The service that serves messages of kind k; NULL for DP_MSG_NONE and unknown values. */
static inline const struct dp_service_ops *
dp_service_of_kind(uint8_t k)
{
	return k < DP_MSG_KINDS ? dp__service_of_kind[k] : NULL;
}

/* Service id (< DP_SVC_COUNT), for the loops that offer every service something. */
static inline const struct dp_service_ops *
dp_service_get(enum dp_service_id id)
{
	return dp__services[id];
}

/* Whether service id is on in rt (the memcached protocol only with --memcached-port). */
bool dp_service_enabled(const struct dp_runtime *rt, enum dp_service_id id);

/* The enabled service whose forward messages carry `proto` (enum sp_fwd_proto, as read
 * from a header); NULL when none does. */
const struct dp_service_ops *dp_service_of_fwd_proto(const struct dp_runtime *rt, uint8_t proto);

/*
 * The kind of a received UDP datagram (m's meta->pkt filled): the first enabled service,
 * in enum dp_service_id order, whose classify claims it; DP_MSG_NONE when none does.
 */
enum dp_msg_kind dp_service_classify(const struct dp_runtime *rt, const struct rte_mbuf *m,
                                     const struct net_pkt *pkt);

/* Bytes of the binary service's state for one datagram of a burst (DP_BURST per worker). */
size_t dp_bp_burst_state_bytes(void);

/* ---- Registered binary-protocol operations ------------------------------------------ */

/* What the hook is told about where a request runs. */
struct dp_bp_exec {
	uint16_t worker;    /* the worker (lcore) running it */
	uint32_t now_s;     /* the stores' clock */
	uint64_t epoch;     /* the routing table's epoch */
	uint32_t partition; /* req->partition: owned by this worker now, or SP_BP_PARTITION_ANY */
	/* For a request received from a client (NULL for one another node forwarded): the
	 * loop iteration, the request's frame (meta filled: who to answer) and datagram id,
	 * for an operation that answers later. */
	const struct dp_iter *it;
	const struct rte_mbuf *m;
	uint64_t datagram_id;
};

/* What the hook returns when it has not answered yet and will, itself (x->m != NULL). */
#define DP_BP_USER_LATER 1

/*
 * Runs a registered operation's request (opcode >= SP_BP_OP_USER_FIRST, decoded and well
 * formed: req->err == SP_BP_ERR_OK) and appends exactly one reply to `reply` (a reply
 * builder: sp_bp_add_reply, echoing req->request_id and req->opcode). Returns 0, or
 * -SP_EFULL when its reply does not fit what is left of the builder: then it must have
 * changed nothing, and it is called again with an empty reply datagram; or
 * DP_BP_USER_LATER, having appended nothing, when it answers the client itself later (an
 * operation gathered from several owners, taskport.h; only when x->m is set). Any other
 * return is answered INTERNAL by the caller. Runs on the owner of req->partition with
 * exclusive access to that partition's state; never blocks, locks or allocates.
 */
typedef int (*dp_bp_user_fn)(void *ctx, const struct dp_bp_exec *x, const struct sp_bp_req *req,
                             struct sp_bp_builder *reply);

/*
 * Sets the hook that runs registered operations (one per runtime; fn NULL clears it).
 * Call before the workers start. Without a hook, registered opcodes are answered
 * BAD_REQUEST (counted as bad opcodes).
 */
void dp_bp_set_user_hook(struct dp_runtime *rt, dp_bp_user_fn fn, void *ctx);

/*
 * Runs one decoded, well-formed binary-protocol request on the worker that owns its
 * partition (or any worker, for one without a key), built-in (binexec.h) or registered
 * (the hook), and appends its reply. route answers ROUTE (NULL: INTERNAL). Returns 0 or
 * -SP_EFULL (nothing changed, nothing written: call again with an empty datagram). The
 * one execution entry for the local path and for requests other nodes forward.
 */
int dp_bp_run(struct dp_worker *w, const struct sp_bp_req *req, uint32_t now_s, uint64_t epoch,
              const struct sp_binexec_route *route, struct sp_bp_builder *reply);

#endif
