/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Routing tables: lookup, refusals, grace periods, the deferred queue, the region watcher
 * (driven by the shardplane-region tool), and a switch storm while two worker threads
 * execute requests: no partition is ever executed by two workers at once or by a worker
 * that does not own it, and every request is executed exactly once. Random choices are
 * seeded; replay with SP_TEST_SEED=N. rte_rcu_qsbr and rte_ring are used without the EAL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_pause.h>
#include <rte_ring.h>

#include <cmocka.h>

#include "cluster/partmap.h"
#include "cluster/region.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "dataplane/route/route.h"
#include "wire/binproto.h"

#define SIM_WORKERS      2u
#define SIM_PARTITIONS   64u
#define SIM_SWITCHES     40u     /* epoch switches in the storm */
#define SIM_REQUESTS_MAX 200000u /* requests generated in the storm, at most */
#define SIM_INFLIGHT_MAX 512u    /* requests generated but not executed, at most */
#define SIM_BATCH        16u     /* requests per burst */
#define SIM_RING_SIZE    2048u   /* > SIM_INFLIGHT_MAX + a burst, so no ring ever fills */
#define SIM_TIME_MAX_MS  5000u   /* bound of the storm, whatever happens */
#define SIM_WORK_SPINS   64u     /* pause instructions per execution, to widen races */

static uint64_t test_seed;
static char region_path[128];

/* Teardown: removes the region a failed test may have left behind. */
static int
remove_region(void **state)
{
	(void)state;
	if (region_path[0] != '\0')
		unlink(region_path);
	region_path[0] = '\0';
	return 0;
}

static uint64_t
rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static struct sp_cluster_state *
single_state(uint32_t partitions, uint32_t workers, uint64_t epoch)
{
	struct sp_cluster_state *st = sp_cluster_state_new(partitions);

	assert_non_null(st);
	assert_int_equal(sp_cluster_state_single(st, partitions, 1, workers, "self"), 0);
	st->epoch = epoch;
	return st;
}

static void
test_default_table_and_decide(void **state)
{
	struct route_config cfg = {.workers = 4, .partitions = 64, .node_id = 1};
	struct route_ctx *ctx = route_create(&cfg);
	const struct route_table *t;
	uint16_t target = 0;

	(void)state;
	assert_non_null(ctx);
	t = route_current(ctx);
	assert_int_equal(t->epoch, 0);
	assert_int_equal(t->partitions, 64);
	assert_int_equal(t->mask, 63);
	assert_int_equal(t->pending_count, 0);
	for (uint32_t p = 0; p < 64; p++) {
		assert_int_equal(route_lookup(t, p).worker, p % 4);
		assert_int_equal(route_lookup(t, p).flags, 0);
	}
	assert_int_equal(route_decide(t, 6, 2, &target), ROUTE_EXECUTE);
	assert_int_equal(target, 2);
	assert_int_equal(route_decide(t, 6, 3, &target), ROUTE_HANDOFF);
	assert_int_equal(target, 2);
	route_destroy(ctx);

	/* Bad configurations are refused. */
	cfg.partitions = 48;
	assert_null(route_create(&cfg));
	cfg.partitions = 64;
	cfg.workers = 0;
	assert_null(route_create(&cfg));
	cfg.workers = ROUTE_WORKERS_MAX + 1;
	assert_null(route_create(&cfg));
	cfg.workers = 1;
	cfg.node_id = 0;
	assert_null(route_create(&cfg));
	assert_null(route_create(NULL));
}

/*
 * ROUTE_WORKER_NONE entries: UNSERVED for every worker, never a hand-off or an execution,
 * whatever the flags; REMOTE and local entries beside them are unchanged. New tables answer
 * NOT_READY until their builder says otherwise.
 */
static void
test_unserved_partitions(void **state)
{
	struct route_config cfg = {.workers = 2, .partitions = 16, .node_id = 1};
	struct route_ctx *ctx = route_create(&cfg);
	const struct route_table *t;
	struct route_table *u;
	size_t bytes = route_table_size(16);
	uint16_t target = 7;

	(void)state;
	assert_non_null(ctx);
	t = route_current(ctx);
	assert_int_equal(t->unserved_status, SP_BP_ST_NOT_READY);
	u = malloc(bytes);
	assert_non_null(u);
	memcpy(u, t, bytes);
	u->node_count = 2;
	u->nodes[1].node_id = 2;
	for (uint32_t p = 0; p < 16; p += 2)
		u->entries[p].worker = ROUTE_WORKER_NONE;
	u->entries[3].worker = ROUTE_WORKER_REMOTE;
	u->entries[3].node = 1;
	u->entries[4].flags = ROUTE_F_PENDING; /* a marker wins over a stale flag */
	u->unserved_status = SP_BP_ST_NOT_SERVING;
	for (uint16_t w = 0; w < 2; w++) {
		for (uint32_t p = 0; p < 16; p += 2) {
			target = 7;
			assert_int_equal(route_decide(u, p, w, &target), ROUTE_UNSERVED);
			assert_int_equal(target, u->entries[p].node);
		}
		assert_int_equal(route_decide(u, 3, w, &target), ROUTE_REMOTE);
		assert_int_equal(target, 1);
	}
	assert_int_equal(route_decide(u, 1, 1, &target), ROUTE_EXECUTE);
	assert_int_equal(route_decide(u, 5, 0, &target), ROUTE_HANDOFF);
	assert_int_equal(target, 1);
	/* The markers sit above every worker index the table can name. */
	assert_true(ROUTE_WORKERS_MAX < ROUTE_WORKER_NONE);
	assert_int_equal(ROUTE_WORKER_NONE, 0xfffe);
	free(u);
	route_destroy(ctx);
}

