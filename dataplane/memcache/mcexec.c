/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mcexec: memcached commands on the partition stores. The reply sequencing (when replies
 * are flushed, culled or silenced) follows memcached 1.6's connection state machine for a
 * UDP "connection"; lib/wire/memcache.c explains the datagram rules.
 */
#include "dataplane/memcache/mcexec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"

/* Bytes of the general "stats" reply; it is about 1.2 KiB. */
#define STATS_TEXT_BYTES_MAX 4096u

/* What one command asks of the loop after it ran. */
enum step {
	STEP_NEXT = 0, /* go on with the next command */
	STEP_FLUSH,    /* memcached writes out its queue after this command (a get) */
	STEP_STOP,     /* ignore the rest of the datagram */
};

struct run {
	const struct mcexec_env *env;
	struct mcexec_counters *c;
	struct sp_mc_out *out;
	bool full; /* out had no room: stop */
};

static struct store *
key_store(const struct run *r, const char *key, uint32_t key_len, struct store_key *sk, bool *owned)
{
	uint32_t p;
	struct store *s;

	sk->data = key;
	sk->len = key_len;
	sk->hash = sp_key_hash(key, key_len);
	p = sp_key_partition(sk->hash, r->env->partitions);
	ASSERT(p < r->env->partitions);
	s = r->env->part(r->env->ctx, p, owned);
	VERIFY(s != NULL);
	return s;
}

/* Starts loading the index bucket of key's partition store. Can't fail. */
static void
prefetch_key(const struct run *r, const char *key, uint32_t key_len)
{
	uint64_t hash = sp_key_hash(key, key_len);
	bool owned;
	struct store *s =
	        r->env->part(r->env->ctx, sp_key_partition(hash, r->env->partitions), &owned);

	ASSERT(key_len > 0);
	ASSERT(s != NULL);
	store_prefetch(s, hash);
}

/* Appends a response; a full output array stops the datagram (counted once). */
static void
emit(struct run *r, const struct sp_mc_seg *segs, unsigned nseg)
{
	uint32_t before = r->out->n;

	ASSERT(nseg == 0 || segs != NULL);
	ASSERT(r->out->n <= r->out->cap);
	if (r->full)
		return;
	if (sp_mc_out_resp(r->out, segs, nseg) != 0) {
		r->full = true;
		r->c->out_full++;
		return;
	}
	for (uint32_t i = before; i < r->out->n; i++)
		r->c->bytes_written += r->out->lens[i] - SP_MC_FRAME_BYTES;
}

/* memcached's out_string(): one line, or nothing when the command said noreply. */
static void
emit_line(struct run *r, const struct sp_mc_cmd *cmd, const char *text, size_t len)
{
	struct sp_mc_seg segs[2] = {{text, len}, {"\r\n", 2}};

	if (cmd->noreply) {
		sp_mc_out_skip(r->out);
		return;
	}
	emit(r, segs, 2);
}

static void
emit_reply(struct run *r, const struct sp_mc_cmd *cmd, enum sp_mc_reply rep)
{
	const char *text = sp_mc_reply_text(rep);

	ASSERT(rep != SP_MC_R_NONE);
	if (strncmp(text, "ERROR", 5) == 0 || strncmp(text, "CLIENT_ERROR", 12) == 0 ||
	    strncmp(text, "SERVER_ERROR", 12) == 0)
		r->c->error_replies++;
	emit_line(r, cmd, text, strlen(text));
}

uint32_t
mcexec_expire_s(int32_t exptime, uint32_t now_s, uint64_t wall_s)
{
	uint64_t at;

	ASSERT(now_s >= 1);
	if (exptime == 0)
		return 0;
	if (exptime < 0)
		return now_s; /* memcached: already expired */
	if (exptime > SP_MC_REALTIME_MAXDELTA_S) {
		if ((uint64_t)exptime <= wall_s)
			return now_s;
		at = (uint64_t)now_s + ((uint64_t)exptime - wall_s);
	} else {
		at = (uint64_t)now_s + (uint64_t)exptime;
	}
	return at > UINT32_MAX ? UINT32_MAX : (uint32_t)at;
}

