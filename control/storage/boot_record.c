/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot_record.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/verify.h"

#define PATH_LEN 4096

/* A fixed-size string field: non-empty, NUL-terminated within its size. */
static bool
field_ok(const char *s, size_t size)
{
	return s[0] != '\0' && memchr(s, '\0', size) != NULL;
}

int
boot_record_validate(const struct boot_record *r, char *why, size_t why_len)
{
	bool self_found = false;

	if (r->n == 0 || r->n > BOOT_MEMBERS_MAX)
		return sp_explain(why, why_len, -SP_EMALFORMED, "%u members (expected 1 to %u)",
		                  r->n, BOOT_MEMBERS_MAX);
	if (!field_ok(r->self, sizeof(r->self)))
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "the member's own name is empty or "
		                  "not terminated");
	for (uint32_t i = 0; i < r->n; i++) {
		const struct boot_member *m = &r->members[i];
		if (m->id == 0)
			return sp_explain(why, why_len, -SP_EMALFORMED, "member %u has id 0", i);
		if (!field_ok(m->name, sizeof(m->name)) || !field_ok(m->addr, sizeof(m->addr)))
			return sp_explain(why, why_len, -SP_EMALFORMED,
			                  "member %u's name or address is empty or not terminated",
			                  i);
		for (uint32_t j = 0; j < i; j++)
			if (r->members[j].id == m->id || strcmp(r->members[j].name, m->name) == 0)
				return sp_explain(why, why_len, -SP_EMALFORMED,
				                  "members %u and %u share an id or a name", j, i);
		if (strcmp(m->name, r->self) == 0)
			self_found = true;
	}
	if (!self_found)
		return sp_explain(why, why_len, -SP_EMALFORMED,
		                  "the member's own name '%s' is not among the members", r->self);
	return 0;
}

int
boot_record_encode(const struct boot_record *r, uint8_t *buf, size_t cap, char *why, size_t why_len)
{
	int err = boot_record_validate(r, why, why_len);
	if (err)
		return err;
	size_t len = BOOT_HEAD_BYTES + (size_t)r->n * BOOT_MEMBER_BYTES + 4u;
	if (len > cap)
		return sp_explain(why, why_len, -SP_ETOOBIG, "%zu bytes do not fit in %zu", len,
		                  cap);
	memset(buf, 0, len);
	sp_put_le64(buf, BOOT_RECORD_MAGIC);
	sp_put_le32(buf + 8, BOOT_RECORD_VERSION);
	sp_put_le32(buf + 12, r->n);
	memcpy(buf + 16, r->self, strnlen(r->self, BOOT_NAME_MAX));
	uint8_t *p = buf + BOOT_HEAD_BYTES;
	for (uint32_t i = 0; i < r->n; i++, p += BOOT_MEMBER_BYTES) {
		const struct boot_member *m = &r->members[i];
		sp_put_le64(p, m->id);
		memcpy(p + 8, m->name, strnlen(m->name, BOOT_NAME_MAX));
		memcpy(p + 8 + BOOT_NAME_MAX, m->addr, strnlen(m->addr, BOOT_ADDR_MAX));
	}
	sp_put_le32(p, sp_crc32c(0, buf, len - 4u));
	return (int)len;
}

