/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-region: creates, writes and shows a node's shared region. The control plane
 * is the region's writer in production; this tool stands in for it in tests and lets an
 * operator look inside.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/region.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/verify.h"

#define TOOL_ASSIGN_MAX   4096u /* --assign options in one set-map */
#define TOOL_MAP_LINE_MAX 256u  /* bytes of one --map-file line */

static const char usage_text[] =
        "usage: shardplane-region COMMAND PATH [options]\n"
        "\n"
        "Commands:\n"
        "  create PATH [--partitions-max N]\n"
        "      create (or truncate) a region for maps of up to N partitions (power of two,\n"
        "      default and maximum 65536). Use a file on hugetlbfs or /dev/shm.\n"
        "  set-map PATH [--self ID] [--partitions P] [--workers W] [--epoch E]\n"
        "               [--member SPEC]... [--assign P=NODE:WORKER]... [--map-file FILE]\n"
        "               [--spread]\n"
        "      publish a cluster state. Without --member the members are the published\n"
        "      ones, or else this node alone (id --self, default 1); --workers W sets this\n"
        "      node's worker count (default 1). The map starts as the published one when\n"
        "      P and the members are unchanged, otherwise (or with --spread) as the\n"
        "      default spread (partition p -> member p %% M, worker (p / M) %% its workers);\n"
        "      then --map-file lines 'PARTITION NODE WORKER' and --assign override it.\n"
        "      P defaults to the published P (else 16); E to the published epoch + 1.\n"
        "      SPEC: id=N,name=S,ip=A.B.C.D,mac=XX:XX:XX:XX:XX:XX,port=N,mcport=N,\n"
        "            workers=N,state=active|learner|leaving|down (id and workers needed)\n"
        "  show PATH [--map]\n"
        "      print the header, the published state (and with --map every partition),\n"
        "      and the dataplane's heartbeat.\n"
        "  heartbeat PATH [--state S] [--epoch E] [--pid N] [--workers W] [--partitions P]\n"
        "               [--serving S]\n"
        "      write a dataplane heartbeat now (S: starting|running|switching|stopping|\n"
        "      stopped, default running; serving: serving|not ready|no lease|removed,\n"
        "      default serving), as a dataplane would.\n"
        "  lease PATH (--ms N | --forever | --revoke | --removed)\n"
        "      write the node's ownership lease as the control plane does: valid for N ms\n"
        "      from now, without end (tests), revoked now, or the node removed.\n"
        "\n"
        "Exit status: 0 on success, 1 on failure, 2 on a usage error.\n";

