/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-loadgen: drives shardplane-dp in a closed loop over a DPDK port (memif in
 * practice: the two processes share memory, so the kernel is not in the path) and reports
 * the run through libcbench, so its JSON is Google Benchmark's and compare.py reads it.
 *
 * The loop keeps `window` requests in flight in `window / rpd` slots. Each slot owns one
 * pre-built mbuf (Ethernet, IPv4 and UDP headers written once); sending a slot rewrites
 * its payload in place and lends the mbuf to the driver with an extra reference, so the
 * hot path never allocates. A request id is (generation << 16 | slot << 5 | index): a
 * reply names its slot and request directly, and a reply from an earlier generation (one
 * that came after its timeout) is recognised as late. Latency is taken with the TSC: the
 * slot's send time against the time its replies' burst was received.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_udp.h>

#include "cbench/cbench.h"
#include "client/client.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/verify.h"
#include "lg_dist.h"
#include "lg_hist.h"
#include "lg_options.h"
#include "wire/binproto.h"

#define LG_BURST            32u   /* frames per rx/tx burst */
#define LG_RX_DESC          1024u /* rx ring descriptors */
#define LG_TX_DESC          1024u /* tx ring descriptors */
#define LG_POOL_EXTRA       4096u /* mbufs beyond the slots: rx ring, bursts, ARP */
#define LG_POOL_CACHE       256u
#define LG_HDR_LEN          42u /* Ethernet 14 + IPv4 20 + UDP 8 */
#define LG_LINK_WAIT_MS     10000u
#define LG_ARP_TRIES        20u
#define LG_ARP_WAIT_MS      100u
#define LG_SCAN_INTERVAL_US 1000u /* timeout scan period */
#define LG_PRELOAD_S_MAX    600u  /* the preload phase gives up after this */
#define LG_DRAIN_EXTRA_MS   1000u /* past deadline + timeout, a phase ends regardless */
#define LG_NAME_MAX         240u
#define LG_NODES_MAX        SP_BP_ROUTE_NODES_MAX
/* Cluster mode: keys drawn per further request of a datagram to find one with the same
 * owner as its first; past it the datagram goes with fewer requests (counted). */
#define LG_CLUSTER_DRAWS_MAX 64u

SP_STATIC_ASSERT(LG_SLOTS_MAX <= (1u << 11), "slot index has 11 bits in the request id");
SP_STATIC_ASSERT(SP_BP_REQS_MAX <= 32u, "request index has 5 bits in the request id");
SP_STATIC_ASSERT(LG_HDR_LEN + SP_BP_PAYLOAD_MAX <= RTE_MBUF_DEFAULT_DATAROOM,
                 "a request frame fits in one mbuf segment");

enum lg_slot_state {
	LG_SLOT_IDLE = 0, /* not in use (stopping, or beyond the phase's work) */
	LG_SLOT_QUEUED,   /* waiting in the send queue */
	LG_SLOT_INFLIGHT, /* sent, replies pending */
};

struct lg_slot {
	struct rte_mbuf *m; /* pre-built frame; we hold one reference for the run */
	uint64_t sent_tsc;
	uint32_t mask;     /* requests still unanswered (bit i = request i) */
	uint32_t set_mask; /* requests that are SETs */
	uint16_t gen;
	uint8_t nreq;
	uint8_t state; /* enum lg_slot_state */
	uint16_t node; /* cluster mode: the map's node the datagram went to */
};

/* Cluster mode: a node of the map and what it answered in the phase. */
struct lg_node {
	uint32_t ip_be;
	struct rte_ether_addr mac;
	uint64_t sent_reqs;
	uint64_t replies;
	uint64_t errors;
};

struct lg_counters {
	uint64_t sent_reqs;
	uint64_t sent_dgrams;
	uint64_t replies;
	uint64_t done_dgrams;
	uint64_t losses;    /* requests unanswered after the timeout */
	uint64_t late;      /* replies for a request already counted lost */
	uint64_t unknown;   /* replies naming no request of ours, or a duplicate */
	uint64_t hits;      /* GET OK */
	uint64_t misses;    /* GET NOT_FOUND */
	uint64_t errors;    /* any other status, a wrong opcode echo, a wrong value length */
	uint64_t value_bad; /* GET OK with a value of the wrong length (also in errors) */
	uint64_t rx_bad;    /* frames for us that failed a check (IP, UDP, protocol) */
	uint64_t rx_other;  /* frames not for us */
	uint64_t tx_retries;
	uint64_t tx_busy;      /* a slot's mbuf still held by the driver when due */
	uint64_t short_dgrams; /* cluster mode: datagrams sent with fewer than rpd requests */
	uint64_t status[SP_BP_ST_LAST];
};

enum lg_phase {
	LG_PHASE_PRELOAD,
	LG_PHASE_MEASURE,
};

struct lg_engine {
	const struct lg_options *o;
	uint16_t port;
	struct rte_mempool *pool;
	struct rte_ether_addr src_mac;
	struct rte_ether_addr dst_mac;
	struct lg_slot *slots;
	uint32_t nslots;
	uint32_t inflight;
	uint32_t preload_rpd; /* SETs per preload datagram (fewer than rpd when they are big) */
	/* Send queue: a FIFO of slot indices; each slot is in it at most once. */
	uint32_t queue[LG_SLOTS_MAX];
	uint32_t q_head;
	uint32_t q_len;
	struct lg_rng rng;
	struct lg_zipf zipf;
	enum lg_phase phase;
	uint32_t next_key;   /* preload: the next key to SET */
	uint64_t issue_left; /* requests the phase may still send */
	bool stopping;
	uint64_t tsc_hz;
	uint64_t timeout_tsc;
	double ns_per_tsc;
	uint64_t start_tsc;
	uint64_t last_reply_tsc;
	struct lg_counters c;
	struct lg_hist hist;
	uint8_t value[SP_BP_VALUE_MAX];
	/* Cluster mode: the map (lib/client, fetched from the seed) and its nodes. */
	struct sp_client *client;
	uint32_t node_count;
	struct lg_node nodes[LG_NODES_MAX];
	/* Results of the last phase. */
	double elapsed_s;
	uint64_t preload_losses;
	double preload_rate;
};

