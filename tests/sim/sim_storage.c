/* SPDX-License-Identifier: BSD-3-Clause */
#include "sim_storage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"
#include "sim_check.h"

void
sim_storage_init(struct sim_storage *s)
{
	memset(s, 0, sizeof(*s));
	ASSERT(sim_storage_last_index(s) == 0);
}

static void
entry_free(struct sim_stored_entry *se)
{
	free((void *)se->e.data);
	se->e.data = NULL;
	se->e.len = 0;
}

/* Drops stored entries from position pos on. */
static void
truncate_at(struct sim_storage *s, size_t pos)
{
	ASSERT(pos <= s->n);
	for (size_t i = pos; i < s->n; i++)
		entry_free(&s->log[i]);
	s->n = pos;
}

void
sim_storage_fini(struct sim_storage *s)
{
	truncate_at(s, 0);
	free(s->log);
	memset(s, 0, sizeof(*s));
}

uint64_t
sim_storage_last_index(const struct sim_storage *s)
{
	return s->snap.index + s->n;
}

uint64_t
sim_storage_chain_at(const struct sim_storage *s, uint64_t index)
{
	if (index == 0)
		return 0;
	if (index == s->snap.index)
		return s->snap_chain;
	if (index < s->snap.index || index > sim_storage_last_index(s))
		return 0;
	return s->log[index - s->snap.index - 1].chain;
}

uint64_t
sim_storage_term_at(const struct sim_storage *s, uint64_t index)
{
	if (index == 0)
		return 0;
	if (index == s->snap.index)
		return s->snap.term;
	if (index < s->snap.index || index > sim_storage_last_index(s))
		return 0;
	return s->log[index - s->snap.index - 1].e.term;
}

void
sim_snapshot_data_encode(uint64_t index, uint64_t chain, uint8_t out[SIM_SNAPSHOT_DATA_BYTES])
{
	memcpy(out, &index, 8);
	memcpy(out + 8, &chain, 8);
}

int
sim_snapshot_data_decode(const void *data, size_t len, uint64_t *index, uint64_t *chain)
{
	if (len != SIM_SNAPSHOT_DATA_BYTES || data == NULL)
		return -SP_EMALFORMED;
	memcpy(index, data, 8);
	memcpy(chain, (const uint8_t *)data + 8, 8);
	return 0;
}

int
sim_storage_put_snapshot(struct sim_storage *s, const struct raft_snapshot *snap)
{
	uint64_t index, chain;

	if (sim_snapshot_data_decode(snap->data, snap->len, &index, &chain) != 0)
		return -SP_EMALFORMED;
	if (index != snap->meta.index || index == 0)
		return -SP_EMALFORMED;
	/* raft.h: an installed snapshot replaces the whole stored log. */
	truncate_at(s, 0);
	s->snap = snap->meta;
	s->snap_chain = chain;
	s->bytes_written += snap->len;
	ASSERT(sim_storage_last_index(s) >= index);
	return 0;
}

int
sim_storage_put_entries(struct sim_storage *s, const struct raft_entry *entries, size_t n)
{
	if (n == 0)
		return 0;
	uint64_t first = entries[0].index;

	if (first <= s->snap.index || first > sim_storage_last_index(s) + 1)
		return -SP_EMALFORMED;
	for (size_t i = 1; i < n; i++)
		if (entries[i].index != first + i)
			return -SP_EMALFORMED;
	size_t pos = (size_t)(first - s->snap.index - 1);

	if (pos + n > SIM_STORAGE_ENTRIES_MAX)
		return -SP_EFULL;
	if (pos + n > s->cap) {
		size_t ncap = s->cap ? s->cap : 64;

		while (ncap < pos + n)
			ncap *= 2;
		void *p = realloc(s->log, ncap * sizeof(*s->log));

		if (p == NULL)
			return -ENOMEM;
		s->log = p;
		s->cap = ncap;
	}
	truncate_at(s, pos);
	uint64_t chain = sim_storage_chain_at(s, first - 1);

	for (size_t i = 0; i < n; i++) {
		struct sim_stored_entry *se = &s->log[pos + i];
		const struct raft_entry *e = &entries[i];
		void *copy = NULL;

		if (e->len > 0) {
			copy = malloc(e->len);
			VERIFY(copy != NULL);
			memcpy(copy, e->data, e->len);
		}
		se->e = *e;
		se->e.data = copy;
		chain = sim_chain_next(chain, e->index, e->term, e->data, e->len);
		se->chain = chain;
		s->bytes_written += e->len;
	}
	s->n = pos + n;
	ASSERT(sim_storage_last_index(s) == entries[n - 1].index);
	return 0;
}

int
sim_storage_compact(struct sim_storage *s, uint64_t index, const struct raft_membership *membership)
{
	if (index <= s->snap.index)
		return 0;
	if (index > sim_storage_last_index(s))
		return -SP_ENOTFOUND;
	size_t drop = (size_t)(index - s->snap.index);
	struct sim_stored_entry *last = &s->log[drop - 1];

	s->snap.index = index;
	s->snap.term = last->e.term;
	s->snap.membership = *membership;
	s->snap_chain = last->chain;
	for (size_t i = 0; i < drop; i++)
		entry_free(&s->log[i]);
	memmove(s->log, s->log + drop, (s->n - drop) * sizeof(*s->log));
	s->n -= drop;
	ASSERT(sim_storage_chain_at(s, index) != 0);
	return 0;
}

void
sim_storage_view(const struct sim_storage *s, struct raft_storage *out,
                 struct raft_entry *entries_scratch, uint8_t snap_data[SIM_SNAPSHOT_DATA_BYTES])
{
	memset(out, 0, sizeof(*out));
	out->hard_state = s->hs;
	if (s->snap.index > 0) {
		sim_snapshot_data_encode(s->snap.index, s->snap_chain, snap_data);
		out->snapshot.meta = s->snap;
		out->snapshot.data = snap_data;
		out->snapshot.len = SIM_SNAPSHOT_DATA_BYTES;
	}
	for (size_t i = 0; i < s->n; i++)
		entries_scratch[i] = s->log[i].e;
	out->entries = entries_scratch;
	out->n_entries = s->n;
	out->applied = s->snap.index;
	ASSERT(out->applied <= sim_storage_last_index(s));
}
