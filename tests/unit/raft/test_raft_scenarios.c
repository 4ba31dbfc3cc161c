/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Raft scenario tests: each is a short story on an in-test network (harness.c) with an
 * asserted outcome. raft_check_invariants runs after every step, the harness checks one
 * leader per term and that applied entries agree across nodes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "tests/unit/raft/harness.h"

#define ELECTION 10 /* default election_tick */

static void
no_prevote(struct raft_config *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = false;
}

static void
no_prevote_check_quorum(struct raft_config *cfg)
{
	cfg->pre_vote = false;
	cfg->check_quorum = true;
}

static void
no_forward(struct raft_config *cfg)
{
	cfg->forward_proposals = false;
}

static void
inflight_2(struct raft_config *cfg)
{
	cfg->max_inflight_msgs = 2;
}

static void
small_uncommitted(struct raft_config *cfg)
{
	cfg->max_uncommitted_bytes = 1024;
}

static void
no_check_quorum(struct raft_config *cfg)
{
	cfg->check_quorum = false;
}

static struct raft_status
status_of(struct net *net, uint64_t id)
{
	struct raft_status st;

	net_status(net, id, &st);
	return st;
}

static bool
is_voter(struct net *net, uint64_t id, uint64_t node)
{
	struct raft_status st = status_of(net, id);

	return raft_membership_is_voter(&st.membership, node);
}

static bool
is_member(struct net *net, uint64_t id, uint64_t node)
{
	struct raft_status st = status_of(net, id);

	return raft_membership_contains(&st.membership, node);
}

/* Steps a hand-made message into node to. */
static int
inject(struct net *net, uint64_t to, struct raft_msg m)
{
	struct raft_event ev = {.type = RAFT_EV_MSG, .msg = &m};

	m.to = to;
	return net_step(net, to, &ev);
}

/* Decodes the most recently queued message into m (entries into ents). */
static void
last_queued(struct net *net, struct raft_msg *m, struct raft_entry *ents)
{
	struct net_msg *qm;

	assert_true(net->q_len > 0);
	qm = &net->q[(net->q_head + net->q_len - 1) % NET_QUEUE_MAX];
	assert_int_equal(raft_msg_decode(qm->buf, qm->len, m, ents, RAFT_MSG_ENTRIES_MAX), 0);
}

static uint64_t
term_at(struct net *net, uint64_t id, uint64_t index)
{
	struct raft_entry e;

	if (raft_log_entry(net_raft(net, id), index, &e) < 0)
		return 0;
	return e.term;
}

static int
conf(struct net *net, uint64_t id, uint32_t op, uint64_t node)
{
	struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};

	ev.conf.change.op = op;
	ev.conf.change.node_id = node;
	return net_step(net, id, &ev);
}

static int
read_index(struct net *net, uint64_t id, uint64_t ctx)
{
	struct raft_event ev = {.type = RAFT_EV_READ_INDEX};

	ev.read.ctx = ctx;
	return net_step(net, id, &ev);
}

static int
transfer_to(struct net *net, uint64_t id, uint64_t target)
{
	struct raft_event ev = {.type = RAFT_EV_TRANSFER};

	ev.transfer.target = target;
	return net_step(net, id, &ev);
}

/* A candidate whose log is behind a voter's does not get that voter's vote. */
static void
test_vote_denied_to_less_up_to_date_log(void **state)
{
	const uint64_t short_log[] = {1};
	const uint64_t long_log[] = {1, 1};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_set_log(&net, 1, short_log, 1, 1, 1);
	net_set_log(&net, 2, long_log, 2, 1, 1);
	net_set_log(&net, 3, long_log, 2, 1, 1);
	net_elect(&net, 1);
	assert_int_not_equal(status_of(&net, 1).role, RAFT_LEADER);
	assert_int_equal(status_of(&net, 2).vote, 0);
	assert_int_equal(status_of(&net, 3).vote, 0);
	/* The up-to-date node wins. */
	assert_int_equal(net_elect(&net, 2), 2);
	net_free(&net);
}

/*
 * Figure 8: a new leader must not commit an entry of an older term just because a majority
 * holds it; it commits it only together with an entry of its own term.
 */
static void
test_only_current_term_entries_committed_by_counting(void **state)
{
	const uint64_t leader_log[] = {1, 2};
	const uint64_t other_log[] = {1};
	struct raft_msg m = {0};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_set_log(&net, 1, leader_log, 2, 2, 1);
	net_set_log(&net, 2, other_log, 1, 2, 1);
	net_set_log(&net, 3, other_log, 1, 2, 1);
	net_isolate(&net, 1); /* we play the followers by hand */
	net_step(&net, 1, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_deliver(&net);
	m = (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 2, .term = 3};
	inject(&net, 1, m);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 1).role, RAFT_LEADER);
	assert_int_equal(status_of(&net, 1).last_index, 3); /* the own-term empty entry */
	/* Node 2 acknowledges index 2 (term 2): a majority holds it, yet it is old-term. */
	m = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 2, .term = 3, .index = 2};
	inject(&net, 1, m);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 1).commit, 1);
	/* Once the term-3 entry is on a majority, both commit. */
	m.index = 3;
	inject(&net, 1, m);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 1).commit, 3);
	net_free(&net);
}

/* A follower refuses an append whose previous entry does not match and hints where to go. */
static void
test_follower_rejects_mismatched_append(void **state)
{
	const uint64_t log[] = {1, 1, 1};
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_entry e = {.term = 2, .index = 4, .type = RAFT_ENTRY_NORMAL};
	struct raft_msg m = {0};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_set_log(&net, 2, log, 3, 2, 1);
	net_isolate(&net, 2);
	m = (struct raft_msg){.type = RAFT_MSG_APPEND,
	                      .from = 1,
	                      .term = 2,
	                      .index = 3,
	                      .log_term = 2,
	                      .commit = 1,
	                      .entries = &e,
	                      .n_entries = 1};
	inject(&net, 2, m);
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_APPEND_RESP);
	assert_true(m.reject);
	assert_int_equal(m.index, 3);
	assert_int_equal(m.reject_hint_index, 3); /* its entry 3 has term 1 <= 2 */
	assert_int_equal(m.reject_hint_term, 1);
	assert_int_equal(status_of(&net, 2).last_index, 3);
	assert_int_equal(status_of(&net, 2).leader_id, 1);
	net_free(&net);
}

