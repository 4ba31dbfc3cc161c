/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the control plane's frames: the decoder, the authentication
 * handshake and the handlers behind it.
 *
 * Input: one control byte, then the bytes the other end of a connection sends.
 *
 *   bit 0  the side the harness plays: 0 = acceptor (a member's listener: the input starts
 *          with AUTH), 1 = initiator (a member that connected to a peer: CHALLENGE, AUTH_OK)
 *   bit 1  the acceptor's port: 0 = peer (RAFT frames), 1 = client (REQUEST frames)
 *   bit 2  1 = the harness makes the input's proof valid: it knows the secret and its own
 *          nonce, so it computes the MAC the input's AUTH (or AUTH_OK) should carry and
 *          puts it there, as an initiator that knows the secret would. Without it a fuzzer
 *          could never pass the HMAC and nothing after authentication would be reached.
 *          0 = the input's MAC as it is (the refusal path).
 *   bit 3  the Raft node behind a peer port starts as the leader (1) or a follower (0)
 *
 * The harness follows control/cp/io.c's on_frame(): before authentication frames are
 * limited to FRAME_PREAUTH_MAX and only the expected handshake frame is accepted; a wrong
 * proof ends the connection. After it, RAFT frames from a peer are decoded and, when
 * addressed to this node, stepped into a real Raft node of a three-member cluster (as
 * node.c's step_now does), whose invariants are checked after every step; REQUEST frames
 * from a client are parsed as JSON with the server's limit (CP_JSON_MAX) and their id and
 * op read, as api.c does; REMOVED frames on an outgoing peer connection are checked for
 * this node's id. Every frame returned must lie inside the input and every decoded entry
 * inside its frame.
 *
 * The seed corpus is tests/fuzz/corpus/fuzz_frame/, made by tests/fuzz/corpus_gen.c from
 * the real encoders (see tests/fuzz/corpus/README.md).
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "transport/frame.h"

/* The harness's node and its peers; corpus_gen.c uses the same ids and secret. */
#define FZ_SELF        1u
#define FZ_PEER_A      2u
#define FZ_PEER_B      3u
#define FZ_CLIENT_MAX  (1u << 20) /* CP_JSON_MAX in control/cp/io.h */
#define FZ_READIES_MAX 64u        /* readies drained after one step, at most */

#define FZ_SIDE_INITIATOR 0x01u
#define FZ_PORT_CLIENT    0x02u
#define FZ_FIX_MAC        0x04u
#define FZ_LEADER         0x08u

static const uint8_t fz_secret[] = "fuzz-frame-cluster-secret-0123456789";
/* The nonces the harness "sent": nonce_a as acceptor (CHALLENGE), nonce_i as initiator. */
static const uint8_t fz_nonce_a[FRAME_NONCE_LEN] = {0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t fz_nonce_i[FRAME_NONCE_LEN] = {0x1a, 9, 8, 7, 6, 5, 4, 3, 2, 1};

static struct raft_entry fz_entries[RAFT_MSG_ENTRIES_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
	if (!cond)
		abort();
}

/* Drains the node's readies as a driver that persists and sends everything at once. */
static void
fz_drain(struct raft *r)
{
	struct raft_ready rd;
	for (uint32_t i = 0; i < FZ_READIES_MAX && raft_ready_get(r, &rd); i++)
		raft_ready_advance(r);
	check(raft_check_invariants(r) == 0);
}

/* A node of the cluster {1, 2, 3}: a follower at term 0, or the leader of term 1. */
static struct raft *
fz_raft_new(bool leader)
{
	struct raft_config cfg;
	int err = 0;

	raft_config_init(&cfg, FZ_SELF);
	cfg.bootstrap.n_voters = 3;
	cfg.bootstrap.voters[0] = FZ_SELF;
	cfg.bootstrap.voters[1] = FZ_PEER_A;
	cfg.bootstrap.voters[2] = FZ_PEER_B;
	cfg.pre_vote = !leader; /* the leader is made by one vote below */
	struct raft *r = raft_create(&cfg, NULL, &err);
	check(r != NULL);
	if (leader) {
		struct raft_event ev = {.type = RAFT_EV_CAMPAIGN};
		struct raft_status st;
		check(raft_step(r, &ev) == 0);
		fz_drain(r);
		raft_status(r, &st);
		struct raft_msg vote = {.type = RAFT_MSG_VOTE_RESP,
		                        .from = FZ_PEER_A,
		                        .to = FZ_SELF,
		                        .term = st.term};
		ev = (struct raft_event){.type = RAFT_EV_MSG, .msg = &vote};
		check(raft_step(r, &ev) == 0);
		fz_drain(r);
		raft_status(r, &st);
		check(st.role == RAFT_LEADER);
	}
	return r;
}

/* A RAFT frame from an authenticated peer: node.c's step_now(). */
static void
fz_raft_frame(struct raft *r, const struct frame *f)
{
	struct raft_msg m;
	if (raft_msg_decode(f->payload, f->len, &m, fz_entries, RAFT_MSG_ENTRIES_MAX) != 0)
		return;
	for (uint32_t i = 0; i < m.n_entries; i++) {
		const uint8_t *d = m.entries[i].data;
		if (m.entries[i].len == 0)
			continue;
		check(d >= f->payload);
		check(d + m.entries[i].len <= f->payload + f->len);
	}
	if (m.to != FZ_SELF)
		return; /* dropped, as node.c drops it */
	struct raft_event ev = {.type = RAFT_EV_MSG, .msg = &m};
	(void)raft_step(r, &ev);
	fz_drain(r);
}

/* A REQUEST frame from an authenticated client: what api.c reads before dispatching. */
static void
fz_request_frame(const struct frame *f)
{
	struct json_tokener *tok = json_tokener_new();
	check(tok != NULL);
	json_object *req = json_tokener_parse_ex(tok, (const char *)f->payload, (int)f->len);
	json_tokener_free(tok);
	if (req == NULL)
		return;
	json_object *v;
	if (json_object_is_type(req, json_type_object)) {
		if (json_object_object_get_ex(req, "id", &v))
			(void)json_object_get_uint64(v);
		if (json_object_object_get_ex(req, "op", &v) &&
		    json_object_is_type(v, json_type_string))
			check(json_object_get_string(v) != NULL);
	}
	json_object_put(req);
}

enum fz_state { FZ_WAIT_AUTH, FZ_WAIT_CHALLENGE, FZ_WAIT_AUTH_OK, FZ_READY };

/*
 * The handshake frame f in state *st, as io.c's on_frame() takes it, with the input's proof
 * made valid when fix. Returns false when the connection would be closed.
 */
static bool
fz_handshake(enum fz_state *st, const struct frame *f, bool client_port, bool fix,
             uint8_t nonce_peer[FRAME_NONCE_LEN])
{
	uint8_t expect[FRAME_MAC_LEN], reply[FRAME_MAC_LEN];

	switch (*st) {
	case FZ_WAIT_AUTH: {
		struct frame_auth a;
		uint8_t want = client_port ? FRAME_ROLE_CLIENT : FRAME_ROLE_PEER;
		if (f->type != FRAME_AUTH || frame_auth_decode(f->payload, f->len, &a) ||
		    a.role != want)
			return false;
		frame_mac_initiator(fz_secret, sizeof(fz_secret) - 1, fz_nonce_a, a.nonce, a.role,
		                    a.node_id, expect);
		if (fix)
			memcpy(a.mac, expect, FRAME_MAC_LEN);
		if (!frame_mac_equal(expect, a.mac))
			return false;
		/* The acceptor's proof is not the initiator's: neither can be reflected. */
		frame_mac_acceptor(fz_secret, sizeof(fz_secret) - 1, a.nonce, fz_nonce_a, reply);
		check(!frame_mac_equal(reply, a.mac));
		*st = FZ_READY;
		return true;
	}
	case FZ_WAIT_CHALLENGE: {
		if (f->type != FRAME_CHALLENGE || f->len != 1 + FRAME_NONCE_LEN ||
		    f->payload[0] != FRAME_AUTH_VERSION)
			return false;
		struct frame_auth a = {.role = FRAME_ROLE_PEER, .node_id = FZ_SELF}, back;
		uint8_t body[FRAME_AUTH_LEN];
		memcpy(a.nonce, fz_nonce_i, FRAME_NONCE_LEN);
		frame_mac_initiator(fz_secret, sizeof(fz_secret) - 1, f->payload + 1, a.nonce,
		                    a.role, a.node_id, a.mac);
		/* What the harness sends decodes to what it meant. */
		check(frame_auth_encode(&a, body) == FRAME_AUTH_LEN);
		check(frame_auth_decode(body, sizeof(body), &back) == 0);
		check(back.node_id == a.node_id);
		check(frame_mac_equal(back.mac, a.mac));
		memcpy(nonce_peer, f->payload + 1, FRAME_NONCE_LEN);
		*st = FZ_WAIT_AUTH_OK;
		return true;
	}
	case FZ_WAIT_AUTH_OK: {
		if (f->type != FRAME_AUTH_OK || f->len != FRAME_MAC_LEN)
			return false;
		frame_mac_acceptor(fz_secret, sizeof(fz_secret) - 1, fz_nonce_i, nonce_peer,
		                   expect);
		memcpy(reply, fix ? expect : f->payload, FRAME_MAC_LEN);
		if (!frame_mac_equal(expect, reply))
			return false;
		*st = FZ_READY;
		return true;
	}
	case FZ_READY:
		break;
	}
	abort();
}

/* The raw decoder's contract over the whole stream, with both limits. */
static void
fz_parse_contract(const uint8_t *data, size_t size)
{
	for (int pass = 0; pass < 2; pass++) {
		uint32_t max = pass ? FRAME_LEN_MAX : FRAME_PREAUTH_MAX;
		size_t off = 0;
		while (off < size) {
			struct frame f;
			int64_t n = frame_parse(data + off, size - off, max, &f);
			if (n <= 0)
				break;
			check((size_t)n <= size - off);
			check(f.payload + f.len <= data + size);
			check(f.len <= max);
			if (f.type == FRAME_AUTH) {
				struct frame_auth a;
				if (frame_auth_decode(f.payload, f.len, &a) == 0)
					check(f.len == FRAME_AUTH_LEN);
			}
			off += (size_t)n;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t ctl = data[0];
	const uint8_t *in = data + 1;
	const size_t len = size - 1;
	const bool initiator = ctl & FZ_SIDE_INITIATOR;
	const bool client_port = !initiator && (ctl & FZ_PORT_CLIENT);
	const bool fix = ctl & FZ_FIX_MAC;
	enum fz_state st = initiator ? FZ_WAIT_CHALLENGE : FZ_WAIT_AUTH;
	uint8_t nonce_peer[FRAME_NONCE_LEN] = {0};
	struct raft *r = NULL;

	fz_parse_contract(in, len);
	for (size_t off = 0; off < len;) {
		uint32_t max = st != FZ_READY ? FRAME_PREAUTH_MAX
		               : client_port  ? FZ_CLIENT_MAX
		                              : FRAME_LEN_MAX;
		struct frame f;
		int64_t n = frame_parse(in + off, len - off, max, &f);
		if (n <= 0)
			break; /* malformed or over the limit: closed; 0: the rest never came */
		check((size_t)n <= len - off);
		off += (size_t)n;
		if (st != FZ_READY) {
			if (!fz_handshake(&st, &f, client_port, fix, nonce_peer))
				break;
			continue;
		}
		if (initiator) {
			/* An outgoing peer connection takes REMOVED naming this node. */
			if (f.type != FRAME_REMOVED || f.len != 8)
				break;
			uint64_t id;
			memcpy(&id, f.payload, 8);
			if (id == FZ_SELF)
				break; /* the member stops */
		} else if (client_port) {
			if (f.type != FRAME_REQUEST)
				break;
			fz_request_frame(&f);
		} else {
			if (f.type != FRAME_RAFT)
				break;
			if (r == NULL)
				r = fz_raft_new(ctl & FZ_LEADER);
			fz_raft_frame(r, &f);
		}
	}
	raft_destroy(r);
	return 0;
}
