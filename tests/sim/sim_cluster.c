/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The simulator's driver: it plays the role the control-plane process plays in
 * production (the ready loop in raft.h), but over simulated links and disks, and checks
 * every property after every step.
 *
 * Persisting a ready takes 0..SIM_PERSIST_DELAY_TICKS_MAX ticks. Meanwhile the node is
 * busy, as a single-threaded driver blocked on fsync would be: messages wait in its
 * bounded inbox and its ticks are lost. A crash while busy loses the whole ready.
 */
#include "sim_cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"
#include "control/raft/raft.h"
#include "sim_check.h"
#include "sim_net.h"
#include "sim_rng.h"
#include "sim_storage.h"

#define SIM_SLOTS_MAX               (SIM_VOTERS_MAX + SIM_SPARE_NODES)
#define SIM_ID_STRIDE               16 /* node id = incarnation * stride + slot + 1 */
#define SIM_INBOX_MAX               256
#define SIM_READ_WAIT_MAX           64
#define SIM_CLIENTS                 3
#define SIM_PERSIST_DELAY_TICKS_MAX 3
#define SIM_CLIENT_TIMEOUT_TICKS    60
#define SIM_DOWN_TICKS_MIN          5
#define SIM_DOWN_TICKS_MAX          120
#define SIM_COMPACT_MIN_ENTRIES     16
#define SIM_CMD_BYTES               24
#define SIM_CMD_MAGIC               0x53494d434d44ull /* "SIMCMD" */
#define SIM_PAYLOAD_BYTES_MAX       (1u << 22)
#define SIM_STRIKE_DELAY_TICKS_MAX  6
#define SIM_VOTERS_FLOOR            2   /* removals stop at this many voters */
#define SIM_FIG8_ROUND_TICKS        200 /* a Figure 8 round step gives up after this */
#define SIM_ADMIN_WAIT_TICKS        20  /* a leader request waits this long for a free leader */

SP_STATIC_ASSERT(SIM_SLOTS_MAX <= SIM_NET_NODES_MAX, "network too small for the slots");
SP_STATIC_ASSERT(SIM_SLOTS_MAX <= SIM_CHECK_NODES_MAX, "checker too small for the slots");
SP_STATIC_ASSERT(SIM_SLOTS_MAX < SIM_ID_STRIDE, "slot must fit in the id stride");
SP_STATIC_ASSERT(SIM_SLOTS_MAX <= RAFT_NODES_MAX, "core membership too small");

/* An encoded message in flight; the network owns it. */
struct sim_payload {
	size_t len;
	uint8_t bytes[];
};

struct sim_read_wait {
	uint64_t op_id;
	uint64_t index;
};

struct sim_node {
	unsigned slot;
	uint64_t id; /* 0: slot empty */
	uint32_t incarnation;
	bool up;
	struct raft *r;
	struct sim_storage st;

	/* The replicated state machine: a digest of the applied log. */
	uint64_t sm_index;
	uint64_t sm_chain;
	struct raft_membership sm_membership;

	bool busy; /* holding rd until persist_done_tick */
	struct raft_ready rd;
	uint64_t persist_done_tick;
	struct sim_payload *inbox[SIM_INBOX_MAX];
	uint32_t inbox_len;
	struct sim_read_wait reads[SIM_READ_WAIT_MAX];
	uint32_t n_reads;

	/* The highest index this incarnation acknowledged to a leader of promise_term: while
	 * it stays in that term, its stored log must keep reaching that far. */
	uint64_t promise_id;
	uint64_t promise_term;
	uint64_t promise_index;
	uint64_t reported_commit; /* commits reported to the checker */
	uint64_t checked_lead_term;
	uint32_t last_role;
	uint64_t last_term;
	uint64_t restart_tick;
	bool retire; /* its removal was applied somewhere: destroy at the end of the tick */
};

enum sim_op_kind {
	SIM_OP_NONE = 0,
	SIM_OP_WRITE,
	SIM_OP_READ,
};

struct sim_client {
	uint32_t kind; /* enum sim_op_kind */
	uint64_t op_id;
	unsigned target;
	uint64_t target_id;
	uint64_t start_tick;
	uint64_t floor;
	uint64_t next_tick;
	unsigned leader_hint; /* slot + 1, 0 unknown */
};

/* Per-seed fault intensity, drawn once so seeds differ in character, not just in detail. */
struct sim_profile {
	struct sim_net_faults net;
	uint32_t fault_ppm;    /* chance per tick of one scheduler action */
	uint32_t crash_weight; /* relative weights of the actions */
	uint32_t partition_weight;
	uint32_t link_weight;
	uint32_t heal_weight;
	uint32_t conf_weight;
	uint32_t transfer_weight;
	uint32_t netfault_weight;
	uint32_t conf_ppm;         /* per tick: ask for a membership change */
	uint32_t compact_ppm;      /* per node and tick */
	uint32_t corrupt_ppm;      /* per delivered message */
	uint32_t crash_busy_ppm;   /* per tick: crash a node in the middle of persisting */
	uint32_t client_gap_ticks; /* ticks between a client's operations */
	uint32_t persist_slow_ppm; /* chance a ready takes 1..persist_delay_max ticks */
	uint32_t persist_delay_max;
	/* Aimed at the moments the protocol is fragile: right after an election or an
	 * accepted membership change, the leader is struck (cut from some peers, or
	 * crashed), and a new leader is asked for a membership change at once. */
	uint32_t strike_ppm;
	uint32_t election_conf_ppm;
	uint32_t commit_strike_ppm; /* strike a leader the moment its commit index moves */
	uint32_t isolate_ppm;       /* cut a leader from everyone right after it appends a
	                               client write, leaving entries of its term nowhere else */
	bool fig8;                  /* run the Figure 8 schedule instead of random faults */
	bool fig8_conf;             /* its membership variant (see enum sim_fig8) */
	/* Core tunables: small messages and windows split replication into many steps. */
	uint64_t max_size_per_msg;
	uint32_t max_inflight_msgs;
	bool pre_vote;
	/* Off: an isolated leader keeps its role and grows a long divergent log. */
	bool check_quorum;
	/* Small budgets make leaders refuse writes at the bound (checked after every write). */
	uint64_t max_uncommitted_bytes;
};

/*
 * The Figure 8 schedule of the Raft paper, as a nemesis: (1) a leader A is isolated right
 * after it appends a client write; (2) the next leader B is isolated the moment it is
 * elected, so its term's entry stays with it; (3) A rejoins, is elected again and
 * replicates its old-term entry; the moment its commit index moves it is isolated again;
 * (4) B rejoins and may be elected. A core that commits old-term entries by counting
 * replicas loses a committed entry in step 4.
 *
 * The membership variant: (1) leader A is cut from a random half of its peers the moment
 * it accepts a membership change, so the change reaches only some logs; (2) the next
 * leader B is asked for a membership change at once (a correct core refuses until it has
 * committed an entry of its term); (3) the moment B's commit index moves after it accepted
 * one, B is isolated and A rejoins. A core that takes a change before its own-term commit
 * lets A and B count quorums in configurations that do not overlap.
 */
enum sim_fig8 {
	SIM_FIG8_WAIT_WRITE = 0,
	SIM_FIG8_WAIT_NEW_LEADER,
	SIM_FIG8_WAIT_A_LEADS,
	SIM_FIG8_WAIT_A_COMMIT,
	SIM_FIG8_REST,
};

/* Requests for the leader (membership, transfer) wait until it is not busy persisting. */
enum sim_admin {
	SIM_ADMIN_NONE = 0,
	SIM_ADMIN_CONF,
	SIM_ADMIN_TRANSFER,
};

struct sim {
	struct sim_opts o;
	struct sim_result *res;
	struct sim_rng rng;
	struct sim_net *net;
	struct sim_check ck;
	struct sim_profile prof;
	struct sim_node nodes[SIM_SLOTS_MAX];
	unsigned n_slots;
	struct raft_membership bootstrap;
	struct sim_client clients[SIM_CLIENTS];
	uint64_t now;
	uint64_t op_next;
	uint64_t strike_tick; /* when to strike strike_id (0: nothing scheduled) */
	uint64_t strike_id;
	uint32_t fig8;              /* enum sim_fig8 */
	uint64_t fig8_a;            /* the leader isolated with an entry of its term */
	uint64_t fig8_b;            /* the next leader, isolated at once */
	uint64_t fig8_deadline;     /* abandon the round (heal) at this tick */
	bool fig8_b_changed;        /* membership variant: B accepted a change */
	uint64_t fig8_isolate_tick; /* membership variant: isolate A fully at this tick */
	uint64_t fig8_e;            /* membership variant: the voter A's change promoted */
	uint32_t admin;             /* enum sim_admin, waiting for a free leader */
	uint64_t admin_remove_id;   /* when set, the change asked for is this removal */
	uint64_t admin_deadline;    /* give up at this tick */
	bool healed;
	uint64_t heal_tick;
	uint64_t acked_after_heal;
	uint64_t inbox_dropped;
	uint64_t stale_dropped;
	/* Decode scratch for one message. */
	struct raft_msg msg;
	struct raft_entry msg_entries[RAFT_MSG_ENTRIES_MAX];
	struct raft_entry restore_entries[SIM_STORAGE_ENTRIES_MAX];
};

