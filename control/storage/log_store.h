/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control plane's durable Raft log: segment files of CRC32C-checked records, written
 * with io_uring, where concurrent appends share one fsync (group commit).
 *
 * Record layout (little-endian): u32 crc | u32 len | u8 type | payload[len - 1].
 * crc is CRC32C over the len field and the len bytes that follow it. Types:
 *   ENTRY      u64 index | u64 term | u8 entry type | data
 *   HARDSTATE  u64 term | u64 vote | u64 commit
 * An ENTRY whose index is not above the last one truncates the log before it, so
 * overwriting a suffix is just an append. Every segment starts with the hard state that
 * was current when it was opened, so deleting old segments never loses it.
 *
 * Snapshots live beside the segments as snap-<index>-<term>.snap (u32 crc | u32 len |
 * u64 index | u64 term | data), written to a temporary name, fsynced and renamed.
 *
 * Recovery (log_store_open): a record that fails its check at the end of the newest
 * segment is a torn write and is truncated away; a bad record anywhere else is
 * corruption in the middle of the log and opening fails with SP_ECORRUPT and a message
 * naming the file and offset, instead of silently dropping acknowledged entries.
 *
 * Preallocation (params.preallocate): each segment is created at its full size with
 * fallocate, so an append writes into blocks that are already the file's and fdatasync
 * flushes the data without a journal commit for the file's growing size. Measured here
 * (ext4 on a virtio disk, 200-byte appends): fdatasync p50 84 us into a preallocated
 * file against 117 us when each append extends it. The unwritten part reads as zeros;
 * recovery takes a tail of zeros after the last good record in the newest segment as
 * the end of the log (not as a torn write), and keeps the preallocation.
 *
 * Nothing is reported durable before its fsync completed. A write or fsync error
 * (ENOSPC, EIO) puts the store in a failed state: the error is reported through
 * on_durable and every later append returns it; the process does not crash.
 *
 * Threading: one thread, the event loop's. The store submits its operations on the
 * caller's io_uring; the loop hands each completion whose user_data is a struct
 * log_store_op back through log_store_complete().
 */
#ifndef SP_CONTROL_LOG_STORE_H
#define SP_CONTROL_LOG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io_uring;
struct io_uring_cqe;
struct log_store;

#define LOG_STORE_RECORD_MAX      (64u << 20) /* a longer length field is corruption */
#define LOG_STORE_SEGMENT_DEFAULT (64u << 20) /* roll to a new segment past this */
#define LOG_STORE_BATCH_DEFAULT   (4u << 20)  /* bytes written by one group commit */

enum log_record_type {
	LOG_REC_ENTRY = 1,
	LOG_REC_HARDSTATE = 2,
};

struct log_hard_state {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
};

struct log_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type; /* the Raft entry type, opaque here */
	uint32_t len;
	const void *data; /* owned by the store for recovered entries */
};

/* What log_store_open found on disk. Arrays are owned by the store until close. */
struct log_recovered {
	struct log_hard_state hs;
	bool have_hs;
	uint64_t snap_index; /* 0: no snapshot */
	uint64_t snap_term;
	const void *snap_data;
	uint32_t snap_len;
	const struct log_entry *entries; /* indexes snap_index + 1 ... consecutive */
	size_t n_entries;
	uint64_t torn_bytes_truncated; /* a torn tail that was cut off */
};

/* Tells the owner how far the log is durable; err != 0 means the store has failed. */
typedef void (*log_store_durable_fn)(void *arg, uint64_t durable_seq, int err);

struct log_store_params {
	const char *dir;            /* created if missing */
	struct io_uring *ring;      /* the event loop's ring */
	uint64_t segment_bytes_max; /* 0: LOG_STORE_SEGMENT_DEFAULT */
	uint32_t batch_bytes_max;   /* 0: LOG_STORE_BATCH_DEFAULT */
	uint64_t disk_bytes_max;    /* test hook: fail with ENOSPC past this many bytes; 0: off */
	bool preallocate;           /* create segments at segment_bytes_max with fallocate */
	log_store_durable_fn on_durable;
	void *arg;
};

/* The header of every io_uring operation the store submits (its SQE user_data). */
struct log_store_op {
	uint32_t magic; /* LOG_STORE_OP_MAGIC, so the loop can tell whose CQE it is */
	uint8_t kind;
	struct log_store *store;
};
#define LOG_STORE_OP_MAGIC 0x4c4f4753u

/*
 * Opens (or creates) the log in params->dir and recovers it into *rec. Returns NULL and
 * sets *err (negative errno or SP_ECORRUPT) on failure, having logged what is wrong.
 */
struct log_store *log_store_open(const struct log_store_params *params, struct log_recovered *rec,
                                 int *err);

/* Waits for operations in flight, then closes files and frees everything. */
void log_store_close(struct log_store *ls);

/*
 * Queues entries (and, if hs is not NULL, a new hard state after them) for the next
 * group commit. Returns the sequence number that on_durable will report once they are on
 * disk (> 0), or a negative error: the store's failure, or SP_ETOOBIG for a record over
 * LOG_STORE_RECORD_MAX. Never blocks; copies the data.
 */
int64_t log_store_append(struct log_store *ls, const struct log_entry *ents, size_t n,
                         const struct log_hard_state *hs);

/*
 * Starts writing what is queued, if no write is in flight (one write and one fsync are in
 * flight at a time; what is queued meanwhile goes in the next). Returns 0 or the store's
 * error. The caller submits the ring.
 */
int log_store_flush(struct log_store *ls);

/* Hands a completion back. Returns true if it was the store's, false if not. */
bool log_store_complete(struct log_store *ls, const struct io_uring_cqe *cqe);

/* The highest sequence number known durable. */
uint64_t log_store_durable_seq(const struct log_store *ls);

/* True while a write or fsync is in flight or data is queued. */
bool log_store_busy(const struct log_store *ls);

/*
 * Saves a snapshot at (index, term) durably (blocking: temp file, fsync, rename, directory
 * fsync), then deletes the segments whose entries are all at or below index. Returns 0
 * or a negative error. The log's entries after index stay.
 */
int log_store_save_snapshot(struct log_store *ls, uint64_t index, uint64_t term, const void *data,
                            uint32_t len);

/* Bytes in segment and snapshot files, for status and for bounding disk use. */
uint64_t log_store_disk_bytes(const struct log_store *ls);
unsigned log_store_segment_count(const struct log_store *ls);

/* Number of fsyncs completed; group commit shows as fewer fsyncs than appends. */
uint64_t log_store_fsync_count(const struct log_store *ls);

#endif
