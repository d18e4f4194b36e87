/* Outbound peer channels: one TCP connection per outbound peer, opened on
 * the session's CONNECT effect with retries, HELLO as its first frame,
 * frames appended to a per-channel buffer and written once per loop turn
 * (double buffered), optionally delayed by a per-message jitter (FIFO
 * kept). State changes go to hooks.out_state. Also circulate mode, the load
 * generator: it asks the session for runs of one-token messages and writes
 * their frames in bulk.
 */
#include "daemon.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_attempt(cl_out_chan_t *ch);

/* 1 if outbound messages wait out a random delay. */
static int jitter_on(const cl_daemon_t *d) {
  return d->jitter_ms > 0 && !d->lockstep;
}

/* Free the channels' buffers (not their handles). */
static void chans_free(cl_out_chan_t *out, size_t n) {
  size_t i;
  for (i = 0; out != NULL && i < n; i++) {
    msgpack_sbuffer_destroy(&out[i].hello);
    msgpack_sbuffer_destroy(&out[i].auth);
    msgpack_sbuffer_destroy(&out[i].out.pend);
    msgpack_sbuffer_destroy(&out[i].out.fly);
    cl_wire_decoder_free(out[i].rdec);
    cl_ring_free(&out[i].jq);
  }
  free(out);
}

/* Encode ch's HELLO into ch->hello, with the session's restore epoch as it
 * is now (a restore changes it between connections). 0 or a CL_E code. */
static int out_hello(cl_out_chan_t *ch) {
  cl_daemon_t *d = ch->d;
  cl_msg_t hello;
  memset(&hello, 0, sizeof hello);
  hello.type = CL_MSG_HELLO;
  memcpy(hello.u.hello.from, d->id, CL_ID_SIZE);
  memcpy(hello.u.hello.to, ch->id, CL_ID_SIZE);
  hello.u.hello.config_id = ch->config_id;
  hello.u.hello.incarnation = d->incarnation;
  hello.u.hello.epoch = d->session != NULL ? cl_session_epoch(d->session) : 0;
  ch->hello_epoch = hello.u.hello.epoch;
  msgpack_sbuffer_clear(&ch->hello);
  return cl_wire_encode(&hello, &ch->hello);
}

/* Channels for a CONFIGURE; see daemon.h. */
int cl_peer_setup(cl_daemon_t *d, const cl_configure_t *cfg, size_t nout,
                  const char *const *out_ids) {
  cl_out_chan_t *out = calloc(nout ? nout : 1, sizeof *out);
  cl_conn_t **in_conn = calloc(cfg->nin ? cfg->nin : 1, sizeof *in_conn);
  size_t i, j;
  int r = CL_ENOMEM;
  if (out == NULL || in_conn == NULL)
    goto fail;
  for (i = 0; i < nout; i++) {
    cl_out_chan_t *ch = &out[i];
    char host[CL_ADDR_SIZE];
    int port;
    ch->d = d;
    ch->index = (uint32_t)i;
    cl_ring_init(&ch->jq, sizeof(cl_jit_t));
    msgpack_sbuffer_init(&ch->hello);
    msgpack_sbuffer_init(&ch->auth);
    msgpack_sbuffer_init(&ch->out.pend);
    msgpack_sbuffer_init(&ch->out.fly);
    snprintf(ch->id, sizeof ch->id, "%s", out_ids[i]);
    for (j = 0; j < cfg->nout; j++)
      if (strcmp(cfg->out[j].id, ch->id) == 0)
        snprintf(ch->addr, sizeof ch->addr, "%s", cfg->out[j].addr);
    /* HELLO goes first on every connection; frames wait for WELCOME. */
    ch->config_id = cfg->config_id;
    if ((r = out_hello(ch)) < 0)
      goto fail;
    r = CL_EINVAL;
    if (cl_addr_split(ch->addr, host, &port) < 0)
      goto fail;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ch->sa) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ch->sa) == 0)
      ch->have_sa = 1;
  }
  /* Nothing below can fail: timers are initialised last so that a failed
   * setup leaves no handle behind. */
  for (i = 0; i < nout; i++) {
    uv_timer_init(d->loop, &out[i].retry);
    out[i].retry.data = &out[i];
  }
  d->out = out;
  d->nout = nout;
  d->in_conn = in_conn;
  d->nin = cfg->nin;
  d->lockstep = cfg->lockstep != 0;
  d->jitter_ms = cfg->jitter_ms;
  d->rng = cfg->seed;
  return 0;
fail:
  chans_free(out, nout);
  free(in_conn);
  return r;
}

