/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client library against a tiny UDP server on loopback: one kernel socket per
 * "worker" on consecutive ports, each worker with its own store, requests executed with
 * binexec. The server checks that every key arrives at its owner's port, and can drop,
 * duplicate, split or swallow replies so batching, routing, retries and timeouts are
 * exercised without DPDK. The randomized test prints its seed (replay: SP_TEST_SEED).
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
#include "dataplane/store/store.h"
#include "wire/binproto.h"

#define WORKERS         4u
#define PARTITIONS      1024u /* more than one ROUTE page */
#define STORE_BYTES     (1u << 20)
#define BIND_TRIES_MAX  64u
#define SERVER_POLL_MS  5
#define TEST_TIMEOUT_MS 100u
#define RANDOM_ROUNDS   200u
#define RANDOM_KEYS     48u

struct server {
	int fd[WORKERS];
	uint16_t base_port;
	uint16_t owner[PARTITIONS];   /* partition -> worker */
	uint16_t entries[PARTITIONS]; /* the same as ROUTE entries: node 0, worker */
	struct sp_bp_route_node node;
	struct sp_binexec_route route;
	void *mem[WORKERS];
	struct store *store[WORKERS];
	pthread_t thread;
	atomic_bool stop;

	/* Fault injection, set by tests before they send. */
	atomic_uint drop_next;         /* drop this many incoming datagrams */
	atomic_bool silent;            /* never answer */
	atomic_bool duplicate;         /* send every reply datagram twice */
	atomic_uint replies_per_dgram; /* 0 = as many as fit */
	atomic_bool epoch_flip;        /* a new routing epoch before every ROUTE answer */
	atomic_bool garbage;           /* send a malformed datagram before every reply */
	atomic_uint busy_next;         /* refuse this many key requests SERVER_BUSY */

	/* What the server saw. */
	atomic_ulong datagrams[WORKERS];
	atomic_ulong requests;
	atomic_ulong misrouted; /* key requests that arrived at a worker not owning them */
	atomic_ulong dropped;
	atomic_ulong routes; /* ROUTE requests answered */
};

static struct server srv;

/* Binds WORKERS UDP sockets on consecutive loopback ports. Returns 0 or -1. */
static int
bind_workers(struct server *s)
{
	uint64_t r = sp_mono_ns() ^ (uint64_t)getpid();

	for (unsigned attempt = 0; attempt < BIND_TRIES_MAX; attempt++) {
		uint16_t base = (uint16_t)(20000 + (r + attempt * 7919u) % 40000u);
		unsigned ok = 0;

		for (; ok < WORKERS; ok++) {
			struct sockaddr_in a = {.sin_family = AF_INET,
			                        .sin_port = htons((uint16_t)(base + ok))};
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			s->fd[ok] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (s->fd[ok] < 0)
				break;
			if (bind(s->fd[ok], (struct sockaddr *)&a, sizeof(a)) != 0) {
				close(s->fd[ok]);
				break;
			}
		}
		if (ok == WORKERS) {
			s->base_port = base;
			return 0;
		}
		while (ok-- > 0)
			close(s->fd[ok]);
	}
	return -1;
}

static void
send_reply(struct server *s, unsigned w, struct sp_bp_builder *b, const struct sockaddr_in *to)
{
	uint32_t len = sp_bp_builder_finish(b);
	unsigned copies = atomic_load(&s->duplicate) ? 2 : 1;

	if (b->count == 0)
		return;
	if (atomic_load(&s->garbage)) {
		static const uint8_t junk[] = "not a shardplane datagram";
		(void)sendto(s->fd[w], junk, sizeof(junk), 0, (const struct sockaddr *)to,
		             sizeof(*to));
	}
	for (unsigned i = 0; i < copies; i++)
		(void)sendto(s->fd[w], b->buf, len, 0, (const struct sockaddr *)to, sizeof(*to));
}

