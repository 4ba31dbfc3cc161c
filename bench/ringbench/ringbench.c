/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dp-ringbench: the dataplane's throughput without a NIC or a kernel in the way. A node
 * (the same code as shardplane-dp: node.c, worker.c, ...) serves a net_ring port; the
 * main lcore is the load generator on a second net_ring port wired to the same rings. It
 * stores every key once, then sends GET datagrams (--batch requests each) to random keys
 * for --seconds, keeping at most INFLIGHT_MAX requests outstanding, and prints datagrams
 * and requests answered per second.
 *
 *   dp-ringbench [EAL options: -l 0-1, --no-pci, --file-prefix, --no-huge -m N] --
 *                [--seconds S] [--keys K] [--batch B] [--workers W] [--steer]
 *                [--partitions P] [--repetitions N]
 *
 * The generator builds its frames with the node's own net_udp_frame, marks their
 * checksums as verified (as a NIC's offload would) and leaves the pseudo-header sum in the
 * UDP checksum field; replies are checksummed in software (net_ring has no offload).
 * For single-request GETs it stamps a prepared frame with the key and the datagram id
 * and reuses each reply's mbuf for the next request, so that one generator core can keep
 * a worker core busy; every reply is still decoded and its status checked.
 *
 * Besides wall-clock rates it prints the workers' busy time per request (TSC cycles of
 * loop iterations that found work, the busy_cycles counter): what one request costs a
 * worker core, whether or not the generator kept it saturated.
 * With W > 1 and no --steer every datagram goes to queue 0, so a datagram owned wholly by
 * another worker takes the ring hand-off, and the other workers' GETs of a mixed one are
 * read on worker 0 from their stores; --steer sends each to its owner's queue.
 *
 * --echo measures the floor under those figures: the node is not started, and a bare loop
 * on the worker lcore answers every GET OK with a constant value, checking and writing
 * frames as the node does (net_classify, sp_bp_decode_requests, the reply over the request
 * in its own mbuf with software checksums) but with no store, routing, hand-off or
 * counters. Its busy time per request is what feeding one core over net_ring costs on this
 * machine before any key is looked up.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/keyhash.h"
#include "common/log.h"
#include "common/verify.h"
#include "dataplane/net/net.h"
#include "dataplane/runtime/node.h"
#include "dataplane/runtime/prefetch.h"
#include "wire/binproto.h"

#define MOD "ringbench"

#define SECONDS_DEF     5u
#define SECONDS_MAX     60u
#define KEYS_DEF        (1u << 20)
#define KEYS_MAX        (1u << 24)
#define PARTITIONS_DEF  256u
#define PARTITIONS_MAX  4096u
#define REPETITIONS_MAX 20u
#define BATCH_MAX       SP_BP_REQS_MAX
#define INFLIGHT_MAX    2048u /* requests sent and not yet answered */
#define GEN_POOL_MBUFS  16383u
#define RING_SLOTS      4096u
#define KEY_BYTES       8u
#define VALUE_BYTES     8u
#define DRAIN_MS        500u
#define GEN_SRC_PORT    40000u

static struct dp_runtime rt;
static struct dp_worker_stats worker_stats[DP_WORKERS_MAX];
static atomic_bool echo_stop;

struct gen {
	uint16_t port_id;
	uint16_t queues;
	struct rte_mempool *pool;
	uint8_t node_mac[6];
	uint32_t node_ip_be;
	uint32_t src_ip_be;
	uint32_t keys;
	uint32_t batch;
	bool steer;
	uint64_t rng;
	uint64_t sent_dgrams;
	uint64_t sent_reqs;
	uint64_t got_dgrams;
	uint64_t got_replies;
	uint64_t bad_status;
	/* The prepared single-GET frame (tmpl_len bytes) and where its fields sit. */
	uint8_t tmpl[128];
	uint32_t tmpl_len;
	uint32_t tmpl_key_off;
	uint32_t tmpl_id_off;
	bool fast;
};

static uint64_t
next_rand(struct gen *g)
{
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 0x2545f4914f6cdd1dull;
}

/* The 8-byte key of key number k. */
static void
key_of(uint32_t k, uint8_t key[KEY_BYTES])
{
	uint64_t v = 0x5350000000000000ull | k;

	memcpy(key, &v, KEY_BYTES);
}

