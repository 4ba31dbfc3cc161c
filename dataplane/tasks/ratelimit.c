/* SPDX-License-Identifier: BSD-3-Clause */
/* RATELIMIT: per-key token buckets on the task API (ratelimit.h). */
#include "dataplane/tasks/ratelimit.h"

#include <errno.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"

#define NANO 1000000000ull

struct rl_bucket {
	uint64_t hash;      /* 0: free (a key hashing to 0 is stored as 1) */
	uint64_t tokens_nt; /* nano-tokens, <= burst * NANO */
	uint64_t last_ns;   /* when tokens_nt was computed */
	uint32_t burst;     /* the burst of the last request (caps tokens) */
	uint32_t rate;      /* the rate of the last request (tells when it is full) */
};

struct rl_state {
	uint32_t nbuckets; /* power of two, multiple of SP_RL_WAYS */
	uint32_t pad;
	struct sp_rl_stats st;
	uint8_t pad2[64 - 8 - sizeof(struct sp_rl_stats) % 64];
	struct rl_bucket b[];
};

SP_STATIC_ASSERT(sizeof(struct rl_bucket) == SP_RL_BUCKET_SIZE, "bucket size");
SP_STATIC_ASSERT(sizeof(struct rl_state) % 64 == 0, "buckets start on a cache line");
SP_STATIC_ASSERT(SP_RL_WAYS *SP_RL_BUCKET_SIZE == 256, "a set is four cache lines");
/* burst * NANO and tokens + refill stay below 2^64 (see refill). */
SP_STATIC_ASSERT((unsigned __int128)UINT32_MAX *NANO * 2 + SP_RL_RATE_MAX <
                         ((unsigned __int128)1 << 64),
                 "nano-token arithmetic fits 64 bits");

uint32_t
sp_rl_state_size(uint32_t buckets)
{
	return (uint32_t)(sizeof(struct rl_state) + (size_t)buckets * sizeof(struct rl_bucket));
}

static int
rl_init(void *state, uint32_t state_size, uint32_t partition, void *user)
{
	struct rl_state *s = state;

	(void)partition;
	(void)user;
	VERIFY(state_size > sizeof(*s));
	s->nbuckets = (uint32_t)((state_size - sizeof(*s)) / sizeof(struct rl_bucket));
	VERIFY(s->nbuckets >= SP_RL_WAYS && s->nbuckets % SP_RL_WAYS == 0);
	return 0;
}

/* Tokens of b at now (refilled at rate, capped at burst); b is not changed. */
static uint64_t
refill(const struct rl_bucket *b, uint32_t rate, uint32_t burst, uint64_t now_ns)
{
	uint64_t cap = (uint64_t)burst * NANO;
	uint64_t tokens = SP_MIN(b->tokens_nt, cap);
	uint64_t elapsed = now_ns > b->last_ns ? now_ns - b->last_ns : 0;

	/* Past the time to fill from empty the bucket is full: bounds elapsed * rate. */
	if (elapsed >= cap / rate + 1)
		return cap;
	uint64_t t = tokens + elapsed * rate;
	return SP_MIN(t, cap);
}

