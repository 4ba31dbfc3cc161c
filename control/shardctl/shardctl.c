/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardctl: the operator's command line for a Shardplane cluster, in etcdctl's manner.
 * It speaks the client API of docs/control-api.md to shardplane-cp. See `shardctl --help`.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "ctl_args.h"
#include "ctl_retry.h"
#include "transport/frame.h"

#define RESP_MAX (96u << 20)

enum out_fmt { OUT_TABLE, OUT_JSON, OUT_SIMPLE };

static struct {
	const char *endpoints[CTL_ENDPOINTS_MAX];
	int n_endpoints;
	uint8_t secret[FRAME_SECRET_MAX];
	size_t secret_len;
	enum out_fmt fmt;
	bool serializable;
	bool cluster;
	const char *peer_urls; /* member add's flags */
	const char *client_urls;
	int dial_timeout_ms;
	int command_timeout_ms;
	uint64_t next_id;
} g = {.dial_timeout_ms = 2000, .command_timeout_ms = 10000};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;
	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int
io_full(int fd, void *buf, size_t len, bool rd, uint64_t deadline_ms)
{
	uint8_t *p = buf;
	while (len) {
		int64_t left = (int64_t)deadline_ms - (int64_t)sp_mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = rd ? POLLIN : POLLOUT};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		ssize_t n = rd ? recv(fd, p, len, 0) : send(fd, p, len, MSG_NOSIGNAL);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one frame (payload malloc'ed) of at most max bytes. */
static int
read_frame(int fd, uint8_t *type, uint8_t **payload, uint32_t *len, uint32_t max,
           uint64_t deadline_ms)
{
	uint8_t hdr[FRAME_HDR];
	int err = io_full(fd, hdr, sizeof(hdr), true, deadline_ms);
	if (err)
		return err;
	uint32_t flen;
	memcpy(&flen, hdr, 4);
	if (flen == 0 || flen - 1 > max)
		return -EPROTO;
	*type = hdr[4];
	*len = flen - 1;
	*payload = malloc(*len + 1);
	if (*payload == NULL)
		return -ENOMEM;
	err = io_full(fd, *payload, *len, true, deadline_ms);
	if (err) {
		free(*payload);
		return err;
	}
	(*payload)[*len] = '\0';
	return 0;
}

static int
write_frame(int fd, uint8_t type, const void *p, uint32_t len, uint64_t deadline_ms)
{
	uint8_t hdr[FRAME_HDR];
	frame_header(hdr, type, len);
	int err = io_full(fd, hdr, sizeof(hdr), false, deadline_ms);
	return err ? err : io_full(fd, (void *)p, len, false, deadline_ms);
}

/*
 * Connects and authenticates within --dial-timeout, and never after deadline_ms. Returns
 * the socket, or with a message in why: -EINVAL (not IP:PORT), -EACCES (the secret was
 * refused or not proven), another negative errno (no connection or no challenge).
 */
static int
dial(const char *addr, uint64_t deadline_ms, char *why, size_t why_len)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(why, why_len, "endpoint '%s' is not IP:PORT", addr);
		return -EINVAL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || sa.sin_port == 0) {
		snprintf(why, why_len, "endpoint '%s' is not IP:PORT", addr);
		return -EINVAL;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, why_len, "%s: socket: %s", addr, strerror(errno));
		return -errno;
	}
	uint64_t deadline = sp_mono_ms() + (uint64_t)g.dial_timeout_ms;
	if (deadline > deadline_ms)
		deadline = deadline_ms;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		snprintf(why, why_len, "%s: %s", addr, strerror(errno));
		close(fd);
		return -ECONNREFUSED;
	}
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	int64_t wait_ms = (int64_t)deadline - (int64_t)sp_mono_ms();
	if (wait_ms < 0)
		wait_ms = 0;
	if (poll(&pfd, 1, (int)wait_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) ||
	    soerr) {
		snprintf(why, why_len, "%s: %s", addr, soerr ? strerror(soerr) : "dial timeout");
		close(fd);
		return -ECONNREFUSED;
	}
	uint8_t type, *p;
	uint32_t len;
	int err = read_frame(fd, &type, &p, &len, FRAME_PREAUTH_MAX, deadline);
	if (err || type != FRAME_CHALLENGE || len != 1 + FRAME_NONCE_LEN) {
		if (err == 0)
			free(p);
		snprintf(why, why_len, "%s: no valid challenge from the server", addr);
		close(fd);
		return -EPROTO;
	}
	uint8_t nonce_a[FRAME_NONCE_LEN];
	memcpy(nonce_a, p + 1, FRAME_NONCE_LEN);
	free(p);
	struct frame_auth a = {.role = FRAME_ROLE_CLIENT};
	frame_random_nonce(a.nonce);
	frame_mac_initiator(g.secret, g.secret_len, nonce_a, a.nonce, a.role, 0, a.mac);
	uint8_t body[FRAME_AUTH_LEN];
	frame_auth_encode(&a, body);
	err = write_frame(fd, FRAME_AUTH, body, sizeof(body), deadline);
	if (err == 0)
		err = read_frame(fd, &type, &p, &len, FRAME_PREAUTH_MAX, deadline);
	if (err) {
		snprintf(why, why_len, "%s: authentication refused (wrong --secret-file?)", addr);
		close(fd);
		return -EACCES;
	}
	uint8_t expect[FRAME_MAC_LEN];
	frame_mac_acceptor(g.secret, g.secret_len, a.nonce, nonce_a, expect);
	bool ok = type == FRAME_AUTH_OK && len == FRAME_MAC_LEN && frame_mac_equal(expect, p);
	free(p);
	if (!ok) {
		snprintf(why, why_len, "%s: the server did not prove the cluster secret", addr);
		close(fd);
		return -EACCES;
	}
	return fd;
}

