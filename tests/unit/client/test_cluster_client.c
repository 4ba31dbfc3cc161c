/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client in cluster mode against a fake three-node cluster on loopback: node n has
 * NODE_WORKERS UDP sockets on 127.0.0.(n+1), ports base..base+NODE_WORKERS-1, and its own
 * view of the map (epoch, partition -> node, worker). A node executes what its view says
 * it owns (any of its workers may run it, as the dataplane hands requests between its
 * workers) and answers WRONG_PARTITION naming the owner for the rest, as shardplane-dp does.
 *
 * Checks: one seed is enough to reach every key, each request goes straight to its owner;
 * a moved partition is reached through one redirect and the map is fetched again; two
 * nodes that point at each other never make the client loop; a dead or silent seed is
 * skipped; NOT_SERVING is reported with its own code and makes the client refetch; a
 * random run of set/get/delete/incr through one seed matches a model (seed printed, replay
 * with SP_TEST_SEED=N); the CLI's route, get/set/del/incr through any node and bench.
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

#define NODES           3u
#define NODE_WORKERS    2u
#define SOCKS           (NODES * NODE_WORKERS)
#define PARTITIONS      64u
#define STORE_BYTES     (1u << 20)
#define BIND_TRIES_MAX  64u
#define SERVER_POLL_MS  5
#define TEST_TIMEOUT_MS 100u
#define KEYS            300u
#define RANDOM_OPS      3000u
#define RANDOM_KEYS     200u
#define CLI_OUT_MAX     8192

/* One node's view of the map and its state. */
struct fnode {
	uint64_t epoch;
	uint16_t entries[PARTITIONS]; /* sp_bp_route_entry(node, worker) */
	struct sp_bp_route_node nodes[NODES];
	struct sp_binexec_route route;
	void *mem;
	struct store *store;
	atomic_bool silent;      /* answer nothing */
	atomic_bool not_serving; /* answer NOT_SERVING to every keyed request */
	atomic_ulong requests;   /* keyed requests received */
	atomic_ulong executed;   /* keyed requests executed */
	atomic_ulong redirected; /* keyed requests answered WRONG_PARTITION */
	atomic_ulong misrouted;  /* executed here by a worker other than the owner's */
};

struct cluster {
	int fd[SOCKS];
	uint16_t base_port;
	struct fnode node[NODES];
	pthread_mutex_t lock; /* held while the server serves, and while a test edits a map */
	pthread_t thread;
	atomic_bool stop;
};

static struct cluster cl;

static uint32_t
node_ip(unsigned n)
{
	return htonl(INADDR_LOOPBACK + n); /* 127.0.0.1, .2, .3 */
}

static const char *
node_host(unsigned n)
{
	static const char *const hosts[NODES] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
	return hosts[n];
}

/* The map every node starts with: partition p -> node p % 3, worker (p / 3) % 2. */
static void
map_initial(struct fnode *f, uint64_t epoch)
{
	f->epoch = epoch;
	for (unsigned p = 0; p < PARTITIONS; p++)
		f->entries[p] = sp_bp_route_entry((uint16_t)(p % NODES),
		                                  (uint16_t)((p / NODES) % NODE_WORKERS));
}

static void
node_of(const struct fnode *f, uint32_t p, unsigned *node, unsigned *worker)
{
	*node = f->entries[p] & 0xffu;
	*worker = f->entries[p] >> 8;
}

static int
bind_all(struct cluster *c)
{
	uint64_t r = sp_mono_ns() ^ (uint64_t)getpid();

	for (unsigned attempt = 0; attempt < BIND_TRIES_MAX; attempt++) {
		uint16_t base = (uint16_t)(20000 + (r + attempt * 7919u) % 40000u);
		unsigned ok = 0;

		for (; ok < SOCKS; ok++) {
			struct sockaddr_in a = {
			        .sin_family = AF_INET,
			        .sin_port = htons((uint16_t)(base + ok % NODE_WORKERS))};
			a.sin_addr.s_addr = node_ip(ok / NODE_WORKERS);
			c->fd[ok] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (c->fd[ok] < 0)
				break;
			if (bind(c->fd[ok], (struct sockaddr *)&a, sizeof(a)) != 0) {
				close(c->fd[ok]);
				break;
			}
		}
		if (ok == SOCKS) {
			c->base_port = base;
			return 0;
		}
		while (ok-- > 0)
			close(c->fd[ok]);
	}
	return -1;
}

