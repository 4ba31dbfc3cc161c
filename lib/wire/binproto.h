/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shardplane's batched binary protocol over UDP: the codec.
 *
 * A datagram is a 16-byte header followed by `count` records. Requests carry a 32-byte
 * header, then key bytes, then value bytes; replies carry a 24-byte header, then value
 * bytes. All integers are little-endian. Records are packed back to back with no padding,
 * so no field is guaranteed to be aligned: every access goes through byte-wise loads
 * and stores. docs/protocol.md is the full specification.
 *
 * Everything here is pure and allocation-free: decoders point into the caller's buffer,
 * builders write into the caller's buffer. Nothing here blocks, locks or makes a system
 * call, so all of it may run on the dataplane's per-packet path.
 */
#ifndef SP_WIRE_BINPROTO_H
#define SP_WIRE_BINPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "common/verify.h"

/* ---- Wire constants ------------------------------------------------------------------ */

#define SP_BP_MAGIC   0x5053u /* bytes 'S' 'P' on the wire */
#define SP_BP_VERSION 2u      /* 2: ROUTE names every node; WRONG_PARTITION names the owner */

#define SP_BP_DGRAM_HDR_SIZE 16u
#define SP_BP_REQ_HDR_SIZE   32u
#define SP_BP_REPLY_HDR_SIZE 24u
/* Where a reply header's fields sit (docs/protocol.md), little-endian. */
enum sp_bp_reply_field {
	SP_BP_RP_ID = 0,
	SP_BP_RP_STATUS = 4,
	SP_BP_RP_OPCODE = 5,
	SP_BP_RP_RESERVED = 6, /* two bytes, zero */
	SP_BP_RP_CAS = 8,
	SP_BP_RP_FLAGS = 16,
	SP_BP_RP_VALUE_LEN = 20,
};

/*
 * Largest UDP payload either side sends or accepts: 1500 (Ethernet MTU) - 20 (IPv4) - 8
 * (UDP). With jumbo frames (MTU 9000) it would be 8972; both sides must be rebuilt with
 * the same value, and SP_BP_VALUE_MAX follows from it.
 */
#define SP_BP_PAYLOAD_MAX 1472u
/*
 * Most requests (or replies) one datagram may carry. 32 is reached by small requests
 * (36 GETs of 8-byte keys fit in 1472 bytes) and keeps descriptor arrays small.
 */
#define SP_BP_REQS_MAX 32u
/* Longest key, as in memcached. Keys are never empty. */
#define SP_BP_KEY_MAX 250u
/* Largest value: what a set with a one-byte key can carry in one datagram (1423 bytes). */
#define SP_BP_VALUE_MAX (SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE - SP_BP_REQ_HDR_SIZE - 1u)
/*
 * ROUTE reply value (docs/protocol.md): a 24-byte head, node_count 16-byte node records
 * (every node of the map), then count 2-byte entries (u8 node index, u8 worker) for
 * partitions first .. first+count-1. A page carries at most SP_BP_ROUTE_PAGE_MAX entries,
 * fewer when many nodes leave less room (sp_bp_route_page_max); larger maps are paged.
 */
#define SP_BP_ROUTE_PAGE_MAX   512u
#define SP_BP_ROUTE_HEAD_SIZE  24u
#define SP_BP_ROUTE_NODE_SIZE  16u
#define SP_BP_ROUTE_ENTRY_SIZE 2u
/* Most nodes a map may name (an entry's node index is a u8; every page lists them all). */
#define SP_BP_ROUTE_NODES_MAX 64u
/* Most workers of one node (an entry's worker index is a u8). */
#define SP_BP_ROUTE_WORKERS_MAX 256u
/* Most partitions the protocol can describe (route entries address them with a u32). */
#define SP_BP_PARTITIONS_MAX 65536u
/* Value of a WRONG_PARTITION reply that names the owner (it may also be empty). */
#define SP_BP_REDIRECT_SIZE 24u
/* Value of an incr/decr request: u64 delta [, u64 initial]. Reply value: u64 result. */
#define SP_BP_COUNTER_DELTA_SIZE 8u
#define SP_BP_COUNTER_INIT_SIZE  16u
#define SP_BP_COUNTER_REPLY_SIZE 8u

