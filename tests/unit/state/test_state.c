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
#include "cluster/region.h"
#include "state/cluster_sm.h"
#include "state/health.h"
#include "state/placement.h"

static uint8_t cmdbuf[CLUSTER_CMD_BYTES_MAX];

static int
apply(struct cluster_sm *sm, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, cmdbuf, sizeof(cmdbuf));
	assert_true(n > 0);
	int err = cluster_sm_apply(sm, cmdbuf, (size_t)n, NULL);
	/* Every apply, accepted or refused, leaves a state that holds its invariants (checked
	 * here even in a build without assertions). */
	assert_true(cluster_sm_check_invariants(sm));
	/* The O(items) walk too, while it is cheap (the hard-limit test fills a million). */
	if (sm->n_config <= 4096)
		assert_true(cluster_sm_check_config(sm));
	return err;
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
	assert_int_equal(cluster_sm_apply(sm, (const uint8_t *)"", 0, NULL), -SP_ETRUNCATED);
	assert_int_equal(cluster_sm_apply(sm, (const uint8_t *)"\x63", 1, NULL), -SP_EMALFORMED);
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
		assert_int_not_equal(cluster_sm_apply(sm, cmdbuf, (size_t)len, NULL), 0);
	cmdbuf[n] = 0;
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n + 1, NULL), -SP_EMALFORMED);
	assert_int_equal(sm->n_config, 0);
	assert_true(sm->refused_cmds >= (uint64_t)n + 3);
	/* Encoding refuses what could never apply. */
	cs.key_len = CLUSTER_CONFIG_KEY_MAX + 1;
	assert_int_equal(cluster_cmd_encode(&cs, cmdbuf, sizeof(cmdbuf)), -EINVAL);
	cs.key_len = 1;
	assert_int_equal(cluster_cmd_encode(&cs, cmdbuf, 3), -SP_ETOOBIG);
	cluster_sm_free(sm);
}

/* cluster_sm_apply reports the command it decoded, so callers never decode an entry again:
 * an upsert's member, a map's entries, a refused command as decoded, garbage as type 0. */
static void
test_sm_apply_reports_command(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	struct cluster_cmd got, c = {.type = CLUSTER_CMD_MEMBER_UPSERT};
	assert_non_null(sm);
	c.member.id = 7;
	snprintf(c.member.name, sizeof(c.member.name), "seven");
	snprintf(c.member.peer_addr, sizeof(c.member.peer_addr), "127.0.0.1:2387");
	int n = cluster_cmd_encode(&c, cmdbuf, sizeof(cmdbuf));
	assert_true(n > 0);
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n, &got), 0);
	assert_int_equal(got.type, CLUSTER_CMD_MEMBER_UPSERT);
	assert_int_equal(got.member.id, 7);
	assert_string_equal(got.member.name, "seven");
	assert_string_equal(got.member.peer_addr, "127.0.0.1:2387");
	assert_true(cluster_sm_check_invariants(sm));

	c = (struct cluster_cmd){.type = CLUSTER_CMD_INIT, .partitions = 4};
	assert_int_equal(apply(sm, &c), 0);
	/* The same INIT again is refused, and still reported as what it was. */
	n = cluster_cmd_encode(&c, cmdbuf, sizeof(cmdbuf));
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n, &got), -SP_EEXISTS);
	assert_int_equal(got.type, CLUSTER_CMD_INIT);
	assert_int_equal(got.partitions, 4);

	struct cluster_cmd dp = {.type = CLUSTER_CMD_MEMBER_DP};
	dp.member.id = 7;
	dp.member.workers = 2;
	dp.member.ipv4_be = 0x0100000a;
	assert_int_equal(apply(sm, &dp), 0);
	struct sp_map_entry map[4] = {{7, 0, 0}, {7, 1, 0}, {7, 0, 0}, {7, 1, 0}};
	c = (struct cluster_cmd){
	        .type = CLUSTER_CMD_MAP_SET, .epoch = 1, .partitions = 4, .map = map};
	n = cluster_cmd_encode(&c, cmdbuf, sizeof(cmdbuf));
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n, &got), 0);
	assert_int_equal(got.type, CLUSTER_CMD_MAP_SET);
	assert_int_equal(got.epoch, 1);
	assert_int_equal(got.partitions, 4);
	assert_memory_equal(got.map, map, sizeof(map));
	assert_memory_equal(sm->map, map, sizeof(map));

	memset(&got, 0xa5, sizeof(got));
	assert_int_equal(cluster_sm_apply(sm, (const uint8_t *)"\x63", 1, &got), -SP_EMALFORMED);
	assert_int_equal(got.type, 0);
	assert_null(got.map);
	assert_true(cluster_sm_check_invariants(sm));
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
	assert_true(cluster_sm_check_config(sm)); /* the checker agrees */
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

