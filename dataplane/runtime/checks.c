/* SPDX-License-Identifier: BSD-3-Clause */
#include "checks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "common/verify.h"

#define SYSFS_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"
#define SYSFS_1G "/sys/kernel/mm/hugepages/hugepages-1048576kB/"
/* Bytes one mbuf takes in the pool: buffer, headroom, struct, private area, headers. */
#define MBUF_FOOTPRINT_BYTES 2560u

static uint64_t
read_u64_file(const char *path)
{
	unsigned long long v = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static bool
hugetlbfs_mounted(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/mounts", "r");

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, " hugetlbfs ") != NULL;
	fclose(f);
	return found;
}

void
dp_hugepages_read(struct dp_hugepages *h)
{
	ASSERT(h != NULL);
	memset(h, 0, sizeof(*h));
	h->total_2m = read_u64_file(SYSFS_2M "nr_hugepages");
	h->free_2m = read_u64_file(SYSFS_2M "free_hugepages");
	h->total_1g = read_u64_file(SYSFS_1G "nr_hugepages");
	h->free_1g = read_u64_file(SYSFS_1G "free_hugepages");
	h->mounted = hugetlbfs_mounted();
	ASSERT(h->free_2m <= h->total_2m || h->total_2m == 0);
}

uint64_t
dp_hugepages_free_mb(const struct dp_hugepages *h)
{
	ASSERT(h != NULL);
	return h->free_2m * 2 + h->free_1g * 1024;
}

int
dp_check_hugepages_present(const struct dp_hugepages *h, char *err, size_t err_len)
{
	ASSERT(h != NULL);
	ASSERT(err != NULL);
	if (h->free_2m == 0 && h->free_1g == 0) {
		snprintf(err, err_len,
		         "hugepages: 0 of %" PRIu64 " free (2 MiB); run scripts/setup, or pass "
		         "--no-huge -m <MiB> before '--'",
		         h->total_2m);
		return -ENOMEM;
	}
	if (!h->mounted) {
		snprintf(err, err_len,
		         "hugepages: %" PRIu64 " free but no hugetlbfs is mounted; run "
		         "scripts/setup, or pass --no-huge -m <MiB> before '--'",
		         h->free_2m + h->free_1g);
		return -ENOMEM;
	}
	return 0;
}

uint64_t
dp_memory_need_mb(uint32_t workers, uint32_t memory_mb, uint32_t pool_mbufs)
{
	uint64_t pool_mb = ((uint64_t)pool_mbufs * MBUF_FOOTPRINT_BYTES + (1u << 20) - 1) >> 20;

	ASSERT(workers > 0);
	ASSERT(memory_mb > 0);
	return (uint64_t)workers * memory_mb + pool_mb + DP_MEMORY_OVERHEAD_MB;
}

int
dp_check_partition_budget(uint32_t memory_mb, uint32_t partitions, uint32_t workers,
                          size_t min_bytes, size_t *partition_bytes, char *err, size_t err_len)
{
	uint32_t owned_max;
	uint64_t bytes;

	ASSERT(workers > 0);
	ASSERT(partitions >= workers);
	owned_max = (partitions + workers - 1) / workers;
	bytes = ((uint64_t)memory_mb << 20) / owned_max;
	bytes &= ~(uint64_t)63; /* the stores want 64-byte multiples */
	if (bytes < min_bytes) {
		snprintf(err, err_len,
		         "--memory-mb %u: a worker owns up to %u partitions, %" PRIu64
		         " bytes each, under the %zu-byte minimum; raise --memory-mb to at "
		         "least %" PRIu64 " or lower --partitions",
		         memory_mb, owned_max, bytes, min_bytes,
		         ((uint64_t)min_bytes * owned_max + (1u << 20) - 1) >> 20);
		return -EINVAL;
	}
	*partition_bytes = (size_t)bytes;
	return 0;
}
