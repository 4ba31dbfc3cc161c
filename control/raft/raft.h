/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Raft consensus as a pure, deterministic state machine.
 *
 * The core does no I/O, reads no clock, starts no threads and draws randomness only from
 * a generator seeded through raft_config.seed. A driver (the control plane process, the
 * simulator, the unit tests) feeds it events with raft_step() and drains its output with
 * raft_ready_get() / raft_ready_advance():
 *
 *     loop:
 *         raft_step(r, &event)            any number of times (ticks, messages, ...)
 *         if (raft_ready_get(r, &rd)) {
 *             send rd.msgs                        (may go out at once)
 *             persist rd.snapshot (it replaces the whole stored log), then rd.entries
 *                 (overwriting any stored entry with an index >= rd.entries[0].index),
 *                 then rd.hard_state if hard_state_changed
 *             ...make them durable (fsync)...
 *             send rd.msgs_after_persist          (only now: they promise durability)
 *             apply rd.snapshot (if any), then rd.committed in order
 *             serve rd.reads once the state machine has applied up to read.index
 *             raft_ready_advance(r)
 *         }
 *
 * Between raft_ready_get() and raft_ready_advance() the driver must not call raft_step();
 * every pointer inside the ready (entries, data, messages) stays valid until
 * raft_ready_advance() and no longer. A crash between the two is fine: on restart the driver
 * passes whatever it made durable to raft_create().
 *
 * Node ids are non-zero uint64 values; 0 means "none". Indexes and terms start at 1; index 0
 * / term 0 denote the empty log.
 *
 * Membership changes are single-server changes (add a learner, promote a learner to voter,
 * remove a member). A change takes effect on every node as soon as its entry is in that
 * node's log (committed or not), as the Raft dissertation (section 4.1) describes; only one
 * change may be uncommitted at a time and the leader accepts none until it has committed an
 * entry of its own term.
 */
#ifndef SP_CONTROL_RAFT_H
#define SP_CONTROL_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds. Every array the core or the codec handles is bounded by one of these. */
#define RAFT_NODES_MAX          16          /* voters + learners */
#define RAFT_MSG_ENTRIES_MAX    1024        /* entries in one message */
#define RAFT_PROPOSE_BATCH_MAX  1024        /* entries in one propose event */
#define RAFT_ENTRY_BYTES_MAX    (1u << 20)  /* payload of one entry */
#define RAFT_SNAPSHOT_BYTES_MAX (64u << 20) /* snapshot payload */
#define RAFT_READS_PENDING_MAX  1024        /* ReadIndex requests queued at a leader */
#define RAFT_READY_APPLY_MAX    4096        /* committed entries in one ready */
#define RAFT_READY_MSGS_MAX     4096        /* queued outgoing messages; beyond: dropped, counted */

/* Node roles. */
enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRE_CANDIDATE,
	RAFT_CANDIDATE,
	RAFT_LEADER,
};

/* Log entry types. */
enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0, /* application command, opaque data */
	RAFT_ENTRY_NOOP,       /* empty entry a new leader appends in its term; data empty */
	RAFT_ENTRY_CONF,       /* membership change; data = raft_conf_change_encode() bytes */
	RAFT_ENTRY_TYPE_COUNT,
};

/*
 * One log entry. data points to len bytes (NULL when len is 0); who owns the bytes depends on
 * where the entry appears (see raft_ready, raft_msg_decode, raft_storage).
 */
struct raft_entry {
	uint64_t term;
	uint64_t index;
	uint32_t type; /* enum raft_entry_type */
	uint32_t len;
	const void *data;
};

/* Membership: voters and learners; ids unique across both lists, none zero. */
struct raft_membership {
	uint32_t n_voters;
	uint32_t n_learners;
	uint64_t voters[RAFT_NODES_MAX];
	uint64_t learners[RAFT_NODES_MAX];
};

/* Membership change operations. */
enum raft_conf_op {
	RAFT_CONF_ADD_LEARNER = 1, /* add a new non-voting member */
	RAFT_CONF_PROMOTE,         /* turn a learner into a voter */
	RAFT_CONF_REMOVE,          /* remove a voter or learner (the leader included) */
};

struct raft_conf_change {
	uint32_t op; /* enum raft_conf_op */
	uint64_t node_id;
};

/* The state that must be durable before messages that depend on it are sent. */
struct raft_hard_state {
	uint64_t term;
	uint64_t vote;   /* node voted for in term, 0 if none */
	uint64_t commit; /* may lag; persisting it only saves replay work */
};

/* What a snapshot covers: the log up to index (whose term is term) and the membership then. */
struct raft_snapshot_meta {
	uint64_t index;
	uint64_t term;
	struct raft_membership membership;
};

struct raft_snapshot {
	struct raft_snapshot_meta meta;
	const void *data;
	size_t len;
};

