/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A node's life cycle once EAL runs: shared by shardplane-dp and the net_ring benchmark.
 */
#ifndef SP_DP_NODE_H
#define SP_DP_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "checks.h"
#include "runtime.h"

/* Exit status when an mbuf did not come back to the pool. */
#define DP_EXIT_LEAK 3

/*
 * Builds the node from rt->cfg (parsed) and rt->stats (zeroed, DP_WORKERS_MAX blocks):
 * checks lcores, partitions and memory against huge (free hugepages read before EAL
 * started), opens the port, allocates the stores, the routing table, the hand-off rings
 * and the workers, opens the shared region when configured, and registers telemetry.
 * Returns 0 or a negative errno, logged with the value and the fix; what was built is
 * released by dp_node_teardown.
 */
int dp_node_setup(struct dp_runtime *rt, const struct dp_hugepages *huge);

/* Starts worker i on the i-th worker lcore. Returns 0 or rte_eal_remote_launch's error. */
int dp_node_launch(struct dp_runtime *rt);

/*
 * Stops the workers (when launched), the port and the rings, frees everything, checks that
 * every mbuf came back, and prints the final counters (when launched). Returns 0, or
 * DP_EXIT_LEAK. Does not call rte_eal_cleanup.
 */
int dp_node_teardown(struct dp_runtime *rt, bool launched);

/* Writes the heartbeat and counters to the shared region (rt->region must be open). */
void dp_node_heartbeat(struct dp_runtime *rt, uint32_t state);

/*
 * Main lcore, from housekeeping (it checks at most once a second): when the port's
 * af_packet interface was replaced (deleted and created again under its name), pauses
 * the workers' use of the port, waits until none is inside a burst, attaches the device
 * again (dp_port_reattach) and resumes them. Returns 1 when it reattached, 0 when nothing
 * was to do, a negative errno when the reattach failed (logged; the workers stay paused
 * and it is tried again at the next check).
 */
int dp_node_watch_port(struct dp_runtime *rt, uint64_t now_ms);

#endif
