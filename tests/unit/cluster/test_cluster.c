/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition-map helpers and the shared region: round trips, every validation error, and
 * a writer thread racing a reader thread (seeded; replay with SP_TEST_SEED=N).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/partmap.h"
#include "cluster/region.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/errors.h"

#define TEST_CAPACITY      256u
#define RACE_PARTITIONS    256u
#define RACE_PUBLISHES_MAX 20000u /* writer versions in the race test */
#define RACE_TIME_MAX_MS   1000u  /* and its time bound */

static uint64_t test_seed;
static char region_path[128];

/* Teardown of every test: removes what a failed test may have left behind. */
static int
remove_files(void **state)
{
	char map_path[160];

	(void)state;
	if (region_path[0] == '\0')
		return 0;
	snprintf(map_path, sizeof(map_path), "%s.map", region_path);
	unlink(map_path);
	if (unlink(region_path) != 0)
		rmdir(region_path);
	region_path[0] = '\0';
	return 0;
}

static void
make_path(const char *tag)
{
	snprintf(region_path, sizeof(region_path), "/dev/shm/sp-test-cluster-%d-%s", (int)getpid(),
	         tag);
}

/* A three-member state with a map that uses all of them. */
static struct sp_cluster_state *
three_members(uint32_t partitions)
{
	struct sp_cluster_state *st = sp_cluster_state_new(TEST_CAPACITY);

	assert_non_null(st);
	st->epoch = 7;
	st->partitions = partitions;
	st->self_node_id = 2;
	st->member_count = 3;
	for (uint32_t i = 0; i < 3; i++) {
		struct sp_member *m = &st->members[i];

		m->node_id = i + 1;
		m->ipv4_be = htobe32(0x0a000001u + i);
		m->mac[0] = 0x02;
		m->mac[5] = (uint8_t)(i + 1);
		m->binary_port = 9000;
		m->memcached_port = 11211;
		m->worker_count = (uint16_t)(i + 1);
		m->state = SP_MEMBER_ACTIVE;
		snprintf(m->name, sizeof(m->name), "n%u", i + 1);
	}
	for (uint32_t p = 0; p < partitions; p++) {
		st->map[p].node_id = p % 3 + 1;
		st->map[p].worker = (uint16_t)(p % (p % 3 + 1));
	}
	assert_int_equal(sp_cluster_state_validate(st, NULL, 0), 0);
	return st;
}

static void
test_default_map(void **state)
{
	struct sp_map_entry map[64];

	(void)state;
	assert_int_equal(sp_partmap_default(map, 64, 5, 3), 0);
	for (uint32_t p = 0; p < 64; p++) {
		assert_int_equal(map[p].node_id, 5);
		assert_int_equal(map[p].worker, p % 3);
		assert_int_equal(map[p].flags, 0);
	}
	assert_int_equal(sp_partmap_default(map, 48, 5, 3), -EINVAL);
	assert_int_equal(sp_partmap_default(map, 0, 5, 3), -EINVAL);
	assert_int_equal(sp_partmap_default(map, SP_PARTITIONS_MAX * 2, 5, 3), -EINVAL);
	assert_int_equal(sp_partmap_default(map, 64, 5, 0), -EINVAL);
	assert_int_equal(sp_partmap_default(map, 64, 5, SP_WORKERS_MAX + 1), -EINVAL);
	assert_int_equal(sp_partmap_default(map, 1, 5, SP_WORKERS_MAX), 0);
	assert_int_equal(map[0].worker, 0);
}

static void
test_single_state_and_copy(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(64);
	struct sp_cluster_state *small = sp_cluster_state_new(16);
	struct sp_cluster_state *big = sp_cluster_state_new(128);

	(void)state;
	assert_null(sp_cluster_state_new(100));
	assert_null(sp_cluster_state_new(SP_PARTITIONS_MAX * 2));
	assert_int_equal(sp_cluster_state_single(st, 64, 9, 4, "solo"), 0);
	assert_int_equal(sp_cluster_state_validate(st, NULL, 0), 0);
	assert_int_equal(st->epoch, 1);
	assert_string_equal(sp_cluster_find_member(st, 9)->name, "solo");
	assert_null(sp_cluster_find_member(st, 8));
	assert_int_equal(st->map[13].worker, 13 % 4);
	assert_int_equal(sp_cluster_state_single(st, 128, 9, 4, "solo"), -EINVAL);
	assert_int_equal(sp_cluster_state_single(st, 64, 0, 4, "solo"), -EINVAL);
	assert_int_equal(sp_cluster_state_copy(small, st), -SP_ETOOBIG);
	assert_int_equal(sp_cluster_state_copy(big, st), 0);
	assert_int_equal(big->map_capacity, 128);
	assert_int_equal(big->map[13].worker, 13 % 4);
	assert_int_equal(sp_cluster_state_validate(big, NULL, 0), 0);
	sp_cluster_state_free(st);
	sp_cluster_state_free(small);
	sp_cluster_state_free(big);
}

static void
test_member_index(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(16);
	struct sp_member_index ix;
	uint64_t x = test_seed | 1;

	(void)state;
	assert_non_null(st);
	st->member_count = SP_MEMBERS_MAX;
	for (uint32_t i = 0; i < SP_MEMBERS_MAX; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Distinct ids in random order: i in the low byte, noise above. */
		st->members[i].node_id = (uint32_t)((x & 0xffffff00u) | i) | 0x100u;
	}
	sp_member_index_build(&ix, st);
	assert_int_equal(ix.count, SP_MEMBERS_MAX);
	for (uint32_t i = 1; i < ix.count; i++)
		assert_true(ix.node_id[i - 1] < ix.node_id[i]);
	for (uint32_t i = 0; i < SP_MEMBERS_MAX; i++)
		assert_int_equal(sp_member_index_find(&ix, st->members[i].node_id), i);
	assert_int_equal(sp_member_index_find(&ix, 0), -1);
	assert_int_equal(sp_member_index_find(&ix, 0xffffffffu), -1);
	st->member_count = 0;
	sp_member_index_build(&ix, st);
	assert_int_equal(sp_member_index_find(&ix, st->members[0].node_id), -1);
	sp_cluster_state_free(st);
}

