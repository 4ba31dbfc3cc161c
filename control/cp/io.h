/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Listeners, connections, the authentication handshake, framed sends, and the members we
 * know how to reach. io.c owns all of that (struct cp_io); what an authenticated frame
 * means is not its business: it hands each one to the handler table main.c installed
 * (dispatch.h). It calls no module above it.
 */
#ifndef SP_CP_IO_H
#define SP_CP_IO_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cluster/partmap.h"
#include "common/log.h"
#include "config.h"
#include "dispatch.h"
#include "metrics.h"
#include "raft/raft.h"
#include "transport/frame.h"

/* Connection slots: members and clients have pools of their own, so no number of client
 * connections can keep a member out, nor the reverse. */
#define CP_PEER_CONNS_MAX         (2u * SP_MEMBERS_MAX + 64u) /* in and out, + handshakes */
#define CP_CLIENT_CONNS_MAX       512u
#define CP_CONNS_MAX              (CP_PEER_CONNS_MAX + CP_CLIENT_CONNS_MAX)
#define CP_PREAUTH_PER_SOURCE_MAX 32u /* unauthenticated connections of one address, a pool */
#define CP_SENDQ_BYTES_MAX        (96u << 20) /* queued output per connection before it is dropped */
#define CP_RECONNECT_TICKS        8u          /* 200 ms between connection attempts to a peer */
#define CP_LISTEN_RETRY_MS        50u /* start-up: wait between binds of a port still in use */
#define CP_LISTEN_RETRIES_MAX     60u /* ... for up to 3 s */
#define CP_RECV_CHUNK             65536u
#define CP_RECV_PREAUTH           (2u * (FRAME_HDR + FRAME_PREAUTH_MAX)) /* before auth */
#define CP_SEND_IOV_MAX           64u                                    /* frames in one sendmsg */
#define CP_JSON_MAX               (1u << 20)
#define CP_OP_MAGIC               0x43504f50u

enum cp_op_kind {
	CP_OP_ACCEPT = 1,
	CP_OP_RECV,
	CP_OP_SEND,
	CP_OP_CONNECT,
	CP_OP_TICK, /* main.c's timer */
};

/* user_data of every SQE the process submits itself. */
struct cp_op {
	uint32_t magic;
	uint8_t kind;
	void *owner; /* struct cp_conn * or struct cp_listener *, or main.c's */
};

enum cp_conn_state {
	CP_CS_CONNECTING = 1,
	CP_CS_WAIT_CHALLENGE, /* initiator */
	CP_CS_WAIT_AUTH,      /* acceptor */
	CP_CS_WAIT_AUTH_OK,   /* initiator */
	CP_CS_READY,
	CP_CS_CLOSING,
};

struct cp_sendbuf {
	struct cp_sendbuf *next;
	uint32_t len;
	uint32_t off;
	uint8_t data[];
};

struct cp_io;

struct cp_conn {
	struct cp_io *io;
	int fd;
	uint32_t kind;                /* enum cp_conn_kind */
	uint32_t state;               /* enum cp_conn_state */
	uint64_t peer_id;             /* PEER_*: the member; 0 for clients */
	uint64_t serial;              /* distinguishes reuses of a slot */
	uint64_t opened_ns;           /* accepted or connect started (monotonic) */
	struct cp_conn *next_closing; /* on io->closing once out of the table */
	uint8_t nonce_mine[FRAME_NONCE_LEN];
	uint8_t nonce_peer[FRAME_NONCE_LEN];
	uint8_t *rbuf;
	size_t rlen;
	size_t rcap;
	struct cp_sendbuf *sq_head;
	struct cp_sendbuf *sq_tail;
	uint64_t sq_bytes;
	bool send_inflight;
	bool recv_inflight;
	bool connect_inflight;
	bool told_removed;
	struct sockaddr_in addr;
	struct iovec iov[CP_SEND_IOV_MAX];
	struct msghdr msg;
	struct cp_op op_recv;
	struct cp_op op_send;
	struct cp_op op_connect;
};

struct cp_listener {
	int fd;
	uint32_t kind; /* CP_CONN_PEER_IN or CP_CONN_CLIENT */
	struct cp_op op;
	struct sockaddr_in peer;
	socklen_t peer_len;
};

