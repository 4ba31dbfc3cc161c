/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Shardplane C client: the binary protocol (wire/binproto.h) over kernel UDP sockets.
 *
 * - Batching: sp_client_execute() (or sp_client_queue() ... sp_client_flush()) packs many
 *   operations into as few datagrams as it can (up to SP_BP_REQS_MAX requests each), sends
 *   them all, then collects replies matched by request id. Replies to one datagram may
 *   arrive in several datagrams, from any port.
 * - Partition-aware routing, one node or a cluster: the client fetches the map with ROUTE
 *   from a seed (every node of the map with its address, binary-protocol base port and
 *   worker count, the epoch, and partition -> node and worker) and sends each request to
 *   its owner, at the node's address on port binary_port + worker, packing the requests
 *   of one destination into shared datagrams. A WRONG_PARTITION reply names the owner as
 *   the answering node knows it: the request is sent there at once, at most once per
 *   attempt (so it can never loop), and a newer epoch in it marks the map stale. The map
 *   is fetched again every route_refresh_ms, before the next batch after a
 *   WRONG_PARTITION / NOT_SERVING / NOT_READY reply or a newer epoch, and
 *   SP_CLIENT_ROUTE_RETRY_MS after a failed fetch. A fetch tries the seeds in turn from
 *   the last one that answered, then the nodes of the map it has, so one seed being down
 *   is not fatal. Until it has a map (or with no_route) everything goes to the first seed's
 *   port, which hands requests on to their owner worker (on that node). A failed refresh
 *   keeps the previous map.
 * - Timeouts and retries: each attempt waits timeout_ms; operations without a reply are
 *   sent again, at most `retries` more times (bounded by SP_CLIENT_RETRIES_MAX). Only
 *   idempotent operations are retried by default: GET, ROUTE, and SET without CAS. ADD,
 *   REPLACE, DELETE, CAS-conditional SET and INCR/DECR are not, because a lost *reply*
 *   would make the retry report a wrong outcome (EXISTS, NOT_FOUND, CAS_MISMATCH) or apply
 *   a delta twice; set retry_all to retry them anyway (at-least-once semantics). A request
 *   keeps its request id across retries, so a late reply to any attempt completes it.
 *
 * A client is not thread-safe: use one per thread. It allocates only in sp_client_create()
 * and when the routing table grows; sp_client_execute() does not allocate.
 */
#ifndef SP_CLIENT_CLIENT_H
#define SP_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/binproto.h"
#include "wire/taskproto.h"

/* Bounds of the client's own queues and loops. */
#define SP_CLIENT_BATCH_MAX       256u   /* operations per sp_client_execute() round */
#define SP_CLIENT_RETRIES_MAX     16u    /* extra attempts per operation */
#define SP_CLIENT_TIMEOUT_MS_MAX  60000u /* per-attempt timeout */
#define SP_CLIENT_TIMEOUT_MS_DEF  200u
#define SP_CLIENT_RETRIES_DEF     2u
#define SP_CLIENT_ROUTE_PAGES_MAX (SP_BP_PARTITIONS_MAX / SP_BP_ROUTE_PAGE_MAX)
/* The routing table is fetched again this often, and this long after a failed fetch. */
#define SP_CLIENT_ROUTE_REFRESH_MS_DEF 10000u
#define SP_CLIENT_ROUTE_REFRESH_MS_MAX 3600000u
#define SP_CLIENT_ROUTE_RETRY_MS       1000u
/* Seed addresses one client takes. */
#define SP_CLIENT_SEEDS_MAX 16u
/* Redirects (WRONG_PARTITION naming an owner) followed per attempt of one operation. */
#define SP_CLIENT_REDIRECTS_PER_ATTEMPT 1u

struct sp_client;

/* A node to start from: its address and binary-protocol base port. */
struct sp_client_seed {
	const char *host; /* IPv4 address, dotted quad */
	uint16_t port;
};