/*
 * Builds one request datagram frame in m: `count` requests of opcode op over keys
 * first.. (SET carries an 8-byte value). Returns the queue it should go to.
 */
static uint16_t
build_frame(struct gen *g, struct rte_mbuf *m, uint8_t op, const uint32_t *keys, uint32_t count)
{
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	struct net_udp_ends e;
	uint8_t key[KEY_BYTES];
	uint8_t value[VALUE_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct sp_bp_builder b;
	struct sp_bp_req req;
	uint32_t len;
	uint32_t i;
	uint16_t queue = 0;

	ASSERT(count >= 1 && count <= BATCH_MAX);
	sp_bp_builder_init(&b, f + NET_UDP_REPLY_HDRS, SP_BP_PAYLOAD_MAX, false, g->sent_dgrams);
	for (i = 0; i < count; i++) {
		memset(&req, 0, sizeof(req));
		key_of(keys[i], key);
		req.opcode = op;
		req.request_id = i;
		req.key = key;
		req.key_len = KEY_BYTES;
		if (op == SP_BP_OP_SET) {
			req.value = value;
			req.value_len = VALUE_BYTES;
		}
		VERIFY(sp_bp_add_request(&b, &req) == 0);
	}
	len = sp_bp_builder_finish(&b);
	if (g->steer)
		queue = (uint16_t)(sp_key_partition(sp_key_hash(key, KEY_BYTES), rt.partitions) %
		                   rt.workers);
	memcpy(e.dst_mac, g->node_mac, NET_ETH_ADDR_LEN);
	memset(e.src_mac, 0x02, NET_ETH_ADDR_LEN);
	e.src_ip_be = g->src_ip_be;
	e.dst_ip_be = g->node_ip_be;
	e.src_port = GEN_SRC_PORT;
	e.dst_port = (uint16_t)(rt.cfg.port_base + queue);
	/* The UDP checksum field holds the pseudo-header sum; the frame is marked checked. */
	VERIFY(net_udp_frame(f, &e, (uint16_t)len, 0, NET_TX_UDP_CSUM_OFFLOAD) ==
	       NET_UDP_REPLY_HDRS + len);
	m->data_len = (uint16_t)(NET_UDP_REPLY_HDRS + len);
	m->pkt_len = m->data_len;
	m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	return queue;
}

/*
 * CPU time (ns) the worker threads ran so far, from /proc/self/task/<tid>/schedstat of the
 * threads EAL named "rte-worker-N". On a shared machine this, not wall time, says what
 * one request costs a worker. Returns 0 when /proc does not tell.
 */
static uint64_t
workers_cpu_ns(void)
{
	char path[300];
	char comm[64];
	uint64_t total = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		unsigned long long ns = 0;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		comm[0] = '\0';
		if (fgets(comm, sizeof(comm), f) == NULL)
			comm[0] = '\0';
		fclose(f);
		if (strncmp(comm, "rte-worker-", 11) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			total += ns;
		fclose(f);
	}
	closedir(d);
	return total;
}

/* TSC cycles the workers spent in loop iterations that found work, so far. */
static uint64_t
workers_busy_cycles(void)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < rt.workers; i++)
		total += __atomic_load_n(&worker_stats[i].busy_cycles, __ATOMIC_RELAXED);
	return total;
}

/*
 * Takes replies from every queue; counts datagrams, replies and non-OK statuses. Up to
 * *kept (on entry, the room in keep) reply mbufs go to keep for reuse, the rest are freed;
 * *kept says how many were kept. keep may be NULL.
 */
