/* The in-process backend (see sim.h): one cl_node per topology server and a
 * FIFO ring per directed channel. Requests are handled one after another in
 * the order given, exactly as a lockstep daemon would answer them, so replay
 * over this backend is the reference the multi-process run is compared with.
 *
 * Like the node core, every request first reserves what it may need (queue
 * slots, the reply list, the completion entry) and only then changes the
 * node, so a request either happens completely or not at all.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "local_state.h"
#include "node.h"

/* A peer message in flight on a channel. */
typedef struct sim_msg {
  uint8_t kind;   /* CL_NODE_TOKEN or CL_NODE_MARKER */
  uint64_t value; /* TOKEN: n; MARKER: snapshot id */
  uint64_t seq;   /* TOKEN: channel sequence number */
} sim_msg_t;

/* One directed channel: a ring of messages, oldest at head. */
typedef struct sim_chan {
  uint32_t src, dst;
  sim_msg_t *v;
  size_t head, n, cap;
  size_t ntokens; /* token messages queued (the capped kind) */
} sim_chan_t;

/* Which servers have reported snapshot id complete. */
typedef struct sim_done {
  uint64_t id;
  size_t count;
  uint8_t *seen; /* [nservers] */
} sim_done_t;

struct cl_sim {
  size_t n;
  char (*ids)[CL_ID_SIZE]; /* topology order */
  cl_node_t **nodes;
  size_t nchans;
  sim_chan_t *chans;
  size_t *out_base, *in_base; /* [n + 1] into out_chan / in_chan */
  size_t *out_chan;           /* server s, outbound index i -> channel */
  size_t *in_chan;            /* server s, inbound index i -> channel */
  uint64_t *next_k;           /* auto snapshot ids: next k to try */
  sim_done_t *done;
  size_t ndone, capdone;
  size_t *done_tab; /* open addressing: index + 1 into done, 0 empty */
  size_t tabcap;
  cl_actions_t acts; /* reused across requests */
};

/* ---- channels ----------------------------------------------------------- */

/* Make room for one more message. Returns 0 or CL_ENOMEM. */
static int chan_reserve(sim_chan_t *c) {
  size_t cap, i;
  sim_msg_t *v;
  if (c->n < c->cap)
    return 0;
  cap = c->cap ? c->cap * 2 : 16;
  if (cap > SIZE_MAX / sizeof(*v))
    return CL_ENOMEM;
  v = malloc(cap * sizeof(*v));
  if (v == NULL)
    return CL_ENOMEM;
  for (i = 0; i < c->n; i++)
    v[i] = c->v[(c->head + i) % c->cap];
  free(c->v);
  c->v = v;
  c->cap = cap;
  c->head = 0;
  return 0;
}

/* Append after chan_reserve. */
static void chan_push(sim_chan_t *c, uint8_t kind, uint64_t value,
                      uint64_t seq) {
  sim_msg_t *m = &c->v[(c->head + c->n) % c->cap];
  m->kind = kind;
  m->value = value;
  m->seq = seq;
  c->n++;
  if (kind == CL_NODE_TOKEN)
    c->ntokens++;
}

/* Drop the head message (the caller has handled it). */
static void chan_pop(sim_chan_t *c) {
  if (c->v[c->head].kind == CL_NODE_TOKEN)
    c->ntokens--;
  c->head = (c->head + 1) % c->cap;
  c->n--;
}

/* ---- completion records ------------------------------------------------- */

/* splitmix64 finaliser: snapshot ids are often small consecutive numbers. */
static size_t hash_id(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return (size_t)x;
}

/* Table slot holding id, or the empty slot where it would go. */
static size_t done_slot(const cl_sim_t *sim, uint64_t id) {
  size_t mask = sim->tabcap - 1, i = hash_id(id) & mask;
  while (sim->done_tab[i] != 0 && sim->done[sim->done_tab[i] - 1].id != id)
    i = (i + 1) & mask;
  return i;
}

/* The completion record of id, or NULL. */
static sim_done_t *done_find(const cl_sim_t *sim, uint64_t id) {
  size_t i;
  if (sim->tabcap == 0)
    return NULL;
  i = done_slot(sim, id);
  return sim->done_tab[i] ? &sim->done[sim->done_tab[i] - 1] : NULL;
}

