/* The protocol session (see session.h). Layout: effects and replies, then
 * completion and notifications, then requests, then peer events. Each
 * handler checks, then reserves (reply, effect slots, frame room, queue
 * slots), then changes the node, then reports: so no failure leaves a half
 * change behind or drops an entry from a reply.
 */
#include "session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "local_state.h"
#include "trace.h"
#include "ring.h"
#include "util.h"

/* Effect slots every entry point can count on without allocating: an
 * ERROR reply is always possible. */
#define FX_SPARE 64

typedef struct parked {
  struct parked *next;
  cl_session_client_t *client;
  uint64_t req;
  int64_t n; /* SEND: tokens */
} parked_t;

typedef struct plist {
  parked_t *head, *tail;
} plist_t;

/* A peer message held for DELIVER (lockstep). */
typedef struct held {
  uint8_t kind; /* CL_MSG_TOKEN or CL_MSG_MARKER */
  uint64_t a;   /* TOKEN: seq; MARKER: snapshot id */
  int64_t n;    /* TOKEN: tokens */
} held_t;

/* States of an inbound channel: IDLE until its first HELLO, UP while a
 * connection carries it, CONNECTING while it waits for the sender to
 * reconnect (at most peer_lost ms), LOST for good. */
typedef struct in_chan {
  cl_chan_state_t state;
  cl_ring_t held; /* of held_t */
  int paused;
  plist_t delivers; /* parked DELIVERs, FIFO */
  uint64_t frames;      /* frames received, all connections (held too) */
  uint64_t acked;       /* the count the last ACK or WELCOME carried */
  uint64_t incarnation; /* of the first HELLO: a reconnect must repeat it */
  uint64_t down_at;     /* CONNECTING: session time the connection ended */
} in_chan_t;

/* Frames sent and not yet acknowledged, as runs: `count` frames of one
 * kind; TOKEN: seqs a, a+1, ..., n tokens each; MARKER: count 1, a = id. */
typedef struct unacked {
  uint8_t kind;
  uint64_t a;
  int64_t n;
  uint64_t count;
} unacked_t;

/* States of an outbound channel: IDLE, CONNECTING (first connection, or
 * reconnecting once it was up: then frames are kept, not written), UP,
 * FAILED, LOST. */
typedef struct out_chan {
  cl_chan_state_t state;
  char addr[CL_ADDR_SIZE];
  char why[CL_TEXT_SIZE]; /* last error (FAILED, LOST) */
  plist_t sends;          /* SENDs waiting for the connection, FIFO */
  uint64_t frames;        /* frames sent on the channel, numbered 1.. */
  uint64_t acked;         /* frames the receiver confirmed having */
  cl_ring_t unacked;      /* of unacked_t: frames acked+1 .. frames */
  uint64_t progress_at;   /* session time acked last moved (or the first
                             unacknowledged frame was sent, or UP) */
  int was_up;             /* reconnects keep the channel's numbering */
} out_chan_t;

typedef struct range {
  uint64_t first, last;
} range_t;

struct cl_session_client {
  cl_session_client_t *prev, *next;
  void *tag;
  int watching; /* sent WATCH: LOCAL_STATE for its ranges, no COMPLETE */
  size_t nranges;
  range_t ranges[CL_WATCH_MAX];
};

struct cl_session {
  cl_session_env_t env;
  char self[CL_ID_SIZE];
  size_t max_kept, max_active, write_cap;
  int log_level;
  int configured, lockstep, circulate;
  uint32_t rank, nservers;
  uint64_t config_id;
  cl_node_t *node;
  cl_actions_t acts;
  size_t nout, nin;
  out_chan_t *out;
  in_chan_t *in;
  cl_session_client_t *clients;
  size_t nclients;
  plist_t connects;
  size_t nparked;
  uint64_t max_seen; /* the largest snapshot id >= CL_AUTO_ID_BASE seen
                        here (started, issued, met in a marker); 0: none */
  /* Restore (docs/RESTORE.md). */
  uint64_t epoch;       /* channels belong to it; 0 before any restore */
  int frozen;           /* FREEZE to RESUME: nothing sent or handled */
  int paused;           /* restored with paused, RESUME not yet */
  uint64_t discarded;   /* HELLOs of older epochs refused */
  uint64_t restored_id; /* the snapshot of the last RESTORE */
  uint64_t restored_epoch; /* the epoch of the last RESTORE (RESUME and
                              PEEK need it to be the current one) */
  cl_trace_t *trace;        /* TRACE: the events, read by TRACE_READ */
  int tracing;              /* the node appends to it */
  uint64_t now;             /* ms, the last cl_session_tick's time */
  uint64_t peer_timeout_ms; /* no acknowledgement this long: break */
  uint64_t peer_lost_ms;    /* not reconnected this long: lost */
  cl_fx_list_t fx;   /* effects, in order */
  cl_fx_list_t logs; /* LOG effects, apart: a log line never takes a slot
                        a handler reserved for an effect */
  cl_msg_t *reply; /* OK being built: the request's sent messages go here */
};

static const char oom_text[] = "out of memory";

static int handle_peer(cl_session_t *s, uint32_t i, const held_t *h,
                       char *why, size_t whysz);
static void in_lost(cl_session_t *s, uint32_t i, const char *why);

/* ---- effects ------------------------------------------------------------ */

void cl_fx_list_clear(cl_fx_list_t *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    cl_fx_t *f = &l->v[i];
    if (f->msg != NULL) {
      cl_msg_free(f->msg);
      free(f->msg);
    }
    if (!f->text_static)
      free(f->text);
  }
  l->n = 0;
}

void cl_fx_error_msg(const cl_fx_t *f, cl_msg_t *out) {
  memset(out, 0, sizeof *out);
  out->type = CL_MSG_ERROR;
  out->req = f->a;
  out->u.error.code = f->code;
  snprintf(out->u.error.text, sizeof out->u.error.text, "%s",
           f->text != NULL ? f->text : "");
}

void cl_fx_list_free(cl_fx_list_t *l) {
  cl_fx_list_clear(l);
  free(l->v);
  l->v = NULL;
  l->cap = 0;
}

/* Room for k more effects. 0 or CL_ENOMEM. */
static int fx_reserve(cl_session_t *s, size_t k) {
  size_t cap;
  cl_fx_t *v;
  if (s->fx.cap - s->fx.n >= k)
    return 0;
  cap = s->fx.cap ? s->fx.cap : FX_SPARE;
  while (cap - s->fx.n < k)
    cap *= 2;
  v = cl_realloc(s->fx.v, cap * sizeof *v);
  if (v == NULL)
    return CL_ENOMEM;
  s->fx.v = v;
  s->fx.cap = cap;
  return 0;
}

/* Append an effect; a slot must be free (reserved). */
static cl_fx_t *fx_push(cl_session_t *s, uint8_t kind) {
  cl_fx_t *f = &s->fx.v[s->fx.n++];
  memset(f, 0, sizeof *f);
  f->kind = kind;
  return f;
}

/* printf into a fresh string (through the allocation test hook if
 * `hooked`), or NULL when out of memory. */
static char *vfmt(int hooked, const char *fmt, va_list ap) {
  char buf[512], *p;
  int len = vsnprintf(buf, sizeof buf, fmt, ap);
  if (len < 0)
    len = 0;
  if ((size_t)len >= sizeof buf)
    len = (int)sizeof buf - 1;
  p = hooked ? cl_malloc((size_t)len + 1) : malloc((size_t)len + 1);
  if (p != NULL)
    memcpy(p, buf, (size_t)len + 1);
  return p;
}

