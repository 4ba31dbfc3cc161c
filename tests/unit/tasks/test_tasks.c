/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The task API (dataplane/tasks): registration errors, state allocation, execution on the
 * owner's partition only, the gather table with owners that answer, fail or time out, and
 * the two shipped operations (ratelimit, aggregate) against models under random load.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/tasks/aggregate.h"
#include "dataplane/tasks/gather.h"
#include "dataplane/tasks/ratelimit.h"
#include "dataplane/tasks/task.h"
#include "tests/unit/store_fixture.h"
#include "tests/unit/tasks/example_hits.h"
#include "tests/unit/test_seed.h"
#include "wire/taskproto.h"

static uint64_t rng_state;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
rng_seed(const char *name)
{
	rng_state = test_seed(name) | 1;
}

/* ---- An allocator that records what it was asked ---------------------------------------- */

struct alloc_log {
	uint32_t allocs, frees, fail_at; /* fail_at: 1-based call to fail, 0: never */
	size_t align_seen;
	uint32_t parts_seen;
};

static void *
state_alloc(size_t bytes, size_t align, uint32_t partition, void *ctx)
{
	struct alloc_log *l = ctx;

	if (l->fail_at != 0 && l->allocs + 1 == l->fail_at)
		return NULL;
	assert_int_equal(bytes % align, 0);
	l->allocs++;
	if (partition != UINT32_MAX) {
		l->align_seen = align;
		l->parts_seen++;
	}
	void *p = aligned_alloc(align, bytes);
	assert_non_null(p);
	memset(p, 0, bytes);
	return p;
}

static void
state_free(void *p, void *ctx)
{
	struct alloc_log *l = ctx;

	l->frees++;
	free(p);
}

/* ---- A toy operation: counts the calls on each partition -------------------------------- */

struct count_state {
	uint64_t calls;
	uint32_t partition; /* set by init */
	uint32_t inited;
};

static int
count_init(void *state, uint32_t size, uint32_t partition, void *user)
{
	struct count_state *s = state;

	(void)user;
	assert_int_equal(size, sizeof(*s));
	s->partition = partition;
	s->inited = 1;
	return 0;
}

static uint8_t
count_exec(const struct sp_task_call *c, struct sp_task_out *out, void *user)
{
	struct count_state *s = c->state;

	(void)user;
	assert_int_equal(s->partition, c->partition); /* the state is the partition's own */
	s->calls++;
	memcpy(out->buf, &s->calls, 8);
	out->len = 8;
	return SP_BP_ST_OK;
}

static uint8_t
sum_merge(struct sp_task_out *acc, const uint8_t *part, uint32_t len, const uint8_t *arg,
          uint32_t arg_len, void *user)
{
	uint64_t a = 0, b;

	(void)arg;
	(void)arg_len;
	(void)user;
	if (len != 8)
		return SP_BP_ST_BAD_REQUEST;
	if (acc->len != 0)
		memcpy(&a, acc->buf, 8);
	memcpy(&b, part, 8);
	a += b;
	memcpy(acc->buf, &a, 8);
	acc->len = 8;
	return SP_BP_ST_OK;
}

static struct sp_task_def
count_def(uint8_t opcode, const char *name)
{
	return (struct sp_task_def){.name = name,
	                            .opcode = opcode,
	                            .span = SP_TASK_SPAN_KEY,
	                            .state_size = sizeof(struct count_state),
	                            .result_max = 8,
	                            .arg_max = 16,
	                            .init = count_init,
	                            .exec = count_exec};
}

static void
test_register_errors(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	char why[160];
	struct sp_task_def d;

	(void)state;
	assert_non_null(r);
	sp_task_registry_init(r);
	d = count_def(170, "count");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), 0);

	d = count_def(170, "other");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -SP_EEXISTS);
	assert_non_null(strstr(why, "opcode 170 is taken by count"));
	d = count_def(171, "count");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -SP_EEXISTS);
	d = count_def(SP_BP_OP_USER_FIRST - 1, "low");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "outside"));
	d = count_def(SP_BP_OP_SET, "builtin");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "big");
	d.state_size = SP_TASK_STATE_MAX + 1;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -SP_ETOOBIG);
	assert_non_null(strstr(why, "state_size"));
	d = count_def(172, "align");
	d.state_align = 48;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d.state_align = SP_TASK_ALIGN_MAX * 2;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "res0");
	d.result_max = 0;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d.result_max = SP_TASK_RESULT_MAX + 1;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -SP_ETOOBIG);
	d = count_def(172, "arg");
	d.arg_max = SP_BP_VALUE_MAX + 1;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -SP_ETOOBIG);
	d = count_def(172, "noexec");
	d.exec = NULL;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "span");
	d.span = 3;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "allnomerge");
	d.span = SP_TASK_SPAN_ALL;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "keymerge");
	d.merge = sum_merge;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	d = count_def(172, "a_name_that_is_longer_than_31_chars");
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), -EINVAL);
	/* Nothing of the refused ones was kept. */
	assert_int_equal(r->count, 1);
	assert_null(sp_task_find(r, 172));
	assert_non_null(sp_task_find(r, 170));
	/* The edges themselves are accepted. */
	d = count_def(255, "edge");
	d.state_size = SP_TASK_STATE_MAX;
	d.state_align = SP_TASK_ALIGN_MAX;
	d.result_max = SP_TASK_RESULT_MAX;
	d.arg_max = SP_BP_VALUE_MAX;
	assert_int_equal(sp_task_register(r, &d, why, sizeof(why)), 0);
	assert_int_equal(r->count, 2);

	/* Registration closes at start. */
	struct sp_task_registry *r2 = malloc(sizeof(*r2));
	struct alloc_log log = {0};
	assert_non_null(r2);
	sp_task_registry_init(r2);
	d = count_def(170, "count");
	assert_int_equal(sp_task_register(r2, &d, why, sizeof(why)), 0);
	assert_int_equal(sp_task_start(r2, 4, state_alloc, state_free, &log, why, sizeof(why)), 0);
	d = count_def(171, "late");
	assert_int_equal(sp_task_register(r2, &d, why, sizeof(why)), -SP_EBUSY);
	sp_task_stop(r2, state_free, &log);
	assert_int_equal(log.allocs, log.frees);
	sp_task_registry_fini(r2);
	free(r2);
	sp_task_registry_fini(r);
	assert_int_equal(sp_bp_op(170)->props, 0); /* the wire table forgot it */
	free(r);
}