/* Datagram header flags. */
#define SP_BP_F_REPLY 0x01u /* set on every reply datagram, clear on requests */
/* Requests only: a node that does not own a request's partition forwards it to the owner
 * and relays the reply, instead of answering WRONG_PARTITION (clients that do not route). */
#define SP_BP_F_FORWARD 0x02u
#define SP_BP_F_MASK    0x03u /* any other bit set is malformed */

/* "No particular partition": for ROUTE and for requests rejected by the decoder. */
#define SP_BP_PARTITION_ANY UINT32_MAX

/* Opcodes. Values are wire-stable. */
enum sp_bp_op {
	SP_BP_OP_GET = 1,
	SP_BP_OP_SET = 2,     /* store; cas != 0 makes it conditional on the version */
	SP_BP_OP_ADD = 3,     /* store only if missing */
	SP_BP_OP_REPLACE = 4, /* store only if present */
	SP_BP_OP_DELETE = 5,  /* cas != 0 makes it conditional on the version */
	SP_BP_OP_INCR = 6,    /* value: u64 delta [, u64 initial: create when missing] */
	SP_BP_OP_DECR = 7,    /* as INCR, saturating at zero */
	SP_BP_OP_ROUTE = 8,   /* no key; value: empty or u32 first partition of the page */
	SP_BP_OP_LAST,        /* one past the built-in opcodes */
};

/*
 * Opcodes SP_BP_OP_USER_FIRST .. 255 are registered operations (sp_bp_op_register below):
 * defined by a program built on Shardplane (dataplane/tasks, docs/tasks.md), described at
 * start-up in the same table as the built-in ones.
 */
#define SP_BP_OP_USER_FIRST 128u
#define SP_BP_OP_COUNT      256u /* opcodes a u8 can name: the size of the table */

/* ---- The opcode table ------------------------------------------------------------------
 *
 * One entry per opcode says what its request carries and does. The decoder, the encoder,
 * the executor and the dataplane read only this table for an opcode's rules; the built-in
 * entries are in SP_BP_OP_LIST (checked at compile time in binproto.c), registered ones
 * are added with sp_bp_op_register.
 */

/* Properties (struct sp_bp_op_info.props). A field without its bit must be zero. */
#define SP_BP_OPF_VALID 0x01u /* a known opcode; any other is answered BAD_REQUEST */
#define SP_BP_OPF_KEY \
	0x02u                  /* carries a key (1..SP_BP_KEY_MAX bytes) and runs on the owner
                                * of its partition; without it: no key, any worker answers */
#define SP_BP_OPF_WRITE  0x04u /* may change state: its reply's room is reserved before it runs */
#define SP_BP_OPF_FLAGS  0x08u /* the flags field is meaningful */
#define SP_BP_OPF_EXPIRY 0x10u /* the expiry field is meaningful */
#define SP_BP_OPF_CAS    0x20u /* the cas field is meaningful */
#define SP_BP_OPF_USER   0x40u /* a registered operation (not run by binexec) */

/* What an opcode's value bytes are (struct sp_bp_op_info.value). */
enum sp_bp_value_rule {
	SP_BP_VALUE_NONE = 0, /* no value bytes */
	SP_BP_VALUE_BYTES,    /* 0..SP_BP_VALUE_MAX opaque bytes: req->value, value_len */
	SP_BP_VALUE_COUNTER,  /* u64 delta [, u64 initial]: req->delta, initial, create */
	SP_BP_VALUE_PAGE,     /* empty, or u32 first partition: req->route_first */
};

