/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctl_retry: which control-plane endpoint a client asks next, how long it pauses first, and
 * when it gives up. The policy is kept apart from the sockets so that tests drive it with
 * made-up outcomes and clocks; shardctl's call() is its only user in the tree.
 *
 * The story of one request, as etcd's client tells it. The client asks the configured
 * endpoints in turn. An endpoint that refuses the connection (or does not complete the
 * handshake) did not see the request, so the next one is asked at once. A member that is
 * not the leader says so, and names the leader when it knows one: that address is asked
 * next, unless it was already unreachable in this round (a killed leader is still named by
 * its followers until they elect another). A member that knows no leader (an election is
 * under way) is passed over like a refusal. When every endpoint of a round has been asked
 * without an answer, the client pauses (exponential backoff from CTL_RETRY_BACKOFF_MIN_MS
 * to CTL_RETRY_BACKOFF_MAX_MS, minus up to 10% jitter) and starts another round, until
 * the command's deadline (--command-timeout) leaves no time for another attempt. Endpoints
 * that were unreachable in a round are asked last in the next one.
 *
 * A request that was sent but never answered (the connection broke, or the member answered
 * TIMEOUT) may have been applied. A read is asked again; a request that changes state is
 * not, and the command reports that its outcome is unknown, as etcd's client does.
 */
#ifndef SP_CTL_RETRY_H
#define SP_CTL_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define CTL_ENDPOINTS_MAX 16
#define CTL_ADDR_MAX      128
/* Leader hints followed within one round; a member naming itself or a loop ends there. */
#define CTL_RETRY_HOPS_MAX 3
/* The largest pause is shorter than an election (125-250 ms in shardplane-cp): a longer one
 * only delays finding the new leader after the election is over (a write sent as the
 * leader died waited 25 + 50 + 100 + 200 ms of pauses with a 500 ms cap). */
#define CTL_RETRY_BACKOFF_MIN_MS 25u
#define CTL_RETRY_BACKOFF_MAX_MS 100u
/* Not worth starting an attempt with less time than this left before the deadline: an
 * answer on a loaded machine takes a few tens of milliseconds with the handshake. */
#define CTL_RETRY_ATTEMPT_MIN_MS 100u
/* Rounds of one request, whatever the deadline: 600 s of --command-timeout at the
 * largest backoff is 6,000 rounds. At the bound the request gives up like at a deadline. */
#define CTL_RETRY_ROUNDS_MAX 6500u

/* What one attempt gave. */
enum ctl_outcome {
	CTL_ANSWERED,    /* an answer the command takes: success or an error to report */
	CTL_UNREACHABLE, /* no connection or no handshake: the request was not sent */
	CTL_NOT_LEADER,  /* a member that is not the leader (it may name the leader) */
	CTL_UNAVAILABLE, /* the member knows no leader: an election is under way */
	CTL_LOST,        /* sent, but no answer came (connection broke, or TIMEOUT) */
	CTL_DENIED,      /* authentication failed (a wrong secret is wrong everywhere), or
	                  * the address is not one */
};

enum ctl_verdict {
	CTL_RETRY, /* ask ctl_retry_next() for another attempt */
	CTL_STOP,  /* the outcome is final */
};

struct ctl_retry {
	const char *const *endpoints;
	uint32_t n_endpoints;
	bool idempotent; /* a read: asking again after CTL_LOST is safe */
	uint64_t deadline_ms;
	uint8_t order[CTL_ENDPOINTS_MAX];    /* this round's order of the endpoints */
	bool unreachable[CTL_ENDPOINTS_MAX]; /* by endpoint index, in this round */
	uint32_t cursor;                     /* next position in order[] */
	uint32_t hops;                       /* leader hints followed in this round */
	char hint[CTL_ADDR_MAX];             /* the named leader to ask next; "" when none */
	char dead_hint[CTL_ADDR_MAX];        /* a named leader that was unreachable in this round */
	char asking[CTL_ADDR_MAX];           /* what ctl_retry_next() returned last */
	bool asked; /* ctl_retry_next() returned asking and no outcome is recorded */
	uint32_t backoff_ms;
	bool last_round; /* the pause before this round was cut short by the deadline */
	uint32_t rounds; /* completed rounds */
	uint32_t attempts;
	uint64_t rng; /* jitter; xorshift64, never 0 */
};

/*
 * Starts the policy for one request over n endpoints (1..CTL_ENDPOINTS_MAX, each shorter
 * than CTL_ADDR_MAX; the array must outlive r), to be answered by now_ms + timeout_ms.
 * idempotent says whether the request may be sent twice. seed drives the jitter. This
 * function can't fail.
 */
void ctl_retry_init(struct ctl_retry *r, const char *const *endpoints, uint32_t n, bool idempotent,
                    uint64_t now_ms, uint32_t timeout_ms, uint64_t seed);

/*
 * The address to ask next, valid until the next call; *pause_ms is how long to wait
 * before asking (0 within a round, the backoff between rounds, cut short so that the
 * attempt starts CTL_RETRY_ATTEMPT_MIN_MS before the deadline). Returns NULL when less
 * than CTL_RETRY_ATTEMPT_MIN_MS is left, or after CTL_RETRY_ROUNDS_MAX rounds: the
 * request gives up.
 */
const char *ctl_retry_next(struct ctl_retry *r, uint64_t now_ms, uint32_t *pause_ms);

/*
 * Records the outcome of asking addr (the last ctl_retry_next() result); leader is the
 * address a CTL_NOT_LEADER answer named, or NULL. Returns CTL_STOP when the outcome is
 * final (CTL_ANSWERED, CTL_DENIED, CTL_LOST of a request that is not idempotent),
 * CTL_RETRY when another attempt may succeed.
 */
enum ctl_verdict ctl_retry_record(struct ctl_retry *r, enum ctl_outcome o, const char *leader);

#endif
