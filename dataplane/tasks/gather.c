/* SPDX-License-Identifier: BSD-3-Clause */
/* The gather table of SPAN_ALL operations (gather.h). */
#include "dataplane/tasks/gather.h"

#include <stddef.h>
#include <string.h>

#include "common/verify.h"

SP_STATIC_ASSERT(SP_TASK_GATHERS <= 16u, "a slot index fits 4 bits of a reference");
SP_STATIC_ASSERT(SP_TASK_PARTS_MAX % 64 == 0, "pending is whole words");
SP_STATIC_ASSERT(SP_TASK_PARTS_MAX - SP_TASK_PART_NODE0 >= SP_BP_ROUTE_NODES_MAX,
                 "every node of a map can be a part");

void
sp_task_gathers_init(struct sp_task_gathers *t)
{
	ASSERT(t != NULL);
	memset(t, 0, sizeof(*t));
	t->next_tag = 1;
}

struct sp_task_gather *
sp_task_gather_take(struct sp_task_gathers *t, uint8_t opcode, const uint8_t *arg, uint32_t arg_len,
                    uint32_t partitions_expected, uint64_t deadline, uint32_t *index)
{
	ASSERT(arg_len <= SP_TASK_GATHER_ARG_MAX);
	ASSERT(arg != NULL || arg_len == 0);
	for (uint32_t i = 0; i < SP_TASK_GATHERS; i++) {
		struct sp_task_gather *g = &t->slots[i];

		if (g->tag != 0)
			continue;
		memset(g, 0, offsetof(struct sp_task_gather, arg));
		g->tag = t->next_tag;
		t->next_tag = (t->next_tag + 1) & SP_TASK_TAG_MASK;
		if (t->next_tag == 0)
			t->next_tag = 1;
		g->opcode = opcode;
		g->status = SP_BP_ST_OK;
		g->partitions_expected = partitions_expected;
		g->deadline = deadline;
		g->arg_len = arg_len;
		if (arg_len != 0)
			memcpy(g->arg, arg, arg_len);
		g->acc = (struct sp_task_out){
		        .buf = g->acc_buf, .cap = SP_TASK_RESULT_MAX, .len = 0};
		t->live++;
		*index = i;
		ASSERT(sp_task_gathers_valid(t));
		return g;
	}
	t->full++;
	return NULL;
}

void
sp_task_gather_expect(struct sp_task_gather *g, uint32_t part)
{
	VERIFY(part < SP_TASK_PARTS_MAX);
	ASSERT((g->pending[part / 64] & (UINT64_C(1) << (part % 64))) == 0);
	g->pending[part / 64] |= UINT64_C(1) << (part % 64);
	g->parts_pending++;
}

uint32_t
sp_task_ref(uint32_t index, uint16_t worker, uint32_t tag)
{
	ASSERT(index < SP_TASK_GATHERS);
	ASSERT(worker < SP_TASK_REF_WORKERS);
	ASSERT(tag != 0 && tag <= SP_TASK_TAG_MASK);
	return tag << 10 | (uint32_t)worker << 4 | index;
}

void
sp_task_ref_split(uint32_t ref, uint32_t *index, uint16_t *worker, uint32_t *tag)
{
	*index = ref & 0xfu;
	*worker = (uint16_t)(ref >> 4 & 0x3fu);
	*tag = ref >> 10;
}

struct sp_task_gather *
sp_task_gather_part(struct sp_task_gathers *t, const struct sp_task_registry *r, uint32_t ref,
                    uint32_t part, uint8_t status, uint32_t partitions, const uint8_t *result,
                    uint32_t result_len)
{
	uint32_t index, tag;
	uint16_t worker;

	sp_task_ref_split(ref, &index, &worker, &tag);
	if (index >= SP_TASK_GATHERS || tag == 0 || t->slots[index].tag != tag ||
	    part >= SP_TASK_PARTS_MAX) {
		t->stale++;
		return NULL;
	}
	struct sp_task_gather *g = &t->slots[index];
	uint64_t bit = UINT64_C(1) << (part % 64);
	if ((g->pending[part / 64] & bit) == 0) {
		t->stale++;
		return NULL;
	}
	g->pending[part / 64] &= ~bit;
	ASSERT(g->parts_pending > 0);
	g->parts_pending--;
	if (status == SP_BP_ST_PARTIAL)
		status = SP_BP_ST_OK; /* a node's own partial answer: counted by partitions */
	if (status != SP_BP_ST_OK) {
		if (g->status == SP_BP_ST_OK)
			g->status = status >= SP_BP_ST_LAST ? SP_BP_ST_INTERNAL : status;
		return g;
	}
	if (g->status != SP_BP_ST_OK)
		return g;
	/* An owner cannot answer for more partitions than the gather still misses. */
	if (partitions > g->partitions_expected - g->partitions_answered) {
		g->status = SP_BP_ST_INTERNAL;
		return g;
	}
	const struct sp_task_def *d = sp_task_find(r, g->opcode);
	VERIFY(d != NULL);
	if (result_len > d->result_max ||
	    (partitions > 0 &&
	     d->merge(&g->acc, result, result_len, g->arg, g->arg_len, d->user) != SP_BP_ST_OK)) {
		g->status = SP_BP_ST_INTERNAL;
		return g;
	}
	VERIFY(g->acc.len <= d->result_max);
	g->partitions_answered += partitions;
	return g;
}

bool
sp_task_gather_done(const struct sp_task_gather *g)
{
	return g->parts_pending == 0;
}

uint8_t
sp_task_gather_answer(const struct sp_task_gather *g, uint32_t *flags)
{
	ASSERT(g->tag != 0);
	ASSERT(g->partitions_answered <= g->partitions_expected);
	*flags = g->partitions_answered;
	if (g->status != SP_BP_ST_OK)
		return g->status;
	return g->partitions_answered == g->partitions_expected ? SP_BP_ST_OK : SP_BP_ST_PARTIAL;
}

void
sp_task_gather_release(struct sp_task_gathers *t, struct sp_task_gather *g)
{
	ASSERT(g->tag != 0);
	ASSERT(t->live > 0);
	g->tag = 0;
	t->live--;
}

struct sp_task_gather *
sp_task_gather_expired(struct sp_task_gathers *t, uint64_t now)
{
	if (t->live == 0)
		return NULL;
	for (uint32_t i = 0; i < SP_TASK_GATHERS; i++)
		if (t->slots[i].tag != 0 && t->slots[i].deadline <= now)
			return &t->slots[i];
	return NULL;
}

bool
sp_task_gathers_valid(const struct sp_task_gathers *t)
{
	uint32_t live = 0;

	for (uint32_t i = 0; i < SP_TASK_GATHERS; i++) {
		const struct sp_task_gather *g = &t->slots[i];
		uint32_t bits = 0;

		if (g->tag == 0)
			continue;
		live++;
		for (uint32_t w = 0; w < SP_TASK_PARTS_MAX / 64; w++)
			bits += (uint32_t)__builtin_popcountll(g->pending[w]);
		if (bits != g->parts_pending || g->partitions_answered > g->partitions_expected ||
		    g->arg_len > SP_TASK_GATHER_ARG_MAX || g->acc.len > g->acc.cap)
			return false;
		for (uint32_t j = 0; j < i; j++)
			if (t->slots[j].tag == g->tag)
				return false;
	}
	return live == t->live && t->next_tag != 0;
}