/* Expects validate to fail with err and a message containing word; then restores. */
static void
expect_invalid(const struct sp_cluster_state *st, int err, const char *word)
{
	char why[SP_CLUSTER_WHY_MAX] = "";

	assert_int_equal(sp_cluster_state_validate(st, why, sizeof(why)), err);
	if (strstr(why, word) == NULL)
		fail_msg("message '%s' does not mention '%s'", why, word);
}

static void
test_validate_every_error(void **state)
{
	struct sp_cluster_state *st = three_members(64);
	struct sp_cluster_state saved;
	struct sp_map_entry e;

	(void)state;
	saved = *st;
#define RESTORE() (*st = saved)
	st->epoch = 0;
	expect_invalid(st, -SP_EMALFORMED, "epoch");
	RESTORE();
	st->partitions = 48;
	expect_invalid(st, -SP_EMALFORMED, "power of two");
	RESTORE();
	st->partitions = 0;
	expect_invalid(st, -SP_EMALFORMED, "power of two");
	RESTORE();
	st->partitions = SP_PARTITIONS_MAX * 2;
	expect_invalid(st, -SP_ETOOBIG, "limit");
	RESTORE();
	st->partitions = TEST_CAPACITY * 2;
	expect_invalid(st, -SP_ETOOBIG, "capacity");
	RESTORE();
	st->member_count = 0;
	expect_invalid(st, -SP_EMALFORMED, "member count");
	RESTORE();
	st->member_count = SP_MEMBERS_MAX + 1;
	expect_invalid(st, -SP_EMALFORMED, "member count");
	RESTORE();
	st->members[1].node_id = 0;
	expect_invalid(st, -SP_EMALFORMED, "node id 0");
	RESTORE();
	st->members[2].node_id = 1;
	expect_invalid(st, -SP_EMALFORMED, "both have node id 1");
	RESTORE();
	memset(st->members[0].name, 'x', sizeof(st->members[0].name));
	expect_invalid(st, -SP_EMALFORMED, "NUL");
	RESTORE();
	st->members[0].worker_count = 0;
	expect_invalid(st, -SP_EMALFORMED, "worker count");
	RESTORE();
	st->members[0].worker_count = SP_WORKERS_MAX + 1;
	expect_invalid(st, -SP_EMALFORMED, "worker count");
	RESTORE();
	st->members[0].state = SP_MEMBER_STATE_LAST;
	expect_invalid(st, -SP_EMALFORMED, "state");
	RESTORE();
	st->members[0].reserved[3] = 1;
	expect_invalid(st, -SP_EMALFORMED, "reserved");
	RESTORE();
	st->self_node_id = 4;
	expect_invalid(st, -SP_EMALFORMED, "this node");
	RESTORE();
	e = st->map[10];
	st->map[10].node_id = 77;
	expect_invalid(st, -SP_EMALFORMED, "not a member");
	st->map[10] = e;
	e = st->map[11];
	st->map[11].worker = 5; /* node 3 has 3 workers */
	expect_invalid(st, -SP_EMALFORMED, "worker 5");
	st->map[11] = e;
	st->map[12].flags = 2;
	expect_invalid(st, -SP_EMALFORMED, "unknown bits");
	st->map[12].flags = SP_MAP_F_FENCED; /* a partition being moved is valid */
	assert_int_equal(sp_cluster_state_validate(st, NULL, 0), 0);
	st->map[12].flags = 0;
#undef RESTORE
	assert_int_equal(sp_cluster_state_validate(st, NULL, 0), 0);
	sp_cluster_state_free(st);
}

static void
assert_same_state(const struct sp_cluster_state *a, const struct sp_cluster_state *b)
{
	assert_int_equal(a->epoch, b->epoch);
	assert_int_equal(a->partitions, b->partitions);
	assert_int_equal(a->self_node_id, b->self_node_id);
	assert_int_equal(a->member_count, b->member_count);
	assert_memory_equal(a->members, b->members, a->member_count * sizeof(a->members[0]));
	assert_memory_equal(a->map, b->map, a->partitions * sizeof(a->map[0]));
}

