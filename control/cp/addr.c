/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "addr.h"
#include "common/keyhash.h"
#include "common/verify.h"

#define HOST_MAX 64u

uint64_t
cp_member_id(const char *name)
{
	ASSERT(name != NULL);
	uint64_t h = sp_key_hash(name, strlen(name));
	uint32_t id = (uint32_t)(h ^ (h >> 32));
	/* Below 2^32: a member's id is its dataplane's node id too (cluster_sm.h). */
	return id ? id : 1;
}

/* A port: 1 to 65535, decimal digits only (strtoul would take spaces and signs). */
static bool
parse_port(const char *s, uint16_t *port)
{
	uint32_t v = 0;
	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10u + (uint32_t)(*s - '0');
		if (v > 65535u)
			return false;
	}
	if (v == 0)
		return false;
	ASSERT(v <= 65535u);
	*port = (uint16_t)v;
	return true;
}

int
cp_parse_addr(const char *text, struct sockaddr_in *out)
{
	char host[HOST_MAX];
	struct in_addr ip;
	uint16_t port;
	ASSERT(text != NULL);
	ASSERT(out != NULL);
	const char *colon = strrchr(text, ':');

	if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (!parse_port(colon + 1, &port) || inet_pton(AF_INET, host, &ip) != 1)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons(port);
	out->sin_addr = ip;
	return 0;
}
