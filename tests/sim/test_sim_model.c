/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Self-check of the simulator's own models: the generator, the network's fault
 * injection and bounds, and that each checker catches the violation it exists for.
 * A simulator whose faults silently do nothing would pass every seed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"

#include "sim_check.h"
#include "sim_net.h"
#include "sim_rng.h"
#include "sim_storage.h"

#define PAYLOADS_MAX 4096

/* Payloads are heap integers so ASan sees any leak or double release. */
static int live_payloads;

static void *
payload_new(uint32_t v)
{
	uint32_t *p = malloc(sizeof(*p));

	assert_non_null(p);
	*p = v;
	live_payloads++;
	return p;
}

static void *
payload_clone(void *ctx, const void *payload)
{
	(void)ctx;
	return payload_new(*(const uint32_t *)payload);
}

static void
payload_release(void *ctx, void *payload)
{
	(void)ctx;
	live_payloads--;
	free(payload);
}

static const struct sim_net_hooks hooks = {
        .clone = payload_clone,
        .release = payload_release,
};

static struct sim_net *
net_new(unsigned nodes)
{
	struct sim_net *net = malloc(sizeof(*net));

	assert_non_null(net);
	assert_int_equal(sim_net_init(net, nodes, &hooks), 0);
	return net;
}

static void
net_free(struct sim_net *net)
{
	sim_net_fini(net);
	free(net);
	assert_int_equal(live_payloads, 0);
}

/* Pops everything due by `until`, returning how many, with their values in order. */
static unsigned
drain(struct sim_net *net, uint64_t until, uint32_t *vals, unsigned vals_max)
{
	struct sim_net_msg m;
	unsigned n = 0;

	for (uint64_t t = 0; t <= until; t++) {
		while (sim_net_pop(net, t, &m)) {
			assert_true(m.deliver_tick <= t);
			if (n < vals_max)
				vals[n] = *(uint32_t *)m.payload;
			n++;
			payload_release(NULL, m.payload);
		}
	}
	return n;
}

static void
test_rng_replays_and_stays_in_range(void **state)
{
	(void)state;
	struct sim_rng a, b, c;

	sim_rng_seed(&a, 42);
	sim_rng_seed(&b, 42);
	sim_rng_seed(&c, 43);
	unsigned differ = 0;
	unsigned hist[7] = {0};

	for (int i = 0; i < 10000; i++) {
		uint64_t x = sim_rng_next(&a);

		assert_true(x == sim_rng_next(&b));
		differ += x != sim_rng_next(&c);
		uint64_t r = sim_rng_range(&a, 10, 16);

		assert_true(r >= 10 && r <= 16);
		hist[r - 10]++;
		(void)sim_rng_range(&b, 10, 16);
	}
	assert_true(differ > 9990);
	/* Uniform enough: each of 7 buckets within 15% of 10000/7. */
	for (unsigned i = 0; i < 7; i++) {
		assert_true(hist[i] > 1214);
		assert_true(hist[i] < 1643);
	}
	assert_false(sim_rng_chance(&a, 0));
	assert_true(sim_rng_chance(&a, SIM_PPM));
}

static void
test_net_fifo_without_faults(void **state)
{
	(void)state;
	struct sim_net *net = net_new(3);
	struct sim_rng rng;
	uint32_t vals[64];

	sim_rng_seed(&rng, 1);
	for (uint32_t i = 0; i < 50; i++)
		assert_int_equal(sim_net_send(net, &rng, 0, 0, 1, payload_new(i)), 0);
	assert_int_equal(sim_net_in_flight(net), 50);
	/* Nothing is due before the one-tick delay. */
	struct sim_net_msg m;

	assert_false(sim_net_pop(net, 0, &m));
	assert_int_equal(drain(net, 5, vals, 64), 50);
	for (uint32_t i = 0; i < 50; i++)
		assert_int_equal(vals[i], i);
	assert_int_equal(net->stats.delivered, 50);
	net_free(net);
}

