/* The in-process backend (see sim.h): one protocol session (daemon/
 * session.h) per topology server, configured and connected exactly as
 * clsnapd's are, wired together by performing their effects in memory: a
 * frame for outbound channel i goes straight into the receiving session,
 * which holds it (lockstep) until a DELIVER. Requests are handled one after
 * another in the order given. Nothing here knows the protocol's rules: the
 * replies are the sessions' own.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "idmap.h"
#include "session.h"

/* One server: its session, its coordinator client, and where each of its
 * outbound channels arrives. */
typedef struct sim_srv {
  cl_sim_t *sim;
  uint32_t idx;
  cl_session_t *s;
  cl_session_client_t *client;
  size_t nout;
  uint32_t *dst;    /* [nout] receiving server */
  uint32_t *dst_in; /* [nout] inbound index there */
} sim_srv_t;

/* Completions reported for one snapshot id: which servers, and the states
 * they pushed (LOCAL_STATE) not yet taken. */
typedef struct sim_done {
  uint64_t id;
  size_t count;
  uint8_t *seen;     /* [n] */
  cl_msg_t *pushed;  /* [n] (type 0: none) */
} sim_done_t;

struct cl_sim {
  size_t n;
  char (*ids)[CL_ID_SIZE];
  uint64_t config_id;
  sim_srv_t *srv;
  cl_fx_list_t fx, logs;
  int failed;        /* an effect could not be carried out */
  char why[CL_TEXT_SIZE + 2 * CL_ID_SIZE + 32];
  /* the request being handled */
  uint64_t want_req;
  cl_msg_t *want_reply;
  sim_done_t *done;
  size_t ndone, capdone;
  cl_idmap_t done_ix; /* id -> index into done */
};

/* ---- completions -------------------------------------------------------- */

static sim_done_t *done_find(const cl_sim_t *sim, uint64_t id) {
  uintptr_t i;
  return cl_idmap_get(&sim->done_ix, id, &i) ? &sim->done[i] : NULL;
}

/* The record for id, created if new; NULL when out of memory. */
static sim_done_t *done_get(cl_sim_t *sim, uint64_t id) {
  sim_done_t *d = done_find(sim, id);
  if (d != NULL)
    return d;
  if (sim->ndone == sim->capdone) {
    size_t cap = sim->capdone ? sim->capdone * 2 : 16;
    sim_done_t *v = realloc(sim->done, cap * sizeof *v);
    if (v == NULL)
      return NULL;
    sim->done = v;
    sim->capdone = cap;
  }
  d = &sim->done[sim->ndone];
  memset(d, 0, sizeof *d);
  d->id = id;
  d->seen = calloc(sim->n, 1);
  d->pushed = calloc(sim->n, sizeof *d->pushed);
  if (d->seen == NULL || d->pushed == NULL ||
      cl_idmap_put(&sim->done_ix, id, sim->ndone) < 0) {
    free(d->seen);
    free(d->pushed);
    return NULL;
  }
  sim->ndone++;
  return d;
}

/* Server s reported id complete (with its state in *m, taken, if m). */
static void note_done(cl_sim_t *sim, uint32_t s, uint64_t id, cl_msg_t *m) {
  sim_done_t *d = done_get(sim, id);
  if (d == NULL) {
    sim->failed = CL_ENOMEM;
    snprintf(sim->why, sizeof sim->why, "out of memory");
    return;
  }
  if (!d->seen[s]) {
    d->seen[s] = 1;
    d->count++;
  }
  if (m != NULL) {
    cl_msg_free(&d->pushed[s]);
    d->pushed[s] = *m;
    memset(m, 0, sizeof *m);
  }
}

/* ---- effects ------------------------------------------------------------ */