static void
test_start_allocates_and_cleans_up(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct alloc_log log = {0};
	char why[160];
	struct sp_task_def d = count_def(166, "count");

	(void)state;
	assert_non_null(r);
	sp_task_registry_init(r);
	d.state_align = 256;
	assert_int_equal(sp_task_register(r, &d, NULL, 0), 0);
	assert_int_equal(sp_task_start(r, 3, state_alloc, state_free, &log, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(sp_task_start(r, 16, state_alloc, state_free, &log, why, sizeof(why)), 0);
	assert_int_equal(log.parts_seen, 16);
	assert_int_equal(log.align_seen, 256);
	for (uint32_t p = 0; p < 16; p++) {
		struct count_state *s = sp_task_state(r, sp_task_find(r, 166), p);
		assert_non_null(s);
		assert_int_equal((uintptr_t)s % 256, 0);
		assert_int_equal(s->partition, p);
		assert_int_equal(s->inited, 1);
	}
	sp_task_stop(r, state_free, &log);
	assert_int_equal(log.allocs, log.frees);
	assert_false(r->started);

	/* The 6th allocation fails: everything taken so far is given back. */
	struct alloc_log log2 = {.fail_at = 6};
	assert_int_equal(sp_task_start(r, 16, state_alloc, state_free, &log2, why, sizeof(why)),
	                 -ENOMEM);
	assert_non_null(strstr(why, "partition 4"));
	assert_int_equal(log2.allocs, 5);
	assert_int_equal(log2.frees, 5);
	assert_false(r->started);
	sp_task_registry_fini(r);
	free(r);
}

/* Builds a decoded request (as the dataplane's decoder would) in buf. */
static struct sp_bp_req
decoded(uint8_t *buf, uint8_t opcode, const char *key, const void *arg, uint32_t arg_len,
        uint32_t flags, uint32_t partitions)
{
	struct sp_bp_builder b;
	struct sp_bp_req q = {.opcode = opcode,
	                      .request_id = 7,
	                      .key = (const uint8_t *)key,
	                      .key_len = key != NULL ? (uint16_t)strlen(key) : 0,
	                      .value = arg,
	                      .value_len = arg_len,
	                      .flags = flags};
	struct sp_bp_req out[1];
	struct sp_bp_dgram dg;

	sp_bp_builder_init(&b, buf, SP_BP_PAYLOAD_MAX, false, 1);
	assert_int_equal(sp_bp_add_request(&b, &q), 0);
	uint32_t len = sp_bp_builder_finish(&b);
	assert_int_equal(sp_bp_decode_requests(buf, len, partitions, out, 1, &dg), SP_BP_ERR_OK);
	return out[0];
}

static void
test_run_on_owner_partition_only(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct alloc_log log = {0};
	struct sp_task_def d = count_def(166, "count");
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX], repbuf[SP_BP_PAYLOAD_MAX];
	struct sp_task_stats stats[SP_TASK_OPS_MAX];
	uint64_t expect[16] = {0};
	char key[32];

	(void)state;
	memset(stats, 0, sizeof(stats));
	rng_seed("run_on_owner_partition_only");
	sp_task_registry_init(r);
	assert_int_equal(sp_task_register(r, &d, NULL, 0), 0);
	assert_int_equal(sp_task_start(r, 16, state_alloc, state_free, &log, NULL, 0), 0);
	for (int i = 0; i < 500; i++) {
		struct sp_bp_builder b;
		struct sp_bp_reply rep[1];
		struct sp_bp_dgram dg;

		snprintf(key, sizeof(key), "k%" PRIu64, rng() % 100);
		struct sp_bp_req q = decoded(reqbuf, 166, key, NULL, 0, 0, 16);
		assert_int_equal(q.partition, sp_key_partition(sp_key_hash(key, strlen(key)), 16));
		sp_bp_builder_init(&b, repbuf, sizeof(repbuf), true, 1);
		assert_int_equal(sp_task_run_key(r, &q, NULL, 0, 1, &b, stats), 0);
		expect[q.partition]++;
		uint32_t len = sp_bp_builder_finish(&b);
		assert_int_equal(sp_bp_decode_replies(repbuf, len, rep, 1, &dg), SP_BP_ERR_OK);
		assert_int_equal(rep[0].status, SP_BP_ST_OK);
		assert_int_equal(rep[0].opcode, 166);
		uint64_t calls;
		memcpy(&calls, rep[0].value, 8);
		assert_int_equal(calls, expect[q.partition]);
		/* No other partition's state moved. */
		for (uint32_t p = 0; p < 16; p++) {
			struct count_state *s = sp_task_state(r, sp_task_find(r, 166), p);
			assert_int_equal(s->calls, expect[p]);
		}
	}
	assert_int_equal(stats[0].runs, 500);
	assert_int_equal(stats[0].status[SP_BP_ST_OK], 500);

	/* A key operation without a key never reaches it: the wire table has the encoder (and
	 * the decoder) refuse it; a scope is not even encoded. */
	struct sp_bp_builder b;
	struct sp_bp_req nokey = {.opcode = 166, .request_id = 1};
	sp_bp_builder_init(&b, reqbuf, sizeof(reqbuf), false, 1);
	assert_int_equal(sp_bp_add_request(&b, &nokey), -EINVAL);
	struct sp_bp_req q;
	q = decoded(reqbuf, 166, "x", NULL, 0, SP_BP_TASK_SCOPE_NODE, 16);
	assert_int_equal(q.flags, 0); /* the wire table: a key operation carries no flags */
	/* An argument over arg_max is TOO_BIG; an unregistered opcode BAD_REQUEST. */
	uint8_t big[17] = {0};
	q = decoded(reqbuf, 166, "x", big, sizeof(big), 0, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_TOO_BIG);
	struct sp_bp_req unknown = {.opcode = 199, .key = (const uint8_t *)"x", .key_len = 1};
	assert_int_equal(sp_task_admit(r, &unknown), SP_BP_ST_BAD_REQUEST);
	assert_int_equal(stats[0].runs, 500);

	/* A reply that does not fit: -SP_EFULL and nothing ran. */
	q = decoded(reqbuf, 166, "x", NULL, 0, 0, 16);
	struct count_state *s = sp_task_state(r, sp_task_find(r, 166), q.partition);
	uint64_t before = s->calls;
	sp_bp_builder_init(&b, repbuf, SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + 7, true, 1);
	assert_int_equal(sp_task_run_key(r, &q, NULL, 0, 1, &b, stats), -SP_EFULL);
	assert_int_equal(s->calls, before);
	sp_task_stop(r, state_free, &log);
	sp_task_registry_fini(r);
	free(r);
}

/* ---- Span: the partitions named, merged ---------------------------------------------- */

static void
test_run_span_listed_partitions(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct alloc_log log = {0};
	struct sp_task_def d = count_def(180, "spancount");
	uint8_t buf[SP_TASK_RESULT_MAX];
	uint32_t parts[] = {1, 5, 6, 9};

	(void)state;
	d.span = SP_TASK_SPAN_ALL;
	d.merge = sum_merge;
	sp_task_registry_init(r);
	assert_int_equal(sp_task_register(r, &d, NULL, 0), 0);
	assert_int_equal(sp_task_start(r, 16, state_alloc, state_free, &log, NULL, 0), 0);
	for (int round = 1; round <= 3; round++) {
		struct sp_task_out acc = {.buf = buf, .cap = sizeof(buf), .len = 0};
		uint64_t sum;

		assert_int_equal(sp_task_run_span(r, sp_task_find(r, 180), NULL, 0, parts, 4, NULL,
		                                  0, 1, &acc, NULL),
		                 SP_BP_ST_OK);
		memcpy(&sum, buf, 8);
		assert_int_equal(sum, 4 * round); /* each listed partition counted `round` */
	}
	/* Admission: a scope past WORKER is refused; a key is refused by the decoder. */
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_req q = decoded(reqbuf, 180, NULL, NULL, 0, SP_BP_TASK_SCOPE_WORKER, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_OK);
	assert_int_equal(q.partition, SP_BP_PARTITION_ANY);
	q = decoded(reqbuf, 180, NULL, NULL, 0, SP_BP_TASK_SCOPE_MAX + 1, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_BAD_REQUEST);
	struct sp_bp_builder b;
	struct sp_bp_req keyed = {.opcode = 180, .key = (const uint8_t *)"k", .key_len = 1};
	sp_bp_builder_init(&b, reqbuf, sizeof(reqbuf), false, 1);
	assert_int_equal(sp_bp_add_request(&b, &keyed), -EINVAL);
	for (uint32_t p = 0; p < 16; p++) {
		struct count_state *s = sp_task_state(r, sp_task_find(r, 180), p);
		bool listed = p == 1 || p == 5 || p == 6 || p == 9;
		assert_int_equal(s->calls, listed ? 3 : 0);
	}
	sp_task_stop(r, state_free, &log);
	sp_task_registry_fini(r);
	free(r);
}

/* ---- Gather table ---------------------------------------------------------------------- */

struct gather_fixture {
	struct sp_task_registry r;
	struct sp_task_gathers t;
	struct alloc_log log;
};

static struct gather_fixture *
gather_fixture(void)
{
	struct gather_fixture *f = calloc(1, sizeof(*f));
	struct sp_task_def d = count_def(180, "spancount");

	assert_non_null(f);
	d.span = SP_TASK_SPAN_ALL;
	d.merge = sum_merge;
	sp_task_registry_init(&f->r);
	assert_int_equal(sp_task_register(&f->r, &d, NULL, 0), 0);
	assert_int_equal(sp_task_start(&f->r, 8, state_alloc, state_free, &f->log, NULL, 0), 0);
	sp_task_gathers_init(&f->t);
	return f;
}

static void
gather_fixture_free(struct gather_fixture *f)
{
	sp_task_stop(&f->r, state_free, &f->log);
	sp_task_registry_fini(&f->r);
	free(f);
}

static uint64_t
acc_sum(const struct sp_task_gather *g)
{
	uint64_t v = 0;

	if (g->acc.len == 8)
		memcpy(&v, g->acc.buf, 8);
	return v;
}

static void
test_gather_all_answer(void **state)
{
	struct gather_fixture *f = gather_fixture();
	uint32_t idx, flags;
	uint64_t v;

	(void)state;
	struct sp_task_gather *g = sp_task_gather_take(&f->t, 180, NULL, 0, 8, 1000, &idx);
	assert_non_null(g);
	uint32_t ref = sp_task_ref(idx, 3, g->tag);
	sp_task_gather_expect(g, 0);
	sp_task_gather_expect(g, 1);
	sp_task_gather_expect(g, SP_TASK_PART_NODE0 + 2);
	v = 5;
	assert_ptr_equal(
	        sp_task_gather_part(&f->t, &f->r, ref, 1, SP_BP_ST_OK, 2, (uint8_t *)&v, 8), g);
	/* The same part twice is stale, and changes nothing. */
	assert_null(sp_task_gather_part(&f->t, &f->r, ref, 1, SP_BP_ST_OK, 2, (uint8_t *)&v, 8));
	assert_int_equal(f->t.stale, 1);
	v = 7;
	sp_task_gather_part(&f->t, &f->r, ref, 0, SP_BP_ST_OK, 2, (uint8_t *)&v, 8);
	assert_false(sp_task_gather_done(g));
	v = 11; /* a node answers PARTIAL for itself: its partitions count, its result merges */
	sp_task_gather_part(&f->t, &f->r, ref, SP_TASK_PART_NODE0 + 2, SP_BP_ST_PARTIAL, 4,
	                    (uint8_t *)&v, 8);
	assert_true(sp_task_gather_done(g));
	assert_int_equal(sp_task_gather_answer(g, &flags), SP_BP_ST_OK);
	assert_int_equal(flags, 8);
	assert_int_equal(acc_sum(g), 23);
	assert_true(sp_task_gathers_valid(&f->t));
	sp_task_gather_release(&f->t, g);
	/* After release the reference is dead. */
	assert_null(sp_task_gather_part(&f->t, &f->r, ref, 0, SP_BP_ST_OK, 1, (uint8_t *)&v, 8));
	assert_int_equal(f->t.live, 0);
	gather_fixture_free(f);
}

static void
test_gather_owner_times_out(void **state)
{
	struct gather_fixture *f = gather_fixture();
	uint32_t idx, flags;
	uint64_t v = 4;

	(void)state;
	struct sp_task_gather *g = sp_task_gather_take(&f->t, 180, NULL, 0, 8, 1000, &idx);
	uint32_t ref = sp_task_ref(idx, 0, g->tag);
	for (uint32_t p = 0; p < 4; p++)
		sp_task_gather_expect(g, p);
	sp_task_gather_part(&f->t, &f->r, ref, 0, SP_BP_ST_OK, 2, (uint8_t *)&v, 8);
	sp_task_gather_part(&f->t, &f->r, ref, 2, SP_BP_ST_OK, 2, (uint8_t *)&v, 8);
	/* Workers 1 and 3 never answer. Not expired before the deadline: */
	assert_null(sp_task_gather_expired(&f->t, 999));
	assert_ptr_equal(sp_task_gather_expired(&f->t, 1000), g);
	assert_false(sp_task_gather_done(g));
	assert_int_equal(sp_task_gather_answer(g, &flags), SP_BP_ST_PARTIAL);
	assert_int_equal(flags, 4);
	assert_int_equal(acc_sum(g), 8);
	sp_task_gather_release(&f->t, g);
	/* The late owner's answer is stale. */
	assert_null(sp_task_gather_part(&f->t, &f->r, ref, 1, SP_BP_ST_OK, 2, (uint8_t *)&v, 8));
	assert_int_equal(f->t.stale, 1);

	/* Nobody answers at all: PARTIAL with 0 partitions and an empty value. */
	g = sp_task_gather_take(&f->t, 180, NULL, 0, 8, 50, &idx);
	sp_task_gather_expect(g, 5);
	assert_ptr_equal(sp_task_gather_expired(&f->t, 60), g);
	assert_int_equal(sp_task_gather_answer(g, &flags), SP_BP_ST_PARTIAL);
	assert_int_equal(flags, 0);
	assert_int_equal(g->acc.len, 0);
	sp_task_gather_release(&f->t, g);
	gather_fixture_free(f);
}

static void
test_gather_errors_and_bounds(void **state)
{
	struct gather_fixture *f = gather_fixture();
	struct sp_task_gather *gs[SP_TASK_GATHERS];
	uint32_t idx, flags;
	uint64_t v = 1;

	(void)state;
	for (uint32_t i = 0; i < SP_TASK_GATHERS; i++) {
		gs[i] = sp_task_gather_take(&f->t, 180, NULL, 0, 8, 1000, &idx);
		assert_non_null(gs[i]);
		assert_int_equal(idx, i);
	}
	assert_null(sp_task_gather_take(&f->t, 180, NULL, 0, 8, 1000, &idx));
	assert_int_equal(f->t.full, 1);
	struct sp_task_gather *g = gs[3];
	uint32_t ref = sp_task_ref(3, 0, g->tag);
	sp_task_gather_expect(g, 0);
	sp_task_gather_expect(g, 1);
	sp_task_gather_expect(g, 2);
	/* A forged reference (right slot, wrong tag) is stale. */
	assert_null(sp_task_gather_part(&f->t, &f->r, sp_task_ref(3, 0, g->tag + 1), 0, SP_BP_ST_OK,
	                                1, (uint8_t *)&v, 8));
	/* An owner answering an error fails the whole request with it. */
	sp_task_gather_part(&f->t, &f->r, ref, 0, SP_BP_ST_BAD_REQUEST, 0, NULL, 0);
	sp_task_gather_part(&f->t, &f->r, ref, 1, SP_BP_ST_OK, 1, (uint8_t *)&v, 8);
	/* An owner claiming more partitions than are missing, or an unreadable part: INTERNAL
	 * (on another gather, since this one has failed already). */
	assert_int_equal(sp_task_gather_answer(g, &flags), SP_BP_ST_BAD_REQUEST);
	g = gs[4];
	ref = sp_task_ref(4, 0, g->tag);
	sp_task_gather_expect(g, 0);
	sp_task_gather_part(&f->t, &f->r, ref, 0, SP_BP_ST_OK, 9, (uint8_t *)&v, 8);
	assert_int_equal(sp_task_gather_answer(g, &flags), SP_BP_ST_INTERNAL);
	g = gs[5];
	ref = sp_task_ref(5, 0, g->tag);
	sp_task_gather_expect(g, 0);
	sp_task_gather_part(&f->t, &f->r, ref, 0, SP_BP_ST_OK, 1, (uint8_t *)&v, 3);
	assert_int_equal(sp_task_gather_answer(g, &flags), SP_BP_ST_INTERNAL);
	assert_true(sp_task_gathers_valid(&f->t));
	for (uint32_t i = 0; i < SP_TASK_GATHERS; i++)
		sp_task_gather_release(&f->t, gs[i]);
	/* Slots come back with fresh tags. */
	g = sp_task_gather_take(&f->t, 180, NULL, 0, 8, 1000, &idx);
	assert_int_equal(g->tag, SP_TASK_GATHERS + 1);
	sp_task_gather_release(&f->t, g);
	gather_fixture_free(f);
}

/* ---- RATELIMIT against a model ----------------------------------------------------------- */

#define NANO 1000000000ull

struct rl_model {
	uint64_t hash;
	unsigned __int128 tokens; /* nano-tokens */
	uint64_t last_ns;
	int used;
};

/* The token bucket as specified, in 128-bit arithmetic, without the table's shortcuts. */
static void
rl_model_take(struct rl_model *m, uint64_t now, const struct sp_rl_arg *a, struct sp_rl_result *out)
{
	unsigned __int128 cap = (unsigned __int128)a->burst * NANO;

	if (!m->used) {
		m->used = 1;
		m->tokens = cap;
		m->last_ns = now;
	}
	if (now > m->last_ns) {
		m->tokens += (unsigned __int128)(now - m->last_ns) * a->rate_per_s;
		m->last_ns = now;
	}
	if (m->tokens > cap)
		m->tokens = cap;
	unsigned __int128 need = (unsigned __int128)a->cost * NANO;
	out->allowed = m->tokens >= need;
	if (out->allowed)
		m->tokens -= need;
	out->remaining = (uint32_t)(m->tokens / NANO);
	out->wait_ns = m->tokens >= need
	                       ? 0
	                       : (uint64_t)((need - m->tokens + a->rate_per_s - 1) / a->rate_per_s);
}

static void
test_ratelimit_model_random(void **state)
{
	enum { KEYS = 48, STEPS = 200000, BUCKETS = 1024 };
	uint32_t size = sp_rl_state_size(BUCKETS);
	void *st = aligned_alloc(64, size);
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct rl_model model[KEYS];
	struct sp_rl_arg args[KEYS];
	uint64_t now = 1000;
	uint64_t allowed = 0;

	(void)state;
	rng_seed("ratelimit_model_random");
	memset(st, 0, size);
	memset(model, 0, sizeof(model));
	/* Through registration, so the state is built as the runtime builds it. */
	sp_task_registry_init(r);
	assert_int_equal(sp_ratelimit_register(r, BUCKETS, NULL, 0), 0);
	const struct sp_task_def *d = sp_task_find(r, SP_TASK_OP_RATELIMIT);
	assert_int_equal(d->state_size, size);
	assert_int_equal(d->init(st, size, 0, NULL), 0);
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		int n = snprintf(key, sizeof(key), "user:%d", k);
		model[k].hash = sp_key_hash(key, (size_t)n);
		args[k].rate_per_s = (uint32_t)(1 + rng() % 1000);
		args[k].burst = (uint32_t)(1 + rng() % 50);
		args[k].cost = 1;
	}
	for (int i = 0; i < STEPS; i++) {
		int k = (int)(rng() % KEYS);
		struct sp_rl_arg a = args[k];
		struct sp_rl_result got, want;

		/* Time moves by 0..5 ms, now and then by seconds; sometimes not at all. */
		uint64_t step = rng() % 8 == 0 ? 0 : rng() % 5000000;
		if (rng() % 1000 == 0)
			step += (rng() % 10) * NANO;
		now += step;
		a.cost = (uint32_t)(1 + rng() % a.burst);
		if (rng() % 500 == 0) /* a client changes its limits */
			args[k].burst = (uint32_t)(1 + rng() % 50), a.burst = args[k].burst,
			a.cost = 1;
		sp_rl_take(st, size, model[k].hash, &a, now, &got);
		rl_model_take(&model[k], now, &a, &want);
		if (got.allowed != want.allowed || got.remaining != want.remaining ||
		    got.wait_ns != want.wait_ns)
			fail_msg("step %d key %d: got %d/%u/%" PRIu64 " want %d/%u/%" PRIu64, i, k,
			         got.allowed, got.remaining, got.wait_ns, want.allowed,
			         want.remaining, want.wait_ns);
		allowed += got.allowed;
	}
	struct sp_rl_stats stats;
	sp_rl_stats_get(st, &stats);
	assert_int_equal(stats.evicted_refilling, 0);
	assert_int_equal(stats.allowed, allowed);
	assert_int_equal(stats.allowed + stats.denied, STEPS);
	assert_true(allowed > STEPS / 10 && allowed < STEPS); /* both answers were exercised */
	assert_true(sp_rl_valid(st, size));
	free(st);
	sp_task_registry_fini(r);
	free(r);
}