static void
test_net_delay_reorder_and_duplicate(void **state)
{
	(void)state;
	struct sim_net *net = net_new(2);
	struct sim_rng rng;
	static uint32_t vals[PAYLOADS_MAX];
	struct sim_net_faults f = {
	        .dup_ppm = 200000,
	        .reorder_ppm = 500000,
	        .delay_ticks_min = 2,
	        .delay_ticks_max = 9,
	};

	sim_rng_seed(&rng, 7);
	assert_int_equal(sim_net_set_faults(net, &f), 0);
	unsigned sent = 0, got = 0, inversions = 0;

	for (uint64_t t = 0; t < 400; t++) {
		if (sim_net_in_flight(net) + 2 <= SIM_NET_LINK_QUEUE_MAX) {
			assert_int_equal(sim_net_send(net, &rng, t, 0, 1, payload_new(sent)), 0);
			sent++;
		}
		struct sim_net_msg m;

		while (sim_net_pop(net, t, &m)) {
			/* Delivered inside the configured delay window. */
			assert_true(m.deliver_tick <= t);
			vals[got++] = *(uint32_t *)m.payload;
			payload_release(NULL, m.payload);
		}
	}
	got += drain(net, 500, vals + got, PAYLOADS_MAX - got);
	assert_int_equal(got, sent + net->stats.duplicated);
	assert_true(net->stats.duplicated > sent / 10);
	assert_true(net->stats.reordered > 0);
	for (unsigned i = 1; i < got; i++)
		inversions += vals[i] < vals[i - 1];
	assert_true(inversions > 0);
	net_free(net);
}

/* Late duplicates arrive SIM_NET_DELAY_TICKS_MAX..SIM_NET_LATE_TICKS_MAX ticks after their
 * send, behind later messages, and do not hold back the link's FIFO order. */
static void
test_net_late_duplicates(void **state)
{
	(void)state;
	struct sim_net *net = net_new(2);
	struct sim_rng rng;
	struct sim_net_faults f = {
	        .late_dup_ppm = 100000, .delay_ticks_min = 1, .delay_ticks_max = 1};
	static uint64_t sent_at[PAYLOADS_MAX];
	unsigned sent = 0, got = 0, late = 0;
	uint32_t last_on_time = 0;

	sim_rng_seed(&rng, 11);
	assert_int_equal(sim_net_set_faults(net, &f), 0);
	for (uint64_t t = 0; t < 2 * SIM_NET_LATE_TICKS_MAX; t++) {
		if (t < 300 && sim_net_in_flight(net) + 2 <= SIM_NET_LINK_QUEUE_MAX) {
			sent_at[sent] = t;
			assert_int_equal(sim_net_send(net, &rng, t, 0, 1, payload_new(sent)), 0);
			sent++;
		}
		struct sim_net_msg m;

		while (sim_net_pop(net, t, &m)) {
			uint32_t v = *(uint32_t *)m.payload;
			uint64_t age = t - sent_at[v];

			if (age >= SIM_NET_DELAY_TICKS_MAX) {
				assert_true(age <= SIM_NET_LATE_TICKS_MAX);
				late++;
			} else {
				/* On-time copies keep FIFO order and their one-tick delay. */
				assert_int_equal(age, 1);
				assert_true(v >= last_on_time);
				last_on_time = v;
			}
			got++;
			payload_release(NULL, m.payload);
		}
	}
	assert_int_equal(sim_net_in_flight(net), 0);
	assert_int_equal(got, sent + net->stats.late_duplicated);
	assert_int_equal(late, net->stats.late_duplicated);
	assert_true(late > sent / 20);
	struct sim_net_faults bad = {.late_dup_ppm = SIM_PPM + 1, .delay_ticks_max = 1};

	assert_int_equal(sim_net_set_faults(net, &bad), -EINVAL);
	net_free(net);
}