/* Message types. */
enum raft_msg_type {
	RAFT_MSG_PRE_VOTE = 1,   /* term = the term the sender would campaign in */
	RAFT_MSG_PRE_VOTE_RESP,  /* reject = denied */
	RAFT_MSG_VOTE,           /* index/log_term = candidate's last entry */
	RAFT_MSG_VOTE_RESP,      /* reject = denied */
	RAFT_MSG_APPEND,         /* index/log_term = previous entry, entries, commit */
	RAFT_MSG_APPEND_RESP,    /* index = last matching index, or rejected index + hints */
	RAFT_MSG_HEARTBEAT,      /* commit (bounded by the follower's match), ctx */
	RAFT_MSG_HEARTBEAT_RESP, /* ctx echoed */
	RAFT_MSG_SNAPSHOT,       /* snapshot meta + data */
	RAFT_MSG_TIMEOUT_NOW,    /* leadership transfer: campaign now, skipping pre-vote */
	RAFT_MSG_PROPOSE,        /* follower forwards proposals (entries, term/index unset) */
	RAFT_MSG_TYPE_END,
};

/*
 * A self-contained message. Fields not used by a type are zero. Pointers (entries, each
 * entry's data, snapshot.data) point into the core's memory when the message comes from a
 * ready, or into the input buffer after raft_msg_decode().
 */
struct raft_msg {
	uint32_t type; /* enum raft_msg_type */
	uint64_t from;
	uint64_t to;
	uint64_t term;
	uint64_t log_term; /* term of the entry at index (vote, append) */
	uint64_t index;
	uint64_t commit;
	uint64_t ctx; /* heartbeat: ReadIndex round id; vote: 1 = leadership transfer (campaign
	                 that ignores leader leases) */
	bool reject;
	uint64_t reject_hint_index; /* append resp: follower's last index or conflict start */
	uint64_t reject_hint_term;  /* append resp: term of the follower's entry at hint index */
	const struct raft_entry *entries;
	uint32_t n_entries;
	struct raft_snapshot snapshot; /* RAFT_MSG_SNAPSHOT only */
};

/* Configuration. Call raft_config_init() first: it sets the documented defaults. */
struct raft_config {
	uint64_t id;                    /* this node, non-zero */
	uint32_t election_tick;         /* base election timeout; actual is [t, 2t) (default 10) */
	uint32_t heartbeat_tick;        /* leader heartbeat interval, < election_tick (default 1) */
	bool pre_vote;                  /* pre-vote phase before elections (default on) */
	bool check_quorum;              /* leader steps down without a quorum (default on) */
	bool forward_proposals;         /* follower forwards proposals to the leader (default on);
	                                   off: SP_ENOTLEADER, hint in raft_status.leader_id */
	uint32_t max_inflight_msgs;     /* append messages in flight per follower (default 64) */
	uint64_t max_size_per_msg;      /* entry bytes per append message (default 1 MiB) */
	uint64_t max_uncommitted_bytes; /* uncommitted entry bytes a leader accepts (8 MiB);
	                                   each entry costs len + 32 */
	struct raft_membership bootstrap; /* membership when no snapshot says otherwise; every
	                                     node of a cluster must get the same one */
	uint64_t seed;                    /* randomized election timeouts */
};

/*
 * What the driver restored from durable storage. Entries must be contiguous and follow the
 * snapshot (entries[0].index == snapshot.meta.index + 1). applied is how far the driver's
 * state machine has applied (>= snapshot index); the core delivers committed entries after
 * it. The core copies everything it keeps.
 */
struct raft_storage {
	struct raft_hard_state hard_state;
	struct raft_snapshot snapshot; /* meta.index == 0: none */
	const struct raft_entry *entries;
	size_t n_entries;
	uint64_t applied;
};

/* Event types for raft_step(). */
enum raft_event_type {
	RAFT_EV_TICK = 1,    /* one unit of logical time */
	RAFT_EV_MSG,         /* a message arrived (msg.to must be this node) */
	RAFT_EV_PROPOSE,     /* append entries (type NORMAL; term/index ignored) */
	RAFT_EV_CONF_CHANGE, /* request a membership change (leader only) */
	RAFT_EV_READ_INDEX,  /* linearizable read with a caller context id (leader only) */
	RAFT_EV_TRANSFER,    /* transfer leadership to target (leader only) */
	RAFT_EV_COMPACT,     /* the driver snapshotted its state at index <= applied */
	RAFT_EV_CAMPAIGN,    /* start an election now (pre-vote first when enabled) */
	RAFT_EV_TYPE_END,
};

/* Result of an accepted proposal or conf change (optional out-parameter). */
struct raft_propose_result {
	uint64_t first_index; /* index of the first entry appended (0 when forwarded) */
	uint64_t term;        /* term they were appended in (0 when forwarded) */
	bool forwarded;       /* sent to the leader; the outcome shows up in the log */
};

