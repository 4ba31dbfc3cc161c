/* SPDX-License-Identifier: BSD-3-Clause */
/* Executes binary-protocol requests on a partition store (see binexec.h). */
#include "dataplane/binexec/binexec.h"

#include <errno.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "common/verify.h"

enum sp_bp_status
sp_binexec_status(int store_rc)
{
	switch (store_rc) {
	case 0:
		return SP_BP_ST_OK;
	case -SP_ENOTFOUND:
		return SP_BP_ST_NOT_FOUND;
	case -SP_EEXISTS:
		return SP_BP_ST_EXISTS;
	case -SP_EVERSION:
		return SP_BP_ST_CAS_MISMATCH;
	case -SP_ETOOBIG:
	case -SP_EFULL:
		return SP_BP_ST_TOO_BIG;
	case -SP_ENOTNUM:
		return SP_BP_ST_NOT_NUMBER;
	case -EINVAL:
		return SP_BP_ST_BAD_REQUEST;
	case -SP_EBUSY:
		return SP_BP_ST_SERVER_BUSY;
	default:
		return SP_BP_ST_INTERNAL;
	}
}

/* Converts a relative expiry to the store's absolute clock, saturating at UINT32_MAX. */
static uint32_t
expire_at(uint32_t now_s, uint32_t expiry_s)
{
	if (expiry_s == 0)
		return 0;
	if (expiry_s > UINT32_MAX - now_s)
		return UINT32_MAX;
	uint32_t at = now_s + expiry_s;
	ASSERT(at > now_s);
	return at;
}

/* Appends a value-less reply; -SP_EFULL when it does not fit. */
static int
reply_plain(struct sp_bp_builder *b, const struct sp_bp_req *req, uint8_t status, uint64_t cas,
            struct sp_binexec_stats *stats)
{
	ASSERT(b != NULL);
	ASSERT(status < SP_BP_ST_LAST);
	if (sp_bp_add_reply(b, req->request_id, req->opcode, status, cas, 0, 0) == NULL) {
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}
	sp_binexec_count(stats, req->opcode, status);
	return 0;
}

int
sp_binexec_refuse(const struct sp_bp_req *req, enum sp_bp_status status,
                  struct sp_bp_builder *reply, struct sp_binexec_stats *stats)
{
	ASSERT(req != NULL);
	ASSERT(status < SP_BP_ST_LAST);
	return reply_plain(reply, req, (uint8_t)status, 0, stats);
}

int
sp_binexec_redirect(const struct sp_bp_req *req, const struct sp_bp_redirect *r,
                    struct sp_bp_builder *reply, struct sp_binexec_stats *stats)
{
	uint8_t *dst;

	ASSERT(req != NULL);
	ASSERT(r != NULL);
	dst = sp_bp_add_reply(reply, req->request_id, req->opcode, SP_BP_ST_WRONG_PARTITION, 0, 0,
	                      SP_BP_REDIRECT_SIZE);
	if (dst == NULL) {
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}
	sp_bp_redirect_encode(dst, r);
	sp_binexec_count(stats, req->opcode, SP_BP_ST_WRONG_PARTITION);
	return 0;
}

static struct store_key
key_of(const struct sp_bp_req *req)
{
	struct store_key k = {.data = req->key, .len = req->key_len, .hash = req->hash};
	return k;
}

int
sp_binexec_get_shared(const struct store *s, const struct sp_bp_req *req, uint32_t now_s,
                      struct sp_bp_builder *reply, struct sp_binexec_stats *stats)
{
	struct store_key k = key_of(req);
	struct store_value v = {.cas = 0};
	enum sp_bp_status st = SP_BP_ST_OK;
	uint32_t room;
	int rc;

	ASSERT(s != NULL);
	ASSERT(req->opcode == SP_BP_OP_GET);
	ASSERT(req->err == SP_BP_ERR_OK);
	if (!sp_bp_reply_fits(reply, 0)) {
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}
	/* The value lands where sp_bp_add_reply() will say it goes. */
	room = reply->cap - reply->len - SP_BP_REPLY_HDR_SIZE;
	rc = store_get_copy_concurrent(s, &k, now_s, reply->buf + reply->len + SP_BP_REPLY_HDR_SIZE,
	                               room, &v);
	if (rc == -SP_ETOOBIG && v.len <= SP_BINEXEC_VALUE_ROOM) {
		/* It fits an empty datagram: nothing written. */
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}
	if (rc == -SP_ETOOBIG)
		st = SP_BP_ST_TOO_BIG; /* with the item's version, as on the owner */
	else if (rc != 0)
		st = sp_binexec_status(rc);
	uint8_t *dst =
	        sp_bp_add_reply(reply, req->request_id, SP_BP_OP_GET, (uint8_t)st,
	                        rc == 0 || rc == -SP_ETOOBIG ? v.cas : 0,
	                        st == SP_BP_ST_OK ? v.flags : 0, st == SP_BP_ST_OK ? v.len : 0);
	VERIFY(dst != NULL); /* it fitted above */
	sp_binexec_count(stats, SP_BP_OP_GET, (uint8_t)st);
	return (int)st;
}

