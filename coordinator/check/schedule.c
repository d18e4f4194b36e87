#include "schedule.h"

#include <stdlib.h>

#include "error.h"
#include "ring.h"

typedef struct qent {
  uint64_t due;
  cl_schedule_msg_t msg;
} qent_t;

struct cl_schedule {
  const cl_topology_t *topo; /* borrowed */
  cl_delays_t *delays;       /* borrowed */
  uint64_t now;
  size_t in_flight;
  cl_ring_t *q;     /* [nlinks] of qent_t: FIFO per link */
  size_t *first;   /* [nservers + 1]: links of src i are first[i]..first[i+1] */
};

/* A scheduler at time 0 with empty links; NULL on allocation failure or a
 * topology whose links are not sorted by (src, dst). */
cl_schedule_t *cl_schedule_new(const cl_topology_t *topo, cl_delays_t *delays) {
  cl_schedule_t *s;
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
  cl_schedule_free(s);
  return NULL;
}

void cl_schedule_free(cl_schedule_t *s) {
  if (s == NULL)
    return;
  if (s->q != NULL)
    for (size_t i = 0; i < s->topo->nlinks; i++)
      cl_ring_free(&s->q[i]);
  free(s->q);
  free(s->first);
  free(s);
}

uint64_t cl_schedule_now(const cl_schedule_t *s) { return s->now; }

size_t cl_schedule_in_flight(const cl_schedule_t *s) { return s->in_flight; }

/* Enqueues msg on src->dst due at now + 1 + delay. 0, CL_ENOPEER, CL_ENOENT
 * (delays ran out), CL_EFULL or CL_ENOMEM. */
int cl_schedule_sent(cl_schedule_t *s, uint32_t src, uint32_t dst,
                     const cl_schedule_msg_t *msg) {
  long li = src < s->topo->nservers && dst < s->topo->nservers
                ? cl_topology_link(s->topo, src, dst)
                : -1;
  cl_ring_t *q;
  uint32_t delay;
  int rc;
  if (li < 0)
    return CL_ENOPEER;
  if (s->in_flight >= CL_SCHEDULE_MAX_IN_FLIGHT)
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
size_t cl_schedule_tick(cl_schedule_t *s, cl_delivery_t *out) {
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
uint64_t cl_schedule_idle(cl_schedule_t *s, uint64_t max) {
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
