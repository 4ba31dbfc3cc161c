/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Liveness: pings and echoes between members, this node's ownership lease in its region,
 * and the leader's failure detector and partition moves. The decisions are in
 * state/health.c (pure); this file feeds it clocks, frames and the replicated state, and
 * turns its verdicts into proposals. docs/control-plane.md ("Leases", "Failure
 * detection") tells the story.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "liveness.h"
#include "state/placement.h"

#define MOD "liveness"

/* Each control plane pings every other member this often (2 ticks: 50 ms). */
#define PING_TICKS 2u
/* A dataplane whose process is gone is dead once its heartbeat (every 100 ms) is this old:
 * soon after a kill -9, yet never for a live dataplane whose pid this process cannot see
 * (another pid namespace), which keeps heartbeating. */
#define DP_GONE_AGE_NS (250u * SP_NS_PER_MS)

static uint64_t
lv_now(void)
{
	return sp_mono_ns();
}

int
cp_liveness_init(struct cp_liveness *lv, const struct cp_config *cfg, uint64_t id,
                 struct cp_node *node, struct cp_io *io, struct cp_stats *stats)
{
	memset(lv, 0, sizeof(*lv));
	lv->cfg = cfg;
	lv->id = id;
	lv->node = node;
	lv->io = io;
	lv->stats = stats;
	lv->cmd_buf = malloc(CLUSTER_CMD_BYTES_MAX);
	lv->target = calloc(SP_PARTITIONS_MAX, sizeof(lv->target[0]));
	lv->next = calloc(SP_PARTITIONS_MAX, sizeof(lv->next[0]));
	if (lv->cmd_buf == NULL || lv->target == NULL || lv->next == NULL) {
		cp_liveness_fini(lv);
		return -ENOMEM;
	}
	struct health_params prm = {
	        .lease_ns = (uint64_t)lv->cfg->lease_ms * SP_NS_PER_MS,
	        .failure_timeout_ns = (uint64_t)lv->cfg->failure_timeout_ms * SP_NS_PER_MS,
	        .hold_down_ns = (uint64_t)lv->cfg->hold_down_ms * SP_NS_PER_MS,
	        .margin_ns = CP_LEASE_MARGIN_MS * SP_NS_PER_MS,
	};
	health_init(&lv->h, &prm);
	return 0;
}

void
cp_liveness_fini(struct cp_liveness *lv)
{
	free(lv->cmd_buf);
	free(lv->target);
	free(lv->next);
	lv->cmd_buf = NULL;
	lv->target = lv->next = NULL;
}

/* This node's report on its dataplane, from the region. */
static void
self_report(struct cp_liveness *lv, uint64_t now, struct health_report *r)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	struct sp_dp_status s;

	ASSERT(r == &lv->self);
	memset(r, 0, sizeof(*r));
	r->hb_age_ms = UINT32_MAX;
	if (lv->node->region == NULL) {
		/* No region: the dataplane is what the flags say; nothing to check. */
		r->dp_alive = lv->cfg->dp_set;
		r->workers = lv->cfg->dp_workers;
		r->partitions = sm->partitions;
		return;
	}
	r->has_region = true;
	if (sp_region_status_read(lv->node->region, &s) != 0)
		return;
	uint64_t age_ns = now > s.heartbeat_mono_ns ? now - s.heartbeat_mono_ns : 0;
	r->hb_age_ms = (uint32_t)SP_MIN(age_ns / SP_NS_PER_MS, (uint64_t)UINT32_MAX - 1);
	bool gone = s.pid == 0 || (kill((pid_t)s.pid, 0) != 0 && errno == ESRCH);
	r->dp_alive = !(gone && age_ns >= DP_GONE_AGE_NS) &&
	              age_ns < lv->h.prm.failure_timeout_ns &&
	              (s.state == SP_DP_RUNNING || s.state == SP_DP_SWITCHING ||
	               s.state == SP_DP_STARTING);
	r->serving = s.serving < SP_DP_SERVING_LAST ? s.serving : SP_DP_NOT_READY;
	r->workers = s.workers;
	r->partitions = s.partitions;
	r->ipv4_be = s.ipv4_be;
	memcpy(r->mac, s.mac, 6);
	r->binary_port = s.binary_port;
	r->memcached_port = s.memcached_port;
	r->applied_epoch = s.applied_epoch;
}

