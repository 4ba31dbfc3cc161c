/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * corpus_gen: writes the seed corpus of the three libFuzzer targets from the real encoders,
 * so the seeds are the bytes the processes send, not hand-typed approximations:
 *
 *   fuzz_frame     Raft messages through raft_msg_encode() in frames from frame_header(),
 *                  behind AUTH / CHALLENGE / AUTH_OK from frame_auth_encode(); the client
 *                  requests shardctl sends (docs/control-api.md); the control byte that
 *                  tests/fuzz/fuzz_frame.c reads first
 *   fuzz_binproto  request datagrams from sp_bp_builder (every opcode, batches), reply
 *                  datagrams from sp_bp_add_reply(), a ROUTE page from sp_bp_route_encode()
 *   fuzz_memcache  memcached UDP requests: sp_mc_frame_encode() and the commands of
 *                  tests/unit/memcache/test_memcache.c, accepted and refused ones
 *
 *   corpus_gen DIR     writes DIR/fuzz_frame/NAME, DIR/fuzz_binproto/NAME, ... (the
 *                      directories must exist); output is deterministic, so
 *                      tests/fuzz/corpus is regenerated and compared in the unit suite
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyhash.h"
#include "raft/raft.h"
#include "transport/frame.h"
#include "wire/binproto.h"
#include "wire/memcache.h"

/* The ids of tests/fuzz/fuzz_frame.c: the harness's node and its peers. */
#define FZ_SELF   1u
#define FZ_PEER_A 2u
#define FZ_PEER_B 3u
/* Its control byte. */
#define FZ_SIDE_INITIATOR 0x01u
#define FZ_PORT_CLIENT    0x02u
#define FZ_FIX_MAC        0x04u
#define FZ_LEADER         0x08u

#define SEED_BYTES_MAX (64u << 10)

static const char *out_dir;
static unsigned files_written;

/* One seed under construction. */
struct seed {
	uint8_t buf[SEED_BYTES_MAX];
	size_t len;
};

static void
fail(const char *what)
{
	fprintf(stderr, "corpus_gen: %s\n", what);
	exit(1);
}

