/* SPDX-License-Identifier: BSD-3-Clause */
#include "lg_options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/verify.h"
#include "wire/binproto.h"

#define LG_ARGV_MAX 128u /* options after '--', flags and values counted apart */

enum {
	OPT_KEYS = 256,
	OPT_KEY_SIZE,
	OPT_VALUE_SIZE,
	OPT_GET_PCT,
	OPT_DIST,
	OPT_ZIPF_S,
	OPT_RPD,
	OPT_WINDOW,
	OPT_DURATION_S,
	OPT_COUNT,
	OPT_PRELOAD,
	OPT_NO_PROGRESS,
	OPT_ECHO,
	OPT_SRC_IP,
	OPT_DST_IP,
	OPT_SRC_PORT,
	OPT_DST_PORT,
	OPT_DST_MAC,
	OPT_ETH_PORT,
	OPT_TIMEOUT_MS,
	OPT_SEED,
	OPT_JSON,
	OPT_NAME,
	OPT_CLUSTER,
	OPT_HELP,
};

static const struct option lg_long_opts[] = {
        {"keys", required_argument, NULL, OPT_KEYS},
        {"key-size", required_argument, NULL, OPT_KEY_SIZE},
        {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
        {"get-pct", required_argument, NULL, OPT_GET_PCT},
        {"dist", required_argument, NULL, OPT_DIST},
        {"zipf-s", required_argument, NULL, OPT_ZIPF_S},
        {"rpd", required_argument, NULL, OPT_RPD},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"duration-s", required_argument, NULL, OPT_DURATION_S},
        {"count", required_argument, NULL, OPT_COUNT},
        {"preload", no_argument, NULL, OPT_PRELOAD},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"echo", no_argument, NULL, OPT_ECHO},
        {"cluster", no_argument, NULL, OPT_CLUSTER},
        {"src-ip", required_argument, NULL, OPT_SRC_IP},
        {"dst-ip", required_argument, NULL, OPT_DST_IP},
        {"src-port", required_argument, NULL, OPT_SRC_PORT},
        {"dst-port", required_argument, NULL, OPT_DST_PORT},
        {"dst-mac", required_argument, NULL, OPT_DST_MAC},
        {"eth-port", required_argument, NULL, OPT_ETH_PORT},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"json", required_argument, NULL, OPT_JSON},
        {"name", required_argument, NULL, OPT_NAME},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

void
lg_options_usage(FILE *out, const char *prog)
{
	ASSERT(out != NULL);
	ASSERT(prog != NULL);
	fprintf(out,
	        "usage: %s [EAL options] -- --dst-ip A.B.C.D [options]\n"
	        "\n"
	        "Drives shardplane-dp in a closed loop over a DPDK port (memif, ring, ...) with\n"
	        "binary-protocol datagrams and reports a libcbench (Google Benchmark) result.\n"
	        "EAL options come before '--': --no-pci, --in-memory or --file-prefix, one lcore\n"
	        "(-l N), the device (--vdev net_memif0,role=client,socket=PATH).\n"
	        "\n"
	        "  --keys N           keys 0..N-1, 1..%u (default 1000)\n"
	        "  --key-size B       key bytes, %u..%u, enough for N's digits plus 'k' (default "
	        "8)\n"
	        "  --value-size B     SET value bytes, 1..%u (default 8)\n"
	        "  --get-pct P        percentage of GETs, 0..100; the rest are SETs (default 100)\n"
	        "  --dist D           uniform or zipf (default uniform)\n"
	        "  --zipf-s S         zipf exponent, 0.01..5 (default %.2f)\n"
	        "  --rpd R            requests per datagram, 1..%u (default 1)\n"
	        "  --window W         requests in flight, R..%u, rounded up to a multiple of R\n"
	        "                     (default %u)\n"
	        "  --duration-s S     measured run, 0..%u seconds (default %u; 0 = --count only)\n"
	        "  --count N          requests of the measured run, 0..%" PRIu64
	        " (default 0 = unbounded)\n"
	        "  --preload          SET every key once before the run\n"
	        "  --timeout-ms T     a request unanswered after T ms is lost, 1..%u (default %u)\n"
	        "  --dst-ip A.B.C.D   shardplane-dp's address (required)\n"
	        "  --src-ip A.B.C.D   this generator's address (default dst-ip + 1)\n"
	        "  --dst-port N       dp's binary-protocol port (default %u)\n"
	        "  --src-port N       source UDP port (default %u)\n"
	        "  --dst-mac MAC      dp's MAC (default: learned with ARP)\n"
	        "  --eth-port ID      DPDK port to use (default 0)\n"
	        "  --seed N           random seed (default: SP_TEST_SEED, else the clock)\n"
	        "  --json PATH        write the libcbench JSON report to PATH\n"
	        "  --name NAME        benchmark name (default: built from the options)\n"
	        "  --no-progress      no progress line each second\n"
	        "  --echo             the peer reflects frames (dpdk-testpmd io forwarding): a\n"
	        "                     request returned unchanged counts as answered; needs\n"
	        "                     --dst-mac, excludes --preload\n"
	        "  --cluster          --dst-ip/--dst-port name a seed node: fetch the map from it\n"
	        "                     (lib/client, over a kernel UDP socket: the seed must be\n"
	        "                     reachable from this host's stack too), send each datagram\n"
	        "                     to the owner of its keys (node address, binary port +\n"
	        "                     worker; each node's MAC by ARP, or --dst-mac for all) and\n"
	        "                     report per-node figures; excludes --echo\n"
	        "  --benchmark_*      passed to libcbench (e.g. --benchmark_format=json)\n"
	        "  --help             this text\n",
	        prog, LG_KEYS_MAX, LG_KEY_SIZE_MIN, SP_BP_KEY_MAX, SP_BP_VALUE_MAX,
	        LG_ZIPF_S_DEFAULT, SP_BP_REQS_MAX, LG_WINDOW_MAX, LG_WINDOW_DEFAULT,
	        LG_DURATION_S_MAX, LG_DURATION_DEFAULT, (uint64_t)LG_COUNT_MAX, LG_TIMEOUT_MS_MAX,
	        LG_TIMEOUT_MS_DEFAULT, LG_PORT_DEFAULT, LG_SRC_PORT_DEFAULT);
}

