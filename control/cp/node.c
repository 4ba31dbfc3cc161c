/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "addr.h"
#include "node.h"
#include "storage/boot_record.h"

#define MOD                 "cp"
#define SNAP_MAGIC          0x4e535053u /* "SPSN" */
#define SNAP_HDR            (4u + (uint32_t)sizeof(struct raft_membership))
#define REMOVED_GRACE_TICKS 40u /* 1 s for a removal to reach the others */
#define PROMOTE_LAG_MAX     8u  /* a learner this close to the leader's log is promoted */

/* Sends one Raft message to its member, if we have a connection to it (io.c counts what
 * it drops; Raft retries, so a lost message is never a correctness problem). */
static void
send_msg(struct cp_node *node, const struct raft_msg *m)
{
	ASSERT(m->to != node->id);
	int len = raft_msg_encode(m, node->send_buf, node->send_cap);
	if (len < 0) {
		SP_LOG_WARN(MOD, "cannot encode %s to %" PRIu64 ": %s", raft_msg_type_name(m->type),
		            m->to, sp_strerror(len));
		return;
	}
	ASSERT((size_t)len <= node->send_cap);
	cp_io_send_peer(node->io, m->to, FRAME_RAFT, node->send_buf, (uint32_t)len);
}

/* Applies an internally built command (membership mirroring); returns its status. */
static int
apply_cmd(struct cp_node *node, const struct cluster_cmd *cmd)
{
	ASSERT(cmd->type == CLUSTER_CMD_MEMBER_ROLE || cmd->type == CLUSTER_CMD_MEMBER_REMOVE);
	int n = cluster_cmd_encode(cmd, node->cmd_buf, CLUSTER_CMD_BYTES_MAX);
	VERIFY(n > 0);
	return cluster_sm_apply(node->sm, node->cmd_buf, (size_t)n, NULL);
}

static void
apply_conf(struct cp_node *node, const struct raft_entry *e)
{
	struct raft_conf_change cc;
	struct cluster_cmd cmd = {0};
	ASSERT(e->type == RAFT_ENTRY_CONF);
	if (raft_conf_change_decode(e->data, e->len, &cc))
		return; /* the core checked it when it was proposed; nothing to mirror */
	cmd.member.id = cc.node_id;
	switch (cc.op) {
	case RAFT_CONF_ADD_LEARNER:
		/* A removed name added again (with a fresh data directory) is a member: it
		 * must not be told it was removed when it calls. */
		cp_io_peer_readded(node->io, cc.node_id);
		/* fall through */
	case RAFT_CONF_PROMOTE:
		cmd.type = CLUSTER_CMD_MEMBER_ROLE;
		cmd.member.voter = cc.op == RAFT_CONF_PROMOTE;
		apply_cmd(node, &cmd);
		break;
	case RAFT_CONF_REMOVE:
		cmd.type = CLUSTER_CMD_MEMBER_REMOVE;
		apply_cmd(node, &cmd);
		if (cc.node_id != node->id)
			cp_io_peer_removed(node->io, cc.node_id);
		break;
	default:
		break;
	}
}

static void
apply_entry(struct cp_node *node, const struct raft_entry *e)
{
	int status = 0;
	ASSERT(node->ready_inflight);
	ASSERT(e->term != 0);
	if (e->index <= node->applied)
		return;                        /* already in the snapshot we restored */
	ASSERT(e->index == node->applied + 1); /* in order, none skipped */
	ASSERT(e->term >= node->applied_term);
	if (e->type == RAFT_ENTRY_NORMAL) {
		struct cluster_cmd cmd; /* decoded once, by the apply */
		status = cluster_sm_apply(node->sm, e->data, e->len, &cmd);
		if (status == 0 && cmd.type == CLUSTER_CMD_MEMBER_UPSERT &&
		    cmd.member.id != node->id)
			cp_peer_upsert(node->io, cmd.member.id, cmd.member.name,
			               cmd.member.peer_addr);
	} else if (e->type == RAFT_ENTRY_CONF) {
		apply_conf(node, e);
	}
	node->applied = e->index;
	node->applied_term = e->term;
	ASSERT(cp_outq_room(&node->outq) > 0);
	struct cp_outcome o = {
	        .kind = CP_OUT_APPLIED, .status = status, .index = e->index, .term = e->term};
	cp_outq_push(&node->outq, &o); /* finish_ready made room for every entry */
}

static int
snapshot_image(struct cp_node *node, uint8_t **out, size_t *len)
{
	uint8_t *sm_img;
	size_t sm_len;
	struct raft_status st;
	ASSERT(out != NULL);
	ASSERT(len != NULL);
	int err = cluster_sm_snapshot(node->sm, &sm_img, &sm_len);
	if (err)
		return err;
	uint8_t *img = malloc(SNAP_HDR + sm_len);
	if (img == NULL) {
		free(sm_img);
		return -ENOMEM;
	}
	raft_status(node->raft, &st);
	uint32_t magic = SNAP_MAGIC;
	memcpy(img, &magic, 4);
	memcpy(img + 4, &st.membership, sizeof(st.membership));
	memcpy(img + SNAP_HDR, sm_img, sm_len);
	free(sm_img);
	*out = img;
	*len = SNAP_HDR + sm_len;
	return 0;
}

