/* SPDX-License-Identifier: BSD-3-Clause */
/* The Shardplane C client over kernel UDP sockets (see client.h). */
#include "client/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"
#include "wire/taskproto.h"

/* Socket receive buffer the client asks for, so a burst of replies is not dropped. */
#define RCVBUF_BYTES (1u << 20)

/* Where an operation is in the current round. */
enum op_state {
	OP_DONE = 0, /* has its result */
	OP_SEND,     /* must be sent (again) */
	OP_WAIT,     /* sent, waiting for its reply */
};

/* Where a request goes: an address (network byte order) and a UDP port. */
struct dest {
	uint32_t ipv4_be;
	uint16_t port;
	int16_t node; /* index in the map, or -1 (a seed, a redirect outside the map) */
};

struct sp_client {
	int fd;
	struct sockaddr_in seeds[SP_CLIENT_SEEDS_MAX]; /* addresses and base ports */
	uint32_t seed_count;
	uint32_t seed_cur; /* the seed that answered last (or the first) */
	uint32_t timeout_ms;
	uint32_t retries;
	bool no_route;
	bool retry_all;
	bool forward;

	/* The map (valid when have_route). */
	bool have_route;
	bool route_stale;
	uint64_t epoch;
	uint64_t epoch_seen; /* newest epoch any reply mentioned */
	uint32_t partitions;
	uint32_t node_count;
	uint32_t self;
	struct sp_bp_route_node nodes[SP_BP_ROUTE_NODES_MAX];
	uint64_t node_replies[SP_BP_ROUTE_NODES_MAX];
	uint64_t node_errors[SP_BP_ROUTE_NODES_MAX];
	uint16_t *owner; /* partitions entries: sp_bp_route_entry(node, worker) */
	uint32_t owner_cap;
	/* A refresh fills these and swaps them in only when complete and consistent. */
	uint16_t *fetch;
	uint32_t fetch_cap;
	struct sp_bp_route_node fetch_nodes[SP_BP_ROUTE_NODES_MAX];
	/* Node records of the first page and of the page being checked against it. */
	uint8_t head_nodes[SP_BP_ROUTE_NODES_MAX * SP_BP_ROUTE_NODE_SIZE];
	uint8_t page_nodes[SP_BP_ROUTE_NODES_MAX * SP_BP_ROUTE_NODE_SIZE];
	uint64_t route_next_ns; /* when to fetch again (periodic refresh or retry) */
	uint64_t route_refresh_ns;

	uint32_t next_id;
	uint64_t next_dgram;
	struct sp_client_stats st;

	/* Operations queued by sp_client_queue(), and the copies a flush runs. */
	struct sp_client_op *queued[SP_CLIENT_BATCH_MAX];
	struct sp_client_op flushing[SP_CLIENT_BATCH_MAX];
	uint32_t nqueued;

	/* Scratch for one round, sized at create so execute never allocates. */
	uint8_t state[SP_CLIENT_BATCH_MAX];
	uint8_t redirects_left[SP_CLIENT_BATCH_MAX];
	struct dest dest[SP_CLIENT_BATCH_MAX];
	uint8_t txbuf[SP_BP_PAYLOAD_MAX];
	uint8_t rxbuf[SP_BP_PAYLOAD_MAX + 1];
	struct sp_bp_reply replies[SP_BP_REQS_MAX];
};

int
sp_client_status_error(uint8_t status)
{
	switch (status) {
	case SP_BP_ST_OK:
		return 0;
	case SP_BP_ST_NOT_FOUND:
		return -SP_ENOTFOUND;
	case SP_BP_ST_EXISTS:
		return -SP_EEXISTS;
	case SP_BP_ST_CAS_MISMATCH:
		return -SP_EVERSION;
	case SP_BP_ST_TOO_BIG:
		return -SP_ETOOBIG;
	case SP_BP_ST_NOT_NUMBER:
		return -SP_ENOTNUM;
	case SP_BP_ST_BAD_REQUEST:
		return -SP_EMALFORMED;
	case SP_BP_ST_SERVER_BUSY:
		return -SP_EBUSY;
	case SP_BP_ST_SERVER_FULL:
		return -SP_EFULL;
	case SP_BP_ST_WRONG_PARTITION:
		return -SP_EWRONGNODE;
	case SP_BP_ST_NOT_SERVING:
		return -SP_ENOTSERVING;
	case SP_BP_ST_NOT_READY:
		return -SP_ENOTREADY;
	case SP_BP_ST_UNAVAILABLE:
		return -SP_EUNAVAIL;
	default:
		return -EIO;
	}
}

/* ---- Socket helpers ------------------------------------------------------------------- */

/* Sends one datagram to ipv4_be:port. Returns 0 or a negative errno. */
static int
send_to(struct sp_client *c, const void *buf, uint32_t len, uint32_t ipv4_be, uint16_t port)
{
	struct sockaddr_in to = {.sin_family = AF_INET};

	ASSERT(len >= SP_BP_DGRAM_HDR_SIZE);
	ASSERT(len <= SP_BP_PAYLOAD_MAX);
	to.sin_addr.s_addr = ipv4_be;
	to.sin_port = htons(port);
	ssize_t n = sendto(c->fd, buf, len, 0, (const struct sockaddr *)&to, sizeof(to));
	if (n < 0) {
		c->st.send_errors++;
		return -errno;
	}
	c->st.datagrams_sent++;
	return 0;
}

/*
 * Receives one datagram without blocking and decodes it into c->replies. Returns the
 * reply count, 0 when nothing (valid) was there to read, or a negative errno on a socket
 * error. Replies are matched by request id whatever address they come from (in cluster
 * mode another node may answer a request it was forwarded); those are counted.
 */
