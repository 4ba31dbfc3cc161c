/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Codec for Shardplane's binary protocol (see binproto.h and docs/protocol.md).
 *
 * Layouts (offsets in bytes, little-endian, records packed without padding):
 *   datagram header (16): magic u16 | version u8 | flags u8 | count u16 | reserved u16 |
 *                         datagram_id u64
 *   request header  (32): opcode u8 | reserved u8 | key_len u16 | request_id u32 |
 *                         value_len u32 | flags u32 | expiry_s u32 | reserved u32 | cas u64
 *   reply header    (24): request_id u32 | status u8 | opcode u8 | reserved u16 | cas u64 |
 *                         flags u32 | value_len u32
 *   route value     (32 + 2n): partitions u32 | workers u32 | first u32 | count u32 |
 *                         epoch u64 | base_port u16 | reserved u16 | reserved u32 |
 *                         owner u16 [count]
 */
#include "wire/binproto.h"

#include <errno.h>
#include <string.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"

#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* Field offsets: the only place the layouts above are spelled out in code. */
enum {
	DG_MAGIC = 0,
	DG_VERSION = 2,
	DG_FLAGS = 3,
	DG_COUNT = 4,
	DG_RESERVED = 6,
	DG_ID = 8,
	DG_END = 16,

	RQ_OPCODE = 0,
	RQ_RESERVED8 = 1,
	RQ_KEY_LEN = 2,
	RQ_ID = 4,
	RQ_VALUE_LEN = 8,
	RQ_FLAGS = 12,
	RQ_EXPIRY = 16,
	RQ_RESERVED32 = 20,
	RQ_CAS = 24,
	RQ_END = 32,

	RP_ID = SP_BP_RP_ID,
	RP_STATUS = SP_BP_RP_STATUS,
	RP_OPCODE = SP_BP_RP_OPCODE,
	RP_RESERVED = SP_BP_RP_RESERVED,
	RP_CAS = SP_BP_RP_CAS,
	RP_FLAGS = SP_BP_RP_FLAGS,
	RP_VALUE_LEN = SP_BP_RP_VALUE_LEN,
	RP_END = 24,

	RT_PARTITIONS = 0,
	RT_FIRST = 4,
	RT_COUNT = 8,
	RT_NODE_COUNT = 12,
	RT_SELF = 14,
	RT_EPOCH = 16,
	RT_END = 24,

	RN_NODE_ID = 0,
	RN_IPV4 = 4, /* network byte order */
	RN_BINARY_PORT = 8,
	RN_MEMCACHED_PORT = 10,
	RN_WORKERS = 12,
	RN_RESERVED = 14,
	RN_END = 16,

	RD_EPOCH = 0,
	RD_NODE_ID = 8,
	RD_IPV4 = 12, /* network byte order */
	RD_PORT = 16,
	RD_WORKER = 18,
	RD_PARTITION = 20,
	RD_END = 24,
};

SP_STATIC_ASSERT(DG_END == SP_BP_DGRAM_HDR_SIZE, "datagram header layout");
SP_STATIC_ASSERT(RQ_END == SP_BP_REQ_HDR_SIZE, "request header layout");
SP_STATIC_ASSERT(RP_END == SP_BP_REPLY_HDR_SIZE, "reply header layout");
SP_STATIC_ASSERT(RT_END == SP_BP_ROUTE_HEAD_SIZE, "route head layout");
SP_STATIC_ASSERT(RN_END == SP_BP_ROUTE_NODE_SIZE, "route node layout");
SP_STATIC_ASSERT(RD_END == SP_BP_REDIRECT_SIZE, "redirect layout");
SP_STATIC_ASSERT(SP_BP_ROUTE_NODES_MAX <= 256u, "an entry's node index is a u8");
SP_STATIC_ASSERT(SP_BP_ROUTE_WORKERS_MAX <= 256u, "an entry's worker index is a u8");
/* With the most nodes a page still carries entries. */
SP_STATIC_ASSERT(SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + SP_BP_ROUTE_HEAD_SIZE +
                                 SP_BP_ROUTE_NODES_MAX * SP_BP_ROUTE_NODE_SIZE +
                                 64u * SP_BP_ROUTE_ENTRY_SIZE <=
                         SP_BP_PAYLOAD_MAX,
                 "a page of the largest map carries at least 64 entries");
SP_STATIC_ASSERT(SP_BP_VALUE_MAX == 1423u, "value max for a 1472-byte payload");
SP_STATIC_ASSERT(SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + SP_BP_VALUE_MAX <= SP_BP_PAYLOAD_MAX,
                 "a reply carrying the largest value fits in one datagram");
SP_STATIC_ASSERT(SP_BP_DGRAM_HDR_SIZE + SP_BP_REPLY_HDR_SIZE + SP_BP_ROUTE_HEAD_SIZE +
                                 SP_BP_ROUTE_NODE_SIZE +
                                 SP_BP_ROUTE_ENTRY_SIZE * SP_BP_ROUTE_PAGE_MAX <=
                         SP_BP_PAYLOAD_MAX,
                 "a full page of a one-node map fits in one reply datagram");
SP_STATIC_ASSERT(SP_BP_REQS_MAX <= UINT16_MAX, "count is a u16");
SP_STATIC_ASSERT(SP_BP_KEY_MAX <= UINT16_MAX, "key_len is a u16");
SP_STATIC_ASSERT(SP_BP_ERR_COUNT < 256, "reasons fit the u8 err field");

