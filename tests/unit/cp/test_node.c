/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * node.c on its own: a one-member cluster with a real log in a temporary directory and a
 * real io_uring, no sockets (io.c is set up but never listens). What the API would see is
 * read from the outcome queue: each submission's outcome, then its entry applied, in
 * order; a full submission area refused and counted; nothing lost on the way.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/errors.h"
#include "addr.h"
#include "node.h"

#define RING_ENTRIES 256u
#define WAIT_MS_MAX  10000u /* a condition the test waits for must hold within this */

struct fixture {
	char dir[64];
	struct cp_config cfg;
	struct io_uring ring;
	struct cp_stats stats;
	struct cp_io io;
	struct cp_node node;
	/* What the API side would have taken from the outcome queue, in order. */
	struct cp_outcome seen[32768];
	uint32_t n_seen;
};

static struct fixture *fx;

static int
setup(void **state)
{
	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/sp-cp-node.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	struct cp_config *c = &fx->cfg;
	snprintf(c->name, sizeof(c->name), "n1");
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", fx->dir);
	snprintf(c->listen_peer, sizeof(c->listen_peer), "127.0.0.1:1");
	snprintf(c->listen_client, sizeof(c->listen_client), "127.0.0.1:2");
	snprintf(c->advertise_client, sizeof(c->advertise_client), "127.0.0.1:2");
	snprintf(c->initial_cluster, sizeof(c->initial_cluster), "n1=127.0.0.1:1");
	c->initial_new = true;
	c->partitions = 4;
	c->snapshot_entries = 1000000;
	c->config_max_keys = CLUSTER_CONFIG_KEYS_DEFAULT;
	c->config_max_value = CLUSTER_CONFIG_VALUE_DEFAULT;
	c->config_max_bytes = CLUSTER_CONFIG_BYTES_DEFAULT;
	assert_int_equal(io_uring_queue_init(RING_ENTRIES, &fx->ring, 0), 0);
	cp_stats_init(&fx->stats);
	struct cp_io_handlers h = {.arg = fx};
	static const uint8_t secret[16] = "0123456789abcdef";
	uint64_t id = cp_member_id(c->name);
	cp_io_setup(&fx->io, c, id, secret, sizeof(secret), &fx->ring, &fx->stats, &h);
	assert_int_equal(cp_node_start(&fx->node, c, id, &fx->ring, &fx->io, &fx->stats), 0);
	assert_true(cp_node_check_invariants(&fx->node));
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char cmd[128];
	cp_io_fini(&fx->io);
	cp_node_stop(&fx->node);
	cp_stats_fini(&fx->stats);
	io_uring_queue_exit(&fx->ring);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	fx = NULL;
	return 0;
}

/* Takes every outcome, as api.c does after each turn. */
static void
drain(void)
{
	struct cp_outcome o;
	while (cp_outq_pop(&fx->node.outq, &o)) {
		assert_true(fx->n_seen < sizeof(fx->seen) / sizeof(fx->seen[0]));
		fx->seen[fx->n_seen++] = o;
	}
}

/* One turn of main.c's loop: completions, then drive and drain until the node is done. */
static void
turn(uint32_t wait_ms)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)wait_ms * 1000000};
	io_uring_submit(&fx->ring);
	if (io_uring_wait_cqe_timeout(&fx->ring, &cqe, &ts) == 0) {
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&fx->ring, head, cqe)
		{
			seen++;
			struct log_store_op *op = io_uring_cqe_get_data(cqe);
			assert_non_null(op);
			assert_int_equal(op->magic,
			                 LOG_STORE_OP_MAGIC); /* nothing else is in flight */
			log_store_complete(fx->node.log, cqe);
		}
		io_uring_cq_advance(&fx->ring, seen);
	}
	for (int round = 0; round < 64; round++) {
		bool more = cp_node_drive(&fx->node);
		drain();
		if (!more)
			break;
	}
	assert_false(fx->node.stopping);
}

static bool
is_leader(void)
{
	struct raft_status st;
	cp_node_status(&fx->node, &st);
	return st.role == RAFT_LEADER && st.commit == st.last_index;
}

/* Ticks as main.c does (Raft's every CP_RAFT_TICK_MS, the node's every CP_TICK_MS) until
 * this one member leads with its term committed. */
static void
become_leader(void)
{
	uint64_t deadline = sp_mono_ns() + (uint64_t)WAIT_MS_MAX * SP_NS_PER_MS;
	for (uint32_t t = 1; !is_leader(); t++) {
		assert_true(sp_mono_ns() < deadline);
		cp_node_raft_tick(&fx->node);
		if (t % (CP_TICK_MS / CP_RAFT_TICK_MS) == 0)
			cp_node_tick(&fx->node);
		turn(CP_RAFT_TICK_MS);
	}
	assert_true(cp_node_check_invariants(&fx->node));
}

