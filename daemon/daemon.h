/* Internal to clsnapd: the daemon's shared state and the functions its five
 * files call on each other. The node core (node.h) holds the algorithm; this
 * layer turns libuv callbacks into node events and node actions into bytes.
 *
 *   main.c     arguments, signals, loop, shutdown
 *   server.c   listener, accepted connections, decoding, first-frame dispatch,
 *              control-connection output
 *   peer.c     outbound channels (connect, HELLO, buffers, jitter, write cap),
 *              inbound channel state, lockstep held FIFOs, circulate mode,
 *              node actions -> frames
 *   control.c  control requests -> node calls -> replies; notifications;
 *              parked DELIVER and CONNECT requests
 *   log.c      leveled logging to stderr
 *
 * Ownership: the daemon owns every channel and connection. A connection is
 * freed only in its close callback; channels live until the loop is closed.
 * One thread; no locking.
 */
#ifndef CL_DAEMON_H
#define CL_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "error.h"
#include "log.h"
#include "node.h"
#include "util.h"
#include "wire.h"

/* Limits (every buffer and queue has a stated maximum). */
#define CL_DEFAULT_WRITE_CAP ((size_t)64 << 20) /* per outbound channel */
#define CL_DEFAULT_INPUT_CAP ((size_t)CL_WIRE_DEFAULT_CAP) /* per connection */
#define CL_CTRL_OUT_CAP ((size_t)64 << 20) /* queued replies per client */
#define CL_HELD_MAX 65536       /* lockstep: held messages per channel before
                                   the socket stops being read */
#define CL_MAX_CONNS 1024       /* accepted connections at once */
#define CL_PARKED_MAX 65536     /* parked DELIVER + CONNECT requests */
#define CL_CONNECT_WINDOW_MS 10000 /* CONNECT retries refused connects */
#define CL_CIRC_LOW_WATER ((size_t)64 << 10) /* circulate: per channel */
#define CL_CIRC_BUDGET 65536    /* circulate: tokens per loop turn */
#define CL_CIRC_MIN_BATCH 4096  /* circulate: fewest tokens per channel
                                   written in a turn while more are held
                                   (32 KiB of frames): few, large writes */
#define CL_FRAME_EST 24         /* upper bound of a TOKEN/MARKER frame */
#define CL_READ_CHUNK ((size_t)64 << 10)
/* Outbound buffers an idle channel keeps: CL_OUT_IDLE_BUDGET shared by
 * all channels, at least CL_OUT_KEEP_MIN each (see out_keep in peer.c). */
#define CL_OUT_IDLE_BUDGET ((size_t)2 << 20)
#define CL_OUT_KEEP_MIN ((size_t)16 << 10)
#define CL_READ_MIN ((size_t)4 << 10) /* least room offered to one read */
#define CL_STOP_GRACE_MS 2000   /* shutdown: wait this long for replies */
/* A new connection must send its whole first frame, and a frame once begun
 * must be finished, within this long (--frame-timeout); otherwise it only
 * holds one of the CL_MAX_CONNS slots. */
#define CL_DEFAULT_FRAME_TIMEOUT_MS 10000

typedef struct cl_daemon cl_daemon_t;

/* Double-buffered output: frames are appended to `pend`; once per loop turn
 * `pend` becomes `fly` and goes out in one uv_write; `fly`'s bytes live until
 * the write callback. */
typedef struct cl_outbuf {
  msgpack_sbuffer pend;
  msgpack_sbuffer fly;
  uv_write_t wreq;
  int writing;
} cl_outbuf_t;

/* Write o's pending bytes on s (caller checked: not writing, something
 * pending). Synchronously when the socket takes them all: no write
 * request, so no completion round (in libuv 1.44 an extra loop turn and an
 * epoll_ctl per write); the pending buffer is then given back to the heap
 * if it is over `keep` bytes. Otherwise the buffers swap and the rest of
 * `fly` is written with cb (req data `data`); fly.size stays the whole
 * buffer until cb (counted as queued: at most one write's worth too many).
 * Returns 1 if a write was started, 0 if all went synchronously, or a
 * negative libuv error (nothing pending is kept then). */
int cl_outbuf_write(cl_outbuf_t *o, uv_stream_t *s, uv_write_cb cb,
                    void *data, size_t keep);

typedef enum { CL_CONN_NEW, CL_CONN_CONTROL, CL_CONN_PEER } cl_conn_kind_t;