/* A message from server s to the coordinator. */
static void to_coordinator(cl_sim_t *sim, uint32_t s, cl_msg_t *m) {
  switch (m->type) {
  case CL_MSG_LOCAL_STATE:
    note_done(sim, s, m->u.state.snapshot_id, m);
    return;
  case CL_MSG_COMPLETE:
    note_done(sim, s, m->u.complete.snapshot_id, NULL);
    return;
  case CL_MSG_NOTICE:
    return;
  default:
    break;
  }
  if (sim->want_reply != NULL && m->req == sim->want_req) {
    *sim->want_reply = *m;
    memset(m, 0, sizeof *m);
  }
}

/* Server s acknowledged `received` frames on its inbound channel `in`:
 * the sender forgets them (in memory every frame arrives at once). */
static void sim_ack(cl_sim_t *sim, size_t s, uint32_t in, uint64_t received) {
  size_t a, i;
  char why[CL_TEXT_SIZE];
  for (a = 0; a < sim->n; a++)
    for (i = 0; i < sim->srv[a].nout; i++)
      if (sim->srv[a].dst[i] == s && sim->srv[a].dst_in[i] == in &&
          cl_session_out_ack(sim->srv[a].s, (uint32_t)i, received, why,
                             sizeof why) < 0 && !sim->failed) {
        sim->failed = CL_EPROTO;
        snprintf(sim->why, sizeof sim->why, "%.200s", why);
      }
}

/* Carry out one effect of server s. */
static void perform_one(cl_sim_t *sim, uint32_t s, cl_fx_t *f) {
  sim_srv_t *v = &sim->srv[s];
  char why[CL_TEXT_SIZE];
  cl_msg_t m;
  uint32_t in;
  uint64_t received;
  int r;
  switch (f->kind) {
  case CL_FX_FRAME: {
    uint64_t k;
    for (k = 0; k < f->count; k++) {
      memset(&m, 0, sizeof m);
      m.type = f->frame;
      if (f->frame == CL_MSG_TOKEN) {
        m.u.token.seq = f->a + k;
        m.u.token.n = f->n;
      } else {
        m.u.marker.snapshot_id = f->a;
      }
      /* The receiver is in lockstep: it holds the frame until DELIVER. */
      r = cl_session_peer(sim->srv[v->dst[f->chan]].s, v->dst_in[f->chan],
                          &m, why, sizeof why);
      if (r < 0 && !sim->failed) {
        sim->failed = r;
        snprintf(sim->why, sizeof sim->why, "channel %s->%s: %s",
                 sim->ids[s], sim->ids[v->dst[f->chan]], why);
      }
    }
    break;
  }
  case CL_FX_ACK:
    sim_ack(sim, s, f->chan, f->a);
    break;
  case CL_FX_MSG:
    to_coordinator(sim, s, f->msg);
    if (f->has_release)
      cl_session_queued(v->s, f->release);
    break;
  case CL_FX_ERROR:
    if (sim->want_reply != NULL && f->a == sim->want_req)
      cl_fx_error_msg(f, sim->want_reply);
    break;
  case CL_FX_CONNECT:
    /* In memory a channel connects at once: HELLO at the receiver, then
     * the sender learns it is up. */
    memset(&m, 0, sizeof m);
    m.type = CL_MSG_HELLO;
    memcpy(m.u.hello.from, sim->ids[s], CL_ID_SIZE);
    memcpy(m.u.hello.to, sim->ids[v->dst[f->chan]], CL_ID_SIZE);
    m.u.hello.config_id = sim->config_id;
    r = cl_session_hello(sim->srv[v->dst[f->chan]].s, &m, &in, &received,
                         why, sizeof why);
    if (r == 0)
      r = cl_session_out_welcome(v->s, f->chan, received, why, sizeof why);
    if (r < 0 && !sim->failed) {
      sim->failed = r;
      snprintf(sim->why, sizeof sim->why, "%.200s", why);
    }
    if (r < 0)
      cl_session_out_state(v->s, f->chan, CL_CHAN_FAILED, why);
    break;
  case CL_FX_CLOSE_IN:
  case CL_FX_DROP:
    if (!sim->failed) {
      sim->failed = CL_EPROTO;
      snprintf(sim->why, sizeof sim->why, "%s: %s", sim->ids[s],
               f->text ? f->text : "a channel was closed");
    }
    break;
  default: /* RESUME, STOP: nothing is paused or running here */
    break;
  }
}

