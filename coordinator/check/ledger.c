#include "ledger.h"

#include <stdlib.h>

#include "error.h"

typedef struct ledger_chan {
  int64_t *v; /* v[seq - 1] = tokens */
  uint64_t n, cap;
} ledger_chan_t;

struct cl_ledger {
  const cl_topology_t *topo; /* borrowed */
  ledger_chan_t *ch;         /* [topo->nlinks] */
  uint64_t total;
};

/* A ledger with one empty list per link of topo (borrowed). NULL on
 * allocation failure. Free with cl_ledger_free. */
cl_ledger_t *cl_ledger_new(const cl_topology_t *topo) {
  cl_ledger_t *l;
  if (topo == NULL)
    return NULL;
  l = calloc(1, sizeof(*l));
  if (l == NULL)
    return NULL;
  l->topo = topo;
  l->ch = calloc(topo->nlinks ? topo->nlinks : 1, sizeof(*l->ch));
  if (l->ch == NULL) {
    free(l);
    return NULL;
  }
  return l;
}

/* Frees the ledger and everything it recorded; NULL is fine. */
void cl_ledger_free(cl_ledger_t *l) {
  if (l == NULL)
    return;
  for (size_t i = 0; i < l->topo->nlinks; i++)
    free(l->ch[i].v);
  free(l->ch);
  free(l);
}

/* Appends token message seq on src->dst. 0, CL_ENOPEER, CL_ESEQ (not the
 * next seq), CL_EINVAL (n < 1), CL_EFULL (over CL_LEDGER_MAX_MSGS) or
 * CL_ENOMEM. */
int cl_ledger_add(cl_ledger_t *l, uint32_t src, uint32_t dst, uint64_t seq,
                  int64_t n) {
  long li;
  ledger_chan_t *c;
  if (l == NULL)
    return CL_EINVAL;
  li = cl_topology_link(l->topo, src, dst);
  if (li < 0)
    return CL_ENOPEER;
  c = &l->ch[li];
  if (seq != c->n + 1)
    return CL_ESEQ;
  if (n < 1)
    return CL_EINVAL;
  if (l->total >= CL_LEDGER_MAX_MSGS)
    return CL_EFULL;
  if (c->n == c->cap) {
    uint64_t ncap = c->cap ? c->cap * 2 : 16;
    int64_t *nv = realloc(c->v, ncap * sizeof(*nv));
    if (nv == NULL)
      return CL_ENOMEM;
    c->v = nv;
    c->cap = ncap;
  }
  c->v[c->n++] = n;
  l->total++;
  return 0;
}

/* Amount of message seq on src->dst: 0, CL_ENOPEER or CL_ENOENT. */
int cl_ledger_get(const cl_ledger_t *l, uint32_t src, uint32_t dst,
                  uint64_t seq, int64_t *n) {
  long li;
  if (l == NULL)
    return CL_EINVAL;
  li = cl_topology_link(l->topo, src, dst);
  if (li < 0)
    return CL_ENOPEER;
  if (seq < 1 || seq > l->ch[li].n)
    return CL_ENOENT;
  *n = l->ch[li].v[seq - 1];
  return 0;
}

/* See ledger.h. */
const cl_topology_t *cl_ledger_topology(const cl_ledger_t *l) {
  return l->topo;
}
