/* The listening socket and every accepted connection. The first frame
 * decides what a connection is: HELLO makes it an inbound peer channel (if
 * the session takes it), CLIENT a control connection; anything else is
 * refused. Bytes are read straight into the wire decoder's buffer; on
 * free-running peer channels TOKEN and MARKER frames are parsed in place
 * instead. What a frame means is the session's business: frames go up
 * through d->hooks. A connection is freed only in its close callback, never
 * inside its own callback chain.
 */
#include "daemon.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

static int conn_read_start(cl_conn_t *c);

/* Human text for a libuv or clsnap error code. */
const char *cl_daemon_strerror(int err) {
  if (err >= CL_ENOMEM && err <= CL_ELOST)
    return cl_strerror(err);
  switch (err) {
  case UV_EOF:
    return "connection closed";
  case UV_ECONNRESET:
    return "connection reset";
  case UV_ECONNREFUSED:
    return "connection refused";
  case UV_EPIPE:
    return "broken pipe";
  case UV_ETIMEDOUT:
    return "timed out";
  default:
    return uv_strerror(err);
  }
}

/* Format a socket address as "host:port" ("[v6]:port"). */
static void addr_format(const struct sockaddr *sa, char *out, size_t n) {
  char host[64] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    uv_ip4_name(s4, host, sizeof host);
    port = ntohs(s4->sin_port);
    snprintf(out, n, "%s:%d", host, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(s6, host, sizeof host);
    port = ntohs(s6->sin6_port);
    snprintf(out, n, "[%s]:%d", host, port);
  } else {
    snprintf(out, n, "?");
  }
}

/* A label for log lines. Rotates over a few static buffers so that two
 * labels can appear in one call. */
const char *cl_conn_label(const cl_conn_t *c) {
  static char bufs[4][CL_ID_SIZE + CL_ADDR_SIZE + 32];
  static unsigned k;
  char *b = bufs[k++ % 4];
  size_t n = sizeof bufs[0];
  switch (c->kind) {
  case CL_CONN_PEER:
    snprintf(b, n, "peer %s (%s)", c->name, c->addr);
    break;
  case CL_CONN_CONTROL:
    snprintf(b, n, "client %s (%s)", c->name, c->addr);
    break;
  default:
    snprintf(b, n, "connection from %s", c->addr);
    break;
  }
  return b;
}

/* Release a control connection's output buffers. */
static void outbuf_free(cl_outbuf_t *o) {
  msgpack_sbuffer_destroy(&o->pend);
  msgpack_sbuffer_destroy(&o->fly);
  memset(o, 0, sizeof *o);
}

/* Close callback: the only place a connection is freed. */
static void conn_close_cb(uv_handle_t *h) {
  cl_conn_t *c = h->data;
  cl_daemon_t *d = c->d;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    d->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  d->nconns--;
  cl_wire_decoder_free(c->dec);
  outbuf_free(&c->out);
  free(c);
}

/* Close c. A peer connection that still carries its channel reports why:
 * broken (a protocol error: the channel is lost, logged and NOTICEd) or
 * not (the connection ended: the sender may reconnect). Nothing is
 * reported while the daemon stops. */
