/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the load generator's pure parts: every option bound, the key names and
 * distributions (seeded: SP_TEST_SEED replays), and the latency histogram's accuracy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>

#include "common/clock.h"
#include "common/verify.h"
#include "lg_dist.h"
#include "lg_hist.h"
#include "lg_options.h"
#include "wire/binproto.h"

#define ARGS_MAX 40

static uint64_t test_seed;

/* Parses "prog --dst-ip 10.0.0.1" plus the given flags; returns the parser's result. */
static int
parse(struct lg_options *o, const char *const *extra, int n)
{
	char *argv[ARGS_MAX];
	int argc = 0;
	FILE *devnull = fopen("/dev/null", "w");

	assert_non_null(devnull);
	assert_true(n + 3 < ARGS_MAX);
	argv[argc++] = (char *)"loadgen";
	argv[argc++] = (char *)"--dst-ip";
	argv[argc++] = (char *)"10.0.0.1";
	for (int i = 0; i < n; i++)
		argv[argc++] = (char *)extra[i];
	argv[argc] = NULL;
	int rc = lg_options_parse(argc, argv, o, devnull);
	fclose(devnull);
	return rc;
}

#define PARSE(o, ...)                                \
	parse(o, (const char *const[]){__VA_ARGS__}, \
	      (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)))

static void
test_options_defaults(void **state)
{
	struct lg_options o;
	(void)state;

	assert_int_equal(parse(&o, NULL, 0), 0);
	assert_int_equal(o.keys, 1000);
	assert_int_equal(o.key_size, 8);
	assert_int_equal(o.rpd, 1);
	assert_int_equal(o.window, LG_WINDOW_DEFAULT);
	assert_int_equal(o.get_pct, 100);
	assert_int_equal(o.dst_port, LG_PORT_DEFAULT);
	/* src defaults to dst + 1 */
	assert_int_equal(o.src_ip_be, htonl(ntohl(o.dst_ip_be) + 1));
	assert_false(o.have_dst_mac);
}

static void
test_options_bounds(void **state)
{
	struct lg_options o;
	char max_keys[32], over_keys[32], max_window[32], over_window[32];
	(void)state;

	snprintf(max_keys, sizeof(max_keys), "%u", LG_KEYS_MAX);
	snprintf(over_keys, sizeof(over_keys), "%u", LG_KEYS_MAX + 1u);
	snprintf(max_window, sizeof(max_window), "%u", LG_WINDOW_MAX);
	snprintf(over_window, sizeof(over_window), "%u", LG_WINDOW_MAX + 1u);

	assert_int_equal(PARSE(&o, "--keys", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "--keys", max_keys, "--key-size", "10"), 0);
	assert_int_equal(o.keys, LG_KEYS_MAX);
	assert_int_equal(PARSE(&o, "--keys", over_keys, "--key-size", "10"), -EINVAL);
	/* 2^28 keys need 9 digits: 'k' + 9 > 8 */
	assert_int_equal(PARSE(&o, "--keys", max_keys), -EINVAL);
	assert_int_equal(PARSE(&o, "--window", max_window), 0);
	assert_int_equal(o.window, LG_WINDOW_MAX);
	assert_int_equal(PARSE(&o, "--window", over_window), -EINVAL);
	assert_int_equal(PARSE(&o, "--rpd", "32", "--window", "32"), 0);
	assert_int_equal(PARSE(&o, "--rpd", "33"), -EINVAL);
	assert_int_equal(PARSE(&o, "--rpd", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "--get-pct", "101"), -EINVAL);
	assert_int_equal(PARSE(&o, "--get-pct", "-1"), -EINVAL);
	assert_int_equal(PARSE(&o, "--duration-s", "3601"), -EINVAL);
	assert_int_equal(PARSE(&o, "--timeout-ms", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "--timeout-ms", "10001"), -EINVAL);
	assert_int_equal(PARSE(&o, "--key-size", "7"), -EINVAL);
	assert_int_equal(PARSE(&o, "--key-size", "251"), -EINVAL);
	assert_int_equal(PARSE(&o, "--value-size", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "--value-size", "1424"), -EINVAL);
	assert_int_equal(PARSE(&o, "--zipf-s", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "--dist", "pareto"), -EINVAL);
	assert_int_equal(PARSE(&o, "--keys", "12abc"), -EINVAL);
	assert_int_equal(PARSE(&o, "--keys", ""), -EINVAL);
	assert_int_equal(PARSE(&o, "--dst-mac", "ff:ff:ff:ff:ff:ff"), -EINVAL);
	assert_int_equal(PARSE(&o, "--dst-mac", "02:00:00:00:00"), -EINVAL);
	assert_int_equal(PARSE(&o, "--dst-mac", "02:00:00:00:00:01"), 0);
	assert_true(o.have_dst_mac);
	assert_int_equal(o.dst_mac[5], 1);
	assert_int_equal(PARSE(&o, "--src-ip", "10.0.0.1"), -EINVAL);
	assert_int_equal(PARSE(&o, "--src-ip", "10.0.0.300"), -EINVAL);
	assert_int_equal(PARSE(&o, "--bogus"), -EINVAL);
	assert_int_equal(PARSE(&o, "stray"), -EINVAL);
	assert_int_equal(PARSE(&o, "--help"), 1);
}