static void
put(struct seed *s, const void *p, size_t n)
{
	if (s->len + n > sizeof(s->buf))
		fail("a seed over SEED_BYTES_MAX");
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void
save(const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "corpus_gen: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	files_written++;
}

/* ---- fuzz_frame ----------------------------------------------------------------------- */

static void
frame(struct seed *s, uint8_t type, const void *payload, uint32_t len)
{
	uint8_t hdr[FRAME_HDR];
	frame_header(hdr, type, len);
	put(s, hdr, sizeof(hdr));
	put(s, payload, len);
}

/* The AUTH an initiator sends; the harness fills in the proof (FZ_FIX_MAC). */
static void
auth(struct seed *s, uint8_t role, uint64_t node_id)
{
	struct frame_auth a = {.role = role, .node_id = node_id};
	uint8_t body[FRAME_AUTH_LEN];
	for (unsigned i = 0; i < FRAME_NONCE_LEN; i++)
		a.nonce[i] = (uint8_t)(0x40 + i);
	if (frame_auth_encode(&a, body) != sizeof(body))
		fail("frame_auth_encode");
	frame(s, FRAME_AUTH, body, sizeof(body));
}

static void
raft_frame(struct seed *s, const struct raft_msg *m)
{
	static uint8_t buf[SEED_BYTES_MAX];
	int n = raft_msg_encode(m, buf, sizeof(buf));
	if (n < 0)
		fail("raft_msg_encode");
	frame(s, FRAME_RAFT, buf, (uint32_t)n);
}

static void
start(struct seed *s, uint8_t ctl)
{
	s->len = 0;
	put(s, &ctl, 1);
}

static const char cmd_set[] = "config.set tier gold"; /* opaque to Raft */
static const char cmd_big[] = "config.set placement {\"nodes\":3,\"workers\":2}";

static void
gen_frame_peer(void)
{
	struct seed s;
	uint8_t conf[RAFT_CONF_CHANGE_BYTES];
	struct raft_conf_change cc = {.op = RAFT_CONF_ADD_LEARNER, .node_id = 4};
	raft_conf_change_encode(&cc, conf);
	struct raft_entry ents[] = {
	        {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP},
	        {.term = 1,
	         .index = 2,
	         .type = RAFT_ENTRY_NORMAL,
	         .len = sizeof(cmd_set) - 1,
	         .data = cmd_set},
	        {.term = 1, .index = 3, .type = RAFT_ENTRY_CONF, .len = sizeof(conf), .data = conf},
	        {.term = 1,
	         .index = 4,
	         .type = RAFT_ENTRY_NORMAL,
	         .len = sizeof(cmd_big) - 1,
	         .data = cmd_big},
	};
	const uint8_t peer = FZ_FIX_MAC;

	/* A follower's life with leader 2 of term 1: heartbeat, appends, commit, a conflict,
	 * a heartbeat that carries a ReadIndex round. */
	start(&s, peer);
	auth(&s, FRAME_ROLE_PEER, FZ_PEER_A);
	struct raft_msg hb = {
	        .type = RAFT_MSG_HEARTBEAT, .from = FZ_PEER_A, .to = FZ_SELF, .term = 1};
	raft_frame(&s, &hb);
	struct raft_msg app = {.type = RAFT_MSG_APPEND,
	                       .from = FZ_PEER_A,
	                       .to = FZ_SELF,
	                       .term = 1,
	                       .entries = ents,
	                       .n_entries = 3,
	                       .commit = 2};
	raft_frame(&s, &app);
	app = (struct raft_msg){.type = RAFT_MSG_APPEND,
	                        .from = FZ_PEER_A,
	                        .to = FZ_SELF,
	                        .term = 1,
	                        .index = 3,
	                        .log_term = 1,
	                        .entries = ents + 3,
	                        .n_entries = 1,
	                        .commit = 4};
	raft_frame(&s, &app);
	app = (struct raft_msg){.type = RAFT_MSG_APPEND,
	                        .from = FZ_PEER_A,
	                        .to = FZ_SELF,
	                        .term = 1,
	                        .index = 9,
	                        .log_term = 1,
	                        .commit = 4};
	raft_frame(&s, &app);
	hb.commit = 4;
	hb.ctx = 7;
	raft_frame(&s, &hb);
	save("fuzz_frame", "peer-follower-appends", s.buf, s.len);

	/* Elections at a follower: pre-vote and vote from 3 at term 2, then leadership moved
	 * here with TIMEOUT_NOW. */
	start(&s, peer);
	auth(&s, FRAME_ROLE_PEER, FZ_PEER_B);
	struct raft_msg v = {.type = RAFT_MSG_PRE_VOTE,
	                     .from = FZ_PEER_B,
	                     .to = FZ_SELF,
	                     .term = 2,
	                     .index = 4,
	                     .log_term = 1};
	raft_frame(&s, &v);
	v.type = RAFT_MSG_VOTE;
	raft_frame(&s, &v);
	v = (struct raft_msg){
	        .type = RAFT_MSG_TIMEOUT_NOW, .from = FZ_PEER_B, .to = FZ_SELF, .term = 2};
	raft_frame(&s, &v);
	v = (struct raft_msg){
	        .type = RAFT_MSG_PRE_VOTE_RESP, .from = FZ_PEER_B, .to = FZ_SELF, .term = 3};
	raft_frame(&s, &v);
	v.type = RAFT_MSG_VOTE_RESP;
	raft_frame(&s, &v);
	save("fuzz_frame", "peer-follower-elections", s.buf, s.len);

	/* A snapshot from the leader, then an append after it. */
	start(&s, peer);
	auth(&s, FRAME_ROLE_PEER, FZ_PEER_A);
	static const char image[] = "cluster state image: members n1 n2 n3, map epoch 1";
	struct raft_msg snap = {
	        .type = RAFT_MSG_SNAPSHOT,
	        .from = FZ_PEER_A,
	        .to = FZ_SELF,
	        .term = 1,
	        .snapshot = {.meta = {.index = 10,
	                              .term = 1,
	                              .membership = {.n_voters = 3,
	                                             .voters = {FZ_SELF, FZ_PEER_A, FZ_PEER_B}}},
	                     .data = image,
	                     .len = sizeof(image) - 1}};
	raft_frame(&s, &snap);
	struct raft_entry e11 = {.term = 1,
	                         .index = 11,
	                         .type = RAFT_ENTRY_NORMAL,
	                         .len = sizeof(cmd_set) - 1,
	                         .data = cmd_set};
	app = (struct raft_msg){.type = RAFT_MSG_APPEND,
	                        .from = FZ_PEER_A,
	                        .to = FZ_SELF,
	                        .term = 1,
	                        .index = 10,
	                        .log_term = 1,
	                        .entries = &e11,
	                        .n_entries = 1,
	                        .commit = 11};
	raft_frame(&s, &app);
	save("fuzz_frame", "peer-follower-snapshot", s.buf, s.len);

	/* The leader of term 1 (its no-op at index 1): acknowledgements, a rejection with
	 * hints, a heartbeat answer for a ReadIndex round, a forwarded proposal, and a vote
	 * request of a higher term that makes it step down. */
	start(&s, peer | FZ_LEADER);
	auth(&s, FRAME_ROLE_PEER, FZ_PEER_A);
	struct raft_msg r = {.type = RAFT_MSG_APPEND_RESP,
	                     .from = FZ_PEER_A,
	                     .to = FZ_SELF,
	                     .term = 1,
	                     .index = 1};
	raft_frame(&s, &r);
	r = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
	                      .from = FZ_PEER_B,
	                      .to = FZ_SELF,
	                      .term = 1,
	                      .index = 1,
	                      .reject = true,
	                      .reject_hint_index = 0,
	                      .reject_hint_term = 0};
	raft_frame(&s, &r);
	r = (struct raft_msg){.type = RAFT_MSG_HEARTBEAT_RESP,
	                      .from = FZ_PEER_A,
	                      .to = FZ_SELF,
	                      .term = 1,
	                      .ctx = 1};
	raft_frame(&s, &r);
	struct raft_entry prop = {
	        .type = RAFT_ENTRY_NORMAL, .len = sizeof(cmd_set) - 1, .data = cmd_set};
	r = (struct raft_msg){.type = RAFT_MSG_PROPOSE,
	                      .from = FZ_PEER_B,
	                      .to = FZ_SELF,
	                      .term = 1,
	                      .entries = &prop,
	                      .n_entries = 1};
	raft_frame(&s, &r);
	r = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
	                      .from = FZ_PEER_B,
	                      .to = FZ_SELF,
	                      .term = 1,
	                      .index = 2};
	raft_frame(&s, &r);
	r = (struct raft_msg){.type = RAFT_MSG_VOTE,
	                      .from = FZ_PEER_B,
	                      .to = FZ_SELF,
	                      .term = 5,
	                      .index = 9,
	                      .log_term = 4};
	raft_frame(&s, &r);
	save("fuzz_frame", "peer-leader-replication", s.buf, s.len);

	/* A message for another node (dropped) and a frame that is not RAFT (closes). */
	start(&s, peer);
	auth(&s, FRAME_ROLE_PEER, FZ_PEER_A);
	hb.to = FZ_PEER_B;
	raft_frame(&s, &hb);
	frame(&s, FRAME_REQUEST, "{}", 2);
	save("fuzz_frame", "peer-misaddressed", s.buf, s.len);

	/* Refusals: a wrong proof, the client role on the peer port, a frame before AUTH. */
	start(&s, 0);
	auth(&s, FRAME_ROLE_PEER, FZ_PEER_A);
	raft_frame(&s, &hb);
	save("fuzz_frame", "peer-wrong-mac", s.buf, s.len);
	start(&s, peer);
	auth(&s, FRAME_ROLE_CLIENT, 0);
	save("fuzz_frame", "peer-client-role", s.buf, s.len);
	start(&s, peer);
	raft_frame(&s, &hb);
	save("fuzz_frame", "peer-raft-before-auth", s.buf, s.len);
}

