/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The replicated cluster state: members (with their control-plane and dataplane
 * addresses), the partition map with its epoch, and a configuration key/value map.
 *
 * Every change is a command, encoded into a Raft entry by cluster_cmd_encode() and applied
 * by cluster_sm_apply() on every member in log order. Apply is deterministic: it depends
 * only on the state and the command bytes, validates everything, and leaves the state
 * untouched when it refuses a command (returning why). Snapshots are a self-checking
 * byte image (cluster_sm_snapshot / cluster_sm_restore).
 */
#ifndef SP_CONTROL_CLUSTER_SM_H
#define SP_CONTROL_CLUSTER_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/partmap.h"

#define CLUSTER_ADDR_MAX 64u /* "host:port" including NUL */
/*
 * The configuration store's hard limits, the same on every member (apply refuses past
 * them, deterministically). The operator's limits (shardplane-cp --config-max-*, at most
 * these) are checked when a member takes a client's request. CLUSTER_CONFIG_BYTES_MAX
 * keeps a snapshot (keys, values and CLUSTER_CONFIG_ITEM_BYTES per item, plus members and
 * map) well inside one log record.
 */
#define CLUSTER_CONFIG_KEYS_MAX   1000000u
#define CLUSTER_CONFIG_KEY_MAX    128u /* bytes, printable ASCII, no spaces or '=' */
#define CLUSTER_CONFIG_VALUE_MAX  262144u
#define CLUSTER_CONFIG_BYTES_MAX  (48u << 20)
#define CLUSTER_CONFIG_ITEM_BYTES 16u /* what one item counts beyond its key and value */
/* Defaults of the operator's limits. */
#define CLUSTER_CONFIG_KEYS_DEFAULT  100000u
#define CLUSTER_CONFIG_VALUE_DEFAULT 65536u
#define CLUSTER_CONFIG_BYTES_DEFAULT (32u << 20)
#define CLUSTER_CMD_BYTES_MAX        (16u + SP_PARTITIONS_MAX * 8u)

enum cluster_cmd_type {
	CLUSTER_CMD_INIT = 1,      /* set P once: u32 partitions */
	CLUSTER_CMD_MEMBER_UPSERT, /* id, name, peer and client addresses */
	CLUSTER_CMD_MEMBER_DP,     /* id, the node's dataplane address and workers */
	CLUSTER_CMD_MEMBER_REMOVE, /* id */
	CLUSTER_CMD_MEMBER_ROLE,   /* id, voter or learner (mirrors Raft membership) */
	CLUSTER_CMD_MAP_SET,       /* epoch, partition map */
	CLUSTER_CMD_CONFIG_SET,    /* key, value */
	CLUSTER_CMD_CONFIG_DEL,    /* key */
	CLUSTER_CMD_MEMBER_HEALTH, /* id, down (the leader's failure detector) */
	CLUSTER_CMD_TYPE_END,
};

struct cluster_member {
	uint64_t id; /* Raft node id, < 2^32 (it is the dataplane's node id too) */
	char name[SP_MEMBER_NAME_MAX];
	char peer_addr[CLUSTER_ADDR_MAX];
	char client_addr[CLUSTER_ADDR_MAX];
	bool voter;
	bool dp_known; /* the dataplane fields below have been reported */
	bool down;     /* the leader found it failed; it gets no partitions until up again */
	uint32_t ipv4_be;
	uint8_t mac[6];
	uint16_t binary_port;
	uint16_t memcached_port;
	uint16_t workers;
};

/* A decoded command. Pointers point into the encoded bytes. */
struct cluster_cmd {
	uint32_t type; /* enum cluster_cmd_type */
	struct cluster_member member;
	uint32_t partitions;
	uint64_t epoch;
	const struct sp_map_entry *map; /* MAP_SET: partitions entries (unaligned-safe copy) */
	const char *key;
	uint32_t key_len;
	const char *value;
	uint32_t value_len;
};

/* One configuration item: one allocation holding the key and the value (each
 * NUL-terminated; value points into the same block). */
struct cluster_config_item {
	uint32_t key_len;
	uint32_t value_len;
	char *value;
	char key[];
};