static void conn_close_why(cl_conn_t *c, int broken, const char *why) {
  cl_daemon_t *d = c->d;
  if (c->closing)
    return;
  c->closing = 1;
  if (c->kind == CL_CONN_CONTROL && c->client != NULL)
    d->hooks.client_closed(c);
  if (c->kind == CL_CONN_PEER && d->in_conn != NULL &&
      d->in_conn[c->in] == c) {
    d->in_conn[c->in] = NULL;
    if (!d->stopping)
      d->hooks.peer_closed(c, broken, why);
  }
  uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

/* Close without a reason of our own (the caller logged already). */
void cl_conn_close(cl_conn_t *c) { conn_close_why(c, 1, "closed"); }

/* Protocol error: one log line naming the connection and why, then close.
 * For a peer connection the lost-channel line carries the reason. */
void cl_conn_fail(cl_conn_t *c, const char *fmt, ...) {
  char why[512];
  va_list ap;
  if (c->closing)
    return;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (c->kind == CL_CONN_PEER && c->d->in_conn != NULL &&
      c->d->in_conn[c->in] == c) {
    char text[560];
    snprintf(text, sizeof text, "protocol error: %s", why);
    conn_close_why(c, 1, text);
    return;
  }
  cl_log_warn("%s: %s; closing it", cl_conn_label(c), why);
  conn_close_why(c, 1, why);
}

/* Queue one message for a control client. Encoding appends to the pending
 * buffer; it goes out at the end of this loop turn. Only 0 means the
 * message is queued for a client that is still there (COLLECT with release
 * relies on it). */
int cl_conn_send(cl_conn_t *c, const cl_msg_t *m) {
  size_t before;
  int r;
  if (c->closing)
    return CL_ELOST;
  if (c->kind == CL_CONN_NEW)
    return CL_EINVAL;
  before = c->out.pend.size;
  r = cl_wire_encode(m, &c->out.pend);
  if (r < 0) {
    c->out.pend.size = before; /* drop a partial frame */
    cl_log_error("%s: cannot encode %s: %s", cl_conn_label(c),
                 cl_msg_type_name(m->type), cl_strerror(r));
    if (r == CL_ENOMEM)
      cl_conn_close(c);
    return r;
  }
  if (c->out.pend.size + c->out.fly.size > CL_CTRL_OUT_CAP) {
    cl_log_warn("%s: over %zu bytes of replies queued (client not reading); "
                "closing it",
                cl_conn_label(c), (size_t)CL_CTRL_OUT_CAP);
    cl_conn_close(c);
    return CL_EFULL;
  }
  return 0;
}

/* Hand the pending buffer to one uv_write; false if nothing was started. */
static int ctrl_write(cl_conn_t *c);

/* Graceful end of a control connection at shutdown: write what is queued,
 * then shut the write side down and close. */
static void ctrl_stop_step(cl_conn_t *c);

/* Write callback for control output: the bytes in `fly` may now go. */
static void ctrl_write_cb(uv_write_t *req, int status) {
  cl_conn_t *c = req->data;
  c->out.writing = 0;
  c->out.fly.size = 0;
  if (c->out.fly.alloc > CL_CTRL_KEEP) {
    /* Give a burst's memory back instead of keeping the high-water mark. */
    msgpack_sbuffer_destroy(&c->out.fly);
    msgpack_sbuffer_init(&c->out.fly);
  }
  if (status < 0) {
    if (status != UV_ECANCELED && !c->closing) {
      cl_log_warn("%s: write failed: %s; closing it", cl_conn_label(c),
                  cl_daemon_strerror(status));
      conn_close_why(c, 0, cl_daemon_strerror(status));
    }
    return;
  }
  if (c->stopping)
    ctrl_stop_step(c);
}

/* See daemon.h. */
int cl_outbuf_write(cl_outbuf_t *o, uv_stream_t *s, uv_write_cb cb,
                    void *data, size_t keep) {
  msgpack_sbuffer t;
  uv_buf_t b;
  int r = uv_try_write(
      s, &(uv_buf_t){.base = o->pend.data, .len = o->pend.size}, 1);
  if (r == (int)o->pend.size) {
    o->pend.size = 0;
    if (o->pend.alloc > keep) {
      msgpack_sbuffer_destroy(&o->pend);
      msgpack_sbuffer_init(&o->pend);
    }
    return 0;
  }
  if (r < 0 && r != UV_EAGAIN) {
    o->pend.size = 0;
    return r;
  }
  if (r < 0)
    r = 0;
  t = o->fly;
  o->fly = o->pend;
  o->pend = t;
  o->pend.size = 0;
  b = uv_buf_init(o->fly.data + r, (unsigned)(o->fly.size - (size_t)r));
  o->wreq.data = data;
  r = uv_write(&o->wreq, s, &b, 1, cb);
  if (r < 0) {
    o->fly.size = 0;
    return r;
  }
  o->writing = 1;
  return 1;
}

/* Write what is pending on control connection c; 1 if a write was
 * started. A failed write closes c. */
static int ctrl_write(cl_conn_t *c) {
  int r;
  if (c->closing || c->out.writing || c->out.pend.size == 0)
    return 0;
  r = cl_outbuf_write(&c->out, (uv_stream_t *)&c->tcp, ctrl_write_cb, c,
                      CL_CTRL_KEEP);
  if (r < 0) {
    cl_log_warn("%s: write failed: %s; closing it", cl_conn_label(c),
                cl_daemon_strerror(r));
    conn_close_why(c, 0, cl_daemon_strerror(r));
    return 0;
  }
  return r;
}

/* uv_shutdown done: every queued reply has been written. */
static void ctrl_shutdown_cb(uv_shutdown_t *req, int status) {
  cl_conn_t *c = req->data;
  (void)status;
  cl_conn_close(c);
}

/* One step of a graceful close: write what is left, else shut down. */
static void ctrl_stop_step(cl_conn_t *c) {
  int r;
  if (c->closing || c->out.writing)
    return;
  if (ctrl_write(c))
    return;
  if (c->closing)
    return;
  c->sreq.data = c;
  r = uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, ctrl_shutdown_cb);
  if (r < 0)
    cl_conn_close(c);
}

