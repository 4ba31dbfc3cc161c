/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Routing tables and their RCU switch. Everything here except route_defer_take runs on
 * the main lcore; workers only use the inline functions of route.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_common.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "dataplane/route/route.h"
#include "wire/binproto.h"

SP_STATIC_ASSERT(ROUTE_WORKERS_MAX < ROUTE_WORKER_NONE, "worker indices stay below the markers");
SP_STATIC_ASSERT(ROUTE_WORKER_NONE < ROUTE_WORKER_REMOTE, "route_decide tests one bound");

/* A table no worker may use any more once the QSBR token has been passed by all. */
struct retired_table {
	struct route_table *table;
	uint64_t token;
};

struct route_move {
	uint32_t partition;
	uint16_t from_worker;
	uint16_t to_worker;
};

struct route_private {
	struct route_config cfg;
	uint64_t grace_timeout_ns;
	/* A switch between its two phases: `final` waits for pending_token. */
	struct route_table *final;
	uint64_t pending_token;
	struct route_move *moves; /* cfg.partitions entries */
	uint32_t move_count;
	struct retired_table retired[ROUTE_RETIRED_MAX];
	uint32_t retired_count;
	struct route_stats stats;
	/* The latest map installed by route_switch (a private copy, never published itself),
	 * and what the current table does with it. */
	struct route_table *latest;
	enum route_mode mode;
	uint64_t publications; /* tables published so far (route_table.publication) */
	uint64_t served_epoch; /* epoch of the map last served (SERVE mode) */
	uint32_t *released;    /* partitions a switch takes from this node (cfg.partitions) */
	uint32_t released_count;
};

/* Records the partitions cur serves locally and t does not. */
static void
find_released(struct route_private *p, const struct route_table *cur, const struct route_table *t)
{
	p->released_count = 0;
	for (uint32_t i = 0; i < t->partitions; i++)
		if (cur->entries[i].worker < ROUTE_WORKER_NONE &&
		    t->entries[i].worker >= ROUTE_WORKER_NONE)
			p->released[p->released_count++] = i;
	ASSERT(p->released_count <= t->partitions);
}

/* Empties the stores of released partitions once no worker executes them any more (the
 * grace period after the table that took them away passed): nothing stale stays behind
 * to be read by a request spanning partitions. */
static void
empty_released(struct route_private *p)
{
	for (uint32_t i = 0; i < p->released_count && p->cfg.on_acquire != NULL; i++)
		p->cfg.on_acquire(p->cfg.on_move_arg, p->released[i]);
	p->released_count = 0;
}

/* Empties the store of each partition t serves locally that prev did not (prev NULL: all
 * of t's). Only while no worker executes those partitions. */
static void
acquire(struct route_private *p, const struct route_table *prev, const struct route_table *t)
{
	for (uint32_t i = 0; i < t->partitions && p->cfg.on_acquire != NULL; i++) {
		bool now_local = t->entries[i].worker < ROUTE_WORKER_NONE;
		bool was_local = prev != NULL && prev->entries[i].worker < ROUTE_WORKER_NONE;
		if (now_local && !was_local) {
			p->cfg.on_acquire(p->cfg.on_move_arg, i);
			p->stats.acquired++;
		}
	}
}

static size_t
table_bytes(uint32_t partitions)
{
	return RTE_ALIGN_CEIL(route_table_size(partitions), RTE_CACHE_LINE_SIZE);
}

/* Allocates a zeroed table for P partitions. Returns NULL when out of memory. */
static struct route_table *
table_alloc(struct route_private *p)
{
	size_t bytes = table_bytes(p->cfg.partitions);
	struct route_table *t = aligned_alloc(RTE_CACHE_LINE_SIZE, bytes);

	if (t == NULL)
		return NULL;
	memset(t, 0, bytes);
	t->partitions = p->cfg.partitions;
	t->mask = p->cfg.partitions - 1;
	t->workers = p->cfg.workers;
	t->unserved_status = SP_BP_ST_NOT_READY;
	p->stats.tables_built++;
	ASSERT(sp_is_power_of_two(t->partitions));
	return t;
}

