/* SPDX-License-Identifier: BSD-3-Clause */
/* The unmap guard without the EAL: a reader thread stands in for a worker in a burst. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "unmap_guard.h"

struct fixture {
	struct rte_rcu_qsbr *q;
	atomic_bool go_quiescent; /* the "burst" ends */
	atomic_bool unmapped;
	atomic_bool stop;
	atomic_bool online; /* the reader is registered and online */
	void *page;
	uint64_t unmap_ns;
	bool returned_after_release; /* munmap returned only once the reader reported */
};

static void *
reader(void *arg)
{
	struct fixture *f = arg;
	rte_rcu_qsbr_thread_register(f->q, 0);
	rte_rcu_qsbr_thread_online(f->q, 0);
	atomic_store(&f->online, true);
	while (!atomic_load(&f->stop)) {
		if (atomic_load(&f->go_quiescent))
			rte_rcu_qsbr_quiescent(f->q, 0);
		usleep(100);
	}
	rte_rcu_qsbr_thread_offline(f->q, 0);
	rte_rcu_qsbr_thread_unregister(f->q, 0);
	return NULL;
}

static void *
unmapper(void *arg)
{
	struct fixture *f = arg;
	uint64_t t0 = sp_mono_ns();
	assert_int_equal(munmap(f->page, 4096), 0);
	f->unmap_ns = sp_mono_ns() - t0;
	f->returned_after_release = atomic_load(&f->go_quiescent);
	atomic_store(&f->unmapped, true);
	return NULL;
}

static struct fixture *
fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	size_t sz = rte_rcu_qsbr_get_memsize(1);
	f->q = aligned_alloc(64, (sz + 63) & ~(size_t)63);
	assert_int_equal(rte_rcu_qsbr_init(f->q, 1), 0);
	f->page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->page != MAP_FAILED);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	free(f->q);
	free(f);
}

/* An unmap waits while a reader is inside its "burst", and goes on once it reports. */
static void
test_waits_for_reader(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dp_unmap_guard_stats before, after;
	pthread_t r, u;
	dp_unmap_guard_stats_get(&before);
	dp_unmap_guard_install(f->q, 5000);
	assert_int_equal(pthread_create(&r, NULL, reader, f), 0);
	while (!atomic_load(&f->online))
		usleep(1000); /* the reader is online, not quiescent */
	assert_int_equal(pthread_create(&u, NULL, unmapper, f), 0);
	usleep(100000);
	assert_false(atomic_load(&f->unmapped)); /* still waiting for the reader */
	atomic_store(&f->go_quiescent, true);
	assert_int_equal(pthread_join(u, NULL), 0);
	assert_true(atomic_load(&f->unmapped));
	assert_true(f->returned_after_release);
	assert_true(f->unmap_ns < 5000000000u);
	atomic_store(&f->stop, true);
	assert_int_equal(pthread_join(r, NULL), 0);
	dp_unmap_guard_remove();
	dp_unmap_guard_stats_get(&after);
	assert_int_equal(after.waits - before.waits, 1);
	assert_int_equal(after.timeouts - before.timeouts, 0);
	fixture_free(f);
}

/* A reader that never reports: the unmap goes ahead at the timeout and is counted. */
static void
test_timeout_bounds_the_wait(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dp_unmap_guard_stats before, after;
	pthread_t r, u;
	dp_unmap_guard_stats_get(&before);
	dp_unmap_guard_install(f->q, 150);
	assert_int_equal(pthread_create(&r, NULL, reader, f), 0);
	while (!atomic_load(&f->online))
		usleep(1000);
	assert_int_equal(pthread_create(&u, NULL, unmapper, f), 0);
	assert_int_equal(pthread_join(u, NULL), 0);
	assert_true(f->unmap_ns >= 150000000u && f->unmap_ns < 2000000000u);
	atomic_store(&f->stop, true);
	assert_int_equal(pthread_join(r, NULL), 0);
	dp_unmap_guard_remove();
	dp_unmap_guard_stats_get(&after);
	assert_int_equal(after.timeouts - before.timeouts, 1);
	fixture_free(f);
}

/* No reader online (workers asleep), or no guard: no wait. */
static void
test_no_wait_without_readers(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dp_unmap_guard_stats before, after;
	dp_unmap_guard_stats_get(&before);
	dp_unmap_guard_install(f->q, 5000);
	uint64_t t0 = sp_mono_ns();
	assert_int_equal(munmap(f->page, 4096), 0);
	assert_true(sp_mono_ns() - t0 < 1000000000u);
	dp_unmap_guard_remove();
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(munmap(p, 4096), 0);
	dp_unmap_guard_stats_get(&after);
	assert_int_equal(after.waits - before.waits, 1);
	assert_true(after.direct - before.direct >= 1);
	/* The real munmap's errors come through. */
	assert_int_equal(munmap((void *)1, 4096), -1);
	fixture_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_waits_for_reader),
	        cmocka_unit_test(test_timeout_bounds_the_wait),
	        cmocka_unit_test(test_no_wait_without_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
