/* SPDX-License-Identifier: BSD-3-Clause */
/* In-test Raft network; see harness.h. Failures abort through cmocka's assertions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/crc32c.h"
#include "common/errors.h"
#include "tests/unit/raft/harness.h"

static uint64_t
data_hash(const void *data, size_t len)
{
	return ((uint64_t)len << 32) | sp_crc32c(0, data, len);
}

static void
check_node(struct net_node *nd)
{
	assert_int_equal(raft_check_invariants(nd->r), 0);
}

/* Records who led each term; two leaders in one term fail the test. */
static void
check_leader_term(struct net *net, struct net_node *nd)
{
	struct raft_status st;

	raft_status(nd->r, &st);
	if (st.role != RAFT_LEADER || st.term >= NET_LEADER_TERMS_MAX)
		return;
	if (net->leader_of_term[st.term] == 0)
		net->leader_of_term[st.term] = nd->id;
	assert_int_equal(net->leader_of_term[st.term], nd->id);
}

static void
create_node(struct net *net, struct net_node *nd)
{
	struct raft_storage st = {0};
	int err = 0;

	st.hard_state = nd->hs;
	st.snapshot.meta = nd->snap_meta;
	st.snapshot.data = nd->snap_data;
	st.snapshot.len = nd->snap_len;
	st.entries = nd->log;
	st.n_entries = nd->n_log;
	st.applied = nd->snap_meta.index;
	nd->applied_index = nd->snap_meta.index;
	nd->r = raft_create(&nd->cfg, &st, &err);
	assert_non_null(nd->r);
	assert_int_equal(err, 0);
	nd->up = true;
	check_node(nd);
	(void)net;
}

void
net_init(struct net *net, int n_voters, int n_learners, void (*tweak)(struct raft_config *))
{
	struct raft_membership m = {0};

	assert_true(n_voters + n_learners <= NET_NODES_MAX);
	memset(net, 0, sizeof(*net));
	net->n = n_voters + n_learners;
	for (int i = 0; i < n_voters; i++)
		m.voters[m.n_voters++] = (uint64_t)i + 1;
	for (int i = 0; i < n_learners; i++)
		m.learners[m.n_learners++] = (uint64_t)(n_voters + i) + 1;
	net->q = calloc(NET_QUEUE_MAX, sizeof(*net->q));
	net->held = calloc(NET_QUEUE_MAX, sizeof(*net->held));
	assert_non_null(net->q);
	assert_non_null(net->held);
	for (int i = 0; i < net->n; i++) {
		struct net_node *nd = &net->nodes[i];

		nd->id = (uint64_t)i + 1;
		raft_config_init(&nd->cfg, nd->id);
		nd->cfg.bootstrap = m;
		if (tweak != NULL)
			tweak(&nd->cfg);
		nd->applied = calloc(NET_APPLIED_MAX, sizeof(*nd->applied));
		assert_non_null(nd->applied);
		create_node(net, nd);
	}
}

static void
free_log(struct net_node *nd, size_t from)
{
	for (size_t i = from; i < nd->n_log; i++)
		free((void *)nd->log[i].data);
	nd->n_log = from;
}

void
net_free(struct net *net)
{
	for (int i = 0; i < net->n; i++) {
		struct net_node *nd = &net->nodes[i];

		raft_destroy(nd->r);
		free_log(nd, 0);
		free(nd->log);
		free(nd->snap_data);
		free(nd->applied);
	}
	for (size_t i = 0; i < net->q_len; i++)
		free(net->q[(net->q_head + i) % NET_QUEUE_MAX].buf);
	for (size_t i = 0; i < net->n_held; i++)
		free(net->held[i].buf);
	free(net->q);
	free(net->held);
	memset(net, 0, sizeof(*net));
}

struct net_node *
net_node(struct net *net, uint64_t id)
{
	assert_true(id >= 1 && id <= (uint64_t)net->n);
	return &net->nodes[id - 1];
}

struct raft *
net_raft(struct net *net, uint64_t id)
{
	return net_node(net, id)->r;
}

static void
store_append(struct net_node *nd, const struct raft_entry *e)
{
	struct raft_entry c = *e;

	if (nd->n_log == nd->cap_log) {
		nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
		nd->log = realloc(nd->log, nd->cap_log * sizeof(*nd->log));
		assert_non_null(nd->log);
	}
	if (e->len > 0) {
		void *d = malloc(e->len);

		assert_non_null(d);
		memcpy(d, e->data, e->len);
		c.data = d;
	} else {
		c.data = NULL;
	}
	nd->log[nd->n_log++] = c;
}

void
net_set_log(struct net *net, uint64_t id, const uint64_t *terms, size_t n, uint64_t term,
            uint64_t commit)
{
	struct net_node *nd = net_node(net, id);

	raft_destroy(nd->r);
	nd->r = NULL;
	free_log(nd, 0);
	for (size_t i = 0; i < n; i++) {
		struct raft_entry e = {.term = terms[i], .index = i + 1, .type = RAFT_ENTRY_NORMAL};
		uint8_t payload[2] = {(uint8_t)terms[i], (uint8_t)i};

		e.data = payload;
		e.len = sizeof(payload);
		store_append(nd, &e);
	}
	nd->hs = (struct raft_hard_state){term, 0, commit};
	create_node(net, nd);
}