/* Serves one datagram that socket `sock` (node sock / NODE_WORKERS) received. */
static void
serve(struct cluster *c, unsigned sock, const uint8_t *buf, size_t len,
      const struct sockaddr_in *from)
{
	unsigned self = sock / NODE_WORKERS;
	unsigned worker = sock % NODE_WORKERS;
	struct fnode *f = &c->node[self];
	struct sp_bp_req reqs[SP_BP_REQS_MAX];
	struct sp_bp_dgram d;
	uint8_t out[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	uint32_t now_s = (uint32_t)(sp_mono_ns() / SP_NS_PER_S) + 1;

	if (sp_bp_decode_requests(buf, len, PARTITIONS, reqs, SP_BP_REQS_MAX, &d) != SP_BP_ERR_OK)
		return;
	f->route = (struct sp_binexec_route){.epoch = f->epoch,
	                                     .partitions = PARTITIONS,
	                                     .node_count = NODES,
	                                     .self = self,
	                                     .nodes = f->nodes,
	                                     .owner = f->entries};
	sp_bp_builder_init(&b, out, sizeof(out), true, d.datagram_id);
	for (unsigned i = 0; i < d.count; i++) {
		struct sp_bp_req *q = &reqs[i];
		bool keyed = q->err == SP_BP_ERR_OK && sp_bp_op_has_key(q->opcode);
		unsigned on = 0, ow = 0;
		int rc;

		if (keyed) {
			atomic_fetch_add(&f->requests, 1);
			node_of(f, q->partition, &on, &ow);
		}
		if (keyed && atomic_load(&f->not_serving)) {
			rc = sp_binexec_refuse(q, SP_BP_ST_NOT_SERVING, &b, NULL);
		} else if (keyed && on != self) {
			struct sp_bp_redirect rd = {
			        .epoch = f->epoch,
			        .node_id = f->nodes[on].node_id,
			        .ipv4_be = f->nodes[on].ipv4_be,
			        .port = (uint16_t)(f->nodes[on].binary_port + ow),
			        .worker = (uint16_t)ow,
			        .partition = q->partition};
			atomic_fetch_add(&f->redirected, 1);
			rc = sp_binexec_redirect(q, &rd, &b, NULL);
		} else {
			if (keyed) {
				atomic_fetch_add(&f->executed, 1);
				if (ow != worker)
					atomic_fetch_add(&f->misrouted, 1);
			}
			rc = sp_binexec_run(f->store, q, now_s, &f->route, &b, NULL);
		}
		if (rc == -SP_EFULL) {
			(void)sendto(c->fd[sock], out, sp_bp_builder_finish(&b), 0,
			             (const struct sockaddr *)from, sizeof(*from));
			sp_bp_builder_init(&b, out, sizeof(out), true, d.datagram_id);
			i--;
			continue;
		}
		VERIFY(rc == 0);
	}
	if (b.count > 0)
		(void)sendto(c->fd[sock], out, sp_bp_builder_finish(&b), 0,
		             (const struct sockaddr *)from, sizeof(*from));
}

static void *
server_main(void *arg)
{
	struct cluster *c = arg;
	struct pollfd pfd[SOCKS];
	uint8_t buf[SP_BP_PAYLOAD_MAX + 1];

	for (unsigned i = 0; i < SOCKS; i++)
		pfd[i] = (struct pollfd){.fd = c->fd[i], .events = POLLIN};
	while (!atomic_load(&c->stop)) {
		if (poll(pfd, SOCKS, SERVER_POLL_MS) <= 0)
			continue;
		VERIFY(pthread_mutex_lock(&c->lock) == 0);
		for (unsigned i = 0; i < SOCKS; i++) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);

			if ((pfd[i].revents & POLLIN) == 0)
				continue;
			ssize_t n = recvfrom(c->fd[i], buf, sizeof(buf), MSG_DONTWAIT,
			                     (struct sockaddr *)&from, &fl);
			if (n <= 0 || atomic_load(&c->node[i / NODE_WORKERS].silent))
				continue;
			serve(c, i, buf, (size_t)n, &from);
		}
		VERIFY(pthread_mutex_unlock(&c->lock) == 0);
	}
	return NULL;
}