static volatile sig_atomic_t lg_stop_signal;

static void
on_signal(int sig)
{
	(void)sig;
	lg_stop_signal = 1;
}

/* ---- Send path ----------------------------------------------------------------------- */

static void
queue_push(struct lg_engine *e, uint32_t idx)
{
	ASSERT(e->q_len < e->nslots);
	ASSERT(e->slots[idx].state != LG_SLOT_QUEUED);
	e->queue[(e->q_head + e->q_len) % e->nslots] = idx;
	e->q_len++;
	e->slots[idx].state = LG_SLOT_QUEUED;
}

/* The key and opcode of the next request of the phase. */
static uint32_t
next_request(struct lg_engine *e, uint8_t *op)
{
	const struct lg_options *o = e->o;

	if (e->phase == LG_PHASE_PRELOAD) {
		ASSERT(e->next_key < o->keys);
		*op = SP_BP_OP_SET;
		return e->next_key++;
	}
	*op = (o->get_pct == 100 || lg_rng_below(&e->rng, 100) < o->get_pct) ? SP_BP_OP_GET
	                                                                     : SP_BP_OP_SET;
	if (o->dist == LG_DIST_ZIPF)
		return lg_zipf_draw(&e->zipf, &e->rng);
	return lg_rng_below(&e->rng, o->keys);
}

/*
 * Cluster mode: request i of slot s is to use `key` (already named). The first one sets the
 * datagram's destination (its owner under the map); a later one must have the same owner,
 * so keys are drawn again (at most LG_CLUSTER_DRAWS_MAX times; the preload never draws:
 * it sends one key per datagram). Returns false when none was found: the datagram goes
 * with the requests it has.
 */
static bool
cluster_key(struct lg_engine *e, struct lg_slot *s, uint32_t i, uint8_t *key, uint8_t *op,
            uint32_t *dst_ip_be, uint16_t *dst_port)
{
	const struct lg_options *o = e->o;
	uint32_t ip = 0;
	uint16_t port = 0;
	int node = sp_client_dest_for_key(e->client, key, o->key_size, &ip, &port);

	/* The map was there at start and a client never forgets one. */
	VERIFY(node >= 0 && (uint32_t)node < e->node_count);
	if (i == 0) {
		s->node = (uint16_t)node;
		*dst_ip_be = ip;
		*dst_port = port;
		return true;
	}
	ASSERT(e->phase == LG_PHASE_MEASURE);
	for (uint32_t d = 0; d < LG_CLUSTER_DRAWS_MAX; d++) {
		if (ip == *dst_ip_be && port == *dst_port)
			return true;
		lg_key_name(key, o->key_size, next_request(e, op));
		node = sp_client_dest_for_key(e->client, key, o->key_size, &ip, &port);
		VERIFY(node >= 0 && (uint32_t)node < e->node_count);
	}
	return ip == *dst_ip_be && port == *dst_port;
}

/*
 * Writes up to `budget` requests (at most rpd) into slot idx's frame and fixes the IPv4
 * and UDP headers. Returns the requests written (>= 1). The options were checked so that
 * rpd requests always fit: a builder refusal is a bug.
 */
static uint32_t
fill_slot(struct lg_engine *e, uint32_t idx, uint64_t budget)
{
	struct lg_slot *s = &e->slots[idx];
	const struct lg_options *o = e->o;
	uint8_t *frame = rte_pktmbuf_mtod(s->m, uint8_t *);
	uint8_t key[SP_BP_KEY_MAX];
	struct sp_bp_builder b;
	uint32_t rpd = e->phase == LG_PHASE_PRELOAD ? e->preload_rpd : o->rpd;
	uint32_t n = (uint32_t)SP_MIN((uint64_t)rpd, budget);
	uint32_t dst_ip_be = 0;
	uint16_t dst_port = 0;

	ASSERT(n >= 1);
	ASSERT(rte_mbuf_refcnt_read(s->m) == 1);
	s->gen++;
	sp_bp_builder_init(&b, frame + LG_HDR_LEN, SP_BP_PAYLOAD_MAX, false,
	                   ((uint64_t)s->gen << 16) | idx);
	s->set_mask = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct sp_bp_req req;
		memset(&req, 0, sizeof(req));
		lg_key_name(key, o->key_size, next_request(e, &req.opcode));
		if (o->cluster && !cluster_key(e, s, i, key, &req.opcode, &dst_ip_be, &dst_port)) {
			e->c.short_dgrams++;
			n = i;
			break;
		}
		req.key = key;
		req.key_len = (uint16_t)o->key_size;
		req.request_id = ((uint32_t)s->gen << 16) | (idx << 5) | i;
		if (req.opcode == SP_BP_OP_SET) {
			req.value = e->value;
			req.value_len = o->value_size;
			s->set_mask |= 1u << i;
		}
		int rc = sp_bp_add_request(&b, &req);
		VERIFY(rc == 0);
	}
	uint32_t len = sp_bp_builder_finish(&b);
	ASSERT(n >= 1);
	s->nreq = (uint8_t)n;
	s->mask = n == 32 ? UINT32_MAX : (1u << n) - 1u;

	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + RTE_ETHER_HDR_LEN);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);
	if (o->cluster) {
		struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;

		rte_ether_addr_copy(&e->nodes[s->node].mac, &eth->dst_addr);
		ip->dst_addr = dst_ip_be;
		udp->dst_port = rte_cpu_to_be_16(dst_port);
		e->nodes[s->node].sent_reqs += n;
	}
	ip->total_length = rte_cpu_to_be_16((uint16_t)(20u + 8u + len));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(8u + len));
	udp->dgram_cksum = 0;
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	s->m->data_len = (uint16_t)(LG_HDR_LEN + len);
	s->m->pkt_len = LG_HDR_LEN + len;
	return n;
}

