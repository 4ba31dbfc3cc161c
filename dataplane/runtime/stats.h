/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker counters. Each worker writes only its own block (cache-line aligned, so two
 * workers never share a line); the main lcore reads them with relaxed loads for telemetry,
 * the periodic line and the exit report. Nothing here locks or allocates.
 */
#ifndef SP_DP_STATS_H
#define SP_DP_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_common.h>

#include "net/net.h"
#include "wire/binproto.h"

/* Reasons the runtime itself drops a frame or a request (beyond net and the decoder). */
enum dp_drop {
	DP_DROP_FRAGMENT = 0, /* IPv4 fragment: no reassembly */
	DP_DROP_NO_SERVICE,   /* UDP to a port nobody serves */
	DP_DROP_HANDOFF_HOPS, /* handed on more than DP_HANDOFF_HOPS_MAX times */
	DP_DROP_NOMBUF,       /* no mbuf for a reply or a hand-off copy */
	DP_DROP_DEFER_FULL,   /* the defer queue and our own ring were both full */
	DP_DROP_SHUTDOWN,     /* deferred datagrams still held when the worker stopped */
	DP_DROP_SEGMENTED,    /* a frame over several mbufs: larger than any we serve */
	DP_DROP_COUNT,
};

struct dp_worker_stats {
	uint64_t rx_pkts;
	uint64_t rx_bytes;
	uint64_t tx_pkts;
	uint64_t tx_bytes;
	uint64_t tx_drops;   /* replies dropped: TX backlog full */
	uint64_t tx_retries; /* tx_burst calls that left frames for later */
	uint64_t arp_replies;
	uint64_t icmp_replies;
	uint64_t dgrams;                /* binary protocol datagrams decoded */
	uint64_t reply_dgrams;          /* binary protocol reply datagrams sent */
	uint64_t requests;              /* requests executed here */
	uint64_t ops[SP_BP_OP_LAST];    /* executed requests by opcode */
	uint64_t status[SP_BP_ST_LAST]; /* replies by status */
	uint64_t hits;
	uint64_t misses;
	uint64_t handoff_out; /* requests given to another worker's ring */
	uint64_t handoff_out_mbufs;
	uint64_t handoff_copies;   /* mbufs built to split a mixed datagram */
	uint64_t handoff_folds;    /* lone writes handed on with the datagram's reply */
	uint64_t handoff_in_mbufs; /* mbufs taken from our ring */
	uint64_t read_shared;      /* GETs of another worker's partition read here, not handed */
	uint64_t ring_full_drops;  /* requests dropped: the owner's ring was full */
	uint64_t deferred;         /* requests held while their partition moved here */
	uint64_t wrong_node;       /* requests for another node's partition */
	uint64_t unserved;         /* requests for a partition nobody serves here (no map,
	                            * no lease): answered NOT_READY / NOT_SERVING */
	/* Forwarding between dataplanes (forward.h). */
	uint64_t fwd_out;           /* client requests forwarded to their owner node */
	uint64_t fwd_in;            /* forwarded requests executed here for another node */
	uint64_t fwd_relayed;       /* owner reply datagrams relayed to the client */
	uint64_t fwd_timeouts;      /* forwarded requests answered "owner unavailable" */
	uint64_t fwd_table_full;    /* not forwarded: the in-flight table was full (busy) */
	uint64_t fwd_refused;       /* the owner refused (not the owner any more) */
	uint64_t fwd_retried;       /* refused ones placed again once on this node's map */
	uint64_t fwd_no_peer;       /* not forwarded: the owner has no address or MAC */
	uint64_t fwd_too_big;       /* a request (not forwarded) or a forwarded reply (answered
	                             * TOO_BIG) that does not fit a message */
	uint64_t fwd_frames_out;    /* forward datagrams sent (each 1..SP_FWD_BATCH_MAX msgs) */
	uint64_t fwd_msgs_out;      /* forward messages in them */
	uint64_t fwd_frames_in;     /* forward datagrams from members taken in */
	uint64_t fwd_rej_malformed; /* forward messages dropped: bad header */
	uint64_t fwd_rej_member;    /* dropped: source address is no current member */
	uint64_t fwd_rej_mac;       /* dropped: source MAC is not that member's */
	uint64_t fwd_rej_slot;      /* dropped: reply for no request in flight (late, forged) */
	uint64_t fwd_rej_source;    /* dropped: reply from another node than the owner asked */
	uint64_t fwd_rej_kind;      /* dropped: a kind or protocol this node does not take */
	uint64_t store_evictions;   /* copied from the owned stores every ~100 ms */
	uint64_t store_items;
	uint64_t idle_sleeps;
	uint64_t loops;
	uint64_t busy_cycles; /* TSC cycles of loop iterations that found work */
	uint64_t bad_pkts;    /* sum of the three arrays below */
	uint64_t net_drop[NET_DROP_REASON_COUNT];
	uint64_t bp_err[SP_BP_ERR_COUNT];
	uint64_t dp_drop[DP_DROP_COUNT];
} __rte_cache_aligned;

