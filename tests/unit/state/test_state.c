/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../test_seed.h"
#include "common/errors.h"
#include "state/cluster_sm.h"
#include "state/placement.h"

static uint8_t cmdbuf[CLUSTER_CMD_BYTES_MAX];

static int
apply(struct cluster_sm *sm, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, cmdbuf, sizeof(cmdbuf));
	assert_true(n > 0);
	return cluster_sm_apply(sm, cmdbuf, (size_t)n);
}

static void
add_member(struct cluster_sm *sm, uint64_t id, uint16_t workers)
{
	struct cluster_cmd c = {.type = CLUSTER_CMD_MEMBER_UPSERT};
	c.member.id = id;
	snprintf(c.member.name, sizeof(c.member.name), "n%llu", (unsigned long long)id);
	snprintf(c.member.peer_addr, sizeof(c.member.peer_addr), "127.0.0.1:%llu",
	         (unsigned long long)(2380 + id));
	snprintf(c.member.client_addr, sizeof(c.member.client_addr), "127.0.0.1:%llu",
	         (unsigned long long)(2370 + id));
	assert_int_equal(apply(sm, &c), 0);
	struct cluster_cmd d = {.type = CLUSTER_CMD_MEMBER_DP};
	d.member.id = id;
	d.member.ipv4_be = 0x0100000a + (uint32_t)(id << 24);
	d.member.binary_port = 9000;
	d.member.memcached_port = 11211;
	d.member.workers = workers;
	assert_int_equal(apply(sm, &d), 0);
}

static uint64_t
lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static void
test_placement_balanced_and_minimal(void **state)
{
	(void)state;
	enum { P = 1024 };
	static struct sp_map_entry map[P];
	struct placement_node nodes[8];
	uint32_t lo, hi;

	/* One node, 2 workers: from an empty map everything is placed. */
	nodes[0] = (struct placement_node){1, 2};
	assert_int_equal(placement_rebalance(map, P, nodes, 1), P);
	placement_spread(map, P, nodes, 1, &lo, &hi);
	assert_int_equal(lo, 512);
	assert_int_equal(hi, 512);
	/* Again: nothing moves. */
	assert_int_equal(placement_rebalance(map, P, nodes, 1), 0);

	/* Growing to 2, 3, 4 nodes moves exactly what the new slots take. */
	for (uint32_t n = 2; n <= 4; n++) {
		nodes[n - 1] = (struct placement_node){n, 2};
		uint32_t slots = 2 * n;
		int moved = placement_rebalance(map, P, nodes, n);
		placement_spread(map, P, nodes, n, &lo, &hi);
		assert_true(hi - lo <= 1);
		assert_true(lo == P / slots);
		/* The new node's two slots fill up; nobody else gains. */
		assert_int_equal(moved, (int)(2 * (P / slots) + (P % slots > 0 ? 0 : 0)));
	}
	/* Shrinking: remove node 2; only its partitions move. */
	uint32_t on_node2 = 0;
	for (uint32_t p = 0; p < P; p++)
		on_node2 += map[p].node_id == 2;
	nodes[1] = nodes[3];
	int moved = placement_rebalance(map, P, nodes, 3);
	assert_int_equal(moved, (int)on_node2);
	placement_spread(map, P, nodes, 3, &lo, &hi);
	assert_true(hi - lo <= 1);
	for (uint32_t p = 0; p < P; p++)
		assert_int_not_equal(map[p].node_id, 2);

	/* Fewer workers on a node: the lost worker's partitions move. */
	nodes[0].workers = 1;
	moved = placement_rebalance(map, P, nodes, 3);
	assert_true(moved > 0);
	for (uint32_t p = 0; p < P; p++)
		if (map[p].node_id == 1)
			assert_int_equal(map[p].worker, 0);

	/* Bad input. */
	assert_int_equal(placement_rebalance(map, 1000, nodes, 3), -EINVAL);
	assert_int_equal(placement_rebalance(map, P, nodes, 0), -EINVAL);
	nodes[0].workers = 0;
	assert_int_equal(placement_rebalance(map, P, nodes, 3), -EINVAL);
}