/* Bytes queued on outbound channel i: both buffers plus the jitter queue at
 * its worst-case frame size. */
size_t cl_peer_queued(const cl_daemon_t *d, uint32_t i) {
  const cl_out_chan_t *ch = &d->out[i];
  return ch->out.pend.size + ch->out.fly.size + ch->jq.n * CL_FRAME_EST;
}

/* Room for `frames` more emits on channel i, on top of those promised. */
int cl_peer_reserve(cl_daemon_t *d, uint32_t i, size_t frames) {
  cl_out_chan_t *ch = &d->out[i];
  size_t need = ch->reserved + frames;
  int r;
  if (jitter_on(d)) {
    r = cl_ring_reserve(&ch->jq, need);
  } else {
    r = cl_sbuf_reserve(&ch->out.pend, need * CL_FRAME_EST);
  }
  if (r == 0)
    ch->reserved = need;
  return r;
}

/* Append one TOKEN/MARKER frame to channel ch's pending buffer (room
 * reserved). */
static void out_encode(cl_out_chan_t *ch, uint8_t kind, uint64_t a,
                       int64_t n) {
  int r = kind == CL_MSG_TOKEN ? cl_wire_encode_token(&ch->out.pend, a, n)
                               : cl_wire_encode_marker(&ch->out.pend, a);
  if (r < 0)
    cl_log_error("cannot queue %s on channel %s->%s: %s",
                 kind == CL_MSG_TOKEN ? "TOKEN" : "MARKER", ch->d->id,
                 ch->id, cl_strerror(r));
}

/* Jitter timer: move every message whose delay is over into its channel's
 * buffer, then re-arm for the earliest one left. */
static void jitter_cb(uv_timer_t *t) {
  cl_daemon_t *d = t->data;
  uint64_t now = uv_now(d->loop), next = 0;
  size_t i;
  d->jit_next = 0;
  for (i = 0; i < d->nout; i++) {
    cl_out_chan_t *ch = &d->out[i];
    while (ch->jq.n > 0 && ((cl_jit_t *)cl_ring_at(&ch->jq, 0))->due <= now) {
      cl_jit_t *e = cl_ring_at(&ch->jq, 0);
      if (cl_sbuf_reserve(&ch->out.pend, CL_FRAME_EST) < 0)
        break; /* try again on the next tick */
      out_encode(ch, e->kind, e->a, e->n);
      cl_ring_pop(&ch->jq);
    }
    if (ch->jq.n > 0) {
      uint64_t due = ((cl_jit_t *)cl_ring_at(&ch->jq, 0))->due;
      if (due <= now)
        due = now + 1;
      if (next == 0 || due < next)
        next = due;
    }
  }
  if (next != 0 && !d->stopping) {
    d->jit_next = next;
    uv_timer_start(&d->jitter_timer, jitter_cb, next - now, 0);
  }
}

/* Queue one frame on channel i (room reserved); see daemon.h. */
void cl_peer_emit(cl_daemon_t *d, uint32_t i, uint8_t kind, uint64_t a,
                  int64_t n) {
  cl_out_chan_t *ch = &d->out[i];
  if (ch->reserved > 0)
    ch->reserved--;
  if (jitter_on(d)) {
    uint64_t now = uv_now(d->loop);
    uint64_t due = now + cl_rng_next(&d->rng) % ((uint64_t)d->jitter_ms + 1);
    cl_jit_t *e;
    if (due < ch->last_due)
      due = ch->last_due; /* a channel stays FIFO */
    ch->last_due = due;
    if (cl_ring_reserve(&ch->jq, 1) < 0) {
      cl_log_error("out of memory queuing on channel %s->%s", d->id, ch->id);
      return;
    }
    e = cl_ring_push(&ch->jq);
    e->due = due;
    e->kind = kind;
    e->a = a;
    e->n = n;
    if (d->jit_next == 0 || due < d->jit_next) {
      d->jit_next = due;
      uv_timer_start(&d->jitter_timer, jitter_cb, due - now, 0);
    }
    return;
  }
  out_encode(ch, kind, a, n);
}

/* Tell the session (through dispatch) about a state change. */
static void out_report(cl_out_chan_t *ch, const char *why) {
  cl_daemon_t *d = ch->d;
  cl_chan_state_t st = ch->state == CL_OUT_UP       ? CL_CHAN_UP
                       : ch->state == CL_OUT_FAILED ? CL_CHAN_FAILED
                       : ch->state == CL_OUT_LOST   ? CL_CHAN_LOST
                       : ch->state == CL_OUT_IDLE   ? CL_CHAN_IDLE
                                                    : CL_CHAN_CONNECTING;
  if (!d->stopping)
    d->hooks.out_state(d, ch->index, st, why);
}

