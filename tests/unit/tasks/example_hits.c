/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The example of docs/tasks.md ("An example"), verbatim between the markers, so that the
 * guide's code is compiled and tested (test_tasks.c, test_doc_example). Keep the two in
 * step: tests/unit/tasks/check_example.py compares them.
 */
#include <string.h>

#include "tests/unit/tasks/example_hits.h"

/* ---- docs/tasks.md example begins ---- */
#define HITS_SLOTS 4096u

struct hits_state {
	uint64_t hash[HITS_SLOTS];
	uint64_t count[HITS_SLOTS];
};

static uint8_t
hits_exec(const struct sp_task_call *c, struct sp_task_out *out, void *user)
{
	struct hits_state *s = c->state; /* this partition's; only this core touches it */
	uint64_t h = c->hash | 1;
	uint32_t i = (uint32_t)(h >> 32) % HITS_SLOTS;

	(void)user;
	for (uint32_t probe = 0; probe < HITS_SLOTS; probe++, i = (i + 1) % HITS_SLOTS) {
		if (s->hash[i] != h && s->hash[i] != 0)
			continue;
		s->hash[i] = h;
		s->count[i]++;
		memcpy(out->buf, &s->count[i], 8);
		out->len = 8;
		return SP_BP_ST_OK;
	}
	return SP_BP_ST_SERVER_FULL; /* every slot taken by other keys */
}

int
hits_register(struct sp_task_registry *r, char *why, size_t why_len)
{
	struct sp_task_def d = {
	        .name = "hits",
	        .opcode = 200,
	        .span = SP_TASK_SPAN_KEY,
	        .state_size = sizeof(struct hits_state),
	        .result_max = 8,
	        .arg_max = 0,
	        .exec = hits_exec,
	};
	return sp_task_register(r, &d, why, why_len);
}
/* ---- docs/tasks.md example ends ---- */