struct sp_client_params {
	const char *host; /* IPv4 address of the node, dotted quad */
	uint16_t port;    /* the node's binary-protocol UDP port (its base port) */
	/* More seeds (cluster mode): when seed_count > 0 these are the seeds and host/port
	 * are ignored; at most SP_CLIENT_SEEDS_MAX. */
	const struct sp_client_seed *seeds;
	uint32_t seed_count;
	uint32_t timeout_ms;       /* per attempt; 0 = SP_CLIENT_TIMEOUT_MS_DEF */
	int32_t retries;           /* extra attempts; < 0 = SP_CLIENT_RETRIES_DEF */
	bool no_route;             /* never fetch the routing table: send everything to port */
	uint32_t route_refresh_ms; /* refetch period; 0 = SP_CLIENT_ROUTE_REFRESH_MS_DEF */
	bool retry_all;            /* also retry non-idempotent operations (see above) */
	/* Ask nodes to forward what they do not own (SP_BP_F_FORWARD) rather than redirect:
	 * for a client that does not route (no_route), any node answers for every key. */
	bool forward;
};

/* Counters; all monotonic over the client's life. */
struct sp_client_stats {
	uint64_t ops; /* operations completed (reply, timeout or local error) */
	uint64_t datagrams_sent;
	uint64_t datagrams_recv;
	uint64_t replies;              /* replies matched to an operation */
	uint64_t stale_replies;        /* replies for no pending operation (late duplicates) */
	uint64_t bad_datagrams;        /* received datagrams that failed to decode */
	uint64_t datagrams_other_host; /* valid replies from an address other than the node's */
	uint64_t retries;              /* requests sent again after a timeout */
	uint64_t timeouts;             /* operations that ran out of attempts */
	uint64_t send_errors;          /* sendto failures (the datagram counts as lost) */
	uint64_t route_refreshes;      /* map fetches attempted */
	uint64_t route_failures;       /* map fetches that got no valid map from any seed */
	uint64_t seed_failovers;       /* fetches that moved on to another seed or node */
	uint64_t wrong_partition;      /* WRONG_PARTITION replies */
	uint64_t redirects;            /* requests re-sent to the owner a redirect named */
	uint64_t newer_epochs;         /* replies that revealed a newer map epoch */
	uint64_t not_serving;          /* NOT_SERVING / NOT_READY replies */
	uint64_t busy; /* SERVER_BUSY replies answered by sending the request again */
};

/*
 * One operation of a batch. The caller fills the inputs (unused ones zero); execute fills
 * the outputs. key/value/out_buf must stay valid during sp_client_execute().
 */
struct sp_client_op {
	/* inputs */
	uint8_t opcode;   /* enum sp_bp_op; ROUTE is not accepted here */
	bool create;      /* incr/decr: create with `initial` when missing */
	uint16_t key_len; /* 1..SP_BP_KEY_MAX */
	const void *key;
	const void *value;  /* set/add/replace */
	uint32_t value_len; /* <= SP_BP_VALUE_MAX */
	uint32_t flags;     /* stored with set/add/replace */
	uint32_t expiry_s;  /* relative seconds, 0 = never */
	uint64_t cas;       /* set/replace/delete: expected version, 0 = unconditional */
	uint64_t delta;     /* incr/decr */
	uint64_t initial;   /* incr/decr with create */
	void *out_buf;      /* get: where the value is copied (may be NULL with out_cap 0) */
	uint32_t out_cap;

	/* outputs */
	int rc;                 /* 0: a reply came (see status); -ETIMEDOUT: none in time;
	                      * -SP_ETOOBIG/-EINVAL: refused locally, never sent */
	uint8_t status;         /* enum sp_bp_status when rc == 0 */
	uint32_t value_len_out; /* get: full value length (copied: min(it, out_cap)) */
	uint32_t flags_out;
	uint64_t cas_out;  /* the item's version after the operation */
	uint64_t number;   /* incr/decr: the new value */
	uint32_t attempts; /* how many times it was sent (redirects not counted) */
};

/*
 * Creates a client: opens a UDP socket and, unless no_route, fetches the routing table
 * (failing to fetch it is not fatal: everything then goes to port until a later refresh
 * works). Returns NULL and sets *err (when err != NULL) to -EINVAL for bad params (host
 * not an IPv4 address, port 0, limits exceeded) or a negative errno from the socket.
 */
struct sp_client *sp_client_create(const struct sp_client_params *params, int *err);

