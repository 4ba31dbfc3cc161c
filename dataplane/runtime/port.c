/* SPDX-License-Identifier: BSD-3-Clause */
#include "port.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <net/if.h>

#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "common/log.h"
#include "handoff.h"
#include "common/verify.h"
#include "net/net.h"

#define MOD "port"

/* Longest a port gets to report link up before we go on without it. */
#define LINK_WAIT_MS 2000u

uint32_t
dp_port_pool_need(uint16_t queues, uint16_t rx_desc, uint16_t tx_desc)
{
	uint32_t per_queue;
	uint32_t n;

	ASSERT(queues > 0);
	ASSERT(queues <= DP_WORKERS_MAX);
	per_queue = (uint32_t)rx_desc + tx_desc + DP_RING_SIZE + DP_TX_PENDING_MAX + 2 * DP_BURST;
	n = queues * per_queue + (uint32_t)(queues + 1) * DP_MBUF_CACHE;
	ASSERT(n > per_queue);
	return n;
}

/* Picks the RSS hash types the device supports among IPv4 and UDP. */
static uint64_t
rss_types(const struct rte_eth_dev_info *info)
{
	ASSERT(info != NULL);
	return info->flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
}

/*
 * Installs one rule per queue: UDP destination port base+i -> queue i. Rules are kept
 * only when all of them validate and are created; otherwise every created one is
 * destroyed and steering stays off. Returns true when steering is on.
 */
static bool
install_steering(struct dp_port *p, uint16_t port_base)
{
	struct rte_flow_attr attr = {.ingress = 1};
	struct rte_flow_item_udp udp_spec;
	struct rte_flow_item_udp udp_mask;
	struct rte_flow_action_queue queue;
	struct rte_flow_error err;
	uint16_t q;

	ASSERT(p != NULL);
	ASSERT(p->queues <= DP_WORKERS_MAX);
	for (q = 0; q < p->queues; q++) {
		struct rte_flow_item pattern[] = {
		        {.type = RTE_FLOW_ITEM_TYPE_ETH},
		        {.type = RTE_FLOW_ITEM_TYPE_IPV4},
		        {.type = RTE_FLOW_ITEM_TYPE_UDP, .spec = &udp_spec, .mask = &udp_mask},
		        {.type = RTE_FLOW_ITEM_TYPE_END},
		};
		struct rte_flow_action actions[] = {
		        {.type = RTE_FLOW_ACTION_TYPE_QUEUE, .conf = &queue},
		        {.type = RTE_FLOW_ACTION_TYPE_END},
		};

		memset(&udp_spec, 0, sizeof(udp_spec));
		memset(&udp_mask, 0, sizeof(udp_mask));
		udp_spec.hdr.dst_port = rte_cpu_to_be_16((uint16_t)(port_base + q));
		udp_mask.hdr.dst_port = 0xffff;
		queue.index = q;
		memset(&err, 0, sizeof(err));
		if (rte_flow_validate(p->port_id, &attr, pattern, actions, &err) != 0)
			goto off;
		p->flows[q] = rte_flow_create(p->port_id, &attr, pattern, actions, &err);
		if (p->flows[q] == NULL)
			goto off;
	}
	return true;
off:
	SP_LOG_INFO(MOD,
	            "steering: off (rte_flow: %s); requests on the wrong queue take the "
	            "ring hand-off",
	            err.message != NULL ? err.message : "not supported");
	for (q = 0; q < p->queues; q++) {
		if (p->flows[q] != NULL)
			rte_flow_destroy(p->port_id, p->flows[q], &err);
		p->flows[q] = NULL;
	}
	return false;
}

/* Chooses offloads and RSS from what the device offers and fills conf. */
static void
choose_offloads(struct dp_port *p, const struct rte_eth_dev_info *info, struct rte_eth_conf *conf)
{
	const uint64_t rx_want = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	const uint64_t tx_ip = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
	const uint64_t tx_udp = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;

	ASSERT(p != NULL);
	ASSERT(info != NULL);
	memset(conf, 0, sizeof(*conf));
	if ((info->rx_offload_capa & rx_want) == rx_want) {
		conf->rxmode.offloads |= rx_want;
		p->rx_csum = true;
	}
	p->tx_flags = 0;
	p->tx_ol_flags = 0;
	if ((info->tx_offload_capa & tx_ip) != 0) {
		conf->txmode.offloads |= tx_ip;
		p->tx_flags |= NET_TX_IP_CSUM_OFFLOAD;
		p->tx_ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	}
	if ((info->tx_offload_capa & tx_udp) != 0) {
		conf->txmode.offloads |= tx_udp;
		p->tx_flags |= NET_TX_UDP_CSUM_OFFLOAD;
		p->tx_ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
	}
	p->rss = false;
	if (p->queues > 1 && rss_types(info) != 0) {
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf->rx_adv_conf.rss_conf.rss_hf = rss_types(info);
		p->rss = true;
	}
}

