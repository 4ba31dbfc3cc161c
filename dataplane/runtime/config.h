/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shardplane's own command line (everything after EAL's `--`): parsing and validation.
 * Pure C, no DPDK, so that every flag and every rejection is unit-tested.
 */
#ifndef SP_DP_CONFIG_H
#define SP_DP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"

#define DP_PARTITIONS_DEFAULT   64u
#define DP_PARTITIONS_MAX       65536u
#define DP_PORT_DEFAULT         9000u
#define DP_MEMORY_MB_DEFAULT    64u
#define DP_MEMORY_MB_MAX        (1024u * 1024u)
#define DP_WORKERS_MAX          64u
#define DP_STATS_INTERVAL_S_MAX 86400u
/* How long a node waits for the owner of a request it forwarded (--forward-timeout-ms). */
#define DP_FWD_TIMEOUT_MS_DEFAULT 500u
#define DP_FWD_TIMEOUT_MS_MIN     10u
#define DP_FWD_TIMEOUT_MS_MAX     60000u
#define DP_ETH_PORT_DEFAULT       0u
/* Token buckets per partition of the RATELIMIT operation (--ratelimit-buckets; tasks). */
#define DP_RL_BUCKETS_DEFAULT 1024u
#define DP_RL_BUCKETS_MIN     8u
#define DP_RL_BUCKETS_MAX     (256u * 1024u)
#define DP_ERRBUF_LEN         256u

struct dp_config {
	uint32_t ip_be;           /* our IPv4 address, network byte order */
	uint8_t prefix_len;       /* its prefix length, 1..32 */
	uint16_t port_base;       /* binary protocol: worker i listens on port_base + i */
	uint32_t partitions;      /* power of two */
	uint32_t memory_mb;       /* store memory per worker */
	uint32_t workers;         /* 0: every lcore but the main one */
	uint16_t memcached_port;  /* 0: memcached protocol off */
	const char *state_region; /* NULL: single-node routing */
	bool busy_poll;
	bool mac_set;
	uint8_t mac[6];
	uint32_t stats_interval_s;   /* 0: no periodic stats line */
	uint32_t forward_timeout_ms; /* owner reply wait for a forwarded request */
	uint32_t ratelimit_buckets;  /* RATELIMIT buckets per partition (power of two) */
	enum sp_log_level log_level;
	uint16_t eth_port; /* DPDK port id to serve */
	bool help;         /* --help was given: print usage and exit 0 */
};

/* Fills cfg with the defaults documented in --help. Can't fail. */
void dp_config_defaults(struct dp_config *cfg);

/*
 * Parses argv[0..argc) (Shardplane's options only, argv[0] is the program name) into
 * cfg, which must hold the defaults. Returns 0, or -EINVAL with a message naming the
 * flag, the value and the fix written to err (err_len bytes). --ip is mandatory unless
 * --help is given. Never exits, never prints.
 */
int dp_config_parse(struct dp_config *cfg, int argc, char **argv, char *err, size_t err_len);

/*
 * Checks what needs the worker count (known only after EAL start-up): ports
 * port_base..port_base+workers-1 fit in 16 bits and do not hold the memcached port, and
 * every worker owns at least one partition. Returns 0 or -EINVAL with err filled.
 */
int dp_config_check_workers(const struct dp_config *cfg, uint32_t workers, char *err,
                            size_t err_len);

/* Prints --help (Shardplane's options) to out. */
void dp_config_usage(FILE *out, const char *prog);

#endif