static void node_pump(struct sim *s, struct sim_node *n);
static void node_crash(struct sim *s, struct sim_node *n, const char *why);
static void fig8_on_elected(struct sim *s, struct sim_node *n);
static void fig8_on_commit(struct sim *s, struct sim_node *n);
static void fig8_on_conf(struct sim *s, struct sim_node *n, const struct raft_conf_change *cc);

static void __attribute__((format(printf, 2, 3))) trace(const struct sim *s, const char *fmt, ...)
{
	if (!s->o.trace)
		return;
	va_list ap;

	printf("t=%" PRIu64 " ", s->now);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static bool
ok(const struct sim *s)
{
	return !s->ck.violated;
}

static void *
payload_clone(void *ctx, const void *payload)
{
	const struct sim_payload *p = payload;
	struct sim_payload *c = malloc(sizeof(*c) + p->len);

	(void)ctx;
	VERIFY(c != NULL);
	memcpy(c, p, sizeof(*c) + p->len);
	return c;
}

static void
payload_release(void *ctx, void *payload)
{
	(void)ctx;
	free(payload);
}

static struct sim_node *
node_by_id(struct sim *s, uint64_t id)
{
	if (id == 0)
		return NULL;
	unsigned slot = (unsigned)((id - 1) % SIM_ID_STRIDE);

	if (slot >= s->n_slots || s->nodes[slot].id != id)
		return NULL;
	return &s->nodes[slot];
}

/* Feeds one event to an up, free node and checks the core's invariants after it. */
static int
step(struct sim *s, struct sim_node *n, const struct raft_event *ev)
{
	ASSERT(n->up);
	ASSERT(!n->busy);
	int rc = raft_step(n->r, ev);

	s->res->events++;
	if (raft_check_invariants(n->r) != 0)
		sim_check_fail(&s->ck, "core invariants",
		               "raft_check_invariants failed on node %" PRIu64 " after event %u",
		               n->id, ev->type);
	return rc;
}

/* Encodes and sends one message; unknown destinations are dropped and counted. */
static void
send_msg(struct sim *s, struct sim_node *from, const struct raft_msg *m)
{
	struct sim_node *to = node_by_id(s, m->to);

	if (to == NULL) {
		s->stale_dropped++;
		return;
	}
	size_t len = raft_msg_encoded_size(m);

	VERIFY(len <= SIM_PAYLOAD_BYTES_MAX);
	struct sim_payload *p = malloc(sizeof(*p) + len);

	VERIFY(p != NULL);
	int rc = raft_msg_encode(m, p->bytes, len);

	if (rc < 0 || (size_t)rc != len) {
		free(p);
		sim_check_fail(&s->ck, "message contract",
		               "node %" PRIu64 " emitted a %s the codec refuses: %s", from->id,
		               raft_msg_type_name(m->type), sp_strerror(rc));
		return;
	}
	p->len = len;
	(void)sim_net_send(s->net, &s->rng, s->now, from->slot, to->slot, p);
}

/*
 * A response that promises durability (a granted vote, a successful append) must only go
 * out once what it promises is in storage. This catches a core that replies before the
 * driver persisted, or never asks it to persist at all.
 */
static void
check_durable_promise(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_VOTE_RESP && !m->reject) {
		if (n->st.hs.term != m->term || n->st.hs.vote != m->to)
			sim_check_fail(&s->ck, "vote durability",
			               "node %" PRIu64 " grants its term %" PRIu64
			               " vote to %" PRIu64 " while storage holds term %" PRIu64
			               " vote %" PRIu64,
			               n->id, m->term, m->to, n->st.hs.term, n->st.hs.vote);
	}
	if (m->type == RAFT_MSG_APPEND_RESP && !m->reject && m->index > 0) {
		if (sim_storage_last_index(&n->st) < m->index || n->st.hs.term < m->term)
			sim_check_fail(&s->ck, "append durability",
			               "node %" PRIu64 " acknowledges index %" PRIu64
			               " term %" PRIu64 " but storage ends at %" PRIu64,
			               n->id, m->index, m->term, sim_storage_last_index(&n->st));
		if (n->promise_id != n->id || n->promise_term != m->term) {
			n->promise_id = n->id;
			n->promise_term = m->term;
			n->promise_index = 0;
		}
		n->promise_index = SP_MAX(n->promise_index, m->index);
	}
}

/*
 * An acknowledgement is a promise for the rest of its term: the leader counts it toward
 * commits from then on. Only a leader of a later term may take those entries away again
 * (by truncating a conflict); within the term the stored log must keep reaching them,
 * whatever arrives (old duplicates, snapshots) and across restarts.
 */
static void
check_promise_kept(struct sim *s, struct sim_node *n)
{
	uint64_t last = sim_storage_last_index(&n->st);

	s->ck.checks++;
	if (n->promise_id == n->id && n->st.hs.term == n->promise_term && last < n->promise_index)
		sim_check_fail(&s->ck, "append durability",
		               "node %" PRIu64 " acknowledged index %" PRIu64 " in term %" PRIu64
		               " and its stored log now ends at %" PRIu64 " in that term",
		               n->id, n->promise_index, n->promise_term, last);
}

/*
 * Leadership transfer: timeout-now goes to a target that holds the leader's whole log, so
 * that it can win at once (docs/raft.md). The removed leader's own hand-over is made after
 * it stepped down and is not a transfer.
 */
static void
check_transfer_target(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
	struct raft_status st;

	if (m->type != RAFT_MSG_TIMEOUT_NOW)
		return;
	raft_status(n->r, &st);
	s->ck.checks++;
	if (st.role != RAFT_LEADER || st.transfer_target != m->to)
		return;
	for (uint32_t i = 0; i < st.n_progress; i++)
		if (st.progress[i].id == m->to && st.progress[i].match != st.last_index)
			sim_check_fail(&s->ck, "transfer contract",
			               "leader %" PRIu64 " sends timeout-now to %" PRIu64
			               ", which holds %" PRIu64 " of its %" PRIu64 " entries",
			               n->id, m->to, st.progress[i].match, st.last_index);
}

/* Sends a ready's messages in order, checking the durability promise of each. */
static void
send_all(struct sim *s, struct sim_node *n, const struct raft_msg *msgs, size_t count)
{
	for (size_t i = 0; i < count && n->up; i++) {
		check_durable_promise(s, n, &msgs[i]);
		check_transfer_target(s, n, &msgs[i]);
		send_msg(s, n, &msgs[i]);
	}
}

/* Ends the client's operation without a result (no check); it retries after a gap. */
static void
client_abort(struct sim *s, struct sim_client *c, const char *why)
{
	trace(s, "client %ld op %" PRIu64 " aborted: %s", (long)(c - s->clients), c->op_id, why);
	c->kind = SIM_OP_NONE;
	c->next_tick = s->now + 1 + sim_rng_below(&s->rng, s->prof.client_gap_ticks);
}

/* The client whose pending operation of this kind is op_id, or NULL. */
static struct sim_client *
client_of_op(struct sim *s, uint64_t op_id, uint32_t kind)
{
	for (unsigned i = 0; i < SIM_CLIENTS; i++) {
		struct sim_client *c = &s->clients[i];

		if (c->kind == kind && c->op_id == op_id)
			return c;
	}
	return NULL;
}

/* Serves the node's waiting reads whose index it has applied. */
static void
serve_reads(struct sim *s, struct sim_node *n)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < n->n_reads; i++) {
		struct sim_read_wait *w = &n->reads[i];

		if (w->index > n->sm_index) {
			n->reads[k++] = *w;
			continue;
		}
		struct sim_client *c = client_of_op(s, w->op_id, SIM_OP_READ);

		if (c == NULL || c->target_id != n->id)
			continue;
		trace(s,
		      "read op %" PRIu64 " at node %" PRIu64 " index %" PRIu64 " -> state %" PRIu64,
		      w->op_id, n->id, w->index, n->sm_index);
		if (sim_check_read(&s->ck, w->op_id, c->floor, n->sm_index, n->sm_chain))
			s->res->reads_ok++;
		c->kind = SIM_OP_NONE;
		c->next_tick = s->now + sim_rng_below(&s->rng, s->prof.client_gap_ticks);
	}
	n->n_reads = k;
}