/* The writable owner-worker array of a table being built (route_owner_workers). */
static uint16_t *
owner_workers_of(struct route_table *t)
{
	return (uint16_t *)(void *)&t->entries[t->partitions];
}

static void
table_free(struct route_private *p, struct route_table *t)
{
	ASSERT(t != NULL);
	p->stats.tables_freed++;
	free(t);
}

/* Checks a table's invariants; for asserts and tests. */
static bool
table_valid(const struct route_table *t)
{
	uint32_t pending = 0;

	if (!sp_is_power_of_two(t->partitions) || t->mask != t->partitions - 1)
		return false;
	if (t->node_count == 0 || t->self_index >= t->node_count)
		return false;
	if (t->unserved_status != SP_BP_ST_NOT_READY && t->unserved_status != SP_BP_ST_NOT_SERVING)
		return false;
	for (uint32_t i = 0; i < t->partitions; i++) {
		const struct route_entry *e = &t->entries[i];

		if (e->worker != ROUTE_WORKER_REMOTE && e->worker != ROUTE_WORKER_NONE &&
		    e->worker >= t->workers)
			return false;
		if (e->node >= t->node_count)
			return false;
		pending += (e->flags & ROUTE_F_PENDING) != 0;
	}
	return pending == t->pending_count;
}

/* The default single-node table: partition p -> worker p % workers. */
static struct route_table *
table_default(struct route_private *p)
{
	struct route_table *t = table_alloc(p);

	if (t == NULL)
		return NULL;
	t->node_count = 1;
	t->self_index = 0;
	t->nodes[0].node_id = p->cfg.node_id;
	t->nodes[0].worker_count = (uint16_t)p->cfg.workers;
	for (uint32_t i = 0; i < t->partitions; i++) {
		t->entries[i].worker = (uint16_t)(i % p->cfg.workers);
		t->entries[i].node = 0;
		owner_workers_of(t)[i] = t->entries[i].worker;
	}
	ASSERT(table_valid(t));
	return t;
}

/* A table that serves nothing: every entry ROUTE_WORKER_NONE answered `status`. Its
 * header (epoch, nodes) comes from the latest map when there is one. */
static struct route_table *
table_unserved(struct route_private *p, uint8_t status)
{
	struct route_table *t = table_alloc(p);

	if (t == NULL)
		return NULL;
	if (p->latest != NULL) {
		t->epoch = p->latest->epoch;
		t->generation = p->latest->generation;
		t->node_count = p->latest->node_count;
		t->self_index = p->latest->self_index;
		memcpy(t->nodes, p->latest->nodes, sizeof(t->nodes));
	} else {
		t->node_count = 1;
		t->self_index = 0;
		t->nodes[0].node_id = p->cfg.node_id;
		t->nodes[0].worker_count = (uint16_t)p->cfg.workers;
	}
	t->unserved_status = status;
	t->serves_nothing = 1;
	for (uint32_t i = 0; i < t->partitions; i++) {
		t->entries[i].worker = ROUTE_WORKER_NONE;
		t->entries[i].node = (uint8_t)t->self_index;
	}
	ASSERT(table_valid(t));
	return t;
}

