#include "idmap.h"

#include <stdlib.h>

#include "alloc.h"
#include "error.h"
#include "util.h"

/* Slot holding key, or the empty slot where it would go. Needs cap > 0. */
static size_t slot_of(const cl_idmap_t *m, uint64_t key) {
  size_t mask = m->cap - 1, i = (size_t)cl_mix64(key) & mask;
  while (m->t[i].val != 0 && m->t[i].key != key)
    i = (i + 1) & mask;
  return i;
}

/* Keep the load at most 1/2 with `more` entries added. Rehashing changes
 * nothing a caller can see, so it is safe before a possible failure. */
int cl_idmap_reserve(cl_idmap_t *m, size_t more) {
  cl_idmap_slot_t *old = m->t;
  size_t oldcap = m->cap, cap = m->cap ? m->cap : 16, i;
  if (more > SIZE_MAX / 4 - m->n)
    return CL_ENOMEM;
  if ((m->n + more) * 2 <= m->cap)
    return 0;
  while ((m->n + more) * 2 > cap)
    cap *= 2;
  m->t = cl_calloc(cap, sizeof *m->t);
  if (m->t == NULL) {
    m->t = old;
    return CL_ENOMEM;
  }
  m->cap = cap;
  for (i = 0; i < oldcap; i++)
    if (old[i].val != 0)
      m->t[slot_of(m, old[i].key)] = old[i];
  free(old);
  return 0;
}

int cl_idmap_put(cl_idmap_t *m, uint64_t key, uintptr_t val) {
  size_t i;
  int r = cl_idmap_reserve(m, 1);
  if (r < 0)
    return r;
  i = slot_of(m, key);
  if (m->t[i].val == 0)
    m->n++;
  m->t[i].key = key;
  m->t[i].val = val + 1;
  return 0;
}

int cl_idmap_get(const cl_idmap_t *m, uint64_t key, uintptr_t *val) {
  size_t i;
  if (m->cap == 0)
    return 0;
  i = slot_of(m, key);
  if (m->t[i].val == 0)
    return 0;
  *val = m->t[i].val - 1;
  return 1;
}

void cl_idmap_del(cl_idmap_t *m, uint64_t key) {
  size_t mask, i, j, home;
  if (m->cap == 0)
    return;
  mask = m->cap - 1;
  i = slot_of(m, key);
  if (m->t[i].val == 0)
    return;
  m->t[i].val = 0;
  m->n--;
  for (j = i;;) {
    j = (j + 1) & mask;
    if (m->t[j].val == 0)
      return;
    home = (size_t)cl_mix64(m->t[j].key) & mask;
    /* Move j back into the hole unless its home lies cyclically in (i, j]. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      m->t[i] = m->t[j];
      m->t[j].val = 0;
      i = j;
    }
  }
}

void cl_idmap_free(cl_idmap_t *m) {
  free(m->t);
  m->t = NULL;
  m->cap = m->n = 0;
}

int cl_idmap_next(const cl_idmap_t *m, size_t *pos, uint64_t *key,
                  uintptr_t *val) {
  for (; *pos < m->cap; (*pos)++)
    if (m->t[*pos].val != 0) {
      *key = m->t[*pos].key;
      *val = m->t[*pos].val - 1;
      (*pos)++;
      return 1;
    }
  return 0;
}