/* A node whose removal was applied somewhere is destroyed at the end of the tick. */
static void
mark_retired(struct sim *s, uint64_t id)
{
	struct sim_node *n = node_by_id(s, id);

	if (n != NULL)
		n->retire = true;
}

/* Applies one committed entry to the node's state machine, with the checks. */
static void
apply_entry(struct sim *s, struct sim_node *n, const struct raft_entry *e)
{
	uint64_t chain = sim_chain_next(n->sm_chain, e->index, e->term, e->data, e->len);

	if (!sim_check_apply(&s->ck, n->slot, e->index, chain))
		return;
	n->sm_index = e->index;
	n->sm_chain = chain;
	if (e->type == RAFT_ENTRY_CONF) {
		struct raft_conf_change cc;

		if (raft_conf_change_decode(e->data, e->len, &cc) != 0) {
			sim_check_fail(&s->ck, "entry contract",
			               "node %" PRIu64
			               " applies a malformed conf entry at %" PRIu64,
			               n->id, e->index);
			return;
		}
		/* Changes were validated when proposed; a refused one leaves it unchanged. */
		(void)raft_membership_apply(&n->sm_membership, &cc);
		if (cc.op == RAFT_CONF_REMOVE)
			mark_retired(s, cc.node_id);
		return;
	}
	if (e->type != RAFT_ENTRY_NORMAL || e->len != SIM_CMD_BYTES)
		return;
	uint64_t cmd[3];

	memcpy(cmd, e->data, sizeof(cmd));
	if (cmd[0] != SIM_CMD_MAGIC || cmd[1] >= SIM_CLIENTS)
		return;
	struct sim_client *c = &s->clients[cmd[1]];

	if (c->kind != SIM_OP_WRITE || c->op_id != cmd[2] || c->target_id != n->id)
		return;
	trace(s, "write op %" PRIu64 " acked by node %" PRIu64 " at index %" PRIu64, c->op_id,
	      n->id, e->index);
	if (sim_check_write_acked(&s->ck, c->op_id, e->index, c->floor)) {
		s->res->writes_acked++;
		if (s->healed && c->start_tick >= s->heal_tick) {
			if (s->acked_after_heal++ == 0)
				s->res->liveness_ticks = s->now - s->heal_tick;
		}
	}
	c->kind = SIM_OP_NONE;
	c->next_tick = s->now + sim_rng_below(&s->rng, s->prof.client_gap_ticks);
}

/* Reports every index newly committed at n (its commit index) to the checker. */
static void
report_commits(struct sim *s, struct sim_node *n, uint64_t commit)
{
	uint64_t from = SP_MAX(n->reported_commit, n->st.snap.index);

	if (commit > sim_storage_last_index(&n->st)) {
		sim_check_fail(&s->ck, "durability contract",
		               "node %" PRIu64 " commits up to %" PRIu64 " but only %" PRIu64
		               " entries are durable",
		               n->id, commit, sim_storage_last_index(&n->st));
		return;
	}
	for (uint64_t i = from + 1; i <= commit && ok(s); i++)
		sim_check_commit(&s->ck, n->slot, i, sim_storage_term_at(&n->st, i),
		                 sim_storage_chain_at(&n->st, i));
	n->reported_commit = SP_MAX(n->reported_commit, commit);
}

/* The ready's storage writes are durable now: finish it as raft.h's loop describes. */
static void
node_persist_done(struct sim *s, struct sim_node *n)
{
	struct raft_ready *rd = &n->rd;
	int rc = 0;

	ASSERT(n->busy);
	if (rd->snapshot != NULL)
		rc = sim_storage_put_snapshot(&n->st, rd->snapshot);
	if (rc == 0)
		rc = sim_storage_put_entries(&n->st, rd->entries, rd->n_entries);
	if (rc != 0) {
		sim_check_fail(&s->ck, "ready contract",
		               "node %" PRIu64 " asked to persist a snapshot or entries storage "
		               "refuses: %s",
		               n->id, sp_strerror(rc));
		return;
	}
	if (rd->hard_state_changed)
		n->st.hs = rd->hard_state;
	check_promise_kept(s, n);
	for (size_t i = 0; i < rd->n_entries && ok(s); i++) {
		const struct raft_entry *e = &rd->entries[i];

		sim_check_log_entry(&s->ck, n->slot, e->index, e->term,
		                    sim_storage_chain_at(&n->st, e->index));
	}
	send_all(s, n, rd->msgs_after_persist, rd->n_msgs_after_persist);

	struct raft_status st;

	raft_status(n->r, &st);
	if (rd->snapshot != NULL && ok(s)) {
		const struct raft_snapshot *snap = rd->snapshot;
		uint64_t index, chain;

		VERIFY(sim_snapshot_data_decode(snap->data, snap->len, &index, &chain) == 0);
		if (index > n->reported_commit)
			sim_check_commit(&s->ck, n->slot, index, snap->meta.term, chain);
		n->reported_commit = SP_MAX(n->reported_commit, index);
		if (sim_check_restore(&s->ck, n->slot, index, chain)) {
			n->sm_index = index;
			n->sm_chain = chain;
			n->sm_membership = snap->meta.membership;
		}
		trace(s, "node %" PRIu64 " installs snapshot at %" PRIu64 " term %" PRIu64, n->id,
		      index, snap->meta.term);
	}
	if (ok(s) && st.role == RAFT_LEADER && st.commit > n->reported_commit)
		fig8_on_commit(s, n);
	if (ok(s) && st.role == RAFT_LEADER && st.commit > n->reported_commit && !s->healed &&
	    s->strike_tick == 0 && sim_rng_chance(&s->rng, s->prof.commit_strike_ppm)) {
		s->strike_tick = s->now;
		s->strike_id = n->id;
	}
	if (ok(s))
		report_commits(s, n, st.commit);
	for (size_t i = 0; i < rd->n_committed && ok(s); i++)
		apply_entry(s, n, &rd->committed[i]);
	for (size_t i = 0; i < rd->n_reads; i++) {
		const struct raft_read *rr = &rd->reads[i];
		struct sim_client *c = client_of_op(s, rr->ctx, SIM_OP_READ);

		if (c == NULL || c->target_id != n->id)
			continue;
		if (rr->status != 0) {
			client_abort(s, c, sp_strerror(rr->status));
			continue;
		}
		if (n->n_reads >= SIM_READ_WAIT_MAX) {
			client_abort(s, c, "read wait list full");
			continue;
		}
		n->reads[n->n_reads++] =
		        (struct sim_read_wait){.op_id = rr->ctx, .index = rr->index};
	}
	serve_reads(s, n);
	raft_ready_advance(n->r);
	n->busy = false;

	/* After advance the core's log is exactly what storage holds. */
	raft_status(n->r, &st);
	if (ok(s) && (st.last_index != sim_storage_last_index(&n->st) ||
	              st.snapshot_index > n->st.snap.index + n->st.n))
		sim_check_fail(&s->ck, "storage contract",
		               "node %" PRIu64 " core log ends at %" PRIu64 " (snapshot %" PRIu64
		               ") but storage ends at %" PRIu64 " (snapshot %" PRIu64 ")",
		               n->id, st.last_index, st.snapshot_index,
		               sim_storage_last_index(&n->st), n->st.snap.index);
}

/* term_at for the leader-completeness check: the core's own log. */
static uint64_t
core_term_at(void *ctx, uint64_t index)
{
	struct raft_entry e;

	if (raft_log_entry(ctx, index, &e) != 0)
		return 0;
	return e.term;
}

/* Maybe strike leader n within the next few ticks (see struct sim_profile). */
static void
strike_schedule(struct sim *s, const struct sim_node *n)
{
	if (s->strike_tick != 0 || !sim_rng_chance(&s->rng, s->prof.strike_ppm))
		return;
	s->strike_tick = s->now + sim_rng_range(&s->rng, 0, SIM_STRIKE_DELAY_TICKS_MAX);
	s->strike_id = n->id;
}

/* Checks run on a node after each of its steps: election safety, leader completeness;
 * a new leadership may also start the aimed faults. */
static void
node_observe(struct sim *s, struct sim_node *n)
{
	struct raft_status st;

	raft_status(n->r, &st);
	if (st.role != n->last_role || st.term != n->last_term)
		trace(s,
		      "node %" PRIu64 " is %s in term %" PRIu64 " (commit %" PRIu64
		      ", last %" PRIu64 ")",
		      n->id, raft_role_name(st.role), st.term, st.commit, st.last_index);
	n->last_role = st.role;
	n->last_term = st.term;
	if (st.role != RAFT_LEADER)
		return;
	if (!sim_check_leader(&s->ck, n->slot, st.term))
		return;
	if (n->checked_lead_term == st.term)
		return;
	n->checked_lead_term = st.term;
	sim_check_leader_complete(&s->ck, n->slot, st.term, st.last_index, core_term_at, n->r);
	if (s->healed)
		return;
	fig8_on_elected(s, n);
	if (s->prof.fig8)
		return;
	if (sim_rng_chance(&s->rng, s->prof.election_conf_ppm)) {
		s->admin = SIM_ADMIN_CONF;
		s->admin_deadline = s->now + SIM_ADMIN_WAIT_TICKS;
	}
	strike_schedule(s, n);
}

