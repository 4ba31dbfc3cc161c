/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The figures of one control plane and the Prometheus text endpoint that serves them
 * (--metrics host:port, libmicrohttpd on its own thread). Every module counts into
 * stats->m under stats->lock; main.c copies the gauges in once a tick; the HTTP thread only
 * reads a copy taken under the lock. A leaf: it calls no other module of control/cp.
 */
#ifndef SP_CP_METRICS_H
#define SP_CP_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "raft/raft.h"

#define CP_FSYNC_BUCKETS 16u /* <= 2^i * 64 us */

struct cp_metrics {
	uint64_t term, leader, commit, applied, last_index;
	uint32_t role;
	uint64_t proposals_total, proposals_failed;
	uint64_t fsync_hist[CP_FSYNC_BUCKETS];
	uint64_t fsync_count;
	uint64_t fsync_sum_us;
	uint64_t peer_ids[RAFT_NODES_MAX];
	uint64_t peer_lag[RAFT_NODES_MAX];
	uint32_t n_peers;
	int64_t dp_heartbeat_age_ms; /* -1: no dataplane */
	/* Liveness (liveness.c): pings sent, grants given (leader), malformed pings/echoes,
	 * pings from non-members dropped, this node's lease left (ms; 0: none). */
	uint64_t lv_sent, lv_grants, lv_bad, lv_not_member;
	int64_t lease_left_ms;
	uint64_t frames_bad, auth_failures, conns_accepted;
	uint64_t conns_refused; /* no slot: the pool held only authenticated connections */
	uint64_t conns_evicted; /* unauthenticated, closed to make room for a newer one */
	uint64_t auth_timeouts; /* not authenticated within --auth-timeout-ms */
	uint64_t submit_busy;   /* submissions refused: the submission area was full */
	uint64_t mem_allocated, mem_resident;
};

struct cp_stats {
	pthread_mutex_t lock;
	struct cp_metrics m;
	void *mhd; /* the HTTP daemon, or NULL */
};

/* An empty set of figures (no dataplane heard yet). Can't fail. */
void cp_stats_init(struct cp_stats *s);
void cp_stats_fini(struct cp_stats *s);

/* Adds n to *counter, a field of s->m, under the lock. Can't fail. */
void cp_stats_add(struct cp_stats *s, uint64_t *counter, uint64_t n);

/* Counts one write to disk that took took_ns. Can't fail. */
void cp_metrics_fsync_done(struct cp_stats *s, uint64_t took_ns);

/* Serves s at http://addr/metrics (addr "IPv4:port"; nothing when it is empty). Returns 0,
 * -EINVAL for an address that does not parse, -EADDRINUSE when the daemon cannot start. */
int cp_metrics_start(struct cp_stats *s, const char *addr);
void cp_metrics_stop(struct cp_stats *s);

#endif
