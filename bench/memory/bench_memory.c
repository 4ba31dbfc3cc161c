/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the machine's memory costs a lookup, so that the store's and the dataplane's
 * figures can be read against it (bench/RESULTS.md, "What this machine allows"):
 *   BM_memory_chase/bytes:<n>       one dependent load per iteration, over a random cycle
 *                                   through every cache line of n bytes: load latency
 *                                   at that working set
 *   BM_memory_pages/pages:<n>       the same over n lines, each in its own 4 KiB page
 *                                   (placed at varying offsets in the page): against the
 *                                   chase over as many lines packed together, the cost of
 *                                   translating the address (TLB reach, page walks)
 *   BM_memory_prefetched/bytes:<n>  independent loads of random lines of n bytes, each
 *                                   prefetched PREFETCH_AHEAD loads earlier, as a
 *                                   pipelined lookup does: the throughput of random lines
 * Buffers are 2 MiB hugepages (MAP_HUGETLB) when the machine has them free, else anonymous
 * memory advised for transparent huge pages; the label says which ("hugetlb" or "thp").
 * Plain C, no DPDK.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cbench/cbench.h"
#include "common/verify.h"

#define LINE            64u
#define PAGE            4096u
#define HUGE_BYTES      (2u * 1024u * 1024u)
#define PREFETCH_AHEAD  16u
#define RANDOM_INDEXES  65536u /* random line numbers cycled by BM_memory_prefetched */
#define BENCH_SEED      0x6d656d6f72790001ull
#define BENCH_BYTES_MAX (1ll << 30)
#define BENCH_PAGES_MAX (1ll << 18)

/* The buffer of the current run; rebuilt when the shape changes. */
struct buffer {
	uint8_t *mem;
	size_t bytes;
	bool hugetlb;
	uint64_t lines;  /* slots in the cycle */
	uint64_t stride; /* bytes between consecutive slots */
	uint32_t index[RANDOM_INDEXES];
};

static struct buffer buf;

static inline uint64_t
next_rand(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545F4914F6CDD1Dull;
}

static void
buffer_free(void)
{
	if (buf.mem != NULL)
		munmap(buf.mem, buf.bytes);
	buf.mem = NULL;
	buf.bytes = 0;
	buf.lines = 0;
}

/* Maps bytes (rounded up to 2 MiB): hugepages when free, else THP-advised memory. */
static bool
buffer_map(size_t bytes)
{
	bytes = (bytes + HUGE_BYTES - 1) & ~(size_t)(HUGE_BYTES - 1);
	buf.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	buf.hugetlb = buf.mem != MAP_FAILED;
	if (!buf.hugetlb) {
		buf.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		               0);
		if (buf.mem == MAP_FAILED) {
			buf.mem = NULL;
			return false;
		}
		(void)madvise(buf.mem, bytes, MADV_HUGEPAGE);
	}
	buf.bytes = bytes;
	memset(buf.mem, 0, bytes);
	return true;
}

/*
 * Links `lines` slots `stride` bytes apart (slot i at i * stride + its in-page offset)
 * into one cycle in a shuffled order: each slot's first 8 bytes hold the offset of the
 * next slot in that order.
 */
static void
buffer_link(uint64_t lines, uint64_t stride)
{
	uint32_t *order = malloc(lines * sizeof(*order));
	uint64_t x = BENCH_SEED;

	VERIFY(order != NULL);
	for (uint64_t i = 0; i < lines; i++)
		order[i] = (uint32_t)i;
	for (uint64_t i = lines - 1; i > 0; i--) {
		uint64_t j = next_rand(&x) % (i + 1);
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; i < lines; i++) {
		uint64_t at = order[i] * stride;
		uint64_t next = order[(i + 1) % lines] * stride;
		/* In a page of its own, a slot sits at a line that depends on the page, so
		 * that the lines spread over the cache sets rather than all sharing one. */
		if (stride > LINE) {
			at += (order[i] % (PAGE / LINE)) * LINE;
			next += (order[(i + 1) % lines] % (PAGE / LINE)) * LINE;
		}
		memcpy(buf.mem + at, &next, sizeof(next));
	}
	free(order);
	buf.lines = lines;
	buf.stride = stride;
}

/*
 * Makes buf hold `lines` slots `stride` apart, linked into one cycle (the chases follow it;
 * BM_memory_prefetched reads the same memory in its own random order). False when skipped.
 */
