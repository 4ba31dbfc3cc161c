/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Raft core's in-memory log (internal to control/raft): the entries after the last
 * snapshot, each owning a copy of its payload. Index i lives at ents[i - first_index].
 */
#ifndef SP_CONTROL_RAFT_LOG_H
#define SP_CONTROL_RAFT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/raft/raft.h"

struct raft_log {
	struct raft_entry *ents; /* data of each entry is malloc'd and owned here */
	size_t n;
	size_t cap;
	uint64_t snap_index; /* index of the entry just before ents[0] (0: none) */
	uint64_t snap_term;
};

/* Initialises an empty log that follows (snap_index, snap_term). Can't fail. */
void raft_log_init(struct raft_log *log, uint64_t snap_index, uint64_t snap_term);

/* Frees every entry and the array. The log is empty afterwards. */
void raft_log_free(struct raft_log *log);

/* Index of the last entry (snap_index when empty). */
uint64_t raft_log_last_index(const struct raft_log *log);

/* Term of the last entry (snap_term when empty). */
uint64_t raft_log_last_term(const struct raft_log *log);

/*
 * Term of the entry at index: true and *term set when index is the snapshot index or held in
 * memory, false when compacted away or beyond the end.
 */
bool raft_log_term(const struct raft_log *log, uint64_t index, uint64_t *term);

/* Entry at index, or NULL when not held in memory. */
const struct raft_entry *raft_log_get(const struct raft_log *log, uint64_t index);

/*
 * Appends a copy of e (payload copied) with the given index, which must be last + 1.
 * Returns 0 or -ENOMEM (the log is unchanged).
 */
int raft_log_append(struct raft_log *log, const struct raft_entry *e);

/* Drops every entry with an index >= index (index > snap_index). Can't fail. */
void raft_log_truncate(struct raft_log *log, uint64_t index);

/* Drops every entry up to and including index, which becomes the snapshot index. */
void raft_log_compact(struct raft_log *log, uint64_t index, uint64_t term);

/* Drops everything and restarts after (snap_index, snap_term). */
void raft_log_reset(struct raft_log *log, uint64_t snap_index, uint64_t snap_term);

#endif
