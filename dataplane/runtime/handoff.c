/* SPDX-License-Identifier: BSD-3-Clause */
#include "handoff.h"

#include <errno.h>
#include <string.h>

#include <rte_errno.h>

#include "common/log.h"
#include "common/verify.h"

#define MOD "handoff"

SP_STATIC_ASSERT((DP_RING_SIZE & (DP_RING_SIZE - 1)) == 0, "ring size is a power of two");

int
dp_handoff_create(struct dp_handoff *h, unsigned int workers, const int *socket_of)
{
	char name[RTE_RING_NAMESIZE];
	unsigned int i;

	ASSERT(h != NULL);
	ASSERT(workers > 0 && workers <= DP_WORKERS_MAX);
	memset(h, 0, sizeof(*h));
	h->workers = workers;
	for (i = 0; i < workers; i++) {
		snprintf(name, sizeof(name), "sp_inbound_%u", i);
		/* RING_F_EXACT_SZ: exactly DP_RING_SIZE usable slots, as the pool is sized. */
		h->rings[i] = rte_ring_create(name, DP_RING_SIZE, socket_of[i],
		                              RING_F_SC_DEQ | RING_F_EXACT_SZ);
		if (h->rings[i] == NULL) {
			int rc = -rte_errno;
			SP_LOG_ERR(MOD, "ring %s (%u slots): %s", name, DP_RING_SIZE,
			           rte_strerror(rte_errno));
			dp_handoff_destroy(h);
			return rc != 0 ? rc : -ENOMEM;
		}
	}
	return 0;
}

unsigned int
dp_handoff_destroy(struct dp_handoff *h)
{
	struct rte_mbuf *m[DP_BURST];
	unsigned int freed = 0;
	unsigned int i;
	unsigned int n;

	ASSERT(h != NULL);
	ASSERT(h->workers <= DP_WORKERS_MAX);
	for (i = 0; i < h->workers; i++) {
		if (h->rings[i] == NULL)
			continue;
		/* Bounded: the ring holds at most DP_RING_SIZE mbufs and nobody enqueues now. */
		while ((n = rte_ring_sc_dequeue_burst(h->rings[i], (void **)m, DP_BURST, NULL)) >
		       0) {
			rte_pktmbuf_free_bulk(m, n);
			freed += n;
		}
		rte_ring_free(h->rings[i]);
		h->rings[i] = NULL;
	}
	return freed;
}