/* Parses a whole decimal number in [min, max]. Returns 0 or -EINVAL. */
static int
parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	ASSERT(out != NULL);
	ASSERT(min <= max);
	if (text == NULL || *text == '\0' || *text == '-' || *text == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int
parse_mac(const char *text, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;

	ASSERT(text != NULL);
	ASSERT(mac != NULL);
	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
	           &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static int
parse_member_state(const char *text, uint32_t *out)
{
	ASSERT(text != NULL);
	ASSERT(out != NULL);
	for (uint32_t s = SP_MEMBER_ACTIVE; s < SP_MEMBER_STATE_LAST; s++) {
		if (strcmp(text, sp_member_state_name(s)) == 0) {
			*out = s;
			return 0;
		}
	}
	return -EINVAL;
}

/* Parses one key=value of a member SPEC into m. Prints the problem and returns -EINVAL. */
static int
member_field(struct sp_member *m, const char *key, const char *val)
{
	struct in_addr a;
	uint64_t v;

	ASSERT(key != NULL);
	ASSERT(val != NULL);
	if (strcmp(key, "id") == 0 && parse_u64(val, 1, UINT32_MAX, &v) == 0)
		m->node_id = (uint32_t)v;
	else if (strcmp(key, "name") == 0 && strlen(val) < SP_MEMBER_NAME_MAX)
		memcpy(m->name, val, strlen(val) + 1);
	else if (strcmp(key, "ip") == 0 && inet_pton(AF_INET, val, &a) == 1)
		m->ipv4_be = a.s_addr;
	else if (strcmp(key, "mac") == 0 && parse_mac(val, m->mac) == 0)
		;
	else if (strcmp(key, "port") == 0 && parse_u64(val, 1, UINT16_MAX, &v) == 0)
		m->binary_port = (uint16_t)v;
	else if (strcmp(key, "mcport") == 0 && parse_u64(val, 0, UINT16_MAX, &v) == 0)
		m->memcached_port = (uint16_t)v;
	else if (strcmp(key, "workers") == 0 && parse_u64(val, 1, SP_WORKERS_MAX, &v) == 0)
		m->worker_count = (uint16_t)v;
	else if (strcmp(key, "state") == 0 && parse_member_state(val, &m->state) == 0)
		;
	else {
		fprintf(stderr, "shardplane-region: --member: bad field '%s=%s' (see --help)\n",
		        key, val);
		return -EINVAL;
	}
	return 0;
}

/* Parses a member SPEC ("id=2,name=n2,...") into m. */
static int
parse_member(const char *spec, struct sp_member *m)
{
	char buf[512];
	char *save = NULL;

	ASSERT(spec != NULL);
	ASSERT(m != NULL);
	if (strlen(spec) >= sizeof(buf)) {
		fprintf(stderr, "shardplane-region: --member: spec is over %zu bytes\n",
		        sizeof(buf) - 1);
		return -EINVAL;
	}
	memcpy(buf, spec, strlen(spec) + 1);
	memset(m, 0, sizeof(*m));
	m->state = SP_MEMBER_ACTIVE;
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (eq == NULL) {
			fprintf(stderr, "shardplane-region: --member: '%s' is not key=value\n",
			        tok);
			return -EINVAL;
		}
		*eq = '\0';
		if (member_field(m, tok, eq + 1) < 0)
			return -EINVAL;
	}
	if (m->node_id == 0 || m->worker_count == 0) {
		fprintf(stderr, "shardplane-region: --member '%s': id= and workers= are required\n",
		        spec);
		return -EINVAL;
	}
	if (m->name[0] == '\0')
		snprintf(m->name, sizeof(m->name), "node%u", m->node_id);
	return 0;
}

/* Parses "P=NODE:WORKER". */
static int
parse_assign(const char *text, uint32_t *partition, uint32_t *node, uint32_t *worker)
{
	char buf[64];
	char *eq, *colon;
	uint64_t p, n, w;

	ASSERT(text != NULL);
	ASSERT(partition != NULL);
	if (strlen(text) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, strlen(text) + 1);
	eq = strchr(buf, '=');
	colon = eq ? strchr(eq, ':') : NULL;
	if (eq == NULL || colon == NULL)
		return -EINVAL;
	*eq = '\0';
	*colon = '\0';
	if (parse_u64(buf, 0, SP_PARTITIONS_MAX - 1, &p) < 0 ||
	    parse_u64(eq + 1, 1, UINT32_MAX, &n) < 0 ||
	    parse_u64(colon + 1, 0, SP_WORKERS_MAX - 1, &w) < 0)
		return -EINVAL;
	*partition = (uint32_t)p;
	*node = (uint32_t)n;
	*worker = (uint32_t)w;
	return 0;
}

static int
set_entry(struct sp_cluster_state *st, uint32_t p, uint32_t node, uint32_t worker,
          const char *where)
{
	ASSERT(st->partitions <= st->map_capacity);
	ASSERT(worker < SP_WORKERS_MAX);
	if (p >= st->partitions) {
		fprintf(stderr, "shardplane-region: %s: partition %u is not below P=%u\n", where, p,
		        st->partitions);
		return -EINVAL;
	}
	st->map[p].node_id = node;
	st->map[p].worker = (uint16_t)worker;
	st->map[p].flags = 0;
	return 0;
}

/* Applies a map file: one 'PARTITION NODE WORKER' per line, '#' comments, blank lines. */
static int
apply_map_file(struct sp_cluster_state *st, const char *path)
{
	char line[TOOL_MAP_LINE_MAX];
	char where[TOOL_MAP_LINE_MAX + 64];
	unsigned int lineno = 0;
	int rc = 0;
	FILE *f = fopen(path, "r");

	ASSERT(st->partitions <= st->map_capacity);
	if (f == NULL) {
		fprintf(stderr, "shardplane-region: --map-file %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		char p[32], n[32], w[32], extra[2];
		uint64_t pv, nv, wv;
		int fields;

		lineno++;
		snprintf(where, sizeof(where), "--map-file %s line %u", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "shardplane-region: %s: longer than %u bytes\n", where,
			        TOOL_MAP_LINE_MAX - 2);
			rc = -EINVAL;
			break;
		}
		if (line[strspn(line, " \t\r\n")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		fields = sscanf(line, "%31s %31s %31s %1s", p, n, w, extra);
		if (fields != 3 || parse_u64(p, 0, SP_PARTITIONS_MAX - 1, &pv) < 0 ||
		    parse_u64(n, 1, UINT32_MAX, &nv) < 0 ||
		    parse_u64(w, 0, SP_WORKERS_MAX - 1, &wv) < 0) {
			fprintf(stderr,
			        "shardplane-region: %s: expected 'PARTITION NODE WORKER' numbers\n",
			        where);
			rc = -EINVAL;
			break;
		}
		rc = set_entry(st, (uint32_t)pv, (uint32_t)nv, (uint32_t)wv, where);
	}
	fclose(f);
	return rc;
}

/* The default spread over all members: p -> member p % M, worker (p / M) % its workers. */
static void
spread_map(struct sp_cluster_state *st)
{
	uint32_t m = st->member_count;

	ASSERT(m > 0);
	for (uint32_t p = 0; p < st->partitions; p++) {
		const struct sp_member *mem = &st->members[p % m];

		st->map[p].node_id = mem->node_id;
		st->map[p].worker = (uint16_t)((p / m) % mem->worker_count);
		st->map[p].flags = 0;
	}
	ASSERT(st->map[0].node_id == st->members[0].node_id);
}

/* After getopt: anything left over is a usage error. Returns 0 or 2. */
static int
no_extra_args(int argc, char **argv, const char *cmd)
{
	ASSERT(cmd != NULL);
	if (optind >= argc)
		return 0;
	fprintf(stderr, "shardplane-region: %s: unexpected argument '%s' (see --help)\n", cmd,
	        argv[optind]);
	return 2;
}

static int
open_region(const char *path, bool writable, struct sp_region **r)
{
	char why[SP_CLUSTER_WHY_MAX];
	int rc = sp_region_open(path, writable, r, why, sizeof(why));

	ASSERT(rc <= 0);
	if (rc < 0)
		fprintf(stderr, "shardplane-region: %s\n", why);
	return rc;
}

static int
cmd_create(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {{"partitions-max", required_argument, NULL, 'p'},
	                                     {NULL, 0, NULL, 0}};
	char why[SP_CLUSTER_WHY_MAX];
	uint64_t pmax = SP_PARTITIONS_MAX;
	struct sp_region *r;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'p' || parse_u64(optarg, 1, SP_PARTITIONS_MAX, &pmax) < 0 ||
		    !sp_is_power_of_two(pmax)) {
			fprintf(stderr,
			        "shardplane-region: create: --partitions-max takes a power "
			        "of two in [1, %u]\n",
			        SP_PARTITIONS_MAX);
			return 2;
		}
	}
	if (no_extra_args(argc, argv, "create") != 0)
		return 2;
	rc = sp_region_create(path, (uint32_t)pmax, &r, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "shardplane-region: %s\n", why);
		return 1;
	}
	printf("created %s: capacity %" PRIu64 " partitions, %u members\n", path, pmax,
	       SP_MEMBERS_MAX);
	sp_region_close(r);
	return 0;
}

