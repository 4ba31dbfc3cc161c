/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mcexec: runs memcached ASCII commands (lib/wire/memcache) against the partition stores.
 *
 * The runtime gives it one request datagram and an output array; it parses every command
 * in the datagram, executes it and writes memcached's exact reply datagrams. DPDK-free, no
 * allocation, no locks, no system calls (the caller passes the clocks in).
 *
 * Placement (docs/memcache.md): mcexec_route() tells the runtime where a datagram must
 * run. A single-key command runs on the core owning the key's partition; a multi-key
 * get/gets/gat/gats runs on the receiving core, which reads keys owned elsewhere with
 * store_get_copy_concurrent(). Commands that change a partition the executing core does not
 * own (possible only when one datagram carries several commands) are refused with a
 * SERVER_ERROR line and counted; gat/gats keys owned elsewhere are read here and their
 * new expiry is handed to the runtime (env.touch_remote), which has the owner apply it
 * with mcexec_touch_local(); without that hook they are not touched (gat_remote_untouched).
 *
 * Clocks: now_s is the stores' clock (the same one the binary protocol passes; it must be
 * >= 1), wall_s the Unix time used to read memcached's absolute expiry times.
 */
#ifndef SP_DATAPLANE_MCEXEC_H
#define SP_DATAPLANE_MCEXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/store/store.h"
#include "wire/memcache.h"

/* Counters one executing core keeps; "stats" prints the sum over cores. */
struct mcexec_counters {
	uint64_t datagrams;            /* request datagrams processed */
	uint64_t dropped_frame;        /* dropped like memcached: short, empty or multi-datagram */
	uint64_t commands;             /* commands executed (error replies included) */
	uint64_t truncated;            /* incomplete line or data block at a datagram's end */
	uint64_t error_replies;        /* ERROR / CLIENT_ERROR / SERVER_ERROR lines produced */
	uint64_t out_full;             /* replies cut short: the output array was full */
	uint64_t cross_partition;      /* writes refused: partition owned by another core */
	uint64_t gat_remote_untouched; /* gat/gats keys read from another core, not touched */
	uint64_t gat_remote_forwarded; /* gat/gats touches handed to env.touch_remote */
	uint64_t concurrent_busy;      /* concurrent reads that gave up (answered as misses) */
	uint64_t elsewhere_refused;    /* gets refused: a key's partition is not on this node */
	uint64_t bytes_read;           /* request payload bytes */
	uint64_t bytes_written;        /* reply payload bytes */
	/* memcached's names */
	uint64_t cmd_get, cmd_set, cmd_flush, cmd_touch;
	uint64_t get_hits, get_misses;
	uint64_t delete_hits, delete_misses;
	uint64_t incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t cas_hits, cas_misses, cas_badval;
	uint64_t touch_hits, touch_misses;
	uint64_t store_too_large, store_no_memory;
	uint64_t total_items; /* successful stores */
};

/* Everything "stats" prints, gathered by the runtime (sum of all cores and stores). */
struct mcexec_stats {
	uint32_t pid;
	uint64_t uptime_s;
	uint64_t time_s; /* Unix time */
	uint32_t curr_connections;
	uint32_t threads;
	uint64_t limit_maxbytes;
	uint64_t curr_items;
	uint64_t bytes;
	uint64_t evictions;
	struct mcexec_counters totals;
};