/* on_acquire hook of the tests: counts calls per partition. */
static uint32_t emptied[64];

static void
count_emptied(void *arg, uint32_t partition)
{
	(void)arg;
	assert_true(partition < 64);
	emptied[partition]++;
}

/*
 * Stores are emptied when a partition arrives from another node (or from nobody), and
 * when it leaves for another node (after the grace period), never for a move between
 * local workers; and all local ones when serving resumes at another epoch.
 */
static void
test_partition_data_emptied(void **state)
{
	struct route_config cfg = {.workers = 2,
	                           .partitions = 16,
	                           .node_id = 1,
	                           .clustered = true,
	                           .on_acquire = count_emptied};
	struct route_ctx *ctx = route_create(&cfg);
	struct sp_cluster_state *st = sp_cluster_state_new(16);
	char why[ROUTE_WHY_MAX];
	struct route_stats rs;

	(void)state;
	memset(emptied, 0, sizeof(emptied));
	assert_non_null(ctx);
	assert_int_equal(sp_cluster_state_single(st, 16, 1, 2, "a"), 0);
	st->member_count = 2;
	st->members[1] = st->members[0];
	st->members[1].node_id = 2;
	memcpy(st->members[1].name, "b", 2);
	for (uint32_t p = 8; p < 16; p++)
		st->map[p].node_id = 2; /* node 2 owns 8..15 */
	st->epoch = 2;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0);
	for (uint32_t p = 0; p < 16; p++)
		assert_int_equal(emptied[p], 0); /* first serving: nothing was there before */

	/* 8 arrives from node 2, 0 leaves for node 2, 1 moves between local workers. */
	st->epoch = 3;
	st->map[8].node_id = 1;
	st->map[0].node_id = 2;
	st->map[1].worker = (uint16_t)(1 - st->map[1].worker);
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	assert_int_equal(emptied[8], 1);
	assert_int_equal(emptied[0], 1);
	assert_int_equal(emptied[1], 0);
	for (uint32_t p = 2; p < 16; p++)
		if (p != 8)
			assert_int_equal(emptied[p], 0);

	/* Lease lost, a new map meanwhile, serving again: every local partition emptied. */
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_NOT_SERVING), 0);
	st->epoch = 4;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	memset(emptied, 0, sizeof(emptied));
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0);
	for (uint32_t p = 0; p < 16; p++)
		assert_int_equal(emptied[p], st->map[p].node_id == 1 ? 1u : 0u);
	/* Lost and regained at the same epoch: nothing emptied. */
	memset(emptied, 0, sizeof(emptied));
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_NOT_SERVING), 0);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0);
	for (uint32_t p = 0; p < 16; p++)
		assert_int_equal(emptied[p], 0);
	route_stats_get(ctx, &rs);
	assert_true(rs.acquired >= 2);
	sp_cluster_state_free(st);
	route_destroy(ctx);
}

/*
 * A worker that never passes a quiescent state: mode switches time out. Once the retired
 * tables are full, a switch publishes nothing and says so (-SP_EBUSY with route_mode()
 * and the current table unchanged), which is how the dataplane knows it is still serving.
 */
static void
test_mode_switch_busy(void **state)
{
	struct route_config cfg = {.workers = 1,
	                           .partitions = 16,
	                           .node_id = 1,
	                           .clustered = true,
	                           .grace_timeout_ms = 5};
	struct route_ctx *ctx = route_create(&cfg);
	struct sp_cluster_state *st = single_state(16, 1, 3);
	char why[ROUTE_WHY_MAX];
	bool unchanged_seen = false;

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	assert_int_equal(route_worker_register(ctx, 0), 0); /* online, never quiescent */
	for (int i = 0; i < 4 * (int)ROUTE_RETIRED_MAX && !unchanged_seen; i++) {
		enum route_mode before = route_mode(ctx), want;
		const struct route_table *t = route_current(ctx);
		want = before == ROUTE_MODE_SERVE ? ROUTE_MODE_NOT_SERVING : ROUTE_MODE_SERVE;
		int rc = route_set_mode(ctx, want);
		assert_true(rc == 0 || rc == -SP_EBUSY);
		if (route_mode(ctx) == before) {
			assert_int_equal(rc, -SP_EBUSY);
			assert_ptr_equal(route_current(ctx), t);
			unchanged_seen = true;
		} else {
			assert_ptr_not_equal(route_current(ctx), t);
		}
	}
	assert_true(unchanged_seen);
	route_worker_unregister(ctx, 0);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_NOT_SERVING), 0);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0);
	assert_int_equal(route_mode(ctx), ROUTE_MODE_SERVE);
	sp_cluster_state_free(st);
	route_destroy(ctx);
}