/* Splits a snapshot image into the Raft membership and the state machine's image. */
static int
snapshot_parse(const uint8_t *img, size_t len, struct raft_membership *m)
{
	uint32_t magic;
	if (len < SNAP_HDR)
		return -SP_ECORRUPT;
	memcpy(&magic, img, 4);
	if (magic != SNAP_MAGIC)
		return -SP_ECORRUPT;
	memcpy(m, img + 4, sizeof(*m));
	if (m->n_voters > RAFT_NODES_MAX || m->n_learners > RAFT_NODES_MAX)
		return -SP_ECORRUPT;
	ASSERT(len >= SNAP_HDR); /* the state's image follows the header */
	return 0;
}

static void
maybe_snapshot(struct cp_node *node, bool force)
{
	if (node->applied < node->snap_index + (force ? 1 : node->cfg->snapshot_entries))
		return;
	uint8_t *img;
	size_t len;
	if (snapshot_image(node, &img, &len))
		return;
	ASSERT(len > SNAP_HDR);
	ASSERT(node->applied > node->snap_index);
	int err = log_store_save_snapshot(node->log, node->applied, node->applied_term, img,
	                                  (uint32_t)len);
	if (err == 0) {
		struct raft_event ev = {.type = RAFT_EV_COMPACT};
		ev.compact.index = node->applied;
		ev.compact.data = img;
		ev.compact.len = len;
		raft_step(node->raft, &ev);
		node->snap_index = node->applied;
		node->snap_term = node->applied_term;
		SP_LOG_INFO(MOD, "snapshot at %" PRIu64 " (%zu bytes); log compacted",
		            node->applied, len);
	}
	free(img);
}

