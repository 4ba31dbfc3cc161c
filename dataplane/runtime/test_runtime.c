/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the runtime's EAL-free parts: option parsing and validation, the idle
 * back-off state machine and its bounds, and the start-up memory checks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bounds.h"
#include "checks.h"
#include "config.h"
#include "idle.h"

#define ARGV_MAX 40

/* Parses a NULL-terminated list of options into cfg; returns dp_config_parse's result. */
static int
parse(struct dp_config *cfg, char *err, size_t err_len, ...)
{
	char *argv[ARGV_MAX];
	int argc = 0;
	va_list ap;
	char *a;
	int rc;

	argv[argc++] = (char *)"shardplane-dp";
	va_start(ap, err_len);
	while ((a = va_arg(ap, char *)) != NULL && argc < ARGV_MAX - 1)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	dp_config_defaults(cfg);
	err[0] = '\0';
	rc = dp_config_parse(cfg, argc, argv, err, err_len);
	return rc;
}

static void
test_config_full(void **state)
{
	struct dp_config cfg;
	char err[DP_ERRBUF_LEN];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.1.2.3/24", "--port", "7000",
	                       "--partitions", "256", "--memory-mb", "32", "--workers", "2",
	                       "--memcached-port", "11211", "--state-region", "/dev/shm/r",
	                       "--busy-poll", "--mac", "02:00:00:00:00:01", "--stats-interval", "5",
	                       "--log-level", "debug", "--eth-port", "1", "--forward-timeout-ms",
	                       "1500", "--ratelimit-buckets", "4096", NULL),
	                 0);
	assert_int_equal(cfg.forward_timeout_ms, 1500);
	assert_int_equal(cfg.ratelimit_buckets, 4096);
	assert_int_equal(cfg.ip_be, htonl(0x0a010203));
	assert_int_equal(cfg.prefix_len, 24);
	assert_int_equal(cfg.port_base, 7000);
	assert_int_equal(cfg.partitions, 256);
	assert_int_equal(cfg.memory_mb, 32);
	assert_int_equal(cfg.workers, 2);
	assert_int_equal(cfg.memcached_port, 11211);
	assert_string_equal(cfg.state_region, "/dev/shm/r");
	assert_true(cfg.busy_poll);
	assert_true(cfg.mac_set);
	assert_int_equal(cfg.mac[5], 1);
	assert_int_equal(cfg.stats_interval_s, 5);
	assert_int_equal(cfg.log_level, SP_LOG_DEBUG);
	assert_int_equal(cfg.eth_port, 1);
}

static void
test_config_defaults(void **state)
{
	struct dp_config cfg;
	char err[DP_ERRBUF_LEN];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "192.0.2.1/32", NULL), 0);
	assert_int_equal(cfg.port_base, DP_PORT_DEFAULT);
	assert_int_equal(cfg.partitions, DP_PARTITIONS_DEFAULT);
	assert_int_equal(cfg.memory_mb, DP_MEMORY_MB_DEFAULT);
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(cfg.ratelimit_buckets, DP_RL_BUCKETS_DEFAULT);
	assert_false(cfg.busy_poll);
	assert_null(cfg.state_region);
}

/* Every rejected value must fail with a message that names its flag. */
static void
test_config_rejects(void **state)
{
	static const struct {
		const char *flag;
		const char *value;
	} bad[] = {
	        {"--ip", "10.0.0.1"},
	        {"--ip", "10.0.0.1/0"},
	        {"--ip", "10.0.0.1/33"},
	        {"--ip", "10.0.0/24"},
	        {"--ip", "0.0.0.0/8"},
	        {"--ip", "a.b.c.d/8"},
	        {"--ip", "10.0.0.1/24x"},
	        {"--port", "0"},
	        {"--port", "65536"},
	        {"--port", "-1"},
	        {"--port", "12ab"},
	        {"--partitions", "3"},
	        {"--partitions", "0"},
	        {"--partitions", "131072"},
	        {"--memory-mb", "0"},
	        {"--workers", "0"},
	        {"--workers", "65"},
	        {"--memcached-port", "0"},
	        {"--ratelimit-buckets", "4"},
	        {"--ratelimit-buckets", "1000"},
	        {"--ratelimit-buckets", "524288"},
	        {"--mac", "01:00:00:00:00:01"},
	        {"--mac", "00:00:00:00:00:00"},
	        {"--mac", "02:00:00:00:00"},
	        {"--mac", "02:00:00:00:00:0g"},
	        {"--stats-interval", "86401"},
	        {"--log-level", "loud"},
	        {"--eth-port", "65535"},
	        {"--state-region", ""},
	};
	struct dp_config cfg;
	char err[DP_ERRBUF_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < SP_ARRAY_SIZE(bad); i++) {
		int rc;

		if (strcmp(bad[i].flag, "--ip") == 0)
			rc = parse(&cfg, err, sizeof(err), bad[i].flag, bad[i].value, NULL);
		else
			rc = parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", bad[i].flag,
			           bad[i].value, NULL);
		if (rc != -EINVAL)
			fail_msg("%s %s was accepted", bad[i].flag, bad[i].value);
		assert_non_null(strstr(err, bad[i].flag + 2));
	}
	assert_int_equal(parse(&cfg, err, sizeof(err), NULL), -EINVAL);
	assert_non_null(strstr(err, "--ip"));
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "--bogus", NULL),
	                 -EINVAL);
	assert_non_null(strstr(err, "--bogus"));
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "stray", NULL),
	                 -EINVAL);
	assert_non_null(strstr(err, "stray"));
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "--port", NULL),
	                 -EINVAL);
}