/*
 * MEMBER_HEALTH (the detector's "down"/"up"), fenced map entries, a removed owner's
 * partitions in the region state, and the snapshot of all of it; invariants after each step.
 */
/* The checkers fail on each kind of damage they exist to catch (a checker that never
 * fails proves nothing). */
static void
test_sm_checkers_catch_corruption(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	assert_non_null(sm);
	add_member(sm, 5, 2);
	struct cluster_cmd c = {.type = CLUSTER_CMD_INIT, .partitions = 4};
	assert_int_equal(apply(sm, &c), 0);
	struct cluster_cmd dp = {.type = CLUSTER_CMD_MEMBER_DP};
	dp.member.id = 5;
	dp.member.workers = 2;
	dp.member.ipv4_be = 0x0100000a;
	assert_int_equal(apply(sm, &dp), 0);
	struct sp_map_entry map[4] = {{5, 0, 0}, {5, 1, 0}, {5, 0, 0}, {5, 1, 0}};
	c = (struct cluster_cmd){
	        .type = CLUSTER_CMD_MAP_SET, .epoch = 1, .partitions = 4, .map = map};
	assert_int_equal(apply(sm, &c), 0);
	assert_int_equal(config_set(sm, "a", "1", 1), 0);
	assert_int_equal(config_set(sm, "b", "22", 2), 0);
	assert_true(cluster_sm_check_invariants(sm));
	assert_true(cluster_sm_check_config(sm));

	sm->map[2].node_id = 0; /* a map entry naming no node */
	assert_false(cluster_sm_check_invariants(sm));
	sm->map[2].node_id = 5;
	sm->map[3].worker = SP_WORKERS_MAX;
	assert_false(cluster_sm_check_invariants(sm));
	sm->map[3].worker = 1;
	sm->epoch = 0;
	sm->partitions = 0;
	sm->epoch = 3; /* an epoch without partitions */
	assert_false(cluster_sm_check_invariants(sm));
	sm->partitions = 4;
	sm->epoch = 1;
	sm->config_bytes += 1; /* the byte count off by one */
	assert_true(cluster_sm_check_invariants(sm));
	assert_false(cluster_sm_check_config(sm));
	sm->config_bytes -= 1;
	struct cluster_config_item *t = sm->config[0]; /* out of order */
	sm->config[0] = sm->config[1];
	sm->config[1] = t;
	assert_false(cluster_sm_check_config(sm));
	sm->config[1] = sm->config[0];
	sm->config[0] = t;
	sm->members[0].workers = 0; /* a known dataplane without workers */
	assert_false(cluster_sm_check_invariants(sm));
	sm->members[0].workers = 2;
	assert_true(cluster_sm_check_invariants(sm));
	assert_true(cluster_sm_check_config(sm));
	cluster_sm_free(sm);
}

