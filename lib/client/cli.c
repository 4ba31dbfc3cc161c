/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-client: the command-line face of lib/client. One command per run (get, set,
 * add, replace, del, incr, decr, route, where, ratelimit, aggregate) or a bounded load
 * (bench). Exit status: 0 success (ratelimit: ALLOWED or DENIED), 1 the operation failed
 * (not found, timeout, ...; aggregate: a PARTIAL answer, printed), 2 usage error.
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
#include "common/keyhash.h"
#include "common/verify.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 9000u

/* Bench bounds: every loop and buffer below has one. */
#define BENCH_REQUESTS_DEF  100000ull
#define BENCH_REQUESTS_MAX  100000000ull
#define BENCH_KEYS_DEF      1000u
#define BENCH_KEYS_MAX      10000000u
#define BENCH_VALUE_DEF     32u
#define BENCH_BATCH_DEF     16u
#define BENCH_DURATION_DEF  10u
#define BENCH_DURATION_MAX  3600u
#define BENCH_GET_PCT_DEF   90u
#define BENCH_SAMPLES_MAX   (1u << 20) /* latency samples kept (reservoir beyond that) */
#define BENCH_KEY_BYTES_MAX 24u
/* Error budget for a passing bench: at most 1 in this many requests without an answer. */
#define BENCH_FAIL_RATIO 100u

enum {
	OPT_SERVER = 256,
	OPT_TIMEOUT,
	OPT_RETRIES,
	OPT_NO_ROUTE,
	OPT_FORWARD,
	OPT_RETRY_ALL,
	OPT_FLAGS,
	OPT_EXPIRY,
	OPT_CAS,
	OPT_INITIAL,
	OPT_REQUESTS,
	OPT_KEYS,
	OPT_VALUE_SIZE,
	OPT_GET_PCT,
	OPT_BATCH,
	OPT_DURATION,
	OPT_SEED,
	OPT_NO_PRELOAD,
	OPT_VERBOSE,
	OPT_NODE,
	OPT_HELP,
};

static const struct option long_opts[] = {
        {"server", required_argument, NULL, OPT_SERVER},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"no-route", no_argument, NULL, OPT_NO_ROUTE},
        {"forward", no_argument, NULL, OPT_FORWARD},
        {"retry-all", no_argument, NULL, OPT_RETRY_ALL},
        {"flags", required_argument, NULL, OPT_FLAGS},
        {"expiry", required_argument, NULL, OPT_EXPIRY},
        {"cas", required_argument, NULL, OPT_CAS},
        {"initial", required_argument, NULL, OPT_INITIAL},
        {"requests", required_argument, NULL, OPT_REQUESTS},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
        {"get-pct", required_argument, NULL, OPT_GET_PCT},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"duration-s", required_argument, NULL, OPT_DURATION},
        {"seed", required_argument, NULL, OPT_SEED},
        {"no-preload", no_argument, NULL, OPT_NO_PRELOAD},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"node", no_argument, NULL, OPT_NODE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

struct cli {
	struct sp_client_params params;
	char host[64]; /* the first seed, for messages */
	char seed_hosts[SP_CLIENT_SEEDS_MAX][64];
	struct sp_client_seed seeds[SP_CLIENT_SEEDS_MAX];
	uint32_t seed_count;
	uint32_t flags;
	uint32_t expiry_s;
	uint64_t cas;
	uint64_t initial;
	bool has_initial;
	bool verbose;
	bool node_scope; /* aggregate --node */
	uint64_t requests;
	uint32_t keys;
	uint32_t value_size;
	uint32_t get_pct;
	uint32_t batch;
	uint32_t duration_s;
	uint64_t seed;
	bool preload;
};