static void
test_options_combinations(void **state)
{
	struct lg_options o;
	char *argv[] = {(char *)"loadgen", NULL};
	FILE *devnull = fopen("/dev/null", "w");
	(void)state;

	assert_non_null(devnull);
	/* no --dst-ip */
	assert_int_equal(lg_options_parse(1, argv, &o, devnull), -EINVAL);
	fclose(devnull);
	/* the window is rounded up to whole datagrams */
	assert_int_equal(PARSE(&o, "--rpd", "8", "--window", "20"), 0);
	assert_int_equal(o.window, 24);
	assert_int_equal(PARSE(&o, "--rpd", "8", "--window", "4"), -EINVAL);
	/* unbounded runs are refused */
	assert_int_equal(PARSE(&o, "--duration-s", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, "--duration-s", "0", "--count", "1000"), 0);
	/* 32 SETs of 8+8 bytes fit (16 + 32*48 = 1552 > 1472: they do not) */
	assert_int_equal(PARSE(&o, "--rpd", "32", "--window", "64", "--get-pct", "50"), -EINVAL);
	assert_int_equal(PARSE(&o, "--rpd", "30", "--window", "60", "--get-pct", "50"), 0);
	assert_int_equal(SP_BP_DGRAM_HDR_SIZE + 30 * lg_request_size(&o, true) <= SP_BP_PAYLOAD_MAX,
	                 1);
	/* the preload packs as many SETs as fit, fewer than --rpd when they are big */
	assert_int_equal(PARSE(&o, "--rpd", "32", "--window", "64", "--preload"), 0);
	assert_int_equal(lg_preload_rpd(&o), (SP_BP_PAYLOAD_MAX - SP_BP_DGRAM_HDR_SIZE) / 48);
	assert_int_equal(PARSE(&o, "--rpd", "4", "--preload"), 0);
	assert_int_equal(lg_preload_rpd(&o), 4);
	assert_int_equal(PARSE(&o, "--preload", "--key-size", "250", "--value-size", "1423"),
	                 -EINVAL);
	assert_int_equal(PARSE(&o, "--preload", "--key-size", "250", "--value-size", "1173"), 0);
	assert_int_equal(lg_preload_rpd(&o), 1);
	assert_int_equal(PARSE(&o, "--rpd", "32", "--window", "64"), 0);
	assert_int_equal(PARSE(&o, "--dist", "zipf", "--keys", "1"), -EINVAL);
	/* echo mode: no ARP to learn the MAC from, and nothing to preload */
	assert_int_equal(PARSE(&o, "--echo"), -EINVAL);
	assert_int_equal(PARSE(&o, "--echo", "--dst-mac", "02:00:00:00:00:01", "--preload"),
	                 -EINVAL);
	assert_int_equal(PARSE(&o, "--echo", "--dst-mac", "02:00:00:00:00:01"), 0);
	assert_true(o.echo);
	assert_false(o.cluster);
	/* cluster mode: a seed, not a reflector */
	assert_int_equal(PARSE(&o, "--cluster", "--preload"), 0);
	assert_true(o.cluster);
	assert_int_equal(PARSE(&o, "--cluster", "--echo", "--dst-mac", "02:00:00:00:00:01"),
	                 -EINVAL);
}

