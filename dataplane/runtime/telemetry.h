/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK telemetry commands (read them with /usr/bin/dpdk-telemetry.py, or on the socket
 * /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2):
 *   /shardplane/stats           node totals: every counter, port counters, mbufs in use
 *   /shardplane/workers         every scalar counter as an array indexed by worker
 *   /shardplane/worker,<i>      every counter of worker i
 *   /shardplane/config          the flags the node runs with
 * The callbacks run on EAL's telemetry threads and only read relaxed counters, under a
 * lock that dp_telemetry_detach also takes.
 */
#ifndef SP_DP_TELEMETRY_H
#define SP_DP_TELEMETRY_H

#include "runtime.h"

/* Registers the commands, serving rt. Returns 0 or a negative errno (logged). */
int dp_telemetry_register(struct dp_runtime *rt);

/*
 * Makes the commands answer an error from now on; waits for a command in progress, so that
 * rt may be torn down as soon as it returns.
 */
void dp_telemetry_detach(void);

/* Reads the port-level counters (rx_nombuf, imissed, ...) into *out; zeros when closed. */
void dp_port_totals_get(const struct dp_runtime *rt, struct dp_port_totals *out);

#endif
