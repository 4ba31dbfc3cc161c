/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/partmap.h"
#include "common/errors.h"
#include "common/verify.h"

struct sp_cluster_state *
sp_cluster_state_new(uint32_t map_capacity)
{
	struct sp_cluster_state *st;

	if (!sp_is_power_of_two(map_capacity) || map_capacity > SP_PARTITIONS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->map = calloc(map_capacity, sizeof(st->map[0]));
	if (st->map == NULL) {
		free(st);
		errno = ENOMEM;
		return NULL;
	}
	st->map_capacity = map_capacity;
	ASSERT(st->partitions == 0);
	return st;
}

void
sp_cluster_state_free(struct sp_cluster_state *st)
{
	if (st == NULL)
		return;
	free(st->map);
	free(st);
}

int
sp_cluster_state_copy(struct sp_cluster_state *dst, const struct sp_cluster_state *src)
{
	struct sp_map_entry *map = dst->map;
	uint32_t cap = dst->map_capacity;

	ASSERT(dst != src);
	if (src->partitions > cap)
		return -SP_ETOOBIG;
	*dst = *src;
	dst->map = map;
	dst->map_capacity = cap;
	memcpy(map, src->map, (size_t)src->partitions * sizeof(map[0]));
	ASSERT(dst->partitions <= dst->map_capacity);
	return 0;
}

int
sp_partmap_default(struct sp_map_entry *map, uint32_t partitions, uint32_t node_id,
                   uint32_t workers)
{
	ASSERT(map != NULL);
	if (!sp_is_power_of_two(partitions) || partitions > SP_PARTITIONS_MAX)
		return -EINVAL;
	if (workers == 0 || workers > SP_WORKERS_MAX)
		return -EINVAL;
	for (uint32_t p = 0; p < partitions; p++) {
		map[p].node_id = node_id;
		map[p].worker = (uint16_t)(p % workers);
		map[p].flags = 0;
	}
	ASSERT(map[partitions - 1].worker < workers);
	return 0;
}

int
sp_cluster_state_single(struct sp_cluster_state *st, uint32_t partitions, uint32_t node_id,
                        uint32_t workers, const char *name)
{
	struct sp_member *m = &st->members[0];
	int rc;

	if (node_id == 0 || partitions > st->map_capacity)
		return -EINVAL;
	if (name == NULL || strlen(name) >= SP_MEMBER_NAME_MAX)
		return -EINVAL;
	rc = sp_partmap_default(st->map, partitions, node_id, workers);
	if (rc < 0)
		return rc;
	st->epoch = 1;
	st->generation = 0;
	st->partitions = partitions;
	st->self_node_id = node_id;
	st->member_count = 1;
	memset(st->members, 0, sizeof(st->members));
	m->node_id = node_id;
	m->worker_count = (uint16_t)workers;
	m->state = SP_MEMBER_ACTIVE;
	memcpy(m->name, name, strlen(name) + 1);
	ASSERT(sp_cluster_find_member(st, node_id) == m);
	return 0;
}

const struct sp_member *
sp_cluster_find_member(const struct sp_cluster_state *st, uint32_t node_id)
{
	uint32_t n = SP_MIN(st->member_count, SP_MEMBERS_MAX);

	for (uint32_t i = 0; i < n; i++) {
		if (st->members[i].node_id == node_id)
			return &st->members[i];
	}
	return NULL;
}

void
sp_member_index_build(struct sp_member_index *ix, const struct sp_cluster_state *st)
{
	uint32_t n = SP_MIN(st->member_count, SP_MEMBERS_MAX);

	ASSERT(ix != NULL);
	ix->count = 0;
	/* Insertion sort: at most SP_MEMBERS_MAX entries, once per publication. */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id = st->members[i].node_id;
		uint32_t j = ix->count;

		while (j > 0 && ix->node_id[j - 1] > id) {
			ix->node_id[j] = ix->node_id[j - 1];
			ix->member[j] = ix->member[j - 1];
			j--;
		}
		ix->node_id[j] = id;
		ix->member[j] = (uint8_t)i;
		ix->count++;
	}
	ASSERT(ix->count == n);
}

