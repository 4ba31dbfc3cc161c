/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-cp: the control plane of one node. See `shardplane-cp --help`.
 *
 * One process, one thread, one io_uring. main.c is the only file that knows every module:
 * it owns them (struct cp), installs io.c's handler table, and runs the event loop that
 * moves the node and hands its outcomes to the API. docs/control-plane.md ("Modules")
 * draws who calls whom; scripts/check_module_graph.py keeps it without a circle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jemalloc/jemalloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "addr.h"
#include "api.h"
#include "common/clock.h"
#include "config.h"
#include "io.h"
#include "liveness.h"
#include "metrics.h"
#include "node.h"

#define MOD          "cp"
#define RING_ENTRIES 512u
/* Rounds of driving the node and draining its outcomes after one turn of the event loop. */
#define CP_DRIVE_ROUNDS_MAX 64u

/* The process: its modules, each owning its own state, and what is the loop's alone. */
struct cp {
	struct cp_config cfg;
	uint64_t id;
	uint8_t secret[FRAME_SECRET_MAX];
	size_t secret_len;
	struct io_uring ring;
	struct cp_op op_tick;
	struct __kernel_timespec tick_ts;
	struct cp_op op_raft_tick; /* Raft's finer clock (CP_RAFT_TICK_MS), kind CP_OP_TICK too */
	struct __kernel_timespec raft_tick_ts;
	uint32_t tick;
	bool stopping; /* a member told us we were removed */
	int fatal;     /* the loop failed */

	struct cp_stats stats;
	struct cp_io io;
	struct cp_node node;
	struct cp_liveness lv;
	struct cp_api api;
};

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t isolate_toggles;

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		isolate_toggles++;
	else
		stop_signal = sig;
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "Usage: shardplane-cp --name NAME --data-dir DIR --initial-cluster N1=IP:PORT,...\n"
	        "                     --secret-file FILE [options]\n"
	        "\n"
	        "Runs the control plane of one node: Raft with the other members, the durable "
	        "log,\n"
	        "the cluster state (members, partition map, configuration), the client API that\n"
	        "shardctl uses, and publishing to the local dataplane's shared region.\n"
	        "\n"
	        "Cluster:\n"
	        "  --name NAME                   this member's name (unique, < 32 bytes; its id "
	        "is\n"
	        "                                derived from it)\n"
	        "  --data-dir DIR                where the log and snapshots live (created)\n"
	        "  --listen-peer IP:PORT         address for other members (default "
	        "127.0.0.1:2380)\n"
	        "  --listen-client IP:PORT       address for shardctl (default 127.0.0.1:2379)\n"
	        "  --advertise-client IP:PORT    client address told to others (default: listen)\n"
	        "  --initial-cluster LIST        NAME=IP:PORT of every member's peer address\n"
	        "  --initial-cluster-state S     with an empty data directory: 'new' to form a\n"
	        "                                cluster (default), 'existing' to join one after\n"
	        "                                `shardctl member add`; a member with data "
	        "restarts\n"
	        "                                from it whatever this says\n"
	        "  --secret-file FILE            the cluster secret (>= 16 bytes, mode 600); "
	        "every\n"
	        "                                member and client proves it before anything else\n"
	        "  --auth-timeout-ms MS          a connection that has not proved it by then is\n"
	        "                                closed (default 1000)\n"
	        "  --partitions P                partitions when the cluster is formed (power of "
	        "two,\n"
	        "                                default 256)\n"
	        "  --snapshot-entries N          applied entries between snapshots (default "
	        "10000)\n"
	        "  --config-max-keys N           keys the configuration store holds (default "
	        "100000,\n"
	        "                                at most 1000000)\n"
	        "  --config-max-value BYTES      longest value (default 65536, at most 262144)\n"
	        "  --config-max-bytes BYTES      keys and values together, 16 bytes more per "
	        "key\n"
	        "                                (default 33554432, at most 50331648)\n"
	        "\n"
	        "Dataplane of this node (so the partition map can place partitions on it):\n"
	        "  --state-region PATH           shared region file to publish the state to\n"
	        "  --dp-ip A.B.C.D               the dataplane's IPv4 address\n"
	        "  --dp-mac XX:XX:XX:XX:XX:XX    its MAC address (default 00:00:00:00:00:00)\n"
	        "  --dp-port N                   its binary-protocol base UDP port (default 9000)\n"
	        "  --dp-memcached-port N         its memcached UDP port (default 11211)\n"
	        "  --dp-workers N                its worker cores (default 1; the dataplane's\n"
	        "                                heartbeat overrides the --dp-* values)\n"
	        "\n"
	        "Failure handling (docs/control-plane.md):\n"
	        "  --lease-ms N                  ownership lease a grant gives (default 500)\n"
	        "  --failure-timeout-ms N        silence or dataplane heartbeat age that is a\n"
	        "                                failure (default 1000)\n"
	        "  --hold-down-ms N              healthy this long before a down node is up\n"
	        "                                again (default 2000)\n"
	        "\n"
	        "Other:\n"
	        "  --metrics IP:PORT             serve Prometheus metrics at "
	        "http://IP:PORT/metrics\n"
	        "  --log-level L                 error, warn, info (default) or debug\n"
	        "\n"
	        "Signals: SIGINT/SIGTERM stop cleanly; SIGUSR1 toggles a fault switch that drops "
	        "all\n"
	        "Raft traffic of this member (for tests of partitions and catch-up).\n"
	        "  -h, --help                    this text\n");
}

