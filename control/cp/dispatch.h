/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where io.c sends an authenticated frame: a route per (connection kind, frame type), and
 * a table of handlers, one per route, that main.c installs. io.c knows no module above it:
 * Raft messages, liveness pings, client requests and "you were removed" notices go to
 * whatever main.c put in the table. Pure: no state, unit-tested on its own.
 */
#ifndef SP_CP_DISPATCH_H
#define SP_CP_DISPATCH_H

#include <stdint.h>

struct cp_conn;

enum cp_conn_kind {
	CP_CONN_PEER_IN = 1, /* a member connected to us; we receive Raft messages */
	CP_CONN_PEER_OUT,    /* we connected to a member; we send Raft messages */
	CP_CONN_CLIENT,      /* shardctl */
	CP_CONN_KIND_END,
};

enum cp_route {
	CP_ROUTE_NONE = 0, /* no such frame on such a connection: it is closed as bad */
	CP_ROUTE_RAFT,     /* PEER_IN, FRAME_RAFT: a Raft message */
	CP_ROUTE_LIVENESS, /* PEER_IN, FRAME_LIVENESS: a ping or an echo */
	CP_ROUTE_REQUEST,  /* CLIENT, FRAME_REQUEST: a JSON request */
	CP_ROUTE_REMOVED,  /* PEER_OUT, FRAME_REMOVED: the member says we were removed */
	CP_ROUTE_COUNT,
};

/* A frame's payload for its handler. c is the connection it came on (a handler may send
 * on it or close it); peer_id the member it authenticated as (0 for a client). */
typedef void cp_frame_handler(void *arg, struct cp_conn *c, uint64_t peer_id,
                              const uint8_t *payload, uint32_t len);

struct cp_io_handlers {
	void *arg;
	cp_frame_handler *on[CP_ROUTE_COUNT]; /* by route; NULL refuses the route's frames */
	/* A connection is being freed: whoever holds it forgets it. May be NULL. */
	void (*conn_closed)(void *arg, struct cp_conn *c);
};

/* The route of a frame of type on a connection of kind (CP_ROUTE_NONE for anything else).
 * Can't fail. */
enum cp_route cp_frame_route(uint32_t conn_kind, uint8_t frame_type);

/*
 * Hands an authenticated frame to the handler of its route. Returns the route taken, or
 * CP_ROUTE_NONE when the frame has no route or its route no handler (nothing was called:
 * the caller closes the connection as a bad frame).
 */
enum cp_route cp_dispatch(const struct cp_io_handlers *h, struct cp_conn *c, uint32_t conn_kind,
                          uint64_t peer_id, uint8_t frame_type, const uint8_t *payload,
                          uint32_t len);

#endif