/* Takes readies while the node is free; a ready with a persist delay makes it busy. */
static void
node_pump(struct sim *s, struct sim_node *n)
{
	while (n->up && !n->busy && ok(s) && raft_has_ready(n->r)) {
		VERIFY(raft_ready_get(n->r, &n->rd));
		n->busy = true;
		send_all(s, n, n->rd.msgs, n->rd.n_msgs);
		uint64_t delay = 0;

		if (sim_rng_chance(&s->rng, s->prof.persist_slow_ppm))
			delay = sim_rng_range(&s->rng, 1, s->prof.persist_delay_max);

		n->persist_done_tick = s->now + delay;
		if (delay > 0)
			return;
		node_persist_done(s, n);
	}
}

static void
deliver(struct sim *s, struct sim_node *n, struct sim_payload *p)
{
	int rc = raft_msg_decode(p->bytes, p->len, &s->msg, s->msg_entries,
	                         SP_ARRAY_SIZE(s->msg_entries));

	if (rc != 0) {
		sim_check_fail(&s->ck, "codec", "a message that encoded fine fails to decode: %s",
		               sp_strerror(rc));
		free(p);
		return;
	}
	if (s->msg.to != n->id) {
		/* Addressed to an earlier incarnation of this slot. */
		s->stale_dropped++;
		free(p);
		return;
	}
	trace(s,
	      "deliver %s %" PRIu64 "->%" PRIu64 " term %" PRIu64 " idx %" PRIu64
	      " n=%u commit %" PRIu64 "%s",
	      raft_msg_type_name(s->msg.type), s->msg.from, s->msg.to, s->msg.term, s->msg.index,
	      s->msg.n_entries, s->msg.commit, s->msg.reject ? " reject" : "");
	struct raft_event ev = {.type = RAFT_EV_MSG, .msg = &s->msg};

	rc = step(s, n, &ev);
	free(p); /* the core copied what it keeps */
	if (rc != 0 && rc != -SP_EMALFORMED)
		sim_check_fail(&s->ck, "core error", "node %" PRIu64 " refuses a %s message: %s",
		               n->id, raft_msg_type_name(s->msg.type), sp_strerror(rc));
	node_observe(s, n);
	node_pump(s, n);
}

/*
 * A frame corrupted on the wire must be refused by the codec (CRC32C catches every
 * single-bit error); it is then dropped like a lost message.
 */
static bool
corrupt_and_refused(struct sim *s, struct sim_payload *p)
{
	size_t bit = sim_rng_below(&s->rng, p->len * 8);

	p->bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	int rc = raft_msg_decode(p->bytes, p->len, &s->msg, s->msg_entries,
	                         SP_ARRAY_SIZE(s->msg_entries));

	if (rc == 0)
		return sim_check_fail(&s->ck, "codec",
		                      "a frame with bit %zu flipped decoded without error", bit);
	s->res->corrupt_rejected++;
	return true;
}

static void
on_message(struct sim *s, const struct sim_net_msg *m)
{
	struct sim_node *n = &s->nodes[m->to];
	struct sim_payload *p = m->payload;

	if (!n->up || n->id == 0) {
		free(p);
		return;
	}
	s->res->msgs_delivered++;
	if (sim_rng_chance(&s->rng, s->prof.corrupt_ppm)) {
		(void)corrupt_and_refused(s, p);
		free(p);
		return;
	}
	if (n->busy) {
		if (n->inbox_len >= SIM_INBOX_MAX) {
			s->inbox_dropped++;
			free(p);
			return;
		}
		n->inbox[n->inbox_len++] = p;
		return;
	}
	deliver(s, n, p);
}

/* Delivers what waited in the inbox while the node was persisting, until it is busy again. */
static void
drain_inbox(struct sim *s, struct sim_node *n)
{
	uint32_t i = 0;

	while (i < n->inbox_len && n->up && !n->busy && ok(s))
		deliver(s, n, n->inbox[i++]);
	if (!n->up)
		return;
	memmove(n->inbox, n->inbox + i, (n->inbox_len - i) * sizeof(n->inbox[0]));
	n->inbox_len -= i;
}

/* Drops everything a crash loses: the core, a ready in progress, the inbox, waiting
 * reads; the clients waiting on the node give up. Storage stays. */
static void
node_free_volatile(struct sim *s, struct sim_node *n)
{
	raft_destroy(n->r);
	n->r = NULL;
	n->busy = false;
	for (uint32_t i = 0; i < n->inbox_len; i++)
		free(n->inbox[i]);
	n->inbox_len = 0;
	n->n_reads = 0;
	for (unsigned i = 0; i < SIM_CLIENTS; i++) {
		struct sim_client *c = &s->clients[i];

		if (c->kind != SIM_OP_NONE && c->target_id == n->id)
			client_abort(s, c, "node down");
	}
}

/* Creates the core from durable storage. Returns false (violation recorded) on failure. */
static bool
node_boot(struct sim *s, struct sim_node *n)
{
	struct raft_config cfg;
	struct raft_storage view;
	uint8_t snap_data[SIM_SNAPSHOT_DATA_BYTES];
	int err = 0;

	raft_config_init(&cfg, n->id);
	cfg.bootstrap = s->bootstrap;
	cfg.seed = sim_rng_next(&s->rng);
	cfg.max_size_per_msg = s->prof.max_size_per_msg;
	cfg.max_inflight_msgs = s->prof.max_inflight_msgs;
	cfg.pre_vote = s->prof.pre_vote;
	cfg.check_quorum = s->prof.check_quorum;
	cfg.max_uncommitted_bytes = s->prof.max_uncommitted_bytes;
	sim_storage_view(&n->st, &view, s->restore_entries, snap_data);
	n->r = raft_create(&cfg, &view, &err);
	if (n->r == NULL)
		return sim_check_fail(&s->ck, "restart", "node %" PRIu64 " cannot restart: %s",
		                      n->id, sp_strerror(err));
	n->up = true;
	n->sm_index = n->st.snap.index;
	n->sm_chain = n->st.snap_chain;
	n->sm_membership = n->st.snap.index > 0 ? n->st.snap.membership : s->bootstrap;
	n->reported_commit = n->st.snap.index;
	n->checked_lead_term = 0;
	n->last_role = RAFT_FOLLOWER;
	n->last_term = n->st.hs.term;
	sim_net_set_node(s->net, n->slot, true);
	if (!sim_check_restore(&s->ck, n->slot, n->sm_index, n->sm_chain))
		return false;
	node_observe(s, n);
	node_pump(s, n);
	return true;
}

static void
node_crash(struct sim *s, struct sim_node *n, const char *why)
{
	ASSERT(n->up);
	trace(s, "crash node %" PRIu64 " (%s)%s", n->id, why, n->busy ? ", ready lost" : "");
	node_free_volatile(s, n);
	n->up = false;
	n->restart_tick = s->now + sim_rng_range(&s->rng, SIM_DOWN_TICKS_MIN, SIM_DOWN_TICKS_MAX);
	sim_net_set_node(s->net, n->slot, false);
	sim_check_node_reset(&s->ck, n->slot);
	s->res->crashes++;
}

/* Empties a slot for good (its node was removed from the cluster). */
static void
node_retire(struct sim *s, struct sim_node *n)
{
	trace(s, "node %" PRIu64 " retired after its removal", n->id);
	if (n->up)
		node_free_volatile(s, n);
	sim_storage_fini(&n->st);
	n->up = false;
	n->retire = false;
	n->id = 0;
	sim_net_set_node(s->net, n->slot, false);
	sim_check_node_reset(&s->ck, n->slot);
}

/* The up leader with the highest term, or NULL. */
static struct sim_node *
find_leader(struct sim *s, struct raft_status *st)
{
	struct sim_node *best = NULL;
	uint64_t best_term = 0;

	for (unsigned i = 0; i < s->n_slots; i++) {
		struct sim_node *n = &s->nodes[i];
		struct raft_status cur;

		if (!n->up || n->busy)
			continue;
		raft_status(n->r, &cur);
		if (cur.role == RAFT_LEADER && cur.term >= best_term) {
			best = n;
			best_term = cur.term;
			*st = cur;
		}
	}
	return best;
}

