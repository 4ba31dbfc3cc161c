/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Start-up checks that turn EAL's obscure failures into sentences naming the value and
 * the fix: hugepages before EAL starts, memory and lcores once the worker count is known.
 */
#ifndef SP_DP_CHECKS_H
#define SP_DP_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the system offers in hugepages, read from sysfs and /proc/mounts. */
struct dp_hugepages {
	uint64_t total_2m;
	uint64_t free_2m;
	uint64_t total_1g;
	uint64_t free_1g;
	bool mounted; /* a hugetlbfs is mounted */
};

/* Reads the hugepage counts and whether hugetlbfs is mounted. Can't fail (zeros). */
void dp_hugepages_read(struct dp_hugepages *h);

/* Free hugepage memory in MiB. */
uint64_t dp_hugepages_free_mb(const struct dp_hugepages *h);

/*
 * Before EAL starts (no --no-huge given): fails with a message in err when there is no
 * free hugepage or no hugetlbfs mount. Returns 0 or -ENOMEM.
 */
int dp_check_hugepages_present(const struct dp_hugepages *h, char *err, size_t err_len);

/*
 * Memory the node needs, in MiB: the stores, the mbuf pool and a fixed overhead.
 */
uint64_t dp_memory_need_mb(uint32_t workers, uint32_t memory_mb, uint32_t pool_mbufs);

/*
 * Checks the store budget: memory_mb per worker spread over the most partitions one
 * worker owns (ceil(P / W)) must give each at least min_bytes. Fills *partition_bytes.
 * Returns 0 or -EINVAL with err filled.
 */
int dp_check_partition_budget(uint32_t memory_mb, uint32_t partitions, uint32_t workers,
                              size_t min_bytes, size_t *partition_bytes, char *err, size_t err_len);

#endif
