/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rte_ring micro-benchmarks: the baseline and the limit for the cross-worker hand-off.
 *   BM_ring_{sp_sc,mp_mc}/<burst>         enqueue a burst and dequeue it, one core
 *   BM_ring_{sp_sc,mp_mc}_2lcore/<burst>  a producer lcore fills, this lcore drains
 * Bursts 1, 2, 4, ..., 64 (RING_BURST_MAX). items_per_second counts objects that went
 * through the ring (each enqueued once and dequeued once).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "cbench/cbench.h"
#include "cbench/cbench_eal.h"
#include "common/verify.h"

#define RING_SIZE            1024 /* slots; a power of two */
#define RING_BURST_MAX       64   /* largest burst measured */
#define RING_WAIT_MAX_MS     5000 /* the consumer's longest wait for a burst */
#define RING_POLLS_PER_CHECK 1024 /* empty polls between two clock reads */
#define PRODUCER_RUN_MAX_S   120  /* seconds a producer lcore may run at most */

static struct rte_ring *ring;

/* What a producer lcore needs; written before launch, stop written by the consumer. */
struct producer {
	unsigned int burst;
	bool single;
	atomic_bool stop;
};

static struct producer producer;

/* Starts the EAL and creates the ring once; skips the run with the reason if that fails. */
static void
setup_ring(struct cbench_state *st)
{
	int64_t burst = cbench_range(st, 0);
	char msg[128];

	if (burst < 1 || burst > RING_BURST_MAX) {
		snprintf(msg, sizeof(msg), "burst %lld outside 1..%d", (long long)burst,
		         RING_BURST_MAX);
		cbench_skip_with_error(st, msg);
		return;
	}
	if (cbench_eal_init() != 0) {
		cbench_skip_with_error(st, "DPDK EAL init failed (see stderr)");
		return;
	}
	if (ring == NULL) {
		ring = rte_ring_create("cbench_ring", RING_SIZE, (int)rte_socket_id(), 0);
		if (ring == NULL) {
			snprintf(msg, sizeof(msg), "rte_ring_create(%d): %s", RING_SIZE,
			         rte_strerror(rte_errno));
			cbench_skip_with_error(st, msg);
			return;
		}
	}
	rte_ring_reset(ring);
	ASSERT(rte_ring_count(ring) == 0);
}

static void
fill_objs(void **objs)
{
	for (unsigned int i = 0; i < RING_BURST_MAX; i++) {
		objs[i] = (void *)(uintptr_t)(i + 1);
	}
}

/* Enqueue then dequeue one burst per iteration on this core. */
static void
one_core(struct cbench_state *st, bool single)
{
	void *objs[RING_BURST_MAX];
	unsigned int burst = (unsigned int)cbench_range(st, 0);
	uint64_t short_ops = 0;

	ASSERT(ring != NULL);
	fill_objs(objs);
	while (cbench_keep_running(st)) {
		unsigned int n, m;

		if (single) {
			n = rte_ring_sp_enqueue_burst(ring, objs, burst, NULL);
			m = rte_ring_sc_dequeue_burst(ring, objs, n, NULL);
		} else {
			n = rte_ring_mp_enqueue_burst(ring, objs, burst, NULL);
			m = rte_ring_mc_dequeue_burst(ring, objs, n, NULL);
		}
		short_ops += (n != burst) + (m != n);
	}
	if (short_ops != 0) {
		cbench_skip_with_error(st, "an empty ring refused a burst or returned fewer");
		return;
	}
	cbench_set_items_processed(st, cbench_iterations(st) * burst);
}

static void
BM_ring_sp_sc(struct cbench_state *st)
{
	one_core(st, true);
}

static void
BM_ring_mp_mc(struct cbench_state *st)
{
	one_core(st, false);
}

static void
register_bursts(struct cbench *b)
{
	cbench_set_range_multiplier(b, 2);
	cbench_add_range(b, 1, RING_BURST_MAX);
	cbench_set_fixture(b, setup_ring, NULL);
	cbench_set_cycles_per_item(b);
}

CBENCH_REGISTER(BM_ring_sp_sc)
{
	register_bursts(b);
}

CBENCH_REGISTER(BM_ring_mp_mc)
{
	register_bursts(b);
}