static unsigned int
collect(struct gen *g, struct rte_mbuf **keep, unsigned int *kept)
{
	struct rte_mbuf *m[DP_BURST];
	unsigned int room = keep != NULL ? *kept : 0;
	unsigned int total = 0;
	uint16_t q;

	if (kept != NULL)
		*kept = 0;
	for (q = 0; q < g->queues; q++) {
		uint16_t n = rte_eth_rx_burst(g->port_id, q, m, DP_BURST);

		for (uint16_t i = 0; i < n; i++) {
			struct sp_bp_reply replies[SP_BP_REQS_MAX];
			struct sp_bp_dgram dg;
			const uint8_t *p =
			        rte_pktmbuf_mtod(m[i], const uint8_t *) + NET_UDP_REPLY_HDRS;

			if (sp_bp_decode_replies(p, rte_pktmbuf_data_len(m[i]) - NET_UDP_REPLY_HDRS,
			                         replies, SP_BP_REQS_MAX, &dg) == SP_BP_ERR_OK) {
				g->got_replies += dg.count;
				for (uint16_t r = 0; r < dg.count; r++)
					g->bad_status += replies[r].status != SP_BP_ST_OK;
			} else {
				g->bad_status++;
			}
		}
		g->got_dgrams += n;
		total += n;
		for (uint16_t i = 0; i < n; i++) {
			if (kept != NULL && *kept < room)
				keep[(*kept)++] = m[i];
			else
				rte_pktmbuf_free(m[i]);
		}
	}
	return total;
}

/*
 * Prepares the single-GET frame the fast path stamps: built once by build_frame(), with
 * the key's and the datagram id's offsets found by building it twice. Returns false when
 * the frame does not have the expected shape (then the general path is used).
 */
static bool
prepare_template(struct gen *g)
{
	struct rte_mbuf *a = rte_pktmbuf_alloc(g->pool);
	struct rte_mbuf *b = rte_pktmbuf_alloc(g->pool);
	uint8_t key[KEY_BYTES];
	uint32_t k = 0x00abcdefu;
	uint64_t sent = g->sent_dgrams;
	const uint8_t *fa;
	const uint8_t *fb;
	uint32_t first = UINT32_MAX;
	uint32_t last = 0;
	bool ok = false;

	if (a == NULL || b == NULL)
		goto out;
	g->sent_dgrams = 0;
	build_frame(g, a, SP_BP_OP_GET, &k, 1);
	g->sent_dgrams = UINT64_MAX;
	build_frame(g, b, SP_BP_OP_GET, &k, 1);
	g->sent_dgrams = sent;
	fa = rte_pktmbuf_mtod(a, const uint8_t *);
	fb = rte_pktmbuf_mtod(b, const uint8_t *);
	if (rte_pktmbuf_data_len(a) != rte_pktmbuf_data_len(b) ||
	    rte_pktmbuf_data_len(a) > sizeof(g->tmpl))
		goto out;
	g->tmpl_len = rte_pktmbuf_data_len(a);
	for (uint32_t i = 0; i < g->tmpl_len; i++) {
		if (fa[i] != fb[i]) {
			first = SP_MIN(first, i);
			last = i;
		}
	}
	key_of(k, key);
	for (uint32_t i = 0; i + KEY_BYTES <= g->tmpl_len; i++) {
		if (memcmp(fa + i, key, KEY_BYTES) == 0) {
			g->tmpl_key_off = i;
			ok = true;
		}
	}
	ok = ok && first != UINT32_MAX && last - first + 1 == sizeof(uint64_t);
	g->tmpl_id_off = first;
	memcpy(g->tmpl, fa, g->tmpl_len);
out:
	rte_pktmbuf_free(a);
	rte_pktmbuf_free(b);
	return ok;
}

/* Writes a single GET of key k into m from the template. Returns its queue. */
static uint16_t
stamp_frame(struct gen *g, struct rte_mbuf *m, uint32_t k)
{
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	uint64_t id = g->sent_dgrams;
	uint16_t queue = 0;

	memcpy(f, g->tmpl, g->tmpl_len);
	key_of(k, f + g->tmpl_key_off);
	memcpy(f + g->tmpl_id_off, &id, sizeof(id));
	if (g->steer) {
		queue = (uint16_t)(sp_key_partition(sp_key_hash(f + g->tmpl_key_off, KEY_BYTES),
		                                    rt.partitions) %
		                   rt.workers);
		f[NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN + 2] =
		        (uint8_t)((rt.cfg.port_base + queue) >> 8);
		f[NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN + 3] = (uint8_t)(rt.cfg.port_base + queue);
	}
	m->data_len = (uint16_t)g->tmpl_len;
	m->pkt_len = g->tmpl_len;
	m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	return queue;
}

/*
 * Sends up to `want` datagrams of `batch` requests each (fewer when keys run out), in the
 * reply mbufs of reuse[0..nreuse) first, then in fresh ones; frees the unused reuse ones.
 */
