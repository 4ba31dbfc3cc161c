/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus text endpoint (--metrics host:port), served by libmicrohttpd on its own
 * thread. The event loop copies its figures into cp->metrics once a tick under
 * metrics_lock; the HTTP thread only reads that copy.
 */
#include <errno.h>
#include <inttypes.h>
#include <jemalloc/jemalloc.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/verify.h"
#include "cp.h"

#define MOD              "cp-metrics"
#define METRICS_BODY_MAX 16384

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int
append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
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
render(struct cp *cp, char *b, size_t cap)
{
	struct cp_metrics m;
	size_t n = 0;

	pthread_mutex_lock(&cp->metrics_lock);
	m = cp->metrics;
	pthread_mutex_unlock(&cp->metrics_lock);
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
	for (int i = 0; i < 16; i++) {
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
	struct cp *cp = cls;
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
	size_t n = render(cp, body, METRICS_BODY_MAX);
	resp = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

int
cp_metrics_start(struct cp *cp)
{
	struct sockaddr_in sa;
	if (cp->cfg.metrics[0] == '\0')
		return 0;
	if (cp_parse_addr(cp->cfg.metrics, &sa)) {
		SP_LOG_ERR(MOD, "--metrics '%s' is not IPv4:port", cp->cfg.metrics);
		return -EINVAL;
	}
	cp->mhd =
	        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
	                         ntohs(sa.sin_port), NULL, NULL, on_http, cp, MHD_OPTION_SOCK_ADDR,
	                         (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 16u,
	                         MHD_OPTION_CONNECTION_TIMEOUT, 5u, MHD_OPTION_END);
	if (cp->mhd == NULL) {
		SP_LOG_ERR(MOD, "cannot serve metrics on %s (port in use?)", cp->cfg.metrics);
		return -EADDRINUSE;
	}
	return 0;
}

void
cp_metrics_stop(struct cp *cp)
{
	if (cp->mhd)
		MHD_stop_daemon(cp->mhd);
	cp->mhd = NULL;
}

void
cp_metrics_fsync_done(struct cp *cp, uint64_t took_ns)
{
	uint64_t us = took_ns / 1000;
	int b = 0;
	while (b < 15 && us > (64ull << b))
		b++;
	pthread_mutex_lock(&cp->metrics_lock);
	cp->metrics.fsync_hist[b]++;
	cp->metrics.fsync_count++;
	cp->metrics.fsync_sum_us += us;
	pthread_mutex_unlock(&cp->metrics_lock);
}

void
cp_metrics_update(struct cp *cp)
{
	struct raft_status st;
	struct sp_dp_status ds;
	int64_t age = -1;
	size_t allocated = 0, resident = 0, sz = sizeof(size_t);
	uint64_t epoch = 1;

	raft_status(cp->raft, &st);
	if (cp->region && sp_region_status_read(cp->region, &ds) == 0) {
		uint64_t now = sp_mono_ns();
		age = now > ds.heartbeat_mono_ns ? (int64_t)((now - ds.heartbeat_mono_ns) / 1000000)
		                                 : 0;
	}
	if (cp->tick % 40 == 0) {
		/* jemalloc's figures refresh when its epoch advances: once a second. */
		mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch));
	}
	mallctl("stats.allocated", &allocated, &sz, NULL, 0);
	mallctl("stats.resident", &resident, &sz, NULL, 0);
	pthread_mutex_lock(&cp->metrics_lock);
	cp->metrics.term = st.term;
	cp->metrics.leader = st.leader_id;
	cp->metrics.role = st.role;
	cp->metrics.commit = st.commit;
	cp->metrics.applied = cp->applied;
	cp->metrics.last_index = st.last_index;
	cp->metrics.n_peers = 0;
	for (uint32_t i = 0; i < st.n_progress; i++) {
		if (st.progress[i].id == cp->id)
			continue;
		uint32_t k = cp->metrics.n_peers++;
		cp->metrics.peer_ids[k] = st.progress[i].id;
		cp->metrics.peer_lag[k] = st.last_index > st.progress[i].match
		                                  ? st.last_index - st.progress[i].match
		                                  : 0;
	}
	cp->metrics.dp_heartbeat_age_ms = age;
	cp->metrics.lv_sent = cp->lv.sent;
	cp->metrics.lv_grants = cp->lv.grants;
	cp->metrics.lv_bad = cp->lv.bad;
	cp->metrics.lv_not_member = cp->lv.not_member;
	uint64_t lnow = sp_mono_ns();
	cp->metrics.lease_left_ms = cp->lv.written_expiry > lnow
	                                    ? (int64_t)((cp->lv.written_expiry - lnow) / 1000000)
	                                    : 0;
	cp->metrics.mem_allocated = allocated;
	cp->metrics.mem_resident = resident;
	pthread_mutex_unlock(&cp->metrics_lock);
}