/*
 * Sends up to one burst of queued slots. A slot whose mbuf the driver still holds stays
 * at the head of the queue until the driver lets it go (counted in tx_busy); frames the
 * driver does not take are sent again on the next call (tx_retries).
 */
static void
tx_queued(struct lg_engine *e)
{
	struct rte_mbuf *pkts[LG_BURST];
	uint32_t idx[LG_BURST];
	uint32_t reqs[LG_BURST];
	uint32_t k = 0;
	uint64_t budget = e->issue_left;

	while (k < LG_BURST && k < e->q_len && budget > 0) {
		uint32_t i = e->queue[(e->q_head + k) % e->nslots];
		if (rte_mbuf_refcnt_read(e->slots[i].m) != 1) {
			e->c.tx_busy++;
			break;
		}
		reqs[k] = fill_slot(e, i, budget);
		budget -= reqs[k];
		rte_mbuf_refcnt_update(e->slots[i].m, 1); /* the driver's reference */
		pkts[k] = e->slots[i].m;
		idx[k] = i;
		k++;
	}
	if (k == 0)
		return;
	uint16_t sent = rte_eth_tx_burst(e->port, 0, pkts, (uint16_t)k);
	uint64_t now = rte_rdtsc();
	for (uint32_t j = 0; j < sent; j++) {
		struct lg_slot *s = &e->slots[idx[j]];
		s->sent_tsc = now;
		s->state = LG_SLOT_INFLIGHT;
		e->issue_left -= reqs[j];
		e->c.sent_reqs += reqs[j];
	}
	for (uint32_t j = sent; j < k; j++) {
		rte_mbuf_refcnt_update(pkts[j], -1);
		/* The preload SETs keys in order: those not sent are filled again next time. */
		if (e->phase == LG_PHASE_PRELOAD)
			e->next_key -= reqs[j];
	}
	e->c.sent_dgrams += sent;
	e->c.tx_retries += k - sent;
	e->inflight += sent;
	e->q_head = (e->q_head + sent) % e->nslots;
	e->q_len -= sent;
	ASSERT(e->inflight <= e->nslots);
}

/* A slot has no request left pending: send it again, or park it when the phase ends. */
static void
slot_done(struct lg_engine *e, uint32_t idx)
{
	struct lg_slot *s = &e->slots[idx];

	ASSERT(s->state == LG_SLOT_INFLIGHT);
	ASSERT(e->inflight > 0);
	e->inflight--;
	s->mask = 0;
	if (e->stopping || e->issue_left == 0)
		s->state = LG_SLOT_IDLE;
	else
		queue_push(e, idx);
}

/* ---- Receive path -------------------------------------------------------------------- */

/* Accounts one decoded reply against its slot. */
static void
on_reply(struct lg_engine *e, const struct sp_bp_reply *r, uint64_t now)
{
	const struct lg_options *o = e->o;
	uint32_t idx = (r->request_id >> 5) & (LG_SLOTS_MAX - 1u);
	uint32_t bit = 1u << (r->request_id & 31u);
	uint16_t gen = (uint16_t)(r->request_id >> 16);

	if (idx >= e->nslots) {
		e->c.unknown++;
		return;
	}
	struct lg_slot *s = &e->slots[idx];
	if (s->state != LG_SLOT_INFLIGHT || gen != s->gen) {
		e->c.late++;
		return;
	}
	if (!(s->mask & bit)) {
		e->c.unknown++; /* a duplicate, or an index past the datagram's requests */
		return;
	}
	s->mask &= ~bit;
	e->c.replies++;
	e->last_reply_tsc = now;
	uint64_t errors_before = e->c.errors;
	ASSERT(r->status < SP_BP_ST_LAST);
	e->c.status[r->status]++;

	uint8_t want = (s->set_mask & bit) ? SP_BP_OP_SET : SP_BP_OP_GET;
	if (r->opcode != want) {
		e->c.errors++;
	} else if (want == SP_BP_OP_GET && r->status == SP_BP_ST_OK) {
		e->c.hits++;
		if (r->value_len != o->value_size) {
			e->c.value_bad++;
			e->c.errors++;
		}
	} else if (want == SP_BP_OP_GET && r->status == SP_BP_ST_NOT_FOUND) {
		e->c.misses++;
	} else if (r->status != SP_BP_ST_OK) {
		e->c.errors++;
	}
	if (o->cluster) {
		e->nodes[s->node].replies++;
		e->nodes[s->node].errors += e->c.errors - errors_before;
	}
	if (e->phase == LG_PHASE_MEASURE)
		lg_hist_record(&e->hist, (uint64_t)((double)(now - s->sent_tsc) * e->ns_per_tsc));
	if (s->mask == 0) {
		e->c.done_dgrams++;
		slot_done(e, idx);
	}
}

/*
 * Echo mode (the I/O baseline): the peer returns our request frames unchanged, so each
 * request in a returned datagram counts as answered with OK. The frame must be exactly
 * one we could have sent: our addresses and ports, a request datagram that decodes.
 */
