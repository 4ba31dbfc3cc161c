/* SPDX-License-Identifier: BSD-3-Clause */
#include <string.h>

#include "common/crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t crc32c_table[256];
static int crc32c_table_ready;
static int crc32c_hw = -1;

static void
crc32c_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc32c_table[i] = c;
	}
	__atomic_store_n(&crc32c_table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t
sp_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!__atomic_load_n(&crc32c_table_ready, __ATOMIC_ACQUIRE))
		crc32c_table_init(); /* idempotent: racing initialisers write the same table */
	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw_update(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return ~c32;
}
#endif

uint32_t
sp_crc32c(uint32_t crc, const void *buf, size_t len)
{
#if defined(__x86_64__)
	if (crc32c_hw < 0) {
		__builtin_cpu_init();
		crc32c_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	}
	if (crc32c_hw)
		return crc32c_hw_update(crc, buf, len);
#endif
	return sp_crc32c_sw(crc, buf, len);
}
