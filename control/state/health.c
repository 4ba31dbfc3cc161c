/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster/region.h"
#include "common/errors.h"
#include "common/verify.h"
#include "health.h"

#define MSG_F_GRANT   0x01u
#define MSG_F_REGION  0x02u
#define MSG_F_DPALIVE 0x04u
#define MSG_F_REVOKED 0x08u
#define MSG_F_ALL     0x0fu
#define NS_PER_MS     1000000u

uint64_t
health_stretch(uint64_t d_ns)
{
	/* d (1 + rho) / (1 - rho) with rho = ppm / 1e6; 128-bit so no duration overflows. */
	unsigned __int128 num = (unsigned __int128)d_ns * (1000000u + HEALTH_DRIFT_PPM);
	uint64_t den = 1000000u - HEALTH_DRIFT_PPM;
	unsigned __int128 q = (num + den - 1) / den;

	ASSERT(HEALTH_DRIFT_PPM < 1000000u);
	return q > UINT64_MAX ? UINT64_MAX : (uint64_t)q;
}

static void
put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void
put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint16_t
get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/*
 * Layout (little-endian host order, as every control-plane frame): 0 kind, 1 version,
 * 2 flags, 3 zero, 4 u16 serving, 6 u16 binary_port, 8 u64 from, 16 u64 term, 24 u64
 * send_ns, 32 u32 hb_age_ms, 36 u32 workers, 40 u32 partitions, 44 u32 ipv4_be, 48 mac[6],
 * 54 u16 memcached_port, 56 u64 applied_epoch, 64..87 zero.
 */
void
health_msg_encode(const struct health_msg *m, uint8_t buf[HEALTH_MSG_BYTES])
{
	const struct health_report *r = &m->report;
	uint8_t flags =
	        (uint8_t)((m->grant ? MSG_F_GRANT : 0) | (r->has_region ? MSG_F_REGION : 0) |
	                  (r->dp_alive ? MSG_F_DPALIVE : 0) | (r->revoked ? MSG_F_REVOKED : 0));

	ASSERT(m->kind == HEALTH_PING || m->kind == HEALTH_ECHO);
	ASSERT(r->serving < SP_DP_SERVING_LAST);
	memset(buf, 0, HEALTH_MSG_BYTES);
	buf[0] = m->kind;
	buf[1] = HEALTH_MSG_VERSION;
	buf[2] = flags;
	put16(buf + 4, r->serving);
	put16(buf + 6, r->binary_port);
	put64(buf + 8, m->from);
	put64(buf + 16, m->term);
	put64(buf + 24, m->send_ns);
	put32(buf + 32, r->hb_age_ms);
	put32(buf + 36, r->workers);
	put32(buf + 40, r->partitions);
	put32(buf + 44, r->ipv4_be);
	memcpy(buf + 48, r->mac, 6);
	put16(buf + 54, r->memcached_port);
	put64(buf + 56, r->applied_epoch);
}

int
health_msg_decode(const uint8_t *buf, size_t len, struct health_msg *m)
{
	struct health_report *r = &m->report;

	memset(m, 0, sizeof(*m));
	if (len != HEALTH_MSG_BYTES || buf[1] != HEALTH_MSG_VERSION || buf[3] != 0)
		return -SP_EMALFORMED;
	if (buf[0] != HEALTH_PING && buf[0] != HEALTH_ECHO)
		return -SP_EMALFORMED;
	if (buf[2] & ~MSG_F_ALL)
		return -SP_EMALFORMED;
	for (size_t i = 64; i < HEALTH_MSG_BYTES; i++)
		if (buf[i] != 0)
			return -SP_EMALFORMED;
	m->kind = buf[0];
	m->grant = buf[2] & MSG_F_GRANT;
	r->has_region = buf[2] & MSG_F_REGION;
	r->dp_alive = buf[2] & MSG_F_DPALIVE;
	r->revoked = buf[2] & MSG_F_REVOKED;
	r->serving = get16(buf + 4);
	r->binary_port = get16(buf + 6);
	m->from = get64(buf + 8);
	m->term = get64(buf + 16);
	m->send_ns = get64(buf + 24);
	r->hb_age_ms = get32(buf + 32);
	r->workers = get32(buf + 36);
	r->partitions = get32(buf + 40);
	r->ipv4_be = get32(buf + 44);
	memcpy(r->mac, buf + 48, 6);
	r->memcached_port = get16(buf + 54);
	r->applied_epoch = get64(buf + 56);
	if (r->serving >= SP_DP_SERVING_LAST || m->from == 0 || m->from > UINT32_MAX)
		return -SP_EMALFORMED;
	if (m->kind == HEALTH_PING && m->grant)
		return -SP_EMALFORMED; /* only an echo grants */
	return 0;
}

