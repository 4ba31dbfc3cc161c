/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/errors.h"
#include "storage/log_store.h"

struct fixture {
	char dir[128];
	struct io_uring ring;
	uint64_t durable_seq;
	int durable_err;
	unsigned durable_calls;
};

static void
on_durable(void *arg, uint64_t seq, int err)
{
	struct fixture *f = arg;
	f->durable_seq = seq;
	f->durable_err = err;
	f->durable_calls++;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/sp-logtest-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (io_uring_queue_init(64, &f->ring, 0))
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[256];
	io_uring_queue_exit(&f->ring);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static struct log_store *
open_store(struct fixture *f, uint64_t seg_max, uint64_t disk_max, struct log_recovered *rec,
           int *err)
{
	struct log_store_params p = {
	        .dir = f->dir,
	        .ring = &f->ring,
	        .segment_bytes_max = seg_max,
	        .disk_bytes_max = disk_max,
	        .on_durable = on_durable,
	        .arg = f,
	};
	return log_store_open(&p, rec, err);
}

static struct log_store *
open_prealloc(struct fixture *f, uint64_t seg_max, struct log_recovered *rec, int *err)
{
	struct log_store_params p = {
	        .dir = f->dir,
	        .ring = &f->ring,
	        .segment_bytes_max = seg_max,
	        .preallocate = true,
	        .on_durable = on_durable,
	        .arg = f,
	};
	return log_store_open(&p, rec, err);
}

/* Submits and reaps until the store is idle. */
static void
drain(struct fixture *f, struct log_store *ls)
{
	for (int guard = 0; guard < 100000 && log_store_busy(ls); guard++) {
		if (log_store_flush(ls))
			return;
		io_uring_submit(&f->ring);
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&f->ring, &cqe))
			return;
		assert_true(log_store_complete(ls, cqe));
		io_uring_cqe_seen(&f->ring, cqe);
	}
}

static void
append_range(struct log_store *ls, uint64_t from, uint64_t to, uint64_t term)
{
	for (uint64_t i = from; i <= to; i++) {
		char data[32];
		int n = snprintf(data, sizeof(data), "e%" PRIu64 "t%" PRIu64, i, term);
		struct log_entry e = {
		        .index = i, .term = term, .type = 1, .len = (uint32_t)n, .data = data};
		assert_true(log_store_append(ls, &e, 1, NULL) > 0);
	}
}

static void
check_entries(const struct log_recovered *rec, uint64_t first, uint64_t last)
{
	assert_int_equal(rec->n_entries, last - first + 1);
	for (size_t k = 0; k < rec->n_entries; k++) {
		const struct log_entry *e = &rec->entries[k];
		char want[32];
		int n = snprintf(want, sizeof(want), "e%" PRIu64 "t%" PRIu64, e->index, e->term);
		assert_int_equal(e->index, first + k);
		assert_int_equal(e->len, (uint32_t)n);
		assert_memory_equal(e->data, want, (size_t)n);
	}
}

static void
seg_file(struct fixture *f, uint64_t first, char *out, size_t cap)
{
	snprintf(out, cap, "%s/seg-%020" PRIu64 ".log", f->dir, first);
}

static off_t
file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void
test_append_recover_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err = 0;
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	assert_non_null(ls);
	assert_int_equal(rec.n_entries, 0);
	assert_false(rec.have_hs);
	append_range(ls, 1, 50, 2);
	struct log_hard_state hs = {.term = 2, .vote = 3, .commit = 40};
	int64_t seq = log_store_append(ls, NULL, 0, &hs);
	assert_true(seq > 0);
	drain(f, ls);
	assert_int_equal(f->durable_seq, (uint64_t)seq);
	assert_int_equal(f->durable_err, 0);
	log_store_close(ls);

	ls = open_store(f, 0, 0, &rec, &err);
	assert_non_null(ls);
	check_entries(&rec, 1, 50);
	assert_true(rec.have_hs);
	assert_int_equal(rec.hs.vote, 3);
	assert_int_equal(rec.hs.commit, 40);
	assert_int_equal(rec.torn_bytes_truncated, 0);
	log_store_close(ls);
}

