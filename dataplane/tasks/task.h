/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * User-defined partitioned operations ("tasks"): the API a program built on Shardplane uses
 * to add its own operations to the dataplane (docs/tasks.md is the guide, with an example).
 *
 * An operation is registered once, before the dataplane starts, with:
 *   - its opcode (SP_BP_OP_USER_FIRST..255): clients send it in the binary protocol,
 *     whose opcode table (wire/binproto.h) learns it at registration;
 *   - its per-partition state: state_size bytes (aligned to state_align) for every
 *     partition, zeroed and then given to init(), allocated at start by the runtime in
 *     hugepage memory on the socket of the partition's first owner, never freed or moved
 *     while the dataplane runs;
 *   - its execute function, called on the partition's owner core only, with exclusive
 *     access to that partition's state and store (the same single-writer rule as the
 *     store: no lock is needed, and none may be taken);
 *   - its request and reply encoding: the request's value (up to SP_BP_VALUE_MAX bytes) is
 *     the operation's argument, the reply's value (up to result_max bytes) its result;
 *   - its span: SP_TASK_SPAN_KEY (the request carries a key and runs on the key's
 *     partition: routed, handed off and forwarded exactly like a GET), SP_TASK_SPAN_ALL
 *     (no key: runs on every partition; the worker that receives it fans it out to the
 *     owners and folds their partial results together with merge()) or SP_TASK_SPAN_KEYS
 *     (no key; the argument starts with a list of keys, wire/taskproto.h: exec runs once
 *     per key on that key's owner, and the results are merged as for SPAN_ALL).
 *
 * Execute and merge run on the per-packet path: they must not allocate, lock, block or make
 * a system call, and must finish in bounded time. Everything in this module is DPDK-free;
 * the runtime (dataplane/runtime/taskport.c) supplies memory, clock and transport.
 */
#ifndef SP_DATAPLANE_TASK_H
#define SP_DATAPLANE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/store/store.h"
#include "wire/binproto.h"
#include "wire/taskproto.h"

/* Operations one registry holds: the whole registered opcode range. */
#define SP_TASK_OPS_MAX (SP_BP_OP_COUNT - SP_BP_OP_USER_FIRST)
/* Largest per-partition state (bytes): P of them are allocated at start. */
#define SP_TASK_STATE_MAX (16u << 20)
/* Largest state alignment. */
#define SP_TASK_ALIGN_MAX 4096u
/* Largest result (and partial result): a reply value the opcode table accepts. */
#define SP_TASK_RESULT_MAX SP_BP_VALUE_MAX
/* Longest operation name. */
#define SP_TASK_NAME_MAX 31u

enum sp_task_span {
	SP_TASK_SPAN_KEY = 0,  /* one partition: the key's */
	SP_TASK_SPAN_ALL = 1,  /* every partition (scope in the request flags) */
	SP_TASK_SPAN_KEYS = 2, /* a list of keys (wire/taskproto.h): each on its partition */
};

/* What an execute call sees. */
struct sp_task_call {
	void *state; /* this partition's state (state_size bytes; NULL when 0) */
	uint32_t state_size;
	struct store *store; /* this partition's key-value store (owner access) */
	uint32_t partition;
	uint64_t now_ns;    /* the owner's monotonic clock, nanoseconds */
	uint32_t now_s;     /* the store's clock, seconds */
	const uint8_t *key; /* SPAN_KEY: the key (1..SP_BP_KEY_MAX bytes); else NULL */
	uint16_t key_len;
	uint64_t hash;      /* sp_key_hash(key) */
	const uint8_t *arg; /* the request's value: the operation's argument */
	uint32_t arg_len;
};

/* Where execute and merge write a result: buf has cap bytes; len is what is used. */
struct sp_task_out {
	uint8_t *buf;
	uint32_t cap;
	uint32_t len;
};

/*
 * Checks a request's argument before anything runs (optional): returns SP_BP_ST_OK, or
 * the status the request is answered with (BAD_REQUEST, TOO_BIG). Runs on the receiving
 * worker; must not touch any state.
 */
typedef uint8_t (*sp_task_check_fn)(const uint8_t *arg, uint32_t arg_len, void *user);

/* Prepares partition `partition`'s state (already zeroed) at start. Returns 0 or -errno. */
typedef int (*sp_task_init_fn)(void *state, uint32_t state_size, uint32_t partition, void *user);

/*
 * Runs the operation on one partition. Writes the result (SPAN_KEY: the reply's value;
 * SPAN_ALL: this partition's partial result, in the encoding merge() reads) into out, at
 * most out->cap (= result_max) bytes, and returns the reply status (SP_BP_ST_OK, or an
 * error status: a SPAN_ALL error status fails the whole gathered request with it).
 */
typedef uint8_t (*sp_task_exec_fn)(const struct sp_task_call *call, struct sp_task_out *out,
                                   void *user);

/*
 * SPAN_ALL only: folds one partial result (part, part_len bytes: what exec or an earlier
 * merge wrote) into acc. acc->len == 0 means nothing was gathered yet. The order in which
 * parts arrive is arbitrary, so merge must be associative and commutative. Returns
 * SP_BP_ST_OK, or BAD_REQUEST for a malformed part (then acc must be unchanged).
 */
typedef uint8_t (*sp_task_merge_fn)(struct sp_task_out *acc, const uint8_t *part, uint32_t part_len,
                                    const uint8_t *arg, uint32_t arg_len, void *user);

/* What a program registers. */
struct sp_task_def {
	const char *name;       /* 1..SP_TASK_NAME_MAX characters, unique (counters, logs) */
	uint8_t opcode;         /* SP_BP_OP_USER_FIRST..255, unique */
	uint8_t span;           /* enum sp_task_span */
	uint32_t state_size;    /* per-partition state bytes, 0..SP_TASK_STATE_MAX */
	uint32_t state_align;   /* power of two <= SP_TASK_ALIGN_MAX; 0: 64 */
	uint32_t result_max;    /* 1..SP_TASK_RESULT_MAX: the largest result exec/merge write */
	uint32_t arg_max;       /* largest argument accepted (0..SP_BP_VALUE_MAX) */
	sp_task_check_fn check; /* optional */
	sp_task_init_fn init;   /* optional */
	sp_task_exec_fn exec;   /* required */
	sp_task_merge_fn merge; /* required for SPAN_ALL; NULL for SPAN_KEY */
	void *user;             /* passed to every callback */
};

/* Counters of one operation on one worker. All monotonic. */
struct sp_task_stats {
	uint64_t runs;                  /* exec calls */
	uint64_t status[SP_BP_ST_LAST]; /* replies (SPAN_KEY) or gathered answers by status */
	uint64_t merges;                /* merge calls */
};

/*
 * Allocates bytes (a multiple of align, align a power of two) for partition `partition`
 * (UINT32_MAX: the registry's own table), zeroed, on the memory the runtime chooses
 * (hugepages on the owner's socket). Returns NULL when out of memory.
 */
typedef void *(*sp_task_alloc_fn)(size_t bytes, size_t align, uint32_t partition, void *ctx);
typedef void (*sp_task_free_fn)(void *p, void *ctx);

/* The operations of one dataplane and, once started, their states. */
struct sp_task_registry {
	uint32_t count;
	bool started;
	int16_t index_of[SP_TASK_OPS_MAX]; /* opcode - USER_FIRST -> index in defs, -1: none */
	bool wire_owned[SP_TASK_OPS_MAX];  /* defs[i]'s opcode was added to the wire table here */
	struct sp_task_def defs[SP_TASK_OPS_MAX];
	char names[SP_TASK_OPS_MAX][SP_TASK_NAME_MAX + 1];
	uint32_t partitions;
	void **states; /* defs[i]'s state of partition p at states[i * partitions + p] */
};

/* An empty registry. Can't fail. */
void sp_task_registry_init(struct sp_task_registry *r);

/* Takes the registry's opcodes out of the wire opcode table (after sp_task_stop, or when
 * it never started); the registry is empty again. */
void sp_task_registry_fini(struct sp_task_registry *r);

/*
 * Registers def (copied) and its opcode in the binary protocol's opcode table
 * (sp_bp_op_register: SPAN_KEY operations carry a key and write; SPAN_ALL ones carry no key
 * and a scope in the flags; both carry a value of bytes). An opcode already in that table
 * with exactly these properties (the client helper sp_taskproto_register, or another
 * registry) is accepted. Returns 0, or: -SP_EBUSY after sp_task_start; -EINVAL for an
 * opcode outside the range, a missing exec, a span other than KEY/ALL, merge missing on
 * SPAN_ALL or given on SPAN_KEY, an empty or too long name, an alignment that is not a power
 * of two or over SP_TASK_ALIGN_MAX, result_max 0; -SP_ETOOBIG for state_size over
 * SP_TASK_STATE_MAX, result_max over SP_TASK_RESULT_MAX or arg_max over SP_BP_VALUE_MAX;
 * -SP_EEXISTS for an opcode or name already registered (here, or in the wire table as
 * something else). why (optional) gets a sentence
 * naming the field, its value and the limit. Nothing is registered on error.
 */
int sp_task_register(struct sp_task_registry *r, const struct sp_task_def *def, char *why,
                     size_t why_len);

/* The operation registered for opcode, or NULL. Hot path: one array load. */
static inline const struct sp_task_def *
sp_task_find(const struct sp_task_registry *r, uint8_t opcode)
{
	if (opcode < SP_BP_OP_USER_FIRST)
		return NULL;
	int16_t i = r->index_of[opcode - SP_BP_OP_USER_FIRST];
	return i < 0 ? NULL : &r->defs[i];
}

/*
 * Allocates and initialises every operation's state for `partitions` partitions (a power
 * of two) with alloc, and freezes the registry. Returns 0, or -ENOMEM (alloc failed) or the
 * first init error, with everything allocated freed again (through free_fn) and the
 * registry still open. Total memory: sum over operations of partitions * state_size.
 */
int sp_task_start(struct sp_task_registry *r, uint32_t partitions, sp_task_alloc_fn alloc,
                  sp_task_free_fn free_fn, void *ctx, char *why, size_t why_len);

/*
 * An sp_task_alloc_fn / sp_task_free_fn pair on the C heap (aligned_alloc, zeroed; align a
 * power of two, bytes any size: rounded up to a multiple of align), for a
 * program that runs operations without the dataplane's hugepages: tests, benchmarks, a
 * server of its own. ctx is not used.
 */
void *sp_task_heap_alloc(size_t bytes, size_t align, uint32_t partition, void *ctx);
void sp_task_heap_free(void *p, void *ctx);

/* Frees every state (after the workers stopped) and opens the registry again. */
void sp_task_stop(struct sp_task_registry *r, sp_task_free_fn free_fn, void *ctx);

/* The state of def's operation for partition p (after sp_task_start). */
void *sp_task_state(const struct sp_task_registry *r, const struct sp_task_def *def, uint32_t p);

/*
 * Whether req (decoded, err OK, a registered opcode) may run: the span's key rule (KEY: a
 * key; ALL: none), the argument's size and check(). Returns SP_BP_ST_OK or the status
 * to answer with (BAD_REQUEST for an unregistered opcode).
 */
uint8_t sp_task_admit(const struct sp_task_registry *r, const struct sp_bp_req *req);

/*
 * Executes a SPAN_KEY request on its partition (req->partition, which the caller owns)
 * and appends the reply to reply. Returns 0 when a reply was appended, or -SP_EFULL
 * (nothing ran, nothing written) when result_max more bytes do not fit in reply: send the
 * datagram and call again with an empty one. Requests sp_task_admit() refuses are
 * answered with its status. stats (per worker, indexed by operation) may be NULL.
 */
int sp_task_run_key(const struct sp_task_registry *r, const struct sp_bp_req *req,
                    struct store *store, uint64_t now_ns, uint32_t now_s,
                    struct sp_bp_builder *reply, struct sp_task_stats *stats);

/*
 * Executes a SPAN_ALL operation on partitions parts[0..n) (all owned by the caller) and
 * merges every partial result into acc (acc->cap >= result_max). stores[p] is partition
 * p's store. Returns SP_BP_ST_OK, or the first error status exec or merge returned (acc is
 * then undefined). stats may be NULL.
 */
uint8_t sp_task_run_span(const struct sp_task_registry *r, const struct sp_task_def *def,
                         const uint8_t *arg, uint32_t arg_len, const uint32_t *parts, uint32_t n,
                         struct store *const *stores, uint64_t now_ns, uint32_t now_s,
                         struct sp_task_out *acc, struct sp_task_stats *stats);

/*
 * SPAN_KEYS: executes def on one key (its partition is sp_key_partition of its hash, owned
 * by the caller) and merges the result into acc. arg is the operation's own argument
 * (what follows the key list). Returns SP_BP_ST_OK or the status exec or merge returned.
 */
uint8_t sp_task_run_one(const struct sp_task_registry *r, const struct sp_task_def *def,
                        const uint8_t *key, uint8_t key_len, uint64_t hash, uint32_t partition,
                        const uint8_t *arg, uint32_t arg_len, struct store *store, uint64_t now_ns,
                        uint32_t now_s, struct sp_task_out *acc, struct sp_task_stats *stats);

/* Index of def in r->defs (for per-operation counter arrays). */
static inline uint32_t
sp_task_index(const struct sp_task_registry *r, const struct sp_task_def *def)
{
	return (uint32_t)(def - r->defs);
}

#endif