/* Cuts every link of n, both ways (the entries it appends next stay with it). */
static void
isolate(struct sim *s, struct sim_node *n)
{
	for (unsigned i = 0; i < s->n_slots; i++) {
		if (i == n->slot)
			continue;
		sim_net_set_link(s->net, n->slot, i, false);
		sim_net_set_link(s->net, i, n->slot, false);
	}
	trace(s, "isolate node %" PRIu64 " from every peer", n->id);
	ASSERT(!sim_net_link_up(s->net, n->slot, (n->slot + 1) % s->n_slots));
}

/* Brings every link of slot back up. */
static void
rejoin(struct sim *s, unsigned slot)
{
	for (unsigned i = 0; i < s->n_slots; i++) {
		sim_net_set_link(s->net, slot, i, true);
		sim_net_set_link(s->net, i, slot, true);
	}
	ASSERT(sim_net_link_up(s->net, slot, slot));
}

static void
fig8_restart(struct sim *s, const char *why)
{
	sim_net_heal(s->net);
	trace(s, "figure 8: %s; network healed, next round", why);
	s->fig8 = SIM_FIG8_WAIT_WRITE;
	s->fig8_deadline = 0;
	s->admin_remove_id = 0;
}

/* Figure 8 step 1: leader n just appended a client write. */
static void
fig8_on_write(struct sim *s, struct sim_node *n)
{
	if (!s->prof.fig8 || s->prof.fig8_conf || s->healed || s->fig8 != SIM_FIG8_WAIT_WRITE)
		return;
	isolate(s, n);
	s->fig8_a = n->id;
	s->fig8 = SIM_FIG8_WAIT_NEW_LEADER;
	s->fig8_deadline = s->now + SIM_FIG8_ROUND_TICKS;
	trace(s, "figure 8: leader %" PRIu64 " isolated with its new entry", n->id);
}

/*
 * Membership variant, step 2: the removal new leader b is asked for. After a promotion of
 * E at A: a voter D other than A, B and E, cut from B at once so that D never sees B's
 * term (D can then vote for A). Otherwise A itself.
 */
static uint64_t
fig8_pick_removal(struct sim *s, struct sim_node *b)
{
	struct raft_status st;

	if (s->fig8_e == 0)
		return s->fig8_a;
	raft_status(b->r, &st);
	for (uint32_t k = 0; k < st.membership.n_voters; k++) {
		uint64_t id = st.membership.voters[k];
		struct sim_node *d = node_by_id(s, id);

		if (id == s->fig8_a || id == b->id || id == s->fig8_e || d == NULL)
			continue;
		sim_net_set_link(s->net, b->slot, d->slot, false);
		sim_net_set_link(s->net, d->slot, b->slot, false);
		return id;
	}
	return s->fig8_a;
}

/* Figure 8 steps 2 and 3: n was just elected. */
static void
fig8_on_elected(struct sim *s, struct sim_node *n)
{
	struct sim_node *a = node_by_id(s, s->fig8_a);

	if (!s->prof.fig8 || s->healed)
		return;
	if (s->prof.fig8_conf) {
		if (s->fig8 != SIM_FIG8_WAIT_NEW_LEADER || n->id == s->fig8_a)
			return;
		s->fig8_b = n->id;
		s->fig8_b_changed = false;
		s->admin_remove_id = fig8_pick_removal(s, n);
		s->admin = SIM_ADMIN_CONF;
		s->admin_deadline = s->now + SIM_ADMIN_WAIT_TICKS;
		s->fig8 = SIM_FIG8_WAIT_A_COMMIT;
		s->fig8_deadline = s->now + SIM_FIG8_ROUND_TICKS;
		trace(s, "figure 8 (membership): %" PRIu64 " elected, asked for a change", n->id);
		return;
	}
	if (s->fig8 == SIM_FIG8_WAIT_NEW_LEADER && n->id != s->fig8_a && a != NULL) {
		isolate(s, n);
		s->fig8_b = n->id;
		rejoin(s, a->slot);
		sim_net_set_link(s->net, a->slot, n->slot, false);
		sim_net_set_link(s->net, n->slot, a->slot, false);
		s->fig8 = SIM_FIG8_WAIT_A_LEADS;
		s->fig8_deadline = s->now + SIM_FIG8_ROUND_TICKS;
		trace(s, "figure 8: leader %" PRIu64 " isolated at election; %" PRIu64 " rejoins",
		      n->id, a->id);
	} else if (s->fig8 == SIM_FIG8_WAIT_A_LEADS) {
		if (n->id != s->fig8_a) {
			fig8_restart(s, "a third node was elected");
			return;
		}
		s->fig8 = SIM_FIG8_WAIT_A_COMMIT;
		trace(s, "figure 8: %" PRIu64 " leads again", n->id);
	}
}

/* Figure 8 step 4: leader n's commit index just moved. */
static void
fig8_on_commit(struct sim *s, struct sim_node *n)
{
	struct sim_node *b = node_by_id(s, s->fig8_b);

	if (!s->prof.fig8 || s->healed || s->fig8 != SIM_FIG8_WAIT_A_COMMIT)
		return;
	if (s->prof.fig8_conf) {
		struct sim_node *a = node_by_id(s, s->fig8_a);

		if (n->id != s->fig8_b || !s->fig8_b_changed)
			return;
		isolate(s, n);
		if (a != NULL)
			rejoin(s, a->slot);
		sim_net_set_link(s->net, n->slot, a != NULL ? a->slot : n->slot, false);
		s->fig8 = SIM_FIG8_REST;
		s->fig8_deadline = s->now + SIM_FIG8_ROUND_TICKS / 2;
		trace(s, "figure 8 (membership): %" PRIu64 " isolated after its commit moved",
		      n->id);
		return;
	}
	if (n->id != s->fig8_a)
		return;
	isolate(s, n);
	if (b != NULL)
		rejoin(s, b->slot);
	sim_net_set_link(s->net, n->slot, b != NULL ? b->slot : n->slot, false);
	s->fig8 = SIM_FIG8_REST;
	s->fig8_deadline = s->now + SIM_FIG8_ROUND_TICKS / 2;
	trace(s, "figure 8: %" PRIu64 " isolated after its commit moved; %" PRIu64 " rejoins",
	      n->id, s->fig8_b);
}

/*
 * Membership variant, steps 1 and 2: leader n just accepted membership change cc. A
 * promotion reaches only the promoted node E (Ongaro's single-server-change bug needs A
 * and E to hold the change alone); any other change reaches a random half of the peers.
 */
static void
fig8_on_conf(struct sim *s, struct sim_node *n, const struct raft_conf_change *cc)
{
	if (!s->prof.fig8_conf || s->healed)
		return;
	if (s->fig8 == SIM_FIG8_WAIT_A_COMMIT && n->id == s->fig8_b) {
		s->fig8_b_changed = true;
		return;
	}
	if (s->fig8 != SIM_FIG8_WAIT_WRITE)
		return;
	struct sim_node *e = cc->op == RAFT_CONF_PROMOTE ? node_by_id(s, cc->node_id) : NULL;
	uint32_t cut_mask = 0;

	s->fig8_e = e != NULL ? e->id : 0;
	for (unsigned i = 0; i < s->n_slots; i++) {
		if (i == n->slot)
			continue;
		if (e != NULL ? i == e->slot : !sim_rng_chance(&s->rng, SIM_PPM / 2))
			continue;
		sim_net_set_link(s->net, n->slot, i, false);
		sim_net_set_link(s->net, i, n->slot, false);
		cut_mask |= 1u << i;
	}
	s->fig8_a = n->id;
	s->fig8 = SIM_FIG8_WAIT_NEW_LEADER;
	s->fig8_deadline = s->now + SIM_FIG8_ROUND_TICKS;
	s->fig8_isolate_tick = e != NULL ? 0 : s->now + sim_rng_range(&s->rng, 1, 4);
	trace(s, "figure 8 (membership): leader %" PRIu64 " cut from slots 0x%x after a change",
	      n->id, cut_mask);
}

static void
fig8_tick(struct sim *s)
{
	struct sim_node *a = node_by_id(s, s->fig8_a);

	if (s->prof.fig8_conf && s->fig8 == SIM_FIG8_WAIT_NEW_LEADER && a != NULL &&
	    s->fig8_isolate_tick != 0 && s->now >= s->fig8_isolate_tick) {
		s->fig8_isolate_tick = 0;
		isolate(s, a);
	}
	if (s->fig8_deadline != 0 && s->now >= s->fig8_deadline)
		fig8_restart(s, s->fig8 == SIM_FIG8_REST ? "round over" : "round timed out");
}