struct sp_bp_op_info {
	const char *name;    /* lower case, for logs and counters; NULL when not valid */
	uint8_t props;       /* SP_BP_OPF_* */
	uint8_t value;       /* enum sp_bp_value_rule */
	uint16_t reply_room; /* value bytes a successful reply of a write needs */
	/* Derived from props and value (SP_BP_OP_DERIVED), for a decoder without branches on
	 * the opcode: the key lengths allowed (key_min .. key_min + key_span), the value
	 * lengths allowed (at most value_max, and bit n of value_lens set for n bytes, n < 32
	 * taken modulo 32), and masks of the flags | expiry << 32 and cas fields that must be
	 * zero. */
	uint8_t key_min;
	uint8_t key_span;
	uint16_t value_max;
	uint32_t value_lens;
	uint32_t reserved;
	uint64_t zero_flags_expiry;
	uint64_t zero_cas;
};

/* The derived fields of an entry with properties p and value rule r (see above). */
#define SP_BP_OP_DERIVED(p, r)                                                                   \
	.key_min = ((p)&SP_BP_OPF_KEY) != 0 ? 1u : 0u,                                           \
	.key_span = ((p)&SP_BP_OPF_KEY) != 0 ? SP_BP_KEY_MAX - 1u : 0u,                          \
	.value_max = (r) == SP_BP_VALUE_BYTES     ? SP_BP_VALUE_MAX                              \
	             : (r) == SP_BP_VALUE_COUNTER ? SP_BP_COUNTER_INIT_SIZE                      \
	             : (r) == SP_BP_VALUE_PAGE    ? 4u                                           \
	                                          : 0u,                                             \
	.value_lens = (r) == SP_BP_VALUE_BYTES ? UINT32_MAX                                      \
	              : (r) == SP_BP_VALUE_COUNTER                                               \
	                      ? (1u << SP_BP_COUNTER_DELTA_SIZE | 1u << SP_BP_COUNTER_INIT_SIZE) \
	              : (r) == SP_BP_VALUE_PAGE ? (1u << 0 | 1u << 4)                            \
	                                        : 1u << 0,                                       \
	.zero_flags_expiry = (((p)&SP_BP_OPF_FLAGS) != 0 ? 0 : UINT64_C(0xffffffff)) |           \
	                     (((p)&SP_BP_OPF_EXPIRY) != 0 ? 0 : UINT64_C(0xffffffff) << 32),     \
	.zero_cas = ((p)&SP_BP_OPF_CAS) != 0 ? 0 : UINT64_MAX

/*
 * The built-in opcodes: X(opcode, name, properties besides VALID, value rule, reply room).
 * Adding one here is all the codec needs; binexec.c runs it.
 */
#define SP_BP_OP_LIST(X)                                                                           \
	X(SP_BP_OP_GET, "get", SP_BP_OPF_KEY, SP_BP_VALUE_NONE, 0)                                 \
	X(SP_BP_OP_SET, "set",                                                                     \
	  SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_FLAGS | SP_BP_OPF_EXPIRY | SP_BP_OPF_CAS,    \
	  SP_BP_VALUE_BYTES, 0)                                                                    \
	X(SP_BP_OP_ADD, "add",                                                                     \
	  SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_FLAGS | SP_BP_OPF_EXPIRY, SP_BP_VALUE_BYTES, \
	  0)                                                                                       \
	X(SP_BP_OP_REPLACE, "replace",                                                             \
	  SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_FLAGS | SP_BP_OPF_EXPIRY | SP_BP_OPF_CAS,    \
	  SP_BP_VALUE_BYTES, 0)                                                                    \
	X(SP_BP_OP_DELETE, "delete", SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_CAS,              \
	  SP_BP_VALUE_NONE, 0)                                                                     \
	X(SP_BP_OP_INCR, "incr", SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_EXPIRY,               \
	  SP_BP_VALUE_COUNTER, SP_BP_COUNTER_REPLY_SIZE)                                           \
	X(SP_BP_OP_DECR, "decr", SP_BP_OPF_KEY | SP_BP_OPF_WRITE | SP_BP_OPF_EXPIRY,               \
	  SP_BP_VALUE_COUNTER, SP_BP_COUNTER_REPLY_SIZE)                                           \
	X(SP_BP_OP_ROUTE, "route", 0, SP_BP_VALUE_PAGE, 0)