static void
test_sm_health_and_fences(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	struct cluster_cmd c = {.type = CLUSTER_CMD_INIT, .partitions = 16};
	assert_int_equal(apply(sm, &c), 0);
	add_member(sm, 1, 1);
	add_member(sm, 2, 2);
	add_member(sm, 3, 1);
	static struct sp_map_entry map[16];
	struct placement_node nodes[3] = {{1, 1}, {2, 2}, {3, 1}};
	assert_int_equal(placement_rebalance(map, 16, nodes, 3), 16);
	struct cluster_cmd ms = {
	        .type = CLUSTER_CMD_MAP_SET, .epoch = 1, .partitions = 16, .map = map};
	assert_int_equal(apply(sm, &ms), 0);
	assert_true(cluster_sm_check_invariants(sm));

	/* Down, then refused as a no-op, then up; unknown members refused. */
	struct cluster_cmd h = {.type = CLUSTER_CMD_MEMBER_HEALTH};
	h.member.id = 3;
	h.member.down = true;
	assert_int_equal(apply(sm, &h), 0);
	assert_true(cluster_sm_member(sm, 3)->down);
	assert_int_equal(apply(sm, &h), -SP_EEXISTS);
	h.member.id = 9;
	assert_int_equal(apply(sm, &h), -SP_ENOTFOUND);
	assert_true(cluster_sm_check_invariants(sm));
	/* A malformed down byte is refused by the decoder. */
	h.member.id = 3;
	int n = cluster_cmd_encode(&h, cmdbuf, sizeof(cmdbuf));
	assert_true(n > 0);
	cmdbuf[n - 1] = 2;
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n, NULL), -SP_EMALFORMED);

	/* The region state names a down member DOWN. */
	struct sp_cluster_state *st = sp_cluster_state_new(16);
	assert_non_null(st);
	assert_int_equal(cluster_sm_to_region_state(sm, 1, st), 0);
	assert_int_equal(sp_cluster_find_member(st, 3)->state, SP_MEMBER_DOWN);
	assert_int_equal(sp_cluster_state_validate(st, NULL, 0), 0);

	/* Fenced entries apply; unknown flag bits do not. */
	uint32_t p3 = 0;
	while (map[p3].node_id != 3)
		p3++;
	map[p3].flags = SP_MAP_F_FENCED;
	ms.epoch = 2;
	assert_int_equal(apply(sm, &ms), 0);
	map[p3].flags = 4;
	ms.epoch = 3;
	assert_int_equal(apply(sm, &ms), -SP_EMALFORMED);
	map[p3].flags = SP_MAP_F_FENCED;
	assert_int_equal(sm->epoch, 2);

	/* The snapshot keeps down and fences. */
	uint8_t *img;
	size_t len;
	assert_int_equal(cluster_sm_snapshot(sm, &img, &len), 0);
	struct cluster_sm *back = cluster_sm_new();
	assert_int_equal(cluster_sm_restore(back, img, len), 0);
	assert_true(cluster_sm_member(back, 3)->down);
	assert_false(cluster_sm_member(back, 2)->down);
	assert_int_equal(back->map[p3].flags, SP_MAP_F_FENCED);
	assert_true(cluster_sm_check_invariants(back));

	/* A removed owner: its partitions are fenced at this node in the region state, and a
	 * snapshot taken before the move restores. */
	struct cluster_cmd rm = {.type = CLUSTER_CMD_MEMBER_REMOVE};
	rm.member.id = 3;
	assert_int_equal(apply(sm, &rm), 0);
	assert_int_equal(cluster_sm_to_region_state(sm, 1, st), 0);
	assert_int_equal(st->map[p3].node_id, 1);
	assert_int_equal(st->map[p3].flags, SP_MAP_F_FENCED);
	assert_int_equal(sp_cluster_state_validate(st, NULL, 0), 0);
	free(img);
	assert_int_equal(cluster_sm_snapshot(sm, &img, &len), 0);
	assert_int_equal(cluster_sm_restore(back, img, len), 0);
	assert_true(cluster_sm_check_invariants(back));
	free(img);
	cluster_sm_free(back);
	sp_cluster_state_free(st);
	cluster_sm_free(sm);
}

