/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcached ASCII protocol over UDP. The parser mirrors memcached 1.6's proto_text.c
 * decisions one by one (token counts first, then noreply, then key length, then numbers),
 * because the order decides which error line a bad command gets and whether noreply
 * silences it.
 */
#include "wire/memcache.h"

#include <string.h>

#include "common/errors.h"
#include "common/verify.h"

SP_STATIC_ASSERT(SP_MC_DGRAM_DATA_MAX == 1392u, "memcached's UDP_DATA_SIZE");
SP_STATIC_ASSERT(SP_MC_GET_KEYS_MAX <= UINT16_MAX, "key count fits the writer's bound");

/* ---- Frame header ---------------------------------------------------------------------- */

static uint16_t
load_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void
store_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

int
sp_mc_frame_decode(const uint8_t *buf, size_t len, struct sp_mc_frame *out)
{
	ASSERT(out != NULL);
	if (len < SP_MC_FRAME_BYTES)
		return -SP_ETRUNCATED;
	ASSERT(buf != NULL);
	out->request_id = load_be16(buf);
	out->seq = load_be16(buf + 2);
	out->count = load_be16(buf + 4);
	out->reserved = load_be16(buf + 6);
	return 0;
}

void
sp_mc_frame_encode(uint8_t *buf, const struct sp_mc_frame *f)
{
	ASSERT(buf != NULL);
	ASSERT(f != NULL);
	store_be16(buf, f->request_id);
	store_be16(buf + 2, f->seq);
	store_be16(buf + 4, f->count);
	store_be16(buf + 6, f->reserved);
}

bool
sp_mc_frame_acceptable(const struct sp_mc_frame *f, size_t payload_len)
{
	ASSERT(f != NULL);
	if (f->count != 1)
		return false;
	return payload_len > 0;
}

/* ---- Numbers ------------------------------------------------------------------------------ */

static bool
c_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * strtoull/strtol's scan over a token that ends at len (memcached's tokens are
 * NUL-terminated there). *end = index after the last digit, 0 when there is none.
 * *overflow when the magnitude exceeds limit.
 */
static void
scan_decimal(const char *s, size_t len, uint64_t limit, uint64_t *mag, bool *neg, bool *overflow,
             size_t *end)
{
	size_t i = 0;
	size_t first_digit;

	*mag = 0;
	*neg = false;
	*overflow = false;
	*end = 0;
	while (i < len && c_isspace(s[i]))
		i++;
	if (i < len && (s[i] == '+' || s[i] == '-')) {
		*neg = s[i] == '-';
		i++;
	}
	first_digit = i;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		uint64_t d = (uint64_t)(s[i] - '0');

		if (*mag > (limit - d) / 10)
			*overflow = true;
		else
			*mag = *mag * 10 + d;
		i++;
	}
	if (i > first_digit)
		*end = i;
	ASSERT(*end <= len);
}

/* memcached's "the number is followed by the token's end or a blank" check. */
static bool
ends_number(const char *s, size_t len, size_t end)
{
	if (end == 0)
		return false;
	return end == len || c_isspace(s[end]);
}

bool
sp_mc_read_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t mag, v;
	bool neg, overflow;
	size_t end;

	ASSERT(out != NULL);
	*out = 0;
	scan_decimal(s, len, UINT64_MAX, &mag, &neg, &overflow, &end);
	if (overflow || !ends_number(s, len, end))
		return false;
	v = neg ? (uint64_t)0 - mag : mag;
	if ((int64_t)v < 0 && memchr(s, '-', end) != NULL)
		return false;
	*out = v;
	return true;
}

bool
sp_mc_read_u32(const char *s, size_t len, uint32_t *out)
{
	uint64_t v;
	bool ok;

	ASSERT(out != NULL);
	/* memcached reads into a 64-bit unsigned long and stores its low 32 bits. */
	ok = sp_mc_read_u64(s, len, &v);
	*out = ok ? (uint32_t)v : 0;
	return ok;
}

