/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "addr.h"
#include "io.h"

#define MOD "cp-io"

struct cp_peer *
cp_peer_find(struct cp_io *io, uint64_t id)
{
	for (uint32_t i = 0; i < io->n_peers; i++)
		if (io->peers[i].id == id)
			return &io->peers[i];
	return NULL;
}

struct cp_peer *
cp_peer_upsert(struct cp_io *io, uint64_t id, const char *name, const char *addr)
{
	ASSERT(id != 0);
	struct cp_peer *p = cp_peer_find(io, id);
	if (p == NULL) {
		if (io->n_peers == SP_MEMBERS_MAX)
			return NULL;
		p = &io->peers[io->n_peers++];
		memset(p, 0, sizeof(*p));
		p->id = id;
	}
	ASSERT(p->id == id);
	if (name && name[0])
		snprintf(p->name, sizeof(p->name), "%s", name);
	if (addr && addr[0] && strcmp(p->addr, addr) != 0) {
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
		p->retry_ticks = 0;
	}
	return p;
}

static void conn_close(struct cp_conn *c, const char *why);

void
cp_io_peer_removed(struct cp_io *io, uint64_t id)
{
	ASSERT(id != io->id);
	io->removed_ids[io->n_removed++ % RAFT_NODES_MAX] = id;
	struct cp_peer *p = cp_peer_find(io, id);
	if (p == NULL)
		return;
	if (p->out && cp_conn_alive(io, p->out, p->out_serial))
		conn_close(p->out, "member removed");
	*p = io->peers[--io->n_peers];
	ASSERT(cp_peer_find(io, id) == NULL);
}

void
cp_io_peer_readded(struct cp_io *io, uint64_t id)
{
	for (uint32_t i = 0; i < RAFT_NODES_MAX; i++)
		if (io->removed_ids[i] == id)
			io->removed_ids[i] = 0;
}

int
cp_io_send_peer(struct cp_io *io, uint64_t id, uint8_t type, const void *buf, uint32_t len)
{
	ASSERT(type == FRAME_RAFT || type == FRAME_LIVENESS);
	if (io->isolated)
		return -EAGAIN; /* the fault switch (SIGUSR1) cuts this member off */
	struct cp_peer *p = cp_peer_find(io, id);
	if (p == NULL)
		return -SP_ENOTFOUND;
	if (p->out == NULL || !cp_conn_alive(io, p->out, p->out_serial) ||
	    p->out->state != CP_CS_READY) {
		p->msgs_dropped++;
		return -EAGAIN; /* Raft retries; a lost message is never a correctness problem */
	}
	int err = cp_conn_send_frame(p->out, type, buf, len, NULL, 0);
	if (err == 0)
		p->msgs_sent++;
	else
		p->msgs_dropped++;
	return err;
}

bool
cp_conn_alive(const struct cp_io *io, const struct cp_conn *c, uint64_t serial)
{
	for (uint32_t i = 0; i < CP_CONNS_MAX; i++)
		if (io->conns[i] == c)
			return c->serial == serial && c->state != CP_CS_CLOSING;
	return false;
}

static struct io_uring_sqe *
get_sqe(struct cp_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(io->ring);
	if (sqe == NULL) {
		io_uring_submit(io->ring);
		sqe = io_uring_get_sqe(io->ring);
	}
	VERIFY(sqe != NULL); /* io_uring_submit emptied the submission queue */
	return sqe;
}

static void
submit_accept(struct cp_io *io, struct cp_listener *l)
{
	ASSERT(l->fd >= 0);
	ASSERT(l->kind == CP_CONN_PEER_IN || l->kind == CP_CONN_CLIENT);
	struct io_uring_sqe *sqe = get_sqe(io);
	l->peer_len = sizeof(l->peer);
	io_uring_prep_accept(sqe, l->fd, (struct sockaddr *)&l->peer, &l->peer_len, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &l->op);
}