static void
send_health(struct cp_liveness *lv, uint64_t to, const struct health_msg *m)
{
	uint8_t buf[HEALTH_MSG_BYTES];

	ASSERT(to != lv->id);
	health_msg_encode(m, buf);
	/* io.c drops it while the fault switch is on or without a connection to the member. */
	if (cp_io_send_peer(lv->io, to, FRAME_LIVENESS, buf, sizeof(buf)) == 0)
		lv->sent++;
}

/* Writes this node's lease to its region when it changed. */
static void
write_lease(struct cp_liveness *lv, uint64_t now)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	uint32_t membership;
	uint64_t expiry = lv->lease_expiry_ns;

	if (lv->node->region == NULL || cp_node_removed(lv->node) || lv->removed)
		return;
	membership = cluster_sm_member(sm, lv->id) != NULL ? SP_REGION_MEMBER_IN
	                                                   : SP_REGION_MEMBER_UNKNOWN;
	if (lv->self.has_region && !lv->self.dp_alive)
		expiry = 0;
	if (expiry == lv->written_expiry && membership == lv->written_membership)
		return;
	ASSERT(expiry == 0 || !lv->self.revoked); /* a revoked lease is never written */
	sp_region_lease_write(lv->node->region, expiry, membership);
	if ((expiry > now) != (lv->written_expiry > now))
		SP_LOG_INFO(MOD, "lease %s", expiry > now ? "granted" : "lapsed or revoked");
	lv->written_expiry = expiry;
	lv->written_membership = membership;
}

void
cp_liveness_removed(struct cp_liveness *lv)
{
	lv->removed = true;
	lv->lease_expiry_ns = 0;
	if (lv->node->region != NULL)
		sp_region_lease_write(lv->node->region, 0, SP_REGION_MEMBER_REMOVED);
}

/* The member view health_judge needs. */
static void
member_view(const struct cp_liveness *lv, const struct cluster_member *m,
            struct health_member_view *v)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	ASSERT(m->id != 0);
	ASSERT(cluster_sm_member(sm, m->id) == m);
	v->id = m->id;
	v->is_self = m->id == lv->id;
	v->down = m->down;
	v->workers = m->dp_known ? m->workers : 0;
	v->partitions = sm->partitions;
	v->epoch = sm->epoch;
}

void
cp_liveness_tick(struct cp_liveness *lv)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	struct raft_status st;
	uint64_t now = lv_now();

	lv->tick++;
	/* The node saw its own removal: the dataplane stops serving at once. */
	if (cp_node_removed(lv->node) && !lv->removed)
		cp_liveness_removed(lv);
	cp_node_status(lv->node, &st);
	self_report(lv, now, &lv->self);
	if (lv->self.has_region && !lv->self.dp_alive) {
		if (lv->revoked_at_ns == 0) {
			lv->revoked_at_ns = now; /* no grant for a ping sent before this counts */
			lv->lease_expiry_ns = 0;
			if (lv->self.hb_age_ms == UINT32_MAX)
				SP_LOG_WARN(MOD, "no dataplane heartbeat in %s: no lease",
				            lv->cfg->state_region);
			else
				SP_LOG_WARN(
				        MOD,
				        "dataplane heartbeat %u ms old or its process gone: lease "
				        "revoked",
				        lv->self.hb_age_ms);
		}
	} else if (lv->revoked_at_ns != 0 && lv->self.dp_alive) {
		lv->revoked_at_ns = 0;
		lv->revoke_floor_ns = now;
		SP_LOG_INFO(MOD, "dataplane alive again (heartbeat %u ms old)", lv->self.hb_age_ms);
	}
	lv->self.revoked = lv->revoked_at_ns != 0;

	bool leader = st.role == RAFT_LEADER;
	if (leader && (lv->h.leader_since_ns == 0 || lv->h.term != st.term))
		health_become_leader(&lv->h, st.term, now);
	else if (!leader && lv->h.leader_since_ns != 0)
		health_step_down(&lv->h);
	lv->term = st.term;
	lv->leader_id = st.leader_id;

	if (lv->tick % PING_TICKS == 0) {
		struct health_msg m = {.kind = HEALTH_PING,
		                       .from = lv->id,
		                       .term = st.term,
		                       .send_ns = now,
		                       .report = lv->self};
		for (uint32_t i = 0; i < st.membership.n_voters; i++)
			if (st.membership.voters[i] != lv->id)
				send_health(lv, st.membership.voters[i], &m);
		for (uint32_t i = 0; i < st.membership.n_learners; i++)
			if (st.membership.learners[i] != lv->id)
				send_health(lv, st.membership.learners[i], &m);
	}

	if (leader) {
		health_on_self(&lv->h, lv->id, now, &lv->self);
		lv->leader_lease_ns = health_leader_lease(&lv->h, lv->id, st.membership.voters,
		                                          st.membership.n_voters, now);
		/* Judge every member (the detector's clocks move), and this node's own lease is
		 * the leader lease while the leader would grant itself. */
		for (uint32_t i = 0; i < sm->n_members; i++) {
			const struct cluster_member *m = &sm->members[i];
			struct health_member_view v;
			struct health_verdict vd;
			member_view(lv, m, &v);
			health_judge(&lv->h, &v, now, &vd);
			if (v.is_self) {
				lv->lease_expiry_ns = vd.grant && now < lv->leader_lease_ns
				                              ? lv->leader_lease_ns
				                              : 0;
				if (lv->lease_expiry_ns)
					health_granted(&lv->h, lv->id, now);
			}
		}
		if (cluster_sm_member(sm, lv->id) == NULL)
			lv->lease_expiry_ns = 0;
	}
	write_lease(lv, now);
}

