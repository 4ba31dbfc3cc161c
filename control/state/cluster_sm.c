/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_sm.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/verify.h"

#define SNAP_MAGIC   0x4d53504cu /* "LPSM" */
#define SNAP_VERSION 1u

/* A bounds-checked little-endian writer and reader. A failed write or read sets err and
 * makes every later call a no-op, so callers check once at the end. */
struct wcur {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err;
};

struct rcur {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;
};

static void
w_bytes(struct wcur *w, const void *src, size_t n)
{
	if (w->err || n > w->cap - w->len) {
		w->err = -SP_ETOOBIG;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void
w_u8(struct wcur *w, uint8_t v)
{
	w_bytes(w, &v, 1);
}

static void
w_u16(struct wcur *w, uint16_t v)
{
	w_bytes(w, &v, 2);
}

static void
w_u32(struct wcur *w, uint32_t v)
{
	w_bytes(w, &v, 4);
}

static void
w_u64(struct wcur *w, uint64_t v)
{
	w_bytes(w, &v, 8);
}

/* A string as u16 length + bytes (no NUL). */
static void
w_str(struct wcur *w, const char *s, size_t n)
{
	w_u16(w, (uint16_t)n);
	w_bytes(w, s, n);
}

static const uint8_t *
r_bytes(struct rcur *r, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -SP_ETRUNCATED;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t
r_uint(struct rcur *r, size_t n)
{
	uint64_t v = 0;
	const uint8_t *p = r_bytes(r, n);
	if (p)
		memcpy(&v, p, n);
	return v;
}

/* Reads a string into dst (cap bytes with its NUL); longer or with NULs is malformed. */
static void
r_str(struct rcur *r, char *dst, size_t cap)
{
	size_t n = (size_t)r_uint(r, 2);
	const uint8_t *p = r_bytes(r, n);
	if (r->err)
		return;
	if (n >= cap || memchr(p, '\0', n)) {
		r->err = -SP_EMALFORMED;
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

static void
w_member(struct wcur *w, const struct cluster_member *m, bool with_dp)
{
	w_u64(w, m->id);
	w_str(w, m->name, strlen(m->name));
	w_str(w, m->peer_addr, strlen(m->peer_addr));
	w_str(w, m->client_addr, strlen(m->client_addr));
	if (!with_dp)
		return;
	w_u8(w, (uint8_t)((m->voter ? 1 : 0) | (m->dp_known ? 2 : 0) | (m->down ? 4 : 0)));
	w_u32(w, m->ipv4_be);
	w_bytes(w, m->mac, 6);
	w_u16(w, m->binary_port);
	w_u16(w, m->memcached_port);
	w_u16(w, m->workers);
}

static void
r_member(struct rcur *r, struct cluster_member *m, bool with_dp)
{
	memset(m, 0, sizeof(*m));
	m->id = r_uint(r, 8);
	r_str(r, m->name, sizeof(m->name));
	r_str(r, m->peer_addr, sizeof(m->peer_addr));
	r_str(r, m->client_addr, sizeof(m->client_addr));
	if (!with_dp)
		return;
	uint8_t flags = (uint8_t)r_uint(r, 1);
	m->voter = flags & 1;
	m->dp_known = flags & 2;
	m->down = flags & 4;
	m->ipv4_be = (uint32_t)r_uint(r, 4);
	const uint8_t *mac = r_bytes(r, 6);
	if (mac)
		memcpy(m->mac, mac, 6);
	m->binary_port = (uint16_t)r_uint(r, 2);
	m->memcached_port = (uint16_t)r_uint(r, 2);
	m->workers = (uint16_t)r_uint(r, 2);
	if (!r->err && (flags & ~7u))
		r->err = -SP_EMALFORMED;
}

static bool
member_id_ok(uint64_t id)
{
	return id != 0 && id <= UINT32_MAX;
}

static bool
config_key_ok(const char *k, uint32_t n)
{
	if (n == 0 || n > CLUSTER_CONFIG_KEY_MAX)
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (k[i] <= ' ' || k[i] > '~' || k[i] == '=')
			return false;
	return true;
}

struct cluster_sm *
cluster_sm_new(void)
{
	struct cluster_sm *sm = calloc(1, sizeof(*sm));
	if (sm == NULL)
		return NULL;
	sm->map = calloc(SP_PARTITIONS_MAX, sizeof(sm->map[0]));
	sm->cmd_map = calloc(SP_PARTITIONS_MAX, sizeof(sm->cmd_map[0]));
	if (sm->map == NULL || sm->cmd_map == NULL) {
		free(sm->map);
		free(sm->cmd_map);
		free(sm);
		return NULL;
	}
	ASSERT(cluster_sm_check_invariants(sm));
	return sm;
}

static void
config_clear(struct cluster_sm *sm)
{
	for (uint32_t i = 0; i < sm->n_config; i++)
		free(sm->config[i]);
	free(sm->config);
	sm->config = NULL;
	sm->n_config = sm->config_cap = 0;
	sm->config_bytes = 0;
}

/* A new item holding key and value. Returns NULL on ENOMEM. */
static struct cluster_config_item *
config_item_new(const char *key, uint32_t key_len, const void *value, uint32_t value_len)
{
	struct cluster_config_item *it = malloc(sizeof(*it) + key_len + 1u + value_len + 1u);
	if (it == NULL)
		return NULL;
	it->key_len = key_len;
	it->value_len = value_len;
	memcpy(it->key, key, key_len);
	it->key[key_len] = '\0';
	it->value = it->key + key_len + 1;
	memcpy(it->value, value, value_len);
	it->value[value_len] = '\0';
	return it;
}

/* Room for one more item pointer. Returns 0 or -ENOMEM. */
static int
config_reserve(struct cluster_sm *sm)
{
	if (sm->n_config < sm->config_cap)
		return 0;
	uint32_t cap = sm->config_cap ? sm->config_cap * 2 : 64;
	struct cluster_config_item **a = realloc(sm->config, (size_t)cap * sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	sm->config = a;
	sm->config_cap = cap;
	return 0;
}

void
cluster_sm_free(struct cluster_sm *sm)
{
	if (sm == NULL)
		return;
	config_clear(sm);
	free(sm->map);
	free(sm->cmd_map);
	free(sm);
}

int
cluster_cmd_encode(const struct cluster_cmd *cmd, uint8_t *buf, size_t cap)
{
	struct wcur w = {.p = buf, .cap = cap};

	w_u8(&w, (uint8_t)cmd->type);
	switch (cmd->type) {
	case CLUSTER_CMD_INIT:
		w_u32(&w, cmd->partitions);
		break;
	case CLUSTER_CMD_MEMBER_UPSERT:
		w_member(&w, &cmd->member, false);
		break;
	case CLUSTER_CMD_MEMBER_DP:
		w_member(&w, &cmd->member, true);
		break;
	case CLUSTER_CMD_MEMBER_REMOVE:
		w_u64(&w, cmd->member.id);
		break;
	case CLUSTER_CMD_MEMBER_ROLE:
		w_u64(&w, cmd->member.id);
		w_u8(&w, cmd->member.voter ? 1 : 0);
		break;
	case CLUSTER_CMD_MEMBER_HEALTH:
		w_u64(&w, cmd->member.id);
		w_u8(&w, cmd->member.down ? 1 : 0);
		break;
	case CLUSTER_CMD_MAP_SET:
		if (cmd->partitions > SP_PARTITIONS_MAX)
			return -EINVAL;
		w_u64(&w, cmd->epoch);
		w_u32(&w, cmd->partitions);
		w_bytes(&w, cmd->map, (size_t)cmd->partitions * sizeof(cmd->map[0]));
		break;
	case CLUSTER_CMD_CONFIG_SET:
	case CLUSTER_CMD_CONFIG_DEL:
		if (cmd->key_len > CLUSTER_CONFIG_KEY_MAX ||
		    cmd->value_len > CLUSTER_CONFIG_VALUE_MAX)
			return -EINVAL;
		w_u16(&w, (uint16_t)cmd->key_len);
		w_bytes(&w, cmd->key, cmd->key_len);
		if (cmd->type == CLUSTER_CMD_CONFIG_SET) {
			w_u32(&w, cmd->value_len);
			w_bytes(&w, cmd->value, cmd->value_len);
		}
		break;
	default:
		return -EINVAL;
	}
	return w.err ? w.err : (int)w.len;
}

int
cluster_cmd_decode(const uint8_t *buf, size_t len, struct cluster_cmd *cmd,
                   struct sp_map_entry *map_buf)
{
	struct rcur r = {.p = buf, .len = len};

	memset(cmd, 0, sizeof(*cmd));
	cmd->type = (uint32_t)r_uint(&r, 1);
	if (r.err)
		return r.err;
	switch (cmd->type) {
	case CLUSTER_CMD_INIT:
		cmd->partitions = (uint32_t)r_uint(&r, 4);
		break;
	case CLUSTER_CMD_MEMBER_UPSERT:
		r_member(&r, &cmd->member, false);
		break;
	case CLUSTER_CMD_MEMBER_DP:
		r_member(&r, &cmd->member, true);
		break;
	case CLUSTER_CMD_MEMBER_REMOVE:
		cmd->member.id = r_uint(&r, 8);
		break;
	case CLUSTER_CMD_MEMBER_ROLE: {
		cmd->member.id = r_uint(&r, 8);
		uint8_t v = (uint8_t)r_uint(&r, 1);
		if (!r.err && v > 1)
			return -SP_EMALFORMED;
		cmd->member.voter = v;
		break;
	}
	case CLUSTER_CMD_MEMBER_HEALTH: {
		cmd->member.id = r_uint(&r, 8);
		uint8_t v = (uint8_t)r_uint(&r, 1);
		if (!r.err && v > 1)
			return -SP_EMALFORMED;
		cmd->member.down = v;
		break;
	}
	case CLUSTER_CMD_MAP_SET: {
		cmd->epoch = r_uint(&r, 8);
		cmd->partitions = (uint32_t)r_uint(&r, 4);
		if (r.err)
			break;
		if (cmd->partitions > SP_PARTITIONS_MAX)
			return -SP_EMALFORMED;
		const uint8_t *m = r_bytes(&r, (size_t)cmd->partitions * sizeof(map_buf[0]));
		if (m) {
			memcpy(map_buf, m, (size_t)cmd->partitions * sizeof(map_buf[0]));
			cmd->map = map_buf;
		}
		break;
	}
	case CLUSTER_CMD_CONFIG_SET:
	case CLUSTER_CMD_CONFIG_DEL:
		cmd->key_len = (uint32_t)r_uint(&r, 2);
		cmd->key = (const char *)r_bytes(&r, cmd->key_len);
		if (cmd->type == CLUSTER_CMD_CONFIG_SET) {
			cmd->value_len = (uint32_t)r_uint(&r, 4);
			if (!r.err && cmd->value_len > CLUSTER_CONFIG_VALUE_MAX)
				return -SP_EMALFORMED;
			cmd->value = (const char *)r_bytes(&r, cmd->value_len);
		}
		break;
	default:
		return -SP_EMALFORMED;
	}
	if (r.err)
		return r.err;
	return r.off == len ? 0 : -SP_EMALFORMED;
}

static struct cluster_member *
find_member(struct cluster_sm *sm, uint64_t id)
{
	for (uint32_t i = 0; i < sm->n_members; i++)
		if (sm->members[i].id == id)
			return &sm->members[i];
	return NULL;
}

const struct cluster_member *
cluster_sm_member(const struct cluster_sm *sm, uint64_t id)
{
	return find_member((struct cluster_sm *)sm, id);
}

/* Binary search; returns the index of key or where it would go (and *found). */
static uint32_t
config_find(const struct cluster_sm *sm, const char *key, uint32_t n, bool *found)
{
	uint32_t lo = 0, hi = sm->n_config;
	*found = false;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const char *k = sm->config[mid]->key;
		size_t kl = sm->config[mid]->key_len;
		int c = memcmp(k, key, SP_MIN(kl, n));
		if (c == 0)
			c = kl < n ? -1 : kl > n;
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct cluster_config_item *
cluster_sm_config_get(const struct cluster_sm *sm, const char *key)
{
	bool found;
	uint32_t i = config_find(sm, key, (uint32_t)strlen(key), &found);
	return found ? sm->config[i] : NULL;
}

static int
apply_map(struct cluster_sm *sm, const struct cluster_cmd *cmd)
{
	if (sm->partitions == 0 || cmd->partitions != sm->partitions)
		return -SP_EMALFORMED;
	if (cmd->epoch <= sm->epoch)
		return -SP_EVERSION;
	for (uint32_t p = 0; p < cmd->partitions; p++) {
		const struct cluster_member *m = find_member(sm, cmd->map[p].node_id);
		if (m == NULL || !m->dp_known || cmd->map[p].worker >= m->workers ||
		    (cmd->map[p].flags & ~SP_MAP_F_ALL) != 0)
			return -SP_EMALFORMED;
	}
	memcpy(sm->map, cmd->map, (size_t)cmd->partitions * sizeof(sm->map[0]));
	sm->epoch = cmd->epoch;
	return 0;
}

static int
apply_config(struct cluster_sm *sm, const struct cluster_cmd *cmd)
{
	bool found;

	if (!config_key_ok(cmd->key, cmd->key_len))
		return -SP_EMALFORMED;
	uint32_t i = config_find(sm, cmd->key, cmd->key_len, &found);
	if (cmd->type == CLUSTER_CMD_CONFIG_DEL) {
		if (!found)
			return -SP_ENOTFOUND;
		struct cluster_config_item *old = sm->config[i];
		sm->config_bytes -= cluster_config_item_bytes(old->key_len, old->value_len);
		free(old);
		memmove(&sm->config[i], &sm->config[i + 1],
		        (sm->n_config - i - 1) * sizeof(sm->config[0]));
		sm->n_config--;
		return 0;
	}
	uint64_t bytes = sm->config_bytes + cluster_config_item_bytes(cmd->key_len, cmd->value_len);
	if (found)
		bytes -=
		        cluster_config_item_bytes(sm->config[i]->key_len, sm->config[i]->value_len);
	if ((!found && sm->n_config == CLUSTER_CONFIG_KEYS_MAX) || bytes > CLUSTER_CONFIG_BYTES_MAX)
		return -SP_EFULL;
	if (!found && config_reserve(sm))
		return -ENOMEM;
	struct cluster_config_item *it =
	        config_item_new(cmd->key, cmd->key_len, cmd->value, cmd->value_len);
	if (it == NULL)
		return -ENOMEM;
	if (found) {
		free(sm->config[i]);
	} else {
		memmove(&sm->config[i + 1], &sm->config[i],
		        (sm->n_config - i) * sizeof(sm->config[0]));
		sm->n_config++;
	}
	sm->config[i] = it;
	sm->config_bytes = bytes;
	return 0;
}

static int
apply_cmd(struct cluster_sm *sm, const struct cluster_cmd *cmd)
{
	struct cluster_member *m;

	switch (cmd->type) {
	case CLUSTER_CMD_INIT:
		if (sm->partitions != 0)
			return -SP_EEXISTS;
		if (!sp_is_power_of_two(cmd->partitions) || cmd->partitions > SP_PARTITIONS_MAX)
			return -SP_EMALFORMED;
		sm->partitions = cmd->partitions;
		return 0;
	case CLUSTER_CMD_MEMBER_UPSERT:
		if (!member_id_ok(cmd->member.id) || cmd->member.name[0] == '\0')
			return -SP_EMALFORMED;
		for (uint32_t i = 0; i < sm->n_members; i++)
			if (sm->members[i].id != cmd->member.id &&
			    strcmp(sm->members[i].name, cmd->member.name) == 0)
				return -SP_EEXISTS;
		m = find_member(sm, cmd->member.id);
		if (m == NULL) {
			if (sm->n_members == SP_MEMBERS_MAX)
				return -SP_EFULL;
			m = &sm->members[sm->n_members++];
			memset(m, 0, sizeof(*m));
			m->id = cmd->member.id;
		}
		memcpy(m->name, cmd->member.name, sizeof(m->name));
		memcpy(m->peer_addr, cmd->member.peer_addr, sizeof(m->peer_addr));
		memcpy(m->client_addr, cmd->member.client_addr, sizeof(m->client_addr));
		return 0;
	case CLUSTER_CMD_MEMBER_DP:
		m = find_member(sm, cmd->member.id);
		if (m == NULL)
			return -SP_ENOTFOUND;
		if (cmd->member.workers == 0 || cmd->member.workers > SP_WORKERS_MAX)
			return -SP_EMALFORMED;
		m->dp_known = true;
		m->ipv4_be = cmd->member.ipv4_be;
		memcpy(m->mac, cmd->member.mac, 6);
		m->binary_port = cmd->member.binary_port;
		m->memcached_port = cmd->member.memcached_port;
		m->workers = cmd->member.workers;
		return 0;
	case CLUSTER_CMD_MEMBER_REMOVE:
		m = find_member(sm, cmd->member.id);
		if (m == NULL)
			return -SP_ENOTFOUND;
		*m = sm->members[--sm->n_members];
		return 0;
	case CLUSTER_CMD_MEMBER_ROLE:
		m = find_member(sm, cmd->member.id);
		if (m == NULL)
			return -SP_ENOTFOUND;
		m->voter = cmd->member.voter;
		return 0;
	case CLUSTER_CMD_MEMBER_HEALTH:
		m = find_member(sm, cmd->member.id);
		if (m == NULL)
			return -SP_ENOTFOUND;
		if (m->down == cmd->member.down)
			return -SP_EEXISTS; /* a stale duty proposal: nothing changes */
		m->down = cmd->member.down;
		return 0;
	case CLUSTER_CMD_MAP_SET:
		return apply_map(sm, cmd);
	case CLUSTER_CMD_CONFIG_SET:
	case CLUSTER_CMD_CONFIG_DEL:
		return apply_config(sm, cmd);
	default:
		return -SP_EMALFORMED;
	}
}

int
cluster_sm_apply(struct cluster_sm *sm, const uint8_t *buf, size_t len, struct cluster_cmd *applied)
{
	struct cluster_cmd cmd;

	ASSERT(sm != NULL);
	ASSERT(buf != NULL || len == 0);
	int err = cluster_cmd_decode(buf, len, &cmd, sm->cmd_map);
	bool decoded = err == 0;
	if (decoded)
		err = apply_cmd(sm, &cmd);
	if (err)
		sm->refused_cmds++;
	else
		sm->applied_cmds++;
	if (applied != NULL) {
		/* A command that did not decode is reported as type 0: nothing to act on. */
		if (!decoded)
			memset(&cmd, 0, sizeof(cmd));
		*applied = cmd;
	}
	/* Accepted or refused, the state holds every invariant: a refusal leaves it untouched,
	 * an apply moves it from one valid state to the next. */
	ASSERT(cluster_sm_check_invariants(sm));
	return err;
}

int
cluster_sm_snapshot(const struct cluster_sm *sm, uint8_t **out, size_t *len)
{
	size_t cap = 64 + (size_t)sm->n_members * 256 + (size_t)sm->partitions * sizeof(sm->map[0]);
	for (uint32_t i = 0; i < sm->n_config; i++)
		cap += 8 + sm->config[i]->key_len + sm->config[i]->value_len;
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	struct wcur w = {.p = buf, .cap = cap};
	w_u32(&w, SNAP_MAGIC);
	w_u32(&w, SNAP_VERSION);
	w_u32(&w, 0); /* CRC, filled below */
	w_u32(&w, sm->partitions);
	w_u64(&w, sm->epoch);
	w_u64(&w, sm->applied_cmds);
	w_u64(&w, sm->refused_cmds);
	w_u32(&w, sm->n_members);
	for (uint32_t i = 0; i < sm->n_members; i++)
		w_member(&w, &sm->members[i], true);
	w_bytes(&w, sm->map, (size_t)sm->partitions * sizeof(sm->map[0]));
	w_u32(&w, sm->n_config);
	for (uint32_t i = 0; i < sm->n_config; i++) {
		const struct cluster_config_item *it = sm->config[i];
		w_str(&w, it->key, it->key_len);
		w_u32(&w, it->value_len);
		w_bytes(&w, it->value, it->value_len);
	}
	VERIFY(w.err == 0); /* cap was computed from the same fields */
	uint32_t crc = sp_crc32c(0, buf + 12, w.len - 12);
	memcpy(buf + 8, &crc, 4);
	*out = buf;
	*len = w.len;
	return 0;
}

int
cluster_sm_restore(struct cluster_sm *sm, const uint8_t *buf, size_t len)
{
	struct rcur r = {.p = buf, .len = len};
	struct cluster_sm *tmp = cluster_sm_new();
	int err = -SP_ECORRUPT;

	if (tmp == NULL)
		return -ENOMEM;
	uint32_t magic = (uint32_t)r_uint(&r, 4);
	uint32_t version = (uint32_t)r_uint(&r, 4);
	uint32_t crc = (uint32_t)r_uint(&r, 4);
	if (r.err || magic != SNAP_MAGIC)
		goto out;
	if (version != SNAP_VERSION) {
		err = -SP_EVERSION;
		goto out;
	}
	if (crc != sp_crc32c(0, buf + 12, len - 12))
		goto out;
	tmp->partitions = (uint32_t)r_uint(&r, 4);
	tmp->epoch = r_uint(&r, 8);
	tmp->applied_cmds = r_uint(&r, 8);
	tmp->refused_cmds = r_uint(&r, 8);
	tmp->n_members = (uint32_t)r_uint(&r, 4);
	if (r.err || tmp->n_members > SP_MEMBERS_MAX || tmp->partitions > SP_PARTITIONS_MAX ||
	    (tmp->partitions && !sp_is_power_of_two(tmp->partitions)))
		goto out;
	for (uint32_t i = 0; i < tmp->n_members; i++) {
		r_member(&r, &tmp->members[i], true);
		if (!r.err && !member_id_ok(tmp->members[i].id))
			goto out;
	}
	const uint8_t *m = r_bytes(&r, (size_t)tmp->partitions * sizeof(tmp->map[0]));
	if (m)
		memcpy(tmp->map, m, (size_t)tmp->partitions * sizeof(tmp->map[0]));
	uint32_t n_config = (uint32_t)r_uint(&r, 4);
	if (r.err || n_config > CLUSTER_CONFIG_KEYS_MAX)
		goto out;
	for (uint32_t i = 0; i < n_config && !r.err; i++) {
		char key[CLUSTER_CONFIG_KEY_MAX + 1];
		r_str(&r, key, sizeof(key));
		uint32_t key_len = (uint32_t)strlen(key);
		uint32_t value_len = (uint32_t)r_uint(&r, 4);
		if (r.err || value_len > CLUSTER_CONFIG_VALUE_MAX || !config_key_ok(key, key_len) ||
		    (i > 0 && strcmp(tmp->config[i - 1]->key, key) >= 0))
			goto out;
		const uint8_t *v = r_bytes(&r, value_len);
		if (v == NULL)
			goto out;
		tmp->config_bytes += cluster_config_item_bytes(key_len, value_len);
		if (tmp->config_bytes > CLUSTER_CONFIG_BYTES_MAX)
			goto out;
		struct cluster_config_item *it = config_item_new(key, key_len, v, value_len);
		if (it == NULL || config_reserve(tmp)) {
			free(it);
			err = -ENOMEM;
			goto out;
		}
		tmp->config[tmp->n_config++] = it;
	}
	if (r.err || r.off != len)
		goto out;
	/* A map may name a member removed since (the leader moves its partitions once its
	 * lease is void), so only the entries' own fields are checked here. */
	for (uint32_t p = 0; p < tmp->partitions; p++)
		if (tmp->map[p].flags & ~SP_MAP_F_ALL)
			goto out;
	/* Swap contents: sm gets tmp's, tmp (freed below) gets sm's old ones. */
	struct cluster_sm swap = *sm;
	*sm = *tmp;
	*tmp = swap;
	ASSERT(cluster_sm_check_invariants(sm));
	ASSERT(cluster_sm_check_config(sm)); /* a restore is rare: the full walk is affordable */
	err = 0;
out:
	cluster_sm_free(tmp);
	return err;
}

bool
cluster_sm_map_valid(const struct cluster_sm *sm)
{
	for (uint32_t p = 0; p < sm->partitions; p++) {
		const struct cluster_member *m = cluster_sm_member(sm, sm->map[p].node_id);
		if (m == NULL || !m->dp_known || sm->map[p].worker >= m->workers)
			return false;
	}
	return true;
}

int
cluster_sm_to_region_state(const struct cluster_sm *sm, uint64_t self, struct sp_cluster_state *st)
{
	if (sm->partitions == 0 || sm->epoch == 0)
		return -SP_ENOTFOUND;
	if (st->map_capacity < sm->partitions)
		return -SP_ETOOBIG;
	st->epoch = sm->epoch;
	st->partitions = sm->partitions;
	st->self_node_id = (uint32_t)self;
	st->member_count = 0;
	memset(st->members, 0, sizeof(st->members));
	for (uint32_t i = 0; i < sm->n_members; i++) {
		const struct cluster_member *m = &sm->members[i];
		if (!m->dp_known)
			continue;
		struct sp_member *d = &st->members[st->member_count++];
		d->node_id = (uint32_t)m->id;
		d->ipv4_be = m->ipv4_be;
		memcpy(d->mac, m->mac, 6);
		d->binary_port = m->binary_port;
		d->memcached_port = m->memcached_port;
		d->worker_count = m->workers;
		d->state = m->down    ? SP_MEMBER_DOWN
		           : m->voter ? SP_MEMBER_ACTIVE
		                      : SP_MEMBER_LEARNER;
		memcpy(d->name, m->name, sizeof(d->name));
	}
	memcpy(st->map, sm->map, (size_t)sm->partitions * sizeof(sm->map[0]));
	/* A partition whose owner left (or has no dataplane) is served by nobody until the
	 * leader moves it: the region names this node for it, fenced. */
	for (uint32_t p = 0; p < sm->partitions; p++) {
		const struct cluster_member *m = cluster_sm_member(sm, st->map[p].node_id);
		if (m == NULL || !m->dp_known || st->map[p].worker >= m->workers)
			st->map[p] = (struct sp_map_entry){
			        .node_id = (uint32_t)self, .worker = 0, .flags = SP_MAP_F_FENCED};
	}
	return 0;
}

bool
cluster_sm_check_invariants(const struct cluster_sm *sm)
{
	if (sm->n_members > SP_MEMBERS_MAX)
		return false;
	if (sm->partitions != 0 && !sp_is_power_of_two(sm->partitions))
		return false;
	if (sm->partitions == 0 && sm->epoch != 0)
		return false;
	for (uint32_t i = 0; i < sm->n_members; i++) {
		const struct cluster_member *m = &sm->members[i];
		if (!member_id_ok(m->id) || m->name[0] == '\0')
			return false;
		if (m->dp_known && (m->workers == 0 || m->workers > SP_WORKERS_MAX))
			return false;
		for (uint32_t j = i + 1; j < sm->n_members; j++)
			if (sm->members[j].id == m->id || strcmp(sm->members[j].name, m->name) == 0)
				return false;
	}
	/* The map (once there is one): every entry names a node (a member when it was set;
	 * possibly removed since) and a worker a node can have. */
	for (uint32_t p = 0; p < sm->partitions && sm->epoch != 0; p++) {
		if (sm->map[p].flags & ~SP_MAP_F_ALL)
			return false;
		if (sm->map[p].node_id == 0 || sm->map[p].worker >= SP_WORKERS_MAX)
			return false;
	}
	/* The configuration's counts (cluster_sm_check_config walks the items). */
	if (sm->n_config > sm->config_cap || sm->n_config > CLUSTER_CONFIG_KEYS_MAX)
		return false;
	if (sm->config_bytes > CLUSTER_CONFIG_BYTES_MAX ||
	    (sm->n_config == 0) != (sm->config_bytes == 0))
		return false;
	return sm->config_cap == 0 || sm->config != NULL;
}

bool
cluster_sm_check_config(const struct cluster_sm *sm)
{
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < sm->n_config; i++) {
		const struct cluster_config_item *it = sm->config[i];
		if (it == NULL || !config_key_ok(it->key, it->key_len) ||
		    it->value_len > CLUSTER_CONFIG_VALUE_MAX || it->key[it->key_len] != '\0' ||
		    it->value[it->value_len] != '\0')
			return false;
		if (i > 0 && strcmp(sm->config[i - 1]->key, it->key) >= 0)
			return false; /* sorted, each key once */
		bytes += cluster_config_item_bytes(it->key_len, it->value_len);
	}
	return bytes == sm->config_bytes;
}
