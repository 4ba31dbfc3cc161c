/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The safety checkers and the history they judge. The driver reports what it observes
 * after every step (leaders, log writes, commits, applies, client operations); each report
 * is checked on the spot against everything seen before, and the first violation is kept
 * with the property it breaks and the tick it happened at.
 *
 * Entries are identified by a chain digest: chain(i) = H(chain(i-1), term(i), data(i)).
 * Two logs with the same chain at index i hold the same entries 1..i, so the log-matching
 * and leader-completeness checks compare one number instead of whole logs.
 */
#ifndef SP_SIM_CHECK_H
#define SP_SIM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_CHECK_NODES_MAX     9
#define SIM_CHECK_INDEX_MAX     (1u << 20) /* log indexes the checker tracks */
#define SIM_CHECK_TERM_MAX      (1u << 20) /* terms the election checker tracks */
#define SIM_CHECK_TERMS_PER_IDX 16         /* distinct terms remembered per index */
#define SIM_CHECK_DETAIL_MAX    320

/* Chain digest of the entry at index i whose predecessor has chain prev. */
uint64_t sim_chain_next(uint64_t prev, uint64_t index, uint64_t term, const void *data, size_t len);

struct sim_check_slot {
	uint64_t term;
	uint64_t chain;
};

struct sim_check_index {
	uint8_t n;
	struct sim_check_slot slot[SIM_CHECK_TERMS_PER_IDX];
};

struct sim_check {
	/* The first violation; nothing is recorded after it. */
	bool violated;
	const char *property;
	char detail[SIM_CHECK_DETAIL_MAX];
	uint64_t violation_tick;
	uint64_t now_tick; /* set by the driver before each step's reports */

	/* Election safety: the leader seen for each term, node + 1 (0 = none). */
	uint8_t *leader_of_term;
	uint64_t terms_seen_max;

	/* Log matching: every (term, chain) written at each index, by any node. */
	struct sim_check_index *written;
	uint64_t written_max;

	/* Committed and applied sequence: chain of the committed entry at each index. */
	uint64_t *committed_chain;
	uint64_t *committed_term;
	uint64_t committed_max;
	uint64_t applied_max[SIM_CHECK_NODES_MAX];
	uint64_t applied_chain[SIM_CHECK_NODES_MAX];

	/* Linearizability floor: the highest index a read must reflect once it starts. */
	uint64_t write_acked_index_max;
	uint64_t read_value_max;

	uint64_t index_cap; /* entries allocated in written, committed_chain, committed_term */
	uint64_t term_cap;  /* entries allocated in leader_of_term */
	uint64_t checks;    /* individual checks run, for the summary */
};

/* Allocates the tables. Returns 0 or -ENOMEM. */
int sim_check_init(struct sim_check *ck);
void sim_check_fini(struct sim_check *ck);

/* Records a violation (the first one wins). Always returns false, for `return fail(...)`. */
bool sim_check_fail(struct sim_check *ck, const char *property, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Election safety: node is leader of term. */
bool sim_check_leader(struct sim_check *ck, unsigned node, uint64_t term);

/* Log matching: node's log holds (term, chain) at index. */
bool sim_check_log_entry(struct sim_check *ck, unsigned node, uint64_t index, uint64_t term,
                         uint64_t chain);

/*
 * Commit: node says index (term, chain) is committed. The committed entry at an index
 * never changes, and everything below it must already be known as committed with a
 * chain consistent with this one (same prefix).
 */
bool sim_check_commit(struct sim_check *ck, unsigned node, uint64_t index, uint64_t term,
                      uint64_t chain);

/*
 * Leader completeness: node, leader of term with last index last_index, must hold every
 * committed entry. term_at(ctx, i) gives the term of its entry at i, or 0 when i was
 * compacted into its snapshot (only applied, hence committed, entries are).
 */
bool sim_check_leader_complete(struct sim_check *ck, unsigned node, uint64_t term,
                               uint64_t last_index, uint64_t (*term_at)(void *ctx, uint64_t index),
                               void *ctx);

/* State-machine safety: node applied index with chain; it must be the next one it applies
 * and the committed entry there. A restored snapshot resets the node's apply point. */
bool sim_check_apply(struct sim_check *ck, unsigned node, uint64_t index, uint64_t chain);
bool sim_check_restore(struct sim_check *ck, unsigned node, uint64_t index, uint64_t chain);

/* Crash: the node's state machine is gone; it restarts from its snapshot (or nothing). */
void sim_check_node_reset(struct sim_check *ck, unsigned node);

/* A write the client saw acknowledged at index. floor is the read floor sampled when the
 * write was invoked: it must land above it (real-time order among writes). */
bool sim_check_write_acked(struct sim_check *ck, uint64_t op_id, uint64_t index, uint64_t floor);

/* The floor a read or write started now must reach: every acked write and every completed
 * read before it. */
uint64_t sim_check_floor(const struct sim_check *ck);

/*
 * Linearizable read: a read invoked with floor `floor` returned the state at index
 * value_index whose applied chain is value_chain. It must be at or above floor and
 * equal to the committed prefix at that index.
 */
bool sim_check_read(struct sim_check *ck, uint64_t op_id, uint64_t floor, uint64_t value_index,
                    uint64_t value_chain);

#endif