uint32_t
lg_request_size(const struct lg_options *opts, bool set)
{
	ASSERT(opts->key_size <= SP_BP_KEY_MAX);
	ASSERT(opts->value_size <= SP_BP_VALUE_MAX);
	return SP_BP_REQ_HDR_SIZE + opts->key_size + (set ? opts->value_size : 0);
}

uint32_t
lg_preload_rpd(const struct lg_options *opts)
{
	uint32_t fit = (SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE) / lg_request_size(opts, true);

	ASSERT(opts->rpd >= 1);
	ASSERT(opts->rpd <= SP_BP_REQS_MAX);
	return SP_MIN(opts->rpd, fit);
}

/* Decimal digits of v (1 for 0). */
static uint32_t
digits_u64(uint64_t v)
{
	uint32_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	ASSERT(n <= 20);
	return n;
}

/* Parses a decimal integer in lo..hi (no sign, no trailing text). Returns 0 or -EINVAL. */
static int
parse_u64(const char *text, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end = NULL;

	ASSERT(text != NULL);
	ASSERT(lo <= hi);
	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int
parse_mac(const char *text, uint8_t mac[6])
{
	unsigned b[6];
	char extra;

	ASSERT(text != NULL);
	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
	           &extra) != 6)
		return -EINVAL;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	if (mac[0] & 1) /* multicast or broadcast cannot be a unicast peer */
		return -EINVAL;
	return 0;
}

static int
parse_ip(const char *text, uint32_t *ip_be)
{
	struct in_addr a;

	ASSERT(text != NULL);
	if (inet_pton(AF_INET, text, &a) != 1)
		return -EINVAL;
	if (a.s_addr == 0)
		return -EINVAL;
	*ip_be = a.s_addr;
	return 0;
}

static void
set_defaults(struct lg_options *o)
{
	memset(o, 0, sizeof(*o));
	o->keys = 1000;
	o->key_size = 8;
	o->value_size = 8;
	o->get_pct = 100;
	o->dist = LG_DIST_UNIFORM;
	o->zipf_s = LG_ZIPF_S_DEFAULT;
	o->rpd = 1;
	o->window = LG_WINDOW_DEFAULT;
	o->duration_s = LG_DURATION_DEFAULT;
	o->timeout_ms = LG_TIMEOUT_MS_DEFAULT;
	o->dst_port = LG_PORT_DEFAULT;
	o->src_port = LG_SRC_PORT_DEFAULT;
	o->progress = true;
}

