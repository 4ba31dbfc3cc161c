/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Raft core throughput: committed entries per second of a 3-node cluster held in memory
 * and driven through the core alone (no codec, no storage, no network). One iteration
 * proposes a batch of N entries at the leader and drives the cluster until the batch is
 * committed and applied on the leader; messages are handed straight to their recipients
 * and "persisting" a ready costs nothing. The result is the ceiling the core puts on the
 * control plane, before fsync and the network.
 */
#include <stdio.h>
#include <string.h>

#include "cbench/cbench.h"
#include "common/verify.h"
#include "control/raft/raft.h"

#define BENCH_NODES        3
#define BENCH_PAYLOAD      64      /* bytes per proposed entry */
#define BENCH_COMPACT_LAG  8192    /* compact once applied is this far past the snapshot */
#define BENCH_DRIVE_ROUNDS 1000000 /* bound on ready rounds per drive; hit = a bug */

struct cluster {
	struct raft *nodes[BENCH_NODES];
	uint64_t applied[BENCH_NODES];
	uint64_t snap_index[BENCH_NODES];
};

static struct raft *
node_by_id(struct cluster *c, uint64_t id)
{
	VERIFY(id >= 1 && id <= BENCH_NODES);
	return c->nodes[id - 1];
}

/* Delivers one message straight into its recipient. */
static void
deliver(struct cluster *c, const struct raft_msg *m)
{
	struct raft_event ev = {.type = RAFT_EV_MSG, .msg = m};

	VERIFY(raft_step(node_by_id(c, m->to), &ev) == 0);
}

/* Drains every node's ready until the cluster is quiet. */
static void
drive(struct cluster *c)
{
	for (int round = 0; round < BENCH_DRIVE_ROUNDS; round++) {
		bool any = false;

		for (int i = 0; i < BENCH_NODES; i++) {
			struct raft_ready rd;

			if (!raft_ready_get(c->nodes[i], &rd))
				continue;
			any = true;
			for (size_t k = 0; k < rd.n_msgs; k++)
				deliver(c, &rd.msgs[k]);
			for (size_t k = 0; k < rd.n_msgs_after_persist; k++)
				deliver(c, &rd.msgs_after_persist[k]);
			if (rd.n_committed > 0)
				c->applied[i] = rd.committed[rd.n_committed - 1].index;
			raft_ready_advance(c->nodes[i]);
		}
		if (!any)
			return;
	}
	VERIFY(!"cluster did not go quiet");
}

/* Keeps the in-memory logs bounded the way a driver would: compact behind applied. */
static void
compact(struct cluster *c)
{
	for (int i = 0; i < BENCH_NODES; i++) {
		struct raft_event ev = {.type = RAFT_EV_COMPACT};

		if (c->applied[i] < c->snap_index[i] + BENCH_COMPACT_LAG)
			continue;
		ev.compact.index = c->applied[i];
		VERIFY(raft_step(c->nodes[i], &ev) == 0);
		c->snap_index[i] = c->applied[i];
	}
}

static int
cluster_start(struct cluster *c)
{
	struct raft_membership m = {.n_voters = BENCH_NODES};
	struct raft_event campaign = {.type = RAFT_EV_CAMPAIGN};

	memset(c, 0, sizeof(*c));
	for (int i = 0; i < BENCH_NODES; i++)
		m.voters[i] = (uint64_t)i + 1;
	for (int i = 0; i < BENCH_NODES; i++) {
		struct raft_config cfg;
		int err = 0;

		raft_config_init(&cfg, (uint64_t)i + 1);
		cfg.bootstrap = m;
		cfg.max_uncommitted_bytes = 64u << 20;
		c->nodes[i] = raft_create(&cfg, NULL, &err);
		if (c->nodes[i] == NULL)
			return err;
	}
	VERIFY(raft_step(c->nodes[0], &campaign) == 0);
	drive(c);
	return 0;
}

static void
cluster_stop(struct cluster *c)
{
	for (int i = 0; i < BENCH_NODES; i++)
		raft_destroy(c->nodes[i]);
}

static void
BM_raft_commit(struct cbench_state *st)
{
	static struct raft_entry batch[RAFT_PROPOSE_BATCH_MAX];
	static uint8_t payload[BENCH_PAYLOAD];
	size_t n = (size_t)cbench_range(st, 0);
	struct raft_event ev = {.type = RAFT_EV_PROPOSE};
	struct raft_status rs;
	struct cluster c;
	uint64_t committed = 0;

	if (n == 0 || n > RAFT_PROPOSE_BATCH_MAX) {
		cbench_skip_with_error(st, "batch size out of range 1..RAFT_PROPOSE_BATCH_MAX");
		return;
	}
	memset(payload, 0xab, sizeof(payload));
	for (size_t i = 0; i < n; i++)
		batch[i] = (struct raft_entry){
		        .type = RAFT_ENTRY_NORMAL, .data = payload, .len = sizeof(payload)};
	if (cluster_start(&c) != 0) {
		cbench_skip_with_error(st, "raft_create failed");
		return;
	}
	raft_status(c.nodes[0], &rs);
	if (rs.role != RAFT_LEADER) {
		cluster_stop(&c);
		cbench_skip_with_error(st, "node 1 did not become leader");
		return;
	}
	ev.propose.entries = batch;
	ev.propose.n_entries = n;
	while (cbench_keep_running(st)) {
		uint64_t before = c.applied[0];

		VERIFY(raft_step(c.nodes[0], &ev) == 0);
		drive(&c);
		committed += c.applied[0] - before;
		compact(&c);
	}
	VERIFY(committed == cbench_iterations(st) * n);
	cbench_set_items_processed(st, committed);
	cbench_set_bytes_processed(st, committed * BENCH_PAYLOAD);
	cluster_stop(&c);
}
CBENCH_REGISTER(BM_raft_commit)
{
	cbench_set_range_multiplier(b, 4);
	cbench_add_range(b, 1, 1024); /* 1, 4, 16, 64, 256, 1024 entries per batch */
}