static int
cluster_start(void **state)
{
	struct cluster *c = &cl;
	struct store_params sp = {.bytes = STORE_BYTES};

	memset(c, 0, sizeof(*c));
	if (bind_all(c) != 0)
		return -1;
	VERIFY(pthread_mutex_init(&c->lock, NULL) == 0);
	for (unsigned n = 0; n < NODES; n++) {
		struct fnode *f = &c->node[n];

		map_initial(f, 1);
		for (unsigned k = 0; k < NODES; k++)
			f->nodes[k] = (struct sp_bp_route_node){.node_id = 10 + k,
			                                        .ipv4_be = node_ip(k),
			                                        .binary_port = c->base_port,
			                                        .memcached_port = 11211,
			                                        .worker_count = NODE_WORKERS};
		f->mem = aligned_alloc(STORE_MEM_ALIGN, STORE_BYTES);
		if (f->mem == NULL)
			return -1;
		f->store = store_init(f->mem, STORE_BYTES, &sp);
		if (f->store == NULL)
			return -1;
	}
	if (pthread_create(&c->thread, NULL, server_main, c) != 0)
		return -1;
	*state = c;
	return 0;
}

static int
cluster_stop(void **state)
{
	struct cluster *c = *state;

	atomic_store(&c->stop, true);
	pthread_join(c->thread, NULL);
	for (unsigned i = 0; i < SOCKS; i++)
		close(c->fd[i]);
	for (unsigned n = 0; n < NODES; n++) {
		VERIFY(store_check(c->node[n].store) == 0);
		free(c->node[n].mem);
	}
	return 0;
}

/* Before each test: every node serves, with the initial map, and counters at zero. */
static int
reset(void **state)
{
	struct cluster *c = *state;

	VERIFY(pthread_mutex_lock(&c->lock) == 0);
	for (unsigned n = 0; n < NODES; n++) {
		struct fnode *f = &c->node[n];

		map_initial(f, f->epoch + 1);
		atomic_store(&f->silent, false);
		atomic_store(&f->not_serving, false);
		atomic_store(&f->requests, 0);
		atomic_store(&f->executed, 0);
		atomic_store(&f->redirected, 0);
		atomic_store(&f->misrouted, 0);
	}
	/* Every node at the same epoch. */
	for (unsigned n = 1; n < NODES; n++)
		c->node[n].epoch = c->node[0].epoch;
	VERIFY(pthread_mutex_unlock(&c->lock) == 0);
	return 0;
}

static struct sp_client *
connect_seeds(const unsigned *seeds, unsigned n, int32_t retries)
{
	struct sp_client_seed sd[SP_CLIENT_SEEDS_MAX];
	struct sp_client_params p = {
	        .seeds = sd, .seed_count = n, .timeout_ms = TEST_TIMEOUT_MS, .retries = retries};
	int err = 1;

	for (unsigned i = 0; i < n; i++)
		sd[i] = (struct sp_client_seed){.host = node_host(seeds[i]), .port = cl.base_port};
	struct sp_client *c = sp_client_create(&p, &err);
	assert_non_null(c);
	assert_int_equal(err, 0);
	return c;
}

