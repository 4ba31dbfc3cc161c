/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Randomized tests of the store: a model test against a simple reference map (exact in a
 * store too big to evict, and with evictions learned in a tight store), and a concurrent
 * reader hammering store_get_copy_concurrent() while the owner writes, evicts and
 * overwrites. Seeds are printed; SP_TEST_SEED=<n> replays one.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/errors.h"
#include "store_test_util.h"

#define MODEL_KEYS        64u
#define MODEL_VALUE_MAX   2048u
#define MODEL_OPS         20000u
#define MODEL_SHARED_HASH 4u /* keys 0..3 share one hash: only their bytes differ */

struct model_item {
	bool present;
	uint32_t len;
	uint32_t flags;
	uint32_t expire_s;
	uint64_t cas;
	uint8_t value[MODEL_VALUE_MAX];
};

struct model {
	struct model_item item[MODEL_KEYS];
	char key[MODEL_KEYS][16];
	uint64_t cas_last;
	uint64_t flush_cas;
	uint32_t flush_at_s;
	uint32_t now_s;
	uint64_t rng;
	uint32_t value_len_max; /* of values the test writes */
	uint32_t large_in_4;    /* how many values in 4 are long (up to value_len_max) */
	bool tight;             /* the store may evict: misses are learned, not failures */
	uint64_t learned;       /* items the model dropped because the store evicted them */
};

static struct store_key
model_key(const struct model *m, unsigned i)
{
	struct store_key k = test_key(m->key[i], strlen(m->key[i]));

	if (i < MODEL_SHARED_HASH)
		k.hash = 0x5eed5eed00c0ffeeull;
	return k;
}

static bool
model_live(const struct model *m, unsigned i)
{
	const struct model_item *it = &m->item[i];

	if (!it->present)
		return false;
	if (it->expire_s != 0 && it->expire_s <= m->now_s)
		return false;
	return it->cas > m->flush_cas;
}

static void
model_flush_apply(struct model *m)
{
	if (m->flush_at_s != 0 && m->now_s >= m->flush_at_s) {
		m->flush_cas = m->cas_last;
		m->flush_at_s = 0;
	}
}

static uint32_t
rnd(struct model *m, uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(test_rand(&m->rng) % n);
}

/* Random text, mostly digits so that incr/decr often apply, with blanks and signs. */
static uint32_t
rnd_value(struct model *m, uint8_t *buf, uint32_t len_max)
{
	static const char alphabet[] = "0123456789012345678901234567890123456789 \t+-ab";
	uint32_t len = rnd(m, 4) < m->large_in_4 ? rnd(m, len_max + 1) : rnd(m, 8);

	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)alphabet[rnd(m, sizeof(alphabet) - 1)];
	return len;
}

static uint32_t
rnd_expire(struct model *m)
{
	switch (rnd(m, 6)) {
	case 0:
		return m->now_s - 1; /* in the past: expires at once */
	case 1:
	case 2:
		return m->now_s + 1 + rnd(m, 8);
	default:
		return 0;
	}
}

/* memcached's safe_strtoull on the value, as the reference for incr/decr. */
static bool
ref_parse(const uint8_t *v, uint32_t len, uint64_t *out)
{
	char buf[MODEL_VALUE_MAX + 1];
	char *end;

	if (len == 0)
		return false;
	memcpy(buf, v, len);
	buf[len] = '\0';
	errno = 0;
	unsigned long long ull = strtoull(buf, &end, 10);
	if (errno == ERANGE || end == buf) /* no digits: memcached refuses */
		return false;
	if (isspace((unsigned char)*end) || (*end == '\0' && end != buf)) {
		if ((long long)ull < 0 && memchr(buf, '-', (size_t)(end - buf)) != NULL)
			return false;
		*out = ull;
		return true;
	}
	return false;
}