/* The Raft paper's Figure 7: the leader brings every kind of divergent follower in line. */
static void
test_leader_repairs_divergent_logs_figure7(void **state)
{
	static const uint64_t leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const uint64_t a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
	static const uint64_t b[] = {1, 1, 1, 4};
	static const uint64_t c[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
	static const uint64_t d[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
	static const uint64_t e[] = {1, 1, 1, 4, 4, 4, 4};
	static const uint64_t f[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	const uint64_t *logs[] = {leader, a, b, c, d, e, f};
	const size_t lens[] = {10, 9, 4, 11, 12, 7, 11};
	struct raft_status ls;
	struct net net;

	(void)state;
	net_init(&net, 7, 0, NULL);
	for (uint64_t id = 1; id <= 7; id++)
		net_set_log(&net, id, logs[id - 1], lens[id - 1], 7, 3);
	assert_int_equal(net_elect(&net, 1), 1);
	assert_int_equal(net_propose(&net, 1, "after-repair"), 0);
	net_deliver(&net);
	net_tick_all(&net, 3);
	ls = status_of(&net, 1);
	assert_int_equal(ls.last_index, 12); /* 10 + empty entry + proposal */
	assert_int_equal(ls.commit, 12);
	for (uint64_t id = 2; id <= 7; id++) {
		struct raft_status st = status_of(&net, id);

		assert_int_equal(st.last_index, ls.last_index);
		assert_int_equal(st.commit, ls.commit);
		for (uint64_t i = 1; i <= ls.last_index; i++)
			assert_int_equal(term_at(&net, id, i), term_at(&net, 1, i));
	}
	net_free(&net);
}

/* Uncommitted entries of a higher term on a follower are replaced by the new leader's. */
static void
test_new_leader_overwrites_uncommitted_higher_term_entries(void **state)
{
	const uint64_t base[] = {1, 2};
	const uint64_t stale[] = {1, 3, 3};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_set_log(&net, 1, base, 2, 3, 1);
	net_set_log(&net, 2, base, 2, 3, 1);
	net_set_log(&net, 3, stale, 3, 3, 1);
	/* Node 3 is more up to date, but nodes 1 and 2 are a majority. */
	net_isolate(&net, 3);
	assert_int_equal(net_elect(&net, 1), 1);
	net_heal(&net);
	net_tick_all(&net, 2);
	assert_int_equal(status_of(&net, 3).leader_id, 1);
	assert_int_equal(term_at(&net, 3, 2), 2);
	assert_int_equal(term_at(&net, 3, 3), status_of(&net, 1).term);
	assert_int_equal(status_of(&net, 3).commit, 3);
	net_free(&net);
}

/* After a leader change nothing commits until the new leader's own entry does. */
static void
test_no_commit_after_leader_change_until_new_term_entry(void **state)
{
	struct net net;
	uint64_t x;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	assert_int_equal(net_elect(&net, 1), 1);
	/* x reaches 2 and 3 but no acknowledgement gets back to 1. */
	net.cut[2][1] = net.cut[3][1] = true;
	assert_int_equal(net_propose(&net, 1, "x"), 0);
	net_deliver(&net);
	x = status_of(&net, 1).last_index;
	assert_true(status_of(&net, 1).commit < x);
	assert_int_equal(status_of(&net, 2).last_index, x);
	net_crash(&net, 1);
	net_heal(&net);
	net.drop_type_mask = 1u << RAFT_MSG_APPEND_RESP;
	assert_int_equal(net_elect(&net, 2), 2);
	net_tick_all(&net, 3);
	assert_true(status_of(&net, 2).commit < x);
	assert_int_equal(net_applied_normal(&net, 2), 0);
	net.drop_type_mask = 0;
	net_tick_all(&net, 2);
	assert_int_equal(status_of(&net, 2).commit, x + 1);
	assert_int_equal(net_applied_normal(&net, 2), 1);
	assert_int_equal(net_applied_normal(&net, 3), 1);
	net_free(&net);
}

/* Two candidates in a row: the one with the shorter log loses, terms converge. */
static void
test_dueling_candidates(void **state)
{
	struct net net;
	uint64_t leader;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net.cut[1][3] = net.cut[3][1] = true;
	assert_int_equal(net_elect(&net, 1), 1);
	net_elect(&net, 3); /* 2 already voted in term 1 */
	assert_int_equal(status_of(&net, 3).role, RAFT_CANDIDATE);
	assert_int_equal(status_of(&net, 3).term, 1);
	net_heal(&net);
	net_elect(&net, 3); /* term 2, but its log lacks the empty entry of term 1 */
	assert_int_not_equal(status_of(&net, 3).role, RAFT_LEADER);
	assert_int_equal(status_of(&net, 1).term, 2);
	assert_int_equal(status_of(&net, 1).role, RAFT_FOLLOWER);
	net_tick_all(&net, 4 * ELECTION);
	leader = net_leader(&net);
	assert_true(leader == 1 || leader == 2);
	net_free(&net);
}

/* With pre-vote, a node that cannot win never raises its term. */
static void
test_dueling_pre_candidates(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net.cut[1][3] = net.cut[3][1] = true;
	assert_int_equal(net_elect(&net, 1), 1);
	net_elect(&net, 3);
	assert_int_equal(status_of(&net, 3).term, 1);
	net_heal(&net);
	net_elect(&net, 3);
	assert_int_equal(status_of(&net, 3).term, 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_LEADER);
	assert_int_equal(status_of(&net, 1).term, 1);
	net_tick_all(&net, ELECTION);
	assert_int_equal(net_leader(&net), 1);
	assert_int_equal(status_of(&net, 3).leader_id, 1);
	net_free(&net);
}

/* Messages from an older term change nothing (and are counted). */
static void
test_stale_term_messages_ignored(void **state)
{
	struct raft_entry e = {.term = 1, .index = 2, .type = RAFT_ENTRY_NORMAL};
	struct raft_status before, after;
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 1);
	net_tick_all(&net, 3 * ELECTION);
	assert_int_equal(net_leader(&net) == 2 || net_leader(&net) == 3, 1);
	before = status_of(&net, 2);
	m = (struct raft_msg){.type = RAFT_MSG_APPEND,
	                      .from = 1,
	                      .term = 1,
	                      .index = 1,
	                      .log_term = 1,
	                      .commit = 2,
	                      .entries = &e,
	                      .n_entries = 1};
	assert_int_equal(inject(&net, 2, m), 0);
	m = (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 1, .term = 1};
	assert_int_equal(inject(&net, 2, m), 0);
	after = status_of(&net, 2);
	assert_int_equal(after.term, before.term);
	assert_int_equal(after.leader_id, before.leader_id);
	assert_int_equal(after.last_index, before.last_index);
	assert_int_equal(after.commit, before.commit);
	assert_int_equal(after.counters.msgs_dropped_stale, before.counters.msgs_dropped_stale + 2);
	net_free(&net);
}

/* A stale vote request is refused with the current term, which the candidate adopts. */
static void
test_stale_candidate_learns_current_term(void **state)
{
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_set_log(&net, 2, NULL, 0, 5, 0);
	net_isolate(&net, 2);
	m = (struct raft_msg){.type = RAFT_MSG_VOTE, .from = 1, .term = 3};
	assert_int_equal(inject(&net, 2, m), 0);
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_VOTE_RESP);
	assert_true(m.reject);
	assert_int_equal(m.term, 5);
	net_heal(&net);
	net_step(&net, 1, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_deliver(&net); /* 1 campaigns in term 1, hears term 5 from node 2 */
	assert_true(status_of(&net, 1).term >= 5);
	net_free(&net);
}

/* A leader that stops hearing from a quorum steps down after an election timeout. */
static void
test_check_quorum_step_down(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 1);
	net_tick(&net, 1, ELECTION - 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_LEADER);
	net_tick(&net, 1, ELECTION + 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_FOLLOWER);
	assert_int_equal(status_of(&net, 1).leader_id, 0);
	net_free(&net);
}

/*
 * Without pre-vote, a partitioned node keeps raising its term; the others ignore its votes
 * (leases), but the stale leader learns its term from the answer to a heartbeat, steps down,
 * and the cluster elects a leader in a higher term.
 */
static void
test_higher_term_candidate_frees_stuck_cluster(void **state)
{
	struct net net;
	uint64_t t3;

	(void)state;
	net_init(&net, 3, 0, no_prevote_check_quorum);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 3);
	net_tick(&net, 3, 4 * ELECTION);
	t3 = status_of(&net, 3).term;
	assert_true(t3 > 1);
	assert_int_equal(status_of(&net, 3).role, RAFT_CANDIDATE);
	net_heal(&net);
	net_tick(&net, 1, 1); /* heartbeat reaches 3, whose answer carries its term */
	assert_int_equal(status_of(&net, 1).role, RAFT_FOLLOWER);
	assert_int_equal(status_of(&net, 1).term, t3);
	net_tick_all(&net, 4 * ELECTION);
	assert_int_not_equal(net_leader(&net), 0);
	assert_true(status_of(&net, net_leader(&net)).term > t3 - 1);
	net_free(&net);
}

/* Pre-vote: a partitioned follower that rejoins does not disturb the leader or its term. */
static void
test_pre_vote_rejoining_follower_does_not_disrupt(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 3);
	net_tick_all(&net, 5 * ELECTION);
	assert_int_equal(status_of(&net, 3).term, 1);
	assert_true(status_of(&net, 3).counters.elections_started == 0);
	net_heal(&net);
	net_tick_all(&net, 2 * ELECTION);
	assert_int_equal(net_leader(&net), 1);
	assert_int_equal(status_of(&net, 1).term, 1);
	assert_int_equal(status_of(&net, 3).leader_id, 1);
	net_free(&net);
}

/*
 * Pre-vote after a leader dies: the first follower whose timer fires asks the other while
 * the other still holds the dead leader's lease, and the other drops the request without
 * an answer. The pre-candidate asks again every heartbeat interval, so it wins as soon as
 * that lease runs out, not one whole randomized timeout later.
 */
