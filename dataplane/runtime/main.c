/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-dp: the dataplane process. EAL options before `--`, Shardplane's after
 * (see --help). main() checks the environment, opens the port, allocates the stores,
 * starts one worker per lcore, then keeps house on the main lcore (routing table
 * switches, heartbeat, periodic stats) until SIGINT/SIGTERM, and shuts down cleanly:
 * workers stop, the port stops and closes, every mbuf must be back in the pool, EAL is
 * cleaned up, and the final counters are printed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include "checks.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "dataplane/route/route.h"
#include "dataplane/store/store.h"
#include "runtime.h"
#include "telemetry.h"
#include "worker.h"

#define MOD "main"

/* The main lcore's housekeeping period. */
#define HOUSEKEEPING_PERIOD_US 10000u
/* How often the heartbeat goes to the shared region. */
#define HEARTBEAT_INTERVAL_MS 100u
/* Exit codes. */
#define EXIT_USAGE 2
#define EXIT_LEAK  3

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static volatile sig_atomic_t signal_seen;

static void
on_signal(int sig)
{
	signal_seen = sig;
}

/* Returns the index of "--" in argv, or argc when there is none. */
static int
find_separator(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return i;
	}
	return argc;
}

static bool
has_arg(int argc, char **argv, const char *prefix)
{
	size_t n = strlen(prefix);
	int i;

	for (i = 1; i < argc; i++) {
		if (strncmp(argv[i], prefix, n) == 0)
			return true;
	}
	return false;
}

static const char *usage_prog = "shardplane-dp";

static void
eal_usage_hook(const char *prog)
{
	(void)prog;
	dp_config_usage(stdout, usage_prog);
}

/* Logs what EAL ended up with, and checks lcores against workers. Returns 0 or -EINVAL. */
static int
choose_workers(void)
{
	unsigned int lcores = rte_lcore_count();
	unsigned int lc;
	unsigned int i = 0;

	ASSERT(lcores >= 1);
	rt.workers = rt.cfg.workers != 0 ? rt.cfg.workers : lcores - 1;
	if (rt.workers == 0 || rt.workers + 1 > lcores) {
		SP_LOG_ERR(MOD,
		           "lcores: %u given, %u workers need %u (one main lcore for housekeeping "
		           "plus one per worker); pass -l 0-%u or --lcores, or fewer --workers",
		           lcores, rt.workers == 0 ? 1 : rt.workers,
		           (rt.workers == 0 ? 1 : rt.workers) + 1,
		           rt.workers == 0 ? 1 : rt.workers);
		return -EINVAL;
	}
	if (rt.workers > DP_WORKERS_MAX) {
		SP_LOG_ERR(MOD, "workers: %u lcores give %u workers, at most %u; pass --workers",
		           lcores, rt.workers, DP_WORKERS_MAX);
		return -EINVAL;
	}
	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (i < rt.workers)
			rt.lcore_of[i++] = lc;
	}
	ASSERT(i == rt.workers);
	return 0;
}