/* Placement when a node goes down and comes back: only its partitions move, each way. */
static void
test_placement_down_and_up(void **state)
{
	(void)state;
	enum { P = 256 };
	static struct sp_map_entry map[P], before[P];
	struct placement_node all[3] = {{1, 2}, {2, 2}, {3, 2}};
	assert_int_equal(placement_rebalance(map, P, all, 3), P);
	memcpy(before, map, sizeof(map));
	uint32_t of3 = 0;
	for (uint32_t p = 0; p < P; p++)
		of3 += map[p].node_id == 3;
	/* Down: exactly node 3's partitions move, to the others. */
	assert_int_equal(placement_rebalance(map, P, all, 2), (int)of3);
	for (uint32_t p = 0; p < P; p++) {
		assert_int_not_equal(map[p].node_id, 3);
		if (before[p].node_id != 3)
			assert_memory_equal(&map[p], &before[p], sizeof(map[p]));
	}
	uint32_t lo, hi;
	placement_spread(map, P, all, 2, &lo, &hi);
	assert_true(hi - lo <= 1);
	/* Up again: it gets its share back, nothing else moves between the survivors. */
	int moved = placement_rebalance(map, P, all, 3);
	assert_true(moved >= (int)(P / 3 - 1) && moved <= (int)(P / 3 + 1));
	for (uint32_t p = 0; p < P; p++)
		if (map[p].node_id != 3)
			assert_true(map[p].node_id == before[p].node_id || before[p].node_id == 3);
	placement_spread(map, P, all, 3, &lo, &hi);
	assert_true(hi - lo <= 1);
}

static struct health_params prm = {
        .lease_ns = 300000000,
        .failure_timeout_ns = 500000000,
        .hold_down_ns = 1000000000,
        .margin_ns = 50000000,
};
#define MS 1000000ull

static struct health_report
good_report(uint64_t epoch)
{
	struct health_report r = {.has_region = true,
	                          .dp_alive = true,
	                          .serving = SP_DP_SERVING,
	                          .hb_age_ms = 10,
	                          .workers = 2,
	                          .partitions = 64,
	                          .applied_epoch = epoch};
	return r;
}

/* Ping and echo messages: round trip, and every malformed byte refused. */
static void
test_health_msg_codec(void **state)
{
	(void)state;
	uint8_t buf[HEALTH_MSG_BYTES];
	struct health_msg m = {.kind = HEALTH_PING,
	                       .from = 7,
	                       .term = 3,
	                       .send_ns = 12345,
	                       .report = good_report(9)};
	struct health_msg d;
	m.report.mac[5] = 0xab;
	m.report.revoked = true;
	health_msg_encode(&m, buf);
	assert_int_equal(health_msg_decode(buf, sizeof(buf), &d), 0);
	assert_int_equal(d.from, 7);
	assert_int_equal(d.term, 3);
	assert_int_equal(d.send_ns, 12345);
	assert_true(d.report.revoked);
	assert_true(d.report.dp_alive);
	assert_int_equal(d.report.applied_epoch, 9);
	assert_int_equal(d.report.mac[5], 0xab);
	assert_false(d.grant);
	assert_int_equal(health_msg_decode(buf, sizeof(buf) - 1, &d), -SP_EMALFORMED);
	uint8_t bad[HEALTH_MSG_BYTES];
	size_t offs[] = {0, 1, 2, 3, 4, 70};
	uint8_t vals[] = {9, 2, 0x80, 1, 200, 1};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(bad, buf, sizeof(buf));
		bad[offs[i]] = vals[i];
		assert_int_equal(health_msg_decode(bad, sizeof(bad), &d), -SP_EMALFORMED);
	}
	memcpy(bad, buf, sizeof(buf));
	bad[2] |= 1; /* a ping never grants */
	assert_int_equal(health_msg_decode(bad, sizeof(bad), &d), -SP_EMALFORMED);
	m.kind = HEALTH_ECHO;
	m.grant = true;
	health_msg_encode(&m, buf);
	assert_int_equal(health_msg_decode(buf, sizeof(buf), &d), 0);
	assert_true(d.grant);
	m.from = 0;
	health_msg_encode(&m, buf);
	assert_int_equal(health_msg_decode(buf, sizeof(buf), &d), -SP_EMALFORMED);
	/* Stretch: never shorter, about 2% longer at 1% drift. */
	assert_true(health_stretch(1000000) >= 1020000);
	assert_true(health_stretch(1000000) <= 1020410);
	assert_int_equal(health_stretch(0), 0);
	assert_int_equal(health_stretch(UINT64_MAX), UINT64_MAX);
}