static void slog(cl_session_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A log line; dropped (it is only a log) when memory is short. Logs do
 * not go through the allocation test hook: they are not state. */
static void slog(cl_session_t *s, int level, const char *fmt, ...) {
  va_list ap;
  char *text;
  cl_fx_t *f;
  if (level < s->log_level)
    return;
  if (s->logs.n == s->logs.cap) {
    size_t cap = s->logs.cap ? s->logs.cap * 2 : 16;
    cl_fx_t *v = realloc(s->logs.v, cap * sizeof *v);
    if (v == NULL)
      return;
    s->logs.v = v;
    s->logs.cap = cap;
  }
  va_start(ap, fmt);
  text = vfmt(0, fmt, ap);
  va_end(ap);
  if (text == NULL)
    return;
  f = &s->logs.v[s->logs.n++];
  memset(f, 0, sizeof *f);
  f->kind = CL_FX_LOG;
  f->level = (uint8_t)level;
  f->text = text;
}

static int debug_on(const cl_session_t *s) {
  return s->log_level <= CL_SLOG_DEBUG;
}

/* An effect carrying a text (ERROR, DROP, CLOSE_IN): the text is static
 * "out of memory" if it cannot be made. Needs a reserved slot. */
static cl_fx_t *fx_text(cl_session_t *s, uint8_t kind, const char *fmt,
                        va_list ap) {
  cl_fx_t *f = fx_push(s, kind);
  f->text = vfmt(1, fmt, ap);
  if (f->text == NULL) {
    f->text = (char *)oom_text;
    f->text_static = 1;
  }
  return f;
}

/* fx_text with the arguments inline; a slot must be free. */
static cl_fx_t *fx_textf(cl_session_t *s, uint8_t kind, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
static cl_fx_t *fx_textf(cl_session_t *s, uint8_t kind, const char *fmt,
                         ...) {
  cl_fx_t *f;
  va_list ap;
  va_start(ap, fmt);
  f = fx_text(s, kind, fmt, ap);
  va_end(ap);
  return f;
}

static void reply_error(cl_session_t *s, cl_session_client_t *c, uint64_t req,
                        int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ERROR{req, code, text} for c. Uses a spare slot when the list cannot
 * grow, so a refusal is always answered. */
static void reply_error(cl_session_t *s, cl_session_client_t *c, uint64_t req,
                        int code, const char *fmt, ...) {
  va_list ap;
  cl_fx_t *f;
  if (fx_reserve(s, 1) < 0)
    return; /* only if FX_SPARE slots were used up by one call */
  va_start(ap, fmt);
  f = fx_text(s, CL_FX_ERROR, fmt, ap);
  va_end(ap);
  f->client = c->tag;
  f->a = req;
  f->code = code;
  if (debug_on(s))
    slog(s, CL_SLOG_DEBUG, "req %" PRIu64 ": ERROR %s: %s", req,
         cl_err_name(code), f->text);
}

/* A heap message of type `type`, or NULL. */
static cl_msg_t *msg_new(uint8_t type, uint64_t req) {
  cl_msg_t *m = cl_calloc(1, sizeof *m);
  if (m != NULL) {
    m->type = type;
    m->req = req;
  }
  return m;
}

static void msg_del(cl_msg_t *m) {
  if (m != NULL) {
    cl_msg_free(m);
    free(m);
  }
}

/* An OK reply with room for max sent entries; NULL when out of memory. */
static cl_msg_t *ok_new(uint64_t req, size_t max) {
  cl_msg_t *m = msg_new(CL_MSG_OK, req);
  if (m != NULL && max > 0 &&
      (m->u.ok.sent = cl_calloc(max, sizeof *m->u.ok.sent)) == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

/* Queue m (taken) for client c; a slot must be free. */
static void fx_msg(cl_session_t *s, cl_session_client_t *c, cl_msg_t *m) {
  cl_fx_t *f = fx_push(s, CL_FX_MSG);
  f->client = c->tag;
  f->msg = m;
}

/* A plain OK for c, or ERROR ENOMEM. */
static void reply_ok(cl_session_t *s, cl_session_client_t *c, uint64_t req) {
  cl_msg_t *m = ok_new(req, 0);
  if (m == NULL || fx_reserve(s, 1) < 0) {
    msg_del(m);
    reply_error(s, c, req, CL_ENOMEM, "out of memory");
    return;
  }
  fx_msg(s, c, m);
}

static void drop_client(cl_session_t *s, cl_session_client_t *c,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Tell the transport to close c (a slot must be free). */
static void drop_client(cl_session_t *s, cl_session_client_t *c,
                        const char *fmt, ...) {
  va_list ap;
  cl_fx_t *f;
  va_start(ap, fmt);
  f = fx_text(s, CL_FX_DROP, fmt, ap);
  va_end(ap);
  f->client = c->tag;
}

/* ---- notifications ------------------------------------------------------ */

/* NOTICE{peer, text} to every client. */
static void notice_all(cl_session_t *s, const char *peer, const char *text) {
  cl_session_client_t *c;
  if (fx_reserve(s, s->nclients) < 0)
    return;
  for (c = s->clients; c != NULL; c = c->next) {
    cl_msg_t *m = msg_new(CL_MSG_NOTICE, 0);
    if (m == NULL) {
      drop_client(s, c, "out of memory queuing a notice");
      continue;
    }
    snprintf(m->u.notice.peer, sizeof m->u.notice.peer, "%s", peer);
    snprintf(m->u.notice.text, sizeof m->u.notice.text, "%.*s",
             (int)sizeof m->u.notice.text - 1, text);
    fx_msg(s, c, m);
  }
}

static int watches(const cl_session_client_t *c, uint64_t id) {
  size_t i;
  for (i = 0; i < c->nranges; i++)
    if (id >= c->ranges[i].first && id <= c->ranges[i].last)
      return 1;
  return 0;
}

/* Snapshot id was pushed to c, or given up: a range of that one id has
 * nothing more to wait for and goes, so that a client that watches one
 * snapshot at a time (a checkpointer) never runs out of ranges. */
static void unwatch_one(cl_session_client_t *c, uint64_t id) {
  size_t i = 0;
  while (i < c->nranges) {
    if (c->ranges[i].first == id && c->ranges[i].last == id)
      c->ranges[i] = c->ranges[--c->nranges];
    else
      i++;
  }
}

/* The completed state of id as a LOCAL_STATE message, or NULL with the
 * reason in *err (CL_ETOOBIG: more runs than a frame may list). */
static cl_msg_t *local_state_msg(cl_session_t *s, uint8_t type, uint64_t req,
                                 uint64_t id, const cl_node_state_t *st,
                                 int *err) {
  cl_msg_t *m;
  if (st->nrecorded > CL_WIRE_MAX_ITEMS) {
    *err = CL_ETOOBIG;
    return NULL;
  }
  m = msg_new(type, req);
  if (m == NULL ||
      (*err = cl_local_state_from_node(s->node, id, st, &m->u.state)) < 0) {
    msg_del(m);
    *err = CL_ENOMEM;
    return NULL;
  }
  return m;
}

/* Push the completed state of id to watcher c: the message holds a copy,
 * and the caller releases the node's once every watcher has its own, so a
 * state that is waited for never counts against --max-kept. If the copy
 * cannot be made, c gets COMPLETE instead and the state stays kept. Needs
 * one slot; 1 if pushed. */
static int push_state(cl_session_t *s, cl_session_client_t *c, uint64_t id) {
  cl_node_state_t st;
  cl_msg_t *m;
  int err = 0;
  if (cl_node_state(s->node, id, &st) < 0 || !st.complete)
    return 0;
  m = local_state_msg(s, CL_MSG_LOCAL_STATE, 0, id, &st, &err);
  if (m != NULL) {
    fx_msg(s, c, m);
    unwatch_one(c, id);
    return 1;
  }
  slog(s, CL_SLOG_ERROR, "cannot push the state of snapshot %" PRIu64
       " (%zu recorded runs): %s; it stays kept for COLLECT", id,
       st.nrecorded, cl_strerror(err));
  return 0;
}

/* COMPLETE{id, self} for c (a slot must be free). */
static void complete_msg(cl_session_t *s, cl_session_client_t *c,
                         uint64_t id) {
  cl_msg_t *m = msg_new(CL_MSG_COMPLETE, 0);
  if (m == NULL) {
    drop_client(s, c, "out of memory queuing COMPLETE %" PRIu64, id);
    return;
  }
  m->u.complete.snapshot_id = id;
  memcpy(m->u.complete.server, s->self, CL_ID_SIZE);
  fx_msg(s, c, m);
}

/* Snapshot id completed here: its state to every client that watches it,
 * COMPLETE to every client that watches nothing (and to a watcher whose
 * state could not be pushed). Slots: one per client, reserved by the
 * caller. */
static void on_complete(cl_session_t *s, uint64_t id) {
  cl_session_client_t *c;
  int pushed = 0, failed = 0;
  slog(s, CL_SLOG_INFO, "snapshot %" PRIu64 " complete", id);
  for (c = s->clients; c != NULL; c = c->next) {
    if (watches(c, id)) {
      if (push_state(s, c, id)) {
        pushed = 1;
      } else {
        failed = 1;
        complete_msg(s, c, id);
      }
    } else if (!c->watching) {
      complete_msg(s, c, id);
    }
  }
  /* Every watcher has its copy: the node's is no longer waited for. A
   * watcher that could not get one may still COLLECT it. */
  if (pushed && !failed)
    (void)cl_node_release(s->node, id);
}

/* The bound on states nobody watches: beyond --max-kept the oldest kept
 * state goes (states pushed to watchers were released already). */
static void enforce_kept(cl_session_t *s) {
  uint64_t oldest;
  while (cl_node_kept(s->node, &oldest, 1) > s->max_kept) {
    (void)cl_node_release(s->node, oldest);
    slog(s, CL_SLOG_WARN, "dropped the kept state of snapshot %" PRIu64
         " (over --max-kept %zu; nobody watches it: WATCH it, or collect "
         "with release=1 to keep up)", oldest, s->max_kept);
  }
}

/* Slots the node's actions of one call may need: its frames, a message
 * per client for a completion, and the request's reply. */
static size_t fx_for_actions(const cl_session_t *s) {
  return s->nout + s->nclients + 2;
}

/* Note a snapshot id seen here, for the automatic-id rule. Ids below
 * CL_AUTO_ID_BASE (a scripted run's 0, 1, 2 ...) do not move it. */
static void seen_id(cl_session_t *s, uint64_t id) {
  if (id >= CL_AUTO_ID_BASE && id > s->max_seen)
    s->max_seen = id;
}

/* ---- frame numbers, acknowledgements, resending ------------------------- */

/* Room for `frames` more frames on outbound i: in the transport (when
 * they are written now) and among the kept runs (one run each at worst).
 * 0 or CL_ENOMEM. */
static int reserve_out(cl_session_t *s, uint32_t i, size_t frames) {
  int r = cl_ring_reserve(&s->out[i].unacked, frames);
  if (r == 0 && s->out[i].state == CL_CHAN_UP)
    r = s->env.reserve(s->env.ctx, i, frames);
  return r;
}

/* Keep `count` frames just sent on outbound i until the receiver has
 * them: TOKEN seqs a.. with n tokens each, or a MARKER (a = id). A token
 * run that continues the last kept one lengthens it. Room was reserved. */
static void keep_frame(cl_session_t *s, uint32_t i, uint8_t kind,
                       uint64_t a, int64_t n, uint64_t count) {
  out_chan_t *o = &s->out[i];
  unacked_t *u;
  if (o->unacked.n == 0)
    o->progress_at = s->now;
  o->frames += count;
  if (kind == CL_MSG_TOKEN && o->unacked.n > 0) {
    u = cl_ring_at(&o->unacked, o->unacked.n - 1);
    if (u->kind == CL_MSG_TOKEN && u->n == n && u->a + u->count == a) {
      u->count += count;
      return;
    }
  }
  u = cl_ring_push(&o->unacked);
  u->kind = kind;
  u->a = a;
  u->n = n;
  u->count = count;
}

/* The receiver has frames 1..received of outbound i: forget them. The
 * caller checked acked <= received <= frames. */
static void forget_acked(cl_session_t *s, uint32_t i, uint64_t received) {
  out_chan_t *o = &s->out[i];
  uint64_t drop = received - o->acked;
  if (drop > 0)
    o->progress_at = s->now;
  o->acked = received;
  while (drop > 0) {
    unacked_t *u = cl_ring_at(&o->unacked, 0);
    if (u->count > drop) {
      u->count -= drop;
      if (u->kind == CL_MSG_TOKEN)
        u->a += drop;
      break;
    }
    drop -= u->count;
    cl_ring_pop(&o->unacked);
  }
}

/* Carry out the node's actions: frames (and the reply's sent list),
 * completions, evictions. Slots and frame room were reserved. */
static void apply_actions(cl_session_t *s) {
  size_t k;
  for (k = 0; k < s->acts.n; k++) {
    const cl_action_t *a = &s->acts.v[k];
    if (a->kind == CL_ACT_SEND) {
      int token = a->msg == CL_MSG_TOKEN;
      if (s->reply != NULL) {
        cl_sent_t *e = &s->reply->u.ok.sent[s->reply->u.ok.nsent++];
        memcpy(e->dest, cl_node_out_id(s->node, a->peer),
               strlen(cl_node_out_id(s->node, a->peer)) + 1);
        e->kind = token ? CL_MSG_TOKEN : CL_MSG_MARKER;
        e->value = token ? (uint64_t)a->n : a->snapshot_id;
        e->seq = token ? a->seq : 0;
      }
      if (s->out[a->peer].state == CL_CHAN_LOST) {
        if (debug_on(s))
          slog(s, CL_SLOG_DEBUG, "dropping %s for lost channel %s->%s",
               token ? "TOKEN" : "MARKER", s->self,
               cl_node_out_id(s->node, a->peer));
        continue;
      }
      keep_frame(s, a->peer, token ? CL_MSG_TOKEN : CL_MSG_MARKER,
                 token ? a->seq : a->snapshot_id, token ? a->n : 0, 1);
      /* Not up (yet, or again): kept, and written once WELCOME says from
       * where. */
      if (s->out[a->peer].state == CL_CHAN_UP) {
        cl_fx_t *f = fx_push(s, CL_FX_FRAME);
        f->chan = a->peer;
        f->frame = token ? CL_MSG_TOKEN : CL_MSG_MARKER;
        f->a = token ? a->seq : a->snapshot_id;
        f->n = token ? a->n : 0;
        f->count = 1;
      }
      if (debug_on(s)) {
        if (token)
          slog(s, CL_SLOG_DEBUG, "send TOKEN seq %" PRIu64 " n %" PRId64
               " to %s", a->seq, a->n, cl_node_out_id(s->node, a->peer));
        else
          slog(s, CL_SLOG_DEBUG, "send MARKER %" PRIu64 " to %s",
               a->snapshot_id, cl_node_out_id(s->node, a->peer));
      }
    } else if (a->kind == CL_ACT_COMPLETE) {
      on_complete(s, a->snapshot_id);
      enforce_kept(s);
    }
  }
  cl_actions_clear(&s->acts);
}

/* Frame room on every outbound channel (a marker goes to all). */
static int reserve_all_out(cl_session_t *s) {
  size_t i;
  int r;
  for (i = 0; i < s->nout; i++)
    if ((r = reserve_out(s, (uint32_t)i, 1)) < 0)
      return r;
  return 0;
}

/* ---- parked requests ---------------------------------------------------- */

/* Append a parked request to l. 0, CL_EFULL (CL_PARKED_MAX) or
 * CL_ENOMEM. */
static int park(cl_session_t *s, plist_t *l, cl_session_client_t *c,
                uint64_t req, int64_t n) {
  parked_t *p;
  if (s->nparked >= CL_PARKED_MAX)
    return CL_EFULL;
  p = cl_calloc(1, sizeof *p);
  if (p == NULL)
    return CL_ENOMEM;
  p->client = c;
  p->req = req;
  p->n = n;
  if (l->tail != NULL)
    l->tail->next = p;
  else
    l->head = p;
  l->tail = p;
  s->nparked++;
  return 0;
}

/* Take the head of l (NULL if empty); the caller frees it. */
static parked_t *unpark(cl_session_t *s, plist_t *l) {
  parked_t *p = l->head;
  if (p == NULL)
    return NULL;
  l->head = p->next;
  if (l->head == NULL)
    l->tail = NULL;
  s->nparked--;
  return p;
}

/* Drop c's requests from l. */
static void forget_in(cl_session_t *s, plist_t *l, cl_session_client_t *c) {
  parked_t **q = &l->head, *last = NULL;
  while (*q != NULL) {
    parked_t *p = *q;
    if (p->client == c) {
      *q = p->next;
      free(p);
      s->nparked--;
    } else {
      last = p;
      q = &p->next;
    }
  }
  l->tail = last;
}

static void plist_free(plist_t *l) {
  while (l->head != NULL) {
    parked_t *p = l->head;
    l->head = p->next;
    free(p);
  }
  l->tail = NULL;
}

/* ---- creation ----------------------------------------------------------- */

int cl_session_new(const cl_session_config_t *cfg, cl_session_t **out) {
  cl_session_t *s;
  *out = NULL;
  if (cfg == NULL || !cl_id_valid(cfg->self) || cfg->env.reserve == NULL ||
      cfg->env.queued == NULL || cfg->env.configure == NULL)
    return CL_EINVAL;
  s = calloc(1, sizeof *s);
  if (s == NULL)
    return CL_ENOMEM;
  s->env = cfg->env;
  memcpy(s->self, cfg->self, strlen(cfg->self) + 1);
  s->max_kept = cfg->max_kept ? cfg->max_kept : CL_SESSION_DEFAULT_KEPT;
  s->max_active = cfg->max_active ? cfg->max_active : CL_NODE_ACTIVE_MAX;
  s->write_cap = cfg->write_cap;
  s->log_level = cfg->log_level;
  s->peer_timeout_ms = cfg->peer_timeout_ms ? cfg->peer_timeout_ms
                                            : CL_DEFAULT_PEER_TIMEOUT_MS;
  s->peer_lost_ms = cfg->peer_lost_ms ? cfg->peer_lost_ms
                                      : CL_DEFAULT_PEER_LOST_MS;
  cl_actions_init(&s->acts);
  if (fx_reserve(s, FX_SPARE) < 0) {
    free(s);
    return CL_ENOMEM;
  }
  *out = s;
  return 0;
}

/* Free the channels' holds and parked requests. */
static void channels_free(cl_session_t *s) {
  size_t i;
  for (i = 0; s->in != NULL && i < s->nin; i++) {
    cl_ring_free(&s->in[i].held);
    plist_free(&s->in[i].delivers);
  }
  for (i = 0; s->out != NULL && i < s->nout; i++) {
    plist_free(&s->out[i].sends);
    cl_ring_free(&s->out[i].unacked);
  }
  free(s->in);
  free(s->out);
  s->in = NULL;
  s->out = NULL;
}

void cl_session_free(cl_session_t *s) {
  if (s == NULL)
    return;
  while (s->clients != NULL)
    cl_session_client_close(s, s->clients);
  plist_free(&s->connects);
  channels_free(s);
  cl_trace_free(s->trace);
  cl_node_free(s->node);
  cl_actions_free(&s->acts);
  cl_fx_list_free(&s->fx);
  cl_fx_list_free(&s->logs);
  free(s);
}

void cl_session_take(cl_session_t *s, cl_fx_list_t *fx, cl_fx_list_t *logs) {
  cl_fx_list_t t = *fx;
  *fx = s->fx;
  s->fx = t;
  cl_fx_list_clear(&s->fx);
  /* Keep the spare slots for the next call (best effort). */
  (void)fx_reserve(s, FX_SPARE);
  t = *logs;
  *logs = s->logs;
  s->logs = t;
  cl_fx_list_clear(&s->logs);
}

size_t cl_session_pending(const cl_session_t *s) {
  return s->fx.n + s->logs.n;
}

/* ---- clients ------------------------------------------------------------ */

cl_session_client_t *cl_session_client_open(cl_session_t *s, void *tag) {
  cl_session_client_t *c = cl_calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->tag = tag;
  c->next = s->clients;
  if (s->clients != NULL)
    s->clients->prev = c;
  s->clients = c;
  s->nclients++;
  return c;
}

void cl_session_client_close(cl_session_t *s, cl_session_client_t *c) {
  size_t i;
  if (c == NULL)
    return;
  forget_in(s, &s->connects, c);
  for (i = 0; s->in != NULL && i < s->nin; i++)
    forget_in(s, &s->in[i].delivers, c);
  for (i = 0; s->out != NULL && i < s->nout; i++)
    forget_in(s, &s->out[i].sends, c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->clients = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  s->nclients--;
  free(c);
}

void cl_session_queued(cl_session_t *s, uint64_t snapshot_id) {
  if (s->node != NULL)
    (void)cl_node_release(s->node, snapshot_id);
}

/* ---- CONFIGURE ---------------------------------------------------------- */

static void do_configure(cl_session_t *s, cl_session_client_t *c,
                         const cl_msg_t *m) {
  const cl_configure_t *cfg = &m->u.configure;
  cl_node_config_t nc;
  const char **outs = NULL, **ins = NULL;
  cl_node_t *node = NULL;
  out_chan_t *och = NULL;
  in_chan_t *ich = NULL;
  cl_msg_t *ok = NULL;
  char host[CL_ADDR_SIZE];
  size_t i, j, nout;
  int port, r;

  if (s->configured) {
    reply_error(s, c, m->req, CL_ESTATE, "%s is already configured",
                s->self);
    return;
  }
  if (strcmp(cfg->self, s->self) != 0) {
    reply_error(s, c, m->req, CL_EINVAL,
                "CONFIGURE is for server %s but this is %s", cfg->self,
                s->self);
    return;
  }
  if (cfg->nservers == 0 || cfg->rank >= cfg->nservers) {
    reply_error(s, c, m->req, CL_EINVAL, "rank %" PRIu32
                " out of range for %" PRIu32 " servers", cfg->rank,
                cfg->nservers);
    return;
  }
  if (cfg->tokens < 0 || cfg->tokens > CL_MSG_TOKENS_MAX) {
    reply_error(s, c, m->req, CL_ERANGE, "token count %" PRId64
                " out of range", cfg->tokens);
    return;
  }
  for (i = 0; i < cfg->nout; i++)
    if (cl_addr_split(cfg->out[i].addr, host, &port) < 0) {
      reply_error(s, c, m->req, CL_EINVAL, "bad address '%s' for peer %s",
                  cfg->out[i].addr, cfg->out[i].id);
      return;
    }
  r = CL_ENOMEM;
  outs = cl_calloc(cfg->nout ? cfg->nout : 1, sizeof *outs);
  ins = cl_calloc(cfg->nin ? cfg->nin : 1, sizeof *ins);
  if (outs == NULL || ins == NULL)
    goto fail;
  for (i = 0; i < cfg->nout; i++)
    outs[i] = cfg->out[i].id;
  for (i = 0; i < cfg->nin; i++)
    ins[i] = cfg->in[i];
  memset(&nc, 0, sizeof nc);
  nc.self = cfg->self;
  nc.tokens = cfg->tokens;
  nc.nout = cfg->nout;
  nc.out = outs;
  nc.nin = cfg->nin;
  nc.in = ins;
  nc.max_active = s->max_active;
  r = cl_node_new(&nc, &node);
  if (r < 0)
    goto fail;
  r = CL_ENOMEM;
  nout = cl_node_nout(node);
  och = cl_calloc(nout ? nout : 1, sizeof *och);
  ich = cl_calloc(cl_node_nin(node) ? cl_node_nin(node) : 1, sizeof *ich);
  ok = ok_new(m->req, 0);
  if (och == NULL || ich == NULL || ok == NULL || fx_reserve(s, 4) < 0)
    goto fail;
  for (i = 0; i < cl_node_nin(node); i++)
    cl_ring_init(&ich[i].held, sizeof(held_t));
  for (i = 0; i < nout; i++)
    cl_ring_init(&och[i].unacked, sizeof(unacked_t));
  for (i = 0; i < nout; i++) {
    outs[i] = cl_node_out_id(node, i); /* node order for the transport */
    for (j = 0; j < cfg->nout; j++)
      if (strcmp(cfg->out[j].id, outs[i]) == 0)
        memcpy(och[i].addr, cfg->out[j].addr, CL_ADDR_SIZE);
  }
  r = s->env.configure(s->env.ctx, cfg, nout, outs);
  if (r < 0)
    goto fail;
  s->node = node;
  s->out = och;
  s->in = ich;
  s->nout = nout;
  s->nin = cl_node_nin(node);
  s->lockstep = cfg->lockstep != 0;
  s->rank = cfg->rank;
  s->nservers = cfg->nservers;
  s->config_id = cfg->config_id;
  s->configured = 1;
  free(outs);
  free(ins);
  slog(s, CL_SLOG_INFO, "configured: %" PRId64 " tokens, %" PRIu32
       " outbound, %" PRIu32 " inbound, %s%s (config %016" PRIx64 ")",
       cfg->tokens, cfg->nout, cfg->nin,
       cfg->lockstep ? "lockstep" : "free-running",
       (!cfg->lockstep && cfg->jitter_ms) ? ", jitter" : "", cfg->config_id);
  fx_msg(s, c, ok);
  return;
fail:
  msg_del(ok);
  free(och);
  free(ich);
  cl_node_free(node);
  free(outs);
  free(ins);
  if (r == CL_ENOMEM)
    reply_error(s, c, m->req, r, "out of memory");
  else
    reply_error(s, c, m->req, r, "invalid configuration for %s: %s "
                "(duplicate or invalid peer, or self as a peer)", s->self,
                cl_strerror(r));
}

/* ---- CONNECT ------------------------------------------------------------ */

/* 1 all outbound up; 0 still connecting; else the CL_E code of the first
 * channel that failed or was lost (*bad). */
static int connect_state(const cl_session_t *s, size_t *bad) {
  size_t i;
  int all = 1;
  for (i = 0; i < s->nout; i++) {
    switch (s->out[i].state) {
    case CL_CHAN_UP:
      break;
    case CL_CHAN_FAILED:
      *bad = i;
      return CL_EIO;
    case CL_CHAN_LOST:
      *bad = i;
      return CL_ELOST;
    default:
      all = 0;
      break;
    }
  }
  return all;
}

/* Answer a CONNECT if the channels have settled; 1 if answered. */
static int connect_answer(cl_session_t *s, cl_session_client_t *c,
                          uint64_t req) {
  size_t bad = 0;
  int st = connect_state(s, &bad);
  if (st == 0)
    return 0;
  if (st == 1)
    reply_ok(s, c, req);
  else if (st == CL_ELOST)
    reply_error(s, c, req, CL_ELOST, "channel %s->%s (%s) was lost: %s",
                s->self, cl_node_out_id(s->node, bad), s->out[bad].addr,
                s->out[bad].why);
  else
    reply_error(s, c, req, CL_EIO, "cannot connect %s to %s at %s: %s",
                s->self, cl_node_out_id(s->node, bad), s->out[bad].addr,
                s->out[bad].why);
  return 1;
}

/* The outbound channels changed: answer parked CONNECTs once settled. */
static void connect_progress(cl_session_t *s) {
  size_t bad;
  parked_t *p;
  if (s->connects.head == NULL || connect_state(s, &bad) == 0)
    return;
  while ((p = unpark(s, &s->connects)) != NULL) {
    connect_answer(s, p->client, p->req);
    free(p);
  }
}

static void do_connect(cl_session_t *s, cl_session_client_t *c,
                       const cl_msg_t *m) {
  size_t i;
  int r;
  if (fx_reserve(s, s->nout + 1) < 0) {
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  for (i = 0; i < s->nout; i++) {
    cl_fx_t *f;
    if (s->out[i].state != CL_CHAN_IDLE && s->out[i].state != CL_CHAN_FAILED)
      continue;
    s->out[i].state = CL_CHAN_CONNECTING;
    f = fx_push(s, CL_FX_CONNECT);
    f->chan = (uint32_t)i;
  }
  if (connect_answer(s, c, m->req))
    return;
  r = park(s, &s->connects, c, m->req, 0);
  if (r < 0)
    reply_error(s, c, m->req, r, "too many requests waiting");
}

/* ---- SEND --------------------------------------------------------------- */

/* Send now on a connected channel i; every refusal before the node
 * changes. */
static void send_now(cl_session_t *s, cl_session_client_t *c, uint64_t req,
                     uint32_t i, int64_t n) {
  const char *dest = cl_node_out_id(s->node, i);
  int64_t have = cl_node_tokens(s->node);
  size_t q;
  cl_msg_t *ok;
  int r;
  if (have < n) {
    reply_error(s, c, req, CL_ENOTOKENS, "%s has %" PRId64 " tokens, "
                "cannot send %" PRId64 " to %s", s->self, have, n, dest);
    return;
  }
  q = s->env.queued(s->env.ctx, i);
  if (q + CL_FRAME_EST > s->write_cap) {
    reply_error(s, c, req, CL_EFULL, "channel %s->%s has %zu bytes queued "
                "(write cap %zu)", s->self, dest, q, s->write_cap);
    return;
  }
  ok = ok_new(req, 1);
  if (ok == NULL || fx_reserve(s, fx_for_actions(s) + 1) < 0 ||
      reserve_out(s, i, 1) < 0) {
    msg_del(ok);
    reply_error(s, c, req, CL_ENOMEM, "out of memory");
    return;
  }
  r = cl_node_send_tokens(s->node, i, n, &s->acts);
  if (r < 0) {
    msg_del(ok);
    reply_error(s, c, req, r, "%s cannot send %" PRId64 " to %s: %s",
                s->self, n, dest, cl_strerror(r));
    return;
  }
  s->reply = ok;
  apply_actions(s);
  s->reply = NULL;
  fx_msg(s, c, ok);
}

/* Why a SEND on channel i cannot wait for it, or NULL if it can. */
static int send_refusal(cl_session_t *s, cl_session_client_t *c,
                        uint64_t req, uint32_t i) {
  const char *dest = cl_node_out_id(s->node, i);
  switch (s->out[i].state) {
  case CL_CHAN_LOST:
    reply_error(s, c, req, CL_ELOST, "channel %s->%s was lost: %s", s->self,
                dest, s->out[i].why);
    return 1;
  case CL_CHAN_FAILED:
    reply_error(s, c, req, CL_EIO, "channel %s->%s is not connected: %s",
                s->self, dest, s->out[i].why);
    return 1;
  case CL_CHAN_IDLE:
    reply_error(s, c, req, CL_EIO, "channel %s->%s is not connected (the "
                "cluster was configured but never connected: CONNECT)",
                s->self, dest);
    return 1;
  default:
    return 0;
  }
}

static void do_send(cl_session_t *s, cl_session_client_t *c,
                    const cl_msg_t *m) {
  const char *dest = m->u.send.dest;
  int64_t n = m->u.send.n;
  int i = cl_node_out_index(s->node, dest), r;
  if (i < 0) {
    reply_error(s, c, m->req, CL_ENOPEER, "%s has no channel to %s", s->self,
                dest);
    return;
  }
  if (n < 1) {
    reply_error(s, c, m->req, CL_EINVAL, "cannot send %" PRId64
                " tokens: at least 1", n);
    return;
  }
  if (send_refusal(s, c, m->req, (uint32_t)i))
    return;
  if (s->out[i].state == CL_CHAN_UP && s->out[i].sends.head == NULL) {
    send_now(s, c, m->req, (uint32_t)i, n);
    return;
  }
  /* Connecting (or SENDs already wait): wait for the connection, within
   * the transport's connect window; nothing changes until then. */
  r = park(s, &s->out[i].sends, c, m->req, n);
  if (r < 0)
    reply_error(s, c, m->req, r, "too many requests waiting");
}

/* Outbound i settled: run or refuse the SENDs that waited for it. */
static void sends_progress(cl_session_t *s, uint32_t i) {
  parked_t *p;
  if (s->out[i].state == CL_CHAN_CONNECTING)
    return;
  while ((p = unpark(s, &s->out[i].sends)) != NULL) {
    if (!send_refusal(s, p->client, p->req, i))
      send_now(s, p->client, p->req, i, p->n);
    free(p);
  }
}

/* ---- SNAPSHOT, NEXT_ID -------------------------------------------------- */

/* The next automatic id (session.h): the smallest id above every id seen
 * here that is CL_AUTO_ID_BASE + rank modulo nservers. It is seen from
 * now on, so the caller restores max_seen if the request fails. 0 and *id,
 * or CL_ERANGE when no such id fits in 64 bits. Every id the node knows
 * at or above the base was seen, so the new id is unknown to it. */
static int next_auto_id(cl_session_t *s, uint64_t *id) {
  uint64_t k = 0;
  if (s->max_seen >= CL_AUTO_ID_BASE + s->rank)
    k = (s->max_seen - CL_AUTO_ID_BASE - s->rank) / s->nservers + 1;
  if (k > (UINT64_MAX - CL_AUTO_ID_BASE - s->rank) / s->nservers)
    return CL_ERANGE;
  *id = CL_AUTO_ID_BASE + k * s->nservers + s->rank;
  s->max_seen = *id;
  return 0;
}

static void do_next_id(cl_session_t *s, cl_session_client_t *c,
                       const cl_msg_t *m) {
  uint64_t id, saved = s->max_seen;
  cl_msg_t *ok = ok_new(m->req, 0);
  if (ok == NULL || fx_reserve(s, 1) < 0) {
    msg_del(ok);
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  if (next_auto_id(s, &id) < 0) {
    s->max_seen = saved;
    msg_del(ok);
    reply_error(s, c, m->req, CL_ERANGE, "%s has run out of snapshot ids",
                s->self);
    return;
  }
  ok->u.ok.snapshot_id = id;
  fx_msg(s, c, ok);
}

static void do_snapshot(cl_session_t *s, cl_session_client_t *c,
                        const cl_msg_t *m) {
  uint64_t id, saved = s->max_seen;
  cl_msg_t *ok;
  size_t i;
  int r;
  for (i = 0; i < s->nout; i++)
    if (s->out[i].state == CL_CHAN_LOST || s->out[i].state == CL_CHAN_FAILED) {
      reply_error(s, c, m->req, s->out[i].state == CL_CHAN_LOST ? CL_ELOST
                  : CL_EIO, "cannot start a snapshot on %s: channel %s->%s "
                  "is %s: %s", s->self, s->self, cl_node_out_id(s->node, i),
                  s->out[i].state == CL_CHAN_LOST ? "lost" : "not connected",
                  s->out[i].why);
      return;
    }
  if (m->u.snapshot.has_id) {
    id = m->u.snapshot.snapshot_id;
    if (cl_node_has_snapshot(s->node, id)) {
      reply_error(s, c, m->req, CL_EEXIST, "snapshot %" PRIu64
                  " already exists on %s", id, s->self);
      return;
    }
  } else if (next_auto_id(s, &id) < 0) {
    reply_error(s, c, m->req, CL_ERANGE, "%s has run out of snapshot ids",
                s->self);
    return;
  }
  ok = ok_new(m->req, s->nout);
  if (ok == NULL || fx_reserve(s, fx_for_actions(s) + 1) < 0 ||
      reserve_all_out(s) < 0) {
    s->max_seen = saved;
    msg_del(ok);
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  r = cl_node_start_snapshot(s->node, id, &s->acts);
  if (r < 0) {
    s->max_seen = saved;
    msg_del(ok);
    if (r == CL_EFULL)
      reply_error(s, c, m->req, r, "%s has %zu snapshots in progress, the "
                  "most allowed (--max-active %zu); refusing snapshot %"
                  PRIu64, s->self, s->max_active, s->max_active, id);
    else
      reply_error(s, c, m->req, r, "cannot start snapshot %" PRIu64
                  " on %s: %s", id, s->self, cl_strerror(r));
    return;
  }
  seen_id(s, id);
  slog(s, CL_SLOG_INFO, "snapshot %" PRIu64 " started here", id);
  s->reply = ok;
  apply_actions(s);
  s->reply = NULL;
  ok->u.ok.snapshot_id = id;
  fx_msg(s, c, ok);
}

/* ---- COLLECT, WATCH ----------------------------------------------------- */

static void do_collect(cl_session_t *s, cl_session_client_t *c,
                       const cl_msg_t *m) {
  uint64_t id = m->u.collect.snapshot_id;
  cl_node_state_t st;
  cl_msg_t *out;
  cl_fx_t *f;
  int err = 0;
  if (cl_node_state(s->node, id, &st) < 0) {
    reply_error(s, c, m->req, CL_ENOENT, "snapshot %" PRIu64 " is %s on %s",
                id, cl_node_has_snapshot(s->node, id) ? "dropped" : "unknown",
                s->self);
    return;
  }
  if (!st.complete) {
    reply_error(s, c, m->req, CL_EAGAIN, "snapshot %" PRIu64
                " is still in progress on %s", id, s->self);
    return;
  }
  out = local_state_msg(s, CL_MSG_STATE, m->req, id, &st, &err);
  if (out == NULL || fx_reserve(s, 1) < 0) {
    msg_del(out);
    if (err == CL_ETOOBIG)
      reply_error(s, c, m->req, err, "the state of snapshot %" PRIu64
                  " on %s has %zu recorded runs, more than one STATE can "
                  "list (%u)", id, s->self, st.nrecorded,
                  (unsigned)CL_WIRE_MAX_ITEMS);
    else
      reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  f = fx_push(s, CL_FX_MSG);
  f->client = c->tag;
  f->msg = out;
  /* Released only once queued for a client still there: past its reply
   * cap, or closing, it would be lost with the connection. */
  f->has_release = m->u.collect.release != 0;
  f->release = id;
}

static void do_watch(cl_session_t *s, cl_session_client_t *c,
                     const cl_msg_t *m) {
  uint64_t first = m->u.watch.first, count = m->u.watch.count;
  uint64_t *ids = NULL;
  size_t nk = 0, i;
  if (count == 0) {
    reply_error(s, c, m->req, CL_EINVAL, "WATCH of no snapshot (count 0)");
    return;
  }
  if (c->nranges >= CL_WATCH_MAX) {
    reply_error(s, c, m->req, CL_EFULL, "a client watches at most %d "
                "ranges of snapshot ids", CL_WATCH_MAX);
    return;
  }
  if (s->node != NULL) {
    uint64_t dummy;
    nk = cl_node_kept(s->node, &dummy, 0);
    ids = cl_calloc(nk ? nk : 1, sizeof *ids);
    if (ids == NULL || fx_reserve(s, nk + 1) < 0) {
      free(ids);
      reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
      return;
    }
    nk = cl_node_kept(s->node, ids, nk);
  }
  c->ranges[c->nranges].first = first;
  c->ranges[c->nranges].last = first + count - 1;
  c->nranges++;
  c->watching = 1;
  /* States that completed before the watch arrived go now. */
  for (i = 0; i < nk; i++) {
    if (!watches(c, ids[i]))
      continue;
    if (push_state(s, c, ids[i]))
      (void)cl_node_release(s->node, ids[i]);
    else
      complete_msg(s, c, ids[i]);
  }
  free(ids);
  reply_ok(s, c, m->req);
}

/* DROP: give the snapshot up here (a coordinator timed it out). */
static void do_drop(cl_session_t *s, cl_session_client_t *c,
                    const cl_msg_t *m) {
  uint64_t id = m->u.drop.snapshot_id;
  int r = 0;
  /* A snapshot never started has no markers to wait for. */
  if (m->u.drop.started || cl_node_has_snapshot(s->node, id))
    r = cl_node_drop(s->node, id);
  if (r < 0) {
    reply_error(s, c, m->req, r, "cannot drop snapshot %" PRIu64 " on %s: %s",
                id, s->self, cl_strerror(r));
    return;
  }
  unwatch_one(c, id);
  seen_id(s, id); /* an id known here is never issued by NEXT_ID */
  slog(s, CL_SLOG_INFO, "snapshot %" PRIu64 " dropped", id);
  reply_ok(s, c, m->req);
}

/* ---- FREEZE, RESTORE, RESUME, PEEK (docs/RESTORE.md) -------------------- */

/* Refuse req with ESTATE while frozen. 1 if refused. */
static int frozen_refusal(cl_session_t *s, cl_session_client_t *c,
                          const cl_msg_t *m) {
  if (!s->frozen)
    return 0;
  reply_error(s, c, m->req, CL_ESTATE, "%s is being restored (epoch %"
              PRIu64 "%s): %s refused until RESUME", s->self, s->epoch,
              s->paused ? ", paused" : "", cl_msg_type_name(m->type));
  return 1;
}

/* ---- TRACE -------------------------------------------------------------- */

/* Stop appending events; the trace stays readable. */
static void trace_stop(cl_session_t *s) {
  if (s->tracing)
    slog(s, CL_SLOG_INFO, "trace stopped: %" PRIu64 " events",
         cl_trace_next(s->trace));
  s->tracing = 0;
  if (s->node != NULL)
    cl_node_set_trace(s->node, NULL);
}

/* TRACE on: a new trace (the old one is dropped); off: stop. */
static void do_trace(cl_session_t *s, cl_session_client_t *c,
                     const cl_msg_t *m) {
  cl_trace_t *t;
  uint64_t max = m->u.trace.max_events;
  if (!m->u.trace.on) {
    trace_stop(s);
    reply_ok(s, c, m->req);
    return;
  }
  if (max > CL_TRACE_MAX_EVENTS) {
    reply_error(s, c, m->req, CL_ERANGE, "TRACE: at most %zu events, not %"
                PRIu64, CL_TRACE_MAX_EVENTS, max);
    return;
  }
  if (s->frozen) {
    frozen_refusal(s, c, m);
    return;
  }
  t = cl_trace_new((size_t)max, s->env.clock_us, s->env.ctx);
  if (t == NULL || fx_reserve(s, 1) < 0) {
    cl_trace_free(t);
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  trace_stop(s);
  cl_trace_free(s->trace);
  s->trace = t;
  s->tracing = 1;
  cl_node_set_trace(s->node, t);
  slog(s, CL_SLOG_INFO, "trace started: room for %zu events",
       max ? (size_t)max : CL_TRACE_DEFAULT_EVENTS);
  reply_ok(s, c, m->req);
}

/* Bytes a TRACE_R may fill with events (well under any reader's cap). */
#define TRACE_READ_BYTES ((size_t)256 * 1024)

/* TRACE_READ: the events from index `first` on, at most `max` (and
 * CL_TRACE_READ_MAX, and about TRACE_READ_BYTES). */
static void do_trace_read(cl_session_t *s, cl_session_client_t *c,
                          const cl_msg_t *m) {
  cl_msg_t *out = msg_new(CL_MSG_TRACE_R, m->req);
  size_t k, n = 0, count, bytes = 0, max = CL_TRACE_READ_MAX;
  if (m->u.trace_read.max < max)
    max = (size_t)m->u.trace_read.max;
  if (out == NULL || fx_reserve(s, 1) < 0)
    goto oom;
  out->u.trace_r.on = (uint8_t)s->tracing;
  if (s->trace == NULL) {
    fx_msg(s, c, out);
    return;
  }
  out->u.trace_r.next = cl_trace_next(s->trace);
  count = cl_trace_count(s->trace);
  k = cl_trace_find(s->trace, m->u.trace_read.first);
  if (max > count - k)
    max = count - k;
  if (max > 0 &&
      (out->u.trace_r.events = cl_calloc(max, sizeof(cl_trace_event_t))) ==
          NULL)
    goto oom;
  for (; n < max && bytes < TRACE_READ_BYTES; n++, k++) {
    const cl_trace_entry_t *e = cl_trace_entry(s->trace, k);
    cl_trace_event_t *v = &out->u.trace_r.events[n];
    const char *peer = NULL;
    v->i = e->i;
    v->ev = e->ev;
    v->seq = e->seq;
    v->n = e->n;
    v->snap = e->snap;
    v->tokens = e->tokens;
    v->t_us = e->t_us;
    if (e->ev == CL_TEV_SEND || e->ev == CL_TEV_MARKER_SEND)
      peer = cl_node_out_id(s->node, e->peer);
    else if (e->ev == CL_TEV_RECV || e->ev == CL_TEV_MARKER_RECV)
      peer = cl_node_in_id(s->node, e->peer);
    if (peer != NULL)
      memcpy(v->peer, peer, strlen(peer) + 1);
    if (e->nrec > 0) {
      v->recorded = cl_malloc(e->nrec * sizeof *v->recorded);
      if (v->recorded == NULL) {
        out->u.trace_r.nevents = (uint32_t)n + 1;
        goto oom;
      }
      memcpy(v->recorded, cl_trace_ids(s->trace, e),
             e->nrec * sizeof *v->recorded);
      v->nrecorded = e->nrec;
    }
    bytes += 64 + 9 * (size_t)e->nrec;
  }
  out->u.trace_r.nevents = (uint32_t)n;
  fx_msg(s, c, out);
  return;
oom:
  msg_del(out);
  reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
}

/* Fail every request parked on a channel: the channel starts over. */
static void fail_parked(cl_session_t *s, plist_t *l, const char *what) {
  parked_t *p;
  while ((p = unpark(s, l)) != NULL) {
    reply_error(s, p->client, p->req, CL_ESTATE, "%s: %s was restored "
                "meanwhile (epoch %" PRIu64 ")", what, s->self, s->epoch);
    free(p);
  }
}

/* FREEZE: take the new epoch, stop, and start every channel over: its
 * connections close (unread bytes and resend buffers of the old epoch
 * with them) and its frame numbers begin again. */
static void do_freeze(cl_session_t *s, cl_session_client_t *c,
                      const cl_msg_t *m) {
  uint64_t e = m->u.freeze.epoch;
  size_t i;
  if (e <= s->epoch) {
    reply_error(s, c, m->req, CL_ESTATE, "FREEZE at epoch %" PRIu64 ", but %s "
                "is at epoch %" PRIu64 " already", e, s->self, s->epoch);
    return;
  }
  /* A slot per channel, per parked request answered, and the reply. */
  if (fx_reserve(s, s->nout + s->nin + s->nparked + 1) < 0) {
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  s->epoch = e;
  s->frozen = 1;
  s->paused = 0;
  trace_stop(s); /* a trace never spans two epochs */
  for (i = 0; i < s->nout; i++) {
    out_chan_t *o = &s->out[i];
    cl_fx_t *f;
    cl_ring_clear(&o->unacked);
    o->frames = o->acked = 0;
    fail_parked(s, &o->sends, "SEND");
    /* Reconnect under the new epoch: a broken connection is redone, a
     * lost or failed channel tried again, one never connected (a server
     * restarted and configured for the restore) connected. */
    f = fx_push(s, o->state == CL_CHAN_UP || o->state == CL_CHAN_CONNECTING
                       ? CL_FX_BREAK : CL_FX_CONNECT);
    f->chan = (uint32_t)i;
    if (f->kind == CL_FX_BREAK) {
      f->text = (char *)"restore: a new epoch";
      f->text_static = 1;
    }
    o->state = CL_CHAN_CONNECTING;
  }
  for (i = 0; i < s->nin; i++) {
    in_chan_t *ch = &s->in[i];
    cl_fx_t *f;
    if (ch->state == CL_CHAN_UP) {
      f = fx_push(s, CL_FX_CLOSE_IN);
      f->chan = (uint32_t)i;
    }
    ch->state = CL_CHAN_IDLE; /* a new incarnation may come */
    ch->frames = ch->acked = 0;
    ch->paused = 0;
    cl_ring_clear(&ch->held);
    fail_parked(s, &ch->delivers, "DELIVER");
  }
  slog(s, CL_SLOG_INFO, "frozen for a restore at epoch %" PRIu64, e);
  reply_ok(s, c, m->req);
}

/* RESTORE's state, checked against this server: its id, exactly its
 * channels, and each inbound channel's runs consecutive from its received
 * count. 0, or a code with why. */
static int restore_check(cl_session_t *s, const cl_local_state_t *st,
                         char *why, size_t whysz) {
  size_t i;
  uint32_t k;
  if (strcmp(st->server, s->self) != 0) {
    snprintf(why, whysz, "the state is %s's, this is %s", st->server, s->self);
    return CL_EINVAL;
  }
  if (st->nsent != s->nout || st->nrecv != s->nin) {
    snprintf(why, whysz, "the state has %" PRIu32 " outbound and %" PRIu32
             " inbound channels, %s has %zu and %zu", st->nsent, st->nrecv,
             s->self, s->nout, s->nin);
    return CL_EINVAL;
  }
  for (k = 0; k < st->nsent; k++) {
    uint32_t j;
    if (cl_node_out_index(s->node, st->sent[k].peer) < 0) {
      snprintf(why, whysz, "%s has no channel to %s", s->self,
               st->sent[k].peer);
      return CL_ENOPEER;
    }
    for (j = 0; j < k; j++)
      if (strcmp(st->sent[j].peer, st->sent[k].peer) == 0) {
        snprintf(why, whysz, "channel %s->%s listed twice", s->self,
                 st->sent[k].peer);
        return CL_EDUP;
      }
  }
  for (k = 0; k < st->nrecv; k++) {
    uint32_t j;
    if (cl_node_in_index(s->node, st->recv[k].peer) < 0) {
      snprintf(why, whysz, "%s has no channel from %s", s->self,
               st->recv[k].peer);
      return CL_ENOPEER;
    }
    for (j = 0; j < k; j++)
      if (strcmp(st->recv[j].peer, st->recv[k].peer) == 0) {
        snprintf(why, whysz, "channel %s->%s listed twice",
                 st->recv[k].peer, s->self);
        return CL_EDUP;
      }
  }
  for (k = 0; k < st->nrecorded; k++)
    if (cl_node_in_index(s->node, st->recorded[k].src) < 0) {
      snprintf(why, whysz, "recorded messages from %s, which has no "
               "channel to %s", st->recorded[k].src, s->self);
      return CL_ENOPEER;
    }
  for (i = 0; i < s->nin; i++) {
    const char *src = cl_node_in_id(s->node, i);
    uint64_t next = 0;
    for (k = 0; k < st->nrecv; k++)
      if (strcmp(st->recv[k].peer, src) == 0)
        next = st->recv[k].count + 1;
    for (k = 0; k < st->nrecorded; k++) {
      const cl_recorded_t *r = &st->recorded[k];
      if (strcmp(r->src, src) != 0)
        continue;
      if (r->seq != next) {
        snprintf(why, whysz, "channel %s->%s: the recorded messages start "
                 "at seq %" PRIu64 ", expected %" PRIu64, src, s->self,
                 r->seq, next);
        return CL_ESEQ;
      }
      next = r->seq + r->count;
    }
  }
  if (st->tokens < 0 || st->tokens > CL_MSG_TOKENS_MAX) {
    snprintf(why, whysz, "%" PRId64 " tokens is out of range", st->tokens);
    return CL_ERANGE;
  }
  return 0;
}

/* RESTORE: the recorded state becomes this server's, and the messages it
 * recorded wait on their channels, in order, ahead of anything new. */
static void do_restore(cl_session_t *s, cl_session_client_t *c,
                       const cl_msg_t *m) {
  const cl_local_state_t *st = &m->u.restore.state;
  uint64_t *sent = NULL, *recv = NULL, total = 0;
  char why[CL_TEXT_SIZE];
  size_t i;
  uint32_t k;
  int r;
  if (!s->frozen || m->u.restore.epoch != s->epoch) {
    reply_error(s, c, m->req, CL_ESTATE, "RESTORE at epoch %" PRIu64 ", but %s "
                "is %s at epoch %" PRIu64, m->u.restore.epoch, s->self,
                s->frozen ? "frozen" : "running", s->epoch);
    return;
  }
  if ((r = restore_check(s, st, why, sizeof why)) < 0) {
    reply_error(s, c, m->req, r, "cannot restore %s: %s", s->self, why);
    return;
  }
  sent = cl_calloc(s->nout ? s->nout : 1, sizeof *sent);
  recv = cl_calloc(s->nin ? s->nin : 1, sizeof *recv);
  r = sent == NULL || recv == NULL ? CL_ENOMEM : 0;
  for (k = 0; r == 0 && k < st->nsent; k++)
    sent[cl_node_out_index(s->node, st->sent[k].peer)] = st->sent[k].count;
  for (k = 0; r == 0 && k < st->nrecv; k++)
    recv[cl_node_in_index(s->node, st->recv[k].peer)] = st->recv[k].count;
  /* Room for every message first: then nothing below can fail. */
  for (i = 0; r == 0 && i < s->nin; i++) {
    uint64_t n = 0;
    for (k = 0; k < st->nrecorded; k++)
      if (strcmp(st->recorded[k].src, cl_node_in_id(s->node, i)) == 0)
        n += st->recorded[k].count;
    cl_ring_clear(&s->in[i].held);
    if (n > SIZE_MAX / 2 || cl_ring_reserve(&s->in[i].held, (size_t)n) < 0)
      r = CL_ENOMEM;
    total += n;
  }
  if (r == 0)
    r = cl_node_restore(s->node, st->tokens, sent, recv);
  free(sent);
  free(recv);
  if (r < 0) {
    reply_error(s, c, m->req, r, "cannot restore %s: %s", s->self,
                cl_strerror(r));
    return;
  }
  for (k = 0; k < st->nrecorded; k++) {
    const cl_recorded_t *run = &st->recorded[k];
    in_chan_t *ch = &s->in[cl_node_in_index(s->node, run->src)];
    uint64_t j;
    for (j = 0; j < run->count; j++) {
      held_t *h = cl_ring_push(&ch->held);
      h->kind = CL_MSG_TOKEN;
      h->a = run->seq + j;
      h->n = run->n;
    }
  }
  s->restored_id = st->snapshot_id;
  s->restored_epoch = s->epoch;
  s->paused = m->u.restore.paused != 0;
  slog(s, CL_SLOG_INFO, "restored snapshot %" PRIu64 " at epoch %" PRIu64
       ": %" PRId64 " tokens, %" PRIu64 " messages waiting%s",
       st->snapshot_id, s->epoch, st->tokens, total,
       s->paused ? " (paused)" : "");
  reply_ok(s, c, m->req);
}

/* RESUME: handle what waits (free-running; lockstep keeps it for
 * DELIVER) and carry on. */
static void do_resume(cl_session_t *s, cl_session_client_t *c,
                      const cl_msg_t *m) {
  char why[CL_TEXT_SIZE], bad[CL_TEXT_SIZE + 2 * CL_ID_SIZE + 8] = "";
  size_t i;
  if (!s->frozen || s->restored_epoch != s->epoch) {
    reply_error(s, c, m->req, CL_ESTATE, "RESUME, but %s is %s", s->self,
                !s->frozen ? "not frozen"
                           : "frozen without a RESTORE at its epoch (a "
                             "restore stopped half way): restore again");
    return;
  }
  if (fx_reserve(s, 2 * s->nin + 1) < 0) {
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  s->frozen = 0;
  s->paused = 0;
  for (i = 0; i < s->nin; i++) {
    in_chan_t *ch = &s->in[i];
    while (!s->lockstep && ch->held.n > 0) {
      held_t h = *(held_t *)cl_ring_at(&ch->held, 0);
      cl_ring_pop(&ch->held);
      if (handle_peer(s, (uint32_t)i, &h, why, sizeof why) < 0) {
        /* The channel cannot go on past a message it could not take. */
        cl_fx_t *f = fx_push(s, CL_FX_CLOSE_IN);
        f->chan = (uint32_t)i;
        snprintf(bad, sizeof bad, "channel %s->%s: %s",
                 cl_node_in_id(s->node, i), s->self, why);
        in_lost(s, (uint32_t)i, why);
        break;
      }
    }
    if (ch->paused && (s->lockstep ? ch->held.n <= CL_HELD_MAX / 2 : 1)) {
      cl_fx_t *f = fx_push(s, CL_FX_RESUME); /* read it again */
      f->chan = (uint32_t)i;
      ch->paused = 0;
    }
  }
  slog(s, CL_SLOG_INFO, "resumed at epoch %" PRIu64, s->epoch);
  if (bad[0] != '\0')
    reply_error(s, c, m->req, CL_EIO, "%s resumed, but lost %s", s->self,
                bad);
  else
    reply_ok(s, c, m->req);
}

/* PEEK: while frozen nothing moves, so the server's tokens, counts and
 * waiting messages are a local state: the global state of the cluster is
 * every server's. As a STATE whose snapshot id is the restored one. */
static void do_peek(cl_session_t *s, cl_session_client_t *c,
                    const cl_msg_t *m) {
  cl_msg_t *out;
  cl_local_state_t *st;
  size_t i, j, nruns = 0;
  if (!s->frozen || s->restored_epoch != s->epoch) {
    reply_error(s, c, m->req, CL_ESTATE, "PEEK needs %s restored and "
                "paused (restore --paused)", s->self);
    return;
  }
  out = msg_new(CL_MSG_STATE, m->req);
  if (out == NULL || fx_reserve(s, 1) < 0) {
    msg_del(out);
    reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
    return;
  }
  st = &out->u.state;
  st->snapshot_id = s->restored_id;
  memcpy(st->server, s->self, CL_ID_SIZE);
  st->tokens = cl_node_tokens(s->node);
  st->initial_tokens = cl_node_initial_tokens(s->node);
  for (i = 0; i < s->nin; i++)
    nruns += s->in[i].held.n;
  st->recorded = cl_calloc(nruns ? nruns : 1, sizeof *st->recorded);
  st->sent = cl_calloc(s->nout ? s->nout : 1, sizeof *st->sent);
  st->recv = cl_calloc(s->nin ? s->nin : 1, sizeof *st->recv);
  if (st->recorded == NULL || st->sent == NULL || st->recv == NULL ||
      nruns > CL_WIRE_MAX_ITEMS) {
    msg_del(out);
    reply_error(s, c, m->req, CL_ENOMEM, "cannot list %zu waiting messages",
                nruns);
    return;
  }
  for (i = 0; i < s->nout; i++) {
    memcpy(st->sent[i].peer, cl_node_out_id(s->node, i), CL_ID_SIZE);
    st->sent[i].count = cl_node_sent(s->node, i);
  }
  st->nsent = (uint32_t)s->nout;
  for (i = 0; i < s->nin; i++) {
    memcpy(st->recv[i].peer, cl_node_in_id(s->node, i), CL_ID_SIZE);
    st->recv[i].count = cl_node_received(s->node, i);
    for (j = 0; j < s->in[i].held.n; j++) {
      const held_t *h = cl_ring_at(&s->in[i].held, j);
      cl_recorded_t *r = st->nrecorded ? &st->recorded[st->nrecorded - 1]
                                       : NULL;
      if (h->kind != CL_MSG_TOKEN)
        continue;
      if (r != NULL && strcmp(r->src, cl_node_in_id(s->node, i)) == 0 &&
          r->n == h->n && r->seq + r->count == h->a) {
        r->count++;
        continue;
      }
      r = &st->recorded[st->nrecorded++];
      memcpy(r->src, cl_node_in_id(s->node, i), CL_ID_SIZE);
      r->seq = h->a;
      r->count = 1;
      r->n = h->n;
    }
  }
  st->nrecv = (uint32_t)s->nin;
  fx_msg(s, c, out);
}

/* ---- STATUS ------------------------------------------------------------- */

static void do_status(cl_session_t *s, cl_session_client_t *c,
                      const cl_msg_t *m) {
  cl_msg_t *out = msg_new(CL_MSG_STATUS_R, m->req);
  cl_status_t *st;
  uint64_t dummy;
  size_t k, na, nk;
  if (out == NULL)
    goto oom;
  st = &out->u.status;
  memcpy(st->self, s->self, CL_ID_SIZE);
  st->configured = (uint8_t)s->configured;
  st->config_id = s->config_id;
  st->epoch = s->epoch;
  st->frozen = (uint8_t)s->frozen;
  st->paused = (uint8_t)s->paused;
  st->discarded = s->discarded;
  st->restored_id = s->restored_id;
  if (s->configured) {
    st->tokens = cl_node_tokens(s->node);
    st->initial_tokens = cl_node_initial_tokens(s->node);
    st->lockstep = (uint8_t)s->lockstep;
    na = cl_node_active(s->node, &dummy, 0);
    nk = cl_node_kept(s->node, &dummy, 0);
    st->out = cl_calloc(s->nout ? s->nout : 1, sizeof *st->out);
    st->in = cl_calloc(s->nin ? s->nin : 1, sizeof *st->in);
    st->active = cl_calloc(na ? na : 1, sizeof *st->active);
    st->done = cl_calloc(nk ? nk : 1, sizeof *st->done);
    if (st->out == NULL || st->in == NULL || st->active == NULL ||
        st->done == NULL)
      goto oom;
    st->nout = (uint32_t)s->nout;
    st->nin = (uint32_t)s->nin;
    for (k = 0; k < s->nout; k++) {
      snprintf(st->out[k].peer, CL_ID_SIZE, "%s", cl_node_out_id(s->node, k));
      st->out[k].sent = cl_node_sent(s->node, k);
      st->out[k].connected = s->out[k].state == CL_CHAN_UP;
      st->out[k].queued_bytes = s->env.queued(s->env.ctx, (uint32_t)k);
    }
    for (k = 0; k < s->nin; k++) {
      snprintf(st->in[k].peer, CL_ID_SIZE, "%s", cl_node_in_id(s->node, k));
      st->in[k].received = cl_node_received(s->node, k);
      st->in[k].connected = s->in[k].state == CL_CHAN_UP;
      st->in[k].held = s->in[k].held.n;
    }
    st->nactive = (uint32_t)cl_node_active(s->node, st->active, na);
    st->ndone = (uint32_t)cl_node_kept(s->node, st->done, nk);
  }
  if (fx_reserve(s, 1) < 0)
    goto oom;
  fx_msg(s, c, out);
  return;
oom:
  msg_del(out);
  reply_error(s, c, m->req, CL_ENOMEM, "out of memory");
}

/* ---- lockstep: holding and DELIVER -------------------------------------- */

/* Why the node refused message h on inbound i, for logs and replies. */
static void refusal_text(const cl_session_t *s, uint32_t i, const held_t *h,
                         int r, char *why, size_t whysz) {
  if (h->kind == CL_MSG_TOKEN && r == CL_ESEQ)
    snprintf(why, whysz, "TOKEN seq %" PRIu64 " out of order (expected %"
             PRIu64 ")", h->a, cl_node_received(s->node, i) + 1);
  else if (h->kind == CL_MSG_MARKER && r == CL_EDUP)
    snprintf(why, whysz, "duplicate MARKER for snapshot %" PRIu64, h->a);
  else if (h->kind == CL_MSG_MARKER && r == CL_EFULL)
    snprintf(why, whysz, "MARKER for snapshot %" PRIu64 " would start one "
             "more than the %zu snapshots in progress allowed on %s "
             "(--max-active %zu)", h->a, s->max_active, s->self,
             s->max_active);
  else if (h->kind == CL_MSG_TOKEN)
    snprintf(why, whysz, "bad TOKEN seq %" PRIu64 " n %" PRId64 ": %s", h->a,
             h->n, cl_strerror(r));
  else
    snprintf(why, whysz, "bad MARKER %" PRIu64 ": %s", h->a,
             cl_strerror(r));
}

/* Hand message h on inbound i to the node and report. 0 or a CL_E code
 * with why (nothing changed). */
static int handle_peer(cl_session_t *s, uint32_t i, const held_t *h,
                       char *why, size_t whysz) {
  int r;
  if (h->kind == CL_MSG_MARKER) {
    if ((r = fx_reserve(s, fx_for_actions(s))) < 0 ||
        (r = reserve_all_out(s)) < 0) {
      snprintf(why, whysz, "out of memory handling MARKER %" PRIu64, h->a);
      return r;
    }
    r = cl_node_receive_marker(s->node, i, h->a, &s->acts);
    if (r == 0)
      seen_id(s, h->a);
  } else {
    r = cl_node_receive_token(s->node, i, h->a, h->n, &s->acts);
  }
  if (r < 0) {
    refusal_text(s, i, h, r, why, whysz);
    return r;
  }
  if (debug_on(s))
    slog(s, CL_SLOG_DEBUG, "received %s %" PRIu64 " on %s->%s",
         h->kind == CL_MSG_TOKEN ? "TOKEN seq" : "MARKER", h->a,
         cl_node_in_id(s->node, i), s->self);
  apply_actions(s);
  return 0;
}

/* Inbound i can no longer be trusted or used: it is lost. */
static void in_lost(cl_session_t *s, uint32_t i, const char *why) {
  in_chan_t *ch = &s->in[i];
  parked_t *p;
  char text[CL_TEXT_SIZE + CL_ID_SIZE * 2 + 32];
  if (ch->state == CL_CHAN_LOST)
    return;
  ch->state = CL_CHAN_LOST;
  cl_ring_clear(&ch->held);
  snprintf(text, sizeof text, "lost channel %s->%s: %s",
           cl_node_in_id(s->node, i), s->self, why);
  slog(s, CL_SLOG_WARN, "%s", text);
  notice_all(s, cl_node_in_id(s->node, i), text);
  while ((p = unpark(s, &ch->delivers)) != NULL) {
    reply_error(s, p->client, p->req, CL_ELOST, "channel %s->%s was lost",
                cl_node_in_id(s->node, i), s->self);
    free(p);
  }
}

/* DELIVER the head held message of inbound i and answer req. */
static void deliver_now(cl_session_t *s, cl_session_client_t *c,
                        uint64_t req, uint32_t i) {
  in_chan_t *ch = &s->in[i];
  held_t h = *(held_t *)cl_ring_at(&ch->held, 0);
  char why[200];
  cl_msg_t *ok = ok_new(req, h.kind == CL_MSG_MARKER ? s->nout : 0);
  int r;
  /* The reply and a RESUME; a marker reserves more below. */
  if (ok == NULL || fx_reserve(s, 2) < 0) {
    msg_del(ok);
    reply_error(s, c, req, CL_ENOMEM, "out of memory");
    return;
  }
  s->reply = ok;
  r = handle_peer(s, i, &h, why, sizeof why);
  s->reply = NULL;
  if (r == CL_ENOMEM) {
    msg_del(ok);
    reply_error(s, c, req, r, "channel %s->%s: %s",
                cl_node_in_id(s->node, i), s->self, why);
    return;
  }
  if (r < 0) {
    /* The stream from this peer cannot be trusted past a bad message. */
    cl_fx_t *f;
    msg_del(ok);
    reply_error(s, c, req, r, "channel %s->%s: %s",
                cl_node_in_id(s->node, i), s->self, why);
    if (fx_reserve(s, 1) == 0) {
      f = fx_push(s, CL_FX_CLOSE_IN);
      f->chan = i;
    }
    in_lost(s, i, why);
    return;
  }
  cl_ring_pop(&ch->held);
  ok->u.ok.delivered_kind =
      h.kind == CL_MSG_TOKEN ? CL_MSG_TOKEN : CL_MSG_MARKER;
  ok->u.ok.delivered_value = h.kind == CL_MSG_TOKEN ? (uint64_t)h.n : h.a;
  fx_msg(s, c, ok);
  if (ch->paused && ch->held.n <= CL_HELD_MAX / 2) {
    cl_fx_t *f = fx_push(s, CL_FX_RESUME);
    f->chan = i;
    ch->paused = 0;
  }
}

static void do_deliver(cl_session_t *s, cl_session_client_t *c,
                       const cl_msg_t *m) {
  in_chan_t *ch;
  int i, r;
  if (!s->lockstep) {
    reply_error(s, c, m->req, CL_ESTATE, "DELIVER needs lockstep mode");
    return;
  }
  i = cl_node_in_index(s->node, m->u.deliver.src);
  if (i < 0) {
    reply_error(s, c, m->req, CL_ENOPEER, "%s has no channel from %s",
                s->self, m->u.deliver.src);
    return;
  }
  ch = &s->in[i];
  if (ch->delivers.head == NULL && ch->held.n > 0) {
    deliver_now(s, c, m->req, (uint32_t)i);
    return;
  }
  if (ch->state == CL_CHAN_LOST && ch->held.n == 0) {
    reply_error(s, c, m->req, CL_ELOST, "channel %s->%s was lost",
                m->u.deliver.src, s->self);
    return;
  }
  r = park(s, &ch->delivers, c, m->req, 0);
  if (r < 0)
    reply_error(s, c, m->req, r, "too many requests waiting");
}

/* A message arrived on inbound i: serve parked DELIVERs in order. */
static void delivers_progress(cl_session_t *s, uint32_t i) {
  in_chan_t *ch = &s->in[i];
  parked_t *p;
  while (ch->held.n > 0 && (p = unpark(s, &ch->delivers)) != NULL) {
    deliver_now(s, p->client, p->req, i);
    free(p);
  }
}

/* ---- dispatch ----------------------------------------------------------- */

void cl_session_request(cl_session_t *s, cl_session_client_t *c,
                        const cl_msg_t *m) {
  if (debug_on(s))
    slog(s, CL_SLOG_DEBUG, "req %" PRIu64 ": %s", m->req,
         cl_msg_type_name(m->type));
  switch (m->type) {
  case CL_MSG_CONFIGURE:
    do_configure(s, c, m);
    return;
  case CL_MSG_STATUS:
    do_status(s, c, m);
    return;
  case CL_MSG_WATCH:
    do_watch(s, c, m);
    return;
  case CL_MSG_SHUTDOWN:
    slog(s, CL_SLOG_INFO, "SHUTDOWN requested");
    reply_ok(s, c, m->req);
    if (fx_reserve(s, 1) == 0)
      fx_push(s, CL_FX_STOP);
    return;
  default:
    break;
  }
  if (!s->configured) {
    reply_error(s, c, m->req, CL_ESTATE, "%s is not configured yet (%s)",
                s->self, cl_msg_type_name(m->type));
    return;
  }
  /* Frozen, nothing moves: no token, no marker, no new channel. */
  if ((m->type == CL_MSG_SEND || m->type == CL_MSG_SNAPSHOT ||
       m->type == CL_MSG_NEXT_ID || m->type == CL_MSG_DELIVER ||
       m->type == CL_MSG_CONNECT) &&
      frozen_refusal(s, c, m))
    return;
  switch (m->type) {
  case CL_MSG_FREEZE:
    do_freeze(s, c, m);
    break;
  case CL_MSG_RESTORE:
    do_restore(s, c, m);
    break;
  case CL_MSG_RESUME:
    do_resume(s, c, m);
    break;
  case CL_MSG_PEEK:
    do_peek(s, c, m);
    break;
  case CL_MSG_TRACE:
    do_trace(s, c, m);
    break;
  case CL_MSG_TRACE_READ:
    do_trace_read(s, c, m);
    break;
  case CL_MSG_CONNECT:
    do_connect(s, c, m);
    break;
  case CL_MSG_SEND:
    do_send(s, c, m);
    break;
  case CL_MSG_SNAPSHOT:
    do_snapshot(s, c, m);
    break;
  case CL_MSG_NEXT_ID:
    do_next_id(s, c, m);
    break;
  case CL_MSG_COLLECT:
    do_collect(s, c, m);
    break;
  case CL_MSG_DROP:
    do_drop(s, c, m);
    break;
  case CL_MSG_DELIVER:
    do_deliver(s, c, m);
    break;
  case CL_MSG_CIRCULATE:
    if (s->lockstep) {
      reply_error(s, c, m->req, CL_ESTATE,
                  "CIRCULATE needs free-running mode");
      break;
    }
    s->circulate = m->u.circulate.on != 0;
    slog(s, CL_SLOG_INFO, "circulate %s", s->circulate ? "on" : "off");
    reply_ok(s, c, m->req);
    break;
  default:
    reply_error(s, c, m->req, CL_ETYPE, "unexpected request %s",
                cl_msg_type_name(m->type));
    break;
  }
}

/* ---- peers -------------------------------------------------------------- */

/* ACK frames had on inbound i (its connection is up). */
static void ack_in(cl_session_t *s, uint32_t i) {
  cl_fx_t *f;
  if (fx_reserve(s, 1) < 0)
    return; /* the next tick tries again */
  f = fx_push(s, CL_FX_ACK);
  f->chan = i;
  f->a = s->in[i].frames;
  s->in[i].acked = s->in[i].frames;
}

/* `count` frames arrived on inbound i: count them, and acknowledge every
 * CL_ACK_FRAMES (the tick acknowledges the rest). */
static void received(cl_session_t *s, uint32_t i, uint64_t count) {
  in_chan_t *ch = &s->in[i];
  ch->frames += count;
  if (ch->frames - ch->acked >= CL_ACK_FRAMES && ch->state == CL_CHAN_UP)
    ack_in(s, i);
}

int cl_session_hello(cl_session_t *s, const cl_msg_t *m, uint32_t *in,
                     uint64_t *received, char *why, size_t whysz) {
  const char *from = m->u.hello.from;
  in_chan_t *ch;
  int i;
  if (!s->configured) {
    snprintf(why, whysz, "HELLO from %s before CONFIGURE", from);
    return CL_ESTATE;
  }
  if (strcmp(m->u.hello.to, s->self) != 0) {
    snprintf(why, whysz, "HELLO from %s is addressed to %s, this is %s", from,
             m->u.hello.to, s->self);
    return CL_EINVAL;
  }
  i = cl_node_in_index(s->node, from);
  if (i < 0) {
    snprintf(why, whysz, "HELLO from %s, which has no channel to %s", from,
             s->self);
    return CL_ENOPEER;
  }
  if (m->u.hello.config_id != s->config_id) {
    snprintf(why, whysz, "HELLO from %s, which was configured from another "
             "topology (config %016" PRIx64 ", %s has %016" PRIx64 ")", from,
             m->u.hello.config_id, s->self, s->config_id);
    return CL_ESTATE;
  }
  ch = &s->in[i];
  if (m->u.hello.epoch < s->epoch) {
    s->discarded++;
    snprintf(why, whysz, "HELLO from %s of epoch %" PRIu64 ", from before "
             "the restore to epoch %" PRIu64, from, m->u.hello.epoch,
             s->epoch);
    return CL_ESTATE;
  }
  if (m->u.hello.epoch > s->epoch) {
    snprintf(why, whysz, "HELLO from %s of epoch %" PRIu64 ", but %s is "
             "not restored to it yet", from, m->u.hello.epoch, s->self);
    return CL_EAGAIN;
  }
  if (ch->state == CL_CHAN_LOST) {
    snprintf(why, whysz, "HELLO for channel %s->%s, which was lost", from,
             s->self);
    return CL_ELOST;
  }
  if (ch->state != CL_CHAN_IDLE && m->u.hello.incarnation != ch->incarnation) {
    /* Another process calling itself `from`: its frames would not
     * continue this channel's numbering. */
    snprintf(why, whysz, "HELLO for channel %s->%s from another %s process "
             "(incarnation %016" PRIx64 ", the channel's is %016" PRIx64 ")",
             from, s->self, from, m->u.hello.incarnation, ch->incarnation);
    return CL_EDUP;
  }
  if (ch->state == CL_CHAN_IDLE) {
    ch->incarnation = m->u.hello.incarnation;
  } else {
    /* The sender reconnected: its old connection (if this side still has
     * it) is closed by the transport, unread bytes and all; it resends
     * everything after `frames`. */
    slog(s, CL_SLOG_INFO, "channel %s->%s reconnected; %" PRIu64 " frames "
         "received so far", from, s->self, ch->frames);
  }
  ch->state = CL_CHAN_UP;
  ch->acked = ch->frames;
  *in = (uint32_t)i;
  *received = ch->frames;
  return 0;
}

int cl_session_peer(cl_session_t *s, uint32_t in, const cl_msg_t *m,
                    char *why, size_t whysz) {
  in_chan_t *ch;
  held_t h;
  if (!s->configured || in >= s->nin ||
      (m->type != CL_MSG_TOKEN && m->type != CL_MSG_MARKER)) {
    snprintf(why, whysz, "unexpected %s", cl_msg_type_name(m->type));
    return CL_EPROTO;
  }
  h.kind = m->type;
  h.a = h.kind == CL_MSG_TOKEN ? m->u.token.seq : m->u.marker.snapshot_id;
  h.n = h.kind == CL_MSG_TOKEN ? m->u.token.n : 0;
  ch = &s->in[in];
  if (!s->lockstep && !s->frozen) {
    int r = handle_peer(s, in, &h, why, whysz);
    if (r == 0)
      received(s, in, 1);
    return r;
  }
  if (cl_ring_reserve(&ch->held, 1) < 0) {
    snprintf(why, whysz, "out of memory holding messages");
    return CL_ENOMEM;
  }
  *(held_t *)cl_ring_push(&ch->held) = h;
  received(s, in, 1);
  if (debug_on(s))
    slog(s, CL_SLOG_DEBUG, "holding %s %" PRIu64 " from %s (%zu held)",
         h.kind == CL_MSG_TOKEN ? "TOKEN seq" : "MARKER", h.a,
         cl_node_in_id(s->node, in), ch->held.n);
  delivers_progress(s, in);
  if (ch->held.n > CL_HELD_MAX && !ch->paused) {
    /* Bound memory: the sender's bytes wait in the kernel until DELIVERs
     * drain this channel. */
    ch->paused = 1;
    slog(s, CL_SLOG_DEBUG, "channel %s->%s holds %zu messages; not reading "
         "it", cl_node_in_id(s->node, in), s->self, ch->held.n);
    return 1;
  }
  return 0;
}

int cl_session_receive_ones(cl_session_t *s, uint32_t in, uint64_t first,
                            uint64_t count, char *why, size_t whysz) {
  uint64_t done = 0, k;
  int r;
  if (!s->configured || in >= s->nin || s->lockstep) {
    snprintf(why, whysz, "unexpected TOKEN");
    return CL_EPROTO;
  }
  if (s->frozen) { /* they wait behind what a restore put there */
    in_chan_t *ch = &s->in[in];
    if (count > SIZE_MAX / 2 || cl_ring_reserve(&ch->held, count) < 0) {
      snprintf(why, whysz, "out of memory holding messages");
      return CL_ENOMEM;
    }
    for (k = 0; k < count; k++) {
      held_t *h = cl_ring_push(&ch->held);
      h->kind = CL_MSG_TOKEN;
      h->a = first + k;
      h->n = 1;
    }
    received(s, in, count);
    return 0;
  }
  r = cl_node_receive_ones(s->node, in, first, count, &done);
  received(s, in, done);
  if (debug_on(s))
    for (k = 0; k < done; k++)
      slog(s, CL_SLOG_DEBUG, "received TOKEN seq %" PRIu64 " on %s->%s",
           first + k, cl_node_in_id(s->node, in), s->self);
  if (r < 0) {
    held_t h = {CL_MSG_TOKEN, first + done, 1};
    refusal_text(s, in, &h, r, why, whysz);
  }
  return r;
}

void cl_session_in_lost(cl_session_t *s, uint32_t in, const char *why) {
  if (!s->configured || in >= s->nin || s->in[in].state == CL_CHAN_IDLE)
    return;
  in_lost(s, in, why);
}

void cl_session_in_down(cl_session_t *s, uint32_t in, const char *why) {
  in_chan_t *ch;
  if (!s->configured || in >= s->nin || s->in[in].state != CL_CHAN_UP)
    return;
  ch = &s->in[in];
  ch->state = CL_CHAN_CONNECTING;
  ch->down_at = s->now;
  slog(s, CL_SLOG_INFO, "channel %s->%s: connection ended (%s) after %"
       PRIu64 " frames; waiting up to %" PRIu64 " ms for %s to reconnect",
       cl_node_in_id(s->node, in), s->self, why, ch->frames, s->peer_lost_ms,
       cl_node_in_id(s->node, in));
}

/* Outbound i is up again (or for the first time) and the receiver has its
 * frames 1..received: write the rest, in order, before anything new. */
static int out_resume(cl_session_t *s, uint32_t i, uint64_t received,
                      char *why, size_t whysz) {
  out_chan_t *o = &s->out[i];
  const char *peer = cl_node_out_id(s->node, i);
  size_t k, runs;
  uint64_t frames;
  if (received < o->acked || received > o->frames) {
    snprintf(why, whysz, "%s says it has %" PRIu64 " frames of channel "
             "%s->%s, but %" PRIu64 " were sent and %" PRIu64 " confirmed",
             peer, received, s->self, peer, o->frames, o->acked);
    return CL_EPROTO;
  }
  forget_acked(s, i, received);
  runs = o->unacked.n;
  frames = o->frames - o->acked;
  if (fx_reserve(s, runs + 1) < 0 ||
      (frames > 0 && s->env.reserve(s->env.ctx, i, (size_t)frames) < 0)) {
    snprintf(why, whysz, "out of memory resending %" PRIu64 " frames on "
             "%s->%s", frames, s->self, peer);
    return CL_ENOMEM;
  }
  for (k = 0; k < runs; k++) {
    const unacked_t *u = cl_ring_at(&o->unacked, k);
    cl_fx_t *f = fx_push(s, CL_FX_FRAME);
    f->chan = i;
    f->frame = u->kind;
    f->a = u->a;
    f->n = u->n;
    f->count = u->count;
  }
  if (o->was_up)
    slog(s, CL_SLOG_INFO, "channel %s->%s reconnected: %s has %" PRIu64
         " frames, resending %" PRIu64, s->self, peer, peer, received,
         frames);
  o->was_up = 1;
  o->progress_at = s->now;
  return 0;
}

int cl_session_out_welcome(cl_session_t *s, uint32_t chan, uint64_t received,
                           char *why, size_t whysz) {
  int r;
  if (!s->configured || chan >= s->nout ||
      s->out[chan].state != CL_CHAN_CONNECTING) {
    snprintf(why, whysz, "unexpected WELCOME");
    return CL_EPROTO;
  }
  if ((r = out_resume(s, chan, received, why, whysz)) < 0)
    return r;
  cl_session_out_state(s, chan, CL_CHAN_UP, "");
  return 0;
}

int cl_session_out_ack(cl_session_t *s, uint32_t chan, uint64_t received,
                       char *why, size_t whysz) {
  out_chan_t *o;
  if (!s->configured || chan >= s->nout) {
    snprintf(why, whysz, "unexpected ACK");
    return CL_EPROTO;
  }
  o = &s->out[chan];
  if (received < o->acked || received > o->frames) {
    snprintf(why, whysz, "ACK of %" PRIu64 " frames on %s->%s, but %"
             PRIu64 " were sent and %" PRIu64 " confirmed", received,
             s->self, cl_node_out_id(s->node, chan), o->frames, o->acked);
    return CL_EPROTO;
  }
  forget_acked(s, chan, received);
  return 0;
}

void cl_session_out_state(cl_session_t *s, uint32_t chan, cl_chan_state_t st,
                          const char *why) {
  out_chan_t *ch;
  const char *peer;
  char text[CL_TEXT_SIZE + CL_ID_SIZE * 2 + 32];
  if (!s->configured || chan >= s->nout)
    return;
  ch = &s->out[chan];
  peer = cl_node_out_id(s->node, chan);
  if (st == CL_CHAN_LOST && ch->state != CL_CHAN_UP &&
      ch->state != CL_CHAN_CONNECTING)
    return;
  if (st == CL_CHAN_CONNECTING && ch->state == CL_CHAN_UP)
    slog(s, CL_SLOG_INFO, "channel %s->%s: connection ended (%s); "
         "reconnecting, %" PRIu64 " frames unconfirmed", s->self, peer,
         why ? why : "", ch->frames - ch->acked);
  ch->state = st;
  snprintf(ch->why, sizeof ch->why, "%s", why ? why : "");
  if (st == CL_CHAN_FAILED) {
    slog(s, CL_SLOG_WARN, "cannot connect channel %s->%s to %s: %s", s->self,
         peer, ch->addr, ch->why);
  } else if (st == CL_CHAN_LOST) {
    /* What was not confirmed can no longer be delivered. */
    cl_ring_clear(&ch->unacked);
    ch->acked = ch->frames;
    snprintf(text, sizeof text, "lost channel %s->%s: %s", s->self, peer,
             ch->why);
    slog(s, CL_SLOG_WARN, "%s", text);
    notice_all(s, peer, text);
  }
  sends_progress(s, chan);
  connect_progress(s);
}

void cl_session_tick(cl_session_t *s, uint64_t now) {
  size_t i;
  char why[CL_ID_SIZE + 64];
  s->now = now;
  if (!s->configured)
    return;
  for (i = 0; i < s->nin; i++) {
    in_chan_t *ch = &s->in[i];
    if (ch->state == CL_CHAN_UP && ch->frames > ch->acked)
      ack_in(s, (uint32_t)i);
    else if (ch->state == CL_CHAN_CONNECTING && now - ch->down_at >=
                                                   s->peer_lost_ms) {
      snprintf(why, sizeof why, "%s did not reconnect within %" PRIu64
               " ms", cl_node_in_id(s->node, i), s->peer_lost_ms);
      in_lost(s, (uint32_t)i, why);
    }
  }
  for (i = 0; i < s->nout; i++) {
    out_chan_t *o = &s->out[i];
    cl_fx_t *f;
    if (o->state != CL_CHAN_UP || o->frames == o->acked ||
        now - o->progress_at < s->peer_timeout_ms || fx_reserve(s, 1) < 0)
      continue;
    f = fx_textf(s, CL_FX_BREAK, "%s acknowledged nothing for %" PRIu64
                " ms (%" PRIu64 " frames unconfirmed)",
                cl_node_out_id(s->node, i), now - o->progress_at,
                o->frames - o->acked);
    f->chan = (uint32_t)i;
    o->progress_at = now; /* one break per timeout */
  }
}

/* ---- load mode ---------------------------------------------------------- */

int cl_session_configured(const cl_session_t *s) { return s->configured; }
int cl_session_lockstep(const cl_session_t *s) { return s->lockstep; }
int cl_session_circulating(const cl_session_t *s) {
  return s->circulate && !s->frozen;
}
uint64_t cl_session_epoch(const cl_session_t *s) { return s->epoch; }
size_t cl_session_nout(const cl_session_t *s) { return s->nout; }
size_t cl_session_nin(const cl_session_t *s) { return s->nin; }

const char *cl_session_out_id(const cl_session_t *s, size_t i) {
  return s->node ? cl_node_out_id(s->node, i) : NULL;
}

const char *cl_session_in_id(const cl_session_t *s, size_t i) {
  return s->node ? cl_node_in_id(s->node, i) : NULL;
}

int64_t cl_session_tokens(const cl_session_t *s) {
  return s->node ? cl_node_tokens(s->node) : 0;
}

size_t cl_session_held(const cl_session_t *s, size_t in) {
  return s->in != NULL && in < s->nin ? s->in[in].held.n : 0;
}

uint64_t cl_session_sent(const cl_session_t *s, size_t out) {
  return s->node ? cl_node_sent(s->node, out) : 0;
}

int cl_session_send_ones(cl_session_t *s, uint32_t out, uint64_t count,
                         uint64_t *first) {
  int r;
  if (!s->configured || out >= s->nout || s->out[out].state != CL_CHAN_UP)
    return CL_EINVAL;
  if (cl_ring_reserve(&s->out[out].unacked, 1) < 0)
    return CL_ENOMEM;
  r = cl_node_send_ones(s->node, out, count, first);
  if (r == 0)
    keep_frame(s, out, CL_MSG_TOKEN, *first, 1, count);
  return r;
}

uint64_t cl_session_unacked(const cl_session_t *s, size_t out) {
  return s->out != NULL && out < s->nout
             ? s->out[out].frames - s->out[out].acked
             : 0;
}

size_t cl_session_unacked_runs(const cl_session_t *s, size_t out) {
  return s->out != NULL && out < s->nout ? s->out[out].unacked.n : 0;
}
