/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shardplane-cp internals: one process, one thread, one io_uring.
 *
 *   io.c       listeners, connections, the authentication handshake, framed sends
 *   node.c     drives the Raft core: persists through the log store, sends, applies to
 *              the cluster state, serves reads, publishes to the shared region
 *   api.c      the client API (docs/control-api.md)
 *   metrics.c  the Prometheus text endpoint
 *   main.c     flags, start-up, the event loop
 */
#ifndef SP_CONTROL_CP_H
#define SP_CONTROL_CP_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "addr.h"
#include "outq.h"
#include "subq.h"
#include "cluster/region.h"
#include "common/log.h"
#include "raft/raft.h"
#include "state/cluster_sm.h"
#include "state/health.h"
#include "storage/log_store.h"
#include "transport/frame.h"

/* Connection slots: members and clients have pools of their own, so no number of client
 * connections can keep a member out, nor the reverse. */
#define CP_PEER_CONNS_MAX         (2u * SP_MEMBERS_MAX + 64u) /* in and out, + handshakes */
#define CP_CLIENT_CONNS_MAX       512u
#define CP_CONNS_MAX              (CP_PEER_CONNS_MAX + CP_CLIENT_CONNS_MAX)
#define CP_PREAUTH_PER_SOURCE_MAX 32u   /* unauthenticated connections of one address, a pool */
#define CP_AUTH_TIMEOUT_MS        1000u /* default of --auth-timeout-ms */
#define CP_SENDQ_BYTES_MAX        (96u << 20) /* queued output per connection before it is dropped */
#define CP_PENDING_MAX            4096u       /* client requests waiting for a commit or a read */
/* The submission area (subq.h): what waits while a ready is written to disk. The bytes hold
 * one largest Raft message (a snapshot) and room besides; pages are touched only as far as
 * the deepest backlog reaches. */
#define CP_SUBMIT_MAX       8192u
#define CP_SUBMIT_BYTES_MAX (FRAME_LEN_MAX + (8u << 20))
/* The outcome queue (outq.h): room for a whole ready's outcomes (its applied entries and
 * reads) with a backlog of submissions besides. */
#define CP_OUTCOMES_MAX      16384u
#define CP_READY_ENTRIES_MAX (RAFT_MSG_ENTRIES_MAX * 4u) /* entries one ready writes */
_Static_assert(CP_OUTCOMES_MAX >= RAFT_READY_APPLY_MAX + RAFT_READS_PENDING_MAX,
               "a whole ready's outcomes fit an empty outcome queue");
_Static_assert(CP_SUBMIT_BYTES_MAX >= FRAME_LEN_MAX, "the largest Raft message fits the area");
/* Rounds of driving the node and draining its outcomes after one turn of the event loop. */
#define CP_DRIVE_ROUNDS_MAX      64u
#define CP_QUEUED_MSGS_MAX       8192u  /* Raft messages received while a ready persists */
#define CP_TICK_MS               25u    /* one Raft tick */
#define CP_ELECTION_TICKS        6u     /* 150-300 ms election timeout: failover < 300 ms */
#define CP_HEARTBEAT_TICKS       1u     /* 25 ms: six heartbeats per shortest timeout */
#define CP_RECONNECT_TICKS       8u     /* 200 ms between connection attempts to a peer */
#define CP_LISTEN_RETRY_MS       50u    /* start-up: wait between binds of a port still in use */
#define CP_LISTEN_RETRIES_MAX    60u    /* ... for up to 3 s */
#define CP_REQUEST_TIMEOUT_TICKS 400u   /* 10 s for a client request */
#define CP_SNAPSHOT_ENTRIES      10000u /* default of --snapshot-entries */
#define CP_RECV_CHUNK            65536u
#define CP_RECV_PREAUTH          (2u * (FRAME_HDR + FRAME_PREAUTH_MAX)) /* before auth */
#define CP_SEND_IOV_MAX          64u                                    /* frames in one sendmsg */
#define CP_JSON_MAX              (1u << 20)
#define CP_OP_MAGIC              0x43504f50u
#define CP_LEASE_MS_DEFAULT      500u  /* --lease-ms */
#define CP_FAILURE_TIMEOUT_MS    1000u /* --failure-timeout-ms */
#define CP_HOLD_DOWN_MS          2000u /* --hold-down-ms */
#define CP_LEASE_MARGIN_MS       50u   /* the dataplane's check period + table swap, doubled */
#define CP_AUTO_REBALANCE_KEY    "rebalance.auto" /* config key: "off" disables */