static void
send_burst(struct gen *g, uint8_t op, uint32_t *next_key, bool random, unsigned int want,
           struct rte_mbuf **reuse, unsigned int nreuse)
{
	struct rte_mbuf *m[DP_BURST];
	uint32_t keys[BATCH_MAX];
	uint16_t q;
	unsigned int n = SP_MIN(want, DP_BURST);
	unsigned int i;

	for (i = 0; i < n && i < nreuse; i++)
		m[i] = reuse[i];
	if (nreuse > i)
		rte_pktmbuf_free_bulk(&reuse[i], nreuse - i);
	if (i < n && rte_pktmbuf_alloc_bulk(g->pool, &m[i], n - i) != 0) {
		n = i;
		if (n == 0)
			return;
	}
	for (i = 0; i < n; i++) {
		uint32_t c;

		for (c = 0; c < g->batch; c++)
			keys[c] = random ? (uint32_t)(((next_rand(g) >> 32) * g->keys) >> 32)
			                 : (*next_key)++ % g->keys;
		if (g->fast && op == SP_BP_OP_GET && g->batch == 1)
			q = stamp_frame(g, m[i], keys[0]);
		else
			q = build_frame(g, m[i], op, keys, g->batch);
		/* One datagram at a time per queue keeps steering simple; bursts stay intact
		 * when not steering. */
		if (g->steer) {
			if (rte_eth_tx_burst(g->port_id, q, &m[i], 1) == 1) {
				g->sent_dgrams++;
				g->sent_reqs += g->batch;
			} else
				rte_pktmbuf_free(m[i]);
		} else {
			g->sent_dgrams++;
		}
	}
	if (!g->steer) {
		uint16_t sent = rte_eth_tx_burst(g->port_id, 0, m, (uint16_t)n);

		g->sent_dgrams -= n - sent;
		g->sent_reqs += (uint64_t)sent * g->batch;
		if (sent < n)
			rte_pktmbuf_free_bulk(&m[sent], n - sent);
	}
}

/*
 * Runs op over keys until `dgrams_max` request datagrams were sent or seconds ran out,
 * then drains. Returns request datagrams answered per second (all of a datagram's replies
 * may come in several reply datagrams, from several workers).
 */
static double
run_load(struct gen *g, uint8_t op, bool random, uint64_t seconds, uint64_t dgrams_max)
{
	uint64_t hz = rte_get_tsc_hz();
	uint64_t start = rte_rdtsc();
	uint64_t end = start + seconds * hz;
	uint64_t got0 = g->got_replies;
	uint64_t sent0 = g->sent_dgrams;
	uint32_t next_key = 0;
	struct rte_mbuf *reuse[DP_BURST];

	while (rte_rdtsc() < end && g->sent_dgrams - sent0 < dgrams_max) {
		uint64_t inflight = g->sent_reqs - g->got_replies;
		unsigned int kept = DP_BURST;
		unsigned int want = 0;

		collect(g, reuse, &kept);
		if (inflight + g->batch <= INFLIGHT_MAX)
			want = (unsigned int)SP_MIN((INFLIGHT_MAX - inflight) / g->batch,
			                            (uint64_t)DP_BURST);
		want = (unsigned int)SP_MIN((uint64_t)want, dgrams_max - (g->sent_dgrams - sent0));
		if (want > 0)
			send_burst(g, op, &next_key, random, want, reuse, kept);
		else if (kept > 0)
			rte_pktmbuf_free_bulk(reuse, kept);
	}
	/* Drain what is still in flight, bounded. */
	end = rte_rdtsc() + DRAIN_MS * hz / 1000;
	while (g->got_replies < g->sent_reqs && rte_rdtsc() < end)
		collect(g, NULL, NULL);
	return (double)(g->got_replies - got0) / g->batch /
	       ((double)(rte_rdtsc() - start) / (double)hz);
}

/*
 * --echo: answers every request of the datagram in m OK with a constant value, over the
 * request in place. Returns false (m untouched for the caller to free) when the frame is
 * not a well-formed request datagram to us that m can carry the reply of.
 */