void
health_init(struct health *h, const struct health_params *prm)
{
	ASSERT(prm->lease_ns > 0);
	ASSERT(prm->failure_timeout_ns > 0);
	memset(h, 0, sizeof(*h));
	h->prm = *prm;
}

void
health_become_leader(struct health *h, uint64_t term, uint64_t now)
{
	ASSERT(now > 0);
	h->leader_since_ns = now;
	h->term = term;
	for (uint32_t i = 0; i < h->n; i++) {
		struct health_peer *p = &h->peers[i];

		p->last_ping_ns = now;
		p->last_grant_ns = 0;
		p->revoked_seen_ns = 0;
		p->suspect_since_ns = 0;
		p->healthy_since_ns = 0;
		p->echo_send_ns = 0;
		p->need_current = true;
	}
	ASSERT(health_check_invariants(h));
}

void
health_step_down(struct health *h)
{
	h->leader_since_ns = 0;
	for (uint32_t i = 0; i < h->n; i++)
		h->peers[i].echo_send_ns = 0;
}

const struct health_peer *
health_peer_find(const struct health *h, uint64_t id)
{
	for (uint32_t i = 0; i < h->n; i++)
		if (h->peers[i].id == id)
			return &h->peers[i];
	return NULL;
}

struct health_peer *
health_peer_get(struct health *h, uint64_t id)
{
	struct health_peer *p = (struct health_peer *)health_peer_find(h, id);

	ASSERT(id != 0);
	if (p != NULL)
		return p;
	if (h->n == SP_MEMBERS_MAX)
		return NULL;
	p = &h->peers[h->n++];
	memset(p, 0, sizeof(*p));
	p->id = id;
	/* A member first seen by a leader gets a full failure timeout from then. */
	p->last_ping_ns = h->leader_since_ns;
	p->need_current = true;
	return p;
}

void
health_forget(struct health *h, uint64_t id)
{
	for (uint32_t i = 0; i < h->n; i++) {
		if (h->peers[i].id == id) {
			h->peers[i] = h->peers[--h->n];
			return;
		}
	}
}

void
health_on_ping(struct health *h, uint64_t id, uint64_t now, const struct health_report *r)
{
	struct health_peer *p = health_peer_get(h, id);

	if (p == NULL)
		return;
	p->have_report = true;
	p->rep = *r;
	p->last_ping_ns = now;
	if (r->revoked)
		p->revoked_seen_ns = now;
}

void
health_on_self(struct health *h, uint64_t id, uint64_t now, const struct health_report *r)
{
	health_on_ping(h, id, now, r);
}

bool
health_settled(const struct health *h, uint64_t now)
{
	if (h->leader_since_ns == 0)
		return false;
	return now >= h->leader_since_ns + health_stretch(2 * h->prm.lease_ns) + h->prm.margin_ns;
}

static bool
void_since_grant(const struct health *h, const struct health_peer *p, uint64_t now)
{
	if (!health_settled(h, now))
		return false;
	if (p == NULL || p->last_grant_ns == 0)
		return true; /* this leader never granted it; earlier grants are over */
	if (p->revoked_seen_ns > p->last_grant_ns)
		return true; /* it revoked its lease and takes no grant older than that */
	return now >= p->last_grant_ns + health_stretch(h->prm.lease_ns) + h->prm.margin_ns;
}

bool
health_lease_void(const struct health *h, uint64_t id, uint64_t now)
{
	return void_since_grant(h, health_peer_find(h, id), now);
}

void
health_judge(struct health *h, const struct health_member_view *m, uint64_t now,
             struct health_verdict *v)
{
	struct health_peer *p = health_peer_get(h, m->id);
	const struct health_report *r;