enum cp_op_kind {
	CP_OP_ACCEPT = 1,
	CP_OP_RECV,
	CP_OP_SEND,
	CP_OP_CONNECT,
	CP_OP_TICK,
};

struct cp;
struct cp_conn;

/* user_data of every SQE the process submits itself. */
struct cp_op {
	uint32_t magic;
	uint8_t kind;
	void *owner; /* struct cp_conn * or struct cp_listener * or struct cp */
};

enum cp_conn_kind {
	CP_CONN_PEER_IN = 1, /* a member connected to us; we receive Raft messages */
	CP_CONN_PEER_OUT,    /* we connected to a member; we send Raft messages */
	CP_CONN_CLIENT,      /* shardctl */
};

enum cp_conn_state {
	CP_CS_CONNECTING = 1,
	CP_CS_WAIT_CHALLENGE, /* initiator */
	CP_CS_WAIT_AUTH,      /* acceptor */
	CP_CS_WAIT_AUTH_OK,   /* initiator */
	CP_CS_READY,
	CP_CS_CLOSING,
};

struct cp_sendbuf {
	struct cp_sendbuf *next;
	uint32_t len;
	uint32_t off;
	uint8_t data[];
};

struct cp_conn {
	struct cp *cp;
	int fd;
	uint32_t kind;
	uint32_t state;
	uint64_t peer_id;             /* PEER_*: the member; 0 for clients */
	uint64_t serial;              /* distinguishes reuses of a slot */
	uint64_t opened_ns;           /* accepted or connect started (monotonic) */
	struct cp_conn *next_closing; /* on cp->closing once out of the table */
	uint8_t nonce_mine[FRAME_NONCE_LEN];
	uint8_t nonce_peer[FRAME_NONCE_LEN];
	uint8_t *rbuf;
	size_t rlen;
	size_t rcap;
	struct cp_sendbuf *sq_head;
	struct cp_sendbuf *sq_tail;
	uint64_t sq_bytes;
	bool send_inflight;
	bool recv_inflight;
	bool connect_inflight;
	bool told_removed;
	struct sockaddr_in addr;
	struct iovec iov[CP_SEND_IOV_MAX];
	struct msghdr msg;
	struct cp_op op_recv;
	struct cp_op op_send;
	struct cp_op op_connect;
};

struct cp_listener {
	int fd;
	uint32_t kind; /* CP_CONN_PEER_IN or CP_CONN_CLIENT */
	struct cp_op op;
	struct sockaddr_in peer;
	socklen_t peer_len;
};

/* A member we know how to reach (from --initial-cluster or the replicated state). */
struct cp_peer {
	uint64_t id;
	char name[SP_MEMBER_NAME_MAX];
	char addr[CLUSTER_ADDR_MAX];
	struct cp_conn *out; /* our sending connection, or NULL */
	uint64_t out_serial;
	uint32_t retry_ticks;
	uint64_t msgs_sent;
	uint64_t msgs_dropped;
};

enum cp_pending_kind {
	CP_PEND_WRITE = 1, /* waits for (index, term) to be applied */
	CP_PEND_READ,      /* waits for a ReadIndex, then applied >= index */
};