/* Asserts that every partition of the current table is unserved with status. */
static void
assert_all_unserved(const struct route_ctx *ctx, uint8_t status)
{
	const struct route_table *t = route_current(ctx);
	uint16_t target;

	assert_int_equal(t->unserved_status, status);
	assert_int_equal(t->serves_nothing, 1);
	for (uint32_t p = 0; p < t->partitions; p++)
		for (uint16_t w = 0; w < t->workers; w++)
			assert_int_equal(route_decide(t, p, w, &target), ROUTE_UNSERVED);
}

/*
 * A clustered context (a region is configured) serves nothing until a map is installed and
 * it is told to serve; it can be told to stop (lease gone, node removed) and to serve again,
 * and maps installed while it serves nothing are recorded and served later, with no grace
 * period skipped (no worker is registered, so every wait is immediate).
 */
static void
test_clustered_modes(void **state)
{
	struct route_config cfg = {.workers = 2, .partitions = 16, .node_id = 1, .clustered = true};
	struct route_ctx *ctx = route_create(&cfg);
	struct sp_cluster_state *st = single_state(16, 2, 3);
	char why[ROUTE_WHY_MAX];
	uint16_t target;
	struct route_stats rs;

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(route_mode(ctx), ROUTE_MODE_NOT_READY);
	assert_false(route_has_map(ctx));
	assert_int_equal(route_latest_epoch(ctx), 0);
	assert_all_unserved(ctx, SP_BP_ST_NOT_READY);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), -SP_ENOTFOUND);
	assert_int_equal(route_mode(ctx), ROUTE_MODE_NOT_READY);

	/* A map arrives: recorded, its epoch shown, still nothing served. */
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	assert_true(route_has_map(ctx));
	assert_int_equal(route_latest_epoch(ctx), 3);
	assert_int_equal(route_current(ctx)->epoch, 3);
	assert_all_unserved(ctx, SP_BP_ST_NOT_READY);

	/* Serve it. */
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0);
	assert_int_equal(route_mode(ctx), ROUTE_MODE_SERVE);
	assert_int_equal(route_current(ctx)->serves_nothing, 0);
	assert_int_equal(route_decide(route_current(ctx), 5, 1, &target), ROUTE_EXECUTE);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0); /* no-op */

	/* The lease runs out: nothing served, NOT_SERVING. */
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_NOT_SERVING), 0);
	assert_all_unserved(ctx, SP_BP_ST_NOT_SERVING);
	assert_int_equal(route_current(ctx)->epoch, 3);

	/* A new map while not serving moves every partition to worker 0: recorded only. */
	st->epoch = 4;
	for (uint32_t p = 0; p < 16; p++)
		st->map[p].worker = 0;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	assert_all_unserved(ctx, SP_BP_ST_NOT_SERVING);
	assert_int_equal(route_latest_epoch(ctx), 4);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_SERVE), 0);
	for (uint32_t p = 0; p < 16; p++) {
		assert_int_equal(route_decide(route_current(ctx), p, 0, &target), ROUTE_EXECUTE);
		assert_int_equal(route_decide(route_current(ctx), p, 1, &target), ROUTE_HANDOFF);
	}
	assert_int_equal(route_current(ctx)->epoch, 4);
	assert_int_equal(route_current(ctx)->pending_count, 0);

	/* While serving, a new map switches as before. */
	st->epoch = 5;
	for (uint32_t p = 0; p < 16; p++)
		st->map[p].worker = (uint16_t)(p % 2);
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	assert_int_equal(route_decide(route_current(ctx), 5, 1, &target), ROUTE_EXECUTE);
	assert_int_equal(route_set_mode(ctx, ROUTE_MODE_NOT_READY), 0);
	assert_all_unserved(ctx, SP_BP_ST_NOT_READY);
	route_poll(ctx);
	route_stats_get(ctx, &rs);
	assert_true(rs.tables_built >= rs.tables_freed);
	assert_true(rs.tables_built - rs.tables_freed <= ROUTE_RETIRED_MAX + 1);
	sp_cluster_state_free(st);
	route_destroy(ctx);
}