/* Serves one datagram received by worker w. */
static void
serve(struct server *s, unsigned w, const uint8_t *buf, size_t len, const struct sockaddr_in *from)
{
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint8_t out[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	uint32_t now_s = (uint32_t)(sp_mono_ns() / SP_NS_PER_S);

	if (sp_bp_decode_requests(buf, len, PARTITIONS, reqs, SP_BP_REQS_MAX, &d) != SP_BP_ERR_OK)
		return;
	unsigned per = atomic_load(&s->replies_per_dgram);
	sp_bp_builder_init(&b, out, sizeof(out), true, d.datagram_id);
	for (unsigned i = 0; i < d.count; i++) {
		struct sp_bp_req *q = &reqs[i];
		atomic_fetch_add(&s->requests, 1);
		bool keyed = q->err == SP_BP_ERR_OK && sp_bp_op_has_key(q->opcode);
		int rc;
		if (q->err == SP_BP_ERR_OK && q->opcode == SP_BP_OP_ROUTE) {
			atomic_fetch_add(&s->routes, 1);
			/* Only this thread reads the route, so it may change it here. */
			if (atomic_load(&s->epoch_flip))
				s->route.epoch++;
		}
		unsigned busy = atomic_load(&s->busy_next);
		if (keyed && s->owner[q->partition] != w) {
			atomic_fetch_add(&s->misrouted, 1);
			rc = sp_binexec_refuse(q, SP_BP_ST_WRONG_PARTITION, &b, NULL);
		} else if (keyed && busy > 0) {
			/* As the node does: refused, not executed. */
			atomic_store(&s->busy_next, busy - 1);
			rc = sp_binexec_refuse(q, SP_BP_ST_SERVER_BUSY, &b, NULL);
		} else {
			rc = sp_binexec_run(s->store[w], q, now_s, &s->route, &b, NULL);
		}
		if (rc == -SP_EFULL) {
			send_reply(s, w, &b, from);
			sp_bp_builder_init(&b, out, sizeof(out), true, d.datagram_id);
			i--; /* run it again in the fresh datagram */
			continue;
		}
		VERIFY(rc == 0);
		if (per != 0 && b.count >= per) {
			send_reply(s, w, &b, from);
			sp_bp_builder_init(&b, out, sizeof(out), true, d.datagram_id);
		}
	}
	send_reply(s, w, &b, from);
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd[WORKERS];
	uint8_t buf[SP_BP_PAYLOAD_MAX + 1];

	for (unsigned w = 0; w < WORKERS; w++)
		pfd[w] = (struct pollfd){.fd = s->fd[w], .events = POLLIN};
	while (!atomic_load(&s->stop)) {
		if (poll(pfd, WORKERS, SERVER_POLL_MS) <= 0)
			continue;
		for (unsigned w = 0; w < WORKERS; w++) {
			if ((pfd[w].revents & POLLIN) == 0)
				continue;
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(s->fd[w], buf, sizeof(buf), MSG_DONTWAIT,
			                     (struct sockaddr *)&from, &fl);
			if (n <= 0)
				continue;
			atomic_fetch_add(&s->datagrams[w], 1);
			unsigned drop = atomic_load(&s->drop_next);
			if (drop > 0 &&
			    atomic_compare_exchange_strong(&s->drop_next, &drop, drop - 1)) {
				atomic_fetch_add(&s->dropped, 1);
				continue;
			}
			if (atomic_load(&s->silent))
				continue;
			serve(s, w, buf, (size_t)n, &from);
		}
	}
	return NULL;
}

static int
server_start(void **state)
{
	struct server *s = &srv;
	struct store_params p = {.bytes = STORE_BYTES};

	memset(s, 0, sizeof(*s));
	if (bind_workers(s) != 0)
		return -1;
	for (unsigned i = 0; i < PARTITIONS; i++) {
		s->owner[i] = (uint16_t)((i * 7u) % WORKERS); /* not simply i % WORKERS */
		s->entries[i] = sp_bp_route_entry(0, s->owner[i]);
	}
	s->node = (struct sp_bp_route_node){.node_id = 1,
	                                    .ipv4_be = htonl(INADDR_LOOPBACK),
	                                    .binary_port = s->base_port,
	                                    .worker_count = WORKERS};
	s->route = (struct sp_binexec_route){.epoch = 11,
	                                     .partitions = PARTITIONS,
	                                     .node_count = 1,
	                                     .self = 0,
	                                     .nodes = &s->node,
	                                     .owner = s->entries};
	for (unsigned w = 0; w < WORKERS; w++) {
		s->mem[w] = aligned_alloc(STORE_MEM_ALIGN, STORE_BYTES);
		if (s->mem[w] == NULL)
			return -1;
		s->store[w] = store_init(s->mem[w], STORE_BYTES, &p);
		if (s->store[w] == NULL)
			return -1;
	}
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
	for (unsigned w = 0; w < WORKERS; w++) {
		close(s->fd[w]);
		VERIFY(store_check(s->store[w]) == 0);
		free(s->mem[w]);
	}
	return 0;
}

/* Resets fault injection and the misrouting count before each test. */
static int
faults_off(void **state)
{
	struct server *s = *state;

	atomic_store(&s->drop_next, 0);
	atomic_store(&s->silent, false);
	atomic_store(&s->duplicate, false);
	atomic_store(&s->replies_per_dgram, 0);
	atomic_store(&s->epoch_flip, false);
	atomic_store(&s->garbage, false);
	atomic_store(&s->busy_next, 0);
	atomic_store(&s->misrouted, 0);
	return 0;
}

static struct sp_client *
connect_client(const struct server *s, bool no_route, int32_t retries, bool retry_all)
{
	struct sp_client_params p = {.host = "127.0.0.1",
	                             .port = s->base_port,
	                             .timeout_ms = TEST_TIMEOUT_MS,
	                             .retries = retries,
	                             .no_route = no_route,
	                             .retry_all = retry_all};
	int err = 1;
	struct sp_client *c = sp_client_create(&p, &err);

	assert_non_null(c);
	assert_int_equal(err, 0);
	return c;
}

static unsigned long
total_datagrams(struct server *s)
{
	unsigned long n = 0;
	for (unsigned w = 0; w < WORKERS; w++)
		n += atomic_load(&s->datagrams[w]);
	return n;
}

/* ---- Tests ------------------------------------------------------------------------------ */

static void
test_create_rejects_bad_params(void **state)
{
	(void)state;
	struct sp_client_params p = {.host = "not-an-ip", .port = 9000};
	int err = 0;

	assert_null(sp_client_create(&p, &err));
	assert_int_equal(err, -EINVAL);
	p.host = "127.0.0.1";
	p.port = 0;
	assert_null(sp_client_create(&p, &err));
	assert_int_equal(err, -EINVAL);
	p.port = 9000;
	p.retries = SP_CLIENT_RETRIES_MAX + 1;
	assert_null(sp_client_create(&p, &err));
	assert_int_equal(err, -EINVAL);
	p.retries = 0;
	p.route_refresh_ms = SP_CLIENT_ROUTE_REFRESH_MS_MAX + 1;
	assert_null(sp_client_create(&p, &err));
	assert_int_equal(err, -EINVAL);
	p.route_refresh_ms = 0;
	p.timeout_ms = SP_CLIENT_TIMEOUT_MS_MAX + 1;
	assert_null(sp_client_create(&p, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(sp_client_create(NULL, &err));
	sp_client_destroy(NULL);
}

static void
test_sync_ops(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, -1, false);
	char buf[64];
	uint32_t len = 0;
	uint32_t flags = 0;
	uint64_t cas = 0;
	uint64_t cas2 = 0;
	uint64_t v = 0;

	assert_int_equal(sp_client_get(c, "nope", 4, buf, sizeof(buf), &len, NULL, NULL),
	                 -SP_ENOTFOUND);
	assert_int_equal(sp_client_set(c, "k", 1, "value", 5, 42, 0), 0);
	assert_int_equal(sp_client_get(c, "k", 1, buf, sizeof(buf), &len, &flags, &cas), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "value", 5);
	assert_int_equal(flags, 42);
	assert_true(cas != 0);

	/* A short buffer gets a prefix and the full length. */
	assert_int_equal(sp_client_get(c, "k", 1, buf, 2, &len, NULL, NULL), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "va", 2);

	assert_int_equal(sp_client_store(c, SP_BP_OP_ADD, "k", 1, "x", 1, 0, 0, 0, NULL),
	                 -SP_EEXISTS);
	assert_int_equal(sp_client_store(c, SP_BP_OP_REPLACE, "zz", 2, "x", 1, 0, 0, 0, NULL),
	                 -SP_ENOTFOUND);
	assert_int_equal(sp_client_store(c, SP_BP_OP_SET, "k", 1, "v2", 2, 0, 0, cas + 1, NULL),
	                 -SP_EVERSION);
	assert_int_equal(sp_client_store(c, SP_BP_OP_SET, "k", 1, "v2", 2, 0, 0, cas, &cas2), 0);
	assert_true(cas2 != cas);
	assert_int_equal(sp_client_del(c, "k", 1, cas), -SP_EVERSION);
	assert_int_equal(sp_client_del(c, "k", 1, cas2), 0);
	assert_int_equal(sp_client_del(c, "k", 1, 0), -SP_ENOTFOUND);

	uint64_t initial = 100;
	assert_int_equal(sp_client_incr(c, "n", 1, 1, NULL, &v), -SP_ENOTFOUND);
	assert_int_equal(sp_client_incr(c, "n", 1, 1, &initial, &v), 0);
	assert_true(v == 100);
	assert_int_equal(sp_client_incr(c, "n", 1, 5, NULL, &v), 0);
	assert_true(v == 105);
	assert_int_equal(sp_client_decr(c, "n", 1, 200, NULL, &v), 0);
	assert_true(v == 0);
	assert_int_equal(sp_client_set(c, "w", 1, "abc", 3, 0, 0), 0);
	assert_int_equal(sp_client_incr(c, "w", 1, 1, NULL, &v), -SP_ENOTNUM);

	/* Refused locally: never sent. */
	struct sp_client_stats before;
	struct sp_client_stats after;
	static char longkey[SP_BP_KEY_MAX + 1];
	memset(longkey, 'k', sizeof(longkey));
	sp_client_stats_get(c, &before);
	assert_int_equal(
	        sp_client_get(c, longkey, sizeof(longkey), buf, sizeof(buf), NULL, NULL, NULL),
	        -SP_ETOOBIG);
	assert_int_equal(sp_client_get(c, "", 0, buf, sizeof(buf), NULL, NULL, NULL), -EINVAL);
	static uint8_t bigval[SP_BP_VALUE_MAX + 1];
	assert_int_equal(sp_client_set(c, "b", 1, bigval, sizeof(bigval), 0, 0), -SP_ETOOBIG);
	assert_int_equal(sp_client_set(c, "b", 1, bigval, SP_BP_VALUE_MAX, 0, 0), 0);
	sp_client_stats_get(c, &after);
	assert_true(after.datagrams_sent == before.datagrams_sent + 1);
	assert_int_equal(atomic_load(&s->misrouted), 0);
	sp_client_destroy(c);
}

static void
test_routing_to_owner_ports(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, -1, false);
	struct sp_bp_route r;
	char key[32];

	assert_true(sp_client_route(c, &r));
	assert_true(r.epoch == s->route.epoch);
	assert_int_equal(r.partitions, PARTITIONS);
	assert_int_equal(r.node_count, 1);
	assert_int_equal(r.self, 0);
	struct sp_bp_route_node nd;
	assert_int_equal(sp_client_route_node(c, 0, &nd), 0);
	assert_int_equal(nd.binary_port, s->base_port);
	assert_int_equal(nd.worker_count, WORKERS);
	assert_int_equal(nd.ipv4_be, htonl(INADDR_LOOPBACK));
	assert_int_equal(sp_client_route_node(c, 1, &nd), -ENOENT);
	for (uint32_t p = 0; p < PARTITIONS; p++)
		assert_int_equal(sp_client_route_owner(c, p), s->owner[p]);
	assert_int_equal(sp_client_route_owner(c, PARTITIONS), -ENOENT);

	unsigned long before[WORKERS];
	for (unsigned w = 0; w < WORKERS; w++)
		before[w] = atomic_load(&s->datagrams[w]);
	for (unsigned i = 0; i < 200; i++) {
		int n = snprintf(key, sizeof(key), "route:%u", i);
		uint64_t h = sp_key_hash(key, (size_t)n);
		uint16_t port = sp_client_port_for_key(c, key, (size_t)n);
		assert_int_equal(port, s->base_port + s->owner[sp_key_partition(h, PARTITIONS)]);
		assert_int_equal(sp_client_set(c, key, (size_t)n, key, (uint32_t)n, 0, 0), 0);
	}
	/* Every worker got traffic, and nothing arrived at the wrong one. */
	for (unsigned w = 0; w < WORKERS; w++)
		assert_true(atomic_load(&s->datagrams[w]) > before[w]);
	assert_int_equal(atomic_load(&s->misrouted), 0);
	sp_client_destroy(c);
}

static void
test_no_route_gets_wrong_partition(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, true, 0, false);
	struct sp_bp_route r;
	char key[32];
	unsigned wrong = 0;

	assert_false(sp_client_route(c, &r));
	assert_int_equal(sp_client_route_refresh(c), -ENOTSUP);
	unsigned long misrouted = atomic_load(&s->misrouted);
	for (unsigned i = 0; i < 40; i++) {
		int n = snprintf(key, sizeof(key), "nr:%u", i);
		uint32_t p = sp_key_partition(sp_key_hash(key, (size_t)n), PARTITIONS);
		int rc = sp_client_set(c, key, (size_t)n, "v", 1, 0, 0);
		if (s->owner[p] == 0) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -SP_EWRONGNODE);
			wrong++;
		}
	}
	assert_true(wrong > 0);
	assert_int_equal(atomic_load(&s->misrouted) - misrouted, wrong);
	struct sp_client_stats st;
	sp_client_stats_get(c, &st);
	assert_int_equal(st.wrong_partition, wrong);
	sp_client_destroy(c);
}