static void
test_pre_vote_asked_again_when_a_lease_runs_out(void **state)
{
	struct raft_status st;
	struct net net;
	int ticks = 0;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_crash(&net, 1);
	/* Only node 2's clock runs: node 3 stays inside the lease and drops its pre-vote. */
	while (status_of(&net, 2).role != RAFT_PRE_CANDIDATE && ticks < 2 * ELECTION) {
		net_tick(&net, 2, 1);
		ticks++;
	}
	assert_int_equal(status_of(&net, 2).role, RAFT_PRE_CANDIDATE);
	assert_int_equal(status_of(&net, 2).term, 1);
	/* Node 3's lease runs out (it does not campaign itself this early). */
	net_tick(&net, 3, ELECTION);
	st = status_of(&net, 3);
	assert_int_equal(st.role, RAFT_FOLLOWER);
	assert_int_equal(st.term, 1);
	/* One heartbeat interval later node 2 has asked again and won. */
	net_tick(&net, 2, 1);
	assert_int_equal(net_leader(&net), 2);
	st = status_of(&net, 2);
	assert_int_equal(st.term, 2);
	assert_int_equal(st.counters.elections_started, 1);
	net_free(&net);
}

/* Learners never campaign, vote or count toward a quorum; once promoted they count. */
static void
test_learners_never_vote_and_are_promoted(void **state)
{
	struct raft_status st;
	struct net net;
	uint64_t last;

	(void)state;
	net_init(&net, 3, 1, NULL);
	net_tick(&net, 4, 5 * ELECTION); /* the learner alone: never campaigns */
	assert_int_equal(status_of(&net, 4).term, 0);
	assert_int_equal(net_step(&net, 4, &(struct raft_event){.type = RAFT_EV_CAMPAIGN}),
	                 -EINVAL);
	assert_int_equal(net_elect(&net, 1), 1);
	/* Leader + learner only: no quorum. */
	net_isolate(&net, 2);
	net_isolate(&net, 3);
	assert_int_equal(net_propose(&net, 1, "needs-a-voter"), 0);
	net_deliver(&net);
	st = status_of(&net, 1);
	assert_int_equal(status_of(&net, 4).last_index, st.last_index);
	assert_true(st.commit < st.last_index);
	net_heal(&net);
	net_tick_all(&net, 2);
	assert_int_equal(status_of(&net, 1).commit, st.last_index);
	/* Promote 4: with four voters, 1 + 2 + 4 are a quorum without 3. */
	assert_int_equal(conf(&net, 1, RAFT_CONF_PROMOTE, 4), 0);
	net_deliver(&net);
	assert_true(is_voter(&net, 1, 4));
	assert_true(is_voter(&net, 4, 4));
	net_isolate(&net, 3);
	assert_int_equal(net_propose(&net, 1, "counted-by-4"), 0);
	net_deliver(&net);
	last = status_of(&net, 1).last_index;
	assert_int_equal(status_of(&net, 1).commit, last);
	net_free(&net);
}

/* Removing the leader: it leads until the change commits, steps down, a new leader follows. */
static void
test_removing_the_leader(void **state)
{
	struct net net;
	uint64_t leader;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	assert_int_equal(conf(&net, 1, RAFT_CONF_REMOVE, 1), 0);
	net_deliver(&net);
	assert_false(is_member(&net, 2, 1));
	/* The old leader handed over with timeout-now: a new leader without any timeout. */
	leader = net_leader(&net);
	assert_true(leader == 2 || leader == 3);
	assert_int_equal(net.sent[RAFT_MSG_TIMEOUT_NOW][leader], 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_FOLLOWER);
	net_isolate(&net, 1);
	net_tick_all(&net, 4 * ELECTION);
	leader = net_leader(&net);
	assert_true(leader == 2 || leader == 3);
	assert_int_equal(net_propose(&net, leader, "two-voters"), 0);
	net_deliver(&net);
	assert_int_equal(status_of(&net, leader).commit, status_of(&net, leader).last_index);
	net_free(&net);
}

/*
 * A leader appends its own removal and crashes before anyone else has the entry. The
 * remaining voter cannot win (the removed node's log is longer), so the removed node must
 * still be able to campaign, finish its removal, and hand over.
 */
static void
test_removed_leader_crashed_before_commit(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 2, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net_isolate(&net, 1);
	assert_int_equal(conf(&net, 1, RAFT_CONF_REMOVE, 1), 0);
	net_deliver(&net);
	net_crash(&net, 1);
	net_restart(&net, 1);
	assert_false(is_voter(&net, 1, 1));
	net_heal(&net);
	net_tick_all(&net, 10 * ELECTION);
	assert_int_equal(net_leader(&net), 2);
	assert_false(is_member(&net, 2, 1));
	assert_int_equal(net_propose(&net, 2, "alone"), 0);
	net_deliver(&net);
	assert_int_equal(net_applied_normal(&net, 2), 1);
	net_free(&net);
}

/* A pending entry that lacks a quorum commits once a removal shrinks the quorum. */
static void
test_pending_entries_commit_after_removal_shrinks_quorum(void **state)
{
	struct net net;
	uint64_t x;

	(void)state;
	net_init(&net, 2, 0, no_check_quorum);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net_crash(&net, 2);
	assert_int_equal(net_propose(&net, 1, "x"), 0);
	net_deliver(&net);
	x = status_of(&net, 1).last_index;
	assert_true(status_of(&net, 1).commit < x);
	assert_int_equal(conf(&net, 1, RAFT_CONF_REMOVE, 2), 0);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 1).commit, x + 1);
	assert_int_equal(net_applied_normal(&net, 1), 1);
	net_free(&net);
}

/* One change at a time, and none before the leader committed an entry of its term. */
static void
test_second_membership_change_refused(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 2, NULL);
	net.drop_type_mask = 1u << RAFT_MSG_APPEND_RESP;
	assert_int_equal(net_elect(&net, 1), 1);
	assert_true(status_of(&net, 1).commit < status_of(&net, 1).last_index);
	assert_int_equal(conf(&net, 1, RAFT_CONF_PROMOTE, 4), -SP_EBUSY);
	net.drop_type_mask = 0;
	net_tick_all(&net, 2);
	assert_int_equal(status_of(&net, 1).commit, status_of(&net, 1).last_index);
	assert_int_equal(conf(&net, 1, RAFT_CONF_REMOVE, 4), 0);
	assert_true(status_of(&net, 1).conf_pending);
	assert_int_equal(conf(&net, 1, RAFT_CONF_PROMOTE, 5), -SP_EBUSY);
	net_deliver(&net);
	assert_false(status_of(&net, 1).conf_pending);
	assert_int_equal(conf(&net, 1, RAFT_CONF_PROMOTE, 5), 0);
	assert_int_equal(conf(&net, 2, RAFT_CONF_PROMOTE, 5), -SP_ENOTLEADER);
	net_deliver(&net);
	assert_true(is_voter(&net, 3, 5));
	assert_false(is_member(&net, 3, 4));
	net_free(&net);
}

static void
test_transfer_to_up_to_date_follower(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	assert_int_equal(transfer_to(&net, 1, 2), 0);
	net_deliver(&net);
	assert_int_equal(net_leader(&net), 2);
	assert_int_equal(status_of(&net, 2).term, 2);
	assert_int_equal(status_of(&net, 1).role, RAFT_FOLLOWER);
	assert_int_equal(status_of(&net, 1).leader_id, 2);
	net_free(&net);
}

static void
test_transfer_to_slow_follower(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_crash(&net, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(net_propose(&net, 1, "while-3-is-down"), 0);
	net_deliver(&net);
	net_restart(&net, 3);
	assert_true(status_of(&net, 3).last_index < status_of(&net, 1).last_index);
	net.hold[3] = true;
	assert_int_equal(transfer_to(&net, 1, 3), 0);
	net_deliver(&net);
	/* While it catches up: no TimeoutNow yet, proposals refused. */
	assert_int_equal(net.sent[RAFT_MSG_TIMEOUT_NOW][3], 0);
	assert_int_equal(net_propose(&net, 1, "during-transfer"), -SP_EBUSY);
	net_release(&net, 3);
	net_deliver(&net);
	net_tick_all(&net, 2);
	assert_int_equal(net.sent[RAFT_MSG_TIMEOUT_NOW][3], 1);
	assert_int_equal(net_leader(&net), 3);
	assert_int_equal(net_applied_normal(&net, 3), 5);
	net_free(&net);
}

static void
test_transfer_timeout(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_check_quorum);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 3);
	assert_int_equal(net_propose(&net, 1, "3-misses-this"), 0);
	net_deliver(&net);
	assert_int_equal(transfer_to(&net, 1, 3), 0);
	assert_int_equal(status_of(&net, 1).transfer_target, 3);
	net_tick(&net, 1, ELECTION - 1);
	assert_int_equal(status_of(&net, 1).transfer_target, 3);
	net_tick(&net, 1, 1);
	assert_int_equal(status_of(&net, 1).transfer_target, 0);
	assert_int_equal(net_leader(&net), 1);
	assert_int_equal(net_propose(&net, 1, "after-timeout"), 0);
	assert_int_equal(transfer_to(&net, 1, 1), -EINVAL);
	assert_int_equal(transfer_to(&net, 2, 1), -SP_ENOTLEADER);
	net_free(&net);
}