/* Close callback of an outbound handle that is not retried. */
static void out_closed_cb(uv_handle_t *h) {
  cl_out_chan_t *ch = h->data;
  ch->tcp_open = 0;
}

static void out_retry_close_cb(uv_handle_t *h);

/* Outbound channel ch is lost for good (the receiver broke the protocol,
 * or it was not back within the peer-lost bound): drop its queue (the
 * session forgets what was not confirmed) and report it. */
static void out_lost(cl_out_chan_t *ch, int err, const char *why) {
  if (ch->state == CL_OUT_LOST || ch->state == CL_OUT_FAILED ||
      ch->state == CL_OUT_IDLE)
    return;
  ch->state = CL_OUT_LOST;
  ch->last_err = err;
  uv_timer_stop(&ch->retry);
  if (ch->tcp_open && !uv_is_closing((uv_handle_t *)&ch->tcp))
    uv_close((uv_handle_t *)&ch->tcp, out_closed_cb);
  ch->out.pend.size = 0;
  cl_ring_clear(&ch->jq);
  out_report(ch, why);
}

/* Outbound channel ch's connection ended (reset, closed, a write failed,
 * or no acknowledgement for the peer timeout): drop what is queued (the
 * session keeps every frame not confirmed and resends it after the next
 * WELCOME), report CONNECTING, and reconnect with backoff within the
 * peer-lost bound. */
static void out_down(cl_out_chan_t *ch, int err, const char *why) {
  cl_daemon_t *d = ch->d;
  if (ch->state != CL_OUT_UP || d->stopping)
    return;
  /* Info, not a warning: a cluster shutting down ends connections this
   * way too; a channel that does not come back is a warning (lost). */
  cl_log_info("channel %s->%s (%s): %s; reconnecting", d->id, ch->id,
              ch->addr, why);
  ch->state = CL_OUT_CONNECTING;
  ch->was_up = 1;
  ch->last_err = err;
  ch->refusal[0] = '\0';
  ch->refusal_code = 0;
  ch->deadline = uv_now(d->loop) + d->peer_lost_ms;
  ch->backoff_ms = CL_BACKOFF_FIRST_MS;
  ch->out.pend.size = 0;
  cl_ring_clear(&ch->jq);
  out_report(ch, why);
  /* Its close callback starts the first attempt after a backoff. */
  if (ch->tcp_open && !uv_is_closing((uv_handle_t *)&ch->tcp))
    uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
}

void cl_peer_break(cl_daemon_t *d, uint32_t i, const char *why) {
  cl_out_chan_t *ch;
  if (i >= d->nout)
    return;
  ch = &d->out[i];
  /* Already reconnecting (a restore's BREAK): its attempts get a whole
   * window again; the HELLO of the next one carries the new epoch. */
  if (ch->state == CL_OUT_CONNECTING &&
      ch->deadline < uv_now(d->loop) + d->peer_lost_ms)
    ch->deadline = uv_now(d->loop) + d->peer_lost_ms;
  out_down(ch, UV_ETIMEDOUT, why);
}

/* Backoff over: try again. */
static void out_retry_cb(uv_timer_t *t) { out_attempt(t->data); }

/* Retry after a failed connect attempt with exponential backoff, or give
 * up once the CONNECT window is over. */
static void out_retry_later(cl_out_chan_t *ch) {
  cl_daemon_t *d = ch->d;
  uint64_t now = uv_now(d->loop), delay = ch->backoff_ms;
  char why[CL_TEXT_SIZE + 16];
  if (d->stopping || ch->state != CL_OUT_CONNECTING)
    return;
  /* Past the window, or refused for good: the two do not share a secret
   * (retrying will not change that), the receiver counts the channel
   * lost, or this process is not the sender it knows, or nothing listens
   * at its address any more (its process is gone; a broken path times out
   * instead). */
  if (now >= ch->deadline || ch->refusal_code == CL_EAUTH ||
      (ch->was_up && (ch->refusal_code == CL_ELOST ||
                      ch->refusal_code == CL_EDUP ||
                      ch->last_err == UV_ECONNREFUSED))) {
    if (ch->refusal[0] != '\0')
      snprintf(why, sizeof why, "refused: %s", ch->refusal);
    else
      snprintf(why, sizeof why, "%s", cl_daemon_strerror(ch->last_err));
    if (ch->was_up) {
      char text[sizeof why + 64];
      if (now >= ch->deadline)
        snprintf(text, sizeof text, "not reconnected within %llu ms: %s",
                 (unsigned long long)d->peer_lost_ms, why);
      else
        snprintf(text, sizeof text, "cannot reconnect: %s", why);
      out_lost(ch, ch->last_err, text);
      return;
    }
    ch->state = CL_OUT_FAILED;
    out_report(ch, why);
    return;
  }
  if (delay > ch->deadline - now)
    delay = ch->deadline - now;
  cl_log_debug("connect %s->%s (%s): %s; retrying in %llu ms", d->id, ch->id,
               ch->addr, cl_daemon_strerror(ch->last_err),
               (unsigned long long)delay);
  ch->backoff_ms = ch->backoff_ms * 2 > CL_BACKOFF_MAX_MS
                       ? CL_BACKOFF_MAX_MS
                       : ch->backoff_ms * 2;
  uv_timer_start(&ch->retry, out_retry_cb, delay, 0);
}

