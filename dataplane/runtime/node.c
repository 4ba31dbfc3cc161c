/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A node's life cycle after EAL started: checks, port, stores, routing table, hand-off
 * rings, workers and telemetry (dp_node_setup), and the orderly stop with the leak check and
 * the final report (dp_node_teardown).
 */
#include "node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "dataplane/route/route.h"
#include "dataplane/store/store.h"
#include "mcport.h"
#include "taskport.h"
#include "service.h"
#include "telemetry.h"
#include "worker.h"
#include "unmap_guard.h"

#define PORT_CHECK_INTERVAL_MS 1000u /* dp_node_watch_port */
#define MOD                    "node"

/* Logs what EAL ended up with, and checks lcores against workers. Returns 0 or -EINVAL. */
static int
choose_workers(struct dp_runtime *rt)
{
	unsigned int lcores = rte_lcore_count();
	unsigned int lc;
	unsigned int i = 0;

	ASSERT(lcores >= 1);
	rt->workers = rt->cfg.workers != 0 ? rt->cfg.workers : lcores - 1;
	if (rt->workers == 0 || rt->workers + 1 > lcores) {
		SP_LOG_ERR(MOD,
		           "lcores: %u given, %u workers need %u (one main lcore for housekeeping "
		           "plus one per worker); pass -l 0-%u or --lcores, or fewer --workers",
		           lcores, rt->workers == 0 ? 1 : rt->workers,
		           (rt->workers == 0 ? 1 : rt->workers) + 1,
		           rt->workers == 0 ? 1 : rt->workers);
		return -EINVAL;
	}
	if (rt->workers > DP_WORKERS_MAX) {
		SP_LOG_ERR(MOD, "workers: %u lcores give %u workers, at most %u; pass --workers",
		           lcores, rt->workers, DP_WORKERS_MAX);
		return -EINVAL;
	}
	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (i < rt->workers)
			rt->lcore_of[i++] = lc;
	}
	ASSERT(i == rt->workers);
	return 0;
}

/* Checks memory against what the node will take. Returns 0 or -ENOMEM (logged). */
static int
check_memory(const struct dp_runtime *rt, const struct dp_hugepages *huge)
{
	uint32_t pool = dp_port_pool_need((uint16_t)rt->workers, DP_RX_DESC, DP_TX_DESC);
	uint64_t need_mb = dp_memory_need_mb(rt->workers, rt->cfg.memory_mb, pool);
	uint64_t have_mb;

	ASSERT(rt->workers > 0);
	if (rte_eal_has_hugepages()) {
		have_mb = dp_hugepages_free_mb(huge);
		if (have_mb < need_mb) {
			SP_LOG_ERR(MOD,
			           "hugepages: %" PRIu64 " of %" PRIu64
			           " free (2 MiB), the node needs "
			           "about %" PRIu64
			           " MiB (%u workers x %u MiB stores + %u mbufs + %u "
			           "MiB); run SP_HUGEPAGES=%" PRIu64
			           " scripts/setup, lower --memory-mb, "
			           "or pass --no-huge -m %" PRIu64,
			           huge->free_2m, huge->total_2m, need_mb, rt->workers,
			           rt->cfg.memory_mb, pool, DP_MEMORY_OVERHEAD_MB, need_mb / 2 + 1,
			           need_mb);
			return -ENOMEM;
		}
	} else {
		have_mb = rte_eal_get_physmem_size() >> 20;
		if (have_mb < need_mb) {
			SP_LOG_ERR(MOD,
			           "memory: EAL has %" PRIu64
			           " MiB (-m), the node needs about %" PRIu64
			           " MiB (%u workers x %u MiB stores + %u mbufs + %u MiB); pass -m "
			           "%" PRIu64 " before '--' or lower --memory-mb",
			           have_mb, need_mb, rt->workers, rt->cfg.memory_mb, pool,
			           DP_MEMORY_OVERHEAD_MB, need_mb);
			return -ENOMEM;
		}
	}
	SP_LOG_INFO(MOD, "memory: about %" PRIu64 " MiB needed, %" PRIu64 " MiB %s", need_mb,
	            have_mb, rte_eal_has_hugepages() ? "of free hugepages" : "given with -m");
	return 0;
}

/*
 * Allocates and initialises each partition's store on the socket of the lcore of its
 * first owner (partition p -> worker p % W, as the default routing table). Returns 0 or
 * -ENOMEM (logged).
 */