static void
test_net_delay_bounds(void **state)
{
	(void)state;
	struct sim_net *net = net_new(2);
	struct sim_rng rng;
	struct sim_net_faults f = {.delay_ticks_min = 3, .delay_ticks_max = 5};

	sim_rng_seed(&rng, 3);
	assert_int_equal(sim_net_set_faults(net, &f), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(sim_net_send(net, &rng, 10, 1, 0, payload_new(1)), 0);
		struct sim_net_msg m;

		assert_false(sim_net_pop(net, 12, &m));
		assert_true(sim_net_pop(net, 15, &m));
		assert_true(m.deliver_tick >= 13 && m.deliver_tick <= 15);
		payload_release(NULL, m.payload);
	}
	/* Bad configurations are refused and leave the old one in place. */
	struct sim_net_faults bad = {.delay_ticks_min = 4, .delay_ticks_max = 2};

	assert_int_equal(sim_net_set_faults(net, &bad), -EINVAL);
	bad = (struct sim_net_faults){.drop_ppm = SIM_PPM + 1, .delay_ticks_max = 1};
	assert_int_equal(sim_net_set_faults(net, &bad), -EINVAL);
	bad = (struct sim_net_faults){.delay_ticks_max = SIM_NET_DELAY_TICKS_MAX + 1};
	assert_int_equal(sim_net_set_faults(net, &bad), -EINVAL);
	assert_int_equal(net->faults.delay_ticks_min, 3);
	assert_int_equal(sim_net_send(net, &rng, 0, 0, 9, payload_new(1)), -EINVAL);
	net_free(net);
}

static void
test_net_drop_rate(void **state)
{
	(void)state;
	struct sim_net *net = net_new(2);
	struct sim_rng rng;
	struct sim_net_faults f = {.drop_ppm = 250000, .delay_ticks_min = 1, .delay_ticks_max = 1};

	sim_rng_seed(&rng, 11);
	assert_int_equal(sim_net_set_faults(net, &f), 0);
	unsigned delivered = 0;

	for (int i = 0; i < 4000; i++) {
		(void)sim_net_send(net, &rng, (uint64_t)i, 0, 1, payload_new(0));
		delivered += drain(net, 0, NULL, 0);
		struct sim_net_msg m;

		while (sim_net_pop(net, (uint64_t)i + 1, &m)) {
			delivered++;
			payload_release(NULL, m.payload);
		}
	}
	assert_int_equal(delivered + net->stats.dropped_random, 4000);
	assert_true(net->stats.dropped_random > 850 && net->stats.dropped_random < 1150);
	net_free(net);
}

static void
test_net_queue_bound(void **state)
{
	(void)state;
	struct sim_net *net = net_new(2);
	struct sim_rng rng;

	sim_rng_seed(&rng, 5);
	for (unsigned i = 0; i < SIM_NET_LINK_QUEUE_MAX; i++)
		assert_int_equal(sim_net_send(net, &rng, 0, 0, 1, payload_new(i)), 0);
	assert_int_equal(sim_net_send(net, &rng, 0, 0, 1, payload_new(0)), 1);
	assert_int_equal(net->stats.dropped_full, 1);
	/* The other direction has its own queue. */
	assert_int_equal(sim_net_send(net, &rng, 0, 1, 0, payload_new(0)), 0);
	assert_int_equal(sim_net_in_flight(net), SIM_NET_LINK_QUEUE_MAX + 1);
	net_free(net);
}

