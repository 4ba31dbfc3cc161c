/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Raft message codec, conf change payloads and membership helpers.
 *
 * Wire layout of a message (all integers little-endian):
 *   u8 version (1), u8 type, u8 flags (bit 0: reject), u8 reserved (0), u32 n_entries,
 *   u64 from, to, term, log_term, index, commit, ctx, reject_hint_index, reject_hint_term,
 *   n_entries x { u64 term, u64 index, u32 type, u32 len, len bytes },
 *   RAFT_MSG_SNAPSHOT only: u64 index, u64 term, u32 n_voters, u32 n_learners,
 *       (n_voters + n_learners) x u64 id, u64 len, len bytes,
 *   u32 CRC32C of everything before it.
 */
#include <errno.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/errors.h"
#include "common/verify.h"
#include "control/raft/raft.h"

#define MSG_VERSION       1
#define MSG_HEADER_BYTES  (4 + 4 + 9 * 8)
#define MSG_ENTRY_BYTES   (8 + 8 + 4 + 4)
#define MSG_SNAP_FIXED    (8 + 8 + 4 + 4 + 8)
#define MSG_TRAILER_BYTES 4
#define MSG_FLAG_REJECT   0x01u

SP_STATIC_ASSERT(RAFT_CONF_CHANGE_BYTES == 4 + 8, "conf change payload is u32 op + u64 id");

/* Cursor over an output buffer whose size was checked up front. */
struct wbuf {
	uint8_t *p;
	size_t off;
};