static int
recv_replies(struct sp_client *c, bool *more)
{
	struct sockaddr_in from;
	socklen_t from_len = sizeof(from);
	struct sp_bp_dgram d;

	ASSERT(c != NULL);
	ASSERT(c->fd >= 0);
	*more = false;
	ssize_t n = recvfrom(c->fd, c->rxbuf, sizeof(c->rxbuf), MSG_DONTWAIT,
	                     (struct sockaddr *)&from, &from_len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		/* A port-unreachable ICMP surfaces as ECONNREFUSED: the datagram is lost. */
		if (errno == ECONNREFUSED) {
			*more = true;
			return 0;
		}
		return -errno;
	}
	*more = true;
	c->st.datagrams_recv++;
	enum sp_bp_err e =
	        sp_bp_decode_replies(c->rxbuf, (size_t)n, c->replies, SP_BP_REQS_MAX, &d);
	if (e != SP_BP_ERR_OK) {
		c->st.bad_datagrams++;
		return 0;
	}
	if (from.sin_addr.s_addr != c->seeds[c->seed_cur].sin_addr.s_addr)
		c->st.datagrams_other_host++;
	return d.count;
}

/*
 * Waits until the socket is readable or deadline_ns passes. Returns 1 when readable, 0 on
 * timeout, or a negative errno.
 */
static int
wait_readable(struct sp_client *c, uint64_t deadline_ns)
{
	ASSERT(c != NULL);
	ASSERT(c->fd >= 0);
	uint64_t now = sp_mono_ns();
	if (now >= deadline_ns)
		return 0;
	uint64_t left_ms = (deadline_ns - now + SP_NS_PER_MS - 1) / SP_NS_PER_MS;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int rc = poll(&pfd, 1, (int)SP_MIN(left_ms, (uint64_t)SP_CLIENT_TIMEOUT_MS_MAX));
	if (rc < 0)
		return errno == EINTR ? 1 : -errno;
	return rc > 0 ? 1 : 0;
}

/* ---- Routing -------------------------------------------------------------------------- */

static bool
same_dest(const struct dest *a, const struct dest *b)
{
	return a->ipv4_be == b->ipv4_be && a->port == b->port;
}

/* The first seed's address and base port: where requests go without a map. */
static struct dest
seed_dest(const struct sp_client *c)
{
	const struct sockaddr_in *s = &c->seeds[c->seed_cur];
	struct dest d = {.ipv4_be = s->sin_addr.s_addr, .port = ntohs(s->sin_port), .node = -1};

	ASSERT(c->seed_cur < c->seed_count);
	return d;
}

static struct dest
dest_for_hash(const struct sp_client *c, uint64_t hash)
{
	struct dest d;

	if (!c->have_route)
		return seed_dest(c);
	uint32_t p = sp_key_partition(hash, c->partitions);
	ASSERT(p < c->partitions);
	uint16_t e = c->owner[p];
	uint16_t node = e & 0xffu;
	uint16_t worker = e >> 8;
	ASSERT(node < c->node_count);
	ASSERT(worker < c->nodes[node].worker_count);
	d.ipv4_be = c->nodes[node].ipv4_be;
	d.port = (uint16_t)(c->nodes[node].binary_port + worker);
	d.node = (int16_t)node;
	return d;
}

uint16_t
sp_client_port_for_key(const struct sp_client *c, const void *key, size_t key_len)
{
	ASSERT(c != NULL);
	ASSERT(key != NULL || key_len == 0);
	return dest_for_hash(c, sp_key_hash(key, key_len)).port;
}

int
sp_client_dest_for_key(const struct sp_client *c, const void *key, size_t key_len,
                       uint32_t *ipv4_be, uint16_t *port)
{
	ASSERT(c != NULL);
	ASSERT(key != NULL || key_len == 0);
	struct dest d = dest_for_hash(c, sp_key_hash(key, key_len));
	*ipv4_be = d.ipv4_be;
	*port = d.port;
	return d.node;
}

bool
sp_client_route(const struct sp_client *c, struct sp_bp_route *route)
{
	ASSERT(c != NULL);
	ASSERT(route != NULL);
	if (!c->have_route)
		return false;
	memset(route, 0, sizeof(*route));
	route->epoch = c->epoch;
	route->partitions = c->partitions;
	route->node_count = (uint16_t)c->node_count;
	route->self = (uint16_t)c->self;
	route->first = 0;
	route->count = c->partitions;
	return true;
}

int
sp_client_route_node(const struct sp_client *c, uint32_t i, struct sp_bp_route_node *out)
{
	ASSERT(c != NULL);
	ASSERT(out != NULL);
	if (!c->have_route || i >= c->node_count)
		return -ENOENT;
	*out = c->nodes[i];
	return 0;
}

int
sp_client_route_entry(const struct sp_client *c, uint32_t partition, uint16_t *node,
                      uint16_t *worker)
{
	ASSERT(c != NULL);
	if (!c->have_route || partition >= c->partitions)
		return -ENOENT;
	*node = c->owner[partition] & 0xffu;
	*worker = c->owner[partition] >> 8;
	ASSERT(*node < c->node_count);
	return 0;
}

int
sp_client_route_owner(const struct sp_client *c, uint32_t partition)
{
	uint16_t node, worker;

	if (sp_client_route_entry(c, partition, &node, &worker) != 0)
		return -ENOENT;
	return worker;
}

int
sp_client_node_ops(const struct sp_client *c, uint32_t i, uint64_t *replies, uint64_t *errors)
{
	ASSERT(c != NULL);
	if (!c->have_route || i >= c->node_count)
		return -ENOENT;
	*replies = c->node_replies[i];
	*errors = c->node_errors[i];
	return 0;
}

/* Whether two pages describe the same map (the head and every node). */
static bool
same_map(const struct sp_bp_route *a, const struct sp_bp_route *b)
{
	if (a->epoch != b->epoch || a->partitions != b->partitions ||
	    a->node_count != b->node_count || a->self != b->self)
		return false;
	return memcmp(a->nodes, b->nodes, (size_t)a->node_count * SP_BP_ROUTE_NODE_SIZE) == 0;
}

