/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The retry policy of shardctl's client, driven with made-up outcomes and a made-up clock:
 * the stories of ctl_retry.h (a dead endpoint listed first, a killed leader still named by
 * its followers, an election, a lost write, a wrong secret, the deadline).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_retry.h"

static const char *const eps[] = {"10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"};

/* Asks for the next attempt at now_ms; checks the address and the pause. */
static void
expect_next(struct ctl_retry *r, uint64_t now_ms, const char *addr, uint32_t pause_ms)
{
	uint32_t pause = 12345;
	const char *got = ctl_retry_next(r, now_ms, &pause);
	assert_non_null(got);
	assert_string_equal(got, addr);
	assert_int_equal(pause, pause_ms);
}

static void
test_dead_first_endpoint_then_leader(void **state)
{
	(void)state;
	struct ctl_retry r;
	ctl_retry_init(&r, eps, 3, false, 1000, 10000, 1);
	expect_next(&r, 1000, eps[0], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_UNREACHABLE, NULL), CTL_RETRY);
	expect_next(&r, 1000, eps[1], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_NOT_LEADER, eps[2]), CTL_RETRY);
	expect_next(&r, 1000, eps[2], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_ANSWERED, NULL), CTL_STOP);
	assert_int_equal(r.attempts, 3);
}

static void
test_killed_leader_named_until_election(void **state)
{
	(void)state;
	struct ctl_retry r;
	ctl_retry_init(&r, eps, 3, false, 0, 10000, 7);
	/* Round 1: the leader (eps[0]) is dead; both followers still name it. It is not
	 * dialled again in the round once it refused. */
	expect_next(&r, 0, eps[0], 0);
	ctl_retry_record(&r, CTL_UNREACHABLE, NULL);
	expect_next(&r, 1, eps[1], 0);
	ctl_retry_record(&r, CTL_NOT_LEADER, eps[0]);
	expect_next(&r, 2, eps[2], 0);
	ctl_retry_record(&r, CTL_NOT_LEADER, eps[0]);
	/* Round 2 after a pause; the dead endpoint is asked last now. */
	uint32_t pause;
	const char *a = ctl_retry_next(&r, 3, &pause);
	assert_string_equal(a, eps[1]);
	assert_in_range(pause, CTL_RETRY_BACKOFF_MIN_MS - CTL_RETRY_BACKOFF_MIN_MS / 10,
	                CTL_RETRY_BACKOFF_MIN_MS);
	/* An election is under way: no leader known. */
	ctl_retry_record(&r, CTL_UNAVAILABLE, NULL);
	expect_next(&r, 40, eps[2], 0);
	ctl_retry_record(&r, CTL_NOT_LEADER, NULL);
	expect_next(&r, 41, eps[0], 0);
	ctl_retry_record(&r, CTL_UNREACHABLE, NULL);
	/* Round 3: eps[2] won and eps[1] names it. */
	a = ctl_retry_next(&r, 42, &pause);
	assert_string_equal(a, eps[1]);
	assert_in_range(pause, 2 * CTL_RETRY_BACKOFF_MIN_MS * 9 / 10, 2 * CTL_RETRY_BACKOFF_MIN_MS);
	ctl_retry_record(&r, CTL_NOT_LEADER, eps[2]);
	expect_next(&r, 100, eps[2], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_ANSWERED, NULL), CTL_STOP);
}

static void
test_backoff_grows_to_its_cap_and_deadline_ends(void **state)
{
	(void)state;
	struct ctl_retry r;
	const uint32_t timeout_ms = 5000;
	ctl_retry_init(&r, eps, 1, true, 0, timeout_ms, 3);
	uint64_t now = 0;
	uint32_t pause, prev = 0, rounds = 0;
	const char *a;
	while ((a = ctl_retry_next(&r, now, &pause)) != NULL) {
		assert_string_equal(a, eps[0]);
		assert_true(pause <= CTL_RETRY_BACKOFF_MAX_MS);
		if (rounds > 0 && now + pause + CTL_RETRY_ATTEMPT_MIN_MS < timeout_ms) {
			/* Doubling, minus jitter, up to the cap. */
			assert_true(pause >= prev || pause >= CTL_RETRY_BACKOFF_MAX_MS * 9 / 10);
		}
		now += pause;
		assert_true(now + CTL_RETRY_ATTEMPT_MIN_MS <= timeout_ms);
		assert_int_equal(ctl_retry_record(&r, CTL_UNAVAILABLE, NULL), CTL_RETRY);
		now += 1; /* the attempt */
		prev = pause;
		rounds++;
		assert_true(rounds < 100);
	}
	/* The last attempt started just before the deadline: the time was used up. */
	assert_true(now >= timeout_ms - CTL_RETRY_ATTEMPT_MIN_MS);
	assert_true(now <= timeout_ms);
	assert_true(rounds >= 10);
}

