#include "replay.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* Everything one run needs; request/reply arrays hold one entry per server,
 * the most one call ever carries (one DELIVER per source, one COLLECT per
 * server). */
typedef struct run {
  const cl_topology_t *topo;
  const cl_script_t *script;
  const cl_backend_t *be;
  const cl_replay_opts_t *o;
  cl_replay_result_t *r;
  char *err;
  size_t errsize;
  cl_ledger_t *ledger;
  cl_schedule_t *sched;  /* lockstep only */
  uint64_t req;          /* request ids, for backends that want them */
  cl_delivery_t *deliv;  /* [nservers] */
  uint32_t *servers;     /* [nservers] */
  cl_msg_t *reqs;        /* [nservers] */
  cl_msg_t *replies;     /* [nservers] */
  uint64_t *seen;        /* [nservers] stamp: server already in this call */
  uint64_t stamp;
  size_t event;          /* events issued so far, for progress lines */
  size_t started;        /* snapshots started so far */
  size_t first_open;     /* every snapshot before this one is collected */
  int ledger_partial;    /* a SEND's reply was lost or not taken in full:
                            the ledger may lack what it sent */
} run_t;

static int failf(run_t *x, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int collect_ready(run_t *x);
/* Writes the reason into err and returns rc. */
static int vfailf(run_t *x, int rc, const char *fmt, va_list ap) {
  if (x->err != NULL && x->errsize > 0)
    vsnprintf(x->err, x->errsize, fmt, ap);
  return rc;
}

static int failf(run_t *x, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rc = vfailf(x, rc, fmt, ap);
  va_end(ap);
  return rc;
}

/* Prefixes the backend's message in err with context. */
static int fail_prefix(run_t *x, int rc, const char *prefix) {
  char tmp[512];
  if (x->err == NULL || x->errsize == 0)
    return rc;
  snprintf(tmp, sizeof(tmp), "%s", x->err);
  return failf(x, rc, "%s: %s", prefix, tmp[0] ? tmp : cl_strerror(rc));
}

static const char *sid(const run_t *x, uint32_t i);

/* Name server i as the one at fault, unless one already is. */
static void blame(run_t *x, uint32_t i) {
  if (x->r->fail_server == NULL && i < x->topo->nservers)
    x->r->fail_server = sid(x, i);
}

/* failf about server i (see blame). */
static int fail_on(run_t *x, uint32_t i, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_on(run_t *x, uint32_t i, int rc, const char *fmt, ...) {
  va_list ap;
  blame(x, i);
  va_start(ap, fmt);
  rc = vfailf(x, rc, fmt, ap);
  va_end(ap);
  return rc;
}

static int fail_at(run_t *x, const cl_event_t *ev, int rc, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
/* failf for an event: the message starts with the event's place in the
 * events file, "PATH:LINE: ", as the file readers name theirs; the line is
 * kept, and the event's server is blamed unless one already is. */
static int fail_at(run_t *x, const cl_event_t *ev, int rc, const char *fmt,
                   ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  x->r->fail_line = ev->line;
  if (ev->kind != CL_EV_TICK)
    blame(x, ev->src);
  return failf(x, rc, "%s:%d: %s",
               x->o->events_path ? x->o->events_path : "events", ev->line,
               msg);
}

/* fail_prefix for an event: the backend's message after "PATH:LINE: ". */
static int fail_prefix_at(run_t *x, const cl_event_t *ev, int rc) {
  char tmp[512];
  if (x->err == NULL || x->errsize == 0)
    return rc;
  snprintf(tmp, sizeof(tmp), "%s", x->err);
  return fail_at(x, ev, rc, "%s", tmp[0] ? tmp : cl_strerror(rc));
}

/* An ERROR reply's code as a negative CL_E* value. */
static int reply_code(const cl_msg_t *m) {
  return cl_err_from_wire(m->u.error.code);
}

static const char *sid(const run_t *x, uint32_t i) {
  return x->topo->servers[i].id;
}


/* Tell the caller where the run is, if it asked. Called on every event
 * and lockstep tick: without a callback it costs one test. */
static void progress(run_t *x) {
  cl_replay_progress_t p;
  if (x->o->progress == NULL)
    return;
  p.events = x->event;
  p.nevents = x->script->nevents;
  p.tick = x->sched ? cl_schedule_now(x->sched) : 0;
  p.checked = x->r->checked;
  p.nsnapshots = x->r->nsnapshots;
  p.messages = x->r->messages;
  x->o->progress(x->o->progress_ctx, &p);
}

/* Sends x->reqs[0..n) to x->servers[0..n) in one backend call. Replies land
 * in x->replies (zeroed first); the caller frees them with free_replies. */
static int call(run_t *x, size_t n) {
  int rc;
  memset(x->replies, 0, n * sizeof(*x->replies));
  for (size_t i = 0; i < n; i++)
    x->reqs[i].req = ++x->req;
  rc = x->be->call(x->be->ctx, n, x->servers, x->reqs, x->replies, x->err,
                   x->errsize);
  /* The server may have sent what was asked without the reply coming. */
  if (rc < 0 && n > 0 && x->reqs[0].type == CL_MSG_SEND)
    x->ledger_partial = 1;
  return rc;
}

static void free_replies(run_t *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    cl_msg_free(&x->replies[i]);
}

/* Takes the messages server src reports having sent (an OK reply), in
 * order: tokens into the ledger, everything into the scheduler in lockstep
 * (one delay each, in sending order, as the reference draws them). */
static int take_sent(run_t *x, uint32_t src, const cl_msg_t *ok) {
  for (uint32_t i = 0; i < ok->u.ok.nsent; i++) {
    const cl_sent_t *e = &ok->u.ok.sent[i];
    long dst = cl_topology_find(x->topo, e->dest);
    int rc;
    if (dst < 0)
      return fail_on(x, src, CL_EPROTO,
                     "%s reported a message to unknown server %s", sid(x, src),
                     e->dest);
    if (e->kind == CL_MSG_TOKEN) {
      if (e->value < 1 || e->value > (uint64_t)INT64_MAX)
        return fail_on(x, src, CL_EPROTO,
                       "channel %s->%s: %s reported a token "
                       "message of %llu tokens",
                       sid(x, src), e->dest, sid(x, src),
                       (unsigned long long)e->value);
      rc = cl_ledger_add(x->ledger, src, (uint32_t)dst, e->seq,
                         (int64_t)e->value);
      if (rc == CL_ENOPEER)
        return fail_on(x, src, CL_EPROTO,
                       "channel %s->%s: %s reported sending on "
                       "a channel the topology does not have",
                       sid(x, src), e->dest, sid(x, src));
      if (rc == CL_ESEQ)
        return fail_on(x, src, CL_EPROTO,
                       "channel %s->%s: %s reported token seq "
                       "%llu out of order",
                       sid(x, src), e->dest, sid(x, src),
                       (unsigned long long)e->seq);
      if (rc < 0)
        return fail_on(x, src, rc,
                       "channel %s->%s: cannot record token seq %llu: %s",
                       sid(x, src), e->dest, (unsigned long long)e->seq,
                       cl_strerror(rc));
    } else if (e->kind != CL_MSG_MARKER) {
      return fail_on(x, src, CL_EPROTO,
                     "channel %s->%s: %s reported a message of unknown kind %u",
                     sid(x, src), e->dest, sid(x, src), (unsigned)e->kind);
    }
    x->r->messages++;
    if (x->sched != NULL) {
      cl_schedule_msg_t m = {.kind = e->kind, .value = e->value, .seq = e->seq};
      rc = cl_schedule_sent(x->sched, src, (uint32_t)dst, &m);
      if (rc == CL_ENOENT)
        return failf(x, rc, "delay file ran out after %llu delays",
                     (unsigned long long)cl_delays_used(x->o->delays));
      if (rc == CL_ENOPEER)
        return fail_on(x, src, CL_EPROTO,
                       "channel %s->%s: %s reported sending on "
                       "a channel the topology does not have",
                       sid(x, src), e->dest, sid(x, src));
      if (rc < 0)
        return failf(x, rc, "channel %s->%s: cannot schedule: %s",
                     sid(x, src), e->dest, cl_strerror(rc));
    }
  }
  return 0;
}

/* Free-running: asks server dst for its STATUS and sets *in_flight to 1
 * if a token message is on its way to it: one the replay saw sent on a
 * channel into dst (the ledger, from the OK replies) that dst has not
 * received yet, whether it waits in the sender's jitter queue, a socket or
 * a hold queue. Every token message of a run is sent by one of the
 * replay's own SENDs, so the ledger is the whole of them. *tokens gets
 * what dst holds. 0 or a CL_E* code with err set. */
static int tokens_towards(run_t *x, const cl_event_t *ev, uint32_t dst,
                          int *in_flight, int64_t *tokens) {
  const cl_msg_t *rep = &x->replies[0];
  int rc;
  memset(&x->reqs[0], 0, sizeof(x->reqs[0]));
  x->reqs[0].type = CL_MSG_STATUS;
  x->servers[0] = dst;
  rc = call(x, 1);
  if (rc < 0) {
    free_replies(x, 1);
    return fail_prefix_at(x, ev, rc);
  }
  if (rep->type != CL_MSG_STATUS_R) {
    rc = fail_at(x, ev, rep->type == CL_MSG_ERROR ? reply_code(rep)
                                                  : CL_EPROTO,
                 "%s answered STATUS with %s%s%s", sid(x, dst),
                 cl_msg_type_name(rep->type),
                 rep->type == CL_MSG_ERROR ? ": " : "",
                 rep->type == CL_MSG_ERROR ? rep->u.error.text : "");
    free_replies(x, 1);
    return rc;
  }
  *in_flight = 0;
  *tokens = rep->u.status.tokens;
  for (uint32_t i = 0; i < rep->u.status.nin && !*in_flight; i++) {
    const cl_in_status_t *in = &rep->u.status.in[i];
    long src = cl_topology_find(x->topo, in->peer);
    int64_t n;
    /* The next message after the last one received was sent. */
    if (src >= 0 && in->received < UINT64_MAX &&
        cl_ledger_get(x->ledger, (uint32_t)src, dst, in->received + 1,
                      &n) == 0)
      *in_flight = 1;
  }
  free_replies(x, 1);
  return 0;
}

/* Free-running: the SEND of event ev was refused for lack of tokens
 * (reason: the server's text), *waited ms after the first try. Tokens
 * still on their way to the sender may cover it, so it is worth another
 * try after a tick, until timeout_ms; with none on their way (and too few
 * held) it can never succeed and fails at once. Returns 0 when the caller
 * should try again, or a CL_E* code with err set. */
static int await_tokens(run_t *x, const cl_event_t *ev, const char *reason,
                        uint64_t *waited) {
  uint64_t step = x->o->tick_ms ? x->o->tick_ms : 1;
  int64_t have = 0;
  int in_flight = 0;
  int rc = tokens_towards(x, ev, ev->src, &in_flight, &have);
  if (rc < 0)
    return rc;
  if (!in_flight && have < ev->n)
    return fail_at(x, ev, CL_ENOTOKENS, "%s refused to send %lld tokens to "
                   "%s: %s (%s has %lld, none on their way to it)",
                   sid(x, ev->src), (long long)ev->n, sid(x, ev->dst),
                   cl_strerror(CL_ENOTOKENS), sid(x, ev->src),
                   (long long)have);
  if (*waited >= x->o->timeout_ms)
    return fail_at(x, ev, CL_ENOTOKENS, "%s (waited %llu ms)", reason,
                   (unsigned long long)*waited);
  rc = x->be->sleep_ms(x->be->ctx, step, x->err, x->errsize);
  *waited += step;
  return rc;
}

/* One event request to one server; an OK reply's sent list is taken. In
 * free-running mode a SEND refused for lack of tokens is tried again every
 * tick while tokens are on their way to its server (await_tokens). */
static int one_request(run_t *x, const cl_event_t *ev, uint32_t server) {
  uint64_t waited = 0;
  cl_msg_t req = x->reqs[0];
  for (;;) {
    cl_msg_t *rep = &x->replies[0];
    char reason[CL_TEXT_SIZE];
    int rc, code;
    x->reqs[0] = req;
    x->servers[0] = server;
    rc = call(x, 1);
    if (rc < 0) {
      free_replies(x, 1);
      return fail_prefix_at(x, ev, rc);
    }
    if (rep->type == CL_MSG_OK) {
      rc = take_sent(x, server, rep);
      if (rc < 0)
        x->ledger_partial = 1;
      free_replies(x, 1);
      return rc < 0 ? fail_prefix_at(x, ev, rc) : 0;
    }
    if (rep->type != CL_MSG_ERROR) {
      int type = rep->type;
      free_replies(x, 1);
      return fail_at(x, ev, CL_EPROTO, "unexpected %s reply from %s",
                     cl_msg_type_name(type), sid(x, server));
    }
    code = reply_code(rep);
    snprintf(reason, sizeof(reason), "%s", rep->u.error.text);
    free_replies(x, 1);
    if (code != CL_ENOTOKENS || ev->kind != CL_EV_SEND || x->o->lockstep)
      return fail_at(x, ev, code, "%s", reason);
    rc = await_tokens(x, ev, reason, &waited);
    if (rc < 0)
      return rc;
  }
}

/* Lockstep: deliveries [from, to) in one backend call, then the replies in
 * delivery order (which is the reference's handling order). */
static int deliver_batch(run_t *x, size_t from, size_t to) {
  size_t n = to - from;
  int rc;
  for (size_t i = 0; i < n; i++) {
    memset(&x->reqs[i], 0, sizeof(x->reqs[i]));
    x->reqs[i].type = CL_MSG_DELIVER;
    memcpy(x->reqs[i].u.deliver.src, sid(x, x->deliv[from + i].src),
           CL_ID_SIZE);
    x->servers[i] = x->deliv[from + i].dst;
  }
  rc = call(x, n);
  if (rc < 0) {
    free_replies(x, n);
    return fail_prefix(x, rc, "delivering");
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    const cl_delivery_t *d = &x->deliv[from + i];
    const cl_msg_t *rep = &x->replies[i];
    const char *a = sid(x, d->src), *b = sid(x, d->dst);
    if (rep->type == CL_MSG_ERROR) {
      rc = fail_on(x, d->dst, reply_code(rep),
                   "channel %s->%s: delivery refused by %s: %s",
                   a, b, b, rep->u.error.text);
    } else if (rep->type != CL_MSG_OK) {
      rc = fail_on(x, d->dst, CL_EPROTO,
                   "channel %s->%s: unexpected %s reply to DELIVER",
                   a, b, cl_msg_type_name(rep->type));
    } else if (rep->u.ok.delivered_kind != d->msg.kind ||
               rep->u.ok.delivered_value != d->msg.value) {
      rc = fail_on(x, d->dst, CL_EPROTO,
                   "channel %s->%s: %s handled %s %llu but the "
                   "schedule delivers %s %llu",
                   a, b, b,
                   rep->u.ok.delivered_kind == CL_MSG_TOKEN    ? "TOKEN"
                   : rep->u.ok.delivered_kind == CL_MSG_MARKER ? "MARKER"
                                                               : "nothing",
                   (unsigned long long)rep->u.ok.delivered_value,
                   d->msg.kind == CL_MSG_TOKEN ? "TOKEN" : "MARKER",
                   (unsigned long long)d->msg.value);
    } else {
      rc = take_sent(x, d->dst, rep);
    }
  }
  free_replies(x, n);
  return rc;
}

/* Lockstep: one tick's n deliveries, as few calls as order allows. A call
 * never carries two DELIVERs to the same server: a daemon parks a DELIVER
 * whose message has not arrived yet per inbound channel, so a later one
 * from another source could overtake it and change what gets recorded. */
static int deliver(run_t *x, size_t n) {
  size_t from = 0;
  x->stamp++;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && x->seen[x->deliv[i].dst] != x->stamp) {
      x->seen[x->deliv[i].dst] = x->stamp;
      continue;
    }
    if (i > from) {
      int rc = deliver_batch(x, from, i);
      if (rc < 0)
        return rc;
    }
    if (i < n) { /* a repeated destination starts the next call */
      x->stamp++;
      x->seen[x->deliv[i].dst] = x->stamp;
    }
    from = i;
  }
  return 0;
}

/* Lockstep: n ticks, skipping quiet stretches in one step. */
static int ticks(run_t *x, uint64_t n) {
  while (n > 0) {
    size_t k;
    n -= cl_schedule_idle(x->sched, n);
    if (n == 0)
      break;
    k = cl_schedule_tick(x->sched, x->deliv);
    n--;
    if (k > 0) {
      int rc = deliver(x, k);
      if (rc < 0)
        return rc;
    }
    progress(x);
  }
  return 0;
}

/* Names the servers that keep snapshot id from completing: of those that
 * did not report it complete, COLLECT without release tells apart
 * CL_ENOENT (never recorded) and CL_EAGAIN (still waiting). */
static int explain_stuck(run_t *x, uint64_t id) {
  size_t n = x->topo->nservers, nask = 0;
  char never[512] = "", waiting[512] = "";
  size_t ln = 0, lw = 0;
  int rc;
  for (size_t i = 0; i < n; i++) {
    if (x->be->reported(x->be->ctx, id, i))
      continue;
    memset(&x->reqs[nask], 0, sizeof(x->reqs[nask]));
    x->reqs[nask].type = CL_MSG_COLLECT;
    x->reqs[nask].u.collect.snapshot_id = id;
    x->servers[nask++] = (uint32_t)i;
  }
  rc = call(x, nask);
  if (rc < 0) {
    free_replies(x, nask);
    return failf(x, CL_ETIMEOUT, "snapshot %llu cannot complete",
                 (unsigned long long)id);
  }
  for (size_t j = 0; j < nask; j++) {
    const cl_msg_t *rep = &x->replies[j];
    int code = rep->type == CL_MSG_ERROR ? reply_code(rep) : 0;
    char *buf = code == CL_ENOENT ? never : waiting;
    size_t *len = code == CL_ENOENT ? &ln : &lw;
    int w;
    if (code == 0 && rep->type == CL_MSG_STATE)
      continue; /* complete here */
    if (*len >= sizeof(never) - 1)
      continue;
    w = snprintf(buf + *len, sizeof(never) - *len, "%s%s", *len ? ", " : "",
                 sid(x, x->servers[j]));
    if (w > 0)
      *len += (size_t)w;
  }
  free_replies(x, nask);
  if (ln > 0 && lw > 0)
    return failf(x, CL_ETIMEOUT, "snapshot %llu cannot complete: %s never "
                 "recorded (unreachable by markers?); %s still waiting for "
                 "markers", (unsigned long long)id, never, waiting);
  if (ln > 0)
    return failf(x, CL_ETIMEOUT, "snapshot %llu cannot complete: %s never "
                 "recorded (unreachable by markers?)", (unsigned long long)id,
                 never);
  return failf(x, CL_ETIMEOUT, "snapshot %llu cannot complete: %s still "
               "waiting for markers", (unsigned long long)id,
               lw ? waiting : "no server");
}

/* Lockstep after the last event: tick until every snapshot has been
 * collected (each is as soon as every server completed it), failing when
 * nothing is left in flight or the cap is hit. */
static int finish_lockstep(run_t *x) {
  uint64_t start = cl_schedule_now(x->sched);
  int rc = collect_ready(x);
  while (rc == 0 && x->first_open < x->r->nsnapshots) {
    if (cl_schedule_in_flight(x->sched) == 0)
      return explain_stuck(x, x->r->ids[x->first_open]);
    if (cl_schedule_now(x->sched) - start >= CL_REPLAY_MAX_TAIL_TICKS) {
      size_t left = x->r->nsnapshots - x->first_open;
      return failf(x, CL_ETIMEOUT, "%zu snapshot%s still incomplete after "
                   "%llu ticks", left, left == 1 ? "" : "s",
                   (unsigned long long)CL_REPLAY_MAX_TAIL_TICKS);
    }
    rc = ticks(x, 1);
    if (rc == 0)
      rc = collect_ready(x);
  }
  return rc;
}

/* Collects snapshot k from every server, checks it and builds its
 * reference form. The states were pushed (WATCH); a server that reported
 * completion without its state (it could not push it) is asked with
 * COLLECT, whose answer then says why, unless in_hand_only: then such a
 * snapshot is given up (CL_EAGAIN, err untouched). */
static int collect(run_t *x, size_t k, int in_hand_only) {
  size_t n = x->topo->nservers, nask = 0;
  uint64_t id = x->r->ids[k];
  cl_local_state_t *states = calloc(n ? n : 1, sizeof(*states));
  cl_msg_t *pushed = calloc(n ? n : 1, sizeof(*pushed));
  int rc = 0;
  if (states == NULL || pushed == NULL) {
    free(states);
    free(pushed);
    return failf(x, CL_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    if (x->be->take_state(x->be->ctx, id, i, &pushed[i])) {
      states[i] = pushed[i].u.state;
      continue;
    }
    memset(&x->reqs[nask], 0, sizeof(x->reqs[nask]));
    x->reqs[nask].type = CL_MSG_COLLECT;
    x->reqs[nask].u.collect.snapshot_id = id;
    x->reqs[nask].u.collect.release = 1;
    x->servers[nask++] = (uint32_t)i;
  }
  if (nask > 0 && in_hand_only) {
    rc = CL_EAGAIN;
    nask = 0;
  } else if (nask > 0 && (rc = call(x, nask)) < 0) {
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "collecting snapshot %llu",
             (unsigned long long)id);
    rc = fail_prefix(x, rc, prefix);
    nask = 0;
  }
  for (size_t j = 0; j < nask && rc == 0; j++) {
    const cl_msg_t *rep = &x->replies[j];
    const char *who = sid(x, x->servers[j]);
    if (rep->type == CL_MSG_ERROR)
      rc = fail_on(x, x->servers[j], reply_code(rep),
                   "collecting snapshot %llu from %s: %s",
                   (unsigned long long)id, who, rep->u.error.text);
    else if (rep->type != CL_MSG_STATE)
      rc = fail_on(x, x->servers[j], CL_EPROTO,
                   "collecting snapshot %llu from %s: unexpected %s reply",
                   (unsigned long long)id, who, cl_msg_type_name(rep->type));
    else
      states[x->servers[j]] = rep->u.state; /* borrowed until free_replies */
  }
  if (rc == 0) {
    cl_verify(x->topo, x->ledger_partial ? NULL : x->ledger, states, n,
              &x->r->verdicts[k]);
    rc = cl_verify_global_snap(k, states, n, &x->r->snaps[k]);
    if (rc < 0)
      rc = failf(x, rc, "snapshot %llu: %s", (unsigned long long)id,
                 rc == CL_ETOOBIG ? "too many recorded messages to list"
                                  : "out of memory");
  }
  if (rc == 0 && x->r->done_us != NULL)
    x->r->done_us[k] = x->o->clock_us();
  if (rc == 0 && x->r->states != NULL) {
    /* The states move into the result; the messages that held them let
     * go of their arrays. */
    x->r->states[k] = states;
    states = NULL;
    for (size_t i = 0; i < n; i++)
      memset(&pushed[i].u.state, 0, sizeof(pushed[i].u.state));
    for (size_t j = 0; j < nask; j++)
      memset(&x->replies[j].u.state, 0, sizeof(x->replies[j].u.state));
  }
  free_replies(x, nask);
  for (size_t i = 0; i < n; i++)
    cl_msg_free(&pushed[i]);
  free(pushed);
  free(states);
  /* A snapshot given up after a failure stays tracked, so that the caller
   * can still see it completed everywhere. */
  if (rc == 0 || !in_hand_only)
    x->be->forget(x->be->ctx, id);
  return rc;
}

/* Ask every server to push the states of snapshots 0..K-1 (WATCH) before
 * any of them starts. */
static int watch_all(run_t *x) {
  size_t n = x->topo->nservers;
  int rc;
  if (x->r->nsnapshots == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    memset(&x->reqs[i], 0, sizeof(x->reqs[i]));
    x->reqs[i].type = CL_MSG_WATCH;
    x->reqs[i].u.watch.first = 0;
    x->reqs[i].u.watch.count = x->r->nsnapshots;
    x->servers[i] = (uint32_t)i;
  }
  rc = call(x, n);
  if (rc < 0) {
    free_replies(x, n);
    return fail_prefix(x, rc, "asking for the snapshots");
  }
  for (size_t i = 0; i < n && rc == 0; i++)
    if (x->replies[i].type != CL_MSG_OK)
      rc = fail_on(
          x, (uint32_t)i,
          x->replies[i].type == CL_MSG_ERROR ? reply_code(&x->replies[i])
                                             : CL_EPROTO,
          "%s refused WATCH: %s", sid(x, (uint32_t)i),
          x->replies[i].type == CL_MSG_ERROR ? x->replies[i].u.error.text
                                             : "unexpected reply");
  free_replies(x, n);
  return rc;
}

/* Checks every started snapshot whose state every server has pushed, so
 * that the coordinator holds only the snapshots still in progress. */
static int collect_ready(run_t *x) {
  for (size_t i = x->first_open; i < x->started; i++) {
    int rc;
    if (x->r->collected[i] ||
        x->be->completed(x->be->ctx, x->r->ids[i]) != x->topo->nservers)
      continue;
    rc = collect(x, i, 0);
    if (rc < 0)
      return rc;
    x->r->collected[i] = 1;
    x->r->checked++;
  }
  while (x->first_open < x->started && x->r->collected[x->first_open])
    x->first_open++;
  return 0;
}

/* A `send` event: SEND at its source. */
static int run_send(run_t *x, const cl_event_t *ev) {
  cl_msg_t *req = &x->reqs[0];
  if (ev->n < 1)
    return fail_at(x, ev, CL_EINVAL, "bad token count");
  req->type = CL_MSG_SEND;
  memcpy(req->u.send.dest, sid(x, ev->dst), CL_ID_SIZE);
  req->u.send.n = ev->n;
  return one_request(x, ev, ev->src);
}

/* A `snapshot` event: snapshot *k (the k-th of the script) at its
 * initiator. */
static int run_snapshot(run_t *x, const cl_event_t *ev, size_t *k) {
  cl_msg_t *req = &x->reqs[0];
  int rc;
  if (*k >= x->r->nsnapshots)
    return fail_at(x, ev, CL_EINVAL, "more snapshots than the script "
                   "counted");
  req->type = CL_MSG_SNAPSHOT;
  req->u.snapshot.has_id = 1;
  req->u.snapshot.snapshot_id = *k;
  x->r->ids[*k] = *k;
  if (x->r->trigger_us != NULL)
    x->r->trigger_us[*k] = x->o->clock_us();
  (*k)++;
  rc = one_request(x, ev, ev->src);
  x->started = *k;
  x->r->started = *k;
  return rc;
}

/* A `tick N` event: N lockstep ticks, or N times tick_ms of real time. */
static int run_tick(run_t *x, const cl_event_t *ev) {
  uint64_t n = (uint64_t)ev->n;
  if (ev->n < 1)
    return fail_at(x, ev, CL_EINVAL, "bad tick count");
  if (x->o->lockstep)
    return ticks(x, n);
  if (x->o->tick_ms && n > UINT64_MAX / x->o->tick_ms)
    return fail_at(x, ev, CL_ERANGE, "tick %llu is too long",
                   (unsigned long long)n);
  return x->be->sleep_ms(x->be->ctx, n * x->o->tick_ms, x->err, x->errsize);
}

/* One event of the script (snapshots so far: *k), then collect what is
 * ready. */
static int run_event(run_t *x, const cl_event_t *ev, size_t *k) {
  int rc;
  memset(&x->reqs[0], 0, sizeof(x->reqs[0]));
  if (ev->src >= x->topo->nservers ||
      (ev->kind == CL_EV_SEND && ev->dst >= x->topo->nservers))
    return fail_at(x, ev, CL_EINVAL, "server out of range");
  switch (ev->kind) {
  case CL_EV_SEND:
    rc = run_send(x, ev);
    break;
  case CL_EV_SNAPSHOT:
    rc = run_snapshot(x, ev, k);
    break;
  case CL_EV_TICK:
    rc = run_tick(x, ev);
    break;
  default:
    return fail_at(x, ev, CL_EINVAL, "unknown event");
  }
  return rc == 0 ? collect_ready(x) : rc;
}

/* Free-running, after the last event: wait for the k snapshots not
 * collected yet (a collected one is forgotten by the backend). */
static int finish_free(run_t *x, size_t k) {
  uint64_t *left = calloc(k, sizeof(*left));
  size_t m = 0;
  int rc;
  if (left == NULL)
    return failf(x, CL_ENOMEM, "out of memory");
  for (size_t i = x->first_open; i < k; i++)
    if (!x->r->collected[i])
      left[m++] = x->r->ids[i];
  rc = x->be->wait_complete(x->be->ctx, left, m, x->o->timeout_ms, x->err,
                            x->errsize);
  free(left);
  return rc < 0 ? fail_prefix(x, rc, "waiting for snapshots") : 0;
}

/* After a failure: check every started snapshot that every server reported
 * complete and whose states are all here, without asking the backend (an
 * interrupted cluster refuses calls), so that one which finished is not
 * lost with the run. The failure's message in err is kept. */
static void salvage(run_t *x) {
  char keep[1024] = "";
  if (x->err != NULL && x->errsize > 0)
    snprintf(keep, sizeof(keep), "%s", x->err);
  for (size_t i = x->first_open; i < x->started; i++) {
    if (x->r->collected[i] ||
        x->be->completed(x->be->ctx, x->r->ids[i]) != x->topo->nservers ||
        collect(x, i, 1) < 0)
      continue;
    x->r->collected[i] = 1;
    x->r->checked++;
  }
  if (x->err != NULL && x->errsize > 0)
    snprintf(x->err, x->errsize, "%s", keep);
}

/* Issues the events in order, then waits for and collects every snapshot. */
static int run_all(run_t *x) {
  size_t k = 0;
  int rc = watch_all(x);
  if (rc < 0)
    return rc;
  for (size_t e = 0; e < x->script->nevents; e++) {
    x->event = e + 1;
    if ((rc = run_event(x, &x->script->events[e], &k)) < 0)
      return rc;
    progress(x);
  }
  if (k != x->r->nsnapshots)
    return failf(x, CL_EINVAL, "the script counted %zu snapshots but has %zu",
                 x->r->nsnapshots, k);
  if (x->o->lockstep)
    rc = finish_lockstep(x);
  else if (k > 0)
    rc = finish_free(x, k);
  if (rc == 0)
    rc = collect_ready(x);
  if (rc == 0)
    progress(x); /* the last word: every snapshot done */
  return rc;
}

void cl_replay_result_free(cl_replay_result_t *r) {
  if (r == NULL)
    return;
  if (r->snaps != NULL)
    for (size_t i = 0; i < r->nsnapshots; i++)
      cl_snap_free(r->snaps[i]);
  free(r->snaps);
  if (r->states != NULL)
    for (size_t i = 0; i < r->nsnapshots; i++) {
      for (size_t j = 0; r->states[i] != NULL && j < r->nservers; j++) {
        free(r->states[i][j].recorded);
        free(r->states[i][j].sent);
        free(r->states[i][j].recv);
      }
      free(r->states[i]);
    }
  free(r->states);
  free(r->trigger_us);
  free(r->done_us);
  free(r->ids);
  free(r->verdicts);
  free(r->collected);
  memset(r, 0, sizeof(*r));
}

/* See replay.h. */
int cl_replay_run(const cl_topology_t *topo, const cl_script_t *script,
                  const cl_backend_t *backend, const cl_replay_opts_t *opts,
                  cl_replay_result_t *r, char *err, size_t errsize) {
  run_t x;
  size_t n, k;
  uint64_t t0 = cl_now_ns();
  int rc;

  memset(r, 0, sizeof(*r));
  memset(&x, 0, sizeof(x));
  x.topo = topo;
  x.script = script;
  x.be = backend;
  x.o = opts;
  x.r = r;
  x.err = err;
  x.errsize = errsize;
  if (err != NULL && errsize > 0)
    err[0] = '\0';
  if (topo == NULL || script == NULL || backend == NULL || opts == NULL ||
      topo->nservers == 0)
    return failf(&x, CL_EINVAL, "replay needs a topology with servers, a "
                 "script, a backend and options");
  if (opts->lockstep && opts->delays == NULL)
    return failf(&x, CL_EINVAL, "lockstep replay needs a delay source");
  n = topo->nservers;
  k = script->nsnapshots;
  r->nsnapshots = k;
  r->ids = calloc(k ? k : 1, sizeof(*r->ids));
  r->snaps = calloc(k ? k : 1, sizeof(*r->snaps));
  r->verdicts = calloc(k ? k : 1, sizeof(*r->verdicts));
  r->nservers = n;
  if (opts->keep_states)
    r->states = calloc(k ? k : 1, sizeof(*r->states));
  if (opts->clock_us != NULL) {
    r->trigger_us = calloc(k ? k : 1, sizeof(*r->trigger_us));
    r->done_us = calloc(k ? k : 1, sizeof(*r->done_us));
  }
  x.deliv = calloc(n, sizeof(*x.deliv));
  x.servers = calloc(n, sizeof(*x.servers));
  x.reqs = calloc(n, sizeof(*x.reqs));
  x.replies = calloc(n, sizeof(*x.replies));
  x.seen = calloc(n, sizeof(*x.seen));
  r->collected = calloc(k ? k : 1, 1);
  x.ledger = cl_ledger_new(topo);
  if (opts->lockstep)
    x.sched = cl_schedule_new(topo, opts->delays);
  if (r->ids == NULL || r->snaps == NULL || r->verdicts == NULL ||
      (opts->keep_states && r->states == NULL) ||
      (opts->clock_us != NULL &&
       (r->trigger_us == NULL || r->done_us == NULL)) || x.deliv == NULL ||
      x.servers == NULL || x.reqs == NULL ||
      x.replies == NULL || x.seen == NULL || r->collected == NULL ||
      x.ledger == NULL ||
      (opts->lockstep && x.sched == NULL)) {
    rc = failf(&x, CL_ENOMEM, "out of memory");
  } else {
    rc = run_all(&x);
    if (rc < 0)
      salvage(&x);
  }
  if (x.sched != NULL)
    r->ticks = cl_schedule_now(x.sched);
  if (opts->lockstep && opts->delays != NULL)
    r->delays_used = cl_delays_used(opts->delays);
  r->seconds = (double)(cl_now_ns() - t0) / 1e9;
  cl_schedule_free(x.sched);
  cl_ledger_free(x.ledger);
  free(x.deliv);
  free(x.servers);
  free(x.reqs);
  free(x.replies);
  free(x.seen);
  return rc;
}