/* The producer lcore: bulk-enqueues bursts until told to stop or out of time. */
static int
producer_main(void *arg)
{
	struct producer *p = arg;
	void *objs[RING_BURST_MAX];
	uint64_t deadline = rte_get_timer_cycles() + PRODUCER_RUN_MAX_S * rte_get_timer_hz();

	fill_objs(objs);
	/* A full ring only means the consumer is behind: retry until stopped or out of time. */
	while (!atomic_load_explicit(&p->stop, memory_order_relaxed) &&
	       rte_get_timer_cycles() < deadline) {
		unsigned int n = p->single ? rte_ring_sp_enqueue_bulk(ring, objs, p->burst, NULL)
		                           : rte_ring_mp_enqueue_bulk(ring, objs, p->burst, NULL);
		if (n == 0) {
			rte_pause();
		}
	}
	return 0;
}

static void
setup_2lcore(struct cbench_state *st)
{
	unsigned int worker;

	setup_ring(st);
	if (cbench_skipped(st)) {
		return;
	}
	worker = rte_get_next_lcore(rte_lcore_id(), 1, 0);
	if (worker >= RTE_MAX_LCORE) {
		cbench_skip_with_message(st, "needs a second lcore (2 CPUs)");
		return;
	}
	producer.burst = (unsigned int)cbench_range(st, 0);
	atomic_store(&producer.stop, false);
	if (rte_eal_remote_launch(producer_main, &producer, worker) != 0) {
		cbench_skip_with_error(st, "rte_eal_remote_launch of the producer failed");
		return;
	}
	cbench_set_user(st, &producer);
}

/* Stops the producer (if this run started one) and empties the ring. */
static void
teardown_2lcore(struct cbench_state *st)
{
	void *objs[RING_BURST_MAX];

	if (cbench_user(st) == NULL) {
		return;
	}
	atomic_store(&producer.stop, true);
	rte_eal_mp_wait_lcore();
	for (unsigned int i = 0; i < RING_SIZE && rte_ring_count(ring) > 0; i++) {
		(void)rte_ring_dequeue_burst(ring, objs, RING_BURST_MAX, NULL);
	}
	ASSERT(rte_ring_count(ring) == 0);
}

/* This lcore bulk-dequeues one burst per iteration from the producer's stream. */
static void
two_lcores(struct cbench_state *st, bool single)
{
	void *objs[RING_BURST_MAX];
	unsigned int burst = (unsigned int)cbench_range(st, 0);
	uint64_t wait_max = RING_WAIT_MAX_MS * rte_get_timer_hz() / 1000;
	uint64_t stalls = 0;

	while (cbench_keep_running(st)) {
		uint64_t polls = 0;
		uint64_t since = 0;
		unsigned int n;

		/* The clock is read only after RING_POLLS_PER_CHECK empty polls in a row. */
		for (;;) {
			uint64_t now;

			n = single ? rte_ring_sc_dequeue_bulk(ring, objs, burst, NULL)
			           : rte_ring_mc_dequeue_bulk(ring, objs, burst, NULL);
			if (n != 0) {
				break;
			}
			if (++polls % RING_POLLS_PER_CHECK != 0) {
				continue;
			}
			now = rte_get_timer_cycles();
			if (since == 0) {
				since = now;
			} else if (now - since > wait_max) {
				break;
			}
		}
		if (n == 0) {
			stalls++;
			cbench_skip_with_error(st,
			                       "no burst from the producer for RING_WAIT_MAX_MS");
		}
	}
	if (stalls != 0) {
		return;
	}
	cbench_set_items_processed(st, cbench_iterations(st) * burst);
}

static void
BM_ring_sp_sc_2lcore(struct cbench_state *st)
{
	two_lcores(st, true);
}

static void
BM_ring_mp_mc_2lcore(struct cbench_state *st)
{
	two_lcores(st, false);
}

static void
setup_sp(struct cbench_state *st)
{
	producer.single = true;
	setup_2lcore(st);
}

static void
setup_mp(struct cbench_state *st)
{
	producer.single = false;
	setup_2lcore(st);
}

static void
register_2lcore(struct cbench *b, cbench_fn setup)
{
	cbench_set_range_multiplier(b, 2);
	cbench_add_range(b, 1, RING_BURST_MAX);
	cbench_set_fixture(b, setup, teardown_2lcore);
	/* Two cores work: decide on wall time, and count both cores' CPU time. */
	cbench_use_real_time(b);
	cbench_measure_process_cpu_time(b);
}

CBENCH_REGISTER(BM_ring_sp_sc_2lcore)
{
	register_2lcore(b, setup_sp);
}

CBENCH_REGISTER(BM_ring_mp_mc_2lcore)
{
	register_2lcore(b, setup_mp);
}