struct raft_event {
	uint32_t type; /* enum raft_event_type */
	union {
		const struct raft_msg *msg; /* RAFT_EV_MSG; copied, may be freed after step */
		struct {
			const struct raft_entry *entries;
			size_t n_entries;
			struct raft_propose_result *result; /* may be NULL */
		} propose;
		struct {
			struct raft_conf_change change;
			struct raft_propose_result *result; /* may be NULL */
		} conf;
		struct {
			uint64_t ctx;
		} read;
		struct {
			uint64_t target;
		} transfer;
		struct {
			uint64_t index;   /* <= applied */
			const void *data; /* snapshot payload, copied (kept to send to followers) */
			size_t len;
		} compact;
	};
};

/* A finished ReadIndex request: serve it once applied >= index. status 0 or SP_E*. */
struct raft_read {
	uint64_t ctx;
	uint64_t index;
	int status; /* 0, or -SP_ENOTLEADER when leadership was lost before it was confirmed */
};

/* Volatile state, reported in a ready when it changed. */
struct raft_soft_state {
	uint64_t leader_id;
	uint64_t term;
	uint32_t role; /* enum raft_role */
};

/* The output the driver drains; see the loop at the top of this file. */
struct raft_ready {
	bool hard_state_changed;
	struct raft_hard_state hard_state;
	bool soft_state_changed;
	struct raft_soft_state soft_state;
	const struct raft_snapshot *snapshot; /* persist then install; NULL if none */
	const struct raft_entry *entries;     /* persist; truncate stored log at entries[0] */
	size_t n_entries;
	const struct raft_msg *msgs; /* may be sent before persisting */
	size_t n_msgs;
	const struct raft_msg *msgs_after_persist; /* send only after persisting this ready */
	size_t n_msgs_after_persist;
	const struct raft_entry *committed; /* apply in order */
	size_t n_committed;
	const struct raft_read *reads;
	size_t n_reads;
};

/* Per-peer replication state at the leader. */
enum raft_progress_state {
	RAFT_PROGRESS_PROBE = 0,
	RAFT_PROGRESS_REPLICATE,
	RAFT_PROGRESS_SNAPSHOT,
};

struct raft_progress {
	uint64_t id;
	bool voter;
	uint32_t state; /* enum raft_progress_state */
	uint64_t match;
	uint64_t next;
	uint32_t inflight;
	bool recent_active;
};

/* Counters: every drop or refusal at a bound is counted. */
struct raft_counters {
	uint64_t msgs_dropped_stale;      /* lower-term messages ignored */
	uint64_t msgs_dropped_invalid;    /* malformed or misaddressed messages */
	uint64_t msgs_dropped_ready_full; /* outgoing messages over RAFT_READY_MSGS_MAX */
	uint64_t proposals_dropped;       /* proposals refused (not leader, full, transfer) */
	uint64_t reads_dropped;           /* reads refused or failed */
	uint64_t elections_started;
	uint64_t snapshots_sent;
	uint64_t append_rejects_received;
};

struct raft_status {
	uint64_t id;
	uint64_t term;
	uint64_t vote;
	uint64_t leader_id;
	uint32_t role; /* enum raft_role */
	uint64_t commit;
	uint64_t applied;
	uint64_t first_index; /* first entry held in memory (snapshot index + 1) */
	uint64_t last_index;
	uint64_t last_term;
	uint64_t snapshot_index;
	uint64_t snapshot_term;
	uint64_t uncommitted_bytes;
	uint64_t transfer_target; /* leadership transfer in progress, 0 if none */
	bool conf_pending;        /* a membership change is uncommitted */
	struct raft_membership membership;
	uint32_t n_progress; /* leader only */
	struct raft_progress progress[RAFT_NODES_MAX];
	struct raft_counters counters;
};

struct raft;

/* Fills cfg with defaults for node id (empty bootstrap membership, seed = id). Can't fail. */
void raft_config_init(struct raft_config *cfg, uint64_t id);

/*
 * Creates a node from its configuration and what was restored from storage (NULL: a new
 * node with an empty log). Returns NULL and sets *err (-EINVAL for a bad configuration or
 * inconsistent storage, -ENOMEM) on failure. The node starts as a follower.
 */
struct raft *raft_create(const struct raft_config *cfg, const struct raft_storage *st, int *err);

/* Frees the node and everything it owns. NULL is a no-op. */
void raft_destroy(struct raft *r);

