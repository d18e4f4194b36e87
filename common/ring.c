#include "ring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

void cl_ring_init(cl_ring_t *r, size_t esz) {
  memset(r, 0, sizeof *r);
  r->esz = esz;
}

int cl_ring_reserve(cl_ring_t *r, size_t more) {
  size_t cap = r->cap ? r->cap : 8, i;
  char *v;
  if (more > SIZE_MAX / 4 / r->esz - r->n)
    return CL_ENOMEM;
  if (r->n + more <= r->cap)
    return 0;
  while (cap < r->n + more)
    cap *= 2;
  v = cl_malloc(cap * r->esz);
  if (v == NULL)
    return CL_ENOMEM;
  /* Unroll the entries to the start of the new array. */
  for (i = 0; i < r->n; i++)
    memcpy(v + i * r->esz, cl_ring_at(r, i), r->esz);
  free(r->v);
  r->v = v;
  r->cap = cap;
  r->head = 0;
  return 0;
}

void *cl_ring_at(const cl_ring_t *r, size_t i) {
  return r->v + ((r->head + i) % r->cap) * r->esz;
}

void *cl_ring_push(cl_ring_t *r) {
  void *p = r->v + ((r->head + r->n) % r->cap) * r->esz;
  r->n++;
  return p;
}

void cl_ring_pop(cl_ring_t *r) {
  r->head = (r->head + 1) % r->cap;
  r->n--;
}

void cl_ring_clear(cl_ring_t *r) {
  r->head = 0;
  r->n = 0;
}

void cl_ring_free(cl_ring_t *r) {
  free(r->v);
  r->v = NULL;
  r->head = r->n = r->cap = 0;
}
