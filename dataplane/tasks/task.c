/* SPDX-License-Identifier: BSD-3-Clause */
/* The registry of user-defined operations, their states and their execution (task.h). */
#include "dataplane/tasks/task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"

#define ALIGN_DEFAULT 64u

static bool
pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

void
sp_task_registry_init(struct sp_task_registry *r)
{
	ASSERT(r != NULL);
	memset(r, 0, sizeof(*r));
	for (uint32_t i = 0; i < SP_TASK_OPS_MAX; i++)
		r->index_of[i] = -1;
}

void
sp_task_registry_fini(struct sp_task_registry *r)
{
	ASSERT(!r->started);
	for (uint32_t i = 0; i < r->count; i++)
		if (r->wire_owned[i])
			VERIFY(sp_bp_op_unregister(r->defs[i].opcode) == 0);
	sp_task_registry_init(r);
}

/* The wire table's description of an operation of this span. */
static uint8_t
wire_props(const struct sp_task_def *d)
{
	return d->span == SP_TASK_SPAN_KEY ? (uint8_t)(SP_BP_OPF_KEY | SP_BP_OPF_WRITE)
	                                   : (uint8_t)SP_BP_OPF_FLAGS;
}

int
sp_task_register(struct sp_task_registry *r, const struct sp_task_def *def, char *why,
                 size_t why_len)
{
	ASSERT(r != NULL);
	ASSERT(def != NULL);
	if (r->started)
		return sp_explain(why, why_len, -SP_EBUSY,
		                  "task registry: operations are registered before start");
	if (def->opcode < SP_BP_OP_USER_FIRST)
		return sp_explain(why, why_len, -EINVAL,
		                  "task opcode %u is outside %u..255 (SP_BP_OP_USER_FIRST..)",
		                  def->opcode, SP_BP_OP_USER_FIRST);
	size_t name_len = def->name != NULL ? strlen(def->name) : 0;
	if (name_len == 0 || name_len > SP_TASK_NAME_MAX)
		return sp_explain(why, why_len, -EINVAL,
		                  "task opcode %u: name must be 1..%u characters (has %zu)",
		                  def->opcode, SP_TASK_NAME_MAX, name_len);
	if (def->exec == NULL)
		return sp_explain(why, why_len, -EINVAL, "task %s: exec is required", def->name);
	if (def->span != SP_TASK_SPAN_KEY && def->span != SP_TASK_SPAN_ALL &&
	    def->span != SP_TASK_SPAN_KEYS)
		return sp_explain(why, why_len, -EINVAL, "task %s: span %u is not KEY, ALL or KEYS",
		                  def->name, def->span);
	if (def->span != SP_TASK_SPAN_KEY && def->merge == NULL)
		return sp_explain(
		        why, why_len, -EINVAL,
		        "task %s: an operation over several partitions needs a merge function",
		        def->name);
	if (def->span == SP_TASK_SPAN_KEY && def->merge != NULL)
		return sp_explain(why, why_len, -EINVAL,
		                  "task %s: a SPAN_KEY operation has nothing to merge", def->name);
	if (def->state_align != 0 &&
	    (!pow2(def->state_align) || def->state_align > SP_TASK_ALIGN_MAX))
		return sp_explain(why, why_len, -EINVAL,
		                  "task %s: state_align %u is not a power of two <= %u", def->name,
		                  def->state_align, SP_TASK_ALIGN_MAX);
	if (def->state_size > SP_TASK_STATE_MAX)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "task %s: state_size %u is over %u bytes per partition",
		                  def->name, def->state_size, SP_TASK_STATE_MAX);
	if (def->result_max == 0)
		return sp_explain(why, why_len, -EINVAL, "task %s: result_max is 0", def->name);
	if (def->result_max > SP_TASK_RESULT_MAX)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "task %s: result_max %u is over %u (one reply record)", def->name,
		                  def->result_max, SP_TASK_RESULT_MAX);
	if (def->arg_max > SP_BP_VALUE_MAX)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "task %s: arg_max %u is over %u (one request value)", def->name,
		                  def->arg_max, SP_BP_VALUE_MAX);
	if (r->index_of[def->opcode - SP_BP_OP_USER_FIRST] >= 0)
		return sp_explain(why, why_len, -SP_EEXISTS, "task %s: opcode %u is taken by %s",
		                  def->name, def->opcode,
		                  r->names[r->index_of[def->opcode - SP_BP_OP_USER_FIRST]]);
	for (uint32_t k = 0; k < r->count; k++)
		if (strcmp(r->names[k], def->name) == 0)
			return sp_explain(why, why_len, -SP_EEXISTS,
			                  "task %s: the name is taken by opcode %u", def->name,
			                  r->defs[k].opcode);
	VERIFY(r->count < SP_TASK_OPS_MAX); /* every opcode is distinct */
	uint32_t i = r->count;
	memcpy(r->names[i], def->name, name_len + 1);
	/* The wire table: added here, or already there with the same description. */
	const struct sp_bp_op_info *oi = sp_bp_op(def->opcode);
	bool owned = false;
	if ((oi->props & SP_BP_OPF_VALID) == 0) {
		int rc = sp_bp_op_register(def->opcode, r->names[i], wire_props(def),
		                           SP_BP_VALUE_BYTES, (uint16_t)def->result_max);
		if (rc != 0)
			return sp_explain(why, why_len, rc,
			                  "task %s: the wire table refused opcode %u", def->name,
			                  def->opcode);
		owned = true;
	} else if (oi->props != (SP_BP_OPF_VALID | SP_BP_OPF_USER | wire_props(def)) ||
	           oi->value != SP_BP_VALUE_BYTES || oi->reply_room != def->result_max ||
	           strcmp(oi->name, def->name) != 0) {
		return sp_explain(why, why_len, -SP_EEXISTS,
		                  "task %s: opcode %u is registered in the wire table as %s",
		                  def->name, def->opcode, oi->name);
	}
	r->count++;
	r->wire_owned[i] = owned;
	r->defs[i] = *def;
	if (r->defs[i].state_align == 0)
		r->defs[i].state_align = ALIGN_DEFAULT;
	r->defs[i].name = r->names[i];
	r->index_of[def->opcode - SP_BP_OP_USER_FIRST] = (int16_t)i;
	ASSERT(sp_task_find(r, def->opcode) == &r->defs[i]);
	return 0;
}