static void
test_ratelimit_eviction(void **state)
{
	/* 8 buckets: one set. Nine keys: the ninth must replace a bucket. */
	uint32_t size = sp_rl_state_size(SP_RL_WAYS);
	void *st = aligned_alloc(64, size);
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct sp_rl_arg a = {.rate_per_s = 10, .burst = 5, .cost = 5};
	struct sp_rl_result res;
	struct sp_rl_stats stats;

	(void)state;
	memset(st, 0, size);
	sp_task_registry_init(r);
	assert_int_equal(sp_ratelimit_register(r, SP_RL_WAYS, NULL, 0), 0);
	assert_int_equal(sp_task_find(r, SP_TASK_OP_RATELIMIT)->init(st, size, 0, NULL), 0);
	/* Keys 1..8 drain their buckets at t = 0 (hashes chosen; the set is the only one). */
	for (uint64_t h = 1; h <= 8; h++) {
		sp_rl_take(st, size, h << 8, &a, 0, &res);
		assert_true(res.allowed);
		assert_int_equal(res.remaining, 0);
		assert_int_equal(res.wait_ns, 500000000ull); /* 5 tokens at 10/s */
	}
	/* Key 9 at t = 0.1 s: all eight still refill: the oldest is replaced (lossy). */
	sp_rl_take(st, size, 9 << 8, &a, 100000000ull, &res);
	assert_true(res.allowed);
	sp_rl_stats_get(st, &stats);
	assert_int_equal(stats.evicted_refilling, 1);
	assert_int_equal(stats.evicted_full, 0);
	/* At t = 0.7 s key 2's bucket is full again (0.5 s refill): key 10 replaces a full
	 * bucket, which loses nothing: key 2 asked again behaves like a full bucket. */
	sp_rl_take(st, size, 10 << 8, &a, 700000000ull, &res);
	sp_rl_stats_get(st, &stats);
	assert_int_equal(stats.evicted_full, 1);
	assert_int_equal(stats.evicted_refilling, 1);
	sp_rl_take(st, size, 3 << 8, &a, 700000000ull, &res);
	assert_true(res.allowed); /* full either way */
	/* Denied: 2 tokens after 0.2 s, needs 5: waits 0.3 s. */
	sp_rl_take(st, size, 3 << 8, &a, 900000000ull, &res);
	assert_false(res.allowed);
	assert_int_equal(res.remaining, 2);
	assert_int_equal(res.wait_ns, 300000000ull);
	assert_true(sp_rl_valid(st, size));
	assert_int_equal(sp_ratelimit_register(r, 12, NULL, 0), -EINVAL);
	free(st);
	sp_task_registry_fini(r);
	free(r);
}