/* Compares a store read with the model's item i. */
static void
check_value(const struct model *m, unsigned i, const struct store_value *v)
{
	const struct model_item *it = &m->item[i];

	assert_int_equal(v->len, it->len);
	if (it->len > 0)
		assert_memory_equal(v->data, it->value, it->len);
	assert_int_equal(v->flags, it->flags);
	assert_int_equal(v->expire_s, it->expire_s);
	assert_int_equal(v->cas, it->cas);
}

/*
 * Brings the model in line with evictions before an operation on key i: in a tight store a
 * live model item the store no longer has was evicted. Also cross-checks the concurrent
 * read path against the model.
 */
static void
model_sync(struct store *s, struct model *m, unsigned i)
{
	static uint8_t buf[MODEL_VALUE_MAX];
	struct store_key k = model_key(m, i);
	struct store_value v;
	int rc = store_get_copy_concurrent(s, &k, m->now_s, buf, sizeof(buf), &v);

	if (rc == 0) {
		assert_true(model_live(m, i));
		check_value(m, i, &v);
		return;
	}
	assert_int_equal(rc, -SP_ENOTFOUND);
	if (model_live(m, i)) {
		struct store_stats st;
		store_stats_get(s, &st);
		assert_true(m->tight);
		assert_true(st.evictions > 0);
		m->item[i].present = false;
		m->learned++;
	}
}

static void
model_store(struct model *m, unsigned i, const uint8_t *value, uint32_t len, uint32_t flags,
            uint32_t expire_s)
{
	struct model_item *it = &m->item[i];

	it->present = true;
	memcpy(it->value, value, len);
	it->len = len;
	it->flags = flags;
	it->expire_s = expire_s;
	it->cas = ++m->cas_last;
}

static void
op_get(struct store *s, struct model *m, unsigned i, bool gat)
{
	struct store_key k = model_key(m, i);
	struct store_value v;
	uint32_t expire_s = rnd_expire(m);
	int rc = gat ? store_gat(s, &k, expire_s, m->now_s, &v) : store_get(s, &k, m->now_s, &v);

	if (!model_live(m, i)) {
		assert_int_equal(rc, -SP_ENOTFOUND);
		return;
	}
	assert_int_equal(rc, 0);
	if (gat)
		m->item[i].expire_s = expire_s;
	check_value(m, i, &v);
}

static void
op_store(struct store *s, struct model *m, unsigned i, enum store_mode mode)
{
	uint8_t value[MODEL_VALUE_MAX];
	struct model_item *it = &m->item[i];
	bool live = model_live(m, i);
	struct store_key k = model_key(m, i);
	struct store_write w = {.value = value,
	                        .value_len = rnd_value(m, value, m->value_len_max),
	                        .flags = (uint32_t)test_rand(&m->rng),
	                        .expire_s = rnd_expire(m)};
	uint64_t cas = 0;
	int expect = 0;

	if (mode == STORE_CAS || rnd(m, 10) == 0) {
		/* The right version, a wrong one, or none. */
		uint32_t pick = rnd(m, 3);
		w.cas = pick == 0 && live ? it->cas : pick == 1 ? m->cas_last + 1 + rnd(m, 3) : 0;
		if (mode == STORE_CAS && w.cas == 0)
			w.cas = live ? it->cas : 1;
	}
	bool concat = mode == STORE_APPEND || mode == STORE_PREPEND;
	if (concat && live && it->len + w.value_len > MODEL_VALUE_MAX)
		w.value_len = MODEL_VALUE_MAX - it->len;

	if (mode == STORE_ADD && live)
		expect = -SP_EEXISTS;
	else if (mode != STORE_SET && mode != STORE_ADD && !live)
		expect = -SP_ENOTFOUND;
	else if (w.cas != 0 && !live)
		expect = -SP_ENOTFOUND;
	else if (w.cas != 0 && w.cas != it->cas)
		expect = -SP_EVERSION;

	int rc = store_set(s, mode, &k, &w, m->now_s, &cas);
	assert_int_equal(rc, expect);
	if (rc != 0)
		return;
	if (concat) {
		uint8_t joined[MODEL_VALUE_MAX];
		uint32_t len = it->len + w.value_len;
		if (mode == STORE_APPEND) {
			memcpy(joined, it->value, it->len);
			memcpy(joined + it->len, value, w.value_len);
		} else {
			memcpy(joined, value, w.value_len);
			memcpy(joined + w.value_len, it->value, it->len);
		}
		model_store(m, i, joined, len, it->flags, it->expire_s);
	} else {
		model_store(m, i, value, w.value_len, w.flags, w.expire_s);
	}
	assert_int_equal(cas, it->cas);
}