/* The table itself: read it through sp_bp_op(); written only by sp_bp_op_register. Hidden: the libraries are static, and the decoder then reaches it
 * without a GOT load. */
extern struct sp_bp_op_info sp_bp__ops[SP_BP_OP_COUNT] __attribute__((visibility("hidden")));

/* The entry of opcode op (every u8 has one; props is 0 for an unknown opcode). */
static inline const struct sp_bp_op_info *
sp_bp_op(uint8_t op)
{
	return &sp_bp__ops[op];
}

/*
 * Registers operation `op` (SP_BP_OP_USER_FIRST..255) with its name, properties (KEY,
 * WRITE, FLAGS, EXPIRY, CAS; VALID and USER are added), value rule (NONE or BYTES) and
 * reply room (<= SP_BP_VALUE_MAX). From then on the decoder accepts it, the encoder
 * writes it and sp_bp_op(op) describes it. Returns 0, -EINVAL (an opcode outside the user
 * range, a NULL or empty name, an unknown property or rule, a room too large) or -EEXIST
 * (already registered). Not thread-safe: register at start-up, before any thread decodes.
 */
int sp_bp_op_register(uint8_t op, const char *name, uint8_t props, enum sp_bp_value_rule value,
                      uint16_t reply_room);

/* Forgets registered operation op (tests; start-up errors). Returns 0 or -ENOENT. */
int sp_bp_op_unregister(uint8_t op);

/* Reply status codes. Values are wire-stable. */
enum sp_bp_status {
	SP_BP_ST_OK = 0,
	SP_BP_ST_NOT_FOUND = 1,
	SP_BP_ST_EXISTS = 2,          /* add on a present key */
	SP_BP_ST_CAS_MISMATCH = 3,    /* the item's version is not the request's cas */
	SP_BP_ST_TOO_BIG = 4,         /* key or value over its limit, or reply cannot fit */
	SP_BP_ST_NOT_NUMBER = 5,      /* incr/decr on a value that is not a u64 counter */
	SP_BP_ST_BAD_REQUEST = 6,     /* malformed request inside a well-framed datagram */
	SP_BP_ST_SERVER_BUSY = 7,     /* transient: queue full; retry later */
	SP_BP_ST_SERVER_FULL = 8,     /* out of memory and nothing could be evicted */
	SP_BP_ST_WRONG_PARTITION = 9, /* this node does not own the key: refresh the map */
	SP_BP_ST_INTERNAL = 10,       /* unexpected server error */
	/* Cluster mode. NOT_SERVING: this node holds no valid ownership lease or was removed
	 * from the cluster; fetch the map from another node. NOT_READY: the dataplane has not
	 * installed its first cluster map yet; retry later or ask another node. UNAVAILABLE: the
	 * partition's owner did not answer a forwarded request in time (or is unreachable). */
	SP_BP_ST_NOT_SERVING = 11,
	SP_BP_ST_NOT_READY = 12,
	SP_BP_ST_UNAVAILABLE = 13,
	/* A registered operation that spans partitions (docs/tasks.md) answered with the
	 * merged results of only the partitions whose owners answered in time; the reply's
	 * flags say how many. */
	SP_BP_ST_PARTIAL = 14,
	SP_BP_ST_LAST,
};

/*
 * Why the decoder rejected a datagram (SP_BP_ERR_* below SP_BP_ERR_FIRST_REQ) or a single
 * request (from SP_BP_ERR_FIRST_REQ on). Values index counter arrays of size
 * SP_BP_ERR_COUNT; SP_BP_ERR_OK (0) is "no error".
 */