/*
 * Fetches one ROUTE page starting at `first` from `to` and copies its entries into c->fetch
 * (grown as needed) and its nodes into c->fetch_nodes. *page gets the page; its node
 * records are copied into *node_bytes (the page's own pointers are into the receive buffer
 * and die with the next datagram). Returns 0, -ETIMEDOUT, -SP_EMALFORMED, -ENOMEM, a status
 * error (NOT_READY, ...) or a socket error. Never touches the map in use.
 */
static int
fetch_page(struct sp_client *c, const struct dest *to, uint32_t first, struct sp_bp_route *page,
           uint8_t *node_bytes)
{
	struct sp_bp_req q = {.opcode = SP_BP_OP_ROUTE, .route_first = first};
	struct sp_bp_builder b;

	for (uint32_t attempt = 0; attempt <= c->retries; attempt++) {
		q.request_id = c->next_id++;
		sp_bp_builder_init(&b, c->txbuf, sizeof(c->txbuf), false, c->next_dgram++);
		VERIFY(sp_bp_add_request(&b, &q) == 0);
		uint32_t len = sp_bp_builder_finish(&b);
		(void)send_to(c, c->txbuf, len, to->ipv4_be, to->port);
		if (attempt > 0)
			c->st.retries++;

		uint64_t deadline = sp_mono_ns() + (uint64_t)c->timeout_ms * SP_NS_PER_MS;
		for (;;) {
			int rc = wait_readable(c, deadline);
			if (rc < 0)
				return rc;
			if (rc == 0)
				break;
			bool more = true;
			while (more) {
				int k = recv_replies(c, &more);
				if (k < 0)
					return k;
				for (int i = 0; i < k; i++) {
					struct sp_bp_reply *r = &c->replies[i];
					if (r->request_id != q.request_id ||
					    r->opcode != SP_BP_OP_ROUTE) {
						c->st.stale_replies++;
						continue;
					}
					if (r->status != SP_BP_ST_OK)
						return sp_client_status_error(r->status);
					if (sp_bp_route_decode(r->value, r->value_len, page) != 0)
						return -SP_EMALFORMED;
					if (page->first != first)
						return -SP_EMALFORMED;
					for (uint32_t n = 0; n < page->node_count; n++) {
						struct sp_bp_route_node *nd = &c->fetch_nodes[n];

						sp_bp_route_node_get(page, n, nd);
						if ((uint32_t)nd->binary_port + nd->worker_count -
						                    1 >
						            UINT16_MAX ||
						    nd->binary_port == 0 || nd->ipv4_be == 0)
							return -SP_EMALFORMED;
					}
					if (page->partitions > c->fetch_cap) {
						uint16_t *o = realloc(c->fetch, page->partitions *
						                                        sizeof(*o));
						if (o == NULL)
							return -ENOMEM;
						c->fetch = o;
						c->fetch_cap = page->partitions;
					}
					ASSERT(first + page->count <= c->fetch_cap);
					for (uint32_t j = 0; j < page->count; j++) {
						uint16_t node, worker;

						sp_bp_route_entry_get(page, j, &node, &worker);
						c->fetch[first + j] =
						        sp_bp_route_entry(node, worker);
					}
					memcpy(node_bytes, page->nodes,
					       (size_t)page->node_count * SP_BP_ROUTE_NODE_SIZE);
					page->nodes = node_bytes;
					page->entries = NULL;
					return 0;
				}
			}
		}
	}
	return -ETIMEDOUT;
}

/* Fetches every page of the map from `to` into c->fetch. Returns 0 with *head filled (its
 * node records in c->head_nodes). */
static int
fetch_table(struct sp_client *c, const struct dest *to, struct sp_bp_route *head)
{
	ASSERT(c != NULL);
	ASSERT(!c->no_route);
	/* Pages from two epochs would mix two maps: start over, a bounded number of times. */
	for (uint32_t round = 0; round <= SP_CLIENT_RETRIES_MAX; round++) {
		struct sp_bp_route page;
		bool mixed = false;

		int rc = fetch_page(c, to, 0, head, c->head_nodes);
		if (rc != 0)
			return rc;
		uint32_t pages = 1;
		for (uint32_t first = head->count; first < head->partitions; first += page.count) {
			if (++pages > SP_BP_PARTITIONS_MAX)
				return -SP_EMALFORMED;
			rc = fetch_page(c, to, first, &page, c->page_nodes);
			if (rc != 0)
				return rc;
			if (!same_map(head, &page)) {
				mixed = true;
				break;
			}
		}
		if (!mixed)
			return 0;
	}
	return -SP_EMALFORMED;
}

/* Installs c->fetch (just filled from head) as the map in use; per-node counters follow
 * their node by id. */
static void
install_map(struct sp_client *c, const struct sp_bp_route *head)
{
	uint64_t replies[SP_BP_ROUTE_NODES_MAX] = {0};
	uint64_t errors[SP_BP_ROUTE_NODES_MAX] = {0};

	ASSERT(head->node_count >= 1 && head->node_count <= SP_BP_ROUTE_NODES_MAX);
	for (uint32_t n = 0; n < head->node_count; n++) {
		struct sp_bp_route_node nd;

		sp_bp_route_node_get(head, n, &nd);
		for (uint32_t o = 0; c->have_route && o < c->node_count; o++) {
			if (c->nodes[o].node_id == nd.node_id) {
				replies[n] = c->node_replies[o];
				errors[n] = c->node_errors[o];
			}
		}
		c->nodes[n] = nd;
	}
	memcpy(c->node_replies, replies, sizeof(replies));
	memcpy(c->node_errors, errors, sizeof(errors));
	uint16_t *old = c->owner;
	uint32_t old_cap = c->owner_cap;
	c->owner = c->fetch;
	c->owner_cap = c->fetch_cap;
	c->fetch = old;
	c->fetch_cap = old_cap;
	c->epoch = head->epoch;
	if (c->epoch_seen < c->epoch)
		c->epoch_seen = c->epoch;
	c->partitions = head->partitions;
	c->node_count = head->node_count;
	c->self = head->self;
	c->have_route = true;
	c->route_stale = false;
	ASSERT(c->partitions <= c->owner_cap);
}