static void
on_echo(struct lg_engine *e, const struct rte_mbuf *m, uint64_t now)
{
	const struct lg_options *o = e->o;
	const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(frame + RTE_ETHER_HDR_LEN);
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram dg;

	ASSERT(o->echo);
	ASSERT(m->data_len >= LG_HDR_LEN);
	uint32_t udp_len = rte_be_to_cpu_16(udp->dgram_len);
	if (ip->version_ihl != RTE_IPV4_VHL_DEF || ip->src_addr != o->src_ip_be ||
	    ip->dst_addr != o->dst_ip_be || udp->src_port != rte_cpu_to_be_16(o->src_port) ||
	    udp_len < 8u || RTE_ETHER_HDR_LEN + 20u + udp_len > m->data_len) {
		e->c.rx_other++;
		return;
	}
	if (sp_bp_decode_requests(udp + 1, udp_len - 8u, 0, reqs, SP_BP_REQS_MAX, &dg) !=
	    SP_BP_ERR_OK) {
		e->c.rx_bad++;
		return;
	}
	for (uint32_t i = 0; i < dg.count; i++) {
		struct sp_bp_reply r;
		memset(&r, 0, sizeof(r));
		r.request_id = reqs[i].request_id;
		r.opcode = reqs[i].opcode;
		r.status = SP_BP_ST_OK;
		r.value_len = reqs[i].opcode == SP_BP_OP_GET ? o->value_size : 0;
		on_reply(e, &r, now);
	}
}

/* Whether a reply from ip_be is from a node we sent to: the target, or in cluster mode any
 * node of the map. */
static bool
from_node(const struct lg_engine *e, uint32_t ip_be)
{
	if (!e->o->cluster)
		return ip_be == e->o->dst_ip_be;
	for (uint32_t i = 0; i < e->node_count; i++)
		if (e->nodes[i].ip_be == ip_be)
			return true;
	return false;
}

/*
 * Checks one received frame and, when it is a reply datagram for us, accounts its
 * replies. Every length is checked against the frame before it is used.
 */
static void
on_frame(struct lg_engine *e, struct rte_mbuf *m, uint64_t now)
{
	const struct lg_options *o = e->o;
	struct sp_bp_reply replies[SP_BP_REQS_MAX];
	struct sp_bp_dgram dg;

	if (m->nb_segs != 1 || m->data_len < LG_HDR_LEN) {
		e->c.rx_other++;
		return;
	}
	const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ether_hdr *eth = (const struct rte_ether_hdr *)frame;
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(eth + 1);
	if (o->echo) {
		on_echo(e, m, now);
		return;
	}
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
	    ip->next_proto_id != IPPROTO_UDP || ip->dst_addr != o->src_ip_be) {
		e->c.rx_other++;
		return;
	}
	uint32_t ihl = (uint32_t)(ip->version_ihl & 0x0f) * 4u;
	uint32_t ip_len = rte_be_to_cpu_16(ip->total_length);
	if ((ip->version_ihl >> 4) != 4 || ihl < 20 || ip_len < ihl + 8u ||
	    RTE_ETHER_HDR_LEN + ip_len > m->data_len || !from_node(e, ip->src_addr)) {
		e->c.rx_bad++;
		return;
	}
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)((const uint8_t *)ip + ihl);
	uint32_t udp_len = rte_be_to_cpu_16(udp->dgram_len);
	if (udp->dst_port != rte_cpu_to_be_16(o->src_port) || udp_len < 8u ||
	    udp_len > ip_len - ihl) {
		e->c.rx_bad++;
		return;
	}
	if (udp->dgram_cksum != 0) {
		/* Over the pseudo header and the datagram, a correct checksum sums to 0xffff. */
		uint32_t sum = (uint32_t)rte_raw_cksum(udp, udp_len) + rte_ipv4_phdr_cksum(ip, 0);
		sum = (sum & 0xffffu) + (sum >> 16);
		sum = (sum & 0xffffu) + (sum >> 16);
		if (sum != 0xffffu) {
			e->c.rx_bad++;
			return;
		}
	}
	enum sp_bp_err err =
	        sp_bp_decode_replies(udp + 1, udp_len - 8u, replies, SP_BP_REQS_MAX, &dg);
	if (err != SP_BP_ERR_OK) {
		e->c.rx_bad++;
		return;
	}
	for (uint32_t i = 0; i < dg.count; i++)
		on_reply(e, &replies[i], now);
}

static void
rx_burst(struct lg_engine *e)
{
	struct rte_mbuf *pkts[LG_BURST];
	uint16_t n = rte_eth_rx_burst(e->port, 0, pkts, LG_BURST);

	if (n == 0)
		return;
	uint64_t now = rte_rdtsc();
	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		on_frame(e, pkts[i], now);
	}
	rte_pktmbuf_free_bulk(pkts, n);
}

/* Counts as lost every request of a slot older than the timeout, then reuses the slot. */
static void
scan_timeouts(struct lg_engine *e, uint64_t now)
{
	for (uint32_t i = 0; i < e->nslots && e->inflight > 0; i++) {
		struct lg_slot *s = &e->slots[i];
		if (s->state != LG_SLOT_INFLIGHT)
			continue;
		ASSERT(now >= s->sent_tsc);
		if (now - s->sent_tsc < e->timeout_tsc)
			continue;
		e->c.losses += (uint64_t)__builtin_popcount(s->mask);
		slot_done(e, i);
	}
}

/* ---- Phases -------------------------------------------------------------------------- */

static void
print_progress(const struct lg_engine *e, const struct lg_counters *prev, double t_s, double dt_s)
{
	fprintf(stderr,
	        "loadgen: %s t=%.0fs %.3f Mreq/s %.3f Mdgram/s p50=%.1fus p99=%.1fus "
	        "losses=%" PRIu64 " errors=%" PRIu64 " misses=%" PRIu64 "\n",
	        e->phase == LG_PHASE_PRELOAD ? "preload" : "run", t_s,
	        (double)(e->c.replies - prev->replies) / dt_s / 1e6,
	        (double)(e->c.done_dgrams - prev->done_dgrams) / dt_s / 1e6,
	        (double)lg_hist_quantile(&e->hist, 0.5) / 1e3,
	        (double)lg_hist_quantile(&e->hist, 0.99) / 1e3, e->c.losses, e->c.errors,
	        e->c.misses);
}

/*
 * Runs one phase: the preload (every key SET once) or the measured run (bounded by
 * duration and/or count), then waits for what is in flight (at most the reply timeout).
 * Sets elapsed_s from the first send to the last reply. Never allocates.
 */
