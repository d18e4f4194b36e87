/* The trace buffer (trace.h). Entries and recorded ids are two arrays
 * that double as they fill, up to the bound; one entry is always free, so
 * that the DROPPED entry a full buffer needs never has to be allocated. */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct cl_trace {
  cl_trace_entry_t *v;
  size_t n, cap, max;
  uint64_t *ids;
  size_t nids, capids;
  uint64_t next;
  uint64_t (*clock)(void *ctx);
  void *ctx;
};

/* The first capacity: small traces stay small. */
#define TRACE_FIRST_CAP 1024

cl_trace_t *cl_trace_new(size_t max_events, uint64_t (*clock)(void *ctx),
                         void *ctx) {
  cl_trace_t *t = cl_calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  if (max_events == 0)
    max_events = CL_TRACE_DEFAULT_EVENTS;
  if (max_events > CL_TRACE_MAX_EVENTS)
    max_events = CL_TRACE_MAX_EVENTS;
  if (max_events < 1)
    max_events = 1;
  t->max = max_events + 1; /* and the DROPPED entry */
  t->cap = max_events < TRACE_FIRST_CAP ? max_events : TRACE_FIRST_CAP;
  t->v = cl_malloc(t->cap * sizeof *t->v);
  if (t->v == NULL) {
    free(t);
    return NULL;
  }
  t->clock = clock;
  t->ctx = ctx;
  return t;
}

void cl_trace_free(cl_trace_t *t) {
  if (t == NULL)
    return;
  free(t->v);
  free(t->ids);
  free(t);
}

/* Room for one more event entry with one entry still free behind it.
 * 0, or -1 (full or out of memory: the event is dropped). */
static int room(cl_trace_t *t) {
  size_t cap;
  cl_trace_entry_t *v;
  if (t->n + 2 <= t->cap)
    return 0;
  if (t->cap >= t->max)
    return -1;
  cap = t->cap * 2 < t->max ? t->cap * 2 : t->max;
  v = cl_realloc(t->v, cap * sizeof *v);
  if (v == NULL)
    return -1;
  t->v = v;
  t->cap = cap;
  return 0;
}

/* Room for k more recorded ids (at most max in all). 0 or -1. */
static int room_ids(cl_trace_t *t, size_t k) {
  size_t cap;
  uint64_t *v;
  if (k <= t->capids - t->nids)
    return 0;
  if (k > t->max - t->nids)
    return -1;
  cap = t->capids ? t->capids : 256;
  while (cap - t->nids < k)
    cap *= 2;
  if (cap > t->max)
    cap = t->max;
  v = cl_realloc(t->ids, cap * sizeof *v);
  if (v == NULL)
    return -1;
  t->ids = v;
  t->capids = cap;
  return 0;
}

/* count events that did not fit: the DROPPED entry at the end grows, or
 * one is made in the free entry kept for it. */
static void drop(cl_trace_t *t, uint64_t count) {
  cl_trace_entry_t *e = t->n ? &t->v[t->n - 1] : NULL;
  if (e == NULL || e->ev != CL_TEV_DROPPED) {
    e = &t->v[t->n++];
    memset(e, 0, sizeof *e);
    e->ev = CL_TEV_DROPPED;
    e->i = t->next;
  }
  e->n += (int64_t)count;
  t->next += count;
}

/* A new entry at the end (room checked), stamped. */
static cl_trace_entry_t *push(cl_trace_t *t, uint8_t ev, uint32_t peer,
                              uint64_t seq, int64_t n, uint64_t snap,
                              int64_t tokens) {
  cl_trace_entry_t *e = &t->v[t->n++];
  e->i = t->next++;
  e->ev = ev;
  e->peer = peer;
  e->seq = seq;
  e->n = n;
  e->snap = snap;
  e->tokens = tokens;
  e->t_us = t->clock ? t->clock(t->ctx) : 0;
  e->rec_off = t->nids;
  e->nrec = 0;
  return e;
}

uint64_t *cl_trace_add(cl_trace_t *t, uint8_t ev, uint32_t peer, uint64_t seq,
                       int64_t n, uint64_t snap, int64_t tokens,
                       size_t nrec) {
  cl_trace_entry_t *e;
  uint64_t *ids;
  /* Once something was dropped, nothing more is kept: a trace has at most
   * one gap, at its end, and what it keeps stays whole. */
  if ((t->n && t->v[t->n - 1].ev == CL_TEV_DROPPED) || room(t) < 0 ||
      (nrec > 0 && room_ids(t, nrec) < 0)) {
    drop(t, 1);
    return NULL;
  }
  e = push(t, ev, peer, seq, n, snap, tokens);
  if (nrec == 0)
    return NULL;
  ids = t->ids + t->nids;
  e->nrec = (uint32_t)nrec;
  t->nids += nrec;
  return ids;
}

void cl_trace_ones(cl_trace_t *t, uint8_t ev, uint32_t peer, uint64_t first,
                   uint64_t count, int64_t tokens, size_t nrec,
                   const uint64_t *rec) {
  int64_t step = ev == CL_TEV_SEND ? -1 : 1;
  uint64_t k;
  for (k = 0; k < count; k++) {
    uint64_t *ids;
    if (t->n && t->v[t->n - 1].ev == CL_TEV_DROPPED) {
      drop(t, count - k); /* the rest, in one step */
      return;
    }
    tokens += step;
    ids = cl_trace_add(t, ev, peer, first + k, 1, 0, tokens, nrec);
    if (ids != NULL)
      memcpy(ids, rec, nrec * sizeof *ids);
  }
}

void cl_trace_lose(cl_trace_t *t, uint64_t count) {
  if (count > 0)
    drop(t, count);
}

uint64_t cl_trace_next(const cl_trace_t *t) { return t->next; }
size_t cl_trace_count(const cl_trace_t *t) { return t->n; }

const cl_trace_entry_t *cl_trace_entry(const cl_trace_t *t, size_t k) {
  return &t->v[k];
}

const uint64_t *cl_trace_ids(const cl_trace_t *t, const cl_trace_entry_t *e) {
  return t->ids + e->rec_off;
}

size_t cl_trace_find(const cl_trace_t *t, uint64_t i) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const cl_trace_entry_t *e = &t->v[mid];
    uint64_t end = e->i + (e->ev == CL_TEV_DROPPED ? (uint64_t)e->n : 1);
    if (end <= i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