/* One accepted TCP connection. */
typedef struct cl_conn {
  uv_tcp_t tcp; /* first: the handle's address is the connection's */
  cl_daemon_t *d;
  struct cl_conn *prev, *next;
  int kind;      /* cl_conn_kind_t */
  int closing;   /* uv_close called; freed in the close callback */
  int stopping;  /* graceful shutdown in progress (control) */
  int paused;    /* peer: reading stopped, too many held messages */
  int push;      /* control: send LOCAL_STATE instead of COMPLETE (PUSH) */
  int alloc_err; /* error from the decoder's reserve in alloc_cb */
  int in;        /* peer: inbound channel index */
  int fast;      /* peer: 0 decoder, 1 parsed in place (free-running),
                    2 back on the decoder for good */
  unsigned ncarry;  /* fast: bytes of a partial frame kept between reads */
  char carry[24];   /* (a fast frame is at most 20 bytes) */
  uint64_t since; /* loop ms: accepted (new) or waiting for the rest of a
                     frame since (0: nothing pending); see the sweep */
  cl_wire_decoder_t *dec;
  char addr[CL_ADDR_SIZE + 8]; /* remote address, for logs */
  char name[CL_ID_SIZE];       /* peer id or client name */
  cl_outbuf_t out;             /* control: replies and notifications */
  uv_shutdown_t sreq;
} cl_conn_t;

/* A request whose reply waits for something (DELIVER, CONNECT). */
typedef struct cl_parked {
  struct cl_parked *next;
  cl_conn_t *conn;
  uint64_t req;
} cl_parked_t;

/* A received peer message (lockstep: held until DELIVER). */
typedef struct cl_held {
  uint8_t kind; /* CL_NODE_TOKEN / CL_NODE_MARKER */
  uint64_t a;   /* TOKEN: seq; MARKER: snapshot id */
  int64_t n;    /* TOKEN: tokens */
} cl_held_t;

typedef enum { CL_IN_WAIT, CL_IN_UP, CL_IN_LOST } cl_in_state_t;

typedef struct cl_in_chan {
  char id[CL_ID_SIZE];
  int state;      /* cl_in_state_t */
  cl_conn_t *conn; /* while CL_IN_UP */
  cl_held_t *held; /* ring; at most CL_HELD_MAX + 1 entries */
  size_t hhead, hcount, hcap;
  cl_parked_t *phead, *ptail; /* parked DELIVERs, FIFO */
} cl_in_chan_t;

typedef enum {
  CL_OUT_IDLE,       /* configured, CONNECT not yet asked */
  CL_OUT_CONNECTING, /* resolving, connecting or waiting to retry */
  CL_OUT_UP,
  CL_OUT_FAILED, /* gave up after CL_CONNECT_WINDOW_MS; CONNECT retries */
  CL_OUT_LOST    /* was up, then lost; sends refused with CL_ELOST */
} cl_out_state_t;

/* A message waiting out its jitter delay. */
typedef struct cl_jit {
  uint64_t due; /* loop time, ms */
  uint8_t kind;
  uint64_t a;
  int64_t n;
} cl_jit_t;

typedef struct cl_out_chan {
  cl_daemon_t *d;
  uint32_t index;
  char id[CL_ID_SIZE];
  char addr[CL_ADDR_SIZE];
  int state; /* cl_out_state_t */
  uv_tcp_t tcp;
  int tcp_open; /* initialised and its close callback not yet run */
  uv_connect_t creq;
  uv_timer_t retry;
  uv_getaddrinfo_t gai;
  int gai_busy;
  struct sockaddr_storage sa;
  int have_sa;
  uint64_t deadline;
  unsigned backoff_ms;
  int last_err;
  cl_outbuf_t out; /* HELLO is the first frame ever queued */
  cl_jit_t *jq;    /* ring; bounded by the write cap (markers excepted) */
  size_t jhead, jcount, jcap;
  uint64_t last_due;
} cl_out_chan_t;

struct cl_daemon {
  uv_loop_t *loop;
  char id[CL_ID_SIZE];
  size_t max_kept, write_cap, input_cap;
  uint64_t frame_timeout_ms;

  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  uv_prepare_t prepare; /* flushes all output once per loop turn */
  uv_timer_t jitter_timer;
  uv_timer_t stop_timer;
  uv_timer_t sweep; /* closes connections stuck before or inside a frame */
  int stopping;
  int exit_code;

  cl_conn_t *conns; /* all accepted connections */
  size_t nconns;

  int configured;
  int lockstep;
  uint32_t jitter_ms, rank, nservers;
  uint64_t rng;
  cl_node_t *node;
  cl_actions_t acts;
  cl_out_chan_t *out; /* [nout], node's outbound index order */
  size_t nout;
  cl_in_chan_t *in;   /* [nin], node's inbound index order */
  size_t nin;
  int connect_asked;
  cl_parked_t *connect_parked; /* parked CONNECT requests */
  size_t nparked;
  uint64_t auto_k; /* next k for automatic snapshot ids */
  int circulate;
  size_t circ_rr;
  uint64_t jit_next; /* when the jitter timer fires; 0 if idle */
  char *rbuf;        /* fast peer input: one read buffer for all */
  size_t rbuf_chunk; /* bytes read at once into rbuf (after the carry) */

  /* Messages sent by the command being handled (for OK's sent list). */
  int collect;
  cl_sent_t *sent;
  size_t nsent, sent_cap;
};