struct cp_pending {
	uint32_t kind;
	struct cp_conn *conn;
	uint64_t conn_serial;
	uint64_t req_id;
	uint64_t index;
	uint64_t term;
	uint64_t read_ctx;
	uint64_t token; /* what node.c's outcomes name this entry by: serial and slot */
	bool read_ready;
	uint32_t deadline_tick;
	char op[32];
	char arg[CLUSTER_CONFIG_KEY_MAX + 1];
};

enum cp_submit_kind {
	CP_SUB_MSG = 1,  /* an encoded Raft message from a peer */
	CP_SUB_PROPOSE,  /* a command for the cluster state */
	CP_SUB_CONF,     /* raft_conf_change_encode() bytes */
	CP_SUB_READ,     /* arg = read context */
	CP_SUB_TRANSFER, /* arg = target id */
};
struct cp_metrics {
	uint64_t term, leader, commit, applied, last_index;
	uint32_t role;
	uint64_t proposals_total, proposals_failed;
	uint64_t fsync_hist[16]; /* buckets: <= 2^i * 64 us */
	uint64_t fsync_count;
	uint64_t fsync_sum_us;
	uint64_t peer_ids[RAFT_NODES_MAX];
	uint64_t peer_lag[RAFT_NODES_MAX];
	uint32_t n_peers;
	int64_t dp_heartbeat_age_ms; /* -1: no dataplane */
	/* Liveness (liveness.c): pings sent, grants given (leader), malformed pings/echoes,
	 * pings from non-members dropped, this node's lease left (ms; 0: none). */
	uint64_t lv_sent, lv_grants, lv_bad, lv_not_member;
	int64_t lease_left_ms;
	uint64_t frames_bad, auth_failures, conns_accepted;
	uint64_t conns_refused; /* no slot: the pool held only authenticated connections */
	uint64_t conns_evicted; /* unauthenticated, closed to make room for a newer one */
	uint64_t auth_timeouts; /* not authenticated within --auth-timeout-ms */
	uint64_t submit_busy;   /* submissions refused: the submission area was full */
	uint64_t mem_allocated, mem_resident;
};

struct cp_config {
	char name[SP_MEMBER_NAME_MAX];
	char data_dir[512];
	char listen_peer[CLUSTER_ADDR_MAX];
	char listen_client[CLUSTER_ADDR_MAX];
	char advertise_client[CLUSTER_ADDR_MAX];
	char initial_cluster[4096];
	bool initial_new; /* --initial-cluster-state new */
	char secret_file[512];
	char state_region[512];
	char metrics[CLUSTER_ADDR_MAX];
	uint32_t partitions;
	uint32_t snapshot_entries; /* applied entries between snapshots */
	uint32_t auth_timeout_ms;  /* a connection must authenticate within this */
	uint32_t config_max_keys;  /* the operator's limits on the configuration store */
	uint32_t config_max_value;
	uint64_t config_max_bytes;
	/* This node's dataplane, as the cluster should know it. */
	bool dp_set;
	uint32_t dp_ipv4_be;
	uint8_t dp_mac[6];
	uint16_t dp_port;
	uint16_t dp_memcached_port;
	uint16_t dp_workers;
	uint32_t lease_ms;           /* --lease-ms */
	uint32_t failure_timeout_ms; /* --failure-timeout-ms */
	uint32_t hold_down_ms;       /* --hold-down-ms */
};

/* Liveness (liveness.c): pings, this node's lease, the leader's failure detector. */
struct cp_liveness {
	struct health h;
	struct health_report self; /* this node's report on its dataplane */
	uint64_t term;
	uint64_t leader_id;
	uint64_t leader_lease_ns; /* leader only: the quorum lease */
	uint64_t lease_expiry_ns; /* this node's lease, own clock */
	uint64_t revoked_at_ns;   /* dataplane found dead then; 0 = not revoked */
	uint64_t revoke_floor_ns; /* grants of pings sent before this do not count */
	uint64_t written_expiry;
	uint32_t written_membership;
	bool removed;
	uint64_t sent, grants, bad, not_member;
};