static void
test_region_round_trip(void **state)
{
	struct sp_cluster_state *st = three_members(128);
	struct sp_cluster_state *got = sp_cluster_state_new(TEST_CAPACITY);
	struct sp_cluster_state *tiny = sp_cluster_state_new(64);
	struct sp_region *w, *r, *ro;
	char why[SP_CLUSTER_WHY_MAX];

	(void)state;
	make_path("rt");
	assert_int_equal(sp_region_create(region_path, 100, &w, why, sizeof(why)), -EINVAL);
	assert_int_equal(sp_region_create(region_path, TEST_CAPACITY, &w, why, sizeof(why)), 0);
	assert_int_equal(sp_region_open(region_path, true, &r, why, sizeof(why)), 0);
	assert_int_equal(sp_region_open(region_path, false, &ro, why, sizeof(why)), 0);
	assert_int_equal(sp_region_partitions_max(r), TEST_CAPACITY);
	assert_int_equal(sp_region_generation(r), 0);
	assert_int_equal(sp_region_read(r, got, why, sizeof(why)), -SP_ENOTFOUND);

	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	assert_int_equal(sp_region_generation(r), 1);
	assert_int_equal(sp_region_read(r, got, why, sizeof(why)), 0);
	assert_same_state(st, got);
	assert_int_equal(got->generation, 1);
	assert_int_equal(sp_region_read(ro, got, why, sizeof(why)), 0);
	assert_same_state(st, got);
	assert_int_equal(sp_region_read(r, tiny, why, sizeof(why)), -SP_ETOOBIG);

	/* A second version lands in the other slot; the same epoch may be republished. */
	st->map[5].worker = 0;
	st->members[0].binary_port = 9100;
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	st->epoch = 8;
	st->map[6].node_id = 1;
	st->map[6].worker = 0;
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	assert_int_equal(sp_region_read(ro, got, why, sizeof(why)), 0);
	assert_same_state(st, got);
	assert_int_equal(got->generation, 3);

	/* Refusals leave the published state alone. */
	st->epoch = 6;
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), -SP_EVERSION);
	assert_non_null(strstr(why, "older"));
	st->epoch = 9;
	assert_int_equal(sp_region_publish(ro, st, why, sizeof(why)), -EROFS);
	st->map[0].worker = 9;
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), -SP_EMALFORMED);
	assert_int_equal(sp_region_generation(r), 3);
	sp_cluster_state_free(st);
	st = sp_cluster_state_new(TEST_CAPACITY * 2);
	assert_int_equal(sp_cluster_state_single(st, TEST_CAPACITY * 2, 1, 1, "big"), 0);
	st->epoch = 10;
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), -SP_ETOOBIG);
	assert_int_equal(sp_region_read(r, got, why, sizeof(why)), 0);
	assert_int_equal(got->epoch, 8);

	sp_region_close(ro);
	sp_region_close(r);
	sp_region_close(w);
	unlink(region_path);
	sp_cluster_state_free(st);
	sp_cluster_state_free(got);
	sp_cluster_state_free(tiny);
}

static void
test_dataplane_status(void **state)
{
	struct sp_dp_status s = {0}, got;
	struct sp_region *cp, *dp;
	struct sp_region_header *h;
	struct sp_region_dataplane *sec;
	char why[SP_CLUSTER_WHY_MAX];
	int fd;

	(void)state;
	make_path("dp");
	assert_int_equal(sp_region_create(region_path, 16, &cp, why, sizeof(why)), 0);
	assert_int_equal(sp_region_open(region_path, true, &dp, why, sizeof(why)), 0);
	assert_int_equal(sp_region_status_read(cp, &got), -SP_ENOTFOUND);
	s.heartbeat_mono_ns = sp_mono_ns();
	s.pid = (uint32_t)getpid();
	s.state = SP_DP_RUNNING;
	s.applied_epoch = 4;
	s.counters.rx_pkts = 1000;
	s.counters.epoch_switches = 2;
	assert_int_equal(sp_region_status_write(dp, &s), 0);
	assert_int_equal(sp_region_status_read(cp, &got), 0);
	assert_memory_equal(&s, &got, sizeof(s));
	assert_string_equal(sp_dp_state_name(got.state), "running");
	assert_string_equal(sp_dp_state_name(99), "invalid");

	/* A dataplane that died mid-write leaves the seqlock odd: readers report busy (after
	 * their bounded retries) until the next dataplane writes. */
	fd = open(region_path, O_RDWR);
	assert_true(fd >= 0);
	h = mmap(NULL, SP_REGION_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(h != MAP_FAILED);
	sec = mmap(NULL, h->dp_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)h->dp_offset);
	assert_true(sec != MAP_FAILED);
	atomic_fetch_add(&sec->seq, 1);
	assert_int_equal(sp_region_status_read(cp, &got), -SP_EBUSY);
	s.counters.rx_pkts = 2000;
	assert_int_equal(sp_region_status_write(dp, &s), 0);
	assert_int_equal(atomic_load(&sec->seq) % 2, 0);
	assert_int_equal(sp_region_status_read(cp, &got), 0);
	assert_int_equal(got.counters.rx_pkts, 2000);
	munmap(sec, h->dp_size);
	munmap(h, SP_REGION_HEADER_SIZE);
	close(fd);
	sp_region_close(dp);
	sp_region_close(cp);
	unlink(region_path);
}