static void
test_net_partitions(void **state)
{
	(void)state;
	struct sim_net *net = net_new(3);
	struct sim_rng rng;
	struct sim_net_msg m;

	sim_rng_seed(&rng, 9);
	/* Symmetric: {0} against {1, 2}. */
	sim_net_partition(net, 1u << 0);
	assert_int_equal(sim_net_send(net, &rng, 0, 0, 1, payload_new(1)), 1);
	assert_int_equal(sim_net_send(net, &rng, 0, 2, 0, payload_new(1)), 1);
	assert_int_equal(sim_net_send(net, &rng, 0, 1, 2, payload_new(1)), 0);
	assert_false(sim_net_all_up(net, 0x7));
	assert_true(sim_net_all_up(net, 0x6));
	sim_net_heal(net);
	assert_true(sim_net_all_up(net, 0x7));

	/* Asymmetric and partial: 0 hears 1 but not 2; 2 still hears 0. */
	sim_net_set_link(net, 2, 0, false);
	assert_int_equal(sim_net_send(net, &rng, 0, 1, 0, payload_new(1)), 0);
	assert_int_equal(sim_net_send(net, &rng, 0, 2, 0, payload_new(1)), 1);
	assert_int_equal(sim_net_send(net, &rng, 0, 0, 2, payload_new(1)), 0);
	assert_int_equal(drain(net, 3, NULL, 0), 3);

	/* A cut that happens while a message is in flight loses it at delivery. */
	sim_net_heal(net);
	assert_int_equal(sim_net_send(net, &rng, 0, 0, 1, payload_new(1)), 0);
	sim_net_set_link(net, 0, 1, false);
	assert_false(sim_net_pop(net, 5, &m));
	assert_int_equal(net->stats.dropped_cut, 4);

	/* A down destination drops what is due to it. */
	sim_net_heal(net);
	sim_net_set_node(net, 2, false);
	assert_int_equal(sim_net_send(net, &rng, 0, 0, 2, payload_new(1)), 0);
	assert_false(sim_net_pop(net, 5, &m));
	assert_int_equal(net->stats.dropped_down, 1);
	net_free(net);
}

static struct sim_check *
check_new(void)
{
	struct sim_check *ck = malloc(sizeof(*ck));

	assert_non_null(ck);
	assert_int_equal(sim_check_init(ck), 0);
	return ck;
}

static void
check_free(struct sim_check *ck)
{
	sim_check_fini(ck);
	free(ck);
}

static void
test_check_election_safety(void **state)
{
	(void)state;
	struct sim_check *ck = check_new();

	assert_true(sim_check_leader(ck, 0, 3));
	assert_true(sim_check_leader(ck, 0, 3));
	assert_true(sim_check_leader(ck, 1, 4));
	assert_false(sim_check_leader(ck, 2, 3));
	assert_string_equal(ck->property, "election safety");
	check_free(ck);
}

static void
test_check_log_matching_and_commit(void **state)
{
	(void)state;
	struct sim_check *ck = check_new();
	uint64_t a1 = sim_chain_next(0, 1, 1, "x", 1);
	uint64_t a2 = sim_chain_next(a1, 2, 1, "y", 1);
	uint64_t b1 = sim_chain_next(0, 1, 2, "x", 1);
	uint64_t b2 = sim_chain_next(b1, 2, 1, "y", 1);

	assert_true(a2 != b2);
	assert_true(sim_check_log_entry(ck, 0, 1, 1, a1));
	assert_true(sim_check_log_entry(ck, 0, 2, 1, a2));
	assert_true(sim_check_log_entry(ck, 1, 1, 2, b1));
	/* Same index and term as node 0's entry 2, different prefix. */
	assert_false(sim_check_log_entry(ck, 1, 2, 1, b2));
	assert_string_equal(ck->property, "log matching");
	check_free(ck);

	ck = check_new();
	assert_true(sim_check_commit(ck, 0, 1, 1, a1));
	assert_true(sim_check_commit(ck, 1, 1, 1, a1));
	assert_false(sim_check_commit(ck, 2, 1, 2, b1));
	assert_string_equal(ck->property, "state machine safety");
	check_free(ck);
}

/* A leader log for the completeness check: term 1 up to index 2, nothing compacted. */
static uint64_t
log_term_at(void *ctx, uint64_t index)
{
	const uint64_t *terms = ctx;

	return terms[index];
}

