/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The simulated network: one bounded queue per directed link (from -> to). Each message
 * gets a delivery tick drawn from the link's delay range; it can be dropped, duplicated
 * or overtaken by later messages (reordered). Links are cut and healed one direction at a
 * time, which gives symmetric partitions, asymmetric ones (A hears B, B does not hear A)
 * and partial ones (A hears B but not C). A message whose link is cut when it is due is
 * lost, as on a real network.
 *
 * Payloads are opaque: the network takes ownership of what it is given, and uses the
 * caller's clone and release hooks to duplicate and to discard.
 */
#ifndef SP_SIM_NET_H
#define SP_SIM_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_rng.h"

#define SIM_NET_NODES_MAX       9   /* nodes the network can connect */
#define SIM_NET_LINK_QUEUE_MAX  128 /* messages in flight per directed link; more are dropped */
#define SIM_NET_DELAY_TICKS_MAX 64  /* upper bound of any configured delay */
/* A late duplicate arrives SIM_NET_DELAY_TICKS_MAX..SIM_NET_LATE_TICKS_MAX ticks after it
 * was sent, long after the original: an old append, vote or snapshot replayed. */
#define SIM_NET_LATE_TICKS_MAX 400

struct sim_net_msg {
	uint64_t deliver_tick;
	uint64_t seq; /* send order, the tie-breaker among messages due at the same tick */
	uint8_t from;
	uint8_t to;
	void *payload;
};

struct sim_net_hooks {
	void *(*clone)(void *ctx, const void *payload); /* NULL return: skip the duplicate */
	void (*release)(void *ctx, void *payload);
	void *ctx;
};

/* Fault rates for every link, in parts per million of messages. */
struct sim_net_faults {
	uint32_t drop_ppm;
	uint32_t dup_ppm;
	uint32_t reorder_ppm;  /* chance a message ignores FIFO order on its link */
	uint32_t late_dup_ppm; /* chance of one more copy, delivered late (out of order) */
	uint32_t delay_ticks_min;
	uint32_t delay_ticks_max;
};

struct sim_net_stats {
	uint64_t sent;
	uint64_t delivered;
	uint64_t dropped_random;
	uint64_t dropped_cut;  /* link cut at send or at delivery time */
	uint64_t dropped_full; /* link queue at SIM_NET_LINK_QUEUE_MAX */
	uint64_t dropped_down; /* destination node down */
	uint64_t duplicated;
	uint64_t late_duplicated;
	uint64_t reordered;
};

struct sim_net_link {
	struct sim_net_msg q[SIM_NET_LINK_QUEUE_MAX];
	uint32_t len;
	uint64_t last_deliver_tick; /* FIFO floor for messages that are not reordered */
	bool up;
};

struct sim_net {
	unsigned nodes;
	struct sim_net_faults faults;
	struct sim_net_hooks hooks;
	struct sim_net_stats stats;
	bool node_up[SIM_NET_NODES_MAX];
	uint64_t seq_next;
	struct sim_net_link links[SIM_NET_NODES_MAX][SIM_NET_NODES_MAX];
};

/*
 * Sets up a network of `nodes` nodes with every link up, no faults and a one-tick delay.
 * Returns 0, or -EINVAL when nodes is 0 or over SIM_NET_NODES_MAX.
 */
int sim_net_init(struct sim_net *net, unsigned nodes, const struct sim_net_hooks *hooks);

/* Releases every message in flight. */
void sim_net_fini(struct sim_net *net);

/* Sets the fault rates. Returns -EINVAL on a rate over SIM_PPM or a bad delay range. */
int sim_net_set_faults(struct sim_net *net, const struct sim_net_faults *faults);

/*
 * Sends payload from -> to at tick now; the network owns payload from here on. Returns 0
 * when queued (possibly twice), 1 when the network lost it (cut, random drop, full queue;
 * counted, payload released), or -EINVAL on a bad node id (payload released).
 */
int sim_net_send(struct sim_net *net, struct sim_rng *rng, uint64_t now, unsigned from, unsigned to,
                 void *payload);

/*
 * Removes the next message due at or before now, in (deliver_tick, seq) order over all
 * links, into *msg; the caller then owns msg->payload. Messages due on cut links or to
 * down nodes are dropped on the way (counted). Returns true when a message was taken.
 */
bool sim_net_pop(struct sim_net *net, uint64_t now, struct sim_net_msg *msg);

/* Cuts or heals the directed link from -> to. */
void sim_net_set_link(struct sim_net *net, unsigned from, unsigned to, bool up);
bool sim_net_link_up(const struct sim_net *net, unsigned from, unsigned to);

/* Symmetric partition: links between the set in group_mask and the rest cut both ways. */
void sim_net_partition(struct sim_net *net, uint32_t group_mask);

/* Heals every link. */
void sim_net_heal(struct sim_net *net);

/* Marks a node up or down; messages due to a down node are dropped. */
void sim_net_set_node(struct sim_net *net, unsigned node, bool up);

/* Messages in flight, over all links. */
uint32_t sim_net_in_flight(const struct sim_net *net);

/* True when every link between the nodes in mask is up. */
bool sim_net_all_up(const struct sim_net *net, uint32_t mask);

#endif