/* A key whose partition node `node` owns under the initial map (the i-th such key). */
static void
key_on(char *buf, size_t len, unsigned node, unsigned i)
{
	unsigned found = 0;

	for (unsigned k = 0; k < 100000; k++) {
		int n = snprintf(buf, len, "k%u", k);
		uint32_t p = sp_key_partition(sp_key_hash(buf, (size_t)n), PARTITIONS);
		if (p % NODES == node && found++ == i)
			return;
	}
	fail_msg("no key %u on node %u", i, node);
}

static unsigned long
total(atomic_ulong *(*field)(struct fnode *))
{
	unsigned long t = 0;
	for (unsigned n = 0; n < NODES; n++)
		t += atomic_load(field(&cl.node[n]));
	return t;
}

static atomic_ulong *
f_redirected(struct fnode *f)
{
	return &f->redirected;
}

static atomic_ulong *
f_misrouted(struct fnode *f)
{
	return &f->misrouted;
}

/* ---- Tests ------------------------------------------------------------------------------ */

static void
test_one_seed_reaches_every_owner(void **state)
{
	struct cluster *c = *state;
	unsigned seed = 1;
	struct sp_client *cli = connect_seeds(&seed, 1, -1);
	struct sp_bp_route r;
	struct sp_bp_route_node nd;
	struct sp_client_stats st;
	char key[32], val[32], out[64];
	uint32_t len = 0;

	assert_true(sp_client_route(cli, &r));
	assert_int_equal(r.node_count, NODES);
	assert_int_equal(r.self, 1);
	assert_int_equal(r.partitions, PARTITIONS);
	for (unsigned n = 0; n < NODES; n++) {
		assert_int_equal(sp_client_route_node(cli, n, &nd), 0);
		assert_int_equal(nd.node_id, 10 + n);
		assert_int_equal(nd.ipv4_be, node_ip(n));
		assert_int_equal(nd.binary_port, c->base_port);
	}
	for (unsigned i = 0; i < KEYS; i++) {
		int kl = snprintf(key, sizeof(key), "one:%u", i);
		int vl = snprintf(val, sizeof(val), "v%u", i * 7);
		uint32_t ip;
		uint16_t port;
		uint32_t p = sp_key_partition(sp_key_hash(key, (size_t)kl), PARTITIONS);
		int node = sp_client_dest_for_key(cli, key, (size_t)kl, &ip, &port);

		assert_int_equal(node, (int)(p % NODES));
		assert_int_equal(ip, node_ip(p % NODES));
		assert_int_equal(port, c->base_port + (p / NODES) % NODE_WORKERS);
		assert_int_equal(sp_client_set(cli, key, (size_t)kl, val, (uint32_t)vl, 0, 0), 0);
	}
	for (unsigned i = 0; i < KEYS; i++) {
		int kl = snprintf(key, sizeof(key), "one:%u", i);
		int vl = snprintf(val, sizeof(val), "v%u", i * 7);

		assert_int_equal(
		        sp_client_get(cli, key, (size_t)kl, out, sizeof(out), &len, NULL, NULL), 0);
		assert_int_equal(len, (uint32_t)vl);
		assert_memory_equal(out, val, (size_t)vl);
	}
	/* Straight to the owner worker: no redirect, no hop between workers. */
	assert_int_equal(total(f_redirected), 0);
	assert_int_equal(total(f_misrouted), 0);
	for (unsigned n = 0; n < NODES; n++) {
		uint64_t replies = 0, errors = 0;

		assert_true(atomic_load(&c->node[n].executed) > 0);
		assert_int_equal(sp_client_node_ops(cli, n, &replies, &errors), 0);
		assert_int_equal(replies, atomic_load(&c->node[n].executed));
		assert_int_equal(errors, 0);
	}
	sp_client_stats_get(cli, &st);
	assert_int_equal(st.redirects, 0);
	assert_int_equal(st.wrong_partition, 0);
	assert_int_equal(st.route_refreshes, 1);
	sp_client_destroy(cli);
}

