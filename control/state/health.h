/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ownership leases and failure detection: pure logic, no I/O, no clock (every function is
 * given `now`, a CLOCK_MONOTONIC time of the host that calls it). docs/control-plane.md
 * ("Leases", "Failure detection") gives the argument; the short form:
 *
 *   - every control plane pings every other member each HEALTH_PING_TICKS; a ping carries
 *     the sender's term, its own send time and a report on its dataplane. The answer (an
 *     echo) returns the send time, the responder's term, and from the leader a grant;
 *   - a member's lease runs for lease_ns of its own clock from the *send time* of a ping
 *     the leader granted; the leader's own lease runs from the send time of the ping that
 *     completed a quorum of same-term echoes. A grant is only given while the leader holds
 *     its own lease, the member is healthy, not down, and its dataplane runs the current
 *     map;
 *   - the leader takes a partition from a node only once that node cannot hold a lease
 *     any more: lease_ns, stretched for clock-rate drift, after the last grant this leader
 *     gave it (or at once when its control plane reported its lease revoked since), and
 *     never before 2 x lease_ns (stretched) after it became leader, which covers grants of
 *     earlier leaders.
 */
#ifndef SP_CONTROL_HEALTH_H
#define SP_CONTROL_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/partmap.h"

#define HEALTH_DRIFT_PPM   10000u /* assumed bound on clock-rate difference: 1% */
#define HEALTH_MSG_BYTES   88u    /* encoded ping or echo */
#define HEALTH_MSG_VERSION 1u
#define HEALTH_WHY_MAX     160u

struct health_params {
	uint64_t lease_ns;           /* a grant lets a node serve this long (its own clock) */
	uint64_t failure_timeout_ns; /* silence, or dataplane heartbeat age, that is a failure */
	uint64_t hold_down_ns;       /* healthy this long before a down node is up again */
	uint64_t margin_ns;          /* the dataplane's check period + table swap, and more */
};

/* d stretched to hold on any host whose clock rate differs by HEALTH_DRIFT_PPM at most:
 * d (1 + rho) / (1 - rho), rounded up. */
uint64_t health_stretch(uint64_t d_ns);

/* What a control plane says of its dataplane, in every ping. */
struct health_report {
	bool has_region;  /* false: no --state-region; the dataplane flags are trusted */
	bool dp_alive;    /* heartbeat younger than the failure timeout, process present */
	bool revoked;     /* this control plane revoked its node's lease (dataplane dead) */
	uint16_t serving; /* enum sp_dp_serving */
	uint32_t hb_age_ms;
	uint32_t workers;
	uint32_t partitions;
	uint32_t ipv4_be;
	uint8_t mac[6];
	uint16_t binary_port;
	uint16_t memcached_port;
	uint64_t applied_epoch; /* the map epoch its dataplane installed */
};

enum health_msg_kind {
	HEALTH_PING = 1,
	HEALTH_ECHO = 2,
};

struct health_msg {
	uint8_t kind;                /* enum health_msg_kind */
	bool grant;                  /* ECHO: the leader grants the pinger a lease from send_ns */
	uint64_t from;               /* sender's member id */
	uint64_t term;               /* sender's Raft term */
	uint64_t send_ns;            /* the pinger's clock when it sent the ping (echoed back) */
	struct health_report report; /* PING only (zero in an echo) */
};

/* Encodes m into buf[HEALTH_MSG_BYTES]. Can't fail. */
void health_msg_encode(const struct health_msg *m, uint8_t buf[HEALTH_MSG_BYTES]);

/* Decodes and validates. Returns 0, or -SP_EMALFORMED (length, version, kind, flags, a
 * serving value out of range). Never reads past len. */
int health_msg_decode(const uint8_t *buf, size_t len, struct health_msg *m);