/* Close callback after a failed attempt: the handle may be re-initialised
 * only now. */
static void out_retry_close_cb(uv_handle_t *h) {
  cl_out_chan_t *ch = h->data;
  ch->tcp_open = 0;
  out_retry_later(ch);
}

/* Bytes from the receiver go into a small decoder: all it ever sends is
 * WELCOME, or an ERROR saying why it refused the channel. */
static void out_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char sink[256];
  cl_out_chan_t *ch = h->data;
  char *p = NULL;
  size_t avail = 0;
  (void)suggested;
  if (ch->rdec == NULL)
    ch->rdec = cl_wire_decoder_new(4096);
  if (ch->rdec != NULL &&
      cl_wire_decoder_reserve(ch->rdec, 512, &p, &avail) == 0) {
    buf->base = p;
    buf->len = avail;
    return;
  }
  cl_wire_decoder_free(ch->rdec);
  ch->rdec = NULL; /* past its bound: whatever else this is, it is wrong */
  buf->base = sink;
  buf->len = sizeof sink;
}

/* An attempt ended before WELCOME (refused, closed, or bytes that are not
 * a handshake): close the handle; its close callback retries or, past the
 * window, fails the channel with the receiver's reason. */
static void out_attempt_failed(cl_out_chan_t *ch, int err) {
  ch->last_err = err;
  uv_timer_stop(&ch->retry);
  if (ch->tcp_open && !uv_is_closing((uv_handle_t *)&ch->tcp))
    uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
}

/* The receiver took HELLO: the channel is up; the session resends what
 * the receiver does not have, then new frames may go. */
static void out_welcome(cl_out_chan_t *ch, const cl_msg_t *m) {
  cl_daemon_t *d = ch->d;
  char why[CL_TEXT_SIZE];
  if (strcmp(m->u.welcome.from, ch->id) != 0) {
    snprintf(ch->refusal, sizeof ch->refusal, "WELCOME from %s, expected "
             "%s", m->u.welcome.from, ch->id);
    out_attempt_failed(ch, CL_EPROTO);
    return;
  }
  if (d->session != NULL && ch->hello_epoch != cl_session_epoch(d->session)) {
    /* A restore came while this attempt was under way: its HELLO and the
     * count in the WELCOME are of the old epoch. Try again under the new
     * one. */
    snprintf(ch->refusal, sizeof ch->refusal, "WELCOME to a HELLO of epoch "
             "%" PRIu64 ", now at epoch %" PRIu64, ch->hello_epoch,
             cl_session_epoch(d->session));
    out_attempt_failed(ch, CL_EAGAIN);
    return;
  }
  uv_timer_stop(&ch->retry); /* the attempt's deadline */
  ch->state = CL_OUT_UP;
  cl_log_info("channel %s->%s up (%s)", d->id, ch->id, ch->addr);
  if (d->stopping)
    return;
  if (d->hooks.out_welcome(d, ch->index, m->u.welcome.received, why,
                           sizeof why) < 0) {
    cl_log_error("channel %s->%s: %s", d->id, ch->id, why);
    out_lost(ch, CL_EPROTO, why);
  }
}

static void out_hello_cb(uv_write_t *req, int status);

/* Write HELLO (or AUTH first): the buffers live in ch until it is freed. */
static void out_say(cl_out_chan_t *ch, msgpack_sbuffer *sb, uv_write_t *req) {
  uv_buf_t b = uv_buf_init(sb->data, (unsigned)sb->size);
  int r;
  req->data = ch;
  r = uv_write(req, (uv_stream_t *)&ch->tcp, &b, 1, out_hello_cb);
  if (r < 0)
    out_attempt_failed(ch, r);
}