static void
test_options_cbench_passthrough(void **state)
{
	struct lg_options o;
	const char *flags[LG_CBENCH_ARGS_MAX + 1];
	(void)state;

	assert_int_equal(PARSE(&o, "--benchmark_format=json", "--keys", "10"), 0);
	assert_int_equal(o.n_cbench_args, 1);
	assert_string_equal(o.cbench_args[0], "--benchmark_format=json");
	assert_int_equal(o.keys, 10);
	for (unsigned i = 0; i <= LG_CBENCH_ARGS_MAX; i++)
		flags[i] = "--benchmark_min_time=1x";
	assert_int_equal(parse(&o, flags, LG_CBENCH_ARGS_MAX), 0);
	assert_int_equal(o.n_cbench_args, LG_CBENCH_ARGS_MAX);
	assert_int_equal(parse(&o, flags, LG_CBENCH_ARGS_MAX + 1), -EINVAL);
}

static void
test_key_names(void **state)
{
	uint8_t key[16];
	(void)state;

	lg_key_name(key, 8, 0);
	assert_memory_equal(key, "k0000000", 8);
	lg_key_name(key, 8, 9999999);
	assert_memory_equal(key, "k9999999", 8);
	lg_key_name(key, 12, 123456);
	assert_memory_equal(key, "k00000123456", 12);
}

static void
test_uniform_range(void **state)
{
	struct lg_rng r;
	uint32_t seen[10] = {0};
	(void)state;

	lg_rng_seed(&r, test_seed);
	for (uint32_t i = 0; i < 100000; i++) {
		uint32_t v = lg_rng_below(&r, 10);
		assert_true(v < 10);
		seen[v]++;
	}
	for (uint32_t v = 0; v < 10; v++) {
		assert_true(seen[v] > 9000);
		assert_true(seen[v] < 11000);
	}
	assert_int_equal(lg_rng_below(&r, 1), 0);
}

static void
test_zipf(void **state)
{
	struct lg_zipf z;
	struct lg_rng r;
	const uint32_t keys = 100000;
	const uint32_t draws = 2000000;
	uint32_t *hits = calloc(keys, sizeof(*hits));
	(void)state;

	assert_non_null(hits);
	assert_int_equal(lg_zipf_init(&z, keys, 0.99), 0);
	for (uint32_t j = 0; j < LG_ZIPF_TABLE_SIZE; j++)
		assert_true(z.table[j] <= z.table[j + 1]);
	lg_rng_seed(&r, test_seed);
	for (uint32_t i = 0; i < draws; i++) {
		uint32_t k = lg_zipf_draw(&z, &r);
		assert_true(k < keys);
		hits[k]++;
	}
	/* P(rank k) = (k+1)^-s / H; compare the head with the exact law within 5 %. */
	double h = 0.0;
	for (uint32_t k = 0; k < keys; k++)
		h += pow((double)k + 1.0, -0.99);
	for (uint32_t k = 0; k < 4; k++) {
		double want = pow((double)k + 1.0, -0.99) / h * draws;
		assert_true(fabs((double)hits[k] - want) < want * 0.05);
	}
	/* The tail is reached: some key past the middle is drawn. */
	uint64_t tail = 0;
	for (uint32_t k = keys / 2; k < keys; k++)
		tail += hits[k];
	assert_true(tail > 0);
	lg_zipf_free(&z);
	assert_null(z.table);
	free(hits);
}