/* main.c */
/* Begin a clean shutdown: stop listening, send what is queued to clients,
 * close every handle. Safe to call more than once. */
void cl_daemon_stop(cl_daemon_t *d, int exit_code);

/* server.c */
int cl_server_listen(cl_daemon_t *d, const char *host, int port,
                     char *bound, size_t boundsz);
/* Queue one message to a control client; closes it past CL_CTRL_OUT_CAP.
 * Returns 0 only if the message is queued for a client still connected;
 * CL_EFULL if it took the client past the cap (closed, so it will never
 * get it), CL_ELOST if c is already closing, CL_EINVAL if c is not a
 * control connection, or the encoder's CL_E error (nothing queued; c is
 * closed for CL_ENOMEM). */
int cl_conn_send(cl_conn_t *c, const cl_msg_t *m);
/* Log "<why>" naming the connection, close it; a peer connection's channel
 * is lost (NOTICE). */
void cl_conn_fail(cl_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Close without logging (already logged). */
void cl_conn_close(cl_conn_t *c);
/* "peer N2 (127.0.0.1:4242)", "client clsnap (…)" or the address. */
const char *cl_conn_label(const cl_conn_t *c);
/* Decode frames already buffered for a peer connection and resume reading
 * if its held FIFO has room again. */
void cl_server_resume(cl_conn_t *c);
void cl_server_flush(cl_daemon_t *d);
void cl_server_stop(cl_daemon_t *d, int force);
/* Start the timer that closes connections which sent no complete first
 * frame, or stalled inside a frame, for d->frame_timeout_ms. */
void cl_server_sweep_start(cl_daemon_t *d);

/* peer.c */
/* After CONFIGURE: create channels and the node. Returns 0 or CL_E*. */
int cl_peer_setup(cl_daemon_t *d, const cl_configure_t *cfg);
/* CONNECT: start (or restart after failure) every outbound channel. */
void cl_peer_connect_all(cl_daemon_t *d);
/* 1 all outbound up; 0 still connecting; <0 a channel failed or was lost
 * (*bad = its index). */
int cl_peer_connect_state(const cl_daemon_t *d, size_t *bad);
/* Bytes queued on outbound channel i (buffers + jitter queue). */
size_t cl_peer_queued(const cl_daemon_t *d, size_t i);
/* Make room so that one frame can be queued on channel i (or on all)
 * without allocating. Returns 0 or CL_ENOMEM. */
int cl_peer_reserve(cl_daemon_t *d, size_t i);
int cl_peer_reserve_all(cl_daemon_t *d);
/* Turn d->acts into frames, logs and notifications; clears d->acts. */
void cl_peer_apply(cl_daemon_t *d);
/* A TOKEN/MARKER arrived on a peer connection. */
void cl_peer_inbound(cl_conn_t *c, const cl_msg_t *m);
/* The peer connection of inbound channel i is gone (why: a uv error or a CL_E
 * code; text for the log and NOTICE). */
void cl_peer_inbound_lost(cl_daemon_t *d, size_t i, const char *why);
/* Free-running: parse TOKEN/MARKER frames of a peer connection in place and
 * handle them. Returns bytes consumed; *stop = 1 when a frame follows that
 * only the generic decoder may judge. */
size_t cl_peer_fast_input(cl_conn_t *c, const char *buf, size_t n,
                          int *stop);
/* Lockstep: handle the head held message of inbound i. Returns 0 (with
 * kind and value), CL_EAGAIN if none is held, or the node's CL_E error (the
 * channel is then failed). */
int cl_peer_deliver(cl_daemon_t *d, size_t i, uint8_t *kind,
                    uint64_t *value, char *why, size_t whysz);
/* Once per loop turn: circulate, then write every channel's buffer. */
void cl_peer_flush(cl_daemon_t *d);
void cl_peer_stop(cl_daemon_t *d);
void cl_peer_free(cl_daemon_t *d);

/* control.c */
void cl_control_request(cl_conn_t *c, const cl_msg_t *m);
void cl_control_complete(cl_daemon_t *d, uint64_t snapshot_id);
void cl_control_notice(cl_daemon_t *d, const char *peer, const char *text);
/* Re-check parked CONNECTs after an outbound channel changed state. */
void cl_control_connect_progress(cl_daemon_t *d);
/* A message arrived on inbound i that a parked DELIVER waits for. */
void cl_control_deliver_parked(cl_daemon_t *d, size_t i);
/* Inbound i was lost: fail its parked DELIVERs with CL_ELOST. */
void cl_control_deliver_lost(cl_daemon_t *d, size_t i);
/* Connection c is closing: forget its parked requests. */
void cl_control_forget(cl_daemon_t *d, cl_conn_t *c);
void cl_control_free(cl_daemon_t *d);

/* Text for a libuv or CL error code in log lines ("connection reset"). */
const char *cl_daemon_strerror(int err);

#endif