/* Maps the file at region_path writable for corruption. */
static uint8_t *
map_raw(size_t *size)
{
	struct stat sb;
	uint8_t *base;
	int fd = open(region_path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	*size = (size_t)sb.st_size;
	base = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(base != MAP_FAILED);
	close(fd);
	return base;
}

static void
fix_header_crc(struct sp_region_header *h)
{
	h->header_crc = sp_crc32c(0, h, offsetof(struct sp_region_header, header_crc));
}

/* Recomputes a slot's CRC as docs/region.md defines it, so that a test can plant data that
 * passes the checksum and must be caught by the invariant checks. */
static void
fix_slot_crc(struct sp_region_state *s)
{
	const uint8_t *from = (const uint8_t *)&s->generation;
	const uint8_t *end = (const uint8_t *)&s->members[SP_MEMBERS_MAX];
	uint32_t crc;

	s->crc = 0;
	crc = sp_crc32c(0, from, (size_t)(end - from));
	s->crc = sp_crc32c(crc, s->map, s->partitions * sizeof(s->map[0]));
}

/* Opens region_path expecting err and a message containing word. */
static void
expect_open_error(int err, const char *word)
{
	char why[SP_CLUSTER_WHY_MAX] = "";
	struct sp_region *r = NULL;

	assert_int_equal(sp_region_open(region_path, false, &r, why, sizeof(why)), err);
	assert_null(r);
	if (strstr(why, word) == NULL)
		fail_msg("message '%s' does not mention '%s'", why, word);
}

static void
expect_read_error(int err, const char *word)
{
	char why[SP_CLUSTER_WHY_MAX] = "";
	struct sp_cluster_state *st = sp_cluster_state_new(TEST_CAPACITY);
	struct sp_region *r;

	assert_int_equal(sp_region_open(region_path, false, &r, why, sizeof(why)), 0);
	assert_int_equal(sp_region_read(r, st, why, sizeof(why)), err);
	if (strstr(why, word) == NULL)
		fail_msg("message '%s' does not mention '%s'", why, word);
	sp_region_close(r);
	sp_cluster_state_free(st);
}

static void
test_region_validation_errors(void **state)
{
	struct sp_cluster_state *st = three_members(64);
	struct sp_region_header *h, saved;
	struct sp_region_state *slot;
	struct sp_region *w;
	char why[SP_CLUSTER_WHY_MAX];
	uint8_t *base;
	size_t size;
	uint32_t active;

	(void)state;
	make_path("bad");
	expect_open_error(-ENOENT, "cannot open");
	assert_int_equal(sp_region_create(region_path, TEST_CAPACITY, &w, why, sizeof(why)), 0);
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	sp_region_close(w);
	base = map_raw(&size);
	h = (struct sp_region_header *)base;
	saved = *h;

	h->magic ^= 1;
	expect_open_error(-SP_ECORRUPT, "magic");
	*h = saved;
	h->version = SP_REGION_VERSION + 1;
	expect_open_error(-SP_EVERSION, "version");
	*h = saved;
	h->dp_size += 8; /* not re-checksummed */
	expect_open_error(-SP_ECORRUPT, "checksum");
	fix_header_crc(h);
	expect_open_error(-SP_ECORRUPT, "offsets");
	*h = saved;
	h->partitions_max = 96;
	fix_header_crc(h);
	expect_open_error(-SP_ECORRUPT, "power of two");
	*h = saved;
	h->header_size = 512;
	fix_header_crc(h);
	expect_open_error(-SP_ECORRUPT, "header size");
	*h = saved;
	h->total_size = size * 2;
	fix_header_crc(h);
	expect_open_error(-SP_ETRUNCATED, "truncated");
	*h = saved;
	h->total_size = SP_REGION_SIZE_MAX * 2;
	fix_header_crc(h);
	expect_open_error(-SP_ECORRUPT, "total size");
	*h = saved;

	/* The published slot: corrupt bytes fail the checksum; checksummed nonsense fails the
	 * invariants; a bad active index is caught. */
	active = atomic_load(&h->state_active);
	slot = (struct sp_region_state *)(base + h->state_offset[active]);
	slot->map[3].worker ^= 0x40;
	expect_read_error(-SP_ECORRUPT, "checksum");
	slot->map[3].worker ^= 0x40;
	expect_read_error(0, "");
	slot->map[4].worker = 50;
	fix_slot_crc(slot);
	expect_read_error(-SP_ECORRUPT, "worker 50");
	slot->map[4] = st->map[4];
	slot->partitions = 48;
	fix_slot_crc(slot);
	expect_read_error(-SP_ECORRUPT, "power of two");
	slot->partitions = TEST_CAPACITY * 4;
	expect_read_error(-SP_ECORRUPT, "capacity");
	slot->partitions = 64;
	slot->self_node_id = 99;
	fix_slot_crc(slot);
	expect_read_error(-SP_ECORRUPT, "this node");
	slot->self_node_id = st->self_node_id;
	fix_slot_crc(slot);
	expect_read_error(0, "");
	atomic_store(&h->state_active, 5);
	expect_read_error(-SP_ECORRUPT, "slot index");
	atomic_store(&h->state_active, active);

	/* A writer that died while filling the active slot (impossible with one well-behaved
	 * writer, which only writes the inactive slot) makes readers give up after their
	 * bounded retries; the next two publications repair both slots. */
	atomic_fetch_add(&slot->seq, 1);
	expect_read_error(-SP_EBUSY, "read attempts");
	assert_int_equal(sp_region_open(region_path, true, &w, why, sizeof(why)), 0);
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	expect_read_error(0, "");
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	assert_int_equal(atomic_load(&slot->seq) % 2, 0);
	expect_read_error(0, "");
	sp_region_close(w);
	munmap(base, size);

	/* Truncated files: shorter than the header says, and shorter than a header. */
	assert_int_equal(truncate(region_path, (off_t)(size - SP_REGION_ALIGN)), 0);
	expect_open_error(-SP_ETRUNCATED, "truncated");
	assert_int_equal(truncate(region_path, 100), 0);
	expect_open_error(-SP_ETRUNCATED, "header");
	expect_open_error(-SP_ETRUNCATED, "100 bytes");
	unlink(region_path);
	sp_cluster_state_free(st);
}

/* Random file content never crashes the reader: it is refused at open. */
static void
test_region_garbage_files(void **state)
{
	uint8_t buf[SP_REGION_HEADER_SIZE * 2];
	uint64_t x = test_seed ^ 0x9e3779b97f4a7c15ull;
	struct sp_region *r;
	char why[SP_CLUSTER_WHY_MAX];

	(void)state;
	make_path("garbage");
	for (int round = 0; round < 50; round++) {
		FILE *f;

		for (size_t i = 0; i < sizeof(buf); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		if (round % 2 == 0)
			memcpy(buf, &(uint64_t){SP_REGION_MAGIC}, sizeof(uint64_t));
		f = fopen(region_path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(buf, 1, sizeof(buf), f), sizeof(buf));
		fclose(f);
		r = NULL;
		assert_true(sp_region_open(region_path, false, &r, why, sizeof(why)) < 0);
		assert_null(r);
	}
	unlink(region_path);
}

/* Random damage to a published slot, re-checksummed so that only the invariant checks
 * stand between it and the reader: every read either fails cleanly or returns a state
 * that validates. Seeded. */
static void
test_region_random_slot_damage(void **state)
{
	struct sp_cluster_state *st = three_members(64);
	struct sp_cluster_state *got = sp_cluster_state_new(TEST_CAPACITY);
	const uint32_t rounds = 2000;
	char why[SP_CLUSTER_WHY_MAX];
	struct sp_region_state *slot, *saved;
	struct sp_region_header *h;
	struct sp_region *w, *r;
	uint64_t x = test_seed * 0x9e3779b97f4a7c15ull | 1;
	uint32_t refused = 0, accepted = 0;
	size_t size, slot_bytes;
	uint8_t *base;

	(void)state;
	make_path("damage");
	assert_int_equal(sp_region_create(region_path, TEST_CAPACITY, &w, why, sizeof(why)), 0);
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	sp_region_close(w);
	assert_int_equal(sp_region_open(region_path, false, &r, why, sizeof(why)), 0);
	base = map_raw(&size);
	h = (struct sp_region_header *)base;
	slot = (struct sp_region_state *)(base + h->state_offset[atomic_load(&h->state_active)]);
	slot_bytes = sizeof(*slot) + 64 * sizeof(struct sp_map_entry);
	saved = malloc(slot_bytes);
	assert_non_null(saved);
	memcpy(saved, slot, slot_bytes);
	for (uint32_t i = 0; i < rounds; i++) {
		uint32_t flips = 1 + (uint32_t)(x % 4);

		memcpy(slot, saved, slot_bytes);
		for (uint32_t f = 0; f < flips; f++) {
			size_t at;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* Past seq; the partition count is damaged only within the capacity. */
			at = sizeof(slot->seq) + (size_t)(x % (slot_bytes - sizeof(slot->seq)));
			((uint8_t *)slot)[at] ^= (uint8_t)(1u << ((x >> 40) % 8));
		}
		if (slot->partitions > TEST_CAPACITY)
			slot->partitions = saved->partitions;
		fix_slot_crc(slot);
		if (sp_region_read(r, got, why, sizeof(why)) == 0) {
			assert_int_equal(sp_cluster_state_validate(got, NULL, 0), 0);
			accepted++;
		} else {
			refused++;
		}
	}
	printf("slot damage: seed %llu: %u refused, %u accepted (harmless flips)\n",
	       (unsigned long long)test_seed, refused, accepted);
	assert_int_equal(refused + accepted, rounds);
	assert_true(refused > 0);
	free(saved);
	munmap(base, size);
	sp_region_close(r);
	sp_cluster_state_free(st);
	sp_cluster_state_free(got);
}

/* The largest map round-trips; prints what a publication and a read cost. */
static void
test_region_full_capacity(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(SP_PARTITIONS_MAX);
	struct sp_cluster_state *got = sp_cluster_state_new(SP_PARTITIONS_MAX);
	char why[SP_CLUSTER_WHY_MAX];
	struct sp_region *w, *r;
	uint64_t t0, publish_ns = 0, read_ns = 0;
	const uint32_t rounds = 5;

	(void)state;
	make_path("full");
	assert_int_equal(sp_region_create(region_path, SP_PARTITIONS_MAX, &w, why, sizeof(why)), 0);
	assert_int_equal(sp_region_open(region_path, false, &r, why, sizeof(why)), 0);
	assert_int_equal(sp_cluster_state_single(st, SP_PARTITIONS_MAX, 1, SP_WORKERS_MAX, "full"),
	                 0);
	for (uint32_t i = 0; i < rounds; i++) {
		st->epoch = i + 1;
		st->map[i].worker = (uint16_t)(i % 3);
		t0 = sp_mono_ns();
		assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
		publish_ns += sp_mono_ns() - t0;
		t0 = sp_mono_ns();
		assert_int_equal(sp_region_read(r, got, why, sizeof(why)), 0);
		read_ns += sp_mono_ns() - t0;
		assert_same_state(st, got);
	}
	printf("full capacity (%u partitions): publish %llu us, read+validate %llu us\n",
	       SP_PARTITIONS_MAX, (unsigned long long)(publish_ns / rounds / 1000),
	       (unsigned long long)(read_ns / rounds / 1000));
	sp_region_close(r);
	sp_region_close(w);
	unlink(region_path);
	sp_cluster_state_free(st);
	sp_cluster_state_free(got);
}

/* Re-creating a region replaces the file whole: a reader of the old one keeps a valid
 * mapping and learns of the replacement; open_or_create keeps a good region. */
static void
test_region_replace_and_reuse(void **state)
{
	struct sp_cluster_state *st = three_members(64);
	struct sp_cluster_state *got = sp_cluster_state_new(TEST_CAPACITY);
	struct sp_region *w, *old_reader, *w2, *w3;
	char why[SP_CLUSTER_WHY_MAX];
	bool created = false;

	(void)state;
	make_path("replace");
	assert_int_equal(sp_region_open_or_create(region_path, TEST_CAPACITY, &w, &created, why,
	                                          sizeof(why)),
	                 0);
	assert_true(created);
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	sp_region_close(w);
	assert_int_equal(sp_region_open(region_path, false, &old_reader, why, sizeof(why)), 0);
	assert_false(sp_region_replaced(old_reader));

	/* Same capacity: the published state survives a control-plane restart. */
	assert_int_equal(sp_region_open_or_create(region_path, TEST_CAPACITY, &w2, &created, why,
	                                          sizeof(why)),
	                 0);
	assert_false(created);
	assert_int_equal(sp_region_generation(w2), 1);
	assert_false(sp_region_replaced(old_reader));

	/* Another capacity: a new file; the old reader still reads the old state. */
	assert_int_equal(sp_region_open_or_create(region_path, TEST_CAPACITY / 2, &w3, &created,
	                                          why, sizeof(why)),
	                 0);
	assert_true(created);
	assert_int_equal(sp_region_generation(w3), 0);
	assert_true(sp_region_replaced(old_reader));
	assert_true(sp_region_replaced(w2));
	assert_false(sp_region_replaced(w3));
	assert_int_equal(sp_region_read(old_reader, got, why, sizeof(why)), 0);
	assert_int_equal(got->epoch, st->epoch);

	/* A corrupt file is replaced; a file that cannot be opened is not. */
	sp_region_close(w3);
	assert_int_equal(truncate(region_path, 10), 0);
	assert_int_equal(sp_region_open_or_create(region_path, TEST_CAPACITY, &w3, &created, why,
	                                          sizeof(why)),
	                 0);
	assert_true(created);
	sp_region_close(w3);
	unlink(region_path);
	assert_int_equal(mkdir(region_path, 0700), 0);
	assert_int_equal(sp_region_open_or_create(region_path, TEST_CAPACITY, &w3, &created, why,
	                                          sizeof(why)),
	                 -EISDIR);
	assert_false(created);
	assert_non_null(strstr(why, "cannot open"));
	rmdir(region_path);
	assert_true(sp_region_replaced(old_reader));

	sp_region_close(w2);
	sp_region_close(old_reader);
	sp_cluster_state_free(st);
	sp_cluster_state_free(got);
}

/* Runs the region tool with the given arguments; returns its exit status. */
static int
tool(const char *fmt, ...)
{
	const char *bin = getenv("SP_REGION_TOOL");
	static char args[64 * 1024], cmd[64 * 1024 + 512];
	va_list ap;
	int rc;

	if (bin == NULL)
		fail_msg("SP_REGION_TOOL must name the shardplane-region executable");
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", bin, args);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	fclose(f);
}

/* The test writer: map files, member specs, and its bounds. */
static void
test_region_tool(void **state)
{
	struct sp_cluster_state *got = sp_cluster_state_new(TEST_CAPACITY);
	char map_path[160], why[SP_CLUSTER_WHY_MAX], *many, line[300];
	struct sp_region *r;
	size_t len = 0;

	(void)state;
	make_path("tool");
	snprintf(map_path, sizeof(map_path), "%s.map", region_path);
	assert_int_equal(tool("--help"), 0);
	assert_int_equal(tool("create"), 2);
	assert_int_equal(tool("create %s --partitions-max 100", region_path), 2);
	assert_int_equal(tool("show %s", region_path), 1);
	assert_int_equal(tool("create %s --partitions-max 64", region_path), 0);
	assert_int_equal(tool("show %s", region_path), 0);
	assert_int_equal(tool("set-map %s --self 3 --workers 4 --partitions 16", region_path), 0);
	write_file(map_path, "# partition node worker\n\n0 3 3\n  15 3 2\n");
	assert_int_equal(tool("set-map %s --map-file %s --assign 1=3:3", region_path, map_path), 0);
	assert_int_equal(sp_region_open(region_path, false, &r, why, sizeof(why)), 0);
	assert_int_equal(sp_region_read(r, got, why, sizeof(why)), 0);
	assert_int_equal(got->epoch, 2);
	assert_int_equal(got->self_node_id, 3);
	assert_int_equal(got->map[0].worker, 3);
	assert_int_equal(got->map[1].worker, 3);
	assert_int_equal(got->map[2].worker, 2);
	assert_int_equal(got->map[15].worker, 2);

	/* Bad map files and specs are refused and publish nothing. */
	write_file(map_path, "0 3\n");
	assert_int_equal(tool("set-map %s --map-file %s", region_path, map_path), 1);
	write_file(map_path, "0 3 1 9\n");
	assert_int_equal(tool("set-map %s --map-file %s", region_path, map_path), 1);
	write_file(map_path, "16 3 1\n");
	assert_int_equal(tool("set-map %s --map-file %s", region_path, map_path), 1);
	memset(line, '7', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	write_file(map_path, line);
	assert_int_equal(tool("set-map %s --map-file %s", region_path, map_path), 1);
	assert_int_equal(tool("set-map %s --map-file /nonexistent/map", region_path), 1);
	assert_int_equal(tool("set-map %s --member id=1,workers=2,colour=red", region_path), 2);
	assert_int_equal(tool("set-map %s --member id=1", region_path), 2);
	assert_int_equal(tool("set-map %s --member id=1,workers=2,ip=300.1.1.1", region_path), 2);
	assert_int_equal(tool("set-map %s --assign 1=3", region_path), 1);
	assert_int_equal(tool("set-map %s --epoch 1", region_path), 1);
	assert_int_equal(tool("heartbeat %s --state dancing", region_path), 2);

	/* At most 4096 --assign options. */
	many = malloc(64 * 1024);
	assert_non_null(many);
	for (int i = 0; i < 4097; i++)
		len += (size_t)snprintf(many + len, 64 * 1024 - len, " --assign %d=3:0", i % 16);
	assert_int_equal(tool("set-map %s%s", region_path, many), 2);
	many[len - strlen(" --assign 0=3:0")] = '\0';
	assert_int_equal(tool("set-map %s%s", region_path, many), 0);
	free(many);
	assert_int_equal(sp_region_generation(r), 3);

	sp_region_close(r);
	unlink(map_path);
	unlink(region_path);
	sp_cluster_state_free(got);
}

/* The lease: written by the control plane, read by the dataplane, and what it decides. */
static void
test_region_lease(void **state)
{
	char why[SP_CLUSTER_WHY_MAX];
	struct sp_region *w, *ro;
	uint64_t expiry;
	uint32_t membership;

	(void)state;
	make_path("lease");
	assert_int_equal(sp_region_create(region_path, 64, &w, why, sizeof(why)), 0);
	assert_int_equal(sp_region_open(region_path, false, &ro, why, sizeof(why)), 0);
	/* A fresh region holds no lease and says nothing of membership. */
	sp_region_lease_read(ro, &expiry, &membership);
	assert_int_equal(expiry, 0);
	assert_int_equal(membership, SP_REGION_MEMBER_UNKNOWN);
	assert_int_equal(sp_region_lease_write(w, 5000, SP_REGION_MEMBER_IN), 0);
	sp_region_lease_read(ro, &expiry, &membership);
	assert_int_equal(expiry, 5000);
	assert_int_equal(membership, SP_REGION_MEMBER_IN);
	assert_int_equal(sp_region_lease_write(ro, 1, SP_REGION_MEMBER_IN), -EROFS);
	assert_int_equal(sp_region_lease_write(w, 1, SP_REGION_MEMBER_LAST), -EINVAL);
	sp_region_lease_read(ro, &expiry, &membership);
	assert_int_equal(expiry, 5000); /* refused writes change nothing */

	/* The decision: no map -> not ready; removed wins over everything; otherwise the
	 * lease decides, and its expiry instant is already outside it. */
	assert_int_equal(sp_region_serving(false, 5000, SP_REGION_MEMBER_IN, 10), SP_DP_NOT_READY);
	assert_int_equal(sp_region_serving(true, 5000, SP_REGION_MEMBER_IN, 10), SP_DP_SERVING);
	assert_int_equal(sp_region_serving(true, 5000, SP_REGION_MEMBER_IN, 4999), SP_DP_SERVING);
	assert_int_equal(sp_region_serving(true, 5000, SP_REGION_MEMBER_IN, 5000), SP_DP_NO_LEASE);
	assert_int_equal(sp_region_serving(true, 0, SP_REGION_MEMBER_IN, 0), SP_DP_NO_LEASE);
	assert_int_equal(sp_region_serving(true, 5000, SP_REGION_MEMBER_UNKNOWN, 10),
	                 SP_DP_NO_LEASE);
	assert_int_equal(sp_region_serving(true, 5000, SP_REGION_MEMBER_REMOVED, 10),
	                 SP_DP_REMOVED);
	assert_int_equal(sp_region_serving(false, 5000, SP_REGION_MEMBER_REMOVED, 10),
	                 SP_DP_REMOVED);
	assert_string_equal(sp_dp_serving_name(SP_DP_NO_LEASE), "no lease");
	assert_string_equal(sp_dp_serving_name(99), "invalid");

	/* The tool writes it as the control plane does. */
	assert_int_equal(tool("lease %s", region_path), 2);
	assert_int_equal(tool("lease %s --ms 0", region_path), 2);
	assert_int_equal(tool("lease %s --forever --revoke", region_path), 2);
	assert_int_equal(tool("lease %s --forever", region_path), 0);
	sp_region_lease_read(ro, &expiry, &membership);
	assert_int_equal(expiry, UINT64_MAX);
	assert_int_equal(membership, SP_REGION_MEMBER_IN);
	assert_int_equal(tool("lease %s --ms 60000", region_path), 0);
	sp_region_lease_read(ro, &expiry, &membership);
	assert_true(expiry > sp_mono_ns() + 50 * SP_NS_PER_S);
	assert_int_equal(tool("lease %s --removed", region_path), 0);
	sp_region_lease_read(ro, &expiry, &membership);
	assert_int_equal(membership, SP_REGION_MEMBER_REMOVED);
	assert_int_equal(
	        tool("heartbeat %s --workers 3 --partitions 64 --serving removed", region_path), 0);
	struct sp_dp_status s;
	assert_int_equal(sp_region_status_read(ro, &s), 0);
	assert_int_equal(s.workers, 3);
	assert_int_equal(s.partitions, 64);
	assert_int_equal(s.serving, SP_DP_REMOVED);
	assert_int_equal(tool("heartbeat %s --serving maybe", region_path), 2);
	assert_int_equal(tool("show %s", region_path), 0);
	sp_region_close(ro);
	sp_region_close(w);
	unlink(region_path);
}

/* Version v of the race test: every field derives from v, so a mix is detectable. */
static void
race_fill(struct sp_cluster_state *st, uint64_t v)
{
	uint32_t workers = (uint32_t)(v % 7) + 1;

	st->epoch = v;
	st->partitions = RACE_PARTITIONS;
	st->self_node_id = 1;
	st->member_count = 2;
	memset(st->members, 0, sizeof(st->members));
	for (uint32_t i = 0; i < 2; i++) {
		st->members[i].node_id = i + 1;
		st->members[i].worker_count = (uint16_t)workers;
		st->members[i].state = SP_MEMBER_ACTIVE;
		st->members[i].binary_port = (uint16_t)v;
		snprintf(st->members[i].name, SP_MEMBER_NAME_MAX, "v%llu", (unsigned long long)v);
	}
	for (uint32_t p = 0; p < RACE_PARTITIONS; p++) {
		uint64_t h = (v * 0x9e3779b97f4a7c15ull) ^ (test_seed + p * 0xbf58476d1ce4e5b9ull);

		st->map[p].node_id = (uint32_t)(h >> 7) % 2 + 1;
		st->map[p].worker = (uint16_t)((h >> 17) % workers);
	}
}

struct race {
	atomic_bool done;
	uint64_t published;
	uint64_t reads;
	uint64_t busy;
	uint64_t torn;
	uint64_t backwards;
	uint64_t retries;
};

static void *
race_writer(void *arg)
{
	struct race *rc = arg;
	struct sp_cluster_state *st = sp_cluster_state_new(RACE_PARTITIONS);
	struct sp_region *w;
	char why[SP_CLUSTER_WHY_MAX];
	uint64_t deadline_ms = sp_mono_ms() + RACE_TIME_MAX_MS;

	if (sp_region_open(region_path, true, &w, why, sizeof(why)) != 0)
		abort();
	for (uint64_t v = 2; v < RACE_PUBLISHES_MAX && sp_mono_ms() < deadline_ms; v++) {
		race_fill(st, v);
		if (sp_region_publish(w, st, why, sizeof(why)) != 0)
			abort();
		rc->published++;
	}
	atomic_store(&rc->done, true);
	sp_region_close(w);
	sp_cluster_state_free(st);
	return NULL;
}

static void *
race_reader(void *arg)
{
	struct race *rc = arg;
	struct sp_cluster_state *got = sp_cluster_state_new(RACE_PARTITIONS);
	struct sp_cluster_state *want = sp_cluster_state_new(RACE_PARTITIONS);
	struct sp_region *r;
	char why[SP_CLUSTER_WHY_MAX];
	uint64_t last_epoch = 0;

	if (sp_region_open(region_path, false, &r, why, sizeof(why)) != 0)
		abort();
	while (!atomic_load(&rc->done)) {
		int err = sp_region_read(r, got, why, sizeof(why));

		if (err == -SP_EBUSY) {
			rc->busy++;
			continue;
		}
		rc->reads++;
		race_fill(want, got->epoch);
		if (err != 0 ||
		    memcmp(got->map, want->map, RACE_PARTITIONS * sizeof(got->map[0])) ||
		    memcmp(got->members, want->members, sizeof(got->members)))
			rc->torn++;
		if (got->epoch < last_epoch)
			rc->backwards++;
		last_epoch = got->epoch;
	}
	rc->retries = sp_region_read_retries(r);
	sp_region_close(r);
	sp_cluster_state_free(got);
	sp_cluster_state_free(want);
	return NULL;
}

static void
test_region_no_torn_reads(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(RACE_PARTITIONS);
	struct race rc = {0};
	struct sp_region *w;
	pthread_t wt, rt;
	char why[SP_CLUSTER_WHY_MAX];

	(void)state;
	make_path("race");
	assert_int_equal(sp_region_create(region_path, RACE_PARTITIONS, &w, why, sizeof(why)), 0);
	race_fill(st, 1);
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	sp_region_close(w);
	assert_int_equal(pthread_create(&rt, NULL, race_reader, &rc), 0);
	assert_int_equal(pthread_create(&wt, NULL, race_writer, &rc), 0);
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	printf("race: seed %llu: %llu versions published, %llu reads, %llu retried, %llu busy\n",
	       (unsigned long long)test_seed, (unsigned long long)rc.published,
	       (unsigned long long)rc.reads, (unsigned long long)rc.retries,
	       (unsigned long long)rc.busy);
	assert_true(rc.published > 100);
	assert_true(rc.reads > 10);
	assert_int_equal(rc.torn, 0);
	assert_int_equal(rc.backwards, 0);
	unlink(region_path);
	sp_cluster_state_free(st);
}

/* The same race between two processes, as the control plane and the dataplane run: a
 * forked child publishes while the parent reads. */
static void
test_region_no_torn_reads_across_processes(void **state)
{
	struct sp_cluster_state *st = sp_cluster_state_new(RACE_PARTITIONS);
	struct race *rc;
	struct sp_region *w;
	char why[SP_CLUSTER_WHY_MAX];
	int status = 0;
	pid_t child;

	(void)state;
	make_path("race-fork");
	rc = mmap(NULL, sizeof(*rc), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(rc != MAP_FAILED);
	memset(rc, 0, sizeof(*rc));
	assert_int_equal(sp_region_create(region_path, RACE_PARTITIONS, &w, why, sizeof(why)), 0);
	race_fill(st, 1);
	assert_int_equal(sp_region_publish(w, st, why, sizeof(why)), 0);
	sp_region_close(w);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		race_writer(rc);
		_exit(0);
	}
	race_reader(rc);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	printf("race across processes: %llu versions published, %llu reads, %llu retried, %llu "
	       "busy\n",
	       (unsigned long long)rc->published, (unsigned long long)rc->reads,
	       (unsigned long long)rc->retries, (unsigned long long)rc->busy);
	assert_true(rc->published > 100);
	assert_true(rc->reads > 10);
	assert_int_equal(rc->torn, 0);
	assert_int_equal(rc->backwards, 0);
	munmap(rc, sizeof(*rc));
	sp_cluster_state_free(st);
}

int
main(void)
{
	const char *env = getenv("SP_TEST_SEED");
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default_map),
	        cmocka_unit_test(test_single_state_and_copy),
	        cmocka_unit_test(test_member_index),
	        cmocka_unit_test(test_validate_every_error),
	        cmocka_unit_test_teardown(test_region_round_trip, remove_files),
	        cmocka_unit_test_teardown(test_dataplane_status, remove_files),
	        cmocka_unit_test_teardown(test_region_validation_errors, remove_files),
	        cmocka_unit_test_teardown(test_region_garbage_files, remove_files),
	        cmocka_unit_test_teardown(test_region_random_slot_damage, remove_files),
	        cmocka_unit_test_teardown(test_region_full_capacity, remove_files),
	        cmocka_unit_test_teardown(test_region_replace_and_reuse, remove_files),
	        cmocka_unit_test_teardown(test_region_tool, remove_files),
	        cmocka_unit_test_teardown(test_region_lease, remove_files),
	        cmocka_unit_test_teardown(test_region_no_torn_reads, remove_files),
	        cmocka_unit_test_teardown(test_region_no_torn_reads_across_processes, remove_files),
	};

	test_seed = env != NULL ? strtoull(env, NULL, 10) : (uint64_t)sp_mono_ns();
	printf("cluster tests: seed %llu (replay with SP_TEST_SEED=%llu)\n",
	       (unsigned long long)test_seed, (unsigned long long)test_seed);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