/* Once per loop turn: one uv_write per connection with output (replies
 * to clients; a peer's WELCOME). */
void cl_server_flush(cl_daemon_t *d) {
  cl_conn_t *c, *next;
  for (c = d->conns; c != NULL; c = next) {
    next = c->next;
    if (!c->stopping)
      ctrl_write(c); /* a new connection's handshake frames too */
  }
}

/* Shutdown: stop listening; control clients get their queued replies
 * (unless force), everything else is closed now. */
void cl_server_stop(cl_daemon_t *d, int force) {
  cl_conn_t *c, *next;
  if (!uv_is_closing((uv_handle_t *)&d->listener))
    uv_close((uv_handle_t *)&d->listener, NULL);
  for (c = d->conns; c != NULL; c = next) {
    next = c->next;
    if (c->closing)
      continue;
    if (c->kind == CL_CONN_CONTROL && !force) {
      if (!c->stopping) {
        c->stopping = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        ctrl_stop_step(c);
      }
    } else {
      cl_conn_close(c);
    }
  }
}

/* Escape up to 24 bytes for a log line: printable ASCII as is, the rest as
 * \xNN. */
static void escape_sample(const char *p, size_t n, char *out, size_t outsz) {
  size_t i, o = 0;
  if (outsz == 0)
    return;
  for (i = 0; i < n && i < 24 && o + 5 < outsz; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"')
      out[o++] = (char)ch;
    else
      o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", ch);
  }
  out[o] = '\0';
}

/* Tell a refused peer why, best effort, before closing: the sender logs
 * it, so that "configured from another topology" reaches the operator. */
static void peer_refuse(cl_conn_t *c, int code, const char *why) {
  msgpack_sbuffer sb;
  cl_msg_t m;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_ERROR;
  m.u.error.code = code;
  snprintf(m.u.error.text, sizeof m.u.error.text, "%s", why);
  msgpack_sbuffer_init(&sb);
  if (cl_wire_encode(&m, &sb) == 0)
    (void)uv_try_write((uv_stream_t *)&c->tcp,
                       &(uv_buf_t){.base = sb.data, .len = sb.size}, 1);
  msgpack_sbuffer_destroy(&sb);
  cl_conn_fail(c, "%s", why);
}

/* Queue a handshake frame on a connection that has not said what it is
 * (cl_conn_send takes only those that have); it goes out with this turn's
 * writes. 0 or the encoder's error (c is then closed). */
static int conn_queue(cl_conn_t *c, const cl_msg_t *m) {
  size_t before = c->out.pend.size;
  int r = cl_wire_encode(m, &c->out.pend);
  if (r < 0) {
    c->out.pend.size = before;
    cl_log_error("%s: cannot encode %s: %s", cl_conn_label(c),
                 cl_msg_type_name(m->type), cl_strerror(r));
    cl_conn_close(c);
  }
  return r;
}

/* A new connection: the daemon speaks first, with a fresh nonce and
 * whether the client must prove it knows the secret (proto/auth.h). */
static void conn_challenge(cl_conn_t *c) {
  cl_msg_t m;
  cl_auth_nonce(c->nonce);
  cl_auth_challenge(&m, c->nonce, c->d->secret.len > 0);
  (void)conn_queue(c, &m);
}

/* AUTH on a new connection: the client's proof. Wrong, repeated, or sent
 * to a daemon without a secret: refused (one log line naming the address,
 * an ERROR the client can print, closed; nothing else changes). */