/* Checks memory against what the node will take. Returns 0 or -ENOMEM (logged). */
static int
check_memory(const struct dp_hugepages *huge)
{
	uint32_t pool = dp_port_pool_need((uint16_t)rt.workers, DP_RX_DESC, DP_TX_DESC);
	uint64_t need_mb = dp_memory_need_mb(rt.workers, rt.cfg.memory_mb, pool);
	uint64_t have_mb;

	ASSERT(rt.workers > 0);
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
			           huge->free_2m, huge->total_2m, need_mb, rt.workers,
			           rt.cfg.memory_mb, pool, DP_MEMORY_OVERHEAD_MB, need_mb / 2 + 1,
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
			           have_mb, need_mb, rt.workers, rt.cfg.memory_mb, pool,
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
create_stores(void)
{
	struct store_params params = {.bytes = rt.partition_bytes, .item_bytes_avg = 0};
	uint32_t p;

	ASSERT(rt.partitions > 0);
	ASSERT(rt.partition_bytes >= STORE_BYTES_MIN);
	if (store_memsize(&params) == 0) {
		SP_LOG_ERR(MOD,
		           "store: %zu bytes per partition is not a usable budget; raise "
		           "--memory-mb",
		           rt.partition_bytes);
		return -EINVAL;
	}
	rt.stores = rte_zmalloc("sp_stores", rt.partitions * sizeof(rt.stores[0]), 0);
	rt.store_mem = rte_zmalloc("sp_store_mem", rt.partitions * sizeof(rt.store_mem[0]), 0);
	if (rt.stores == NULL || rt.store_mem == NULL)
		return -ENOMEM;
	for (p = 0; p < rt.partitions; p++) {
		unsigned int lc = rt.lcore_of[p % rt.workers];
		int socket = (int)rte_lcore_to_socket_id(lc);

		rt.store_mem[p] =
		        rte_malloc_socket("sp_store", rt.partition_bytes, STORE_MEM_ALIGN, socket);
		if (rt.store_mem[p] == NULL) {
			SP_LOG_ERR(MOD,
			           "store: cannot allocate %zu bytes for partition %u on socket "
			           "%d; lower --memory-mb or give EAL more memory",
			           rt.partition_bytes, p, socket);
			return -ENOMEM;
		}
		rt.stores[p] = store_init(rt.store_mem[p], rt.partition_bytes, &params);
		if (rt.stores[p] == NULL) {
			SP_LOG_ERR(MOD, "store: init of partition %u (%zu bytes) failed: %s", p,
			           rt.partition_bytes, strerror(errno));
			return -EINVAL;
		}
	}
	SP_LOG_INFO(MOD,
	            "stores: %u partitions x %zu KiB (--memory-mb %u per worker over up to "
	            "%u partitions each)",
	            rt.partitions, rt.partition_bytes >> 10, rt.cfg.memory_mb,
	            (rt.partitions + rt.workers - 1) / rt.workers);
	return 0;
}

static void
free_stores(struct dp_store_totals *totals)
{
	struct store_stats ss;
	uint32_t p;

	memset(totals, 0, sizeof(*totals));
	if (rt.store_mem == NULL)
		return;
	for (p = 0; p < rt.partitions; p++) {
		if (rt.stores != NULL && rt.stores[p] != NULL) {
			store_stats_get(rt.stores[p], &ss);
			totals->items += ss.items;
			totals->bytes += ss.bytes;
			totals->evictions += ss.evictions;
			totals->expired += ss.expired;
			totals->hits += ss.hits;
			totals->misses += ss.misses;
		}
		rte_free(rt.store_mem[p]);
	}
	rte_free(rt.store_mem);
	rte_free(rt.stores);
	rt.store_mem = NULL;
	rt.stores = NULL;
}

static void
on_partition_move(void *arg, uint32_t partition, uint16_t from_worker, uint16_t to_worker)
{
	(void)arg;
	/* Stores are indexed by partition: the new owner simply starts using the same one. */
	SP_LOG_INFO(MOD, "partition %u: worker %u -> %u", partition, from_worker, to_worker);
}

/* Fills the region heartbeat from the counters. */
static void
write_heartbeat(struct sp_region *region, uint32_t state)
{
	const struct route_table *t = route_current(rt.route);
	struct sp_dp_status s;
	struct dp_worker_stats sum;
	struct dp_port_totals port;

	memset(&s, 0, sizeof(s));
	dp_stats_sum(rt.stats, rt.workers, &sum);
	dp_port_totals_get(&rt, &port);
	s.heartbeat_mono_ns = sp_mono_ns();
	s.heartbeat_wall_ns = sp_wall_s() * SP_NS_PER_S;
	s.applied_epoch = t->epoch;
	s.applied_generation = t->generation;
	s.pid = (uint32_t)getpid();
	s.state = state;
	s.workers = rt.workers;
	s.partitions = rt.partitions;
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
	sp_region_status_write(region, &s);
}

/* The main lcore's loop: until a signal, switch tables, beat, print stats. */
static void
housekeeping(struct sp_region *region, struct route_watch *watch)
{
	uint64_t next_stats_ms = sp_mono_ms() + (uint64_t)rt.cfg.stats_interval_s * 1000;
	uint64_t next_beat_ms = 0;
	struct dp_port_totals port;

	while (signal_seen == 0) {
		uint64_t now_ms = sp_mono_ms();

		if (region != NULL) {
			route_watch_region(rt.route, watch);
			if (now_ms >= next_beat_ms) {
				write_heartbeat(region, SP_DP_RUNNING);
				next_beat_ms = now_ms + HEARTBEAT_INTERVAL_MS;
			}
		} else {
			route_poll(rt.route);
		}
		if (rt.cfg.stats_interval_s != 0 && now_ms >= next_stats_ms) {
			dp_port_totals_get(&rt, &port);
			dp_stats_print_line(stdout, rt.stats, rt.workers, &port);
			next_stats_ms = now_ms + (uint64_t)rt.cfg.stats_interval_s * 1000;
		}
		rte_delay_us_sleep(HOUSEKEEPING_PERIOD_US);
	}
	SP_LOG_INFO(MOD, "signal %d: stopping", (int)signal_seen);
}

static int
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
		return -errno;
	return 0;
}