/* The receiver's CHALLENGE, then its AUTH_OK if we had to prove the
 * secret (proto/auth.h); then HELLO. A failure is a refusal like a HELLO
 * refusal, but CL_EAUTH ends the connect window at once (out_retry_later):
 * a secret the two do not share does not become shared by retrying. */
static void out_handshake(cl_out_chan_t *ch, const cl_msg_t *m) {
  cl_daemon_t *d = ch->d;
  cl_msg_t auth;
  int r;
  if (m->type == CL_MSG_CHALLENGE && ch->hs == 0) {
    memcpy(ch->nonce_s, m->u.challenge.nonce, CL_AUTH_NONCE);
    cl_auth_nonce(ch->nonce_c);
    r = cl_auth_answer(&d->secret, m, ch->nonce_c, &auth, ch->refusal,
                       sizeof ch->refusal);
    if (r < 0) {
      ch->refusal_code = CL_EAUTH;
      out_attempt_failed(ch, CL_EAUTH);
      return;
    }
    if (r == 1) {
      ch->auth.size = 0;
      if (cl_wire_encode(&auth, &ch->auth) < 0) {
        out_attempt_failed(ch, CL_ENOMEM);
        return;
      }
      ch->hs = 1;
      out_say(ch, &ch->auth, &ch->areq);
      return;
    }
  } else if (m->type == CL_MSG_AUTH_OK && ch->hs == 1) {
    if (cl_auth_verify(&d->secret, ch->nonce_s, ch->nonce_c, m) < 0) {
      snprintf(ch->refusal, sizeof ch->refusal, "authentication failed: "
               "%s does not know the secret", ch->id);
      ch->refusal_code = CL_EAUTH;
      out_attempt_failed(ch, CL_EAUTH);
      return;
    }
  } else {
    snprintf(ch->refusal, sizeof ch->refusal, "unexpected %s in the "
             "handshake", cl_msg_type_name(m->type));
    out_attempt_failed(ch, CL_EPROTO);
    return;
  }
  ch->hs = 2;
  if (out_hello(ch) < 0) {
    snprintf(ch->refusal, sizeof ch->refusal, "out of memory");
    out_attempt_failed(ch, CL_ENOMEM);
    return;
  }
  out_say(ch, &ch->hello, &ch->hreq);
}

/* A frame from the receiver once the channel is up: only ACKs. */
static void out_reply(cl_out_chan_t *ch, const cl_msg_t *m) {
  cl_daemon_t *d = ch->d;
  char why[CL_TEXT_SIZE];
  if (m->type != CL_MSG_ACK) {
    snprintf(why, sizeof why, "unexpected %s from the receiver",
             cl_msg_type_name(m->type));
    out_lost(ch, CL_EPROTO, why);
    return;
  }
  if (d->hooks.out_ack(d, ch->index, m->u.ack.received, why, sizeof why) <
      0) {
    cl_log_error("channel %s->%s: %s", d->id, ch->id, why);
    out_lost(ch, CL_EPROTO, why);
  }
}

/* Reading an outbound channel: the handshake (WELCOME, or an ERROR saying
 * why the receiver refuses), then ACKs, then its end. */
static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cl_out_chan_t *ch = s->data;
  char why[CL_TEXT_SIZE + CL_ID_SIZE + 16];
  cl_msg_t m;
  int r;
  (void)buf;
  if (nread > 0 && ch->rdec == NULL) {
    /* More than the decoder's bound: whatever this is, it is wrong. */
    if (ch->state == CL_OUT_UP)
      out_lost(ch, CL_EPROTO, "too many bytes from the receiver");
    else
      out_attempt_failed(ch, CL_EPROTO);
    return;
  }
  if (nread > 0) {
    cl_wire_decoder_consumed(ch->rdec, (size_t)nread);
    while (ch->state == CL_OUT_CONNECTING || ch->state == CL_OUT_UP) {
      int was_up = ch->state == CL_OUT_UP;
      memset(&m, 0, sizeof m);
      r = cl_wire_next(ch->rdec, &m);
      if (r == 0)
        return;
      if (r == 1 && was_up) {
        out_reply(ch, &m);
      } else if (r == 1 && (m.type == CL_MSG_CHALLENGE ||
                            m.type == CL_MSG_AUTH_OK)) {
        out_handshake(ch, &m);
      } else if (r == 1 && m.type == CL_MSG_WELCOME && ch->hs == 2) {
        out_welcome(ch, &m);
      } else if (r == 1 && m.type == CL_MSG_ERROR) {
        snprintf(ch->refusal, sizeof ch->refusal, "%s", m.u.error.text);
        ch->refusal_code = cl_err_from_wire(m.u.error.code);
      } else {
        r = -1;
      }
      cl_msg_free(&m);
      if (r < 0) {
        if (was_up) {
          out_lost(ch, CL_EPROTO, "not a clsnapd frame from the receiver");
        } else {
          snprintf(ch->refusal, sizeof ch->refusal,
                   "not a clsnapd handshake");
          out_attempt_failed(ch, CL_EPROTO);
        }
        return;
      }
    }
    return;
  }
  if (nread == 0)
    return;
  if (ch->state == CL_OUT_UP) {
    snprintf(why, sizeof why, "%s", cl_daemon_strerror((int)nread));
    out_down(ch, (int)nread, why);
  } else if (ch->state == CL_OUT_CONNECTING) {
    out_attempt_failed(ch, (int)nread);
  }
}