static void
publish_region(struct cp_node *node)
{
	if (node->region == NULL || node->sm->epoch == 0)
		return;
	ASSERT(node->region_state != NULL);
	ASSERT(node->sm->partitions != 0); /* a map has partitions */
	uint64_t digest = node->sm->n_members;
	for (uint32_t i = 0; i < node->sm->n_members; i++)
		digest = digest * 31 + node->sm->members[i].id + node->sm->members[i].dp_known +
		         node->sm->members[i].voter * 7;
	if (node->sm->epoch == node->region_published_epoch &&
	    digest == node->region_published_members)
		return;
	if (cluster_sm_member(node->sm, node->id) == NULL ||
	    !cluster_sm_member(node->sm, node->id)->dp_known)
		return; /* the region describes this node's dataplane: it must be in the map */
	char why[SP_CLUSTER_WHY_MAX];
	int err = cluster_sm_to_region_state(node->sm, node->id, node->region_state);
	if (err == 0)
		err = sp_region_publish(node->region, node->region_state, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", sp_strerror(err));
	if (err) {
		SP_LOG_WARN(MOD, "shared region not updated: %s", why);
		return;
	}
	node->region_published_epoch = node->sm->epoch;
	node->region_published_members = digest;
	SP_LOG_INFO(MOD, "published epoch %" PRIu64 " to %s", node->sm->epoch,
	            node->cfg->state_region);
}

static bool step_deferred(struct cp_node *node);

/* Outcome slots the second half of the ready in flight pushes: one per applied entry and
 * one per read. */
static uint32_t
ready_outcomes(const struct cp_node *node)
{
	ASSERT(node->rd.n_committed <= RAFT_READY_APPLY_MAX);
	ASSERT(node->rd.n_reads <= RAFT_READS_PENDING_MAX);
	return (uint32_t)(node->rd.n_committed + node->rd.n_reads);
}

/* The second half of a ready: after its entries and hard state are durable, and with room
 * in the outcome queue for everything it reports. */
static void
finish_ready(struct cp_node *node)
{
	struct raft_ready *rd = &node->rd;
	ASSERT(node->ready_inflight);
	ASSERT(node->rd_durable);
	VERIFY(cp_outq_room(&node->outq) >= ready_outcomes(node));

	for (size_t i = 0; i < rd->n_msgs_after_persist; i++)
		send_msg(node, &rd->msgs_after_persist[i]);
	if (rd->snapshot) {
		struct raft_membership m;
		const uint8_t *img = rd->snapshot->data;
		if (snapshot_parse(img, rd->snapshot->len, &m) == 0 &&
		    cluster_sm_restore(node->sm, img + SNAP_HDR, rd->snapshot->len - SNAP_HDR) ==
		            0) {
			node->applied = rd->snapshot->meta.index;
			node->applied_term = rd->snapshot->meta.term;
			node->snap_index = node->applied;
			for (uint32_t i = 0; i < node->sm->n_members; i++) {
				const struct cluster_member *mm = &node->sm->members[i];
				if (mm->id != node->id)
					cp_peer_upsert(node->io, mm->id, mm->name, mm->peer_addr);
			}
			SP_LOG_INFO(MOD, "installed snapshot at %" PRIu64, node->applied);
		} else {
			SP_LOG_ERR(MOD, "received snapshot at %" PRIu64 " is corrupt; stopping",
			           rd->snapshot->meta.index);
			node->fatal = -SP_ECORRUPT;
			node->stopping = true;
		}
	}
	for (size_t i = 0; i < rd->n_committed; i++)
		apply_entry(node, &rd->committed[i]);
	for (size_t i = 0; i < rd->n_reads; i++) {
		struct cp_outcome o = {.kind = CP_OUT_READ_READY,
		                       .status = rd->reads[i].status,
		                       .index = rd->reads[i].index,
		                       .ctx = rd->reads[i].ctx};
		cp_outq_push(&node->outq, &o);
	}
	raft_ready_advance(node->raft);
	node->ready_inflight = false;
	node->rd_durable = false;
	ASSERT(node->applied >= node->snap_index);
	publish_region(node);
	maybe_snapshot(node, false);
}

void
cp_node_on_durable(void *arg, uint64_t seq, int err)
{
	struct cp_node *node = arg;
	if (err) {
		SP_LOG_ERR(MOD,
		           "storage failed in %s: %s; this member stops (no entry is "
		           "acknowledged that is not on disk)",
		           node->cfg->data_dir, sp_strerror(err));
		node->fatal = err;
		node->stopping = true;
		return;
	}
	if (node->fsync_started_ns) {
		cp_metrics_fsync_done(node->stats, sp_mono_ns() - node->fsync_started_ns);
		node->fsync_started_ns = 0;
	}
	if (node->ready_inflight && !node->rd_durable && (int64_t)seq >= node->rd_seq) {
		node->hs_synced = node->hs_pending;
		node->rd_durable = true;
		cp_node_drive(node); /* finishes it when its outcomes fit */
	}
}

bool
cp_node_drive(struct cp_node *node)
{
	if (node->ready_inflight && node->rd_durable) {
		if (cp_outq_room(&node->outq) < ready_outcomes(node))
			return true; /* the API drains the queue first */
		finish_ready(node);
	}
	for (int guard = 0; guard < 1000 && !node->ready_inflight && !node->stopping; guard++) {
		if (step_deferred(node))
			return true;
		if (node->ready_inflight || !raft_ready_get(node->raft, &node->rd))
			return false;
		struct raft_ready *rd = &node->rd;
		for (size_t i = 0; i < rd->n_msgs; i++)
			send_msg(node, &rd->msgs[i]);
		if (rd->snapshot) {
			int err = log_store_save_snapshot(
			        node->log, rd->snapshot->meta.index, rd->snapshot->meta.term,
			        rd->snapshot->data, (uint32_t)rd->snapshot->len);
			if (err) {
				cp_node_on_durable(node, 0, err);
				return false;
			}
		}
		/* Only entries and term/vote must be on disk before going on. A commit index
		 * that moved is never written by itself: it rides along with the next entries
		 * (it only saves replay work at a restart). Written alone it cost an fsync per
		 * commit, and the next entries' write waited behind it. */
		bool hs_sync =
		        rd->hard_state_changed && (rd->hard_state.term != node->hs_synced.term ||
		                                   rd->hard_state.vote != node->hs_synced.vote);
		if (rd->n_entries || hs_sync) {
			/* A ready may hold more entries than one append takes (every proposal
			 * that waited for the last write, a follower's catch-up): they go in
			 * chunks, the hard state with the last; one flush writes them all. */
			struct log_entry *ents = node->ents;
			struct log_hard_state hs = {rd->hard_state.term, rd->hard_state.vote,
			                            rd->hard_state.commit};
			size_t done = 0;
			int64_t seq;
			do {
				size_t n =
				        SP_MIN(rd->n_entries - done, (size_t)CP_READY_ENTRIES_MAX);
				for (size_t i = 0; i < n; i++)
					ents[i] = (struct log_entry){
					        .index = rd->entries[done + i].index,
					        .term = rd->entries[done + i].term,
					        .type = (uint8_t)rd->entries[done + i].type,
					        .len = rd->entries[done + i].len,
					        .data = rd->entries[done + i].data,
					};
				done += n;
				seq = log_store_append(node->log, ents, n,
				                       done == rd->n_entries ? &hs : NULL);
			} while (seq > 0 && done < rd->n_entries);
			if (seq < 0) {
				cp_node_on_durable(node, 0, (int)seq);
				return false;
			}
			ASSERT(done == rd->n_entries);
			node->ready_inflight = true;
			node->rd_durable = false;
			node->rd_seq = seq;
			node->hs_pending = rd->hard_state;
			node->fsync_started_ns = sp_mono_ns();
			log_store_flush(node->log);
			return false; /* continues in cp_node_on_durable */
		}
		node->ready_inflight = true;
		node->rd_durable = true; /* nothing to wait for */
		if (cp_outq_room(&node->outq) < ready_outcomes(node))
			return true;
		finish_ready(node);
	}
	return false;
}

/* Tells the submitter (token, when not 0) what Raft said to its submission. */
static void
report_submitted(struct cp_node *node, uint64_t token, int err, uint64_t index, uint64_t term)
{
	if (token == 0)
		return;
	ASSERT(err <= 0);
	ASSERT(cp_outq_room(&node->outq) > 0);
	struct cp_outcome o = {.kind = CP_OUT_SUBMITTED,
	                       .status = err,
	                       .token = token,
	                       .index = err ? 0 : index,
	                       .term = err ? 0 : term};
	cp_outq_push(&node->outq, &o); /* the caller made room */
}

/* Steps one submission now; reports its outcome when token is not 0 (the caller made room
 * for it in the outcome queue). */
static void
step_now(struct cp_node *node, uint32_t kind, uint64_t arg, const uint8_t *data, uint32_t len,
         uint64_t token)
{
	ASSERT(token == 0 || cp_outq_room(&node->outq) > 0);
	ASSERT(!node->ready_inflight);
	struct raft_event ev = {0};
	struct raft_propose_result res = {0};
	struct raft_entry ent = {.type = RAFT_ENTRY_NORMAL, .len = len, .data = data};
	struct raft_msg msg;
	int err;

	switch (kind) {
	case CP_SUB_MSG:
		err = raft_msg_decode(data, len, &msg, node->msg_entries, RAFT_MSG_ENTRIES_MAX);
		if (err == 0) {
			if (msg.to != node->id)
				return;
			ev.type = RAFT_EV_MSG;
			ev.msg = &msg;
			raft_step(node->raft, &ev);
		} else {
			cp_stats_add(node->stats, &node->stats->m.frames_bad, 1);
		}
		return;
	case CP_SUB_PROPOSE:
		ev.type = RAFT_EV_PROPOSE;
		ev.propose.entries = &ent;
		ev.propose.n_entries = 1;
		ev.propose.result = &res;
		break;
	case CP_SUB_CONF:
		ev.type = RAFT_EV_CONF_CHANGE;
		err = raft_conf_change_decode(data, len, &ev.conf.change);
		if (err) {
			report_submitted(node, token, err, 0, 0);
			return;
		}
		/* A new member learns the membership (the bootstrap voters included) from a
		 * snapshot: compact first, so the leader sends it one instead of the log. */
		if (ev.conf.change.op == RAFT_CONF_ADD_LEARNER)
			maybe_snapshot(node, true);
		ev.conf.result = &res;
		break;
	case CP_SUB_READ:
		ev.type = RAFT_EV_READ_INDEX;
		ev.read.ctx = arg;
		break;
	case CP_SUB_TRANSFER:
		ev.type = RAFT_EV_TRANSFER;
		ev.transfer.target = arg;
		break;
	default:
		return;
	}
	err = raft_step(node->raft, &ev);
	if (kind == CP_SUB_PROPOSE) {
		cp_stats_add(node->stats, &node->stats->m.proposals_total, 1);
		if (err)
			cp_stats_add(node->stats, &node->stats->m.proposals_failed, 1);
	}
	report_submitted(node, token, err, res.first_index, res.term);
}

/*
 * Steps the ticks owed and what waits in the submission area, oldest first; consecutive
 * proposals go to Raft as one batch (one append per follower). Returns true when it
 * stopped for lack of room in the outcome queue (the rest waits, in order).
 */
static bool
step_deferred(struct cp_node *node)
{
	struct raft_entry *batch = node->batch;
	ASSERT(batch != NULL);
	ASSERT(!node->rd_durable || node->ready_inflight);

	while (node->ticks_owed && !node->ready_inflight) {
		struct raft_event ev = {.type = RAFT_EV_TICK};
		raft_step(node->raft, &ev);
		node->ticks_owed--;
	}
	while (node->subq.n > 0) {
		const struct cp_sub *d = cp_subq_peek(&node->subq, 0);
		uint32_t room = cp_outq_room(&node->outq);
		if (d->kind != CP_SUB_PROPOSE) {
			if (d->token != 0 && room == 0)
				return true;
			step_now(node, d->kind, d->arg, d->data, d->len, d->token);
			cp_subq_pop(&node->subq);
			continue;
		}
		uint32_t n = 0;
		while (n < node->subq.n && n < RAFT_PROPOSE_BATCH_MAX && n < room) {
			const struct cp_sub *p = cp_subq_peek(&node->subq, n);
			if (p->kind != CP_SUB_PROPOSE)
				break;
			batch[n++] = (struct raft_entry){
			        .type = RAFT_ENTRY_NORMAL, .len = p->len, .data = p->data};
		}
		if (n == 0)
			return true;
		struct raft_propose_result res = {0};
		struct raft_event ev = {.type = RAFT_EV_PROPOSE};
		ev.propose.entries = batch;
		ev.propose.n_entries = n;
		ev.propose.result = &res;
		int err = raft_step(node->raft, &ev);
		cp_stats_add(node->stats, &node->stats->m.proposals_total, n);
		if (err)
			cp_stats_add(node->stats, &node->stats->m.proposals_failed, n);
		for (uint32_t k = 0; k < n; k++) {
			const struct cp_sub *p = cp_subq_peek(&node->subq, 0);
			report_submitted(node, p->token, err,
			                 res.first_index ? res.first_index + k : 0, res.term);
			cp_subq_pop(&node->subq);
		}
	}
	ASSERT(node->subq.used == 0);
	return false;
}

int
cp_node_submit(struct cp_node *node, uint32_t kind, uint64_t arg, const void *data, uint32_t len,
               uint64_t token)
{
	ASSERT(kind >= CP_SUB_MSG && kind <= CP_SUB_TRANSFER);
	ASSERT(data != NULL || len == 0);
	/* Stepped at once when nothing is written and nothing older waits; else in order. */
	if (!node->ready_inflight && !step_deferred(node) && node->subq.n == 0 &&
	    (token == 0 || cp_outq_room(&node->outq) > 0)) {
		step_now(node, kind, arg, data, len, token);
		return 0;
	}
	int err = cp_subq_push(&node->subq, kind, arg, data, len, token);
	if (err) {
		cp_stats_add(node->stats, &node->stats->m.submit_busy, 1);
		uint64_t busy = node->subq.refused_subs + node->subq.refused_bytes;
		if (busy % 1000 == 1)
			SP_LOG_WARN(
			        MOD,
			        "submission area full (%u submissions, %zu of %zu bytes wait for "
			        "a write to disk): refused %" PRIu64 " so far",
			        node->subq.n, node->subq.used, node->subq.bytes_max, busy);
	}
	return err;
}

void
cp_node_on_raft_frame(struct cp_node *node, const uint8_t *buf, uint32_t len)
{
	ASSERT(buf != NULL || len == 0);
	if (node->io->isolated)
		return;
	if (cp_node_submit(node, CP_SUB_MSG, 0, buf, len, 0))
		return; /* dropped while the queue is full; Raft retransmits */
}

void
cp_node_status(const struct cp_node *node, struct raft_status *st)
{
	ASSERT(node->raft != NULL);
	raft_status(node->raft, st);
}

static bool
member_needs_upsert(struct cp_node *node)
{
	ASSERT(node->cfg->name[0] != '\0');
	const struct cluster_member *m = cluster_sm_member(node->sm, node->id);
	if (m == NULL)
		return true;
	return strcmp(m->client_addr, node->cfg->advertise_client) != 0 ||
	       strcmp(m->peer_addr, node->cfg->listen_peer) != 0 ||
	       strcmp(m->name, node->cfg->name);
}

/*
 * This node's dataplane as the cluster should know it: from its heartbeat when a live
 * dataplane reports through the region (so no second flag has to agree with it by hand),
 * otherwise from the --dp-* flags. Returns false when there is nothing to report.
 */
static bool
dp_fields(const struct cp_node *node, const struct health_report *r, struct cluster_member *out)
{
	ASSERT(r != NULL);
	ASSERT(out != NULL);
	if (r->has_region && r->dp_alive && r->workers >= 1 && r->workers <= SP_WORKERS_MAX &&
	    r->ipv4_be != 0) {
		out->ipv4_be = r->ipv4_be;
		memcpy(out->mac, r->mac, 6);
		out->binary_port = r->binary_port;
		out->memcached_port = r->memcached_port;
		out->workers = (uint16_t)r->workers;
		return true;
	}
	if (!node->cfg->dp_set)
		return false;
	out->ipv4_be = node->cfg->dp_ipv4_be;
	memcpy(out->mac, node->cfg->dp_mac, 6);
	out->binary_port = node->cfg->dp_port;
	out->memcached_port = node->cfg->dp_memcached_port;
	out->workers = node->cfg->dp_workers;
	return true;
}

static bool
member_needs_dp(const struct cp_node *node, const struct health_report *self,
                struct cluster_member *want)
{
	const struct cluster_member *m = cluster_sm_member(node->sm, node->id);
	if (m == NULL || !dp_fields(node, self, want))
		return false;
	if (m->dp_known && self->has_region && !self->dp_alive)
		return false; /* keep what is known while the dataplane is away */
	return !m->dp_known || m->ipv4_be != want->ipv4_be || memcmp(m->mac, want->mac, 6) ||
	       m->binary_port != want->binary_port || m->memcached_port != want->memcached_port ||
	       m->workers != want->workers;
}

static void
propose_cmd(struct cp_node *node, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, node->cmd_buf, CLUSTER_CMD_BYTES_MAX);
	ASSERT(n > 0); /* the node builds only commands that encode */
	if (n > 0)
		cp_node_submit(node, CP_SUB_PROPOSE, 0, node->cmd_buf, (uint32_t)n, 0);
}