/* Partitions of node 2 move to node 0: one redirect each, then the new map is fetched. */
static void
test_moved_partition_redirect(void **state)
{
	struct cluster *c = *state;
	unsigned seed = 0;
	struct sp_client *cli = connect_seeds(&seed, 1, 0);
	struct sp_client_stats st0, st1;
	struct sp_bp_route r;
	char key[32];

	key_on(key, sizeof(key), 2, 0);
	VERIFY(pthread_mutex_lock(&c->lock) == 0);
	for (unsigned n = 0; n < NODES; n++) {
		struct fnode *f = &c->node[n];

		f->epoch++;
		for (unsigned p = 2; p < PARTITIONS; p += NODES)
			f->entries[p] = sp_bp_route_entry(0, 1);
	}
	VERIFY(pthread_mutex_unlock(&c->lock) == 0);
	sp_client_stats_get(cli, &st0);
	/* The client still sends to node 2, which names node 0: the set lands there. */
	assert_int_equal(sp_client_set(cli, key, strlen(key), "moved", 5, 0, 0), 0);
	sp_client_stats_get(cli, &st1);
	assert_int_equal(st1.redirects - st0.redirects, 1);
	assert_int_equal(st1.wrong_partition - st0.wrong_partition, 1);
	assert_int_equal(st1.newer_epochs - st0.newer_epochs, 1);
	assert_int_equal(atomic_load(&c->node[2].redirected), 1);
	assert_int_equal(atomic_load(&c->node[0].executed), 1);
	/* The next batch fetches the new map first, then goes straight to node 0. */
	assert_int_equal(sp_client_get(cli, key, strlen(key), NULL, 0, NULL, NULL, NULL), 0);
	sp_client_stats_get(cli, &st1);
	assert_int_equal(st1.redirects - st0.redirects, 1);
	assert_int_equal(st1.route_refreshes - st0.route_refreshes, 1);
	assert_true(sp_client_route(cli, &r));
	assert_true(r.epoch == c->node[0].epoch);
	assert_int_equal(atomic_load(&c->node[2].redirected), 1);
	sp_client_destroy(cli);
}

/* Nodes 1 and 2 each say the other owns a partition: bounded, never a loop. */
static void
test_redirect_loop_is_bounded(void **state)
{
	struct cluster *c = *state;
	unsigned seed = 0;
	struct sp_client *cli = connect_seeds(&seed, 1, 2);
	struct sp_client_stats st0, st1;
	char key[32];
	uint32_t p;

	key_on(key, sizeof(key), 1, 0);
	p = sp_key_partition(sp_key_hash(key, strlen(key)), PARTITIONS);
	VERIFY(pthread_mutex_lock(&c->lock) == 0);
	c->node[1].entries[p] = sp_bp_route_entry(2, 0);
	c->node[2].entries[p] = sp_bp_route_entry(1, 0);
	VERIFY(pthread_mutex_unlock(&c->lock) == 0);
	sp_client_stats_get(cli, &st0);
	uint64_t t0 = sp_mono_ns();
	assert_int_equal(sp_client_set(cli, key, strlen(key), "x", 1, 0, 0), -SP_EWRONGNODE);
	assert_true(sp_mono_ns() - t0 < 2 * SP_NS_PER_S);
	sp_client_stats_get(cli, &st1);
	/* One send to node 1 and one redirect to node 2, which points back: the end. */
	assert_int_equal(st1.redirects - st0.redirects, SP_CLIENT_REDIRECTS_PER_ATTEMPT);
	assert_int_equal(atomic_load(&c->node[1].requests) + atomic_load(&c->node[2].requests),
	                 1 + SP_CLIENT_REDIRECTS_PER_ATTEMPT);
	assert_int_equal(atomic_load(&c->node[1].executed) + atomic_load(&c->node[2].executed), 0);
	sp_client_destroy(cli);
}

