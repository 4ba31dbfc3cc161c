/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "log_store.h"

#define MOD          "log"
#define REC_HDR      8u                  /* u32 crc | u32 len */
#define ENTRY_HDR    (1u + 8u + 8u + 1u) /* type | index | term | entry type */
#define HS_BODY      (1u + 24u)          /* type | term | vote | commit */
#define SNAP_HDR     (REC_HDR + 16u)     /* crc | len | index | term */
#define SEGMENTS_MAX 4096u               /* files in one log directory */
#define PENDING_MAX  (256ull << 20)      /* queued bytes before appends push back */
#define PATH_MAX_LEN 4096

enum op_kind {
	OP_WRITE = 1,
	OP_FSYNC = 2,
};

struct segment {
	uint64_t first_index; /* from its name */
	uint64_t last_index;  /* highest entry index written to it; 0 if none */
};

struct buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

struct log_store {
	char dir[PATH_MAX_LEN];
	struct io_uring *ring;
	uint64_t segment_bytes_max;
	uint64_t disk_bytes_max;
	bool preallocate;
	bool prealloc_warned;
	log_store_durable_fn on_durable;
	void *arg;

	struct segment segs[SEGMENTS_MAX];
	unsigned n_segs;
	int fd;            /* the newest segment, open for writing */
	uint64_t seg_size; /* its size, including what is in flight */
	uint64_t snap_bytes;
	uint64_t other_segs_bytes;

	struct log_hard_state hs; /* the newest queued hard state */
	uint64_t last_index;      /* the newest queued entry index */

	struct buf pending; /* queued, not yet written */
	uint64_t pending_seq;
	uint64_t pending_last_index;
	struct buf inflight; /* being written and fsynced */
	uint64_t inflight_seq;
	uint64_t inflight_last_index;
	unsigned ops_inflight;
	int inflight_err;

	uint64_t next_seq;
	uint64_t durable_seq;
	uint64_t fsyncs;
	int failed; /* sticky negative error */

	struct log_store_op op_write;
	struct log_store_op op_fsync;

	/* Recovery results, owned until close. */
	struct log_entry *rec_entries;
	size_t rec_n;
	void *rec_snap;
};

static void
put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* the project runs on little-endian hosts only */
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static int
buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends one framed record (crc, len, body) to b. */
static int
buf_put_record(struct buf *b, const uint8_t *head, uint32_t head_len, const void *data,
               uint32_t data_len)
{
	uint32_t len = head_len + data_len;
	int err = buf_reserve(b, REC_HDR + len);
	if (err)
		return err;
	uint8_t *r = b->p + b->len;
	put_u32(r + 4, len);
	memcpy(r + REC_HDR, head, head_len);
	if (data_len)
		memcpy(r + REC_HDR + head_len, data, data_len);
	put_u32(r, sp_crc32c(0, r + 4, 4 + len));
	b->len += REC_HDR + len;
	return 0;
}

static int
buf_put_hs(struct buf *b, const struct log_hard_state *hs)
{
	uint8_t body[HS_BODY];
	body[0] = LOG_REC_HARDSTATE;
	put_u64(body + 1, hs->term);
	put_u64(body + 9, hs->vote);
	put_u64(body + 17, hs->commit);
	return buf_put_record(b, body, sizeof(body), NULL, 0);
}

static void
seg_path(const struct log_store *ls, uint64_t first_index, char *out, size_t cap)
{
	snprintf(out, cap, "%s/seg-%020" PRIu64 ".log", ls->dir, first_index);
}

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int err = fsync(fd) ? -errno : 0;
	close(fd);
	return err;
}

/* Reads a whole file into a fresh buffer. */
static int
read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st)) {
		int err = -errno;
		close(fd);
		return err;
	}
	uint8_t *p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (p == NULL) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;
			free(p);
			close(fd);
			return err;
		}
		got += (size_t)n;
	}
	close(fd);
	*out = p;
	*len = got;
	return 0;
}