/* Perform what every session asked for until all are quiet: a frame can
 * make its receiver ask for more. */
static void perform(cl_sim_t *sim) {
  int busy = 1;
  while (busy) {
    size_t s;
    busy = 0;
    for (s = 0; s < sim->n; s++) {
      size_t i;
      if (cl_session_pending(sim->srv[s].s) == 0)
        continue;
      busy = 1;
      cl_session_take(sim->srv[s].s, &sim->fx, &sim->logs);
      for (i = 0; i < sim->fx.n; i++)
        perform_one(sim, (uint32_t)s, &sim->fx.v[i]);
      cl_fx_list_clear(&sim->fx);
      cl_fx_list_clear(&sim->logs);
    }
  }
}

/* ---- the session environment ------------------------------------------- */

/* Frames go straight into the receiving session: nothing to reserve. */
static int env_reserve(void *ctx, uint32_t chan, size_t frames) {
  (void)ctx;
  (void)chan;
  (void)frames;
  return 0;
}

/* Messages held at the receiver, at a frame's worst-case size: the same
 * write cap as a daemon's, counted the same way. */
static size_t env_queued(void *ctx, uint32_t chan) {
  sim_srv_t *v = ctx;
  return cl_session_held(v->sim->srv[v->dst[chan]].s, v->dst_in[chan]) *
         CL_FRAME_EST;
}

/* The session's outbound order is the topology's (both sort ids
 * byte-wise); check it rather than trust it. */
static int env_configure(void *ctx, const cl_configure_t *cfg, size_t nout,
                         const char *const *out_ids) {
  sim_srv_t *v = ctx;
  size_t i;
  (void)cfg;
  if (nout != v->nout)
    return CL_EINVAL;
  for (i = 0; i < nout; i++)
    if (strcmp(out_ids[i], v->sim->ids[v->dst[i]]) != 0)
      return CL_EINVAL;
  return 0;
}

/* ---- creation ----------------------------------------------------------- */

/* One request to server s during set-up; 0 if answered OK, else a CL_E
 * code with sim->why. */
static int setup_call(cl_sim_t *sim, uint32_t s, const cl_msg_t *q) {
  cl_msg_t r;
  int rc = 0;
  memset(&r, 0, sizeof r);
  sim->want_req = q->req;
  sim->want_reply = &r;
  cl_session_request(sim->srv[s].s, sim->srv[s].client, q);
  perform(sim);
  sim->want_reply = NULL;
  if (r.type != CL_MSG_OK || sim->failed) {
    if (!sim->failed)
      snprintf(sim->why, sizeof sim->why, "%s: %.200s", sim->ids[s],
               r.type == CL_MSG_ERROR ? r.u.error.text : "no reply");
    rc = CL_EINVAL;
  }
  cl_msg_free(&r);
  return rc;
}

/* Server s's session (not configured yet), with the room for where its
 * nout outbound channels arrive. Returns 0 or -1. */
static int server_open(cl_sim_t *sim, size_t s) {
  sim_srv_t *v = &sim->srv[s];
  cl_session_config_t sc;
  v->sim = sim;
  v->idx = (uint32_t)s;
  v->dst = calloc(v->nout ? v->nout : 1, sizeof *v->dst);
  v->dst_in = calloc(v->nout ? v->nout : 1, sizeof *v->dst_in);
  if (v->dst == NULL || v->dst_in == NULL)
    return -1;
  memset(&sc, 0, sizeof sc);
  sc.self = sim->ids[s];
  sc.write_cap = CL_SIM_QUEUE_MAX * CL_FRAME_EST;
  sc.log_level = CL_SLOG_ERROR + 1; /* no log lines */
  sc.env.ctx = v;
  sc.env.reserve = env_reserve;
  sc.env.queued = env_queued;
  sc.env.configure = env_configure;
  if (cl_session_new(&sc, &v->s) < 0 ||
      (v->client = cl_session_client_open(v->s, v)) == NULL)
    return -1;
  return 0;
}

