/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CRC32C (Castagnoli), the checksum of every stored and framed record. Uses the SSE4.2
 * instruction where the CPU has it and a table otherwise; both give the same result.
 */
#ifndef SP_COMMON_CRC32C_H
#define SP_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start. sp_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t sp_crc32c(uint32_t crc, const void *buf, size_t len);

/* The table-only implementation, exported so tests can compare the two paths. */
uint32_t sp_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