/* A silent first seed and a closed port: the map comes from the next seed. */
static void
test_seed_fallback(void **state)
{
	struct cluster *c = *state;
	struct sp_client_seed sd[2] = {{.host = "127.0.0.1", .port = 0},
	                               {.host = node_host(2), .port = 0}};
	struct sp_client_params p = {.seeds = sd, .seed_count = 2, .timeout_ms = 50, .retries = 0};
	struct sp_client_stats st;
	struct sp_bp_route r;
	int err = 1;

	atomic_store(&c->node[0].silent, true);
	sd[0].port = c->base_port;
	sd[1].port = c->base_port;
	struct sp_client *cli = sp_client_create(&p, &err);
	assert_non_null(cli);
	assert_true(sp_client_route(cli, &r));
	assert_int_equal(r.self, 2);
	sp_client_stats_get(cli, &st);
	assert_int_equal(st.seed_failovers, 1);
	assert_int_equal(st.route_failures, 0);
	/* Keys of nodes 1 and 2 work; node 0's time out (it is silent), never hang. */
	char key[32];
	key_on(key, sizeof(key), 1, 3);
	assert_int_equal(sp_client_set(cli, key, strlen(key), "a", 1, 0, 0), 0);
	key_on(key, sizeof(key), 0, 3);
	assert_int_equal(sp_client_set(cli, key, strlen(key), "a", 1, 0, 0), -ETIMEDOUT);
	sp_client_destroy(cli);

	/* Nothing listens on the first seed's port; every seed dead: no map, an error. */
	sd[0].port = (uint16_t)(c->base_port + NODE_WORKERS);
	atomic_store(&c->node[0].silent, false);
	cli = sp_client_create(&p, &err);
	assert_non_null(cli);
	assert_true(sp_client_route(cli, &r));
	assert_int_equal(r.self, 2);
	sp_client_destroy(cli);
	atomic_store(&c->node[2].silent, true);
	cli = sp_client_create(&p, &err);
	assert_non_null(cli);
	assert_false(sp_client_route(cli, &r));
	sp_client_stats_get(cli, &st);
	assert_int_equal(st.route_failures, 1);
	sp_client_destroy(cli);
}

/* A node without a lease: its own error, counted, and the map is fetched again. */
static void
test_not_serving(void **state)
{
	struct cluster *c = *state;
	unsigned seed = 0;
	struct sp_client *cli = connect_seeds(&seed, 1, 2);
	struct sp_client_stats st0, st1;
	char key[32];

	key_on(key, sizeof(key), 1, 5);
	atomic_store(&c->node[1].not_serving, true);
	sp_client_stats_get(cli, &st0);
	assert_int_equal(sp_client_set(cli, key, strlen(key), "a", 1, 0, 0), -SP_ENOTSERVING);
	sp_client_stats_get(cli, &st1);
	assert_int_equal(st1.not_serving - st0.not_serving, 1);
	atomic_store(&c->node[1].not_serving, false);
	assert_int_equal(sp_client_set(cli, key, strlen(key), "a", 1, 0, 0), 0);
	sp_client_stats_get(cli, &st1);
	assert_int_equal(st1.route_refreshes - st0.route_refreshes, 1);
	sp_client_destroy(cli);
}

static uint64_t rng_state;