static int
create_stores(struct dp_runtime *rt)
{
	/* CAS versions step by the partition count from the partition: unique node-wide. */
	struct store_params params = {
	        .bytes = rt->partition_bytes, .item_bytes_avg = 0, .cas_stride = rt->partitions};
	uint32_t p;

	ASSERT(rt->partitions > 0);
	ASSERT(rt->partition_bytes >= STORE_BYTES_MIN);
	if (store_memsize(&params) == 0) {
		SP_LOG_ERR(MOD,
		           "store: %zu bytes per partition is not a usable budget; raise "
		           "--memory-mb",
		           rt->partition_bytes);
		return -EINVAL;
	}
	rt->stores = rte_zmalloc("sp_stores", rt->partitions * sizeof(rt->stores[0]), 0);
	rt->store_mem = rte_zmalloc("sp_store_mem", rt->partitions * sizeof(rt->store_mem[0]), 0);
	rt->layouts = rte_zmalloc("sp_store_layouts", rt->partitions * sizeof(rt->layouts[0]),
	                          RTE_CACHE_LINE_SIZE);
	if (rt->stores == NULL || rt->store_mem == NULL || rt->layouts == NULL)
		return -ENOMEM;
	for (p = 0; p < rt->partitions; p++) {
		unsigned int lc = rt->lcore_of[p % rt->workers];
		int socket = (int)rte_lcore_to_socket_id(lc);

		rt->store_mem[p] =
		        rte_malloc_socket("sp_store", rt->partition_bytes, STORE_MEM_ALIGN, socket);
		if (rt->store_mem[p] == NULL) {
			SP_LOG_ERR(MOD,
			           "store: cannot allocate %zu bytes for partition %u on socket "
			           "%d; lower --memory-mb or give EAL more memory",
			           rt->partition_bytes, p, socket);
			return -ENOMEM;
		}
		params.cas_base = p;
		rt->stores[p] = store_init(rt->store_mem[p], rt->partition_bytes, &params);
		if (rt->stores[p] == NULL) {
			SP_LOG_ERR(MOD, "store: init of partition %u (%zu bytes) failed: %s", p,
			           rt->partition_bytes, strerror(errno));
			return -EINVAL;
		}
		store_layout_get(rt->stores[p], &rt->layouts[p]);
	}
	SP_LOG_INFO(MOD,
	            "stores: %u partitions x %zu KiB (--memory-mb %u per worker over up to "
	            "%u partitions each)",
	            rt->partitions, rt->partition_bytes >> 10, rt->cfg.memory_mb,
	            (rt->partitions + rt->workers - 1) / rt->workers);
	return 0;
}

static void
free_stores(struct dp_runtime *rt, struct dp_store_totals *totals)
{
	struct store_stats ss;
	uint32_t p;

	memset(totals, 0, sizeof(*totals));
	rte_free(rt->layouts);
	rt->layouts = NULL;
	if (rt->store_mem == NULL)
		return;
	for (p = 0; p < rt->partitions; p++) {
		if (rt->stores != NULL && rt->stores[p] != NULL) {
			store_stats_get(rt->stores[p], &ss);
			totals->items += ss.items;
			totals->bytes += ss.bytes;
			totals->evictions += ss.evictions;
			totals->expired += ss.expired;
			totals->hits += ss.hits;
			totals->misses += ss.misses;
		}
		rte_free(rt->store_mem[p]);
	}
	rte_free(rt->store_mem);
	rte_free(rt->stores);
	rt->store_mem = NULL;
	rt->stores = NULL;
}

static void
on_partition_move(void *arg, uint32_t partition, uint16_t from_worker, uint16_t to_worker)
{
	(void)arg;
	/* Stores are indexed by partition: the new owner simply starts using the same one. */
	SP_LOG_INFO(MOD, "partition %u: worker %u -> %u", partition, from_worker, to_worker);
}

/* A partition arrives at this node: what its store holds may be older than writes
 * acknowledged by its owner meanwhile (a cache loses, it never serves stale data). */
static void
on_partition_acquire(void *arg, uint32_t partition)
{
	struct dp_runtime *rt = arg;

	uint32_t now_s = 1;

	ASSERT(partition < rt->partitions);
	if (rt->tsc_hz > 0) /* the workers' store clock (worker.c, store_now_s) */
		now_s = (uint32_t)((rte_rdtsc() - rt->tsc_base) / rt->tsc_hz) + 1;
	store_flush_all(rt->stores[partition], 0, now_s);
}