/*
 * Starts EAL with argv[0..eal_argc). Unless the user chose otherwise (--huge-unlink=...,
 * --in-memory, --no-huge), adds --huge-unlink so that no hugepage file outlives the
 * process, even one that crashes. Returns rte_eal_init's result.
 */
static int
eal_start(int eal_argc, char **argv)
{
	static char huge_unlink[] = "--huge-unlink";
	char **eal_argv;
	int n = eal_argc;
	int rc;

	ASSERT(eal_argc >= 1);
	eal_argv = calloc((size_t)eal_argc + 2, sizeof(*eal_argv));
	VERIFY(eal_argv != NULL);
	memcpy(eal_argv, argv, (size_t)eal_argc * sizeof(*eal_argv));
	if (!has_arg(eal_argc, argv, "--huge-unlink") && !has_arg(eal_argc, argv, "--in-memory") &&
	    !has_arg(eal_argc, argv, "--no-huge"))
		eal_argv[n++] = huge_unlink;
	eal_argv[n] = NULL;
	/* EAL keeps pointers into argv (e.g. the program name), so eal_argv lives on. */
	rc = rte_eal_init(n, eal_argv);
	ASSERT(rc <= n);
	return rc;
}

/* Parses Shardplane's options (after "--"). Exits on --help and on errors. */
static void
parse_options(int argc, char **argv, int sep)
{
	char err[DP_ERRBUF_LEN] = "";
	char **sp_argv;
	int sp_argc = argc - sep;
	bool help = has_arg(sep, argv, "--help") || has_arg(sep, argv, "-h");

	sp_argv = calloc((size_t)sp_argc + 1, sizeof(*sp_argv));
	VERIFY(sp_argv != NULL);
	sp_argv[0] = argv[0];
	for (int i = 1; i < sp_argc; i++)
		sp_argv[i] = argv[sep + i];
	dp_config_defaults(&rt.cfg);
	if (dp_config_parse(&rt.cfg, sp_argc, sp_argv, err, sizeof(err)) != 0 && !help) {
		fprintf(stderr, "%s: %s\n", usage_prog, err);
		free(sp_argv);
		exit(EXIT_USAGE);
	}
	free(sp_argv);
	if (help || rt.cfg.help) {
		dp_config_usage(stdout, usage_prog);
		exit(0);
	}
	if (rt.cfg.memcached_port != 0) {
		fprintf(stderr,
		        "%s: --memcached-port %u: this build has no memcached protocol yet "
		        "(dataplane/memcache); drop the flag\n",
		        usage_prog, rt.cfg.memcached_port);
		exit(EXIT_USAGE);
	}
	sp_log_set_level(rt.cfg.log_level);
}