/* Checks the options against each other after every flag was read. Returns 0 or -EINVAL. */
static int
check_combination(struct lg_options *o, FILE *err)
{
	ASSERT(o->rpd >= 1);
	ASSERT(o->keys >= 1);
	if (o->dst_ip_be == 0) {
		fprintf(err, "--dst-ip is required: shardplane-dp's address, e.g. 10.0.0.1\n");
		return -EINVAL;
	}
	if (o->src_ip_be == 0)
		o->src_ip_be = htonl(ntohl(o->dst_ip_be) + 1);
	if (o->src_ip_be == o->dst_ip_be) {
		fprintf(err, "--src-ip must differ from --dst-ip\n");
		return -EINVAL;
	}
	if (1 + digits_u64(o->keys - 1) > o->key_size) {
		fprintf(err, "--key-size %u cannot name %u keys ('k' and %u digits): raise it\n",
		        o->key_size, o->keys, digits_u64(o->keys - 1));
		return -EINVAL;
	}
	if (o->preload && lg_preload_rpd(o) == 0) {
		fprintf(err,
		        "--preload: one SET of a %u-byte key and a %u-byte value does not fit "
		        "in a datagram: lower --key-size or --value-size\n",
		        o->key_size, o->value_size);
		return -EINVAL;
	}
	uint32_t per = lg_request_size(o, o->get_pct < 100);
	if (SP_BP_DGRAM_HDR_SIZE + (uint64_t)per * o->rpd > SP_BP_PAYLOAD_MAX) {
		fprintf(err,
		        "--rpd %u requests of %u bytes do not fit in one %u-byte datagram: lower "
		        "--rpd, --key-size or --value-size\n",
		        o->rpd, per, SP_BP_PAYLOAD_MAX);
		return -EINVAL;
	}
	if (o->window < o->rpd) {
		fprintf(err, "--window %u is less than --rpd %u: raise it\n", o->window, o->rpd);
		return -EINVAL;
	}
	o->window = (o->window + o->rpd - 1) / o->rpd * o->rpd;
	if (o->window > LG_WINDOW_MAX) {
		fprintf(err, "--window rounded to a multiple of --rpd is over %u: lower it\n",
		        LG_WINDOW_MAX);
		return -EINVAL;
	}
	if (o->duration_s == 0 && o->count == 0) {
		fprintf(err, "--duration-s 0 needs a --count: the run must be bounded\n");
		return -EINVAL;
	}
	if (o->echo && (!o->have_dst_mac || o->preload)) {
		fprintf(err,
		        "--echo needs --dst-mac (a reflector answers no ARP) and no --preload\n");
		return -EINVAL;
	}
	if (o->cluster && o->echo) {
		fprintf(err, "--cluster and --echo exclude each other: a reflector has no map\n");
		return -EINVAL;
	}
	if (o->dist == LG_DIST_ZIPF && o->keys < 2) {
		fprintf(err, "--dist zipf needs --keys of at least 2\n");
		return -EINVAL;
	}
	return 0;
}

