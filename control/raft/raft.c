/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Raft core: elections (pre-vote, check-quorum), replication with per-follower flow
 * control, commitment, single-server membership changes, leadership transfer, ReadIndex,
 * snapshots, and the ready/advance output model. See raft.h for the contract and
 * docs/raft.md for the design.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "control/raft/raft.h"
#include "control/raft/raft_log.h"

#define LOG_MOD "raft"

/* Bound on max_inflight_msgs: the per-follower ring of in-flight append messages. */
#define RAFT_INFLIGHT_MAX 256
/* Bytes charged per entry against max_uncommitted_bytes, beyond its payload. */
#define RAFT_ENTRY_OVERHEAD_BYTES 32
/* A follower in snapshot state goes back to probing after this many election timeouts. */
#define RAFT_SNAPSHOT_TIMEOUT_ELECTIONS 2
/* ctx of a RAFT_MSG_VOTE sent because of a leadership transfer: bypasses leader leases. */
#define RAFT_VOTE_CTX_TRANSFER 1

/* Leader's view of one member. */
struct progress {
	uint64_t id;
	bool voter;
	uint32_t state; /* enum raft_progress_state */
	uint64_t match;
	uint64_t next;
	bool probe_sent;    /* probe state: one append outstanding, wait for an answer */
	bool recent_active; /* heard from since the last check-quorum round */
	uint64_t pending_snapshot;
	uint32_t snapshot_elapsed;
	uint64_t read_ack_round;              /* highest heartbeat ctx it answered */
	uint64_t inflight[RAFT_INFLIGHT_MAX]; /* last index of each append in flight, a ring */
	uint32_t in_start;
	uint32_t in_count;
};

enum read_state {
	READ_WAIT_COMMIT = 0, /* leader has not committed an entry of its term yet */
	READ_WAIT_ACK,        /* heartbeat round sent, waiting for a quorum */
	READ_DONE,            /* reported in the next ready */
};

struct pending_read {
	uint64_t ctx;
	uint64_t index;
	uint64_t round;
	uint32_t state;
	int status;
};

/* One queued outgoing message. Append entries are attached at ready time. */
struct outmsg {
	struct raft_msg m;
	bool after_persist;
	void *owned; /* entries + payload copies of a forwarded proposal */
};

struct raft {
	struct raft_config cfg;
	uint64_t id;
	uint64_t term;
	uint64_t vote;
	uint64_t leader;
	uint32_t role;

	struct raft_log log;
	uint64_t commit;
	uint64_t applied;
	uint64_t stable_index; /* the log is durable up to here */

	/* Latest snapshot (compacted locally or received); data owned. */
	struct raft_snapshot snap;
	bool snap_pending; /* received from the leader, not yet handed to the driver */

	struct raft_membership conf;      /* latest in the log */
	uint64_t conf_index;              /* index of the latest conf entry, 0: base_conf */
	struct raft_membership base_conf; /* membership as of log.snap_index */

	uint32_t election_elapsed;
	uint32_t heartbeat_elapsed;
	uint32_t randomized_timeout;
	uint64_t rng;

	/* Votes of the current election: ids and answers. */
	uint64_t vote_ids[RAFT_NODES_MAX];
	bool vote_granted[RAFT_NODES_MAX];
	uint32_t n_votes;

	/* Leader state. */
	struct progress *prs; /* RAFT_NODES_MAX slots */
	uint32_t n_prs;
	uint64_t uncommitted_bytes;
	uint64_t transfer_target;
	uint32_t transfer_elapsed;
	bool bcast_pending;
	uint64_t read_round;
	struct pending_read *reads; /* RAFT_READS_PENDING_MAX slots */
	uint32_t n_reads;

	/* Output. */
	struct outmsg *outbox; /* RAFT_READY_MSGS_MAX slots */
	uint32_t n_out;
	struct raft_hard_state persisted_hs;
	struct raft_soft_state reported_ss;

	/* The ready handed out and not yet advanced. */
	bool in_ready;
	struct raft_msg *rd_msgs;   /* RAFT_READY_MSGS_MAX slots, both lists */
	struct raft_read *rd_reads; /* RAFT_READS_PENDING_MAX slots */
	struct raft_hard_state rd_hs;
	struct raft_soft_state rd_ss;
	uint64_t rd_last_index;
	uint64_t rd_applied;

	struct raft_counters counters;
};

/* ---- small helpers ---- */

static uint64_t
rng_next(struct raft *r)
{
	/* splitmix64: small, seedable, good enough for timeouts. */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void
reset_randomized_timeout(struct raft *r)
{
	r->randomized_timeout =
	        r->cfg.election_tick + (uint32_t)(rng_next(r) % r->cfg.election_tick);
	ASSERT(r->randomized_timeout >= r->cfg.election_tick);
	ASSERT(r->randomized_timeout < 2 * r->cfg.election_tick);
}

static uint64_t
last_index(const struct raft *r)
{
	return raft_log_last_index(&r->log);
}

static uint64_t
last_term(const struct raft *r)
{
	return raft_log_last_term(&r->log);
}

/* Term at index, 0 when unknown (compacted or beyond the end). */
static uint64_t
term_at(const struct raft *r, uint64_t index)
{
	uint64_t t = 0;

	if (!raft_log_term(&r->log, index, &t))
		return 0;
	return t;
}

static uint32_t
quorum(const struct raft *r)
{
	return r->conf.n_voters / 2 + 1;
}

static void conf_at(const struct raft *r, uint64_t index, struct raft_membership *out,
                    uint64_t *conf_index);

/*
 * May this node campaign? Voters may. So may a node whose removal is still uncommitted in
 * its log and that was a voter before it: it can be the only node holding that entry (a
 * leader that removed itself and crashed), and the remaining voters cannot elect anyone
 * without its log. Its election counts only the votes of the new voters.
 */
static bool
promotable(const struct raft *r)
{
	struct raft_membership prev;
	uint64_t ci;

	if (raft_membership_is_voter(&r->conf, r->id))
		return true;
	if (r->conf_index <= r->commit || r->conf_index == 0)
		return false;
	conf_at(r, r->conf_index - 1, &prev, &ci);
	return raft_membership_is_voter(&prev, r->id);
}

static bool
committed_own_term(const struct raft *r)
{
	return term_at(r, r->commit) == r->term;
}

static struct progress *
progress_find(struct raft *r, uint64_t id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static uint64_t
entry_cost(const struct raft_entry *e)
{
	return (uint64_t)e->len + RAFT_ENTRY_OVERHEAD_BYTES;
}

/* Sum of what the uncommitted suffix of the log costs against max_uncommitted_bytes. */
static uint64_t
uncommitted_cost(const struct raft *r)
{
	uint64_t sum = 0;

	for (uint64_t i = r->commit + 1; i <= last_index(r); i++) {
		const struct raft_entry *e = raft_log_get(&r->log, i);

		if (e != NULL)
			sum += entry_cost(e);
	}
	return sum;
}

/* ---- membership ---- */

/* Applies a conf entry's change to m, ignoring (and logging) changes that do not apply. */
static void
conf_apply_entry(const struct raft *r, struct raft_membership *m, const struct raft_entry *e)
{
	struct raft_conf_change cc;

	ASSERT(e->type == RAFT_ENTRY_CONF);
	if (raft_conf_change_decode(e->data, e->len, &cc) < 0 || raft_membership_apply(m, &cc) < 0)
		SP_LOG_WARN(LOG_MOD,
		            "node=%" PRIu64 " conf entry %" PRIu64 " does not apply; ignored",
		            r->id, e->index);
}

/* Membership as of index (>= snap index): the base plus every conf entry up to index. */
static void
conf_at(const struct raft *r, uint64_t index, struct raft_membership *out, uint64_t *conf_index)
{
	ASSERT(index >= r->log.snap_index);
	*out = r->base_conf;
	*conf_index = 0;
	for (size_t i = 0; i < r->log.n && r->log.ents[i].index <= index; i++) {
		if (r->log.ents[i].type != RAFT_ENTRY_CONF)
			continue;
		conf_apply_entry(r, out, &r->log.ents[i]);
		*conf_index = r->log.ents[i].index;
	}
}

/* Makes the progress table match the membership (leader only). */
static void
progress_sync(struct raft *r)
{
	uint32_t w = 0;

	ASSERT(r->conf.n_voters + r->conf.n_learners <= RAFT_NODES_MAX);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];

		if (!raft_membership_contains(&r->conf, pr->id))
			continue;
		pr->voter = raft_membership_is_voter(&r->conf, pr->id);
		if (w != i)
			r->prs[w] = *pr;
		w++;
	}
	r->n_prs = w;
	for (uint32_t k = 0; k < r->conf.n_voters + r->conf.n_learners; k++) {
		uint64_t id = k < r->conf.n_voters ? r->conf.voters[k]
		                                   : r->conf.learners[k - r->conf.n_voters];
		struct progress *pr;

		if (progress_find(r, id) != NULL)
			continue;
		VERIFY(r->n_prs < RAFT_NODES_MAX);
		pr = &r->prs[r->n_prs++];
		memset(pr, 0, sizeof(*pr));
		pr->id = id;
		pr->voter = raft_membership_is_voter(&r->conf, id);
		pr->state = RAFT_PROGRESS_PROBE;
		pr->next = last_index(r) + 1;
		pr->recent_active = true;
	}
	ASSERT(r->n_prs == r->conf.n_voters + r->conf.n_learners);
}

/* Recomputes the membership after the log's tail changed. */
static void
conf_reload(struct raft *r)
{
	conf_at(r, last_index(r), &r->conf, &r->conf_index);
	if (r->role == RAFT_LEADER)
		progress_sync(r);
}

/* ---- output ---- */

/*
 * Queues m (from and, unless a vote type set it, term filled in). Messages from a non-leader
 * wait for the ready's persistence. Over RAFT_READY_MSGS_MAX the message is dropped and
 * counted; Raft tolerates lost messages.
 */
