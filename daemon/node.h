/* The node core: one server's token state and the Chandy-Lamport rules, and
 * nothing else. No sockets, no clock, no logging. Events go in (a send
 * request, a snapshot start, a received token or marker), actions come out
 * (messages to send, snapshots completed, kept states evicted).
 *
 * Who may call: the daemon's control/peer layers and the coordinator's
 * in-process replay backend (tests use it directly).
 *
 * Channels are referred to by index: outbound index i is the i-th outbound
 * peer in byte-wise id order (the order markers are sent in); inbound index
 * likewise over inbound peers. Use cl_node_out_index/cl_node_in_index to map
 * ids.
 *
 * Every operation either succeeds and appends its actions to `acts`, or
 * fails with a negative CL_E* code, leaving the node and `acts` unchanged.
 *
 * Rules kept here:
 * - up to max_active snapshots may be active; each has its own
 *   recorded token count, its own open inbound channels and its own recorded
 *   messages in arrival order; a token arriving on a channel open in several
 *   snapshots is recorded in each;
 * - recorded messages are kept as runs: a message that arrives right after
 *   the previous one recorded in that snapshot, on the same channel, with
 *   the next seq and the same token count, lengthens that run instead of
 *   starting a new one, so a state costs O(runs), not O(messages in flight),
 *   and arrival order is kept exactly;
 * - markers go to outbound peers in id order;
 * - a server with no inbound channels completes a snapshot at once;
 * - token messages carry per-channel sequence numbers 1, 2, 3...; a state
 *   records per-channel sent/received counts at the moment of recording;
 * - completed states are kept until released (how many to keep is the
 *   caller's policy: the session bounds the states nobody watches).
 */
#ifndef CL_NODE_H
#define CL_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h" /* the message kinds: CL_MSG_TOKEN, CL_MSG_MARKER */


typedef enum {
  CL_ACT_SEND = 1, /* send a peer message on outbound channel `peer` */
  CL_ACT_COMPLETE  /* snapshot `snapshot_id` completed locally */
} cl_action_kind_t;

typedef struct cl_action {
  uint8_t kind;         /* cl_action_kind_t */
  uint8_t msg;          /* SEND: CL_MSG_TOKEN or CL_MSG_MARKER */
  uint32_t peer;        /* SEND: outbound index */
  uint64_t seq;         /* SEND TOKEN: channel sequence number */
  int64_t n;            /* SEND TOKEN: tokens */
  uint64_t snapshot_id; /* SEND MARKER, COMPLETE */
} cl_action_t;

/* A growable action list. Reuse one across calls (cl_actions_clear) so the
 * steady state allocates nothing. */
typedef struct cl_actions {
  cl_action_t *v;
  size_t n, cap;
} cl_actions_t;

void cl_actions_init(cl_actions_t *a);
void cl_actions_clear(cl_actions_t *a);
void cl_actions_free(cl_actions_t *a);

typedef struct cl_node cl_node_t;

typedef struct cl_node_config {
  const char *self;
  int64_t tokens;           /* initial tokens, >= 0 */
  size_t nout;
  const char *const *out;   /* outbound peer ids, any order, no duplicates */
  size_t nin;
  const char *const *in;    /* inbound peer ids, any order, no duplicates */
  size_t max_active;        /* snapshots in progress; 0 means
                               CL_NODE_ACTIVE_MAX */
} cl_node_config_t;

/* Most outbound (and most inbound) peers a node accepts; more is CL_EINVAL.
 * Far above CL_SERVERS_MAX, it keeps indexes within int and uint32_t. */
#define CL_NODE_PEERS_MAX 65536
/* Default of the most snapshots in progress at once (max_active). Starting
 * one more (locally or by a first marker) is CL_EFULL, node and actions
 * unchanged: any peer can send markers with fresh ids, and each active
 * snapshot records every later token on its open channels. A node with no
 * inbound channel (or a marker on its only one) completes at once and
 * never has one in progress. */
#define CL_NODE_ACTIVE_MAX 1024