static int
listen_on(struct cp_io *io, struct cp_listener *l, const char *addr, uint32_t kind)
{
	struct sockaddr_in sa;
	if (cp_parse_addr(addr, &sa)) {
		SP_LOG_ERR(MOD, "cannot parse listen address '%s'; expected IPv4:port", addr);
		return -EINVAL;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/*
	 * A member restarted right after it died may find its port still taken: the kernel
	 * releases a dead process's io_uring (and the listening socket its pending accept
	 * holds) from a work queue, after the process is gone. Wait for that, bounded.
	 */
	for (uint32_t tries = 0;; tries++) {
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 128) == 0)
			break;
		int err = -errno;
		if (err == -EADDRINUSE && tries < CP_LISTEN_RETRIES_MAX) {
			if (tries == 0)
				SP_LOG_WARN(MOD, "%s is still in use; retrying for up to %u ms",
				            addr, CP_LISTEN_RETRIES_MAX * CP_LISTEN_RETRY_MS);
			usleep(CP_LISTEN_RETRY_MS * 1000u);
			continue;
		}
		SP_LOG_ERR(MOD, "cannot listen on %s: %s", addr, strerror(-err));
		close(fd);
		return err;
	}
	l->fd = fd;
	l->kind = kind;
	l->op = (struct cp_op){CP_OP_MAGIC, CP_OP_ACCEPT, l};
	submit_accept(io, l);
	return 0;
}

void
cp_io_setup(struct cp_io *io, const struct cp_config *cfg, uint64_t id, const uint8_t *secret,
            size_t secret_len, struct io_uring *ring, struct cp_stats *stats,
            const struct cp_io_handlers *handlers)
{
	VERIFY(secret_len <= sizeof(io->secret));
	ASSERT(handlers != NULL);
	memset(io, 0, sizeof(*io));
	io->cfg = cfg;
	io->id = id;
	memcpy(io->secret, secret, secret_len);
	io->secret_len = secret_len;
	io->ring = ring;
	io->stats = stats;
	io->handlers = *handlers;
	io->lpeer.fd = -1;
	io->lclient.fd = -1;
}

int
cp_io_listen(struct cp_io *io)
{
	int err = listen_on(io, &io->lpeer, io->cfg->listen_peer, CP_CONN_PEER_IN);
	if (err)
		return err;
	return listen_on(io, &io->lclient, io->cfg->listen_client, CP_CONN_CLIENT);
}

/* The slots of a connection kind: members' and clients' pools never mix. */
static void
slot_range(uint32_t kind, uint32_t *lo, uint32_t *hi)
{
	ASSERT(kind != 0 && kind < CP_CONN_KIND_END);
	*lo = kind == CP_CONN_CLIENT ? CP_PEER_CONNS_MAX : 0;
	*hi = kind == CP_CONN_CLIENT ? CP_CONNS_MAX : CP_PEER_CONNS_MAX;
	ASSERT(*lo < *hi);
}

static struct cp_conn *
conn_new(struct cp_io *io, int fd, uint32_t kind)
{
	uint32_t lo, hi, slot = CP_CONNS_MAX;
	slot_range(kind, &lo, &hi);
	for (uint32_t i = lo; i < hi; i++) {
		if (io->conns[i] == NULL) {
			slot = i;
			break;
		}
	}
	if (slot == CP_CONNS_MAX)
		return NULL;
	struct cp_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->rcap = CP_RECV_PREAUTH; /* grows to CP_RECV_CHUNK once authenticated */
	c->rbuf = malloc(c->rcap);
	if (c->rbuf == NULL) {
		free(c);
		return NULL;
	}
	c->io = io;
	c->fd = fd;
	c->kind = kind;
	c->serial = ++io->conn_serial;
	c->opened_ns = sp_mono_ns();
	c->op_recv = (struct cp_op){CP_OP_MAGIC, CP_OP_RECV, c};
	c->op_send = (struct cp_op){CP_OP_MAGIC, CP_OP_SEND, c};
	c->op_connect = (struct cp_op){CP_OP_MAGIC, CP_OP_CONNECT, c};
	ASSERT(c->state == 0); /* the caller sets where the handshake starts */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	io->conns[slot] = c;
	return c;
}

/* Takes c out of the connection table (its slot is free at once); it waits on
 * io->closing for its last I/O. */
static void
conn_detach(struct cp_conn *c)
{
	struct cp_io *io = c->io;
	ASSERT(c->state == CP_CS_CLOSING);
	for (uint32_t i = 0; i < CP_CONNS_MAX; i++)
		if (io->conns[i] == c) {
			io->conns[i] = NULL;
			c->next_closing = io->closing;
			io->closing = c;
			return;
		}
}

