/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The submission area: what node.c is given while a ready is being written to disk (Raft
 * messages from members, proposals, membership changes, reads, transfers) waits here, in
 * order, until the ready is durable. Nothing is allocated per submission: the descriptors
 * are a ring and the bytes a FIFO area, both sized at start. A submission that does not fit
 * (no descriptor, or not enough contiguous bytes) is refused with -SP_EFULL and counted;
 * the API answers its client BUSY, a member's message is dropped (Raft sends it again).
 *
 * Bytes are taken from the area's tail and given back from its head, in submission order.
 * An allocation never wraps: one that does not fit before the end starts again at offset 0
 * (the bytes skipped count against it until it leaves). An empty area starts again at 0, so
 * one submission of the area's whole size always fits in an empty area.
 */
#ifndef SP_CP_SUBQ_H
#define SP_CP_SUBQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_sub {
	uint32_t kind;  /* the caller's (enum cp_submit_kind) */
	uint32_t len;   /* bytes at data */
	uint64_t arg;   /* the caller's */
	uint64_t token; /* the caller's; 0: nobody waits for the outcome */
	uint8_t *data;  /* inside the area; NULL when len is 0 */
	size_t span;    /* bytes this submission holds in the area (len, plus any skipped tail) */
};

struct cp_subq {
	struct cp_sub *subs; /* subs_max descriptors, a ring */
	uint32_t subs_max;
	uint32_t first; /* index of the oldest */
	uint32_t n;     /* submissions waiting */
	uint8_t *area;
	size_t bytes_max;
	size_t head;            /* offset where the oldest allocation starts its data */
	size_t tail;            /* offset of the next allocation */
	size_t used;            /* sum of the waiting submissions' spans */
	size_t used_max;        /* the most bytes ever held */
	uint64_t refused_subs;  /* refused: no descriptor */
	uint64_t refused_bytes; /* refused: no room in the area */
};

/* Allocates room for subs_max submissions and bytes_max bytes. Returns 0, -EINVAL or
 * -ENOMEM. */
int cp_subq_init(struct cp_subq *q, uint32_t subs_max, size_t bytes_max);
void cp_subq_fini(struct cp_subq *q);

/*
 * Copies a submission in (len bytes from data). Returns 0, or -SP_EFULL when there is no
 * descriptor or no room (counted in refused_subs / refused_bytes; q unchanged).
 */
int cp_subq_push(struct cp_subq *q, uint32_t kind, uint64_t arg, const void *data, uint32_t len,
                 uint64_t token);

/* The i-th oldest submission (0: the oldest), or NULL when fewer wait. Its bytes stay valid
 * until it is popped. */
const struct cp_sub *cp_subq_peek(const struct cp_subq *q, uint32_t i);

/* Releases the oldest submission and its bytes. The queue must not be empty. */
void cp_subq_pop(struct cp_subq *q);

/* Checks the invariants: spans add up to used, every allocation inside the area and in
 * order. For asserts and tests. */
bool cp_subq_check_invariants(const struct cp_subq *q);

#endif
