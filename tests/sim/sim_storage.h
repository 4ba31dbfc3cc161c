/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Simulated durable storage of one node: hard state, snapshot and the log after it, each
 * entry with its chain digest (sim_check.h). It holds only what the driver reported as
 * durable; what a crash loses never reaches it. Entry payloads are owned copies.
 */
#ifndef SP_SIM_STORAGE_H
#define SP_SIM_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/raft/raft.h"

#define SIM_STORAGE_ENTRIES_MAX (1u << 16) /* log entries held after the snapshot */
#define SIM_SNAPSHOT_DATA_BYTES 16         /* the state machine's snapshot: index, chain */

struct sim_stored_entry {
	struct raft_entry e; /* e.data owned (malloc) when e.len > 0 */
	uint64_t chain;
};

struct sim_storage {
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap; /* index 0: none */
	uint64_t snap_chain;            /* chain at snap.index (0 when none) */
	struct sim_stored_entry *log;   /* log[i] holds index snap.index + 1 + i */
	size_t n;
	size_t cap;
	uint64_t bytes_written; /* for the summary */
};

void sim_storage_init(struct sim_storage *s);
/* Frees every payload; the storage is empty afterwards. */
void sim_storage_fini(struct sim_storage *s);

uint64_t sim_storage_last_index(const struct sim_storage *s);

/* Chain digest at index (the snapshot's or an entry's), or 0 when not held. */
uint64_t sim_storage_chain_at(const struct sim_storage *s, uint64_t index);
/* Term at index, 0 when not held. */
uint64_t sim_storage_term_at(const struct sim_storage *s, uint64_t index);

/*
 * Persists a snapshot, which replaces the whole stored log (raft.h's contract). Returns 0, or
 * -SP_EMALFORMED when data is not a SIM_SNAPSHOT_DATA_BYTES state-machine snapshot whose
 * index matches meta.
 */
int sim_storage_put_snapshot(struct sim_storage *s, const struct raft_snapshot *snap);

/*
 * Persists entries (contiguous, increasing), truncating the stored log at entries[0].index.
 * Each written entry's chain is computed and stored. Returns 0; -SP_EMALFORMED when the
 * entries leave a gap or go below the snapshot; -SP_EFULL over SIM_STORAGE_ENTRIES_MAX;
 * -ENOMEM. On error nothing is changed.
 */
int sim_storage_put_entries(struct sim_storage *s, const struct raft_entry *entries, size_t n);

/*
 * Compacts: the state machine's snapshot at index (<= last index) with the given
 * membership replaces the log up to index. Returns 0 or -SP_ENOTFOUND.
 */
int sim_storage_compact(struct sim_storage *s, uint64_t index,
                        const struct raft_membership *membership);

/* Fills the snapshot data bytes for (index, chain). */
void sim_snapshot_data_encode(uint64_t index, uint64_t chain, uint8_t out[SIM_SNAPSHOT_DATA_BYTES]);
/* Returns 0, or -SP_EMALFORMED when len is wrong. */
int sim_snapshot_data_decode(const void *data, size_t len, uint64_t *index, uint64_t *chain);

/*
 * Describes the storage as raft_create() wants it. The pointers stay valid until the next
 * change to s; `snap_data` is the caller's buffer for the snapshot bytes.
 */
void sim_storage_view(const struct sim_storage *s, struct raft_storage *out,
                      struct raft_entry *entries_scratch,
                      uint8_t snap_data[SIM_SNAPSHOT_DATA_BYTES]);

#endif