static void
conn_free(struct cp_conn *c)
{
	struct cp_io *io = c->io;
	ASSERT(!c->send_inflight && !c->recv_inflight && !c->connect_inflight);
	for (uint32_t i = 0; i < CP_CONNS_MAX; i++)
		if (io->conns[i] == c)
			io->conns[i] = NULL;
	for (struct cp_conn **pp = &io->closing; *pp; pp = &(*pp)->next_closing)
		if (*pp == c) {
			*pp = c->next_closing;
			break;
		}
	if (io->handlers.conn_closed != NULL)
		io->handlers.conn_closed(io->handlers.arg, c);
	for (uint32_t i = 0; i < io->n_peers; i++)
		if (io->peers[i].out == c)
			io->peers[i].out = NULL;
	while (c->sq_head) {
		struct cp_sendbuf *b = c->sq_head;
		c->sq_head = b->next;
		free(b);
	}
	close(c->fd);
	free(c->rbuf);
	free(c);
}

static void
conn_close(struct cp_conn *c, const char *why)
{
	if (c->state != CP_CS_CLOSING) {
		SP_LOG_DEBUG(MOD, "closing connection (kind %u, peer %llu): %s", c->kind,
		             (unsigned long long)c->peer_id, why);
		c->state = CP_CS_CLOSING;
		shutdown(c->fd, SHUT_RDWR); /* completes what is in flight */
		conn_detach(c);
	}
	if (!c->send_inflight && !c->recv_inflight && !c->connect_inflight)
		conn_free(c);
}

static void
submit_recv(struct cp_conn *c)
{
	if (c->recv_inflight || c->state == CP_CS_CLOSING)
		return;
	ASSERT(c->rlen <= c->rcap);
	bool ready = c->state == CP_CS_READY;
	if (ready && c->rcap - c->rlen < CP_RECV_CHUNK / 4) {
		size_t cap = c->rcap < CP_RECV_CHUNK ? CP_RECV_CHUNK : c->rcap * 2;
		uint8_t *p = realloc(c->rbuf, cap);
		if (p == NULL) {
			conn_close(c, "out of memory for the receive buffer");
			return;
		}
		c->rbuf = p;
		c->rcap = cap;
	}
	struct io_uring_sqe *sqe = get_sqe(c->io);
	io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
	io_uring_sqe_set_data(sqe, &c->op_recv);
	c->recv_inflight = true;
}

static void
submit_send(struct cp_conn *c)
{
	if (c->send_inflight || c->sq_head == NULL || c->state == CP_CS_CLOSING ||
	    c->state == CP_CS_CONNECTING)
		return;
	/* Everything queued goes in one sendmsg: many small Raft frames, one system call. */
	unsigned n = 0;
	ASSERT(c->sq_bytes > 0);
	for (struct cp_sendbuf *b = c->sq_head; b && n < CP_SEND_IOV_MAX; b = b->next, n++) {
		ASSERT(b->off < b->len);
		c->iov[n].iov_base = b->data + b->off;
		c->iov[n].iov_len = b->len - b->off;
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = n;
	struct io_uring_sqe *sqe = get_sqe(c->io);
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, &c->op_send);
	c->send_inflight = true;
}

int
cp_conn_send_frame(struct cp_conn *c, uint8_t type, const void *a, uint32_t alen, const void *b,
                   uint32_t blen)
{
	if (c->state == CP_CS_CLOSING)
		return -EPIPE;
	uint64_t len = FRAME_HDR + (uint64_t)alen + blen;
	if (len > FRAME_LEN_MAX)
		return -SP_ETOOBIG;
	if (c->sq_bytes + len > CP_SENDQ_BYTES_MAX) {
		conn_close(c, "send queue over its bound (peer too slow)");
		return -SP_EFULL;
	}
	struct cp_sendbuf *sb = malloc(sizeof(*sb) + len);
	if (sb == NULL)
		return -ENOMEM;
	sb->next = NULL;
	sb->len = (uint32_t)len;
	sb->off = 0;
	frame_header(sb->data, type, alen + blen);
	if (alen)
		memcpy(sb->data + FRAME_HDR, a, alen);
	if (blen)
		memcpy(sb->data + FRAME_HDR + alen, b, blen);
	if (c->sq_tail)
		c->sq_tail->next = sb;
	else
		c->sq_head = sb;
	c->sq_tail = sb;
	c->sq_bytes += len;
	submit_send(c);
	return 0;
}