static void
test_group_commit_shares_fsyncs(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err;
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	assert_non_null(ls);
	/* First batch goes out; 200 appends queue behind it and share the next fsync. */
	append_range(ls, 1, 1, 1);
	assert_int_equal(log_store_flush(ls), 0);
	io_uring_submit(&f->ring);
	append_range(ls, 2, 201, 1);
	drain(f, ls);
	assert_int_equal(f->durable_seq, 201);
	assert_true(log_store_fsync_count(ls) <= 2);
	log_store_close(ls);
	ls = open_store(f, 0, 0, &rec, &err);
	check_entries(&rec, 1, 201);
	log_store_close(ls);
}

static void
test_suffix_overwrite(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err;
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	append_range(ls, 1, 10, 1);
	append_range(ls, 6, 8, 2); /* a new leader overwrote 6.. */
	drain(f, ls);
	log_store_close(ls);
	ls = open_store(f, 0, 0, &rec, &err);
	check_entries(&rec, 1, 8);
	assert_int_equal(rec.entries[4].term, 1);
	assert_int_equal(rec.entries[5].term, 2);
	log_store_close(ls);
}

static void
test_torn_tail_truncated_at_every_offset(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err;
	char path[256];
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	append_range(ls, 1, 5, 1);
	drain(f, ls);
	log_store_close(ls);
	seg_file(f, 1, path, sizeof(path));
	off_t full = file_size(path);
	uint8_t *img = malloc((size_t)full);
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, img, (size_t)full, 0), full);
	close(fd);
	off_t rec_len = 8 + 18 + 4; /* "e5t1" */
	for (off_t cut = full - rec_len; cut < full; cut++) {
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_int_equal(write(fd, img, (size_t)cut), cut);
		close(fd);
		ls = open_store(f, 0, 0, &rec, &err);
		assert_non_null(ls);
		check_entries(&rec, 1, 4);
		assert_int_equal(rec.torn_bytes_truncated, (uint64_t)(cut - (full - rec_len)));
		/* Appending after recovery continues cleanly from the cut. */
		append_range(ls, 5, 5, 1);
		drain(f, ls);
		log_store_close(ls);
		ls = open_store(f, 0, 0, &rec, &err);
		check_entries(&rec, 1, 5);
		log_store_close(ls);
	}
	/* Garbage after the last record (a torn write of a new one) is cut too. */
	fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "\x13\x37\x00\x00\x10\x00\x00\x00junk", 12), 12);
	close(fd);
	ls = open_store(f, 0, 0, &rec, &err);
	assert_non_null(ls);
	check_entries(&rec, 1, 5);
	assert_int_equal(rec.torn_bytes_truncated, 12);
	log_store_close(ls);
	free(img);
}

static void
test_bad_crc_in_middle_refuses(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err = 0;
	char path[256];
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	append_range(ls, 1, 20, 1);
	drain(f, ls);
	log_store_close(ls);
	seg_file(f, 1, path, sizeof(path));
	int fd = open(path, O_RDWR);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, 100), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, 100), 1);
	close(fd);
	ls = open_store(f, 0, 0, &rec, &err);
	assert_null(ls);
	assert_int_equal(err, -SP_ECORRUPT);
	/* The file is left as it was for the operator to inspect. */
	assert_true(file_size(path) > 100);
}

static void
test_truncated_older_segment_refuses(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err = 0;
	char path[256];
	struct log_store *ls = open_store(f, 256, 0, &rec, &err);
	for (uint64_t i = 1; i <= 40; i++) {
		append_range(ls, i, i, 1);
		drain(f, ls);
	}
	assert_true(log_store_segment_count(ls) > 2);
	log_store_close(ls);
	seg_file(f, 1, path, sizeof(path));
	assert_int_equal(truncate(path, file_size(path) - 3), 0);
	ls = open_store(f, 256, 0, &rec, &err);
	assert_null(ls);
	assert_int_equal(err, -SP_ECORRUPT);
}