bool
sp_mc_read_i32(const char *s, size_t len, int32_t *out)
{
	uint64_t mag;
	bool neg, overflow;
	size_t end;

	ASSERT(out != NULL);
	*out = 0;
	scan_decimal(s, len, UINT64_MAX, &mag, &neg, &overflow, &end);
	if (overflow)
		return false;
	if (!neg && mag > (uint64_t)INT64_MAX)
		return false;
	if (neg && mag > (uint64_t)INT64_MAX + 1u)
		return false;
	if (!ends_number(s, len, end))
		return false;
	/* strtol's long, truncated to 32 bits as memcached's int32_t store does. */
	*out = (int32_t)(uint32_t)(neg ? (uint64_t)0 - mag : mag);
	return true;
}

/* ---- Replies ------------------------------------------------------------------------------ */

static const char *const reply_texts[SP_MC_R_COUNT] = {
        [SP_MC_R_NONE] = "",
        [SP_MC_R_ERROR] = "ERROR",
        [SP_MC_R_BAD_FORMAT] = "CLIENT_ERROR bad command line format",
        [SP_MC_R_BAD_DELETE] = "CLIENT_ERROR bad command line format.  "
                               "Usage: delete <key> [noreply]",
        [SP_MC_R_BAD_CHUNK] = "CLIENT_ERROR bad data chunk",
        [SP_MC_R_BAD_EXPTIME] = "CLIENT_ERROR invalid exptime argument",
        [SP_MC_R_BAD_DELTA] = "CLIENT_ERROR invalid numeric delta argument",
        [SP_MC_R_NON_NUMERIC] = "CLIENT_ERROR cannot increment or decrement non-numeric value",
        [SP_MC_R_TOO_LARGE] = "SERVER_ERROR object too large for cache",
        [SP_MC_R_OOM_STORE] = "SERVER_ERROR out of memory storing object",
        [SP_MC_R_OOM_GET] = "SERVER_ERROR out of memory writing get response",
        [SP_MC_R_SHUTDOWN] = "ERROR: shutdown not enabled",
        [SP_MC_R_CROSS_PARTITION] = "SERVER_ERROR key is owned by another core; "
                                    "send one command per datagram",
        [SP_MC_R_BUSY] = "SERVER_ERROR temporary failure",
        [SP_MC_R_STORED] = "STORED",
        [SP_MC_R_NOT_STORED] = "NOT_STORED",
        [SP_MC_R_EXISTS] = "EXISTS",
        [SP_MC_R_NOT_FOUND] = "NOT_FOUND",
        [SP_MC_R_DELETED] = "DELETED",
        [SP_MC_R_TOUCHED] = "TOUCHED",
        [SP_MC_R_OK] = "OK",
        [SP_MC_R_RESET] = "RESET",
        [SP_MC_R_END] = "END",
};

const char *
sp_mc_reply_text(enum sp_mc_reply r)
{
	if ((unsigned)r >= SP_MC_R_COUNT)
		return "";
	ASSERT(reply_texts[r] != NULL);
	return reply_texts[r];
}

bool
sp_mc_kind_is_storage(enum sp_mc_kind kind)
{
	return kind >= SP_MC_SET && kind <= SP_MC_CAS;
}

bool
sp_mc_kind_is_get(enum sp_mc_kind kind)
{
	return kind >= SP_MC_GET && kind <= SP_MC_GATS;
}

/* ---- Tokenizer ---------------------------------------------------------------------------- */

struct token {
	const char *p;
	uint32_t len;
};

/*
 * memcached's tokenize_command() over line[0..len): splits on ' ' only, stops after
 * SP_MC_TOKENS_MAX - 1 tokens. Returns the token count including the terminal token, whose
 * p is the unprocessed rest (NULL when everything was read). Can't fail.
 */
static size_t
tokenize(const char *line, size_t len, struct token *t)
{
	size_t n = 0;
	size_t s = 0, e = 0;

	ASSERT(t != NULL);
	for (; e < len; e++) {
		if (line[e] != ' ')
			continue;
		if (s != e) {
			t[n].p = line + s;
			t[n].len = (uint32_t)(e - s);
			n++;
			if (n == SP_MC_TOKENS_MAX - 1) {
				e++;
				s = e;
				break;
			}
		}
		s = e + 1;
	}
	if (s != e) {
		t[n].p = line + s;
		t[n].len = (uint32_t)(e - s);
		n++;
	}
	t[n].p = e < len ? line + e : NULL;
	t[n].len = 0;
	n++;
	ASSERT(n <= SP_MC_TOKENS_MAX);
	return n;
}