static void
usage(FILE *out, const char *prog)
{
	fprintf(out,
	        "usage: %s [options] COMMAND [ARGS]\n"
	        "\n"
	        "Talks Shardplane's binary protocol over UDP to a node.\n"
	        "\n"
	        "commands:\n"
	        "  get KEY                  print the value\n"
	        "  set|add|replace KEY VALUE  store (add: only if missing; replace: only if "
	        "present)\n"
	        "  del KEY                  delete\n"
	        "  incr|decr KEY DELTA      add/subtract; prints the new value\n"
	        "  route                    print the cluster map: nodes, partitions per node\n"
	        "  where KEY...             print each key's partition and owner (node, address)\n"
	        "  ratelimit KEY RATE BURST [COST]  token bucket: take COST (default 1) of BURST\n"
	        "                           tokens refilled at RATE/s; prints ALLOWED or DENIED,\n"
	        "                           the tokens left and the wait until COST are there\n"
	        "  aggregate PREFIX [K]     count, sum and K (default 5, max 16) largest counters\n"
	        "                           under PREFIX ('' for all), over every node (--node:\n"
	        "                           the node asked); PARTIAL when owners did not answer\n"
	        "  aggregate-keys K KEY...  the same over the counters KEY... (1..32 distinct\n"
	        "                           keys, each read on its owner; --node: this node's)\n"
	        "  bench                    bounded load; prints throughput, latency, errors\n"
	        "\n"
	        "options:\n"
	        "  --server IP[:PORT][,IP[:PORT]...]  a node's address (default %s:%u; PORT is "
	        "its --port);\n"
	        "                           any node of a cluster serves every key; more "
	        "addresses\n"
	        "                           (repeat --server or a comma list, up to 16) are "
	        "fallback seeds\n"
	        "  --timeout-ms N           per-attempt timeout (default %u, max %u)\n"
	        "  --retries N              extra attempts for idempotent ops (default %u, max "
	        "%u)\n"
	        "  --retry-all              retry non-idempotent ops too (at-least-once)\n"
	        "  --no-route               do not fetch the routing table; send all to PORT\n"
	        "  --forward                ask nodes to forward keys they do not own (with\n"
	        "                           --no-route: the node at PORT answers every key)\n"
	        "  --flags N, --expiry S    set/add/replace: client flags, relative expiry (s)\n"
	        "  --cas N                  set/replace/del: only if the item's version is N\n"
	        "  --initial N              incr/decr: create with N when the key is missing\n"
	        "  --verbose                print flags/cas with get, the full map with route\n"
	        "  --node                   aggregate: only the partitions of the node asked\n"
	        "bench options:\n"
	        "  --requests N (default %llu, max %llu)   --keys N (default %u, max %u)\n"
	        "  --value-size B (default %u, max %u)    --get-pct P (default %u)\n"
	        "  --batch B (default %u, max %u)          --duration-s S (default %u, max %u)\n"
	        "  --seed N                 key/op sequence seed   --no-preload  skip storing keys "
	        "first\n"
	        "--duration-s bounds the preload and, again, the measured run.\n"
	        "bench exits 1 when more than 1 in %u requests got no answer or an error status.\n"
	        "Use -- before a VALUE that starts with '-'.\n",
	        prog, DEFAULT_HOST, DEFAULT_PORT, SP_CLIENT_TIMEOUT_MS_DEF,
	        SP_CLIENT_TIMEOUT_MS_MAX, SP_CLIENT_RETRIES_DEF, SP_CLIENT_RETRIES_MAX,
	        (unsigned long long)BENCH_REQUESTS_DEF, (unsigned long long)BENCH_REQUESTS_MAX,
	        BENCH_KEYS_DEF, BENCH_KEYS_MAX, BENCH_VALUE_DEF, SP_BP_VALUE_MAX, BENCH_GET_PCT_DEF,
	        BENCH_BATCH_DEF, SP_CLIENT_BATCH_MAX, BENCH_DURATION_DEF, BENCH_DURATION_MAX,
	        BENCH_FAIL_RATIO);
}