/* Cursor over an input buffer; every read checks the remaining length. */
struct rbuf {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static void
put_u8(struct wbuf *w, uint8_t v)
{
	w->p[w->off++] = v;
}

static void
put_u32(struct wbuf *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(struct wbuf *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

static void
put_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (n > 0)
		memcpy(w->p + w->off, src, n);
	w->off += n;
}

static int
get_u8(struct rbuf *r, uint8_t *v)
{
	if (r->len - r->off < 1)
		return -SP_ETRUNCATED;
	*v = r->p[r->off++];
	return 0;
}

static int
get_u32(struct rbuf *r, uint32_t *v)
{
	uint32_t x = 0;

	if (r->len - r->off < 4)
		return -SP_ETRUNCATED;
	for (int i = 0; i < 4; i++)
		x |= (uint32_t)r->p[r->off + (size_t)i] << (8 * i);
	r->off += 4;
	*v = x;
	return 0;
}

static int
get_u64(struct rbuf *r, uint64_t *v)
{
	uint64_t x = 0;

	if (r->len - r->off < 8)
		return -SP_ETRUNCATED;
	for (int i = 0; i < 8; i++)
		x |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
	r->off += 8;
	*v = x;
	return 0;
}

/* Returns a pointer to the next n bytes and skips them, or NULL when fewer remain. */
static const uint8_t *
get_span(struct rbuf *r, uint64_t n)
{
	const uint8_t *p;

	if ((uint64_t)(r->len - r->off) < n)
		return NULL;
	p = r->p + r->off;
	r->off += (size_t)n;
	return p;
}

static bool
msg_type_valid(uint32_t type)
{
	return type >= RAFT_MSG_PRE_VOTE && type < RAFT_MSG_TYPE_END;
}

static bool
msg_type_has_entries(uint32_t type)
{
	return type == RAFT_MSG_APPEND || type == RAFT_MSG_PROPOSE;
}

/* Checks a membership's shape: counts within bounds, ids non-zero and unique. */
static bool
membership_valid(const struct raft_membership *m)
{
	uint64_t ids[2 * RAFT_NODES_MAX];
	uint32_t n = 0;

	if (m->n_voters > RAFT_NODES_MAX || m->n_learners > RAFT_NODES_MAX)
		return false;
	if (m->n_voters + m->n_learners > RAFT_NODES_MAX)
		return false;
	for (uint32_t i = 0; i < m->n_voters; i++)
		ids[n++] = m->voters[i];
	for (uint32_t i = 0; i < m->n_learners; i++)
		ids[n++] = m->learners[i];
	for (uint32_t i = 0; i < n; i++) {
		if (ids[i] == 0)
			return false;
		for (uint32_t j = i + 1; j < n; j++)
			if (ids[i] == ids[j])
				return false;
	}
	return true;
}

/* Validates msg against the codec's bounds; the encoder refuses what the decoder would. */
static int
msg_check_bounds(const struct raft_msg *msg)
{
	if (!msg_type_valid(msg->type))
		return -EINVAL;
	if (msg->n_entries > RAFT_MSG_ENTRIES_MAX)
		return -EINVAL;
	if (msg->n_entries > 0 && !msg_type_has_entries(msg->type))
		return -EINVAL;
	if (msg->n_entries > 0 && msg->entries == NULL)
		return -EINVAL;
	for (uint32_t i = 0; i < msg->n_entries; i++) {
		const struct raft_entry *e = &msg->entries[i];

		if (e->type >= RAFT_ENTRY_TYPE_COUNT || e->len > RAFT_ENTRY_BYTES_MAX)
			return -EINVAL;
		if (e->len > 0 && e->data == NULL)
			return -EINVAL;
	}
	if (msg->type == RAFT_MSG_SNAPSHOT) {
		if (!membership_valid(&msg->snapshot.meta.membership))
			return -EINVAL;
		if (msg->snapshot.len > RAFT_SNAPSHOT_BYTES_MAX)
			return -EINVAL;
		if (msg->snapshot.len > 0 && msg->snapshot.data == NULL)
			return -EINVAL;
	}
	return 0;
}

/* The exact encoded size; assumes msg passed msg_check_bounds (sizes fit in size_t). */
size_t
raft_msg_encoded_size(const struct raft_msg *msg)
{
	size_t n = MSG_HEADER_BYTES + MSG_TRAILER_BYTES;

	ASSERT(msg != NULL);
	if (msg_type_has_entries(msg->type) && msg->entries != NULL) {
		for (uint32_t i = 0; i < msg->n_entries; i++)
			n += MSG_ENTRY_BYTES + msg->entries[i].len;
	}
	if (msg->type == RAFT_MSG_SNAPSHOT) {
		const struct raft_membership *m = &msg->snapshot.meta.membership;

		n += MSG_SNAP_FIXED + msg->snapshot.len;
		n += 8 * (size_t)SP_MIN(m->n_voters + m->n_learners, 2u * RAFT_NODES_MAX);
	}
	return n;
}

/*
 * Encodes msg into buf. Returns the byte count, -EINVAL when msg breaks a bound, -SP_EFULL
 * when cap is too small. Writes nothing on error.
 */
int
raft_msg_encode(const struct raft_msg *msg, void *buf, size_t cap)
{
	struct wbuf w = {.p = buf, .off = 0};
	size_t need;
	int rc;

	ASSERT(msg != NULL);
	ASSERT(buf != NULL || cap == 0);
	rc = msg_check_bounds(msg);
	if (rc < 0)
		return rc;
	need = raft_msg_encoded_size(msg);
	if (need > cap || need > (size_t)INT32_MAX)
		return -SP_EFULL;
	put_u8(&w, MSG_VERSION);
	put_u8(&w, (uint8_t)msg->type);
	put_u8(&w, msg->reject ? MSG_FLAG_REJECT : 0);
	put_u8(&w, 0);
	put_u32(&w, msg->n_entries);
	put_u64(&w, msg->from);
	put_u64(&w, msg->to);
	put_u64(&w, msg->term);
	put_u64(&w, msg->log_term);
	put_u64(&w, msg->index);
	put_u64(&w, msg->commit);
	put_u64(&w, msg->ctx);
	put_u64(&w, msg->reject_hint_index);
	put_u64(&w, msg->reject_hint_term);
	for (uint32_t i = 0; i < msg->n_entries; i++) {
		const struct raft_entry *e = &msg->entries[i];

		put_u64(&w, e->term);
		put_u64(&w, e->index);
		put_u32(&w, e->type);
		put_u32(&w, e->len);
		put_bytes(&w, e->data, e->len);
	}
	if (msg->type == RAFT_MSG_SNAPSHOT) {
		const struct raft_snapshot *s = &msg->snapshot;

		put_u64(&w, s->meta.index);
		put_u64(&w, s->meta.term);
		put_u32(&w, s->meta.membership.n_voters);
		put_u32(&w, s->meta.membership.n_learners);
		for (uint32_t i = 0; i < s->meta.membership.n_voters; i++)
			put_u64(&w, s->meta.membership.voters[i]);
		for (uint32_t i = 0; i < s->meta.membership.n_learners; i++)
			put_u64(&w, s->meta.membership.learners[i]);
		put_u64(&w, s->len);
		put_bytes(&w, s->data, s->len);
	}
	put_u32(&w, sp_crc32c(0, buf, w.off));
	VERIFY(w.off == need);
	return (int)w.off;
}

/* Parses the fixed header into msg. */
static int
decode_header(struct rbuf *r, struct raft_msg *msg)
{
	uint8_t version, type, flags, reserved;
	uint64_t *fields[] = {&msg->from,
	                      &msg->to,
	                      &msg->term,
	                      &msg->log_term,
	                      &msg->index,
	                      &msg->commit,
	                      &msg->ctx,
	                      &msg->reject_hint_index,
	                      &msg->reject_hint_term};
	int rc;

	if ((rc = get_u8(r, &version)) < 0 || (rc = get_u8(r, &type)) < 0 ||
	    (rc = get_u8(r, &flags)) < 0 || (rc = get_u8(r, &reserved)) < 0 ||
	    (rc = get_u32(r, &msg->n_entries)) < 0)
		return rc;
	for (size_t i = 0; i < SP_ARRAY_SIZE(fields); i++)
		if ((rc = get_u64(r, fields[i])) < 0)
			return rc;
	if (version != MSG_VERSION || reserved != 0 || (flags & ~MSG_FLAG_REJECT) != 0)
		return -SP_EMALFORMED;
	if (!msg_type_valid(type))
		return -SP_EMALFORMED;
	msg->type = type;
	msg->reject = (flags & MSG_FLAG_REJECT) != 0;
	if (msg->n_entries > RAFT_MSG_ENTRIES_MAX)
		return -SP_EMALFORMED;
	if (msg->n_entries > 0 && !msg_type_has_entries(msg->type))
		return -SP_EMALFORMED;
	return 0;
}

/* Parses n entries into out[]; data points into the buffer. */
static int
decode_entries(struct rbuf *r, uint32_t n, struct raft_entry *out)
{
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		struct raft_entry *e = &out[i];
		const uint8_t *data;

		if ((rc = get_u64(r, &e->term)) < 0 || (rc = get_u64(r, &e->index)) < 0 ||
		    (rc = get_u32(r, &e->type)) < 0 || (rc = get_u32(r, &e->len)) < 0)
			return rc;
		if (e->type >= RAFT_ENTRY_TYPE_COUNT)
			return -SP_EMALFORMED;
		if (e->len > RAFT_ENTRY_BYTES_MAX)
			return -SP_EMALFORMED;
		data = get_span(r, e->len);
		if (data == NULL)
			return -SP_ETRUNCATED;
		e->data = e->len > 0 ? data : NULL;
	}
	return 0;
}

/* Parses the snapshot section of a RAFT_MSG_SNAPSHOT. */
static int
decode_snapshot(struct rbuf *r, struct raft_snapshot *s)
{
	struct raft_membership *m = &s->meta.membership;
	uint64_t len;
	const uint8_t *data;
	int rc;

	if ((rc = get_u64(r, &s->meta.index)) < 0 || (rc = get_u64(r, &s->meta.term)) < 0 ||
	    (rc = get_u32(r, &m->n_voters)) < 0 || (rc = get_u32(r, &m->n_learners)) < 0)
		return rc;
	if (m->n_voters > RAFT_NODES_MAX || m->n_learners > RAFT_NODES_MAX)
		return -SP_EMALFORMED;
	for (uint32_t i = 0; i < m->n_voters; i++)
		if ((rc = get_u64(r, &m->voters[i])) < 0)
			return rc;
	for (uint32_t i = 0; i < m->n_learners; i++)
		if ((rc = get_u64(r, &m->learners[i])) < 0)
			return rc;
	if (!membership_valid(m))
		return -SP_EMALFORMED;
	if ((rc = get_u64(r, &len)) < 0)
		return rc;
	if (len > RAFT_SNAPSHOT_BYTES_MAX)
		return -SP_EMALFORMED;
	data = get_span(r, len);
	if (data == NULL)
		return -SP_ETRUNCATED;
	s->data = len > 0 ? data : NULL;
	s->len = (size_t)len;
	return 0;
}

/*
 * Decodes exactly len bytes. On error msg is left zeroed apart from what was parsed and must
 * not be used. See raft.h for the error codes.
 */
int
raft_msg_decode(const void *buf, size_t len, struct raft_msg *msg, struct raft_entry *entries,
                size_t entries_cap)
{
	struct rbuf r = {.p = buf, .len = len, .off = 0};
	uint32_t crc_stored;
	size_t body;
	int rc;

	ASSERT(msg != NULL);
	ASSERT(buf != NULL || len == 0);
	memset(msg, 0, sizeof(*msg));
	if (len < MSG_HEADER_BYTES + MSG_TRAILER_BYTES)
		return -SP_ETRUNCATED;
	r.len = len - MSG_TRAILER_BYTES;
	rc = decode_header(&r, msg);
	if (rc < 0)
		return rc;
	if (msg->n_entries > entries_cap)
		return -SP_ETOOBIG;
	if (msg->n_entries > 0) {
		ASSERT(entries != NULL);
		rc = decode_entries(&r, msg->n_entries, entries);
		if (rc < 0)
			return rc;
		msg->entries = entries;
	}
	if (msg->type == RAFT_MSG_SNAPSHOT) {
		rc = decode_snapshot(&r, &msg->snapshot);
		if (rc < 0)
			return rc;
	}
	if (r.off != r.len)
		return -SP_EMALFORMED; /* trailing bytes before the checksum */
	body = r.off;
	r.len = len;
	if ((rc = get_u32(&r, &crc_stored)) < 0)
		return rc;
	if (crc_stored != sp_crc32c(0, buf, body))
		return -SP_ECORRUPT;
	return 0;
}

void
raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t out[RAFT_CONF_CHANGE_BYTES])
{
	struct wbuf w = {.p = out, .off = 0};

	ASSERT(cc != NULL);
	ASSERT(cc->node_id != 0);
	put_u32(&w, cc->op);
	put_u64(&w, cc->node_id);
	ASSERT(w.off == RAFT_CONF_CHANGE_BYTES);
}

