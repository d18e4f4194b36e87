/* Internal to clsnapd: the transport around the protocol session
 * (session.h). It moves bytes, manages connections and runs timers; every
 * protocol rule is the session's.
 *
 *   main.c      arguments, the loop, signals
 *   dispatch.c  runs the session: hands it the transport's events (through
 *               the hooks below), performs its effects (frames, replies,
 *               connects, resumes, logs), the once-per-turn flush, shutdown
 *   server.c    listener and accepted connections: reading, decoding, the
 *               first frame's kind, control-client output
 *   peer.c      outbound channels: connect and retry, HELLO, buffers,
 *               jitter, write cap; circulate mode
 *   log.c       leveled logging to stderr
 *
 * Calls go one way: main -> dispatch -> server, peer -> session -> node.
 * server.c and peer.c report events up only through cl_hooks_t, which
 * dispatch.c fills in.
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

#include "auth.h"
#include "error.h"
#include "log.h"
#include "ring.h"
#include "scan.h"
#include "session.h"
#include "util.h"
#include "wire.h"

/* Limits (every buffer and queue has a stated maximum). */
#define CL_DEFAULT_WRITE_CAP ((size_t)64 << 20) /* per outbound channel */
#define CL_DEFAULT_INPUT_CAP ((size_t)CL_WIRE_DEFAULT_CAP) /* per connection */
#define CL_CTRL_OUT_CAP ((size_t)64 << 20) /* queued replies per client */
#define CL_MAX_CONNS 1024       /* accepted connections at once */
/* File descriptors kept free for the cluster's own channels when the limit
 * on open files (ulimit -n) caps accepted connections. */
#define CL_FD_RESERVE 32
#define CL_CONNECT_WINDOW_MS 10000 /* CONNECT retries refused connects */
#define CL_BACKOFF_FIRST_MS 50  /* connect retry backoff, doubling */
#define CL_BACKOFF_MAX_MS 1000
#define CL_LISTEN_BACKLOG 128
#define CL_CIRC_LOW_WATER ((size_t)64 << 10) /* circulate: per channel */
#define CL_CIRC_BUDGET 65536    /* circulate: tokens per loop turn */
#define CL_CIRC_MIN_BATCH 4096  /* circulate: fewest tokens per channel
                                   written in a turn while more are held
                                   (32 KiB of frames): few, large writes */
#define CL_READ_CHUNK ((size_t)64 << 10)
/* Outbound buffers an idle channel keeps: CL_OUT_IDLE_BUDGET shared by
 * all channels, at least CL_OUT_KEEP_MIN each (see out_keep in peer.c). */
#define CL_OUT_IDLE_BUDGET ((size_t)2 << 20)
#define CL_OUT_KEEP_MIN ((size_t)16 << 10)
/* A control client's output buffer above this is given back after a
 * burst instead of kept at its high-water mark. */
#define CL_CTRL_KEEP ((size_t)1 << 20)
#define CL_READ_MIN ((size_t)4 << 10) /* least room offered to one read */
#define CL_STOP_GRACE_MS 2000   /* shutdown: wait this long for replies */
/* A new connection must send its whole first frame, and a frame once begun
 * must be finished, within this long (--frame-timeout); otherwise it only
 * holds one of the connection slots. */
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

/* How a peer connection's bytes are parsed. */
typedef enum {
  CL_PARSE_DECODER, /* the generic decoder */
  CL_PARSE_FAST,    /* in place (free-running TOKEN/MARKER) */
  CL_PARSE_SLOW     /* back on the decoder for good */
} cl_parse_t;

/* One accepted TCP connection. */
typedef struct cl_conn {
  uv_tcp_t tcp; /* first: the handle's address is the connection's */
  cl_daemon_t *d;
  struct cl_conn *prev, *next;
  cl_conn_kind_t kind;
  int closing;   /* uv_close called; freed in the close callback */
  int stopping;  /* graceful shutdown in progress (control) */
  int paused;    /* peer: reading stopped, too many held messages */
  int alloc_err; /* error from the decoder's reserve in alloc_cb */
  int in;        /* peer: inbound channel index */
  cl_session_client_t *client; /* control: the session's client */
  cl_parse_t parse;
  cl_scan_t scan;   /* CL_PARSE_FAST: the scanner's own state */
  uint8_t nonce[CL_AUTH_NONCE]; /* this connection's CHALLENGE */
  int authed;       /* proved it knows the secret (AUTH) */
  uint64_t since; /* loop ms: accepted (new) or waiting for the rest of a
                     frame since (0: nothing pending); see the sweep */
  cl_wire_decoder_t *dec;
  char addr[CL_ADDR_SIZE + 8]; /* remote address, for logs */
  char name[CL_ID_SIZE];       /* peer id or client name */
  cl_outbuf_t out;             /* control: replies and notifications */
  uv_shutdown_t sreq;
} cl_conn_t;