struct route_ctx *
route_create(const struct route_config *cfg)
{
	struct route_ctx *ctx = NULL;
	struct route_private *p = NULL;
	struct route_table *t;
	size_t qsbr_bytes;

	if (cfg == NULL || cfg->workers == 0 || cfg->workers > ROUTE_WORKERS_MAX ||
	    !sp_is_power_of_two(cfg->partitions) || cfg->partitions > SP_PARTITIONS_MAX ||
	    cfg->node_id == 0) {
		errno = EINVAL;
		return NULL;
	}
	ctx = calloc(1, sizeof(*ctx));
	p = calloc(1, sizeof(*p));
	if (ctx == NULL || p == NULL)
		goto fail;
	ctx->priv = p;
	p->cfg = *cfg;
	p->grace_timeout_ns =
	        (uint64_t)(cfg->grace_timeout_ms ? cfg->grace_timeout_ms : ROUTE_GRACE_TIMEOUT_MS) *
	        SP_NS_PER_MS;
	p->moves = calloc(cfg->partitions, sizeof(p->moves[0]));
	p->released = calloc(cfg->partitions, sizeof(p->released[0]));
	qsbr_bytes = rte_rcu_qsbr_get_memsize(cfg->workers);
	ctx->qsbr =
	        aligned_alloc(RTE_CACHE_LINE_SIZE, RTE_ALIGN_CEIL(qsbr_bytes, RTE_CACHE_LINE_SIZE));
	if (p->moves == NULL || p->released == NULL || ctx->qsbr == NULL)
		goto fail;
	if (rte_rcu_qsbr_init(ctx->qsbr, cfg->workers) != 0)
		goto fail;
	p->mode = cfg->clustered ? ROUTE_MODE_NOT_READY : ROUTE_MODE_SERVE;
	t = cfg->clustered ? table_unserved(p, SP_BP_ST_NOT_READY) : table_default(p);
	if (t == NULL)
		goto fail;
	atomic_store_explicit(&ctx->current, t, memory_order_release);
	ASSERT(route_current(ctx) == t);
	return ctx;
fail:
	if (p != NULL) {
		free(p->moves);
		free(p->released);
	}
	if (ctx != NULL)
		free(ctx->qsbr);
	free(p);
	free(ctx);
	errno = ENOMEM;
	return NULL;
}

void
route_destroy(struct route_ctx *ctx)
{
	struct route_private *p;

	if (ctx == NULL)
		return;
	p = ctx->priv;
	for (uint32_t i = 0; i < p->retired_count; i++)
		free(p->retired[i].table);
	free(p->final);
	free(p->latest);
	free(atomic_load_explicit(&ctx->current, memory_order_relaxed));
	free(p->moves);
	free(p->released);
	free(ctx->qsbr);
	free(p);
	free(ctx);
}

int
route_worker_register(struct route_ctx *ctx, unsigned int worker)
{
	ASSERT(ctx != NULL);
	if (worker >= ctx->priv->cfg.workers)
		return -EINVAL;
	if (rte_rcu_qsbr_thread_register(ctx->qsbr, worker) != 0)
		return -EINVAL;
	rte_rcu_qsbr_thread_online(ctx->qsbr, worker);
	return 0;
}

void
route_worker_unregister(struct route_ctx *ctx, unsigned int worker)
{
	ASSERT(ctx != NULL);
	ASSERT(worker < ctx->priv->cfg.workers);
	rte_rcu_qsbr_thread_offline(ctx->qsbr, worker);
	rte_rcu_qsbr_thread_unregister(ctx->qsbr, worker);
}

/* Frees every retired table whose grace period is over. Returns how many it freed. */
static int
reclaim(struct route_ctx *ctx)
{
	struct route_private *p = ctx->priv;
	uint32_t kept = 0;
	int freed = 0;

	for (uint32_t i = 0; i < p->retired_count; i++) {
		struct retired_table rt = p->retired[i];

		if (rte_rcu_qsbr_check(ctx->qsbr, rt.token, false) == 1) {
			table_free(p, rt.table);
			freed++;
		} else {
			p->retired[kept++] = rt;
		}
	}
	p->retired_count = kept;
	ASSERT(kept <= ROUTE_RETIRED_MAX);
	return freed;
}

/* Makes t the current table and retires the previous one. The caller made sure a retired
 * slot is free. Returns the grace-period token of the retired table. */
static uint64_t
publish(struct route_ctx *ctx, struct route_table *t)
{
	struct route_private *p = ctx->priv;
	struct route_table *old;
	uint64_t token;

	VERIFY(p->retired_count < ROUTE_RETIRED_MAX);
	ASSERT(table_valid(t));
	/* A new number per publication: a table allocated where a freed one lived is still
	 * told apart by readers that cache what they derived from a table. */
	t->publication = ++p->publications;
	old = atomic_exchange_explicit(&ctx->current, t, memory_order_acq_rel);
	token = rte_rcu_qsbr_start(ctx->qsbr);
	p->retired[p->retired_count].table = old;
	p->retired[p->retired_count].token = token;
	p->retired_count++;
	return token;
}

/* Waits, at most grace_timeout_ns, until every online worker passed token. Returns 0 or
 * -SP_EBUSY (counted). */
