/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "addr.h"
#include "api.h"
#include "validate.h"

#define MOD "cp-api"

static const char *
code_of(int err)
{
	switch (err) {
	case -SP_ENOTLEADER:
		return "NOT_LEADER";
	case -SP_ENOTFOUND:
		return "NOT_FOUND";
	case -SP_EEXISTS:
		return "EXISTS";
	case -SP_EBUSY:
		return "BUSY";
	case -ETIMEDOUT:
		return "TIMEOUT";
	case -SP_EMALFORMED:
	case -EINVAL:
	case -SP_ETOOBIG:
		return "BAD_REQUEST";
	case -SP_EFULL:
		return "BUSY";
	case -EAGAIN:
		return "UNAVAILABLE";
	default:
		return "INTERNAL";
	}
}

static void
send_json(struct cp_conn *c, json_object *o)
{
	size_t len;
	ASSERT(c->kind == CP_CONN_CLIENT);
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	ASSERT(s != NULL);
	cp_conn_send_frame(c, FRAME_RESPONSE, s, (uint32_t)len, NULL, 0);
	json_object_put(o);
}

static void
respond_ok(struct cp_conn *c, uint64_t id, json_object *result)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_uint64(id));
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "result", result ? result : json_object_new_object());
	send_json(c, o);
}

static const char *
leader_client_addr(struct cp_api *api)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	struct raft_status st;
	cp_node_status(api->node, &st);
	const struct cluster_member *m = cluster_sm_member(sm, st.leader_id);
	return m && m->client_addr[0] ? m->client_addr : NULL;
}

static void
respond_err(struct cp_api *api, struct cp_conn *c, uint64_t id, int err, const char *msg)
{
	ASSERT(err < 0);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_uint64(id));
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "code", json_object_new_string(code_of(err)));
	json_object_object_add(o, "error", json_object_new_string(msg ? msg : sp_strerror(err)));
	if (err == -SP_ENOTLEADER && leader_client_addr(api))
		json_object_object_add(o, "leader",
		                       json_object_new_string(leader_client_addr(api)));
	send_json(c, o);
}

static int32_t
pending_new(struct cp_api *api, uint32_t kind, struct cp_conn *c, uint64_t req_id, const char *op)
{
	for (uint32_t i = 0; i < CP_PENDING_MAX; i++) {
		struct cp_pending *p = &api->pending[i];
		if (p->kind)
			continue;
		memset(p, 0, sizeof(*p));
		p->kind = kind;
		p->conn = c;
		p->conn_serial = c->serial;
		p->req_id = req_id;
		p->deadline_tick = api->tick + CP_REQUEST_TIMEOUT_TICKS;
		snprintf(p->op, sizeof(p->op), "%s", op);
		/* The slot in the low bits, a serial above: an outcome for an earlier use of
		 * the slot never finishes this request. */
		p->token = (++api->pending_serial << 16) | i;
		SP_STATIC_ASSERT(CP_PENDING_MAX <= (1u << 16),
		                 "a pending slot fits a token's low bits");
		ASSERT(p->token != 0);
		api->n_pending++;
		return (int32_t)i;
	}
	return -1;
}

static void
pending_free(struct cp_api *api, struct cp_pending *p)
{
	ASSERT(p->kind != 0);
	ASSERT(api->n_pending > 0);
	p->kind = 0;
	p->token = 0;
	api->n_pending--;
}

/* The pending entry an outcome's token names, or NULL when that request is gone. */
static struct cp_pending *
pending_by_token(struct cp_api *api, uint64_t token)
{
	uint32_t slot = (uint32_t)(token & 0xffffu);
	if (token == 0 || slot >= CP_PENDING_MAX)
		return NULL;
	struct cp_pending *p = &api->pending[slot];
	return p->kind != 0 && p->token == token ? p : NULL;
}

/* The answer to a submission node.c refused (its submission area full). */
static void
respond_submit_err(struct cp_api *api, struct cp_conn *c, uint64_t req_id, int err)
{
	char why[200];
	if (err != -SP_EFULL) {
		respond_err(api, c, req_id, err, NULL);
		return;
	}
	snprintf(why, sizeof(why),
	         "busy: %u requests and %zu bytes wait for a write to disk (bounds %u and %zu); "
	         "retry",
	         api->node->subq.n, api->node->subq.used, api->node->subq.subs_max,
	         api->node->subq.bytes_max);
	respond_err(api, c, req_id, -SP_EBUSY, why);
}

static bool
pending_conn_ok(struct cp_api *api, struct cp_pending *p)
{
	ASSERT(p->kind != 0);
	return p->conn && cp_conn_alive(api->io, p->conn, p->conn_serial);
}

static bool
is_leader(struct cp_api *api)
{
	struct raft_status st;
	cp_node_status(api->node, &st);
	return st.role == RAFT_LEADER;
}