/* One key of a get-type command: its response (VALUE block, plus END when last). */
static void
get_one(struct run *r, const struct sp_mc_cmd *cmd, const char *key, uint32_t key_len, bool last,
        uint32_t expire_s)
{
	const struct mcexec_env *env = r->env;
	bool touch = cmd->kind == SP_MC_GAT || cmd->kind == SP_MC_GATS;
	bool with_cas = cmd->kind == SP_MC_GETS || cmd->kind == SP_MC_GATS;
	struct store_key sk;
	struct store_value v;
	struct sp_mc_seg segs[4];
	char line[SP_MC_LINE_BYTES_MAX];
	unsigned n = 0;
	uint32_t before;
	bool owned;
	struct store *s = key_store(r, key, key_len, &sk, &owned);
	int rc;

	if (owned && touch) {
		rc = store_gat(s, &sk, expire_s, env->now_s, &v);
	} else if (owned) {
		rc = store_get(s, &sk, env->now_s, &v);
	} else {
		rc = store_get_copy_concurrent(s, &sk, env->now_s, env->copy_buf, env->copy_buf_len,
		                               &v);
		if (rc == -SP_EBUSY || rc == SP_EBUSY)
			r->c->concurrent_busy++;
		if (rc == 0 && touch && env->touch_remote != NULL) {
			env->touch_remote(env->ctx, sp_key_partition(sk.hash, env->partitions), key,
			                  key_len, expire_s);
			r->c->gat_remote_forwarded++;
		} else if (rc == 0 && touch) {
			r->c->gat_remote_untouched++;
		}
	}
	if (touch) {
		r->c->cmd_touch++;
		if (rc == 0)
			r->c->touch_hits++;
		else
			r->c->touch_misses++;
	} else {
		r->c->cmd_get++;
		if (rc == 0)
			r->c->get_hits++;
		else
			r->c->get_misses++;
	}
	if (rc == 0) {
		segs[n++] = (struct sp_mc_seg){line,
		                               sp_mc_format_value_line(line, key, key_len, v.flags,
		                                                       v.len, with_cas, v.cas)};
		segs[n++] = (struct sp_mc_seg){v.data, v.len};
		segs[n++] = (struct sp_mc_seg){"\r\n", 2};
	}
	if (last)
		segs[n++] = (struct sp_mc_seg){"END\r\n", 5};
	ASSERT(n <= SP_ARRAY_SIZE(segs));
	before = r->out->n;
	if (sp_mc_out_resp(r->out, segs, n) != 0) {
		/* memcached out of response objects: drop what is queued, say so. */
		sp_mc_out_cull(r->out);
		r->c->out_full++;
		emit_reply(r, cmd, SP_MC_R_OOM_GET);
		r->full = true;
		return;
	}
	for (uint32_t i = before; i < r->out->n; i++)
		r->c->bytes_written += r->out->lens[i] - SP_MC_FRAME_BYTES;
}