static struct outmsg *
outbox_push(struct raft *r, struct raft_msg *m)
{
	struct outmsg *o;

	ASSERT(m->to != 0);
	ASSERT(m->to != r->id);
	if (r->n_out >= RAFT_READY_MSGS_MAX) {
		r->counters.msgs_dropped_ready_full++;
		return NULL;
	}
	m->from = r->id;
	if (m->type != RAFT_MSG_PRE_VOTE && m->type != RAFT_MSG_PRE_VOTE_RESP)
		m->term = r->term;
	ASSERT(m->term > 0);
	o = &r->outbox[r->n_out++];
	o->m = *m;
	o->owned = NULL;
	o->after_persist = r->role != RAFT_LEADER;
#ifdef RAFT_BUG_VOTE_NOT_PERSISTED
	if (m->type == RAFT_MSG_VOTE_RESP)
		o->after_persist = false;
#endif
	return o;
}

/*
 * Drops queued messages that refer to entries or a snapshot no longer held. After a log
 * truncation (all_appends) every queued append goes: its entries may have changed.
 */
static void
outbox_purge(struct raft *r, bool all_appends)
{
	uint32_t w = 0;

	for (uint32_t i = 0; i < r->n_out; i++) {
		struct outmsg *o = &r->outbox[i];
		bool keep = true;

		if (o->m.type == RAFT_MSG_APPEND) {
			if (all_appends || o->m.index < r->log.snap_index ||
			    o->m.index + o->m.n_entries > last_index(r) ||
			    term_at(r, o->m.index) != o->m.log_term)
				keep = false;
		} else if (o->m.type == RAFT_MSG_SNAPSHOT) {
			keep = o->m.snapshot.meta.index == r->snap.meta.index;
		}
		if (!keep) {
			free(o->owned);
			continue;
		}
		if (w != i)
			r->outbox[w] = *o;
		w++;
	}
	r->n_out = w;
}

/* ---- reads ---- */

/* Fails every unfinished read (leadership lost); they are reported in the next ready. */
static void
reads_fail_all(struct raft *r)
{
	ASSERT(r->n_reads <= RAFT_READS_PENDING_MAX);
	for (uint32_t i = 0; i < r->n_reads; i++) {
		if (r->reads[i].state == READ_DONE)
			continue;
		r->reads[i].state = READ_DONE;
		r->reads[i].status = -SP_ENOTLEADER;
		r->counters.reads_dropped++;
	}
}

static void bcast_heartbeat(struct raft *r, uint64_t ctx);

/* Completes reads whose heartbeat round a quorum of voters answered. */
static void
reads_check(struct raft *r)
{
	ASSERT(r->role == RAFT_LEADER);
	for (uint32_t i = 0; i < r->n_reads; i++) {
		struct pending_read *rd = &r->reads[i];
		uint32_t acks = 0;

		if (rd->state != READ_WAIT_ACK)
			continue;
		for (uint32_t k = 0; k < r->n_prs; k++) {
			const struct progress *pr = &r->prs[k];

			if (!pr->voter)
				continue;
#ifdef RAFT_BUG_READ_STALE_ACK
			if (pr->id == r->id || pr->read_ack_round + 1 >= rd->round)
				acks++; /* an answer to the round before counts too */
#else
			if (pr->id == r->id || pr->read_ack_round >= rd->round)
				acks++;
#endif
		}
		if (acks >= quorum(r)) {
			rd->state = READ_DONE;
			rd->status = 0;
		}
	}
}

/*
 * Starts every read waiting for the own-term commit: they read at the current commit
 * index, confirmed by one heartbeat round.
 */
static void
reads_start(struct raft *r)
{
	bool any = false;

	ASSERT(r->role == RAFT_LEADER);
#ifndef RAFT_BUG_EARLY_READINDEX
	if (!committed_own_term(r))
		return;
#endif
	for (uint32_t i = 0; i < r->n_reads; i++) {
		struct pending_read *rd = &r->reads[i];

		if (rd->state != READ_WAIT_COMMIT)
			continue;
		if (!any)
			r->read_round++;
		any = true;
		rd->index = r->commit;
		rd->round = r->read_round;
		rd->state = READ_WAIT_ACK;
	}
	if (!any)
		return;
	reads_check(r);
	bcast_heartbeat(r, r->read_round);
}

/* ---- role changes ---- */

/* State reset shared by every role change; moving to a new term clears the vote. */
static void
reset_common(struct raft *r, uint64_t term)
{
	if (r->term != term) {
		ASSERT(term > r->term);
		r->term = term;
		r->vote = 0;
	}
	r->leader = 0;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_randomized_timeout(r);
	r->transfer_target = 0;
	r->transfer_elapsed = 0;
	r->bcast_pending = false;
	r->n_votes = 0;
	r->uncommitted_bytes = 0;
	reads_fail_all(r);
}

/* Becomes a follower of leader (0: unknown) in term; drops leader-only state. */
static void
become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
	ASSERT(term >= r->term);
	reset_common(r, term);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	r->n_prs = 0;
}

/* Starts a pre-vote round: neither term nor vote changes. */
static void
become_pre_candidate(struct raft *r)
{
	ASSERT(r->role != RAFT_LEADER);
	ASSERT(promotable(r));
	/* Pre-vote changes neither term nor vote. */
	r->n_votes = 0;
	r->leader = 0;
	r->role = RAFT_PRE_CANDIDATE;
	r->election_elapsed = 0;
	reset_randomized_timeout(r);
	reads_fail_all(r);
	r->n_prs = 0;
}

/* Moves to the next term and votes for itself. */
static void
become_candidate(struct raft *r)
{
	ASSERT(r->role != RAFT_LEADER);
	ASSERT(promotable(r));
	reset_common(r, r->term + 1);
	r->vote = r->id;
	r->role = RAFT_CANDIDATE;
	r->n_prs = 0;
	r->counters.elections_started++;
}

static int append_local(struct raft *r, const struct raft_entry *ents, size_t n, uint32_t type);
static void bcast_append(struct raft *r);

/* Takes leadership after winning the vote: fresh progress for every member, then an
 * empty entry of the new term so that older entries can commit through it. */
static void
become_leader(struct raft *r)
{
	struct raft_entry noop = {.type = RAFT_ENTRY_NOOP};

	ASSERT(r->role == RAFT_CANDIDATE);
	ASSERT(r->vote == r->id);
	reset_common(r, r->term);
	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->n_prs = 0;
	progress_sync(r);
	for (uint32_t i = 0; i < r->n_prs; i++)
		r->prs[i].recent_active = r->prs[i].id == r->id;
	/* Entries of earlier terms commit only through an entry of this term. */
	VERIFY(append_local(r, &noop, 1, RAFT_ENTRY_NOOP) == 0);
	r->uncommitted_bytes = uncommitted_cost(r);
	SP_LOG_DEBUG(LOG_MOD, "node=%" PRIu64 " leader term=%" PRIu64, r->id, r->term);
	bcast_append(r);
}

/* ---- elections ---- */

/* True when a log ending at (index, term) is at least as up to date as ours. */
static bool
log_up_to_date(const struct raft *r, uint64_t index, uint64_t term)
{
#ifdef RAFT_BUG_VOTE_LESS_UPTODATE
	(void)index;
	(void)term;
	(void)r;
	return true;
#else
#ifdef RAFT_BUG_VOTE_INDEX_ONLY
	return index >= last_index(r); /* the last terms are not compared first */
#endif
	return term > last_term(r) || (term == last_term(r) && index >= last_index(r));
#endif
}

/* Records a vote; returns the granted and rejected counts among voters. */
static void
vote_tally(struct raft *r, uint64_t from, bool granted, uint32_t *yes, uint32_t *no)
{
	uint32_t i;

	for (i = 0; i < r->n_votes; i++)
		if (r->vote_ids[i] == from)
			break;
	if (i == r->n_votes && r->n_votes < RAFT_NODES_MAX) {
		r->vote_ids[r->n_votes] = from;
		r->vote_granted[r->n_votes] = granted;
		r->n_votes++;
	}
	*yes = 0;
	*no = 0;
	for (i = 0; i < r->n_votes; i++) {
		if (!raft_membership_is_voter(&r->conf, r->vote_ids[i]))
			continue; /* learners and strangers never count */
		if (r->vote_granted[i])
			(*yes)++;
		else
			(*no)++;
	}
	ASSERT(*yes + *no <= r->n_votes);
}

static void campaign(struct raft *r, bool pre, bool transfer);

/* Tallies a vote answer for the current (pre-)campaign. */
static void
handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
	uint32_t yes, no;

	ASSERT(r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE);
	vote_tally(r, m->from, !m->reject, &yes, &no);
#ifdef RAFT_BUG_LEADER_WITHOUT_QUORUM
	yes++; /* one vote short of a majority is taken for a majority */
#endif
	if (yes >= quorum(r)) {
		if (r->role == RAFT_PRE_CANDIDATE)
			campaign(r, false, false);
		else
			become_leader(r);
	} else if (no >= quorum(r)) {
		become_follower(r, r->term, 0);
	}
}

/*
 * Starts a (pre-)election. A pre-candidate asks for votes in term + 1 without moving to it;
 * a candidate moves to term + 1 and votes for itself. Non-voters never campaign.
 */