/* Every status maps to its own code, and each code reads as a sentence, not errno text. */
static void
test_status_errors(void **state)
{
	(void)state;
	assert_int_equal(sp_client_status_error(SP_BP_ST_OK), 0);
	assert_int_equal(sp_client_status_error(SP_BP_ST_WRONG_PARTITION), -SP_EWRONGNODE);
	assert_int_equal(sp_client_status_error(SP_BP_ST_NOT_SERVING), -SP_ENOTSERVING);
	assert_int_equal(sp_client_status_error(SP_BP_ST_NOT_READY), -SP_ENOTREADY);
	assert_int_equal(sp_client_status_error(SP_BP_ST_UNAVAILABLE), -SP_EUNAVAIL);
	assert_int_equal(sp_client_status_error(SP_BP_ST_INTERNAL), -EIO);
	assert_int_equal(sp_client_status_error(SP_BP_ST_LAST), -EIO);
	assert_non_null(strstr(sp_strerror(-SP_EWRONGNODE), "another node"));
	assert_non_null(strstr(sp_strerror(-SP_ENOTSERVING), "not serving"));
	assert_non_null(strstr(sp_strerror(-SP_ENOTREADY), "no cluster map"));
	assert_non_null(strstr(sp_strerror(-SP_EUNAVAIL), "did not answer"));
	/* Distinct codes for distinct statuses. */
	for (int a = SP_BP_ST_NOT_FOUND; a < SP_BP_ST_LAST; a++)
		for (int b = a + 1; b < SP_BP_ST_LAST; b++)
			if (a != SP_BP_ST_INTERNAL && b != SP_BP_ST_INTERNAL)
				assert_int_not_equal(sp_client_status_error((uint8_t)a),
				                     sp_client_status_error((uint8_t)b));
}