static void
op_arith(struct store *s, struct model *m, unsigned i)
{
	struct model_item *it = &m->item[i];
	struct store_key k = model_key(m, i);
	bool live = model_live(m, i);
	struct store_arith a = {.op = rnd(m, 2) ? STORE_INCR : STORE_DECR,
	                        .delta = rnd(m, 4) == 0 ? test_rand(&m->rng) : rnd(m, 1000),
	                        .create = rnd(m, 3) == 0,
	                        .initial = rnd(m, 2) ? test_rand(&m->rng) : rnd(m, 100),
	                        .expire_s = rnd_expire(m)};
	uint64_t value = 0, cas = 0, old;

	if (rnd(m, 8) == 0)
		a.cas = live && rnd(m, 2) ? it->cas : m->cas_last + 1;
	int rc = store_arith(s, &k, &a, m->now_s, &value, &cas);
	if (!live) {
		if (!a.create) {
			assert_int_equal(rc, -SP_ENOTFOUND);
			return;
		}
		assert_int_equal(rc, 0);
		char text[32];
		int n = snprintf(text, sizeof(text), "%" PRIu64, a.initial);
		model_store(m, i, (const uint8_t *)text, (uint32_t)n, 0, a.expire_s);
		assert_int_equal(value, a.initial);
		assert_int_equal(cas, it->cas);
		return;
	}
	if (a.cas != 0 && a.cas != it->cas) {
		assert_int_equal(rc, -SP_EVERSION);
		return;
	}
	if (!ref_parse(it->value, it->len, &old)) {
		assert_int_equal(rc, -SP_ENOTNUM);
		return;
	}
	assert_int_equal(rc, 0);
	uint64_t want = a.op == STORE_INCR ? old + a.delta : (a.delta > old ? 0 : old - a.delta);
	assert_int_equal(value, want);
	char text[MODEL_VALUE_MAX + 1];
	uint32_t n = (uint32_t)snprintf(text, sizeof(text), "%" PRIu64, want);
	if (n <= it->len) {
		memset(text + n, ' ', it->len - n);
		n = it->len;
	}
	model_store(m, i, (const uint8_t *)text, n, it->flags, it->expire_s);
	assert_int_equal(cas, it->cas);
}

static void
op_delete(struct store *s, struct model *m, unsigned i)
{
	struct store_key k = model_key(m, i);
	bool live = model_live(m, i);
	uint64_t cas = rnd(m, 4) == 0 ? (live && rnd(m, 2) ? m->item[i].cas : 12345) : 0;
	int rc = store_delete(s, &k, cas, m->now_s);

	if (!live) {
		assert_int_equal(rc, -SP_ENOTFOUND);
	} else if (cas != 0 && cas != m->item[i].cas) {
		assert_int_equal(rc, -SP_EVERSION);
	} else {
		assert_int_equal(rc, 0);
		m->item[i].present = false;
	}
}

static void
op_touch(struct store *s, struct model *m, unsigned i)
{
	struct store_key k = model_key(m, i);
	uint32_t expire_s = rnd_expire(m);
	int rc = store_touch(s, &k, expire_s, m->now_s);

	if (!model_live(m, i)) {
		assert_int_equal(rc, -SP_ENOTFOUND);
		return;
	}
	assert_int_equal(rc, 0);
	m->item[i].expire_s = expire_s;
}