static int
grace_wait(struct route_ctx *ctx, uint64_t token)
{
	struct route_private *p = ctx->priv;
	uint64_t deadline_ns = sp_mono_ns() + p->grace_timeout_ns;

	ASSERT(p->grace_timeout_ns > 0);
	while (rte_rcu_qsbr_check(ctx->qsbr, token, false) != 1) {
		if (sp_mono_ns() >= deadline_ns) {
			p->stats.grace_timeouts++;
			return -SP_EBUSY;
		}
		usleep(ROUTE_GRACE_POLL_US);
	}
	return 0;
}

/* Second phase of a switch, once nobody runs the table before the pending one: hands the
 * moved partitions over and publishes the final table. */
static void
finish_pending(struct route_ctx *ctx)
{
	struct route_private *p = ctx->priv;
	struct route_table *fin = p->final;

	ASSERT(fin != NULL);
	ASSERT(fin->pending_count == 0);
	for (uint32_t i = 0; i < p->move_count && p->cfg.on_move != NULL; i++)
		p->cfg.on_move(p->cfg.on_move_arg, p->moves[i].partition, p->moves[i].from_worker,
		               p->moves[i].to_worker);
	p->final = NULL;
	publish(ctx, fin);
	p->stats.switches++;
	p->stats.partitions_moved += p->move_count;
	SP_LOG_INFO("route", "epoch %" PRIu64 " final: %u partitions moved between workers",
	            fin->epoch, p->move_count);
	p->move_count = 0;
}

int
route_poll(struct route_ctx *ctx)
{
	struct route_private *p = ctx->priv;
	int freed = reclaim(ctx);

	ASSERT(p->retired_count <= ROUTE_RETIRED_MAX);
	if (p->final != NULL && p->retired_count < ROUTE_RETIRED_MAX &&
	    rte_rcu_qsbr_check(ctx->qsbr, p->pending_token, false) == 1)
		finish_pending(ctx);
	return freed + reclaim(ctx);
}

bool
route_switch_pending(const struct route_ctx *ctx)
{
	ASSERT(ctx != NULL);
	return ctx->priv->final != NULL;
}

void
route_stats_get(const struct route_ctx *ctx, struct route_stats *out)
{
	ASSERT(ctx != NULL);
	ASSERT(out != NULL);
	*out = ctx->priv->stats;
}

/* Checks that st fits this dataplane (P, this node, its worker count). */
static int
state_fits(const struct route_private *p, const struct sp_cluster_state *st, char *why,
           size_t why_len)
{
	const struct sp_member *self;
	int rc = sp_cluster_state_validate(st, why, why_len);

	if (rc < 0)
		return rc;
	if (st->partitions != p->cfg.partitions)
		return sp_explain(why, why_len, -EINVAL,
		                  "map has %u partitions, this dataplane was started with %u; "
		                  "restart it with --partitions %u",
		                  st->partitions, p->cfg.partitions, st->partitions);
	self = sp_cluster_find_member(st, st->self_node_id);
	ASSERT(self != NULL);
	if (self->worker_count > p->cfg.workers)
		return sp_explain(
		        why, why_len, -EINVAL,
		        "map gives this node (%u) %u workers, this dataplane runs %u; give it "
		        "more worker lcores or fix the member's worker count",
		        self->node_id, self->worker_count, p->cfg.workers);
	return 0;
}