static void
send_challenge(struct cp_conn *c)
{
	uint8_t body[1 + FRAME_NONCE_LEN];
	ASSERT(c->kind != CP_CONN_PEER_OUT); /* the acceptor challenges */
	ASSERT(c->state == 0);
	frame_random_nonce(c->nonce_mine);
	body[0] = FRAME_AUTH_VERSION;
	memcpy(body + 1, c->nonce_mine, FRAME_NONCE_LEN);
	cp_conn_send_frame(c, FRAME_CHALLENGE, body, sizeof(body), NULL, 0);
	c->state = CP_CS_WAIT_AUTH;
}

static void
bad_frame(struct cp_conn *c, const char *why, bool auth)
{
	struct cp_io *io = c->io;
	ASSERT(why != NULL);
	cp_stats_add(io->stats, auth ? &io->stats->m.auth_failures : &io->stats->m.frames_bad, 1);
	if (sp_log_limit_hit(&io->lim_bad, sp_mono_ns()))
		SP_LOG_WARN(MOD, "connection from %s:%u closed: %s", inet_ntoa(c->addr.sin_addr),
		            ntohs(c->addr.sin_port), why);
	conn_close(c, why);
}

static bool
peer_was_removed(struct cp_io *io, uint64_t id)
{
	for (uint32_t i = 0; i < SP_MIN(io->n_removed, (uint32_t)RAFT_NODES_MAX); i++)
		if (io->removed_ids[i] == id)
			return true;
	return false;
}

/* Handles one whole frame. Returns false when the connection was closed. */
static bool
on_frame(struct cp_conn *c, const struct frame *f)
{
	struct cp_io *io = c->io;
	ASSERT(f->len <= FRAME_LEN_MAX);
	ASSERT(c->state != CP_CS_CLOSING); /* on_recv stops at a closed connection */

	switch (c->state) {
	case CP_CS_WAIT_AUTH: {
		struct frame_auth a;
		uint8_t expect[FRAME_MAC_LEN], reply[FRAME_MAC_LEN];
		uint8_t want_role = c->kind == CP_CONN_CLIENT ? FRAME_ROLE_CLIENT : FRAME_ROLE_PEER;
		if (f->type != FRAME_AUTH || frame_auth_decode(f->payload, f->len, &a) ||
		    a.role != want_role) {
			bad_frame(c, "expected an AUTH frame for this port", true);
			return false;
		}
		frame_mac_initiator(io->secret, io->secret_len, c->nonce_mine, a.nonce, a.role,
		                    a.node_id, expect);
		if (!frame_mac_equal(expect, a.mac)) {
			bad_frame(c, "authentication failed (wrong cluster secret)", true);
			return false;
		}
		frame_mac_acceptor(io->secret, io->secret_len, a.nonce, c->nonce_mine, reply);
		cp_conn_send_frame(c, FRAME_AUTH_OK, reply, sizeof(reply), NULL, 0);
		c->peer_id = a.node_id;
		c->state = CP_CS_READY;
		return true;
	}
	case CP_CS_WAIT_CHALLENGE: {
		if (f->type != FRAME_CHALLENGE || f->len != 1 + FRAME_NONCE_LEN ||
		    f->payload[0] != FRAME_AUTH_VERSION) {
			bad_frame(c, "expected a CHALLENGE frame", true);
			return false;
		}
		struct frame_auth a = {.role = FRAME_ROLE_PEER, .node_id = io->id};
		uint8_t body[FRAME_AUTH_LEN];
		frame_random_nonce(c->nonce_mine);
		memcpy(a.nonce, c->nonce_mine, FRAME_NONCE_LEN);
		frame_mac_initiator(io->secret, io->secret_len, f->payload + 1, a.nonce, a.role,
		                    a.node_id, a.mac);
		frame_auth_encode(&a, body);
		cp_conn_send_frame(c, FRAME_AUTH, body, sizeof(body), NULL, 0);
		/* The acceptor's nonce is needed to check its proof in AUTH_OK. */
		memcpy(c->nonce_peer, f->payload + 1, FRAME_NONCE_LEN);
		c->state = CP_CS_WAIT_AUTH_OK;
		return true;
	}
	case CP_CS_WAIT_AUTH_OK: {
		uint8_t expect[FRAME_MAC_LEN];
		if (f->type != FRAME_AUTH_OK || f->len != FRAME_MAC_LEN) {
			bad_frame(c, "expected an AUTH_OK frame", true);
			return false;
		}
		frame_mac_acceptor(io->secret, io->secret_len, c->nonce_mine, c->nonce_peer,
		                   expect);
		if (!frame_mac_equal(expect, f->payload)) {
			bad_frame(c, "the member did not prove the cluster secret", true);
			return false;
		}
		c->state = CP_CS_READY;
		return true;
	}
	case CP_CS_READY: {
		enum cp_route r = cp_frame_route(c->kind, f->type);
		if ((r == CP_ROUTE_RAFT || r == CP_ROUTE_LIVENESS) &&
		    peer_was_removed(io, c->peer_id)) {
			/* It may never see its removal commit: tell it, once; hear nothing else. */
			if (r == CP_ROUTE_RAFT && !c->told_removed)
				cp_conn_send_frame(c, FRAME_REMOVED, &c->peer_id, 8, NULL, 0);
			c->told_removed = c->told_removed || r == CP_ROUTE_RAFT;
			return true;
		}
		if (r == CP_ROUTE_REMOVED && (f->len != 8 || memcmp(f->payload, &io->id, 8) != 0))
			r = CP_ROUTE_NONE; /* a notice for someone else is a bad frame */
		if (r == CP_ROUTE_NONE ||
		    cp_dispatch(&io->handlers, c, c->kind, c->peer_id, f->type, f->payload,
		                f->len) == CP_ROUTE_NONE) {
			bad_frame(c, "unexpected frame type", false);
			return false;
		}
		return c->state != CP_CS_CLOSING;
	}
	default:
		bad_frame(c, "frame in an unexpected state", false);
		return false;
	}
}

