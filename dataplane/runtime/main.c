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
			}
			if (now_ms >= next_beat_ms) {
				dp_node_heartbeat(&rt, SP_DP_RUNNING);
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
	sp_log_set_level(rt.cfg.log_level);
}

int
main(int argc, char **argv)
{
	struct dp_hugepages huge;
	char err[DP_ERRBUF_LEN];
	int sep = find_separator(argc, argv);
	bool launched = false;
	int code;
	int rc;

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
	rte_eal_cleanup();
	return rc != 0 ? 1 : code;
}