/* ---- Little-endian unaligned access ---------------------------------------------------- */

static inline uint16_t
ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t
ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

static inline uint64_t
ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline void
st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
st32(uint8_t *p, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	memcpy(p, &v, sizeof(v));
}

static inline void
st64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, sizeof(v));
}

/* ---- Names ------------------------------------------------------------------------------ */

static const char *const err_names[SP_BP_ERR_COUNT] = {
        [SP_BP_ERR_OK] = "ok",
        [SP_BP_ERR_SHORT_HEADER] = "short_header",
        [SP_BP_ERR_TOO_LONG] = "too_long",
        [SP_BP_ERR_BAD_MAGIC] = "bad_magic",
        [SP_BP_ERR_BAD_VERSION] = "bad_version",
        [SP_BP_ERR_BAD_FLAGS] = "bad_flags",
        [SP_BP_ERR_BAD_RESERVED] = "bad_reserved",
        [SP_BP_ERR_COUNT_ZERO] = "count_zero",
        [SP_BP_ERR_COUNT_OVER] = "count_over",
        [SP_BP_ERR_TRUNC_RECORD] = "truncated_record",
        [SP_BP_ERR_VALUE_TOO_BIG] = "value_too_big",
        [SP_BP_ERR_OVERFLOW] = "length_overflow",
        [SP_BP_ERR_TRAILING] = "trailing_bytes",
        [SP_BP_ERR_BAD_OPCODE] = "bad_opcode",
        [SP_BP_ERR_KEY_EMPTY] = "key_empty",
        [SP_BP_ERR_KEY_TOO_LONG] = "key_too_long",
        [SP_BP_ERR_BAD_VALUE_LEN] = "bad_value_len",
        [SP_BP_ERR_BAD_REQ_FIELD] = "bad_request_field",
};

static const char *const status_names[SP_BP_ST_LAST] = {
        [SP_BP_ST_OK] = "ok",
        [SP_BP_ST_NOT_FOUND] = "not_found",
        [SP_BP_ST_EXISTS] = "exists",
        [SP_BP_ST_CAS_MISMATCH] = "cas_mismatch",
        [SP_BP_ST_TOO_BIG] = "too_big",
        [SP_BP_ST_NOT_NUMBER] = "not_number",
        [SP_BP_ST_BAD_REQUEST] = "bad_request",
        [SP_BP_ST_SERVER_BUSY] = "server_busy",
        [SP_BP_ST_SERVER_FULL] = "server_full",
        [SP_BP_ST_WRONG_PARTITION] = "wrong_partition",
        [SP_BP_ST_INTERNAL] = "internal",
        [SP_BP_ST_NOT_SERVING] = "not_serving",
        [SP_BP_ST_NOT_READY] = "not_ready",
        [SP_BP_ST_UNAVAILABLE] = "unavailable",
        [SP_BP_ST_PARTIAL] = "partial",
};

/* ---- The opcode table ---------------------------------------------------------------- */

