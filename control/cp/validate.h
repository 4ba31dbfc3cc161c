/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The checks a client's write passes before anything is proposed: its arguments, against
 * the applied state and the operator's limits. Pure (no state of its own, no I/O), so the
 * API's refusals are unit-tested without a cluster. Each returns 0, or a negative code with
 * why: the thing, the value and the limit or the fix.
 *
 * The limits are checked against this member's applied state when it takes the request.
 * Writes in flight are not counted, so a burst can pass a limit by what is in flight; the
 * store's hard limits (cluster_sm.h), checked at apply on every member, still hold.
 */
#ifndef SP_CP_VALIDATE_H
#define SP_CP_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "state/cluster_sm.h"

/* config.set: the key's length (CLUSTER_CONFIG_KEY_MAX) and --config-max-value,
 * --config-max-keys (a new key only), --config-max-bytes (a replaced value's bytes are
 * given back). Returns 0, -EINVAL (no key or no value) or -SP_ETOOBIG. */
int cp_check_config_set(const struct cluster_sm *sm, const struct cp_config *cfg, const char *key,
                        const char *value, char *why, size_t why_len);

/* config.del: a key of at most CLUSTER_CONFIG_KEY_MAX bytes. Returns 0, -EINVAL (no key)
 * or -SP_ETOOBIG. */
int cp_check_config_del(const char *key, char *why, size_t why_len);

/* member.add: a name of 1 to SP_MEMBER_NAME_MAX - 1 bytes, a peer address IPv4:port, a
 * client address (may be empty) that fits, and no member of that name yet. Returns 0 with
 * *id the new member's id, -EINVAL or -SP_EEXISTS. */
int cp_check_member_add(const struct cluster_sm *sm, const char *name, const char *peer,
                        const char *client, uint64_t *id, char *why, size_t why_len);

#endif