/* Random bytes and random lengths never crash the decoder, and whatever it accepts
 * encodes back to the same bytes (nothing is accepted loosely). Seeded (SP_TEST_SEED). */
static void
test_health_msg_random(void **state)
{
	(void)state;
	uint64_t seed = test_seed("health_msg");
	uint64_t x = seed | 1;
	uint8_t buf[HEALTH_MSG_BYTES + 8], again[HEALTH_MSG_BYTES];
	struct health_msg m;
	uint32_t accepted = 0;
	for (int i = 0; i < 200000; i++) {
		size_t len = (lcg(&x) % 8) == 0 ? lcg(&x) % sizeof(buf) : HEALTH_MSG_BYTES;
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)lcg(&x);
		/* Bias towards valid headers and zero tails so deep fields are reached. */
		if (len == HEALTH_MSG_BYTES && (lcg(&x) & 1)) {
			buf[0] = (uint8_t)(1 + lcg(&x) % 2);
			buf[1] = HEALTH_MSG_VERSION;
			buf[2] &= 0x0f;
			buf[3] = 0;
			buf[4] = (uint8_t)(lcg(&x) % 6);
			buf[5] = 0;
			memset(buf + 12, 0, 4);
			memset(buf + 64, 0, HEALTH_MSG_BYTES - 64);
		}
		if (health_msg_decode(buf, len, &m) != 0)
			continue;
		accepted++;
		health_msg_encode(&m, again);
		assert_memory_equal(again, buf, HEALTH_MSG_BYTES);
	}
	assert_true(accepted > 1000);
}

/* The leader lease is the quorum-th most recent echoed send time plus the lease. */
static void
test_health_leader_lease(void **state)
{
	(void)state;
	struct health h;
	uint64_t voters[5] = {1, 2, 3, 4, 5};
	health_init(&h, &prm);
	assert_int_equal(health_leader_lease(&h, 1, voters, 3, 1000 * MS), 0); /* not leader */
	health_become_leader(&h, 4, 1000 * MS);
	assert_int_equal(health_leader_lease(&h, 1, voters, 3, 1000 * MS), 0); /* no echo */
	health_on_echo(&h, 2, 900 * MS);
	assert_int_equal(health_leader_lease(&h, 1, voters, 3, 1000 * MS), 900 * MS + prm.lease_ns);
	health_on_echo(&h, 3, 950 * MS);
	assert_int_equal(health_leader_lease(&h, 1, voters, 3, 1000 * MS), 950 * MS + prm.lease_ns);
	health_on_echo(&h, 3, 940 * MS); /* an older echo does not go back */
	assert_int_equal(health_leader_lease(&h, 1, voters, 3, 1000 * MS), 950 * MS + prm.lease_ns);
	/* Five voters: three needed (self, 950, 900). */
	assert_int_equal(health_leader_lease(&h, 1, voters, 5, 1000 * MS), 900 * MS + prm.lease_ns);
	/* A new term forgets echoes of the old one. */
	health_become_leader(&h, 5, 1100 * MS);
	assert_int_equal(health_leader_lease(&h, 1, voters, 3, 1100 * MS), 0);
	assert_true(health_check_invariants(&h));
}

/*
 * The detector: a silent member is suspected after the failure timeout, gets no grant,
 * and is proposed down only once its lease is void (never before a new leader settled);
 * up after the hold-down; a dataplane reported dead with its lease revoked is void at
 * once; a mismatched dataplane is unhealthy with a reason; a stale epoch gets no grant.
 */