/* ReadIndex is not served before the leader commits an entry of its own term. */
static void
test_read_index_waits_for_own_term_commit(void **state)
{
	struct net_node *n1;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	n1 = net_node(&net, 1);
	net.drop_type_mask = 1u << RAFT_MSG_APPEND_RESP;
	assert_int_equal(net_elect(&net, 1), 1);
	assert_int_equal(read_index(&net, 1, 7), 0);
	net_tick_all(&net, 3);
	assert_int_equal(n1->n_reads, 0);
	net.drop_type_mask = 0;
	net_tick_all(&net, 2);
	assert_int_equal(n1->n_reads, 1);
	assert_int_equal(n1->reads[0].ctx, 7);
	assert_int_equal(n1->reads[0].status, 0);
	assert_int_equal(n1->reads[0].index, status_of(&net, 1).last_index);
	/* After the own-term commit: served after one heartbeat round. */
	assert_int_equal(net_propose(&net, 1, "w"), 0);
	net_deliver(&net);
	assert_int_equal(read_index(&net, 1, 8), 0);
	net_deliver(&net);
	assert_int_equal(n1->n_reads, 2);
	assert_int_equal(n1->reads[1].ctx, 8);
	assert_int_equal(n1->reads[1].index, status_of(&net, 1).commit);
	assert_int_equal(read_index(&net, 2, 9), -SP_ENOTLEADER);
	net_free(&net);
}

/* A read that cannot reach a quorum fails when the leader steps down. */
static void
test_read_index_fails_on_step_down(void **state)
{
	struct net_node *n1;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	n1 = net_node(&net, 1);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 1);
	assert_int_equal(read_index(&net, 1, 42), 0);
	net_tick(&net, 1, 2 * ELECTION);
	assert_int_equal(n1->n_reads, 1);
	assert_int_equal(n1->reads[0].ctx, 42);
	assert_int_equal(n1->reads[0].status, -SP_ENOTLEADER);
	net_free(&net);
}

/* A follower that missed compacted entries is caught up with a snapshot. */
static void
test_snapshot_catch_up_after_compaction(void **state)
{
	static const char snap[] = "state-machine-image";
	struct raft_event ev = {.type = RAFT_EV_COMPACT};
	struct raft_status st;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_crash(&net, 3);
	for (int i = 0; i < 20; i++)
		assert_int_equal(net_propose(&net, 1, "entry"), 0);
	net_deliver(&net);
	st = status_of(&net, 1);
	assert_int_equal(st.applied, st.last_index);
	ev.compact.index = st.applied;
	ev.compact.data = snap;
	ev.compact.len = sizeof(snap);
	assert_int_equal(net_step(&net, 1, &ev), 0);
	assert_int_equal(net_step(&net, 2, &ev), 0);
	ev.compact.index = st.applied + 1;
	assert_int_equal(net_step(&net, 2, &ev), -EINVAL); /* beyond applied */
	assert_int_equal(status_of(&net, 1).snapshot_index, st.applied);
	net_restart(&net, 3);
	net_tick_all(&net, 3);
	assert_true(status_of(&net, 1).counters.snapshots_sent >= 1);
	assert_int_equal(status_of(&net, 3).snapshot_index, st.applied);
	assert_int_equal(net_node(&net, 3)->snap_meta.index, st.applied);
	assert_int_equal(net_node(&net, 3)->snap_len, sizeof(snap));
	assert_memory_equal(net_node(&net, 3)->snap_data, snap, sizeof(snap));
	assert_int_equal(net_propose(&net, 1, "after-snapshot"), 0);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 3).commit, status_of(&net, 1).commit);
	assert_int_equal(status_of(&net, 3).applied, status_of(&net, 1).last_index);
	net_free(&net);
}

/* Appends in flight to a slow follower stop at max_inflight_msgs and resume on acks. */
static void
test_flow_control_pause_and_recovery(void **state)
{
	struct raft_status st;
	uint64_t before;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, inflight_2);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net.hold[3] = true;
	before = net.sent_entries[3];
	for (int i = 0; i < 10; i++) {
		assert_int_equal(net_propose(&net, 1, "flow"), 0);
		net_deliver(&net);
	}
	assert_int_equal(net.sent_entries[3] - before, 2);
	st = status_of(&net, 1);
	for (uint32_t i = 0; i < st.n_progress; i++) {
		if (st.progress[i].id != 3)
			continue;
		assert_int_equal(st.progress[i].state, RAFT_PROGRESS_REPLICATE);
		assert_int_equal(st.progress[i].inflight, 2);
	}
	assert_int_equal(st.commit, st.last_index); /* 1 and 2 are a quorum */
	net_release(&net, 3);
	net_deliver(&net);
	net_tick_all(&net, 3);
	assert_int_equal(status_of(&net, 3).last_index, st.last_index);
	assert_int_equal(status_of(&net, 3).commit, st.last_index);
	net_free(&net);
}

/* A partitioned leader accepts only max_uncommitted_bytes of proposals. */
static void
test_bounded_log_growth_of_partitioned_leader(void **state)
{
	char payload[101];
	struct raft_status st;
	struct net net;
	int accepted = 0, rc = 0;

	(void)state;
	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	net_init(&net, 3, 0, small_uncommitted);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net_isolate(&net, 1);
	for (int i = 0; i < 100; i++) {
		rc = net_propose(&net, 1, payload);
		if (rc < 0)
			break;
		accepted++;
	}
	assert_int_equal(rc, -SP_EFULL);
	assert_true(accepted >= 1 && accepted <= 1024 / 100);
	st = status_of(&net, 1);
	assert_true(st.uncommitted_bytes <= 1024);
	assert_true(st.counters.proposals_dropped >= 1);
	/* The majority side moves on; the old leader's uncommitted tail is replaced. */
	net_tick_all(&net, 4 * ELECTION);
	net_heal(&net);
	net_tick_all(&net, 4 * ELECTION);
	assert_int_not_equal(net_leader(&net), 1);
	assert_int_equal(status_of(&net, 1).commit, status_of(&net, net_leader(&net)).commit);
	assert_int_equal(net_applied_normal(&net, 1), 0);
	net_free(&net);
}

/*
 * A vote is durable before it is announced: a voter that crashes before persisting its vote
 * never told anyone, so after restarting it may vote again without making two leaders.
 */
static void
test_vote_persisted_before_reply(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net.cut[1][2] = net.cut[2][1] = true;
	net_step(&net, 1, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_flush(&net, 1);
	while (net.q_len > 0 && net.q[net.q_head].to != 3)
		assert_true(net_pop_deliver(&net));
	assert_true(net_pop_deliver(&net)); /* 3 votes for 1 in term 1 ... */
	net_crash_unpersisted(&net, 3);     /* ... and crashes before storing it */
	net_restart(&net, 3);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 3).vote, 0);
	assert_int_equal(net_elect(&net, 2), 2); /* term 1 as well; the harness checks */
	assert_int_equal(status_of(&net, 2).term, 1);
	assert_int_not_equal(status_of(&net, 1).role, RAFT_LEADER);
	net_free(&net);
}

/* A follower forwards proposals to the leader, or refuses them with a leader hint. */
static void
test_proposal_forwarding_and_rejection(void **state)
{
	struct raft_propose_result res = {0};
	struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .data = "fw", .len = 2};
	struct raft_event ev = {.type = RAFT_EV_PROPOSE};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_propose(&net, 2, "no-leader-yet"), -SP_ENOTLEADER);
	assert_int_equal(net_elect(&net, 1), 1);
	ev.propose.entries = &e;
	ev.propose.n_entries = 1;
	ev.propose.result = &res;
	assert_int_equal(net_step(&net, 2, &ev), 0);
	assert_true(res.forwarded);
	net_deliver(&net);
	assert_int_equal(net_applied_normal(&net, 3), 1);
	net_free(&net);

	net_init(&net, 3, 0, no_forward);
	assert_int_equal(net_elect(&net, 1), 1);
	assert_int_equal(net_propose(&net, 2, "refused"), -SP_ENOTLEADER);
	assert_int_equal(status_of(&net, 2).leader_id, 1);
	assert_int_equal(net_step(&net, 1, &ev), 0);
	assert_false(res.forwarded);
	assert_int_equal(res.first_index, status_of(&net, 1).last_index);
	net_free(&net);
}