enum sp_bp_err {
	SP_BP_ERR_OK = 0,
	/* Whole datagram dropped. */
	SP_BP_ERR_SHORT_HEADER,  /* shorter than the datagram header */
	SP_BP_ERR_TOO_LONG,      /* longer than SP_BP_PAYLOAD_MAX */
	SP_BP_ERR_BAD_MAGIC,     /* magic is not SP_BP_MAGIC */
	SP_BP_ERR_BAD_VERSION,   /* version is not SP_BP_VERSION */
	SP_BP_ERR_BAD_FLAGS,     /* unknown flag, or REPLY set/clear on the wrong side */
	SP_BP_ERR_BAD_RESERVED,  /* a reserved header field is not zero */
	SP_BP_ERR_COUNT_ZERO,    /* no records */
	SP_BP_ERR_COUNT_OVER,    /* more records than SP_BP_REQS_MAX (or the caller's array) */
	SP_BP_ERR_TRUNC_RECORD,  /* ends inside a record header */
	SP_BP_ERR_VALUE_TOO_BIG, /* a value length over SP_BP_VALUE_MAX */
	SP_BP_ERR_OVERFLOW,      /* key/value lengths run past the end of the datagram */
	SP_BP_ERR_TRAILING,      /* bytes left after the last record */
	/* One request answered with an error status; the rest of the datagram is served. */
	SP_BP_ERR_FIRST_REQ,
	SP_BP_ERR_BAD_OPCODE = SP_BP_ERR_FIRST_REQ, /* BAD_REQUEST */
	SP_BP_ERR_KEY_EMPTY,                        /* BAD_REQUEST: key op with no key */
	SP_BP_ERR_KEY_TOO_LONG,                     /* TOO_BIG: key over SP_BP_KEY_MAX */
	SP_BP_ERR_BAD_VALUE_LEN,                    /* BAD_REQUEST: value where none belongs */
	SP_BP_ERR_BAD_REQ_FIELD,                    /* BAD_REQUEST: reserved or unused field set */
	SP_BP_ERR_COUNT,
};

/* ---- Decoded views ------------------------------------------------------------------- */

/* A datagram header, decoded. */
struct sp_bp_dgram {
	uint64_t datagram_id; /* chosen by the client, echoed in every reply datagram */
	uint16_t count;       /* records that follow */
	uint8_t flags;
};

/*
 * One request. The decoder fills every field; the client encoder reads only those that
 * belong to the opcode (see docs/protocol.md) and requires the rest to be zero.
 */
struct sp_bp_req {
	const uint8_t *key;    /* into the datagram; NULL when key_len == 0 */
	const uint8_t *value;  /* into the datagram; NULL when value_len == 0 (set/add/replace) */
	const uint8_t *record; /* decoder output: the request's bytes in the datagram */
	uint64_t hash;         /* sp_key_hash(key) (decoder output; 0 without a key) */
	uint64_t cas;          /* expected version; 0 = unconditional */
	uint64_t delta;        /* incr/decr */
	uint64_t initial;      /* incr/decr, valid when create is set */
	uint32_t request_id;   /* echoed in the reply */
	uint32_t value_len;    /* set/add/replace payload length */
	uint32_t flags;        /* opaque client flags stored with the item */
	uint32_t expiry_s;     /* relative seconds; 0 = never expires */
	uint32_t partition;    /* sp_key_partition(hash, P), or SP_BP_PARTITION_ANY */
	uint32_t route_first;  /* ROUTE: first partition of the requested page */
	uint16_t key_len;
	uint16_t record_len; /* decoder output: bytes of the record (header, key, value) */
	uint8_t opcode;      /* enum sp_bp_op (may be invalid when err is BAD_OPCODE) */
	uint8_t err;         /* enum sp_bp_err: SP_BP_ERR_OK or a per-request reason */
	uint8_t create;      /* incr/decr: create with `initial` when missing */
	uint8_t status;      /* when err != OK: the status to answer with */
};

/* One reply, decoded (client side). */
struct sp_bp_reply {
	const uint8_t *value; /* into the datagram; NULL when value_len == 0 */
	uint64_t cas;         /* the item's version after the operation (0 when none) */
	uint32_t request_id;
	uint32_t flags;
	uint32_t value_len;
	uint8_t status; /* enum sp_bp_status */
	uint8_t opcode; /* echo of the request's opcode; 0 when that opcode was invalid */
};