/* ---- AGGREGATE against a model ------------------------------------------------------------ */

#define AGG_PARTS 8
#define AGG_KEYS  300

struct agg_model {
	char key[64];
	uint64_t value;
	int kind; /* 0: absent, 1: counter, 2: not a number */
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct sp_agg_entry *x = a, *y = b;

	return sp_agg_entry_before(x, y) ? -1 : sp_agg_entry_before(y, x) ? 1 : 0;
}

static void
agg_model_answer(const struct agg_model *m, const char *prefix, uint8_t k,
                 struct sp_agg_result *out)
{
	static struct sp_agg_entry all[AGG_KEYS];
	uint32_t n = 0;
	size_t pl = strlen(prefix);

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < AGG_KEYS; i++) {
		if (m[i].kind == 0 || strncmp(m[i].key, prefix, pl) != 0)
			continue;
		if (m[i].kind == 2) {
			out->skipped++;
			continue;
		}
		out->count++;
		unsigned __int128 s =
		        ((unsigned __int128)out->sum_hi << 64 | out->sum_lo) + m[i].value;
		out->sum_lo = (uint64_t)s;
		out->sum_hi = (uint64_t)(s >> 64);
		struct sp_agg_entry *e = &all[n++];
		memset(e, 0, sizeof(*e));
		e->value = m[i].value;
		e->key_len = (uint8_t)SP_MIN(strlen(m[i].key), SP_AGG_KEY_MAX);
		e->cut = strlen(m[i].key) > SP_AGG_KEY_MAX;
		memcpy(e->key, m[i].key, e->key_len);
	}
	qsort(all, n, sizeof(all[0]), entry_cmp);
	out->n = (uint8_t)SP_MIN(n, k);
	memcpy(out->top, all, out->n * sizeof(all[0]));
}