/* Closes the socket and frees the client. NULL is a no-op. */
void sp_client_destroy(struct sp_client *c);

/*
 * Runs n operations as one batch (internally in rounds of SP_CLIENT_BATCH_MAX): encodes,
 * routes, sends, collects replies and retries until each has a result or its attempts run
 * out. A request without a reply in time is sent again when it is idempotent (or with
 * retry_all); one answered SERVER_BUSY was refused without being executed and is sent
 * again whatever it is. Either way an op is sent at most retries + 1 times; a last
 * SERVER_BUSY is its result. Returns 0 when every op has its rc filled in, or a negative
 * errno when the socket failed (ops without a result then have rc -EIO).
 */
int sp_client_execute(struct sp_client *c, struct sp_client_op *ops, size_t n);

/*
 * The same batch built up one operation at a time: sp_client_queue() remembers op (which
 * must stay valid until the flush) and returns 0, or -SP_EFULL when SP_CLIENT_BATCH_MAX
 * operations are already queued (flush first). sp_client_flush() runs the queued ops as
 * one sp_client_execute() batch, writes each one's results into it, empties the queue and
 * returns what sp_client_execute() returned (0 with nothing queued).
 */
int sp_client_queue(struct sp_client *c, struct sp_client_op *op);
int sp_client_flush(struct sp_client *c);
/* Operations queued and not yet flushed. */
uint32_t sp_client_queued(const struct sp_client *c);

/*
 * Fetches the routing table again (all pages). Returns 0, -ETIMEDOUT when the node did not
 * answer, -SP_EMALFORMED for an invalid or inconsistent table (pages from two epochs are
 * retried up to SP_CLIENT_RETRIES_MAX times), or -ENOTSUP when the client has no_route.
 */
int sp_client_route_refresh(struct sp_client *c);

/*
 * The map in use: fills the scalar fields of *route (epoch, partitions, node_count, self,
 * first 0, count P; the pointers are NULL) and returns true, or returns false when the
 * client has none (no_route, or no fetch succeeded).
 */
bool sp_client_route(const struct sp_client *c, struct sp_bp_route *route);

/* Node i (< node_count) of the map in use. Returns 0, or -ENOENT. */
int sp_client_route_node(const struct sp_client *c, uint32_t i, struct sp_bp_route_node *out);

/* Owner of partition p under the map in use: its node index and worker. Returns 0, or
 * -ENOENT without a map or when p is out of range. */
int sp_client_route_entry(const struct sp_client *c, uint32_t partition, uint16_t *node,
                          uint16_t *worker);

/* Worker (on its node) owning partition p under the current map, or -ENOENT without a
 * map or when p is out of range. */
int sp_client_route_owner(const struct sp_client *c, uint32_t partition);

/* UDP port a key is sent to under the current map. */
uint16_t sp_client_port_for_key(const struct sp_client *c, const void *key, size_t key_len);

/* Address (network byte order) and UDP port a key is sent to under the current map;
 * returns the map's node index of that destination, or -1 without a map (the seed). */
int sp_client_dest_for_key(const struct sp_client *c, const void *key, size_t key_len,
                           uint32_t *ipv4_be, uint16_t *port);

/* Operations completed per node of the current map (index as in the map): replies
 * received from requests sent to node i. Returns 0, or -ENOENT for i past the map. */
int sp_client_node_ops(const struct sp_client *c, uint32_t i, uint64_t *replies, uint64_t *errors);

void sp_client_stats_get(const struct sp_client *c, struct sp_client_stats *out);

/* Maps a reply status to 0 or a negative SP_E* / errno code (NOT_FOUND -> -SP_ENOTFOUND,
 * EXISTS -> -SP_EEXISTS, CAS_MISMATCH -> -SP_EVERSION, TOO_BIG -> -SP_ETOOBIG, NOT_NUMBER ->
 * -SP_ENOTNUM, BAD_REQUEST -> -SP_EMALFORMED, SERVER_BUSY -> -SP_EBUSY, SERVER_FULL ->
 * -SP_EFULL, WRONG_PARTITION -> -SP_EWRONGNODE, NOT_SERVING -> -SP_ENOTSERVING, NOT_READY ->
 * -SP_ENOTREADY, UNAVAILABLE -> -SP_EUNAVAIL, INTERNAL and unknown -> -EIO); sp_strerror()
 * gives each a sentence. */