static int
copy_arg(char *dst, size_t cap, const char *flag, const char *val)
{
	if (strlen(val) >= cap) {
		fprintf(stderr, "shardplane-cp: %s: value longer than %zu bytes\n", flag, cap - 1);
		return -1;
	}
	strcpy(dst, val);
	return 0;
}

static int
parse_u32(const char *flag, const char *val, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || *end || val[0] == '\0' || val[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "shardplane-cp: %s '%s': expected a number in [%u, %u]\n", flag,
		        val, lo, hi);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int
parse_args(int argc, char **argv, struct cp_config *c)
{
	enum {
		O_NAME = 256,
		O_DATA,
		O_LPEER,
		O_LCLIENT,
		O_ACLIENT,
		O_IC,
		O_ICS,
		O_SECRET,
		O_REGION,
		O_METRICS,
		O_PARTS,
		O_DPIP,
		O_DPMAC,
		O_DPPORT,
		O_DPMC,
		O_DPW,
		O_LOG,
		O_SNAP,
		O_AUTH_TIMEOUT,
		O_CFG_KEYS,
		O_CFG_VALUE,
		O_CFG_BYTES,
		O_LEASE,
		O_FAILTO,
		O_HOLD,
	};
	static const struct option opts[] = {
	        {"name", required_argument, NULL, O_NAME},
	        {"data-dir", required_argument, NULL, O_DATA},
	        {"listen-peer", required_argument, NULL, O_LPEER},
	        {"listen-client", required_argument, NULL, O_LCLIENT},
	        {"advertise-client", required_argument, NULL, O_ACLIENT},
	        {"initial-cluster", required_argument, NULL, O_IC},
	        {"initial-cluster-state", required_argument, NULL, O_ICS},
	        {"secret-file", required_argument, NULL, O_SECRET},
	        {"state-region", required_argument, NULL, O_REGION},
	        {"metrics", required_argument, NULL, O_METRICS},
	        {"partitions", required_argument, NULL, O_PARTS},
	        {"dp-ip", required_argument, NULL, O_DPIP},
	        {"dp-mac", required_argument, NULL, O_DPMAC},
	        {"dp-port", required_argument, NULL, O_DPPORT},
	        {"dp-memcached-port", required_argument, NULL, O_DPMC},
	        {"dp-workers", required_argument, NULL, O_DPW},
	        {"log-level", required_argument, NULL, O_LOG},
	        {"snapshot-entries", required_argument, NULL, O_SNAP},
	        {"auth-timeout-ms", required_argument, NULL, O_AUTH_TIMEOUT},
	        {"config-max-keys", required_argument, NULL, O_CFG_KEYS},
	        {"config-max-value", required_argument, NULL, O_CFG_VALUE},
	        {"config-max-bytes", required_argument, NULL, O_CFG_BYTES},
	        {"lease-ms", required_argument, NULL, O_LEASE},
	        {"failure-timeout-ms", required_argument, NULL, O_FAILTO},
	        {"hold-down-ms", required_argument, NULL, O_HOLD},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	uint32_t v;
	int o, rc = 0;

	strcpy(c->listen_peer, "127.0.0.1:2380");
	strcpy(c->listen_client, "127.0.0.1:2379");
	c->initial_new = true;
	c->partitions = 256;
	c->snapshot_entries = CP_SNAPSHOT_ENTRIES;
	c->auth_timeout_ms = CP_AUTH_TIMEOUT_MS;
	c->config_max_keys = CLUSTER_CONFIG_KEYS_DEFAULT;
	c->config_max_value = CLUSTER_CONFIG_VALUE_DEFAULT;
	c->config_max_bytes = CLUSTER_CONFIG_BYTES_DEFAULT;
	c->dp_port = 9000;
	c->dp_memcached_port = 11211;
	c->dp_workers = 1;
	c->lease_ms = CP_LEASE_MS_DEFAULT;
	c->failure_timeout_ms = CP_FAILURE_TIMEOUT_MS;
	c->hold_down_ms = CP_HOLD_DOWN_MS;
	while (rc == 0 && (o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_NAME:
			rc = copy_arg(c->name, sizeof(c->name), "--name", optarg);
			break;
		case O_DATA:
			rc = copy_arg(c->data_dir, sizeof(c->data_dir), "--data-dir", optarg);
			break;
		case O_LPEER:
			rc = copy_arg(c->listen_peer, sizeof(c->listen_peer), "--listen-peer",
			              optarg);
			break;
		case O_LCLIENT:
			rc = copy_arg(c->listen_client, sizeof(c->listen_client), "--listen-client",
			              optarg);
			break;
		case O_ACLIENT:
			rc = copy_arg(c->advertise_client, sizeof(c->advertise_client),
			              "--advertise-client", optarg);
			break;
		case O_IC:
			rc = copy_arg(c->initial_cluster, sizeof(c->initial_cluster),
			              "--initial-cluster", optarg);
			break;
		case O_ICS:
			if (strcmp(optarg, "new") && strcmp(optarg, "existing")) {
				fprintf(stderr,
				        "shardplane-cp: --initial-cluster-state '%s': expected "
				        "'new' or 'existing'\n",
				        optarg);
				rc = -1;
			}
			c->initial_new = strcmp(optarg, "new") == 0;
			break;
		case O_SECRET:
			rc = copy_arg(c->secret_file, sizeof(c->secret_file), "--secret-file",
			              optarg);
			break;
		case O_REGION:
			rc = copy_arg(c->state_region, sizeof(c->state_region), "--state-region",
			              optarg);
			break;
		case O_METRICS:
			rc = copy_arg(c->metrics, sizeof(c->metrics), "--metrics", optarg);
			break;
		case O_SNAP:
			rc = parse_u32("--snapshot-entries", optarg, 1, 1000000000u,
			               &c->snapshot_entries);
			break;
		case O_AUTH_TIMEOUT:
			rc = parse_u32("--auth-timeout-ms", optarg, 50, 60000, &c->auth_timeout_ms);
			break;
		case O_CFG_KEYS:
			rc = parse_u32("--config-max-keys", optarg, 1, CLUSTER_CONFIG_KEYS_MAX,
			               &c->config_max_keys);
			break;
		case O_CFG_VALUE:
			rc = parse_u32("--config-max-value", optarg, 0, CLUSTER_CONFIG_VALUE_MAX,
			               &c->config_max_value);
			break;
		case O_CFG_BYTES:
			rc = parse_u32("--config-max-bytes", optarg, 1, CLUSTER_CONFIG_BYTES_MAX,
			               &v);
			c->config_max_bytes = v;
			break;
		case O_PARTS:
			rc = parse_u32("--partitions", optarg, 1, SP_PARTITIONS_MAX,
			               &c->partitions);
			if (rc == 0 && !sp_is_power_of_two(c->partitions)) {
				fprintf(stderr,
				        "shardplane-cp: --partitions %u is not a power of two\n",
				        c->partitions);
				rc = -1;
			}
			break;
		case O_DPIP:
			if (inet_pton(AF_INET, optarg, &c->dp_ipv4_be) != 1) {
				fprintf(stderr,
				        "shardplane-cp: --dp-ip '%s' is not an IPv4 address\n",
				        optarg);
				rc = -1;
			}
			c->dp_set = true;
			break;
		case O_DPMAC: {
			unsigned m[6];
			char tail;
			if (sscanf(optarg, "%x:%x:%x:%x:%x:%x%c", &m[0], &m[1], &m[2], &m[3], &m[4],
			           &m[5], &tail) != 6) {
				fprintf(stderr,
				        "shardplane-cp: --dp-mac '%s' is not XX:XX:XX:XX:XX:XX\n",
				        optarg);
				rc = -1;
				break;
			}
			for (int i = 0; i < 6; i++) {
				if (m[i] > 255)
					rc = -1;
				c->dp_mac[i] = (uint8_t)m[i];
			}
			break;
		}
		case O_DPPORT:
			rc = parse_u32("--dp-port", optarg, 1, 65535, &v);
			c->dp_port = (uint16_t)v;
			break;
		case O_DPMC:
			rc = parse_u32("--dp-memcached-port", optarg, 0, 65535, &v);
			c->dp_memcached_port = (uint16_t)v;
			break;
		case O_DPW:
			rc = parse_u32("--dp-workers", optarg, 1, SP_WORKERS_MAX, &v);
			c->dp_workers = (uint16_t)v;
			break;
		case O_LEASE:
			rc = parse_u32("--lease-ms", optarg, 50, 60000, &c->lease_ms);
			break;
		case O_FAILTO:
			rc = parse_u32("--failure-timeout-ms", optarg, 100, 600000,
			               &c->failure_timeout_ms);
			break;
		case O_HOLD:
			rc = parse_u32("--hold-down-ms", optarg, 0, 3600000, &c->hold_down_ms);
			break;
		case O_LOG: {
			enum sp_log_level l;
			if (sp_log_parse_level(optarg, &l)) {
				fprintf(stderr,
				        "shardplane-cp: --log-level '%s': expected error, warn, "
				        "info or debug\n",
				        optarg);
				rc = -1;
			}
			sp_log_set_level(l);
			break;
		}
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (rc)
		return rc;
	if (optind < argc) {
		fprintf(stderr, "shardplane-cp: unexpected argument '%s'; see --help\n",
		        argv[optind]);
		return -1;
	}
	const char *missing = c->name[0] == '\0'              ? "--name"
	                      : c->data_dir[0] == '\0'        ? "--data-dir"
	                      : c->initial_cluster[0] == '\0' ? "--initial-cluster"
	                      : c->secret_file[0] == '\0'     ? "--secret-file"
	                                                      : NULL;
	if (missing) {
		fprintf(stderr, "shardplane-cp: %s is required; see --help\n", missing);
		return -1;
	}
	if (c->advertise_client[0] == '\0')
		strcpy(c->advertise_client, c->listen_client);
	return 0;
}

/* Arms a one-shot timer of ms milliseconds whose completion carries op. */
static void
arm_timer(struct cp *cp, struct cp_op *op, struct __kernel_timespec *ts, uint32_t ms)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&cp->ring);
	if (sqe == NULL) {
		io_uring_submit(&cp->ring);
		sqe = io_uring_get_sqe(&cp->ring);
	}
	VERIFY(sqe != NULL);
	ASSERT(ms > 0 && ms < 1000);
	ts->tv_sec = 0;
	ts->tv_nsec = (long long)ms * 1000000;
	io_uring_prep_timeout(sqe, ts, 0, 0);
	io_uring_sqe_set_data(sqe, op);
}

static void
arm_tick(struct cp *cp)
{
	arm_timer(cp, &cp->op_tick, &cp->tick_ts, CP_TICK_MS);
}

static void
arm_raft_tick(struct cp *cp)
{
	arm_timer(cp, &cp->op_raft_tick, &cp->raft_tick_ts, CP_RAFT_TICK_MS);
}

/* io.c's handler table: where each authenticated frame goes. */
static void
on_raft(void *arg, struct cp_conn *c, uint64_t peer_id, const uint8_t *buf, uint32_t len)
{
	struct cp *cp = arg;
	(void)c;
	ASSERT(peer_id != 0); /* an authenticated member */
	cp_node_on_raft_frame(&cp->node, buf, len);
}

static void
on_liveness(void *arg, struct cp_conn *c, uint64_t peer_id, const uint8_t *buf, uint32_t len)
{
	struct cp *cp = arg;
	(void)c;
	ASSERT(peer_id != 0);
	cp_liveness_on_frame(&cp->lv, peer_id, buf, len);
}

static void
on_request(void *arg, struct cp_conn *c, uint64_t peer_id, const uint8_t *buf, uint32_t len)
{
	struct cp *cp = arg;
	ASSERT(peer_id == 0);
	cp_api_on_request(&cp->api, c, buf, len);
}

static void
on_removed(void *arg, struct cp_conn *c, uint64_t peer_id, const uint8_t *buf, uint32_t len)
{
	struct cp *cp = arg;
	(void)c;
	(void)buf;
	ASSERT(len == 8); /* io.c checked that it names this member */
	SP_LOG_WARN(MOD, "member %llu says this member was removed from the cluster; stopping",
	            (unsigned long long)peer_id);
	cp_liveness_removed(&cp->lv);
	cp->stopping = true;
}

static void
on_conn_closed(void *arg, struct cp_conn *c)
{
	struct cp *cp = arg;
	ASSERT(c != NULL);
	cp_api_on_conn_closed(&cp->api, c);
}

/*
 * Moves the node on and hands its outcomes to the API, again while the node stopped for
 * lack of room in the outcome queue (bounded: what is left goes on at the next turn).
 */
static void
drive(struct cp *cp)
{
	for (uint32_t round = 0; round < CP_DRIVE_ROUNDS_MAX; round++) {
		bool more = cp_node_drive(&cp->node);
		cp_api_take_outcomes(&cp->api);
		ASSERT(cp_outq_depth(&cp->node.outq) == 0);
		if (!more)
			return;
	}
}

/* Copies the gauges of every module into the figures the HTTP thread serves. */
static void
metrics_update(struct cp *cp)
{
	struct raft_status st;
	struct sp_dp_status ds;
	int64_t age = -1;
	size_t allocated = 0, resident = 0, sz = sizeof(size_t);
	uint64_t epoch = 1;
	struct cp_metrics *m = &cp->stats.m;

	cp_node_status(&cp->node, &st);
	if (cp->node.region && sp_region_status_read(cp->node.region, &ds) == 0) {
		uint64_t now = sp_mono_ns();
		age = now > ds.heartbeat_mono_ns ? (int64_t)((now - ds.heartbeat_mono_ns) / 1000000)
		                                 : 0;
	}
	if (cp->tick % 40 == 0) {
		/* jemalloc's figures refresh when its epoch advances: once a second. */
		mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch));
	}
	mallctl("stats.allocated", &allocated, &sz, NULL, 0);
	mallctl("stats.resident", &resident, &sz, NULL, 0);
	uint64_t lnow = sp_mono_ns();
	pthread_mutex_lock(&cp->stats.lock);
	m->term = st.term;
	m->leader = st.leader_id;
	m->role = st.role;
	m->commit = st.commit;
	m->applied = cp->node.applied;
	m->last_index = st.last_index;
	m->n_peers = 0;
	for (uint32_t i = 0; i < st.n_progress; i++) {
		if (st.progress[i].id == cp->id)
			continue;
		uint32_t k = m->n_peers++;
		m->peer_ids[k] = st.progress[i].id;
		m->peer_lag[k] = st.last_index > st.progress[i].match
		                         ? st.last_index - st.progress[i].match
		                         : 0;
	}
	m->dp_heartbeat_age_ms = age;
	m->lv_sent = cp->lv.sent;
	m->lv_grants = cp->lv.grants;
	m->lv_bad = cp->lv.bad;
	m->lv_not_member = cp->lv.not_member;
	m->lease_left_ms = cp->lv.written_expiry > lnow
	                           ? (int64_t)((cp->lv.written_expiry - lnow) / 1000000)
	                           : 0;
	m->mem_allocated = allocated;
	m->mem_resident = resident;
	pthread_mutex_unlock(&cp->stats.lock);
}