struct mcexec_env {
	uint32_t partitions; /* power of two; partition = sp_key_partition(hash, partitions) */
	/* The store of a partition and whether the calling core owns it. Never NULL. */
	struct store *(*part)(void *ctx, uint32_t partition, bool *owned);
	/* flush_all for the partitions this core does not own: the runtime must apply
	 * store_flush_all(at_s) on their owners. May be NULL when every partition is owned. */
	void (*flush_remote)(void *ctx, uint32_t at_s);
	/* gat/gats on a key owned by another core: the runtime must have that core call
	 * mcexec_touch_local(key, expire_s). May be NULL (the key is then not touched). The
	 * key bytes are only valid during the call. */
	void (*touch_remote)(void *ctx, uint32_t partition, const char *key, uint32_t key_len,
	                     uint32_t expire_s);
	/* Cluster mode: NULL when the partition's data lives on this node (any core), else
	 * the SERVER_ERROR line (without CRLF) a get of one of its keys must answer instead
	 * of a miss. A get/gets/gat/gats naming such a key answers that one line for the whole
	 * command (no VALUE blocks, no END): never a silent miss. May be NULL (single node). */
	const char *(*elsewhere)(void *ctx, uint32_t partition);
	/* Fills the general stats. NULL: only this core's counters are printed. */
	void (*stats)(void *ctx, struct mcexec_stats *out);
	/* "stats reset": zero the counters of every core. NULL: only this core's. */
	void (*stats_reset)(void *ctx);
	void *ctx;
	uint32_t now_s; /* the stores' clock, >= 1 */
	uint64_t wall_s;
	const char *version; /* answered as "VERSION <version>" */
	struct mcexec_counters *counters;
	/* Scratch for values copied from partitions owned elsewhere: >= STORE_VALUE_MAX. */
	uint8_t *copy_buf;
	size_t copy_buf_len;
};

/* Where a datagram has to run. */
enum mcexec_route_kind {
	MCEXEC_ROUTE_ANY = 0, /* no key (version, stats, flush_all, errors): any core */
	MCEXEC_ROUTE_OWNER,   /* the owner of *partition */
	MCEXEC_ROUTE_MULTI,   /* a multi-key get: the receiving core */
};

/* Commands mcexec_route() reads looking for one that names a key. */
#define MCEXEC_ROUTE_SCAN_MAX 32u

/*
 * Says where a request payload (after the frame header) must run, from its first command
 * that names a key (reading at most MCEXEC_ROUTE_SCAN_MAX commands); *partition is set for
 * MCEXEC_ROUTE_OWNER. Pure; can't fail (a payload with no key, or one it cannot read, is
 * MCEXEC_ROUTE_ANY: it only produces keyless or error replies).
 */
enum mcexec_route_kind mcexec_route(const uint8_t *payload, size_t len, uint32_t partitions,
                                    uint32_t *partition);

/*
 * memcached's exptime (0 never, < 0 already expired, <= 30 days relative, else absolute
 * Unix time) as an absolute expiry on the store clock (0 = never). Can't fail.
 */
uint32_t mcexec_expire_s(int32_t exptime, uint32_t now_s, uint64_t wall_s);

/*
 * Executes every command of one request payload (after the frame header) and appends the
 * reply datagrams to out (initialised by the caller with the request id). Returns the
 * number of commands executed. Updates env->counters. Never fails: bad input gets the
 * reply memcached gives and is counted; when out fills up the rest of the datagram is
 * dropped and counted in out_full.
 */
uint32_t mcexec_run(const struct mcexec_env *env, const uint8_t *payload, size_t len,
                    struct sp_mc_out *out);

/*
 * The runtime's entry point: a whole UDP payload (frame header first). Drops what memcached
 * drops (counted in dropped_frame), otherwise resets out for the request id and runs the
 * payload. Returns the number of reply datagrams in out (0: send nothing).
 */
uint32_t mcexec_udp(const struct mcexec_env *env, const uint8_t *udp, size_t len,
                    struct sp_mc_out *out);

/*
 * The owner's half of a forwarded gat: sets the expiry of key (absolute on the store clock,
 * 0 = never) if the item is still live. Returns 0, -SP_ENOTFOUND, or -EINVAL when the
 * calling core does not own the key's partition. Never writes a partition it does not own.
 */
int mcexec_touch_local(const struct mcexec_env *env, const char *key, uint32_t key_len,
                       uint32_t expire_s);

/* Adds every counter of src to dst. Can't fail. */
void mcexec_counters_add(struct mcexec_counters *dst, const struct mcexec_counters *src);

#endif
