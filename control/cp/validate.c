/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "common/errors.h"
#include "common/verify.h"
#include "validate.h"

int
cp_check_config_set(const struct cluster_sm *sm, const struct cp_config *cfg, const char *key,
                    const char *value, char *why, size_t why_len)
{
	ASSERT(sm != NULL);
	ASSERT(cfg->config_max_keys <= CLUSTER_CONFIG_KEYS_MAX);
	if (key == NULL || value == NULL) {
		snprintf(why, why_len, "config.set needs \"key\" and \"value\"");
		return -EINVAL;
	}
	size_t kl = strlen(key), vl = strlen(value);
	if (kl > CLUSTER_CONFIG_KEY_MAX) {
		snprintf(why, why_len, "key of %zu bytes is longer than %u", kl,
		         CLUSTER_CONFIG_KEY_MAX);
		return -SP_ETOOBIG;
	}
	if (vl > cfg->config_max_value) {
		snprintf(why, why_len,
		         "value of %zu bytes is over the limit of %u (--config-max-value)", vl,
		         cfg->config_max_value);
		return -SP_ETOOBIG;
	}
	const struct cluster_config_item *old = cluster_sm_config_get(sm, key);
	if (old == NULL && sm->n_config >= cfg->config_max_keys) {
		snprintf(why, why_len,
		         "the configuration holds its limit of %u keys (--config-max-keys)",
		         cfg->config_max_keys);
		return -SP_ETOOBIG;
	}
	uint64_t bytes = sm->config_bytes + cluster_config_item_bytes((uint32_t)kl, (uint32_t)vl);
	if (old != NULL) {
		ASSERT(sm->config_bytes >= cluster_config_item_bytes(old->key_len, old->value_len));
		bytes -= cluster_config_item_bytes(old->key_len, old->value_len);
	}
	if (bytes > cfg->config_max_bytes) {
		snprintf(why, why_len,
		         "the configuration would hold %" PRIu64
		         " bytes, over its limit of %" PRIu64 " (--config-max-bytes)",
		         bytes, cfg->config_max_bytes);
		return -SP_ETOOBIG;
	}
	return 0;
}

int
cp_check_config_del(const char *key, char *why, size_t why_len)
{
	if (key == NULL) {
		snprintf(why, why_len, "config.del needs \"key\"");
		return -EINVAL;
	}
	size_t kl = strlen(key);
	if (kl > CLUSTER_CONFIG_KEY_MAX) {
		snprintf(why, why_len, "key of %zu bytes is longer than %u", kl,
		         CLUSTER_CONFIG_KEY_MAX);
		return -SP_ETOOBIG;
	}
	return 0;
}

int
cp_check_member_add(const struct cluster_sm *sm, const char *name, const char *peer,
                    const char *client, uint64_t *id, char *why, size_t why_len)
{
	struct sockaddr_in sa;
	ASSERT(sm != NULL);
	ASSERT(id != NULL);
	if (client == NULL)
		client = "";
	if (name == NULL || peer == NULL || name[0] == '\0' || strlen(name) >= SP_MEMBER_NAME_MAX ||
	    cp_parse_addr(peer, &sa) != 0 || strlen(client) >= CLUSTER_ADDR_MAX) {
		snprintf(why, why_len,
		         "member.add needs \"name\" (< %u bytes) and \"peer\" (IPv4:port)",
		         SP_MEMBER_NAME_MAX);
		return -EINVAL;
	}
	*id = cp_member_id(name);
	ASSERT(*id != 0);
	if (cluster_sm_member(sm, *id) != NULL) {
		snprintf(why, why_len, "a member named '%s' exists", name);
		return -SP_EEXISTS;
	}
	return 0;
}
