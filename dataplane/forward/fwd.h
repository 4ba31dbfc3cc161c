/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Forwarding between dataplanes, the pure half: the node-to-node message header and the
 * fixed table of forwarded requests in flight that one worker keeps (docs/cluster.md,
 * "Forwarding"). DPDK-free, allocation-free, no system call: the runtime
 * (dataplane/runtime/forward.c) sends and receives the frames.
 *
 * A forward message is a 32-byte header and then the client's request (REQUEST) or one reply
 * datagram (REPLY). A forward datagram, from the entry node's worker port to the owning
 * worker's binary port (or back), carries one to SP_FWD_BATCH_MAX messages back to back:
 * a worker batches what it sends one peer port within one poll burst. The header names
 * the entry worker's slot and a tag, so a late or forged reply can never complete another
 * request.
 *
 * The table is a FIFO ring of SP_FWD_SLOTS slots: a slot is taken at the tail, released
 * when its replies are in (in any order), and the head advances over released slots; the
 * oldest live slot is the first to time out. A slot released out of order keeps its place
 * until the head passes it, so the table may report full with fewer than SP_FWD_SLOTS
 * requests in flight; "full" is answered busy and counted, never waited for.
 */
#ifndef SP_DATAPLANE_FWD_H
#define SP_DATAPLANE_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/binproto.h"

#define SP_FWD_MAGIC       0x464eu /* bytes 'N' 'F' on the wire */
#define SP_FWD_VERSION     2u      /* 2: several messages per datagram */
#define SP_FWD_HDR_SIZE    32u
#define SP_FWD_PAYLOAD_MAX (SP_BP_PAYLOAD_MAX - SP_FWD_HDR_SIZE) /* 1440 */
/* Messages one forward datagram may carry (the smallest is a bare header). */
#define SP_FWD_BATCH_MAX 32u
/* Forwarded requests one worker keeps in flight. */
#define SP_FWD_SLOTS 256u
/* Binary requests one forwarded datagram carries (as a client datagram). */
#define SP_FWD_REQS_MAX SP_BP_REQS_MAX

enum sp_fwd_kind {
	SP_FWD_REQUEST = 1, /* entry -> owner: a client's request */
	SP_FWD_REPLY = 2,   /* owner -> entry: one reply datagram for the client */
	SP_FWD_REFUSED = 3, /* owner -> entry: not executed; status says why */
};

enum sp_fwd_proto {
	SP_FWD_BINARY = 1,
	SP_FWD_MEMCACHED = 2,
};

/* The header, decoded. */
struct sp_fwd_hdr {
	uint8_t kind;          /* enum sp_fwd_kind */
	uint8_t proto;         /* enum sp_fwd_proto */
	uint8_t status;        /* REFUSED: enum sp_bp_status (WRONG_PARTITION, NOT_SERVING...) */
	uint16_t entry_worker; /* the entry node's worker holding the slot */
	uint16_t payload_len;  /* bytes after the header */
	uint8_t index;         /* REPLY: this datagram's place in the owner's reply, < total */
	uint8_t total;         /* REPLY: datagrams of the owner's reply (>= 1); else 0 */
	uint32_t slot;         /* < SP_FWD_SLOTS */
	uint32_t tag;          /* nonzero; the slot's current tag */
	uint32_t entry_node;   /* the entry node's id */
	uint64_t epoch;        /* the sender's map epoch */
};

/* True when buf (len bytes) starts like a forward message (magic and version). */
bool sp_fwd_is(const uint8_t *buf, size_t len);

/*
 * Decodes and checks a header: magic, version, kind, proto, slot < SP_FWD_SLOTS, tag != 0,
 * payload_len == len - SP_FWD_HDR_SIZE and <= SP_FWD_PAYLOAD_MAX, index < total on a REPLY
 * (both 0 on the others): a datagram of exactly one message.
 * Returns 0 or -SP_EMALFORMED. Never reads outside buf[0, len).
 */
int sp_fwd_decode(const uint8_t *buf, size_t len, struct sp_fwd_hdr *h);

/*
 * The next message of a forward datagram buf[0, len): decodes the header at *off with the
 * checks of sp_fwd_decode except that its payload may end before len, and moves *off past
 * its payload. Returns 1 (a message: its payload at buf + *off - h->payload_len), 0 at the
 * end (*off == len, after at least one message), -SP_EMALFORMED when what is at *off is no
 * message, is cut short, or would be message SP_FWD_BATCH_MAX + 1 (*count counts them;
 * the caller starts it at 0). Never reads outside buf[0, len).
 */