struct cp {
	struct cp_config cfg;
	uint64_t id;
	uint8_t secret[FRAME_SECRET_MAX];
	size_t secret_len;
	struct io_uring ring;
	struct cp_listener lpeer, lclient;
	struct cp_op op_tick;
	struct __kernel_timespec tick_ts;
	uint32_t tick;
	bool stopping;
	bool isolated; /* fault switch: drop all Raft traffic (SIGUSR1 toggles) */

	struct cp_conn *conns[CP_CONNS_MAX]; /* [0, CP_PEER_CONNS_MAX): members' */
	struct cp_conn *closing;             /* out of the table, waiting for their I/O */
	uint64_t conn_serial;
	struct sp_log_limit lim_refused, lim_bad; /* log lines outsiders can cause */
	struct cp_peer peers[SP_MEMBERS_MAX];
	uint32_t n_peers;

	struct raft *raft;
	struct log_store *log;
	struct cluster_sm *sm;
	uint64_t applied;
	uint64_t snap_index;
	uint64_t snap_term;

	/* A ready being persisted: nothing is stepped until it is durable; what arrives
	 * meanwhile waits in the submission area, in order. A durable ready whose outcomes
	 * do not fit the outcome queue waits (rd_durable) until the API has drained it. */
	bool ready_inflight;
	bool rd_durable;
	struct raft_ready rd;
	int64_t rd_seq;
	struct raft_hard_state hs_synced;  /* term and vote known durable */
	struct raft_hard_state hs_pending; /* of the ready being persisted */
	struct cp_subq subq;
	struct cp_outq outq; /* node.c's outcomes for the API, in order */
	uint32_t ticks_owed;
	/* node.c's buffers, sized at start. */
	struct raft_entry *msg_entries; /* RAFT_MSG_ENTRIES_MAX: a decoded message's entries */
	struct raft_entry *batch;       /* RAFT_PROPOSE_BATCH_MAX: proposals stepped together */
	struct log_entry *ents;         /* CP_READY_ENTRIES_MAX: a ready's entries to write */
	uint8_t *cmd_buf;               /* CLUSTER_CMD_BYTES_MAX: a command node.c builds */
	uint8_t *send_buf;              /* send_cap: one encoded Raft message */
	size_t send_cap;
	struct sp_map_entry *plan_map; /* SP_PARTITIONS_MAX: cp_node_rebalance's plan */
	uint64_t applied_term;
	int fatal; /* storage failed: the process stops with this error */
	bool was_member;
	uint64_t removed_ids[RAFT_NODES_MAX]; /* recent removals, told when they call */
	uint32_t n_removed;
	uint32_t removed_tick;

	struct cp_pending pending[CP_PENDING_MAX];
	uint32_t n_pending;
	uint64_t next_read_ctx;
	uint64_t pending_serial; /* tells reuses of a pending slot apart in tokens */
	uint8_t *api_cmd_buf;    /* CLUSTER_CMD_BYTES_MAX: a command api.c encodes */

	/* Leader duties: one proposal of each kind in flight at a time. */
	uint64_t duty_index; /* index of the last own proposal for membership/map duties */
	uint32_t duty_tick;

	struct cp_liveness lv;
	bool rebalance_requested; /* shardctl partitions rebalance: joiners too, once */

	struct sp_region *region;
	struct sp_cluster_state *region_state;
	uint64_t region_published_epoch;
	uint64_t region_published_members;

	pthread_mutex_t metrics_lock;
	struct cp_metrics metrics;
	void *mhd;
	uint64_t fsync_started_ns;
};