static void conn_auth(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  cl_msg_t ok;
  if (d->secret.len == 0) {
    peer_refuse(c, CL_EAUTH, "authentication failed: this server does not "
                "authenticate (started without --secret-file)");
    return;
  }
  if (c->authed) {
    peer_refuse(c, CL_EAUTH, "authentication failed: a second AUTH");
    return;
  }
  if (cl_auth_check(&d->secret, c->nonce, m, &ok) < 0) {
    peer_refuse(c, CL_EAUTH, "authentication failed: wrong secret");
    return;
  }
  c->authed = 1;
  (void)conn_queue(c, &ok);
}

/* HELLO as a first frame: the connection becomes an inbound channel if the
 * session takes it. */
static void conn_hello(cl_conn_t *c, const cl_msg_t *m) {
  cl_daemon_t *d = c->d;
  char why[CL_TEXT_SIZE];
  cl_conn_t *old;
  cl_msg_t w;
  uint64_t received = 0;
  int r = d->hooks.hello(c, m, &received, why, sizeof why);
  if (r < 0) {
    peer_refuse(c, r, why);
    return;
  }
  c->kind = CL_CONN_PEER;
  memcpy(c->name, m->u.hello.from, sizeof c->name);
  /* A reconnect may find the old connection still open here (its end not
   * seen yet): it goes, unread bytes and all, without a report; the
   * sender resends what it had not delivered. */
  old = d->in_conn[c->in];
  d->in_conn[c->in] = c;
  if (old != NULL && old != c)
    conn_close_why(old, 0, "replaced");
  cl_tcp_timeouts(&c->tcp, d->peer_timeout_ms);
  /* The sender waits for this before it sends anything: from now on its
   * frames are accepted, from frame received + 1 on. */
  memset(&w, 0, sizeof w);
  w.type = CL_MSG_WELCOME;
  memcpy(w.u.welcome.from, d->id, CL_ID_SIZE);
  w.u.welcome.received = received;
  if (cl_conn_send(c, &w) < 0)
    return; /* closed, logged */
  cl_log_info("channel %s->%s up (%s)", c->name, d->id, c->addr);
}

