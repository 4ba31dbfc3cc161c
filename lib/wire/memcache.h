/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The memcached ASCII protocol over UDP: frame header, command parser and reply writer.
 *
 * The behaviour copies Debian's memcached 1.6 byte for byte, including its quirks: how a
 * command line is split into tokens, how numbers are read (strtoul/strtol rules, 64-bit
 * values truncated to 32 bits), which error line each bad input gets, which errors
 * `noreply` silences, and how replies are cut into datagrams (one "response" per command,
 * and per key of a multi-key get, each response numbered 0..n-1 of n datagrams of at most
 * 1400 bytes). docs/memcache.md lists every case and the few documented differences.
 *
 * Everything here is pure and allocation-free: the parser points into the caller's
 * buffer, the writer writes into the caller's datagram array. No locks, no system calls.
 */
#ifndef SP_WIRE_MEMCACHE_H
#define SP_WIRE_MEMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Limits --------------------------------------------------------------------------- */

/* The frame header in front of every request and reply datagram. */
#define SP_MC_FRAME_BYTES 8u
/* memcached's UDP_MAX_PAYLOAD_SIZE: a reply datagram's UDP payload, header included. */
#define SP_MC_DGRAM_BYTES_MAX 1400u
/* Reply bytes per datagram after the frame header (memcached's UDP_DATA_SIZE). */
#define SP_MC_DGRAM_DATA_MAX (SP_MC_DGRAM_BYTES_MAX - SP_MC_FRAME_BYTES)
/* Longest key (memcached's KEY_MAX_LENGTH). */
#define SP_MC_KEY_MAX 250u
/* Largest value memcached accepts by default (item_size_max, 1 MiB). */
#define SP_MC_VALUE_MAX (1024u * 1024u)
/* Largest request payload after the frame header: a UDP datagram's maximum. */
#define SP_MC_REQUEST_BYTES_MAX (65507u - SP_MC_FRAME_BYTES)
/* memcached tokenizes at most this many tokens at a time (MAX_TOKENS, terminal included). */
#define SP_MC_TOKENS_MAX 24u
/*
 * Most keys one get/gets/gat/gats may name. memcached has no such limit; past it we answer
 * what memcached answers when it runs out of response objects (SERVER_ERROR out of memory
 * writing get response). 1024 one-byte keys take 2 KiB of request.
 */
#define SP_MC_GET_KEYS_MAX 1024u
/* Exptimes up to this are relative seconds; larger ones are absolute Unix times. */
#define SP_MC_REALTIME_MAXDELTA_S 2592000
/* memcached's reqs_per_event: replies are flushed after the 21st, 41st, ... command. */
#define SP_MC_REQS_PER_EVENT 20u
/* Longest reply line the writer formats itself ("VALUE " key flags bytes cas "\r\n"). */
#define SP_MC_LINE_BYTES_MAX (6u + SP_MC_KEY_MAX + 3u * 21u + 2u)

/* ---- Frame header ---------------------------------------------------------------------- */

/* The 8-byte header, big-endian on the wire. */
struct sp_mc_frame {
	uint16_t request_id; /* echoed in every reply datagram */
	uint16_t seq;        /* datagram number within one response, from 0 */
	uint16_t count;      /* datagrams in that response; a request must say 1 */
	uint16_t reserved;   /* 0 on replies; ignored on requests */
};

/* Reads the header from buf. Returns 0, or -SP_ETRUNCATED when len < SP_MC_FRAME_BYTES. */
int sp_mc_frame_decode(const uint8_t *buf, size_t len, struct sp_mc_frame *out);

/* Writes the header to buf (SP_MC_FRAME_BYTES bytes). Can't fail. */
void sp_mc_frame_encode(uint8_t *buf, const struct sp_mc_frame *f);

/*
 * Whether memcached would process a request with this header and this many payload bytes
 * after it: it silently drops multi-datagram requests (count != 1) and empty payloads.
 */
bool sp_mc_frame_acceptable(const struct sp_mc_frame *f, size_t payload_len);

/* ---- Numbers as memcached reads them ---------------------------------------------------- */

/* safe_strtoul: 32-bit result of a 64-bit strtoul; false on junk, overflow or "-N". */
bool sp_mc_read_u32(const char *s, size_t len, uint32_t *out);
/* safe_strtol: 32-bit result of a 64-bit strtol; false on junk or overflow. */
bool sp_mc_read_i32(const char *s, size_t len, int32_t *out);
/* safe_strtoull: false on junk, overflow, or a negative number that wrapped. */
bool sp_mc_read_u64(const char *s, size_t len, uint64_t *out);

