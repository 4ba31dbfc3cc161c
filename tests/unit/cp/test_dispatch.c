/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io.c's handler table (control/cp/dispatch.c): every (connection kind, frame type) pair
 * routed, only the four that mean something reach a handler, the handler gets the frame as
 * it came, and a route without a handler is refused like a frame without a route.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"
#include "transport/frame.h"

struct calls {
	uint32_t n[CP_ROUTE_COUNT];
	struct cp_conn *conn;
	uint64_t peer;
	const uint8_t *payload;
	uint32_t len;
	uint32_t closed;
};

static void
record(struct calls *k, enum cp_route r, struct cp_conn *c, uint64_t peer, const uint8_t *p,
       uint32_t len)
{
	k->n[r]++;
	k->conn = c;
	k->peer = peer;
	k->payload = p;
	k->len = len;
}

static void
h_raft(void *arg, struct cp_conn *c, uint64_t peer, const uint8_t *p, uint32_t len)
{
	record(arg, CP_ROUTE_RAFT, c, peer, p, len);
}

static void
h_liveness(void *arg, struct cp_conn *c, uint64_t peer, const uint8_t *p, uint32_t len)
{
	record(arg, CP_ROUTE_LIVENESS, c, peer, p, len);
}

static void
h_request(void *arg, struct cp_conn *c, uint64_t peer, const uint8_t *p, uint32_t len)
{
	record(arg, CP_ROUTE_REQUEST, c, peer, p, len);
}

static void
h_removed(void *arg, struct cp_conn *c, uint64_t peer, const uint8_t *p, uint32_t len)
{
	record(arg, CP_ROUTE_REMOVED, c, peer, p, len);
}

static void
test_routes(void **state)
{
	(void)state;
	uint32_t routed = 0;
	for (uint32_t kind = 0; kind <= CP_CONN_KIND_END; kind++)
		for (uint32_t type = 0; type < 256; type++) {
			enum cp_route r = cp_frame_route(kind, (uint8_t)type);
			enum cp_route want = CP_ROUTE_NONE;
			if (kind == CP_CONN_PEER_IN && type == FRAME_RAFT)
				want = CP_ROUTE_RAFT;
			else if (kind == CP_CONN_PEER_IN && type == FRAME_LIVENESS)
				want = CP_ROUTE_LIVENESS;
			else if (kind == CP_CONN_CLIENT && type == FRAME_REQUEST)
				want = CP_ROUTE_REQUEST;
			else if (kind == CP_CONN_PEER_OUT && type == FRAME_REMOVED)
				want = CP_ROUTE_REMOVED;
			assert_int_equal(r, want);
			routed += r != CP_ROUTE_NONE;
		}
	assert_int_equal(routed, 4);
	/* The handshake's frames never reach a handler, on any connection. */
	for (uint32_t kind = CP_CONN_PEER_IN; kind < CP_CONN_KIND_END; kind++) {
		assert_int_equal(cp_frame_route(kind, FRAME_CHALLENGE), CP_ROUTE_NONE);
		assert_int_equal(cp_frame_route(kind, FRAME_AUTH), CP_ROUTE_NONE);
		assert_int_equal(cp_frame_route(kind, FRAME_AUTH_OK), CP_ROUTE_NONE);
		assert_int_equal(cp_frame_route(kind, FRAME_RESPONSE), CP_ROUTE_NONE);
	}
}

static void
test_dispatch_calls_the_installed_handler(void **state)
{
	(void)state;
	struct calls k = {0};
	struct cp_io_handlers h = {.arg = &k};
	h.on[CP_ROUTE_RAFT] = h_raft;
	h.on[CP_ROUTE_LIVENESS] = h_liveness;
	h.on[CP_ROUTE_REQUEST] = h_request;
	h.on[CP_ROUTE_REMOVED] = h_removed;
	struct cp_conn *conn = (struct cp_conn *)&k; /* only passed through */
	static const uint8_t body[] = {1, 2, 3, 4, 5};

	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_PEER_IN, 42, FRAME_RAFT, body, 5),
	                 CP_ROUTE_RAFT);
	assert_int_equal(k.n[CP_ROUTE_RAFT], 1);
	assert_ptr_equal(k.conn, conn);
	assert_int_equal(k.peer, 42);
	assert_ptr_equal(k.payload, body);
	assert_int_equal(k.len, 5);

	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_PEER_IN, 43, FRAME_LIVENESS, body, 3),
	                 CP_ROUTE_LIVENESS);
	assert_int_equal(k.n[CP_ROUTE_LIVENESS], 1);
	assert_int_equal(k.peer, 43);
	assert_int_equal(k.len, 3);
	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_CLIENT, 0, FRAME_REQUEST, body, 0),
	                 CP_ROUTE_REQUEST);
	assert_int_equal(k.n[CP_ROUTE_REQUEST], 1);
	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_PEER_OUT, 7, FRAME_REMOVED, body, 5),
	                 CP_ROUTE_REMOVED);
	assert_int_equal(k.n[CP_ROUTE_REMOVED], 1);

	/* A frame on the wrong kind of connection reaches nobody. */
	struct calls before = k;
	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_CLIENT, 0, FRAME_RAFT, body, 5),
	                 CP_ROUTE_NONE);
	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_PEER_OUT, 7, FRAME_REQUEST, body, 5),
	                 CP_ROUTE_NONE);
	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_PEER_IN, 7, FRAME_REMOVED, body, 5),
	                 CP_ROUTE_NONE);
	assert_memory_equal(k.n, before.n, sizeof(k.n));

	/* A route whose handler main.c did not install is refused as well. */
	h.on[CP_ROUTE_LIVENESS] = NULL;
	assert_int_equal(cp_dispatch(&h, conn, CP_CONN_PEER_IN, 43, FRAME_LIVENESS, body, 3),
	                 CP_ROUTE_NONE);
	assert_int_equal(k.n[CP_ROUTE_LIVENESS], 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_routes),
	        cmocka_unit_test(test_dispatch_calls_the_installed_handler),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