/* The up leader with the highest term, busy or not, or NULL. */
static struct sim_node *
leader_any(struct sim *s)
{
	struct sim_node *best = NULL;
	uint64_t best_term = 0;

	for (unsigned i = 0; i < s->n_slots; i++) {
		struct sim_node *n = &s->nodes[i];
		struct raft_status st;

		if (!n->up)
			continue;
		raft_status(n->r, &st);
		if (st.role == RAFT_LEADER && st.term >= best_term) {
			best = n;
			best_term = st.term;
		}
	}
	ASSERT(best == NULL || best->up);
	return best;
}

/* Asks a free leader for a random membership change. Returns false when none is free. */
static bool
fault_conf_change(struct sim *s)
{
	struct raft_status st;
	struct sim_node *leader = find_leader(s, &st);

	if (leader == NULL)
		return false;
	const struct raft_membership *m = &st.membership;
	struct raft_conf_change cc = {0};
	struct sim_node *added = NULL;
	if (s->admin_remove_id != 0 && raft_membership_contains(m, s->admin_remove_id) &&
	    s->admin_remove_id != leader->id) {
		cc = (struct raft_conf_change){.op = RAFT_CONF_REMOVE,
		                               .node_id = s->admin_remove_id};
		goto propose;
	}
	/* Prefer the changes that move the quorum: promotions and removals of voters. */
	uint32_t roll = (uint32_t)sim_rng_below(&s->rng, 10);
	uint32_t pick = roll < 2 ? 0 : (roll < 6 && m->n_learners > 0 ? 1 : 2);

	/* The membership Figure 8 schedule wants promotions: grow learners, promote them. */
	if (s->prof.fig8_conf && s->admin_remove_id == 0 && roll < 8)
		pick = m->n_learners > 0 ? 1 : 0;

	if (pick == 0) {
		for (unsigned i = 0; i < s->n_slots && added == NULL; i++)
			if (s->nodes[i].id == 0)
				added = &s->nodes[i];
		if (added == NULL)
			return true;
		added->incarnation++;
		added->id = (uint64_t)added->incarnation * SIM_ID_STRIDE + added->slot + 1;
		sim_storage_init(&added->st);
		cc = (struct raft_conf_change){.op = RAFT_CONF_ADD_LEARNER, .node_id = added->id};
	} else if (pick == 1) {
		if (m->n_learners == 0)
			return true;
		cc.op = RAFT_CONF_PROMOTE;
		cc.node_id = m->learners[sim_rng_below(&s->rng, m->n_learners)];
	} else {
		uint32_t total = m->n_voters + m->n_learners;
		uint32_t k = (uint32_t)sim_rng_below(&s->rng, total);

		cc.op = RAFT_CONF_REMOVE;
		cc.node_id = k < m->n_voters ? m->voters[k] : m->learners[k - m->n_voters];
		if (k < m->n_voters && m->n_voters <= SIM_VOTERS_FLOOR)
			return true;
	}
propose:;
	struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE, .conf = {.change = cc}};
	int rc = step(s, leader, &ev);

	if (rc == 0)
		s->admin_remove_id = 0;
	trace(s, "conf change op %u node %" PRIu64 " at leader %" PRIu64 ": %s", cc.op, cc.node_id,
	      leader->id, sp_strerror(rc));
	if (rc == 0) {
		s->res->conf_changes++;
		strike_schedule(s, leader);
		fig8_on_conf(s, leader, &cc);
	}
	bool busy = rc == -SP_EBUSY;
	if (added != NULL) {
		if (rc == 0) {
			(void)node_boot(s, added);
		} else {
			sim_storage_fini(&added->st);
			added->id = 0;
			added->incarnation--; /* the id was never used */
		}
	}
	node_observe(s, leader);
	node_pump(s, leader);
	return !busy; /* refused for now: try again next tick, until the deadline */
}

/* Asks a free leader to hand over to a random voter. Returns false when none is free. */
static bool
fault_transfer(struct sim *s)
{
	struct raft_status st;
	struct sim_node *leader = find_leader(s, &st);

	if (leader == NULL)
		return false;
	if (st.membership.n_voters < 2)
		return true;
	uint64_t target = st.membership.voters[sim_rng_below(&s->rng, st.membership.n_voters)];
	struct raft_event ev = {.type = RAFT_EV_TRANSFER, .transfer = {.target = target}};
	int rc = step(s, leader, &ev);

	trace(s, "transfer leadership %" PRIu64 " -> %" PRIu64 ": %s", leader->id, target,
	      sp_strerror(rc));
	if (rc == 0)
		s->res->transfers++;
	node_observe(s, leader);
	node_pump(s, leader);
	return true;
}

/* Runs the waiting leader request once a leader is free; drops it at its deadline. */
static void
admin_tick(struct sim *s)
{
	bool done;

	if (s->admin == SIM_ADMIN_NONE)
		return;
	done = s->admin == SIM_ADMIN_CONF ? fault_conf_change(s) : fault_transfer(s);
	if (done || s->now >= s->admin_deadline)
		s->admin = SIM_ADMIN_NONE;
}

static struct sim_node *
random_node(struct sim *s, bool want_up)
{
	unsigned start = (unsigned)sim_rng_below(&s->rng, s->n_slots);

	for (unsigned k = 0; k < s->n_slots; k++) {
		struct sim_node *n = &s->nodes[(start + k) % s->n_slots];

		if (n->id != 0 && n->up == want_up)
			return n;
	}
	return NULL;
}

/* Changes the network's fault rates for a while: a burst of loss and delay, or calm. */
static void
fault_net_rates(struct sim *s)
{
	struct sim_net_faults f = s->prof.net;

	/* Bursts: sometimes much worse than the profile, sometimes clean. */
	switch (sim_rng_below(&s->rng, 3)) {
	case 0:
		f.drop_ppm =
		        (uint32_t)SP_MIN((uint64_t)SIM_PPM / 2, (uint64_t)f.drop_ppm * 4 + 20000);
		f.delay_ticks_max = SP_MIN(f.delay_ticks_max * 2, SIM_NET_DELAY_TICKS_MAX);
		break;
	case 1:
		f = (struct sim_net_faults){.delay_ticks_min = 1, .delay_ticks_max = 1};
		break;
	default:
		break;
	}
	VERIFY(sim_net_set_faults(s->net, &f) == 0);
	trace(s, "network: drop %u dup %u reorder %u ppm, delay %u..%u", f.drop_ppm, f.dup_ppm,
	      f.reorder_ppm, f.delay_ticks_min, f.delay_ticks_max);
}

/* One scheduler action, drawn by the profile's weights. */
static void
fault_step(struct sim *s)
{
	const struct sim_profile *p = &s->prof;
	uint32_t w[] = {p->crash_weight, p->partition_weight, p->link_weight,    p->heal_weight,
	                p->conf_weight,  p->transfer_weight,  p->netfault_weight};
	uint32_t total = 0;

	for (unsigned i = 0; i < SP_ARRAY_SIZE(w); i++)
		total += w[i];
	VERIFY(total > 0);
	uint32_t r = (uint32_t)sim_rng_below(&s->rng, total);
	unsigned action = 0;

	while (r >= w[action]) {
		r -= w[action];
		action++;
	}
	switch (action) {
	case 0: {
		struct sim_node *n = random_node(s, true);

		if (n != NULL)
			node_crash(s, n, "scheduled");
		break;
	}
	case 1: {
		struct sim_node *leader = leader_any(s);

		if (leader != NULL && sim_rng_chance(&s->rng, SIM_PPM / 2)) {
			isolate(s, leader);
			break;
		}
		uint32_t mask = (uint32_t)sim_rng_range(&s->rng, 1, (1u << s->n_slots) - 2);

		sim_net_partition(s->net, mask);
		trace(s, "partition: group 0x%x against the rest", mask);
		break;
	}
	case 2: {
		unsigned a = (unsigned)sim_rng_below(&s->rng, s->n_slots);
		unsigned b = (unsigned)sim_rng_below(&s->rng, s->n_slots);
		bool both = sim_rng_chance(&s->rng, SIM_PPM / 2);

		if (a == b)
			break;
		sim_net_set_link(s->net, a, b, false);
		if (both)
			sim_net_set_link(s->net, b, a, false);
		trace(s, "cut link %u %s %u", a, both ? "<->" : "->", b);
		break;
	}
	case 3:
		if (sim_rng_chance(&s->rng, SIM_PPM / 2)) {
			sim_net_heal(s->net);
			trace(s, "network healed");
		} else {
			/* One node rejoins everyone; other cuts stay. */
			unsigned a = (unsigned)sim_rng_below(&s->rng, s->n_slots);

			for (unsigned i = 0; i < s->n_slots; i++) {
				sim_net_set_link(s->net, a, i, true);
				sim_net_set_link(s->net, i, a, true);
			}
			trace(s, "links of slot %u healed", a);
		}
		break;
	case 4:
		s->admin = SIM_ADMIN_CONF;
		s->admin_deadline = s->now + SIM_ADMIN_WAIT_TICKS;
		break;
	case 5:
		s->admin = SIM_ADMIN_TRANSFER;
		s->admin_deadline = s->now + SIM_ADMIN_WAIT_TICKS;
		break;
	default:
		fault_net_rates(s);
		break;
	}
}