int
sp_client_route_refresh(struct sp_client *c)
{
	struct sp_bp_route head;
	struct dest cands[SP_CLIENT_SEEDS_MAX + SP_BP_ROUTE_NODES_MAX];
	uint32_t n = 0;
	int rc = -ETIMEDOUT;

	ASSERT(c != NULL);
	if (c->no_route)
		return -ENOTSUP;
	c->st.route_refreshes++;
	/* The seeds from the one that answered last, then the nodes of the map in use. */
	for (uint32_t i = 0; i < c->seed_count; i++) {
		const struct sockaddr_in *s = &c->seeds[(c->seed_cur + i) % c->seed_count];

		cands[n++] = (struct dest){s->sin_addr.s_addr, ntohs(s->sin_port), -1};
	}
	for (uint32_t i = 0; c->have_route && i < c->node_count; i++) {
		struct dest d = {c->nodes[i].ipv4_be, c->nodes[i].binary_port, (int16_t)i};
		bool seed = false;

		for (uint32_t k = 0; k < c->seed_count; k++)
			seed = seed || same_dest(&d, &cands[k]);
		if (!seed)
			cands[n++] = d;
	}
	ASSERT(n <= SP_ARRAY_SIZE(cands));
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0)
			c->st.seed_failovers++;
		rc = fetch_table(c, &cands[i], &head);
		if (rc == 0) {
			if (i < c->seed_count)
				c->seed_cur = (c->seed_cur + i) % c->seed_count;
			/* Never go back to an older map than the one in use. */
			if (c->have_route && head.epoch < c->epoch &&
			    head.partitions == c->partitions) {
				rc = -SP_EVERSION;
				continue;
			}
			install_map(c, &head);
			c->route_next_ns = sp_mono_ns() + c->route_refresh_ns;
			return 0;
		}
		if (rc == -ENOMEM)
			break;
	}
	/* Keep the map in use (if any); try again after a short pause. */
	c->st.route_failures++;
	c->route_next_ns = sp_mono_ns() + (uint64_t)SP_CLIENT_ROUTE_RETRY_MS * SP_NS_PER_MS;
	return rc;
}

/* ---- Create / destroy ------------------------------------------------------------------- */

struct sp_client *
sp_client_create(const struct sp_client_params *params, int *err)
{
	struct sp_client *c = NULL;
	int rc = -EINVAL;

	if (params == NULL)
		goto fail;
	/* The shipped registered operations, so that the codec knows their opcodes. */
	rc = sp_taskproto_register();
	if (rc != 0)
		goto fail;
	rc = -EINVAL;
	if (params->seed_count == 0 && (params->host == NULL || params->port == 0))
		goto fail;
	if (params->seed_count > SP_CLIENT_SEEDS_MAX ||
	    (params->seed_count > 0 && params->seeds == NULL))
		goto fail;
	if (params->timeout_ms > SP_CLIENT_TIMEOUT_MS_MAX)
		goto fail;
	if (params->retries > (int32_t)SP_CLIENT_RETRIES_MAX)
		goto fail;
	if (params->route_refresh_ms > SP_CLIENT_ROUTE_REFRESH_MS_MAX)
		goto fail;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	c->fd = -1;
	if (params->seed_count == 0) {
		c->seed_count = 1;
		c->seeds[0].sin_family = AF_INET;
		c->seeds[0].sin_port = htons(params->port);
		if (inet_pton(AF_INET, params->host, &c->seeds[0].sin_addr) != 1)
			goto fail;
	}
	for (uint32_t i = 0; i < params->seed_count; i++) {
		const struct sp_client_seed *sd = &params->seeds[i];

		if (sd->host == NULL || sd->port == 0)
			goto fail;
		c->seeds[i].sin_family = AF_INET;
		c->seeds[i].sin_port = htons(sd->port);
		if (inet_pton(AF_INET, sd->host, &c->seeds[i].sin_addr) != 1)
			goto fail;
		c->seed_count++;
	}
	ASSERT(c->seed_count >= 1 && c->seed_count <= SP_CLIENT_SEEDS_MAX);
	c->timeout_ms = params->timeout_ms != 0 ? params->timeout_ms : SP_CLIENT_TIMEOUT_MS_DEF;
	c->retries = params->retries < 0 ? SP_CLIENT_RETRIES_DEF : (uint32_t)params->retries;
	c->no_route = params->no_route;
	c->forward = params->forward;
	c->retry_all = params->retry_all;
	c->route_refresh_ns =
	        (uint64_t)(params->route_refresh_ms != 0 ? params->route_refresh_ms
	                                                 : SP_CLIENT_ROUTE_REFRESH_MS_DEF) *
	        SP_NS_PER_MS;
	/* Request ids start somewhere different per client so restarts do not reuse them. */
	c->next_id = (uint32_t)(sp_mono_ns() ^ ((uint64_t)getpid() << 16));
	c->next_dgram = c->next_id;

	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		rc = -errno;
		goto fail;
	}
	int rcvbuf = RCVBUF_BYTES;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	ASSERT(c->retries <= SP_CLIENT_RETRIES_MAX);
	ASSERT(c->timeout_ms <= SP_CLIENT_TIMEOUT_MS_MAX);
	if (!c->no_route)
		(void)sp_client_route_refresh(c);
	if (err != NULL)
		*err = 0;
	return c;

fail:
	ASSERT(rc < 0);
	if (c != NULL && c->fd >= 0)
		close(c->fd);
	free(c);
	if (err != NULL)
		*err = rc;
	return NULL;
}

void
sp_client_destroy(struct sp_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->owner);
	free(c->fetch);
	free(c);
}

void
sp_client_stats_get(const struct sp_client *c, struct sp_client_stats *out)
{
	ASSERT(c != NULL);
	ASSERT(out != NULL);
	*out = c->st;
}

/* ---- Batches ---------------------------------------------------------------------------- */