static void
campaign(struct raft *r, bool pre, bool transfer)
{
	uint64_t vote_term;
	uint32_t yes, no;

	if (!promotable(r))
		return;
	if (pre) {
		become_pre_candidate(r);
		vote_term = r->term + 1;
	} else {
		become_candidate(r);
		vote_term = r->term;
	}
	vote_tally(r, r->id, true, &yes, &no);
	if (yes >= quorum(r)) {
		if (pre)
			campaign(r, false, transfer);
		else
			become_leader(r);
		return;
	}
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		struct raft_msg m = {0};

		if (r->conf.voters[i] == r->id)
			continue;
		m.type = pre ? RAFT_MSG_PRE_VOTE : RAFT_MSG_VOTE;
		m.to = r->conf.voters[i];
		m.term = vote_term;
		m.index = last_index(r);
		m.log_term = last_term(r);
		m.ctx = transfer ? RAFT_VOTE_CTX_TRANSFER : 0;
		outbox_push(r, &m);
	}
}

/* Answers a vote or pre-vote request whose term is >= ours (after term handling). */
static void
handle_vote_req(struct raft *r, const struct raft_msg *m)
{
	bool pre = m->type == RAFT_MSG_PRE_VOTE;
	bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
	                (pre && m->term > r->term);
#ifdef RAFT_BUG_VOTE_TWICE
	can_vote = can_vote || r->leader == 0; /* votedFor is not consulted */
#endif
	struct raft_msg resp = {0};

	ASSERT(m->term >= r->term);
	resp.to = m->from;
	resp.type = pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
	if (can_vote && log_up_to_date(r, m->index, m->log_term)) {
		resp.term = pre ? m->term : r->term;
		resp.reject = false;
		if (!pre) {
			ASSERT(m->term == r->term);
			r->vote = m->from;
			r->election_elapsed = 0;
		}
#ifdef RAFT_BUG_PREVOTE_RECORDS_VOTE
		if (pre)
			r->vote = m->from; /* a pre-vote grant kept as a vote in our own term */
#endif
	} else {
		resp.term = r->term;
		resp.reject = true;
	}
	outbox_push(r, &resp);
}

/* ---- replication (leader) ---- */

static bool
inflight_full(const struct raft *r, const struct progress *pr)
{
	return pr->in_count >= r->cfg.max_inflight_msgs;
}

/* Records an append ending at last as in flight; the caller checked the window. */
static void
inflight_add(struct raft *r, struct progress *pr, uint64_t last)
{
	VERIFY(pr->in_count < RAFT_INFLIGHT_MAX);
	ASSERT(pr->in_count < r->cfg.max_inflight_msgs);
	pr->inflight[(pr->in_start + pr->in_count) % RAFT_INFLIGHT_MAX] = last;
	pr->in_count++;
}

/* Frees every in-flight slot whose append ended at or before index. */
static void
inflight_free_to(struct progress *pr, uint64_t index)
{
	while (pr->in_count > 0 && pr->inflight[pr->in_start] <= index) {
		pr->in_start = (pr->in_start + 1) % RAFT_INFLIGHT_MAX;
		pr->in_count--;
	}
	ASSERT(pr->in_count <= RAFT_INFLIGHT_MAX);
}

static void
progress_become_probe(struct progress *pr)
{
	pr->state = RAFT_PROGRESS_PROBE;
	pr->next = pr->match + 1;
	pr->probe_sent = false;
	pr->in_count = 0;
	pr->in_start = 0;
}

static void
progress_become_replicate(struct progress *pr)
{
	pr->state = RAFT_PROGRESS_REPLICATE;
	pr->next = pr->match + 1;
	pr->probe_sent = false;
	pr->in_count = 0;
	pr->in_start = 0;
}

/* True when nothing more may be sent to pr until it answers. */
static bool
progress_paused(const struct raft *r, const struct progress *pr)
{
	switch (pr->state) {
	case RAFT_PROGRESS_PROBE:
		return pr->probe_sent;
	case RAFT_PROGRESS_REPLICATE:
		return inflight_full(r, pr);
	default:
		return true;
	}
}

/* Sends the latest snapshot to pr, which needs entries that were compacted away. */
static bool
send_snapshot(struct raft *r, struct progress *pr)
{
	struct raft_msg m = {0};

	if (r->snap.meta.index == 0 || r->snap.meta.index != r->log.snap_index)
		return false;
	m.type = RAFT_MSG_SNAPSHOT;
	m.to = pr->id;
	m.snapshot.meta = r->snap.meta;
	if (outbox_push(r, &m) == NULL)
		return false;
	pr->state = RAFT_PROGRESS_SNAPSHOT;
	pr->pending_snapshot = r->snap.meta.index;
	pr->snapshot_elapsed = 0;
	r->counters.snapshots_sent++;
	return true;
}

/*
 * Sends pr the next batch of entries (bounded by RAFT_MSG_ENTRIES_MAX and max_size_per_msg,
 * at least one), or an empty append when send_empty. Returns true when something was sent.
 */
static bool
send_append(struct raft *r, struct progress *pr, bool send_empty)
{
	struct raft_msg m = {0};
	uint64_t prev, bytes = 0;
	uint32_t n = 0;

	ASSERT(r->role == RAFT_LEADER);
	ASSERT(pr->id != r->id);
	if (progress_paused(r, pr))
		return false;
	prev = pr->next - 1;
	if (prev < r->log.snap_index)
		return send_snapshot(r, pr);
	for (uint64_t i = pr->next; i <= last_index(r) && n < RAFT_MSG_ENTRIES_MAX; i++) {
		const struct raft_entry *e = raft_log_get(&r->log, i);

		if (n > 0 && bytes + e->len > r->cfg.max_size_per_msg)
			break;
		bytes += e->len;
		n++;
	}
	if (n == 0 && !send_empty)
		return false;
	m.type = RAFT_MSG_APPEND;
	m.to = pr->id;
	m.index = prev;
	m.log_term = term_at(r, prev);
	m.commit = r->commit;
	m.n_entries = n;
	if (outbox_push(r, &m) == NULL)
		return false;
	if (pr->state == RAFT_PROGRESS_REPLICATE) {
		if (n > 0) {
			pr->next = prev + n + 1;
			inflight_add(r, pr, prev + n);
		}
	} else {
		pr->probe_sent = true;
	}
	return true;
}

static void
bcast_append(struct raft *r)
{
	ASSERT(r->role == RAFT_LEADER);
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			send_append(r, &r->prs[i], true);
}

/* Heartbeat to pr; its commit never exceeds what pr is known to hold. */
static void
send_heartbeat(struct raft *r, const struct progress *pr, uint64_t ctx)
{
	struct raft_msg m = {0};

	ASSERT(r->role == RAFT_LEADER);
	m.type = RAFT_MSG_HEARTBEAT;
	m.to = pr->id;
#ifdef RAFT_BUG_HEARTBEAT_COMMIT_UNBOUNDED
	m.commit = r->commit; /* not bounded by what the follower is known to hold */
#else
	m.commit = SP_MIN(pr->match, r->commit);
#endif
	m.ctx = ctx;
	outbox_push(r, &m);
}

static void
bcast_heartbeat(struct raft *r, uint64_t ctx)
{
	ASSERT(r->role == RAFT_LEADER);
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			send_heartbeat(r, &r->prs[i], ctx);
}

static void
send_timeout_now(struct raft *r, uint64_t to)
{
	struct raft_msg m = {0};

	ASSERT(r->role == RAFT_LEADER);
	ASSERT(to != r->id);
	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.to = to;
	outbox_push(r, &m);
}

/* Called whenever commit moved: membership, uncommitted budget, reads. */
static void
after_commit(struct raft *r)
{
	ASSERT(r->commit <= last_index(r));
	r->uncommitted_bytes = uncommitted_cost(r);
	if (r->role != RAFT_LEADER)
		return;
	reads_start(r);
	if (!raft_membership_is_voter(&r->conf, r->id) && r->conf_index <= r->commit) {
		/* Our own removal is committed: hand over to an up-to-date voter at once
		 * (timeout-now) rather than leaving the cluster to wait for a timeout. */
		const struct progress *best = NULL;

		for (uint32_t i = 0; i < r->n_prs; i++) {
			const struct progress *pr = &r->prs[i];

			if (pr->voter && pr->id != r->id && pr->match == last_index(r))
				best = pr;
		}
		if (best != NULL)
			send_timeout_now(r, best->id);
		SP_LOG_INFO(LOG_MOD, "node=%" PRIu64 " removed from the voters; stepping down",
		            r->id);
		become_follower(r, r->term, 0);
	}
}

/*
 * Advances commit to the highest index a quorum of voters holds, counting replicas only
 * for an entry of the current term (Raft section 5.4.2). Returns true when commit moved.
 */
static bool
maybe_commit(struct raft *r)
{
	uint64_t matches[RAFT_NODES_MAX];
	uint32_t n = 0;
	uint64_t idx;

	ASSERT(r->role == RAFT_LEADER);
	for (uint32_t i = 0; i < r->n_prs; i++) {
#ifndef RAFT_BUG_LEARNER_COMMIT_COUNTED
		if (!r->prs[i].voter)
			continue;
#endif
		matches[n++] = r->prs[i].id == r->id ? r->stable_index : r->prs[i].match;
	}
	if (n == 0)
		return false;
	/* Insertion sort, descending; n <= RAFT_NODES_MAX. */
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = i; j > 0 && matches[j] > matches[j - 1]; j--) {
			uint64_t t = matches[j];

			matches[j] = matches[j - 1];
			matches[j - 1] = t;
		}
	idx = matches[quorum(r) - 1];
#ifdef RAFT_BUG_COMMIT_HALF_QUORUM
	idx = matches[SP_MAX(r->conf.n_voters / 2, 1u) - 1]; /* half the voters, not a majority */
#endif
	if (idx <= r->commit)
		return false;
#ifndef RAFT_BUG_OLD_TERM_COMMIT
	if (term_at(r, idx) != r->term)
		return false;
#endif
	r->commit = idx;
	after_commit(r);
	return true;
}

