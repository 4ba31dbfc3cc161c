/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The store fixture of the unit tests that run on a real store (store, mcexec, binexec):
 * each test gets an empty store on heap memory of its own, and when the test is done the
 * store's invariants are checked before the memory goes back. Meant for cmocka setup and
 * teardown functions: both fail the running test through cmocka's assertions instead of
 * returning an error.
 */
#ifndef SP_TESTS_UNIT_STORE_FIXTURE_H
#define SP_TESTS_UNIT_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dataplane/store/store.h"
#include "tests/unit/store/store_test_util.h"

/*
 * Builds an empty store with a budget of bytes and the default item size, on aligned
 * memory it allocates; the store lives at the start of that memory, so
 * store_fixture_free() releases both. Fails the running test when the budget is unusable
 * or memory runs out; never returns NULL.
 */
static inline struct store *
store_fixture_new(size_t bytes)
{
	struct store *s = test_store_new(bytes, 0);

	assert_non_null(s);
	return s;
}

/*
 * Checks the invariants of s (store_check() == 0), failing the running test when one is
 * broken, then frees s. s may be NULL (a setup that failed before building it): then it
 * does nothing.
 */
static inline void
store_fixture_free(struct store *s)
{
	if (s == NULL)
		return;
	assert_int_equal(store_check(s), 0);
	free(s);
}

#endif