static void
run_phase(struct lg_engine *e, enum lg_phase phase)
{
	const struct lg_options *o = e->o;
	uint64_t hz = e->tsc_hz;

	memset(&e->c, 0, sizeof(e->c));
	for (uint32_t i = 0; i < e->node_count; i++) {
		e->nodes[i].sent_reqs = 0;
		e->nodes[i].replies = 0;
		e->nodes[i].errors = 0;
	}
	lg_hist_reset(&e->hist);
	e->phase = phase;
	e->stopping = false;
	e->next_key = 0;
	e->q_head = 0;
	e->q_len = 0;
	ASSERT(e->inflight == 0);
	uint64_t run_s;
	if (phase == LG_PHASE_PRELOAD) {
		e->issue_left = o->keys;
		run_s = LG_PRELOAD_S_MAX;
	} else {
		e->issue_left = o->count != 0 ? o->count : UINT64_MAX;
		run_s = o->duration_s != 0 ? o->duration_s : LG_DURATION_S_MAX;
	}
	for (uint32_t i = 0; i < e->nslots; i++) {
		e->slots[i].state = LG_SLOT_IDLE;
		queue_push(e, i);
	}

	e->start_tsc = rte_rdtsc();
	e->last_reply_tsc = e->start_tsc;
	uint64_t deadline = e->start_tsc + run_s * hz;
	uint64_t hard_end = deadline + e->timeout_tsc + LG_DRAIN_EXTRA_MS * hz / 1000u;
	uint64_t scan_every = hz * LG_SCAN_INTERVAL_US / 1000000u;
	uint64_t next_scan = e->start_tsc + scan_every;
	uint64_t next_progress = e->start_tsc + hz;
	uint64_t last_progress = e->start_tsc;
	struct lg_counters prev = e->c;

	for (;;) {
		uint64_t now = rte_rdtsc();
		if (!e->stopping && (now >= deadline || e->issue_left == 0 || lg_stop_signal)) {
			e->stopping = true;
			/* Queued slots are not sent any more. */
			for (uint32_t k = 0; k < e->q_len; k++)
				e->slots[e->queue[(e->q_head + k) % e->nslots]].state =
				        LG_SLOT_IDLE;
			e->q_len = 0;
		}
		if (e->stopping && e->inflight == 0)
			break;
		if (now >= hard_end) {
			/* Only reachable if the clock jumps: count what is left as lost. */
			scan_timeouts(e, now + e->timeout_tsc);
			break;
		}
		rx_burst(e);
		if (!e->stopping)
			tx_queued(e);
		if (now >= next_scan) {
			/* A fresh reading: slots sent in this iteration are newer than `now`. */
			scan_timeouts(e, rte_rdtsc());
			next_scan = now + scan_every;
		}
		if (o->progress && now >= next_progress) {
			print_progress(e, &prev, (double)(now - e->start_tsc) / (double)hz,
			               (double)(now - last_progress) / (double)hz);
			prev = e->c;
			last_progress = now;
			next_progress = now + hz;
		}
	}
	uint64_t end = SP_MAX(e->last_reply_tsc, e->start_tsc + 1);
	e->elapsed_s = (double)(end - e->start_tsc) / (double)hz;
	ASSERT(e->inflight == 0);
	ASSERT(e->elapsed_s > 0.0);
}

/* ---- Start-up ------------------------------------------------------------------------ */

/* Writes the fixed Ethernet, IPv4 and UDP header fields of a request frame. */
static void
prebuild_frame(const struct lg_engine *e, struct rte_mbuf *m)
{
	const struct lg_options *o = e->o;
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	ASSERT(rte_pktmbuf_tailroom(m) >= LG_HDR_LEN + SP_BP_PAYLOAD_MAX);
	rte_ether_addr_copy(&e->dst_mac, &eth->dst_addr);
	rte_ether_addr_copy(&e->src_mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = o->src_ip_be;
	ip->dst_addr = o->dst_ip_be;
	udp->src_port = rte_cpu_to_be_16(o->src_port);
	udp->dst_port = rte_cpu_to_be_16(o->dst_port);
	m->l2_len = RTE_ETHER_HDR_LEN;
	m->l3_len = sizeof(*ip);
}

/* Configures and starts the port with one queue pair; waits for its link. Returns 0 or <0. */
static int
port_start(struct lg_engine *e)
{
	struct rte_eth_conf conf;
	struct rte_eth_link link;
	uint16_t port = e->port;
	int rc;

	ASSERT(e->pool != NULL);
	if (!rte_eth_dev_is_valid_port(port)) {
		fprintf(stderr,
		        "loadgen: no DPDK port %u: pass a --vdev (e.g. "
		        "net_memif0,role=client,socket=PATH) or --eth-port\n",
		        port);
		return -ENODEV;
	}
	memset(&conf, 0, sizeof(conf));
	rc = rte_eth_dev_configure(port, 1, 1, &conf);
	if (rc == 0)
		rc = rte_eth_rx_queue_setup(port, 0, LG_RX_DESC, rte_eth_dev_socket_id(port), NULL,
		                            e->pool);
	if (rc == 0)
		rc = rte_eth_tx_queue_setup(port, 0, LG_TX_DESC, rte_eth_dev_socket_id(port), NULL);
	if (rc == 0)
		rc = rte_eth_dev_start(port);
	if (rc != 0) {
		fprintf(stderr, "loadgen: port %u: configure/start failed: %s\n", port,
		        rte_strerror(-rc));
		return rc;
	}
	rte_eth_macaddr_get(port, &e->src_mac);
	uint64_t until_ms = sp_mono_ms() + LG_LINK_WAIT_MS;
	do {
		memset(&link, 0, sizeof(link));
		rte_eth_link_get_nowait(port, &link);
		if (link.link_status == RTE_ETH_LINK_UP)
			return 0;
		rte_delay_ms(10);
	} while (sp_mono_ms() < until_ms && !lg_stop_signal);
	fprintf(stderr,
	        "loadgen: port %u: link still down after %u ms: is shardplane-dp running with "
	        "the matching memif server socket?\n",
	        port, LG_LINK_WAIT_MS);
	return -ETIMEDOUT;
}

/* Sends one ARP request for target_be. Returns 0 or -ENOBUFS. */
static int
arp_send(struct lg_engine *e, uint32_t target_be)
{
	const struct lg_options *o = e->o;
	struct rte_mbuf *m = rte_pktmbuf_alloc(e->pool);

	if (m == NULL)
		return -ENOBUFS;
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(&e->src_mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&e->src_mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = o->src_ip_be;
	memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
	arp->arp_data.arp_tip = target_be;
	m->data_len = m->pkt_len = RTE_ETHER_HDR_LEN + sizeof(*arp);
	if (rte_eth_tx_burst(e->port, 0, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		return -ENOBUFS;
	}
	return 0;
}

/* True when m is an ARP reply from target_be; copies its MAC to *mac. */
static bool
arp_take_reply(const struct rte_mbuf *m, uint32_t target_be, struct rte_ether_addr *mac)
{
	if (m->data_len < RTE_ETHER_HDR_LEN + sizeof(struct rte_arp_hdr))
		return false;
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_arp_hdr *arp = (const struct rte_arp_hdr *)(eth + 1);
	if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP) ||
	    arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REPLY) ||
	    arp->arp_data.arp_sip != target_be)
		return false;
	if (!rte_is_unicast_ether_addr(&arp->arp_data.arp_sha))
		return false;
	rte_ether_addr_copy(&arp->arp_data.arp_sha, mac);
	return true;
}

