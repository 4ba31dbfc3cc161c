/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cp-load: a closed-loop write load against a control plane, for side-by-side runs.
 *
 *   --target shardplane   config.set requests over shardplane-cp's client API (framed JSON
 *                         after the secret handshake), to the leader
 *   --target etcd         PUTs through etcd's v3 JSON gateway (POST /v3/kv/put) over
 *                         HTTP/1.1 keep-alive
 *
 * Each of --clients connections keeps exactly one request in flight. It runs for
 * --duration seconds or --requests requests (whichever comes first; both bounded) and
 * prints throughput and latency percentiles; --json writes one JSON object instead.
 * --until-ok turns it into a probe: it retries one write until it succeeds and prints how
 * long that took (failover measurements).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "transport/frame.h"

#define CLIENTS_MAX    256
#define BUF_MAX        65536
#define SAMPLES_MAX    (4u << 20)
#define DURATION_MAX_S 600

enum target { T_SHARDPLANE, T_ETCD };

struct conn {
	int fd;
	uint64_t sent_ns;
	uint64_t seq;
	size_t rlen;
	uint8_t rbuf[BUF_MAX];
};

static struct {
	enum target target;
	char endpoint[512];
	uint8_t secret[FRAME_SECRET_MAX];
	size_t secret_len;
	int clients;
	uint64_t requests;
	double duration_s;
	int value_size;
	bool json;
	bool until_ok;
	char label[64];
} o = {.clients = 1, .requests = 100000, .duration_s = 10, .value_size = 64};

static uint32_t *samples_us;
static int failures_shown;
static uint64_t n_samples;

static int
dial(const char *ep)
{
	char host[64];
	const char *colon = strrchr(ep, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (colon == NULL || (size_t)(colon - ep) >= sizeof(host))
		return -EINVAL;
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -errno;
	}
	return fd;
}

