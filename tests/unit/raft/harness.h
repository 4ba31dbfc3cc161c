/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A tiny in-test network for Raft scenario tests: N cores in one process, messages passed
 * through the wire codec, durable state kept per node exactly as the ready contract says
 * (messages marked after-persist leave only after the ready's state is stored), crashes that
 * keep only what was stored, one-way link cuts, held links, and safety checks after every
 * step (raft_check_invariants, one leader per term, applied entries agree across nodes).
 */
#ifndef SP_TESTS_RAFT_HARNESS_H
#define SP_TESTS_RAFT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/raft/raft.h"

#define NET_NODES_MAX         8
#define NET_QUEUE_MAX         16384 /* queued messages; beyond: dropped and counted */
#define NET_DELIVER_STEPS_MAX 200000
#define NET_APPLIED_MAX       65536 /* applied records per node */
#define NET_LEADER_TERMS_MAX  4096
#define NET_READS_MAX         1024

struct net_applied {
	uint64_t index;
	uint64_t term;
	uint32_t type;
	uint64_t hash;
};

struct net_node {
	uint64_t id;
	bool up;
	struct raft *r;
	struct raft_config cfg;
	/* Durable state. */
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap_meta;
	uint8_t *snap_data;
	size_t snap_len;
	struct raft_entry *log; /* entries after snap_meta.index; data owned */
	size_t n_log;
	size_t cap_log;
	/* State machine: what was applied, in order. */
	struct net_applied *applied;
	size_t n_applied;
	uint64_t applied_index;
	struct raft_read reads[NET_READS_MAX];
	size_t n_reads;
};

struct net_msg {
	uint64_t from;
	uint64_t to;
	uint32_t type;
	size_t len;
	uint8_t *buf;
};

struct net {
	int n;
	struct net_node nodes[NET_NODES_MAX];
	bool cut[NET_NODES_MAX + 1][NET_NODES_MAX + 1]; /* cut[from][to]: dropped */
	bool hold[NET_NODES_MAX + 1];                   /* messages to id wait in held[] */
	struct net_msg *q;
	size_t q_head;
	size_t q_len;
	struct net_msg *held;
	size_t n_held;
	uint64_t sent[RAFT_MSG_TYPE_END][NET_NODES_MAX + 1]; /* by type and destination */
	uint64_t sent_entries[NET_NODES_MAX + 1]; /* appends carrying entries, by destination */
	uint32_t max_append_entries;              /* most entries seen in one append */
	uint64_t dropped;
	uint32_t drop_type_mask; /* 1u << type: dropped in flight */
	uint64_t leader_of_term[NET_LEADER_TERMS_MAX];
};

/*
 * n_voters voters (ids 1..n_voters) then n_learners learners, all fresh. tweak (may be NULL)
 * adjusts every node's configuration before creation.
 */
void net_init(struct net *net, int n_voters, int n_learners, void (*tweak)(struct raft_config *));
void net_free(struct net *net);
struct net_node *net_node(struct net *net, uint64_t id);
struct raft *net_raft(struct net *net, uint64_t id);

/* Replaces node id's durable log with entries of the given terms (index 1..n) and restarts it
 * with hard state (term, vote 0, commit). */
void net_set_log(struct net *net, uint64_t id, const uint64_t *terms, size_t n, uint64_t term,
                 uint64_t commit);

/* Steps an event into node id (asserting invariants); returns raft_step's result. */
int net_step(struct net *net, uint64_t id, const struct raft_event *ev);
/* Drains node id's ready per the contract. */
void net_flush(struct net *net, uint64_t id);
/* Delivers exactly one queued message without flushing any ready; false if none queued. */
bool net_pop_deliver(struct net *net);
/* Flushes and delivers until quiet (bounded). */
void net_deliver(struct net *net);
/* k rounds of: tick every up node once, deliver. */
void net_tick_all(struct net *net, int k);
/* k ticks of one node, delivering after each. */
void net_tick(struct net *net, uint64_t id, int k);

void net_crash(struct net *net, uint64_t id);
/* Crash with a ready in hand: immediate messages go out, nothing is persisted. */
void net_crash_unpersisted(struct net *net, uint64_t id);
void net_restart(struct net *net, uint64_t id);

void net_isolate(struct net *net, uint64_t id);
void net_heal(struct net *net);
void net_release(struct net *net, uint64_t id); /* stop holding id's messages, requeue */

/* Leader with the highest term among up nodes, 0 if none. */
uint64_t net_leader(struct net *net);
/* Campaign at id and deliver; returns the resulting leader. */
uint64_t net_elect(struct net *net, uint64_t id);
int net_propose(struct net *net, uint64_t id, const char *text);
void net_status(struct net *net, uint64_t id, struct raft_status *st);
/* Applied count of entries of type NORMAL at node id. */
size_t net_applied_normal(struct net *net, uint64_t id);

#endif
