/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The API's checks before a write is proposed (control/cp/validate.c): every refusal with
 * its code and a reason that names the limit, against a real cluster state.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"
#include "common/errors.h"
#include "validate.h"

static uint8_t cmdbuf[CLUSTER_CMD_BYTES_MAX];

static void
apply_ok(struct cluster_sm *sm, const struct cluster_cmd *cmd)
{
	int n = cluster_cmd_encode(cmd, cmdbuf, sizeof(cmdbuf));
	assert_true(n > 0);
	assert_int_equal(cluster_sm_apply(sm, cmdbuf, (size_t)n, NULL), 0);
	assert_true(cluster_sm_check_invariants(sm));
}

static void
set_key(struct cluster_sm *sm, const char *key, const char *value)
{
	struct cluster_cmd c = {.type = CLUSTER_CMD_CONFIG_SET,
	                        .key = key,
	                        .key_len = (uint32_t)strlen(key),
	                        .value = value,
	                        .value_len = (uint32_t)strlen(value)};
	apply_ok(sm, &c);
}

static struct cp_config
limits(uint32_t keys, uint32_t value, uint64_t bytes)
{
	struct cp_config cfg = {0};
	cfg.config_max_keys = keys;
	cfg.config_max_value = value;
	cfg.config_max_bytes = bytes;
	return cfg;
}

static void
test_config_set_limits(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	char why[200], key[CLUSTER_CONFIG_KEY_MAX + 2];
	assert_non_null(sm);
	/* Two keys, values of 8 bytes, 70 bytes in all (16 per item besides key and value). */
	struct cp_config cfg = limits(2, 8, 70);

	assert_int_equal(cp_check_config_set(sm, &cfg, NULL, "v", why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "needs"));
	assert_int_equal(cp_check_config_set(sm, &cfg, "k", NULL, why, sizeof(why)), -EINVAL);

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0'; /* one byte over the key limit */
	assert_int_equal(cp_check_config_set(sm, &cfg, key, "v", why, sizeof(why)), -SP_ETOOBIG);
	assert_non_null(strstr(why, "longer than 128"));
	key[CLUSTER_CONFIG_KEY_MAX] = '\0'; /* exactly at it */
	assert_int_equal(cp_check_config_set(sm, &cfg, key, "v", why, sizeof(why)), -SP_ETOOBIG);
	assert_non_null(strstr(why, "--config-max-bytes")); /* 128 + 1 + 16 > 70 */

	assert_int_equal(cp_check_config_set(sm, &cfg, "a", "123456789", why, sizeof(why)),
	                 -SP_ETOOBIG);
	assert_non_null(strstr(why, "--config-max-value"));
	assert_int_equal(cp_check_config_set(sm, &cfg, "a", "12345678", why, sizeof(why)), 0);

	set_key(sm, "a", "12345678"); /* 25 bytes */
	set_key(sm, "b", "1234");     /* 21 bytes: 46 in all, two keys */
	assert_int_equal(cp_check_config_set(sm, &cfg, "c", "", why, sizeof(why)), -SP_ETOOBIG);
	assert_non_null(strstr(why, "--config-max-keys"));
	/* Replacing a key adds no key, and gives its old value's bytes back. */
	assert_int_equal(cp_check_config_set(sm, &cfg, "b", "12345678", why, sizeof(why)), 0);
	cfg = limits(3, 8, 46);
	assert_int_equal(cp_check_config_set(sm, &cfg, "b", "1234", why, sizeof(why)), 0);
	assert_int_equal(cp_check_config_set(sm, &cfg, "b", "12345", why, sizeof(why)),
	                 -SP_ETOOBIG);
	assert_non_null(strstr(why, "47 bytes"));
	assert_int_equal(cp_check_config_set(sm, &cfg, "c", "", why, sizeof(why)), -SP_ETOOBIG);
	cluster_sm_free(sm);
}

static void
test_config_del(void **state)
{
	(void)state;
	char why[200], key[CLUSTER_CONFIG_KEY_MAX + 2];
	assert_int_equal(cp_check_config_del(NULL, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "config.del needs"));
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(cp_check_config_del(key, why, sizeof(why)), -SP_ETOOBIG);
	key[CLUSTER_CONFIG_KEY_MAX] = '\0';
	assert_int_equal(cp_check_config_del(key, why, sizeof(why)), 0);
	assert_int_equal(cp_check_config_del("", why, sizeof(why)), 0); /* apply decides */
}

static void
test_member_add(void **state)
{
	(void)state;
	struct cluster_sm *sm = cluster_sm_new();
	char why[200], name[SP_MEMBER_NAME_MAX + 1], client[CLUSTER_ADDR_MAX + 1];
	uint64_t id = 0;
	assert_non_null(sm);

	static const char *bad_peer[] = {NULL,         "",          "10.0.0.1",
	                                 "10.0.0.1:0", "host:2380", "10.0.0.1:2380 "};
	for (size_t i = 0; i < sizeof(bad_peer) / sizeof(bad_peer[0]); i++) {
		assert_int_equal(
		        cp_check_member_add(sm, "n4", bad_peer[i], "", &id, why, sizeof(why)),
		        -EINVAL);
		assert_non_null(strstr(why, "IPv4:port"));
	}
	assert_int_equal(cp_check_member_add(sm, NULL, "10.0.0.4:2380", "", &id, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(cp_check_member_add(sm, "", "10.0.0.4:2380", "", &id, why, sizeof(why)),
	                 -EINVAL);
	memset(name, 'n', sizeof(name) - 1);
	name[SP_MEMBER_NAME_MAX] = '\0'; /* 32 bytes: one too many */
	assert_int_equal(cp_check_member_add(sm, name, "10.0.0.4:2380", "", &id, why, sizeof(why)),
	                 -EINVAL);
	name[SP_MEMBER_NAME_MAX - 1] = '\0'; /* 31: the longest */
	assert_int_equal(cp_check_member_add(sm, name, "10.0.0.4:2380", "", &id, why, sizeof(why)),
	                 0);
	assert_int_equal(id, cp_member_id(name));
	memset(client, '1', sizeof(client) - 1);
	client[sizeof(client) - 1] = '\0';
	assert_int_equal(
	        cp_check_member_add(sm, "n4", "10.0.0.4:2380", client, &id, why, sizeof(why)),
	        -EINVAL);
	/* No client address is fine (NULL or empty). */
	assert_int_equal(
	        cp_check_member_add(sm, "n4", "10.0.0.4:2380", NULL, &id, why, sizeof(why)), 0);

	struct cluster_cmd c = {.type = CLUSTER_CMD_MEMBER_UPSERT};
	c.member.id = cp_member_id("n4");
	snprintf(c.member.name, sizeof(c.member.name), "n4");
	snprintf(c.member.peer_addr, sizeof(c.member.peer_addr), "10.0.0.4:2380");
	apply_ok(sm, &c);
	assert_int_equal(cp_check_member_add(sm, "n4", "10.0.0.9:2380", "", &id, why, sizeof(why)),
	                 -SP_EEXISTS);
	assert_non_null(strstr(why, "'n4'"));
	assert_int_equal(cp_check_member_add(sm, "n5", "10.0.0.5:2380", "10.0.0.5:2379", &id, why,
	                                     sizeof(why)),
	                 0);
	assert_int_equal(id, cp_member_id("n5"));
	cluster_sm_free(sm);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_config_set_limits),
	        cmocka_unit_test(test_config_del),
	        cmocka_unit_test(test_member_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