/* What a worker's stores say (read on the main lcore only at exit, or by the owner). */
struct dp_store_totals {
	uint64_t items;
	uint64_t bytes;
	uint64_t evictions;
	uint64_t expired;
	uint64_t hits;
	uint64_t misses;
};

/* Port-level counters from rte_eth_stats. */
struct dp_port_totals {
	uint64_t rx_nombuf;
	uint64_t imissed;
	uint64_t ierrors;
	uint64_t oerrors;
};

/* Adds n to a counter of the calling worker's own block. */
#define DP_STAT_ADD(st, field, n) \
	__atomic_store_n(&(st)->field, (st)->field + (uint64_t)(n), __ATOMIC_RELAXED)
#define DP_STAT_INC(st, field) DP_STAT_ADD(st, field, 1)

/* Reads another worker's counter without tearing. */
#define DP_STAT_READ(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)

/* A named scalar counter of struct dp_worker_stats (the arrays are named separately). */
struct dp_stat_field {
	const char *name;
	size_t offset;
};

/* The scalar counters, in report order; dp_stats_field_count of them. */
extern const struct dp_stat_field dp_stats_fields[];
extern const unsigned int dp_stats_field_count;

static inline uint64_t
dp_stats_field_get(const struct dp_worker_stats *s, const struct dp_stat_field *f)
{
	return DP_STAT_READ(*(const uint64_t *)((const char *)s + f->offset));
}

/*
 * Calls fn(arg, name, value) for every counter of s: the scalars, requests by opcode
 * ("op_get"), replies by status ("status_not_found") and bad input by reason
 * ("bad_net_ip_csum", "bad_bp_bad_magic", "bad_ip_fragment"). With nonzero_only, array
 * entries that are zero are skipped. Names use only [a-z0-9_], as telemetry requires.
 */
void dp_stats_foreach(const struct dp_worker_stats *s, bool nonzero_only,
                      void (*fn)(void *arg, const char *name, uint64_t value), void *arg);

/* Sums n workers' blocks into *out (relaxed reads). */
void dp_stats_sum(const struct dp_worker_stats *w, unsigned int n, struct dp_worker_stats *out);

/* Name of a runtime drop reason, for counters and logs. Never NULL. */
const char *dp_drop_name(enum dp_drop reason);

/*
 * Prints a stats report: the sums, then one line per worker, the non-zero bad-packet
 * reasons, the port counters and the store totals. Can't fail.
 */
void dp_stats_print(FILE *out, const struct dp_worker_stats *w, unsigned int n,
                    const struct dp_port_totals *port, const struct dp_store_totals *store);

/* One compact line (for --stats-interval). */
void dp_stats_print_line(FILE *out, const struct dp_worker_stats *w, unsigned int n,
                         const struct dp_port_totals *port);

#endif
