/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The node's shared region: one file (on hugetlbfs, or /dev/shm without hugepages) that
 * both processes of a node map with MAP_SHARED.
 *
 *   - the control plane is the only writer of the cluster-state section (members,
 *     partition map, epoch) and reads the dataplane section;
 *   - the dataplane is the only writer of the dataplane section (heartbeat, counters) and
 *     reads the cluster state.
 *
 * Layout, version SP_REGION_VERSION (all integers host byte order; see docs/region.md):
 *
 *   offset 0                      struct sp_region_header (SP_REGION_HEADER_SIZE bytes)
 *   header.state_offset[0]        state slot 0: struct sp_region_state + map[partitions_max]
 *   header.state_offset[1]        state slot 1: same
 *   header.dp_offset              struct sp_region_dataplane
 *
 * Torn reads are impossible by construction: the cluster state is double-buffered. The
 * writer fills the slot that is not active (bracketed by that slot's sequence counter:
 * odd while it is written), then publishes it by storing state_active and bumping
 * state_generation with release ordering. A reader loads state_active (acquire), copies
 * the slot, and accepts the copy only if the slot's sequence was even and unchanged
 * across the copy and its CRC32C matches; otherwise it retries, at most
 * SP_REGION_READ_RETRIES_MAX times, then reports -SP_EBUSY. A writer that dies
 * mid-write leaves the active slot intact. The dataplane section is a plain seqlock.
 */
#ifndef SP_CLUSTER_REGION_H
#define SP_CLUSTER_REGION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/partmap.h"

#define SP_REGION_MAGIC            UINT64_C(0x4e4f494745525053) /* "SPREGION" little-endian */
#define SP_REGION_VERSION          2u
#define SP_REGION_HEADER_SIZE      4096u
#define SP_REGION_ALIGN            4096u /* every section starts on a page */
#define SP_REGION_READ_RETRIES_MAX 1000u /* torn or in-progress copies before -SP_EBUSY */
#define SP_REGION_SIZE_MAX         (UINT64_C(64) << 20) /* a larger file is not ours */

/* The fixed part of the file. Everything up to header_crc is immutable after creation. */
struct sp_region_header {
	uint64_t magic;          /* SP_REGION_MAGIC */
	uint32_t version;        /* SP_REGION_VERSION */
	uint32_t header_size;    /* SP_REGION_HEADER_SIZE */
	uint64_t total_size;     /* file size in bytes */
	uint32_t partitions_max; /* map capacity of each state slot (power of two) */
	uint32_t members_max;    /* SP_MEMBERS_MAX */
	uint64_t state_offset[2];
	uint64_t state_size; /* bytes of one state slot, including its map */
	uint64_t dp_offset;
	uint64_t dp_size;
	uint32_t header_crc; /* CRC32C of the bytes above it */
	uint32_t reserved0;
	/* Mutable, written by the control plane only. */
	_Atomic uint64_t state_generation; /* publications so far; 0 = none yet */
	_Atomic uint32_t state_active;     /* slot (0 or 1) of the latest publication */
	uint32_t reserved1;
	/* The node's ownership lease, written by the control plane only (renewed without a
	 * new publication; docs/control-plane.md "Leases"). */
	_Atomic uint64_t lease_expiry_mono_ns; /* CLOCK_MONOTONIC; 0 = no lease */
	_Atomic uint32_t membership;           /* enum sp_region_membership */
	uint32_t reserved2;
};

/* What the control plane says of this node's place in the cluster. */
enum sp_region_membership {
	SP_REGION_MEMBER_UNKNOWN = 0, /* not said yet (fresh region) */
	SP_REGION_MEMBER_IN = 1,      /* a member: serve while the lease is valid */
	SP_REGION_MEMBER_REMOVED = 2, /* removed from the cluster: never serve again */
	SP_REGION_MEMBER_LAST,
};

/* One state slot; map[partitions_max] follows it. */
struct sp_region_state {
	_Atomic uint64_t seq; /* odd while the writer is filling this slot */
	uint64_t generation;  /* publication number of this content */
	uint64_t epoch;
	uint64_t published_wall_ns;
	uint32_t partitions;
	uint32_t self_node_id;
	uint32_t member_count;
	uint32_t crc; /* CRC32C from `generation` to the last used map entry, crc taken as 0 */
	uint8_t reserved[16];
	struct sp_member members[SP_MEMBERS_MAX];
	struct sp_map_entry map[];
};

/* What the dataplane is doing, as its heartbeat says. */
enum sp_dp_state {
	SP_DP_STOPPED = 0, /* never started, or exited cleanly */
	SP_DP_STARTING = 1,
	SP_DP_RUNNING = 2,
	SP_DP_SWITCHING = 3, /* installing a new routing table */
	SP_DP_STOPPING = 4,
	SP_DP_STATE_LAST,
};

