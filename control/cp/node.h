/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The node: drives the Raft core, persists through the log store, sends through io.c,
 * applies committed entries to the cluster state, snapshots, publishes the state to the
 * shared region, and keeps the leader's membership duties. node.c owns all of that (struct
 * cp_node). It tells the API what became of its work through the outcome queue (outq.h),
 * never by calling it; what waits while a ready is written is in the submission area
 * (subq.h).
 */
#ifndef SP_CP_NODE_H
#define SP_CP_NODE_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/region.h"
#include "config.h"
#include "io.h"
#include "metrics.h"
#include "outq.h"
#include "raft/raft.h"
#include "state/cluster_sm.h"
#include "state/health.h"
#include "storage/log_store.h"
#include "subq.h"

/* Raft has a clock of its own, finer than the modules' 25 ms tick: the randomized election
 * timeout is drawn in Raft ticks, and at 25 ms per tick it had six values in [150, 300)
 * ms, so the two followers of a dead leader picked the same one about one time in six,
 * split the vote and waited a second timeout (one trial of 20 took 550 ms). At 5 ms it has
 * 25 values in [125, 250) ms: with [150, 300) the top of the range plus the election and
 * the client's first write still passed 300 ms (331 and 345 ms in 20 trials). */
#define CP_RAFT_TICK_MS    5u
#define CP_ELECTION_TICKS  25u /* 125-250 ms election timeout: failover < 300 ms */
#define CP_HEARTBEAT_TICKS 5u  /* 25 ms: five heartbeats per shortest timeout */
/* Node ticks (CP_TICK_MS) before a duty proposal that may be on its way is tried again. */
#define CP_DUTY_RETRY_TICKS 40u
/* The submission area: what waits while a ready is written to disk. The bytes hold one
 * largest Raft message (a snapshot) and room besides; pages are touched only as far as the
 * deepest backlog reaches. */
#define CP_SUBMIT_MAX       8192u
#define CP_SUBMIT_BYTES_MAX (FRAME_LEN_MAX + (8u << 20))
/* The outcome queue: room for a whole ready's outcomes (its applied entries and reads)
 * with a backlog of submissions besides. */
#define CP_OUTCOMES_MAX      16384u
#define CP_READY_ENTRIES_MAX (RAFT_MSG_ENTRIES_MAX * 4u) /* entries one append takes */
_Static_assert(CP_OUTCOMES_MAX >= RAFT_READY_APPLY_MAX + RAFT_READS_PENDING_MAX,
               "a whole ready's outcomes fit an empty outcome queue");
_Static_assert(CP_SUBMIT_BYTES_MAX >= FRAME_LEN_MAX, "the largest Raft message fits the area");

enum cp_submit_kind {
	CP_SUB_MSG = 1,  /* an encoded Raft message from a peer */
	CP_SUB_PROPOSE,  /* a command for the cluster state */
	CP_SUB_CONF,     /* raft_conf_change_encode() bytes */
	CP_SUB_READ,     /* arg = read context */
	CP_SUB_TRANSFER, /* arg = target id */
};

struct cp_node {
	const struct cp_config *cfg;
	uint64_t id;
	struct io_uring *ring;
	struct cp_io *io; /* sends, and the peers the state names */
	struct cp_stats *stats;
	uint32_t tick;
	bool stopping; /* storage failed, a corrupt snapshot, or this member was removed */
	int fatal;     /* the error the process stops with (0 when removed) */

	struct raft *raft;
	struct log_store *log;
	struct cluster_sm *sm;
	uint64_t applied;
	uint64_t applied_term;
	uint64_t snap_index;
	uint64_t snap_term;

	/* A ready being persisted: nothing is stepped until it is durable; what arrives
	 * meanwhile waits in the submission area, in order. A durable ready whose outcomes
	 * do not fit the outcome queue waits (rd_durable) until the API has drained it. */
	bool ready_inflight;
	bool rd_durable;
	struct raft_ready rd;
	int64_t rd_seq;
	struct raft_hard_state hs_synced;  /* term and vote known durable */
	struct raft_hard_state hs_pending; /* of the ready being persisted */
	struct cp_subq subq;
	struct cp_outq outq; /* outcomes for the API, in order */
	uint32_t ticks_owed;
	uint64_t fsync_started_ns;