static void
gen_frame_client(void)
{
	/* What shardctl sends for each op of docs/control-api.md. */
	static const char *const reqs[] = {
	        "{\"op\":\"member.list\",\"id\":1}",
	        "{\"op\":\"member.list\",\"serializable\":true,\"id\":2}",
	        "{\"op\":\"member.add\",\"name\":\"n4\",\"peer\":\"127.0.0.1:2384\","
	        "\"client\":\"127.0.0.1:2374\",\"id\":3}",
	        "{\"op\":\"member.remove\",\"member\":\"n4\",\"id\":4}",
	        "{\"op\":\"member.promote\",\"member\":\"4c1a2f3e\",\"id\":5}",
	        "{\"op\":\"endpoint.status\",\"id\":6}",
	        "{\"op\":\"endpoint.health\",\"id\":7}",
	        "{\"op\":\"move-leader\",\"member\":\"n2\",\"id\":8}",
	        "{\"op\":\"config.get\",\"key\":\"tier\",\"id\":9}",
	        "{\"op\":\"config.set\",\"key\":\"tier\",\"value\":\"gold\",\"id\":10}",
	        "{\"op\":\"config.del\",\"key\":\"tier\",\"id\":11}",
	        "{\"op\":\"config.list\",\"prefix\":\"t\",\"id\":12}",
	        "{\"op\":\"partitions.show\",\"id\":13}",
	        "{\"op\":\"partitions.rebalance\",\"id\":14}",
	        "{\"op\":\"snapshot.save\",\"id\":18446744073709551615}",
	};
	struct seed s;
	start(&s, FZ_PORT_CLIENT | FZ_FIX_MAC);
	auth(&s, FRAME_ROLE_CLIENT, 0);
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		frame(&s, FRAME_REQUEST, reqs[i], (uint32_t)strlen(reqs[i]));
	save("fuzz_frame", "client-every-op", s.buf, s.len);

	start(&s, FZ_PORT_CLIENT | FZ_FIX_MAC);
	auth(&s, FRAME_ROLE_CLIENT, 0);
	frame(&s, FRAME_REQUEST, "[1,2]", 5);
	frame(&s, FRAME_REQUEST, "{\"op\":7,\"id\":-1}", 16);
	frame(&s, FRAME_REQUEST, "{\"op\":\"config.set\",\"key\":", 25);
	save("fuzz_frame", "client-bad-requests", s.buf, s.len);

	/* A client without the secret: its REQUEST is never read. */
	start(&s, FZ_PORT_CLIENT);
	auth(&s, FRAME_ROLE_CLIENT, 0);
	frame(&s, FRAME_REQUEST, reqs[0], (uint32_t)strlen(reqs[0]));
	save("fuzz_frame", "client-wrong-mac", s.buf, s.len);
}