/* Node-wide counter totals the dataplane publishes (sums over its workers). */
struct sp_dp_counters {
	uint64_t rx_pkts;
	uint64_t tx_pkts;
	uint64_t requests;
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	uint64_t ring_full_drops;
	uint64_t tx_drops;
	uint64_t bad_pkts;
	uint64_t rx_nombuf;
	uint64_t imissed;
	uint64_t forwarded;  /* requests handed to another worker */
	uint64_t deferred;   /* requests held while their partition was moving */
	uint64_t wrong_node; /* requests for partitions of another node */
	uint64_t epoch_switches;
	uint64_t reserved[9];
};

/* Whether the dataplane serves keys, and if not why (its routing table's mode). */
enum sp_dp_serving {
	SP_DP_NOT_READY = 0,   /* no map installed yet: every key answered NOT_READY */
	SP_DP_SERVING = 1,     /* the map is installed and the lease valid */
	SP_DP_NO_LEASE = 2,    /* the lease expired: every key answered NOT_SERVING */
	SP_DP_REMOVED = 3,     /* the node was removed: every key answered NOT_SERVING */
	SP_DP_UNCLUSTERED = 4, /* no region: single-node mode, serves its default map */
	SP_DP_SERVING_LAST,
};

/* The dataplane's heartbeat, its configuration and counters. */
struct sp_dp_status {
	uint64_t heartbeat_mono_ns; /* CLOCK_MONOTONIC (system-wide) at the last beat */
	uint64_t heartbeat_wall_ns; /* CLOCK_REALTIME at the last beat */
	uint64_t applied_epoch;     /* epoch of the routing table in use */
	uint64_t applied_generation;
	uint32_t pid;
	uint32_t state; /* enum sp_dp_state */
	uint32_t workers;
	uint32_t partitions;
	/* The configuration it runs with, which the cluster must match (version 2). */
	uint32_t ipv4_be; /* network byte order */
	uint8_t mac[6];
	uint16_t binary_port;
	uint16_t memcached_port;     /* 0 = none */
	uint16_t serving;            /* enum sp_dp_serving */
	uint64_t refused_generation; /* last publication it refused (0 = none) */
	struct sp_dp_counters counters;
};

struct sp_region_dataplane {
	_Atomic uint64_t seq; /* odd while the dataplane is writing */
	uint64_t reserved;
	struct sp_dp_status status;
};

/* The layout is an interface between two processes: any change is a new version. */
_Static_assert(sizeof(struct sp_region_header) == 112, "header layout (docs/region.md)");
_Static_assert(offsetof(struct sp_region_header, lease_expiry_mono_ns) == 96, "header layout");
_Static_assert(offsetof(struct sp_region_header, state_generation) == 80, "header layout");
_Static_assert(sizeof(struct sp_region_state) == 4160, "state slot layout (docs/region.md)");
_Static_assert(offsetof(struct sp_region_state, members) == 64, "state slot layout");
_Static_assert(sizeof(struct sp_region_dataplane) == 280, "dataplane layout (docs/region.md)");
_Static_assert(offsetof(struct sp_dp_status, refused_generation) == 64, "dataplane layout");
_Static_assert(sizeof(struct sp_region_header) <= SP_REGION_HEADER_SIZE, "header fits");
_Static_assert(sizeof(struct sp_region_state) % 8 == 0, "map entries stay aligned");
_Static_assert(sizeof(struct sp_dp_counters) == 24 * 8, "counters are part of the layout");

/* An open, validated mapping of a region file. */
struct sp_region;

/*
 * Creates the region file at path for maps of up to partitions_max partitions (a power of
 * two <= SP_PARTITIONS_MAX), writes the header, and maps it writable. The file is built
 * under a temporary name and renamed over path, so an existing region is replaced whole
 * (a process still mapping it keeps the old file; sp_region_replaced tells it). The size
 * is rounded up to the file system's block size (the huge page size on hugetlbfs).
 * Nothing is published yet (generation 0). Returns 0 and *out, or a negative errno /
 * SP_E* code with a sentence in why.
 */
int sp_region_create(const char *path, uint32_t partitions_max, struct sp_region **out, char *why,
                     size_t why_len);

/*
 * Maps an existing region and validates its header: magic, version, header CRC, sizes and
 * offsets against the file size and against what this version computes from
 * partitions_max. writable=false maps it read-only (then only the read functions work).
 * Returns 0 and *out; -ENOENT etc. from the system, -SP_ETRUNCATED (file shorter than its
 * header or total_size), -SP_ECORRUPT (magic, CRC or sizes), -SP_EVERSION (other layout
 * version), each with a sentence in why. Never crashes on any file content.
 */