static bool
tok_is(const struct token *t, const char *word)
{
	size_t wl = strlen(word);

	ASSERT(wl > 0);
	if (t->p == NULL)
		return false;
	return t->len == wl && memcmp(t->p, word, wl) == 0;
}

/* set_noreply_maybe(): the last real token is exactly "noreply". */
static bool
noreply_maybe(const struct token *t, size_t ntok)
{
	ASSERT(ntok >= 2);
	return t[ntok - 2].p != NULL && tok_is(&t[ntok - 2], "noreply");
}

/* ---- Parser -------------------------------------------------------------------------------- */

static void
set_reply(struct sp_mc_cmd *cmd, enum sp_mc_reply r)
{
	ASSERT(cmd != NULL);
	ASSERT((unsigned)r < SP_MC_R_COUNT);
	cmd->kind = SP_MC_REPLY;
	cmd->reply = r;
}

/*
 * get/gets/gat/gats/bget: validates every key (memcached fails the whole command, and
 * drops what it queued, on the first over-long key) and records the key list.
 */
static void
parse_get(struct sp_mc_cmd *cmd, enum sp_mc_kind kind, const char *line, size_t line_len,
          const struct token *t)
{
	size_t first = 1;
	const char *keys;
	uint32_t pos = 0;
	const char *k;
	uint32_t kl;

	ASSERT(sp_mc_kind_is_get(kind));
	ASSERT(t[1].p != NULL);
	cmd->kind = kind;
	if (kind == SP_MC_GAT || kind == SP_MC_GATS) {
		if (!sp_mc_read_i32(t[1].p, t[1].len, &cmd->exptime)) {
			set_reply(cmd, SP_MC_R_BAD_EXPTIME);
			return;
		}
		first = 2;
	}
	if (t[first].p == NULL) {
		/* "gat <exptime>" with no key: memcached answers END. */
		cmd->keys = line + line_len;
		cmd->keys_len = 0;
		return;
	}
	keys = t[first].p;
	ASSERT(keys >= line);
	cmd->keys = keys;
	cmd->keys_len = (uint32_t)(line + line_len - keys);
	while (sp_mc_next_key(cmd, &pos, &k, &kl)) {
		if (kl > SP_MC_KEY_MAX) {
			set_reply(cmd, SP_MC_R_BAD_FORMAT);
			cmd->cull = true;
			return;
		}
		if (cmd->key_count == 0) {
			cmd->key = k;
			cmd->key_len = kl;
		}
		if (cmd->key_count == SP_MC_GET_KEYS_MAX) {
			set_reply(cmd, SP_MC_R_OOM_GET);
			cmd->cull = true;
			return;
		}
		cmd->key_count++;
	}
}

/* set/add/replace/append/prepend/cas: the command line (data block handled by caller). */
static bool
parse_update_line(struct sp_mc_cmd *cmd, enum sp_mc_kind kind, const struct token *t, size_t ntok)
{
	int32_t vlen;

	ASSERT(sp_mc_kind_is_storage(kind));
	ASSERT(ntok >= 6);
	cmd->kind = kind;
	cmd->noreply = noreply_maybe(t, ntok);
	if (t[1].len > SP_MC_KEY_MAX) {
		set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return false;
	}
	cmd->key = t[1].p;
	cmd->key_len = t[1].len;
	if (!sp_mc_read_u32(t[2].p, t[2].len, &cmd->flags) ||
	    !sp_mc_read_i32(t[3].p, t[3].len, &cmd->exptime) ||
	    !sp_mc_read_i32(t[4].p, t[4].len, &vlen)) {
		set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return false;
	}
	if (kind == SP_MC_CAS && !sp_mc_read_u64(t[5].p, t[5].len, &cmd->cas_unique)) {
		set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return false;
	}
	if (vlen < 0 || vlen > INT32_MAX - 2) {
		set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return false;
	}
	cmd->value_len = (uint32_t)vlen;
	return true;
}

