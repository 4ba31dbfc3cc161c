/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/verify.h"

enum {
	OPT_IP = 256,
	OPT_PORT,
	OPT_PARTITIONS,
	OPT_MEMORY_MB,
	OPT_WORKERS,
	OPT_MEMCACHED_PORT,
	OPT_STATE_REGION,
	OPT_BUSY_POLL,
	OPT_MAC,
	OPT_STATS_INTERVAL,
	OPT_FORWARD_TIMEOUT,
	OPT_RATELIMIT_BUCKETS,
	OPT_LOG_LEVEL,
	OPT_ETH_PORT,
	OPT_HELP,
};

static const struct option long_options[] = {
        {"ip", required_argument, NULL, OPT_IP},
        {"port", required_argument, NULL, OPT_PORT},
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"memory-mb", required_argument, NULL, OPT_MEMORY_MB},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"memcached-port", required_argument, NULL, OPT_MEMCACHED_PORT},
        {"state-region", required_argument, NULL, OPT_STATE_REGION},
        {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
        {"mac", required_argument, NULL, OPT_MAC},
        {"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
        {"forward-timeout-ms", required_argument, NULL, OPT_FORWARD_TIMEOUT},
        {"ratelimit-buckets", required_argument, NULL, OPT_RATELIMIT_BUCKETS},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"eth-port", required_argument, NULL, OPT_ETH_PORT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

void
dp_config_defaults(struct dp_config *cfg)
{
	ASSERT(cfg != NULL);
	memset(cfg, 0, sizeof(*cfg));
	cfg->port_base = DP_PORT_DEFAULT;
	cfg->partitions = DP_PARTITIONS_DEFAULT;
	cfg->memory_mb = DP_MEMORY_MB_DEFAULT;
	cfg->log_level = SP_LOG_INFO;
	cfg->eth_port = DP_ETH_PORT_DEFAULT;
	cfg->forward_timeout_ms = DP_FWD_TIMEOUT_MS_DEFAULT;
	cfg->ratelimit_buckets = DP_RL_BUCKETS_DEFAULT;
	ASSERT(cfg->partitions != 0);
}

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

/*
 * Parses a whole decimal number in [min, max]. Rejects signs, spaces, empty text and
 * trailing garbage. Returns 0 or -EINVAL.
 */
static int
parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	ASSERT(out != NULL);
	ASSERT(min <= max);
	if (text == NULL || text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses "A.B.C.D/len" with len in 1..32. Returns 0 or -EINVAL. */
static int
parse_ip_prefix(const char *text, uint32_t *ip_be, uint8_t *prefix_len)
{
	char buf[INET_ADDRSTRLEN + 4];
	const char *slash;
	struct in_addr addr;
	uint64_t len;
	size_t n;

	ASSERT(ip_be != NULL);
	ASSERT(prefix_len != NULL);
	slash = strchr(text, '/');
	if (slash == NULL)
		return -EINVAL;
	n = (size_t)(slash - text);
	if (n == 0 || n >= INET_ADDRSTRLEN)
		return -EINVAL;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, &addr) != 1)
		return -EINVAL;
	if (parse_u64(slash + 1, 1, 32, &len) != 0)
		return -EINVAL;
	if (addr.s_addr == 0 || addr.s_addr == 0xffffffffu)
		return -EINVAL;
	*ip_be = addr.s_addr;
	*prefix_len = (uint8_t)len;
	return 0;
}

/* Parses "aa:bb:cc:dd:ee:ff" (a unicast address). Returns 0 or -EINVAL. */
static int
parse_mac(const char *text, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;
	int i;

	ASSERT(text != NULL);
	if (strlen(text) != 17)
		return -EINVAL;
	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
	           &tail) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	if ((mac[0] & 1u) != 0)
		return -EINVAL; /* multicast or broadcast */
	if ((mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0)
		return -EINVAL;
	return 0;
}

/* Applies one option. Returns 0 or -EINVAL with err filled. */
static int
apply_option(struct dp_config *cfg, int opt, const char *arg, char *err, size_t err_len)
{
	uint64_t v;

	ASSERT(cfg != NULL);
	switch (opt) {
	case OPT_IP:
		if (parse_ip_prefix(arg, &cfg->ip_be, &cfg->prefix_len) != 0)
			goto bad;
		return 0;
	case OPT_PORT:
		if (parse_u64(arg, 1, 65535, &v) != 0)
			goto bad;
		cfg->port_base = (uint16_t)v;
		return 0;
	case OPT_PARTITIONS:
		if (parse_u64(arg, 1, DP_PARTITIONS_MAX, &v) != 0 || (v & (v - 1)) != 0) {
			set_err(err, err_len,
			        "--partitions '%s': must be a power of two in 1..%u (e.g. 64)", arg,
			        DP_PARTITIONS_MAX);
			return -EINVAL;
		}
		cfg->partitions = (uint32_t)v;
		return 0;
	case OPT_MEMORY_MB:
		if (parse_u64(arg, 1, DP_MEMORY_MB_MAX, &v) != 0)
			goto bad;
		cfg->memory_mb = (uint32_t)v;
		return 0;
	case OPT_WORKERS:
		if (parse_u64(arg, 1, DP_WORKERS_MAX, &v) != 0)
			goto bad;
		cfg->workers = (uint32_t)v;
		return 0;
	case OPT_MEMCACHED_PORT:
		if (parse_u64(arg, 1, 65535, &v) != 0)
			goto bad;
		cfg->memcached_port = (uint16_t)v;
		return 0;
	case OPT_STATE_REGION:
		if (arg == NULL || arg[0] == '\0' || strlen(arg) >= PATH_MAX)
			goto bad;
		cfg->state_region = arg;
		return 0;
	case OPT_BUSY_POLL:
		cfg->busy_poll = true;
		return 0;
	case OPT_MAC:
		if (parse_mac(arg, cfg->mac) != 0)
			goto bad;
		cfg->mac_set = true;
		return 0;
	case OPT_STATS_INTERVAL:
		if (parse_u64(arg, 0, DP_STATS_INTERVAL_S_MAX, &v) != 0)
			goto bad;
		cfg->stats_interval_s = (uint32_t)v;
		return 0;
	case OPT_FORWARD_TIMEOUT:
		if (parse_u64(arg, DP_FWD_TIMEOUT_MS_MIN, DP_FWD_TIMEOUT_MS_MAX, &v) != 0)
			goto bad;
		cfg->forward_timeout_ms = (uint32_t)v;
		return 0;
	case OPT_RATELIMIT_BUCKETS:
		if (parse_u64(arg, DP_RL_BUCKETS_MIN, DP_RL_BUCKETS_MAX, &v) != 0 ||
		    (v & (v - 1)) != 0)
			goto bad;
		cfg->ratelimit_buckets = (uint32_t)v;
		return 0;
	case OPT_LOG_LEVEL:
		if (sp_log_parse_level(arg, &cfg->log_level) != 0)
			goto bad;
		return 0;
	case OPT_ETH_PORT:
		if (parse_u64(arg, 0, UINT16_MAX - 1, &v) != 0)
			goto bad;
		cfg->eth_port = (uint16_t)v;
		return 0;
	case OPT_HELP:
		cfg->help = true;
		return 0;
	default:
		break;
	}
	set_err(err, err_len, "unknown option; see --help");
	return -EINVAL;
bad:
	for (const struct option *o = long_options; o->name != NULL; o++) {
		if (o->val == opt) {
			set_err(err, err_len, "--%s '%s': invalid value; see --help for its range",
			        o->name, arg != NULL ? arg : "");
			return -EINVAL;
		}
	}
	set_err(err, err_len, "invalid option value '%s'", arg != NULL ? arg : "");
	return -EINVAL;
}

int
dp_config_parse(struct dp_config *cfg, int argc, char **argv, char *err, size_t err_len)
{
	int opt;
	int rc;

	ASSERT(cfg != NULL);
	ASSERT(argc >= 1);
	optind = 0; /* glibc: full re-initialisation, EAL used getopt before us */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		if (opt == '?' || opt == ':') {
			const char *what = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
			set_err(err, err_len,
			        "option '%s': unknown or missing its value; see --help", what);
			return -EINVAL;
		}
		rc = apply_option(cfg, opt, optarg, err, err_len);
		if (rc != 0)
			return rc;
	}
	if (optind < argc) {
		set_err(err, err_len, "unexpected argument '%s'; see --help", argv[optind]);
		return -EINVAL;
	}
	if (cfg->help)
		return 0;
	if (cfg->prefix_len == 0) {
		set_err(err, err_len, "--ip A.B.C.D/len is required (e.g. --ip 192.0.2.1/24)");
		return -EINVAL;
	}
	if (cfg->workers != 0) {
		rc = dp_config_check_workers(cfg, cfg->workers, err, err_len);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
dp_config_check_workers(const struct dp_config *cfg, uint32_t workers, char *err, size_t err_len)
{
	uint32_t last;

	ASSERT(cfg != NULL);
	ASSERT(cfg->partitions != 0);
	if (workers == 0 || workers > DP_WORKERS_MAX) {
		set_err(err, err_len, "workers: %u, must be 1..%u", workers, DP_WORKERS_MAX);
		return -EINVAL;
	}
	last = (uint32_t)cfg->port_base + workers - 1;
	if (last > 65535) {
		set_err(err, err_len,
		        "--port %u: workers listen on %u..%u, past 65535; pick a lower --port",
		        cfg->port_base, cfg->port_base, last);
		return -EINVAL;
	}
	if (cfg->memcached_port != 0 && cfg->memcached_port >= cfg->port_base &&
	    cfg->memcached_port <= last) {
		set_err(err, err_len,
		        "--memcached-port %u: inside the binary protocol's ports %u..%u; pick "
		        "another",
		        cfg->memcached_port, cfg->port_base, last);
		return -EINVAL;
	}
	if (cfg->partitions < workers) {
		set_err(err, err_len,
		        "--partitions %u: fewer than the %u workers, some would own nothing; use "
		        "at least %u",
		        cfg->partitions, workers, workers);
		return -EINVAL;
	}
	return 0;
}

void
dp_config_usage(FILE *out, const char *prog)
{
	ASSERT(out != NULL);
	fprintf(out,
	        "usage: %s [EAL options] -- --ip A.B.C.D/len [options]\n"
	        "\n"
	        "EAL options come before '--' (see '%s -h' or DPDK's documentation); always\n"
	        "pass --no-pci for virtual devices, and --in-memory or a --file-prefix of your\n"
	        "own. Shardplane's options come after '--':\n"
	        "\n"
	        "  --ip A.B.C.D/len      this node's IPv4 address and prefix (required)\n"
	        "  --port N              binary protocol base UDP port; worker i listens on\n"
	        "                        N+i (default %u)\n"
	        "  --partitions P        key partitions, a power of two in 1..%u, at least the\n"
	        "                        number of workers (default %u)\n"
	        "  --memory-mb M         store memory per worker in MiB, spread evenly over\n"
	        "                        the partitions it owns (default %u)\n"
	        "  --workers W           worker lcores, 1..%u (default: every lcore but the\n"
	        "                        main one)\n"
	        "  --memcached-port N    serve the memcached UDP protocol on port N (default\n"
	        "                        off)\n"
	        "  --state-region PATH   read the partition map from the node's shared region\n"
	        "                        (default: all partitions spread over local workers)\n"
	        "  --busy-poll           never back off when idle (lowest latency, 100%% CPU)\n"
	        "  --mac XX:XX:XX:XX:XX:XX  use this MAC instead of the port's own\n"
	        "  --stats-interval S    print one stats line every S seconds, 0..%u (default\n"
	        "                        0: only at exit)\n"
	        "  --forward-timeout-ms T  cluster mode: how long to wait for the owner of a\n"
	        "                        forwarded request before answering 'owner\n"
	        "                        unavailable', %u..%u (default %u); spanning\n"
	        "                        operations (aggregate) wait this long for other nodes\n"
	        "                        and half of it for this node's workers\n"
	        "  --ratelimit-buckets N  token buckets per partition of the ratelimit\n"
	        "                        operation (32 bytes each), a power of two %u..%u\n"
	        "                        (default %u; docs/tasks.md)\n"
	        "  --log-level L         error, warn, info or debug (default info)\n"
	        "  --eth-port ID         DPDK port id to serve (default %u)\n"
	        "  --help                this text\n",
	        prog, prog, DP_PORT_DEFAULT, DP_PARTITIONS_MAX, DP_PARTITIONS_DEFAULT,
	        DP_MEMORY_MB_DEFAULT, DP_WORKERS_MAX, DP_STATS_INTERVAL_S_MAX,
	        DP_FWD_TIMEOUT_MS_MIN, DP_FWD_TIMEOUT_MS_MAX, DP_FWD_TIMEOUT_MS_DEFAULT,
	        DP_RL_BUCKETS_MIN, DP_RL_BUCKETS_MAX, DP_RL_BUCKETS_DEFAULT, DP_ETH_PORT_DEFAULT);
}