static void
enqueue(struct net *net, const struct raft_msg *m)
{
	size_t len = raft_msg_encoded_size(m);
	struct net_msg *qm;
	int rc;

	net->sent[m->type][m->to]++;
	if (m->type == RAFT_MSG_APPEND && m->n_entries > 0)
		net->sent_entries[m->to]++;
	if (m->type == RAFT_MSG_APPEND && m->n_entries > net->max_append_entries)
		net->max_append_entries = m->n_entries;
	if (net->q_len >= NET_QUEUE_MAX) {
		net->dropped++;
		return;
	}
	qm = &net->q[(net->q_head + net->q_len) % NET_QUEUE_MAX];
	qm->buf = malloc(len);
	assert_non_null(qm->buf);
	rc = raft_msg_encode(m, qm->buf, len);
	assert_int_equal(rc, (int)len);
	qm->len = len;
	qm->from = m->from;
	qm->to = m->to;
	qm->type = m->type;
	net->q_len++;
}

static void
record_applied(struct net *net, struct net_node *nd, const struct raft_entry *e)
{
	struct net_applied a = {e->index, e->term, e->type, data_hash(e->data, e->len)};

	assert_int_equal(e->index, nd->applied_index + 1);
	nd->applied_index = e->index;
	/* State-machine safety: every node applies the same entry at an index. */
	for (int i = 0; i < net->n; i++) {
		struct net_node *o = &net->nodes[i];

		for (size_t k = 0; k < o->n_applied; k++) {
			if (o->applied[k].index != e->index)
				continue;
			assert_int_equal(o->applied[k].term, a.term);
			assert_int_equal(o->applied[k].hash, a.hash);
		}
	}
	for (size_t k = 0; k < nd->n_applied; k++)
		if (nd->applied[k].index == e->index)
			return; /* re-applied after a restart; checked above */
	assert_true(nd->n_applied < NET_APPLIED_MAX);
	nd->applied[nd->n_applied++] = a;
}

/* Stores what a ready asks to persist. */
static void
persist(struct net_node *nd, const struct raft_ready *rd)
{
	if (rd->snapshot != NULL) {
		free(nd->snap_data);
		nd->snap_meta = rd->snapshot->meta;
		nd->snap_len = rd->snapshot->len;
		nd->snap_data = NULL;
		if (rd->snapshot->len > 0) {
			nd->snap_data = malloc(rd->snapshot->len);
			assert_non_null(nd->snap_data);
			memcpy(nd->snap_data, rd->snapshot->data, rd->snapshot->len);
		}
		free_log(nd, 0);
		nd->applied_index = rd->snapshot->meta.index;
	}
	if (rd->n_entries > 0) {
		uint64_t first = rd->entries[0].index;

		assert_true(first > nd->snap_meta.index);
		assert_true(first <= nd->snap_meta.index + nd->n_log + 1);
		free_log(nd, (size_t)(first - nd->snap_meta.index - 1));
		for (size_t i = 0; i < rd->n_entries; i++)
			store_append(nd, &rd->entries[i]);
	}
	if (rd->hard_state_changed)
		nd->hs = rd->hard_state;
}

void
net_flush(struct net *net, uint64_t id)
{
	struct net_node *nd = net_node(net, id);
	struct raft_ready rd;

	if (!nd->up)
		return;
	while (raft_ready_get(nd->r, &rd)) {
		for (size_t i = 0; i < rd.n_msgs; i++)
			enqueue(net, &rd.msgs[i]);
		persist(nd, &rd);
		for (size_t i = 0; i < rd.n_msgs_after_persist; i++)
			enqueue(net, &rd.msgs_after_persist[i]);
		for (size_t i = 0; i < rd.n_committed; i++)
			record_applied(net, nd, &rd.committed[i]);
		for (size_t i = 0; i < rd.n_reads && nd->n_reads < NET_READS_MAX; i++)
			nd->reads[nd->n_reads++] = rd.reads[i];
		raft_ready_advance(nd->r);
		check_node(nd);
		check_leader_term(net, nd);
	}
}

int
net_step(struct net *net, uint64_t id, const struct raft_event *ev)
{
	struct net_node *nd = net_node(net, id);
	int rc;

	assert_true(nd->up);
	rc = raft_step(nd->r, ev);
	check_node(nd);
	check_leader_term(net, nd);
	return rc;
}

