/* The protocol session of one server: everything clsnapd does between its
 * sockets and the Chandy-Lamport rules (node.h), with no I/O. The daemon's
 * transport (daemon/dispatch.c) and the coordinator's in-process backend
 * (coordinator/sim.c) both drive it; neither re-implements any of it.
 *
 * Inputs: a control request from client k, a peer frame on inbound channel
 * i, a channel connected or lost, a client gone. Each call appends effects
 * to the session's list (cl_fx_t: a frame for outbound channel i, a message
 * for client k, connect channel i, read channel i again, a log line, stop);
 * the caller takes them with cl_session_take_fx and performs them in order.
 * What must happen at once (stop reading, close a channel that broke the
 * protocol) is the return value of the call instead.
 *
 * What lives here: configuration, the lockstep hold queues and DELIVER,
 * requests parked until a message or a connection arrives (DELIVER,
 * CONNECT, SEND), the snapshot-id rule, the list of messages a request
 * caused (OK's sent list), completion, WATCH/LOCAL_STATE, COLLECT, STATUS,
 * the write cap. Every request is checked completely and everything it may
 * need is reserved (effect slots, reply, frame room through env.reserve)
 * before the node changes, so a refused or failed request changes nothing
 * and its reply is an ERROR.
 *
 * Ownership: the session owns the node and its clients' state; messages in
 * effects belong to the effect list until cl_fx_list_clear. Not
 * re-entrant: env callbacks must not call back into the session.
 */
#ifndef CL_SESSION_H
#define CL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "wire.h"

/* Log levels of LOG effects (the daemon's log.h uses the same values). */
enum { CL_SLOG_DEBUG = 0, CL_SLOG_INFO, CL_SLOG_WARN, CL_SLOG_ERROR };

/* Limits, each a stated bound. */
#define CL_HELD_MAX 65536    /* lockstep: messages held per inbound channel
                                before it is no longer read */
#define CL_PARKED_MAX 65536  /* requests waiting (DELIVER, CONNECT, SEND) */
#define CL_WATCH_MAX 64      /* WATCH ranges per client */
#define CL_FRAME_EST 24      /* upper bound of a TOKEN/MARKER frame, bytes */
/* Completed states kept when no client watches them, by default
 * (--max-kept); beyond it the oldest is dropped, with a log line. */
#define CL_SESSION_DEFAULT_KEPT 256
/* Snapshot ids a server picks itself (SNAPSHOT nil, NEXT_ID): the
 * smallest id above every id >= CL_AUTO_ID_BASE the server has seen
 * (started, issued, met in a marker) that is CL_AUTO_ID_BASE + rank
 * modulo nservers. The residue keeps servers' ids disjoint; max seen + 1
 * makes a snapshot started after another one's marker reached the server
 * get the larger id; ids below the base (scripted runs) move nothing. */
#define CL_AUTO_ID_BASE ((uint64_t)1000000)
/* A receiver acknowledges every CL_ACK_FRAMES frames, and on every tick
 * the frames had since its last ACK. */
#define CL_ACK_FRAMES ((uint64_t)1 << 20)
/* How often the transport calls cl_session_tick, ms. */
#define CL_TICK_MS 100
/* A sender whose unconfirmed frames get no acknowledgement for this long
 * breaks the connection and reconnects (--peer-timeout). */
#define CL_DEFAULT_PEER_TIMEOUT_MS 5000
/* A channel not back within this long after its connection ended is lost
 * (--peer-lost). */
#define CL_DEFAULT_PEER_LOST_MS 30000

typedef enum {
  CL_CHAN_IDLE = 0,   /* outbound: configured, not asked to connect;
                         inbound: waiting for its HELLO */
  CL_CHAN_CONNECTING, /* outbound: connecting or retrying, or reconnecting
                         after it was up; inbound: its connection ended,
                         waiting for the sender to reconnect */
  CL_CHAN_UP,
  CL_CHAN_FAILED,     /* outbound: could not connect within its window */
  CL_CHAN_LOST        /* was up, then closed */
} cl_chan_state_t;

typedef enum {
  CL_FX_FRAME = 1, /* `count` frames on outbound `chan`: TOKENs{seq a, a+1,
                      ..., n tokens each} or a MARKER{a = id} (count 1);
                      room was reserved through env.reserve */
  CL_FX_MSG,       /* queue *msg for client `client`; if has_release, call
                      cl_session_queued(release) once it is queued (COLLECT
                      with release: a client gone past its reply cap must
                      not take the state with it) */
  CL_FX_ERROR,     /* queue ERROR{req, code, text} for client `client` */
  CL_FX_CONNECT,   /* start connecting outbound `chan` (within a window;
                      report with cl_session_out_state) */
  CL_FX_RESUME,    /* inbound `chan` may be read again */
  CL_FX_CLOSE_IN,  /* close inbound `chan`'s connection (text: why); the
                      session already counts the channel lost */
  CL_FX_LOG,       /* text at level (CL_SLOG_*); in the log list only */
  CL_FX_DROP,      /* close client `client`: a notification for it could not
                      be made (text: why) */
  CL_FX_STOP,      /* shut down once queued replies are written */
  CL_FX_ACK,       /* send ACK{received = a} on inbound `chan` */
  CL_FX_BREAK      /* outbound `chan` makes no progress (text: why): close
                      its connection and reconnect */
} cl_fx_kind_t;

