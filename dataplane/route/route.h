/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The dataplane's routing table: partition -> owner (a worker of this node, or another
 * node). Tables are immutable once published. Workers read the current one through one
 * pointer (route_current) and report a quiescent state once per loop iteration
 * (route_quiescent); the main lcore builds new tables off the hot path, publishes them and
 * frees an old table only after every online worker has been quiescent since (rte_rcu_qsbr).
 *
 * Moving a partition between two workers of this node (route_switch):
 *   1. publish a table in which the moved partitions already name the new owner but are
 *      marked PENDING: the old owner stops executing them and hands what it receives to
 *      the new owner; the new owner defers them (route_defer_push) instead of executing;
 *   2. wait for a grace period: every worker has left the old table, so nobody executes a
 *      moved partition any more; call the on_move hook (store hand-over) for each;
 *   3. publish the final table (PENDING cleared): the new owner executes, first what it
 *      deferred; wait for a second grace period and free the pending table.
 * So a partition never has two executing workers and no request is dropped for a move.
 *
 * The worker's decision per request (route_decide):
 *   EXECUTE  owner is this worker and the partition is settled;
 *   DEFER    owner is this worker but the partition is arriving (PENDING): hold it;
 *   HANDOFF  owner is another local worker: enqueue to its inbound ring (this includes a
 *            request received from a ring for a partition this worker no longer owns);
 *   REMOTE   owner is another node: the runtime answers WRONG_NODE with that node's
 *            address (table->nodes[target]) so a partition-aware client re-sends there;
 *   UNSERVED nobody serves the partition here (entry.worker ROUTE_WORKER_NONE): the node
 *            has no map yet, its ownership lease ran out, or it left the cluster. The
 *            runtime answers table->unserved_status (binary protocol NOT_READY or
 *            NOT_SERVING; memcached "SERVER_ERROR not ready" / "SERVER_ERROR not serving")
 *            and never touches the partition's store.
 */
#ifndef SP_DATAPLANE_ROUTE_H
#define SP_DATAPLANE_ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_rcu_qsbr.h>

#include "cluster/partmap.h"
#include "cluster/region.h"
#include "common/errors.h"
#include "common/verify.h"

#define ROUTE_WORKERS_MAX      SP_WORKERS_MAX
#define ROUTE_WORKER_REMOTE    UINT16_C(0xffff) /* entry.worker of a remote partition */
#define ROUTE_WORKER_NONE      UINT16_C(0xfffe) /* entry.worker: nobody serves it here */
#define ROUTE_F_PENDING        UINT8_C(0x01)    /* moved here; the new owner defers it */
#define ROUTE_GRACE_TIMEOUT_MS 2000u            /* default bound of one grace-period wait */
#define ROUTE_GRACE_POLL_US    50u              /* sleep between grace-period checks */
#define ROUTE_RETIRED_MAX      8u               /* replaced tables waiting for their grace period */
#define ROUTE_DEFER_MAX        1024u            /* requests one worker holds for moves */
#define ROUTE_WHY_MAX          SP_CLUSTER_WHY_MAX

/* Where one partition goes: 4 bytes, so a 64 KiB-partition table is 256 KiB. */
struct route_entry {
	uint16_t worker; /* local worker index, ROUTE_WORKER_REMOTE or ROUTE_WORKER_NONE */
	uint8_t flags;   /* ROUTE_F_* */
	uint8_t node;    /* index into route_table.nodes (the owning node) */
};

/* A node's dataplane address, copied from the region's members table. */
struct route_node {
	uint32_t node_id;
	uint32_t ipv4_be;
	uint8_t mac[6];
	uint16_t binary_port;
	uint16_t memcached_port;
	uint16_t worker_count;
};