static size_t
state_bytes(const struct sp_task_def *d)
{
	/* Whole alignment units, so that the allocator's contract (multiple of align) holds. */
	return ((size_t)d->state_size + d->state_align - 1) / d->state_align * d->state_align;
}

void *
sp_task_heap_alloc(size_t bytes, size_t align, uint32_t partition, void *ctx)
{
	/* aligned_alloc takes a size that is a multiple of the alignment. */
	size_t size = (bytes + align - 1) / align * align;
	void *p = aligned_alloc(align, size);

	(void)partition;
	(void)ctx;
	if (p != NULL)
		memset(p, 0, size);
	return p;
}

void
sp_task_heap_free(void *p, void *ctx)
{
	(void)ctx;
	free(p);
}

void
sp_task_stop(struct sp_task_registry *r, sp_task_free_fn free_fn, void *ctx)
{
	ASSERT(r != NULL);
	if (r->states != NULL) {
		for (size_t k = 0; k < (size_t)r->count * r->partitions; k++)
			if (r->states[k] != NULL)
				free_fn(r->states[k], ctx);
		free_fn(r->states, ctx);
	}
	r->states = NULL;
	r->partitions = 0;
	r->started = false;
}

int
sp_task_start(struct sp_task_registry *r, uint32_t partitions, sp_task_alloc_fn alloc,
              sp_task_free_fn free_fn, void *ctx, char *why, size_t why_len)
{
	ASSERT(r != NULL);
	ASSERT(alloc != NULL);
	ASSERT(free_fn != NULL);
	VERIFY(!r->started);
	if (!pow2(partitions))
		return sp_explain(why, why_len, -EINVAL,
		                  "tasks: %u partitions is not a power of two", partitions);
	if (r->count == 0) {
		r->started = true;
		r->partitions = partitions;
		return 0;
	}
	size_t slots = (size_t)r->count * partitions;
	r->states = alloc((slots * sizeof(void *) + 63) / 64 * 64, 64, UINT32_MAX, ctx);
	if (r->states == NULL)
		return sp_explain(why, why_len, -ENOMEM, "tasks: no memory for %zu state pointers",
		                  slots);
	r->partitions = partitions;
	for (uint32_t i = 0; i < r->count; i++) {
		const struct sp_task_def *d = &r->defs[i];

		if (d->state_size == 0)
			continue;
		for (uint32_t p = 0; p < partitions; p++) {
			void *st = alloc(state_bytes(d), d->state_align, p, ctx);
			int rc;

			if (st == NULL) {
				sp_task_stop(r, free_fn, ctx);
				return sp_explain(
				        why, why_len, -ENOMEM,
				        "task %s: no memory for the state of partition %u "
				        "(%u bytes each, %u partitions); give more hugepages "
				        "or --memory-mb",
				        d->name, p, d->state_size, partitions);
			}
			ASSERT(((uintptr_t)st & (d->state_align - 1)) == 0);
			r->states[(size_t)i * partitions + p] = st;
			rc = d->init != NULL ? d->init(st, d->state_size, p, d->user) : 0;
			if (rc != 0) {
				sp_task_stop(r, free_fn, ctx);
				return sp_explain(why, why_len, rc < 0 ? rc : -EINVAL,
				                  "task %s: init of partition %u failed (%d)",
				                  d->name, p, rc);
			}
		}
	}
	r->started = true;
	return 0;
}

