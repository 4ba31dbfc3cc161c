/* SPDX-License-Identifier: BSD-3-Clause */
/* Raft message codec, conf change payloads and membership helpers. */
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
#include "common/verify.h"
#include "control/raft/raft.h"

#define BUF_BYTES 4096

static struct raft_entry ents_in[3];
static uint8_t conf_payload[RAFT_CONF_CHANGE_BYTES];

/* An append with a normal, an empty and a conf entry. */
static struct raft_msg
sample_append(void)
{
	struct raft_conf_change cc = {RAFT_CONF_ADD_LEARNER, 9};
	struct raft_msg m = {.type = RAFT_MSG_APPEND,
	                     .from = 1,
	                     .to = 2,
	                     .term = 5,
	                     .log_term = 4,
	                     .index = 10,
	                     .commit = 9,
	                     .ctx = 3};

	raft_conf_change_encode(&cc, conf_payload);
	ents_in[0] = (struct raft_entry){5, 11, RAFT_ENTRY_NORMAL, 5, "hello"};
	ents_in[1] = (struct raft_entry){5, 12, RAFT_ENTRY_NOOP, 0, NULL};
	ents_in[2] =
	        (struct raft_entry){5, 13, RAFT_ENTRY_CONF, RAFT_CONF_CHANGE_BYTES, conf_payload};
	m.entries = ents_in;
	m.n_entries = 3;
	return m;
}

static void
assert_msg_equal(const struct raft_msg *a, const struct raft_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->from, b->from);
	assert_int_equal(a->to, b->to);
	assert_int_equal(a->term, b->term);
	assert_int_equal(a->log_term, b->log_term);
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->commit, b->commit);
	assert_int_equal(a->ctx, b->ctx);
	assert_int_equal(a->reject, b->reject);
	assert_int_equal(a->reject_hint_index, b->reject_hint_index);
	assert_int_equal(a->reject_hint_term, b->reject_hint_term);
	assert_int_equal(a->n_entries, b->n_entries);
	for (uint32_t i = 0; i < a->n_entries; i++) {
		assert_int_equal(a->entries[i].term, b->entries[i].term);
		assert_int_equal(a->entries[i].index, b->entries[i].index);
		assert_int_equal(a->entries[i].type, b->entries[i].type);
		assert_int_equal(a->entries[i].len, b->entries[i].len);
		if (a->entries[i].len > 0)
			assert_memory_equal(a->entries[i].data, b->entries[i].data,
			                    a->entries[i].len);
	}
}

static void
test_append_round_trip(void **state)
{
	struct raft_msg in = sample_append(), out;
	struct raft_entry ents[8];
	uint8_t buf[BUF_BYTES];
	int n;

	(void)state;
	n = raft_msg_encode(&in, buf, sizeof(buf));
	assert_int_equal(n, (int)raft_msg_encoded_size(&in));
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, ents, SP_ARRAY_SIZE(ents)), 0);
	assert_msg_equal(&in, &out);
	assert_null(out.entries[1].data);
	/* Decoded payloads point into the buffer (zero copy). */
	assert_true((const uint8_t *)out.entries[0].data > buf);
	assert_true((const uint8_t *)out.entries[0].data < buf + n);
}

static void
test_snapshot_round_trip(void **state)
{
	struct raft_msg in = {.type = RAFT_MSG_SNAPSHOT, .from = 3, .to = 1, .term = 7}, out;
	uint8_t buf[BUF_BYTES];
	int n;

	(void)state;
	in.snapshot.meta.index = 100;
	in.snapshot.meta.term = 6;
	in.snapshot.meta.membership = (struct raft_membership){
	        .n_voters = 3, .n_learners = 1, .voters = {1, 2, 3}, .learners = {4}};
	in.snapshot.data = "image-bytes";
	in.snapshot.len = 11;
	n = raft_msg_encode(&in, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, NULL, 0), 0);
	assert_msg_equal(&in, &out);
	assert_int_equal(out.snapshot.meta.index, 100);
	assert_int_equal(out.snapshot.meta.term, 6);
	assert_int_equal(out.snapshot.meta.membership.n_voters, 3);
	assert_int_equal(out.snapshot.meta.membership.learners[0], 4);
	assert_int_equal(out.snapshot.len, 11);
	assert_memory_equal(out.snapshot.data, "image-bytes", 11);
}