typedef struct cl_fx {
  uint8_t kind;  /* cl_fx_kind_t */
  uint8_t level; /* LOG */
  uint8_t frame; /* FRAME: CL_MSG_TOKEN or CL_MSG_MARKER */
  uint8_t has_release;
  uint32_t chan;
  int32_t code;   /* ERROR */
  void *client;   /* MSG, ERROR, DROP: the tag given to client_open */
  uint64_t a;     /* FRAME: seq or snapshot id; ERROR: req */
  int64_t n;      /* FRAME TOKEN: tokens */
  uint64_t count; /* FRAME: frames (>= 1) */
  uint64_t release;
  cl_msg_t *msg;  /* MSG; owned by the list */
  char *text;     /* ERROR, LOG, DROP, CLOSE_IN; owned unless static */
  uint8_t text_static;
} cl_fx_t;

typedef struct cl_fx_list {
  cl_fx_t *v;
  size_t n, cap;
} cl_fx_list_t;

/* The ERROR reply an ERROR effect stands for (made by the transport, so
 * that refusing a request under memory pressure allocates nothing). */
void cl_fx_error_msg(const cl_fx_t *f, cl_msg_t *out);

/* Free what the effects own and empty the list (capacity kept). */
void cl_fx_list_clear(cl_fx_list_t *l);
void cl_fx_list_free(cl_fx_list_t *l);

/* What the session asks of its transport, synchronously. */
typedef struct cl_session_env {
  void *ctx;
  /* Room for `frames` more FRAME effects on outbound `chan`, so that
   * performing them cannot fail. 0 or CL_ENOMEM. */
  int (*reserve)(void *ctx, uint32_t chan, size_t frames);
  /* Bytes queued on outbound `chan` (held against the write cap). */
  size_t (*queued)(void *ctx, uint32_t chan);
  /* A CONFIGURE is about to be accepted: set up outbound channel i for
   * out_ids[i] (the order FRAME effects use; its address is in cfg).
   * 0, or a CL_E code that refuses the configuration (nothing is kept). */
  int (*configure)(void *ctx, const cl_configure_t *cfg, size_t nout,
                   const char *const *out_ids);
  /* A monotonic clock in microseconds, for trace events; NULL: 0. */
  uint64_t (*clock_us)(void *ctx);
} cl_session_env_t;

typedef struct cl_session_config {
  const char *self;  /* this server's id (CONFIGURE must name it) */
  size_t max_kept;   /* completed states kept unwatched; 0: default */
  size_t max_active; /* snapshots in progress; 0: CL_NODE_ACTIVE_MAX */
  size_t write_cap;  /* bytes queued per outbound channel for SEND */
  int log_level;     /* LOG effects below it are not made */
  uint64_t peer_timeout_ms; /* 0: CL_DEFAULT_PEER_TIMEOUT_MS */
  uint64_t peer_lost_ms;    /* 0: CL_DEFAULT_PEER_LOST_MS */
  cl_session_env_t env;
} cl_session_config_t;

typedef struct cl_session cl_session_t;
typedef struct cl_session_client cl_session_client_t;

/* 0 and *out, CL_EINVAL (invalid id) or CL_ENOMEM. */
int cl_session_new(const cl_session_config_t *cfg, cl_session_t **out);
void cl_session_free(cl_session_t *s);

/* Move the effects made so far into *fx and the log lines (CL_FX_LOG) into
 * *logs, both emptied first; the session keeps two empty lists. The caller
 * performs fx in order, then clears them (cl_fx_list_clear). */
void cl_session_take(cl_session_t *s, cl_fx_list_t *fx, cl_fx_list_t *logs);
/* Effects and log lines made and not yet taken. */
size_t cl_session_pending(const cl_session_t *s);

/* ---- clients ------------------------------------------------------------ */

/* A control connection opened (its CLIENT frame). tag comes back in the
 * client's effects. NULL when out of memory. */
cl_session_client_t *cl_session_client_open(cl_session_t *s, void *tag);
/* It is gone: its parked requests and watches are forgotten. */
void cl_session_client_close(cl_session_t *s, cl_session_client_t *c);
/* One control request (CL_MSG_FIRST_REQUEST..CL_MSG_LAST_REQUEST). Its
 * reply (OK, ERROR, STATE, STATUS_R) is an effect, now or, for a parked
 * request, later. */
void cl_session_request(cl_session_t *s, cl_session_client_t *c,
                        const cl_msg_t *m);
/* A MSG effect with has_release was queued: release that kept state. */
void cl_session_queued(cl_session_t *s, uint64_t snapshot_id);

