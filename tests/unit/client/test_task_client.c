/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client's registered operations (sp_client_ratelimit, sp_client_aggregate and the
 * CLI's ratelimit/aggregate commands) against an in-test loopback UDP server that runs
 * them with the task registry on one partition (dataplane/tasks), the way an owner does.
 * The server can answer the aggregate PARTIAL (as a gatherer whose owner timed out) or an
 * error, so every outcome the client reports is checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/client.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "dataplane/binexec/binexec.h"
#include "dataplane/tasks/aggregate.h"
#include "dataplane/tasks/ratelimit.h"
#include "dataplane/tasks/task.h"
#include "tests/unit/store/store_test_util.h"

#define STORE_BYTES    (1u << 20)
#define BIND_TRIES_MAX 64u
#define SERVER_POLL_MS 5

struct server {
	int fd;
	uint16_t port;
	pthread_t thread;
	atomic_bool stop;
	atomic_uint agg_mode; /* 0: OK, 1: PARTIAL (3 of 4 partitions), 2: BAD_REQUEST */
	atomic_uint ratelimits, aggregates;
	struct store *store;
	struct sp_task_registry reg;
	uint64_t now_ns; /* the bucket clock: advanced by the test only */
};

static struct server srv;

static void
serve(struct server *s, const uint8_t *buf, size_t len, const struct sockaddr_in *from)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint8_t out[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;

	if (sp_bp_decode_requests(buf, len, 1, reqs, SP_BP_REQS_MAX, &d) != SP_BP_ERR_OK)
		return;
	sp_bp_builder_init(&b, out, sizeof(out), true, d.datagram_id);
	for (unsigned i = 0; i < d.count; i++) {
		struct sp_bp_req *q = &reqs[i];
		int rc;

		if (q->err == SP_BP_ERR_OK && q->opcode == SP_TASK_OP_RATELIMIT) {
			atomic_fetch_add(&s->ratelimits, 1);
			rc = sp_task_run_key(&s->reg, q, s->store, s->now_ns, 1, &b, NULL);
		} else if (q->err == SP_BP_ERR_OK && q->opcode == SP_TASK_OP_AGGREGATE) {
			const struct sp_task_def *def = sp_task_find(&s->reg, q->opcode);
			uint8_t acc_buf[SP_TASK_RESULT_MAX];
			struct sp_task_out acc = {.buf = acc_buf, .cap = sizeof(acc_buf)};
			uint32_t part = 0;
			unsigned mode = atomic_load(&s->agg_mode);
			uint8_t st = sp_task_admit(&s->reg, q);

			atomic_fetch_add(&s->aggregates, 1);
			if (st == SP_BP_ST_OK)
				st = sp_task_run_span(&s->reg, def, q->value, q->value_len, &part,
				                      1, &s->store, 0, 1, &acc, NULL);
			if (st == SP_BP_ST_OK && mode == 2)
				st = SP_BP_ST_BAD_REQUEST;
			uint32_t flags = st == SP_BP_ST_OK ? (mode == 1 ? 3u : 4u) : 0u;
			if (st == SP_BP_ST_OK && mode == 1)
				st = SP_BP_ST_PARTIAL;
			uint32_t vlen = st == SP_BP_ST_OK || st == SP_BP_ST_PARTIAL ? acc.len : 0;
			uint8_t *v =
			        sp_bp_add_reply(&b, q->request_id, q->opcode, st, 0, flags, vlen);
			VERIFY(v != NULL);
			memcpy(v, acc_buf, vlen);
			rc = 0;
		} else if (q->err == SP_BP_ERR_OK && q->opcode == SP_TASK_OP_AGGREGATE_KEYS) {
			/* Every key on the one partition, as an owner runs a part. */
			const struct sp_task_def *def = sp_task_find(&s->reg, q->opcode);
			uint8_t acc_buf[SP_TASK_RESULT_MAX];
			struct sp_task_out acc = {.buf = acc_buf, .cap = sizeof(acc_buf)};
			struct sp_task_keys kl;
			uint8_t st = sp_task_admit(&s->reg, q);

			if (st == SP_BP_ST_OK)
				VERIFY(sp_task_keys_decode(q->value, q->value_len, &kl) == 0);
			for (uint32_t j = 0; st == SP_BP_ST_OK && j < kl.count; j++)
				st = sp_task_run_one(&s->reg, def, kl.key[j], kl.key_len[j],
				                     sp_key_hash(kl.key[j], kl.key_len[j]), 0,
				                     kl.arg, kl.arg_len, s->store, 0, 1, &acc,
				                     NULL);
			uint32_t vlen = st == SP_BP_ST_OK ? acc.len : 0;
			uint8_t *v = sp_bp_add_reply(&b, q->request_id, q->opcode, st, 0,
			                             st == SP_BP_ST_OK ? kl.count : 0, vlen);
			VERIFY(v != NULL);
			memcpy(v, acc_buf, vlen);
			rc = 0;
		} else {
			rc = sp_binexec_run(s->store, q, 1, NULL, &b, NULL);
		}
		VERIFY(rc == 0);
	}
	uint32_t n = sp_bp_builder_finish(&b);
	(void)sendto(s->fd, out, n, 0, (const struct sockaddr *)from, sizeof(*from));
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
	uint8_t buf[SP_BP_PAYLOAD_MAX + 1];

	while (!atomic_load(&s->stop)) {
		if (poll(&pfd, 1, SERVER_POLL_MS) <= 0)
			continue;
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(s->fd, buf, sizeof(buf), MSG_DONTWAIT,
		                     (struct sockaddr *)&from, &fl);
		if (n > 0)
			serve(s, buf, (size_t)n, &from);
	}
	return NULL;
}

