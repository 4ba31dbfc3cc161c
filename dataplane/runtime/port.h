/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one DPDK port a node serves: its mbuf pool, one RX/TX queue pair per worker, RSS
 * where the device has it, checksum offloads where offered, and rte_flow steering of
 * UDP port base+i to queue i where the device validates it.
 */
#ifndef SP_DP_PORT_H
#define SP_DP_PORT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_flow.h>
#include <rte_mempool.h>

#include "bounds.h"
#include "common/verify.h"
#include "config.h"
#include "dataplane/net/net.h"

struct dp_port {
	uint16_t port_id;
	uint16_t queues;
	int socket_id;
	uint16_t rx_desc;
	uint16_t tx_desc;
	bool started;
	bool rss;             /* RSS spreads flows over the queues */
	bool steering;        /* rte_flow rules steer port base+i to queue i */
	bool rx_csum;         /* the NIC checks IPv4/UDP checksums on receive */
	uint32_t tx_flags;    /* NET_TX_*: checksums the NIC computes on transmit */
	uint64_t tx_ol_flags; /* mbuf ol_flags to set on every UDP reply */
	struct rte_ether_addr mac;
	struct rte_mempool *pool;
	uint32_t pool_size;
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[64];
	/* af_packet: the kernel interface and its index when the socket was bound; the
	 * device's arguments, to attach it again when the interface is replaced. */
	char iface[32];
	unsigned int ifindex;
	char devargs[256];
	uint32_t reattaches;
	struct rte_eth_stats base; /* counters of the devices replaced by reattaches */
	struct rte_flow *flows[DP_WORKERS_MAX];
};

/*
 * Mbufs the pool needs for `queues` queue pairs of the given sizes: every descriptor
 * filled, every hand-off ring full, every TX backlog full and a burst in hand per worker,
 * plus every lcore's cache (the main lcore's too). Can't fail.
 */
uint32_t dp_port_pool_need(uint16_t queues, uint16_t rx_desc, uint16_t tx_desc);

/*
 * Checks that port_id exists and has `queues` RX and TX queues, then creates the mbuf
 * pool on the port's socket, configures the queues, offloads and RSS, sets the MAC when
 * cfg->mac_set, starts the port and tries the steering rules. Returns 0, or a negative
 * errno with a message naming the port, the value and the fix logged; on error nothing
 * stays allocated or started.
 */
int dp_port_open(struct dp_port *p, const struct dp_config *cfg, uint16_t queues);

/*
 * Removes the steering rules, stops and closes the port (the driver gives back the mbufs
 * its queues held). Safe on a port that never opened. The pool stays, for the leak check.
 */
void dp_port_close(struct dp_port *p);

/*
 * af_packet binds its socket to an interface index. When the interface is deleted and
 * created again under the same name (a veth whose peer namespace was deleted and made
 * again), the port would stay bound to an index that no longer exists and never receive
 * again. Returns true when that happened: the name resolves to another index than the
 * one the port is bound to. One if_nametoindex(); for housekeeping, not the data path.
 * Always false for other devices, and while the interface is missing.
 */
bool dp_port_iface_replaced(const struct dp_port *p);

/*
 * Detaches the device and attaches it again with the same arguments, so it binds to the
 * interface as it is now; configures and starts it with the same queues and mbuf pool
 * (the mbufs the workers hold stay valid). No worker may be polling the port: the caller
 * pauses them first. p->port_id may change. The device's counters so far are kept in
 * p->base. Returns 0 or a negative errno, logged; on failure the port is left stopped.
 */
int dp_port_reattach(struct dp_port *p, const struct dp_config *cfg);

/* Frees the mbuf pool. Call after dp_port_close() and the leak check. */
void dp_port_free_pool(struct dp_port *p);

/* Mbufs currently taken from the pool (0 once every queue and worker gave theirs back). */
uint32_t dp_port_mbufs_in_use(const struct dp_port *p);

/*
 * Makes m, into which a UDP frame of len bytes was written (net_udp_reply or
 * net_udp_frame), ready for port p's transmit queue: its lengths, and the checksum
 * offload flags p asks for.
 */
static inline void
dp_tx_frame_ready(const struct dp_port *p, struct rte_mbuf *m, uint32_t len)
{
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	m->ol_flags = p->tx_ol_flags;
	if (p->tx_ol_flags != 0) {
		m->l2_len = NET_ETH_HDR_LEN;
		m->l3_len = NET_IPV4_HDR_LEN;
	}
}

/* Reads the NIC's checksum verdicts on a received mbuf as net_classify's NET_RX_* flags. */
static inline uint32_t
dp_rx_csum_flags(const struct rte_mbuf *m)
{
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	uint32_t flags = 0;

	if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		flags |= NET_RX_IP_CSUM_GOOD;
	else if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		flags |= NET_RX_IP_CSUM_BAD;
	if (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		flags |= NET_RX_L4_CSUM_GOOD;
	else if (l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		flags |= NET_RX_L4_CSUM_BAD;
	ASSERT((flags & (NET_RX_IP_CSUM_GOOD | NET_RX_IP_CSUM_BAD)) !=
	       (NET_RX_IP_CSUM_GOOD | NET_RX_IP_CSUM_BAD));
	return flags;
}

#endif