/* Learns target_be's MAC with ARP, LG_ARP_TRIES requests at most. Returns 0 or -ETIMEDOUT. */
static int
arp_resolve(struct lg_engine *e, uint32_t target_be, struct rte_ether_addr *mac)
{
	struct rte_mbuf *pkts[LG_BURST];

	for (uint32_t t = 0; t < LG_ARP_TRIES && !lg_stop_signal; t++) {
		if (arp_send(e, target_be) != 0)
			continue;
		uint64_t until_ms = sp_mono_ms() + LG_ARP_WAIT_MS;
		bool found = false;
		while (!found && sp_mono_ms() < until_ms) {
			uint16_t n = rte_eth_rx_burst(e->port, 0, pkts, LG_BURST);
			for (uint16_t i = 0; i < n; i++)
				found = found || arp_take_reply(pkts[i], target_be, mac);
			rte_pktmbuf_free_bulk(pkts, n);
		}
		if (found)
			return 0;
	}
	char ip[INET_ADDRSTRLEN] = "";
	inet_ntop(AF_INET, &target_be, ip, sizeof(ip));
	fprintf(stderr,
	        "loadgen: no ARP reply from %s after %u tries: check --dst-ip (the dp's "
	        "--ip) or pass --dst-mac\n",
	        ip, LG_ARP_TRIES);
	return -ETIMEDOUT;
}

/*
 * Cluster mode: fetches the map from the seed (--dst-ip, --dst-port) with lib/client and
 * learns every node's MAC (ARP, or --dst-mac for all). Returns 0 or a negative errno (said
 * on stderr).
 */
static int
cluster_init(struct lg_engine *e)
{
	const struct lg_options *o = e->o;
	char seed[INET_ADDRSTRLEN] = "";
	struct sp_client_params p;
	struct sp_bp_route route;
	int err = 0;

	inet_ntop(AF_INET, &o->dst_ip_be, seed, sizeof(seed));
	memset(&p, 0, sizeof(p));
	p.host = seed;
	p.port = o->dst_port;
	p.timeout_ms = 1000;
	p.retries = -1;
	e->client = sp_client_create(&p, &err);
	if (e->client == NULL) {
		fprintf(stderr, "loadgen: --cluster: no client for seed %s:%u: %s\n", seed,
		        o->dst_port, sp_strerror(err));
		return err != 0 ? err : -EINVAL;
	}
	if (!sp_client_route(e->client, &route) || route.node_count == 0 ||
	    route.node_count > LG_NODES_MAX) {
		fprintf(stderr,
		        "loadgen: --cluster: no map from seed %s:%u (over a kernel UDP socket): is "
		        "the node up, and reachable from this host's stack?\n",
		        seed, o->dst_port);
		return -ETIMEDOUT;
	}
	e->node_count = route.node_count;
	for (uint32_t i = 0; i < e->node_count; i++) {
		struct sp_bp_route_node n;

		VERIFY(sp_client_route_node(e->client, i, &n) == 0);
		e->nodes[i].ip_be = n.ipv4_be;
		if (o->have_dst_mac)
			memcpy(e->nodes[i].mac.addr_bytes, o->dst_mac, RTE_ETHER_ADDR_LEN);
		else if (arp_resolve(e, n.ipv4_be, &e->nodes[i].mac) != 0)
			return -ETIMEDOUT;
	}
	e->dst_mac = e->nodes[0].mac;
	fprintf(stderr, "loadgen: cluster: map epoch %" PRIu64 " from %s:%u, %u nodes\n",
	        route.epoch, seed, o->dst_port, e->node_count);
	return 0;
}