void
dp_node_heartbeat(struct dp_runtime *rt, uint32_t state)
{
	const struct route_table *t = route_current(rt->route);
	struct sp_dp_status s;
	struct dp_worker_stats sum;
	struct dp_port_totals port;

	ASSERT(rt->region != NULL);
	ASSERT(rt->route != NULL);
	memset(&s, 0, sizeof(s));
	dp_stats_sum(rt->stats, rt->workers, &sum);
	dp_port_totals_get(rt, &port);
	s.heartbeat_mono_ns = sp_mono_ns();
	s.heartbeat_wall_ns = sp_wall_s() * SP_NS_PER_S;
	s.applied_epoch = route_has_map(rt->route) ? route_latest_epoch(rt->route) : t->epoch;
	s.applied_generation = t->generation;
	s.pid = (uint32_t)getpid();
	s.state = state;
	s.workers = rt->workers;
	s.partitions = rt->partitions;
	s.ipv4_be = rt->cfg.ip_be;
	memcpy(s.mac, rt->net.mac, sizeof(s.mac));
	s.binary_port = rt->cfg.port_base;
	s.memcached_port = rt->cfg.memcached_port;
	s.serving = (uint16_t)rt->serving;
	s.refused_generation = rt->watch_ready ? rt->watch.failed_generation : 0;
	s.counters.rx_pkts = sum.rx_pkts;
	s.counters.tx_pkts = sum.tx_pkts;
	s.counters.requests = sum.requests;
	s.counters.hits = sum.hits;
	s.counters.misses = sum.misses;
	s.counters.evictions = sum.store_evictions;
	s.counters.ring_full_drops = sum.ring_full_drops;
	s.counters.tx_drops = sum.tx_drops;
	s.counters.bad_pkts = sum.bad_pkts;
	s.counters.rx_nombuf = port.rx_nombuf;
	s.counters.imissed = port.imissed;
	s.counters.forwarded = sum.handoff_out;
	s.counters.deferred = sum.deferred;
	s.counters.wrong_node = sum.wrong_node;
	sp_region_status_write(rt->region, &s);
}

