#include "verify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* Counts a problem and keeps its text if there is room. */
static void problem(cl_verdict_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(cl_verdict_t *v, const char *fmt, ...) {
  if (v->nproblems < CL_VERIFY_MAX_PROBLEMS) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->problems[v->nproblems], sizeof(v->problems[0]), fmt, ap);
    va_end(ap);
  }
  v->nproblems++;
}

/* Saturating-free checked add: returns 1 on overflow. */
static int add_i64(int64_t *acc, int64_t x) {
  return __builtin_add_overflow(*acc, x, acc);
}

static int cmp_state_ptr(const void *a, const void *b) {
  const cl_local_state_t *x = *(const cl_local_state_t *const *)a;
  const cl_local_state_t *y = *(const cl_local_state_t *const *)b;
  return strcmp(x->server, y->server);
}

/* Builds a topology from the states themselves (topo == NULL mode): one
 * server per distinct id (initial tokens as its tokens), one link per channel
 * either end lists. Channels naming a server with no state are reported.
 * Returns 0 or CL_ENOMEM; *t owns two arrays freed by the caller. */
static int derive_topology(const cl_local_state_t *states, size_t nstates,
                           cl_verdict_t *v, cl_topology_t *t) {
  const cl_local_state_t **ord = NULL;
  size_t nl = 0, cap = 0;
  memset(t, 0, sizeof(*t));
  ord = malloc((nstates ? nstates : 1) * sizeof(*ord));
  t->servers = malloc((nstates ? nstates : 1) * sizeof(*t->servers));
  if (ord == NULL || t->servers == NULL)
    goto fail;
  for (size_t i = 0; i < nstates; i++)
    ord[i] = &states[i];
  qsort(ord, nstates, sizeof(*ord), cmp_state_ptr);
  for (size_t i = 0; i < nstates; i++) {
    if (i > 0 && strcmp(ord[i]->server, ord[i - 1]->server) == 0)
      continue; /* duplicates are reported by the caller */
    cl_server_t *s = &t->servers[t->nservers++];
    memcpy(s->id, ord[i]->server, CL_ID_SIZE);
    s->id[CL_ID_SIZE - 1] = '\0';
    s->tokens = ord[i]->initial_tokens;
    if (add_i64(&t->total_tokens, s->tokens)) {
      problem(v, "initial token counts overflow");
      v->conserved = 0;
    }
  }
  for (size_t i = 0; i < nstates; i++) {
    const cl_local_state_t *st = &states[i];
    long self = cl_topology_find(t, st->server);
    for (uint32_t pass = 0; pass < 2; pass++) {
      uint32_t n = pass == 0 ? st->nsent : st->nrecv;
      const cl_chan_count_t *cc = pass == 0 ? st->sent : st->recv;
      for (uint32_t j = 0; j < n; j++) {
        long peer = cl_topology_find(t, cc[j].peer);
        const char *a = pass == 0 ? st->server : cc[j].peer;
        const char *b = pass == 0 ? cc[j].peer : st->server;
        if (peer < 0 || peer == self) {
          problem(v, "channel %s->%s: listed by %s but %s", a, b, st->server,
                  peer < 0 ? "the peer has no state"
                           : "a server cannot be its own peer");
          v->complete = 0;
          continue;
        }
        if (nl == cap) {
          size_t ncap = cap ? cap * 2 : 16;
          cl_link_t *nv = realloc(t->links, ncap * sizeof(*nv));
          if (nv == NULL)
            goto fail;
          t->links = nv;
          cap = ncap;
        }
        t->links[nl].src = (uint32_t)(pass == 0 ? self : peer);
        t->links[nl].dst = (uint32_t)(pass == 0 ? peer : self);
        nl++;
      }
    }
  }
  if (nl > 0) {
    size_t w = 1;
    qsort(t->links, nl, sizeof(*t->links), cl_link_cmp);
    for (size_t i = 1; i < nl; i++)
      if (cl_link_cmp(&t->links[i], &t->links[w - 1]) != 0)
        t->links[w++] = t->links[i];
    nl = w;
  }
  t->nlinks = nl;
  free(ord);
  return 0;
fail:
  free(ord);
  free(t->servers);
  free(t->links);
  memset(t, 0, sizeof(*t));
  return CL_ENOMEM;
}