/* Handles an append response at the leader. */
static void
handle_append_resp(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = progress_find(r, m->from);

	ASSERT(r->role == RAFT_LEADER);
	ASSERT(m->term == r->term);
	if (pr == NULL)
		return;
	pr->recent_active = true;
	if (m->reject) {
		r->counters.append_rejects_received++;
		if (pr->state == RAFT_PROGRESS_REPLICATE) {
			if (m->index <= pr->match)
				return; /* stale */
			progress_become_probe(pr);
		} else {
			uint64_t next;

			if (m->index != pr->next - 1)
				return; /* stale: answers an older probe */
			/* Fast back-off: skip the follower's whole conflicting term. */
			next = m->reject_hint_index + 1;
			if (m->reject_hint_term > 0) {
				uint64_t i = m->reject_hint_index;

				while (i > r->log.snap_index && term_at(r, i) > m->reject_hint_term)
					i--;
				next = i + 1;
			}
			next = SP_MIN(next, m->index);
			pr->next = SP_MAX(next, pr->match + 1);
			pr->probe_sent = false;
			if (pr->state == RAFT_PROGRESS_SNAPSHOT)
				pr->state = RAFT_PROGRESS_PROBE;
		}
		send_append(r, pr, true);
		return;
	}
	if (m->index > last_index(r))
		return; /* acknowledges entries we never had: not from our term */
	if (m->index > pr->match) {
		pr->match = m->index;
#ifdef RAFT_BUG_MATCH_FROM_NEXT
		pr->match = SP_MAX(m->index, pr->next - 1); /* in-flight appends count too */
#endif
		pr->next = SP_MAX(pr->next, m->index + 1);
	}
	if (pr->state == RAFT_PROGRESS_PROBE)
		progress_become_replicate(pr);
	else if (pr->state == RAFT_PROGRESS_SNAPSHOT && pr->match >= pr->pending_snapshot)
		progress_become_replicate(pr);
	else if (pr->state == RAFT_PROGRESS_REPLICATE)
		inflight_free_to(pr, m->index);
	if (maybe_commit(r)) {
		if (r->role == RAFT_LEADER)
			bcast_append(r);
	} else {
		/* Refill the pipeline; bounded by the in-flight limit. */
		for (uint32_t i = 0; i < RAFT_INFLIGHT_MAX && send_append(r, pr, false); i++)
			;
	}
	if (r->role == RAFT_LEADER && m->from == r->transfer_target && pr->match == last_index(r))
		send_timeout_now(r, m->from);
}

/* Handles a heartbeat answer at the leader: liveness for check-quorum, resumes a
 * paused probe or a full pipeline, and counts the ReadIndex round it acknowledges. */
static void
handle_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
	struct progress *pr = progress_find(r, m->from);

	ASSERT(r->role == RAFT_LEADER);
	ASSERT(m->term == r->term);
	if (pr == NULL)
		return;
	pr->recent_active = true;
	pr->probe_sent = false;
	if (m->ctx > pr->read_ack_round)
		pr->read_ack_round = m->ctx;
	/* A lost append would stall a full pipeline forever: free one slot and probe with
	 * an (possibly empty) append; a rejection then rewinds to the follower's match. */
	if (pr->state == RAFT_PROGRESS_REPLICATE && inflight_full(r, pr))
		inflight_free_to(pr, pr->inflight[pr->in_start]);
	if (pr->match < last_index(r))
		send_append(r, pr, true);
	reads_check(r);
}

/* ---- local append and proposals ---- */

/*
 * Appends n entries of the current term at the leader. The conf entry's change is applied to
 * the membership at once. Returns 0 or -ENOMEM.
 */
static int
append_local(struct raft *r, const struct raft_entry *ents, size_t n, uint32_t type)
{
	ASSERT(r->role == RAFT_LEADER);
	for (size_t i = 0; i < n; i++) {
		struct raft_entry e = ents[i];
		int rc;

		e.term = r->term;
		e.index = last_index(r) + 1;
		e.type = type;
		rc = raft_log_append(&r->log, &e);
		if (rc < 0)
			return rc;
		r->uncommitted_bytes += entry_cost(&e);
		if (type == RAFT_ENTRY_CONF) {
			conf_apply_entry(r, &r->conf, raft_log_get(&r->log, e.index));
			r->conf_index = e.index;
			progress_sync(r);
		}
	}
	r->bcast_pending = true;
	return 0;
}

/* Forwards a batch to the leader in one RAFT_MSG_PROPOSE carrying copies of the entries. */
static int
forward_proposal(struct raft *r, const struct raft_entry *ents, size_t n)
{
	struct raft_msg m = {0};
	struct raft_entry *copy;
	size_t bytes = n * sizeof(*copy);
	uint8_t *data;
	struct outmsg *o;

	for (size_t i = 0; i < n; i++)
		bytes += ents[i].len;
	copy = malloc(bytes);
	if (copy == NULL)
		return -ENOMEM;
	data = (uint8_t *)(copy + n);
	for (size_t i = 0; i < n; i++) {
		copy[i] = ents[i];
		copy[i].term = 0;
		copy[i].index = 0;
		copy[i].type = RAFT_ENTRY_NORMAL;
		copy[i].data = ents[i].len > 0 ? data : NULL;
		if (ents[i].len > 0)
			memcpy(data, ents[i].data, ents[i].len);
		data += ents[i].len;
	}
	m.type = RAFT_MSG_PROPOSE;
	m.to = r->leader;
	m.n_entries = (uint32_t)n;
	m.entries = copy;
	o = outbox_push(r, &m);
	if (o == NULL) {
		free(copy);
		return -SP_EFULL;
	}
	o->owned = copy;
	return 0;
}

/* Validates and appends (or forwards) a batch of normal entries. */
static int
propose(struct raft *r, const struct raft_entry *ents, size_t n, struct raft_propose_result *res,
        bool from_peer)
{
	uint64_t cost = 0;
	uint64_t first;
	int rc;

	if (n == 0 || ents == NULL)
		return -EINVAL;
	if (n > RAFT_PROPOSE_BATCH_MAX)
		return -SP_ETOOBIG;
	for (size_t i = 0; i < n; i++) {
		if (ents[i].len > RAFT_ENTRY_BYTES_MAX)
			return -SP_ETOOBIG;
		if (ents[i].len > 0 && ents[i].data == NULL)
			return -EINVAL;
		if (ents[i].type != RAFT_ENTRY_NORMAL)
			return -EINVAL;
		cost += entry_cost(&ents[i]);
	}
	if (r->role != RAFT_LEADER) {
		if (from_peer || !r->cfg.forward_proposals || r->leader == 0 ||
		    r->role != RAFT_FOLLOWER)
			return -SP_ENOTLEADER;
		rc = forward_proposal(r, ents, n);
		if (rc == 0 && res != NULL)
			*res = (struct raft_propose_result){.forwarded = true};
		return rc;
	}
#ifndef RAFT_BUG_TRANSFER_ACCEPTS_PROPOSALS
	if (r->transfer_target != 0)
		return -SP_EBUSY;
#endif
	/* The uncommitted tail is bounded, so a partitioned leader's log stays bounded. */
	if (cost > r->cfg.max_uncommitted_bytes)
		return -SP_ETOOBIG;
#ifndef RAFT_BUG_UNCOMMITTED_UNBOUNDED
	if (r->uncommitted_bytes + cost > r->cfg.max_uncommitted_bytes)
		return -SP_EFULL;
#endif
	first = last_index(r) + 1;
	rc = append_local(r, ents, n, RAFT_ENTRY_NORMAL);
	if (rc < 0)
		return rc;
	if (res != NULL)
		*res = (struct raft_propose_result){.first_index = first, .term = r->term};
	return 0;
}

/* Appends a membership change at the leader if one may be made now. */
static int
conf_change(struct raft *r, const struct raft_conf_change *cc, struct raft_propose_result *res)
{
	struct raft_membership next = r->conf;
	uint8_t payload[RAFT_CONF_CHANGE_BYTES];
	struct raft_entry e = {.type = RAFT_ENTRY_CONF};
	uint64_t index;
	int rc;

	if (r->role != RAFT_LEADER)
		return -SP_ENOTLEADER;
	if (r->transfer_target != 0)
		return -SP_EBUSY;
#ifndef RAFT_BUG_CONF_CONCURRENT
	if (r->conf_index > r->commit)
		return -SP_EBUSY; /* one change at a time */
#endif
#ifndef RAFT_BUG_EARLY_MEMBERSHIP
	if (!committed_own_term(r))
		return -SP_EBUSY; /* the single-server-change fix: own-term commit first */
#endif
	rc = raft_membership_apply(&next, cc);
	if (rc < 0)
		return rc;
	raft_conf_change_encode(cc, payload);
	e.data = payload;
	e.len = sizeof(payload);
	index = last_index(r) + 1;
	rc = append_local(r, &e, 1, RAFT_ENTRY_CONF);
	if (rc < 0)
		return rc;
	ASSERT(r->conf_index == index);
	if (res != NULL)
		*res = (struct raft_propose_result){.first_index = index, .term = r->term};
	return 0;
}

/* Starts (or restarts) a leadership transfer to target. */
static int
transfer(struct raft *r, uint64_t target)
{
	struct progress *pr;

	if (r->role != RAFT_LEADER)
		return -SP_ENOTLEADER;
	if (target == r->id || !raft_membership_is_voter(&r->conf, target))
		return -EINVAL;
	if (r->transfer_target == target)
		return 0;
	pr = progress_find(r, target);
	VERIFY(pr != NULL);
	r->transfer_target = target;
	r->transfer_elapsed = 0;
#ifdef RAFT_BUG_TRANSFER_TIMEOUT_NOW_EARLY
	send_timeout_now(r, target); /* before the target holds the whole log */
#else
	if (pr->match == last_index(r))
		send_timeout_now(r, target);
	else
		send_append(r, pr, true);
#endif
	return 0;
}