/* ---- peers -------------------------------------------------------------- */

/* Frames on a channel, tokens and markers alike, are numbered 1, 2, 3 ...
 * by their position, across connections. The receiver counts the frames
 * it has had (held ones too) and acknowledges them (CL_FX_ACK); the sender
 * keeps every frame not yet acknowledged, as runs. When a connection ends,
 * the sender reconnects with the same HELLO; WELCOME carries the
 * receiver's count, and the sender resends every frame after it, in
 * order, before anything new: each channel stays FIFO and exactly-once
 * across reconnections. */

/* A new connection's HELLO: 0, *in and *received (the frames the channel
 * has had, for WELCOME; inbound `in` is now up, and a connection that
 * carried it before must be closed, unread bytes and all), or a CL_E code
 * with why (refuse and close it). */
int cl_session_hello(cl_session_t *s, const cl_msg_t *hello, uint32_t *in,
                     uint64_t *received, char *why, size_t whysz);
/* A TOKEN or MARKER arrived on inbound `in`. Returns 0; 1 in lockstep when
 * the channel holds more than CL_HELD_MAX messages (stop reading it until
 * CL_FX_RESUME); or a CL_E code with why: the peer broke the protocol,
 * close the connection (then cl_session_in_lost). */
int cl_session_peer(cl_session_t *s, uint32_t in, const cl_msg_t *m,
                    char *why, size_t whysz);
/* Free-running: `count` one-token messages with seqs first.. on `in`, the
 * same as that many TOKEN frames. 0 or a CL_E code with why (the messages
 * before the refused one were taken). */
int cl_session_receive_ones(cl_session_t *s, uint32_t in, uint64_t first,
                            uint64_t count, char *why, size_t whysz);
/* Inbound `in`'s connection ended (reset, closed, stalled): the channel
 * waits for its sender to reconnect, at most peer_lost ms. */
void cl_session_in_down(cl_session_t *s, uint32_t in, const char *why);
/* Inbound `in` broke the protocol or cannot be used: lost for good. */
void cl_session_in_lost(cl_session_t *s, uint32_t in, const char *why);
/* Outbound `chan` is now CONNECTING (also: its connection ended and the
 * transport reconnects), FAILED (why: the last error) or LOST (why: the
 * transport gave up reconnecting). UP comes through out_welcome. */
void cl_session_out_state(cl_session_t *s, uint32_t chan,
                          cl_chan_state_t st, const char *why);
/* The receiver of outbound `chan` said WELCOME with `received` frames:
 * the channel is up, and the frames after those are resent (FRAME
 * effects) before any new one. 0, or a CL_E code with why (a count
 * outside what was sent and confirmed; close the connection and count
 * the channel lost). */
int cl_session_out_welcome(cl_session_t *s, uint32_t chan, uint64_t received,
                           char *why, size_t whysz);
/* The receiver of outbound `chan` acknowledged `received` frames. 0, or
 * CL_EPROTO with why (close and count the channel lost). */
int cl_session_out_ack(cl_session_t *s, uint32_t chan, uint64_t received,
                       char *why, size_t whysz);
/* The transport's clock, every CL_TICK_MS or so (ms, monotonic): ACKs for
 * inbound channels with frames not yet acknowledged, BREAKs for outbound
 * channels that got no acknowledgement for peer_timeout ms while frames
 * wait for one, and inbound channels not reconnected within peer_lost ms
 * become lost. */
void cl_session_tick(cl_session_t *s, uint64_t now);
/* Frames sent on outbound `out` and not yet acknowledged. */
uint64_t cl_session_unacked(const cl_session_t *s, size_t out);
/* Runs those frames are kept in (what they cost: 32 bytes each). */
size_t cl_session_unacked_runs(const cl_session_t *s, size_t out);

/* ---- load mode (the transport's circulate loop) ------------------------- */

int cl_session_configured(const cl_session_t *s);
int cl_session_lockstep(const cl_session_t *s);
int cl_session_circulating(const cl_session_t *s);
/* The restore epoch (HELLO carries it; docs/RESTORE.md). */
uint64_t cl_session_epoch(const cl_session_t *s);
size_t cl_session_nout(const cl_session_t *s);
size_t cl_session_nin(const cl_session_t *s);
const char *cl_session_out_id(const cl_session_t *s, size_t i);
const char *cl_session_in_id(const cl_session_t *s, size_t i);
int64_t cl_session_tokens(const cl_session_t *s);
/* Messages held (lockstep) on inbound `in`. */
size_t cl_session_held(const cl_session_t *s, size_t in);
uint64_t cl_session_sent(const cl_session_t *s, size_t out);
/* `count` one-token messages to outbound `out` (up), seqs *first..; the
 * caller writes the frames, and the session keeps them until acknowledged.
 * See cl_node_send_ones; also CL_ENOMEM. */
int cl_session_send_ones(cl_session_t *s, uint32_t out, uint64_t count,
                         uint64_t *first);

#endif