static void
test_disk_full_is_reported(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err;
	struct log_store *ls = open_store(f, 0, 4096, &rec, &err);
	assert_non_null(ls);
	int64_t last_ok = 0;
	for (uint64_t i = 1; i <= 1000; i++) {
		char data[100] = {0};
		struct log_entry e = {.index = i, .term = 1, .len = sizeof(data), .data = data};
		int64_t s = log_store_append(ls, &e, 1, NULL);
		if (s < 0) {
			assert_int_equal(s, -ENOSPC);
			break;
		}
		drain(f, ls);
		if (f->durable_err == 0)
			last_ok = (int64_t)f->durable_seq;
	}
	assert_int_equal(f->durable_err, -ENOSPC);
	assert_true(last_ok > 0);
	assert_int_equal(log_store_flush(ls), -ENOSPC);
	log_store_close(ls);
	/* What was acknowledged before the failure is all there. */
	ls = open_store(f, 0, 0, &rec, &err);
	assert_non_null(ls);
	assert_int_equal(rec.n_entries, (size_t)last_ok);
	log_store_close(ls);
}

static void
test_real_enospc_on_tmpfs(void **state)
{
	struct fixture *f = *state;
	if (geteuid() != 0 || mount("tmpfs", f->dir, "tmpfs", 0, "size=64k") != 0) {
		skip();
		return;
	}
	struct log_recovered rec;
	int err;
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	assert_non_null(ls);
	int64_t s = 0;
	for (uint64_t i = 1; i <= 200 && s >= 0 && f->durable_err == 0; i++) {
		static char data[4096];
		struct log_entry e = {.index = i, .term = 1, .len = sizeof(data), .data = data};
		s = log_store_append(ls, &e, 1, NULL);
		drain(f, ls);
	}
	assert_int_equal(f->durable_err, -ENOSPC);
	log_store_close(ls);
	assert_int_equal(umount(f->dir), 0);
}

static void
test_snapshot_compacts_and_recovers(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err;
	struct log_store *ls = open_store(f, 512, 0, &rec, &err);
	for (uint64_t i = 1; i <= 100; i++) {
		append_range(ls, i, i, 3);
		drain(f, ls);
	}
	unsigned before = log_store_segment_count(ls);
	uint64_t bytes_before = log_store_disk_bytes(ls);
	assert_true(before > 5);
	assert_int_equal(log_store_save_snapshot(ls, 90, 3, "state@90", 8), 0);
	assert_true(log_store_segment_count(ls) < before);
	assert_true(log_store_disk_bytes(ls) < bytes_before);
	struct log_hard_state hs = {.term = 3, .vote = 1, .commit = 100};
	log_store_append(ls, NULL, 0, &hs);
	drain(f, ls);
	log_store_close(ls);
	ls = open_store(f, 512, 0, &rec, &err);
	assert_non_null(ls);
	assert_int_equal(rec.snap_index, 90);
	assert_int_equal(rec.snap_term, 3);
	assert_int_equal(rec.snap_len, 8);
	assert_memory_equal(rec.snap_data, "state@90", 8);
	check_entries(&rec, 91, 100);
	assert_int_equal(rec.hs.commit, 100);
	log_store_close(ls);

	/* A damaged snapshot stops the node. */
	char path[256];
	snprintf(path, sizeof(path), "%s/snap-%020d-%020d.snap", f->dir, 90, 3);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "X", 1, 30), 1);
	close(fd);
	ls = open_store(f, 512, 0, &rec, &err);
	assert_null(ls);
	assert_int_equal(err, -SP_ECORRUPT);
}

static void
test_record_limit(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err;
	struct log_store *ls = open_store(f, 0, 0, &rec, &err);
	struct log_entry e = {.index = 1, .term = 1, .len = LOG_STORE_RECORD_MAX, .data = ""};
	assert_int_equal(log_store_append(ls, &e, 1, NULL), -SP_ETOOBIG);
	log_store_close(ls);
}

/* A preallocated segment is created at its full size; the zeros after the last record are
 * the end of the log, on every reopen, and appends go on after the last record. */
static void
test_preallocated_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err = 0;
	char path[256];
	struct log_store *ls = open_prealloc(f, 1u << 20, &rec, &err);
	assert_non_null(ls);
	seg_file(f, 1, path, sizeof(path));
	assert_int_equal(file_size(path), 1 << 20);
	append_range(ls, 1, 50, 2);
	struct log_hard_state hs = {.term = 2, .vote = 1, .commit = 45};
	assert_true(log_store_append(ls, NULL, 0, &hs) > 0);
	drain(f, ls);
	assert_int_equal(f->durable_err, 0);
	log_store_close(ls);
	for (int round = 0; round < 2; round++) {
		ls = open_prealloc(f, 1u << 20, &rec, &err);
		assert_non_null(ls);
		check_entries(&rec, 1, 50 + 10 * (uint64_t)round);
		assert_true(rec.have_hs);
		assert_int_equal(rec.hs.commit, 45);
		assert_int_equal(rec.torn_bytes_truncated, 0);
		assert_int_equal(file_size(path), 1 << 20);
		append_range(ls, 51 + 10 * (uint64_t)round, 60 + 10 * (uint64_t)round, 2);
		drain(f, ls);
		log_store_close(ls);
	}
	/* A store opened without preallocation reads the same directory. */
	ls = open_store(f, 1u << 20, 0, &rec, &err);
	assert_non_null(ls);
	check_entries(&rec, 1, 70);
	assert_int_equal(rec.torn_bytes_truncated, 0);
	log_store_close(ls);
}

