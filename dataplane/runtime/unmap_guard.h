/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The unmap guard: no memory is unmapped under a worker that is inside a device burst.
 *
 * Why: DPDK 22.11's memif PMD tears a connection down from the EAL interrupt thread
 * (memif_disconnect: clear the connected flag, then munmap the shared regions) with no
 * synchronisation with the threads polling the port. A worker that has just passed the
 * flag check in eth_memif_rx and is preempted then reads ring->head in unmapped memory
 * (SIGSEGV at librte_net_memif.so.23.0+0x8b03). The PMD gives the application no hook
 * between the two steps, so the dataplane interposes munmap itself.
 *
 * How: shardplane-dp defines munmap (exported, so the dlopen'ed PMDs bind to it). Called
 * from a thread that is not a worker lcore while a guard is installed, it first waits for
 * one grace period of the routing table's QSBR: every online worker reports a quiescent
 * state once per loop iteration, after all of that iteration's rx/tx bursts, and goes
 * offline only while asleep between iterations. So when the wait ends, every burst that
 * might have seen the region mapped has returned, and every later burst sees the
 * connected flag cleared (it was cleared before munmap was called). Then the real munmap
 * runs. A worker's own munmap (allocator purges) goes straight through; a wait is bounded
 * by the timeout given at install (then the unmap proceeds and is counted).
 *
 * Not on the per-packet path: workers only report quiescent states, as they already do.
 */
#ifndef SP_DP_UNMAP_GUARD_H
#define SP_DP_UNMAP_GUARD_H

#include <stdint.h>

#include <rte_rcu_qsbr.h>

#define DP_UNMAP_GUARD_TIMEOUT_MS 1000u

struct dp_unmap_guard_stats {
	uint64_t waits;    /* unmaps that waited for a grace period */
	uint64_t timeouts; /* waits that hit the timeout */
	uint64_t direct;   /* unmaps by workers, or with no guard installed */
};

/* Installs the guard over qsbr's readers (the workers); timeout_ms 0 means the default.
 * Call before the workers start. */
void dp_unmap_guard_install(struct rte_rcu_qsbr *qsbr, uint32_t timeout_ms);

/* Removes it; call once the workers have stopped, before qsbr is freed. */
void dp_unmap_guard_remove(void);

void dp_unmap_guard_stats_get(struct dp_unmap_guard_stats *out);

#endif
