/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The node's shared run-time context: built by main() before the workers start, read-only
 * for the workers afterwards (except `stop`, which main sets to end the loops). Worker i
 * owns stats[i] and, through the routing table, the stores of its partitions.
 */
#ifndef SP_DP_RUNTIME_H
#define SP_DP_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/region.h"
#include "config.h"
#include "dataplane/route/route.h"
#include "handoff.h"
#include "net/net.h"
#include "port.h"
#include "stats.h"

struct store_layout;

struct store;
struct dp_worker;
struct dp_mc;
struct dp_tasks;
struct dp_bp_exec;
struct sp_bp_req;
struct sp_bp_builder;

struct dp_runtime {
	struct dp_config cfg;
	uint32_t workers;
	uint32_t partitions;
	struct dp_port port;
	struct net_config net;
	struct route_ctx *route;
	struct dp_handoff handoff;
	struct store **stores; /* [partitions], indexed by partition */
	void **store_mem;      /* [partitions], the rte_malloc'd memory of each */
	/* [partitions]: where each store's index and log are, for the workers' prefetching */
	struct store_layout *layouts;
	size_t partition_bytes;
	struct dp_worker *w[DP_WORKERS_MAX];
	unsigned int lcore_of[DP_WORKERS_MAX];
	struct dp_worker_stats *stats; /* [workers] */
	uint64_t tsc_hz;
	uint64_t tsc_base;        /* the stores' clock: seconds since start-up, from the TSC */
	struct sp_region *region; /* --state-region, or NULL */
	_Atomic uint64_t epoch;   /* epoch of the routing table in use, for telemetry */
	struct dp_mc *mc; /* the memcached protocol (mcport.h), NULL without --memcached-port */
	struct dp_tasks *tasks; /* registered operations (taskport.h) */
	/* Registered binary-protocol operations' hook (service.h, dp_bp_set_user_hook). */
	int (*bp_user_fn)(void *ctx, const struct dp_bp_exec *x, const struct sp_bp_req *req,
	                  struct sp_bp_builder *reply);
	void *bp_user_ctx;
	struct route_watch watch;
	bool watch_ready;
	uint32_t serving; /* enum sp_dp_serving of the table in use (main lcore only) */
	atomic_bool stop;
	atomic_bool port_paused; /* workers leave the port alone (dp_node_watch_port) */
	uint64_t next_port_check_ms;
};

#endif