/* Compile-time rules every built-in entry keeps (the same ones sp_bp_op_register checks). */
#define OP_CHECK(op, name, props, value, room)                                                    \
	SP_STATIC_ASSERT((op) > 0 && (op) < SP_BP_OP_LAST, #op ": a built-in opcode");            \
	SP_STATIC_ASSERT(((props) & (SP_BP_OPF_VALID | SP_BP_OPF_USER)) == 0,                     \
	                 #op ": VALID is implied, USER is for registered operations");            \
	SP_STATIC_ASSERT(((props)&SP_BP_OPF_CAS) == 0 || ((props)&SP_BP_OPF_KEY) != 0,            \
	                 #op ": a cas names a key's version");                                    \
	SP_STATIC_ASSERT(((props)&SP_BP_OPF_FLAGS) == 0 || (value) == SP_BP_VALUE_BYTES,          \
	                 #op ": flags are stored with a value");                                  \
	SP_STATIC_ASSERT(((props)&SP_BP_OPF_EXPIRY) == 0 || ((props)&SP_BP_OPF_WRITE) != 0,       \
	                 #op ": an expiry is set by a write");                                    \
	SP_STATIC_ASSERT((value) != SP_BP_VALUE_COUNTER || ((room) == SP_BP_COUNTER_REPLY_SIZE && \
	                                                    ((props)&SP_BP_OPF_WRITE) != 0),      \
	                 #op ": a counter op writes and answers a u64");                          \
	SP_STATIC_ASSERT((value) != SP_BP_VALUE_PAGE || ((props)&SP_BP_OPF_KEY) == 0,             \
	                 #op ": a page request names no key");                                    \
	SP_STATIC_ASSERT((room) <= SP_BP_VALUE_MAX, #op ": its reply fits a datagram");
SP_BP_OP_LIST(OP_CHECK)
#undef OP_CHECK

#define OP_ONE(op, name, props, value, room) +1
SP_STATIC_ASSERT(0 SP_BP_OP_LIST(OP_ONE) == SP_BP_OP_LAST - 1, "every built-in opcode is listed");
#undef OP_ONE
SP_STATIC_ASSERT(SP_BP_OP_LAST <= SP_BP_OP_USER_FIRST, "built-in opcodes are below the user range");
SP_STATIC_ASSERT(SP_BP_OP_COUNT == 256u, "the table covers every u8");

#define OP_ENTRY(op, nm, pr, val, room)                     \
	[op] = {.name = (nm),                               \
	        .props = (uint8_t)(SP_BP_OPF_VALID | (pr)), \
	        .value = (val),                             \
	        .reply_room = (room),                       \
	        SP_BP_OP_DERIVED(pr, val)},
struct sp_bp_op_info sp_bp__ops[SP_BP_OP_COUNT] = {SP_BP_OP_LIST(OP_ENTRY)};
#undef OP_ENTRY
SP_STATIC_ASSERT(SP_BP_KEY_MAX - 1u <= UINT8_MAX, "key_span is a u8");
SP_STATIC_ASSERT(SP_BP_VALUE_NONE < SP_BP_VALUE_COUNTER &&
                         SP_BP_VALUE_BYTES < SP_BP_VALUE_COUNTER &&
                         SP_BP_VALUE_PAGE > SP_BP_VALUE_COUNTER,
                 "finish_request: the rules it decodes are from COUNTER on");

int
sp_bp_op_register(uint8_t op, const char *name, uint8_t props, enum sp_bp_value_rule value,
                  uint16_t reply_room)
{
	const uint8_t allowed = SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_FLAGS |
	                        SP_BP_OPF_EXPIRY | SP_BP_OPF_CAS;
	struct sp_bp_op_info *e = &sp_bp__ops[op];

	if (op < SP_BP_OP_USER_FIRST || name == NULL || name[0] == '\0')
		return -EINVAL;
	if ((props & ~allowed) != 0 || (value != SP_BP_VALUE_NONE && value != SP_BP_VALUE_BYTES))
		return -EINVAL;
	if (reply_room > SP_BP_VALUE_MAX)
		return -EINVAL;
	/* The same rules as the built-in entries (OP_CHECK). */
	if ((props & SP_BP_OPF_CAS) != 0 && (props & SP_BP_OPF_KEY) == 0)
		return -EINVAL;
	if ((props & SP_BP_OPF_FLAGS) != 0 && value != SP_BP_VALUE_BYTES)
		return -EINVAL;
	if ((props & SP_BP_OPF_EXPIRY) != 0 && (props & SP_BP_OPF_WRITE) == 0)
		return -EINVAL;
	if ((e->props & SP_BP_OPF_VALID) != 0)
		return -EEXIST;
	*e = (struct sp_bp_op_info){
	        .name = name,
	        .props = (uint8_t)(props | SP_BP_OPF_VALID | SP_BP_OPF_USER),
	        .value = (uint8_t)value,
	        .reply_room = reply_room,
	        SP_BP_OP_DERIVED(props, value),
	};
	ASSERT(sp_bp_op(op)->props & SP_BP_OPF_USER);
	return 0;
}

int
sp_bp_op_unregister(uint8_t op)
{
	struct sp_bp_op_info *e = &sp_bp__ops[op];

	if ((e->props & SP_BP_OPF_USER) == 0)
		return -ENOENT;
	ASSERT(op >= SP_BP_OP_USER_FIRST);
	memset(e, 0, sizeof(*e));
	return 0;
}

const char *
sp_bp_err_name(enum sp_bp_err err)
{
	if ((unsigned)err >= SP_BP_ERR_COUNT || err_names[err] == NULL)
		return "unknown";
	return err_names[err];
}

const char *
sp_bp_status_name(enum sp_bp_status status)
{
	if ((unsigned)status >= SP_BP_ST_LAST || status_names[status] == NULL)
		return "unknown";
	return status_names[status];
}

const char *
sp_bp_op_name(enum sp_bp_op op)
{
	if ((unsigned)op >= SP_BP_OP_COUNT || sp_bp__ops[op].name == NULL)
		return "unknown";
	return sp_bp__ops[op].name;
}

static bool
op_valid(uint8_t op)
{
	return (sp_bp_op(op)->props & SP_BP_OPF_VALID) != 0;
}

static bool
is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* ---- Decoding ---------------------------------------------------------------------------- */

/*
 * Checks the datagram header; `reply` says which side's datagrams are expected. Returns
 * SP_BP_ERR_OK with *dgram filled, or the reason.
 */
static enum sp_bp_err
decode_header(const uint8_t *p, size_t len, bool reply, uint32_t max, struct sp_bp_dgram *dgram)
{
	ASSERT(p != NULL || len == 0);
	ASSERT(dgram != NULL);
	if (len < SP_BP_DGRAM_HDR_SIZE)
		return SP_BP_ERR_SHORT_HEADER;
	if (len > SP_BP_PAYLOAD_MAX)
		return SP_BP_ERR_TOO_LONG;
	if (ld16(p + DG_MAGIC) != SP_BP_MAGIC)
		return SP_BP_ERR_BAD_MAGIC;
	if (p[DG_VERSION] != SP_BP_VERSION)
		return SP_BP_ERR_BAD_VERSION;

	uint8_t flags = p[DG_FLAGS];
	if ((flags & ~SP_BP_F_MASK) != 0)
		return SP_BP_ERR_BAD_FLAGS;
	if (((flags & SP_BP_F_REPLY) != 0) != reply)
		return SP_BP_ERR_BAD_FLAGS;
	if (reply && (flags & SP_BP_F_FORWARD) != 0)
		return SP_BP_ERR_BAD_FLAGS;
	if (ld16(p + DG_RESERVED) != 0)
		return SP_BP_ERR_BAD_RESERVED;

	uint16_t count = ld16(p + DG_COUNT);
	if (count == 0)
		return SP_BP_ERR_COUNT_ZERO;
	if (count > SP_BP_REQS_MAX || count > max)
		return SP_BP_ERR_COUNT_OVER;

	dgram->count = count;
	dgram->flags = flags;
	dgram->datagram_id = ld64(p + DG_ID);
	return SP_BP_ERR_OK;
}

/* Marks a well-framed request as individually bad, with the status it is answered with. */
static inline void
reject(struct sp_bp_req *r, enum sp_bp_err err)
{
	ASSERT(err >= SP_BP_ERR_FIRST_REQ);
	ASSERT(err < SP_BP_ERR_COUNT);
	r->err = (uint8_t)err;
	r->status = err == SP_BP_ERR_KEY_TOO_LONG ? SP_BP_ST_TOO_BIG : SP_BP_ST_BAD_REQUEST;
	r->partition = SP_BP_PARTITION_ANY;
}

/*
 * Applies the rules of the request's opcode (oi, its entry in the table) to a request
 * whose bytes are all inside the datagram, in this order: opcode, reserved bytes (rsv:
 * one is non-zero), key, value length, unused fields. Returns the first violation, or
 * SP_BP_ERR_OK. Out of line: only requests that break a rule come here.
 */
static enum sp_bp_err __attribute__((noinline, cold))
check_request_slow(const struct sp_bp_op_info *oi, bool rsv, uint32_t key_len, uint32_t value_len,
                   uint64_t flags_expiry, uint64_t cas)
{
	if ((oi->props & SP_BP_OPF_VALID) == 0)
		return SP_BP_ERR_BAD_OPCODE;
	if (rsv)
		return SP_BP_ERR_BAD_REQ_FIELD;
	if ((uint32_t)(key_len - oi->key_min) > oi->key_span) {
		if ((oi->props & SP_BP_OPF_KEY) == 0)
			return SP_BP_ERR_BAD_REQ_FIELD; /* a key on an op that has none */
		return key_len == 0 ? SP_BP_ERR_KEY_EMPTY : SP_BP_ERR_KEY_TOO_LONG;
	}
	if (value_len > oi->value_max || ((oi->value_lens >> (value_len & 31u)) & 1u) == 0)
		return SP_BP_ERR_BAD_VALUE_LEN;
	/* A field the opcode does not use must be zero (a created counter has flags 0). */
	if ((flags_expiry & oi->zero_flags_expiry) != 0 || (cas & oi->zero_cas) != 0)
		return SP_BP_ERR_BAD_REQ_FIELD;
	return SP_BP_ERR_OK;
}

/*
 * The same rules as check_request_slow, all tested at once: one branch for a well-formed
 * request (this runs for every request; the entry's derived ranges and masks replace
 * branches on what the opcode is). rsv is the OR of the reserved header bytes.
 */
static inline __attribute__((always_inline)) void
check_request(struct sp_bp_req *r, const struct sp_bp_op_info *oi, uint32_t rsv)
{
	uint64_t flags_expiry = (uint64_t)r->flags | (uint64_t)r->expiry_s << 32;
	uint64_t bad = (uint64_t)((oi->props & SP_BP_OPF_VALID) ^ SP_BP_OPF_VALID) | rsv |
	               (uint64_t)((uint32_t)(r->key_len - oi->key_min) > oi->key_span) |
	               (uint64_t)(r->value_len > oi->value_max) |
	               (uint64_t)(((oi->value_lens >> (r->value_len & 31u)) & 1u) ^ 1u) |
	               (flags_expiry & oi->zero_flags_expiry) | (r->cas & oi->zero_cas);

	if (unlikely(bad != 0)) {
		enum sp_bp_err err = check_request_slow(oi, rsv != 0, r->key_len, r->value_len,
		                                        flags_expiry, r->cas);

		ASSERT(err != SP_BP_ERR_OK);
		reject(r, err);
	}
}

/* Fills the decoded fields the opcode's key and value rule define (after check_request). */
static inline __attribute__((always_inline)) void
finish_request(struct sp_bp_req *r, const struct sp_bp_op_info *oi, uint32_t partitions)
{
	ASSERT(r->err == SP_BP_ERR_OK);
	ASSERT(partitions == 0 || is_pow2(partitions));
	if ((oi->props & SP_BP_OPF_KEY) != 0) {
		r->hash = sp_key_hash(r->key, r->key_len);
		r->partition = partitions != 0 ? sp_key_partition(r->hash, partitions) : 0;
	}
	if (oi->value < SP_BP_VALUE_COUNTER)
		return; /* none, or opaque bytes: as they arrived */
	if (oi->value == SP_BP_VALUE_PAGE) {
		r->route_first = r->value_len == 4 ? ld32(r->value) : 0;
	} else {
		r->delta = ld64(r->value);
		r->create = r->value_len == SP_BP_COUNTER_INIT_SIZE;
		r->initial = r->create ? ld64(r->value + 8) : 0;
	}
	r->value = NULL;
	r->value_len = 0;
}

/* check_request, then finish_request when it passed: inlined into each case below. */
static inline __attribute__((always_inline)) void
decode_request(struct sp_bp_req *r, const struct sp_bp_op_info *oi, uint32_t rsv,
               uint32_t partitions)
{
	check_request(r, oi, rsv);
	if (r->err == SP_BP_ERR_OK)
		finish_request(r, oi, partitions);
}

enum sp_bp_err
sp_bp_decode_requests(const void *buf, size_t len, uint32_t partitions, struct sp_bp_req *reqs,
                      uint32_t reqs_max, struct sp_bp_dgram *dgram)
{
	const uint8_t *p = buf;
	enum sp_bp_err err;

	ASSERT(reqs != NULL);
	ASSERT(partitions == 0 || is_pow2(partitions));
	err = decode_header(p, len, false, reqs_max, dgram);
	if (err != SP_BP_ERR_OK)
		return err;

	size_t off = SP_BP_DGRAM_HDR_SIZE;
	for (uint32_t i = 0; i < dgram->count; i++) {
		const uint8_t *h = p + off;

		if (len - off < SP_BP_REQ_HDR_SIZE)
			return SP_BP_ERR_TRUNC_RECORD;
		/*
		 * Built in a local and stored once: checking fields of the caller's array right
		 * after writing them made the compiler merge narrow stores into wide loads,
		 * which defeats store-to-load forwarding (measured: ~40% of decode time).
		 */
		struct sp_bp_req q = {
		        .opcode = h[RQ_OPCODE],
		        .key_len = ld16(h + RQ_KEY_LEN),
		        .request_id = ld32(h + RQ_ID),
		        .value_len = ld32(h + RQ_VALUE_LEN),
		        .flags = ld32(h + RQ_FLAGS),
		        .expiry_s = ld32(h + RQ_EXPIRY),
		        .cas = ld64(h + RQ_CAS),
		        .partition = SP_BP_PARTITION_ANY,
		};
		off += SP_BP_REQ_HDR_SIZE;

		if (q.value_len > SP_BP_VALUE_MAX)
			return SP_BP_ERR_VALUE_TOO_BIG;
		/* Both lengths are bounded (u16, VALUE_MAX), so the sum cannot wrap. */
		if ((size_t)q.key_len + q.value_len > len - off)
			return SP_BP_ERR_OVERFLOW;
		q.key = q.key_len != 0 ? p + off : NULL;
		q.value = q.value_len != 0 ? p + off + q.key_len : NULL;
		off += (size_t)q.key_len + q.value_len;

		q.record = h;
		q.record_len = (uint16_t)(SP_BP_REQ_HDR_SIZE + q.key_len + q.value_len);
		uint32_t rsv = h[RQ_RESERVED8] | ld32(h + RQ_RESERVED32);
		/*
		 * The table's rules: for a built-in opcode, the entry's values are compile-time
		 * constants here (the same SP_BP_OP_LIST entry), so each case compiles to that
		 * opcode's few tests (measured: the table read at run time cost ~11 more
		 * instructions a request); registered and unknown opcodes read the table.
		 */
		switch (q.opcode) {
#define OP_CASE(op, nm, pr, val, room)                              \
	case op: {                                                  \
		static const struct sp_bp_op_info rules = {         \
		        .name = (nm),                               \
		        .props = (uint8_t)(SP_BP_OPF_VALID | (pr)), \
		        .value = (val),                             \
		        .reply_room = (room),                       \
		        SP_BP_OP_DERIVED(pr, val)};                 \
		decode_request(&q, &rules, rsv, partitions);        \
		break;                                              \
	}
			SP_BP_OP_LIST(OP_CASE)
#undef OP_CASE
		default:
			decode_request(&q, sp_bp_op(q.opcode), rsv, partitions);
			break;
		}
		reqs[i] = q;
	}
	if (off != len)
		return SP_BP_ERR_TRAILING;
	ASSERT(off <= SP_BP_PAYLOAD_MAX);
	return SP_BP_ERR_OK;
}

enum sp_bp_err
sp_bp_decode_ids(const void *buf, size_t len, struct sp_bp_req *reqs, uint32_t reqs_max,
                 struct sp_bp_dgram *dgram)
{
	const uint8_t *p = buf;
	enum sp_bp_err err;

	ASSERT(reqs != NULL);
	err = decode_header(p, len, false, reqs_max, dgram);
	if (err != SP_BP_ERR_OK)
		return err;

	size_t off = SP_BP_DGRAM_HDR_SIZE;
	for (uint32_t i = 0; i < dgram->count; i++) {
		const uint8_t *h = p + off;

		if (len - off < SP_BP_REQ_HDR_SIZE)
			return SP_BP_ERR_TRUNC_RECORD;
		uint32_t key_len = ld16(h + RQ_KEY_LEN);
		uint32_t value_len = ld32(h + RQ_VALUE_LEN);
		off += SP_BP_REQ_HDR_SIZE;
		if (value_len > SP_BP_VALUE_MAX)
			return SP_BP_ERR_VALUE_TOO_BIG;
		if ((size_t)key_len + value_len > len - off)
			return SP_BP_ERR_OVERFLOW;
		off += (size_t)key_len + value_len;
		reqs[i] = (struct sp_bp_req){
		        .opcode = h[RQ_OPCODE],
		        .request_id = ld32(h + RQ_ID),
		        .partition = SP_BP_PARTITION_ANY,
		};
	}
	if (off != len)
		return SP_BP_ERR_TRAILING;
	return SP_BP_ERR_OK;
}

enum sp_bp_err
sp_bp_decode_replies(const void *buf, size_t len, struct sp_bp_reply *out, uint32_t out_max,
                     struct sp_bp_dgram *dgram)
{
	const uint8_t *p = buf;
	enum sp_bp_err err;

	ASSERT(out != NULL);
	ASSERT(dgram != NULL);
	err = decode_header(p, len, true, out_max, dgram);
	if (err != SP_BP_ERR_OK)
		return err;

	size_t off = SP_BP_DGRAM_HDR_SIZE;
	for (uint32_t i = 0; i < dgram->count; i++) {
		struct sp_bp_reply *r = &out[i];
		const uint8_t *h = p + off;

		if (len - off < SP_BP_REPLY_HDR_SIZE)
			return SP_BP_ERR_TRUNC_RECORD;
		r->request_id = ld32(h + RP_ID);
		r->status = h[RP_STATUS];
		r->opcode = h[RP_OPCODE];
		r->cas = ld64(h + RP_CAS);
		r->flags = ld32(h + RP_FLAGS);
		r->value_len = ld32(h + RP_VALUE_LEN);
		off += SP_BP_REPLY_HDR_SIZE;

		if (ld16(h + RP_RESERVED) != 0)
			return SP_BP_ERR_BAD_RESERVED;
		if (r->status >= SP_BP_ST_LAST)
			return SP_BP_ERR_BAD_OPCODE;
		if (r->opcode != 0 && !op_valid(r->opcode))
			return SP_BP_ERR_BAD_OPCODE;
		if (r->value_len > len - off)
			return SP_BP_ERR_OVERFLOW;
		r->value = r->value_len != 0 ? p + off : NULL;
		off += r->value_len;
	}
	if (off != len)
		return SP_BP_ERR_TRAILING;
	return SP_BP_ERR_OK;
}

int
sp_bp_route_decode(const void *value, uint32_t value_len, struct sp_bp_route *route)
{
	const uint8_t *p = value;
	struct sp_bp_route_node n;

	ASSERT(route != NULL);
	ASSERT(p != NULL || value_len == 0);
	if (value_len < SP_BP_ROUTE_HEAD_SIZE)
		return -SP_EMALFORMED;
	route->partitions = ld32(p + RT_PARTITIONS);
	route->first = ld32(p + RT_FIRST);
	route->count = ld32(p + RT_COUNT);
	route->node_count = ld16(p + RT_NODE_COUNT);
	route->self = ld16(p + RT_SELF);
	route->epoch = ld64(p + RT_EPOCH);
	route->nodes = p + SP_BP_ROUTE_HEAD_SIZE;

	if (!is_pow2(route->partitions) || route->partitions > SP_BP_PARTITIONS_MAX)
		return -SP_EMALFORMED;
	if (route->node_count == 0 || route->node_count > SP_BP_ROUTE_NODES_MAX)
		return -SP_EMALFORMED;
	if (route->self >= route->node_count)
		return -SP_EMALFORMED;
	if (route->count == 0 || route->count > sp_bp_route_page_max(route->node_count))
		return -SP_EMALFORMED;
	if (route->first >= route->partitions || route->count > route->partitions - route->first)
		return -SP_EMALFORMED;
	if (value_len != sp_bp_route_value_size(route->node_count, route->count))
		return -SP_EMALFORMED;
	route->entries = route->nodes + (uint32_t)route->node_count * SP_BP_ROUTE_NODE_SIZE;
	for (uint32_t i = 0; i < route->node_count; i++) {
		const uint8_t *r = route->nodes + i * SP_BP_ROUTE_NODE_SIZE;

		if (ld16(r + RN_RESERVED) != 0)
			return -SP_EMALFORMED;
		sp_bp_route_node_get(route, i, &n);
		if (n.worker_count == 0 || n.worker_count > SP_BP_ROUTE_WORKERS_MAX)
			return -SP_EMALFORMED;
	}
	for (uint32_t i = 0; i < route->count; i++) {
		uint16_t node, worker;

		sp_bp_route_entry_get(route, i, &node, &worker);
		if (node >= route->node_count)
			return -SP_EMALFORMED;
		sp_bp_route_node_get(route, node, &n);
		if (worker >= n.worker_count)
			return -SP_EMALFORMED;
	}
	return 0;
}

void
sp_bp_route_node_get(const struct sp_bp_route *route, uint32_t i, struct sp_bp_route_node *out)
{
	const uint8_t *r;

	ASSERT(route != NULL);
	ASSERT(i < route->node_count);
	r = route->nodes + i * SP_BP_ROUTE_NODE_SIZE;
	out->node_id = ld32(r + RN_NODE_ID);
	memcpy(&out->ipv4_be, r + RN_IPV4, 4);
	out->binary_port = ld16(r + RN_BINARY_PORT);
	out->memcached_port = ld16(r + RN_MEMCACHED_PORT);
	out->worker_count = ld16(r + RN_WORKERS);
}

void
sp_bp_route_entry_get(const struct sp_bp_route *route, uint32_t i, uint16_t *node, uint16_t *worker)
{
	const uint8_t *e;

	ASSERT(route != NULL);
	ASSERT(i < route->count);
	e = route->entries + i * SP_BP_ROUTE_ENTRY_SIZE;
	*node = e[0];
	*worker = e[1];
}

int
sp_bp_redirect_decode(const void *value, uint32_t value_len, struct sp_bp_redirect *out)
{
	const uint8_t *p = value;

	ASSERT(out != NULL);
	if (value_len == 0)
		return 0;
	if (value_len != SP_BP_REDIRECT_SIZE || p == NULL)
		return -SP_EMALFORMED;
	out->epoch = ld64(p + RD_EPOCH);
	out->node_id = ld32(p + RD_NODE_ID);
	memcpy(&out->ipv4_be, p + RD_IPV4, 4);
	out->port = ld16(p + RD_PORT);
	out->worker = ld16(p + RD_WORKER);
	out->partition = ld32(p + RD_PARTITION);
	if (out->node_id == 0 || out->port == 0 || out->worker >= SP_BP_ROUTE_WORKERS_MAX ||
	    out->partition >= SP_BP_PARTITIONS_MAX)
		return -SP_EMALFORMED;
	return 1;
}

/* ---- Building ---------------------------------------------------------------------------- */

void
sp_bp_builder_init(struct sp_bp_builder *b, void *buf, size_t cap, bool reply, uint64_t datagram_id)
{
	VERIFY(buf != NULL);
	VERIFY(cap >= SP_BP_DGRAM_HDR_SIZE);
	b->buf = buf;
	b->cap = (uint32_t)SP_MIN(cap, (size_t)SP_BP_PAYLOAD_MAX);
	b->len = SP_BP_DGRAM_HDR_SIZE;
	b->count = 0;
	b->flags = reply ? SP_BP_F_REPLY : 0;

	st16(b->buf + DG_MAGIC, SP_BP_MAGIC);
	b->buf[DG_VERSION] = SP_BP_VERSION;
	b->buf[DG_FLAGS] = b->flags;
	st16(b->buf + DG_COUNT, 0);
	st16(b->buf + DG_RESERVED, 0);
	st64(b->buf + DG_ID, datagram_id);
}

void
sp_bp_builder_set_flags(struct sp_bp_builder *b, uint8_t flags)
{
	ASSERT(b != NULL);
	VERIFY((b->flags & SP_BP_F_REPLY) == 0);
	VERIFY((flags & ~SP_BP_F_FORWARD) == 0);
	b->flags |= flags;
	b->buf[DG_FLAGS] = b->flags;
}

/* Value bytes the encoder writes for a request (counters and pages synthesize theirs). */
static uint32_t
request_value_len(const struct sp_bp_req *req)
{
	ASSERT(req != NULL);
	switch (sp_bp_op(req->opcode)->value) {
	case SP_BP_VALUE_BYTES:
		return req->value_len;
	case SP_BP_VALUE_COUNTER:
		return req->create ? SP_BP_COUNTER_INIT_SIZE : SP_BP_COUNTER_DELTA_SIZE;
	case SP_BP_VALUE_PAGE:
		return req->route_first != 0 ? 4u : 0u;
	default:
		return 0;
	}
}

uint32_t
sp_bp_request_size(const struct sp_bp_req *req)
{
	ASSERT(req != NULL);
	uint32_t key_len = sp_bp_op_has_key(req->opcode) ? req->key_len : 0;
	return SP_BP_REQ_HDR_SIZE + key_len + request_value_len(req);
}

int
sp_bp_add_request(struct sp_bp_builder *b, const struct sp_bp_req *req)
{
	ASSERT(b != NULL);
	ASSERT(req != NULL);
	ASSERT((b->flags & SP_BP_F_REPLY) == 0);
	const struct sp_bp_op_info *oi = sp_bp_op(req->opcode);
	if ((oi->props & SP_BP_OPF_VALID) == 0)
		return -EINVAL;
	bool has_key = (oi->props & SP_BP_OPF_KEY) != 0;
	if (has_key && req->key_len == 0)
		return -EINVAL;
	if (!has_key && req->key_len != 0)
		return -EINVAL;
	if (req->key_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	uint32_t value_len = request_value_len(req);
	if (value_len > SP_BP_VALUE_MAX)
		return -SP_ETOOBIG;
	uint32_t size = sp_bp_request_size(req);
	if (b->count >= SP_BP_REQS_MAX || size > b->cap - b->len)
		return -SP_EFULL;

	/* The fields the table does not give the opcode are written as zero (the decoder
	 * refuses them otherwise). */
	uint8_t *h = b->buf + b->len;
	h[RQ_OPCODE] = req->opcode;
	h[RQ_RESERVED8] = 0;
	st16(h + RQ_KEY_LEN, req->key_len);
	st32(h + RQ_ID, req->request_id);
	st32(h + RQ_VALUE_LEN, value_len);
	st32(h + RQ_FLAGS, (oi->props & SP_BP_OPF_FLAGS) != 0 ? req->flags : 0);
	st32(h + RQ_EXPIRY, (oi->props & SP_BP_OPF_EXPIRY) != 0 ? req->expiry_s : 0);
	st32(h + RQ_RESERVED32, 0);
	st64(h + RQ_CAS, (oi->props & SP_BP_OPF_CAS) != 0 ? req->cas : 0);

	uint8_t *body = h + SP_BP_REQ_HDR_SIZE;
	if (has_key) {
		memcpy(body, req->key, req->key_len);
		body += req->key_len;
	}
	switch (oi->value) {
	case SP_BP_VALUE_BYTES:
		if (value_len != 0)
			memcpy(body, req->value, value_len);
		break;
	case SP_BP_VALUE_COUNTER:
		st64(body, req->delta);
		if (req->create)
			st64(body + 8, req->initial);
		break;
	case SP_BP_VALUE_PAGE:
		if (value_len == 4)
			st32(body, req->route_first);
		break;
	default:
		break;
	}
	b->len += size;
	b->count++;
	ASSERT(b->len <= b->cap);
	return 0;
}

int
sp_bp_add_record(struct sp_bp_builder *b, const struct sp_bp_req *req)
{
	ASSERT(b != NULL);
	ASSERT(req != NULL);
	ASSERT((b->flags & SP_BP_F_REPLY) == 0);
	if (req->err != SP_BP_ERR_OK)
		return -EINVAL;
	if (req->record == NULL)
		return sp_bp_add_request(b, req);
	ASSERT(req->record_len >= SP_BP_REQ_HDR_SIZE);
	ASSERT(req->record_len <= SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE);
	if (b->count >= SP_BP_REQS_MAX || req->record_len > b->cap - b->len)
		return -SP_EFULL;
	memcpy(b->buf + b->len, req->record, req->record_len);
	b->len += req->record_len;
	b->count++;
	return 0;
}

uint32_t
sp_bp_builder_finish(struct sp_bp_builder *b)
{
	ASSERT(b != NULL);
	ASSERT(b->count <= SP_BP_REQS_MAX);
	st16(b->buf + DG_COUNT, b->count);
	return b->len;
}

uint32_t
sp_bp_route_page_max(uint32_t node_count)
{
	uint32_t room = SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE - SP_BP_REPLY_HDR_SIZE -
	                SP_BP_ROUTE_HEAD_SIZE - node_count * SP_BP_ROUTE_NODE_SIZE;

	ASSERT(node_count >= 1 && node_count <= SP_BP_ROUTE_NODES_MAX);
	return SP_MIN(SP_BP_ROUTE_PAGE_MAX, room / SP_BP_ROUTE_ENTRY_SIZE);
}

uint32_t
sp_bp_route_value_size(uint32_t node_count, uint32_t count)
{
	ASSERT(node_count >= 1 && node_count <= SP_BP_ROUTE_NODES_MAX);
	ASSERT(count <= sp_bp_route_page_max(node_count));
	return SP_BP_ROUTE_HEAD_SIZE + node_count * SP_BP_ROUTE_NODE_SIZE +
	       count * SP_BP_ROUTE_ENTRY_SIZE;
}

void
sp_bp_route_encode(uint8_t *out, const struct sp_bp_route *route,
                   const struct sp_bp_route_node *nodes, const uint16_t *owner)
{
	uint8_t *e;

	ASSERT(out != NULL);
	VERIFY(route->node_count >= 1 && route->node_count <= SP_BP_ROUTE_NODES_MAX);
	VERIFY(route->self < route->node_count);
	VERIFY(route->count <= sp_bp_route_page_max(route->node_count));
	VERIFY(route->first <= route->partitions);
	VERIFY(route->count <= route->partitions - route->first);
	st32(out + RT_PARTITIONS, route->partitions);
	st32(out + RT_FIRST, route->first);
	st32(out + RT_COUNT, route->count);
	st16(out + RT_NODE_COUNT, route->node_count);
	st16(out + RT_SELF, route->self);
	st64(out + RT_EPOCH, route->epoch);
	for (uint32_t i = 0; i < route->node_count; i++) {
		uint8_t *r = out + SP_BP_ROUTE_HEAD_SIZE + i * SP_BP_ROUTE_NODE_SIZE;

		st32(r + RN_NODE_ID, nodes[i].node_id);
		memcpy(r + RN_IPV4, &nodes[i].ipv4_be, 4);
		st16(r + RN_BINARY_PORT, nodes[i].binary_port);
		st16(r + RN_MEMCACHED_PORT, nodes[i].memcached_port);
		st16(r + RN_WORKERS, nodes[i].worker_count);
		st16(r + RN_RESERVED, 0);
	}
	e = out + SP_BP_ROUTE_HEAD_SIZE + (uint32_t)route->node_count * SP_BP_ROUTE_NODE_SIZE;
	for (uint32_t i = 0; i < route->count; i++)
		st16(e + i * SP_BP_ROUTE_ENTRY_SIZE, owner[route->first + i]);
}

void
sp_bp_redirect_encode(uint8_t *out, const struct sp_bp_redirect *r)
{
	ASSERT(out != NULL);
	ASSERT(r->node_id != 0);
	st64(out + RD_EPOCH, r->epoch);
	st32(out + RD_NODE_ID, r->node_id);
	memcpy(out + RD_IPV4, &r->ipv4_be, 4);
	st16(out + RD_PORT, r->port);
	st16(out + RD_WORKER, r->worker);
	st32(out + RD_PARTITION, r->partition);
}