static json_object *
member_json(struct cp_api *api, const struct cluster_member *m, const struct raft_membership *rm)
{
	char ip[INET_ADDRSTRLEN];
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_uint64(m->id));
	json_object_object_add(o, "name", json_object_new_string(m->name));
	json_object_object_add(o, "peer", json_object_new_string(m->peer_addr));
	json_object_object_add(o, "client", json_object_new_string(m->client_addr));
	const char *role = raft_membership_is_voter(rm, m->id)   ? "voter"
	                   : raft_membership_contains(rm, m->id) ? "learner"
	                                                         : "joining";
	json_object_object_add(o, "role", json_object_new_string(role));
	if (m->dp_known) {
		json_object *d = json_object_new_object();
		char mac[18];
		inet_ntop(AF_INET, &m->ipv4_be, ip, sizeof(ip));
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m->mac[0], m->mac[1],
		         m->mac[2], m->mac[3], m->mac[4], m->mac[5]);
		json_object_object_add(d, "ip", json_object_new_string(ip));
		json_object_object_add(d, "mac", json_object_new_string(mac));
		json_object_object_add(d, "port", json_object_new_int(m->binary_port));
		json_object_object_add(d, "memcached_port", json_object_new_int(m->memcached_port));
		json_object_object_add(d, "workers", json_object_new_int(m->workers));
		json_object_object_add(o, "dataplane", d);
	}
	/* The dataplane's state: committed down, or the leader's verdict (only the leader
	 * judges: on another member it says so). */
	struct health_verdict vd;
	cp_liveness_judge(api->lv, m->id, &vd);
	bool mismatch = !vd.healthy && strncmp(vd.why, "mismatch", 8) == 0;
	const char *dp = mismatch                          ? "mismatch"
	                 : m->down                         ? "down"
	                 : !m->dp_known                    ? "none"
	                 : vd.healthy                      ? "up"
	                 : api->lv->h.leader_since_ns == 0 ? "unknown"
	                                                   : "unhealthy";
	json_object_object_add(o, "dp_state", json_object_new_string(dp));
	if (!vd.healthy && vd.why[0])
		json_object_object_add(o, "dp_why", json_object_new_string(vd.why));
	return o;
}

/*
 * The ops of the client API. A table entry says how an op is served; handle() looks the
 * op up and does what is common to its kind (the leader check, the ReadIndex round), so
 * each handler holds only what is particular to its op.
 */
struct api_op;

/*
 * A local or a write op: checks the request's arguments and replies, or hands the
 * request to Raft with a pending entry that replies later. Every path sends exactly one
 * reply or leaves exactly one pending entry.
 */
typedef void api_handle_fn(struct cp_api *api, struct cp_conn *c, uint64_t req_id,
                           const struct api_op *op, json_object *req);

/*
 * A read op: adds the result to r from this member's applied state. Returns 0, or
 * -SP_ENOTFOUND when what arg names does not exist (r is then dropped). Never blocks.
 */
typedef int api_read_fn(struct cp_api *api, const char *arg, json_object *r);

struct api_op {
	const char *name;
	/* Exactly one of local, read and write is set: it says how the op is served. */
	api_handle_fn *local; /* answered at once from this member's state, leader or not */
	api_read_fn *read;    /* linearizable through ReadIndex on the leader, or serializable */
	api_handle_fn *write; /* changes the cluster: the leader only */
	/* write: what the handler does, when one handler serves several ops. */
	uint32_t param;
	/* read: the request field read gets as arg ("" when the op takes none). */
	const char *arg_field;
	/* read: the reply when arg_field is missing, or NULL when it is optional. */
	const char *arg_missing;
	/* read: the reply when read returns -SP_ENOTFOUND. */
	const char *not_found;
};

static int
read_member_list(struct cp_api *api, const char *arg, json_object *r)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	(void)arg;
	json_object *a = json_object_new_array();
	struct raft_status st;
	cp_node_status(api->node, &st);
	for (uint32_t i = 0; i < sm->n_members; i++)
		json_object_array_add(a, member_json(api, &sm->members[i], &st.membership));
	json_object_object_add(r, "members", a);
	return 0;
}

static int
read_config_get(struct cp_api *api, const char *arg, json_object *r)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	const struct cluster_config_item *it = cluster_sm_config_get(sm, arg);
	if (it == NULL)
		return -SP_ENOTFOUND;
	json_object_object_add(r, "key", json_object_new_string(it->key));
	json_object_object_add(r, "value",
	                       json_object_new_string_len(it->value, (int)it->value_len));
	return 0;
}