/* Where each outbound channel arrives: links are sorted by (src, dst) and
 * ids byte-wise, the order sessions index their channels in, so the links
 * into b are met in src order and a link's inbound index at b is how many
 * into b came before it. Returns 0 or -1. */
static int wire_channels(cl_sim_t *sim, const cl_topology_t *topo) {
  size_t n = sim->n, l;
  size_t *k = calloc(n ? n : 1, sizeof *k);  /* outbound filled so far */
  size_t *in = calloc(n ? n : 1, sizeof *in); /* inbound counted so far */
  if (k == NULL || in == NULL) {
    free(k);
    free(in);
    return -1;
  }
  for (l = 0; l < topo->nlinks; l++) {
    uint32_t a = topo->links[l].src, b = topo->links[l].dst;
    sim->srv[a].dst[k[a]] = b;
    sim->srv[a].dst_in[k[a]] = (uint32_t)in[b]++;
    k[a]++;
  }
  free(k);
  free(in);
  return 0;
}

/* CONFIGURE server s for topo, as `clsnap run` configures a daemon. */
static int configure_one(cl_sim_t *sim, const cl_topology_t *topo,
                         uint32_t s) {
  cl_msg_t q;
  cl_configure_t *cf = &q.u.configure;
  size_t l;
  int rc;
  memset(&q, 0, sizeof q);
  q.type = CL_MSG_CONFIGURE;
  q.req = 1;
  memcpy(cf->self, sim->ids[s], CL_ID_SIZE);
  cf->tokens = topo->servers[s].tokens;
  cf->rank = s;
  cf->nservers = (uint32_t)sim->n;
  cf->lockstep = 1;
  cf->config_id = sim->config_id;
  cf->out = calloc(sim->srv[s].nout ? sim->srv[s].nout : 1, sizeof *cf->out);
  cf->in = calloc(sim->n, sizeof *cf->in);
  if (cf->out == NULL || cf->in == NULL) {
    cl_msg_free(&q);
    return CL_ENOMEM;
  }
  for (l = 0; l < topo->nlinks; l++) {
    if (topo->links[l].src == s) {
      memcpy(cf->out[cf->nout].id, sim->ids[topo->links[l].dst], CL_ID_SIZE);
      snprintf(cf->out[cf->nout].addr, CL_ADDR_SIZE, "memory:1");
      cf->nout++;
    }
    if (topo->links[l].dst == s)
      memcpy(cf->in[cf->nin++], sim->ids[topo->links[l].src], CL_ID_SIZE);
  }
  rc = setup_call(sim, s, &q);
  cl_msg_free(&q);
  return rc;
}

/* CONFIGURE every server, then CONNECT each: only after every server is
 * configured, as a HELLO needs its receiver configured. Returns 0 or -1. */
static int configure_all(cl_sim_t *sim, const cl_topology_t *topo) {
  size_t s;
  for (s = 0; s < sim->n; s++)
    if (configure_one(sim, topo, (uint32_t)s) < 0)
      return -1;
  for (s = 0; s < sim->n; s++) {
    cl_msg_t q;
    memset(&q, 0, sizeof q);
    q.type = CL_MSG_CONNECT;
    q.req = 2;
    if (setup_call(sim, (uint32_t)s, &q) < 0)
      return -1;
  }
  return 0;
}

