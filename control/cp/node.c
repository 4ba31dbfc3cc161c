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
#include "cp.h"
#include "storage/boot_record.h"

#define MOD                 "cp"
#define SNAP_MAGIC          0x4e535053u /* "SPSN" */
#define SNAP_HDR            (4u + (uint32_t)sizeof(struct raft_membership))
#define DUTY_RETRY_TICKS    40u /* 1 s before a duty proposal is tried again */
#define REMOVED_GRACE_TICKS 40u /* 1 s for a removal to reach the others */
#define PROMOTE_LAG_MAX     8u  /* a learner this close to the leader's log is promoted */

/* Sends one Raft message to its member, if we have a connection to it. */
static void
send_msg(struct cp *cp, const struct raft_msg *m)
{
	if (cp->isolated)
		return; /* the fault switch (SIGUSR1) cuts this member off */
	struct cp_peer *p = cp_peer_find(cp, m->to);
	if (p == NULL || p->out == NULL || !cp_conn_alive(cp, p->out, p->out_serial) ||
	    p->out->state != CP_CS_READY) {
		if (p)
			p->msgs_dropped++;
		return; /* Raft retries; a lost message is never a correctness problem */
	}
	int len = raft_msg_encode(m, cp->send_buf, cp->send_cap);
	if (len < 0) {
		SP_LOG_WARN(MOD, "cannot encode %s to %" PRIu64 ": %s", raft_msg_type_name(m->type),
		            m->to, sp_strerror(len));
		return;
	}
	ASSERT((size_t)len <= cp->send_cap);
	if (cp_conn_send_frame(p->out, FRAME_RAFT, cp->send_buf, (uint32_t)len, NULL, 0) == 0)
		p->msgs_sent++;
	else
		p->msgs_dropped++;
}

/* Applies an internally built command (membership mirroring); returns its status. */
static int
apply_cmd(struct cp *cp, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, cp->cmd_buf, CLUSTER_CMD_BYTES_MAX);
	VERIFY(n > 0);
	return cluster_sm_apply(cp->sm, cp->cmd_buf, (size_t)n, NULL);
}

static void
apply_conf(struct cp *cp, const struct raft_entry *e)
{
	struct raft_conf_change cc;
	struct cluster_cmd cmd = {0};
	if (raft_conf_change_decode(e->data, e->len, &cc))
		return;
	cmd.member.id = cc.node_id;
	switch (cc.op) {
	case RAFT_CONF_ADD_LEARNER:
		/* A removed name added again (with a fresh data directory) is a member: it
		 * must not be told it was removed when it calls. */
		for (uint32_t i = 0; i < RAFT_NODES_MAX; i++)
			if (cp->removed_ids[i] == cc.node_id)
				cp->removed_ids[i] = 0;
		/* fall through */
	case RAFT_CONF_PROMOTE:
		cmd.type = CLUSTER_CMD_MEMBER_ROLE;
		cmd.member.voter = cc.op == RAFT_CONF_PROMOTE;
		apply_cmd(cp, &cmd);
		break;
	case RAFT_CONF_REMOVE:
		cmd.type = CLUSTER_CMD_MEMBER_REMOVE;
		apply_cmd(cp, &cmd);
		if (cc.node_id != cp->id) {
			cp_peer_remove(cp, cc.node_id);
			cp->removed_ids[cp->n_removed++ % RAFT_NODES_MAX] = cc.node_id;
		}
		break;
	default:
		break;
	}
}

static void
apply_entry(struct cp *cp, const struct raft_entry *e)
{
	int status = 0;
	if (e->index <= cp->applied)
		return; /* already in the snapshot we restored */
	if (e->type == RAFT_ENTRY_NORMAL) {
		struct cluster_cmd cmd; /* decoded once, by the apply */
		status = cluster_sm_apply(cp->sm, e->data, e->len, &cmd);
		if (status == 0 && cmd.type == CLUSTER_CMD_MEMBER_UPSERT && cmd.member.id != cp->id)
			cp_peer_upsert(cp, cmd.member.id, cmd.member.name, cmd.member.peer_addr);
	} else if (e->type == RAFT_ENTRY_CONF) {
		apply_conf(cp, e);
	}
	cp->applied = e->index;
	cp->applied_term = e->term;
	struct cp_outcome o = {
	        .kind = CP_OUT_APPLIED, .status = status, .index = e->index, .term = e->term};
	cp_outq_push(&cp->outq, &o); /* finish_ready made room for every entry */
}

static int
snapshot_image(struct cp *cp, uint8_t **out, size_t *len)
{
	uint8_t *sm_img;
	size_t sm_len;
	struct raft_status st;
	int err = cluster_sm_snapshot(cp->sm, &sm_img, &sm_len);
	if (err)
		return err;
	uint8_t *img = malloc(SNAP_HDR + sm_len);
	if (img == NULL) {
		free(sm_img);
		return -ENOMEM;
	}
	raft_status(cp->raft, &st);
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
	return 0;
}

