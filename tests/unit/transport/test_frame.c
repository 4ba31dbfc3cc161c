/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/errors.h"
#include "transport/frame.h"

static void
test_parse_whole_partial_and_stream(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct frame f;
	frame_header(buf, FRAME_RAFT, 3);
	memcpy(buf + FRAME_HDR, "abc", 3);
	frame_header(buf + 8, FRAME_REQUEST, 0);
	/* Every prefix shorter than the first frame asks for more. */
	for (size_t len = 0; len < 8; len++)
		assert_int_equal(frame_parse(buf, len, FRAME_LEN_MAX, &f), 0);
	assert_int_equal(frame_parse(buf, 13, FRAME_LEN_MAX, &f), 8);
	assert_int_equal(f.type, FRAME_RAFT);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.payload, "abc", 3);
	assert_int_equal(frame_parse(buf + 8, 5, FRAME_LEN_MAX, &f), 5);
	assert_int_equal(f.type, FRAME_REQUEST);
	assert_int_equal(f.len, 0);
}

static void
test_parse_rejects_bad_frames(void **state)
{
	(void)state;
	uint8_t buf[16] = {0};
	struct frame f;
	/* Zero length. */
	assert_int_equal(frame_parse(buf, 8, FRAME_LEN_MAX, &f), -SP_EMALFORMED);
	/* Over the limit, before and after authentication; rejected from the header alone. */
	frame_header(buf, FRAME_RAFT, FRAME_PREAUTH_MAX);
	assert_int_equal(frame_parse(buf, 4, FRAME_PREAUTH_MAX, &f), -SP_ETOOBIG);
	uint32_t huge = FRAME_LEN_MAX + 1;
	memcpy(buf, &huge, 4);
	assert_int_equal(frame_parse(buf, 4, FRAME_LEN_MAX, &f), -SP_ETOOBIG);
	uint32_t at_limit = FRAME_LEN_MAX;
	memcpy(buf, &at_limit, 4);
	buf[4] = FRAME_RAFT;
	assert_int_equal(frame_parse(buf, 16, FRAME_LEN_MAX, &f), 0); /* legal, incomplete */
	/* Unknown types. */
	frame_header(buf, 0, 1);
	assert_int_equal(frame_parse(buf, 6, FRAME_LEN_MAX, &f), -SP_EMALFORMED);
	frame_header(buf, FRAME_TYPE_END, 1);
	assert_int_equal(frame_parse(buf, 6, FRAME_LEN_MAX, &f), -SP_EMALFORMED);
}

static void
test_auth_handshake(void **state)
{
	(void)state;
	const uint8_t secret[] = "0123456789abcdef-cluster";
	const uint8_t wrong[] = "0123456789abcdef-clusteR";
	uint8_t na[FRAME_NONCE_LEN], ni[FRAME_NONCE_LEN];
	frame_random_nonce(na);
	frame_random_nonce(ni);
	assert_memory_not_equal(na, ni, FRAME_NONCE_LEN);

	struct frame_auth a = {.role = FRAME_ROLE_PEER, .node_id = 3};
	memcpy(a.nonce, ni, sizeof(ni));
	frame_mac_initiator(secret, sizeof(secret) - 1, na, ni, a.role, a.node_id, a.mac);
	uint8_t wire[FRAME_AUTH_LEN];
	assert_int_equal(frame_auth_encode(&a, wire), FRAME_AUTH_LEN);
	struct frame_auth b;
	assert_int_equal(frame_auth_decode(wire, sizeof(wire), &b), 0);
	uint8_t expect[FRAME_MAC_LEN];
	frame_mac_initiator(secret, sizeof(secret) - 1, na, b.nonce, b.role, b.node_id, expect);
	assert_true(frame_mac_equal(expect, b.mac));
	/* Wrong secret, other challenge, or a changed claim: refused. */
	frame_mac_initiator(wrong, sizeof(wrong) - 1, na, b.nonce, b.role, b.node_id, expect);
	assert_false(frame_mac_equal(expect, b.mac));
	frame_mac_initiator(secret, sizeof(secret) - 1, ni, b.nonce, b.role, b.node_id, expect);
	assert_false(frame_mac_equal(expect, b.mac));
	frame_mac_initiator(secret, sizeof(secret) - 1, na, b.nonce, b.role, 4, expect);
	assert_false(frame_mac_equal(expect, b.mac));
	/* The acceptor's proof differs from the initiator's, so it cannot be reflected. */
	uint8_t ma[FRAME_MAC_LEN];
	frame_mac_acceptor(secret, sizeof(secret) - 1, ni, na, ma);
	assert_false(frame_mac_equal(ma, a.mac));
	/* Malformed AUTH payloads. */
	assert_int_equal(frame_auth_decode(wire, sizeof(wire) - 1, &b), -SP_EMALFORMED);
	wire[0] = 9;
	assert_int_equal(frame_auth_decode(wire, sizeof(wire), &b), -SP_EMALFORMED);
}

static void
test_secret_file_checks(void **state)
{
	(void)state;
	char path[] = "/tmp/sp-secret-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t secret[FRAME_SECRET_MAX];
	char why[256];
	assert_int_equal(write(fd, "short\n", 6), 6);
	assert_int_equal(frame_read_secret(path, secret, sizeof(secret), why, sizeof(why)),
	                 -SP_EMALFORMED);
	assert_non_null(strstr(why, "at least"));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, "a-long-enough-secret\n", 21, 0), 21);
	assert_int_equal(frame_read_secret(path, secret, sizeof(secret), why, sizeof(why)), 20);
	assert_memory_equal(secret, "a-long-enough-secret", 20);
	assert_int_equal(fchmod(fd, 0644), 0);
	assert_int_equal(frame_read_secret(path, secret, sizeof(secret), why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "chmod 600"));
	close(fd);
	unlink(path);
	assert_int_equal(frame_read_secret(path, secret, sizeof(secret), why, sizeof(why)),
	                 -ENOENT);
}

static void
test_random_streams_never_overread(void **state)
{
	(void)state;
	const char *env = getenv("SP_TEST_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : 777u;
	printf("test_random_streams_never_overread: seed %u (replay: SP_TEST_SEED=%u)\n", seed,
	       seed);
	srand(seed);
	for (int i = 0; i < 100000; i++) {
		size_t len = (size_t)(rand() % 24);
		uint8_t *b = malloc(len ? len : 1);
		for (size_t k = 0; k < len; k++)
			b[k] = (uint8_t)rand();
		if (len >= 4 && rand() % 2) {
			uint32_t l = (uint32_t)(rand() % 20);
			memcpy(b, &l, 4);
		}
		struct frame f;
		int64_t n = frame_parse(b, len, rand() % 2 ? FRAME_PREAUTH_MAX : FRAME_LEN_MAX, &f);
		if (n > 0) {
			assert_true((size_t)n <= len);
			assert_true(f.payload + f.len <= b + len);
		}
		free(b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_whole_partial_and_stream),
	        cmocka_unit_test(test_parse_rejects_bad_frames),
	        cmocka_unit_test(test_auth_handshake),
	        cmocka_unit_test(test_secret_file_checks),
	        cmocka_unit_test(test_random_streams_never_overread),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