/* Builds the final table of st (validated by state_fits). */
static struct route_table *
table_from_state(struct route_private *p, const struct sp_cluster_state *st)
{
	struct route_table *t = table_alloc(p);
	struct sp_member_index ix;

	if (t == NULL)
		return NULL;
	t->epoch = st->epoch;
	t->generation = st->generation;
	t->node_count = st->member_count;
	t->unserved_status = SP_BP_ST_NOT_SERVING; /* only fenced partitions are unserved */
	for (uint32_t i = 0; i < st->member_count; i++) {
		const struct sp_member *m = &st->members[i];
		struct route_node *n = &t->nodes[i];

		n->node_id = m->node_id;
		n->ipv4_be = m->ipv4_be;
		memcpy(n->mac, m->mac, sizeof(n->mac));
		n->binary_port = m->binary_port;
		n->memcached_port = m->memcached_port;
		n->worker_count = m->worker_count;
		if (m->node_id == st->self_node_id)
			t->self_index = i;
	}
	sp_member_index_build(&ix, st);
	for (uint32_t i = 0; i < t->partitions; i++) {
		int at = sp_member_index_find(&ix, st->map[i].node_id);
		uint8_t node;

		VERIFY(at >= 0); /* state_fits validated the map */
		node = (uint8_t)at;
		t->entries[i].node = node;
		t->entries[i].worker =
		        node == t->self_index ? st->map[i].worker : ROUTE_WORKER_REMOTE;
		owner_workers_of(t)[i] = st->map[i].worker;
		/* A partition being moved between nodes is served by nobody until the move is
		 * final (docs/control-plane.md, "Moving partitions between nodes"). */
		if (st->map[i].flags & SP_MAP_F_FENCED)
			t->entries[i].worker = ROUTE_WORKER_NONE;
	}
	ASSERT(table_valid(t));
	return t;
}

/* Records the worker-to-worker moves from cur to fin; returns how many. */
static uint32_t
find_moves(struct route_private *p, const struct route_table *cur, const struct route_table *fin)
{
	uint32_t n = 0;

	ASSERT(cur->pending_count == 0);
	for (uint32_t i = 0; i < fin->partitions; i++) {
		uint16_t from = cur->entries[i].worker;
		uint16_t to = fin->entries[i].worker;

		if (from >= ROUTE_WORKER_NONE || to >= ROUTE_WORKER_NONE || from == to)
			continue;
		p->moves[n].partition = i;
		p->moves[n].from_worker = from;
		p->moves[n].to_worker = to;
		n++;
	}
	ASSERT(n <= fin->partitions);
	return n;
}

/* Finishes an earlier switch and frees what can be freed, so a new one can start. */
static int
settle(struct route_ctx *ctx)
{
	struct route_private *p = ctx->priv;

	if (p->final != NULL) {
		if (grace_wait(ctx, p->pending_token) < 0)
			return -SP_EBUSY;
		route_poll(ctx);
	}
	reclaim(ctx);
	/* A switch publishes twice; make room for both retirements, oldest first. */
	for (uint32_t i = 0; i < ROUTE_RETIRED_MAX && p->retired_count + 2 > ROUTE_RETIRED_MAX;
	     i++) {
		if (grace_wait(ctx, p->retired[0].token) < 0)
			return -SP_EBUSY;
		reclaim(ctx);
	}
	ASSERT(p->final == NULL);
	return p->retired_count + 2 > ROUTE_RETIRED_MAX ? -SP_EBUSY : 0;
}

/* Keeps a private copy of t as the latest installed map. Returns 0 or -ENOMEM. */
static int
remember_latest(struct route_private *p, const struct route_table *t)
{
	size_t bytes = table_bytes(p->cfg.partitions);
	struct route_table *copy = aligned_alloc(RTE_CACHE_LINE_SIZE, bytes);

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, t, bytes);
	ASSERT(copy->pending_count == 0);
	free(p->latest);
	p->latest = copy;
	return 0;
}

int
route_set_mode(struct route_ctx *ctx, enum route_mode mode)
{
	struct route_private *p = ctx->priv;
	struct route_table *t;
	uint8_t status = mode == ROUTE_MODE_NOT_READY ? SP_BP_ST_NOT_READY : SP_BP_ST_NOT_SERVING;
	uint64_t token;
	int rc;

	ASSERT(mode <= ROUTE_MODE_NOT_SERVING);
	if (mode == p->mode)
		return 0;
	if (mode == ROUTE_MODE_SERVE && p->latest == NULL)
		return -SP_ENOTFOUND;
	rc = settle(ctx);
	if (rc < 0)
		return rc;
	/* Back to serving after an unserving table: every table before the unserving one is
	 * out of use already (route_set_mode waited for its grace period, and settle made
	 * sure of every retired one), so no worker can still execute a partition that the
	 * latest map gives to another worker. */
	if (mode == ROUTE_MODE_SERVE) {
		t = table_alloc(p);
		if (t == NULL)
			return -ENOMEM;
		memcpy(t, p->latest, table_bytes(p->cfg.partitions));
		/* Nothing is executed under the unserving table: a map that changed meanwhile
		 * may have moved partitions away and back, so their data is not trusted. */
		if (p->served_epoch != 0 && p->served_epoch != t->epoch)
			acquire(p, NULL, t);
		p->served_epoch = t->epoch;
	} else {
		t = table_unserved(p, status);
		if (t == NULL)
			return -ENOMEM;
	}
	token = publish(ctx, t);
	p->mode = mode;
	SP_LOG_INFO("route", "epoch %" PRIu64 ": %s", t->epoch,
	            mode == ROUTE_MODE_SERVE       ? "serving"
	            : mode == ROUTE_MODE_NOT_READY ? "serving nothing (not ready)"
	                                           : "serving nothing (not serving)");
	rc = grace_wait(ctx, token);
	reclaim(ctx);
	return rc;
}

