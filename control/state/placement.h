/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Placement: the partition map the leader commits when members change. Balanced means
 * every worker slot (node, worker) of an active member holds floor(P/S) or ceil(P/S) of
 * the P partitions, S being the number of slots. Of all balanced maps it picks one that
 * moves as few partitions as possible: a partition stays where it is whenever its slot
 * still exists and is within its quota, and the larger (ceil) quotas go to the slots that
 * already hold the most. Pure and deterministic: every node computes the same map.
 */
#ifndef SP_CONTROL_PLACEMENT_H
#define SP_CONTROL_PLACEMENT_H

#include <stdint.h>

#include "cluster/partmap.h"

struct placement_node {
	uint32_t node_id;
	uint16_t workers; /* 1..SP_WORKERS_MAX */
};

/*
 * Rewrites map[0, partitions) in place into a balanced map over nodes[0, n). Entries that
 * name nodes not in the list, or workers a node no longer has, are moved. Returns the
 * number of partitions moved (>= 0), or -EINVAL (no nodes, a node with no workers, more
 * than SP_MEMBERS_MAX nodes, partitions not a power of two <= SP_PARTITIONS_MAX).
 */
int placement_rebalance(struct sp_map_entry *map, uint32_t partitions,
                        const struct placement_node *nodes, uint32_t n);

/* The most and fewest partitions any slot holds, for tests and status. */
void placement_spread(const struct sp_map_entry *map, uint32_t partitions,
                      const struct placement_node *nodes, uint32_t n, uint32_t *min, uint32_t *max);

#endif