/* Events the transport reports up (filled in by dispatch.c). */
typedef struct cl_hooks {
  /* A connection's first frame was CLIENT; 0, or <0 to refuse it. */
  int (*client_open)(cl_conn_t *c);
  void (*request)(cl_conn_t *c, const cl_msg_t *m);
  void (*client_closed)(cl_conn_t *c);
  /* A new connection's HELLO: 0, c->in set and *received (for WELCOME),
   * or <0 with why. */
  int (*hello)(cl_conn_t *c, const cl_msg_t *m, uint64_t *received,
               char *why, size_t whysz);
  /* TOKEN or MARKER: 0; 1 stop reading; <0 with why (close it). */
  int (*peer_msg)(cl_conn_t *c, const cl_msg_t *m, char *why, size_t whysz);
  /* count one-token messages, seqs first..: 0 or <0 with why. */
  int (*peer_ones)(cl_conn_t *c, uint64_t first, uint64_t count, char *why,
                   size_t whysz);
  /* A peer connection that carried its channel is gone: it broke the
   * protocol (broken: the channel is lost), or it ended (the sender may
   * reconnect). */
  void (*peer_closed)(cl_conn_t *c, int broken, const char *why);
  /* Outbound channel chan is now in state st (cl_chan_state_t; not UP). */
  void (*out_state)(cl_daemon_t *d, uint32_t chan, cl_chan_state_t st,
                    const char *why);
  /* The receiver of outbound chan said WELCOME / ACK with its count of
   * frames: 0, or <0 with why (close; the channel is lost). */
  int (*out_welcome)(cl_daemon_t *d, uint32_t chan, uint64_t received,
                     char *why, size_t whysz);
  int (*out_ack)(cl_daemon_t *d, uint32_t chan, uint64_t received,
                 char *why, size_t whysz);
} cl_hooks_t;

typedef enum {
  CL_OUT_IDLE,       /* configured, CONNECT not yet asked */
  CL_OUT_CONNECTING, /* resolving, connecting, saying HELLO (until the
                        receiver's WELCOME) or waiting to retry; also
                        reconnecting after the connection ended */
  CL_OUT_UP,
  CL_OUT_FAILED,     /* gave up after CL_CONNECT_WINDOW_MS */
  CL_OUT_LOST        /* was up, then not back within the peer-lost
                        bound (or broke the protocol) */
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
  cl_out_state_t state;
  uv_tcp_t tcp;
  int tcp_open; /* initialised and its close callback not yet run */
  uv_connect_t creq;
  uv_timer_t retry;
  uv_getaddrinfo_t gai;
  int gai_busy;
  struct sockaddr_storage sa;
  int have_sa;
  uint64_t deadline;
  int was_up;      /* connecting again after a break: give up = LOST */
  unsigned backoff_ms;
  int last_err;
  char refusal[CL_TEXT_SIZE]; /* what the receiver said when it refused */
  int refusal_code;           /* and its CL_E code */
  cl_wire_decoder_t *rdec;    /* from the receiver: WELCOME or a refusal,
                                 then ACKs */
  uint64_t config_id;         /* HELLO's, with the session's epoch */
  uint64_t hello_epoch;       /* the epoch the last HELLO was built with */
  msgpack_sbuffer hello;      /* written on every connection, after the
                                 handshake */
  uv_write_t hreq;
  int hs;                     /* handshake: 0 waiting for CHALLENGE, 1 for
                                 AUTH_OK, 2 for WELCOME (HELLO sent) */
  uint8_t nonce_s[CL_AUTH_NONCE], nonce_c[CL_AUTH_NONCE];
  msgpack_sbuffer auth;       /* our AUTH on this connection */
  uv_write_t areq;
  cl_outbuf_t out; /* frames, written once the receiver said WELCOME */
  size_t reserved; /* frames promised room by cl_peer_reserve */
  cl_ring_t jq;    /* of cl_jit_t; bounded by the write cap (markers
                      excepted) */
  uint64_t last_due;
} cl_out_chan_t;

struct cl_daemon {
  uv_loop_t *loop;
  char id[CL_ID_SIZE];
  size_t max_kept, max_active, write_cap, input_cap;
  uint64_t frame_timeout_ms;
  uint64_t peer_timeout_ms, peer_lost_ms;
  uint64_t incarnation; /* this process's, in every HELLO */
  cl_secret_t secret;   /* --secret-file; len 0: none */
  uint64_t shutdown_delay_ms; /* test hook, $CLSNAPD_SHUTDOWN_DELAY_MS */
  int log_level;

  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  uv_prepare_t prepare; /* flushes all output once per loop turn */
  uv_timer_t jitter_timer;
  uv_timer_t stop_timer;
  uv_timer_t sweep; /* closes connections stuck before or inside a frame */
  uv_timer_t tick;  /* the session's clock: ACKs, stalls, lost channels */
  int stopping;
  int exit_code;

  cl_conn_t *conns; /* all accepted connections */
  size_t nconns, max_conns;
  uint64_t refused_at;    /* loop ms of the last "refusing" log line */
  uint64_t refused_since; /* connections refused since that line */