static void
test_check_leader_completeness_and_apply(void **state)
{
	(void)state;
	struct sim_check *ck = check_new();
	uint64_t c1 = sim_chain_next(0, 1, 1, "a", 1);
	uint64_t c2 = sim_chain_next(c1, 2, 1, "b", 1);

	assert_true(sim_check_commit(ck, 0, 1, 1, c1));
	assert_true(sim_check_commit(ck, 0, 2, 1, c2));
	uint64_t good[3] = {0, 1, 1};
	uint64_t bad[3] = {0, 1, 2};
	uint64_t compacted[3] = {0, 0, 1};

	assert_true(sim_check_leader_complete(ck, 1, 2, 2, log_term_at, good));
	assert_true(sim_check_leader_complete(ck, 1, 2, 2, log_term_at, compacted));
	assert_true(sim_check_apply(ck, 1, 1, c1));
	assert_true(sim_check_apply(ck, 1, 2, c2));
	assert_false(sim_check_leader_complete(ck, 2, 3, 1, log_term_at, good));
	assert_string_equal(ck->property, "leader completeness");
	check_free(ck);

	ck = check_new();
	assert_true(sim_check_commit(ck, 0, 1, 1, c1));
	assert_true(sim_check_commit(ck, 0, 2, 1, c2));
	assert_false(sim_check_leader_complete(ck, 2, 3, 2, log_term_at, bad));
	assert_string_equal(ck->property, "leader completeness");
	check_free(ck);

	ck = check_new();
	assert_true(sim_check_commit(ck, 0, 1, 1, c1));
	assert_false(sim_check_apply(ck, 0, 2, c2));
	assert_string_equal(ck->property, "state machine safety");
	check_free(ck);

	ck = check_new();
	assert_false(sim_check_apply(ck, 0, 1, c1));
	assert_string_equal(ck->property, "state machine safety");
	check_free(ck);
}

static void
test_check_linearizable_reads(void **state)
{
	(void)state;
	struct sim_check *ck = check_new();
	uint64_t c[4] = {0};

	for (uint64_t i = 1; i <= 3; i++) {
		c[i] = sim_chain_next(c[i - 1], i, 1, &i, sizeof(i));
		assert_true(sim_check_commit(ck, 0, i, 1, c[i]));
	}
	uint64_t floor0 = sim_check_floor(ck);

	assert_int_equal(floor0, 0);
	assert_true(sim_check_write_acked(ck, 1, 2, floor0));
	uint64_t floor1 = sim_check_floor(ck);

	assert_int_equal(floor1, 2);
	/* A read that started before the ack may return the older state. */
	assert_true(sim_check_read(ck, 2, floor0, 1, c[1]));
	assert_true(sim_check_read(ck, 3, floor1, 3, c[3]));
	/* A write invoked after that read cannot land at or below what it returned. */
	assert_false(sim_check_write_acked(ck, 4, 3, sim_check_floor(ck)));
	assert_string_equal(ck->property, "linearizability");
	check_free(ck);

	ck = check_new();
	for (uint64_t i = 1; i <= 3; i++)
		assert_true(sim_check_commit(ck, 0, i, 1, c[i]));
	assert_true(sim_check_write_acked(ck, 1, 3, 0));
	/* Stale read: started after index 3 was acknowledged, returned index 2. */
	assert_false(sim_check_read(ck, 5, sim_check_floor(ck), 2, c[2]));
	check_free(ck);

	ck = check_new();
	assert_true(sim_check_commit(ck, 0, 1, 1, c[1]));
	/* A read of a state nothing committed. */
	assert_false(sim_check_read(ck, 6, 0, 2, c[2]));
	check_free(ck);
}

static void
make_entries(struct raft_entry *e, uint64_t first, size_t n, uint64_t term, const char *data)
{
	for (size_t i = 0; i < n; i++)
		e[i] = (struct raft_entry){.term = term,
		                           .index = first + i,
		                           .type = RAFT_ENTRY_NORMAL,
		                           .len = (uint32_t)strlen(data),
		                           .data = data};
}

