/* SPDX-License-Identifier: BSD-3-Clause */
/* Forward messages and the in-flight table (see fwd.h). */
#include "dataplane/forward/fwd.h"

#include <string.h>

#include "common/errors.h"
#include "common/verify.h"

/* Header field offsets; all integers little-endian. */
enum {
	FH_MAGIC = 0,
	FH_VERSION = 2,
	FH_KIND = 3,
	FH_PROTO = 4,
	FH_STATUS = 5,
	FH_ENTRY_WORKER = 6,
	FH_SLOT = 8,
	FH_TAG = 12,
	FH_EPOCH = 16,
	FH_ENTRY_NODE = 24,
	FH_INDEX = 28,
	FH_TOTAL = 29,
	FH_PAYLOAD_LEN = 30,
	FH_END = 32,
};

SP_STATIC_ASSERT(FH_END == SP_FWD_HDR_SIZE, "forward header layout");
SP_STATIC_ASSERT(SP_FWD_REQS_MAX <= 32, "bp_pending is a 32-bit mask");
SP_STATIC_ASSERT((SP_FWD_SLOTS & (SP_FWD_SLOTS - 1)) == 0, "slots index by a mask");

static uint16_t
ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
ld64(const uint8_t *p)
{
	return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void
st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
st32(uint8_t *p, uint32_t v)
{
	st16(p, (uint16_t)v);
	st16(p + 2, (uint16_t)(v >> 16));
}

static void
st64(uint8_t *p, uint64_t v)
{
	st32(p, (uint32_t)v);
	st32(p + 4, (uint32_t)(v >> 32));
}

bool
sp_fwd_is(const uint8_t *buf, size_t len)
{
	return len >= SP_FWD_HDR_SIZE && ld16(buf + FH_MAGIC) == SP_FWD_MAGIC &&
	       buf[FH_VERSION] == SP_FWD_VERSION;
}

/* Decodes the message at buf, avail bytes on: its payload must fill them when exact. */
static int
decode_at(const uint8_t *buf, size_t avail, bool exact, struct sp_fwd_hdr *h)
{
	ASSERT(h != NULL);
	if (buf == NULL || !sp_fwd_is(buf, avail))
		return -SP_EMALFORMED;
	h->kind = buf[FH_KIND];
	h->proto = buf[FH_PROTO];
	h->status = buf[FH_STATUS];
	h->entry_worker = ld16(buf + FH_ENTRY_WORKER);
	h->slot = ld32(buf + FH_SLOT);
	h->tag = ld32(buf + FH_TAG);
	h->epoch = ld64(buf + FH_EPOCH);
	h->entry_node = ld32(buf + FH_ENTRY_NODE);
	h->payload_len = ld16(buf + FH_PAYLOAD_LEN);
	if (h->kind < SP_FWD_REQUEST || h->kind > SP_FWD_REFUSED)
		return -SP_EMALFORMED;
	if (h->proto != SP_FWD_BINARY && h->proto != SP_FWD_MEMCACHED)
		return -SP_EMALFORMED;
	if (h->slot >= SP_FWD_SLOTS || h->tag == 0 || h->entry_node == 0)
		return -SP_EMALFORMED;
	h->index = buf[FH_INDEX];
	h->total = buf[FH_TOTAL];
	if (h->kind == SP_FWD_REPLY && (h->total == 0 || h->index >= h->total))
		return -SP_EMALFORMED;
	if (h->kind != SP_FWD_REPLY && (h->total != 0 || h->index != 0))
		return -SP_EMALFORMED;
	if (h->payload_len > SP_FWD_PAYLOAD_MAX || h->payload_len > avail - SP_FWD_HDR_SIZE)
		return -SP_EMALFORMED;
	if (exact && h->payload_len != avail - SP_FWD_HDR_SIZE)
		return -SP_EMALFORMED;
	if (h->kind == SP_FWD_REFUSED && (h->status == SP_BP_ST_OK || h->status >= SP_BP_ST_LAST))
		return -SP_EMALFORMED;
	if (h->kind != SP_FWD_REFUSED && h->status != 0)
		return -SP_EMALFORMED;
	return 0;
}

int
sp_fwd_decode(const uint8_t *buf, size_t len, struct sp_fwd_hdr *h)
{
	return decode_at(buf, len, true, h);
}

int
sp_fwd_next(const uint8_t *buf, size_t len, size_t *off, uint32_t *count, struct sp_fwd_hdr *h)
{
	ASSERT(off != NULL);
	ASSERT(count != NULL);
	if (*off > len)
		return -SP_EMALFORMED;
	if (*off == len)
		return *count > 0 ? 0 : -SP_EMALFORMED;
	if (*count == SP_FWD_BATCH_MAX || buf == NULL)
		return -SP_EMALFORMED;
	if (decode_at(buf + *off, len - *off, false, h) != 0)
		return -SP_EMALFORMED;
	*off += SP_FWD_HDR_SIZE + (size_t)h->payload_len;
	(*count)++;
	ASSERT(*off <= len);
	return 1;
}

void
sp_fwd_encode(uint8_t *buf, const struct sp_fwd_hdr *h)
{
	ASSERT(buf != NULL);
	VERIFY(h->slot < SP_FWD_SLOTS);
	VERIFY(h->tag != 0);
	VERIFY(h->payload_len <= SP_FWD_PAYLOAD_MAX);
	st16(buf + FH_MAGIC, SP_FWD_MAGIC);
	buf[FH_VERSION] = SP_FWD_VERSION;
	buf[FH_KIND] = h->kind;
	buf[FH_PROTO] = h->proto;
	buf[FH_STATUS] = h->status;
	st16(buf + FH_ENTRY_WORKER, h->entry_worker);
	st32(buf + FH_SLOT, h->slot);
	st32(buf + FH_TAG, h->tag);
	st64(buf + FH_EPOCH, h->epoch);
	st32(buf + FH_ENTRY_NODE, h->entry_node);
	VERIFY(h->kind != SP_FWD_REPLY || h->index < h->total);
	buf[FH_INDEX] = h->kind == SP_FWD_REPLY ? h->index : 0;
	buf[FH_TOTAL] = h->kind == SP_FWD_REPLY ? h->total : 0;
	st16(buf + FH_PAYLOAD_LEN, h->payload_len);
}

void
sp_fwd_table_init(struct sp_fwd_table *t)
{
	ASSERT(t != NULL);
	memset(t, 0, sizeof(*t));
	t->next_tag = 1;
}

/* Moves the head over released slots. */
static void
advance(struct sp_fwd_table *t)
{
	while (t->head != t->tail && !t->slots[t->head & (SP_FWD_SLOTS - 1)].live)
		t->head++;
}

struct sp_fwd_slot *
sp_fwd_take(struct sp_fwd_table *t, uint64_t deadline, uint32_t *index)
{
	struct sp_fwd_slot *s;
	uint32_t i;

	ASSERT(t->tail - t->head <= SP_FWD_SLOTS);
	advance(t);
	if (t->tail - t->head == SP_FWD_SLOTS) {
		t->full++;
		return NULL;
	}
	i = t->tail & (SP_FWD_SLOTS - 1);
	s = &t->slots[i];
	ASSERT(!s->live);
	memset(s, 0, sizeof(*s));
	s->live = 1;
	s->tag = t->next_tag++;
	if (t->next_tag == 0)
		t->next_tag = 1; /* tags are never 0 */
	s->deadline = deadline;
	t->tail++;
	t->live++;
	*index = i;
	return s;
}

struct sp_fwd_slot *
sp_fwd_find(struct sp_fwd_table *t, uint32_t index, uint32_t tag)
{
	struct sp_fwd_slot *s;

	if (index >= SP_FWD_SLOTS || tag == 0)
		return NULL;
	s = &t->slots[index];
	return s->live && s->tag == tag ? s : NULL;
}

void
sp_fwd_release(struct sp_fwd_table *t, struct sp_fwd_slot *s)
{
	ASSERT(s >= t->slots && s < t->slots + SP_FWD_SLOTS);
	ASSERT(s->live);
	ASSERT(t->live > 0);
	s->live = 0;
	s->tag = 0;
	t->live--;
	advance(t);
}

struct sp_fwd_slot *
sp_fwd_expired(struct sp_fwd_table *t, uint64_t now)
{
	struct sp_fwd_slot *s;

	advance(t);
	if (t->head == t->tail)
		return NULL;
	s = &t->slots[t->head & (SP_FWD_SLOTS - 1)];
	ASSERT(s->live);
	return s->deadline <= now ? s : NULL;
}

struct sp_fwd_slot *
sp_fwd_oldest(struct sp_fwd_table *t)
{
	advance(t);
	return t->head == t->tail ? NULL : &t->slots[t->head & (SP_FWD_SLOTS - 1)];
}

bool
sp_fwd_table_valid(const struct sp_fwd_table *t)
{
	uint32_t live = 0;

	if (t->tail - t->head > SP_FWD_SLOTS || t->next_tag == 0)
		return false;
	for (uint32_t i = 0; i < SP_FWD_SLOTS; i++) {
		const struct sp_fwd_slot *s = &t->slots[i];
		uint32_t from_head = (i - t->head) & (SP_FWD_SLOTS - 1);

		if (s->live != 0 && s->tag == 0)
			return false;
		if (s->live) {
			live++;
			/* A live slot lies between head and tail. */
			if (t->head == t->tail || from_head >= t->tail - t->head)
				return false;
		}
	}
	return live == t->live;
}