/* The leader's view of one member. */
struct health_peer {
	uint64_t id;
	bool have_report;
	struct health_report rep;
	uint64_t last_ping_ns;     /* arrival of its latest ping (or when this leader began) */
	uint64_t last_grant_ns;    /* latest grant this leader gave it (0: none) */
	uint64_t revoked_seen_ns;  /* arrival of a report saying its lease is revoked */
	uint64_t suspect_since_ns; /* 0: not suspected */
	uint64_t healthy_since_ns; /* 0: not healthy now */
	uint64_t echo_send_ns;     /* latest send time it echoed in our term (leader lease) */
	bool grant_ok;             /* the latest verdict would grant it */
	/* Its dataplane must have installed this map epoch to be granted: the latest map that
	 * took partitions from it (health_took). need_current: until it reports the cluster's
	 * epoch once (a new leader does not know which maps took what). */
	uint64_t need_epoch;
	bool need_current;
};

/* What the leader decides about one member now. */
struct health_verdict {
	bool healthy;             /* pings fresh, dataplane alive with a matching configuration */
	bool grant;               /* renew its lease */
	bool lease_void;          /* it cannot be serving: its partitions may go to others */
	bool propose_down;        /* commit "down" */
	bool propose_up;          /* commit "up" (after the hold-down) */
	char why[HEALTH_WHY_MAX]; /* when not healthy: why, and what to change */
};

/* What the cluster says of the member being judged. */
struct health_member_view {
	uint64_t id;
	bool is_self;        /* the leader itself (no pings; its report is local) */
	bool down;           /* committed down */
	uint16_t workers;    /* committed dataplane worker count (0: none known) */
	uint32_t partitions; /* the cluster's P */
	uint64_t epoch;      /* the committed map epoch */
};

struct health {
	struct health_params prm;
	uint64_t leader_since_ns; /* 0: not the leader */
	uint64_t term;
	uint32_t n;
	struct health_peer peers[SP_MEMBERS_MAX];
};

/* Starts empty with these parameters (lease_ns and failure_timeout_ns nonzero). */
void health_init(struct health *h, const struct health_params *prm);

/* Leadership in `term` begins at now: every member gets a full failure timeout from now,
 * and nobody was granted anything by this leader yet. */
void health_become_leader(struct health *h, uint64_t term, uint64_t now);
void health_step_down(struct health *h);

/* The record of id, created when absent (NULL when SP_MEMBERS_MAX are kept already). */
struct health_peer *health_peer_get(struct health *h, uint64_t id);
const struct health_peer *health_peer_find(const struct health *h, uint64_t id);

/* Forgets members no longer in the cluster whose leases are void by now. */
void health_forget(struct health *h, uint64_t id);

/* A ping from id arrived at now with its report. */
void health_on_ping(struct health *h, uint64_t id, uint64_t now, const struct health_report *r);

/* The leader's own report (it does not ping itself). */
void health_on_self(struct health *h, uint64_t id, uint64_t now, const struct health_report *r);

/* True once a new leader has waited out every earlier leader's grants. */
bool health_settled(const struct health *h, uint64_t now);

/*
 * Judges one member at now and updates its suspect/healthy times. The leader calls it
 * once per tick per member, and records a grant it sends with health_granted.
 */
void health_judge(struct health *h, const struct health_member_view *m, uint64_t now,
                  struct health_verdict *v);
void health_granted(struct health *h, uint64_t id, uint64_t now);

/* The leader proposes map `epoch`, which takes partitions from id (moved or fenced): id
 * gets no grant until its dataplane installed it. */
void health_took(struct health *h, uint64_t id, uint64_t epoch);

/*
 * Whether a node that is no longer judged (removed) can still hold a lease: false once
 * the leader is settled and lease_ns (stretched) + margin passed since its last grant.
 */
bool health_lease_void(const struct health *h, uint64_t id, uint64_t now);

/*
 * The leader lease: the send time of the ping that completed a quorum of same-term echoes
 * from voters (self counts as now), plus lease_ns. voters[0..n) are the voter ids, self
 * among them. Returns 0 when no quorum echoed yet.
 */
uint64_t health_leader_lease(const struct health *h, uint64_t self, const uint64_t *voters,
                             uint32_t n, uint64_t now);

/* Records an echo of a ping we sent at send_ns from a same-term member. */
void health_on_echo(struct health *h, uint64_t id, uint64_t send_ns);

/* Checks the invariants of h (for asserts and tests). */
bool health_check_invariants(const struct health *h);

#endif