/* Delivers one queued message (or drops it per cuts, crashes and type mask). */
static void
deliver_one(struct net *net, struct net_msg *qm)
{
	struct raft_entry ents[RAFT_MSG_ENTRIES_MAX];
	struct raft_msg m;
	struct raft_event ev = {.type = RAFT_EV_MSG, .msg = &m};
	struct net_node *to = net_node(net, qm->to);

	if (net->cut[qm->from][qm->to] || !to->up || (net->drop_type_mask & (1u << qm->type))) {
		net->dropped++;
		free(qm->buf);
		return;
	}
	if (net->hold[qm->to]) {
		assert_true(net->n_held < NET_QUEUE_MAX);
		net->held[net->n_held++] = *qm;
		return;
	}
	assert_int_equal(raft_msg_decode(qm->buf, qm->len, &m, ents, RAFT_MSG_ENTRIES_MAX), 0);
	assert_int_equal(net_step(net, qm->to, &ev), 0);
	free(qm->buf);
}

bool
net_pop_deliver(struct net *net)
{
	struct net_msg qm;

	if (net->q_len == 0)
		return false;
	qm = net->q[net->q_head];
	net->q_head = (net->q_head + 1) % NET_QUEUE_MAX;
	net->q_len--;
	deliver_one(net, &qm);
	return true;
}

void
net_deliver(struct net *net)
{
	for (int steps = 0; steps < NET_DELIVER_STEPS_MAX; steps++) {
		for (int i = 0; i < net->n; i++)
			net_flush(net, net->nodes[i].id);
		if (!net_pop_deliver(net))
			return;
	}
	fail_msg("network did not go quiet within %d steps", NET_DELIVER_STEPS_MAX);
}

void
net_tick(struct net *net, uint64_t id, int k)
{
	struct raft_event ev = {.type = RAFT_EV_TICK};

	for (int i = 0; i < k; i++) {
		if (net_node(net, id)->up)
			net_step(net, id, &ev);
		net_deliver(net);
	}
}

void
net_tick_all(struct net *net, int k)
{
	struct raft_event ev = {.type = RAFT_EV_TICK};

	for (int i = 0; i < k; i++) {
		for (int j = 0; j < net->n; j++)
			if (net->nodes[j].up)
				net_step(net, net->nodes[j].id, &ev);
		net_deliver(net);
	}
}

void
net_crash(struct net *net, uint64_t id)
{
	struct net_node *nd = net_node(net, id);

	raft_destroy(nd->r);
	nd->r = NULL;
	nd->up = false;
}

void
net_crash_unpersisted(struct net *net, uint64_t id)
{
	struct net_node *nd = net_node(net, id);
	struct raft_ready rd;

	if (raft_ready_get(nd->r, &rd)) {
		for (size_t i = 0; i < rd.n_msgs; i++)
			enqueue(net, &rd.msgs[i]);
	}
	net_crash(net, id);
}

void
net_restart(struct net *net, uint64_t id)
{
	struct net_node *nd = net_node(net, id);

	assert_false(nd->up);
	create_node(net, nd);
}

void
net_isolate(struct net *net, uint64_t id)
{
	for (int i = 1; i <= net->n; i++) {
		net->cut[id][i] = true;
		net->cut[i][id] = true;
	}
}

void
net_heal(struct net *net)
{
	memset(net->cut, 0, sizeof(net->cut));
}

void
net_release(struct net *net, uint64_t id)
{
	size_t w = 0;

	net->hold[id] = false;
	for (size_t i = 0; i < net->n_held; i++) {
		if (net->held[i].to == id && net->q_len < NET_QUEUE_MAX) {
			net->q[(net->q_head + net->q_len) % NET_QUEUE_MAX] = net->held[i];
			net->q_len++;
		} else {
			net->held[w++] = net->held[i];
		}
	}
	net->n_held = w;
}

uint64_t
net_leader(struct net *net)
{
	uint64_t best = 0, best_term = 0;

	for (int i = 0; i < net->n; i++) {
		struct raft_status st;

		if (!net->nodes[i].up)
			continue;
		raft_status(net->nodes[i].r, &st);
		if (st.role == RAFT_LEADER && st.term >= best_term) {
			best = st.id;
			best_term = st.term;
		}
	}
	return best;
}

uint64_t
net_elect(struct net *net, uint64_t id)
{
	struct raft_event ev = {.type = RAFT_EV_CAMPAIGN};

	assert_int_equal(net_step(net, id, &ev), 0);
	net_deliver(net);
	return net_leader(net);
}

int
net_propose(struct net *net, uint64_t id, const char *text)
{
	struct raft_entry e = {
	        .type = RAFT_ENTRY_NORMAL, .data = text, .len = (uint32_t)strlen(text)};
	struct raft_event ev = {.type = RAFT_EV_PROPOSE};

	ev.propose.entries = &e;
	ev.propose.n_entries = 1;
	return net_step(net, id, &ev);
}

void
net_status(struct net *net, uint64_t id, struct raft_status *st)
{
	raft_status(net_raft(net, id), st);
}

size_t
net_applied_normal(struct net *net, uint64_t id)
{
	struct net_node *nd = net_node(net, id);
	size_t n = 0;

	for (size_t i = 0; i < nd->n_applied; i++)
		if (nd->applied[i].type == RAFT_ENTRY_NORMAL)
			n++;
	return n;
}
