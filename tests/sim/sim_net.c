/* SPDX-License-Identifier: BSD-3-Clause */
#include "sim_net.h"

#include <errno.h>
#include <string.h>

#include "common/verify.h"

int
sim_net_init(struct sim_net *net, unsigned nodes, const struct sim_net_hooks *hooks)
{
	ASSERT(net != NULL);
	if (nodes == 0 || nodes > SIM_NET_NODES_MAX || hooks == NULL || hooks->release == NULL)
		return -EINVAL;
	memset(net, 0, sizeof(*net));
	net->nodes = nodes;
	net->hooks = *hooks;
	net->faults.delay_ticks_min = 1;
	net->faults.delay_ticks_max = 1;
	for (unsigned i = 0; i < SIM_NET_NODES_MAX; i++) {
		net->node_up[i] = true;
		for (unsigned j = 0; j < SIM_NET_NODES_MAX; j++)
			net->links[i][j].up = true;
	}
	ASSERT(sim_net_in_flight(net) == 0);
	return 0;
}

void
sim_net_fini(struct sim_net *net)
{
	for (unsigned i = 0; i < SIM_NET_NODES_MAX; i++) {
		for (unsigned j = 0; j < SIM_NET_NODES_MAX; j++) {
			struct sim_net_link *l = &net->links[i][j];

			for (uint32_t k = 0; k < l->len; k++)
				net->hooks.release(net->hooks.ctx, l->q[k].payload);
			l->len = 0;
		}
	}
	ASSERT(sim_net_in_flight(net) == 0);
}

int
sim_net_set_faults(struct sim_net *net, const struct sim_net_faults *faults)
{
	ASSERT(net != NULL);
	if (faults->drop_ppm > SIM_PPM || faults->dup_ppm > SIM_PPM ||
	    faults->reorder_ppm > SIM_PPM || faults->late_dup_ppm > SIM_PPM)
		return -EINVAL;
	if (faults->delay_ticks_min > faults->delay_ticks_max)
		return -EINVAL;
	if (faults->delay_ticks_max > SIM_NET_DELAY_TICKS_MAX)
		return -EINVAL;
	net->faults = *faults;
	return 0;
}

/*
 * Appends one copy to a link; returns 1 (and releases) when the queue is full. A late copy
 * is delivered SIM_NET_DELAY_TICKS_MAX..SIM_NET_LATE_TICKS_MAX ticks from now, overtaken
 * by everything sent after it, and does not hold back the link's FIFO order.
 */
static int
link_enqueue(struct sim_net *net, struct sim_rng *rng, uint64_t now, unsigned from, unsigned to,
             void *payload, bool late)
{
	struct sim_net_link *l = &net->links[from][to];
	const struct sim_net_faults *f = &net->faults;

	if (l->len >= SIM_NET_LINK_QUEUE_MAX) {
		net->stats.dropped_full++;
		net->hooks.release(net->hooks.ctx, payload);
		return 1;
	}
	uint64_t deliver = now + sim_rng_range(rng, f->delay_ticks_min, f->delay_ticks_max);

	if (late) {
		deliver = now + sim_rng_range(rng, SIM_NET_DELAY_TICKS_MAX, SIM_NET_LATE_TICKS_MAX);
		ASSERT(deliver > now + f->delay_ticks_max);
	} else if (sim_rng_chance(rng, f->reorder_ppm)) {
		/* Free to overtake: keep the drawn tick even if it is before earlier ones. */
		if (deliver < l->last_deliver_tick)
			net->stats.reordered++;
	} else if (deliver < l->last_deliver_tick) {
		deliver = l->last_deliver_tick;
	}
	if (!late)
		l->last_deliver_tick = SP_MAX(l->last_deliver_tick, deliver);
	l->q[l->len++] = (struct sim_net_msg){
	        .deliver_tick = deliver,
	        .seq = net->seq_next++,
	        .from = (uint8_t)from,
	        .to = (uint8_t)to,
	        .payload = payload,
	};
	ASSERT(l->len <= SIM_NET_LINK_QUEUE_MAX);
	return 0;
}

