/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frames on the control plane's TCP connections (between members, and from shardctl):
 *
 *   u32 len | u8 type | payload[len - 1]          (little-endian; len counts type+payload)
 *
 * A connection starts with a mutual challenge-response on the cluster secret, before any
 * other frame is accepted:
 *
 *   acceptor  -> CHALLENGE  { u8 version, nonce_a[32] }
 *   initiator -> AUTH       { u8 role, u64 node id, nonce_i[32], mac_i[32] }
 *   acceptor  -> AUTH_OK    { mac_a[32] }
 *
 * mac_i = HMAC-SHA256(secret, "sp-auth-i" | nonce_a | nonce_i | role | node id) proves the
 * initiator knows the secret; mac_a = HMAC-SHA256(secret, "sp-auth-a" | nonce_i | nonce_a)
 * proves the acceptor does. Nonces are fresh random bytes, so an answer cannot be
 * replayed on another connection. Until AUTH is verified, frames are limited to
 * FRAME_PREAUTH_MAX bytes and any other type closes the connection.
 */
#ifndef SP_CONTROL_FRAME_H
#define SP_CONTROL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR          5u          /* u32 len + u8 type */
#define FRAME_LEN_MAX      (72u << 20) /* a Raft snapshot (64 MiB) and its header fit */
#define FRAME_PREAUTH_MAX  128u        /* before authentication */
#define FRAME_NONCE_LEN    32u
#define FRAME_MAC_LEN      32u
#define FRAME_SECRET_MIN   16u /* bytes of cluster secret at the least */
#define FRAME_SECRET_MAX   1024u
#define FRAME_AUTH_VERSION 1u

enum frame_type {
	FRAME_CHALLENGE = 1,
	FRAME_AUTH,
	FRAME_AUTH_OK,
	FRAME_RAFT,     /* payload: raft_msg_encode() bytes */
	FRAME_REQUEST,  /* shardctl -> cp: u64 request id | u8 op | op-specific body */
	FRAME_RESPONSE, /* cp -> shardctl: JSON */
	FRAME_REMOVED,  /* member -> a removed member: u64 its id; it then stops */
	FRAME_LIVENESS, /* member <-> member: health_msg_encode() bytes (ping or echo) */
	FRAME_TYPE_END,
};

enum frame_role {
	FRAME_ROLE_PEER = 1,   /* another member's control plane */
	FRAME_ROLE_CLIENT = 2, /* shardctl or another client */
};

struct frame {
	uint8_t type;
	uint32_t len; /* payload bytes (without the type byte) */
	const uint8_t *payload;
};

/*
 * Parses one frame from the start of buf[0, len). Returns the bytes it spans (> 0) and
 * fills *f; 0 when more bytes are needed; -SP_ETOOBIG when the length field is over
 * max_len (FRAME_LEN_MAX, or FRAME_PREAUTH_MAX before authentication); -SP_EMALFORMED for
 * a zero length or an unknown type. Never reads past buf + len.
 */
int64_t frame_parse(const uint8_t *buf, size_t len, uint32_t max_len, struct frame *f);

/* Writes a frame header for a payload of payload_len bytes into hdr[FRAME_HDR]. */
void frame_header(uint8_t *hdr, uint8_t type, uint32_t payload_len);

struct frame_auth {
	uint8_t role;
	uint64_t node_id;
	uint8_t nonce[FRAME_NONCE_LEN];
	uint8_t mac[FRAME_MAC_LEN];
};

/* Fills nonce with random bytes (libsodium). Can't fail. */
void frame_random_nonce(uint8_t nonce[FRAME_NONCE_LEN]);

/* The initiator's and acceptor's proofs (see the top of this file). */
void frame_mac_initiator(const uint8_t *secret, size_t secret_len,
                         const uint8_t nonce_a[FRAME_NONCE_LEN],
                         const uint8_t nonce_i[FRAME_NONCE_LEN], uint8_t role, uint64_t node_id,
                         uint8_t mac[FRAME_MAC_LEN]);
void frame_mac_acceptor(const uint8_t *secret, size_t secret_len,
                        const uint8_t nonce_i[FRAME_NONCE_LEN],
                        const uint8_t nonce_a[FRAME_NONCE_LEN], uint8_t mac[FRAME_MAC_LEN]);

/* Constant-time comparison of two MACs. */
bool frame_mac_equal(const uint8_t a[FRAME_MAC_LEN], const uint8_t b[FRAME_MAC_LEN]);

/* Encodes/decodes the AUTH payload (73 bytes). decode returns 0 or -SP_EMALFORMED. */
size_t frame_auth_encode(const struct frame_auth *a, uint8_t *buf);
int frame_auth_decode(const uint8_t *buf, size_t len, struct frame_auth *a);
#define FRAME_AUTH_LEN (1u + 8u + FRAME_NONCE_LEN + FRAME_MAC_LEN)

/*
 * Reads a secret file: its bytes with one trailing newline removed. Returns the length,
 * or a negative code with a sentence in why: -ENOENT etc., -SP_ETOOBIG / -SP_EMALFORMED
 * for a secret shorter than FRAME_SECRET_MIN or longer than FRAME_SECRET_MAX, -EPERM when
 * the file is readable by group or others.
 */
int frame_read_secret(const char *path, uint8_t *secret, size_t cap, char *why, size_t why_len);

#endif