/*
 * One request to one endpoint, answered by deadline_ms. Returns the parsed response (what
 * the server said, ok or not), or NULL with a message in why and in *outcome whether the
 * request was sent (CTL_LOST), not sent (CTL_UNREACHABLE), or will never be (CTL_DENIED:
 * authentication refused, or addr is not IP:PORT).
 */
static json_object *
call_one(const char *addr, json_object *req, uint64_t deadline_ms, enum ctl_outcome *outcome,
         char *why, size_t why_len)
{
	int fd = dial(addr, deadline_ms, why, why_len);
	if (fd < 0) {
		*outcome = fd == -EACCES || fd == -EINVAL ? CTL_DENIED : CTL_UNREACHABLE;
		return NULL;
	}
	uint64_t deadline = deadline_ms;
	*outcome = CTL_LOST;
	json_object_object_add(req, "id", json_object_new_uint64(++g.next_id));
	size_t len;
	const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	uint8_t type, *p;
	uint32_t plen;
	int err = write_frame(fd, FRAME_REQUEST, s, (uint32_t)len, deadline);
	if (err == 0)
		err = read_frame(fd, &type, &p, &plen, RESP_MAX, deadline);
	close(fd);
	if (err) {
		snprintf(why, why_len, "%s: %s", addr,
		         err == -ETIMEDOUT ? "request timed out" : strerror(-err));
		return NULL;
	}
	json_object *resp = type == FRAME_RESPONSE ? json_tokener_parse((char *)p) : NULL;
	free(p);
	if (resp == NULL)
		snprintf(why, why_len, "%s: malformed response", addr);
	else
		*outcome = CTL_ANSWERED;
	return resp;
}

static const char *
jget_str(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

/* Whether op only reads, so that asking again after a lost answer is safe. */
static bool
op_is_read(const char *op)
{
	static const char *const writes[] = {
	        "member.add", "member.remove", "member.promote",      "move-leader",
	        "config.set", "config.del",    "partitions.rebalance"};
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		if (strcmp(op, writes[i]) == 0)
			return false;
	return true;
}

/*
 * Sends req to the cluster by the policy of ctl_retry.h: every endpoint in turn, the
 * leader a member names, rounds with backoff while an election is under way, all within
 * --command-timeout. Returns the result object (owned by the returned response,
 * *resp_out), or exits 1 with the server's error, or with the last failure when the
 * deadline passed. Consumes req.
 */
static json_object *
call(json_object *req, json_object **resp_out)
{
	char why[512] = "no endpoints";
	const char *op = jget_str(req, "op");
	struct ctl_retry r;
	uint64_t t0_ms = sp_mono_ms();

	assert(op != NULL);
	assert(g.n_endpoints >= 1);
	ctl_retry_init(&r, g.endpoints, (uint32_t)g.n_endpoints, op_is_read(op), t0_ms,
	               (uint32_t)g.command_timeout_ms, sp_mono_ns() ^ ((uint64_t)getpid() << 32));
	for (;;) {
		uint32_t pause_ms;
		const char *addr = ctl_retry_next(&r, sp_mono_ms(), &pause_ms);
		if (addr == NULL)
			break;
		if (pause_ms)
			usleep(pause_ms * 1000u);
		enum ctl_outcome o;
		char before[sizeof(why)];
		memcpy(before, why, sizeof(why));
		json_object *resp = call_one(addr, req, r.deadline_ms, &o, why, sizeof(why));
		const char *hint = NULL;
		if (resp) {
			json_object *ok;
			const char *code = jget_str(resp, "code");
			if (json_object_object_get_ex(resp, "ok", &ok) &&
			    json_object_get_boolean(ok))
				o = CTL_ANSWERED;
			else if (code && strcmp(code, "NOT_LEADER") == 0)
				o = CTL_NOT_LEADER, hint = jget_str(resp, "leader");
			else if (code && strcmp(code, "UNAVAILABLE") == 0)
				o = CTL_UNAVAILABLE;
			else if (code && strcmp(code, "TIMEOUT") == 0)
				o = CTL_LOST;
			if (o != CTL_ANSWERED)
				snprintf(why, sizeof(why), "%s: %s", addr, jget_str(resp, "error"));
		}
		if (ctl_retry_record(&r, o, hint) == CTL_RETRY) {
			if (resp)
				json_object_put(resp);
			continue;
		}
		json_object_put(req);
		if (o == CTL_ANSWERED) {
			json_object *ok, *result = NULL;
			if (json_object_object_get_ex(resp, "ok", &ok) &&
			    json_object_get_boolean(ok)) {
				json_object_object_get_ex(resp, "result", &result);
				*resp_out = resp;
				return result;
			}
			const char *code = jget_str(resp, "code");
			fprintf(stderr, "Error: %s (%s)\n", jget_str(resp, "error"),
			        code ? code : "?");
			json_object_put(resp);
			exit(1);
		}
		if (resp)
			json_object_put(resp);
		if (o == CTL_LOST && sp_mono_ms() >= r.deadline_ms)
			die("%s: no answer within --command-timeout %d ms (before: %s); the "
			    "request was sent, so it may or may not have been applied",
			    addr, g.command_timeout_ms, before);
		if (o == CTL_LOST)
			die("%s; the request was sent, so it may or may not have been applied",
			    why);
		die("%s", why);
	}
	json_object_put(req);
	die("%s (gave up after %u attempts in %llu ms; --command-timeout %d)", why, r.attempts,
	    (unsigned long long)(sp_mono_ms() - t0_ms), g.command_timeout_ms);
}

static json_object *
request(const char *op)
{
	json_object *r = json_object_new_object();
	json_object_object_add(r, "op", json_object_new_string(op));
	if (g.serializable)
		json_object_object_add(r, "serializable", json_object_new_boolean(1));
	return r;
}

static void
print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void
table_row(const char **cols, const int *w, int n)
{
	for (int i = 0; i < n; i++)
		printf("| %-*s ", w[i], cols[i]);
	printf("|\n");
}

static void
table_sep(const int *w, int n)
{
	for (int i = 0; i < n; i++) {
		printf("+");
		for (int k = 0; k < w[i] + 2; k++)
			putchar('-');
	}
	printf("+\n");
}

/* Prints rows (array of string arrays) as a table, simple list or nothing. */
static void
print_rows(const char **head, int ncol, char ***rows, int nrows)
{
	if (g.fmt == OUT_SIMPLE) {
		for (int r = 0; r < nrows; r++) {
			for (int c = 0; c < ncol; c++)
				printf("%s%s", c ? ", " : "", rows[r][c]);
			printf("\n");
		}
		return;
	}
	int w[16];
	for (int c = 0; c < ncol; c++) {
		w[c] = (int)strlen(head[c]);
		for (int r = 0; r < nrows; r++)
			if ((int)strlen(rows[r][c]) > w[c])
				w[c] = (int)strlen(rows[r][c]);
	}
	table_sep(w, ncol);
	table_row(head, w, ncol);
	table_sep(w, ncol);
	for (int r = 0; r < nrows; r++)
		table_row((const char **)rows[r], w, ncol);
	table_sep(w, ncol);
}

static char *
xstr(json_object *o, const char *k)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v))
		return strdup("");
	return strdup(json_object_get_string(v));
}