struct set_map_args {
	uint64_t self;
	uint64_t partitions;
	uint64_t workers;
	uint64_t epoch;
	bool self_set;
	bool workers_set;
	bool spread;
	const char *map_file;
	uint32_t assign_count;
	const char *assign[TOOL_ASSIGN_MAX];
};

/* Builds the state of a set-map from the published one (old, or NULL) and the arguments;
 * st->members holds the --member arguments (member_count of them). */
static int
build_state(struct sp_region *r, struct sp_cluster_state *st, const struct sp_cluster_state *old,
            const struct set_map_args *a)
{
	bool keep_map = old != NULL && !a->spread && !a->workers_set && st->member_count == 0 &&
	                old->partitions == a->partitions;
	uint32_t p, n, w;

	ASSERT(a->partitions > 0);
	ASSERT(st->map_capacity == sp_region_partitions_max(r));
	st->self_node_id = a->self_set || old == NULL ? (uint32_t)a->self : old->self_node_id;
	if (st->member_count == 0 && old != NULL) {
		memcpy(st->members, old->members, sizeof(st->members));
		st->member_count = old->member_count;
	} else if (st->member_count == 0) {
		struct sp_member *m = &st->members[0];

		memset(m, 0, sizeof(*m));
		m->node_id = st->self_node_id;
		m->state = SP_MEMBER_ACTIVE;
		snprintf(m->name, sizeof(m->name), "node%u", m->node_id);
		m->worker_count = (uint16_t)a->workers;
		st->member_count = 1;
	}
	for (uint32_t i = 0; a->workers_set && i < st->member_count; i++) {
		if (st->members[i].node_id == st->self_node_id)
			st->members[i].worker_count = (uint16_t)a->workers;
	}
	if (a->partitions > sp_region_partitions_max(r)) {
		fprintf(stderr,
		        "shardplane-region: set-map: P=%" PRIu64 " is over the region's "
		        "capacity %u\n",
		        a->partitions, sp_region_partitions_max(r));
		return -EINVAL;
	}
	st->partitions = (uint32_t)a->partitions;
	if (keep_map)
		memcpy(st->map, old->map, st->partitions * sizeof(st->map[0]));
	else
		spread_map(st);
	if (a->map_file != NULL && apply_map_file(st, a->map_file) < 0)
		return -EINVAL;
	for (uint32_t i = 0; i < a->assign_count; i++) {
		if (parse_assign(a->assign[i], &p, &n, &w) < 0) {
			fprintf(stderr,
			        "shardplane-region: --assign '%s': expected P=NODE:WORKER\n",
			        a->assign[i]);
			return -EINVAL;
		}
		if (set_entry(st, p, n, w, "--assign") < 0)
			return -EINVAL;
	}
	return 0;
}

