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
#include "node.h"
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
/* The lease is taken to end this much early: a housekeeping period plus the table swap. */
#define LEASE_MARGIN_NS (20u * SP_NS_PER_MS)
/* How often the heartbeat goes to the shared region. */
#define HEARTBEAT_INTERVAL_MS 100u
/* Exit codes. */
#define EXIT_USAGE 2

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

/*
 * The lease check of the data path (docs/control-plane.md, "Leases"): at every housekeeping
 * step the main lcore reads the lease the control plane keeps in the region and, when what
 * the node may do changed, swaps the routing table (serve the installed map, or answer
 * every key NOT_READY / NOT_SERVING). The lease is taken to end LEASE_MARGIN_NS early, so
 * the swap and its grace period finish before it really does. Returns true when the mode
 * changed.
 */
static bool
follow_lease(void)
{
	uint64_t expiry;
	uint32_t membership;
	enum sp_dp_serving want;
	enum route_mode mode;
	int rc;

	sp_region_lease_read(rt.region, &expiry, &membership);
	want = sp_region_serving(route_has_map(rt.route), expiry, membership,
	                         sp_mono_ns() + LEASE_MARGIN_NS);
	if (want == rt.serving)
		return false;
	mode = want == SP_DP_SERVING     ? ROUTE_MODE_SERVE
	       : want == SP_DP_NOT_READY ? ROUTE_MODE_NOT_READY
	                                 : ROUTE_MODE_NOT_SERVING;
	rc = route_set_mode(rt.route, mode);
	if (route_mode(rt.route) != mode) {
		/* Nothing was published (an earlier switch still waits for its grace period, or
		 * no memory): the table in use is unchanged, so is rt.serving; the next step
		 * tries again. A grace period that timed out after the publication (-SP_EBUSY
		 * with the mode changed) is a switch made. */
		if (rc != -SP_EBUSY)
			SP_LOG_WARN(MOD, "cannot switch to %s: %s", sp_dp_serving_name(want),
			            sp_strerror(rc));
		return false;
	}
	SP_LOG_INFO(MOD, "%s -> %s (epoch %" PRIu64 ")", sp_dp_serving_name(rt.serving),
	            sp_dp_serving_name(want), route_latest_epoch(rt.route));
	rt.serving = want;
	return true;
}

