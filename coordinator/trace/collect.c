/* Tracing servers through a backend (collect.h). */
#include "collect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The reply of server k, checked: 0 if it is `want`, else a code with err
 * naming k. */
static int reply_ok(const cl_msg_t *r, uint8_t want, const char *id,
                    const char *what, char *err, size_t errsize) {
  if (r->type == want)
    return 0;
  if (r->type == CL_MSG_ERROR) {
    snprintf(err, errsize, "%s refused %s: %s", id, what, r->u.error.text);
    return cl_err_from_wire(r->u.error.code);
  }
  snprintf(err, errsize, "%s answered %s with %s", id, what,
           cl_msg_type_name(r->type));
  return CL_EPROTO;
}

int cl_collect_switch(const cl_backend_t *be, size_t n,
                      const char *const *ids, int on, uint64_t max_events,
                      char *err, size_t errsize) {
  cl_msg_t *reqs = calloc(n ? n : 1, sizeof *reqs);
  cl_msg_t *reps = calloc(n ? n : 1, sizeof *reps);
  uint32_t *servers = calloc(n ? n : 1, sizeof *servers);
  size_t k;
  int rc = CL_ENOMEM;
  if (reqs == NULL || reps == NULL || servers == NULL) {
    snprintf(err, errsize, "out of memory");
    goto out;
  }
  for (k = 0; k < n; k++) {
    servers[k] = (uint32_t)k;
    reqs[k].type = CL_MSG_TRACE;
    reqs[k].req = 0;
    reqs[k].u.trace.on = (uint8_t)on;
    reqs[k].u.trace.max_events = max_events;
  }
  rc = be->call(be->ctx, n, servers, reqs, reps, err, errsize);
  for (k = 0; rc == 0 && k < n; k++)
    rc = reply_ok(&reps[k], CL_MSG_OK, ids[k], on ? "TRACE on" : "TRACE off",
                  err, errsize);
  for (k = 0; k < n; k++)
    cl_msg_free(&reps[k]);
out:
  free(reqs);
  free(reps);
  free(servers);
  return rc;
}

/* One server's events as they come in. */
typedef struct got {
  cl_trace_event_t *v;
  size_t n, cap;
  uint64_t first; /* the next index to ask for */
  int done;
} got_t;

/* Move the events of reply r into g (the reply keeps nothing). 0,
 * CL_ENOMEM, or CL_EPROTO when the page does not go on from where the
 * last one stopped (the trace was restarted meanwhile, or the server
 * lies): each event at the next index, a dropped one counting >= 1. */
static int take(got_t *g, cl_msg_t *r) {
  uint32_t k, m = r->u.trace_r.nevents;
  uint64_t at = g->first;
  for (k = 0; k < m; k++) {
    const cl_trace_event_t *e = &r->u.trace_r.events[k];
    if (e->i != at || (e->ev == CL_TEV_DROPPED && e->n < 1))
      return CL_EPROTO;
    at += e->ev == CL_TEV_DROPPED ? (uint64_t)e->n : 1;
  }
  if (g->n + m > g->cap) {
    size_t cap = g->cap ? g->cap : 1024;
    cl_trace_event_t *v;
    while (cap < g->n + m)
      cap *= 2;
    if ((v = realloc(g->v, cap * sizeof *v)) == NULL)
      return CL_ENOMEM;
    g->v = v;
    g->cap = cap;
  }
  for (k = 0; k < m; k++) {
    cl_trace_event_t *e = &r->u.trace_r.events[k];
    g->v[g->n++] = *e;
    e->recorded = NULL; /* moved */
    e->nrecorded = 0;
    g->first = e->i + (e->ev == CL_TEV_DROPPED ? (uint64_t)e->n : 1);
  }
  if (m == 0 || g->first >= r->u.trace_r.next)
    g->done = 1;
  return 0;
}