/* An immutable routing table. */
struct route_table {
	uint64_t epoch;
	uint64_t generation; /* region publication it came from; 0 for the default table */
	/* Set when the table is published, unique per context (0 for the first, default
	 * table): what a reader caching state derived from a table compares, since a new
	 * table may be allocated at a freed one's address. */
	uint64_t publication;
	uint32_t partitions; /* P, a power of two */
	uint32_t mask;       /* P - 1 */
	uint32_t workers;    /* local workers */
	uint32_t node_count;
	uint32_t self_index; /* this node's index in nodes */
	uint32_t pending_count;
	/* What UNSERVED partitions answer: enum sp_bp_status SP_BP_ST_NOT_READY or
	 * SP_BP_ST_NOT_SERVING (wire/binproto.h). Tables set it whether or not they have
	 * ROUTE_WORKER_NONE entries; new tables start with NOT_READY. */
	uint8_t unserved_status;
	/* Every entry is ROUTE_WORKER_NONE (no map yet, no lease, removed): requests that
	 * span partitions (memcached multi-key get) are refused with unserved_status too. */
	uint8_t serves_nothing;
	struct route_node nodes[SP_MEMBERS_MAX];
	struct route_entry entries[]; /* P entries */
};

/* Bytes of a table of P partitions: the header, P entries, then P owner workers. */
static inline size_t
route_table_size(uint32_t partitions)
{
	return sizeof(struct route_table) + (size_t)partitions * sizeof(struct route_entry) +
	       (size_t)partitions * sizeof(uint16_t);
}

/*
 * For each partition, the owning worker's index on its own node, whichever node owns it
 * (entries[] only knows local workers): what ROUTE replies and WRONG_PARTITION redirects
 * tell clients. P values stored after entries[] in the same allocation, so a table copied
 * with route_table_size() bytes carries them.
 */
static inline const uint16_t *
route_owner_workers(const struct route_table *t)
{
	return (const uint16_t *)(const void *)&t->entries[t->partitions];
}

enum route_action {
	ROUTE_EXECUTE = 0,
	ROUTE_DEFER,
	ROUTE_HANDOFF,
	ROUTE_REMOTE,
	ROUTE_UNSERVED,
};

/* Called once per moved partition while no worker executes it (between the grace
 * periods), e.g. to hand the partition's store over. Runs on the main lcore. */
typedef void (*route_move_fn)(void *arg, uint32_t partition, uint16_t from_worker,
                              uint16_t to_worker);

struct route_config {
	uint32_t workers;          /* local workers, [1, ROUTE_WORKERS_MAX] */
	uint32_t partitions;       /* P: power of two, [1, SP_PARTITIONS_MAX] */
	uint32_t node_id;          /* this node's id in single-node mode (nonzero) */
	uint32_t grace_timeout_ms; /* 0 = ROUTE_GRACE_TIMEOUT_MS */
	/* Clustered (a region is configured): the first table serves nothing (every partition
	 * ROUTE_WORKER_NONE, answered NOT_READY) until a map is installed and
	 * route_set_serving says so. Otherwise the first table is the default single-node
	 * map and the context serves from the start. */
	bool clustered;
	route_move_fn on_move; /* may be NULL */
	void *on_move_arg;
	/* Called (main lcore, on_move_arg) for each partition this node starts to serve that
	 * it did not serve in the table before, while no worker executes it: the partition's
	 * data may be older than writes acknowledged elsewhere meanwhile, so the store is
	 * emptied. Also for every local partition when serving resumes at another epoch than
	 * the one served before (maps may have moved it away and back meanwhile). May be NULL. */
	void (*on_acquire)(void *arg, uint32_t partition);
};

struct route_stats {
	uint64_t switches; /* tables that became final */
	uint64_t tables_built;
	uint64_t tables_freed;
	uint64_t partitions_moved; /* worker-to-worker moves completed */
	uint64_t grace_timeouts;   /* grace waits that hit grace_timeout_ms */
	uint64_t acquired;         /* partitions whose store on_acquire emptied */
	uint64_t rejected;         /* states refused (wrong P, workers, missing node) */
};

struct route_private;

/*
 * The routing context. Workers use only `current` and `qsbr`, through the inline
 * functions below; the rest belongs to the main lcore.
 */
struct route_ctx {
	_Atomic(struct route_table *) current;
	struct rte_rcu_qsbr *qsbr;
	struct route_private *priv;
};

/*
 * Creates a context whose current table is the default single-node map (partition p ->
 * worker p % workers, epoch 0). Does not need the EAL. Returns NULL with errno EINVAL
 * (bad config) or ENOMEM.
 */