/* HELLO written (or not). */
static void out_hello_cb(uv_write_t *req, int status) {
  cl_out_chan_t *ch = req->data;
  if (status < 0 && status != UV_ECANCELED &&
      ch->state == CL_OUT_CONNECTING)
    out_attempt_failed(ch, status);
}

/* Connected (or not): say HELLO and wait for WELCOME within what is left
 * of the attempt's deadline. */
static void out_connect_cb(uv_connect_t *req, int status) {
  cl_out_chan_t *ch = req->data;
  cl_daemon_t *d = ch->d;
  int r;
  if (d->stopping || status == UV_ECANCELED)
    return;
  if (status < 0) {
    uv_timer_stop(&ch->retry);
    ch->last_err = status;
    uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
    return;
  }
  uv_tcp_nodelay(&ch->tcp, 1);
  cl_tcp_timeouts(&ch->tcp, d->peer_timeout_ms);
  cl_wire_decoder_free(ch->rdec);
  ch->rdec = NULL;
  /* The receiver speaks first (CHALLENGE); HELLO follows the handshake. */
  ch->hs = 0;
  r = uv_read_start((uv_stream_t *)&ch->tcp, out_alloc_cb, out_read_cb);
  if (r < 0)
    out_attempt_failed(ch, r);
}

/* Name resolution finished for a channel whose address is a host name. */
static void out_gai_cb(uv_getaddrinfo_t *req, int status,
                       struct addrinfo *res) {
  cl_out_chan_t *ch = req->data;
  char host[CL_ADDR_SIZE];
  int port = 0;
  ch->gai_busy = 0;
  if (ch->d->stopping || status == UV_EAI_CANCELED) {
    uv_freeaddrinfo(res);
    return;
  }
  if (status < 0 || res == NULL) {
    uv_freeaddrinfo(res);
    ch->last_err = status < 0 ? status : UV_EAI_NONAME;
    out_retry_later(ch);
    return;
  }
  memcpy(&ch->sa, res->ai_addr, res->ai_addrlen);
  uv_freeaddrinfo(res);
  cl_addr_split(ch->addr, host, &port);
  if (ch->sa.ss_family == AF_INET)
    ((struct sockaddr_in *)&ch->sa)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)&ch->sa)->sin6_port = htons((uint16_t)port);
  ch->have_sa = 1;
  out_attempt(ch);
}

/* The CONNECT window ran out with a connect or handshake still pending
 * (neither accepted nor refused: e.g. SYNs dropped by a full listen
 * backlog, which the kernel would retry for about two minutes, or a
 * receiver that never answers HELLO). Closing the handle cancels the
 * connect (its callback gets UV_ECANCELED); the close callback then finds
 * the window over and fails the channel. */
static void out_connect_timeout_cb(uv_timer_t *t) {
  cl_out_chan_t *ch = t->data;
  if (ch->d->stopping || ch->state != CL_OUT_CONNECTING || !ch->tcp_open ||
      uv_is_closing((uv_handle_t *)&ch->tcp))
    return;
  ch->last_err = UV_ETIMEDOUT;
  uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
}

/* Shortest time a connect attempt is given, even at the end of the window
 * (the last retry starts at the deadline itself). */
#define CL_CONNECT_ATTEMPT_MIN_MS 100

/* One connect attempt (resolving the name first if needed). A started
 * connect is bounded by what is left of the CONNECT window. */