int cl_collect_read(const cl_backend_t *be, size_t n, const char *const *ids,
                    void (*progress)(void *ctx, uint64_t events), void *ctx,
                    cl_tf_t **out, char *err, size_t errsize) {
  got_t *got = calloc(n ? n : 1, sizeof *got);
  cl_msg_t *reqs = calloc(n ? n : 1, sizeof *reqs);
  cl_msg_t *reps = calloc(n ? n : 1, sizeof *reps);
  uint32_t *servers = calloc(n ? n : 1, sizeof *servers);
  const cl_trace_event_t **evs = calloc(n ? n : 1, sizeof *evs);
  size_t *nevs = calloc(n ? n : 1, sizeof *nevs);
  size_t k, m, j;
  uint64_t total = 0;
  int rc = 0;
  *out = NULL;
  if (got == NULL || reqs == NULL || reps == NULL || servers == NULL ||
      evs == NULL || nevs == NULL) {
    snprintf(err, errsize, "out of memory");
    rc = CL_ENOMEM;
    goto out;
  }
  for (;;) {
    /* Ask every server not done yet for its next page, all at once. */
    for (k = 0, m = 0; k < n; k++) {
      if (got[k].done)
        continue;
      memset(&reqs[m], 0, sizeof reqs[m]);
      reqs[m].type = CL_MSG_TRACE_READ;
      reqs[m].u.trace_read.first = got[k].first;
      reqs[m].u.trace_read.max = CL_TRACE_READ_MAX;
      servers[m++] = (uint32_t)k;
    }
    if (m == 0)
      break;
    rc = be->call(be->ctx, m, servers, reqs, reps, err, errsize);
    for (j = 0; j < m; j++) {
      k = servers[j];
      if (rc == 0)
        rc = reply_ok(&reps[j], CL_MSG_TRACE_R, ids[k], "TRACE_READ", err,
                      errsize);
      if (rc == 0) {
        uint64_t before = got[k].n;
        if ((rc = take(&got[k], &reps[j])) == CL_EPROTO)
          snprintf(err, errsize, "%s's trace does not go on from event %"
                   PRIu64 " (was it started again while it was read?)",
                   ids[k], got[k].first);
        else if (rc < 0)
          snprintf(err, errsize, "out of memory");
        total += got[k].n - before;
      }
      cl_msg_free(&reps[j]);
    }
    if (rc < 0)
      goto out;
    if (progress != NULL)
      progress(ctx, total);
  }
  for (k = 0; k < n; k++) {
    evs[k] = got[k].v;
    nevs[k] = got[k].n;
  }
  rc = cl_tf_from_events(n, ids, evs, nevs, out, err, errsize);
  if (rc == CL_ENOMEM)
    snprintf(err, errsize, "out of memory");
out:
  for (k = 0; got != NULL && k < n; k++) {
    for (j = 0; j < got[k].n; j++)
      free(got[k].v[j].recorded);
    free(got[k].v);
  }
  free(got);
  free(reqs);
  free(reps);
  free(servers);
  free(evs);
  free(nevs);
  return rc;
}

/* TRACE_READ of `first` (at most `max` events) on every server into
 * reps (n of them). */
static int read_all(const cl_backend_t *be, size_t n, const char *const *ids,
                    const uint64_t *first, uint64_t max, cl_msg_t *reps,
                    char *err, size_t errsize) {
  cl_msg_t *reqs = calloc(n ? n : 1, sizeof *reqs);
  uint32_t *servers = calloc(n ? n : 1, sizeof *servers);
  size_t k;
  int rc = CL_ENOMEM;
  if (reqs != NULL && servers != NULL) {
    for (k = 0; k < n; k++) {
      servers[k] = (uint32_t)k;
      reqs[k].type = CL_MSG_TRACE_READ;
      reqs[k].u.trace_read.first = first ? first[k] : UINT64_MAX;
      reqs[k].u.trace_read.max = max;
    }
    rc = be->call(be->ctx, n, servers, reqs, reps, err, errsize);
    for (k = 0; rc == 0 && k < n; k++)
      rc = reply_ok(&reps[k], CL_MSG_TRACE_R, ids[k], "TRACE_READ", err,
                    errsize);
  } else {
    snprintf(err, errsize, "out of memory");
  }
  free(reqs);
  free(servers);
  return rc;
}

int cl_collect_counts(const cl_backend_t *be, size_t n,
                      const char *const *ids, uint64_t *made, uint64_t *kept,
                      char *err, size_t errsize) {
  cl_msg_t *reps = calloc(n ? n : 1, sizeof *reps);
  uint64_t *last = calloc(n ? n : 1, sizeof *last);
  size_t k;
  int rc = CL_ENOMEM;
  *made = *kept = 0;
  if (reps == NULL || last == NULL) {
    snprintf(err, errsize, "out of memory");
    goto out;
  }
  /* The next index of each, then its last entry: a DROPPED one says how
   * many of those were not kept. */
  rc = read_all(be, n, ids, NULL, 0, reps, err, errsize);
  for (k = 0; k < n; k++) {
    last[k] = reps[k].u.trace_r.next ? reps[k].u.trace_r.next - 1 : 0;
    cl_msg_free(&reps[k]);
  }
  if (rc == 0)
    rc = read_all(be, n, ids, last, 1, reps, err, errsize);
  /* From the second reply alone: made is its next; kept, the dropped
   * entry's index (everything before it was kept), else next. */
  for (k = 0; k < n; k++) {
    if (rc == 0) {
      const cl_trace_event_t *e = reps[k].u.trace_r.events;
      *made += reps[k].u.trace_r.next;
      *kept += reps[k].u.trace_r.nevents == 1 && e[0].ev == CL_TEV_DROPPED
                   ? e[0].i
                   : reps[k].u.trace_r.next;
    }
    cl_msg_free(&reps[k]);
  }
out:
  free(reps);
  free(last);
  return rc;
}