/* Parses a decimal unsigned in [0, max]. Returns 0, or -EINVAL with a message printed. */
static int
parse_u64(const char *name, const char *text, uint64_t max, uint64_t *out)
{
	char *end = NULL;

	errno = 0;
	if (text[0] == '-' || text[0] == '\0') {
		fprintf(stderr, "%s: '%s' is not a non-negative integer\n", name, text);
		return -EINVAL;
	}
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0') {
		fprintf(stderr, "%s: '%s' is not a non-negative integer\n", name, text);
		return -EINVAL;
	}
	if (v > max) {
		fprintf(stderr, "%s: %llu is over the limit %llu\n", name, v,
		        (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int
parse_u32(const char *name, const char *text, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int rc = parse_u64(name, text, max, &v);
	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/* Adds the seeds of IP[:PORT][,IP[:PORT]...] (PORT defaults to DEFAULT_PORT). */
static int
parse_server(struct cli *cli, const char *text)
{
	const char *at = text;

	ASSERT(cli != NULL);
	ASSERT(text != NULL);
	for (;;) {
		const char *comma = strchr(at, ',');
		size_t item_len = comma != NULL ? (size_t)(comma - at) : strlen(at);
		const char *colon = memchr(at, ':', item_len);
		size_t host_len = colon != NULL ? (size_t)(colon - at) : item_len;
		uint32_t port = DEFAULT_PORT;

		if (cli->seed_count == SP_CLIENT_SEEDS_MAX) {
			fprintf(stderr, "--server: more than %u addresses\n", SP_CLIENT_SEEDS_MAX);
			return -EINVAL;
		}
		if (host_len == 0 || host_len >= sizeof(cli->seed_hosts[0])) {
			fprintf(stderr, "--server: '%s' is not IP[:PORT]\n", text);
			return -EINVAL;
		}
		if (colon != NULL) {
			char num[16];
			size_t num_len = item_len - host_len - 1;

			if (num_len == 0 || num_len >= sizeof(num)) {
				fprintf(stderr, "--server: '%s' is not IP[:PORT]\n", text);
				return -EINVAL;
			}
			memcpy(num, colon + 1, num_len);
			num[num_len] = '\0';
			if (parse_u32("--server port", num, UINT16_MAX, &port) != 0)
				return -EINVAL;
			if (port == 0) {
				fprintf(stderr, "--server: port 0 is not a port\n");
				return -EINVAL;
			}
		}
		memcpy(cli->seed_hosts[cli->seed_count], at, host_len);
		cli->seed_hosts[cli->seed_count][host_len] = '\0';
		cli->seeds[cli->seed_count].host = cli->seed_hosts[cli->seed_count];
		cli->seeds[cli->seed_count].port = (uint16_t)port;
		if (cli->seed_count == 0) {
			snprintf(cli->host, sizeof(cli->host), "%s", cli->seed_hosts[0]);
			cli->params.port = (uint16_t)port;
		}
		cli->seed_count++;
		if (comma == NULL)
			return 0;
		at = comma + 1;
	}
}

static int
parse_opt(struct cli *cli, int opt, const char *arg)
{
	uint32_t v32;

	ASSERT(cli != NULL);
	ASSERT(opt >= OPT_SERVER);
	switch (opt) {
	case OPT_SERVER:
		return parse_server(cli, arg);
	case OPT_TIMEOUT:
		if (parse_u32("--timeout-ms", arg, SP_CLIENT_TIMEOUT_MS_MAX, &v32) != 0)
			return -EINVAL;
		if (v32 == 0) {
			fprintf(stderr, "--timeout-ms: must be at least 1\n");
			return -EINVAL;
		}
		cli->params.timeout_ms = v32;
		return 0;
	case OPT_RETRIES:
		if (parse_u32("--retries", arg, SP_CLIENT_RETRIES_MAX, &v32) != 0)
			return -EINVAL;
		cli->params.retries = (int32_t)v32;
		return 0;
	case OPT_NO_ROUTE:
		cli->params.no_route = true;
		return 0;
	case OPT_FORWARD:
		cli->params.forward = true;
		return 0;
	case OPT_RETRY_ALL:
		cli->params.retry_all = true;
		return 0;
	case OPT_FLAGS:
		return parse_u32("--flags", arg, UINT32_MAX, &cli->flags);
	case OPT_EXPIRY:
		return parse_u32("--expiry", arg, UINT32_MAX, &cli->expiry_s);
	case OPT_CAS:
		return parse_u64("--cas", arg, UINT64_MAX, &cli->cas);
	case OPT_INITIAL:
		cli->has_initial = true;
		return parse_u64("--initial", arg, UINT64_MAX, &cli->initial);
	case OPT_REQUESTS:
		if (parse_u64("--requests", arg, BENCH_REQUESTS_MAX, &cli->requests) != 0)
			return -EINVAL;
		return 0;
	case OPT_KEYS:
		if (parse_u32("--keys", arg, BENCH_KEYS_MAX, &cli->keys) != 0)
			return -EINVAL;
		if (cli->keys == 0) {
			fprintf(stderr, "--keys: must be at least 1\n");
			return -EINVAL;
		}
		return 0;
	case OPT_VALUE_SIZE:
		return parse_u32("--value-size", arg, SP_BP_VALUE_MAX, &cli->value_size);
	case OPT_GET_PCT:
		return parse_u32("--get-pct", arg, 100, &cli->get_pct);
	case OPT_BATCH:
		if (parse_u32("--batch", arg, SP_CLIENT_BATCH_MAX, &cli->batch) != 0)
			return -EINVAL;
		if (cli->batch == 0) {
			fprintf(stderr, "--batch: must be at least 1\n");
			return -EINVAL;
		}
		return 0;
	case OPT_DURATION:
		if (parse_u32("--duration-s", arg, BENCH_DURATION_MAX, &cli->duration_s) != 0)
			return -EINVAL;
		if (cli->duration_s == 0) {
			fprintf(stderr, "--duration-s: must be at least 1\n");
			return -EINVAL;
		}
		return 0;
	case OPT_SEED:
		return parse_u64("--seed", arg, UINT64_MAX, &cli->seed);
	case OPT_NO_PRELOAD:
		cli->preload = false;
		return 0;
	case OPT_VERBOSE:
		cli->verbose = true;
		return 0;
	case OPT_NODE:
		cli->node_scope = true;
		return 0;
	default:
		return -EINVAL;
	}
}

/* Prints "CMD: what failed" for a failed operation and returns exit status 1. */
static int
fail_op(const char *cmd, const char *key, int rc)
{
	if (rc == -ETIMEDOUT)
		fprintf(stderr,
		        "%s %s: no reply (timed out after all attempts; is the node up "
		        "and is --server right?)\n",
		        cmd, key);
	else if (rc == -SP_ENOTFOUND)
		fprintf(stderr, "%s %s: not found\n", cmd, key);
	else
		fprintf(stderr, "%s %s: %s\n", cmd, key, sp_strerror(rc));
	return 1;
}

static int
need_args(const char *cmd, int have, int want)
{
	if (have == want)
		return 0;
	fprintf(stderr, "%s: expects %d argument%s, got %d (see --help)\n", cmd, want,
	        want == 1 ? "" : "s", have);
	return -EINVAL;
}

static int
check_key(const char *cmd, const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > SP_BP_KEY_MAX) {
		fprintf(stderr, "%s: key length %zu; keys are 1..%u bytes\n", cmd, n,
		        SP_BP_KEY_MAX);
		return -EINVAL;
	}
	return 0;
}

static int
cmd_get(struct cli *cli, struct sp_client *c, char **args, int n)
{
	static uint8_t buf[SP_BP_PAYLOAD_MAX];
	uint32_t len = 0;
	uint32_t flags = 0;
	uint64_t cas = 0;

	ASSERT(c != NULL);
	ASSERT(n >= 0);
	if (need_args("get", n, 1) != 0 || check_key("get", args[0]) != 0)
		return 2;
	int rc = sp_client_get(c, args[0], strlen(args[0]), buf, sizeof(buf), &len, &flags, &cas);
	if (rc != 0)
		return fail_op("get", args[0], rc);
	fwrite(buf, 1, SP_MIN(len, (uint32_t)sizeof(buf)), stdout);
	fputc('\n', stdout);
	if (cli->verbose)
		fprintf(stderr, "flags=%" PRIu32 " cas=%" PRIu64 " bytes=%" PRIu32 "\n", flags, cas,
		        len);
	return 0;
}

static int
cmd_store(struct cli *cli, struct sp_client *c, uint8_t opcode, char **args, int n)
{
	const char *name = sp_bp_op_name(opcode);
	uint64_t cas = 0;

	ASSERT(c != NULL);
	ASSERT(opcode == SP_BP_OP_SET || opcode == SP_BP_OP_ADD || opcode == SP_BP_OP_REPLACE);
	if (need_args(name, n, 2) != 0 || check_key(name, args[0]) != 0)
		return 2;
	size_t vlen = strlen(args[1]);
	if (vlen > SP_BP_VALUE_MAX) {
		fprintf(stderr, "%s: value is %zu bytes; the limit is %u\n", name, vlen,
		        SP_BP_VALUE_MAX);
		return 2;
	}
	int rc = sp_client_store(c, opcode, args[0], strlen(args[0]), args[1], (uint32_t)vlen,
	                         cli->flags, cli->expiry_s, cli->cas, &cas);
	if (rc != 0)
		return fail_op(name, args[0], rc);
	printf("STORED cas=%" PRIu64 "\n", cas);
	return 0;
}

static int
cmd_del(struct cli *cli, struct sp_client *c, char **args, int n)
{
	ASSERT(c != NULL);
	ASSERT(n >= 0);
	if (need_args("del", n, 1) != 0 || check_key("del", args[0]) != 0)
		return 2;
	int rc = sp_client_del(c, args[0], strlen(args[0]), cli->cas);
	if (rc != 0)
		return fail_op("del", args[0], rc);
	printf("DELETED\n");
	return 0;
}

static int
cmd_arith(struct cli *cli, struct sp_client *c, bool incr, char **args, int n)
{
	const char *name = incr ? "incr" : "decr";
	uint64_t delta;
	uint64_t value = 0;

	ASSERT(c != NULL);
	ASSERT(n >= 0);
	if (need_args(name, n, 2) != 0 || check_key(name, args[0]) != 0)
		return 2;
	if (parse_u64(name, args[1], UINT64_MAX, &delta) != 0)
		return 2;
	const uint64_t *initial = cli->has_initial ? &cli->initial : NULL;
	int rc = incr ? sp_client_incr(c, args[0], strlen(args[0]), delta, initial, &value)
	              : sp_client_decr(c, args[0], strlen(args[0]), delta, initial, &value);
	if (rc != 0)
		return fail_op(name, args[0], rc);
	printf("%" PRIu64 "\n", value);
	return 0;
}

static int
cmd_ratelimit(struct sp_client *c, char **args, int n)
{
	uint32_t rate, burst, cost = 1;
	struct sp_rl_result r;

	if (n != 3 && n != 4) {
		fprintf(stderr, "ratelimit: expects KEY RATE BURST [COST], got %d arguments\n", n);
		return 2;
	}
	if (check_key("ratelimit", args[0]) != 0 ||
	    parse_u32("ratelimit RATE", args[1], SP_RL_RATE_MAX, &rate) != 0 ||
	    parse_u32("ratelimit BURST", args[2], UINT32_MAX, &burst) != 0 ||
	    (n == 4 && parse_u32("ratelimit COST", args[3], UINT32_MAX, &cost) != 0))
		return 2;
	if (rate == 0 || burst == 0 || cost == 0 || cost > burst) {
		fprintf(stderr,
		        "ratelimit: RATE (1..%u), BURST (>= 1) and COST (1..BURST) must be "
		        "positive, got %u %u %u\n",
		        SP_RL_RATE_MAX, rate, burst, cost);
		return 2;
	}
	int rc = sp_client_ratelimit(c, args[0], strlen(args[0]), rate, burst, cost, &r);
	if (rc != 0)
		return fail_op("ratelimit", args[0], rc);
	printf("%s remaining=%" PRIu32 " wait_ns=%" PRIu64 "\n", r.allowed ? "ALLOWED" : "DENIED",
	       r.remaining, r.wait_ns);
	return 0;
}

/* Decimal text of the 128-bit number hi:lo into buf (>= 40 bytes). */
static const char *
u128_text(uint64_t hi, uint64_t lo, char *buf)
{
	unsigned __int128 v = (unsigned __int128)hi << 64 | lo;
	char rev[40];
	int n = 0;

	do {
		rev[n++] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v != 0);
	for (int i = 0; i < n; i++)
		buf[i] = rev[n - 1 - i];
	buf[n] = '\0';
	return buf;
}

static int
cmd_aggregate(struct cli *cli, struct sp_client *c, char **args, int n)
{
	uint32_t k = 5, partitions = 0;
	bool partial = false;
	struct sp_agg_result r;
	char sum[40];

	if (n != 1 && n != 2) {
		fprintf(stderr, "aggregate: expects PREFIX [K], got %d arguments\n", n);
		return 2;
	}
	if (strlen(args[0]) > SP_BP_KEY_MAX) {
		fprintf(stderr, "aggregate: prefix length %zu; at most %u bytes\n", strlen(args[0]),
		        SP_BP_KEY_MAX);
		return 2;
	}
	if (n == 2 && parse_u32("aggregate K", args[1], SP_AGG_TOPK_MAX, &k) != 0)
		return 2;
	int rc = sp_client_aggregate(c, args[0], strlen(args[0]), (uint8_t)k,
	                             cli->node_scope ? SP_BP_TASK_SCOPE_NODE
	                                             : SP_BP_TASK_SCOPE_CLUSTER,
	                             &r, &partitions, &partial);
	if (rc != 0)
		return fail_op("aggregate", args[0], rc);
	printf("count=%" PRIu64 " sum=%s skipped=%" PRIu64 " partitions=%" PRIu32 "%s\n", r.count,
	       u128_text(r.sum_hi, r.sum_lo, sum), r.skipped, partitions,
	       partial ? " PARTIAL" : "");
	for (uint32_t i = 0; i < r.n; i++)
		printf("%" PRIu64 " %.*s%s\n", r.top[i].value, (int)r.top[i].key_len,
		       (const char *)r.top[i].key, r.top[i].cut ? "..." : "");
	return partial ? 1 : 0;
}

static int
cmd_aggregate_keys(struct cli *cli, struct sp_client *c, char **args, int n)
{
	uint32_t k, answered = 0;
	bool partial = false;
	struct sp_agg_result r;
	char sum[40];

	if (n < 2 || n - 1 > (int)SP_TASK_KEYS_MAX) {
		fprintf(stderr, "aggregate-keys: expects K and 1..%u keys, got %d arguments\n",
		        SP_TASK_KEYS_MAX, n);
		return 2;
	}
	if (parse_u32("aggregate-keys K", args[0], SP_AGG_TOPK_MAX, &k) != 0)
		return 2;
	for (int i = 1; i < n; i++)
		if (check_key("aggregate-keys", args[i]) != 0)
			return 2;
	int rc = sp_client_aggregate_keys(
	        c, (const char *const *)(args + 1), (uint32_t)(n - 1), (uint8_t)k,
	        cli->node_scope ? SP_BP_TASK_SCOPE_NODE : SP_BP_TASK_SCOPE_CLUSTER, &r, &answered,
	        &partial);
	if (rc == -EINVAL) {
		fprintf(stderr, "aggregate-keys: a key is given twice\n");
		return 2;
	}
	if (rc != 0)
		return fail_op("aggregate-keys", args[1], rc);
	printf("count=%" PRIu64 " sum=%s skipped=%" PRIu64 " keys=%" PRIu32 "%s\n", r.count,
	       u128_text(r.sum_hi, r.sum_lo, sum), r.skipped, answered, partial ? " PARTIAL" : "");
	for (uint32_t i = 0; i < r.n; i++)
		printf("%" PRIu64 " %.*s%s\n", r.top[i].value, (int)r.top[i].key_len,
		       (const char *)r.top[i].key, r.top[i].cut ? "..." : "");
	return partial ? 1 : 0;
}

/* Writes a.b.c.d of an address in network byte order into buf (>= 16 bytes). */
static const char *
ipv4_text(uint32_t ipv4_be, char *buf)
{
	const uint8_t *b = (const uint8_t *)&ipv4_be;

	snprintf(buf, 16, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	return buf;
}

static int
cmd_route(struct cli *cli, struct sp_client *c, int n)
{
	uint32_t owned[SP_BP_ROUTE_NODES_MAX] = {0};
	struct sp_bp_route_node nd;
	struct sp_bp_route r;
	char ip[16];

	if (need_args("route", n, 0) != 0)
		return 2;
	if (cli->params.no_route) {
		fprintf(stderr, "route: --no-route was given; nothing to fetch\n");
		return 2;
	}
	int rc = sp_client_route_refresh(c);
	if (rc != 0)
		return fail_op("route", "", rc);
	VERIFY(sp_client_route(c, &r));
	printf("epoch=%" PRIu64 " partitions=%" PRIu32 " nodes=%u answered_by=%u\n", r.epoch,
	       r.partitions, r.node_count, r.self);
	for (uint32_t p = 0; p < r.partitions; p++) {
		uint16_t node, worker;

		VERIFY(sp_client_route_entry(c, p, &node, &worker) == 0);
		VERIFY(node < r.node_count);
		owned[node]++;
	}
	/* One line per node: where it is, its ports, and how many partitions it owns. */
	for (uint32_t i = 0; i < r.node_count; i++) {
		VERIFY(sp_client_route_node(c, i, &nd) == 0);
		printf("node %u id %" PRIu32 " ip %s port %u workers %u memcached_port %u "
		       "partitions %" PRIu32 "\n",
		       i, nd.node_id, ipv4_text(nd.ipv4_be, ip), nd.binary_port, nd.worker_count,
		       nd.memcached_port, owned[i]);
	}
	for (uint32_t p = 0; cli->verbose && p < r.partitions; p++) {
		uint16_t node, worker;

		VERIFY(sp_client_route_entry(c, p, &node, &worker) == 0);
		VERIFY(sp_client_route_node(c, node, &nd) == 0);
		printf("partition %" PRIu32 " node %u worker %u port %u\n", p, node, worker,
		       nd.binary_port + worker);
	}
	return 0;
}

/* where KEY...: the partition and owner of each key under the map (no request sent). */
static int
cmd_where(struct sp_client *c, char **args, int n)
{
	struct sp_bp_route r;
	char ip[16];

	if (n < 1) {
		fprintf(stderr, "where: needs at least one KEY\n");
		return 2;
	}
	if (!sp_client_route(c, &r)) {
		fprintf(stderr, "where: no map (no node answered ROUTE, or --no-route)\n");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		size_t len = strlen(args[i]);
		uint32_t ipv4 = 0;
		uint16_t port = 0;
		uint32_t p = sp_key_partition(sp_key_hash(args[i], len), r.partitions);
		int node = sp_client_dest_for_key(c, args[i], len, &ipv4, &port);

		printf("%s %" PRIu32 " %d %s:%u\n", args[i], p, node, ipv4_text(ipv4, ip), port);
	}
	return 0;
}

/* ---- bench ------------------------------------------------------------------------------ */

static uint64_t bench_rng;

static uint64_t
rng_next(void)
{
	/* xorshift64*: fast and seedable; quality is ample for picking keys. */
	bench_rng ^= bench_rng >> 12;
	bench_rng ^= bench_rng << 25;
	bench_rng ^= bench_rng >> 27;
	return bench_rng * 0x2545f4914f6cdd1dull;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct bench_tally {
	uint64_t done;
	uint64_t ok;
	uint64_t hits;
	uint64_t misses;
	uint64_t errors;   /* a reply with an error status (other than a GET miss) */
	uint64_t timeouts; /* no reply at all, or a local error */
};

static void
tally(struct bench_tally *t, const struct sp_client_op *ops, uint32_t n)
{
	ASSERT(t != NULL);
	ASSERT(n <= SP_CLIENT_BATCH_MAX);
	for (uint32_t i = 0; i < n; i++) {
		const struct sp_client_op *op = &ops[i];
		t->done++;
		if (op->rc != 0) {
			t->timeouts++;
		} else if (op->status == SP_BP_ST_OK) {
			t->ok++;
			t->hits += op->opcode == SP_BP_OP_GET;
		} else if (op->status == SP_BP_ST_NOT_FOUND && op->opcode == SP_BP_OP_GET) {
			t->misses++;
		} else {
			t->errors++;
		}
	}
}

static int
cmd_bench(struct cli *cli, struct sp_client *c, int n)
{
	static struct sp_client_op ops[SP_CLIENT_BATCH_MAX];
	static char keys[SP_CLIENT_BATCH_MAX][BENCH_KEY_BYTES_MAX];
	static uint8_t values[SP_CLIENT_BATCH_MAX][SP_BP_VALUE_MAX];
	static uint8_t sink[SP_CLIENT_BATCH_MAX][SP_BP_VALUE_MAX];
	struct bench_tally t = {0};
	uint32_t nsamples = (uint32_t)SP_MIN(cli->requests, (uint64_t)BENCH_SAMPLES_MAX);

	if (need_args("bench", n, 0) != 0)
		return 2;
	uint64_t *samples = calloc(SP_MAX(nsamples, 1u), sizeof(*samples));
	if (samples == NULL) {
		fprintf(stderr, "bench: cannot allocate %u latency samples\n", nsamples);
		return 1;
	}
	bench_rng = cli->seed != 0 ? cli->seed : 0x9e3779b97f4a7c15ull;
	printf("bench: seed=%" PRIu64 " requests=%" PRIu64 " keys=%u value_size=%u get_pct=%u "
	       "batch=%u duration_s=%u\n",
	       cli->seed, cli->requests, cli->keys, cli->value_size, cli->get_pct, cli->batch,
	       cli->duration_s);
	for (uint32_t i = 0; i < SP_CLIENT_BATCH_MAX; i++)
		memset(values[i], 'a' + (int)(i % 26), sizeof(values[i]));

	uint64_t deadline = sp_mono_ns() + (uint64_t)cli->duration_s * SP_NS_PER_S;
	uint64_t preloaded = 0;
	if (cli->preload) {
		for (uint32_t k = 0; k < cli->keys && sp_mono_ns() < deadline;) {
			uint32_t b = SP_MIN(cli->batch, cli->keys - k);
			for (uint32_t i = 0; i < b; i++, k++) {
				int len = snprintf(keys[i], BENCH_KEY_BYTES_MAX, "bench:%u", k);
				ops[i] = (struct sp_client_op){.opcode = SP_BP_OP_SET,
				                               .key = keys[i],
				                               .key_len = (uint16_t)len,
				                               .value = values[i],
				                               .value_len = cli->value_size};
			}
			if (sp_client_execute(c, ops, b) != 0)
				break;
			for (uint32_t i = 0; i < b; i++)
				preloaded += ops[i].rc == 0 && ops[i].status == SP_BP_ST_OK;
		}
		printf("bench: preloaded %" PRIu64 " of %u keys\n", preloaded, cli->keys);
	}

	/* The measured phase gets its own --duration-s, and its own counters. */
	struct sp_client_stats st0;
	sp_client_stats_get(c, &st0);
	uint64_t start = sp_mono_ns();
	deadline = start + (uint64_t)cli->duration_s * SP_NS_PER_S;
	uint64_t seen = 0;
	while (t.done < cli->requests && sp_mono_ns() < deadline) {
		uint32_t b = (uint32_t)SP_MIN((uint64_t)cli->batch, cli->requests - t.done);
		for (uint32_t i = 0; i < b; i++) {
			uint32_t k = (uint32_t)(rng_next() % cli->keys);
			int len = snprintf(keys[i], BENCH_KEY_BYTES_MAX, "bench:%u", k);
			bool get = rng_next() % 100 < cli->get_pct;
			ops[i] = (struct sp_client_op){
			        .opcode = get ? SP_BP_OP_GET : SP_BP_OP_SET,
			        .key = keys[i],
			        .key_len = (uint16_t)len,
			        .value = get ? NULL : values[i],
			        .value_len = get ? 0 : cli->value_size,
			        .out_buf = get ? sink[i] : NULL,
			        .out_cap = get ? (uint32_t)sizeof(sink[i]) : 0,
			};
		}
		uint64_t t0 = sp_mono_ns();
		int rc = sp_client_execute(c, ops, b);
		uint64_t lat = sp_mono_ns() - t0;
		if (rc != 0) {
			fprintf(stderr, "bench: socket error: %s\n", sp_strerror(rc));
			free(samples);
			return 1;
		}
		tally(&t, ops, b);
		/* One latency sample per request; reservoir-sample past the bound. */
		for (uint32_t i = 0; i < b; i++, seen++) {
			if (seen < nsamples) {
				samples[seen] = lat;
			} else {
				uint64_t j = rng_next() % (seen + 1);
				if (j < nsamples)
					samples[j] = lat;
			}
		}
	}
	uint64_t elapsed = sp_mono_ns() - start;
	uint32_t kept = (uint32_t)SP_MIN(seen, (uint64_t)nsamples);
	qsort(samples, kept, sizeof(*samples), cmp_u64);
	double secs = (double)elapsed / 1e9;
	double p50 = kept ? (double)samples[(kept - 1) / 2] / 1e3 : 0;
	double p99 = kept ? (double)samples[(uint64_t)(kept - 1) * 99 / 100] / 1e3 : 0;
	double pmax = kept ? (double)samples[kept - 1] / 1e3 : 0;
	struct sp_client_stats st;
	sp_client_stats_get(c, &st);

	printf("bench: done=%" PRIu64 " ok=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64
	       " errors=%" PRIu64 " timeouts=%" PRIu64 " retries=%" PRIu64 " busy_resent=%" PRIu64
	       "\n",
	       t.done, t.ok, t.hits, t.misses, t.errors, t.timeouts, st.retries - st0.retries,
	       st.busy - st0.busy);
	printf("bench: elapsed_s=%.3f throughput_ops=%.0f latency_us_p50=%.1f "
	       "latency_us_p99=%.1f latency_us_max=%.1f datagrams_sent=%" PRIu64 "\n",
	       secs, secs > 0 ? (double)t.done / secs : 0.0, p50, p99, pmax,
	       st.datagrams_sent - st0.datagrams_sent);
	printf("bench: datagrams_recv=%" PRIu64 " stale_replies=%" PRIu64 " bad_datagrams=%" PRIu64
	       " send_errors=%" PRIu64 " route_refreshes=%" PRIu64 "\n",
	       st.datagrams_recv - st0.datagrams_recv, st.stale_replies - st0.stale_replies,
	       st.bad_datagrams - st0.bad_datagrams, st.send_errors - st0.send_errors,
	       st.route_refreshes - st0.route_refreshes);
	printf("bench: wrong_partition=%" PRIu64 " redirects=%" PRIu64 " not_serving=%" PRIu64
	       " route_failures=%" PRIu64 " seed_failovers=%" PRIu64 "\n",
	       st.wrong_partition - st0.wrong_partition, st.redirects - st0.redirects,
	       st.not_serving - st0.not_serving, st.route_failures - st0.route_failures,
	       st.seed_failovers - st0.seed_failovers);
	{
		/* Per node of the map (counters since the client started, preload included). */
		struct sp_bp_route r;
		struct sp_bp_route_node nd;
		char ip[16];

		for (uint32_t i = 0; sp_client_route(c, &r) && i < r.node_count; i++) {
			uint64_t replies = 0, errs = 0;

			VERIFY(sp_client_route_node(c, i, &nd) == 0);
			VERIFY(sp_client_node_ops(c, i, &replies, &errs) == 0);
			printf("bench: node %u id %" PRIu32 " ip %s replies=%" PRIu64
			       " errors=%" PRIu64 " replies_per_s=%.0f\n",
			       i, nd.node_id, ipv4_text(nd.ipv4_be, ip), replies, errs,
			       secs > 0 ? (double)replies / secs : 0.0);
		}
	}
	free(samples);

	uint64_t failed = t.errors + t.timeouts;
	if (t.done == 0 || failed * BENCH_FAIL_RATIO > t.done) {
		fprintf(stderr, "bench: FAIL: %" PRIu64 " of %" PRIu64 " requests failed\n", failed,
		        t.done);
		return 1;
	}
	printf("bench: PASS\n");
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli cli = {
	        .params = {.port = DEFAULT_PORT, .retries = -1},
	        .requests = BENCH_REQUESTS_DEF,
	        .keys = BENCH_KEYS_DEF,
	        .value_size = BENCH_VALUE_DEF,
	        .get_pct = BENCH_GET_PCT_DEF,
	        .batch = BENCH_BATCH_DEF,
	        .duration_s = BENCH_DURATION_DEF,
	        .preload = true,
	};
	int opt;

	snprintf(cli.host, sizeof(cli.host), "%s", DEFAULT_HOST);
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		if (opt == 'h' || opt == OPT_HELP) {
			usage(stdout, argv[0]);
			return 0;
		}
		if (opt == '?' || parse_opt(&cli, opt, optarg) != 0) {
			fprintf(stderr, "try '%s --help'\n", argv[0]);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s: no command given; try '%s --help'\n", argv[0], argv[0]);
		return 2;
	}
	const char *cmd = argv[optind];
	char **args = argv + optind + 1;
	int nargs = argc - optind - 1;
	static const char *const cmds[] = {
	        "get",   "set",   "add",   "replace",   "del",       "incr",          "decr",
	        "route", "where", "bench", "ratelimit", "aggregate", "aggregate-keys"};
	bool known = false;
	for (size_t i = 0; i < SP_ARRAY_SIZE(cmds); i++)
		known = known || strcmp(cmd, cmds[i]) == 0;
	if (!known) {
		fprintf(stderr, "%s: unknown command '%s'; try '%s --help'\n", argv[0], cmd,
		        argv[0]);
		return 2;
	}

	cli.params.host = cli.host;
	if (cli.seed_count > 1) {
		cli.params.seeds = cli.seeds;
		cli.params.seed_count = cli.seed_count;
	}
	int err = 0;
	struct sp_client *c = sp_client_create(&cli.params, &err);
	if (c == NULL) {
		fprintf(stderr, "--server %s:%u: %s\n", cli.host, cli.params.port,
		        err == -EINVAL ? "not an IPv4 address and port" : sp_strerror(err));
		return 2;
	}

	int status;
	if (strcmp(cmd, "get") == 0)
		status = cmd_get(&cli, c, args, nargs);
	else if (strcmp(cmd, "set") == 0)
		status = cmd_store(&cli, c, SP_BP_OP_SET, args, nargs);
	else if (strcmp(cmd, "add") == 0)
		status = cmd_store(&cli, c, SP_BP_OP_ADD, args, nargs);
	else if (strcmp(cmd, "replace") == 0)
		status = cmd_store(&cli, c, SP_BP_OP_REPLACE, args, nargs);
	else if (strcmp(cmd, "del") == 0)
		status = cmd_del(&cli, c, args, nargs);
	else if (strcmp(cmd, "incr") == 0 || strcmp(cmd, "decr") == 0)
		status = cmd_arith(&cli, c, cmd[0] == 'i', args, nargs);
	else if (strcmp(cmd, "route") == 0)
		status = cmd_route(&cli, c, nargs);
	else if (strcmp(cmd, "where") == 0)
		status = cmd_where(c, args, nargs);
	else if (strcmp(cmd, "ratelimit") == 0)
		status = cmd_ratelimit(c, args, nargs);
	else if (strcmp(cmd, "aggregate") == 0)
		status = cmd_aggregate(&cli, c, args, nargs);
	else if (strcmp(cmd, "aggregate-keys") == 0)
		status = cmd_aggregate_keys(&cli, c, args, nargs);
	else
		status = cmd_bench(&cli, c, nargs);
	sp_client_destroy(c);
	return status;
}