static void
test_remote_partitions_and_refusals(void **state)
{
	struct route_config cfg = {.workers = 2, .partitions = 16, .node_id = 1};
	struct route_ctx *ctx = route_create(&cfg);
	struct sp_cluster_state *st = sp_cluster_state_new(16);
	struct sp_cluster_state *other = single_state(32, 2, 5);
	char why[ROUTE_WHY_MAX];
	const struct route_table *t;
	struct route_stats stats;
	uint16_t target = 0;

	(void)state;
	assert_non_null(ctx);
	/* Two nodes: odd partitions live on node 2. */
	assert_int_equal(sp_cluster_state_single(st, 16, 1, 2, "a"), 0);
	st->member_count = 2;
	st->members[1] = st->members[0];
	st->members[1].node_id = 2;
	st->members[1].ipv4_be = inet_addr("10.1.2.3");
	st->members[1].binary_port = 9001;
	st->members[1].mac[5] = 0x22;
	memcpy(st->members[1].name, "b", 2);
	for (uint32_t p = 1; p < 16; p += 2)
		st->map[p].node_id = 2;
	st->epoch = 3;
	assert_int_equal(route_current(ctx)->publication, 0); /* the default table */
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	t = route_current(ctx);
	assert_int_equal(t->epoch, 3);
	assert_true(t->publication >= 1); /* every published table gets a new number */
	assert_int_equal(t->node_count, 2);
	assert_int_equal(route_decide(t, 5, 1, &target), ROUTE_REMOTE);
	assert_int_equal(t->nodes[target].node_id, 2);
	assert_int_equal(t->nodes[target].ipv4_be, inet_addr("10.1.2.3"));
	assert_int_equal(t->nodes[target].binary_port, 9001);
	assert_int_equal(t->nodes[target].mac[5], 0x22);
	assert_int_equal(route_decide(t, 4, 0, &target), ROUTE_EXECUTE);
	assert_int_equal(t->nodes[t->self_index].node_id, 1);

	/* Fenced partitions (moving between nodes) are served by nobody: a local one and a
	 * remote one answer NOT_SERVING; the others are unchanged. */
	st->map[4].flags = SP_MAP_F_FENCED;
	st->map[5].flags = SP_MAP_F_FENCED;
	st->epoch = 4;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	t = route_current(ctx);
	assert_int_equal(route_decide(t, 4, 0, &target), ROUTE_UNSERVED);
	assert_int_equal(route_decide(t, 5, 0, &target), ROUTE_UNSERVED);
	assert_int_equal(t->unserved_status, SP_BP_ST_NOT_SERVING);
	assert_int_equal(route_decide(t, 6, 0, &target), ROUTE_EXECUTE);
	assert_int_equal(route_decide(t, 7, 0, &target), ROUTE_REMOTE);
	st->map[4].flags = 0;
	st->map[5].flags = 0;
	st->epoch = 5;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	t = route_current(ctx);
	assert_int_equal(route_decide(t, 4, 0, &target), ROUTE_EXECUTE);
	assert_int_equal(route_decide(t, 5, 0, &target), ROUTE_REMOTE);

	/* Refusals keep the current table and say why. */
	assert_int_equal(route_switch(ctx, other, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "--partitions 32"));
	st->members[0].worker_count = 3;
	st->epoch = 6;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "3 workers"));
	st->members[0].worker_count = 2;
	st->epoch = 0;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), -SP_EMALFORMED);
	assert_ptr_equal(route_current(ctx), t);
	route_stats_get(ctx, &stats);
	assert_int_equal(stats.rejected, 3);
	assert_int_equal(stats.switches, 3);
	route_destroy(ctx);
	sp_cluster_state_free(st);
	sp_cluster_state_free(other);
}

struct move_log {
	uint32_t count;
	uint32_t partition;
	uint16_t from;
	uint16_t to;
};

static void
log_move(void *arg, uint32_t partition, uint16_t from, uint16_t to)
{
	struct move_log *l = arg;

	l->count++;
	l->partition = partition;
	l->from = from;
	l->to = to;
}

/* Workers that never pass a quiescent state hold every old table alive; a move stays
 * PENDING until they do. */
static void
test_grace_period_holds_tables(void **state)
{
	struct move_log moves = {0};
	struct route_config cfg = {.workers = 2,
	                           .partitions = 16,
	                           .node_id = 1,
	                           .grace_timeout_ms = 20,
	                           .on_move = log_move,
	                           .on_move_arg = &moves};
	struct route_ctx *ctx = route_create(&cfg);
	struct sp_cluster_state *st = single_state(16, 2, 1);
	char why[ROUTE_WHY_MAX];
	const struct route_table *t;
	struct route_stats stats;
	uint16_t target = 0;
	int ok = 0;

	(void)state;
	assert_non_null(ctx);
	assert_int_equal(route_worker_register(ctx, 0), 0);
	assert_int_equal(route_worker_register(ctx, 1), 0);
	assert_int_equal(route_worker_register(ctx, 2), -EINVAL);
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	route_stats_get(ctx, &stats);
	assert_int_equal(stats.tables_freed, 0);
	assert_int_equal(stats.grace_timeouts, 1);
	route_quiescent(ctx, 0);
	assert_int_equal(route_poll(ctx), 0);
	route_quiescent(ctx, 1);
	assert_int_equal(route_poll(ctx), 1);

	/* Partition 3 moves from worker 1 to worker 0. */
	st->epoch = 2;
	st->map[3].worker = 0;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), -SP_EBUSY);
	assert_true(route_switch_pending(ctx));
	t = route_current(ctx);
	assert_int_equal(t->pending_count, 1);
	assert_int_equal(route_lookup(t, 3).flags, ROUTE_F_PENDING);
	assert_int_equal(route_decide(t, 3, 0, &target), ROUTE_DEFER);
	assert_int_equal(route_decide(t, 3, 1, &target), ROUTE_HANDOFF);
	assert_int_equal(target, 0);
	assert_int_equal(moves.count, 0);
	/* No new switch while this one waits. */
	st->epoch = 3;
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), -SP_EBUSY);
	assert_non_null(strstr(why, "quiescent"));
	route_quiescent(ctx, 0);
	route_poll(ctx);
	assert_true(route_switch_pending(ctx));
	route_quiescent(ctx, 1);
	route_poll(ctx);
	assert_false(route_switch_pending(ctx));
	assert_int_equal(moves.count, 1);
	assert_int_equal(moves.partition, 3);
	assert_int_equal(moves.from, 1);
	assert_int_equal(moves.to, 0);
	t = route_current(ctx);
	assert_int_equal(t->pending_count, 0);
	assert_int_equal(route_decide(t, 3, 0, &target), ROUTE_EXECUTE);
	route_quiescent(ctx, 0);
	route_quiescent(ctx, 1);
	route_poll(ctx);
	route_stats_get(ctx, &stats);
	assert_int_equal(stats.tables_freed, stats.tables_built - 1);
	assert_int_equal(stats.partitions_moved, 1);

	/* At most ROUTE_RETIRED_MAX tables wait; then a switch is refused as busy. */
	for (uint32_t i = 0; i < ROUTE_RETIRED_MAX + 2; i++) {
		st->epoch = 10 + i;
		if (route_switch(ctx, st, why, sizeof(why)) != 0)
			break;
		ok++;
	}
	assert_int_equal(ok, ROUTE_RETIRED_MAX - 1);
	route_quiescent(ctx, 0);
	route_quiescent(ctx, 1);
	assert_int_equal(route_poll(ctx), ROUTE_RETIRED_MAX - 1);
	assert_int_equal(route_switch(ctx, st, why, sizeof(why)), 0);
	route_worker_unregister(ctx, 0);
	route_worker_unregister(ctx, 1);
	route_destroy(ctx);
	sp_cluster_state_free(st);
}

