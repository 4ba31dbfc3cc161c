/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memcached protocol's half of forwarding between nodes (mcport.h, service.h's fwd_*
 * callbacks, docs/cluster.md): a single-key datagram another node owns goes there as it
 * is; the owner runs it and sends each reply datagram back, numbered, or refuses it with
 * the request in it; the entry relays the replies, or places a refused request once more
 * on its own map. A multi-key get whose keys live on several nodes is scattered and
 * gathered back in key order.
 */
#include "mcport.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <rte_mbuf.h>

#include "common/keyhash.h"
#include "common/verify.h"
#include "forward.h"
#include "net/net.h"
#include "wire/memcache.h"
#include "worker.h"

#define UNAVAILABLE_LINE "SERVER_ERROR owner unavailable"
#define WRONG_NODE_LINE  "SERVER_ERROR key is owned by another node"
#define NOT_SERVING_LINE "SERVER_ERROR not serving"
#define NOT_READY_LINE   "SERVER_ERROR not ready"
#define BUSY_LINE        "SERVER_ERROR busy, try again"
#define OOM_GET_LINE     "SERVER_ERROR out of memory writing get response"

static void gather_answer(struct dp_worker *w, const struct sp_fwd_hdr *h, struct sp_fwd_slot *s,
                          const uint8_t *payload);

SP_STATIC_ASSERT(SP_FWD_HDR_SIZE + SP_MC_DGRAM_BYTES_MAX <= SP_BP_PAYLOAD_MAX,
                 "a memcached reply datagram fits one forward message");
SP_STATIC_ASSERT(DP_MC_REPLY_DGRAMS_MAX <= 255, "a reply's datagrams are counted in a u8");
SP_STATIC_ASSERT(DP_FWD_PART_DGRAMS <= 255, "a part's datagrams are indexed by a u8");

enum dp_fwd_rc
dp_fwd_mc_request(struct dp_worker *w, const struct route_table *t, struct rte_mbuf *m,
                  uint16_t node, uint32_t partition)
{
	struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const struct route_node *n;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	struct sp_mc_frame f;
	uint16_t worker;
	uint32_t idx;
	uint16_t len = meta->pkt.payload_len;

	ASSERT(node < t->node_count);
	ASSERT(partition < t->partitions);
	n = &t->nodes[node];
	worker = route_owner_workers(t)[partition];
	if (node == t->self_index || !dp_fwd_peer_usable(n, worker)) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return DP_FWD_NO_PEER;
	}
	if (len > SP_FWD_PAYLOAD_MAX ||
	    sp_mc_frame_decode(frame + meta->pkt.payload_off, len, &f) != 0) {
		DP_STAT_INC(w->stats, fwd_too_big);
		return DP_FWD_TOO_BIG;
	}
	s = dp_fwd_slot_take(w, &idx);
	if (s == NULL)
		return DP_FWD_FULL;
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = w->index,
	                        .payload_len = len,
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	/* The client's payload is copied into this peer's batch; the client's mbuf goes. */
	if (!dp_fwd_batch_put(w, n->mac, n->ipv4_be, (uint16_t)(n->binary_port + worker),
	                      (uint16_t)(w->rt->cfg.port_base + w->index), &h,
	                      frame + meta->pkt.payload_off)) {
		dp_fwd_slot_release(w, s);
		return DP_FWD_FULL;
	}
	s->proto = SP_FWD_MEMCACHED;
	s->owner_node = node;
	s->owner_ip_be = n->ipv4_be;
	dp_fwd_slot_client(s, meta, frame);
	s->mc_request_id = f.request_id;
	DP_STAT_INC(w->stats, fwd_out);
	rte_pktmbuf_free(m);
	return DP_FWD_SENT;
}