/* One node of a ROUTE page. Its worker i serves the binary protocol on binary_port + i. */
struct sp_bp_route_node {
	uint32_t node_id;
	uint32_t ipv4_be; /* network byte order, as on the wire */
	uint16_t binary_port;
	uint16_t memcached_port; /* 0: none */
	uint16_t worker_count;   /* 1 .. SP_BP_ROUTE_WORKERS_MAX */
};

/* The routing information a ROUTE reply carries (one page of the map). */
struct sp_bp_route {
	uint64_t epoch;         /* routing epoch: changes whenever the map changes */
	uint32_t partitions;    /* P, a power of two */
	uint32_t first;         /* first partition described by this page */
	uint32_t count;         /* entries in this page (<= sp_bp_route_page_max(node_count)) */
	uint16_t node_count;    /* nodes of the map, 1 .. SP_BP_ROUTE_NODES_MAX */
	uint16_t self;          /* index of the node that answered */
	const uint8_t *nodes;   /* decoder output: node_count records (unaligned) */
	const uint8_t *entries; /* decoder output: count entries (unaligned) */
};

/* Where a WRONG_PARTITION reply says the key's partition lives (as the node knows it). */
struct sp_bp_redirect {
	uint64_t epoch;     /* the answering node's map epoch */
	uint32_t node_id;   /* the owner */
	uint32_t ipv4_be;   /* its dataplane address (network byte order) */
	uint16_t port;      /* the owning worker's binary-protocol port */
	uint16_t worker;    /* the owning worker's index on its node */
	uint32_t partition; /* the key's partition */
};

/* ---- Decoding -------------------------------------------------------------------------- */

/*
 * Validates a request datagram of len bytes and decodes its records into reqs[0..count)
 * (reqs has room for reqs_max; more records is SP_BP_ERR_COUNT_OVER). For each well-framed
 * request, computes the key hash and its partition (partitions must be a power of two; 0
 * means "not partitioned" and leaves partition 0). Returns SP_BP_ERR_OK with *dgram
 * filled, or the datagram-level reason it is malformed (nothing in reqs may be used then).
 * Individually bad requests do not fail the datagram: their err and status fields say how
 * to answer them. Never reads outside buf[0..len), never allocates.
 */
enum sp_bp_err sp_bp_decode_requests(const void *buf, size_t len, uint32_t partitions,
                                     struct sp_bp_req *reqs, uint32_t reqs_max,
                                     struct sp_bp_dgram *dgram);

/*
 * The light decoder, for a request datagram whose requests were all decoded and found
 * well formed before (a share handed to another worker whose ring refused it): checks the
 * framing only (header, record lengths inside len) and fills reqs[i].opcode and
 * request_id (every other field zero, err OK) and *dgram. Enough to answer every request
 * with one status without decoding it again: no key hash, no per-opcode rules. Returns
 * SP_BP_ERR_OK or the datagram-level reason, as sp_bp_decode_requests would.
 */
enum sp_bp_err sp_bp_decode_ids(const void *buf, size_t len, struct sp_bp_req *reqs,
                                uint32_t reqs_max, struct sp_bp_dgram *dgram);

/*
 * Validates a reply datagram and decodes its replies into out[0..count). Returns
 * SP_BP_ERR_OK or the datagram-level reason (same meanings as for requests; a reply with
 * an unknown status or opcode gives SP_BP_ERR_BAD_OPCODE, a non-zero reserved field
 * SP_BP_ERR_BAD_RESERVED, both as datagram errors).
 */
enum sp_bp_err sp_bp_decode_replies(const void *buf, size_t len, struct sp_bp_reply *out,
                                    uint32_t out_max, struct sp_bp_dgram *dgram);

/*
 * Decodes a ROUTE reply value. Returns 0, or -SP_EMALFORMED when the value is not a
 * well-formed route page (short or wrong length, no or too many nodes, self or an entry's
 * node past node_count, a node with no workers or a worker index past its node's count,
 * an empty page or one past P, a non-zero reserved field).
 */