/* One propose event of many entries travels as one append per follower. */
static void
test_proposal_batching(void **state)
{
	struct raft_entry batch[100];
	struct raft_event ev = {.type = RAFT_EV_PROPOSE};
	struct raft_entry big[RAFT_PROPOSE_BATCH_MAX + 1];
	uint64_t before;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	for (size_t i = 0; i < SP_ARRAY_SIZE(batch); i++)
		batch[i] = (struct raft_entry){.type = RAFT_ENTRY_NORMAL, .data = "b", .len = 1};
	ev.propose.entries = batch;
	ev.propose.n_entries = SP_ARRAY_SIZE(batch);
	before = net.sent[RAFT_MSG_APPEND][2];
	assert_int_equal(net_step(&net, 1, &ev), 0);
	net_flush(&net, 1);
	assert_int_equal(net.sent[RAFT_MSG_APPEND][2] - before, 1);
	net_deliver(&net);
	assert_int_equal(net_applied_normal(&net, 2), 100);
	memset(big, 0, sizeof(big));
	ev.propose.entries = big;
	ev.propose.n_entries = SP_ARRAY_SIZE(big);
	assert_int_equal(net_step(&net, 1, &ev), -SP_ETOOBIG);
	net_free(&net);
}

/* Crash and restart: a node keeps its durable log and term and rejoins. */
static void
test_restart_keeps_durable_state(void **state)
{
	struct raft_status before;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(net_propose(&net, 1, "durable"), 0);
	net_deliver(&net);
	before = status_of(&net, 2);
	net_crash(&net, 2);
	net_restart(&net, 2);
	assert_int_equal(status_of(&net, 2).term, before.term);
	assert_int_equal(status_of(&net, 2).last_index, before.last_index);
	net_tick_all(&net, 2);
	assert_int_equal(net_applied_normal(&net, 2), 3);
	net_free(&net);
}

/* Bad input is refused with a clear error and counted; nothing changes. */
static void
test_bad_messages_and_events_refused(void **state)
{
	struct raft_entry e = {.term = 9, .index = 5, .type = RAFT_ENTRY_NORMAL};
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	m = (struct raft_msg){.type = RAFT_MSG_APPEND, .from = 1, .to = 3, .term = 1};
	assert_int_equal(net_step(&net, 2, &(struct raft_event){.type = RAFT_EV_MSG, .msg = &m}),
	                 -SP_EMALFORMED); /* addressed to someone else */
	m = (struct raft_msg){.type = RAFT_MSG_APPEND,
	                      .from = 1,
	                      .term = 1,
	                      .index = 1,
	                      .entries = &e,
	                      .n_entries = 1};
	assert_int_equal(inject(&net, 2, m), -SP_EMALFORMED); /* index gap, term > msg term */
	m = (struct raft_msg){.type = 99, .from = 1, .term = 1};
	assert_int_equal(inject(&net, 2, m), -SP_EMALFORMED);
	m = (struct raft_msg){.type = RAFT_MSG_HEARTBEAT, .from = 2, .term = 1};
	assert_int_equal(inject(&net, 2, m), -SP_EMALFORMED); /* from itself */
	assert_int_equal(status_of(&net, 2).counters.msgs_dropped_invalid, 4);
	assert_int_equal(status_of(&net, 2).term, 0);
	assert_int_equal(net_step(&net, 2, &(struct raft_event){.type = 77}), -EINVAL);
	net_free(&net);
}

/* Outgoing messages beyond RAFT_READY_MSGS_MAX are dropped and counted. */
static void
test_outbox_bound(void **state)
{
	struct raft_event tick = {.type = RAFT_EV_TICK};
	struct net net;
	int ticks = RAFT_READY_MSGS_MAX / 2 + 100;

	(void)state;
	net_init(&net, 3, 0, no_check_quorum);
	assert_int_equal(net_elect(&net, 1), 1);
	for (int i = 0; i < ticks; i++)
		assert_int_equal(raft_step(net_raft(&net, 1), &tick), 0);
	assert_int_equal(status_of(&net, 1).counters.msgs_dropped_ready_full,
	                 (uint64_t)(2 * ticks - RAFT_READY_MSGS_MAX));
	net_deliver(&net);
	assert_int_equal(net_leader(&net), 1);
	net_free(&net);
}

static int
propose_batch(struct net *net, uint64_t id, size_t n)
{
	static struct raft_entry batch[RAFT_PROPOSE_BATCH_MAX];
	struct raft_event ev = {.type = RAFT_EV_PROPOSE};

	for (size_t i = 0; i < n; i++)
		batch[i] = (struct raft_entry){.type = RAFT_ENTRY_NORMAL, .data = "e", .len = 1};
	ev.propose.entries = batch;
	ev.propose.n_entries = n;
	return net_step(net, id, &ev);
}

/* One ready hands out at most RAFT_READY_APPLY_MAX committed entries; the rest follow. */
static void
test_ready_apply_bound(void **state)
{
	struct raft *r;
	struct raft_ready rd;
	struct net net;
	uint64_t commit;

	(void)state;
	net_init(&net, 1, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(propose_batch(&net, 1, RAFT_PROPOSE_BATCH_MAX), 0);
	r = net_raft(&net, 1);
	assert_true(raft_ready_get(r, &rd)); /* persist the 5120 entries */
	assert_int_equal(rd.n_entries, 5 * RAFT_PROPOSE_BATCH_MAX);
	assert_int_equal(rd.n_committed, 0);
	raft_ready_advance(r); /* a single voter commits what it persisted */
	commit = status_of(&net, 1).commit;
	assert_int_equal(commit, status_of(&net, 1).last_index);
	assert_true(raft_ready_get(r, &rd));
	assert_int_equal(rd.n_committed, RAFT_READY_APPLY_MAX);
	raft_ready_advance(r);
	assert_true(raft_ready_get(r, &rd));
	assert_int_equal(rd.n_committed, commit - 1 - RAFT_READY_APPLY_MAX);
	raft_ready_advance(r);
	assert_int_equal(status_of(&net, 1).applied, commit);
	net_free(&net);
}

/* A follower far behind gets appends of at most RAFT_MSG_ENTRIES_MAX entries each. */
static void
test_append_entries_bound(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_crash(&net, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(propose_batch(&net, 1, RAFT_PROPOSE_BATCH_MAX), 0);
		net_deliver(&net);
	}
	net.max_append_entries = 0;
	net_restart(&net, 3);
	net_tick_all(&net, 3);
	assert_int_equal(net.max_append_entries, RAFT_MSG_ENTRIES_MAX);
	assert_int_equal(status_of(&net, 3).commit, status_of(&net, 1).commit);
	assert_int_equal(net_applied_normal(&net, 3), 3 * RAFT_PROPOSE_BATCH_MAX);
	net_free(&net);
}

/* Entry and snapshot payload bounds are enforced before anything is read. */
static void
test_payload_bounds(void **state)
{
	struct raft_entry e = {
	        .type = RAFT_ENTRY_NORMAL, .data = "x", .len = RAFT_ENTRY_BYTES_MAX + 1};
	struct raft_event ev = {.type = RAFT_EV_PROPOSE};
	struct net net;

	(void)state;
	net_init(&net, 1, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	ev.propose.entries = &e;
	ev.propose.n_entries = 1;
	assert_int_equal(net_step(&net, 1, &ev), -SP_ETOOBIG);
	assert_int_equal(net_propose(&net, 1, "ok"), 0);
	net_deliver(&net);
	ev = (struct raft_event){.type = RAFT_EV_COMPACT};
	ev.compact.index = status_of(&net, 1).applied;
	ev.compact.data = "x";
	ev.compact.len = (size_t)RAFT_SNAPSHOT_BYTES_MAX + 1;
	assert_int_equal(net_step(&net, 1, &ev), -SP_ETOOBIG);
	ev.compact.len = 1;
	assert_int_equal(net_step(&net, 1, &ev), 0);
	assert_int_equal(net_step(&net, 1, &ev), -EINVAL); /* already compacted */
	net_free(&net);
}

/* The read queue holds RAFT_READS_PENDING_MAX requests; one more is refused. */
static void
test_read_queue_bound(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 1);
	for (uint64_t i = 0; i < RAFT_READS_PENDING_MAX; i++)
		assert_int_equal(read_index(&net, 1, i), 0);
	assert_int_equal(read_index(&net, 1, 1u << 20), -SP_EFULL);
	assert_int_equal(status_of(&net, 1).counters.reads_dropped, 1);
	net_free(&net);
}

/* ---- One test per rule (docs/raft.md, "Every rule and the test that breaks it") ---- */

/* Builds an append from leader `from` in `term` after (prev, prev_term) carrying n entries. */
static struct raft_msg
append_msg(uint64_t from, uint64_t term, uint64_t prev, uint64_t prev_term, uint64_t commit,
           const struct raft_entry *ents, uint32_t n)
{
	return (struct raft_msg){.type = RAFT_MSG_APPEND,
	                         .from = from,
	                         .term = term,
	                         .index = prev,
	                         .log_term = prev_term,
	                         .commit = commit,
	                         .entries = ents,
	                         .n_entries = n};
}

/* Makes isolated node id (no pre-vote) a leader of the next term with one injected vote. */
static void
elect_by_hand(struct net *net, uint64_t id, uint64_t voter)
{
	struct raft_msg m;

	net_step(net, id, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_flush(net, id);
	assert_int_equal(status_of(net, id).role, RAFT_CANDIDATE);
	m = (struct raft_msg){
	        .type = RAFT_MSG_VOTE_RESP, .from = voter, .term = status_of(net, id).term};
	inject(net, id, m);
	net_flush(net, id);
	assert_int_equal(status_of(net, id).role, RAFT_LEADER);
}

/* AppendEntries rule 1: an append from an older term is refused and answered with ours. */
static void
test_append_from_older_term_refused(void **state)
{
	const uint64_t log[] = {1, 1};
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_entry e = {.term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL};
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_set_log(&net, 2, log, 2, 3, 1);
	net_isolate(&net, 2);
	assert_int_equal(inject(&net, 2, append_msg(1, 2, 2, 1, 2, &e, 1)), 0);
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).last_index, 2);
	assert_int_equal(status_of(&net, 2).commit, 1);
	assert_int_equal(status_of(&net, 2).term, 3);
	assert_int_equal(status_of(&net, 2).leader_id, 0);
	assert_int_equal(status_of(&net, 2).counters.msgs_dropped_stale, 1);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_APPEND_RESP);
	assert_int_equal(m.term, 3); /* the old leader learns the term and steps down */
	net_free(&net);
}