int
raft_conf_change_decode(const void *data, size_t len, struct raft_conf_change *cc)
{
	struct rbuf r = {.p = data, .len = len, .off = 0};

	ASSERT(cc != NULL);
	if (len != RAFT_CONF_CHANGE_BYTES || data == NULL)
		return -SP_EMALFORMED;
	if (get_u32(&r, &cc->op) < 0 || get_u64(&r, &cc->node_id) < 0)
		return -SP_EMALFORMED;
	if (cc->op < RAFT_CONF_ADD_LEARNER || cc->op > RAFT_CONF_REMOVE)
		return -SP_EMALFORMED;
	if (cc->node_id == 0)
		return -SP_EMALFORMED;
	return 0;
}

/* Index of id in ids[0..n), or -1. */
static int
id_find(const uint64_t *ids, uint32_t n, uint64_t id)
{
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] == id)
			return (int)i;
	return -1;
}

/* Removes ids[i] keeping the order of the rest. */
static void
id_remove_at(uint64_t *ids, uint32_t *n, int i)
{
	ASSERT(i >= 0);
	ASSERT((uint32_t)i < *n);
	memmove(&ids[i], &ids[i + 1], sizeof(ids[0]) * (*n - (uint32_t)i - 1));
	(*n)--;
}

bool
raft_membership_is_voter(const struct raft_membership *m, uint64_t id)
{
	ASSERT(m != NULL);
	return id != 0 && id_find(m->voters, m->n_voters, id) >= 0;
}