static void
test_config_help_and_workers(void **state)
{
	struct dp_config cfg;
	char err[DP_ERRBUF_LEN];

	(void)state;
	assert_int_equal(parse(&cfg, err, sizeof(err), "--help", NULL), 0);
	assert_true(cfg.help);
	/* Ports of the workers must stay under 65536. */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "--port", "65535",
	                       "--workers", "2", NULL),
	                 -EINVAL);
	assert_non_null(strstr(err, "65536"));
	/* The memcached port may not sit among them. */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "--port", "9000",
	                       "--workers", "4", "--memcached-port", "9003", NULL),
	                 -EINVAL);
	assert_non_null(strstr(err, "memcached-port"));
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "--port", "9000",
	                       "--workers", "4", "--memcached-port", "9004", NULL),
	                 0);
	/* Every worker owns a partition. */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--ip", "10.0.0.1/24", "--partitions", "2",
	                       "--workers", "4", NULL),
	                 -EINVAL);
	assert_non_null(strstr(err, "partitions"));
	assert_int_equal(dp_config_check_workers(&cfg, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(dp_config_check_workers(&cfg, DP_WORKERS_MAX + 1, err, sizeof(err)),
	                 -EINVAL);
}

/* The back-off walks poll -> pause -> sleep at its bounds, sleeps double up to the cap,
 * and any work resets it. */
static void
test_idle_phases(void **state)
{
	struct dp_idle idle;
	uint32_t us = 0;
	uint32_t prev = 0;
	uint32_t i;

	(void)state;
	dp_idle_init(&idle, false);
	for (i = 0; i < DP_IDLE_SPIN_ITERS; i++)
		assert_int_equal(dp_idle_step(&idle, false, &us), DP_IDLE_POLL);
	for (i = 0; i + 1 < DP_IDLE_PAUSE_ITERS; i++)
		assert_int_equal(dp_idle_step(&idle, false, &us), DP_IDLE_PAUSE);
	for (i = 0; i < 32; i++) {
		assert_int_equal(dp_idle_step(&idle, false, &us), DP_IDLE_SLEEP);
		assert_true(us >= DP_IDLE_SLEEP_US_MIN);
		assert_true(us <= DP_IDLE_SLEEP_US_MAX);
		assert_true(us >= prev);
		prev = us;
	}
	assert_int_equal(us, DP_IDLE_SLEEP_US_MAX);
	assert_int_equal(dp_idle_step(&idle, true, &us), DP_IDLE_POLL);
	assert_int_equal(dp_idle_step(&idle, false, &us), DP_IDLE_POLL);
	assert_int_equal(idle.sleep_us, DP_IDLE_SLEEP_US_MIN);
}

static void
test_idle_busy_poll(void **state)
{
	struct dp_idle idle;
	uint32_t us = 0;
	uint32_t i;

	(void)state;
	dp_idle_init(&idle, true);
	for (i = 0; i < 4 * (DP_IDLE_SPIN_ITERS + DP_IDLE_PAUSE_ITERS); i++)
		assert_int_equal(dp_idle_step(&idle, false, &us), DP_IDLE_POLL);
}

static void
test_checks_budget(void **state)
{
	char err[DP_ERRBUF_LEN];
	size_t bytes = 0;

	(void)state;
	/* 64 MiB over 32 partitions per worker (64 partitions, 2 workers) = 2 MiB each. */
	assert_int_equal(dp_check_partition_budget(64, 64, 2, 65536, &bytes, err, sizeof(err)), 0);
	assert_int_equal(bytes, 2u << 20);
	/* Uneven split: 3 workers own up to 22 of 64 partitions; nobody exceeds the budget. */
	assert_int_equal(dp_check_partition_budget(22, 64, 3, 65536, &bytes, err, sizeof(err)), 0);
	assert_true(bytes * 22 <= 22u << 20);
	assert_int_equal(bytes % 64, 0);
	/* 1 MiB over 65536 partitions is far under the minimum. */
	assert_int_equal(dp_check_partition_budget(1, 65536, 1, 65536, &bytes, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "--memory-mb"));
	/* Exactly at the minimum passes. */
	assert_int_equal(dp_check_partition_budget(1, 16, 1, 65536, &bytes, err, sizeof(err)), 0);
	assert_int_equal(bytes, 65536);
}

static void
test_checks_hugepages(void **state)
{
	struct dp_hugepages h;
	char err[DP_ERRBUF_LEN];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.total_2m = 512;
	h.mounted = true;
	assert_int_equal(dp_check_hugepages_present(&h, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "0 of 512 free"));
	assert_non_null(strstr(err, "--no-huge"));
	h.free_2m = 100;
	h.mounted = false;
	assert_int_equal(dp_check_hugepages_present(&h, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "hugetlbfs"));
	h.mounted = true;
	assert_int_equal(dp_check_hugepages_present(&h, err, sizeof(err)), 0);
	assert_int_equal(dp_hugepages_free_mb(&h), 200);
	/* The estimate grows with workers and memory, and includes the fixed overhead. */
	assert_true(dp_memory_need_mb(1, 64, 0) == 64 + DP_MEMORY_OVERHEAD_MB);
	assert_true(dp_memory_need_mb(2, 64, 4096) > dp_memory_need_mb(1, 64, 4096));
	/* The live system read never reports more free pages than reserved. */
	dp_hugepages_read(&h);
	assert_true(h.free_2m <= h.total_2m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_config_full),
	        cmocka_unit_test(test_config_defaults),
	        cmocka_unit_test(test_config_rejects),
	        cmocka_unit_test(test_config_help_and_workers),
	        cmocka_unit_test(test_idle_phases),
	        cmocka_unit_test(test_idle_busy_poll),
	        cmocka_unit_test(test_checks_budget),
	        cmocka_unit_test(test_checks_hugepages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