/* Reads one flag's value into o. Returns 0, 1 for --help, or -EINVAL with a message. */
static int
apply_flag(int c, const char *arg, struct lg_options *o, FILE *err)
{
	uint64_t v = 0;
	int rc = 0;

	switch (c) {
	case OPT_KEYS:
		rc = parse_u64(arg, 1, LG_KEYS_MAX, &v);
		o->keys = (uint32_t)v;
		break;
	case OPT_KEY_SIZE:
		rc = parse_u64(arg, LG_KEY_SIZE_MIN, SP_BP_KEY_MAX, &v);
		o->key_size = (uint32_t)v;
		break;
	case OPT_VALUE_SIZE:
		rc = parse_u64(arg, 1, SP_BP_VALUE_MAX, &v);
		o->value_size = (uint32_t)v;
		break;
	case OPT_GET_PCT:
		rc = parse_u64(arg, 0, 100, &v);
		o->get_pct = (uint32_t)v;
		break;
	case OPT_DIST:
		if (strcmp(arg, "uniform") == 0)
			o->dist = LG_DIST_UNIFORM;
		else if (strcmp(arg, "zipf") == 0)
			o->dist = LG_DIST_ZIPF;
		else
			rc = -EINVAL;
		break;
	case OPT_ZIPF_S: {
		char *end = NULL;
		double s = strtod(arg, &end);
		if (*arg == '\0' || *end != '\0' || !(s >= 0.01 && s <= 5.0))
			rc = -EINVAL;
		else
			o->zipf_s = s;
		break;
	}
	case OPT_RPD:
		rc = parse_u64(arg, 1, SP_BP_REQS_MAX, &v);
		o->rpd = (uint32_t)v;
		break;
	case OPT_WINDOW:
		rc = parse_u64(arg, 1, LG_WINDOW_MAX, &v);
		o->window = (uint32_t)v;
		break;
	case OPT_DURATION_S:
		rc = parse_u64(arg, 0, LG_DURATION_S_MAX, &v);
		o->duration_s = (uint32_t)v;
		break;
	case OPT_COUNT:
		rc = parse_u64(arg, 0, LG_COUNT_MAX, &o->count);
		break;
	case OPT_PRELOAD:
		o->preload = true;
		break;
	case OPT_NO_PROGRESS:
		o->progress = false;
		break;
	case OPT_ECHO:
		o->echo = true;
		break;
	case OPT_CLUSTER:
		o->cluster = true;
		break;
	case OPT_SRC_IP:
		rc = parse_ip(arg, &o->src_ip_be);
		break;
	case OPT_DST_IP:
		rc = parse_ip(arg, &o->dst_ip_be);
		break;
	case OPT_SRC_PORT:
		rc = parse_u64(arg, 1, 65535, &v);
		o->src_port = (uint16_t)v;
		break;
	case OPT_DST_PORT:
		rc = parse_u64(arg, 1, 65535, &v);
		o->dst_port = (uint16_t)v;
		break;
	case OPT_DST_MAC:
		rc = parse_mac(arg, o->dst_mac);
		o->have_dst_mac = rc == 0;
		break;
	case OPT_ETH_PORT:
		rc = parse_u64(arg, 0, 1023, &v);
		o->eth_port = (uint16_t)v;
		break;
	case OPT_TIMEOUT_MS:
		rc = parse_u64(arg, 1, LG_TIMEOUT_MS_MAX, &v);
		o->timeout_ms = (uint32_t)v;
		break;
	case OPT_SEED:
		rc = parse_u64(arg, 0, UINT64_MAX, &o->seed);
		break;
	case OPT_JSON:
		o->json_path = arg;
		break;
	case OPT_NAME:
		if (arg[0] == '\0' || strlen(arg) > 200)
			rc = -EINVAL;
		o->name = arg;
		break;
	case OPT_HELP:
		return 1;
	default:
		fprintf(err, "unknown option; see --help\n");
		return -EINVAL;
	}
	return rc;
}

int
lg_options_parse(int argc, char **argv, struct lg_options *opts, FILE *err)
{
	char *args[LG_ARGV_MAX + 1];
	int n = 0;

	ASSERT(argc >= 1);
	ASSERT(opts != NULL);
	set_defaults(opts);
	if ((unsigned)argc > LG_ARGV_MAX) {
		fprintf(err, "%d arguments: at most %u are accepted\n", argc, LG_ARGV_MAX);
		return -EINVAL;
	}
	/* libcbench's flags are kept aside for cbench_main(); getopt sees the rest. */
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strncmp(argv[i], "--benchmark_", 12) == 0) {
			if (opts->n_cbench_args == LG_CBENCH_ARGS_MAX) {
				fprintf(err, "more than %u --benchmark_* flags\n",
				        LG_CBENCH_ARGS_MAX);
				return -EINVAL;
			}
			opts->cbench_args[opts->n_cbench_args++] = argv[i];
			continue;
		}
		args[n++] = argv[i];
	}
	args[n] = NULL;

	optind = 0; /* GNU: restart the scan (the tests parse many times) */
	opterr = 0;
	for (;;) {
		int idx = -1;
		int c = getopt_long(n, args, "", lg_long_opts, &idx);
		if (c == -1)
			break;
		if (c == '?' || c == ':') {
			fprintf(err, "%s: unknown option or missing value; see --help\n",
			        args[optind - 1]);
			return -EINVAL;
		}
		int rc = apply_flag(c, optarg, opts, err);
		if (rc == 1) {
			lg_options_usage(err, args[0]);
			return 1;
		}
		if (rc != 0) {
			fprintf(err, "--%s '%s': out of range or malformed; see --help\n",
			        lg_long_opts[idx].name, optarg ? optarg : "");
			return -EINVAL;
		}
	}
	if (optind < n) {
		fprintf(err, "unexpected argument '%s'; see --help\n", args[optind]);
		return -EINVAL;
	}
	return check_combination(opts, err);
}