static void
on_recv(struct cp_conn *c, int res)
{
	ASSERT(c->recv_inflight);
	c->recv_inflight = false;
	if (c->state == CP_CS_CLOSING || res <= 0) {
		conn_close(c, res == 0 ? "closed by the other side" : "receive failed");
		return;
	}
	ASSERT((size_t)res <= c->rcap - c->rlen);
	c->rlen += (size_t)res;
	size_t off = 0;
	while (off < c->rlen) {
		uint32_t max = c->state != CP_CS_READY     ? FRAME_PREAUTH_MAX
		               : c->kind == CP_CONN_CLIENT ? CP_JSON_MAX
		                                           : FRAME_LEN_MAX;
		struct frame f;
		int64_t n = frame_parse(c->rbuf + off, c->rlen - off, max, &f);
		if (n < 0) {
			bad_frame(c,
			          n == -SP_ETOOBIG ? "frame over its size limit"
			                           : "malformed frame",
			          c->state != CP_CS_READY);
			return;
		}
		if (n == 0)
			break;
		if (!on_frame(c, &f))
			return;
		off += (size_t)n;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	/* A frame larger than the buffer grows it (bounded by the frame limit). */
	if (c->rlen >= 4) {
		uint32_t need;
		memcpy(&need, c->rbuf, 4);
		if ((size_t)need + 4 > c->rcap) {
			uint8_t *p = realloc(c->rbuf, (size_t)need + 4 + CP_RECV_CHUNK);
			if (p == NULL) {
				conn_close(c, "out of memory for a frame");
				return;
			}
			c->rbuf = p;
			c->rcap = (size_t)need + 4 + CP_RECV_CHUNK;
		}
	}
	submit_recv(c);
}

static void
on_send(struct cp_conn *c, int res)
{
	c->send_inflight = false;
	if (c->state == CP_CS_CLOSING || res < 0) {
		conn_close(c, "send failed");
		return;
	}
	size_t sent = (size_t)res;
	ASSERT(sent <= c->sq_bytes);
	while (sent && c->sq_head) {
		struct cp_sendbuf *b = c->sq_head;
		size_t left = b->len - b->off;
		if (sent < left) {
			b->off += (uint32_t)sent;
			break;
		}
		sent -= left;
		c->sq_head = b->next;
		if (c->sq_head == NULL)
			c->sq_tail = NULL;
		c->sq_bytes -= b->len;
		free(b);
	}
	submit_send(c);
}

/*
 * Makes room for a connection from src on a listener of this kind: when src already holds
 * CP_PREAUTH_PER_SOURCE_MAX unauthenticated connections of the pool, its oldest one is
 * closed; when the pool is full, the oldest unauthenticated connection of any address is.
 * A client that knows the secret authenticates within a round trip, so only connections
 * that have not (idle or hostile ones) are ever closed for room.
 */
static void
make_room(struct cp_io *io, uint32_t kind, struct in_addr src)
{
	uint32_t lo, hi, free_slots = 0, same = 0;
	struct cp_conn *oldest = NULL, *oldest_same = NULL;
	ASSERT(kind == CP_CONN_PEER_IN || kind == CP_CONN_CLIENT);
	slot_range(kind, &lo, &hi);
	for (uint32_t i = lo; i < hi; i++) {
		struct cp_conn *c = io->conns[i];
		if (c == NULL) {
			free_slots++;
			continue;
		}
		if (c->state != CP_CS_WAIT_AUTH)
			continue;
		if (oldest == NULL || c->opened_ns < oldest->opened_ns)
			oldest = c;
		if (c->addr.sin_addr.s_addr == src.s_addr) {
			same++;
			if (oldest_same == NULL || c->opened_ns < oldest_same->opened_ns)
				oldest_same = c;
		}
	}
	struct cp_conn *victim = same >= CP_PREAUTH_PER_SOURCE_MAX ? oldest_same
	                         : free_slots == 0                 ? oldest
	                                                           : NULL;
	if (victim) {
		cp_stats_add(io->stats, &io->stats->m.conns_evicted, 1);
		conn_close(victim, "unauthenticated; closed to make room");
	}
}

static void
on_accept(struct cp_io *io, struct cp_listener *l, int res)
{
	submit_accept(io, l);
	if (res < 0)
		return;
	make_room(io, l->kind, l->peer.sin_addr);
	struct cp_conn *c = conn_new(io, res, l->kind);
	if (c == NULL) {
		cp_stats_add(io->stats, &io->stats->m.conns_refused, 1);
		if (sp_log_limit_hit(&io->lim_refused, sp_mono_ns()))
			SP_LOG_WARN(MOD,
			            "refusing a %s connection from %s: every slot holds an "
			            "authenticated connection",
			            l->kind == CP_CONN_CLIENT ? "client" : "member",
			            inet_ntoa(l->peer.sin_addr));
		close(res);
		return;
	}
	c->addr = l->peer;
	cp_stats_add(io->stats, &io->stats->m.conns_accepted, 1);
	send_challenge(c);
	submit_recv(c);
}

static void
peer_connect(struct cp_io *io, struct cp_peer *p)
{
	struct sockaddr_in sa;
	ASSERT(p->id != io->id);
	ASSERT(p->out == NULL);
	if (cp_parse_addr(p->addr, &sa))
		return;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct cp_conn *c = conn_new(io, fd, CP_CONN_PEER_OUT);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->addr = sa;
	c->peer_id = p->id;
	c->state = CP_CS_CONNECTING;
	p->out = c;
	p->out_serial = c->serial;
	struct io_uring_sqe *sqe = get_sqe(io);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->addr, sizeof(c->addr));
	io_uring_sqe_set_data(sqe, &c->op_connect);
	c->connect_inflight = true;
}