void *
sp_task_state(const struct sp_task_registry *r, const struct sp_task_def *def, uint32_t p)
{
	ASSERT(r->started);
	ASSERT(p < r->partitions);
	if (def->state_size == 0)
		return NULL;
	return r->states[(size_t)sp_task_index(r, def) * r->partitions + p];
}

uint8_t
sp_task_admit(const struct sp_task_registry *r, const struct sp_bp_req *req)
{
	const struct sp_task_def *d = sp_task_find(r, req->opcode);

	ASSERT(req->err == SP_BP_ERR_OK);
	if (d == NULL)
		return SP_BP_ST_BAD_REQUEST;
	if (d->span == SP_TASK_SPAN_KEY && req->key_len == 0)
		return SP_BP_ST_BAD_REQUEST;
	if (d->span != SP_TASK_SPAN_KEY && req->key_len != 0)
		return SP_BP_ST_BAD_REQUEST;
	if (d->span != SP_TASK_SPAN_KEY && req->flags > SP_BP_TASK_SCOPE_MAX)
		return SP_BP_ST_BAD_REQUEST;
	if (d->span == SP_TASK_SPAN_KEYS) {
		struct sp_task_keys k;

		if (sp_task_keys_decode(req->value, req->value_len, &k) != 0)
			return SP_BP_ST_BAD_REQUEST;
		if (k.arg_len > d->arg_max)
			return SP_BP_ST_TOO_BIG;
		return d->check != NULL ? d->check(k.arg, k.arg_len, d->user) : SP_BP_ST_OK;
	}
	if (req->value_len > d->arg_max)
		return SP_BP_ST_TOO_BIG;
	if (d->check != NULL)
		return d->check(req->value, req->value_len, d->user);
	return SP_BP_ST_OK;
}

static void
count(struct sp_task_stats *stats, const struct sp_task_registry *r, const struct sp_task_def *d,
      uint8_t status)
{
	ASSERT(status < SP_BP_ST_LAST);
	if (stats != NULL && d != NULL)
		stats[sp_task_index(r, d)].status[status]++;
}

int
sp_task_run_key(const struct sp_task_registry *r, const struct sp_bp_req *req, struct store *store,
                uint64_t now_ns, uint32_t now_s, struct sp_bp_builder *reply,
                struct sp_task_stats *stats)
{
	const struct sp_task_def *d = sp_task_find(r, req->opcode);
	uint8_t st;