enum route_mode
route_mode(const struct route_ctx *ctx)
{
	ASSERT(ctx != NULL);
	return ctx->priv->mode;
}

bool
route_has_map(const struct route_ctx *ctx)
{
	ASSERT(ctx != NULL);
	return ctx->priv->latest != NULL;
}

uint64_t
route_latest_epoch(const struct route_ctx *ctx)
{
	ASSERT(ctx != NULL);
	return ctx->priv->latest != NULL ? ctx->priv->latest->epoch : 0;
}

int
route_switch(struct route_ctx *ctx, const struct sp_cluster_state *st, char *why, size_t why_len)
{
	struct route_private *p = ctx->priv;
	struct route_table *cur, *fin, *pend;
	uint64_t token;
	int rc;

	ASSERT(st != NULL);
	rc = settle(ctx);
	if (rc < 0)
		return sp_explain(
		        why, why_len, rc,
		        "the previous switch still waits for a worker to pass a quiescent "
		        "state (grace period over %" PRIu64 " ms)",
		        (uint64_t)(p->grace_timeout_ns / SP_NS_PER_MS));
	rc = state_fits(p, st, why, why_len);
	if (rc < 0) {
		p->stats.rejected++;
		return rc;
	}
	cur = atomic_load_explicit(&ctx->current, memory_order_relaxed);
	fin = table_from_state(p, st);
	if (fin == NULL)
		return sp_explain(why, why_len, -ENOMEM, "no memory for a routing table");
	rc = remember_latest(p, fin);
	if (rc < 0) {
		table_free(p, fin);
		return sp_explain(why, why_len, rc, "no memory for a routing table");
	}
	if (p->mode != ROUTE_MODE_SERVE) {
		/* Nothing is served: record the map, and show its epoch in a new unserving
		 * table; route_set_mode(SERVE) publishes it. */
		uint8_t status = cur->unserved_status;

		table_free(p, fin);
		fin = table_unserved(p, status);
		if (fin == NULL)
			return sp_explain(why, why_len, -ENOMEM, "no memory for a routing table");
		token = publish(ctx, fin);
		p->stats.switches++;
		SP_LOG_INFO("route", "epoch %" PRIu64 " installed, not served yet", fin->epoch);
		grace_wait(ctx, token);
		reclaim(ctx);
		return 0;
	}
	p->move_count = find_moves(p, cur, fin);
	/* Partitions arriving from another node (or from nobody) are served by no local
	 * worker under cur: empty their stores before any table gives them one. */
	acquire(p, cur, fin);
	find_released(p, cur, fin);
	p->served_epoch = fin->epoch;
	if (p->move_count == 0) {
		token = publish(ctx, fin);
		p->stats.switches++;
		SP_LOG_INFO("route", "epoch %" PRIu64 " installed, no partition moved", fin->epoch);
		if (grace_wait(ctx, token) == 0)
			empty_released(p);
		reclaim(ctx);
		return 0;
	}
	pend = table_alloc(p);
	if (pend == NULL) {
		table_free(p, fin);
		return sp_explain(why, why_len, -ENOMEM, "no memory for a routing table");
	}
	memcpy(pend, fin, table_bytes(p->cfg.partitions));
	for (uint32_t i = 0; i < p->move_count; i++)
		pend->entries[p->moves[i].partition].flags |= ROUTE_F_PENDING;
	pend->pending_count = p->move_count;
	p->final = fin;
	p->pending_token = publish(ctx, pend);
	SP_LOG_INFO("route", "epoch %" PRIu64 " pending: %u partitions moving between workers",
	            fin->epoch, p->move_count);
	if (grace_wait(ctx, p->pending_token) < 0)
		return sp_explain(why, why_len, -SP_EBUSY,
		                  "epoch %" PRIu64
		                  " is pending: a worker has not passed a quiescent "
		                  "state within %" PRIu64 " ms; route_poll will finish the switch",
		                  fin->epoch, (uint64_t)(p->grace_timeout_ns / SP_NS_PER_MS));
	empty_released(p); /* the pending table already took them away, and cur is gone */
	finish_pending(ctx);
	token = p->retired[p->retired_count - 1].token;
	grace_wait(ctx, token);
	reclaim(ctx);
	return 0;
}