int sp_fwd_next(const uint8_t *buf, size_t len, size_t *off, uint32_t *count, struct sp_fwd_hdr *h);

/* Writes the header (SP_FWD_HDR_SIZE bytes). Can't fail given a valid h (checked). */
void sp_fwd_encode(uint8_t *buf, const struct sp_fwd_hdr *h);

/* Peer ports one worker batches for at once; a ninth sends the fullest batch first. */
#define SP_FWD_BATCH_PEERS 8u

/*
 * A forward datagram being filled, within one poll burst, for one peer port: messages
 * appended back to back, sent when the next does not fit, at SP_FWD_BATCH_MAX messages, or
 * at the end of the burst (no timer: batching adds no latency). frame is the runtime's
 * buffer (an mbuf), opaque here.
 */
struct sp_fwd_batch {
	void *frame;         /* NULL: this entry is free */
	uint32_t peer_ip_be; /* the destination (and its MAC) */
	uint16_t peer_port;  /* host order */
	uint16_t our_port;   /* the source port (host order) */
	uint8_t peer_mac[6];
	uint16_t used;  /* datagram payload bytes so far, <= SP_BP_PAYLOAD_MAX */
	uint16_t count; /* messages so far, <= SP_FWD_BATCH_MAX */
};

/* One forwarded request in flight, as the entry worker remembers it. */
struct sp_fwd_slot {
	uint32_t tag;  /* 0: free */
	uint8_t proto; /* enum sp_fwd_proto */
	uint8_t live;
	uint16_t owner_node;    /* index in the routing table that sent it */
	uint8_t gather;         /* part of a gathered multi-key get: its context + 1 (0: none) */
	uint8_t part;           /* and which part of it */
	uint32_t owner_ip_be;   /* where it went: replies must come from there */
	uint64_t deadline;      /* in the caller's clock */
	uint32_t client_ip_be;  /* where the answer goes */
	uint16_t client_port;   /* host order */
	uint16_t local_port;    /* the port the client sent to (host order) */
	uint8_t client_mac[6];  /* the client frame's source MAC */
	uint16_t mc_request_id; /* memcached: the client's request id */
	uint16_t mc_expect;     /* memcached: reply datagrams expected (0: not known yet) */
	uint16_t mc_got;        /* memcached: reply datagrams relayed */
	uint16_t bp_count;      /* binary: requests forwarded */
	uint32_t bp_pending;    /* binary: bit i set while request i has no reply */
	uint64_t bp_dgram_id;   /* binary: the client's datagram id */
	uint32_t bp_req_id[SP_FWD_REQS_MAX];
	uint8_t bp_opcode[SP_FWD_REQS_MAX];
};

struct sp_fwd_table {
	uint32_t head; /* oldest slot not yet passed (count of slots ever passed) */
	uint32_t tail; /* slots ever taken */
	uint32_t next_tag;
	uint32_t live;
	uint64_t full; /* takes refused: no free slot */
	struct sp_fwd_slot slots[SP_FWD_SLOTS];
};

void sp_fwd_table_init(struct sp_fwd_table *t);

/* Takes a slot (zeroed, live, a fresh nonzero tag, the deadline) or returns NULL (counted
 * in t->full) when none is free. *index receives its index. */
struct sp_fwd_slot *sp_fwd_take(struct sp_fwd_table *t, uint64_t deadline, uint32_t *index);

/* The live slot `index` with tag `tag`, or NULL (unknown, released, or a stale tag). */
struct sp_fwd_slot *sp_fwd_find(struct sp_fwd_table *t, uint32_t index, uint32_t tag);

/* Releases a live slot (its tag stops matching at once). */
void sp_fwd_release(struct sp_fwd_table *t, struct sp_fwd_slot *s);

/* The oldest live slot whose deadline is <= now, or NULL; the caller answers the client
 * and releases it. Advances the head over released slots. */
struct sp_fwd_slot *sp_fwd_expired(struct sp_fwd_table *t, uint64_t now);

/* Every live slot, oldest first, one per call (NULL when none): for answering them all at
 * exit. The caller releases each. */
struct sp_fwd_slot *sp_fwd_oldest(struct sp_fwd_table *t);

/* Checks the table's invariants; for asserts and tests. */
bool sp_fwd_table_valid(const struct sp_fwd_table *t);

#endif