static int
cmd_set_map(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {{"self", required_argument, NULL, 's'},
	                                     {"partitions", required_argument, NULL, 'p'},
	                                     {"workers", required_argument, NULL, 'w'},
	                                     {"epoch", required_argument, NULL, 'e'},
	                                     {"member", required_argument, NULL, 'm'},
	                                     {"assign", required_argument, NULL, 'a'},
	                                     {"map-file", required_argument, NULL, 'f'},
	                                     {"spread", no_argument, NULL, 'S'},
	                                     {NULL, 0, NULL, 0}};
	struct set_map_args a = {.self = 1, .workers = 1};
	char why[SP_CLUSTER_WHY_MAX];
	struct sp_cluster_state *st = NULL, *old = NULL;
	struct sp_region *r = NULL;
	int c, rc, ret = 1;
	uint32_t members = 0;
	static struct sp_member member_args[SP_MEMBERS_MAX];

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		rc = 0;
		a.self_set = a.self_set || c == 's';
		a.workers_set = a.workers_set || c == 'w';
		if (c == 's')
			rc = parse_u64(optarg, 1, UINT32_MAX, &a.self);
		else if (c == 'S')
			a.spread = true;
		else if (c == 'p')
			rc = parse_u64(optarg, 1, SP_PARTITIONS_MAX, &a.partitions) < 0 ||
			                     !sp_is_power_of_two(a.partitions)
			             ? -EINVAL
			             : 0;
		else if (c == 'w')
			rc = parse_u64(optarg, 1, SP_WORKERS_MAX, &a.workers);
		else if (c == 'e')
			rc = parse_u64(optarg, 1, UINT64_MAX, &a.epoch);
		else if (c == 'f')
			a.map_file = optarg;
		else if (c == 'a' && a.assign_count < TOOL_ASSIGN_MAX)
			a.assign[a.assign_count++] = optarg;
		else if (c == 'm' && members < SP_MEMBERS_MAX)
			rc = parse_member(optarg, &member_args[members++]);
		else
			rc = -EINVAL;
		if (rc < 0) {
			fprintf(stderr,
			        "shardplane-region: set-map: bad or too many '%s' "
			        "(see --help)\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (no_extra_args(argc, argv, "set-map") != 0)
		return 2;
	if (open_region(path, true, &r) < 0)
		return 1;
	st = sp_cluster_state_new(sp_region_partitions_max(r));
	old = sp_cluster_state_new(sp_region_partitions_max(r));
	if (st == NULL || old == NULL) {
		fprintf(stderr, "shardplane-region: out of memory\n");
		goto out;
	}
	rc = sp_region_read(r, old, why, sizeof(why));
	if (rc == -SP_ECORRUPT) {
		/* A corrupt publication is replaced by one built from the arguments alone. */
		fprintf(stderr,
		        "shardplane-region: warning: the published state is unreadable (%s); "
		        "building the new one from the arguments only\n",
		        why);
		rc = -SP_ENOTFOUND;
	} else if (rc < 0 && rc != -SP_ENOTFOUND) {
		fprintf(stderr, "shardplane-region: cannot read the published state: %s\n", why);
		goto out;
	}
	if (a.partitions == 0)
		a.partitions = rc == 0 ? old->partitions : SP_MIN(16u, sp_region_partitions_max(r));
	if (a.epoch == 0)
		a.epoch = rc == 0 ? old->epoch + 1 : 1;
	st->epoch = a.epoch;
	st->member_count = members;
	memcpy(st->members, member_args, members * sizeof(member_args[0]));
	if (build_state(r, st, rc == 0 ? old : NULL, &a) < 0)
		goto out;
	rc = sp_region_publish(r, st, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "shardplane-region: set-map refused: %s\n", why);
		goto out;
	}
	printf("published epoch %" PRIu64 " generation %" PRIu64 ": %u partitions, %u members\n",
	       st->epoch, sp_region_generation(r), st->partitions, st->member_count);
	ret = 0;
out:
	sp_cluster_state_free(st);
	sp_cluster_state_free(old);
	sp_region_close(r);
	return ret;
}

static void
show_state(const struct sp_cluster_state *st, bool with_map)
{
	char ip[INET_ADDRSTRLEN];

	ASSERT(st->member_count <= SP_MEMBERS_MAX);
	ASSERT(st->partitions <= st->map_capacity);
	printf("state: epoch %" PRIu64 " generation %" PRIu64 " partitions %u self %u members %u\n",
	       st->epoch, st->generation, st->partitions, st->self_node_id, st->member_count);
	for (uint32_t i = 0; i < st->member_count; i++) {
		const struct sp_member *m = &st->members[i];
		struct in_addr a = {.s_addr = m->ipv4_be};
		uint32_t owned = 0;

		for (uint32_t p = 0; p < st->partitions; p++)
			owned += st->map[p].node_id == m->node_id;
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		printf("member %u name=%s ip=%s mac=%02x:%02x:%02x:%02x:%02x:%02x port=%u "
		       "mcport=%u workers=%u state=%s partitions=%u\n",
		       m->node_id, m->name, ip, m->mac[0], m->mac[1], m->mac[2], m->mac[3],
		       m->mac[4], m->mac[5], m->binary_port, m->memcached_port, m->worker_count,
		       sp_member_state_name(m->state), owned);
	}
	for (uint32_t p = 0; with_map && p < st->partitions; p++)
		printf("map %u %u %u\n", p, st->map[p].node_id, st->map[p].worker);
}

static int
cmd_show(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {{"map", no_argument, NULL, 'm'}, {NULL, 0, NULL, 0}};
	char why[SP_CLUSTER_WHY_MAX];
	struct sp_cluster_state *st;
	struct sp_dp_status s;
	struct sp_region *r;
	bool with_map = false;
	int c, rc, ret = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'm') {
			fprintf(stderr, "shardplane-region: show: unknown option (see --help)\n");
			return 2;
		}
		with_map = true;
	}
	if (no_extra_args(argc, argv, "show") != 0)
		return 2;
	if (open_region(path, false, &r) < 0)
		return 1;
	printf("region %s: version %u capacity %u partitions, generation %" PRIu64 "\n", path,
	       SP_REGION_VERSION, sp_region_partitions_max(r), sp_region_generation(r));
	st = sp_cluster_state_new(sp_region_partitions_max(r));
	if (st == NULL) {
		sp_region_close(r);
		fprintf(stderr, "shardplane-region: out of memory\n");
		return 1;
	}
	rc = sp_region_read(r, st, why, sizeof(why));
	if (rc == 0)
		show_state(st, with_map);
	else if (rc == -SP_ENOTFOUND)
		printf("state: none published\n");
	else {
		fprintf(stderr, "shardplane-region: %s\n", why);
		ret = 1;
	}
	uint64_t expiry, now = sp_mono_ns();
	uint32_t membership;
	sp_region_lease_read(r, &expiry, &membership);
	if (membership == SP_REGION_MEMBER_REMOVED)
		printf("lease: removed from the cluster\n");
	else if (expiry == UINT64_MAX)
		printf("lease: without end\n");
	else if (expiry > now)
		printf("lease: valid for %" PRIu64 " ms\n",
		       (uint64_t)((expiry - now) / SP_NS_PER_MS));
	else
		printf("lease: none\n");
	rc = sp_region_status_read(r, &s);
	if (rc == 0)
		printf("dataplane: state=%s serving=%s pid=%u epoch=%" PRIu64
		       " workers=%u partitions=%u age_ms=%" PRIu64 " rx=%" PRIu64 " tx=%" PRIu64
		       " requests=%" PRIu64 " switches=%" PRIu64 "\n",
		       sp_dp_state_name(s.state), sp_dp_serving_name(s.serving), s.pid,
		       s.applied_epoch, s.workers, s.partitions,
		       (uint64_t)((now - s.heartbeat_mono_ns) / SP_NS_PER_MS), s.counters.rx_pkts,
		       s.counters.tx_pkts, s.counters.requests, s.counters.epoch_switches);
	else
		printf("dataplane: %s\n",
		       rc == -SP_ENOTFOUND ? "no heartbeat yet" : sp_strerror(rc));
	sp_cluster_state_free(st);
	sp_region_close(r);
	return ret;
}