int
sp_member_index_find(const struct sp_member_index *ix, uint32_t node_id)
{
	uint32_t lo = 0, hi = ix->count;

	ASSERT(ix->count <= SP_MEMBERS_MAX);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ix->node_id[mid] < node_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ix->count && ix->node_id[lo] == node_id)
		return ix->member[lo];
	return -1;
}

static bool
all_zero(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

/* Validates members[i] alone and against members[0..i-1]. */
static int
validate_member(const struct sp_cluster_state *st, uint32_t i, char *why, size_t why_len)
{
	const struct sp_member *m = &st->members[i];

	ASSERT(i < st->member_count);
	if (m->node_id == 0)
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "member %u has node id 0 (ids start at 1)", i);
	for (uint32_t j = 0; j < i; j++) {
		if (st->members[j].node_id == m->node_id)
			return sp_explain(why, why_len, -SP_EMALFORMED,
			                  "members %u and %u both have node id %u", j, i,
			                  m->node_id);
	}
	if (memchr(m->name, '\0', sizeof(m->name)) == NULL)
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "member %u (node %u): name is not NUL-terminated within %u bytes",
		                  i, m->node_id, SP_MEMBER_NAME_MAX);
	if (m->worker_count == 0 || m->worker_count > SP_WORKERS_MAX)
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "member %u (node %u): worker count %u is outside [1, %u]", i,
		                  m->node_id, m->worker_count, SP_WORKERS_MAX);
	if (m->state == SP_MEMBER_NONE || m->state >= SP_MEMBER_STATE_LAST)
		return sp_explain(why, why_len, -SP_EMALFORMED, "member %u (node %u): bad state %u",
		                  i, m->node_id, m->state);
	if (!all_zero(m->reserved, sizeof(m->reserved)))
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "member %u (node %u): reserved bytes are not zero", i,
		                  m->node_id);
	return 0;
}

int
sp_cluster_state_validate(const struct sp_cluster_state *st, char *why, size_t why_len)
{
	struct sp_member_index ix;
	const struct sp_member *m;
	int rc;

	ASSERT(st != NULL);
	if (st->epoch == 0)
		return sp_explain(why, why_len, -SP_EMALFORMED, "epoch is 0 (epochs start at 1)");
	if (!sp_is_power_of_two(st->partitions))
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "partition count %u is not a power of two", st->partitions);
	if (st->partitions > SP_PARTITIONS_MAX)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "partition count %u is over the limit %u", st->partitions,
		                  SP_PARTITIONS_MAX);
	if (st->partitions > st->map_capacity || st->map == NULL)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "partition count %u is over the map capacity %u", st->partitions,
		                  st->map_capacity);
	if (st->member_count == 0 || st->member_count > SP_MEMBERS_MAX)
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "member count %u is outside [1, %u]", st->member_count,
		                  SP_MEMBERS_MAX);
	for (uint32_t i = 0; i < st->member_count; i++) {
		rc = validate_member(st, i, why, why_len);
		if (rc < 0)
			return rc;
	}
	if (sp_cluster_find_member(st, st->self_node_id) == NULL)
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "this node's id %u is not in the members table",
		                  st->self_node_id);
	sp_member_index_build(&ix, st);
	for (uint32_t p = 0; p < st->partitions; p++) {
		const struct sp_map_entry *e = &st->map[p];
		int at = sp_member_index_find(&ix, e->node_id);

		m = at < 0 ? NULL : &st->members[at];
		if (m == NULL)
			return sp_explain(why, why_len, -SP_EMALFORMED,
			                  "partition %u maps to node %u, which is not a member", p,
			                  e->node_id);
		if (e->worker >= m->worker_count)
			return sp_explain(
			        why, why_len, -SP_EMALFORMED,
			        "partition %u maps to worker %u of node %u, which has %u workers",
			        p, e->worker, e->node_id, m->worker_count);
		if (e->flags & ~SP_MAP_F_ALL)
			return sp_explain(why, why_len, -SP_EMALFORMED,
			                  "partition %u: flags 0x%x has unknown bits", p, e->flags);
	}
	return 0;
}
