/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cluster/region.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/verify.h"

#define HUGETLBFS_MAGIC_NUMBER 0x958458f6u
#define READ_SPIN_MAX          16u /* retries that only pause before yielding the CPU */

#define TMP_PATH_MAX 4096u /* bytes of the temporary path used by create */

struct sp_region {
	uint8_t *base;
	size_t size;
	bool writable;
	uint64_t read_retries; /* read attempts that raced the writer */
	dev_t dev;             /* identity of the mapped file, to notice a replacement */
	ino_t ino;
	char *path;
	uint32_t partitions_max;
	struct sp_region_header *hdr;
	struct sp_region_dataplane *dp;
};

/* The section geometry this version derives from partitions_max. */
struct layout {
	uint64_t state_offset[2];
	uint64_t state_size;
	uint64_t dp_offset;
	uint64_t dp_size;
	uint64_t end;
};

static uint64_t
align_up(uint64_t x, uint64_t a)
{
	ASSERT(a != 0);
	return (x + a - 1) / a * a;
}

static void
layout_compute(uint32_t partitions_max, struct layout *l)
{
	ASSERT(sp_is_power_of_two(partitions_max));
	ASSERT(partitions_max <= SP_PARTITIONS_MAX);
	l->state_size = align_up(sizeof(struct sp_region_state) +
	                                 (uint64_t)partitions_max * sizeof(struct sp_map_entry),
	                         SP_REGION_ALIGN);
	l->state_offset[0] = SP_REGION_HEADER_SIZE;
	l->state_offset[1] = l->state_offset[0] + l->state_size;
	l->dp_offset = l->state_offset[1] + l->state_size;
	l->dp_size = align_up(sizeof(struct sp_region_dataplane), SP_REGION_ALIGN);
	l->end = l->dp_offset + l->dp_size;
}

static uint32_t
header_crc(const struct sp_region_header *h)
{
	return sp_crc32c(0, h, offsetof(struct sp_region_header, header_crc));
}

static struct sp_region_state *
slot_at(const struct sp_region *r, uint32_t slot)
{
	ASSERT(slot < 2);
	return (struct sp_region_state *)(r->base + r->hdr->state_offset[slot]);
}

/* CRC32C of a slot's content: the fixed part from `generation` with crc taken as 0, then
 * the used map entries. fixed and map may be the live slot or a private copy. */
static uint32_t
slot_crc(const struct sp_region_state *fixed, const struct sp_map_entry *map, uint32_t partitions)
{
	const uint8_t *from = (const uint8_t *)&fixed->generation;
	const uint8_t *crc_field = (const uint8_t *)&fixed->crc;
	const uint8_t *end = (const uint8_t *)&fixed->members[SP_MEMBERS_MAX];
	uint32_t zero = 0;
	uint32_t crc;

	ASSERT(from < crc_field);
	ASSERT(crc_field < end);
	crc = sp_crc32c(0, from, (size_t)(crc_field - from));
	crc = sp_crc32c(crc, &zero, sizeof(zero));
	crc = sp_crc32c(crc, crc_field + sizeof(zero), (size_t)(end - crc_field - sizeof(zero)));
	return sp_crc32c(crc, map, (size_t)partitions * sizeof(map[0]));
}

static uint64_t
wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * SP_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Pauses between read attempts: spins briefly, then yields the CPU to the writer. */
static void
read_backoff(uint32_t attempt)
{
	if (attempt >= READ_SPIN_MAX) {
		sched_yield();
		return;
	}
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Finds the size granule of the file system holding fd: its huge page size on hugetlbfs,
 * otherwise a page. */
static uint64_t
fs_granule(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) == 0 && (uint32_t)sfs.f_type == HUGETLBFS_MAGIC_NUMBER &&
	    sfs.f_bsize > 0)
		return (uint64_t)sfs.f_bsize;
	return SP_REGION_ALIGN;
}