void
cp_liveness_on_frame(struct cp_liveness *lv, uint64_t from_peer, const uint8_t *buf, uint32_t len)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	struct health_msg m;
	struct raft_status st;
	uint64_t now = lv_now();

	if (lv->io->isolated)
		return;
	if (health_msg_decode(buf, len, &m) != 0 || m.from != from_peer) {
		lv->bad++;
		cp_stats_add(lv->stats, &lv->stats->m.frames_bad, 1);
		return;
	}
	cp_node_status(lv->node, &st);
	/* Only members are heard: an authenticated but removed or unknown node is not. */
	if (!raft_membership_contains(&st.membership, m.from)) {
		lv->not_member++;
		return;
	}
	if (m.kind == HEALTH_PING) {
		struct health_msg e = {
		        .kind = HEALTH_ECHO, .from = lv->id, .term = st.term, .send_ns = m.send_ns};
		const struct health_peer *p;
		if (st.role == RAFT_LEADER && lv->h.leader_since_ns != 0) {
			health_on_ping(&lv->h, m.from, now, &m.report);
			p = health_peer_find(&lv->h, m.from);
			/* The verdict is from the last tick: this very ping may report the
			 * dataplane dead. */
			bool report_ok =
			        !m.report.has_region || (m.report.dp_alive && !m.report.revoked);
			e.grant = m.term == st.term && now < lv->leader_lease_ns && p != NULL &&
			          p->grant_ok && report_ok && cluster_sm_member(sm, m.from) != NULL;
			if (e.grant) {
				health_granted(&lv->h, m.from, now);
				lv->grants++;
			}
		}
		send_health(lv, m.from, &e);
		return;
	}
	/* An echo of one of our pings. */
	if (m.term != st.term || m.send_ns > now)
		return;
	if (st.role == RAFT_LEADER)
		health_on_echo(&lv->h, m.from, m.send_ns);
	if (m.grant && m.from == st.leader_id && lv->revoked_at_ns == 0 &&
	    m.send_ns >= lv->revoke_floor_ns) {
		uint64_t until = m.send_ns + lv->h.prm.lease_ns;
		if (until > lv->lease_expiry_ns)
			lv->lease_expiry_ns = until;
	}
}

/* Proposes one command (liveness duties). */
static void
propose(struct cp_liveness *lv, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, lv->cmd_buf, CLUSTER_CMD_BYTES_MAX);
	ASSERT(n > 0); /* liveness builds only commands that encode */
	if (n > 0)
		cp_node_submit(lv->node, CP_SUB_PROPOSE, 0, lv->cmd_buf, (uint32_t)n, 0);
}

bool
cp_liveness_auto(const struct cp_liveness *lv)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	const struct cluster_config_item *it = cluster_sm_config_get(sm, CP_AUTO_REBALANCE_KEY);
	return it == NULL || strcmp(it->value, "off") != 0;
}

/* True when node `id` cannot be serving partition p of the current map now. */
static bool
old_owner_stopped(struct cp_liveness *lv, const struct sp_map_entry *e, uint64_t now)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	const struct cluster_member *m = cluster_sm_member(sm, e->node_id);
	const struct health_peer *p = health_peer_find(&lv->h, e->node_id);

	ASSERT(sm->epoch != 0); /* there is a current map */
	if (m == NULL || !m->dp_known)
		return health_lease_void(&lv->h, e->node_id, now);
	if (p != NULL && p->have_report && !p->rep.has_region)
		return true; /* no region: its dataplane is not lease-managed (docs) */
	if (health_lease_void(&lv->h, e->node_id, now))
		return true;
	/* Fenced in the current map, and its dataplane installed that map. */
	return (e->flags & SP_MAP_F_FENCED) && p != NULL && p->have_report &&
	       p->rep.applied_epoch >= sm->epoch &&
	       now - p->last_ping_ns < lv->h.prm.failure_timeout_ns;
}