/*
 * AppendEntries rules 3 and 4: a delayed copy of an old append, whose entries the follower
 * already holds, truncates nothing; an entry that conflicts deletes it and all that follow.
 */
static void
test_append_truncates_only_from_a_conflict(void **state)
{
	const uint64_t log[] = {1, 1, 1, 1};
	struct raft_entry old = {.term = 1, .index = 2, .type = RAFT_ENTRY_NORMAL};
	struct raft_entry fresh = {.term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL};
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_set_log(&net, 2, log, 4, 1, 1);
	net_isolate(&net, 2);
	/* The delayed duplicate: entry 2 of term 1, which 2 holds. */
	assert_int_equal(inject(&net, 2, append_msg(1, 1, 1, 1, 1, &old, 1)), 0);
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_false(m.reject);
	assert_int_equal(m.index, 2);
	assert_int_equal(status_of(&net, 2).last_index, 4);
	assert_int_equal(term_at(&net, 2, 4), 1);
	/* A leader of term 2 whose entry 3 conflicts: 3 and 4 go, its entry takes 3. */
	assert_int_equal(inject(&net, 2, append_msg(3, 2, 2, 1, 1, &fresh, 1)), 0);
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).last_index, 3);
	assert_int_equal(term_at(&net, 2, 3), 2);
	assert_int_equal(net_node(&net, 2)->n_log, 3); /* durable log truncated too */
	net_free(&net);
}

/*
 * AppendEntries rule 5: commitIndex = min(leaderCommit, index of the last new entry). A
 * follower whose log goes on past the append with entries of a deposed leader must not
 * commit them because the leader's commit index is higher.
 */
static void
test_follower_commits_only_what_the_append_verified(void **state)
{
	const uint64_t log[] = {1, 1, 2, 2}; /* 3 and 4: a term-2 leader's, never committed */
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_set_log(&net, 2, log, 4, 3, 1);
	net_isolate(&net, 2);
	/* The term-3 leader holds 1, 1, 3 and has committed 3; it probes at index 2. */
	assert_int_equal(inject(&net, 2, append_msg(1, 3, 2, 1, 3, NULL, 0)), 0);
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).commit, 2);
	assert_int_equal(status_of(&net, 2).applied, 2);
	net_free(&net);
}

/*
 * The same rule on the heartbeat path: a heartbeat carries no entries, so the commit index
 * it tells a follower is bounded by what that follower is known to hold. A follower still
 * holding a deposed leader's entries must not commit them.
 */
static void
test_heartbeat_commit_bounded_by_match(void **state)
{
	const uint64_t common[] = {1};
	const uint64_t stale[] = {1, 2, 2}; /* 2 and 3: a term-2 leader's, never committed */
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_set_log(&net, 1, common, 1, 2, 1);
	net_set_log(&net, 2, common, 1, 2, 1);
	net_set_log(&net, 3, stale, 3, 2, 1);
	net_isolate(&net, 3);
	assert_int_equal(net_elect(&net, 1), 1);
	assert_int_equal(net_propose(&net, 1, "x"), 0);
	net_deliver(&net);
	assert_int_equal(status_of(&net, 1).commit, 3);
	/* Only heartbeats reach 3: its log is not repaired, so nothing new may commit. */
	net_heal(&net);
	net.drop_type_mask = 1u << RAFT_MSG_APPEND;
	net_tick(&net, 1, 2);
	assert_true(net.sent[RAFT_MSG_HEARTBEAT][3] >= 1);
	assert_int_equal(status_of(&net, 3).commit, 1);
	assert_int_equal(term_at(&net, 3, 2), 2);
	net.drop_type_mask = 0;
	net_tick_all(&net, 2);
	assert_int_equal(status_of(&net, 3).commit, 3);
	assert_int_equal(term_at(&net, 3, 2), 3);
	net_free(&net);
}

/* RequestVote rule 2: one vote per term; a second candidate of the same term is refused. */
static void
test_one_vote_per_term(void **state)
{
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_isolate(&net, 2);
	inject(&net, 2, (struct raft_msg){.type = RAFT_MSG_VOTE, .from = 1, .term = 1});
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_VOTE_RESP);
	assert_false(m.reject);
	assert_int_equal(status_of(&net, 2).vote, 1);
	inject(&net, 2, (struct raft_msg){.type = RAFT_MSG_VOTE, .from = 3, .term = 1});
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_VOTE_RESP);
	assert_int_equal(m.to, 3);
	assert_true(m.reject);
	assert_int_equal(status_of(&net, 2).vote, 1);
	net_free(&net);
}

/* Section 5.4.1: the last terms are compared first; a longer log of an older term loses. */
static void
test_vote_compares_last_term_before_length(void **state)
{
	const uint64_t voter_log[] = {1, 2};
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_set_log(&net, 2, voter_log, 2, 2, 1);
	net_isolate(&net, 2);
	m = (struct raft_msg){
	        .type = RAFT_MSG_VOTE, .from = 1, .term = 3, .index = 3, .log_term = 1};
	inject(&net, 2, m);
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_VOTE_RESP);
	assert_true(m.reject);
	assert_int_equal(status_of(&net, 2).vote, 0);
	assert_int_equal(status_of(&net, 2).term, 3);
	net_free(&net);
}

/*
 * Pre-vote: granting a pre-vote changes neither the term nor the vote. A voter that kept
 * it as a vote would then grant a late request of that candidate in a term where it had
 * already voted for someone else.
 */
