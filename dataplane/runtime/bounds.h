/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every bound of the dataplane runtime in one place: the pool sizing, the start-up
 * checks and the tests all read these.
 */
#ifndef SP_DP_BOUNDS_H
#define SP_DP_BOUNDS_H

/* Frames taken from the NIC (and from the inbound ring) per call. */
#define DP_BURST 32u
/* RX and TX descriptors per queue (clamped to what the device allows). */
#define DP_RX_DESC 1024u
#define DP_TX_DESC 1024u
/* Per-lcore mempool cache. */
#define DP_MBUF_CACHE 256u
/* Inbound hand-off ring of each worker, in mbufs (power of two). */
#define DP_RING_SIZE 1024u
/*
 * Frames a worker keeps for transmission: what tx_burst did not take is retried on the
 * next iterations, up to this many; past it the oldest are dropped and counted.
 */
#define DP_TX_PENDING_MAX 256u
/* A datagram may be handed from worker to worker at most this many times. */
#define DP_HANDOFF_HOPS_MAX 2u
/* Reply datagrams one request datagram may produce (one per request at worst). */
#define DP_REPLY_DGRAMS_MAX 64u
/* Store memory below this per partition is refused at start-up. */
#define DP_PARTITION_BYTES_MIN (64u * 1024u)
/* EAL, rings, tables and telemetry besides the stores and the mbuf pool, for the checks. */
#define DP_MEMORY_OVERHEAD_MB 64u

#endif