static void
test_placement_random_minimal(void **state)
{
	(void)state;
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ull;
	printf("test_placement_random_minimal: seed %llu (replay: SP_TEST_SEED=%llu)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	static struct sp_map_entry map[4096];
	for (int round = 0; round < 200; round++) {
		uint32_t P = 1u << (lcg(&seed) % 13);
		uint32_t n = 1 + (uint32_t)(lcg(&seed) % 8);
		struct placement_node nodes[8];
		uint32_t slots = 0;
		for (uint32_t i = 0; i < n; i++) {
			nodes[i] = (struct placement_node){i + 1, (uint16_t)(1 + lcg(&seed) % 4)};
			slots += nodes[i].workers;
		}
		for (uint32_t p = 0; p < P; p++)
			map[p] = (struct sp_map_entry){(uint32_t)(1 + lcg(&seed) % 10),
			                               (uint16_t)(lcg(&seed) % 4), 0};
		/* Lower bound on moves: partitions on dead slots, plus each live slot's
		 * excess over the ceil quota. */
		uint32_t dead = 0;
		static uint32_t held[64][4];
		memset(held, 0, sizeof(held));
		for (uint32_t p = 0; p < P; p++) {
			uint32_t id = map[p].node_id;
			if (id > n || map[p].worker >= nodes[id - 1].workers)
				dead++;
			else
				held[id - 1][map[p].worker]++;
		}
		uint32_t ceil_q = (P + slots - 1) / slots, excess = 0;
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t w = 0; w < nodes[i].workers; w++)
				excess += held[i][w] > ceil_q ? held[i][w] - ceil_q : 0;
		int moved = placement_rebalance(map, P, nodes, n);
		assert_true(moved >= (int)(dead + excess));
		uint32_t lo, hi;
		placement_spread(map, P, nodes, n, &lo, &hi);
		assert_true(hi - lo <= 1);
		assert_int_equal(placement_rebalance(map, P, nodes, n), 0);
	}
}

static void
test_sm_members_map_config(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	struct cluster_cmd c = {.type = CLUSTER_CMD_INIT, .partitions = 64};
	assert_int_equal(apply(sm, &c), 0);
	assert_int_equal(apply(sm, &c), -SP_EEXISTS);
	add_member(sm, 1, 2);
	add_member(sm, 2, 2);
	assert_int_equal(sm->n_members, 2);

	/* Duplicate name refused; DP for unknown member refused. */
	struct cluster_cmd dup = {.type = CLUSTER_CMD_MEMBER_UPSERT};
	dup.member.id = 3;
	strcpy(dup.member.name, "n1");
	assert_int_equal(apply(sm, &dup), -SP_EEXISTS);
	struct cluster_cmd dp = {.type = CLUSTER_CMD_MEMBER_DP};
	dp.member.id = 9;
	dp.member.workers = 1;
	assert_int_equal(apply(sm, &dp), -SP_ENOTFOUND);

	static struct sp_map_entry map[64];
	struct placement_node nodes[2] = {{1, 2}, {2, 2}};
	assert_int_equal(placement_rebalance(map, 64, nodes, 2), 64);
	struct cluster_cmd ms = {
	        .type = CLUSTER_CMD_MAP_SET, .epoch = 1, .partitions = 64, .map = map};
	assert_int_equal(apply(sm, &ms), 0);
	assert_int_equal(apply(sm, &ms), -SP_EVERSION); /* epochs only go forward */
	ms.epoch = 2;
	map[5].worker = 7;
	assert_int_equal(apply(sm, &ms), -SP_EMALFORMED);
	map[5].worker = 0;
	ms.partitions = 32;
	assert_int_equal(apply(sm, &ms), -SP_EMALFORMED);
	assert_int_equal(sm->epoch, 1);

	struct cluster_cmd cs = {.type = CLUSTER_CMD_CONFIG_SET,
	                         .key = "b.key",
	                         .key_len = 5,
	                         .value = "two",
	                         .value_len = 3};
	assert_int_equal(apply(sm, &cs), 0);
	cs.key = "a.key";
	cs.value = "one";
	assert_int_equal(apply(sm, &cs), 0);
	cs.value = "uno";
	assert_int_equal(apply(sm, &cs), 0);
	assert_int_equal(sm->n_config, 2);
	assert_string_equal(sm->config[0]->key, "a.key");
	assert_string_equal(cluster_sm_config_get(sm, "a.key")->value, "uno");
	cs.key = "bad key";
	cs.key_len = 7;
	assert_int_equal(apply(sm, &cs), -SP_EMALFORMED);
	struct cluster_cmd cd = {.type = CLUSTER_CMD_CONFIG_DEL, .key = "zz", .key_len = 2};
	assert_int_equal(apply(sm, &cd), -SP_ENOTFOUND);
	cd.key = "b.key";
	cd.key_len = 5;
	assert_int_equal(apply(sm, &cd), 0);
	assert_null(cluster_sm_config_get(sm, "b.key"));

	struct cluster_cmd role = {.type = CLUSTER_CMD_MEMBER_ROLE};
	role.member.id = 2;
	role.member.voter = true;
	assert_int_equal(apply(sm, &role), 0);
	assert_true(cluster_sm_member(sm, 2)->voter);

	/* The region view validates with the region's own checker. */
	struct sp_cluster_state *st = sp_cluster_state_new(64);
	assert_int_equal(cluster_sm_to_region_state(sm, 1, st), 0);
	char why[SP_CLUSTER_WHY_MAX];
	assert_int_equal(sp_cluster_state_validate(st, why, sizeof(why)), 0);
	assert_int_equal(st->member_count, 2);
	sp_cluster_state_free(st);

	struct cluster_cmd rm = {.type = CLUSTER_CMD_MEMBER_REMOVE};
	rm.member.id = 1;
	assert_int_equal(apply(sm, &rm), 0);
	assert_int_equal(apply(sm, &rm), -SP_ENOTFOUND);
	assert_false(cluster_sm_map_valid(sm)); /* until the leader commits a new map */
	cluster_sm_free(sm);
}