/* Everything between EAL start-up and the workers' launch. Returns 0 or negative. */
static int
setup(const struct dp_hugepages *huge, struct sp_region **region, struct route_watch *watch)
{
	char err[DP_ERRBUF_LEN];
	struct route_config rc_cfg;
	int socket_of[DP_WORKERS_MAX];
	uint32_t i;
	int rc;

	rc = choose_workers();
	if (rc != 0)
		return rc;
	rt.partitions = rt.cfg.partitions;
	rt.stats = worker_stats;
	if (dp_config_check_workers(&rt.cfg, rt.workers, err, sizeof(err)) != 0 ||
	    dp_check_partition_budget(rt.cfg.memory_mb, rt.partitions, rt.workers,
	                              SP_MAX(STORE_BYTES_MIN, DP_PARTITION_BYTES_MIN),
	                              &rt.partition_bytes, err, sizeof(err)) != 0) {
		SP_LOG_ERR(MOD, "%s", err);
		return -EINVAL;
	}
	rc = check_memory(huge);
	if (rc != 0)
		return rc;
	rc = dp_port_open(&rt.port, &rt.cfg, (uint16_t)rt.workers);
	if (rc != 0)
		return rc;
	memcpy(rt.net.mac, rt.port.mac.addr_bytes, sizeof(rt.net.mac));
	rt.net.ip_be = rt.cfg.ip_be;
	rc = create_stores();
	if (rc != 0)
		return rc;
	memset(&rc_cfg, 0, sizeof(rc_cfg));
	rc_cfg.workers = rt.workers;
	rc_cfg.partitions = rt.partitions;
	rc_cfg.node_id = 1;
	rc_cfg.on_move = on_partition_move;
	rt.route = route_create(&rc_cfg);
	if (rt.route == NULL) {
		SP_LOG_ERR(MOD, "routing table: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < rt.workers; i++)
		socket_of[i] = (int)rte_lcore_to_socket_id(rt.lcore_of[i]);
	rc = dp_handoff_create(&rt.handoff, rt.workers, socket_of);
	if (rc != 0)
		return rc;
	for (i = 0; i < rt.workers; i++) {
		rt.w[i] = dp_worker_create(&rt, (uint16_t)i);
		if (rt.w[i] == NULL)
			return -ENOMEM;
	}
	if (rt.cfg.state_region != NULL) {
		char why[SP_CLUSTER_WHY_MAX] = "";

		rc = sp_region_open(rt.cfg.state_region, true, region, why, sizeof(why));
		if (rc != 0) {
			SP_LOG_ERR(MOD, "--state-region %s: %s", rt.cfg.state_region, why);
			return rc;
		}
		rc = route_watch_init(watch, *region);
		if (rc != 0)
			return rc;
		write_heartbeat(*region, SP_DP_STARTING);
	}
	rt.tsc_hz = rte_get_tsc_hz();
	rt.tsc_base = rte_rdtsc();
	return dp_telemetry_register(&rt);
}

/*
 * Stops everything in order and reports. Returns the exit code: 0, or EXIT_LEAK when an
 * mbuf did not come back to the pool.
 */
static int
teardown(struct sp_region *region, struct route_watch *watch, bool launched)
{
	struct dp_store_totals store;
	struct dp_port_totals port;
	uint32_t in_use;
	uint32_t pool_size = rt.port.pool_size;
	unsigned int ring_mbufs;
	uint32_t i;
	int code = 0;

	atomic_store(&rt.stop, true);
	if (launched)
		rte_eal_mp_wait_lcore();
	dp_port_totals_get(&rt, &port);
	dp_telemetry_detach();
	if (region != NULL) {
		write_heartbeat(region, SP_DP_STOPPED);
		route_watch_fini(watch);
		sp_region_close(region);
	}
	dp_port_close(&rt.port);
	ring_mbufs = dp_handoff_destroy(&rt.handoff);
	for (i = 0; i < rt.workers; i++) {
		dp_worker_free(rt.w[i]);
		rt.w[i] = NULL;
	}
	in_use = dp_port_mbufs_in_use(&rt.port);
	free_stores(&store);
	route_destroy(rt.route);
	rt.route = NULL;
	dp_port_free_pool(&rt.port);
	if (!launched)
		return 0;
	dp_stats_print(stdout, rt.stats, rt.workers, &port, &store);
	printf("mbufs: %u in use of %u at exit (%u were still in hand-off rings)\n", in_use,
	       pool_size, ring_mbufs);
	if (in_use != 0) {
		SP_LOG_ERR(MOD, "mbuf leak: %u of %u mbufs never came back to the pool", in_use,
		           pool_size);
		code = EXIT_LEAK;
	}
	fflush(stdout);
	return code;
}

int
main(int argc, char **argv)
{
	struct dp_hugepages huge;
	struct route_watch watch;
	struct sp_region *region = NULL;
	char err[DP_ERRBUF_LEN];
	int sep = find_separator(argc, argv);
	bool launched = false;
	unsigned int lc;
	uint32_t i = 0;
	int code;
	int rc;

	memset(&watch, 0, sizeof(watch));
	usage_prog = argv[0];
	parse_options(argc, argv, sep);
	dp_hugepages_read(&huge);
	if (!has_arg(sep, argv, "--no-huge") &&
	    dp_check_hugepages_present(&huge, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", usage_prog, err);
		return 1;
	}
	rte_set_application_usage_hook(eal_usage_hook);
	rc = eal_start(sep, argv);
	if (rc < 0) {
		fprintf(stderr, "%s: EAL start-up failed: %s; check the EAL options before '--'\n",
		        usage_prog, rte_strerror(rte_errno));
		return 1;
	}
	rc = install_signals();
	if (rc == 0)
		rc = setup(&huge, &region, &watch);
	if (rc == 0) {
		RTE_LCORE_FOREACH_WORKER(lc)
		{
			if (i < rt.workers && rc == 0)
				rc = rte_eal_remote_launch(dp_worker_main, rt.w[i++], lc);
		}
		launched = true;
	}
	if (rc == 0) {
		struct in_addr a = {.s_addr = rt.cfg.ip_be};
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		SP_LOG_INFO(MOD,
		            "ready: %s/%u on port %u (%s), udp %u..%u, %u workers, %u partitions",
		            ip, rt.cfg.prefix_len, rt.port.port_id, rt.port.name, rt.cfg.port_base,
		            rt.cfg.port_base + rt.workers - 1, rt.workers, rt.partitions);
		housekeeping(region, &watch);
	}
	code = teardown(region, &watch, launched);
	rte_eal_cleanup();
	return rc != 0 ? 1 : code;
}