/* Wraps a mapping of the file fd (at path) in a handle. Returns NULL when out of memory. */
static struct sp_region *
region_new(uint8_t *base, size_t size, bool writable, int fd, const char *path)
{
	struct sp_region *r = calloc(1, sizeof(*r));
	struct stat sb;

	if (r == NULL)
		return NULL;
	r->path = strdup(path);
	if (r->path == NULL || fstat(fd, &sb) != 0) {
		free(r->path);
		free(r);
		return NULL;
	}
	r->base = base;
	r->size = size;
	r->writable = writable;
	r->dev = sb.st_dev;
	r->ino = sb.st_ino;
	r->hdr = (struct sp_region_header *)base;
	ASSERT(size >= SP_REGION_HEADER_SIZE);
	ASSERT(r->hdr == (void *)base);
	return r;
}

int
sp_region_create(const char *path, uint32_t partitions_max, struct sp_region **out, char *why,
                 size_t why_len)
{
	char tmp[TMP_PATH_MAX];
	struct sp_region_header *h;
	struct sp_region *r = NULL;
	void *base = MAP_FAILED;
	struct layout l;
	uint64_t total = 0;
	int fd, rc;

	ASSERT(path != NULL);
	ASSERT(out != NULL);
	*out = NULL;
	if (!sp_is_power_of_two(partitions_max) || partitions_max > SP_PARTITIONS_MAX)
		return sp_explain(why, why_len, -EINVAL,
		                  "region %s: partition capacity %u must be a power of two <= %u",
		                  path, partitions_max, SP_PARTITIONS_MAX);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return sp_explain(why, why_len, -ENAMETOOLONG, "region %s: path is too long", path);
	layout_compute(partitions_max, &l);
	/* Built under a temporary name and renamed over path, so that a process that still
	 * maps an older region keeps a whole (if stale) file instead of a truncated one. */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		return sp_explain(why, why_len, rc, "region %s: cannot create %s: %s", path, tmp,
		                  strerror(-rc));
	}
	total = align_up(l.end, fs_granule(fd));
	if (ftruncate(fd, (off_t)total) != 0) {
		rc = -errno;
		sp_explain(why, why_len, rc, "region %s: cannot size to %llu bytes: %s", path,
		           (unsigned long long)total, strerror(-rc));
		goto fail;
	}
	base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		sp_explain(why, why_len, rc, "region %s: cannot map %llu bytes: %s", path,
		           (unsigned long long)total, strerror(-rc));
		goto fail;
	}
	r = region_new(base, total, true, fd, path);
	if (r == NULL) {
		rc = sp_explain(why, why_len, -ENOMEM, "region %s: out of memory", path);
		goto fail;
	}
	memset(base, 0, total);
	h = r->hdr;
	h->version = SP_REGION_VERSION;
	h->header_size = SP_REGION_HEADER_SIZE;
	h->total_size = total;
	h->partitions_max = partitions_max;
	h->members_max = SP_MEMBERS_MAX;
	h->state_offset[0] = l.state_offset[0];
	h->state_offset[1] = l.state_offset[1];
	h->state_size = l.state_size;
	h->dp_offset = l.dp_offset;
	h->dp_size = l.dp_size;
	h->magic = SP_REGION_MAGIC;
	h->header_crc = header_crc(h);
	atomic_store_explicit(&h->state_active, 0, memory_order_relaxed);
	atomic_store_explicit(&h->state_generation, 0, memory_order_release);
	if (rename(tmp, path) != 0) {
		rc = -errno;
		sp_explain(why, why_len, rc, "region %s: cannot rename %s into place: %s", path,
		           tmp, strerror(-rc));
		goto fail;
	}
	close(fd);
	r->partitions_max = partitions_max;
	r->dp = (struct sp_region_dataplane *)(r->base + l.dp_offset);
	*out = r;
	return 0;
fail:
	if (r != NULL) {
		free(r->path);
		free(r);
	}
	if (base != MAP_FAILED)
		munmap(base, total);
	close(fd);
	unlink(tmp);
	return rc;
}