static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Random set/get/delete/incr through one seed, in batches, against a model. */
static void
test_random_against_model(void **state)
{
	(void)state;
	static int64_t model[RANDOM_KEYS]; /* -1: absent; else a counter value */
	static char keys[RANDOM_KEYS][16];
	struct sp_client_op ops[16];
	char outs[16][32];
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : sp_mono_ns();
	unsigned s = 2;
	struct sp_client *cli = connect_seeds(&s, 1, 2);

	printf("test_random_against_model: SP_TEST_SEED=%" PRIu64 "\n", seed);
	rng_state = seed;
	for (unsigned k = 0; k < RANDOM_KEYS; k++) {
		snprintf(keys[k], sizeof(keys[k]), "rnd%" PRIu64 ":%u", seed % 1000, k);
		model[k] = -1;
	}
	for (unsigned done = 0; done < RANDOM_OPS;) {
		unsigned n = 1 + (unsigned)(rng() % 16);
		unsigned pick[16];

		/* Distinct keys per batch: operations of one batch may run in any order. */
		for (unsigned i = 0; i < n; i++) {
			bool dup;
			do {
				pick[i] = (unsigned)(rng() % RANDOM_KEYS);
				dup = false;
				for (unsigned j = 0; j < i; j++)
					dup = dup || pick[j] == pick[i];
			} while (dup);
			unsigned k = pick[i];
			unsigned kind = (unsigned)(rng() % 4);
			ops[i] = (struct sp_client_op){.key = keys[k],
			                               .key_len = (uint16_t)strlen(keys[k])};
			if (kind == 0) {
				ops[i].opcode = SP_BP_OP_SET;
				ops[i].value = "7";
				ops[i].value_len = 1;
			} else if (kind == 1) {
				ops[i].opcode = SP_BP_OP_GET;
				ops[i].out_buf = outs[i];
				ops[i].out_cap = sizeof(outs[i]);
			} else if (kind == 2) {
				ops[i].opcode = SP_BP_OP_DELETE;
			} else {
				ops[i].opcode = SP_BP_OP_INCR;
				ops[i].delta = 1 + rng() % 5;
				ops[i].create = true;
				ops[i].initial = 100;
			}
		}
		assert_int_equal(sp_client_execute(cli, ops, n), 0);
		for (unsigned i = 0; i < n; i++) {
			struct sp_client_op *op = &ops[i];
			int64_t *m = &model[pick[i]];

			assert_int_equal(op->rc, 0);
			switch (op->opcode) {
			case SP_BP_OP_SET:
				assert_int_equal(op->status, SP_BP_ST_OK);
				*m = 7;
				break;
			case SP_BP_OP_GET:
				if (*m < 0) {
					assert_int_equal(op->status, SP_BP_ST_NOT_FOUND);
				} else {
					char want[32];
					int wl = snprintf(want, sizeof(want), "%" PRId64, *m);
					assert_int_equal(op->status, SP_BP_ST_OK);
					/* A counter's digits, maybe followed by spaces. */
					assert_true(op->value_len_out >= (uint32_t)wl);
					assert_memory_equal(outs[i], want, (size_t)wl);
				}
				break;
			case SP_BP_OP_DELETE:
				assert_int_equal(op->status,
				                 *m < 0 ? SP_BP_ST_NOT_FOUND : SP_BP_ST_OK);
				*m = -1;
				break;
			default:
				assert_int_equal(op->status, SP_BP_ST_OK);
				*m = *m < 0 ? (int64_t)op->initial : *m + (int64_t)op->delta;
				assert_true(op->number == (uint64_t)*m);
				break;
			}
		}
		done += n;
	}
	assert_int_equal(total(f_redirected), 0);
	assert_int_equal(total(f_misrouted), 0);
	for (unsigned n = 0; n < NODES; n++)
		assert_true(atomic_load(&cl.node[n].executed) > 0);
	sp_client_destroy(cli);
}

