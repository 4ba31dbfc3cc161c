/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Key hashing micro-benchmarks at key lengths 8..256 bytes:
 *   BM_sp_key_hash/<len>       sp_key_hash (XXH3 64-bit), the system's one key hash
 *   BM_sp_key_route/<len>      hash, partition (low bits) and table hash (high bits)
 *   BM_rte_hash_crc/<len>      DPDK's CRC32C hash, for reference (with DPDK)
 *   BM_rte_jhash/<len>         DPDK's Jenkins hash, for reference (with DPDK)
 * Each iteration hashes the next of HASH_KEYS distinct keys (fixed pseudo-random bytes,
 * so runs are comparable), so no result can be reused from the previous iteration.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef SP_BENCH_WITH_DPDK
#include <rte_hash_crc.h>
#include <rte_jhash.h>
#endif

#include "cbench/cbench.h"
#include "common/keyhash.h"
#include "common/verify.h"

#define HASH_KEYS        1024 /* distinct keys cycled through; a power of two */
#define HASH_KEY_LEN_MIN 8
#define HASH_KEY_LEN_MAX 256
#define HASH_PARTITIONS  1024 /* partitions for the routing variant; a power of two */
#define HASH_SEED        0x5eed5eed5eed5eedull

static uint8_t keys[HASH_KEYS][HASH_KEY_LEN_MAX];

/* Fills the keys from a fixed xorshift64* stream. Can't fail. */
static void
make_keys(void)
{
	uint64_t x = HASH_SEED;

	for (size_t k = 0; k < HASH_KEYS; k++) {
		for (size_t i = 0; i < HASH_KEY_LEN_MAX; i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			keys[k][i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
		}
	}
}

/* Checks the argument and prepares the keys once; skips the run on a bad length. */
static void
setup_keys(struct cbench_state *st)
{
	static bool ready;
	int64_t len = cbench_range(st, 0);
	char msg[96];

	if (len < HASH_KEY_LEN_MIN || len > HASH_KEY_LEN_MAX) {
		snprintf(msg, sizeof(msg), "key length %lld outside %d..%d", (long long)len,
		         HASH_KEY_LEN_MIN, HASH_KEY_LEN_MAX);
		cbench_skip_with_error(st, msg);
		return;
	}
	if (!ready) {
		make_keys();
		ready = true;
	}
}

static void
report(struct cbench_state *st, size_t len)
{
	cbench_set_items_processed(st, cbench_iterations(st));
	cbench_set_bytes_processed(st, cbench_iterations(st) * len);
}

static void
BM_sp_key_hash(struct cbench_state *st)
{
	size_t len = (size_t)cbench_range(st, 0);
	uint64_t acc = 0;
	size_t k = 0;

	ASSERT(len <= HASH_KEY_LEN_MAX);
	while (cbench_keep_running(st)) {
		acc ^= sp_key_hash(keys[k], len);
		k = (k + 1) & (HASH_KEYS - 1);
	}
	CBENCH_DO_NOT_OPTIMIZE(acc);
	report(st, len);
}

static void
BM_sp_key_route(struct cbench_state *st)
{
	size_t len = (size_t)cbench_range(st, 0);
	uint64_t acc = 0;
	size_t k = 0;

	ASSERT(len <= HASH_KEY_LEN_MAX);
	while (cbench_keep_running(st)) {
		uint64_t h = sp_key_hash(keys[k], len);
		acc += sp_key_partition(h, HASH_PARTITIONS) ^ sp_key_hash_hi(h);
		k = (k + 1) & (HASH_KEYS - 1);
	}
	CBENCH_DO_NOT_OPTIMIZE(acc);
	report(st, len);
}

static void
register_lengths(struct cbench *b)
{
	static const char *const names[] = {"len"};

	cbench_set_arg_names(b, names, 1);
	cbench_set_range_multiplier(b, 2);
	cbench_add_range(b, HASH_KEY_LEN_MIN, HASH_KEY_LEN_MAX);
	cbench_set_fixture(b, setup_keys, NULL);
	cbench_set_cycles_per_item(b);
}

CBENCH_REGISTER(BM_sp_key_hash)
{
	register_lengths(b);
}

CBENCH_REGISTER(BM_sp_key_route)
{
	register_lengths(b);
}

#ifdef SP_BENCH_WITH_DPDK
static void
BM_rte_hash_crc(struct cbench_state *st)
{
	size_t len = (size_t)cbench_range(st, 0);
	uint32_t acc = 0;
	size_t k = 0;

	ASSERT(len <= HASH_KEY_LEN_MAX);
	while (cbench_keep_running(st)) {
		acc ^= rte_hash_crc(keys[k], (uint32_t)len, 0);
		k = (k + 1) & (HASH_KEYS - 1);
	}
	CBENCH_DO_NOT_OPTIMIZE(acc);
	report(st, len);
}

static void
BM_rte_jhash(struct cbench_state *st)
{
	size_t len = (size_t)cbench_range(st, 0);
	uint32_t acc = 0;
	size_t k = 0;

	ASSERT(len <= HASH_KEY_LEN_MAX);
	while (cbench_keep_running(st)) {
		acc ^= rte_jhash(keys[k], (uint32_t)len, 0);
		k = (k + 1) & (HASH_KEYS - 1);
	}
	CBENCH_DO_NOT_OPTIMIZE(acc);
	report(st, len);
}

CBENCH_REGISTER(BM_rte_hash_crc)
{
	register_lengths(b);
}

CBENCH_REGISTER(BM_rte_jhash)
{
	register_lengths(b);
}
#endif