int
boot_record_decode(const uint8_t *buf, size_t len, struct boot_record *r, char *why, size_t why_len)
{
	if (len < BOOT_HEAD_BYTES + 4u)
		return sp_explain(why, why_len, -SP_ETRUNCATED, "%zu bytes, shorter than a header",
		                  len);
	if (sp_get_le64(buf) != BOOT_RECORD_MAGIC)
		return sp_explain(why, why_len, -SP_ECORRUPT, "not a bootstrap record (bad magic)");
	uint32_t version = sp_get_le32(buf + 8);
	if (version != BOOT_RECORD_VERSION)
		return sp_explain(why, why_len, -SP_EVERSION,
		                  "record version %u; this build reads version %u", version,
		                  BOOT_RECORD_VERSION);
	uint32_t n = sp_get_le32(buf + 12);
	if (n == 0 || n > BOOT_MEMBERS_MAX)
		return sp_explain(why, why_len, -SP_EMALFORMED, "%u members (expected 1 to %u)", n,
		                  BOOT_MEMBERS_MAX);
	size_t want = BOOT_HEAD_BYTES + (size_t)n * BOOT_MEMBER_BYTES + 4u;
	if (len < want)
		return sp_explain(why, why_len, -SP_ETRUNCATED, "%zu bytes; %u members need %zu",
		                  len, n, want);
	if (len > want)
		return sp_explain(why, why_len, -SP_EMALFORMED, "%zu bytes after the record",
		                  len - want);
	if (sp_get_le32(buf + want - 4u) != sp_crc32c(0, buf, want - 4u))
		return sp_explain(why, why_len, -SP_ECORRUPT, "checksum mismatch");
	memset(r, 0, sizeof(*r));
	r->n = n;
	memcpy(r->self, buf + 16, BOOT_NAME_MAX);
	const uint8_t *p = buf + BOOT_HEAD_BYTES;
	for (uint32_t i = 0; i < n; i++, p += BOOT_MEMBER_BYTES) {
		r->members[i].id = sp_get_le64(p);
		memcpy(r->members[i].name, p + 8, BOOT_NAME_MAX);
		memcpy(r->members[i].addr, p + 8 + BOOT_NAME_MAX, BOOT_ADDR_MAX);
	}
	return boot_record_validate(r, why, why_len);
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
boot_record_write(const char *dir, const struct boot_record *r, char *why, size_t why_len)
{
	uint8_t buf[BOOT_RECORD_BYTES_MAX];
	char path[PATH_LEN], tmp[PATH_LEN + 8];
	int len = boot_record_encode(r, buf, sizeof(buf), why, why_len);
	if (len < 0)
		return len;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, BOOT_RECORD_FILE) >= sizeof(path))
		return sp_explain(why, why_len, -ENAMETOOLONG, "data directory path too long");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return sp_explain(why, why_len, -errno, "cannot create %s: %s", tmp,
		                  strerror(errno));
	int err = write_all(fd, buf, (size_t)len);
	if (err == 0 && fsync(fd) != 0)
		err = -errno;
	close(fd);
	if (err == 0 && rename(tmp, path) != 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return sp_explain(why, why_len, err, "cannot write %s: %s", path, sp_strerror(err));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		err = -errno;
		if (dfd >= 0)
			close(dfd);
		return sp_explain(why, why_len, err, "cannot sync %s: %s", dir, sp_strerror(err));
	}
	close(dfd);
	return 0;
}

int
boot_record_read(const char *dir, struct boot_record *r, char *why, size_t why_len)
{
	uint8_t buf[BOOT_RECORD_BYTES_MAX + 1];
	char path[PATH_LEN];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, BOOT_RECORD_FILE) >= sizeof(path))
		return sp_explain(why, why_len, -ENAMETOOLONG, "data directory path too long");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return sp_explain(why, why_len, -errno, "cannot open %s: %s", path,
		                  strerror(errno));
	}
	size_t len = 0;
	int err = 0;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (err)
		return sp_explain(why, why_len, err, "cannot read %s: %s", path, sp_strerror(err));
	char inner[160];
	err = boot_record_decode(buf, len, r, inner, sizeof(inner));
	if (err)
		return sp_explain(why, why_len, err, "%s: %s", path, inner);
	return 0;
}

static bool
has_member(const struct boot_record *r, const struct boot_member *m)
{
	for (uint32_t i = 0; i < r->n; i++)
		if (r->members[i].id == m->id && strcmp(r->members[i].name, m->name) == 0 &&
		    strcmp(r->members[i].addr, m->addr) == 0)
			return true;
	return false;
}

bool
boot_record_same_members(const struct boot_record *a, const struct boot_record *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (!has_member(b, &a->members[i]))
			return false;
	return true;
}
