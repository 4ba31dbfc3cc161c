/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit test of the worker-to-worker hand-off rings under a minimal EAL (--no-huge, no
 * devices): the ring holds exactly DP_RING_SIZE mbufs and refuses the next one, bursts
 * come out in order, a consumer never takes more than it asks, and destroying the rings
 * gives every queued mbuf back to the pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "handoff.h"
#include "test_eal.h"

#define POOL_MBUFS (2 * DP_RING_SIZE + 2 * DP_BURST)

static struct rte_mempool *pool;

/* Fills burst with n fresh mbufs whose meta records their sequence number. */
static void
alloc_burst(struct rte_mbuf **burst, unsigned int n, uint16_t first)
{
	unsigned int i;

	assert_int_equal(rte_pktmbuf_alloc_bulk(pool, burst, n), 0);
	for (i = 0; i < n; i++) {
		dp_meta_of(burst[i])->reqs = (uint16_t)(first + i);
		dp_meta_of(burst[i])->hops = 1;
	}
}

static void
test_ring_bound_and_order(void **state)
{
	struct rte_mbuf *burst[DP_BURST];
	struct dp_handoff h;
	const int sockets[2] = {0, 0};
	unsigned int sent = 0;
	unsigned int got = 0;
	unsigned int n;
	unsigned int i;

	(void)state;
	assert_int_equal(dp_handoff_create(&h, 2, sockets), 0);
	/* Fill worker 1's ring to its bound, a burst at a time. */
	while (sent < DP_RING_SIZE) {
		alloc_burst(burst, DP_BURST, (uint16_t)sent);
		n = dp_handoff_send(&h, 1, burst, DP_BURST);
		assert_int_equal(n, DP_BURST);
		sent += n;
	}
	assert_int_equal(sent, DP_RING_SIZE);
	/* At the bound the ring takes nothing; the caller still owns the burst. */
	alloc_burst(burst, DP_BURST, 0);
	assert_int_equal(dp_handoff_send(&h, 1, burst, DP_BURST), 0);
	rte_pktmbuf_free_bulk(burst, DP_BURST);
	/* Worker 0's ring is independent and empty. */
	assert_int_equal(dp_handoff_recv(&h, 0, burst, DP_BURST), 0);
	/* The consumer gets at most what it asks for, in order. */
	n = dp_handoff_recv(&h, 1, burst, 5);
	assert_int_equal(n, 5);
	for (i = 0; i < n; i++)
		assert_int_equal(dp_meta_of(burst[i])->reqs, got + i);
	got += n;
	rte_pktmbuf_free_bulk(burst, n);
	n = dp_handoff_recv(&h, 1, burst, DP_BURST);
	assert_int_equal(n, DP_BURST);
	for (i = 0; i < n; i++)
		assert_int_equal(dp_meta_of(burst[i])->reqs, got + i);
	got += n;
	rte_pktmbuf_free_bulk(burst, n);
	/* Destroy gives back everything still queued. */
	assert_int_equal(dp_handoff_destroy(&h), DP_RING_SIZE - got);
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
}

static void
test_ring_partial_send(void **state)
{
	struct rte_mbuf *burst[DP_BURST];
	struct dp_handoff h;
	const int sockets[1] = {0};
	unsigned int sent = 0;
	unsigned int n;

	(void)state;
	assert_int_equal(dp_handoff_create(&h, 1, sockets), 0);
	/* Leave room for 10: a full burst then goes in partly, as a prefix. */
	while (sent < DP_RING_SIZE - 10) {
		unsigned int want = SP_MIN(DP_BURST, DP_RING_SIZE - 10 - sent);

		alloc_burst(burst, want, (uint16_t)sent);
		assert_int_equal(dp_handoff_send(&h, 0, burst, want), want);
		sent += want;
	}
	alloc_burst(burst, DP_BURST, 7);
	n = dp_handoff_send(&h, 0, burst, DP_BURST);
	assert_int_equal(n, 10);
	rte_pktmbuf_free_bulk(&burst[n], DP_BURST - n);
	assert_int_equal(dp_handoff_destroy(&h), DP_RING_SIZE);
	assert_int_equal(rte_mempool_in_use_count(pool), 0);
}

int
main(int argc, char **argv)
{
	char prefix[64];
	char *eal_argv[] = {argv[0],         (char *)"--no-huge",      (char *)"-m",
	                    (char *)"128",   (char *)"--no-pci",       (char *)"-l",
	                    (char *)"0",     (char *)"--no-telemetry", (char *)"--log-level",
	                    (char *)"error", (char *)"--file-prefix",  prefix};
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ring_bound_and_order),
	        cmocka_unit_test(test_ring_partial_send),
	};
	int rc;

	(void)argc;
	snprintf(prefix, sizeof(prefix), "sp_test_handoff_%d", (int)getpid());
	if (rte_eal_init((int)SP_ARRAY_SIZE(eal_argv), eal_argv) < 0) {
		fprintf(stderr, "test_handoff: EAL start-up failed\n");
		return 1;
	}
	pool = rte_pktmbuf_pool_create("test_handoff", POOL_MBUFS, 0, DP_META_PRIV_SIZE,
	                               RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (pool == NULL) {
		fprintf(stderr, "test_handoff: no mbuf pool\n");
		test_eal_stop();
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rte_mempool_free(pool);
	test_eal_stop();
	return rc;
}