static void
test_hist_buckets(void **state)
{
	(void)state;

	for (uint64_t v = 0; v < LG_HIST_LINEAR_MAX; v++)
		assert_int_equal(lg_hist_index(v), v);
	/* Every bucket's lowest value maps back to it, and buckets are contiguous. */
	for (uint32_t i = 0; i + 1 < LG_HIST_BUCKETS; i++) {
		uint64_t lo = lg_hist_bucket_low(i);
		uint64_t next = lg_hist_bucket_low(i + 1);
		assert_true(next > lo);
		assert_int_equal(lg_hist_index(next - 1), i);
		/* a bucket is at most 1/32 of its values wide */
		assert_true((next - lo) * (1u << LG_HIST_SUB_BITS) <= SP_MAX(lo, (uint64_t)32));
	}
	/* At the bound: values at or over 2^40 ns land in the last bucket and are counted. */
	struct lg_hist *h = malloc(sizeof(*h));
	assert_non_null(h);
	lg_hist_reset(h);
	assert_int_equal(lg_hist_index((1ull << LG_HIST_MAX_BITS) - 1), LG_HIST_BUCKETS - 1);
	lg_hist_record(h, 1ull << LG_HIST_MAX_BITS);
	lg_hist_record(h, UINT64_MAX / 2);
	assert_int_equal(h->bucket[LG_HIST_BUCKETS - 1], 2);
	assert_int_equal(h->clamped, 2);
	free(h);
}

static void
test_hist_quantiles(void **state)
{
	struct lg_hist *h = malloc(sizeof(*h));
	struct lg_hist *h2 = malloc(sizeof(*h2));
	struct lg_rng r;
	(void)state;

	assert_non_null(h);
	assert_non_null(h2);
	lg_hist_reset(h);
	assert_int_equal(lg_hist_quantile(h, 0.5), 0);
	/* 1..100000 once each: the q-quantile is q * 100000 within the bucket error. */
	for (uint64_t v = 1; v <= 100000; v++)
		lg_hist_record(h, v);
	const double qs[] = {0.5, 0.9, 0.99, 0.999, 1.0};
	for (unsigned i = 0; i < 5; i++) {
		double want = qs[i] * 100000.0;
		double got = (double)lg_hist_quantile(h, qs[i]);
		assert_true(fabs(got - want) <= want / 32.0 + 1.0);
	}
	assert_int_equal(lg_hist_quantile(h, 1.0), 100000);
	assert_int_equal(h->max_ns, 100000);
	/* Exact for small values. */
	lg_hist_reset(h2);
	for (unsigned i = 0; i < 10; i++)
		lg_hist_record(h2, 7);
	assert_int_equal(lg_hist_quantile(h2, 0.5), 7);
	assert_int_equal(lg_hist_quantile(h2, 0.999), 7);
	/* Random values: the median of a merged histogram is within 1/32 of the truth. */
	lg_rng_seed(&r, test_seed);
	lg_hist_reset(h2);
	for (unsigned i = 0; i < 100000; i++)
		lg_hist_record(h2, 1000 + lg_rng_below(&r, 1000000));
	lg_hist_merge(h, h2);
	assert_int_equal(h->count, 200000);
	uint64_t med = lg_hist_quantile(h2, 0.5);
	assert_true(med > 501000 - 501000 / 32 - 5000);
	assert_true(med < 501000 + 501000 / 32 + 5000);
	free(h);
	free(h2);
}

int
main(void)
{
	const char *env = getenv("SP_TEST_SEED");
	test_seed = env != NULL ? strtoull(env, NULL, 10) : sp_mono_ns();
	printf("# seed %llu (replay with SP_TEST_SEED=%llu)\n", (unsigned long long)test_seed,
	       (unsigned long long)test_seed);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_options_defaults),
	        cmocka_unit_test(test_options_bounds),
	        cmocka_unit_test(test_options_combinations),
	        cmocka_unit_test(test_options_cbench_passthrough),
	        cmocka_unit_test(test_key_names),
	        cmocka_unit_test(test_uniform_range),
	        cmocka_unit_test(test_zipf),
	        cmocka_unit_test(test_hist_buckets),
	        cmocka_unit_test(test_hist_quantiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