/* io.c */
int cp_io_init(struct cp *cp);
void cp_io_fini(struct cp *cp);
void cp_io_complete(struct cp *cp, struct io_uring_cqe *cqe);
void cp_io_tick(struct cp *cp);
int cp_conn_send_frame(struct cp_conn *c, uint8_t type, const void *a, uint32_t alen, const void *b,
                       uint32_t blen);
bool cp_conn_alive(struct cp *cp, struct cp_conn *c, uint64_t serial);
struct cp_peer *cp_peer_find(struct cp *cp, uint64_t id);
struct cp_peer *cp_peer_upsert(struct cp *cp, uint64_t id, const char *name, const char *addr);
void cp_peer_remove(struct cp *cp, uint64_t id);

/* node.c */
int cp_node_start(struct cp *cp);
void cp_node_stop(struct cp *cp);
void cp_node_tick(struct cp *cp);
void cp_node_on_raft_frame(struct cp *cp, const uint8_t *buf, uint32_t len);
/*
 * Moves Raft on: steps what waits, writes and sends readies, applies what is durable.
 * Outcomes go to cp->outq; work whose outcomes do not fit waits there. Returns true when
 * it stopped for lack of room in the outcome queue: drain it and call again.
 */
bool cp_node_drive(struct cp *cp);
void cp_node_on_durable(void *arg, uint64_t seq, int err);
/*
 * Steps kind (enum cp_submit_kind) now, or after the ready being persisted (the bytes are
 * copied into the submission area). When token is not 0, exactly one CP_OUT_SUBMITTED
 * outcome names it later. Returns 0, or -SP_EFULL when the submission area is full
 * (counted in metrics.submit_busy; no outcome then).
 */
int cp_node_submit(struct cp *cp, uint32_t kind, uint64_t arg, const void *data, uint32_t len,
                   uint64_t token);
void cp_node_status(struct cp *cp, struct raft_status *st);
/* Computes a balanced map; proposes it when it moves something (or none exists yet). */
int cp_node_rebalance(struct cp *cp, bool propose, uint32_t *moved);

/* liveness.c */
void cp_liveness_init(struct cp *cp);
void cp_liveness_tick(struct cp *cp);
void cp_liveness_duties(struct cp *cp);
void cp_liveness_on_frame(struct cp *cp, uint64_t from_peer, const uint8_t *buf, uint32_t len);
void cp_liveness_removed(struct cp *cp);
bool cp_liveness_auto(const struct cp *cp);
/* The next map (moves whose old owner stopped; the rest fenced first). everyone: nodes
 * without partitions take some even with auto rebalance off. Returns 0 or -SP_ENOTFOUND. */
int cp_liveness_plan(struct cp *cp, bool everyone, struct sp_map_entry *next, uint32_t *moved,
                     uint32_t *fenced);
/* The leader's verdict on a member (why empty when healthy). */
void cp_liveness_judge(struct cp *cp, uint64_t id, struct health_verdict *vd);
/* This node's dataplane: "up", "down", "not ready", "mismatch", "none"; why when not up. */
const char *cp_liveness_dp_state(struct cp *cp, char *why, size_t why_len);

/* api.c */
void cp_api_on_request(struct cp *cp, struct cp_conn *c, const uint8_t *payload, uint32_t len);
/* Takes node.c's outcomes (cp->outq) in order and answers the requests they finish, then
 * the reads the applied state now covers. Returns how many outcomes it took. */
uint32_t cp_api_take_outcomes(struct cp *cp);
/* Sizes the API's buffers. Returns 0 or -ENOMEM. */
int cp_api_init(struct cp *cp);
void cp_api_fini(struct cp *cp);
void cp_api_tick(struct cp *cp);
void cp_api_on_conn_closed(struct cp *cp, struct cp_conn *c);

/* metrics.c */
int cp_metrics_start(struct cp *cp);
void cp_metrics_stop(struct cp *cp);
void cp_metrics_update(struct cp *cp);
void cp_metrics_fsync_done(struct cp *cp, uint64_t took_ns);

#endif