/* This member's own record: its name and addresses, then its dataplane. A follower cannot
 * see its proposal on the way, so the same one is proposed again only after
 * CP_DUTY_RETRY_TICKS; the next one goes as soon as the previous is applied here. */
static void
own_duties(struct cp_node *node, const struct health_report *self)
{
	struct cluster_cmd cmd = {0};
	if (member_needs_upsert(node)) {
		cmd.type = CLUSTER_CMD_MEMBER_UPSERT;
		cmd.member.id = node->id;
		snprintf(cmd.member.name, sizeof(cmd.member.name), "%s", node->cfg->name);
		snprintf(cmd.member.peer_addr, sizeof(cmd.member.peer_addr), "%s",
		         node->cfg->listen_peer);
		snprintf(cmd.member.client_addr, sizeof(cmd.member.client_addr), "%s",
		         node->cfg->advertise_client);
	} else if (member_needs_dp(node, self, &cmd.member)) {
		cmd.type = CLUSTER_CMD_MEMBER_DP;
		cmd.member.id = node->id;
	} else {
		return;
	}
	if (cmd.type == node->duty_type && node->tick < node->duty_tick)
		return;
	propose_cmd(node, &cmd);
	node->duty_type = cmd.type;
	node->duty_tick = node->tick + CP_DUTY_RETRY_TICKS;
}

