/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * AGGREGATE: the count, 128-bit sum and top-K of the counters whose keys start with a
 * prefix, over every partition of the node or the cluster; a SPAN_ALL operation on the task
 * API (task.h), encoding in wire/taskproto.h, guide in docs/tasks.md.
 *
 * A counter is a value the store reads as a number the way INCR does (memcached's rules:
 * digits, optionally surrounded by blanks); other values under the prefix are counted in
 * `skipped`. exec scans one partition's store (store_scan: O(log size), so an aggregate
 * costs the owner about a pass over its log per partition; it is not a per-GET operation),
 * merge adds the sums and counts and keeps the k largest. The result is exact for what
 * each owner saw at the moment its part ran: owners run their parts at different times, so
 * the total is not a snapshot of one instant.
 */
#ifndef SP_DATAPLANE_TASK_AGGREGATE_H
#define SP_DATAPLANE_TASK_AGGREGATE_H

#include "dataplane/tasks/task.h"
#include "wire/taskproto.h"

/* Registers AGGREGATE (opcode SP_TASK_OP_AGGREGATE; no state) and AGGREGATE_KEYS
 * (SP_TASK_OP_AGGREGATE_KEYS: the same result over a list of keys, SPAN_KEYS; its own
 * argument is k alone). Returns sp_task_register's result. */
int sp_aggregate_register(struct sp_task_registry *r, char *why, size_t why_len);

/*
 * The part of one store: adds its counters under prefix into *acc (k largest kept).
 * Exposed for tests and the benchmark. Can't fail.
 */
void sp_agg_scan(struct store *s, const uint8_t *prefix, uint32_t prefix_len, uint8_t k,
                 uint32_t now_s, struct sp_agg_result *acc);

#endif