/* The main lcore's loop: until a signal, switch tables, beat, print stats. */
static void
housekeeping(void)
{
	uint64_t next_stats_ms = sp_mono_ms() + (uint64_t)rt.cfg.stats_interval_s * 1000;
	uint64_t next_beat_ms = 0;
	struct dp_port_totals port;

	while (signal_seen == 0) {
		uint64_t now_ms = sp_mono_ms();

		if (rt.region != NULL) {
			if (route_watch_region(rt.route, &rt.watch) == 1) {
				const struct route_table *t = route_current(rt.route);

				/* The main lcore is the only one that frees tables: t stays valid. */
				atomic_store(&rt.epoch, t->epoch);
				SP_LOG_INFO(MOD, "routing table: epoch %" PRIu64 " installed",
				            t->epoch);
				next_beat_ms = 0; /* the control plane reports the epoch at once */
			}
			if (follow_lease())
				next_beat_ms = 0; /* tell the control plane at once */
			if (now_ms >= next_beat_ms) {
				dp_node_heartbeat(&rt, SP_DP_RUNNING);
				next_beat_ms = now_ms + HEARTBEAT_INTERVAL_MS;
			}
		} else {
			route_poll(rt.route);
		}
		if (dp_node_watch_port(&rt, now_ms) == 1)
			next_beat_ms = 0;
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
 * process, even one that crashes. EAL runs on a copy of the argument array, stored in
 * *eal_argv whether EAL starts or not: the caller frees it after rte_eal_cleanup (EAL
 * reorders the copy and keeps pointers to its strings, which belong to argv). Returns
 * rte_eal_init's result.
 */
static int
eal_start(int eal_argc, char **argv, char ***eal_argv)
{
	static char huge_unlink[] = "--huge-unlink";
	char **copy;
	int n = eal_argc;
	int rc;

	ASSERT(eal_argc >= 1);
	ASSERT(*eal_argv == NULL);
	copy = calloc((size_t)eal_argc + 2, sizeof(*copy));
	VERIFY(copy != NULL);
	memcpy(copy, argv, (size_t)eal_argc * sizeof(*copy));
	if (!has_arg(eal_argc, argv, "--huge-unlink") && !has_arg(eal_argc, argv, "--in-memory") &&
	    !has_arg(eal_argc, argv, "--no-huge"))
		copy[n++] = huge_unlink;
	copy[n] = NULL;
	*eal_argv = copy;
	rc = rte_eal_init(n, copy);
	ASSERT(rc <= n);
	return rc;
}

/*
 * Parses Shardplane's options (after "--") into rt.cfg and applies the log level. Prints
 * the usage on --help and the reason on an error. Returns -1 when the process should go on,
 * otherwise the exit status (0 after --help, EXIT_USAGE after an error). Allocates nothing
 * that outlives the call, so every exit path of main() stays leak-free.
 */
static int
parse_options(int argc, char **argv, int sep)
{
	char err[DP_ERRBUF_LEN] = "";
	char **sp_argv;
	int sp_argc = argc - sep;
	bool help = has_arg(sep, argv, "--help") || has_arg(sep, argv, "-h");
	int rc;

	ASSERT(sep >= 1);
	ASSERT(sep <= argc);
	/* Without "--" there are no Shardplane options: the program name alone. */
	if (sp_argc < 1)
		sp_argc = 1;
	sp_argv = calloc((size_t)sp_argc + 1, sizeof(*sp_argv));
	VERIFY(sp_argv != NULL);
	sp_argv[0] = argv[0];
	for (int i = 1; i < sp_argc; i++)
		sp_argv[i] = argv[sep + i];
	dp_config_defaults(&rt.cfg);
	rc = dp_config_parse(&rt.cfg, sp_argc, sp_argv, err, sizeof(err));
	free(sp_argv);
	if (help || rt.cfg.help) {
		dp_config_usage(stdout, usage_prog);
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", usage_prog, err);
		return EXIT_USAGE;
	}
	sp_log_set_level(rt.cfg.log_level);
	return -1;
}

/*
 * One exit path: whatever started (EAL, the node) is stopped in reverse order and what
 * main() allocated is freed, on success, on --help and on every start-up failure.
 */
int
main(int argc, char **argv)
{
	struct dp_hugepages huge;
	char err[DP_ERRBUF_LEN];
	char **eal_argv = NULL;
	int sep = find_separator(argc, argv);
	bool launched = false;
	int code;
	int rc;

	if (argc < 1 || argv[0] == NULL) {
		fprintf(stderr,
		        "%s: started with an empty argument list; run it with its name "
		        "as argv[0]\n",
		        usage_prog);
		return EXIT_USAGE;
	}
	usage_prog = argv[0];
	code = parse_options(argc, argv, sep);
	if (code >= 0)
		goto out;
	code = 1;
	dp_hugepages_read(&huge);
	if (!has_arg(sep, argv, "--no-huge") &&
	    dp_check_hugepages_present(&huge, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", usage_prog, err);
		goto out;
	}
	rte_set_application_usage_hook(eal_usage_hook);
	rc = eal_start(sep, argv, &eal_argv);
	if (rc < 0) {
		fprintf(stderr, "%s: EAL start-up failed: %s; check the EAL options before '--'\n",
		        usage_prog, rte_strerror(rte_errno));
		goto out;
	}
	rt.stats = worker_stats;
	rc = install_signals();
	if (rc == 0)
		rc = dp_node_setup(&rt, &huge);
	if (rc == 0) {
		rc = dp_node_launch(&rt);
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
		housekeeping();
	}
	code = dp_node_teardown(&rt, launched);
	if (rc != 0)
		code = 1;
	rte_eal_cleanup();
out:
	free(eal_argv);
	return code;
}