int
cp_liveness_plan(struct cp_liveness *lv, bool everyone, struct sp_map_entry *next, uint32_t *moved,
                 uint32_t *fenced)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	struct sp_map_entry *target = lv->target;
	uint32_t *held = lv->held;
	struct placement_node nodes[SP_MEMBERS_MAX];
	uint32_t n = 0, P = sm->partitions;
	uint64_t now = lv_now();

	ASSERT(next != target); /* the caller's map, not the plan's scratch */
	ASSERT(next != NULL);

	*moved = 0;
	*fenced = 0;
	if (P == 0)
		return -SP_ENOTFOUND;
	memset(lv->held, 0, sizeof(lv->held));
	for (uint32_t p = 0; p < P && sm->epoch != 0; p++)
		for (uint32_t i = 0; i < sm->n_members; i++)
			if (sm->members[i].id == sm->map[p].node_id)
				held[i]++;
	for (uint32_t i = 0; i < sm->n_members; i++) {
		const struct cluster_member *m = &sm->members[i];
		const struct health_peer *hp = health_peer_find(&lv->h, m->id);
		if (!m->dp_known || m->down)
			continue;
		/* A node takes new partitions only once its dataplane is up with a matching
		 * configuration (and, without auto rebalance, only when asked). */
		bool ready = hp != NULL && hp->healthy_since_ns != 0;
		if (held[i] == 0 && !(ready && (everyone || cp_liveness_auto(lv))))
			continue;
		nodes[n++] = (struct placement_node){(uint32_t)m->id, m->workers};
	}
	if (n == 0)
		return -SP_ENOTFOUND;
	for (uint32_t p = 0; p < P; p++) {
		target[p] = sm->epoch ? sm->map[p] : (struct sp_map_entry){0};
		target[p].flags = 0;
	}
	int rc = placement_rebalance(target, P, nodes, n);
	if (rc < 0)
		return rc;
	if (sm->epoch == 0) {
		memcpy(next, target, P * sizeof(next[0]));
		*moved = P;
		return 0;
	}
	for (uint32_t p = 0; p < P; p++) {
		const struct sp_map_entry *cur = &sm->map[p];
		if (target[p].node_id == cur->node_id) {
			next[p] = target[p]; /* same node (a worker move is the dataplane's) */
		} else if (old_owner_stopped(lv, cur, now)) {
			next[p] = target[p];
		} else {
			next[p] = *cur;
			next[p].flags |= SP_MAP_F_FENCED; /* first stop it where it is */
		}
		if (memcmp(&next[p], cur, sizeof(*cur)) != 0) {
			if (next[p].flags & SP_MAP_F_FENCED)
				(*fenced)++;
			else
				(*moved)++;
		}
	}
	return 0;
}

