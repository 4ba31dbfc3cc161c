/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Little-endian integers in byte buffers, as every Shardplane format stores them (the
 * binary protocol's values, the task encodings, the control plane's records), whatever the
 * host's order. No alignment is assumed.
 */
#ifndef SP_COMMON_BYTES_H
#define SP_COMMON_BYTES_H

#include <stdint.h>

static inline void
sp_put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
sp_put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t
sp_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline uint64_t
sp_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