/* get/gets/gat/gats: one response per key, END on the last; flushes afterwards. */
static enum step
exec_get(struct run *r, const struct sp_mc_cmd *cmd)
{
	uint32_t pos = 0, key_len, i = 0;
	const char *key;
	uint32_t expire_s = mcexec_expire_s(cmd->exptime, r->env->now_s, r->env->wall_s);

	if (cmd->key_count == 0) {
		struct sp_mc_seg end = {"END\r\n", 5};

		emit(r, &end, 1);
		return STEP_FLUSH;
	}
	if (r->env->elsewhere != NULL) {
		const char *refuse = NULL;

		/* A key this node cannot answer fails the whole command, before any output. */
		while (refuse == NULL && sp_mc_next_key(cmd, &pos, &key, &key_len)) {
			uint32_t p =
			        sp_key_partition(sp_key_hash(key, key_len), r->env->partitions);

			refuse = r->env->elsewhere(r->env->ctx, p);
		}
		if (refuse != NULL) {
			r->c->elsewhere_refused++;
			r->c->error_replies++;
			emit_line(r, cmd, refuse, strlen(refuse));
			return STEP_FLUSH;
		}
		pos = 0;
	}
	while (sp_mc_next_key(cmd, &pos, &key, &key_len)) {
		uint32_t ahead = pos, next_len;
		const char *next;

		/* Prefetch the next key's index bucket while this one is looked up. */
		if (sp_mc_next_key(cmd, &ahead, &next, &next_len))
			prefetch_key(r, next, next_len);
		i++;
		get_one(r, cmd, key, key_len, i == cmd->key_count, expire_s);
		if (r->full)
			return STEP_STOP;
	}
	ASSERT(i == cmd->key_count);
	return STEP_FLUSH;
}

/* The store mode of a memcached storage command. */
static enum store_mode
store_mode_of(enum sp_mc_kind kind)
{
	switch (kind) {
	case SP_MC_ADD:
		return STORE_ADD;
	case SP_MC_REPLACE:
		return STORE_REPLACE;
	case SP_MC_APPEND:
		return STORE_APPEND;
	case SP_MC_PREPEND:
		return STORE_PREPEND;
	case SP_MC_CAS:
		return STORE_CAS;
	default:
		ASSERT(kind == SP_MC_SET);
		return STORE_SET;
	}
}

/* set/add/replace/append/prepend/cas on the key's store; answers memcached's line. */
static void
exec_storage(struct run *r, const struct sp_mc_cmd *cmd)
{
	const struct mcexec_env *env = r->env;
	struct store_key sk;
	struct store_write w;
	bool owned;
	struct store *s = key_store(r, cmd->key, cmd->key_len, &sk, &owned);
	enum sp_mc_reply rep;
	int rc;

	if (!owned) {
		r->c->cross_partition++;
		emit_reply(r, cmd, SP_MC_R_CROSS_PARTITION);
		return;
	}
	r->c->cmd_set++;
	if (cmd->too_large) {
		/* memcached unlinks the old item of a set that cannot be stored. */
		if (cmd->kind == SP_MC_SET)
			(void)store_delete(s, &sk, 0, env->now_s);
		r->c->store_too_large++;
		emit_reply(r, cmd, SP_MC_R_TOO_LARGE);
		return;
	}
	ASSERT(cmd->value != NULL);
	w.value = cmd->value;
	w.value_len = cmd->value_len;
	w.flags = cmd->flags;
	w.expire_s = mcexec_expire_s(cmd->exptime, env->now_s, env->wall_s);
	w.cas = cmd->kind == SP_MC_CAS ? cmd->cas_unique : 0;
	rc = store_set(s, store_mode_of(cmd->kind), &sk, &w, env->now_s, NULL);
	if (rc < 0)
		rc = -rc;
	switch (rc) {
	case 0:
		rep = SP_MC_R_STORED;
		r->c->total_items++;
		if (cmd->kind == SP_MC_CAS)
			r->c->cas_hits++;
		break;
	case SP_EEXISTS:
		rep = SP_MC_R_NOT_STORED;
		break;
	case SP_ENOTFOUND:
		rep = cmd->kind == SP_MC_CAS ? SP_MC_R_NOT_FOUND : SP_MC_R_NOT_STORED;
		if (cmd->kind == SP_MC_CAS)
			r->c->cas_misses++;
		break;
	case SP_EVERSION:
		rep = SP_MC_R_EXISTS;
		r->c->cas_badval++;
		break;
	case SP_ETOOBIG:
	case SP_EFULL:
		if (cmd->kind == SP_MC_SET)
			(void)store_delete(s, &sk, 0, env->now_s);
		rep = SP_MC_R_TOO_LARGE;
		r->c->store_too_large++;
		break;
	default:
		rep = SP_MC_R_OOM_STORE;
		r->c->store_no_memory++;
		break;
	}
	emit_reply(r, cmd, rep);
}