static void
free_rows(char ***rows, int nrows, int ncol)
{
	for (int r = 0; r < nrows; r++) {
		for (int c = 0; c < ncol; c++)
			free(rows[r][c]);
		free(rows[r]);
	}
	free(rows);
}

static void
cmd_member(int argc, char **argv)
{
	json_object *resp, *res, *req;
	if (argc < 1)
		die("member needs list, add, remove or promote");
	const char *sub = argv[0];
	if (strcmp(sub, "list") == 0) {
		res = call(request("member.list"), &resp);
		if (g.fmt == OUT_JSON) {
			print_json(res);
		} else {
			json_object *arr;
			json_object_object_get_ex(res, "members", &arr);
			int n = (int)json_object_array_length(arr);
			static const char *head[] = {"ID",        "NAME",        "ROLE",
			                             "PEER ADDR", "CLIENT ADDR", "DATAPLANE",
			                             "DP STATE"};
			char ***rows = calloc((size_t)n + 1, sizeof(*rows));
			for (int i = 0; i < n; i++) {
				json_object *m = json_object_array_get_idx(arr, i), *d, *dw;
				rows[i] = calloc(7, sizeof(char *));
				/* The leader's verdict on its dataplane, with the reason. */
				if (json_object_object_get_ex(m, "dp_why", &dw)) {
					char st[320];
					snprintf(st, sizeof(st), "%s: %s", jget_str(m, "dp_state"),
					         json_object_get_string(dw));
					rows[i][6] = strdup(st);
				} else {
					rows[i][6] = xstr(m, "dp_state");
				}
				char idhex[32];
				json_object *idv;
				json_object_object_get_ex(m, "id", &idv);
				snprintf(idhex, sizeof(idhex), "%llx",
				         (unsigned long long)json_object_get_uint64(idv));
				rows[i][0] = strdup(idhex);
				rows[i][1] = xstr(m, "name");
				rows[i][2] = xstr(m, "role");
				rows[i][3] = xstr(m, "peer");
				rows[i][4] = xstr(m, "client");
				if (json_object_object_get_ex(m, "dataplane", &d)) {
					char dp[96];
					json_object *port, *w;
					json_object_object_get_ex(d, "port", &port);
					json_object_object_get_ex(d, "workers", &w);
					snprintf(dp, sizeof(dp), "%s:%d x%d", jget_str(d, "ip"),
					         json_object_get_int(port), json_object_get_int(w));
					rows[i][5] = strdup(dp);
				} else {
					rows[i][5] = strdup("-");
				}
			}
			print_rows(head, 7, rows, n);
			free_rows(rows, n, 7);
		}
	} else if (strcmp(sub, "add") == 0) {
		const char *name = argc == 2 ? argv[1] : NULL;
		const char *peer = g.peer_urls, *client = g.client_urls ? g.client_urls : "";
		if (name == NULL || peer == NULL)
			die("member add NAME --peer-urls IP:PORT [--client-urls IP:PORT]");
		req = request("member.add");
		json_object_object_add(req, "name", json_object_new_string(name));
		json_object_object_add(req, "peer", json_object_new_string(peer));
		json_object_object_add(req, "client", json_object_new_string(client));
		res = call(req, &resp);
		if (g.fmt == OUT_JSON)
			print_json(res);
		else
			printf("Member %s added to the cluster as a learner; start it with "
			       "--name %s --initial-cluster-state existing\n",
			       name, name);
	} else if (strcmp(sub, "remove") == 0 || strcmp(sub, "promote") == 0) {
		if (argc != 2)
			die("member %s NAME|ID", sub);
		req = request(sub[0] == 'r' ? "member.remove" : "member.promote");
		json_object_object_add(req, "member", json_object_new_string(argv[1]));
		res = call(req, &resp);
		if (g.fmt == OUT_JSON)
			print_json(res);
		else
			printf("Member %s %s\n", argv[1], sub[0] == 'r' ? "removed" : "promoted");
	} else {
		die("member: unknown subcommand '%s' (list, add, remove, promote)", sub);
	}
	json_object_put(resp);
}

