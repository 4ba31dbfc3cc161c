/* SPDX-License-Identifier: BSD-3-Clause */
#include "dispatch.h"
#include "common/verify.h"
#include "transport/frame.h"

enum cp_route
cp_frame_route(uint32_t conn_kind, uint8_t frame_type)
{
	switch (conn_kind) {
	case CP_CONN_PEER_IN:
		if (frame_type == FRAME_RAFT)
			return CP_ROUTE_RAFT;
		if (frame_type == FRAME_LIVENESS)
			return CP_ROUTE_LIVENESS;
		return CP_ROUTE_NONE;
	case CP_CONN_PEER_OUT:
		return frame_type == FRAME_REMOVED ? CP_ROUTE_REMOVED : CP_ROUTE_NONE;
	case CP_CONN_CLIENT:
		return frame_type == FRAME_REQUEST ? CP_ROUTE_REQUEST : CP_ROUTE_NONE;
	default:
		return CP_ROUTE_NONE;
	}
}

enum cp_route
cp_dispatch(const struct cp_io_handlers *h, struct cp_conn *c, uint32_t conn_kind, uint64_t peer_id,
            uint8_t frame_type, const uint8_t *payload, uint32_t len)
{
	ASSERT(h != NULL);
	ASSERT(payload != NULL || len == 0);
	enum cp_route r = cp_frame_route(conn_kind, frame_type);
	if (r == CP_ROUTE_NONE || h->on[r] == NULL)
		return CP_ROUTE_NONE;
	ASSERT(r < CP_ROUTE_COUNT);
	h->on[r](h->arg, c, peer_id, payload, len);
	return r;
}