/* The record for id, created empty if new. Returns 0 or CL_ENOMEM. */
static int done_get(cl_sim_t *sim, uint64_t id, sim_done_t **out) {
  sim_done_t *d = done_find(sim, id);
  uint8_t *seen;
  if (d != NULL) {
    *out = d;
    return 0;
  }
  if ((sim->ndone + 1) * 2 > sim->tabcap) {
    size_t cap = sim->tabcap ? sim->tabcap * 2 : 64, i;
    size_t *t = calloc(cap, sizeof(*t)), *old = sim->done_tab;
    if (t == NULL)
      return CL_ENOMEM;
    sim->done_tab = t;
    sim->tabcap = cap;
    for (i = 0; i < sim->ndone; i++)
      t[done_slot(sim, sim->done[i].id)] = i + 1;
    free(old);
  }
  if (sim->ndone == sim->capdone) {
    size_t cap = sim->capdone ? sim->capdone * 2 : 16;
    sim_done_t *v = realloc(sim->done, cap * sizeof(*v));
    if (v == NULL)
      return CL_ENOMEM;
    sim->done = v;
    sim->capdone = cap;
  }
  seen = calloc(sim->n ? sim->n : 1, 1);
  if (seen == NULL)
    return CL_ENOMEM;
  d = &sim->done[sim->ndone];
  d->id = id;
  d->count = 0;
  d->seen = seen;
  sim->done_tab[done_slot(sim, id)] = ++sim->ndone;
  *out = d;
  return 0;
}

/* ---- creation ----------------------------------------------------------- */

/* Build nodes and channels from the topology (copied; the sim does not keep
 * it). NULL on allocation failure or an invalid topology. */