/* A memcached reply of one line for the client of slot s, in mbuf m (rewritable). */
static void
answer_mc_line(struct dp_worker *w, const struct sp_fwd_slot *s, struct rte_mbuf *m,
               const char *line)
{
	uint8_t *payload = rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS;
	size_t n = strlen(line);

	ASSERT(SP_MC_FRAME_BYTES + n + 2 <= SP_MC_DGRAM_BYTES_MAX);
	sp_mc_frame_encode(payload, &(struct sp_mc_frame){
	                                    .request_id = s->mc_request_id, .seq = 0, .count = 1});
	memcpy(payload + SP_MC_FRAME_BYTES, line, n);
	memcpy(payload + SP_MC_FRAME_BYTES + n, "\r\n", 2);
	dp_fwd_frame_to(w, m, s->client_mac, s->client_ip_be, s->client_port, s->local_port,
	                (uint16_t)(SP_MC_FRAME_BYTES + n + 2));
	dp_worker_tx(w, m);
}

static const char *
refusal_line(uint8_t status)
{
	switch (status) {
	case SP_BP_ST_NOT_SERVING:
		return NOT_SERVING_LINE;
	case SP_BP_ST_NOT_READY:
		return NOT_READY_LINE;
	case SP_BP_ST_UNAVAILABLE:
		return UNAVAILABLE_LINE;
	default:
		return WRONG_NODE_LINE;
	}
}

void
dp_mc_fwd_request(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                  struct dp_fwd_in *in, struct sp_fwd_hdr *h, const uint8_t *payload)
{
	uint32_t partition = 0;
	uint16_t to = 0;
	uint32_t n;

	ASSERT(h->proto == SP_FWD_MEMCACHED);
	ASSERT(w->rt->mc != NULL);
	if (h->payload_len <= SP_MC_FRAME_BYTES) {
		DP_STAT_INC(w->stats, fwd_rej_kind);
		return;
	}
	if (mcexec_route(payload + SP_MC_FRAME_BYTES, h->payload_len - SP_MC_FRAME_BYTES,
	                 t->partitions, &partition) == MCEXEC_ROUTE_OWNER) {
		enum route_action a = route_decide(t, partition, w->index, &to);

		if (a == ROUTE_REMOTE || a == ROUTE_UNSERVED) {
			/* The request goes back with the refusal, so the entry node can try
			 * once more on a newer map without having kept a copy. */
			h->kind = SP_FWD_REFUSED;
			h->status =
			        a == ROUTE_REMOTE ? SP_BP_ST_WRONG_PARTITION : t->unserved_status;
			h->epoch = t->epoch;
			DP_STAT_INC(w->stats, fwd_refused);
			(void)dp_fwd_put_back(w, in, h, payload);
			return;
		}
	}
	DP_STAT_INC(w->stats, fwd_in);
	n = dp_mc_run_forwarded(w, t, now_s, payload, h->payload_len);
	h->kind = SP_FWD_REPLY;
	h->epoch = t->epoch;
	h->total = (uint8_t)n;
	/* In order, each naming its place so the entry can put them back in order; noreply
	 * sends nothing back and the entry times out quietly. */
	for (uint32_t i = 0; i < n; i++) {
		uint16_t len = 0;
		const uint8_t *dgram = dp_mc_out_dgram(w, i, &len);

		ASSERT(len <= SP_MC_DGRAM_BYTES_MAX);
		h->payload_len = len;
		h->index = (uint8_t)i;
		if (!dp_fwd_put_back(w, in, h, dgram))
			break;
	}
}

void
dp_mc_fwd_answer(struct dp_worker *w, const struct route_table *t, struct dp_fwd_in *in,
                 const struct sp_fwd_hdr *h, struct sp_fwd_slot *s, const uint8_t *payload)
{
	struct sp_mc_frame f;
	struct rte_mbuf *m;

	(void)t;
	ASSERT(s->proto == SP_FWD_MEMCACHED);
	if (s->gather != 0) {
		gather_answer(w, h, s, payload);
		return;
	}
	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_INC(w->stats, fwd_refused);
		if (h->payload_len <= SP_MC_FRAME_BYTES ||
		    !dp_fwd_retry_refused(w, in, h, s, payload, DP_MSG_MEMCACHED)) {
			m = dp_fwd_out_mbuf(w, in);
			if (m != NULL)
				answer_mc_line(w, s, m, refusal_line(h->status));
		}
		dp_fwd_slot_release(w, s);
		return;
	}
	if (sp_mc_frame_decode(payload, h->payload_len, &f) != 0 ||
	    f.request_id != s->mc_request_id || (s->mc_expect != 0 && s->mc_expect != h->total)) {
		DP_STAT_INC(w->stats, fwd_rej_malformed);
		return;
	}
	s->mc_expect = h->total;
	/* The owner's reply datagram, as it is, from this node's address and port. */
	dp_fwd_relay(w, in, s, payload, h->payload_len);
	if (++s->mc_got >= s->mc_expect)
		dp_fwd_slot_release(w, s);
}

