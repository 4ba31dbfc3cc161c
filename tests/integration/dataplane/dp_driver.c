/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dp_driver: drives a running shardplane-dp through the C client library over kernel UDP
 * sockets and verifies every answer: set/get/del/incr/decr/add/replace/CAS/expiry over
 * many keys and partitions, two-request datagrams of a GET and a SET, and the key and
 * value limits. Exit 0 when every check held,
 * 1 at the first mismatch (printed), 2 on usage errors.
 *
 *   dp_driver --server IP:PORT [--keys N] [--no-route] [--quick]
 *   SP_TEST_SEED=N replays a run (the seed is printed first).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/errors.h"
#include "common/verify.h"

#define KEYS_DEF        2000u
#define KEYS_MAX        20000u
#define KEY_BYTES_MAX   64u
#define VALUE_BYTES_MAX 200u
#define EXPIRY_WAIT_US  2200000u
/* Generous: a loaded CI machine can deschedule the node for hundreds of milliseconds, and
 * non-idempotent operations get no second attempt. */
#define ATTEMPT_TIMEOUT_MS 3000u

struct item {
	char key[KEY_BYTES_MAX];
	uint16_t key_len;
	uint8_t value[VALUE_BYTES_MAX];
	uint32_t value_len;
	uint8_t out[VALUE_BYTES_MAX];
};

static uint64_t seed;
static uint64_t rng_state;
static uint64_t checks;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void __attribute__((__noreturn__, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dp_driver: FAIL (seed %" PRIu64 ", after %" PRIu64 " checks): ", seed,
	        checks);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Checks one operation's outcome: a reply with the expected status. */
static void
expect(const struct sp_client_op *op, uint8_t status, const char *what, const struct item *it)
{
	checks++;
	if (op->rc != 0)
		fail("%s %.*s: no reply (%s)", what, it != NULL ? it->key_len : 0,
		     it != NULL ? it->key : "", sp_strerror(op->rc));
	if (op->status != status)
		fail("%s %.*s: status %s, expected %s", what, it != NULL ? it->key_len : 0,
		     it != NULL ? it->key : "", sp_bp_status_name(op->status),
		     sp_bp_status_name(status));
}

static void
run(struct sp_client *c, struct sp_client_op *ops, size_t n)
{
	int rc = sp_client_execute(c, ops, n);

	if (rc != 0)
		fail("execute of %zu ops: %s", n, sp_strerror(rc));
}

static void
op_key(struct sp_client_op *op, uint8_t opcode, const struct item *it)
{
	memset(op, 0, sizeof(*op));
	op->opcode = opcode;
	op->key = it->key;
	op->key_len = it->key_len;
}

/* A GET of it, its value into it->out. */
static void
op_get(struct sp_client_op *op, struct item *it)
{
	op_key(op, SP_BP_OP_GET, it);
	op->out_buf = it->out;
	op->out_cap = VALUE_BYTES_MAX;
}

/*
 * GETs every item in one run and checks each answer: found, with the value set and, with
 * flags, the flags its SET carried (its index). what names the check in a failure.
 */
static void
read_back(struct sp_client *c, struct sp_client_op *ops, struct item *items, uint32_t n,
          const char *what, bool flags)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		op_get(&ops[i], &items[i]);
	run(c, ops, n);
	for (i = 0; i < n; i++) {
		expect(&ops[i], SP_BP_ST_OK, what, &items[i]);
		checks++;
		if (ops[i].value_len_out != items[i].value_len ||
		    memcmp(items[i].out, items[i].value, items[i].value_len) != 0)
			fail("%s %s: value of %u bytes differs from the %u bytes set", what,
			     items[i].key, ops[i].value_len_out, items[i].value_len);
		if (flags && ops[i].flags_out != i)
			fail("%s %s: flags %u, set %u", what, items[i].key, ops[i].flags_out, i);
	}
}