static void
assert_agg_equal(const struct sp_agg_result *got, const struct sp_agg_result *want)
{
	assert_int_equal(got->count, want->count);
	assert_int_equal(got->sum_lo, want->sum_lo);
	assert_int_equal(got->sum_hi, want->sum_hi);
	assert_int_equal(got->skipped, want->skipped);
	assert_int_equal(got->n, want->n);
	for (uint32_t i = 0; i < got->n; i++) {
		assert_int_equal(got->top[i].value, want->top[i].value);
		assert_int_equal(got->top[i].key_len, want->top[i].key_len);
		assert_int_equal(got->top[i].cut, want->top[i].cut);
		assert_memory_equal(got->top[i].key, want->top[i].key, got->top[i].key_len);
	}
}

static void
test_aggregate_model_random(void **state)
{
	struct store *stores[AGG_PARTS];
	static struct agg_model model[AGG_KEYS];
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct alloc_log log = {0};
	static const char *const prefixes[] = {"", "a:", "a:1", "b:", "zz", "a:long"};

	(void)state;
	rng_seed("aggregate_model_random");
	memset(model, 0, sizeof(model));
	for (int p = 0; p < AGG_PARTS; p++)
		stores[p] = store_fixture_new(1u << 20);
	for (int i = 0; i < AGG_KEYS; i++) {
		int which = (int)(rng() % 3);
		if (which == 2 && i % 7 == 0) /* keys longer than SP_AGG_KEY_MAX, one prefix */
			snprintf(model[i].key, sizeof(model[i].key),
			         "a:long-key-%d-padding-padding-padding-padding-padding", i);
		else
			snprintf(model[i].key, sizeof(model[i].key), "%s%d",
			         which == 0   ? "a:"
			         : which == 1 ? "b:"
			                      : "c:",
			         i);
	}
	sp_task_registry_init(r);
	assert_int_equal(sp_aggregate_register(r, NULL, 0), 0);
	assert_int_equal(sp_task_start(r, AGG_PARTS, state_alloc, state_free, &log, NULL, 0), 0);
	const struct sp_task_def *d = sp_task_find(r, SP_TASK_OP_AGGREGATE);

	for (int round = 0; round < 40; round++) {
		/* Random writes: incr (big deltas, to carry the sum past 2^64), set text, delete. */
		for (int j = 0; j < 200; j++) {
			int i = (int)(rng() % AGG_KEYS);
			struct store_key key = test_key(model[i].key, strlen(model[i].key));
			struct store *s = stores[sp_key_partition(key.hash, AGG_PARTS)];
			int op = (int)(rng() % 10);

			if (op < 6) {
				uint64_t delta = rng() % 4 == 0 ? rng() : rng() % 1000;
				struct store_arith a = {.op = STORE_INCR,
				                        .delta = delta,
				                        .create = true,
				                        .initial = delta};
				uint64_t v;
				int rc = store_arith(s, &key, &a, 1, &v, NULL);
				if (model[i].kind == 2) {
					assert_int_equal(rc, -SP_ENOTNUM);
					continue;
				}
				assert_int_equal(rc, 0);
				model[i].value =
				        model[i].kind == 1 ? model[i].value + delta : delta;
				model[i].kind = 1;
				assert_int_equal(v, model[i].value);
			} else if (op < 8) {
				struct store_write w = {.value = "x1", .value_len = 2};
				assert_int_equal(store_set(s, STORE_SET, &key, &w, 1, NULL), 0);
				model[i].kind = 2;
			} else {
				int rc = store_delete(s, &key, 0, 1);
				assert_int_equal(rc, model[i].kind != 0 ? 0 : -SP_ENOTFOUND);
				model[i].kind = 0;
			}
		}
		const char *prefix = prefixes[rng() % SP_ARRAY_SIZE(prefixes)];
		uint8_t k = (uint8_t)(rng() % (SP_AGG_TOPK_MAX + 1));
		uint8_t arg[SP_AGG_ARG_MAX];
		int arg_len = sp_agg_arg_encode(arg, k, (const uint8_t *)prefix, strlen(prefix));
		assert_true(arg_len > 0);

		/* Two owners, each with a random half of the partitions; their partial results
		 * merged in a random order, as a gatherer would. */
		uint32_t owner_a[AGG_PARTS], owner_b[AGG_PARTS], na = 0, nb = 0;
		for (uint32_t p = 0; p < AGG_PARTS; p++) {
			if (rng() % 2)
				owner_a[na++] = p;
			else
				owner_b[nb++] = p;
		}
		uint8_t abuf[SP_TASK_RESULT_MAX], bbuf[SP_TASK_RESULT_MAX],
		        gbuf[SP_TASK_RESULT_MAX];
		struct sp_task_out oa = {.buf = abuf, .cap = sizeof(abuf)};
		struct sp_task_out ob = {.buf = bbuf, .cap = sizeof(bbuf)};
		struct sp_task_out g = {.buf = gbuf, .cap = sizeof(gbuf)};
		assert_int_equal(sp_task_run_span(r, d, arg, (uint32_t)arg_len, owner_a, na, stores,
		                                  0, 1, &oa, NULL),
		                 SP_BP_ST_OK);
		assert_int_equal(sp_task_run_span(r, d, arg, (uint32_t)arg_len, owner_b, nb, stores,
		                                  0, 1, &ob, NULL),
		                 SP_BP_ST_OK);
		struct sp_task_out *first = rng() % 2 ? &oa : &ob,
		                   *second = first == &oa ? &ob : &oa;
		if (first->len != 0)
			assert_int_equal(
			        d->merge(&g, first->buf, first->len, arg, (uint32_t)arg_len, NULL),
			        SP_BP_ST_OK);
		if (second->len != 0)
			assert_int_equal(d->merge(&g, second->buf, second->len, arg,
			                          (uint32_t)arg_len, NULL),
			                 SP_BP_ST_OK);
		struct sp_agg_result got, want;
		assert_int_equal(sp_agg_result_decode(g.buf, g.len, &got), 0);
		agg_model_answer(model, prefix, k, &want);
		assert_agg_equal(&got, &want);

		/* AGGREGATE_KEYS over a random list of distinct keys (present, absent, not
		 * numbers), each run on its own partition's store, in the list's order. */
		const struct sp_task_def *dk = sp_task_find(r, SP_TASK_OP_AGGREGATE_KEYS);
		const uint8_t *lk[SP_TASK_KEYS_MAX];
		uint8_t ll[SP_TASK_KEYS_MAX];
		static struct agg_model sub[AGG_KEYS];
		uint32_t nk = (uint32_t)(1 + rng() % SP_TASK_KEYS_MAX);
		int start = (int)(rng() % AGG_KEYS);
		memset(sub, 0, sizeof(sub));
		for (uint32_t j = 0; j < nk; j++) {
			int i = (start + (int)j * 7) % AGG_KEYS; /* distinct: 7 is prime to 300 */
			lk[j] = (const uint8_t *)model[i].key;
			ll[j] = (uint8_t)strlen(model[i].key);
			sub[i] = model[i];
		}
		uint8_t karg[SP_BP_VALUE_MAX];
		int klen = sp_task_keys_encode(karg, sizeof(karg), lk, ll, nk, &k, 1);
		assert_true(klen > 0);
		struct sp_task_keys kl;
		assert_int_equal(sp_task_keys_decode(karg, (uint32_t)klen, &kl), 0);
		assert_int_equal(kl.count, nk);
		struct sp_task_out gk = {.buf = gbuf, .cap = sizeof(gbuf)};
		for (uint32_t j = 0; j < nk; j++) {
			uint64_t h = sp_key_hash(kl.key[j], kl.key_len[j]);
			uint32_t p = sp_key_partition(h, AGG_PARTS);
			assert_int_equal(sp_task_run_one(r, dk, kl.key[j], kl.key_len[j], h, p,
			                                 kl.arg, kl.arg_len, stores[p], 0, 1, &gk,
			                                 NULL),
			                 SP_BP_ST_OK);
		}
		assert_int_equal(sp_agg_result_decode(gk.buf, gk.len, &got), 0);
		agg_model_answer(sub, "", k, &want);
		assert_agg_equal(&got, &want);
	}
	for (int p = 0; p < AGG_PARTS; p++)
		store_fixture_free(stores[p]);
	sp_task_stop(r, state_free, &log);
	sp_task_registry_fini(r);
	free(r);
}