/* The data block after a storage command's line: value bytes then "\r\n". */
static int
parse_data(struct sp_mc_cmd *cmd, const uint8_t *data, size_t avail, size_t value_max, size_t *used)
{
	size_t need = (size_t)cmd->value_len + 2u;

	ASSERT(sp_mc_kind_is_storage(cmd->kind));
	ASSERT(used != NULL);
	if (cmd->value_len > value_max) {
		/* memcached answers and swallows the declared bytes (those that are here). */
		cmd->too_large = true;
		cmd->reply = SP_MC_R_TOO_LARGE;
		*used = SP_MIN(need, avail);
		return 0;
	}
	if (avail < need) {
		*used = avail;
		return -SP_ETRUNCATED;
	}
	*used = need;
	if (data[cmd->value_len] != '\r' || data[cmd->value_len + 1] != '\n') {
		set_reply(cmd, SP_MC_R_BAD_CHUNK);
		return 0;
	}
	cmd->value = data;
	return 0;
}

static void
parse_delete(struct sp_mc_cmd *cmd, const struct token *t, size_t ntok)
{
	ASSERT(ntok >= 3);
	ASSERT(ntok <= 5);
	cmd->kind = SP_MC_DELETE;
	if (ntok > 3) {
		bool hold_is_zero = tok_is(&t[2], "0");
		bool valid;

		cmd->noreply = noreply_maybe(t, ntok);
		valid = (ntok == 4 && (hold_is_zero || cmd->noreply)) ||
		        (ntok == 5 && hold_is_zero && cmd->noreply);
		if (!valid) {
			set_reply(cmd, SP_MC_R_BAD_DELETE);
			return;
		}
	}
	if (t[1].len > SP_MC_KEY_MAX) {
		set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return;
	}
	cmd->key = t[1].p;
	cmd->key_len = t[1].len;
}

/* incr/decr/touch share their shape: key, then one number. */
static void
parse_key_number(struct sp_mc_cmd *cmd, enum sp_mc_kind kind, const struct token *t, size_t ntok)
{
	ASSERT(kind == SP_MC_INCR || kind == SP_MC_DECR || kind == SP_MC_TOUCH);
	ASSERT(ntok == 4 || ntok == 5);
	cmd->kind = kind;
	cmd->noreply = noreply_maybe(t, ntok);
	if (t[1].len > SP_MC_KEY_MAX) {
		set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return;
	}
	cmd->key = t[1].p;
	cmd->key_len = t[1].len;
	if (kind == SP_MC_TOUCH) {
		if (!sp_mc_read_i32(t[2].p, t[2].len, &cmd->exptime))
			set_reply(cmd, SP_MC_R_BAD_EXPTIME);
		return;
	}
	if (!sp_mc_read_u64(t[2].p, t[2].len, &cmd->delta))
		set_reply(cmd, SP_MC_R_BAD_DELTA);
}

static void
parse_flush_all(struct sp_mc_cmd *cmd, const struct token *t, size_t ntok)
{
	ASSERT(ntok >= 2);
	ASSERT(ntok <= 4);
	cmd->kind = SP_MC_FLUSH_ALL;
	cmd->noreply = noreply_maybe(t, ntok);
	if (ntok != (cmd->noreply ? 3u : 2u)) {
		if (!sp_mc_read_i32(t[1].p, t[1].len, &cmd->delay)) {
			set_reply(cmd, SP_MC_R_BAD_EXPTIME);
			return;
		}
		cmd->has_delay = true;
	}
}

static bool
ntok_in(size_t ntok, size_t lo, size_t hi)
{
	return ntok >= lo && ntok <= hi;
}

static bool
ntok_either(size_t ntok, size_t a, size_t b)
{
	return ntok == a || ntok == b;
}

/*
 * process_command_ascii(): dispatch on the command word. Returns true when the command
 * is a storage command whose data block must be read next.
 */