static void
status_rows(const char *ep, json_object *s, char **row)
{
	char buf[64];
	json_object *v;
	row[0] = strdup(ep);
	json_object_object_get_ex(s, "id", &v);
	snprintf(buf, sizeof(buf), "%llx", (unsigned long long)json_object_get_uint64(v));
	row[1] = strdup(buf);
	row[2] = xstr(s, "name");
	json_object_object_get_ex(s, "leader", &v);
	snprintf(buf, sizeof(buf), "%llx", (unsigned long long)json_object_get_uint64(v));
	row[3] = strdup(buf);
	row[4] = xstr(s, "term");
	row[5] = xstr(s, "commit");
	row[6] = xstr(s, "applied");
	row[7] = xstr(s, "role");
	json_object_object_get_ex(s, "log_bytes", &v);
	snprintf(buf, sizeof(buf), "%.1f kB", (double)json_object_get_uint64(v) / 1000.0);
	row[8] = strdup(buf);
	json_object *d, *age, *why;
	if (json_object_object_get_ex(s, "dataplane", &d)) {
		/* Its real state (up, down, not ready, no lease, mismatch, removed), heartbeat
		 * age, and the epoch it installed against the cluster's. */
		char dp[512];
		int n = snprintf(dp, sizeof(dp), "%s", jget_str(d, "dp_state"));
		if (json_object_object_get_ex(d, "heartbeat_age_ms", &age))
			n += snprintf(dp + n, sizeof(dp) - (size_t)n, ", hb %lld ms, epoch %s/%s",
			              (long long)json_object_get_int64(age), jget_str(d, "epoch"),
			              jget_str(s, "cluster_epoch"));
		if (json_object_object_get_ex(d, "why", &why) && n < (int)sizeof(dp))
			snprintf(dp + n, sizeof(dp) - (size_t)n, " (%s)",
			         json_object_get_string(why));
		row[9] = strdup(dp);
	} else {
		row[9] = strdup("-");
	}
}

/* A node's dataplane is unhealthy unless it is up (or there is none to judge). */
static bool
dp_state_healthy(const char *st)
{
	return st == NULL || strcmp(st, "up") == 0 || strcmp(st, "none") == 0 ||
	       strcmp(st, "unmanaged") == 0;
}

/* The endpoints to ask: the flags', or with --cluster every member's client address. */
static int
target_endpoints(const char ***out)
{
	if (!g.cluster) {
		*out = g.endpoints;
		return g.n_endpoints;
	}
	json_object *resp, *arr;
	bool saved = g.serializable;
	g.serializable = true;
	json_object *res = call(request("member.list"), &resp);
	g.serializable = saved;
	json_object_object_get_ex(res, "members", &arr);
	int n = (int)json_object_array_length(arr);
	const char **eps = calloc((size_t)n + 1, sizeof(char *));
	int k = 0;
	for (int i = 0; i < n; i++) {
		const char *c = jget_str(json_object_array_get_idx(arr, i), "client");
		if (c && c[0])
			eps[k++] = strdup(c);
	}
	json_object_put(resp);
	*out = eps;
	return k;
}

static void
cmd_endpoint(int argc, char **argv)
{
	if (argc < 1 || (strcmp(argv[0], "status") && strcmp(argv[0], "health")))
		die("endpoint needs status or health");
	if (argc > 1)
		die("endpoint %s: unexpected '%s'", argv[0], argv[1]);
	bool health = argv[0][0] == 'h';
	const char **eps;
	int n = target_endpoints(&eps);
	int failures = 0;
	char ***rows = calloc((size_t)n + 1, sizeof(*rows));
	json_object *all = json_object_new_array();
	int nrows = 0;
	for (int i = 0; i < n; i++) {
		char why[512];
		json_object *req = request(health ? "endpoint.health" : "endpoint.status");
		uint64_t t0 = sp_mono_ns();
		enum ctl_outcome outcome;
		json_object *resp =
		        call_one(eps[i], req, sp_mono_ms() + (uint64_t)g.command_timeout_ms,
		                 &outcome, why, sizeof(why));
		double took_ms = (double)(sp_mono_ns() - t0) / 1e6;
		json_object_put(req);
		json_object *ok = NULL, *res = NULL;
		bool good = resp && json_object_object_get_ex(resp, "ok", &ok) &&
		            json_object_get_boolean(ok) &&
		            json_object_object_get_ex(resp, "result", &res);
		if (health) {
			/* A follower answers NOT_LEADER to a linearizable read: healthy if it
			 * knows a leader. */
			const char *code = resp ? jget_str(resp, "code") : NULL;
			bool healthy = good || (code && strcmp(code, "NOT_LEADER") == 0 &&
			                        jget_str(resp, "leader"));
			/* ... and its dataplane must be up too. */
			char dpwhy[400] = "";
			if (healthy) {
				json_object *sreq = request("endpoint.status"), *sres = NULL, *d;
				enum ctl_outcome so;
				json_object *sresp = call_one(
				        eps[i], sreq, sp_mono_ms() + (uint64_t)g.command_timeout_ms,
				        &so, why, sizeof(why));
				json_object_put(sreq);
				if (sresp && json_object_object_get_ex(sresp, "result", &sres) &&
				    json_object_object_get_ex(sres, "dataplane", &d) &&
				    !dp_state_healthy(jget_str(d, "dp_state"))) {
					healthy = false;
					snprintf(dpwhy, sizeof(dpwhy), "dataplane %s%s%s",
					         jget_str(d, "dp_state"),
					         jget_str(d, "why") ? ": " : "",
					         jget_str(d, "why") ? jget_str(d, "why") : "");
				}
				if (sresp)
					json_object_put(sresp);
			}
			if (!healthy)
				failures++;
			if (g.fmt == OUT_JSON) {
				json_object *o = json_object_new_object();
				json_object_object_add(o, "endpoint",
				                       json_object_new_string(eps[i]));
				json_object_object_add(o, "health",
				                       json_object_new_boolean(healthy));
				json_object_object_add(o, "took_ms",
				                       json_object_new_double(took_ms));
				if (!healthy)
					json_object_object_add(
					        o, "error",
					        json_object_new_string(
					                dpwhy[0] ? dpwhy
					                : resp   ? jget_str(resp, "error")
					                         : why));
				json_object_array_add(all, o);
			} else if (healthy) {
				printf("%s is healthy: successfully answered; took = %.3fms\n",
				       eps[i], took_ms);
			} else {
				fprintf(stderr, "%s is unhealthy: %s\n", eps[i],
				        dpwhy[0] ? dpwhy
				        : resp   ? jget_str(resp, "error")
				                 : why);
			}
		} else if (good) {
			if (g.fmt == OUT_JSON) {
				json_object_object_add(res, "endpoint",
				                       json_object_new_string(eps[i]));
				json_object_array_add(all, json_object_get(res));
			} else {
				rows[nrows] = calloc(10, sizeof(char *));
				status_rows(eps[i], res, rows[nrows++]);
			}
		} else {
			failures++;
			fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n", eps[i],
			        resp ? jget_str(resp, "error") : why);
		}
		if (resp)
			json_object_put(resp);
	}
	if (g.fmt == OUT_JSON) {
		print_json(all);
	} else if (!health) {
		static const char *head[] = {"ENDPOINT", "ID",       "NAME",    "LEADER",
		                             "TERM",     "COMMIT",   "APPLIED", "ROLE",
		                             "LOG SIZE", "DATAPLANE"};
		print_rows(head, 10, rows, nrows);
	}
	free_rows(rows, nrows, 10);
	json_object_put(all);
	if (g.cluster) {
		for (int i = 0; i < n; i++)
			free((char *)eps[i]);
		free(eps);
	}
	if (failures)
		exit(1);
}