/* Sizes the pool, the slots and their frames. Returns 0 or a negative errno. */
static int
engine_init(struct lg_engine *e, const struct lg_options *o)
{
	ASSERT(o->window % o->rpd == 0);
	ASSERT(o->window <= LG_WINDOW_MAX);
	e->o = o;
	e->port = o->eth_port;
	e->nslots = o->window / o->rpd;
	e->preload_rpd = o->cluster ? 1 : lg_preload_rpd(o); /* cluster: a key per datagram */
	VERIFY(e->nslots >= 1);
	VERIFY(e->nslots <= LG_SLOTS_MAX);
	e->tsc_hz = rte_get_tsc_hz();
	e->ns_per_tsc = 1e9 / (double)e->tsc_hz;
	e->timeout_tsc = e->tsc_hz / 1000u * o->timeout_ms;
	lg_rng_seed(&e->rng, o->seed);
	for (uint32_t i = 0; i < o->value_size; i++)
		e->value[i] = (uint8_t)('a' + i % 26);
	if (o->dist == LG_DIST_ZIPF && lg_zipf_init(&e->zipf, o->keys, o->zipf_s) != 0) {
		fprintf(stderr, "loadgen: out of memory for the zipf table\n");
		return -ENOMEM;
	}
	e->pool = rte_pktmbuf_pool_create("lg_pool", e->nslots + LG_POOL_EXTRA, LG_POOL_CACHE, 0,
	                                  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	e->slots = calloc(e->nslots, sizeof(*e->slots));
	if (e->pool == NULL || e->slots == NULL) {
		fprintf(stderr,
		        "loadgen: no memory for %u mbufs: raise -m (--no-huge) or free "
		        "hugepages\n",
		        e->nslots + LG_POOL_EXTRA);
		return -ENOMEM;
	}
	return 0;
}

/* Allocates and pre-builds one frame per slot (after the MACs are known). */
static int
engine_frames(struct lg_engine *e)
{
	for (uint32_t i = 0; i < e->nslots; i++) {
		e->slots[i].m = rte_pktmbuf_alloc(e->pool);
		if (e->slots[i].m == NULL)
			return -ENOBUFS;
		prebuild_frame(e, e->slots[i].m);
	}
	return 0;
}

static void
engine_fini(struct lg_engine *e)
{
	if (e->slots != NULL) {
		for (uint32_t i = 0; i < e->nslots; i++)
			rte_pktmbuf_free(e->slots[i].m);
		free(e->slots);
		e->slots = NULL;
	}
	if (e->pool != NULL) {
		rte_eth_dev_stop(e->port);
		rte_eth_dev_close(e->port);
		rte_mempool_free(e->pool);
		e->pool = NULL;
	}
	lg_zipf_free(&e->zipf);
	sp_client_destroy(e->client);
	e->client = NULL;
}

/* ---- The libcbench benchmark ----------------------------------------------------------- */

static struct lg_engine lg_engine_g;
static char lg_name_g[LG_NAME_MAX];
static char lg_label_g[CBENCH_LABEL_MAX];

static void
bm_loadgen(struct cbench_state *st)
{
	struct lg_engine *e = &lg_engine_g;
	const struct lg_counters *c = &e->c;

	while (cbench_keep_running(st)) {
		run_phase(e, LG_PHASE_MEASURE);
		cbench_set_iteration_time(st, e->elapsed_s);
	}
	cbench_set_items_processed(st, c->replies);
	cbench_counter(st, "datagrams_per_second", (double)c->done_dgrams, CBENCH_COUNTER_RATE);
	cbench_counter(st, "requests", (double)c->replies, CBENCH_COUNTER_DEFAULT);
	cbench_counter(st, "p50_ns", (double)lg_hist_quantile(&e->hist, 0.5), 0);
	cbench_counter(st, "p99_ns", (double)lg_hist_quantile(&e->hist, 0.99), 0);
	cbench_counter(st, "p999_ns", (double)lg_hist_quantile(&e->hist, 0.999), 0);
	cbench_counter(st, "max_ns", (double)e->hist.max_ns, 0);
	cbench_counter(st, "losses", (double)c->losses, 0);
	cbench_counter(st, "late", (double)c->late, 0);
	cbench_counter(st, "unknown", (double)c->unknown, 0);
	cbench_counter(st, "errors", (double)c->errors, 0);
	cbench_counter(st, "hits", (double)c->hits, 0);
	cbench_counter(st, "misses", (double)c->misses, 0);
	cbench_counter(st, "rx_bad", (double)c->rx_bad, 0);
	cbench_counter(st, "tx_retries", (double)c->tx_retries, 0);
	cbench_counter(st, "preload_losses", (double)e->preload_losses, 0);
	for (uint32_t s = SP_BP_ST_OK + 1; s < SP_BP_ST_LAST; s++) {
		char name[64];
		if (s == SP_BP_ST_NOT_FOUND || c->status[s] == 0)
			continue;
		snprintf(name, sizeof(name), "status_%s", sp_bp_status_name(s));
		cbench_counter(st, name, (double)c->status[s], 0);
	}
	for (uint32_t i = 0; i < e->node_count; i++) {
		char name[64], ip[INET_ADDRSTRLEN] = "";

		snprintf(name, sizeof(name), "node%u_replies", i);
		cbench_counter(st, name, (double)e->nodes[i].replies, 0);
		snprintf(name, sizeof(name), "node%u_errors", i);
		cbench_counter(st, name, (double)e->nodes[i].errors, 0);
		inet_ntop(AF_INET, &e->nodes[i].ip_be, ip, sizeof(ip));
		fprintf(stderr,
		        "loadgen: node %u %s: %" PRIu64 " requests sent, %" PRIu64
		        " replies (%.3f Mreq/s), %" PRIu64 " errors\n",
		        i, ip, e->nodes[i].sent_reqs, e->nodes[i].replies,
		        (double)e->nodes[i].replies / e->elapsed_s / 1e6, e->nodes[i].errors);
	}
	if (e->o->cluster)
		cbench_counter(st, "short_datagrams", (double)c->short_dgrams, 0);
	cbench_set_label(st, lg_label_g);
	fprintf(stderr,
	        "loadgen: done: %" PRIu64 " requests in %.3f s (%.3f Mreq/s, %.3f Mdgram/s), "
	        "p50=%" PRIu64 "ns p99=%" PRIu64 "ns p99.9=%" PRIu64 "ns, losses=%" PRIu64
	        " late=%" PRIu64 " errors=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64
	        " rx_bad=%" PRIu64 "\n",
	        c->replies, e->elapsed_s, (double)c->replies / e->elapsed_s / 1e6,
	        (double)c->done_dgrams / e->elapsed_s / 1e6, lg_hist_quantile(&e->hist, 0.5),
	        lg_hist_quantile(&e->hist, 0.99), lg_hist_quantile(&e->hist, 0.999), c->losses,
	        c->late, c->errors, c->hits, c->misses, c->rx_bad);
}

/* The benchmark's name: --name, else the workload in Google Benchmark's arg style. */
static void
make_name(const struct lg_options *o)
{
	char mix[16];

	if (o->name != NULL) {
		snprintf(lg_name_g, sizeof(lg_name_g), "%s", o->name);
		return;
	}
	if (o->get_pct == 100)
		snprintf(mix, sizeof(mix), "get");
	else if (o->get_pct == 0)
		snprintf(mix, sizeof(mix), "set");
	else
		snprintf(mix, sizeof(mix), "get%u", o->get_pct);
	snprintf(lg_name_g, sizeof(lg_name_g), "%s_%s_%s/keys:%u/key:%u/value:%u/rpd:%u/window:%u",
	         o->echo ? "echo" : "loadgen", mix, o->dist == LG_DIST_ZIPF ? "zipf" : "uniform",
	         o->keys, o->key_size, o->value_size, o->rpd, o->window);
}

/* Returns the index of "--" in argv, or argc when there is none. */
static int
find_separator(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return i;
	}
	return argc;
}