static int
read_config_list(struct cp_api *api, const char *arg, json_object *r)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	json_object *a = json_object_new_array();
	size_t pl = strlen(arg);
	for (uint32_t i = 0; i < sm->n_config; i++) {
		const struct cluster_config_item *it = sm->config[i];
		if (strncmp(it->key, arg, pl) != 0)
			continue;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "key", json_object_new_string(it->key));
		json_object_object_add(o, "value",
		                       json_object_new_string_len(it->value, (int)it->value_len));
		json_object_array_add(a, o);
	}
	json_object_object_add(r, "items", a);
	return 0;
}

static int
read_partitions_show(struct cp_api *api, const char *arg, json_object *r)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	(void)arg;
	json_object *a = json_object_new_array();
	json_object *counts = json_object_new_object();
	uint32_t fenced = 0;
	for (uint32_t p = 0; p < sm->partitions && sm->epoch; p++) {
		json_object *e = json_object_new_array();
		json_object_array_add(e, json_object_new_uint64(sm->map[p].node_id));
		json_object_array_add(e, json_object_new_int(sm->map[p].worker));
		json_object_array_add(e, json_object_new_int(sm->map[p].flags));
		json_object_array_add(a, e);
		fenced += (sm->map[p].flags & SP_MAP_F_FENCED) != 0;
	}
	/* Per-node counts, by member name (a removed owner by its id). */
	for (uint32_t i = 0; i < sm->n_members; i++) {
		uint32_t n = 0;
		for (uint32_t p = 0; p < sm->partitions && sm->epoch; p++)
			n += sm->map[p].node_id == sm->members[i].id;
		json_object_object_add(counts, sm->members[i].name, json_object_new_int64(n));
	}
	json_object_object_add(r, "counts", counts);
	json_object_object_add(r, "fenced", json_object_new_int64(fenced));
	json_object_object_add(r, "epoch", json_object_new_uint64(sm->epoch));
	json_object_object_add(r, "partitions", json_object_new_int64(sm->partitions));
	json_object_object_add(r, "map", a);
	return 0;
}

static int
read_endpoint_health(struct cp_api *api, const char *arg, json_object *r)
{
	(void)api;
	(void)arg;
	json_object_object_add(r, "health", json_object_new_boolean(1));
	return 0;
}

/* The answer to a read, from this member's applied state. */
static void
answer_read(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
            const char *arg)
{
	ASSERT(op->read != NULL);
	json_object *r = json_object_new_object();
	int err = op->read(api, arg, r);
	if (err) {
		json_object_put(r);
		respond_err(api, c, req_id, err, op->not_found);
		return;
	}
	respond_ok(c, req_id, r);
}

static json_object *
status_json(struct cp_api *api)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	struct raft_status st;
	cp_node_status(api->node, &st);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "id", json_object_new_uint64(api->id));
	json_object_object_add(r, "name", json_object_new_string(api->cfg->name));
	json_object_object_add(r, "leader", json_object_new_uint64(st.leader_id));
	json_object_object_add(r, "term", json_object_new_uint64(st.term));
	json_object_object_add(r, "commit", json_object_new_uint64(st.commit));
	json_object_object_add(r, "applied", json_object_new_uint64(api->node->applied));
	json_object_object_add(r, "last_index", json_object_new_uint64(st.last_index));
	json_object_object_add(r, "role", json_object_new_string(raft_role_name(st.role)));
	json_object_object_add(r, "log_bytes",
	                       json_object_new_uint64(log_store_disk_bytes(api->node->log)));
	json_object_object_add(r, "segments",
	                       json_object_new_int64(log_store_segment_count(api->node->log)));
	json_object_object_add(r, "snapshot_index", json_object_new_uint64(api->node->snap_index));
	json_object_object_add(r, "epoch", json_object_new_uint64(sm->epoch));
	json_object *d = json_object_new_object();
	struct sp_dp_status ds;
	if (api->node->region && sp_region_status_read(api->node->region, &ds) == 0) {
		json_object_object_add(d, "state",
		                       json_object_new_string(sp_dp_state_name(ds.state)));
		pthread_mutex_lock(&api->stats->lock);
		int64_t age = api->stats->m.dp_heartbeat_age_ms;
		pthread_mutex_unlock(&api->stats->lock);
		json_object_object_add(d, "heartbeat_age_ms", json_object_new_int64(age));
		json_object_object_add(d, "epoch", json_object_new_uint64(ds.applied_epoch));
		json_object_object_add(d, "workers", json_object_new_int64(ds.workers));
		json_object_object_add(d, "requests", json_object_new_uint64(ds.counters.requests));
		json_object_object_add(d, "serving",
		                       json_object_new_string(sp_dp_serving_name(ds.serving)));
		json_object_object_add(d, "partitions", json_object_new_int64(ds.partitions));
	} else {
		json_object_object_add(
		        d, "state",
		        json_object_new_string(api->node->region ? "no heartbeat" : "none"));
	}
	char why[HEALTH_WHY_MAX + 64];
	json_object_object_add(
	        d, "dp_state",
	        json_object_new_string(cp_liveness_dp_state(api->lv, why, sizeof(why))));
	if (why[0])
		json_object_object_add(d, "why", json_object_new_string(why));
	uint64_t now = sp_mono_ns();
	json_object_object_add(
	        d, "lease_ms",
	        json_object_new_int64(
	                api->lv->written_expiry > now
	                        ? (int64_t)((api->lv->written_expiry - now) / SP_NS_PER_MS)
	                        : 0));
	json_object_object_add(r, "cluster_epoch", json_object_new_uint64(sm->epoch));
	json_object_object_add(r, "dataplane", d);
	json_object *m = json_object_new_object();
	pthread_mutex_lock(&api->stats->lock);
	json_object_object_add(m, "allocated", json_object_new_uint64(api->stats->m.mem_allocated));
	json_object_object_add(m, "resident", json_object_new_uint64(api->stats->m.mem_resident));
	pthread_mutex_unlock(&api->stats->lock);
	json_object_object_add(r, "memory", m);
	return r;
}