static void
test_storage_truncate_compact_and_snapshot(void **state)
{
	(void)state;
	struct sim_storage st;
	struct raft_entry e[8];
	struct raft_membership m = {.n_voters = 1, .voters = {1}};

	sim_storage_init(&st);
	make_entries(e, 1, 5, 1, "abc");
	assert_int_equal(sim_storage_put_entries(&st, e, 5), 0);
	assert_int_equal(sim_storage_last_index(&st), 5);
	uint64_t c3 = sim_storage_chain_at(&st, 3);

	/* Overwriting from index 4 with another term keeps 1..3 and their chains. */
	make_entries(e, 4, 3, 2, "z");
	assert_int_equal(sim_storage_put_entries(&st, e, 3), 0);
	assert_int_equal(sim_storage_last_index(&st), 6);
	assert_int_equal(sim_storage_chain_at(&st, 3), c3);
	assert_int_equal(sim_storage_term_at(&st, 4), 2);
	/* A gap and a write below the snapshot are refused. */
	make_entries(e, 9, 1, 2, "z");
	assert_int_equal(sim_storage_put_entries(&st, e, 1), -SP_EMALFORMED);
	uint64_t c5 = sim_storage_chain_at(&st, 5);

	assert_int_equal(sim_storage_compact(&st, 5, &m), 0);
	assert_int_equal(sim_storage_chain_at(&st, 5), c5);
	assert_int_equal(sim_storage_chain_at(&st, 3), 0);
	assert_int_equal(sim_storage_last_index(&st), 6);
	make_entries(e, 5, 1, 2, "z");
	assert_int_equal(sim_storage_put_entries(&st, e, 1), -SP_EMALFORMED);

	/* The view a restart gets: snapshot at 5 and entry 6. */
	struct raft_storage view;
	static struct raft_entry scratch[16];
	uint8_t snap[SIM_SNAPSHOT_DATA_BYTES];
	uint64_t idx, chain;

	sim_storage_view(&st, &view, scratch, snap);
	assert_int_equal(view.snapshot.meta.index, 5);
	assert_int_equal(view.n_entries, 1);
	assert_int_equal(view.entries[0].index, 6);
	assert_int_equal(view.applied, 5);
	assert_int_equal(
	        sim_snapshot_data_decode(view.snapshot.data, view.snapshot.len, &idx, &chain), 0);
	assert_int_equal(idx, 5);
	assert_int_equal(chain, c5);

	/* An installed snapshot replaces the whole log, even one it overlaps. */
	uint8_t data[SIM_SNAPSHOT_DATA_BYTES];
	uint64_t c6 = sim_storage_chain_at(&st, 6);

	sim_snapshot_data_encode(5, c5, data);
	struct raft_snapshot rs = {.meta = {.index = 5, .term = 1, .membership = m},
	                           .data = data,
	                           .len = sizeof(data)};

	assert_true(c6 != 0);
	assert_int_equal(sim_storage_put_snapshot(&st, &rs), 0);
	assert_int_equal(sim_storage_last_index(&st), 5);
	assert_int_equal(sim_storage_chain_at(&st, 6), 0);
	sim_snapshot_data_encode(9, 77, data);
	rs.meta.index = 9;
	rs.meta.term = 3;
	assert_int_equal(sim_storage_put_snapshot(&st, &rs), 0);
	assert_int_equal(sim_storage_last_index(&st), 9);
	assert_int_equal(sim_storage_chain_at(&st, 9), 77);
	/* Malformed snapshot data is refused. */
	rs.len = 3;
	assert_int_equal(sim_storage_put_snapshot(&st, &rs), -SP_EMALFORMED);
	sim_storage_fini(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rng_replays_and_stays_in_range),
	        cmocka_unit_test(test_net_fifo_without_faults),
	        cmocka_unit_test(test_net_delay_reorder_and_duplicate),
	        cmocka_unit_test(test_net_late_duplicates),
	        cmocka_unit_test(test_net_delay_bounds),
	        cmocka_unit_test(test_net_drop_rate),
	        cmocka_unit_test(test_net_queue_bound),
	        cmocka_unit_test(test_net_partitions),
	        cmocka_unit_test(test_check_election_safety),
	        cmocka_unit_test(test_check_log_matching_and_commit),
	        cmocka_unit_test(test_check_leader_completeness_and_apply),
	        cmocka_unit_test(test_check_linearizable_reads),
	        cmocka_unit_test(test_storage_truncate_compact_and_snapshot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