/* Builds n ops on keys "<prefix>:<i>" into ops/keys. */
static void
make_ops(struct sp_client_op *ops, char (*keys)[32], unsigned n, const char *prefix, uint8_t op,
         char (*out)[64])
{
	for (unsigned i = 0; i < n; i++) {
		int len = snprintf(keys[i], 32, "%s:%u", prefix, i);
		ops[i] = (struct sp_client_op){
		        .opcode = op, .key = keys[i], .key_len = (uint16_t)len};
		if (op == SP_BP_OP_SET) {
			ops[i].value = keys[i];
			ops[i].value_len = (uint32_t)len;
		}
		if (op == SP_BP_OP_GET) {
			ops[i].out_buf = out[i];
			ops[i].out_cap = 64;
		}
	}
}

static void
test_batching(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, -1, false);
	enum { N = 120 };
	static struct sp_client_op ops[N];
	static char keys[N][32];
	static char out[N][64];
	struct sp_client_stats st0;
	struct sp_client_stats st1;

	sp_client_stats_get(c, &st0);
	make_ops(ops, keys, N, "batch", SP_BP_OP_SET, out);
	assert_int_equal(sp_client_execute(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(ops[i].rc, 0);
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
		assert_int_equal(ops[i].attempts, 1);
	}
	sp_client_stats_get(c, &st1);
	/* 120 small requests to 4 ports: a handful of datagrams, not 120. */
	uint64_t sent = st1.datagrams_sent - st0.datagrams_sent;
	assert_true(sent >= WORKERS);
	assert_true(sent <= WORKERS * ((N + SP_BP_REQS_MAX - 1) / SP_BP_REQS_MAX));

	/* Replies split one per datagram are all matched by request id. */
	atomic_store(&s->replies_per_dgram, 1);
	make_ops(ops, keys, N, "batch", SP_BP_OP_GET, out);
	assert_int_equal(sp_client_execute(c, ops, N), 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(ops[i].rc, 0);
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
		assert_int_equal(ops[i].value_len_out, ops[i].key_len);
		assert_memory_equal(out[i], keys[i], ops[i].key_len);
	}

	/* Duplicated reply datagrams are counted as stale and do not disturb results. */
	atomic_store(&s->replies_per_dgram, 0);
	atomic_store(&s->duplicate, true);
	make_ops(ops, keys, 40, "batch", SP_BP_OP_GET, out);
	assert_int_equal(sp_client_execute(c, ops, 40), 0);
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
	make_ops(ops, keys, 8, "batch", SP_BP_OP_GET, out);
	assert_int_equal(sp_client_execute(c, ops, 8), 0);
	sp_client_stats_get(c, &st1);
	assert_true(st1.stale_replies > st0.stale_replies);

	/* Malformed datagrams among the replies are counted and ignored. */
	atomic_store(&s->duplicate, false);
	atomic_store(&s->garbage, true);
	make_ops(ops, keys, 40, "batch", SP_BP_OP_GET, out);
	assert_int_equal(sp_client_execute(c, ops, 40), 0);
	for (unsigned i = 0; i < 40; i++) {
		assert_int_equal(ops[i].rc, 0);
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
	}
	struct sp_client_stats st2;
	sp_client_stats_get(c, &st2);
	assert_true(st2.bad_datagrams >= st1.bad_datagrams + WORKERS);
	assert_int_equal(st2.datagrams_other_host, 0);
	assert_int_equal(atomic_load(&s->misrouted), 0);
	sp_client_destroy(c);
}

