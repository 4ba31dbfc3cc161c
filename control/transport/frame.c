/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/verify.h"
#include "frame.h"

int64_t
frame_parse(const uint8_t *buf, size_t len, uint32_t max_len, struct frame *f)
{
	uint32_t flen;

	ASSERT(max_len <= FRAME_LEN_MAX);
	if (len < 4)
		return 0;
	memcpy(&flen, buf, 4);
	if (flen == 0)
		return -SP_EMALFORMED;
	if (flen > max_len)
		return -SP_ETOOBIG;
	if (len >= 5 && (buf[4] == 0 || buf[4] >= FRAME_TYPE_END))
		return -SP_EMALFORMED;
	if (len - 4 < flen)
		return 0;
	f->type = buf[4];
	f->len = flen - 1;
	f->payload = buf + FRAME_HDR;
	return (int64_t)flen + 4;
}

void
frame_header(uint8_t *hdr, uint8_t type, uint32_t payload_len)
{
	ASSERT(payload_len < FRAME_LEN_MAX);
	uint32_t flen = payload_len + 1;
	memcpy(hdr, &flen, 4);
	hdr[4] = type;
}

void
frame_random_nonce(uint8_t nonce[FRAME_NONCE_LEN])
{
	VERIFY(sodium_init() >= 0);
	randombytes_buf(nonce, FRAME_NONCE_LEN);
}

void
frame_mac_initiator(const uint8_t *secret, size_t secret_len,
                    const uint8_t nonce_a[FRAME_NONCE_LEN], const uint8_t nonce_i[FRAME_NONCE_LEN],
                    uint8_t role, uint64_t node_id, uint8_t mac[FRAME_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;

	VERIFY(sodium_init() >= 0);
	crypto_auth_hmacsha256_init(&st, secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sp-auth-i", 9);
	crypto_auth_hmacsha256_update(&st, nonce_a, FRAME_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, nonce_i, FRAME_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, &role, 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)&node_id, 8);
	crypto_auth_hmacsha256_final(&st, mac);
}

void
frame_mac_acceptor(const uint8_t *secret, size_t secret_len, const uint8_t nonce_i[FRAME_NONCE_LEN],
                   const uint8_t nonce_a[FRAME_NONCE_LEN], uint8_t mac[FRAME_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;

	VERIFY(sodium_init() >= 0);
	crypto_auth_hmacsha256_init(&st, secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sp-auth-a", 9);
	crypto_auth_hmacsha256_update(&st, nonce_i, FRAME_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, nonce_a, FRAME_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, mac);
}

bool
frame_mac_equal(const uint8_t a[FRAME_MAC_LEN], const uint8_t b[FRAME_MAC_LEN])
{
	return sodium_memcmp(a, b, FRAME_MAC_LEN) == 0;
}

size_t
frame_auth_encode(const struct frame_auth *a, uint8_t *buf)
{
	buf[0] = a->role;
	memcpy(buf + 1, &a->node_id, 8);
	memcpy(buf + 9, a->nonce, FRAME_NONCE_LEN);
	memcpy(buf + 9 + FRAME_NONCE_LEN, a->mac, FRAME_MAC_LEN);
	return FRAME_AUTH_LEN;
}

int
frame_auth_decode(const uint8_t *buf, size_t len, struct frame_auth *a)
{
	if (len != FRAME_AUTH_LEN)
		return -SP_EMALFORMED;
	a->role = buf[0];
	if (a->role != FRAME_ROLE_PEER && a->role != FRAME_ROLE_CLIENT)
		return -SP_EMALFORMED;
	memcpy(&a->node_id, buf + 1, 8);
	memcpy(a->nonce, buf + 9, FRAME_NONCE_LEN);
	memcpy(a->mac, buf + 9 + FRAME_NONCE_LEN, FRAME_MAC_LEN);
	return 0;
}

int
frame_read_secret(const char *path, uint8_t *secret, size_t cap, char *why, size_t why_len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = -errno;
		snprintf(why, why_len, "secret file %s: %s", path, strerror(-err));
		return err;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
		close(fd);
		snprintf(why, why_len,
		         "secret file %s is readable by group or others (mode %03o); chmod 600 it",
		         path, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	uint8_t tmp[FRAME_SECRET_MAX + 2];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	close(fd);
	if (n < 0) {
		snprintf(why, why_len, "secret file %s: %s", path, strerror(errno));
		return -EIO;
	}
	if (n > 0 && tmp[n - 1] == '\n')
		n--;
	if ((size_t)n > FRAME_SECRET_MAX || (size_t)n > cap) {
		snprintf(why, why_len, "secret file %s: longer than %u bytes", path,
		         FRAME_SECRET_MAX);
		return -SP_ETOOBIG;
	}
	if ((size_t)n < FRAME_SECRET_MIN) {
		snprintf(why, why_len,
		         "secret file %s: %zd bytes; use at least %u (e.g. head -c 32 /dev/urandom "
		         "| base64 > FILE)",
		         path, n, FRAME_SECRET_MIN);
		return -SP_EMALFORMED;
	}
	memcpy(secret, tmp, (size_t)n);
	sodium_memzero(tmp, sizeof(tmp));
	return (int)n;
}