/* delete: DELETED or NOT_FOUND; refused when the key's partition is owned elsewhere. */
static void
exec_delete(struct run *r, const struct sp_mc_cmd *cmd)
{
	struct store_key sk;
	bool owned;
	struct store *s = key_store(r, cmd->key, cmd->key_len, &sk, &owned);
	int rc;

	ASSERT(cmd->kind == SP_MC_DELETE);
	ASSERT(cmd->key_len > 0);
	if (!owned) {
		r->c->cross_partition++;
		emit_reply(r, cmd, SP_MC_R_CROSS_PARTITION);
		return;
	}
	rc = store_delete(s, &sk, 0, r->env->now_s);
	if (rc == 0) {
		r->c->delete_hits++;
		emit_reply(r, cmd, SP_MC_R_DELETED);
	} else {
		ASSERT(rc == -SP_ENOTFOUND || rc == SP_ENOTFOUND);
		r->c->delete_misses++;
		emit_reply(r, cmd, SP_MC_R_NOT_FOUND);
	}
}

/* incr/decr: the new number, NOT_FOUND, or the non-numeric error. */
static void
exec_arith(struct run *r, const struct sp_mc_cmd *cmd)
{
	bool incr = cmd->kind == SP_MC_INCR;
	struct store_key sk;
	bool owned;
	struct store *s = key_store(r, cmd->key, cmd->key_len, &sk, &owned);
	uint64_t v = 0;
	char num[24];
	int rc;

	ASSERT(cmd->kind == SP_MC_INCR || cmd->kind == SP_MC_DECR);
	ASSERT(cmd->key_len > 0);
	if (!owned) {
		r->c->cross_partition++;
		emit_reply(r, cmd, SP_MC_R_CROSS_PARTITION);
		return;
	}
	if (incr)
		rc = store_incr(s, &sk, cmd->delta, r->env->now_s, &v);
	else
		rc = store_decr(s, &sk, cmd->delta, r->env->now_s, &v);
	if (rc < 0)
		rc = -rc;
	switch (rc) {
	case 0:
		if (incr)
			r->c->incr_hits++;
		else
			r->c->decr_hits++;
		emit_line(r, cmd, num, sp_mc_format_number_line(num, v) - 2);
		break;
	case SP_ENOTFOUND:
		if (incr)
			r->c->incr_misses++;
		else
			r->c->decr_misses++;
		emit_reply(r, cmd, SP_MC_R_NOT_FOUND);
		break;
	case SP_ENOTNUM:
		emit_reply(r, cmd, SP_MC_R_NON_NUMERIC);
		break;
	default:
		r->c->store_no_memory++;
		emit_reply(r, cmd, SP_MC_R_OOM_STORE);
		break;
	}
}

/* touch: TOUCHED or NOT_FOUND; the new expiry on the store clock. */
static void
exec_touch(struct run *r, const struct sp_mc_cmd *cmd)
{
	struct store_key sk;
	bool owned;
	struct store *s = key_store(r, cmd->key, cmd->key_len, &sk, &owned);
	uint32_t expire_s = mcexec_expire_s(cmd->exptime, r->env->now_s, r->env->wall_s);
	int rc;

	ASSERT(cmd->kind == SP_MC_TOUCH);
	ASSERT(cmd->key_len > 0);
	if (!owned) {
		r->c->cross_partition++;
		emit_reply(r, cmd, SP_MC_R_CROSS_PARTITION);
		return;
	}
	r->c->cmd_touch++;
	rc = store_touch(s, &sk, expire_s, r->env->now_s);
	if (rc == 0) {
		r->c->touch_hits++;
		emit_reply(r, cmd, SP_MC_R_TOUCHED);
	} else {
		r->c->touch_misses++;
		emit_reply(r, cmd, SP_MC_R_NOT_FOUND);
	}
}