/* check perf: a short write load against the cluster's leader, as etcdctl's. */
#define PERF_SECONDS      3u      /* length of the load */
#define PERF_WRITES_MAX   200000u /* writes at most, whatever the speed */
#define PERF_KEYS         64u     /* keys written in turn (perf-check/0..63), deleted after */
#define PERF_VALUE_BYTES  64u
#define PERF_MIN_WPS      100.0 /* pass: at least this many writes per second ... */
#define PERF_MAX_P99_MS   100.0 /* ... a p99 latency at most this ... */
#define PERF_LEADER_TRIES 8u    /* endpoints tried to find the leader */

/* One request on an open connection; returns the parsed response or NULL. */
static json_object *
perf_call(int fd, json_object *req, uint64_t deadline_ms)
{
	uint8_t type, *p;
	uint32_t plen;
	size_t len;
	json_object_object_add(req, "id", json_object_new_uint64(++g.next_id));
	const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
	int err = write_frame(fd, FRAME_REQUEST, s, (uint32_t)len, deadline_ms);
	if (err == 0)
		err = read_frame(fd, &type, &p, &plen, RESP_MAX, deadline_ms);
	if (err)
		return NULL;
	json_object *resp = type == FRAME_RESPONSE ? json_tokener_parse((char *)p) : NULL;
	free(p);
	return resp;
}

static json_object *
perf_set(int fd, uint32_t i, uint64_t deadline_ms)
{
	char key[32], value[PERF_VALUE_BYTES + 1];
	json_object *req = request("config.set");
	snprintf(key, sizeof(key), "perf-check/%u", i % PERF_KEYS);
	memset(value, 'v', PERF_VALUE_BYTES);
	value[PERF_VALUE_BYTES] = '\0';
	json_object_object_add(req, "key", json_object_new_string(key));
	json_object_object_add(req, "value", json_object_new_string(value));
	json_object *resp = perf_call(fd, req, deadline_ms);
	json_object_put(req);
	return resp;
}