/*
 * Checks the record at off in buf[0, size). Returns its total length (> 0) when whole and
 * valid, 0 when the data ends inside it or its length is impossible, -1 when it is
 * complete but its checksum fails.
 */
static int64_t
record_check(const uint8_t *buf, size_t size, size_t off)
{
	if (size - off < REC_HDR)
		return 0;
	uint32_t len = get_u32(buf + off + 4);
	if (len == 0 || len > LOG_STORE_RECORD_MAX || len > size - off - REC_HDR)
		return 0;
	if (sp_crc32c(0, buf + off + 4, 4 + len) != get_u32(buf + off))
		return -1;
	return (int64_t)(REC_HDR + len);
}

/* True when the n bytes at p are all zero. */
static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

struct recovery {
	struct log_entry *ents;
	size_t n;
	size_t cap;
	uint64_t snap_index;
	struct log_hard_state hs;
	bool have_hs;
};

static int
recovery_add_entry(struct recovery *rc, const uint8_t *body, uint32_t len, const char *path,
                   size_t off)
{
	if (len < ENTRY_HDR) {
		SP_LOG_ERR(MOD, "%s offset %zu: entry record of %u bytes is too short", path, off,
		           len);
		return -SP_ECORRUPT;
	}
	struct log_entry e = {
	        .index = get_u64(body + 1),
	        .term = get_u64(body + 9),
	        .type = body[17],
	        .len = len - ENTRY_HDR,
	};
	if (e.index <= rc->snap_index)
		return 0; /* covered by the snapshot */
	uint64_t next = rc->n ? rc->ents[rc->n - 1].index + 1 : rc->snap_index + 1;
	if (e.index > next) {
		SP_LOG_ERR(MOD,
		           "%s offset %zu: entry %" PRIu64 " follows %" PRIu64
		           " (a gap: entries are missing)",
		           path, off, e.index, next - 1);
		return -SP_ECORRUPT;
	}
	/* An index at or below the last one overwrites that suffix. */
	while (rc->n && rc->ents[rc->n - 1].index >= e.index)
		free((void *)rc->ents[--rc->n].data);
	if (rc->n == rc->cap) {
		size_t cap = rc->cap ? rc->cap * 2 : 1024;
		struct log_entry *p = realloc(rc->ents, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		rc->ents = p;
		rc->cap = cap;
	}
	void *data = malloc(e.len ? e.len : 1);
	if (data == NULL)
		return -ENOMEM;
	memcpy(data, body + ENTRY_HDR, e.len);
	e.data = data;
	rc->ents[rc->n++] = e;
	return 0;
}

/*
 * Replays one segment into rc. For the newest segment a bad tail is cut off (torn write);
 * elsewhere any bad record is corruption. *valid_len is the length of the good prefix.
 */
static int
recover_segment(struct log_store *ls, struct recovery *rc, unsigned si, bool newest,
                uint64_t *valid_len, uint64_t *torn)
{
	char path[PATH_MAX_LEN + 64];
	uint8_t *buf;
	size_t size;

	seg_path(ls, ls->segs[si].first_index, path, sizeof(path));
	int err = read_file(path, &buf, &size);
	if (err) {
		SP_LOG_ERR(MOD, "cannot read %s: %s", path, sp_strerror(err));
		return err;
	}
	size_t off = 0;
	while (off < size) {
		int64_t n = record_check(buf, size, off);
		if (n <= 0 && newest && all_zero(buf + off, size - off))
			break; /* the unwritten rest of a preallocated segment: the end */
		if (n <= 0) {
			bool later_valid = false;
			if (n < 0) {
				size_t next = off + REC_HDR + get_u32(buf + off + 4);
				later_valid = next < size && record_check(buf, size, next) > 0;
			}
			if (!newest || later_valid) {
				SP_LOG_ERR(MOD,
				           "%s offset %zu: bad record in the middle of the log "
				           "(checksum or length); refusing to start: acknowledged "
				           "entries would be lost. Restore this member from a "
				           "snapshot or remove and re-add it",
				           path, off);
				free(buf);
				return -SP_ECORRUPT;
			}
			/* In a preallocated segment the zeros after a torn record were never
			 * written: only the bytes up to the last non-zero one count as torn. */
			size_t end = size;
			if (ls->preallocate && size >= ls->segment_bytes_max)
				while (end > off && buf[end - 1] == 0)
					end--;
			*torn = end - off;
			SP_LOG_WARN(MOD, "%s: torn tail of %zu bytes at offset %zu truncated", path,
			            end - off, off);
			break;
		}
		const uint8_t *body = buf + off + REC_HDR;
		uint32_t len = (uint32_t)n - REC_HDR;
		if (body[0] == LOG_REC_ENTRY) {
			err = recovery_add_entry(rc, body, len, path, off);
			if (err) {
				free(buf);
				return err;
			}
			ls->segs[si].last_index = get_u64(body + 1);
		} else if (body[0] == LOG_REC_HARDSTATE && len == HS_BODY) {
			rc->hs.term = get_u64(body + 1);
			rc->hs.vote = get_u64(body + 9);
			rc->hs.commit = get_u64(body + 17);
			rc->have_hs = true;
		} else {
			SP_LOG_ERR(MOD, "%s offset %zu: unknown record type %u (len %u)", path, off,
			           body[0], len);
			free(buf);
			return -SP_ECORRUPT;
		}
		off += (size_t)n;
	}
	free(buf);
	*valid_len = off;
	return 0;
}

static int
cmp_seg(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;
	return x->first_index < y->first_index ? -1 : x->first_index > y->first_index;
}

/* Loads the newest snapshot, removing older ones and temporaries. */
static int
recover_snapshot(struct log_store *ls, struct log_recovered *rec)
{
	DIR *d = opendir(ls->dir);
	if (d == NULL)
		return -errno;
	uint64_t best_index = 0, best_term = 0;
	struct dirent *de;
	char path[PATH_MAX_LEN + 300];
	int err = 0;
	while ((de = readdir(d)) != NULL) {
		uint64_t idx, term;
		char tail;
		size_t nl = strlen(de->d_name);
		if (nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0) {
			snprintf(path, sizeof(path), "%s/%s", ls->dir, de->d_name);
			unlink(path);
			continue;
		}
		if (sscanf(de->d_name, "snap-%" SCNu64 "-%" SCNu64 ".snap%c", &idx, &term, &tail) ==
		            2 &&
		    idx > best_index) {
			best_index = idx;
			best_term = term;
		}
		if (sscanf(de->d_name, "seg-%" SCNu64 ".lo%c", &idx, &tail) == 2 && tail == 'g') {
			if (ls->n_segs == SEGMENTS_MAX) {
				SP_LOG_ERR(MOD, "%s: more than %u segments", ls->dir, SEGMENTS_MAX);
				err = -SP_ETOOBIG;
				break;
			}
			ls->segs[ls->n_segs++] = (struct segment){.first_index = idx};
		}
	}
	closedir(d);
	if (err || best_index == 0)
		return err;

	snprintf(path, sizeof(path), "%s/snap-%020" PRIu64 "-%020" PRIu64 ".snap", ls->dir,
	         best_index, best_term);
	uint8_t *buf;
	size_t size;
	err = read_file(path, &buf, &size);
	if (err)
		return err;
	if (size < SNAP_HDR || get_u32(buf + 4) != size - REC_HDR ||
	    sp_crc32c(0, buf + 4, size - 4) != get_u32(buf) || get_u64(buf + 8) != best_index ||
	    get_u64(buf + 16) != best_term) {
		SP_LOG_ERR(MOD, "%s: snapshot fails its checksum or header; refusing to start",
		           path);
		free(buf);
		return -SP_ECORRUPT;
	}
	ls->snap_bytes = size;
	rec->snap_index = best_index;
	rec->snap_term = best_term;
	rec->snap_len = (uint32_t)(size - SNAP_HDR);
	memmove(buf, buf + SNAP_HDR, rec->snap_len);
	ls->rec_snap = buf;
	rec->snap_data = buf;
	return 0;
}

/*
 * Extends the newest segment (fd, holding used bytes) to segment_bytes_max with unwritten
 * blocks, when preallocation is on. A file system without fallocate keeps the segment as
 * it is: appends then extend it, which is slower but just as correct.
 */
static void
preallocate_segment(struct log_store *ls, int fd, uint64_t used)
{
	ASSERT(fd >= 0);
	if (!ls->preallocate || used >= ls->segment_bytes_max)
		return;
	int err = posix_fallocate(fd, (off_t)used, (off_t)(ls->segment_bytes_max - used));
	if (err && !ls->prealloc_warned) {
		ls->prealloc_warned = true;
		SP_LOG_WARN(MOD, "%s: cannot preallocate segments (%s); appends extend them",
		            ls->dir, strerror(err));
	}
}

static int
open_segment(struct log_store *ls, uint64_t first_index)
{
	char path[PATH_MAX_LEN + 64];

	VERIFY(ls->n_segs < SEGMENTS_MAX);
	seg_path(ls, first_index, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int err = -errno;
		SP_LOG_ERR(MOD, "cannot create %s: %s", path, sp_strerror(err));
		return err;
	}
	preallocate_segment(ls, fd, 0);
	int err = fsync_dir(ls->dir);
	if (err) {
		close(fd);
		return err;
	}
	if (ls->fd >= 0) {
		close(ls->fd);
		ls->other_segs_bytes += ls->seg_size;
	}
	ls->fd = fd;
	ls->seg_size = 0;
	ls->segs[ls->n_segs++] = (struct segment){.first_index = first_index};
	return 0;
}

struct log_store *
log_store_open(const struct log_store_params *params, struct log_recovered *rec, int *err)
{
	ASSERT(params != NULL);
	ASSERT(params->ring != NULL);
	struct log_store *ls = calloc(1, sizeof(*ls));
	struct recovery rc = {0};
	int e = 0;

	memset(rec, 0, sizeof(*rec));
	if (ls == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	ls->fd = -1;
	if (strlen(params->dir) >= sizeof(ls->dir)) {
		e = -ENAMETOOLONG;
		goto fail;
	}
	strcpy(ls->dir, params->dir);
	ls->ring = params->ring;
	ls->segment_bytes_max =
	        params->segment_bytes_max ? params->segment_bytes_max : LOG_STORE_SEGMENT_DEFAULT;
	ls->disk_bytes_max = params->disk_bytes_max;
	ls->preallocate = params->preallocate;
	ls->on_durable = params->on_durable;
	ls->arg = params->arg;
	ls->op_write = (struct log_store_op){LOG_STORE_OP_MAGIC, OP_WRITE, ls};
	ls->op_fsync = (struct log_store_op){LOG_STORE_OP_MAGIC, OP_FSYNC, ls};

	if (mkdir(ls->dir, 0700) && errno != EEXIST) {
		e = -errno;
		SP_LOG_ERR(MOD, "cannot create data directory %s: %s", ls->dir, sp_strerror(e));
		goto fail;
	}
	e = recover_snapshot(ls, rec);
	if (e)
		goto fail;
	qsort(ls->segs, ls->n_segs, sizeof(ls->segs[0]), cmp_seg);
	rc.snap_index = rec->snap_index;

	uint64_t valid_len = 0;
	for (unsigned i = 0; i < ls->n_segs; i++) {
		uint64_t torn = 0;
		e = recover_segment(ls, &rc, i, i + 1 == ls->n_segs, &valid_len, &torn);
		if (e)
			goto fail;
		rec->torn_bytes_truncated += torn;
		if (i + 1 < ls->n_segs)
			ls->other_segs_bytes += valid_len;
	}
	if (ls->n_segs) {
		char path[PATH_MAX_LEN + 64];
		seg_path(ls, ls->segs[ls->n_segs - 1].first_index, path, sizeof(path));
		ls->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (ls->fd < 0 || ftruncate(ls->fd, (off_t)valid_len) || fsync(ls->fd)) {
			e = -errno;
			SP_LOG_ERR(MOD, "cannot reopen %s: %s", path, sp_strerror(e));
			goto fail;
		}
		preallocate_segment(ls, ls->fd, valid_len);
		ls->seg_size = valid_len;
	}
	rec->hs = rc.hs;
	rec->have_hs = rc.have_hs;
	rec->entries = rc.ents;
	rec->n_entries = rc.n;
	ls->rec_entries = rc.ents;
	ls->rec_n = rc.n;
	ls->hs = rc.hs;
	ls->last_index = rc.n ? rc.ents[rc.n - 1].index : rec->snap_index;
	if (ls->fd < 0) {
		e = open_segment(ls, ls->last_index + 1);
		if (e)
			goto fail;
	}
	SP_LOG_INFO(MOD, "opened %s: %u segments, snapshot %" PRIu64 ", entries %zu, last %" PRIu64,
	            ls->dir, ls->n_segs, rec->snap_index, rc.n, ls->last_index);
	return ls;
fail:
	for (size_t i = 0; i < rc.n; i++)
		free((void *)rc.ents[i].data);
	free(rc.ents);
	ls->rec_entries = NULL;
	ls->rec_n = 0;
	memset(rec, 0, sizeof(*rec));
	log_store_close(ls);
	*err = e;
	return NULL;
}

static void
wait_inflight(struct log_store *ls)
{
	while (ls->ops_inflight) {
		struct io_uring_cqe *cqe;
		io_uring_submit(ls->ring);
		if (io_uring_wait_cqe(ls->ring, &cqe))
			break;
		if (!log_store_complete(ls, cqe))
			SP_LOG_WARN(MOD, "close: dropped a completion that was not the log's");
		io_uring_cqe_seen(ls->ring, cqe);
	}
}

void
log_store_close(struct log_store *ls)
{
	if (ls == NULL)
		return;
	wait_inflight(ls);
	if (ls->fd >= 0)
		close(ls->fd);
	for (size_t i = 0; i < ls->rec_n; i++)
		free((void *)ls->rec_entries[i].data);
	free(ls->rec_entries);
	free(ls->rec_snap);
	free(ls->pending.p);
	free(ls->inflight.p);
	free(ls);
}

int64_t
log_store_append(struct log_store *ls, const struct log_entry *ents, size_t n,
                 const struct log_hard_state *hs)
{
	ASSERT(ls != NULL);
	ASSERT(n == 0 || ents != NULL);
	if (ls->failed)
		return ls->failed;
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (ents[i].len > LOG_STORE_RECORD_MAX - ENTRY_HDR)
			return -SP_ETOOBIG;
		bytes += REC_HDR + ENTRY_HDR + ents[i].len;
	}
	if (ls->pending.len + bytes > PENDING_MAX)
		return -SP_EFULL;
	size_t undo = ls->pending.len;
	for (size_t i = 0; i < n; i++) {
		uint8_t head[ENTRY_HDR];
		head[0] = LOG_REC_ENTRY;
		put_u64(head + 1, ents[i].index);
		put_u64(head + 9, ents[i].term);
		head[17] = ents[i].type;
		int err = buf_put_record(&ls->pending, head, ENTRY_HDR, ents[i].data, ents[i].len);
		if (err) {
			ls->pending.len = undo;
			return err;
		}
	}
	if (hs) {
		int err = buf_put_hs(&ls->pending, hs);
		if (err) {
			ls->pending.len = undo;
			return err;
		}
		ls->hs = *hs;
	}
	if (n) {
		ls->last_index = ents[n - 1].index;
		ls->pending_last_index = ls->last_index;
	}
	ls->pending_seq = ++ls->next_seq;
	return (int64_t)ls->pending_seq;
}

/* Moves to a new segment, starting it with the current hard state. */
static int
roll_segment(struct log_store *ls)
{
	int err = open_segment(ls, ls->last_index + 1);
	if (err)
		return err;
	struct buf b = {0};
	err = buf_put_hs(&b, &ls->hs);
	if (err == 0)
		err = buf_reserve(&b, ls->pending.len);
	if (err) {
		free(b.p);
		return err;
	}
	memcpy(b.p + b.len, ls->pending.p, ls->pending.len);
	b.len += ls->pending.len;
	free(ls->pending.p);
	ls->pending = b;
	return 0;
}

static void
fail_store(struct log_store *ls, int err)
{
	ASSERT(err < 0);
	if (!ls->failed) {
		ls->failed = err;
		SP_LOG_ERR(MOD, "%s: write failed: %s; no further entries are accepted", ls->dir,
		           sp_strerror(err));
	}
	if (ls->on_durable)
		ls->on_durable(ls->arg, ls->durable_seq, err);
}

int
log_store_flush(struct log_store *ls)
{
	ASSERT(ls != NULL);
	if (ls->failed)
		return ls->failed;
	if (ls->ops_inflight || ls->pending.len == 0)
		return 0;
	if (ls->seg_size >= ls->segment_bytes_max) {
		int err = roll_segment(ls);
		if (err) {
			fail_store(ls, err);
			return err;
		}
	}
	if (ls->disk_bytes_max && log_store_disk_bytes(ls) + ls->pending.len > ls->disk_bytes_max) {
		fail_store(ls, -ENOSPC);
		return -ENOSPC;
	}
	struct io_uring_sqe *w = io_uring_get_sqe(ls->ring);
	struct io_uring_sqe *f = w ? io_uring_get_sqe(ls->ring) : NULL;
	if (f == NULL) {
		/* The ring is full this iteration; the loop submits and we try again. */
		if (w) {
			io_uring_prep_nop(w);
			io_uring_sqe_set_data(w, NULL);
		}
		return 0;
	}
	struct buf t = ls->inflight;
	ls->inflight = ls->pending;
	ls->pending = t;
	ls->pending.len = 0;
	ls->inflight_seq = ls->pending_seq;
	ls->inflight_last_index = ls->pending_last_index;
	ls->inflight_err = 0;

	io_uring_prep_write(w, ls->fd, ls->inflight.p, (unsigned)ls->inflight.len, ls->seg_size);
	io_uring_sqe_set_data(w, &ls->op_write);
	w->flags |= IOSQE_IO_LINK;
	io_uring_prep_fsync(f, ls->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(f, &ls->op_fsync);
	ls->seg_size += ls->inflight.len;
	ls->ops_inflight = 2;
	return 0;
}

bool
log_store_complete(struct log_store *ls, const struct io_uring_cqe *cqe)
{
	struct log_store_op *op = io_uring_cqe_get_data(cqe);

	if (op == NULL || op->magic != LOG_STORE_OP_MAGIC || op->store != ls)
		return false;
	ASSERT(ls->ops_inflight > 0);
	ls->ops_inflight--;
	if (op->kind == OP_WRITE) {
		if (cqe->res < 0)
			ls->inflight_err = cqe->res;
		else if ((size_t)cqe->res != ls->inflight.len)
			ls->inflight_err = -ENOSPC; /* a short write to a file: out of space */
	} else if (cqe->res < 0 && ls->inflight_err == 0) {
		/* -ECANCELED when the write failed first. */
		ls->inflight_err = cqe->res;
	}
	if (ls->ops_inflight)
		return true;
	if (ls->inflight_err) {
		fail_store(ls, ls->inflight_err);
		return true;
	}
	ls->fsyncs++;
	ls->durable_seq = ls->inflight_seq;
	if (ls->inflight_last_index)
		ls->segs[ls->n_segs - 1].last_index = ls->inflight_last_index;
	ls->inflight.len = 0;
	if (ls->on_durable)
		ls->on_durable(ls->arg, ls->durable_seq, 0);
	log_store_flush(ls); /* group commit: what queued meanwhile goes now */
	return true;
}

uint64_t
log_store_durable_seq(const struct log_store *ls)
{
	return ls->durable_seq;
}

bool
log_store_busy(const struct log_store *ls)
{
	return ls->ops_inflight || ls->pending.len;
}

uint64_t
log_store_disk_bytes(const struct log_store *ls)
{
	return ls->other_segs_bytes + ls->seg_size + ls->snap_bytes;
}

unsigned
log_store_segment_count(const struct log_store *ls)
{
	return ls->n_segs;
}

uint64_t
log_store_fsync_count(const struct log_store *ls)
{
	return ls->fsyncs;
}

static int
write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Deletes every snapshot but (index, term), and the segments it makes unnecessary. */
static void
compact(struct log_store *ls, uint64_t index, uint64_t term)
{
	char path[PATH_MAX_LEN + 300];
	DIR *d = opendir(ls->dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			uint64_t i, t;
			char tail;
			if (sscanf(de->d_name, "snap-%" SCNu64 "-%" SCNu64 ".snap%c", &i, &t,
			           &tail) == 2 &&
			    (i != index || t != term)) {
				snprintf(path, sizeof(path), "%s/%s", ls->dir, de->d_name);
				unlink(path);
			}
		}
		closedir(d);
	}
	/* A segment goes when the next one starts at or below index + 1: all of its
	 * entries are then covered. The newest segment always stays. */
	unsigned keep = 0;
	while (keep + 1 < ls->n_segs && ls->segs[keep + 1].first_index <= index + 1 &&
	       ls->segs[keep].last_index <= index) {
		struct stat st;
		seg_path(ls, ls->segs[keep].first_index, path, sizeof(path));
		if (stat(path, &st) == 0 && ls->other_segs_bytes >= (uint64_t)st.st_size)
			ls->other_segs_bytes -= (uint64_t)st.st_size;
		unlink(path);
		keep++;
	}
	if (keep) {
		memmove(ls->segs, ls->segs + keep, (ls->n_segs - keep) * sizeof(ls->segs[0]));
		ls->n_segs -= keep;
		fsync_dir(ls->dir);
	}
}

int
log_store_save_snapshot(struct log_store *ls, uint64_t index, uint64_t term, const void *data,
                        uint32_t len)
{
	ASSERT(ls != NULL);
	ASSERT(index > 0);
	if (len > LOG_STORE_RECORD_MAX)
		return -SP_ETOOBIG;
	char tmp[PATH_MAX_LEN + 72], final[PATH_MAX_LEN + 64];
	snprintf(final, sizeof(final), "%s/snap-%020" PRIu64 "-%020" PRIu64 ".snap", ls->dir, index,
	         term);
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	if (ls->disk_bytes_max && log_store_disk_bytes(ls) + SNAP_HDR + len > ls->disk_bytes_max)
		return -ENOSPC;

	uint8_t hdr[SNAP_HDR];
	put_u32(hdr + 4, 16 + len);
	put_u64(hdr + 8, index);
	put_u64(hdr + 16, term);
	uint32_t crc = sp_crc32c(0, hdr + 4, SNAP_HDR - 4);
	put_u32(hdr, sp_crc32c(crc, data, len));

	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int err = write_all(fd, hdr, sizeof(hdr));
	if (err == 0)
		err = write_all(fd, data, len);
	if (err == 0 && fsync(fd))
		err = -errno;
	close(fd);
	if (err == 0 && rename(tmp, final))
		err = -errno;
	if (err == 0)
		err = fsync_dir(ls->dir);
	if (err) {
		unlink(tmp);
		SP_LOG_ERR(MOD, "snapshot %" PRIu64 " not saved: %s", index, sp_strerror(err));
		return err;
	}
	ls->snap_bytes = SNAP_HDR + len;
	compact(ls, index, term);
	return 0;
}