static void
test_sm_malformed_commands(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	assert_int_equal(cluster_sm_apply(sm, (const uint8_t *)"", 0), -SP_ETRUNCATED);
	assert_int_equal(cluster_sm_apply(sm, (const uint8_t *)"\x63", 1), -SP_EMALFORMED);
	struct cluster_cmd c = {.type = CLUSTER_CMD_INIT, .partitions = 48};
	assert_int_equal(apply(sm, &c), -SP_EMALFORMED); /* not a power of two */
	/* Every truncation of a valid command is refused, never half-applied. */
	add_member(sm, 1, 1);
	struct cluster_cmd cs = {.type = CLUSTER_CMD_CONFIG_SET,
	                         .key = "k",
	                         .key_len = 1,
	                         .value = "v",
	                         .value_len = 1};
	int n = cluster_cmd_encode(&cs, cmdbuf, sizeof(cmdbuf));
	for (int len = 0; len < n; len++)
		assert_int_not_equal(cluster_sm_apply(sm, cmdbuf, (size_t)len), 0);
	cmdbuf[n] = 0;
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n + 1), -SP_EMALFORMED);
	assert_int_equal(sm->n_config, 0);
	assert_true(sm->refused_cmds >= (uint64_t)n + 3);
	/* Encoding refuses what could never apply. */
	cs.key_len = CLUSTER_CONFIG_KEY_MAX + 1;
	assert_int_equal(cluster_cmd_encode(&cs, cmdbuf, sizeof(cmdbuf)), -EINVAL);
	cs.key_len = 1;
	assert_int_equal(cluster_cmd_encode(&cs, cmdbuf, 3), -SP_ETOOBIG);
	cluster_sm_free(sm);
}

