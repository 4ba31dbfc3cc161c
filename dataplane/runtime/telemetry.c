/* SPDX-License-Identifier: BSD-3-Clause */
#include "telemetry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"

#define MOD "telemetry"

/* Entries /shardplane/stats adds besides the counters (see cmd_stats). */
#define STATS_EXTRA_ENTRIES 8u

/*
 * The runtime the commands serve, NULL before registration and after detach. Callbacks run
 * on EAL's telemetry threads (one per client connection) and hold served_lock for as long as
 * they read *served, so that once dp_telemetry_detach returns no callback touches the
 * runtime that teardown is about to free.
 */
static pthread_mutex_t served_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dp_runtime *served;

/* Takes served_lock and returns the runtime served, or NULL. Pair with release_served(). */
static struct dp_runtime *
acquire_served(void)
{
	VERIFY(pthread_mutex_lock(&served_lock) == 0);
	return served;
}

static void
release_served(void)
{
	VERIFY(pthread_mutex_unlock(&served_lock) == 0);
}

void
dp_port_totals_get(const struct dp_runtime *rt, struct dp_port_totals *out)
{
	struct rte_eth_stats es;

	ASSERT(rt != NULL);
	ASSERT(out != NULL);
	memset(out, 0, sizeof(*out));
	/* Counters of the devices a reattach replaced, plus the current one's. */
	out->rx_nombuf = rt->port.base.rx_nombuf;
	out->imissed = rt->port.base.imissed;
	out->ierrors = rt->port.base.ierrors;
	out->oerrors = rt->port.base.oerrors;
	if (!rt->port.started || rte_eth_stats_get(rt->port.port_id, &es) != 0)
		return;
	out->rx_nombuf += es.rx_nombuf;
	out->imissed += es.imissed;
	out->ierrors += es.ierrors;
	out->oerrors += es.oerrors;
}

static void
add_u64(void *arg, const char *name, uint64_t value)
{
	rte_tel_data_add_dict_u64(arg, name, value);
}

/* /shardplane/stats: totals over the workers plus the port. */
static int
cmd_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_runtime *rt = acquire_served();
	struct dp_worker_stats sum;
	struct dp_port_totals port;

	(void)cmd;
	(void)params;
	if (rt == NULL) {
		release_served();
		return -ENODEV;
	}
	rte_tel_data_start_dict(d);
	dp_stats_sum(rt->stats, rt->workers, &sum);
	rte_tel_data_add_dict_u64(d, "workers", rt->workers);
	rte_tel_data_add_dict_u64(d, "partitions", rt->partitions);
	dp_stats_foreach(&sum, false, add_u64, d);
	dp_port_totals_get(rt, &port);
	rte_tel_data_add_dict_u64(d, "rx_nombuf", port.rx_nombuf);
	rte_tel_data_add_dict_u64(d, "imissed", port.imissed);
	rte_tel_data_add_dict_u64(d, "ierrors", port.ierrors);
	rte_tel_data_add_dict_u64(d, "oerrors", port.oerrors);
	rte_tel_data_add_dict_u64(d, "mbufs_total", rt->port.pool_size);
	rte_tel_data_add_dict_u64(d, "mbufs_in_use", dp_port_mbufs_in_use(&rt->port));
	release_served();
	return 0;
}

/*
 * /shardplane/workers: one array per scalar counter, indexed by worker. Every array is
 * allocated before any is handed to d: EAL frees the containers of a reply only when the
 * callback succeeds, so a failure must leave d without containers.
 */
static int
cmd_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct rte_tel_data *arrays[RTE_TEL_MAX_DICT_ENTRIES] = {NULL};
	struct dp_runtime *rt;
	unsigned int f;
	unsigned int i;
	int rc = 0;

	(void)cmd;
	(void)params;
	ASSERT(dp_stats_field_count <= RTE_TEL_MAX_DICT_ENTRIES);
	ASSERT(DP_WORKERS_MAX <= RTE_TEL_MAX_ARRAY_ENTRIES);
	for (f = 0; f < dp_stats_field_count; f++) {
		arrays[f] = rte_tel_data_alloc();
		if (arrays[f] == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		rte_tel_data_start_array(arrays[f], RTE_TEL_U64_VAL);
	}
	rt = acquire_served();
	if (rt == NULL) {
		release_served();
		rc = -ENODEV;
		goto fail;
	}
	for (f = 0; f < dp_stats_field_count; f++) {
		for (i = 0; i < rt->workers; i++)
			rte_tel_data_add_array_u64(
			        arrays[f], dp_stats_field_get(&rt->stats[i], &dp_stats_fields[f]));
	}
	release_served();
	rte_tel_data_start_dict(d);
	for (f = 0; f < dp_stats_field_count; f++) {
		/* A container d did not take stays ours to free. */
		if (rte_tel_data_add_dict_container(d, dp_stats_fields[f].name, arrays[f], 0) < 0)
			rte_tel_data_free(arrays[f]);
	}
	return 0;
fail:
	for (f = 0; f < dp_stats_field_count; f++) {
		if (arrays[f] != NULL)
			rte_tel_data_free(arrays[f]);
	}
	return rc;
}