static int
server_start(void **state)
{
	struct server *s = &srv;
	uint64_t r = sp_mono_ns() ^ (uint64_t)getpid();

	memset(s, 0, sizeof(*s));
	for (unsigned attempt = 0; attempt < BIND_TRIES_MAX && s->port == 0; attempt++) {
		uint16_t port = (uint16_t)(20000 + (r + attempt * 7919u) % 40000u);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s->fd < 0)
			return -1;
		if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			s->port = port;
		else
			close(s->fd);
	}
	if (s->port == 0)
		return -1;
	s->store = test_store_new(STORE_BYTES, 0);
	sp_task_registry_init(&s->reg);
	if (s->store == NULL || sp_ratelimit_register(&s->reg, 64, NULL, 0) != 0 ||
	    sp_aggregate_register(&s->reg, NULL, 0) != 0 ||
	    sp_task_start(&s->reg, 1, sp_task_heap_alloc, sp_task_heap_free, NULL, NULL, 0) != 0)
		return -1;
	if (pthread_create(&s->thread, NULL, server_main, s) != 0)
		return -1;
	*state = s;
	return 0;
}

static int
server_stop(void **state)
{
	struct server *s = *state;

	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	close(s->fd);
	sp_task_stop(&s->reg, sp_task_heap_free, NULL);
	sp_task_registry_fini(&s->reg);
	VERIFY(store_check(s->store) == 0);
	free(s->store);
	return 0;
}

static struct sp_client *
connect_client(const struct server *s)
{
	struct sp_client_params p = {
	        .host = "127.0.0.1", .port = s->port, .timeout_ms = 200, .no_route = true};
	int err = 1;
	struct sp_client *c = sp_client_create(&p, &err);

	assert_non_null(c);
	assert_int_equal(err, 0);
	return c;
}

static void
test_ratelimit(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s);
	struct sp_rl_result r;

	/* A burst of 3 at 2/s: three allowed, then denied with half a second to wait. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sp_client_ratelimit(c, "api:alice", 9, 2, 3, 1, &r), 0);
		assert_true(r.allowed);
		assert_int_equal(r.remaining, 2 - i);
	}
	assert_int_equal(sp_client_ratelimit(c, "api:alice", 9, 2, 3, 1, &r), 0);
	assert_false(r.allowed);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.wait_ns, 500000000ull);
	/* Another key has its own bucket. */
	assert_int_equal(sp_client_ratelimit(c, "api:bob", 7, 2, 3, 3, &r), 0);
	assert_true(r.allowed);
	/* Arguments out of range are refused locally, never sent. */
	unsigned before = atomic_load(&s->ratelimits);
	assert_int_equal(sp_client_ratelimit(c, "k", 1, 0, 3, 1, &r), -EINVAL);
	assert_int_equal(sp_client_ratelimit(c, "k", 1, 1, 3, 4, &r), -EINVAL);
	assert_int_equal(sp_client_ratelimit(c, "", 0, 1, 3, 1, &r), -EINVAL);
	assert_int_equal(atomic_load(&s->ratelimits), before);
	sp_client_destroy(c);
}

