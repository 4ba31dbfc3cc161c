/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-loadgen's options: the bounds, the parsed form and the parser. Pure (no DPDK),
 * so the unit tests check every bound without starting the EAL.
 */
#ifndef SP_BENCH_LG_OPTIONS_H
#define SP_BENCH_LG_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LG_KEYS_MAX           (1u << 28) /* distinct keys */
#define LG_KEY_SIZE_MIN       8u         /* "k" + at least 7 digits */
#define LG_WINDOW_MAX         2048u      /* requests in flight */
#define LG_SLOTS_MAX          2048u      /* datagrams in flight (11 bits of the request id) */
#define LG_DURATION_S_MAX     3600u
#define LG_COUNT_MAX          (1ull << 40) /* requests of the measured run */
#define LG_TIMEOUT_MS_MAX     10000u       /* reply timeout */
#define LG_CBENCH_ARGS_MAX    16u          /* --benchmark_* flags passed on to libcbench */
#define LG_WINDOW_DEFAULT     64u
#define LG_DURATION_DEFAULT   5u
#define LG_TIMEOUT_MS_DEFAULT 100u
#define LG_PORT_DEFAULT       9000u
#define LG_SRC_PORT_DEFAULT   40000u
#define LG_ZIPF_S_DEFAULT     0.99

enum lg_dist {
	LG_DIST_UNIFORM = 0,
	LG_DIST_ZIPF,
};

struct lg_options {
	uint64_t count;      /* requests of the measured run; 0 = bounded by duration only */
	uint64_t seed;       /* random stream; 0 = from the clock (printed either way) */
	double zipf_s;       /* zipf exponent */
	uint32_t keys;       /* keys 0 .. keys-1 */
	uint32_t key_size;   /* bytes of every key */
	uint32_t value_size; /* bytes of every SET value (and of the expected GET value) */
	uint32_t get_pct;    /* percentage of GETs; the rest are SETs */
	uint32_t rpd;        /* requests per datagram */
	uint32_t window;     /* requests in flight (a multiple of rpd after parsing) */
	uint32_t duration_s; /* measured run; 0 = bounded by count only */
	uint32_t timeout_ms; /* a request without a reply after this is lost */
	uint32_t src_ip_be;  /* network order */
	uint32_t dst_ip_be;
	uint16_t src_port;
	uint16_t dst_port;
	uint16_t eth_port;
	uint8_t dst_mac[6];
	bool have_dst_mac; /* else learned with ARP */
	bool preload;      /* SET every key before the run */
	bool progress;     /* one line a second on stderr */
	bool echo;         /* the peer reflects our frames: the I/O baseline */
	bool cluster;      /* dst is a seed: fetch the map, send each datagram to its owner */
	enum lg_dist dist;
	const char *json_path; /* libcbench JSON report file, or NULL */
	const char *name;      /* benchmark name; NULL = built from the options */
	unsigned n_cbench_args;
	const char *cbench_args[LG_CBENCH_ARGS_MAX];
};

/*
 * Parses the options that follow the EAL's '--'. On success fills opts and returns 0. On
 * a bad value writes one sentence naming the flag, the value and the fix to err and
 * returns -EINVAL; for --help prints the usage to err and returns 1. Never exits.
 */
int lg_options_parse(int argc, char **argv, struct lg_options *opts, FILE *err);

void lg_options_usage(FILE *out, const char *prog);

/* Bytes of one request record with the options' key and value sizes (set or get). */
uint32_t lg_request_size(const struct lg_options *opts, bool set);

/*
 * Requests per datagram of the preload: --rpd, or fewer when that many SETs do not fit in
 * one datagram (0 when not even one does).
 */
uint32_t lg_preload_rpd(const struct lg_options *opts);

#endif