/* Runs the CLI with args; returns its exit status, its output (stdout and stderr) in out. */
static int
run_cli(const char *args, char *out, size_t cap)
{
	const char *bin = getenv("SP_CLIENT_CLI");
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "'%s' --timeout-ms 200 %s 2>&1", bin, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int status = pclose(f);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_cli_any_node(void **state)
{
	struct cluster *c = *state;
	static char out[CLI_OUT_MAX];
	char args[512], want[256], key[32];

	if (getenv("SP_CLIENT_CLI") == NULL)
		skip();
	/* route through node 2: every node, 64 partitions spread 22/21/21. */
	snprintf(args, sizeof(args), "--server 127.0.0.3:%u route", c->base_port);
	assert_int_equal(run_cli(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "partitions=64 nodes=3 answered_by=2\n"));
	for (unsigned n = 0; n < NODES; n++) {
		snprintf(want, sizeof(want),
		         "node %u id %u ip %s port %u workers 2 memcached_port 11211 partitions "
		         "%u\n",
		         n, 10 + n, node_host(n), c->base_port, n == 0 ? 22 : 21);
		assert_non_null(strstr(out, want));
	}
	/* A key of every node through every node, and a comma list of seeds. */
	for (unsigned via = 0; via < NODES; via++) {
		for (unsigned n = 0; n < NODES; n++) {
			key_on(key, sizeof(key), n, 20 + via);
			snprintf(args, sizeof(args), "--server %s:%u set %s v%u%u", node_host(via),
			         c->base_port, key, via, n);
			assert_int_equal(run_cli(args, out, sizeof(out)), 0);
			snprintf(args, sizeof(args),
			         "--retries 0 --server 127.0.0.9:%u,%s:%u get %s", c->base_port,
			         node_host(via), c->base_port, key);
			assert_int_equal(run_cli(args, out, sizeof(out)), 0);
			snprintf(want, sizeof(want), "v%u%u\n", via, n);
			assert_string_equal(out, want);
			snprintf(args, sizeof(args),
			         "--server %s:%u --server %s:%u incr %s:n 3 "
			         "--initial 4",
			         node_host((via + 1) % NODES), c->base_port, node_host(via),
			         c->base_port, key);
			assert_int_equal(run_cli(args, out, sizeof(out)), 0);
			assert_string_equal(out, "4\n");
			snprintf(args, sizeof(args), "--server %s:%u del %s", node_host(via),
			         c->base_port, key);
			assert_int_equal(run_cli(args, out, sizeof(out)), 0);
		}
	}
	/* where: each key's partition and owner, without a request. */
	key_on(key, sizeof(key), 2, 7);
	snprintf(args, sizeof(args), "--server 127.0.0.1:%u where %s", c->base_port, key);
	assert_int_equal(run_cli(args, out, sizeof(out)), 0);
	{
		uint32_t p = sp_key_partition(sp_key_hash(key, strlen(key)), PARTITIONS);

		snprintf(want, sizeof(want), "%s %u 2 127.0.0.3:%u\n", key, p,
		         c->base_port + (p / NODES) % NODE_WORKERS);
		assert_string_equal(out, want);
	}
	/* Errors read as sentences. */
	key_on(key, sizeof(key), 1, 40);
	atomic_store(&c->node[1].not_serving, true);
	snprintf(args, sizeof(args), "--server 127.0.0.1:%u get %s", c->base_port, key);
	assert_int_equal(run_cli(args, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "not serving"));
	assert_null(strstr(out, "Stale file handle"));
	atomic_store(&c->node[1].not_serving, false);
	/* bench drives every node and reports each. */
	snprintf(args, sizeof(args),
	         "--server 127.0.0.2:%u bench --requests 3000 --keys 300 --batch 16 "
	         "--duration-s 10 --seed 3",
	         c->base_port);
	assert_int_equal(run_cli(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "bench: done=3000 "));
	assert_non_null(strstr(out, "errors=0 timeouts=0"));
	assert_non_null(strstr(out, "redirects=0"));
	for (unsigned n = 0; n < NODES; n++) {
		snprintf(want, sizeof(want), "bench: node %u id %u ip %s replies=", n, 10 + n,
		         node_host(n));
		assert_non_null(strstr(out, want));
	}
	assert_int_equal(total(f_misrouted), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_one_seed_reaches_every_owner, reset),
	        cmocka_unit_test_setup(test_moved_partition_redirect, reset),
	        cmocka_unit_test_setup(test_redirect_loop_is_bounded, reset),
	        cmocka_unit_test_setup(test_seed_fallback, reset),
	        cmocka_unit_test_setup(test_not_serving, reset),
	        cmocka_unit_test_setup(test_random_against_model, reset),
	        cmocka_unit_test_setup(test_cli_any_node, reset),
	};
	return cmocka_run_group_tests(tests, cluster_start, cluster_stop);
}