int sp_bp_route_decode(const void *value, uint32_t value_len, struct sp_bp_route *route);

/* Node i (< route->node_count) of a decoded page. */
void sp_bp_route_node_get(const struct sp_bp_route *route, uint32_t i,
                          struct sp_bp_route_node *out);

/* Entry i (< route->count) of a decoded page: the owner's node index and worker. */
void sp_bp_route_entry_get(const struct sp_bp_route *route, uint32_t i, uint16_t *node,
                           uint16_t *worker);

/*
 * Decodes the value of a WRONG_PARTITION reply. Returns 1 with *out filled when it names
 * the owner, 0 when the value is empty (no owner known), -SP_EMALFORMED otherwise.
 */
int sp_bp_redirect_decode(const void *value, uint32_t value_len, struct sp_bp_redirect *out);

/* ---- Building ---------------------------------------------------------------------------- */

/*
 * A datagram under construction in a caller buffer: used for request datagrams (client)
 * and reply datagrams (server). cap is never more than SP_BP_PAYLOAD_MAX.
 */
struct sp_bp_builder {
	uint8_t *buf;
	uint32_t cap;
	uint32_t len;
	uint16_t count;
	uint8_t flags;
};

/*
 * Starts a request (reply = false) or reply (reply = true) datagram in buf. cap is
 * clamped to SP_BP_PAYLOAD_MAX and must be at least SP_BP_DGRAM_HDR_SIZE. Can't fail.
 */
void sp_bp_builder_init(struct sp_bp_builder *b, void *buf, size_t cap, bool reply,
                        uint64_t datagram_id);

/* Sets flag bits (SP_BP_F_FORWARD) on a request datagram under construction. Can't fail. */
void sp_bp_builder_set_flags(struct sp_bp_builder *b, uint8_t flags);

/* Bytes of a request record (header + key + value) as the encoder would write it. */
uint32_t sp_bp_request_size(const struct sp_bp_req *req);

/*
 * Appends one request record. Reads opcode, request_id, key/key_len, value/value_len
 * (set/add/replace), flags, expiry_s, cas, delta/initial/create (incr/decr) and
 * route_first (ROUTE). Returns 0; -SP_EFULL when the record does not fit in the remaining
 * space or the datagram already holds SP_BP_REQS_MAX records (nothing written: finish
 * this datagram and start another); -SP_ETOOBIG for a key over SP_BP_KEY_MAX or a value
 * over SP_BP_VALUE_MAX; -EINVAL for an unknown opcode, an empty key on a key op, or a key
 * on ROUTE.
 */
int sp_bp_add_request(struct sp_bp_builder *b, const struct sp_bp_req *req);

/*
 * Appends a request exactly as it arrived: copies req->record (record_len bytes) when the
 * decoder filled it, which is cheaper than re-encoding (for handing a subset of a datagram
 * to another worker); otherwise encodes it as sp_bp_add_request() does. The copy is the
 * bytes as they arrived: fields changed in *req since decoding are not reflected. The
 * datagram req was decoded from must still be in place. Requests the
 * decoder marked bad are refused with -EINVAL (answer them instead). Returns 0, -SP_EFULL
 * (nothing written) or the errors of sp_bp_add_request().
 */
int sp_bp_add_record(struct sp_bp_builder *b, const struct sp_bp_req *req);

/* True when a reply carrying value_len bytes fits in the builder's remaining space. */
static inline bool
sp_bp_reply_fits(const struct sp_bp_builder *b, uint32_t value_len)
{
	ASSERT(b != NULL);
	ASSERT(b->len <= b->cap);
	if (b->count >= SP_BP_REQS_MAX)
		return false;
	return (uint64_t)SP_BP_REPLY_HDR_SIZE + value_len <= b->cap - b->len;
}

