/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The outcome queue: how node.c tells the client API what became of the work it was given,
 * the way the Raft core hands its results out in a raft_ready instead of calling up. node.c
 * pushes (a submission stepped, an entry applied, a read confirmed), the API pops them in
 * order after each turn of the event loop; node.c never calls into api.c.
 *
 * A fixed ring sized at start. The producer asks for room before it does the work whose
 * outcomes it will push (cp_outq_room), so a push never fails; at a full queue the work
 * waits until the API has drained it.
 */
#ifndef SP_CP_OUTQ_H
#define SP_CP_OUTQ_H

#include <stdbool.h>
#include <stdint.h>

enum cp_outcome_kind {
	CP_OUT_SUBMITTED = 1, /* a submission with a token was stepped: status, index, term */
	CP_OUT_APPLIED,       /* an entry was applied: index, term, status of the apply */
	CP_OUT_READ_READY,    /* a ReadIndex round ended: ctx, index, status */
	CP_OUT_KIND_END,
};

struct cp_outcome {
	uint32_t kind;  /* enum cp_outcome_kind */
	int32_t status; /* 0 or a negative code (Raft's refusal, the apply's, the round's) */
	uint64_t token; /* SUBMITTED: the submitter's token (never 0) */
	uint64_t index; /* SUBMITTED: first index given (0 if none); APPLIED, READ_READY */
	uint64_t term;  /* SUBMITTED, APPLIED */
	uint64_t ctx;   /* READ_READY: the read context */
};

struct cp_outq {
	struct cp_outcome *ring; /* cap slots */
	uint32_t cap;            /* a power of two */
	uint32_t head;           /* next to pop (free-running) */
	uint32_t tail;           /* next to push (free-running) */
	uint64_t pushed;
	uint64_t popped;
	uint32_t depth_max; /* the deepest the queue has been */
};

/* Allocates a queue of cap slots (a power of two, >= 2). Returns 0, -EINVAL or -ENOMEM. */
int cp_outq_init(struct cp_outq *q, uint32_t cap);
void cp_outq_fini(struct cp_outq *q);

/* Free slots. Can't fail. */
uint32_t cp_outq_room(const struct cp_outq *q);
/* Outcomes waiting. Can't fail. */
uint32_t cp_outq_depth(const struct cp_outq *q);

/* Appends o. The caller made sure of room (asserted: a push into a full queue is a bug). */
void cp_outq_push(struct cp_outq *q, const struct cp_outcome *o);

/* Takes the oldest outcome into *o. Returns false when the queue is empty. */
bool cp_outq_pop(struct cp_outq *q, struct cp_outcome *o);

/* Checks the queue's invariants (counts agree, every queued outcome well formed). */
bool cp_outq_check_invariants(const struct cp_outq *q);

#endif