static int
exec_store(struct store *s, const struct sp_bp_req *req, uint32_t now_s, struct sp_bp_builder *b,
           struct sp_binexec_stats *stats)
{
	ASSERT(s != NULL);
	ASSERT(req->key_len != 0);
	struct store_key k = key_of(req);
	struct store_write w = {
	        .value = req->value,
	        .value_len = req->value_len,
	        .flags = req->flags,
	        .expire_s = expire_at(now_s, req->expiry_s),
	        .cas = req->cas,
	};
	enum store_mode mode = req->opcode == SP_BP_OP_ADD       ? STORE_ADD
	                       : req->opcode == SP_BP_OP_REPLACE ? STORE_REPLACE
	                                                         : STORE_SET;
	uint64_t cas = 0;
	int rc = store_set(s, mode, &k, &w, now_s, &cas);
	return reply_plain(b, req, sp_binexec_status(rc), rc == 0 ? cas : 0, stats);
}

static int
exec_arith(struct store *s, const struct sp_bp_req *req, uint32_t now_s, struct sp_bp_builder *b,
           struct sp_binexec_stats *stats)
{
	struct store_key k = key_of(req);
	struct store_arith a = {
	        .op = req->opcode == SP_BP_OP_INCR ? STORE_INCR : STORE_DECR,
	        .delta = req->delta,
	        .create = req->create != 0,
	        .initial = req->initial,
	        .expire_s = expire_at(now_s, req->expiry_s),
	        .cas = 0,
	};
	uint64_t value = 0;
	uint64_t cas = 0;

	ASSERT(s != NULL);
	int rc = store_arith(s, &k, &a, now_s, &value, &cas);
	if (rc != 0)
		return reply_plain(b, req, sp_binexec_status(rc), 0, stats);

	uint8_t *dst = sp_bp_add_reply(b, req->request_id, req->opcode, SP_BP_ST_OK, cas, 0,
	                               SP_BP_COUNTER_REPLY_SIZE);
	/* The caller checked the room before executing, so the reply always fits here. */
	VERIFY(dst != NULL);
	SP_STATIC_ASSERT(SP_BP_COUNTER_REPLY_SIZE == 8, "a counter reply is one u64");
	sp_put_le64(dst, value);
	sp_binexec_count(stats, req->opcode, SP_BP_ST_OK);
	return 0;
}

static int
exec_route(const struct sp_bp_req *req, const struct sp_binexec_route *route,
           struct sp_bp_builder *b, struct sp_binexec_stats *stats)
{
	ASSERT(req->opcode == SP_BP_OP_ROUTE);
	if (route == NULL || route->owner == NULL)
		return reply_plain(b, req, SP_BP_ST_INTERNAL, 0, stats);
	VERIFY(route->partitions <= SP_BP_PARTITIONS_MAX);
	if (req->route_first >= route->partitions)
		return reply_plain(b, req, SP_BP_ST_BAD_REQUEST, 0, stats);

	VERIFY(route->node_count >= 1 && route->node_count <= SP_BP_ROUTE_NODES_MAX);
	VERIFY(route->self < route->node_count);
	struct sp_bp_route page = {
	        .epoch = route->epoch,
	        .partitions = route->partitions,
	        .first = req->route_first,
	        .count = SP_MIN(sp_bp_route_page_max(route->node_count),
	                        route->partitions - req->route_first),
	        .node_count = (uint16_t)route->node_count,
	        .self = (uint16_t)route->self,
	};
	uint32_t size = sp_bp_route_value_size(page.node_count, page.count);
	uint8_t *dst = sp_bp_add_reply(b, req->request_id, req->opcode, SP_BP_ST_OK, 0, 0, size);
	if (dst == NULL) {
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}
	sp_bp_route_encode(dst, &page, route->nodes, route->owner);
	sp_binexec_count(stats, req->opcode, SP_BP_ST_OK);
	return 0;
}

int
sp_binexec_run(struct store *s, const struct sp_bp_req *req, uint32_t now_s,
               const struct sp_binexec_route *route, struct sp_bp_builder *reply,
               struct sp_binexec_stats *stats)
{
	ASSERT(req != NULL);
	ASSERT(reply != NULL);
	ASSERT((reply->flags & SP_BP_F_REPLY) != 0);
	if (req->err != SP_BP_ERR_OK)
		return reply_plain(reply, req, req->status, 0, stats);

	/* Writes must know their reply fits before they change the store (the opcode
	 * table's reply_room). */
	const struct sp_bp_op_info *oi = sp_bp_op(req->opcode);
	if ((oi->props & SP_BP_OPF_WRITE) != 0 && !sp_bp_reply_fits(reply, oi->reply_room)) {
		if (stats != NULL)
			stats->reply_full++;
		return -SP_EFULL;
	}

	switch (req->opcode) {
	case SP_BP_OP_GET: {
		VERIFY(s != NULL);
		int rc = sp_binexec_get(s, req, NULL, now_s, reply, stats);
		return rc < 0 ? rc : 0;
	}
	case SP_BP_OP_SET:
	case SP_BP_OP_ADD:
	case SP_BP_OP_REPLACE:
		VERIFY(s != NULL);
		return exec_store(s, req, now_s, reply, stats);
	case SP_BP_OP_DELETE: {
		VERIFY(s != NULL);
		struct store_key k = key_of(req);
		int rc = store_delete(s, &k, req->cas, now_s);
		return reply_plain(reply, req, sp_binexec_status(rc), 0, stats);
	}
	case SP_BP_OP_INCR:
	case SP_BP_OP_DECR:
		VERIFY(s != NULL);
		return exec_arith(s, req, now_s, reply, stats);
	case SP_BP_OP_ROUTE:
		return exec_route(req, route, reply, stats);
	default:
		/* The decoder marks unknown opcodes; this is a hand-built descriptor. */
		return reply_plain(reply, req, SP_BP_ST_BAD_REQUEST, 0, stats);
	}
}