struct route_ctx *route_create(const struct route_config *cfg);

/* Frees the context and every table. Workers must have stopped. NULL is allowed. */
void route_destroy(struct route_ctx *ctx);

/* Registers worker (its index) as an RCU reader and puts it online. Call on the worker
 * before its first route_current. Returns 0 or -EINVAL. */
int route_worker_register(struct route_ctx *ctx, unsigned int worker);

/* Takes worker offline and unregisters it (e.g. when it exits). */
void route_worker_unregister(struct route_ctx *ctx, unsigned int worker);

/* Hot path: the table to use for this loop iteration. Valid until route_quiescent. */
static inline const struct route_table *
route_current(const struct route_ctx *ctx)
{
	return atomic_load_explicit(&((struct route_ctx *)ctx)->current, memory_order_acquire);
}

/* Hot path: the worker holds no table pointer any more. Once per loop iteration. */
static inline void
route_quiescent(struct route_ctx *ctx, unsigned int worker)
{
	rte_rcu_qsbr_quiescent(ctx->qsbr, worker);
}

/* A worker going to sleep (idle back-off) goes offline so grace periods do not wait for
 * it, and online again before its next route_current. */
static inline void
route_worker_offline(struct route_ctx *ctx, unsigned int worker)
{
	rte_rcu_qsbr_thread_offline(ctx->qsbr, worker);
}

static inline void
route_worker_online(struct route_ctx *ctx, unsigned int worker)
{
	rte_rcu_qsbr_thread_online(ctx->qsbr, worker);
}

/* Hot path: the entry of a partition (< t->partitions). */
static inline struct route_entry
route_lookup(const struct route_table *t, uint32_t partition)
{
	ASSERT(partition < t->partitions);
	return t->entries[partition & t->mask];
}

/*
 * Hot path: what worker `self` does with a request for `partition`. *target receives the
 * worker (HANDOFF) or the node index (REMOTE, and UNSERVED, where it means nothing).
 */
static inline enum route_action
route_decide(const struct route_table *t, uint32_t partition, uint16_t self, uint16_t *target)
{
	struct route_entry e = route_lookup(t, partition);

	/* One compare on the common path: both markers sit above every worker index. */
	if (e.worker >= ROUTE_WORKER_NONE) {
		*target = e.node;
		return e.worker == ROUTE_WORKER_REMOTE ? ROUTE_REMOTE : ROUTE_UNSERVED;
	}
	*target = e.worker;
	if (e.worker != self)
		return ROUTE_HANDOFF;
	return (e.flags & ROUTE_F_PENDING) ? ROUTE_DEFER : ROUTE_EXECUTE;
}

/*
 * Main lcore: installs the map of st (validated; P must equal the configured P, the
 * local member's workers must fit the configured workers, self_node_id must be a member),
 * moving partitions in the two phases described above. Blocks for at most two grace
 * periods of grace_timeout_ms each. Returns 0 when the new table is final; -SP_EBUSY when
 * a grace period timed out (the switch stays safely half-done and route_poll or the next
 * route_switch finishes it); -EINVAL / -SP_EMALFORMED with a sentence in why when st is
 * refused (the current table stays); -ENOMEM.
 */
int route_switch(struct route_ctx *ctx, const struct sp_cluster_state *st, char *why,
                 size_t why_len);

/*
 * Main lcore, non-blocking: finishes a half-done switch whose grace period has passed and
 * frees retired tables whose readers are gone. Returns the number of tables freed.
 */
int route_poll(struct route_ctx *ctx);

/* True while a switch waits for its first grace period (some partitions are PENDING). */
bool route_switch_pending(const struct route_ctx *ctx);

void route_stats_get(const struct route_ctx *ctx, struct route_stats *out);

/* What the current table does with keys: serve the installed map, or answer every key
 * with a status (the node has no map yet, no valid lease, or was removed). */
enum route_mode {
	ROUTE_MODE_SERVE = 0,
	ROUTE_MODE_NOT_READY,   /* every partition unserved, answered NOT_READY */
	ROUTE_MODE_NOT_SERVING, /* every partition unserved, answered NOT_SERVING */
};

