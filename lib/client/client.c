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

#include "common/clock.h"
#include "common/errors.h"
#include "common/keyhash.h"
#include "common/verify.h"

/* Socket receive buffer the client asks for, so a burst of replies is not dropped. */
#define RCVBUF_BYTES (1u << 20)

/* Where an operation is in the current round. */
enum op_state {
	OP_DONE = 0, /* has its result */
	OP_SEND,     /* must be sent (again) */
	OP_WAIT,     /* sent, waiting for its reply */
};

struct sp_client {
	int fd;
	struct sockaddr_in node; /* host and its configured port */
	uint32_t timeout_ms;
	uint32_t retries;
	bool no_route;
	bool retry_all;

	/* Routing table (valid when have_route). */
	bool have_route;
	bool route_stale;
	uint64_t epoch;
	uint32_t partitions;
	uint32_t workers;
	uint16_t base_port;
	uint16_t *owner; /* partitions entries */
	uint32_t owner_cap;
	/* A refresh fills this table and swaps it in only when complete and consistent. */
	uint16_t *fetch;
	uint32_t fetch_cap;
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
	uint16_t port[SP_CLIENT_BATCH_MAX];
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

/* Sends one datagram to the node's port `port`. Returns 0 or a negative errno. */
static int
send_to(struct sp_client *c, const void *buf, uint32_t len, uint16_t port)
{
	struct sockaddr_in to = c->node;

	ASSERT(len >= SP_BP_DGRAM_HDR_SIZE);
	ASSERT(len <= SP_BP_PAYLOAD_MAX);
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
	if (from.sin_addr.s_addr != c->node.sin_addr.s_addr)
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

static uint16_t
port_for_hash(const struct sp_client *c, uint64_t hash)
{
	if (!c->have_route)
		return ntohs(c->node.sin_port);
	uint32_t p = sp_key_partition(hash, c->partitions);
	ASSERT(p < c->partitions);
	return (uint16_t)(c->base_port + c->owner[p]);
}

uint16_t
sp_client_port_for_key(const struct sp_client *c, const void *key, size_t key_len)
{
	ASSERT(c != NULL);
	ASSERT(key != NULL || key_len == 0);
	return port_for_hash(c, sp_key_hash(key, key_len));
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
	route->workers = c->workers;
	route->base_port = c->base_port;
	route->first = 0;
	route->count = c->partitions;
	return true;
}

int
sp_client_route_owner(const struct sp_client *c, uint32_t partition)
{
	ASSERT(c != NULL);
	if (!c->have_route || partition >= c->partitions)
		return -ENOENT;
	ASSERT(c->owner[partition] < c->workers);
	return c->owner[partition];
}

/*
 * Fetches one ROUTE page starting at `first` and copies its owners into c->fetch (grown
 * as needed). *page gets the page's header fields. Returns 0, -ETIMEDOUT, -SP_EMALFORMED,
 * -ENOMEM or a socket error. Never touches the table in use.
 */
static int
fetch_page(struct sp_client *c, uint32_t first, struct sp_bp_route *page)
{
	struct sp_bp_req q = {.opcode = SP_BP_OP_ROUTE, .route_first = first};
	struct sp_bp_builder b;

	for (uint32_t attempt = 0; attempt <= c->retries; attempt++) {
		q.request_id = c->next_id++;
		sp_bp_builder_init(&b, c->txbuf, sizeof(c->txbuf), false, c->next_dgram++);
		VERIFY(sp_bp_add_request(&b, &q) == 0);
		uint32_t len = sp_bp_builder_finish(&b);
		(void)send_to(c, c->txbuf, len, ntohs(c->node.sin_port));
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
					if ((uint32_t)page->base_port + page->workers - 1 >
					    UINT16_MAX)
						return -SP_EMALFORMED;
					if (page->partitions > c->fetch_cap) {
						uint16_t *o = realloc(c->fetch, page->partitions *
						                                        sizeof(*o));
						if (o == NULL)
							return -ENOMEM;
						c->fetch = o;
						c->fetch_cap = page->partitions;
					}
					ASSERT(first + page->count <= c->fetch_cap);
					for (uint32_t j = 0; j < page->count; j++)
						c->fetch[first + j] = sp_bp_route_owner(page, j);
					return 0;
				}
			}
		}
	}
	return -ETIMEDOUT;
}

/* Fetches every page of the table into c->fetch. Returns 0 with *head filled, or an error. */
static int
fetch_table(struct sp_client *c, struct sp_bp_route *head)
{
	ASSERT(c != NULL);
	ASSERT(!c->no_route);
	/* Pages from two epochs would mix two tables: start over, a bounded number of times. */
	for (uint32_t round = 0; round <= SP_CLIENT_RETRIES_MAX; round++) {
		struct sp_bp_route page;
		bool mixed = false;

		int rc = fetch_page(c, 0, head);
		if (rc != 0)
			return rc;
		if (head->count == 0)
			return -SP_EMALFORMED;
		uint32_t pages = 1;
		for (uint32_t first = head->count; first < head->partitions; first += page.count) {
			if (++pages > SP_CLIENT_ROUTE_PAGES_MAX)
				return -SP_EMALFORMED;
			rc = fetch_page(c, first, &page);
			if (rc != 0)
				return rc;
			if (page.epoch != head->epoch || page.partitions != head->partitions ||
			    page.workers != head->workers || page.base_port != head->base_port) {
				mixed = true;
				break;
			}
			if (page.count == 0)
				return -SP_EMALFORMED;
		}
		if (!mixed)
			return 0;
	}
	return -SP_EMALFORMED;
}

