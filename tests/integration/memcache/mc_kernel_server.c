/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mc_kernel_server: mcexec behind an ordinary kernel UDP socket, for the conformance and
 * memcaslap tests (and for trying the memcached protocol without DPDK).
 *
 *   mc_kernel_server [--port N] [--partitions P] [--memory-mb M] [--max-seconds S]
 *
 * Binds 127.0.0.1:N (0 = any free port), prints "port N" on stdout once it serves, and runs
 * until SIGINT/SIGTERM or for at most S seconds. One thread owns every partition.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/verify.h"
#include "dataplane/memcache/mcexec.h"

/* Reply datagrams one request may produce (covers a 1 MiB value: 754 datagrams). */
#define OUT_DGRAMS_MAX 1024u
#define PARTITIONS_MAX 1024u
/* Longest the server runs when not told otherwise. */
#define RUN_SECONDS_DEFAULT 600u
#define POLL_TIMEOUT_MS     200
#define SOCK_BUF_BYTES      (4 << 20)

struct server {
	uint32_t partitions;
	struct store *stores[PARTITIONS_MAX];
	void *mem[PARTITIONS_MAX];
	uint64_t started_ns;
	struct mcexec_counters counters;
	uint64_t memory_bytes;
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static struct store *
part_of(void *ctx, uint32_t partition, bool *owned)
{
	struct server *sv = ctx;

	VERIFY(partition < sv->partitions);
	*owned = true;
	return sv->stores[partition];
}

/* The general stats: this process is the only core, the stores are all here. */
static void
stats_of(void *ctx, struct mcexec_stats *out)
{
	struct server *sv = ctx;

	out->pid = (uint32_t)getpid();
	out->uptime_s = (sp_mono_ns() - sv->started_ns) / SP_NS_PER_S;
	out->time_s = sp_wall_s();
	out->curr_connections = 1;
	out->threads = 1;
	out->limit_maxbytes = sv->memory_bytes;
	for (uint32_t p = 0; p < sv->partitions; p++) {
		struct store_stats st;

		store_stats_get(sv->stores[p], &st);
		out->curr_items += st.items;
		out->bytes += st.bytes;
		out->evictions += st.evictions;
	}
}

static int
usage(const char *prog)
{
	fprintf(stderr,
	        "usage: %s [--port N] [--partitions P] [--memory-mb M] [--max-seconds S]\n"
	        "  --port N         UDP port on 127.0.0.1 (0 = a free one; printed)\n"
	        "  --partitions P   power of two, 1..%u (default 8)\n"
	        "  --memory-mb M    store memory in total (default 64)\n"
	        "  --max-seconds S  exit after S seconds (default %u)\n",
	        prog, PARTITIONS_MAX, RUN_SECONDS_DEFAULT);
	return 2;
}

static bool
parse_num(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && *out <= max;
}

static int
setup_stores(struct server *sv, unsigned long memory_mb)
{
	struct store_params params = {.bytes = 0, .item_bytes_avg = 0};
	size_t per;

	sv->memory_bytes = (uint64_t)memory_mb << 20;
	params.bytes = (size_t)(sv->memory_bytes / sv->partitions);
	per = store_memsize(&params);
	if (per == 0) {
		fprintf(stderr,
		        "memory: %lu MiB over %u partitions is under the store minimum of "
		        "%u bytes each; raise --memory-mb\n",
		        memory_mb, sv->partitions, STORE_BYTES_MIN);
		return -1;
	}
	for (uint32_t p = 0; p < sv->partitions; p++) {
		sv->mem[p] = aligned_alloc(STORE_MEM_ALIGN, per);
		if (sv->mem[p] == NULL) {
			fprintf(stderr, "memory: cannot allocate %zu bytes for partition %u\n", per,
			        p);
			return -1;
		}
		sv->stores[p] = store_init(sv->mem[p], per, &params);
		if (sv->stores[p] == NULL) {
			fprintf(stderr, "store_init failed for partition %u\n", p);
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"port", required_argument, NULL, 'p'},
	        {"partitions", required_argument, NULL, 'P'},
	        {"memory-mb", required_argument, NULL, 'm'},
	        {"max-seconds", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	static struct server sv;
	static uint8_t out_buf[OUT_DGRAMS_MAX * SP_MC_DGRAM_BYTES_MAX];
	static uint16_t out_lens[OUT_DGRAMS_MAX];
	static uint8_t copy_buf[STORE_VALUE_MAX];
	static uint8_t in[65536];
	unsigned long port = 0, parts = 8, memory_mb = 64, max_s = RUN_SECONDS_DEFAULT;
	struct sockaddr_in addr;
	socklen_t alen = sizeof(addr);
	struct mcexec_env env;
	struct sp_mc_out out;
	int fd, c, rc = 0;
	int sock_buf_bytes = SOCK_BUF_BYTES;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		bool ok = true;

		if (c == 'p')
			ok = parse_num(optarg, 65535, &port);
		else if (c == 'P')
			ok = parse_num(optarg, PARTITIONS_MAX, &parts) && parts > 0 &&
			     (parts & (parts - 1)) == 0;
		else if (c == 'm')
			ok = parse_num(optarg, 65536, &memory_mb) && memory_mb > 0;
		else if (c == 't')
			ok = parse_num(optarg, 86400, &max_s) && max_s > 0;
		else
			return usage(argv[0]);
		if (!ok) {
			fprintf(stderr, "--%s: bad value '%s'\n",
			        opts[c == 'p'   ? 0
			             : c == 'P' ? 1
			             : c == 'm' ? 2
			                        : 3]
			                .name,
			        optarg);
			return usage(argv[0]);
		}
	}
	sv.partitions = (uint32_t)parts;
	sv.started_ns = sp_mono_ns();
	if (setup_stores(&sv, memory_mb) != 0)
		return 1;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) {
		fprintf(stderr, "bind 127.0.0.1:%lu: %s\n", port, strerror(errno));
		close(fd);
		return 1;
	}
	/* Large socket buffers, as memcached sets them: a full send buffer would block. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sock_buf_bytes, sizeof(sock_buf_bytes));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sock_buf_bytes, sizeof(sock_buf_bytes));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("port %u\n", ntohs(addr.sin_port));
	fflush(stdout);

	memset(&env, 0, sizeof(env));
	env.partitions = sv.partitions;
	env.part = part_of;
	env.stats = stats_of;
	env.ctx = &sv;
	env.version = "1.6.18-shardplane";
	env.counters = &sv.counters;
	env.copy_buf = copy_buf;
	env.copy_buf_len = sizeof(copy_buf);
	sp_mc_out_init(&out, out_buf, out_lens, OUT_DGRAMS_MAX, 0);

	while (!stop_requested && sp_mono_ns() - sv.started_ns < max_s * SP_NS_PER_S) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t n;
		uint32_t nd;

		/* Read while datagrams are queued; sleep in poll only when there are none. */
		n = recvfrom(fd, in, sizeof(in), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				(void)poll(&pfd, 1, POLL_TIMEOUT_MS);
			continue;
		}
		env.now_s = (uint32_t)((sp_mono_ns() - sv.started_ns) / SP_NS_PER_S) + 1;
		env.wall_s = sp_wall_s();
		nd = mcexec_udp(&env, in, (size_t)n, &out);
		for (uint32_t i = 0; i < nd; i++) {
			if (sendto(fd, sp_mc_out_dgram(&out, i), out.lens[i], 0,
			           (struct sockaddr *)&from, flen) < 0)
				rc = 0; /* a full socket buffer drops the reply, as with memcached */
		}
	}
	fprintf(stderr,
	        "mc_kernel_server: datagrams=%" PRIu64 " commands=%" PRIu64
	        " dropped_frame=%" PRIu64 " truncated=%" PRIu64 " errors=%" PRIu64
	        " out_full=%" PRIu64 "\n",
	        sv.counters.datagrams, sv.counters.commands, sv.counters.dropped_frame,
	        sv.counters.truncated, sv.counters.error_replies, sv.counters.out_full);
	close(fd);
	for (uint32_t p = 0; p < sv.partitions; p++)
		free(sv.mem[p]);
	return rc;
}