/* Every strict prefix of a valid message is refused. */
static void
test_truncated_input_refused(void **state)
{
	struct raft_msg in = sample_append(), out;
	struct raft_entry ents[8];
	uint8_t buf[BUF_BYTES];
	int n;

	(void)state;
	n = raft_msg_encode(&in, buf, sizeof(buf));
	for (int len = 0; len < n; len++) {
		int rc = raft_msg_decode(buf, (size_t)len, &out, ents, SP_ARRAY_SIZE(ents));

		assert_true(rc < 0);
		if (len < 84)
			assert_int_equal(rc, -SP_ETRUNCATED);
	}
}

/* Every single-bit corruption is detected (structure or CRC32C). */
static void
test_corruption_detected(void **state)
{
	struct raft_msg in = sample_append(), out;
	struct raft_entry ents[8];
	uint8_t buf[BUF_BYTES];
	int n;

	(void)state;
	n = raft_msg_encode(&in, buf, sizeof(buf));
	for (int byte = 0; byte < n; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[byte] ^= (uint8_t)(1u << bit);
			assert_true(raft_msg_decode(buf, (size_t)n, &out, ents,
			                            SP_ARRAY_SIZE(ents)) < 0);
			buf[byte] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, ents, SP_ARRAY_SIZE(ents)), 0);
	buf[n - 1] ^= 1; /* the checksum itself */
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, ents, SP_ARRAY_SIZE(ents)),
	                 -SP_ECORRUPT);
	buf[n - 1] ^= 1;
	buf[0] = 2; /* unknown version */
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, ents, SP_ARRAY_SIZE(ents)),
	                 -SP_EMALFORMED);
}

static void
test_decode_bounds(void **state)
{
	struct raft_msg in = sample_append(), out;
	struct raft_entry ents[8];
	uint8_t buf[BUF_BYTES];
	uint32_t big = RAFT_MSG_ENTRIES_MAX + 1;
	int n;

	(void)state;
	n = raft_msg_encode(&in, buf, sizeof(buf));
	/* Caller's entry array too small. */
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, ents, 2), -SP_ETOOBIG);
	/* A count over the protocol bound is malformed whatever the caller's capacity. */
	memcpy(buf + 4, &big, sizeof(big));
	assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, ents, SIZE_MAX), -SP_EMALFORMED);
	/* Trailing garbage after a valid message. */
	n = raft_msg_encode(&in, buf, sizeof(buf));
	assert_int_not_equal(raft_msg_decode(buf, (size_t)n + 1, &out, ents, 8), 0);
}

