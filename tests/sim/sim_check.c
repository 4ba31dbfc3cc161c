/* SPDX-License-Identifier: BSD-3-Clause */
#include "sim_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/verify.h"

#define CHECK_GROW_MIN 1024u

uint64_t
sim_chain_next(uint64_t prev, uint64_t index, uint64_t term, const void *data, size_t len)
{
	uint64_t head[3] = {prev, index, term};
	uint64_t h = XXH3_64bits_withSeed(head, sizeof(head), 0x5eed);

	if (len > 0)
		h = XXH3_64bits_withSeed(data, len, h);
	/* 0 means "no entry" to the callers; never produce it. */
	return h == 0 ? 1 : h;
}

/* Grows a zero-filled array to hold index `need`; returns false when over `max`. */
static bool
grow(void **arr, uint64_t *cap, uint64_t need, size_t elem, uint64_t max)
{
	if (need < *cap)
		return true;
	if (need >= max)
		return false;
	uint64_t ncap = SP_MAX(*cap * 2, (uint64_t)CHECK_GROW_MIN);

	while (ncap <= need)
		ncap *= 2;
	ncap = SP_MIN(ncap, max);
	void *p = realloc(*arr, ncap * elem);

	if (p == NULL)
		return false;
	memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
	*arr = p;
	*cap = ncap;
	ASSERT(need < *cap);
	return true;
}

/* The three index-keyed tables share one capacity so one call grows them together. */
static bool
grow_index(struct sim_check *ck, uint64_t index)
{
	uint64_t cap = ck->index_cap;
	uint64_t c1 = cap;
	uint64_t c2 = cap;

	if (!grow((void **)&ck->written, &cap, index, sizeof(*ck->written), SIM_CHECK_INDEX_MAX))
		return false;
	if (!grow((void **)&ck->committed_chain, &c1, index, sizeof(uint64_t), SIM_CHECK_INDEX_MAX))
		return false;
	if (!grow((void **)&ck->committed_term, &c2, index, sizeof(uint64_t), SIM_CHECK_INDEX_MAX))
		return false;
	VERIFY(cap == c1);
	VERIFY(cap == c2);
	ck->index_cap = cap;
	return true;
}

int
sim_check_init(struct sim_check *ck)
{
	memset(ck, 0, sizeof(*ck));
	if (!grow_index(ck, 0))
		return -ENOMEM;
	if (!grow((void **)&ck->leader_of_term, &ck->term_cap, 0, 1, SIM_CHECK_TERM_MAX))
		return -ENOMEM;
	ASSERT(!ck->violated);
	return 0;
}

void
sim_check_fini(struct sim_check *ck)
{
	free(ck->leader_of_term);
	free(ck->written);
	free(ck->committed_chain);
	free(ck->committed_term);
	memset(ck, 0, sizeof(*ck));
}

bool
sim_check_fail(struct sim_check *ck, const char *property, const char *fmt, ...)
{
	ASSERT(property != NULL);
	if (ck->violated)
		return false;
	va_list ap;

	ck->violated = true;
	ck->property = property;
	ck->violation_tick = ck->now_tick;
	va_start(ap, fmt);
	vsnprintf(ck->detail, sizeof(ck->detail), fmt, ap);
	va_end(ap);
	return false;
}

bool
sim_check_leader(struct sim_check *ck, unsigned node, uint64_t term)
{
	VERIFY(node < SIM_CHECK_NODES_MAX);
	ck->checks++;
	if (!grow((void **)&ck->leader_of_term, &ck->term_cap, term, 1, SIM_CHECK_TERM_MAX))
		return sim_check_fail(ck, "simulator limit", "term %llu is over %u",
		                      (unsigned long long)term, SIM_CHECK_TERM_MAX);
	uint8_t seen = ck->leader_of_term[term];

	if (seen != 0 && seen != node + 1)
		return sim_check_fail(ck, "election safety",
		                      "term %llu has two leaders: node %u and node %u",
		                      (unsigned long long)term, seen - 1u, node);
	ck->leader_of_term[term] = (uint8_t)(node + 1);
	ck->terms_seen_max = SP_MAX(ck->terms_seen_max, term);
	return true;
}

bool
sim_check_log_entry(struct sim_check *ck, unsigned node, uint64_t index, uint64_t term,
                    uint64_t chain)
{
	ASSERT(index > 0);
	ASSERT(chain != 0);
	ck->checks++;
	if (!grow_index(ck, index))
		return sim_check_fail(ck, "simulator limit", "log index %llu is over %u",
		                      (unsigned long long)index, SIM_CHECK_INDEX_MAX);
	struct sim_check_index *w = &ck->written[index];

	for (unsigned i = 0; i < w->n; i++) {
		if (w->slot[i].term != term)
			continue;
		if (w->slot[i].chain == chain)
			return true;
		return sim_check_fail(ck, "log matching",
		                      "node %u has index %llu term %llu with a different prefix "
		                      "than another log holding the same index and term",
		                      node, (unsigned long long)index, (unsigned long long)term);
	}
	if (w->n < SIM_CHECK_TERMS_PER_IDX)
		w->slot[w->n++] = (struct sim_check_slot){.term = term, .chain = chain};
	ck->written_max = SP_MAX(ck->written_max, index);
	return true;
}