static bool
resp_ok(json_object *resp)
{
	json_object *ok;
	return resp && json_object_object_get_ex(resp, "ok", &ok) && json_object_get_boolean(ok);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
cmd_check(int argc, char **argv)
{
	static double lat_ms[PERF_WRITES_MAX];
	char why[512] = "no endpoint answered";
	const char *addr = g.endpoints[0];
	char leader[CTL_ADDR_MAX] = "";
	int fd = -1;

	if (argc != 1 || strcmp(argv[0], "perf") != 0)
		die("usage: check perf");
	/* Find the leader: a follower names it. */
	for (uint32_t t = 0; t < PERF_LEADER_TRIES && fd < 0; t++) {
		if (leader[0] == '\0')
			addr = g.endpoints[t % (uint32_t)g.n_endpoints];
		else
			addr = leader;
		uint64_t deadline = sp_mono_ms() + (uint64_t)g.command_timeout_ms;
		int c = dial(addr, sp_mono_ms() + (uint64_t)g.dial_timeout_ms, why, sizeof(why));
		if (c < 0)
			continue;
		/* One request at a time: no Nagle delay between a frame's header and body. */
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		json_object *resp = perf_set(c, 0, deadline);
		const char *code = resp ? jget_str(resp, "code") : NULL;
		const char *hint = resp ? jget_str(resp, "leader") : NULL;
		if (resp_ok(resp)) {
			fd = c;
		} else {
			close(c);
			if (code && strcmp(code, "NOT_LEADER") == 0 && hint && hint[0] &&
			    strlen(hint) < sizeof(leader))
				snprintf(leader, sizeof(leader), "%s", hint);
			else
				snprintf(why, sizeof(why), "%s: %s", addr,
				         resp ? jget_str(resp, "error") : "no answer");
		}
		if (resp)
			json_object_put(resp);
	}
	if (fd < 0)
		die("check perf: cannot write to the leader (%s)", why);
	uint32_t n = 0, errors = 0;
	uint64_t t0 = sp_mono_ns(), end = t0 + (uint64_t)PERF_SECONDS * 1000000000ull;
	while (n < PERF_WRITES_MAX && sp_mono_ns() < end) {
		uint64_t s = sp_mono_ns();
		json_object *resp = perf_set(fd, n, sp_mono_ms() + (uint64_t)g.command_timeout_ms);
		uint64_t e = sp_mono_ns();
		if (resp_ok(resp))
			lat_ms[n++] = (double)(e - s) / 1e6;
		else
			errors++;
		if (resp)
			json_object_put(resp);
		else
			break; /* the connection failed: report what was measured */
		if (errors > 100)
			break;
	}
	double secs = (double)(sp_mono_ns() - t0) / 1e9;
	for (uint32_t k = 0; k < PERF_KEYS; k++) {
		json_object *req = request("config.del");
		char key[32];
		snprintf(key, sizeof(key), "perf-check/%u", k);
		json_object_object_add(req, "key", json_object_new_string(key));
		json_object *resp =
		        perf_call(fd, req, sp_mono_ms() + (uint64_t)g.command_timeout_ms);
		json_object_put(req);
		if (resp)
			json_object_put(resp);
	}
	close(fd);
	qsort(lat_ms, n, sizeof(lat_ms[0]), cmp_double);
	double wps = secs > 0 ? n / secs : 0;
	double p50 = n ? lat_ms[(n - 1) * 50 / 100] : 0, p90 = n ? lat_ms[(n - 1) * 90 / 100] : 0;
	double p99 = n ? lat_ms[(n - 1) * 99 / 100] : 0, mx = n ? lat_ms[n - 1] : 0;
	bool pass = n > 0 && errors == 0 && wps >= PERF_MIN_WPS && p99 <= PERF_MAX_P99_MS;
	if (g.fmt == OUT_JSON) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "leader", json_object_new_string(addr));
		json_object_object_add(o, "writes", json_object_new_int64(n));
		json_object_object_add(o, "errors", json_object_new_int64(errors));
		json_object_object_add(o, "seconds", json_object_new_double(secs));
		json_object_object_add(o, "writes_per_s", json_object_new_double(wps));
		json_object_object_add(o, "p50_ms", json_object_new_double(p50));
		json_object_object_add(o, "p90_ms", json_object_new_double(p90));
		json_object_object_add(o, "p99_ms", json_object_new_double(p99));
		json_object_object_add(o, "max_ms", json_object_new_double(mx));
		json_object_object_add(o, "pass", json_object_new_boolean(pass));
		print_json(o);
		json_object_put(o);
	} else {
		printf("%u writes of %u-byte values to %u keys through the leader %s in %.2f s, "
		       "%u errors\n",
		       n, PERF_VALUE_BYTES, PERF_KEYS, addr, secs, errors);
		printf("throughput: %.0f writes/s (pass: >= %.0f)\n", wps, PERF_MIN_WPS);
		printf("latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms (pass: <= %.0f), max %.2f "
		       "ms\n",
		       p50, p90, p99, PERF_MAX_P99_MS, mx);
		printf("%s\n", pass ? "PASS" : "FAIL");
	}
	if (!pass)
		exit(1);
}

static void
cmd_config(int argc, char **argv)
{
	json_object *resp, *res, *req;
	if (argc < 1)
		die("config needs get, set, del or list");
	const char *sub = argv[0];
	if (strcmp(sub, "get") == 0 && argc == 2) {
		req = request("config.get");
		json_object_object_add(req, "key", json_object_new_string(argv[1]));
		res = call(req, &resp);
		if (g.fmt == OUT_JSON)
			print_json(res);
		else if (g.fmt == OUT_SIMPLE)
			printf("%s\n", jget_str(res, "value"));
		else
			printf("%s\n%s\n", jget_str(res, "key"), jget_str(res, "value"));
	} else if (strcmp(sub, "set") == 0 && argc == 3) {
		req = request("config.set");
		json_object_object_add(req, "key", json_object_new_string(argv[1]));
		json_object_object_add(req, "value", json_object_new_string(argv[2]));
		res = call(req, &resp);
		g.fmt == OUT_JSON ? print_json(res) : (void)printf("OK\n");
	} else if (strcmp(sub, "del") == 0 && argc == 2) {
		req = request("config.del");
		json_object_object_add(req, "key", json_object_new_string(argv[1]));
		res = call(req, &resp);
		g.fmt == OUT_JSON ? print_json(res) : (void)printf("1\n");
	} else if (strcmp(sub, "list") == 0 && argc <= 2) {
		req = request("config.list");
		if (argc == 2)
			json_object_object_add(req, "prefix", json_object_new_string(argv[1]));
		res = call(req, &resp);
		if (g.fmt == OUT_JSON) {
			print_json(res);
		} else {
			json_object *arr;
			json_object_object_get_ex(res, "items", &arr);
			int n = (int)json_object_array_length(arr);
			char ***rows = calloc((size_t)n + 1, sizeof(*rows));
			for (int i = 0; i < n; i++) {
				rows[i] = calloc(2, sizeof(char *));
				rows[i][0] = xstr(json_object_array_get_idx(arr, i), "key");
				rows[i][1] = xstr(json_object_array_get_idx(arr, i), "value");
			}
			static const char *head[] = {"KEY", "VALUE"};
			print_rows(head, 2, rows, n);
			free_rows(rows, n, 2);
		}
	} else {
		die("usage: config get KEY | set KEY VALUE | del KEY | list [PREFIX]");
	}
	json_object_put(resp);
}

