/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * In-process model of a partition-aware client driving N nodes (issue 11's "3 nodes reach
 * 2.5 x one node", where a two-core machine cannot run three real nodes on cores of their
 * own). Each node is a thread with the stores of the partitions it owns (partition p on
 * node p % N, as placement spreads them) and nothing shared with the others; it serves
 * pre-built binary request datagrams of GETs of its own keys (what a partition-aware client
 * sends it: every request of a datagram owned there) through the dataplane's own codec and
 * executor: sp_bp_decode_requests, then sp_binexec_run per request into a reply builder.
 * Not modelled: the NIC and kernel I/O and the client's own work, which a real node and
 * client pay once per datagram each whatever N is.
 *
 *     scale_bench [--nodes-max N] [--seconds S] [--keys K] [--rpd R]
 *
 * For N = 1 .. nodes-max, threads pinned round-robin to the CPUs this process may use:
 * the aggregate requests/s over wall time, each node's requests per second of its own CPU
 * time (clock_gettime CLOCK_THREAD_CPUTIME_ID), and their sum: the aggregate when every
 * node has a core of its own ("per node at a fixed core budget"), against N = 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/binexec/binexec.h"
#include "dataplane/store/store.h"
#include "wire/binproto.h"

#define SB_PARTITIONS      64u
#define SB_NODES_MAX       8u
#define SB_KEY_LEN         8u
#define SB_VALUE_LEN       8u
#define SB_STORE_BYTES     (2u << 20) /* per partition */
#define SB_DGRAMS          4096u      /* pre-built request datagrams per node */
#define SB_NOW_S           1u
#define SB_KEYS_DEFAULT    200000u
#define SB_SECONDS_DEFAULT 2u
#define SB_RPD_DEFAULT     16u

struct sb_node {
	pthread_t thread;
	uint32_t index, nodes, cpu;
	uint32_t keys, rpd;
	struct store *stores[SB_PARTITIONS]; /* NULL: another node's partition */
	void *mem[SB_PARTITIONS];
	uint8_t (*dgrams)[SP_BP_PAYLOAD_MAX];
	uint32_t *dgram_len;
	uint64_t ops;
	uint64_t bad;
	double cpu_s;
	int rc;
};

static atomic_int sb_go; /* 1: start serving; 2: stop */
static atomic_int sb_ready;

static double
now_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
key_name(uint8_t *out, uint32_t k)
{
	char buf[SB_KEY_LEN + 1];

	snprintf(buf, sizeof(buf), "k%07u", k % 10000000u);
	memcpy(out, buf, SB_KEY_LEN);
}

static uint32_t
partition_of(const uint8_t *key)
{
	return sp_key_partition(sp_key_hash(key, SB_KEY_LEN), SB_PARTITIONS);
}

/* Builds this node's stores, fills them with its keys and pre-builds its datagrams. */
static int
node_setup(struct sb_node *n)
{
	struct store_params p = {.bytes = SB_STORE_BYTES,
	                         .item_bytes_avg = SB_KEY_LEN + SB_VALUE_LEN};
	size_t need = store_memsize(&p);
	static const uint8_t value[SB_VALUE_LEN] = "valuevvv";
	uint32_t *own = malloc(sizeof(*own) * n->keys);
	uint32_t nown = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (n->index + 1);

	if (need == 0 || own == NULL)
		return -ENOMEM;
	for (uint32_t q = 0; q < SB_PARTITIONS; q++) {
		if (q % n->nodes != n->index)
			continue;
		if (posix_memalign(&n->mem[q], 4096, need) != 0)
			return -ENOMEM;
		n->stores[q] = store_init(n->mem[q], need, &p);
		if (n->stores[q] == NULL)
			return -EINVAL;
	}
	for (uint32_t k = 0; k < n->keys; k++) {
		uint8_t key[SB_KEY_LEN];
		uint32_t q;

		key_name(key, k);
		q = partition_of(key);
		if (n->stores[q] == NULL)
			continue;
		struct store_key sk = {
		        .data = key, .len = SB_KEY_LEN, .hash = sp_key_hash(key, SB_KEY_LEN)};
		struct store_write wr = {.value = value, .value_len = SB_VALUE_LEN};
		if (store_set(n->stores[q], STORE_SET, &sk, &wr, SB_NOW_S, NULL) != 0)
			return -ENOSPC;
		own[nown++] = k;
	}
	if (nown == 0)
		return -ENOENT;
	n->dgrams = malloc(sizeof(*n->dgrams) * SB_DGRAMS);
	n->dgram_len = malloc(sizeof(*n->dgram_len) * SB_DGRAMS);
	if (n->dgrams == NULL || n->dgram_len == NULL)
		return -ENOMEM;
	for (uint32_t d = 0; d < SB_DGRAMS; d++) {
		struct sp_bp_builder b;
		uint8_t keys[SP_BP_REQS_MAX][SB_KEY_LEN];

		sp_bp_builder_init(&b, n->dgrams[d], SP_BP_PAYLOAD_MAX, false, d);
		for (uint32_t i = 0; i < n->rpd; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			key_name(keys[i], own[rng % nown]);
			struct sp_bp_req r = {.opcode = SP_BP_OP_GET,
			                      .request_id = i,
			                      .key = keys[i],
			                      .key_len = SB_KEY_LEN};
			VERIFY(sp_bp_add_request(&b, &r) == 0);
		}
		n->dgram_len[d] = sp_bp_builder_finish(&b);
	}
	free(own);
	return 0;
}

