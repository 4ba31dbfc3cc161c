/* SPDX-License-Identifier: BSD-3-Clause */
/* Member names and addresses (control/cp/addr.c): every malformed address refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

static void
test_parse_valid(void **state)
{
	(void)state;
	struct sockaddr_in sa;
	char ip[INET_ADDRSTRLEN];
	assert_int_equal(cp_parse_addr("10.1.2.3:2380", &sa), 0);
	assert_int_equal(sa.sin_family, AF_INET);
	assert_int_equal(ntohs(sa.sin_port), 2380);
	assert_string_equal(inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)), "10.1.2.3");
	assert_int_equal(cp_parse_addr("localhost:1", &sa), 0);
	assert_string_equal(inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)), "127.0.0.1");
	assert_int_equal(ntohs(sa.sin_port), 1);
	assert_int_equal(cp_parse_addr("0.0.0.0:65535", &sa), 0);
	assert_int_equal(ntohs(sa.sin_port), 65535);
}

static void
test_parse_refused(void **state)
{
	(void)state;
	static const char *bad[] = {
	        "",
	        ":2380",
	        "10.1.2.3",
	        "10.1.2.3:",
	        "10.1.2.3:0",
	        "10.1.2.3:65536",
	        "10.1.2.3:99999999999999999999",
	        "10.1.2.3:-1",
	        "10.1.2.3: 80",
	        "10.1.2.3:+80",
	        "10.1.2.3:80x",
	        "10.1.2.3:0x50",
	        "10.1.2.256:80",
	        "10.1.2:80",
	        "example.com:80",
	        "[::1]:80",
	        "::1:80",
	        "10.1.2.3:80:81",
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80",
	};
	struct sockaddr_in sa, before;
	memset(&sa, 0x5a, sizeof(sa));
	before = sa;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cp_parse_addr(bad[i], &sa) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_memory_equal(&sa, &before, sizeof(sa)); /* untouched on error */
	}
}

static void
test_member_ids(void **state)
{
	(void)state;
	char name[16];
	uint64_t ids[2000];
	assert_int_equal(cp_member_id("n1"), cp_member_id("n1")); /* stable */
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		ids[i] = cp_member_id(name);
		assert_true(ids[i] != 0 && ids[i] <= UINT32_MAX);
		for (int j = 0; j < i; j++)
			assert_true(ids[j] != ids[i]); /* no clash among 2,000 names */
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_valid),
	        cmocka_unit_test(test_parse_refused),
	        cmocka_unit_test(test_member_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