	/* Buffers, sized at start. */
	struct raft_entry *msg_entries; /* RAFT_MSG_ENTRIES_MAX: a decoded message's entries */
	struct raft_entry *batch;       /* RAFT_PROPOSE_BATCH_MAX: proposals stepped together */
	struct log_entry *ents;         /* CP_READY_ENTRIES_MAX: entries of one append */
	uint8_t *cmd_buf;               /* CLUSTER_CMD_BYTES_MAX: a command node.c builds */
	uint8_t *send_buf;              /* send_cap: one encoded Raft message */
	size_t send_cap;

	bool was_member;
	uint32_t removed_tick;    /* this member's removal seen: it stops at this tick */
	uint32_t duty_tick;       /* this member's own record is proposed again from this tick */
	uint32_t duty_type;       /* enum cluster_cmd_type of that last proposal */
	uint32_t lead_duty_tick;  /* a leader duty that never reached the log: tried again */
	uint64_t lead_duty_index; /* the log's last index when the leader last proposed */

	struct sp_region *region;
	struct sp_cluster_state *region_state;
	uint64_t region_published_epoch;
	uint64_t region_published_members;
};

/*
 * Opens the log in cfg->data_dir, decides the bootstrap membership, restores the snapshot
 * and starts Raft; opens or creates the shared region. Peers go into io (set up, not yet
 * listening). Returns 0 or a negative error (logged with what to do).
 */
int cp_node_start(struct cp_node *n, const struct cp_config *cfg, uint64_t id,
                  struct io_uring *ring, struct cp_io *io, struct cp_stats *stats);
void cp_node_stop(struct cp_node *n);
/* One tick of the modules' clock (CP_TICK_MS): the removal check. */
void cp_node_tick(struct cp_node *n);
/* One Raft tick (CP_RAFT_TICK_MS): stepped now, or owed while a ready is written. */
void cp_node_raft_tick(struct cp_node *n);
/* What the leader (and each member for itself) proposes until the state agrees: this
 * member's record and dataplane (self: this node's report on it), roles, the first map,
 * learners' promotion. Nothing while a ready is written. */
void cp_node_duties(struct cp_node *n, const struct health_report *self);
/*
 * Moves Raft on: steps what waits, writes and sends readies, applies what is durable.
 * Outcomes go to n->outq; work whose outcomes do not fit waits there. Returns true when it
 * stopped for lack of room in the outcome queue: drain it and call again.
 */
bool cp_node_drive(struct cp_node *n);
/* The log store's callback: writes up to seq are durable (err: storage failed). */
void cp_node_on_durable(void *arg, uint64_t seq, int err);
/*
 * Steps kind (enum cp_submit_kind) now, or after the ready being persisted (the bytes are
 * copied into the submission area). When token is not 0, exactly one CP_OUT_SUBMITTED
 * outcome names it later. Returns 0, or -SP_EFULL when the submission area is full
 * (counted in submit_busy; no outcome then).
 */
int cp_node_submit(struct cp_node *n, uint32_t kind, uint64_t arg, const void *data, uint32_t len,
                   uint64_t token);
/* A Raft message from a member (dropped while the fault switch is on or the area full). */
void cp_node_on_raft_frame(struct cp_node *n, const uint8_t *buf, uint32_t len);
void cp_node_status(const struct cp_node *n, struct raft_status *st);

/* Checks the node's invariants (applied within the log, the ready's flags, the queues',
 * the state's). For asserts: main.c checks after every tick in builds with assertions. */
bool cp_node_check_invariants(const struct cp_node *n);

/* The replicated state, read-only for everyone but node.c. */
static inline const struct cluster_sm *
cp_node_sm(const struct cp_node *n)
{
	return n->sm;
}

/* True while a ready is being written (proposals then wait; duties hold off). */
static inline bool
cp_node_busy(const struct cp_node *n)
{
	return n->ready_inflight;
}

/* True once this member saw its own removal (it stops shortly after). */
static inline bool
cp_node_removed(const struct cp_node *n)
{
	return n->removed_tick != 0;
}

#endif