/* Whether op is a registered operation (docs/tasks.md) this process's codec knows. */
static bool
op_user(const struct sp_client_op *op)
{
	return (sp_bp_op(op->opcode)->props & SP_BP_OPF_USER) != 0;
}

/* Checks an operation before it is sent. Returns 0, -EINVAL or -SP_ETOOBIG. */
static int
op_validate(const struct sp_client_op *op)
{
	ASSERT(op != NULL);
	if (op_user(op)) {
		/* A registered operation: the opcode table says whether it has a key. */
		bool keyed = (sp_bp_op(op->opcode)->props & SP_BP_OPF_KEY) != 0;
		if (keyed != (op->key_len != 0) || (keyed && op->key == NULL))
			return -EINVAL;
		if (op->key_len > SP_BP_KEY_MAX || op->value_len > SP_BP_VALUE_MAX)
			return -SP_ETOOBIG;
		if ((op->value == NULL && op->value_len != 0) ||
		    (op->out_buf == NULL && op->out_cap != 0))
			return -EINVAL;
		return 0;
	}
	if (!sp_bp_op_has_key(op->opcode))
		return -EINVAL;
	if (op->key == NULL || op->key_len == 0)
		return -EINVAL;
	if (op->key_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	bool stores = op->opcode == SP_BP_OP_SET || op->opcode == SP_BP_OP_ADD ||
	              op->opcode == SP_BP_OP_REPLACE;
	if (stores && op->value_len > SP_BP_VALUE_MAX)
		return -SP_ETOOBIG;
	if (stores && op->value == NULL && op->value_len != 0)
		return -EINVAL;
	if (op->opcode == SP_BP_OP_ADD && op->cas != 0)
		return -EINVAL;
	if (op->out_buf == NULL && op->out_cap != 0)
		return -EINVAL;
	return 0;
}

/* True when sending op twice cannot change its outcome. */
static bool
op_idempotent(const struct sp_client_op *op)
{
	/* A registered operation that does not write (an aggregate) reads only. */
	if (op_user(op))
		return (sp_bp_op(op->opcode)->props & SP_BP_OPF_WRITE) == 0;
	return op->opcode == SP_BP_OP_GET || (op->opcode == SP_BP_OP_SET && op->cas == 0);
}

static struct sp_bp_req
op_request(const struct sp_client_op *op, uint32_t request_id)
{
	ASSERT(op != NULL);
	ASSERT(sp_bp_op_has_key(op->opcode) || op_user(op));
	struct sp_bp_req q = {
	        .opcode = op->opcode,
	        .request_id = request_id,
	        .key = op->key,
	        .key_len = op->key_len,
	        .value = op->value,
	        .value_len = op->value_len,
	        .flags = op->flags,
	        .expiry_s = op->expiry_s,
	        .cas = op->cas,
	        .delta = op->delta,
	        .initial = op->initial,
	        .create = op->create,
	};
	return q;
}

/*
 * Sends every op in state OP_SEND, packed per destination (address and port). Returns 0
 * or -errno when the socket itself is unusable.
 */
static int
send_pending(struct sp_client *c, struct sp_client_op *ops, uint32_t n, uint32_t base_id)
{
	for (uint32_t i = 0; i < n; i++) {
		if (c->state[i] != OP_SEND)
			continue;
		struct sp_bp_builder b;
		struct dest to = c->dest[i];

		sp_bp_builder_init(&b, c->txbuf, sizeof(c->txbuf), false, c->next_dgram++);
		if (c->forward)
			sp_bp_builder_set_flags(&b, SP_BP_F_FORWARD);
		for (uint32_t j = i; j < n; j++) {
			if (c->state[j] != OP_SEND || !same_dest(&c->dest[j], &to))
				continue;
			struct sp_bp_req q = op_request(&ops[j], base_id + j);
			int rc = sp_bp_add_request(&b, &q);
			if (rc == -SP_EFULL)
				break;
			VERIFY(rc == 0); /* validated before the round */
			c->state[j] = OP_WAIT;
		}
		/* Op i always fits in an empty datagram, so each pass makes progress. */
		VERIFY(c->state[i] == OP_WAIT);
		uint32_t len = sp_bp_builder_finish(&b);
		int rc = send_to(c, c->txbuf, len, to.ipv4_be, to.port);
		if (rc == -EBADF || rc == -ENOTSOCK)
			return rc;
		/* Any other send failure counts as a lost datagram: the retry path covers it.
		 * Ops after i still in OP_SEND (other destinations, or a full datagram) are
		 * picked up as the scan reaches them. */
	}
	return 0;
}

/* Applies one reply to its operation. */
static void
complete(struct sp_client *c, struct sp_client_op *op, const struct sp_bp_reply *r)
{
	ASSERT(r->status < SP_BP_ST_LAST);
	ASSERT(r->opcode == op->opcode);
	op->rc = 0;
	op->status = r->status;
	op->cas_out = r->cas;
	op->flags_out = r->flags;
	op->value_len_out = 0;
	if (r->status == SP_BP_ST_WRONG_PARTITION)
		c->route_stale = true;
	if (r->status == SP_BP_ST_NOT_SERVING || r->status == SP_BP_ST_NOT_READY) {
		c->st.not_serving++;
		c->route_stale = true;
	}
	if ((r->status == SP_BP_ST_OK || r->status == SP_BP_ST_PARTIAL) && op_user(op)) {
		/* A registered operation's result (PARTIAL: of the partitions in flags). */
		op->value_len_out = r->value_len;
		uint32_t n = SP_MIN(r->value_len, op->out_cap);
		if (n != 0)
			memcpy(op->out_buf, r->value, n);
		return;
	}
	if (r->status == SP_BP_ST_OK && op->opcode == SP_BP_OP_GET) {
		op->value_len_out = r->value_len;
		uint32_t n = SP_MIN(r->value_len, op->out_cap);
		if (n != 0)
			memcpy(op->out_buf, r->value, n);
	}
	if (r->status == SP_BP_ST_OK &&
	    (op->opcode == SP_BP_OP_INCR || op->opcode == SP_BP_OP_DECR)) {
		if (r->value_len != SP_BP_COUNTER_REPLY_SIZE) {
			op->rc = -EIO;
			return;
		}
		uint64_t v = sp_get_le64(r->value);
		op->number = v;
	}
}

/*
 * A WRONG_PARTITION reply to op idx: counts it, notes a newer epoch (the map is then
 * fetched again before the next batch) and, when the reply names an owner other than
 * where the op went and the op has a redirect left for this attempt, points the op there.
 * Returns true when the op is to be sent again.
 */
static bool
follow_redirect(struct sp_client *c, uint32_t idx, const struct sp_bp_reply *r)
{
	struct sp_bp_redirect rd;
	struct dest to;

	ASSERT(idx < SP_CLIENT_BATCH_MAX);
	ASSERT(r->status == SP_BP_ST_WRONG_PARTITION);
	c->st.wrong_partition++;
	c->route_stale = true;
	if (sp_bp_redirect_decode(r->value, r->value_len, &rd) != 1)
		return false;
	if (rd.epoch > c->epoch_seen) {
		c->epoch_seen = rd.epoch;
		c->st.newer_epochs++;
	}
	to = (struct dest){.ipv4_be = rd.ipv4_be, .port = rd.port, .node = -1};
	if (rd.ipv4_be == 0 || same_dest(&to, &c->dest[idx]) || c->redirects_left[idx] == 0)
		return false;
	for (uint32_t n = 0; c->have_route && n < c->node_count; n++)
		if (c->nodes[n].node_id == rd.node_id)
			to.node = (int16_t)n;
	c->redirects_left[idx]--;
	c->dest[idx] = to;
	c->st.redirects++;
	return true;
}

/* Receives until every op has a reply or deadline_ns passes. Returns ops still waiting. */
static int
collect(struct sp_client *c, struct sp_client_op *ops, uint32_t n, uint32_t base_id,
        uint32_t waiting, uint64_t deadline_ns)
{
	ASSERT(n <= SP_CLIENT_BATCH_MAX);
	ASSERT(waiting <= n);
	while (waiting > 0) {
		int rc = wait_readable(c, deadline_ns);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		bool more = true;
		while (more && waiting > 0) {
			int k = recv_replies(c, &more);
			if (k < 0)
				return k;
			for (int i = 0; i < k; i++) {
				const struct sp_bp_reply *r = &c->replies[i];
				uint32_t idx = r->request_id - base_id;
				if (idx >= n || c->state[idx] != OP_WAIT ||
				    r->opcode != ops[idx].opcode) {
					c->st.stale_replies++;
					continue;
				}
				c->st.replies++;
				waiting--;
				if (c->dest[idx].node >= 0) {
					ASSERT((uint32_t)c->dest[idx].node < c->node_count);
					c->node_replies[c->dest[idx].node]++;
					c->node_errors[c->dest[idx].node] +=
					        r->status != SP_BP_ST_OK &&
					        r->status != SP_BP_ST_NOT_FOUND;
				}
				if (r->status == SP_BP_ST_WRONG_PARTITION &&
				    follow_redirect(c, idx, r)) {
					/* Not executed there: sent to the owner it named. */
					c->state[idx] = OP_SEND;
					continue;
				}
				if (r->status == SP_BP_ST_SERVER_BUSY &&
				    ops[idx].attempts <= c->retries) {
					/* Refused without being executed (protocol.md), so it is
					 * sent again whatever the operation. */
					c->state[idx] = OP_SEND;
					c->redirects_left[idx] = SP_CLIENT_REDIRECTS_PER_ATTEMPT;
					ops[idx].attempts++;
					c->st.busy++;
					continue;
				}
				complete(c, &ops[idx], r);
				c->state[idx] = OP_DONE;
			}
		}
	}
	return (int)waiting;
}

/*
 * One round of at most SP_CLIENT_BATCH_MAX operations. Returns 0, or a negative errno when
 * the socket failed (ops without a result then get -EIO).
 */
static int
run_round(struct sp_client *c, struct sp_client_op *ops, uint32_t n)
{
	uint32_t base_id = c->next_id;
	uint32_t pending = 0;
	int rc = 0;

	ASSERT(n <= SP_CLIENT_BATCH_MAX);
	c->next_id += n;
	for (uint32_t i = 0; i < n; i++) {
		struct sp_client_op *op = &ops[i];
		op->attempts = 0;
		op->status = 0;
		op->value_len_out = 0;
		op->number = 0;
		op->rc = op_validate(op);
		if (op->rc != 0) {
			c->state[i] = OP_DONE;
			continue;
		}
		op->rc = -ETIMEDOUT;
		/* An operation without a key (a registered one that spans partitions) goes to
		 * the seed in use: any node answers it. */
		c->dest[i] = op->key_len == 0 ? seed_dest(c)
		                              : dest_for_hash(c, sp_key_hash(op->key, op->key_len));
		c->state[i] = OP_SEND;
		c->redirects_left[i] = SP_CLIENT_REDIRECTS_PER_ATTEMPT;
		op->attempts = 1;
		pending++;
	}

	/*
	 * Rounds until no op is to be sent: an op goes back to OP_SEND only while it has been
	 * sent at most c->retries times (after a timeout, or a SERVER_BUSY reply in
	 * collect()), so every op is sent at most c->retries + 1 times.
	 */
	while (pending > 0) {
		rc = send_pending(c, ops, n, base_id);
		if (rc < 0)
			goto fail;
		uint64_t deadline = sp_mono_ns() + (uint64_t)c->timeout_ms * SP_NS_PER_MS;
		rc = collect(c, ops, n, base_id, pending, deadline);
		if (rc < 0)
			goto fail;
		pending = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (c->state[i] == OP_WAIT) {
				if (ops[i].attempts <= c->retries &&
				    (c->retry_all || op_idempotent(&ops[i]))) {
					c->state[i] = OP_SEND;
					c->redirects_left[i] = SP_CLIENT_REDIRECTS_PER_ATTEMPT;
					ops[i].attempts++;
					c->st.retries++;
				} else {
					c->state[i] = OP_DONE; /* rc stays -ETIMEDOUT */
					c->st.timeouts++;
				}
			}
			ASSERT(c->state[i] != OP_SEND || ops[i].attempts <= c->retries + 1);
			pending += c->state[i] == OP_SEND;
		}
	}
	c->st.ops += n;
	return 0;

fail:
	ASSERT(rc < 0);
	for (uint32_t i = 0; i < n; i++) {
		if (c->state[i] != OP_DONE)
			ops[i].rc = -EIO;
	}
	c->st.ops += n;
	return rc;
}

