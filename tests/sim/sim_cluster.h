/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One simulated run: a cluster of Raft cores (control/raft/raft.h) driven over the
 * simulated network and storage, with clients, a fault scheduler and the checkers, all
 * from one seed. The same options always give the same run, event for event.
 *
 * A run has two phases. Chaos: `steps` ticks of faults (message loss, delay, duplication,
 * reordering, partitions of every shape, crashes and restarts, membership changes,
 * leadership transfers, compactions) under client load. Then heal: every link and node
 * comes back and the cluster must elect a leader and acknowledge a new write within
 * SIM_LIVENESS_TICKS.
 */
#ifndef SP_SIM_CLUSTER_H
#define SP_SIM_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#define SIM_VOTERS_MIN     3
#define SIM_VOTERS_MAX     7
#define SIM_SPARE_NODES    2   /* extra slots for nodes added during the run */
#define SIM_LIVENESS_TICKS 400 /* after heal: a leader and an acknowledged write by then */
#define SIM_STEPS_MAX      1000000
#define SIM_PROPERTY_MAX   48
#define SIM_DETAIL_MAX     400

struct sim_opts {
	uint64_t seed;
	unsigned nodes;   /* initial voters, SIM_VOTERS_MIN..SIM_VOTERS_MAX */
	uint64_t steps;   /* ticks of the chaos phase, 1..SIM_STEPS_MAX */
	bool trace;       /* print every event on stdout */
	bool no_liveness; /* skip the liveness check after heal */
};

struct sim_result {
	bool violated;
	char property[SIM_PROPERTY_MAX];
	char detail[SIM_DETAIL_MAX];
	uint64_t violation_tick;
	uint64_t ticks;  /* ticks simulated, both phases */
	uint64_t events; /* raft_step calls */
	uint64_t checks;
	uint64_t msgs_delivered;
	uint64_t crashes;
	uint64_t writes_acked;
	uint64_t reads_ok;
	uint64_t conf_changes;
	uint64_t transfers;
	uint64_t compactions;
	uint64_t corrupt_rejected; /* corrupted frames the codec refused */
	uint64_t liveness_ticks;   /* ticks from heal to the first acknowledged write */
};

/* Runs one seed. Returns 0 (see res->violated), or -EINVAL for bad options, -ENOMEM. */
int sim_run(const struct sim_opts *opts, struct sim_result *res);

#endif
