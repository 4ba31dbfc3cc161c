/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Error codes shared by every Shardplane module.
 *
 * Functions return 0 or a negative error: either a negated errno value or one of the
 * SP_E* codes below, which sit above errno's range so the two never collide.
 */
#ifndef SP_COMMON_ERRORS_H
#define SP_COMMON_ERRORS_H

#include <stddef.h>

enum sp_error {
	SP_EBASE = 4096,
	SP_ECORRUPT,   /* stored or received data failed its checksum or invariants */
	SP_ETRUNCATED, /* input ended before a complete record or message */
	SP_EMALFORMED, /* input is complete but does not follow the format */
	SP_ETOOBIG,    /* a key, value, frame or batch is over its limit */
	SP_EFULL,      /* a bounded table, ring or buffer has no room */
	SP_ENOTFOUND,  /* the key, member or record does not exist */
	SP_EEXISTS,    /* the key or member already exists */
	SP_EVERSION,   /* a CAS version or format version does not match */
	SP_ENOTLEADER, /* the request needs the Raft leader */
	SP_EBUSY,      /* one operation of this kind is already in progress */
	SP_ENOTNUM,    /* the value is not a number where one is required */
	/* Cluster answers (binary protocol statuses WRONG_PARTITION .. UNAVAILABLE). */
	SP_EWRONGNODE,  /* the key's partition is owned by another node */
	SP_ENOTSERVING, /* the node holds no ownership lease or left the cluster */
	SP_ENOTREADY,   /* the node has not installed its first cluster map */
	SP_EUNAVAIL,    /* the partition's owner did not answer in time */
	SP_ELAST,
};

/*
 * Returns a static description of err, which may be positive or negative, an errno
 * value or an SP_E* code. Never returns NULL.
 */
const char *sp_strerror(int err);

/*
 * Writes a formatted sentence into why (when why is not NULL and why_len > 0) and returns
 * err, so a failing function can explain itself in one line:
 *   return sp_explain(why, why_len, -EINVAL, "--partitions %u is not a power of two", p);
 * err must be negative.
 */
int sp_explain(char *why, size_t why_len, int err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#endif
