/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The bootstrap record: the membership a member formed its cluster with, kept in its data
 * directory so that a restart finds it whatever --initial-cluster-state says.
 *
 * A member started with --initial-cluster-state new and an empty data directory writes
 * the record before Raft takes its first step (before any vote or entry can be durable);
 * the bootstrap voters never went through a configuration-change entry, so without the
 * record a member restarted before the first snapshot would come back with no membership.
 * A member that joins a running cluster writes none: it learns the membership from the
 * leader's snapshot, which it keeps.
 *
 * File "member.boot" in the data directory, little-endian:
 *   u64 magic | u32 version | u32 n | char self[BOOT_NAME_MAX]
 *   n x { u64 id | char name[BOOT_NAME_MAX] | char addr[BOOT_ADDR_MAX] }
 *   u32 CRC32C of everything before it
 * Strings are NUL-terminated and NUL-padded. Written to a temporary name, fsynced,
 * renamed over the file and the directory fsynced, so a crash leaves the old record or
 * the new one, never a mix.
 */
#ifndef SP_CONTROL_BOOT_RECORD_H
#define SP_CONTROL_BOOT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOOT_RECORD_FILE      "member.boot"
#define BOOT_RECORD_MAGIC     UINT64_C(0x31544f4f42505300) /* "\0SPBOOT1" little-endian */
#define BOOT_RECORD_VERSION   1u
#define BOOT_MEMBERS_MAX      64u
#define BOOT_NAME_MAX         32u /* including the NUL */
#define BOOT_ADDR_MAX         64u /* "host:port" including the NUL */
#define BOOT_MEMBER_BYTES     (8u + BOOT_NAME_MAX + BOOT_ADDR_MAX)
#define BOOT_HEAD_BYTES       (8u + 4u + 4u + BOOT_NAME_MAX)
#define BOOT_RECORD_BYTES_MAX (BOOT_HEAD_BYTES + BOOT_MEMBERS_MAX * BOOT_MEMBER_BYTES + 4u)

struct boot_member {
	uint64_t id; /* nonzero, unique in the record */
	char name[BOOT_NAME_MAX];
	char addr[BOOT_ADDR_MAX]; /* peer address */
};

struct boot_record {
	char self[BOOT_NAME_MAX]; /* the member this data directory belongs to */
	uint32_t n;
	struct boot_member members[BOOT_MEMBERS_MAX];
};

/*
 * Checks r: 1..BOOT_MEMBERS_MAX members with nonzero unique ids, non-empty NUL-terminated
 * names and addresses, names unique, self among them. Returns 0 or -SP_EMALFORMED with a
 * sentence in why.
 */
int boot_record_validate(const struct boot_record *r, char *why, size_t why_len);

/* Encodes a valid r into buf (cap >= BOOT_RECORD_BYTES_MAX is always enough); returns the
 * length, or a negative code (-SP_EMALFORMED, -SP_ETOOBIG). */
int boot_record_encode(const struct boot_record *r, uint8_t *buf, size_t cap, char *why,
                       size_t why_len);

/*
 * Decodes and validates len bytes. Returns 0; -SP_ETRUNCATED (shorter than its member
 * count says), -SP_ECORRUPT (magic or CRC), -SP_EVERSION, -SP_EMALFORMED (fields); each
 * with a sentence in why. Never reads past len.
 */
int boot_record_decode(const uint8_t *buf, size_t len, struct boot_record *r, char *why,
                       size_t why_len);

/* Writes r durably as dir/BOOT_RECORD_FILE. Returns 0 or a negative code with why. */
int boot_record_write(const char *dir, const struct boot_record *r, char *why, size_t why_len);

/*
 * Reads dir/BOOT_RECORD_FILE. Returns 0; -ENOENT when there is none (why says nothing);
 * another negative errno or a decode error, with a sentence naming the file in why.
 */
int boot_record_read(const char *dir, struct boot_record *r, char *why, size_t why_len);

/* True when a and b name the same members (ids, names and addresses, in any order). */
bool boot_record_same_members(const struct boot_record *a, const struct boot_record *b);

#endif