static void
gen_frame_initiator(void)
{
	struct seed s;
	uint8_t challenge[1 + FRAME_NONCE_LEN] = {FRAME_AUTH_VERSION};
	uint8_t mac[FRAME_MAC_LEN] = {0};
	uint64_t self = FZ_SELF, other = FZ_PEER_B;
	for (unsigned i = 0; i < FRAME_NONCE_LEN; i++)
		challenge[1 + i] = (uint8_t)(0x80 + i);

	/* A member that connected to a peer, was authenticated, and is told it was removed. */
	start(&s, FZ_SIDE_INITIATOR | FZ_FIX_MAC);
	frame(&s, FRAME_CHALLENGE, challenge, sizeof(challenge));
	frame(&s, FRAME_AUTH_OK, mac, sizeof(mac));
	frame(&s, FRAME_REMOVED, &other, 8);
	frame(&s, FRAME_REMOVED, &self, 8);
	save("fuzz_frame", "initiator-removed", s.buf, s.len);

	/* The acceptor does not prove the secret. */
	start(&s, FZ_SIDE_INITIATOR);
	frame(&s, FRAME_CHALLENGE, challenge, sizeof(challenge));
	frame(&s, FRAME_AUTH_OK, mac, sizeof(mac));
	save("fuzz_frame", "initiator-wrong-mac", s.buf, s.len);

	/* A challenge of another version. */
	challenge[0] = FRAME_AUTH_VERSION + 1;
	start(&s, FZ_SIDE_INITIATOR | FZ_FIX_MAC);
	frame(&s, FRAME_CHALLENGE, challenge, sizeof(challenge));
	save("fuzz_frame", "initiator-bad-version", s.buf, s.len);
}