static void
on_connect(struct cp_conn *c, int res)
{
	ASSERT(c->kind == CP_CONN_PEER_OUT);
	c->connect_inflight = false;
	if (c->state == CP_CS_CLOSING || res < 0) {
		conn_close(c, "connect failed");
		return;
	}
	c->state = CP_CS_WAIT_CHALLENGE;
	submit_recv(c);
	submit_send(c);
}

void
cp_io_complete(struct cp_io *io, struct io_uring_cqe *cqe)
{
	struct cp_op *op = io_uring_cqe_get_data(cqe);
	if (op == NULL || op->magic != CP_OP_MAGIC)
		return;
	ASSERT(op->owner != NULL);
	ASSERT(op->kind != CP_OP_TICK); /* main.c's own */
	switch (op->kind) {
	case CP_OP_ACCEPT:
		on_accept(io, op->owner, cqe->res);
		break;
	case CP_OP_RECV:
		on_recv(op->owner, cqe->res);
		break;
	case CP_OP_SEND:
		on_send(op->owner, cqe->res);
		break;
	case CP_OP_CONNECT:
		on_connect(op->owner, cqe->res);
		break;
	default:
		break;
	}
}

/* Closes connections that have not authenticated within --auth-timeout-ms (ours to
 * members included: a member that accepts but never answers is tried again later). */
