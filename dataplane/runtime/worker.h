/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker lcore: one RX/TX queue pair, the partitions the routing table gives it, and
 * an inbound hand-off ring. One loop iteration: take deferred messages that may now run,
 * rx burst, classify (ARP and ICMP answered here, UDP datagrams given a kind by the
 * services, service.h), serve each run of one kind through its service, drain its own
 * ring the same way, send what is staged for other workers (a ring that refuses gets the
 * service's busy answer), let every service poll, tx burst (retrying what did not fit),
 * report a quiescent state, back off when idle. No malloc, no locks, no system call per
 * packet (sleeping happens only when idle).
 */
#ifndef SP_DP_WORKER_H
#define SP_DP_WORKER_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "bounds.h"
#include "dataplane/binexec/binexec.h"
#include "dataplane/forward/fwd.h"
#include "dataplane/route/route.h"
#include "idle.h"
#include "runtime.h"
#include "service.h"

struct dgram_ctx;
struct dp_fwd_gather;

struct dp_worker {
	struct dp_runtime *rt;
	struct dp_worker_stats *stats;
	uint16_t index;
	uint16_t queue;
	uint16_t port_id;
	uint16_t ip_id;
	struct dp_idle idle;
	uint64_t next_publish_tsc;
	/* Replies waiting for the TX queue, oldest first. */
	uint32_t tx_count;
	struct rte_mbuf *tx[DP_TX_PENDING_MAX];
	/* Hand-offs staged per destination worker, sent once per burst. */
	uint16_t out_count[DP_WORKERS_MAX];
	struct rte_mbuf *out[DP_WORKERS_MAX][DP_BURST];
	struct route_defer defer;
	/* The binary-protocol service's state (bpserve.c), also used by forward.c. */
	/* Executor counters (requests by opcode, replies by status). */
	struct sp_binexec_stats bx;
	/* Partition -> sp_bp_route_entry(node, worker) and the nodes of the table
	 * route_owner_table, for ROUTE replies; route_ok is false when that table cannot
	 * describe the map (no map yet: ROUTE is then answered its unserved_status). */
	uint16_t *route_owner;
	const struct route_table *route_owner_table;
	uint64_t route_owner_publication; /* route_owner_table's publication number */
	bool route_ok;
	struct sp_bp_route_node route_nodes[SP_MEMBERS_MAX];
	struct sp_binexec_route route; /* what ROUTE answers, from the two above */
	/* DP_BURST datagrams being served in passes (bpserve.c's struct dgram_ctx). */
	struct dgram_ctx *ctx;
	/* An mbuf held for a reply datagram that cannot go in its request's mbuf. */
	struct rte_mbuf *spare;
	/* Requests this worker forwarded to other nodes, in flight (forward.h), and the
	 * multi-key gets it is gathering. */
	struct sp_fwd_table fwd;
	struct dp_fwd_gather *gathers; /* DP_FWD_GATHERS, allocated with the worker */
	struct sp_fwd_batch fwd_batch[SP_FWD_BATCH_PEERS]; /* forward datagrams being filled */
	/* Where reply payloads are built before they go into an mbuf. */
	uint8_t scratch[SP_BP_PAYLOAD_MAX] __rte_cache_aligned;
};

/* Queues a frame on w's TX backlog (at the bound: flushes, then drops and counts). */
void dp_worker_tx(struct dp_worker *w, struct rte_mbuf *m);

/* Stages mbuf m (meta filled) for worker `to`'s inbound ring; when this burst's staging
 * for `to` is full, m is dropped and counted. */
void dp_worker_handoff(struct dp_worker *w, uint16_t to, struct rte_mbuf *m);

/*
 * Stages mbuf m (meta filled: kind, reqs, hops already counting this move) for worker
 * `to`'s ring, sent once per iteration; when the staging for `to` is full it is sent first.
 * What the ring refuses gets the busy answer of m's service. Consumes m. Can't fail.
 */
void dp_worker_stage(struct dp_worker *w, const struct dp_iter *it, uint16_t to,
                     struct rte_mbuf *m);

/*
 * Holds mbuf m (meta filled, hops counting this move) until partition `partition` has
 * arrived at this worker; when the defer queue is full, puts it on the worker's own ring;
 * when that is full too, drops it (counted). Consumes m.
 */
void dp_worker_defer(struct dp_worker *w, struct rte_mbuf *m, uint32_t partition);

/*
 * Allocates and prepares worker `index` on the socket of its lcore. Returns NULL (logged)
 * when memory is short.
 */
struct dp_worker *dp_worker_create(struct dp_runtime *rt, uint16_t index);

/* Frees a worker made by dp_worker_create (after its loop returned). NULL is allowed. */
void dp_worker_free(struct dp_worker *w);

/*
 * The lcore entry point (rte_eal_remote_launch): runs the loop until rt->stop, then sends
 * what it can of its TX backlog (bounded), frees what is left and what it deferred, and
 * returns 0. Returns a negative errno only when it could not register with the routing
 * table (then it never polled).
 */
int dp_worker_main(void *arg);

/* The port the worker polls, after the main lcore attached it again (workers paused). */
void dp_worker_set_port(struct dp_worker *w, uint16_t port_id);

#endif