/* A TOKEN or MARKER on peer connection c goes to the session. */
static void conn_peer_msg(cl_conn_t *c, const cl_msg_t *m) {
  char why[CL_TEXT_SIZE];
  int r = c->d->hooks.peer_msg(c, m, why, sizeof why);
  if (r < 0) {
    cl_conn_fail(c, "%s", why);
  } else if (r == 1 && !c->paused) {
    /* Bound memory: the sender's bytes wait in the kernel until DELIVERs
     * drain this channel. */
    c->paused = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
}

/* Route one decoded frame by what the connection is. */
static void conn_dispatch(cl_conn_t *c, const cl_msg_t *m) {
  switch (c->kind) {
  case CL_CONN_NEW:
    if (m->type == CL_MSG_AUTH) {
      conn_auth(c, m);
    } else if (c->d->secret.len > 0 && !c->authed) {
      peer_refuse(c, CL_EAUTH, m->type == CL_MSG_HELLO ||
                                       m->type == CL_MSG_CLIENT
                                   ? "authentication required: this "
                                     "server has a secret; give "
                                     "--secret-file"
                                   : "authentication required: expected "
                                     "AUTH");
    } else if (m->type == CL_MSG_HELLO) {
      conn_hello(c, m);
    } else if (m->type == CL_MSG_CLIENT) {
      c->kind = CL_CONN_CONTROL;
      memcpy(c->name, m->u.client.name, sizeof c->name);
      if (c->d->hooks.client_open(c) < 0) {
        cl_conn_fail(c, "out of memory");
        return;
      }
      cl_log_info("client %s connected from %s", c->name, c->addr);
    } else {
      cl_conn_fail(c, "first frame is %s, expected HELLO or CLIENT",
                   cl_msg_type_name(m->type));
    }
    break;
  case CL_CONN_CONTROL:
    if (m->type >= CL_MSG_FIRST_REQUEST && m->type <= CL_MSG_LAST_REQUEST)
      c->d->hooks.request(c, m);
    else
      cl_conn_fail(c, "unexpected %s on a control connection",
                   cl_msg_type_name(m->type));
    break;
  case CL_CONN_PEER:
    if (m->type == CL_MSG_TOKEN || m->type == CL_MSG_MARKER)
      conn_peer_msg(c, m);
    else
      cl_conn_fail(c, "unexpected %s on channel %s->%s",
                   cl_msg_type_name(m->type), c->name, c->d->id);
    break;
  default:
    break;
  }
}

/* After decoding: note since when c waits for the rest of a frame. A new
 * connection keeps its accept time (the first frame is due from then); a
 * paused one is not read on purpose; a frame that completed restarts the
 * clock for the bytes behind it. */
static void conn_mark_pending(cl_conn_t *c, int progress) {
  if (c->closing || c->kind == CL_CONN_NEW)
    return;
  if (c->paused || cl_wire_decoder_buffered(c->dec) == 0)
    c->since = 0;
  else if (progress || c->since == 0)
    c->since = uv_now(c->d->loop);
}

/* The fast scanner's callbacks (proto/scan.h): what it finds goes to the
 * session like a decoded frame; a non-zero return stops the scan because
 * the connection is closing. */
static int scan_ones(void *ctx, uint64_t first, uint64_t count) {
  cl_conn_t *c = ctx;
  char why[CL_TEXT_SIZE];
  if (c->d->hooks.peer_ones(c, first, count, why, sizeof why) < 0)
    cl_conn_fail(c, "%s", why);
  return c->closing || c->d->stopping;
}

static int scan_msg(void *ctx, const cl_msg_t *m) {
  cl_conn_t *c = ctx;
  conn_peer_msg(c, m);
  return c->closing || c->d->stopping;
}

static const cl_scan_ops_t scan_ops = {scan_ones, scan_msg};

/* Free-running peer channels are parsed in place (proto/scan.h) once the
 * decoder holds nothing, e.g. right after HELLO. One read buffer serves
 * every such connection: a read always completes before the next begins. */
static void conn_try_fast(cl_conn_t *c) {
  cl_daemon_t *d = c->d;
  if (c->parse != CL_PARSE_DECODER || c->kind != CL_CONN_PEER ||
      c->closing || d->lockstep ||
      cl_wire_decoder_buffered(c->dec) != 0)
    return;
  if (d->rbuf == NULL) {
    /* Never more than the input cap, carry included, so that the bytes
     * handed back to the decoder always fit. */
    d->rbuf_chunk = CL_READ_CHUNK;
    if (d->rbuf_chunk > d->input_cap - CL_SCAN_CARRY_MAX)
      d->rbuf_chunk = d->input_cap - CL_SCAN_CARRY_MAX;
    d->rbuf = malloc(d->rbuf_chunk + CL_SCAN_CARRY_MAX);
    if (d->rbuf == NULL)
      return; /* the decoder path still works */
  }
  c->parse = CL_PARSE_FAST;
  memset(&c->scan, 0, sizeof c->scan);
}

static void conn_process(cl_conn_t *c, const char *sample, size_t nsample);

/* Bytes read in place: the scanner handles whole frames and keeps a cut
 * one; a frame it does not take sends the rest to the decoder for good. */
static void conn_fast_read(cl_conn_t *c, size_t nread) {
  cl_daemon_t *d = c->d;
  size_t n = c->scan.ncarry + nread, used;
  int stopped, r;
  used = cl_scan_feed(&c->scan, d->rbuf, n, &scan_ops, c, &stopped);
  if (stopped || c->closing || d->stopping)
    return;
  if (c->scan.mode == CL_SCAN_SLOW) {
    c->parse = CL_PARSE_SLOW;
    r = cl_wire_decoder_feed(c->dec, d->rbuf + used, n - used);
    if (r < 0) {
      cl_conn_fail(c, "cannot buffer input: %s", cl_strerror(r));
      return;
    }
    conn_process(c, d->rbuf + used, n - used);
    return;
  }
  /* The frame timeout sweep: since when a partial frame waits. */
  if (c->scan.ncarry == 0)
    c->since = 0;
  else if (n > c->scan.ncarry || c->since == 0)
    c->since = uv_now(d->loop);
}

/* Decode and dispatch every complete frame buffered for c. `sample` is the
 * last read, quoted in the log if the stream turns out to be malformed. */
static void conn_process(cl_conn_t *c, const char *sample, size_t nsample) {
  cl_daemon_t *d = c->d;
  cl_msg_t m;
  char esc[128];
  int r, progress = 0;
  while (!c->closing && !c->stopping && !d->stopping && !c->paused) {
    memset(&m, 0, sizeof m);
    r = cl_wire_next(c->dec, &m);
    if (r == 0)
      break;
    if (r < 0) {
      if (r == CL_ETOOBIG) {
        cl_conn_fail(c, "frame over the input cap of %zu bytes",
                     d->input_cap);
      } else if (sample != NULL && nsample > 0) {
        escape_sample(sample, nsample, esc, sizeof esc);
        cl_conn_fail(c, "%s (%s); last bytes read begin \"%s\"",
                     cl_strerror(r), cl_err_name(r), esc);
      } else {
        cl_conn_fail(c, "%s (%s)", cl_strerror(r), cl_err_name(r));
      }
      break;
    }
    conn_dispatch(c, &m);
    cl_msg_free(&m);
    progress = 1;
  }
  conn_mark_pending(c, progress);
  conn_try_fast(c);
}

/* Resume inbound channel i's connection, paused by its hold bound. */
void cl_server_resume_in(cl_daemon_t *d, uint32_t i) {
  cl_conn_t *c = d->in_conn != NULL && i < d->nin ? d->in_conn[i] : NULL;
  int r;
  if (c == NULL || c->closing || !c->paused)
    return;
  c->paused = 0;
  conn_process(c, NULL, 0);
  if (c->closing || c->paused)
    return;
  r = conn_read_start(c);
  if (r < 0) {
    cl_log_warn("%s: cannot read: %s", cl_conn_label(c),
                cl_daemon_strerror(r));
    cl_conn_close(c);
  }
}

/* Close inbound channel i's connection: the session already counts the
 * channel lost (and logged why). */
void cl_server_close_in(cl_daemon_t *d, uint32_t i) {
  cl_conn_t *c = d->in_conn != NULL && i < d->nin ? d->in_conn[i] : NULL;
  if (c == NULL)
    return;
  d->in_conn[i] = NULL;
  cl_conn_close(c);
}

/* See daemon.h. Keepalive probes start after a third of the timeout and
 * three unanswered ones end the connection; TCP_USER_TIMEOUT bounds how
 * long written data may stay unacknowledged by the peer's kernel. Best
 * effort: a socket that refuses an option keeps the kernel's default. */
void cl_tcp_timeouts(uv_tcp_t *t, uint64_t timeout_ms) {
  uv_os_fd_t fd;
  unsigned secs = (unsigned)(timeout_ms / 3000);
  unsigned int user = (unsigned int)timeout_ms;
  int intvl, cnt = 3;
  if (secs < 1)
    secs = 1;
  intvl = (int)secs;
  (void)uv_tcp_keepalive(t, 1, secs);
  if (uv_fileno((uv_handle_t *)t, &fd) != 0)
    return;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof user);
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* ACK effect: the count goes out with this turn's writes. */
void cl_server_ack(cl_daemon_t *d, uint32_t i, uint64_t received) {
  cl_conn_t *c = d->in_conn != NULL && i < d->nin ? d->in_conn[i] : NULL;
  cl_msg_t m;
  if (c == NULL || c->closing)
    return;
  memset(&m, 0, sizeof m);
  m.type = CL_MSG_ACK;
  m.u.ack.received = received;
  (void)cl_conn_send(c, &m); /* on failure c is closed and reported */
}

/* Zero-copy read: libuv reads straight into the decoder's buffer. Never
 * offers more room than the input cap leaves. */
static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  cl_conn_t *c = h->data;
  size_t buffered = cl_wire_decoder_buffered(c->dec);
  /* Ask only for a little: the decoder offers all the free space it has
   * anyway, and asking for a full chunk would grow every decoder to twice
   * its first buffer (32 KiB) at the first read, copying it: RSS that a
   * 64-server mesh pays 63 times. */
  size_t want = CL_READ_MIN, avail = 0, room;
  char *p = NULL;
  int r;
  (void)suggested;
  if (c->parse == CL_PARSE_FAST) {
    buf->base = c->d->rbuf + cl_scan_prefix(&c->scan, c->d->rbuf);
    buf->len = c->d->rbuf_chunk;
    return;
  }
  buf->base = NULL;
  buf->len = 0;
  if (buffered >= c->d->input_cap) {
    c->alloc_err = CL_ETOOBIG;
    return;
  }
  room = c->d->input_cap - buffered;
  if (want > room)
    want = room;
  r = cl_wire_decoder_reserve(c->dec, want, &p, &avail);
  if (r < 0) {
    c->alloc_err = r;
    return;
  }
  if (avail > room)
    avail = room;
  buf->base = p;
  buf->len = avail;
}