/* A record that reached the disk only in part, followed by the preallocated zeros, is a
 * torn tail: cut (only its own bytes are counted), and appends go on from there. */
static void
test_preallocated_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err = 0;
	char path[256];
	const off_t rec_len = 8 + 18 + 4; /* "e5t1" */
	struct log_store *ls = open_prealloc(f, 1u << 20, &rec, &err);
	append_range(ls, 1, 5, 1);
	drain(f, ls);
	log_store_close(ls);
	seg_file(f, 1, path, sizeof(path));
	/* The last record's payload never arrived: zeros where "e5t1" should be. */
	int fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "\0\0\0\0", 4, 5 * rec_len - 4), 4);
	close(fd);
	ls = open_prealloc(f, 1u << 20, &rec, &err);
	assert_non_null(ls);
	check_entries(&rec, 1, 4);
	assert_int_equal(rec.torn_bytes_truncated, (uint64_t)(rec_len - 4));
	assert_int_equal(file_size(path), 1 << 20);
	append_range(ls, 5, 6, 1);
	drain(f, ls);
	log_store_close(ls);
	/* Junk written after the last record inside the preallocated part is cut too. */
	fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "\x13\x37\x00\x00\x10\x00\x00\x00junk", 12, 6 * rec_len), 12);
	close(fd);
	ls = open_prealloc(f, 1u << 20, &rec, &err);
	assert_non_null(ls);
	check_entries(&rec, 1, 6);
	assert_int_equal(rec.torn_bytes_truncated, 12);
	log_store_close(ls);
	/* A bad record with a good one after it is still corruption, zeros or not. */
	fd = open(path, O_RDWR);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, 2 * rec_len + 10), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, 2 * rec_len + 10), 1);
	close(fd);
	ls = open_prealloc(f, 1u << 20, &rec, &err);
	assert_null(ls);
	assert_int_equal(err, -SP_ECORRUPT);
}

/* Segments roll with preallocation on; an older segment is full, so a zero tail there
 * would be lost data, and a cut older segment is still refused. */
static void
test_preallocated_segments_roll(void **state)
{
	struct fixture *f = *state;
	struct log_recovered rec;
	int err = 0;
	char path[256];
	struct log_store *ls = open_prealloc(f, 256, &rec, &err);
	for (uint64_t i = 1; i <= 40; i++) {
		append_range(ls, i, i, 1);
		drain(f, ls);
	}
	assert_true(log_store_segment_count(ls) > 2);
	log_store_close(ls);
	ls = open_prealloc(f, 256, &rec, &err);
	assert_non_null(ls);
	check_entries(&rec, 1, 40);
	assert_int_equal(rec.torn_bytes_truncated, 0);
	log_store_close(ls);
	seg_file(f, 1, path, sizeof(path));
	assert_true(file_size(path) >= 256);
	assert_int_equal(truncate(path, file_size(path) - 3), 0);
	ls = open_prealloc(f, 256, &rec, &err);
	assert_null(ls);
	assert_int_equal(err, -SP_ECORRUPT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_append_recover_roundtrip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_group_commit_shares_fsyncs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_suffix_overwrite, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_torn_tail_truncated_at_every_offset, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_bad_crc_in_middle_refuses, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_truncated_older_segment_refuses, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_disk_full_is_reported, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_real_enospc_on_tmpfs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_compacts_and_recovers, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_record_limit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_preallocated_roundtrip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_preallocated_torn_tail, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_preallocated_segments_roll, setup, teardown),
	};
	return cmocka_run_group_tests_name("log_store", tests, NULL, NULL);
}