  cl_hooks_t hooks;
  cl_session_t *session;
  cl_fx_list_t fx, logs; /* effects being performed */
  int performing;
  int lockstep;
  uint32_t jitter_ms;
  uint64_t rng;
  cl_out_chan_t *out; /* [nout], the session's outbound index order */
  size_t nout;
  cl_conn_t **in_conn; /* [nin] the connection of each inbound channel */
  size_t nin;
  size_t circ_rr;
  uint64_t jit_next; /* when the jitter timer fires; 0 if idle */
  char *rbuf;        /* fast peer input: one read buffer for all */
  size_t rbuf_chunk; /* bytes read at once into rbuf (after the carry) */
};

/* dispatch.c */
/* Create the session and install the hooks. 0 or CL_ENOMEM. */
int cl_dispatch_init(cl_daemon_t *d);
/* Begin a clean shutdown: stop listening, send what is queued to clients,
 * close every handle. Safe to call more than once. */
void cl_daemon_stop(cl_daemon_t *d, int exit_code);
/* Before the loop sleeps: circulate, then one write per channel/client. */
void cl_dispatch_flush(cl_daemon_t *d);
/* Start the session's clock (cl_session_tick every CL_TICK_MS). */
void cl_dispatch_tick_start(cl_daemon_t *d);
/* After the loop is closed. */
void cl_dispatch_free(cl_daemon_t *d);

/* server.c */
int cl_server_listen(cl_daemon_t *d, const char *host, int port,
                     char *bound, size_t boundsz);
/* Queue one message to a control client (or a peer's WELCOME); closes it
 * past CL_CTRL_OUT_CAP. Returns 0 only if the message is queued for a
 * connection still there; CL_EFULL if it took it past the cap (closed, so
 * it will never get it), CL_ELOST if c is already closing, CL_EINVAL if c
 * has not said what it is yet, or the encoder's CL_E error (nothing
 * queued; c is closed for CL_ENOMEM). */
int cl_conn_send(cl_conn_t *c, const cl_msg_t *m);
/* Log "<why>" naming the connection, close it; a peer connection's channel
 * is lost (reported through hooks.peer_closed). */
void cl_conn_fail(cl_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Close without logging (already logged). */
void cl_conn_close(cl_conn_t *c);
/* "peer N2 (127.0.0.1:4242)", "client clsnap (…)" or the address. */
const char *cl_conn_label(const cl_conn_t *c);
/* Read inbound channel i's connection again (it was paused). */
void cl_server_resume_in(cl_daemon_t *d, uint32_t i);
/* Close inbound channel i's connection; its loss is already known. */
void cl_server_close_in(cl_daemon_t *d, uint32_t i);
/* Queue ACK{received} on inbound channel i's connection, if it has one. */
void cl_server_ack(cl_daemon_t *d, uint32_t i, uint64_t received);
void cl_server_flush(cl_daemon_t *d);
void cl_server_stop(cl_daemon_t *d, int force);
/* Start the timer that closes connections which sent no complete first
 * frame, or stalled inside a frame, for d->frame_timeout_ms. */
void cl_server_sweep_start(cl_daemon_t *d);
/* Text for a libuv or CL error code in log lines ("connection reset"). */
const char *cl_daemon_strerror(int err);

/* peer.c */
/* Set up outbound channels for a CONFIGURE (the session's env.configure).
 * Returns 0 or CL_E*; nothing is kept on failure. */
int cl_peer_setup(cl_daemon_t *d, const cl_configure_t *cfg, size_t nout,
                  const char *const *out_ids);
/* Start connecting outbound channel i (idle or failed) within the CONNECT
 * window; its states go to hooks.out_state. */
void cl_peer_connect(cl_daemon_t *d, uint32_t i);
/* Outbound channel i's connection makes no progress (why): close it and
 * reconnect, as after a reset. */
void cl_peer_break(cl_daemon_t *d, uint32_t i, const char *why);
/* Set TCP_USER_TIMEOUT and keepalive on a connected socket so that a dead
 * path is noticed within about timeout_ms. */
void cl_tcp_timeouts(uv_tcp_t *t, uint64_t timeout_ms);
/* Bytes queued on outbound channel i (buffers + jitter queue). */
size_t cl_peer_queued(const cl_daemon_t *d, uint32_t i);
/* Room for `frames` more cl_peer_emit calls on channel i without
 * allocating. Returns 0 or CL_ENOMEM. */
int cl_peer_reserve(cl_daemon_t *d, uint32_t i, size_t frames);
/* Queue one TOKEN (a = seq, n) or MARKER (a = id) on channel i, after its
 * jitter delay if any; room was reserved. */
void cl_peer_emit(cl_daemon_t *d, uint32_t i, uint8_t kind, uint64_t a,
                  int64_t n);
/* Once per loop turn: circulate, then write every channel's buffer. */
void cl_peer_flush(cl_daemon_t *d);
void cl_peer_stop(cl_daemon_t *d);
void cl_peer_free(cl_daemon_t *d);

#endif
