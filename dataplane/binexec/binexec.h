/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * binexec: executes decoded binary-protocol requests (wire/binproto.h) against a partition
 * store (dataplane/store/store.h) and appends their replies to a reply builder.
 *
 * DPDK-free and allocation-free; no locks, no system calls. The dataplane runtime decodes
 * a datagram, routes each request to its partition's owner, and the owner calls
 * sp_binexec_run() once per request with that partition's store. The caller owns the
 * clock: now_s is its current time in seconds on the store's clock.
 *
 * Status mapping (store error -> reply status):
 *   0 -> OK, SP_ENOTFOUND -> NOT_FOUND, SP_EEXISTS -> EXISTS, SP_EVERSION -> CAS_MISMATCH,
 *   SP_ETOOBIG and SP_EFULL (item can never fit this store) -> TOO_BIG,
 *   SP_ENOTNUM -> NOT_NUMBER, -EINVAL -> BAD_REQUEST, SP_EBUSY -> SERVER_BUSY,
 *   anything else -> INTERNAL.
 */
#ifndef SP_DATAPLANE_BINEXEC_H
#define SP_DATAPLANE_BINEXEC_H

#include <stdint.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "common/verify.h"
#include "dataplane/store/store.h"
#include "wire/binproto.h"

/* What a ROUTE request is answered with: the node's current map. */
struct sp_binexec_route {
	uint64_t epoch;
	uint32_t partitions;                  /* P, a power of two, <= SP_BP_PARTITIONS_MAX */
	uint32_t node_count;                  /* 1 .. SP_BP_ROUTE_NODES_MAX */
	uint32_t self;                        /* index of this node in nodes */
	const struct sp_bp_route_node *nodes; /* node_count nodes */
	const uint16_t *owner; /* partitions entries: sp_bp_route_entry(node, worker) */
};

/* Counters of one executor (one per worker). All monotonic. */
struct sp_binexec_stats {
	uint64_t ops[SP_BP_OP_LAST];    /* executed requests by opcode (index 0: bad opcode) */
	uint64_t status[SP_BP_ST_LAST]; /* replies by status */
	uint64_t reply_full;            /* calls that returned -SP_EFULL (reply did not fit) */
};

/*
 * Executes req against store s and appends its reply to reply (a builder started with
 * reply = true). route answers ROUTE requests (may be NULL: ROUTE then gets INTERNAL).
 * Requests the decoder marked bad (req->err != OK) are answered with req->status without
 * touching the store. A relative expiry is converted to now_s + expiry_s (saturating).
 *
 * Returns 0 when a reply was appended. Returns -SP_EFULL when this request's reply does
 * not fit in what is left of the builder: then nothing was changed in the store and no
 * reply was written; the caller sends the datagram, starts a new builder and calls again.
 * A value too large for even an empty reply datagram is answered TOO_BIG instead. stats
 * may be NULL. s may be NULL only when the request is not a key operation.
 */
int sp_binexec_run(struct store *s, const struct sp_bp_req *req, uint32_t now_s,
                   const struct sp_binexec_route *route, struct sp_bp_builder *reply,
                   struct sp_binexec_stats *stats);

/*
 * Answers req with status and no value, without executing it: for the runtime's own
 * refusals (SERVER_BUSY when a hand-off ring is full, WRONG_PARTITION in cluster mode).
 * Returns 0, or -SP_EFULL when the reply does not fit (nothing written).
 */
int sp_binexec_refuse(const struct sp_bp_req *req, enum sp_bp_status status,
                      struct sp_bp_builder *reply, struct sp_binexec_stats *stats);

/*
 * Answers req WRONG_PARTITION naming the owner (r), without executing it. Returns 0, or
 * -SP_EFULL when the reply does not fit (nothing written).
 */
int sp_binexec_redirect(const struct sp_bp_req *req, const struct sp_bp_redirect *r,
                        struct sp_bp_builder *reply, struct sp_binexec_stats *stats);

/*
 * A well-formed GET of req's key on store s, which another thread owns and may be writing:
 * read with store_get_copy_concurrent(), the value copied straight into its place in the
 * reply. For a worker that reads another worker's partition instead of handing the GET
 * over (docs/services.md); the store's own counters do not count it and it moves no item.
 * Returns the status answered (OK, NOT_FOUND, TOO_BIG for a value no reply datagram
 * carries, SERVER_BUSY when the read kept racing the owner's writes) or -SP_EFULL when the
 * reply does not fit what is left of the builder (nothing written; call again with an
 * empty one).
 */
int sp_binexec_get_shared(const struct store *s, const struct sp_bp_req *req, uint32_t now_s,
                          struct sp_bp_builder *reply, struct sp_binexec_stats *stats);

/* Maps a store return code (0 or negative) to a reply status, as in the table above. */
enum sp_bp_status sp_binexec_status(int store_rc);

/* The largest value a reply datagram can ever carry; a GET of a larger one is TOO_BIG. */
#define SP_BINEXEC_VALUE_ROOM (SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE - SP_BP_REPLY_HDR_SIZE)

/* Counts one reply of status to a request of opcode op in stats (NULL: none). */
static inline void
sp_binexec_count(struct sp_binexec_stats *stats, uint8_t op, uint8_t status)
{
	ASSERT(status < SP_BP_ST_LAST);
	if (stats == NULL)
		return;
	stats->ops[op < SP_BP_OP_LAST ? op : 0]++;
	stats->status[status]++;
}

/*
 * sp_binexec_run for a well-formed GET (the runtime's path for the GETs it owns, without
 * the dispatch), with probe: store_layout_probe's hint for req's key on s, or NULL.
 * Returns the status answered (SP_BP_ST_OK on a hit, NOT_FOUND on a miss, TOO_BIG when
 * the value fits no reply datagram) or -SP_EFULL when the reply does not fit what is left
 * of the builder: nothing was written, and the GET, which only reads, runs again in the
 * next datagram. Inline: it runs once for every GET.
 */
static inline int
sp_binexec_get(struct store *s, const struct sp_bp_req *req, const struct store_probe *probe,
               uint32_t now_s, struct sp_bp_builder *reply, struct sp_binexec_stats *stats)
{
	struct store_key k = {.data = req->key, .len = req->key_len, .hash = req->hash};
	struct store_value v;
	enum sp_bp_status st = SP_BP_ST_OK;
	uint32_t len = 0;
	int rc;

	ASSERT(s != NULL);
	ASSERT(req->opcode == SP_BP_OP_GET);
	ASSERT(req->err == SP_BP_ERR_OK);
	rc = store_get_probed(s, &k, probe, now_s, &v);
	if (rc != 0) {
		st = sp_binexec_status(rc);
		v.cas = 0;
	} else if (v.len > SP_BINEXEC_VALUE_ROOM) {
		st = SP_BP_ST_TOO_BIG; /* with the item's version, as memcached's binary GET */
	} else {
		len = v.len;
	}
	uint8_t *dst = sp_bp_add_reply(reply, req->request_id, SP_BP_OP_GET, (uint8_t)st, v.cas,
	                               st == SP_BP_ST_OK ? v.flags : 0, len);
	if (dst == NULL) {
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}
	ASSERT(v.data != NULL || len == 0);
	sp_copy_short(dst, v.data, len);
	sp_binexec_count(stats, SP_BP_OP_GET, (uint8_t)st);
	return (int)st;
}

#endif
