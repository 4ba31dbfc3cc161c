/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Little-endian integers in byte buffers, as every Shardplane format stores them (the
 * binary protocol's values, the task encodings, the control plane's records), whatever the
 * host's order. No alignment is assumed. And a copy for short byte strings.
 */
#ifndef SP_COMMON_BYTES_H
#define SP_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * One unaligned load or store each (memcpy of the native word, byte-swapped on a big-endian
 * host): compilers do not always merge byte-by-byte forms, and one that failed to cost 78
 * instructions for a reply header's four fields.
 */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SP_LE32(v) __builtin_bswap32(v)
#define SP_LE64(v) __builtin_bswap64(v)
#else
#define SP_LE32(v) (v)
#define SP_LE64(v) (v)
#endif

static inline void
sp_put_le32(uint8_t *p, uint32_t v)
{
	v = SP_LE32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void
sp_put_le64(uint8_t *p, uint64_t v)
{
	v = SP_LE64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint32_t
sp_get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return SP_LE32(v);
}

static inline uint64_t
sp_get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return SP_LE64(v);
}

/*
 * memcpy for the short values replies mostly carry: up to 16 bytes without a call (two
 * overlapping word copies), longer ones through memcpy. dst and src do not overlap.
 */
static inline void
sp_copy_short(void *dst, const void *src, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (len > 16) {
		memcpy(d, s, len);
	} else if (len >= 8) {
		uint64_t a, b;

		memcpy(&a, s, 8);
		memcpy(&b, s + len - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + len - 8, &b, 8);
	} else if (len >= 4) {
		uint32_t a, b;

		memcpy(&a, s, 4);
		memcpy(&b, s + len - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + len - 4, &b, 4);
	} else {
		for (size_t i = 0; i < len; i++)
			d[i] = s[i];
	}
}

#endif