/* The leader's duties, on committed state; returns true when it proposed one. */
static bool
leader_duties(struct cp_node *node, const struct raft_status *st)
{
	struct cluster_cmd cmd;
	if (node->sm->partitions == 0) {
		cmd = (struct cluster_cmd){.type = CLUSTER_CMD_INIT,
		                           .partitions = node->cfg->partitions};
		propose_cmd(node, &cmd);
		return true;
	}
	/* Keep the replicated roles in step with Raft's membership (bootstrap voters never
	 * went through a conf change). */
	bool roles_fixed = false;
	for (uint32_t i = 0; i < node->sm->n_members; i++) {
		const struct cluster_member *m = &node->sm->members[i];
		bool voter = raft_membership_is_voter(&st->membership, m->id);
		if (m->voter != voter && raft_membership_contains(&st->membership, m->id)) {
			cmd = (struct cluster_cmd){.type = CLUSTER_CMD_MEMBER_ROLE};
			cmd.member.id = m->id;
			cmd.member.voter = voter;
			propose_cmd(node, &cmd);
			roles_fixed = true;
		}
	}
	if (roles_fixed)
		return true;
	/* Maps (failover, joins, rebalances) are liveness duties, run every tick. */
	/* Promote a learner that has caught up. */
	for (uint32_t i = 0; i < st->n_progress && !st->conf_pending; i++) {
		const struct raft_progress *p = &st->progress[i];
		if (!p->voter && p->match + PROMOTE_LAG_MAX >= st->last_index && p->match > 0) {
			struct raft_conf_change cc = {.op = RAFT_CONF_PROMOTE, .node_id = p->id};
			uint8_t b[RAFT_CONF_CHANGE_BYTES];
			raft_conf_change_encode(&cc, b);
			SP_LOG_INFO(MOD,
			            "promoting learner %" PRIu64 " (match %" PRIu64 " of %" PRIu64
			            ")",
			            p->id, p->match, st->last_index);
			cp_node_submit(node, CP_SUB_CONF, 0, b, sizeof(b), 0);
			return true;
		}
	}
	return false;
}