static const char *
jstr(json_object *req, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The member a request names in "member": its name, or its id in hex as shardctl shows
 * it. Returns 0 when nothing matches. */
static uint64_t
member_arg(struct cp_api *api, json_object *req)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	const char *s = jstr(req, "member");
	if (s == NULL || s[0] == '\0')
		return 0;
	for (uint32_t i = 0; i < sm->n_members; i++)
		if (strcmp(sm->members[i].name, s) == 0)
			return sm->members[i].id;
	char *end;
	uint64_t id = strtoull(s, &end, 16);
	return *end == '\0' ? id : 0;
}

/* The member a request names in "member" (see member_arg()) when it is in the Raft
 * membership, and a voter when voter_only. Returns 0 otherwise. */
static uint64_t
member_arg_in_raft(struct cp_api *api, json_object *req, bool voter_only)
{
	uint64_t id = member_arg(api, req);
	struct raft_status st;
	cp_node_status(api->node, &st);
	if (id == 0)
		return 0;
	if (voter_only)
		return raft_membership_is_voter(&st.membership, id) ? id : 0;
	return raft_membership_contains(&st.membership, id) ? id : 0;
}

static void
submit_write(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const char *op, uint32_t kind,
             uint64_t arg, const void *data, uint32_t len)
{
	int32_t pend = pending_new(api, CP_PEND_WRITE, c, req_id, op);
	if (pend < 0) {
		respond_err(api, c, req_id, -SP_EFULL, "too many requests in flight");
		return;
	}
	struct cp_pending *p = &api->pending[pend];
	ASSERT(p->kind == CP_PEND_WRITE);
	ASSERT(kind == CP_SUB_PROPOSE || kind == CP_SUB_CONF || kind == CP_SUB_TRANSFER);
	if (kind == CP_SUB_TRANSFER)
		p->read_ctx = arg; /* the target, checked each tick */
	int err = cp_node_submit(api->node, kind, arg, data, len, p->token);
	if (err) {
		pending_free(api, p);
		respond_submit_err(api, c, req_id, err);
	}
}

static void
submit_cmd(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const char *op,
           const struct cluster_cmd *cmd, bool wait)
{
	int n = cluster_cmd_encode(cmd, api->cmd_buf, CLUSTER_CMD_BYTES_MAX);
	if (n < 0) {
		respond_err(api, c, req_id, n, "request over a size limit");
		return;
	}
	if (wait)
		submit_write(api, c, req_id, op, CP_SUB_PROPOSE, 0, api->cmd_buf, (uint32_t)n);
	else
		cp_node_submit(api->node, CP_SUB_PROPOSE, 0, api->cmd_buf, (uint32_t)n, 0);
}

static void
submit_conf(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const char *op,
            uint32_t conf_op, uint64_t id)
{
	struct raft_conf_change cc = {.op = conf_op, .node_id = id};
	uint8_t b[RAFT_CONF_CHANGE_BYTES];
	ASSERT(id != 0);
	raft_conf_change_encode(&cc, b);
	submit_write(api, c, req_id, op, CP_SUB_CONF, 0, b, sizeof(b));
}

static void
op_endpoint_status(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
                   json_object *req)
{
	(void)op;
	(void)req;
	respond_ok(c, req_id, status_json(api));
}

static void
op_snapshot_save(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
                 json_object *req)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	(void)op;
	(void)req;
	uint8_t *img;
	size_t len;
	if (cluster_sm_snapshot(sm, &img, &len)) {
		respond_err(api, c, req_id, -ENOMEM, NULL);
		return;
	}
	size_t b64_len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64_len);
	if (b64 == NULL) {
		free(img);
		respond_err(api, c, req_id, -ENOMEM, NULL);
		return;
	}
	sodium_bin2base64(b64, b64_len, img, len, sodium_base64_VARIANT_ORIGINAL);
	json_object *r = json_object_new_object();
	json_object_object_add(r, "index", json_object_new_uint64(api->node->applied));
	json_object_object_add(r, "term", json_object_new_uint64(api->node->applied_term));
	json_object_object_add(r, "data", json_object_new_string(b64));
	free(b64);
	free(img);
	respond_ok(c, req_id, r);
}