/* ---- fuzz_binproto -------------------------------------------------------------------- */

static void
bp_save(const char *name, const struct sp_bp_req *reqs, unsigned n, uint64_t dgram_id)
{
	static uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	sp_bp_builder_init(&b, buf, sizeof(buf), false, dgram_id);
	for (unsigned i = 0; i < n; i++)
		if (sp_bp_add_request(&b, &reqs[i]) != 0)
			fail("sp_bp_add_request");
	save("fuzz_binproto", name, buf, sp_bp_builder_finish(&b));
}

static void
gen_binproto(void)
{
	static const uint8_t counter[16] = {5, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0};
#define K(s) .key = (const uint8_t *)(s), .key_len = sizeof(s) - 1
#define V(s) .value = (const uint8_t *)(s), .value_len = sizeof(s) - 1
	const struct sp_bp_req one[] = {
	        {.opcode = SP_BP_OP_GET, .request_id = 1, K("hello")},
	        {.opcode = SP_BP_OP_SET,
	         .request_id = 2,
	         K("hello"),
	         V("world"),
	         .flags = 7,
	         .expiry_s = 60},
	        {.opcode = SP_BP_OP_ADD, .request_id = 3, K("fresh"), V("v")},
	        {.opcode = SP_BP_OP_REPLACE, .request_id = 4, K("hello"), V("again")},
	        {.opcode = SP_BP_OP_DELETE, .request_id = 5, K("hello")},
	        {.opcode = SP_BP_OP_SET, .request_id = 6, K("hello"), V("cas"), .cas = 1},
	        {.opcode = SP_BP_OP_DELETE, .request_id = 7, K("hello"), .cas = 99},
	        {.opcode = SP_BP_OP_INCR, .request_id = 8, K("ctr"), .delta = 5},
	        {.opcode = SP_BP_OP_INCR,
	         .request_id = 9,
	         K("ctr"),
	         .delta = 5,
	         .initial = 100,
	         .create = 1},
	        {.opcode = SP_BP_OP_DECR, .request_id = 10, K("ctr"), .delta = 1000},
	        {.opcode = SP_BP_OP_ROUTE, .request_id = 11},
	        {.opcode = SP_BP_OP_ROUTE, .request_id = 12, .route_first = 4},
	};
	static const char *const names[] = {"get",         "set",     "add",     "replace",
	                                    "delete",      "set-cas", "del-cas", "incr",
	                                    "incr-create", "decr",    "route",   "route-page"};
	char name[64];
	for (unsigned i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		snprintf(name, sizeof(name), "req-%s", names[i]);
		bp_save(name, &one[i], 1, 100 + i);
	}
	/* Every opcode in one datagram, in a client's order: store, read, count, route. */
	bp_save("req-mixed-batch", one, sizeof(one) / sizeof(one[0]), 1);
	/* A multi-get of SP_BP_REQS_MAX keys, as the client library batches them. */
	struct sp_bp_req gets[SP_BP_REQS_MAX];
	static char keys[SP_BP_REQS_MAX][16];
	for (unsigned i = 0; i < SP_BP_REQS_MAX; i++) {
		int n = snprintf(keys[i], sizeof(keys[i]), "user:%u", 1000 + i);
		gets[i] = (struct sp_bp_req){.opcode = SP_BP_OP_GET,
		                             .request_id = i + 1,
		                             .key = (const uint8_t *)keys[i],
		                             .key_len = (uint16_t)n};
	}
	bp_save("req-multiget-32", gets, SP_BP_REQS_MAX, 2);
	/* Keys and values at their limits' edges. */
	static uint8_t big_key[SP_BP_KEY_MAX], val[800];
	memset(big_key, 'k', sizeof(big_key));
	memset(val, 'v', sizeof(val));
	struct sp_bp_req edge[] = {
	        {.opcode = SP_BP_OP_SET,
	         .request_id = 1,
	         .key = big_key,
	         .key_len = SP_BP_KEY_MAX,
	         .value = val,
	         .value_len = sizeof(val)},
	        {.opcode = SP_BP_OP_GET, .request_id = 2, .key = big_key, .key_len = SP_BP_KEY_MAX},
	};
	bp_save("req-key-max", edge, 2, 3);

	/* Reply datagrams and a ROUTE page, which the target decodes too. */
	static uint8_t buf[SP_BP_PAYLOAD_MAX];
	struct sp_bp_builder b;
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 1);
	uint8_t *p = sp_bp_add_reply(&b, 1, SP_BP_OP_GET, SP_BP_ST_OK, 3, 7, 5);
	memcpy(p, "world", 5);
	sp_bp_add_reply(&b, 2, SP_BP_OP_SET, SP_BP_ST_OK, 4, 0, 0);
	sp_bp_add_reply(&b, 3, SP_BP_OP_GET, SP_BP_ST_NOT_FOUND, 0, 0, 0);
	p = sp_bp_add_reply(&b, 8, SP_BP_OP_INCR, SP_BP_ST_OK, 5, 0, SP_BP_COUNTER_REPLY_SIZE);
	memcpy(p, counter, SP_BP_COUNTER_REPLY_SIZE);
	sp_bp_add_reply(&b, 9, SP_BP_OP_SET, SP_BP_ST_WRONG_PARTITION, 0, 0, 0);
	save("fuzz_binproto", "reply-batch", buf, sp_bp_builder_finish(&b));

	/* A ROUTE page of a 3-node map (2 workers each) over 16 partitions. */
	static const struct sp_bp_route_node nodes[3] = {
	        {.node_id = 0x3870e41u,
	         .ipv4_be = 0x0100010au,
	         .binary_port = 9000,
	         .memcached_port = 11211,
	         .worker_count = 2},
	        {.node_id = 0x63f1a7d4u,
	         .ipv4_be = 0x0200010au,
	         .binary_port = 9000,
	         .memcached_port = 11211,
	         .worker_count = 2},
	        {.node_id = 0x5405b07fu,
	         .ipv4_be = 0x0300010au,
	         .binary_port = 9000,
	         .worker_count = 2},
	};
	uint16_t owner[16];
	for (unsigned i = 0; i < 16; i++)
		owner[i] = sp_bp_route_entry((uint16_t)(i % 3), (uint16_t)(i % 2));
	struct sp_bp_route rt = {
	        .epoch = 7, .partitions = 16, .first = 0, .count = 16, .node_count = 3, .self = 1};
	uint32_t vlen = sp_bp_route_value_size(3, 16);
	static uint8_t page[4096];
	if (vlen > sizeof(page))
		fail("route page");
	sp_bp_route_encode(page, &rt, nodes, owner);
	save("fuzz_binproto", "route-page", page, vlen);
	/* The ROUTE reply carrying it, as a node answers a client's ROUTE request, and a
	 * WRONG_PARTITION reply that says where the key lives. */
	sp_bp_builder_init(&b, buf, sizeof(buf), true, 2);
	p = sp_bp_add_reply(&b, 11, SP_BP_OP_ROUTE, SP_BP_ST_OK, 0, 0, vlen);
	memcpy(p, page, vlen);
	struct sp_bp_redirect red = {
	        .epoch = 7, .node_id = nodes[2].node_id, .ipv4_be = nodes[2].ipv4_be, .port = 9001};
	p = sp_bp_add_reply(&b, 12, SP_BP_OP_GET, SP_BP_ST_WRONG_PARTITION, 0, 0,
	                    SP_BP_REDIRECT_SIZE);
	sp_bp_redirect_encode(p, &red);
	save("fuzz_binproto", "reply-route", buf, sp_bp_builder_finish(&b));