static void
test_pre_vote_changes_neither_term_nor_vote(void **state)
{
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_msg m;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_isolate(&net, 2);
	inject(&net, 2, (struct raft_msg){.type = RAFT_MSG_VOTE, .from = 1, .term = 1});
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).vote, 1);
	inject(&net, 2, (struct raft_msg){.type = RAFT_MSG_PRE_VOTE, .from = 3, .term = 2});
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_PRE_VOTE_RESP);
	assert_false(m.reject);
	assert_int_equal(m.term, 2);
	assert_int_equal(status_of(&net, 2).term, 1);
	assert_int_equal(status_of(&net, 2).vote, 1);
	/* Node 3's vote request of term 1, delayed, is refused: 2 voted for 1 then. */
	inject(&net, 2, (struct raft_msg){.type = RAFT_MSG_VOTE, .from = 3, .term = 1});
	net_flush(&net, 2);
	last_queued(&net, &m, ents);
	assert_int_equal(m.type, RAFT_MSG_VOTE_RESP);
	assert_true(m.reject);
	assert_int_equal(status_of(&net, 2).vote, 1);
	net_free(&net);
}

/* Candidates: leader only with votes from a majority; one refusal and a self-vote are not. */
static void
test_candidate_needs_a_majority_of_votes(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_isolate(&net, 1);
	net_step(&net, 1, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_flush(&net, 1);
	inject(&net, 1,
	       (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 2, .term = 1, .reject = true});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_CANDIDATE);
	inject(&net, 1, (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 3, .term = 1});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_LEADER);
	net_free(&net);
}

/* A vote granted in an earlier election does not count in this one. */
static void
test_stale_vote_response_not_counted(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_isolate(&net, 1);
	net_step(&net, 1, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_step(&net, 1, &(struct raft_event){.type = RAFT_EV_CAMPAIGN});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).term, 2);
	/* Node 2's vote for term 1 arrives late; in term 2 it may vote for someone else. */
	inject(&net, 1, (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 2, .term = 1});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_CANDIDATE);
	assert_int_equal(status_of(&net, 1).counters.msgs_dropped_stale, 1);
	inject(&net, 1, (struct raft_msg){.type = RAFT_MSG_VOTE_RESP, .from = 2, .term = 2});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_LEADER);
	net_free(&net);
}

/* All servers: a leader that sees a higher term in a response becomes a follower of it. */
static void
test_leader_steps_down_on_higher_term_response(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_isolate(&net, 1);
	inject(&net, 1, (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 2, .term = 5});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).role, RAFT_FOLLOWER);
	assert_int_equal(status_of(&net, 1).term, 5);
	assert_int_equal(status_of(&net, 1).vote, 0);
	net_free(&net);
}

/* All servers: only committed entries are applied. */
static void
test_entries_applied_only_once_committed(void **state)
{
	struct raft_entry e[2] = {{.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL},
	                          {.term = 1, .index = 2, .type = RAFT_ENTRY_NORMAL}};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_isolate(&net, 2);
	inject(&net, 2, append_msg(1, 1, 0, 0, 0, e, 2));
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).last_index, 2);
	assert_int_equal(status_of(&net, 2).applied, 0);
	assert_int_equal(net_node(&net, 2)->n_applied, 0);
	inject(&net, 2, append_msg(1, 1, 2, 1, 1, NULL, 0));
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).applied, 1);
	assert_int_equal(net_node(&net, 2)->n_applied, 1);
	net_free(&net);
}

/* Leaders: commit needs a majority of voters; the leader's own copy is not one. */
static void
test_leader_alone_does_not_commit(void **state)
{
	struct net net;

	(void)state;
	net_init(&net, 3, 0, no_prevote);
	net_isolate(&net, 1);
	elect_by_hand(&net, 1, 2);
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).last_index, 1);
	assert_int_equal(status_of(&net, 1).commit, 0);
	inject(&net, 1,
	       (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 2, .term = 1, .index = 1});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).commit, 1);
	net_free(&net);
}

/* The leader counts its own copy toward a commit only once it is durable. */
static void
test_leader_counts_itself_only_when_durable(void **state)
{
	uint64_t x;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net_isolate(&net, 1);
	assert_int_equal(net_propose(&net, 1, "x"), 0); /* not persisted yet */
	x = status_of(&net, 1).last_index;
	inject(&net, 1,
	       (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 2, .term = 1, .index = x});
	assert_int_equal(status_of(&net, 1).commit, x - 1); /* one durable copy of x */
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).commit, x);
	net_free(&net);
}

/* Leaders: matchIndex moves to what the follower acknowledged, not to what is in flight. */
static void
test_match_index_only_from_acknowledgements(void **state)
{
	struct raft_status st;
	uint64_t a, b;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net_isolate(&net, 1);
	assert_int_equal(net_propose(&net, 1, "a"), 0);
	net_flush(&net, 1);
	a = status_of(&net, 1).last_index;
	assert_int_equal(net_propose(&net, 1, "b"), 0);
	net_flush(&net, 1);
	b = status_of(&net, 1).last_index;
	assert_int_equal(b, a + 1);
	inject(&net, 1,
	       (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 2, .term = 1, .index = a});
	net_flush(&net, 1);
	st = status_of(&net, 1);
	for (uint32_t i = 0; i < st.n_progress; i++)
		if (st.progress[i].id == 2)
			assert_int_equal(st.progress[i].match, a);
	assert_int_equal(st.commit, a);
	net_free(&net);
}

/* Section 6: a membership change truncated from a follower's log is undone there. */
static void
test_truncated_conf_entry_reverts_membership(void **state)
{
	struct raft_conf_change cc = {.op = RAFT_CONF_REMOVE, .node_id = 2};
	uint8_t payload[RAFT_CONF_CHANGE_BYTES];
	struct raft_entry conf_e = {.term = 1, .index = 1, .type = RAFT_ENTRY_CONF};
	struct raft_entry other = {.term = 2, .index = 1, .type = RAFT_ENTRY_NORMAL};
	struct net net;

	(void)state;
	raft_conf_change_encode(&cc, payload);
	conf_e.data = payload;
	conf_e.len = sizeof(payload);
	net_init(&net, 3, 0, NULL);
	net_isolate(&net, 3);
	inject(&net, 3, append_msg(1, 1, 0, 0, 0, &conf_e, 1));
	net_flush(&net, 3);
	assert_false(is_member(&net, 3, 2)); /* effective on append */
	assert_true(status_of(&net, 3).conf_pending);
	/* The term-2 leader never had it: the entry goes, and with it the change. */
	inject(&net, 3, append_msg(2, 2, 0, 0, 0, &other, 1));
	net_flush(&net, 3);
	assert_true(is_voter(&net, 3, 2));
	assert_int_equal(status_of(&net, 3).membership.n_voters, 3);
	assert_false(status_of(&net, 3).conf_pending);
	net_free(&net);
}

/* Learners: their acknowledgements never count toward a commit. */
static void
test_learner_acks_do_not_commit(void **state)
{
	uint64_t x;
	struct net net;

	(void)state;
	net_init(&net, 3, 1, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	net_isolate(&net, 1);
	assert_int_equal(net_propose(&net, 1, "x"), 0);
	net_flush(&net, 1);
	x = status_of(&net, 1).last_index;
	inject(&net, 1,
	       (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 4, .term = 1, .index = x});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).commit, x - 1);
	inject(&net, 1,
	       (struct raft_msg){.type = RAFT_MSG_APPEND_RESP, .from = 3, .term = 1, .index = x});
	net_flush(&net, 1);
	assert_int_equal(status_of(&net, 1).commit, x);
	net_free(&net);
}

/* ReadIndex: each read needs a heartbeat round of its own, answered by a quorum. */
static void
test_read_index_needs_a_fresh_heartbeat_round(void **state)
{
	struct net_node *n1;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	n1 = net_node(&net, 1);
	assert_int_equal(net_elect(&net, 1), 1);
	net_tick_all(&net, 1);
	assert_int_equal(read_index(&net, 1, 1), 0);
	net_deliver(&net);
	assert_int_equal(n1->n_reads, 1);
	assert_int_equal(n1->reads[0].status, 0);
	/* Cut off (a new leader may be committing elsewhere): the next read must wait. */
	net_isolate(&net, 1);
	assert_int_equal(read_index(&net, 1, 2), 0);
	net_deliver(&net);
	assert_int_equal(n1->n_reads, 1);
	net_tick(&net, 1, 3 * ELECTION); /* check-quorum: it steps down, the read fails */
	assert_int_equal(n1->n_reads, 2);
	assert_int_equal(n1->reads[1].ctx, 2);
	assert_int_equal(n1->reads[1].status, -SP_ENOTLEADER);
	net_free(&net);
}