/*
 * What a leader that just accepted a write must be true of: it is not transferring its
 * leadership (proposals wait until the transfer ends), and it holds at most
 * max_uncommitted_bytes of uncommitted entries (each costs its length + 32; a new leader
 * may inherit more, but then it accepts nothing until it is back under the bound).
 */
static void
check_accepted_write(struct sim *s, struct sim_node *n)
{
	struct raft_status st;

	raft_status(n->r, &st);
	s->ck.checks++;
	if (st.role == RAFT_LEADER && st.transfer_target != 0)
		sim_check_fail(&s->ck, "transfer contract",
		               "leader %" PRIu64 " accepted a write while it transfers to %" PRIu64,
		               n->id, st.transfer_target);
	if (st.role == RAFT_LEADER && st.uncommitted_bytes > s->prof.max_uncommitted_bytes)
		sim_check_fail(&s->ck, "uncommitted bound",
		               "leader %" PRIu64 " accepted a write with %" PRIu64
		               " uncommitted bytes, over max_uncommitted_bytes %" PRIu64,
		               n->id, st.uncommitted_bytes, s->prof.max_uncommitted_bytes);
}

/* Starts client ci's next operation at the node it believes leads (or any up node). */
static void
client_start(struct sim *s, struct sim_client *c, unsigned ci)
{
	struct sim_node *n = NULL;

	if (c->leader_hint != 0 && sim_rng_chance(&s->rng, SIM_PPM * 9 / 10)) {
		n = &s->nodes[c->leader_hint - 1];
		if (n->up && n->busy)
			return; /* wait for the leader it believes in */
	}
	if (n == NULL || !n->up || n->busy || n->id == 0) {
		n = random_node(s, true);
		if (n == NULL || n->busy)
			return;
	}
	c->kind = sim_rng_chance(&s->rng, SIM_PPM * 6 / 10) ? SIM_OP_WRITE : SIM_OP_READ;
	c->op_id = ++s->op_next;
	c->target = n->slot;
	c->target_id = n->id;
	c->start_tick = s->now;
	c->floor = sim_check_floor(&s->ck);
	int rc;

	if (c->kind == SIM_OP_WRITE) {
		uint64_t cmd[3] = {SIM_CMD_MAGIC, ci, c->op_id};
		struct raft_entry e = {
		        .type = RAFT_ENTRY_NORMAL, .len = SIM_CMD_BYTES, .data = cmd};
		struct raft_event ev = {.type = RAFT_EV_PROPOSE,
		                        .propose = {.entries = &e, .n_entries = 1}};

		rc = step(s, n, &ev);
	} else {
		struct raft_event ev = {.type = RAFT_EV_READ_INDEX, .read = {.ctx = c->op_id}};

		rc = step(s, n, &ev);
	}
	trace(s, "client %u %s op %" PRIu64 " at node %" PRIu64 " (floor %" PRIu64 "): %s", ci,
	      c->kind == SIM_OP_WRITE ? "write" : "read", c->op_id, n->id, c->floor,
	      sp_strerror(rc));
	if (rc != 0) {
		struct raft_status st;

		raft_status(n->r, &st);
		struct sim_node *hint = node_by_id(s, st.leader_id);

		c->leader_hint = hint != NULL ? hint->slot + 1 : 0;
		client_abort(s, c, sp_strerror(rc));
	} else {
		c->leader_hint = n->slot + 1;
		if (c->kind == SIM_OP_WRITE)
			check_accepted_write(s, n);
		if (c->kind == SIM_OP_WRITE && !s->healed && !s->prof.fig8 &&
		    sim_rng_chance(&s->rng, s->prof.isolate_ppm))
			isolate(s, n);
		if (c->kind == SIM_OP_WRITE && n->last_role == RAFT_LEADER)
			fig8_on_write(s, n);
	}
	node_observe(s, n);
	node_pump(s, n);
}

/* Times out stale operations and starts new ones. */
static void
clients_tick(struct sim *s)
{
	for (unsigned i = 0; i < SIM_CLIENTS && ok(s); i++) {
		struct sim_client *c = &s->clients[i];

		if (c->kind != SIM_OP_NONE && s->now - c->start_tick > SIM_CLIENT_TIMEOUT_TICKS)
			client_abort(s, c, "timeout");
		if (c->kind == SIM_OP_NONE && s->now >= c->next_tick)
			client_start(s, c, i);
	}
}

/* Sometimes snapshots node n at its applied index and compacts the core and storage. */
static void
maybe_compact(struct sim *s, struct sim_node *n)
{
	if (n->sm_index < n->st.snap.index + SIM_COMPACT_MIN_ENTRIES)
		return;
	if (!sim_rng_chance(&s->rng, s->prof.compact_ppm))
		return;
	uint8_t data[SIM_SNAPSHOT_DATA_BYTES];

	sim_snapshot_data_encode(n->sm_index, n->sm_chain, data);
	struct raft_event ev = {
	        .type = RAFT_EV_COMPACT,
	        .compact = {.index = n->sm_index, .data = data, .len = sizeof(data)}};
	int rc = step(s, n, &ev);

	if (rc != 0) {
		sim_check_fail(&s->ck, "core error",
		               "node %" PRIu64 " refuses to compact at applied index %" PRIu64
		               ": %s",
		               n->id, n->sm_index, sp_strerror(rc));
		return;
	}
	VERIFY(sim_storage_compact(&n->st, n->sm_index, &n->sm_membership) == 0);
	s->res->compactions++;
	trace(s, "node %" PRIu64 " compacts at %" PRIu64, n->id, n->sm_index);
	node_pump(s, n);
}

/* Ends the chaos phase: all links up, faults off, every crashed node restarts now. */
static void
heal_all(struct sim *s)
{
	struct sim_net_faults clean = {.delay_ticks_min = 1, .delay_ticks_max = 2};

	s->healed = true;
	s->heal_tick = s->now;
	sim_net_heal(s->net);
	VERIFY(sim_net_set_faults(s->net, &clean) == 0);
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct sim_node *n = &s->nodes[i];

		if (n->id != 0 && !n->up)
			n->restart_tick = s->now;
	}
	trace(s, "heal: all links up, all nodes restarting, faults off");
}

/*
 * The strike: the leader loses its links to a random subset of the others (both ways),
 * so what it just appended reaches only some of them; or it crashes outright.
 */
static void
strike(struct sim *s)
{
	struct sim_node *n = node_by_id(s, s->strike_id);

	s->strike_tick = 0;
	if (n == NULL || !n->up)
		return;
	if (sim_rng_chance(&s->rng, SIM_PPM / 3)) {
		node_crash(s, n, "strike");
		return;
	}
	uint32_t cut_mask = 0;

	for (unsigned i = 0; i < s->n_slots; i++) {
		if (i == n->slot || !sim_rng_chance(&s->rng, SIM_PPM / 2))
			continue;
		sim_net_set_link(s->net, n->slot, i, false);
		sim_net_set_link(s->net, i, n->slot, false);
		cut_mask |= 1u << i;
	}
	trace(s, "strike: leader %" PRIu64 " cut from slots 0x%x", n->id, cut_mask);
}