int
sp_client_route_refresh(struct sp_client *c)
{
	struct sp_bp_route head;

	ASSERT(c != NULL);
	if (c->no_route)
		return -ENOTSUP;
	c->st.route_refreshes++;
	int rc = fetch_table(c, &head);
	uint64_t now = sp_mono_ns();
	if (rc != 0) {
		/* Keep the table in use (if any); try again after a short pause. */
		c->route_next_ns = now + (uint64_t)SP_CLIENT_ROUTE_RETRY_MS * SP_NS_PER_MS;
		return rc;
	}
	uint16_t *old = c->owner;
	uint32_t old_cap = c->owner_cap;
	c->owner = c->fetch;
	c->owner_cap = c->fetch_cap;
	c->fetch = old;
	c->fetch_cap = old_cap;
	c->epoch = head.epoch;
	c->partitions = head.partitions;
	c->workers = head.workers;
	c->base_port = head.base_port;
	c->have_route = true;
	c->route_stale = false;
	c->route_next_ns = now + c->route_refresh_ns;
	ASSERT(c->partitions <= c->owner_cap);
	return 0;
}

/* ---- Create / destroy ------------------------------------------------------------------- */

struct sp_client *
sp_client_create(const struct sp_client_params *params, int *err)
{
	struct sp_client *c = NULL;
	int rc = -EINVAL;

	if (params == NULL || params->host == NULL || params->port == 0)
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
	c->node.sin_family = AF_INET;
	c->node.sin_port = htons(params->port);
	if (inet_pton(AF_INET, params->host, &c->node.sin_addr) != 1)
		goto fail;
	c->timeout_ms = params->timeout_ms != 0 ? params->timeout_ms : SP_CLIENT_TIMEOUT_MS_DEF;
	c->retries = params->retries < 0 ? SP_CLIENT_RETRIES_DEF : (uint32_t)params->retries;
	c->no_route = params->no_route;
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

/* Checks an operation before it is sent. Returns 0, -EINVAL or -SP_ETOOBIG. */
static int
op_validate(const struct sp_client_op *op)
{
	ASSERT(op != NULL);
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
	return op->opcode == SP_BP_OP_GET || (op->opcode == SP_BP_OP_SET && op->cas == 0);
}

static struct sp_bp_req
op_request(const struct sp_client_op *op, uint32_t request_id)
{
	ASSERT(op != NULL);
	ASSERT(sp_bp_op_has_key(op->opcode));
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

/* Sends every op in state OP_SEND, packed per destination port. Returns 0 or -errno. */
static int
send_pending(struct sp_client *c, struct sp_client_op *ops, uint32_t n, uint32_t base_id)
{
	for (uint32_t i = 0; i < n; i++) {
		if (c->state[i] != OP_SEND)
			continue;
		struct sp_bp_builder b;
		uint16_t port = c->port[i];

		sp_bp_builder_init(&b, c->txbuf, sizeof(c->txbuf), false, c->next_dgram++);
		for (uint32_t j = i; j < n; j++) {
			if (c->state[j] != OP_SEND || c->port[j] != port)
				continue;
			struct sp_bp_req q = op_request(&ops[j], base_id + j);
			int rc = sp_bp_add_request(&b, &q);
			if (rc == -SP_EFULL)
				break;
			VERIFY(rc == 0); /* validated before the round */
			c->state[j] = OP_WAIT;
			ops[j].attempts++;
		}
		/* Op i always fits in an empty datagram, so each pass makes progress. */
		VERIFY(c->state[i] == OP_WAIT);
		uint32_t len = sp_bp_builder_finish(&b);
		int rc = send_to(c, c->txbuf, len, port);
		if (rc == -EBADF || rc == -ENOTSOCK)
			return rc;
		/* Any other send failure counts as a lost datagram: the retry path covers it.
		 * Ops after i still in OP_SEND (other ports, or a full datagram) are picked up
		 * as the scan reaches them. */
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
	if (r->status == SP_BP_ST_WRONG_PARTITION) {
		c->st.wrong_partition++;
		c->route_stale = true;
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
		uint64_t v = 0;
		for (unsigned i = 0; i < SP_BP_COUNTER_REPLY_SIZE; i++)
			v |= (uint64_t)r->value[i] << (8 * i);
		op->number = v;
	}
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
				if (r->status == SP_BP_ST_SERVER_BUSY &&
				    ops[idx].attempts <= c->retries) {
					/* Refused without being executed (protocol.md), so it is
					 * sent again whatever the operation. */
					c->state[idx] = OP_SEND;
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
		c->port[i] = sp_client_port_for_key(c, op->key, op->key_len);
		c->state[i] = OP_SEND;
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
					c->st.retries++;
				} else {
					c->state[i] = OP_DONE; /* rc stays -ETIMEDOUT */
					c->st.timeouts++;
				}
			}
			ASSERT(c->state[i] != OP_SEND || ops[i].attempts <= c->retries);
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
	if (!c->no_route && (c->route_stale || sp_mono_ns() >= c->route_next_ns))
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