int
sp_client_execute(struct sp_client *c, struct sp_client_op *ops, size_t n)
{
	ASSERT(c != NULL);
	ASSERT(ops != NULL || n == 0);
	/* Without a table every request goes to the base port, which still works (the node
	 * hands requests to their owners), so a failed refresh is not an error here. */
	if (!c->no_route &&
	    (c->route_stale || c->epoch_seen > c->epoch || sp_mono_ns() >= c->route_next_ns))
		(void)sp_client_route_refresh(c);
	for (size_t done = 0; done < n;) {
		uint32_t k = (uint32_t)SP_MIN(n - done, (size_t)SP_CLIENT_BATCH_MAX);
		int rc = run_round(c, ops + done, k);
		if (rc < 0)
			return rc;
		done += k;
	}
	return 0;
}

int
sp_client_queue(struct sp_client *c, struct sp_client_op *op)
{
	ASSERT(c != NULL);
	ASSERT(op != NULL);
	if (c->nqueued >= SP_CLIENT_BATCH_MAX)
		return -SP_EFULL;
	c->queued[c->nqueued++] = op;
	return 0;
}

uint32_t
sp_client_queued(const struct sp_client *c)
{
	ASSERT(c != NULL);
	ASSERT(c->nqueued <= SP_CLIENT_BATCH_MAX);
	return c->nqueued;
}

