/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tasks_load: the two shipped registered operations through a running node (lib/client).
 *
 *   tasks_load --server IP:PORT [--seconds S] [--keys K] [--batch B] [--counters N]
 *              [--aggregates M]
 *
 * 1. RATELIMIT for S seconds (default 5): batches of B (default 32) requests over K
 *    (default 1000) keys, rate 100/s and burst 10 each; prints requests/s, the allowed
 *    fraction, and batch latency p50/p99.
 * 2. Preloads N (default 10000) counters under a prefix (INCR with create, batched), then
 *    M (default 200) AGGREGATE requests one after another (top 5); prints their latency
 *    p50/p99/max, the partitions answered and the count (which must be N).
 * Exit status 0 when every request was answered and the aggregate counted N, else 1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "common/clock.h"
#include "common/errors.h"

#define BATCH_MAX   256u
#define SAMPLES_MAX 1000000u

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t
pct(uint64_t *v, size_t n, unsigned p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_u64);
	return v[(n - 1) * p / 100];
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"server", required_argument, NULL, 's'},
	        {"seconds", required_argument, NULL, 't'},
	        {"keys", required_argument, NULL, 'k'},
	        {"batch", required_argument, NULL, 'b'},
	        {"counters", required_argument, NULL, 'n'},
	        {"aggregates", required_argument, NULL, 'm'},
	        {NULL, 0, NULL, 0},
	};
	char host[64] = "";
	unsigned port = 0, seconds = 5, keys = 1000, batch = 32, counters = 10000, aggs = 200;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (sscanf(optarg, "%63[^:]:%u", host, &port) != 2 || port == 0 ||
			    port > 65535)
				goto usage;
			break;
		case 't':
			seconds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			keys = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			batch = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			counters = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			aggs = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			goto usage;
		}
	}
	if (host[0] == '\0' || seconds == 0 || seconds > 3600 || keys == 0 || batch == 0 ||
	    batch > BATCH_MAX || aggs == 0 || aggs > SAMPLES_MAX)
		goto usage;

	struct sp_client_params p = {.host = host, .port = (uint16_t)port, .timeout_ms = 2000};
	int err = 0;
	struct sp_client *c = sp_client_create(&p, &err);
	if (c == NULL) {
		fprintf(stderr, "tasks_load: --server %s:%u: %s\n", host, port, sp_strerror(err));
		return 1;
	}
	static struct sp_client_op ops[BATCH_MAX];
	static char kbuf[BATCH_MAX][32];
	static uint8_t arg[SP_RL_ARG_SIZE], res[BATCH_MAX][SP_RL_RESULT_SIZE];
	static uint64_t lat[SAMPLES_MAX];
	struct sp_rl_arg a = {.rate_per_s = 100, .burst = 10, .cost = 1};
	uint64_t done = 0, allowed = 0, failed = 0, nlat = 0, next = 0;
	int status = 0;

	sp_rl_arg_encode(arg, &a);
	uint64_t t0 = sp_mono_ns(), end = t0 + (uint64_t)seconds * SP_NS_PER_S;
	while (sp_mono_ns() < end) {
		for (unsigned i = 0; i < batch; i++) {
			int n = snprintf(kbuf[i], sizeof(kbuf[i]), "rl:%" PRIu64, next++ % keys);
			ops[i] = (struct sp_client_op){.opcode = SP_TASK_OP_RATELIMIT,
			                               .key = kbuf[i],
			                               .key_len = (uint16_t)n,
			                               .value = arg,
			                               .value_len = sizeof(arg),
			                               .out_buf = res[i],
			                               .out_cap = SP_RL_RESULT_SIZE};
		}
		uint64_t s = sp_mono_ns();
		if (sp_client_execute(c, ops, batch) != 0)
			break;
		if (nlat < SAMPLES_MAX)
			lat[nlat++] = sp_mono_ns() - s;
		for (unsigned i = 0; i < batch; i++) {
			struct sp_rl_result r;
			if (ops[i].rc != 0 || ops[i].status != SP_BP_ST_OK ||
			    sp_rl_result_decode(res[i], ops[i].value_len_out, &r) != 0) {
				failed++;
				continue;
			}
			allowed += r.allowed;
		}
		done += batch;
	}
	double secs = (double)(sp_mono_ns() - t0) / 1e9;
	printf("ratelimit: requests=%" PRIu64 " seconds=%.2f requests_per_s=%.0f allowed=%.3f "
	       "failed=%" PRIu64 " batch=%u keys=%u batch_latency_us_p50=%.0f p99=%.0f\n",
	       done, secs, (double)done / secs, done ? (double)allowed / (double)done : 0.0, failed,
	       batch, keys, (double)pct(lat, nlat, 50) / 1e3, (double)pct(lat, nlat, 99) / 1e3);
	status |= failed != 0 || done == 0;

	/* Counters under a prefix, in batches. */
	for (unsigned i = 0; i < counters; i += batch) {
		unsigned n = counters - i < batch ? counters - i : batch;
		for (unsigned j = 0; j < n; j++) {
			int len = snprintf(kbuf[j], sizeof(kbuf[j]), "agg:%u", i + j);
			ops[j] = (struct sp_client_op){.opcode = SP_BP_OP_INCR,
			                               .key = kbuf[j],
			                               .key_len = (uint16_t)len,
			                               .create = true,
			                               .initial = i + j,
			                               .delta = 0};
		}
		if (sp_client_execute(c, ops, n) != 0)
			return 1;
		for (unsigned j = 0; j < n; j++)
			failed += ops[j].rc != 0 || ops[j].status != SP_BP_ST_OK;
	}
	uint32_t parts = 0;
	uint64_t max = 0, bad = 0;
	struct sp_agg_result r;
	nlat = 0;
	for (unsigned i = 0; i < aggs; i++) {
		bool partial = false;
		uint64_t s = sp_mono_ns();
		int rc = sp_client_aggregate(c, "agg:", 4, 5, SP_BP_TASK_SCOPE_CLUSTER, &r, &parts,
		                             &partial);
		uint64_t l = sp_mono_ns() - s;
		lat[nlat++] = l;
		max = l > max ? l : max;
		bad += rc != 0 || partial || r.count != counters;
	}
	printf("aggregate: requests=%u counters=%u partitions=%" PRIu32 " bad=%" PRIu64
	       " latency_us_p50=%.0f p99=%.0f max=%.0f us_per_counter_p50=%.3f\n",
	       aggs, counters, parts, bad, (double)pct(lat, nlat, 50) / 1e3,
	       (double)pct(lat, nlat, 99) / 1e3, (double)max / 1e3,
	       counters ? (double)pct(lat, nlat, 50) / 1e3 / counters : 0.0);
	status |= bad != 0 || failed != 0;
	sp_client_destroy(c);
	return status;

usage:
	fprintf(stderr,
	        "usage: %s --server IP:PORT [--seconds S] [--keys K] [--batch B<=%u] "
	        "[--counters N] [--aggregates M]\n",
	        argv[0], BATCH_MAX);
	return 2;
}
