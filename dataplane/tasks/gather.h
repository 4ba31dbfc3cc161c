/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scatter/gather of SPAN_ALL operations, the pure half: the fixed table of requests one
 * worker is gathering, and the reference that ties an owner's partial reply to its slot.
 *
 * A gather has up to SP_TASK_PARTS_MAX parts (a local worker, or another node), each
 * expected once. A part's answer carries how many partitions it covers and its partial
 * result, which is merged at once (nothing is buffered). The gather completes when every
 * part answered, or at its deadline; then:
 *   - every expected partition answered                 -> OK, the merged result;
 *   - some did not (a part timed out, or an owner had
 *     partitions arriving or unserved)                  -> PARTIAL, the merged result of
 *                                                          those that did (maybe empty);
 *   - a part answered an error status (BAD_REQUEST...)  -> that status, no value.
 * The reply's flags carry the count of partitions answered. Parts answering after the
 * deadline find a stale reference and are dropped (counted by the runtime).
 *
 * References: (slot, worker, tag) packed into the request id of a part request (a u32 the
 * owner echoes in its reply): 4 bits of slot, 6 of worker, 22 of tag. The tag changes
 * every time a slot is taken (wrapping after 2^22 - 1 gathers of one worker), so a late or
 * forged reply does not complete another gather. DPDK-free, allocation-free.
 */
#ifndef SP_DATAPLANE_TASK_GATHER_H
#define SP_DATAPLANE_TASK_GATHER_H

#include <stdbool.h>
#include <stdint.h>

#include "dataplane/tasks/task.h"

/* Requests one worker gathers at a time (more are answered SERVER_BUSY, counted). */
#define SP_TASK_GATHERS 16u
/* Parts of one gather: local workers (0..63) and other nodes (64 + node index). */
#define SP_TASK_PARTS_MAX  128u
#define SP_TASK_PART_NODE0 64u
/* Longest argument of a gathered request (it is sent with every part request). */
#define SP_TASK_GATHER_ARG_MAX 256u

/* Where the gathered answer goes (filled and read by the runtime; opaque here). */
struct sp_task_origin {
	uint64_t datagram_id;
	uint32_t request_id; /* echoed in the answer */
	uint32_t ip_be;
	uint16_t port;       /* host order */
	uint16_t local_port; /* the port it was sent to (host order) */
	uint8_t mac[6];
	uint8_t over_ring; /* answer over the hand-off ring to worker ring_to */
	uint8_t pad;
	uint16_t ring_to;
};

struct sp_task_gather {
	uint32_t tag; /* 0: free */
	uint8_t opcode;
	uint8_t status; /* SP_BP_ST_OK, or the first error a part answered */
	uint16_t parts_pending;
	uint32_t partitions_expected;
	uint32_t partitions_answered;
	uint64_t deadline;
	uint64_t pending[SP_TASK_PARTS_MAX / 64]; /* bit per part not yet answered */
	struct sp_task_origin origin;
	uint32_t arg_len;
	uint8_t arg[SP_TASK_GATHER_ARG_MAX];
	struct sp_task_out acc;
	uint8_t acc_buf[SP_TASK_RESULT_MAX];
};

struct sp_task_gathers {
	uint32_t next_tag;
	uint32_t live;
	uint64_t full;  /* takes refused */
	uint64_t stale; /* answers whose reference matched no live gather or pending part */
	struct sp_task_gather slots[SP_TASK_GATHERS];
};

void sp_task_gathers_init(struct sp_task_gathers *t);

/*
 * Takes a free slot for opcode with argument arg (arg_len <= SP_TASK_GATHER_ARG_MAX),
 * expecting partitions_expected partitions in all, answering at deadline at the latest.
 * Returns the slot (no part pending yet) with *index set, or NULL (counted) when none is
 * free.
 */
struct sp_task_gather *sp_task_gather_take(struct sp_task_gathers *t, uint8_t opcode,
                                           const uint8_t *arg, uint32_t arg_len,
                                           uint32_t partitions_expected, uint64_t deadline,
                                           uint32_t *index);

/* Marks part (< SP_TASK_PARTS_MAX) as expected. Can't fail; a part is added once. */
void sp_task_gather_expect(struct sp_task_gather *g, uint32_t part);

/* The reference part requests carry as their request id: slot index (< SP_TASK_GATHERS),
 * the gathering worker (< SP_TASK_REF_WORKERS), the slot's tag. */
#define SP_TASK_REF_WORKERS 64u
#define SP_TASK_TAG_MASK    0x3fffffu
uint32_t sp_task_ref(uint32_t index, uint16_t worker, uint32_t tag);
void sp_task_ref_split(uint32_t ref, uint32_t *index, uint16_t *worker, uint32_t *tag);

/*
 * Folds a part's answer into the gather that ref names: status (OK or an error), the
 * partitions it covers, its partial result. Returns the gather (check sp_task_gather_done)
 * or NULL (counted stale) when ref names no live slot, a stale tag, or a part that is not
 * pending. A part whose result merge() cannot read makes the gather's status INTERNAL.
 */
struct sp_task_gather *sp_task_gather_part(struct sp_task_gathers *t,
                                           const struct sp_task_registry *r, uint32_t ref,
                                           uint32_t part, uint8_t status, uint32_t partitions,
                                           const uint8_t *result, uint32_t result_len);

/* True when no part is pending. */
bool sp_task_gather_done(const struct sp_task_gather *g);

/*
 * The answer of a finished (or expired) gather: its status (OK, PARTIAL or a part's error)
 * and, through *flags, the partitions answered. The value is g->acc (empty unless OK or
 * PARTIAL).
 */
uint8_t sp_task_gather_answer(const struct sp_task_gather *g, uint32_t *flags);

/* Frees a slot (its tag stops matching at once). */
void sp_task_gather_release(struct sp_task_gathers *t, struct sp_task_gather *g);

/* A live slot whose deadline is <= now, or NULL: the caller answers it and releases it. */
struct sp_task_gather *sp_task_gather_expired(struct sp_task_gathers *t, uint64_t now);

/* Checks the table's invariants; for asserts and tests. */
bool sp_task_gathers_valid(const struct sp_task_gathers *t);

#endif