static void
op_flush(struct store *s, struct model *m)
{
	uint32_t at_s = rnd(m, 2) ? 0 : m->now_s + rnd(m, 6);

	store_flush_all(s, at_s, m->now_s);
	if (at_s == 0 || at_s <= m->now_s) {
		m->flush_cas = m->cas_last;
		m->flush_at_s = 0;
	} else {
		m->flush_at_s = at_s;
	}
}

static void
run_model(struct store *s, struct model *m, uint32_t check_every)
{
	for (unsigned i = 0; i < MODEL_KEYS; i++)
		snprintf(m->key[i], sizeof(m->key[i]), "model:%u", i);
	m->now_s = 1000;
	for (uint32_t n = 0; n < MODEL_OPS; n++) {
		if (rnd(m, 8) == 0)
			m->now_s += rnd(m, 3);
		model_flush_apply(m);
		unsigned i = rnd(m, MODEL_KEYS);
		model_sync(s, m, i);
		uint32_t op = rnd(m, 100);
		if (op < 25)
			op_get(s, m, i, false);
		else if (op < 30)
			op_get(s, m, i, true);
		else if (op < 45)
			op_store(s, m, i, STORE_SET);
		else if (op < 50)
			op_store(s, m, i, STORE_ADD);
		else if (op < 55)
			op_store(s, m, i, STORE_REPLACE);
		else if (op < 60)
			op_store(s, m, i, STORE_CAS);
		else if (op < 65)
			op_store(s, m, i, STORE_APPEND);
		else if (op < 70)
			op_store(s, m, i, STORE_PREPEND);
		else if (op < 85)
			op_arith(s, m, i);
		else if (op < 92)
			op_delete(s, m, i);
		else if (op < 99)
			op_touch(s, m, i);
		else if (rnd(m, 5) == 0)
			op_flush(s, m);
		if (n % check_every == 0)
			assert_int_equal(store_check(s), 0);
	}
	assert_int_equal(store_check(s), 0);
	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.cas_last, m->cas_last);
}

/* A store far bigger than the data: no eviction, so the store must equal the model. */
static void
test_model_exact(void **state)
{
	(void)state;
	struct model *m = calloc(1, sizeof(*m));
	struct store *s = test_store_new(16u * 1024u * 1024u, 0);

	assert_non_null(m);
	assert_non_null(s);
	m->rng = test_seed("test_model_exact");
	m->value_len_max = 64;
	m->large_in_4 = 1;
	run_model(s, m, 97);
	struct store_stats st;
	store_stats_get(s, &st);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(m->learned, 0);
	free(s);
	free(m);
}

/*
 * A store a fraction of the data's size: it evicts all the time. Hits must still match the
 * model exactly; misses of items the model holds are allowed only as counted evictions.
 */
static void
test_model_tight(void **state)
{
	(void)state;
	struct model *m = calloc(1, sizeof(*m));
	struct store *s = test_store_new(STORE_BYTES_MIN, 0);

	assert_non_null(m);
	assert_non_null(s);
	m->rng = test_seed("test_model_tight");
	m->value_len_max = 1500;
	m->large_in_4 = 3;
	m->tight = true;
	run_model(s, m, 1);
	struct store_stats st;
	store_stats_get(s, &st);
	printf("tight model: %" PRIu64 " evictions, %" PRIu64 " learned by the model, %" PRIu64
	       " reinserts\n",
	       st.evictions, m->learned, st.reinserts);
	assert_true(st.evictions > 0);
	free(s);
	free(m);
}

/* ---- concurrent reader ---- */

#define CONC_KEYS          64u
#define CONC_COUNTERS      8u /* keys whose value is one digit repeated, changed in place */
#define CONC_DIGITS        19u
#define CONC_VALUE_MAX     900u
#define CONC_WRITER_OPS    2000000u
#define CONC_READER_OPS    4000000u
#define CONC_TIME_LIMIT_NS (2u * SP_NS_PER_S)

struct conc {
	struct store *s;
	uint64_t seed;
	char key[CONC_KEYS][16];
	char counter[CONC_COUNTERS][16];
	_Atomic bool writer_done;
	uint64_t writer_ops;
	uint64_t writer_errors; /* cmocka asserts only on the test's own thread */
	uint64_t reads_ok;
	uint64_t reads_missing;
	uint64_t reads_busy;
	uint64_t reads_bad;
};