void
cp_node_duties(struct cp_node *node, const struct health_report *self)
{
	ASSERT(self != NULL);
	if (node->ready_inflight)
		return; /* proposals would only wait in the submission area */
	struct raft_status st;
	raft_status(node->raft, &st);
	if (st.leader_id == 0)
		return;
	own_duties(node, self);
	if (st.role != RAFT_LEADER || node->ready_inflight || node->subq.n != 0)
		return; /* leader duties only with every earlier proposal in the log */
	raft_status(node->raft, &st); /* with this member's own proposal, if it made one */
	if (st.commit < st.last_index)
		return; /* the leader acts on committed state only */
	/* A leader's proposal reaches its log at once, so each duty follows the previous one
	 * as soon as that commits (a bootstrap settles in a few round trips). One that never
	 * reached the log (leadership moving away) is tried again after CP_DUTY_RETRY_TICKS. */
	if (node->tick < node->lead_duty_tick && st.last_index <= node->lead_duty_index)
		return;
	if (leader_duties(node, &st)) {
		node->lead_duty_tick = node->tick + CP_DUTY_RETRY_TICKS;
		node->lead_duty_index = st.last_index;
	}
}

/* A member whose removal is in its log stops shortly after (the leader no longer talks to
 * it, so it may never see the removal committed). */
static void
check_removed(struct cp_node *node)
{
	struct raft_status st;
	raft_status(node->raft, &st);
	ASSERT(st.id == node->id);
	bool member = raft_membership_contains(&st.membership, node->id);
	if (member) {
		node->was_member = true;
		node->removed_tick = 0;
		return;
	}
	if (!node->was_member)
		return; /* a joining member before it hears from the leader */
	if (node->removed_tick == 0) {
		node->removed_tick = node->tick + REMOVED_GRACE_TICKS;
		SP_LOG_WARN(MOD, "this member was removed from the cluster; stopping");
	} else if (node->tick >= node->removed_tick) {
		node->stopping = true;
	}
}

void
cp_node_tick(struct cp_node *node)
{
	ASSERT(node->raft != NULL);
	ASSERT(node->ticks_owed < UINT32_MAX);
	node->tick++;
	check_removed(node);
}

void
cp_node_raft_tick(struct cp_node *node)
{
	ASSERT(node->ticks_owed < UINT32_MAX);
	node->ticks_owed++;
	if (!node->ready_inflight)
		step_deferred(node);
}

/* Parses --initial-cluster "n1=host:port,n2=host:port" into a bootstrap record. */
static int
parse_initial_cluster(struct cp_node *node, struct boot_record *b)
{
	char buf[sizeof(node->cfg->initial_cluster)];
	char *save = NULL;
	bool self_found = false;

	memset(b, 0, sizeof(*b));
	snprintf(b->self, sizeof(b->self), "%s", node->cfg->name);
	snprintf(buf, sizeof(buf), "%s", node->cfg->initial_cluster);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		struct sockaddr_in sa;
		if (eq == NULL || eq == tok || (size_t)(eq - tok) >= SP_MEMBER_NAME_MAX ||
		    strlen(eq + 1) >= BOOT_ADDR_MAX || cp_parse_addr(eq + 1, &sa)) {
			SP_LOG_ERR(MOD, "--initial-cluster: '%s' is not NAME=IPv4:PORT", tok);
			return -EINVAL;
		}
		*eq = '\0';
		uint64_t id = cp_member_id(tok);
		for (uint32_t i = 0; i < b->n; i++)
			if (b->members[i].id == id) {
				SP_LOG_ERR(MOD, "--initial-cluster: member '%s' appears twice",
				           tok);
				return -EINVAL;
			}
		if (b->n == RAFT_NODES_MAX) {
			SP_LOG_ERR(MOD, "--initial-cluster: more than %d members", RAFT_NODES_MAX);
			return -EINVAL;
		}
		struct boot_member *m = &b->members[b->n++];
		m->id = id;
		snprintf(m->name, sizeof(m->name), "%s", tok);
		snprintf(m->addr, sizeof(m->addr), "%s", eq + 1);
		if (strcmp(tok, node->cfg->name) == 0)
			self_found = true;
	}
	ASSERT(b->n <= RAFT_NODES_MAX);
	if (!self_found) {
		SP_LOG_ERR(MOD, "--initial-cluster does not name this member ('%s'); add %s=%s",
		           node->cfg->name, node->cfg->name, node->cfg->listen_peer);
		return -EINVAL;
	}
	return 0;
}

/* Makes b's members known peers; *m receives them as the bootstrap voters. */
static int
use_boot_record(struct cp_node *node, const struct boot_record *b, struct raft_membership *m)
{
	memset(m, 0, sizeof(*m));
	if (b->n > RAFT_NODES_MAX)
		return -SP_ETOOBIG;
	ASSERT(b->n > 0); /* parse_initial_cluster and boot_record_read refuse an empty one */
	for (uint32_t i = 0; i < b->n; i++) {
		m->voters[m->n_voters++] = b->members[i].id;
		if (cp_peer_upsert(node->io, b->members[i].id, b->members[i].name,
		                   b->members[i].addr) == NULL)
			return -SP_EFULL;
	}
	return 0;
}