static int
parse_dp_state(const char *text, uint32_t *out)
{
	ASSERT(text != NULL);
	ASSERT(out != NULL);
	for (uint32_t s = 0; s < SP_DP_STATE_LAST; s++) {
		if (strcmp(text, sp_dp_state_name(s)) == 0) {
			*out = s;
			return 0;
		}
	}
	return -EINVAL;
}

static int
parse_serving(const char *text, uint16_t *out)
{
	ASSERT(text != NULL);
	ASSERT(out != NULL);
	for (uint16_t s = 0; s < SP_DP_SERVING_LAST; s++) {
		if (strcmp(text, sp_dp_serving_name(s)) == 0) {
			*out = s;
			return 0;
		}
	}
	return -EINVAL;
}

static int
cmd_lease(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {{"ms", required_argument, NULL, 'm'},
	                                     {"forever", no_argument, NULL, 'f'},
	                                     {"revoke", no_argument, NULL, 'r'},
	                                     {"removed", no_argument, NULL, 'R'},
	                                     {NULL, 0, NULL, 0}};
	uint32_t membership = SP_REGION_MEMBER_IN;
	uint64_t expiry = 0, ms;
	struct sp_region *r;
	int c, given = 0, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		given++;
		if (c == 'm' && parse_u64(optarg, 1, UINT32_MAX, &ms) == 0) {
			expiry = sp_mono_ns() + ms * SP_NS_PER_MS;
		} else if (c == 'f') {
			expiry = UINT64_MAX;
		} else if (c == 'r') {
			expiry = 0;
		} else if (c == 'R') {
			membership = SP_REGION_MEMBER_REMOVED;
		} else {
			fprintf(stderr, "shardplane-region: lease: bad '%s' (see --help)\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (given != 1) {
		fprintf(stderr, "shardplane-region: lease: give exactly one of --ms N, --forever, "
		                "--revoke, --removed\n");
		return 2;
	}
	if (no_extra_args(argc, argv, "lease") != 0)
		return 2;
	if (open_region(path, true, &r) < 0)
		return 1;
	rc = sp_region_lease_write(r, expiry, membership);
	sp_region_close(r);
	if (rc < 0) {
		fprintf(stderr, "shardplane-region: lease: %s\n", sp_strerror(rc));
		return 1;
	}
	return 0;
}

static int
cmd_heartbeat(const char *path, int argc, char **argv)
{
	static const struct option opts[] = {{"state", required_argument, NULL, 's'},
	                                     {"epoch", required_argument, NULL, 'e'},
	                                     {"pid", required_argument, NULL, 'p'},
	                                     {"workers", required_argument, NULL, 'w'},
	                                     {"partitions", required_argument, NULL, 'P'},
	                                     {"serving", required_argument, NULL, 'S'},
	                                     {NULL, 0, NULL, 0}};
	struct sp_dp_status s = {
	        .state = SP_DP_RUNNING, .pid = (uint32_t)getpid(), .serving = SP_DP_SERVING};
	struct sp_region *r;
	uint64_t v;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			rc = parse_dp_state(optarg, &s.state);
		else if (c == 'e' && (rc = parse_u64(optarg, 0, UINT64_MAX, &v)) == 0)
			s.applied_epoch = v;
		else if (c == 'p' && (rc = parse_u64(optarg, 1, UINT32_MAX, &v)) == 0)
			s.pid = (uint32_t)v;
		else if (c == 'w' && (rc = parse_u64(optarg, 1, SP_WORKERS_MAX, &v)) == 0)
			s.workers = (uint32_t)v;
		else if (c == 'P' && (rc = parse_u64(optarg, 1, SP_PARTITIONS_MAX, &v)) == 0)
			s.partitions = (uint32_t)v;
		else if (c == 'S')
			rc = parse_serving(optarg, &s.serving);
		else if (c != 'e' && c != 'p' && c != 'w' && c != 'P')
			rc = -EINVAL;
		if (rc < 0) {
			fprintf(stderr, "shardplane-region: heartbeat: bad '%s' (see --help)\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (no_extra_args(argc, argv, "heartbeat") != 0)
		return 2;
	if (open_region(path, true, &r) < 0)
		return 1;
	s.heartbeat_mono_ns = sp_mono_ns();
	s.heartbeat_wall_ns = sp_wall_s() * SP_NS_PER_S;
	rc = sp_region_status_write(r, &s);
	sp_region_close(r);
	if (rc < 0) {
		fprintf(stderr, "shardplane-region: heartbeat: %s\n", sp_strerror(rc));
		return 1;
	}
	printf("heartbeat written: state=%s epoch=%" PRIu64 "\n", sp_dp_state_name(s.state),
	       s.applied_epoch);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *cmd, *path;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 3 || argv[2][0] == '-') {
		fputs(usage_text, stderr);
		return 2;
	}
	cmd = argv[1];
	path = argv[2];
	/* getopt sees "COMMAND PATH [options]" as argv[0..]: start after PATH. */
	argc -= 2;
	argv += 2;
	optind = 1;
	if (strcmp(cmd, "create") == 0)
		return cmd_create(path, argc, argv);
	if (strcmp(cmd, "set-map") == 0)
		return cmd_set_map(path, argc, argv);
	if (strcmp(cmd, "show") == 0)
		return cmd_show(path, argc, argv);
	if (strcmp(cmd, "heartbeat") == 0)
		return cmd_heartbeat(path, argc, argv);
	if (strcmp(cmd, "lease") == 0)
		return cmd_lease(path, argc, argv);
	fprintf(stderr,
	        "shardplane-region: unknown command '%s' (create, set-map, show, "
	        "heartbeat, lease; see --help)\n",
	        cmd);
	return 2;
}