/* Read callback: feed the decoder, dispatch frames, handle EOF and errors. */
static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cl_conn_t *c = s->data;
  if (c->closing)
    return;
  if (nread > 0 && c->parse == CL_PARSE_FAST) {
    conn_fast_read(c, (size_t)nread);
    return;
  }
  if (nread > 0) {
    cl_wire_decoder_consumed(c->dec, (size_t)nread);
    conn_process(c, buf->base, (size_t)nread);
    return;
  }
  if (nread == 0)
    return;
  if (nread == UV_ENOBUFS && c->alloc_err != 0) {
    if (c->alloc_err == CL_ETOOBIG)
      cl_conn_fail(c, "input over the cap of %zu bytes", c->d->input_cap);
    else
      cl_conn_fail(c, "cannot buffer input: %s",
                   cl_strerror(c->alloc_err));
    return;
  }
  switch (c->kind) {
  case CL_CONN_PEER:
    conn_close_why(c, 0, cl_daemon_strerror((int)nread));
    break;
  case CL_CONN_CONTROL:
    cl_log_info("%s disconnected (%s)", cl_conn_label(c),
                cl_daemon_strerror((int)nread));
    cl_conn_close(c);
    break;
  default:
    /* With a secret, a connection that leaves without proving it is one
     * log line (a client without the secret stops at the CHALLENGE). */
    if (c->d->secret.len > 0 && !c->authed)
      cl_log_warn("%s: closed without authenticating (%s)", cl_conn_label(c),
                  cl_daemon_strerror((int)nread));
    else
      cl_log_debug("%s: %s before its first frame", cl_conn_label(c),
                   cl_daemon_strerror((int)nread));
    cl_conn_close(c);
    break;
  }
}