/* Queues a ReadIndex request at the leader (reads_start decides when it starts). */
static int
read_index(struct raft *r, uint64_t ctx)
{
	struct pending_read *rd;

	ASSERT(r->n_reads <= RAFT_READS_PENDING_MAX);
	if (r->role != RAFT_LEADER) {
		r->counters.reads_dropped++;
		return -SP_ENOTLEADER;
	}
	if (r->n_reads >= RAFT_READS_PENDING_MAX) {
		r->counters.reads_dropped++;
		return -SP_EFULL;
	}
	rd = &r->reads[r->n_reads++];
	memset(rd, 0, sizeof(*rd));
	rd->ctx = ctx;
	rd->state = READ_WAIT_COMMIT;
	reads_start(r);
	return 0;
}

/* ---- follower side ---- */

/* Largest index <= index whose term is <= term (for the reject hint). */
static uint64_t
find_conflict_by_term(const struct raft *r, uint64_t index, uint64_t term)
{
	uint64_t i = SP_MIN(index, last_index(r));

	while (i > r->log.snap_index && term_at(r, i) > term)
		i--;
	return i;
}

/* Follower side: learns that entries up to index are committed. */
static void
commit_to(struct raft *r, uint64_t index)
{
	ASSERT(r->role != RAFT_LEADER);
	if (index <= r->commit)
		return;
	VERIFY(index <= last_index(r));
	r->commit = index;
	after_commit(r);
}

/* Follower side of an append: refuse a mismatched previous entry with a back-off hint,
 * otherwise append (truncating a conflicting uncommitted tail) and acknowledge. */
static void
handle_append(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {0};
	uint64_t last_new = m->index + m->n_entries;
	uint32_t i = 0;

	ASSERT(r->role == RAFT_FOLLOWER);
	ASSERT(m->term == r->term);
	resp.type = RAFT_MSG_APPEND_RESP;
	resp.to = m->from;
	if (m->index < r->commit) {
		resp.index = r->commit;
		outbox_push(r, &resp);
		return;
	}
#ifdef RAFT_BUG_APPEND_SKIP_PREV_CHECK
	if (m->index > last_index(r)) { /* the previous entry's term is not compared */
#else
	if (term_at(r, m->index) != m->log_term || m->index > last_index(r)) {
#endif
		uint64_t hint = find_conflict_by_term(r, m->index, m->log_term);

		resp.reject = true;
		resp.index = m->index;
		resp.reject_hint_index = hint;
		resp.reject_hint_term = term_at(r, hint);
		outbox_push(r, &resp);
		return;
	}
	/* Skip what we already hold; the first conflict truncates our tail. */
#ifdef RAFT_BUG_APPEND_KEEP_CONFLICTS
	while (i < m->n_entries && m->entries[i].index <= last_index(r)) /* terms not compared */
		i++;
#else
	while (i < m->n_entries && m->entries[i].index <= last_index(r) &&
	       term_at(r, m->entries[i].index) == m->entries[i].term)
		i++;
#endif
#ifdef RAFT_BUG_APPEND_TRUNCATE_MATCHING
	i = 0; /* the append replaces the tail from its first entry, conflict or not */
#endif
	if (i < m->n_entries && m->entries[i].index <= last_index(r)) {
		uint64_t from = m->entries[i].index;

		if (from <= r->commit) {
			/* Overwriting a committed entry would break Leader Completeness:
			 * refuse the message rather than corrupt the log. */
			SP_LOG_ERR(LOG_MOD,
			           "node=%" PRIu64 " append from %" PRIu64
			           " conflicts at committed "
			           "index %" PRIu64 "; dropped",
			           r->id, m->from, from);
			r->counters.msgs_dropped_invalid++;
			return;
		}
		raft_log_truncate(&r->log, from);
		r->stable_index = SP_MIN(r->stable_index, from - 1);
		outbox_purge(r, true);
		if (r->conf_index >= from)
#ifdef RAFT_BUG_CONF_NO_ROLLBACK
			(void)conf_reload; /* the truncated change stays in force */
#else
			conf_reload(r);
#endif
	}
	for (; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];

		if (raft_log_append(&r->log, e) < 0) {
			/* Out of memory: answer for what we hold; the leader retries the rest. */
			last_new = last_index(r);
			break;
		}
		if (e->type == RAFT_ENTRY_CONF) {
			conf_apply_entry(r, &r->conf, raft_log_get(&r->log, e->index));
			r->conf_index = e->index;
		}
	}
	commit_to(r, SP_MIN(m->commit, last_new));
	resp.index = last_new;
	outbox_push(r, &resp);
}

/* Follower side of a heartbeat: learn the commit index and echo the read round. */
static void
handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {0};

	ASSERT(r->role == RAFT_FOLLOWER);
	ASSERT(m->term == r->term);
	commit_to(r, SP_MIN(m->commit, last_index(r)));
	resp.type = RAFT_MSG_HEARTBEAT_RESP;
	resp.to = m->from;
	resp.ctx = m->ctx;
	outbox_push(r, &resp);
}

/* Replaces the snapshot this node holds with a copy of s. Returns 0 or -ENOMEM. */
static int
snapshot_store(struct raft *r, const struct raft_snapshot_meta *meta, const void *data, size_t len)
{
	void *copy = NULL;

	ASSERT(len <= RAFT_SNAPSHOT_BYTES_MAX);
	if (len > 0) {
		copy = malloc(len);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	free((void *)r->snap.data);
	r->snap.meta = *meta;
	r->snap.data = copy;
	r->snap.len = len;
	return 0;
}

/* Follower side of a snapshot: ignore what we already cover, otherwise replace the log
 * with it; the ready hands it to the driver to persist and install. */
static void
handle_snapshot(struct raft *r, const struct raft_msg *m)
{
	const struct raft_snapshot_meta *s = &m->snapshot.meta;
	struct raft_msg resp = {0};

	ASSERT(r->role == RAFT_FOLLOWER);
	ASSERT(m->term == r->term);
	resp.type = RAFT_MSG_APPEND_RESP;
	resp.to = m->from;
#ifndef RAFT_BUG_SNAPSHOT_OLDER_INSTALLED
	if (s->index <= r->commit) {
		resp.index = r->commit;
		outbox_push(r, &resp);
		return;
	}
#endif
#ifdef RAFT_BUG_SNAPSHOT_DISCARDS_TAIL
	if (false) { /* the log after a snapshot we already hold is dropped with it */
#else
	if (term_at(r, s->index) == s->term) {
#endif
		/* We already hold the covered log: just learn the commit. */
		commit_to(r, s->index);
		resp.index = s->index;
		outbox_push(r, &resp);
		return;
	}
	if (snapshot_store(r, s, m->snapshot.data, m->snapshot.len) < 0)
		return; /* out of memory: the leader resends after its snapshot timeout */
	raft_log_reset(&r->log, s->index, s->term);
	r->base_conf = s->membership;
	r->conf = s->membership;
	r->conf_index = 0;
	r->commit = s->index;
	r->applied = s->index;
	r->stable_index = s->index;
	r->snap_pending = true;
	outbox_purge(r, true);
	SP_LOG_DEBUG(LOG_MOD, "node=%" PRIu64 " installs snapshot index=%" PRIu64, r->id, s->index);
	resp.index = s->index;
	outbox_push(r, &resp);
}

/* ---- message validation and dispatch ---- */

static bool membership_shape_ok(const struct raft_membership *m);

/* Checks a received message's shape; returns 0 or -SP_EMALFORMED. */
static int
msg_validate(const struct raft *r, const struct raft_msg *m)
{
	if (m->type < RAFT_MSG_PRE_VOTE || m->type >= RAFT_MSG_TYPE_END)
		return -SP_EMALFORMED;
	if (m->to != r->id || m->from == 0 || m->from == r->id || m->term == 0)
		return -SP_EMALFORMED;
	if (m->n_entries > RAFT_MSG_ENTRIES_MAX)
		return -SP_EMALFORMED;
	if (m->n_entries > 0 && m->entries == NULL)
		return -SP_EMALFORMED;
	if (m->n_entries > 0 && m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE)
		return -SP_EMALFORMED;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		struct raft_conf_change cc;

		if (e->type >= RAFT_ENTRY_TYPE_COUNT || e->len > RAFT_ENTRY_BYTES_MAX)
			return -SP_EMALFORMED;
		if (e->len > 0 && e->data == NULL)
			return -SP_EMALFORMED;
		if (m->type == RAFT_MSG_PROPOSE) {
			if (e->type != RAFT_ENTRY_NORMAL)
				return -SP_EMALFORMED;
			continue;
		}
		if (e->index != m->index + 1 + i || e->term > m->term)
			return -SP_EMALFORMED;
		if (e->term < (i == 0 ? m->log_term : m->entries[i - 1].term))
			return -SP_EMALFORMED;
		if (e->type == RAFT_ENTRY_CONF && raft_conf_change_decode(e->data, e->len, &cc) < 0)
			return -SP_EMALFORMED;
	}
	if (m->type == RAFT_MSG_APPEND && m->log_term > m->term)
		return -SP_EMALFORMED;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		const struct raft_snapshot *s = &m->snapshot;
		struct raft_membership tmp = s->meta.membership;

		if (s->meta.index == 0 || s->meta.term == 0 || s->meta.term > m->term)
			return -SP_EMALFORMED;
		if (s->len > RAFT_SNAPSHOT_BYTES_MAX || (s->len > 0 && s->data == NULL))
			return -SP_EMALFORMED;
		if (tmp.n_voters == 0 || !membership_shape_ok(&tmp))
			return -SP_EMALFORMED;
	}
	return 0;
}