bool
raft_membership_contains(const struct raft_membership *m, uint64_t id)
{
	ASSERT(m != NULL);
	return raft_membership_is_voter(m, id) ||
	       (id != 0 && id_find(m->learners, m->n_learners, id) >= 0);
}

/*
 * Applies one single-server change. Adding an existing member is -SP_EEXISTS, promoting or
 * removing a non-member -SP_ENOTFOUND, promoting a voter -EINVAL, removing the last voter
 * -EINVAL, adding beyond RAFT_NODES_MAX -SP_EFULL. m is unchanged on error.
 */
int
raft_membership_apply(struct raft_membership *m, const struct raft_conf_change *cc)
{
	int vi, li;

	ASSERT(m != NULL);
	ASSERT(cc != NULL);
	if (cc->node_id == 0)
		return -EINVAL;
	vi = id_find(m->voters, m->n_voters, cc->node_id);
	li = id_find(m->learners, m->n_learners, cc->node_id);
	switch (cc->op) {
	case RAFT_CONF_ADD_LEARNER:
		if (vi >= 0 || li >= 0)
			return -SP_EEXISTS;
		if (m->n_voters + m->n_learners >= RAFT_NODES_MAX)
			return -SP_EFULL;
		m->learners[m->n_learners++] = cc->node_id;
		return 0;
	case RAFT_CONF_PROMOTE:
		if (vi >= 0)
			return -EINVAL;
		if (li < 0)
			return -SP_ENOTFOUND;
		id_remove_at(m->learners, &m->n_learners, li);
		m->voters[m->n_voters++] = cc->node_id;
		return 0;
	case RAFT_CONF_REMOVE:
		if (vi >= 0) {
			if (m->n_voters == 1)
				return -EINVAL;
			id_remove_at(m->voters, &m->n_voters, vi);
			return 0;
		}
		if (li >= 0) {
			id_remove_at(m->learners, &m->n_learners, li);
			return 0;
		}
		return -SP_ENOTFOUND;
	default:
		return -EINVAL;
	}
}

const char *
raft_role_name(uint32_t role)
{
	static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};

	return role < SP_ARRAY_SIZE(names) ? names[role] : "unknown";
}

const char *
raft_msg_type_name(uint32_t type)
{
	static const char *const names[] = {
	        "none",        "pre-vote",  "pre-vote-resp",  "vote",     "vote-resp",   "append",
	        "append-resp", "heartbeat", "heartbeat-resp", "snapshot", "timeout-now", "propose",
	};

	return type < SP_ARRAY_SIZE(names) ? names[type] : "unknown";
}
