/* Runs the session for the transport: each event from server.c or peer.c
 * (through d->hooks) becomes one session call, and the effects that call
 * made are performed at once, in order: frames into outbound channels,
 * messages to control clients, connects, resumes, log lines. The session
 * decides; this file only carries out.
 */
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- effects ------------------------------------------------------------ */

/* Perform one effect. */
static void perform_one(cl_daemon_t *d, const cl_fx_t *f) {
  cl_msg_t m;
  switch (f->kind) {
  case CL_FX_FRAME: {
    uint64_t k;
    for (k = 0; k < f->count; k++)
      cl_peer_emit(d, f->chan, f->frame, f->a + (f->frame == CL_MSG_TOKEN
                                                     ? k : 0), f->n);
    break;
  }
  case CL_FX_ACK:
    cl_server_ack(d, f->chan, f->a);
    break;
  case CL_FX_BREAK:
    cl_peer_break(d, f->chan, f->text);
    break;
  case CL_FX_MSG:
    if (cl_conn_send(f->client, f->msg) == 0 && f->has_release)
      cl_session_queued(d->session, f->release);
    break;
  case CL_FX_ERROR:
    cl_fx_error_msg(f, &m);
    cl_conn_send(f->client, &m);
    break;
  case CL_FX_CONNECT:
    cl_peer_connect(d, f->chan);
    break;
  case CL_FX_RESUME:
    cl_server_resume_in(d, f->chan);
    break;
  case CL_FX_CLOSE_IN:
    cl_server_close_in(d, f->chan);
    break;
  case CL_FX_DROP:
    cl_log_warn("%s: %s; closing it", cl_conn_label(f->client), f->text);
    cl_conn_close(f->client);
    break;
  case CL_FX_STOP:
    cl_daemon_stop(d, 0);
    break;
  default:
    break;
  }
}

/* Perform everything the session has asked for, including what performing
 * it made the session ask for in turn (a closed client, a state queued).
 * An event raised while effects are being performed (a client closed by
 * its reply cap) only adds to the session's list: the loop below takes it
 * next, so effects never nest. */
static void perform(cl_daemon_t *d) {
  if (d->performing)
    return;
  d->performing = 1;
  while (cl_session_pending(d->session) > 0) {
    size_t i;
    cl_session_take(d->session, &d->fx, &d->logs);
    for (i = 0; i < d->logs.n; i++)
      cl_log(d->logs.v[i].level, "%s", d->logs.v[i].text);
    for (i = 0; i < d->fx.n; i++)
      perform_one(d, &d->fx.v[i]);
    cl_fx_list_clear(&d->logs);
    cl_fx_list_clear(&d->fx);
  }
  d->performing = 0;
}

/* ---- hooks: the transport's events -------------------------------------- */

static int on_client_open(cl_conn_t *c) {
  c->client = cl_session_client_open(c->d->session, c);
  return c->client != NULL ? 0 : CL_ENOMEM;
}

static void on_request(cl_conn_t *c, const cl_msg_t *m) {
  /* Test hook ($CLSNAPD_SHUTDOWN_DELAY_MS): a daemon slow to take its
   * SHUTDOWN, alive all the while (failure.sh slow-reply). */
  if (m->type == CL_MSG_SHUTDOWN && c->d->shutdown_delay_ms > 0)
    uv_sleep((unsigned int)c->d->shutdown_delay_ms);
  cl_session_request(c->d->session, c->client, m);
  perform(c->d);
}

static void on_client_closed(cl_conn_t *c) {
  cl_session_client_close(c->d->session, c->client);
  c->client = NULL;
  perform(c->d);
}

static int on_hello(cl_conn_t *c, const cl_msg_t *m, uint64_t *received,
                    char *why, size_t whysz) {
  uint32_t in;
  int r = cl_session_hello(c->d->session, m, &in, received, why, whysz);
  if (r == 0)
    c->in = (int)in;
  perform(c->d);
  return r;
}

static int on_peer_msg(cl_conn_t *c, const cl_msg_t *m, char *why,
                       size_t whysz) {
  int r = cl_session_peer(c->d->session, (uint32_t)c->in, m, why, whysz);
  perform(c->d);
  return r;
}

static int on_peer_ones(cl_conn_t *c, uint64_t first, uint64_t count,
                        char *why, size_t whysz) {
  int r = cl_session_receive_ones(c->d->session, (uint32_t)c->in, first,
                                  count, why, whysz);
  if (cl_session_pending(c->d->session) > 0)
    perform(c->d);
  return r;
}

static void on_peer_closed(cl_conn_t *c, int broken, const char *why) {
  if (broken)
    cl_session_in_lost(c->d->session, (uint32_t)c->in, why);
  else
    cl_session_in_down(c->d->session, (uint32_t)c->in, why);
  perform(c->d);
}

static void on_out_state(cl_daemon_t *d, uint32_t chan, cl_chan_state_t st,
                         const char *why) {
  cl_session_out_state(d->session, chan, st, why);
  perform(d);
}