/*
 * Appends a reply header for value_len value bytes and returns where the caller must
 * write them (NULL-safe to ignore when value_len == 0). Returns NULL, writing nothing, when
 * the reply does not fit or the datagram holds SP_BP_REQS_MAX replies: the caller sends
 * what it has and starts a new datagram. Inline: it runs once for every reply.
 */
static inline uint8_t *
sp_bp_add_reply(struct sp_bp_builder *b, uint32_t request_id, uint8_t opcode, uint8_t status,
                uint64_t cas, uint32_t flags, uint32_t value_len)
{
	ASSERT((b->flags & SP_BP_F_REPLY) != 0);
	ASSERT(status < SP_BP_ST_LAST);
	if (!sp_bp_reply_fits(b, value_len))
		return NULL;

	uint8_t *h = b->buf + b->len;
	sp_put_le32(h + SP_BP_RP_ID, request_id);
	h[SP_BP_RP_STATUS] = status;
	/* A request with an invalid opcode is answered with opcode 0 ("none"). */
	h[SP_BP_RP_OPCODE] = (sp_bp_op(opcode)->props & SP_BP_OPF_VALID) != 0 ? opcode : 0;
	h[SP_BP_RP_RESERVED] = 0;
	h[SP_BP_RP_RESERVED + 1] = 0;
	sp_put_le64(h + SP_BP_RP_CAS, cas);
	sp_put_le32(h + SP_BP_RP_FLAGS, flags);
	sp_put_le32(h + SP_BP_RP_VALUE_LEN, value_len);
	b->len += SP_BP_REPLY_HDR_SIZE + value_len;
	b->count++;
	ASSERT(b->len <= b->cap);
	return h + SP_BP_REPLY_HDR_SIZE;
}

/*
 * Writes the record count into the header and returns the datagram's length in bytes
 * (SP_BP_DGRAM_HDR_SIZE when empty: callers send nothing then). Can be called again after
 * more records were added.
 */
uint32_t sp_bp_builder_finish(struct sp_bp_builder *b);

/* Entries a ROUTE page may carry when the map has node_count nodes (it must fit in one
 * reply datagram): SP_BP_ROUTE_PAGE_MAX, or fewer for many nodes; always >= 1. */
uint32_t sp_bp_route_page_max(uint32_t node_count);

/* Size of a ROUTE reply value with node_count nodes and count entries. */
uint32_t sp_bp_route_value_size(uint32_t node_count, uint32_t count);

/* An entry as the wire and owner[] below carry it: node index (low byte), worker (high). */
static inline uint16_t
sp_bp_route_entry(uint16_t node, uint16_t worker)
{
	return (uint16_t)((node & 0xffu) | (worker & 0xffu) << 8);
}

/*
 * Encodes one ROUTE page into out (space for sp_bp_route_value_size(node_count, count)
 * bytes): the head from route (epoch, partitions, first, count, node_count, self; its
 * pointers are ignored), the node_count records of nodes[], and entries first ..
 * first+count-1 of owner[] (route->partitions values made by sp_bp_route_entry()). Can't
 * fail given valid arguments (checked).
 */
void sp_bp_route_encode(uint8_t *out, const struct sp_bp_route *route,
                        const struct sp_bp_route_node *nodes, const uint16_t *owner);

/* Encodes a WRONG_PARTITION value (SP_BP_REDIRECT_SIZE bytes) into out. Can't fail. */
void sp_bp_redirect_encode(uint8_t *out, const struct sp_bp_redirect *r);

/* ---- Names --------------------------------------------------------------------------- */

/* Static lower-case names for logs and counters; never NULL ("unknown" when out of range). */
const char *sp_bp_err_name(enum sp_bp_err err);
const char *sp_bp_status_name(enum sp_bp_status status);
const char *sp_bp_op_name(enum sp_bp_op op);

/* True for opcodes whose request carries a key (the table's SP_BP_OPF_KEY). */
static inline bool
sp_bp_op_has_key(uint8_t op)
{
	return (sp_bp_op(op)->props & SP_BP_OPF_KEY) != 0;
}

#endif
