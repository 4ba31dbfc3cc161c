/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cluster state as both processes see it: members, the partition map (P partitions to
 * {node, worker}) and its epoch. Pure C, no I/O: the control plane fills it, the shared
 * region (region.h) carries it, the dataplane's routing table is built from it.
 *
 * The member and map-entry structs are also the on-file layout of the shared region, so
 * their sizes are fixed (checked at compile time) and every field has a fixed width.
 */
#ifndef SP_CLUSTER_PARTMAP_H
#define SP_CLUSTER_PARTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_PARTITIONS_MAX  65536u /* P is a power of two in [1, SP_PARTITIONS_MAX] */
#define SP_MEMBERS_MAX     64u    /* members of one cluster */
#define SP_WORKERS_MAX     128u   /* worker lcores of one node */
#define SP_MEMBER_NAME_MAX 32u    /* name bytes including the terminating NUL */
#define SP_CLUSTER_WHY_MAX 192u   /* size of an error-explanation buffer */

/* A member's life cycle, as the control plane reports it. */
enum sp_member_state {
	SP_MEMBER_NONE = 0, /* never valid in a published state */
	SP_MEMBER_ACTIVE = 1,
	SP_MEMBER_LEARNER = 2,
	SP_MEMBER_LEAVING = 3,
	SP_MEMBER_DOWN = 4,
	SP_MEMBER_STATE_LAST,
};

/* One member of the cluster: 64 bytes, host byte order except ipv4_be. */
struct sp_member {
	uint32_t node_id;              /* nonzero, unique in the cluster */
	uint32_t ipv4_be;              /* dataplane IPv4 address, network byte order */
	uint8_t mac[6];                /* dataplane MAC address */
	uint16_t binary_port;          /* UDP port of the binary protocol */
	uint16_t memcached_port;       /* UDP port of the memcached protocol, 0 = none */
	uint16_t worker_count;         /* worker lcores, in [1, SP_WORKERS_MAX] */
	uint32_t state;                /* enum sp_member_state */
	char name[SP_MEMBER_NAME_MAX]; /* NUL-terminated */
	uint8_t reserved[8];           /* zero */
};

#define SP_MAP_F_FENCED UINT16_C(0x0001) /* being moved: nobody serves it (NOT_SERVING) */
#define SP_MAP_F_ALL    SP_MAP_F_FENCED

/* Where one partition lives: 8 bytes. */
struct sp_map_entry {
	uint32_t node_id; /* a member's node_id (the owner, or the owner it is leaving) */
	uint16_t worker;  /* worker index on that node, < its worker_count */
	uint16_t flags;   /* SP_MAP_F_*; other bits zero */
};

_Static_assert(sizeof(struct sp_member) == 64, "sp_member is part of the region layout");
_Static_assert(sizeof(struct sp_map_entry) == 8, "sp_map_entry is part of the region layout");

/*
 * A whole cluster state. `map` points at map_capacity entries owned by whoever made the
 * struct (sp_cluster_state_new allocates them together); the first `partitions` are used.
 * Epochs start at 1 and never go backwards; generation counts publications in a region
 * (filled in by sp_region_read, ignored by sp_region_publish).
 */
struct sp_cluster_state {
	uint64_t epoch;
	uint64_t generation;
	uint32_t partitions;
	uint32_t self_node_id; /* the node this region belongs to */
	uint32_t member_count;
	uint32_t map_capacity;
	struct sp_member members[SP_MEMBERS_MAX];
	struct sp_map_entry *map;
};

static inline bool
sp_is_power_of_two(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/*
 * Allocates a zeroed state whose map holds map_capacity entries (a power of two, at most
 * SP_PARTITIONS_MAX). Returns NULL with errno EINVAL (bad capacity) or ENOMEM.
 */
struct sp_cluster_state *sp_cluster_state_new(uint32_t map_capacity);

/* Frees a state from sp_cluster_state_new; NULL is allowed. */
void sp_cluster_state_free(struct sp_cluster_state *st);

/* Copies src into dst (dst->map_capacity must be >= src->partitions). Returns 0 or
 * -SP_ETOOBIG. */
int sp_cluster_state_copy(struct sp_cluster_state *dst, const struct sp_cluster_state *src);

/*
 * The default map: partition p -> (node_id, p % workers). Returns 0, or -EINVAL when
 * partitions is not a power of two in range or workers is not in [1, SP_WORKERS_MAX].
 */
int sp_partmap_default(struct sp_map_entry *map, uint32_t partitions, uint32_t node_id,
                       uint32_t workers);

/*
 * Fills st as a single-node cluster: one ACTIVE member (node_id, name, address fields
 * zeroed for the caller to set), epoch 1, the default map. Returns 0 or -EINVAL.
 */
int sp_cluster_state_single(struct sp_cluster_state *st, uint32_t partitions, uint32_t node_id,
                            uint32_t workers, const char *name);

/* Node id -> position in members[], sorted for binary search (maps name a member per
 * partition, so per-entry lookups must be cheap). */
struct sp_member_index {
	uint32_t count;
	uint32_t node_id[SP_MEMBERS_MAX];
	uint8_t member[SP_MEMBERS_MAX];
};

/* Builds the index of st's members (at most SP_MEMBERS_MAX are taken). Can't fail. */
void sp_member_index_build(struct sp_member_index *ix, const struct sp_cluster_state *st);

/* Returns the position in members[] of node_id, or -1. O(log members). */
int sp_member_index_find(const struct sp_member_index *ix, uint32_t node_id);

/* Returns the member with that node id, or NULL. */
const struct sp_member *sp_cluster_find_member(const struct sp_cluster_state *st, uint32_t node_id);

/*
 * Checks every invariant of a state: epoch >= 1; P a power of two, <= SP_PARTITIONS_MAX
 * and <= map_capacity; 1..SP_MEMBERS_MAX members with nonzero unique ids, NUL-terminated
 * names, worker_count in [1, SP_WORKERS_MAX] and a valid state; self_node_id among them;
 * every map entry naming a member and a worker below that member's worker_count; reserved
 * fields zero. Returns 0, or a negative code (-SP_EMALFORMED, -SP_ETOOBIG) with a
 * sentence naming the field, value and limit in why (when why is not NULL).
 */
int sp_cluster_state_validate(const struct sp_cluster_state *st, char *why, size_t why_len);

#endif