/* /shardplane/worker,<i>: every counter of one worker. */
static int
cmd_worker(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_runtime *rt;
	char *end = NULL;
	unsigned long i;

	(void)cmd;
	if (params == NULL || params[0] < '0' || params[0] > '9')
		return -EINVAL;
	errno = 0;
	i = strtoul(params, &end, 10);
	if (errno != 0 || end == NULL || *end != '\0' || i >= DP_WORKERS_MAX)
		return -EINVAL;
	rt = acquire_served();
	if (rt == NULL || i >= rt->workers) {
		release_served();
		return rt == NULL ? -ENODEV : -EINVAL;
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "worker", i);
	rte_tel_data_add_dict_u64(d, "lcore", rt->lcore_of[i]);
	dp_stats_foreach(&rt->stats[i], false, add_u64, d);
	release_served();
	return 0;
}

/* /shardplane/config: what the node runs with. */
static int
cmd_config(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct dp_runtime *rt = acquire_served();
	char ip[INET_ADDRSTRLEN];
	char mac[RTE_ETHER_ADDR_FMT_SIZE];
	struct in_addr a;

	(void)cmd;
	(void)params;
	if (rt == NULL) {
		release_served();
		return -ENODEV;
	}
	a.s_addr = rt->cfg.ip_be;
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "ip", ip);
	rte_tel_data_add_dict_u64(d, "prefix_len", rt->cfg.prefix_len);
	rte_tel_data_add_dict_u64(d, "port", rt->cfg.port_base);
	rte_tel_data_add_dict_u64(d, "workers", rt->workers);
	rte_tel_data_add_dict_u64(d, "partitions", rt->partitions);
	rte_tel_data_add_dict_u64(d, "memory_mb", rt->cfg.memory_mb);
	rte_tel_data_add_dict_u64(d, "partition_bytes", rt->partition_bytes);
	rte_tel_data_add_dict_u64(d, "busy_poll", rt->cfg.busy_poll);
	rte_tel_data_add_dict_u64(d, "eth_port", rt->port.port_id);
	rte_tel_data_add_dict_string(d, "driver", rt->port.driver);
	snprintf(mac, sizeof(mac), RTE_ETHER_ADDR_PRT_FMT, RTE_ETHER_ADDR_BYTES(&rt->port.mac));
	rte_tel_data_add_dict_string(d, "mac", mac);
	rte_tel_data_add_dict_u64(d, "rss", rt->port.rss);
	rte_tel_data_add_dict_u64(d, "steering", rt->port.steering);
	rte_tel_data_add_dict_u64(d, "epoch", atomic_load(&rt->epoch));
	rte_tel_data_add_dict_u64(d, "state_region", rt->region != NULL);
	release_served();
	return 0;
}

static void
count_entry(void *arg, const char *name, uint64_t value)
{
	unsigned int *n = arg;

	(void)name;
	(void)value;
	(*n)++;
}

int
dp_telemetry_register(struct dp_runtime *rt)
{
	static const struct {
		const char *cmd;
		telemetry_cb fn;
		const char *help;
	} cmds[] = {
	        {"/shardplane/stats", cmd_stats, "Node totals. No parameters."},
	        {"/shardplane/workers", cmd_workers,
	         "Counters per worker, as arrays. No parameters."},
	        {"/shardplane/worker", cmd_worker,
	         "Counters of one worker. Parameter: worker index."},
	        {"/shardplane/config", cmd_config, "The node's configuration. No parameters."},
	};
	struct dp_worker_stats zero;
	unsigned int entries = 0;
	unsigned int i;
	int rc;

	ASSERT(rt != NULL);
	ASSERT(rt->stats != NULL);
	/* A dict holds RTE_TEL_MAX_DICT_ENTRIES; /shardplane/stats must not lose counters. */
	memset(&zero, 0, sizeof(zero));
	dp_stats_foreach(&zero, false, count_entry, &entries);
	if (entries + STATS_EXTRA_ENTRIES > RTE_TEL_MAX_DICT_ENTRIES) {
		SP_LOG_ERR(MOD, "%u counters do not fit one telemetry reply (%u entries)", entries,
		           RTE_TEL_MAX_DICT_ENTRIES);
		return -E2BIG;
	}
	VERIFY(pthread_mutex_lock(&served_lock) == 0);
	served = rt;
	VERIFY(pthread_mutex_unlock(&served_lock) == 0);
	for (i = 0; i < SP_ARRAY_SIZE(cmds); i++) {
		rc = rte_telemetry_register_cmd(cmds[i].cmd, cmds[i].fn, cmds[i].help);
		if (rc != 0) {
			SP_LOG_ERR(MOD, "register %s: %s", cmds[i].cmd, sp_strerror(rc));
			return rc;
		}
	}
	return 0;
}

void
dp_telemetry_detach(void)
{
	/* Waits for a callback in progress: it holds served_lock while it reads the runtime. */
	VERIFY(pthread_mutex_lock(&served_lock) == 0);
	served = NULL;
	VERIFY(pthread_mutex_unlock(&served_lock) == 0);
}