static int
read_n(int fd, void *b, size_t n)
{
	uint8_t *p = b;
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The shardplane handshake, blocking (before the measured part). */
static int
sp_auth(int fd)
{
	uint8_t hdr[FRAME_HDR], ch[1 + FRAME_NONCE_LEN], mac[FRAME_MAC_LEN];
	if (read_n(fd, hdr, sizeof(hdr)) || read_n(fd, ch, sizeof(ch)) || hdr[4] != FRAME_CHALLENGE)
		return -1;
	struct frame_auth a = {.role = FRAME_ROLE_CLIENT};
	frame_random_nonce(a.nonce);
	frame_mac_initiator(o.secret, o.secret_len, ch + 1, a.nonce, a.role, 0, a.mac);
	uint8_t out[FRAME_HDR + FRAME_AUTH_LEN];
	frame_header(out, FRAME_AUTH, FRAME_AUTH_LEN);
	frame_auth_encode(&a, out + FRAME_HDR);
	if (send(fd, out, sizeof(out), MSG_NOSIGNAL) != (ssize_t)sizeof(out))
		return -1;
	if (read_n(fd, hdr, sizeof(hdr)) || read_n(fd, mac, sizeof(mac)) || hdr[4] != FRAME_AUTH_OK)
		return -1;
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t
b64enc(const uint8_t *in, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);
		out[k++] = b64[v >> 18 & 63];
		out[k++] = b64[v >> 12 & 63];
		out[k++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[k++] = i + 2 < n ? b64[v & 63] : '=';
	}
	return k;
}

/* Builds and sends one write; returns 0 or -1. */
static int
send_write(struct conn *c, int client)
{
	char key[64], val[4096], body[16384], req[20000];
	/* 1000 keys at most: the control plane's configuration holds 1024. */
	int kl = snprintf(key, sizeof(key), "bench-%llu",
	                  (unsigned long long)((c->seq + (uint64_t)client * 7919u) % 1000));
	memset(val, 'v', (size_t)o.value_size);
	int len;
	if (o.target == T_SHARDPLANE) {
		int bl = snprintf(
		        body, sizeof(body),
		        "{\"id\":%llu,\"op\":\"config.set\",\"key\":\"%s\",\"value\":\"%.*s\"}",
		        (unsigned long long)c->seq, key, o.value_size, val);
		frame_header((uint8_t *)req, FRAME_REQUEST, (uint32_t)bl);
		memcpy(req + FRAME_HDR, body, (size_t)bl);
		len = (int)FRAME_HDR + bl;
	} else {
		char kb[128], vb[8192];
		size_t kbl = b64enc((uint8_t *)key, (size_t)kl, kb);
		size_t vbl = b64enc((uint8_t *)val, (size_t)o.value_size, vb);
		int bl = snprintf(body, sizeof(body), "{\"key\":\"%.*s\",\"value\":\"%.*s\"}",
		                  (int)kbl, kb, (int)vbl, vb);
		len = snprintf(req, sizeof(req),
		               "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\nContent-Type: "
		               "application/json\r\nContent-Length: %d\r\n\r\n%s",
		               o.endpoint, bl, body);
	}
	c->sent_ns = sp_mono_ns();
	c->seq++;
	return send(c->fd, req, (size_t)len, MSG_NOSIGNAL) == len ? 0 : -1;
}

/* Returns 1 when a whole response is buffered (consumed), 0 for more, -1 for a failure. */
static int
take_response(struct conn *c, bool *ok)
{
	if (o.target == T_SHARDPLANE) {
		if (c->rlen < FRAME_HDR)
			return 0;
		uint32_t flen;
		memcpy(&flen, c->rbuf, 4);
		if (flen + 4 > BUF_MAX)
			return -1;
		if (c->rlen < flen + 4)
			return 0;
		*ok = memmem(c->rbuf, flen + 4, "\"ok\":true", 9) != NULL;
		if (!*ok && failures_shown++ < 3)
			fprintf(stderr, "cp-load: failed: %.*s\n", (int)flen - 1,
			        c->rbuf + FRAME_HDR);
		memmove(c->rbuf, c->rbuf + flen + 4, c->rlen - flen - 4);
		c->rlen -= flen + 4;
		return 1;
	}
	uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
	if (end == NULL)
		return c->rlen >= BUF_MAX ? -1 : 0;
	uint8_t *cl = memmem(c->rbuf, (size_t)(end - c->rbuf), "Content-Length: ", 16);
	size_t body = cl ? (size_t)atoi((char *)cl + 16) : 0;
	size_t total = (size_t)(end - c->rbuf) + 4 + body;
	if (c->rlen < total)
		return 0;
	*ok = memcmp(c->rbuf, "HTTP/1.1 200", 12) == 0;
	memmove(c->rbuf, c->rbuf + total, c->rlen - total);
	c->rlen -= total;
	return 1;
}

static int
open_conn(struct conn *c)
{
	c->fd = dial(o.endpoint);
	c->rlen = 0;
	if (c->fd < 0)
		return -1;
	if (o.target == T_SHARDPLANE && sp_auth(c->fd)) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int
run_until_ok(void)
{
	uint64_t t0 = sp_mono_ns(), deadline = t0 + (uint64_t)(o.duration_s * 1e9);
	static struct conn c;
	failures_shown = 3; /* refusals are expected while there is no leader */
	char list[sizeof(o.endpoint)];
	char *eps[16];
	int n_eps = 0;
	char *save = NULL;
	snprintf(list, sizeof(list), "%s", o.endpoint);
	for (char *t = strtok_r(list, ",", &save); t && n_eps < 16; t = strtok_r(NULL, ",", &save))
		eps[n_eps++] = t;
	for (int k = 0; sp_mono_ns() < deadline; k++) {
		/* Any endpoint of the list: the first that accepts a write wins. */
		snprintf(o.endpoint, sizeof(o.endpoint), "%s", eps[k % n_eps]);
		if (open_conn(&c) == 0 && send_write(&c, 0) == 0) {
			bool ok = false;
			int r = 0;
			while (r == 0) {
				ssize_t n = recv(c.fd, c.rbuf + c.rlen, BUF_MAX - c.rlen, 0);
				if (n <= 0)
					break;
				c.rlen += (size_t)n;
				r = take_response(&c, &ok);
			}
			close(c.fd);
			c.fd = -1;
			if (r == 1 && ok) {
				printf("first successful write after %.1f ms\n",
				       (double)(sp_mono_ns() - t0) / 1e6);
				return 0;
			}
		}
		if (c.fd >= 0)
			close(c.fd);
		c.fd = -1;
		usleep(5000);
	}
	fprintf(stderr, "cp-load: no successful write within %.0f s\n", o.duration_s);
	return 1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"target", required_argument, NULL, 't'},
	        {"endpoint", required_argument, NULL, 'e'},
	        {"secret-file", required_argument, NULL, 's'},
	        {"clients", required_argument, NULL, 'c'},
	        {"requests", required_argument, NULL, 'n'},
	        {"duration", required_argument, NULL, 'd'},
	        {"value-size", required_argument, NULL, 'v'},
	        {"label", required_argument, NULL, 'l'},
	        {"json", no_argument, NULL, 'j'},
	        {"until-ok", no_argument, NULL, 'u'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *secret = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (strcmp(optarg, "shardplane") == 0)
				o.target = T_SHARDPLANE;
			else if (strcmp(optarg, "etcd") == 0)
				o.target = T_ETCD;
			else {
				fprintf(stderr, "cp-load: --target shardplane|etcd\n");
				return 2;
			}
			break;
		case 'e':
			snprintf(o.endpoint, sizeof(o.endpoint), "%s", optarg);
			break;
		case 's':
			secret = optarg;
			break;
		case 'c':
			o.clients = atoi(optarg);
			break;
		case 'n':
			o.requests = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			o.duration_s = atof(optarg);
			break;
		case 'v':
			o.value_size = atoi(optarg);
			break;
		case 'l':
			snprintf(o.label, sizeof(o.label), "%s", optarg);
			break;
		case 'j':
			o.json = true;
			break;
		case 'u':
			o.until_ok = true;
			break;
		case 'h':
			printf("Usage: cp-load --target shardplane|etcd --endpoint "
			       "IP:PORT[,IP:PORT...] [--secret-file F]\n"
			       "               [--clients N (1-%d)] [--requests N] [--duration S "
			       "(<= %d)]\n"
			       "               [--value-size B (1-4096)] [--json] [--label L] "
			       "[--until-ok]\n",
			       CLIENTS_MAX, DURATION_MAX_S);
			return 0;
		default:
			return 2;
		}
	}
	if (o.endpoint[0] == '\0' || o.clients < 1 || o.clients > CLIENTS_MAX ||
	    o.duration_s <= 0 || o.duration_s > DURATION_MAX_S || o.value_size < 1 ||
	    o.value_size > 4096 || o.requests == 0) {
		fprintf(stderr, "cp-load: bad or missing arguments; see --help\n");
		return 2;
	}
	if (o.target == T_SHARDPLANE) {
		char why[256];
		int n = secret ? frame_read_secret(secret, o.secret, sizeof(o.secret), why,
		                                   sizeof(why))
		               : -EINVAL;
		if (n < 0) {
			fprintf(stderr, "cp-load: %s\n",
			        secret ? why : "--secret-file is required");
			return 2;
		}
		o.secret_len = (size_t)n;
	}
	if (o.until_ok)
		return run_until_ok();

	struct conn *cs = calloc((size_t)o.clients, sizeof(*cs));
	struct pollfd *pfd = calloc((size_t)o.clients, sizeof(*pfd));
	samples_us = malloc(SAMPLES_MAX * sizeof(*samples_us));
	if (cs == NULL || pfd == NULL || samples_us == NULL)
		return 1;
	for (int i = 0; i < o.clients; i++) {
		if (open_conn(&cs[i])) {
			fprintf(stderr, "cp-load: cannot connect to %s\n", o.endpoint);
			return 1;
		}
		cs[i].seq = (uint64_t)i * 1000003u;
	}
	uint64_t t0 = sp_mono_ns(), deadline = t0 + (uint64_t)(o.duration_s * 1e9);
	uint64_t issued = 0, done = 0, failed = 0;
	for (int i = 0; i < o.clients && issued < o.requests; i++, issued++)
		if (send_write(&cs[i], i))
			return 1;
	while (done < issued && sp_mono_ns() < deadline + 5 * SP_NS_PER_S) {
		for (int i = 0; i < o.clients; i++)
			pfd[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
		if (poll(pfd, (nfds_t)o.clients, 1000) <= 0)
			continue;
		for (int i = 0; i < o.clients; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			struct conn *c = &cs[i];
			ssize_t n = recv(c->fd, c->rbuf + c->rlen, BUF_MAX - c->rlen, 0);
			if (n <= 0) {
				fprintf(stderr, "cp-load: connection %d closed\n", i);
				return 1;
			}
			c->rlen += (size_t)n;
			bool ok;
			int r;
			while ((r = take_response(c, &ok)) == 1) {
				uint64_t lat = sp_mono_ns() - c->sent_ns;
				if (n_samples < SAMPLES_MAX)
					samples_us[n_samples++] = (uint32_t)(lat / 1000);
				done++;
				failed += !ok;
				if (issued < o.requests && sp_mono_ns() < deadline) {
					issued++;
					if (send_write(c, i))
						return 1;
				}
			}
			if (r < 0)
				return 1;
		}
	}
	double secs = (double)(sp_mono_ns() - t0) / 1e9;
	qsort(samples_us, n_samples, sizeof(*samples_us), cmp_u32);
#define PCT(p) (n_samples ? samples_us[(size_t)((double)(n_samples - 1) * (p))] : 0)
	double tput = (double)done / secs;
	if (o.json)
		printf("{\"label\":\"%s\",\"target\":\"%s\",\"clients\":%d,\"requests\":%llu,"
		       "\"failed\":%llu,\"seconds\":%.3f,\"throughput\":%.1f,\"p50_us\":%u,"
		       "\"p99_us\":%u,\"p999_us\":%u}\n",
		       o.label, o.target == T_ETCD ? "etcd" : "shardplane", o.clients,
		       (unsigned long long)done, (unsigned long long)failed, secs, tput, PCT(0.5),
		       PCT(0.99), PCT(0.999));
	else
		printf("%s %d clients: %llu writes (%llu failed) in %.2f s = %.0f/s; latency p50 "
		       "%u us, "
		       "p99 %u us, p99.9 %u us\n",
		       o.target == T_ETCD ? "etcd" : "shardplane", o.clients,
		       (unsigned long long)done, (unsigned long long)failed, secs, tput, PCT(0.5),
		       PCT(0.99), PCT(0.999));
	return failed ? 1 : 0;
}