/* Prints a record's members as "a=addr,b=addr" for messages. */
static void
boot_members_text(const struct boot_record *b, char *out, size_t cap)
{
	size_t off = 0;
	ASSERT(cap > 0);
	out[0] = '\0';
	for (uint32_t i = 0; i < b->n && off < cap; i++)
		off += (size_t)snprintf(out + off, cap - off, "%s%s=%s", i ? "," : "",
		                        b->members[i].name, b->members[i].addr);
}

/*
 * Decides the bootstrap membership (*boot, empty for a member that joins a running
 * cluster) from the data directory and the flags:
 *   - a bootstrap record in the data directory wins, whatever --initial-cluster-state
 *     says: the member restarts with the membership it formed the cluster with. A record
 *     of another member, or --initial-cluster-state new with a different
 *     --initial-cluster, is an error that says what to do;
 *   - no record and an empty data directory: 'new' writes one from --initial-cluster
 *     before Raft starts; 'existing' is a member joining a running cluster, which learns
 *     the membership from the leader's snapshot;
 *   - no record but data (a directory from before the record existed, or a joined
 *     member): 'new' takes --initial-cluster as before and writes the record; 'existing'
 *     relies on the snapshot it holds.
 */
static int
bootstrap_membership(struct cp_node *node, bool has_data, struct raft_membership *boot)
{
	struct boot_record flags, disk;
	char why[SP_CLUSTER_WHY_MAX], a[1024], b[1024];
	int err = parse_initial_cluster(node, &flags);
	if (err)
		return err;
	ASSERT(flags.n >= 1); /* this member at least */
	memset(boot, 0, sizeof(*boot));
	err = boot_record_read(node->cfg->data_dir, &disk, why, sizeof(why));
	if (err == 0) {
		if (strcmp(disk.self, node->cfg->name) != 0) {
			SP_LOG_ERR(
			        MOD,
			        "%s belongs to member '%s', not '%s': start it with --name %s, or "
			        "give this member a data directory of its own",
			        node->cfg->data_dir, disk.self, node->cfg->name, disk.self);
			return -EINVAL;
		}
		if (node->cfg->initial_new && !boot_record_same_members(&disk, &flags)) {
			boot_members_text(&disk, a, sizeof(a));
			boot_members_text(&flags, b, sizeof(b));
			SP_LOG_ERR(
			        MOD,
			        "%s holds a member of the cluster formed as '%s', but "
			        "--initial-cluster-state new asks for '%s': to restart this member "
			        "use --initial-cluster-state existing (or the original "
			        "--initial-cluster); to form a new cluster, empty the data "
			        "directory",
			        node->cfg->data_dir, a, b);
			return -EINVAL;
		}
		/* The flags still name how to reach today's members (addresses may move). */
		for (uint32_t i = 0; i < flags.n; i++)
			if (cp_peer_upsert(node->io, flags.members[i].id, flags.members[i].name,
			                   flags.members[i].addr) == NULL)
				return -SP_EFULL;
		SP_LOG_INFO(MOD, "bootstrap membership from %s/%s (%u members)",
		            node->cfg->data_dir, BOOT_RECORD_FILE, disk.n);
		return use_boot_record(node, &disk, boot);
	}
	if (err != -ENOENT) {
		SP_LOG_ERR(MOD,
		           "%s; restore this member from another one (remove and add it "
		           "again with an empty data directory)",
		           why);
		return err;
	}
	if (!node->cfg->initial_new) {
		/* Joining (or a joined member): the leader's snapshot brings the membership;
		 * the flags say only where the others are. */
		for (uint32_t i = 0; i < flags.n; i++)
			if (cp_peer_upsert(node->io, flags.members[i].id, flags.members[i].name,
			                   flags.members[i].addr) == NULL)
				return -SP_EFULL;
		if (has_data)
			SP_LOG_INFO(MOD, "no bootstrap record in %s: membership from the snapshot",
			            node->cfg->data_dir);
		return 0;
	}
	err = boot_record_write(node->cfg->data_dir, &flags, why, sizeof(why));
	if (err) {
		SP_LOG_ERR(MOD, "%s", why);
		return err;
	}
	return use_boot_record(node, &flags, boot);
}

int
cp_node_start(struct cp_node *node, const struct cp_config *cfg, uint64_t id, struct io_uring *ring,
              struct cp_io *io, struct cp_stats *stats)
{
	struct raft_membership boot;
	struct log_recovered rec;
	int err;
	memset(node, 0, sizeof(*node));
	node->cfg = cfg;
	node->id = id;
	node->ring = ring;
	node->io = io;
	node->stats = stats;
	node->sm = cluster_sm_new();
	/* Every buffer node.c uses, sized once; nothing on the way of a message allocates. */
	node->send_cap = FRAME_LEN_MAX - FRAME_HDR;
	node->send_buf = malloc(node->send_cap);
	node->msg_entries = calloc(RAFT_MSG_ENTRIES_MAX, sizeof(node->msg_entries[0]));
	node->batch = calloc(RAFT_PROPOSE_BATCH_MAX, sizeof(node->batch[0]));
	node->ents = calloc(CP_READY_ENTRIES_MAX, sizeof(node->ents[0]));
	node->cmd_buf = malloc(CLUSTER_CMD_BYTES_MAX);
	if (node->sm == NULL || node->send_buf == NULL || node->msg_entries == NULL ||
	    node->batch == NULL || node->ents == NULL || node->cmd_buf == NULL)
		return -ENOMEM;
	err = cp_subq_init(&node->subq, CP_SUBMIT_MAX, CP_SUBMIT_BYTES_MAX);
	if (err == 0)
		err = cp_outq_init(&node->outq, CP_OUTCOMES_MAX);
	if (err)
		return err;