/* A run of recorded messages on one link, as bucketed for the checks. */
typedef struct run_ref {
  uint64_t seq, count;
  int64_t n;
} run_ref_t;

/* "none", "3", "3..7" or "1..4,6,9..12" (at most 8 runs shown, then ",...")
 * into buf. */
static void format_runs(const run_ref_t *runs, size_t n, char *buf,
                        size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  if (n == 0) {
    snprintf(buf, size, "none");
    return;
  }
  for (size_t i = 0; i < n && used < size; i++) {
    int w;
    if (i == 8) {
      snprintf(buf + used, size - used, ",...");
      return;
    }
    if (runs[i].count == 1)
      w = snprintf(buf + used, size - used, "%s%llu", i ? "," : "",
                   (unsigned long long)runs[i].seq);
    else
      w = snprintf(buf + used, size - used, "%s%llu..%llu", i ? "," : "",
                   (unsigned long long)runs[i].seq,
                   (unsigned long long)(runs[i].seq + runs[i].count - 1));
    if (w < 0)
      return;
    used += (size_t)w;
  }
}

/* Per-link facts gathered from both ends. */
typedef struct chan_info {
  uint64_t sent, recv;
  uint8_t has_sent, has_recv;
  size_t nrec, off; /* recorded runs on this channel */
} chan_info_t;

/* With the runs of channel a->b known to cover exactly the messages in
 * flight, check each message's amount against the ledger; report the first
 * mismatch. Lookups stop there, so they are bounded by what was sent. */
static void check_amounts(const cl_ledger_t *ledger, const char *a,
                          const char *b, const run_ref_t *q, size_t n,
                          cl_verdict_t *v) {
  const cl_topology_t *t = cl_ledger_topology(ledger);
  long ls = cl_topology_find(t, a);
  long ld = cl_topology_find(t, b);
  for (size_t i = 0; i < n; i++)
    for (uint64_t j = 0; j < q[i].count; j++) {
      uint64_t seq = q[i].seq + j;
      int64_t amount = 0;
      int rv = ls < 0 || ld < 0 ? CL_ENOPEER
                                : cl_ledger_get(ledger, (uint32_t)ls,
                                                (uint32_t)ld, seq, &amount);
      if (rv == CL_ENOPEER) {
        problem(v, "channel %s->%s: recorded seq %llu on a channel the "
                   "ledger does not know", a, b, (unsigned long long)seq);
      } else if (rv < 0) {
        problem(v, "channel %s->%s: recorded seq %llu (%lld tokens) was "
                   "never sent", a, b, (unsigned long long)seq,
                (long long)q[i].n);
      } else if (amount != q[i].n) {
        problem(v, "channel %s->%s: recorded seq %llu carries %lld tokens "
                   "but %lld were sent", a, b, (unsigned long long)seq,
                (long long)q[i].n, (long long)amount);
      } else {
        continue;
      }
      v->channels_exact = 0;
      return;
    }
}

/* Take the channel counts of server i's state (sent: pass 0, received:
 * pass 1) into ci; each must name a link, once. */