	ASSERT(r->started);
	ASSERT((reply->flags & SP_BP_F_REPLY) != 0);
	st = req->err != SP_BP_ERR_OK ? req->status : sp_task_admit(r, req);
	if (st == SP_BP_ST_OK && d->span != SP_TASK_SPAN_KEY)
		st = SP_BP_ST_BAD_REQUEST; /* the runtime gathers the others; never here */
	if (st != SP_BP_ST_OK) {
		if (sp_bp_add_reply(reply, req->request_id, req->opcode, st, 0, 0, 0) == NULL)
			return -SP_EFULL;
		count(stats, r, d, st);
		return 0;
	}
	/* The state changes only when the reply is sure to fit. */
	if (!sp_bp_reply_fits(reply, d->result_max))
		return -SP_EFULL;
	ASSERT(req->partition < r->partitions);
	struct sp_task_call call = {
	        .state = sp_task_state(r, d, req->partition),
	        .state_size = d->state_size,
	        .store = store,
	        .partition = req->partition,
	        .now_ns = now_ns,
	        .now_s = now_s,
	        .key = req->key,
	        .key_len = req->key_len,
	        .hash = req->hash,
	        .arg = req->value,
	        .arg_len = req->value_len,
	};
	/* The result is written straight into the reply, behind a header written last. */
	uint8_t *h = reply->buf + reply->len;
	struct sp_task_out out = {.buf = h + SP_BP_REPLY_HDR_SIZE, .cap = d->result_max, .len = 0};
	st = d->exec(&call, &out, d->user);
	if (stats != NULL)
		stats[sp_task_index(r, d)].runs++;
	VERIFY(out.len <= out.cap);
	VERIFY(st < SP_BP_ST_LAST);
	if (st != SP_BP_ST_OK)
		out.len = 0;
	uint8_t *dst = sp_bp_add_reply(reply, req->request_id, req->opcode, st, 0, 0, out.len);
	VERIFY(dst == out.buf);
	count(stats, r, d, st);
	return 0;
}

/*
 * Runs def on the partition of *call into a scratch result and merges that into acc (both
 * counted in stats when given). Returns exec's status when it is not OK (nothing merged),
 * else merge's.
 */
static uint8_t
exec_merge(const struct sp_task_registry *r, const struct sp_task_def *def,
           const struct sp_task_call *call, struct sp_task_out *acc, struct sp_task_stats *stats)
{
	uint8_t tmp[SP_TASK_RESULT_MAX];
	struct sp_task_out out = {.buf = tmp, .cap = def->result_max, .len = 0};
	uint8_t st = def->exec(call, &out, def->user);

	VERIFY(out.len <= out.cap);
	if (stats != NULL)
		stats[sp_task_index(r, def)].runs++;
	if (st != SP_BP_ST_OK)
		return st;
	st = def->merge(acc, tmp, out.len, call->arg, call->arg_len, def->user);
	VERIFY(acc->len <= def->result_max);
	if (stats != NULL)
		stats[sp_task_index(r, def)].merges++;
	return st;
}

uint8_t
sp_task_run_span(const struct sp_task_registry *r, const struct sp_task_def *def,
                 const uint8_t *arg, uint32_t arg_len, const uint32_t *parts, uint32_t n,
                 struct store *const *stores, uint64_t now_ns, uint32_t now_s,
                 struct sp_task_out *acc, struct sp_task_stats *stats)
{
	ASSERT(r->started);
	ASSERT(def->span == SP_TASK_SPAN_ALL);
	ASSERT(acc->cap >= def->result_max);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t p = parts[k];
		struct sp_task_call call = {
		        .state = sp_task_state(r, def, p),
		        .state_size = def->state_size,
		        .store = stores != NULL ? stores[p] : NULL,
		        .partition = p,
		        .now_ns = now_ns,
		        .now_s = now_s,
		        .arg = arg,
		        .arg_len = arg_len,
		};
		uint8_t st = exec_merge(r, def, &call, acc, stats);

		if (st != SP_BP_ST_OK)
			return st;
	}
	return SP_BP_ST_OK;
}

uint8_t
sp_task_run_one(const struct sp_task_registry *r, const struct sp_task_def *def, const uint8_t *key,
                uint8_t key_len, uint64_t hash, uint32_t partition, const uint8_t *arg,
                uint32_t arg_len, struct store *store, uint64_t now_ns, uint32_t now_s,
                struct sp_task_out *acc, struct sp_task_stats *stats)
{
	ASSERT(r->started);
	ASSERT(def->span == SP_TASK_SPAN_KEYS);
	ASSERT(partition < r->partitions);
	ASSERT(key_len != 0);
	struct sp_task_call call = {
	        .state = sp_task_state(r, def, partition),
	        .state_size = def->state_size,
	        .store = store,
	        .partition = partition,
	        .now_ns = now_ns,
	        .now_s = now_s,
	        .key = key,
	        .key_len = key_len,
	        .hash = hash,
	        .arg = arg,
	        .arg_len = arg_len,
	};
	return exec_merge(r, def, &call, acc, stats);
}
