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
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <rte_eth_ring.h>
#include <rte_ring.h>

#include "common/keyhash.h"
#include "config.h"
#include "node.h"
#include "test_eal.h"

/* Keys tried by test_node_key before it gives up. */
#define TEST_NODE_KEY_TRIES 100000u

/* The partition count test_node_config() was given. */
static uint32_t test_node_partitions;

/* The worker the default routing table gives key (partition p -> worker p % 2). */
static inline uint16_t
owner_of(const char *key)
{
	return (uint16_t)(sp_key_partition(sp_key_hash(key, strlen(key)), test_node_partitions) %
	                  2);
}

/* Writes into buf the n-th key ("<stem><i>") owned by worker w; fails the test if none. */
static inline void
key_of(char *buf, size_t len, const char *stem, uint16_t w, uint32_t n)
{
	uint32_t found = 0;

	for (uint32_t i = 0; i < TEST_NODE_KEY_TRIES; i++) {
		snprintf(buf, len, "%s%u", stem, i);
		if (owner_of(buf) == w && found++ == n)
			return;
	}
	fail_msg("no key %u of worker %u", n, w);
}

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
	test_node_partitions = partitions;
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

/* Whether the node runs the memcached service, or registered operations (test_node_run's
 * ready: the services a program's tests need). */
static inline bool
test_node_has_mc(const struct dp_runtime *rt)
{
	return rt->mc != NULL;
}

static inline bool
test_node_has_tasks(const struct dp_runtime *rt)
{
	return rt->tasks != NULL;
}

/*
 * The rest of a test program's main() once test_eal_start() and test_node_config() ran and
 * the program set what is its own in rt->cfg and rt->stats: sets the node up (a failure,
 * or ready(rt) false after it, ends the program: the services the tests need are missing),
 * runs the n tests, tears the node down and stops EAL. Returns the exit status.
 */
static inline int
test_node_run(const char *name, struct dp_runtime *rt, const struct CMUnitTest *tests, size_t n,
              bool (*ready)(const struct dp_runtime *rt))
{
	struct dp_hugepages huge;
	int rc;

	memset(&huge, 0, sizeof(huge));
	if (dp_node_setup(rt, &huge) != 0 || !ready(rt)) {
		fprintf(stderr, "%s: node set-up failed\n", name);
		return 1;
	}
	rc = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	if (dp_node_teardown(rt, false) != 0)
		rc = 1;
	test_eal_stop();
	return rc;
}

#endif