static void
test_queue_and_flush(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, -1, false);
	static struct sp_client_op ops[SP_CLIENT_BATCH_MAX + 1];
	static char keys[SP_CLIENT_BATCH_MAX + 1][32];
	static char out[SP_CLIENT_BATCH_MAX + 1][64];

	assert_int_equal(sp_client_flush(c), 0); /* nothing queued */
	make_ops(ops, keys, SP_CLIENT_BATCH_MAX + 1, "queue", SP_BP_OP_SET, out);
	for (unsigned i = 0; i < SP_CLIENT_BATCH_MAX; i++)
		assert_int_equal(sp_client_queue(c, &ops[i]), 0);
	assert_int_equal(sp_client_queued(c), SP_CLIENT_BATCH_MAX);
	assert_int_equal(sp_client_queue(c, &ops[SP_CLIENT_BATCH_MAX]), -SP_EFULL);
	assert_int_equal(sp_client_flush(c), 0);
	assert_int_equal(sp_client_queued(c), 0);
	for (unsigned i = 0; i < SP_CLIENT_BATCH_MAX; i++) {
		assert_int_equal(ops[i].rc, 0);
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
		assert_true(ops[i].cas_out != 0);
	}

	/* Results land in the caller's ops, values in their buffers. */
	make_ops(ops, keys, 3, "queue", SP_BP_OP_GET, out);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(sp_client_queue(c, &ops[i]), 0);
	assert_int_equal(sp_client_flush(c), 0);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
		assert_int_equal(ops[i].value_len_out, ops[i].key_len);
		assert_memory_equal(out[i], keys[i], ops[i].key_len);
	}
	sp_client_destroy(c);
}

static void
test_more_than_one_round(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, -1, false);
	enum { N = SP_CLIENT_BATCH_MAX * 2 + 17 };
	static struct sp_client_op ops[N];
	static char keys[N][32];
	static char out[N][64];

	struct sp_client_stats st0;
	struct sp_client_stats st1;

	make_ops(ops, keys, N, "round", SP_BP_OP_SET, out);
	ops[5].key_len = 0; /* one bad op in the middle: refused locally, rest served */
	sp_client_stats_get(c, &st0);
	assert_int_equal(sp_client_execute(c, ops, N), 0);
	sp_client_stats_get(c, &st1);
	assert_int_equal(st1.ops - st0.ops, N);
	assert_int_equal(st1.replies - st0.replies, N - 1);
	for (unsigned i = 0; i < N; i++) {
		if (i == 5) {
			assert_int_equal(ops[i].rc, -EINVAL);
			assert_int_equal(ops[i].attempts, 0);
			continue;
		}
		assert_int_equal(ops[i].rc, 0);
		assert_int_equal(ops[i].status, SP_BP_ST_OK);
	}
	sp_client_destroy(c);
}

/* A GET of the NUL-terminated key into buf. */
static struct sp_client_op
get_op(const char *key, char *buf, uint32_t cap)
{
	struct sp_client_op op = {.opcode = SP_BP_OP_GET,
	                          .key = key,
	                          .key_len = (uint16_t)strlen(key),
	                          .out_buf = buf,
	                          .out_cap = cap};
	return op;
}