/* Sets every item, reads each back, deletes the even ones and reads all again. */
static void
phase_kv(struct sp_client *c, struct item *items, struct sp_client_op *ops, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		op_key(&ops[i], SP_BP_OP_SET, &items[i]);
		ops[i].value = items[i].value;
		ops[i].value_len = items[i].value_len;
		ops[i].flags = i;
	}
	run(c, ops, n);
	for (i = 0; i < n; i++)
		expect(&ops[i], SP_BP_ST_OK, "set", &items[i]);
	read_back(c, ops, items, n, "get", true);
	for (i = 0; i < n; i += 2)
		op_key(&ops[i / 2], SP_BP_OP_DELETE, &items[i]);
	run(c, ops, (n + 1) / 2);
	for (i = 0; i < n; i += 2)
		expect(&ops[i / 2], SP_BP_ST_OK, "delete", &items[i]);
	for (i = 0; i < n; i++)
		op_get(&ops[i], &items[i]);
	run(c, ops, n);
	for (i = 0; i < n; i++)
		expect(&ops[i], i % 2 == 0 ? SP_BP_ST_NOT_FOUND : SP_BP_ST_OK, "get after delete",
		       &items[i]);
	/* Deleting again finds nothing. */
	for (i = 0; i < n; i += 2)
		op_key(&ops[i / 2], SP_BP_OP_DELETE, &items[i]);
	run(c, ops, (n + 1) / 2);
	for (i = 0; i < n; i += 2)
		expect(&ops[i / 2], SP_BP_ST_NOT_FOUND, "delete twice", &items[i]);
}

/* Counters: create with an initial value, incr, decr, saturate at zero. */
static void
phase_counters(struct sp_client *c, struct item *items, struct sp_client_op *ops, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		items[i].key_len = (uint16_t)snprintf(items[i].key, KEY_BYTES_MAX,
		                                      "ctr:%" PRIu64 ":%u", seed, i);
		op_key(&ops[i], SP_BP_OP_INCR, &items[i]);
		ops[i].create = true;
		ops[i].initial = 1000 + i;
		ops[i].delta = 7;
	}
	run(c, ops, n);
	for (i = 0; i < n; i++) {
		expect(&ops[i], SP_BP_ST_OK, "incr create", &items[i]);
		if (ops[i].number != 1000 + i)
			fail("incr create %s: %" PRIu64 ", expected %u", items[i].key,
			     ops[i].number, 1000 + i);
	}
	for (i = 0; i < n; i++) {
		op_key(&ops[i], i % 2 == 0 ? SP_BP_OP_INCR : SP_BP_OP_DECR, &items[i]);
		ops[i].delta = i % 2 == 0 ? 5 : 100000;
	}
	run(c, ops, n);
	for (i = 0; i < n; i++) {
		uint64_t want = i % 2 == 0 ? 1005 + i : 0;

		expect(&ops[i], SP_BP_ST_OK, "incr/decr", &items[i]);
		checks++;
		if (ops[i].number != want)
			fail("%s %s: %" PRIu64 ", expected %" PRIu64, i % 2 == 0 ? "incr" : "decr",
			     items[i].key, ops[i].number, want);
	}
	/* Without create, a missing counter is not found. */
	items[0].key_len =
	        (uint16_t)snprintf(items[0].key, KEY_BYTES_MAX, "ctr-missing:%" PRIu64, seed);
	op_key(&ops[0], SP_BP_OP_INCR, &items[0]);
	ops[0].delta = 1;
	run(c, ops, 1);
	expect(&ops[0], SP_BP_ST_NOT_FOUND, "incr missing", &items[0]);
}

/* Two-request datagrams: a GET of a phase_kv item and a SET of a new key. */
#define PAIRS_MAX 400u

/*
 * Datagrams of two requests each, a GET of items[i] (odd ones still there after
 * phase_kv, even ones deleted) and a SET of a key of its own: without routing, a node of
 * several workers gets many where the SET is the only request for another worker, which
 * travels with the datagram's reply (docs/services.md, a fold). Every answer is checked,
 * then every SET is read back.
 */
static void
phase_pairs(struct sp_client *c, struct item *items, struct sp_client_op *ops, uint32_t n)
{
	struct item *pairs = calloc(n, sizeof(*pairs));
	uint32_t i;

	VERIFY(pairs != NULL);
	for (i = 0; i < n; i++) {
		struct item *p = &pairs[i];

		p->key_len =
		        (uint16_t)snprintf(p->key, KEY_BYTES_MAX, "pair:%" PRIu64 ":%u", seed, i);
		p->value_len = (uint32_t)snprintf((char *)p->value, VALUE_BYTES_MAX,
		                                  "pair-value:%u:%" PRIu64, i, rng());
		op_get(&ops[0], &items[i]);
		op_key(&ops[1], SP_BP_OP_SET, p);
		ops[1].value = p->value;
		ops[1].value_len = p->value_len;
		run(c, ops, 2);
		expect(&ops[0], i % 2 == 0 ? SP_BP_ST_NOT_FOUND : SP_BP_ST_OK, "get beside a set",
		       &items[i]);
		expect(&ops[1], SP_BP_ST_OK, "set beside a get", p);
		checks++;
		if (i % 2 == 1 && (ops[0].value_len_out != items[i].value_len ||
		                   memcmp(items[i].out, items[i].value, items[i].value_len) != 0))
			fail("get %s beside a set: the value differs from the one set",
			     items[i].key);
	}
	read_back(c, ops, pairs, n, "get of a set beside a get", false);
	free(pairs);
}