/* config.set and config.del; op->param is CLUSTER_CMD_CONFIG_SET or CLUSTER_CMD_CONFIG_DEL. */
static void
op_config_write(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
                json_object *req)
{
	ASSERT(op->param == CLUSTER_CMD_CONFIG_SET || op->param == CLUSTER_CMD_CONFIG_DEL);
	struct cluster_cmd cmd = {0};
	const char *key = jstr(req, "key");
	const char *val = jstr(req, "value");
	bool set = op->param == CLUSTER_CMD_CONFIG_SET;
	char why[160];
	int err = set ? cp_check_config_set(cp_node_sm(api->node), api->cfg, key, val, why,
	                                    sizeof(why))
	              : cp_check_config_del(key, why, sizeof(why));
	if (err) {
		respond_err(api, c, req_id, err, why);
		return;
	}
	ASSERT(key != NULL);
	cmd.type = op->param;
	cmd.key = key;
	cmd.key_len = (uint32_t)strlen(key);
	cmd.value = set ? val : NULL;
	cmd.value_len = set ? (uint32_t)strlen(val) : 0;
	submit_cmd(api, c, req_id, op->name, &cmd, true);
}

static void
op_member_add(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
              json_object *req)
{
	struct cluster_cmd cmd = {0};
	const char *name = jstr(req, "name"), *peer = jstr(req, "peer");
	const char *client = jstr(req, "client") ? jstr(req, "client") : "";
	char why[160];
	uint64_t id = 0;
	int err = cp_check_member_add(cp_node_sm(api->node), name, peer, client, &id, why,
	                              sizeof(why));
	if (err) {
		respond_err(api, c, req_id, err, why);
		return;
	}
	cmd.type = CLUSTER_CMD_MEMBER_UPSERT;
	cmd.member.id = id;
	snprintf(cmd.member.name, sizeof(cmd.member.name), "%s", name);
	snprintf(cmd.member.peer_addr, sizeof(cmd.member.peer_addr), "%s", peer);
	snprintf(cmd.member.client_addr, sizeof(cmd.member.client_addr), "%s", client);
	submit_cmd(api, c, req_id, op->name, &cmd, false);
	cp_peer_upsert(api->io, id, name, peer);
	submit_conf(api, c, req_id, op->name, RAFT_CONF_ADD_LEARNER, id);
}

/* member.remove and member.promote; op->param is RAFT_CONF_REMOVE or RAFT_CONF_PROMOTE. */
static void
op_member_conf(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
               json_object *req)
{
	ASSERT(op->param == RAFT_CONF_REMOVE || op->param == RAFT_CONF_PROMOTE);
	uint64_t id = member_arg_in_raft(api, req, false);
	if (id == 0) {
		respond_err(api, c, req_id, -SP_ENOTFOUND, "no such member");
		return;
	}
	submit_conf(api, c, req_id, op->name, op->param, id);
}

static void
op_move_leader(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
               json_object *req)
{
	uint64_t id = member_arg_in_raft(api, req, true);
	ASSERT(strcmp(op->name, "move-leader") == 0); /* the tick checks the transfer by name */
	if (id == 0) {
		respond_err(api, c, req_id, -SP_ENOTFOUND, "target is not a voting member");
		return;
	}
	submit_write(api, c, req_id, op->name, CP_SUB_TRANSFER, id, NULL, 0);
}

static void
op_partitions_rebalance(struct cp_api *api, struct cp_conn *c, uint64_t req_id,
                        const struct api_op *op, json_object *req)
{
	const struct cluster_sm *sm = cp_node_sm(api->node);
	(void)op;
	(void)req;
	uint32_t moved = 0, fenced = 0;
	/* A balanced map over members with known dataplanes: the liveness duties propose it
	 * (fencing partitions whose owner still serves them first); this asks them to include
	 * members that hold no partitions yet. */
	int err = cp_liveness_plan(api->lv, true, api->plan_map, &moved, &fenced);
	if (err == 0) {
		moved += fenced;
		api->lv->rebalance_requested = true;
	}
	if (err) {
		respond_err(api, c, req_id, err,
		            "no members with a dataplane to place partitions on");
		return;
	}
	json_object *r = json_object_new_object();
	json_object_object_add(r, "epoch", json_object_new_uint64(sm->epoch + (moved > 0)));
	json_object_object_add(r, "moved", json_object_new_int64(moved));
	respond_ok(c, req_id, r);
}

