/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mcexec on real stores: every command's exact reply bytes, noreply, expiry on the store
 * clock, flush_all (local and remote partitions), stats, routing, keys owned by another
 * core, the output bound, dropped frames, and the binary protocol's view of the same items.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/errors.h"
#include "common/keyhash.h"
#include "dataplane/memcache/mcexec.h"
#include "tests/unit/store_fixture.h"

#define PARTS      4u
#define STORE_MEM  (1u << 20)
#define OUT_CAP    64u
#define WALL_START 1800000000ull

struct fx {
	struct store *stores[PARTS];
	bool owned[PARTS];
	uint32_t remote_flush_calls;
	uint32_t remote_flush_at;
	char touch_key[SP_MC_KEY_MAX + 1];
	uint32_t touch_partition;
	uint32_t touch_expire_s;
	struct mcexec_counters counters;
	struct mcexec_env env;
	uint8_t out_buf[OUT_CAP * SP_MC_DGRAM_BYTES_MAX];
	uint16_t out_lens[OUT_CAP];
	struct sp_mc_out out;
	uint8_t copy[STORE_VALUE_MAX];
	char reply[OUT_CAP * SP_MC_DGRAM_BYTES_MAX];
	size_t reply_len;
	uint16_t rid;
};

static struct store *
fx_part(void *ctx, uint32_t p, bool *owned)
{
	struct fx *f = ctx;

	assert_true(p < PARTS);
	*owned = f->owned[p];
	return f->stores[p];
}

static void
fx_touch_remote(void *ctx, uint32_t partition, const char *key, uint32_t key_len, uint32_t expire_s)
{
	struct fx *f = ctx;

	assert_true(key_len < sizeof(f->touch_key));
	memcpy(f->touch_key, key, key_len);
	f->touch_key[key_len] = '\0';
	f->touch_partition = partition;
	f->touch_expire_s = expire_s;
}

static void
fx_flush_remote(void *ctx, uint32_t at_s)
{
	struct fx *f = ctx;

	f->remote_flush_calls++;
	f->remote_flush_at = at_s;
}

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	for (uint32_t p = 0; p < PARTS; p++) {
		f->stores[p] = store_fixture_new(STORE_MEM);
		f->owned[p] = true;
	}
	f->env.partitions = PARTS;
	f->env.part = fx_part;
	f->env.flush_remote = fx_flush_remote;
	f->env.ctx = f;
	f->env.now_s = 100;
	f->env.wall_s = WALL_START;
	f->env.version = "test-1";
	f->env.counters = &f->counters;
	f->env.copy_buf = f->copy;
	f->env.copy_buf_len = sizeof(f->copy);
	sp_mc_out_init(&f->out, f->out_buf, f->out_lens, OUT_CAP, 0);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;

	for (uint32_t p = 0; p < PARTS; p++)
		store_fixture_free(f->stores[p]);
	free(f);
	return 0;
}

/* Sends payload as one request datagram; collects the reply payloads in f->reply. */
static uint32_t
fx_send_len(struct fx *f, const void *payload, size_t len)
{
	static uint8_t dg[STORE_MEM + 128];
	struct sp_mc_frame h = {.request_id = ++f->rid, .seq = 0, .count = 1, .reserved = 0};
	uint32_t n;

	assert_true(len + SP_MC_FRAME_BYTES <= sizeof(dg));
	sp_mc_frame_encode(dg, &h);
	memcpy(dg + SP_MC_FRAME_BYTES, payload, len);
	n = mcexec_udp(&f->env, dg, len + SP_MC_FRAME_BYTES, &f->out);
	f->reply_len = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct sp_mc_frame r;

		assert_int_equal(
		        sp_mc_frame_decode(sp_mc_out_dgram(&f->out, i), f->out.lens[i], &r), 0);
		assert_int_equal(r.request_id, f->rid);
		memcpy(f->reply + f->reply_len, sp_mc_out_dgram(&f->out, i) + SP_MC_FRAME_BYTES,
		       f->out.lens[i] - SP_MC_FRAME_BYTES);
		f->reply_len += f->out.lens[i] - SP_MC_FRAME_BYTES;
	}
	f->reply[f->reply_len] = '\0';
	return n;
}