cl_sim_t *cl_sim_new(const cl_topology_t *topo) {
  cl_sim_t *sim;
  const char **out = NULL, **in = NULL;
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
  sim->nchans = topo->nlinks;
  cl_actions_init(&sim->acts);
  sim->ids = calloc(n ? n : 1, sizeof(*sim->ids));
  sim->nodes = calloc(n ? n : 1, sizeof(*sim->nodes));
  sim->next_k = calloc(n ? n : 1, sizeof(*sim->next_k));
  sim->out_base = calloc(n + 1, sizeof(size_t));
  sim->in_base = calloc(n + 1, sizeof(size_t));
  sim->chans = calloc(sim->nchans ? sim->nchans : 1, sizeof(*sim->chans));
  sim->out_chan = calloc(sim->nchans ? sim->nchans : 1, sizeof(size_t));
  sim->in_chan = calloc(sim->nchans ? sim->nchans : 1, sizeof(size_t));
  out = calloc(n ? n : 1, sizeof(*out));
  in = calloc(n ? n : 1, sizeof(*in));
  if (!sim->ids || !sim->nodes || !sim->next_k || !sim->out_base ||
      !sim->in_base || !sim->chans || !sim->out_chan || !sim->in_chan ||
      !out || !in)
    goto fail;
  for (s = 0; s < n; s++)
    if (cl_id_copy(sim->ids[s], topo->servers[s].id) < 0)
      goto fail;
  /* Per-server slices of the channel maps, by counting. */
  for (l = 0; l < topo->nlinks; l++) {
    sim->out_base[topo->links[l].src + 1]++;
    sim->in_base[topo->links[l].dst + 1]++;
  }
  for (s = 0; s < n; s++) {
    sim->out_base[s + 1] += sim->out_base[s];
    sim->in_base[s + 1] += sim->in_base[s];
  }
  for (s = 0; s < n; s++) {
    cl_node_config_t cfg;
    size_t no = 0, ni = 0;
    for (l = 0; l < topo->nlinks; l++) {
      if (topo->links[l].src == s)
        out[no++] = sim->ids[topo->links[l].dst];
      if (topo->links[l].dst == s)
        in[ni++] = sim->ids[topo->links[l].src];
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.self = sim->ids[s];
    cfg.tokens = topo->servers[s].tokens;
    cfg.nout = no;
    cfg.out = out;
    cfg.nin = ni;
    cfg.in = in;
    if (cl_node_new(&cfg, &sim->nodes[s]) < 0)
      goto fail;
  }
  /* Map each node's sorted peer indexes to channels. */
  for (l = 0; l < topo->nlinks; l++) {
    uint32_t a = topo->links[l].src, b = topo->links[l].dst;
    int oi = cl_node_out_index(sim->nodes[a], sim->ids[b]);
    int ii = cl_node_in_index(sim->nodes[b], sim->ids[a]);
    if (oi < 0 || ii < 0)
      goto fail;
    sim->chans[l].src = a;
    sim->chans[l].dst = b;
    sim->out_chan[sim->out_base[a] + (size_t)oi] = l;
    sim->in_chan[sim->in_base[b] + (size_t)ii] = l;
  }
  free(out);
  free(in);
  return sim;
fail:
  free(out);
  free(in);
  cl_sim_free(sim);
  return NULL;
}

/* Free the sim, its nodes and everything in flight. NULL is fine. */
void cl_sim_free(cl_sim_t *sim) {
  size_t i;
  if (sim == NULL)
    return;
  if (sim->nodes)
    for (i = 0; i < sim->n; i++)
      cl_node_free(sim->nodes[i]);
  if (sim->chans)
    for (i = 0; i < sim->nchans; i++)
      free(sim->chans[i].v);
  for (i = 0; i < sim->ndone; i++)
    free(sim->done[i].seen);
  free(sim->done);
  free(sim->done_tab);
  free(sim->ids);
  free(sim->nodes);
  free(sim->next_k);
  free(sim->out_base);
  free(sim->in_base);
  free(sim->chans);
  free(sim->out_chan);
  free(sim->in_chan);
  cl_actions_free(&sim->acts);
  free(sim);
}

/* ---- requests ----------------------------------------------------------- */

static void set_error(cl_msg_t *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Turn reply r into an ERROR with a formatted text. */
static void set_error(cl_msg_t *r, int code, const char *fmt, ...) {
  va_list ap;
  uint64_t req = r->req;
  cl_msg_free(r);
  r->type = CL_MSG_ERROR;
  r->req = req;
  r->u.error.code = code;
  va_start(ap, fmt);
  vsnprintf(r->u.error.text, sizeof(r->u.error.text), fmt, ap);
  va_end(ap);
}

/* Reserve a slot on every outbound channel of s (markers may go to all). */
static int reserve_all_out(cl_sim_t *sim, uint32_t s) {
  size_t i;
  int err;
  for (i = sim->out_base[s]; i < sim->out_base[s + 1]; i++)
    if ((err = chan_reserve(&sim->chans[sim->out_chan[i]])) < 0)
      return err;
  return 0;
}

/* An OK reply with room for max sent entries. Returns 0 or CL_ENOMEM. */
static int ok_prepare(cl_msg_t *r, size_t max) {
  r->type = CL_MSG_OK;
  if (max > 0) {
    r->u.ok.sent = calloc(max, sizeof(cl_sent_t));
    if (r->u.ok.sent == NULL)
      return CL_ENOMEM;
  }
  return 0;
}

/* Apply server s's actions from its last node call: queue the messages, list
 * them in the reply, count completions. Cannot fail: everything was
 * reserved (completion records included, see the callers). */
static void apply_actions(cl_sim_t *sim, uint32_t s, cl_msg_t *r) {
  size_t i;
  for (i = 0; i < sim->acts.n; i++) {
    const cl_action_t *a = &sim->acts.v[i];
    if (a->kind == CL_ACT_SEND) {
      size_t c = sim->out_chan[sim->out_base[s] + a->peer];
      cl_sent_t *e = &r->u.ok.sent[r->u.ok.nsent++];
      uint64_t value = a->msg == CL_NODE_TOKEN ? (uint64_t)a->n : a->snapshot_id;
      chan_push(&sim->chans[c], a->msg, value, a->seq);
      memcpy(e->dest, sim->ids[sim->chans[c].dst], CL_ID_SIZE);
      e->kind = a->msg;
      e->value = value;
      e->seq = a->msg == CL_NODE_TOKEN ? a->seq : 0;
    } else if (a->kind == CL_ACT_COMPLETE) {
      sim_done_t *d = done_find(sim, a->snapshot_id);
      if (d != NULL && !d->seen[s]) {
        d->seen[s] = 1;
        d->count++;
      }
    }
    /* EVICT: the state is gone from the node; nothing to track here. */
  }
  cl_actions_clear(&sim->acts);
}

/* SEND{dest, n}: refusals become ERROR replies; 0 or CL_ENOMEM. */
static int do_send(cl_sim_t *sim, uint32_t s, const cl_msg_t *q, cl_msg_t *r) {
  cl_node_t *node = sim->nodes[s];
  const char *self = sim->ids[s], *dest = q->u.send.dest;
  int oi = cl_node_out_index(node, dest), err;
  sim_chan_t *c;
  if (oi < 0) {
    set_error(r, CL_ENOPEER, "%s has no channel to %s", self, dest);
    return 0;
  }
  if (q->u.send.n < 1) {
    set_error(r, CL_EINVAL, "%s cannot send %" PRId64 " tokens to %s", self,
              q->u.send.n, dest);
    return 0;
  }
  if (q->u.send.n > cl_node_tokens(node)) {
    set_error(r, CL_ENOTOKENS, "%s has %" PRId64 " tokens, cannot send %" PRId64
              " to %s", self, cl_node_tokens(node), q->u.send.n, dest);
    return 0;
  }
  c = &sim->chans[sim->out_chan[sim->out_base[s] + (size_t)oi]];
  if (c->ntokens >= CL_SIM_QUEUE_MAX) {
    set_error(r, CL_EFULL, "channel %s->%s already holds %zu token messages",
              self, dest, c->ntokens);
    return 0;
  }
  if ((err = chan_reserve(c)) < 0 || (err = ok_prepare(r, 1)) < 0)
    return err;
  err = cl_node_send_tokens(node, (uint32_t)oi, q->u.send.n, &sim->acts);
  if (err < 0) {
    set_error(r, err, "%s cannot send %" PRId64 " tokens to %s: %s", self,
              q->u.send.n, dest, cl_strerror(err));
    return 0;
  }
  apply_actions(sim, s, r);
  return 0;
}

/* SNAPSHOT{id|auto}: start here; OK lists the markers. 0 or CL_ENOMEM. */
static int do_snapshot(cl_sim_t *sim, uint32_t s, const cl_msg_t *q,
                       cl_msg_t *r) {
  cl_node_t *node = sim->nodes[s];
  uint64_t id;
  sim_done_t *d;
  int err;
  if (q->u.snapshot.has_id) {
    id = q->u.snapshot.snapshot_id;
    if (cl_node_has_snapshot(node, id)) {
      set_error(r, CL_EEXIST, "%s already knows snapshot %" PRIu64,
                sim->ids[s], id);
      return 0;
    }
  } else {
    /* Daemon rule: 1000000 + k*nservers + rank, disjoint across servers.
     * k only grows, so an id released earlier is not handed out again. */
    uint64_t k = sim->next_k[s];
    for (;; k++) {
      if (k > (UINT64_MAX - 1000000 - s) / (sim->n ? sim->n : 1)) {
        set_error(r, CL_ERANGE, "%s has run out of snapshot ids", sim->ids[s]);
        return 0;
      }
      id = 1000000 + k * sim->n + s;
      if (!cl_node_has_snapshot(node, id))
        break;
    }
    sim->next_k[s] = k + 1;
  }
  if ((err = reserve_all_out(sim, s)) < 0 ||
      (err = ok_prepare(r, cl_node_nout(node))) < 0 ||
      (err = done_get(sim, id, &d)) < 0)
    return err;
  err = cl_node_start_snapshot(node, id, &sim->acts);
  if (err < 0) {
    set_error(r, err, "%s cannot start snapshot %" PRIu64 ": %s", sim->ids[s],
              id, cl_strerror(err));
    return 0;
  }
  r->u.ok.snapshot_id = id;
  apply_actions(sim, s, r);
  return 0;
}

/* DELIVER{src}: hand the head of src->s to the node; OK lists what it sent.
 * 0 or CL_ENOMEM. */
static int do_deliver(cl_sim_t *sim, uint32_t s, const cl_msg_t *q,
                      cl_msg_t *r) {
  cl_node_t *node = sim->nodes[s];
  const char *self = sim->ids[s], *src = q->u.deliver.src;
  int ii = cl_node_in_index(node, src), err;
  sim_chan_t *c;
  sim_msg_t m;
  sim_done_t *d;
  if (ii < 0) {
    set_error(r, CL_ENOPEER, "%s has no channel from %s", self, src);
    return 0;
  }
  c = &sim->chans[sim->in_chan[sim->in_base[s] + (size_t)ii]];
  if (c->n == 0) {
    /* In-process nothing can be in flight unseen: waiting would be forever. */
    set_error(r, CL_ENOENT, "nothing in flight on channel %s->%s", src, self);
    return 0;
  }
  m = c->v[c->head];
  if (m.kind == CL_NODE_MARKER) {
    if ((err = reserve_all_out(sim, s)) < 0 ||
        (err = ok_prepare(r, cl_node_nout(node))) < 0 ||
        (err = done_get(sim, m.value, &d)) < 0)
      return err;
    err = cl_node_receive_marker(node, (uint32_t)ii, m.value, &sim->acts);
  } else {
    if ((err = ok_prepare(r, 0)) < 0)
      return err;
    err = m.value > (uint64_t)INT64_MAX
              ? CL_ERANGE
              : cl_node_receive_token(node, (uint32_t)ii, m.seq,
                                      (int64_t)m.value, &sim->acts);
  }
  if (err < 0) {
    /* The message stays queued: the node refused it and is unchanged. */
    set_error(r, err, "%s cannot take %s %" PRIu64 " from %s: %s", self,
              m.kind == CL_NODE_MARKER ? "marker" : "token", m.value, src,
              cl_strerror(err));
    return 0;
  }
  chan_pop(c);
  r->u.ok.delivered_kind = m.kind;
  r->u.ok.delivered_value = m.value;
  apply_actions(sim, s, r);
  return 0;
}

/* COLLECT{id, release}: a STATE reply with ids as strings (copies), or an
 * ERROR (CL_ENOENT unknown, CL_EAGAIN in progress). 0 or CL_ENOMEM. */
static int do_collect(cl_sim_t *sim, uint32_t s, const cl_msg_t *q,
                      cl_msg_t *r) {
  cl_node_t *node = sim->nodes[s];
  const char *self = sim->ids[s];
  uint64_t id = q->u.collect.snapshot_id;
  cl_node_state_t st;
  cl_local_state_t *ls = &r->u.state;
  if (cl_node_state(node, id, &st) < 0) {
    set_error(r, CL_ENOENT, "%s does not know snapshot %" PRIu64, self, id);
    return 0;
  }
  if (!st.complete) {
    set_error(r, CL_EAGAIN, "snapshot %" PRIu64 " is still in progress on %s",
              id, self);
    return 0;
  }
  if (st.nrecorded > UINT32_MAX) {
    set_error(r, CL_ERANGE, "%s recorded too many runs for snapshot %"
              PRIu64, self, id);
    return 0;
  }
  r->type = CL_MSG_STATE;
  if (cl_local_state_from_node(node, id, &st, ls) < 0)
    return CL_ENOMEM;
  /* The reply owns copies, so the kept state can go now. */
  if (q->u.collect.release)
    cl_node_release(node, id);
  return 0;
}

/* Handle one request at server s into r (zeroed). Returns 0 (r is OK, ERROR
 * or STATE) or CL_ENOMEM (r released, nothing changed). */
static int handle(cl_sim_t *sim, uint32_t s, const cl_msg_t *q, cl_msg_t *r) {
  int err;
  r->req = q->req;
  switch (q->type) {
  case CL_MSG_SEND:
    err = do_send(sim, s, q, r);
    break;
  case CL_MSG_SNAPSHOT:
    err = do_snapshot(sim, s, q, r);
    break;
  case CL_MSG_DELIVER:
    err = do_deliver(sim, s, q, r);
    break;
  case CL_MSG_COLLECT:
    err = do_collect(sim, s, q, r);
    break;
  default:
    set_error(r, CL_EINVAL, "%s: %s is not supported in-process", sim->ids[s],
              cl_msg_type_name(q->type));
    return 0;
  }
  cl_actions_clear(&sim->acts);
  if (err < 0)
    cl_msg_free(r);
  return err;
}

/* cl_backend_t.call: requests in order, each reply before the next request.
 * On failure every reply is released (zeroed); requests before the failing
 * one have taken effect. */
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
  for (i = 0; i < n; i++) {
    if (servers[i] >= sim->n) {
      rc = CL_EINVAL;
      cl_set_err(err, errsize, "in-process backend: no server number %" PRIu32,
                 servers[i]);
      break;
    }
    if ((rc = handle(sim, servers[i], &reqs[i], &replies[i])) < 0) {
      cl_set_err(err, errsize, "%s: %s", sim->ids[servers[i]],
                 cl_strerror(rc));
      break;
    }
  }
  if (rc < 0)
    for (j = 0; j < i; j++)
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

/* cl_backend_t.completed: servers whose COMPLETE for id was seen. */
static size_t sim_completed(void *ctx, uint64_t id) {
  const sim_done_t *d = done_find(ctx, id);
  return d ? d->count : 0;
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

/* A backend whose ctx is sim (borrowed: keep sim alive while it is used). */
cl_backend_t cl_sim_backend(cl_sim_t *sim) {
  cl_backend_t b;
  b.ctx = sim;
  b.call = sim_call;
  b.sleep_ms = sim_sleep_ms;
  b.completed = sim_completed;
  b.wait_complete = sim_wait_complete;
  return b;
}