bool
sim_check_commit(struct sim_check *ck, unsigned node, uint64_t index, uint64_t term, uint64_t chain)
{
	ASSERT(index > 0);
	ASSERT(chain != 0);
	ck->checks++;
	if (!grow_index(ck, index))
		return sim_check_fail(ck, "simulator limit", "log index %llu is over %u",
		                      (unsigned long long)index, SIM_CHECK_INDEX_MAX);
	uint64_t known = ck->committed_chain[index];

	if (known != 0) {
		if (known != chain)
			return sim_check_fail(
			        ck, "state machine safety",
			        "node %u commits index %llu term %llu, but index %llu was already "
			        "committed with term %llu and a different prefix",
			        node, (unsigned long long)index, (unsigned long long)term,
			        (unsigned long long)index,
			        (unsigned long long)ck->committed_term[index]);
		return true;
	}
	/* The driver reports every index up to a node's commit index, so a prefix that
	 * differs anywhere differs at some index already known, and is caught above. */
	ck->committed_chain[index] = chain;
	ck->committed_term[index] = term;
	ck->committed_max = SP_MAX(ck->committed_max, index);
	return true;
}

bool
sim_check_leader_complete(struct sim_check *ck, unsigned node, uint64_t term, uint64_t last_index,
                          uint64_t (*term_at)(void *ctx, uint64_t index), void *ctx)
{
	ASSERT(term_at != NULL);
	ck->checks++;
	if (last_index < ck->committed_max)
		return sim_check_fail(ck, "leader completeness",
		                      "node %u leads term %llu with last index %llu, below the "
		                      "committed index %llu",
		                      node, (unsigned long long)term,
		                      (unsigned long long)last_index,
		                      (unsigned long long)ck->committed_max);
	for (uint64_t i = 1; i <= ck->committed_max; i++) {
		uint64_t t = term_at(ctx, i);

		if (t == 0 || t == ck->committed_term[i])
			continue;
		return sim_check_fail(ck, "leader completeness",
		                      "node %u leads term %llu but holds term %llu at index %llu "
		                      "where term %llu was committed",
		                      node, (unsigned long long)term, (unsigned long long)t,
		                      (unsigned long long)i,
		                      (unsigned long long)ck->committed_term[i]);
	}
	return true;
}

bool
sim_check_apply(struct sim_check *ck, unsigned node, uint64_t index, uint64_t chain)
{
	VERIFY(node < SIM_CHECK_NODES_MAX);
	ck->checks++;
	if (index != ck->applied_max[node] + 1)
		return sim_check_fail(ck, "state machine safety",
		                      "node %u applies index %llu after index %llu (not in order)",
		                      node, (unsigned long long)index,
		                      (unsigned long long)ck->applied_max[node]);
	if (index > ck->committed_max || ck->committed_chain[index] == 0)
		return sim_check_fail(ck, "state machine safety",
		                      "node %u applies index %llu which no node has committed",
		                      node, (unsigned long long)index);
	if (ck->committed_chain[index] != chain)
		return sim_check_fail(ck, "state machine safety",
		                      "node %u applies at index %llu an entry (or prefix) other "
		                      "than the committed one (term %llu)",
		                      node, (unsigned long long)index,
		                      (unsigned long long)ck->committed_term[index]);
	ck->applied_max[node] = index;
	ck->applied_chain[node] = chain;
	return true;
}

bool
sim_check_restore(struct sim_check *ck, unsigned node, uint64_t index, uint64_t chain)
{
	VERIFY(node < SIM_CHECK_NODES_MAX);
	ck->checks++;
	if (index == 0) {
		ck->applied_max[node] = 0;
		ck->applied_chain[node] = 0;
		return true;
	}
	if (index > ck->committed_max || ck->committed_chain[index] != chain)
		return sim_check_fail(ck, "state machine safety",
		                      "node %u restores a snapshot at index %llu that is not the "
		                      "committed prefix",
		                      node, (unsigned long long)index);
	ck->applied_max[node] = index;
	ck->applied_chain[node] = chain;
	return true;
}

void
sim_check_node_reset(struct sim_check *ck, unsigned node)
{
	VERIFY(node < SIM_CHECK_NODES_MAX);
	ck->applied_max[node] = 0;
	ck->applied_chain[node] = 0;
}

uint64_t
sim_check_floor(const struct sim_check *ck)
{
	return SP_MAX(ck->write_acked_index_max, ck->read_value_max);
}

bool
sim_check_write_acked(struct sim_check *ck, uint64_t op_id, uint64_t index, uint64_t floor)
{
	ck->checks++;
	if (index <= floor)
		return sim_check_fail(ck, "linearizability",
		                      "write op %llu landed at index %llu, below index %llu that "
		                      "was acknowledged or read before it started",
		                      (unsigned long long)op_id, (unsigned long long)index,
		                      (unsigned long long)floor);
	if (index > ck->committed_max || ck->committed_chain[index] == 0)
		return sim_check_fail(ck, "linearizability",
		                      "write op %llu acknowledged at index %llu, not committed",
		                      (unsigned long long)op_id, (unsigned long long)index);
	ck->write_acked_index_max = SP_MAX(ck->write_acked_index_max, index);
	return true;
}

bool
sim_check_read(struct sim_check *ck, uint64_t op_id, uint64_t floor, uint64_t value_index,
               uint64_t value_chain)
{
	ck->checks++;
	if (value_index < floor)
		return sim_check_fail(
		        ck, "linearizability",
		        "read op %llu returned the state at index %llu, missing index "
		        "%llu acknowledged or read before the read started",
		        (unsigned long long)op_id, (unsigned long long)value_index,
		        (unsigned long long)floor);
	if (value_index > 0 &&
	    (value_index > ck->committed_max || ck->committed_chain[value_index] != value_chain))
		return sim_check_fail(ck, "linearizability",
		                      "read op %llu returned a state at index %llu that is not the "
		                      "committed prefix",
		                      (unsigned long long)op_id, (unsigned long long)value_index);
	ck->read_value_max = SP_MAX(ck->read_value_max, value_index);
	return true;
}