static bool
parse_line(struct sp_mc_cmd *cmd, const char *line, size_t line_len, const struct token *t,
           size_t ntok)
{
	const struct token *c = &t[0];
	char first;

	ASSERT(ntok >= 1);
	ASSERT(ntok <= SP_MC_TOKENS_MAX);
	if (ntok < 2 || c->len < 2) {
		set_reply(cmd, SP_MC_R_ERROR);
		return false;
	}
	first = c->p[0];
	if (first == 'g') {
		if (ntok < 3)
			set_reply(cmd, SP_MC_R_ERROR);
		else if (tok_is(c, "get"))
			parse_get(cmd, SP_MC_GET, line, line_len, t);
		else if (tok_is(c, "gets"))
			parse_get(cmd, SP_MC_GETS, line, line_len, t);
		else if (tok_is(c, "gat"))
			parse_get(cmd, SP_MC_GAT, line, line_len, t);
		else if (tok_is(c, "gats"))
			parse_get(cmd, SP_MC_GATS, line, line_len, t);
		else
			set_reply(cmd, SP_MC_R_ERROR);
		return false;
	}
	if (tok_is(c, "set") || tok_is(c, "add") || tok_is(c, "append") || tok_is(c, "replace") ||
	    tok_is(c, "prepend")) {
		enum sp_mc_kind k = tok_is(c, "set")       ? SP_MC_SET
		                    : tok_is(c, "add")     ? SP_MC_ADD
		                    : tok_is(c, "append")  ? SP_MC_APPEND
		                    : tok_is(c, "replace") ? SP_MC_REPLACE
		                                           : SP_MC_PREPEND;

		if (!ntok_either(ntok, 6, 7)) {
			set_reply(cmd, SP_MC_R_ERROR);
			return false;
		}
		return parse_update_line(cmd, k, t, ntok);
	}
	if (tok_is(c, "cas")) {
		if (!ntok_either(ntok, 7, 8)) {
			set_reply(cmd, SP_MC_R_ERROR);
			return false;
		}
		return parse_update_line(cmd, SP_MC_CAS, t, ntok);
	}
	if (tok_is(c, "stats")) {
		if (ntok == 2)
			cmd->kind = SP_MC_STATS;
		else if (tok_is(&t[1], "reset"))
			cmd->kind = SP_MC_STATS_RESET;
		else
			set_reply(cmd, SP_MC_R_ERROR); /* sub-stats Shardplane does not have */
		return false;
	}
	if (tok_is(c, "shutdown")) {
		set_reply(cmd, SP_MC_R_SHUTDOWN);
		return false;
	}
	if (tok_is(c, "incr") || tok_is(c, "decr") || tok_is(c, "touch")) {
		enum sp_mc_kind k = tok_is(c, "incr")   ? SP_MC_INCR
		                    : tok_is(c, "decr") ? SP_MC_DECR
		                                        : SP_MC_TOUCH;

		if (!ntok_either(ntok, 4, 5))
			set_reply(cmd, SP_MC_R_ERROR);
		else
			parse_key_number(cmd, k, t, ntok);
		return false;
	}
	if (tok_is(c, "delete")) {
		if (!ntok_in(ntok, 3, 5))
			set_reply(cmd, SP_MC_R_ERROR);
		else
			parse_delete(cmd, t, ntok);
		return false;
	}
	if (first == 'm' && c->len == 2) {
		set_reply(cmd, SP_MC_R_ERROR); /* meta commands: not supported */
		return false;
	}
	if (first == 's' || first == 'a' || first == 'c' || first == 'i' || first == 'd' ||
	    first == 't') {
		/* memcached's first-letter branches answer ERROR for every other word here. */
		set_reply(cmd, SP_MC_R_ERROR);
		return false;
	}
	if (tok_is(c, "bget")) {
		if (ntok < 3)
			set_reply(cmd, SP_MC_R_ERROR);
		else
			parse_get(cmd, SP_MC_GET, line, line_len, t);
		return false;
	}
	if (tok_is(c, "flush_all")) {
		if (!ntok_in(ntok, 2, 4))
			set_reply(cmd, SP_MC_R_ERROR);
		else
			parse_flush_all(cmd, t, ntok);
		return false;
	}
	if (tok_is(c, "version")) {
		cmd->kind = SP_MC_VERSION;
		return false;
	}
	if (tok_is(c, "quit")) {
		cmd->kind = SP_MC_QUIT;
		return false;
	}
	if (tok_is(c, "verbosity")) {
		if (!ntok_either(ntok, 3, 4)) {
			set_reply(cmd, SP_MC_R_ERROR);
			return false;
		}
		cmd->kind = SP_MC_VERBOSITY;
		cmd->noreply = noreply_maybe(t, ntok);
		if (!sp_mc_read_u32(t[1].p, t[1].len, &cmd->level))
			set_reply(cmd, SP_MC_R_BAD_FORMAT);
		return false;
	}
	/* memcached closes the connection on what looks like HTTP; over UDP that drops the
	 * queued replies and the rest of the datagram. */
	if (t[ntok - 2].len >= 5 && memcmp(t[ntok - 2].p, "HTTP/", 5) == 0) {
		set_reply(cmd, SP_MC_R_NONE);
		cmd->cull = true;
		cmd->close = true;
		return false;
	}
	set_reply(cmd, SP_MC_R_ERROR);
	return false;
}