static void take_counts(const cl_topology_t *t, int derived,
                        const cl_local_state_t *st, size_t i, uint32_t pass,
                        chan_info_t *ci, cl_verdict_t *v) {
  uint32_t n = pass == 0 ? st->nsent : st->nrecv;
  const cl_chan_count_t *cc = pass == 0 ? st->sent : st->recv;
  for (uint32_t j = 0; j < n; j++) {
    long p = cl_topology_find(t, cc[j].peer);
    long li = -1;
    const char *a = pass == 0 ? t->servers[i].id : cc[j].peer;
    const char *b = pass == 0 ? cc[j].peer : t->servers[i].id;
    if (p >= 0)
      li = pass == 0 ? cl_topology_link(t, (uint32_t)i, (uint32_t)p)
                     : cl_topology_link(t, (uint32_t)p, (uint32_t)i);
    if (li < 0) {
      if (!derived) { /* derived mode reported these already */
        problem(v, "channel %s->%s: in %s's %s counts but not in the "
                   "topology", a, b, t->servers[i].id,
                pass == 0 ? "sent" : "received");
        v->complete = 0;
      }
      continue;
    }
    if (pass == 0 ? ci[li].has_sent : ci[li].has_recv) {
      problem(v, "channel %s->%s: listed twice in %s's %s counts", a, b,
              t->servers[i].id, pass == 0 ? "sent" : "received");
      v->complete = 0;
      continue;
    }
    if (pass == 0) {
      ci[li].has_sent = 1;
      ci[li].sent = cc[j].count;
    } else {
      ci[li].has_recv = 1;
      ci[li].recv = cc[j].count;
    }
  }
}

/* Channel lists: each end must list exactly its links. */
static void check_lists(const cl_topology_t *t, int derived,
                        const cl_local_state_t **st, chan_info_t *ci,
                        cl_verdict_t *v) {
  for (size_t i = 0; i < t->nservers; i++)
    for (uint32_t pass = 0; st[i] != NULL && pass < 2; pass++)
      take_counts(t, derived, st[i], i, pass, ci, v);
  for (size_t li = 0; li < t->nlinks; li++) {
    const cl_link_t *k = &t->links[li];
    const char *a = t->servers[k->src].id, *b = t->servers[k->dst].id;
    int miss_sent = !ci[li].has_sent;
    if (st[k->src] == NULL || st[k->dst] == NULL)
      continue; /* the missing state is reported already */
    if (ci[li].has_sent && ci[li].has_recv)
      continue;
    if (derived)
      problem(v, "channel %s->%s: listed by %s (%s %llu) but not by %s", a,
              b, miss_sent ? b : a, miss_sent ? "received" : "sent",
              (unsigned long long)(miss_sent ? ci[li].recv : ci[li].sent),
              miss_sent ? a : b);
    else
      problem(v, "channel %s->%s: missing from %s's %s counts", a, b,
              miss_sent ? a : b, miss_sent ? "sent" : "received");
    v->complete = 0;
  }
}

/* The link a run recorded by server d came in on, or -1. */
static long run_link(const cl_topology_t *t, size_t d,
                     const cl_recorded_t *rc) {
  long s = cl_topology_find(t, rc->src);
  return s >= 0 ? cl_topology_link(t, (uint32_t)s, (uint32_t)d) : -1;
}

/* Recorded runs: add up messages and tokens, check their peers and count
 * them per link. Returns how many lie on a link. */
static size_t count_runs(const cl_topology_t *t, const cl_local_state_t **st,
                         chan_info_t *ci, cl_verdict_t *v) {
  size_t total = 0;
  for (size_t d = 0; d < t->nservers; d++) {
    for (uint32_t j = 0; st[d] != NULL && j < st[d]->nrecorded; j++) {
      const cl_recorded_t *rc = &st[d]->recorded[j];
      long li = run_link(t, d, rc);
      int64_t tokens;
      v->nrecorded = rc->count > SIZE_MAX - v->nrecorded
                         ? SIZE_MAX
                         : v->nrecorded + (size_t)rc->count;
      if (rc->count > (uint64_t)INT64_MAX ||
          __builtin_mul_overflow(rc->n, (int64_t)rc->count, &tokens) ||
          add_i64(&v->channel_tokens, tokens)) {
        problem(v, "recorded token counts overflow");
        v->conserved = 0;
      }
      if (li < 0) {
        problem(v, "channel %s->%s: %s recorded seq %llu but %s is not an "
                   "inbound peer", rc->src, t->servers[d].id, t->servers[d].id,
                (unsigned long long)rc->seq, rc->src);
        v->channels_exact = 0;
        continue;
      }
      ci[li].nrec++;
      total++;
    }
  }
  return total;
}

