#include "schedule.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ring.h"
#include "util.h"

/* ---- delay sources ------------------------------------------------------ */

struct cl_delays {
  int from_file;
  uint32_t *v;    /* file: the values */
  uint64_t n;     /* file: how many */
  uint64_t used;  /* drawn so far (the file's cursor) */
  uint64_t state; /* generator: splitmix64 state */
  uint32_t max;   /* generator: largest delay */
};

static int diag_set(cl_diag_t *diag, const char *path, int line, int rc,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int diag_set(cl_diag_t *diag, const char *path, int line, int rc,
                    const char *fmt, ...) {
  if (diag != NULL) {
    va_list ap;
    size_t n = strlen(path);
    /* Keep the tail of a long path: it is the part that identifies it. */
    const char *p = n >= sizeof(diag->file) ? path + n - (sizeof(diag->file) - 1)
                                            : path;
    memcpy(diag->file, p, strlen(p) + 1);
    diag->line = line;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* Reads a delay file (format in schedule.h). Returns 0 and *out (free with
 * cl_delays_free), CL_EIO (cannot read), CL_EINVAL (bad line; diag names it)
 * or CL_ENOMEM. */
int cl_delays_load(const char *path, cl_delays_t **out, cl_diag_t *diag) {
  FILE *f;
  cl_delays_t *d;
  uint64_t cap = 0, value = 0;
  int line = 1, c, rc = 0;
  int digits = 0, after = 0, blanks = 0; /* state of the current line */

  *out = NULL;
  f = fopen(path, "r");
  if (f == NULL)
    return diag_set(diag, path, 0, CL_EIO, "cannot open: %s", strerror(errno));
  d = calloc(1, sizeof(*d));
  if (d == NULL) {
    fclose(f);
    return CL_ENOMEM;
  }
  d->from_file = 1;
  for (;;) {
    c = getc(f);
    if (c == EOF || c == '\n') {
      if (!digits) {
        if (c == EOF && !blanks)
          break; /* nothing after the last newline */
        rc = diag_set(diag, path, line, CL_EINVAL,
                      "blank line (expected one integer >= 0)");
        goto fail;
      }
      if (d->n >= CL_DELAYS_MAX_COUNT) {
        rc = diag_set(diag, path, line, CL_EINVAL, "more than %llu delays",
                      (unsigned long long)CL_DELAYS_MAX_COUNT);
        goto fail;
      }
      if (d->n == cap) {
        uint64_t ncap = cap ? cap * 2 : 1024;
        uint32_t *nv = realloc(d->v, ncap * sizeof(*nv));
        if (nv == NULL) {
          rc = CL_ENOMEM;
          goto fail;
        }
        d->v = nv;
        cap = ncap;
      }
      d->v[d->n++] = (uint32_t)value;
      if (c == EOF)
        break;
      line++;
      digits = after = blanks = 0;
      value = 0;
    } else if (c >= '0' && c <= '9') {
      if (after) {
        rc = diag_set(diag, path, line, CL_EINVAL,
                      "expected one integer >= 0, found more");
        goto fail;
      }
      value = value * 10 + (uint64_t)(c - '0');
      digits = 1;
      if (value > CL_DELAY_MAX_VALUE) {
        rc = diag_set(diag, path, line, CL_EINVAL,
                      "delay out of range (largest allowed %u)",
                      CL_DELAY_MAX_VALUE);
        goto fail;
      }
    } else if (c == ' ' || c == '\t' || c == '\r') {
      blanks = 1;
      if (digits)
        after = 1;
    } else {
      rc = diag_set(diag, path, line, CL_EINVAL,
                    "expected one integer >= 0, found '%c'",
                    (c >= 32 && c < 127) ? c : '?');
      goto fail;
    }
  }
  if (ferror(f)) {
    rc = diag_set(diag, path, line, CL_EIO, "read error");
    goto fail;
  }
  if (d->n == 0) {
    rc = diag_set(diag, path, 0, CL_EINVAL, "no delays");
    goto fail;
  }
  fclose(f);
  *out = d;
  return 0;
fail:
  fclose(f);
  cl_delays_free(d);
  return rc;
}

/* A splitmix64 stream; NULL on allocation failure. */
cl_delays_t *cl_delays_seeded(uint64_t seed, uint32_t max_delay) {
  cl_delays_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NULL;
  d->state = seed;
  d->max = max_delay;
  return d;
}

void cl_delays_free(cl_delays_t *d) {
  if (d == NULL)
    return;
  free(d->v);
  free(d);
}

/* 0 and *out, or CL_ENOENT when a file is used up. */
int cl_delays_next(cl_delays_t *d, uint32_t *out) {
  if (d->from_file) {
    if (d->used >= d->n)
      return CL_ENOENT;
    *out = d->v[d->used++];
    return 0;
  }
  *out = (uint32_t)(cl_rng_next(&d->state) % ((uint64_t)d->max + 1));
  d->used++;
  return 0;
}

uint64_t cl_delays_used(const cl_delays_t *d) { return d->used; }

uint64_t cl_delays_available(const cl_delays_t *d) {
  return d->from_file ? d->n : 0;
}

/* ---- the scheduler ---------------------------------------------------- */

typedef struct qent {
  uint64_t due;
  cl_sched_msg_t msg;
} qent_t;


struct cl_sched {
  const cl_topology_t *topo; /* borrowed */
  cl_delays_t *delays;       /* borrowed */
  uint64_t now;
  size_t in_flight;
  cl_ring_t *q;     /* [nlinks] of qent_t: FIFO per link */
  size_t *first;   /* [nservers + 1]: links of src i are first[i]..first[i+1] */
};

/* A scheduler at time 0 with empty links; NULL on allocation failure or a
 * topology whose links are not sorted by (src, dst). */
cl_sched_t *cl_sched_new(const cl_topology_t *topo, cl_delays_t *delays) {
  cl_sched_t *s;
  if (topo == NULL || delays == NULL)
    return NULL;
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->topo = topo;
  s->delays = delays;
  s->q = calloc(topo->nlinks ? topo->nlinks : 1, sizeof(*s->q));
  s->first = calloc(topo->nservers + 1, sizeof(*s->first));
  if (s->q == NULL || s->first == NULL)
    goto fail;
  for (size_t i = 0; i < topo->nlinks; i++)
    cl_ring_init(&s->q[i], sizeof(qent_t));
  /* Visiting order is index order because links are sorted by (src, dst)
   * and servers by id; check rather than trust it. */
  for (size_t i = 0; i < topo->nlinks; i++) {
    const cl_link_t *k = &topo->links[i];
    if (k->src >= topo->nservers || k->dst >= topo->nservers)
      goto fail;
    if (i > 0) {
      const cl_link_t *p = &topo->links[i - 1];
      if (p->src > k->src || (p->src == k->src && p->dst >= k->dst))
        goto fail;
    }
    s->first[k->src + 1]++;
  }
  for (size_t i = 0; i < topo->nservers; i++)
    s->first[i + 1] += s->first[i];
  return s;
fail:
  cl_sched_free(s);
  return NULL;
}

void cl_sched_free(cl_sched_t *s) {
  if (s == NULL)
    return;
  if (s->q != NULL)
    for (size_t i = 0; i < s->topo->nlinks; i++)
      cl_ring_free(&s->q[i]);
  free(s->q);
  free(s->first);
  free(s);
}

uint64_t cl_sched_now(const cl_sched_t *s) { return s->now; }

size_t cl_sched_in_flight(const cl_sched_t *s) { return s->in_flight; }

/* Enqueues msg on src->dst due at now + 1 + delay. 0, CL_ENOPEER, CL_ENOENT
 * (delays ran out), CL_EFULL or CL_ENOMEM. */
int cl_sched_sent(cl_sched_t *s, uint32_t src, uint32_t dst,
                  const cl_sched_msg_t *msg) {
  long li = src < s->topo->nservers && dst < s->topo->nservers
                ? cl_topology_link(s->topo, src, dst)
                : -1;
  cl_ring_t *q;
  uint32_t delay;
  int rc;
  if (li < 0)
    return CL_ENOPEER;
  if (s->in_flight >= CL_SCHED_MAX_IN_FLIGHT)
    return CL_EFULL;
  q = &s->q[li];
  rc = cl_ring_reserve(q, 1);
  if (rc < 0)
    return rc;
  rc = cl_delays_next(s->delays, &delay);
  if (rc < 0)
    return rc;
  *(qent_t *)cl_ring_push(q) = (qent_t){.due = s->now + 1 + delay,
                                        .msg = *msg};
  s->in_flight++;
  return 0;
}

/* One tick: at most one delivery per source, the first due link in
 * destination order. Returns the number written to out. */
size_t cl_sched_tick(cl_sched_t *s, cl_delivery_t *out) {
  size_t k = 0;
  s->now++;
  if (s->in_flight == 0)
    return 0;
  for (uint32_t src = 0; src < s->topo->nservers; src++) {
    for (size_t li = s->first[src]; li < s->first[src + 1]; li++) {
      cl_ring_t *q = &s->q[li];
      const qent_t *head = q->n > 0 ? cl_ring_at(q, 0) : NULL;
      if (head == NULL || head->due > s->now)
        continue;
      out[k].src = src;
      out[k].dst = s->topo->links[li].dst;
      out[k].msg = head->msg;
      k++;
      cl_ring_pop(q);
      s->in_flight--;
      break;
    }
  }
  return k;
}

/* Skips ticks that would deliver nothing; returns how many. */
uint64_t cl_sched_idle(cl_sched_t *s, uint64_t max) {
  uint64_t first_due = UINT64_MAX, skip;
  if (s->in_flight == 0) {
    s->now += max;
    return max;
  }
  for (size_t li = 0; li < s->topo->nlinks; li++) {
    const cl_ring_t *q = &s->q[li];
    const qent_t *head = q->n > 0 ? cl_ring_at(q, 0) : NULL;
    if (head != NULL && head->due < first_due)
      first_due = head->due;
  }
  /* The tick that reaches first_due delivers; the ones before it do not. */
  skip = first_due > s->now + 1 ? first_due - s->now - 1 : 0;
  if (skip > max)
    skip = max;
  s->now += skip;
  return skip;
}