/* Sessions configured and connected as clsnapd's are; see sim.h. */
cl_sim_t *cl_sim_new(const cl_topology_t *topo) {
  cl_sim_t *sim;
  size_t s, l, n;
  if (topo == NULL || (topo->nservers > 0 && topo->servers == NULL) ||
      (topo->nlinks > 0 && topo->links == NULL))
    return NULL;
  n = topo->nservers;
  for (l = 0; l < topo->nlinks; l++)
    if (topo->links[l].src >= n || topo->links[l].dst >= n)
      return NULL;
  sim = calloc(1, sizeof(*sim));
  if (sim == NULL)
    return NULL;
  sim->n = n;
  sim->config_id = cl_topology_hash(topo);
  sim->ids = calloc(n ? n : 1, sizeof(*sim->ids));
  sim->srv = calloc(n ? n : 1, sizeof(*sim->srv));
  if (sim->ids == NULL || sim->srv == NULL)
    goto fail;
  for (s = 0; s < n; s++)
    if (cl_id_copy(sim->ids[s], topo->servers[s].id) < 0)
      goto fail;
  for (l = 0; l < topo->nlinks; l++)
    sim->srv[topo->links[l].src].nout++;
  for (s = 0; s < n; s++)
    if (server_open(sim, s) < 0)
      goto fail;
  if (wire_channels(sim, topo) < 0 || configure_all(sim, topo) < 0)
    goto fail;
  return sim;
fail:
  cl_sim_free(sim);
  return NULL;
}

void cl_sim_free(cl_sim_t *sim) {
  size_t i, s;
  if (sim == NULL)
    return;
  for (s = 0; sim->srv != NULL && s < sim->n; s++) {
    cl_session_free(sim->srv[s].s);
    free(sim->srv[s].dst);
    free(sim->srv[s].dst_in);
  }
  for (i = 0; i < sim->ndone; i++) {
    for (s = 0; s < sim->n; s++)
      cl_msg_free(&sim->done[i].pushed[s]);
    free(sim->done[i].pushed);
    free(sim->done[i].seen);
  }
  free(sim->done);
  cl_idmap_free(&sim->done_ix);
  cl_fx_list_free(&sim->fx);
  cl_fx_list_free(&sim->logs);
  free(sim->srv);
  free(sim->ids);
  free(sim);
}

/* ---- the backend -------------------------------------------------------- */

/* cl_backend_t.call: requests in order, each answered before the next is
 * handled. On failure every reply is released (zeroed); requests before the
 * failing one have taken effect. */
static int sim_call(void *ctx, size_t n, const uint32_t *servers,
                    const cl_msg_t *reqs, cl_msg_t *replies, char *err,
                    size_t errsize) {
  cl_sim_t *sim = ctx;
  size_t i, j;
  int rc = 0;
  if (n == 0)
    return 0;
  if (sim == NULL || servers == NULL || reqs == NULL || replies == NULL) {
    cl_set_err(err, errsize, "in-process backend: invalid call");
    return CL_EINVAL;
  }
  memset(replies, 0, n * sizeof(*replies));
  for (i = 0; i < n && rc == 0; i++) {
    sim_srv_t *v;
    if (servers[i] >= sim->n) {
      rc = CL_EINVAL;
      cl_set_err(err, errsize, "in-process backend: no server number %"
                 PRIu32, servers[i]);
      break;
    }
    v = &sim->srv[servers[i]];
    sim->want_req = reqs[i].req;
    sim->want_reply = &replies[i];
    cl_session_request(v->s, v->client, &reqs[i]);
    perform(sim);
    sim->want_reply = NULL;
    if (sim->failed) {
      rc = sim->failed;
      cl_set_err(err, errsize, "%s", sim->why);
    } else if (replies[i].type == 0) {
      /* Parked (DELIVER with nothing held): in one process nothing is in
       * flight unseen, so it would wait forever. Forget the request. */
      cl_session_client_close(v->s, v->client);
      v->client = cl_session_client_open(v->s, v);
      rc = v->client == NULL ? CL_ENOMEM : CL_EPROTO;
      cl_set_err(err, errsize, "%s: %s waits for a message that is not in "
                 "flight", sim->ids[servers[i]],
                 cl_msg_type_name(reqs[i].type));
    }
  }
  if (rc < 0)
    for (j = 0; j < n; j++)
      cl_msg_free(&replies[j]);
  return rc;
}