int
main(int argc, char **argv)
{
	static struct lg_options opts;
	struct lg_engine *e = &lg_engine_g;
	int sep = find_separator(argc, argv);
	int rc;

	/* Our options first, so --help and bad flags never start the EAL. */
	char *our_argv[LG_CBENCH_ARGS_MAX + 256];
	int our_argc = argc - sep;
	if (our_argc > (int)SP_ARRAY_SIZE(our_argv) - 1) {
		fprintf(stderr, "loadgen: too many arguments\n");
		return 2;
	}
	our_argv[0] = argv[0];
	for (int i = sep + 1; i < argc; i++)
		our_argv[i - sep] = argv[i];
	if (our_argc < 1)
		our_argc = 1;
	our_argv[our_argc] = NULL;
	rc = lg_options_parse(our_argc, our_argv, &opts, stderr);
	if (rc == 1)
		return 0;
	if (rc != 0)
		return 2;
	if (opts.seed == 0) {
		const char *env = getenv("SP_TEST_SEED");
		opts.seed = env != NULL ? strtoull(env, NULL, 10) : sp_mono_ns();
	}
	fprintf(stderr, "loadgen: seed %" PRIu64 " (replay with --seed %" PRIu64 ")\n", opts.seed,
	        opts.seed);

	rc = rte_eal_init(sep, argv);
	if (rc < 0) {
		fprintf(stderr,
		        "loadgen: EAL start failed: %s; check the EAL options before '--'\n",
		        rte_strerror(rte_errno));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int status = 1;
	if (engine_init(e, &opts) != 0 || port_start(e) != 0)
		goto out;
	if (opts.cluster) {
		if (cluster_init(e) != 0)
			goto out;
	} else if (opts.have_dst_mac) {
		memcpy(e->dst_mac.addr_bytes, opts.dst_mac, RTE_ETHER_ADDR_LEN);
	} else if (arp_resolve(e, opts.dst_ip_be, &e->dst_mac) != 0) {
		goto out;
	}
	if (engine_frames(e) != 0) {
		fprintf(stderr, "loadgen: mbuf pool too small for %u slots\n", e->nslots);
		goto out;
	}
	if (opts.preload) {
		run_phase(e, LG_PHASE_PRELOAD);
		e->preload_losses = e->c.losses;
		e->preload_rate = (double)e->c.replies / e->elapsed_s;
		fprintf(stderr,
		        "loadgen: preload: %" PRIu64 " keys set in %.3f s (%.3f Mreq/s), %" PRIu64
		        " lost, %" PRIu64 " errors\n",
		        e->c.replies, e->elapsed_s, e->preload_rate / 1e6, e->c.losses,
		        e->c.errors);
	}
	if (lg_stop_signal)
		goto out;

	struct rte_eth_dev_info info;
	if (rte_eth_dev_info_get(e->port, &info) != 0)
		info.driver_name = "unknown";
	snprintf(lg_label_g, sizeof(lg_label_g), "%s%s, %s, seed %" PRIu64, info.driver_name,
	         opts.echo      ? " echo"
	         : opts.cluster ? " cluster"
	                        : "",
	         rte_eal_has_hugepages() ? "hugepages" : "no-huge", opts.seed);
	make_name(&opts);
	struct cbench *b = cbench_register(lg_name_g, bm_loadgen);
	cbench_set_iterations(b, 1);
	cbench_use_manual_time(b);
	cbench_set_unit(b, CBENCH_MS);

	static char out_flag[PATH_MAX + 32];
	char *cb_argv[LG_CBENCH_ARGS_MAX + 4];
	int cb_argc = 0;
	cb_argv[cb_argc++] = argv[0];
	if (opts.json_path != NULL) {
		snprintf(out_flag, sizeof(out_flag), "--benchmark_out=%s", opts.json_path);
		cb_argv[cb_argc++] = out_flag;
		cb_argv[cb_argc++] = (char *)"--benchmark_out_format=json";
	}
	for (unsigned i = 0; i < opts.n_cbench_args; i++)
		cb_argv[cb_argc++] = (char *)opts.cbench_args[i];
	cb_argv[cb_argc] = NULL;
	status = cbench_main(cb_argc, cb_argv);
out:
	engine_fini(e);
	rte_eal_cleanup();
	return status;
}