static void
test_health_detector(void **state)
{
	(void)state;
	struct health h;
	struct health_verdict v;
	struct health_member_view m2 = {.id = 2, .workers = 2, .partitions = 64, .epoch = 5};
	struct health_report r = good_report(5);
	uint64_t t = 1000 * MS;

	health_init(&h, &prm);
	health_become_leader(&h, 1, t);
	health_on_ping(&h, 2, t, &r);
	health_judge(&h, &m2, t, &v);
	assert_true(v.healthy);
	assert_true(v.grant);
	assert_false(v.lease_void);
	health_granted(&h, 2, t);

	/* Silent for the failure timeout: suspected, no grant, but not void until settled
	 * (2 x lease stretched + margin after leadership began) and lease + margin after the
	 * last grant. */
	t += prm.failure_timeout_ns;
	health_judge(&h, &m2, t, &v);
	assert_false(v.healthy);
	assert_false(v.grant);
	assert_non_null(strstr(v.why, "no word"));
	assert_false(health_settled(&h, t));
	assert_false(v.propose_down);
	uint64_t settle = 1000 * MS + health_stretch(2 * prm.lease_ns) + prm.margin_ns;
	health_judge(&h, &m2, settle, &v);
	assert_true(v.propose_down);
	assert_true(v.lease_void);
	assert_true(health_check_invariants(&h));

	/* Committed down: healthy again, up only after the hold-down, no grant meanwhile. */
	m2.down = true;
	t = settle + 10 * MS;
	health_on_ping(&h, 2, t, &r);
	health_judge(&h, &m2, t, &v);
	assert_true(v.healthy);
	assert_false(v.grant);
	assert_false(v.propose_up);
	health_on_ping(&h, 2, t + prm.hold_down_ns, &r);
	health_judge(&h, &m2, t + prm.hold_down_ns, &v);
	assert_true(v.propose_up);
	m2.down = false;

	/* Granted, then its control plane reports the dataplane dead and the lease revoked:
	 * void at once, though the lease would run on. */
	t += prm.hold_down_ns + 10 * MS;
	health_on_ping(&h, 2, t, &r);
	health_judge(&h, &m2, t, &v);
	assert_true(v.grant);
	health_granted(&h, 2, t);
	struct health_report dead = r;
	dead.dp_alive = false;
	dead.revoked = true;
	dead.hb_age_ms = 700;
	health_on_ping(&h, 2, t + 5 * MS, &dead);
	health_judge(&h, &m2, t + 5 * MS, &v);
	assert_false(v.healthy);
	assert_non_null(strstr(v.why, "700 ms"));
	assert_true(v.lease_void);
	assert_true(v.propose_down);
	/* The same without the revocation: void only after lease (stretched) + margin. */
	struct health_report stale = dead;
	stale.revoked = false;
	health_on_ping(&h, 2, t + 10 * MS, &r);
	health_judge(&h, &m2, t + 10 * MS, &v);
	health_granted(&h, 2, t + 10 * MS);
	health_on_ping(&h, 2, t + 20 * MS, &stale);
	health_judge(&h, &m2, t + 20 * MS, &v);
	assert_false(v.lease_void);
	uint64_t end = t + 10 * MS + health_stretch(prm.lease_ns) + prm.margin_ns;
	health_on_ping(&h, 2, end - 1, &stale);
	health_judge(&h, &m2, end - 1, &v);
	assert_false(v.lease_void);
	health_on_ping(&h, 2, end, &stale);
	health_judge(&h, &m2, end, &v);
	assert_true(v.lease_void);

	/* Mismatch and stale epochs. */
	struct health_report mis = r;
	mis.partitions = 32;
	health_on_ping(&h, 2, end + MS, &mis);
	health_judge(&h, &m2, end + MS, &v);
	assert_false(v.healthy);
	assert_non_null(strstr(v.why, "--partitions 64"));
	struct health_report old = r;
	old.applied_epoch = 4;
	health_on_ping(&h, 2, end + 2 * MS, &old);
	health_judge(&h, &m2, end + 2 * MS, &v);
	assert_true(v.healthy);
	assert_false(v.grant); /* it has not installed the current map */
	/* A map that takes partitions from it: no grant until its dataplane runs that map,
	 * whatever the cluster's epoch. */
	health_took(&h, 2, 7);
	struct health_report at6 = r;
	at6.applied_epoch = 6;
	health_on_ping(&h, 2, end + 3 * MS, &at6);
	health_judge(&h, &m2, end + 3 * MS, &v);
	assert_true(v.healthy);
	assert_false(v.grant);
	struct health_report at7 = r;
	at7.applied_epoch = 7;
	health_on_ping(&h, 2, end + 4 * MS, &at7);
	health_judge(&h, &m2, end + 4 * MS, &v);
	assert_true(v.grant);
	/* A new leader wants the cluster's epoch once before any grant. */
	health_become_leader(&h, 2, end + 5 * MS);
	m2.epoch = 9;
	health_on_ping(&h, 2, end + 6 * MS, &at7);
	health_judge(&h, &m2, end + 6 * MS, &v);
	assert_false(v.grant);
	struct health_report at9 = r;
	at9.applied_epoch = 9;
	health_on_ping(&h, 2, end + 7 * MS, &at9);
	health_judge(&h, &m2, end + 7 * MS, &v);
	assert_true(v.grant);
	/* A member that was never granted by this leader is void once settled. */
	uint64_t settled = end + 7 * MS + health_stretch(2 * prm.lease_ns) + prm.margin_ns;
	assert_false(health_lease_void(&h, 77, end + 7 * MS));
	assert_true(health_lease_void(&h, 77, settled));
	health_step_down(&h);
	assert_false(health_lease_void(&h, 77, settled));
	assert_true(health_check_invariants(&h));
}