/* Validates the immutable header against this version's layout and the file size. */
static int
header_check(const struct sp_region_header *h, uint64_t file_size, const char *path, char *why,
             size_t why_len)
{
	struct layout l;

	if (h->magic != SP_REGION_MAGIC)
		return sp_explain(
		        why, why_len, -SP_ECORRUPT,
		        "region %s: bad magic 0x%016llx (not a Shardplane region; recreate it "
		        "with shardplane-region create)",
		        path, (unsigned long long)h->magic);
	if (h->version != SP_REGION_VERSION)
		return sp_explain(
		        why, why_len, -SP_EVERSION,
		        "region %s: layout version %u, this build reads version %u; restart "
		        "the control plane of the same release to recreate it",
		        path, h->version, SP_REGION_VERSION);
	if (h->header_crc != header_crc(h))
		return sp_explain(
		        why, why_len, -SP_ECORRUPT,
		        "region %s: header checksum 0x%08x does not match its content 0x%08x", path,
		        h->header_crc, header_crc(h));
	if (h->header_size != SP_REGION_HEADER_SIZE || h->members_max != SP_MEMBERS_MAX)
		return sp_explain(
		        why, why_len, -SP_ECORRUPT,
		        "region %s: header size %u / member capacity %u, expected %u / %u", path,
		        h->header_size, h->members_max, SP_REGION_HEADER_SIZE, SP_MEMBERS_MAX);
	if (!sp_is_power_of_two(h->partitions_max) || h->partitions_max > SP_PARTITIONS_MAX)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region %s: partition capacity %u is not a power of two <= %u",
		                  path, h->partitions_max, SP_PARTITIONS_MAX);
	layout_compute(h->partitions_max, &l);
	if (h->state_offset[0] != l.state_offset[0] || h->state_offset[1] != l.state_offset[1] ||
	    h->state_size != l.state_size || h->dp_offset != l.dp_offset || h->dp_size != l.dp_size)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region %s: section offsets/sizes do not match the layout for %u "
		                  "partitions",
		                  path, h->partitions_max);
	if (h->total_size < l.end || h->total_size > SP_REGION_SIZE_MAX)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region %s: total size %llu is outside [%llu, %llu]", path,
		                  (unsigned long long)h->total_size, (unsigned long long)l.end,
		                  (unsigned long long)SP_REGION_SIZE_MAX);
	if (h->total_size > file_size)
		return sp_explain(
		        why, why_len, -SP_ETRUNCATED,
		        "region %s: file is %llu bytes but its header says %llu (truncated)", path,
		        (unsigned long long)file_size, (unsigned long long)h->total_size);
	return 0;
}

int
sp_region_open(const char *path, bool writable, struct sp_region **out, char *why, size_t why_len)
{
	struct sp_region *r;
	struct stat stbuf;
	void *base;
	int fd, rc;

	ASSERT(path != NULL);
	ASSERT(out != NULL);
	*out = NULL;
	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		return sp_explain(why, why_len, rc, "region %s: cannot open: %s", path,
		                  strerror(-rc));
	}
	if (fstat(fd, &stbuf) != 0 || !S_ISREG(stbuf.st_mode)) {
		close(fd);
		return sp_explain(why, why_len, -EINVAL, "region %s: not a regular file", path);
	}
	if ((uint64_t)stbuf.st_size < SP_REGION_HEADER_SIZE) {
		close(fd);
		return sp_explain(why, why_len, -SP_ETRUNCATED,
		                  "region %s: file is %lld bytes, shorter than the %u-byte header",
		                  path, (long long)stbuf.st_size, SP_REGION_HEADER_SIZE);
	}
	if ((uint64_t)stbuf.st_size > SP_REGION_SIZE_MAX) {
		close(fd);
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region %s: file is %lld bytes, over the %llu-byte limit", path,
		                  (long long)stbuf.st_size, (unsigned long long)SP_REGION_SIZE_MAX);
	}
	base = mmap(NULL, (size_t)stbuf.st_size, PROT_READ | (writable ? PROT_WRITE : 0),
	            MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return sp_explain(why, why_len, rc, "region %s: cannot map: %s", path,
		                  strerror(-rc));
	}
	rc = header_check(base, (uint64_t)stbuf.st_size, path, why, why_len);
	r = rc < 0 ? NULL : region_new(base, (size_t)stbuf.st_size, writable, fd, path);
	close(fd);
	if (r == NULL) {
		munmap(base, (size_t)stbuf.st_size);
		return rc < 0 ? rc
		              : sp_explain(why, why_len, -ENOMEM, "region %s: out of memory", path);
	}
	r->partitions_max = r->hdr->partitions_max;
	r->dp = (struct sp_region_dataplane *)(r->base + r->hdr->dp_offset);
	*out = r;
	return 0;
}