/* The index of the SUBMITTED outcome of token, or 0. Its status goes to *status. */
static uint64_t
submitted(uint64_t token, int *status)
{
	for (uint32_t i = 0; i < fx->n_seen; i++)
		if (fx->seen[i].kind == CP_OUT_SUBMITTED && fx->seen[i].token == token) {
			*status = fx->seen[i].status;
			return fx->seen[i].index;
		}
	return 0;
}

/* Where the APPLIED outcome of index is in fx->seen, or -1. */
static int64_t
applied_at(uint64_t index, int *status)
{
	for (uint32_t i = 0; i < fx->n_seen; i++)
		if (fx->seen[i].kind == CP_OUT_APPLIED && fx->seen[i].index == index) {
			*status = fx->seen[i].status;
			return i;
		}
	return -1;
}

static uint32_t
encode_set(uint8_t *buf, size_t cap, const char *key, const char *value)
{
	struct cluster_cmd c = {.type = CLUSTER_CMD_CONFIG_SET,
	                        .key = key,
	                        .key_len = (uint32_t)strlen(key),
	                        .value = value,
	                        .value_len = (uint32_t)strlen(value)};
	int n = cluster_cmd_encode(&c, buf, cap);
	assert_true(n > 0);
	return (uint32_t)n;
}

/* Waits until index is applied. */
static void
wait_applied(uint64_t index)
{
	uint64_t deadline = sp_mono_ns() + (uint64_t)WAIT_MS_MAX * SP_NS_PER_MS;
	while (fx->node.applied < index) {
		assert_true(sp_mono_ns() < deadline);
		turn(5);
	}
}

/* A proposal's outcome, then its entry applied; a command that does not decode is applied
 * as a refusal, reported with the apply's status; the state holds the first. */
static void
test_outcomes_in_order(void **state)
{
	(void)state;
	uint8_t buf[256];
	int st_sub = 1, st_app = 1;
	become_leader();
	uint32_t n = encode_set(buf, sizeof(buf), "colour", "blue");
	assert_int_equal(cp_node_submit(&fx->node, CP_SUB_PROPOSE, 0, buf, n, 77), 0);
	static const uint8_t junk[] = {0x63, 1, 2, 3};
	assert_int_equal(cp_node_submit(&fx->node, CP_SUB_PROPOSE, 0, junk, sizeof(junk), 78), 0);
	turn(0);
	uint64_t i77 = submitted(77, &st_sub);
	assert_int_equal(st_sub, 0);
	uint64_t i78 = submitted(78, &st_sub);
	assert_int_equal(st_sub, 0);
	assert_true(i77 != 0);
	assert_int_equal(i78, i77 + 1);
	wait_applied(i78);
	int64_t at77 = applied_at(i77, &st_app);
	assert_true(at77 >= 0);
	assert_int_equal(st_app, 0);
	int64_t at78 = applied_at(i78, &st_app);
	assert_int_equal(at78, at77 + 1);
	assert_int_equal(st_app, -SP_EMALFORMED);
	const struct cluster_config_item *it =
	        cluster_sm_config_get(cp_node_sm(&fx->node), "colour");
	assert_non_null(it);
	assert_string_equal(it->value, "blue");
	/* A submission without a token leaves no outcome of its own. */
	uint32_t before = fx->n_seen;
	n = encode_set(buf, sizeof(buf), "shape", "round");
	assert_int_equal(cp_node_submit(&fx->node, CP_SUB_PROPOSE, 0, buf, n, 0), 0);
	wait_applied(i78 + 1);
	for (uint32_t i = before; i < fx->n_seen; i++)
		assert_int_equal(fx->seen[i].kind, CP_OUT_APPLIED);
	assert_true(cp_node_check_invariants(&fx->node));
}

/* While a ready is written, submissions wait in the area; past its bound they are refused
 * (-SP_EFULL, counted), and every one taken gets its outcome and its entry, in order. */