/* ---- Commands ---------------------------------------------------------------------------- */

enum sp_mc_kind {
	SP_MC_GET = 0, /* get / bget */
	SP_MC_GETS,
	SP_MC_GAT,
	SP_MC_GATS,
	SP_MC_SET,
	SP_MC_ADD,
	SP_MC_REPLACE,
	SP_MC_APPEND,
	SP_MC_PREPEND,
	SP_MC_CAS,
	SP_MC_DELETE,
	SP_MC_INCR,
	SP_MC_DECR,
	SP_MC_TOUCH,
	SP_MC_FLUSH_ALL,
	SP_MC_VERSION,
	SP_MC_VERBOSITY,
	SP_MC_STATS,       /* general stats (no argument) */
	SP_MC_STATS_RESET, /* "stats reset" */
	SP_MC_QUIT,        /* flush what is queued, ignore the rest of the datagram */
	SP_MC_REPLY,       /* nothing to execute: answer cmd.reply (an error line) */
	SP_MC_KIND_COUNT,
};

/* Every fixed line the protocol answers with. sp_mc_reply_text() gives the bytes. */
enum sp_mc_reply {
	SP_MC_R_NONE = 0,
	SP_MC_R_ERROR,
	SP_MC_R_BAD_FORMAT,      /* CLIENT_ERROR bad command line format */
	SP_MC_R_BAD_DELETE,      /* CLIENT_ERROR bad command line format.  Usage: ... */
	SP_MC_R_BAD_CHUNK,       /* CLIENT_ERROR bad data chunk */
	SP_MC_R_BAD_EXPTIME,     /* CLIENT_ERROR invalid exptime argument */
	SP_MC_R_BAD_DELTA,       /* CLIENT_ERROR invalid numeric delta argument */
	SP_MC_R_NON_NUMERIC,     /* CLIENT_ERROR cannot increment or decrement non-numeric value */
	SP_MC_R_TOO_LARGE,       /* SERVER_ERROR object too large for cache */
	SP_MC_R_OOM_STORE,       /* SERVER_ERROR out of memory storing object */
	SP_MC_R_OOM_GET,         /* SERVER_ERROR out of memory writing get response */
	SP_MC_R_SHUTDOWN,        /* ERROR: shutdown not enabled */
	SP_MC_R_CROSS_PARTITION, /* SERVER_ERROR key not owned here (see docs/memcache.md) */
	SP_MC_R_BUSY,            /* SERVER_ERROR temporary failure (concurrent read retries) */
	SP_MC_R_STORED,
	SP_MC_R_NOT_STORED,
	SP_MC_R_EXISTS,
	SP_MC_R_NOT_FOUND,
	SP_MC_R_DELETED,
	SP_MC_R_TOUCHED,
	SP_MC_R_OK,
	SP_MC_R_RESET,
	SP_MC_R_END,
	SP_MC_R_COUNT,
};

/* Text of a reply line, without "\r\n". Never NULL ("" for SP_MC_R_NONE). */
const char *sp_mc_reply_text(enum sp_mc_reply r);

/* One parsed command. Pointers point into the buffer given to sp_mc_parse(). */
struct sp_mc_cmd {
	enum sp_mc_kind kind;
	/* SP_MC_REPLY: the answer; also set with kind SP_MC_SET.. when too_large is true. */
	enum sp_mc_reply reply;
	/* The command asked for no reply: its answer (error or not) is suppressed. */
	bool noreply;
	/* SP_MC_REPLY only: memcached drops every reply queued since the last flush first
	 * (a get with an over-long key), or also stops reading the datagram (close). */
	bool cull;
	bool close;
	/* Storage command whose value is over the limit: answer reply (TOO_LARGE), do not
	 * store; a SET also deletes the key (memcached unlinks the old item). */
	bool too_large;
	/* The key, for single-key commands; the first key for get-type commands. */
	const char *key;
	uint32_t key_len;
	/* get-type commands: the key list "k1 k2 ..." (walk it with sp_mc_next_key()). */
	const char *keys;
	uint32_t keys_len;
	uint32_t key_count;
	/* storage commands */
	uint32_t flags;
	int32_t exptime; /* as memcached read it: <0, relative, or absolute; see docs */
	uint32_t value_len;
	const uint8_t *value;
	uint64_t cas_unique;
	/* incr/decr */
	uint64_t delta;
	/* flush_all: has_delay = a delay argument was given */
	bool has_delay;
	int32_t delay;
	/* verbosity */
	uint32_t level;
};