/* Put the runs of every link together, in arrival order: link li's are
 * runs[ci[li].off .. ci[li].off + ci[li].nrec). */
static void bucket_runs(const cl_topology_t *t, const cl_local_state_t **st,
                        chan_info_t *ci, run_ref_t *runs) {
  size_t off = 0;
  for (size_t li = 0; li < t->nlinks; li++) {
    ci[li].off = off;
    off += ci[li].nrec;
    ci[li].nrec = 0;
  }
  for (size_t d = 0; d < t->nservers; d++) {
    for (uint32_t j = 0; st[d] != NULL && j < st[d]->nrecorded; j++) {
      const cl_recorded_t *rc = &st[d]->recorded[j];
      long li = run_link(t, d, rc);
      if (li >= 0) {
        run_ref_t *q = &runs[ci[li].off + ci[li].nrec++];
        q->seq = rc->seq;
        q->count = rc->count;
        q->n = rc->n;
      }
    }
  }
}

/* Exactness of link k: the runs q[n] recorded on S->D cover exactly
 * r+1..s, in order; then, with a ledger, each message carries the amount
 * that was sent. */
static void check_link(const cl_topology_t *t, const cl_link_t *k,
                       const chan_info_t *c, const run_ref_t *q,
                       const cl_ledger_t *ledger, cl_verdict_t *v) {
  const char *a = t->servers[k->src].id, *b = t->servers[k->dst].id;
  uint64_t s = c->sent, r = c->recv, next = r + 1;
  size_t n = c->nrec;
  int exact = 1;
  char got[160], want[64];
  if (s < r) {
    problem(v, "channel %s->%s: inconsistent cut: %s received %llu before "
               "recording but %s sent only %llu", a, b, b,
            (unsigned long long)r, a, (unsigned long long)s);
    v->channels_exact = 0;
    return;
  }
  /* next runs over r+1..s+1; a run must start at next and end by s. */
  for (size_t i = 0; exact && i < n; i++) {
    exact = q[i].seq == next && q[i].count >= 1 && q[i].count <= s - next + 1;
    next += exact ? q[i].count : 0;
  }
  if (exact && next == s + 1) {
    if (ledger != NULL)
      check_amounts(ledger, a, b, q, n, v);
    return;
  }
  format_runs(q, n, got, sizeof(got));
  if (s == r)
    snprintf(want, sizeof(want), "none");
  else if (s == r + 1)
    snprintf(want, sizeof(want), "%llu", (unsigned long long)s);
  else
    snprintf(want, sizeof(want), "%llu..%llu", (unsigned long long)(r + 1),
             (unsigned long long)s);
  problem(v, "channel %s->%s: recorded seq%s %s but expected %s (%s "
             "received %llu before recording, %s sent %llu)", a, b,
          n == 1 && q[0].count == 1 ? "" : "s", got, want, b,
          (unsigned long long)r, a, (unsigned long long)s);
  v->channels_exact = 0;
}

/* The checks proper, against topology t (given or derived). st[i] is the
 * state used for server i, or NULL. */
static void check_channels(const cl_topology_t *t, int derived,
                           const cl_ledger_t *ledger,
                           const cl_local_state_t **st, cl_verdict_t *v) {
  chan_info_t *ci = calloc(t->nlinks ? t->nlinks : 1, sizeof(*ci));
  run_ref_t *runs = NULL;
  size_t total;
  if (ci != NULL) {
    check_lists(t, derived, st, ci, v);
    total = count_runs(t, st, ci, v);
    runs = malloc((total ? total : 1) * sizeof(*runs));
  }
  if (runs == NULL) {
    free(ci);
    problem(v, "out of memory while checking");
    v->complete = 0;
    return;
  }
  bucket_runs(t, st, ci, runs);
  v->nchannels = t->nlinks;
  for (size_t li = 0; li < t->nlinks; li++) {
    const cl_link_t *k = &t->links[li];
    if (st[k->src] != NULL && st[k->dst] != NULL && ci[li].has_sent &&
        ci[li].has_recv)
      check_link(t, k, &ci[li], runs + ci[li].off, ledger, v);
  }
  free(runs);
  free(ci);
}