/* Handles the term of m; returns false when the message must be dropped. */
static bool
step_term(struct raft *r, const struct raft_msg *m)
{
	if (m->term > r->term) {
#ifdef RAFT_BUG_HIGHER_TERM_KEEPS_LEADING
		if (r->role == RAFT_LEADER &&
		    (m->type == RAFT_MSG_APPEND_RESP || m->type == RAFT_MSG_HEARTBEAT_RESP)) {
			r->term = m->term; /* adopts the term but does not step down */
			return false;
		}
#endif
		if (m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_VOTE) {
			bool force = m->type == RAFT_MSG_VOTE && m->ctx == RAFT_VOTE_CTX_TRANSFER;
			bool in_lease = r->cfg.check_quorum && r->leader != 0 &&
			                r->election_elapsed < r->cfg.election_tick;

			if (!force && in_lease)
				return false; /* we heard from a leader recently */
		}
		if (m->type == RAFT_MSG_PRE_VOTE)
			return true; /* pre-votes never move our term */
		if (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject)
			return true; /* granted in the future term we asked for */
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
		    m->type == RAFT_MSG_SNAPSHOT) {
			become_follower(r, m->term, m->from);
		} else if (m->type == RAFT_MSG_VOTE) {
			/* Only a granted vote restarts the election timer (Raft section 5.2):
			 * a candidate with a stale log must not keep an up-to-date node from
			 * ever campaigning by bumping the term again and again. */
			uint32_t elapsed = r->election_elapsed;

			become_follower(r, m->term, 0);
			r->election_elapsed = elapsed;
		} else {
			become_follower(r, m->term, 0);
		}
		return true;
	}
	if (m->term < r->term) {
#ifdef RAFT_BUG_STALE_VOTE_COUNTED
		if (m->type == RAFT_MSG_VOTE_RESP && r->role == RAFT_CANDIDATE) {
			handle_vote_resp(r, m); /* a vote from an earlier election counts */
			return false;
		}
#endif
#ifdef RAFT_BUG_APPEND_STALE_TERM
		if (m->type == RAFT_MSG_APPEND && r->role == RAFT_FOLLOWER) {
			struct raft_msg cur = *m; /* an old leader's append taken as current */

			cur.term = r->term;
			handle_append(r, &cur);
			return false;
		}
#endif
		r->counters.msgs_dropped_stale++;
		if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
		    (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
			/* Tell a stale leader about our term so it steps down; this frees a
			 * cluster where leases keep our vote requests from being heard. */
			struct raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from};

			outbox_push(r, &resp);
		} else if (m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_VOTE) {
			/* Refuse with our term: a candidate stuck in an old term learns the
			 * current one and its next campaign can be heard (Raft section 5.1). */
			struct raft_msg resp = {.to = m->from, .reject = true};

			resp.type = m->type == RAFT_MSG_PRE_VOTE ? RAFT_MSG_PRE_VOTE_RESP
			                                         : RAFT_MSG_VOTE_RESP;
			resp.term = r->term;
			outbox_push(r, &resp);
		}
		return false;
	}
	return true;
}

/* Messages a leader acts on in its own term. */
static void
step_leader(struct raft *r, const struct raft_msg *m)
{
	ASSERT(r->role == RAFT_LEADER);
	ASSERT(m->term >= r->term); /* granted pre-votes carry term + 1 */
	switch (m->type) {
	case RAFT_MSG_APPEND_RESP:
		handle_append_resp(r, m);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		handle_heartbeat_resp(r, m);
		break;
	case RAFT_MSG_PROPOSE:
		if (propose(r, m->entries, m->n_entries, NULL, true) < 0)
			r->counters.proposals_dropped++;
		break;
	case RAFT_MSG_APPEND:
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_SNAPSHOT:
		/* Two leaders in one term would break election safety. */
		SP_LOG_ERR(LOG_MOD,
		           "node=%" PRIu64 " leader got %s from %" PRIu64 " in term %" PRIu64,
		           r->id, raft_msg_type_name(m->type), m->from, m->term);
		r->counters.msgs_dropped_invalid++;
		break;
	default:
		break;
	}
}

/* Messages a (pre-)candidate acts on in its term: a leader of the term wins, votes count. */
static void
step_candidate(struct raft *r, const struct raft_msg *m)
{
	ASSERT(r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE);
	ASSERT(m->term >= r->term); /* granted pre-votes carry term + 1 */
	switch (m->type) {
	case RAFT_MSG_APPEND:
	case RAFT_MSG_HEARTBEAT:
	case RAFT_MSG_SNAPSHOT:
		become_follower(r, m->term, m->from);
		r->leader = m->from;
		if (m->type == RAFT_MSG_APPEND)
			handle_append(r, m);
		else if (m->type == RAFT_MSG_HEARTBEAT)
			handle_heartbeat(r, m);
		else
			handle_snapshot(r, m);
		break;
	case RAFT_MSG_PRE_VOTE_RESP:
		/* Granted answers carry the term we asked for; refusals carry ours. */
		if (r->role == RAFT_PRE_CANDIDATE && m->term == (m->reject ? r->term : r->term + 1))
			handle_vote_resp(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
		if (r->role == RAFT_CANDIDATE)
			handle_vote_resp(r, m);
		break;
	case RAFT_MSG_PROPOSE:
		r->counters.proposals_dropped++;
		break;
	default:
		break;
	}
}

/* Messages a follower acts on in its term. */
static void
step_follower(struct raft *r, const struct raft_msg *m)
{
	ASSERT(r->role == RAFT_FOLLOWER);
	ASSERT(m->term >= r->term); /* granted pre-votes carry term + 1 */
	switch (m->type) {
	case RAFT_MSG_APPEND:
		r->election_elapsed = 0;
		r->leader = m->from;
		handle_append(r, m);
		break;
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->leader = m->from;
		handle_heartbeat(r, m);
		break;
	case RAFT_MSG_SNAPSHOT:
		r->election_elapsed = 0;
		r->leader = m->from;
		handle_snapshot(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		SP_LOG_DEBUG(LOG_MOD, "node=%" PRIu64 " timeout-now from %" PRIu64, r->id, m->from);
		campaign(r, false, true);
		break;
	case RAFT_MSG_PROPOSE:
		r->counters.proposals_dropped++;
		break;
	default:
		break;
	}
}

/* Validates and dispatches a received message. Returns 0 or -SP_EMALFORMED. */
static int
step_msg(struct raft *r, const struct raft_msg *m)
{
	int rc = msg_validate(r, m);

	if (rc < 0) {
		r->counters.msgs_dropped_invalid++;
		return rc;
	}
	if (!step_term(r, m))
		return 0;
	if (m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_VOTE) {
		handle_vote_req(r, m);
		return 0;
	}
	switch (r->role) {
	case RAFT_LEADER:
		step_leader(r, m);
		break;
	case RAFT_CANDIDATE:
	case RAFT_PRE_CANDIDATE:
		step_candidate(r, m);
		break;
	default:
		step_follower(r, m);
		break;
	}
	return 0;
}

/* ---- ticks ---- */

/* One tick at the leader: heartbeats, check-quorum, transfer and snapshot timeouts. */
static void
tick_leader(struct raft *r)
{
	ASSERT(r->role == RAFT_LEADER);
	ASSERT(r->leader == r->id);
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->cfg.election_tick) {
		uint32_t active = 0;

		r->election_elapsed = 0;
		for (uint32_t i = 0; i < r->n_prs; i++) {
			struct progress *pr = &r->prs[i];

			if (pr->voter && (pr->recent_active || pr->id == r->id))
				active++;
			pr->recent_active = pr->id == r->id;
		}
		if (r->cfg.check_quorum && active < quorum(r)) {
			SP_LOG_DEBUG(LOG_MOD, "node=%" PRIu64 " lost its quorum; stepping down",
			             r->id);
			become_follower(r, r->term, 0);
			return;
		}
	}
	if (r->transfer_target != 0 && ++r->transfer_elapsed >= r->cfg.election_tick) {
		SP_LOG_DEBUG(LOG_MOD, "node=%" PRIu64 " transfer to %" PRIu64 " timed out", r->id,
		             r->transfer_target);
		r->transfer_target = 0;
		r->transfer_elapsed = 0;
	}
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];

		if (pr->state == RAFT_PROGRESS_SNAPSHOT &&
		    ++pr->snapshot_elapsed >=
		            RAFT_SNAPSHOT_TIMEOUT_ELECTIONS * r->cfg.election_tick)
			progress_become_probe(pr);
	}
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
		r->heartbeat_elapsed = 0;
		bcast_heartbeat(r, r->read_round);
	}
}

/*
 * Asks again, with the same pre-vote request, every voter that has not answered this
 * pre-campaign. A voter that still heard from a leader within its election timeout drops
 * a pre-vote without a word (the leader lease), and its lease may run out a tick after our
 * own timer fired: without asking again we would wait a whole randomized timeout more
 * while a leader is missing. A pre-vote changes no state anywhere, so asking twice is
 * harmless; a voter's answer is counted once (vote_tally).
 */
static void
prevote_resend(struct raft *r)
{
	ASSERT(r->role == RAFT_PRE_CANDIDATE);
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		uint64_t id = r->conf.voters[i];
		struct raft_msg m = {0};
		bool answered = false;

		for (uint32_t k = 0; k < r->n_votes; k++)
			answered = answered || r->vote_ids[k] == id;
		if (id == r->id || answered)
			continue;
		m.type = RAFT_MSG_PRE_VOTE;
		m.to = id;
		m.term = r->term + 1;
		m.index = last_index(r);
		m.log_term = last_term(r);
		outbox_push(r, &m);
	}
}

/* One tick at a non-leader: campaign when the randomized timeout expires; a
 * pre-candidate asks the voters that have not answered again every heartbeat interval. */
static void
tick_election(struct raft *r)
{
	ASSERT(r->role != RAFT_LEADER);
	if (r->election_elapsed < UINT32_MAX)
		r->election_elapsed++;
	if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
		r->election_elapsed = 0;
		campaign(r, r->cfg.pre_vote, false);
	} else if (r->role == RAFT_PRE_CANDIDATE && promotable(r) &&
	           r->election_elapsed % r->cfg.heartbeat_tick == 0) {
		prevote_resend(r);
	}
}