/*
 * Feeds one event. Returns 0 when accepted (for a message: also when it was ignored as stale,
 * which is counted), or a negative error:
 *   -SP_ENOTLEADER  propose/conf/read/transfer on a non-leader that cannot forward it;
 *                   raft_status().leader_id is the hint (0 if unknown)
 *   -SP_EBUSY       conf change while one is pending or before the own-term commit;
 *                   proposal during a leadership transfer
 *   -SP_EFULL       proposal over max_uncommitted_bytes; read queue full
 *   -SP_ETOOBIG     batch over RAFT_PROPOSE_BATCH_MAX, entry over RAFT_ENTRY_BYTES_MAX, or
 *                   one batch costing more than max_uncommitted_bytes
 *   -SP_EMALFORMED  a message that breaks the protocol's shape (counted, ignored)
 *   -EINVAL         a bad event (unknown type, compact beyond applied or not past the
 *                   last snapshot, promoting a voter, removing the last voter, transfer
 *                   to itself or a non-voter, campaign on a node that may not campaign)
 *   -SP_EEXISTS / -SP_ENOTFOUND / -SP_EFULL  conf change adding a member twice, naming a
 *                   non-member, or beyond RAFT_NODES_MAX
 *   -ENOMEM         out of memory (a proposal batch may have been partly appended)
 * Never called between raft_ready_get() and raft_ready_advance().
 */
int raft_step(struct raft *r, const struct raft_event *ev);

/* True when raft_ready_get() would return something. Can't fail. */
bool raft_has_ready(const struct raft *r);

/*
 * Fills rd with everything pending and returns true, or returns false (rd zeroed) when there
 * is nothing. The contents stay valid until raft_ready_advance().
 */
bool raft_ready_get(struct raft *r, struct raft_ready *rd);

/*
 * Tells the core that the last ready was handled: entries, snapshot and hard state are
 * durable, messages sent (or lost), committed entries applied. Frees the ready's memory.
 */
void raft_ready_advance(struct raft *r);

/* Fills st with the node's current state. Can't fail. */
void raft_status(const struct raft *r, struct raft_status *st);

/*
 * Copies the entry at index (data pointer into core memory, valid until the next raft_step or
 * raft_ready_advance). Returns 0, or -SP_ENOTFOUND when compacted or beyond the last index.
 */
int raft_log_entry(const struct raft *r, uint64_t index, struct raft_entry *out);

/*
 * Checks the node's internal invariants (log contiguity and terms, commit <= last, applied <=
 * commit, membership shape, progress bounds, role consistency). Returns 0, or -SP_ECORRUPT
 * after logging every violation found.
 */
int raft_check_invariants(const struct raft *r);

/* Name of a role / message type for logs and traces. Never NULL. */
const char *raft_role_name(uint32_t role);
const char *raft_msg_type_name(uint32_t type);

/*
 * Message codec (raft_msg.c). The encoding is little-endian with a version byte, a length
 * and a CRC32C trailer.
 *
 * raft_msg_encoded_size() returns the exact size raft_msg_encode() will write.
 * raft_msg_encode() writes msg into buf; returns the number of bytes written, or -SP_EFULL
 * when cap is too small, -EINVAL for a message that breaks the bounds above.
 * raft_msg_decode() parses exactly len bytes into msg; entries are written to entries[]
 * (capacity entries_cap, at least the message's count) and point into buf, as does
 * snapshot.data. Returns 0, -SP_ETRUNCATED for a short buffer, -SP_EMALFORMED for a bad
 * version, type, count or length, -SP_ECORRUPT for a checksum mismatch, -SP_ETOOBIG when the
 * entry count exceeds entries_cap.
 */
size_t raft_msg_encoded_size(const struct raft_msg *msg);
int raft_msg_encode(const struct raft_msg *msg, void *buf, size_t cap);
int raft_msg_decode(const void *buf, size_t len, struct raft_msg *msg, struct raft_entry *entries,
                    size_t entries_cap);

/* Conf change payload of a RAFT_ENTRY_CONF entry: exactly RAFT_CONF_CHANGE_BYTES bytes. */
#define RAFT_CONF_CHANGE_BYTES 12
void raft_conf_change_encode(const struct raft_conf_change *cc,
                             uint8_t out[RAFT_CONF_CHANGE_BYTES]);
/* Returns 0, or -SP_EMALFORMED when len or op is wrong or node_id is 0. */
int raft_conf_change_decode(const void *data, size_t len, struct raft_conf_change *cc);

/* Applies cc to m (validating it against m). Returns 0, -SP_EEXISTS, -SP_ENOTFOUND, -SP_EFULL,
 * -EINVAL. m is unchanged on error. */
int raft_membership_apply(struct raft_membership *m, const struct raft_conf_change *cc);

/* True if id is a voter / a member (voter or learner) of m. */
bool raft_membership_is_voter(const struct raft_membership *m, uint64_t id);
bool raft_membership_contains(const struct raft_membership *m, uint64_t id);

#endif