	struct log_store_params lp = {
	        .dir = node->cfg->data_dir,
	        .ring = node->ring,
	        .preallocate = true,
	        .on_durable = cp_node_on_durable,
	        .arg = node,
	};
	node->log = log_store_open(&lp, &rec, &err);
	if (node->log == NULL) {
		SP_LOG_ERR(MOD, "cannot open the log in %s: %s", node->cfg->data_dir,
		           sp_strerror(err));
		return err;
	}

	bool fresh = rec.n_entries == 0 && rec.snap_index == 0 && !rec.have_hs;
	err = bootstrap_membership(node, !fresh, &boot);
	if (err)
		return err;

	struct raft_storage rs = {0};
	struct raft_entry *ents = NULL;
	rs.hard_state = (struct raft_hard_state){rec.hs.term, rec.hs.vote, rec.hs.commit};
	node->hs_synced = rs.hard_state;
	if (rec.snap_index) {
		struct raft_membership m;
		const uint8_t *img = rec.snap_data;
		if (snapshot_parse(img, rec.snap_len, &m) ||
		    cluster_sm_restore(node->sm, img + SNAP_HDR, rec.snap_len - SNAP_HDR)) {
			SP_LOG_ERR(MOD,
			           "snapshot %" PRIu64 " in %s is corrupt; restore this member "
			           "from another one (remove and add it again)",
			           rec.snap_index, node->cfg->data_dir);
			return -SP_ECORRUPT;
		}
		rs.snapshot.meta = (struct raft_snapshot_meta){rec.snap_index, rec.snap_term, m};
		rs.snapshot.data = rec.snap_data;
		rs.snapshot.len = rec.snap_len;
		node->applied = node->snap_index = rec.snap_index;
		node->applied_term = node->snap_term = rec.snap_term;
		for (uint32_t i = 0; i < node->sm->n_members; i++)
			if (node->sm->members[i].id != node->id)
				cp_peer_upsert(node->io, node->sm->members[i].id,
				               node->sm->members[i].name,
				               node->sm->members[i].peer_addr);
	}
	if (rec.n_entries) {
		ents = calloc(rec.n_entries, sizeof(*ents));
		if (ents == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < rec.n_entries; i++)
			ents[i] = (struct raft_entry){rec.entries[i].term, rec.entries[i].index,
			                              rec.entries[i].type, rec.entries[i].len,
			                              rec.entries[i].data};
	}
	rs.entries = ents;
	rs.n_entries = rec.n_entries;
	rs.applied = node->applied;

	struct raft_config rc;
	raft_config_init(&rc, node->id);
	rc.election_tick = CP_ELECTION_TICKS;
	rc.heartbeat_tick = CP_HEARTBEAT_TICKS;
	rc.seed = node->id ^ sp_mono_ns();
	/* A joining member starts with no membership and learns it from the leader. */
	rc.bootstrap = boot;
	node->raft = raft_create(&rc, fresh ? NULL : &rs, &err);
	free(ents);
	if (node->raft == NULL) {
		SP_LOG_ERR(MOD, "cannot start Raft from %s: %s", node->cfg->data_dir,
		           sp_strerror(err));
		return err ? err : -EINVAL;
	}
	SP_LOG_INFO(MOD,
	            "member %s (id %" PRIu64 ") started: term %" PRIu64 ", %zu entries, "
	            "snapshot %" PRIu64 "%s",
	            node->cfg->name, node->id, rec.hs.term, rec.n_entries, rec.snap_index,
	            rec.torn_bytes_truncated ? ", torn tail truncated" : "");

	if (node->cfg->state_region[0]) {
		char why[SP_CLUSTER_WHY_MAX];
		err = sp_region_open(node->cfg->state_region, true, &node->region, why,
		                     sizeof(why));
		if (err == -ENOENT)
			err = sp_region_create(node->cfg->state_region,
			                       node->cfg->partitions < 1024 ? 1024
			                                                    : node->cfg->partitions,
			                       &node->region, why, sizeof(why));
		if (err) {
			SP_LOG_ERR(MOD, "--state-region %s: %s", node->cfg->state_region, why);
			return err;
		}
		node->region_state = sp_cluster_state_new(sp_region_partitions_max(node->region));
		if (node->region_state == NULL)
			return -ENOMEM;
	}
	return 0;
}

bool
cp_node_check_invariants(const struct cp_node *node)
{
	struct raft_status st;
	if (node->raft == NULL || node->sm == NULL || node->log == NULL)
		return false;
	raft_status(node->raft, &st);
	if (node->applied < node->snap_index || node->applied_term < node->snap_term)
		return false;
	if (node->applied > st.commit && node->applied > node->snap_index)
		return false; /* only committed entries are applied */
	if (node->hs_synced.term > st.term)
		return false;
	if (node->rd_durable && !node->ready_inflight)
		return false;
	if (node->send_cap < FRAME_LEN_MAX - FRAME_HDR)
		return false;
	return cp_subq_check_invariants(&node->subq) && cp_outq_check_invariants(&node->outq) &&
	       cluster_sm_check_invariants(node->sm);
}

void
cp_node_stop(struct cp_node *node)
{
	if (node->log)
		log_store_close(node->log);
	raft_destroy(node->raft);
	cluster_sm_free(node->sm);
	cp_subq_fini(&node->subq);
	cp_outq_fini(&node->outq);
	sp_cluster_state_free(node->region_state);
	sp_region_close(node->region);
	free(node->send_buf);
	free(node->msg_entries);
	free(node->batch);
	free(node->ents);
	free(node->cmd_buf);
	node->send_buf = NULL;
	node->send_cap = 0;
}
