/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcached wire tests: frame header, number reading, the parser on every command (valid,
 * malformed, truncated, oversized), the reply writer's datagram rules, and a randomized
 * parser run over mutated commands (seed printed; replay with SP_TEST_SEED).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/errors.h"
#include "wire/memcache.h"

/* Iterations of the randomized parser test. */
#define RANDOM_ROUNDS 20000u

static int
parse_str(const char *s, struct sp_mc_cmd *cmd, size_t *used)
{
	return sp_mc_parse((const uint8_t *)s, strlen(s), SP_MC_VALUE_MAX, cmd, used);
}

static int
parse_buf(const void *b, size_t len, struct sp_mc_cmd *cmd, size_t *used)
{
	return sp_mc_parse(b, len, SP_MC_VALUE_MAX, cmd, used);
}

/* ---- Frame header ------------------------------------------------------------------------ */

static void
test_frame_roundtrip(void **state)
{
	struct sp_mc_frame f = {.request_id = 0xBEEF, .seq = 3, .count = 7, .reserved = 0};
	struct sp_mc_frame g;
	uint8_t b[SP_MC_FRAME_BYTES];

	(void)state;
	sp_mc_frame_encode(b, &f);
	assert_int_equal(b[0], 0xBE);
	assert_int_equal(b[1], 0xEF);
	assert_int_equal(b[3], 3);
	assert_int_equal(b[5], 7);
	assert_int_equal(sp_mc_frame_decode(b, sizeof(b), &g), 0);
	assert_memory_equal(&f, &g, sizeof(f));
	assert_int_equal(sp_mc_frame_decode(b, 7, &g), -SP_ETRUNCATED);
	assert_int_equal(sp_mc_frame_decode(b, 0, &g), -SP_ETRUNCATED);
}

static void
test_frame_acceptable(void **state)
{
	struct sp_mc_frame f = {.request_id = 1, .seq = 9, .count = 1, .reserved = 5};

	(void)state;
	/* memcached ignores seq and reserved on requests, drops count != 1 and empty ones. */
	assert_true(sp_mc_frame_acceptable(&f, 1));
	assert_false(sp_mc_frame_acceptable(&f, 0));
	f.count = 2;
	assert_false(sp_mc_frame_acceptable(&f, 10));
	f.count = 0;
	assert_false(sp_mc_frame_acceptable(&f, 10));
}

/* ---- Numbers -------------------------------------------------------------------------------- */

static void
test_numbers(void **state)
{
	uint32_t u;
	int32_t i;
	uint64_t q;

	(void)state;
	assert_true(sp_mc_read_u32("0", 1, &u) && u == 0);
	assert_true(sp_mc_read_u32("4294967295", 10, &u) && u == UINT32_MAX);
	/* 64-bit strtoul then a 32-bit store: 2^32 reads as 0. */
	assert_true(sp_mc_read_u32("4294967296", 10, &u) && u == 0);
	assert_true(sp_mc_read_u32("+7", 2, &u) && u == 7);
	assert_true(sp_mc_read_u32("-0", 2, &u) && u == 0);
	assert_true(sp_mc_read_u32("\t5", 2, &u) && u == 5);
	assert_true(sp_mc_read_u32("5\r", 2, &u) && u == 5);
	assert_false(sp_mc_read_u32("-1", 2, &u));
	assert_false(sp_mc_read_u32("5x", 2, &u));
	assert_false(sp_mc_read_u32("", 0, &u));
	assert_false(sp_mc_read_u32("+", 1, &u));
	assert_false(sp_mc_read_u32("18446744073709551616", 20, &u));

	assert_true(sp_mc_read_i32("-1", 2, &i) && i == -1);
	assert_true(sp_mc_read_i32("2147483648", 10, &i) && i == INT32_MIN);
	assert_true(sp_mc_read_i32("4294967297", 10, &i) && i == 1);
	assert_true(sp_mc_read_i32("-9223372036854775808", 20, &i) && i == 0);
	assert_false(sp_mc_read_i32("9223372036854775808", 19, &i));
	assert_false(sp_mc_read_i32("-9223372036854775809", 20, &i));
	assert_false(sp_mc_read_i32("1.5", 3, &i));

	assert_true(sp_mc_read_u64("18446744073709551615", 20, &q) && q == UINT64_MAX);
	assert_false(sp_mc_read_u64("18446744073709551616", 20, &q));
	assert_false(sp_mc_read_u64("-1", 2, &q));
	/* strtoull negates: "-18446744073709551615" is 1, not negative as a signed number. */
	assert_true(sp_mc_read_u64("-18446744073709551615", 21, &q) && q == 1);
}