/*
 * Main lcore: switches between serving the latest installed map and serving nothing. The
 * lease check of the data path is this table swap, done by the main lcore (workers never
 * read a clock for it). Going to NOT_READY / NOT_SERVING publishes a table whose every
 * entry is ROUTE_WORKER_NONE with that status and waits for its grace period, so on return
 * no worker executes anything; going back to SERVE publishes the latest map installed by
 * route_switch (which, while not serving, only records it). Returns 0 (also when already
 * in that mode); -SP_ENOTFOUND for SERVE before any map was installed; -SP_EBUSY when a
 * grace period timed out, either before the new table could be published (an earlier
 * switch has not settled: nothing changed, route_mode() still says the old mode) or after
 * it (the new table is current; its grace period is incomplete); -ENOMEM (nothing
 * changed). Callers check route_mode() to know whether the switch happened.
 */
int route_set_mode(struct route_ctx *ctx, enum route_mode mode);

/* The mode of the current table, and whether a map was ever installed (route_switch). */
enum route_mode route_mode(const struct route_ctx *ctx);
bool route_has_map(const struct route_ctx *ctx);

/* Epoch of the latest installed map, served or not (0 before the first). */
uint64_t route_latest_epoch(const struct route_ctx *ctx);

/* Watches a shared region for new publications (main lcore). */
struct route_watch {
	struct sp_region *region;       /* not owned */
	struct sp_cluster_state *state; /* read buffer, sized at init */
	uint64_t seen_generation;       /* last publication installed */
	uint64_t failed_generation;     /* last publication refused (not retried) */
	uint64_t errors;
};

/* Prepares w for region (allocates the read buffer). Returns 0 or -ENOMEM. */
int route_watch_init(struct route_watch *w, struct sp_region *region);
void route_watch_fini(struct route_watch *w);

/*
 * One housekeeping step: when the region has a publication newer than the one installed,
 * reads it and calls route_switch; also calls route_poll. Costs one atomic load when
 * nothing changed. Returns 1 when a new table became current, 0 when nothing changed, or
 * a negative code (logged once per publication; the current table stays; a refused
 * publication is not retried, a busy or timed-out one is).
 */
int route_watch_region(struct route_ctx *ctx, struct route_watch *w);

/*
 * A worker's bounded queue of requests deferred while their partition is PENDING. The
 * worker pushes on ROUTE_DEFER and, at the start of each iteration, pops what it may now
 * execute. Single-threaded (owned by one worker); no allocation.
 */
struct route_defer {
	uint32_t head;
	uint32_t count;
	uint64_t deferred_total;
	uint64_t full_total; /* pushes refused at ROUTE_DEFER_MAX */
	void *items[ROUTE_DEFER_MAX];
	uint32_t partitions[ROUTE_DEFER_MAX];
};

static inline void
route_defer_init(struct route_defer *d)
{
	d->head = 0;
	d->count = 0;
	d->deferred_total = 0;
	d->full_total = 0;
}

/* Appends; returns 0, or -SP_EFULL at ROUTE_DEFER_MAX (counted; the caller re-enqueues the
 * request to its own inbound ring instead). */
static inline int
route_defer_push(struct route_defer *d, void *item, uint32_t partition)
{
	uint32_t tail;

	ASSERT(d->count <= ROUTE_DEFER_MAX);
	if (d->count == ROUTE_DEFER_MAX) {
		d->full_total++;
		return -SP_EFULL;
	}
	tail = (d->head + d->count) % ROUTE_DEFER_MAX;
	d->items[tail] = item;
	d->partitions[tail] = partition;
	d->count++;
	d->deferred_total++;
	return 0;
}

/*
 * Moves up to n deferred requests that t no longer marks PENDING into out (in arrival
 * order; those still pending stay queued, in order). Returns how many it moved; their
 * route_decide against t may be EXECUTE or HANDOFF (if ownership moved on again).
 */
unsigned int route_defer_take(struct route_defer *d, const struct route_table *t, void **out,
                              unsigned int n);

/*
 * Removes up to n of the oldest deferred requests whatever the table says (e.g. to release
 * them when the worker exits). Returns how many it moved into out.
 */
unsigned int route_defer_drain(struct route_defer *d, void **out, unsigned int n);

#endif