static void
cmd_partitions(int argc, char **argv)
{
	json_object *resp, *res;
	if (argc == 1 && strcmp(argv[0], "rebalance") == 0) {
		res = call(request("partitions.rebalance"), &resp);
		if (g.fmt == OUT_JSON)
			print_json(res);
		else
			printf("moved %s partitions; epoch %s\n", jget_str(res, "moved"),
			       jget_str(res, "epoch"));
	} else if (argc == 1 && strcmp(argv[0], "show") == 0) {
		res = call(request("partitions.show"), &resp);
		if (g.fmt == OUT_JSON) {
			print_json(res);
		} else {
			/* One row per (node, worker): how many partitions it owns. */
			json_object *arr;
			json_object_object_get_ex(res, "map", &arr);
			int n = (int)json_object_array_length(arr);
			uint64_t keys[1024];
			int counts[1024], nk = 0;
			for (int p = 0; p < n; p++) {
				json_object *e = json_object_array_get_idx(arr, p);
				uint64_t k = json_object_get_uint64(json_object_array_get_idx(e, 0))
				                     << 16 |
				             (uint64_t)json_object_get_int(
				                     json_object_array_get_idx(e, 1));
				int j = 0;
				while (j < nk && keys[j] != k)
					j++;
				if (j == nk && nk < 1024) {
					keys[nk] = k;
					counts[nk++] = 0;
				}
				if (j < nk)
					counts[j]++;
			}
			printf("epoch %s, %s partitions\n", jget_str(res, "epoch"),
			       jget_str(res, "partitions"));
			char ***rows = calloc((size_t)nk + 1, sizeof(*rows));
			for (int j = 0; j < nk; j++) {
				char b[32];
				rows[j] = calloc(3, sizeof(char *));
				snprintf(b, sizeof(b), "%llx", (unsigned long long)(keys[j] >> 16));
				rows[j][0] = strdup(b);
				snprintf(b, sizeof(b), "%llu",
				         (unsigned long long)(keys[j] & 0xffff));
				rows[j][1] = strdup(b);
				snprintf(b, sizeof(b), "%d", counts[j]);
				rows[j][2] = strdup(b);
			}
			static const char *head[] = {"NODE", "WORKER", "PARTITIONS"};
			print_rows(head, 3, rows, nk);
			free_rows(rows, nk, 3);
			/* Per member, by name; fenced partitions are being moved (nobody serves
			 * them until the move is final). */
			json_object *per_node;
			if (json_object_object_get_ex(res, "counts", &per_node)) {
				json_object_object_foreach(per_node, name, cnt)
				{
					printf("%s: %d partitions\n", name,
					       json_object_get_int(cnt));
				}
				printf("fenced (moving): %s\n", jget_str(res, "fenced"));
			}
		}
	} else {
		die("usage: partitions show | rebalance");
	}
	json_object_put(resp);
}

static void
cmd_move_leader(int argc, char **argv)
{
	json_object *resp;
	if (argc != 1)
		die("usage: move-leader NAME|ID");
	json_object *req = request("move-leader");
	json_object_object_add(req, "member", json_object_new_string(argv[0]));
	call(req, &resp);
	printf("Leadership transferred to %s\n", argv[0]);
	json_object_put(resp);
}

static void
cmd_snapshot(int argc, char **argv)
{
	json_object *resp;
	if (argc != 2 || strcmp(argv[0], "save"))
		die("usage: snapshot save FILE");
	json_object *res = call(request("snapshot.save"), &resp);
	const char *b64 = jget_str(res, "data");
	size_t cap = strlen(b64), len;
	uint8_t *bin = malloc(cap + 1);
	if (bin == NULL || sodium_base642bin(bin, cap, b64, strlen(b64), NULL, &len, NULL,
	                                     sodium_base64_VARIANT_ORIGINAL))
		die("snapshot: malformed data from the server");
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.part", argv[1]);
	FILE *f = fopen(tmp, "wb");
	if (f == NULL || fwrite(bin, 1, len, f) != len || fflush(f) || fsync(fileno(f)) ||
	    fclose(f) || rename(tmp, argv[1]))
		die("snapshot: cannot write %s: %s", argv[1], strerror(errno));
	printf("Snapshot saved at %s (index %s, %zu bytes)\n", argv[1], jget_str(res, "index"),
	       len);
	free(bin);
	json_object_put(resp);
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "Usage: shardctl [global options] COMMAND [args] [global options]\n"
	        "\n"
	        "Commands:\n"
	        "  member list                          members and their roles\n"
	        "  member add NAME --peer-urls IP:PORT [--client-urls IP:PORT]\n"
	        "                                       add a learner (promoted once caught up)\n"
	        "  member remove NAME|ID                remove a member (the leader too)\n"
	        "  member promote NAME|ID               promote a learner to voter\n"
	        "  endpoint status [--cluster]          term, leader, indexes, log size, "
	        "dataplane\n"
	        "  endpoint health [--cluster]          whether each endpoint answers\n"
	        "  move-leader NAME|ID                  transfer leadership\n"
	        "  config get KEY | set KEY VALUE | del KEY | list [PREFIX]\n"
	        "  partitions show | rebalance          the partition map\n"
	        "  snapshot save FILE                   save the cluster state to FILE\n"
	        "  check perf                           3 s of writes through the leader: "
	        "throughput,\n"
	        "                                       p50/p90/p99/max latency, PASS (>= 100 "
	        "writes/s,\n"
	        "                                       p99 <= 100 ms, no error) or FAIL (exit "
	        "1)\n"
	        "\n"
	        "Global options:\n"
	        "  --endpoints IP:PORT,...   control planes to ask (default 127.0.0.1:2379;\n"
	        "                            env SHARDCTL_ENDPOINTS)\n"
	        "  --secret-file FILE        the cluster secret (env SHARDCTL_SECRET_FILE)\n"
	        "  -w, --write-out FMT       table (default), json or simple\n"
	        "  --consistency l|s         linearizable (default) or serializable reads\n"
	        "  --dial-timeout MS         connect and authenticate within MS (default 2000)\n"
	        "  --command-timeout MS      a request's answer within MS (default 10000),\n"
	        "                            trying every endpoint, following the leader and\n"
	        "                            waiting out an election until then\n"
	        "  -h, --help                this text\n"
	        "\n"
	        "Flags go before or after the command; `--` ends them. An unknown flag is an\n"
	        "error.\n"
	        "\n"
	        "Exit status is 0 on success, 1 when the command failed (message on stderr),\n"
	        "2 for a usage error.\n");
}