/* Every state must be of the same snapshot as the first. */
static void check_ids(const cl_local_state_t *states, size_t nstates,
                      cl_verdict_t *v) {
  if (nstates == 0) {
    problem(v, "no local states");
    v->complete = 0;
  }
  for (size_t i = 1; i < nstates; i++) {
    if (states[i].snapshot_id != states[0].snapshot_id) {
      problem(v, "server %s: snapshot id %llu, expected %llu (as %s)",
              states[i].server, (unsigned long long)states[i].snapshot_id,
              (unsigned long long)states[0].snapshot_id, states[0].server);
      v->complete = 0;
    }
  }
}

/* st[i] = the state of topology server i (NULL if none), each server once;
 * sums the servers' tokens (given: the topology came from the caller, so
 * initial tokens must match it). Returns 1 if the sum overflowed. */
static int index_states(const cl_topology_t *t, int given,
                        const cl_local_state_t *states, size_t nstates,
                        const cl_local_state_t **st, cl_verdict_t *v) {
  int sum_overflow = 0;
  for (size_t i = 0; i < nstates; i++) {
    long idx = cl_topology_find(t, states[i].server);
    if (idx < 0) {
      problem(v, "server %s: not in the topology", states[i].server);
      v->complete = 0;
      continue;
    }
    if (st[idx] != NULL) {
      problem(v, "server %s: duplicate state", states[i].server);
      v->complete = 0;
      continue;
    }
    st[idx] = &states[i];
    if (add_i64(&v->server_tokens, states[i].tokens))
      sum_overflow = 1;
    if (given && states[i].initial_tokens != t->servers[idx].tokens) {
      problem(v, "server %s: initial tokens %lld, the topology says %lld",
              states[i].server, (long long)states[i].initial_tokens,
              (long long)t->servers[idx].tokens);
      v->complete = 0;
    }
  }
  for (size_t i = 0; i < t->nservers; i++) {
    if (st[i] == NULL) {
      problem(v, "server %s: no state", t->servers[i].id);
      v->complete = 0;
    }
  }
  return sum_overflow;
}

/* Tokens on servers plus tokens in recorded messages must be the total. */
static void check_conserved(int sum_overflow, cl_verdict_t *v) {
  int64_t sum = v->server_tokens;
  if (sum_overflow) {
    problem(v, "server token counts overflow");
    v->conserved = 0;
  }
  if (!v->conserved)
    return;
  if (add_i64(&sum, v->channel_tokens) || sum != v->expected_tokens) {
    problem(v, "tokens not conserved: %lld on servers + %lld in %zu "
               "messages, expected %lld", (long long)v->server_tokens,
            (long long)v->channel_tokens, v->nrecorded,
            (long long)v->expected_tokens);
    v->conserved = 0;
  }
}

/* Checks a global snapshot; see verify.h. Never fails: problems (including
 * running out of memory) end up in v. */
void cl_verify(const cl_topology_t *topo, const cl_ledger_t *ledger,
               const cl_local_state_t *states, size_t nstates,
               cl_verdict_t *v) {
  cl_topology_t derived;
  const cl_topology_t *t = topo;
  const cl_local_state_t **st = NULL;

  memset(v, 0, sizeof(*v));
  v->complete = v->conserved = v->channels_exact = 1;
  memset(&derived, 0, sizeof(derived));
  if (states == NULL)
    nstates = 0;
  check_ids(states, nstates, v);
  if (t == NULL && derive_topology(states, nstates, v, &derived) == 0)
    t = &derived;
  if (t != NULL) {
    v->expected_tokens = t->total_tokens;
    st = calloc(t->nservers ? t->nservers : 1, sizeof(*st));
  }
  if (st == NULL) {
    problem(v, "out of memory while checking");
    v->complete = 0;
  } else {
    int sum_overflow;
    sum_overflow = index_states(t, topo != NULL, states, nstates, st, v);
    check_channels(t, topo == NULL, ledger, st, v);
    check_conserved(sum_overflow, v);
  }
  free(st);
  free(derived.servers);
  free(derived.links);
  v->ok = v->complete && v->conserved && v->channels_exact;
}