/* flush_all [delay]: every partition, owned ones here, the others through the runtime. */
static void
exec_flush_all(struct run *r, const struct sp_mc_cmd *cmd)
{
	const struct mcexec_env *env = r->env;
	uint32_t at_s = env->now_s;
	bool remote = false;

	if (cmd->has_delay && cmd->delay > 0)
		at_s = mcexec_expire_s(cmd->delay, env->now_s, env->wall_s);
	r->c->cmd_flush++;
	for (uint32_t p = 0; p < env->partitions; p++) {
		bool owned;
		struct store *s = env->part(env->ctx, p, &owned);

		VERIFY(s != NULL);
		if (owned)
			store_flush_all(s, at_s, env->now_s);
		else
			remote = true;
	}
	if (remote) {
		VERIFY(env->flush_remote != NULL);
		env->flush_remote(env->ctx, at_s);
	}
	emit_reply(r, cmd, SP_MC_R_OK);
}

/* Appends "STAT name value\r\n"; the buffer is sized for every line, so it can't fail. */
static size_t
stat_line(char *buf, size_t at, const char *name, uint64_t v)
{
	int n = snprintf(buf + at, STATS_TEXT_BYTES_MAX - at, "STAT %s %" PRIu64 "\r\n", name, v);

	VERIFY(n > 0);
	VERIFY(at + (size_t)n < STATS_TEXT_BYTES_MAX);
	return at + (size_t)n;
}

/*
 * stats: one response of STAT lines in memcached's order, then END. Values come from
 * env->stats when set, else from this core's counters only. Can't fail.
 */
static void
exec_stats(struct run *r, const struct sp_mc_cmd *cmd)
{
	const struct mcexec_env *env = r->env;
	struct mcexec_stats st;
	const struct mcexec_counters *t;
	char text[STATS_TEXT_BYTES_MAX];
	size_t n = 0;
	int w;
	struct sp_mc_seg seg;

	memset(&st, 0, sizeof(st));
	st.time_s = env->wall_s;
	st.threads = 1;
	st.totals = *r->c;
	if (env->stats != NULL)
		env->stats(env->ctx, &st);
	t = &st.totals;
	n = stat_line(text, n, "pid", st.pid);
	n = stat_line(text, n, "uptime", st.uptime_s);
	n = stat_line(text, n, "time", st.time_s);
	w = snprintf(text + n, sizeof(text) - n, "STAT version %s\r\n", env->version);
	VERIFY(w > 0 && n + (size_t)w < sizeof(text));
	n += (size_t)w;
	n = stat_line(text, n, "pointer_size", sizeof(void *) * 8);
	n = stat_line(text, n, "curr_connections", st.curr_connections);
	n = stat_line(text, n, "cmd_get", t->cmd_get);
	n = stat_line(text, n, "cmd_set", t->cmd_set);
	n = stat_line(text, n, "cmd_flush", t->cmd_flush);
	n = stat_line(text, n, "cmd_touch", t->cmd_touch);
	n = stat_line(text, n, "get_hits", t->get_hits);
	n = stat_line(text, n, "get_misses", t->get_misses);
	n = stat_line(text, n, "delete_misses", t->delete_misses);
	n = stat_line(text, n, "delete_hits", t->delete_hits);
	n = stat_line(text, n, "incr_misses", t->incr_misses);
	n = stat_line(text, n, "incr_hits", t->incr_hits);
	n = stat_line(text, n, "decr_misses", t->decr_misses);
	n = stat_line(text, n, "decr_hits", t->decr_hits);
	n = stat_line(text, n, "cas_misses", t->cas_misses);
	n = stat_line(text, n, "cas_hits", t->cas_hits);
	n = stat_line(text, n, "cas_badval", t->cas_badval);
	n = stat_line(text, n, "touch_hits", t->touch_hits);
	n = stat_line(text, n, "touch_misses", t->touch_misses);
	n = stat_line(text, n, "store_too_large", t->store_too_large);
	n = stat_line(text, n, "store_no_memory", t->store_no_memory);
	n = stat_line(text, n, "bytes_read", t->bytes_read);
	n = stat_line(text, n, "bytes_written", t->bytes_written);
	n = stat_line(text, n, "limit_maxbytes", st.limit_maxbytes);
	n = stat_line(text, n, "threads", st.threads);
	n = stat_line(text, n, "bytes", st.bytes);
	n = stat_line(text, n, "curr_items", st.curr_items);
	n = stat_line(text, n, "total_items", t->total_items);
	n = stat_line(text, n, "evictions", st.evictions);
	VERIFY(n + 5 < sizeof(text));
	memcpy(text + n, "END\r\n", 5);
	n += 5;
	seg = (struct sp_mc_seg){text, n};
	emit(r, &seg, 1);
	(void)cmd;
}

