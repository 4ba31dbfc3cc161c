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

#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/log.h"
#include "common/clock.h"
#include "common/verify.h"

static void
test_strerror_covers_every_code(void **state)
{
	(void)state;
	for (int e = SP_EBASE + 1; e < SP_ELAST; e++) {
		const char *s = sp_strerror(-e);
		assert_non_null(s);
		assert_string_not_equal(s, "unknown Shardplane error");
		assert_string_equal(s, sp_strerror(e));
	}
	assert_string_equal(sp_strerror(0), "success");
	assert_string_equal(sp_strerror(-ENOMEM), strerror(ENOMEM));
	assert_string_equal(sp_strerror(SP_ELAST + 7), "unknown Shardplane error");
}

static void
test_crc32c_known_vectors(void **state)
{
	(void)state;
	/* RFC 3720 B.4 check value and its all-zero 32-byte vector. */
	assert_int_equal(sp_crc32c(0, "123456789", 9), 0xE3069283u);
	uint8_t zeros[32] = {0};
	assert_int_equal(sp_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu);
	uint8_t ones[32];
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(sp_crc32c(0, ones, sizeof(ones)), 0x62A8AB43u);
	assert_int_equal(sp_crc32c(0, "", 0), 0u);
}

static void
test_crc32c_hw_matches_sw_and_chains(void **state)
{
	(void)state;
	uint8_t buf[1031];
	unsigned seed = 12345;
	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	for (size_t len = 0; len < sizeof(buf); len += 37) {
		uint32_t whole = sp_crc32c(0, buf, len);
		assert_int_equal(whole, sp_crc32c_sw(0, buf, len));
		size_t half = len / 3;
		uint32_t chained = sp_crc32c(sp_crc32c(0, buf, half), buf + half, len - half);
		assert_int_equal(whole, chained);
	}
}

static void
test_log_levels_parse(void **state)
{
	(void)state;
	enum sp_log_level l;
	assert_int_equal(sp_log_parse_level("debug", &l), 0);
	assert_int_equal(l, SP_LOG_DEBUG);
	assert_int_equal(sp_log_parse_level("error", &l), 0);
	assert_int_equal(l, SP_LOG_ERROR);
	assert_int_equal(sp_log_parse_level("loud", &l), -EINVAL);
	sp_log_set_level(SP_LOG_WARN);
	assert_int_equal(sp_log_get_level(), SP_LOG_WARN);
	/* An over-long line is cut, not overflowed. */
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sp_log(SP_LOG_WARN, "test", "%s", big);
	sp_log_set_level(SP_LOG_INFO);
}

static void
test_mono_time_moves_forward(void **state)
{
	(void)state;
	uint64_t a = sp_mono_ns();
	uint64_t b = sp_mono_ns();
	assert_true(b >= a);
	assert_true(sp_wall_s() > 1600000000ull);
	assert_true(sp_mono_ms() <= sp_mono_ns() / SP_NS_PER_MS);
}

static void
test_keyhash_spreads_partitions(void **state)
{
	(void)state;
	enum { P = 16, N = 16000 };
	unsigned count[P] = {0};
	char key[32];
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key:%d", i);
		uint64_t h = sp_key_hash(key, (size_t)n);
		assert_int_equal(h, sp_key_hash(key, (size_t)n));
		count[sp_key_partition(h, P)]++;
	}
	/* Each partition should get N/P = 1000 keys; allow a wide 20% band. */
	for (int p = 0; p < P; p++) {
		assert_true(count[p] > 800);
		assert_true(count[p] < 1200);
	}
	/* A fixed vector pins the function: clients built elsewhere must agree with it. */
	assert_int_equal(sp_key_hash("", 0), 0x2D06800538D394C2ull);
}

/* The log limiter: one line per window, the rest counted and reported after it. */
static void
test_log_limit(void **state)
{
	(void)state;
	struct sp_log_limit l = {0};
	const uint64_t s = SP_LOG_LIMIT_WINDOW_NS, t0 = 5 * s;
	assert_true(sp_log_limit_hit(&l, t0));
	for (int i = 0; i < 643; i++)
		assert_false(sp_log_limit_hit(&l, t0 + (uint64_t)i * 1000));
	assert_int_equal(sp_log_limit_flush(&l, t0 + s / 2), 0); /* window not over */
	assert_int_equal(sp_log_limit_flush(&l, t0 + s), 643);
	assert_int_equal(sp_log_limit_flush(&l, t0 + s + 1), 0); /* reported once */
	/* A new window logs its first event again. */
	assert_true(sp_log_limit_hit(&l, t0 + s + 2));
	assert_false(sp_log_limit_hit(&l, t0 + s + 3));
	assert_int_equal(sp_log_limit_flush(&l, t0 + 3 * s), 1);
	/* Nothing suppressed: nothing to report. */
	struct sp_log_limit q = {0};
	assert_true(sp_log_limit_hit(&q, t0));
	assert_int_equal(sp_log_limit_flush(&q, t0 + 10 * s), 0);
	assert_true(sp_log_limit_hit(&q, t0 + 10 * s));
}

/*
 * sp_copy_short copies exactly len bytes at every length around its word steps (0 .. 40)
 * and every alignment of source and destination, touching nothing beside them; and the
 * little-endian helpers read back what they write, whatever the alignment.
 */
static void
test_bytes_copy_and_le(void **state)
{
	(void)state;
	uint8_t src[64], dst[64];

	for (unsigned i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	for (size_t len = 0; len <= 40; len++) {
		for (unsigned so = 0; so < 8; so++) {
			for (unsigned d0 = 0; d0 < 8; d0++) {
				memset(dst, 0xee, sizeof(dst));
				sp_copy_short(dst + d0, src + so, len);
				assert_memory_equal(dst + d0, src + so, len);
				for (unsigned i = 0; i < d0; i++)
					assert_int_equal(dst[i], 0xee);
				for (size_t i = d0 + len; i < sizeof(dst); i++)
					assert_int_equal(dst[i], 0xee);
			}
		}
	}
	for (unsigned off = 0; off < 8; off++) {
		sp_put_le32(dst + off, 0x04030201u);
		assert_int_equal(dst[off], 1);
		assert_int_equal(dst[off + 3], 4);
		assert_int_equal(sp_get_le32(dst + off), 0x04030201u);
		sp_put_le64(dst + off, 0x0807060504030201ull);
		assert_int_equal(dst[off + 7], 8);
		assert_true(sp_get_le64(dst + off) == 0x0807060504030201ull);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_strerror_covers_every_code),
	        cmocka_unit_test(test_crc32c_known_vectors),
	        cmocka_unit_test(test_crc32c_hw_matches_sw_and_chains),
	        cmocka_unit_test(test_log_levels_parse),
	        cmocka_unit_test(test_log_limit),
	        cmocka_unit_test(test_mono_time_moves_forward),
	        cmocka_unit_test(test_keyhash_spreads_partitions),
	        cmocka_unit_test(test_bytes_copy_and_le),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
