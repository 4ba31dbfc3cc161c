/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus text endpoint (--metrics host:port), served by libmicrohttpd on its own
 * thread. The modules count into stats->m under stats->lock; the HTTP thread reads a copy
 * taken under the lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/verify.h"
#include "addr.h"
#include "metrics.h"

#define MOD              "cp-metrics"
#define METRICS_BODY_MAX 16384

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int
append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	ASSERT(cap > 0);
	if (*len >= cap)
		return -1;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	*len = SP_MIN(cap, *len + (size_t)n);
	return 0;
}

static size_t
render(struct cp_stats *s, char *b, size_t cap)
{
	struct cp_metrics m;
	size_t n = 0;

	ASSERT(cap >= 4096); /* the body below fits with room to spare */
	pthread_mutex_lock(&s->lock);
	m = s->m;
	pthread_mutex_unlock(&s->lock);
	append(b, cap, &n, "# TYPE sp_cp_term gauge\nsp_cp_term %" PRIu64 "\n", m.term);
	append(b, cap, &n, "# TYPE sp_cp_leader gauge\nsp_cp_leader %" PRIu64 "\n", m.leader);
	append(b, cap, &n, "# TYPE sp_cp_is_leader gauge\nsp_cp_is_leader %d\n",
	       m.role == RAFT_LEADER);
	append(b, cap, &n, "# TYPE sp_cp_commit_index gauge\nsp_cp_commit_index %" PRIu64 "\n",
	       m.commit);
	append(b, cap, &n, "# TYPE sp_cp_applied_index gauge\nsp_cp_applied_index %" PRIu64 "\n",
	       m.applied);
	append(b, cap, &n,
	       "# TYPE sp_cp_proposals_total counter\nsp_cp_proposals_total %" PRIu64 "\n"
	       "# TYPE sp_cp_proposals_failed_total counter\nsp_cp_proposals_failed_total %" PRIu64
	       "\n",
	       m.proposals_total, m.proposals_failed);
	append(b, cap, &n, "# TYPE sp_cp_fsync_seconds histogram\n");
	uint64_t cum = 0;
	for (uint32_t i = 0; i < CP_FSYNC_BUCKETS; i++) {
		cum += m.fsync_hist[i];
		append(b, cap, &n, "sp_cp_fsync_seconds_bucket{le=\"%.6f\"} %" PRIu64 "\n",
		       (double)(64ull << i) / 1e6, cum);
	}
	append(b, cap, &n, "sp_cp_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", m.fsync_count);
	append(b, cap, &n, "sp_cp_fsync_seconds_sum %.6f\nsp_cp_fsync_seconds_count %" PRIu64 "\n",
	       (double)m.fsync_sum_us / 1e6, m.fsync_count);
	append(b, cap, &n, "# TYPE sp_cp_peer_replication_lag gauge\n");
	for (uint32_t i = 0; i < m.n_peers; i++)
		append(b, cap, &n, "sp_cp_peer_replication_lag{peer=\"%" PRIu64 "\"} %" PRIu64 "\n",
		       m.peer_ids[i], m.peer_lag[i]);
	append(b, cap, &n,
	       "# TYPE sp_cp_dataplane_heartbeat_age_seconds gauge\n"
	       "sp_cp_dataplane_heartbeat_age_seconds %.3f\n",
	       m.dp_heartbeat_age_ms < 0 ? -1.0 : (double)m.dp_heartbeat_age_ms / 1e3);
	append(b, cap, &n,
	       "# TYPE sp_cp_bad_frames_total counter\nsp_cp_bad_frames_total %" PRIu64 "\n"
	       "# TYPE sp_cp_auth_failures_total counter\nsp_cp_auth_failures_total %" PRIu64 "\n"
	       "# TYPE sp_cp_connections_accepted_total counter\n"
	       "sp_cp_connections_accepted_total %" PRIu64 "\n"
	       "# TYPE sp_cp_connections_refused_total counter\n"
	       "sp_cp_connections_refused_total %" PRIu64 "\n"
	       "# TYPE sp_cp_connections_evicted_total counter\n"
	       "sp_cp_connections_evicted_total %" PRIu64 "\n"
	       "# TYPE sp_cp_auth_timeouts_total counter\nsp_cp_auth_timeouts_total %" PRIu64 "\n"
	       "# TYPE sp_cp_submissions_busy_total counter\n"
	       "sp_cp_submissions_busy_total %" PRIu64 "\n",
	       m.frames_bad, m.auth_failures, m.conns_accepted, m.conns_refused, m.conns_evicted,
	       m.auth_timeouts, m.submit_busy);
	append(b, cap, &n,
	       "# TYPE sp_cp_liveness_pings_sent_total counter\n"
	       "sp_cp_liveness_pings_sent_total %" PRIu64 "\n"
	       "# TYPE sp_cp_liveness_grants_total counter\nsp_cp_liveness_grants_total %" PRIu64
	       "\n"
	       "# TYPE sp_cp_liveness_bad_total counter\nsp_cp_liveness_bad_total %" PRIu64 "\n"
	       "# TYPE sp_cp_liveness_not_member_total counter\n"
	       "sp_cp_liveness_not_member_total %" PRIu64 "\n"
	       "# TYPE sp_cp_lease_remaining_seconds gauge\nsp_cp_lease_remaining_seconds %.3f\n",
	       m.lv_sent, m.lv_grants, m.lv_bad, m.lv_not_member, (double)m.lease_left_ms / 1e3);
	append(b, cap, &n,
	       "# TYPE sp_cp_memory_allocated_bytes gauge\nsp_cp_memory_allocated_bytes %" PRIu64
	       "\n# TYPE sp_cp_memory_resident_bytes gauge\nsp_cp_memory_resident_bytes %" PRIu64
	       "\n",
	       m.mem_allocated, m.mem_resident);
	return n;
}