/* Byte i of the value of version ver of key id. */
static uint8_t
conc_byte(uint32_t id, uint64_t ver, uint32_t i)
{
	return (uint8_t)((id * 131u) ^ (uint32_t)(ver * 0x9e3779b1u) ^ (i * 7u));
}

/* A self-describing value: id, version, length, then bytes derived from all three. */
static uint32_t
conc_value(uint8_t *buf, uint32_t id, uint64_t ver, uint32_t len)
{
	memcpy(buf, &id, 4);
	memcpy(buf + 4, &ver, 8);
	memcpy(buf + 12, &len, 4);
	for (uint32_t i = 16; i < len; i++)
		buf[i] = conc_byte(id, ver, i);
	return len;
}

/* 111...1 (CONC_DIGITS ones): adding it to d...d gives (d+1)...(d+1). */
static uint64_t
conc_ones(void)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < CONC_DIGITS; i++)
		v = v * 10 + 1;
	return v;
}

/* True when a counter reads as one digit repeated CONC_DIGITS times: never half-written. */
static bool
conc_counter_ok(const struct store_value *v)
{
	const uint8_t *p = v->data;

	if (v->len != CONC_DIGITS || p[0] < '1' || p[0] > '9')
		return false;
	for (uint32_t i = 1; i < CONC_DIGITS; i++) {
		if (p[i] != p[0])
			return false;
	}
	return true;
}

/* Steps counter id: its digit goes up by one, from 9 back down to 1, always in place. */
static int
conc_counter_step(struct conc *c, unsigned id)
{
	struct store_key k = test_key(c->counter[id], strlen(c->counter[id]));
	struct store_value v;

	if (store_get(c->s, &k, 1, &v) != 0) {
		char text[CONC_DIGITS];
		memset(text, '1', sizeof(text));
		struct store_write w = {.value = text, .value_len = sizeof(text)};
		return store_set(c->s, STORE_SET, &k, &w, 1, NULL);
	}
	uint64_t out;
	if (((const uint8_t *)v.data)[0] == '9')
		return store_decr(c->s, &k, 8 * conc_ones(), 1, &out);
	return store_incr(c->s, &k, conc_ones(), 1, &out);
}

/* True when v is exactly some version of key id, untorn. */
static bool
conc_value_ok(const struct store_value *v, uint32_t id)
{
	const uint8_t *p = v->data;
	uint32_t got_id, len;
	uint64_t ver;

	if (v->len < 16 || v->len > CONC_VALUE_MAX)
		return false;
	memcpy(&got_id, p, 4);
	memcpy(&ver, p + 4, 8);
	memcpy(&len, p + 12, 4);
	if (got_id != id || len != v->len || v->flags != (uint32_t)ver)
		return false;
	for (uint32_t i = 16; i < len; i++) {
		if (p[i] != conc_byte(id, ver, i))
			return false;
	}
	return true;
}

static void *
conc_writer(void *arg)
{
	struct conc *c = arg;
	uint64_t rng = c->seed;
	uint64_t start = sp_mono_ns();
	uint8_t buf[CONC_VALUE_MAX];

	for (uint64_t n = 0; n < CONC_WRITER_OPS; n++) {
		if ((n & 1023u) == 0 && sp_mono_ns() - start > CONC_TIME_LIMIT_NS)
			break;
		uint64_t r = test_rand(&rng);
		uint32_t id = (uint32_t)(r % CONC_KEYS);
		struct store_key k = test_key(c->key[id], strlen(c->key[id]));
		struct store_value v;
		switch ((r >> 8) % 16) {
		case 0:
			(void)store_delete(c->s, &k, 0, 1);
			break;
		case 1:
			(void)store_touch(c->s, &k, (uint32_t)(r >> 32) % 2 ? 0 : 1000, 1);
			break;
		case 2:
		case 3:
		case 6:
		case 7:
			if (conc_counter_step(c, id % CONC_COUNTERS) != 0)
				c->writer_errors++;
			break;
		case 4:
		case 5:
			/* gets move cold items to the head: another writer of log bytes. */
			(void)store_get(c->s, &k, 1, &v);
			break;
		default: {
			uint32_t len = 16 + (uint32_t)((r >> 16) % (CONC_VALUE_MAX - 16 + 1));
			struct store_write w = {.value = buf,
			                        .value_len = conc_value(buf, id, n, len),
			                        .flags = (uint32_t)n};
			if (store_set(c->s, STORE_SET, &k, &w, 1, NULL) != 0)
				c->writer_errors++;
			break;
		}
		}
		c->writer_ops++;
	}
	atomic_store(&c->writer_done, true);
	return NULL;
}

