/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client API (docs/control-api.md): JSON requests from shardctl, answered from the
 * replicated state or handed to the node, and the requests waiting for a commit or a read.
 * api.c owns the pending requests (struct cp_api); it learns what became of them from the
 * node's outcome queue (cp_api_take_outcomes).
 */
#ifndef SP_CP_API_H
#define SP_CP_API_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "io.h"
#include "liveness.h"
#include "metrics.h"
#include "node.h"
#include "waitq.h"

#define CP_PENDING_MAX           4096u /* client requests waiting for a commit or a read */
#define CP_REQUEST_TIMEOUT_TICKS 400u  /* 10 s for a client request */

enum cp_pending_kind {
	CP_PEND_WRITE = 1, /* waits for (index, term) to be applied */
	CP_PEND_READ,      /* waits for a ReadIndex, then applied >= index */
};

struct cp_pending {
	uint32_t kind;
	struct cp_conn *conn;
	uint64_t conn_serial;
	uint64_t req_id;
	uint64_t index;
	uint64_t term;
	uint64_t read_ctx; /* READ: the ReadIndex context (the token); move-leader: the target */
	uint64_t token;    /* what the node's outcomes name this entry by: serial and slot */
	bool read_ready;
	uint32_t deadline_tick;
	char op[32];
	char arg[CLUSTER_CONFIG_KEY_MAX + 1];
};

struct cp_api {
	const struct cp_config *cfg;
	uint64_t id;
	struct cp_node *node;
	struct cp_io *io;
	struct cp_liveness *lv;
	struct cp_stats *stats;
	uint32_t tick;

	struct cp_pending pending[CP_PENDING_MAX];
	uint32_t n_pending;
	uint64_t pending_serial;       /* tells reuses of a pending slot apart in tokens */
	uint64_t served_applied;       /* the node's applied index when reads were last served */
	struct cp_waitq waitq;         /* writes waiting for their index, smallest first */
	uint8_t *cmd_buf;              /* CLUSTER_CMD_BYTES_MAX: a command being encoded */
	struct sp_map_entry *plan_map; /* SP_PARTITIONS_MAX: partitions.rebalance's plan */
};

/* Sets api up and sizes its buffers. Returns 0 or -ENOMEM. */
int cp_api_init(struct cp_api *api, const struct cp_config *cfg, uint64_t id, struct cp_node *node,
                struct cp_io *io, struct cp_liveness *lv, struct cp_stats *stats);
void cp_api_fini(struct cp_api *api);
/* Serves one request from c: replies, or leaves a pending entry that replies later. */
void cp_api_on_request(struct cp_api *api, struct cp_conn *c, const uint8_t *payload, uint32_t len);
/* Takes the node's outcomes in order and answers the requests they finish, then the reads
 * the applied state now covers. Returns how many outcomes it took. */
uint32_t cp_api_take_outcomes(struct cp_api *api);
/* Once a tick: finished leader transfers answered, requests past their deadline refused. */
void cp_api_tick(struct cp_api *api);
/* Checks the pending table: the count agrees, every entry's token names its own slot, free
 * slots hold no token. For asserts: main.c checks after every tick. */
bool cp_api_check_invariants(const struct cp_api *api);
/* c is being freed: its pending requests get no reply. */
void cp_api_on_conn_closed(struct cp_api *api, struct cp_conn *c);

#endif