void
sp_region_close(struct sp_region *r)
{
	if (r == NULL)
		return;
	munmap(r->base, r->size);
	free(r->path);
	free(r);
}

int
sp_region_open_or_create(const char *path, uint32_t partitions_max, struct sp_region **out,
                         bool *created, char *why, size_t why_len)
{
	int rc;

	ASSERT(out != NULL);
	ASSERT(created != NULL);
	*created = false;
	rc = sp_region_open(path, true, out, why, why_len);
	if (rc == 0 && sp_region_partitions_max(*out) == partitions_max)
		return 0;
	if (rc == 0) {
		sp_region_close(*out);
		*out = NULL;
	} else if (rc != -ENOENT && rc != -SP_ECORRUPT && rc != -SP_EVERSION &&
	           rc != -SP_ETRUNCATED) {
		return rc; /* permissions, I/O: not a reason to replace the file */
	}
	rc = sp_region_create(path, partitions_max, out, why, why_len);
	*created = rc == 0;
	return rc;
}

bool
sp_region_replaced(const struct sp_region *r)
{
	struct stat sb;

	ASSERT(r != NULL);
	ASSERT(r->path != NULL);
	if (stat(r->path, &sb) != 0)
		return true;
	return sb.st_dev != r->dev || sb.st_ino != r->ino;
}

uint64_t
sp_region_read_retries(const struct sp_region *r)
{
	ASSERT(r != NULL);
	return r->read_retries;
}

uint32_t
sp_region_partitions_max(const struct sp_region *r)
{
	ASSERT(r != NULL);
	return r->partitions_max;
}

uint64_t
sp_region_generation(const struct sp_region *r)
{
	ASSERT(r != NULL);
	return atomic_load_explicit(&r->hdr->state_generation, memory_order_acquire);
}

int
sp_region_publish(struct sp_region *r, const struct sp_cluster_state *st, char *why, size_t why_len)
{
	struct sp_region_header *h = r->hdr;
	struct sp_region_state *cur, *next;
	uint64_t gen, seq;
	uint32_t active;
	int rc;

	ASSERT(st != NULL);
	if (!r->writable)
		return sp_explain(why, why_len, -EROFS, "region is mapped read-only");
	rc = sp_cluster_state_validate(st, why, why_len);
	if (rc < 0)
		return rc;
	if (st->partitions > r->partitions_max)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "%u partitions do not fit this region (capacity %u); recreate it "
		                  "with a larger capacity",
		                  st->partitions, r->partitions_max);
	gen = atomic_load_explicit(&h->state_generation, memory_order_relaxed);
	active = atomic_load_explicit(&h->state_active, memory_order_relaxed);
	if (active > 1)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region: active slot index %u is not 0/1", active);
	cur = slot_at(r, active);
	if (gen != 0 && st->epoch < cur->epoch)
		return sp_explain(
		        why, why_len, -SP_EVERSION,
		        "epoch %llu is older than the published epoch %llu (epochs never go "
		        "back)",
		        (unsigned long long)st->epoch, (unsigned long long)cur->epoch);
	next = slot_at(r, active ^ 1u);
	/* Odd while writing; (seq | 1) also repairs a slot left odd by a writer that died. */
	seq = atomic_load_explicit(&next->seq, memory_order_relaxed) | 1u;
	atomic_store_explicit(&next->seq, seq, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	next->generation = gen + 1;
	next->epoch = st->epoch;
	next->published_wall_ns = wall_ns();
	next->partitions = st->partitions;
	next->self_node_id = st->self_node_id;
	next->member_count = st->member_count;
	memset(next->reserved, 0, sizeof(next->reserved));
	memset(next->members, 0, sizeof(next->members));
	memcpy(next->members, st->members, st->member_count * sizeof(st->members[0]));
	memcpy(next->map, st->map, (size_t)st->partitions * sizeof(st->map[0]));
	next->crc = slot_crc(next, next->map, st->partitions);
	atomic_store_explicit(&next->seq, seq + 1, memory_order_release);
	atomic_store_explicit(&h->state_active, active ^ 1u, memory_order_release);
	atomic_store_explicit(&h->state_generation, gen + 1, memory_order_release);
	ASSERT((seq + 1) % 2 == 0);
	return 0;
}