static void *
node_main(void *arg)
{
	struct sb_node *n = arg;
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	uint8_t reply[SP_BP_PAYLOAD_MAX];
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(n->cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	n->rc = node_setup(n);
	atomic_fetch_add(&sb_ready, 1);
	while (atomic_load(&sb_go) == 0)
		sched_yield();
	if (n->rc != 0)
		return NULL;
	double c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
	for (uint32_t d = 0; atomic_load_explicit(&sb_go, memory_order_relaxed) == 1;
	     d = (d + 1) % SB_DGRAMS) {
		struct sp_bp_dgram dg;
		struct sp_bp_builder b;

		if (sp_bp_decode_requests(n->dgrams[d], n->dgram_len[d], SB_PARTITIONS, reqs,
		                          SP_BP_REQS_MAX, &dg) != SP_BP_ERR_OK) {
			n->bad++;
			continue;
		}
		sp_bp_builder_init(&b, reply, sizeof(reply), true, dg.datagram_id);
		for (uint32_t i = 0; i < dg.count; i++) {
			struct store *s = n->stores[reqs[i].partition];

			/* A partition-aware client sent only this node's keys. */
			if (s == NULL ||
			    sp_binexec_run(s, &reqs[i], SB_NOW_S, NULL, &b, NULL) != 0) {
				n->bad++;
				continue;
			}
		}
		(void)sp_bp_builder_finish(&b);
		n->ops += dg.count;
	}
	n->cpu_s = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

static void
node_free(struct sb_node *n)
{
	for (uint32_t q = 0; q < SB_PARTITIONS; q++)
		free(n->mem[q]);
	free(n->dgrams);
	free(n->dgram_len);
}

static uint32_t
arg_u32(int argc, char **argv, const char *name, uint32_t def, uint32_t lo, uint32_t hi)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], name) == 0) {
			char *end = NULL;
			unsigned long v = strtoul(argv[i + 1], &end, 10);

			if (end == argv[i + 1] || *end != '\0' || v < lo || v > hi) {
				fprintf(stderr, "scale_bench: %s %s: want %u..%u\n", name,
				        argv[i + 1], lo, hi);
				exit(2);
			}
			return (uint32_t)v;
		}
	}
	return def;
}

int
main(int argc, char **argv)
{
	uint32_t nodes_max = arg_u32(argc, argv, "--nodes-max", 3, 1, SB_NODES_MAX);
	uint32_t seconds = arg_u32(argc, argv, "--seconds", SB_SECONDS_DEFAULT, 1, 600);
	uint32_t keys = arg_u32(argc, argv, "--keys", SB_KEYS_DEFAULT, 1000, 5000000);
	uint32_t rpd = arg_u32(argc, argv, "--rpd", SB_RPD_DEFAULT, 1, SP_BP_REQS_MAX);
	uint32_t cpus[CPU_SETSIZE], ncpu = 0;
	double base_wall = 0, base_cpu = 0;
	cpu_set_t allowed;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		return 1;
	for (uint32_t c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[ncpu++] = c;
	printf("scale_bench: %u CPUs usable, %u partitions, %u keys of %u bytes (8-byte values), "
	       "%u GETs per datagram, %u s per run\n",
	       ncpu, SB_PARTITIONS, keys, SB_KEY_LEN, rpd, seconds);
	for (uint32_t nodes = 1; nodes <= nodes_max; nodes++) {
		static struct sb_node n[SB_NODES_MAX];
		double sum_rate_cpu = 0;
		uint64_t ops = 0, bad = 0;

		memset(n, 0, sizeof(n));
		atomic_store(&sb_go, 0);
		atomic_store(&sb_ready, 0);
		for (uint32_t i = 0; i < nodes; i++) {
			n[i] = (struct sb_node){.index = i,
			                        .nodes = nodes,
			                        .cpu = cpus[i % ncpu],
			                        .keys = keys,
			                        .rpd = rpd};
			if (pthread_create(&n[i].thread, NULL, node_main, &n[i]) != 0)
				return 1;
		}
		while (atomic_load(&sb_ready) < (int)nodes)
			sched_yield();
		double w0 = now_s(CLOCK_MONOTONIC);
		atomic_store(&sb_go, 1);
		struct timespec ts = {.tv_sec = seconds};
		nanosleep(&ts, NULL);
		atomic_store(&sb_go, 2);
		for (uint32_t i = 0; i < nodes; i++)
			pthread_join(n[i].thread, NULL);
		double wall = now_s(CLOCK_MONOTONIC) - w0;
		for (uint32_t i = 0; i < nodes; i++) {
			if (n[i].rc != 0) {
				fprintf(stderr, "scale_bench: node %u setup failed: %d\n", i,
				        n[i].rc);
				return 1;
			}
			ops += n[i].ops;
			bad += n[i].bad;
			sum_rate_cpu += n[i].cpu_s > 0 ? (double)n[i].ops / n[i].cpu_s : 0;
		}
		if (nodes == 1) {
			base_wall = (double)ops / wall;
			base_cpu = sum_rate_cpu;
		}
		printf("nodes %u (%u CPUs): aggregate %.2f Mreq/s over wall time (x%.2f of 1 "
		       "node); "
		       "per node %.2f Mreq per CPU-second on average, sum %.2f Mreq/s with a core "
		       "per node (x%.2f of 1 node); errors %" PRIu64 "\n",
		       nodes, nodes < ncpu ? nodes : ncpu, (double)ops / wall / 1e6,
		       (double)ops / wall / base_wall, sum_rate_cpu / nodes / 1e6,
		       sum_rate_cpu / 1e6, sum_rate_cpu / base_cpu, bad);
		for (uint32_t i = 0; i < nodes; i++)
			node_free(&n[i]);
		if (bad != 0)
			return 1;
	}
	return 0;
}