static bool
echo_answer(struct rte_mbuf *m, uint16_t ip_id)
{
	static const uint8_t value[VALUE_BYTES] = {'e', 'c', 'h', 'o', 'e', 'c', 'h', 'o'};
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	uint8_t reply[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	struct sp_bp_dgram dg;
	struct net_pkt pkt;
	uint32_t len;

	if (m->nb_segs != 1 ||
	    net_classify(&rt.net, frame, rte_pktmbuf_data_len(m), dp_rx_csum_flags(m), &pkt) !=
	            NET_UDP ||
	    pkt.l4_off != NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN ||
	    rte_pktmbuf_tailroom(m) + rte_pktmbuf_data_len(m) < NET_UDP_REPLY_HDRS + sizeof(reply))
		return false;
	if (sp_bp_decode_requests(frame + pkt.payload_off, pkt.payload_len, rt.partitions, reqs,
	                          SP_BP_REQS_MAX, &dg) != SP_BP_ERR_OK)
		return false;
	sp_bp_builder_init(&b, reply, sizeof(reply), true, dg.datagram_id);
	for (uint32_t i = 0; i < dg.count; i++) {
		uint8_t *dst = sp_bp_add_reply(&b, reqs[i].request_id, reqs[i].opcode, SP_BP_ST_OK,
		                               1, 0, VALUE_BYTES);

		if (dst == NULL)
			return false;
		memcpy(dst, value, VALUE_BYTES);
	}
	len = sp_bp_builder_finish(&b);
	memcpy(frame + NET_UDP_REPLY_HDRS, reply, len);
	len = net_udp_reply(frame, frame, &pkt, (uint16_t)len, ip_id, 0);
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	m->ol_flags = 0;
	return true;
}

/*
 * --echo: the worker lcore's loop. Counts busy cycles as the node's workers do (whole
 * iterations that received something) into worker_stats[0], and frames it could not
 * answer or send as bad packets and TX drops.
 */
static int
echo_main(void *arg)
{
	struct rte_mbuf *pkts[DP_BURST];
	struct dp_worker_stats *st = &worker_stats[0];
	uint16_t port = rt.port.port_id;
	uint16_t ip_id = 0;

	(void)arg;
	while (!atomic_load_explicit(&echo_stop, memory_order_relaxed)) {
		uint64_t t0 = rte_rdtsc();
		uint16_t n = rte_eth_rx_burst(port, 0, pkts, DP_BURST);
		uint16_t k = 0;
		uint16_t sent;
		uint16_t i;

		if (n == 0)
			continue;
		/* As the node's workers do: every line is written before it goes back. */
		for (i = 0; i < n; i++)
			dp_prefetch_for_write(pkts[i]);
		for (i = 0; i < n; i++) {
			const uint8_t *data = rte_pktmbuf_mtod(pkts[i], const uint8_t *);

			dp_prefetch_for_write(data);
			dp_prefetch_for_write(data + RTE_CACHE_LINE_SIZE);
		}
		for (i = 0; i < n; i++) {
			if (echo_answer(pkts[i], ip_id++)) {
				pkts[k++] = pkts[i];
			} else {
				rte_pktmbuf_free(pkts[i]);
				DP_STAT_INC(st, bad_pkts);
			}
		}
		sent = rte_eth_tx_burst(port, 0, pkts, k);
		if (sent < k) {
			DP_STAT_ADD(st, tx_drops, k - sent);
			rte_pktmbuf_free_bulk(&pkts[sent], k - sent);
		}
		DP_STAT_ADD(st, busy_cycles, rte_rdtsc() - t0);
	}
	return 0;
}

/* --echo: opens the node's port for one queue and starts echo_main on the next lcore. */
static int
echo_start(void)
{
	unsigned int lcore = rte_get_next_lcore(-1, 1, 0);
	int rc;

	if (lcore >= RTE_MAX_LCORE) {
		fprintf(stderr, "dp-ringbench: --echo needs a second lcore (-l 0-1)\n");
		return -EINVAL;
	}
	rt.workers = 1;
	rc = dp_port_open(&rt.port, &rt.cfg, 1);
	if (rc != 0)
		return rc;
	memcpy(rt.net.mac, rt.port.mac.addr_bytes, sizeof(rt.net.mac));
	rt.net.ip_be = rt.cfg.ip_be;
	rt.partitions = rt.cfg.partitions;
	atomic_store(&echo_stop, false);
	return rte_eal_remote_launch(echo_main, NULL, lcore);
}

/*
 * --echo, after echo_main stopped: takes what the rings still hold back to the generator's
 * pool and reports, as the node's teardown does, whether every mbuf came back. Returns the
 * exit status: 1 when one did not or a frame went unanswered.
 */
static int
echo_finish(struct gen *g)
{
	const struct dp_worker_stats *st = &worker_stats[0];
	unsigned int in_use;

	collect(g, NULL, NULL);
	in_use = rte_mempool_in_use_count(g->pool);
	printf("mbufs: %u in use of %u at exit (generator pool; %" PRIu64 " frames unanswered, "
	       "%" PRIu64 " replies not sent)\n",
	       in_use, g->pool->size, st->bad_pkts, st->tx_drops);
	return in_use == 0 && st->bad_pkts == 0 && st->tx_drops == 0 ? 0 : 1;
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: dp-ringbench [EAL options] -- [options]\n"
	        "Serves GETs from a node on a net_ring port, the generator on the main lcore.\n"
	        "  --seconds S       length of each measured GET phase (1..%u, default %u)\n"
	        "  --keys K          keys stored and read at random (1..%u, default %u)\n"
	        "  --batch B         requests per datagram (1..%u, default 1)\n"
	        "  --workers W       worker lcores (1..%u, default 1); EAL needs W + 1 lcores\n"
	        "  --steer           send each datagram to its owner's queue (--batch 1)\n"
	        "  --partitions P    store partitions, a power of two >= W (default %u)\n"
	        "  --repetitions N   measured phases (1..%u, default 1); prints min/median/max\n"
	        "  --echo            no node: a bare loop answers every GET with a constant\n"
	        "                    (the floor of feeding a core over net_ring; --workers 1)\n"
	        "  --help            this text\n",
	        SECONDS_MAX, SECONDS_DEF, KEYS_MAX, KEYS_DEF, BATCH_MAX, DP_WORKERS_MAX,
	        PARTITIONS_DEF, REPETITIONS_MAX);
}