static void
test_retry_after_drop(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, 2, false);
	struct sp_client_stats st;
	char buf[16];
	uint32_t len = 0;

	assert_int_equal(sp_client_set(c, "r1", 2, "one", 3, 0, 0), 0);
	atomic_store(&s->drop_next, 1);
	struct sp_client_op op = get_op("r1", buf, sizeof(buf));
	assert_int_equal(sp_client_execute(c, &op, 1), 0);
	assert_int_equal(op.rc, 0);
	assert_int_equal(op.status, SP_BP_ST_OK);
	assert_int_equal(op.attempts, 2);
	assert_memory_equal(buf, "one", 3);
	sp_client_stats_get(c, &st);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.timeouts, 0);

	/* Two drops, two retries allowed: still served on the third attempt. */
	atomic_store(&s->drop_next, 2);
	assert_int_equal(sp_client_get(c, "r1", 2, buf, sizeof(buf), &len, NULL, NULL), 0);
	assert_int_equal(len, 3);

	/* incr is not idempotent: a dropped request is reported, not resent. */
	uint64_t initial = 7;
	uint64_t v = 0;
	unsigned long dropped = atomic_load(&s->dropped);
	atomic_store(&s->drop_next, 1);
	struct sp_client_op inc = {.opcode = SP_BP_OP_INCR,
	                           .key = "ctr",
	                           .key_len = 3,
	                           .delta = 1,
	                           .create = true,
	                           .initial = initial};
	assert_int_equal(sp_client_execute(c, &inc, 1), 0);
	assert_int_equal(inc.rc, -ETIMEDOUT);
	assert_int_equal(inc.attempts, 1);
	assert_int_equal(atomic_load(&s->dropped), dropped + 1);
	sp_client_destroy(c);

	/* With retry_all it is resent (at-least-once). */
	c = connect_client(s, false, 2, true);
	atomic_store(&s->drop_next, 1);
	assert_int_equal(sp_client_incr(c, "ctr", 3, 1, &initial, &v), 0);
	assert_true(v == 7);
	sp_client_destroy(c);
}

/*
 * SERVER_BUSY means refused, not executed: the client sends the request again, even a
 * non-idempotent one, while attempts remain, and reports the status when they run out.
 */
static void
test_busy_is_retried(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, 2, false);
	struct sp_client_stats st;
	char buf[16];
	uint32_t len = 0;

	assert_int_equal(sp_client_set(c, "b1", 2, "busy", 4, 0, 0), 0);
	atomic_store(&s->busy_next, 2);
	struct sp_client_op op = get_op("b1", buf, sizeof(buf));
	assert_int_equal(sp_client_execute(c, &op, 1), 0);
	assert_int_equal(op.rc, 0);
	assert_int_equal(op.status, SP_BP_ST_OK);
	assert_int_equal(op.attempts, 3);
	assert_memory_equal(buf, "busy", 4);
	sp_client_stats_get(c, &st);
	assert_int_equal(st.busy, 2);
	assert_int_equal(st.retries, 0);
	assert_int_equal(st.timeouts, 0);

	/* incr is not idempotent, but a refused one never ran: it runs exactly once. */
	uint64_t initial = 40;
	uint64_t v = 0;
	atomic_store(&s->busy_next, 1);
	assert_int_equal(sp_client_incr(c, "bctr", 4, 2, &initial, &v), 0);
	assert_true(v == 40);
	assert_int_equal(sp_client_incr(c, "bctr", 4, 2, NULL, &v), 0);
	assert_true(v == 42);

	/* Busy on every attempt: the last answer is the result. */
	atomic_store(&s->busy_next, 3);
	assert_int_equal(sp_client_get(c, "b1", 2, buf, sizeof(buf), &len, NULL, NULL), -SP_EBUSY);
	assert_int_equal(atomic_load(&s->busy_next), 0);
	sp_client_stats_get(c, &st);
	assert_int_equal(st.busy, 2 + 1 + 2);
	assert_int_equal(st.timeouts, 0);
	sp_client_destroy(c);

	/* No retries allowed: the first SERVER_BUSY is the result. */
	c = connect_client(s, false, 0, false);
	atomic_store(&s->busy_next, 1);
	op.attempts = 0;
	assert_int_equal(sp_client_execute(c, &op, 1), 0);
	assert_int_equal(op.rc, 0);
	assert_int_equal(op.status, SP_BP_ST_SERVER_BUSY);
	assert_int_equal(op.attempts, 1);
	sp_client_destroy(c);
}

static void
test_timeout_is_bounded(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, 2, false);
	struct sp_client_stats st;
	char buf[8];

	atomic_store(&s->silent, true);
	unsigned long seen = total_datagrams(s);
	uint64_t t0 = sp_mono_ns();
	struct sp_client_op op = get_op("t", buf, sizeof(buf));
	assert_int_equal(sp_client_execute(c, &op, 1), 0);
	uint64_t elapsed_ms = (sp_mono_ns() - t0) / SP_NS_PER_MS;
	assert_int_equal(op.rc, -ETIMEDOUT);
	assert_int_equal(op.attempts, 3);
	/* Three attempts of TEST_TIMEOUT_MS each, and not much more. */
	assert_true(elapsed_ms >= 3 * TEST_TIMEOUT_MS - 5);
	assert_true(elapsed_ms < 3 * TEST_TIMEOUT_MS + 2000);
	sp_client_stats_get(c, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.retries, 2);
	/* The server saw exactly the three attempts (give its poll loop a moment). */
	usleep(50 * 1000);
	assert_int_equal(total_datagrams(s) - seen, 3);
	atomic_store(&s->silent, false);
	sp_client_destroy(c);

	/* No server at all: creation works (routing is retried later), ops time out. */
	struct sp_client_params p = {.host = "127.0.0.1",
	                             .port = (uint16_t)(s->base_port + WORKERS),
	                             .timeout_ms = 20,
	                             .retries = 0};
	int err = 1;
	c = sp_client_create(&p, &err);
	assert_non_null(c);
	assert_int_equal(sp_client_get(c, "t", 1, buf, sizeof(buf), NULL, NULL, NULL), -ETIMEDOUT);
	sp_client_destroy(c);
}