static bool
buffer_ready(struct cbench_state *st, int64_t lines, uint64_t stride)
{
	char msg[CBENCH_LABEL_MAX];

	if (buf.mem != NULL && buf.lines == (uint64_t)lines && buf.stride == stride)
		return true;
	buffer_free();
	if (lines < 2 || (uint64_t)lines > UINT32_MAX) {
		snprintf(msg, sizeof(msg), "%" PRId64 " lines: need 2 .. 2^32-1", lines);
		cbench_skip_with_error(st, msg);
		return false;
	}
	if (!buffer_map((size_t)lines * stride + PAGE)) {
		cbench_skip_with_error(st, "cannot map the buffer");
		return false;
	}
	buffer_link((uint64_t)lines, stride);
	return true;
}

static void
report(struct cbench_state *st)
{
	char label[CBENCH_LABEL_MAX];

	snprintf(label, sizeof(label), "%s, %zu MiB mapped", buf.hugetlb ? "hugetlb" : "thp",
	         buf.bytes >> 20);
	cbench_set_label(st, label);
	cbench_set_items_processed(st, cbench_iterations(st));
}

/* Follows the cycle: each load's address is the previous load's value. */
static void
chase(struct cbench_state *st)
{
	uint64_t at = 0;

	while (cbench_keep_running(st)) {
		memcpy(&at, buf.mem + at, sizeof(at));
		CBENCH_DO_NOT_OPTIMIZE(at);
	}
	report(st);
}

/* buffer_ready() for the run's argument in bytes, a slot per line. False when skipped. */
static bool
bytes_ready(struct cbench_state *st)
{
	int64_t bytes = cbench_range(st, 0);

	if (bytes < 2 * (int64_t)LINE || bytes > BENCH_BYTES_MAX) {
		cbench_skip_with_error(st, "bytes outside 128 .. 1 GiB");
		return false;
	}
	return buffer_ready(st, bytes / LINE, LINE);
}

static void
BM_memory_chase(struct cbench_state *st)
{
	if (bytes_ready(st))
		chase(st);
}

static void
BM_memory_pages(struct cbench_state *st)
{
	int64_t pages = cbench_range(st, 0);

	if (pages > BENCH_PAGES_MAX) {
		cbench_skip_with_error(st, "pages over 262,144");
		return;
	}
	if (buffer_ready(st, pages, PAGE))
		chase(st);
}

static void
BM_memory_prefetched(struct cbench_state *st)
{
	uint64_t sum = 0;
	uint32_t i = 0;
	uint64_t x = BENCH_SEED;

	if (!bytes_ready(st))
		return;
	for (uint32_t k = 0; k < RANDOM_INDEXES; k++)
		buf.index[k] = (uint32_t)(next_rand(&x) % buf.lines);
	while (cbench_keep_running(st)) {
		uint32_t ahead = buf.index[(i + PREFETCH_AHEAD) & (RANDOM_INDEXES - 1)];
		uint64_t v;

		__builtin_prefetch(buf.mem + (uint64_t)ahead * LINE, 0, 3);
		memcpy(&v, buf.mem + (uint64_t)buf.index[i] * LINE, sizeof(v));
		sum += v;
		i = (i + 1) & (RANDOM_INDEXES - 1);
	}
	CBENCH_DO_NOT_OPTIMIZE(sum);
	report(st);
}

/* 256 KiB (L2), 1 MiB, 8 MiB, 64 MiB, 256 MiB (a 1 M-key store's order). */
static void
byte_sizes(struct cbench *b)
{
	static const char *const names[] = {"bytes"};

	cbench_add_arg(b, 256 * 1024);
	cbench_add_arg(b, 1024 * 1024);
	cbench_add_arg(b, 8 * 1024 * 1024);
	cbench_add_arg(b, 64 * 1024 * 1024);
	cbench_add_arg(b, 256 * 1024 * 1024);
	cbench_set_arg_names(b, names, 1);
}

CBENCH_REGISTER(BM_memory_chase)
{
	byte_sizes(b);
}

/* 512 .. 32,768 pages: from within any TLB's reach to far past it. */
CBENCH_REGISTER(BM_memory_pages)
{
	static const char *const names[] = {"pages"};

	cbench_add_arg(b, 512);
	cbench_add_arg(b, 2048);
	cbench_add_arg(b, 8192);
	cbench_add_arg(b, 32768);
	cbench_set_arg_names(b, names, 1);
}

CBENCH_REGISTER(BM_memory_prefetched)
{
	byte_sizes(b);
}