static void
test_aggregate(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s);
	struct sp_agg_result r;
	uint32_t parts = 99;
	bool partial = true;
	uint64_t v;

	assert_int_equal(sp_client_incr(c, "hits:a", 6, 0, &(uint64_t){5}, &v), 0);
	assert_int_equal(sp_client_incr(c, "hits:b", 6, 0, &(uint64_t){9}, &v), 0);
	assert_int_equal(sp_client_incr(c, "hits:c", 6, 0, &(uint64_t){1}, &v), 0);
	assert_int_equal(sp_client_set(c, "hits:x", 6, "text", 4, 0, 0), 0);
	assert_int_equal(sp_client_incr(c, "other", 5, 0, &(uint64_t){100}, &v), 0);

	atomic_store(&s->agg_mode, 0);
	assert_int_equal(sp_client_aggregate(c, "hits:", 5, 2, SP_BP_TASK_SCOPE_CLUSTER, &r, &parts,
	                                     &partial),
	                 0);
	assert_false(partial);
	assert_int_equal(parts, 4);
	assert_int_equal(r.count, 3);
	assert_int_equal(r.sum_lo, 15);
	assert_int_equal(r.skipped, 1);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.top[0].value, 9);
	assert_memory_equal(r.top[0].key, "hits:b", 6);
	assert_int_equal(r.top[1].value, 5);

	atomic_store(&s->agg_mode, 1);
	assert_int_equal(
	        sp_client_aggregate(c, "", 0, 0, SP_BP_TASK_SCOPE_NODE, &r, &parts, &partial), 0);
	assert_true(partial);
	assert_int_equal(parts, 3);
	assert_int_equal(r.count, 4);
	assert_int_equal(r.sum_lo, 115);

	atomic_store(&s->agg_mode, 2);
	assert_int_equal(sp_client_aggregate(c, "", 0, 0, SP_BP_TASK_SCOPE_CLUSTER, &r, NULL, NULL),
	                 -SP_EMALFORMED);
	atomic_store(&s->agg_mode, 0);
	assert_int_equal(sp_client_aggregate(c, "", 0, SP_AGG_TOPK_MAX + 1,
	                                     SP_BP_TASK_SCOPE_CLUSTER, &r, NULL, NULL),
	                 -EINVAL);
	assert_int_equal(sp_client_aggregate(c, "", 0, 1, SP_BP_TASK_SCOPE_WORKER, &r, NULL, NULL),
	                 -EINVAL);

	/* Over a list of keys: counters, a value that is not one, an absent key. */
	static const char *const keys[] = {"hits:a", "hits:b", "hits:x", "nope"};
	uint32_t answered = 0;
	assert_int_equal(sp_client_aggregate_keys(c, keys, 4, 1, SP_BP_TASK_SCOPE_CLUSTER, &r,
	                                          &answered, &partial),
	                 0);
	assert_false(partial);
	assert_int_equal(answered, 4);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.sum_lo, 14);
	assert_int_equal(r.skipped, 1);
	assert_int_equal(r.n, 1);
	assert_memory_equal(r.top[0].key, "hits:b", 6);
	static const char *const twice[] = {"k", "k"};
	assert_int_equal(
	        sp_client_aggregate_keys(c, twice, 2, 1, SP_BP_TASK_SCOPE_CLUSTER, &r, NULL, NULL),
	        -EINVAL);
	assert_int_equal(
	        sp_client_aggregate_keys(c, keys, 0, 1, SP_BP_TASK_SCOPE_CLUSTER, &r, NULL, NULL),
	        -EINVAL);
	sp_client_destroy(c);
}

static int
run_cli(const struct server *s, const char *args, char *out, size_t cap)
{
	const char *cli = getenv("SP_CLIENT_CLI");
	char cmd[1024];

	assert_non_null(cli);
	snprintf(cmd, sizeof(cmd), "'%s' --server 127.0.0.1:%u --no-route --timeout-ms 300 %s 2>&1",
	         cli, s->port, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int status = pclose(f);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_cli(void **state)
{
	struct server *s = *state;
	static char out[4096];

	if (getenv("SP_CLIENT_CLI") == NULL)
		skip();
	assert_int_equal(run_cli(s, "ratelimit cli:k 1 2", out, sizeof(out)), 0);
	assert_string_equal(out, "ALLOWED remaining=1 wait_ns=0\n");
	assert_int_equal(run_cli(s, "ratelimit cli:k 1 2 2", out, sizeof(out)), 0);
	assert_string_equal(out, "DENIED remaining=1 wait_ns=1000000000\n");
	assert_int_equal(run_cli(s, "ratelimit cli:k 1 2 3", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "ratelimit cli:k 0 2", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "ratelimit cli:k", out, sizeof(out)), 2);

	assert_int_equal(run_cli(s, "incr cli:n1 0 --initial 7", out, sizeof(out)), 0);
	assert_int_equal(run_cli(s, "incr cli:n2 0 --initial 3", out, sizeof(out)), 0);
	atomic_store(&s->agg_mode, 0);
	assert_int_equal(run_cli(s, "aggregate cli:n 1", out, sizeof(out)), 0);
	assert_string_equal(out, "count=2 sum=10 skipped=0 partitions=4\n7 cli:n1\n");
	atomic_store(&s->agg_mode, 1);
	assert_int_equal(run_cli(s, "--node aggregate cli:n 0", out, sizeof(out)), 1);
	assert_string_equal(out, "count=2 sum=10 skipped=0 partitions=3 PARTIAL\n");
	atomic_store(&s->agg_mode, 0);
	assert_int_equal(run_cli(s, "aggregate-keys 1 cli:n1 cli:n2 cli:none", out, sizeof(out)),
	                 0);
	assert_string_equal(out, "count=2 sum=10 skipped=0 keys=3\n7 cli:n1\n");
	assert_int_equal(run_cli(s, "aggregate-keys 1 cli:n1 cli:n1", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "aggregate-keys 1", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "aggregate cli:n 17", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "aggregate", out, sizeof(out)), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ratelimit),
	        cmocka_unit_test(test_aggregate),
	        cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, server_start, server_stop);
}