int sp_region_open(const char *path, bool writable, struct sp_region **out, char *why,
                   size_t why_len);

/*
 * The control plane's start-up: opens the region at path when it is valid and has this
 * partitions_max (keeping what it holds: the last publication, the dataplane's
 * heartbeat); otherwise (missing, corrupt, other version or capacity) creates a new one.
 * *created says which. Errors such as -EACCES are returned, never "fixed" by replacing the
 * file. Returns 0 or a negative code with a sentence in why.
 */
int sp_region_open_or_create(const char *path, uint32_t partitions_max, struct sp_region **out,
                             bool *created, char *why, size_t why_len);

/*
 * True when the file at the region's path is no longer the one mapped (it was re-created
 * or removed): the holder should close and open it again. Makes one stat() call; for a
 * housekeeping loop, not a hot path.
 */
bool sp_region_replaced(const struct sp_region *r);

/* Unmaps and closes; NULL is allowed. Does not remove the file. */
void sp_region_close(struct sp_region *r);

/* Read attempts through this handle that raced the writer and were retried. */
uint64_t sp_region_read_retries(const struct sp_region *r);

/* Map capacity of each state slot. */
uint32_t sp_region_partitions_max(const struct sp_region *r);

/*
 * The number of the latest publication (0 = nothing published): one acquire load, no
 * system call, cheap enough to poll from a housekeeping loop.
 */
uint64_t sp_region_generation(const struct sp_region *r);

/*
 * Publishes a new cluster state (control plane, or the test tool). Validates st first
 * (sp_cluster_state_validate), requires st->partitions <= partitions_max and st->epoch
 * >= the published epoch (-SP_EVERSION otherwise: epochs never go backwards). Writes the
 * inactive slot, then makes it active. One writer at a time (the caller serializes).
 * Returns 0, or a negative code with a sentence in why.
 */
int sp_region_publish(struct sp_region *r, const struct sp_cluster_state *st, char *why,
                      size_t why_len);

/*
 * Reads the latest published state into st (st->map_capacity >= the published P) and
 * validates it. Returns 0; -SP_ENOTFOUND when nothing is published yet; -SP_EBUSY when
 * SP_REGION_READ_RETRIES_MAX attempts all raced with the writer; -SP_ECORRUPT when the
 * slot is stable but its CRC, sizes or invariants are wrong; -SP_ETOOBIG when st is too
 * small. Sentences in why. Never returns a mix of two publications.
 */
int sp_region_read(struct sp_region *r, struct sp_cluster_state *st, char *why, size_t why_len);

/*
 * Writes the dataplane's status (dataplane only, one writer). Returns 0, or -EROFS on a
 * read-only mapping. Takes tens of nanoseconds; no system call.
 */
int sp_region_status_write(struct sp_region *r, const struct sp_dp_status *s);

/*
 * Reads the dataplane's status. Returns 0; -SP_ENOTFOUND when no heartbeat was ever
 * written; -SP_EBUSY after SP_REGION_READ_RETRIES_MAX racing attempts (also the answer
 * while a dataplane that died mid-write has left the section odd: the next dataplane
 * repairs it at its first write).
 */
int sp_region_status_read(struct sp_region *r, struct sp_dp_status *s);

/*
 * The lease (control plane only): expiry_mono_ns is a CLOCK_MONOTONIC time (0 revokes it)
 * and membership an enum sp_region_membership. Two release stores; no system call.
 * Returns 0, or -EROFS on a read-only mapping, -EINVAL for a bad membership value.
 */
int sp_region_lease_write(struct sp_region *r, uint64_t expiry_mono_ns, uint32_t membership);

/* The lease as last written: two acquire loads, cheap enough for every housekeeping step. */
void sp_region_lease_read(const struct sp_region *r, uint64_t *expiry_mono_ns,
                          uint32_t *membership);

/*
 * What a dataplane whose map is installed (map_installed) does at now_mono_ns with the
 * lease (expiry, membership) it read: SP_DP_NOT_READY before its first map, SP_DP_REMOVED
 * once removed, SP_DP_SERVING while now < expiry, SP_DP_NO_LEASE otherwise. Pure.
 */
enum sp_dp_serving sp_region_serving(bool map_installed, uint64_t expiry_mono_ns,
                                     uint32_t membership, uint64_t now_mono_ns);

/* Name of a dp state or member state for messages ("running", "active"); never NULL. */
const char *sp_dp_state_name(uint32_t state);
const char *sp_dp_serving_name(uint32_t serving);
const char *sp_member_state_name(uint32_t state);

#endif
