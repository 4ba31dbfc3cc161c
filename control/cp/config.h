/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-cp's flags (main.c parses them) and the defaults they start from: read by
 * every module, written by none after start.
 */
#ifndef SP_CP_CONFIG_H
#define SP_CP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/partmap.h"
#include "state/cluster_sm.h"

#define CP_TICK_MS            25u    /* one Raft tick, and every module's clock */
#define CP_AUTH_TIMEOUT_MS    1000u  /* default of --auth-timeout-ms */
#define CP_SNAPSHOT_ENTRIES   10000u /* default of --snapshot-entries */
#define CP_LEASE_MS_DEFAULT   500u   /* --lease-ms */
#define CP_FAILURE_TIMEOUT_MS 1000u  /* --failure-timeout-ms */
#define CP_HOLD_DOWN_MS       2000u  /* --hold-down-ms */

struct cp_config {
	char name[SP_MEMBER_NAME_MAX];
	char data_dir[512];
	char listen_peer[CLUSTER_ADDR_MAX];
	char listen_client[CLUSTER_ADDR_MAX];
	char advertise_client[CLUSTER_ADDR_MAX];
	char initial_cluster[4096];
	bool initial_new; /* --initial-cluster-state new */
	char secret_file[512];
	char state_region[512];
	char metrics[CLUSTER_ADDR_MAX];
	uint32_t partitions;
	uint32_t snapshot_entries; /* applied entries between snapshots */
	uint32_t auth_timeout_ms;  /* a connection must authenticate within this */
	uint32_t config_max_keys;  /* the operator's limits on the configuration store */
	uint32_t config_max_value;
	uint64_t config_max_bytes;
	/* This node's dataplane, as the cluster should know it. */
	bool dp_set;
	uint32_t dp_ipv4_be;
	uint8_t dp_mac[6];
	uint16_t dp_port;
	uint16_t dp_memcached_port;
	uint16_t dp_workers;
	uint32_t lease_ms;           /* --lease-ms */
	uint32_t failure_timeout_ms; /* --failure-timeout-ms */
	uint32_t hold_down_ms;       /* --hold-down-ms */
};

#endif