/* cl_backend_t.sleep_ms: in-process time only moves with deliveries. */
static int sim_sleep_ms(void *ctx, uint64_t ms, char *err, size_t errsize) {
  (void)ctx;
  (void)ms;
  (void)err;
  (void)errsize;
  return 0;
}

static size_t sim_completed(void *ctx, uint64_t id) {
  const sim_done_t *d = done_find(ctx, id);
  return d ? d->count : 0;
}

static int sim_reported(void *ctx, uint64_t id, size_t server) {
  const sim_done_t *d = done_find(ctx, id);
  return d != NULL && server < ((const cl_sim_t *)ctx)->n && d->seen[server];
}

static int sim_take_state(void *ctx, uint64_t id, size_t server,
                          cl_msg_t *out) {
  cl_sim_t *sim = ctx;
  sim_done_t *d = done_find(sim, id);
  if (d == NULL || server >= sim->n ||
      d->pushed[server].type != CL_MSG_LOCAL_STATE)
    return 0;
  *out = d->pushed[server];
  memset(&d->pushed[server], 0, sizeof d->pushed[server]);
  return 1;
}

static void sim_forget(void *ctx, uint64_t id) {
  cl_sim_t *sim = ctx;
  sim_done_t *d = done_find(sim, id);
  size_t s;
  if (d == NULL)
    return;
  for (s = 0; s < sim->n; s++)
    cl_msg_free(&d->pushed[s]);
  free(d->pushed);
  free(d->seen);
  cl_idmap_del(&sim->done_ix, id);
  *d = sim->done[--sim->ndone];
  if (d != &sim->done[sim->ndone])
    (void)cl_idmap_put(&sim->done_ix, d->id, (uintptr_t)(d - sim->done));
}

/* cl_backend_t.wait_complete: nothing can change without a request, so this
 * only checks; CL_ETIMEOUT lists what is missing. */
static int sim_wait_complete(void *ctx, const uint64_t *ids, size_t n,
                             uint64_t timeout_ms, char *err, size_t errsize) {
  cl_sim_t *sim = ctx;
  size_t i, s, used = 0;
  int missing = 0;
  (void)timeout_ms;
  if (err && errsize)
    err[0] = '\0';
  for (i = 0; i < n; i++) {
    const sim_done_t *d = done_find(sim, ids[i]);
    int first = 1;
    if (d != NULL && d->count == sim->n)
      continue;
    for (s = 0; s < sim->n; s++) {
      int w;
      if (d != NULL && d->seen[s])
        continue;
      missing = 1;
      if (err == NULL || used + 1 >= errsize)
        continue;
      if (first)
        w = snprintf(err + used, errsize - used, "%ssnapshot %" PRIu64
                     " not complete on %s", used ? "; " : "", ids[i],
                     sim->ids[s]);
      else
        w = snprintf(err + used, errsize - used, ", %s", sim->ids[s]);
      first = 0;
      if (w < 0)
        break;
      used += (size_t)w < errsize - used ? (size_t)w : errsize - used - 1;
    }
  }
  return missing ? CL_ETIMEOUT : 0;
}

/* A backend over sim; see sim.h. */
cl_backend_t cl_sim_backend(cl_sim_t *sim) {
  return (cl_backend_t){.ctx = sim, .call = sim_call,
                        .sleep_ms = sim_sleep_ms, .completed = sim_completed,
                        .reported = sim_reported, .take_state = sim_take_state,
                        .forget = sim_forget,
                        .wait_complete = sim_wait_complete};
}