int
dp_node_setup(struct dp_runtime *rt, const struct dp_hugepages *huge)
{
	char err[DP_ERRBUF_LEN];
	struct route_config rc_cfg;
	int socket_of[DP_WORKERS_MAX];
	uint32_t i;
	int rc;

	rc = choose_workers(rt);
	if (rc != 0)
		return rc;
	rt->partitions = rt->cfg.partitions;
	if (dp_config_check_workers(&rt->cfg, rt->workers, err, sizeof(err)) != 0 ||
	    dp_check_partition_budget(rt->cfg.memory_mb, rt->partitions, rt->workers,
	                              SP_MAX(STORE_BYTES_MIN, DP_PARTITION_BYTES_MIN),
	                              &rt->partition_bytes, err, sizeof(err)) != 0) {
		SP_LOG_ERR(MOD, "%s", err);
		return -EINVAL;
	}
	rc = check_memory(rt, huge);
	if (rc != 0)
		return rc;
	rc = dp_port_open(&rt->port, &rt->cfg, (uint16_t)rt->workers);
	if (rc != 0)
		return rc;
	memcpy(rt->net.mac, rt->port.mac.addr_bytes, sizeof(rt->net.mac));
	rt->net.ip_be = rt->cfg.ip_be;
	rc = create_stores(rt);
	if (rc != 0)
		return rc;
	memset(&rc_cfg, 0, sizeof(rc_cfg));
	rc_cfg.workers = rt->workers;
	rc_cfg.partitions = rt->partitions;
	rc_cfg.node_id = 1;
	rc_cfg.on_move = on_partition_move;
	rc_cfg.on_move_arg = rt;
	rc_cfg.on_acquire = on_partition_acquire;
	/* With a region the node serves nothing until its first map and a valid lease. */
	rc_cfg.clustered = rt->cfg.state_region != NULL;
	rt->serving = rc_cfg.clustered ? SP_DP_NOT_READY : SP_DP_UNCLUSTERED;
	rt->route = route_create(&rc_cfg);
	if (rt->route == NULL) {
		SP_LOG_ERR(MOD, "routing table: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < rt->workers; i++)
		socket_of[i] = (int)rte_lcore_to_socket_id(rt->lcore_of[i]);
	rc = dp_handoff_create(&rt->handoff, rt->workers, socket_of);
	if (rc != 0)
		return rc;
	for (i = 0; i < rt->workers; i++) {
		rt->w[i] = dp_worker_create(rt, (uint16_t)i);
		if (rt->w[i] == NULL)
			return -ENOMEM;
	}
	if (rt->cfg.state_region != NULL) {
		char why[SP_CLUSTER_WHY_MAX] = "";

		rc = sp_region_open(rt->cfg.state_region, true, &rt->region, why, sizeof(why));
		if (rc != 0) {
			SP_LOG_ERR(MOD, "--state-region %s: %s", rt->cfg.state_region, why);
			return rc;
		}
		rc = route_watch_init(&rt->watch, rt->region);
		if (rc != 0)
			return rc;
		rt->watch_ready = true;
		dp_node_heartbeat(rt, SP_DP_STARTING);
	}
	rt->tsc_hz = rte_get_tsc_hz();
	rt->tsc_base = rte_rdtsc();
	if (rt->cfg.memcached_port != 0) {
		rt->mc = dp_mc_create(rt);
		if (rt->mc == NULL)
			return -ENOMEM;
	}
	/* Registered operations: their states next to the stores, the binary hook. */
	rc = dp_tasks_setup(rt);
	if (rc != 0)
		return rc;
	return dp_telemetry_register(rt);
}

int
dp_node_teardown(struct dp_runtime *rt, bool launched)
{
	struct dp_store_totals store;
	struct dp_port_totals port;
	uint32_t in_use;
	uint32_t pool_size = rt->port.pool_size;
	unsigned int ring_mbufs;
	uint32_t i;
	int code = 0;

	atomic_store(&rt->stop, true);
	if (launched)
		rte_eal_mp_wait_lcore();
	dp_unmap_guard_remove();
	dp_port_totals_get(rt, &port);
	dp_telemetry_detach();
	if (rt->region != NULL) {
		if (rt->route != NULL)
			dp_node_heartbeat(rt, SP_DP_STOPPED);
		if (rt->watch_ready)
			route_watch_fini(&rt->watch);
		sp_region_close(rt->region);
		rt->region = NULL;
	}
	dp_port_close(&rt->port);
	ring_mbufs = dp_handoff_destroy(&rt->handoff);
	for (unsigned int id = 0; launched && id < DP_SVC_COUNT; id++) {
		const struct dp_service_ops *ops = dp_service_get((enum dp_service_id)id);

		if (ops->print != NULL && dp_service_enabled(rt, (enum dp_service_id)id))
			ops->print(stdout, rt);
	}
	dp_mc_destroy(rt->mc);
	rt->mc = NULL;
	dp_tasks_teardown(rt);
	for (i = 0; i < rt->workers; i++) {
		dp_worker_free(rt->w[i]);
		rt->w[i] = NULL;
	}
	in_use = dp_port_mbufs_in_use(&rt->port);
	free_stores(rt, &store);
	route_destroy(rt->route);
	rt->route = NULL;
	dp_port_free_pool(&rt->port);
	if (!launched)
		return 0;
	dp_stats_print(stdout, rt->stats, rt->workers, &port, &store);
	struct dp_unmap_guard_stats ug;
	dp_unmap_guard_stats_get(&ug);
	printf("unmap guard: %" PRIu64 " unmaps waited for the workers (%" PRIu64
	       " timed out), %" PRIu64 " direct\n",
	       ug.waits, ug.timeouts, ug.direct);
	printf("mbufs: %u in use of %u at exit (%u were still in hand-off rings)\n", in_use,
	       pool_size, ring_mbufs);
	if (in_use != 0) {
		SP_LOG_ERR(MOD, "mbuf leak: %u of %u mbufs never came back to the pool", in_use,
		           pool_size);
		code = DP_EXIT_LEAK;
	}
	fflush(stdout);
	return code;
}

int
dp_node_launch(struct dp_runtime *rt)
{
	unsigned int lc;
	uint32_t i = 0;
	int rc = 0;

	ASSERT(rt->workers > 0);
	ASSERT(rt->w[0] != NULL);
	/* From here on, a port's memory is unmapped only once no worker is in a burst
	 * (unmap_guard.h: memif tears regions down under a running rx burst). */
	dp_unmap_guard_install(rt->route->qsbr, 0);
	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (i < rt->workers && rc == 0)
			rc = rte_eal_remote_launch(dp_worker_main, rt->w[i++], lc);
	}
	return rc;
}

int
dp_node_watch_port(struct dp_runtime *rt, uint64_t now_ms)
{
	uint32_t i;
	int rc;

	if (now_ms < rt->next_port_check_ms)
		return 0;
	rt->next_port_check_ms = now_ms + PORT_CHECK_INTERVAL_MS;
	if (!atomic_load(&rt->port_paused) && !dp_port_iface_replaced(&rt->port))
		return 0;
	SP_LOG_WARN(MOD, "port %u (%s): interface %s was replaced; attaching the device again",
	            rt->port.port_id, rt->port.name, rt->port.iface);
	atomic_store_explicit(&rt->port_paused, true, memory_order_release);
	/* Every worker passes a quiescent state after its bursts: then none is in one. */
	rte_rcu_qsbr_synchronize(rt->route->qsbr, RTE_QSBR_THRID_INVALID);
	rc = dp_port_reattach(&rt->port, &rt->cfg);
	if (rc != 0)
		return rc;
	memcpy(rt->net.mac, rt->port.mac.addr_bytes, sizeof(rt->net.mac));
	for (i = 0; i < rt->workers; i++)
		dp_worker_set_port(rt->w[i], rt->port.port_id);
	atomic_store_explicit(&rt->port_paused, false, memory_order_release);
	return 1;
}