/* Start reading c. */
static int conn_read_start(cl_conn_t *c) {
  return uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
}

/* The most connections to accept: CL_MAX_CONNS, less when the limit on
 * open files would run out first. Out of descriptors, libuv drops new
 * connections without a word; staying under the limit keeps the refusals
 * logged and leaves descriptors for the cluster's own channels. */
static size_t max_conns(void) {
  struct rlimit rl;
  size_t m = CL_MAX_CONNS;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < (rlim_t)CL_MAX_CONNS + CL_FD_RESERVE)
    m = rl.rlim_cur > CL_FD_RESERVE * 2 ? (size_t)rl.rlim_cur - CL_FD_RESERVE
                                        : (size_t)rl.rlim_cur / 2;
  return m;
}

/* Refuse c for want of room; one log line a second at most, counting
 * those refused in between. */
static void refuse_busy(cl_daemon_t *d, cl_conn_t *c) {
  uint64_t now = uv_now(d->loop);
  d->refused_since++;
  if (d->refused_at == 0 || now - d->refused_at >= 1000) {
    cl_log_warn("refusing %s: already %zu connections (the most this "
                "daemon accepts%s); %llu refused since the last such line",
                c->addr, d->max_conns,
                d->max_conns < CL_MAX_CONNS ? ", set by ulimit -n" : "",
                (unsigned long long)d->refused_since);
    d->refused_at = now;
    d->refused_since = 0;
  }
  cl_conn_close(c);
}