/* One attempt at copying the active slot. Returns 0, 1 (raced with the writer: retry) or
 * a negative error for a stable but unusable slot. */
static int
read_attempt(struct sp_region *r, struct sp_region_state *copy, struct sp_cluster_state *st,
             char *why, size_t why_len)
{
	const struct sp_region_state *slot;
	uint32_t active, partitions;
	uint64_t seq1, seq2;

	active = atomic_load_explicit(&r->hdr->state_active, memory_order_acquire);
	if (active > 1)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region: active slot index %u is not 0 or 1", active);
	slot = slot_at(r, active);
	seq1 = atomic_load_explicit(&((struct sp_region_state *)slot)->seq, memory_order_acquire);
	if (seq1 % 2 != 0)
		return 1;
	memcpy((uint8_t *)copy + sizeof(copy->seq), (const uint8_t *)slot + sizeof(slot->seq),
	       sizeof(*copy) - sizeof(copy->seq));
	partitions = copy->partitions;
	if (partitions <= r->partitions_max && partitions <= st->map_capacity)
		memcpy(st->map, slot->map, (size_t)partitions * sizeof(st->map[0]));
	atomic_thread_fence(memory_order_acquire);
	seq2 = atomic_load_explicit(&((struct sp_region_state *)slot)->seq, memory_order_relaxed);
	if (seq1 != seq2)
		return 1;
	/* The copy is one whole version; from here on problems are in the data itself. */
	if (partitions > r->partitions_max)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region: published partition count %u is over the capacity %u",
		                  partitions, r->partitions_max);
	if (partitions > st->map_capacity)
		return sp_explain(why, why_len, -SP_ETOOBIG,
		                  "region: %u partitions do not fit the reader's map of %u",
		                  partitions, st->map_capacity);
	if (slot_crc(copy, st->map, partitions) != copy->crc)
		return sp_explain(why, why_len, -SP_ECORRUPT,
		                  "region: state slot %u (generation %llu) fails its checksum",
		                  active, (unsigned long long)copy->generation);
	return 0;
}

int
sp_region_read(struct sp_region *r, struct sp_cluster_state *st, char *why, size_t why_len)
{
	struct sp_region_state copy;
	uint32_t attempt;
	int rc = 1;

	ASSERT(r != NULL);
	ASSERT(st != NULL);
	if (sp_region_generation(r) == 0)
		return sp_explain(why, why_len, -SP_ENOTFOUND,
		                  "region: no cluster state has been published yet");
	for (attempt = 0; attempt < SP_REGION_READ_RETRIES_MAX; attempt++) {
		rc = read_attempt(r, &copy, st, why, why_len);
		if (rc <= 0)
			break;
		r->read_retries++;
		read_backoff(attempt);
	}
	if (rc > 0)
		return sp_explain(why, why_len, -SP_EBUSY,
		                  "region: the state slot was being written during each of %u read "
		                  "attempts",
		                  SP_REGION_READ_RETRIES_MAX);
	if (rc < 0)
		return rc;
	st->epoch = copy.epoch;
	st->generation = copy.generation;
	st->partitions = copy.partitions;
	st->self_node_id = copy.self_node_id;
	st->member_count = copy.member_count;
	memcpy(st->members, copy.members, sizeof(st->members));
	rc = sp_cluster_state_validate(st, why, why_len);
	return rc < 0 ? -SP_ECORRUPT : 0;
}