static enum MHD_Result
on_http(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
        const char *version, const char *upload, size_t *upload_len, void **ctx)
{
	struct cp_stats *s = cls;
	(void)version;
	(void)upload;
	(void)upload_len;
	(void)ctx;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
		static const char nf[] = "only GET /metrics is served here\n";
		resp = MHD_create_response_from_buffer(sizeof(nf) - 1, (void *)nf,
		                                       MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	char *body = malloc(METRICS_BODY_MAX);
	if (body == NULL)
		return MHD_NO;
	size_t n = render(s, body, METRICS_BODY_MAX);
	resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

void
cp_stats_init(struct cp_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->m.dp_heartbeat_age_ms = -1;
}

void
cp_stats_fini(struct cp_stats *s)
{
	ASSERT(s->mhd == NULL); /* cp_metrics_stop first: the HTTP thread reads s */
	pthread_mutex_destroy(&s->lock);
}

void
cp_stats_add(struct cp_stats *s, uint64_t *counter, uint64_t n)
{
	ASSERT((uint8_t *)counter >= (uint8_t *)&s->m);
	ASSERT((uint8_t *)counter < (uint8_t *)(&s->m + 1));
	pthread_mutex_lock(&s->lock);
	*counter += n;
	pthread_mutex_unlock(&s->lock);
}

int
cp_metrics_start(struct cp_stats *s, const char *addr)
{
	struct sockaddr_in sa;
	if (addr[0] == '\0')
		return 0;
	if (cp_parse_addr(addr, &sa)) {
		SP_LOG_ERR(MOD, "--metrics '%s' is not IPv4:port", addr);
		return -EINVAL;
	}
	s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
	                          ntohs(sa.sin_port), NULL, NULL, on_http, s, MHD_OPTION_SOCK_ADDR,
	                          (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 16u,
	                          MHD_OPTION_CONNECTION_TIMEOUT, 5u, MHD_OPTION_END);
	if (s->mhd == NULL) {
		SP_LOG_ERR(MOD, "cannot serve metrics on %s (port in use?)", addr);
		return -EADDRINUSE;
	}
	return 0;
}

void
cp_metrics_stop(struct cp_stats *s)
{
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
}

void
cp_metrics_fsync_done(struct cp_stats *s, uint64_t took_ns)
{
	uint64_t us = took_ns / 1000;
	uint32_t b = 0;
	while (b < CP_FSYNC_BUCKETS - 1 && us > (64ull << b))
		b++;
	ASSERT(b < CP_FSYNC_BUCKETS);
	pthread_mutex_lock(&s->lock);
	s->m.fsync_hist[b]++;
	s->m.fsync_count++;
	s->m.fsync_sum_us += us;
	pthread_mutex_unlock(&s->lock);
}
