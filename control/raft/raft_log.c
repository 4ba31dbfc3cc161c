/* SPDX-License-Identifier: BSD-3-Clause */
/* The Raft core's in-memory log; see raft_log.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/verify.h"
#include "control/raft/raft_log.h"

#define LOG_CAP_MIN 64

void
raft_log_init(struct raft_log *log, uint64_t snap_index, uint64_t snap_term)
{
	ASSERT(log != NULL);
	ASSERT(snap_index > 0 || snap_term == 0);
	memset(log, 0, sizeof(*log));
	log->snap_index = snap_index;
	log->snap_term = snap_term;
}

/* Frees the payloads of ents[from, to). */
static void
free_range(struct raft_log *log, size_t from, size_t to)
{
	ASSERT(from <= to);
	ASSERT(to <= log->n);
	for (size_t i = from; i < to; i++) {
		free((void *)log->ents[i].data);
		log->ents[i].data = NULL;
	}
}

void
raft_log_free(struct raft_log *log)
{
	ASSERT(log != NULL);
	free_range(log, 0, log->n);
	free(log->ents);
	log->ents = NULL;
	log->n = 0;
	log->cap = 0;
}

uint64_t
raft_log_last_index(const struct raft_log *log)
{
	ASSERT(log != NULL);
	return log->snap_index + log->n;
}

uint64_t
raft_log_last_term(const struct raft_log *log)
{
	ASSERT(log != NULL);
	return log->n > 0 ? log->ents[log->n - 1].term : log->snap_term;
}

bool
raft_log_term(const struct raft_log *log, uint64_t index, uint64_t *term)
{
	ASSERT(log != NULL);
	ASSERT(term != NULL);
	if (index == log->snap_index) {
		*term = log->snap_term;
		return true;
	}
	if (index < log->snap_index || index > raft_log_last_index(log))
		return false;
	*term = log->ents[index - log->snap_index - 1].term;
	return true;
}

const struct raft_entry *
raft_log_get(const struct raft_log *log, uint64_t index)
{
	ASSERT(log != NULL);
	if (index <= log->snap_index || index > raft_log_last_index(log))
		return NULL;
	return &log->ents[index - log->snap_index - 1];
}

/* Copies e's payload and places it at the end. The caller checked the index. */
int
raft_log_append(struct raft_log *log, const struct raft_entry *e)
{
	void *data = NULL;

	ASSERT(e != NULL);
	VERIFY(e->index == raft_log_last_index(log) + 1);
	ASSERT(e->term >= raft_log_last_term(log));
	if (log->n == log->cap) {
		size_t cap = log->cap < LOG_CAP_MIN ? LOG_CAP_MIN : log->cap * 2;
		struct raft_entry *ents = realloc(log->ents, cap * sizeof(*ents));

		if (ents == NULL)
			return -ENOMEM;
		log->ents = ents;
		log->cap = cap;
	}
	if (e->len > 0) {
		data = malloc(e->len);
		if (data == NULL)
			return -ENOMEM;
		memcpy(data, e->data, e->len);
	}
	log->ents[log->n] = *e;
	log->ents[log->n].data = data;
	log->n++;
	return 0;
}

void
raft_log_truncate(struct raft_log *log, uint64_t index)
{
	size_t keep;

	VERIFY(index > log->snap_index);
	if (index > raft_log_last_index(log))
		return;
	keep = (size_t)(index - log->snap_index - 1);
	free_range(log, keep, log->n);
	log->n = keep;
	ASSERT(raft_log_last_index(log) == index - 1);
}

void
raft_log_compact(struct raft_log *log, uint64_t index, uint64_t term)
{
	size_t drop;

	VERIFY(index > log->snap_index);
	VERIFY(index <= raft_log_last_index(log));
	drop = (size_t)(index - log->snap_index);
	free_range(log, 0, drop);
	memmove(log->ents, log->ents + drop, (log->n - drop) * sizeof(log->ents[0]));
	log->n -= drop;
	log->snap_index = index;
	log->snap_term = term;
	ASSERT(log->n == 0 || log->ents[0].index == index + 1);
}

void
raft_log_reset(struct raft_log *log, uint64_t snap_index, uint64_t snap_term)
{
	ASSERT(log != NULL);
	free_range(log, 0, log->n);
	log->n = 0;
	log->snap_index = snap_index;
	log->snap_term = snap_term;
}