/* ---- Parser: valid commands ------------------------------------------------------------------ */

static void
test_parse_get_family(void **state)
{
	struct sp_mc_cmd c;
	size_t used;
	uint32_t pos = 0, kl;
	const char *k;
	const char *req = "get a bb  ccc\r\nrest";

	(void)state;
	assert_int_equal(parse_str(req, &c, &used), 0);
	assert_int_equal(used, 15);
	assert_int_equal(c.kind, SP_MC_GET);
	assert_int_equal(c.key_count, 3);
	assert_true(sp_mc_next_key(&c, &pos, &k, &kl) && kl == 1 && k[0] == 'a');
	assert_true(sp_mc_next_key(&c, &pos, &k, &kl) && kl == 2 && memcmp(k, "bb", 2) == 0);
	assert_true(sp_mc_next_key(&c, &pos, &k, &kl) && kl == 3 && memcmp(k, "ccc", 3) == 0);
	assert_false(sp_mc_next_key(&c, &pos, &k, &kl));

	assert_int_equal(parse_str("gets x\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GETS);
	assert_int_equal(used, 7);
	assert_int_equal(c.key_len, 1);
	assert_int_equal(parse_str("bget x\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GET);
	assert_int_equal(parse_str("gat -5 k1 k2\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GAT);
	assert_int_equal(c.exptime, -5);
	assert_int_equal(c.key_count, 2);
	assert_int_equal(parse_str("gats 100 k\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GATS);
	assert_int_equal(c.exptime, 100);
	/* "gat <exptime>" with no key is legal and answers END. */
	assert_int_equal(parse_str("gat 100\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GAT);
	assert_int_equal(c.key_count, 0);
}

static void
test_parse_get_many_tokens(void **state)
{
	char req[4096];
	size_t n = 0, used;
	struct sp_mc_cmd c;

	(void)state;
	/* More keys than memcached tokenizes at once: all of them are kept. */
	n += (size_t)sprintf(req, "get");
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(req + n, " key%d", i);
	n += (size_t)sprintf(req + n, "\r\n");
	assert_int_equal(parse_str(req, &c, &used), 0);
	assert_int_equal(used, n);
	assert_int_equal(c.kind, SP_MC_GET);
	assert_int_equal(c.key_count, 40);
}

static void
test_parse_storage(void **state)
{
	struct sp_mc_cmd c;
	size_t used;
	static const struct {
		const char *word;
		enum sp_mc_kind kind;
	} words[] = {{"set", SP_MC_SET},
	             {"add", SP_MC_ADD},
	             {"replace", SP_MC_REPLACE},
	             {"append", SP_MC_APPEND},
	             {"prepend", SP_MC_PREPEND}};
	char req[128];

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		int n = snprintf(req, sizeof(req), "%s key 42 100 3\r\nabc\r\nnext", words[i].word);

		assert_int_equal(parse_str(req, &c, &used), 0);
		assert_int_equal(used, (size_t)n - 4);
		assert_int_equal(c.kind, words[i].kind);
		assert_int_equal(c.flags, 42);
		assert_int_equal(c.exptime, 100);
		assert_int_equal(c.value_len, 3);
		assert_memory_equal(c.value, "abc", 3);
		assert_int_equal(c.key_len, 3);
		assert_false(c.noreply);
	}
	assert_int_equal(parse_str("cas k 1 2 3 12345678901234 noreply\r\nxyz\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_CAS);
	assert_int_equal(c.cas_unique, 12345678901234ull);
	assert_true(c.noreply);
	/* A sixth token that is not "noreply" is ignored, as memcached does. */
	assert_int_equal(parse_str("set k 0 0 1 junk\r\nx\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_SET);
	assert_false(c.noreply);
	/* Empty and binary values. */
	assert_int_equal(parse_str("set k 0 0 0\r\n\r\n", &c, &used), 0);
	assert_int_equal(c.value_len, 0);
	assert_int_equal(used, 15);
	assert_int_equal(parse_buf("set k 0 0 3\r\n\0\r\n\r\n", 18, &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_SET);
	assert_int_equal(used, 18);
}

static void
test_parse_others(void **state)
{
	struct sp_mc_cmd c;
	size_t used;

	(void)state;
	assert_int_equal(parse_str("delete k\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_DELETE);
	assert_false(c.noreply);
	assert_int_equal(parse_str("delete k 0\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_DELETE);
	assert_int_equal(parse_str("delete k 0 noreply\r\n", &c, &used), 0);
	assert_true(c.noreply);
	assert_int_equal(c.kind, SP_MC_DELETE);
	assert_int_equal(parse_str("incr k 18446744073709551615\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_INCR);
	assert_true(c.delta == UINT64_MAX);
	assert_int_equal(parse_str("decr k 3 noreply\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_DECR);
	assert_true(c.noreply);
	assert_int_equal(parse_str("touch k -1\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_TOUCH);
	assert_int_equal(c.exptime, -1);
	assert_int_equal(parse_str("flush_all\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_FLUSH_ALL);
	assert_false(c.has_delay);
	assert_int_equal(parse_str("flush_all 30 noreply\r\n", &c, &used), 0);
	assert_true(c.has_delay);
	assert_int_equal(c.delay, 30);
	assert_true(c.noreply);
	assert_int_equal(parse_str("flush_all noreply\r\n", &c, &used), 0);
	assert_false(c.has_delay);
	assert_true(c.noreply);
	assert_int_equal(parse_str("version\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_VERSION);
	assert_int_equal(parse_str("verbosity 3 noreply\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_VERBOSITY);
	assert_int_equal(c.level, 3);
	assert_int_equal(parse_str("stats\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_STATS);
	assert_int_equal(parse_str("stats reset\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_STATS_RESET);
	assert_int_equal(parse_str("quit\r\n", &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_QUIT);
}

/* ---- Parser: malformed input maps to memcached's reply ----------------------------------- */

struct bad_case {
	const char *req;
	enum sp_mc_reply reply;
	bool noreply;
	size_t used; /* 0: the whole request */
};

static void
test_parse_malformed(void **state)
{
	static const struct bad_case cases[] = {
	        {"bogus\r\n", SP_MC_R_ERROR, false, 0},
	        {"\r\n", SP_MC_R_ERROR, false, 0},
	        {"\n", SP_MC_R_ERROR, false, 0},
	        {"x\r\n", SP_MC_R_ERROR, false, 0},
	        {"GET a\r\n", SP_MC_R_ERROR, false, 0},
	        {"get\r\n", SP_MC_R_ERROR, false, 0},
	        {"bget\n", SP_MC_R_ERROR, false, 0},
	        {"gett a\r\n", SP_MC_R_ERROR, false, 0},
	        {"gat x k\r\n", SP_MC_R_BAD_EXPTIME, false, 0},
	        {"set k 0 0\r\n", SP_MC_R_ERROR, false, 0},
	        {"set k 0 0 1 a b\r\nx\r\n", SP_MC_R_ERROR, false, 17},
	        {"set k x 0 1\r\nx\r\n", SP_MC_R_BAD_FORMAT, false, 13},
	        {"set k -1 0 1\r\nx\r\n", SP_MC_R_BAD_FORMAT, false, 14},
	        {"set k 0 x 1\r\nx\r\n", SP_MC_R_BAD_FORMAT, false, 13},
	        {"set k 0 0 -1\r\nx\r\n", SP_MC_R_BAD_FORMAT, false, 14},
	        {"set k 0 0 2147483647\r\nx\r\n", SP_MC_R_BAD_FORMAT, false, 22},
	        {"set k 0 0 1 noreply\r\nab\r\n", SP_MC_R_BAD_CHUNK, true, 24},
	        {"set k 0 0 1\r\nab\r\n", SP_MC_R_BAD_CHUNK, false, 16},
	        {"cas k 0 0 1\r\nx\r\n", SP_MC_R_ERROR, false, 13},
	        {"cas k 0 0 1 abc\r\nx\r\n", SP_MC_R_BAD_FORMAT, false, 17},
	        {"cas k 0 0 1 noreply\r\nx\r\n", SP_MC_R_BAD_FORMAT, true, 21},
	        {"delete\r\n", SP_MC_R_ERROR, false, 0},
	        {"delete k 5\r\n", SP_MC_R_BAD_DELETE, false, 0},
	        {"delete k 5 noreply\r\n", SP_MC_R_BAD_DELETE, true, 0},
	        {"delete k a b c\r\n", SP_MC_R_ERROR, false, 0},
	        {"incr k\r\n", SP_MC_R_ERROR, false, 0},
	        {"incr k abc\r\n", SP_MC_R_BAD_DELTA, false, 0},
	        {"incr k -1\r\n", SP_MC_R_BAD_DELTA, false, 0},
	        {"decr k 1 noreply x\r\n", SP_MC_R_ERROR, false, 0},
	        {"touch k x\r\n", SP_MC_R_BAD_EXPTIME, false, 0},
	        {"touch k x noreply\r\n", SP_MC_R_BAD_EXPTIME, true, 0},
	        {"verbosity\r\n", SP_MC_R_ERROR, false, 0},
	        {"verbosity x\r\n", SP_MC_R_BAD_FORMAT, false, 0},
	        {"verbosity noreply\r\n", SP_MC_R_BAD_FORMAT, true, 0},
	        {"flush_all x\r\n", SP_MC_R_BAD_EXPTIME, false, 0},
	        {"flush_all 1 2 3\r\n", SP_MC_R_ERROR, false, 0},
	        {"stats items\r\n", SP_MC_R_ERROR, false, 0},
	        {"shutdown\r\n", SP_MC_R_SHUTDOWN, false, 0},
	        {"mg key v\r\n", SP_MC_R_ERROR, false, 0},
	        {"slabs reassign 1 2\r\n", SP_MC_R_ERROR, false, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_mc_cmd c;
		size_t used;

		assert_int_equal(parse_str(cases[i].req, &c, &used), 0);
		if (c.reply != cases[i].reply || c.noreply != cases[i].noreply)
			fail_msg("case %zu %s: reply %d noreply %d", i, cases[i].req, c.reply,
			         c.noreply);
		assert_int_equal(c.kind, SP_MC_REPLY);
		if (used != (cases[i].used ? cases[i].used : strlen(cases[i].req)))
			fail_msg("case %zu %s: used %zu", i, cases[i].req, used);
	}
}

static void
test_parse_oversized(void **state)
{
	char req[700];
	struct sp_mc_cmd c;
	size_t used;
	int n;

	(void)state;
	/* Keys: 250 bytes is the limit, 251 is an error (a get also drops queued replies). */
	n = snprintf(req, sizeof(req), "get %.*s\r\n", 250,
	             (const char *)memset(req + 400, 'k', 251));
	assert_int_equal(parse_buf(req, (size_t)n, &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GET);
	n = snprintf(req, sizeof(req), "get a %.*s b\r\n", 251, req + 400);
	assert_int_equal(parse_buf(req, (size_t)n, &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_REPLY);
	assert_int_equal(c.reply, SP_MC_R_BAD_FORMAT);
	assert_true(c.cull);
	n = snprintf(req, sizeof(req), "set %.*s 0 0 1 noreply\r\nx\r\n", 251, req + 400);
	assert_int_equal(parse_buf(req, (size_t)n, &c, &used), 0);
	assert_int_equal(c.reply, SP_MC_R_BAD_FORMAT);
	assert_true(c.noreply);
	/* The data line is not consumed: memcached reads it as the next command. */
	assert_int_equal(used, (size_t)n - 3);
	n = snprintf(req, sizeof(req), "touch %.*s 1\r\n", 251, req + 400);
	assert_int_equal(parse_buf(req, (size_t)n, &c, &used), 0);
	assert_int_equal(c.reply, SP_MC_R_BAD_FORMAT);
	n = snprintf(req, sizeof(req), "delete %.*s\r\n", 251, req + 400);
	assert_int_equal(parse_buf(req, (size_t)n, &c, &used), 0);
	assert_int_equal(c.reply, SP_MC_R_BAD_FORMAT);

	/* A value over the limit: too_large, and the bytes present are swallowed. */
	assert_int_equal(sp_mc_parse((const uint8_t *)"set k 0 0 11\r\nhello world\r\nget k\r\n",
	                             35, 10, &c, &used),
	                 0);
	assert_int_equal(c.kind, SP_MC_SET);
	assert_true(c.too_large);
	assert_int_equal(c.reply, SP_MC_R_TOO_LARGE);
	assert_int_equal(used, 27);
	/* Exactly at the limit is fine. */
	assert_int_equal(
	        sp_mc_parse((const uint8_t *)"set k 0 0 10\r\nhello worl\r\n", 26, 10, &c, &used),
	        0);
	assert_false(c.too_large);
	assert_int_equal(c.value_len, 10);
	/* Declared far beyond the datagram: swallow to the end. */
	assert_int_equal(parse_str("set k 0 0 2000000\r\nabc\r\n", &c, &used), 0);
	assert_true(c.too_large);
	assert_int_equal(used, 24);
}

static void
test_parse_get_keys_bound(void **state)
{
	size_t len = 4 + 2 * (SP_MC_GET_KEYS_MAX + 1) + 2;
	char *req = malloc(len + 1);
	struct sp_mc_cmd c;
	size_t used, n = 3;

	(void)state;
	assert_non_null(req);
	memcpy(req, "get", 3);
	for (uint32_t i = 0; i < SP_MC_GET_KEYS_MAX; i++) {
		req[n++] = ' ';
		req[n++] = 'k';
	}
	memcpy(req + n, "\r\n", 2);
	/* Exactly at the bound: accepted. */
	assert_int_equal(parse_buf(req, n + 2, &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GET);
	assert_int_equal(c.key_count, SP_MC_GET_KEYS_MAX);
	/* One more: memcached's out-of-response-objects answer. */
	req[n++] = ' ';
	req[n++] = 'k';
	memcpy(req + n, "\r\n", 2);
	assert_int_equal(parse_buf(req, n + 2, &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_REPLY);
	assert_int_equal(c.reply, SP_MC_R_OOM_GET);
	assert_true(c.cull);
	free(req);
}

static void
test_parse_truncated(void **state)
{
	struct sp_mc_cmd c;
	size_t used;

	(void)state;
	assert_int_equal(parse_str("get a", &c, &used), -SP_ETRUNCATED);
	assert_int_equal(used, 5);
	assert_int_equal(parse_buf("", 0, &c, &used), -SP_ETRUNCATED);
	assert_int_equal(parse_str("set k 0 0 5\r\nab", &c, &used), -SP_ETRUNCATED);
	assert_int_equal(parse_str("set k 0 0 2\r\nab", &c, &used), -SP_ETRUNCATED);
	assert_int_equal(parse_str("set k 0 0 2\r\nab\r", &c, &used), -SP_ETRUNCATED);
	assert_int_equal(parse_str("set k 0 0 2\r\nab\r\n", &c, &used), 0);
}

static void
test_parse_line_quirks(void **state)
{
	struct sp_mc_cmd c;
	size_t used;

	(void)state;
	/* A NUL ends the command line (memcached uses strlen); the line is still consumed. */
	assert_int_equal(parse_buf("get a\0junk\r\nX", 13, &c, &used), 0);
	assert_int_equal(c.kind, SP_MC_GET);
	assert_int_equal(c.key_count, 1);
	assert_int_equal(used, 12);
	/* Only one '\r' is stripped; the second stays in the last token. */
	assert_int_equal(parse_str("get a\r\r\n", &c, &used), 0);
	assert_int_equal(c.key_len, 2);
	/* Tabs are not separators. */
	assert_int_equal(parse_str("get a\tb\r\n", &c, &used), 0);
	assert_int_equal(c.key_count, 1);
	assert_int_equal(c.key_len, 3);
	/* HTTP: memcached drops the connection's queue and the rest of the datagram. */
	assert_int_equal(parse_str("GET / HTTP/1.1\r\n", &c, &used), 0);
	assert_true(c.close);
	assert_true(c.cull);
}

/* ---- Writer ------------------------------------------------------------------------------- */

#define OUT_CAP 8u

struct outbuf {
	uint8_t buf[OUT_CAP * SP_MC_DGRAM_BYTES_MAX];
	uint16_t lens[OUT_CAP];
	struct sp_mc_out o;
};

static void
check_hdr(const struct outbuf *ob, uint32_t i, uint16_t rid, uint16_t seq, uint16_t count)
{
	struct sp_mc_frame f;

	assert_int_equal(sp_mc_frame_decode(sp_mc_out_dgram(&ob->o, i), ob->lens[i], &f), 0);
	assert_int_equal(f.request_id, rid);
	assert_int_equal(f.seq, seq);
	assert_int_equal(f.count, count);
	assert_int_equal(f.reserved, 0);
}

static void
test_writer_lines_and_split(void **state)
{
	static struct outbuf ob;
	static uint8_t big[3000];
	struct sp_mc_seg segs[3] = {{"VALUE k 0 3000\r\n", 16}, {big, sizeof(big)}, {"\r\n", 2}};
	size_t total = 16 + sizeof(big) + 2;
	uint8_t joined[4000];
	size_t at = 0;

	(void)state;
	memset(big, 'v', sizeof(big));
	sp_mc_out_init(&ob.o, ob.buf, ob.lens, OUT_CAP, 77);
	assert_int_equal(sp_mc_out_line(&ob.o, "STORED", 6), 0);
	assert_int_equal(ob.o.n, 1);
	assert_int_equal(ob.lens[0], 16);
	check_hdr(&ob, 0, 77, 0, 1);
	assert_memory_equal(sp_mc_out_dgram(&ob.o, 0) + 8, "STORED\r\n", 8);
	/* 3018 bytes: 1392 + 1392 + 234, each datagram numbered of 3. */
	assert_int_equal(sp_mc_out_resp(&ob.o, segs, 3), 0);
	assert_int_equal(ob.o.n, 4);
	assert_int_equal(ob.lens[1], SP_MC_DGRAM_BYTES_MAX);
	assert_int_equal(ob.lens[2], SP_MC_DGRAM_BYTES_MAX);
	assert_int_equal(ob.lens[3], 8 + total - 2 * SP_MC_DGRAM_DATA_MAX);
	for (uint16_t i = 0; i < 3; i++) {
		check_hdr(&ob, 1u + i, 77, i, 3);
		memcpy(joined + at, sp_mc_out_dgram(&ob.o, 1u + i) + 8, ob.lens[1 + i] - 8u);
		at += ob.lens[1 + i] - 8u;
	}
	assert_int_equal(at, total);
	assert_memory_equal(joined, "VALUE k 0 3000\r\nvvv", 19);
	assert_memory_equal(joined + total - 3, "v\r\n", 3);
}

static void
test_writer_empty_absorb_skip_cull(void **state)
{
	static struct outbuf ob;
	struct sp_mc_seg none[1];

	(void)state;
	sp_mc_out_init(&ob.o, ob.buf, ob.lens, OUT_CAP, 5);
	/* An empty response at the head of a flush: a header-only datagram with count 0. */
	assert_int_equal(sp_mc_out_need(&ob.o, 0), 1);
	assert_int_equal(sp_mc_out_resp(&ob.o, none, 0), 0);
	assert_int_equal(ob.o.n, 1);
	assert_int_equal(ob.lens[0], 8);
	check_hdr(&ob, 0, 5, 0, 0);
	/* Directly after a sent response, an empty one is absorbed; a skip changes nothing. */
	assert_int_equal(sp_mc_out_need(&ob.o, 0), 0);
	assert_int_equal(sp_mc_out_resp(&ob.o, none, 0), 0);
	sp_mc_out_skip(&ob.o);
	assert_int_equal(sp_mc_out_resp(&ob.o, none, 0), 0);
	assert_int_equal(ob.o.n, 1);
	/* After a flush an empty response is sent again. */
	sp_mc_out_flush(&ob.o);
	assert_int_equal(sp_mc_out_resp(&ob.o, none, 0), 0);
	assert_int_equal(ob.o.n, 2);
	/* Cull drops back to the last flush. */
	assert_int_equal(sp_mc_out_line(&ob.o, "END", 3), 0);
	assert_int_equal(ob.o.n, 3);
	sp_mc_out_cull(&ob.o);
	assert_int_equal(ob.o.n, 1);
	assert_false(ob.o.absorbing);
}

static void
test_writer_full_bound(void **state)
{
	static struct outbuf ob;
	static uint8_t big[SP_MC_DGRAM_DATA_MAX * OUT_CAP];
	struct sp_mc_seg exact = {big, sizeof(big)};
	struct sp_mc_seg over = {big, sizeof(big) + 0};

	(void)state;
	/* Exactly cap datagrams fit; one byte more does not, and nothing is written. */
	sp_mc_out_init(&ob.o, ob.buf, ob.lens, OUT_CAP, 1);
	assert_int_equal(sp_mc_out_resp(&ob.o, &exact, 1), 0);
	assert_int_equal(ob.o.n, OUT_CAP);
	sp_mc_out_init(&ob.o, ob.buf, ob.lens, OUT_CAP, 1);
	assert_int_equal(sp_mc_out_line(&ob.o, "X", 1), 0);
	assert_int_equal(sp_mc_out_resp(&ob.o, &over, 1), -SP_EFULL);
	assert_int_equal(ob.o.n, 1);
	assert_int_equal(sp_mc_out_line(&ob.o, "Y", 1), 0);
	assert_int_equal(ob.o.n, 2);
}

static void
test_format(void **state)
{
	char b[SP_MC_LINE_BYTES_MAX];
	char key[SP_MC_KEY_MAX];
	size_t n;

	(void)state;
	n = sp_mc_format_value_line(b, "abc", 3, 5, 3, false, 0);
	assert_int_equal(n, 15);
	assert_memory_equal(b, "VALUE abc 5 3\r\n", n);
	n = sp_mc_format_value_line(b, "k", 1, UINT32_MAX, 0, true, UINT64_MAX);
	assert_memory_equal(b, "VALUE k 4294967295 0 18446744073709551615\r\n", n);
	memset(key, 'z', sizeof(key));
	n = sp_mc_format_value_line(b, key, sizeof(key), UINT32_MAX, UINT32_MAX, true, UINT64_MAX);
	assert_true(n <= SP_MC_LINE_BYTES_MAX);
	n = sp_mc_format_number_line(b, 0);
	assert_memory_equal(b, "0\r\n", 3);
	n = sp_mc_format_number_line(b, UINT64_MAX);
	assert_int_equal(n, 22);
	assert_string_equal(sp_mc_reply_text(SP_MC_R_BAD_CHUNK), "CLIENT_ERROR bad data chunk");
	assert_string_equal(sp_mc_reply_text(SP_MC_R_COUNT), "");
}

/* ---- Randomized: mutated commands never break the parser's contract ------------------------ */

static void
test_parse_random(void **state)
{
	static const char *const seeds[] = {"get a b c\r\n",
	                                    "set k 1 2 3\r\nabc\r\n",
	                                    "cas k 0 0 1 5 noreply\r\nx\r\n",
	                                    "delete k 0 noreply\r\n",
	                                    "incr k 5\r\n",
	                                    "gat 10 a b\r\n",
	                                    "flush_all 5\r\n",
	                                    "verbosity 1\r\n",
	                                    "stats\r\n",
	                                    "touch k 1\r\n"};
	const char *env = getenv("SP_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 10) : sp_mono_ns();
	uint8_t buf[96];

	(void)state;
	printf("test_parse_random: seed %" PRIu64 " (replay with SP_TEST_SEED)\n", seed);
	srand((unsigned)seed);
	for (uint32_t r = 0; r < RANDOM_ROUNDS; r++) {
		const char *s = seeds[(unsigned)rand() % (sizeof(seeds) / sizeof(seeds[0]))];
		size_t len = strlen(s);
		struct sp_mc_cmd c;
		size_t used, off = 0;
		unsigned flips = (unsigned)rand() % 4;

		memcpy(buf, s, len);
		for (unsigned f = 0; f < flips; f++)
			buf[(unsigned)rand() % len] = (uint8_t)rand();
		len = (size_t)rand() % (len + 1);
		/* Walk the buffer as the executor does: every step advances, nothing overruns. */
		while (off < len) {
			int rc = parse_buf(buf + off, len - off, &c, &used);

			assert_true(used <= len - off);
			if (rc != 0) {
				assert_int_equal(rc, -SP_ETRUNCATED);
				break;
			}
			assert_true(used > 0);
			assert_true(c.kind < SP_MC_KIND_COUNT);
			assert_true(c.key_len <= SP_MC_KEY_MAX);
			off += used;
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_frame_roundtrip),
	        cmocka_unit_test(test_frame_acceptable),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_parse_get_family),
	        cmocka_unit_test(test_parse_get_many_tokens),
	        cmocka_unit_test(test_parse_storage),
	        cmocka_unit_test(test_parse_others),
	        cmocka_unit_test(test_parse_malformed),
	        cmocka_unit_test(test_parse_oversized),
	        cmocka_unit_test(test_parse_get_keys_bound),
	        cmocka_unit_test(test_parse_truncated),
	        cmocka_unit_test(test_parse_line_quirks),
	        cmocka_unit_test(test_writer_lines_and_split),
	        cmocka_unit_test(test_writer_empty_absorb_skip_cull),
	        cmocka_unit_test(test_writer_full_bound),
	        cmocka_unit_test(test_format),
	        cmocka_unit_test(test_parse_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
