/* SPDX-License-Identifier: BSD-3-Clause */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_lcore.h>

#include "common/clock.h"
#include "unmap_guard.h"

#define POLL_NS 20000L /* between grace-period checks */

typedef int (*munmap_fn)(void *, size_t);

static _Atomic(struct rte_rcu_qsbr *) guard_qsbr;
static _Atomic uint32_t guard_timeout_ms;
static _Atomic uint64_t n_waits, n_timeouts, n_direct;
static munmap_fn next_munmap; /* the definition ours hides (libc, or a sanitizer's) */

__attribute__((constructor)) static void
find_next_munmap(void)
{
	next_munmap = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
}

static int
real_munmap(void *addr, size_t len)
{
	if (next_munmap != NULL)
		return next_munmap(addr, len);
	long rc = syscall(SYS_munmap, addr, len); /* before the constructor ran */
	return rc == 0 ? 0 : -1;
}

static bool
on_worker_lcore(void)
{
	unsigned int id = rte_lcore_id();
	return id != LCORE_ID_ANY && id != rte_get_main_lcore();
}

/* Waits for every online worker to pass a quiescent state; false on timeout. */
static bool
wait_grace(struct rte_rcu_qsbr *q, uint32_t timeout_ms)
{
	uint64_t token = rte_rcu_qsbr_start(q);
	uint64_t deadline = sp_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	struct timespec ts = {0, POLL_NS};

	while (rte_rcu_qsbr_check(q, token, false) == 0) {
		if (sp_mono_ns() >= deadline)
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

int
munmap(void *addr, size_t len)
{
	struct rte_rcu_qsbr *q = atomic_load_explicit(&guard_qsbr, memory_order_acquire);

	if (q == NULL || on_worker_lcore()) {
		atomic_fetch_add_explicit(&n_direct, 1, memory_order_relaxed);
		return real_munmap(addr, len);
	}
	atomic_fetch_add_explicit(&n_waits, 1, memory_order_relaxed);
	if (!wait_grace(q, atomic_load_explicit(&guard_timeout_ms, memory_order_relaxed)))
		atomic_fetch_add_explicit(&n_timeouts, 1, memory_order_relaxed);
	return real_munmap(addr, len);
}

void
dp_unmap_guard_install(struct rte_rcu_qsbr *qsbr, uint32_t timeout_ms)
{
	atomic_store_explicit(&guard_timeout_ms,
	                      timeout_ms ? timeout_ms : DP_UNMAP_GUARD_TIMEOUT_MS,
	                      memory_order_relaxed);
	atomic_store_explicit(&guard_qsbr, qsbr, memory_order_release);
}

void
dp_unmap_guard_remove(void)
{
	atomic_store_explicit(&guard_qsbr, NULL, memory_order_release);
}

void
dp_unmap_guard_stats_get(struct dp_unmap_guard_stats *out)
{
	out->waits = atomic_load_explicit(&n_waits, memory_order_relaxed);
	out->timeouts = atomic_load_explicit(&n_timeouts, memory_order_relaxed);
	out->direct = atomic_load_explicit(&n_direct, memory_order_relaxed);
}
