/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The services of the worker loop (service.h): which service serves which kind of message,
 * and the cluster forwarding service over forward.c.
 */
#include "service.h"

#include "common/verify.h"
#include "forward.h"
#include "runtime.h"
#include "worker.h"

/* ---- Forwarding between nodes (forward.h) as a service ------------------------------- */

static void
fwd_serve(struct dp_worker *w, const struct dp_iter *it, struct rte_mbuf **m, unsigned int n)
{
	ASSERT(n >= 1 && n <= DP_BURST);
	for (unsigned int i = 0; i < n; i++) {
		ASSERT(dp_meta_of(m[i])->kind == DP_MSG_FORWARD);
		dp_fwd_input(w, it->t, it->now_s, m[i]);
	}
}

static void
fwd_poll(struct dp_worker *w, const struct dp_iter *it)
{
	(void)it;
	dp_fwd_poll(w);
}

/*
 * Its messages arrive on the binary protocol's ports, so the binary service's classify
 * tells them apart; its busy is NULL: an answer for another worker's slot that its ring
 * refused is dropped (counted), and that request times out.
 */
const struct dp_service_ops dp_fwd_service = {
        .name = "forward",
        .serve = fwd_serve,
        .poll = fwd_poll,
        .drain = dp_fwd_drain,
};

/* ---- The registry ------------------------------------------------------------------- */

const struct dp_service_ops *const dp__service_of_kind[DP_MSG_KINDS] = {
        [DP_MSG_NONE] = NULL,
        [DP_MSG_BINARY] = &dp_bp_service,
        [DP_MSG_FORWARD] = &dp_fwd_service,
        [DP_MSG_MEMCACHED] = &dp_mc_service,
        [DP_MSG_MC_TOUCH] = &dp_mc_service,
        [DP_MSG_TASK] = &dp_task_service,
        [DP_MSG_BP_SHARE] = &dp_bp_service,
        [DP_MSG_BP_FOLD] = &dp_bp_service,
};

const struct dp_service_ops *const dp__services[DP_SVC_COUNT] = {
        [DP_SVC_BINARY] = &dp_bp_service,
        [DP_SVC_FORWARD] = &dp_fwd_service,
        [DP_SVC_MEMCACHED] = &dp_mc_service,
        [DP_SVC_TASKS] = &dp_task_service,
};

SP_STATIC_ASSERT(DP_MSG_KINDS <= UINT8_MAX, "a kind fits dp_meta.kind");

bool
dp_service_enabled(const struct dp_runtime *rt, enum dp_service_id id)
{
	ASSERT(id < DP_SVC_COUNT);
	if (id == DP_SVC_TASKS)
		return rt->tasks != NULL;
	return id != DP_SVC_MEMCACHED || rt->mc != NULL;
}

const struct dp_service_ops *
dp_service_of_fwd_proto(const struct dp_runtime *rt, uint8_t proto)
{
	if (proto == 0)
		return NULL;
	for (unsigned int id = 0; id < DP_SVC_COUNT; id++) {
		const struct dp_service_ops *ops = dp__services[id];

		if (ops->fwd_proto != proto || !dp_service_enabled(rt, (enum dp_service_id)id))
			continue;
		ASSERT(ops->fwd_request != NULL);
		ASSERT(ops->fwd_answer != NULL);
		ASSERT(ops->fwd_expire != NULL);
		return ops;
	}
	return NULL;
}

enum dp_msg_kind
dp_service_classify(const struct dp_runtime *rt, const struct rte_mbuf *m,
                    const struct net_pkt *pkt)
{
	for (unsigned int id = 0; id < DP_SVC_COUNT; id++) {
		const struct dp_service_ops *ops = dp__services[id];
		enum dp_msg_kind k;

		if (ops->classify == NULL || !dp_service_enabled(rt, (enum dp_service_id)id))
			continue;
		k = ops->classify(rt, m, pkt);
		if (k != DP_MSG_NONE) {
			ASSERT(k < DP_MSG_KINDS);
			return k;
		}
	}
	return DP_MSG_NONE;
}