static int on_out_welcome(cl_daemon_t *d, uint32_t chan, uint64_t received,
                          char *why, size_t whysz) {
  int r = cl_session_out_welcome(d->session, chan, received, why, whysz);
  perform(d);
  return r;
}

static int on_out_ack(cl_daemon_t *d, uint32_t chan, uint64_t received,
                      char *why, size_t whysz) {
  return cl_session_out_ack(d->session, chan, received, why, whysz);
}

/* The session's clock. */
static void tick_cb(uv_timer_t *t) {
  cl_daemon_t *d = t->data;
  cl_session_tick(d->session, uv_now(d->loop));
  perform(d);
}

void cl_dispatch_tick_start(cl_daemon_t *d) {
  /* The session's time starts now, not at 0 (loop time is monotonic
   * time, not time since start). */
  cl_session_tick(d->session, uv_now(d->loop));
  uv_timer_init(d->loop, &d->tick);
  d->tick.data = d;
  uv_timer_start(&d->tick, tick_cb, CL_TICK_MS, CL_TICK_MS);
}

/* ---- the session's environment ------------------------------------------ */

static int env_reserve(void *ctx, uint32_t chan, size_t frames) {
  return cl_peer_reserve(ctx, chan, frames);
}

static size_t env_queued(void *ctx, uint32_t chan) {
  return cl_peer_queued(ctx, chan);
}

static int env_configure(void *ctx, const cl_configure_t *cfg, size_t nout,
                         const char *const *out_ids) {
  return cl_peer_setup(ctx, cfg, nout, out_ids);
}

/* The trace clock: the loop's monotonic clock, microseconds. */
static uint64_t env_clock_us(void *ctx) {
  (void)ctx;
  return uv_hrtime() / 1000;
}

int cl_dispatch_init(cl_daemon_t *d) {
  cl_session_config_t sc;
  memset(&sc, 0, sizeof sc);
  sc.self = d->id;
  sc.max_kept = d->max_kept;
  sc.max_active = d->max_active;
  sc.write_cap = d->write_cap;
  sc.log_level = d->log_level;
  sc.peer_timeout_ms = d->peer_timeout_ms;
  sc.peer_lost_ms = d->peer_lost_ms;
  sc.env.ctx = d;
  sc.env.reserve = env_reserve;
  sc.env.queued = env_queued;
  sc.env.configure = env_configure;
  sc.env.clock_us = env_clock_us;
  d->hooks.client_open = on_client_open;
  d->hooks.request = on_request;
  d->hooks.client_closed = on_client_closed;
  d->hooks.hello = on_hello;
  d->hooks.peer_msg = on_peer_msg;
  d->hooks.peer_ones = on_peer_ones;
  d->hooks.peer_closed = on_peer_closed;
  d->hooks.out_state = on_out_state;
  d->hooks.out_welcome = on_out_welcome;
  d->hooks.out_ack = on_out_ack;
  return cl_session_new(&sc, &d->session);
}

/* ---- once per turn, and shutdown ---------------------------------------- */

void cl_dispatch_flush(cl_daemon_t *d) {
  if (d->stopping)
    return;
  cl_peer_flush(d);
  cl_server_flush(d);
}

/* Grace period over: close whatever is still open. */
static void stop_timer_cb(uv_timer_t *t) {
  cl_daemon_t *d = t->data;
  cl_log_warn("clients did not take their last replies in %d ms; closing",
              CL_STOP_GRACE_MS);
  cl_server_stop(d, 1);
}

/* Close a handle if it is initialised and not closing yet. */
static void close_if_open(uv_handle_t *h) {
  if (h->loop != NULL && !uv_is_closing(h))
    uv_close(h, NULL);
}

/* Stop everything (see daemon.h); the exit code of the first call wins. */
void cl_daemon_stop(cl_daemon_t *d, int exit_code) {
  if (d->stopping)
    return;
  d->stopping = 1;
  d->exit_code = exit_code;
  cl_log_info("shutting down");
  /* Signal watchers stay installed (a second SIGTERM during shutdown must
   * not kill the process with the default action) but no longer keep the
   * loop alive; main closes them at the end. */
  uv_unref((uv_handle_t *)&d->sigterm);
  uv_unref((uv_handle_t *)&d->sigint);
  close_if_open((uv_handle_t *)&d->prepare);
  close_if_open((uv_handle_t *)&d->jitter_timer);
  close_if_open((uv_handle_t *)&d->sweep);
  close_if_open((uv_handle_t *)&d->tick);
  /* The grace timer does not keep the loop alive: once every client has
   * its replies, uv_run returns and main closes the timer. */
  uv_timer_start(&d->stop_timer, stop_timer_cb, CL_STOP_GRACE_MS, 0);
  uv_unref((uv_handle_t *)&d->stop_timer);
  cl_server_stop(d, 0);
  cl_peer_stop(d);
}

void cl_dispatch_free(cl_daemon_t *d) {
  cl_peer_free(d);
  cl_session_free(d->session);
  d->session = NULL;
  cl_fx_list_free(&d->fx);
  cl_fx_list_free(&d->logs);
}