static void
test_lost_answer_retried_only_for_reads(void **state)
{
	(void)state;
	struct ctl_retry r;
	ctl_retry_init(&r, eps, 3, false, 0, 10000, 1);
	expect_next(&r, 0, eps[0], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_LOST, NULL), CTL_STOP);
	ctl_retry_init(&r, eps, 3, true, 0, 10000, 1);
	expect_next(&r, 0, eps[0], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_LOST, NULL), CTL_RETRY);
	expect_next(&r, 0, eps[1], 0);
}

static void
test_wrong_secret_stops_at_once(void **state)
{
	(void)state;
	struct ctl_retry r;
	ctl_retry_init(&r, eps, 3, true, 0, 10000, 1);
	expect_next(&r, 0, eps[0], 0);
	assert_int_equal(ctl_retry_record(&r, CTL_DENIED, NULL), CTL_STOP);
}

static void
test_hints_bounded_and_self_hint_ignored(void **state)
{
	(void)state;
	struct ctl_retry r;
	static const char *const one[] = {"10.0.0.1:1"};
	ctl_retry_init(&r, one, 1, true, 0, 10000, 1);
	expect_next(&r, 0, one[0], 0);
	/* Members that name each other in a loop: at most CTL_RETRY_HOPS_MAX hops a round. */
	ctl_retry_record(&r, CTL_NOT_LEADER, "10.0.0.9:1");
	for (int hop = 0; hop < CTL_RETRY_HOPS_MAX; hop++) {
		expect_next(&r, 0, hop % 2 ? "10.0.0.8:1" : "10.0.0.9:1", 0);
		/* Each names the other... */
		ctl_retry_record(&r, CTL_NOT_LEADER, hop % 2 ? "10.0.0.9:1" : "10.0.0.8:1");
	}
	/* ...but the round ends and pauses before asking anyone again. */
	uint32_t pause;
	assert_string_equal(ctl_retry_next(&r, 0, &pause), one[0]);
	assert_true(pause > 0);
	/* A member naming itself is no hint. */
	ctl_retry_record(&r, CTL_NOT_LEADER, one[0]);
	assert_string_equal(ctl_retry_next(&r, 100, &pause), one[0]);
	assert_true(pause > 0);
	ctl_retry_record(&r, CTL_ANSWERED, NULL);
}

static void
test_unreachable_hint_not_dialled_again_in_round(void **state)
{
	(void)state;
	struct ctl_retry r;
	static const char *const two[] = {"10.0.0.1:1", "10.0.0.2:1"};
	ctl_retry_init(&r, two, 2, true, 0, 10000, 1);
	expect_next(&r, 0, two[0], 0);
	ctl_retry_record(&r, CTL_NOT_LEADER, "10.0.0.5:1"); /* not configured, and dead */
	expect_next(&r, 0, "10.0.0.5:1", 0);
	ctl_retry_record(&r, CTL_UNREACHABLE, NULL);
	expect_next(&r, 0, two[1], 0);
	ctl_retry_record(&r, CTL_NOT_LEADER, "10.0.0.5:1");
	/* The dead hint is skipped: the round ends and pauses. */
	uint32_t pause;
	assert_string_equal(ctl_retry_next(&r, 0, &pause), two[0]);
	assert_true(pause > 0);
	ctl_retry_record(&r, CTL_NOT_LEADER, "10.0.0.5:1");
	/* In the new round it may be alive again (restarted). */
	expect_next(&r, 30, "10.0.0.5:1", 0);
	assert_int_equal(ctl_retry_record(&r, CTL_ANSWERED, NULL), CTL_STOP);
}

static void
test_no_time_no_attempt(void **state)
{
	(void)state;
	struct ctl_retry r;
	uint32_t pause;
	ctl_retry_init(&r, eps, 3, true, 0, CTL_RETRY_ATTEMPT_MIN_MS - 1, 1);
	assert_null(ctl_retry_next(&r, 0, &pause));
	assert_int_equal(r.attempts, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_dead_first_endpoint_then_leader),
	        cmocka_unit_test(test_killed_leader_named_until_election),
	        cmocka_unit_test(test_backoff_grows_to_its_cap_and_deadline_ends),
	        cmocka_unit_test(test_lost_answer_retried_only_for_reads),
	        cmocka_unit_test(test_wrong_secret_stops_at_once),
	        cmocka_unit_test(test_hints_bounded_and_self_hint_ignored),
	        cmocka_unit_test(test_unreachable_hint_not_dialled_again_in_round),
	        cmocka_unit_test(test_no_time_no_attempt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