void
cp_liveness_duties(struct cp_liveness *lv)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	struct sp_map_entry *next = lv->next;
	struct raft_status st;
	uint64_t now = lv_now();

	if (cp_node_busy(lv->node))
		return; /* proposals would only wait while a ready is written */
	cp_node_status(lv->node, &st);
	if (st.role != RAFT_LEADER || st.commit < st.last_index || sm->partitions == 0 ||
	    lv->h.leader_since_ns == 0)
		return; /* one proposal at a time, on committed state */
	/* Down and up first. */
	for (uint32_t i = 0; i < sm->n_members; i++) {
		const struct cluster_member *m = &sm->members[i];
		struct health_member_view v;
		struct health_verdict vd;
		if (!m->dp_known)
			continue;
		member_view(lv, m, &v);
		health_judge(&lv->h, &v, now, &vd);
		if (vd.propose_down || vd.propose_up) {
			struct cluster_cmd cmd = {.type = CLUSTER_CMD_MEMBER_HEALTH};
			cmd.member.id = m->id;
			cmd.member.down = vd.propose_down;
			SP_LOG_WARN(MOD, "member %s (%" PRIu64 ") %s%s%s", m->name, m->id,
			            vd.propose_down ? "down: " : "up again after the hold-down",
			            vd.propose_down ? vd.why : "", "");
			propose(lv, &cmd);
			return;
		}
	}
	if (!health_settled(&lv->h, now) && sm->epoch != 0)
		return; /* a new leader moves nothing until earlier grants are over */
	uint32_t moved, fenced;
	bool everyone = lv->rebalance_requested;
	if (cp_liveness_plan(lv, everyone, next, &moved, &fenced) != 0 || moved + fenced == 0) {
		/* A requested rebalance lasts until done: its moves take two maps (fence, then
		 * move), and the second would otherwise undo the first. */
		lv->rebalance_requested = false;
		return;
	}
	/* Nodes losing partitions (moved or fenced) get no more grants until they run it. */
	for (uint32_t p = 0; p < sm->partitions && sm->epoch != 0; p++)
		if (memcmp(&next[p], &sm->map[p], sizeof(next[p])) != 0)
			health_took(&lv->h, sm->map[p].node_id, sm->epoch + 1);
	ASSERT(moved + fenced > 0);
	struct cluster_cmd cmd = {.type = CLUSTER_CMD_MAP_SET,
	                          .epoch = sm->epoch + 1,
	                          .partitions = sm->partitions,
	                          .map = next};
	SP_LOG_INFO(MOD, "map epoch %" PRIu64 ": %u partitions move, %u fenced first", cmd.epoch,
	            moved, fenced);
	propose(lv, &cmd);
}

bool
cp_liveness_check_invariants(const struct cp_liveness *lv)
{
	if (!health_check_invariants(&lv->h))
		return false;
	if (lv->self.revoked != (lv->revoked_at_ns != 0))
		return false;
	if (lv->revoked_at_ns != 0 && lv->revoke_floor_ns > lv->revoked_at_ns)
		return false; /* the floor is where the last revocation ended */
	if (lv->cmd_buf == NULL || lv->target == NULL || lv->next == NULL)
		return false;
	return lv->written_membership <= SP_REGION_MEMBER_REMOVED;
}

void
cp_liveness_judge(struct cp_liveness *lv, uint64_t id, struct health_verdict *vd)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	const struct cluster_member *m = cluster_sm_member(sm, id);
	struct health_member_view v;

	ASSERT(id != 0);
	memset(vd, 0, sizeof(*vd));
	if (m == NULL || lv->h.leader_since_ns == 0) {
		snprintf(vd->why, sizeof(vd->why), "%s",
		         m == NULL ? "not a member" : "not judged here (ask the leader)");
		return;
	}
	member_view(lv, m, &v);
	health_judge(&lv->h, &v, lv_now(), vd);
}

const char *
cp_liveness_dp_state(const struct cp_liveness *lv, char *why, size_t why_len)
{
	const struct cluster_sm *sm = cp_node_sm(lv->node);
	const struct health_report *r = &lv->self;
	const struct cluster_member *m = cluster_sm_member(sm, lv->id);

	ASSERT(why_len > 0);
	why[0] = '\0';
	if (!r->has_region)
		return lv->cfg->dp_set ? "unmanaged" : "none";
	if (r->hb_age_ms == UINT32_MAX) {
		snprintf(why, why_len, "no dataplane heartbeat in %s", lv->cfg->state_region);
		return "down";
	}
	if (!r->dp_alive) {
		snprintf(why, why_len, "heartbeat %u ms old (timeout %u ms) or process gone",
		         r->hb_age_ms, lv->cfg->failure_timeout_ms);
		return "down";
	}
	if (sm->partitions != 0 && r->partitions != sm->partitions) {
		snprintf(why, why_len,
		         "dataplane runs --partitions %u, the cluster has %u; restart it with "
		         "--partitions %u",
		         r->partitions, sm->partitions, sm->partitions);
		return "mismatch";
	}
	if (m != NULL && m->down) {
		snprintf(why, why_len, "marked down by the leader; up again after %u ms healthy",
		         lv->cfg->hold_down_ms);
		return "down";
	}
	switch (r->serving) {
	case SP_DP_SERVING:
		return "up";
	case SP_DP_NOT_READY:
		snprintf(why, why_len, "no map installed yet");
		return "not ready";
	case SP_DP_NO_LEASE:
		snprintf(why, why_len, "no ownership lease (not in touch with the leader)");
		return "no lease";
	case SP_DP_REMOVED:
		snprintf(why, why_len, "this node was removed from the cluster");
		return "removed";
	default:
		return "unknown";
	}
}