/* ---- Multi-key gets across nodes: scatter, gather in key order ------------------------ */

static const char *
get_verb(uint8_t kind)
{
	switch (kind) {
	case SP_MC_GETS:
		return "gets";
	case SP_MC_GAT:
		return "gat";
	case SP_MC_GATS:
		return "gats";
	default:
		return "get";
	}
}

/* Marks part pi of g done (releasing its forward slot) and records why it failed. */
static void
part_done(struct dp_worker *w, struct dp_fwd_gather *g, uint8_t pi, const char *fail_line)
{
	struct dp_fwd_part *p = &g->parts[pi];

	ASSERT(pi < g->nparts);
	if (p->done)
		return;
	if (p->slot_live) {
		struct sp_fwd_slot *s = sp_fwd_find(&w->fwd, p->slot, p->tag);

		if (s != NULL)
			dp_fwd_slot_release(w, s);
		p->slot_live = 0;
	}
	if (fail_line != NULL && g->fail_line == NULL)
		g->fail_line = fail_line;
	p->done = 1;
	g->parts_done++;
	ASSERT(g->parts_done <= g->nparts);
}

/*
 * Stores reply datagram `index` of `total` of part p (its memcached frame header dropped:
 * the part's text is its datagrams' data in index order). false when it is malformed, a
 * duplicate or over the bounds.
 */
static bool
gather_chunk(struct dp_fwd_gather *g, struct dp_fwd_part *p, const uint8_t *dgram, uint16_t len,
             uint8_t index, uint8_t total)
{
	struct sp_mc_frame f;
	uint32_t dlen;

	if (sp_mc_frame_decode(dgram, len, &f) != 0 || f.request_id != g->request_id ||
	    total == 0 || total > DP_FWD_PART_DGRAMS || index >= total)
		return false;
	if (p->expect == 0)
		p->expect = total;
	if (p->expect != total || p->chunk_off[index] != UINT32_MAX)
		return false;
	dlen = (uint32_t)len - SP_MC_FRAME_BYTES;
	if (g->raw_used + dlen > DP_FWD_GATHER_BYTES)
		return false;
	memcpy(g->raw + g->raw_used, dgram + SP_MC_FRAME_BYTES, dlen);
	p->chunk_off[index] = g->raw_used;
	p->chunk_len[index] = (uint16_t)dlen;
	g->raw_used += dlen;
	p->got++;
	return true;
}