/* InstallSnapshot: a snapshot older than what the follower committed changes nothing. */
static void
test_older_snapshot_ignored(void **state)
{
	static const char data[] = "old-image";
	struct raft_event ev = {.type = RAFT_EV_COMPACT};
	struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = 1};
	struct raft_status before, after;
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	assert_int_equal(net_elect(&net, 1), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(net_propose(&net, 1, "e"), 0);
	net_deliver(&net);
	net_tick_all(&net, 1);
	before = status_of(&net, 2);
	assert_int_equal(before.applied, before.last_index);
	ev.compact.index = before.applied;
	ev.compact.data = "new-image";
	ev.compact.len = 9;
	assert_int_equal(net_step(&net, 2, &ev), 0);
	net_isolate(&net, 2);
	/* A delayed snapshot taken at index 3 arrives. */
	m.term = before.term;
	m.snapshot.meta.index = 3;
	m.snapshot.meta.term = before.term;
	m.snapshot.meta.membership = before.membership;
	m.snapshot.data = data;
	m.snapshot.len = sizeof(data);
	assert_int_equal(inject(&net, 2, m), 0);
	net_flush(&net, 2);
	after = status_of(&net, 2);
	assert_int_equal(after.commit, before.commit);
	assert_int_equal(after.applied, before.applied);
	assert_int_equal(after.snapshot_index, before.applied);
	assert_int_equal(after.last_index, before.last_index);
	assert_int_equal(net_node(&net, 2)->snap_meta.index, 0); /* nothing to persist */
	net_free(&net);
}

/* InstallSnapshot: a snapshot of entries the follower holds keeps the log that follows. */
static void
test_snapshot_keeps_log_after_it(void **state)
{
	const uint64_t log[] = {1, 1, 1, 1, 1};
	struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .term = 1};
	struct net net;

	(void)state;
	net_init(&net, 3, 0, NULL);
	net_set_log(&net, 2, log, 5, 1, 1);
	net_isolate(&net, 2);
	m.snapshot.meta.index = 3;
	m.snapshot.meta.term = 1;
	m.snapshot.meta.membership = status_of(&net, 2).membership;
	m.snapshot.data = "s";
	m.snapshot.len = 1;
	assert_int_equal(inject(&net, 2, m), 0);
	net_flush(&net, 2);
	assert_int_equal(status_of(&net, 2).last_index, 5);
	assert_int_equal(status_of(&net, 2).commit, 3);
	assert_int_equal(status_of(&net, 2).snapshot_index, 0);
	assert_int_equal(net_node(&net, 2)->n_log, 5);
	net_free(&net);
}

/*
 * Random faults on five nodes: ticks, proposals, drops, partitions, crashes and restarts.
 * The harness checks safety after every step; at the end the healed cluster must make
 * progress. Replays with SP_TEST_SEED.
 */
static void
test_random_faults(void **state)
{
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0x5eed0001ull;
	uint64_t x = seed;
	struct net net;
	uint64_t leader;

	(void)state;
	fprintf(stderr, "test_random_faults: SP_TEST_SEED=0x%llx\n", (unsigned long long)seed);
	net_init(&net, 5, 0, NULL);
	for (int step = 0; step < 3000; step++) {
		uint64_t r, id;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		r = x % 100;
		id = 1 + (x >> 8) % 5;
		if (r < 60) {
			net_tick_all(&net, 1);
		} else if (r < 80) {
			if (net_node(&net, id)->up)
				(void)net_propose(&net, id, "rand");
			net_deliver(&net);
		} else if (r < 85) {
			net_isolate(&net, id);
		} else if (r < 90) {
			net_heal(&net);
		} else if (r < 94) {
			if (net_node(&net, id)->up)
				net_crash(&net, id);
		} else if (r < 98) {
			if (!net_node(&net, id)->up)
				net_restart(&net, id);
		} else {
			net.cut[id][1 + (x >> 20) % 5] = true; /* one-way cut */
		}
	}
	net_heal(&net);
	for (uint64_t id = 1; id <= 5; id++)
		if (!net_node(&net, id)->up)
			net_restart(&net, id);
	net_tick_all(&net, 10 * ELECTION);
	leader = net_leader(&net);
	assert_int_not_equal(leader, 0);
	assert_int_equal(net_propose(&net, leader, "final"), 0);
	net_deliver(&net);
	net_tick_all(&net, 2);
	for (uint64_t id = 1; id <= 5; id++)
		assert_int_equal(status_of(&net, id).commit, status_of(&net, leader).commit);
	net_free(&net);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vote_denied_to_less_up_to_date_log),
	        cmocka_unit_test(test_only_current_term_entries_committed_by_counting),
	        cmocka_unit_test(test_follower_rejects_mismatched_append),
	        cmocka_unit_test(test_leader_repairs_divergent_logs_figure7),
	        cmocka_unit_test(test_new_leader_overwrites_uncommitted_higher_term_entries),
	        cmocka_unit_test(test_no_commit_after_leader_change_until_new_term_entry),
	        cmocka_unit_test(test_dueling_candidates),
	        cmocka_unit_test(test_dueling_pre_candidates),
	        cmocka_unit_test(test_stale_term_messages_ignored),
	        cmocka_unit_test(test_stale_candidate_learns_current_term),
	        cmocka_unit_test(test_check_quorum_step_down),
	        cmocka_unit_test(test_higher_term_candidate_frees_stuck_cluster),
	        cmocka_unit_test(test_pre_vote_rejoining_follower_does_not_disrupt),
	        cmocka_unit_test(test_pre_vote_asked_again_when_a_lease_runs_out),
	        cmocka_unit_test(test_learners_never_vote_and_are_promoted),
	        cmocka_unit_test(test_removing_the_leader),
	        cmocka_unit_test(test_pending_entries_commit_after_removal_shrinks_quorum),
	        cmocka_unit_test(test_removed_leader_crashed_before_commit),
	        cmocka_unit_test(test_second_membership_change_refused),
	        cmocka_unit_test(test_transfer_to_up_to_date_follower),
	        cmocka_unit_test(test_transfer_to_slow_follower),
	        cmocka_unit_test(test_transfer_timeout),
	        cmocka_unit_test(test_read_index_waits_for_own_term_commit),
	        cmocka_unit_test(test_read_index_fails_on_step_down),
	        cmocka_unit_test(test_snapshot_catch_up_after_compaction),
	        cmocka_unit_test(test_flow_control_pause_and_recovery),
	        cmocka_unit_test(test_bounded_log_growth_of_partitioned_leader),
	        cmocka_unit_test(test_vote_persisted_before_reply),
	        cmocka_unit_test(test_proposal_forwarding_and_rejection),
	        cmocka_unit_test(test_proposal_batching),
	        cmocka_unit_test(test_restart_keeps_durable_state),
	        cmocka_unit_test(test_bad_messages_and_events_refused),
	        cmocka_unit_test(test_outbox_bound),
	        cmocka_unit_test(test_read_queue_bound),
	        cmocka_unit_test(test_ready_apply_bound),
	        cmocka_unit_test(test_append_entries_bound),
	        cmocka_unit_test(test_payload_bounds),
	        cmocka_unit_test(test_append_from_older_term_refused),
	        cmocka_unit_test(test_append_truncates_only_from_a_conflict),
	        cmocka_unit_test(test_follower_commits_only_what_the_append_verified),
	        cmocka_unit_test(test_heartbeat_commit_bounded_by_match),
	        cmocka_unit_test(test_one_vote_per_term),
	        cmocka_unit_test(test_vote_compares_last_term_before_length),
	        cmocka_unit_test(test_pre_vote_changes_neither_term_nor_vote),
	        cmocka_unit_test(test_candidate_needs_a_majority_of_votes),
	        cmocka_unit_test(test_stale_vote_response_not_counted),
	        cmocka_unit_test(test_leader_steps_down_on_higher_term_response),
	        cmocka_unit_test(test_entries_applied_only_once_committed),
	        cmocka_unit_test(test_leader_alone_does_not_commit),
	        cmocka_unit_test(test_leader_counts_itself_only_when_durable),
	        cmocka_unit_test(test_match_index_only_from_acknowledgements),
	        cmocka_unit_test(test_truncated_conf_entry_reverts_membership),
	        cmocka_unit_test(test_learner_acks_do_not_commit),
	        cmocka_unit_test(test_read_index_needs_a_fresh_heartbeat_round),
	        cmocka_unit_test(test_older_snapshot_ignored),
	        cmocka_unit_test(test_snapshot_keeps_log_after_it),
	        cmocka_unit_test(test_random_faults),
	};

	sp_log_set_level(SP_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