/* A random sequence of pings, silences and grants: the detector never calls a lease void
 * sooner than lease (stretched) + margin after its last grant unless the member revoked
 * it, and never proposes down a member it would grant. Seeded (SP_TEST_SEED). */
static void
test_health_random(void **state)
{
	(void)state;
	uint64_t seed = test_seed("health");
	uint64_t x = seed | 1;
	struct health h;
	struct health_verdict v;
	struct health_member_view m = {.id = 2, .workers = 2, .partitions = 64, .epoch = 5};
	uint64_t t = 1000 * MS, last_grant = 0, last_revoke = 0;

	health_init(&h, &prm);
	health_become_leader(&h, 1, t);
	for (int i = 0; i < 20000; i++) {
		t += (lcg(&x) % 60) * MS;
		uint64_t r = lcg(&x) % 10;
		struct health_report rep = good_report(5);
		if (r < 6) {
			rep.dp_alive = r != 5;
			rep.revoked = r == 5 && (lcg(&x) & 1);
			if (rep.revoked)
				last_revoke = t;
			health_on_ping(&h, 2, t, &rep);
		}
		m.down = (lcg(&x) % 50) == 0 ? !m.down : m.down;
		health_judge(&h, &m, t, &v);
		if (v.grant) {
			health_granted(&h, 2, t);
			last_grant = t;
		}
		if (v.lease_void && last_grant != 0 && last_revoke <= last_grant)
			assert_true(t >= last_grant + health_stretch(prm.lease_ns) + prm.margin_ns);
		assert_false(v.grant && v.propose_down);
		assert_true(health_check_invariants(&h));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_placement_balanced_and_minimal),
	        cmocka_unit_test(test_placement_random_minimal),
	        cmocka_unit_test(test_sm_members_map_config),
	        cmocka_unit_test(test_sm_malformed_commands),
	        cmocka_unit_test(test_sm_apply_reports_command),
	        cmocka_unit_test(test_sm_checkers_catch_corruption),
	        cmocka_unit_test(test_sm_snapshot_restore),
	        cmocka_unit_test(test_sm_health_and_fences),
	        cmocka_unit_test(test_placement_down_and_up),
	        cmocka_unit_test(test_health_msg_codec),
	        cmocka_unit_test(test_health_msg_random),
	        cmocka_unit_test(test_health_leader_lease),
	        cmocka_unit_test(test_health_detector),
	        cmocka_unit_test(test_health_random),
	        cmocka_unit_test(test_sm_config_random),
	        cmocka_unit_test(test_sm_config_hard_limits),
	};
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
