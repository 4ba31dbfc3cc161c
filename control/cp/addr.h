/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Member names and addresses as the control plane takes them from flags and requests:
 * pure functions, no state, shared by the whole process (and unit-tested on their own).
 */
#ifndef SP_CP_ADDR_H
#define SP_CP_ADDR_H

#include <netinet/in.h>
#include <stdint.h>

/*
 * Parses "A.B.C.D:PORT" ("localhost" stands for 127.0.0.1) into *out. The port is 1 to
 * 65535 in plain decimal digits; no host names, no IPv6, nothing after the port. Returns
 * 0 or -EINVAL (*out untouched then).
 */
int cp_parse_addr(const char *text, struct sockaddr_in *out);

/*
 * A member's id, derived from its name (a 32-bit hash, never 0), so that a joining member
 * knows its id before it hears from anyone and its dataplane is known by the same id.
 */
uint64_t cp_member_id(const char *name);

#endif