static void
test_full_area_refused_and_nothing_lost(void **state)
{
	(void)state;
	uint8_t buf[256];
	become_leader();
	uint32_t n = encode_set(buf, sizeof(buf), "k", "first");
	assert_int_equal(cp_node_submit(&fx->node, CP_SUB_PROPOSE, 0, buf, n, 1), 0);
	turn(0); /* steps it, and the drive starts writing its ready */
	if (!cp_node_busy(&fx->node))
		skip(); /* the write completed within the turn: nothing can wait (never seen) */
	uint64_t token = 2, refused = 0;
	for (;;) {
		char v[32];
		snprintf(v, sizeof(v), "v%llu", (unsigned long long)token);
		n = encode_set(buf, sizeof(buf), "k", v);
		int err = cp_node_submit(&fx->node, CP_SUB_PROPOSE, 0, buf, n, token);
		if (err) {
			assert_int_equal(err, -SP_EFULL);
			refused++;
			break;
		}
		token++;
	}
	assert_true(cp_node_busy(&fx->node)); /* no completion was taken meanwhile */
	assert_int_equal(fx->node.subq.n, CP_SUBMIT_MAX);
	assert_int_equal(fx->stats.m.submit_busy, refused);
	assert_int_equal(fx->node.subq.refused_subs, 1);
	assert_true(cp_node_check_invariants(&fx->node));
	uint64_t last = token - 1;
	printf("test_full_area_refused_and_nothing_lost: %llu waited, the next refused\n",
	       (unsigned long long)(last - 1));
	/* Every token taken: one SUBMITTED, its entry applied; indices consecutive. */
	uint64_t deadline = sp_mono_ns() + (uint64_t)WAIT_MS_MAX * SP_NS_PER_MS;
	int st = 1;
	while (submitted(last, &st) == 0 || fx->node.applied < submitted(last, &st)) {
		assert_true(sp_mono_ns() < deadline);
		turn(5);
	}
	uint64_t first_index = submitted(1, &st);
	for (uint64_t t = 1; t <= last; t++) {
		assert_int_equal(submitted(t, &st), first_index + (t - 1));
		assert_int_equal(st, 0);
	}
	assert_true(applied_at(first_index + last - 1, &st) >= 0);
	assert_int_equal(st, 0);
	char want[32];
	snprintf(want, sizeof(want), "v%llu", (unsigned long long)last);
	assert_string_equal(cluster_sm_config_get(cp_node_sm(&fx->node), "k")->value, want);
	assert_int_equal(fx->node.subq.n, 0);
	assert_int_equal(fx->node.subq.used, 0);
	assert_true(cp_node_check_invariants(&fx->node));
}

/* One node tick as main.c runs it for the node: its tick, its duties, then turns until
 * what they proposed is written (proposals are stepped at once when the node is idle). */
static void
duty_tick(const struct health_report *self)
{
	cp_node_tick(&fx->node);
	cp_node_duties(&fx->node, self);
	for (int i = 0; i < 64; i++) {
		struct raft_status st;
		cp_node_status(&fx->node, &st);
		if (!cp_node_busy(&fx->node) && fx->node.applied == st.last_index)
			break;
		turn(5);
	}
}

/* A bootstrap's duties follow one another as each is applied: the member's record, its
 * dataplane, the partition count and its role, a tick apart, not a retry period apart;
 * once done, ticks propose nothing more (no duplicate of a duty already applied). */
static void
test_duties_follow_each_commit(void **state)
{
	(void)state;
	struct health_report self = {.has_region = true,
	                             .dp_alive = true,
	                             .workers = 2,
	                             .ipv4_be = 0x0a010001,
	                             .binary_port = 9000,
	                             .memcached_port = 11211};
	become_leader();
	const struct cluster_sm *sm = cp_node_sm(&fx->node);
	uint64_t id = cp_member_id(fx->cfg.name);
	uint32_t ticks = 0;
	for (;;) {
		const struct cluster_member *m = cluster_sm_member(sm, id);
		if (m != NULL && m->dp_known && m->voter && sm->partitions == fx->cfg.partitions)
			break;
		assert_true(ticks < 8); /* one tick a duty; a retry period is 40 */
		duty_tick(&self);
		ticks++;
	}
	const struct cluster_member *m = cluster_sm_member(sm, id);
	assert_int_equal(m->workers, 2);
	assert_int_equal(m->binary_port, 9000);
	assert_string_equal(m->name, "n1");
	struct raft_status st;
	cp_node_status(&fx->node, &st);
	uint64_t last = st.last_index;
	for (int i = 0; i < 100; i++)
		duty_tick(&self);
	cp_node_status(&fx->node, &st);
	assert_int_equal(st.last_index, last);
	printf("test_duties_follow_each_commit: settled in %u ticks, log at %llu\n", ticks,
	       (unsigned long long)last);
	/* A new dataplane address is proposed at once, and once. */
	self.ipv4_be = 0x0a010009;
	duty_tick(&self);
	uint32_t proposed_at = fx->node.tick;
	for (int i = 0; i < 2; i++)
		duty_tick(&self);
	assert_int_equal(cluster_sm_member(sm, id)->ipv4_be, 0x0a010009);
	cp_node_status(&fx->node, &st);
	assert_int_equal(st.last_index, last + 1);
	/* Another one within the retry period waits for it (the same kind of proposal again,
	 * which a follower cannot tell from one still on its way): nothing until the tick
	 * CP_DUTY_RETRY_TICKS after the first, then proposed. */
	self.ipv4_be = 0x0a01000a;
	while (fx->node.tick + 1 < proposed_at + CP_DUTY_RETRY_TICKS) {
		duty_tick(&self);
		cp_node_status(&fx->node, &st);
		assert_int_equal(st.last_index, last + 1);
	}
	duty_tick(&self);
	assert_int_equal(fx->node.tick, proposed_at + CP_DUTY_RETRY_TICKS);
	cp_node_status(&fx->node, &st);
	assert_int_equal(st.last_index, last + 2);
	assert_int_equal(cluster_sm_member(sm, id)->ipv4_be, 0x0a01000a);
	assert_true(cp_node_check_invariants(&fx->node));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_outcomes_in_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_duties_follow_each_commit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_full_area_refused_and_nothing_lost, setup,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
