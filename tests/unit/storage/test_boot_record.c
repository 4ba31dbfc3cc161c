/* SPDX-License-Identifier: BSD-3-Clause */
/* The bootstrap record: encoding, validation of every field, every malformed input, the
 * file round trip. */
#include <errno.h>
#include <fcntl.h>
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

#include "common/crc32c.h"
#include "common/errors.h"
#include "storage/boot_record.h"

static void
three(struct boot_record *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->self, "n2");
	r->n = 3;
	for (uint32_t i = 0; i < 3; i++) {
		r->members[i].id = 100 + i;
		snprintf(r->members[i].name, sizeof(r->members[i].name), "n%u", i + 1);
		snprintf(r->members[i].addr, sizeof(r->members[i].addr), "127.0.0.1:%u", 2380 + i);
	}
}

/* Rewrites the trailing CRC after a test edited the bytes, so decode reaches the field
 * checks instead of stopping at the checksum. */
static void
reseal(uint8_t *buf, size_t len)
{
	uint32_t crc = sp_crc32c(0, buf, len - 4);
	for (int i = 0; i < 4; i++)
		buf[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
}

static void
test_roundtrip(void **state)
{
	(void)state;
	struct boot_record r, back;
	uint8_t buf[BOOT_RECORD_BYTES_MAX];
	char why[192];
	three(&r);
	int len = boot_record_encode(&r, buf, sizeof(buf), why, sizeof(why));
	assert_int_equal(len, BOOT_HEAD_BYTES + 3 * BOOT_MEMBER_BYTES + 4);
	assert_int_equal(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)), 0);
	assert_string_equal(back.self, "n2");
	assert_int_equal(back.n, 3);
	assert_true(boot_record_same_members(&r, &back));
	assert_int_equal(memcmp(&r, &back, sizeof(r)), 0);
}

static void
test_validate_rejects(void **state)
{
	(void)state;
	struct boot_record r;
	uint8_t buf[BOOT_RECORD_BYTES_MAX];
	char why[192];

	three(&r);
	r.n = 0;
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	three(&r);
	r.n = BOOT_MEMBERS_MAX + 1;
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	three(&r);
	r.members[1].id = 0;
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	assert_non_null(strstr(why, "id 0"));
	three(&r);
	r.members[2].id = r.members[0].id;
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	three(&r);
	strcpy(r.members[2].name, "n1");
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	three(&r);
	r.members[0].addr[0] = '\0';
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	three(&r);
	memset(r.members[0].name, 'x', sizeof(r.members[0].name)); /* no NUL */
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	three(&r);
	strcpy(r.self, "n7");
	assert_int_equal(boot_record_validate(&r, why, sizeof(why)), -SP_EMALFORMED);
	assert_non_null(strstr(why, "n7"));
	assert_int_equal(boot_record_encode(&r, buf, sizeof(buf), why, sizeof(why)),
	                 -SP_EMALFORMED);
	three(&r);
	assert_int_equal(boot_record_encode(&r, buf, 40, why, sizeof(why)), -SP_ETOOBIG);
}

static void
test_decode_rejects(void **state)
{
	(void)state;
	struct boot_record r, back;
	uint8_t buf[BOOT_RECORD_BYTES_MAX + 8];
	char why[192];
	three(&r);
	int len = boot_record_encode(&r, buf, sizeof(buf), why, sizeof(why));
	assert_true(len > 0);

	/* Every truncation is refused, never read past. */
	for (int cut = 0; cut < len; cut++)
		assert_true(boot_record_decode(buf, (size_t)cut, &back, why, sizeof(why)) < 0);
	assert_int_equal(boot_record_decode(buf, 10, &back, why, sizeof(why)), -SP_ETRUNCATED);
	/* Every single flipped bit is caught. */
	for (int i = 0; i < len * 8; i++) {
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_true(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)) < 0);
		buf[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	assert_int_equal(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)), 0);
	/* Trailing bytes. */
	buf[len] = 0;
	assert_int_equal(boot_record_decode(buf, (size_t)len + 1, &back, why, sizeof(why)),
	                 -SP_EMALFORMED);
	/* Another version, with a valid CRC. */
	buf[8] = 2;
	reseal(buf, (size_t)len);
	assert_int_equal(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)),
	                 -SP_EVERSION);
	buf[8] = 1;
	/* A member count past the maximum, and one the bytes do not hold. */
	buf[12] = 0xff;
	assert_int_equal(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)),
	                 -SP_EMALFORMED);
	buf[12] = 4;
	assert_int_equal(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)),
	                 -SP_ETRUNCATED);
	buf[12] = 3;
	/* A sealed record whose fields are wrong: a member name without its NUL. */
	memset(buf + BOOT_HEAD_BYTES + 8, 'x', BOOT_NAME_MAX);
	reseal(buf, (size_t)len);
	assert_int_equal(boot_record_decode(buf, (size_t)len, &back, why, sizeof(why)),
	                 -SP_EMALFORMED);
}

static void
test_file_roundtrip(void **state)
{
	(void)state;
	char dir[] = "/tmp/sp-boot-XXXXXX";
	char path[256], why[192];
	struct boot_record r, back, other;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(boot_record_read(dir, &back, why, sizeof(why)), -ENOENT);
	three(&r);
	assert_int_equal(boot_record_write(dir, &r, why, sizeof(why)), 0);
	assert_int_equal(boot_record_read(dir, &back, why, sizeof(why)), 0);
	assert_true(boot_record_same_members(&r, &back));
	/* Written again (replaced whole), no temporary file left. */
	three(&other);
	strcpy(other.members[2].addr, "127.0.0.1:9999");
	assert_false(boot_record_same_members(&r, &other));
	assert_int_equal(boot_record_write(dir, &other, why, sizeof(why)), 0);
	assert_int_equal(boot_record_read(dir, &back, why, sizeof(why)), 0);
	assert_true(boot_record_same_members(&other, &back));
	snprintf(path, sizeof(path), "%s/%s.tmp", dir, BOOT_RECORD_FILE);
	assert_int_equal(access(path, F_OK), -1);
	/* A damaged file is an error naming it, not "no record". */
	snprintf(path, sizeof(path), "%s/%s", dir, BOOT_RECORD_FILE);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "zz", 2, 40), 2);
	close(fd);
	assert_int_equal(boot_record_read(dir, &back, why, sizeof(why)), -SP_ECORRUPT);
	assert_non_null(strstr(why, BOOT_RECORD_FILE));
	/* An oversized file is refused. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	static uint8_t big[BOOT_RECORD_BYTES_MAX + 100];
	assert_int_equal(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	close(fd);
	assert_true(boot_record_read(dir, &back, why, sizeof(why)) < 0);
	unlink(path);
	/* A directory that does not exist. */
	assert_true(boot_record_write("/nonexistent/sp-boot", &r, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "cannot create"));
	assert_int_equal(rmdir(dir), 0);
}

static void
test_same_members_any_order(void **state)
{
	(void)state;
	struct boot_record a, b;
	three(&a);
	three(&b);
	struct boot_member t = b.members[0];
	b.members[0] = b.members[2];
	b.members[2] = t;
	assert_true(boot_record_same_members(&a, &b));
	b.n = 2;
	assert_false(boot_record_same_members(&a, &b));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_roundtrip),
	        cmocka_unit_test(test_validate_rejects),
	        cmocka_unit_test(test_decode_rejects),
	        cmocka_unit_test(test_file_roundtrip),
	        cmocka_unit_test(test_same_members_any_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