static void out_attempt(cl_out_chan_t *ch) {
  cl_daemon_t *d = ch->d;
  uint64_t now, left;
  int r;
  if (d->stopping)
    return;
  if (!ch->have_sa) {
    char host[CL_ADDR_SIZE];
    int port;
    struct addrinfo hints;
    cl_addr_split(ch->addr, host, &port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ch->gai.data = ch;
    r = uv_getaddrinfo(d->loop, &ch->gai, out_gai_cb, host, NULL, &hints);
    if (r < 0) {
      ch->last_err = r;
      out_retry_later(ch);
      return;
    }
    ch->gai_busy = 1;
    return;
  }
  uv_tcp_init(d->loop, &ch->tcp);
  ch->tcp.data = ch;
  ch->tcp_open = 1;
  ch->creq.data = ch;
  r = uv_tcp_connect(&ch->creq, &ch->tcp, (const struct sockaddr *)&ch->sa,
                     out_connect_cb);
  if (r < 0) {
    ch->last_err = r;
    uv_close((uv_handle_t *)&ch->tcp, out_retry_close_cb);
    return;
  }
  now = uv_now(d->loop);
  left = ch->deadline > now ? ch->deadline - now : 0;
  /* A reconnect tries again every peer timeout: after a cut link the
   * kernel's own SYN retries would wait ever longer (1, 3, 7, 15 s ...). */
  if (ch->was_up && left > d->peer_timeout_ms)
    left = d->peer_timeout_ms;
  if (left < CL_CONNECT_ATTEMPT_MIN_MS)
    left = CL_CONNECT_ATTEMPT_MIN_MS;
  uv_timer_start(&ch->retry, out_connect_timeout_cb, left, 0);
}

/* CONNECT effect: start channel i if it is idle or failed. */
void cl_peer_connect(cl_daemon_t *d, uint32_t i) {
  cl_out_chan_t *ch = &d->out[i];
  /* LOST too: a restore (FREEZE) tries a lost channel again. */
  if (ch->state != CL_OUT_IDLE && ch->state != CL_OUT_FAILED &&
      ch->state != CL_OUT_LOST)
    return;
  ch->state = CL_OUT_CONNECTING;
  ch->deadline = uv_now(d->loop) + CL_CONNECT_WINDOW_MS;
  ch->backoff_ms = CL_BACKOFF_FIRST_MS;
  ch->last_err = 0;
  ch->refusal[0] = '\0';
  ch->refusal_code = 0;
  out_attempt(ch);
}

/* Largest buffer an idle outbound channel keeps: a share of
 * CL_OUT_IDLE_BUDGET, so that a daemon with many channels gives idle memory
 * back (the next busy channel reuses it) and one with few keeps its
 * buffers and allocates nothing per write. */
static size_t out_keep(const cl_daemon_t *d) {
  size_t keep = CL_OUT_IDLE_BUDGET / (d->nout ? d->nout : 1);
  return keep < CL_OUT_KEEP_MIN ? CL_OUT_KEEP_MIN : keep;
}

/* Write callback of an outbound channel: `fly` may be reused. */
static void out_write_cb(uv_write_t *req, int status) {
  cl_out_chan_t *ch = req->data;
  ch->out.writing = 0;
  ch->out.fly.size = 0;
  if (ch->out.fly.alloc > out_keep(ch->d)) {
    msgpack_sbuffer_destroy(&ch->out.fly);
    msgpack_sbuffer_init(&ch->out.fly);
  }
  if (status < 0 && status != UV_ECANCELED)
    out_down(ch, status, cl_daemon_strerror(status));
}

/* Write everything queued on ch since its last write. Most turns the
 * socket takes it all at once; an idle big buffer then goes back to the
 * heap, where the next busy channel reuses it: memory follows the channels
 * in use at once, not the sum of every channel's busiest turn. */
static void out_flush(cl_out_chan_t *ch) {
  int r;
  if (ch->state != CL_OUT_UP || ch->out.writing || ch->out.pend.size == 0)
    return;
  r = cl_outbuf_write(&ch->out, (uv_stream_t *)&ch->tcp, out_write_cb, ch,
                      out_keep(ch->d));
  if (r < 0)
    out_down(ch, r, cl_daemon_strerror(r));
}

/* Circulate k tokens to outbound channel i (up, no jitter), one per TOKEN
 * message: the session moves them, the frames go straight into the
 * pending buffer. Returns the tokens sent. */
static size_t circ_send(cl_daemon_t *d, size_t i, size_t k) {
  cl_out_chan_t *ch = &d->out[i];
  uint64_t first, j;
  /* Room for the frames first: then nothing can fail once tokens moved. */
  if (k == 0 || cl_wire_reserve_ones(&ch->out.pend, k) < 0 ||
      cl_session_send_ones(d->session, (uint32_t)i, k, &first) < 0)
    return 0;
  (void)cl_wire_encode_ones(&ch->out.pend, first, k);
  if (cl_log_enabled(CL_LOG_DEBUG))
    for (j = 0; j < k; j++)
      cl_log(CL_LOG_DEBUG, "send TOKEN seq %llu n 1 to %s",
             (unsigned long long)(first + j), ch->id);
  return k;
}

/* Circulate mode: keep moving held tokens to outbound peers round-robin,
 * one token per message, while their queues are below the low-water mark.
 * Tokens are dealt out in passes: each channel under the mark gets its
 * share of what is held, at most what fills it to the mark. The budget
 * keeps one loop turn short. */
static void circulate(cl_daemon_t *d) {
  size_t budget = CL_CIRC_BUDGET, tried = 0, i = 0, sent;
  /* The write cap bounds circulation too, not only SEND. */
  const size_t mark = d->write_cap < CL_CIRC_LOW_WATER ? d->write_cap
                                                       : CL_CIRC_LOW_WATER;
  if (d->session == NULL || !cl_session_circulating(d->session) ||
      d->nout == 0)
    return;
  if (!jitter_on(d)) {
    do {
      size_t open = 0, k;
      int64_t held = cl_session_tokens(d->session);
      sent = 0;
      for (i = 0; i < d->nout; i++)
        open += d->out[i].state == CL_OUT_UP &&
                cl_peer_queued(d, (uint32_t)i) < mark;
      /* A few tokens go to the next channel or two, not a handful to every
       * channel: each channel written in a turn costs a system call. */
      if ((size_t)held / CL_CIRC_MIN_BATCH < open)
        open = (size_t)held / CL_CIRC_MIN_BATCH ? (size_t)held /
                                                     CL_CIRC_MIN_BATCH
                                               : 1;
      for (tried = 0; tried < d->nout && open > 0 && held > 0 && budget > 0;
           tried++) {
        size_t q, fsz, room;
        i = (d->circ_rr + tried) % d->nout;
        q = cl_peer_queued(d, (uint32_t)i);
        if (d->out[i].state != CL_OUT_UP || q >= mark)
          continue;
        fsz = cl_wire_one_size(cl_session_sent(d->session, i) + 1);
        room = (mark - q + fsz - 1) / fsz;
        k = ((size_t)held + open - 1) / open;
        if (k > room)
          k = room;
        if (k > budget)
          k = budget;
        k = circ_send(d, i, k);
        held -= (int64_t)k;
        budget -= k;
        sent += k;
        open--;
        if (k > 0)
          d->circ_rr = i + 1;
      }
    } while (sent > 0 && budget > 0 && cl_session_tokens(d->session) > 0);
    return;
  }
  /* With jitter each message waits out its own delay: one at a time. */
  while (budget-- > 0 && cl_session_tokens(d->session) > 0) {
    uint64_t seq;
    for (tried = 0; tried < d->nout; tried++) {
      i = (d->circ_rr + tried) % d->nout;
      if (d->out[i].state == CL_OUT_UP &&
          cl_peer_queued(d, (uint32_t)i) < mark)
        break;
    }
    if (tried == d->nout)
      break;
    if (cl_peer_reserve(d, (uint32_t)i, 1) < 0 ||
        cl_session_send_ones(d->session, (uint32_t)i, 1, &seq) < 0)
      break;
    cl_peer_emit(d, (uint32_t)i, CL_MSG_TOKEN, seq, 1);
    d->circ_rr = i + 1;
  }
}

/* Once per loop turn, before the loop sleeps: circulate, then one write
 * per outbound channel. */
void cl_peer_flush(cl_daemon_t *d) {
  size_t i;
  circulate(d);
  for (i = 0; i < d->nout; i++) {
    d->out[i].reserved = 0; /* every promise of this turn was kept */
    out_flush(&d->out[i]);
  }
}

/* Shutdown: close every outbound handle and cancel resolutions. */
void cl_peer_stop(cl_daemon_t *d) {
  size_t i;
  for (i = 0; i < d->nout; i++) {
    cl_out_chan_t *ch = &d->out[i];
    if (ch->gai_busy)
      uv_cancel((uv_req_t *)&ch->gai);
    if (ch->tcp_open && !uv_is_closing((uv_handle_t *)&ch->tcp))
      uv_close((uv_handle_t *)&ch->tcp, out_closed_cb);
    if (!uv_is_closing((uv_handle_t *)&ch->retry))
      uv_close((uv_handle_t *)&ch->retry, NULL);
  }
}

/* After the loop is closed: free the channels. */
void cl_peer_free(cl_daemon_t *d) {
  chans_free(d->out, d->nout);
  free(d->in_conn);
  d->out = NULL;
  d->in_conn = NULL;
  d->nout = d->nin = 0;
  free(d->rbuf);
  d->rbuf = NULL;
}