/* add/replace/CAS/not-a-number/limits/expiry on single keys. */
static void
phase_semantics(struct sp_client *c, bool quick)
{
	static uint8_t big[SP_BP_VALUE_MAX];
	static char long_key[SP_BP_KEY_MAX + 1];
	char key[KEY_BYTES_MAX];
	uint64_t cas = 0;
	uint64_t cas2 = 0;
	uint64_t v = 0;
	uint32_t len = 0;
	int k;
	int rc;

	k = snprintf(key, sizeof(key), "sem:%" PRIu64, seed);
	rc = sp_client_store(c, SP_BP_OP_REPLACE, key, (size_t)k, "x", 1, 0, 0, 0, NULL);
	if (rc != -SP_ENOTFOUND)
		fail("replace on a missing key: %s", sp_strerror(rc));
	rc = sp_client_store(c, SP_BP_OP_ADD, key, (size_t)k, "one", 3, 0, 0, 0, &cas);
	if (rc != 0 || cas == 0)
		fail("add: %s", sp_strerror(rc));
	rc = sp_client_store(c, SP_BP_OP_ADD, key, (size_t)k, "two", 3, 0, 0, 0, NULL);
	if (rc != -SP_EEXISTS)
		fail("add on a present key: %s", sp_strerror(rc));
	rc = sp_client_store(c, SP_BP_OP_SET, key, (size_t)k, "three", 5, 0, 0, cas + 1000, NULL);
	if (rc != -SP_EVERSION)
		fail("set with a wrong cas: %s", sp_strerror(rc));
	rc = sp_client_store(c, SP_BP_OP_SET, key, (size_t)k, "three", 5, 0, 0, cas, &cas2);
	if (rc != 0 || cas2 == cas)
		fail("set with the right cas: %s", sp_strerror(rc));
	rc = sp_client_incr(c, key, (size_t)k, 1, NULL, &v);
	if (rc != -SP_ENOTNUM)
		fail("incr on text: %s", sp_strerror(rc));
	rc = sp_client_del(c, key, (size_t)k, cas);
	if (rc != -SP_EVERSION)
		fail("delete with a stale cas: %s", sp_strerror(rc));
	rc = sp_client_del(c, key, (size_t)k, cas2);
	if (rc != 0)
		fail("delete with the right cas: %s", sp_strerror(rc));
	checks += 8;

	/* Limits: the longest key and the largest value are served; a longer key is refused. */
	memset(long_key, 'k', sizeof(long_key));
	memcpy(long_key, key, (size_t)k);
	rc = sp_client_set(c, long_key, SP_BP_KEY_MAX, "max-key", 7, 0, 0);
	if (rc != 0)
		fail("set with a %u-byte key: %s", SP_BP_KEY_MAX, sp_strerror(rc));
	rc = sp_client_set(c, long_key, SP_BP_KEY_MAX + 1, "x", 1, 0, 0);
	if (rc == 0)
		fail("set with a %u-byte key was accepted", SP_BP_KEY_MAX + 1);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)rng();
	rc = sp_client_set(c, "B", 1, big, sizeof(big), 0, 0);
	if (rc != 0)
		fail("set of a %zu-byte value: %s", sizeof(big), sp_strerror(rc));
	{
		static uint8_t back[SP_BP_VALUE_MAX];

		rc = sp_client_get(c, "B", 1, back, sizeof(back), &len, NULL, NULL);
		if (rc != 0 || len != sizeof(big) || memcmp(back, big, sizeof(big)) != 0)
			fail("get of the %zu-byte value: %s, %u bytes", sizeof(big),
			     sp_strerror(rc), len);
	}
	checks += 4;
	if (quick)
		return;
	/* Expiry: relative seconds are honoured. */
	rc = sp_client_set(c, key, (size_t)k, "soon", 4, 0, 1);
	if (rc != 0)
		fail("set with expiry: %s", sp_strerror(rc));
	rc = sp_client_get(c, key, (size_t)k, NULL, 0, &len, NULL, NULL);
	if (rc != 0)
		fail("get before expiry: %s", sp_strerror(rc));
	usleep(EXPIRY_WAIT_US);
	rc = sp_client_get(c, key, (size_t)k, NULL, 0, &len, NULL, NULL);
	if (rc != -SP_ENOTFOUND)
		fail("get after expiry: %s", sp_strerror(rc));
	checks += 3;
}