/* Returns 0 and *out, CL_EINVAL (invalid or duplicate id, self as a peer,
 * negative tokens) or CL_ENOMEM. The node copies what it needs. */
int cl_node_new(const cl_node_config_t *cfg, cl_node_t **out);
void cl_node_free(cl_node_t *node);

const char *cl_node_self(const cl_node_t *node);
int64_t cl_node_tokens(const cl_node_t *node);
int64_t cl_node_initial_tokens(const cl_node_t *node);
size_t cl_node_nout(const cl_node_t *node);
size_t cl_node_nin(const cl_node_t *node);
const char *cl_node_out_id(const cl_node_t *node, size_t i);
const char *cl_node_in_id(const cl_node_t *node, size_t i);
/* Index of a peer id, or -1. */
int cl_node_out_index(const cl_node_t *node, const char *id);
int cl_node_in_index(const cl_node_t *node, const char *id);
/* Token messages sent on outbound channel i / received on inbound i. */
uint64_t cl_node_sent(const cl_node_t *node, size_t i);
uint64_t cl_node_received(const cl_node_t *node, size_t i);

/* Move n >= 1 tokens to outbound peer `out`. CL_EINVAL (n < 1, bad index),
 * CL_ENOTOKENS (fewer than n held). Action: SEND TOKEN with the next seq. */
int cl_node_send_tokens(cl_node_t *node, uint32_t out, int64_t n,
                        cl_actions_t *acts);

/* Start snapshot `id` here: record state, send a MARKER to every outbound
 * peer in id order; COMPLETE at once if there are no inbound channels.
 * CL_EEXIST if this node already knows snapshot id (active or kept),
 * CL_EFULL if max_active snapshots are in progress. */
int cl_node_start_snapshot(cl_node_t *node, uint64_t id, cl_actions_t *acts);

/* A TOKEN arrived on inbound channel `in`. CL_EINVAL (bad index, n < 1),
 * CL_ESEQ (seq is not received+1: the channel is not FIFO or a peer lies),
 * CL_ERANGE (the count would exceed CL_MSG_TOKENS_MAX). Tokens are added and
 * the message recorded in every active snapshot whose channel `in` is open. */
#define CL_MSG_TOKENS_MAX ((int64_t)1 << 50)
int cl_node_receive_token(cl_node_t *node, uint32_t in, uint64_t seq,
                          int64_t n, cl_actions_t *acts);

/* Batched forms of the two calls above for the daemon's load path (circulate
 * mode moves tens of millions of messages a second). Same rules, no
 * actions: a token message never causes one.
 *
 * cl_node_send_ones: `count` TOKEN messages of one token each to outbound
 * peer `out`, with sequence numbers *first_seq, *first_seq + 1, ... exactly
 * as count calls cl_node_send_tokens(node, out, 1) would number them; the
 * caller emits them. CL_EINVAL (bad index, count 0), CL_ENOTOKENS (fewer
 * than count tokens held); nothing changes on error. */
int cl_node_send_ones(cl_node_t *node, uint32_t out, uint64_t count,
                      uint64_t *first_seq);

/* cl_node_receive_ones: `count` TOKEN messages of one token each arrived
 * on inbound `in` with sequence numbers first_seq, first_seq + 1, ...: the
 * same as count calls cl_node_receive_token(node, in, seq, 1), stopping at
 * the first refused (and recorded the same way: the accepted messages
 * lengthen each recording snapshot's last run or start one). Returns 0 with *done = count, or the refused message's
 * error (CL_EINVAL bad index or count 0, CL_ESEQ, CL_ERANGE, CL_ENOMEM) with
 * *done = the messages accepted before it (the node is as after those). */
int cl_node_receive_ones(cl_node_t *node, uint32_t in, uint64_t first_seq,
                         uint64_t count, uint64_t *done);

/* A MARKER for snapshot id arrived on inbound channel `in`. The first marker
 * of a snapshot records state and sends markers on; any marker closes its
 * channel for that snapshot; COMPLETE when all inbound channels are closed.
 * CL_EINVAL (bad index), CL_EDUP (channel already closed for id), CL_EFULL
 * (a first marker while max_active snapshots are in progress). */