/* Runs one parsed command; says whether the loop goes on, flushes or stops. */
static enum step
exec_cmd(struct run *r, const struct sp_mc_cmd *cmd)
{
	const struct mcexec_env *env = r->env;
	char line[128];
	int n;

	switch (cmd->kind) {
	case SP_MC_GET:
	case SP_MC_GETS:
	case SP_MC_GAT:
	case SP_MC_GATS:
		return exec_get(r, cmd);
	case SP_MC_SET:
	case SP_MC_ADD:
	case SP_MC_REPLACE:
	case SP_MC_APPEND:
	case SP_MC_PREPEND:
	case SP_MC_CAS:
		exec_storage(r, cmd);
		return STEP_NEXT;
	case SP_MC_DELETE:
		exec_delete(r, cmd);
		return STEP_NEXT;
	case SP_MC_INCR:
	case SP_MC_DECR:
		exec_arith(r, cmd);
		return STEP_NEXT;
	case SP_MC_TOUCH:
		exec_touch(r, cmd);
		return STEP_NEXT;
	case SP_MC_FLUSH_ALL:
		exec_flush_all(r, cmd);
		return STEP_NEXT;
	case SP_MC_VERSION:
		n = snprintf(line, sizeof(line), "VERSION %s", env->version);
		VERIFY(n > 0 && (size_t)n < sizeof(line));
		emit_line(r, cmd, line, (size_t)n);
		return STEP_NEXT;
	case SP_MC_VERBOSITY:
		emit_reply(r, cmd, SP_MC_R_OK);
		return STEP_NEXT;
	case SP_MC_STATS:
		exec_stats(r, cmd);
		return STEP_NEXT;
	case SP_MC_STATS_RESET:
		if (env->stats_reset != NULL)
			env->stats_reset(env->ctx);
		else
			memset(r->c, 0, sizeof(*r->c));
		emit_reply(r, cmd, SP_MC_R_RESET);
		return STEP_NEXT;
	case SP_MC_QUIT:
		return STEP_STOP;
	case SP_MC_REPLY:
		if (cmd->cull)
			sp_mc_out_cull(r->out);
		if (cmd->close)
			return STEP_STOP;
		emit_reply(r, cmd, cmd->reply);
		return STEP_NEXT;
	case SP_MC_KIND_COUNT:
		break;
	}
	VERIFY(0 && "unknown command kind");
	return STEP_STOP;
}