static void
usage(const char *prog)
{
	fprintf(stderr,
	        "usage: %s --server IP:PORT [--keys N (1..%u)] [--no-route] [--quick]\n"
	        "SP_TEST_SEED=N replays a run.\n",
	        prog, KEYS_MAX);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"server", required_argument, NULL, 's'},
	        {"keys", required_argument, NULL, 'k'},
	        {"no-route", no_argument, NULL, 'n'},
	        {"quick", no_argument, NULL, 'q'},
	        {NULL, 0, NULL, 0},
	};
	struct sp_client_params params = {.timeout_ms = ATTEMPT_TIMEOUT_MS, .retries = 3};
	struct sp_client_stats st;
	struct sp_client_op *ops;
	struct sp_client *c;
	struct item *items;
	char host[64] = "";
	const char *env = getenv("SP_TEST_SEED");
	unsigned long keys = KEYS_DEF;
	bool quick = false;
	uint32_t i;
	int err = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': {
			const char *colon = strchr(optarg, ':');
			if (colon == NULL || (size_t)(colon - optarg) >= sizeof(host)) {
				usage(argv[0]);
				return 2;
			}
			memcpy(host, optarg, (size_t)(colon - optarg));
			params.port = (uint16_t)strtoul(colon + 1, NULL, 10);
			break;
		}
		case 'k':
			keys = strtoul(optarg, NULL, 10);
			break;
		case 'n':
			params.no_route = true;
			break;
		case 'q':
			quick = true;
			break;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	if (host[0] == '\0' || params.port == 0 || keys == 0 || keys > KEYS_MAX) {
		usage(argv[0]);
		return 2;
	}
	params.host = host;
	/* Runs against one node must not share keys: time ^ pid collides for runs a second
	 * apart, so the seed takes the nanosecond clock and the pid in separate bits. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	seed = env != NULL ? strtoull(env, NULL, 10)
	                   : ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
	                             ((uint64_t)getpid() << 40);
	rng_state = seed | 1;
	printf("dp_driver: seed %" PRIu64 " (replay with SP_TEST_SEED=%" PRIu64 "), %lu keys, %s\n",
	       seed, seed, keys, params.no_route ? "no routing table" : "partition-aware");
	c = sp_client_create(&params, &err);
	if (c == NULL)
		fail("client: %s", sp_strerror(err));
	items = calloc(keys, sizeof(*items));
	ops = calloc(keys, sizeof(*ops));
	VERIFY(items != NULL);
	VERIFY(ops != NULL);
	for (i = 0; i < keys; i++) {
		items[i].key_len = (uint16_t)snprintf(items[i].key, KEY_BYTES_MAX,
		                                      "key:%" PRIu64 ":%u", seed, i);
		items[i].value_len = 1 + (uint32_t)(rng() % VALUE_BYTES_MAX);
		for (uint32_t b = 0; b < items[i].value_len; b++)
			items[i].value[b] = (uint8_t)rng();
	}
	phase_kv(c, items, ops, (uint32_t)keys);
	phase_pairs(c, items, ops, (uint32_t)SP_MIN(keys, PAIRS_MAX));
	phase_counters(c, items, ops, (uint32_t)SP_MAX(keys / 4, 1));
	phase_semantics(c, quick);
	sp_client_stats_get(c, &st);
	printf("dp_driver: PASS %" PRIu64 " checks; datagrams sent %" PRIu64 " received %" PRIu64
	       ", retries %" PRIu64 ", busy resent %" PRIu64 ", timeouts %" PRIu64
	       ", route refreshes %" PRIu64 "\n",
	       checks, st.datagrams_sent, st.datagrams_recv, st.retries, st.busy, st.timeouts,
	       st.route_refreshes);
	free(items);
	free(ops);
	sp_client_destroy(c);
	return 0;
}