int
sp_mc_parse(const uint8_t *buf, size_t len, size_t value_max, struct sp_mc_cmd *cmd,
            size_t *consumed)
{
	struct token t[SP_MC_TOKENS_MAX];
	const uint8_t *el;
	const char *line = (const char *)buf;
	size_t line_len, next, ntok, used;
	const uint8_t *nul;
	int rc;

	ASSERT(cmd != NULL);
	ASSERT(consumed != NULL);
	memset(cmd, 0, sizeof(*cmd));
	*consumed = len;
	el = len > 0 ? memchr(buf, '\n', len) : NULL;
	if (el == NULL)
		return -SP_ETRUNCATED;
	line_len = (size_t)(el - buf);
	next = line_len + 1;
	if (line_len > 1 && buf[line_len - 1] == '\r')
		line_len--;
	/* memcached's tokenizer stops at the first NUL byte (it uses strlen). */
	nul = memchr(buf, '\0', line_len);
	if (nul != NULL)
		line_len = (size_t)(nul - buf);
	*consumed = next;
	ntok = tokenize(line, line_len, t);
	if (!parse_line(cmd, line, line_len, t, ntok))
		return 0;
	ASSERT(sp_mc_kind_is_storage(cmd->kind));
	rc = parse_data(cmd, buf + next, len - next, value_max, &used);
	*consumed = next + used;
	ASSERT(*consumed <= len);
	return rc;
}

bool
sp_mc_next_key(const struct sp_mc_cmd *cmd, uint32_t *pos, const char **key, uint32_t *key_len)
{
	uint32_t i = *pos;
	uint32_t start;

	ASSERT(cmd != NULL);
	ASSERT(i <= cmd->keys_len);
	while (i < cmd->keys_len && cmd->keys[i] == ' ')
		i++;
	if (i == cmd->keys_len) {
		*pos = i;
		return false;
	}
	start = i;
	while (i < cmd->keys_len && cmd->keys[i] != ' ')
		i++;
	*key = cmd->keys + start;
	*key_len = i - start;
	*pos = i;
	return true;
}

/* ---- Writer --------------------------------------------------------------------------------- */

void
sp_mc_out_init(struct sp_mc_out *o, uint8_t *buf, uint16_t *lens, uint32_t cap, uint16_t request_id)
{
	ASSERT(o != NULL);
	VERIFY(cap >= 1);
	o->buf = buf;
	o->lens = lens;
	o->cap = cap;
	o->n = 0;
	o->request_id = request_id;
	o->flush_mark = 0;
	o->absorbing = false;
}

uint8_t *
sp_mc_out_dgram(const struct sp_mc_out *o, uint32_t i)
{
	ASSERT(i < o->cap);
	return o->buf + (size_t)i * SP_MC_DGRAM_BYTES_MAX;
}