/* New connection on the listener: accept it, bounded by d->max_conns. */
static void on_connection(uv_stream_t *server, int status) {
  cl_daemon_t *d = server->data;
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  cl_conn_t *c;
  int r;

  if (status < 0) {
    uint64_t now = uv_now(d->loop);
    if (d->refused_at == 0 || now - d->refused_at >= 1000) {
      cl_log_warn("accept failed: %s", cl_daemon_strerror(status));
      d->refused_at = now;
    }
    return;
  }
  c = calloc(1, sizeof *c);
  if (c == NULL) {
    cl_log_error("accept: out of memory");
    return;
  }
  c->d = d;
  c->in = -1;
  msgpack_sbuffer_init(&c->out.pend);
  msgpack_sbuffer_init(&c->out.fly);
  snprintf(c->addr, sizeof c->addr, "?");
  uv_tcp_init(d->loop, &c->tcp);
  c->tcp.data = c;
  c->next = d->conns;
  if (d->conns != NULL)
    d->conns->prev = c;
  d->conns = c;
  d->nconns++;
  r = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (r < 0) {
    cl_log_warn("accept failed: %s", cl_daemon_strerror(r));
    cl_conn_close(c);
    return;
  }
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    addr_format((struct sockaddr *)&ss, c->addr, sizeof c->addr);
  if (d->stopping) {
    cl_conn_close(c);
    return;
  }
  if (d->nconns > d->max_conns) {
    refuse_busy(d, c);
    return;
  }
  c->dec = cl_wire_decoder_new(d->input_cap);
  if (c->dec == NULL) {
    cl_log_error("refusing %s: out of memory", c->addr);
    cl_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  c->since = uv_now(d->loop);
  r = conn_read_start(c);
  if (r < 0) {
    cl_log_warn("%s: cannot read: %s", cl_conn_label(c),
                cl_daemon_strerror(r));
    cl_conn_close(c);
    return;
  }
  cl_log_debug("accepted %s", c->addr);
  conn_challenge(c);
}

/* Sweep: close connections that hold a slot without making progress, a
 * slow or silent sender's only cost to everyone else. */
static void sweep_cb(uv_timer_t *t) {
  cl_daemon_t *d = t->data;
  uint64_t now = uv_now(d->loop), limit = d->frame_timeout_ms;
  cl_conn_t *c, *next;
  for (c = d->conns; c != NULL; c = next) {
    next = c->next; /* a failed connection is only freed later, still */
    if (c->closing || c->stopping || c->since == 0 || now - c->since < limit)
      continue;
    if (c->kind == CL_CONN_NEW)
      cl_conn_fail(c, "no complete first frame within %llu ms (%zu bytes "
                   "received)", (unsigned long long)limit,
                   c->dec != NULL ? cl_wire_decoder_buffered(c->dec) : 0);
    else if (c->kind == CL_CONN_PEER && !c->paused) {
      /* A stalled sender: the part of a frame is dropped with the
       * connection; the sender reconnects and resends it. */
      char why[96];
      snprintf(why, sizeof why, "frame incomplete for %llu ms",
               (unsigned long long)limit);
      conn_close_why(c, 0, why);
    } else if (!c->paused)
      cl_conn_fail(c, "frame incomplete for %llu ms (%zu bytes buffered)",
                   (unsigned long long)limit,
                   cl_wire_decoder_buffered(c->dec));
  }
}

/* Check a few times per timeout period, so a stuck connection goes within
 * about 1.25 timeouts. */
void cl_server_sweep_start(cl_daemon_t *d) {
  uint64_t every = d->frame_timeout_ms / 4;
  if (every < 10)
    every = 10;
  if (every > 1000)
    every = 1000;
  uv_timer_init(d->loop, &d->sweep);
  d->sweep.data = d;
  uv_timer_start(&d->sweep, sweep_cb, every, every);
}

/* Bind and listen on host:port; write the bound "host:port" (the actual
 * port when 0 was asked). Returns 0 or a libuv error. */
int cl_server_listen(cl_daemon_t *d, const char *host, int port,
                     char *bound, size_t boundsz) {
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  int r;

  memset(&ss, 0, sizeof ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
    /* A name: resolving it synchronously is fine before the loop runs. */
    uv_getaddrinfo_t gai;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    r = uv_getaddrinfo(d->loop, &gai, NULL, host, NULL, &hints);
    if (r < 0)
      return r;
    memcpy(&ss, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    if (ss.ss_family == AF_INET)
      ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
  }
  d->max_conns = max_conns();
  r = uv_tcp_init(d->loop, &d->listener);
  if (r < 0)
    return r;
  d->listener.data = d;
  r = uv_tcp_bind(&d->listener, (struct sockaddr *)&ss, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&d->listener, CL_LISTEN_BACKLOG,
                  on_connection);
  if (r < 0)
    return r;
  r = uv_tcp_getsockname(&d->listener, (struct sockaddr *)&ss, &len);
  if (r < 0)
    return r;
  if (ss.ss_family == AF_INET6) {
    snprintf(bound, boundsz, "[%s]:%d", host,
             ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  } else {
    snprintf(bound, boundsz, "%s:%d", host,
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
  }
  return 0;
}
