/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The node the unit tests play on net_ring (test_mcport, test_service, test_taskport): a
 * port of two queue pairs over rings that nothing else reads, and the configuration they
 * share (10.0.0.1/24, two workers, 4 MiB a worker, busy polling). Each test then sets what
 * is its own (ports, timeouts) before dp_node_setup(). Needs EAL (test_eal.h) and net_ring.
 */
#ifndef SP_DP_TEST_NODE_H
#define SP_DP_TEST_NODE_H

#include <arpa/inet.h>
#include <stdio.h>

#include <rte_eth_ring.h>
#include <rte_ring.h>

#include "config.h"

/*
 * Creates the ring port of test `tag` (a short name, unique per test program) and fills
 * cfg with the shared configuration over it and `partitions`. Returns 0, or -1 (printed).
 */
static inline int
test_node_config(const char *tag, uint32_t partitions, struct dp_config *cfg)
{
	struct rte_ring *rx[2], *tx[2];
	int port;

	for (int i = 0; i < 2; i++) {
		char name[32];

		snprintf(name, sizeof(name), "%s_rx%d", tag, i);
		rx[i] = rte_ring_create(name, 64, 0, 0);
		snprintf(name, sizeof(name), "%s_tx%d", tag, i);
		tx[i] = rte_ring_create(name, 64, 0, 0);
		if (rx[i] == NULL || tx[i] == NULL) {
			fprintf(stderr, "%s: cannot create the port's rings\n", tag);
			return -1;
		}
	}
	port = rte_eth_from_rings(tag, rx, 2, tx, 2, 0);
	if (port < 0) {
		fprintf(stderr, "%s: cannot create the ring port\n", tag);
		return -1;
	}
	dp_config_defaults(cfg);
	cfg->ip_be = htonl(0x0a000001);
	cfg->prefix_len = 24;
	cfg->workers = 2;
	cfg->partitions = partitions;
	cfg->memory_mb = 4;
	cfg->busy_poll = true;
	cfg->eth_port = (uint16_t)port;
	return 0;
}

#endif