/* Builds the reference form; the caller owns *out (cl_snap_free). */
int cl_verify_global_snap(uint64_t id, const cl_local_state_t *states,
                          size_t nstates, cl_snap_t **out) {
  const cl_local_state_t **ord;
  cl_snap_t *s;
  size_t nmsgs = 0, m = 0;
  *out = NULL;
  for (size_t i = 0; i < nstates; i++)
    for (uint32_t j = 0; j < states[i].nrecorded; j++) {
      if (states[i].recorded[j].count > CL_GLOBAL_SNAP_MSGS_MAX - nmsgs)
        return CL_ETOOBIG;
      nmsgs += (size_t)states[i].recorded[j].count;
    }
  s = calloc(1, sizeof(*s));
  ord = malloc((nstates ? nstates : 1) * sizeof(*ord));
  if (s == NULL || ord == NULL)
    goto fail;
  s->servers = calloc(nstates ? nstates : 1, sizeof(*s->servers));
  s->msgs = calloc(nmsgs ? nmsgs : 1, sizeof(*s->msgs));
  if (s->servers == NULL || s->msgs == NULL)
    goto fail;
  for (size_t i = 0; i < nstates; i++)
    ord[i] = &states[i];
  qsort(ord, nstates, sizeof(*ord), cmp_state_ptr);
  s->id = id;
  s->nservers = nstates;
  for (size_t i = 0; i < nstates; i++) {
    memcpy(s->servers[i].id, ord[i]->server, CL_ID_SIZE);
    s->servers[i].id[CL_ID_SIZE - 1] = '\0';
    s->servers[i].tokens = ord[i]->tokens;
    /* Destinations in id order, each in arrival order. */
    for (uint32_t j = 0; j < ord[i]->nrecorded; j++)
      for (uint64_t c = 0; c < ord[i]->recorded[j].count; c++) {
        cl_snap_msg_t *g = &s->msgs[m++];
        memcpy(g->src, ord[i]->recorded[j].src, CL_ID_SIZE);
        g->src[CL_ID_SIZE - 1] = '\0';
        memcpy(g->dst, ord[i]->server, CL_ID_SIZE);
        g->dst[CL_ID_SIZE - 1] = '\0';
        g->n = ord[i]->recorded[j].n;
      }
  }
  s->nmsgs = m;
  free(ord);
  *out = s;
  return 0;
fail:
  free(ord);
  if (s != NULL) {
    free(s->servers);
    free(s->msgs);
    free(s);
  }
  return CL_ENOMEM;
}

/* One summary line into buf (always NUL-terminated when size > 0). */
void cl_verify_line(uint64_t id, const cl_verdict_t *v, char *buf,
                    size_t size) {
  if (size == 0)
    return;
  if (v->ok) {
    snprintf(buf, size,
             "snapshot %llu: ok (tokens %lld = %lld on servers + %lld in %zu "
             "message%s, %zu channel%s exact)",
             (unsigned long long)id, (long long)v->expected_tokens,
             (long long)v->server_tokens, (long long)v->channel_tokens,
             v->nrecorded, v->nrecorded == 1 ? "" : "s", v->nchannels,
             v->nchannels == 1 ? "" : "s");
  } else if (v->nproblems > 1) {
    snprintf(buf, size, "snapshot %llu: FAILED (%s; %zu more problem%s)",
             (unsigned long long)id, v->problems[0], v->nproblems - 1,
             v->nproblems == 2 ? "" : "s");
  } else {
    snprintf(buf, size, "snapshot %llu: FAILED (%s)", (unsigned long long)id,
             v->nproblems ? v->problems[0] : "unknown problem");
  }
}