/* Every op the API serves (docs/control-api.md lists them with their arguments). */
static const struct api_op api_ops[] = {
        {.name = "member.list", .read = read_member_list},
        {.name = "config.get",
         .read = read_config_get,
         .arg_field = "key",
         .arg_missing = "config.get needs \"key\"",
         .not_found = "no such key"},
        {.name = "config.list", .read = read_config_list, .arg_field = "prefix"},
        {.name = "partitions.show", .read = read_partitions_show},
        {.name = "endpoint.health", .read = read_endpoint_health},
        {.name = "endpoint.status", .local = op_endpoint_status},
        {.name = "snapshot.save", .local = op_snapshot_save},
        {.name = "config.set", .write = op_config_write, .param = CLUSTER_CMD_CONFIG_SET},
        {.name = "config.del", .write = op_config_write, .param = CLUSTER_CMD_CONFIG_DEL},
        {.name = "member.add", .write = op_member_add},
        {.name = "member.remove", .write = op_member_conf, .param = RAFT_CONF_REMOVE},
        {.name = "member.promote", .write = op_member_conf, .param = RAFT_CONF_PROMOTE},
        {.name = "move-leader", .write = op_move_leader},
        {.name = "partitions.rebalance", .write = op_partitions_rebalance},
};

/* The table entry of the op called name, or NULL when there is none. Can't fail. */
static const struct api_op *
api_op_find(const char *name)
{
	for (size_t i = 0; i < SP_ARRAY_SIZE(api_ops); i++) {
		const struct api_op *op = &api_ops[i];
		if (strcmp(op->name, name) != 0)
			continue;
		ASSERT((op->local != NULL) + (op->read != NULL) + (op->write != NULL) == 1);
		return op;
	}
	return NULL;
}

/*
 * A read: answered from this member's applied state when the request says
 * "serializable", else queued as a pending read on the leader until a ReadIndex round
 * confirms it and the state has applied that far (cp_api_serve_reads answers it then).
 */
static void
start_read(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const struct api_op *op,
           json_object *req)
{
	ASSERT(op->read != NULL);
	json_object *v;
	bool serializable =
	        json_object_object_get_ex(req, "serializable", &v) && json_object_get_boolean(v);
	const char *arg = op->arg_field != NULL ? jstr(req, op->arg_field) : "";
	if (arg == NULL && op->arg_missing != NULL) {
		respond_err(api, c, req_id, -EINVAL, op->arg_missing);
		return;
	}
	if (arg == NULL)
		arg = "";
	if (serializable) {
		answer_read(api, c, req_id, op, arg);
		return;
	}
	if (!is_leader(api)) {
		respond_err(api, c, req_id, -SP_ENOTLEADER, NULL);
		return;
	}
	if (strlen(arg) > CLUSTER_CONFIG_KEY_MAX) {
		respond_err(api, c, req_id, -SP_ETOOBIG, "key longer than its limit");
		return;
	}
	int32_t pend = pending_new(api, CP_PEND_READ, c, req_id, op->name);
	if (pend < 0) {
		respond_err(api, c, req_id, -SP_EFULL, "too many requests in flight");
		return;
	}
	struct cp_pending *p = &api->pending[pend];
	snprintf(p->arg, sizeof(p->arg), "%s", arg);
	p->read_ctx = p->token; /* unique, and names the slot when the round ends */
	int err = cp_node_submit(api->node, CP_SUB_READ, p->read_ctx, NULL, 0, p->token);
	if (err) {
		pending_free(api, p);
		respond_submit_err(api, c, req_id, err);
	}
}

/*
 * Serves one request: looks its op up in api_ops and sends the reply, or leaves a pending
 * entry that replies later. An op the table does not know is refused as a write would be:
 * NOT_LEADER on a follower (the client retries at the leader), BAD_REQUEST on the leader.
 */
static void
handle(struct cp_api *api, struct cp_conn *c, uint64_t req_id, const char *name, json_object *req)
{
	const struct api_op *op = api_op_find(name);

	if (op != NULL && op->local != NULL) {
		op->local(api, c, req_id, op, req);
		return;
	}
	if (op != NULL && op->read != NULL) {
		start_read(api, c, req_id, op, req);
		return;
	}
	/* Everything else changes the cluster: the leader only. */
	if (!is_leader(api)) {
		respond_err(api, c, req_id, -SP_ENOTLEADER, NULL);
		return;
	}
	if (op == NULL) {
		respond_err(api, c, req_id, -EINVAL, "unknown op");
		return;
	}
	ASSERT(op->write != NULL);
	op->write(api, c, req_id, op, req);
}