static void
test_defer_queue_bound_and_order(void **state)
{
	static struct route_defer d;
	struct route_table *t = calloc(1, sizeof(*t) + 8 * sizeof(struct route_entry));
	void *out[ROUTE_DEFER_MAX];
	unsigned int n;

	(void)state;
	assert_non_null(t);
	t->partitions = 8;
	t->mask = 7;
	t->workers = 1;
	t->node_count = 1;
	t->entries[2].flags = ROUTE_F_PENDING;
	route_defer_init(&d);
	for (uintptr_t i = 0; i < ROUTE_DEFER_MAX; i++)
		assert_int_equal(route_defer_push(&d, (void *)(i + 1), (uint32_t)(i % 4)), 0);
	assert_int_equal(route_defer_push(&d, (void *)1, 0), -SP_EFULL);
	assert_int_equal(d.full_total, 1);
	assert_int_equal(d.deferred_total, ROUTE_DEFER_MAX);

	/* Takes at most n, skipping partition 2 (still pending), in arrival order. */
	n = route_defer_take(&d, t, out, 5);
	assert_int_equal(n, 5);
	assert_ptr_equal(out[0], (void *)1);
	assert_ptr_equal(out[1], (void *)2);
	assert_ptr_equal(out[2], (void *)4);
	assert_ptr_equal(out[3], (void *)5);
	assert_ptr_equal(out[4], (void *)6);
	n = route_defer_take(&d, t, out, ROUTE_DEFER_MAX);
	assert_int_equal(n, ROUTE_DEFER_MAX * 3 / 4 - 5);
	assert_int_equal(d.count, ROUTE_DEFER_MAX / 4);
	/* Room again; the pending ones are still there, in order. */
	assert_int_equal(route_defer_push(&d, (void *)7777, 1), 0);
	t->entries[2].flags = 0;
	n = route_defer_take(&d, t, out, ROUTE_DEFER_MAX);
	assert_int_equal(n, ROUTE_DEFER_MAX / 4 + 1);
	assert_ptr_equal(out[0], (void *)3);
	assert_ptr_equal(out[1], (void *)7);
	assert_ptr_equal(out[n - 1], (void *)7777);
	assert_int_equal(d.count, 0);

	/* Drain releases everything, pending or not, oldest first, n at a time. */
	t->entries[2].flags = ROUTE_F_PENDING;
	for (uintptr_t i = 0; i < 6; i++)
		assert_int_equal(route_defer_push(&d, (void *)(i + 100), 2), 0);
	assert_int_equal(route_defer_take(&d, t, out, ROUTE_DEFER_MAX), 0);
	assert_int_equal(route_defer_drain(&d, out, 4), 4);
	assert_ptr_equal(out[0], (void *)100);
	assert_ptr_equal(out[3], (void *)103);
	assert_int_equal(route_defer_drain(&d, out, 4), 2);
	assert_ptr_equal(out[1], (void *)105);
	assert_int_equal(route_defer_drain(&d, out, 4), 0);
	free(t);
}