int
main(int argc, char **argv)
{
	const char *endpoints = getenv("SHARDCTL_ENDPOINTS");
	const char *secret = getenv("SHARDCTL_SECRET_FILE");
	struct ctl_args a;
	char why[256];

	/* Flags anywhere: before the command, after it, between its words (ctl_args.h). */
	if (ctl_args_parse(argc, argv, &a, why, sizeof(why))) {
		fprintf(stderr, "Error: %s\n", why);
		return 2;
	}
	if (a.set[CTL_OPT_HELP]) {
		usage(stdout);
		return 0;
	}
	if (a.set[CTL_OPT_ENDPOINTS])
		endpoints = a.value[CTL_OPT_ENDPOINTS];
	if (endpoints == NULL)
		endpoints = "127.0.0.1:2379";
	if (a.set[CTL_OPT_SECRET_FILE])
		secret = a.value[CTL_OPT_SECRET_FILE];
	if (a.set[CTL_OPT_WRITE_OUT]) {
		const char *v = a.value[CTL_OPT_WRITE_OUT];
		if (strcmp(v, "table") == 0)
			g.fmt = OUT_TABLE;
		else if (strcmp(v, "json") == 0)
			g.fmt = OUT_JSON;
		else if (strcmp(v, "simple") == 0)
			g.fmt = OUT_SIMPLE;
		else {
			fprintf(stderr, "Error: --write-out '%s': table, json or simple\n", v);
			return 2;
		}
	}
	if (a.set[CTL_OPT_CONSISTENCY]) {
		const char *v = a.value[CTL_OPT_CONSISTENCY];
		if (strcmp(v, "l") && strcmp(v, "s")) {
			fprintf(stderr, "Error: --consistency '%s': l or s\n", v);
			return 2;
		}
		g.serializable = v[0] == 's';
	}
	static const enum ctl_opt timeouts[] = {CTL_OPT_DIAL_TIMEOUT, CTL_OPT_COMMAND_TIMEOUT};
	for (int i = 0; i < 2; i++) {
		if (!a.set[timeouts[i]])
			continue;
		const char *v = a.value[timeouts[i]];
		char *end;
		long ms = strtol(v, &end, 10);
		if (*v == '\0' || *end || ms <= 0 || ms > 600000) {
			fprintf(stderr, "Error: --%s '%s': milliseconds in [1, 600000]\n",
			        ctl_args_name(timeouts[i]), v);
			return 2;
		}
		*(i == 0 ? &g.dial_timeout_ms : &g.command_timeout_ms) = (int)ms;
	}
	g.cluster = a.set[CTL_OPT_CLUSTER];
	g.peer_urls = a.value[CTL_OPT_PEER_URLS];
	g.client_urls = a.value[CTL_OPT_CLIENT_URLS];
	if (a.n_words == 0) {
		usage(stderr);
		return 2;
	}
	if (secret == NULL) {
		fprintf(stderr, "Error: --secret-file is required (or SHARDCTL_SECRET_FILE)\n");
		return 2;
	}
	int n = frame_read_secret(secret, g.secret, sizeof(g.secret), why, sizeof(why));
	if (n < 0) {
		fprintf(stderr, "Error: %s\n", why);
		return 2;
	}
	g.secret_len = (size_t)n;
	char *eps = strdup(endpoints), *save = NULL;
	for (char *t = strtok_r(eps, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (g.n_endpoints == CTL_ENDPOINTS_MAX || strlen(t) >= CTL_ADDR_MAX) {
			fprintf(stderr,
			        "Error: --endpoints: at most %d endpoints of at most %d characters "
			        "('%s')\n",
			        CTL_ENDPOINTS_MAX, CTL_ADDR_MAX - 1, t);
			return 2;
		}
		g.endpoints[g.n_endpoints++] = t;
	}
	if (g.n_endpoints == 0) {
		fprintf(stderr, "Error: --endpoints: no endpoint given ('%s')\n", endpoints);
		return 2;
	}
	const char *cmd = a.words[0];
	int cargc = (int)a.n_words - 1;
	char **cargv = (char **)a.words + 1;
	if (strcmp(cmd, "member") == 0)
		cmd_member(cargc, cargv);
	else if (strcmp(cmd, "endpoint") == 0)
		cmd_endpoint(cargc, cargv);
	else if (strcmp(cmd, "config") == 0)
		cmd_config(cargc, cargv);
	else if (strcmp(cmd, "partitions") == 0)
		cmd_partitions(cargc, cargv);
	else if (strcmp(cmd, "move-leader") == 0)
		cmd_move_leader(cargc, cargv);
	else if (strcmp(cmd, "snapshot") == 0)
		cmd_snapshot(cargc, cargv);
	else if (strcmp(cmd, "check") == 0)
		cmd_check(cargc, cargv);
	else {
		fprintf(stderr, "Error: unknown command '%s'; see --help\n", cmd);
		return 2;
	}
	free(eps);
	return 0;
}