void
sp_rl_take(void *state, uint32_t state_size, uint64_t hash, const struct sp_rl_arg *a,
           uint64_t now_ns, struct sp_rl_result *out)
{
	struct rl_state *s = state;
	uint64_t h = hash != 0 ? hash : 1;

	ASSERT(state_size == sp_rl_state_size(s->nbuckets));
	ASSERT(a->rate_per_s >= 1 && a->rate_per_s <= SP_RL_RATE_MAX);
	ASSERT(a->cost >= 1 && a->cost <= a->burst);
	(void)state_size;
	/* High bits choose the set: the low ones chose the partition. */
	uint32_t sets = s->nbuckets / SP_RL_WAYS;
	struct rl_bucket *set = &s->b[((uint32_t)(h >> 40) & (sets - 1)) * SP_RL_WAYS];
	struct rl_bucket *b = NULL;
	struct rl_bucket *free_way = NULL, *full_way = NULL, *lru = NULL;

	for (uint32_t i = 0; i < SP_RL_WAYS; i++) {
		struct rl_bucket *c = &set[i];

		if (c->hash == h) {
			b = c;
			break;
		}
		if (c->hash == 0) {
			if (free_way == NULL)
				free_way = c;
			continue;
		}
		if (full_way == NULL &&
		    refill(c, c->rate, c->burst, now_ns) == (uint64_t)c->burst * NANO)
			full_way = c;
		if (lru == NULL || c->last_ns < lru->last_ns)
			lru = c;
	}
	if (b == NULL) {
		if (free_way != NULL) {
			b = free_way;
		} else if (full_way != NULL) {
			b = full_way;
			s->st.evicted_full++;
		} else {
			b = lru;
			s->st.evicted_refilling++;
		}
		ASSERT(b != NULL);
		b->hash = h;
		b->tokens_nt = (uint64_t)a->burst * NANO;
		b->last_ns = now_ns;
		s->st.created++;
	}
	uint64_t need = (uint64_t)a->cost * NANO;
	uint64_t tokens = refill(b, a->rate_per_s, a->burst, now_ns);

	out->allowed = tokens >= need;
	if (out->allowed) {
		tokens -= need;
		s->st.allowed++;
	} else {
		s->st.denied++;
	}
	b->tokens_nt = tokens;
	b->burst = a->burst;
	b->rate = a->rate_per_s;
	if (now_ns > b->last_ns)
		b->last_ns = now_ns;
	out->remaining = (uint32_t)(tokens / NANO);
	out->wait_ns = tokens >= need ? 0 : (need - tokens + a->rate_per_s - 1) / a->rate_per_s;
	ASSERT(b->tokens_nt <= (uint64_t)b->burst * NANO);
}

void
sp_rl_stats_get(const void *state, struct sp_rl_stats *out)
{
	const struct rl_state *s = state;

	*out = s->st;
}

bool
sp_rl_valid(const void *state, uint32_t state_size)
{
	const struct rl_state *s = state;

	if (state_size != sp_rl_state_size(s->nbuckets) || s->nbuckets % SP_RL_WAYS != 0)
		return false;
	for (uint32_t i = 0; i < s->nbuckets; i++) {
		const struct rl_bucket *b = &s->b[i];

		if (b->hash == 0)
			continue;
		if (b->tokens_nt > (uint64_t)b->burst * NANO)
			return false;
		for (uint32_t j = i / SP_RL_WAYS * SP_RL_WAYS; j < i; j++)
			if (s->b[j].hash == b->hash)
				return false;
	}
	return true;
}

static uint8_t
rl_check(const uint8_t *arg, uint32_t arg_len, void *user)
{
	struct sp_rl_arg a;

	(void)user;
	return sp_rl_arg_decode(arg, arg_len, &a) == 0 ? SP_BP_ST_OK : SP_BP_ST_BAD_REQUEST;
}

static uint8_t
rl_exec(const struct sp_task_call *call, struct sp_task_out *out, void *user)
{
	struct sp_rl_arg a;
	struct sp_rl_result res;

	(void)user;
	/* sp_task_admit ran rl_check on the receiving worker; decoding again is cheap and
	 * keeps exec safe on its own. */
	if (sp_rl_arg_decode(call->arg, call->arg_len, &a) != 0)
		return SP_BP_ST_BAD_REQUEST;
	ASSERT(out->cap >= SP_RL_RESULT_SIZE);
	sp_rl_take(call->state, call->state_size, call->hash, &a, call->now_ns, &res);
	sp_rl_result_encode(out->buf, &res);
	out->len = SP_RL_RESULT_SIZE;
	return SP_BP_ST_OK;
}

int
sp_ratelimit_register(struct sp_task_registry *r, uint32_t buckets_per_partition, char *why,
                      size_t why_len)
{
	uint32_t n = buckets_per_partition;

	if (n < SP_RL_BUCKETS_MIN || n > SP_RL_BUCKETS_MAX || (n & (n - 1)) != 0)
		return sp_explain(why, why_len, -EINVAL,
		                  "ratelimit: %u buckets per partition is not a power of two in "
		                  "%u..%u",
		                  n, SP_RL_BUCKETS_MIN, SP_RL_BUCKETS_MAX);
	struct sp_task_def d = {
	        .name = "ratelimit",
	        .opcode = SP_TASK_OP_RATELIMIT,
	        .span = SP_TASK_SPAN_KEY,
	        .state_size = sp_rl_state_size(n),
	        .state_align = 64,
	        .result_max = SP_RL_RESULT_SIZE,
	        .arg_max = SP_RL_ARG_SIZE,
	        .check = rl_check,
	        .init = rl_init,
	        .exec = rl_exec,
	};
	return sp_task_register(r, &d, why, why_len);
}