int cl_node_receive_marker(cl_node_t *node, uint32_t in, uint64_t id,
                           cl_actions_t *acts);

/* 1 if snapshot id is active, kept or dropped here. */
int cl_node_has_snapshot(const cl_node_t *node, uint64_t id);

/* A run of recorded messages: `count` >= 1 token messages that arrived one
 * after another on inbound channel `in` with seqs seq, seq + 1, ...,
 * seq + count - 1, each carrying n tokens. */
typedef struct cl_node_record {
  uint32_t in; /* inbound index */
  uint64_t seq;
  uint64_t count;
  int64_t n;
} cl_node_record_t;

/* A recorded local state, borrowed from the node: valid until the next call
 * that changes the node. */
typedef struct cl_node_state {
  uint64_t snapshot_id;
  int complete;            /* all inbound channels closed */
  int64_t tokens;
  const uint64_t *sent;    /* [nout] */
  const uint64_t *recv;    /* [nin] */
  size_t nrecorded;                 /* runs */
  const cl_node_record_t *recorded; /* runs, arrival order */
} cl_node_state_t;

/* 0 and *st, or CL_ENOENT (unknown id). In-progress states are returned too
 * (complete == 0): the caller decides whether to wait. */
int cl_node_state(const cl_node_t *node, uint64_t id, cl_node_state_t *st);

/* Forget a completed state. CL_ENOENT unknown, CL_EAGAIN still active. */
int cl_node_release(cl_node_t *node, uint64_t id);

/* Give snapshot id up here (a coordinator timed it out): a kept state is
 * released; one in progress stops recording and is no longer active; an
 * unknown one is remembered. A dropped snapshot is neither active nor kept
 * and never completes, but it still passes its marker wave on: if its
 * markers had not gone out here yet, the first marker to come sends them
 * (SEND actions, nothing recorded), so every server the wave reaches
 * forgets it too. Each marker closes its channel, and the last one
 * forgets the snapshot, so a late marker never starts it again. At most
 * CL_NODE_DROPPED_MAX are remembered (the oldest goes). Dropping twice is
 * fine. 0 or CL_ENOMEM. cl_node_state says CL_ENOENT for a dropped id,
 * cl_node_has_snapshot 1. */
#define CL_NODE_DROPPED_MAX 1024
int cl_node_drop(cl_node_t *node, uint64_t id);

/* Bring the node to a recorded local state (a restore): tokens held, and
 * per channel the token messages sent (sent[i] for outbound i) and
 * received (recv[i] for inbound i) so far, in the node's peer order
 * (cl_node_out_id, cl_node_in_id); the next token sent on outbound i gets
 * seq sent[i] + 1, the next one accepted on inbound i must be recv[i] + 1.
 * Every snapshot is forgotten, in progress, kept or dropped (read
 * cl_node_active first to report those in progress): their markers from
 * before the restore must never reach the node again, since one would
 * start its snapshot anew (the session's restore epoch keeps them out).
 * The configured tokens (cl_node_initial_tokens) stay. CL_EINVAL (tokens
 * out of range), node unchanged; else 0. */
int cl_node_restore(cl_node_t *node, int64_t tokens, const uint64_t *sent,
                    const uint64_t *recv);

/* Trace every event the rules apply into trace (daemon/trace.h), from now
 * on; NULL stops. The trace is borrowed: the caller keeps it alive while
 * set. Tracing changes nothing the node does, and costs one pointer test
 * per call while off. */
typedef struct cl_trace cl_trace_t;
void cl_node_set_trace(cl_node_t *node, cl_trace_t *trace);

/* Ids of active (in progress) and kept (completed) snapshots, oldest first;
 * writes at most max, returns the total count. */
size_t cl_node_active(const cl_node_t *node, uint64_t *ids, size_t max);
size_t cl_node_kept(const cl_node_t *node, uint64_t *ids, size_t max);

#endif
