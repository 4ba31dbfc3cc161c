/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Liveness: pings and echoes between members, this node's ownership lease in its region,
 * and the leader's failure detector and partition moves. The decisions are in
 * state/health.c (pure); liveness.c feeds it clocks, frames and the replicated state (read
 * from node.c) and turns its verdicts into proposals (through node.c).
 */
#ifndef SP_CP_LIVENESS_H
#define SP_CP_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "io.h"
#include "metrics.h"
#include "node.h"
#include "state/health.h"

#define CP_LEASE_MARGIN_MS    50u /* the dataplane's check period + table swap, doubled */
#define CP_AUTO_REBALANCE_KEY "rebalance.auto" /* config key: "off" disables */

struct cp_liveness {
	const struct cp_config *cfg;
	uint64_t id;
	struct cp_node *node;
	struct cp_io *io;
	struct cp_stats *stats;
	uint32_t tick;

	struct health h;
	struct health_report self; /* this node's report on its dataplane */
	uint64_t term;
	uint64_t leader_id;
	uint64_t leader_lease_ns; /* leader only: the quorum lease */
	uint64_t lease_expiry_ns; /* this node's lease, own clock */
	uint64_t revoked_at_ns;   /* dataplane found dead then; 0 = not revoked */
	uint64_t revoke_floor_ns; /* grants of pings sent before this do not count */
	uint64_t written_expiry;
	uint32_t written_membership;
	bool removed;
	bool rebalance_requested; /* shardctl partitions rebalance: joiners too, once */
	uint64_t sent, grants, bad, not_member;

	/* Buffers, sized at start. */
	uint8_t *cmd_buf;            /* CLUSTER_CMD_BYTES_MAX */
	struct sp_map_entry *target; /* SP_PARTITIONS_MAX: the balanced map */
	struct sp_map_entry *next;   /* SP_PARTITIONS_MAX: the map proposed */
	uint32_t held[SP_MEMBERS_MAX];
};

/* Sets lv up from the flags. Returns 0 or -ENOMEM. */
int cp_liveness_init(struct cp_liveness *lv, const struct cp_config *cfg, uint64_t id,
                     struct cp_node *node, struct cp_io *io, struct cp_stats *stats);
void cp_liveness_fini(struct cp_liveness *lv);
/* Once a tick: this node's report, the detector's clocks, pings, the lease in the region. */
void cp_liveness_tick(struct cp_liveness *lv);
/* The leader's proposals: members down and up, then the next map. Nothing while the node
 * writes a ready. */
void cp_liveness_duties(struct cp_liveness *lv);
/* A ping or an echo from member from_peer. */
void cp_liveness_on_frame(struct cp_liveness *lv, uint64_t from_peer, const uint8_t *buf,
                          uint32_t len);
/* This member was removed: its dataplane stops serving at once. */
void cp_liveness_removed(struct cp_liveness *lv);
/* Checks lv's invariants (the detector's, the revocation flags agree). For asserts: main.c
 * checks after every tick in builds with assertions. */
bool cp_liveness_check_invariants(const struct cp_liveness *lv);
/* Automatic rebalancing is on (the configuration key is not "off"). */
bool cp_liveness_auto(const struct cp_liveness *lv);
/* The next map (moves whose old owner stopped; the rest fenced first). everyone: nodes
 * without partitions take some even with auto rebalance off. Returns 0 or -SP_ENOTFOUND. */
int cp_liveness_plan(struct cp_liveness *lv, bool everyone, struct sp_map_entry *next,
                     uint32_t *moved, uint32_t *fenced);
/* The leader's verdict on a member (why empty when healthy). */
void cp_liveness_judge(struct cp_liveness *lv, uint64_t id, struct health_verdict *vd);
/* This node's dataplane: "up", "down", "not ready", "mismatch", "none"; why when not up. */
const char *cp_liveness_dp_state(const struct cp_liveness *lv, char *why, size_t why_len);

#endif