uint32_t
mcexec_run(const struct mcexec_env *env, const uint8_t *payload, size_t len, struct sp_mc_out *out)
{
	struct run r = {.env = env, .c = env->counters, .out = out, .full = false};
	size_t off = 0;
	uint32_t ncmd = 0;

	VERIFY(env->now_s >= 1);
	VERIFY(env->copy_buf_len == 0 || env->copy_buf != NULL);
	ASSERT(env->partitions > 0);
	ASSERT((env->partitions & (env->partitions - 1)) == 0);
	r.c->datagrams++;
	r.c->bytes_read += len;
	while (off < len && !r.full) {
		struct sp_mc_cmd cmd;
		size_t used;
		enum step st;

		if (sp_mc_parse(payload + off, len - off, SP_MC_VALUE_MAX, &cmd, &used) != 0) {
			/* memcached waits for the rest, which over UDP never comes. */
			r.c->truncated++;
			break;
		}
		ASSERT(used > 0);
		off += used;
		ncmd++;
		r.c->commands++;
		st = exec_cmd(&r, &cmd);
		if (st == STEP_STOP)
			break;
		/* memcached writes its queue after a get, and after every reqs_per_event
		 * commands (21 the first time, since the first command skips the count). */
		if (st == STEP_FLUSH ||
		    (ncmd > SP_MC_REQS_PER_EVENT && (ncmd - 1) % SP_MC_REQS_PER_EVENT == 0))
			sp_mc_out_flush(out);
	}
	sp_mc_out_flush(out);
	ASSERT(off <= len);
	return ncmd;
}

uint32_t
mcexec_udp(const struct mcexec_env *env, const uint8_t *udp, size_t len, struct sp_mc_out *out)
{
	struct sp_mc_frame f;

	ASSERT(env != NULL);
	ASSERT(out != NULL);
	if (sp_mc_frame_decode(udp, len, &f) != 0 ||
	    !sp_mc_frame_acceptable(&f, len - SP_MC_FRAME_BYTES)) {
		env->counters->dropped_frame++;
		return 0;
	}
	sp_mc_out_init(out, out->buf, out->lens, out->cap, f.request_id);
	mcexec_run(env, udp + SP_MC_FRAME_BYTES, len - SP_MC_FRAME_BYTES, out);
	return out->n;
}

enum mcexec_route_kind
mcexec_route(const uint8_t *payload, size_t len, uint32_t partitions, uint32_t *partition)
{
	size_t off = 0;

	ASSERT(partition != NULL);
	ASSERT(partitions > 0);
	*partition = 0;
	/* The first command that names a key decides; keyless ones before it run anywhere. */
	for (uint32_t i = 0; i < MCEXEC_ROUTE_SCAN_MAX && off < len; i++) {
		struct sp_mc_cmd cmd;
		size_t used;

		if (sp_mc_parse(payload + off, len - off, SP_MC_VALUE_MAX, &cmd, &used) != 0)
			return MCEXEC_ROUTE_ANY;
		off += used;
		if (cmd.key == NULL || cmd.kind == SP_MC_REPLY)
			continue;
		if (sp_mc_kind_is_get(cmd.kind) && cmd.key_count > 1)
			return MCEXEC_ROUTE_MULTI;
		*partition = sp_key_partition(sp_key_hash(cmd.key, cmd.key_len), partitions);
		return MCEXEC_ROUTE_OWNER;
	}
	return MCEXEC_ROUTE_ANY;
}

int
mcexec_touch_local(const struct mcexec_env *env, const char *key, uint32_t key_len,
                   uint32_t expire_s)
{
	struct store_key sk;
	bool owned;
	struct store *s;

	VERIFY(env->now_s >= 1);
	if (key_len == 0 || key_len > SP_MC_KEY_MAX)
		return -EINVAL;
	sk.data = key;
	sk.len = key_len;
	sk.hash = sp_key_hash(key, key_len);
	s = env->part(env->ctx, sp_key_partition(sk.hash, env->partitions), &owned);
	VERIFY(s != NULL);
	if (!owned)
		return -EINVAL;
	return store_touch(s, &sk, expire_s, env->now_s) == 0 ? 0 : -SP_ENOTFOUND;
}

void
mcexec_counters_add(struct mcexec_counters *dst, const struct mcexec_counters *src)
{
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	SP_STATIC_ASSERT(sizeof(struct mcexec_counters) % sizeof(uint64_t) == 0,
	                 "counters are all uint64_t");
	ASSERT(dst != NULL);
	ASSERT(src != NULL);
	for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
		d[i] += s[i];
}