/*
 * Parses the command at the start of buf (len bytes): one line, and for storage commands
 * the data block after it. value_max is the largest value accepted (SP_MC_VALUE_MAX or a
 * store's smaller limit); a larger declared length gives too_large and the data bytes that
 * are present are skipped, as memcached swallows them.
 *
 * Returns 0 with *cmd filled and *consumed = bytes used, or -SP_ETRUNCATED when buf holds
 * no complete line or the data block is incomplete (memcached would wait for more; over
 * UDP the rest of the datagram is dropped). Never reads outside buf. Can't fail otherwise:
 * every malformed input becomes kind SP_MC_REPLY with the line memcached answers.
 */
int sp_mc_parse(const uint8_t *buf, size_t len, size_t value_max, struct sp_mc_cmd *cmd,
                size_t *consumed);

/*
 * Iterates the keys of a get-type command: *pos starts at 0. Returns true with the next key
 * in *key and *key_len, false when there are no more. Keys are never empty.
 */
bool sp_mc_next_key(const struct sp_mc_cmd *cmd, uint32_t *pos, const char **key,
                    uint32_t *key_len);

/* Whether kind is one of the storage commands (set, add, replace, append, prepend, cas). */
bool sp_mc_kind_is_storage(enum sp_mc_kind kind);
/* Whether kind is get, gets, gat or gats. */
bool sp_mc_kind_is_get(enum sp_mc_kind kind);

/* ---- Reply writer ------------------------------------------------------------------------ */

/*
 * The reply datagrams of one request, in a caller-owned array of `cap` slots of
 * SP_MC_DGRAM_BYTES_MAX bytes each (slot i at buf + i * SP_MC_DGRAM_BYTES_MAX, its length in
 * lens[i]). Each datagram starts with the frame header.
 *
 * The writer follows memcached's transmit rules: a response of n bytes becomes
 * ceil(n / 1392) datagrams (one header-only datagram with count 0 when n is 0); responses
 * silenced by noreply, and empty responses that directly follow a sent one within the
 * same flush, produce nothing.
 */
struct sp_mc_out {
	uint8_t *buf;
	uint16_t *lens;
	uint32_t cap;
	uint32_t n; /* datagrams written */
	uint16_t request_id;
	uint32_t flush_mark; /* n at the last flush: what a cull drops back to */
	bool absorbing;      /* the last thing in this flush was a sent response */
};

/* One piece of a response. */
struct sp_mc_seg {
	const void *data;
	size_t len;
};

/* Starts an empty reply. cap >= 1. Can't fail. */
void sp_mc_out_init(struct sp_mc_out *o, uint8_t *buf, uint16_t *lens, uint32_t cap,
                    uint16_t request_id);

/* Datagram slot i (i < o->n) and its length. */
uint8_t *sp_mc_out_dgram(const struct sp_mc_out *o, uint32_t i);

/*
 * Datagrams a response of total bytes needs right now: 0 when it would be absorbed. Can't
 * fail.
 */
uint32_t sp_mc_out_need(const struct sp_mc_out *o, size_t total);

/*
 * Appends one response made of nseg pieces. Returns 0, or -SP_EFULL when the datagrams
 * it needs do not fit (nothing is written then).
 */
int sp_mc_out_resp(struct sp_mc_out *o, const struct sp_mc_seg *segs, unsigned nseg);

/* Appends one line ("text\r\n") as a response. 0 or -SP_EFULL. */
int sp_mc_out_line(struct sp_mc_out *o, const char *text, size_t len);

/* A response silenced by noreply: writes nothing, keeps the flush state. Can't fail. */
void sp_mc_out_skip(struct sp_mc_out *o);

/* memcached sent everything queued: the next response starts a new flush. Can't fail. */
void sp_mc_out_flush(struct sp_mc_out *o);

/* memcached dropped everything queued since the last flush. Can't fail. */
void sp_mc_out_cull(struct sp_mc_out *o);

/*
 * Formats "VALUE <key> <flags> <bytes>[ <cas>]\r\n" into buf (SP_MC_LINE_BYTES_MAX bytes).
 * Returns its length. key_len <= SP_MC_KEY_MAX. Can't fail.
 */
size_t sp_mc_format_value_line(char *buf, const char *key, size_t key_len, uint32_t flags,
                               uint32_t bytes, bool with_cas, uint64_t cas);

/* Formats v in decimal followed by "\r\n"; buf holds 22 bytes. Returns the length. */
size_t sp_mc_format_number_line(char *buf, uint64_t v);

#endif
