/* SPDX-License-Identifier: BSD-3-Clause */
#include "stats.h"

#include <inttypes.h>
#include <string.h>

#include "common/verify.h"

static const char *const drop_names[] = {
        [DP_DROP_FRAGMENT] = "ip_fragment",      [DP_DROP_NO_SERVICE] = "udp_no_service",
        [DP_DROP_HANDOFF_HOPS] = "handoff_hops", [DP_DROP_NOMBUF] = "no_mbuf",
        [DP_DROP_DEFER_FULL] = "defer_full",     [DP_DROP_SHUTDOWN] = "shutdown",
        [DP_DROP_SEGMENTED] = "segmented",
};

#define FIELD(f)                                        \
	{                                               \
#f, offsetof(struct dp_worker_stats, f) \
	}
/* One counter a line: clang-format would pack them several to a line. */
/* clang-format off */
const struct dp_stat_field dp_stats_fields[] = {
        FIELD(rx_pkts),
        FIELD(rx_bytes),
        FIELD(tx_pkts),
        FIELD(tx_bytes),
        FIELD(tx_drops),
        FIELD(tx_retries),
        FIELD(arp_replies),
        FIELD(icmp_replies),
        FIELD(dgrams),
        FIELD(reply_dgrams),
        FIELD(requests),
        FIELD(hits),
        FIELD(misses),
        FIELD(handoff_out),
        FIELD(handoff_out_mbufs),
        FIELD(handoff_copies),
        FIELD(handoff_folds),
        FIELD(handoff_in_mbufs),
        FIELD(read_shared),
        FIELD(ring_full_drops),
        FIELD(deferred),
        FIELD(wrong_node),
        FIELD(unserved),
        FIELD(fwd_out),
        FIELD(fwd_in),
        FIELD(fwd_relayed),
        FIELD(fwd_timeouts),
        FIELD(fwd_table_full),
        FIELD(fwd_refused),
        FIELD(fwd_retried),
        FIELD(fwd_no_peer),
        FIELD(fwd_too_big),
        FIELD(fwd_frames_out),
        FIELD(fwd_msgs_out),
        FIELD(fwd_frames_in),
        FIELD(fwd_rej_malformed),
        FIELD(fwd_rej_member),
        FIELD(fwd_rej_mac),
        FIELD(fwd_rej_slot),
        FIELD(fwd_rej_source),
        FIELD(fwd_rej_kind),
        FIELD(store_evictions),
        FIELD(store_items),
        FIELD(idle_sleeps),
        FIELD(loops),
        FIELD(busy_cycles),
        FIELD(bad_pkts),
};
/* clang-format on */
#undef FIELD
const unsigned int dp_stats_field_count = SP_ARRAY_SIZE(dp_stats_fields);

/* Writes prefix + name into buf, turning anything but [a-z0-9_] into '_'. */
static const char *
counter_name(char *buf, size_t len, const char *prefix, const char *name)
{
	size_t i;

	ASSERT(buf != NULL);
	ASSERT(len > 0);
	snprintf(buf, len, "%s%s", prefix, name);
	for (i = 0; buf[i] != '\0'; i++) {
		char ch = buf[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
			buf[i] = '_';
	}
	return buf;
}

void
dp_stats_foreach(const struct dp_worker_stats *s, bool nonzero_only,
                 void (*fn)(void *arg, const char *name, uint64_t value), void *arg)
{
	char name[64];
	unsigned int i;
	uint64_t v;

	ASSERT(s != NULL);
	ASSERT(fn != NULL);
	for (i = 0; i < dp_stats_field_count; i++)
		fn(arg, dp_stats_fields[i].name, dp_stats_field_get(s, &dp_stats_fields[i]));
	for (i = 1; i < SP_BP_OP_LAST; i++) {
		v = DP_STAT_READ(s->ops[i]);
		if (v != 0 || !nonzero_only)
			fn(arg,
			   counter_name(name, sizeof(name), "op_", sp_bp_op_name((enum sp_bp_op)i)),
			   v);
	}
	for (i = 0; i < SP_BP_ST_LAST; i++) {
		v = DP_STAT_READ(s->status[i]);
		if (v != 0 || !nonzero_only)
			fn(arg,
			   counter_name(name, sizeof(name), "status_",
			                sp_bp_status_name((enum sp_bp_status)i)),
			   v);
	}
	for (i = 1; i < NET_DROP_REASON_COUNT; i++) {
		v = DP_STAT_READ(s->net_drop[i]);
		if (v != 0 || !nonzero_only)
			fn(arg,
			   counter_name(name, sizeof(name), "bad_net_",
			                net_drop_reason_name((enum net_drop_reason)i)),
			   v);
	}
	for (i = 1; i < SP_BP_ERR_COUNT; i++) {
		v = DP_STAT_READ(s->bp_err[i]);
		if (v != 0 || !nonzero_only)
			fn(arg,
			   counter_name(name, sizeof(name), "bad_bp_",
			                sp_bp_err_name((enum sp_bp_err)i)),
			   v);
	}
	for (i = 0; i < DP_DROP_COUNT; i++) {
		v = DP_STAT_READ(s->dp_drop[i]);
		if (v != 0 || !nonzero_only)
			fn(arg,
			   counter_name(name, sizeof(name), "bad_", dp_drop_name((enum dp_drop)i)),
			   v);
	}
}

SP_STATIC_ASSERT(SP_ARRAY_SIZE(drop_names) == DP_DROP_COUNT, "a name for every drop reason");

const char *
dp_drop_name(enum dp_drop reason)
{
	if ((unsigned int)reason >= DP_DROP_COUNT)
		return "unknown";
	ASSERT(drop_names[reason] != NULL);
	return drop_names[reason];
}

/* Adds count relaxed-read counters from src into dst. */
static void
add_array(uint64_t *dst, const uint64_t *src, size_t count)
{
	size_t i;

	ASSERT(dst != NULL);
	ASSERT(src != NULL);
	for (i = 0; i < count; i++)
		dst[i] += DP_STAT_READ(src[i]);
}

void
dp_stats_sum(const struct dp_worker_stats *w, unsigned int n, struct dp_worker_stats *out)
{
	unsigned int i;

	ASSERT(out != NULL);
	ASSERT(n == 0 || w != NULL);
	SP_STATIC_ASSERT(sizeof(struct dp_worker_stats) % sizeof(uint64_t) == 0,
	                 "counters are all u64");
	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		/* Every field is a u64 counter, so the block sums as an array. */
		add_array((uint64_t *)out, (const uint64_t *)&w[i],
		          offsetof(struct dp_worker_stats, dp_drop) / sizeof(uint64_t) +
		                  DP_DROP_COUNT);
	}
}

