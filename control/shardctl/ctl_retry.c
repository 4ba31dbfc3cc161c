/* SPDX-License-Identifier: BSD-3-Clause */
/* The retry policy of shardctl's client; the story is in ctl_retry.h. */
#include "ctl_retry.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static uint64_t
rng_next(struct ctl_retry *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

/* The index of the configured endpoint spelled addr, or -1. */
static int
endpoint_index(const struct ctl_retry *r, const char *addr)
{
	for (uint32_t i = 0; i < r->n_endpoints; i++)
		if (strcmp(r->endpoints[i], addr) == 0)
			return (int)i;
	return -1;
}

static bool
is_unreachable(const struct ctl_retry *r, const char *addr)
{
	int i = endpoint_index(r, addr);
	if (i >= 0 && r->unreachable[i])
		return true;
	return r->dead_hint[0] && strcmp(r->dead_hint, addr) == 0;
}

/* Ends a round: the endpoints that answered keep their relative order and come first, the
 * unreachable ones follow, so a dead endpoint listed first costs one dial per round at the
 * end rather than before every useful answer. */
static void
round_end(struct ctl_retry *r)
{
	uint8_t next[CTL_ENDPOINTS_MAX];
	uint32_t k = 0;
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t j = 0; j < r->n_endpoints; j++)
			if (r->unreachable[r->order[j]] == (pass == 1))
				next[k++] = r->order[j];
	assert(k == r->n_endpoints);
	memcpy(r->order, next, k);
	memset(r->unreachable, 0, sizeof(r->unreachable));
	r->dead_hint[0] = '\0';
	r->cursor = 0;
	r->hops = 0;
	r->rounds++;
}

void
ctl_retry_init(struct ctl_retry *r, const char *const *endpoints, uint32_t n, bool idempotent,
               uint64_t now_ms, uint32_t timeout_ms, uint64_t seed)
{
	assert(endpoints != NULL);
	assert(n >= 1 && n <= CTL_ENDPOINTS_MAX);
	memset(r, 0, sizeof(*r));
	r->endpoints = endpoints;
	r->n_endpoints = n;
	r->idempotent = idempotent;
	r->deadline_ms = now_ms + timeout_ms;
	for (uint32_t i = 0; i < n; i++) {
		assert(strlen(endpoints[i]) < CTL_ADDR_MAX);
		r->order[i] = (uint8_t)i;
	}
	r->backoff_ms = CTL_RETRY_BACKOFF_MIN_MS;
	r->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

const char *
ctl_retry_next(struct ctl_retry *r, uint64_t now_ms, uint32_t *pause_ms)
{
	assert(!r->asked);
	assert(r->cursor <= r->n_endpoints);
	*pause_ms = 0;
	/* A named leader first, when it may be alive. */
	if (r->hint[0] && r->hops < CTL_RETRY_HOPS_MAX && !is_unreachable(r, r->hint)) {
		r->hops++;
		memcpy(r->asking, r->hint, sizeof(r->asking));
		r->hint[0] = '\0';
		goto ask;
	}
	r->hint[0] = '\0';
	while (r->cursor < r->n_endpoints && r->unreachable[r->order[r->cursor]])
		r->cursor++;
	if (r->cursor == r->n_endpoints) {
		if (r->last_round || r->rounds + 1 >= CTL_RETRY_ROUNDS_MAX)
			return NULL;
		round_end(r);
		/* Jitter takes up to 10% off, so that clients started together spread out. */
		uint32_t jitter = r->backoff_ms / 10;
		*pause_ms = r->backoff_ms - (jitter ? (uint32_t)(rng_next(r) % (jitter + 1)) : 0);
		r->backoff_ms = r->backoff_ms * 2 > CTL_RETRY_BACKOFF_MAX_MS
		                        ? CTL_RETRY_BACKOFF_MAX_MS
		                        : r->backoff_ms * 2;
	}
	snprintf(r->asking, sizeof(r->asking), "%s", r->endpoints[r->order[r->cursor++]]);
ask:
	/* The last pause is cut short so that one more attempt fits before the deadline. */
	if (now_ms + CTL_RETRY_ATTEMPT_MIN_MS > r->deadline_ms)
		return NULL;
	if (now_ms + *pause_ms + CTL_RETRY_ATTEMPT_MIN_MS > r->deadline_ms) {
		*pause_ms = (uint32_t)(r->deadline_ms - now_ms - CTL_RETRY_ATTEMPT_MIN_MS);
		r->last_round = true;
	}
	r->attempts++;
	r->asked = true;
	return r->asking;
}

enum ctl_verdict
ctl_retry_record(struct ctl_retry *r, enum ctl_outcome o, const char *leader)
{
	assert(r->asked);
	assert(leader == NULL || o == CTL_NOT_LEADER);
	r->asked = false;
	switch (o) {
	case CTL_ANSWERED:
	case CTL_DENIED:
		return CTL_STOP;
	case CTL_LOST:
		return r->idempotent ? CTL_RETRY : CTL_STOP;
	case CTL_UNREACHABLE: {
		int i = endpoint_index(r, r->asking);
		if (i >= 0)
			r->unreachable[i] = true;
		else
			memcpy(r->dead_hint, r->asking, sizeof(r->dead_hint));
		return CTL_RETRY;
	}
	case CTL_NOT_LEADER:
		/* A member that names itself, or a name too long to be an address, is no hint. */
		if (leader && strlen(leader) < CTL_ADDR_MAX && strcmp(leader, r->asking) != 0)
			snprintf(r->hint, sizeof(r->hint), "%s", leader);
		return CTL_RETRY;
	case CTL_UNAVAILABLE:
		return CTL_RETRY;
	}
	assert(!"unknown outcome");
	return CTL_STOP;
}