/* One tick, module by module, lowest first; then the node moves and the API hears. */
static void
tick(struct cp *cp)
{
	cp->tick++;
	cp_io_tick(&cp->io);
	cp_node_tick(&cp->node);
	cp_liveness_tick(&cp->lv);
	cp_node_duties(&cp->node, &cp->lv.self);
	cp_liveness_duties(&cp->lv);
	drive(cp);
	cp_api_tick(&cp->api);
	metrics_update(cp);
	/* Every module's invariants, once a tick (compiled out with NDEBUG). */
	ASSERT(cp_io_check_invariants(&cp->io));
	ASSERT(cp_node_check_invariants(&cp->node));
	ASSERT(cp_liveness_check_invariants(&cp->lv));
	ASSERT(cp_api_check_invariants(&cp->api));
}

static void
run(struct cp *cp)
{
	arm_tick(cp);
	arm_raft_tick(cp);
	while (!cp->stopping && !cp->node.stopping && !stop_signal) {
		int rc = io_uring_submit_and_wait(&cp->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -ETIME) {
			SP_LOG_ERR(MOD, "io_uring: %s", strerror(-rc));
			cp->fatal = rc;
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&cp->ring, head, cqe)
		{
			seen++;
			struct cp_op *op = io_uring_cqe_get_data(cqe);
			if (op == NULL)
				continue;
			if (op->magic == LOG_STORE_OP_MAGIC) {
				log_store_complete(cp->node.log, cqe);
			} else if (op == &cp->op_raft_tick) {
				arm_raft_tick(cp);
				cp_node_raft_tick(&cp->node); /* drive() below steps what it owes */
			} else if (op->magic == CP_OP_MAGIC && op->kind == CP_OP_TICK) {
				arm_tick(cp);
				tick(cp);
			} else if (op->magic == CP_OP_MAGIC) {
				cp_io_complete(&cp->io, cqe);
			}
		}
		io_uring_cq_advance(&cp->ring, seen);
		if ((isolate_toggles & 1) != cp->io.isolated) {
			cp->io.isolated = isolate_toggles & 1;
			SP_LOG_WARN(MOD, "fault switch: Raft traffic %s",
			            cp->io.isolated ? "cut (SIGUSR1 again restores it)"
			                            : "restored");
		}
		drive(cp);
	}
}