int
sp_region_status_write(struct sp_region *r, const struct sp_dp_status *s)
{
	struct sp_region_dataplane *dp = r->dp;
	uint64_t seq;

	ASSERT(s != NULL);
	if (!r->writable)
		return -EROFS;
	seq = atomic_load_explicit(&dp->seq, memory_order_relaxed) | 1u;
	atomic_store_explicit(&dp->seq, seq, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	memcpy(&dp->status, s, sizeof(*s));
	atomic_store_explicit(&dp->seq, seq + 1, memory_order_release);
	ASSERT((seq + 1) % 2 == 0);
	return 0;
}

int
sp_region_status_read(struct sp_region *r, struct sp_dp_status *s)
{
	struct sp_region_dataplane *dp = r->dp;
	uint64_t seq1, seq2;

	ASSERT(s != NULL);
	for (uint32_t attempt = 0; attempt < SP_REGION_READ_RETRIES_MAX; attempt++) {
		seq1 = atomic_load_explicit(&dp->seq, memory_order_acquire);
		if (seq1 % 2 == 0) {
			memcpy(s, &dp->status, sizeof(*s));
			atomic_thread_fence(memory_order_acquire);
			seq2 = atomic_load_explicit(&dp->seq, memory_order_relaxed);
			if (seq1 == seq2)
				return s->heartbeat_mono_ns == 0 ? -SP_ENOTFOUND : 0;
		}
		read_backoff(attempt);
	}
	return -SP_EBUSY;
}

int
sp_region_lease_write(struct sp_region *r, uint64_t expiry_mono_ns, uint32_t membership)
{
	ASSERT(r != NULL);
	if (!r->writable)
		return -EROFS;
	if (membership >= SP_REGION_MEMBER_LAST)
		return -EINVAL;
	atomic_store_explicit(&r->hdr->membership, membership, memory_order_release);
	atomic_store_explicit(&r->hdr->lease_expiry_mono_ns, expiry_mono_ns, memory_order_release);
	return 0;
}

void
sp_region_lease_read(const struct sp_region *r, uint64_t *expiry_mono_ns, uint32_t *membership)
{
	ASSERT(r != NULL);
	*expiry_mono_ns = atomic_load_explicit(&r->hdr->lease_expiry_mono_ns, memory_order_acquire);
	*membership = atomic_load_explicit(&r->hdr->membership, memory_order_acquire);
}

enum sp_dp_serving
sp_region_serving(bool map_installed, uint64_t expiry_mono_ns, uint32_t membership,
                  uint64_t now_mono_ns)
{
	if (membership == SP_REGION_MEMBER_REMOVED)
		return SP_DP_REMOVED;
	if (!map_installed)
		return SP_DP_NOT_READY;
	if (membership == SP_REGION_MEMBER_IN && now_mono_ns < expiry_mono_ns)
		return SP_DP_SERVING;
	return SP_DP_NO_LEASE;
}

const char *
sp_dp_serving_name(uint32_t serving)
{
	static const char *const names[SP_DP_SERVING_LAST] = {
	        [SP_DP_NOT_READY] = "not ready",     [SP_DP_SERVING] = "serving",
	        [SP_DP_NO_LEASE] = "no lease",       [SP_DP_REMOVED] = "removed",
	        [SP_DP_UNCLUSTERED] = "single-node",
	};

	return serving < SP_DP_SERVING_LAST ? names[serving] : "invalid";
}

const char *
sp_dp_state_name(uint32_t state)
{
	static const char *const names[SP_DP_STATE_LAST] = {
	        [SP_DP_STOPPED] = "stopped",   [SP_DP_STARTING] = "starting",
	        [SP_DP_RUNNING] = "running",   [SP_DP_SWITCHING] = "switching",
	        [SP_DP_STOPPING] = "stopping",
	};

	return state < SP_DP_STATE_LAST ? names[state] : "invalid";
}

const char *
sp_member_state_name(uint32_t state)
{
	static const char *const names[SP_MEMBER_STATE_LAST] = {
	        [SP_MEMBER_NONE] = "none",       [SP_MEMBER_ACTIVE] = "active",
	        [SP_MEMBER_LEARNER] = "learner", [SP_MEMBER_LEAVING] = "leaving",
	        [SP_MEMBER_DOWN] = "down",
	};

	return state < SP_MEMBER_STATE_LAST ? names[state] : "invalid";
}