int
sim_net_send(struct sim_net *net, struct sim_rng *rng, uint64_t now, unsigned from, unsigned to,
             void *payload)
{
	ASSERT(net != NULL);
	ASSERT(payload != NULL);
	if (from >= net->nodes || to >= net->nodes) {
		net->hooks.release(net->hooks.ctx, payload);
		return -EINVAL;
	}
	net->stats.sent++;
	if (!net->links[from][to].up) {
		net->stats.dropped_cut++;
		net->hooks.release(net->hooks.ctx, payload);
		return 1;
	}
	if (sim_rng_chance(rng, net->faults.drop_ppm)) {
		net->stats.dropped_random++;
		net->hooks.release(net->hooks.ctx, payload);
		return 1;
	}
	if (sim_rng_chance(rng, net->faults.dup_ppm) && net->hooks.clone != NULL) {
		void *copy = net->hooks.clone(net->hooks.ctx, payload);

		if (copy != NULL && link_enqueue(net, rng, now, from, to, copy, false) == 0)
			net->stats.duplicated++;
	}
	if (sim_rng_chance(rng, net->faults.late_dup_ppm) && net->hooks.clone != NULL) {
		void *copy = net->hooks.clone(net->hooks.ctx, payload);

		if (copy != NULL && link_enqueue(net, rng, now, from, to, copy, true) == 0)
			net->stats.late_duplicated++;
	}
	return link_enqueue(net, rng, now, from, to, payload, false);
}

bool
sim_net_pop(struct sim_net *net, uint64_t now, struct sim_net_msg *msg)
{
	ASSERT(net != NULL);
	ASSERT(msg != NULL);
	for (;;) {
		struct sim_net_link *best_link = NULL;
		uint32_t best_k = 0;

		for (unsigned i = 0; i < net->nodes; i++) {
			for (unsigned j = 0; j < net->nodes; j++) {
				struct sim_net_link *l = &net->links[i][j];

				for (uint32_t k = 0; k < l->len; k++) {
					const struct sim_net_msg *m = &l->q[k];

					if (m->deliver_tick > now)
						continue;
					if (best_link != NULL) {
						const struct sim_net_msg *b = &best_link->q[best_k];

						if (m->deliver_tick > b->deliver_tick)
							continue;
						if (m->deliver_tick == b->deliver_tick &&
						    m->seq > b->seq)
							continue;
					}
					best_link = l;
					best_k = k;
				}
			}
		}
		if (best_link == NULL)
			return false;
		*msg = best_link->q[best_k];
		/* Keep the queue dense; order inside it does not matter (pop scans). */
		best_link->q[best_k] = best_link->q[--best_link->len];
		if (!best_link->up) {
			net->stats.dropped_cut++;
			net->hooks.release(net->hooks.ctx, msg->payload);
			continue;
		}
		if (!net->node_up[msg->to]) {
			net->stats.dropped_down++;
			net->hooks.release(net->hooks.ctx, msg->payload);
			continue;
		}
		net->stats.delivered++;
		return true;
	}
}

void
sim_net_set_link(struct sim_net *net, unsigned from, unsigned to, bool up)
{
	VERIFY(from < SIM_NET_NODES_MAX);
	VERIFY(to < SIM_NET_NODES_MAX);
	net->links[from][to].up = up;
}

bool
sim_net_link_up(const struct sim_net *net, unsigned from, unsigned to)
{
	VERIFY(from < SIM_NET_NODES_MAX);
	VERIFY(to < SIM_NET_NODES_MAX);
	return net->links[from][to].up;
}

void
sim_net_partition(struct sim_net *net, uint32_t group_mask)
{
	ASSERT(net->nodes <= 32);
	for (unsigned i = 0; i < net->nodes; i++) {
		for (unsigned j = 0; j < net->nodes; j++) {
			bool in_i = (group_mask >> i) & 1u;
			bool in_j = (group_mask >> j) & 1u;

			if (in_i != in_j)
				net->links[i][j].up = false;
		}
	}
}

void
sim_net_heal(struct sim_net *net)
{
	for (unsigned i = 0; i < SIM_NET_NODES_MAX; i++)
		for (unsigned j = 0; j < SIM_NET_NODES_MAX; j++)
			net->links[i][j].up = true;
	ASSERT(sim_net_all_up(net, UINT32_MAX));
}

void
sim_net_set_node(struct sim_net *net, unsigned node, bool up)
{
	VERIFY(node < SIM_NET_NODES_MAX);
	net->node_up[node] = up;
}

uint32_t
sim_net_in_flight(const struct sim_net *net)
{
	uint32_t n = 0;

	for (unsigned i = 0; i < SIM_NET_NODES_MAX; i++)
		for (unsigned j = 0; j < SIM_NET_NODES_MAX; j++)
			n += net->links[i][j].len;
	return n;
}

bool
sim_net_all_up(const struct sim_net *net, uint32_t mask)
{
	for (unsigned i = 0; i < net->nodes; i++) {
		if (!((mask >> i) & 1u))
			continue;
		for (unsigned j = 0; j < net->nodes; j++) {
			if (((mask >> j) & 1u) && !net->links[i][j].up)
				return false;
		}
	}
	return true;
}