void
cp_api_on_request(struct cp_api *api, struct cp_conn *c, const uint8_t *payload, uint32_t len)
{
	ASSERT(len <= CP_JSON_MAX); /* io.c bounds a client's frames */
	ASSERT(c->kind == CP_CONN_CLIENT);
	struct json_tokener *tok = json_tokener_new();
	json_object *req = tok ? json_tokener_parse_ex(tok, (const char *)payload, (int)len) : NULL;
	json_object *v;
	uint64_t req_id = 0;

	if (tok)
		json_tokener_free(tok);
	if (req == NULL || !json_object_is_type(req, json_type_object)) {
		respond_err(api, c, 0, -EINVAL, "request is not a JSON object");
		if (req)
			json_object_put(req);
		return;
	}
	if (json_object_object_get_ex(req, "id", &v))
		req_id = (uint64_t)json_object_get_int64(v);
	const char *op = jstr(req, "op");
	if (op == NULL || strlen(op) >= sizeof(((struct cp_pending *)0)->op))
		respond_err(api, c, req_id, -EINVAL, "request needs \"op\"");
	else
		handle(api, c, req_id, op, req);
	json_object_put(req);
}

/* A wait whose request still waits for that index. */
static bool
wait_live(void *arg, const struct cp_wait *w)
{
	struct cp_pending *p = pending_by_token(arg, w->token);
	return p != NULL && p->kind == CP_PEND_WRITE && p->index == w->index;
}

/* A submission was stepped: a refusal answers at once, else the write waits for its
 * entry (index, term) to be applied. */
static void
on_submitted(struct cp_api *api, uint64_t token, int err, uint64_t index, uint64_t term)
{
	struct cp_pending *p = pending_by_token(api, token);
	if (p == NULL)
		return; /* timed out meanwhile */
	ASSERT(err <= 0);
	if (err) {
		SP_LOG_DEBUG(MOD, "%s refused by Raft: %s", p->op, sp_strerror(err));
		if (pending_conn_ok(api, p))
			respond_err(api, p->conn, p->req_id, err, NULL);
		pending_free(api, p);
		return;
	}
	if (p->kind == CP_PEND_WRITE && strcmp(p->op, "move-leader") != 0) {
		p->index = index;
		p->term = term;
		if (index == 0)
			return; /* forwarded to the leader: no index to wait for; it times out */
		if (cp_waitq_push(&api->waitq, index, token) != 0) {
			/* Full of waits whose requests timed out: drop those, then there is room
			 * (it holds twice as many as there can be pending requests). */
			cp_waitq_filter(&api->waitq, wait_live, api);
			VERIFY(cp_waitq_push(&api->waitq, index, token) == 0);
		}
	}
}

/* Entry (index, term) was applied with status: answers the write waiting for it. */
static void
on_applied(struct cp_api *api, uint64_t index, uint64_t term, int status)
{
	ASSERT(index != 0);
	ASSERT(index <= api->node->applied);
	struct cp_wait w;
	while (cp_waitq_min(&api->waitq) != 0 && cp_waitq_min(&api->waitq) <= index) {
		VERIFY(cp_waitq_pop(&api->waitq, &w));
		struct cp_pending *p = pending_by_token(api, w.token);
		if (p == NULL || p->kind != CP_PEND_WRITE || p->index != w.index)
			continue; /* timed out or refused meanwhile */
		if (pending_conn_ok(api, p)) {
			/* An index below this one was applied with another entry (the log was
			 * cut after a leader change): the write did not commit. */
			if (w.index != index || p->term != term)
				respond_err(api, p->conn, p->req_id, -EAGAIN,
				            "leader changed before the change committed; retry");
			else if (status == -SP_EFULL)
				respond_err(api, p->conn, p->req_id, -SP_ETOOBIG,
				            "the configuration store is full (its hard limits: "
				            "1,000,000 "
				            "keys, 48 MiB)");
			else if (status)
				respond_err(api, p->conn, p->req_id, status, NULL);
			else {
				json_object *r = json_object_new_object();
				json_object_object_add(r, "index", json_object_new_uint64(index));
				respond_ok(p->conn, p->req_id, r);
			}
		}
		pending_free(api, p);
	}
}

/* The ReadIndex round of ctx ended: the read is answered once applied reaches index. */
static void
on_read_ready(struct cp_api *api, uint64_t ctx, uint64_t index, int status)
{
	ASSERT(ctx != 0);
	struct cp_pending *p = pending_by_token(api, ctx);
	if (p == NULL || p->kind != CP_PEND_READ)
		return; /* timed out meanwhile */
	ASSERT(p->read_ctx == ctx);
	if (status) {
		if (pending_conn_ok(api, p))
			respond_err(api, p->conn, p->req_id, status, NULL);
		pending_free(api, p);
		return;
	}
	p->read_ready = true;
	p->index = index;
}