/* ---- compaction ---- */

/* Drops the log up to index (<= applied) and keeps data as the snapshot to send.
 * Returns 0, -EINVAL, -SP_ETOOBIG or -ENOMEM. */
static int
compact(struct raft *r, uint64_t index, const void *data, size_t len)
{
	struct raft_snapshot_meta meta;
	uint64_t ci;
	int rc;

	ASSERT(r->log.snap_index <= r->applied);
	if (index > r->applied || index <= r->log.snap_index)
		return -EINVAL;
	if (len > RAFT_SNAPSHOT_BYTES_MAX)
		return -SP_ETOOBIG;
	if (len > 0 && data == NULL)
		return -EINVAL;
	meta.index = index;
	meta.term = term_at(r, index);
	VERIFY(meta.term > 0);
	conf_at(r, index, &meta.membership, &ci);
	rc = snapshot_store(r, &meta, data, len);
	if (rc < 0)
		return rc;
	raft_log_compact(&r->log, index, meta.term);
	r->base_conf = meta.membership;
	if (r->conf_index <= index)
		r->conf_index = 0;
	outbox_purge(r, false);
	return 0;
}

/* ---- public API ---- */

void
raft_config_init(struct raft_config *cfg, uint64_t id)
{
	ASSERT(cfg != NULL);
	memset(cfg, 0, sizeof(*cfg));
	cfg->id = id;
	cfg->election_tick = 10;
	cfg->heartbeat_tick = 1;
	cfg->pre_vote = true;
	cfg->check_quorum = true;
	cfg->forward_proposals = true;
	cfg->max_inflight_msgs = 64;
	cfg->max_size_per_msg = 1u << 20;
	cfg->max_uncommitted_bytes = 8u << 20;
	cfg->seed = id;
}

/* True when counts are within bounds and ids are non-zero and unique. */
static bool
membership_shape_ok(const struct raft_membership *m)
{
	struct raft_membership tmp = {0};

	if (m->n_voters > RAFT_NODES_MAX || m->n_learners > RAFT_NODES_MAX ||
	    m->n_voters + m->n_learners > RAFT_NODES_MAX)
		return false;
	/* Rebuild it change by change: catches zero and duplicate ids. */
	for (uint32_t i = 0; i < m->n_voters; i++) {
		struct raft_conf_change add = {RAFT_CONF_ADD_LEARNER, m->voters[i]};
		struct raft_conf_change pro = {RAFT_CONF_PROMOTE, m->voters[i]};

		if (raft_membership_apply(&tmp, &add) < 0 || raft_membership_apply(&tmp, &pro) < 0)
			return false;
	}
	for (uint32_t i = 0; i < m->n_learners; i++) {
		struct raft_conf_change add = {RAFT_CONF_ADD_LEARNER, m->learners[i]};

		if (raft_membership_apply(&tmp, &add) < 0)
			return false;
	}
	return true;
}

/* Validates a configuration; returns 0 or -EINVAL. */
static int
config_check(const struct raft_config *cfg)
{
	if (cfg->id == 0 || cfg->election_tick < 2 || cfg->heartbeat_tick == 0)
		return -EINVAL;
	if (cfg->heartbeat_tick >= cfg->election_tick)
		return -EINVAL;
	if (cfg->max_inflight_msgs == 0 || cfg->max_inflight_msgs > RAFT_INFLIGHT_MAX)
		return -EINVAL;
	if (cfg->max_size_per_msg == 0 || cfg->max_uncommitted_bytes == 0)
		return -EINVAL;
	if (!membership_shape_ok(&cfg->bootstrap))
		return -EINVAL;
	return 0;
}

/* Loads durable state into a freshly allocated node. */
static int
restore(struct raft *r, const struct raft_storage *st)
{
	const struct raft_snapshot *s = &st->snapshot;
	uint64_t prev_term;
	int rc;

	if (s->meta.index > 0) {
		if (s->meta.term == 0 || !membership_shape_ok(&s->meta.membership))
			return -EINVAL;
		if (s->len > RAFT_SNAPSHOT_BYTES_MAX || (s->len > 0 && s->data == NULL))
			return -EINVAL;
		rc = snapshot_store(r, &s->meta, s->data, s->len);
		if (rc < 0)
			return rc;
		r->base_conf = s->meta.membership;
	}
	raft_log_init(&r->log, s->meta.index, s->meta.index > 0 ? s->meta.term : 0);
	prev_term = r->log.snap_term;
	for (size_t i = 0; i < st->n_entries; i++) {
		const struct raft_entry *e = &st->entries[i];

		if (e->index != s->meta.index + 1 + i || e->term < prev_term ||
		    e->term > st->hard_state.term)
			return -EINVAL;
		if (e->type >= RAFT_ENTRY_TYPE_COUNT || e->len > RAFT_ENTRY_BYTES_MAX ||
		    (e->len > 0 && e->data == NULL))
			return -EINVAL;
		rc = raft_log_append(&r->log, e);
		if (rc < 0)
			return rc;
		prev_term = e->term;
	}
	if (st->hard_state.term < r->log.snap_term)
		return -EINVAL;
	if (st->applied < s->meta.index || st->applied > last_index(r))
		return -EINVAL;
	r->term = st->hard_state.term;
	r->vote = st->hard_state.vote;
	r->applied = st->applied;
	r->commit = SP_MAX(SP_MIN(st->hard_state.commit, last_index(r)), st->applied);
	return 0;
}

struct raft *
raft_create(const struct raft_config *cfg, const struct raft_storage *st, int *err)
{
	struct raft *r;
	int rc;

	ASSERT(cfg != NULL);
	ASSERT(err != NULL);
	rc = config_check(cfg);
	if (rc < 0) {
		SP_LOG_ERR(LOG_MOD, "node=%" PRIu64 ": invalid configuration (ids, ticks, bounds)",
		           cfg->id);
		*err = rc;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	r->cfg = *cfg;
	r->id = cfg->id;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	r->base_conf = cfg->bootstrap;
	r->prs = calloc(RAFT_NODES_MAX, sizeof(*r->prs));
	r->reads = calloc(RAFT_READS_PENDING_MAX, sizeof(*r->reads));
	r->rd_reads = calloc(RAFT_READS_PENDING_MAX, sizeof(*r->rd_reads));
	r->outbox = calloc(RAFT_READY_MSGS_MAX, sizeof(*r->outbox));
	r->rd_msgs = calloc(RAFT_READY_MSGS_MAX, sizeof(*r->rd_msgs));
	if (r->prs == NULL || r->reads == NULL || r->rd_reads == NULL || r->outbox == NULL ||
	    r->rd_msgs == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (st != NULL) {
		rc = restore(r, st);
		if (rc < 0) {
			SP_LOG_ERR(LOG_MOD, "node=%" PRIu64 ": restored state is inconsistent (%s)",
			           cfg->id, sp_strerror(rc));
			goto fail;
		}
	} else {
		raft_log_init(&r->log, 0, 0);
	}
	r->stable_index = last_index(r);
	conf_at(r, last_index(r), &r->conf, &r->conf_index);
	r->persisted_hs = (struct raft_hard_state){r->term, r->vote, r->commit};
	r->reported_ss = (struct raft_soft_state){0, r->term, RAFT_FOLLOWER};
	r->role = RAFT_FOLLOWER;
	reset_randomized_timeout(r);
	VERIFY(raft_check_invariants(r) == 0);
	return r;
fail:
	raft_destroy(r);
	*err = rc;
	return NULL;
}

void
raft_destroy(struct raft *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < r->n_out; i++)
		free(r->outbox[i].owned);
	raft_log_free(&r->log);
	free((void *)r->snap.data);
	free(r->prs);
	free(r->reads);
	free(r->rd_reads);
	free(r->outbox);
	free(r->rd_msgs);
	free(r);
}

int
raft_step(struct raft *r, const struct raft_event *ev)
{
	ASSERT(r != NULL);
	ASSERT(ev != NULL);
	VERIFY(!r->in_ready);
	switch (ev->type) {
	case RAFT_EV_TICK:
		if (r->role == RAFT_LEADER)
			tick_leader(r);
		else
			tick_election(r);
		return 0;
	case RAFT_EV_MSG:
		if (ev->msg == NULL)
			return -EINVAL;
		return step_msg(r, ev->msg);
	case RAFT_EV_PROPOSE: {
		int rc = propose(r, ev->propose.entries, ev->propose.n_entries, ev->propose.result,
		                 false);

		if (rc < 0)
			r->counters.proposals_dropped++;
		return rc;
	}
	case RAFT_EV_CONF_CHANGE:
		return conf_change(r, &ev->conf.change, ev->conf.result);
	case RAFT_EV_READ_INDEX:
		return read_index(r, ev->read.ctx);
	case RAFT_EV_TRANSFER:
		return transfer(r, ev->transfer.target);
	case RAFT_EV_COMPACT:
		return compact(r, ev->compact.index, ev->compact.data, ev->compact.len);
	case RAFT_EV_CAMPAIGN:
		if (r->role == RAFT_LEADER)
			return 0;
		if (!promotable(r))
			return -EINVAL;
		campaign(r, r->cfg.pre_vote, false);
		return 0;
	default:
		return -EINVAL;
	}
}

static struct raft_hard_state
hard_state(const struct raft *r)
{
	return (struct raft_hard_state){r->term, r->vote, r->commit};
}

static struct raft_soft_state
soft_state(const struct raft *r)
{
	return (struct raft_soft_state){r->leader, r->term, r->role};
}

static bool
hs_equal(struct raft_hard_state a, struct raft_hard_state b)
{
	return a.term == b.term && a.vote == b.vote && a.commit == b.commit;
}

static bool
ss_equal(struct raft_soft_state a, struct raft_soft_state b)
{
	return a.leader_id == b.leader_id && a.term == b.term && a.role == b.role;
}

static uint32_t
reads_done(const struct raft *r)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].state == READ_DONE)
			n++;
	return n;
}