static uint32_t
fx_send(struct fx *f, const char *payload)
{
	return fx_send_len(f, payload, strlen(payload));
}

#define EXPECT(f, req, want)                                                                       \
	do {                                                                                       \
		fx_send((f), (req));                                                               \
		if (strcmp((f)->reply, (want)) != 0)                                               \
			fail_msg("request %s\n got  [%s]\n want [%s]", (req), (f)->reply, (want)); \
	} while (0)

static uint32_t
partition_of(const char *key)
{
	return sp_key_partition(sp_key_hash(key, strlen(key)), PARTS);
}

/* A key whose partition is p (keys "k0", "k1", ... tried in order). */
static void
key_in(uint32_t p, char *buf, size_t len)
{
	for (unsigned i = 0; i < 10000; i++) {
		snprintf(buf, len, "k%u", i);
		if (partition_of(buf) == p)
			return;
	}
	fail_msg("no key for partition %u", p);
}

/* ---- Commands ------------------------------------------------------------------------------ */

static void
test_storage_commands(void **state)
{
	struct fx *f = *state;

	EXPECT(f, "set a 5 0 3\r\nabc\r\n", "STORED\r\n");
	EXPECT(f, "get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n");
	EXPECT(f, "add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
	EXPECT(f, "add b 1 0 1\r\nx\r\n", "STORED\r\n");
	EXPECT(f, "replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
	EXPECT(f, "replace b 2 0 2\r\nyy\r\n", "STORED\r\n");
	EXPECT(f, "append b 9 0 1\r\nA\r\n", "STORED\r\n");
	EXPECT(f, "prepend b 9 0 1\r\nP\r\n", "STORED\r\n");
	EXPECT(f, "append nope 0 0 1\r\nA\r\n", "NOT_STORED\r\n");
	EXPECT(f, "prepend nope 0 0 1\r\nA\r\n", "NOT_STORED\r\n");
	EXPECT(f, "get b\r\n", "VALUE b 2 4\r\nPyyA\r\nEND\r\n");
	EXPECT(f, "get a b nope\r\n", "VALUE a 5 3\r\nabc\r\nVALUE b 2 4\r\nPyyA\r\nEND\r\n");
	assert_int_equal(f->counters.get_hits, 4);
	assert_int_equal(f->counters.get_misses, 1);
	assert_int_equal(f->counters.total_items, 5);
}

static void
test_cas_and_gets(void **state)
{
	struct fx *f = *state;
	char req[128], want[128];
	unsigned long long cas;

	EXPECT(f, "set c 0 0 2\r\nv1\r\n", "STORED\r\n");
	fx_send(f, "gets c\r\n");
	assert_int_equal(sscanf(f->reply, "VALUE c 0 2 %llu\r\n", &cas), 1);
	assert_true(cas != 0);
	snprintf(req, sizeof(req), "cas c 3 0 2 %llu\r\nv2\r\n", cas);
	EXPECT(f, req, "STORED\r\n");
	EXPECT(f, req, "EXISTS\r\n");
	EXPECT(f, "cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
	fx_send(f, "gets c\r\n");
	assert_int_equal(sscanf(f->reply, "VALUE c 3 2 %llu\r\n", &cas), 1);
	snprintf(want, sizeof(want), "VALUE c 3 2 %llu\r\nv2\r\nEND\r\n", cas);
	assert_string_equal(f->reply, want);
	assert_int_equal(f->counters.cas_hits, 1);
	assert_int_equal(f->counters.cas_badval, 1);
	assert_int_equal(f->counters.cas_misses, 1);
}

static void
test_delete_arith_touch(void **state)
{
	struct fx *f = *state;

	EXPECT(f, "set n 0 0 2\r\n10\r\n", "STORED\r\n");
	EXPECT(f, "incr n 5\r\n", "15\r\n");
	EXPECT(f, "incr n 100\r\n", "115\r\n");
	EXPECT(f, "decr n 1000\r\n", "0\r\n");
	EXPECT(f, "get n\r\n", "VALUE n 0 3\r\n0  \r\nEND\r\n");
	EXPECT(f, "incr nope 1\r\n", "NOT_FOUND\r\n");
	EXPECT(f, "decr nope 1\r\n", "NOT_FOUND\r\n");
	EXPECT(f, "set s 0 0 3\r\nabc\r\n", "STORED\r\n");
	EXPECT(f, "incr s 1\r\n",
	       "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
	EXPECT(f, "touch n 10\r\n", "TOUCHED\r\n");
	EXPECT(f, "touch nope 10\r\n", "NOT_FOUND\r\n");
	EXPECT(f, "delete n\r\n", "DELETED\r\n");
	EXPECT(f, "delete n\r\n", "NOT_FOUND\r\n");
	EXPECT(f, "delete s 0 noreply\r\n", "");
	EXPECT(f, "get s\r\n", "END\r\n");
	assert_int_equal(f->counters.incr_hits, 2);
	assert_int_equal(f->counters.decr_misses, 1);
	assert_int_equal(f->counters.delete_hits, 2);
	assert_int_equal(f->counters.touch_hits, 1);
}

static void
test_noreply_and_errors(void **state)
{
	struct fx *f = *state;

	EXPECT(f, "set q 0 0 1 noreply\r\nx\r\n", "");
	EXPECT(f, "incr q 1 noreply\r\n", "");
	EXPECT(f, "get q\r\n", "VALUE q 0 1\r\nx\r\nEND\r\n");
	EXPECT(f, "bogus\r\n", "ERROR\r\n");
	EXPECT(f, "set q 0 0 1\r\nxy\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
	EXPECT(f, "set q 0 0 1 noreply\r\nxy\r\n", "ERROR\r\n");
	EXPECT(f, "verbosity 1\r\n", "OK\r\n");
	EXPECT(f, "verbosity 1 noreply\r\n", "");
	EXPECT(f, "version\r\n", "VERSION test-1\r\n");
	EXPECT(f, "shutdown\r\n", "ERROR: shutdown not enabled\r\n");
	/* A get with an over-long key drops what the datagram queued before it. */
	fx_send(f,
	        "delete q\r\nget q "
	        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	        "kkkkkkkkkkk\r\n");
	assert_string_equal(f->reply, "CLIENT_ERROR bad command line format\r\n");
	/* quit: what is queued goes out, the rest is ignored. */
	EXPECT(f, "delete zz\r\nquit\r\ndelete zz\r\n", "NOT_FOUND\r\n");
	/* An incomplete last line is dropped and counted. */
	EXPECT(f, "delete zz\r\nget a", "NOT_FOUND\r\n");
	assert_int_equal(f->counters.truncated, 1);
	assert_true(f->counters.error_replies >= 4);
}

static void
test_too_large(void **state)
{
	struct fx *f = *state;
	static char req[STORE_MEM + 64];
	size_t big = STORE_MEM / 2;
	int n;

	EXPECT(f, "set t 0 0 1\r\nx\r\n", "STORED\r\n");
	/* Declared over memcached's 1 MiB: answered at once, the old item is gone. */
	EXPECT(f, "set t 0 0 2000000\r\nabc\r\n", "SERVER_ERROR object too large for cache\r\n");
	EXPECT(f, "get t\r\n", "END\r\n");
	/* Under 1 MiB but more than this store can hold (half of its log). */
	EXPECT(f, "set t 0 0 1\r\nx\r\n", "STORED\r\n");
	n = snprintf(req, sizeof(req), "set t 0 0 %zu\r\n", big);
	memset(req + n, 'v', big);
	memcpy(req + (size_t)n + big, "\r\n", 2);
	fx_send_len(f, req, (size_t)n + big + 2);
	assert_string_equal(f->reply, "SERVER_ERROR object too large for cache\r\n");
	EXPECT(f, "get t\r\n", "END\r\n");
	assert_int_equal(f->counters.store_too_large, 2);
}

static void
test_multi_datagram_reply(void **state)
{
	struct fx *f = *state;
	static char req[4000];
	int n = snprintf(req, sizeof(req), "set big 1 0 3000\r\n");
	uint32_t nd;

	memset(req + n, 'x', 3000);
	memcpy(req + n + 3000, "\r\n", 3);
	EXPECT(f, req, "STORED\r\n");
	nd = fx_send(f, "get big\r\n");
	/* "VALUE big 1 3000\r\n" + 3000 + "\r\n" + "END\r\n" = 3025 bytes: 3 datagrams. */
	assert_int_equal(nd, 3);
	assert_int_equal(f->reply_len, 3025);
	for (uint32_t i = 0; i < nd; i++) {
		struct sp_mc_frame h;

		sp_mc_frame_decode(sp_mc_out_dgram(&f->out, i), f->out.lens[i], &h);
		assert_int_equal(h.seq, i);
		assert_int_equal(h.count, 3);
	}
	/* Two keys: one response each (3 + 3 datagrams, numbered separately). */
	nd = fx_send(f, "get big big\r\n");
	assert_int_equal(nd, 6);
}

static void
test_get_datagram_rules(void **state)
{
	struct fx *f = *state;
	uint32_t nd;

	EXPECT(f, "set a 0 0 1\r\n1\r\n", "STORED\r\n");
	/* A first-key miss is an empty header-only datagram; later misses are absorbed. */
	nd = fx_send(f, "get x a y\r\n");
	assert_int_equal(nd, 3);
	assert_int_equal(f->out.lens[0], SP_MC_FRAME_BYTES);
	assert_string_equal(f->reply, "VALUE a 0 1\r\n1\r\nEND\r\n");
	/* After a sent reply in the same flush, the empty first key is absorbed. */
	nd = fx_send(f, "delete zz\r\nget x y\r\n");
	assert_int_equal(nd, 2);
	/* memcached flushes after its 21st command: the get then starts a new flush. */
	{
		char req[1024];
		size_t n = 0;

		for (int i = 0; i < 21; i++)
			n += (size_t)snprintf(req + n, sizeof(req) - n, "delete zz\r\n");
		snprintf(req + n, sizeof(req) - n, "get x y\r\n");
		nd = fx_send(f, req);
		assert_int_equal(nd, 23);
		assert_int_equal(f->out.lens[21], SP_MC_FRAME_BYTES);
	}
}

static void
test_expiry(void **state)
{
	struct fx *f = *state;
	char req[128];

	assert_int_equal(mcexec_expire_s(0, 100, WALL_START), 0);
	assert_int_equal(mcexec_expire_s(-1, 100, WALL_START), 100);
	assert_int_equal(mcexec_expire_s(10, 100, WALL_START), 110);
	assert_int_equal(mcexec_expire_s(SP_MC_REALTIME_MAXDELTA_S, 100, WALL_START),
	                 100 + SP_MC_REALTIME_MAXDELTA_S);
	assert_int_equal(mcexec_expire_s(SP_MC_REALTIME_MAXDELTA_S + 1, 100, WALL_START), 100);
	assert_int_equal(mcexec_expire_s((int32_t)(WALL_START + 50), 100, WALL_START), 150);
	assert_int_equal(mcexec_expire_s(INT32_MAX, UINT32_MAX - 5, 0), UINT32_MAX);

	EXPECT(f, "set e 0 10 1\r\nx\r\nset neg 0 -1 1\r\nx\r\n", "STORED\r\nSTORED\r\n");
	snprintf(req, sizeof(req), "set abs 0 %llu 1\r\nx\r\n", WALL_START + 20);
	EXPECT(f, req, "STORED\r\n");
	snprintf(req, sizeof(req), "set past 0 %llu 1\r\nx\r\n", WALL_START - 20);
	EXPECT(f, req, "STORED\r\n");
	EXPECT(f, "get e neg abs past\r\n", "VALUE e 0 1\r\nx\r\nVALUE abs 0 1\r\nx\r\nEND\r\n");
	f->env.now_s += 10;
	f->env.wall_s += 10;
	EXPECT(f, "get e abs\r\n", "VALUE abs 0 1\r\nx\r\nEND\r\n");
	/* gat moves the expiry; gat -1 expires at once but still returns the value. */
	EXPECT(f, "gat 100 abs\r\n", "VALUE abs 0 1\r\nx\r\nEND\r\n");
	f->env.now_s += 50;
	EXPECT(f, "get abs\r\n", "VALUE abs 0 1\r\nx\r\nEND\r\n");
	EXPECT(f, "gat -1 abs\r\n", "VALUE abs 0 1\r\nx\r\nEND\r\n");
	EXPECT(f, "get abs\r\n", "END\r\n");
	EXPECT(f, "gat 10\r\n", "END\r\n");
}

static void
test_flush_all(void **state)
{
	struct fx *f = *state;

	EXPECT(f, "set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\n", "STORED\r\nSTORED\r\n");
	EXPECT(f, "flush_all 10\r\n", "OK\r\n");
	EXPECT(f, "get a b\r\n", "VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n");
	f->env.now_s += 10;
	EXPECT(f, "get a b\r\n", "END\r\n");
	EXPECT(f, "set a 0 0 1\r\nz\r\n", "STORED\r\n");
	EXPECT(f, "get a\r\n", "VALUE a 0 1\r\nz\r\nEND\r\n");
	EXPECT(f, "flush_all noreply\r\n", "");
	EXPECT(f, "get a\r\n", "END\r\n");
	assert_int_equal(f->remote_flush_calls, 0);
	/* A partition owned elsewhere: the runtime is asked to flush it. */
	f->owned[2] = false;
	EXPECT(f, "flush_all\r\n", "OK\r\n");
	assert_int_equal(f->remote_flush_calls, 1);
	assert_int_equal(f->remote_flush_at, f->env.now_s);
	assert_int_equal(f->counters.cmd_flush, 3);
}

static void
test_stats(void **state)
{
	struct fx *f = *state;

	EXPECT(f, "set a 0 0 1\r\nx\r\nget a b\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
	fx_send(f, "stats\r\n");
	assert_non_null(strstr(f->reply, "STAT cmd_get 2\r\n"));
	assert_non_null(strstr(f->reply, "STAT get_hits 1\r\n"));
	assert_non_null(strstr(f->reply, "STAT get_misses 1\r\n"));
	assert_non_null(strstr(f->reply, "STAT cmd_set 1\r\n"));
	assert_non_null(strstr(f->reply, "STAT version test-1\r\n"));
	assert_non_null(strstr(f->reply, "STAT time 1800000000\r\n"));
	assert_int_equal(strncmp(f->reply, "STAT pid ", 9), 0);
	assert_string_equal(f->reply + f->reply_len - 5, "END\r\n");
	EXPECT(f, "stats reset\r\n", "RESET\r\n");
	assert_int_equal(f->counters.cmd_get, 0);
	EXPECT(f, "stats slabs\r\n", "ERROR\r\n");
}

/* ---- Placement ------------------------------------------------------------------------------- */

static void
test_route(void **state)
{
	uint32_t p = 99;

	(void)state;
	assert_int_equal(mcexec_route((const uint8_t *)"get abc\r\n", 9, PARTS, &p),
	                 MCEXEC_ROUTE_OWNER);
	assert_int_equal(p, partition_of("abc"));
	assert_int_equal(mcexec_route((const uint8_t *)"set abc 0 0 1\r\nx\r\n", 18, PARTS, &p),
	                 MCEXEC_ROUTE_OWNER);
	assert_int_equal(p, partition_of("abc"));
	assert_int_equal(mcexec_route((const uint8_t *)"get a b\r\n", 9, PARTS, &p),
	                 MCEXEC_ROUTE_MULTI);
	assert_int_equal(mcexec_route((const uint8_t *)"gat 1 a b\r\n", 11, PARTS, &p),
	                 MCEXEC_ROUTE_MULTI);
	assert_int_equal(mcexec_route((const uint8_t *)"version\r\n", 9, PARTS, &p),
	                 MCEXEC_ROUTE_ANY);
	assert_int_equal(mcexec_route((const uint8_t *)"bogus\r\n", 7, PARTS, &p),
	                 MCEXEC_ROUTE_ANY);
	assert_int_equal(mcexec_route((const uint8_t *)"get a", 5, PARTS, &p), MCEXEC_ROUTE_ANY);
	/* Keyless commands first: the first keyed one decides. */
	assert_int_equal(
	        mcexec_route((const uint8_t *)"version\r\nbad\r\ndelete abc\r\n", 26, PARTS, &p),
	        MCEXEC_ROUTE_OWNER);
	assert_int_equal(p, partition_of("abc"));
	/* The scan bound: a key after MCEXEC_ROUTE_SCAN_MAX keyless commands is not seen. */
	{
		char req[1024];
		size_t n = 0;

		for (uint32_t i = 0; i < MCEXEC_ROUTE_SCAN_MAX - 1; i++)
			n += (size_t)snprintf(req + n, sizeof(req) - n, "version\r\n");
		snprintf(req + n, sizeof(req) - n, "get abc\r\n");
		assert_int_equal(mcexec_route((const uint8_t *)req, strlen(req), PARTS, &p),
		                 MCEXEC_ROUTE_OWNER);
		snprintf(req + n, sizeof(req) - n, "version\r\nget abc\r\n");
		assert_int_equal(mcexec_route((const uint8_t *)req, strlen(req), PARTS, &p),
		                 MCEXEC_ROUTE_ANY);
	}
}

static void
test_remote_partitions(void **state)
{
	struct fx *f = *state;
	char k0[16], k1[16], req[256], want[256];

	key_in(0, k0, sizeof(k0));
	key_in(1, k1, sizeof(k1));
	snprintf(req, sizeof(req), "set %s 7 0 2\r\nv0\r\nset %s 8 0 2\r\nv1\r\n", k0, k1);
	EXPECT(f, req, "STORED\r\nSTORED\r\n");
	/* Partition 1 now belongs to another core: reads copy, writes are refused. */
	f->owned[1] = false;
	snprintf(req, sizeof(req), "get %s %s\r\n", k0, k1);
	snprintf(want, sizeof(want), "VALUE %s 7 2\r\nv0\r\nVALUE %s 8 2\r\nv1\r\nEND\r\n", k0, k1);
	EXPECT(f, req, want);
	snprintf(req, sizeof(req), "gat 100 %s %s\r\n", k0, k1);
	EXPECT(f, req, want);
	assert_int_equal(f->counters.gat_remote_untouched, 1);
	/* With the hook, the touch goes to the runtime; the owner applies it. */
	f->env.touch_remote = fx_touch_remote;
	snprintf(req, sizeof(req), "gat 5 %s %s\r\n", k0, k1);
	EXPECT(f, req, want);
	assert_int_equal(f->counters.gat_remote_forwarded, 1);
	assert_int_equal(f->touch_partition, 1);
	assert_string_equal(f->touch_key, k1);
	assert_int_equal(f->touch_expire_s, f->env.now_s + 5);
	assert_int_equal(
	        mcexec_touch_local(&f->env, f->touch_key, (uint32_t)strlen(k1), f->touch_expire_s),
	        -EINVAL);
	f->owned[1] = true;
	assert_int_equal(
	        mcexec_touch_local(&f->env, f->touch_key, (uint32_t)strlen(k1), f->touch_expire_s),
	        0);
	assert_int_equal(mcexec_touch_local(&f->env, "nope", 4, 1), -SP_ENOTFOUND);
	/* Both keys now expire at now + 5: k0 by its owner here, k1 through the hand-off. */
	f->env.now_s += 5;
	snprintf(req, sizeof(req), "get %s %s\r\n", k0, k1);
	EXPECT(f, req, "END\r\n");
	f->owned[1] = false;
	snprintf(req, sizeof(req), "set %s 0 0 1\r\nx\r\ndelete %s\r\nincr %s 1\r\ntouch %s 1\r\n",
	         k1, k1, k1, k1);
	fx_send(f, req);
	assert_int_equal(f->counters.cross_partition, 4);
	assert_non_null(strstr(f->reply, "SERVER_ERROR key is owned by another core"));
	f->owned[1] = true;
	snprintf(req, sizeof(req), "get %s\r\n", k1);
	EXPECT(f, req, "END\r\n");
}

static void
test_binary_protocol_view(void **state)
{
	struct fx *f = *state;
	const char *key = "shared";
	struct store_key sk = {.data = key, .len = 6, .hash = sp_key_hash(key, 6)};
	struct store *s = f->stores[sp_key_partition(sk.hash, PARTS)];
	struct store_value v;
	struct store_write w = {
	        .value = "bin", .value_len = 3, .flags = 42, .expire_s = 0, .cas = 0};
	uint64_t cas = 0;
	char want[128];

	/* memcached set, read the way the binary protocol reads (same hash, same partition). */
	EXPECT(f, "set shared 17 0 4\r\ntext\r\n", "STORED\r\n");
	assert_int_equal(store_get(s, &sk, f->env.now_s, &v), 0);
	assert_int_equal(v.flags, 17);
	assert_int_equal(v.len, 4);
	assert_memory_equal(v.data, "text", 4);
	/* A binary-protocol write, read by gets: flags and CAS version line up. */
	assert_int_equal(store_set(s, STORE_SET, &sk, &w, f->env.now_s, &cas), 0);
	snprintf(want, sizeof(want), "VALUE shared 42 3 %" PRIu64 "\r\nbin\r\nEND\r\n", cas);
	EXPECT(f, "gets shared\r\n", want);
	snprintf(want, sizeof(want), "cas shared 1 0 1 %" PRIu64 "\r\nc\r\n", cas);
	EXPECT(f, want, "STORED\r\n");
}

/* ---- Bounds and bad frames --------------------------------------------------------------------- */

static void
test_out_bound(void **state)
{
	struct fx *f = *state;
	static char req[SP_MC_DGRAM_DATA_MAX + 64];
	char get[64];
	int n = snprintf(req, sizeof(req), "set v 0 0 %u\r\n", SP_MC_DGRAM_DATA_MAX);

	memset(req + n, 'v', SP_MC_DGRAM_DATA_MAX);
	memcpy(req + n + SP_MC_DGRAM_DATA_MAX, "\r\n", 3);
	EXPECT(f, req, "STORED\r\n");
	/* Each hit takes 2 datagrams; a cap of 4 holds 2 keys, not 3. */
	sp_mc_out_init(&f->out, f->out_buf, f->out_lens, 4, 0);
	snprintf(get, sizeof(get), "get v v\r\n");
	assert_int_equal(fx_send(f, get), 4);
	snprintf(get, sizeof(get), "get v v v\r\n");
	fx_send(f, get);
	assert_string_equal(f->reply, "SERVER_ERROR out of memory writing get response\r\n");
	assert_int_equal(f->counters.out_full, 1);
	/* Non-get replies past the cap: the rest of the datagram is dropped and counted. */
	assert_int_equal(fx_send(f, "delete a\r\ndelete a\r\ndelete a\r\ndelete a\r\ndelete a\r\n"),
	                 4);
	assert_int_equal(f->counters.out_full, 2);
}

static void
test_dropped_frames(void **state)
{
	struct fx *f = *state;
	uint8_t dg[32] = {0, 1, 0, 0, 0, 2, 0, 0, 'v', 'e', 'r', 's', 'i', 'o', 'n', '\r', '\n'};

	/* count 2: memcached drops multi-datagram requests. */
	assert_int_equal(mcexec_udp(&f->env, dg, 17, &f->out), 0);
	/* shorter than the header, and header only */
	assert_int_equal(mcexec_udp(&f->env, dg, 5, &f->out), 0);
	dg[5] = 1;
	assert_int_equal(mcexec_udp(&f->env, dg, 8, &f->out), 0);
	assert_int_equal(f->counters.dropped_frame, 3);
	/* seq and reserved are ignored */
	dg[3] = 9;
	dg[7] = 9;
	assert_int_equal(mcexec_udp(&f->env, dg, 17, &f->out), 1);
	assert_int_equal(f->counters.datagrams, 1);
}

static void
test_counters_add(void **state)
{
	struct mcexec_counters a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.cmd_get = 3;
	a.total_items = 1;
	b.cmd_get = 4;
	b.get_hits = 2;
	b.total_items = UINT64_MAX - 1;
	mcexec_counters_add(&a, &b);
	assert_int_equal(a.cmd_get, 7);
	assert_int_equal(a.get_hits, 2);
	assert_true(a.total_items == UINT64_MAX);
	assert_int_equal(b.cmd_get, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_storage_commands, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_cas_and_gets, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_delete_arith_touch, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_noreply_and_errors, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_too_large, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_multi_datagram_reply, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_get_datagram_rules, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_expiry, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_flush_all, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_stats, fx_setup, fx_teardown),
	        cmocka_unit_test(test_route),
	        cmocka_unit_test(test_counters_add),
	        cmocka_unit_test_setup_teardown(test_remote_partitions, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_binary_protocol_view, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_out_bound, fx_setup, fx_teardown),
	        cmocka_unit_test_setup_teardown(test_dropped_frames, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