	memset(v, 0, sizeof(*v));
	if (p == NULL) {
		snprintf(v->why, sizeof(v->why), "too many members tracked");
		return;
	}
	r = &p->rep;
	v->healthy = false;
	if (!m->is_self && now - p->last_ping_ns >= h->prm.failure_timeout_ns) {
		snprintf(v->why, sizeof(v->why), "no word from its control plane for %llu ms",
		         (unsigned long long)((now - p->last_ping_ns) / NS_PER_MS));
	} else if (!p->have_report) {
		snprintf(v->why, sizeof(v->why), "no report from its control plane yet");
	} else if (r->has_region && !r->dp_alive) {
		if (r->hb_age_ms == UINT32_MAX)
			snprintf(v->why, sizeof(v->why), "no dataplane heartbeat");
		else
			snprintf(v->why, sizeof(v->why),
			         "dataplane heartbeat %u ms old (timeout %llu ms)", r->hb_age_ms,
			         (unsigned long long)(h->prm.failure_timeout_ns / NS_PER_MS));
	} else if (r->has_region && r->partitions != m->partitions) {
		snprintf(v->why, sizeof(v->why),
		         "mismatch: dataplane runs --partitions %u, the cluster has %u; restart it "
		         "with --partitions %u",
		         r->partitions, m->partitions, m->partitions);
	} else if (r->has_region && m->workers != 0 && r->workers != m->workers) {
		snprintf(v->why, sizeof(v->why),
		         "mismatch: dataplane runs %u workers, the cluster knows %u (its control "
		         "plane reports the change)",
		         r->workers, m->workers);
	} else if (r->has_region && r->serving == SP_DP_REMOVED) {
		snprintf(v->why, sizeof(v->why), "dataplane says this node was removed");
	} else {
		v->healthy = true;
	}
	if (v->healthy) {
		p->suspect_since_ns = 0;
		if (p->healthy_since_ns == 0)
			p->healthy_since_ns = now;
	} else {
		p->healthy_since_ns = 0;
		if (p->suspect_since_ns == 0)
			p->suspect_since_ns = now;
	}
	/* It must run every map that took partitions from it (else it could still serve
	 * them with an older one). */
	if (p->need_current && r->has_region && r->applied_epoch >= m->epoch) {
		p->need_current = false;
		p->need_epoch = SP_MAX(p->need_epoch, m->epoch);
	}
	bool epoch_ok = !r->has_region || (!p->need_current && r->applied_epoch >= p->need_epoch);
	v->grant = v->healthy && !m->down && h->leader_since_ns != 0 && epoch_ok;
	p->grant_ok = v->grant;
	v->lease_void = !v->grant && void_since_grant(h, p, now);
	v->propose_down = !m->down && !v->healthy && v->lease_void;
	v->propose_up = m->down && v->healthy && now - p->healthy_since_ns >= h->prm.hold_down_ns;
	ASSERT(!(v->grant && v->lease_void));
	ASSERT(!(v->propose_down && v->propose_up));
}

void
health_granted(struct health *h, uint64_t id, uint64_t now)
{
	struct health_peer *p = health_peer_get(h, id);

	if (p != NULL)
		p->last_grant_ns = now;
}

void
health_took(struct health *h, uint64_t id, uint64_t epoch)
{
	struct health_peer *p = id != 0 ? health_peer_get(h, id) : NULL;

	if (p != NULL && epoch > p->need_epoch)
		p->need_epoch = epoch;
}

void
health_on_echo(struct health *h, uint64_t id, uint64_t send_ns)
{
	struct health_peer *p = health_peer_get(h, id);

	if (p != NULL && send_ns > p->echo_send_ns)
		p->echo_send_ns = send_ns;
}

uint64_t
health_leader_lease(const struct health *h, uint64_t self, const uint64_t *voters, uint32_t n,
                    uint64_t now)
{
	uint64_t t[SP_MEMBERS_MAX];
	uint32_t k = 0, quorum = n / 2 + 1;

	ASSERT(n <= SP_MEMBERS_MAX);
	if (n == 0 || h->leader_since_ns == 0)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct health_peer *p = health_peer_find(h, voters[i]);

		if (voters[i] == self)
			t[k++] = now;
		else if (p != NULL && p->echo_send_ns != 0)
			t[k++] = p->echo_send_ns;
	}
	if (k < quorum)
		return 0;
	/* The quorum-th most recent send time: a quorum answered pings at least that new. */
	for (uint32_t i = 0; i < quorum; i++)
		for (uint32_t j = i + 1; j < k; j++)
			if (t[j] > t[i]) {
				uint64_t x = t[i];
				t[i] = t[j];
				t[j] = x;
			}
	return t[quorum - 1] + h->prm.lease_ns;
}

bool
health_check_invariants(const struct health *h)
{
	if (h->n > SP_MEMBERS_MAX)
		return false;
	for (uint32_t i = 0; i < h->n; i++) {
		const struct health_peer *p = &h->peers[i];

		if (p->id == 0)
			return false;
		if (p->suspect_since_ns != 0 && p->healthy_since_ns != 0)
			return false;
		for (uint32_t j = i + 1; j < h->n; j++)
			if (h->peers[j].id == p->id)
				return false;
	}
	return true;
}