static void
expire_handshakes(struct cp_io *io, uint64_t now)
{
	uint64_t limit = (uint64_t)io->cfg->auth_timeout_ms * 1000000u;
	ASSERT(limit > 0);
	for (uint32_t i = 0; i < CP_CONNS_MAX; i++) {
		struct cp_conn *c = io->conns[i];
		if (c == NULL || c->state == CP_CS_READY || c->state == CP_CS_CLOSING ||
		    now - c->opened_ns < limit)
			continue;
		if (c->kind != CP_CONN_PEER_OUT)
			cp_stats_add(io->stats, &io->stats->m.auth_timeouts, 1);
		conn_close(c, "not authenticated in time");
	}
}

/* The counts behind the log lines that were held back in the last second. */
static void
flush_log_limits(struct cp_io *io, uint64_t now)
{
	uint64_t n = sp_log_limit_flush(&io->lim_refused, now);
	if (n)
		SP_LOG_WARN(MOD, "refused %llu more connections in the last second",
		            (unsigned long long)n);
	n = sp_log_limit_flush(&io->lim_bad, now);
	if (n)
		SP_LOG_WARN(MOD,
		            "closed %llu more connections for bad frames or authentication "
		            "in the last second",
		            (unsigned long long)n);
}

void
cp_io_tick(struct cp_io *io)
{
	uint64_t now = sp_mono_ns();
	expire_handshakes(io, now);
	flush_log_limits(io, now);
	for (uint32_t i = 0; i < io->n_peers; i++) {
		struct cp_peer *p = &io->peers[i];
		if (p->id == io->id || p->addr[0] == '\0')
			continue;
		if (p->out && cp_conn_alive(io, p->out, p->out_serial))
			continue;
		p->out = NULL;
		if (p->retry_ticks) {
			p->retry_ticks--;
			continue;
		}
		p->retry_ticks = CP_RECONNECT_TICKS;
		peer_connect(io, p);
	}
}

/* One connection's own invariants. */
static bool
conn_ok(const struct cp_io *io, const struct cp_conn *c)
{
	if (c->io != io || c->fd < 0 || c->kind == 0 || c->kind >= CP_CONN_KIND_END)
		return false;
	if (c->state < CP_CS_CONNECTING || c->state > CP_CS_CLOSING)
		return false;
	if (c->rlen > c->rcap || c->rbuf == NULL)
		return false;
	if ((c->sq_head == NULL) != (c->sq_tail == NULL) || (c->sq_head == NULL && c->sq_bytes))
		return false;
	return c->kind != CP_CONN_CLIENT || c->peer_id == 0;
}

bool
cp_io_check_invariants(const struct cp_io *io)
{
	if (io->n_peers > SP_MEMBERS_MAX)
		return false;
	for (uint32_t i = 0; i < io->n_peers; i++) {
		if (io->peers[i].id == 0)
			return false;
		for (uint32_t j = i + 1; j < io->n_peers; j++)
			if (io->peers[j].id == io->peers[i].id)
				return false;
	}
	for (uint32_t i = 0; i < CP_CONNS_MAX; i++) {
		const struct cp_conn *c = io->conns[i];
		if (c == NULL)
			continue;
		uint32_t lo, hi;
		slot_range(c->kind, &lo, &hi);
		if (i < lo || i >= hi || !conn_ok(io, c) || c->state == CP_CS_CLOSING)
			return false;
	}
	uint32_t closing = 0;
	for (const struct cp_conn *c = io->closing; c != NULL; c = c->next_closing) {
		if (!conn_ok(io, c) || c->state != CP_CS_CLOSING || ++closing > CP_CONNS_MAX * 4u)
			return false; /* bounded: a cycle in the list is a bug */
	}
	return true;
}

void
cp_io_fini(struct cp_io *io)
{
	for (uint32_t i = 0; i < CP_CONNS_MAX; i++) {
		struct cp_conn *c = io->conns[i];
		if (c) {
			c->send_inflight = c->recv_inflight = c->connect_inflight = false;
			c->state = CP_CS_CLOSING;
			conn_free(c);
		}
	}
	while (io->closing) {
		struct cp_conn *c = io->closing;
		c->send_inflight = c->recv_inflight = c->connect_inflight = false;
		conn_free(c);
	}
	if (io->lpeer.fd >= 0)
		close(io->lpeer.fd);
	if (io->lclient.fd >= 0)
		close(io->lclient.fd);
	io->lpeer.fd = io->lclient.fd = -1;
}