/* ---- store_scan: what the aggregate reads ---------------------------------------------- */

struct scan_seen {
	int n;
	char keys[16][16];
};

static int
scan_collect(void *arg, const struct store_key *key, const struct store_value *value)
{
	struct scan_seen *s = arg;

	(void)value;
	assert_true(s->n < 16);
	memcpy(s->keys[s->n], key->data, key->len);
	s->keys[s->n][key->len] = '\0';
	s->n++;
	return s->n == 100 ? 1 : 0;
}

static int
scan_stop(void *arg, const struct store_key *key, const struct store_value *value)
{
	(void)key;
	(void)value;
	(*(int *)arg)++;
	return 42;
}

static void
test_store_scan(void **state)
{
	struct store *s = store_fixture_new(1u << 20);
	struct scan_seen seen = {0};
	static const char *const keys[] = {"p:a", "p:b", "p:c", "p:d", "q:a"};

	(void)state;
	for (unsigned i = 0; i < SP_ARRAY_SIZE(keys); i++) {
		struct store_key k = test_key(keys[i], strlen(keys[i]));
		struct store_write w = {.value = "1", .value_len = 1, .expire_s = i == 2 ? 20 : 0};
		assert_int_equal(store_set(s, STORE_SET, &k, &w, 10, NULL), 0);
	}
	/* p:a overwritten (one live copy), p:b deleted, p:c expires at 20. */
	struct store_key ka = test_key("p:a", 3), kb = test_key("p:b", 3);
	struct store_write w2 = {.value = "22", .value_len = 2};
	assert_int_equal(store_set(s, STORE_SET, &ka, &w2, 10, NULL), 0);
	assert_int_equal(store_delete(s, &kb, 0, 10), 0);
	assert_int_equal(store_scan(s, (const uint8_t *)"p:", 2, 30, scan_collect, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.keys[0], "p:d"); /* oldest first: p:a was rewritten later */
	assert_string_equal(seen.keys[1], "p:a");
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(store_scan(s, NULL, 0, 15, scan_collect, &seen), 0);
	assert_int_equal(seen.n, 4); /* p:c not expired yet, q:a too */
	/* The callback stops the scan, and its value comes back. */
	int calls = 0;
	assert_int_equal(store_scan(s, NULL, 0, 15, scan_stop, &calls), 42);
	assert_int_equal(calls, 1);
	/* flush_all hides everything, at once or when its time comes. */
	store_flush_all(s, 40, 30);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(store_scan(s, NULL, 0, 39, scan_collect, &seen), 0);
	assert_int_equal(seen.n, 3);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(store_scan(s, NULL, 0, 40, scan_collect, &seen), 0);
	assert_int_equal(seen.n, 0);
	uint64_t v;
	assert_int_equal(store_counter_parse((const uint8_t *)" 12 ", 4, &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(store_counter_parse((const uint8_t *)"1x", 2, &v), -SP_ENOTNUM);
	store_fixture_free(s);
}

/* ---- Wire: task opcodes in the binary protocol, and the two encodings -------------------- */

static void
test_wire(void **state)
{
	uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_rl_arg a = {.rate_per_s = 100, .burst = 10, .cost = 3}, a2;
	struct sp_rl_result res = {.allowed = true, .remaining = 7, .wait_ns = 12345}, res2;
	uint8_t arg[SP_RL_ARG_SIZE], out[SP_RL_RESULT_SIZE];

	(void)state;
	assert_int_equal(sp_taskproto_register(), 0);
	/* A keyed task request gets the key's partition; a keyless one none. */
	struct sp_bp_req q = decoded(buf, SP_TASK_OP_RATELIMIT, "abc", "123456789012", 12, 0, 64);
	assert_int_equal(q.err, SP_BP_ERR_OK);
	assert_int_equal(q.partition, sp_key_partition(sp_key_hash("abc", 3), 64));
	assert_int_equal(q.value_len, 12);
	q = decoded(buf, SP_TASK_OP_AGGREGATE, NULL, "\0", 1, SP_BP_TASK_SCOPE_NODE, 64);
	assert_int_equal(q.err, SP_BP_ERR_OK);
	assert_int_equal(q.partition, SP_BP_PARTITION_ANY);
	assert_int_equal(q.flags, SP_BP_TASK_SCOPE_NODE);
	assert_string_equal(sp_bp_op_name(SP_TASK_OP_AGGREGATE), "aggregate");
	assert_string_equal(sp_bp_status_name(SP_BP_ST_PARTIAL), "partial");
	/* The shipped operations as the wire table knows them; registering again is fine. */
	assert_int_equal(sp_taskproto_register(), 0);
	assert_string_equal(sp_bp_op_name(SP_TASK_OP_RATELIMIT), "ratelimit");

	assert_int_equal(sp_rl_arg_encode(arg, &a), 0);
	assert_int_equal(sp_rl_arg_decode(arg, sizeof(arg), &a2), 0);
	assert_int_equal(a2.cost, 3);
	a.cost = 11;
	assert_int_equal(sp_rl_arg_encode(arg, &a), -EINVAL);
	a.cost = 1;
	a.rate_per_s = 0;
	assert_int_equal(sp_rl_arg_encode(arg, &a), -EINVAL);
	assert_int_equal(sp_rl_arg_decode(arg, 11, &a2), -SP_EMALFORMED);
	sp_rl_result_encode(out, &res);
	assert_int_equal(sp_rl_result_decode(out, sizeof(out), &res2), 0);
	assert_true(res2.allowed);
	assert_int_equal(res2.remaining, 7);
	assert_int_equal(res2.wait_ns, 12345);
	out[0] = 2;
	assert_int_equal(sp_rl_result_decode(out, sizeof(out), &res2), -SP_EMALFORMED);

	/* Aggregate results: round trip, order checked on decode. */
	struct sp_agg_result r = {.count = 3, .sum_lo = 9, .sum_hi = 1, .skipped = 2, .n = 2};
	r.top[0] = (struct sp_agg_entry){.value = 5, .key_len = 2, .key = "ab"};
	r.top[1] = (struct sp_agg_entry){.value = 4, .key_len = 1, .cut = true, .key = "z"};
	uint8_t enc[SP_AGG_RESULT_MAX];
	struct sp_agg_result r2;
	uint32_t len = sp_agg_result_encode(enc, &r);
	assert_int_equal(len, SP_AGG_HEAD_SIZE + 2 * SP_AGG_ENTRY_HEAD + 3);
	assert_int_equal(sp_agg_result_decode(enc, len, &r2), 0);
	assert_int_equal(r2.sum_hi, 1);
	assert_true(r2.top[1].cut);
	assert_int_equal(sp_agg_result_decode(enc, len - 1, &r2), -SP_EMALFORMED);
	enc[SP_AGG_HEAD_SIZE] = 3; /* first entry's value now below the second's */
	assert_int_equal(sp_agg_result_decode(enc, len, &r2), -SP_EMALFORMED);
	uint8_t aarg[SP_AGG_ARG_MAX];
	assert_int_equal(sp_agg_arg_encode(aarg, SP_AGG_TOPK_MAX + 1, NULL, 0), -EINVAL);

	/* Key lists: round trip, and every refusal. */
	const uint8_t *keys[SP_TASK_KEYS_MAX + 1];
	uint8_t lens[SP_TASK_KEYS_MAX + 1];
	static const char *const names[] = {"a", "bb", "ccc"};
	uint8_t kbuf[SP_BP_VALUE_MAX];
	struct sp_task_keys kl;
	for (int i = 0; i < 3; i++) {
		keys[i] = (const uint8_t *)names[i];
		lens[i] = (uint8_t)strlen(names[i]);
	}
	int klen =
	        sp_task_keys_encode(kbuf, sizeof(kbuf), keys, lens, 3, (const uint8_t *)"\x05", 1);
	assert_int_equal(klen, 1 + 2 + 3 + 4 + 1);
	assert_int_equal(sp_task_keys_decode(kbuf, (uint32_t)klen, &kl), 0);
	assert_int_equal(kl.count, 3);
	assert_memory_equal(kl.key[2], "ccc", 3);
	assert_int_equal(kl.arg_len, 1);
	assert_int_equal(kl.arg[0], 5);
	assert_int_equal(sp_task_keys_decode(kbuf, 5, &kl), -SP_EMALFORMED); /* cut in a key */
	kbuf[0] = 0;
	assert_int_equal(sp_task_keys_decode(kbuf, (uint32_t)klen, &kl), -SP_EMALFORMED);
	assert_int_equal(sp_task_keys_encode(kbuf, sizeof(kbuf), keys, lens, 0, NULL, 0), -EINVAL);
	keys[1] = keys[0];
	lens[1] = lens[0];
	assert_int_equal(sp_task_keys_encode(kbuf, sizeof(kbuf), keys, lens, 3, NULL, 0), -EINVAL);
	uint8_t dup[] = {2, 1, 'x', 1, 'x'};
	assert_int_equal(sp_task_keys_decode(dup, sizeof(dup), &kl), -SP_EMALFORMED);
	for (int i = 0; i <= (int)SP_TASK_KEYS_MAX; i++) {
		keys[i] = (const uint8_t *)"0123456789abcdefghijklmnopqrstuvwxyz" + i;
		lens[i] = 1;
	}
	assert_int_equal(
	        sp_task_keys_encode(kbuf, sizeof(kbuf), keys, lens, SP_TASK_KEYS_MAX + 1, NULL, 0),
	        -EINVAL);
	assert_int_equal(sp_task_keys_encode(kbuf, 10, keys, lens, SP_TASK_KEYS_MAX, NULL, 0),
	                 -SP_EFULL);
	uint8_t long_key[SP_BP_KEY_MAX + 1];
	memset(long_key, 'k', sizeof(long_key));
	keys[0] = long_key;
	lens[0] = SP_BP_KEY_MAX + 1;
	assert_int_equal(sp_task_keys_encode(kbuf, sizeof(kbuf), keys, lens, 1, NULL, 0),
	                 -SP_ETOOBIG);
	/* Merge carries the 128-bit sum. */
	struct sp_agg_result x = {.sum_lo = UINT64_MAX}, y = {.sum_lo = 2, .count = 1};
	sp_agg_result_merge(&x, &y, 0);
	assert_int_equal(x.sum_lo, 1);
	assert_int_equal(x.sum_hi, 1);
	assert_int_equal(sp_bp_op_unregister(SP_TASK_OP_RATELIMIT), 0);
	assert_int_equal(sp_bp_op_unregister(SP_TASK_OP_AGGREGATE), 0);
	/* Taken as something else: refused. */
	assert_int_equal(sp_bp_op_register(SP_TASK_OP_AGGREGATE, "other", 0, SP_BP_VALUE_NONE, 0),
	                 0);
	assert_int_equal(sp_taskproto_register(), -EEXIST);
	assert_int_equal(sp_bp_op_unregister(SP_TASK_OP_AGGREGATE), 0);
	assert_int_equal(sp_bp_op_unregister(SP_TASK_OP_RATELIMIT), 0);
}

/*
 * What another node sends is read by these decoders (a part's result, a key list): random
 * and mutated buffers, each in a heap block of its exact size (ASan sees any read past it).
 * A buffer accepted re-encodes to exactly itself; merge never accepts what decode refuses.
 */
static void
test_decoders_hostile_input(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	uint8_t good[SP_AGG_RESULT_MAX], arg[2] = {SP_AGG_TOPK_MAX, 0};
	uint8_t acc_buf[SP_TASK_RESULT_MAX];

	(void)state;
	rng_seed("decoders_hostile_input");
	sp_task_registry_init(r);
	assert_int_equal(sp_aggregate_register(r, NULL, 0), 0);
	const struct sp_task_def *d = sp_task_find(r, SP_TASK_OP_AGGREGATE);
	struct sp_agg_result seed = {.count = 5, .sum_lo = 77, .skipped = 1};
	for (uint32_t i = 0; i < 4; i++) {
		struct sp_agg_entry e = {.value = 100 - i, .key_len = (uint8_t)(3 + i)};
		memset(e.key, 'a' + (int)i, e.key_len);
		sp_agg_top_insert(&seed, SP_AGG_TOPK_MAX, &e);
	}
	uint32_t good_len = sp_agg_result_encode(good, &seed);
	uint32_t accepted = 0;
	for (int round = 0; round < 20000; round++) {
		uint32_t len;
		uint8_t *buf;

		if (round % 2 == 0) { /* a valid result with a few bytes changed, cut or grown */
			len = (uint32_t)((int)good_len + (int)(rng() % 9) - 4);
			buf = malloc(len ? len : 1);
			assert_non_null(buf);
			memcpy(buf, good, SP_MIN(len, good_len));
			for (uint32_t k = good_len; k < len; k++)
				buf[k] = (uint8_t)rng();
			for (int k = (int)(rng() % 4); k > 0 && len > 0; k--)
				buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
		} else { /* random bytes */
			len = (uint32_t)(rng() % 300);
			buf = malloc(len ? len : 1);
			assert_non_null(buf);
			for (uint32_t k = 0; k < len; k++)
				buf[k] = (uint8_t)rng();
		}
		struct sp_agg_result res;
		bool ok = sp_agg_result_decode(buf, len, &res) == 0;
		if (ok) {
			uint8_t again[SP_AGG_RESULT_MAX];
			assert_int_equal(sp_agg_result_encode(again, &res), len);
			assert_memory_equal(again, buf, len);
			accepted++;
		}
		struct sp_task_out acc = {.buf = acc_buf, .cap = sizeof(acc_buf), .len = 0};
		assert_int_equal(d->merge(&acc, good, good_len, arg, 1, NULL), SP_BP_ST_OK);
		uint32_t before = acc.len;
		uint8_t st = d->merge(&acc, buf, len, arg, 1, NULL);
		assert_int_equal(st == SP_BP_ST_OK, ok && res.n <= SP_AGG_TOPK_MAX);
		if (st != SP_BP_ST_OK)
			assert_int_equal(acc.len, before); /* a refused part changes nothing */
		struct sp_task_keys kl;
		if (sp_task_keys_decode(buf, len, &kl) == 0) {
			uint8_t again[SP_BP_VALUE_MAX + 256];
			int n = sp_task_keys_encode(again, sizeof(again), kl.key, kl.key_len,
			                            kl.count, kl.arg, kl.arg_len);
			assert_int_equal(n, (int)len);
			assert_memory_equal(again, buf, len);
		}
		struct sp_rl_arg ra;
		struct sp_rl_result rr;
		if (sp_rl_arg_decode(buf, len, &ra) == 0)
			assert_true(ra.rate_per_s >= 1 && ra.cost >= 1 && ra.cost <= ra.burst);
		if (sp_rl_result_decode(buf, len, &rr) == 0)
			assert_int_equal(len, SP_RL_RESULT_SIZE);
		free(buf);
	}
	assert_true(accepted > 0); /* the mutations did reach the accepting paths */
	sp_task_registry_fini(r);
	free(r);
}

/* A key-list operation's admission: the list, its own argument, the scope. */
static void
test_keys_admission(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX], arg[64];
	const uint8_t *keys[2] = {(const uint8_t *)"x", (const uint8_t *)"yy"};
	uint8_t lens[2] = {1, 2}, k = 3;

	(void)state;
	sp_task_registry_init(r);
	assert_int_equal(sp_aggregate_register(r, NULL, 0), 0);
	int n = sp_task_keys_encode(arg, sizeof(arg), keys, lens, 2, &k, 1);
	struct sp_bp_req q = decoded(reqbuf, SP_TASK_OP_AGGREGATE_KEYS, NULL, arg, (uint32_t)n,
	                             SP_BP_TASK_SCOPE_NODE, 16);
	assert_int_equal(q.partition, SP_BP_PARTITION_ANY);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_OK);
	q = decoded(reqbuf, SP_TASK_OP_AGGREGATE_KEYS, NULL, arg, (uint32_t)n, 3, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_BAD_REQUEST); /* scope */
	uint8_t two[2] = {3, 0};
	n = sp_task_keys_encode(arg, sizeof(arg), keys, lens, 2, two, 2);
	q = decoded(reqbuf, SP_TASK_OP_AGGREGATE_KEYS, NULL, arg, (uint32_t)n, 0, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_TOO_BIG); /* own argument over arg_max */
	k = SP_AGG_TOPK_MAX + 1;
	n = sp_task_keys_encode(arg, sizeof(arg), keys, lens, 2, &k, 1);
	q = decoded(reqbuf, SP_TASK_OP_AGGREGATE_KEYS, NULL, arg, (uint32_t)n, 0, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_BAD_REQUEST); /* check() */
	uint8_t dup[] = {2, 1, 'x', 1, 'x', 3};
	q = decoded(reqbuf, SP_TASK_OP_AGGREGATE_KEYS, NULL, dup, sizeof(dup), 0, 16);
	assert_int_equal(sp_task_admit(r, &q), SP_BP_ST_BAD_REQUEST); /* a key twice */
	sp_task_registry_fini(r);
	free(r);
}

/* The guide's example (docs/tasks.md): a per-key hit counter in the operation's state. */
static void
test_doc_example(void **state)
{
	struct sp_task_registry *r = malloc(sizeof(*r));
	struct alloc_log log = {0};
	uint8_t reqbuf[SP_BP_PAYLOAD_MAX], repbuf[SP_BP_PAYLOAD_MAX];
	uint64_t want[3] = {0};
	static const char *const keys[] = {"alice", "bob", "carol"};

	(void)state;
	rng_seed("doc_example");
	sp_task_registry_init(r);
	assert_int_equal(hits_register(r, NULL, 0), 0);
	assert_int_equal(sp_task_start(r, 4, state_alloc, state_free, &log, NULL, 0), 0);
	for (int i = 0; i < 300; i++) {
		int k = (int)(rng() % 3);
		struct sp_bp_builder b;
		struct sp_bp_reply rep[1];
		struct sp_bp_dgram dg;
		uint64_t got;

		struct sp_bp_req q = decoded(reqbuf, 200, keys[k], NULL, 0, 0, 4);
		sp_bp_builder_init(&b, repbuf, sizeof(repbuf), true, 1);
		assert_int_equal(sp_task_run_key(r, &q, NULL, 0, 1, &b, NULL), 0);
		uint32_t len = sp_bp_builder_finish(&b);
		assert_int_equal(sp_bp_decode_replies(repbuf, len, rep, 1, &dg), SP_BP_ERR_OK);
		assert_int_equal(rep[0].status, SP_BP_ST_OK);
		memcpy(&got, rep[0].value, 8);
		assert_int_equal(got, ++want[k]);
	}
	sp_task_stop(r, state_free, &log);
	sp_task_registry_fini(r);
	free(r);
}

/* The heap allocator for programs without hugepages: aligned as asked, zeroed, for a size
 * that is a multiple of the alignment and for one a byte past it or short of it. */
static void
test_heap_allocator(void **state)
{
	(void)state;
	for (size_t align = 8; align <= 4096; align *= 8) {
		const size_t sizes[] = {2 * align, 2 * align + 1, align - 1, 1};

		for (size_t s = 0; s < SP_ARRAY_SIZE(sizes); s++) {
			uint8_t *p = sp_task_heap_alloc(sizes[s], align, 3, NULL);

			assert_non_null(p);
			assert_int_equal((uintptr_t)p % align, 0);
			for (size_t i = 0; i < sizes[s]; i++)
				assert_int_equal(p[i], 0);
			sp_task_heap_free(p, NULL);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_register_errors),
	        cmocka_unit_test(test_heap_allocator),
	        cmocka_unit_test(test_start_allocates_and_cleans_up),
	        cmocka_unit_test(test_run_on_owner_partition_only),
	        cmocka_unit_test(test_run_span_listed_partitions),
	        cmocka_unit_test(test_gather_all_answer),
	        cmocka_unit_test(test_gather_owner_times_out),
	        cmocka_unit_test(test_gather_errors_and_bounds),
	        cmocka_unit_test(test_ratelimit_model_random),
	        cmocka_unit_test(test_ratelimit_eviction),
	        cmocka_unit_test(test_aggregate_model_random),
	        cmocka_unit_test(test_store_scan),
	        cmocka_unit_test(test_doc_example),
	        cmocka_unit_test(test_keys_admission),
	        cmocka_unit_test(test_decoders_hostile_input),
	        cmocka_unit_test(test_wire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