struct print_ctx {
	FILE *out;
	unsigned int scalars_left; /* the scalars go on the first line, the rest one per line */
	const char *prefix;
};

static void
print_one(void *arg, const char *name, uint64_t value)
{
	struct print_ctx *p = arg;

	ASSERT(p != NULL);
	ASSERT(name != NULL);
	if (p->scalars_left > 0) {
		fprintf(p->out, " %s=%" PRIu64, name, value);
		if (--p->scalars_left == 0)
			fputc('\n', p->out);
		return;
	}
	fprintf(p->out, "%s %s=%" PRIu64 "\n", p->prefix, name, value);
}

/* Prints one block: its scalars on one line, then its non-zero array counters. */
static void
print_block(FILE *out, const char *who, const struct dp_worker_stats *s, bool arrays)
{
	struct print_ctx p = {.out = out, .scalars_left = dp_stats_field_count, .prefix = who};

	ASSERT(out != NULL);
	ASSERT(dp_stats_field_count > 0);
	fprintf(out, "%s:", who);
	if (arrays) {
		dp_stats_foreach(s, true, print_one, &p);
		return;
	}
	for (unsigned int i = 0; i < dp_stats_field_count; i++)
		print_one(&p, dp_stats_fields[i].name, dp_stats_field_get(s, &dp_stats_fields[i]));
}

void
dp_stats_print(FILE *out, const struct dp_worker_stats *w, unsigned int n,
               const struct dp_port_totals *port, const struct dp_store_totals *store)
{
	struct dp_worker_stats sum;
	char who[32];
	unsigned int i;

	ASSERT(out != NULL);
	ASSERT(port != NULL);
	dp_stats_sum(w, n, &sum);
	print_block(out, "stats total", &sum, true);
	for (i = 0; i < n; i++) {
		snprintf(who, sizeof(who), "stats worker%u", i);
		print_block(out, who, &w[i], false);
	}
	fprintf(out,
	        "stats port: rx_nombuf=%" PRIu64 " imissed=%" PRIu64 " ierrors=%" PRIu64
	        " oerrors=%" PRIu64 "\n",
	        port->rx_nombuf, port->imissed, port->ierrors, port->oerrors);
	if (store != NULL)
		fprintf(out,
		        "stats store: items=%" PRIu64 " bytes=%" PRIu64 " evictions=%" PRIu64
		        " expired=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64 "\n",
		        store->items, store->bytes, store->evictions, store->expired, store->hits,
		        store->misses);
	fflush(out);
}

void
dp_stats_print_line(FILE *out, const struct dp_worker_stats *w, unsigned int n,
                    const struct dp_port_totals *port)
{
	struct dp_worker_stats sum;

	ASSERT(out != NULL);
	ASSERT(port != NULL);
	dp_stats_sum(w, n, &sum);
	fprintf(out,
	        "stats rx=%" PRIu64 " tx=%" PRIu64 " requests=%" PRIu64 " hits=%" PRIu64
	        " misses=%" PRIu64 " handoff_out=%" PRIu64 " ring_full_drops=%" PRIu64
	        " tx_drops=%" PRIu64 " bad_pkts=%" PRIu64 " rx_nombuf=%" PRIu64 " imissed=%" PRIu64
	        "\n",
	        sum.rx_pkts, sum.tx_pkts, sum.requests, sum.hits, sum.misses, sum.handoff_out,
	        sum.ring_full_drops, sum.tx_drops, sum.bad_pkts, port->rx_nombuf, port->imissed);
	fflush(out);
}