static void
test_sm_snapshot_restore(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	struct cluster_cmd c = {.type = CLUSTER_CMD_INIT, .partitions = 16};
	apply(sm, &c);
	add_member(sm, 1, 1);
	add_member(sm, 7, 3);
	static struct sp_map_entry map[16];
	struct placement_node nodes[2] = {{1, 1}, {7, 3}};
	placement_rebalance(map, 16, nodes, 2);
	struct cluster_cmd ms = {
	        .type = CLUSTER_CMD_MAP_SET, .epoch = 4, .partitions = 16, .map = map};
	assert_int_equal(apply(sm, &ms), 0);
	for (int i = 0; i < 20; i++) {
		char k[16], v[16];
		snprintf(k, sizeof(k), "key%02d", i);
		snprintf(v, sizeof(v), "val%d", i * i);
		struct cluster_cmd cs = {.type = CLUSTER_CMD_CONFIG_SET,
		                         .key = k,
		                         .key_len = (uint32_t)strlen(k),
		                         .value = v,
		                         .value_len = (uint32_t)strlen(v)};
		assert_int_equal(apply(sm, &cs), 0);
	}
	uint8_t *img;
	size_t len;
	assert_int_equal(cluster_sm_snapshot(sm, &img, &len), 0);
	struct cluster_sm *b = cluster_sm_new();
	assert_int_equal(cluster_sm_restore(b, img, len), 0);
	assert_int_equal(b->partitions, 16);
	assert_int_equal(b->epoch, 4);
	assert_int_equal(b->n_members, 2);
	assert_int_equal(b->n_config, 20);
	assert_memory_equal(b->map, sm->map, 16 * sizeof(map[0]));
	assert_string_equal(cluster_sm_config_get(b, "key07")->value, "val49");
	/* The restored state snapshots to the same bytes: apply is deterministic. */
	uint8_t *img2;
	size_t len2;
	assert_int_equal(cluster_sm_snapshot(b, &img2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(img, img2, len);
	free(img2);

	/* Any flipped byte or truncation is refused and leaves the target untouched. */
	for (size_t i = 0; i < len; i++) {
		img[i] ^= 0x20;
		assert_int_not_equal(cluster_sm_restore(b, img, len), 0);
		img[i] ^= 0x20;
	}
	for (size_t l = 0; l < len; l += 7)
		assert_int_not_equal(cluster_sm_restore(b, img, l), 0);
	assert_int_equal(b->n_config, 20);
	assert_int_equal(b->epoch, 4);
	free(img);
	cluster_sm_free(b);
	cluster_sm_free(sm);
}

static int
config_set(struct cluster_sm *sm, const char *key, const char *value, uint32_t value_len)
{
	struct cluster_cmd cs = {.type = CLUSTER_CMD_CONFIG_SET,
	                         .key = key,
	                         .key_len = (uint32_t)strlen(key),
	                         .value = value,
	                         .value_len = value_len};
	return apply(sm, &cs);
}

/* Sorted order, the item count and the byte count agree with the items. */
static void
check_config(const struct cluster_sm *sm)
{
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < sm->n_config; i++) {
		const struct cluster_config_item *it = sm->config[i];
		assert_int_equal(strlen(it->key), it->key_len);
		assert_int_equal(it->value[it->value_len], '\0');
		if (i > 0)
			assert_true(strcmp(sm->config[i - 1]->key, it->key) < 0);
		bytes += cluster_config_item_bytes(it->key_len, it->value_len);
	}
	assert_int_equal(bytes, sm->config_bytes);
}

/* Random sets and deletes over more keys than the old fixed table held, against a model;
 * then a snapshot round trip. */
static void
test_sm_config_random(void **state)
{
	(void)state;
	enum { KEYS = 3000, OPS = 20000 };
	static uint32_t model_len[KEYS]; /* value length + 1; 0 = absent */
	static uint32_t model_ver[KEYS];
	static char value[600];
	uint64_t seed = test_seed("test_sm_config_random");
	struct cluster_sm *sm = cluster_sm_new();
	uint32_t live = 0;
	memset(model_len, 0, sizeof(model_len));
	for (int op = 0; op < OPS; op++) {
		uint32_t k = (uint32_t)(lcg(&seed) % KEYS);
		char key[32];
		snprintf(key, sizeof(key), "cfg/%u", k * 2654435761u);
		if (lcg(&seed) % 4 == 0) {
			struct cluster_cmd cd = {.type = CLUSTER_CMD_CONFIG_DEL,
			                         .key = key,
			                         .key_len = (uint32_t)strlen(key)};
			assert_int_equal(apply(sm, &cd), model_len[k] ? 0 : -SP_ENOTFOUND);
			live -= model_len[k] != 0;
			model_len[k] = 0;
			continue;
		}
		uint32_t len = (uint32_t)(lcg(&seed) % sizeof(value));
		memset(value, 'a' + (int)(op % 26), len);
		assert_int_equal(config_set(sm, key, value, len), 0);
		live += model_len[k] == 0;
		model_len[k] = len + 1;
		model_ver[k] = (uint32_t)op;
	}
	assert_int_equal(sm->n_config, live);
	check_config(sm);
	for (uint32_t k = 0; k < KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "cfg/%u", k * 2654435761u);
		const struct cluster_config_item *it = cluster_sm_config_get(sm, key);
		if (model_len[k] == 0) {
			assert_null(it);
			continue;
		}
		assert_non_null(it);
		assert_int_equal(it->value_len, model_len[k] - 1);
		if (it->value_len)
			assert_int_equal(it->value[0], 'a' + (int)(model_ver[k] % 26));
	}
	uint8_t *img;
	size_t len;
	assert_int_equal(cluster_sm_snapshot(sm, &img, &len), 0);
	struct cluster_sm *back = cluster_sm_new();
	assert_int_equal(cluster_sm_restore(back, img, len), 0);
	assert_int_equal(back->n_config, sm->n_config);
	assert_int_equal(back->config_bytes, sm->config_bytes);
	check_config(back);
	for (uint32_t i = 0; i < sm->n_config; i++) {
		assert_string_equal(back->config[i]->key, sm->config[i]->key);
		assert_memory_equal(back->config[i]->value, sm->config[i]->value,
		                    sm->config[i]->value_len + 1);
	}
	free(img);
	cluster_sm_free(back);
	cluster_sm_free(sm);
}