int
sp_client_flush(struct sp_client *c)
{
	ASSERT(c != NULL);
	uint32_t n = c->nqueued;
	ASSERT(n <= SP_CLIENT_BATCH_MAX);
	if (n == 0)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		c->flushing[i] = *c->queued[i];
	c->nqueued = 0;
	int rc = sp_client_execute(c, c->flushing, n);
	for (uint32_t i = 0; i < n; i++)
		*c->queued[i] = c->flushing[i];
	return rc;
}

/* ---- One operation at a time ------------------------------------------------------------- */

static int
run_one(struct sp_client *c, struct sp_client_op *op)
{
	ASSERT(c != NULL);
	ASSERT(op != NULL);
	int rc = sp_client_execute(c, op, 1);
	if (rc < 0)
		return rc;
	if (op->rc != 0)
		return op->rc;
	return sp_client_status_error(op->status);
}

int
sp_client_get(struct sp_client *c, const void *key, size_t key_len, void *buf, uint32_t cap,
              uint32_t *len_out, uint32_t *flags_out, uint64_t *cas_out)
{
	if (key_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	struct sp_client_op op = {.opcode = SP_BP_OP_GET,
	                          .key = key,
	                          .key_len = (uint16_t)key_len,
	                          .out_buf = buf,
	                          .out_cap = cap};
	int rc = run_one(c, &op);
	if (rc == 0) {
		if (len_out != NULL)
			*len_out = op.value_len_out;
		if (flags_out != NULL)
			*flags_out = op.flags_out;
		if (cas_out != NULL)
			*cas_out = op.cas_out;
	}
	return rc;
}

int
sp_client_store(struct sp_client *c, uint8_t opcode, const void *key, size_t key_len,
                const void *value, uint32_t value_len, uint32_t flags, uint32_t expiry_s,
                uint64_t cas, uint64_t *cas_out)
{
	if (opcode != SP_BP_OP_SET && opcode != SP_BP_OP_ADD && opcode != SP_BP_OP_REPLACE)
		return -EINVAL;
	if (key_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	struct sp_client_op op = {.opcode = opcode,
	                          .key = key,
	                          .key_len = (uint16_t)key_len,
	                          .value = value,
	                          .value_len = value_len,
	                          .flags = flags,
	                          .expiry_s = expiry_s,
	                          .cas = cas};
	int rc = run_one(c, &op);
	if (rc == 0 && cas_out != NULL)
		*cas_out = op.cas_out;
	return rc;
}

int
sp_client_set(struct sp_client *c, const void *key, size_t key_len, const void *value,
              uint32_t value_len, uint32_t flags, uint32_t expiry_s)
{
	return sp_client_store(c, SP_BP_OP_SET, key, key_len, value, value_len, flags, expiry_s, 0,
	                       NULL);
}

int
sp_client_del(struct sp_client *c, const void *key, size_t key_len, uint64_t cas)
{
	if (key_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	struct sp_client_op op = {
	        .opcode = SP_BP_OP_DELETE, .key = key, .key_len = (uint16_t)key_len, .cas = cas};
	return run_one(c, &op);
}

static int
arith(struct sp_client *c, uint8_t opcode, const void *key, size_t key_len, uint64_t delta,
      const uint64_t *initial, uint64_t *value_out)
{
	ASSERT(opcode == SP_BP_OP_INCR || opcode == SP_BP_OP_DECR);
	if (key_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	struct sp_client_op op = {.opcode = opcode,
	                          .key = key,
	                          .key_len = (uint16_t)key_len,
	                          .delta = delta,
	                          .create = initial != NULL,
	                          .initial = initial != NULL ? *initial : 0};
	int rc = run_one(c, &op);
	if (rc == 0 && value_out != NULL)
		*value_out = op.number;
	return rc;
}

int
sp_client_incr(struct sp_client *c, const void *key, size_t key_len, uint64_t delta,
               const uint64_t *initial, uint64_t *value_out)
{
	return arith(c, SP_BP_OP_INCR, key, key_len, delta, initial, value_out);
}

int
sp_client_decr(struct sp_client *c, const void *key, size_t key_len, uint64_t delta,
               const uint64_t *initial, uint64_t *value_out)
{
	return arith(c, SP_BP_OP_DECR, key, key_len, delta, initial, value_out);
}

int
sp_client_ratelimit(struct sp_client *c, const void *key, size_t key_len, uint32_t rate_per_s,
                    uint32_t burst, uint32_t cost, struct sp_rl_result *out)
{
	struct sp_rl_arg a = {.rate_per_s = rate_per_s, .burst = burst, .cost = cost};
	uint8_t arg[SP_RL_ARG_SIZE], res[SP_RL_RESULT_SIZE];

	ASSERT(c != NULL);
	ASSERT(out != NULL);
	if (key_len == 0 || key_len > SP_BP_KEY_MAX)
		return key_len == 0 ? -EINVAL : -SP_ETOOBIG;
	if (sp_rl_arg_encode(arg, &a) != 0)
		return -EINVAL;
	struct sp_client_op op = {.opcode = SP_TASK_OP_RATELIMIT,
	                          .key = key,
	                          .key_len = (uint16_t)key_len,
	                          .value = arg,
	                          .value_len = sizeof(arg),
	                          .out_buf = res,
	                          .out_cap = sizeof(res)};
	int rc = sp_client_execute(c, &op, 1);
	if (rc != 0)
		return rc;
	if (op.rc != 0)
		return op.rc;
	if (op.status != SP_BP_ST_OK)
		return sp_client_status_error(op.status);
	if (sp_rl_result_decode(res, op.value_len_out, out) != 0)
		return -SP_EMALFORMED;
	return 0;
}

/* One spanning operation with argument arg: its result into res (cap bytes). */
static int
span_op(struct sp_client *c, uint8_t opcode, const uint8_t *arg, uint32_t arg_len, uint32_t scope,
        uint8_t *res, uint32_t cap, uint32_t *len, uint32_t *flags, bool *partial)
{
	struct sp_client_op op = {.opcode = opcode,
	                          .value = arg,
	                          .value_len = arg_len,
	                          .flags = scope,
	                          .out_buf = res,
	                          .out_cap = cap};
	int rc = sp_client_execute(c, &op, 1);
	if (rc != 0)
		return rc;
	if (op.rc != 0)
		return op.rc;
	if (op.status != SP_BP_ST_OK && op.status != SP_BP_ST_PARTIAL)
		return sp_client_status_error(op.status);
	if (op.value_len_out > cap)
		return -SP_EMALFORMED;
	*len = op.value_len_out;
	*flags = op.flags_out;
	*partial = op.status == SP_BP_ST_PARTIAL;
	return 0;
}

/*
 * A spanning aggregate (AGGREGATE or AGGREGATE_KEYS) with argument arg: its result decoded
 * into *out, *count the partitions or keys that answered, *partial whether some did not
 * (either may be NULL). No owner answering in time is an empty result.
 */
static int
agg_span(struct sp_client *c, uint8_t opcode, const uint8_t *arg, uint32_t arg_len, uint32_t scope,
         struct sp_agg_result *out, uint32_t *count, bool *partial)
{
	uint8_t res[SP_AGG_RESULT_MAX];
	uint32_t len = 0, flags = 0;
	bool part = false;
	int rc = span_op(c, opcode, arg, arg_len, scope, res, sizeof(res), &len, &flags, &part);

	if (rc != 0)
		return rc;
	if (count != NULL)
		*count = flags;
	if (partial != NULL)
		*partial = part;
	if (len == 0 && part) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	return sp_agg_result_decode(res, len, out) == 0 ? 0 : -SP_EMALFORMED;
}

int
sp_client_aggregate(struct sp_client *c, const void *prefix, size_t prefix_len, uint8_t k,
                    uint32_t scope, struct sp_agg_result *out, uint32_t *partitions, bool *partial)
{
	uint8_t arg[SP_AGG_ARG_MAX];

	ASSERT(c != NULL);
	ASSERT(out != NULL);
	if (prefix_len > SP_BP_KEY_MAX)
		return -SP_ETOOBIG;
	if (scope != SP_BP_TASK_SCOPE_CLUSTER && scope != SP_BP_TASK_SCOPE_NODE)
		return -EINVAL;
	int arg_len = sp_agg_arg_encode(arg, k, prefix, (uint32_t)prefix_len);
	if (arg_len < 0)
		return arg_len;
	return agg_span(c, SP_TASK_OP_AGGREGATE, arg, (uint32_t)arg_len, scope, out, partitions,
	                partial);
}

int
sp_client_aggregate_keys(struct sp_client *c, const char *const *keys, uint32_t n, uint8_t k,
                         uint32_t scope, struct sp_agg_result *out, uint32_t *answered,
                         bool *partial)
{
	const uint8_t *kp[SP_TASK_KEYS_MAX];
	uint8_t kl[SP_TASK_KEYS_MAX];
	uint8_t arg[SP_BP_VALUE_MAX];

	ASSERT(c != NULL);
	ASSERT(out != NULL);
	if (n == 0 || n > SP_TASK_KEYS_MAX || k > SP_AGG_TOPK_MAX ||
	    (scope != SP_BP_TASK_SCOPE_CLUSTER && scope != SP_BP_TASK_SCOPE_NODE))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		size_t l = keys[i] != NULL ? strlen(keys[i]) : 0;
		if (l == 0)
			return -EINVAL;
		if (l > SP_BP_KEY_MAX)
			return -SP_ETOOBIG;
		kp[i] = (const uint8_t *)keys[i];
		kl[i] = (uint8_t)l;
	}
	int arg_len = sp_task_keys_encode(arg, sizeof(arg), kp, kl, n, &k, 1);
	if (arg_len < 0)
		return arg_len == -SP_EFULL ? -SP_ETOOBIG : arg_len;
	return agg_span(c, SP_TASK_OP_AGGREGATE_KEYS, arg, (uint32_t)arg_len, scope, out, answered,
	                partial);
}
