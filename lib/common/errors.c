/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"
#include "common/verify.h"

static const char *const sp_error_text[SP_ELAST - SP_EBASE] = {
        [0] = "unknown Shardplane error",
        [SP_ECORRUPT - SP_EBASE] = "data is corrupt (checksum or invariant failed)",
        [SP_ETRUNCATED - SP_EBASE] = "input is truncated",
        [SP_EMALFORMED - SP_EBASE] = "input is malformed",
        [SP_ETOOBIG - SP_EBASE] = "over the size limit",
        [SP_EFULL - SP_EBASE] = "no room left",
        [SP_ENOTFOUND - SP_EBASE] = "not found",
        [SP_EEXISTS - SP_EBASE] = "already exists",
        [SP_EVERSION - SP_EBASE] = "version mismatch",
        [SP_ENOTLEADER - SP_EBASE] = "not the leader",
        [SP_EBUSY - SP_EBASE] = "another operation of this kind is in progress",
        [SP_ENOTNUM - SP_EBASE] = "value is not a number",
        [SP_EWRONGNODE - SP_EBASE] = "the key's partition is owned by another node (the "
                                     "cluster map changed; try again)",
        [SP_ENOTSERVING - SP_EBASE] = "the node is not serving (no ownership lease, or "
                                      "removed from the cluster); ask another node",
        [SP_ENOTREADY - SP_EBASE] = "the node has no cluster map yet; try again shortly "
                                    "or ask another node",
        [SP_EUNAVAIL - SP_EBASE] = "the key's owner node did not answer in time",
};

const char *
sp_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err > SP_EBASE && err < SP_ELAST)
		return sp_error_text[err - SP_EBASE];
	if (err == 0)
		return "success";
	if (err < SP_EBASE)
		return strerror(err);
	return sp_error_text[0];
}

int
sp_explain(char *why, size_t why_len, int err, const char *fmt, ...)
{
	va_list ap;

	ASSERT(err < 0);
	if (why == NULL || why_len == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return err;
}