bool
raft_has_ready(const struct raft *r)
{
	ASSERT(r != NULL);
	return !hs_equal(hard_state(r), r->persisted_hs) ||
	       !ss_equal(soft_state(r), r->reported_ss) || r->snap_pending ||
	       r->stable_index < last_index(r) || r->n_out > 0 || r->commit > r->applied ||
	       reads_done(r) > 0 || (r->role == RAFT_LEADER && r->bcast_pending);
}

/* Attaches entries / snapshot payload to a queued message. */
static void
materialize(const struct raft *r, const struct outmsg *o, struct raft_msg *out)
{
	*out = o->m;
	if (o->m.type == RAFT_MSG_APPEND && o->m.n_entries > 0) {
		out->entries = raft_log_get(&r->log, o->m.index + 1);
		VERIFY(out->entries != NULL);
	} else if (o->m.type == RAFT_MSG_SNAPSHOT) {
		VERIFY(o->m.snapshot.meta.index == r->snap.meta.index);
		out->snapshot = r->snap;
	}
}

bool
raft_ready_get(struct raft *r, struct raft_ready *rd)
{
	uint32_t n_now = 0, n_after = 0, n_rd = 0;
	uint64_t apply_to;

	ASSERT(r != NULL);
	ASSERT(rd != NULL);
	VERIFY(!r->in_ready);
	memset(rd, 0, sizeof(*rd));
	if (r->role == RAFT_LEADER && r->bcast_pending) {
		r->bcast_pending = false;
		for (uint32_t i = 0; i < r->n_prs; i++)
			if (r->prs[i].id != r->id)
				send_append(r, &r->prs[i], false);
	}
	if (!raft_has_ready(r))
		return false;
	r->rd_hs = hard_state(r);
	r->rd_ss = soft_state(r);
	rd->hard_state_changed = !hs_equal(r->rd_hs, r->persisted_hs);
	rd->hard_state = r->rd_hs;
	rd->soft_state_changed = !ss_equal(r->rd_ss, r->reported_ss);
	rd->soft_state = r->rd_ss;
	rd->snapshot = r->snap_pending ? &r->snap : NULL;
	VERIFY(r->stable_index >= r->log.snap_index);
	if (r->stable_index < last_index(r)) {
		rd->entries = raft_log_get(&r->log, r->stable_index + 1);
		rd->n_entries = (size_t)(last_index(r) - r->stable_index);
	}
	r->rd_last_index = last_index(r);
	/* Immediate messages fill the array from the front, the others from the back. */
	for (uint32_t i = 0; i < r->n_out; i++) {
		const struct outmsg *o = &r->outbox[i];

		if (!o->after_persist)
			materialize(r, o, &r->rd_msgs[n_now++]);
	}
	for (uint32_t i = 0; i < r->n_out; i++) {
		const struct outmsg *o = &r->outbox[i];

		if (o->after_persist)
			materialize(r, o, &r->rd_msgs[n_now + n_after++]);
	}
	ASSERT(n_now + n_after == r->n_out);
	rd->msgs = r->rd_msgs;
	rd->n_msgs = n_now;
	rd->msgs_after_persist = r->rd_msgs + n_now;
	rd->n_msgs_after_persist = n_after;
#ifdef RAFT_BUG_APPLY_UNCOMMITTED
	apply_to = SP_MIN(r->rd_last_index, r->applied + RAFT_READY_APPLY_MAX); /* not commit */
#else
	apply_to = SP_MIN(r->commit, r->applied + RAFT_READY_APPLY_MAX);
#endif
	if (apply_to > r->applied) {
		rd->committed = raft_log_get(&r->log, r->applied + 1);
		VERIFY(rd->committed != NULL);
		rd->n_committed = (size_t)(apply_to - r->applied);
	}
	r->rd_applied = apply_to;
	for (uint32_t i = 0; i < r->n_reads; i++) {
		const struct pending_read *p = &r->reads[i];

		if (p->state == READ_DONE)
			r->rd_reads[n_rd++] = (struct raft_read){p->ctx, p->index, p->status};
	}
	rd->reads = r->rd_reads;
	rd->n_reads = n_rd;
	r->in_ready = true;
	return true;
}

void
raft_ready_advance(struct raft *r)
{
	uint32_t w = 0;

	ASSERT(r != NULL);
	VERIFY(r->in_ready);
	VERIFY(r->rd_last_index == last_index(r));
	r->in_ready = false;
	r->persisted_hs = r->rd_hs;
	r->reported_ss = r->rd_ss;
	r->stable_index = r->rd_last_index;
	r->snap_pending = false;
	r->applied = SP_MAX(r->applied, r->rd_applied);
	for (uint32_t i = 0; i < r->n_out; i++)
		free(r->outbox[i].owned);
	r->n_out = 0;
	for (uint32_t i = 0; i < r->n_reads; i++) {
		if (r->reads[i].state == READ_DONE)
			continue;
		r->reads[w++] = r->reads[i];
	}
	r->n_reads = w;
	/* Our own entries just became durable: they may complete a quorum. */
	if (r->role == RAFT_LEADER && maybe_commit(r) && r->role == RAFT_LEADER)
		r->bcast_pending = true;
}

void
raft_status(const struct raft *r, struct raft_status *st)
{
	ASSERT(r != NULL);
	ASSERT(st != NULL);
	memset(st, 0, sizeof(*st));
	st->id = r->id;
	st->term = r->term;
	st->vote = r->vote;
	st->leader_id = r->leader;
	st->role = r->role;
	st->commit = r->commit;
	st->applied = r->applied;
	st->first_index = r->log.snap_index + 1;
	st->last_index = last_index(r);
	st->last_term = last_term(r);
	st->snapshot_index = r->log.snap_index;
	st->snapshot_term = r->log.snap_term;
	st->uncommitted_bytes = r->uncommitted_bytes;
	st->transfer_target = r->transfer_target;
	st->conf_pending = r->conf_index > r->commit;
	st->membership = r->conf;
	st->n_progress = r->role == RAFT_LEADER ? r->n_prs : 0;
	for (uint32_t i = 0; i < st->n_progress; i++) {
		const struct progress *pr = &r->prs[i];

		st->progress[i] = (struct raft_progress){
		        .id = pr->id,
		        .voter = pr->voter,
		        .state = pr->state,
		        .match = pr->id == r->id ? r->stable_index : pr->match,
		        .next = pr->next,
		        .inflight = pr->in_count,
		        .recent_active = pr->recent_active,
		};
	}
	st->counters = r->counters;
}

int
raft_log_entry(const struct raft *r, uint64_t index, struct raft_entry *out)
{
	const struct raft_entry *e;

	ASSERT(r != NULL);
	ASSERT(out != NULL);
	e = raft_log_get(&r->log, index);
	if (e == NULL)
		return -SP_ENOTFOUND;
	*out = *e;
	return 0;
}

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			SP_LOG_ERR(LOG_MOD, "node=%" PRIu64 " invariant broken: %s", r->id, \
			           #cond);                                                  \
			bad++;                                                              \
		}                                                                           \
	} while (0)

int
raft_check_invariants(const struct raft *r)
{
	struct raft_membership m;
	uint64_t ci, prev_term;
	int bad = 0;

	ASSERT(r != NULL);
	CHECK(r->role <= RAFT_LEADER);
	CHECK(r->commit <= last_index(r));
	CHECK(r->applied <= r->commit);
	CHECK(r->log.snap_index <= r->applied);
	CHECK(r->stable_index <= last_index(r));
	CHECK(r->log.n <= r->log.cap);
	CHECK(last_term(r) <= r->term);
	prev_term = r->log.snap_term;
	for (size_t i = 0; i < r->log.n; i++) {
		CHECK(r->log.ents[i].index == r->log.snap_index + 1 + i);
		CHECK(r->log.ents[i].term >= prev_term);
		CHECK(r->log.ents[i].type < RAFT_ENTRY_TYPE_COUNT);
		prev_term = r->log.ents[i].term;
	}
	CHECK(membership_shape_ok(&r->conf));
	conf_at(r, last_index(r), &m, &ci);
	CHECK(ci == r->conf_index);
	CHECK(m.n_voters == r->conf.n_voters);
	CHECK(m.n_learners == r->conf.n_learners);
	CHECK(memcmp(m.voters, r->conf.voters, sizeof(m.voters[0]) * m.n_voters) == 0);
	CHECK(r->n_reads <= RAFT_READS_PENDING_MAX);
	CHECK(r->n_out <= RAFT_READY_MSGS_MAX);
	if (r->role == RAFT_LEADER) {
		CHECK(r->leader == r->id);
		CHECK(r->vote == r->id);
		CHECK(r->n_prs == r->conf.n_voters + r->conf.n_learners);
		CHECK(r->uncommitted_bytes == uncommitted_cost(r));
		for (uint32_t i = 0; i < r->n_prs; i++) {
			const struct progress *pr = &r->prs[i];

			CHECK(raft_membership_contains(&r->conf, pr->id));
			CHECK(pr->match <= last_index(r));
			CHECK(pr->next > pr->match);
			CHECK(pr->next <= last_index(r) + 1);
			CHECK(pr->in_count <= r->cfg.max_inflight_msgs);
		}
	} else {
		CHECK(r->n_prs == 0);
		CHECK(r->transfer_target == 0);
		CHECK(r->leader != r->id);
		for (uint32_t i = 0; i < r->n_reads; i++)
			CHECK(r->reads[i].state == READ_DONE);
	}
	if (r->role == RAFT_CANDIDATE)
		CHECK(r->vote == r->id);
	if (bad > 0)
		return -SP_ECORRUPT;
	return 0;
}