/* A member we know how to reach (from --initial-cluster or the replicated state). */
struct cp_peer {
	uint64_t id;
	char name[SP_MEMBER_NAME_MAX];
	char addr[CLUSTER_ADDR_MAX];
	struct cp_conn *out; /* our sending connection, or NULL */
	uint64_t out_serial;
	uint32_t retry_ticks;
	uint64_t msgs_sent;
	uint64_t msgs_dropped;
};

struct cp_io {
	const struct cp_config *cfg;
	uint64_t id;
	uint8_t secret[FRAME_SECRET_MAX];
	size_t secret_len;
	struct io_uring *ring;
	struct cp_stats *stats;
	struct cp_io_handlers handlers;
	bool isolated; /* fault switch: no Raft or liveness traffic in or out (SIGUSR1) */

	struct cp_listener lpeer, lclient;
	struct cp_conn *conns[CP_CONNS_MAX]; /* [0, CP_PEER_CONNS_MAX): members' */
	struct cp_conn *closing;             /* out of the table, waiting for their I/O */
	uint64_t conn_serial;
	struct sp_log_limit lim_refused, lim_bad; /* log lines outsiders can cause */
	struct cp_peer peers[SP_MEMBERS_MAX];
	uint32_t n_peers;
	uint64_t removed_ids[RAFT_NODES_MAX]; /* recent removals, told when they call */
	uint32_t n_removed;
};

/* Fills io's fields (no socket yet: peers can be added before cp_io_listen). The secret
 * is copied. Can't fail. */
void cp_io_setup(struct cp_io *io, const struct cp_config *cfg, uint64_t id, const uint8_t *secret,
                 size_t secret_len, struct io_uring *ring, struct cp_stats *stats,
                 const struct cp_io_handlers *handlers);
/* Listens on the peer and client addresses. Returns 0 or a negative errno (logged). */
int cp_io_listen(struct cp_io *io);
void cp_io_fini(struct cp_io *io);
/* Handles the completion of one of io's SQEs (op->magic is CP_OP_MAGIC). */
void cp_io_complete(struct cp_io *io, struct io_uring_cqe *cqe);
/* Once a tick: handshakes past their deadline closed, members reconnected, log counts. */
void cp_io_tick(struct cp_io *io);

/* Checks io's invariants: every connection in the pool of its kind and pointing back at
 * io, closing ones only on the closing list, buffers within their bounds, peer ids unique
 * and not 0. For asserts: main.c checks after every tick in builds with assertions. */
bool cp_io_check_invariants(const struct cp_io *io);

/* Queues one frame (a then b) on c. Returns 0, -EPIPE on a closing connection,
 * -SP_ETOOBIG, -SP_EFULL (c closed: its queue passed its bound) or -ENOMEM. */
int cp_conn_send_frame(struct cp_conn *c, uint8_t type, const void *a, uint32_t alen, const void *b,
                       uint32_t blen);
/* True when c is still the connection it was when serial was taken, and not closing. */
bool cp_conn_alive(const struct cp_io *io, const struct cp_conn *c, uint64_t serial);

/*
 * Sends one frame to member id over our connection to it. Returns 0; -SP_ENOTFOUND for a
 * member we do not know; -EAGAIN with no authenticated connection to it, or while the
 * fault switch is on; else cp_conn_send_frame's error. Counted in the peer's msgs_sent or
 * msgs_dropped.
 */
int cp_io_send_peer(struct cp_io *io, uint64_t id, uint8_t type, const void *buf, uint32_t len);

struct cp_peer *cp_peer_find(struct cp_io *io, uint64_t id);
/* Adds or updates a member's name and address. Returns NULL when the table is full. */
struct cp_peer *cp_peer_upsert(struct cp_io *io, uint64_t id, const char *name, const char *addr);
/* Forgets member id (its connection closed) and remembers it as removed: when it calls,
 * it is told so, once per connection. */
void cp_io_peer_removed(struct cp_io *io, uint64_t id);
/* Member id is added again (a fresh data directory): it is no longer told it was removed. */
void cp_io_peer_readded(struct cp_io *io, uint64_t id);

#endif
