/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane's side of user-defined operations (dataplane/tasks, docs/tasks.md): their
 * states in hugepage memory, the binary service's hook that runs them on the owner, and the
 * "tasks" service that scatters operations spanning partitions to their owners and gathers
 * the answers.
 *
 * Scatter/gather, on the worker g that receives a request without a key (scope CLUSTER or
 * NODE in its flags; SPAN_KEYS operations the same way, each part carrying only its
 * owner's keys and answers counting keys instead of partitions): g takes a slot of its gather table (gather.h), runs the operation on
 * the partitions it owns, sends a part request to every other local worker that owns
 * partitions (a DP_MSG_TASK message over the hand-off ring) and, for CLUSTER, a NODE-scope
 * request to every other node that owns partitions (a binary-protocol datagram from g's
 * port to that node's; the node gathers its own workers the same way and answers once).
 * Owners run the operation on each partition they own and answer once: a DP_MSG_TASK
 * message back over g's ring, or, between nodes, a binary-protocol reply datagram to g's
 * port (classified by this service, handed to g when another worker received it). g folds
 * each answer in with the operation's merge and answers the client once: when every part
 * answered, or at the deadline (--forward-timeout-ms for CLUSTER, half of it for NODE, so
 * that a node answers a gathering node before that one gives up) with PARTIAL and the
 * count of partitions answered.
 *
 * Nothing here allocates beyond the mbuf pool, locks or makes a system call per packet.
 */
#ifndef SP_DP_TASKPORT_H
#define SP_DP_TASKPORT_H

#include <stdint.h>
#include <stdio.h>

#include "dataplane/tasks/gather.h"
#include "dataplane/tasks/task.h"
#include "service.h"

struct dp_runtime;

/* Counters of one worker (all monotonic). */
struct dp_task_counters {
	uint64_t gathers;       /* spanning requests gathered here */
	uint64_t gathers_busy;  /* refused SERVER_BUSY: every gather slot taken */
	uint64_t parts_sent;    /* part requests sent (rings and other nodes) */
	uint64_t parts_lost;    /* part requests that could not be sent (no mbuf, no peer) */
	uint64_t parts_run;     /* part requests run here for another worker */
	uint64_t answers_in;    /* part answers merged */
	uint64_t answers_stale; /* part answers that matched no pending part */
	uint64_t answers_bad;   /* malformed or from a non-member */
	uint64_t timeouts;      /* gathers answered at their deadline */
	uint64_t partial;       /* gathers answered PARTIAL */
	uint64_t answers_lost;  /* answers to clients that had no mbuf */
};

struct dp_tasks {
	struct sp_task_registry *reg;
	struct sp_task_stats (*stats)[SP_TASK_OPS_MAX]; /* [workers] */
	struct sp_task_gathers *gathers;                /* [workers] */
	struct dp_task_counters *counters;              /* [workers] */
	uint8_t (*part_buf)[SP_TASK_RESULT_MAX];        /* [workers]: a part's result */
	uint32_t workers;
};

/*
 * The registry a program adds its operations to before dp_node_setup (which registers
 * RATELIMIT, AGGREGATE and AGGREGATE_KEYS too, then allocates every state). One per process.
 */
struct sp_task_registry *dp_task_registry(void);

/*
 * Registers the shipped operations (RATELIMIT with --ratelimit-buckets), allocates every
 * operation's per-partition state on the socket of the partition's first owner, and sets
 * the binary service's hook. Returns 0 or a negative errno (logged).
 */
int dp_tasks_setup(struct dp_runtime *rt);

/* Frees the states and the tables (after the workers stopped). Safe on a partial setup. */
void dp_tasks_teardown(struct dp_runtime *rt);

/* The tasks service (service.h): its messages (DP_MSG_TASK) and remote part answers. */
extern const struct dp_service_ops dp_task_service;

#endif