int sp_client_status_error(uint8_t status);

/* ---- One operation at a time: each is a batch of one. Return 0 or a negative code as
 * from sp_client_status_error(), or -ETIMEDOUT, -EINVAL, -SP_ETOOBIG. ---- */

/*
 * Copies up to cap value bytes into buf; *len_out gets the full length (may exceed cap),
 * *flags_out and *cas_out the item's flags and version; any out pointer may be NULL.
 */
int sp_client_get(struct sp_client *c, const void *key, size_t key_len, void *buf, uint32_t cap,
                  uint32_t *len_out, uint32_t *flags_out, uint64_t *cas_out);

/* opcode is SP_BP_OP_SET, ADD or REPLACE; cas != 0 makes set/replace conditional. */
int sp_client_store(struct sp_client *c, uint8_t opcode, const void *key, size_t key_len,
                    const void *value, uint32_t value_len, uint32_t flags, uint32_t expiry_s,
                    uint64_t cas, uint64_t *cas_out);

int sp_client_set(struct sp_client *c, const void *key, size_t key_len, const void *value,
                  uint32_t value_len, uint32_t flags, uint32_t expiry_s);

int sp_client_del(struct sp_client *c, const void *key, size_t key_len, uint64_t cas);

/* initial == NULL: no create (NOT_FOUND when missing); else create with *initial. */
int sp_client_incr(struct sp_client *c, const void *key, size_t key_len, uint64_t delta,
                   const uint64_t *initial, uint64_t *value_out);
int sp_client_decr(struct sp_client *c, const void *key, size_t key_len, uint64_t delta,
                   const uint64_t *initial, uint64_t *value_out);

/* ---- Registered operations (docs/tasks.md). A batch op may carry any opcode the codec
 * knows (sp_bp_op_register; the client registers RATELIMIT and AGGREGATE itself): key as
 * its registration says, value = its argument, flags = its scope; the result is copied to
 * out_buf (value_len_out), reply flags (partitions covered) to flags_out, status OK or
 * PARTIAL. Operations that do not write (AGGREGATE) are retried after a timeout, others
 * (RATELIMIT: it takes tokens) only with retry_all. ---- */

/*
 * One token-bucket request: takes `cost` tokens (1..burst) from key's bucket (rate_per_s
 * 1..SP_RL_RATE_MAX, burst >= 1). Returns 0 with *out filled (allowed or not, remaining
 * tokens, wait_ns until `cost` tokens are there), or an error as above (-EINVAL for
 * arguments out of range, -SP_EMALFORMED for a result that does not decode).
 */
int sp_client_ratelimit(struct sp_client *c, const void *key, size_t key_len, uint32_t rate_per_s,
                        uint32_t burst, uint32_t cost, struct sp_rl_result *out);

/*
 * The count, sum and top k (<= SP_AGG_TOPK_MAX) of the counters under prefix, over the
 * scope SP_BP_TASK_SCOPE_CLUSTER (every node) or _NODE (the node the client talks to).
 * Returns 0 with *out filled, *partitions the partitions it covers and *partial true when
 * some owners did not answer in time (status PARTIAL; either pointer may be NULL), or an
 * error as above. Give the client a timeout longer than the dataplane's
 * --forward-timeout-ms, or a slow owner turns into a client timeout instead of PARTIAL.
 */
int sp_client_aggregate(struct sp_client *c, const void *prefix, size_t prefix_len, uint8_t k,
                        uint32_t scope, struct sp_agg_result *out, uint32_t *partitions,
                        bool *partial);

/*
 * The same result over the counters named in keys[0..n) (n 1..SP_TASK_KEYS_MAX, distinct;
 * absent keys add nothing), each read on its owner: *answered gets how many keys were
 * answered (PARTIAL: fewer than n, *partial true). Returns as sp_client_aggregate, and
 * -EINVAL for a bad list.
 */
int sp_client_aggregate_keys(struct sp_client *c, const char *const *keys, uint32_t n, uint8_t k,
                             uint32_t scope, struct sp_agg_result *out, uint32_t *answered,
                             bool *partial);

#endif