int
main(int argc, char **argv)
{
	static struct cp cp;
	char why[256];
	int err;

	if (parse_args(argc, argv, &cp.cfg))
		return 2;
	cp.id = cp_member_id(cp.cfg.name);
	int n = frame_read_secret(cp.cfg.secret_file, cp.secret, sizeof(cp.secret), why,
	                          sizeof(why));
	if (n < 0) {
		fprintf(stderr, "shardplane-cp: %s\n", why);
		return 2;
	}
	cp.secret_len = (size_t)n;
	cp_stats_init(&cp.stats);
	cp.op_tick = (struct cp_op){CP_OP_MAGIC, CP_OP_TICK, &cp};
	cp.op_raft_tick = (struct cp_op){CP_OP_MAGIC, CP_OP_TICK, &cp};
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	err = io_uring_queue_init(RING_ENTRIES, &cp.ring, 0);
	if (err) {
		fprintf(stderr, "shardplane-cp: io_uring: %s (kernel 5.6 or later is needed)\n",
		        strerror(-err));
		return 1;
	}
	struct cp_io_handlers h = {.arg = &cp, .conn_closed = on_conn_closed};
	h.on[CP_ROUTE_RAFT] = on_raft;
	h.on[CP_ROUTE_LIVENESS] = on_liveness;
	h.on[CP_ROUTE_REQUEST] = on_request;
	h.on[CP_ROUTE_REMOVED] = on_removed;
	/* Lowest module first: each is given the ones below it. */
	cp_io_setup(&cp.io, &cp.cfg, cp.id, cp.secret, cp.secret_len, &cp.ring, &cp.stats, &h);
	err = cp_node_start(&cp.node, &cp.cfg, cp.id, &cp.ring, &cp.io, &cp.stats);
	if (err == 0)
		err = cp_liveness_init(&cp.lv, &cp.cfg, cp.id, &cp.node, &cp.io, &cp.stats);
	if (err == 0)
		err = cp_api_init(&cp.api, &cp.cfg, cp.id, &cp.node, &cp.io, &cp.lv, &cp.stats);
	if (err == 0)
		err = cp_io_listen(&cp.io);
	if (err == 0)
		err = cp_metrics_start(&cp.stats, cp.cfg.metrics);
	if (err == 0) {
		SP_LOG_INFO(MOD, "serving peers on %s, clients on %s", cp.cfg.listen_peer,
		            cp.cfg.listen_client);
		run(&cp);
		err = cp.fatal ? cp.fatal : cp.node.fatal;
	}
	if (stop_signal)
		SP_LOG_INFO(MOD, "signal %d: stopping", (int)stop_signal);
	cp_metrics_stop(&cp.stats);
	cp_io_fini(&cp.io);
	cp_api_fini(&cp.api);
	cp_liveness_fini(&cp.lv);
	cp_node_stop(&cp.node);
	cp_stats_fini(&cp.stats);
	io_uring_queue_exit(&cp.ring);
	return err ? 1 : 0;
}