static void
maybe_snapshot(struct cp *cp, bool force)
{
	if (cp->applied < cp->snap_index + (force ? 1 : cp->cfg.snapshot_entries))
		return;
	uint8_t *img;
	size_t len;
	if (snapshot_image(cp, &img, &len))
		return;
	int err =
	        log_store_save_snapshot(cp->log, cp->applied, cp->applied_term, img, (uint32_t)len);
	if (err == 0) {
		struct raft_event ev = {.type = RAFT_EV_COMPACT};
		ev.compact.index = cp->applied;
		ev.compact.data = img;
		ev.compact.len = len;
		raft_step(cp->raft, &ev);
		cp->snap_index = cp->applied;
		cp->snap_term = cp->applied_term;
		SP_LOG_INFO(MOD, "snapshot at %" PRIu64 " (%zu bytes); log compacted", cp->applied,
		            len);
	}
	free(img);
}

static void
publish_region(struct cp *cp)
{
	if (cp->region == NULL || cp->sm->epoch == 0)
		return;
	uint64_t digest = cp->sm->n_members;
	for (uint32_t i = 0; i < cp->sm->n_members; i++)
		digest = digest * 31 + cp->sm->members[i].id + cp->sm->members[i].dp_known +
		         cp->sm->members[i].voter * 7;
	if (cp->sm->epoch == cp->region_published_epoch && digest == cp->region_published_members)
		return;
	if (cluster_sm_member(cp->sm, cp->id) == NULL ||
	    !cluster_sm_member(cp->sm, cp->id)->dp_known)
		return; /* the region describes this node's dataplane: it must be in the map */
	char why[SP_CLUSTER_WHY_MAX];
	int err = cluster_sm_to_region_state(cp->sm, cp->id, cp->region_state);
	if (err == 0)
		err = sp_region_publish(cp->region, cp->region_state, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", sp_strerror(err));
	if (err) {
		SP_LOG_WARN(MOD, "shared region not updated: %s", why);
		return;
	}
	cp->region_published_epoch = cp->sm->epoch;
	cp->region_published_members = digest;
	SP_LOG_INFO(MOD, "published epoch %" PRIu64 " to %s", cp->sm->epoch, cp->cfg.state_region);
}

static bool step_deferred(struct cp *cp);

/* Outcome slots the second half of the ready in flight pushes: one per applied entry and
 * one per read. */
static uint32_t
ready_outcomes(const struct cp *cp)
{
	ASSERT(cp->rd.n_committed <= RAFT_READY_APPLY_MAX);
	ASSERT(cp->rd.n_reads <= RAFT_READS_PENDING_MAX);
	return (uint32_t)(cp->rd.n_committed + cp->rd.n_reads);
}

/* The second half of a ready: after its entries and hard state are durable, and with room
 * in the outcome queue for everything it reports. */
static void
finish_ready(struct cp *cp)
{
	struct raft_ready *rd = &cp->rd;
	ASSERT(cp->ready_inflight);
	ASSERT(cp->rd_durable);
	VERIFY(cp_outq_room(&cp->outq) >= ready_outcomes(cp));

	for (size_t i = 0; i < rd->n_msgs_after_persist; i++)
		send_msg(cp, &rd->msgs_after_persist[i]);
	if (rd->snapshot) {
		struct raft_membership m;
		const uint8_t *img = rd->snapshot->data;
		if (snapshot_parse(img, rd->snapshot->len, &m) == 0 &&
		    cluster_sm_restore(cp->sm, img + SNAP_HDR, rd->snapshot->len - SNAP_HDR) == 0) {
			cp->applied = rd->snapshot->meta.index;
			cp->applied_term = rd->snapshot->meta.term;
			cp->snap_index = cp->applied;
			for (uint32_t i = 0; i < cp->sm->n_members; i++) {
				const struct cluster_member *mm = &cp->sm->members[i];
				if (mm->id != cp->id)
					cp_peer_upsert(cp, mm->id, mm->name, mm->peer_addr);
			}
			SP_LOG_INFO(MOD, "installed snapshot at %" PRIu64, cp->applied);
		} else {
			SP_LOG_ERR(MOD, "received snapshot at %" PRIu64 " is corrupt; stopping",
			           rd->snapshot->meta.index);
			cp->fatal = -SP_ECORRUPT;
			cp->stopping = true;
		}
	}
	for (size_t i = 0; i < rd->n_committed; i++)
		apply_entry(cp, &rd->committed[i]);
	for (size_t i = 0; i < rd->n_reads; i++) {
		struct cp_outcome o = {.kind = CP_OUT_READ_READY,
		                       .status = rd->reads[i].status,
		                       .index = rd->reads[i].index,
		                       .ctx = rd->reads[i].ctx};
		cp_outq_push(&cp->outq, &o);
	}
	raft_ready_advance(cp->raft);
	cp->ready_inflight = false;
	cp->rd_durable = false;
	publish_region(cp);
	maybe_snapshot(cp, false);
}

void
cp_node_on_durable(void *arg, uint64_t seq, int err)
{
	struct cp *cp = arg;
	if (err) {
		SP_LOG_ERR(MOD,
		           "storage failed in %s: %s; this member stops (no entry is "
		           "acknowledged that is not on disk)",
		           cp->cfg.data_dir, sp_strerror(err));
		cp->fatal = err;
		cp->stopping = true;
		return;
	}
	if (cp->fsync_started_ns) {
		cp_metrics_fsync_done(cp, sp_mono_ns() - cp->fsync_started_ns);
		cp->fsync_started_ns = 0;
	}
	if (cp->ready_inflight && !cp->rd_durable && (int64_t)seq >= cp->rd_seq) {
		cp->hs_synced = cp->hs_pending;
		cp->rd_durable = true;
		cp_node_drive(cp); /* finishes it when its outcomes fit */
	}
}

bool
cp_node_drive(struct cp *cp)
{
	if (cp->ready_inflight && cp->rd_durable) {
		if (cp_outq_room(&cp->outq) < ready_outcomes(cp))
			return true; /* the API drains the queue first */
		finish_ready(cp);
	}
	for (int guard = 0; guard < 1000 && !cp->ready_inflight && !cp->stopping; guard++) {
		if (step_deferred(cp))
			return true;
		if (cp->ready_inflight || !raft_ready_get(cp->raft, &cp->rd))
			return false;
		struct raft_ready *rd = &cp->rd;
		for (size_t i = 0; i < rd->n_msgs; i++)
			send_msg(cp, &rd->msgs[i]);
		if (rd->snapshot) {
			int err = log_store_save_snapshot(
			        cp->log, rd->snapshot->meta.index, rd->snapshot->meta.term,
			        rd->snapshot->data, (uint32_t)rd->snapshot->len);
			if (err) {
				cp_node_on_durable(cp, 0, err);
				return false;
			}
		}
		/* Only entries and term/vote must be on disk before going on. A commit index
		 * that moved is never written by itself: it rides along with the next entries
		 * (it only saves replay work at a restart). Written alone it cost an fsync per
		 * commit, and the next entries' write waited behind it. */
		bool hs_sync =
		        rd->hard_state_changed && (rd->hard_state.term != cp->hs_synced.term ||
		                                   rd->hard_state.vote != cp->hs_synced.vote);
		if (rd->n_entries || hs_sync) {
			struct log_entry *ents = cp->ents;
			size_t n = rd->n_entries;
			VERIFY(n <= CP_READY_ENTRIES_MAX);
			for (size_t i = 0; i < n; i++)
				ents[i] = (struct log_entry){
				        .index = rd->entries[i].index,
				        .term = rd->entries[i].term,
				        .type = (uint8_t)rd->entries[i].type,
				        .len = rd->entries[i].len,
				        .data = rd->entries[i].data,
				};
			struct log_hard_state hs = {rd->hard_state.term, rd->hard_state.vote,
			                            rd->hard_state.commit};
			int64_t seq = log_store_append(cp->log, ents, n, &hs);
			if (seq < 0) {
				cp_node_on_durable(cp, 0, (int)seq);
				return false;
			}
			cp->ready_inflight = true;
			cp->rd_durable = false;
			cp->rd_seq = seq;
			cp->hs_pending = rd->hard_state;
			cp->fsync_started_ns = sp_mono_ns();
			log_store_flush(cp->log);
			return false; /* continues in cp_node_on_durable */
		}
		cp->ready_inflight = true;
		cp->rd_durable = true; /* nothing to wait for */
		if (cp_outq_room(&cp->outq) < ready_outcomes(cp))
			return true;
		finish_ready(cp);
	}
	return false;
}

/* Tells the submitter (token, when not 0) what Raft said to its submission. */
static void
report_submitted(struct cp *cp, uint64_t token, int err, uint64_t index, uint64_t term)
{
	if (token == 0)
		return;
	struct cp_outcome o = {.kind = CP_OUT_SUBMITTED,
	                       .status = err,
	                       .token = token,
	                       .index = err ? 0 : index,
	                       .term = err ? 0 : term};
	cp_outq_push(&cp->outq, &o); /* the caller made room */
}

/* Steps one submission now; reports its outcome when token is not 0 (the caller made room
 * for it in the outcome queue). */
static void
step_now(struct cp *cp, uint32_t kind, uint64_t arg, const uint8_t *data, uint32_t len,
         uint64_t token)
{
	ASSERT(token == 0 || cp_outq_room(&cp->outq) > 0);
	ASSERT(!cp->ready_inflight);
	struct raft_event ev = {0};
	struct raft_propose_result res = {0};
	struct raft_entry ent = {.type = RAFT_ENTRY_NORMAL, .len = len, .data = data};
	struct raft_msg msg;
	int err;

	switch (kind) {
	case CP_SUB_MSG:
		err = raft_msg_decode(data, len, &msg, cp->msg_entries, RAFT_MSG_ENTRIES_MAX);
		if (err == 0) {
			if (msg.to != cp->id)
				return;
			ev.type = RAFT_EV_MSG;
			ev.msg = &msg;
			raft_step(cp->raft, &ev);
		} else {
			pthread_mutex_lock(&cp->metrics_lock);
			cp->metrics.frames_bad++;
			pthread_mutex_unlock(&cp->metrics_lock);
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
			report_submitted(cp, token, err, 0, 0);
			return;
		}
		/* A new member learns the membership (the bootstrap voters included) from a
		 * snapshot: compact first, so the leader sends it one instead of the log. */
		if (ev.conf.change.op == RAFT_CONF_ADD_LEARNER)
			maybe_snapshot(cp, true);
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
	err = raft_step(cp->raft, &ev);
	pthread_mutex_lock(&cp->metrics_lock);
	if (kind == CP_SUB_PROPOSE) {
		cp->metrics.proposals_total++;
		if (err)
			cp->metrics.proposals_failed++;
	}
	pthread_mutex_unlock(&cp->metrics_lock);
	report_submitted(cp, token, err, res.first_index, res.term);
}

/*
 * Steps the ticks owed and what waits in the submission area, oldest first; consecutive
 * proposals go to Raft as one batch (one append per follower). Returns true when it
 * stopped for lack of room in the outcome queue (the rest waits, in order).
 */
static bool
step_deferred(struct cp *cp)
{
	struct raft_entry *batch = cp->batch;

	while (cp->ticks_owed && !cp->ready_inflight) {
		struct raft_event ev = {.type = RAFT_EV_TICK};
		raft_step(cp->raft, &ev);
		cp->ticks_owed--;
	}
	while (cp->subq.n > 0) {
		const struct cp_sub *d = cp_subq_peek(&cp->subq, 0);
		uint32_t room = cp_outq_room(&cp->outq);
		if (d->kind != CP_SUB_PROPOSE) {
			if (d->token != 0 && room == 0)
				return true;
			step_now(cp, d->kind, d->arg, d->data, d->len, d->token);
			cp_subq_pop(&cp->subq);
			continue;
		}
		uint32_t n = 0;
		while (n < cp->subq.n && n < RAFT_PROPOSE_BATCH_MAX && n < room) {
			const struct cp_sub *p = cp_subq_peek(&cp->subq, n);
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
		int err = raft_step(cp->raft, &ev);
		pthread_mutex_lock(&cp->metrics_lock);
		cp->metrics.proposals_total += n;
		if (err)
			cp->metrics.proposals_failed += n;
		pthread_mutex_unlock(&cp->metrics_lock);
		for (uint32_t k = 0; k < n; k++) {
			const struct cp_sub *p = cp_subq_peek(&cp->subq, 0);
			report_submitted(cp, p->token, err,
			                 res.first_index ? res.first_index + k : 0, res.term);
			cp_subq_pop(&cp->subq);
		}
	}
	ASSERT(cp->subq.used == 0);
	return false;
}

int
cp_node_submit(struct cp *cp, uint32_t kind, uint64_t arg, const void *data, uint32_t len,
               uint64_t token)
{
	ASSERT(kind >= CP_SUB_MSG && kind <= CP_SUB_TRANSFER);
	ASSERT(data != NULL || len == 0);
	/* Stepped at once when nothing is written and nothing older waits; else in order. */
	if (!cp->ready_inflight && !step_deferred(cp) && cp->subq.n == 0 &&
	    (token == 0 || cp_outq_room(&cp->outq) > 0)) {
		step_now(cp, kind, arg, data, len, token);
		return 0;
	}
	int err = cp_subq_push(&cp->subq, kind, arg, data, len, token);
	if (err) {
		pthread_mutex_lock(&cp->metrics_lock);
		uint64_t busy = ++cp->metrics.submit_busy;
		pthread_mutex_unlock(&cp->metrics_lock);
		if (busy % 1000 == 1)
			SP_LOG_WARN(
			        MOD,
			        "submission area full (%u submissions, %zu of %zu bytes wait for "
			        "a write to disk): refused %" PRIu64 " so far",
			        cp->subq.n, cp->subq.used, cp->subq.bytes_max, busy);
	}
	return err;
}

void
cp_node_on_raft_frame(struct cp *cp, const uint8_t *buf, uint32_t len)
{
	if (cp->isolated)
		return;
	if (cp_node_submit(cp, CP_SUB_MSG, 0, buf, len, 0))
		return; /* dropped while the queue is full; Raft retransmits */
}

void
cp_node_status(struct cp *cp, struct raft_status *st)
{
	raft_status(cp->raft, st);
}

static bool
member_needs_upsert(struct cp *cp)
{
	const struct cluster_member *m = cluster_sm_member(cp->sm, cp->id);
	if (m == NULL)
		return true;
	return strcmp(m->client_addr, cp->cfg.advertise_client) != 0 ||
	       strcmp(m->peer_addr, cp->cfg.listen_peer) != 0 || strcmp(m->name, cp->cfg.name);
}

/*
 * This node's dataplane as the cluster should know it: from its heartbeat when a live
 * dataplane reports through the region (so no second flag has to agree with it by hand),
 * otherwise from the --dp-* flags. Returns false when there is nothing to report.
 */
static bool
dp_fields(struct cp *cp, struct cluster_member *out)
{
	const struct health_report *r = &cp->lv.self;
	if (r->has_region && r->dp_alive && r->workers >= 1 && r->workers <= SP_WORKERS_MAX &&
	    r->ipv4_be != 0) {
		out->ipv4_be = r->ipv4_be;
		memcpy(out->mac, r->mac, 6);
		out->binary_port = r->binary_port;
		out->memcached_port = r->memcached_port;
		out->workers = (uint16_t)r->workers;
		return true;
	}
	if (!cp->cfg.dp_set)
		return false;
	out->ipv4_be = cp->cfg.dp_ipv4_be;
	memcpy(out->mac, cp->cfg.dp_mac, 6);
	out->binary_port = cp->cfg.dp_port;
	out->memcached_port = cp->cfg.dp_memcached_port;
	out->workers = cp->cfg.dp_workers;
	return true;
}

static bool
member_needs_dp(struct cp *cp, struct cluster_member *want)
{
	const struct cluster_member *m = cluster_sm_member(cp->sm, cp->id);
	if (m == NULL || !dp_fields(cp, want))
		return false;
	if (m->dp_known && cp->lv.self.has_region && !cp->lv.self.dp_alive)
		return false; /* keep what is known while the dataplane is away */
	return !m->dp_known || m->ipv4_be != want->ipv4_be || memcmp(m->mac, want->mac, 6) ||
	       m->binary_port != want->binary_port || m->memcached_port != want->memcached_port ||
	       m->workers != want->workers;
}

static void
propose_cmd(struct cp *cp, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, cp->cmd_buf, CLUSTER_CMD_BYTES_MAX);
	if (n > 0)
		cp_node_submit(cp, CP_SUB_PROPOSE, 0, cp->cmd_buf, (uint32_t)n, 0);
}

/* A new balanced map over members with known dataplanes, if it differs. */
int
cp_node_rebalance(struct cp *cp, bool propose, uint32_t *moved_out)
{
	uint32_t moved = 0, fenced = 0;

	int err = cp_liveness_plan(cp, true, cp->plan_map, &moved, &fenced);
	if (err)
		return err;
	if (moved_out)
		*moved_out = moved + fenced;
	/* The liveness duties propose it (fencing partitions whose owner still serves them
	 * first); this asks them to include members that hold no partitions yet. */
	if (propose)
		cp->rebalance_requested = true;
	return 0;
}

/* What the leader (and each member for itself) keeps proposing until the state agrees. */
static void
duties(struct cp *cp)
{
	struct raft_status st;
	raft_status(cp->raft, &st);
	if (st.leader_id == 0 || cp->tick < cp->duty_tick)
		return;
	cp->duty_tick = cp->tick + DUTY_RETRY_TICKS;

	struct cluster_cmd cmd = {0};
	if (member_needs_upsert(cp)) {
		cmd.type = CLUSTER_CMD_MEMBER_UPSERT;
		cmd.member.id = cp->id;
		snprintf(cmd.member.name, sizeof(cmd.member.name), "%s", cp->cfg.name);
		snprintf(cmd.member.peer_addr, sizeof(cmd.member.peer_addr), "%s",
		         cp->cfg.listen_peer);
		snprintf(cmd.member.client_addr, sizeof(cmd.member.client_addr), "%s",
		         cp->cfg.advertise_client);
		propose_cmd(cp, &cmd);
	} else if (member_needs_dp(cp, &cmd.member)) {
		cmd.type = CLUSTER_CMD_MEMBER_DP;
		cmd.member.id = cp->id;
		propose_cmd(cp, &cmd);
	}
	if (st.role != RAFT_LEADER || st.commit < st.last_index)
		return; /* the leader acts on committed state only */
	if (cp->sm->partitions == 0) {
		cmd = (struct cluster_cmd){.type = CLUSTER_CMD_INIT,
		                           .partitions = cp->cfg.partitions};
		propose_cmd(cp, &cmd);
		return;
	}
	/* Keep the replicated roles in step with Raft's membership (bootstrap voters never
	 * went through a conf change). */
	uint32_t roles_fixed = 0;
	for (uint32_t i = 0; i < cp->sm->n_members; i++) {
		const struct cluster_member *m = &cp->sm->members[i];
		bool voter = raft_membership_is_voter(&st.membership, m->id);
		if (m->voter != voter && raft_membership_contains(&st.membership, m->id)) {
			cmd = (struct cluster_cmd){.type = CLUSTER_CMD_MEMBER_ROLE};
			cmd.member.id = m->id;
			cmd.member.voter = voter;
			propose_cmd(cp, &cmd);
			roles_fixed++;
		}
	}
	if (roles_fixed)
		return;
	/* Maps (failover, joins, rebalances) are liveness duties, run every tick. */
	/* Promote a learner that has caught up. */
	for (uint32_t i = 0; i < st.n_progress && !st.conf_pending; i++) {
		const struct raft_progress *p = &st.progress[i];
		if (!p->voter && p->match + PROMOTE_LAG_MAX >= st.last_index && p->match > 0) {
			struct raft_conf_change cc = {.op = RAFT_CONF_PROMOTE, .node_id = p->id};
			uint8_t b[RAFT_CONF_CHANGE_BYTES];
			raft_conf_change_encode(&cc, b);
			SP_LOG_INFO(MOD,
			            "promoting learner %" PRIu64 " (match %" PRIu64 " of %" PRIu64
			            ")",
			            p->id, p->match, st.last_index);
			cp_node_submit(cp, CP_SUB_CONF, 0, b, sizeof(b), 0);
			break;
		}
	}
}

/* A member whose removal is in its log stops shortly after (the leader no longer talks to
 * it, so it may never see the removal committed). */
static void
check_removed(struct cp *cp)
{
	struct raft_status st;
	raft_status(cp->raft, &st);
	bool member = raft_membership_contains(&st.membership, cp->id);
	if (member) {
		cp->was_member = true;
		cp->removed_tick = 0;
		return;
	}
	if (!cp->was_member)
		return; /* a joining member before it hears from the leader */
	if (cp->removed_tick == 0) {
		cp->removed_tick = cp->tick + REMOVED_GRACE_TICKS;
		SP_LOG_WARN(MOD, "this member was removed from the cluster; stopping");
		cp_liveness_removed(cp); /* its dataplane stops serving at once */
	} else if (cp->tick >= cp->removed_tick) {
		cp->stopping = true;
	}
}

void
cp_node_tick(struct cp *cp)
{
	cp->tick++;
	check_removed(cp);
	cp->ticks_owed++;
	if (!cp->ready_inflight)
		step_deferred(cp);
	cp_liveness_tick(cp);
	if (!cp->ready_inflight)
		duties(cp);
	if (!cp->ready_inflight)
		cp_liveness_duties(cp);
	cp_node_drive(cp);
}

/* Parses --initial-cluster "n1=host:port,n2=host:port" into a bootstrap record. */
static int
parse_initial_cluster(struct cp *cp, struct boot_record *b)
{
	char buf[sizeof(cp->cfg.initial_cluster)];
	char *save = NULL;
	bool self_found = false;

	memset(b, 0, sizeof(*b));
	snprintf(b->self, sizeof(b->self), "%s", cp->cfg.name);
	snprintf(buf, sizeof(buf), "%s", cp->cfg.initial_cluster);
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
		if (strcmp(tok, cp->cfg.name) == 0)
			self_found = true;
	}
	if (!self_found) {
		SP_LOG_ERR(MOD, "--initial-cluster does not name this member ('%s'); add %s=%s",
		           cp->cfg.name, cp->cfg.name, cp->cfg.listen_peer);
		return -EINVAL;
	}
	return 0;
}

/* Makes b's members known peers; *m receives them as the bootstrap voters. */
static int
use_boot_record(struct cp *cp, const struct boot_record *b, struct raft_membership *m)
{
	memset(m, 0, sizeof(*m));
	if (b->n > RAFT_NODES_MAX)
		return -SP_ETOOBIG;
	for (uint32_t i = 0; i < b->n; i++) {
		m->voters[m->n_voters++] = b->members[i].id;
		if (cp_peer_upsert(cp, b->members[i].id, b->members[i].name, b->members[i].addr) ==
		    NULL)
			return -SP_EFULL;
	}
	return 0;
}

/* Prints a record's members as "a=addr,b=addr" for messages. */
static void
boot_members_text(const struct boot_record *b, char *out, size_t cap)
{
	size_t off = 0;
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
bootstrap_membership(struct cp *cp, bool has_data, struct raft_membership *boot)
{
	struct boot_record flags, disk;
	char why[SP_CLUSTER_WHY_MAX], a[1024], b[1024];
	int err = parse_initial_cluster(cp, &flags);
	if (err)
		return err;
	memset(boot, 0, sizeof(*boot));
	err = boot_record_read(cp->cfg.data_dir, &disk, why, sizeof(why));
	if (err == 0) {
		if (strcmp(disk.self, cp->cfg.name) != 0) {
			SP_LOG_ERR(
			        MOD,
			        "%s belongs to member '%s', not '%s': start it with --name %s, or "
			        "give this member a data directory of its own",
			        cp->cfg.data_dir, disk.self, cp->cfg.name, disk.self);
			return -EINVAL;
		}
		if (cp->cfg.initial_new && !boot_record_same_members(&disk, &flags)) {
			boot_members_text(&disk, a, sizeof(a));
			boot_members_text(&flags, b, sizeof(b));
			SP_LOG_ERR(
			        MOD,
			        "%s holds a member of the cluster formed as '%s', but "
			        "--initial-cluster-state new asks for '%s': to restart this member "
			        "use --initial-cluster-state existing (or the original "
			        "--initial-cluster); to form a new cluster, empty the data "
			        "directory",
			        cp->cfg.data_dir, a, b);
			return -EINVAL;
		}
		/* The flags still name how to reach today's members (addresses may move). */
		for (uint32_t i = 0; i < flags.n; i++)
			if (cp_peer_upsert(cp, flags.members[i].id, flags.members[i].name,
			                   flags.members[i].addr) == NULL)
				return -SP_EFULL;
		SP_LOG_INFO(MOD, "bootstrap membership from %s/%s (%u members)", cp->cfg.data_dir,
		            BOOT_RECORD_FILE, disk.n);
		return use_boot_record(cp, &disk, boot);
	}
	if (err != -ENOENT) {
		SP_LOG_ERR(MOD,
		           "%s; restore this member from another one (remove and add it "
		           "again with an empty data directory)",
		           why);
		return err;
	}
	if (!cp->cfg.initial_new) {
		/* Joining (or a joined member): the leader's snapshot brings the membership;
		 * the flags say only where the others are. */
		for (uint32_t i = 0; i < flags.n; i++)
			if (cp_peer_upsert(cp, flags.members[i].id, flags.members[i].name,
			                   flags.members[i].addr) == NULL)
				return -SP_EFULL;
		if (has_data)
			SP_LOG_INFO(MOD, "no bootstrap record in %s: membership from the snapshot",
			            cp->cfg.data_dir);
		return 0;
	}
	err = boot_record_write(cp->cfg.data_dir, &flags, why, sizeof(why));
	if (err) {
		SP_LOG_ERR(MOD, "%s", why);
		return err;
	}
	return use_boot_record(cp, &flags, boot);
}

int
cp_node_start(struct cp *cp)
{
	struct raft_membership boot;
	struct log_recovered rec;
	int err;
	cp_liveness_init(cp);
	cp->sm = cluster_sm_new();
	/* Every buffer node.c uses, sized once; nothing on the way of a message allocates. */
	cp->send_cap = FRAME_LEN_MAX - FRAME_HDR;
	cp->send_buf = malloc(cp->send_cap);
	cp->msg_entries = calloc(RAFT_MSG_ENTRIES_MAX, sizeof(cp->msg_entries[0]));
	cp->batch = calloc(RAFT_PROPOSE_BATCH_MAX, sizeof(cp->batch[0]));
	cp->ents = calloc(CP_READY_ENTRIES_MAX, sizeof(cp->ents[0]));
	cp->cmd_buf = malloc(CLUSTER_CMD_BYTES_MAX);
	cp->plan_map = calloc(SP_PARTITIONS_MAX, sizeof(cp->plan_map[0]));
	if (cp->sm == NULL || cp->send_buf == NULL || cp->msg_entries == NULL ||
	    cp->batch == NULL || cp->ents == NULL || cp->cmd_buf == NULL || cp->plan_map == NULL)
		return -ENOMEM;
	err = cp_subq_init(&cp->subq, CP_SUBMIT_MAX, CP_SUBMIT_BYTES_MAX);
	if (err == 0)
		err = cp_outq_init(&cp->outq, CP_OUTCOMES_MAX);
	if (err)
		return err;

	struct log_store_params lp = {
	        .dir = cp->cfg.data_dir,
	        .ring = &cp->ring,
	        .preallocate = true,
	        .on_durable = cp_node_on_durable,
	        .arg = cp,
	};
	cp->log = log_store_open(&lp, &rec, &err);
	if (cp->log == NULL) {
		SP_LOG_ERR(MOD, "cannot open the log in %s: %s", cp->cfg.data_dir,
		           sp_strerror(err));
		return err;
	}

	bool fresh = rec.n_entries == 0 && rec.snap_index == 0 && !rec.have_hs;
	err = bootstrap_membership(cp, !fresh, &boot);
	if (err)
		return err;

	struct raft_storage rs = {0};
	struct raft_entry *ents = NULL;
	rs.hard_state = (struct raft_hard_state){rec.hs.term, rec.hs.vote, rec.hs.commit};
	cp->hs_synced = rs.hard_state;
	if (rec.snap_index) {
		struct raft_membership m;
		const uint8_t *img = rec.snap_data;
		if (snapshot_parse(img, rec.snap_len, &m) ||
		    cluster_sm_restore(cp->sm, img + SNAP_HDR, rec.snap_len - SNAP_HDR)) {
			SP_LOG_ERR(MOD,
			           "snapshot %" PRIu64 " in %s is corrupt; restore this member "
			           "from another one (remove and add it again)",
			           rec.snap_index, cp->cfg.data_dir);
			return -SP_ECORRUPT;
		}
		rs.snapshot.meta = (struct raft_snapshot_meta){rec.snap_index, rec.snap_term, m};
		rs.snapshot.data = rec.snap_data;
		rs.snapshot.len = rec.snap_len;
		cp->applied = cp->snap_index = rec.snap_index;
		cp->applied_term = cp->snap_term = rec.snap_term;
		for (uint32_t i = 0; i < cp->sm->n_members; i++)
			if (cp->sm->members[i].id != cp->id)
				cp_peer_upsert(cp, cp->sm->members[i].id, cp->sm->members[i].name,
				               cp->sm->members[i].peer_addr);
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
	rs.applied = cp->applied;

	struct raft_config rc;
	raft_config_init(&rc, cp->id);
	rc.election_tick = CP_ELECTION_TICKS;
	rc.heartbeat_tick = CP_HEARTBEAT_TICKS;
	rc.seed = cp->id ^ sp_mono_ns();
	/* A joining member starts with no membership and learns it from the leader. */
	rc.bootstrap = boot;
	cp->raft = raft_create(&rc, fresh ? NULL : &rs, &err);
	free(ents);
	if (cp->raft == NULL) {
		SP_LOG_ERR(MOD, "cannot start Raft from %s: %s", cp->cfg.data_dir,
		           sp_strerror(err));
		return err ? err : -EINVAL;
	}
	SP_LOG_INFO(MOD,
	            "member %s (id %" PRIu64 ") started: term %" PRIu64 ", %zu entries, "
	            "snapshot %" PRIu64 "%s",
	            cp->cfg.name, cp->id, rec.hs.term, rec.n_entries, rec.snap_index,
	            rec.torn_bytes_truncated ? ", torn tail truncated" : "");

	if (cp->cfg.state_region[0]) {
		char why[SP_CLUSTER_WHY_MAX];
		err = sp_region_open(cp->cfg.state_region, true, &cp->region, why, sizeof(why));
		if (err == -ENOENT)
			err = sp_region_create(cp->cfg.state_region,
			                       cp->cfg.partitions < 1024 ? 1024
			                                                 : cp->cfg.partitions,
			                       &cp->region, why, sizeof(why));
		if (err) {
			SP_LOG_ERR(MOD, "--state-region %s: %s", cp->cfg.state_region, why);
			return err;
		}
		cp->region_state = sp_cluster_state_new(sp_region_partitions_max(cp->region));
		if (cp->region_state == NULL)
			return -ENOMEM;
	}
	return 0;
}

void
cp_node_stop(struct cp *cp)
{
	if (cp->log)
		log_store_close(cp->log);
	raft_destroy(cp->raft);
	cluster_sm_free(cp->sm);
	cp_subq_fini(&cp->subq);
	cp_outq_fini(&cp->outq);
	sp_cluster_state_free(cp->region_state);
	sp_region_close(cp->region);
	free(cp->send_buf);
	free(cp->msg_entries);
	free(cp->batch);
	free(cp->ents);
	free(cp->cmd_buf);
	free(cp->plan_map);
	cp->send_buf = NULL;
	cp->send_cap = 0;
}