/* The hard limits, at the limit: CLUSTER_CONFIG_KEYS_MAX keys, CLUSTER_CONFIG_BYTES_MAX
 * bytes; past them a set is refused and the state is unchanged, an overwrite or a delete
 * still works. */
static void
test_sm_config_hard_limits(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	char key[32];
	for (uint32_t i = 0; i < CLUSTER_CONFIG_KEYS_MAX; i++) {
		snprintf(key, sizeof(key), "k%07u", i); /* ascending: appends */
		assert_int_equal(config_set(sm, key, "", 0), 0);
	}
	assert_int_equal(sm->n_config, CLUSTER_CONFIG_KEYS_MAX);
	assert_int_equal(config_set(sm, "k9999999", "", 0), -SP_EFULL);
	assert_int_equal(config_set(sm, "k0000007", "v", 1), 0); /* overwrite */
	assert_int_equal(sm->n_config, CLUSTER_CONFIG_KEYS_MAX);
	check_config(sm);
	cluster_sm_free(sm);

	sm = cluster_sm_new();
	static char big[CLUSTER_CONFIG_VALUE_MAX];
	memset(big, 'x', sizeof(big));
	uint32_t n = 0;
	for (;; n++) {
		snprintf(key, sizeof(key), "big%u", n);
		int err = config_set(sm, key, big, sizeof(big));
		if (err) {
			assert_int_equal(err, -SP_EFULL);
			break;
		}
	}
	uint64_t item = cluster_config_item_bytes((uint32_t)strlen("big100"), sizeof(big));
	assert_true(sm->config_bytes <= CLUSTER_CONFIG_BYTES_MAX);
	assert_true(sm->config_bytes + item > CLUSTER_CONFIG_BYTES_MAX);
	assert_int_equal(sm->n_config, n);
	struct cluster_cmd cd = {.type = CLUSTER_CMD_CONFIG_DEL, .key = "big0", .key_len = 4};
	assert_int_equal(apply(sm, &cd), 0);
	assert_int_equal(config_set(sm, key, big, sizeof(big)), 0); /* room again */
	check_config(sm);
	/* The full store snapshots into one log record. */
	uint8_t *img;
	size_t len;
	assert_int_equal(cluster_sm_snapshot(sm, &img, &len), 0);
	assert_true(len < (64u << 20));
	free(img);
	cluster_sm_free(sm);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_placement_balanced_and_minimal),
	        cmocka_unit_test(test_placement_random_minimal),
	        cmocka_unit_test(test_sm_members_map_config),
	        cmocka_unit_test(test_sm_malformed_commands),
	        cmocka_unit_test(test_sm_snapshot_restore),
	        cmocka_unit_test(test_sm_config_random),
	        cmocka_unit_test(test_sm_config_hard_limits),
	};
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