static void
test_encode_bounds(void **state)
{
	struct raft_msg m = sample_append();
	uint8_t buf[BUF_BYTES];

	(void)state;
	assert_int_equal(raft_msg_encode(&m, buf, raft_msg_encoded_size(&m) - 1), -SP_EFULL);
	m.n_entries = RAFT_MSG_ENTRIES_MAX + 1;
	assert_int_equal(raft_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = sample_append();
	m.type = RAFT_MSG_HEARTBEAT; /* entries on a type that has none */
	assert_int_equal(raft_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m.type = RAFT_MSG_TYPE_END;
	m.n_entries = 0;
	assert_int_equal(raft_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	m = sample_append();
	ents_in[0].len = RAFT_ENTRY_BYTES_MAX + 1;
	assert_int_equal(raft_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
}

/* Random messages survive a round trip; replay with SP_TEST_SEED. */
static void
test_random_round_trips(void **state)
{
	const char *env = getenv("SP_TEST_SEED");
	uint64_t x = env != NULL ? strtoull(env, NULL, 0) : 0xc0dec0deull;
	static uint8_t data[64];
	struct raft_entry in_ents[4], out_ents[4];
	uint8_t buf[BUF_BYTES];

	(void)state;
	fprintf(stderr, "test_random_round_trips: SP_TEST_SEED=0x%llx\n", (unsigned long long)x);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	for (int iter = 0; iter < 2000; iter++) {
		struct raft_msg in = {0}, out;
		int n;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		in.type = RAFT_MSG_PRE_VOTE + (uint32_t)(x % (RAFT_MSG_TYPE_END - 1));
		in.from = x >> 3;
		in.to = x >> 5;
		in.term = x >> 7;
		in.index = x >> 11;
		in.commit = x >> 13;
		in.reject = (x >> 17) & 1;
		in.reject_hint_term = x >> 19;
		if (in.type == RAFT_MSG_APPEND || in.type == RAFT_MSG_PROPOSE) {
			in.n_entries = (uint32_t)((x >> 23) % 5);
			for (uint32_t i = 0; i < in.n_entries; i++)
				in_ents[i] =
				        (struct raft_entry){x >> 29, i + 1, RAFT_ENTRY_NORMAL,
				                            (uint32_t)((x >> (i * 6)) % 64), data};
			in.entries = in_ents;
		}
		n = raft_msg_encode(&in, buf, sizeof(buf));
		assert_true(n > 0);
		assert_int_equal(raft_msg_decode(buf, (size_t)n, &out, out_ents, 4), 0);
		assert_msg_equal(&in, &out);
	}
}

static void
test_conf_change_codec(void **state)
{
	struct raft_conf_change in = {RAFT_CONF_PROMOTE, 0x1122334455667788ull}, out;
	uint8_t buf[RAFT_CONF_CHANGE_BYTES];

	(void)state;
	raft_conf_change_encode(&in, buf);
	assert_int_equal(raft_conf_change_decode(buf, sizeof(buf), &out), 0);
	assert_int_equal(out.op, in.op);
	assert_int_equal(out.node_id, in.node_id);
	assert_int_equal(raft_conf_change_decode(buf, sizeof(buf) - 1, &out), -SP_EMALFORMED);
	assert_int_equal(raft_conf_change_decode(NULL, sizeof(buf), &out), -SP_EMALFORMED);
	buf[0] = 0; /* op 0 */
	assert_int_equal(raft_conf_change_decode(buf, sizeof(buf), &out), -SP_EMALFORMED);
	in.node_id = 1;
	raft_conf_change_encode(&in, buf);
	memset(buf + 4, 0, 8); /* node 0 */
	assert_int_equal(raft_conf_change_decode(buf, sizeof(buf), &out), -SP_EMALFORMED);
}

static void
test_membership_apply(void **state)
{
	struct raft_membership m = {.n_voters = 1, .voters = {1}};
	struct raft_conf_change cc;

	(void)state;
	cc = (struct raft_conf_change){RAFT_CONF_ADD_LEARNER, 2};
	assert_int_equal(raft_membership_apply(&m, &cc), 0);
	assert_int_equal(raft_membership_apply(&m, &cc), -SP_EEXISTS);
	assert_true(raft_membership_contains(&m, 2));
	assert_false(raft_membership_is_voter(&m, 2));
	cc = (struct raft_conf_change){RAFT_CONF_PROMOTE, 2};
	assert_int_equal(raft_membership_apply(&m, &cc), 0);
	assert_true(raft_membership_is_voter(&m, 2));
	assert_int_equal(raft_membership_apply(&m, &cc), -EINVAL); /* already a voter */
	cc = (struct raft_conf_change){RAFT_CONF_PROMOTE, 3};
	assert_int_equal(raft_membership_apply(&m, &cc), -SP_ENOTFOUND);
	cc = (struct raft_conf_change){RAFT_CONF_REMOVE, 1};
	assert_int_equal(raft_membership_apply(&m, &cc), 0);
	cc = (struct raft_conf_change){RAFT_CONF_REMOVE, 2};
	assert_int_equal(raft_membership_apply(&m, &cc), -EINVAL); /* last voter */
	assert_int_equal(m.n_voters, 1);
	for (uint64_t id = 10; id < 10 + RAFT_NODES_MAX - 1; id++) {
		cc = (struct raft_conf_change){RAFT_CONF_ADD_LEARNER, id};
		assert_int_equal(raft_membership_apply(&m, &cc), 0);
	}
	cc = (struct raft_conf_change){RAFT_CONF_ADD_LEARNER, 99};
	assert_int_equal(raft_membership_apply(&m, &cc), -SP_EFULL);
	cc = (struct raft_conf_change){7, 99};
	assert_int_equal(raft_membership_apply(&m, &cc), -EINVAL);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(raft_role_name(RAFT_LEADER), "leader");
	assert_string_equal(raft_role_name(42), "unknown");
	assert_string_equal(raft_msg_type_name(RAFT_MSG_TIMEOUT_NOW), "timeout-now");
	assert_string_equal(raft_msg_type_name(RAFT_MSG_TYPE_END), "unknown");
}

static void
test_config_validation(void **state)
{
	struct raft_config cfg;
	struct raft *r;
	int err = 0;

	(void)state;
	raft_config_init(&cfg, 1);
	cfg.heartbeat_tick = cfg.election_tick;
	assert_null(raft_create(&cfg, NULL, &err));
	assert_int_equal(err, -EINVAL);
	raft_config_init(&cfg, 1);
	cfg.bootstrap = (struct raft_membership){.n_voters = 2, .voters = {1, 1}};
	assert_null(raft_create(&cfg, NULL, &err));
	assert_int_equal(err, -EINVAL);
	raft_config_init(&cfg, 0);
	assert_null(raft_create(&cfg, NULL, &err));
	raft_config_init(&cfg, 1);
	cfg.max_inflight_msgs = 257; /* over the per-follower in-flight ring */
	assert_null(raft_create(&cfg, NULL, &err));
	assert_int_equal(err, -EINVAL);
	raft_config_init(&cfg, 1);
	cfg.bootstrap = (struct raft_membership){.n_voters = 1, .voters = {1}};
	r = raft_create(&cfg, NULL, &err);
	assert_non_null(r);
	assert_int_equal(raft_check_invariants(r), 0);
	raft_destroy(r);
}

/* Restored storage must be consistent: gaps and terms beyond the hard state are refused. */
static void
test_restore_validation(void **state)
{
	struct raft_entry ents[2] = {{1, 1, RAFT_ENTRY_NORMAL, 0, NULL},
	                             {1, 3, RAFT_ENTRY_NORMAL, 0, NULL}};
	struct raft_storage st = {.hard_state = {.term = 1}, .entries = ents, .n_entries = 2};
	struct raft_config cfg;
	struct raft *r;
	int err = 0;

	(void)state;
	raft_config_init(&cfg, 1);
	cfg.bootstrap = (struct raft_membership){.n_voters = 1, .voters = {1}};
	assert_null(raft_create(&cfg, &st, &err)); /* index gap */
	assert_int_equal(err, -EINVAL);
	ents[1].index = 2;
	ents[1].term = 2; /* term above the hard state's */
	assert_null(raft_create(&cfg, &st, &err));
	ents[1].term = 1;
	st.applied = 3; /* beyond the log */
	assert_null(raft_create(&cfg, &st, &err));
	st.applied = 1;
	st.hard_state.commit = 2;
	r = raft_create(&cfg, &st, &err);
	assert_non_null(r);
	raft_destroy(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_append_round_trip),
	        cmocka_unit_test(test_snapshot_round_trip),
	        cmocka_unit_test(test_truncated_input_refused),
	        cmocka_unit_test(test_corruption_detected),
	        cmocka_unit_test(test_decode_bounds),
	        cmocka_unit_test(test_encode_bounds),
	        cmocka_unit_test(test_random_round_trips),
	        cmocka_unit_test(test_conf_change_codec),
	        cmocka_unit_test(test_membership_apply),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_config_validation),
	        cmocka_unit_test(test_restore_validation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