/* Reads the decimal at s[0, n); false when it is not one. */
static bool
read_dec(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/*
 * Part pi has all its datagrams: lays its text out in order (in place when it is one
 * datagram) and matches each VALUE block to the part's next key of that name, in key
 * order. Returns false when the reply is not VALUE blocks and END (an error line, say).
 */
static bool
gather_parse(struct dp_fwd_gather *g, uint8_t pi)
{
	struct dp_fwd_part *p = &g->parts[pi];
	const char *text;
	size_t len = 0, at = 0;
	uint16_t k = 0;

	ASSERT(p->got == p->expect);
	for (uint16_t i = 0; i < p->expect; i++)
		len += p->chunk_len[i];
	if (p->expect == 1) {
		text = (const char *)g->raw + p->chunk_off[0];
	} else {
		if (g->raw_used + len > DP_FWD_GATHER_BYTES)
			return false;
		text = (const char *)g->raw + g->raw_used;
		for (uint16_t i = 0; i < p->expect; i++) {
			memcpy(g->raw + g->raw_used, g->raw + p->chunk_off[i], p->chunk_len[i]);
			g->raw_used += p->chunk_len[i];
		}
	}
	while (at < len) {
		const char *line = text + at;
		const char *eol = memchr(line, '\r', len - at);
		size_t line_len, key_len;
		const char *key, *sp;
		uint32_t bytes;

		if (eol == NULL || (size_t)(eol - text) + 1 >= len || eol[1] != '\n')
			return false;
		line_len = (size_t)(eol - line);
		if (line_len == 3 && memcmp(line, "END", 3) == 0)
			return at + 5 == len;
		if (line_len < 6 || memcmp(line, "VALUE ", 6) != 0)
			return false;
		key = line + 6;
		sp = memchr(key, ' ', line_len - 6);
		if (sp == NULL)
			return false;
		key_len = (size_t)(sp - key);
		/* flags, then bytes, then maybe cas */
		const char *flags_end = memchr(sp + 1, ' ', (size_t)(eol - sp - 1));
		if (flags_end == NULL)
			return false;
		const char *bytes_end = memchr(flags_end + 1, ' ', (size_t)(eol - flags_end - 1));
		if (bytes_end == NULL)
			bytes_end = eol;
		if (!read_dec(flags_end + 1, (size_t)(bytes_end - flags_end - 1), &bytes))
			return false;
		size_t block = line_len + 2 + bytes + 2;
		if (at + block > len || text[at + block - 2] != '\r' ||
		    text[at + block - 1] != '\n')
			return false;
		while (k < g->nkeys && (g->key_part[k] != pi || g->key_len[k] != key_len ||
		                        memcmp(g->keytext + g->key_off[k], key, key_len) != 0))
			k++;
		if (k == g->nkeys)
			return false;
		g->val_off[k] = (uint32_t)((const uint8_t *)line - g->raw);
		g->val_len[k] = (uint32_t)block;
		k++;
		at += block;
	}
	return false;
}

/* Every part is in: answers the client in key order (or the failure line); frees g. */
static void
gather_finish(struct dp_worker *w, struct dp_fwd_gather *g)
{
	struct sp_mc_out *out = dp_mc_writer(w, g->request_id);

	ASSERT(g->parts_done == g->nparts);
	if (g->fail_line != NULL) {
		VERIFY(sp_mc_out_line(out, g->fail_line, strlen(g->fail_line)) == 0);
	} else {
		for (uint16_t i = 0; i < g->nkeys; i++) {
			struct sp_mc_seg segs[2];
			unsigned n = 0;

			if (g->val_off[i] != UINT32_MAX)
				segs[n++] =
				        (struct sp_mc_seg){g->raw + g->val_off[i], g->val_len[i]};
			if (i + 1 == g->nkeys)
				segs[n++] = (struct sp_mc_seg){"END\r\n", 5};
			if (sp_mc_out_resp(out, segs, n) != 0) {
				/* As memcached out of response objects: drop what is queued. */
				sp_mc_out_cull(out);
				VERIFY(sp_mc_out_line(out, OOM_GET_LINE, strlen(OOM_GET_LINE)) ==
				       0);
				break;
			}
		}
	}
	sp_mc_out_flush(out);
	for (uint32_t i = 0; i < out->n; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(w->rt->port.pool);

		if (m == NULL) {
			DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
			break;
		}
		memcpy(rte_pktmbuf_mtod(m, uint8_t *) + NET_UDP_REPLY_HDRS, sp_mc_out_dgram(out, i),
		       out->lens[i]);
		dp_fwd_frame_to(w, m, g->client_mac, g->client_ip_be, g->client_port, g->local_port,
		                out->lens[i]);
		DP_STAT_INC(w->stats, fwd_relayed);
		dp_worker_tx(w, m);
	}
	g->live = 0;
}

/* A forward slot of a gather part got an answer (REPLY datagram or REFUSED). */
static void
gather_answer(struct dp_worker *w, const struct sp_fwd_hdr *h, struct sp_fwd_slot *s,
              const uint8_t *payload)
{
	struct dp_fwd_gather *g = &w->gathers[s->gather - 1];
	uint8_t pi = s->part;
	struct dp_fwd_part *p;

	ASSERT(g->live);
	ASSERT(pi < g->nparts);
	p = &g->parts[pi];
	if (h->kind == SP_FWD_REFUSED) {
		DP_STAT_INC(w->stats, fwd_refused);
		part_done(w, g, pi, refusal_line(h->status));
	} else if (!gather_chunk(g, p, payload, h->payload_len, h->index, h->total)) {
		part_done(w, g, pi, OOM_GET_LINE);
	} else if (p->got == p->expect) {
		part_done(w, g, pi, gather_parse(g, pi) ? NULL : UNAVAILABLE_LINE);
	}
	if (g->parts_done == g->nparts)
		gather_finish(w, g);
}

/*
 * Starts the request of part pi (a remote node) of g. Returns NULL when it was sent, else
 * the line the whole get answers: the owner cannot be reached (no address, MAC or port in
 * the map), or no slot or mbuf was free (busy).
 */
static const char *
gather_send(struct dp_worker *w, const struct route_table *t, struct dp_fwd_gather *g, uint8_t gi,
            uint8_t pi, uint32_t first_partition)
{
	struct dp_fwd_part *p = &g->parts[pi];
	const struct route_node *n = &t->nodes[p->node];
	uint16_t worker = route_owner_workers(t)[first_partition];
	uint8_t *payload = w->scratch; /* free: nothing is being built in this burst step */
	uint8_t *text = payload + SP_MC_FRAME_BYTES;
	struct sp_fwd_slot *s;
	struct sp_fwd_hdr h;
	size_t len;
	uint32_t idx;
	int wrote;

	if (!dp_fwd_peer_usable(n, worker)) {
		DP_STAT_INC(w->stats, fwd_no_peer);
		return WRONG_NODE_LINE;
	}
	SP_STATIC_ASSERT(sizeof(w->scratch) >= SP_FWD_PAYLOAD_MAX, "a message payload fits");
	if (g->kind == SP_MC_GAT || g->kind == SP_MC_GATS)
		wrote = snprintf((char *)text, SP_FWD_PAYLOAD_MAX - SP_MC_FRAME_BYTES, "%s %d",
		                 get_verb(g->kind), (int)g->exptime);
	else
		wrote = snprintf((char *)text, SP_FWD_PAYLOAD_MAX - SP_MC_FRAME_BYTES, "%s",
		                 get_verb(g->kind));
	VERIFY(wrote > 0);
	len = (size_t)wrote;
	for (uint16_t k = 0; k < g->nkeys; k++) {
		if (g->key_part[k] != pi)
			continue;
		/* The keys came in one datagram, so they fit in one again. */
		VERIFY(len + 1 + g->key_len[k] + 2 <= SP_FWD_PAYLOAD_MAX - SP_MC_FRAME_BYTES);
		text[len++] = ' ';
		memcpy(text + len, g->keytext + g->key_off[k], g->key_len[k]);
		len += g->key_len[k];
	}
	text[len++] = '\r';
	text[len++] = '\n';
	s = dp_fwd_slot_take(w, &idx);
	if (s == NULL)
		return BUSY_LINE;
	sp_mc_frame_encode(
	        payload, &(struct sp_mc_frame){.request_id = g->request_id, .seq = 0, .count = 1});
	h = (struct sp_fwd_hdr){.kind = SP_FWD_REQUEST,
	                        .proto = SP_FWD_MEMCACHED,
	                        .entry_worker = w->index,
	                        .payload_len = (uint16_t)(SP_MC_FRAME_BYTES + len),
	                        .slot = idx,
	                        .tag = s->tag,
	                        .entry_node = t->nodes[t->self_index].node_id,
	                        .epoch = t->epoch};
	if (!dp_fwd_batch_put(w, n->mac, n->ipv4_be, (uint16_t)(n->binary_port + worker),
	                      (uint16_t)(w->rt->cfg.port_base + w->index), &h, payload)) {
		dp_fwd_slot_release(w, s);
		return BUSY_LINE;
	}
	s->proto = SP_FWD_MEMCACHED;
	s->owner_node = p->node;
	s->owner_ip_be = n->ipv4_be;
	s->gather = (uint8_t)(gi + 1);
	s->part = pi;
	s->mc_request_id = g->request_id;
	p->slot = idx;
	p->tag = s->tag;
	p->slot_live = 1;
	DP_STAT_INC(w->stats, fwd_out);
	return NULL;
}

/* Runs this node's part pi of g here, as a get of its keys, and takes its reply. */
static void
gather_local(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
             struct dp_fwd_gather *g, uint8_t pi)
{
	uint8_t *buf = w->scratch;
	size_t len = SP_MC_FRAME_BYTES;
	uint32_t n;
	int wrote;

	sp_mc_frame_encode(buf, &(struct sp_mc_frame){.request_id = g->request_id, .count = 1});
	if (g->kind == SP_MC_GAT || g->kind == SP_MC_GATS)
		wrote = snprintf((char *)buf + len, SP_BP_PAYLOAD_MAX - len, "%s %d",
		                 get_verb(g->kind), (int)g->exptime);
	else
		wrote = snprintf((char *)buf + len, SP_BP_PAYLOAD_MAX - len, "%s",
		                 get_verb(g->kind));
	VERIFY(wrote > 0);
	len += (size_t)wrote;
	for (uint16_t k = 0; k < g->nkeys; k++) {
		if (g->key_part[k] != pi)
			continue;
		VERIFY(len + 1 + g->key_len[k] + 2 <= SP_BP_PAYLOAD_MAX);
		buf[len++] = ' ';
		memcpy(buf + len, g->keytext + g->key_off[k], g->key_len[k]);
		len += g->key_len[k];
	}
	buf[len++] = '\r';
	buf[len++] = '\n';
	n = dp_mc_run_forwarded(w, t, now_s, buf, len);
	for (uint32_t i = 0; i < n && n <= DP_FWD_PART_DGRAMS; i++) {
		uint16_t dlen = 0;
		const uint8_t *d = dp_mc_out_dgram(w, i, &dlen);

		if (!gather_chunk(g, &g->parts[pi], d, dlen, (uint8_t)i, (uint8_t)n)) {
			part_done(w, g, pi, OOM_GET_LINE);
			return;
		}
	}
	part_done(w, g, pi,
	          n > 0 && g->parts[pi].got == g->parts[pi].expect && gather_parse(g, pi)
	                  ? NULL
	                  : OOM_GET_LINE);
}

bool
dp_fwd_mc_gather(struct dp_worker *w, const struct route_table *t, uint32_t now_s,
                 struct rte_mbuf *m)
{
	struct dp_meta *meta = dp_meta_of(m);
	uint8_t *frame = rte_pktmbuf_mtod(m, uint8_t *);
	const uint8_t *udp = frame + meta->pkt.payload_off;
	size_t len = meta->pkt.payload_len;
	uint32_t first_part[DP_FWD_GATHER_PARTS];
	struct dp_fwd_gather *g = NULL;
	struct sp_mc_frame f;
	struct sp_mc_cmd cmd;
	uint32_t pos = 0, key_len;
	const char *key;
	size_t used = 0;
	bool remote = false;
	uint8_t gi;

	if (len <= SP_MC_FRAME_BYTES || sp_mc_frame_decode(udp, len, &f) != 0 ||
	    !sp_mc_frame_acceptable(&f, len - SP_MC_FRAME_BYTES))
		return false;
	if (sp_mc_parse(udp + SP_MC_FRAME_BYTES, len - SP_MC_FRAME_BYTES, SP_MC_VALUE_MAX, &cmd,
	                &used) != 0 ||
	    used != len - SP_MC_FRAME_BYTES || !sp_mc_kind_is_get(cmd.kind) || cmd.key_count == 0 ||
	    cmd.key_count > DP_FWD_GATHER_KEYS)
		return false;
	while (sp_mc_next_key(&cmd, &pos, &key, &key_len)) {
		uint32_t p = sp_key_partition(sp_key_hash(key, key_len), t->partitions);
		uint16_t to = 0;
		enum route_action a = route_decide(t, p, w->index, &to);

		if (a == ROUTE_UNSERVED)
			return false;
		remote = remote || a == ROUTE_REMOTE;
	}
	if (!remote)
		return false;
	for (gi = 0; gi < DP_FWD_GATHERS; gi++) {
		if (!w->gathers[gi].live) {
			g = &w->gathers[gi];
			break;
		}
	}
	if (g == NULL) {
		DP_STAT_INC(w->stats, fwd_table_full);
		{
			struct sp_fwd_slot tmp = {.mc_request_id = f.request_id};

			dp_fwd_slot_client(&tmp, meta, frame);
			answer_mc_line(w, &tmp, m, BUSY_LINE);
		}
		return true;
	}
	memset(g, 0, offsetof(struct dp_fwd_gather, keytext));
	g->live = 1;
	g->kind = (uint8_t)cmd.kind;
	g->exptime = cmd.exptime;
	g->request_id = f.request_id;
	g->client_ip_be = meta->pkt.src_ip_be;
	g->client_port = meta->pkt.src_port;
	g->local_port = meta->pkt.dst_port;
	memcpy(g->client_mac, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	ASSERT(cmd.keys_len <= sizeof(g->keytext));
	memcpy(g->keytext, cmd.keys, cmd.keys_len);
	pos = 0;
	while (sp_mc_next_key(&cmd, &pos, &key, &key_len)) {
		uint32_t p = sp_key_partition(sp_key_hash(key, key_len), t->partitions);
		uint16_t to = 0;
		uint16_t node = route_decide(t, p, w->index, &to) == ROUTE_REMOTE
		                        ? to
		                        : (uint16_t)t->self_index;
		uint8_t pi;
		uint16_t k = g->nkeys++;

		for (pi = 0; pi < g->nparts && g->parts[pi].node != node; pi++)
			;
		if (pi == g->nparts) {
			if (g->nparts == DP_FWD_GATHER_PARTS) {
				g->live = 0;
				return false; /* more nodes than a gather spans: refused as before */
			}
			g->parts[pi].node = node;
			memset(g->parts[pi].chunk_off, 0xff, sizeof(g->parts[pi].chunk_off));
			first_part[pi] = p;
			g->nparts++;
		}
		g->key_off[k] = (uint16_t)(key - cmd.keys);
		g->key_len[k] = (uint8_t)key_len;
		g->key_part[k] = pi;
		g->val_off[k] = UINT32_MAX;
	}
	ASSERT(g->nkeys == cmd.key_count);
	/* The client's datagram is no longer needed: what it asked is in g. */
	rte_pktmbuf_free(m);
	for (uint8_t pi = 0; pi < g->nparts; pi++) {
		if (g->parts[pi].node == t->self_index)
			continue;
		const char *fail = gather_send(w, t, g, gi, pi, first_part[pi]);

		if (fail != NULL)
			part_done(w, g, pi, fail);
	}
	for (uint8_t pi = 0; pi < g->nparts; pi++) {
		if (g->parts[pi].node == t->self_index)
			gather_local(w, t, now_s, g, pi);
	}
	if (g->parts_done == g->nparts)
		gather_finish(w, g);
	return true;
}

void
dp_mc_fwd_expire(struct dp_worker *w, struct sp_fwd_slot *s)
{
	struct rte_mbuf *m;

	ASSERT(s->proto == SP_FWD_MEMCACHED);
	if (s->gather != 0) {
		struct dp_fwd_gather *g = &w->gathers[s->gather - 1];

		part_done(w, g, s->part, UNAVAILABLE_LINE); /* releases s */
		if (g->parts_done == g->nparts)
			gather_finish(w, g);
		return;
	}
	/* A response already partly relayed cannot be mended: the client times out. */
	if (s->mc_got == 0) {
		m = rte_pktmbuf_alloc(w->rt->port.pool);
		if (m != NULL)
			answer_mc_line(w, s, m, UNAVAILABLE_LINE);
		else
			DP_STAT_INC(w->stats, dp_drop[DP_DROP_NOMBUF]);
	}
	dp_fwd_slot_release(w, s);
}

void
dp_mc_fwd_drain(struct dp_worker *w)
{
	for (uint32_t gi = 0; gi < DP_FWD_GATHERS; gi++)
		w->gathers[gi].live = 0;
}