int
route_watch_init(struct route_watch *w, struct sp_region *region)
{
	ASSERT(w != NULL);
	ASSERT(region != NULL);
	memset(w, 0, sizeof(*w));
	w->region = region;
	w->state = sp_cluster_state_new(sp_region_partitions_max(region));
	return w->state == NULL ? -ENOMEM : 0;
}

void
route_watch_fini(struct route_watch *w)
{
	if (w == NULL)
		return;
	sp_cluster_state_free(w->state);
	w->state = NULL;
}

int
route_watch_region(struct route_ctx *ctx, struct route_watch *w)
{
	char why[ROUTE_WHY_MAX];
	uint64_t gen;
	int rc;

	ASSERT(w->state != NULL);
	ASSERT(w->region != NULL);
	route_poll(ctx);
	gen = sp_region_generation(w->region);
	if (gen == w->seen_generation || gen == w->failed_generation)
		return 0;
	rc = sp_region_read(w->region, w->state, why, sizeof(why));
	if (rc == -SP_EBUSY || rc == -SP_ENOTFOUND || rc == -ENOMEM)
		return rc; /* transient: try again at the next step */
	if (rc == 0) {
		gen = w->state->generation; /* the read may have found a newer publication */
		rc = route_switch(ctx, w->state, why, sizeof(why));
		if (rc == 0 || (rc == -SP_EBUSY && route_switch_pending(ctx))) {
			w->seen_generation = gen;
			SP_LOG_INFO("route", "region generation %" PRIu64 " epoch %" PRIu64 " %s",
			            gen, w->state->epoch, rc == 0 ? "installed" : "pending");
			return 1;
		}
		if (rc == -SP_EBUSY || rc == -ENOMEM)
			return rc;
	}
	/* Refused (corrupt, or not for this dataplane): logged once, not retried. */
	w->failed_generation = gen;
	w->errors++;
	SP_LOG_ERR("route", "region generation %" PRIu64 " refused, keeping epoch %" PRIu64 ": %s",
	           gen, route_current(ctx)->epoch, why);
	return rc;
}

unsigned int
route_defer_take(struct route_defer *d, const struct route_table *t, void **out, unsigned int n)
{
	uint32_t count = d->count;
	uint32_t kept = 0;
	unsigned int taken = 0;

	ASSERT(count <= ROUTE_DEFER_MAX);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t from = (d->head + i) % ROUTE_DEFER_MAX;
		uint32_t part = d->partitions[from];
		bool pending = (route_lookup(t, part).flags & ROUTE_F_PENDING) != 0;

		if (!pending && taken < n) {
			out[taken++] = d->items[from];
			continue;
		}
		uint32_t to = (d->head + kept) % ROUTE_DEFER_MAX;

		d->items[to] = d->items[from];
		d->partitions[to] = part;
		kept++;
	}
	d->count = kept;
	ASSERT(taken + kept == count);
	return taken;
}

unsigned int
route_defer_drain(struct route_defer *d, void **out, unsigned int n)
{
	unsigned int taken = 0;

	ASSERT(d->count <= ROUTE_DEFER_MAX);
	while (taken < n && d->count > 0) {
		out[taken++] = d->items[d->head];
		d->head = (d->head + 1) % ROUTE_DEFER_MAX;
		d->count--;
	}
	ASSERT(taken <= n);
	return taken;
}