static void
test_route_fetch_retry_and_keep(void **state)
{
	struct server *s = *state;
	struct sp_bp_route r;

	/* Created while the node does not answer: no table, requests go to the base port. */
	atomic_store(&s->silent, true);
	struct sp_client *c = connect_client(s, false, 0, false);
	assert_false(sp_client_route(c, &r));
	assert_int_equal(sp_client_port_for_key(c, "x", 1), s->base_port);
	atomic_store(&s->silent, false);

	/* The next batch after SP_CLIENT_ROUTE_RETRY_MS fetches it. */
	usleep((SP_CLIENT_ROUTE_RETRY_MS + 50) * 1000);
	assert_int_equal(sp_client_set(c, "rk", 2, "v", 1, 0, 0), 0);
	assert_true(sp_client_route(c, &r));
	assert_true(r.epoch == s->route.epoch);

	/* A failed refresh keeps the table in use. */
	atomic_store(&s->silent, true);
	assert_int_equal(sp_client_route_refresh(c), -ETIMEDOUT);
	assert_true(sp_client_route(c, &r));
	assert_int_equal(r.partitions, PARTITIONS);
	for (uint32_t p = 0; p < PARTITIONS; p++)
		assert_int_equal(sp_client_route_owner(c, p), s->owner[p]);
	atomic_store(&s->silent, false);
	struct sp_client_stats st;
	sp_client_stats_get(c, &st);
	assert_true(st.route_refreshes >= 3);
	sp_client_destroy(c);
}

/* Pages from different epochs never mix: the refresh starts over, a bounded number of times. */
static void
test_route_mixed_epochs_bounded(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, 0, false);
	struct sp_bp_route before;
	struct sp_bp_route after;

	assert_true(sp_client_route(c, &before));
	SP_STATIC_ASSERT(PARTITIONS > SP_BP_ROUTE_PAGE_MAX, "the table takes several pages");
	atomic_store(&s->epoch_flip, true);
	unsigned long routes = atomic_load(&s->routes);
	assert_int_equal(sp_client_route_refresh(c), -SP_EMALFORMED);
	/* Each round: page 0, then page 1 whose epoch differs; SP_CLIENT_RETRIES_MAX + 1 rounds. */
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&s->routes) - routes, 2 * (SP_CLIENT_RETRIES_MAX + 1));
	/* The table in use is untouched. */
	assert_true(sp_client_route(c, &after));
	assert_true(after.epoch == before.epoch);
	atomic_store(&s->epoch_flip, false);
	assert_int_equal(sp_client_route_refresh(c), 0);
	assert_true(sp_client_route(c, &after));
	assert_true(after.epoch != before.epoch);
	sp_client_destroy(c);
}

/* Random batches of distinct keys against a model of the expected values. */
static void
test_random_against_model(void **state)
{
	struct server *s = *state;
	struct sp_client *c = connect_client(s, false, -1, false);
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (sp_mono_ns() ^ (uint64_t)getpid());
	uint64_t x = seed | 1;
	static int64_t model[RANDOM_KEYS]; /* -1 absent, else the counter value */
	static struct sp_client_op ops[RANDOM_KEYS];
	static char keys[RANDOM_KEYS][32];
	static char out[RANDOM_KEYS][64];

	printf("test_random_against_model: SP_TEST_SEED=%" PRIu64 "\n", seed);
	for (unsigned k = 0; k < RANDOM_KEYS; k++) {
		model[k] = -1;
		snprintf(keys[k], sizeof(keys[k]), "rnd:%" PRIu64 ":%u", seed, k);
	}
	for (unsigned round = 0; round < RANDOM_ROUNDS; round++) {
		unsigned n = 0;
		for (unsigned k = 0; k < RANDOM_KEYS; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (x % 3 == 0)
				continue; /* this key sits the round out */
			struct sp_client_op *op = &ops[n++];
			*op = (struct sp_client_op){.key = keys[k],
			                            .key_len = (uint16_t)strlen(keys[k]),
			                            .out_buf = out[k],
			                            .out_cap = 64};
			op->flags = k; /* remember which key: the model index */
			switch ((x >> 8) % 4) {
			case 0:
				op->opcode = SP_BP_OP_GET;
				break;
			case 1:
				op->opcode = SP_BP_OP_DELETE;
				break;
			default:
				op->opcode = (x >> 16) % 2 ? SP_BP_OP_INCR : SP_BP_OP_DECR;
				op->delta = (x >> 20) % 10;
				op->create = true;
				op->initial = (x >> 24) % 1000;
				break;
			}
		}
		assert_int_equal(sp_client_execute(c, ops, n), 0);
		for (unsigned i = 0; i < n; i++) {
			struct sp_client_op *op = &ops[i];
			unsigned k = op->flags;
			int64_t *m = &model[k];
			assert_int_equal(op->rc, 0);
			switch (op->opcode) {
			case SP_BP_OP_GET:
				if (*m < 0) {
					assert_int_equal(op->status, SP_BP_ST_NOT_FOUND);
				} else {
					assert_int_equal(op->status, SP_BP_ST_OK);
					assert_true(op->value_len_out < 64);
					out[k][op->value_len_out] = '\0';
					assert_int_equal(strtoll(out[k], NULL, 10), *m);
				}
				break;
			case SP_BP_OP_DELETE:
				assert_int_equal(op->status,
				                 *m < 0 ? SP_BP_ST_NOT_FOUND : SP_BP_ST_OK);
				*m = -1;
				break;
			default:
				assert_int_equal(op->status, SP_BP_ST_OK);
				if (*m < 0)
					*m = (int64_t)op->initial;
				else if (op->opcode == SP_BP_OP_INCR)
					*m += (int64_t)op->delta;
				else
					*m = *m > (int64_t)op->delta ? *m - (int64_t)op->delta : 0;
				assert_true(op->number == (uint64_t)*m);
				break;
			}
		}
	}
	assert_int_equal(atomic_load(&s->misrouted), 0);
	sp_client_destroy(c);
}