struct cluster_sm {
	uint32_t partitions; /* 0 until INIT */
	uint64_t epoch;      /* of the map; 0 until the first MAP_SET */
	uint32_t n_members;
	struct cluster_member members[SP_MEMBERS_MAX];
	struct sp_map_entry *map;     /* SP_PARTITIONS_MAX entries */
	struct sp_map_entry *cmd_map; /* the map of the MAP_SET being applied (same size) */
	uint32_t n_config;            /* items, sorted by key */
	uint32_t config_cap;
	uint64_t config_bytes; /* sum of cluster_config_item_bytes() */
	struct cluster_config_item **config;
	uint64_t applied_cmds;
	uint64_t refused_cmds;
};

/* Allocates an empty state. Returns NULL on ENOMEM. */
struct cluster_sm *cluster_sm_new(void);
void cluster_sm_free(struct cluster_sm *sm);

/*
 * Encodes cmd into buf (cap bytes). Returns the length, or -SP_ETOOBIG when it does not
 * fit, -EINVAL for a command that could never apply (bad type, oversized field).
 */
int cluster_cmd_encode(const struct cluster_cmd *cmd, uint8_t *buf, size_t cap);

/*
 * Decodes and validates the bytes of a command. map entries are copied into map_buf
 * (SP_PARTITIONS_MAX entries) for MAP_SET. Returns 0, or -SP_EMALFORMED / -SP_ETRUNCATED.
 */
int cluster_cmd_decode(const uint8_t *buf, size_t len, struct cluster_cmd *cmd,
                       struct sp_map_entry *map_buf);

/*
 * Applies an encoded command. Returns 0, or a negative code saying why it was refused
 * (-SP_EMALFORMED, -SP_ENOTFOUND, -SP_EEXISTS, -SP_EVERSION for a map epoch that does not
 * advance, -SP_EFULL, -SP_ETOOBIG), with the state unchanged. When applied is not NULL it
 * receives the command as decoded (type 0 when the bytes did not decode), so a caller that
 * acts on what was applied never decodes the entry again; its pointers point into buf and
 * into sm (the map of a MAP_SET), valid until the next apply. Checks the state's invariants
 * afterwards in builds with assertions.
 */
int cluster_sm_apply(struct cluster_sm *sm, const uint8_t *buf, size_t len,
                     struct cluster_cmd *applied);

/* What one item counts against CLUSTER_CONFIG_BYTES_MAX and --config-max-bytes. */
static inline uint64_t
cluster_config_item_bytes(uint32_t key_len, uint32_t value_len)
{
	return (uint64_t)key_len + value_len + CLUSTER_CONFIG_ITEM_BYTES;
}

const struct cluster_member *cluster_sm_member(const struct cluster_sm *sm, uint64_t id);
const struct cluster_config_item *cluster_sm_config_get(const struct cluster_sm *sm,
                                                        const char *key);

/*
 * Serializes the whole state into a freshly allocated buffer (*out, *len): a header with a
 * format version and a CRC32C over the rest. Returns 0 or -ENOMEM.
 */
int cluster_sm_snapshot(const struct cluster_sm *sm, uint8_t **out, size_t *len);

/*
 * Replaces sm's contents with a snapshot image after validating all of it (CRC, version,
 * every field). Returns 0, or -SP_ECORRUPT / -SP_EVERSION with sm unchanged.
 */
int cluster_sm_restore(struct cluster_sm *sm, const uint8_t *buf, size_t len);

/*
 * Fills st (map_capacity >= partitions) with what the dataplane of node self needs: the
 * members whose dataplane is known, and the map. Returns 0, -SP_ENOTFOUND before INIT or
 * the first map, or -SP_ETOOBIG.
 */
int cluster_sm_to_region_state(const struct cluster_sm *sm, uint64_t self,
                               struct sp_cluster_state *st);

/* Checks the state's invariants (ids and names unique and valid, worker counts, P a power
 * of two, an epoch only with partitions, every map entry's node, worker and flags, the
 * configuration's counts and bytes within their limits); for asserts and tests. It costs
 * O(members^2 + P): cluster_sm_apply runs it after every apply in builds with assertions. */
bool cluster_sm_check_invariants(const struct cluster_sm *sm);

/* Walks every configuration item: keys valid, sorted and unique, values within their
 * limit, the bytes add up to config_bytes. O(items), so for tests and restores, not for
 * every apply. */
bool cluster_sm_check_config(const struct cluster_sm *sm);

/* True when every member with known dataplane fields and the map agree (all map entries
 * name such members and valid workers). */
bool cluster_sm_map_valid(const struct cluster_sm *sm);

#endif