#undef K
#undef V
}

/* ---- fuzz_memcache -------------------------------------------------------------------- */

static void
mc_save(const char *name, uint16_t request_id, const char *payload, size_t len)
{
	struct seed s;
	uint8_t hdr[SP_MC_FRAME_BYTES];
	struct sp_mc_frame f = {.request_id = request_id, .seq = 0, .count = 1};
	sp_mc_frame_encode(hdr, &f);
	s.len = 0;
	put(&s, hdr, sizeof(hdr));
	put(&s, payload, len);
	save("fuzz_memcache", name, s.buf, s.len);
}

static void
gen_memcache(void)
{
	/* Accepted commands of tests/unit/memcache/test_memcache.c, one datagram each. The
	 * request id's high byte (the target's first byte) sets the value limit: 0xff00
	 * allows 1020 bytes. */
	static const char *const ok[] = {
	        "get hello\r\n",
	        "gets a b c\r\n",
	        "bget x\r\n",
	        "gat -5 k1 k2\r\n",
	        "gats 100 k\r\n",
	        "set hello 7 60 5\r\nworld\r\n",
	        "add k 0 0 1 noreply\r\nx\r\n",
	        "replace k 0 0 3\r\nabc\r\n",
	        "append k 0 0 2\r\nde\r\n",
	        "prepend k 0 0 2\r\nab\r\n",
	        "cas k 1 2 3 12345678901234 noreply\r\nxyz\r\n",
	        "set k 0 0 0\r\n\r\n",
	        "delete k\r\n",
	        "delete k 0 noreply\r\n",
	        "incr k 18446744073709551615\r\n",
	        "decr k 3 noreply\r\n",
	        "touch k -1\r\n",
	        "flush_all 30 noreply\r\n",
	        "version\r\n",
	        "verbosity 3 noreply\r\n",
	        "stats\r\n",
	        "stats reset\r\n",
	        "quit\r\n",
	};
	/* Refused ones: each error reply of the parser. */
	static const char *const bad[] = {
	        "bogus\r\n",
	        "GET a\r\n",
	        "get\r\n",
	        "gat x k\r\n",
	        "set k 0 0\r\n",
	        "set k x 0 1\r\nx\r\n",
	        "set k 0 0 -1\r\nx\r\n",
	        "set k 0 0 2147483647\r\nx\r\n",
	        "set k 0 0 1\r\nab\r\n",
	        "cas k 0 0 1 abc\r\nx\r\n",
	        "delete k 5\r\n",
	        "incr k abc\r\n",
	        "touch k x noreply\r\n",
	        "verbosity x\r\n",
	        "flush_all 1 2 3\r\n",
	        "stats items\r\n",
	        "shutdown\r\n",
	        "mg key v\r\n",
	};
	char name[64];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(name, sizeof(name), "ok-%02zu", i);
		mc_save(name, 0xff00u + (uint16_t)i, ok[i], strlen(ok[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(name, sizeof(name), "bad-%02zu", i);
		mc_save(name, 0xff00u + (uint16_t)i, bad[i], strlen(bad[i]));
	}
	/* A pipelined datagram as memcaslap sends it: sets, gets, a multi-get. */
	char batch[2048];
	size_t n = 0;
	for (int i = 0; i < 8; i++)
		n += (size_t)snprintf(batch + n, sizeof(batch) - n,
		                      "set key:%d 0 0 10\r\nvalue%05d\r\nget key:%d\r\n", i, i, i);
	n += (size_t)snprintf(batch + n, sizeof(batch) - n,
	                      "get key:0 key:1 key:2 key:3 key:4 key:5 key:6 key:7\r\n");
	mc_save("pipeline", 0xff42u, batch, n);
	/* A value over the limit (request id 0x0100: 4 bytes allowed). */
	mc_save("value-too-large", 0x0100u, ok[5], strlen(ok[5]));
	/* A multi-datagram request header (count 2) is refused whole. */
	struct seed s;
	uint8_t hdr[SP_MC_FRAME_BYTES];
	struct sp_mc_frame f = {.request_id = 0xff01, .seq = 0, .count = 2};
	sp_mc_frame_encode(hdr, &f);
	s.len = 0;
	put(&s, hdr, sizeof(hdr));
	put(&s, ok[0], strlen(ok[0]));
	save("fuzz_memcache", "multi-datagram", s.buf, s.len);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: corpus_gen DIR (with DIR/fuzz_frame, DIR/fuzz_binproto and "
		                "DIR/fuzz_memcache existing)\n");
		return 2;
	}
	out_dir = argv[1];
	gen_frame_peer();
	gen_frame_client();
	gen_frame_initiator();
	gen_binproto();
	gen_memcache();
	printf("corpus_gen: %u seeds written under %s\n", files_written, out_dir);
	return 0;
}