uint32_t
sp_mc_out_need(const struct sp_mc_out *o, size_t total)
{
	ASSERT(o != NULL);
	if (total == 0)
		return o->absorbing ? 0u : 1u;
	return (uint32_t)((total + SP_MC_DGRAM_DATA_MAX - 1) / SP_MC_DGRAM_DATA_MAX);
}

int
sp_mc_out_resp(struct sp_mc_out *o, const struct sp_mc_seg *segs, unsigned nseg)
{
	size_t total = 0;
	uint32_t need, d;
	unsigned si = 0;
	size_t soff = 0;

	ASSERT(o != NULL);
	ASSERT(nseg == 0 || segs != NULL);
	for (unsigned i = 0; i < nseg; i++)
		total += segs[i].len;
	need = sp_mc_out_need(o, total);
	if (need == 0)
		return 0; /* an empty response right after a sent one: memcached sends nothing */
	if (need > o->cap - o->n || need > UINT16_MAX)
		return -SP_EFULL;
	for (d = 0; d < need; d++) {
		uint8_t *dg = sp_mc_out_dgram(o, o->n + d);
		struct sp_mc_frame f = {
		        .request_id = o->request_id,
		        .seq = (uint16_t)d,
		        .count = (uint16_t)(total == 0 ? 0 : need),
		        .reserved = 0,
		};
		size_t room = SP_MC_DGRAM_DATA_MAX;
		size_t w = SP_MC_FRAME_BYTES;

		sp_mc_frame_encode(dg, &f);
		while (room > 0 && si < nseg) {
			size_t take = SP_MIN(room, segs[si].len - soff);

			if (take > 0)
				memcpy(dg + w, (const uint8_t *)segs[si].data + soff, take);
			w += take;
			room -= take;
			soff += take;
			if (soff == segs[si].len) {
				si++;
				soff = 0;
			}
		}
		o->lens[o->n + d] = (uint16_t)w;
	}
	ASSERT(si == nseg);
	o->n += need;
	o->absorbing = true;
	return 0;
}

int
sp_mc_out_line(struct sp_mc_out *o, const char *text, size_t len)
{
	struct sp_mc_seg segs[2] = {{text, len}, {"\r\n", 2}};

	ASSERT(text != NULL);
	return sp_mc_out_resp(o, segs, 2);
}

void
sp_mc_out_skip(struct sp_mc_out *o)
{
	/* A skipped response is finished without a send; it neither starts nor ends the
	 * absorbing of empty responses. */
	ASSERT(o != NULL);
	ASSERT(o->n <= o->cap);
}

void
sp_mc_out_flush(struct sp_mc_out *o)
{
	ASSERT(o != NULL);
	ASSERT(o->n <= o->cap);
	o->flush_mark = o->n;
	o->absorbing = false;
}

void
sp_mc_out_cull(struct sp_mc_out *o)
{
	ASSERT(o != NULL);
	ASSERT(o->flush_mark <= o->n);
	o->n = o->flush_mark;
	o->absorbing = false;
}

/* ---- Formatting -------------------------------------------------------------------------------- */

static size_t
put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	ASSERT(n <= 20);
	return n;
}

size_t
sp_mc_format_value_line(char *buf, const char *key, size_t key_len, uint32_t flags, uint32_t bytes,
                        bool with_cas, uint64_t cas)
{
	char *p = buf;

	ASSERT(buf != NULL);
	VERIFY(key_len <= SP_MC_KEY_MAX);
	memcpy(p, "VALUE ", 6);
	p += 6;
	memcpy(p, key, key_len);
	p += key_len;
	*p++ = ' ';
	p += put_u64(p, flags);
	*p++ = ' ';
	p += put_u64(p, bytes);
	if (with_cas) {
		*p++ = ' ';
		p += put_u64(p, cas);
	}
	*p++ = '\r';
	*p++ = '\n';
	ASSERT((size_t)(p - buf) <= SP_MC_LINE_BYTES_MAX);
	return (size_t)(p - buf);
}

size_t
sp_mc_format_number_line(char *buf, uint64_t v)
{
	size_t n;

	ASSERT(buf != NULL);
	n = put_u64(buf, v);
	buf[n] = '\r';
	buf[n + 1] = '\n';
	return n + 2;
}