/* Answers the confirmed reads the applied state now covers. */
static void
serve_reads(struct cp_api *api)
{
	for (uint32_t i = 0; i < CP_PENDING_MAX && api->n_pending; i++) {
		struct cp_pending *p = &api->pending[i];
		if (p->kind != CP_PEND_READ || !p->read_ready || api->node->applied < p->index)
			continue;
		if (pending_conn_ok(api, p)) {
			/* p->op was copied from the entry start_read() served. */
			const struct api_op *op = api_op_find(p->op);
			VERIFY(op != NULL);
			VERIFY(op->read != NULL);
			answer_read(api, p->conn, p->req_id, op, p->arg);
		}
		pending_free(api, p);
	}
}

uint32_t
cp_api_take_outcomes(struct cp_api *api)
{
	struct cp_outcome o;
	uint32_t n = 0;
	while (cp_outq_pop(&api->node->outq, &o)) {
		n++;
		switch (o.kind) {
		case CP_OUT_SUBMITTED:
			on_submitted(api, o.token, o.status, o.index, o.term);
			break;
		case CP_OUT_APPLIED:
			on_applied(api, o.index, o.term, o.status);
			break;
		case CP_OUT_READ_READY:
			on_read_ready(api, o.ctx, o.index, o.status);
			break;
		default:
			VERIFY(!"an outcome of no known kind"); /* outq checks kinds on push */
		}
	}
	/* Reads wait for a confirmation (an outcome) and for applied to reach their index;
	 * applied may also move without an outcome (a snapshot installed). The scan runs only
	 * when one of the two happened, not on every turn of the loop. */
	if (api->n_pending > 0 && (n > 0 || api->node->applied != api->served_applied))
		serve_reads(api);
	api->served_applied = api->node->applied;
	ASSERT(cp_outq_depth(&api->node->outq) == 0);
	return n;
}

int
cp_api_init(struct cp_api *api, const struct cp_config *cfg, uint64_t id, struct cp_node *node,
            struct cp_io *io, struct cp_liveness *lv, struct cp_stats *stats)
{
	memset(api, 0, sizeof(*api));
	api->cfg = cfg;
	api->id = id;
	api->node = node;
	api->io = io;
	api->lv = lv;
	api->stats = stats;
	api->cmd_buf = malloc(CLUSTER_CMD_BYTES_MAX);
	api->plan_map = calloc(SP_PARTITIONS_MAX, sizeof(api->plan_map[0]));
	if (api->cmd_buf == NULL || api->plan_map == NULL ||
	    cp_waitq_init(&api->waitq, 2 * CP_PENDING_MAX) != 0) {
		cp_api_fini(api);
		return -ENOMEM;
	}
	return 0;
}

void
cp_api_fini(struct cp_api *api)
{
	free(api->cmd_buf);
	free(api->plan_map);
	cp_waitq_fini(&api->waitq);
	api->cmd_buf = NULL;
	api->plan_map = NULL;
}

void
cp_api_tick(struct cp_api *api)
{
	api->tick++;
	ASSERT(api->n_pending <= CP_PENDING_MAX);
	struct raft_status st;
	cp_node_status(api->node, &st);
	for (uint32_t i = 0; i < CP_PENDING_MAX && api->n_pending; i++) {
		struct cp_pending *p = &api->pending[i];
		if (p->kind == 0)
			continue;
		if (p->kind == CP_PEND_WRITE && strcmp(p->op, "move-leader") == 0 &&
		    st.leader_id == p->read_ctx) {
			if (pending_conn_ok(api, p))
				respond_ok(p->conn, p->req_id, NULL);
			pending_free(api, p);
			continue;
		}
		if ((int32_t)(api->tick - p->deadline_tick) >= 0) {
			if (pending_conn_ok(api, p))
				respond_err(api, p->conn, p->req_id, -ETIMEDOUT,
				            "no answer within 10 s (no quorum?)");
			pending_free(api, p);
		}
	}
}

bool
cp_api_check_invariants(const struct cp_api *api)
{
	uint32_t used = 0;
	for (uint32_t i = 0; i < CP_PENDING_MAX; i++) {
		const struct cp_pending *p = &api->pending[i];
		if (p->kind == 0) {
			if (p->token != 0)
				return false;
			continue;
		}
		used++;
		if (p->kind != CP_PEND_WRITE && p->kind != CP_PEND_READ)
			return false;
		if (p->token == 0 || (p->token & 0xffffu) != i ||
		    (p->token >> 16) > api->pending_serial)
			return false;
		if (p->kind == CP_PEND_READ && p->read_ctx != p->token)
			return false;
		if (memchr(p->op, '\0', sizeof(p->op)) == NULL)
			return false;
	}
	return used == api->n_pending && cp_waitq_check_invariants(&api->waitq);
}

void
cp_api_on_conn_closed(struct cp_api *api, struct cp_conn *c)
{
	ASSERT(c != NULL);
	for (uint32_t i = 0; i < CP_PENDING_MAX && api->n_pending; i++)
		if (api->pending[i].kind && api->pending[i].conn == c)
			api->pending[i].conn = NULL;
}