/* One tick of the whole cluster. */
static void
tick(struct sim *s)
{
	bool chaos = !s->healed && !s->prof.fig8;

	if (!s->healed && s->prof.fig8)
		fig8_tick(s);
	if (chaos && s->strike_tick != 0 && s->now >= s->strike_tick)
		strike(s);
	if (chaos && sim_rng_chance(&s->rng, s->prof.fault_ppm))
		fault_step(s);
	/* Crash a node in the middle of persisting: the ready must be lost without harm. */
	if (chaos && sim_rng_chance(&s->rng, s->prof.crash_busy_ppm)) {
		for (unsigned i = 0; i < s->n_slots; i++)
			if (s->nodes[i].up && s->nodes[i].busy) {
				node_crash(s, &s->nodes[i], "while persisting");
				break;
			}
	}
	for (unsigned i = 0; i < s->n_slots && ok(s); i++) {
		struct sim_node *n = &s->nodes[i];

		if (n->id != 0 && !n->up && s->now >= n->restart_tick) {
			trace(s,
			      "restart node %" PRIu64 " (term %" PRIu64 " vote %" PRIu64
			      ", %" PRIu64 " durable entries after snapshot %" PRIu64 ")",
			      n->id, n->st.hs.term, n->st.hs.vote, (uint64_t)n->st.n,
			      n->st.snap.index);
			(void)node_boot(s, n);
		}
	}
	for (unsigned i = 0; i < s->n_slots && ok(s); i++) {
		struct sim_node *n = &s->nodes[i];

		if (!n->up)
			continue;
		if (n->busy && s->now >= n->persist_done_tick) {
			node_persist_done(s, n);
			drain_inbox(s, n);
			node_pump(s, n);
		}
		if (!n->up || n->busy || !ok(s))
			continue;
		struct raft_event ev = {.type = RAFT_EV_TICK};

		(void)step(s, n, &ev);
		node_observe(s, n);
		node_pump(s, n);
		if (n->up && !n->busy && ok(s))
			maybe_compact(s, n);
	}
	struct sim_net_msg m;

	while (ok(s) && sim_net_pop(s->net, s->now, &m))
		on_message(s, &m);
	if (!s->healed && (!s->prof.fig8 || s->prof.fig8_conf) && s->admin == SIM_ADMIN_NONE &&
	    sim_rng_chance(&s->rng, s->prof.conf_ppm)) {
		s->admin = SIM_ADMIN_CONF;
		s->admin_deadline = s->now + SIM_ADMIN_WAIT_TICKS;
	}
	if (ok(s) && !s->healed)
		admin_tick(s);
	if (ok(s))
		clients_tick(s);
	for (unsigned i = 0; i < s->n_slots; i++)
		if (s->nodes[i].id != 0 && s->nodes[i].retire)
			node_retire(s, &s->nodes[i]);
}

/* Draws the seed's profile; the first draws of every run, so a seed fixes it. */
static void
profile_draw(struct sim *s)
{
	struct sim_profile *p = &s->prof;
	static const uint32_t drops[] = {0, 10000, 50000, 200000};
	static const uint32_t delays[] = {1, 2, 4, 8};

	p->net.drop_ppm = drops[sim_rng_below(&s->rng, SP_ARRAY_SIZE(drops))];
	p->net.dup_ppm = (uint32_t)sim_rng_below(&s->rng, 50000);
	p->net.reorder_ppm = (uint32_t)sim_rng_below(&s->rng, 300000);
	p->net.delay_ticks_min = 1;
	p->net.delay_ticks_max = delays[sim_rng_below(&s->rng, SP_ARRAY_SIZE(delays))];
	p->fault_ppm = (uint32_t)sim_rng_range(&s->rng, 10000, 80000);
	p->crash_weight = (uint32_t)sim_rng_range(&s->rng, 1, 6);
	p->partition_weight = (uint32_t)sim_rng_range(&s->rng, 0, 4);
	p->link_weight = (uint32_t)sim_rng_range(&s->rng, 0, 4);
	p->heal_weight = (uint32_t)sim_rng_range(&s->rng, 2, 8);
	p->conf_weight = (uint32_t)sim_rng_range(&s->rng, 0, 6);
	p->transfer_weight = (uint32_t)sim_rng_range(&s->rng, 0, 6);
	p->netfault_weight = (uint32_t)sim_rng_range(&s->rng, 0, 3);
	p->compact_ppm = (uint32_t)sim_rng_range(&s->rng, 0, 50000);
	p->conf_ppm = (uint32_t)sim_rng_range(&s->rng, 0, 50000);
	p->corrupt_ppm = (uint32_t)sim_rng_below(&s->rng, 2000);
	p->crash_busy_ppm = (uint32_t)sim_rng_range(&s->rng, 0, 20000);
	p->client_gap_ticks = (uint32_t)sim_rng_range(&s->rng, 1, 10);
	p->persist_slow_ppm = (uint32_t)sim_rng_below(&s->rng, SIM_PPM / 2);
	p->persist_delay_max = (uint32_t)sim_rng_range(&s->rng, 1, SIM_PERSIST_DELAY_TICKS_MAX);
	static const uint32_t strikes[] = {0, SIM_PPM / 4, SIM_PPM * 3 / 4, SIM_PPM};

	p->strike_ppm = strikes[sim_rng_below(&s->rng, SP_ARRAY_SIZE(strikes))];
	p->election_conf_ppm = strikes[sim_rng_below(&s->rng, SP_ARRAY_SIZE(strikes))];
	p->commit_strike_ppm = (uint32_t)sim_rng_below(&s->rng, SIM_PPM / 10);
	p->isolate_ppm = (uint32_t)sim_rng_below(&s->rng, SIM_PPM / 10);
	p->fig8 = sim_rng_chance(&s->rng, SIM_PPM / 3);
	p->fig8_conf = p->fig8 && sim_rng_chance(&s->rng, SIM_PPM / 2);
	if (p->fig8_conf)
		p->conf_ppm = SP_MAX(p->conf_ppm, SIM_PPM / 20);
	static const uint64_t sizes[] = {1, 64, 1u << 20};
	static const uint32_t windows[] = {1, 4, 64};

	p->max_size_per_msg = sizes[sim_rng_below(&s->rng, SP_ARRAY_SIZE(sizes))];
	p->max_inflight_msgs = windows[sim_rng_below(&s->rng, SP_ARRAY_SIZE(windows))];
	p->pre_vote = sim_rng_chance(&s->rng, SIM_PPM * 3 / 4);
	/* Drawn last, so that the draws above keep their meaning. */
	static const uint32_t late_dups[] = {0, 2000, 20000, 100000};
	static const uint64_t budgets[] = {8u << 20, 8u << 20, 4096, 100};

	p->net.late_dup_ppm = late_dups[sim_rng_below(&s->rng, SP_ARRAY_SIZE(late_dups))];
	p->check_quorum = sim_rng_chance(&s->rng, SIM_PPM * 3 / 4);
	p->max_uncommitted_bytes = budgets[sim_rng_below(&s->rng, SP_ARRAY_SIZE(budgets))];
}

/* Frees a run, whatever state it stopped in. */
static void
sim_free(struct sim *s)
{
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct sim_node *n = &s->nodes[i];

		for (uint32_t k = 0; k < n->inbox_len; k++)
			free(n->inbox[k]);
		raft_destroy(n->r);
		sim_storage_fini(&n->st);
	}
	if (s->net != NULL) {
		sim_net_fini(s->net);
		free(s->net);
	}
	sim_check_fini(&s->ck);
	free(s);
}

int
sim_run(const struct sim_opts *opts, struct sim_result *res)
{
	if (opts->nodes < SIM_VOTERS_MIN || opts->nodes > SIM_VOTERS_MAX)
		return -EINVAL;
	if (opts->steps == 0 || opts->steps > SIM_STEPS_MAX)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	struct sim *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->o = *opts;
	s->res = res;
	s->net = malloc(sizeof(*s->net));
	struct sim_net_hooks hooks = {.clone = payload_clone, .release = payload_release};

	s->n_slots = opts->nodes + SIM_SPARE_NODES;
	if (s->net == NULL || sim_net_init(s->net, s->n_slots, &hooks) != 0 ||
	    sim_check_init(&s->ck) != 0) {
		sim_free(s);
		return -ENOMEM;
	}
	sim_rng_seed(&s->rng, opts->seed);
	profile_draw(s);
	VERIFY(sim_net_set_faults(s->net, &s->prof.net) == 0);
	for (unsigned i = 0; i < opts->nodes; i++)
		s->bootstrap.voters[s->bootstrap.n_voters++] = i + 1;
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct sim_node *n = &s->nodes[i];

		n->slot = i;
		sim_storage_init(&n->st);
		sim_net_set_node(s->net, i, false);
	}
	for (unsigned i = 0; i < opts->nodes && ok(s); i++) {
		s->nodes[i].id = i + 1;
		(void)node_boot(s, &s->nodes[i]);
	}
	uint64_t end = opts->steps + SIM_LIVENESS_TICKS;

	for (s->now = 1; s->now <= end && ok(s); s->now++) {
		s->ck.now_tick = s->now;
		if (s->now == opts->steps)
			heal_all(s);
		tick(s);
		if (s->healed && (s->acked_after_heal > 0 || opts->no_liveness))
			break;
	}
	res->ticks = SP_MIN(s->now, end);
	if (ok(s) && s->acked_after_heal == 0 && !opts->no_liveness) {
		struct raft_status st;
		struct sim_node *leader = find_leader(s, &st);

		sim_check_fail(&s->ck, "liveness",
		               "%u ticks after every fault healed: %s, no write acknowledged",
		               SIM_LIVENESS_TICKS, leader != NULL ? "a leader" : "no leader");
	}
	res->violated = s->ck.violated;
	if (s->ck.violated) {
		snprintf(res->property, sizeof(res->property), "%s", s->ck.property);
		snprintf(res->detail, sizeof(res->detail), "%s", s->ck.detail);
		res->violation_tick = s->ck.violation_tick;
	}
	res->checks = s->ck.checks;
	sim_free(s);
	return 0;
}