/* Runs the region tool with the given arguments; returns its exit status. */
static int
tool(const char *fmt, ...)
{
	const char *bin = getenv("SP_REGION_TOOL");
	char args[512], cmd[1024];
	va_list ap;
	int rc;

	if (bin == NULL)
		fail_msg("SP_REGION_TOOL must name the shardplane-region executable");
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null", bin, args);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Flips one map byte of the published slot, as a stray write would. */
static void
corrupt_active_slot(const char *path)
{
	struct sp_region_header *h;
	struct sp_region_state *slot;
	struct stat sb;
	uint8_t *base;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	base = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(base != MAP_FAILED);
	h = (struct sp_region_header *)base;
	slot = (struct sp_region_state *)(base + h->state_offset[atomic_load(&h->state_active)]);
	slot->map[9].worker ^= 1;
	munmap(base, (size_t)sb.st_size);
	close(fd);
}

static void
test_watcher_follows_region(void **state)
{
	struct route_config cfg = {.workers = 2, .partitions = 64, .node_id = 1};
	struct route_ctx *ctx = route_create(&cfg);
	char *path = region_path, why[SP_CLUSTER_WHY_MAX];
	const struct route_table *t;
	struct route_watch w;
	struct route_stats stats;
	struct sp_region *region;
	uint16_t target = 0;

	(void)state;
	assert_non_null(ctx);
	snprintf(region_path, sizeof(region_path), "/dev/shm/sp-test-route-%d", (int)getpid());
	assert_int_equal(tool("create %s --partitions-max 64", path), 0);
	assert_int_equal(sp_region_open(path, false, &region, why, sizeof(why)), 0);
	assert_int_equal(route_watch_init(&w, region), 0);
	assert_int_equal(route_watch_region(ctx, &w), 0); /* nothing published */

	assert_int_equal(tool("set-map %s --workers 2 --partitions 64", path), 0);
	assert_int_equal(route_watch_region(ctx, &w), 1);
	assert_int_equal(route_current(ctx)->epoch, 1);
	assert_int_equal(route_current(ctx)->generation, 1);
	assert_int_equal(route_watch_region(ctx, &w), 0);

	/* Partition 5 moves from worker 1 to worker 0. */
	assert_int_equal(tool("set-map %s --assign 5=1:0", path), 0);
	assert_int_equal(route_watch_region(ctx, &w), 1);
	t = route_current(ctx);
	assert_int_equal(t->epoch, 2);
	assert_int_equal(route_decide(t, 5, 0, &target), ROUTE_EXECUTE);
	route_stats_get(ctx, &stats);
	assert_int_equal(stats.partitions_moved, 1);

	/* A second node takes the odd partitions. */
	assert_int_equal(tool("set-map %s --member id=1,workers=2,ip=10.0.0.1,port=9000 "
	                      "--member id=2,workers=1,ip=10.0.0.2,port=9001",
	                      path),
	                 0);
	assert_int_equal(route_watch_region(ctx, &w), 1);
	t = route_current(ctx);
	assert_int_equal(t->epoch, 3);
	assert_int_equal(route_decide(t, 7, 1, &target), ROUTE_REMOTE);
	assert_int_equal(t->nodes[target].ipv4_be, inet_addr("10.0.0.2"));
	assert_int_equal(t->nodes[target].binary_port, 9001);

	/* Publications this dataplane cannot take are refused once, and the table stays. */
	assert_int_equal(tool("set-map %s --partitions 32 --spread", path), 0);
	assert_int_equal(route_watch_region(ctx, &w), -EINVAL);
	assert_ptr_equal(route_current(ctx), t);
	assert_int_equal(route_watch_region(ctx, &w), 0);
	assert_int_equal(w.errors, 1);
	assert_int_equal(tool("set-map %s --partitions 64 --workers 4", path), 0);
	assert_int_equal(route_watch_region(ctx, &w), -EINVAL);
	assert_int_equal(tool("set-map %s --workers 2 --assign 7=1:1", path), 0);
	assert_int_equal(route_watch_region(ctx, &w), 1);
	assert_int_equal(route_current(ctx)->epoch, 6);
	assert_int_equal(route_decide(route_current(ctx), 7, 1, &target), ROUTE_EXECUTE);

	/* A corrupted publication is refused; the next good one is taken. */
	assert_int_equal(tool("set-map %s --assign 9=1:0", path), 0);
	corrupt_active_slot(path);
	assert_int_equal(route_watch_region(ctx, &w), -SP_ECORRUPT);
	assert_int_equal(route_current(ctx)->epoch, 6);
	assert_int_equal(w.errors, 3);
	assert_int_equal(tool("set-map %s --epoch 8 --workers 2 --partitions 64 --assign 9=1:0 "
	                      "2>/dev/null",
	                      path),
	                 0);
	assert_int_equal(route_watch_region(ctx, &w), 1);
	assert_int_equal(route_current(ctx)->epoch, 8);
	assert_int_equal(route_decide(route_current(ctx), 9, 0, &target), ROUTE_EXECUTE);

	/* The tool refuses nonsense with a usage or validation error. */
	assert_int_equal(tool("set-map %s --assign 7=9:0 2>/dev/null", path), 1);
	assert_int_equal(tool("set-map %s --partitions 3 2>/dev/null", path), 2);
	assert_int_equal(tool("frobnicate %s 2>/dev/null", path), 2);
	assert_int_equal(tool("show %s --map", path), 0);
	assert_int_equal(tool("heartbeat %s --state running --epoch 6", path), 0);

	route_watch_fini(&w);
	sp_region_close(region);
	unlink(path);
	route_destroy(ctx);
}

/* The switch storm. */
struct sim_req {
	uint32_t id;
	uint32_t partition;
};

struct sim {
	struct route_ctx *ctx;
	struct rte_ring *inbound[SIM_WORKERS];
	struct sim_req *reqs;
	atomic_uint *exec_count;
	atomic_uint executing[SIM_PARTITIONS]; /* 0, or worker + 1 while executing */
	atomic_uint expected_owner[SIM_PARTITIONS];
	atomic_uint next_id;
	atomic_uint executed;
	atomic_uint violations;
	atomic_bool stop_generating;
	atomic_bool stop;
	uint64_t deferred[SIM_WORKERS];
	uint64_t handoffs[SIM_WORKERS];
};

struct sim_worker {
	struct sim *sim;
	unsigned int index;
};

static void
sim_execute(struct sim *s, unsigned int w, const struct sim_req *r)
{
	unsigned int prev = atomic_exchange(&s->executing[r->partition], w + 1);

	if (prev != 0)
		atomic_fetch_add(&s->violations, 1);
	if (atomic_load(&s->expected_owner[r->partition]) != w)
		atomic_fetch_add(&s->violations, 1);
	for (unsigned int i = 0; i < SIM_WORK_SPINS; i++)
		rte_pause();
	atomic_fetch_add(&s->exec_count[r->id], 1);
	atomic_store(&s->executing[r->partition], 0);
	atomic_fetch_add(&s->executed, 1);
}

static void
sim_handle(struct sim *s, unsigned int w, struct route_defer *d, const struct route_table *t,
           struct sim_req *r)
{
	uint16_t target = 0;

	switch (route_decide(t, r->partition, (uint16_t)w, &target)) {
	case ROUTE_EXECUTE:
		sim_execute(s, w, r);
		break;
	case ROUTE_DEFER:
		s->deferred[w]++;
		if (route_defer_push(d, r, r->partition) < 0 &&
		    rte_ring_enqueue(s->inbound[w], r) != 0)
			atomic_fetch_add(&s->violations, 1);
		break;
	case ROUTE_HANDOFF:
		s->handoffs[w]++;
		if (rte_ring_enqueue(s->inbound[target], r) != 0)
			atomic_fetch_add(&s->violations, 1);
		break;
	case ROUTE_REMOTE:
	case ROUTE_UNSERVED:
		atomic_fetch_add(&s->violations, 1);
		break;
	}
}

static void *
sim_worker_main(void *arg)
{
	struct sim_worker *sw = arg;
	struct sim *s = sw->sim;
	unsigned int w = sw->index;
	static struct route_defer defer[SIM_WORKERS];
	struct route_defer *d = &defer[w];
	uint64_t rng = test_seed * 2654435761u + w + 1;
	void *burst[SIM_BATCH];

	route_defer_init(d);
	if (route_worker_register(s->ctx, w) != 0)
		abort();
	for (;;) {
		const struct route_table *t = route_current(s->ctx);
		unsigned int n, generated, inflight;

		n = route_defer_take(d, t, burst, SIM_BATCH);
		for (unsigned int i = 0; i < n; i++)
			sim_handle(s, w, d, t, burst[i]);
		n = rte_ring_dequeue_burst(s->inbound[w], burst, SIM_BATCH, NULL);
		for (unsigned int i = 0; i < n; i++)
			sim_handle(s, w, d, t, burst[i]);
		generated = atomic_load(&s->next_id);
		inflight = generated - atomic_load(&s->executed);
		for (unsigned int i = 0; i < SIM_BATCH && !atomic_load(&s->stop_generating) &&
		                         inflight + i < SIM_INFLIGHT_MAX;
		     i++) {
			unsigned int id = atomic_fetch_add(&s->next_id, 1);
			struct sim_req *r;

			if (id >= SIM_REQUESTS_MAX) {
				atomic_fetch_sub(&s->next_id, 1);
				atomic_store(&s->stop_generating, true);
				break;
			}
			r = &s->reqs[id];
			r->id = id;
			r->partition = (uint32_t)(rng_next(&rng) % SIM_PARTITIONS);
			sim_handle(s, w, d, t, r);
		}
		route_quiescent(s->ctx, w);
		if (atomic_load(&s->stop))
			break;
	}
	route_worker_unregister(s->ctx, w);
	return NULL;
}

static void
sim_on_move(void *arg, uint32_t partition, uint16_t from, uint16_t to)
{
	struct sim *s = arg;

	/* Between the grace periods nobody may be executing the partition. */
	if (atomic_load(&s->executing[partition]) != 0)
		atomic_fetch_add(&s->violations, 1);
	if (atomic_load(&s->expected_owner[partition]) != from)
		atomic_fetch_add(&s->violations, 1);
	atomic_store(&s->expected_owner[partition], to);
}

static struct rte_ring *
sim_ring(unsigned int w)
{
	ssize_t bytes = rte_ring_get_memsize(SIM_RING_SIZE);
	struct rte_ring *r;
	char name[32];

	assert_true(bytes > 0);
	r = aligned_alloc(RTE_CACHE_LINE_SIZE, (size_t)bytes);
	assert_non_null(r);
	memset(r, 0, (size_t)bytes); /* as a memzone would be */
	snprintf(name, sizeof(name), "sim%u", w);
	assert_int_equal(rte_ring_init(r, name, SIM_RING_SIZE, RING_F_SC_DEQ), 0);
	return r;
}

static void
test_switch_storm_with_workers(void **state)
{
	static struct sim s;
	struct sim_worker sw[SIM_WORKERS];
	pthread_t th[SIM_WORKERS];
	struct route_config cfg = {.workers = SIM_WORKERS,
	                           .partitions = SIM_PARTITIONS,
	                           .node_id = 1,
	                           .on_move = sim_on_move,
	                           .on_move_arg = &s};
	struct sp_cluster_state *st = single_state(SIM_PARTITIONS, SIM_WORKERS, 1);
	uint64_t rng = test_seed | 1, deadline_ms = sp_mono_ms() + SIM_TIME_MAX_MS;
	uint64_t deferred = 0, handoffs = 0, switch_ns = 0, t0;
	char why[ROUTE_WHY_MAX];
	struct route_stats stats;
	uint32_t switches = 0, lost = 0, twice = 0;
	unsigned int generated;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.ctx = route_create(&cfg);
	assert_non_null(s.ctx);
	s.reqs = calloc(SIM_REQUESTS_MAX, sizeof(s.reqs[0]));
	s.exec_count = calloc(SIM_REQUESTS_MAX, sizeof(s.exec_count[0]));
	assert_non_null(s.reqs);
	assert_non_null(s.exec_count);
	for (uint32_t p = 0; p < SIM_PARTITIONS; p++)
		atomic_store(&s.expected_owner[p], p % SIM_WORKERS);
	for (unsigned int w = 0; w < SIM_WORKERS; w++)
		s.inbound[w] = sim_ring(w);
	for (unsigned int w = 0; w < SIM_WORKERS; w++) {
		sw[w].sim = &s;
		sw[w].index = w;
		assert_int_equal(pthread_create(&th[w], NULL, sim_worker_main, &sw[w]), 0);
	}
	for (uint32_t i = 0; i < SIM_SWITCHES && sp_mono_ms() < deadline_ms; i++) {
		/* Move about a quarter of the partitions to a random worker. */
		for (uint32_t p = 0; p < SIM_PARTITIONS; p++) {
			if (rng_next(&rng) % 4 == 0)
				st->map[p].worker = (uint16_t)(rng_next(&rng) % SIM_WORKERS);
		}
		st->epoch = i + 2;
		t0 = sp_mono_ns();
		assert_int_equal(route_switch(s.ctx, st, why, sizeof(why)), 0);
		switch_ns += sp_mono_ns() - t0;
		switches++;
		usleep(2000);
	}
	atomic_store(&s.stop_generating, true);
	while (sp_mono_ms() < deadline_ms + SIM_TIME_MAX_MS &&
	       atomic_load(&s.executed) != atomic_load(&s.next_id)) {
		route_poll(s.ctx);
		usleep(1000);
	}
	atomic_store(&s.stop, true);
	for (unsigned int w = 0; w < SIM_WORKERS; w++)
		pthread_join(th[w], NULL);
	route_poll(s.ctx);

	generated = atomic_load(&s.next_id);
	for (unsigned int id = 0; id < generated; id++) {
		lost += atomic_load(&s.exec_count[id]) == 0;
		twice += atomic_load(&s.exec_count[id]) > 1;
	}
	for (unsigned int w = 0; w < SIM_WORKERS; w++) {
		deferred += s.deferred[w];
		handoffs += s.handoffs[w];
	}
	route_stats_get(s.ctx, &stats);
	printf("storm: seed %llu: %u switches, %llu partitions moved, %u requests, %llu handed "
	       "off, %llu deferred, %llu tables built, %llu freed; a switch took %llu us\n",
	       (unsigned long long)test_seed, switches, (unsigned long long)stats.partitions_moved,
	       generated, (unsigned long long)handoffs, (unsigned long long)deferred,
	       (unsigned long long)stats.tables_built, (unsigned long long)stats.tables_freed,
	       (unsigned long long)(switch_ns / SP_MAX(switches, 1u) / 1000));
	assert_int_equal(atomic_load(&s.violations), 0);
	assert_int_equal(lost, 0);
	assert_int_equal(twice, 0);
	assert_int_equal(atomic_load(&s.executed), generated);
	assert_true(generated > 1000);
	assert_int_equal(stats.switches, switches);
	assert_true(stats.partitions_moved > 0);
	assert_true(handoffs > 0);
	assert_true(deferred > 0);
	assert_int_equal(stats.tables_freed, stats.tables_built - 1);
	for (uint32_t p = 0; p < SIM_PARTITIONS; p++)
		assert_int_equal(atomic_load(&s.expected_owner[p]), st->map[p].worker);

	route_destroy(s.ctx);
	for (unsigned int w = 0; w < SIM_WORKERS; w++)
		free(s.inbound[w]);
	free(s.reqs);
	free(s.exec_count);
	sp_cluster_state_free(st);
}

int
main(void)
{
	const char *env = getenv("SP_TEST_SEED");
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default_table_and_decide),
	        cmocka_unit_test(test_unserved_partitions),
	        cmocka_unit_test(test_clustered_modes),
	        cmocka_unit_test(test_partition_data_emptied),
	        cmocka_unit_test(test_mode_switch_busy),
	        cmocka_unit_test(test_remote_partitions_and_refusals),
	        cmocka_unit_test(test_grace_period_holds_tables),
	        cmocka_unit_test(test_defer_queue_bound_and_order),
	        cmocka_unit_test_teardown(test_watcher_follows_region, remove_region),
	        cmocka_unit_test(test_switch_storm_with_workers),
	};

	test_seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)sp_mono_ns();
	if (test_seed == 0)
		test_seed = 1;
	printf("route tests: seed %llu (replay with SP_TEST_SEED=%llu)\n",
	       (unsigned long long)test_seed, (unsigned long long)test_seed);
	sp_log_set_level(SP_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