static void *
conc_reader(void *arg)
{
	struct conc *c = arg;
	uint64_t rng = c->seed ^ 0xabcdefull;
	uint8_t buf[CONC_VALUE_MAX];

	for (uint64_t n = 0; n < CONC_READER_OPS && !atomic_load(&c->writer_done); n++) {
		uint64_t r = test_rand(&rng);
		uint32_t id = (uint32_t)(r % CONC_KEYS);
		bool counter = (r >> 32) % 2 == 0;
		const char *key = counter ? c->counter[id % CONC_COUNTERS] : c->key[id];
		struct store_key k = test_key(key, strlen(key));
		struct store_value v;
		int rc = store_get_copy_concurrent(c->s, &k, 1, buf, sizeof(buf), &v);
		if (rc == 0 && (counter ? conc_counter_ok(&v) : conc_value_ok(&v, id)))
			c->reads_ok++;
		else if (rc == -SP_ENOTFOUND)
			c->reads_missing++;
		else if (rc == -SP_EBUSY)
			c->reads_busy++;
		else
			c->reads_bad++;
	}
	return NULL;
}

/*
 * The owner sets, deletes, touches and reads (moving items) in a store much smaller than
 * the data, so log space is reclaimed and overwritten constantly, while another thread
 * reads. Every value the reader gets must be one the owner wrote, whole; counters changed
 * in place (incr/decr) must never read half-updated.
 */
static void
test_concurrent_reader(void **state)
{
	(void)state;
	struct conc *c = calloc(1, sizeof(*c));
	pthread_t w, r;

	assert_non_null(c);
	c->s = test_store_new(STORE_BYTES_MIN, 0);
	assert_non_null(c->s);
	c->seed = test_seed("test_concurrent_reader");
	for (unsigned i = 0; i < CONC_KEYS; i++)
		snprintf(c->key[i], sizeof(c->key[i]), "conc:%u", i);
	for (unsigned i = 0; i < CONC_COUNTERS; i++)
		snprintf(c->counter[i], sizeof(c->counter[i]), "ctr:%u", i);
	assert_int_equal(pthread_create(&r, NULL, conc_reader, c), 0);
	assert_int_equal(pthread_create(&w, NULL, conc_writer, c), 0);
	assert_int_equal(pthread_join(w, NULL), 0);
	assert_int_equal(pthread_join(r, NULL), 0);

	struct store_stats st;
	store_stats_get(c->s, &st);
	printf("concurrent: writer %" PRIu64 " ops (%" PRIu64 " evictions), reader ok %" PRIu64
	       " missing %" PRIu64 " busy %" PRIu64 " bad %" PRIu64 "\n",
	       c->writer_ops, st.evictions, c->reads_ok, c->reads_missing, c->reads_busy,
	       c->reads_bad);
	assert_int_equal(c->reads_bad, 0);
	assert_int_equal(c->writer_errors, 0);
	assert_true(c->reads_ok > 0);
	assert_true(st.evictions > 0);
	assert_int_equal(store_check(c->s), 0);
	free(c->s);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_model_exact),
	        cmocka_unit_test(test_model_tight),
	        cmocka_unit_test(test_concurrent_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