/* Sets the configured MAC, or falls back to promiscuous mode so frames to it arrive. */
static int
apply_mac(struct dp_port *p, const struct dp_config *cfg)
{
	struct rte_ether_addr mac;
	int rc;

	ASSERT(p != NULL);
	ASSERT(cfg != NULL);
	if (!cfg->mac_set)
		return rte_eth_macaddr_get(p->port_id, &p->mac);
	memcpy(mac.addr_bytes, cfg->mac, sizeof(mac.addr_bytes));
	rc = rte_eth_dev_default_mac_addr_set(p->port_id, &mac);
	if (rc != 0) {
		SP_LOG_WARN(MOD, "port %u: cannot set MAC (%s); using promiscuous mode instead",
		            p->port_id, rte_strerror(-rc));
		rc = rte_eth_promiscuous_enable(p->port_id);
		if (rc != 0) {
			SP_LOG_ERR(MOD,
			           "port %u: --mac needs MAC change or promiscuous mode, the "
			           "device offers neither; drop --mac",
			           p->port_id);
			return rc;
		}
	}
	p->mac = mac;
	return 0;
}

/* Waits (bounded) for link up; only logs, since virtual links may report down. */
static void
wait_link(const struct dp_port *p)
{
	struct rte_eth_link link;
	uint32_t waited_ms;

	ASSERT(p != NULL);
	for (waited_ms = 0; waited_ms < LINK_WAIT_MS; waited_ms += 100) {
		memset(&link, 0, sizeof(link));
		if (rte_eth_link_get_nowait(p->port_id, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			break;
		rte_delay_ms(100);
	}
	SP_LOG_INFO(MOD, "port %u: link %s, %u Mb/s", p->port_id,
	            link.link_status == RTE_ETH_LINK_UP ? "up" : "down (going on)",
	            link.link_speed);
}

/* Configures the queues and starts the port. Returns 0 or a negative errno, logged. */
static int
configure_and_start(struct dp_port *p, const struct dp_config *cfg,
                    const struct rte_eth_dev_info *info)
{
	struct rte_eth_conf conf;
	struct rte_eth_rxconf rxq;
	struct rte_eth_txconf txq;
	uint16_t q;
	int rc;

	ASSERT(p->queues > 0);
	choose_offloads(p, info, &conf);
	rc = rte_eth_dev_configure(p->port_id, p->queues, p->queues, &conf);
	if (rc != 0) {
		SP_LOG_ERR(MOD, "port %u (%s): configure with %u queue pairs failed: %s",
		           p->port_id, p->name, p->queues, rte_strerror(-rc));
		return rc;
	}
	p->rx_desc = DP_RX_DESC;
	p->tx_desc = DP_TX_DESC;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &p->rx_desc, &p->tx_desc);
	if (rc != 0)
		return rc;
	if (p->pool != NULL) { /* a reattach: the pool the workers' mbufs come from stays */
		if (dp_port_pool_need(p->queues, p->rx_desc, p->tx_desc) > p->pool_size) {
			SP_LOG_ERR(MOD, "port %u (%s): the device came back with larger rings",
			           p->port_id, p->name);
			return -EINVAL;
		}
		goto queues;
	}
	p->pool_size = dp_port_pool_need(p->queues, p->rx_desc, p->tx_desc);
	p->pool =
	        rte_pktmbuf_pool_create("sp_mbufs", p->pool_size, DP_MBUF_CACHE, DP_META_PRIV_SIZE,
	                                RTE_MBUF_DEFAULT_BUF_SIZE, p->socket_id);
	if (p->pool == NULL) {
		SP_LOG_ERR(MOD,
		           "mbuf pool: cannot allocate %u mbufs (%" PRIu64 " MiB) on socket "
		           "%d: %s; give EAL more memory (-m / --socket-mem) or hugepages",
		           p->pool_size,
		           (uint64_t)p->pool_size * (RTE_MBUF_DEFAULT_BUF_SIZE + 192) >> 20,
		           p->socket_id, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	SP_LOG_INFO(MOD,
	            "mbuf pool: %u mbufs = %u queues x (%u rx + %u tx desc + %u ring + %u tx "
	            "backlog + %u burst) + %u lcores x %u cache",
	            p->pool_size, p->queues, p->rx_desc, p->tx_desc, DP_RING_SIZE,
	            DP_TX_PENDING_MAX, 2 * DP_BURST, p->queues + 1, DP_MBUF_CACHE);
queues:
	for (q = 0; q < p->queues; q++) {
		rxq = info->default_rxconf;
		rxq.offloads = conf.rxmode.offloads;
		rc = rte_eth_rx_queue_setup(p->port_id, q, p->rx_desc, p->socket_id, &rxq, p->pool);
		if (rc != 0) {
			SP_LOG_ERR(MOD, "port %u: rx queue %u setup: %s", p->port_id, q,
			           rte_strerror(-rc));
			return rc;
		}
		txq = info->default_txconf;
		txq.offloads = conf.txmode.offloads;
		rc = rte_eth_tx_queue_setup(p->port_id, q, p->tx_desc, p->socket_id, &txq);
		if (rc != 0) {
			SP_LOG_ERR(MOD, "port %u: tx queue %u setup: %s", p->port_id, q,
			           rte_strerror(-rc));
			return rc;
		}
	}
	rc = apply_mac(p, cfg);
	if (rc != 0)
		return rc;
	rc = rte_eth_dev_start(p->port_id);
	if (rc != 0) {
		SP_LOG_ERR(MOD, "port %u (%s): start failed: %s", p->port_id, p->name,
		           rte_strerror(-rc));
		return rc;
	}
	p->started = true;
	return 0;
}

/* af_packet: keeps the device's arguments and the interface it is bound to. */
static void
remember_devargs(struct dp_port *p, const struct rte_eth_dev_info *info)
{
	const struct rte_devargs *da = info->device ? rte_dev_devargs(info->device) : NULL;
	const char *args = da && da->args ? da->args : "";
	const char *at;

	if (strcmp(p->driver, "net_af_packet") != 0)
		return;
	snprintf(p->devargs, sizeof(p->devargs), "%s", args);
	for (at = args; (at = strstr(at, "iface=")) != NULL; at++) {
		if (at != args && at[-1] != ',')
			continue;
		size_t n = strcspn(at + 6, ",");
		if (n > 0 && n < sizeof(p->iface)) {
			memcpy(p->iface, at + 6, n);
			p->iface[n] = '\0';
			p->ifindex = if_nametoindex(p->iface);
		}
		break;
	}
}

bool
dp_port_iface_replaced(const struct dp_port *p)
{
	if (p->iface[0] == '\0' || p->ifindex == 0)
		return false;
	unsigned int now = if_nametoindex(p->iface);
	return now != 0 && now != p->ifindex;
}

int
dp_port_reattach(struct dp_port *p, const struct dp_config *cfg)
{
	struct rte_eth_dev_info info;
	struct rte_eth_stats es;
	uint16_t id;
	int rc;

	ASSERT(p->pool != NULL);
	if (p->started && rte_eth_stats_get(p->port_id, &es) == 0) {
		p->base.rx_nombuf += es.rx_nombuf;
		p->base.imissed += es.imissed;
		p->base.ierrors += es.ierrors;
		p->base.oerrors += es.oerrors;
	}
	dp_port_close(p);
	rc = rte_eal_hotplug_remove("vdev", p->name);
	if (rc != 0)
		SP_LOG_WARN(MOD, "port %s: detach: %s", p->name, rte_strerror(-rc));
	rc = rte_eal_hotplug_add("vdev", p->name, p->devargs);
	if (rc != 0) {
		SP_LOG_ERR(MOD, "port %s: attach again with '%s': %s", p->name, p->devargs,
		           rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_get_port_by_name(p->name, &id);
	if (rc != 0)
		return rc;
	p->port_id = id;
	rc = rte_eth_dev_info_get(p->port_id, &info);
	if (rc != 0)
		return rc;
	rc = configure_and_start(p, cfg, &info);
	if (rc != 0)
		return rc;
	p->ifindex = if_nametoindex(p->iface);
	p->reattaches++;
	SP_LOG_INFO(MOD,
	            "port %u (%s): attached again to %s (ifindex %u), mac " RTE_ETHER_ADDR_PRT_FMT,
	            p->port_id, p->name, p->iface, p->ifindex, RTE_ETHER_ADDR_BYTES(&p->mac));
	return 0;
}

int
dp_port_open(struct dp_port *p, const struct dp_config *cfg, uint16_t queues)
{
	struct rte_eth_dev_info info;
	uint16_t avail = rte_eth_dev_count_avail();
	int rc;

	ASSERT(p != NULL);
	ASSERT(queues > 0);
	memset(p, 0, sizeof(*p));
	p->port_id = cfg->eth_port;
	p->queues = queues;
	if (avail == 0) {
		SP_LOG_ERR(MOD, "ports: none found; add a device to the EAL options, e.g. "
		                "--vdev=net_tap0,iface=sp0 (and --no-pci for virtual devices)");
		return -ENODEV;
	}
	if (!rte_eth_dev_is_valid_port(p->port_id)) {
		SP_LOG_ERR(MOD, "--eth-port %u: no such port, %u found (ids from 0)", p->port_id,
		           avail);
		return -ENODEV;
	}
	rc = rte_eth_dev_info_get(p->port_id, &info);
	if (rc != 0)
		return rc;
	rte_eth_dev_get_name_by_port(p->port_id, p->name);
	snprintf(p->driver, sizeof(p->driver), "%s", info.driver_name);
	if (info.max_rx_queues < queues || info.max_tx_queues < queues) {
		SP_LOG_ERR(MOD,
		           "port %u (%s): %u rx / %u tx queues available, %u workers need %u; "
		           "give the device more queues (net_af_packet: qpairs=%u, net_tap "
		           "and net_ring: one per queue) or pass --workers %u",
		           p->port_id, p->name, info.max_rx_queues, info.max_tx_queues, queues,
		           queues, queues, SP_MIN(info.max_rx_queues, info.max_tx_queues));
		return -EINVAL;
	}
	p->socket_id = rte_eth_dev_socket_id(p->port_id);
	if (p->socket_id < 0)
		p->socket_id = (int)rte_socket_id();
	remember_devargs(p, &info);
	rc = configure_and_start(p, cfg, &info);
	if (rc != 0)
		goto fail;
	wait_link(p);
	p->steering = install_steering(p, cfg->port_base);
	SP_LOG_INFO(MOD,
	            "port %u (%s, %s): %u queue pairs, %u/%u desc, mac " RTE_ETHER_ADDR_PRT_FMT
	            ", rss %s, rx csum %s, tx csum ip %s udp %s, steering %s",
	            p->port_id, p->name, p->driver, p->queues, p->rx_desc, p->tx_desc,
	            RTE_ETHER_ADDR_BYTES(&p->mac), p->rss ? "on" : "off",
	            p->rx_csum ? "offload" : "software",
	            (p->tx_flags & NET_TX_IP_CSUM_OFFLOAD) ? "offload" : "software",
	            (p->tx_flags & NET_TX_UDP_CSUM_OFFLOAD) ? "offload" : "software",
	            p->steering ? "on" : "off");
	return 0;
fail:
	dp_port_close(p);
	dp_port_free_pool(p);
	return rc;
}

void
dp_port_close(struct dp_port *p)
{
	struct rte_flow_error err;
	uint16_t q;

	ASSERT(p != NULL);
	ASSERT(p->queues <= DP_WORKERS_MAX);
	for (q = 0; q < p->queues; q++) {
		if (p->flows[q] != NULL)
			rte_flow_destroy(p->port_id, p->flows[q], &err);
		p->flows[q] = NULL;
	}
	if (rte_eth_dev_is_valid_port(p->port_id) && p->queues > 0) {
		if (p->started) {
			int rc = rte_eth_dev_stop(p->port_id);
			if (rc != 0)
				SP_LOG_WARN(MOD, "port %u: stop: %s", p->port_id,
				            rte_strerror(-rc));
			p->started = false;
		}
		rte_eth_dev_close(p->port_id);
	}
}

void
dp_port_free_pool(struct dp_port *p)
{
	ASSERT(p != NULL);
	ASSERT(!p->started);
	rte_mempool_free(p->pool);
	p->pool = NULL;
}

uint32_t
dp_port_mbufs_in_use(const struct dp_port *p)
{
	ASSERT(p != NULL);
	if (p->pool == NULL)
		return 0;
	return rte_mempool_in_use_count(p->pool);
}