/* ---- The CLI, run as a separate process against the same server ---------------------- */

#define CLI_OUT_MAX 8192

/* Runs the CLI with args (a shell-quoted string) and returns its exit status; out gets
 * its stdout and stderr. */
static int
run_cli(const struct server *s, const char *args, char *out, size_t cap)
{
	const char *cli = getenv("SP_CLIENT_CLI");
	char cmd[1024];

	assert_non_null(cli);
	snprintf(cmd, sizeof(cmd), "'%s' --server 127.0.0.1:%u --timeout-ms 200 %s 2>&1", cli,
	         s->base_port, args);
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
	static char out[CLI_OUT_MAX];
	char want[128];

	if (getenv("SP_CLIENT_CLI") == NULL)
		skip();
	assert_int_equal(run_cli(s, "set cli:k hello", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "STORED cas="));
	assert_int_equal(run_cli(s, "get cli:k", out, sizeof(out)), 0);
	assert_string_equal(out, "hello\n");
	assert_int_equal(run_cli(s, "get cli:missing", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "not found"));
	assert_int_equal(run_cli(s, "add cli:k again", out, sizeof(out)), 1);
	assert_int_equal(run_cli(s, "incr cli:n 5 --initial 10", out, sizeof(out)), 0);
	assert_string_equal(out, "10\n");
	assert_int_equal(run_cli(s, "incr cli:n 5", out, sizeof(out)), 0);
	assert_string_equal(out, "15\n");
	assert_int_equal(run_cli(s, "decr cli:n 100", out, sizeof(out)), 0);
	assert_string_equal(out, "0\n");
	assert_int_equal(run_cli(s, "del cli:k", out, sizeof(out)), 0);
	assert_string_equal(out, "DELETED\n");
	assert_int_equal(run_cli(s, "del cli:k", out, sizeof(out)), 1);

	assert_int_equal(run_cli(s, "route", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "epoch=%" PRIu64 " partitions=%u nodes=1 answered_by=0\n",
	         s->route.epoch, PARTITIONS);
	assert_memory_equal(out, want, strlen(want));
	snprintf(want, sizeof(want),
	         "node 0 id 1 ip 127.0.0.1 port %u workers %u memcached_port 0 partitions %u\n",
	         s->base_port, WORKERS, PARTITIONS);
	assert_non_null(strstr(out, want));

	assert_int_equal(run_cli(s,
	                         "bench --requests 3000 --keys 200 --value-size 16 --batch 16 "
	                         "--get-pct 80 --duration-s 5 --seed 7",
	                         out, sizeof(out)),
	                 0);
	assert_non_null(strstr(out, "bench: done=3000 "));
	assert_non_null(strstr(out, "errors=0 timeouts=0"));
	assert_non_null(strstr(out, "throughput_ops="));
	assert_non_null(strstr(out, "latency_us_p99="));
	assert_non_null(strstr(out, "bench: PASS"));
	assert_int_equal(atomic_load(&s->misrouted), 0);

	/* Usage errors exit 2 with a message; a silent node exits 1 after its timeouts. */
	assert_int_equal(run_cli(s, "", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "no command"));
	assert_int_equal(run_cli(s, "frob", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "get", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "bench --batch 0", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "bench --batch 100000", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "over the limit"));
	assert_int_equal(run_cli(s, "--server 1.2.3:x get k", out, sizeof(out)), 2);
	assert_int_equal(run_cli(s, "--help", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "usage:"));
	atomic_store(&s->silent, true);
	assert_int_equal(run_cli(s, "--retries 1 get cli:k", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "no reply"));
	atomic_store(&s->silent, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_create_rejects_bad_params),
	        cmocka_unit_test(test_status_errors),
	        cmocka_unit_test_setup(test_sync_ops, faults_off),
	        cmocka_unit_test_setup(test_routing_to_owner_ports, faults_off),
	        cmocka_unit_test_setup(test_no_route_gets_wrong_partition, faults_off),
	        cmocka_unit_test_setup(test_batching, faults_off),
	        cmocka_unit_test_setup(test_queue_and_flush, faults_off),
	        cmocka_unit_test_setup(test_more_than_one_round, faults_off),
	        cmocka_unit_test_setup(test_retry_after_drop, faults_off),
	        cmocka_unit_test_setup(test_busy_is_retried, faults_off),
	        cmocka_unit_test_setup(test_timeout_is_bounded, faults_off),
	        cmocka_unit_test_setup(test_route_fetch_retry_and_keep, faults_off),
	        cmocka_unit_test_setup(test_route_mixed_epochs_bounded, faults_off),
	        cmocka_unit_test_setup(test_random_against_model, faults_off),
	        cmocka_unit_test_setup(test_cli, faults_off),
	};
	return cmocka_run_group_tests(tests, server_start, server_stop);
}