/* Parses a whole decimal count into *out. Returns false on anything else. */
static bool
parse_count(const char *s, unsigned long *out)
{
	char *end = NULL;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * One measured GET phase of `seconds`: prints the wall rate, the workers' CPU time and
 * their busy time per request. Returns the busy ns per request (0 when nothing came back).
 */
static double
measure_get(struct gen *g, unsigned long seconds, unsigned long workers)
{
	uint64_t r0 = g->got_replies;
	uint64_t t0 = rte_rdtsc();
	uint64_t cpu0 = workers_cpu_ns();
	uint64_t busy0 = workers_busy_cycles();
	double hz = (double)rte_get_tsc_hz();
	double get_rate;
	double wall_s;
	double replies;
	uint64_t cpu_ns;
	uint64_t busy;

	g->bad_status = 0;
	get_rate = run_load(g, SP_BP_OP_GET, true, seconds, UINT64_MAX);
	cpu_ns = workers_cpu_ns() - cpu0;
	busy = workers_busy_cycles() - busy0;
	wall_s = (double)(rte_rdtsc() - t0) / hz;
	replies = (double)(g->got_replies - r0);
	printf("ringbench: GET %u-byte keys, %u-byte values, %u keys, batch %u, %lu "
	       "worker(s)%s: %.0f datagrams/s, %.0f requests/s, %" PRIu64 " non-OK replies\n",
	       KEY_BYTES, VALUE_BYTES, g->keys, g->batch, workers,
	       g->steer ? " steered" : (workers > 1 ? " all to queue 0" : ""), get_rate,
	       replies / wall_s, g->bad_status);
	if (cpu_ns > 0 && replies > 0)
		printf("ringbench: workers ran %.2f s of CPU in %.2f s: %.0f ns of worker CPU per "
		       "request, %.0f requests per worker-CPU-second\n",
		       (double)cpu_ns / 1e9, wall_s, (double)cpu_ns / replies,
		       replies * 1e9 / (double)cpu_ns);
	if (busy == 0 || replies == 0)
		return 0;
	printf("ringbench: workers were busy %.1f ns per request: %.2f M requests per busy "
	       "worker-core-second\n",
	       (double)busy * 1e9 / hz / replies, replies * hz / (double)busy / 1e6);
	return (double)busy * 1e9 / hz / replies;
}

static int
make_ports(struct gen *g, uint16_t queues)
{
	struct rte_ring *req[DP_WORKERS_MAX];
	struct rte_ring *rep[DP_WORKERS_MAX];
	struct rte_eth_conf conf;
	char name[RTE_RING_NAMESIZE];
	int node_port;
	int gen_port;
	uint16_t q;

	ASSERT(queues > 0);
	ASSERT(queues <= DP_WORKERS_MAX);
	for (q = 0; q < queues; q++) {
		snprintf(name, sizeof(name), "rb_req%u", q);
		req[q] = rte_ring_create(name, RING_SLOTS, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "rb_rep%u", q);
		rep[q] = rte_ring_create(name, RING_SLOTS, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (req[q] == NULL || rep[q] == NULL)
			return -ENOMEM;
	}
	node_port = rte_eth_from_rings("rb_node", req, queues, rep, queues, 0);
	gen_port = rte_eth_from_rings("rb_gen", rep, queues, req, queues, 0);
	if (node_port < 0 || gen_port < 0)
		return -ENODEV;
	rt.cfg.eth_port = (uint16_t)node_port;
	g->port_id = (uint16_t)gen_port;
	g->queues = queues;
	g->pool = rte_pktmbuf_pool_create("rb_gen_pool", GEN_POOL_MBUFS, DP_MBUF_CACHE,
	                                  DP_META_PRIV_SIZE, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (g->pool == NULL)
		return -ENOMEM;
	memset(&conf, 0, sizeof(conf));
	if (rte_eth_dev_configure(g->port_id, queues, queues, &conf) != 0)
		return -EIO;
	for (q = 0; q < queues; q++) {
		if (rte_eth_rx_queue_setup(g->port_id, q, 1024, 0, NULL, g->pool) != 0 ||
		    rte_eth_tx_queue_setup(g->port_id, q, 1024, 0, NULL) != 0)
			return -EIO;
	}
	return rte_eth_dev_start(g->port_id);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"seconds", required_argument, NULL, 's'},
	        {"keys", required_argument, NULL, 'k'},
	        {"batch", required_argument, NULL, 'b'},
	        {"workers", required_argument, NULL, 'w'},
	        {"steer", no_argument, NULL, 't'},
	        {"partitions", required_argument, NULL, 'p'},
	        {"repetitions", required_argument, NULL, 'r'},
	        {"echo", no_argument, NULL, 'e'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct dp_hugepages huge;
	struct gen g;
	unsigned long seconds = SECONDS_DEF;
	unsigned long workers = 1;
	unsigned long partitions = PARTITIONS_DEF;
	double set_rate;
	double busy_ns[REPETITIONS_MAX];
	unsigned long repetitions = 1;
	unsigned long keys = KEYS_DEF;
	unsigned long batch = 1;
	bool ok = true;
	bool echo = false;
	int consumed;
	int opt;
	int rc;
	int code;

	memset(&g, 0, sizeof(g));
	g.rng = 0x9e3779b97f4a7c15ull;
	dp_hugepages_read(&huge);
	consumed = rte_eal_init(argc, argv);
	if (consumed < 0) {
		fprintf(stderr, "dp-ringbench: EAL start-up failed; check the EAL options\n");
		return 1;
	}
	argc -= consumed;
	argv += consumed;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			ok = ok && parse_count(optarg, &seconds);
			break;
		case 'k':
			ok = ok && parse_count(optarg, &keys);
			break;
		case 'b':
			ok = ok && parse_count(optarg, &batch);
			break;
		case 'w':
			ok = ok && parse_count(optarg, &workers);
			break;
		case 't':
			g.steer = true;
			break;
		case 'p':
			ok = ok && parse_count(optarg, &partitions);
			break;
		case 'r':
			ok = ok && parse_count(optarg, &repetitions);
			break;
		case 'e':
			echo = true;
			break;
		case 'h':
			usage(stdout);
			rte_eal_cleanup();
			return 0;
		default:
			usage(stderr);
			rte_eal_cleanup();
			return 2;
		}
	}
	if (!ok || seconds < 1 || seconds > SECONDS_MAX || keys < 1 || keys > KEYS_MAX ||
	    batch < 1 || batch > BATCH_MAX || workers < 1 || workers > DP_WORKERS_MAX ||
	    (g.steer && batch != 1) || partitions < workers || partitions > PARTITIONS_MAX ||
	    !rte_is_power_of_2((uint32_t)partitions) || repetitions < 1 ||
	    repetitions > REPETITIONS_MAX || (echo && (workers != 1 || g.steer))) {
		fprintf(stderr,
		        "dp-ringbench: --seconds 1..%u, --keys 1..%u, --batch 1..%u, "
		        "--workers 1..%u, --partitions a power of two in workers..%u, "
		        "--repetitions 1..%u; --steer needs --batch 1; --echo needs --workers 1 "
		        "and no --steer\n",
		        SECONDS_MAX, KEYS_MAX, BATCH_MAX, DP_WORKERS_MAX, PARTITIONS_MAX,
		        REPETITIONS_MAX);
		rte_eal_cleanup();
		return 2;
	}
	g.keys = (uint32_t)keys;
	g.batch = (uint32_t)batch;
	dp_config_defaults(&rt.cfg);
	rt.cfg.ip_be = htonl(0x0a630001);
	rt.cfg.prefix_len = 24;
	rt.cfg.workers = (uint32_t)workers;
	rt.cfg.partitions = (uint32_t)partitions;
	/* 8-byte keys and values take 48 bytes of log each: size the stores for 2x the keys. */
	rt.cfg.memory_mb = (uint32_t)SP_MAX(64ull, (uint64_t)g.keys * 2 * 96 / workers >> 20);
	rt.stats = worker_stats;
	g.node_ip_be = rt.cfg.ip_be;
	g.src_ip_be = htonl(0x0a630002);
	rc = make_ports(&g, (uint16_t)workers);
	if (rc != 0) {
		fprintf(stderr, "dp-ringbench: net_ring ports: %s\n", rte_strerror(-rc));
		rte_eal_cleanup();
		return 1;
	}
	if (echo) {
		rc = echo_start();
		if (rc != 0) {
			dp_port_close(&rt.port);
			dp_port_free_pool(&rt.port);
			rte_eal_cleanup();
			return 1;
		}
	} else {
		rc = dp_node_setup(&rt, &huge);
		if (rc == 0)
			rc = dp_node_launch(&rt);
		if (rc != 0) {
			dp_node_teardown(&rt, false);
			rte_eal_cleanup();
			return 1;
		}
	}
	memcpy(g.node_mac, rt.port.mac.addr_bytes, 6);
	g.fast = prepare_template(&g);
	if (echo) {
		printf("ringbench: echo floor: no node and no store; every GET is answered OK "
		       "with a constant value\n");
	} else {
		/* Stores every key once, 16 per datagram (1 when steering). */
		g.batch = g.steer ? 1 : SP_MIN(16u, BATCH_MAX);
		set_rate = run_load(&g, SP_BP_OP_SET, false, SECONDS_MAX,
		                    (g.keys + g.batch - 1) / g.batch);
		printf("ringbench: stored %u keys (%.0f datagrams/s), bad statuses %" PRIu64 "\n",
		       g.keys, set_rate, g.bad_status);
	}
	g.batch = (uint32_t)batch;
	g.bad_status = 0;
	for (rc = 0; rc < (int)repetitions; rc++)
		busy_ns[rc] = measure_get(&g, seconds, workers);
	if (repetitions > 1) {
		qsort(busy_ns, repetitions, sizeof(busy_ns[0]), cmp_double);
		printf("ringbench: busy ns per request over %lu repetitions: min %.1f, median "
		       "%.1f, "
		       "max %.1f\n",
		       repetitions, busy_ns[0], busy_ns[repetitions / 2], busy_ns[repetitions - 1]);
	}
	if (echo) {
		atomic_store(&echo_stop, true);
		rte_eal_mp_wait_lcore();
		dp_port_close(&rt.port);
		code = echo_finish(&g);
		dp_port_free_pool(&rt.port);
	} else {
		atomic_store(&rt.stop, true);
		code = dp_node_teardown(&rt, true);
	}
	rte_eth_dev_stop(g.port_id);
	rte_eth_dev_close(g.port_id);
	rte_mempool_free(g.pool);
	rte_eal_cleanup();
	return code;
}
